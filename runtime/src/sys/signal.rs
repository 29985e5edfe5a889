//! Signals, the self-pipe way: a handler that records the signal and writes one byte to a
//! pipe, whose read end sits in the reactor like any socket.
//!
//! A signal handler may run on any thread, between any two instructions, so it does only
//! async-signal-safe work: atomic loads and increments, a `write(2)`, and a call to the
//! handler it replaced. Everything else (who listens, when to install) happens outside it,
//! in `crate::signal`.
//!
//! Once installed, mini's handler stays for the life of the process (see `crate::signal` for
//! why). Per signal it keeps:
//!
//! ```text
//!  DELIVERED[s]  arrivals since the handler went in   bumped by the handler, read by listeners
//!  LISTENERS[s]  live `Signal`s, in any runtime         the handler writes a byte only if > 0
//!  CHAINED_*[s]  the handler found at install time     called by the handler after its own work
//! ```

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Signal numbers run from 1 to `SIGRTMAX` (64 on Linux).
pub(crate) const MAX_SIGNAL: i32 = 64;

const SLOTS: usize = MAX_SIGNAL as usize + 1;

/// How many times each signal has arrived since mini's handler was installed for it.
static DELIVERED: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// How many listeners each signal has. With none, the handler writes nothing to the pipe, so
/// signals nobody listens for do not fill it.
static LISTENERS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// The handler mini's replaced, to call after its own work, by signature: `CHAINED_INFO[s]`
/// holds an `SA_SIGINFO` (three-argument) handler, `CHAINED_PLAIN[s]` a one-argument one, and
/// at most one of the two is set. Two slots rather than a function and a flag, so that the
/// handler can never pair a function with the wrong signature, even while they change.
/// 0 (which is `SIG_DFL`) means nothing to call.
static CHAINED_INFO: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static CHAINED_PLAIN: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// The pipe's write end, for the handler (which cannot touch the `OnceLock`).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The pipe, created on first use and kept for the life of the process.
static PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

/// The two handler signatures `sa_sigaction` may hold, told apart by `SA_SIGINFO`.
type PlainHandler = extern "C" fn(libc::c_int);
type InfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

extern "C" fn on_signal(signum: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno slot; the handler restores the
    // value it found so the interrupted code never sees errno change under it.
    let errno = unsafe { *libc::__errno_location() };
    let slot = signum as usize;
    if slot < SLOTS {
        // SeqCst on both sides: `Signal` creation bumps LISTENERS and then reads DELIVERED.
        // Either it sees this increment (and counts this signal as already seen) or this
        // handler sees its listener (and writes the byte that wakes it).
        DELIVERED[slot].fetch_add(1, Ordering::SeqCst);
        let fd = PIPE_WRITE.load(Ordering::SeqCst);
        if LISTENERS[slot].load(Ordering::SeqCst) > 0 && fd >= 0 {
            let byte = signum as u8;
            // A full pipe (EAGAIN) is fine: the count above is what listeners read, and a
            // full pipe already has an edge pending for every reader.
            // SAFETY: `byte` is valid for one byte; `fd` is the pipe's write end, never closed.
            let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
        let info_handler = CHAINED_INFO[slot].load(Ordering::SeqCst);
        let plain_handler = CHAINED_PLAIN[slot].load(Ordering::SeqCst);
        if info_handler != 0 {
            // SAFETY: CHAINED_INFO only holds the `sa_sigaction` of a disposition installed
            // with SA_SIGINFO: a three-argument handler. `info` and `context` are the
            // kernel's, passed on unchanged.
            let f = unsafe { mem::transmute::<usize, InfoHandler>(info_handler) };
            f(signum, info, context);
        } else if plain_handler != 0 {
            // SAFETY: CHAINED_PLAIN only holds the `sa_sigaction` of a disposition installed
            // without SA_SIGINFO, other than SIG_DFL and SIG_IGN: a one-argument handler.
            let f = unsafe { mem::transmute::<usize, PlainHandler>(plain_handler) };
            f(signum);
        }
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

/// Counts a new listener of `signum`: from now on each arrival writes a byte to the pipe.
/// Call before reading [`delivered`] for the listener's starting point.
pub(crate) fn add_listener(signum: i32) {
    LISTENERS[signum as usize].fetch_add(1, Ordering::SeqCst);
}

/// Forgets a listener counted by [`add_listener`].
pub(crate) fn remove_listener(signum: i32) {
    LISTENERS[signum as usize].fetch_sub(1, Ordering::SeqCst);
}

/// Installs mini's handler for `signum`, for good. A handler found there (not `SIG_DFL`, not
/// `SIG_IGN`) is chained: mini's handler calls it after its own work. Call once per signal
/// (`crate::signal` keeps track); the caller serialises calls.
pub(crate) fn install(signum: i32) -> io::Result<()> {
    pipe()?; // the handler needs somewhere to write before the first signal can arrive
    let slot = signum as usize;
    // Record what is there first, so that mini's handler chains from its very first run.
    // SAFETY: all-zero is a valid sigaction to receive the current one.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    syscall!(sigaction(signum, std::ptr::null(), &mut old))?;
    set_chained(slot, &old);

    // SAFETY: sigaction is plain old data; all-zero is a valid starting value.
    let mut new: libc::sigaction = unsafe { mem::zeroed() };
    new.sa_sigaction = on_signal as InfoHandler as libc::sighandler_t;
    // SA_SIGINFO: the handler gets `siginfo_t` and the context, to pass to a chained
    // SA_SIGINFO handler. SA_RESTART: interrupted blocking syscalls elsewhere in the program
    // resume by themselves instead of failing with EINTR.
    new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    let mut replaced = old;
    syscall!(sigaction(signum, &new, &mut replaced))?;
    if replaced.sa_sigaction != old.sa_sigaction || replaced.sa_flags != old.sa_flags {
        // Another thread changed the disposition between the two calls: chain to its handler.
        set_chained(slot, &replaced);
    }
    Ok(())
}

/// Records `old` as the handler to chain to for `slot`, if it is a function other than ours.
fn set_chained(slot: usize, old: &libc::sigaction) {
    let handler = old.sa_sigaction;
    let ours = on_signal as InfoHandler as libc::sighandler_t;
    let chained =
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN || handler == ours { 0 } else { handler };
    // Set the new slot before clearing the other: a handler running meanwhile calls the old
    // function or the new one, each by its own signature.
    let (set, clear) = if old.sa_flags & libc::SA_SIGINFO != 0 {
        (&CHAINED_INFO[slot], &CHAINED_PLAIN[slot])
    } else {
        (&CHAINED_PLAIN[slot], &CHAINED_INFO[slot])
    };
    set.store(chained, Ordering::SeqCst);
    clear.store(0, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The only unit test that raises a signal, so it alone writes to the pipe.
    #[test]
    fn an_arrival_with_no_listener_is_counted_but_writes_nothing() {
        let signum = libc::SIGURG; // ignored by default: harmless should anything go wrong
        install(signum).unwrap();
        let reader = pipe_reader().unwrap();
        let raise = || {
            // SAFETY: raise(3) has no memory effects; the handler runs before it returns.
            assert_eq!(unsafe { libc::raise(signum) }, 0);
        };
        let before = delivered(signum);
        raise();
        assert_eq!(delivered(signum), before + 1, "counted");
        let read = drain(reader.as_fd());
        assert!(
            matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "no listener, so no byte in the pipe: {read:?}"
        );

        add_listener(signum);
        raise();
        assert_eq!(drain(reader.as_fd()).unwrap(), 1, "a listener's wake-up byte");
        remove_listener(signum);
    }
}
