//! `loadgen --rounds-each`: every connection does exactly K round trips, whatever the
//! server's speed on each, which the deterministic section's differencing relies on.
//!
//! The server here is a thread per connection on std sockets. It counts the bytes it echoes
//! on each connection and reports them when loadgen closes it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Every blocking step here gives up after this long, failing the test instead of hanging.
const GUARD: Duration = Duration::from_secs(20);

fn loadgen(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen")
}

/// Waits for `child` for at most `GUARD` (killing it after that) and returns its output.
fn output_within_guard(child: Child) -> Output {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(GUARD) {
        Ok(out) => out.expect("wait for loadgen"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("loadgen still running after {GUARD:?}");
        }
    }
}

/// Echoes one connection until EOF; returns the bytes echoed. Before its first echo it
/// calls `before_first`; after it has echoed `mark` bytes it calls `at_mark` (once).
fn echo(mut s: TcpStream, mark: usize, before_first: impl FnOnce(), at_mark: impl FnOnce()) -> usize {
    s.set_read_timeout(Some(GUARD)).unwrap();
    s.set_nodelay(true).unwrap();
    let (mut buf, mut total) = ([0u8; 4096], 0);
    let (mut before_first, mut at_mark) = (Some(before_first), Some(at_mark));
    loop {
        let n = s.read(&mut buf).expect("read (timed out?)");
        if n == 0 {
            return total;
        }
        if let Some(f) = before_first.take() {
            f();
        }
        s.write_all(&buf[..n]).expect("write");
        total += n;
        if total >= mark {
            if let Some(f) = at_mark.take() {
                f();
            }
        }
    }
}

#[test]
fn rounds_each_gives_every_connection_exactly_k() {
    const CONNS: usize = 5;
    const K: usize = 7;
    const LEN: usize = 64;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let child =
        loadgen(&[&addr, "--conns", &CONNS.to_string(), "--len", &LEN.to_string(), "--rounds-each", "7"]);

    // The first connection's echoes are held back until every other connection has had K:
    // a loadgen that counted round trips over all connections together would let the fast
    // ones go on past K (and never give the slow one its K).
    let others_at_k = Arc::new((Mutex::new(0usize), Condvar::new()));
    let (tx, rx) = mpsc::channel();
    for i in 0..CONNS {
        let (s, _) = listener.accept().unwrap();
        let (tx, gate) = (tx.clone(), others_at_k.clone());
        thread::spawn(move || {
            let total = if i == 0 {
                let wait = || {
                    let (count, cv) = &*gate;
                    let guard = count.lock().unwrap();
                    let (n, timeout) = cv.wait_timeout_while(guard, GUARD, |n| *n < CONNS - 1).unwrap();
                    assert!(!timeout.timed_out(), "only {} other connections reached K", *n);
                };
                echo(s, usize::MAX, wait, || {})
            } else {
                let arrive = || {
                    let (count, cv) = &*gate;
                    *count.lock().unwrap() += 1;
                    cv.notify_all();
                };
                echo(s, K * LEN, || {}, arrive)
            };
            tx.send((i, total)).unwrap();
        });
    }
    drop(tx);

    let out = output_within_guard(child);
    assert!(out.status.success(), "loadgen failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!(" round_trips={} ", CONNS * K)), "loadgen said: {stdout}");
    let mut totals = vec![None; CONNS];
    for _ in 0..CONNS {
        let (i, total) = rx.recv_timeout(GUARD).expect("a connection's total");
        totals[i] = Some(total);
    }
    assert_eq!(totals, vec![Some(K * LEN); CONNS], "bytes echoed per connection");
}

#[test]
fn rounds_each_rejects_zero_and_rounds_together() {
    // No server needed: both are refused before connecting.
    for args in
        [&["127.0.0.1:9", "--rounds-each", "0"][..], &["127.0.0.1:9", "--rounds", "10", "--rounds-each", "2"]]
    {
        let out = output_within_guard(loadgen(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--rounds-each"), "{args:?}");
    }
}
