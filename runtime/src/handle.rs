//! Reaching a runtime from elsewhere: [`Handle`] (any thread) and [`LocalSpawner`] (its own
//! thread), and the `futures-task` spawner traits that libraries generic over an executor use.
//!
//! A spawn from another thread cannot touch the runtime's task slab: it hands a closure to the
//! runtime instead, on the path a cross-thread wake already takes.
//!
//! ```text
//!  any thread                                   runtime thread
//!  ──────────────────────────────────           ─────────────────────────────────────────
//!  handle.spawn(fut)
//!    ├─ Job = closure that spawns fut ──► Remote.jobs (a Mutex<Option<Vec<Job>>>)
//!    ├─ ring the eventfd (unless rung) ────────► epoll_wait returns ─► Core::drain_remote
//!    └─ SendJoinHandle ◄── Arc<Shared> ──┐        runs each Job: core.spawn(Forward { fut })
//!         poll: result? else store waker │        Forward::poll → fut.poll; on Ready, panic
//!                                        └─────── or abort: store the result, wake the handle
//! ```
//!
//! Invariants:
//! 1. Every `SendJoinHandle` resolves. Its result is stored by whichever comes first: the
//!    future's output, its panic, an abort, or the drop of whatever still holds the future
//!    (the queued `Job`, or the task when the runtime shuts down), which stores
//!    [`JoinError::Cancelled`]. A `Completer` owns that duty and discharges it in `Drop`.
//! 2. A runtime that is gone takes no jobs: `Remote::close` swaps the job list for `None`
//!    under its lock, and `Remote::submit` checks it under the same lock, so a job is either
//!    queued before the close (and dropped by it: invariant 1) or refused. Nothing can queue a
//!    job that nobody will ever run or drop.
//! 3. The future runs only on the runtime thread: a job is a `Send` closure, and the future
//!    it builds need not be `Send` ([`Handle::spawn_with`]).

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_task::{FutureObj, LocalFutureObj, LocalSpawn, Spawn, SpawnError};
use pin_project_lite::pin_project;

use crate::context;
use crate::coop;
use crate::executor::{Core, Remote};
use crate::task::{JoinError, JoinHandle};

/// A closure that another thread asked the runtime to run on its own thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A handle to a runtime, usable from any thread: spawn onto it, from the runtime's own thread,
/// a [`spawn_blocking`](crate::spawn_blocking) closure, or a thread of your own.
///
/// `Send + Sync + Clone`, and cheap to clone (one reference count). It does not keep the
/// runtime alive: once the [`Runtime`](crate::Runtime) is dropped, a spawn is refused (the
/// returned [`SendJoinHandle`] gives [`JoinError::Cancelled`], and the [`Spawn`] trait
/// returns [`SpawnError::shutdown`]); nothing panics. Tasks run while the runtime runs, that
/// is, inside its `block_on`.
///
/// # Examples
///
/// ```
/// let rt = mini::Runtime::new()?;
/// let handle = rt.handle();
/// let from_a_thread = std::thread::spawn(move || handle.spawn(async { 6 * 7 }));
/// let task = from_a_thread.join().unwrap();
/// assert_eq!(rt.block_on(task).unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    remote: Arc<Remote>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("closed", &self.remote.is_closed()).finish()
    }
}

impl Handle {
    pub(crate) fn new(remote: Arc<Remote>) -> Handle {
        Handle { remote }
    }

    /// Whether both handles reach the same runtime (the unit tests' identity check).
    #[cfg(test)]
    pub(crate) fn same_runtime(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.remote, &other.remote)
    }

    /// The handle of the runtime this code runs on: the runtime thread's own, or, inside a
    /// [`spawn_blocking`](crate::spawn_blocking) closure, the runtime that spawned it.
    ///
    /// # Panics
    ///
    /// On any other thread. Use [`try_current`](Self::try_current) to find out instead, or
    /// pass a handle to the thread.
    ///
    /// ```
    /// mini::block_on(async {
    ///     let handle = mini::runtime::Handle::current();
    ///     let doubled = mini::spawn_blocking(move || {
    ///         // Back onto the loop from the blocking pool, as a tokio user would.
    ///         handle.spawn(async { 21 * 2 })
    ///     });
    ///     assert_eq!(doubled.await.unwrap().await.unwrap(), 42);
    /// });
    /// ```
    #[track_caller]
    pub fn current() -> Handle {
        Handle::try_current().unwrap_or_else(|| {
            panic!(
                "mini::runtime::Handle::current() called outside a mini runtime: call it on the \
                 runtime's thread (inside `block_on` or `#[mini::main]`) or in a `spawn_blocking` \
                 closure, and pass the handle to other threads"
            )
        })
    }

    /// The handle of the runtime this code runs on, or `None` outside one (see
    /// [`current`](Self::current)).
    pub fn try_current() -> Option<Handle> {
        context::with_current(|core| core.handle()).or_else(context::blocking_handle)
    }

    /// Spawns a `Send` future onto the runtime, from any thread, and returns a handle to
    /// await its output from any thread.
    ///
    /// On the runtime's own thread the task is spawned at once, as [`mini::spawn`] would;
    /// elsewhere it starts once the runtime's loop gets the job (its eventfd is rung, so a
    /// sleeping loop wakes). On a runtime that is gone, nothing is spawned and the handle
    /// gives [`JoinError::Cancelled`].
    ///
    /// [`mini::spawn`]: crate::spawn
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> SendJoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_at(move || future, Location::caller())
    }

    /// Spawns the future that `make` builds, calling `make` on the runtime's thread. The
    /// closure must be `Send`, the future need not be: it may hold sockets, `Rc`s and other
    /// thread-bound state, because it is created where it will run. (tokio needs a `LocalSet`
    /// on the target thread for this; a single-threaded runtime can offer it directly.)
    ///
    /// If `make` panics, the handle gives [`JoinError::Panic`] with its payload.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let rt = mini::Runtime::new()?;
    /// let handle = rt.handle();
    /// let task = std::thread::spawn(move || {
    ///     handle.spawn_with(|| async {
    ///         let shared = Rc::new(5); // !Send, yet fine: the future never leaves its thread
    ///         mini::yield_now().await;
    ///         *shared * 2
    ///     })
    /// })
    /// .join()
    /// .unwrap();
    /// assert_eq!(rt.block_on(task).unwrap(), 10);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn_with<M, F>(&self, make: M) -> SendJoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_at(make, Location::caller())
    }

    fn spawn_at<M, F>(&self, make: M, spawned_at: &'static Location<'static>) -> SendJoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let shared = Arc::new(Shared::new());
        let completer = Completer(shared.clone());
        let job: Job = Box::new(move || {
            match catch_unwind(AssertUnwindSafe(make)) {
                Ok(future) => {
                    let forward = Forward { future, completer: Some(completer), registered: false };
                    // A job runs on the runtime thread, inside the runtime: spawning works.
                    context::with_current(|core| drop(core.spawn(forward, spawned_at, None)));
                }
                Err(payload) => completer.complete(Err(JoinError::Panic(payload))),
            }
        });
        // A refused job is dropped here, and its `Completer` reports the cancellation.
        let _ = self.submit(job);
        SendJoinHandle { shared }
    }

    /// Runs `job` on the runtime thread: at once if this is that thread, else through the
    /// job queue. Gives the job back if the runtime is gone.
    fn submit(&self, job: Job) -> Result<(), Job> {
        let here = context::with_current(|core| Arc::ptr_eq(&core.remote, &self.remote)).unwrap_or(false);
        if here && !self.remote.is_closed() {
            job();
            Ok(())
        } else {
            self.remote.submit(job)
        }
    }
}

/// `futures-task`'s spawner trait, so libraries generic over an executor (futures-util's
/// `SpawnExt`, and others) accept a mini runtime as is. The task is detached.
// The spawner-trait impls here are `#[inline]`: each spawns a task type of its own, and in a
// debug build that code is then compiled only into the programs that use these traits.
impl Spawn for Handle {
    #[inline]
    #[track_caller]
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        let spawned_at = Location::caller();
        let job: Job = Box::new(move || {
            // As a `LocalFutureObj`, so every spawner trait shares one task type: each
            // future type compiles its own copy of the task code, and mini's build time is
            // a tracked figure.
            let future = LocalFutureObj::from(future);
            context::with_current(|core| drop(core.spawn(future, spawned_at, None)));
        });
        self.submit(job).map_err(|_| SpawnError::shutdown())
    }

    #[inline]
    fn status(&self) -> Result<(), SpawnError> {
        if self.remote.is_closed() {
            Err(SpawnError::shutdown())
        } else {
            Ok(())
        }
    }
}

/// Spawns `!Send` futures onto the runtime of the thread it was made on: what libraries
/// generic over `futures-task`'s [`LocalSpawn`] (futures-util's `LocalSpawnExt`) need.
///
/// Not `Send`: it is used on the runtime's own thread (for other threads, use [`Handle`]).
/// Once the runtime is dropped, spawning returns [`SpawnError::shutdown`].
///
/// ```
/// use futures_task::{LocalSpawn, SpawnError};
///
/// let rt = mini::Runtime::new()?;
/// let spawner = rt.block_on(async { mini::task::LocalSpawner::current() });
/// assert!(spawner.status_local().is_ok());
/// drop(rt);
/// assert!(spawner.status_local().unwrap_err().is_shutdown());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct LocalSpawner {
    core: Weak<Core>,
}

impl fmt::Debug for LocalSpawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSpawner").field("shutdown", &self.core().is_none()).finish()
    }
}

impl LocalSpawner {
    /// The spawner of the runtime running on this thread.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[track_caller]
    pub fn current() -> LocalSpawner {
        LocalSpawner::try_current().unwrap_or_else(|| {
            panic!(
                "mini::task::LocalSpawner::current() called outside a mini runtime: call it from \
                 code running inside `block_on` or `#[mini::main]`"
            )
        })
    }

    /// The spawner of the runtime running on this thread, or `None` outside one.
    pub fn try_current() -> Option<LocalSpawner> {
        context::with_current(|core| LocalSpawner { core: Rc::downgrade(core) })
    }

    /// The runtime, unless it is gone or shutting down.
    fn core(&self) -> Option<Rc<Core>> {
        self.core.upgrade().filter(|core| !core.remote.is_closed())
    }

    /// Spawns `future` as [`mini::spawn`](crate::spawn) does, or returns
    /// [`SpawnError::shutdown`] if the runtime is gone.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let core = self.core().ok_or_else(SpawnError::shutdown)?;
        Ok(core.spawn(future, Location::caller(), None))
    }
}

impl LocalSpawn for LocalSpawner {
    #[inline]
    #[track_caller]
    fn spawn_local_obj(&self, future: LocalFutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.spawn(future).map(drop)
    }

    #[inline]
    fn status_local(&self) -> Result<(), SpawnError> {
        self.core().map(drop).ok_or_else(SpawnError::shutdown)
    }
}

/// A `Send` future is a local one too.
impl Spawn for LocalSpawner {
    #[inline]
    #[track_caller]
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.spawn(LocalFutureObj::from(future)).map(drop) // one task type, as above
    }

    #[inline]
    fn status(&self) -> Result<(), SpawnError> {
        self.status_local()
    }
}

/// Where a task spawned through a [`Handle`] leaves its result for the [`SendJoinHandle`].
struct Shared<T> {
    state: Mutex<State<T>>,
    /// Set by [`SendJoinHandle::abort`]; read by the task on every poll without the lock.
    aborted: AtomicBool,
}

struct State<T> {
    /// The result, until the handle takes it.
    result: Option<Result<T, JoinError>>,
    /// Whether a result was ever stored (it stays true once the handle has taken it).
    finished: bool,
    /// The task awaiting the handle.
    join_waker: Option<Waker>,
    /// The spawned task's own waker, for `abort` to wake it; set on its first poll.
    task_waker: Option<Waker>,
}

impl<T> Shared<T> {
    fn new() -> Shared<T> {
        let state = State { result: None, finished: false, join_waker: None, task_waker: None };
        Shared { state: Mutex::new(state), aborted: AtomicBool::new(false) }
    }

    /// No user code runs under this lock (wakers are woken after it is released), so a
    /// poisoned lock still holds consistent state.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The duty to store a result (invariant 1): done by `complete`, or by `Drop` as a
/// cancellation.
struct Completer<T>(Arc<Shared<T>>);

impl<T> Completer<T> {
    fn complete(self, result: Result<T, JoinError>) {
        self.store(result);
    }

    fn store(&self, result: Result<T, JoinError>) {
        let mut state = self.0.lock();
        if state.finished {
            return;
        }
        state.result = Some(result);
        state.finished = true;
        state.task_waker = None;
        let join_waker = state.join_waker.take();
        drop(state);
        if let Some(waker) = join_waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.store(Err(JoinError::Cancelled));
    }
}

pin_project! {
    /// The task a [`Handle`] spawns: runs the future, and hands its result, panic or
    /// cancellation to the [`SendJoinHandle`].
    struct Forward<F: Future> {
        #[pin]
        future: F,
        completer: Option<Completer<F::Output>>,
        // Whether the task's waker is stored in `Shared` for `abort` (done once: a task's
        // waker never changes).
        registered: bool,
    }
}

impl<F: Future> Future for Forward<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let Some(completer) = this.completer.as_ref() else { return Poll::Ready(()) };
        let shared = &completer.0;
        if !*this.registered {
            // An abort after this finds the waker; one before it set `aborted` first, which
            // the check below sees.
            shared.lock().task_waker = Some(cx.waker().clone());
            *this.registered = true;
        }
        let result = if shared.aborted.load(Ordering::Acquire) {
            Err(JoinError::Cancelled)
        } else {
            // Caught here rather than by the task, so the handle gets the real payload.
            match catch_unwind(AssertUnwindSafe(|| this.future.poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(output)) => Ok(output),
                Err(payload) => Err(JoinError::Panic(payload)),
            }
        };
        if let Some(completer) = this.completer.take() {
            completer.complete(result);
        }
        Poll::Ready(())
    }
}

/// An owned permission to await a task spawned through a [`Handle`], from any thread.
///
/// The `Send` counterpart of [`JoinHandle`]: `JoinHandle` is built on the runtime thread's
/// `Rc`s and costs no lock, which is what `mini::spawn` users want; this one keeps the result
/// behind a `Mutex` so that any thread may await it or abort the task. Dropping it detaches
/// the task.
pub struct SendJoinHandle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> SendJoinHandle<T> {
    /// Cancels the task: the runtime drops its future the next time it gets to it, and the
    /// handle gives [`JoinError::Cancelled`]. A task that already finished keeps its output.
    /// Callable from any thread.
    pub fn abort(&self) {
        self.shared.aborted.store(true, Ordering::Release);
        let task_waker = self.shared.lock().task_waker.take();
        if let Some(waker) = task_waker {
            waker.wake();
        }
    }

    /// Whether the task has finished: returned, panicked, been cancelled, or found its
    /// runtime gone.
    pub fn is_finished(&self) -> bool {
        self.shared.lock().finished
    }
}

impl<T> Future for SendJoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        coop::budgeted(cx, |cx| {
            let mut state = self.shared.lock();
            if let Some(result) = state.result.take() {
                return Poll::Ready(result);
            }
            if state.finished {
                panic!("mini: SendJoinHandle polled after it returned the task's output");
            }
            match &state.join_waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.join_waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }
}

impl<T> fmt::Debug for SendJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendJoinHandle").field("finished", &self.is_finished()).finish()
    }
}
