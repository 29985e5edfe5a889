//! [`TcpListener`]: accepts connections.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::task::{ready, Context, Poll};

use mini_runtime::io::Async;
use mini_runtime::socket;

use crate::accept::{self, Incoming};
use crate::addr;
use crate::TcpStream;
use crate::ToSocketAddrs;

/// The `listen(2)` backlog: connections the kernel completes before `accept` takes them.
/// std uses 128, which a burst of a thousand connects overflows (the extra SYNs are dropped
/// and retried a second later). 1024 is tokio's figure; the kernel caps it at `somaxconn`.
const BACKLOG: i32 = 1024;

/// A TCP socket server, listening for connections.
///
/// # Examples
///
/// ```no_run
/// #[mini::main]
/// async fn main() -> std::io::Result<()> {
///     let listener = mini::net::TcpListener::bind("127.0.0.1:8080").await?;
///     loop {
///         let (mut stream, peer) = listener.accept().await?;
///         mini::spawn(async move {
///             let (mut reader, mut writer) = stream.split();
///             let _ = mini::io::copy(&mut reader, &mut writer).await;
///             println!("{peer} left");
///         });
///     }
/// }
/// ```
#[derive(Debug)]
pub struct TcpListener {
    io: Async<std::net::TcpListener>,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (`SO_REUSEADDR` set, backlog 1024). If `addr`
    /// yields several addresses, each is tried in turn. Port 0 picks a free port: see
    /// [`local_addr`](Self::local_addr).
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addrs = addr::resolve_async(addr).await?;
        addr::try_each(
            addrs,
            |a| async move { TcpListener::from_nonblocking_fd(socket::tcp_listen(a, BACKLOG)?) },
        )
        .await
    }

    /// Wraps a listening socket that is already non-blocking (from `TcpSocket::listen`).
    pub(crate) fn from_nonblocking_fd(fd: std::os::fd::OwnedFd) -> io::Result<TcpListener> {
        Ok(TcpListener { io: Async::new_tcp_listener(std::net::TcpListener::from(fd))? })
    }

    /// Wraps a listener created with std, putting it in non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[inline]
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener { io: Async::new_tcp_listener(listener)? })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// Errors that concern only the connection being accepted are skipped: a peer that
    /// aborted before it was accepted (`ECONNABORTED`), a protocol error, a firewall refusal
    /// (`EPERM`), a network error pending on the new socket. A server loop that ends with `?`
    /// should not stop serving everyone else because of one client. The errors that remain
    /// concern the listener: out of fds (`EMFILE`, `ENFILE`) or memory (`ENOBUFS`,
    /// `ENOMEM`), after which a server usually waits a little and accepts again.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection (the poll form of [`accept`](Self::accept)).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        // The io_uring driver accepts ahead (one multishot accept); the peer's address is
        // asked for afterwards.
        if let Some(accepted) = self.io.poll_accept_completion(cx) {
            let fd = ready!(accepted)?;
            let stream = TcpStream::from_nonblocking_fd(fd)?;
            return Poll::Ready(stream.peer_addr().map(|peer| (stream, peer)));
        }
        let (fd, peer) = ready!(accept::poll_accept(&self.io, cx, |l| socket::accept(l.as_fd())))?;
        Poll::Ready(TcpStream::from_nonblocking_fd(fd).map(|s| (s, peer)))
    }

    /// The connections as a `futures_core::Stream` of `io::Result<TcpStream>`: see [`Incoming`].
    /// (`docs/ecosystem.md` shows it with futures-util's `StreamExt`.)
    #[inline]
    pub fn incoming(&self) -> Incoming<'_, Self> {
        Incoming::new(self)
    }

    /// Sets the IP time-to-live of the accepted connections' packets (`IP_TTL`).
    #[inline]
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The IP time-to-live set with [`set_ttl`](Self::set_ttl).
    #[inline]
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Gives the listener back as a std one, deregistered from the reactor and still in
    /// non-blocking mode.
    #[inline]
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.io.into_inner()
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl std::os::fd::AsFd for TcpListener {
    #[inline]
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.as_fd()
    }
}

impl std::os::fd::AsRawFd for TcpListener {
    #[inline]
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.as_fd().as_raw_fd()
    }
}
