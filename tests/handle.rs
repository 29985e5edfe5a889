//! `mini::runtime::Handle` and `mini::task::LocalSpawner`, black-box: spawning from other
//! threads onto a sleeping runtime, awaiting and aborting from any thread, panics, a runtime
//! that is gone, `spawn_blocking` getting back onto the loop, and the `futures-task` traits.
//!
//! Every wait is on a channel or a task's handle, under `within_hang_guard`: a lost job or
//! wake fails the test instead of hanging it.

mod util;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::thread;

use futures_task::{FutureObj, LocalFutureObj, LocalSpawn, Spawn};
use mini::runtime::{Handle, SendJoinHandle};
use mini::task::LocalSpawner;
use mini::Runtime;

use util::within_hang_guard;

/// Counts its drops, and the thread it was dropped on.
struct DropProbe {
    drops: Arc<AtomicUsize>,
    dropped_on: mpsc::Sender<thread::ThreadId>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        let _ = self.dropped_on.send(thread::current().id());
    }
}

/// A future that never completes and owns a probe.
async fn pending_with(probe: DropProbe) {
    let _probe = probe;
    std::future::pending::<()>().await
}

fn probe() -> (DropProbe, Arc<AtomicUsize>, mpsc::Receiver<thread::ThreadId>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    (DropProbe { drops: drops.clone(), dropped_on: tx }, drops, rx)
}

/// Spawns a never-ending task through a handle and lets it run once, so that it is parked
/// (not merely queued) when the caller goes on.
// The block returns the task's handle unawaited on purpose: it is awaited later, elsewhere.
#[allow(clippy::async_yields_async)]
fn running_and_parked(rt: &Runtime, probe: DropProbe) -> SendJoinHandle<()> {
    let task = rt.block_on(async {
        let task = Handle::current().spawn(pending_with(probe)); // spawned at once, on this thread
        mini::yield_now().await; // queued behind the task: it has run when this returns
        task
    });
    assert!(!task.is_finished());
    task
}

/// Tasks spawned from another thread run on the runtime, and their handles can be awaited
/// on either thread: here one on the runtime itself, and one on the other thread's own
/// runtime (a cross-runtime wake). The runtime must run the queued jobs when it wakes.
#[test]
fn a_thread_spawns_onto_a_runtime_and_awaits_the_output_anywhere() {
    within_hang_guard(|| {
        let rt = Runtime::new().unwrap();
        let handle = rt.handle();
        let (tx, rx) = mpsc::channel::<SendJoinHandle<u32>>();
        let other = thread::spawn(move || {
            let awaited_here = handle.spawn(async { 40 + 2 });
            tx.send(handle.spawn(async { 7 })).unwrap();
            mini::block_on(awaited_here).unwrap()
        });
        let awaited_on_runtime = rx.recv().unwrap();
        // Both jobs are queued, in order: once the second task is done, so is the first.
        assert_eq!(rt.block_on(awaited_on_runtime).unwrap(), 7);
        assert_eq!(other.join().unwrap(), 42);
    });
}

/// On its own thread a handle spawns at once, with no job queue or eventfd in between.
#[test]
fn a_handle_spawns_directly_on_its_own_thread() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let task = Handle::current().spawn(async { 5 });
        assert_eq!(mini::Runtime::alive_tasks(&rt), 1, "spawned within the call, not queued");
        assert_eq!(task.await.unwrap(), 5);
    });
}

/// `spawn_with` calls its `Send` closure on the runtime thread, so the future it builds may
/// hold `!Send` state.
#[test]
fn spawn_with_builds_a_non_send_future_on_the_runtime_thread() {
    within_hang_guard(|| {
        let rt = Runtime::new().unwrap();
        let runtime_thread = thread::current().id();
        let handle = rt.handle();
        let task = thread::spawn(move || {
            handle.spawn_with(move || {
                let built_on = thread::current().id();
                let local = Rc::new(Cell::new(1)); // !Send
                async move {
                    mini::yield_now().await;
                    local.set(local.get() + 1);
                    (built_on, local.get())
                }
            })
        })
        .join()
        .unwrap();
        let (built_on, value) = rt.block_on(task).unwrap();
        assert_eq!(built_on, runtime_thread);
        assert_eq!(value, 2);
    });
}

/// A panic in the future, or in `spawn_with`'s closure, reaches the handle with its payload;
/// the runtime goes on.
#[test]
fn panics_reach_the_send_join_handle() {
    within_hang_guard(|| {
        let rt = Runtime::new().unwrap();
        let handle = rt.handle();
        let (in_future, in_make) = thread::spawn(move || {
            (
                handle.spawn(async { panic!("in the future") }),
                handle.spawn_with(|| -> std::future::Ready<()> { panic!("in make") }),
            )
        })
        .join()
        .unwrap();
        let err = rt.block_on(in_future).unwrap_err();
        assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "in the future");
        let err = rt.block_on(in_make).unwrap_err();
        assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "in make");
        assert_eq!(rt.block_on(async { mini::spawn(async { 1 }).await.unwrap() }), 1);
    });
}

/// `abort` from another thread wakes the task, whose future is then dropped on the runtime
/// thread, and the handle reports the cancellation.
#[test]
fn abort_from_another_thread_cancels_the_task_on_its_runtime() {
    within_hang_guard(|| {
        let rt = Runtime::new().unwrap();
        let runtime_thread = thread::current().id();
        let (probe, drops, dropped_on) = probe();
        let task = running_and_parked(&rt, probe);
        thread::scope(|scope| scope.spawn(|| task.abort()).join().unwrap());
        let started = rt.block_on(task);
        assert!(started.unwrap_err().is_cancelled());
        assert_eq!(drops.load(SeqCst), 1);
        assert_eq!(dropped_on.recv().unwrap(), runtime_thread);
    });
}

/// Jobs still queued when the runtime is dropped are dropped with it: their handles report
/// the cancellation instead of waiting forever, and their futures are dropped.
#[test]
fn jobs_queued_when_the_runtime_is_dropped_are_cancelled() {
    within_hang_guard(|| {
        let rt = Runtime::new().unwrap();
        let (probe, drops, _dropped_on) = probe();
        let handle = rt.handle();
        let kept = handle.clone(); // keeps the job queue alive past the runtime
        let task = thread::spawn(move || handle.spawn(pending_with(probe))).join().unwrap();
        assert!(!task.is_finished(), "the runtime has not run the job yet");
        drop(rt);
        assert!(kept.status().is_err());
        assert!(task.is_finished());
        assert_eq!(drops.load(SeqCst), 1, "the queued future was dropped");
        assert!(mini::block_on(task).unwrap_err().is_cancelled());
    });
}

/// A task running when the runtime is dropped is cancelled too.
#[test]
fn a_running_task_is_cancelled_when_the_runtime_is_dropped() {
    within_hang_guard(|| {
        let rt = Runtime::new().unwrap();
        let (probe, drops, _dropped_on) = probe();
        let task = running_and_parked(&rt, probe);
        drop(rt);
        assert_eq!(drops.load(SeqCst), 1);
        assert!(mini::block_on(task).unwrap_err().is_cancelled());
    });
}

/// A handle outlives its runtime without harm: spawning reports an error, never panics, and
/// drops the future it was given.
#[test]
fn spawning_on_a_runtime_that_is_gone_reports_an_error() {
    within_hang_guard(|| {
        let handle = Runtime::new().unwrap().handle();
        let (probe, drops, _dropped_on) = probe();
        let result = thread::spawn(move || {
            let task = handle.spawn(pending_with(probe));
            let status = handle.status();
            let spawned = handle.spawn_obj(FutureObj::new(Box::new(async {})));
            (mini::block_on(task), status, spawned)
        })
        .join()
        .expect("no panic on a foreign thread");
        assert!(result.0.unwrap_err().is_cancelled());
        assert!(result.1.unwrap_err().is_shutdown());
        assert!(result.2.unwrap_err().is_shutdown());
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// `Handle::current()` is the runtime thread's own handle, and a `spawn_blocking` closure's
/// way back onto the loop; elsewhere `try_current` is `None` and `current` panics clearly.
#[test]
fn handle_current_on_the_runtime_in_spawn_blocking_and_elsewhere() {
    within_hang_guard(|| {
        assert!(Handle::try_current().is_none());
        let message = thread::spawn(Handle::current).join().unwrap_err();
        let message =
            message.downcast_ref::<&str>().copied().or(message.downcast_ref::<String>().map(|s| &**s));
        let message = message.expect("a text payload");
        assert!(message.contains("outside a mini runtime"), "{message}");

        mini::block_on(async {
            assert!(Handle::try_current().is_some());
            let runtime_thread = thread::current().id();
            let back_on_the_loop = mini::spawn_blocking(|| {
                let handle = Handle::try_current().expect("a blocking closure finds its runtime");
                handle.spawn(async { thread::current().id() })
            });
            let ran_on = back_on_the_loop.await.unwrap().await.unwrap();
            assert_eq!(ran_on, runtime_thread);
        });
    });
}

/// The `futures-task` traits alone drive mini: `Spawn` on a handle from another thread,
/// `LocalSpawn` for `!Send` futures on the runtime thread.
#[test]
fn the_futures_task_traits_spawn_onto_mini() {
    within_hang_guard(|| {
        let rt = Runtime::new().unwrap();
        let (tx, rx) = mpsc::channel();
        let spawner: Box<dyn Spawn + Send> = Box::new(rt.handle());
        thread::spawn(move || {
            spawner.spawn_obj(FutureObj::new(Box::new(async move { tx.send(1).unwrap() }))).unwrap();
        })
        .join()
        .unwrap();
        let seen = Rc::new(Cell::new(0));
        let local_seen = seen.clone();
        rt.block_on(async move {
            let spawner = LocalSpawner::current();
            spawner.status_local().unwrap();
            spawner.spawn_local_obj(LocalFutureObj::new(Box::new(async move { local_seen.set(2) }))).unwrap();
            for _ in 0..100 {
                mini::yield_now().await;
            }
        });
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(seen.get(), 2);
    });
}

/// A local spawner kept past its runtime reports the shutdown.
#[test]
fn a_local_spawner_reports_its_runtime_gone() {
    let rt = Runtime::new().unwrap();
    let spawner = rt.block_on(async { LocalSpawner::current() });
    drop(rt);
    assert!(spawner.status_local().unwrap_err().is_shutdown());
    let refused = spawner.spawn_local_obj(LocalFutureObj::new(Box::new(async {})));
    assert!(refused.unwrap_err().is_shutdown());
}

/// `SendJoinHandle` is `Send`; a handle is `Send + Sync + Clone`.
#[test]
fn the_handle_types_cross_threads() {
    fn send<T: Send>() {}
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send::<SendJoinHandle<u32>>();
    send_sync_clone::<Handle>();
}

/// Many threads spawning at once onto a runtime that keeps running: every task runs once.
#[test]
fn concurrent_spawns_from_many_threads_all_run() {
    within_hang_guard(|| {
        const THREADS: usize = 4;
        const EACH: usize = 500;
        let rt = Runtime::new().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let spawners: Vec<_> = (0..THREADS)
            .map(|_| {
                let handle = rt.handle();
                let ran = ran.clone();
                thread::spawn(move || {
                    let tasks: Vec<_> = (0..EACH)
                        .map(|_| {
                            let ran = ran.clone();
                            handle.spawn(async move {
                                ran.fetch_add(1, SeqCst);
                            })
                        })
                        .collect();
                    tasks
                })
            })
            .collect();
        rt.block_on(async {
            for spawner in spawners {
                while !spawner.is_finished() {
                    mini::yield_now().await;
                }
                for task in spawner.join().unwrap() {
                    task.await.unwrap();
                }
            }
        });
        assert_eq!(ran.load(SeqCst), THREADS * EACH);
    });
}

/// Polled by hand: a pending handle stores the poller's waker, and completing wakes it.
#[test]
fn a_send_join_handle_wakes_its_poller() {
    let rt = Runtime::new().unwrap();
    let (waker, wakes) = util::counting_waker();
    let mut task = rt.handle().spawn(async { 3 });
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut task).poll(&mut cx).is_pending(), "not run yet");
    for _ in 0..100 {
        if task.is_finished() {
            break;
        }
        // A timer makes the loop look at the reactor, where the job's eventfd rang (a bare
        // `yield_now` completes before the loop ever turns). Bounded; no timing assumed.
        rt.block_on(mini::time::sleep(std::time::Duration::from_millis(1)));
    }
    assert!(task.is_finished(), "the task ran");
    assert_eq!(wakes.count(), 1);
    match Pin::new(&mut task).poll(&mut cx) {
        Poll::Ready(Ok(3)) => {}
        other => panic!("expected the output, got {other:?}"),
    }
}

/// A handle polled by one waker and then another wakes the last one only.
#[test]
#[allow(clippy::async_yields_async)] // the handle is polled by hand below, not awaited
fn a_send_join_handle_wakes_its_last_poller() {
    let rt = Runtime::new().unwrap();
    let (first, first_wakes) = util::counting_waker();
    let (second, second_wakes) = util::counting_waker();
    let mut task = rt.block_on(async { Handle::current().spawn(async { 3 }) });
    assert!(!task.is_finished(), "spawned, not run yet");
    for waker in [&first, &second] {
        assert!(Pin::new(&mut task).poll(&mut Context::from_waker(waker)).is_pending());
    }
    rt.block_on(mini::yield_now()); // the task runs
    assert!(task.is_finished());
    assert_eq!((first_wakes.count(), second_wakes.count()), (0, 1));
}

/// `Spawn` (not only `LocalSpawn`) on a local spawner, and its status once the runtime is gone.
#[test]
fn a_local_spawner_takes_send_futures_through_spawn() {
    let rt = Runtime::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let spawner = rt.block_on(async {
        let spawner = LocalSpawner::current();
        assert!(Spawn::status(&spawner).is_ok());
        let counter = ran.clone();
        Spawn::spawn_obj(
            &spawner,
            FutureObj::new(Box::new(async move {
                counter.fetch_add(1, SeqCst);
            })),
        )
        .unwrap();
        mini::yield_now().await;
        spawner
    });
    assert_eq!(ran.load(SeqCst), 1);
    drop(rt);
    assert!(Spawn::status(&spawner).unwrap_err().is_shutdown());
    assert!(Spawn::spawn_obj(&spawner, FutureObj::new(Box::new(async {}))).unwrap_err().is_shutdown());
}

/// The `Debug` forms say what a reader of a log wants: whether the runtime is gone, whether
/// the task finished.
#[test]
fn debug_output_names_the_state() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let spawner = rt.block_on(async { LocalSpawner::current() });
    let task = handle.spawn(async {});
    assert_eq!(format!("{handle:?}"), "Handle { closed: false }");
    assert_eq!(format!("{spawner:?}"), "LocalSpawner { shutdown: false }");
    assert_eq!(format!("{task:?}"), "SendJoinHandle { finished: false }");
    drop(rt);
    assert_eq!(format!("{handle:?}"), "Handle { closed: true }");
    assert_eq!(format!("{spawner:?}"), "LocalSpawner { shutdown: true }");
    assert_eq!(format!("{task:?}"), "SendJoinHandle { finished: true }");
}
