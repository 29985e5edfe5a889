//! Helpers for `tests/faults.rs`: the `echo_server` example as a child process, and what
//! `/proc` says about a process (CPU time, peak and resident memory, open fds).
//!
//! Socket timeouts and `recv_timeout` here only guard against a hang: a test that would wait
//! forever fails instead. No assertion depends on how long anything took.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// How long a blocking socket call or a wait for a log line may take before the test fails
/// as hung.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(30);

/// The `echo_server` example (built once per test process by the shared helper).
pub(crate) fn example_binary() -> PathBuf {
    crate::util::example_binary("echo_server")
}

/// The `echo_server` example running as a child process on a free loopback port.
pub(crate) struct EchoServer {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Receiver<String>,
    /// Its `MINI_TRACE=1` lines (`mini +…`), when started with [`EchoServer::start_traced`].
    trace: Receiver<String>,
    /// Where it listens, from its "echo server listening on ADDR" line.
    pub(crate) addr: String,
}

impl EchoServer {
    /// Starts the server. With `fd_limit`, its soft `RLIMIT_NOFILE` is set to that many fds
    /// first (by `ulimit` in a shell that then `exec`s the server, so the pid is the server's).
    pub(crate) fn start(fd_limit: Option<u64>, args: &[&str]) -> EchoServer {
        EchoServer::spawn(fd_limit, args, false)
    }

    /// [`start`](Self::start), with `MINI_TRACE=1`: the loop's steps come through
    /// [`next_trace_line`](Self::next_trace_line), apart from the server's own log lines.
    pub(crate) fn start_traced(fd_limit: Option<u64>, args: &[&str]) -> EchoServer {
        EchoServer::spawn(fd_limit, args, true)
    }

    fn spawn(fd_limit: Option<u64>, args: &[&str], traced: bool) -> EchoServer {
        let binary = example_binary();
        let mut command = match fd_limit {
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("ulimit -S -n {limit} && exec \"$0\" \"$@\"")).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        if traced {
            command.env("MINI_TRACE", "1");
        } else {
            command.env_remove("MINI_TRACE");
        }
        let mut child = command
            .arg("127.0.0.1:0")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start echo_server");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // A thread forwards stderr line by line, so a test can look at what was logged so far
        // without blocking, and the pipe never fills. Trace lines go to a channel of their own.
        let (tx, stderr) = mpsc::channel();
        let (trace_tx, trace) = mpsc::channel();
        let mut child_stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || loop {
            let mut line = String::new();
            match child_stderr.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    // A test that never looks at the trace drops its receiver: ignore that.
                    if line.starts_with("mini +") {
                        let _ = trace_tx.send(line);
                    } else if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        });
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let Some(addr) = first.trim().strip_prefix("echo server listening on ") else {
            let logged: Vec<String> = stderr.try_iter().collect();
            panic!("echo_server did not start: stdout {first:?}, stderr {logged:?}");
        };
        let addr = addr.to_string();
        EchoServer { child, stdout, stderr, trace, addr }
    }

    /// The server's pid (also after the shell's `exec`).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A blocking client connection, with the hang guard as its read and write timeouts.
    pub(crate) fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        s.set_write_timeout(Some(HANG_GUARD)).unwrap();
        s
    }

    /// Whether the server process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends `signum` to the server.
    pub(crate) fn signal(&self, signum: i32) {
        // SAFETY: kill(2) on our own child's pid (not yet reaped: `child` is waited for only
        // in `Drop`) has no memory effects.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, signum) }, 0);
    }

    /// Reads stdout lines until one starts with `prefix`; returns it.
    pub(crate) fn wait_for_stdout(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            self.stdout.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "server exited before printing {prefix:?}");
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Waits for the next stderr line (failing after the hang guard).
    pub(crate) fn next_stderr_line(&self) -> String {
        match self.stderr.recv_timeout(HANG_GUARD) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("echo_server logged nothing for {HANG_GUARD:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("echo_server closed stderr"),
        }
    }

    /// Waits for the next `MINI_TRACE` line (failing after the hang guard).
    pub(crate) fn next_trace_line(&self) -> String {
        match self.trace.recv_timeout(HANG_GUARD) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("echo_server traced nothing for {HANG_GUARD:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("echo_server closed stderr (or is not traced)"),
        }
    }

    /// Drops the `MINI_TRACE` lines received so far.
    pub(crate) fn skip_trace_so_far(&self) {
        self.trace.try_iter().for_each(drop);
    }

    /// The stderr lines logged since the last look, without waiting.
    pub(crate) fn stderr_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Sends SIGTERM and returns the "shutting down: N open connections, ..." line's N.
    pub(crate) fn open_connections_at_shutdown(&mut self) -> usize {
        self.signal(libc::SIGTERM);
        let line = self.wait_for_stdout("shutting down: ");
        line.trim_start_matches("shutting down: ")
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected shutdown line {line:?}"))
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `msg` and checks that exactly `msg` comes back.
pub(crate) fn echo(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// The CPU time (user + system) that process `pid` has used, from `/proc/PID/stat`.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) is in parentheses and may hold spaces: count from the last
    // ')'. After it come field 3 (state) onwards; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value; it takes no pointers.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(per_second > 0, "sysconf(_SC_CLK_TCK) failed");
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// A `kB` field of `/proc/PROC/status` (`PROC` is a pid or `self`), in KiB: `VmHWM` is the
/// peak resident set, `VmRSS` the current one.
pub(crate) fn status_kib(proc: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{proc}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{proc}/status"));
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// How many fds process `proc` (a pid or `self`) has open.
pub(crate) fn fd_count(proc: &str) -> usize {
    std::fs::read_dir(format!("/proc/{proc}/fd")).unwrap().count()
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit, or to 65,536 if that is
/// lower (an unlimited hard limit is not a valid soft one); returns the new soft limit.
pub(crate) fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live, writable `rlimit` for getrlimit to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_cur.max(limit.rlim_max.min(1 << 16));
    // SAFETY: `limit` is a live `rlimit` that setrlimit only reads; raising the soft limit up
    // to the hard one needs no privilege and affects only the number of fds we may open.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}
