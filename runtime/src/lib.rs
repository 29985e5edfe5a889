//! mini's runtime: an epoll reactor, a single-threaded executor, tasks, and [`io::Async`], which
//! makes any non-blocking fd async.
//!
//! Users normally depend on the `mini` facade crate, which re-exports this one. A newcomer
//! can read the architecture off the modules, in the order a readiness event travels:
//!
//! | module       | role                                                                  |
//! |--------------|-----------------------------------------------------------------------|
//! | `sys`        | the only code that calls libc: epoll, eventfd, sockets                |
//! | `reactor`    | one epoll instance; turns events into wakes of the waiting tasks      |
//! | `waiters`    | the tasks waiting on one fd; a wait given up leaves the list at once  |
//! | `task`       | one allocation per task, its `Waker` vtable, [`JoinHandle`]           |
//! | `loom`       | the cross-thread wake protocol's atomics, swappable for loom's models |
//! | `executor`   | the message loop: run ready tasks, then `epoll_wait`, repeat          |
//! | `handle`     | [`Handle`]: spawning from other threads; the spawner traits           |
//! | `shutdown`   | [`Shutdown`]: a stop flag any thread raises and any runtime awaits     |
//! | `workers`    | [`Worker`]: one runtime per thread, started by [`Builder::run`]       |
//! | `blocking`   | helper threads for [`spawn_blocking`]: blocking work off the loop     |
//! | [`time`]     | timers: one ordered map per runtime, bounding the epoll timeout       |
//! | [`signal`]   | Unix signals through a self-pipe registered with the reactor          |
//! | `coop`       | the per-poll I/O budget that keeps one busy socket from starving all  |
//! | [`io`]       | [`io::Async`], the `futures-io` traits, `copy`                        |
//! | [`fs`]       | files: completion requests on io_uring, the blocking pool on epoll    |
//! | [`socket`]   | safe socket primitives the `mini-net` crate builds on                 |

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod blocking;
mod context;
mod coop;
mod driver;
mod executor;
pub mod fs;
mod handle;
pub mod io;
mod loom;
mod reactor;
mod shutdown;
pub mod signal;
mod slab;
mod sys;
mod task;
#[cfg(test)]
mod test_util;
pub mod time;
mod trace;
#[cfg(feature = "uring")]
mod uring;
mod waiters;
mod workers;

pub use blocking::spawn_blocking;
pub use driver::Driver;
pub use executor::{block_on, spawn, Builder, Runtime, TaskBuilder, DEFAULT_SLOW_POLL_THRESHOLD};
pub use handle::{Handle, LocalSpawner, SendJoinHandle};
pub use shutdown::{Shutdown, Triggered};
pub use task::{yield_now, JoinError, JoinHandle};
pub use workers::Worker;

/// Safe, non-blocking socket calls for the `mini-net` crate (all created with
/// `SOCK_NONBLOCK | SOCK_CLOEXEC`, all sends with `MSG_NOSIGNAL`).
pub mod socket {
    pub use crate::sys::{
        accept, bind, connect, is_per_connection_accept_error, linger, listen, local_addr, option, recv,
        recv_inq, send, set_linger, set_option, set_owner, set_tcp_inq, tcp_connect, tcp_listen, tcp_socket,
        udp_bind, unix_accept, unix_connect, unix_listen, unix_pair, unix_socket, SockOpt,
    };
}
