//! What every connected stream socket shares, written once for TCP and Unix sockets alike:
//! the reads and writes over its [`Async`](mini_runtime::io::Async) registration, the
//! `futures-io` impls, and the borrowed and owned halves.
//!
//! Two macros rather than a generic type, so that each socket keeps plain public names
//! (`TcpStream`, `unix::ReadHalf<'a>`) with its own documentation, as in tokio and std.
//!
//! - [`stream_io!`] expects a struct with a field `io: Async<S>`, where `S` (a std socket)
//!   has an inherent `shutdown(&self, Shutdown)`.
//! - [`stream_halves!`] expects the methods that `stream_io!` defines, and is invoked in the
//!   module that should own the four half types.

/// Adds to a stream socket type its read and write futures, `shutdown`, the
/// `AsyncRead`/`AsyncWrite`/`AsFd` impls, and the crate-private `poll_*_priv` methods that
/// the halves share.
macro_rules! stream_io {
    // `read(this, cx, buf) => expr`: how this socket type reads, the one part that differs.
    // TCP reads go through `Async::poll_read_tcp` (defined for `Async<TcpStream>` alone),
    // where a short read (or the TCP_INQ count) proves the receive queue empty; Unix streams
    // cannot use that, since their reads also stop early at a message carrying fds.
    ($stream:ident, read($this:ident, $cx:ident, $buf:ident) => $read:expr) => {
        impl $stream {
            // Inlined into the trait methods: a call layer on the read and write paths cost
            // 17 instructions each (issue 13, callgrind).
            #[inline]
            pub(crate) fn poll_read_priv(
                &self,
                $cx: &mut std::task::Context<'_>,
                $buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = self;
                $read
            }
        }

        $crate::stream::stream_io!(@common $stream);
    };
    (@common $stream:ident) => {
        impl $stream {
            /// Shuts down the read side, the write side, or both (`shutdown(2)`). After
            /// `Shutdown::Write` the peer reads end-of-stream but can still send to us.
            #[inline]
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.io.shutdown_stream(how)
            }

            // The shared implementation of every write, used by the stream and its halves
            // (`poll_read_priv` is defined per socket type, above).

            #[inline]
            pub(crate) fn poll_write_priv(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_write_stream(cx, buf)
            }

            /// Ready once written bytes are out of mini's hands: at once on epoll, when the
            /// send queue is empty on the io_uring driver.
            #[inline]
            pub(crate) fn poll_flush_priv(
                &self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.io.poll_flush_stream(cx)
            }

            pub(crate) fn shutdown_write(&self) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(match self.shutdown(std::net::Shutdown::Write) {
                    // Already disconnected: there is nothing left to shut down.
                    Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
                    res => res,
                })
            }
        }

        $crate::stream::stream_io!(@read $stream, self => self);
        $crate::stream::stream_io!(@write $stream, self => self);
        $crate::stream::stream_io!(@read_methods $stream);
        $crate::stream::stream_io!(@write_methods $stream);

        impl $stream {
            /// Waits until the socket is readable (data, end of stream, or an error is
            /// pending), without reading. Dropping the wait leaves nothing registered.
            pub async fn readable(&self) -> std::io::Result<()> {
                self.io.readable().await
            }

            /// Waits until the socket is writable (send buffer space, or an error is
            /// pending). Dropping the wait leaves nothing registered.
            pub async fn writable(&self) -> std::io::Result<()> {
                self.io.writable().await
            }

            /// Reads what is there now, without waiting: `WouldBlock` if nothing is (then
            /// [`readable`](Self::readable) waits for more), `Ok(0)` at end of stream.
            #[inline]
            pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.try_read_priv(buf)
            }

            /// Writes what fits now, without waiting: `WouldBlock` if the send buffer is full
            /// (then [`writable`](Self::writable) waits for room). Never raises `SIGPIPE`.
            #[inline]
            pub fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
                self.io.try_write_stream(buf)
            }
        }

        impl std::os::fd::AsFd for $stream {
            #[inline]
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.io)
            }
        }

        impl std::os::fd::AsRawFd for $stream {
            #[inline]
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(self))
            }
        }
    };

    // Inherent read methods (the same futures as `mini::io::AsyncReadExt`'s). Inherent
    // methods win over trait methods, so `stream.read(..)` compiles even with both mini's and
    // futures-util's extension traits glob-imported (no E0034; see docs/ecosystem.md).
    (@read_methods $ty:ty) => {
        impl $ty {
            /// Reads some bytes into `buf`; `Ok(0)` means the peer closed its write side.
            pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> mini_runtime::io::Read<'a, Self> {
                mini_runtime::io::AsyncReadExt::read(self, buf)
            }

            /// Reads exactly `buf.len()` bytes, or fails with `UnexpectedEof`.
            pub fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> mini_runtime::io::ReadExact<'a, Self> {
                mini_runtime::io::AsyncReadExt::read_exact(self, buf)
            }

            /// Reads until the peer closes its write side, appending to `buf`; returns how
            /// many bytes were appended.
            pub fn read_to_end<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> mini_runtime::io::ReadToEnd<'a, Self> {
                mini_runtime::io::AsyncReadExt::read_to_end(self, buf)
            }
        }
    };

    // Inherent write methods, likewise.
    (@write_methods $ty:ty) => {
        impl $ty {
            /// Writes some bytes from `buf`, returning how many were written.
            pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> mini_runtime::io::Write<'a, Self> {
                mini_runtime::io::AsyncWriteExt::write(self, buf)
            }

            /// Writes all of `buf`, waiting for buffer space as needed.
            pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> mini_runtime::io::WriteAll<'a, Self> {
                mini_runtime::io::AsyncWriteExt::write_all(self, buf)
            }

            /// Completes at once: a socket has no user-space buffer to flush.
            pub fn flush(&mut self) -> mini_runtime::io::Flush<'_, Self> {
                mini_runtime::io::AsyncWriteExt::flush(self)
            }

            /// Shuts down the write side: the peer reads end-of-stream.
            pub fn close(&mut self) -> mini_runtime::io::Close<'_, Self> {
                mini_runtime::io::AsyncWriteExt::close(self)
            }
        }
    };

    // `AsyncRead` for a type whose `$inner` expression reaches the stream (the stream itself,
    // or a read half).
    (@read $ty:ty, $self:ident => $inner:expr) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                $self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $inner.poll_read_priv(cx, buf)
            }
        }
    };

    // `AsyncWrite` likewise: `poll_flush` waits for the io_uring driver's send queue (nothing
    // to do on epoll), `poll_close` flushes and shuts down the write side.
    (@write $ty:ty, $self:ident => $inner:expr) => {
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                $self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $inner.poll_write_priv(cx, buf)
            }

            fn poll_flush(
                $self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                $inner.poll_flush_priv(cx)
            }

            fn poll_close(
                $self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::ready!($inner.poll_flush_priv(cx))?;
                $inner.shutdown_write()
            }
        }
    };
}

/// Defines, in the invoking module, the halves of a stream socket type: `ReadHalf<'a>` and
/// `WriteHalf<'a>` (borrowed), `OwnedReadHalf` and `OwnedWriteHalf` (sharing the stream in an
/// `Rc`), with their `AsyncRead`/`AsyncWrite` impls, and the stream's `split` and
/// `into_split` methods.
///
/// Reads and writes on a stream take `&self` underneath (the reactor keeps a separate waker
/// slot per direction), so two halves can wait at the same time without any locking.
macro_rules! stream_halves {
    ($stream:ident) => {
        #[doc = concat!("The read half of a borrowed [`", stringify!($stream), "::split`].")]
        #[derive(Debug)]
        pub struct ReadHalf<'a>(&'a $stream);

        #[doc = concat!("The write half of a borrowed [`", stringify!($stream), "::split`].")]
        #[derive(Debug)]
        pub struct WriteHalf<'a>(&'a $stream);

        #[doc = concat!("The read half of [`", stringify!($stream), "::into_split`].")]
        #[derive(Debug)]
        pub struct OwnedReadHalf(std::rc::Rc<$stream>);

        #[doc = concat!("The write half of [`", stringify!($stream), "::into_split`].")]
        /// Dropping it shuts down the write side (unless it is given to `reunite`).
        #[derive(Debug)]
        pub struct OwnedWriteHalf(std::rc::Rc<$stream>, bool);

        /// The two halves given to `reunite` came from different streams: here they are back.
        #[derive(Debug)]
        pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

        impl std::fmt::Display for ReuniteError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tried to reunite halves that are not from the same socket")
            }
        }

        impl std::error::Error for ReuniteError {}

        impl OwnedReadHalf {
            #[doc = concat!("Puts the stream back together from the two halves of one [`", stringify!($stream), "::into_split`].")]
            /// Halves of two different streams are handed back in the error.
            #[inline]
            pub fn reunite(self, other: OwnedWriteHalf) -> Result<$stream, ReuniteError> {
                if !std::rc::Rc::ptr_eq(&self.0, &other.0) {
                    return Err(ReuniteError(self, other));
                }
                let mut other = other;
                other.1 = false; // reunited: dropping this half must not shut the stream down
                drop(other);
                Ok(std::rc::Rc::try_unwrap(self.0).expect("the two halves held the only references"))
            }
        }

        impl OwnedWriteHalf {
            /// The same as [`OwnedReadHalf::reunite`], from the other side.
            #[inline]
            pub fn reunite(self, other: OwnedReadHalf) -> Result<$stream, ReuniteError> {
                other.reunite(self)
            }
        }

        impl $stream {
            /// Borrows the stream as a read half and a write half, usable at the same time
            /// (for example by `copy`, or by two futures joined in one task).
            #[inline]
            pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
                (ReadHalf(self), WriteHalf(self))
            }

            /// Splits the stream into owned halves that can move into different tasks.
            /// Dropping the write half shuts down the write side, as `close` would.
            #[inline]
            pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
                let stream = std::rc::Rc::new(self);
                (OwnedReadHalf(stream.clone()), OwnedWriteHalf(stream, true))
            }
        }

        impl AsRef<$stream> for OwnedReadHalf {
            /// The stream both halves share, e.g. for `peer_addr` or `peer_closed`.
            #[inline]
            fn as_ref(&self) -> &$stream {
                &self.0
            }
        }

        impl AsRef<$stream> for OwnedWriteHalf {
            /// The stream both halves share, e.g. for `peer_addr` or `peer_closed`.
            #[inline]
            fn as_ref(&self) -> &$stream {
                &self.0
            }
        }

        impl Drop for OwnedWriteHalf {
            fn drop(&mut self) {
                if self.1 {
                    let _ = self.0.shutdown_write();
                }
            }
        }

        $crate::stream::stream_io!(@read ReadHalf<'_>, self => self.0);
        $crate::stream::stream_io!(@read OwnedReadHalf, self => self.0);
        $crate::stream::stream_io!(@write WriteHalf<'_>, self => self.0);
        $crate::stream::stream_io!(@write OwnedWriteHalf, self => self.0);
        $crate::stream::stream_io!(@read_methods ReadHalf<'_>);
        $crate::stream::stream_io!(@read_methods OwnedReadHalf);
        $crate::stream::stream_io!(@write_methods WriteHalf<'_>);
        $crate::stream::stream_io!(@write_methods OwnedWriteHalf);
    };
}

pub(crate) use {stream_halves, stream_io};
