//! What the `redis` and `http` sections share (issue 11, part 5: mini's servers against the
//! servers people run, under the load generators people use): starting a server pinned to
//! CPU 0 on a free port, reading its CPU around a run, building mini's example servers,
//! re-running noisy runs, and the CPU tables.
//!
//! Servers run on CPU 0, the tool on CPU 1. Each repetition starts fresh server processes
//! and runs each test against both, one right after the other (neighbours in time share the
//! machine's state); the order alternates between repetitions so that neither always
//! inherits the other's leftovers (TIME_WAIT sockets, caches, the host's scheduling).
//! Before every run the servers are checked to answer correctly, since the tools count
//! replies, not their content.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mini_bench::external::{self, Finished};
use mini_bench::report::{Rec, Results, Targets};

use super::{wait_quiet, Opts, NOISY_PCT, NOISY_RETRIES};

/// A load generator using this much of its core (or more) is the bottleneck: the rps it
/// measures are its own limit as much as the server's.
pub(super) const SATURATED_PCT: f64 = 90.0;

/// A server under test on CPU 0, its stdout and stderr in a log file; killed on drop.
pub(super) struct Peer {
    name: String,
    child: Child,
    pub(super) addr: SocketAddr,
    log: PathBuf,
}

impl Peer {
    /// Starts `program args` pinned to CPU 0 on a free port of 127.0.0.1 (`{addr}` and
    /// `{port}` in `args` say where) and waits (10 s at most) until it accepts connections.
    pub(super) fn start(opts: &Opts, name: &str, program: &Path, args: &[&str]) -> Result<Peer, String> {
        Peer::start_on(opts, name, program, args, Some("0"))
    }

    /// Like [`start`](Self::start), on the CPUs `cpus` (a `taskset -c` list), or on any
    /// CPU with `None` (the `scaling` section: multi-threaded servers get every core).
    pub(super) fn start_on(
        opts: &Opts,
        name: &str,
        program: &Path,
        args: &[&str],
        cpus: Option<&str>,
    ) -> Result<Peer, String> {
        let port = external::free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let args =
            args.iter().map(|a| a.replace("{addr}", &addr.to_string()).replace("{port}", &port.to_string()));
        let log = opts.tmp(&format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
        let mut cmd = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(program);
                c
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        let mut peer = Peer { name: name.to_string(), child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = peer.child.try_wait() {
                return Err(format!("{name} exited ({status}) before it listened: {}", peer.log_tail()));
            }
            if external::accepts(addr, Duration::from_millis(200)) {
                return Ok(peer);
            }
            if Instant::now() >= deadline {
                return Err(format!("{name} did not listen on {addr} within 10 s: {}", peer.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id() // taskset (if any) execs the server: same pid
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The CPU counters read before and after a run.
pub(super) struct Mark {
    at: Instant,
    machine_busy_ticks: u64,
    server_ns: u64,
    server_ticks: u64,
}

impl Mark {
    pub(super) fn take(server: &Peer) -> Result<Mark, String> {
        let gone = |e| format!("{} is gone: {e}", server.name);
        let (user, sys) = mini_bench::cpu_ticks(server.pid()).map_err(gone)?;
        Ok(Mark {
            at: Instant::now(),
            machine_busy_ticks: mini_bench::machine_busy_ticks(),
            server_ns: external::cpu_ns(server.pid()).map_err(gone)?,
            server_ticks: user + sys,
        })
    }

    /// The server's and the other processes' share of a run that served `requests`:
    /// `srv_cpu_us` (per request, from schedstat), `srv_tick_us` (the same from utime+stime),
    /// `srv_cpu_pct`, `client_cpu_pct` and `others_cpu_pct` (% of one core).
    pub(super) fn since(&self, before: &Mark, requests: f64, tool: &Finished) -> Rec {
        let tick = 1.0 / mini_bench::clock_ticks_per_sec() as f64;
        let wall = (self.at - before.at).as_secs_f64().max(1e-9);
        let server = (self.server_ns - before.server_ns) as f64 / 1e9;
        let busy = (self.machine_busy_ticks - before.machine_busy_ticks) as f64 * tick;
        // /proc/stat counts whole ticks per CPU, so a difference of two readings is off by
        // up to a tick per CPU: over a pipelined run of 0.15 s on 2 CPUs, 13% of a core.
        // Discount that much, or every short run would look noisy and be run again for nothing.
        let slack = std::thread::available_parallelism().map_or(2.0, |n| n.get() as f64) * tick;
        let others = (busy - server - tool.cpu.as_secs_f64() - slack).max(0.0);
        Rec::from([
            ("srv_cpu_us".to_string(), server / requests * 1e6),
            (
                "srv_tick_us".to_string(),
                (self.server_ticks - before.server_ticks) as f64 * tick / requests * 1e6,
            ),
            ("srv_cpu_pct".to_string(), server / wall * 100.0),
            ("client_cpu_pct".to_string(), tool.cpu_pct()),
            ("others_cpu_pct".to_string(), others / wall * 100.0),
        ])
    }
}

/// The path of one of mini's example servers: `--FLAG PATH` if given (a prebuilt binary,
/// e.g. from another checkout), else built here with `cargo build --release -p PACKAGE
/// --example EXAMPLE` in the main workspace (the examples live there, not in bench/), the
/// path taken from cargo's JSON messages so that `CARGO_TARGET_DIR` and cargo config hold.
pub(super) fn mini_example(opts: &Opts, flag: &str, package: &str, example: &str) -> Result<PathBuf, String> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = mini_bench::flag(&args, flag) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{flag} {}: no such file", path.display()))
        };
    }
    let root = opts.bench_dir.parent().expect("bench/ has a parent");
    println!("  building mini's {example}: cargo build --release -p {package} --example {example}");
    let out = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            package,
            "--example",
            example,
            "--message-format=json-render-diagnostics",
        ])
        .output()
        .map_err(|e| format!("run cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!(
            "cargo build failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter(|l| l.contains(&format!("\"name\":\"{example}\"")))
        .find_map(|l| l.split("\"executable\":\"").nth(1)?.split('"').next().map(PathBuf::from))
        .ok_or_else(|| format!("cargo built no executable named {example}"))
}

/// A connection for a correctness check, with timeouts so that a server that does not
/// answer fails the check within seconds instead of hanging the run.
pub(super) fn probe_conn(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Runs `measure` once the machine is quiet, and again (`NOISY_RETRIES` times at most, the
/// last try counts) while other processes took more than `NOISY_PCT` of a core during it,
/// as the echo section does.
pub(super) fn unless_noisy(
    opts: &Opts,
    label: &str,
    mut measure: impl FnMut() -> Result<(Rec, String), String>,
) -> Result<(Rec, String), String> {
    let mut attempt = 0;
    loop {
        wait_quiet(opts);
        let (rec, line) = measure()?;
        let noise = rec.get("others_cpu_pct").copied().unwrap_or(0.0);
        if noise <= NOISY_PCT || attempt == NOISY_RETRIES {
            return Ok((rec, line));
        }
        println!("  {label:<22} (other processes took {noise:.0}% of a core during that run: again)");
        attempt += 1;
    }
}

/// Adds a note for each row where the load generator ran its core (nearly) flat out against
/// some server: there the rps partly measure the tool, and the CPU per request decides.
pub(super) fn note_saturation(
    targets: &mut Targets,
    res: &Results,
    rows: &[String],
    servers: &[&str],
    tool: &str,
) {
    for row in rows {
        let pcts: Vec<String> = servers
            .iter()
            .filter_map(|s| Some((s, res.median(row, s, "client_cpu_pct")?)))
            .filter(|(_, pct)| *pct >= SATURATED_PCT)
            .map(|(s, pct)| format!("{pct:.0}% against {s}"))
            .collect();
        if !pcts.is_empty() {
            targets.note(format!(
                "{row}: {tool} used {} of its core: it is (near) saturated, so its rps are partly its own limit and \
                 the server CPU per request is the figure that decides",
                pcts.join(", ")
            ));
        }
    }
}

/// The tables both sections print after their own: the server's CPU per request (precise,
/// and from clock ticks as a cross-check), the server's and the tool's CPU use, and the noise.
pub(super) fn cpu_tables(
    res: &Results,
    title: &dyn Fn(&str) -> String,
    rows: &[String],
    servers: &[&str],
    tool: &str,
) {
    let others = &servers[1..];
    let per_req = "server CPU per request, µs";
    res.table(&title(&format!("{per_req} (schedstat)")), rows, servers, others, "srv_cpu_us", 3);
    res.table(
        &title(&format!("{per_req} (utime+stime, 10 ms ticks)")),
        rows,
        servers,
        others,
        "srv_tick_us",
        3,
    );
    res.table(&title("server CPU, % of its core"), rows, servers, &[], "srv_cpu_pct", 0);
    res.table(&title(&format!("{tool}'s CPU, % of its core")), rows, servers, &[], "client_cpu_pct", 0);
    let noise = "other processes' CPU during the run, % of one core (noise)";
    res.table(&title(noise), rows, servers, &[], "others_cpu_pct", 0);
}
