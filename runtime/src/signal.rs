//! Unix signals as async streams: [`ctrl_c`] and [`unix::signal`].
//!
//! ```text
//!  kernel delivers SIGTERM ──► handler (sys/signal.rs): DELIVERED[SIGTERM] += 1,
//!                              write one byte to the self-pipe
//!  each listener's dup of the pipe's read end is registered with its reactor
//!  ──► edge ──► the listener's task wakes, sees the count moved: recv() returns
//! ```
//!
//! Several signals between two `recv` calls are reported once, as tokio does.
//!
//! # The handler stays
//!
//! The first listener of a signal installs mini's handler, and it stays installed for the
//! life of the process, as tokio's does. Putting the old disposition back when the last
//! listener goes would open a window: a loop that re-creates [`ctrl_c`] in each round of a
//! `select!` drops one listener before it makes the next, and a Ctrl-C in between would take
//! the default action and end the process instead of shutting it down gracefully.
//!
//! So once a program has listened for a signal, that signal no longer has its default
//! effect: with no listener, an arrival is counted and dropped. It is not queued for later:
//! a listener only hears arrivals from after its creation, and writes nothing to the
//! self-pipe while a signal has no listener, so nothing piles up.
//!
//! # Chaining
//!
//! A handler that was already installed when mini installs its own (one set up by another
//! library with `sigaction`, say) is not lost: mini's handler calls it after doing its own
//! work, with the same arguments (`signum`, and for an `SA_SIGINFO` handler the `siginfo_t`
//! and context too), whether or not a mini listener exists. `SIG_DFL` and `SIG_IGN` are not
//! chained: for them mini's handler is the whole answer. A handler installed *after* mini's
//! replaces it, and chaining back to mini is that handler's business.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{ready, Context, Poll};

use futures_core::Stream;

use crate::coop;
use crate::io::{Async, Direction};
use crate::sys::signal as sys;

/// Waits for Ctrl-C (`SIGINT`).
///
/// The handler is installed when this future is first polled; a Ctrl-C before that takes
/// the previous disposition (by default, it ends the process). Create a
/// [`unix::signal`] listener early instead if that matters. From then on the handler stays
/// (see [the module docs](self)): a Ctrl-C while no `ctrl_c()` is waiting is dropped, and
/// does not end the process.
///
/// # Examples
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// mini::block_on(async {
///     let ctrl_c = mini::spawn(mini::signal::ctrl_c());
///     mini::yield_now().await; // let it install the handler
///     // As if the user pressed Ctrl-C:
///     std::process::Command::new("kill").args(["-INT", &std::process::id().to_string()]).status()?;
///     ctrl_c.await??;
///     println!("shutting down");
///     Ok(())
/// })
/// # }
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    unix::signal(unix::SignalKind::interrupt())?.recv().await;
    Ok(())
}

/// Which signals have mini's handler. Only grows: the handler is never removed.
static INSTALLED: Mutex<[bool; sys::MAX_SIGNAL as usize + 1]> =
    Mutex::new([false; sys::MAX_SIGNAL as usize + 1]);

/// Installs mini's handler for `signum` if this is the first listener ever.
fn ensure_installed(signum: i32) -> io::Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !installed[signum as usize] {
        sys::install(signum)?;
        installed[signum as usize] = true;
    }
    Ok(())
}

/// Unix-specific signal handling.
pub mod unix {
    use super::*;

    /// Which signal to listen for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SignalKind(i32);

    impl SignalKind {
        /// `SIGINT`: Ctrl-C in a terminal.
        pub const fn interrupt() -> SignalKind {
            SignalKind(libc::SIGINT)
        }
        /// `SIGTERM`: the polite request to exit (`kill`, service managers).
        pub const fn terminate() -> SignalKind {
            SignalKind(libc::SIGTERM)
        }
        /// `SIGHUP`: the terminal went away; daemons often reload their configuration.
        pub const fn hangup() -> SignalKind {
            SignalKind(libc::SIGHUP)
        }
        /// `SIGQUIT`: Ctrl-\ in a terminal.
        pub const fn quit() -> SignalKind {
            SignalKind(libc::SIGQUIT)
        }
        /// `SIGUSR1`.
        pub const fn user_defined1() -> SignalKind {
            SignalKind(libc::SIGUSR1)
        }
        /// `SIGUSR2`.
        pub const fn user_defined2() -> SignalKind {
            SignalKind(libc::SIGUSR2)
        }
        /// `SIGCHLD`: a child process changed state.
        pub const fn child() -> SignalKind {
            SignalKind(libc::SIGCHLD)
        }
        /// `SIGWINCH`: the terminal was resized.
        pub const fn window_change() -> SignalKind {
            SignalKind(libc::SIGWINCH)
        }
        /// Any signal by number. [`signal`] rejects the ones that cannot be handled.
        pub const fn from_raw(signum: i32) -> SignalKind {
            SignalKind(signum)
        }
        /// The signal number.
        pub const fn as_raw_value(&self) -> i32 {
            self.0
        }
    }

    /// Listens for `kind` until dropped.
    ///
    /// The first call for a signal installs mini's handler for good, chaining any handler
    /// that was there (see [the module docs](super)).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for signals that cannot or must not be handled: `SIGKILL` and `SIGSTOP`
    /// (the kernel forbids it), and `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE` (returning from
    /// their handler re-runs the faulting instruction), and numbers out of range.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use mini::signal::unix::{signal, SignalKind};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// mini::block_on(async {
    ///     let mut usr1 = signal(SignalKind::user_defined1())?;
    ///     std::process::Command::new("kill").args(["-USR1", &std::process::id().to_string()]).status()?;
    ///     usr1.recv().await;
    ///     println!("got SIGUSR1");
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let signum = kind.0;
        let forbidden =
            [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];
        if !(1..=sys::MAX_SIGNAL).contains(&signum) || forbidden.contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {signum} cannot be listened for"),
            ));
        }
        // The pipe fd first: if the runtime is missing this panics before anything global
        // changed; if fds ran out, nothing is installed.
        let pipe = Async::new_nonblocking(sys::pipe_reader()?)?;
        ensure_installed(signum)?;
        // Counted as a listener before reading the count: an arrival after this point either
        // moves the count past `seen` or finds the listener and writes its wake-up byte (see
        // `sys::signal::on_signal`). Arrivals before it are not this listener's.
        sys::add_listener(signum);
        Ok(Signal { kind, seen: sys::delivered(signum), pipe })
    }

    /// A stream of one signal's arrivals, from [`signal`].
    pub struct Signal {
        kind: SignalKind,
        /// The delivery count already reported.
        seen: u64,
        pipe: Async<OwnedFd>,
    }

    impl fmt::Debug for Signal {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Signal").field("kind", &self.kind).finish()
        }
    }

    impl Signal {
        /// Waits for the next arrival of the signal (arrivals since the last call, however
        /// many, count as one). `None` only if the self-pipe failed, which it cannot short of
        /// a bug: the stream has then ended.
        pub async fn recv(&mut self) -> Option<()> {
            poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// Polls for the next arrival (the poll form of [`recv`](Self::recv)).
        ///
        /// A reported arrival spends one unit of the task's co-operative budget, as a
        /// completed read does: a task that keeps finding arrivals (a burst of signals, or
        /// one it raises itself) yields after a while instead of starving the others.
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            coop::budgeted(cx, |cx| self.poll_arrival(cx))
        }

        fn poll_arrival(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            loop {
                let now = sys::delivered(self.kind.0);
                if now != self.seen {
                    self.seen = now;
                    return Poll::Ready(Some(()));
                }
                // Empty the pipe. Its `WouldBlock` parks the task until the next byte's
                // edge; a signal that lands between the check above and the read leaves a
                // byte, so the loop comes round and sees the new count.
                match ready!(self.pipe.poll_io(cx, Direction::Read, |fd| sys::drain(fd.as_fd()))) {
                    Ok(_) => continue,
                    Err(_) => return Poll::Ready(None),
                }
            }
        }
    }

    /// The arrivals as a `futures_core::Stream` (for `StreamExt`): each item is one or more
    /// arrivals since the last, as with [`recv`](Signal::recv). It ends only if the self-pipe
    /// fails.
    impl Stream for Signal {
        type Item = ();

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
            self.get_mut().poll_recv(cx)
        }
    }

    impl Drop for Signal {
        fn drop(&mut self) {
            sys::remove_listener(self.kind.0);
        }
    }
}
