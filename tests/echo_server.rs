//! The `echo_server` example as a user runs it: a child process, real sockets, real signals.
//!
//! The test builds the example with cargo (a no-op when it is up to date), starts it on a
//! free port, and talks to it with blocking std sockets. Socket read timeouts only guard
//! against a hang; no assertion depends on how long anything took.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

const HANG_GUARD: Duration = Duration::from_secs(20);

struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(util::example_binary("echo_server"))
            .arg("127.0.0.1:0")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start echo_server");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let first = read_line(&mut stdout);
        let addr = first.trim().strip_prefix("echo server listening on ").expect(&first).to_string();
        Server { child, stdout, addr }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        s
    }

    fn signal(&self, signum: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signum) }, 0);
    }

    /// Reads stdout lines until one starts with `prefix`; returns it.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        loop {
            let line = read_line(&mut self.stdout);
            assert!(!line.is_empty(), "server exited before printing {prefix:?}");
            if line.starts_with(prefix) {
                return line;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}

fn echo(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn idle_timeout_closes_a_silent_client_and_keeps_serving_others() {
    let server = Server::start(&["--idle-timeout", "0.2"]);
    let mut silent = server.connect();
    echo(&mut silent, b"hello");
    // Say nothing more: the server must close the connection (EOF), not keep it forever.
    let mut buf = [0u8; 16];
    let n =
        silent.read(&mut buf).expect("the server closed the idle client (a timeout here means it did not)");
    assert_eq!(n, 0);
    // The server itself is still up.
    let mut next = server.connect();
    echo(&mut next, b"still here");
}

#[test]
fn sigterm_lets_an_open_echo_finish_then_exits_zero() {
    let mut server = Server::start(&["--grace", "20"]);
    let mut client = server.connect();
    echo(&mut client, b"before");

    server.signal(libc::SIGTERM);
    let line = server.wait_for_line("shutting down");
    assert!(line.contains("1 open connections"), "{line}");

    // The open connection is still served during the grace period...
    echo(&mut client, b"during the grace period");
    // ...while new connections are refused.
    let refused = TcpStream::connect(&server.addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    // When the client hangs up, the server has nothing left and exits cleanly.
    client.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    server.wait_for_line("all connections finished");
    let served = server.wait_for_line("served");
    assert_eq!(served.trim(), "served 1 connections");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn sigint_with_no_connections_exits_zero_at_once() {
    let mut server = Server::start(&[]);
    server.signal(libc::SIGINT);
    server.wait_for_line("served 0 connections");
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_second_signal_cuts_the_grace_period_short() {
    let mut server = Server::start(&["--grace", "3600"]);
    let mut client = server.connect();
    echo(&mut client, b"x");
    server.signal(libc::SIGTERM);
    server.wait_for_line("shutting down");
    server.signal(libc::SIGINT);
    server.wait_for_line("second signal");
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
    // The connection was closed when the server exited.
    let mut buf = [0u8; 1];
    assert_eq!(client.read(&mut buf).unwrap_or(0), 0);
}

#[test]
fn bad_options_give_a_clear_error_and_status_2() {
    let (code, err) = run_to_exit(&["--idle-timeout", "soon"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("echo_server: --idle-timeout: \"soon\" is not a number of seconds\n"), "{err}");
}

/// Runs the example with `args` and returns its exit code and stderr; it must exit by itself.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = util::output_within(Command::new(util::example_binary("echo_server")).args(args), HANG_GUARD);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_port_in_use_is_one_clear_line_and_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_exit(&[&addr]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr, format!("echo_server: cannot listen on {addr}: address already in use\n"));
}

#[test]
fn a_bad_address_is_one_clear_line_and_status_1() {
    let (code, stderr) = run_to_exit(&["foo"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr, "echo_server: invalid address \"foo\": invalid socket address\n");
    let (code, stderr) = run_to_exit(&["127.0.0.1:99999"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr, "echo_server: invalid address \"127.0.0.1:99999\": invalid port value\n");
}
