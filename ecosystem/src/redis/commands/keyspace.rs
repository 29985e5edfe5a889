//! The keyspace commands: strings (`GET`, `SET`, `INCR`, ...), deadlines (`EXPIRE`,
//! `TTL`, ...) and the whole keyspace (`DBSIZE`, `FLUSHDB`).

use std::time::{Duration, Instant};

use super::{arg, err, ok, wrong_arity, Ctx, Flow, NOT_AN_INTEGER, SYNTAX_ERROR};
use crate::redis::db::{IncrError, SetCondition, SetExpiry, Ttl};
use crate::redis::resp::{self, parse_i64, Command};

pub(super) fn get(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
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
pub(super) fn set(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
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

pub(super) fn del(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let count = cmd.iter().skip(1).filter(|key| ctx.db.del(key, ctx.now)).count();
    resp::integer(ctx.out, count as i64);
    Flow::Continue
}

pub(super) fn exists(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let count = cmd.iter().skip(1).filter(|key| ctx.db.exists(key, ctx.now)).count();
    resp::integer(ctx.out, count as i64);
    Flow::Continue
}

pub(super) fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> Flow {
    match ctx.db.incr_by(key, delta, ctx.now) {
        Ok(n) => resp::integer(ctx.out, n),
        Err(IncrError::NotAnInteger) => resp::error(ctx.out, NOT_AN_INTEGER.as_bytes()),
        Err(IncrError::Overflow) => resp::error(ctx.out, b"ERR increment or decrement would overflow"),
    }
    Flow::Continue
}

pub(super) fn incr(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    incr_by(ctx, arg(cmd, 1), 1)
}

pub(super) fn decr(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    incr_by(ctx, arg(cmd, 1), -1)
}

pub(super) fn incrby(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match parse_i64(arg(cmd, 2)) {
        Some(delta) => incr_by(ctx, arg(cmd, 1), delta),
        None => err(ctx.out, NOT_AN_INTEGER),
    }
}

pub(super) fn decrby(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match parse_i64(arg(cmd, 2)) {
        // -i64::MIN does not exist.
        Some(i64::MIN) => err(ctx.out, "ERR decrement would overflow"),
        Some(delta) => incr_by(ctx, arg(cmd, 1), -delta),
        None => err(ctx.out, NOT_AN_INTEGER),
    }
}

/// `EXPIRE key amount [NX | XX | GT | LT]` and `PEXPIRE`: the options compare with the
/// key's current deadline, a key without one counting as living forever (so `GT` never
/// applies to it and `LT` always does), as in Redis 7.
pub(super) fn expire_generic(ctx: &mut Ctx<'_>, cmd: Command<'_>, unit_ms: u64, name: &str) -> Flow {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in cmd.iter().skip(3) {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                let mut text = b"ERR Unsupported option ".to_vec();
                text.extend_from_slice(option);
                resp::error(ctx.out, &text);
                return Flow::Continue;
            }
        }
    }
    if nx && (xx || gt || lt) {
        return err(ctx.out, "ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return err(ctx.out, "ERR GT and LT options at the same time are not compatible");
    }
    let Some(amount) = parse_i64(arg(cmd, 2)) else { return err(ctx.out, NOT_AN_INTEGER) };
    // Zero or negative: the deadline has passed, and the key goes now (Redis does the same).
    let at = if amount <= 0 { Some(ctx.now) } else { deadline(ctx.now, amount, unit_ms) };
    let Some(at) = at else {
        return err(ctx.out, &format!("ERR invalid expire time in '{name}' command"));
    };
    let key = arg(cmd, 1);
    let current = match ctx.db.ttl(key, ctx.now) {
        Ttl::Missing => {
            resp::integer(ctx.out, 0);
            return Flow::Continue;
        }
        Ttl::Persistent => None,
        Ttl::Until(current) => Some(current),
    };
    let allowed = match current {
        None => !xx && !gt,
        Some(current) => !nx && (!gt || at > current) && (!lt || at < current),
    };
    resp::integer(ctx.out, i64::from(allowed && ctx.db.expire_at(key, at, ctx.now)));
    Flow::Continue
}

pub(super) fn expire(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    expire_generic(ctx, cmd, 1000, "expire")
}

pub(super) fn pexpire(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    expire_generic(ctx, cmd, 1, "pexpire")
}

/// The key's remaining life in milliseconds, rounded to the nearest; -2 or -1 as Redis.
pub(super) fn remaining_ms(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<i64, i64> {
    match ctx.db.ttl(key, ctx.now) {
        Ttl::Missing => Err(-2),
        Ttl::Persistent => Err(-1),
        Ttl::Until(at) => {
            let nanos = at.saturating_duration_since(ctx.now).as_nanos();
            Ok(i64::try_from((nanos + 500_000) / 1_000_000).unwrap_or(i64::MAX))
        }
    }
}

pub(super) fn ttl(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let reply = remaining_ms(ctx, arg(cmd, 1)).map_or_else(|code| code, |ms| (ms + 500) / 1000);
    resp::integer(ctx.out, reply);
    Flow::Continue
}

pub(super) fn pttl(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    let reply = remaining_ms(ctx, arg(cmd, 1)).unwrap_or_else(|code| code);
    resp::integer(ctx.out, reply);
    Flow::Continue
}

pub(super) fn mget(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
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

pub(super) fn mset(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    if cmd.len().is_multiple_of(2) {
        wrong_arity(ctx.out, "mset");
        return Flow::Continue;
    }
    let mut args = cmd.iter().skip(1);
    while let (Some(key), Some(value)) = (args.next(), args.next()) {
        ctx.db.set(key, value, SetCondition::Always, SetExpiry::Clear, ctx.now);
    }
    ok(ctx.out)
}

pub(super) fn dbsize(ctx: &mut Ctx<'_>, _: Command<'_>) -> Flow {
    resp::integer(ctx.out, ctx.db.len() as i64);
    Flow::Continue
}

/// `FLUSHDB [ASYNC | SYNC]`: both modes free everything at once, there being no other
/// thread to hand the work to.
pub(super) fn flushdb(ctx: &mut Ctx<'_>, cmd: Command<'_>) -> Flow {
    match cmd.get(1).map(<[u8]>::to_ascii_uppercase).as_deref() {
        None | Some(b"ASYNC" | b"SYNC") if cmd.len() <= 2 => {
            ctx.db.flush();
            ok(ctx.out)
        }
        _ => err(ctx.out, SYNTAX_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{reply, run};
    use super::*;
    use crate::redis::db::Db;

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
    fn expire_options_compare_with_the_current_deadline() {
        let t0 = Instant::now();
        let mut db = Db::new();
        let (out, _) = run(
            &mut db,
            t0,
            &[
                "SET k v",
                "EXPIRE k 10 XX",
                "EXPIRE k 10 GT",
                "EXPIRE k 10 LT",
                "TTL k",
                "EXPIRE k 20 NX",
                "EXPIRE k 5 GT",
                "EXPIRE k 20 gt",
                "EXPIRE k 30 LT",
                "EXPIRE k 5 lt xx",
                "TTL k",
                "EXPIRE nope 5 LT",
            ],
        );
        assert_eq!(out, "+OK\r\n:0\r\n:0\r\n:1\r\n:10\r\n:0\r\n:0\r\n:1\r\n:0\r\n:1\r\n:5\r\n:0\r\n");
        assert_eq!(
            reply(&["EXPIRE k 1 NX XX"]),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
        );
        assert_eq!(
            reply(&["EXPIRE k 1 GT LT"]),
            "-ERR GT and LT options at the same time are not compatible\r\n"
        );
        assert_eq!(reply(&["EXPIRE k 1 FOO"]), "-ERR Unsupported option FOO\r\n");
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
}
