//! Unix domain stream sockets: [`UnixListener`] and [`UnixStream`], and the stream's halves.
//!
//! They behave as their TCP counterparts, over a path in the filesystem instead of an IP
//! address. Only filesystem paths are supported, not Linux's abstract namespace.

pub(crate) mod listener;
mod split;
pub(crate) mod stream;

pub use listener::UnixListener;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
/// The address of a Unix socket, as std reports it (a path, or unnamed).
pub use std::os::unix::net::SocketAddr;
pub use stream::UnixStream;
