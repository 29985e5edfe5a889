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
        Server::start_on("127.0.0.1:0", args)
    }

    fn start_on(addr: &str, args: &[&str]) -> Server {
        let mut child = Command::new(util::example_binary("echo_server"))
            .arg(addr)
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

/// Parses `served N connections (worker 0: a, worker 1: b)` into `(N, [a, b])`.
fn per_worker_counts(line: &str) -> (u64, Vec<u64>) {
    let line = line.trim();
    let rest = line.strip_prefix("served ").expect(line);
    let (total, rest) = rest.split_once(" connections (").expect(line);
    let counts = rest
        .strip_suffix(')')
        .expect(line)
        .split(", ")
        .enumerate()
        .map(|(i, part)| {
            let n = part.strip_prefix(&format!("worker {i}: ")).expect(line);
            n.parse().expect(line)
        })
        .collect();
    (total.parse().expect(line), counts)
}

/// Makes `n` connections from 4 client threads; each is echoed once, then closed (and the
/// server's side of it seen closed, so the count the server prints includes it).
fn connect_many(addr: &str, n: usize) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                for i in (t..n).step_by(4) {
                    let mut s = TcpStream::connect(&addr).unwrap();
                    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
                    echo(&mut s, format!("connection {i}").as_bytes());
                    s.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn two_workers_share_200_connections() {
    // The server is a child process: a lost signal or wake would block a read of its
    // stdout forever, so the whole body runs under the hang guard.
    util::within_hang_guard(|| {
        let mut server = Server::start(&["--workers", "2"]);
        assert_eq!(server.wait_for_line("2 workers").trim(), "2 workers");
        connect_many(&server.addr, 200);
        server.signal(libc::SIGTERM);
        let (total, counts) = per_worker_counts(&server.wait_for_line("served"));
        assert_eq!(total, 200);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts.iter().sum::<u64>(), 200);
        // SO_REUSEPORT hashes each connection's 4-tuple: about half each; 20% is far in the tail.
        assert!(counts.iter().all(|&c| c >= 40), "unbalanced: {counts:?}");
        assert_eq!(server.child.wait().unwrap().code(), Some(0));
    });
}

/// A server with 2 workers and the given `--grace`, and 16 open connections, each echoed
/// once: enough that both workers hold some (each is served by one of them).
fn two_workers_with_16_clients(grace: &str) -> (Server, Vec<TcpStream>) {
    let mut server = Server::start(&["--workers", "2", "--grace", grace]);
    server.wait_for_line("2 workers");
    let mut clients: Vec<TcpStream> = (0..16).map(|_| server.connect()).collect();
    for c in &mut clients {
        echo(c, b"before");
    }
    (server, clients)
}

#[test]
fn sigterm_drains_every_worker_then_exits_zero() {
    // The server is a child process: a lost signal or wake would block a read of its
    // stdout forever, so the whole body runs under the hang guard.
    util::within_hang_guard(|| {
        let (mut server, mut clients) = two_workers_with_16_clients("20");
        server.signal(libc::SIGTERM);
        let mut open = 0;
        for _ in 0..2 {
            let line = server.wait_for_line("worker ");
            let (_, rest) = line.split_once("shutting down: ").expect(&line);
            open += rest.split(' ').next().unwrap().parse::<usize>().expect(&line);
        }
        assert_eq!(open, 16, "every open connection is still counted by its worker");
        // Every open connection is still served during the grace period...
        for c in &mut clients {
            echo(c, b"during the grace period");
        }
        // ...while new connections are refused by every worker.
        let refused = TcpStream::connect(&server.addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        for c in &mut clients {
            c.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
        }
        let (total, counts) = per_worker_counts(&server.wait_for_line("served"));
        assert_eq!((total, counts.len()), (16, 2));
        assert_eq!(server.child.wait().unwrap().code(), Some(0));
    });
}

#[test]
fn a_second_process_joins_the_group() {
    // The server is a child process: a lost signal or wake would block a read of its
    // stdout forever, so the whole body runs under the hang guard.
    util::within_hang_guard(|| {
        let mut first = Server::start(&["--workers", "2"]);
        first.wait_for_line("2 workers");
        let mut second = Server::start_on(&first.addr, &["--workers", "2"]);
        second.wait_for_line("2 workers");
        assert_eq!(second.addr, first.addr);
        // Four listeners on one port: 200 connections reach both processes unless the group
        // is broken (the chance of one process getting none is 2^-200).
        connect_many(&first.addr, 200);
        let mut totals = Vec::new();
        for server in [&mut first, &mut second] {
            server.signal(libc::SIGTERM);
            totals.push(per_worker_counts(&server.wait_for_line("served")).0);
            assert_eq!(server.child.wait().unwrap().code(), Some(0));
        }
        assert_eq!(totals.iter().sum::<u64>(), 200);
        assert!(totals.iter().all(|&t| t > 0), "one process served nothing: {totals:?}");
    });
}

#[test]
fn bad_worker_counts_give_a_clear_error_and_status_2() {
    let (code, err) = run_to_exit(&["--workers", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("echo_server: --workers: \"0\" is not a positive number or \"auto\"\n"), "{err}");
    let (code, err) = run_to_exit(&["--workers"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("echo_server: --workers needs a number or \"auto\"\n"), "{err}");
}

#[test]
fn workers_auto_and_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // A port held by a listener without SO_REUSEPORT cannot be joined: one clear line.
    let (code, stderr) = run_to_exit(&[&addr, "--workers", "auto"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr, format!("echo_server: cannot listen on {addr}: address already in use\n"));
}

#[test]
fn a_second_signal_cuts_every_workers_grace_period_short() {
    util::within_hang_guard(|| {
        let (mut server, mut clients) = two_workers_with_16_clients("3600");
        server.signal(libc::SIGTERM);
        server.wait_for_line("worker ");
        server.wait_for_line("worker ");
        // Worker 0 relays the second signal to every worker through the shared `hurry`.
        server.signal(libc::SIGINT);
        for _ in 0..2 {
            let line = server.wait_for_line("worker ");
            assert!(line.contains("second signal: closing the remaining connections"), "{line}");
        }
        let (total, _) = per_worker_counts(&server.wait_for_line("served"));
        assert_eq!(total, 16);
        assert_eq!(server.child.wait().unwrap().code(), Some(0));
        for c in &mut clients {
            let mut buf = [0u8; 1];
            assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "the connection outlived the server");
        }
    });
}
