//! Async I/O: the [`Async`] registration type, the `futures-io` traits, and helpers.
//!
//! [`AsyncRead`] and [`AsyncWrite`] are the `futures-io` traits the ecosystem shares, so mini's
//! sockets work with any library written against them. [`AsyncReadExt`] and
//! [`AsyncWriteExt`] add the `read`, `read_exact`, `write_all`, … futures.

mod async_fd;
mod copy;
mod ext;

pub use async_fd::{Async, PeerClosed, Readable, Writable};
pub use copy::copy;
pub use ext::{AsyncReadExt, AsyncWriteExt, Close, Flush, Read, ReadExact, ReadToEnd, Write, WriteAll};
pub use futures_io::{AsyncRead, AsyncWrite};

pub use crate::reactor::Direction;
