//! The commands: look a parsed command up by name, check its arity, run it against the
//! keyspace, append its reply. Nothing here does I/O; `server.rs` feeds commands in and
//! writes the replies out.
//!
//! Error replies use Redis's wording, because clients and people match on it:
//! `ERR unknown command 'FOO', with args beginning with: 'a' `,
//! `ERR wrong number of arguments for 'get' command`, and so on.

use std::time::{Duration, Instant};

use super::db::{Db, IncrError, SetCondition, SetExpiry, Ttl};
use super::resp::{self, parse_i64, Command};

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
    Spec { name: "expire", arity: 3, flags: WF, keys: (1, 1, 1), run: expire },
    Spec { name: "pexpire", arity: 3, flags: WF, keys: (1, 1, 1), run: pexpire },
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

fn ping(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match cmd.len() {
        1 => resp::simple(ctx.out, "PONG"),
        2 => resp::bulk(ctx.out, arg(cmd, 1)),
        _ => wrong_arity(ctx.out, "ping"),
    }
    Flow::Continue
}

fn echo(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    resp::bulk(ctx.out, arg(cmd, 1));
    Flow::Continue
}

fn get(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let out = &mut *ctx.out;
    ctx.db.read(arg(cmd, 1), ctx.now, |value| match value {
        Some(value) => resp::bulk(out, value),
        None => resp::null(out),
    });
    Flow::Continue
}

/// `now + amount × unit`, or `None` if it does not fit (Redis: "invalid expire time").
fn deadline(now: Instant, amount: i64, unit_ms: u64) -> Option<Instant> {
    let ms = u64::try_from(amount).ok()?.checked_mul(unit_ms)?;
    now.checked_add(Duration::from_millis(ms))
}

/// `SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]`
fn set(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let mut condition = SetCondition::Always;
    let mut expiry = SetExpiry::Clear;
    let mut expiry_given = false;
    let mut return_old = false;
    let mut i = 3;
    while let Some(option) = cmd.get(i) {
        let unit_ms = match option.to_ascii_uppercase().as_slice() {
            b"NX" if condition != SetCondition::IfExists => {
                condition = SetCondition::IfMissing;
                None
            }
            b"XX" if condition != SetCondition::IfMissing => {
                condition = SetCondition::IfExists;
                None
            }
            b"GET" => {
                return_old = true;
                None
            }
            b"KEEPTTL" if !expiry_given => {
                expiry = SetExpiry::Keep;
                expiry_given = true;
                None
            }
            b"EX" if !expiry_given && cmd.get(i + 1).is_some() => Some(1000),
            b"PX" if !expiry_given && cmd.get(i + 1).is_some() => Some(1),
            _ => return err(ctx.out, SYNTAX_ERROR),
        };
        if let Some(unit_ms) = unit_ms {
            i += 1;
            let Some(amount) = parse_i64(arg(cmd, i)) else { return err(ctx.out, NOT_AN_INTEGER) };
            match deadline(ctx.now, amount, unit_ms) {
                Some(at) if amount > 0 => expiry = SetExpiry::At(at),
                _ => return err(ctx.out, "ERR invalid expire time in 'set' command"),
            }
            expiry_given = true;
        }
        i += 1;
    }
    let key = arg(cmd, 1);
    if return_old {
        let out = &mut *ctx.out;
        ctx.db.read(key, ctx.now, |value| match value {
            Some(value) => resp::bulk(out, value),
            None => resp::null(out),
        });
    }
    let written = ctx.db.set(key, arg(cmd, 2), condition, expiry, ctx.now);
    match (return_old, written) {
        (true, _) => Flow::Continue,
        (false, true) => ok(ctx.out),
        (false, false) => {
            resp::null(ctx.out);
            Flow::Continue
        }
    }
}

fn del(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let count = cmd.iter().skip(1).filter(|key| ctx.db.del(key, ctx.now)).count();
    resp::integer(ctx.out, count as i64);
    Flow::Continue
}

fn exists(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let count = cmd.iter().skip(1).filter(|key| ctx.db.exists(key, ctx.now)).count();
    resp::integer(ctx.out, count as i64);
    Flow::Continue
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> Flow {
    match ctx.db.incr_by(key, delta, ctx.now) {
        Ok(n) => resp::integer(ctx.out, n),
        Err(IncrError::NotAnInteger) => resp::error(ctx.out, NOT_AN_INTEGER.as_bytes()),
        Err(IncrError::Overflow) => resp::error(ctx.out, b"ERR increment or decrement would overflow"),
    }
    Flow::Continue
}

fn incr(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    incr_by(ctx, arg(cmd, 1), 1)
}

fn decr(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    incr_by(ctx, arg(cmd, 1), -1)
}

fn incrby(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match parse_i64(arg(cmd, 2)) {
        Some(delta) => incr_by(ctx, arg(cmd, 1), delta),
        None => err(ctx.out, NOT_AN_INTEGER),
    }
}

fn decrby(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match parse_i64(arg(cmd, 2)) {
        // -i64::MIN does not exist.
        Some(i64::MIN) => err(ctx.out, "ERR decrement would overflow"),
        Some(delta) => incr_by(ctx, arg(cmd, 1), -delta),
        None => err(ctx.out, NOT_AN_INTEGER),
    }
}

fn expire_generic(ctx: &mut Ctx<'_>, cmd: Command<'_>, unit_ms: u64, name: &str) -> Flow {
    let Some(amount) = parse_i64(arg(cmd, 2)) else { return err(ctx.out, NOT_AN_INTEGER) };
    let key = arg(cmd, 1);
    // Zero or negative: the deadline has passed, and the key goes now (Redis does the same).
    let at = if amount <= 0 { Some(ctx.now) } else { deadline(ctx.now, amount, unit_ms) };
    let Some(at) = at else {
        return err(ctx.out, &format!("ERR invalid expire time in '{name}' command"));
    };
    resp::integer(ctx.out, i64::from(ctx.db.expire_at(key, at, ctx.now)));
    Flow::Continue
}

fn expire(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    expire_generic(ctx, cmd, 1000, "expire")
}

fn pexpire(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    expire_generic(ctx, cmd, 1, "pexpire")
}

/// The key's remaining life in milliseconds, rounded to the nearest; -2 or -1 as Redis.
fn remaining_ms(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<i64, i64> {
    match ctx.db.ttl(key, ctx.now) {
        Ttl::Missing => Err(-2),
        Ttl::Persistent => Err(-1),
        Ttl::Until(at) => {
            let nanos = at.saturating_duration_since(ctx.now).as_nanos();
            Ok(i64::try_from((nanos + 500_000) / 1_000_000).unwrap_or(i64::MAX))
        }
    }
}

fn ttl(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let reply = remaining_ms(ctx, arg(cmd, 1)).map_or_else(|code| code, |ms| (ms + 500) / 1000);
    resp::integer(ctx.out, reply);
    Flow::Continue
}

fn pttl(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let reply = remaining_ms(ctx, arg(cmd, 1)).unwrap_or_else(|code| code);
    resp::integer(ctx.out, reply);
    Flow::Continue
}

fn mget(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    resp::array(ctx.out, cmd.len() - 1);
    for key in cmd.iter().skip(1) {
        let out = &mut *ctx.out;
        ctx.db.read(key, ctx.now, |value| match value {
            Some(value) => resp::bulk(out, value),
            None => resp::null(out),
        });
    }
    Flow::Continue
}

fn mset(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    if cmd.len() % 2 == 0 {
        wrong_arity(ctx.out, "mset");
        return Flow::Continue;
    }
    let mut args = cmd.iter().skip(1);
    while let (Some(key), Some(value)) = (args.next(), args.next()) {
        ctx.db.set(key, value, SetCondition::Always, SetExpiry::Clear, ctx.now);
    }
    ok(ctx.out)
}

fn dbsize(ctx: &mut Ctx<'_>, _: Command<'_>) -> Flow {
    resp::integer(ctx.out, ctx.db.len() as i64);
    Flow::Continue
}

/// `FLUSHDB [ASYNC | SYNC]`: both modes free everything at once, there being no other
/// thread to hand the work to.
fn flushdb(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match cmd.get(1).map(<[u8]>::to_ascii_uppercase).as_deref() {
        None | Some(b"ASYNC" | b"SYNC") if cmd.len() <= 2 => {
            ctx.db.flush();
            ok(ctx.out)
        }
        _ => err(ctx.out, SYNTAX_ERROR),
    }
}

fn select(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match parse_i64(arg(cmd, 1)) {
        Some(0) => ok(ctx.out),
        Some(_) => err(ctx.out, "ERR DB index is out of range"),
        None => err(ctx.out, NOT_AN_INTEGER),
    }
}

fn quit(ctx: &mut Ctx<'_>, _: Command<'_>) -> Flow {
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
fn command(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
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
fn config(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
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
fn client(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
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

fn set_client_name(ctx: &mut Ctx<'_>, name: &[u8]) -> Flow {
    if !valid_client_name(name) {
        return err(ctx.out, "ERR Client names cannot contain spaces, newlines or special characters.");
    }
    // An empty name removes it.
    ctx.session.name = (!name.is_empty()).then(|| name.into());
    ok(ctx.out)
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`. Only RESP2 is spoken:
/// `HELLO 3` gets `-NOPROTO`, and a client falls back to RESP2.
fn hello(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
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
    use super::*;
    use crate::redis::resp::Parser;

    /// Runs each line (an inline command) through a fresh session on `db` at `now`, and
    /// returns all replies as one string, with the flow of the last command.
    fn run(db: &mut Db, now: Instant, lines: &[&str]) -> (String, Flow) {
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

    fn reply(lines: &[&str]) -> String {
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
    fn ping_echo_and_arity() {
        assert_eq!(
            reply(&["PING", "ping hi", "ECHO x", "ping a b"]),
            "+PONG\r\n$2\r\nhi\r\n$1\r\nx\r\n-ERR wrong number of arguments for 'ping' command\r\n"
        );
        assert_eq!(reply(&["get", "echo", "get a b"]), "-ERR wrong number of arguments for 'get' command\r\n\
            -ERR wrong number of arguments for 'echo' command\r\n-ERR wrong number of arguments for 'get' command\r\n");
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
    fn set_options() {
        let t0 = Instant::now();
        let mut db = Db::new();
        let (out, _) = run(
            &mut db,
            t0,
            &[
                "SET k v NX",
                "SET k w NX",
                "SET k w XX",
                "GET k",
                "SET m v XX",
                "SET k x GET",
                "SET k y ex 10",
                "TTL k",
                "PTTL k",
                "SET k z KEEPTTL",
                "TTL k",
                "SET k z",
                "TTL k",
                "SET k v px 1500",
                "TTL k",
            ],
        );
        assert_eq!(
            out,
            "+OK\r\n$-1\r\n+OK\r\n$1\r\nw\r\n$-1\r\n$1\r\nw\r\n+OK\r\n:10\r\n:10000\r\n+OK\r\n:10\r\n\
            +OK\r\n:-1\r\n+OK\r\n:2\r\n"
        );
        for bad in ["SET k v NX XX", "SET k v EX 1 PX 1", "SET k v EX", "SET k v FOO", "SET k v EX 1 KEEPTTL"]
        {
            assert_eq!(reply(&[bad]), "-ERR syntax error\r\n", "{bad}");
        }
        assert_eq!(reply(&["SET k v EX x"]), "-ERR value is not an integer or out of range\r\n");
        for bad in ["SET k v EX 0", "SET k v PX -1", "SET k v EX 9223372036854775807"] {
            assert_eq!(reply(&[bad]), "-ERR invalid expire time in 'set' command\r\n", "{bad}");
        }
    }

    #[test]
    fn counters() {
        assert_eq!(
            reply(&["INCR n", "INCRBY n 10", "DECR n", "DECRBY n 20", "GET n"]),
            ":1\r\n:11\r\n:10\r\n:-10\r\n$3\r\n-10\r\n"
        );
        assert_eq!(reply(&["SET n x", "INCR n", "INCRBY n y"]),
            "+OK\r\n-ERR value is not an integer or out of range\r\n-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            reply(&["SET n 9223372036854775807", "INCR n", "DECRBY n -9223372036854775808"]),
            "+OK\r\n-ERR increment or decrement would overflow\r\n-ERR decrement would overflow\r\n"
        );
    }

    #[test]
    fn expire_and_ttl_follow_the_clock_they_are_given() {
        let t0 = Instant::now();
        let mut db = Db::new();
        let (out, _) = run(&mut db, t0, &["SET k v", "EXPIRE k 10", "PEXPIRE nope 10", "TTL nope", "TTL k"]);
        assert_eq!(out, "+OK\r\n:1\r\n:0\r\n:-2\r\n:10\r\n");
        let (out, _) = run(&mut db, t0 + Duration::from_millis(9_400), &["TTL k", "PTTL k"]);
        assert_eq!(out, ":1\r\n:600\r\n", "rounded to the nearest");
        let (out, _) = run(&mut db, t0 + Duration::from_secs(10), &["GET k", "TTL k"]);
        assert_eq!(out, "$-1\r\n:-2\r\n");
        assert_eq!(reply(&["SET k v", "EXPIRE k -1", "EXISTS k"]), "+OK\r\n:1\r\n:0\r\n");
        assert_eq!(reply(&["EXPIRE k x"]), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            reply(&["SET k v", "EXPIRE k 9223372036854775807"]),
            "+OK\r\n-ERR invalid expire time in 'expire' command\r\n"
        );
    }

    #[test]
    fn multi_key_commands() {
        assert_eq!(
            reply(&["MSET a 1 b 2", "MGET a x b", "EXISTS a a x", "DEL a x b", "DBSIZE", "MSET a"]),
            "+OK\r\n*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n:2\r\n:2\r\n:0\r\n\
             -ERR wrong number of arguments for 'mset' command\r\n"
        );
        assert_eq!(reply(&["MSET a 1 b", "SET a 1", "FLUSHDB", "DBSIZE", "FLUSHALL ASYNC", "FLUSHDB x"]),
            "-ERR wrong number of arguments for 'mset' command\r\n+OK\r\n+OK\r\n:0\r\n+OK\r\n-ERR syntax error\r\n");
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
