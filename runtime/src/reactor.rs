//! The reactor: one epoll instance, and the wakers waiting on each registered fd.
//!
//! This is the first half of the path from the kernel to a task:
//!
//! ```text
//!  epoll_wait ──► Event { token, flags }
//!                    │  token = the address of the fd's ScheduledIo, never the raw fd
//!                    ▼
//!  &ScheduledIo ───► readiness |= flags, take the waiting wakers
//!                    │
//!                    ▼
//!  Waker::wake ────► executor run queue (see `executor.rs`), the task is polled again
//! ```
//!
//! A token is a pointer, so an event costs no lookup. That is sound because a `ScheduledIo`
//! outlives every event that can name it: its `Async` owns it (an `Rc`), and deregistering
//! hands the reactor that `Rc` to keep until the next `epoll_wait` begins. An event is only
//! ever reported for an fd still registered when the wait began, so once a wait has begun
//! after the `EPOLL_CTL_DEL`, no event can carry the address, and only then is it freed, and
//! only then can the allocator hand it to a new source. That is also what keeps a closed
//! fd's stale event from waking the next fd given the same number: the new source has
//! another address, and the old one's events were all reported before it was freed. (tokio
//! has used pointer tokens with such deferred release since it dropped its slab.)
//!
//! Every fd is registered once, edge-triggered, for both directions (`EPOLLIN | EPOLLPRI | EPOLLOUT |
//! EPOLLRDHUP | EPOLLET`), so reads and writes never need an `epoll_ctl`. Edge triggering
//! means the kernel reports a *change*, not a *state*: after an event the task must keep
//! doing I/O until the kernel says `WouldBlock`, and only then may the readiness bit be
//! cleared (see [`ScheduledIo::clear`]).
//!
//! Why no readiness "tick" (as tokio and async-io keep): in this single-threaded runtime the
//! reactor and the tasks never run at the same time. Between a task's syscall returning
//! `WouldBlock` and the task clearing the bit, no event can be recorded, so clearing can never
//! erase an event that arrived meanwhile: it will be delivered by the next `epoll_wait`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::driver::{self, Driver};
use crate::sys::{ev, Epoll, Event};
use crate::trace::Trace;
#[cfg(feature = "uring")]
use crate::uring::Uring;
use crate::waiters::Waiters;

/// The token reserved for the cross-thread eventfd. No source can sit at this address.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// How many events one `epoll_wait` can return. More ready fds stay on the kernel's ready
/// list and are reported by the next call, which the executor makes after at most
/// `MAX_POLLS_BETWEEN_IO` (61) polls.
///
/// Fewer than 61 on purpose: then every task a turn wakes is polled before the next turn, a
/// few dozen wakes after its source's and its header's cache lines were touched, while they
/// are still in L1. With 1024 (tokio's figure) a turn at 1,000 busy connections woke them all
/// and polled them a thousand wakes later, after those lines had left L1: cachegrind counted
/// 6.3 L1 data misses per echo round trip at 1,000 connections against 4.3 with 32 (16 and
/// 48 measured the same as 32). The extra `epoll_wait` is one per 32 round trips.
const EVENTS_PER_WAIT: usize = 32;

/// Readiness bits, as mini records them (one byte per source).
mod bits {
    pub(super) const READABLE: u8 = 1 << 0;
    pub(super) const WRITABLE: u8 = 1 << 1;
    /// The peer shut down its write side (EPOLLRDHUP), or the connection hung up entirely
    /// (EPOLLHUP), or a read returned end of stream. Stays set while the kernel says so: see
    /// `ScheduledIo::set_readiness`. (One bit for both: `peer_closed` waits for either, and
    /// a hang-up always implies the read side is closed.)
    pub(super) const CLOSED: u8 = 1 << 2;
    /// EPOLLERR: the next operation will report the error. Cleared with the direction bits.
    pub(super) const ERROR: u8 = 1 << 3;
}

/// Facts about the socket, kept apart from readiness: nothing that clears readiness may
/// touch them, and they never wake anyone.
mod facts {
    /// EPOLLPRI was seen: TCP urgent data, where a read stops short at the urgent mark with
    /// data still queued behind it. The short-read shortcut is off for this socket for good.
    pub(super) const URGENT: u8 = 1 << 0;
    /// `TCP_INQ` is on: each read reports how many bytes it left queued (see
    /// `Async::poll_read_tcp`).
    pub(super) const INQ: u8 = 1 << 1;
    /// Turning on `TCP_INQ` failed (an old kernel): do not try again.
    pub(super) const NO_INQ: u8 = 1 << 2;
    /// Deregistered: an event still in flight for it (returned by the wait that is being
    /// processed) wakes nobody.
    pub(super) const GONE: u8 = 1 << 3;
    /// A TCP stream on the io_uring driver: not registered with the kernel at all; its
    /// readiness mirrors its receive and send queues (`set_completion_state`).
    #[cfg_attr(not(feature = "uring"), allow(dead_code))]
    pub(super) const COMPLETION: u8 = 1 << 4;
}

/// Whether a TCP socket's reads report the bytes they left queued (see
/// `Async::poll_read_tcp`): recorded in the facts `INQ` and `NO_INQ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inq {
    /// No read has filled its buffer yet, so `TCP_INQ` was never asked for.
    NotTried,
    /// `TCP_INQ` is on: reads use `recvmsg` and learn the count.
    On,
    /// The kernel refused `TCP_INQ`: full reads are followed by a probing `recv`.
    Unsupported,
}

/// Which waiter an operation is: each has its own readiness condition and waiter list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Waits until a read would make progress (data, end of stream, or an error).
    Read,
    /// Waits until a write would make progress (buffer space, or an error).
    Write,
    /// Waits until the peer has closed or reset the connection; consumes nothing. A
    /// readiness to wait for, not an operation: [`Async::poll_io`](crate::io::Async::poll_io)
    /// refuses it.
    Closed,
}

const DIRECTIONS: [Direction; 3] = [Direction::Read, Direction::Write, Direction::Closed];

impl Direction {
    /// The bits that make this direction ready.
    fn ready_mask(self) -> u8 {
        match self {
            Direction::Read => bits::READABLE | bits::ERROR,
            Direction::Write => bits::WRITABLE | bits::ERROR,
            Direction::Closed => bits::CLOSED,
        }
    }
}

/// The per-fd state the reactor and the I/O futures share.
///
/// Lives in an `Rc` owned by the [`Async`](crate::io::Async) that owns the fd; its address is
/// the fd's epoll token.
///
/// Aligned to, and no bigger than, one cache line: an event and the poll it causes both read
/// the readiness and the waiters, and at a thousand connections the line is gone from L1
/// between the two, so it had better be one miss, not two.
#[repr(align(64))]
pub(crate) struct ScheduledIo {
    /// For traces only: the reactor never keys anything by fd.
    fd: RawFd,
    readiness: Cell<u8>,
    /// `facts::*`: what mini learned about the socket, not whether it is ready.
    facts: Cell<u8>,
    /// The tasks waiting on this fd: one slot per direction for the poll methods, and one
    /// entry per waiting future, removed when the future is dropped (see `waiters.rs`).
    waiters: RefCell<Waiters>,
}

// One cache line, as the comment above promises (readiness, facts, fd, two poll slots, the
// waiter lists' borrow flag and the pointer to the rest).
const _: () = assert!(std::mem::size_of::<ScheduledIo>() == 64);

impl fmt::Debug for ScheduledIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduledIo")
            .field("fd", &self.fd)
            .field("readiness", &self.readiness.get())
            .field("facts", &self.facts.get())
            .finish()
    }
}

impl ScheduledIo {
    #[inline]
    fn is_ready_in(&self, dir: Direction) -> bool {
        self.readiness.get() & dir.ready_mask() != 0
    }

    /// Ready now, or stores the task's waker in the poll slot of `dir` and returns `Pending`.
    /// For the poll methods: the last task to poll is the one woken.
    #[inline]
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<()> {
        if self.is_ready_in(dir) {
            return Poll::Ready(());
        }
        self.waiters.borrow_mut().set_slot(dir, cx.waker());
        Poll::Pending
    }

    /// Ready now, or stores the task's waker in the future's own entry (`key`, created on
    /// the first wait) and returns `Pending`. The future must call [`remove_waiter`] with
    /// the key when it is dropped.
    ///
    /// [`remove_waiter`]: ScheduledIo::remove_waiter
    pub(crate) fn poll_ready_entry(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        key: &mut Option<usize>,
    ) -> Poll<()> {
        if self.is_ready_in(dir) {
            return Poll::Ready(());
        }
        *key = Some(self.waiters.borrow_mut().set_entry(*key, dir, cx.waker()));
        Poll::Pending
    }

    /// A waiting future is dropped: its entry leaves the list now.
    pub(crate) fn remove_waiter(&self, key: usize) {
        let waker = self.waiters.borrow_mut().remove(key);
        drop(waker); // outside the borrow: dropping a waker may run arbitrary code
    }

    /// How many places the waiter lists hold (for tests: a given-up wait leaves none).
    pub(crate) fn waiter_count(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// The operation returned `WouldBlock`: forget the readiness of that direction until the
    /// next edge. `CLOSED` stays.
    #[inline]
    pub(crate) fn clear(&self, dir: Direction) {
        let mask = match dir {
            Direction::Read => bits::READABLE | bits::ERROR,
            Direction::Write => bits::WRITABLE | bits::ERROR,
            Direction::Closed => 0,
        };
        self.readiness.set(self.readiness.get() & !mask);
    }

    /// A TCP read came back short (`0 < n < buf.len()`): the receive buffer is empty, so the
    /// next read would return `WouldBlock`. Clearing now saves that syscall. Safe because any
    /// byte that arrives after the read raises a new edge. Not done once the peer has closed
    /// (no further edge will come, and the next read must see end-of-stream), nor on a socket
    /// that has had urgent data (a read stops short at the urgent mark, data queued behind).
    /// Only `Async<TcpStream>` reaches this (see `Async::poll_read_tcp`).
    #[inline]
    pub(crate) fn clear_read_after_short_read(&self) {
        let r = self.readiness.get();
        if r & (bits::CLOSED | bits::ERROR) == 0 && self.facts.get() & facts::URGENT == 0 {
            self.readiness.set(r & !bits::READABLE);
        }
    }

    /// Whether the readiness bits say `dir` is ready (for tests).
    #[cfg(test)]
    pub(crate) fn is_ready(&self, dir: Direction) -> bool {
        self.is_ready_in(dir)
    }

    /// Where this socket stands with `TCP_INQ`.
    pub(crate) fn inq(&self) -> Inq {
        let f = self.facts.get();
        if f & facts::INQ != 0 {
            Inq::On
        } else if f & facts::NO_INQ != 0 {
            Inq::Unsupported
        } else {
            Inq::NotTried
        }
    }

    /// Records the outcome of turning on `TCP_INQ` (for good).
    pub(crate) fn set_inq(&self, on: bool) {
        let fact = if on { facts::INQ } else { facts::NO_INQ };
        self.facts.set(self.facts.get() | fact);
    }

    /// A read returned 0 bytes: the peer closed its write side. Recorded so `peer_closed`
    /// resolves even if the EPOLLRDHUP edge was consumed earlier.
    pub(crate) fn mark_read_closed(&self) {
        self.readiness.set(self.readiness.get() | bits::CLOSED);
        self.wake(bits::CLOSED);
    }

    /// Records the kernel's flags; returns the readiness bits they raised, for [`wake`].
    ///
    /// `CLOSED` follows the kernel. An edge-triggered event carries the fd's whole
    /// current mask, and a connection that has hung up never reports anything but hung up
    /// again, so an event *without* HUP after one with it means the earlier HUP was not a
    /// close: a socket registered before it connected (Linux reports EPOLLHUP for a TCP
    /// socket that is not connected yet, as in async-io's connect pattern) has connected
    /// since. Its `CLOSED` bit is cleared, or `peer_closed` would resolve on a healthy
    /// connection.
    ///
    /// [`wake`]: ScheduledIo::wake
    #[inline]
    fn set_readiness(&self, flags: u32) -> u8 {
        let mut new = 0;
        if flags & ev::IN != 0 {
            new |= bits::READABLE;
        }
        if flags & ev::OUT != 0 {
            new |= bits::WRITABLE;
        }
        let mut r = self.readiness.get();
        if flags & (ev::PRI | ev::RDHUP | ev::HUP | ev::ERR) == 0 {
            r &= !bits::CLOSED; // the usual event: the two directions only
        } else {
            new |= self.rare_flags(flags, &mut r);
        }
        self.readiness.set(r | new);
        new
    }

    /// The bits of the flags other than IN and OUT; clears `CLOSED` from `r` unless one says
    /// the connection is (half) closed.
    #[cold]
    fn rare_flags(&self, flags: u32, r: &mut u8) -> u8 {
        let mut new = 0;
        if flags & ev::PRI != 0 {
            new |= bits::READABLE;
            self.facts.set(self.facts.get() | facts::URGENT);
        }
        if flags & ev::RDHUP != 0 {
            new |= bits::READABLE | bits::CLOSED;
        }
        if flags & ev::HUP != 0 {
            new |= bits::READABLE | bits::WRITABLE | bits::CLOSED;
        }
        if flags & ev::ERR != 0 {
            new |= bits::READABLE | bits::WRITABLE | bits::ERROR;
        }
        if flags & (ev::HUP | ev::RDHUP) == 0 {
            *r &= !bits::CLOSED;
        }
        new
    }

    /// Wakes the tasks waiting in every direction that the bits `new` make ready. Each
    /// waker is taken out of the list before it runs: a wake may run arbitrary code, even
    /// code that waits on this source again.
    #[inline]
    fn wake(&self, new: u8) {
        // The usual case, alone on the hot path: nobody waits through the `Closed` slot or a
        // future's own entry, so only the `Read` and `Write` slots can hold wakers, and one
        // borrow takes both.
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.has_rest() {
            let read = if new & Direction::Read.ready_mask() != 0 {
                waiters.take_slot(Direction::Read)
            } else {
                None
            };
            let write = if new & Direction::Write.ready_mask() != 0 {
                waiters.take_slot(Direction::Write)
            } else {
                None
            };
            drop(waiters);
            // Woken outside the borrow: a wake may run arbitrary code.
            if let Some(waker) = read {
                waker.wake();
            }
            if let Some(waker) = write {
                waker.wake();
            }
            return;
        }
        drop(waiters);
        self.wake_all(new);
    }

    /// `wake` where futures wait through entries of their own (see `waiters.rs`).
    #[cold]
    fn wake_all(&self, new: u8) {
        for dir in DIRECTIONS {
            if new & dir.ready_mask() == 0 {
                continue;
            }
            // The usual case: one task waits through a poll method, or nobody does (most
            // events raise both directions while a task waits in one).
            let slot = self.waiters.borrow_mut().take_slot(dir);
            if let Some(waker) = slot {
                waker.wake();
            }
            let mut from = 0;
            while self.waiters.borrow().has_rest() {
                let Some((waker, next)) = self.waiters.borrow_mut().take_entry(dir, from) else { break };
                waker.wake();
                from = next;
            }
        }
    }

    /// A readiness event for this source (an epoll event's flags, or a poll request's mask on
    /// io_uring): record it and wake the tasks it concerns. An event for a source
    /// deregistered since the kernel reported it wakes nobody (`facts::GONE`).
    #[cfg(feature = "uring")]
    #[inline]
    pub(crate) fn ready_event(&self, flags: u32) {
        if !self.is_gone() {
            self.wake(self.set_readiness(flags));
        }
    }

    /// Whether the source was deregistered.
    #[inline]
    pub(crate) fn is_gone(&self) -> bool {
        self.facts.get() & facts::GONE != 0
    }

    /// The fd, as registered.
    #[cfg(feature = "uring")]
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// A completion-driven TCP stream's receive queue changed (io_uring): `readable` sets or
    /// clears `READABLE`, `closed` sets `CLOSED` (end of stream or an error). Wakes the tasks
    /// waiting for what became ready.
    #[cfg(feature = "uring")]
    #[inline]
    pub(crate) fn set_read_state(&self, readable: bool, closed: bool) {
        let bits = if readable { bits::READABLE } else { 0 } | if closed { bits::CLOSED } else { 0 };
        self.set_state(bits::READABLE, bits);
    }

    /// Likewise for its send queue: `writable` sets or clears `WRITABLE`.
    #[cfg(feature = "uring")]
    #[inline]
    pub(crate) fn set_write_state(&self, writable: bool) {
        self.set_state(bits::WRITABLE, if writable { bits::WRITABLE } else { 0 });
    }

    /// Replaces the bits of `mask` with `set` (and adds `set`'s others), waking the tasks
    /// that what became ready concerns.
    #[cfg(feature = "uring")]
    #[inline]
    fn set_state(&self, mask: u8, set: u8) {
        let old = self.readiness.get();
        let r = (old & !mask) | set;
        self.readiness.set(r);
        let new = r & !old;
        if new != 0 {
            self.wake(new);
        }
    }

    /// How many tasks `wake(new)` would wake (for the trace).
    fn waiting(&self, new: u8) -> usize {
        let waiters = self.waiters.borrow();
        DIRECTIONS.into_iter().filter(|dir| new & dir.ready_mask() != 0).map(|dir| waiters.waiting(dir)).sum()
    }
}

/// The epoll token of a source: its address.
fn token(io: &Rc<ScheduledIo>) -> u64 {
    Rc::as_ptr(io) as u64
}

/// One epoll instance and the registered sources. Shared (`Rc`) by the executor, which waits
/// on it, and by every [`Async`](crate::io::Async), which deregisters itself on drop.
pub(crate) struct Reactor {
    backend: Backend,
    trace: Trace,
    /// How many sources are registered (for tests and diagnostics).
    sources: Cell<usize>,
    /// Sources deregistered since the last `epoll_wait` began, kept alive until the next one
    /// begins: an event already returned may still carry their address (see the top).
    released: RefCell<Vec<Rc<ScheduledIo>>>,
    /// Reused across turns, so a turn allocates and initialises nothing.
    events: RefCell<Box<[Event]>>,
}

/// The kernel interface behind the reactor (see [`Driver`]).
enum Backend {
    Epoll(Epoll),
    #[cfg(feature = "uring")]
    Uring(Box<Uring>),
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("driver", &self.driver())
            .field("sources", &self.source_count())
            .finish()
    }
}

impl Reactor {
    /// A reactor on `driver`, falling back to epoll (with one line on stderr saying why)
    /// where io_uring is asked for and refused.
    pub(crate) fn new(wake_fd: BorrowedFd<'_>, trace: Trace, driver: Driver) -> io::Result<Reactor> {
        let backend = match driver {
            Driver::Epoll => None,
            #[cfg(feature = "uring")]
            Driver::IoUring | Driver::Auto => match Uring::new(wake_fd, trace.clone()) {
                Ok(uring) => Some(Backend::Uring(Box::new(uring))),
                Err(reason) => {
                    driver::report_fallback(&reason);
                    None
                }
            },
            #[cfg(not(feature = "uring"))]
            Driver::IoUring | Driver::Auto => {
                driver::report_fallback("mini was built without its `uring` feature");
                None
            }
        };
        let backend = match backend {
            Some(backend) => backend,
            None => {
                let epoll = Epoll::new()?;
                epoll.add(wake_fd, ev::IN | ev::ET, WAKE_TOKEN)?;
                Backend::Epoll(epoll)
            }
        };
        Ok(Reactor {
            backend,
            trace,
            sources: Cell::new(0),
            released: RefCell::new(Vec::new()),
            events: RefCell::new(vec![Event::EMPTY; EVENTS_PER_WAIT].into_boxed_slice()),
        })
    }

    /// Registers `fd` once, edge-triggered, for both directions.
    ///
    /// The source starts out ready in both directions ("optimistic", as async-io does): the
    /// first read or write just tries the syscall. A fresh socket often has data or buffer
    /// space already, and if not, `WouldBlock` clears the bit and the next edge sets it.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<Rc<ScheduledIo>> {
        let io = Rc::new(ScheduledIo {
            fd: fd.as_raw_fd(),
            readiness: Cell::new(bits::READABLE | bits::WRITABLE),
            facts: Cell::new(0),
            waiters: RefCell::default(),
        });
        match &self.backend {
            Backend::Epoll(epoll) => {
                epoll.add(fd, ev::IN | ev::OUT | ev::RDHUP | ev::PRI | ev::ET, token(&io))?
            }
            #[cfg(feature = "uring")]
            Backend::Uring(uring) => uring.arm_poll(&io, fd.as_raw_fd()),
        }
        self.sources.set(self.sources.get() + 1);
        Ok(io)
    }

    /// A source for a TCP stream driven by completions (io_uring): nothing is registered
    /// with the kernel; the stream's requests set its readiness (see `uring/stream.rs`).
    #[cfg(feature = "uring")]
    pub(crate) fn unregistered_source(&self, fd: BorrowedFd<'_>) -> Rc<ScheduledIo> {
        Rc::new(ScheduledIo {
            fd: fd.as_raw_fd(),
            readiness: Cell::new(bits::WRITABLE),
            facts: Cell::new(facts::COMPLETION),
            waiters: RefCell::default(),
        })
    }

    /// Which driver this reactor runs.
    pub(crate) fn driver(&self) -> Driver {
        match self.backend {
            Backend::Epoll(_) => Driver::Epoll,
            #[cfg(feature = "uring")]
            Backend::Uring(_) => Driver::IoUring,
        }
    }

    /// The io_uring backend, if this reactor runs it.
    #[cfg(feature = "uring")]
    #[inline]
    pub(crate) fn uring(&self) -> Option<&Uring> {
        match &self.backend {
            Backend::Uring(uring) => Some(uring),
            Backend::Epoll(_) => None,
        }
    }

    /// Removes `fd` from epoll; its source is freed once no event can name it. Call before
    /// the fd is closed.
    pub(crate) fn deregister(&self, io: &Rc<ScheduledIo>, fd: BorrowedFd<'_>) {
        self.sources.set(self.sources.get() - 1);
        io.facts.set(io.facts.get() | facts::GONE);
        #[cfg_attr(not(feature = "uring"), allow(clippy::infallible_destructuring_match))]
        let epoll = match &self.backend {
            Backend::Epoll(epoll) => epoll,
            // The poll request holds the source until its last completion (uring/mod.rs).
            #[cfg(feature = "uring")]
            Backend::Uring(uring) => return uring.disarm_poll(io, fd.as_raw_fd()),
        };
        match epoll.delete(fd) {
            // Anything but ENOENT (EBADF: the fd was closed behind its owner's back, which I/O
            // safety forbids) may leave a registration behind that still names the source, if
            // the file is open elsewhere. Keep the source alive for good (a few dozen bytes)
            // rather than let a later event read freed memory.
            Err(e) if e.kind() != io::ErrorKind::NotFound => std::mem::forget(io.clone()),
            // Removed, or never there (ENOENT): no wait from now on can name the source.
            _ => self.released.borrow_mut().push(io.clone()),
        }
    }

    /// Whether timer waits have nanosecond precision (`epoll_pwait2`).
    pub(crate) fn precise_timeouts(&self) -> bool {
        match &self.backend {
            Backend::Epoll(epoll) => epoll.is_precise(),
            #[cfg(feature = "uring")]
            Backend::Uring(_) => true, // io_uring_enter's timeout is a timespec
        }
    }

    /// The number of registered sources (for tests and diagnostics).
    pub(crate) fn source_count(&self) -> usize {
        self.sources.get()
    }

    /// Waits for events (`None`: until one arrives), records them and wakes the waiting
    /// tasks. Returns whether the cross-thread eventfd fired.
    #[inline]
    pub(crate) fn turn(&self, timeout: Option<Duration>) -> io::Result<bool> {
        match &self.backend {
            Backend::Epoll(epoll) => self.turn_epoll(epoll, timeout),
            #[cfg(feature = "uring")]
            Backend::Uring(uring) => uring.turn(timeout),
        }
    }

    #[inline]
    fn turn_epoll(&self, epoll: &Epoll, timeout: Option<Duration>) -> io::Result<bool> {
        // Held while wakers run: only another `turn` could want it, and nothing a waker does
        // can start one (`block_on` refuses to nest).
        let mut events = self.events.borrow_mut();
        // No event of the wait below can name a source deregistered before it: free them.
        // (Dropped outside the borrow: a waker's drop may run arbitrary code.)
        if !self.released.borrow().is_empty() {
            let released = std::mem::take(&mut *self.released.borrow_mut());
            drop(released);
        }
        if let Some(trace) = self.trace.get() {
            trace.epoll_enter(timeout);
        }
        let waited = epoll.wait(&mut events, timeout)?;
        let n = waited.events();
        if let Some(trace) = self.trace.get() {
            trace.epoll_return(waited);
            trace.set_wake_source("reactor");
        }

        let mut woken_remotely = false;
        for event in &events[..n] {
            if event.token() == WAKE_TOKEN {
                woken_remotely = true;
                if let Some(trace) = self.trace.get() {
                    trace.wakeup_eventfd();
                }
                continue;
            }
            // SAFETY: the token is the address of a source that was registered when this wait
            // began, and it stays alive until the next wait begins (`released`): see the top
            // of this file. A waker that deregisters it meanwhile only moves it to `released`.
            let io = unsafe { &*(event.token() as *const ScheduledIo) };
            if io.is_gone() {
                continue; // deregistered since this wait returned: its fd is closed or closing
            }
            let new = io.set_readiness(event.flags());
            if let Some(trace) = self.trace.get() {
                trace.event(event.token(), io.fd, event.flags(), io.waiting(new));
            }
            io.wake(new);
        }
        if let Some(trace) = self.trace.get() {
            trace.set_wake_source("task");
        }
        Ok(woken_remotely)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::*;
    use crate::test_util::counting_waker;

    fn source() -> ScheduledIo {
        ScheduledIo { fd: -1, readiness: Cell::new(0), facts: Cell::new(0), waiters: RefCell::default() }
    }

    /// An event adds the bits of its own flags and keeps what was recorded before: only an
    /// operation's `WouldBlock` clears a direction.
    #[test]
    fn an_event_adds_its_own_bits_and_keeps_the_others() {
        let io = source();
        io.set_readiness(ev::IN);
        assert!(io.is_ready(Direction::Read), "IN makes it readable");
        assert!(!io.is_ready(Direction::Write) && !io.is_ready(Direction::Closed), "and nothing else");
        io.set_readiness(ev::IN);
        assert!(io.is_ready(Direction::Read), "a second edge keeps it readable");
        io.set_readiness(ev::OUT);
        assert!(io.is_ready(Direction::Read) && io.is_ready(Direction::Write), "OUT adds writable");
    }

    /// Once a socket has reported urgent data, a short read never clears its readiness again,
    /// however many urgent marks follow.
    #[test]
    fn urgent_data_turns_the_short_read_shortcut_off_for_good() {
        let io = source();
        for _ in 0..2 {
            io.set_readiness(ev::IN | ev::PRI);
        }
        io.clear_read_after_short_read();
        assert!(io.is_ready(Direction::Read), "after urgent data a short read proves nothing");
    }

    /// The hot path of `wake` (only the `Read` and `Write` poll slots in use): an event
    /// wakes the slot of each direction it makes ready and leaves the other one waiting.
    /// (`tests/reactor.rs` checks the same through futures' entries, the other path.)
    #[test]
    fn an_event_wakes_only_the_poll_slot_of_its_own_direction() {
        let io = source();
        let (reader, reads) = counting_waker();
        let (writer, writes) = counting_waker();
        assert!(io.poll_ready(&mut Context::from_waker(&reader), Direction::Read).is_pending());
        assert!(io.poll_ready(&mut Context::from_waker(&writer), Direction::Write).is_pending());
        io.wake(io.set_readiness(ev::OUT));
        assert_eq!((reads.count(), writes.count()), (0, 1), "OUT wakes the writer only");
        assert!(io.poll_ready(&mut Context::from_waker(&writer), Direction::Write).is_ready());
        io.clear(Direction::Write);
        assert!(io.poll_ready(&mut Context::from_waker(&writer), Direction::Write).is_pending());
        io.wake(io.set_readiness(ev::IN));
        assert_eq!((reads.count(), writes.count()), (1, 1), "IN wakes the reader only");
    }

    fn reactor() -> (Reactor, UnixStream) {
        let (wake_fd, keep) = UnixStream::pair().unwrap();
        (Reactor::new(wake_fd.as_fd(), Trace::from_env(), Driver::Epoll).unwrap(), keep)
    }

    /// Deregistering hands the source to `released`, which keeps it alive until the next
    /// wait begins (an event already returned may still name it), and not longer: a source
    /// kept past that is memory that grows with every connection closed.
    #[test]
    fn a_deregistered_source_lives_until_the_next_wait_begins() {
        let (reactor, _keep) = reactor();
        let (a, _b) = UnixStream::pair().unwrap();
        let io = reactor.register(a.as_fd()).unwrap();
        assert_eq!(reactor.source_count(), 1);
        reactor.deregister(&io, a.as_fd());
        assert_eq!(reactor.source_count(), 0);
        assert_eq!(Rc::strong_count(&io), 2, "the reactor keeps it until the next wait begins");
        reactor.turn(Some(Duration::ZERO)).unwrap();
        assert_eq!(Rc::strong_count(&io), 1, "a wait has begun since: the reactor let it go");
    }

    /// Registration is edge-triggered: a socket that stays writable is reported once, not
    /// on every turn (level-triggered, each turn would wake its writer again for nothing).
    #[test]
    fn a_socket_that_stays_writable_is_reported_once() {
        let (reactor, _keep) = reactor();
        let (a, _b) = UnixStream::pair().unwrap();
        let io = reactor.register(a.as_fd()).unwrap();
        let (writer, writes) = counting_waker();
        for turn in 1..=3 {
            io.clear(Direction::Write); // as a `WouldBlock` would (the buffer is not full)
            assert!(io.poll_ready(&mut Context::from_waker(&writer), Direction::Write).is_pending());
            reactor.turn(Some(Duration::ZERO)).unwrap();
            assert_eq!(writes.count(), 1, "turn {turn}: only the first edge wakes the writer");
        }
        reactor.deregister(&io, a.as_fd());
    }

    thread_local! {
        static WAKES: Cell<usize> = const { Cell::new(0) };
        static ON_FIRST_WAKE: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    }

    /// Counts its wakes; the first one runs `ON_FIRST_WAKE`, inside the reactor's turn.
    struct Hook;

    impl Wake for Hook {
        fn wake(self: Arc<Self>) {
            WAKES.set(WAKES.get() + 1);
            if let Some(f) = ON_FIRST_WAKE.take() {
                f();
            }
        }
    }

    /// `facts::GONE`: one wait returns events for two sources, and the first event's waker
    /// deregisters both (an `Async` dropped by the woken code). The second event names a
    /// source that is still allocated (`released`) but gone: it must wake nobody.
    #[test]
    fn an_event_for_a_source_deregistered_during_the_turn_wakes_nobody() {
        let (reactor, _keep) = reactor();
        let reactor = Rc::new(reactor);
        let (a0, b0) = UnixStream::pair().unwrap();
        let (a1, b1) = UnixStream::pair().unwrap();
        let readers = Rc::new([a0, a1]);
        let ios: Vec<_> = readers.iter().map(|a| reactor.register(a.as_fd()).unwrap()).collect();
        let waker = Waker::from(Arc::new(Hook));
        for io in &ios {
            io.clear(Direction::Read); // registered optimistically ready: make it wait
            assert!(io.poll_ready(&mut Context::from_waker(&waker), Direction::Read).is_pending());
        }
        let (r, gone, fds) = (reactor.clone(), ios.clone(), readers.clone());
        ON_FIRST_WAKE.set(Some(Box::new(move || {
            for (io, fd) in gone.iter().zip(fds.iter()) {
                r.deregister(io, fd.as_fd());
            }
        })));
        for mut b in [&b0, &b1] {
            b.write_all(b"x").unwrap();
        }
        reactor.turn(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(WAKES.get(), 1, "the second event named a source deregistered by the first's waker");
    }
}
