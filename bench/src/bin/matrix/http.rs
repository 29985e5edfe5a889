//! The `http` section: mini-hyper's `http_hello` example against `http_tokio` (the same
//! hyper service on tokio's `current_thread` runtime) under `wrk -t1 -c50 -d10s --latency`.
//! Each server must first answer two requests on one connection with `Hello, world!\n`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mini_bench::external;
use mini_bench::report::{Rec, Results, Targets};

use super::peers::{cpu_tables, mini_example, note_saturation, probe_conn, unless_noisy, Mark, Peer};
use super::Opts;

const HTTP_SERVERS: [&str; 2] = ["mini", "tokio"];

/// Two requests on one connection, each answered `200` with body `Hello, world!\n`
/// (wrk keeps connections alive; a server that closed them would be measured reconnecting).
/// Returns the response head of the first, the `date` value left out, for the log.
fn http_probe(addr: SocketAddr) -> Result<String, String> {
    let mut s = probe_conn(addr)?;
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut heads = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
        let (head, body) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("no content-length in {head:?}"))?;
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    break (head, body);
                }
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => return Err(format!("connection closed after {} response(s)", heads.len())),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("no response: {e}")),
            }
        };
        if !head.starts_with("HTTP/1.1 200") || body != b"Hello, world!\n" {
            return Err(format!("answered {head:?} with body {:?}", String::from_utf8_lossy(&body)));
        }
        heads.push(head);
    }
    let head: Vec<&str> = heads[0].lines().filter(|l| !l.to_ascii_lowercase().starts_with("date:")).collect();
    Ok(head.join("; "))
}

/// One wrk run against a fresh server: its record (`None` if it failed).
fn http_run(
    opts: &Opts,
    wrk: &Path,
    label: &str,
    (program, name): (&Path, &str),
    secs: u32,
    rep: usize,
) -> Option<Rec> {
    let fail = |e: String| {
        println!("  {label:<10} FAILED: {e}");
        None
    };
    let server = match Peer::start(opts, name, program, &["{addr}"]) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let addr = server.addr;
    match http_probe(addr) {
        Ok(head) if rep == 0 => {
            println!("  {label:<10} answers: {head}; body \"Hello, world!\\n\", kept alive")
        }
        Ok(_) => {}
        Err(e) => return fail(format!("wrong answer: {e}")),
    }
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1"]).arg(wrk);
    cmd.args(["-t1", "-c50", &format!("-d{secs}s"), "--latency", &format!("http://{addr}/")]);
    let run = || -> Result<(Rec, String), String> {
        let before = Mark::take(&server)?;
        let tool = external::run_limited(&mut cmd, Duration::from_secs(secs as u64 + 30))
            .map_err(|e| format!("wrk: {e}"))?;
        let after = Mark::take(&server)?;
        tool.check().map_err(|e| format!("wrk {e}"))?;
        let w = external::parse_wrk(&tool.stdout)?;
        let mut rec = after.since(&before, w.requests as f64, &tool);
        let errors = (w.socket_errors + w.non_2xx) as f64;
        rec.extend([
            ("rps".to_string(), w.rps),
            ("p50_us".to_string(), w.p50_us),
            ("p99_us".to_string(), w.p99_us),
            ("errors".to_string(), errors),
        ]);
        let line = format!(
            "{:>9.0} rps, p50 {:.0} µs p99 {:.0} µs, {errors} errors; server {:.3} µs/req (ticks: {:.3}), {:.0}% of its \
             core; wrk {:.0}% of its core; others {:.0}%",
            w.rps,
            w.p50_us,
            w.p99_us,
            rec["srv_cpu_us"],
            rec["srv_tick_us"],
            rec["srv_cpu_pct"],
            rec["client_cpu_pct"],
            rec["others_cpu_pct"]
        );
        Ok((rec, line))
    };
    match unless_noisy(opts, label, run) {
        Ok((rec, line)) => {
            println!("  {label:<10} {line}");
            Some(rec)
        }
        Err(e) => fail(e),
    }
}

/// The `http` section.
pub(super) fn run(opts: &Opts, targets: &mut Targets) {
    let Some(wrk) = external::find_tool("wrk") else {
        println!(
            "  wrk not found: apt-get install -y wrk (bench/run does it when run as root); section skipped"
        );
        targets.note("http section skipped: wrk not installed".into());
        return;
    };
    let mini = mini_example(opts, "--http-bin", "mini-hyper", "http_hello");
    if let Err(e) = &mini {
        println!("  mini's http_hello: {e}; http_tokio runs alone");
    }
    let tokio = opts.bin.join("http_tokio");
    let secs = if opts.quick { 2 } else { 10 };
    let row = "wrk -t1 -c50".to_string();
    let mut res = Results::default();
    for rep in 0..opts.reps {
        for i in if rep % 2 == 0 { [0, 1] } else { [1, 0] } {
            let name = HTTP_SERVERS[i];
            let label = format!("#{rep} {name}");
            let program = if name == "mini" { mini.as_deref().ok() } else { Some(tokio.as_path()) };
            let rec = program.and_then(|p| http_run(opts, &wrk, &label, (p, name), secs, rep));
            res.push(&row, name, rec);
        }
    }
    let rows = [row];
    let title = |what: &str| {
        format!(
            "wrk -t1 -c50 -d{secs}s, mini-hyper's http_hello vs hyper on tokio current_thread: {what} (median of {})",
            opts.reps
        )
    };
    let others = &HTTP_SERVERS[1..];
    res.table(&title("requests per second"), &rows, &HTTP_SERVERS, others, "rps", 0);
    res.table(&title("latency p50, µs"), &rows, &HTTP_SERVERS, others, "p50_us", 0);
    res.table(&title("latency p99, µs"), &rows, &HTTP_SERVERS, others, "p99_us", 0);
    res.table(&title("socket errors + non-2xx responses"), &rows, &HTTP_SERVERS, &[], "errors", 0);
    cpu_tables(&res, &title, &rows, &HTTP_SERVERS, "wrk");
    targets.ratio("http wrk -c50: rps vs tokio+hyper".into(), res.ratio(&rows[0], "tokio", "rps"), true, 1.0);
    for (what, key) in [("p99 latency", "p99_us"), ("server CPU per request", "srv_cpu_us")] {
        if let Some(r) = res.ratio(&rows[0], "tokio", key) {
            targets.note(format!(
                "http wrk -c50: {what}, mini/tokio+hyper: {r:.2} (not a target; lower is better)"
            ));
        }
    }
    for name in HTTP_SERVERS {
        if res.median(&rows[0], name, "errors").is_some_and(|e| e > 0.0) {
            targets.check(false, format!("http: wrk saw errors against {name} (see the runs above)"));
        }
    }
    note_saturation(targets, &res, &rows, &HTTP_SERVERS, "wrk");
}
