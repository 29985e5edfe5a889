//! The server: the accept loop, one task per connection, and the expiry task.
//!
//! A connection reads into one buffer, executes every complete command in it, appends the
//! replies to one output buffer, and writes that with one `write` before it reads again.
//! A client that pipelines 16 commands thus costs one `read` and one `write`, and one that
//! does not costs exactly that per command: `epoll_wait` + `recv` + `send` per round trip,
//! as in Redis.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use mini::net::{TcpListener, TcpStream};
use mini::time::{interval, sleep, timeout};

use super::commands::{execute, Ctx, Flow, Session};
use super::db::Db;
use super::resp::{Parser, DEFAULT_MAX_BULK_LEN, MAX_LINE};

/// The size a connection's read buffer starts at and shrinks back to: 16 KiB, Redis's
/// `PROTO_IOBUF_LEN`. Holds a pipeline of hundreds of small commands.
const INITIAL_READ_BUF: usize = 16 * 1024;

/// Past this many bytes of replies, a connection writes them before it executes the next
/// command in its buffer. Bounds the output buffer (a pipeline of `GET`s of big values
/// would otherwise hold all their copies at once) without costing a write per command in
/// the common case.
const FLUSH_AT: usize = 64 * 1024;

/// How often the expiry task runs: 10 Hz, Redis's default `hz`.
const EXPIRE_PERIOD: Duration = Duration::from_millis(100);

/// The most time one expiry pass may take: a quarter of the period, as in Redis
/// (`ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC`). Every client waits while it runs.
const EXPIRE_BUDGET: Duration = Duration::from_millis(25);

/// After `QUIT` or a protocol error, how long the server goes on reading (and dropping)
/// what the client still sends, and how much. Closing a socket with unread input makes the
/// kernel send a reset, which can destroy the last reply before the client reads it; a
/// short linger lets the client see the reply and a clean end of stream.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// How long to stop accepting after `accept` fails (say, out of fds): long enough not to
/// spin on a listener that stays readable, short enough to resume quickly.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server's settings.
///
/// ```
/// let config = mini_ecosystem::redis::Config { max_bulk_len: 1 << 20, ..Default::default() };
/// assert_eq!(config.max_bulk_len, 1_048_576);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The longest bulk string (key or value) a client may send, in bytes; a longer one is
    /// a protocol error and closes the connection. Default: 512 MiB, as Redis's
    /// `proto-max-bulk-len` (see [`DEFAULT_MAX_BULK_LEN`]).
    pub max_bulk_len: usize,
    /// The most bytes of one unfinished request a connection may hold; past it the
    /// connection is closed, as by Redis's `client-query-buffer-limit`. Default: 1 GiB, or
    /// enough for one bulk string of `max_bulk_len` if that is more.
    pub max_query_len: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config { max_bulk_len: DEFAULT_MAX_BULK_LEN, max_query_len: 1 << 30 }
    }
}

impl Config {
    /// The query limit in force: never less than one maximal bulk string and its headers,
    /// or a value the bulk cap allows could not be received.
    fn query_limit(&self) -> usize {
        self.max_query_len.max(self.max_bulk_len.saturating_add(4 * MAX_LINE))
    }
}

/// What [`serve`] did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// How many connections it accepted.
    pub connections: u64,
}

/// What every connection shares. One thread, so a `RefCell` and a `Cell`: no locks.
#[derive(Debug)]
struct Shared {
    db: RefCell<Db>,
    next_client_id: Cell<u64>,
    config: Config,
}

/// Serves RESP2 clients on `listener` with the default [`Config`] until `shutdown`
/// completes. See [`serve_with`].
///
/// # Examples
///
/// ```no_run
/// #[mini::main]
/// async fn main() -> std::io::Result<()> {
///     let listener = mini::net::TcpListener::bind("127.0.0.1:6379").await?;
///     mini_ecosystem::redis::serve(listener, mini::signal::ctrl_c()).await;
///     Ok(())
/// }
/// ```
pub async fn serve(listener: TcpListener, shutdown: impl Future) -> Stats {
    serve_with(listener, Config::default(), shutdown).await
}

/// Serves RESP2 clients on `listener` until `shutdown` completes, then stops accepting,
/// closes every open connection (without waiting for their clients) and returns.
///
/// Each accepted connection gets a task of its own; a task running ten times a second
/// deletes expired keys nobody reads. If `accept` fails (out of file descriptors, say),
/// it says so once on stderr and retries every 100 ms until it works again.
///
/// # Panics
///
/// Outside a mini runtime.
///
/// # Examples
///
/// A server on an ephemeral port that stops after 10 ms:
///
/// ```
/// use mini_ecosystem::redis::{serve_with, Config};
///
/// mini::block_on(async {
///     let listener = mini::net::TcpListener::bind("127.0.0.1:0").await?;
///     let stop = mini::time::sleep(std::time::Duration::from_millis(10));
///     let stats = serve_with(listener, Config::default(), stop).await;
///     assert_eq!(stats.connections, 0);
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn serve_with(listener: TcpListener, config: Config, shutdown: impl Future) -> Stats {
    let shared = Rc::new(Shared { db: RefCell::new(Db::new()), next_client_id: Cell::new(1), config });
    let expiry = mini::task::Builder::new().name("redis expire").spawn(expire_keys(shared.clone()));
    let mut shutdown = pin!(shutdown);
    let mut connections: Vec<mini::JoinHandle<()>> = Vec::new();
    let mut prune_at = 64;
    let mut stats = Stats::default();
    let mut accept_failing = false;
    while let Some(accepted) = until(shutdown.as_mut(), listener.accept()).await {
        match accepted {
            Ok((stream, peer)) => {
                accept_failing = false;
                stats.connections += 1;
                // Forget finished connections now and then, not on every accept (that would
                // cost O(open connections) each time).
                if connections.len() >= prune_at {
                    connections.retain(|c| !c.is_finished());
                    prune_at = (2 * connections.len()).max(64);
                }
                // A name makes MINI_TRACE output and slow-poll warnings say which client.
                let task = mini::task::Builder::new().name(format!("redis client {peer}"));
                connections.push(task.spawn(connection(stream, shared.clone())));
            }
            Err(e) => {
                // Out of fds the listener stays readable, so retrying at once would spin.
                if !accept_failing {
                    accept_failing = true;
                    eprintln!("redis server: accept failed: {e}; retrying every {ACCEPT_BACKOFF:?}");
                }
                if until(shutdown.as_mut(), sleep(ACCEPT_BACKOFF)).await.is_none() {
                    break;
                }
            }
        }
    }
    // Cancel everything, then wait until it is gone: a cancelled task's future (and so its
    // socket) is dropped at the runtime's next turn, and the caller is promised that no
    // connection is open any more when this returns.
    expiry.abort();
    for c in &connections {
        c.abort();
    }
    let _ = expiry.await;
    for c in connections {
        let _ = c.await;
    }
    stats
}

/// Runs `work` unless `stop` completes first (checked first, so it wins a tie): `None`
/// then.
async fn until<S: Future + ?Sized, W: Future>(mut stop: std::pin::Pin<&mut S>, work: W) -> Option<W::Output> {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The active half of expiry (the lazy half is in `Db`): ten times a second, one bounded
/// pass over the keys that have a deadline; then the keyspace gives back memory if
/// deletions left it sparse (Redis resizes its dicts from the same cron).
async fn expire_keys(shared: Rc<Shared>) {
    let mut ticks = interval(EXPIRE_PERIOD);
    loop {
        ticks.tick().await;
        let start = Instant::now();
        let mut rounds = 0u32;
        shared.db.borrow_mut().expire_cycle(start, || {
            // Reading the clock costs more than a round: look every 16 rounds, as Redis does.
            rounds += 1;
            !rounds.is_multiple_of(16) || start.elapsed() < EXPIRE_BUDGET
        });
        shared.db.borrow_mut().shrink_if_sparse();
    }
}

/// A connection's read buffer: the bytes in `buf[start..end]` arrived and are not yet
/// consumed; `buf[end..]` is room for the next read.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub(crate) fn new() -> ReadBuf {
        ReadBuf { buf: vec![0; INITIAL_READ_BUF], start: 0, end: 0 }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }

    /// The room to read into; [`prepare`](ReadBuf::prepare) makes sure it is not empty.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// The buffer's size, for tests of its growth.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Makes room for the next read, and returns `false` if the unfinished request already
    /// holds `limit` bytes.
    ///
    /// - Empty and grown past its initial size (a big value went through): shrink back.
    /// - Little room left behind consumed bytes: move the unfinished frame to the front.
    /// - Full: grow. Double, or to `needed` (the end of the bulk string being received, see
    ///   [`Parser::needed`]) if that is less, so a 1.1 MB value does not take 2 MB. Either
    ///   way the buffer is at most twice the bytes received: a client that declares a
    ///   500 MB value and sends 10 bytes of it costs 16 KiB, not 500 MB.
    pub(crate) fn prepare(&mut self, needed: Option<usize>, limit: usize) -> bool {
        let pending = self.end - self.start;
        if pending == 0 && self.buf.len() > INITIAL_READ_BUF {
            self.buf = vec![0; INITIAL_READ_BUF];
            return true;
        }
        if self.start > 0 && self.buf.len() - self.end < INITIAL_READ_BUF / 4 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, pending);
        }
        if self.end == self.buf.len() {
            if pending >= limit {
                return false;
            }
            let doubled = self.buf.len().saturating_mul(2);
            let target = match needed {
                Some(needed) if needed > self.buf.len() => needed.min(doubled),
                _ => doubled,
            };
            self.buf.resize(target.min(limit.saturating_add(1)).max(self.buf.len() + 1), 0);
        }
        true
    }
}

/// One client, from accept to close.
async fn connection(mut stream: TcpStream, shared: Rc<Shared>) {
    // Small replies must leave at once, not wait for Nagle's algorithm to coalesce them
    // (Redis sets it too). Failure only costs latency, so it is not fatal.
    let _ = stream.set_nodelay(true);
    let id = shared.next_client_id.get();
    shared.next_client_id.set(id + 1);
    let mut session = Session::new(id);
    let mut parser = Parser::new(shared.config.max_bulk_len);
    let limit = shared.config.query_limit();
    let mut input = ReadBuf::new();
    let mut out = Vec::with_capacity(INITIAL_READ_BUF);
    loop {
        let mut flow = Flow::Continue;
        let mut now = Instant::now();
        loop {
            let data = input.data();
            match parser.parse(data) {
                Ok(Some(n)) => {
                    let mut db = shared.db.borrow_mut();
                    let mut ctx = Ctx {
                        db: &mut db,
                        now,
                        out: &mut out,
                        session: &mut session,
                        max_bulk_len: shared.config.max_bulk_len,
                    };
                    flow = execute(&mut ctx, parser.command(data));
                    drop(db);
                    input.consume(n);
                }
                Ok(None) => break,
                Err(e) => {
                    e.encode(&mut out);
                    flow = Flow::Close;
                }
            }
            if flow == Flow::Close {
                break;
            }
            if out.len() >= FLUSH_AT {
                if flush(&mut stream, &mut out).await.is_err() {
                    return;
                }
                now = Instant::now(); // the write may have waited
            }
        }
        if flush(&mut stream, &mut out).await.is_err() {
            return;
        }
        if flow == Flow::Close {
            return linger(stream).await;
        }
        if !input.prepare(parser.needed(), limit) {
            // Redis closes such a client without a reply, and logs it.
            eprintln!("redis server: closing client {id}: request over {limit} bytes");
            return;
        }
        match stream.read(input.spare()).await {
            Ok(0) | Err(_) => return, // end of stream: every reply has been written
            Ok(n) => input.filled(n),
        }
    }
}

/// Writes the replies gathered in `out`, if any, and empties it; gives its memory back if
/// big replies grew it.
async fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    stream.write_all(out).await?;
    out.clear();
    if out.capacity() > 2 * FLUSH_AT {
        *out = Vec::with_capacity(INITIAL_READ_BUF);
    }
    Ok(())
}

/// Closes a connection after its last reply: shuts down the write side (the client reads
/// end of stream after the reply), then drops input for a moment. See [`LINGER_TIME`].
async fn linger(mut stream: TcpStream) {
    if stream.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    let _ = timeout(LINGER_TIME, async {
        while dropped < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_buffer_grows_with_the_bytes_that_arrive_not_the_declared_length() {
        let mut buf = ReadBuf::new();
        let mut parser = Parser::default();
        // A 500 MB value is declared, and 100 bytes of it arrive.
        let header = b"*2\r\n$3\r\nGET\r\n$500000000\r\n";
        buf.spare()[..header.len()].copy_from_slice(header);
        buf.filled(header.len());
        buf.spare()[..100].fill(b'x');
        buf.filled(100);
        assert_eq!(parser.parse(buf.data()), Ok(None));
        assert!(parser.needed().unwrap() > 500_000_000);
        assert!(buf.prepare(parser.needed(), 1 << 30));
        assert_eq!(buf.capacity(), INITIAL_READ_BUF, "room left: no growth");
        // Fill it: now it may double, but no more.
        let room = buf.spare().len();
        buf.filled(room);
        assert!(buf.prepare(parser.needed(), 1 << 30));
        assert_eq!(buf.capacity(), 2 * INITIAL_READ_BUF);
    }

    #[test]
    fn the_read_buffer_grows_only_to_the_end_of_the_awaited_value() {
        let mut buf = ReadBuf::new();
        let len = INITIAL_READ_BUF + 100; // a bit more than the buffer
        let frame = [format!("*1\r\n${len}\r\n").as_bytes(), &vec![b'v'; len], b"\r\n"].concat();
        let room = buf.spare().len();
        buf.spare().copy_from_slice(&frame[..room]);
        buf.filled(room);
        let mut parser = Parser::default();
        assert_eq!(parser.parse(buf.data()), Ok(None));
        assert!(buf.prepare(parser.needed(), 1 << 30));
        assert_eq!(buf.capacity(), frame.len(), "exactly the frame, not double the buffer");
        buf.spare().copy_from_slice(&frame[room..]);
        buf.filled(frame.len() - room);
        assert_eq!(parser.parse(buf.data()), Ok(Some(frame.len())));
        buf.consume(frame.len());
        // Empty again: back to the initial size.
        assert!(buf.prepare(None, 1 << 30));
        assert_eq!(buf.capacity(), INITIAL_READ_BUF);
    }

    #[test]
    fn the_read_buffer_refuses_to_pass_the_limit() {
        let mut buf = ReadBuf::new();
        let room = buf.spare().len();
        buf.filled(room);
        assert!(buf.prepare(None, INITIAL_READ_BUF + 10));
        assert_eq!(buf.capacity(), INITIAL_READ_BUF + 11, "grown to one byte past the limit");
        let room = buf.spare().len();
        buf.filled(room);
        assert!(!buf.prepare(None, INITIAL_READ_BUF + 10));
    }

    #[test]
    fn the_read_buffer_moves_a_partial_frame_to_the_front_when_room_runs_out() {
        let mut buf = ReadBuf::new();
        let room = buf.spare().len();
        buf.filled(room - 10);
        buf.consume(room - 20); // 10 bytes of a frame left, 10 bytes of room
        assert!(buf.prepare(None, 1 << 30));
        assert_eq!(
            (buf.data().len(), buf.spare().len(), buf.capacity()),
            (10, INITIAL_READ_BUF - 10, INITIAL_READ_BUF)
        );
    }

    #[test]
    fn the_query_limit_always_fits_one_maximal_value() {
        let config = Config { max_bulk_len: 2 << 30, max_query_len: 1 << 20 };
        assert!(config.query_limit() > 2 << 30);
        assert_eq!(Config::default().query_limit(), 1 << 30);
    }
}
