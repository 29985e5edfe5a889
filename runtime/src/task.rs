//! Tasks: a spawned future, its waker, and the [`JoinHandle`] that awaits its output.
//!
//! A task is two allocations:
//!
//! ```text
//!  Rc<Task<F>>  (runtime thread only)        Arc<Header>  (any thread: this is the Waker)
//!  ┌──────────────────────────────┐           ┌─────────────────────────────────────┐
//!  │ stage: Running(F)            │──waker───►│ key: slab key of the task           │
//!  │      | Finished(Result<T,..>)│           │ scheduled: AtomicBool               │
//!  │      | Consumed              │           │ remote: Arc<Remote> (queue+eventfd) │
//!  │ join_waker, cancel flag      │           └─────────────────────────────────────┘
//!  └──────────────────────────────┘
//!    ▲ the executor's slab      ▲ JoinHandle<T>
//! ```
//!
//! The future need not be `Send`: it never leaves the runtime thread. Only the `Header`
//! travels, and it holds nothing but atomics and the cross-thread queue. Waking it pushes
//! the task's key onto a run queue; the executor looks the key up in its slab, so a wake
//! for a task that has finished (its key's generation has moved on) finds nothing.
//!
//! Invariants:
//! 1. `scheduled` is true while the key sits in a run queue, and true forever once the task
//!    has finished or the runtime has shut down. So repeated wakes queue the task once, and a
//!    late wake does nothing. The clear before each poll is a read-modify-write, like the
//!    wakers' set (see `Header::unschedule`), so a wake is either seen by the poll or queues
//!    another one.
//! 2. The future is pinned inside the `Rc` allocation: it is polled in place and only ever
//!    dropped in place, by overwriting the stage.
//! 3. The `JoinHandle`'s waker is woken only after the stage's borrow is released: a waker
//!    may poll the handle on the spot, and must then find the output.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::context;
use crate::coop;
use crate::executor::Remote;
use crate::loom::{AtomicBool, Ordering};

/// The thread-safe part of a task: what its [`Waker`] points at.
#[derive(Debug)]
pub(crate) struct Header {
    key: u64,
    scheduled: AtomicBool,
    remote: Arc<Remote>,
}

impl Header {
    /// A header for a task that starts out queued (`scheduled == true`).
    pub(crate) fn new(key: u64, remote: Arc<Remote>) -> Header {
        Header { key, scheduled: AtomicBool::new(true), remote }
    }

    /// Called by the executor just before polling: wakes from now on queue the task again.
    ///
    /// A read-modify-write, not a store. A wake from another thread makes its change (a
    /// message sent, a flag set) and then swaps `scheduled` to true; if that swap finds it
    /// still true (this poll has not begun), it queues nothing and relies on this poll to
    /// see the change. The swap here reads that `true` with acquire ordering, so the poll
    /// is ordered after the waker's change and sees it. A plain release store reads nothing
    /// and orders nothing: the poll could miss the change while the wake was dropped (the
    /// store-buffering pattern), and the task would sleep forever. tokio and async-task make
    /// this transition with an AcqRel read-modify-write too. Checked by the loom model in
    /// `loom.rs`.
    pub(crate) fn unschedule(&self) {
        self.scheduled.swap(false, Ordering::AcqRel);
    }

    /// The task is finished (or the runtime is gone): every later wake is ignored.
    pub(crate) fn close(&self) {
        self.scheduled.store(true, Ordering::Release);
    }
}

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return; // already queued, or finished: invariant 1
        }
        // On the runtime's own thread: a plain push onto its run queue, no syscall.
        // Anywhere else: the lock-free queue plus the eventfd that interrupts epoll_wait.
        if !context::schedule_local(&self.remote, self.key) {
            self.remote.schedule(self.key);
        }
    }
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

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

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "task {} {name:?} (spawned at {})", self.id, self.spawned_at),
            None => write!(f, "task {} (spawned at {})", self.id, self.spawned_at),
        }
    }
}

/// A spawned future and everything the runtime thread keeps about it.
pub(crate) struct Task<F: Future> {
    info: TaskInfo,
    header: Arc<Header>,
    waker: Waker,
    stage: RefCell<Stage<F>>,
    cancel: Cell<bool>,
    join_waker: Cell<Option<Waker>>,
}

/// What the executor sees of a task, with the future's type erased.
pub(crate) trait Run {
    /// Polls the task once (or cancels it, if `abort` was called). Returns true when the task
    /// is done and may leave the slab.
    fn run(&self) -> bool;
    /// Runtime shutdown: drops the future where it stands; the `JoinHandle` sees a
    /// cancellation.
    fn shutdown(&self);
    /// The task's id and origin.
    fn info(&self) -> &TaskInfo;
}

/// What a [`JoinHandle<T>`] sees of a task, with the future's type erased.
trait Join<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    fn abort(&self);
    fn is_finished(&self) -> bool;
}

impl<F: Future> Task<F> {
    pub(crate) fn new(future: F, header: Arc<Header>, info: TaskInfo) -> Rc<Task<F>> {
        Rc::new(Task {
            info,
            waker: Waker::from(header.clone()),
            header,
            stage: RefCell::new(Stage::Running(future)),
            cancel: Cell::new(false),
            join_waker: Cell::new(None),
        })
    }

    /// Ends the task with `result`: drops the future in place, stores the output. Returns
    /// the `JoinHandle`'s waker, for the caller to wake once it has released the stage
    /// (invariant 3).
    #[must_use = "the JoinHandle's waker must be woken"]
    fn finish(&self, stage: &mut Stage<F>, result: Result<F::Output, JoinError>) -> Option<Waker> {
        self.header.close();
        // The future's destructor is user code and may panic; that must not take the
        // runtime down with it. (Assignment still completes if the old value's drop panics.)
        let _ = catch_unwind(AssertUnwindSafe(|| *stage = Stage::Consumed));
        *stage = Stage::Finished(result);
        self.join_waker.take()
    }

    /// Polls the future once, or cancels it. Returns whether the task is done, and the
    /// waker to wake now that the stage is no longer borrowed.
    fn poll_stage(&self) -> (bool, Option<Waker>) {
        let mut stage = self.stage.borrow_mut();
        if !matches!(*stage, Stage::Running(_)) {
            return (true, None);
        }
        if self.cancel.get() {
            return (true, self.finish(&mut stage, Err(JoinError::Cancelled)));
        }
        let Stage::Running(future) = &mut *stage else { unreachable!() };
        self.header.unschedule();
        // SAFETY: invariant 2. The future lives inside the task's `Rc` allocation, which never
        // moves, and it leaves the stage only by being dropped in place in `finish`.
        let future = unsafe { Pin::new_unchecked(future) };
        let mut cx = Context::from_waker(&self.waker);
        match catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx))) {
            Ok(Poll::Pending) => (false, None),
            Ok(Poll::Ready(output)) => (true, self.finish(&mut stage, Ok(output))),
            Err(payload) => (true, self.finish(&mut stage, Err(JoinError::Panic(payload)))),
        }
    }
}

impl<F: Future> Run for Task<F> {
    fn run(&self) -> bool {
        let (done, join_waker) = self.poll_stage();
        if let Some(waker) = join_waker {
            waker.wake();
        }
        done
    }

    fn shutdown(&self) {
        self.header.close();
        // A task can only be mid-poll here if a task itself drops a runtime that runs it,
        // which `block_on`'s nesting check rules out; stay safe regardless.
        let Ok(mut stage) = self.stage.try_borrow_mut() else { return };
        let join_waker = match *stage {
            Stage::Running(_) => self.finish(&mut stage, Err(JoinError::Cancelled)),
            _ => None,
        };
        drop(stage);
        if let Some(waker) = join_waker {
            waker.wake();
        }
    }

    fn info(&self) -> &TaskInfo {
        &self.info
    }
}

impl<F: Future> Join<F::Output> for Task<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        // Borrowed only while the task itself is being polled, i.e. it awaits its own handle.
        if let Ok(mut stage) = self.stage.try_borrow_mut() {
            if let Stage::Finished(_) = *stage {
                let Stage::Finished(result) = std::mem::replace(&mut *stage, Stage::Consumed) else {
                    unreachable!()
                };
                return Poll::Ready(result);
            }
            if let Stage::Consumed = *stage {
                panic!("mini: JoinHandle polled after it returned the task's output");
            }
        }
        match self.join_waker.take() {
            Some(w) if w.will_wake(cx.waker()) => self.join_waker.set(Some(w)),
            _ => self.join_waker.set(Some(cx.waker().clone())),
        }
        Poll::Pending
    }

    fn abort(&self) {
        if !self.is_finished() {
            self.cancel.set(true);
            self.waker.wake_by_ref();
        }
    }

    fn is_finished(&self) -> bool {
        match self.stage.try_borrow() {
            Ok(stage) => !matches!(*stage, Stage::Running(_)),
            Err(_) => false, // being polled right now
        }
    }
}

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was aborted.
/// Dropping it *detaches* the task: it keeps running, and its output is dropped.
///
/// # Examples
///
/// ```
/// mini::block_on(async {
///     let handle = mini::spawn(async { 6 * 7 });
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    task: Rc<dyn Join<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new<F: Future<Output = T> + 'static>(task: Rc<Task<F>>) -> JoinHandle<T> {
        JoinHandle { task }
    }

    /// Cancels the task. Its future is dropped the next time the runtime gets to it (not
    /// inside this call), and awaiting the handle then gives a [`JoinError`] for which
    /// [`is_cancelled`](JoinError::is_cancelled) is true. A task that already finished
    /// keeps its output.
    ///
    /// ```
    /// mini::block_on(async {
    ///     let handle = mini::spawn(std::future::pending::<()>());
    ///     handle.abort();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the task has finished: returned, panicked or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A finished task's handle completes without waiting: it spends the co-operative
        // budget, so a loop awaiting finished handles still lets other tasks run.
        coop::budgeted(cx, |cx| self.task.poll_join(cx))
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
