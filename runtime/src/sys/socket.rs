//! Sockets: creation, connect, accept, send and receive, with the address conversions.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use super::retry_eintr;

/// A `sockaddr_storage` holding an IPv4 or IPv6 address, and its length.
pub(super) fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for any sockaddr_* type.
            unsafe { (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>().write(sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, sockaddr_storage can hold a sockaddr_in6.
            unsafe { (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>().write(sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Reads back an address the kernel wrote into a `sockaddr_storage`.
pub(super) fn from_sockaddr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel set ss_family to AF_INET, so the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel set ss_family to AF_INET6, so the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "unsupported address family")),
    }
}

/// A `sockaddr_un` naming `path` in the filesystem, and its length (up to and including the
/// terminating NUL). A path that is empty, holds a NUL byte, or does not fit in `sun_path`
/// with its NUL (107 bytes at most on Linux) is `InvalidInput`: the kernel would otherwise
/// silently use a truncated name, or an abstract one.
fn unix_sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value (and NUL-fills the path).
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a socket path must be non-empty and free of NUL bytes",
        ));
    }
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long: sun_path holds 107 bytes and a terminating NUL",
        ));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    // sun_path directly follows sun_family; the length counts the NUL, as `SUN_LEN` does.
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

fn new_socket(addr: &SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    new_socket_in(domain, ty)
}

fn new_socket_in(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    let fd = syscall!(socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: socket just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking TCP listener: `socket`, `SO_REUSEADDR`, `bind`, `listen(backlog)`.
pub fn tcp_listen(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let fd = new_socket(&addr, libc::SOCK_STREAM)?;
    set_int_option(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    let (storage, len) = to_sockaddr(&addr);
    syscall!(bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len))?;
    syscall!(listen(fd.as_raw_fd(), backlog))?;
    Ok(fd)
}

/// Starts a non-blocking TCP connect. Returns the socket and whether the connect is still
/// in progress (`EINPROGRESS`): then the caller waits until the socket is writable and reads
/// `SO_ERROR` for the outcome.
pub fn tcp_connect(addr: SocketAddr) -> io::Result<(OwnedFd, bool)> {
    let fd = tcp_socket(&addr)?;
    let in_progress = connect(fd.as_fd(), &addr)?;
    Ok((fd, in_progress))
}

/// A new, unconnected, non-blocking TCP socket of `addr`'s family.
pub fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    new_socket(addr, libc::SOCK_STREAM)
}

/// Starts connecting the non-blocking socket `fd` to `addr`: `Ok(true)` if the connect goes
/// on in the background (wait until the socket is writable, then read `SO_ERROR`).
pub fn connect(fd: BorrowedFd<'_>, addr: &SocketAddr) -> io::Result<bool> {
    let (storage, len) = to_sockaddr(addr);
    // No EINTR retry here: an interrupted connect carries on asynchronously, exactly like
    // EINPROGRESS, and calling connect again would fail with EALREADY.
    match syscall!(connect(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len)) {
        Ok(_) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.raw_os_error() == Some(libc::EINTR) => {
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new socket is ready for the reactor
/// without a second `fcntl` call. EINTR is retried; WouldBlock is returned to the caller.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let fd = accept_into(listener, Some(&mut storage))?;
    Ok((fd, from_sockaddr(&storage)?))
}

/// `accept4` as in [`accept`], writing the peer's address into `storage` if one is given.
fn accept_into(
    listener: BorrowedFd<'_>,
    storage: Option<&mut libc::sockaddr_storage>,
) -> io::Result<OwnedFd> {
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // Null address and length pointers tell the kernel not to report the address.
    let (addr, len_ptr) = match storage {
        Some(s) => ((s as *mut libc::sockaddr_storage).cast(), &mut len as *mut libc::socklen_t),
        None => (ptr::null_mut(), ptr::null_mut()),
    };
    let fd = retry_eintr(|| {
        syscall!(accept4(listener.as_raw_fd(), addr, len_ptr, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC))
    })?;
    // SAFETY: accept4 just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `recv` into `buf`. EINTR is retried; WouldBlock is returned to the caller.
#[inline]
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY (of the call inside): `buf` is valid for `buf.len()` bytes for the call.
    retry_eintr(|| syscall!(recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)).map(|n| n as usize))
}

/// Turns on `TCP_INQ` (Linux 4.18): from now on each [`recv_inq`] on this TCP socket also
/// reports how many bytes are still queued. Fails with `ENOPROTOOPT` on older kernels.
pub fn set_tcp_inq(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::SOL_TCP, libc::TCP_INQ, 1)
}

/// `setsockopt` for an option whose value is an `int`.
pub(super) fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    syscall!(setsockopt(
        fd.as_raw_fd(),
        level,
        name,
        (&value as *const libc::c_int).cast(),
        mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// `recvmsg` into `buf` on a TCP socket with [`set_tcp_inq`] on. Returns the bytes read and
/// the kernel's count of bytes still queued after them (`None` if it sent no `TCP_CM_INQ`
/// message). After the peer's FIN an empty queue counts as 1, so `Some(0)` means: nothing
/// left to read, and not at end of stream. EINTR is retried; WouldBlock is returned.
pub fn recv_inq(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
    // Room for one cmsghdr and its int, aligned for cmsghdr (CMSG_SPACE(4) is 24 on 64-bit).
    let mut control = [0u64; 4];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // The pointers in `msg` (iovec over `buf`, the control buffer) live across the call.
    let n = retry_eintr(|| syscall!(recvmsg(fd.as_raw_fd(), &mut msg, 0)))? as usize;
    let mut queued = None;
    // SAFETY: `msg` was filled in by the kernel: CMSG_FIRSTHDR/CMSG_NXTHDR walk only within
    // `msg_controllen` bytes of our control buffer, and the data of a TCP_CM_INQ message is
    // one int, read unaligned since CMSG_DATA promises no alignment for it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_TCP && (*cmsg).cmsg_type == libc::TCP_CM_INQ {
                let inq = ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                queued = Some(inq.max(0) as usize);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, queued))
}

/// `send` with `MSG_NOSIGNAL`: a closed peer gives `EPIPE` instead of a SIGPIPE that would
/// kill a host program that did not ignore it. EINTR is retried.
#[inline]
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry_eintr(|| {
        syscall!(send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)).map(|n| n as usize)
    })
}

// The UDP and Unix-socket calls below are `#[inline]`, as their callers in mini-net are: a
// debug build compiles them only into programs that use those sockets.

/// A non-blocking UDP socket bound to `addr`: `socket(SOCK_DGRAM)`, `bind`. Port 0 picks a
/// free port.
#[inline]
pub fn udp_bind(addr: SocketAddr) -> io::Result<OwnedFd> {
    let fd = new_socket(&addr, libc::SOCK_DGRAM)?;
    let (storage, len) = to_sockaddr(&addr);
    syscall!(bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len))?;
    Ok(fd)
}

/// A non-blocking Unix stream listener at `path`: `socket(AF_UNIX)`, `bind`, `listen`.
/// `bind` creates the socket file; an existing file at `path` gives `AddrInUse`.
#[inline]
pub fn unix_listen(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let (addr, len) = unix_sockaddr(path)?;
    let fd = new_socket_in(libc::AF_UNIX, libc::SOCK_STREAM)?;
    syscall!(bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len))?;
    syscall!(listen(fd.as_raw_fd(), backlog))?;
    Ok(fd)
}

/// A new, unconnected, non-blocking Unix stream socket, for [`unix_connect`].
#[inline]
pub fn unix_socket() -> io::Result<OwnedFd> {
    new_socket_in(libc::AF_UNIX, libc::SOCK_STREAM)
}

/// Connects the Unix stream socket `fd` to the listener at `path`.
///
/// Unlike TCP, a Unix connect never runs in the background: the kernel queues the new
/// connection on the listener at once (`Ok`), or refuses. `WouldBlock` (`EAGAIN`) means the
/// listener's backlog is full: the socket stays unconnected, and no readiness event will say
/// when a slot frees (a blocking connect sleeps on the *listener's* wait queue, which epoll
/// cannot watch from this socket), so the caller calls this again later.
#[inline]
pub fn unix_connect(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let (addr, len) = unix_sockaddr(path)?;
    // A non-blocking Unix connect never sleeps in the kernel, so it cannot see EINTR.
    syscall!(connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len))?;
    Ok(())
}

/// A connected pair of non-blocking Unix stream sockets (`socketpair`).
#[inline]
pub fn unix_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    syscall!(socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()))?;
    // SAFETY: socketpair just returned these two fds and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `accept4` on a Unix listener, with `SOCK_NONBLOCK | SOCK_CLOEXEC`. The peer's address is
/// not returned: a connecting Unix socket is usually unnamed, and std has no constructor for
/// its `SocketAddr` from a raw `sockaddr_un` (ask the accepted socket for `peer_addr`).
/// EINTR is retried; WouldBlock is returned to the caller.
#[inline]
pub fn unix_accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    accept_into(listener, None)
}

/// Whether an error from [`accept`] or [`unix_accept`] concerns only the one connection it
/// was taking, so that the caller should skip it and accept the next, rather than the
/// listener itself.
///
/// Per accept(2) on Linux:
///
/// - ECONNABORTED: the peer reset the connection while it waited in the backlog;
/// - EPROTO: a protocol error on that connection;
/// - EPERM: firewall rules forbid this connection;
/// - ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH: network
///   errors already pending on the new TCP/IP socket, which accept(2) says to "treat like
///   EAGAIN by retrying" (a Unix listener never reports them). EOPNOTSUPP also means "not a
///   SOCK_STREAM socket", a listener-level error, but mini's listeners are stream sockets.
///
/// Everything else is about the listener and goes to the caller: EMFILE and ENFILE (out of
/// fds), ENOBUFS and ENOMEM, as in tokio, where a server loop backs off and tries again.
pub fn is_per_connection_accept_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}

/// `fcntl(fd, F_SETOWN, pid)`: makes process `pid` the owner of `fd`, the process the kernel
/// sends `SIGIO` to once `O_ASYNC` is set. mini itself never uses signal-driven I/O; this is
/// here for the `io_signal_driven` example, so that it needs no `unsafe` of its own.
pub fn set_owner(fd: BorrowedFd<'_>, pid: u32) -> io::Result<()> {
    let pid = libc::c_int::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    syscall!(fcntl(fd.as_raw_fd(), libc::F_SETOWN, pid))?;
    Ok(())
}
