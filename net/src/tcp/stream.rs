//! [`TcpStream`]: one connection.

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use mini_runtime::io::{
    Async, AsyncReadExt, AsyncWriteExt, Direction, Flush, Read, ReadExact, Write, WriteAll,
};
use mini_runtime::socket;

use crate::addr;
use crate::tcp::split::{self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};

/// A TCP connection.
///
/// Reads and writes are futures: `stream.read(&mut buf).await`, `stream.write_all(b"..").await`.
/// It implements the `futures-io` [`AsyncRead`] and [`AsyncWrite`] traits, so it works with
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
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each resolved address in turn.
    ///
    /// The connect is non-blocking: the socket is created, `connect` returns `EINPROGRESS`,
    /// the task waits until the socket is writable, then reads `SO_ERROR` for the outcome. A
    /// closed port gives [`io::ErrorKind::ConnectionRefused`].
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = addr::resolve(addr)?;
        addr::try_each(addrs, TcpStream::connect_one).await
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let (fd, in_progress) = socket::tcp_connect(addr)?;
        let stream = TcpStream::from_nonblocking_fd(fd)?;
        if in_progress {
            // The source starts out optimistically writable; a connecting socket is not.
            stream.io.clear_ready(Direction::Write);
            stream.io.writable().await?;
        }
        let s = stream.io.get_ref();
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        // Writable with no SO_ERROR but not connected would be a kernel oddity; report it
        // rather than hand out a dead stream.
        s.peer_addr()?;
        Ok(stream)
    }

    pub(crate) fn from_nonblocking_fd(fd: OwnedFd) -> io::Result<TcpStream> {
        Ok(TcpStream { io: Async::new_nonblocking(std::net::TcpStream::from(fd))? })
    }

    /// Wraps a stream created with std, putting it in non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream { io: Async::new(stream)? })
    }

    /// Reads some bytes into `buf`; `Ok(0)` means the peer closed its write side.
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Read<'a, Self> {
        AsyncReadExt::read(self, buf)
    }

    /// Reads exactly `buf.len()` bytes, or fails with `UnexpectedEof`.
    pub fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadExact<'a, Self> {
        AsyncReadExt::read_exact(self, buf)
    }

    /// Writes some bytes from `buf`, returning how many were written.
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> Write<'a, Self> {
        AsyncWriteExt::write(self, buf)
    }

    /// Writes all of `buf`, waiting for buffer space as needed.
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a, Self> {
        AsyncWriteExt::write_all(self, buf)
    }

    /// Completes at once: a TCP socket has no user-space buffer to flush.
    pub fn flush(&mut self) -> Flush<'_, Self> {
        AsyncWriteExt::flush(self)
    }

    /// Shuts down the read side, the write side, or both (`shutdown(2)`). After
    /// `Shutdown::Write` the peer reads end-of-stream but can still send to us.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
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
        let _ = poll_fn(|cx| self.io.poll_ready(cx, Direction::Closed)).await;
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Borrows the stream as a read half and a write half, usable at the same time (for
    /// example by `copy`, or by two futures joined in one task).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::split(self)
    }

    /// Splits the stream into owned halves that can move into different tasks. Dropping
    /// the write half shuts down the write side, as `close` would.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split::into_split(self)
    }

    // The shared implementation of every read and write, used by the stream and its halves.

    pub(crate) fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let n = ready!(self.io.poll_io(cx, Direction::Read, |s| socket::recv(s.as_fd(), buf)))?;
        self.io.note_stream_read(n, buf.len());
        Poll::Ready(Ok(n))
    }

    pub(crate) fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| socket::send(s.as_fd(), buf))
    }

    pub(crate) fn shutdown_write(&self) -> Poll<io::Result<()>> {
        Poll::Ready(match self.shutdown(Shutdown::Write) {
            // Already disconnected: there is nothing left to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            res => res,
        })
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shutdown_write()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.as_fd()
    }
}
