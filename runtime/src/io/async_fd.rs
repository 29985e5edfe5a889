//! [`Async<T>`]: any non-blocking fd, registered with the reactor, usable from async code.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use crate::context;
use crate::coop;
use crate::reactor::{Direction, Inq, Reactor, ScheduledIo};
use crate::sys;

/// An fd registered with the current runtime's reactor.
///
/// This is the bridge between the kernel and async code. The fd is registered once, edge
/// triggered; `read_with` / `write_with` run a non-blocking operation and, when it returns
/// `WouldBlock`, clear the readiness and park the task until the reactor sees the next edge.
/// Dropping an `Async` deregisters the fd before closing it, so a later fd with the same
/// number can never receive this one's events.
///
/// An `Async` belongs to the runtime it was created in and to that runtime's thread (it is
/// neither `Send` nor `Sync`).
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
///
/// mini::block_on(async {
///     let (a, b) = UnixStream::pair()?;
///     let b = mini_runtime::io::Async::new(b)?;
///     std::io::Write::write_all(&mut &a, b"ping")?;
///     let mut buf = [0; 4];
///     let n = b.read_with(|s| { let mut s: &UnixStream = s; s.read(&mut buf) }).await?;
///     assert_eq!(&buf[..n], b"ping");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Async<T: AsFd> {
    /// `None` only after `into_inner` took it.
    io: Option<T>,
    source: Rc<ScheduledIo>,
    reactor: Rc<Reactor>,
    /// A TCP stream on the io_uring driver: its receive and send queues (`uring/stream.rs`).
    /// Its reads, writes and waits go through them; its fd is not registered at all.
    #[cfg(feature = "uring")]
    stream: Option<Rc<crate::uring::stream::Shared>>,
    /// A TCP listener on the io_uring driver: its multishot accept's queue.
    #[cfg(feature = "uring")]
    acceptor: Option<Rc<crate::uring::stream::Acceptor>>,
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode and registers it with the current runtime's reactor.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime: there is no reactor to register with.
    pub fn new(io: T) -> io::Result<Async<T>> {
        sys::set_nonblocking(io.as_fd())?;
        Async::new_nonblocking(io)
    }

    /// Registers `io`, which the caller has already put in non-blocking mode (for example a
    /// socket created with `SOCK_NONBLOCK`). Saves the `fcntl` calls of [`Async::new`].
    ///
    /// A blocking fd here is not unsafe, but it would block the whole runtime thread.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime: there is no reactor to register with.
    #[track_caller]
    pub fn new_nonblocking(io: T) -> io::Result<Async<T>> {
        let Some(reactor) = context::with_current(|core| core.reactor.clone()) else {
            panic!(
                "mini: an I/O object was created outside a mini runtime; create sockets inside \
                 `mini::block_on` or `#[mini::main]`"
            )
        };
        let source = reactor.register(io.as_fd())?;
        Ok(Async {
            io: Some(io),
            source,
            reactor,
            #[cfg(feature = "uring")]
            stream: None,
            #[cfg(feature = "uring")]
            acceptor: None,
        })
    }

    /// The reactor's io_uring backend and the stream's queues, for a TCP stream on the
    /// completion path.
    #[cfg(feature = "uring")]
    #[inline]
    fn completion(&self) -> Option<(&crate::uring::Uring, &Rc<crate::uring::stream::Shared>)> {
        let stream = self.stream.as_ref()?;
        Some((self.reactor.uring().expect("a completion stream's reactor runs io_uring"), stream))
    }

    /// A write on a stream socket: on the io_uring driver's TCP streams, the bytes join the
    /// send queue (see `uring/stream.rs`); elsewhere a `send` when the socket is writable.
    /// Never raises `SIGPIPE`.
    #[inline]
    pub fn poll_write_stream(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        #[cfg(feature = "uring")]
        if self.stream.is_some() {
            return self.poll_write_completion(cx, buf);
        }
        self.poll_io(cx, Direction::Write, |s| sys::send(s.as_fd(), buf))
    }

    /// `poll_write_stream` on the io_uring driver's TCP streams, out of line (as
    /// `poll_read_completion`).
    #[cfg(feature = "uring")]
    #[inline(never)]
    fn poll_write_completion(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let (uring, stream) = self.completion().expect("a completion stream");
        ready!(coop::poll_proceed(cx));
        stream.poll_write(uring, cx, buf)
    }

    /// Flushes a stream socket: ready at once on epoll (a `send` that returned put the bytes
    /// in the kernel), and once the send queue is empty on the io_uring driver's TCP streams.
    #[inline]
    pub fn poll_flush_stream(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        #[cfg(feature = "uring")]
        if let Some((_, stream)) = self.completion() {
            return stream.poll_flush(cx);
        }
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    /// `shutdown(2)` of a stream socket. On the io_uring driver's TCP streams a shutdown of
    /// the write side waits (without blocking) for the queued bytes to be sent first.
    pub fn shutdown_stream(&self, how: std::net::Shutdown) -> io::Result<()> {
        #[cfg(feature = "uring")]
        if let Some((_, stream)) = self.completion() {
            if how != std::net::Shutdown::Read {
                stream.shutdown_write(self.as_fd())?;
            }
            if how == std::net::Shutdown::Write {
                return Ok(());
            }
            return sys::shutdown(self.as_fd(), std::net::Shutdown::Read);
        }
        sys::shutdown(self.as_fd(), how)
    }

    /// Reads what is queued now, without waiting (`WouldBlock` if nothing is).
    pub fn try_read_stream(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "uring")]
        if let Some((uring, stream)) = self.completion() {
            return stream.try_read(uring, buf);
        }
        self.try_io(Direction::Read, |s| sys::recv(s.as_fd(), buf))
    }

    /// Writes what fits now, without waiting (`WouldBlock` if nothing does).
    pub fn try_write_stream(&self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "uring")]
        if let Some((uring, stream)) = self.completion() {
            return stream.try_write(uring, buf);
        }
        self.try_io(Direction::Write, |s| sys::send(s.as_fd(), buf))
    }

    /// The inner I/O object.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("io is present until into_inner")
    }

    /// Deregisters the fd and gives the I/O object back (still in non-blocking mode).
    ///
    /// On the io_uring driver's TCP streams, bytes already received and not read would be
    /// lost: that is an error (`InvalidData`), and the stream is closed.
    pub fn into_inner(mut self) -> io::Result<T> {
        #[cfg(feature = "uring")]
        if let Some((uring, stream)) = self.completion() {
            let unread = stream.unread();
            stream.close(uring, self.as_fd());
            self.stream = None;
            let io = self.io.take().expect("io is present until into_inner");
            if unread > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{unread} received bytes were not read yet; into_std would lose them"),
                ));
            }
            return Ok(io);
        }
        #[cfg(feature = "uring")]
        if let (Some(acceptor), Some(uring)) = (self.acceptor.take(), self.reactor.uring()) {
            acceptor.close(uring); // connections accepted and not taken yet are closed
            return Ok(self.io.take().expect("io is present until into_inner"));
        }
        let io = self.io.take().expect("io is present until into_inner");
        self.reactor.deregister(&self.source, io.as_fd());
        Ok(io)
    }

    /// Polls until the fd is ready in `dir`; on `Pending` the task is woken at the next edge.
    ///
    /// A poll method keeps one waker per direction (the last task to poll is the one woken,
    /// as with tokio's `poll_read_ready`); futures that may be dropped before they resolve
    /// should use [`readable`](Self::readable), [`writable`](Self::writable) or
    /// [`peer_closed`](Self::peer_closed), which leave no waker behind. A ready result
    /// spends one unit of the task's co-operative budget (see [`poll_io`](Self::poll_io)).
    pub fn poll_ready(&self, cx: &mut Context<'_>, dir: super::Direction) -> Poll<io::Result<()>> {
        coop::budgeted(cx, |cx| self.parked_unless_ready(self.source.poll_ready(cx, dir)))
    }

    /// Passes on a readiness poll's result, checking the runtime before the task parks.
    fn parked_unless_ready(&self, ready: Poll<()>) -> Poll<io::Result<()>> {
        if ready.is_pending() {
            self.check_runtime();
        }
        ready.map(Ok)
    }

    /// Before parking a task on this source: only this source's own runtime will ever turn
    /// its reactor, so waiting from anywhere else would hang forever. Say so instead. (Only
    /// on the way to `Pending`, and cheap: a TLS load and a compare.)
    #[inline]
    fn check_runtime(&self) {
        if !context::is_current_reactor(&self.reactor) {
            self.wrong_runtime();
        }
    }

    #[cold]
    #[inline(never)]
    fn wrong_runtime(&self) {
        match context::with_current(|core| Rc::ptr_eq(&core.reactor, &self.reactor)) {
            Some(true) => {}
            Some(false) => panic!(
                "mini: an I/O object was used in a runtime other than the one it was created in; \
                 sockets belong to their runtime and cannot move to another"
            ),
            None => panic!(
                "mini: an I/O object was awaited outside its mini runtime; nothing would ever \
                 wake it. Await it inside the `block_on` that created it"
            ),
        }
    }

    /// Waits until the fd is readable (or the read side is closed, or an error is pending).
    ///
    /// Readiness is a hint, not a promise: after it resolves, a read may still return
    /// `WouldBlock`. A fresh `Async` even starts out ready in both directions, so the first
    /// wait resolves at once. If you do the I/O yourself and it returns `WouldBlock`, call
    /// [`clear_ready`](Self::clear_ready) before waiting again, or the wait resolves at once
    /// and the loop spins. [`read_with`](Self::read_with) does all of this for you.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    ///
    /// mini::block_on(async {
    ///     let (a, b) = UnixStream::pair()?;
    ///     let b = mini::io::Async::new(b)?;
    ///     (&a).write_all(b"!")?;
    ///     b.readable().await?;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn readable(&self) -> Readable<'_, T> {
        Readable(Ready::new(self, Direction::Read))
    }

    /// Waits until the fd is writable (or an error is pending).
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    ///
    /// mini::block_on(async {
    ///     let (a, _b) = UnixStream::pair()?;
    ///     let a = mini::io::Async::new(a)?;
    ///     a.writable().await?; // an empty socket buffer: at once
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn writable(&self) -> Writable<'_, T> {
        Writable(Ready::new(self, Direction::Write))
    }

    /// Waits until the peer has closed its side or hung up (EPOLLRDHUP or EPOLLHUP, or a read
    /// that returned end of stream), without reading anything.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    ///
    /// mini::block_on(async {
    ///     let (a, b) = UnixStream::pair()?;
    ///     let b = mini::io::Async::new(b)?;
    ///     drop(a);
    ///     b.peer_closed().await?;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_closed(&self) -> PeerClosed<'_, T> {
        PeerClosed(Ready::new(self, Direction::Closed))
    }

    /// How many wakers and waiting futures this fd's waiter lists hold. A diagnostic for
    /// tests: a wait that was given up must not leave one behind.
    #[doc(hidden)]
    pub fn waiter_count(&self) -> usize {
        self.source.waiter_count()
    }

    /// Runs the non-blocking operation `op` when the fd is ready in `dir`, until it returns
    /// something other than `WouldBlock`.
    ///
    /// Every completed operation spends one unit of the task's cooperative budget; when the
    /// budget is spent this returns `Pending` and reschedules the task, so one busy socket
    /// cannot starve the other tasks. `Interrupted` (EINTR) is retried. Like
    /// [`poll_ready`](Self::poll_ready), it keeps one waker per direction.
    ///
    /// # Panics
    ///
    /// If `dir` is [`Direction::Closed`](super::Direction::Closed): that is a readiness to
    /// wait for, not an operation, and nothing would ever clear it (use
    /// [`peer_closed`](Self::peer_closed)).
    #[inline]
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: super::Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_op(cx, dir, None, &mut op)
    }

    /// `poll_io`, waiting in the poll slot of `dir` (`waiter == None`) or in a future's own
    /// entry.
    #[inline]
    fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        dir: super::Direction,
        mut waiter: Option<&mut Waiter<'_>>,
        op: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if dir == Direction::Closed {
            closed_is_not_an_operation();
        }
        // Readiness first: a task that parks spends no budget (and no TLS access on it).
        if self.ready_or_park(cx, dir, &mut waiter).is_pending() {
            self.check_runtime();
            return Poll::Pending;
        }
        ready!(coop::poll_proceed(cx));
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.source.clear(dir);
                    if self.ready_or_park(cx, dir, &mut waiter).is_pending() {
                        coop::refund(); // only completed operations count
                        self.check_runtime();
                        return Poll::Pending;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                res => return Poll::Ready(res),
            }
        }
    }

    /// Ready in `dir`, or the task's waker stored (in the poll slot, or in the future's own
    /// entry) and `Pending`.
    #[inline(always)]
    fn ready_or_park(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        waiter: &mut Option<&mut Waiter<'_>>,
    ) -> Poll<()> {
        match waiter.as_deref_mut() {
            Some(waiter) => waiter.poll_ready(cx),
            None => self.source.poll_ready(cx, dir),
        }
    }

    /// Runs `op` once, now, without waiting (tokio's `try_read`/`try_write` build on this).
    /// A `WouldBlock` from `op` clears the readiness in `dir`, so that the next wait waits for
    /// a new edge, and is returned as the result. (On the runtime's one thread no event can
    /// arrive between `op` and the clear: the reactor only runs between polls.)
    pub fn try_io<R>(&self, dir: super::Direction, op: impl FnOnce(&T) -> io::Result<R>) -> io::Result<R> {
        if dir == Direction::Closed {
            closed_is_not_an_operation();
        }
        let result = op(self.get_ref());
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.source.clear(dir);
        }
        result
    }

    /// Runs `op` until the fd is readable and it does not return `WouldBlock`. Dropping the
    /// future before it resolves leaves no waker behind.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut waiter = Waiter::new(&self.source, Direction::Read);
        poll_fn(|cx| self.poll_op(cx, Direction::Read, Some(&mut waiter), &mut op)).await
    }

    /// Runs `op` until the fd is writable and it does not return `WouldBlock`. Dropping the
    /// future before it resolves leaves no waker behind.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut waiter = Waiter::new(&self.source, Direction::Write);
        poll_fn(|cx| self.poll_op(cx, Direction::Write, Some(&mut waiter), &mut op)).await
    }

    /// Forgets the readiness in `dir` until the next edge. For an operation that learned it
    /// would block by other means, e.g. a `connect` in progress (a fresh source starts out
    /// optimistically ready in both directions).
    pub fn clear_ready(&self, dir: super::Direction) {
        self.source.clear(dir);
    }

    /// For other stream fds: after a read of `n` bytes into a buffer of `len`, record only
    /// what is always true: `n == 0` (with `len > 0`) means end of stream, which lets
    /// `peer_closed`-style waits resolve.
    pub fn note_read(&self, n: usize, len: usize) {
        if n == 0 && len > 0 {
            self.source.mark_read_closed();
        }
    }
}

/// TCP listeners: on the io_uring driver, a multishot accept.
impl Async<std::net::TcpListener> {
    /// Registers a listening TCP socket. On the epoll driver this is
    /// [`Async::new_nonblocking`]; on the io_uring driver one multishot accept produces the
    /// connections (see `uring/stream.rs`).
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub fn new_tcp_listener(listener: std::net::TcpListener) -> io::Result<Async<std::net::TcpListener>> {
        sys::set_nonblocking(listener.as_fd())?;
        #[cfg(feature = "uring")]
        {
            let reactor = context::with_current(|core| core.reactor.clone());
            if reactor.as_ref().is_some_and(|r| r.uring().is_some()) {
                let reactor = reactor.expect("checked above");
                let source = reactor.unregistered_source(listener.as_fd());
                let acceptor = crate::uring::stream::Acceptor::new(source.clone(), listener.as_fd());
                return Ok(Async {
                    io: Some(listener),
                    source,
                    reactor,
                    stream: None,
                    acceptor: Some(acceptor),
                });
            }
        }
        Async::new_nonblocking(listener)
    }

    /// The next connection from the io_uring driver's multishot accept (per-connection
    /// errors skipped); `None` on epoll, where the caller calls `accept` itself.
    pub fn poll_accept_completion(
        &self,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<std::os::fd::OwnedFd>>> {
        #[cfg(feature = "uring")]
        if let (Some(acceptor), Some(uring)) = (&self.acceptor, self.reactor.uring()) {
            if coop::poll_proceed(cx).is_pending() {
                return Some(Poll::Pending);
            }
            let accepted = acceptor.poll_accept(uring, cx);
            if accepted.is_pending() {
                coop::refund();
                self.check_runtime();
            }
            return Some(accepted);
        }
        let _ = cx;
        None
    }
}

/// The TCP-only read path: the shortcuts here are sound only for TCP stream sockets.
impl Async<std::net::TcpStream> {
    /// Registers a connected TCP stream. On the epoll driver this is [`Async::new`]; on the
    /// io_uring driver the stream is driven by completions instead: a multishot receive into
    /// the driver's buffer ring, and sends from an owned queue (see `uring/stream.rs`).
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub fn new_tcp(stream: std::net::TcpStream) -> io::Result<Async<std::net::TcpStream>> {
        #[cfg(feature = "uring")]
        {
            let reactor = context::with_current(|core| core.reactor.clone());
            if let Some(uring) = reactor.as_ref().and_then(|r| r.uring()) {
                sys::set_nonblocking(stream.as_fd())?; // as `Async::new` does
                let reactor = reactor.clone().expect("checked above");
                let source = reactor.unregistered_source(stream.as_fd());
                let shared = crate::uring::stream::Shared::new(uring, source.clone(), stream.as_fd());
                return Ok(Async { io: Some(stream), source, reactor, stream: Some(shared), acceptor: None });
            }
        }
        Async::new(stream)
    }

    /// After a non-blocking connect completed on a registered socket: on the io_uring
    /// driver, moves the stream to the completion path ([`new_tcp`](Self::new_tcp)); on
    /// epoll, nothing changes.
    pub fn connected(self) -> io::Result<Async<std::net::TcpStream>> {
        #[cfg(feature = "uring")]
        if self.stream.is_none() && self.reactor.uring().is_some() {
            return Async::new_tcp(self.into_inner()?);
        }
        Ok(self)
    }

    /// Copies up to `buf.len()` queued bytes without consuming them (`MSG_PEEK`); waits
    /// until data or end of stream is there.
    pub async fn peek_tcp(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "uring")]
        if let Some((uring, stream)) = self.completion() {
            return poll_fn(|cx| stream.poll_peek(uring, cx, buf)).await;
        }
        self.read_with(|s| s.peek(buf)).await
    }

    /// `poll_read_tcp` on the io_uring driver: out of line, so that the epoll read keeps its
    /// size (issue 13's instruction counts).
    #[cfg(feature = "uring")]
    #[inline(never)]
    fn poll_read_completion(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let (uring, stream) = self.completion().expect("a completion stream");
        // Budget first, as `poll_op` spends it for a completed read; a parked read gives it
        // back.
        ready!(coop::poll_proceed(cx));
        let read = stream.poll_read(uring, cx, buf);
        if read.is_pending() {
            coop::refund();
            self.check_runtime();
        }
        read
    }

    /// Whether this TCP stream is on the io_uring driver's completion path (its reads come
    /// from the driver's receive buffers).
    pub fn is_completion_stream(&self) -> bool {
        #[cfg(feature = "uring")]
        return self.stream.is_some();
        #[cfg(not(feature = "uring"))]
        false
    }

    /// `AsyncBufRead::poll_fill_buf` on the io_uring driver: the oldest filled receive buffer
    /// itself, lent out (no copy) until [`consume_tcp`](Self::consume_tcp). `None` on epoll,
    /// where the kernel has the bytes and a reader needs a buffer of its own.
    pub fn poll_fill_buf_tcp(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<&[u8]>>> {
        #[cfg(feature = "uring")]
        if let Some((uring, stream)) = self.completion() {
            return Some(match stream.poll_fill(uring, cx) {
                Poll::Ready(Ok(true)) => Poll::Ready(Ok(stream.chunk_slice(uring))),
                Poll::Ready(Ok(false)) => Poll::Ready(Ok(&[])),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.check_runtime();
                    Poll::Pending
                }
            });
        }
        let _ = cx;
        None
    }

    /// Bytes received and not read yet (io_uring driver; for tests).
    #[cfg(all(test, feature = "uring"))]
    pub(crate) fn unread(&self) -> usize {
        self.completion().map_or(0, |(_, stream)| stream.unread())
    }

    /// Whether a receive is in flight (io_uring driver; for tests).
    #[cfg(all(test, feature = "uring"))]
    pub(crate) fn receiving(&self) -> bool {
        self.completion().is_some_and(|(_, stream)| stream.receiving())
    }

    /// `AsyncBufRead::consume` on the io_uring driver: `n` bytes of the lent buffer were read
    /// (nothing on epoll).
    pub fn consume_tcp(&mut self, n: usize) {
        #[cfg(feature = "uring")]
        if let Some((uring, stream)) = self.completion() {
            stream.consume(uring, n);
        }
        let _ = n;
    }

    /// For TCP streams: after a read of `n` bytes into a buffer of `len`, record what the
    /// read proved. `n == 0` (with `len > 0`) means the peer closed its write side;
    /// `0 < n < len` means the receive buffer is empty, so the readiness is cleared now
    /// instead of after one more `read` that would return `WouldBlock`.
    ///
    /// Only for TCP, where any new byte raises a new epoll edge and a read stops short only
    /// when the buffer is empty or at an urgent (out-of-band) mark; the reactor disables the
    /// shortcut for good on a socket once it has reported urgent data (EPOLLPRI). Wrong for
    /// Unix streams (a read stops at a message carrying fds), ttys, or pipes read by
    /// several processes, which is why it exists only on `Async<TcpStream>`.
    #[inline]
    fn note_stream_read(&self, n: usize, len: usize) {
        if n == 0 && len > 0 {
            self.source.mark_read_closed();
        } else if n < len {
            self.source.clear_read_after_short_read();
        }
    }

    /// A read on a TCP stream socket (`recv`), with the readiness bookkeeping that TCP allows.
    ///
    /// Edge triggering obliges a reader to go on until `WouldBlock`, which costs a syscall
    /// that reads nothing. TCP can usually say sooner that the queue is empty:
    ///
    /// - a short read (`0 < n < buf.len()`) left nothing behind (see
    ///   `note_stream_read`);
    /// - after a read that filled `buf`, the socket gets `TCP_INQ` (Linux 4.18), and from then
    ///   on its reads use `recvmsg`, which also returns the count of bytes still queued: zero
    ///   clears the readiness at once. Streams that move full buffers (bulk transfers, 4 KiB
    ///   messages into 4 KiB buffers) save one `recv` per read this way.
    ///
    /// Defined on `Async<std::net::TcpStream>` alone: on any other fd these shortcuts could
    /// clear the readiness with data still queued and hang the reader. EINTR is retried, and
    /// the budget is spent as in [`poll_io`](Self::poll_io).
    ///
    /// On a Unix stream it does not compile:
    ///
    /// ```compile_fail
    /// # use std::future::poll_fn;
    /// # mini::block_on(async {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = mini::io::Async::new(a)?;
    /// let mut buf = [0; 64];
    /// poll_fn(|cx| a.poll_read_tcp(cx, &mut buf)).await?;
    /// # Ok::<(), std::io::Error>(())
    /// # })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn poll_read_tcp(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        #[cfg(feature = "uring")]
        if self.stream.is_some() {
            return self.poll_read_completion(cx, buf);
        }
        let inq = self.source.inq();
        let (n, queued) = ready!(self.poll_io(cx, super::Direction::Read, |s| {
            if inq == Inq::On {
                sys::recv_inq(s.as_fd(), buf)
            } else {
                sys::recv(s.as_fd(), buf).map(|n| (n, None))
            }
        }))?;
        let len = buf.len();
        match queued {
            Some(0) if n > 0 => self.source.clear_read_after_short_read(),
            Some(_) => self.note_read(n, len),
            None => {
                self.note_stream_read(n, len);
                if n == len && len > 0 && inq == Inq::NotTried {
                    self.source.set_inq(sys::set_tcp_inq(self.as_fd()).is_ok());
                }
            }
        }
        Poll::Ready(Ok(n))
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        // Deregister first, while the fd is still open; the fd closes when `io` drops.
        if let Some(io) = &self.io {
            #[cfg(feature = "uring")]
            if let Some((uring, stream)) = self.completion() {
                return stream.close(uring, io.as_fd());
            }
            #[cfg(feature = "uring")]
            if let (Some(acceptor), Some(uring)) = (&self.acceptor, self.reactor.uring()) {
                return acceptor.close(uring);
            }
            self.reactor.deregister(&self.source, io.as_fd());
        }
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async")
            .field("fd", &self.io.as_ref().map(|io| io.as_fd().as_raw_fd()))
            .field("io", &self.io)
            .finish()
    }
}

/// A future's wait on one direction of a source: its entry in the waiter list, created on
/// the first `Pending` and removed when the future is dropped (see `waiters.rs`).
#[derive(Debug)]
struct Waiter<'a> {
    source: &'a ScheduledIo,
    dir: Direction,
    key: Option<usize>,
}

impl<'a> Waiter<'a> {
    fn new(source: &'a ScheduledIo, dir: Direction) -> Waiter<'a> {
        Waiter { source, dir, key: None }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.source.poll_ready_entry(cx, self.dir, &mut self.key)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.source.remove_waiter(key);
        }
    }
}

/// What [`Readable`], [`Writable`] and [`PeerClosed`] share: wait in one direction, spending
/// a unit of the co-operative budget when ready (a loop over a ready fd must still yield).
#[derive(Debug)]
struct Ready<'a, T: AsFd> {
    io: &'a Async<T>,
    waiter: Waiter<'a>,
}

impl<'a, T: AsFd> Ready<'a, T> {
    fn new(io: &'a Async<T>, dir: Direction) -> Ready<'a, T> {
        Ready { io, waiter: Waiter::new(&io.source, dir) }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        coop::budgeted(cx, |cx| self.io.parked_unless_ready(self.waiter.poll_ready(cx)))
    }
}

/// Defines a readiness future over [`Ready`].
macro_rules! ready_future {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[must_use = "futures do nothing unless you .await or poll them"]
        #[derive(Debug)]
        pub struct $name<'a, T: AsFd>(Ready<'a, T>);

        impl<T: AsFd> Future for $name<'_, T> {
            type Output = io::Result<()>;

            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.0.poll(cx)
            }
        }
    };
}

ready_future!(
    /// Future of [`Async::readable`]. Dropping it before it resolves leaves no waker behind.
    Readable
);
ready_future!(
    /// Future of [`Async::writable`]. Dropping it before it resolves leaves no waker behind.
    Writable
);
ready_future!(
    /// Future of [`Async::peer_closed`]. Dropping it before it resolves leaves no waker
    /// behind.
    PeerClosed
);

#[cold]
#[inline(never)]
fn closed_is_not_an_operation() -> ! {
    panic!(
        "mini: poll_io/read_with/write_with called with Direction::Closed, which is a readiness to \
         wait for, not an operation (nothing would ever clear it, so the poll would spin): use \
         Async::peer_closed"
    )
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::pin::pin;

    use super::*;
    use crate::test_util::counting_waker;

    /// A connected pair: a plain blocking std socket for the peer, ours registered.
    fn pair() -> (TcpStream, Async<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        (peer, Async::new(ours).unwrap())
    }

    async fn read(ours: &Async<TcpStream>, buf: &mut [u8]) -> usize {
        poll_fn(|cx| ours.poll_read_tcp(cx, buf)).await.unwrap()
    }

    fn inq_supported() -> bool {
        let (_peer, ours) = pair();
        let supported = sys::set_tcp_inq(ours.as_fd()).is_ok();
        if !supported {
            eprintln!("TCP_INQ unsupported by this kernel: checking the fallback instead");
        }
        supported
    }

    /// A read that fills the buffer cannot tell by its length whether more is queued, so
    /// without TCP_INQ the readiness stays set and the next read is a `recv` that returns
    /// `WouldBlock`. With it (on after the first full read), the kernel's count of zero
    /// clears the readiness straight away.
    #[test]
    fn a_full_read_that_empties_the_queue_clears_readiness_with_tcp_inq() {
        crate::block_on(async {
            let supported = inq_supported();
            let (mut peer, ours) = pair();
            let mut buf = [0u8; 4096];
            for round in 0..2u8 {
                peer.write_all(&[round; 4096]).unwrap();
                ours.readable().await.unwrap();
                assert_eq!(read(&ours, &mut buf).await, 4096);
                assert!(buf.iter().all(|&b| b == round), "round {round}: wrong bytes");
            }
            let expected = if supported { Inq::On } else { Inq::Unsupported };
            assert_eq!(ours.source.inq(), expected, "TCP_INQ asked for after the first full read");
            // The second read used recvmsg and learned that nothing was left.
            assert_eq!(!ours.source.is_ready(Direction::Read), supported);
        });
    }

    /// The count keeps the readiness while bytes remain, and after the peer's FIN (which the
    /// kernel reports as one byte left), so neither the data nor the end of stream is lost.
    #[test]
    fn tcp_inq_keeps_readiness_for_queued_bytes_and_end_of_stream() {
        crate::block_on(async {
            let (mut peer, ours) = pair();
            let mut buf = [0u8; 4096];
            peer.write_all(&[1; 4096]).unwrap();
            assert_eq!(read(&ours, &mut buf).await, 4096); // turns TCP_INQ on
            peer.write_all(&[2; 8192]).unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read(&ours, &mut buf).await, 4096);
            assert!(ours.source.is_ready(Direction::Read), "4096 bytes still queued");
            assert_eq!(read(&ours, &mut buf).await, 4096);
            assert!(ours.source.is_ready(Direction::Read), "the FIN is still to be read");
            assert_eq!(read(&ours, &mut buf).await, 0, "end of stream");
        });
    }

    /// Polls `future` once with the task's context and drops it: a wait given up (a
    /// `select!` branch that lost, a `timeout` that fired).
    fn give_up<F: Future>(cx: &mut Context<'_>, future: F) {
        assert!(pin!(future).poll(cx).is_pending(), "the wait must be pending to be given up");
    }

    /// Each future that waited and was dropped must take its waker out of the list at once:
    /// 100,000 given-up waits on one idle socket leave nothing behind (before, every one of
    /// them stayed until the next event, and each new wait scanned them all).
    #[test]
    fn given_up_waits_leave_no_waiter_behind() {
        crate::block_on(async {
            let (_peer, ours) = pair();
            ours.clear_ready(Direction::Read); // a fresh source is optimistically readable
            poll_fn(|cx| {
                for round in 0..100_000 {
                    match round % 3 {
                        0 => give_up(cx, ours.readable()),
                        1 => give_up(cx, ours.peer_closed()),
                        _ => give_up(cx, ours.read_with(|s| sys::recv(s.as_fd(), &mut [0; 8]))),
                    }
                    assert_eq!(ours.waiter_count(), 0, "round {round} left its waiter behind");
                }
                Poll::Ready(())
            })
            .await;
        });
    }

    /// The poll methods (what `AsyncRead::poll_read` reaches) keep one waker per direction:
    /// polling again and again, from any number of dropped read futures, never grows it.
    #[test]
    fn the_poll_path_keeps_one_waker_per_direction() {
        crate::block_on(async {
            let (_peer, ours) = pair();
            let mut buf = [0u8; 8];
            poll_fn(|cx| {
                for _ in 0..100_000 {
                    assert!(ours.poll_read_tcp(cx, &mut buf).is_pending());
                    assert!(ours.poll_ready(cx, Direction::Closed).is_pending());
                }
                Poll::Ready(())
            })
            .await;
            assert_eq!(ours.waiter_count(), 2, "one slot for reads, one for closes");
        });
    }

    /// The poll slot holds the last poller's waker: a read polled by one task and then by
    /// another (a stream handed over) wakes the second, not the first.
    #[test]
    fn the_poll_slot_wakes_the_last_task_to_poll() {
        crate::block_on(async {
            let (mut peer, ours) = pair();
            let (first, first_wakes) = counting_waker();
            let (second, second_wakes) = counting_waker();
            let mut buf = [0u8; 8];
            for waker in [&first, &second] {
                assert!(ours.poll_read_tcp(&mut Context::from_waker(waker), &mut buf).is_pending());
            }
            peer.write_all(b"x").unwrap();
            ours.readable().await.unwrap(); // a reactor turn delivers the edge
            assert_eq!((first_wakes.count(), second_wakes.count()), (0, 1));
        });
    }

    /// A waiting future that is woken keeps its entry until it is dropped, and every future
    /// waiting in the direction is woken, whatever its place in the list.
    #[test]
    fn every_waiting_future_is_woken_and_leaves_on_drop() {
        crate::block_on(async {
            let (mut peer, ours) = pair();
            ours.clear_ready(Direction::Read);
            let (a, b, c) = (ours.readable(), ours.readable(), ours.peer_closed());
            let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
            poll_fn(|cx| {
                assert!(a.as_mut().poll(cx).is_pending() && b.as_mut().poll(cx).is_pending());
                assert!(c.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(ours.waiter_count(), 3);
            peer.write_all(b"x").unwrap();
            a.as_mut().await.unwrap();
            b.as_mut().await.unwrap();
            assert_eq!(ours.waiter_count(), 3, "woken futures keep their places until dropped");
            drop(peer);
            c.as_mut().await.unwrap();
        });
    }

    /// `Direction::Closed` is a readiness, not an operation: `poll_io` would run the op, get
    /// `WouldBlock`, clear nothing (close bits are never cleared by an operation), and loop
    /// forever inside one poll. It refuses instead.
    #[test]
    #[should_panic(expected = "Direction::Closed")]
    fn poll_io_refuses_the_closed_direction() {
        crate::block_on(async {
            let (peer, ours) = pair();
            drop(peer);
            ours.peer_closed().await.unwrap();
            let mut calls = 0;
            let _ = poll_fn(|cx| {
                ours.poll_io(cx, Direction::Closed, |_| {
                    calls += 1;
                    assert!(calls < 1000, "poll_io spun on a WouldBlock it cannot clear");
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                })
            })
            .await;
        });
    }

    /// async-io's connect pattern: register a socket, then connect it. Linux reports
    /// EPOLLHUP for a TCP socket that is not connected yet; that is no close, and once the
    /// socket connects the close bits must go, or `peer_closed` resolves on a healthy
    /// connection.
    #[test]
    fn a_socket_registered_before_it_connects_is_not_closed() {
        crate::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let ours = Async::new(TcpStream::from(sys::tcp_socket(&addr).unwrap())).unwrap();
            // More yields than the loop's polls between two reactor turns: a turn sees the
            // unconnected socket's EPOLLHUP.
            for _ in 0..100 {
                crate::yield_now().await;
            }
            assert!(ours.source.is_ready(Direction::Closed), "precondition: the HUP was recorded");
            if sys::connect(ours.as_fd(), &addr).unwrap() {
                ours.clear_ready(Direction::Write);
                ours.writable().await.unwrap();
            }
            let (peer, _) = listener.accept().unwrap();
            let mut closed = pin!(ours.peer_closed());
            poll_fn(|cx| {
                assert!(closed.as_mut().poll(cx).is_pending(), "a connected socket is not closed");
                Poll::Ready(())
            })
            .await;
            drop(peer);
            closed.await.unwrap(); // and a real close is still seen
        });
    }
}
