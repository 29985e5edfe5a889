//! The executor, black-box: spawning, joining, aborting, panics, fairness, shutdown, and the
//! waker contract (cross-thread wakes, duplicate wakes, wakes after the end).
//!
//! Every assertion counts something (polls, wakes, drops, order of events); nothing sleeps
//! or measures time. Tests whose failure would be a lost wake-up run under
//! `util::within_hang_guard`, so that it fails the test instead of hanging it.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};

use mini::io::Async;

/// Counts how many times it has been dropped.
struct DropCounter(Rc<Cell<usize>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A future that never completes, counts its polls, and hands out its latest waker.
struct Probe {
    polls: Rc<Cell<usize>>,
    waker: Rc<RefCell<Option<Waker>>>,
}

impl Future for Probe {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn spawn_and_join_return_outputs() {
    let sum = mini::block_on(async {
        let handles: Vec<_> = (0..100u64).map(|i| mini::spawn(async move { i * 2 })).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 2 * (0..100).sum::<u64>());
}

#[test]
fn spawned_futures_need_not_be_send() {
    let shared = Rc::new(Cell::new(0));
    let seen = mini::block_on({
        let shared = shared.clone();
        async move {
            let s = shared.clone();
            mini::spawn(async move { s.set(7) }).await.unwrap();
            shared.get()
        }
    });
    assert_eq!(seen, 7);
}

#[test]
fn abort_cancels_a_pending_task_and_runs_its_destructors() {
    let drops = Rc::new(Cell::new(0));
    mini::block_on({
        let drops = drops.clone();
        async move {
            let guard = DropCounter(drops.clone());
            let handle = mini::spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            mini::yield_now().await; // let it start and park
            assert!(!handle.is_finished());
            handle.abort();
            let err = handle.await.unwrap_err();
            assert!(err.is_cancelled());
            assert!(!err.is_panic());
            assert_eq!(drops.get(), 1);
        }
    });
}

#[test]
fn abort_after_completion_keeps_the_output() {
    mini::block_on(async {
        let handle = mini::spawn(async { "done" });
        mini::yield_now().await;
        assert!(handle.is_finished());
        handle.abort();
        assert_eq!(handle.await.unwrap(), "done");
    });
}

#[test]
fn a_panicking_task_gives_join_error_and_the_runtime_keeps_serving() {
    mini::block_on(async {
        let bad = mini::spawn(async {
            mini::yield_now().await;
            panic!("task exploded");
        });
        let good = mini::spawn(async {
            for _ in 0..10 {
                mini::yield_now().await;
            }
            "still serving"
        });
        let err = bad.await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.to_string(), "task panicked: task exploded");
        assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "task exploded");
        assert_eq!(good.await.unwrap(), "still serving");
        // And new tasks still run after the panic.
        assert_eq!(mini::spawn(async { 1 }).await.unwrap(), 1);
    });
}

#[test]
fn yield_now_lets_the_other_tasks_run_in_turn() {
    let log = Rc::new(RefCell::new(Vec::new()));
    mini::block_on({
        let log = log.clone();
        async move {
            let handles: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|name| {
                    let log = log.clone();
                    mini::spawn(async move {
                        for i in 0..3 {
                            log.borrow_mut().push(format!("{name}{i}"));
                            mini::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        }
    });
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

/// A reader whose socket never runs dry must still let other tasks run: the per-poll I/O
/// budget makes its reads return Pending (and reschedule it) after a bounded number.
#[test]
fn an_always_ready_socket_does_not_starve_other_tasks() {
    const PENDING_BYTES: usize = 64 * 1024;
    let (mut writer, reader) = UnixStream::pair().unwrap();
    writer.write_all(&vec![7u8; PENDING_BYTES]).unwrap();

    let bytes_read_when_other_ran = mini::block_on(async move {
        let reader = Async::new(reader).unwrap();
        let read_so_far = Rc::new(Cell::new(0usize));
        let seen_by_other = Rc::new(Cell::new(None));
        let other = {
            let (read_so_far, seen_by_other) = (read_so_far.clone(), seen_by_other.clone());
            mini::spawn(async move { seen_by_other.set(Some(read_so_far.get())) })
        };
        // One byte per read: every read succeeds until all PENDING_BYTES are consumed.
        let mut byte = [0u8; 1];
        while read_so_far.get() < PENDING_BYTES {
            reader.read_with(|s| (&*s).read(&mut byte)).await.unwrap();
            read_so_far.set(read_so_far.get() + 1);
        }
        other.await.unwrap();
        seen_by_other.get().unwrap()
    });
    assert!(
        bytes_read_when_other_ran < PENDING_BYTES / 8,
        "the other task first ran after {bytes_read_when_other_ran} reads"
    );
}

#[test]
fn dropping_the_runtime_drops_live_tasks_and_runs_their_destructors() {
    let drops = Rc::new(Cell::new(0));
    let rt = mini::Runtime::new().unwrap();
    rt.block_on({
        let drops = drops.clone();
        async move {
            for _ in 0..10 {
                let guard = DropCounter(drops.clone());
                mini::spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                });
            }
            mini::yield_now().await;
        }
    });
    assert_eq!(rt.alive_tasks(), 10);
    assert_eq!(drops.get(), 0, "tasks stay alive between block_on calls");
    drop(rt);
    assert_eq!(drops.get(), 10);
}

#[test]
fn block_on_returning_drops_the_remaining_tasks() {
    let drops = Rc::new(Cell::new(0));
    mini::block_on({
        let drops = drops.clone();
        async move {
            let guard = DropCounter(drops.clone());
            mini::spawn(async move {
                let _guard = guard;
                // A destructor that spawns during shutdown must not crash it.
                struct SpawnOnDrop;
                impl Drop for SpawnOnDrop {
                    fn drop(&mut self) {
                        mini::spawn(async {});
                    }
                }
                let _spawner = SpawnOnDrop;
                std::future::pending::<()>().await;
            });
        }
    });
    assert_eq!(drops.get(), 1);
}

/// A spawned task parks and hands its waker to another thread, which wakes it once. With
/// nothing else to do the loop blocks in `epoll_wait`, where only the eventfd can reach it:
/// the task must be polled again, exactly once. A lost wake fails at the hang guard.
#[test]
fn a_wake_from_another_thread_reaches_a_parked_task() {
    let (polls, woken_by_helper) = util::within_hang_guard(|| {
        let (waker_tx, waker_rx) = mpsc::channel::<Waker>();
        let woken = Arc::new(AtomicBool::new(false));
        let helper = {
            let woken = woken.clone();
            std::thread::spawn(move || {
                let waker = waker_rx.recv().expect("the task sends its waker");
                woken.store(true, Ordering::SeqCst);
                waker.wake();
            })
        };
        let polls = mini::block_on(async move {
            let task = mini::spawn(async move {
                let mut polls = 0;
                poll_fn(|cx| {
                    polls += 1;
                    if woken.load(Ordering::SeqCst) {
                        return Poll::Ready(());
                    }
                    if polls == 1 {
                        waker_tx.send(cx.waker().clone()).unwrap();
                    }
                    Poll::Pending
                })
                .await;
                polls
            });
            task.await.unwrap()
        });
        (polls, helper.join().is_ok())
    });
    assert!(woken_by_helper, "the waking thread panicked");
    assert_eq!(polls, 2, "one poll to park, one for the one wake");
}

/// 2,000 tasks each hand their waker to one other thread, which wakes them in turn while the
/// runtime runs, sleeps, and drains its remote queue: every wake must arrive (each task is
/// polled exactly twice: to park, and once for its wake). A lost one fails at the hang guard.
#[test]
fn many_cross_thread_wakes_all_arrive() {
    const TASKS: usize = 2_000;
    let (polls, woken) = util::within_hang_guard(|| {
        mini::block_on(async {
            let (tx, rx) = mpsc::channel::<(Arc<AtomicBool>, Waker)>();
            let wakers = std::thread::spawn(move || {
                let mut woken = 0;
                for (flag, waker) in rx {
                    flag.store(true, Ordering::SeqCst);
                    waker.wake();
                    woken += 1;
                }
                woken
            });
            let polls = Rc::new(Cell::new(0usize));
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (tx, polls) = (tx.clone(), polls.clone());
                    mini::spawn(async move {
                        let flag = Arc::new(AtomicBool::new(false));
                        let mut sent = false;
                        poll_fn(|cx| {
                            polls.set(polls.get() + 1);
                            if flag.load(Ordering::SeqCst) {
                                return Poll::Ready(());
                            }
                            if !sent {
                                sent = true;
                                tx.send((flag.clone(), cx.waker().clone())).unwrap();
                            }
                            Poll::Pending
                        })
                        .await;
                    })
                })
                .collect();
            drop(tx);
            for h in handles {
                h.await.unwrap();
            }
            (polls.get(), wakers.join().unwrap())
        })
    });
    assert_eq!(woken, TASKS, "the other thread woke every task once");
    assert_eq!(polls, 2 * TASKS, "each task: one poll to park, one for its wake");
}

/// A task and a thread wake each other in lockstep, 20,000 times. Each remote wake lands at
/// a random point of the loop: while the task still runs, between the poll and the turn,
/// while the loop drains the remote queue, or inside `epoll_wait`. A wake lost in any of
/// those gaps would leave both sides waiting forever; the hang guard turns that into a
/// failure instead of a stuck test.
#[test]
fn lockstep_wakes_from_another_thread_are_never_lost() {
    const ROUNDS: u64 = 20_000;
    #[derive(Default)]
    struct Shared {
        asked: std::sync::atomic::AtomicU64,
        answered: std::sync::atomic::AtomicU64,
        waker: Mutex<Option<Waker>>,
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let shared = Arc::new(Shared::default());
        let answerer = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for i in 1..=ROUNDS {
                    while shared.asked.load(Ordering::SeqCst) < i {
                        std::hint::spin_loop();
                    }
                    shared.answered.store(i, Ordering::SeqCst);
                    if let Some(w) = shared.waker.lock().unwrap().take() {
                        w.wake();
                    }
                }
            })
        };
        let rounds = mini::block_on(async move {
            for i in 1..=ROUNDS {
                shared.asked.store(i, Ordering::SeqCst);
                poll_fn(|cx| {
                    *shared.waker.lock().unwrap() = Some(cx.waker().clone());
                    if shared.answered.load(Ordering::SeqCst) >= i {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
            ROUNDS
        });
        answerer.join().unwrap();
        done_tx.send(rounds).unwrap();
    });
    // Seconds normally; only a lost wake gets anywhere near the guard.
    let rounds = done_rx.recv_timeout(std::time::Duration::from_secs(120)).expect("a remote wake was lost");
    assert_eq!(rounds, ROUNDS);
}

/// Runs everything already woken: one reactor turn that began after this call (so a remote
/// wake's eventfd write, made before it, has been seen and the remote queue drained), then
/// yields, each of which puts the caller behind every task queued before it.
async fn run_everything_woken() {
    util::reactor_turn().await;
    for _ in 0..3 {
        mini::yield_now().await;
    }
}

/// Ten wakes before a task runs again queue it once: ten on the runtime thread, then ten from
/// another thread, all of which land before the task next runs (this thread waits for that
/// thread to finish). A wake that ignored the `scheduled` flag would queue the task once per
/// wake, and each queued key is one more poll.
#[test]
fn repeated_wakes_before_a_task_runs_schedule_it_once() {
    let polls = Rc::new(Cell::new(0));
    let waker = Rc::new(RefCell::new(None));
    mini::block_on({
        let (polls, waker) = (polls.clone(), waker.clone());
        async move {
            mini::spawn(Probe { polls: polls.clone(), waker: waker.clone() });
            mini::yield_now().await;
            assert_eq!(polls.get(), 1);
            let w: Waker = waker.borrow().clone().unwrap();
            for _ in 0..10 {
                w.wake_by_ref();
            }
            run_everything_woken().await;
            assert_eq!(polls.get(), 2, "ten local wakes before the next run must mean one poll");

            let remote = w.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    remote.wake_by_ref();
                }
            })
            .join()
            .unwrap();
            run_everything_woken().await;
            assert_eq!(polls.get(), 3, "ten remote wakes before the next run must mean one poll");
        }
    });
    assert_eq!(polls.get(), 3);
}

/// A finished task's waker, woken on the runtime thread and from another thread, polls
/// nothing: not the task spawned after it (which takes the finished task's slab slot).
/// After the runtime is dropped, the wakers of its tasks, finished or cancelled at the drop,
/// still do nothing: nothing polled in another runtime that runs on the same thread (whose
/// first task has the same slab key), and, outside any runtime, no panic, no poll, no
/// second drop.
#[test]
fn waking_a_finished_task_or_a_dropped_runtime_does_nothing() {
    let kept: Rc<RefCell<Option<Waker>>> = Rc::default();
    let (pending_polls, pending_waker) = (Rc::new(Cell::new(0)), Rc::new(RefCell::new(None)));
    let drops = Rc::new(Cell::new(0));
    let rt = mini::Runtime::new().unwrap();
    rt.block_on({
        let (kept, pending_polls, pending_waker, drops) =
            (kept.clone(), pending_polls.clone(), pending_waker.clone(), drops.clone());
        async move {
            let k = kept.clone();
            mini::spawn(poll_fn(move |cx| {
                *k.borrow_mut() = Some(cx.waker().clone());
                Poll::Ready(())
            }))
            .await
            .unwrap();
            // Spawned after the finished task has left the slab: it reuses that slot.
            let guard = DropCounter(drops.clone());
            let probe = Probe { polls: pending_polls.clone(), waker: pending_waker };
            mini::spawn(async move {
                let _guard = guard;
                probe.await;
            });
            mini::yield_now().await;
            assert_eq!(pending_polls.get(), 1);

            let w = kept.borrow().clone().unwrap();
            w.wake_by_ref();
            let remote = w.clone();
            std::thread::spawn(move || remote.wake()).join().unwrap();
            run_everything_woken().await;
            assert_eq!(pending_polls.get(), 1, "a finished task's wake polled the task in its slot");
            assert_eq!(mini::spawn(async { 5 }).await.unwrap(), 5);
        }
    });
    let finished = kept.borrow_mut().take().unwrap();
    let cancelled = pending_waker.borrow_mut().take().unwrap();
    drop(rt);
    assert_eq!(drops.get(), 1, "dropping the runtime drops its pending task");

    // A new runtime on the same thread, whose second task has the slab key that the dead
    // runtime's cancelled task had (both are the second occupant of the first slot).
    let polls = Rc::new(Cell::new(0));
    mini::block_on({
        let (polls, wakers) = (polls.clone(), [finished.clone(), cancelled.clone()]);
        async move {
            mini::spawn(async {}).await.unwrap();
            mini::spawn(Probe { polls: polls.clone(), waker: Rc::default() });
            mini::yield_now().await;
            assert_eq!(polls.get(), 1);
            for w in &wakers {
                w.wake_by_ref();
            }
            run_everything_woken().await;
        }
    });
    assert_eq!(polls.get(), 1, "a dead runtime's waker polled a task of the new one");
    // Outside any runtime: on this thread, and from another one.
    for w in [&finished, &cancelled] {
        w.wake_by_ref();
        let remote = w.clone();
        std::thread::spawn(move || remote.wake()).join().unwrap();
    }
    assert_eq!((pending_polls.get(), drops.get()), (1, 1), "a wake after the drop ran the task");
}

#[test]
#[should_panic(expected = "mini::spawn called outside a mini runtime")]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    drop(mini::spawn(async {}));
}

#[test]
#[should_panic(expected = "cannot call `block_on` from inside a running mini runtime")]
fn block_on_inside_block_on_panics_with_a_clear_message() {
    mini::block_on(async {
        mini::block_on(async {});
    });
}

/// A task that awaits its own `JoinHandle` (not useful code, but it must not crash the
/// runtime with a `RefCell` double borrow) waits forever, and can still be cancelled:
/// `abort` ends it, its destructors run, and the handle reports the cancellation.
#[test]
fn a_task_awaiting_its_own_handle_is_cancellable() {
    let drops = Rc::new(Cell::new(0));
    mini::block_on({
        let drops = drops.clone();
        async move {
            let cell: Rc<RefCell<Option<mini::JoinHandle<()>>>> = Rc::default();
            let polls = Rc::new(Cell::new(0));
            let (c, p, guard) = (cell.clone(), polls.clone(), DropCounter(drops.clone()));
            let handle = mini::spawn(async move {
                let _guard = guard;
                // Awaits its own handle, which stays in the cell so that it can be aborted.
                poll_fn(|cx| {
                    p.set(p.get() + 1);
                    match c.borrow_mut().as_mut() {
                        Some(own) => Pin::new(own).poll(cx).map(drop),
                        None => Poll::Pending, // not handed over yet
                    }
                })
                .await;
            });
            *cell.borrow_mut() = Some(handle);
            for _ in 0..3 {
                mini::yield_now().await;
            }
            assert!(polls.get() >= 1, "the task never ran");
            assert_eq!(drops.get(), 0, "the task ended while awaiting itself");
            let handle = cell.borrow_mut().take().unwrap();
            assert!(!handle.is_finished());
            handle.abort();
            for _ in 0..100 {
                if handle.is_finished() {
                    break;
                }
                mini::yield_now().await;
            }
            assert!(handle.is_finished(), "the aborted task still runs after 100 yields");
            let err = handle.await.unwrap_err();
            assert!(err.is_cancelled(), "expected a cancellation, got {err:?}");
            assert_eq!(drops.get(), 1, "the cancelled task's destructors ran once");
        }
    });
    assert_eq!(drops.get(), 1);
}

/// A task that spent its I/O budget waits for the loop's next look at epoll, so sockets that
/// became ready meanwhile are served before it runs again. (Requeueing it at once would let a
/// lone busy task run dozens of budgets back to back while ready sockets wait.)
#[test]
fn a_task_out_of_budget_lets_the_reactor_in_before_it_runs_again() {
    const PENDING_BYTES: usize = 64 * 1024;
    let (mut busy_writer, busy_reader) = UnixStream::pair().unwrap();
    busy_writer.write_all(&vec![1u8; PENDING_BYTES]).unwrap();
    let (mut quiet_writer, quiet_reader) = UnixStream::pair().unwrap();

    let busy_reads_when_quiet_ran = mini::block_on(async move {
        let busy_reader = Async::new(busy_reader).unwrap();
        let quiet_reader = Async::new(quiet_reader).unwrap();
        let busy_reads = Rc::new(Cell::new(0usize));
        let quiet = {
            let busy_reads = busy_reads.clone();
            mini::spawn(async move {
                let mut byte = [0u8; 1];
                quiet_reader.read_with(|s| (&*s).read(&mut byte)).await.unwrap();
                busy_reads.get()
            })
        };
        mini::yield_now().await; // the quiet task parks: its socket is empty
                                 // Its byte arrives now, but only epoll can tell the loop so.
        quiet_writer.write_all(b"!").unwrap();
        let busy = {
            let busy_reads = busy_reads.clone();
            mini::spawn(async move {
                let mut byte = [0u8; 1];
                for _ in 0..PENDING_BYTES {
                    busy_reader.read_with(|s| (&*s).read(&mut byte)).await.unwrap();
                    busy_reads.set(busy_reads.get() + 1);
                }
            })
        };
        busy.await.unwrap();
        quiet.await.unwrap()
    });
    assert!(
        busy_reads_when_quiet_ran < 1000,
        "the ready socket waited for {busy_reads_when_quiet_ran} reads of the busy task"
    );
}
