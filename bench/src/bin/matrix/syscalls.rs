//! The `syscalls` section: which syscalls each echo server makes per round trip, and how
//! many, counted two ways.
//!
//! - **1 connection, paced** (`strace -c -f -p PID`): 64 B, round trips `THINK_MS` apart,
//!   so that a server slowed down by strace still finds its socket empty and waits, as at
//!   full speed. Every server; names every syscall.
//! - **Under load** (`perf stat`, issue 14: "syscalls per round trip ≤ 1 under load"): 50
//!   and 1000 connections × 512 B flat out, `loadgen --hold --rounds-each K`. strace stops
//!   the server at every syscall, about ten times slower, and a slowed server finds more
//!   connections ready per wait: under load its count would flatter every server that
//!   batches. perf counts tracepoints instead, without stopping anyone: `raw_syscalls:
//!   sys_enter` (every syscall) and `syscalls:sys_enter_NAME` for each of `PERF_SYSCALLS`;
//!   what none of those names is shows as `other`. perf starts with its counters off
//!   (`-D -1`) and turns them on and off when told through a control FIFO, acknowledging
//!   each (`--control fifo:CTL,ACK`): exactly the round trips between loadgen's go and its
//!   DONE are counted, without connection setup or teardown. It needs perf and the rights
//!   to the tracepoints (root, or `perf_event_paranoid` ≤ -1); without them the table is
//!   skipped, saying why. `threads` is left out there: at 1000 connections it has 1000
//!   threads, and perf would need an fd per thread and event (19,000), while its count is
//!   a read and a write per round trip by construction.
//!
//! Both count between loadgen's READY and DONE: connection setup and teardown are not in it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mini_bench::report::{print_table, Row, Targets};

use super::server::{runnable, Server};
use super::{cell_label, strs, wait_quiet, HeldLoad, Opts, SERVERS, THINK_MS};

/// The servers counted under load (see the module docs for why not `threads`).
const LOADED_SERVERS: [&str; 5] = ["mini", "mini-uring", "tokio", "smol", "epoll"];

/// The syscalls perf counts one by one: every one the echo servers make in a round trip,
/// on either driver (the rest of `raw_syscalls:sys_enter` shows as `other`).
const PERF_SYSCALLS: [&str; 18] = [
    "read",
    "write",
    "readv",
    "writev",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "io_uring_enter",
    "accept4",
    "futex",
    "sched_yield",
    "ioctl",
    "getsockopt",
];

/// How long perf may take to acknowledge a command on its control FIFO.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Syscall name → calls per round trip, for one server.
type PerRt = Vec<(String, f64)>;

/// loadgen's arguments for a traced server (strace): one connection, 64 B, `rounds` round
/// trips `THINK_MS` apart.
fn paced_load_args(addr: &str, rounds: u64) -> Vec<String> {
    let rounds = rounds.to_string();
    strs(&[addr, "--conns", "1", "--len", "64", "--rounds", &rounds, "--think", THINK_MS])
}

/// The per-syscall counts in `strace -c` output, divided by `rounds`. Lines: "% time
/// seconds usecs/call calls [errors] syscall"; the header, rules and total are skipped.
fn parse_strace_c(text: &str, rounds: u64) -> PerRt {
    let mut per_rt = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if !(5..=6).contains(&f.len()) || f[0].parse::<f64>().is_err() || f[f.len() - 1] == "total" {
            continue;
        }
        if let Ok(calls) = f[3].parse::<f64>() {
            per_rt.push((f[f.len() - 1].to_string(), calls / rounds as f64));
        }
    }
    per_rt
}

/// Syscall name → calls per round trip, for one server, counted by `strace -c -f` between
/// loadgen's READY and DONE (so without connection setup or teardown).
fn strace_one(opts: &Opts, name: &str, rounds: u64) -> Option<PerRt> {
    let server = Server::start(opts, name);
    server.driver_check().map_err(|e| println!("  strace {name:<10} {e}")).ok()?;
    let mut load = HeldLoad::start(opts, &paced_load_args(&server.addr, rounds))
        .map_err(|e| println!("  strace {name:<10} {e}"))
        .ok()?;
    let out_file = opts.tmp(&format!("strace-{name}.txt"));
    let mut strace = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&out_file)
        .args(["-p", &server.pid().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| println!("  strace: {e} (apt-get install -y strace)"))
        .ok()?;
    // Go once strace says "Process N attached"; drain the rest of its stderr meanwhile.
    let mut err = BufReader::new(strace.stderr.take()?);
    let mut line = String::new();
    while err.read_line(&mut line).ok()? > 0 && !line.contains("attached") {
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let output = load.go().map_err(|e| println!("  strace {name:<10} {e}")).ok()?;
    for l in output.lines().filter(|l| !l.starts_with("RESULT")) {
        println!("  strace {name:<10} {l}");
    }
    // SAFETY: kill on our own child's pid, which we have not reaped yet.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    let _ = strace.wait();
    load.finish();
    let text = std::fs::read_to_string(&out_file).ok()?;
    let _ = std::fs::remove_file(&out_file);
    Some(parse_strace_c(&text, rounds))
}

/// Each event's count in `perf stat -x,` output (`COUNT,UNIT,EVENT,...`): `<not counted>`
/// (the counter never ran: the process made no such call) is 0; `<not supported>` is `None`.
fn parse_perf_csv(text: &str) -> Vec<(String, Option<f64>)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let event = f.get(2).filter(|e| e.contains(':'))?;
            let count = match f[0].trim() {
                "<not counted>" => Some(0.0),
                c => c.parse().ok(),
            };
            Some((event.to_string(), count))
        })
        .collect()
}

/// Per round trip from perf's counts: each of `PERF_SYSCALLS` made at least once, then
/// `other` (all syscalls less those, if any). An error if the total is missing.
fn perf_per_rt(counts: &[(String, Option<f64>)], round_trips: u64) -> Result<PerRt, String> {
    let get = |event: &str| counts.iter().find(|(e, _)| e == event).and_then(|(_, c)| *c);
    let total = get("raw_syscalls:sys_enter").ok_or("perf gave no count of raw_syscalls:sys_enter")?;
    let rt = round_trips as f64;
    let mut per_rt: PerRt = PERF_SYSCALLS
        .iter()
        .filter_map(|n| Some((n.to_string(), get(&format!("syscalls:sys_enter_{n}"))?)))
        .filter(|(_, c)| *c > 0.0)
        .map(|(n, c)| (n, c / rt))
        .collect();
    let named: f64 = per_rt.iter().map(|(_, v)| v * rt).sum();
    if total > named {
        per_rt.push(("other".to_string(), (total - named) / rt));
    }
    Ok(per_rt)
}

/// A `perf stat` attached to a process, its counters off until [`enable`](Self::enable),
/// driven through two FIFOs; killed on drop.
struct PerfStat {
    child: Child,
    ctl: File,
    ack: File,
    out: PathBuf,
    fifos: [PathBuf; 2],
}

impl PerfStat {
    /// Attaches `perf stat` to `pid`, counting `events`, all off.
    fn attach(opts: &Opts, pid: u32, events: &[String]) -> Result<PerfStat, String> {
        let fifos = [opts.tmp("perf-ctl"), opts.tmp("perf-ack")];
        for f in &fifos {
            let _ = std::fs::remove_file(f);
            let path = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
            // SAFETY: mkfifo reads the NUL-terminated path only.
            if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
                return Err(format!("mkfifo {}: {}", f.display(), std::io::Error::last_os_error()));
            }
        }
        // Read and write: opening a FIFO so does not block on Linux, and perf, which opens
        // its ack FIFO write-only and non-blocking, needs a reader there already.
        let open = |f: &PathBuf| {
            File::options().read(true).write(true).open(f).map_err(|e| format!("open {}: {e}", f.display()))
        };
        let (ctl, ack) = (open(&fifos[0])?, open(&fifos[1])?);
        let out = opts.tmp("perf-stat.csv");
        let control = format!("fifo:{},{}", fifos[0].display(), fifos[1].display());
        let child = Command::new("perf")
            .args(["stat", "-x,", "-D", "-1", "--control", &control, "-e", &events.join(","), "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start perf: {e}"))?;
        Ok(PerfStat { child, ctl, ack, out, fifos })
    }

    /// Sends `command` (`enable`, `disable`) and waits for perf's `ack`.
    fn command(&mut self, command: &str) -> Result<(), String> {
        writeln!(self.ctl, "{command}").map_err(|e| format!("perf control: {e}"))?;
        let mut pfd = libc::pollfd { fd: self.ack.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll reads and writes the one local pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, ACK_TIMEOUT.as_millis() as i32) };
        let mut buf = [0u8; 64];
        let n = if ready == 1 { self.ack.read(&mut buf).unwrap_or(0) } else { 0 };
        if String::from_utf8_lossy(&buf[..n]).contains("ack") {
            return Ok(());
        }
        let _ = self.child.kill();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        Err(format!("perf did not acknowledge {command:?} within {ACK_TIMEOUT:?}: {}", err.trim()))
    }

    /// Stops perf (SIGINT makes it write its counts) and returns its output file's text.
    fn finish(mut self) -> Result<String, String> {
        // SAFETY: kill on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        std::fs::read_to_string(&self.out).map_err(|e| format!("read perf's output: {e}"))
    }
}

impl Drop for PerfStat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for f in self.fifos.iter().chain([&self.out]) {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Whether `perf stat` can count syscall tracepoints here; if not, what it said.
fn perf_works() -> Result<(), String> {
    let out = Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"])
        .output()
        .map_err(|e| format!("perf: {e} (apt-get install -y linux-perf)"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && err.contains("raw_syscalls:sys_enter") && !err.contains("<not supported>") {
        return Ok(());
    }
    Err(format!("perf stat cannot count syscalls here: {}", err.lines().last().unwrap_or("").trim()))
}

/// Syscalls per round trip of server `name` at `conns` × `len`, `each` round trips on
/// every connection, counted by perf (see the module docs).
fn perf_one(opts: &Opts, name: &str, (conns, len): (usize, usize), each: u64) -> Result<PerRt, String> {
    let server = Server::start(opts, name);
    server.driver_check()?;
    let args = strs(&[
        &server.addr,
        "--conns",
        &conns.to_string(),
        "--len",
        &len.to_string(),
        "--rounds-each",
        &each.to_string(),
    ]);
    let mut load = HeldLoad::start(opts, &args)?;
    let events: Vec<String> = std::iter::once("raw_syscalls:sys_enter".to_string())
        .chain(PERF_SYSCALLS.iter().map(|n| format!("syscalls:sys_enter_{n}")))
        .collect();
    let mut perf = PerfStat::attach(opts, server.pid(), &events)?;
    perf.command("enable")?;
    let output = load.go()?;
    perf.command("disable")?;
    let text = perf.finish()?;
    load.finish();
    let want = each * conns as u64;
    let did = super::records(&output).first().and_then(|(r, _)| r.get("round_trips").copied());
    if did != Some(want as f64) {
        return Err(format!("loadgen did {did:?} round trips, not {want}: {}", output.trim()));
    }
    perf_per_rt(&parse_perf_csv(&text), want)
}

/// Prints one table of syscalls per round trip (a row per syscall any server made, then
/// the total) and returns the totals, one per server (`None` where it has no data).
fn per_rt_table(title: &str, servers: &[&str], all: &[Option<PerRt>]) -> Vec<Option<f64>> {
    let get =
        |i: usize, n: &str| all[i].as_ref().map(|m| m.iter().find(|(k, _)| k == n).map_or(0.0, |(_, v)| *v));
    let mut names: Vec<String> =
        all.iter().flatten().flat_map(|m| m.iter().map(|(k, _)| k.clone())).collect();
    names.sort_by_key(|n| (n == "other", n.clone())); // `other` last
    names.dedup();
    let mut rows: Vec<Row> = names
        .iter()
        .map(|n| Row {
            label: n.clone(),
            values: (0..servers.len()).map(|i| get(i, n)).collect(),
            ratios: vec![],
        })
        .collect();
    let totals: Vec<Option<f64>> =
        all.iter().map(|m| m.as_ref().map(|m| m.iter().map(|(_, v)| v).sum())).collect();
    rows.push(Row { label: "total".into(), values: totals.clone(), ratios: vec![] });
    print_table(title, servers, &[], &rows, 3);
    totals
}

/// The value of syscall `name` per round trip for `server` (0 if it made none).
fn count(servers: &[&str], all: &[Option<PerRt>], server: &str, name: &str) -> Option<f64> {
    let i = servers.iter().position(|s| *s == server)?;
    all[i].as_ref().map(|m| m.iter().find(|(k, _)| k == name).map_or(0.0, |(_, v)| *v))
}

/// The `syscalls` section: strace at 1 connection, then perf under load.
pub(super) fn run(opts: &Opts, targets: &mut Targets) {
    let run_these = runnable(opts, "syscalls", &SERVERS, &[], targets);
    let rounds = if opts.quick { 2000 } else { 10_000 };
    let all: Vec<Option<PerRt>> = SERVERS
        .iter()
        .map(|name| {
            if !run_these.contains(name) {
                return None;
            }
            wait_quiet(opts);
            strace_one(opts, name, rounds)
        })
        .collect();
    let title = format!(
        "syscalls per echo round trip (strace -c -f; 1 connection, 64 B, {rounds} round trips {THINK_MS} ms apart; \
         setup and teardown not counted)"
    );
    let totals = per_rt_table(&title, &SERVERS, &all);
    match totals[0] {
        Some(t) => {
            targets.check(t <= 3.0, format!("syscalls per echo round trip (mini): {t:.3} (target <= 3)"))
        }
        None => targets.check(false, "syscalls per echo round trip (mini): no data".into()),
    }
    if let Some(n) = count(&SERVERS, &all, "mini", "epoll_ctl") {
        targets.check(n == 0.0, format!("epoll_ctl per echo round trip (mini): {n:.3} (target: none)"));
    }
    if let Some(t) = totals[SERVERS.iter().position(|s| *s == "mini-uring").expect("listed")] {
        targets.note(format!(
            "syscalls per echo round trip, 1 connection (mini-uring, strace): {t:.3} (issue 14's hand-written \
             io_uring loop: 2; mini on epoll: 3)"
        ));
    }
    loaded(opts, targets, &run_these);
}

/// The under-load half: perf, 50 and 1000 connections × 512 B, and issue 14's target.
fn loaded(opts: &Opts, targets: &mut Targets, run_these: &[&str]) {
    if let Err(e) = perf_works() {
        println!("  syscalls under load skipped: {e}");
        targets.check(false, format!("syscalls per round trip under load (mini-uring): no data; {e}"));
        return;
    }
    // About 20,000 and 40,000 round trips: half a second to a second each at full speed.
    let cells: [((usize, usize), u64); 2] = if opts.quick {
        [((50, 512), 100), ((1000, 512), 10)]
    } else {
        [((50, 512), 400), ((1000, 512), 40)]
    };
    for (cell, each) in cells {
        let label = cell_label(cell);
        let all: Vec<Option<PerRt>> = LOADED_SERVERS
            .iter()
            .map(|name| {
                if !run_these.contains(name) {
                    return None;
                }
                wait_quiet(opts);
                perf_one(opts, name, cell, each).map_err(|e| println!("  perf {name:<10} {label}: {e}")).ok()
            })
            .collect();
        let title = format!(
            "syscalls per echo round trip under load (perf stat on syscall tracepoints; {label}, {each} round trips \
             on each connection, flat out; setup and teardown not counted)"
        );
        let totals = per_rt_table(&title, &LOADED_SERVERS, &all);
        let total = |s: &str| totals[LOADED_SERVERS.iter().position(|x| *x == s).expect("listed")];
        match total("mini-uring") {
            Some(t) => {
                let enters = count(&LOADED_SERVERS, &all, "mini-uring", "io_uring_enter").unwrap_or(0.0);
                targets.check(
                    t <= 1.0,
                    format!(
                        "syscalls per echo round trip under load, {label} (mini-uring): {t:.3}, of which \
                         io_uring_enter {enters:.3} (target <= 1)"
                    ),
                )
            }
            None => targets.check(
                false,
                format!("syscalls per echo round trip under load, {label} (mini-uring): no data"),
            ),
        }
        let others: Vec<String> =
            ["mini", "tokio", "epoll"].iter().filter_map(|s| Some(format!("{s} {:.3}", total(s)?))).collect();
        if !others.is_empty() {
            targets.note(format!("syscalls per echo round trip under load, {label}: {}", others.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `perf stat -x, -o FILE` as perf 6.1 writes it, the control messages included.
    const PERF_OUT: &str = "# started on Sun Nov 29 14:07:15 2026

1840,,raw_syscalls:sys_enter,10375899,100.00,,
920,,syscalls:sys_enter_io_uring_enter,10375899,100.00,,
<not counted>,,syscalls:sys_enter_epoll_wait,0,100.00,,
<not supported>,,syscalls:sys_enter_epoll_pwait2,0,100.00,,
20,,syscalls:sys_enter_futex,10375899,100.00,,Events disabled
Events enabled
Events disabled
";

    #[test]
    fn parses_perf_counts_by_event() {
        let c = parse_perf_csv(PERF_OUT);
        assert_eq!(
            c,
            vec![
                ("raw_syscalls:sys_enter".to_string(), Some(1840.0)),
                ("syscalls:sys_enter_io_uring_enter".to_string(), Some(920.0)),
                ("syscalls:sys_enter_epoll_wait".to_string(), Some(0.0)),
                ("syscalls:sys_enter_epoll_pwait2".to_string(), None),
                ("syscalls:sys_enter_futex".to_string(), Some(20.0)),
            ]
        );
    }

    #[test]
    fn perf_counts_per_round_trip_with_the_rest_as_other() {
        let per_rt = perf_per_rt(&parse_perf_csv(PERF_OUT), 1000).unwrap();
        // Made-none syscalls are left out; 1840 - 920 - 20 = 900 that no listed name covers.
        assert_eq!(
            per_rt,
            vec![
                ("io_uring_enter".to_string(), 0.92),
                ("futex".to_string(), 0.02),
                ("other".to_string(), 0.9)
            ]
        );
        let all_named = "4,,raw_syscalls:sys_enter,1,100.00,,\n4,,syscalls:sys_enter_read,1,100.00,,\n";
        assert_eq!(perf_per_rt(&parse_perf_csv(all_named), 2).unwrap(), vec![("read".to_string(), 2.0)]);
        assert!(perf_per_rt(&parse_perf_csv("920,,syscalls:sys_enter_read,1,,\n"), 10).is_err());
    }

    #[test]
    fn parses_strace_c_per_round_trip() {
        let text = "% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.006000           3      2000           io_uring_enter
 40.00    0.004000           2      1000       500 recvfrom
------ ----------- ----------- --------- --------- ----------------
100.00    0.010000           3      3000       500 total
";
        assert_eq!(
            parse_strace_c(text, 1000),
            vec![("io_uring_enter".to_string(), 2.0), ("recvfrom".to_string(), 1.0)]
        );
    }
}
