//! Unix signals as async streams: [`ctrl_c`] and [`unix::signal`].
//!
//! ```text
//!  kernel delivers SIGTERM ──► handler (sys/signal.rs): DELIVERED[SIGTERM] += 1,
//!                              write one byte to the self-pipe
//!  each listener's dup of the pipe's read end is registered with its reactor
//!  ──► edge ──► the listener's task wakes, sees the count moved: recv() returns
//! ```
//!
//! The first listener of a signal installs the handler; when the last one is dropped, the
//! disposition that was there before (default, ignore, or another handler) is restored.
//! Several signals between two `recv` calls are reported once, as tokio does.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::task::{Context, Poll};

use crate::io::{Async, Direction};
use crate::sys::signal as sys;

/// Waits for Ctrl-C (`SIGINT`).
///
/// The handler is installed when this future is first polled; a Ctrl-C before that takes
/// the previous disposition (by default, it ends the process). Create a
/// [`unix::signal`] listener early instead if that matters.
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

/// Per signal: how many listeners exist (in any runtime) and what to restore after them.
struct Registration {
    listeners: usize,
    previous: sys::Disposition,
}

static REGISTRY: Mutex<Vec<Option<Registration>>> = Mutex::new(Vec::new());

fn add_listener(signum: i32) -> io::Result<()> {
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if registry.is_empty() {
        registry.resize_with(sys::MAX_SIGNAL as usize + 1, || None);
    }
    let slot = &mut registry[signum as usize];
    match slot {
        Some(reg) => reg.listeners += 1,
        None => *slot = Some(Registration { listeners: 1, previous: sys::install(signum)? }),
    }
    Ok(())
}

fn remove_listener(signum: i32) {
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut registry[signum as usize];
    if let Some(reg) = slot {
        reg.listeners -= 1;
        if reg.listeners == 0 {
            // Restoring can only fail for an invalid signal number, which `signal` rejected.
            let _ = sys::restore(signum, &reg.previous);
            *slot = None;
        }
    }
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
        add_listener(signum)?;
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
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            loop {
                let now = sys::delivered(self.kind.0);
                if now != self.seen {
                    self.seen = now;
                    return Poll::Ready(Some(()));
                }
                // Empty the pipe. Its `WouldBlock` parks the task until the next byte's
                // edge; a signal that lands between the check above and the read leaves a
                // byte, so the loop comes round and sees the new count.
                match self.pipe.poll_io(cx, Direction::Read, |fd| sys::drain(fd.as_fd())) {
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(_)) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
    }

    impl Drop for Signal {
        fn drop(&mut self) {
            remove_listener(self.kind.0);
        }
    }
}
