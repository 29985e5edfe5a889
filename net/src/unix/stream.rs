//! [`UnixStream`]: one connection over a Unix domain socket.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mini_runtime::io::Async;
use mini_runtime::{socket, time};

/// The first pause before retrying a connect that found the listener's backlog full; each
/// retry doubles it, up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(1);
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(64);

/// A Unix domain stream connection.
///
/// Works as [`TcpStream`](crate::TcpStream) does: reads and writes are futures
/// (`stream.read(&mut buf).await`, `stream.write_all(b"..").await`), and it implements the
/// `futures-io` [`AsyncRead`](futures_io::AsyncRead) and [`AsyncWrite`](futures_io::AsyncWrite)
/// traits, so it works with [`mini::io::copy`](mini_runtime::io::copy).
///
/// # Examples
///
/// ```
/// use mini::net::UnixStream;
///
/// # mini::block_on(async {
/// let (mut a, mut b) = UnixStream::pair()?;
/// a.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// b.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
///
/// // Or through a listener at a path:
/// let path = std::env::temp_dir().join(format!("mini-doc-stream-{}.sock", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = mini::net::UnixListener::bind(&path)?;
/// let mut client = UnixStream::connect(&path).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"pong").await?;
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"pong");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixStream {
    io: Async<std::os::unix::net::UnixStream>,
}

// A plain `recv`, recording only end of stream: a short read proves nothing here (it also
// stops at a message carrying fds).
crate::stream::stream_io!(UnixStream, read(this, cx, buf) => {
    let n = std::task::ready!(this.io.poll_io(cx, mini_runtime::io::Direction::Read, |s| {
        mini_runtime::socket::recv(std::os::fd::AsFd::as_fd(s), buf)
    }))?;
    this.io.note_read(n, buf.len());
    std::task::Poll::Ready(Ok(n))
});

impl UnixStream {
    #[inline]
    fn try_read_priv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read_stream(buf)
    }
}

impl UnixStream {
    /// Connects to the listener at `path`.
    ///
    /// A Unix connect completes at once, or fails: `NotFound` if no socket file exists at
    /// `path`, `ConnectionRefused` if one exists but nothing listens on it, `InvalidInput`
    /// for a path that is empty or longer than a socket address holds (107 bytes on Linux).
    ///
    /// If the listener's backlog is full, the kernel answers `EAGAIN` and gives no readiness
    /// event for the moment a slot frees. This future then retries after a pause (1 ms,
    /// doubling up to 64 ms) until the listener accepts enough connections, as a blocking
    /// `connect` would wait. Wrap it in [`mini::time::timeout`](mini_runtime::time::timeout)
    /// to bound the wait. (tokio, through mio, returns the `WouldBlock` error to the caller
    /// instead.)
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let fd = socket::unix_socket()?;
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            match socket::unix_connect(fd.as_fd(), path) {
                Ok(()) => return UnixStream::from_nonblocking_fd(fd),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A connected pair of streams, with no path and no listener (`socketpair(2)`).
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[inline]
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket::unix_pair()?;
        Ok((UnixStream::from_nonblocking_fd(a)?, UnixStream::from_nonblocking_fd(b)?))
    }

    pub(crate) fn from_nonblocking_fd(fd: OwnedFd) -> io::Result<UnixStream> {
        Ok(UnixStream { io: Async::new_nonblocking(std::os::unix::net::UnixStream::from(fd))? })
    }

    /// Wraps a stream created with std, putting it in non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[inline]
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream { io: Async::new(stream)? })
    }

    /// Resolves once the peer has closed its side or the connection is gone (from
    /// `EPOLLRDHUP`/`EPOLLHUP`, or a read that returned end-of-stream), without reading any
    /// data. Useful to stop work for a client that went away.
    ///
    /// ```
    /// # mini::block_on(async {
    /// let (a, b) = mini::net::UnixStream::pair()?;
    /// drop(a);
    /// b.peer_closed().await;
    /// # Ok::<(), std::io::Error>(())
    /// # })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn peer_closed(&self) {
        let _ = self.io.peer_closed().await;
    }

    /// Gives the socket back as a std stream, deregistered from the reactor and still in
    /// non-blocking mode (call `set_nonblocking(false)` to use it with blocking calls).
    #[inline]
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.io.into_inner()
    }

    /// The remote address (unnamed for a client that did not bind, and for either end of a
    /// [`pair`](Self::pair)).
    #[inline]
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address (the listener's path on an accepted stream, usually unnamed on a
    /// client).
    #[inline]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}
