//! The `chat` example (examples/chat.rs), driven by blocking std clients.
//!
//! Most tests run the example's `serve` in-process, on a mini runtime in a thread of its own;
//! the last one runs the built example as a child process. Each client waits for its greeting
//! before the test goes on, so every client is in the room before anyone speaks: no sleeps.
//! Socket read timeouts only guard against a hang.

#[path = "../examples/chat.rs"]
#[allow(dead_code)] // the example's `main`
mod chat;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HANG_GUARD: Duration = Duration::from_secs(10);

/// Starts the chat server on a free port, in a thread that lives as long as the test process.
fn start() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        mini::block_on(async move {
            let listener = mini::net::TcpListener::from_std(listener).expect("register the listener");
            chat::serve(listener).await
        })
    });
    addr
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// How the others see this client: its address.
    name: SocketAddr,
}

impl Client {
    /// Connects and waits for the greeting, which the server sends once the client is in the
    /// room.
    fn join(server: SocketAddr, others: usize) -> Client {
        let stream = TcpStream::connect(server).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        stream.set_write_timeout(Some(HANG_GUARD)).unwrap();
        let name = stream.local_addr().unwrap();
        let mut client = Client { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream, name };
        assert_eq!(client.line(), format!("welcome, you are {name}; {others} others here"));
        client
    }

    /// The next line, without its newline. Fails on end of stream or after `HANG_GUARD`.
    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("{}: end of stream where a line was expected", self.name),
            Ok(_) => line.strip_suffix('\n').expect("a whole line").to_string(),
            Err(e) => panic!("{}: no line within {HANG_GUARD:?}: {e}", self.name),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads until end of stream (the server closed the connection) and returns what came.
    fn rest(&mut self) -> String {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).expect("end of stream within the guard");
        String::from_utf8(rest).unwrap()
    }
}

/// Three clients in one room, each having seen the later ones join.
fn room_of_three() -> (Client, Client, Client) {
    let server = start();
    let mut a = Client::join(server, 0);
    let mut b = Client::join(server, 1);
    assert_eq!(a.line(), format!("* {} joined", b.name));
    let c = Client::join(server, 2);
    assert_eq!(a.line(), format!("* {} joined", c.name));
    assert_eq!(b.line(), format!("* {} joined", c.name));
    (a, b, c)
}

#[test]
fn a_line_reaches_every_other_client_and_not_its_sender() {
    let (mut a, mut b, mut c) = room_of_three();
    a.send(b"hello\r\n");
    assert_eq!(b.line(), format!("{}: hello", a.name));
    assert_eq!(c.line(), format!("{}: hello", a.name));
    // Lines reach each client in order, so if `a` had been sent its own line it would read
    // it before this one.
    b.send(b"caf\xff\n"); // not UTF-8
    assert_eq!(a.line(), format!("{}: caf\u{fffd}", b.name));
    assert_eq!(c.line(), format!("{}: caf\u{fffd}", b.name));
}

#[test]
fn a_disconnect_leaves_the_others_talking() {
    let (mut a, mut b, mut c) = room_of_three();
    c.send(b"half a line"); // then end of stream: the last line still counts
    c.writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.rest(), ""); // the server closes its side in turn
    for client in [&mut a, &mut b] {
        assert_eq!(client.line(), format!("{}: half a line", c.name));
        assert_eq!(client.line(), format!("* {} left", c.name));
    }
    drop(c);
    a.send(b"still here?\n");
    assert_eq!(b.line(), format!("{}: still here?", a.name));
    b.send(b"yes\n");
    assert_eq!(a.line(), format!("{}: yes", b.name));
}

#[test]
fn a_line_too_long_disconnects_its_sender_only() {
    let (mut a, mut b, mut c) = room_of_three();
    a.send(&[b'x'; chat::MAX_LINE + 1]);
    assert_eq!(a.line(), format!("* error: line longer than {} bytes", chat::MAX_LINE));
    assert_eq!(a.rest(), "");
    assert_eq!(b.line(), format!("* {} left", a.name));
    assert_eq!(c.line(), format!("* {} left", a.name));
    b.send(&[b'y'; chat::MAX_LINE - 1]); // the longest line allowed: MAX_LINE with its newline
    b.send(b"\n");
    assert_eq!(c.line(), format!("{}: {}", b.name, "y".repeat(chat::MAX_LINE - 1)));
}

#[test]
fn a_client_that_stops_reading_is_dropped_not_waited_for() {
    let server = start();
    let mut talker = Client::join(server, 0);
    let mut sleeper = Client::join(server, 1);
    assert_eq!(talker.line(), format!("* {} joined", sleeper.name));

    // The sleeper reads nothing: its socket buffers fill, then its queue, then the room drops
    // it. The talker learns of it from another thread, while this one keeps talking.
    let mut watcher = BufReader::new(talker.writer.try_clone().unwrap());
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = watcher.read_line(&mut line);
        let _ = dropped_tx.send(line);
    });
    let line = [b'z'; 4000];
    let limit = 256 << 20; // far beyond any socket buffers plus the queue
    let mut sent = 0;
    let notice = loop {
        if let Ok(notice) = dropped.try_recv() {
            break notice;
        }
        assert!(sent < limit, "still in the room after {sent} bytes");
        talker.send(&line);
        talker.send(b"\n");
        sent += line.len() + 1;
    };
    assert_eq!(notice, format!("* {} left (too slow)\n", sleeper.name));

    // Out of the room, the sleeper speaks to nobody. It gets (some of) what had been queued
    // for it, the reason, then end of stream.
    sleeper.send(b"ghost\n");
    let rest = sleeper.rest();
    let last = rest.lines().last().unwrap();
    assert_eq!(last, format!("* error: too slow: {} lines were waiting for you", chat::QUEUE));
    assert!(rest.len() < sent, "it got {} of the {sent} bytes", rest.len());

    // The talker leaves; the server closes its side once it has read the talker's last line,
    // so nothing is in flight any more. The room goes on.
    talker.writer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(talker.rest(), ""); // no ghost
    let mut x = Client::join(server, 0);
    let mut y = Client::join(server, 1);
    assert_eq!(x.line(), format!("* {} joined", y.name));
    y.send(b"anyone?\n");
    assert_eq!(x.line(), format!("{}: anyone?", y.name));
}

/// A child process that is killed when the test ends, whether it passes or panics.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads all of `pipe` on another thread, so that a child that never closes it cannot hang
/// the test: the result is `None` after `HANG_GUARD`.
fn read_within(mut pipe: impl Read + Send + 'static, first_line_only: bool) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if first_line_only {
            let _ = BufReader::new(pipe).read_line(&mut text);
        } else {
            let _ = pipe.read_to_string(&mut text);
        }
        let _ = tx.send(text);
    });
    rx.recv_timeout(HANG_GUARD).ok()
}

/// The built example, as a user runs it: its first line says where it listens, and it serves.
#[test]
fn the_binary_says_where_it_listens_and_serves() {
    // This test binary is target/<profile>/deps/chat-<hash>; the example goes beside deps/,
    // built with the same profile (a no-op when it is up to date).
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "mini-ecosystem", "--example", "chat"]);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().expect("run cargo build").success(), "building the chat example failed");
    let binary = profile_dir.join("examples/chat");

    let spawn = |addr: &str| {
        let child = Command::new(&binary).arg(addr).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        Running(child.expect("start the chat example"))
    };
    let mut server = spawn("127.0.0.1:0");
    let first = read_within(server.0.stdout.take().unwrap(), true).expect("a first line within the guard");
    let addr = first.strip_prefix("chat listening on ").and_then(|a| a.trim().parse().ok());
    let addr: SocketAddr = addr.unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let mut a = Client::join(addr, 0);
    let mut b = Client::join(addr, 1);
    assert_eq!(a.line(), format!("* {} joined", b.name));
    b.send(b"hi\n");
    assert_eq!(a.line(), format!("{}: hi", b.name));
    drop(server);

    // An address it cannot listen on: one line on stderr, status 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut refused = spawn(&taken.local_addr().unwrap().to_string());
    let err =
        read_within(refused.0.stderr.take().unwrap(), false).expect("the child to exit within the guard");
    assert!(err.starts_with("chat: cannot listen on ") && err.lines().count() == 1, "{err:?}");
    assert_eq!(refused.0.wait().unwrap().code(), Some(1));
}
