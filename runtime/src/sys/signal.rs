//! Signals, the self-pipe way: a handler that records the signal and writes one byte to a
//! pipe, whose read end sits in the reactor like any socket.
//!
//! A signal handler may run on any thread, between any two instructions, so it does only
//! async-signal-safe work: an atomic increment and a `write(2)`. Everything else (who
//! listens, which disposition to restore) happens outside it, in `crate::signal`.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Signal numbers run from 1 to `SIGRTMAX` (64 on Linux).
pub(crate) const MAX_SIGNAL: i32 = 64;

/// How many times each signal has arrived since the process started.
static DELIVERED: [AtomicU64; MAX_SIGNAL as usize + 1] =
    [const { AtomicU64::new(0) }; MAX_SIGNAL as usize + 1];

/// The pipe's write end, for the handler (which cannot touch the `OnceLock`).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The pipe, created on first use and kept for the life of the process.
static PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

extern "C" fn on_signal(signum: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot; the handler restores the
    // value it found so the interrupted code never sees errno change under it.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(count) = DELIVERED.get(signum as usize) {
        count.fetch_add(1, Ordering::SeqCst);
    }
    let fd = PIPE_WRITE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signum as u8;
        // A full pipe (EAGAIN) is fine: the count above is what listeners read, and a full
        // pipe already has an edge pending for every reader.
        // SAFETY: `byte` is valid for one byte; `fd` is the pipe's write end, never closed.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// How many times `signum` has arrived so far.
pub(crate) fn delivered(signum: i32) -> u64 {
    DELIVERED[signum as usize].load(Ordering::SeqCst)
}

fn pipe() -> io::Result<&'static (OwnedFd, OwnedFd)> {
    if let Some(p) = PIPE.get() {
        return Ok(p);
    }
    let mut fds = [0 as libc::c_int; 2];
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    // SAFETY: pipe2 just returned these two fds and nothing else owns them.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let pair = PIPE.get_or_init(|| pair); // a racing thread's pair is dropped (closed) here
    PIPE_WRITE.store(pair.1.as_raw_fd(), Ordering::SeqCst);
    Ok(pair)
}

/// A new fd for the pipe's read end (`F_DUPFD_CLOEXEC`), for one listener to register with
/// its reactor. Each dup is its own epoll registration, so every listener, in every
/// runtime, gets an edge for each signal.
pub(crate) fn pipe_reader() -> io::Result<OwnedFd> {
    let read_end = &pipe()?.0;
    let fd = syscall!(fcntl(read_end.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0))?;
    // SAFETY: fcntl just returned this new fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads (and discards) what the pipe holds; `WouldBlock` once it is empty.
pub(crate) fn drain(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut buf = [0u8; 64];
    super::retry_eintr(|| syscall!(read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())))
        .map(|n| n as usize)
}

/// A signal disposition saved by [`install`], to put back with [`restore`].
pub(crate) struct Disposition(libc::sigaction);

/// Installs mini's handler for `signum` and returns the disposition it replaced.
pub(crate) fn install(signum: i32) -> io::Result<Disposition> {
    pipe()?; // the handler needs somewhere to write before the first signal can arrive
             // SAFETY: sigaction is plain old data; all-zero is a valid starting value.
    let mut new: libc::sigaction = unsafe { mem::zeroed() };
    new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SA_RESTART: interrupted blocking syscalls elsewhere in the program resume by
    // themselves instead of failing with EINTR.
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: as above, all-zero is a valid sigaction to receive the old one.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    syscall!(sigaction(signum, &new, &mut old))?;
    Ok(Disposition(old))
}

/// Puts back a disposition saved by [`install`].
pub(crate) fn restore(signum: i32, previous: &Disposition) -> io::Result<()> {
    syscall!(sigaction(signum, &previous.0, std::ptr::null_mut()))?;
    Ok(())
}
