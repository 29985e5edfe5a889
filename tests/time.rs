//! Timers: ordering, timeouts, intervals after a stall, many timers at once, cancellation,
//! and deadlines too far away to represent. Assertions compare instants the timers report
//! with each other and with their deadlines; none asserts how long anything took.

mod util;

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use mini::time::{interval, sleep, sleep_until, timeout, timeout_at, MissedTickBehavior};

/// A small deterministic shuffle (no rand dependency): a linear congruential generator.
fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..v.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.swap(i, (state >> 33) as usize % (i + 1));
    }
    v
}

/// 200 sleeps registered in shuffled order wake in deadline order. That proves something
/// only if every sleep was registered before the first one ended (one registered late would
/// complete in spawn order): each round counts the registrations and checks that, and a
/// round where the head start proved too short (a slow machine, valgrind) is run again with
/// twice the head start. No assertion depends on how long anything took.
#[test]
fn sleeps_with_shuffled_deadlines_wake_in_deadline_order() {
    let mut head_start = Duration::from_millis(5);
    for _ in 0..10 {
        if let Some(order) = shuffled_sleeps_round(head_start) {
            assert_eq!(order, (0..200).collect::<Vec<_>>());
            return;
        }
        head_start *= 2;
    }
    panic!("200 sleeps never all registered before the first ended, even with a {head_start:?} head start");
}

/// One round of the test above: the order in which the sleeps ended, or `None` if one
/// ended before all had been registered.
fn shuffled_sleeps_round(head_start: Duration) -> Option<Vec<u64>> {
    let order = Rc::new(RefCell::new(Vec::new()));
    let registered = Rc::new(std::cell::Cell::new(0));
    let all_registered_first = Rc::new(std::cell::Cell::new(true));
    mini::block_on({
        let (order, registered, all_first) =
            (order.clone(), registered.clone(), all_registered_first.clone());
        async move {
            let base = Instant::now() + head_start;
            let handles: Vec<_> = shuffled(200)
                .into_iter()
                .map(|i| {
                    let (order, registered, all_first) =
                        (order.clone(), registered.clone(), all_first.clone());
                    mini::spawn(async move {
                        // 200 distinct deadlines, 100 µs apart.
                        let deadline = base + Duration::from_micros(100 * i);
                        let mut s = sleep_until(deadline);
                        let mut first = true;
                        poll_fn(|cx| {
                            let poll = std::pin::Pin::new(&mut s).poll(cx);
                            if std::mem::take(&mut first) && poll.is_pending() {
                                registered.set(registered.get() + 1);
                            }
                            poll
                        })
                        .await;
                        assert!(Instant::now() >= deadline, "woke before its deadline");
                        if registered.get() < 200 {
                            all_first.set(false);
                        }
                        order.borrow_mut().push(i);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        }
    });
    let order = order.borrow().clone();
    all_registered_first.get().then_some(order)
}

#[test]
fn timeout_fires_for_a_slow_future_and_not_for_a_fast_one() {
    mini::block_on(async {
        let err = timeout(Duration::from_millis(2), std::future::pending::<()>()).await.unwrap_err();
        assert_eq!(err.to_string(), "deadline has elapsed");
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);

        let fast = timeout(Duration::from_secs(60), async {
            mini::yield_now().await;
            "fast"
        });
        assert_eq!(fast.await, Ok("fast"));

        // The deadline bounds the wait even when the inner future is itself a long sleep.
        let deadline = Instant::now() + Duration::from_millis(3);
        assert!(timeout_at(deadline, sleep(Duration::from_secs(3600))).await.is_err());
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn a_deadline_past_what_instant_can_hold_means_never() {
    mini::block_on(async {
        let forever = sleep(Duration::MAX);
        assert!(!forever.is_elapsed());
        assert!(timeout(Duration::from_millis(1), forever).await.is_err());
        // A timeout of Duration::MAX around a quick future is fine too.
        assert_eq!(timeout(Duration::MAX, async { 1 }).await, Ok(1));
    });
}

#[test]
fn dropping_sleeps_cancels_their_timers() {
    let rt = mini::Runtime::new().unwrap();
    rt.block_on(async {
        for _ in 0..1_000_000 {
            let mut s = sleep(Duration::from_secs(3600));
            // Poll once so the timer is really registered, then drop it.
            poll_fn(|cx| {
                assert!(std::pin::Pin::new(&mut s).poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
        }
    });
    let debug = format!("{rt:?}");
    assert!(debug.contains("timers: 0"), "timers left behind: {debug}");
}

/// 100,000 tasks sleep at once, until deadlines spread over 20 ms that start 200 ms from
/// now: each sleep ends (under a hang guard: a lost timer fails the test), none before its
/// deadline, each task is polled at most twice (to register its timer, then once when it
/// fires: a timer that fired early would wake a task whose sleep is not over, a third poll),
/// and no timer is left behind. Equal deadlines abound (100,000 tasks, 20,000 distinct
/// microseconds): the map's sequence numbers keep them apart.
#[test]
fn a_hundred_thousand_concurrent_sleeps_all_complete() {
    const N: u64 = 100_000;
    let (ended, most_polls, timers_left) = util::within_hang_guard(|| {
        let rt = mini::Runtime::new().unwrap();
        // Far enough ahead that the timers are registered before they are due (when the
        // machine is slower than that, early sleeps end at their first poll instead).
        let start = Instant::now() + Duration::from_millis(200);
        let (ended, most_polls) = rt.block_on(async {
            let ended = Rc::new(std::cell::Cell::new(0u64));
            let most_polls = Rc::new(std::cell::Cell::new(0u32));
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let (ended, most_polls) = (ended.clone(), most_polls.clone());
                    mini::spawn(async move {
                        let deadline = start + Duration::from_micros(i % 20_000);
                        let mut s = sleep_until(deadline);
                        let mut polls = 0;
                        poll_fn(|cx| {
                            polls += 1;
                            std::pin::Pin::new(&mut s).poll(cx)
                        })
                        .await;
                        assert!(Instant::now() >= deadline, "sleep {i} ended before its deadline");
                        most_polls.set(most_polls.get().max(polls));
                        ended.set(ended.get() + 1);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
            (ended.get(), most_polls.get())
        });
        (ended, most_polls, format!("{rt:?}"))
    });
    assert_eq!(ended, N, "every sleep ended");
    assert!(most_polls <= 2, "a sleeping task was polled {most_polls} times");
    assert!(timers_left.contains("timers: 0"), "{timers_left}");
}

#[test]
fn sleep_reset_moves_the_deadline() {
    mini::block_on(async {
        let mut s = sleep(Duration::from_secs(3600));
        // Register the far deadline first, then pull it in.
        poll_fn(|cx| {
            assert!(std::pin::Pin::new(&mut s).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let soon = Instant::now() + Duration::from_millis(2);
        s.reset(soon);
        assert_eq!(s.deadline(), soon);
        s.await;
        assert!(Instant::now() >= soon);
    });
}

/// Stalls the thread (as a blocking call in a task would) for `periods` periods.
fn stall(period: Duration, periods: u32) {
    std::thread::sleep(period * periods);
}

/// Whether `t` lies on the interval's grid `start + n * p`.
fn on_grid(t: Instant, start: Instant, p: Duration) -> bool {
    (t - start).as_nanos() % p.as_nanos() == 0
}

#[test]
fn interval_skips_missed_ticks_by_default() {
    let p = Duration::from_millis(10);
    mini::block_on(async {
        let mut iv = interval(p);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Skip);
        let start = iv.tick().await; // the first tick is immediate
        let t1 = iv.tick().await;
        assert_eq!(t1, start + p);
        stall(p, 3); // at least two ticks after t1 are missed
        let stall_end = Instant::now();
        let late = iv.tick().await; // the late tick still reports its own (grid) schedule...
        assert!(late > t1 && on_grid(late, start, p));
        let next = iv.tick().await; // ...then the missed ones are skipped, staying on the grid
        assert!(next >= late + 2 * p, "missed ticks were not skipped: {:?}", next - late);
        assert!(next > stall_end, "the next tick is the first grid point after the late one was taken");
        assert!(on_grid(next, start, p), "left the original grid");
    });
}

#[test]
fn interval_burst_fires_missed_ticks_back_to_back() {
    let p = Duration::from_millis(10);
    mini::block_on(async {
        let mut iv = interval(p);
        iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let start = iv.tick().await;
        stall(p, 3);
        let ticks = [iv.tick().await, iv.tick().await, iv.tick().await, iv.tick().await];
        assert_eq!(ticks, [start + p, start + 2 * p, start + 3 * p, start + 4 * p]);
    });
}

#[test]
fn interval_delay_restarts_the_schedule_after_a_stall() {
    let p = Duration::from_millis(10);
    mini::block_on(async {
        let mut iv = interval(p);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let start = iv.tick().await;
        stall(p, 3);
        let late = iv.tick().await;
        assert_eq!(late, start + p);
        let taken = Instant::now();
        let next = iv.tick().await;
        // Burst would say start + 2p; Delay counts one period from when the late tick was
        // taken, which is after the stall and no later than `taken`.
        assert!(next > start + 3 * p && next <= taken + p, "{:?}", next - start);
    });
}

#[test]
#[should_panic(expected = "period must be non-zero")]
fn interval_of_zero_panics() {
    let _ = interval(Duration::ZERO);
}

/// A pending sleep holds one timer however often it is polled (each poll updates the waker
/// of its entry in place), and dropping it removes the entry.
#[test]
fn a_pending_sleep_holds_one_timer_however_often_it_is_polled() {
    let rt = mini::Runtime::new().unwrap();
    rt.block_on(async {
        let mut s = sleep(Duration::from_secs(3600));
        poll_fn(|cx| {
            for _ in 0..3 {
                assert!(std::pin::Pin::new(&mut s).poll(cx).is_pending());
            }
            Poll::Ready(())
        })
        .await;
        assert!(format!("{rt:?}").contains("timers: 1"), "{rt:?}");
        drop(s);
        assert!(format!("{rt:?}").contains("timers: 0"), "{rt:?}");
    });
}

/// `is_elapsed` is true once the sleep has completed (the false side: `forever` above).
#[mini::test]
async fn is_elapsed_turns_true_when_the_sleep_completes() {
    let mut s = sleep(Duration::from_millis(1));
    (&mut s).await;
    assert!(s.is_elapsed(), "a completed sleep");
}

#[test]
fn interval_reset_restarts_the_schedule_and_the_getters_report_the_settings() {
    let p = Duration::from_millis(10);
    mini::block_on(async {
        let mut iv = interval(p);
        assert_eq!(iv.period(), p);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Delay);
        let start = iv.tick().await;
        sleep(Duration::from_millis(2)).await; // so that "now" is past the first tick
        let reset_at = Instant::now();
        iv.reset();
        let next = iv.tick().await;
        assert!(next >= reset_at + p, "reset: one period from the reset, not from {start:?}");
    });
}

/// A sleep polled by one task and then by another (a `select!` that moved it) wakes the one
/// that polled it last.
#[mini::test]
async fn a_sleep_wakes_the_last_task_to_poll_it() {
    let (first, first_wakes) = util::counting_waker();
    let (second, second_wakes) = util::counting_waker();
    let mut s = sleep(Duration::from_millis(50)); // far enough off to be pending at both polls
    for waker in [&first, &second] {
        assert!(std::pin::Pin::new(&mut s).poll(&mut std::task::Context::from_waker(waker)).is_pending());
    }
    // Timers fire in deadline order: by the time this later one ends, `s` has fired.
    sleep(Duration::from_millis(100)).await;
    assert_eq!((first_wakes.count(), second_wakes.count()), (0, 1));
}

/// hyper's `rt::Sleep` must be `Send + Sync`; so must what is built from a `Sleep`.
#[test]
fn sleep_interval_and_timeout_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<mini::time::Sleep>();
    assert_send_sync::<mini::time::Interval>();
    assert_send_sync::<mini::time::Timeout<std::future::Ready<u32>>>();
    assert_send_sync::<mini::time::Timeout<mini::time::Sleep>>();
}

/// Polls `sleep` once, by hand, on the current runtime, with `waker`: it must be pending.
fn register(sleep: &mut mini::time::Sleep, waker: &std::task::Waker) {
    let mut cx = std::task::Context::from_waker(waker);
    assert!(std::pin::Pin::new(sleep).poll(&mut cx).is_pending());
}

/// Whether `rt`'s Debug output counts `n` pending timers.
fn pending_timers(rt: &mini::Runtime, n: usize) -> bool {
    format!("{rt:?}").contains(&format!("timers: {n},"))
}

/// Runs `rt` until past `deadline` and through a loop turn after it, which fires every timer
/// due by then. (A sleep already due when first polled completes without a turn, and a
/// yield is polled again before the loop looks at the timers; a fresh 1 ms sleep that is
/// still pending at its first poll can only end through a turn.)
fn turn_after(rt: &mini::Runtime, deadline: Instant) {
    rt.block_on(async {
        sleep_until(deadline).await;
        loop {
            let (mut s, mut waited) = (sleep(Duration::from_millis(1)), false);
            poll_fn(|cx| {
                let poll = std::pin::Pin::new(&mut s).poll(cx);
                waited |= poll.is_pending();
                poll
            })
            .await;
            if waited {
                return;
            }
        }
    });
}

/// A sleep registered on a runtime and dropped on another thread cannot reach that runtime's
/// timers: the drop does nothing (no panic), and the entry stays until its deadline, then
/// fires, waking the waker of its last poll once, and is gone.
#[test]
fn a_sleep_dropped_on_another_thread_leaves_its_entry_to_fire_at_its_deadline() {
    let rt = mini::Runtime::new().unwrap();
    let (waker, wakes) = util::counting_waker();
    // Far enough off to be pending when registered, even under valgrind.
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut s = sleep_until(deadline);
    rt.block_on(async { register(&mut s, &waker) });
    assert!(pending_timers(&rt, 1), "{rt:?}");
    std::thread::spawn(move || drop(s)).join().expect("the drop on another thread does not panic");
    assert!(pending_timers(&rt, 1), "the other thread cannot reach the entry: {rt:?}");
    assert_eq!(wakes.count(), 0);
    turn_after(&rt, deadline);
    assert!(pending_timers(&rt, 0), "the entry fired at its deadline: {rt:?}");
    assert_eq!(wakes.count(), 1, "it woke its last poller, once");
}

/// Two runtimes' timers can hold the very same key (same deadline, both first in their
/// sequence). A sleep dropped while another runtime is current must leave that runtime's
/// entry alone (it matches by the runtime's id, not by the key alone), and a sleep whose
/// runtime is gone drops without a panic.
#[test]
fn a_sleep_dropped_on_another_runtime_or_after_its_own_leaves_the_others_alone() {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let first = mini::Runtime::new().unwrap();
    let second = mini::Runtime::new().unwrap();
    let (waker, _) = util::counting_waker();
    let mut on_first = sleep_until(deadline);
    let mut on_second = sleep_until(deadline);
    first.block_on(async { register(&mut on_first, &waker) });
    second.block_on(async { register(&mut on_second, &waker) });
    second.block_on(async { drop(on_first) });
    assert!(pending_timers(&second, 1), "the second runtime's entry was removed: {second:?}");
    assert!(pending_timers(&first, 1), "{first:?}");
    drop(second);
    drop(on_second); // its runtime is gone: nothing to do, no panic
}

/// A sleep first polled on one runtime, then awaited on another, registers on the second and
/// completes there; the first runtime's entry stays until its deadline, and is then gone.
/// The second runtime already holds an entry with the very key the sleep had on the first:
/// the sleep must register an entry of its own, not take over that one.
#[test]
fn a_sleep_moved_to_another_runtime_registers_there_and_completes() {
    let deadline = Instant::now() + Duration::from_millis(200); // pending at both registrations
    let first = mini::Runtime::new().unwrap();
    let (waker, _) = util::counting_waker();
    let mut s = sleep_until(deadline);
    first.block_on(async { register(&mut s, &waker) });
    util::within_hang_guard(move || {
        let second = mini::Runtime::new().unwrap();
        second.block_on(async {
            let mut same_key = sleep_until(deadline); // the first entry here, as `s` was there
            register(&mut same_key, &waker);
            register(&mut s, &waker);
            assert!(pending_timers(&second, 2), "the moved sleep has its own entry: {second:?}");
            s.await;
            assert!(Instant::now() >= deadline);
        });
        assert!(pending_timers(&second, 0), "{second:?}");
    });
    assert!(pending_timers(&first, 1), "the first runtime's entry waits for its deadline");
    turn_after(&first, deadline);
    assert!(pending_timers(&first, 0), "{first:?}");
}

/// Nothing would ever fire a sleep polled outside a runtime: it says so instead of hanging.
#[test]
#[should_panic(expected = "a timer was polled outside a mini runtime")]
fn a_sleep_polled_outside_any_runtime_panics() {
    let (waker, _) = util::counting_waker();
    register(&mut sleep(Duration::from_secs(3600)), &waker);
}

/// Reset on another thread (say, a `Send` hyper timer handed across), a registered sleep
/// leaves its old entry to fire, and registers its new deadline when next polled at home.
#[test]
fn a_sleep_reset_on_another_thread_registers_the_new_deadline_at_its_next_poll() {
    util::within_hang_guard(|| {
        let rt = mini::Runtime::new().unwrap();
        let (waker, _) = util::counting_waker();
        let mut s = sleep(Duration::from_secs(3600));
        rt.block_on(async { register(&mut s, &waker) });
        let soon = Instant::now() + Duration::from_millis(5);
        let s = std::thread::spawn(move || {
            s.reset(soon);
            s
        })
        .join()
        .unwrap();
        rt.block_on(async move {
            s.await;
            assert!(Instant::now() >= soon);
        });
        // The hour-long entry could not be removed from the other thread: it is still there.
        assert!(pending_timers(&rt, 1), "{rt:?}");
    });
}
