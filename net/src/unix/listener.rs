//! [`UnixListener`]: accepts connections on a filesystem path.

use std::future::poll_fn;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{ready, Context, Poll};

use mini_runtime::io::Async;
use mini_runtime::socket;

use crate::accept::{self, Incoming};
use crate::UnixStream;

/// The `listen(2)` backlog, as for TCP (the kernel caps it at `somaxconn`). A client that
/// finds it full waits in [`UnixStream::connect`].
const BACKLOG: i32 = 1024;

/// A Unix domain socket server, listening for connections on a path.
///
/// Binding creates a socket file at the path; dropping the listener closes the socket but
/// leaves the file, which must be removed before the path can be bound again (as with std).
///
/// # Examples
///
/// ```
/// use mini::net::{UnixListener, UnixStream};
///
/// # mini::block_on(async {
/// let path = std::env::temp_dir().join(format!("mini-doc-listener-{}.sock", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
///
/// let server = mini::spawn(async move {
///     let (mut stream, _peer) = listener.accept().await?;
///     let (mut reader, mut writer) = stream.split();
///     mini::io::copy(&mut reader, &mut writer).await
/// });
///
/// let mut client = UnixStream::connect(&path).await?;
/// client.write_all(b"echo").await?;
/// client.shutdown(std::net::Shutdown::Write)?;
/// let mut buf = [0; 4];
/// client.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"echo");
/// assert_eq!(server.await??, 4);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixListener {
    io: Async<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Creates a listener bound to `path` (backlog 1024). Fails with `AddrInUse` if a file
    /// exists at `path`, and with `InvalidInput` if the path is empty or longer than a
    /// socket address holds (107 bytes on Linux).
    ///
    /// Not async, as in tokio: binding a Unix socket never waits.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[inline]
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let fd = socket::unix_listen(path.as_ref(), BACKLOG)?;
        Ok(UnixListener { io: Async::new_nonblocking(std::os::unix::net::UnixListener::from(fd))? })
    }

    /// Wraps a listener created with std, putting it in non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[inline]
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener { io: Async::new(listener)? })
    }

    /// Waits for a connection and returns it with the peer's address (usually unnamed: a
    /// client rarely binds its socket to a path).
    ///
    /// As with [`TcpListener::accept`](crate::TcpListener::accept), errors that concern only
    /// the connection being accepted are skipped; those that concern the listener (out of
    /// fds or memory) are returned.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection (the poll form of [`accept`](Self::accept)).
    #[inline]
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let fd = ready!(accept::poll_accept(&self.io, cx, |l| socket::unix_accept(l.as_fd())))?;
        let stream = UnixStream::from_nonblocking_fd(fd)?;
        // Shortcut: one `getpeername` per connection, because std cannot build a `SocketAddr`
        // from the raw `sockaddr_un` that `accept4` could have filled in.
        let peer = stream.peer_addr()?;
        Poll::Ready(Ok((stream, peer)))
    }

    /// The connections as a `futures_core::Stream` of `io::Result<UnixStream>`: see [`Incoming`].
    /// (`docs/ecosystem.md` shows it with futures-util's `StreamExt`.)
    #[inline]
    pub fn incoming(&self) -> Incoming<'_, Self> {
        Incoming::new(self)
    }

    /// Gives the listener back as a std one, deregistered from the reactor and still in
    /// non-blocking mode.
    #[inline]
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.io.into_inner()
    }

    /// The address the listener is bound to.
    #[inline]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl std::os::fd::AsFd for UnixListener {
    #[inline]
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.as_fd()
    }
}

impl std::os::fd::AsRawFd for UnixListener {
    #[inline]
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.as_fd().as_raw_fd()
    }
}
