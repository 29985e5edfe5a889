//! The connection and server commands: `PING`, `ECHO`, `SELECT`, `QUIT`, `HELLO`,
//! `CLIENT`, and what tools ask at start (`COMMAND`, `CONFIG GET`).

use super::{
    arg, err, lookup, ok, unknown_subcommand, wrong_arity, Ctx, Flow, Spec, COMMANDS, NOT_AN_INTEGER,
};
use crate::redis::resp::{self, parse_i64, Command};

pub(super) fn ping(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match cmd.len() {
        1 => resp::simple(ctx.out, "PONG"),
        2 => resp::bulk(ctx.out, arg(cmd, 1)),
        _ => wrong_arity(ctx.out, "ping"),
    }
    Flow::Continue
}

pub(super) fn echo(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    resp::bulk(ctx.out, arg(cmd, 1));
    Flow::Continue
}

pub(super) fn select(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match parse_i64(arg(cmd, 1)) {
        Some(0) => ok(ctx.out),
        Some(_) => err(ctx.out, "ERR DB index is out of range"),
        None => err(ctx.out, NOT_AN_INTEGER),
    }
}

pub(super) fn quit(ctx: &mut Ctx<'_>, _: Command<'_>) -> Flow {
    ok(ctx.out);
    Flow::Close
}

/// One command's `COMMAND` entry, the six-field form every client reads: name, arity,
/// flags, first key, last key, step.
fn command_info(out: &mut Vec<u8>, spec: &Spec) {
    resp::array(out, 6);
    resp::bulk(out, spec.name.as_bytes());
    resp::integer(out, spec.arity);
    resp::array(out, spec.flags.len());
    for flag in spec.flags {
        resp::simple(out, flag);
    }
    resp::integer(out, spec.keys.0);
    resp::integer(out, spec.keys.1);
    resp::integer(out, spec.keys.2);
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO [name ...]`, `COMMAND DOCS [name ...]`.
/// `DOCS` answers with an empty map: `redis-cli` asks for it at start to build its help,
/// and falls back to its own built-in help when it gets nothing.
pub(super) fn command(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let out = &mut *ctx.out;
    let Some(sub) = cmd.get(1) else {
        resp::array(out, COMMANDS.len());
        COMMANDS.iter().for_each(|spec| command_info(out, spec));
        return Flow::Continue;
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" if cmd.len() == 2 => resp::integer(out, COMMANDS.len() as i64),
        b"COUNT" => wrong_arity(out, "command|count"),
        b"DOCS" => resp::array(out, 0),
        b"INFO" if cmd.len() == 2 => {
            resp::array(out, COMMANDS.len());
            COMMANDS.iter().for_each(|spec| command_info(out, spec));
        }
        b"INFO" => {
            resp::array(out, cmd.len() - 2);
            for name in cmd.iter().skip(2) {
                match lookup(name) {
                    Some(spec) => command_info(out, spec),
                    None => resp::null(out),
                }
            }
        }
        _ => unknown_subcommand(out, "command", sub),
    }
    Flow::Continue
}

/// Redis's glob match, reduced to what `CONFIG GET` patterns use: `*`, `?` and literal
/// bytes, case-insensitively. Iterative with one backtrack point, so O(pattern × text):
/// a recursive matcher is exponential in the number of `*`s, which a client chooses
/// (Redis had exactly that bug, CVE-2022-36021).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After a `*`: where the pattern resumes, and how much text that `*` has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` take one more byte, and retry from there.
                Some((resume, taken)) => {
                    star = Some((resume, taken + 1));
                    p = resume;
                    t = taken + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `CONFIG GET pattern [pattern ...]`: the parameters a client may ask about at start.
/// `redis-benchmark` asks for `save` and `appendonly`; the answers say what is true here:
/// nothing is ever saved to disk.
pub(super) fn config(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let sub = arg(cmd, 1);
    if !sub.eq_ignore_ascii_case(b"GET") {
        unknown_subcommand(ctx.out, "config", sub);
        return Flow::Continue;
    }
    if cmd.len() < 3 {
        wrong_arity(ctx.out, "config|get");
        return Flow::Continue;
    }
    let max_bulk_len = ctx.max_bulk_len.to_string();
    let params: [(&str, &str); 5] = [
        ("save", ""),
        ("appendonly", "no"),
        ("databases", "1"),
        ("maxmemory", "0"),
        ("proto-max-bulk-len", &max_bulk_len),
    ];
    let matching: Vec<_> = params
        .iter()
        .filter(|(name, _)| cmd.iter().skip(2).any(|pattern| glob_match(pattern, name.as_bytes())))
        .collect();
    resp::array(ctx.out, 2 * matching.len());
    for (name, value) in matching {
        resp::bulk(ctx.out, name.as_bytes());
        resp::bulk(ctx.out, value.as_bytes());
    }
    Flow::Continue
}

/// Redis's rule for client names: printable ASCII without spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// `CLIENT ID`, `CLIENT GETNAME`, `CLIENT SETNAME name`, `CLIENT SETINFO attr value`.
/// Client libraries send `SETINFO` (library name and version) right after connecting.
pub(super) fn client(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let sub = arg(cmd, 1);
    let (name, arity) = match sub.to_ascii_uppercase().as_slice() {
        b"ID" => ("client|id", 2),
        b"GETNAME" => ("client|getname", 2),
        b"SETNAME" => ("client|setname", 3),
        b"SETINFO" => ("client|setinfo", 4),
        _ => {
            unknown_subcommand(ctx.out, "client", sub);
            return Flow::Continue;
        }
    };
    if cmd.len() != arity {
        wrong_arity(ctx.out, name);
        return Flow::Continue;
    }
    let out = &mut *ctx.out;
    match name {
        "client|id" => resp::integer(out, ctx.session.id as i64),
        "client|getname" => match &ctx.session.name {
            Some(name) => resp::bulk(out, name),
            None => resp::null(out),
        },
        "client|setname" => return set_client_name(ctx, arg(cmd, 2)),
        _ => {
            let attr = arg(cmd, 2);
            if !attr.eq_ignore_ascii_case(b"lib-name") && !attr.eq_ignore_ascii_case(b"lib-ver") {
                let mut text = b"ERR Unrecognized option '".to_vec();
                text.extend_from_slice(attr);
                text.push(b'\'');
                resp::error(out, &text);
                return Flow::Continue;
            }
            return ok(out);
        }
    }
    Flow::Continue
}

pub(super) fn set_client_name(ctx: &mut Ctx<'_>, name: &[u8]) -> Flow {
    if !valid_client_name(name) {
        return err(ctx.out, "ERR Client names cannot contain spaces, newlines or special characters.");
    }
    // An empty name removes it.
    ctx.session.name = (!name.is_empty()).then(|| name.into());
    ok(ctx.out)
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`. Only RESP2 is spoken:
/// `HELLO 3` gets `-NOPROTO`, and a client falls back to RESP2.
pub(super) fn hello(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    if let Some(version) = cmd.get(1) {
        match parse_i64(version) {
            Some(2) => {}
            Some(_) => return err(ctx.out, "NOPROTO unsupported protocol version"),
            None => return err(ctx.out, "ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut new_name = None;
    let mut i = 2;
    while let Some(option) = cmd.get(i) {
        let more = cmd.len() - i - 1;
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            // No password is configured, so the default user needs none (as in Redis
            // without `requirepass`); any other user does not exist.
            if !arg(cmd, i + 1).eq_ignore_ascii_case(b"default") {
                return err(ctx.out, "WRONGPASS invalid username-password pair or user is disabled.");
            }
            i += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            let name = arg(cmd, i + 1);
            if !valid_client_name(name) {
                return err(
                    ctx.out,
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            new_name = Some(name);
            i += 2;
        } else {
            let mut text = b"ERR Syntax error in HELLO option '".to_vec();
            text.extend_from_slice(option);
            text.push(b'\'');
            resp::error(ctx.out, &text);
            return Flow::Continue;
        }
    }
    if let Some(name) = new_name {
        ctx.session.name = (!name.is_empty()).then(|| name.into());
    }
    // RESP2 has no map type: a map is sent as a flat array of keys and values. The server
    // says "redis" and a 7.2 version because clients gate features on them, and what is
    // here is the 7.2 behaviour of each command it has.
    let out = &mut *ctx.out;
    resp::array(out, 14);
    for (key, value) in [("server", "redis"), ("version", "7.2.0")] {
        resp::bulk(out, key.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::integer(out, 2);
    resp::bulk(out, b"id");
    resp::integer(out, ctx.session.id as i64);
    for (key, value) in [("mode", "standalone"), ("role", "master")] {
        resp::bulk(out, key.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"modules");
    resp::array(out, 0);
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::tests::{reply, run};
    use super::*;
    use crate::redis::db::Db;

    #[test]
    fn ping_echo_and_arity() {
        assert_eq!(
            reply(&["PING", "ping hi", "ECHO x", "ping a b"]),
            "+PONG\r\n$2\r\nhi\r\n$1\r\nx\r\n-ERR wrong number of arguments for 'ping' command\r\n"
        );
        assert_eq!(reply(&["get", "echo", "get a b"]), "-ERR wrong number of arguments for 'get' command\r\n\
            -ERR wrong number of arguments for 'echo' command\r\n-ERR wrong number of arguments for 'get' command\r\n");
    }

    #[test]
    fn connection_commands() {
        assert_eq!(
            reply(&["SELECT 0", "SELECT 1", "SELECT x"]),
            "+OK\r\n-ERR DB index is out of range\r\n-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(run(&mut Db::new(), Instant::now(), &["QUIT"]), ("+OK\r\n".into(), Flow::Close));
        assert_eq!(
            reply(&[
                "CLIENT SETINFO LIB-NAME redis-rs",
                "CLIENT SETINFO foo 1",
                "CLIENT GETNAME",
                "CLIENT SETNAME me",
                "CLIENT GETNAME",
                "CLIENT ID",
                "CLIENT SETNAME \"a b\"",
                "CLIENT KILL"
            ]),
            "+OK\r\n-ERR Unrecognized option 'foo'\r\n$-1\r\n+OK\r\n$2\r\nme\r\n:7\r\n\
             -ERR Client names cannot contain spaces, newlines or special characters.\r\n\
             -ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n"
        );
    }

    #[test]
    fn hello_speaks_resp2_only() {
        let map =
            "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:2\r\n\
                   $2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
                   $7\r\nmodules\r\n*0\r\n";
        assert_eq!(reply(&["HELLO"]), map);
        assert_eq!(
            reply(&["HELLO 2 AUTH default pw SETNAME me", "CLIENT GETNAME"]),
            format!("{map}$2\r\nme\r\n")
        );
        assert_eq!(reply(&["HELLO 3"]), "-NOPROTO unsupported protocol version\r\n");
        assert_eq!(reply(&["HELLO x"]), "-ERR Protocol version is not an integer or out of range\r\n");
        assert_eq!(
            reply(&["HELLO 2 AUTH bob pw"]),
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(reply(&["HELLO 2 FOO"]), "-ERR Syntax error in HELLO option 'FOO'\r\n");
    }

    #[test]
    fn command_and_config_answer_what_the_tools_ask_at_start() {
        assert_eq!(reply(&["COMMAND DOCS", "COMMAND COUNT"]), format!("*0\r\n:{}\r\n", COMMANDS.len()));
        assert_eq!(
            reply(&["COMMAND INFO get nope"]),
            "*2\r\n*6\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n$-1\r\n"
        );
        assert!(
            reply(&["COMMAND"]).starts_with(&format!("*{}\r\n*6\r\n$4\r\nping\r\n:-1\r\n", COMMANDS.len()))
        );
        assert_eq!(reply(&["COMMAND FOO"]), "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n");
        assert_eq!(
            reply(&["CONFIG GET save", "config get APPEND*"]),
            "*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
        );
        assert_eq!(
            reply(&["CONFIG GET proto-max-bulk-len nope"]),
            "*2\r\n$18\r\nproto-max-bulk-len\r\n$4\r\n1000\r\n"
        );
        assert_eq!(reply(&["CONFIG GET"]), "-ERR wrong number of arguments for 'config|get' command\r\n");
        assert_eq!(reply(&["CONFIG SET save x"]), "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n");
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"s?ve", b"SAVE"));
        assert!(glob_match(b"*max*", b"proto-max-bulk-len"));
        assert!(!glob_match(b"sav", b"save"));
        assert!(!glob_match(b"?", b""));
        assert!(glob_match(b"a*b*c", b"aXbYbc"));
        assert!(!glob_match(b"a*b*c", b"aXbYb"));
        // Many stars against a text that almost matches: linear, not exponential.
        assert!(!glob_match(&[b"*".repeat(60), b"x".to_vec()].concat(), &[b'a'; 60]));
    }
}
