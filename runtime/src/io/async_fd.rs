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
        Ok(Async { io: Some(io), source, reactor })
    }

    /// The inner I/O object.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("io is present until into_inner")
    }

    /// Deregisters the fd and gives the I/O object back (still in non-blocking mode).
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self.io.take().expect("io is present until into_inner");
        self.reactor.deregister(&self.source, io.as_fd());
        Ok(io)
    }

    /// Polls until the fd is ready in `dir`; on `Pending` the task is woken at the next edge.
    pub fn poll_ready(&self, cx: &mut Context<'_>, dir: super::Direction) -> Poll<io::Result<()>> {
        let ready = self.source.poll_ready(cx, dir);
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
        Readable { io: self }
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
        Writable { io: self }
    }

    /// Runs the non-blocking operation `op` when the fd is ready in `dir`, until it returns
    /// something other than `WouldBlock`.
    ///
    /// Every completed operation spends one unit of the task's cooperative budget; when the
    /// budget is spent this returns `Pending` and reschedules the task, so one busy socket
    /// cannot starve the other tasks. `Interrupted` (EINTR) is retried.
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: super::Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        loop {
            if self.source.poll_ready(cx, dir).is_pending() {
                coop::refund();
                self.check_runtime();
                return Poll::Pending;
            }
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.source.clear(dir),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                res => return Poll::Ready(res),
            }
        }
    }

    /// Runs `op` until the fd is readable and it does not return `WouldBlock`.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_io(cx, super::Direction::Read, &mut op)).await
    }

    /// Runs `op` until the fd is writable and it does not return `WouldBlock`.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_io(cx, super::Direction::Write, &mut op)).await
    }

    /// Forgets the readiness in `dir` until the next edge. For an operation that learned it
    /// would block by other means, e.g. a `connect` in progress (a fresh source starts out
    /// optimistically ready in both directions).
    pub fn clear_ready(&self, dir: super::Direction) {
        self.source.clear(dir);
    }

    /// For TCP streams: after a read of `n` bytes into a buffer of `len`, record what the
    /// read proved. `n == 0` (with `len > 0`) means the peer closed its write side;
    /// `0 < n < len` means the receive buffer is empty, so the readiness is cleared now
    /// instead of after one more `read` that would return `WouldBlock`.
    ///
    /// Only for TCP, where any new byte raises a new epoll edge and a read stops short only
    /// when the buffer is empty or at an urgent (out-of-band) mark; the reactor disables the
    /// shortcut for good on a socket once it has reported urgent data (EPOLLPRI). Not for
    /// Unix streams (a read stops at a message carrying fds), ttys, or pipes read by
    /// several processes: use [`note_read`](Self::note_read) there.
    pub fn note_stream_read(&self, n: usize, len: usize) {
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
    ///   [`note_stream_read`](Self::note_stream_read));
    /// - after a read that filled `buf`, the socket gets `TCP_INQ` (Linux 4.18), and from then
    ///   on its reads use `recvmsg`, which also returns the count of bytes still queued: zero
    ///   clears the readiness at once. Streams that move full buffers (bulk transfers, 4 KiB
    ///   messages into 4 KiB buffers) save one `recv` per read this way.
    ///
    /// Only for TCP sockets; EINTR is retried, and the budget is spent as in
    /// [`poll_io`](Self::poll_io).
    pub fn poll_read_tcp(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
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

    /// For other stream fds: after a read of `n` bytes into a buffer of `len`, record only
    /// what is always true: `n == 0` (with `len > 0`) means end of stream, which lets
    /// `peer_closed`-style waits resolve.
    pub fn note_read(&self, n: usize, len: usize) {
        if n == 0 && len > 0 {
            self.source.mark_read_closed();
        }
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

/// Future of [`Async::readable`].
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct Readable<'a, T: AsFd> {
    io: &'a Async<T>,
}

impl<T: AsFd> Future for Readable<'_, T> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(cx, Direction::Read)
    }
}

/// Future of [`Async::writable`].
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct Writable<'a, T: AsFd> {
    io: &'a Async<T>,
}

impl<T: AsFd> Future for Writable<'_, T> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(cx, Direction::Write)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};

    use super::*;

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
}
