//! [`TcpStream`]: one connection.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use mini_runtime::io::{Async, Direction};
use mini_runtime::socket;

use crate::addr;
use crate::tcp::eyeballs;
use crate::ToSocketAddrs;

/// A TCP connection.
///
/// Reads and writes are futures: `stream.read(&mut buf).await`, `stream.write_all(b"..").await`.
/// It implements the `futures-io` [`AsyncRead`](futures_io::AsyncRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite) traits, so it works with
/// [`mini::io::copy`](mini_runtime::io::copy) and any library written against them.
///
/// # Examples
///
/// ```
/// use mini::net::{TcpListener, TcpStream};
///
/// # mini::block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
///
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpStream {
    io: Async<std::net::TcpStream>,
    /// `AsyncBufRead` on the epoll driver: what `poll_fill_buf` read and the caller has not
    /// consumed yet, in a buffer allocated on first use. Reads take from it first. (On the
    /// io_uring driver `poll_fill_buf` lends the driver's receive buffer itself; this stays
    /// empty.)
    buffered: RefCell<Option<Box<ReadBuf>>>,
    /// Whether `buffered` may hold unread bytes: a plain flag, so that a read on a stream that
    /// never used `fill_buf` (the usual case) costs one load, not a `RefCell` borrow.
    maybe_buffered: Cell<bool>,
}

/// The epoll driver's `AsyncBufRead` buffer: `bytes[pos..end]` are unread.
#[derive(Debug)]
struct ReadBuf {
    bytes: Box<[u8]>,
    pos: usize,
    end: usize,
}

/// The size of that buffer (as `futures::io::BufReader`'s default).
const READ_BUF: usize = 8 * 1024;

crate::stream::stream_io!(TcpStream, read(this, cx, buf) => this.poll_read_tcp(cx, buf));

impl TcpStream {
    fn new(io: Async<std::net::TcpStream>) -> TcpStream {
        TcpStream { io, buffered: RefCell::new(None), maybe_buffered: Cell::new(false) }
    }

    /// A read: the bytes a `poll_fill_buf` left first, then the socket.
    #[inline(always)]
    fn poll_read_tcp(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.maybe_buffered.get() {
            return self.poll_read_buffered(cx, buf);
        }
        self.io.poll_read_tcp(cx, buf)
    }

    /// `poll_read_tcp` on a stream that has used `fill_buf`: out of line, so that the usual
    /// read stays as small as it was before `AsyncBufRead` (issue 13's instruction counts).
    #[cold]
    #[inline(never)]
    fn poll_read_buffered(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.take_buffered(buf, true) {
            Some(n) => Poll::Ready(Ok(n)),
            None => self.io.poll_read_tcp(cx, buf),
        }
    }

    #[inline]
    fn try_read_priv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.take_buffered(buf, true) {
            Some(n) => Ok(n),
            None => self.io.try_read_stream(buf),
        }
    }

    /// Copies bytes that `poll_fill_buf` buffered and nobody consumed (`None` if there are
    /// none), taking them out of the buffer if `consume`.
    #[inline]
    fn take_buffered(&self, buf: &mut [u8], consume: bool) -> Option<usize> {
        if !self.maybe_buffered.get() {
            return None;
        }
        let mut buffered = self.buffered.borrow_mut();
        let b = buffered.as_mut().filter(|b| b.pos < b.end)?;
        let n = (b.end - b.pos).min(buf.len());
        buf[..n].copy_from_slice(&b.bytes[b.pos..b.pos + n]);
        if consume {
            b.pos += n;
        }
        Some(n)
    }
}

/// `fill_buf` without a copy on the io_uring driver: the bytes are the driver's receive
/// buffer, lent until `consume`. On epoll, a buffer of the stream's own (8 KiB, allocated on
/// first use), as `futures::io::BufReader` would add.
impl futures_io::AsyncBufRead for TcpStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.io.is_completion_stream() {
            return this.io.poll_fill_buf_tcp(cx).expect("a completion stream lends its buffer");
        }
        let b = this.buffered.get_mut().get_or_insert_with(|| {
            Box::new(ReadBuf { bytes: vec![0; READ_BUF].into_boxed_slice(), pos: 0, end: 0 })
        });
        if b.pos == b.end {
            let n = ready!(this.io.poll_read_tcp(cx, &mut b.bytes))?;
            (b.pos, b.end) = (0, n);
        }
        this.maybe_buffered.set(true);
        Poll::Ready(Ok(&b.bytes[b.pos..b.end]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        match this.buffered.get_mut() {
            Some(b) if b.pos < b.end => b.pos = (b.pos + amt).min(b.end),
            _ => this.io.consume_tcp(amt),
        }
    }
}

impl TcpStream {
    /// Opens a connection to `addr`. A name with several addresses is connected "happy
    /// eyeballs" style: an address that has not answered within 250 ms gets the next one
    /// tried beside it, and the first to connect wins, so a dead address does not hold the
    /// connect for the kernel's two-minute SYN timeout (see [`connect_timeout`] to bound the
    /// whole connect).
    ///
    /// The connect is non-blocking: the socket is created, `connect` returns `EINPROGRESS`,
    /// the task waits until the socket is writable, then reads `SO_ERROR` for the outcome. A
    /// closed port gives [`io::ErrorKind::ConnectionRefused`]; with several addresses, the
    /// error is the last one's.
    ///
    /// [`connect_timeout`]: TcpStream::connect_timeout
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = addr::resolve_async(addr).await?;
        if let [one] = addrs[..] {
            return TcpStream::connect_one(one).await; // the common case: no race to run
        }
        eyeballs::race(addrs, TcpStream::connect_one, eyeballs::ATTEMPT_DELAY).await
    }

    /// [`connect`](TcpStream::connect), given up after `timeout` (name lookup included) with
    /// [`io::ErrorKind::TimedOut`].
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub async fn connect_timeout(
        addr: impl ToSocketAddrs,
        timeout: std::time::Duration,
    ) -> io::Result<TcpStream> {
        mini_runtime::time::timeout(timeout, TcpStream::connect(addr)).await?
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let (fd, in_progress) = socket::tcp_connect(addr)?;
        TcpStream::finish_connect(fd, in_progress).await
    }

    /// Connects the unconnected socket `fd` (from [`TcpSocket`](crate::TcpSocket)) to `addr`.
    pub(crate) async fn connect_fd(fd: OwnedFd, addr: SocketAddr) -> io::Result<TcpStream> {
        let in_progress = socket::connect(fd.as_fd(), &addr)?;
        TcpStream::finish_connect(fd, in_progress).await
    }

    /// Registers a socket whose `connect` has been started, and waits for its outcome.
    async fn finish_connect(fd: OwnedFd, in_progress: bool) -> io::Result<TcpStream> {
        let io = Async::new_nonblocking(std::net::TcpStream::from(fd))?;
        if in_progress {
            // The source starts out optimistically writable; a connecting socket is not.
            io.clear_ready(Direction::Write);
            io.writable().await?;
        }
        let s = io.get_ref();
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        // Writable with no SO_ERROR but not connected would be a kernel oddity; report it
        // rather than hand out a dead stream.
        s.peer_addr()?;
        // On the io_uring driver the connected stream moves to the completion path.
        Ok(TcpStream::new(io.connected()?))
    }

    /// A connected (accepted) socket.
    pub(crate) fn from_nonblocking_fd(fd: OwnedFd) -> io::Result<TcpStream> {
        Ok(TcpStream::new(Async::new_tcp(std::net::TcpStream::from(fd))?))
    }

    /// Wraps a stream created with std, putting it in non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[inline]
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream::new(Async::new_tcp(stream)?))
    }

    /// Resolves once the peer has closed its side or reset the connection (from
    /// `EPOLLRDHUP`/`EPOLLHUP`, or a read that returned end-of-stream), without reading any
    /// data. Useful to stop work for a client that went away.
    ///
    /// A local `shutdown(Shutdown::Read)` looks the same to the kernel (Linux reports
    /// `EPOLLRDHUP` for both), so after one, `peer_closed` resolves too.
    ///
    /// ```
    /// # use mini::net::{TcpListener, TcpStream};
    /// # mini::block_on(async {
    /// # let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// drop(client);
    /// server.peer_closed().await;
    /// # Ok::<(), std::io::Error>(())
    /// # })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn peer_closed(&self) {
        let _ = self.io.peer_closed().await;
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    #[inline]
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    #[inline]
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `SO_LINGER`: `Some(d)` makes dropping the stream wait up to `d` (whole seconds)
    /// for unsent data, and `Some(Duration::ZERO)` resets the connection instead of closing
    /// it gracefully; `None` (the default) closes in the background.
    #[inline]
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
        socket::set_linger(self.as_fd(), linger)
    }

    /// The `SO_LINGER` setting.
    #[inline]
    pub fn linger(&self) -> io::Result<Option<std::time::Duration>> {
        socket::linger(self.as_fd())
    }

    /// Turns TCP keepalive probes on or off (`SO_KEEPALIVE`); tune them with
    /// [`TcpSocket`](crate::TcpSocket) before connecting.
    #[inline]
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        socket::set_option(self.as_fd(), socket::SockOpt::KeepAlive, i32::from(keepalive))
    }

    /// Whether keepalive probes are on.
    #[inline]
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(socket::option(self.as_fd(), socket::SockOpt::KeepAlive)? != 0)
    }

    /// Reads into `buf` without taking the bytes out of the receive queue (`MSG_PEEK`):
    /// the next read returns them again. Waits until data (or end of stream) is there.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.take_buffered(buf, false) {
            Some(n) => Ok(n),
            None => self.io.peek_tcp(buf).await,
        }
    }

    /// Sets the IP time-to-live of outgoing packets (`IP_TTL`).
    #[inline]
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The IP time-to-live of outgoing packets.
    #[inline]
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Gives the socket back as a std stream, deregistered from the reactor and still in
    /// non-blocking mode (call `set_nonblocking(false)` to use it with blocking calls).
    #[inline]
    ///
    /// Bytes already received and not read yet (on the io_uring driver, or left by
    /// `AsyncBufRead::fill_buf`) would be lost: that is an error (`InvalidData`).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        if let Some(b) = self.buffered.borrow().as_ref().filter(|b| b.pos < b.end) {
            let unread = b.end - b.pos;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{unread} bytes read ahead by fill_buf were not consumed; into_std would lose them"),
            ));
        }
        self.io.into_inner()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

#[cfg(test)]
mod tests {
    use std::future::{poll_fn, Future};
    use std::pin::pin;
    use std::rc::Rc;
    use std::task::Poll;

    use super::*;
    use crate::TcpListener;

    /// The pattern that made a given-up wait costly: per-request tasks on a keep-alive
    /// connection that race their work against `peer_closed()` (a `select!`), and finish when
    /// the work wins. Each lost `peer_closed` must leave the connection's waiter list at once:
    /// before, 20,000 such requests left 20,000 wakers there until the connection closed,
    /// and each new wait scanned them all.
    #[test]
    fn requests_racing_peer_closed_leave_no_waiters_behind() {
        mini_runtime::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let _client = TcpStream::connect(listener.local_addr()?).await?;
            let conn = Rc::new(listener.accept().await?.0);
            for _batch in 0..4 {
                let requests: Vec<_> = (0..5_000)
                    .map(|_| {
                        let conn = conn.clone();
                        mini_runtime::spawn(async move {
                            let mut closed = pin!(conn.peer_closed());
                            let mut work = pin!(mini_runtime::yield_now());
                            poll_fn(|cx| match work.as_mut().poll(cx) {
                                Poll::Ready(()) => Poll::Ready(true),
                                Poll::Pending => closed.as_mut().poll(cx).map(|()| false),
                            })
                            .await
                        })
                    })
                    .collect();
                for request in requests {
                    assert!(request.await.unwrap(), "the work wins: the peer is still connected");
                }
                assert_eq!(conn.io.waiter_count(), 0, "given-up peer_closed waits stayed registered");
            }
            Ok::<(), io::Error>(())
        })
        .unwrap();
    }
}
