//! Async sockets for the mini runtime: [`TcpListener`] and [`TcpStream`], [`UdpSocket`], and
//! Unix-domain [`UnixListener`] and [`UnixStream`].
//!
//! Built entirely on the runtime's safe API ([`mini_runtime::io::Async`] and the
//! non-blocking calls in [`mini_runtime::socket`]), so this crate has no `unsafe` at all.
//! Sockets belong to the runtime they were created in and to its thread (they are not
//! `Send`): mini runs everything on one thread.
//!
//! Build time: what a TCP server needs (bind, accept, connect, read, write) is compiled
//! here, once. The rest (UDP, Unix sockets, socket options, `into_std`, the halves'
//! `reunite`) is marked `#[inline]`, which in a debug build means "compile it in the crate
//! that calls it": a program that never calls `UdpSocket::send_to` does not pay for its
//! code. That took mini-net from 15.6k to 10.0k LLVM lines (docs/PERFORMANCE.md, build
//! time); a function moved to that list costs its callers a copy each, so only functions
//! most programs never call belong there.

#![forbid(unsafe_code)]

mod accept;
mod addr;
mod stream;
mod tcp;
mod udp;
pub mod unix;

pub use accept::Incoming;
pub use addr::{lookup_host, ToSocketAddrs};
pub use tcp::listener::TcpListener;
pub use tcp::socket::TcpSocket;
pub use tcp::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use tcp::stream::TcpStream;
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
