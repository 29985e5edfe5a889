//! The blocking pool: helper threads for work that would stall the loop (DNS lookups, file
//! I/O, a long computation).
//!
//! The runtime has one thread; a task that blocks it stops every other task. So a blocking
//! closure goes to a pool of helper threads, and the task that awaits it is an ordinary local
//! task that sleeps until a pool thread wakes it with the result:
//!
//! ```text
//!  runtime thread                                 pool threads (at most MAX_BLOCKING_THREADS)
//!  ─────────────────────────────────────────      ────────────────────────────────────────────
//!  spawn_blocking(f)
//!    ├─ Pool::execute(job) ──► queue ─────────────► pop job, run catch_unwind(f)
//!    └─ spawn(BlockingJob) ─► JoinHandle                │
//!         poll: no result yet,                          ▼
//!         store waker in Slot ──► Arc<Mutex<Slot>> ◄── store Ok(T) or Err(payload),
//!                                                       take the waker, unlock, wake it
//!  Remote queue + eventfd ◄──────────────────────────── (the cross-thread wake path)
//!    └─► BlockingJob polled again: Ok(T) → output; Err(payload) → resume_unwind(payload)
//! ```
//!
//! Invariants and choices:
//! 1. Threads start lazily: none exists until the first job, and a job starts a new thread
//!    only when more jobs are queued than threads are idle, up to [`MAX_BLOCKING_THREADS`].
//!    Extra jobs wait in the FIFO queue. An idle thread exits after [`KEEP_ALIVE`].
//! 2. User code never runs under the pool lock, and a job's panic is caught on the pool
//!    thread, so the lock is never poisoned by user code and the thread keeps serving jobs.
//! 3. A panic reaches the `JoinHandle` the same way as in any task: `BlockingJob` re-raises
//!    the payload with `resume_unwind` inside `Task::run`'s `catch_unwind`, which turns it
//!    into `JoinError::Panic` with the original payload.
//! 4. Shutdown waits only for threads outside user code: dropping the runtime sets `shutdown`,
//!    drops the queued jobs, wakes every idle thread and joins each thread that is not inside
//!    a closure (they exit within microseconds). Joining matters: a process that exits right
//!    after the runtime is dropped would otherwise cut those threads off halfway through the C
//!    library's per-thread cleanup. A thread running a closure is not waited for (a running
//!    closure cannot be interrupted): it finishes, drops the result and exits on its own.
//!    So that a task woken by its job's result cannot end its runtime before the pool counts
//!    the thread as out of the closure, the thread leaves `running` *before* it wakes the task.
//! 5. A job whose task is gone (aborted, or its runtime dropped) before a thread takes it
//!    is skipped: the job holds the only other reference to its `Slot`, which is how it knows.
//!
//! There is no `unsafe` here: the result slot is a `Mutex`, and the wake is the task's own
//! `Send + Sync` waker.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle as ThreadHandle, ThreadId};
use std::time::Duration;

use crate::context;
use crate::handle::Handle;
use crate::task::JoinHandle;

/// The most pool threads one runtime runs at once; further jobs queue. tokio's default is 512,
/// sized for many-core servers. Blocking jobs mostly *wait* (on DNS, disks, locks) rather than
/// compute, so the pool should be wider than the core count, but on this project's 2-core
/// machines 512 threads would buy nothing beyond 64 except memory (each reserves a 2 MiB
/// stack) and scheduler churn. 64 concurrent lookups or file reads is plenty for one loop.
pub(crate) const MAX_BLOCKING_THREADS: usize = 64;

/// How long an idle pool thread waits for a new job before it exits. 10 s is tokio's default:
/// a burst of jobs reuses warm threads instead of paying a thread spawn per job, and a quiet
/// program is back to zero pool threads soon after.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A queued closure. It stores its result in its `Slot` and returns the waker of the task that
/// awaits it; the pool thread wakes that task once it counts itself out of the job (invariant 4).
type Job = Box<dyn FnOnce() -> Option<Waker> + Send + 'static>;

/// One runtime's blocking pool. The runtime's `Core` owns it; its threads share `Inner`.
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when a job is queued (one idle thread) or at shutdown (all of them).
    condvar: Condvar,
    /// Signalled when a thread exits; `shutdown` waits on it.
    exited: Condvar,
}

struct State {
    queue: VecDeque<Job>,
    /// Threads alive, busy or idle.
    threads: usize,
    /// Threads waiting on the condvar for a job.
    idle: usize,
    /// Threads inside a job's closure, where user code runs.
    running: usize,
    shutdown: bool,
    /// Handles of the threads started and not yet reaped; joined or detached at shutdown.
    handles: Vec<ThreadHandle<()>>,
    /// Threads that have left `worker`, by id, whose handles are still in `handles`.
    gone: Vec<ThreadId>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("Pool")
            .field("threads", &state.threads)
            .field("idle", &state.idle)
            .field("running", &state.running)
            .field("queued", &state.queue.len())
            .field("shutdown", &state.shutdown)
            .finish()
    }
}

impl Inner {
    /// Invariant 2: no user code runs under the lock, so poisoning can only come from a bug in
    /// this file; the state is still consistent then, so carry on.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pool {
    pub(crate) fn new() -> Pool {
        let state = State {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            running: 0,
            shutdown: false,
            handles: Vec::new(),
            gone: Vec::new(),
        };
        let inner = Inner { state: Mutex::new(state), condvar: Condvar::new(), exited: Condvar::new() };
        Pool { inner: Arc::new(inner) }
    }

    /// Queues `job`, waking an idle thread or starting a new one (invariant 1).
    fn execute(&self, job: Job) {
        let mut state = self.inner.lock();
        if state.shutdown {
            drop(state);
            drop(job); // its runtime is gone: nobody could receive the result
            return;
        }
        state.queue.push_back(job);
        // A woken thread stays counted in `idle` until it runs, so comparing with the queue
        // length (not `idle > 0`) starts a thread when two jobs arrive for one idle thread.
        if state.queue.len() <= state.idle {
            self.inner.condvar.notify_one();
            return;
        }
        if state.threads == MAX_BLOCKING_THREADS {
            return; // the job waits for a busy thread to finish
        }
        state.threads += 1;
        drop(state);

        let inner = self.inner.clone();
        let spawned = thread::Builder::new().name("mini-blocking".into()).spawn(move || worker(&inner));
        let mut state = self.inner.lock();
        match spawned {
            Ok(handle) => {
                // Threads that ended on their keep-alive are detached here, so `handles` holds
                // at most the live threads plus those gone since the last thread started.
                let State { handles, gone, .. } = &mut *state;
                handles.retain(|h| !gone.contains(&h.thread().id()));
                gone.clear();
                handles.push(handle);
            }
            Err(e) => {
                state.threads -= 1;
                if state.threads == 0 {
                    // No thread will ever run the queue: failing loudly beats a task that hangs.
                    drop(state);
                    panic!("mini: failed to start a blocking-pool thread: {e}");
                }
                // Otherwise the job stays queued for a thread that is already running.
            }
        }
    }

    /// Invariant 4: called when the runtime is dropped, after its tasks.
    pub(crate) fn shutdown(&self) {
        let mut state = self.inner.lock();
        state.shutdown = true;
        let queued = std::mem::take(&mut state.queue);
        self.inner.condvar.notify_all();
        // Every thread outside a job is idle or about to take the lock: it sees `shutdown`
        // and leaves at once, so this wait is short and never waits on user code.
        state = self
            .inner
            .exited
            .wait_while(state, |s| s.threads > s.running)
            .unwrap_or_else(PoisonError::into_inner);
        let gone = std::mem::take(&mut state.gone);
        let handles = std::mem::take(&mut state.handles);
        drop(state);
        for handle in handles {
            if gone.contains(&handle.thread().id()) {
                // It has left `worker`; the join waits for the OS thread to finish exiting.
                let _ = handle.join();
            } // else it is running a closure: dropping the handle detaches it
        }
        // Outside the lock: dropping a closure runs user destructors, which may panic.
        for job in queued {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(job)));
        }
    }
}

/// A pool thread's loop: run jobs until shut down, or idle for `KEEP_ALIVE`.
fn worker(inner: &Inner) {
    let mut state = inner.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            state.running += 1;
            drop(state);
            // `spawn_blocking` already catches the closure's panic; this catches a panicking
            // destructor of its captures or result, so the thread survives and stays counted.
            let waker = catch_unwind(AssertUnwindSafe(job)).ok().flatten();
            state = inner.lock();
            state.running -= 1;
            if let Some(waker) = waker {
                // Out of `running` first (invariant 4), and woken outside the lock: the
                // runtime thread may poll the task, and even drop the runtime, at once.
                drop(state);
                waker.wake();
                state = inner.lock();
            }
            continue;
        }
        if state.shutdown {
            break;
        }
        state.idle += 1;
        let (guard, wait) = inner
            .condvar
            .wait_timeout_while(state, KEEP_ALIVE, |s| s.queue.is_empty() && !s.shutdown)
            .unwrap_or_else(PoisonError::into_inner);
        state = guard;
        state.idle -= 1;
        if wait.timed_out() && state.queue.is_empty() {
            break;
        }
    }
    state.threads -= 1;
    state.gone.push(thread::current().id());
    inner.exited.notify_all();
}

/// Where a pool thread leaves the closure's result for the task that awaits it.
struct Slot<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

/// The local task's side of a blocking job: ready once the pool thread filled the slot.
struct BlockingJob<T>(Arc<Mutex<Slot<T>>>);

impl<T> Future for BlockingJob<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(payload)) => {
                drop(slot);
                resume_unwind(payload) // invariant 3; no second panic message is printed
            }
            None => {
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// Runs `f` on the current runtime's blocking pool and returns a handle to await its result.
///
/// Use it for work that blocks the thread: a DNS lookup, reading a file with `std::fs`, a
/// long computation, a synchronous library call. Awaiting the handle parks only the current
/// task; the runtime goes on running other tasks and I/O meanwhile.
///
/// The pool starts threads as jobs arrive, at most 64 per runtime; further jobs wait in a
/// queue. A thread idle for 10 seconds exits. If `f` panics, awaiting the handle gives a
/// [`JoinError`](crate::JoinError) for which `is_panic()` is true, with `f`'s payload, and
/// the pool carries on.
///
/// A running closure cannot be stopped. [`JoinHandle::abort`] (or dropping the runtime) stops
/// the wait: the handle reports a cancellation, and when the closure returns its result is
/// dropped on the pool thread. A job that no thread has picked up yet is skipped. Dropping
/// the runtime does not wait for running closures either (it does wait, briefly, for its idle
/// pool threads to exit).
///
/// # Panics
///
/// If called outside a mini runtime (outside `block_on` / `#[mini::main]`).
///
/// # Examples
///
/// ```
/// mini::block_on(async {
///     let sum = mini::spawn_blocking(|| {
///         // Pretend this is slow, blocking work.
///         std::thread::sleep(std::time::Duration::from_millis(1));
///         (1..=10).sum::<u32>()
///     });
///     mini::yield_now().await; // other tasks keep running meanwhile
///     assert_eq!(sum.await.unwrap(), 55);
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot { result: None, waker: None }));
    let job_slot = slot.clone();
    let handle = Handle::try_current();
    let job: Job = Box::new(move || {
        // The awaiting task holds the other reference; once it is gone (aborted, or the
        // runtime dropped) nobody can see the result, so a job not yet started is skipped.
        if Arc::strong_count(&job_slot) == 1 {
            return None;
        }
        let result = match handle {
            Some(handle) => context::with_blocking_handle(handle, || catch_unwind(AssertUnwindSafe(f))),
            None => catch_unwind(AssertUnwindSafe(f)), // outside a runtime: the panic below
        };
        let mut slot = job_slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.result = Some(result);
        slot.waker.take() // the pool thread wakes it (invariant 4)
    });
    let spawned_at = Location::caller();
    let spawned = context::with_current(|core| {
        core.blocking.execute(job);
        core.spawn(BlockingJob(slot), spawned_at, None)
    });
    match spawned {
        Some(handle) => handle,
        None => panic!(
            "mini::spawn_blocking called outside a mini runtime: call it from code running \
             inside `mini::block_on` or `#[mini::main]`"
        ),
    }
}
