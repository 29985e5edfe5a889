//! The deterministic section, `det` (issue 13), printed first: what each echo round trip
//! costs the servers' user space, in counts that do not depend on the machine's load or
//! clock ticks. For mini, tokio, smol and the hand-written epoll loop, at 1 connection ×
//! 64 B, 50 × 512 B and 1000 × 512 B:
//!
//! - `instr/rt`: user-space instructions per round trip, cachegrind's `I refs` (the same
//!   count with or without its cache simulation, so one run gives all three figures);
//! - `D1 miss/rt`: L1 data-cache misses per round trip, reads and writes (`D1mr + D1mw`);
//! - `LL miss/rt`: last-level data misses per round trip (`DLmr + DLmw`).
//!
//! How: the server runs under `valgrind --tool=cachegrind --cache-sim=yes` on CPU 0, with
//! the cache geometry fixed (`CACHE`), not detected, so that the counts do not move when
//! the host does (valgrind here finds a 320 MB "L3" and simulates 256 MB direct-mapped).
//! `loadgen --hold --rounds-each K` on CPU 1 opens the N connections, does one round trip on
//! each, then on the go exactly K more on every connection (all at once, each in lock-step)
//! and says DONE with its connections still open. The harness then waits until the server
//! is idle (`wait_idle`), ends it with SIGTERM (cachegrind writes its counts on a fatal
//! signal too; mini on io_uring, which valgrind keeps from any signal while it waits in
//! `io_uring_enter`, is ended by closing its stdin instead: see `Server::end_by_eof`), and
//! only then lets loadgen close. Two runs with K = `short` and K = `long`
//! differ in nothing but (long − short) × N round trips: start-up, connection setup and the
//! first, cold round trips cancel in the difference, and teardown is counted by neither.
//!
//! The 1-connection cell pauses `THINK_MS` between round trips (loadgen's `--think`), as the
//! `syscalls` section does: a server slowed down 50 times by valgrind still finds its socket
//! empty and waits in epoll, as it does at full speed. The busier cells run flat out, as in
//! the echo section; there the batching of events per `epoll_wait` depends on timing (on
//! whether loadgen, sharing CPU 1 with whatever else runs, keeps every connection ready),
//! which is why each figure is the median of `REPS` pairs of runs, the widest spread shown.
//! The misses at 1000 connections move most, for all servers at once (on 2026-11-29 one
//! repetition of four gave mini 8.9 and tokio 5.6 D1 misses per round trip, the others about
//! 12 and 7.3); the ratio mini/tokio of a repetition held at 1.60-1.66. The section does not
//! wait for a quiet machine: it would gain little and spend the run's waiting budget, which
//! the timed sections after it need.
//!
//! `--only instr` is an alias of `det` (the section it replaced measured 1 × 64 B only).

use std::time::{Duration, Instant};

use mini_bench::report::{print_table_headed, Rec, Results, Row, Targets};

use super::server::{driver_of, runnable, MiniDriver};
use super::uring::URING_PAIRS;
use super::{cell_label, strs, HeldLoad, Opts, Server, THINK_MS};

/// The servers measured: `threads` is left out (1000 threads under valgrind, which runs one
/// at a time, measure valgrind's scheduler more than the server). `mini-uring` runs only
/// where valgrind lets mini set up io_uring (valgrind 3.19 knows `io_uring_setup`,
/// `_enter` and `_register`; the section checks once, under valgrind, and otherwise leaves
/// it out, saying why).
const SERVERS: [&str; 5] = ["mini", "mini-uring", "tokio", "smol", "epoll"];
const OTHERS: [&str; 3] = ["tokio", "smol", "epoll"];

/// Cachegrind's simulated caches, fixed: 32 KiB 8-way L1s and an 8 MiB 16-way last level,
/// 64-byte lines (a common server core's L1 and its share of a shared L3).
const CACHE: [&str; 3] = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64"];

/// Pairs of runs per (server, cell); the tables show their median.
const REPS: usize = 3;

/// How long the server may take to go idle after loadgen's DONE.
const IDLE_MAX_WAIT: Duration = Duration::from_secs(10);

/// One cell: `conns` connections × `len` bytes, `short` and `long` round trips on each.
#[derive(Clone, Copy)]
struct Cell {
    conns: usize,
    len: usize,
    short: u64,
    long: u64,
    /// Pause `THINK_MS` between round trips (one connection only).
    think: bool,
}

impl Cell {
    fn label(&self) -> String {
        cell_label((self.conns, self.len))
    }
}

fn cells(quick: bool) -> [Cell; 3] {
    // Differences of 5000 (paced: 1.8 s), 20,000 and 40,000 round trips: under valgrind
    // the servers do 10-40k round trips/s at 50 and 1000 connections, so each run costs
    // little more than valgrind's 1-2 s start, and the section about 2.5 minutes.
    let k = |full: u64, quick_: u64| if quick { quick_ } else { full };
    [
        Cell { conns: 1, len: 64, short: k(1000, 300), long: k(6000, 1300), think: true },
        Cell { conns: 50, len: 512, short: k(20, 10), long: k(420, 50), think: false },
        Cell { conns: 1000, len: 512, short: k(3, 2), long: k(43, 7), think: false },
    ]
}

/// Cachegrind's totals for one whole run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counts {
    instr: f64,
    d1_miss: f64,
    ll_miss: f64,
}

/// The totals in a cachegrind output file: its `events:` line names the columns of its
/// `summary:` line. `None` if either is missing or a needed event was not counted.
fn parse_cachegrind(text: &str) -> Option<Counts> {
    let line = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix));
    let events: Vec<&str> = line("events:")?.split_whitespace().collect();
    let summary: Vec<f64> =
        line("summary:")?.split_whitespace().map(|v| v.parse().ok()).collect::<Option<_>>()?;
    if events.len() != summary.len() {
        return None;
    }
    let get = |name: &str| events.iter().position(|e| *e == name).map(|i| summary[i]);
    Some(Counts {
        instr: get("Ir")?,
        d1_miss: get("D1mr")? + get("D1mw")?,
        ll_miss: get("DLmr")? + get("DLmw")?,
    })
}

/// Per round trip, from two runs that differ by `round_trips` round trips.
fn per_round_trip(short: Counts, long: Counts, round_trips: u64) -> Counts {
    let per = |a: f64, b: f64| (b - a) / round_trips as f64;
    Counts {
        instr: per(short.instr, long.instr),
        d1_miss: per(short.d1_miss, long.d1_miss),
        ll_miss: per(short.ll_miss, long.ll_miss),
    }
}

/// Total CPU time of a process's threads (ns, `/proc/PID/task/*/schedstat`) if the server
/// has nothing left to do (`idle_total`); `None` otherwise, or if `/proc` could not say.
fn idle_cpu_ns(pid: u32) -> Option<u64> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // The state follows the command name, which is in parentheses and may hold spaces.
        let state = stat.get(stat.rfind(')')? + 2..)?.chars().next()?;
        let wchan = std::fs::read_to_string(dir.join("wchan")).unwrap_or_default();
        let schedstat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
        threads.push((state, wchan, schedstat.split_whitespace().next()?.parse().ok()?));
    }
    idle_total(&threads)
}

/// From each thread's (state, wait channel, CPU ns): the total CPU time if all threads are
/// asleep (`S`) and one of them waits for events, else `None`. Under valgrind the threads
/// not running guest code sleep on its lock (a futex): asleep, but not idle, unless one
/// thread is in the guest's `epoll_wait` (smol's waits in its `async-io` thread), or, on
/// mini's io_uring driver, in `io_uring_enter` waiting for completions (`io_cqring_wait`).
fn idle_total(threads: &[(char, String, u64)]) -> Option<u64> {
    let asleep = threads.iter().all(|(state, _, _)| *state == 'S');
    let waiting = threads.iter().any(|(_, wchan, _)| {
        wchan.contains("epoll") || wchan.contains("ep_poll") || wchan.contains("io_cqring_wait")
    });
    (asleep && waiting).then(|| threads.iter().map(|(_, _, ns)| ns).sum())
}

/// Waits until the server is idle: after loadgen's last echo the server still finishes that
/// round trip (the read that finds nothing, re-arming, back to `epoll_wait`), under valgrind
/// for up to milliseconds; a SIGTERM that cut it short would count a random part of it.
/// Idle means `idle_cpu_ns` twice in a row, 5 ms apart, with no CPU time used between.
/// Returns false if that did not happen within `IDLE_MAX_WAIT`.
fn wait_idle(pid: u32) -> bool {
    let deadline = Instant::now() + IDLE_MAX_WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        let now = idle_cpu_ns(pid);
        if now.is_some() && now == last {
            return true;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// One run: server `name` under cachegrind, `rounds` round trips on each of the cell's
/// connections after the setup round trip; cachegrind's totals.
fn run_once(opts: &Opts, name: &str, cell: Cell, rounds: u64) -> Result<Counts, String> {
    let out_file = opts.tmp(&format!("cachegrind-{name}.out"));
    let err_file = opts.tmp(&format!("cachegrind-{name}.txt"));
    let out_arg = format!("--cachegrind-out-file={}", out_file.display());
    // mini-uring ends by the end of its stdin, not by SIGTERM (see `Server::end_by_eof`).
    let by_eof = driver_of(name) == Some(MiniDriver::IoUring);
    let args: &[&str] = if by_eof { &["--exit-on-eof"] } else { &[] };
    let server = Server::start_under(opts, name, &valgrind(&out_arg), args, Some(&err_file));
    server.driver_check()?;
    let mut args = strs(&[
        &server.addr,
        "--conns",
        &cell.conns.to_string(),
        "--len",
        &cell.len.to_string(),
        "--rounds-each",
        &rounds.to_string(),
    ]);
    if cell.think {
        args.extend(strs(&["--think", THINK_MS]));
    }
    let mut load = HeldLoad::start(opts, &args)?;
    let output = load.go()?;
    // Loadgen counts what it did; anything but the exact count would void the difference.
    let want = rounds * cell.conns as u64;
    let did = super::records(&output).first().and_then(|(r, _)| r.get("round_trips").copied());
    if did != Some(want as f64) {
        return Err(format!("loadgen did {did:?} round trips, not {want}: {}", output.trim()));
    }
    let idle = wait_idle(server.pid());
    let stopped = if by_eof { server.end_by_eof() } else { server.stop(libc::SIGTERM) };
    load.finish();
    stopped?;
    if !idle {
        println!("  det {name:<6} (the server did not go idle within {IDLE_MAX_WAIT:?}; counted anyway)");
    }
    let counts = std::fs::read_to_string(&out_file).ok().as_deref().and_then(parse_cachegrind);
    let _ = std::fs::remove_file(&out_file);
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    let _ = std::fs::remove_file(&err_file);
    counts.ok_or_else(|| {
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        format!(
            "no cachegrind counts; valgrind said: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
    })
}

/// The wrapper that runs a server under cachegrind, its counts written as `out_arg` says.
fn valgrind(out_arg: &str) -> Vec<&str> {
    let mut wrapper = vec!["valgrind", "--tool=cachegrind", "--cache-sim=yes", out_arg];
    wrapper.extend(CACHE);
    wrapper
}

/// Per round trip for one server and cell: the difference of a short and a long run.
fn measure(opts: &Opts, name: &str, cell: Cell) -> Result<Counts, String> {
    let short = run_once(opts, name, cell, cell.short)?;
    let long = run_once(opts, name, cell, cell.long)?;
    Ok(per_round_trip(short, long, (cell.long - cell.short) * cell.conns as u64))
}

/// The `det` section: tables, RESULT lines and issue 13's targets.
pub(super) fn run(opts: &Opts, targets: &mut Targets) {
    let cells = cells(opts.quick);
    let probe_out = opts.tmp("cachegrind-probe.out");
    let run_these = runnable(
        opts,
        "det",
        &SERVERS,
        &valgrind(&format!("--cachegrind-out-file={}", probe_out.display())),
        targets,
    );
    let _ = std::fs::remove_file(&probe_out);
    let mut res = Results::default();
    for rep in 0..REPS {
        for cell in cells {
            for name in SERVERS.into_iter().filter(|n| run_these.contains(n)) {
                // No wait_quiet: counts need no quiet machine, and the run's waiting budget
                // is left to the timed sections that follow.
                let label = cell.label();
                let rec = match measure(opts, name, cell) {
                    Ok(c) => {
                        println!(
                            "  #{rep} {name:<6} {label:<12} {:>8.1} instr/rt {:>7.3} D1 miss/rt {:>7.3} LL miss/rt",
                            c.instr, c.d1_miss, c.ll_miss
                        );
                        Some(Rec::from([
                            ("instr".to_string(), c.instr),
                            ("d1".to_string(), c.d1_miss),
                            ("ll".to_string(), c.ll_miss),
                        ]))
                    }
                    Err(e) => {
                        println!("  #{rep} {name:<6} {label:<12} FAILED: {e}");
                        None
                    }
                };
                res.push(&label, name, rec);
            }
        }
    }

    let rows: Vec<String> = cells.iter().map(Cell::label).collect();
    let how = |c: &Cell| format!("{}: {} vs {} round trips each", c.label(), c.short, c.long);
    let runs: Vec<String> = cells.iter().map(how).collect();
    let title = |what: &str| {
        format!(
            "det: {what} per echo round trip (valgrind --tool=cachegrind, user space only; median of {REPS} pairs of runs \
             differenced, {})",
            runs.join("; ")
        )
    };
    table(&res, &title("instructions (I refs)"), &rows, "instr", 0);
    table(&res, &title("L1 data misses (D1mr + D1mw)"), &rows, "d1", 2);
    table(&res, &title("last-level data misses (DLmr + DLmw)"), &rows, "ll", 3);
    spread(&res, &rows);

    println!();
    for cell in &cells {
        for name in SERVERS {
            let m = |key: &str| {
                res.median(&cell.label(), name, key).map_or("-".to_string(), |v| format!("{v:.3}"))
            };
            println!(
                "RESULT section=det server={name} conns={} len={} rounds_short={} rounds_long={} instr_per_rt={} \
                 d1_miss_per_rt={} ll_miss_per_rt={}",
                cell.conns,
                cell.len,
                cell.short,
                cell.long,
                m("instr"),
                m("d1"),
                m("ll")
            );
        }
    }

    let [one, fifty, thousand] = [&rows[0], &rows[1], &rows[2]];
    match res.median(one, "mini", "instr") {
        Some(n) => targets.check(
            n <= 300.0,
            format!("user-space instructions per round trip, {one} (mini): {n:.0} (target <= 300)"),
        ),
        None => {
            targets.check(false, format!("user-space instructions per round trip, {one} (mini): no data"))
        }
    }
    targets.ratio(
        format!("user-space instructions per round trip, {one}, vs tokio"),
        res.ratio(one, "tokio", "instr"),
        false,
        0.15,
    );
    targets.ratio(
        format!("L1 data misses per round trip, {thousand}, vs tokio (cachegrind)"),
        res.ratio(thousand, "tokio", "d1"),
        false,
        0.6,
    );
    for (row, other) in [(one, "epoll"), (fifty, "tokio"), (fifty, "epoll"), (thousand, "epoll")] {
        if let Some(r) = res.ratio(row, other, "instr") {
            targets.note(format!("user-space instructions per round trip, {row}, mini/{other}: {r:.2}"));
        }
    }
    for row in &rows {
        for (a, b) in URING_PAIRS {
            if let Some(r) = res.ratio_of(row, a, b, "instr") {
                targets.note(format!("user-space instructions per round trip, {row}, {a}/{b}: {r:.2}"));
            }
        }
    }
    if let Some(r) = res.ratio(one, "tokio", "instr") {
        // Issue 5's line, kept from the `instr` section this one replaced.
        targets.note(format!(
            "user-space instructions per round trip, {one}, mini/tokio: {r:.2} (valgrind; the tick-free \
             counterpart of the user CPU target, <= 0.50)"
        ));
    }
}

/// Below this many per round trip a count is difference noise (a cell whose working set
/// fits in the cache can come out at -0.003 misses): no ratio is shown against it.
const RATIO_FLOOR: f64 = 0.05;

/// The ratio columns: mini over each of `OTHERS`, then mini-uring over mini and tokio.
fn pairs() -> impl Iterator<Item = (&'static str, &'static str)> {
    OTHERS.iter().map(|o| ("mini", *o)).chain(URING_PAIRS)
}

/// Like `Results::table`, but a ratio a/b only where b's median reaches `RATIO_FLOOR`:
/// 0.44 misses against 0.000 is not "170 times", it is "tokio has none".
fn table(res: &Results, title: &str, rows: &[String], key: &str, decimals: usize) {
    let rows: Vec<Row> = rows
        .iter()
        .map(|row| Row {
            label: row.clone(),
            // Rounded to what is printed, so that difference noise shows as 0, not -0.
            values: SERVERS
                .iter()
                .map(|rt| {
                    res.median(row, rt, key).map(|v| {
                        if v.abs() < 0.5 * 0.1f64.powi(decimals as i32) {
                            0.0
                        } else {
                            v
                        }
                    })
                })
                .collect(),
            ratios: pairs()
                .map(|(a, b)| match res.median(row, b, key) {
                    Some(v) if v >= RATIO_FLOOR => res.ratio_of(row, a, b, key),
                    _ => None,
                })
                .collect(),
        })
        .collect();
    let headers: Vec<String> = pairs().map(|(a, b)| format!("{a}/{b}")).collect();
    print_table_headed(title, &SERVERS, &headers, &rows, decimals);
}

/// Prints, per figure, the widest spread (max - min) across the repetitions of any server
/// and cell, per round trip and relative to the median: how far "deterministic" held in
/// this run. Widest is by the absolute spread: near zero a relative one means nothing.
fn spread(res: &Results, rows: &[String]) {
    println!();
    for (key, what) in [("instr", "instructions"), ("d1", "D1 misses"), ("ll", "LL misses")] {
        let mut worst: Option<(f64, String)> = None;
        for row in rows {
            for name in SERVERS {
                let v: Vec<f64> = res.values(row, name, key).into_iter().flatten().collect();
                let Some(med) = res.median(row, name, key) else { continue };
                let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                if worst.as_ref().is_none_or(|(w, _)| hi - lo > *w) {
                    let rel = if med.abs() >= RATIO_FLOOR {
                        format!(", {:.1}% of the median", (hi - lo) / med.abs() * 100.0)
                    } else {
                        String::new()
                    };
                    worst =
                        Some((hi - lo, format!("{:.3}{rel}: {name} at {row}, {lo:.3} to {hi:.3}", hi - lo)));
                }
            }
        }
        if let Some((_, at)) = worst {
            println!("det: widest spread of {what} per round trip over {REPS} repetitions {at}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ends of a real cachegrind output file (valgrind 3.19, `--cache-sim=yes`).
    const OUT: &str = "desc: I1 cache:         32768 B, 64 B, 8-way associative
desc: D1 cache:         32768 B, 64 B, 8-way associative
desc: LL cache:         8388608 B, 64 B, 16-way associative
cmd: echo_mini 127.0.0.1:0
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw 
fn=main
0 10 1 1 1 1 0 3 0 0
summary: 17016226 2150 2026 3987838 168179 1896 6393814 75008 72021
";

    #[test]
    fn parses_the_summary_by_the_events_line() {
        let c = parse_cachegrind(OUT).unwrap();
        assert_eq!(c, Counts { instr: 17016226.0, d1_miss: 168179.0 + 75008.0, ll_miss: 1896.0 + 72021.0 });
    }

    #[test]
    fn follows_the_events_order() {
        let text = "events: D1mw Ir DLmw D1mr DLmr\nsummary: 1 2 3 4 5\n";
        assert_eq!(parse_cachegrind(text), Some(Counts { instr: 2.0, d1_miss: 5.0, ll_miss: 8.0 }));
    }

    #[test]
    fn rejects_incomplete_output() {
        // --cache-sim=no: instructions only, so no miss figures to give.
        assert_eq!(parse_cachegrind("events: Ir\nsummary: 100\n"), None);
        assert_eq!(parse_cachegrind("events: Ir D1mr D1mw DLmr DLmw\n"), None); // killed before the summary
        assert_eq!(parse_cachegrind("events: Ir D1mr D1mw DLmr DLmw\nsummary: 1 2 3\n"), None);
        assert_eq!(parse_cachegrind("events: Ir D1mr D1mw DLmr DLmw\nsummary: 1 2 x 4 5\n"), None);
    }

    #[test]
    fn idle_means_all_asleep_and_one_in_epoll() {
        let t = |state, wchan: &str, ns| (state, wchan.to_string(), ns);
        // smol idle: the main thread parked on a futex, async-io in epoll_wait.
        let smol = [t('S', "futex_do_wait", 30), t('S', "do_epoll_wait", 12)];
        assert_eq!(idle_total(&smol), Some(42));
        assert_eq!(idle_total(&[t('S', "ep_poll", 7)]), Some(7)); // older kernels' name
                                                                  // mini on io_uring, waiting in io_uring_enter for completions.
        assert_eq!(idle_total(&[t('S', "io_cqring_wait", 9)]), Some(9));
        assert_eq!(idle_total(&[t('R', "0", 7)]), None); // still running
        assert_eq!(idle_total(&[t('S', "futex_do_wait", 7), t('R', "0", 1)]), None);
        // Asleep, but in valgrind's lock hand-over or a blocking write, not waiting for events.
        assert_eq!(idle_total(&[t('S', "futex_do_wait", 7)]), None);
        assert_eq!(idle_total(&[]), None);
    }

    #[test]
    fn differences_per_round_trip() {
        let short = Counts { instr: 1000.0, d1_miss: 10.0, ll_miss: 1.0 };
        let long = Counts { instr: 3000.0, d1_miss: 30.0, ll_miss: 2.0 };
        assert_eq!(per_round_trip(short, long, 100), Counts { instr: 20.0, d1_miss: 0.2, ll_miss: 0.01 });
    }
}
