//! The outside world of the `redis` and `http` sections of `matrix`: running the tools people
//! use (redis-benchmark, wrk) under a time limit with their own CPU time, the CPU time of a
//! server to the nanosecond, and parsing what the tools print.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where `name` is on `PATH`, if it is.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// A free TCP port on 127.0.0.1, for a server that must be told its port (redis-server
/// cannot announce one the kernel chose). Another process could take it before the server
/// binds it; on a bench machine that does not happen, and the server would then fail loudly.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU time a process has used so far, all of its live threads together, in nanoseconds:
/// the first field of `/proc/PID/task/TID/schedstat` (the scheduler's `sum_exec_runtime`).
///
/// `utime + stime` in `/proc/PID/stat` is the same sum rounded down to clock ticks (10 ms):
/// a pipelined redis-benchmark test lasts a few tenths of a second, a few dozen ticks, so
/// the ticks alone would only be good to several percent. Threads that have exited are not
/// counted here (they are in `/proc/PID/stat`); `matrix` shows both so that a gap shows.
pub fn cpu_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue; // the thread ended between read_dir and here
        };
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other(format!("bad schedstat of {pid}: {stat:?}")))?;
    }
    Ok(total)
}

/// What a finished tool said and what it cost.
#[derive(Debug)]
pub struct Finished {
    /// Its standard output, lossily decoded.
    pub stdout: String,
    /// Its standard error, lossily decoded.
    pub stderr: String,
    /// Its exit status, `None` if a signal ended it.
    pub code: Option<i32>,
    /// Whether it ran past its limit and was killed.
    pub timed_out: bool,
    /// Its user + system CPU time (from `wait4`'s `rusage`).
    pub cpu: Duration,
    /// Wall-clock time from spawn to exit.
    pub wall: Duration,
}

impl Finished {
    /// Its CPU use while it ran, in % of one core.
    pub fn cpu_pct(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9) * 100.0
    }

    /// `Ok` if it exited with status 0, else a one-line reason with the end of its stderr.
    pub fn check(&self) -> Result<(), String> {
        if self.code == Some(0) && !self.timed_out {
            return Ok(());
        }
        let why = if self.timed_out {
            "ran past its time limit and was killed".to_string()
        } else {
            match self.code {
                Some(c) => format!("exited with status {c}"),
                None => "was killed by a signal".to_string(),
            }
        };
        let tail: Vec<&str> = self.stderr.lines().rev().take(3).collect();
        Err(format!("{why}; stderr: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / ")))
    }
}

/// Runs `cmd` to its end, or kills it (SIGKILL) after `limit`: a tool facing a server that
/// stopped answering (redis-benchmark waits forever) must not hang the run.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> io::Result<Finished> {
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let (done, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || match done_rx.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // SAFETY: kill has no memory effects. The pid is still ours: the main thread
            // reaps it only after this thread has been joined.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        }
        _ => false,
    });
    // Wait for the exit without reaping (WNOWAIT), so that the pid cannot be reused while
    // the watchdog may still signal it; then stop the watchdog, then reap with its rusage.
    loop {
        // SAFETY: siginfo_t is plain data that waitid fills in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits on our own child; writes only `info`.
        let r =
            unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    drop(done);
    let timed_out = watchdog.join().expect("watchdog thread");
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own child, which has exited; writes only `status` and `usage`.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        return Err(io::Error::last_os_error());
    }
    let wall = start.elapsed();
    drop(child); // reaped above: std's Child neither waits nor kills on drop
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Ok(Finished {
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        timed_out,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        wall,
    })
}

/// One test's line of `redis-benchmark --csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisBenchRow {
    /// The test as redis-benchmark names it: `PING_INLINE`, `PING_MBULK`, `SET`, `GET`, ...
    pub test: String,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// Parses `redis-benchmark --csv` output (redis 6.2 and later: a header line, then
/// `"TEST","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
/// "p99_latency_ms","max_latency_ms"`). Other lines (warnings) are skipped; a row that does
/// not parse, or no row at all, is an error.
pub fn parse_redis_benchmark_csv(text: &str) -> Result<Vec<RedisBenchRow>, String> {
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with('"')) {
        let fields: Vec<String> = line.split(',').map(|f| f.trim().trim_matches('"').to_string()).collect();
        let Some(names) = &header else {
            if fields.first().map(String::as_str) != Some("test") {
                return Err(format!("redis-benchmark --csv: expected the header line, got {line:?}"));
            }
            header = Some(fields);
            continue;
        };
        let get = |name: &str| -> Result<f64, String> {
            let i = names.iter().position(|n| n == name).ok_or_else(|| format!("no column {name:?}"))?;
            let v = fields.get(i).ok_or_else(|| format!("no {name} in {line:?}"))?;
            v.parse().map_err(|_| format!("{name} = {v:?} in {line:?} is not a number"))
        };
        rows.push(RedisBenchRow {
            test: fields[0].clone(),
            rps: get("rps")?,
            p50_ms: get("p50_latency_ms")?,
            p99_ms: get("p99_latency_ms")?,
        });
    }
    if rows.is_empty() {
        return Err(format!("redis-benchmark --csv: no result in {:?}", text.trim()));
    }
    Ok(rows)
}

/// What `wrk --latency` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkReport {
    /// Requests completed (`N requests in T`).
    pub requests: u64,
    /// Requests per second (`Requests/sec:`).
    pub rps: f64,
    /// Median and 99th percentile latency, µs (`Latency Distribution`).
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Connect, read, write errors and timeouts together (`Socket errors:`; 0 when absent).
    pub socket_errors: u64,
    /// Responses that were not 2xx or 3xx (`Non-2xx or 3xx responses:`; 0 when absent).
    pub non_2xx: u64,
}

/// A wrk duration such as `388.00us`, `10.99ms`, `1.02s` or `1.50m`, in µs.
fn wrk_time_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(num.parse::<f64>().ok()? * scale)
}

/// Parses the output of `wrk --latency`; a missing rate, request count or percentile is an
/// error (wrk prints them whenever it ran).
pub fn parse_wrk(text: &str) -> Result<WrkReport, String> {
    let mut requests = None;
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let (mut socket_errors, mut non_2xx) = (0, 0);
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if words.len() >= 3 && words[1] == "requests" && words[2] == "in" {
            requests = words[0].parse().ok();
        } else if words.len() == 2 && words[0] == "50%" {
            p50 = wrk_time_us(words[1]);
        } else if words.len() == 2 && words[0] == "99%" {
            p99 = wrk_time_us(words[1]);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors =
                v.split(',').filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok()).sum();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().map_err(|_| format!("wrk: bad line {line:?}"))?;
        }
    }
    let missing = |what: &str| format!("wrk: no {what} in its output: {:?}", text.trim());
    Ok(WrkReport {
        requests: requests.ok_or_else(|| missing("request count"))?,
        rps: rps.ok_or_else(|| missing("Requests/sec"))?,
        p50_us: p50.ok_or_else(|| missing("50% latency (was --latency given?)"))?,
        p99_us: p99.ok_or_else(|| missing("99% latency (was --latency given?)"))?,
        socket_errors,
        non_2xx,
    })
}

/// Whether `addr` accepts a TCP connection within `timeout`.
pub fn accepts(addr: SocketAddr, timeout: Duration) -> bool {
    std::net::TcpStream::connect_timeout(&addr, timeout).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real output of redis-benchmark 7.0.15 (`-t ping,set,get -c 50 -n 20000 --csv`).
    const REDIS_CSV: &str = r#""test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"PING_INLINE","89285.71","0.288","0.112","0.279","0.359","0.447","5.431"
"SET","88888.89","0.295","0.144","0.279","0.383","0.495","4.783"
"#;

    #[test]
    fn redis_csv_rows_by_header_name() {
        let rows = parse_redis_benchmark_csv(REDIS_CSV).unwrap();
        assert_eq!(
            rows,
            vec![
                RedisBenchRow { test: "PING_INLINE".into(), rps: 89285.71, p50_ms: 0.279, p99_ms: 0.447 },
                RedisBenchRow { test: "SET".into(), rps: 88888.89, p50_ms: 0.279, p99_ms: 0.495 },
            ]
        );
    }

    #[test]
    fn redis_csv_skips_warnings_and_rejects_nothing_or_garbage() {
        let warned = format!("WARNING: Could not fetch server CONFIG\n{REDIS_CSV}");
        assert_eq!(parse_redis_benchmark_csv(&warned).unwrap().len(), 2);
        assert!(parse_redis_benchmark_csv("").is_err());
        assert!(parse_redis_benchmark_csv("WARNING: Could not fetch server CONFIG\n").is_err());
        let header = REDIS_CSV.lines().next().unwrap();
        assert!(parse_redis_benchmark_csv(header).is_err(), "a header alone is no result");
        let bad = format!("{header}\n\"SET\",\"fast\",\"0.1\",\"0.1\",\"0.1\",\"0.1\",\"0.1\",\"0.1\"\n");
        assert!(parse_redis_benchmark_csv(&bad).unwrap_err().contains("not a number"));
        assert!(parse_redis_benchmark_csv("\"SET\",\"1\"\n").unwrap_err().contains("header"));
    }

    // Real output of wrk 4.1.0 (`wrk -t1 -c50 -d3s --latency`), with the error lines wrk
    // prints when there were errors added.
    const WRK: &str = "Running 3s test @ http://127.0.0.1:7002/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.86ms    2.59ms  16.25ms   85.09%
    Req/Sec    50.15k    12.68k  108.46k    93.33%
  Latency Distribution
     50%  388.00us
     75%    2.88ms
     90%    6.11ms
     99%   10.99ms
  150037 requests in 3.01s, 16.60MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  49874.00
Transfer/sec:      5.52MB
";

    #[test]
    fn wrk_report() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests, 150037);
        assert_eq!(r.rps, 49874.0);
        assert!((r.p50_us - 388.0).abs() < 1e-9, "{}", r.p50_us);
        assert!((r.p99_us - 10990.0).abs() < 1e-6, "{}", r.p99_us);
        assert_eq!((r.socket_errors, r.non_2xx), (3, 5));
    }

    #[test]
    fn wrk_without_errors_or_latency() {
        let clean: String = WRK
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .map(|l| l.to_string() + "\n")
            .collect();
        let r = parse_wrk(&clean).unwrap();
        assert_eq!((r.socket_errors, r.non_2xx), (0, 0));
        let no_latency: String = WRK
            .lines()
            .filter(|l| !l.contains('%') || l.contains("Stdev"))
            .map(|l| l.to_string() + "\n")
            .collect();
        assert!(parse_wrk(&no_latency).unwrap_err().contains("--latency"));
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn wrk_times() {
        assert_eq!(wrk_time_us("388.00us"), Some(388.0));
        assert_eq!(wrk_time_us("1.50s"), Some(1.5e6));
        assert_eq!(wrk_time_us("2.00m"), Some(120e6));
        assert_eq!(wrk_time_us("5.00xs"), None);
        assert_eq!(wrk_time_us("ms"), None);
    }

    #[test]
    fn run_limited_reports_output_status_and_cpu() {
        let f = run_limited(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            (f.stdout.as_str(), f.stderr.as_str(), f.code, f.timed_out),
            ("out\n", "err\n", Some(3), false)
        );
        assert!(f.check().unwrap_err().contains("status 3"));
        // A busy loop of ~0.3 s of CPU shows up in its rusage.
        let busy = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";
        let f = run_limited(Command::new("sh").args(["-c", busy]), Duration::from_secs(30)).unwrap();
        f.check().unwrap();
        assert!(f.cpu > Duration::from_millis(20), "cpu {:?}", f.cpu);
        assert!(f.cpu_pct() > 10.0, "{}", f.cpu_pct());
    }

    #[test]
    fn run_limited_kills_a_tool_that_hangs() {
        let f = run_limited(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap();
        assert!(f.timed_out);
        assert_eq!(f.code, None);
        assert!(f.wall < Duration::from_secs(10), "{:?}", f.wall);
        assert!(f.check().unwrap_err().contains("time limit"));
    }

    /// This thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`).
    fn thread_cpu() -> Duration {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: writes only `ts`.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    #[test]
    fn cpu_ns_counts_every_thread() {
        let pid = std::process::id();
        let before = cpu_ns(pid).unwrap();
        let (spun, spun_rx) = mpsc::channel();
        let (exit, exit_rx) = mpsc::channel::<()>();
        // A second thread burns 100 ms of its own CPU, then stays alive until measured:
        // reading only the main thread's schedstat would miss it.
        let spinner = std::thread::spawn(move || {
            while thread_cpu() < Duration::from_millis(100) {
                std::hint::black_box(0u64);
            }
            spun.send(()).unwrap();
            let _ = exit_rx.recv_timeout(Duration::from_secs(10));
        });
        spun_rx.recv_timeout(Duration::from_secs(20)).expect("spinner done");
        let grown = Duration::from_nanos(cpu_ns(pid).unwrap() - before);
        exit.send(()).unwrap();
        spinner.join().unwrap();
        // The scheduler folds a running thread's time in at ticks and switches: allow one tick.
        assert!(grown >= Duration::from_millis(85), "counted {grown:?} of the spinner's 100 ms");
    }
}
