//! Workers: one single-threaded runtime per thread, started by [`Builder::run`].
//!
//! Each worker owns its runtime and shares nothing with the others: no task ever moves between
//! them (see docs/DESIGN.md, "Many cores"). What they do share is explicit: the [`Handle`]s of
//! all the workers' runtimes, to send work to a chosen one, and one [`Shutdown`].
//!
//! Start-up runs in two phases, so that every worker can see every other's handle before its
//! future starts:
//!
//! ```text
//!   run()                          worker thread i
//!   ─────                          ───────────────
//!   spawn n threads        ──►     pin (optional), build its Runtime
//!   wait for n reports     ◄──     report Ok(handle) or Err(io::Error)
//!   decide: all handles    ──►     (or None: another worker failed, so return at once)
//!   join in index order    ◄──     block_on(f(worker)), catching a panic
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use crate::executor::Builder;
use crate::handle::Handle;
use crate::shutdown::Shutdown;
use crate::sys;
use crate::task::JoinError;

/// What one worker of [`Builder::run`] knows: its place among the workers, the others'
/// handles, and the shutdown signal they share.
///
/// # Examples
///
/// ```
/// let results = mini::Builder::new().workers(2).run(|worker: mini::Worker| async move {
///     assert_eq!(worker.count(), 2);
///     worker.index() * 10
/// })?;
/// let outputs: Vec<usize> = results.into_iter().map(|r| r.unwrap()).collect();
/// assert_eq!(outputs, [0, 10]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Worker {
    index: usize,
    cpu: Option<usize>,
    handles: Arc<[Handle]>,
    shutdown: Shutdown,
}

impl Worker {
    /// This worker's number, from 0 to [`count`](Worker::count)` - 1`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many workers this [`Builder::run`] started.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// The CPU this worker's thread is pinned to, with
    /// [`Builder::pin_to_cores`]`(true)`; `None` when it is not pinned.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// The [`Handle`] of worker `index`'s runtime: `worker.handle(i).spawn(future)` runs
    /// `future` on worker `i`'s thread. Once that worker's future has returned, its runtime
    /// is gone and such a task gives [`JoinError::Cancelled`].
    ///
    /// # Panics
    ///
    /// If `index >= self.count()`.
    pub fn handle(&self, index: usize) -> Handle {
        match self.handles.get(index) {
            Some(handle) => handle.clone(),
            None => panic!("mini: no worker {index} (there are {})", self.handles.len()),
        }
    }

    /// The shutdown signal shared by every worker of this [`Builder::run`]. It is triggered
    /// when a worker's future panics; a program triggers it too, say on SIGTERM, and each
    /// worker awaits [`triggered`](Shutdown::triggered) to stop.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("count", &self.count())
            .field("cpu", &self.cpu)
            .finish()
    }
}

/// The number of workers [`Builder::run`] starts when none was set: the CPUs this process
/// may use (`available_parallelism` reads the affinity mask and cgroup quota), at least 1.
pub(crate) fn default_count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// One worker's body with its types erased: it calls the user's closure and boxes the
/// future's output.
///
/// Only [`run`] is generic, and it does no more than build this; the threads, the start-up
/// rendezvous and `block_on` of the boxed future are compiled once, here, instead of once
/// per program that calls [`Builder::run`] (this halved the `--workers` cost in the
/// `echo_server` example's clean build; see docs/PERFORMANCE.md). The price is one box per
/// worker and a virtual call per poll of each worker's top future, which only the worker's
/// own loop pays, never its spawned tasks.
type Body = Arc<dyn Fn(Worker) -> Pin<Box<dyn Future<Output = Box<dyn Any + Send>>>> + Send + Sync>;

/// What [`run_erased`] gives back per worker: the boxed output, or how it failed.
type ErasedResult = Result<Box<dyn Any + Send>, JoinError>;

/// The body of [`Builder::run`]; see there.
pub(crate) fn run<W, F>(
    builder: &Builder,
    count: usize,
    pin: bool,
    f: W,
) -> io::Result<Vec<Result<F::Output, JoinError>>>
where
    W: Fn(Worker) -> F + Send + Sync + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let body: Body = Arc::new(move |worker| {
        let future = f(worker);
        Box::pin(async move { Box::new(future.await) as Box<dyn Any + Send> })
    });
    let erased = run_erased(builder, count, pin, body)?;
    // A loop rather than an iterator chain: less code for each caller's output type.
    let mut results = Vec::with_capacity(erased.len());
    for result in erased {
        results.push(result.map(|output| match output.downcast::<F::Output>() {
            Ok(output) => *output,
            Err(_) => unreachable!("mini: a worker's output has the type its body boxed"),
        }));
    }
    Ok(results)
}

/// [`run`] without the types: starts the threads, lets them meet, runs them, joins them.
fn run_erased(builder: &Builder, count: usize, pin: bool, body: Body) -> io::Result<Vec<ErasedResult>> {
    if count == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "mini: workers(0): at least one worker is needed",
        ));
    }
    // The CPUs to pin to, read once here (the caller's mask), so worker i gets the i-th
    // allowed CPU, wrapping when there are more workers than CPUs.
    let cpus = if pin { sys::affinity::allowed_cpus()? } else { Vec::new() };
    if pin && cpus.is_empty() {
        return Err(io::Error::other("mini: pin_to_cores: the affinity mask allows no CPU"));
    }
    let startup = Arc::new(Startup::new(count));
    let shutdown = Shutdown::new();
    let mut threads = Vec::with_capacity(count);
    for index in 0..count {
        let thread = WorkerThread {
            index,
            cpu: (!cpus.is_empty()).then(|| cpus[index % cpus.len()]),
            builder: builder.clone(),
            body: body.clone(),
            shutdown: shutdown.clone(),
            startup: startup.clone(),
        };
        match thread::Builder::new().name(format!("mini-worker-{index}")).spawn(move || thread.main()) {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                // The threads already started learn that none runs, and return.
                startup.decide(None);
                join_all(threads);
                return Err(e);
            }
        }
    }
    match startup.wait_for_reports() {
        Ok(handles) => startup.decide(Some(handles)),
        Err(e) => {
            startup.decide(None);
            join_all(threads);
            return Err(e);
        }
    }

    let mut results = Vec::with_capacity(count);
    for thread in threads {
        results.push(match thread.join() {
            Ok(Some(result)) => result,
            // Unreachable after a successful start; reported rather than asserted.
            Ok(None) => Err(JoinError::Cancelled),
            // The thread panicked outside the caught region (not expected: reported as such).
            Err(payload) => Err(JoinError::Panic(payload)),
        });
    }
    Ok(results)
}

/// Everything one worker thread starts with.
struct WorkerThread {
    index: usize,
    cpu: Option<usize>,
    builder: Builder,
    body: Body,
    shutdown: Shutdown,
    startup: Arc<Startup>,
}

impl WorkerThread {
    /// The thread's code: pin, build the runtime, report, wait for the others, run the body.
    /// `None` when the workers did not all start (so this one never ran its future).
    fn main(self) -> Option<ErasedResult> {
        let WorkerThread { index, cpu, builder, body, shutdown, startup } = self;
        // A panic here (none is expected) counts as a failed start, not as a silent thread
        // death that the others would wait for.
        let built = catch_unwind(AssertUnwindSafe(|| {
            cpu.map_or(Ok(()), sys::affinity::pin_current_thread).and_then(|()| builder.build())
        }));
        let runtime = match built {
            Ok(Ok(runtime)) => runtime,
            Ok(Err(e)) => {
                startup.report(index, Err(e));
                return None;
            }
            Err(_) => {
                startup.report(index, Err(io::Error::other("the thread panicked while starting")));
                return None;
            }
        };
        // `None`: another worker could not start, so none runs.
        let handles = startup.report(index, Ok(runtime.handle()))?;
        let worker = Worker { index, cpu, handles, shutdown: shutdown.clone() };
        let result = catch_unwind(AssertUnwindSafe(move || {
            let output = runtime.block_on(body(worker));
            // Dropped inside the catch too: dropping the runtime drops the tasks still
            // running, and a panic there is this worker's failure, not the thread's.
            drop(runtime);
            output
        }));
        Some(result.map_err(|payload| {
            // Tell the others to stop: they learn it through `worker.shutdown()`.
            shutdown.trigger();
            JoinError::Panic(payload)
        }))
    }
}

/// The start-up rendezvous: each worker reports its handle (or why it could not start),
/// [`run_erased`] waits for every report, then decides for all of them. A `Mutex` and a
/// `Condvar` rather than channels, whose code is several times larger for the same job.
struct Startup {
    state: Mutex<StartState>,
    changed: Condvar,
}

struct StartState {
    /// Worker i's handle, once it reported one.
    handles: Vec<Option<Handle>>,
    /// How many workers reported, with a handle or an error.
    reported: usize,
    /// The first start-up error, already saying which worker it was.
    failure: Option<io::Error>,
    /// `None` until decided; then `Some(Some(all handles))`: run, or `Some(None)`: return.
    decision: Option<Option<Arc<[Handle]>>>,
}

impl Startup {
    fn new(count: usize) -> Startup {
        let handles = (0..count).map(|_| None).collect();
        let state = StartState { handles, reported: 0, failure: None, decision: None };
        Startup { state: Mutex::new(state), changed: Condvar::new() }
    }

    /// The state, even after a panic elsewhere while it was held: no code panics while
    /// holding it, and each change leaves it consistent anyway.
    fn lock(&self) -> MutexGuard<'_, StartState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Worker `index` reports; with a handle, it then waits for the decision and returns
    /// every worker's handles, or `None` if the workers are not to run.
    fn report(&self, index: usize, started: io::Result<Handle>) -> Option<Arc<[Handle]>> {
        let mut state = self.lock();
        state.reported += 1;
        self.changed.notify_all();
        match started {
            Ok(handle) => state.handles[index] = Some(handle),
            Err(e) => {
                let e = io::Error::new(e.kind(), format!("mini: worker {index} could not start: {e}"));
                state.failure.get_or_insert(e);
                return None;
            }
        }
        loop {
            if let Some(decision) = &state.decision {
                return decision.clone();
            }
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until every worker reported: all the handles, or the first error.
    fn wait_for_reports(&self) -> io::Result<Arc<[Handle]>> {
        let mut state = self.lock();
        while state.reported < state.handles.len() {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(e) = state.failure.take() {
            return Err(e);
        }
        Ok(state.handles.iter_mut().map(|h| h.take().expect("every worker reported a handle")).collect())
    }

    /// Tells every worker waiting in [`report`](Startup::report) what to do.
    fn decide(&self, decision: Option<Arc<[Handle]>>) {
        self.lock().decision = Some(decision);
        self.changed.notify_all();
    }
}

/// Joins threads that were told not to run their futures.
fn join_all(threads: Vec<thread::JoinHandle<Option<ErasedResult>>>) {
    for thread in threads {
        let _ = thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Fails the test instead of hanging if the rendezvous never lets `f` finish.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(10)).expect("the start-up rendezvous hung")
    }

    fn handle() -> Handle {
        Builder::new().build().expect("a runtime").handle()
    }

    #[test]
    fn every_worker_gets_all_handles_in_index_order() {
        let startup = Arc::new(Startup::new(3));
        let (handles, got) = within_seconds({
            let startup = startup.clone();
            move || {
                let made: Vec<Handle> = (0..3).map(|_| handle()).collect();
                // Reported out of order: each lands in its own slot.
                let reporters: Vec<_> = [2, 0, 1]
                    .into_iter()
                    .map(|i| {
                        let (startup, h) = (startup.clone(), made[i].clone());
                        thread::spawn(move || startup.report(i, Ok(h)))
                    })
                    .collect();
                let handles = startup.wait_for_reports().expect("no worker failed");
                startup.decide(Some(handles.clone()));
                let got: Vec<_> = reporters.into_iter().map(|r| r.join().unwrap()).collect();
                (handles, (made, got))
            }
        });
        let (made, got) = got;
        for (a, b) in handles.iter().zip(&made) {
            assert!(a.same_runtime(b), "the handles keep the workers' order");
        }
        for received in got {
            assert!(Arc::ptr_eq(&received.expect("told to run"), &handles));
        }
    }

    #[test]
    fn one_failed_start_stops_every_worker_and_names_the_worker() {
        let startup = Arc::new(Startup::new(2));
        let (err, others) = within_seconds({
            let startup = startup.clone();
            move || {
                let ok = {
                    let (startup, h) = (startup.clone(), handle());
                    thread::spawn(move || startup.report(0, Ok(h)))
                };
                let failed = startup.report(1, Err(io::Error::new(io::ErrorKind::OutOfMemory, "no fds")));
                assert!(failed.is_none(), "a worker that failed does not wait");
                let err = startup.wait_for_reports().expect_err("worker 1 failed");
                startup.decide(None);
                (err, ok.join().unwrap())
            }
        });
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(err.to_string(), "mini: worker 1 could not start: no fds");
        assert!(others.is_none(), "the worker that started is told not to run");
    }
}
