//! A chat server: every line a client sends goes to every other client.
//!
//! ```text
//! cargo run -p mini-ecosystem --example chat -- [ADDR]   # 127.0.0.1:8081 by default
//! nc 127.0.0.1 8081                                      # in two or more terminals
//! ```
//!
//! One task per client. Each client has an `async_channel` of the lines waiting to be written
//! to it; the senders sit in a map shared through `Rc<RefCell<..>>` (one thread, so no lock),
//! and a line is broadcast by `try_send`ing it into every other client's channel. A client's
//! task runs two loops at once, "read lines and broadcast them" and "write what my channel
//! receives", and ends when either ends.
//!
//! - The first line on stdout is `chat listening on ADDR`.
//! - A new client gets `welcome, you are ADDR; N others here`; the others get
//!   `* ADDR joined`, and later `* ADDR left`. A line from a client arrives as `ADDR: line`.
//! - A line longer than 4 KiB: the client gets an error line and is disconnected. Bytes that
//!   are not UTF-8 are replaced with U+FFFD.
//! - Each channel holds at most 256 lines: a client that reads too slowly to keep up is
//!   disconnected (`* ADDR left (too slow)`), rather than allowed to grow the server's memory
//!   or hold up the others. So is a client whose socket takes no data for 10 s.
//! - If it cannot start, it says why in one line on stderr and exits with status 1.

#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
// futures' extension traits for what mini's sockets lack (`take`, `read_until`); the writes
// are the halves' own methods (docs/ecosystem.md, "Two `AsyncReadExt`s").
use futures::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use mini::net::{TcpListener, TcpStream};
use mini::time::timeout;

/// Where the server listens when no address is given.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:8081";

/// The longest line accepted, newline included.
pub(crate) const MAX_LINE: usize = 4096;

/// How many lines may wait for one client before it counts as too slow.
pub(crate) const QUEUE: usize = 256;

/// How long one write to a client may wait for it to read: a client that takes in nothing for
/// that long is disconnected (a full queue alone would not free a task stuck in a write).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A line on its way out, shared by every client it goes to.
type Line = Rc<str>;

/// The clients connected now, each by a number that is never reused (a peer address can be:
/// a client that reconnects from the same port while its old task is still cleaning up).
#[derive(Default)]
struct Room {
    clients: RefCell<HashMap<u64, (SocketAddr, Sender<Line>)>>,
    next_id: Cell<u64>,
}

impl Room {
    /// Adds a client, tells the others, and returns its id and the receiver of its lines.
    fn join(&self, peer: SocketAddr) -> (u64, Receiver<Line>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.broadcast(id, format!("* {peer} joined\n"));
        let (tx, rx) = async_channel::bounded(QUEUE);
        self.clients.borrow_mut().insert(id, (peer, tx));
        (id, rx)
    }

    /// Removes a client and tells the others, unless a broadcast has already done both.
    fn leave(&self, id: u64) {
        let removed = self.clients.borrow_mut().remove(&id);
        if let Some((peer, _)) = removed {
            self.broadcast(id, format!("* {peer} left\n"));
        }
    }

    /// How many clients are connected.
    fn len(&self) -> usize {
        self.clients.borrow().len()
    }

    /// Whether a client is still in the room (a broadcast drops the slow ones).
    fn contains(&self, id: u64) -> bool {
        self.clients.borrow().contains_key(&id)
    }

    /// Queues `line` for every client but `from`. `try_send` never waits, so one slow
    /// client cannot hold up the rest: a client whose queue is full is dropped from the room
    /// (and the others are told). Dropping its sender closes its channel; its writing loop
    /// ends once it has written what was queued, and its task then closes the connection.
    fn broadcast(&self, from: u64, line: String) {
        let mut pending = vec![(from, line)];
        while let Some((from, line)) = pending.pop() {
            let line: Line = line.into();
            // Collected first and announced after `retain`: announcing inside it would
            // borrow the map twice.
            let mut dropped = Vec::new();
            self.clients.borrow_mut().retain(|&id, (peer, tx)| {
                let keep = id == from || tx.try_send(line.clone()).is_ok();
                if !keep {
                    dropped.push((id, *peer));
                }
                keep
            });
            // The room only shrinks here, so this ends.
            pending.extend(dropped.into_iter().map(|(id, peer)| (id, format!("* {peer} left (too slow)\n"))));
        }
    }
}

/// Accepts clients until the process ends, one task each.
pub(crate) async fn serve(listener: TcpListener) {
    let room = Rc::new(Room::default());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                mini::spawn(client(room.clone(), stream, peer));
            }
            // Per-connection failures are skipped by `accept` itself; what is left (out of
            // fds, say) may last: pause rather than spin on a listener that stays readable.
            Err(e) => {
                eprintln!("chat: accept failed: {e}");
                mini::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client, from its arrival to its departure.
async fn client(room: Rc<Room>, mut stream: TcpStream, peer: SocketAddr) {
    let (id, rx) = room.join(peer);
    // Spelled out: with futures' `AsyncReadExt` in scope, `stream.split()` would pick its
    // `split(self)`, a lock-based split of any stream, over mini's `split(&mut self)`.
    let (reader, mut writer) = TcpStream::split(&mut stream);
    let greeting = format!("welcome, you are {peer}; {} others here\n", room.len().saturating_sub(1));
    if timeout(WRITE_TIMEOUT, writer.write_all(greeting.as_bytes())).await.is_ok_and(|r| r.is_ok()) {
        // Set while a line is half written: `or` drops the writing loop wherever it is when
        // the reading loop ends, and the error below must not be glued to half a line.
        let mid_line = Cell::new(false);
        let outgoing = async {
            while let Ok(line) = rx.recv().await {
                mid_line.set(true);
                timeout(WRITE_TIMEOUT, writer.write_all(line.as_bytes())).await??;
                mid_line.set(false);
            }
            Err::<(), _>(too_slow()) // closed: the room dropped us
        };
        let end = futures_lite::future::or(relay_lines(&room, id, peer, reader), outgoing).await;
        if let Err(e) = end {
            // Best effort, and bounded: the peer may have stopped reading, which is often
            // why we are here.
            let error = format!("{}* error: {e}\n", if mid_line.get() { "\n" } else { "" });
            let _ = timeout(Duration::from_secs(1), writer.write_all(error.as_bytes())).await;
        }
    }
    room.leave(id);
} // dropping the stream closes the connection

/// Reads lines from one client and broadcasts each, until end of stream. Fails on a line
/// longer than [`MAX_LINE`] or a read error.
async fn relay_lines(
    room: &Room,
    id: u64,
    peer: SocketAddr,
    reader: impl AsyncRead + Unpin,
) -> io::Result<()> {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // `take` bounds what one line may cost: `lines()` would buffer a line without end.
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(()); // end of stream
        }
        if line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
        if !room.contains(id) {
            return Err(too_slow()); // dropped while its writer drains: it speaks no more
        }
        // A last line without its newline (end of stream) still counts.
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        room.broadcast(id, format!("{peer}: {}\n", String::from_utf8_lossy(text)));
        // Let the writers run before the next line. Within its I/O budget one poll of this
        // loop could broadcast hundreds of lines from a pasted burst, and fill the queue of a
        // client that reads promptly but has not had its turn yet.
        mini::yield_now().await;
    }
}

/// Why a client was dropped from the room.
fn too_slow() -> io::Error {
    io::Error::other(format!("too slow: {QUEUE} lines were waiting for you"))
}

/// Says why the server cannot start, and exits with status 1.
fn fail(msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("chat: {msg}");
    std::process::exit(1)
}

#[mini::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if addr.starts_with('-') || args.next().is_some() {
        eprintln!("usage: chat [ADDR]   (default {DEFAULT_ADDR})");
        std::process::exit(2);
    }
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => fail(format_args!("cannot listen on {addr}: {e}")),
    };
    match listener.local_addr() {
        Ok(local) => println!("chat listening on {local}"),
        Err(e) => fail(format_args!("cannot listen on {addr}: {e}")),
    }
    serve(listener).await
}
