//! The operating-system seam: the only module in mini that calls `libc`.
//!
//! Every call goes through [`syscall!`], which turns the C convention (`-1` and `errno`)
//! into an [`io::Error`]. Above this module the runtime speaks Rust: owned fds, `io::Result`,
//! socket addresses. The functions here are safe to call: each `unsafe` block below only
//! passes the kernel pointers that Rust owns for the duration of the call.

use std::cell::Cell;
use std::io;
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

// The submodules use `syscall!`, so they are declared after it.
pub(crate) mod affinity;
pub(crate) mod signal;
mod socket;
mod sockopt;
#[cfg(feature = "uring")]
pub(crate) mod uring;
pub use socket::{
    accept, connect, is_per_connection_accept_error, recv, recv_inq, send, set_owner, set_tcp_inq,
    tcp_connect, tcp_listen, tcp_socket, udp_bind, unix_accept, unix_connect, unix_listen, unix_pair,
    unix_socket,
};
pub use sockopt::{bind, linger, listen, local_addr, option, set_linger, set_option, SockOpt};

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
    /// 5.11+). Turned off when the syscall is refused (ENOSYS, EPERM or EINVAL: see
    /// `wait_precise`), or by `MINI_EPOLL_WAIT=1` in the environment, which is how the tests
    /// run the millisecond fallback on purpose.
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

    /// Waits for events, filling the front of `events` (its length is the batch size).
    /// `None` waits forever. A signal that interrupts the wait (EINTR) is not an error:
    /// the result says so, and the caller's loop simply turns again.
    ///
    /// A positive timeout goes to `epoll_pwait2` with full precision where the kernel lets
    /// us use it (see `wait_precise` for when it does not). The fallback,
    /// `epoll_wait`, takes milliseconds: the timeout is rounded *up*, so a timer due in 0.3 ms
    /// waits 1 ms instead of spinning on zero-timeout calls until it is due.
    #[inline]
    pub(crate) fn wait(&self, events: &mut [Event], timeout: Option<Duration>) -> io::Result<Waited> {
        let res = match timeout {
            Some(t) if !t.is_zero() && self.precise.get() => self.wait_precise(events, t),
            _ => self.wait_millis(events, timeout),
        };
        match res {
            Ok(n) => Ok(Waited::Events(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Waited::Interrupted),
            Err(e) => Err(e),
        }
    }

    /// `epoll_pwait2`, and the switch to `epoll_wait` for good when it is refused.
    ///
    /// Refusals, by errno:
    ///
    /// 1. ENOSYS: the kernel is older than 5.11 (or valgrind, which does not know syscall 441).
    /// 2. EPERM: a seccomp profile that does not know the syscall. Container runtimes answer
    ///    EPERM, not ENOSYS, for syscalls missing from their list, and `epoll_pwait2` itself
    ///    never fails with EPERM, so it can only mean "not allowed".
    /// 3. EINVAL: some seccomp profiles answer this instead. But EINVAL is also what a
    ///    genuinely bad argument gets (an fd that is not an epoll instance, an empty `events`)
    ///    and turning precision off would then hide a bug. So the same wait is tried once with
    ///    `epoll_wait`: if that accepts it, the arguments were fine and the refusal was aimed
    ///    at `epoll_pwait2`, so the fallback stays on; if it fails too, its error is returned
    ///    and precision stays on.
    fn wait_precise(&self, events: &mut [Event], t: Duration) -> io::Result<usize> {
        let (ptr, max) = raw_events(events);
        let ts = libc::timespec {
            tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        };
        // SAFETY: `ptr` is valid for `max` events (`raw_events`), `ts` lives across the call,
        // and a null sigmask means "do not change the signal mask".
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
        if n != -1 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM) => {
                self.precise.set(false);
                self.wait_millis(events, Some(t))
            }
            Some(libc::EINVAL) => {
                let res = self.wait_millis(events, Some(t));
                // EINTR proves the arguments as well as a result does.
                if res.as_ref().map_or_else(|e| e.kind() == io::ErrorKind::Interrupted, |_| true) {
                    self.precise.set(false);
                }
                res
            }
            _ => Err(err),
        }
    }

    /// `epoll_wait`, with the timeout rounded up to whole milliseconds (`None`: forever).
    #[inline]
    fn wait_millis(&self, events: &mut [Event], timeout: Option<Duration>) -> io::Result<usize> {
        let (ptr, max) = raw_events(events);
        let timeout_ms = match timeout {
            None => -1,
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(libc::c_int::MAX as u128) as libc::c_int,
        };
        let n = syscall!(epoll_wait(self.fd.as_raw_fd(), ptr, max, timeout_ms))?;
        Ok(n as usize)
    }
}

/// What one [`Epoll::wait`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// This many events arrived (0: the timeout passed).
    Events(usize),
    /// A signal handler ran during the wait (EINTR); no events were taken.
    Interrupted,
}

impl Waited {
    /// How many events the caller should look at: none after an interruption.
    pub(crate) fn events(self) -> usize {
        match self {
            Waited::Events(n) => n,
            Waited::Interrupted => 0,
        }
    }
}

/// The kernel's view of an event buffer: a pointer to `epoll_event`s and how many fit.
/// `Event` is `repr(transparent)` over `epoll_event`, so the slice is such an array.
fn raw_events(events: &mut [Event]) -> (*mut libc::epoll_event, libc::c_int) {
    let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
    (events.as_mut_ptr().cast::<libc::epoll_event>(), max)
}

// ---------------------------------------------------------------------------------------------
// clocks
// ---------------------------------------------------------------------------------------------

/// The slow-poll clock: a counter read around every poll, so it must cost next to nothing.
///
/// On x86_64 it is the CPU's time-stamp counter (`RDTSC`: one instruction, no vDSO call),
/// which on every CPU of the last fifteen years ticks at a constant rate, the same on all
/// cores. Its rate is not known up front: a count is compared against a threshold computed
/// with [`MIN_TICKS_PER_NS`], a rate no such CPU runs below, so a slow poll is never missed,
/// and only a count over that is turned into time (by the rate measured since the runtime
/// started; see the executor's `SlowPoll`). Elsewhere it is `CLOCK_MONOTONIC_COARSE` in
/// nanoseconds, read from the vDSO.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn ticks() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64 (every x86_64 CPU has it; user space may
    // read it unless the OS sets CR4.TSD, which Linux does only for seccomp-strict tasks).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The slow-poll clock (see the x86_64 version): here, nanoseconds of the coarse clock.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(crate) fn ticks() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // CLOCK_MONOTONIC_COARSE exists since Linux 2.6.32 and cannot fail with a valid pointer;
    // should it, the zero time only makes every poll look instant.
    let _ = syscall!(clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts));
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// A lower bound on [`ticks`] per nanosecond: the time-stamp counter of any x86_64 CPU in
/// use runs at 1 GHz or more (0.5 leaves a margin); the coarse clock counts nanoseconds.
pub(crate) const MIN_TICKS_PER_NS: f64 = if cfg!(target_arch = "x86_64") { 0.5 } else { 1.0 };

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
    #[cfg_attr(loom, allow(dead_code))] // under loom, the model's doorbell rings instead
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
// fds
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

/// `shutdown(2)`.
pub(crate) fn shutdown(fd: BorrowedFd<'_>, how: std::net::Shutdown) -> io::Result<()> {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    syscall!(shutdown(fd.as_raw_fd(), how)).map(drop)
}

/// `shutdown(fd, SHUT_WR)`; a socket no longer connected has nothing left to shut down.
#[cfg(feature = "uring")]
pub(crate) fn shutdown_write(fd: std::os::fd::RawFd) -> io::Result<()> {
    match syscall!(shutdown(fd, libc::SHUT_WR)) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        res => res.map(drop),
    }
}

/// Retries a syscall wrapper while it fails with EINTR.
pub(crate) fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => return res,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A genuinely bad argument (an empty event buffer: `maxevents` 0) is EINVAL for both
    /// `epoll_pwait2` and `epoll_wait`. It must surface as an error, and must not be taken
    /// for a seccomp refusal that turns precise timeouts off for good.
    #[test]
    fn a_bad_argument_is_an_error_not_a_refusal() {
        let epoll = Epoll::new().unwrap();
        // A valid wait first, so that `is_precise` says what this kernel allows (false on a
        // kernel without epoll_pwait2, or under valgrind, which answers ENOSYS for it).
        let mut one = [Event::EMPTY];
        assert_eq!(epoll.wait(&mut one, Some(Duration::from_nanos(1))).unwrap(), Waited::Events(0));
        let precise = epoll.is_precise();

        let err = epoll.wait(&mut [], Some(Duration::from_millis(1))).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        assert_eq!(epoll.is_precise(), precise, "EINVAL for a bad argument turned precision off");
    }
}
