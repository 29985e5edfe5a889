//! [`FuturesIo`]: hyper's `rt::Read`/`rt::Write` for `futures-io` types, and back.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

/// The most one `poll_read` reads at a time: hyper's read buffer starts at 8 KiB and grows
/// while reads fill it; 64 KiB keeps large bodies at few syscalls without a large scratch.
const MAX_READ: usize = 64 * 1024;

thread_local! {
    /// The thread's read scratch (see [`FuturesIo`]'s `rt::Read`). Taken out of the cell for
    /// the length of one read and put back after, so a nested read (a `FuturesIo` over a
    /// hyper upgrade over a `FuturesIo`) finds it empty and uses a fresh one instead of
    /// sharing it; it never holds data between calls.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

pin_project! {
    /// Adapts I/O between `futures-io` and hyper 1.x, in either direction, as hyper-util's
    /// `TokioIo` does for tokio:
    ///
    /// - for `T: futures_io::AsyncRead + AsyncWrite` (mini's `TcpStream` and `UnixStream`,
    ///   futures-rustls streams, …), `FuturesIo<T>` is hyper's [`rt::Read`] +
    ///   [`rt::Write`], which hyper's `serve_connection` and `handshake` take;
    /// - for `T: hyper::rt::Read + Write` (such as `hyper::upgrade::Upgraded`), it is a
    ///   `futures_io::AsyncRead` + `AsyncWrite`, for the futures-io world (a WebSocket
    ///   library after an HTTP upgrade, `mini::io::copy`, …).
    ///
    /// Writes map one to one (`poll_shutdown` is `poll_close`). Reads into hyper's buffer go
    /// through a scratch buffer: futures-io reads into an initialised `&mut [u8]`, hyper
    /// offers an uninitialised cursor, and the only safe ways across are to zero the
    /// cursor's free space on every read (what smol-hyper does, with `unsafe` to mark it
    /// filled) or to read into a buffer that was zeroed once and copy what arrived. The copy
    /// costs the bytes read (about a hundred for a typical request); zeroing would cost
    /// hyper's whole free space (8 KiB or more) every time. One scratch of at most 64 KiB
    /// serves every connection of the thread, so an idle connection holds none.
    ///
    /// [`rt::Read`]: hyper::rt::Read
    /// [`rt::Write`]: hyper::rt::Write
    ///
    /// # Vectored writes
    ///
    /// futures-io has no `is_write_vectored`, so `FuturesIo` cannot ask the inner type
    /// whether its `poll_write_vectored` really gathers (mini's sockets use the default,
    /// which writes the first buffer only). It tells hyper "no" unless built with
    /// [`with_vectored_writes`](FuturesIo::with_vectored_writes): hyper then flattens each
    /// response into one buffer, one `send` per response. Calls to `poll_write_vectored`
    /// are forwarded either way.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mini_hyper::FuturesIo;
    ///
    /// # async fn demo() -> std::io::Result<()> {
    /// let listener = mini::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// let (stream, _) = listener.accept().await?;
    /// let io = FuturesIo::new(stream); // ready for hyper's serve_connection
    /// # let _ = io;
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Debug, Default)]
    pub struct FuturesIo<T> {
        #[pin]
        inner: T,
        vectored: bool,
    }
}

impl<T> FuturesIo<T> {
    /// Wraps `inner`; hyper is told that vectored writes are not worth it.
    pub fn new(inner: T) -> Self {
        FuturesIo { inner, vectored: false }
    }

    /// Wraps `inner` whose `poll_write_vectored` gathers several buffers into one write (a
    /// TLS stream, say): hyper then queues a response's buffers instead of copying them
    /// into one.
    pub fn with_vectored_writes(inner: T) -> Self {
        FuturesIo { inner, vectored: true }
    }

    /// The wrapped I/O object.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped I/O object, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the I/O object.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> From<T> for FuturesIo<T> {
    fn from(inner: T) -> Self {
        FuturesIo::new(inner)
    }
}

impl<T: futures_io::AsyncRead> hyper::rt::Read for FuturesIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(MAX_READ);
        if want == 0 {
            return Poll::Ready(Ok(())); // nothing asked: as a zero-length read would answer
        }
        let mut scratch = SCRATCH.take();
        if scratch.len() < want {
            scratch.resize(want, 0); // zeroes only the new part, once per thread
        }
        let read = self.project().inner.poll_read(cx, &mut scratch[..want]);
        if let Poll::Ready(Ok(n)) = read {
            // `min`: a broken reader claiming more than it was given is not hyper's problem.
            buf.put_slice(&scratch[..n.min(want)]);
        }
        SCRATCH.set(scratch);
        read.map_ok(|_| ())
    }
}

impl<T: futures_io::AsyncWrite> hyper::rt::Write for FuturesIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_close(cx)
    }
}

impl<T: hyper::rt::Read> futures_io::AsyncRead for FuturesIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // `buf` is initialised already, so hyper's buffer over it needs no unsafe.
        let mut read_buf = hyper::rt::ReadBuf::new(buf);
        ready!(self.project().inner.poll_read(cx, read_buf.unfilled()))?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }
}

impl<T: hyper::rt::Write> futures_io::AsyncWrite for FuturesIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
