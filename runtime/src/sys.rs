//! The operating-system seam: the only module in mini that calls `libc`.
//!
//! Every call goes through [`syscall!`], which turns the C convention (`-1` and `errno`)
//! into an [`io::Error`]. Above this module the runtime speaks Rust: owned fds, `io::Result`,
//! socket addresses. The functions here are safe to call: each `unsafe` block below only
//! passes the kernel pointers that Rust owns for the duration of the call.

use std::cell::Cell;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Calls a libc function and turns `-1` into the thread's `errno` as an `io::Error`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each caller passes arguments that are valid for this libc call; the
        // individual call sites say which buffers or fds they borrow.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// epoll
// ---------------------------------------------------------------------------------------------

/// Readiness flags as the kernel reports them in `epoll_event.events`.
pub(crate) mod ev {
    pub(crate) const IN: u32 = libc::EPOLLIN as u32;
    pub(crate) const OUT: u32 = libc::EPOLLOUT as u32;
    pub(crate) const RDHUP: u32 = libc::EPOLLRDHUP as u32;
    pub(crate) const HUP: u32 = libc::EPOLLHUP as u32;
    pub(crate) const ERR: u32 = libc::EPOLLERR as u32;
    pub(crate) const PRI: u32 = libc::EPOLLPRI as u32;
    pub(crate) const ET: u32 = libc::EPOLLET as u32;
}

/// One readiness event: the registration's token and the kernel's flags.
///
/// `#[repr(transparent)]` over `libc::epoll_event`, so a `Vec<Event>` is the buffer that
/// `epoll_wait` fills directly.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Event(libc::epoll_event);

impl Event {
    pub(crate) const EMPTY: Event = Event(libc::epoll_event { events: 0, u64: 0 });

    pub(crate) fn token(&self) -> u64 {
        self.0.u64
    }

    pub(crate) fn flags(&self) -> u32 {
        self.0.events
    }
}

/// An epoll instance (`epoll_create1(EPOLL_CLOEXEC)`); closed on drop.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
    /// Whether to wait with `epoll_pwait2`, whose timeout has nanosecond precision (Linux
    /// 5.11+). Turned off when the kernel answers ENOSYS, or by `MINI_EPOLL_WAIT=1` in the
    /// environment, which is how the tests run the millisecond fallback on purpose.
    precise: Cell<bool>,
}

/// The environment switch that forces the `epoll_wait` fallback (read when a runtime starts).
pub(crate) const FORCE_EPOLL_WAIT_ENV: &str = "MINI_EPOLL_WAIT";

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let forced = std::env::var_os(FORCE_EPOLL_WAIT_ENV).is_some_and(|v| v == "1");
        Ok(Epoll { fd, precise: Cell::new(!forced) })
    }

    /// Whether waits use `epoll_pwait2` (nanosecond timeouts) rather than `epoll_wait`.
    pub(crate) fn is_precise(&self) -> bool {
        self.precise.get()
    }

    /// `EPOLL_CTL_ADD`: watch `fd` for `flags`, reporting `token` with each event.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, flags: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events: flags, u64: token };
        syscall!(epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event))?;
        Ok(())
    }

    /// `EPOLL_CTL_DEL`: stop watching `fd`. Must run before the fd is closed, or a reused
    /// fd number could be confused with this one (the reactor's `deregister` does it).
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // A non-null event pointer keeps kernels older than 2.6.9 happy; it is ignored.
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        syscall!(epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), &mut event))?;
        Ok(())
    }

    /// Waits for events, filling the front of `events` (its length is the batch size), and
    /// returns how many arrived. `None` waits forever. EINTR returns 0 events: the caller's
    /// loop simply turns again.
    ///
    /// A positive timeout goes to `epoll_pwait2` with full precision where the kernel has it.
    /// The fallback, `epoll_wait`, takes milliseconds: the timeout is rounded *up*, so a
    /// timer due in 0.3 ms waits 1 ms instead of spinning on zero-timeout calls.
    pub(crate) fn wait(&self, events: &mut [Event], timeout: Option<Duration>) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // `Event` is repr(transparent) over epoll_event, and `events` holds `max` of them.
        let ptr = events.as_mut_ptr().cast::<libc::epoll_event>();
        let res = match timeout {
            Some(t) if !t.is_zero() && self.precise.get() => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
                };
                // SAFETY: `ptr` is valid for `max` events, `ts` lives across the call, and a
                // null sigmask means "do not change the signal mask".
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        self.fd.as_raw_fd(),
                        ptr,
                        max,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                };
                if n == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                    self.precise.set(false);
                    return self.wait(events, timeout);
                }
                if n == -1 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as libc::c_int)
                }
            }
            _ => {
                let timeout_ms = match timeout {
                    None => -1,
                    Some(t) => t.as_nanos().div_ceil(1_000_000).min(libc::c_int::MAX as u128) as libc::c_int,
                };
                syscall!(epoll_wait(self.fd.as_raw_fd(), ptr, max, timeout_ms))
            }
        };
        match res {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// eventfd: how another thread interrupts epoll_wait
// ---------------------------------------------------------------------------------------------

/// A non-blocking eventfd, the runtime's doorbell for wakes from other threads.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
        // SAFETY: eventfd just returned this fd and nothing else owns it.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// Adds 1 to the counter, which makes the fd readable and queues an edge-triggered event.
    ///
    /// The reactor never reads the counter back (each write is a new edge, so reading would
    /// only cost a syscall). In the near-impossible case that the counter is full (2^64 - 2
    /// writes), the write would block: reset it with a read and write again.
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        loop {
            match syscall!(write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8)) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut buf = 0u64;
                    let _ = syscall!(read(self.fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8));
                }
                // EBADF and friends cannot happen while `self` owns the fd; nothing to do.
                Err(_) => return,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fds and sockets
// ---------------------------------------------------------------------------------------------

/// Sets `O_NONBLOCK` on `fd` (for fds handed to mini already open, e.g. by `from_std`).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let flags = syscall!(fcntl(raw, libc::F_GETFL))?;
    if flags & libc::O_NONBLOCK == 0 {
        syscall!(fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Retries a syscall wrapper while it fails with EINTR.
fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => return res,
        }
    }
}

/// A `sockaddr_storage` holding an IPv4 or IPv6 address, and its length.
fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
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
fn from_sockaddr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
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

fn new_socket(addr: &SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = syscall!(socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: socket just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking TCP listener: `socket`, `SO_REUSEADDR`, `bind`, `listen(backlog)`.
pub fn tcp_listen(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let fd = new_socket(&addr, libc::SOCK_STREAM)?;
    let one: libc::c_int = 1;
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        (&one as *const libc::c_int).cast(),
        mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))?;
    let (storage, len) = to_sockaddr(&addr);
    syscall!(bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len))?;
    syscall!(listen(fd.as_raw_fd(), backlog))?;
    Ok(fd)
}

/// Starts a non-blocking TCP connect. Returns the socket and whether the connect is still
/// in progress (`EINPROGRESS`): then the caller waits until the socket is writable and reads
/// `SO_ERROR` for the outcome.
pub fn tcp_connect(addr: SocketAddr) -> io::Result<(OwnedFd, bool)> {
    let fd = new_socket(&addr, libc::SOCK_STREAM)?;
    let (storage, len) = to_sockaddr(&addr);
    // No EINTR retry here: an interrupted connect carries on asynchronously, exactly like
    // EINPROGRESS, and calling connect again would fail with EALREADY.
    match syscall!(connect(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len)) {
        Ok(_) => Ok((fd, false)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.raw_os_error() == Some(libc::EINTR) => {
            Ok((fd, true))
        }
        Err(e) => Err(e),
    }
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the new socket is ready for the reactor
/// without a second `fcntl` call. EINTR is retried; WouldBlock is returned to the caller.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let fd = retry_eintr(|| {
        syscall!(accept4(
            listener.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        ))
    })?;
    // SAFETY: accept4 just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((fd, from_sockaddr(&storage)?))
}

/// `recv` into `buf`. EINTR is retried; WouldBlock is returned to the caller.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY (of the call inside): `buf` is valid for `buf.len()` bytes for the call.
    retry_eintr(|| syscall!(recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)).map(|n| n as usize))
}

/// `send` with `MSG_NOSIGNAL`: a closed peer gives `EPIPE` instead of a SIGPIPE that would
/// kill a host program that did not ignore it. EINTR is retried.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry_eintr(|| {
        syscall!(send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)).map(|n| n as usize)
    })
}
