//! [`TcpSocket`]: a TCP socket configured before it listens or connects.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use mini_runtime::socket::{self, SockOpt};

use crate::{TcpListener, TcpStream};

/// A TCP socket that is not yet listening or connected, for the options that must be set
/// before `bind`, `listen` or `connect` (`SO_REUSEPORT` for one listener per core, buffer
/// sizes, keepalive timing), as tokio's `TcpSocket`.
///
/// # Examples
///
/// Two listeners on one port (one per worker thread or process): the kernel spreads new
/// connections among them.
///
/// ```
/// use mini::net::TcpSocket;
///
/// # mini::block_on(async {
/// let first = TcpSocket::new_v4()?;
/// first.set_reuseport(true)?;
/// first.bind("127.0.0.1:0".parse().unwrap())?;
/// let addr = first.local_addr()?;
/// let first = first.listen(1024)?;
///
/// let second = TcpSocket::new_v4()?;
/// second.set_reuseport(true)?;
/// second.bind(addr)?;
/// let second = second.listen(1024)?;
/// # drop((first, second));
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    fd: OwnedFd,
}

impl TcpSocket {
    /// A new IPv4 TCP socket (non-blocking, close-on-exec).
    pub fn new_v4() -> io::Result<TcpSocket> {
        Ok(TcpSocket { fd: socket::tcp_socket(&SocketAddr::from(([0, 0, 0, 0], 0)))? })
    }

    /// A new IPv6 TCP socket.
    pub fn new_v6() -> io::Result<TcpSocket> {
        Ok(TcpSocket { fd: socket::tcp_socket(&SocketAddr::from(([0u16; 8], 0)))? })
    }

    fn set(&self, opt: SockOpt, value: i32) -> io::Result<()> {
        socket::set_option(self.fd.as_fd(), opt, value)
    }

    fn get(&self, opt: SockOpt) -> io::Result<i32> {
        socket::option(self.fd.as_fd(), opt)
    }

    /// `SO_REUSEADDR`: bind a port whose old connections are still in `TIME_WAIT`.
    #[inline]
    pub fn set_reuseaddr(&self, reuse: bool) -> io::Result<()> {
        self.set(SockOpt::ReuseAddr, i32::from(reuse))
    }

    /// Whether `SO_REUSEADDR` is set.
    #[inline]
    pub fn reuseaddr(&self) -> io::Result<bool> {
        Ok(self.get(SockOpt::ReuseAddr)? != 0)
    }

    /// `SO_REUSEPORT`: several sockets (of this process's threads, or of other processes of
    /// the same user) may bind the same address; the kernel balances new connections.
    #[inline]
    pub fn set_reuseport(&self, reuse: bool) -> io::Result<()> {
        self.set(SockOpt::ReusePort, i32::from(reuse))
    }

    /// Whether `SO_REUSEPORT` is set.
    #[inline]
    pub fn reuseport(&self) -> io::Result<bool> {
        Ok(self.get(SockOpt::ReusePort)? != 0)
    }

    /// `TCP_NODELAY`: send small writes at once instead of coalescing them (Nagle).
    #[inline]
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.set(SockOpt::NoDelay, i32::from(nodelay))
    }

    /// Whether `TCP_NODELAY` is set.
    #[inline]
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.get(SockOpt::NoDelay)? != 0)
    }

    /// `SO_KEEPALIVE`: probe the peer when the connection has been idle.
    #[inline]
    pub fn set_keepalive(&self, keepalive: bool) -> io::Result<()> {
        self.set(SockOpt::KeepAlive, i32::from(keepalive))
    }

    /// Whether keepalive probes are on.
    #[inline]
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(self.get(SockOpt::KeepAlive)? != 0)
    }

    /// `TCP_KEEPIDLE`: idle time before the first probe (whole seconds, at least 1).
    #[inline]
    pub fn set_keepalive_idle(&self, idle: Duration) -> io::Result<()> {
        self.set(SockOpt::KeepIdle, whole_seconds(idle)?)
    }

    /// The idle time before the first probe.
    #[inline]
    pub fn keepalive_idle(&self) -> io::Result<Duration> {
        Ok(Duration::from_secs(self.get(SockOpt::KeepIdle)?.max(0) as u64))
    }

    /// `TCP_KEEPINTVL`: time between probes (whole seconds, at least 1).
    #[inline]
    pub fn set_keepalive_interval(&self, interval: Duration) -> io::Result<()> {
        self.set(SockOpt::KeepInterval, whole_seconds(interval)?)
    }

    /// The time between probes.
    #[inline]
    pub fn keepalive_interval(&self) -> io::Result<Duration> {
        Ok(Duration::from_secs(self.get(SockOpt::KeepInterval)?.max(0) as u64))
    }

    /// `TCP_KEEPCNT`: unanswered probes before the connection is dropped.
    #[inline]
    pub fn set_keepalive_retries(&self, retries: u32) -> io::Result<()> {
        self.set(SockOpt::KeepCount, i32::try_from(retries).map_err(|_| invalid("too many retries"))?)
    }

    /// Unanswered probes before the connection is dropped.
    #[inline]
    pub fn keepalive_retries(&self) -> io::Result<u32> {
        Ok(self.get(SockOpt::KeepCount)?.max(0) as u32)
    }

    /// `SO_LINGER` (see [`TcpStream::set_linger`]).
    #[inline]
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        socket::set_linger(self.fd.as_fd(), linger)
    }

    /// The `SO_LINGER` setting.
    #[inline]
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        socket::linger(self.fd.as_fd())
    }

    /// `SO_SNDBUF`. The kernel doubles the value (for its bookkeeping) and clamps it to
    /// `net.core.wmem_max`; [`send_buffer_size`](Self::send_buffer_size) reads what it kept.
    #[inline]
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.set(SockOpt::SendBuffer, i32::try_from(size).map_err(|_| invalid("buffer size too large"))?)
    }

    /// The send buffer size the kernel uses.
    #[inline]
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        Ok(self.get(SockOpt::SendBuffer)?.max(0) as u32)
    }

    /// `SO_RCVBUF`, doubled and clamped likewise (`net.core.rmem_max`).
    #[inline]
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.set(SockOpt::RecvBuffer, i32::try_from(size).map_err(|_| invalid("buffer size too large"))?)
    }

    /// The receive buffer size the kernel uses.
    #[inline]
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        Ok(self.get(SockOpt::RecvBuffer)?.max(0) as u32)
    }

    /// `IPV6_V6ONLY` (IPv6 sockets only): refuse IPv4-mapped traffic, so that an IPv4
    /// socket can bind the same port.
    #[inline]
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        self.set(SockOpt::OnlyV6, i32::from(only_v6))
    }

    /// Whether `IPV6_V6ONLY` is set.
    #[inline]
    pub fn only_v6(&self) -> io::Result<bool> {
        Ok(self.get(SockOpt::OnlyV6)? != 0)
    }

    /// Binds the socket to `addr` (port 0: a free port, see [`local_addr`](Self::local_addr)).
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        socket::bind(self.fd.as_fd(), &addr)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.fd.as_fd())
    }

    /// Starts listening with room for `backlog` connections not yet accepted (the kernel
    /// caps it at `somaxconn`).
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        socket::listen(self.fd.as_fd(), backlog)?;
        TcpListener::from_nonblocking_fd(self.fd)
    }

    /// Connects to `addr`, as [`TcpStream::connect`] does for one address.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect_fd(self.fd, addr).await
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// A keepalive time in whole seconds, as the kernel takes it (1 to `i32::MAX`).
fn whole_seconds(d: Duration) -> io::Result<i32> {
    match i32::try_from(d.as_secs()) {
        Ok(secs) if secs >= 1 => Ok(secs),
        _ => Err(invalid("keepalive times are whole seconds, from 1 s")),
    }
}

impl AsFd for TcpSocket {
    #[inline]
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TcpSocket {
    #[inline]
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
