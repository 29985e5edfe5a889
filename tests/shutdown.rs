//! `mini::Shutdown`: a stop flag raised on one thread and awaited on any runtime.

mod util;

use std::future::Future;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use mini::Shutdown;
use util::{counting_waker, poll_once, within_hang_guard};

/// Waits (yielding the CPU) until `shutdown` has `n` waiters; fails after a few seconds.
/// This is a guard around a condition, not a sleep: it returns as soon as the count is seen.
fn wait_for_waiters(shutdown: &Shutdown, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while shutdown.waiter_count() != n {
        assert!(Instant::now() < deadline, "expected {n} waiters, have {}", shutdown.waiter_count());
        thread::yield_now();
    }
}

#[test]
fn trigger_from_another_thread_wakes_waiters_on_two_runtimes() {
    within_hang_guard(|| {
        let shutdown = Shutdown::new();
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                let shutdown = shutdown.clone();
                thread::spawn(move || {
                    // Each thread has its own runtime: the wake crosses runtimes.
                    mini::block_on(shutdown.triggered());
                    i
                })
            })
            .collect();
        // Both are parked in the list before the trigger, so the wake path is what ends them.
        wait_for_waiters(&shutdown, 2);
        assert!(!shutdown.is_triggered());
        let trigger = shutdown.clone();
        thread::spawn(move || trigger.trigger()).join().unwrap();
        let done: Vec<i32> = waiters.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(done, [0, 1]);
        assert!(shutdown.is_triggered());
        assert_eq!(shutdown.waiter_count(), 0);
    });
}

#[test]
fn a_given_up_wait_leaves_no_waker_behind() {
    let shutdown = Shutdown::new();
    let (waker, wakes) = counting_waker();
    let mut wait = Box::pin(shutdown.triggered());
    assert_eq!(wait.as_mut().poll(&mut Context::from_waker(&waker)), Poll::Pending);
    assert_eq!(shutdown.waiter_count(), 1);
    drop(wait);
    assert_eq!(shutdown.waiter_count(), 0);
    // A server races `triggered()` against `accept` on every loop: the list must not grow.
    for _ in 0..1000 {
        assert_eq!(poll_once(shutdown.triggered(), &waker), Poll::Pending);
    }
    assert_eq!(shutdown.waiter_count(), 0);
    shutdown.trigger();
    assert_eq!(wakes.count(), 0, "a dropped wait was woken");
}

#[test]
fn a_wait_polled_by_another_task_keeps_one_entry_and_wakes_the_latest() {
    let shutdown = Shutdown::new();
    let (first, first_wakes) = counting_waker();
    let (second, second_wakes) = counting_waker();
    let mut wait = Box::pin(shutdown.triggered());
    assert!(wait.as_mut().poll(&mut Context::from_waker(&first)).is_pending());
    assert!(wait.as_mut().poll(&mut Context::from_waker(&second)).is_pending());
    assert_eq!(shutdown.waiter_count(), 1);
    shutdown.trigger();
    assert_eq!((first_wakes.count(), second_wakes.count()), (0, 1));
    assert!(wait.as_mut().poll(&mut Context::from_waker(&second)).is_ready());
}

#[test]
fn trigger_before_wait_resolves_at_once() {
    let shutdown = Shutdown::default();
    shutdown.trigger();
    shutdown.trigger(); // a second trigger is harmless
    let (waker, _) = counting_waker();
    assert_eq!(poll_once(shutdown.clone().triggered(), &waker), Poll::Ready(()));
    assert_eq!(shutdown.waiter_count(), 0);
    assert!(format!("{shutdown:?}").contains("triggered: true"));
}
