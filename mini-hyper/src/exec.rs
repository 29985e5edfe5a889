//! [`MiniExecutor`]: hyper's `rt::Executor`, spawning on mini.

use std::future::Future;

/// hyper's [`rt::Executor`](hyper::rt::Executor) on mini: each future hyper hands it (an
/// HTTP/2 connection's background work, one task per stream) becomes a mini task.
///
/// It accepts every `F: Future + 'static`, `Send` or not, since mini runs all its tasks on
/// one thread: a service whose futures hold an `Rc` or a `RefCell` can serve HTTP/2 too
/// (hyper's `!Send` mode, which hyper's docs show with a `LocalExec`).
///
/// `MiniExecutor` itself is an empty, `Send + Sync` value, so it can sit in a builder that
/// is shared or built on another thread; but [`execute`](hyper::rt::Executor::execute) must
/// be called from code running on a mini runtime's thread, which is where hyper calls it
/// (while a connection is polled).
///
/// # Panics
///
/// `execute` panics outside a mini runtime, as [`mini::spawn`] does.
///
/// # Examples
///
/// ```no_run
/// use hyper::server::conn::http2;
/// use mini_hyper::{MiniExecutor, MiniTimer};
///
/// let mut builder = http2::Builder::new(MiniExecutor);
/// builder.timer(MiniTimer);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MiniExecutor;

impl<F> hyper::rt::Executor<F> for MiniExecutor
where
    F: Future + 'static,
{
    fn execute(&self, future: F) {
        // Detached: hyper keeps its own handles to what the task does (streams, channels).
        // The wrapper drops the output inside the task, so `F::Output` need not be 'static.
        drop(mini::spawn(async move {
            future.await;
        }));
    }
}
