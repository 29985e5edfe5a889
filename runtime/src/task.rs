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
//!    late wake does nothing.
//! 2. The future is pinned inside the `Rc` allocation: it is polled in place and only ever
//!    dropped in place, by overwriting the stage.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::context;
use crate::executor::Remote;

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
    pub(crate) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Release);
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

    /// Ends the task with `result`: drops the future in place, stores the output, wakes the
    /// `JoinHandle`.
    fn finish(&self, stage: &mut Stage<F>, result: Result<F::Output, JoinError>) {
        self.header.close();
        // The future's destructor is user code and may panic; that must not take the
        // runtime down with it. (Assignment still completes if the old value's drop panics.)
        let _ = catch_unwind(AssertUnwindSafe(|| *stage = Stage::Consumed));
        *stage = Stage::Finished(result);
        if let Some(w) = self.join_waker.take() {
            w.wake();
        }
    }
}

impl<F: Future> Run for Task<F> {
    fn run(&self) -> bool {
        let mut stage = self.stage.borrow_mut();
        if !matches!(*stage, Stage::Running(_)) {
            return true;
        }
        if self.cancel.get() {
            self.finish(&mut stage, Err(JoinError::Cancelled));
            return true;
        }
        let Stage::Running(future) = &mut *stage else { unreachable!() };
        self.header.unschedule();
        // SAFETY: invariant 2. The future lives inside the task's `Rc` allocation, which never
        // moves, and it leaves the stage only by being dropped in place in `finish`.
        let future = unsafe { Pin::new_unchecked(future) };
        let mut cx = Context::from_waker(&self.waker);
        match catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx))) {
            Ok(Poll::Pending) => false,
            Ok(Poll::Ready(output)) => {
                self.finish(&mut stage, Ok(output));
                true
            }
            Err(payload) => {
                self.finish(&mut stage, Err(JoinError::Panic(payload)));
                true
            }
        }
    }

    fn shutdown(&self) {
        self.header.close();
        // A task can only be mid-poll here if a task itself drops a runtime that runs it,
        // which `block_on`'s nesting check rules out; stay safe regardless.
        let Ok(mut stage) = self.stage.try_borrow_mut() else { return };
        if matches!(*stage, Stage::Running(_)) {
            self.finish(&mut stage, Err(JoinError::Cancelled));
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
        self.task.poll_join(cx)
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
