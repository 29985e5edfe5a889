//! Cooperative scheduling: a per-poll budget of I/O operations.
//!
//! Without it, a task reading a socket that never drains (a client pipelining as fast as it
//! can) would loop inside one `poll` forever, because every read succeeds. Each successful
//! I/O operation spends one unit; when the budget is spent, the next operation wakes its own
//! task and returns `Pending`. The task goes to the back of the run queue and the others get
//! their turn, which includes a look at epoll for the sockets that became ready meanwhile.
//! This is tokio's scheme (`runtime/coop.rs`), at the same size.
//!
//! Not only fd I/O spends it: every mini leaf future that can complete without waiting does
//! ([`budgeted`]): a sleep already due, a tick an `Interval` owes, a finished task's
//! `JoinHandle`, `readable()` on a ready fd, a signal already delivered. Otherwise a loop
//! over `sleep(Duration::ZERO)` would never let another task run.

use std::cell::Cell;
use std::task::{ready, Context, Poll};

/// I/O operations one task may complete in one poll. 128 is tokio's figure: large enough
/// that a busy echo task moves ~0.5 MiB per turn with 4 KiB buffers (so the check costs
/// nothing measurable), small enough that a flooded connection yields within microseconds.
pub(crate) const TASK_BUDGET: u32 = 128;

/// Outside a task poll (e.g. in `Drop` code) operations are not limited.
const UNCONSTRAINED: u32 = u32::MAX;

thread_local! {
    // A const-initialised `Cell` with no destructor: access is a plain TLS load, no lazy init.
    static BUDGET: Cell<u32> = const { Cell::new(UNCONSTRAINED) };
}

/// Gives the next poll a fresh budget.
#[inline]
pub(crate) fn reset(budget: u32) {
    BUDGET.set(budget);
}

/// Spends one unit, or, if none is left, returns `Pending` and reschedules the task *after
/// the next look at the reactor* (as tokio does). Waking it at once would put it straight
/// back on the run queue: a lone busy task would then be polled again and again, up to
/// `MAX_POLLS_BETWEEN_IO` times, before the loop looked for other ready sockets.
///
/// Runs before every I/O operation, so it is written to inline into its caller: a TLS load,
/// a compare and a store, with the rare path out of line.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    match BUDGET.get() {
        0 => out_of_budget(cx),
        n => {
            BUDGET.set(n - 1);
            Poll::Ready(())
        }
    }
}

#[cold]
#[inline(never)]
fn out_of_budget(cx: &mut Context<'_>) -> Poll<()> {
    crate::context::defer(cx.waker());
    Poll::Pending
}

/// Gives back the unit taken by `poll_proceed` when the operation did not complete (it
/// returned `Pending`): only completed operations count.
#[inline]
pub(crate) fn refund() {
    BUDGET.set(BUDGET.get().saturating_add(1));
}

/// Polls `inner` as one operation on the budget: spends a unit when it is ready, spends
/// nothing when it is pending, and does not poll it at all once the budget is spent. For the
/// leaf futures that can complete without waiting (timers, join handles, readiness,
/// signals): a loop over one of them must still let the other tasks run, as tokio's do.
#[inline]
pub(crate) fn budgeted<T>(cx: &mut Context<'_>, inner: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    ready!(poll_proceed(cx));
    let poll = inner(cx);
    if poll.is_pending() {
        refund();
    }
    poll
}
