//! Helpers shared by the benchmark binaries in `src/bin/`: the servers' command line and
//! announcement, reading another process's CPU time and memory from `/proc`, a bounded
//! latency histogram, a few raw socket calls, and the `RESULT key=value` line format that
//! `matrix` parses.
//!
//! This crate is a benchmark harness, not part of mini: it calls `libc` directly wherever it
//! needs to, and keeps error handling to "fail loudly".

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::FromRawFd;
use std::time::Duration;

pub mod external;
pub mod histogram;
pub mod report;

/// The listen address a server binary was given as its first argument (default
/// `127.0.0.1:0`: any free port).
pub fn listen_addr_arg() -> SocketAddr {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    arg.parse().unwrap_or_else(|e| panic!("listen address {arg:?}: {e}"))
}

/// Prints `listening on ADDR`, the line `matrix` waits for before it starts the load.
pub fn announce(addr: SocketAddr) {
    println!("listening on {addr}");
}

/// Turns a libc return value of -1 into the current `errno` as an `io::Error`.
pub fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A TCP listener with `SO_REUSEADDR` and a backlog of 1024 (what mini and tokio use; std's
/// `TcpListener::bind` uses 128, which a burst of 1000 connects can overflow). Blocking mode.
pub fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "IPv4 addresses only"));
    };
    // SAFETY: plain socket calls on a fresh fd that `TcpListener` takes ownership of at once.
    unsafe {
        let fd = cvt(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?;
        let listener = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        cvt(libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of_val(&one) as libc::socklen_t,
        ))?;
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
            sin_zero: [0; 8],
        };
        cvt(libc::bind(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sin) as libc::socklen_t,
        ))?;
        cvt(libc::listen(fd, 1024))?;
        Ok(listener)
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (20000 on the bench
/// machine), so that a client can hold 10k connections.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write and read the local struct only.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

/// Pins the calling thread to one CPU (`sched_setaffinity`); ignored where that CPU does
/// not exist.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays inside it for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// Kernel clock ticks per second, the unit of `utime`/`stime` in `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as u64 }
}

/// CPU time a process has used so far, in clock ticks: `(utime, stime)` from
/// `/proc/PID/stat` (fields 14 and 15; these sum over all of its threads).
pub fn cpu_ticks(pid: u32) -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past it.
    let rest = &stat[stat.rfind(')').ok_or_else(|| io::Error::other("bad /proc stat"))? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let parse = |i: usize| {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| io::Error::other("bad /proc stat"))
    };
    Ok((parse(14 - 3)?, parse(15 - 3)?))
}

/// Busy clock ticks of the whole machine so far, all CPUs together (the first line of
/// `/proc/stat`, less idle and iowait).
pub fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8) // user nice system idle iowait irq softirq steal
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    ticks.iter().sum::<u64>() - ticks.get(3).unwrap_or(&0) - ticks.get(4).unwrap_or(&0)
}

/// A process's resident set size in KiB (`VmRSS` from `/proc/PID/status`).
pub fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS in /proc status"))
}

/// Sets `TCP_NODELAY` on a raw socket fd.
pub fn set_nodelay(fd: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `one` only; a bad fd is reported as an error.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of_val(&one) as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Median of a non-empty slice (mean of the middle two for an even length).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    assert!(n > 0, "median of nothing");
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Milliseconds in a duration, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Parses `--name value` style flags: returns the value after `name`, if present.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Like [`flag`], parsed, with a default.
pub fn flag_or<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match flag(args, name) {
        Some(v) => v.parse().unwrap_or_else(|_| panic!("{name}: cannot parse {v:?}")),
        None => default,
    }
}

/// `--workers N` (default 2) of the multi-threaded echo servers; exits with status 2 and a
/// message for 0 or a non-number, as a server given a bad option should.
pub fn workers_arg(args: &[String]) -> usize {
    match flag(args, "--workers").map(|v| v.parse::<usize>()) {
        None => 2,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("--workers needs a positive number");
            std::process::exit(2)
        }
    }
}

/// Parses a `RESULT k=v k=v ...` line into pairs (`None` for other lines).
pub fn parse_result_line(line: &str) -> Option<Vec<(String, String)>> {
    let rest = line.strip_prefix("RESULT ")?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}
