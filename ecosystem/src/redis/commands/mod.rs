//! The commands: look a parsed command up by name, check its arity, run it against the
//! keyspace, append its reply. Nothing here does I/O; `server.rs` feeds commands in and
//! writes the replies out.
//!
//! Error replies use Redis's wording, because clients and people match on it:
//! `ERR unknown command 'FOO', with args beginning with: 'a' `,
//! `ERR wrong number of arguments for 'get' command`, and so on.

mod connection;
mod keyspace;

use std::time::Instant;

use super::db::Db;
use super::resp::{self, Command};
use connection::{client, command, config, echo, hello, ping, quit, select};
use keyspace::{
    dbsize, decr, decrby, del, exists, expire, flushdb, get, incr, incrby, mget, mset, pexpire, pttl, set,
    ttl,
};

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Reads the next command.
    Continue,
    /// Sends the replies so far, then closes (`QUIT`).
    Close,
}

/// What a connection remembers between its commands.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client's id, as `CLIENT ID` and `HELLO` report it.
    pub(crate) id: u64,
    /// The name given by `CLIENT SETNAME` or `HELLO ... SETNAME`.
    name: Option<Box<[u8]>>,
}

impl Session {
    pub(crate) fn new(id: u64) -> Session {
        Session { id, name: None }
    }
}

/// Everything a command may touch.
pub(crate) struct Ctx<'a> {
    pub(crate) db: &'a mut Db,
    /// The time of this batch of commands (read once per batch, not once per command).
    pub(crate) now: Instant,
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) session: &'a mut Session,
    /// The bulk cap, for `CONFIG GET proto-max-bulk-len`.
    pub(crate) max_bulk_len: usize,
}

type Handler = fn(&mut Ctx<'_>, Command<'_>) -> Flow;

/// A command's table entry. `arity` counts the name: positive means exactly, negative
/// means at least its absolute value (Redis's convention, also reported by `COMMAND`).
/// `keys` are the first key's position, the last one's (-1: the last argument) and the
/// step, for `COMMAND`'s reply.
struct Spec {
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    run: Handler,
}

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const RF: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
const NONE: &[&str] = &[];

/// Every command, in `COMMAND`'s order.
const COMMANDS: &[Spec] = &[
    Spec { name: "ping", arity: -1, flags: F, keys: (0, 0, 0), run: ping },
    Spec { name: "echo", arity: 2, flags: F, keys: (0, 0, 0), run: echo },
    Spec { name: "get", arity: 2, flags: RF, keys: (1, 1, 1), run: get },
    Spec { name: "set", arity: -3, flags: W, keys: (1, 1, 1), run: set },
    Spec { name: "del", arity: -2, flags: W, keys: (1, -1, 1), run: del },
    Spec { name: "exists", arity: -2, flags: RF, keys: (1, -1, 1), run: exists },
    Spec { name: "incr", arity: 2, flags: WF, keys: (1, 1, 1), run: incr },
    Spec { name: "decr", arity: 2, flags: WF, keys: (1, 1, 1), run: decr },
    Spec { name: "incrby", arity: 3, flags: WF, keys: (1, 1, 1), run: incrby },
    Spec { name: "decrby", arity: 3, flags: WF, keys: (1, 1, 1), run: decrby },
    Spec { name: "expire", arity: -3, flags: WF, keys: (1, 1, 1), run: expire },
    Spec { name: "pexpire", arity: -3, flags: WF, keys: (1, 1, 1), run: pexpire },
    Spec { name: "ttl", arity: 2, flags: RF, keys: (1, 1, 1), run: ttl },
    Spec { name: "pttl", arity: 2, flags: RF, keys: (1, 1, 1), run: pttl },
    Spec { name: "mget", arity: -2, flags: RF, keys: (1, -1, 1), run: mget },
    Spec { name: "mset", arity: -3, flags: W, keys: (1, -1, 2), run: mset },
    Spec { name: "dbsize", arity: 1, flags: RF, keys: (0, 0, 0), run: dbsize },
    Spec { name: "flushdb", arity: -1, flags: W, keys: (0, 0, 0), run: flushdb },
    Spec { name: "flushall", arity: -1, flags: W, keys: (0, 0, 0), run: flushdb },
    Spec { name: "select", arity: 2, flags: F, keys: (0, 0, 0), run: select },
    Spec { name: "quit", arity: -1, flags: F, keys: (0, 0, 0), run: quit },
    Spec { name: "command", arity: -1, flags: NONE, keys: (0, 0, 0), run: command },
    Spec { name: "config", arity: -2, flags: NONE, keys: (0, 0, 0), run: config },
    Spec { name: "client", arity: -2, flags: NONE, keys: (0, 0, 0), run: client },
    Spec { name: "hello", arity: -1, flags: F, keys: (0, 0, 0), run: hello },
];

/// The longest command name in the table, and so the most bytes worth upper-casing.
const LONGEST_NAME: usize = 8;

fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > LONGEST_NAME {
        return None;
    }
    // Upper-case into a stack buffer, then one `match` on byte strings: no allocation and
    // no 25 case-insensitive comparisons for every command.
    let mut upper = [0u8; LONGEST_NAME];
    let upper = &mut upper[..name.len()];
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    let index = match &*upper {
        b"PING" => 0,
        b"ECHO" => 1,
        b"GET" => 2,
        b"SET" => 3,
        b"DEL" => 4,
        b"EXISTS" => 5,
        b"INCR" => 6,
        b"DECR" => 7,
        b"INCRBY" => 8,
        b"DECRBY" => 9,
        b"EXPIRE" => 10,
        b"PEXPIRE" => 11,
        b"TTL" => 12,
        b"PTTL" => 13,
        b"MGET" => 14,
        b"MSET" => 15,
        b"DBSIZE" => 16,
        b"FLUSHDB" => 17,
        b"FLUSHALL" => 18,
        b"SELECT" => 19,
        b"QUIT" => 20,
        b"COMMAND" => 21,
        b"CONFIG" => 22,
        b"CLIENT" => 23,
        b"HELLO" => 24,
        _ => return None,
    };
    Some(&COMMANDS[index])
}

/// Runs one command and appends its reply to `ctx.out`. An empty command (an empty line,
/// `*0`) gets no reply, as in Redis.
pub(crate) fn execute(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let Some(name) = cmd.get(0) else { return Flow::Continue };
    if name.eq_ignore_ascii_case(b"POST") || name.eq_ignore_ascii_case(b"Host:") {
        // A browser tricked into posting to this port (cross-protocol scripting): its lines
        // would run as commands. Redis closes such a connection without a reply.
        return Flow::Close;
    }
    let Some(spec) = lookup(name) else {
        unknown_command(ctx.out, name, cmd);
        return Flow::Continue;
    };
    let argc = cmd.len() as i64;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        wrong_arity(ctx.out, spec.name);
        return Flow::Continue;
    }
    (spec.run)(ctx, cmd)
}

fn unknown_command(out: &mut Vec<u8>, name: &[u8], cmd: Command<'_>) {
    // Redis quotes at most 128 bytes of the name, then arguments until 128 bytes of them.
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(&name[..name.len().min(128)]);
    text.extend_from_slice(b"', with args beginning with: ");
    let args_start = text.len();
    for arg in cmd.iter().skip(1) {
        let room = 128usize.saturating_sub(text.len() - args_start);
        if room == 0 {
            break;
        }
        text.push(b'\'');
        text.extend_from_slice(&arg[..arg.len().min(room)]);
        text.extend_from_slice(b"' ");
    }
    resp::error(out, &text);
}

fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    resp::error(out, format!("ERR wrong number of arguments for '{name}' command").as_bytes());
}

fn unknown_subcommand(out: &mut Vec<u8>, command: &str, sub: &[u8]) {
    let mut text = b"ERR unknown subcommand '".to_vec();
    text.extend_from_slice(&sub[..sub.len().min(128)]);
    text.extend_from_slice(format!("'. Try {} HELP.", command.to_ascii_uppercase()).as_bytes());
    resp::error(out, &text);
}

fn ok(out: &mut Vec<u8>) -> Flow {
    resp::simple(out, "OK");
    Flow::Continue
}

fn err(out: &mut Vec<u8>, text: &str) -> Flow {
    resp::error(out, text.as_bytes());
    Flow::Continue
}

const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX_ERROR: &str = "ERR syntax error";

/// Argument `i`, which the arity check guarantees is there.
fn arg<'a>(cmd: Command<'a>, i: usize) -> &'a [u8] {
    cmd.get(i).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::resp::Parser;

    /// Runs each line (an inline command) through a fresh session on `db` at `now`, and
    /// returns all replies as one string, with the flow of the last command.
    pub(super) fn run(db: &mut Db, now: Instant, lines: &[&str]) -> (String, Flow) {
        let mut out = Vec::new();
        let mut session = Session::new(7);
        let mut parser = Parser::default();
        let mut flow = Flow::Continue;
        for line in lines {
            let input = format!("{line}\r\n");
            let input = input.as_bytes();
            assert_eq!(parser.parse(input), Ok(Some(input.len())), "{line}");
            let mut ctx = Ctx { db, now, out: &mut out, session: &mut session, max_bulk_len: 1000 };
            flow = execute(&mut ctx, parser.command(input));
        }
        (String::from_utf8(out).unwrap(), flow)
    }

    pub(super) fn reply(lines: &[&str]) -> String {
        run(&mut Db::new(), Instant::now(), lines).0
    }

    #[test]
    fn every_name_in_the_table_is_found_in_any_case() {
        for spec in COMMANDS {
            assert_eq!(lookup(spec.name.as_bytes()).map(|s| s.name), Some(spec.name));
            assert_eq!(lookup(spec.name.to_uppercase().as_bytes()).map(|s| s.name), Some(spec.name));
            assert!(spec.name.len() <= LONGEST_NAME);
        }
        assert!(lookup(b"GETX").is_none());
    }

    #[test]
    fn unknown_commands_quote_their_arguments_as_redis_does() {
        assert_eq!(reply(&["FOO"]), "-ERR unknown command 'FOO', with args beginning with: \r\n");
        assert_eq!(
            reply(&["foo a \"b\\r\\nc\""]),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b  c' \r\n"
        );
        let long = format!("foo {}", "x".repeat(300));
        let got = reply(&[&long]);
        assert_eq!(
            got,
            format!("-ERR unknown command 'foo', with args beginning with: '{}' \r\n", "x".repeat(128))
        );
    }

    #[test]
    fn an_http_request_closes_the_connection_without_a_reply() {
        assert_eq!(run(&mut Db::new(), Instant::now(), &["POST / HTTP/1.1"]), (String::new(), Flow::Close));
        assert_eq!(run(&mut Db::new(), Instant::now(), &["host: example"]), (String::new(), Flow::Close));
    }

    #[test]
    fn an_empty_command_gets_no_reply() {
        assert_eq!(reply(&[""]), "");
    }
}
