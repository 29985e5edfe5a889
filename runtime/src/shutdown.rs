//! [`Shutdown`]: a one-way "please stop" flag that any thread can raise and any task, on any
//! runtime, can await.
//!
//! The workers of [`Builder::run`](crate::Builder::run) each own a runtime and share nothing,
//! so the runtimes' own machinery (signals, timers, wakers in a `RefCell`) cannot carry the
//! news from one to the others. This type can: a flag plus a `Mutex`-protected list of
//! wakers, woken outside the lock. A wait that is given up (its [`Triggered`] dropped) takes
//! its waker out of the list at once, so a server that races `triggered()` against `accept`
//! on every loop does not grow the list.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::slab::Slab;

/// A shutdown signal shared by clones: [`trigger`](Shutdown::trigger) once, and every
/// [`triggered`](Shutdown::triggered) future resolves, on whatever thread or runtime it waits.
///
/// It never resets: once triggered, it stays triggered.
///
/// # Examples
///
/// ```
/// let shutdown = mini::Shutdown::new();
/// let remote = shutdown.clone();
/// let thread = std::thread::spawn(move || remote.trigger());
/// mini::block_on(shutdown.triggered()); // resolves once the other thread triggers
/// thread.join().unwrap();
/// assert!(shutdown.is_triggered());
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    shared: Arc<Shared>,
}

struct Shared {
    /// Read without the lock by `is_triggered`; written under it, so that a waiter that
    /// found it false under the lock is sure to be in the list when `trigger` drains it.
    triggered: AtomicBool,
    waiters: Mutex<Slab<Waker>>,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared { triggered: AtomicBool::new(false), waiters: Mutex::new(Slab::new()) }
    }
}

impl Shared {
    /// The waiter list, even after a panic elsewhere while it was held: every operation on
    /// it leaves it consistent, so a poisoned lock holds nothing half-done.
    fn waiters(&self) -> MutexGuard<'_, Slab<Waker>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shutdown {
    /// A shutdown signal that has not been triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Raises the flag and wakes every waiting [`Triggered`]. Calling it again does nothing.
    pub fn trigger(&self) {
        let wakers: Vec<Waker> = {
            let mut waiters = self.shared.waiters();
            self.shared.triggered.store(true, Ordering::Release);
            waiters.drain()
        };
        // Woken after the lock is released: a waker may run code (another runtime's wake
        // protocol) that should not wait on our lock.
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether [`trigger`](Shutdown::trigger) has been called on this or any clone.
    pub fn is_triggered(&self) -> bool {
        self.shared.triggered.load(Ordering::Acquire)
    }

    /// A future that resolves once the signal is triggered (at once if it already is).
    ///
    /// # Examples
    ///
    /// ```
    /// let shutdown = mini::Shutdown::new();
    /// shutdown.trigger();
    /// mini::block_on(shutdown.triggered()); // already triggered: resolves at once
    /// ```
    pub fn triggered(&self) -> Triggered {
        Triggered { shared: self.shared.clone(), key: None }
    }

    /// How many [`Triggered`] futures are waiting now (for tests: a given-up wait must not
    /// stay in the list).
    #[doc(hidden)]
    pub fn waiter_count(&self) -> usize {
        self.shared.waiters().len()
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown").field("triggered", &self.is_triggered()).finish()
    }
}

/// The future of [`Shutdown::triggered`]: resolves once the signal is triggered.
///
/// Dropping it before then removes its waker from the signal's list.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Triggered {
    shared: Arc<Shared>,
    /// Where our waker sits in the list, once we have waited. The slab's keys carry a
    /// generation, so a key that `trigger` already drained removes nothing.
    key: Option<u64>,
}

impl Future for Triggered {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.triggered.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let this = &mut *self;
        let mut waiters = this.shared.waiters();
        // Checked again under the lock: `trigger` sets the flag under it, so either we see
        // the flag now or our waker is in the list before `trigger` drains it.
        if this.shared.triggered.load(Ordering::Acquire) {
            // `trigger` drained the list, our entry included.
            this.key = None;
            return Poll::Ready(());
        }
        match this.key {
            Some(key) if waiters.get(key).is_some_and(|w| w.will_wake(cx.waker())) => {}
            _ => {
                // First wait, or polled by another task since: replace the stored waker.
                if let Some(key) = this.key {
                    waiters.remove(key);
                }
                this.key = Some(waiters.insert(cx.waker().clone()));
            }
        }
        Poll::Pending
    }
}

impl Drop for Triggered {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // A stale key (drained by `trigger`) matches no generation and removes nothing.
            self.shared.waiters().remove(key);
        }
    }
}

impl fmt::Debug for Triggered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Triggered")
            .field("triggered", &self.shared.triggered.load(Ordering::Relaxed))
            .finish()
    }
}
