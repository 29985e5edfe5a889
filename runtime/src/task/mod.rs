//! Tasks: a spawned future, its waker, and the [`JoinHandle`] that awaits its output.
//!
//! A task is one allocation, laid out in `raw.rs`: a header that any thread may touch (its
//! state word, the vtable for its future's type, the run-queue link, the way back to its
//! runtime), the runtime thread's bookkeeping, and the future itself. Its `Waker` is a
//! pointer to the header with a hand-written vtable, so a wake is an atomic `fetch_or` and a
//! pointer push onto the run queue: no lookup, no second allocation. `state.rs` describes
//! the state word; `docs/executor.md` draws the picture.
//!
//! The future need not be `Send`: it never leaves the runtime thread. Only wakes travel, and
//! on another thread a wake touches nothing but the state word and the runtime's remote queue.

mod raw;
mod state;

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::coop;

pub use raw::JoinHandle;
pub(crate) use raw::{new_task, RunQueue, TaskRef};

/// What the runtime knows about a task besides its future: for diagnostics.
#[derive(Debug)]
pub(crate) struct TaskInfo {
    /// Unique within the runtime, in spawn order (the slab key is reused; this is not).
    pub(crate) id: u64,
    /// Where `mini::spawn` was called.
    pub(crate) spawned_at: &'static Location<'static>,
    /// The name given with [`Builder::name`](crate::task::Builder::name), for traces.
    pub(crate) name: Option<Box<str>>,
    /// Set once the slow-poll warning was printed, so it is printed once per task.
    pub(crate) slow_poll_reported: Cell<bool>,
}

impl TaskInfo {
    pub(crate) fn new(id: u64, spawned_at: &'static Location<'static>, name: Option<Box<str>>) -> TaskInfo {
        TaskInfo { id, spawned_at, name, slow_poll_reported: Cell::new(false) }
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "task {} {name:?} (spawned at {})", self.id, self.spawned_at),
            None => write!(f, "task {} (spawned at {})", self.id, self.spawned_at),
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A finished task's handle completes without waiting: it spends the co-operative
        // budget, so a loop awaiting finished handles still lets other tasks run.
        coop::budgeted(cx, |cx| self.poll_output(cx))
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.is_finished()).finish()
    }
}

/// Why a task produced no output: it was aborted, or it panicked.
pub enum JoinError {
    /// The task was aborted with [`JoinHandle::abort`], or dropped when its runtime shut down.
    Cancelled,
    /// The task panicked; the payload is what `panic!` was given.
    Panic(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    /// True if the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// True if the task panicked.
    ///
    /// ```
    /// mini::block_on(async {
    ///     let err = mini::spawn(async { panic!("boom") }).await.unwrap_err();
    ///     assert!(err.is_panic());
    ///     assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
    /// });
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panic(_))
    }

    /// The panic payload, to inspect or to re-raise with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the error is a cancellation (check [`is_panic`](Self::is_panic) first, or use
    /// [`try_into_panic`](Self::try_into_panic)).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().expect("mini: JoinError::into_panic called on a cancellation")
    }

    /// The panic payload, or the error back if it is a cancellation.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self {
            JoinError::Panic(payload) => Ok(payload),
            other => Err(other),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("JoinError::Cancelled"),
            JoinError::Panic(p) => write!(f, "JoinError::Panic({:?})", panic_message(&**p)),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("task was cancelled"),
            JoinError::Panic(p) => write!(f, "task panicked: {}", panic_message(&**p)),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "<non-string panic payload>"
    }
}

/// Yields once to the other tasks: the current task goes to the back of the run queue.
///
/// ```
/// mini::block_on(async {
///     mini::yield_now().await;
/// });
/// ```
pub async fn yield_now() {
    struct YieldNow(bool);

    impl Future for YieldNow {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    YieldNow(false).await
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use super::JoinHandle;
    use crate::test_util::counting_waker;

    thread_local! {
        static HANDLE: RefCell<Option<JoinHandle<u32>>> = const { RefCell::new(None) };
        static SEEN: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// A waker that polls the handle on the spot, as some executors and combinators do.
    struct PollsInline;

    impl Wake for PollsInline {
        fn wake(self: Arc<Self>) {
            let waker = Waker::from(self);
            HANDLE.with(|handle| {
                let mut handle = handle.borrow_mut();
                let handle = handle.as_mut().expect("the handle is stored before any wake");
                if let Poll::Ready(result) = Pin::new(handle).poll(&mut Context::from_waker(&waker)) {
                    SEEN.set(Some(result.unwrap()));
                }
            });
        }
    }

    /// A handle polled by one task and then by another (moved, or a `select!` that lost)
    /// wakes the one that polled it last.
    #[test]
    fn the_last_task_to_poll_a_join_handle_is_woken() {
        crate::block_on(async {
            let mut handle = crate::spawn(crate::yield_now());
            let (first, first_wakes) = counting_waker();
            let (second, second_wakes) = counting_waker();
            for waker in [&first, &second] {
                assert!(Pin::new(&mut handle).poll(&mut Context::from_waker(waker)).is_pending());
            }
            for _ in 0..100 {
                if handle.is_finished() {
                    break;
                }
                crate::yield_now().await;
            }
            assert!(handle.is_finished());
            assert_eq!(
                (first_wakes.count(), second_wakes.count()),
                (0, 1),
                "the second poller is the one waiting"
            );
        });
    }

    /// Invariant 3: the join waker runs after the stage is released. Woken while the stage
    /// was still borrowed, the inline poll found it busy, stored its waker again and
    /// returned `Pending`, and nothing would ever wake it a second time: the output was lost.
    #[test]
    fn a_join_waker_that_polls_inline_finds_the_output() {
        crate::block_on(async {
            HANDLE.set(Some(crate::spawn(async {
                crate::yield_now().await;
                42
            })));
            Waker::from(Arc::new(PollsInline)).wake(); // first poll: pending, waker stored
            assert_eq!(SEEN.get(), None, "the task has not run yet");
            for _ in 0..100 {
                if SEEN.get().is_some() {
                    break;
                }
                crate::yield_now().await;
            }
            assert_eq!(SEEN.get(), Some(42), "the wake's inline poll must see the output");
        });
    }
}
