//! The `redis` section: mini's `redis_server` example against `redis-server --save ""
//! --appendonly no`, each test of `redis-benchmark -t ping,set,get -c 50 -n 200000 --csv`
//! run on its own (`-t ping_inline`, `-t ping_mbulk`, `-t set`, `-t get`, so that the
//! server's CPU is read around each), unpipelined and with `-P 16`. Each server answers PING
//! before its runs, and after the SET test a GET must return the value SET stored.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mini_bench::external;
use mini_bench::report::{Rec, Results, Targets};

use super::peers::{cpu_tables, mini_example, note_saturation, probe_conn, unless_noisy, Mark, Peer};
use super::Opts;

/// redis-benchmark's tests: the name `-t` takes and the name it reports.
const REDIS_TESTS: [(&str, &str); 4] =
    [("ping_inline", "PING_INLINE"), ("ping_mbulk", "PING_MBULK"), ("set", "SET"), ("get", "GET")];
const REDIS_SERVERS: [&str; 2] = ["mini", "redis"];
const PIPELINES: [u32; 2] = [1, 16];

/// Sends one RESP command and returns its reply: one line (`+`, `-`, `:`), or a bulk
/// string's header line with its data (`$N`).
fn redis_call(addr: SocketAddr, args: &[&str]) -> Result<String, String> {
    let mut s = probe_conn(addr)?;
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd += &format!("${}\r\n{a}\r\n", a.len());
    }
    s.write_all(cmd.as_bytes()).map_err(|e| format!("send {args:?}: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if let Some(eol) = got.windows(2).position(|w| w == b"\r\n") {
            let head = String::from_utf8_lossy(&got[..eol]).into_owned();
            let data = head.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
            if data.is_none_or(|n| got.len() >= eol + 2 + n + 2) {
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
        }
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(format!("{args:?}: connection closed after {:?}", String::from_utf8_lossy(&got)))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Err(format!(
                    "{args:?}: no whole reply ({e}) after {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
        }
    }
}

/// How redis-benchmark loads a server: the tool, requests in flight per connection, and
/// requests per test.
struct RedisLoad<'a> {
    bench: &'a Path,
    pipeline: u32,
    requests: u64,
}

/// A server of the section: its name and, if it could be built, its command line.
type RedisServer<'a> = (&'a str, Option<(&'a Path, &'a [&'a str])>);

/// Starts a server and checks that it answers PING.
fn start_checked(opts: &Opts, name: &str, program: &Path, args: &[&str]) -> Result<Peer, String> {
    let server = Peer::start(opts, name, program, args)?;
    match redis_call(server.addr, &["PING"])? {
        pong if pong == "+PONG\r\n" => Ok(server),
        other => Err(format!("PING answered {other:?}")),
    }
}

/// One repetition at one pipeline depth: every server started fresh and checked, all at
/// once (an idle server costs nothing measurable), then each test against one server and
/// at once against the next, so that the runs compared are neighbours in time (the shared
/// machine drifts by 10% and more within a minute). One record per server and test (`None`
/// where it failed).
fn redis_rep(
    opts: &Opts,
    load: &RedisLoad<'_>,
    rep: usize,
    servers: &[RedisServer<'_>],
) -> Vec<Vec<Option<Rec>>> {
    let label = |name: &str| format!("#{rep} {name} -P {}", load.pipeline);
    let started: Vec<Option<Peer>> = servers
        .iter()
        .map(|&(name, cmd)| {
            let (program, args) = cmd?;
            start_checked(opts, name, program, args)
                .map_err(|e| println!("  {:<22} FAILED: {e}", label(name)))
                .ok()
        })
        .collect();
    let mut recs = vec![Vec::new(); servers.len()];
    for (test, test_name) in REDIS_TESTS {
        for ((server, (name, _)), recs) in started.iter().zip(servers).zip(&mut recs) {
            let label = label(name);
            let rec = server.as_ref().and_then(|server| {
                let rec =
                    unless_noisy(opts, &label, || redis_one(server, load, test, test_name)).and_then(|rec| {
                        // redis-benchmark counts replies, errors included: check SET stored a
                        // value (without -r every SET writes its 3 bytes, -d 3, to this one key)
                        // before GET reads it back.
                        if test == "set" {
                            let got = redis_call(server.addr, &["GET", "key:__rand_int__"])?;
                            if !(got.starts_with("$3\r\n") && got.len() == 9) {
                                return Err(format!(
                                    "after SET, GET key:__rand_int__ answered {got:?}, not 3 bytes"
                                ));
                            }
                        }
                        Ok(rec)
                    });
                match rec {
                    Ok((rec, line)) => {
                        println!("  {label:<22} {test_name:<11} {line}");
                        Some(rec)
                    }
                    Err(e) => {
                        println!("  {label:<22} {test_name:<11} FAILED: {e}");
                        None
                    }
                }
            });
            recs.push(rec);
        }
    }
    recs
}

/// One redis-benchmark test against a running server: its record and a human line.
fn redis_one(server: &Peer, load: &RedisLoad<'_>, test: &str, name: &str) -> Result<(Rec, String), String> {
    let port = server.addr.port().to_string();
    let (p, n) = (load.pipeline.to_string(), load.requests.to_string());
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1"]).arg(load.bench);
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-t", test, "-c", "50", "-n", &n, "-P", &p, "--csv"]);
    let before = Mark::take(server)?;
    let tool = external::run_limited(&mut cmd, Duration::from_secs(120))
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let after = Mark::take(server)?;
    tool.check().map_err(|e| format!("redis-benchmark {e}"))?;
    let rows = external::parse_redis_benchmark_csv(&tool.stdout)?;
    let row = rows.iter().find(|r| r.test == name).ok_or_else(|| format!("no {name} row in {rows:?}"))?;
    let mut rec = after.since(&before, load.requests as f64, &tool);
    rec.insert("rps".into(), row.rps);
    rec.insert("p50_ms".into(), row.p50_ms);
    rec.insert("p99_ms".into(), row.p99_ms);
    let line = format!(
        "{:>9.0} rps, p50 {:.3} ms p99 {:.3} ms; server {:.3} µs/req (ticks: {:.3}), {:.0}% of its core; \
         redis-benchmark {:.0}% of its core; others {:.0}%",
        row.rps,
        row.p50_ms,
        row.p99_ms,
        rec["srv_cpu_us"],
        rec["srv_tick_us"],
        rec["srv_cpu_pct"],
        rec["client_cpu_pct"],
        rec["others_cpu_pct"]
    );
    Ok((rec, line))
}

fn redis_row(name: &str, pipeline: u32) -> String {
    if pipeline == 1 {
        name.to_string()
    } else {
        format!("{name} -P {pipeline}")
    }
}

/// The `redis` section.
pub(super) fn run(opts: &Opts, targets: &mut Targets) {
    let (Some(bench), Some(redis_server)) =
        (external::find_tool("redis-benchmark"), external::find_tool("redis-server"))
    else {
        println!(
            "  redis-benchmark or redis-server not found: apt-get install -y redis-server redis-tools \
             (bench/run does it when run as root); section skipped"
        );
        targets.note("redis section skipped: redis-server / redis-benchmark not installed".into());
        return;
    };
    let mini = mini_example(opts, "--redis-bin", "mini-ecosystem", "redis_server");
    if let Err(e) = &mini {
        println!("  mini's redis_server: {e}; redis-server runs alone");
    }
    let requests: u64 = if opts.quick { 20_000 } else { 200_000 };
    let dir = std::env::temp_dir().to_string_lossy().into_owned();
    // No persistence, as the issue asks; --dir keeps any file redis might still write out of bench/.
    let redis_args =
        ["--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", &dir];
    let mut res = Results::default();
    for rep in 0..opts.reps {
        for pipeline in PIPELINES {
            let load = RedisLoad { bench: &bench, pipeline, requests };
            let mini_cmd = mini.as_ref().ok().map(|bin| (bin.as_path(), &["{addr}"][..]));
            let mut servers: [RedisServer<'_>; 2] =
                [("mini", mini_cmd), ("redis", Some((redis_server.as_path(), &redis_args[..])))];
            if rep % 2 == 1 {
                servers.reverse(); // neither server always runs first
            }
            for ((name, _), recs) in servers.iter().zip(redis_rep(opts, &load, rep, &servers)) {
                for ((_, test), rec) in REDIS_TESTS.iter().zip(recs) {
                    res.push(&redis_row(test, pipeline), name, rec);
                }
            }
        }
    }
    let rows: Vec<String> =
        PIPELINES.iter().flat_map(|&p| REDIS_TESTS.iter().map(move |(_, t)| redis_row(t, p))).collect();
    let title = |what: &str| {
        format!(
            "redis-benchmark -c 50 -n {requests}, mini's redis_server vs redis-server: {what} (median of {})",
            opts.reps
        )
    };
    let others = &REDIS_SERVERS[1..];
    res.table(&title("requests per second"), &rows, &REDIS_SERVERS, others, "rps", 0);
    res.table(&title("latency p99, ms"), &rows, &REDIS_SERVERS, others, "p99_ms", 3);
    cpu_tables(&res, &title, &rows, &REDIS_SERVERS, "redis-benchmark");
    for row in &rows {
        targets.ratio(format!("redis {row}: rps vs redis-server"), res.ratio(row, "redis", "rps"), true, 1.0);
    }
    for row in &rows {
        targets.ratio(
            format!("redis {row}: server CPU per request vs redis-server"),
            res.ratio(row, "redis", "srv_cpu_us"),
            false,
            1.0,
        );
    }
    note_saturation(targets, &res, &rows, &REDIS_SERVERS, "redis-benchmark");
}
