//! TCP streams on the completion driver.
//!
//! A stream keeps one multishot receive in flight. The kernel picks a buffer from the ring
//! (`BufRing`) for each chunk that arrives and posts a completion naming it; the chunk joins
//! the stream's receive queue, and a read copies out of it (or, through `AsyncBufRead`, lends
//! it out as it is) and gives each emptied buffer back to the ring.
//!
//! ```text
//!  kernel ── RECV completion { buffer 3, 512 bytes } ──► Shared.recv.queue [ .., (3, 512) ]
//!                                                         │ poll_read copies, buffer 3 goes
//!                                                         ▼ back to the ring
//!  poll_write: bytes join Shared.send.pending ──► one SEND at a time, from an owned Vec
//! ```
//!
//! Limits that keep one stream from taking everything:
//! - **read-ahead**: once [`READ_AHEAD`] bytes wait unread, the receive is cancelled; the
//!   peer's data then waits in the kernel's socket buffer and TCP's window pushes back on the
//!   sender, as with epoll when nobody reads. Reading re-arms it.
//! - **out of buffers**: when the ring is empty (streams nobody reads hold its buffers) the
//!   kernel ends the receive with `ENOBUFS`. The stream then receives into a buffer of its own
//!   (one-shot, 16 KiB) and tries the ring again after: it never waits for buffers that other
//!   streams hold, which could be for ever.
//! - **send queue**: `poll_write` takes bytes while fewer than [`SEND_QUEUE`] wait to be sent
//!   and returns at once ("early completion": the bytes are mini's to send, as the kernel's
//!   socket buffer would have taken them); an error of a send that failed later is returned
//!   by the next write, flush or close.
//!
//! The readiness bits of the stream's `ScheduledIo` mirror the queues (`readable` = data,
//! end of stream or an error queued; `writable` = room in the send queue), so `readable()`,
//! `writable()` and `peer_closed()` wait the same way on both drivers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{Tag, Uring};
use crate::reactor::{Direction, ScheduledIo};
use crate::sys;
use crate::sys::uring::{self as ring, Completion};

/// The provided-buffer group of the receive buffers.
pub(crate) const GROUP: u16 = 0;

/// Bytes a stream may hold received and unread before its receive is stopped (see the top).
pub(crate) const READ_AHEAD: usize = 64 * 1024;

/// Bytes `poll_write` may hold for sending before it waits.
pub(crate) const SEND_QUEUE: usize = 64 * 1024;

/// A TCP stream's state, shared by the stream and its requests in flight (each holds a
/// reference: see the driver's top comment).
pub(crate) struct Shared {
    /// The readiness mirror and the waiting tasks.
    io: Rc<ScheduledIo>,
    /// The fd the requests name. The stream's own until it is dropped; then a duplicate kept
    /// here (`kept`) while sends finish, so the socket stays open for them and no request
    /// ever names a number the process may have reused.
    fd: Cell<RawFd>,
    kept: RefCell<Option<OwnedFd>>,
    /// The connection's error (a reset), as the receive or a send learned it. The kernel
    /// reports it once, to whichever call comes first, and `EPIPE` after (writes) or end of
    /// stream (reads); mini keeps that order, as epoll's syscalls would see it.
    failed: Cell<Option<i32>>,
    reported: Cell<bool>,
    recv: RefCell<Recv>,
    send: RefCell<Send>,
}

#[derive(Default)]
struct Recv {
    /// Filled buffers, oldest first; `offset` bytes of the first are read.
    queue: VecDeque<Filled>,
    offset: usize,
    /// Unread bytes in `queue`.
    queued: usize,
    /// A receive is in flight.
    armed: bool,
    /// Its cancel was sent (read-ahead full, or the stream dropped).
    cancelling: bool,
    /// A one-shot receive into `own` is in flight (the ring ran dry).
    own_in_flight: bool,
    /// Its buffer (the kernel writes into it until the completion).
    own: Vec<u8>,
    eof: bool,
    /// The receive failed (a reset): reported by `failed`; the stream reads as ended after.
    error: bool,
    /// The stream was dropped: buffers that still arrive go straight back.
    closed: bool,
}

impl Recv {
    /// Copies queued bytes into `buf`, giving emptied ring buffers back; returns how many.
    #[inline]
    fn copy_out(&mut self, uring: &Uring, buf: &mut [u8]) -> usize {
        let mut copied = 0;
        while copied < buf.len() {
            let Some(front) = self.queue.front() else { break };
            let n = {
                let buffers = uring.buffers.borrow();
                let bytes = &front.bytes(&buffers)[self.offset..];
                let n = bytes.len().min(buf.len() - copied);
                buf[copied..][..n].copy_from_slice(&bytes[..n]);
                n
            };
            copied += n;
            self.advance(uring, n);
        }
        copied
    }

    /// `n` bytes of the front buffer were read (at most what it holds).
    #[inline]
    fn advance(&mut self, uring: &Uring, n: usize) {
        let Some(len) = self.queue.front().map(Filled::len) else { return };
        let n = n.min(len - self.offset);
        self.offset += n;
        self.queued -= n;
        if self.offset == len {
            self.offset = 0;
            if let Some(filled) = self.queue.pop_front() {
                filled.release(uring);
            }
        }
    }

    /// Whether the receive should be armed again: stopped (read-ahead, or by the kernel) and
    /// read down to half the limit, the stream still open.
    #[inline]
    fn wants_rearm(&self) -> bool {
        !self.armed
            && !self.own_in_flight
            && self.queued < READ_AHEAD / 2
            && !self.eof
            && !self.error
            && !self.closed
    }
}

/// A buffer of received bytes: one of the ring's, or one of the stream's own.
enum Filled {
    Ring { bid: u16, len: u32 },
    Own(Vec<u8>),
}

impl Filled {
    fn len(&self) -> usize {
        match self {
            Filled::Ring { len, .. } => *len as usize,
            Filled::Own(bytes) => bytes.len(),
        }
    }

    fn bytes<'a>(&'a self, buffers: &'a ring::BufRing) -> &'a [u8] {
        match self {
            Filled::Ring { bid, len } => buffers.get(*bid, *len as usize),
            Filled::Own(bytes) => bytes,
        }
    }

    /// Done with: a ring buffer goes back to the kernel.
    fn release(self, uring: &Uring) {
        if let Filled::Ring { bid, .. } = self {
            uring.give_back(bid);
        }
    }
}

/// The size of a stream's own receive buffer, used when the ring runs dry.
const OWN_BUFFER: usize = 16 * 1024;

#[derive(Default)]
struct Send {
    /// The bytes of the send in flight (owned: the kernel reads them until it completes), and
    /// how many of them were sent by earlier completions of a short send.
    in_flight: Vec<u8>,
    sent: usize,
    busy: bool,
    /// Bytes taken by `poll_write` while a send was in flight: the next send.
    pending: Vec<u8>,
    /// `shutdown(Write)` was asked for while bytes were queued: done once they are sent.
    shutdown_after: bool,
    /// The write side is shut: further writes fail with `EPIPE`, as the kernel's would.
    shut: bool,
}

impl Send {
    /// Bytes taken by `poll_write` and not sent yet.
    fn queued(&self) -> usize {
        self.in_flight.len() - self.sent + self.pending.len()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recv = self.recv.borrow();
        f.debug_struct("Shared").field("fd", &self.fd.get()).field("queued", &recv.queued).finish()
    }
}

impl Shared {
    /// Takes over `fd`, a connected TCP socket already in non-blocking mode (as on epoll:
    /// io_uring waits for a socket's readiness itself, through an internal poll; `new_tcp`
    /// sets the mode), and starts receiving.
    pub(crate) fn new(uring: &Uring, io: Rc<ScheduledIo>, fd: BorrowedFd<'_>) -> Rc<Shared> {
        let shared = Rc::new(Shared {
            io,
            fd: Cell::new(fd.as_raw_fd()),
            kept: RefCell::new(None),
            failed: Cell::new(None),
            reported: Cell::new(false),
            recv: RefCell::default(),
            send: RefCell::default(),
        });
        shared.arm_recv(uring);
        shared
    }

    fn arm_recv(self: &Rc<Self>, uring: &Uring) {
        let mut recv = self.recv.borrow_mut();
        if recv.armed || recv.own_in_flight || recv.closed || recv.eof || recv.error {
            return;
        }
        recv.armed = true;
        recv.cancelling = false;
        drop(recv);
        let fd = self.fd.get();
        // SAFETY: a multishot receive names no memory of ours but the ring's buffers, which
        // the driver owns for the ring's life; the request holds `self`.
        unsafe {
            uring.push_holding(self.clone(), Tag::Recv, |data| ring::recv_multishot(fd, GROUP, data), fd)
        };
    }

    /// A one-shot receive into the stream's own buffer (the ring ran dry).
    fn recv_own(self: &Rc<Self>, uring: &Uring) {
        let mut recv = self.recv.borrow_mut();
        if recv.own_in_flight || recv.closed {
            return;
        }
        recv.own_in_flight = true;
        recv.own = vec![0; OWN_BUFFER];
        let (ptr, len) = (recv.own.as_mut_ptr(), OWN_BUFFER as u32);
        drop(recv);
        let fd = self.fd.get();
        // SAFETY: the kernel writes into `own`'s heap buffer, which nothing touches or moves
        // while `own_in_flight` (only `on_recv_own` takes it, after the completion), and the
        // request holds `self`, which owns it.
        unsafe { uring.push_holding(self.clone(), Tag::RecvOwn, |data| ring::recv(fd, ptr, len, data), fd) };
    }

    /// The completion of a receive into the stream's own buffer: queue the bytes, then go
    /// back to the ring.
    fn on_recv_own(self: &Rc<Self>, uring: &Uring, c: &Completion) {
        let mut recv = self.recv.borrow_mut();
        recv.own_in_flight = false;
        let mut own = std::mem::take(&mut recv.own);
        if recv.closed {
            return;
        }
        match c.result {
            n if n > 0 => {
                own.truncate(n as usize);
                recv.queued += own.len();
                recv.queue.push_back(Filled::Own(own));
            }
            0 => recv.eof = true,
            e if -e == libc::ECANCELED => {}
            e => {
                recv.error = true;
                if self.failed.get().is_none() {
                    self.failed.set(Some(-e));
                }
            }
        }
        let go_on = !recv.eof && !recv.error && recv.queued < READ_AHEAD;
        drop(recv);
        if go_on {
            self.arm_recv(uring);
        }
        self.update_read_readiness();
    }

    /// Mirrors the receive queue into the readiness bits, waking whoever that makes ready.
    #[inline]
    fn update_read_readiness(&self) {
        let recv = self.recv.borrow();
        let (readable, closed) = (recv.queued > 0 || recv.eof || recv.error, recv.eof || recv.error);
        drop(recv);
        self.io.set_read_state(readable, closed);
    }

    /// Mirrors the send queue into the readiness bits: writable while it has room, or once
    /// writing can only fail.
    #[inline]
    fn update_write_readiness(&self) {
        let send = self.send.borrow();
        let writable = self.failed.get().is_some() || send.shut || send.queued() < SEND_QUEUE;
        drop(send);
        self.io.set_write_state(writable);
    }

    // ---------------------------------------------------------------------------------------
    // Reading
    // ---------------------------------------------------------------------------------------

    /// Copies queued bytes into `buf`; `Pending` (with the task's waker stored) when nothing
    /// is queued and the stream is still open.
    pub(crate) fn poll_read(
        self: &Rc<Self>,
        uring: &Uring,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        // The usual case, in one borrow: bytes are queued.
        let mut recv = self.recv.borrow_mut();
        if recv.queued == 0 {
            drop(recv);
            return match self.poll_fill(uring, cx) {
                Poll::Ready(Ok(true)) => self.poll_read(uring, cx, buf),
                Poll::Ready(Ok(false)) => Poll::Ready(Ok(0)),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        let n = recv.copy_out(uring, buf);
        let rearm = recv.wants_rearm();
        let empty = recv.queued == 0 && !recv.eof && !recv.error;
        drop(recv);
        if rearm {
            self.arm_recv(uring);
        }
        if empty {
            // Nobody waits to read while bytes are queued: clearing wakes no one.
            self.io.clear(Direction::Read);
        }
        Poll::Ready(Ok(n))
    }

    /// Ready when bytes are queued (`true`), at end of stream (`false`), or on an error.
    pub(crate) fn poll_fill(self: &Rc<Self>, uring: &Uring, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let recv = self.recv.borrow();
        if recv.queued > 0 {
            return Poll::Ready(Ok(true));
        }
        if recv.error {
            if let Some(errno) = self.failed.get().filter(|_| !self.reported.replace(true)) {
                return Poll::Ready(Err(io::Error::from_raw_os_error(errno)));
            }
            return Poll::Ready(Ok(false)); // reported once: from then on, the end
        }
        if recv.eof {
            return Poll::Ready(Ok(false));
        }
        let armed = recv.armed || recv.own_in_flight;
        drop(recv);
        if !armed {
            self.arm_recv(uring);
        }
        // Nothing queued: the read direction is not ready, so this stores the waker.
        self.io.clear(Direction::Read);
        let parked = self.io.poll_ready(cx, Direction::Read);
        debug_assert!(parked.is_pending());
        Poll::Pending
    }

    /// The unread bytes of the oldest filled buffer (empty when none is queued), lent out
    /// until [`consume`](Shared::consume) gives the buffer back.
    pub(crate) fn chunk_slice<'a>(&self, uring: &'a Uring) -> &'a [u8] {
        let recv = self.recv.borrow();
        let Some(front) = recv.queue.front() else { return &[] };
        let buffers = uring.buffers.borrow();
        let bytes = &front.bytes(&buffers)[recv.offset..];
        // SAFETY: the bytes lie in the ring's buffer memory (a boxed slice never reallocated,
        // freed only with the `Uring`, borrowed for 'a), or in the front entry's own `Vec`,
        // which stays in the queue, unchanged, until `consume` takes it out. A ring buffer is
        // out of the kernel's hands until `consume` gives it back, so nothing writes to either
        // meanwhile; callers lend the slice under a `&mut` borrow that `consume` also needs.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) }
    }

    /// Unread bytes queued.
    pub(crate) fn unread(&self) -> usize {
        self.recv.borrow().queued
    }

    /// Whether a receive (into the ring or the stream's own buffer) is in flight.
    #[cfg(test)]
    pub(crate) fn receiving(&self) -> bool {
        let recv = self.recv.borrow();
        recv.armed || recv.own_in_flight
    }

    /// `poll_read` without waiting: `WouldBlock` when nothing is queued. (Never parks: a
    /// waker stored here would replace that of a task waiting in `poll_read`.)
    pub(crate) fn try_read(self: &Rc<Self>, uring: &Uring, buf: &mut [u8]) -> io::Result<usize> {
        let idle = {
            let recv = self.recv.borrow();
            recv.queued == 0 && !recv.eof && !recv.error
        };
        if idle {
            self.arm_recv(uring); // a no-op if it is armed
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let waker = noop_waker();
        match self.poll_read(uring, &mut Context::from_waker(&waker), buf) {
            Poll::Ready(res) => res,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// `poll_write` without waiting: `WouldBlock` when the send queue is full. (Never
    /// parks, as `try_read`.)
    pub(crate) fn try_write(self: &Rc<Self>, uring: &Uring, buf: &[u8]) -> io::Result<usize> {
        let full = {
            let send = self.send.borrow();
            send.queued() >= SEND_QUEUE
        };
        if full && self.failed.get().is_none() && !self.send.borrow().shut {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let waker = noop_waker();
        match self.poll_write(uring, &mut Context::from_waker(&waker), buf) {
            Poll::Ready(res) => res,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Copies queued bytes without consuming them; waits as `poll_read`.
    pub(crate) fn poll_peek(
        self: &Rc<Self>,
        uring: &Uring,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.poll_fill(uring, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(false)) => Poll::Ready(Ok(0)),
            Poll::Ready(Ok(true)) => {
                let recv = self.recv.borrow();
                let buffers = uring.buffers.borrow();
                let (mut copied, mut offset) = (0, recv.offset);
                for filled in &recv.queue {
                    let bytes = &filled.bytes(&buffers)[offset..];
                    let n = bytes.len().min(buf.len() - copied);
                    buf[copied..][..n].copy_from_slice(&bytes[..n]);
                    copied += n;
                    offset = 0;
                    if copied == buf.len() {
                        break;
                    }
                }
                Poll::Ready(Ok(copied))
            }
        }
    }

    /// `n` bytes of the oldest buffer were read: an emptied buffer goes back to the ring,
    /// and a receive stopped by the read-ahead limit starts again once half of it is read.
    pub(crate) fn consume(self: &Rc<Self>, uring: &Uring, n: usize) {
        let mut recv = self.recv.borrow_mut();
        recv.advance(uring, n);
        let rearm = recv.wants_rearm();
        drop(recv);
        if rearm {
            self.arm_recv(uring);
        }
        self.update_read_readiness();
    }

    /// A receive completion.
    fn on_recv(self: &Rc<Self>, uring: &Uring, c: &Completion, more: bool) {
        let mut recv = self.recv.borrow_mut();
        if !more {
            recv.armed = false;
        }
        if c.result > 0 {
            let bid = ring::cqe::buffer(c.flags).expect("a receive into the ring names its buffer");
            #[cfg(test)]
            uring.lent.set(uring.lent.get() + 1);
            if recv.closed {
                uring.give_back(bid);
                drop(recv);
                if more {
                    // Posted before `close`'s cancel (then this finds nothing), or still
                    // armed because that synchronous cancel gave up after a second.
                    uring.cancel_now(c.user_data, self.fd.get());
                }
                return;
            }
            recv.queue.push_back(Filled::Ring { bid, len: c.result as u32 });
            recv.queued += c.result as usize;
            if recv.queued >= READ_AHEAD && recv.armed && !recv.cancelling {
                recv.cancelling = true;
                drop(recv);
                uring.cancel_now(Tag::Recv.data(Rc::as_ptr(self)), self.fd.get());
            } else if !recv.armed && recv.queued < READ_AHEAD && !recv.cancelling {
                drop(recv);
                self.arm_recv(uring); // ended by the kernel (a full completion queue): go on
            } else {
                drop(recv);
            }
        } else if c.result == 0 {
            recv.eof = true;
            drop(recv);
        } else {
            match -c.result {
                // The ring ran dry: receive into a buffer of our own (see the top).
                libc::ENOBUFS if !recv.closed => {
                    uring.starvations.set(uring.starvations.get() + 1);
                    let go_on = recv.queued < READ_AHEAD;
                    drop(recv);
                    if go_on {
                        self.recv_own(uring);
                    }
                }
                // Cancelled (read-ahead full, or dropped): reading re-arms it.
                libc::ECANCELED | libc::ENOBUFS => {
                    recv.cancelling = false;
                    let rearm = !recv.closed && recv.queued < READ_AHEAD / 2;
                    drop(recv);
                    if rearm {
                        self.arm_recv(uring); // read down meanwhile
                    }
                }
                errno => {
                    recv.error = true;
                    drop(recv);
                    if self.failed.get().is_none() {
                        self.failed.set(Some(errno));
                    }
                }
            }
        }
        if !self.recv.borrow().closed {
            self.update_read_readiness();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Writing
    // ---------------------------------------------------------------------------------------

    /// Takes up to the send queue's free room from `buf`, and starts a send if none is in
    /// flight. `Pending` while the queue is full.
    pub(crate) fn poll_write(
        self: &Rc<Self>,
        uring: &Uring,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.write_error() {
            return Poll::Ready(Err(e));
        }
        let mut send = self.send.borrow_mut();
        let queued = send.queued();
        if queued >= SEND_QUEUE {
            drop(send);
            return self.park_writer(cx);
        }
        let n = buf.len().min(SEND_QUEUE - queued);
        send.pending.extend_from_slice(&buf[..n]);
        let start = !send.busy;
        drop(send);
        if start {
            self.start_send(uring);
        }
        Poll::Ready(Ok(n))
    }

    /// Ready once every byte taken by `poll_write` has been sent (or a send failed).
    pub(crate) fn poll_flush(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.write_error() {
            return Poll::Ready(Err(e));
        }
        let send = self.send.borrow();
        if !send.busy && send.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        drop(send);
        self.park_writer(cx).map(|r| r.map(drop))
    }

    /// Why a write cannot go on: the write side was shut (`EPIPE`), or the connection failed
    /// (its error the first time it is reported, on either side; `EPIPE` after).
    fn write_error(&self) -> Option<io::Error> {
        let errno = match self.failed.get() {
            Some(errno) if !self.reported.replace(true) => errno,
            Some(_) => libc::EPIPE,
            None if self.send.borrow().shut => libc::EPIPE,
            None => return None,
        };
        Some(io::Error::from_raw_os_error(errno))
    }

    /// Parks the task until the next send completion.
    fn park_writer(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.io.clear(Direction::Write);
        match self.io.poll_ready(cx, Direction::Write) {
            Poll::Ready(()) => unreachable!("the write readiness was just cleared"),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Sends the pending bytes (one send in flight at a time keeps them in order).
    fn start_send(self: &Rc<Self>, uring: &Uring) {
        let mut send = self.send.borrow_mut();
        if send.busy || send.pending.is_empty() {
            return;
        }
        let send = &mut *send;
        std::mem::swap(&mut send.in_flight, &mut send.pending);
        send.pending.clear();
        send.sent = 0;
        send.busy = true;
        self.submit_send(uring, send);
    }

    /// Submits the unsent rest of `in_flight`.
    fn submit_send(self: &Rc<Self>, uring: &Uring, send: &Send) {
        let rest = &send.in_flight[send.sent..];
        let (ptr, len) = (rest.as_ptr(), rest.len() as u32);
        let fd = self.fd.get();
        // SAFETY: the bytes lie in `in_flight`'s heap buffer, which is neither changed nor
        // moved while `busy` (only `on_send` touches it, after this request completes), and
        // the request holds `self`, which owns it.
        unsafe { uring.push_holding(self.clone(), Tag::Send, |data| ring::send(fd, ptr, len, data), fd) };
    }

    /// A send completion.
    fn on_send(self: &Rc<Self>, uring: &Uring, c: &Completion) {
        let mut guard = self.send.borrow_mut();
        let send = &mut *guard;
        let mut more = false;
        if c.result < 0 {
            // The first error the connection has is its error (the receive may have taken
            // the reset, leaving this send `EPIPE`).
            if self.failed.get().is_none() {
                self.failed.set(Some(-c.result));
            }
            send.busy = false;
            send.pending = Vec::new(); // unsendable now
        } else {
            send.sent += c.result as usize;
            if send.sent < send.in_flight.len() {
                self.submit_send(uring, send); // a short send: the rest, in order
                return;
            }
            send.busy = false;
            if !send.pending.is_empty() {
                more = true;
            } else if send.shutdown_after {
                send.shutdown_after = false;
                let _ = sys::shutdown_write(self.fd.get());
            }
        }
        drop(guard);
        if more {
            self.start_send(uring);
        }
        // Writers and flushers parked with the write bit cleared: setting it wakes them.
        self.update_write_readiness();
    }

    /// `shutdown(Write)`, after the queued bytes: the peer must read them before the end.
    pub(crate) fn shutdown_write(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut send = self.send.borrow_mut();
        send.shut = true;
        if send.busy || !send.pending.is_empty() {
            send.shutdown_after = true;
            return Ok(());
        }
        drop(send);
        sys::shutdown_write(fd.as_raw_fd())
    }

    /// The stream is dropped (its fd is about to be closed): stop receiving, give the queued
    /// buffers back, and keep a duplicate of the fd if bytes are still to be sent.
    pub(crate) fn close(self: &Rc<Self>, uring: &Uring, fd: BorrowedFd<'_>) {
        let mut recv = self.recv.borrow_mut();
        recv.closed = true;
        for filled in recv.queue.drain(..) {
            filled.release(uring);
        }
        recv.queued = 0;
        let armed = recv.armed;
        let own = recv.own_in_flight;
        drop(recv);
        let sending = {
            let send = self.send.borrow();
            send.busy || !send.pending.is_empty()
        };
        if sending {
            if let Ok(dup) = fd.try_clone_to_owned() {
                self.fd.set(dup.as_raw_fd());
                *self.kept.borrow_mut() = Some(dup);
            }
        }
        // Each also submits everything queued, so no request names the fd after it closes.
        if own {
            uring.cancel_and_wait(Tag::RecvOwn.data(Rc::as_ptr(self)), fd.as_raw_fd());
        }
        if armed {
            uring.cancel_and_wait(Tag::Recv.data(Rc::as_ptr(self)), fd.as_raw_fd());
        } else {
            uring.flush();
        }
    }
}

/// A waker that does nothing, for the `try_` methods (which never wait).
fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}

/// Dispatches a stream's completion (`Tag::Recv`, `Tag::RecvOwn`, `Tag::Send`; `Tag::Accept`
/// for listeners) to the state its request holds.
pub(super) fn complete(uring: &Uring, tag: Tag, c: Completion, more: bool) {
    // SAFETY: in each arm, the tag says which `Rc` the request holds (`push_holding` in
    // `arm_recv`, `submit_send`, `recv_own`, `Acceptor::arm`); a multishot request's last
    // completion is the one without `more`, a one-shot request's is its only one.
    unsafe {
        match tag {
            Tag::Recv => uring.with_held::<Shared>(c.user_data, !more, |s| s.on_recv(uring, &c, more)),
            Tag::Send => uring.with_held::<Shared>(c.user_data, true, |s| s.on_send(uring, &c)),
            Tag::RecvOwn => uring.with_held::<Shared>(c.user_data, true, |s| s.on_recv_own(uring, &c)),
            Tag::Accept => uring.with_held::<Acceptor>(c.user_data, !more, |a| a.on_accept(uring, &c, more)),
            _ => {}
        }
    }
}

/// At the driver's shutdown: only give the references back.
///
/// # Safety
///
/// As `complete`: the completion's user_data is a stream request's.
pub(super) unsafe fn complete_at_shutdown(uring: &Uring, c: Completion, more: bool) {
    match super::Tag::of(c.user_data) {
        // SAFETY: the caller's promise.
        Tag::Recv if !more => drop(unsafe { uring.release::<Shared>(c.user_data) }),
        // SAFETY: the caller's promise.
        Tag::Send | Tag::RecvOwn => drop(unsafe { uring.release::<Shared>(c.user_data) }),
        Tag::Accept => {
            if c.result >= 0 {
                drop(ring::owned_fd(c.result)); // accepted during shutdown: closed
            }
            if !more {
                // SAFETY: the caller's promise.
                drop(unsafe { uring.release::<Acceptor>(c.user_data) });
            }
        }
        _ => {}
    }
}

// -------------------------------------------------------------------------------------------
// Listeners
// -------------------------------------------------------------------------------------------

/// Connections a listener may hold accepted and not taken before its accept is stopped:
/// the rest wait in the kernel's backlog, as on epoll when nobody calls `accept`.
pub(crate) const ACCEPT_AHEAD: usize = 64;

/// A TCP listener's state on the completion path: one multishot accept in flight, and the
/// connections it produced, oldest first.
pub(crate) struct Acceptor {
    io: Rc<ScheduledIo>,
    fd: RawFd,
    state: RefCell<Accepts>,
}

#[derive(Default)]
struct Accepts {
    /// Accepted fds, or a listener-level error (`EMFILE`, ...) to report in its turn.
    queue: VecDeque<Result<OwnedFd, i32>>,
    armed: bool,
    cancelling: bool,
    closed: bool,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("fd", &self.fd)
            .field("queued", &self.state.borrow().queue.len())
            .finish()
    }
}

impl Acceptor {
    /// Takes over a listening socket. Accepting starts with the first `poll_accept`: until
    /// someone accepts, connections wait in the kernel's backlog, as on epoll.
    pub(crate) fn new(io: Rc<ScheduledIo>, fd: BorrowedFd<'_>) -> Rc<Acceptor> {
        Rc::new(Acceptor { io, fd: fd.as_raw_fd(), state: RefCell::default() })
    }

    fn arm(self: &Rc<Self>, uring: &Uring) {
        let mut state = self.state.borrow_mut();
        if state.armed || state.closed || state.queue.len() >= ACCEPT_AHEAD {
            return;
        }
        state.armed = true;
        state.cancelling = false;
        drop(state);
        let fd = self.fd;
        // SAFETY: a multishot accept names no memory (no address buffer); it holds `self`.
        unsafe { uring.push_holding(self.clone(), Tag::Accept, |data| ring::accept_multishot(fd, data), fd) };
    }

    /// The next accepted connection, or a listener-level error; `Pending` when none is queued.
    pub(crate) fn poll_accept(
        self: &Rc<Self>,
        uring: &Uring,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<OwnedFd>> {
        let next = self.state.borrow_mut().queue.pop_front();
        let result = match next {
            Some(Ok(fd)) => Poll::Ready(Ok(fd)),
            Some(Err(errno)) => Poll::Ready(Err(io::Error::from_raw_os_error(errno))),
            None => {
                self.io.set_read_state(false, false);
                let parked = self.io.poll_ready(cx, Direction::Read);
                debug_assert!(parked.is_pending());
                Poll::Pending
            }
        };
        self.arm(uring); // room again, or the accept ended
        result
    }

    fn on_accept(self: &Rc<Self>, uring: &Uring, c: &Completion, more: bool) {
        let mut state = self.state.borrow_mut();
        if !more {
            state.armed = false;
        }
        if c.result >= 0 {
            let fd = ring::owned_fd(c.result);
            if state.closed {
                drop(state);
                if more {
                    // Posted before `close`'s cancel (then this finds nothing), or still
                    // armed because that synchronous cancel gave up after a second.
                    uring.cancel_now(c.user_data, self.fd);
                }
                return; // the listener is gone: the connection is closed (fd dropped)
            }
            state.queue.push_back(Ok(fd));
            if state.queue.len() >= ACCEPT_AHEAD && state.armed && !state.cancelling {
                state.cancelling = true;
                drop(state);
                uring.cancel_now(Tag::Accept.data(Rc::as_ptr(self)), self.fd);
            } else {
                drop(state);
            }
        } else if -c.result == libc::ECANCELED {
            // Stopped at `ACCEPT_AHEAD`. If the queue was taken meanwhile, an accept that
            // parked found the request still armed: arm it again now, or nobody would.
            state.cancelling = false;
            let rearm = !state.closed && state.queue.len() < ACCEPT_AHEAD;
            drop(state);
            if rearm {
                self.arm(uring);
            }
            return;
        } else if !state.closed
            && !sys::is_per_connection_accept_error(&io::Error::from_raw_os_error(-c.result))
        {
            state.queue.push_back(Err(-c.result)); // out of fds, out of memory: the caller's to see
            drop(state);
        } else {
            drop(state);
            if !more {
                self.arm(uring); // a connection that failed on its own: go on accepting
            }
            return;
        }
        let ready = !self.state.borrow().queue.is_empty();
        self.io.set_read_state(ready, false);
        if !more && !self.state.borrow().queue.iter().any(Result::is_err) {
            self.arm(uring);
        }
    }

    /// The listener is dropped: stop accepting; queued connections are closed.
    pub(crate) fn close(self: &Rc<Self>, uring: &Uring) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        state.queue.clear();
        let armed = state.armed;
        drop(state);
        if armed {
            uring.cancel_and_wait(Tag::Accept.data(Rc::as_ptr(self)), self.fd);
        }
    }
}
