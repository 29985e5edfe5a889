//! The co-operative budget: a task looping over operations that complete without waiting
//! must still let the other ready tasks run. Each operation spends one unit of a budget of
//! 128 per poll; the 129th returns `Pending` and puts the task after the others. Fd reads
//! and writes always did; these are the other mini leaf futures that can complete at once
//! (signals are covered in tests/signal.rs).

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use mini::io::{Async, Direction};
use mini::time::{interval, sleep, MissedTickBehavior};

/// The budget's size, as in runtime/src/coop.rs.
const TASK_BUDGET: usize = 128;

/// Runs `step` in a loop inside one task while another task is ready to run; returns how
/// many steps completed before that task got its turn. Without the budget the loop runs to
/// its end inside a single poll, and the test fails instead of hanging.
async fn steps_before_another_task_runs<F: Future>(mut step: impl FnMut() -> F) -> usize {
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    let _other = mini::spawn(async move { flag.set(true) });
    for steps in 0..100_000 {
        if ran.get() {
            return steps;
        }
        step().await;
    }
    panic!("100,000 steps completed without letting another ready task run");
}

fn assert_within_budget(what: &str, steps: usize) {
    assert!(steps <= TASK_BUDGET + 1, "{what}: {steps} steps ran before the other task");
}

#[mini::test]
async fn a_loop_over_due_sleeps_yields() {
    let steps = steps_before_another_task_runs(|| sleep(Duration::ZERO)).await;
    assert_within_budget("sleep(ZERO)", steps);
}

#[mini::test]
async fn a_bursting_interval_yields() {
    let mut ticks = interval(Duration::from_nanos(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    ticks.tick().await;
    // A 1 ns period is always behind: every tick is owed at once.
    let ticks = std::cell::RefCell::new(ticks);
    let steps =
        steps_before_another_task_runs(|| std::future::poll_fn(|cx| ticks.borrow_mut().poll_tick(cx))).await;
    assert_within_budget("Interval::tick (Burst)", steps);
}

#[mini::test]
async fn awaiting_finished_tasks_yields() {
    let mut handles: Vec<_> = (0..1000).map(|i| mini::spawn(async move { i })).collect();
    while !handles.iter().all(|h| h.is_finished()) {
        mini::yield_now().await;
    }
    handles.reverse();
    let handles = std::cell::RefCell::new(handles);
    let steps = steps_before_another_task_runs(|| {
        let handle = handles.borrow_mut().pop().expect("more handles than steps");
        async move { handle.await.unwrap() }
    })
    .await;
    assert_within_budget("JoinHandle of a finished task", steps);
}

#[mini::test]
async fn waiting_for_readiness_on_a_ready_fd_yields() -> std::io::Result<()> {
    let (mut a, b) = UnixStream::pair()?;
    let b = Async::new(b)?;
    a.write_all(b"unread")?;
    let steps = steps_before_another_task_runs(|| b.readable()).await;
    assert_within_budget("readable()", steps);
    let steps = steps_before_another_task_runs(|| b.writable()).await;
    assert_within_budget("writable()", steps);
    drop(a);
    b.peer_closed().await?; // the hang-up seen once: from now on it is ready at once
    let steps = steps_before_another_task_runs(|| b.peer_closed()).await;
    assert_within_budget("peer_closed()", steps);
    Ok(())
}

/// Only completed operations spend the budget: a task that polls a thousand waits that are
/// not ready (a `select!` over many sources) can still complete a ready one in the same poll.
#[mini::test]
async fn waits_that_do_not_complete_spend_nothing() -> std::io::Result<()> {
    let (_a, idle) = UnixStream::pair()?;
    let idle = Async::new(idle)?;
    idle.clear_ready(Direction::Read); // nothing to read: its waits stay pending
    let (mut c, ready) = UnixStream::pair()?;
    let ready = Async::new(ready)?;
    c.write_all(b"x")?;
    poll_fn(|cx| {
        for _ in 0..1000 {
            assert!(pin!(idle.readable()).poll(cx).is_pending());
        }
        assert!(pin!(ready.readable()).poll(cx).is_ready(), "pending waits spent the budget");
        Poll::Ready(())
    })
    .await;
    Ok(())
}
