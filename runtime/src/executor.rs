//! The executor: the message loop that runs tasks and waits on the reactor.
//!
//! ```text
//!            ┌──────────────────────────────────────────────────────────────┐
//!            ▼                                                              │
//!   1. pop a task from the run queue, poll it (at most                      │
//!      MAX_POLLS_BETWEEN_IO of them; the `block_on` future takes its turn   │
//!      through a stand-in task, `MainTask`)                                 │
//!   2. epoll_wait: timeout 0 if tasks are still queued, else sleep          │
//!      until an fd is ready or another thread rings the eventfd             │
//!   3. readiness ──► wakers ──► tasks pushed onto the run queue ────────────┘
//! ```
//!
//! Wakes arrive two ways. On the runtime thread (the reactor, or one task waking another) a
//! wake is a push onto the run queue: an intrusive list threaded through the tasks' headers
//! (`RunQueue`). From another thread it goes through [`Remote`]: a lock-free queue plus an
//! eventfd write that makes `epoll_wait` return.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::blocking::Pool;
use crate::context;
use crate::coop;
use crate::driver::Driver;
use crate::handle::{Handle, Job};
use crate::loom::{AtomicBool, Doorbell, Ordering, SegQueue};
use crate::reactor::Reactor;
use crate::slab::Slab;
use crate::sys;
use crate::task::{new_task, JoinError, JoinHandle, RunQueue, TaskInfo, TaskRef};
use crate::time::Timers;
use crate::trace::Trace;

/// Task polls between two looks at the reactor. While tasks keep waking each other the run
/// queue never empties, so without this bound the loop would never ask the kernel about new
/// I/O and sockets would starve. 61 is tokio's `event_interval`: a look every few dozen polls
/// keeps latency low and costs one `epoll_wait(0)` per 61 polls.
const MAX_POLLS_BETWEEN_IO: usize = 61;

/// How long the loop looks for a wake from another thread before it sleeps in `epoll_wait`,
/// when its last sleep was ended by one (see `Core::turn`). Sleeping and being woken costs
/// the runtime thread microseconds (3 to 25 measured here: more where the host takes an idle
/// virtual CPU back), so when another thread answers within a microsecond, as a thread in a
/// request/response exchange with a task does, spinning is far cheaper. Only a sleep ended
/// by a remote wake is followed by a spin, so at most 1 µs is spent per such sleep.
pub(crate) const REMOTE_SPIN: Duration = Duration::from_micros(1);

/// The part of a runtime that other threads may touch, through the task wakers.
pub(crate) struct Remote {
    queue: SegQueue<TaskRef>,
    /// Set once the runtime has shut down: a wake that queues a task after that drops the
    /// entry itself (see `schedule`).
    closed: AtomicBool,
    /// True once a wake has rung the eventfd and the loop has not yet drained `queue`:
    /// further remote wakes skip the syscall.
    notified: AtomicBool,
    doorbell: Doorbell,
    /// Spawns from other threads ([`Handle::spawn`]): closures to run on the runtime thread.
    /// `None` once the runtime is gone (see `handle.rs`, invariant 2).
    jobs: Mutex<Option<Vec<Job>>>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").field("queued", &self.queue.len()).finish()
    }
}

impl Remote {
    pub(crate) fn new(doorbell: Doorbell) -> Remote {
        let jobs = Mutex::new(Some(Vec::new()));
        let (queue, closed, notified) = (SegQueue::new(), AtomicBool::new(false), AtomicBool::new(false));
        Remote { queue, closed, notified, doorbell, jobs }
    }

    /// A wake from another thread: queue the task, ring the eventfd unless already rung.
    ///
    /// A task's entry holds a reference to it, and the task holds this `Remote`: an entry
    /// left here would keep both alive forever. The runtime empties the queue when it shuts
    /// down (`close_queue`), and a wake that raced past that finds `closed` and empties it
    /// itself. (`SeqCst` on both sides: one of the two sees the other's write.)
    pub(crate) fn schedule(&self, task: TaskRef) {
        self.queue.push(task);
        self.ring();
        if self.closed.load(Ordering::SeqCst) {
            while let Some(task) = self.queue.pop() {
                drop(task);
            }
        }
    }

    /// The runtime is gone: drop the queued entries, and make later wakes drop theirs.
    pub(crate) fn close_queue(&self) {
        self.closed.store(true, Ordering::SeqCst);
        while let Some(task) = self.queue.pop() {
            drop(task);
        }
    }

    pub(crate) fn ring(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.doorbell.notify();
        }
    }

    /// No user code runs under this lock (jobs run and drop outside it).
    fn jobs(&self) -> MutexGuard<'_, Option<Vec<Job>>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a job for the runtime thread and rings the eventfd, as a wake does; gives the
    /// job back if the runtime is gone. A job pushed after the loop's last `drain` rings
    /// again: `drain` resets `notified` before it takes the jobs, as it does for keys.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        match &mut *self.jobs() {
            Some(jobs) => jobs.push(job),
            None => return Err(job),
        }
        self.ring();
        Ok(())
    }

    /// Whether the runtime is gone (or being dropped): no more jobs are taken.
    pub(crate) fn is_closed(&self) -> bool {
        self.jobs().is_none()
    }

    /// The runtime is being dropped: refuse jobs from now on, and return those still queued
    /// for the caller to drop (outside the lock: dropping a job cancels its task).
    fn close(&self) -> Vec<Job> {
        self.jobs().take().unwrap_or_default()
    }

    /// Takes the queued jobs (after `drain` has reset `notified`).
    fn take_jobs(&self) -> Vec<Job> {
        self.jobs().as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The runtime thread takes every queued task (after the eventfd rang, or the spin saw
    /// one). `notified` is reset *before* the queue is emptied, and with a swap (acquire): a
    /// wake that pushes after the last pop finds `notified` false and rings again, and a task
    /// pushed before a wake that found `notified` still set is visible to the pops below.
    pub(crate) fn drain(&self, mut each: impl FnMut(TaskRef)) {
        self.notified.swap(false, Ordering::AcqRel);
        while let Some(task) = self.queue.pop() {
            each(task);
        }
    }

    /// The eventfd's model, for the loom tests (see `loom.rs`).
    #[cfg(all(test, loom))]
    pub(crate) fn doorbell(&self) -> &Doorbell {
        &self.doorbell
    }

    /// Spins for at most `limit` until another thread rings (a wake, a job, or a wake of the
    /// `block_on` future); true if one came.
    fn wait_briefly(&self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            for _ in 0..16 {
                if self.notified.load(Ordering::Acquire) {
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= limit {
                return false;
            }
        }
    }
}

/// Everything a runtime owns, shared (`Rc`) with the thread-local context while it runs.
pub(crate) struct Core {
    /// Wakes held back until after the next reactor turn (see `coop::poll_proceed`).
    deferred: RefCell<Vec<Waker>>,
    /// `MINI_TRACE`'s tracer; `None` (the usual case) costs one branch per step.
    trace: Trace,
    next_task_id: Cell<u64>,
    slow_poll: SlowPoll,
    main_slow_poll_reported: Cell<bool>,
    pub(crate) reactor: Rc<Reactor>,
    pub(crate) timers: Rc<Timers>,
    /// Every task not yet complete, so that shutdown can cancel them (one reference each).
    tasks: RefCell<Slab<TaskRef>>,
    run_queue: RunQueue,
    pub(crate) remote: Arc<Remote>,
    /// Whether the loop's last sleep in `epoll_wait` was ended by another thread's wake: if
    /// so, the next time it runs out of work it spins briefly for such a wake before it sleeps.
    spin_for_remote: Cell<bool>,
    /// Threads for `spawn_blocking`, started on first use.
    pub(crate) blocking: Pool,
}

impl Core {
    /// A [`Handle`] to this runtime, for other threads.
    pub(crate) fn handle(&self) -> Handle {
        Handle::new(self.remote.clone())
    }

    /// Holds `waker` until after the next reactor turn (a task that spent its budget). A
    /// duplicate costs nothing: the task's `scheduled` flag queues it once.
    pub(crate) fn defer(&self, waker: &Waker) {
        self.deferred.borrow_mut().push(waker.clone());
    }

    /// A wake on the runtime thread: the task joins the back of the run queue.
    #[inline]
    pub(crate) fn push_local(&self, task: TaskRef) {
        if let Some(trace) = self.trace.get() {
            trace.wake(task.traced_info(), None);
        }
        self.run_queue.push(task);
    }

    pub(crate) fn spawn<F>(
        &self,
        future: F,
        spawned_at: &'static Location<'static>,
        name: Option<Box<str>>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = self.next_task_id.get();
        self.next_task_id.set(id + 1);
        let info = TaskInfo::new(id, spawned_at, name);
        let mut tasks = self.tasks.borrow_mut();
        let key = tasks.vacant_key();
        let (listed, queued, handle) = new_task(future, self.remote.clone(), info, key);
        tasks.insert(listed);
        drop(tasks);
        if let Some(trace) = self.trace.get() {
            trace.spawn(queued.info());
            trace.set_wake_source("spawned");
        }
        self.push_local(queued);
        if let Some(trace) = self.trace.get() {
            trace.set_wake_source("task");
        }
        handle
    }

    /// The trace's clock: `Instant::now()` around each poll, read only when tracing is on.
    #[inline]
    fn trace_clock(&self) -> Option<Instant> {
        self.trace.get().map(|_| Instant::now())
    }

    /// Polls `task`, popped from the run queue, unless it completed since it was queued;
    /// `started` is when this poll began (on the slow-poll clock, [`SlowPoll`]). Returns
    /// when it ended, which is also when the next poll starts.
    #[inline]
    fn run_task(&self, task: TaskRef, started: u64) -> u64 {
        let began = self.trace_clock();
        coop::reset(coop::TASK_BUDGET);
        let Some(done) = task.run() else {
            return started; // completed before this wake was processed
        };
        let ended = self.check_slow_poll(started, Some(&task));
        if let (Some(trace), Some(began), Some(end)) = (self.trace.get(), began, self.trace_clock()) {
            trace.poll(Some(task.info()), began, end, done);
            if done {
                trace.finished(task.info());
            }
        }
        if done {
            // The task dropped its future and output itself; the list's reference goes.
            let listed = self.tasks.borrow_mut().remove(task.key());
            drop(listed);
        }
        ended
    }

    /// Reports, once per task, a poll that held the thread longer than the threshold: the
    /// classic mistake of a blocking call inside async code, which stalls every other task.
    /// Returns the poll's end.
    #[inline]
    fn check_slow_poll(&self, started: u64, task: Option<&TaskRef>) -> u64 {
        let now = sys::ticks();
        if now.saturating_sub(started) < self.slow_poll.suspect_ticks {
            return now;
        }
        self.report_slow_poll(started, now, task)
    }

    /// A poll ran for more ticks than any CPU counts in the threshold: time it properly.
    #[cold]
    #[inline(never)]
    fn report_slow_poll(&self, started: u64, now: u64, task: Option<&TaskRef>) -> u64 {
        let took = self.slow_poll.duration(started, now);
        if took < self.slow_poll.threshold {
            return now;
        }
        // The task's info is looked up here, off the hot path (it sits behind the future).
        let who = match task.map(TaskRef::info) {
            Some(info) if info.slow_poll_reported.replace(true) => return now,
            Some(info) => info.to_string(),
            None if self.main_slow_poll_reported.replace(true) => return now,
            None => "the block_on future".to_string(),
        };
        eprintln!(
            "mini: {who} ran for {took:?} in one poll without yielding. While a task runs, no \
             other task or connection on this runtime makes progress: a blocking call inside \
             async code (std::thread::sleep, blocking file or network I/O, a long computation) \
             stalls them all. Move it to mini::spawn_blocking."
        );
        now
    }

    /// One look at the outside world: wait on epoll (not at all if tasks are queued, else
    /// until the next timer is due), then wake the tasks whose fds or timers are ready.
    #[inline]
    fn turn(&self) {
        let busy = !self.run_queue.is_empty() || !self.deferred.borrow().is_empty();
        let mut timeout = if busy {
            Some(Duration::ZERO)
        } else {
            self.timers.next_deadline().map(|d| d.saturating_duration_since(Instant::now()))
        };
        // Where the loop would sleep right after a sleep that another thread's wake ended, it
        // first spins briefly for the next such wake (see `REMOTE_SPIN`).
        let sleeps = timeout != Some(Duration::ZERO);
        let spins = sleeps && self.spin_for_remote.get();
        let caught = spins && self.remote.wait_briefly(REMOTE_SPIN);
        if caught {
            timeout = Some(Duration::ZERO); // still look at the fds, without sleeping
        }
        if let (Some(trace), true) = (self.trace.get(), spins) {
            trace.remote_spin(caught);
        }
        match self.reactor.turn(timeout) {
            Ok(woken_remotely) => {
                if sleeps && !caught {
                    self.spin_for_remote.set(woken_remotely);
                }
                // A caught wake's eventfd write may still be on its way: drain regardless.
                if woken_remotely || caught {
                    self.drain_remote();
                }
            }
            // epoll_wait fails only on programming errors (EBADF, EFAULT, EINVAL).
            Err(e) => panic!("mini: waiting on the kernel ({}) failed: {e}", self.reactor.driver()),
        }
        if self.timers.next_deadline().is_some() {
            let mut due = Vec::new();
            self.timers.fire(Instant::now(), &mut due);
            if let Some(trace) = self.trace.get() {
                trace.set_wake_source("timer");
            }
            // Woken outside the timers' borrow: a woken task may set a new timer at once.
            for (deadline, waker) in due {
                if let Some(trace) = self.trace.get() {
                    trace.timer_fired(deadline);
                }
                waker.wake();
            }
            if let Some(trace) = self.trace.get() {
                trace.set_wake_source("task");
            }
        }
        // Tasks that spent their I/O budget go after everything the reactor just woke.
        if !self.deferred.borrow().is_empty() {
            let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
            deferred.into_iter().for_each(Waker::wake);
        }
    }

    /// Moves the tasks that other threads woke onto the local run queue, then runs the jobs
    /// they sent ([`Handle::spawn`]), which spawn tasks.
    fn drain_remote(&self) {
        self.remote.drain(|task| {
            if let Some(trace) = self.trace.get() {
                trace.wake(task.traced_info(), Some("another thread"));
            }
            self.run_queue.push(task);
        });
        for job in self.remote.take_jobs() {
            job(); // catches its own panics (handle.rs)
        }
    }

    /// Drops every task. Destructors may spawn or wake; keep going until nothing is left.
    fn shutdown(&self) {
        loop {
            let tasks = self.tasks.borrow_mut().drain();
            if tasks.is_empty() {
                break;
            }
            // Each cancel catches the panics of the destructors it runs.
            tasks.iter().for_each(TaskRef::shutdown);
        }
        while self.run_queue.pop().is_some() {}
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        let _ = catch_unwind(AssertUnwindSafe(move || drop(deferred)));
        self.remote.close_queue();
    }
}

/// A single-threaded runtime: one epoll reactor and one run queue.
///
/// Most programs never name it: `#[mini::main]` and [`block_on`] build one for them. Create
/// one yourself to run several `block_on` calls on the same reactor; tasks spawned in one call
/// keep running in the next, and are dropped (destructors run, sockets closed) when the
/// `Runtime` is dropped.
///
/// # Examples
///
/// ```
/// let rt = mini::Runtime::new()?;
/// let answer = rt.block_on(async { mini::spawn(async { 42 }).await.unwrap() });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    core: Rc<Core>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("tasks", &self.core.tasks.borrow().len())
            .field("sources", &self.core.reactor.source_count())
            .field("timers", &self.core.timers.len())
            .field("driver", &self.core.reactor.driver())
            .field("epoll_pwait2", &self.core.reactor.precise_timeouts())
            .finish()
    }
}

impl Runtime {
    /// Creates a runtime with the default settings: the epoll instance and the eventfd for
    /// cross-thread wakes. [`Builder`] changes the settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    fn with(builder: &Builder) -> io::Result<Runtime> {
        let doorbell = Doorbell::new()?;
        let trace = Trace::from_env();
        let driver = builder.driver.unwrap_or_else(Driver::from_env);
        let reactor = Rc::new(Reactor::new(doorbell.as_fd(), trace.clone(), driver)?);
        let remote = Arc::new(Remote::new(doorbell));
        let core = Rc::new(Core {
            reactor,
            timers: Rc::default(),
            tasks: RefCell::new(Slab::new()),
            run_queue: RunQueue::new(),
            remote,
            spin_for_remote: Cell::new(false),
            blocking: Pool::new(),
            trace,
            deferred: RefCell::new(Vec::new()),
            next_task_id: Cell::new(1),
            slow_poll: SlowPoll::new(builder.slow_poll_threshold),
            main_slow_poll_reported: Cell::new(false),
        });
        Ok(Runtime { core })
    }

    /// Runs `future` to completion on this thread, running spawned tasks and I/O meanwhile.
    ///
    /// # Panics
    ///
    /// If called from inside another `block_on` (a task that blocks the loop it runs on
    /// would stall every other task). If `future` panics, the panic passes through.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let core = &self.core;
        let _enter = context::enter_block_on(core);
        // However block_on ends (return or panic), operations outside it are not budgeted.
        let _unbudgeted = Unbudgeted;
        if let Some(trace) = core.trace.get() {
            trace.set_wake_source("block_on started");
        }
        let main = MainTask::new(core);
        if let Some(trace) = core.trace.get() {
            trace.set_wake_source("task");
        }
        let waker = main.0.waker();
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);

        loop {
            // One clock read per poll: each poll's end is the next one's start.
            let mut started = sys::ticks();
            for _ in 0..MAX_POLLS_BETWEEN_IO {
                let Some(task) = core.run_queue.pop() else { break };
                if core.trace.get().is_some() {
                    started = sys::ticks(); // leave the trace's own output out of poll times
                }
                if !task.ptr_eq(&main.0) {
                    started = core.run_task(task, started);
                    continue;
                }
                let began = core.trace_clock();
                task.start_poll();
                coop::reset(coop::TASK_BUDGET);
                let poll = future.as_mut().poll(&mut cx);
                let ended = core.check_slow_poll(started, None);
                if let (Some(trace), Some(began), Some(end)) = (core.trace.get(), began, core.trace_clock()) {
                    trace.poll(None, began, end, poll.is_ready());
                }
                if let Poll::Ready(output) = poll {
                    return output;
                }
                started = ended;
            }
            core.turn();
        }
    }

    /// A [`Handle`] to this runtime: `Send + Sync`, to spawn onto it from other threads.
    pub fn handle(&self) -> Handle {
        self.core.handle()
    }

    /// The driver this runtime's reactor runs: [`Driver::Epoll`] or [`Driver::IoUring`]
    /// (never `Auto`: that has been resolved, and a refused io_uring has fallen back).
    pub fn driver(&self) -> Driver {
        self.core.reactor.driver()
    }

    /// The number of tasks that have not finished yet.
    pub fn alive_tasks(&self) -> usize {
        self.core.tasks.borrow().len()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Task destructors may spawn or create sockets: let them find this runtime.
        let _enter = context::enter_for_shutdown(&self.core);
        // Handles spawn no more; the jobs they queued are dropped, cancelling their tasks.
        let jobs = self.core.remote.close();
        let _ = catch_unwind(AssertUnwindSafe(move || drop(jobs)));
        self.core.shutdown();
        // Idle pool threads exit now and are joined; busy ones finish their closure, unwaited for.
        self.core.blocking.shutdown();
        if let Some(trace) = self.core.trace.get() {
            trace.finish();
        }
    }
}

/// The slow-poll check's clock and threshold.
///
/// The clock is [`sys::ticks`], read once per poll (each poll's end is the next one's start):
/// on x86_64 the time-stamp counter, one instruction, where the coarse clock cost about 35
/// (a vDSO call) and doubled as much per echo round trip. Its rate is unknown, so a poll is
/// first compared with the threshold in ticks at the slowest rate any CPU counts
/// (`suspect_ticks`); only a poll over that is converted to time, at the rate measured since
/// the runtime was created, and reported if it really exceeds the threshold. (The trace wants
/// microseconds: it reads `Instant` around each poll, only when it is on.)
#[derive(Debug)]
struct SlowPoll {
    /// `u64::MAX` when the check is off.
    suspect_ticks: u64,
    threshold: Duration,
    /// When the runtime was created, on both clocks.
    origin: (u64, Instant),
}

impl SlowPoll {
    fn new(threshold: Option<Duration>) -> SlowPoll {
        let suspect_ticks =
            threshold.map_or(u64::MAX, |t| (t.as_nanos() as f64 * sys::MIN_TICKS_PER_NS) as u64);
        SlowPoll {
            suspect_ticks,
            threshold: threshold.unwrap_or(Duration::MAX),
            origin: (sys::ticks(), Instant::now()),
        }
    }

    /// How long the ticks from `started` to `now` took.
    fn duration(&self, started: u64, now: u64) -> Duration {
        let per_ns =
            now.saturating_sub(self.origin.0) as f64 / self.origin.1.elapsed().as_nanos().max(1) as f64;
        Duration::from_secs_f64(now.saturating_sub(started) as f64 / per_ns.max(f64::MIN_POSITIVE) / 1e9)
    }
}

/// Settings for a [`Runtime`].
///
/// ```
/// use std::time::Duration;
///
/// let rt = mini::Builder::new().slow_poll_threshold(Some(Duration::from_millis(10))).build()?;
/// rt.block_on(async { /* ... */ });
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// The same settings start several runtimes, one per thread, with [`Builder::run`].
#[derive(Debug, Clone)]
pub struct Builder {
    slow_poll_threshold: Option<Duration>,
    /// `None`: what `MINI_DRIVER` says, else epoll.
    driver: Option<Driver>,
    /// For `run`: `None` means one per CPU the process may use.
    workers: Option<usize>,
    pin_to_cores: bool,
}

/// The default slow-poll threshold. A poll normally takes microseconds; 100 ms is far beyond
/// any honest one, yet short enough that a user notices the stall it reports.
pub const DEFAULT_SLOW_POLL_THRESHOLD: Duration = Duration::from_millis(100);

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// The default settings.
    pub fn new() -> Builder {
        Builder {
            slow_poll_threshold: Some(DEFAULT_SLOW_POLL_THRESHOLD),
            driver: None,
            workers: None,
            pin_to_cores: false,
        }
    }

    /// When one poll of a task takes longer than `threshold`, print a warning to stderr,
    /// once per task, naming the task and where it was spawned: a blocking call inside async
    /// code stalls every connection. `None` turns the warning off. Default:
    /// [`DEFAULT_SLOW_POLL_THRESHOLD`] (100 ms).
    pub fn slow_poll_threshold(&mut self, threshold: Option<Duration>) -> &mut Builder {
        self.slow_poll_threshold = threshold;
        self
    }

    /// The kernel interface of the runtime's reactor: epoll or io_uring (see [`Driver`]).
    /// Without this call, the environment variable `MINI_DRIVER` (`epoll`, `uring`, `auto`)
    /// decides, and epoll is the default. A refused io_uring falls back to epoll with one line
    /// on stderr; [`Runtime::driver`] tells which one the runtime got.
    pub fn driver(&mut self, driver: Driver) -> &mut Builder {
        self.driver = Some(driver);
        self
    }

    /// Creates the runtime.
    pub fn build(&self) -> io::Result<Runtime> {
        Runtime::with(self)
    }

    /// How many workers [`run`](Builder::run) starts. Default: the number of CPUs this
    /// process may use (`std::thread::available_parallelism`, which reads the affinity mask,
    /// so `taskset -c 0,1` gives 2).
    pub fn workers(&mut self, n: usize) -> &mut Builder {
        self.workers = Some(n);
        self
    }

    /// Whether [`run`](Builder::run) pins each worker's thread to one CPU: worker `i` to the
    /// `i`-th CPU of the process's affinity mask (wrapping around when there are more workers
    /// than CPUs). Pinning keeps a worker's caches warm and its connections' softirq work
    /// predictable; it hurts when other busy programs share those CPUs. Default: `false`.
    pub fn pin_to_cores(&mut self, pin: bool) -> &mut Builder {
        self.pin_to_cores = pin;
        self
    }

    /// Starts the [`workers`](Builder::workers): one thread each, each with its own
    /// [`Runtime`] built with these settings, each running `f(worker)` with
    /// [`block_on`](Runtime::block_on). Returns when every worker's future has returned,
    /// with their outputs in worker order.
    ///
    /// The runtimes share nothing: a task stays on the worker that spawned it, and its future
    /// need not be `Send` (only `f` and the outputs cross threads). A worker reaches another
    /// with [`Worker::handle`](crate::Worker::handle).
    ///
    /// **A worker whose future panics** gives `Err(JoinError::Panic(payload))`, and the
    /// shared [`Worker::shutdown`](crate::Worker::shutdown) is triggered: the others are told
    /// to stop through `worker.shutdown()`; a worker that never awaits it keeps running, and
    /// `run` waits for it.
    ///
    /// # Errors
    ///
    /// If `workers(0)` was set, if a thread or a runtime cannot be created, or pinning
    /// fails; then no worker's future runs.
    ///
    /// # Examples
    ///
    /// ```
    /// let results = mini::Builder::new().workers(3).run(|worker: mini::Worker| async move {
    ///     // Each worker runs this on its own thread and its own runtime.
    ///     let local = mini::spawn(async move { worker.index() + 1 });
    ///     local.await.unwrap()
    /// })?;
    /// let outputs: Vec<usize> = results.into_iter().map(|r| r.unwrap()).collect();
    /// assert_eq!(outputs, [1, 2, 3]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run<W, F>(&self, f: W) -> io::Result<Vec<Result<F::Output, JoinError>>>
    where
        W: Fn(crate::Worker) -> F + Send + Sync + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let count = self.workers.unwrap_or_else(crate::workers::default_count);
        crate::workers::run(self, count, self.pin_to_cores, f)
    }
}

/// The stand-in task of `block_on`'s own future, which borrows from the caller's stack and so
/// cannot be a task itself. It is a task allocation whose future never runs: its `Waker`
/// queues it like any task's, and when the loop pops it, it polls `block_on`'s future
/// instead. So that future takes its turn in the run queue's order, as every task does.
/// When `block_on` ends the stand-in is completed, so a late wake queues nothing.
struct MainTask(TaskRef);

impl MainTask {
    /// Creates the stand-in, queued (the future's first poll).
    fn new(core: &Core) -> MainTask {
        let info = TaskInfo::new(0, Location::caller(), None);
        let (listed, queued, handle) =
            new_task(std::future::pending::<()>(), core.remote.clone(), info, u64::MAX);
        drop(handle);
        core.push_local(queued);
        MainTask(listed)
    }
}

impl Drop for MainTask {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Restores the unlimited budget of code outside any poll, when `block_on` ends.
struct Unbudgeted;

impl Drop for Unbudgeted {
    fn drop(&mut self) {
        coop::reset(u32::MAX);
    }
}

/// Builds a [`Runtime`], runs `future` on it, and drops the runtime, and with it every task
/// still running. This is what `#[mini::main]` expands to.
///
/// # Panics
///
/// If the runtime cannot be created (no fds left for epoll), or as [`Runtime::block_on`].
///
/// # Examples
///
/// ```
/// let n = mini::block_on(async {
///     mini::yield_now().await;
///     1 + 1
/// });
/// assert_eq!(n, 2);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let rt = Runtime::new().unwrap_or_else(|e| panic!("mini: failed to create the runtime: {e}"));
    rt.block_on(future)
}

/// Spawns a task onto the current runtime. It starts on the runtime's next turn and runs
/// until it finishes, is aborted, or the runtime is dropped.
///
/// The future need not be `Send`: mini runs every task on the one thread.
///
/// # Panics
///
/// If called outside a mini runtime (outside `block_on` / `#[mini::main]`).
///
/// # Examples
///
/// ```
/// mini::block_on(async {
///     let a = mini::spawn(async { 1 });
///     let b = mini::spawn(async { 2 });
///     assert_eq!(a.await.unwrap() + b.await.unwrap(), 3);
/// });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_with(future, Location::caller(), None)
}

fn spawn_with<F>(
    future: F,
    spawned_at: &'static Location<'static>,
    name: Option<Box<str>>,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match context::with_current(|core| core.spawn(future, spawned_at, name)) {
        Some(handle) => handle,
        None => panic!(
            "mini::spawn called outside a mini runtime: call it from code running inside \
             `mini::block_on` or `#[mini::main]`"
        ),
    }
}

/// Spawns a task with options: for now, a name, which shows in `MINI_TRACE` traces and in
/// the slow-poll warning.
///
/// ```
/// mini::block_on(async {
///     let handle = mini::task::Builder::new().name("conn-42").spawn(async { 42 });
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
#[derive(Debug, Default, Clone)]
pub struct TaskBuilder {
    name: Option<Box<str>>,
}

impl TaskBuilder {
    /// No options set.
    pub fn new() -> TaskBuilder {
        TaskBuilder::default()
    }

    /// Names the task, so traces read like the program ("conn-42", "accept loop").
    pub fn name(mut self, name: impl Into<String>) -> TaskBuilder {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Spawns `future` as [`spawn`] does.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_with(future, Location::caller(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::mpsc;
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    /// Runs `f` on its own thread and fails instead of hanging if it does not finish.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(f()).unwrap());
        rx.recv_timeout(Duration::from_secs(30)).expect("the runtime hung")
    }

    #[test]
    fn the_spin_sees_a_queued_wake_and_gives_up_when_none_comes() {
        let remote = Runtime::new().unwrap().core.remote.clone();
        assert!(!remote.wait_briefly(REMOTE_SPIN), "nothing was queued");
        remote.ring();
        assert!(remote.wait_briefly(Duration::MAX), "a queued wake must end the spin at once");
    }

    /// The spin lasts its limit: a wake that another thread queues while it spins ends it.
    #[test]
    fn the_spin_waits_for_a_wake_that_comes_while_it_spins() {
        let remote = Runtime::new().unwrap().core.remote.clone();
        let queuer = {
            let remote = remote.clone();
            std::thread::spawn(move || remote.ring())
        };
        assert!(remote.wait_briefly(Duration::from_secs(30)), "the wake came within the limit");
        queuer.join().unwrap();
    }

    /// When `block_on` returns, its future's waker goes dead: a late wake must not poll the
    /// next `block_on`'s future of the same runtime.
    #[test]
    fn a_late_wake_of_a_finished_block_on_polls_nothing() {
        let rt = Runtime::new().unwrap();
        let stale = rt.block_on(poll_fn(|cx| Poll::Ready(cx.waker().clone())));
        stale.wake();
        let mut polls = 0;
        let mut timer = crate::time::sleep(Duration::from_millis(50));
        let polls = rt.block_on(poll_fn(|cx| {
            polls += 1;
            // Pending until the timer fires: its wake is the one wake this future expects.
            std::pin::Pin::new(&mut timer).poll(cx).map(|()| polls)
        }));
        assert_eq!(polls, 2, "the first poll, then the timer's wake: no poll for the stale wake");
    }

    /// Since issue 13 each `block_on` has a stand-in task of its own, so a stale wake can no
    /// longer poll the next call's future (the test above), only the old stand-in: dropping
    /// the stand-in must complete it, so that a late wake of the finished `block_on`'s waker
    /// queues nothing at all.
    #[test]
    fn a_finished_block_ons_stand_in_is_complete_and_late_wakes_queue_nothing() {
        let rt = Runtime::new().unwrap();
        let main = MainTask::new(&rt.core);
        let queued = rt.core.run_queue.pop().expect("the stand-in starts out queued");
        assert!(queued.ptr_eq(&main.0));
        queued.start_poll(); // as block_on does before it polls its future
        let (stale, task) = (main.0.waker(), main.0.clone_ref());
        drop(main);
        assert!(task.is_complete(), "block_on's end completes its stand-in");
        stale.wake();
        assert!(rt.core.remote.queue.is_empty() && rt.core.run_queue.is_empty(), "a late wake queued it");
    }

    /// The slow-poll clock turns ticks into time at the rate it measures: an interval timed
    /// by it and by `Instant` agrees within a factor of two (the check only needs to tell
    /// microsecond polls from 100 ms ones). Busy-waits rather than sleeps, so that the
    /// interval is known to be about 20 ms of the process's time, not the scheduler's.
    #[test]
    fn the_slow_poll_clock_converts_ticks_at_the_measured_rate() {
        let clock = SlowPoll::new(Some(Duration::from_millis(100)));
        let (started, t0) = (sys::ticks(), Instant::now());
        while t0.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let (now, real) = (sys::ticks(), t0.elapsed());
        let measured = clock.duration(started, now);
        assert!(measured > real / 2 && measured < real * 2, "{measured:?} by ticks, {real:?} by Instant");
        assert!(clock.suspect_ticks <= (100e6 * sys::MIN_TICKS_PER_NS) as u64);
    }

    /// Task ids are unique within a runtime (traces and the slow-poll warning name them).
    #[test]
    fn each_task_gets_its_own_id() {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let handles: Vec<_> = (0..3).map(|_| crate::spawn(std::future::pending::<()>())).collect();
            let tasks = rt.core.tasks.borrow();
            // A fresh slab hands out the keys 0, 1, 2 (index 0..3, generation 0).
            let ids: Vec<u64> = (0..3).map(|key| tasks.get(key).unwrap().info().id).collect();
            assert_eq!(ids, [1, 2, 3]);
            drop(handles);
        });
    }

    /// A wake that the spin catches may not have written the eventfd yet (the other thread
    /// is between its `notified` swap and its write), so no epoll event announces it: the
    /// loop must drain the remote queue on the spin's word alone.
    #[test]
    fn a_wake_caught_by_the_spin_runs_without_its_eventfd_write() {
        let polls = within_seconds(|| {
            let rt = Runtime::new().unwrap();
            let core = rt.core.clone();
            rt.block_on(async {
                let polls = Rc::new(Cell::new(0));
                let task = {
                    let polls = polls.clone();
                    crate::spawn(poll_fn(move |_| {
                        polls.set(polls.get() + 1);
                        if polls.get() > 1 {
                            Poll::Ready(())
                        } else {
                            Poll::Pending // parked, with no waker kept: only the wake below
                        }
                    }))
                };
                crate::yield_now().await; // the task's first poll
                assert_eq!(polls.get(), 1);
                // As after a sleep that another thread's wake ended, with a second remote
                // wake half done: the task queued and `notified` set, the eventfd not written.
                let queued = core.tasks.borrow().get(0).unwrap().clone_ref();
                assert!(queued.mark_scheduled());
                core.spin_for_remote.set(true);
                core.remote.notified.store(true, Ordering::SeqCst);
                core.remote.queue.push(queued);
                task.await.unwrap();
                polls.get()
            })
        });
        assert_eq!(polls, 2);
    }

    /// The spin follows only a sleep that a remote wake ended: a sleep ended by a timer turns
    /// it off, so a runtime that only waits on timers and sockets never spins.
    #[test]
    fn a_sleep_ended_by_a_timer_turns_the_spin_off() {
        let rt = Runtime::new().unwrap();
        rt.core.spin_for_remote.set(true);
        rt.block_on(crate::time::sleep(Duration::from_millis(1)));
        assert!(!rt.core.spin_for_remote.get());
    }

    /// A sleep that a remote wake ended turns the spin on. Whether the wake arrives before
    /// the loop enters `epoll_wait` or while it waits there, the eventfd's edge ends the wait.
    #[test]
    fn a_sleep_ended_by_a_remote_wake_turns_the_spin_on() {
        let rt = Runtime::new().unwrap();
        let (tx, rx) = mpsc::channel::<Waker>();
        let waker_thread = std::thread::spawn(move || rx.recv().unwrap().wake());
        let mut sent = false;
        rt.block_on(poll_fn(|cx| {
            if sent {
                return Poll::Ready(());
            }
            sent = true;
            tx.send(cx.waker().clone()).unwrap();
            Poll::Pending
        }));
        waker_thread.join().unwrap();
        assert!(rt.core.spin_for_remote.get());
    }
}
