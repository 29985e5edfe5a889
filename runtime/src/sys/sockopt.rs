//! Socket options, `bind` and `listen` for a socket configured before use (`TcpSocket`).
//!
//! Every integer option goes through one pair of calls, `set_option`/`option`, named by
//! [`SockOpt`], so that `net` configures sockets without naming libc.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use super::socket::{from_sockaddr, set_int_option, to_sockaddr};

/// An integer socket option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SockOpt {
    /// `SO_REUSEADDR`: bind a port that has connections in `TIME_WAIT`.
    ReuseAddr,
    /// `SO_REUSEPORT`: several sockets (threads, processes) bind the same address; the
    /// kernel spreads new connections among the listeners.
    ReusePort,
    /// `TCP_NODELAY`: send small segments at once (no Nagle).
    NoDelay,
    /// `SO_KEEPALIVE`: probe an idle connection.
    KeepAlive,
    /// `TCP_KEEPIDLE`: seconds of idleness before the first probe.
    KeepIdle,
    /// `TCP_KEEPINTVL`: seconds between probes.
    KeepInterval,
    /// `TCP_KEEPCNT`: unanswered probes before the connection is dropped.
    KeepCount,
    /// `SO_SNDBUF`: the send buffer size (the kernel doubles what is set, for bookkeeping).
    SendBuffer,
    /// `SO_RCVBUF`: the receive buffer size (doubled likewise).
    RecvBuffer,
    /// `IPV6_V6ONLY`: an IPv6 socket that does not also take IPv4-mapped traffic.
    OnlyV6,
}

impl SockOpt {
    fn level_and_name(self) -> (libc::c_int, libc::c_int) {
        match self {
            SockOpt::ReuseAddr => (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            SockOpt::ReusePort => (libc::SOL_SOCKET, libc::SO_REUSEPORT),
            SockOpt::NoDelay => (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            SockOpt::KeepAlive => (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            SockOpt::KeepIdle => (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            SockOpt::KeepInterval => (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            SockOpt::KeepCount => (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
            SockOpt::SendBuffer => (libc::SOL_SOCKET, libc::SO_SNDBUF),
            SockOpt::RecvBuffer => (libc::SOL_SOCKET, libc::SO_RCVBUF),
            SockOpt::OnlyV6 => (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        }
    }
}

/// `setsockopt` of an integer option.
#[inline]
pub fn set_option(fd: BorrowedFd<'_>, opt: SockOpt, value: i32) -> io::Result<()> {
    let (level, name) = opt.level_and_name();
    set_int_option(fd, level, name, value)
}

/// `getsockopt` of an integer option.
#[inline]
pub fn option(fd: BorrowedFd<'_>, opt: SockOpt) -> io::Result<i32> {
    let (level, name) = opt.level_and_name();
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(fd.as_raw_fd(), level, name, (&mut value as *mut libc::c_int).cast(), &mut len))?;
    Ok(value)
}

/// `SO_LINGER`: `Some(d)` makes `close` wait up to `d` for unsent data (whole seconds;
/// `Some(0)` resets the connection on close), `None` is the default background close.
#[inline]
pub fn set_linger(fd: BorrowedFd<'_>, linger: Option<Duration>) -> io::Result<()> {
    let secs = linger.map_or(0, |d| libc::c_int::try_from(d.as_secs()).unwrap_or(libc::c_int::MAX));
    let value = libc::linger { l_onoff: libc::c_int::from(linger.is_some()), l_linger: secs };
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        (&value as *const libc::linger).cast(),
        mem::size_of::<libc::linger>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// The `SO_LINGER` setting (see [`set_linger`]).
#[inline]
pub fn linger(fd: BorrowedFd<'_>) -> io::Result<Option<Duration>> {
    let mut value = libc::linger { l_onoff: 0, l_linger: 0 };
    let mut len = mem::size_of::<libc::linger>() as libc::socklen_t;
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        (&mut value as *mut libc::linger).cast(),
        &mut len
    ))?;
    Ok((value.l_onoff != 0).then(|| Duration::from_secs(value.l_linger.max(0) as u64)))
}

/// `bind(2)`.
pub fn bind(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = to_sockaddr(addr);
    syscall!(bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len))?;
    Ok(())
}

/// `listen(2)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    syscall!(listen(fd.as_raw_fd(), backlog))?;
    Ok(())
}

/// `getsockname(2)`: the address a socket is bound to.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    syscall!(getsockname(fd.as_raw_fd(), (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len))?;
    from_sockaddr(&storage)
}
