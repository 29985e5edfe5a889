//! `echo_mini` says which driver it runs before it listens (issue 14): the matrix starts it
//! as `mini` (`MINI_DRIVER=epoll`) and as `mini-uring` (`MINI_DRIVER=uring`) and leaves out
//! a `mini-uring` that fell back to epoll, so the line must be there and must be true.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Every blocking step here gives up after this long, failing the test instead of hanging.
const GUARD: Duration = Duration::from_secs(20);

/// An `echo_mini` child, killed on drop.
struct EchoMini(Child);

impl Drop for EchoMini {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `echo_mini` with `MINI_DRIVER=driver`; returns it, the lines it printed up to and
/// including `listening on ADDR`, and ADDR.
fn start(driver: &str) -> (EchoMini, Vec<String>, String) {
    start_with(driver, &[])
}

/// Like [`start`], with `args` after the address; its stdin is a pipe the test holds.
fn start_with(driver: &str, args: &[&str]) -> (EchoMini, Vec<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo_mini"))
        .arg("127.0.0.1:0")
        .args(args)
        .env("MINI_DRIVER", driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start echo_mini");
    let stdout = child.stdout.take().expect("piped");
    let server = EchoMini(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx.recv_timeout(GUARD).unwrap_or_else(|_| panic!("echo_mini said only {lines:?}"));
        lines.push(line.clone());
        if let Some(addr) = line.strip_prefix("listening on ") {
            return (server, lines, addr.to_string());
        }
    }
}

/// One echo through the server, with timeouts.
fn echo_once(addr: &str) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(GUARD)).unwrap();
    s.write_all(b"ping over the driver").unwrap();
    let mut back = [0u8; 20];
    s.read_exact(&mut back).expect("the echo (timed out?)");
    assert_eq!(&back, b"ping over the driver");
}

/// Kills the server and returns what it wrote on stderr.
fn stderr_of(mut server: EchoMini) -> String {
    let _ = server.0.kill();
    let _ = server.0.wait();
    let mut err = String::new();
    server.0.stderr.take().expect("piped").read_to_string(&mut err).unwrap();
    err
}

#[test]
fn names_epoll_when_asked_for_epoll() {
    let (server, lines, addr) = start("epoll");
    assert_eq!(lines, vec!["driver: Epoll".to_string(), format!("listening on {addr}")]);
    echo_once(&addr);
    drop(server);
}

#[test]
fn names_io_uring_when_asked_for_it_or_says_why_not() {
    let (server, lines, addr) = start("uring");
    assert_eq!(lines.len(), 2, "{lines:?}");
    echo_once(&addr);
    match lines[0].as_str() {
        "driver: IoUring" => {}
        "driver: Epoll" => {
            // A kernel or sandbox that refuses io_uring: the fallback must say so.
            let err = stderr_of(server);
            assert!(err.contains("mini: io_uring unavailable ("), "fell back silently: {err:?}");
            println!("skipped the io_uring half: this machine refuses io_uring ({})", err.trim());
        }
        other => panic!("not a driver line: {other:?}"),
    }
}

/// `det` ends `mini-uring` under valgrind by closing its stdin (valgrind keeps signals from a
/// server waiting in `io_uring_enter`): the server must exit, with status 0, on both drivers.
#[test]
fn exit_on_eof_ends_the_server_when_stdin_closes() {
    for driver in ["epoll", "uring"] {
        let (mut server, _, addr) = start_with(driver, &["--exit-on-eof"]);
        echo_once(&addr); // it serves while stdin is open
        drop(server.0.stdin.take());
        // Polled, with a deadline: the drop guard kills the server if it never exits.
        let deadline = Instant::now() + GUARD;
        let status = loop {
            if let Some(status) = server.0.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "{driver}: still running {GUARD:?} after stdin closed");
            thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status.code(), Some(0), "{driver}");
    }
}
