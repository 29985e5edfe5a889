//! # mini
//!
//! A small, fast async runtime for Rust, on one thread: an epoll reactor wakes the tasks whose
//! fds became ready, a single-threaded executor polls them, and async TCP sockets sit on top.
//!
//! ```no_run
//! #[mini::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = mini::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (mut stream, _peer) = listener.accept().await?;
//!         mini::spawn(async move {
//!             let (mut reader, mut writer) = stream.split();
//!             let _ = mini::io::copy(&mut reader, &mut writer).await;
//!         });
//!     }
//! }
//! ```
//!
//! The crates behind the facade: `mini-runtime` (reactor, executor, tasks, [`io::Async`]),
//! `mini-net` (sockets), `mini-macros` (`#[mini::main]`, `#[mini::test]`). The book in
//! `docs/` walks the path from `epoll_wait` to a resumed task.

#![forbid(unsafe_code)]

pub use mini_macros::{main, test};
pub use mini_runtime::{
    block_on, spawn, spawn_blocking, yield_now, Builder, Driver, JoinError, JoinHandle, Runtime, Shutdown,
    Triggered, Worker, DEFAULT_SLOW_POLL_THRESHOLD,
};

/// Async I/O traits, helpers, and [`Async`](io::Async) for any non-blocking fd.
pub mod io {
    pub use mini_runtime::io::*;
}

/// Networking: TCP sockets.
pub mod net {
    pub use mini_net::*;
}

/// Files and directories: `File`, `read`, `write`, `read_dir`, … (tokio's names), as
/// completion requests on the io_uring driver and on the blocking pool on epoll.
pub mod fs {
    pub use mini_runtime::fs::*;
}

/// Timers: `sleep`, `timeout`, `interval`.
pub mod time {
    pub use mini_runtime::time::*;
}

/// Unix signals: `ctrl_c` and `unix::signal`.
pub mod signal {
    pub use mini_runtime::signal::*;
}

/// Tasks: spawning, joining, yielding.
pub mod task {
    pub use mini_runtime::TaskBuilder as Builder;
    pub use mini_runtime::{spawn, spawn_blocking, yield_now, JoinError, JoinHandle, LocalSpawner};
}

/// The runtime itself, and the [`Handle`](runtime::Handle) that reaches it from any thread.
pub mod runtime {
    pub use mini_runtime::{Builder, Driver, Handle, Runtime, SendJoinHandle, Shutdown, Triggered, Worker};
}

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The book's chapter on the reactor (`docs/reactor.md`), compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/reactor.md")]
pub struct ReactorChapter;

/// The book's chapter on wakers (`docs/wakers.md`), compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/wakers.md")]
pub struct WakersChapter;

/// The book's chapter on the executor (`docs/executor.md`), compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/executor.md")]
pub struct ExecutorChapter;

/// The book's chapter on timers (`docs/timers.md`), compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/timers.md")]
pub struct TimersChapter;

/// The book's chapter on sockets (`docs/net.md`), compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/net.md")]
pub struct NetChapter;

/// The book's chapter on files (`docs/fs.md`), compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/fs.md")]
pub struct FsChapter;

/// `docs/io-models.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/io-models.md")]
pub struct IoModelsChapter;
