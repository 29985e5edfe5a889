//! The io_uring driver: the reactor's second backend, where the kernel *completes* I/O
//! instead of reporting readiness.
//!
//! The loop is the same as on epoll (see `executor.rs`): run tasks, then one call into the
//! kernel, then wake the tasks it has news for. What changes is that call and the news:
//!
//! ```text
//!  tasks queue requests (SQEs) ──► one io_uring_enter per loop turn: submits them all and
//!                                  waits for completions (or a timer's deadline)
//!  completion (CQE) { user_data, result, flags }
//!        │  user_data = the address of what the request serves, plus a 3-bit tag (`Tag`)
//!        ▼
//!  Poll   ──► ScheduledIo: readiness |= result (the poll mask), wake its waiters, as epoll
//!  Recv   ──► a TCP stream's receive queue gains a filled ring buffer (stream.rs)
//!  Send   ──► a TCP stream's send queue shrinks (stream.rs)
//!  Accept ──► a listener's queue gains a connection (stream.rs)
//!  Op     ──► a one-shot request (files) has its result (op.rs)
//! ```
//!
//! Readiness-based sources (UDP, Unix sockets, signals' self-pipe, `Async<T>` of anything)
//! keep working unchanged: their registration is a multishot `IORING_OP_POLL_ADD` that posts
//! a completion each time the fd's wait queue wakes, which is what an edge-triggered epoll
//! event is. TCP streams and listeners use the completion path of `stream.rs`.
//!
//! **Who owns what.** A request in flight may name memory (a buffer, the source it serves)
//! that the kernel reads or writes until its completion is posted. So every request that
//! names an `Rc` holds one strong reference of it, turned into the raw `user_data`
//! (`Rc::into_raw`), and the request's last completion (one without `IORING_CQE_F_MORE`)
//! turns it back (`Rc::from_raw`) and drops it. Whatever the task side does meanwhile (drop
//! the stream, drop the future), the memory lives until the kernel is done with it.

pub(crate) mod op;
pub(crate) mod stream;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::reactor::ScheduledIo;
use crate::sys::ev;
use crate::sys::uring::{self as sys, BufRing, Completion, Entry, Ring};
use crate::trace::Trace;

/// Submission slots. Completions get four times as many (`Ring::new`), and more than that
/// are kept by the kernel (`IORING_FEAT_NODROP`), read at the next enter.
const RING_ENTRIES: u32 = 1024;

/// Completions handled per loop turn, at most: as epoll's `EVENTS_PER_WAIT`, a bounded batch
/// keeps the woken tasks' lines in cache until they run; the rest wait in the ring.
const COMPLETIONS_PER_TURN: usize = 64;

/// What a completion's `user_data` names, in its low three bits. Everything a request can
/// name is at least 8-byte aligned (an `Rc`'s allocation; `ScheduledIo` is 64), so the
/// address keeps its other bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Tag {
    /// A multishot poll; the address is a `ScheduledIo`.
    Poll = 0,
    /// A TCP stream's multishot receive; the address is its `stream::Shared`.
    Recv = 1,
    /// A TCP stream's send; the address is its `stream::Shared`.
    Send = 2,
    /// A listener's multishot accept; the address is its `stream::Acceptor`.
    Accept = 3,
    /// A one-shot request; the address is an `op::Slot`.
    Op = 4,
    /// The cross-thread doorbell's poll; no address.
    Wake = 5,
    /// A request whose completion nobody needs (cancels, removes); no address.
    Ignore = 6,
    /// A TCP stream's one-shot receive into a buffer of its own, when the ring ran dry; the
    /// address is its `stream::Shared`.
    RecvOwn = 7,
}

impl Tag {
    const MASK: u64 = 7;

    fn of(user_data: u64) -> Tag {
        match user_data & Tag::MASK {
            0 => Tag::Poll,
            1 => Tag::Recv,
            2 => Tag::Send,
            3 => Tag::Accept,
            4 => Tag::Op,
            5 => Tag::Wake,
            6 => Tag::Ignore,
            _ => Tag::RecvOwn,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tag::Poll => "POLL_ADD",
            Tag::Recv => "RECV (multishot)",
            Tag::Send => "SEND",
            Tag::Accept => "ACCEPT (multishot)",
            Tag::Op => "op",
            Tag::Wake => "POLL_ADD (doorbell)",
            Tag::Ignore => "cancel",
            Tag::RecvOwn => "RECV (own buffer)",
        }
    }

    /// `address | tag`.
    pub(crate) fn data<T>(self, address: *const T) -> u64 {
        debug_assert_eq!(address as u64 & Tag::MASK, 0, "aligned to at least 8");
        address as u64 | self as u64
    }
}

/// The address part of a `user_data`.
fn address<T>(user_data: u64) -> *const T {
    (user_data & !Tag::MASK) as *const T
}

/// The poll mask of a readiness source: the same as its epoll registration.
const POLL_MASK: u32 = ev::IN | ev::OUT | ev::RDHUP | ev::PRI | ev::ET;

/// The io_uring backend of one runtime's reactor.
pub(crate) struct Uring {
    ring: RefCell<Ring>,
    /// Buffers for the TCP streams' multishot receives (group 0), created with the ring.
    pub(crate) buffers: RefCell<BufRing>,
    /// Requests in flight that hold a reference (see the top); the driver waits for them at
    /// shutdown, so none is leaked.
    in_flight: Cell<usize>,
    /// Reused across turns.
    completions: RefCell<Vec<Completion>>,
    /// How many times a receive ran out of buffers (for tests and the trace).
    pub(crate) starvations: Cell<usize>,
    /// Ring buffers the kernel filled and mini has not given back yet (for tests: a dropped
    /// stream must give back what it held).
    #[cfg(test)]
    pub(crate) lent: Cell<usize>,
    pub(crate) trace: Trace,
    wake_fd: i32,
}

impl fmt::Debug for Uring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uring").field("in_flight", &self.in_flight.get()).finish()
    }
}

/// Buffers in the ring, and their size. 4 KiB buffers cover a typical request in one
/// completion; 1,024 of them (4 MiB) let 1,000 connections each have a message in flight.
const BUFFERS: u16 = 1024;
const BUFFER_SIZE: usize = 4096;

impl Uring {
    /// Sets up the ring and the buffer ring, and arms the doorbell's poll. `Err` carries the
    /// reason the kernel refused, for the fallback's message.
    pub(crate) fn new(wake_fd: BorrowedFd<'_>, trace: Trace) -> Result<Uring, String> {
        let ring = Ring::new(RING_ENTRIES)?;
        let buffers = BufRing::new(BUFFERS, BUFFER_SIZE);
        ring.register_buf_ring(&buffers, stream::GROUP)
            .map_err(|e| format!("IORING_REGISTER_PBUF_RING: {e}; the kernel lacks buffer rings (5.19)"))?;
        let uring = Uring {
            ring: RefCell::new(ring),
            buffers: RefCell::new(buffers),
            in_flight: Cell::new(0),
            completions: RefCell::new(Vec::with_capacity(COMPLETIONS_PER_TURN)),
            starvations: Cell::new(0),
            #[cfg(test)]
            lent: Cell::new(0),
            trace,
            wake_fd: wake_fd.as_raw_fd(),
        };
        uring.arm_doorbell();
        Ok(uring)
    }

    fn arm_doorbell(&self) {
        let entry = sys::poll_multishot(self.wake_fd, ev::IN | ev::ET, Tag::Wake as u64);
        // SAFETY: the entry names no memory; the doorbell's fd outlives the ring (the
        // executor's `Remote` owns it and outlives the reactor).
        unsafe { self.push(&entry, "POLL_ADD (doorbell)", self.wake_fd) };
    }

    /// Queues `entry` for the next enter.
    ///
    /// # Safety
    ///
    /// As [`Ring::push`]: the entry's pointers stay valid until its last completion, and its
    /// `user_data` is one `complete` can interpret (a tag, and an address holding a reference
    /// if the tag names one).
    pub(crate) unsafe fn push(&self, entry: &Entry, op: &str, fd: i32) {
        if let Some(trace) = self.trace.get() {
            trace.submission(op, fd, entry.get_user_data());
        }
        // SAFETY: passed on from the caller.
        unsafe { self.ring.borrow_mut().push(entry) };
    }

    /// Queues a request that holds a reference of `target` until its last completion (see
    /// the top): the reference is turned into the `user_data`.
    ///
    /// # Safety
    ///
    /// The entry's pointers, if any, point into `target` (kept alive by that reference) or
    /// to memory that outlives the request.
    pub(crate) unsafe fn push_holding<T>(
        &self,
        target: Rc<T>,
        tag: Tag,
        build: impl FnOnce(u64) -> Entry,
        fd: i32,
    ) {
        let user_data = tag.data(Rc::into_raw(target));
        self.in_flight.set(self.in_flight.get() + 1);
        // SAFETY: the entry's memory lives in `target`, held until the last completion
        // (`release`), or outlives the request (the caller's promise).
        unsafe { self.push(&build(user_data), tag.name(), fd) };
    }

    /// A request's last completion: gives back the reference it held.
    ///
    /// # Safety
    ///
    /// `user_data` came from `push_holding` with an `Rc<T>`, and this is its last completion.
    unsafe fn release<T>(&self, user_data: u64) -> Rc<T> {
        self.in_flight.set(self.in_flight.get() - 1);
        // SAFETY: the caller's promise: the address is the `Rc::into_raw` of `push_holding`,
        // whose reference nobody else has given back.
        unsafe { Rc::from_raw(address::<T>(user_data)) }
    }

    /// Queues a cancel of the request with `target` `user_data` and hands it to the kernel at
    /// once (with everything else queued). For requests that may go on a little longer (the
    /// read-ahead limit); a request being closed uses [`cancel_and_wait`].
    ///
    /// [`cancel_and_wait`]: Uring::cancel_and_wait
    pub(crate) fn cancel_now(&self, target: u64, fd: i32) {
        let entry = sys::cancel(target, Tag::Ignore as u64);
        // SAFETY: a cancel names no memory, only the target's user_data (a number).
        unsafe { self.push(&entry, "cancel", fd) };
        self.flush();
    }

    /// Cancels the request with `target` `user_data` and returns once it has ended: its file
    /// is released before the caller closes the fd, so the peer sees the close even if the
    /// loop then sleeps, or the thread blocks. Submits everything queued first (the request
    /// itself may still be queued). Bounded by a second; its completion is read as usual at
    /// the next turn. (An async cancel that meets the request while it is being completed
    /// gets `EALREADY` and leaves it armed.)
    pub(crate) fn cancel_and_wait(&self, target: u64, fd: i32) {
        self.flush();
        if let Some(trace) = self.trace.get() {
            trace.submission("cancel (synchronous)", fd, target);
        }
        // NotFound: it had ended already. A timeout (a kernel that never lets go) leaves the
        // request to complete later; its reference keeps its memory alive meanwhile.
        let _ = self.ring.borrow().cancel_sync(target, Duration::from_secs(1));
        // The cancelled request ends in deferred task work (DEFER_TASKRUN), which only an
        // enter runs: run it now, so the request lets go of the file before the fd closes.
        self.flush();
    }

    /// Gives receive buffer `bid` back to the kernel (published at the end of the turn, or
    /// by the next `flush`).
    pub(crate) fn give_back(&self, bid: u16) {
        #[cfg(test)]
        self.lent.set(self.lent.get() - 1);
        self.buffers.borrow_mut().put(bid);
    }

    /// Submits what is queued now, without waiting.
    pub(crate) fn flush(&self) {
        self.buffers.borrow().publish();
        let _ = self.ring.borrow_mut().flush();
    }

    /// Arms the multishot poll of a readiness source (its registration).
    pub(crate) fn arm_poll(&self, io: &Rc<ScheduledIo>, fd: i32) {
        // SAFETY: a poll request names no memory but the source, which it holds.
        unsafe {
            self.push_holding(io.clone(), Tag::Poll, |data| sys::poll_multishot(fd, POLL_MASK, data), fd)
        };
    }

    /// Ends the poll of a source being deregistered: its last completion gives the
    /// reference back.
    pub(crate) fn disarm_poll(&self, io: &Rc<ScheduledIo>, fd: i32) {
        self.cancel_and_wait(Tag::Poll.data(Rc::as_ptr(io)), fd);
    }

    /// Hands the queued requests to the kernel and waits (`timeout`, as `Epoll::wait`), then
    /// dispatches the completions. Returns whether the doorbell rang.
    pub(crate) fn turn(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut ring = self.ring.borrow_mut();
        if let Some(trace) = self.trace.get() {
            trace.uring_enter(ring.queued(), timeout);
        }
        ring.enter(timeout)?;
        let mut completions = std::mem::take(&mut *self.completions.borrow_mut());
        ring.completions(&mut completions, COMPLETIONS_PER_TURN);
        drop(ring); // wakers and dispatch may queue new requests
        if let Some(trace) = self.trace.get() {
            trace.uring_return(completions.len());
        }
        let mut rang = false;
        for c in completions.drain(..) {
            rang |= self.complete(c);
        }
        *self.completions.borrow_mut() = completions;
        // Buffers given back during this turn's dispatch become the kernel's again.
        self.buffers.borrow().publish();
        Ok(rang)
    }

    /// Dispatches one completion; returns whether it was the doorbell.
    fn complete(&self, c: Completion) -> bool {
        let tag = Tag::of(c.user_data);
        let more = sys::cqe::more(c.flags);
        if let Some(trace) = self.trace.get() {
            trace.completion(tag.name(), c.user_data, c.result, more);
        }
        match tag {
            Tag::Wake => {
                if !more {
                    self.arm_doorbell();
                }
                return true;
            }
            Tag::Ignore => {}
            // SAFETY: a poll's user_data comes from `arm_poll`'s `push_holding` with the
            // source's `Rc`; a multishot request's last completion is the one without `more`.
            Tag::Poll => unsafe {
                self.with_held::<ScheduledIo>(c.user_data, !more, |io| {
                    if c.result > 0 {
                        io.ready_event(c.result as u32);
                    }
                    if more && io.is_gone() {
                        // Posted before `disarm_poll`'s cancel (then this cancel finds nothing), or
                        // still armed because that synchronous cancel gave up after a second:
                        // cancel again, or it would hold the socket open for good.
                        self.cancel_now(c.user_data, io.fd());
                    }
                    // Ended by the kernel (a full completion queue; not `disarm_poll`'s
                    // cancel): arm it again. A poll that failed (EBADF: the fd was closed
                    // behind its owner's back) is not re-armed: it would fail again at once.
                    if !more && !io.is_gone() && c.result >= 0 {
                        self.arm_poll(io, io.fd());
                    }
                })
            },
            Tag::Recv | Tag::RecvOwn | Tag::Send | Tag::Accept => stream::complete(self, tag, c, more),
            // SAFETY: an op's user_data comes from `op::submit`'s `push_holding` with its
            // slot's `Rc`; the request is one-shot, so this completion is its last.
            Tag::Op => unsafe {
                self.with_held::<op::Slot>(c.user_data, true, |slot| slot.complete(c.result))
            },
        }
        false
    }

    /// Runs `f` with the `Rc` that a request holds (lent: its count is not touched), then, if
    /// this is the request's last completion, gives that reference back.
    ///
    /// # Safety
    ///
    /// `user_data` came from `push_holding` with an `Rc<T>`, and no earlier completion of
    /// that request was its last.
    unsafe fn with_held<T>(&self, user_data: u64, last: bool, f: impl FnOnce(&Rc<T>)) {
        // SAFETY: the request's reference is alive until it is given back below; the
        // `ManuallyDrop` lends it without a second count and never drops it.
        let held = std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(address::<T>(user_data)) });
        f(&held);
        if last {
            // SAFETY: the caller's promise: this completion is the request's last.
            drop(unsafe { self.release::<T>(user_data) });
        }
    }
}

impl Drop for Uring {
    /// Cancels every request still in flight and reads their completions, so the references
    /// they hold are given back (no leak) and no buffer is freed while the kernel may still
    /// write to it. Bounded: a request the kernel will not end within a second (a read of a
    /// stuck device) is left to the ring's teardown, its memory leaked rather than freed
    /// under the kernel.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        // SAFETY: a cancel names no memory.
        unsafe { self.ring.get_mut().push(&sys::cancel_all(Tag::Ignore as u64)) };
        let mut completions = Vec::new();
        while self.in_flight.get() > 0 && Instant::now() < deadline {
            if self.ring.get_mut().enter(Some(Duration::from_millis(10))).is_err() {
                break;
            }
            self.ring.get_mut().completions(&mut completions, usize::MAX);
            for c in completions.drain(..) {
                let more = sys::cqe::more(c.flags);
                // SAFETY: each tag's address is the reference its request holds, given back
                // once, at its last completion, as in `complete`.
                unsafe {
                    match Tag::of(c.user_data) {
                        Tag::Poll if !more => drop(self.release::<ScheduledIo>(c.user_data)),
                        Tag::Op => drop(self.release::<op::Slot>(c.user_data)),
                        Tag::Recv | Tag::RecvOwn | Tag::Send | Tag::Accept => {
                            stream::complete_at_shutdown(self, c, more)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
