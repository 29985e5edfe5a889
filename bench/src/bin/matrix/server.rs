//! The echo servers the `det`, `echo`, `idle` and `syscalls` sections start: which binary
//! each name runs, and for mini which driver (issue 14).
//!
//! `mini` and `mini-uring` are the same `echo_mini` binary; the environment picks the
//! driver (`MINI_DRIVER=epoll` / `uring`). `echo_mini` prints `driver: Epoll` or
//! `driver: IoUring` (what `Runtime::driver()` says it runs) before its `listening on ADDR`.
//! A kernel, seccomp filter or valgrind that refuses io_uring makes mini fall back to epoll
//! with one line on stderr: then `mini-uring` would be a second `mini`, and a table that
//! compared the two would compare epoll with epoll. So every start is checked
//! ([`Server::driver_check`]) and a server that runs the wrong driver is left out, saying why.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::Opts;

/// How long [`Server::stop`] and [`Server::end_by_eof`] wait for the server to exit.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A driver of mini's, as the matrix asks for it and as `echo_mini` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MiniDriver {
    Epoll,
    IoUring,
}

impl MiniDriver {
    /// The `MINI_DRIVER` value that asks for it.
    fn env_value(self) -> &'static str {
        match self {
            MiniDriver::Epoll => "epoll",
            MiniDriver::IoUring => "uring",
        }
    }

    /// How `echo_mini` names it: `mini::Driver`'s `Debug`.
    fn reported(self) -> &'static str {
        match self {
            MiniDriver::Epoll => "Epoll",
            MiniDriver::IoUring => "IoUring",
        }
    }
}

/// The driver a server name asks of mini (`None`: not a mini server).
pub(super) fn driver_of(name: &str) -> Option<MiniDriver> {
    match name {
        "mini" => Some(MiniDriver::Epoll),
        "mini-uring" => Some(MiniDriver::IoUring),
        _ => None,
    }
}

/// The binary a server name runs: `echo_NAME`, except `mini-uring`, which is `echo_mini`.
pub(super) fn binary_of(name: &str) -> String {
    match name {
        "mini-uring" => "echo_mini".to_string(),
        _ => format!("echo_{name}"),
    }
}

/// What a server printed before it served: its address, and the driver it named, if any.
#[derive(Debug, PartialEq)]
pub(super) struct Announcement {
    pub(super) addr: String,
    pub(super) driver: Option<String>,
}

/// Reads a server's first lines: any `driver: NAME` lines, then `listening on ADDR`.
/// Anything else, or the end of its output first, is an error that quotes it.
pub(super) fn read_announcement(out: &mut impl BufRead) -> Result<Announcement, String> {
    let mut driver = None;
    loop {
        let mut line = String::new();
        match out.read_line(&mut line) {
            Ok(0) => return Err("it ended its output before \"listening on ADDR\"".into()),
            Err(e) => return Err(format!("read its output: {e}")),
            Ok(_) => {}
        }
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("listening on ") {
            return Ok(Announcement { addr: addr.to_string(), driver });
        }
        match line.strip_prefix("driver: ") {
            Some(d) => driver = Some(d.to_string()),
            None => return Err(format!("it said {line:?}, not \"listening on ADDR\"")),
        }
    }
}

/// Whether a server `name` that announced `reported` (and wrote `stderr`) runs the driver
/// its name asks for; if not, why it is left out. Non-mini servers always pass.
pub(super) fn check_driver(name: &str, reported: Option<&str>, stderr: &str) -> Result<(), String> {
    let Some(want) = driver_of(name) else { return Ok(()) };
    if reported == Some(want.reported()) {
        return Ok(());
    }
    // mini's own line, `mini: io_uring unavailable (REASON); using epoll`, says why.
    let why = stderr
        .lines()
        .find(|l| l.starts_with("mini: "))
        .map_or_else(|| "no line from mini on stderr says why".to_string(), |l| format!("it said: {l}"));
    Err(match reported {
        Some(got) => format!(
            "{name} asked for {} (MINI_DRIVER={}) but runs {got}: left out, as its figures would be {got}'s; \
             {why}",
            want.reported(),
            want.env_value()
        ),
        None => format!(
            "{name} did not say which driver it runs (no \"driver: ...\" line; an echo_mini older than \
             issue 14?): left out; {why}"
        ),
    })
}

/// An echo server child process (on CPU 0, optionally under a wrapper such as valgrind),
/// killed on drop.
pub(super) struct Server {
    name: String,
    child: Child,
    pub(super) addr: String,
    /// What it said its driver is (mini only).
    driver: Option<String>,
    /// Where its stderr goes, if to a file (else it is the matrix's own).
    stderr_file: Option<PathBuf>,
    /// Its stdin, a pipe: closed by [`end_by_eof`](Self::end_by_eof) (or on drop).
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts server `name` on CPU 0, its stderr on the matrix's own.
    pub(super) fn start(opts: &Opts, name: &str) -> Server {
        Server::start_under(opts, name, &[], &[], None)
    }

    /// Starts server `name` on CPU 0 under `wrapper` (e.g. valgrind; may be empty), with
    /// `args` after its address, its stderr into `stderr_file` if given, its stdin a pipe. A
    /// mini server gets `MINI_DRIVER` set to the driver its name asks for: set, not left to
    /// the caller's environment, so that an exported `MINI_DRIVER=uring` cannot turn `mini`
    /// into a second `mini-uring`.
    pub(super) fn start_under(
        opts: &Opts,
        name: &str,
        wrapper: &[&str],
        args: &[&str],
        stderr_file: Option<&Path>,
    ) -> Server {
        let bin = binary_of(name);
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0"]).args(wrapper).arg(opts.bin.join(&bin)).arg("127.0.0.1:0").args(args);
        match driver_of(name) {
            Some(d) => cmd.env("MINI_DRIVER", d.env_value()),
            None => cmd.env_remove("MINI_DRIVER"),
        };
        let stderr = match stderr_file {
            Some(path) => Stdio::from(
                std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display())),
            ),
            None => Stdio::inherit(),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin} ({name}): {e}"));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let said = read_announcement(&mut stdout).unwrap_or_else(|e| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} ({name}): {e}")
        });
        Server {
            name: name.to_string(),
            child,
            addr: said.addr,
            driver: said.driver,
            stderr_file: stderr_file.map(Path::to_path_buf),
            stdin,
            _stdout: stdout,
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id() // taskset execs the server (or its wrapper): same pid
    }

    /// `Ok` if the server runs the driver its name asks for (always, for non-mini servers);
    /// otherwise why it is left out, with mini's fallback line when its stderr is in a file.
    /// (With the matrix's own stderr, that line is already printed just above.)
    pub(super) fn driver_check(&self) -> Result<(), String> {
        let stderr = match &self.stderr_file {
            Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
            None => "see mini's line on stderr above".to_string(),
        };
        check_driver(&self.name, self.driver.as_deref(), &stderr)
    }

    /// Ends the server with `signal` and waits (`STOP_WAIT` at most) for it to exit.
    pub(super) fn stop(mut self, signal: i32) -> Result<(), String> {
        // SAFETY: kill on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.pid() as i32, signal) };
        self.wait_exit(&format!("signal {signal}"))
    }

    /// Ends a server started with `--exit-on-eof` by closing its stdin, and waits
    /// (`STOP_WAIT` at most) for it to exit. This is how `det` ends `mini-uring`: valgrind
    /// 3.19 runs `io_uring_enter` with every signal blocked, so a SIGTERM would stay pending
    /// as long as the idle server waits there, and cachegrind writes its counts only at the
    /// end (see `echo_mini`'s docs).
    pub(super) fn end_by_eof(mut self) -> Result<(), String> {
        drop(self.stdin.take());
        self.wait_exit("the end of its stdin")
    }

    /// Waits for the server to exit; after `STOP_WAIT`, an error (and SIGKILL, on drop).
    fn wait_exit(&mut self, after: &str) -> Result<(), String> {
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(format!("{} did not exit within {STOP_WAIT:?} of {after}: killed, its counts lost", self.name))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The servers of `servers` to measure in a section: all but a mini server that, started
/// once under `wrapper` (e.g. valgrind), does not run the driver its name asks for. That
/// one is named in a MISSED line of the targets (the tables show `-` for it).
pub(super) fn runnable<'a>(
    opts: &Opts,
    section: &str,
    servers: &[&'a str],
    wrapper: &[&str],
    targets: &mut mini_bench::report::Targets,
) -> Vec<&'a str> {
    servers
        .iter()
        .copied()
        .filter(|&name| {
            if driver_of(name) != Some(MiniDriver::IoUring) {
                return true; // epoll needs no probe: mini's fallback is epoll itself
            }
            let err_file = opts.tmp(&format!("probe-{name}.txt"));
            let server = Server::start_under(opts, name, wrapper, &[], Some(&err_file));
            let check = server.driver_check();
            drop(server);
            let _ = std::fs::remove_file(&err_file);
            match check {
                Ok(()) => true,
                Err(e) => {
                    println!("  {section}: {e}");
                    targets.check(false, format!("{section}: {name} runs on io_uring: no; {e}"));
                    false
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mini_uring_is_echo_mini_asking_for_io_uring() {
        assert_eq!(binary_of("mini-uring"), "echo_mini");
        assert_eq!(binary_of("mini"), "echo_mini");
        assert_eq!(binary_of("tokio"), "echo_tokio");
        assert_eq!(driver_of("mini-uring"), Some(MiniDriver::IoUring));
        assert_eq!(driver_of("mini"), Some(MiniDriver::Epoll));
        assert_eq!(driver_of("epoll"), None); // the hand-written loop, not mini's driver
    }

    #[test]
    fn announcement_takes_driver_lines_before_the_address() {
        let mut out: &[u8] = b"driver: IoUring\nlistening on 127.0.0.1:4000\nignored\n";
        assert_eq!(
            read_announcement(&mut out),
            Ok(Announcement { addr: "127.0.0.1:4000".into(), driver: Some("IoUring".into()) })
        );
        let mut out: &[u8] = b"listening on 127.0.0.1:4001\n";
        assert_eq!(
            read_announcement(&mut out),
            Ok(Announcement { addr: "127.0.0.1:4001".into(), driver: None })
        );
    }

    #[test]
    fn announcement_refuses_other_lines_and_early_end() {
        let mut out: &[u8] = b"driver: Epoll\npanicked at main.rs\n";
        assert!(read_announcement(&mut out).unwrap_err().contains("panicked at main.rs"));
        let mut out: &[u8] = b"driver: Epoll\n";
        assert!(read_announcement(&mut out).unwrap_err().contains("ended its output"));
    }

    #[test]
    fn a_fallen_back_mini_uring_is_left_out_with_mini_s_reason() {
        let stderr = "mini: io_uring unavailable (io_uring_setup: Function not implemented); using epoll\n";
        let e = check_driver("mini-uring", Some("Epoll"), stderr).unwrap_err();
        assert!(e.contains("runs Epoll"), "{e}");
        assert!(e.contains("io_uring_setup: Function not implemented"), "{e}");
        assert_eq!(check_driver("mini-uring", Some("IoUring"), ""), Ok(()));
    }

    #[test]
    fn every_mini_server_must_name_its_driver() {
        // An exported MINI_DRIVER=uring that won over the matrix's epoll would show here.
        assert!(check_driver("mini", Some("IoUring"), "").unwrap_err().contains("runs IoUring"));
        assert!(check_driver("mini", None, "").unwrap_err().contains("did not say"));
        assert_eq!(check_driver("mini", Some("Epoll"), ""), Ok(()));
        assert_eq!(check_driver("tokio", None, ""), Ok(())); // not mini: nothing to check
    }
}
