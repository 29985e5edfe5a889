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
//!   collect n handles      ◄──     send Ok(handle) or Err(io::Error)
//!   send all handles       ──►     (or None: another worker failed, so return at once)
//!   join in index order    ◄──     block_on(f(worker)), catching a panic
//! ```

use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
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

/// The body of [`Builder::run`]; see there.
pub(crate) fn run<W, F>(
    builder: &Builder,
    count: usize,
    pin: bool,
    f: W,
) -> io::Result<Vec<Result<F::Output, JoinError>>>
where
    W: Fn(Worker) -> F + Send + Sync + 'static,
    F: std::future::Future + 'static,
    F::Output: Send + 'static,
{
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
    let f = Arc::new(f);
    let shutdown = Shutdown::new();
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, io::Result<Handle>)>();
    let mut threads = Vec::with_capacity(count);
    let mut starts = Vec::with_capacity(count);
    for index in 0..count {
        let (start_tx, start_rx) = mpsc::channel::<Option<Arc<[Handle]>>>();
        let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
        let (builder, f, shutdown, ready_tx) =
            (builder.clone(), f.clone(), shutdown.clone(), ready_tx.clone());
        let spawned = thread::Builder::new().name(format!("mini-worker-{index}")).spawn(move || {
            let runtime =
                cpu.map_or(Ok(()), sys::affinity::pin_current_thread).and_then(|()| builder.build());
            let runtime = match runtime {
                Ok(runtime) => {
                    let _ = ready_tx.send((index, Ok(runtime.handle())));
                    runtime
                }
                Err(e) => {
                    let _ = ready_tx.send((index, Err(e)));
                    return None;
                }
            };
            drop(ready_tx);
            // `None`, or a closed channel: another worker could not start, so none runs.
            let handles = start_rx.recv().ok().flatten()?;
            let worker = Worker { index, cpu, handles, shutdown: shutdown.clone() };
            let result = catch_unwind(AssertUnwindSafe(move || {
                let output = runtime.block_on(f(worker));
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
        });
        match spawned {
            Ok(thread) => {
                threads.push(thread);
                starts.push(start_tx);
            }
            Err(e) => {
                // Dropping `starts` tells the threads already started to return.
                drop(starts);
                join_all(threads);
                return Err(e);
            }
        }
    }
    drop(ready_tx);

    let mut handles: Vec<Option<Handle>> = vec![None; count];
    let mut failure = None;
    for _ in 0..count {
        match ready_rx.recv() {
            Ok((index, Ok(handle))) => handles[index] = Some(handle),
            Ok((index, Err(e))) => {
                failure.get_or_insert(io::Error::new(
                    e.kind(),
                    format!("mini: worker {index} could not start: {e}"),
                ));
            }
            // A thread died before reporting (it cannot panic there, but be exact anyway).
            Err(_) => {
                failure.get_or_insert(io::Error::other("mini: a worker thread ended before starting"));
                break;
            }
        }
    }
    if let Some(e) = failure {
        drop(starts);
        join_all(threads);
        return Err(e);
    }
    let handles: Arc<[Handle]> = handles.into_iter().map(|h| h.expect("every worker reported")).collect();
    for start in &starts {
        let _ = start.send(Some(handles.clone()));
    }
    drop(handles);

    Ok(threads
        .into_iter()
        .map(|thread| match thread.join() {
            Ok(Some(result)) => result,
            // Unreachable after a successful start; reported rather than asserted.
            Ok(None) => Err(JoinError::Cancelled),
            // The thread panicked outside the caught region (not expected: reported as such).
            Err(payload) => Err(JoinError::Panic(payload)),
        })
        .collect())
}

/// Joins threads that were told not to run their futures.
fn join_all<T>(threads: Vec<thread::JoinHandle<T>>) {
    for thread in threads {
        let _ = thread.join();
    }
}
