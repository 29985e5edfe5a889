//! Timers: [`sleep`], [`timeout`], [`interval`].
//!
//! All timers of a runtime live in one min-heap (four children per node) ordered by
//! `(deadline, sequence number)`, which also tracks where each timer sits: inserting and
//! cancelling are O(log n), the earliest deadline is at the top, and no thread is spent per
//! timer. The executor turns that earliest deadline into the `epoll_wait` timeout, and
//! after each wait wakes every timer that is due.
//!
//! A [`Sleep`] holds no pointer to that heap, only plain data (so it is `Send + Sync`, as
//! hyper's `rt::Sleep` requires): its deadline and, once registered, the id of the `Timers`
//! it went into plus its key there. Each poll and the drop find the heap through the thread's
//! current runtime, and touch it only if its id matches.
//!
//! ```text
//!  Sleep { deadline, entry: None }
//!    │ first poll, on the thread's runtime (context::with_current → core.timers)
//!    ▼
//!  Timers(id).heap.insert(deadline, waker) ─► key    entry = Some { timers: id, key }
//!  executor loop: timeout = first deadline - now ──► epoll_pwait2(timeout)
//!                 Timers::fire(now) ──► remove due entries, wake their tasks
//!  later polls:  current Timers id == entry.timers ? update the waker in place
//!                                                  : register on this runtime too (moved)
//!  Sleep::drop / reset: current Timers id == entry.timers ? heap.remove(key)
//!                       : nothing (another thread, or the runtime is gone; see below)
//! ```
//!
//! Ids come from a global counter and are never reused. An address would not do: a runtime
//! dropped and a new one created could get the same address, and a stale sleep would then
//! remove the new runtime's entry that happens to have the same key.
//!
//! What a `Sleep` away from its runtime does:
//!
//! 1. Dropped (or reset) on another thread, or after its runtime is gone: nothing, and no
//!    panic. If the runtime lives, its entry stays until the deadline, then fires and wakes
//!    the waker of the last poll: at worst a spurious wake of a task, which every future
//!    must tolerate. (So a `sleep(Duration::MAX)` dropped on another thread keeps one heap
//!    entry for the runtime's lifetime.)
//! 2. Polled on a different runtime than the one it registered with: it registers there
//!    and completes there; the first runtime's entry stays until its deadline, as in 1.
//! 3. Polled outside any runtime: a panic that says so (nothing would ever fire it).
//!
//! A timer wakes no earlier than its deadline and, with `epoll_pwait2`, typically tens of
//! microseconds after it (the kernel's timer slack). On kernels before 5.11 the fallback
//! `epoll_wait` rounds the timeout up to whole milliseconds.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::context;
use crate::coop;

/// Where a timer sits in its runtime's [`Timers`]: a slot, whose current position in the
/// heap `Timers` tracks, and the timer's sequence number, unique for the runtime's life. A
/// slot is reused once its timer fired or was removed; the sequence number tells a stale
/// key from the slot's new occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    slot: u32,
    seq: u64,
}

/// The next [`Timers`] id. Global and never reused (u64 never wraps in practice), so an id
/// names one runtime's timers for the life of the process.
static NEXT_TIMERS_ID: AtomicU64 = AtomicU64::new(1);

/// The timers of one runtime.
pub(crate) struct Timers {
    /// Which runtime's timers these are: what a [`Sleep`] keeps instead of a pointer.
    id: u64,
    heap: RefCell<Heap>,
    /// The heap's earliest deadline, kept beside it by every change: the loop asks for it
    /// twice per turn, and a `Cell` read costs less than the borrow.
    first: Cell<Option<Instant>>,
    /// Tells apart timers with the same deadline; u64 never wraps in practice.
    next_seq: Cell<u64>,
}

/// A 4-ary min-heap of timers ordered by `(deadline, seq)`, with each timer's position kept
/// up to date in `positions` so that a timer can be found and removed by its [`Key`] in
/// O(log n).
///
/// Why not a `BTreeMap<(Instant, u64), Waker>`, the obvious ordered map: it is what mini
/// used first, and its insert and remove code, compiled afresh for that key and value
/// type, was an eighth of mini-runtime's machine code (docs/PERFORMANCE.md, build time).
/// The heap is a hundred lines. To pop as fast as the map at 100k timers it keeps its nodes
/// small and `Copy` (the wakers live beside it, per slot) and gives each node four children,
/// which sit in two cache lines: half the levels of a binary heap, each costing one miss.
///
/// ```text
///   nodes:     [ (t1,s4,slot 2) (t3,s1,slot 0) (t2,s7,slot 1) ]   heap order: parent <= child
///   positions: slot 0 -> 1,  slot 1 -> 2,  slot 2 -> 0,  slot 3 -> FREE
///   wakers:    slot 0 -> w1, slot 1 -> w7, slot 2 -> w4, slot 3 -> None
///   free:      [3]
/// ```
#[derive(Default)]
struct Heap {
    nodes: Vec<Node>,
    /// Slot -> index of its node in `nodes`, or `FREE`.
    positions: Vec<u32>,
    /// Slot -> the waker of its timer (`None` while the slot is free).
    wakers: Vec<Option<Waker>>,
    /// Slots not in use, reused before `positions` grows.
    free: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Node {
    deadline: Instant,
    seq: u64,
    slot: u32,
}

const FREE: u32 = u32::MAX;

/// Children per node.
const ARITY: usize = 4;

impl Node {
    /// Whether `self` fires before `other`: the earlier deadline, then the earlier timer.
    fn before(&self, other: &Node) -> bool {
        (self.deadline, self.seq) < (other.deadline, other.seq)
    }
}

impl Heap {
    fn insert(&mut self, deadline: Instant, seq: u64, waker: Waker) -> Key {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.positions.push(FREE);
                self.wakers.push(None);
                u32::try_from(self.positions.len() - 1).expect("mini: more than 4 billion timers")
            }
        };
        self.wakers[slot as usize] = Some(waker);
        self.nodes.push(Node { deadline, seq, slot });
        self.sift_up(self.nodes.len() - 1);
        Key { slot, seq }
    }

    /// The index in `nodes` of the timer `key`, if it is still pending.
    fn find(&self, key: Key) -> Option<usize> {
        let at = *self.positions.get(key.slot as usize)? as usize;
        self.nodes.get(at).filter(|node| node.seq == key.seq).map(|_| at)
    }

    /// Removes the node at `at`; returns its deadline and waker.
    fn remove_at(&mut self, at: usize) -> (Instant, Waker) {
        let node = self.nodes.swap_remove(at);
        let slot = node.slot as usize;
        self.positions[slot] = FREE;
        self.free.push(node.slot);
        let waker = self.wakers[slot].take().expect("a pending timer has a waker");
        if at < self.nodes.len() {
            // The last node moved into the hole: it may belong above or below it.
            let at = self.sift_up(at);
            self.sift_down(at);
        }
        (node.deadline, waker)
    }

    /// Puts `node` at `at` and records where it is.
    fn place(&mut self, at: usize, node: Node) {
        self.nodes[at] = node;
        // Fits: `nodes` never holds more entries than there are slots, and slots are u32.
        self.positions[node.slot as usize] = at as u32;
    }

    /// Moves the node at `at` up while it fires before its parent (parents move down into
    /// the hole); returns where it ended.
    fn sift_up(&mut self, mut at: usize) -> usize {
        let node = self.nodes[at];
        while at > 0 {
            let parent = (at - 1) / ARITY;
            if !node.before(&self.nodes[parent]) {
                break;
            }
            self.place(at, self.nodes[parent]);
            at = parent;
        }
        self.place(at, node);
        at
    }

    /// Moves the node at `at` down while one of its children fires before it.
    fn sift_down(&mut self, mut at: usize) {
        let node = self.nodes[at];
        let len = self.nodes.len();
        loop {
            let first_child = ARITY * at + 1;
            if first_child >= len {
                break;
            }
            let mut earliest = first_child;
            for child in first_child + 1..(first_child + ARITY).min(len) {
                if self.nodes[child].before(&self.nodes[earliest]) {
                    earliest = child;
                }
            }
            if !self.nodes[earliest].before(&node) {
                break;
            }
            self.place(at, self.nodes[earliest]);
            at = earliest;
        }
        self.place(at, node);
    }
}

impl Default for Timers {
    fn default() -> Timers {
        // Relaxed: the id only has to be unique, it orders nothing.
        let id = NEXT_TIMERS_ID.fetch_add(1, Ordering::Relaxed);
        Timers { id, heap: RefCell::default(), first: Cell::new(None), next_seq: Cell::new(0) }
    }
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers").field("id", &self.id).field("pending", &self.len()).finish()
    }
}

impl Timers {
    pub(crate) fn len(&self) -> usize {
        self.heap.borrow().nodes.len()
    }

    /// The earliest deadline, which bounds the reactor's wait.
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.first.get()
    }

    /// Brings `first` up to date after a change to the heap.
    fn note_first(&self, heap: &Heap) {
        self.first.set(heap.nodes.first().map(|node| node.deadline));
    }

    /// Removes every timer due at `now` and moves it (deadline, waker) into `wake`, earliest
    /// first.
    pub(crate) fn fire(&self, now: Instant, wake: &mut Vec<(Instant, Waker)>) {
        let mut heap = self.heap.borrow_mut();
        while heap.nodes.first().is_some_and(|node| node.deadline <= now) {
            wake.push(heap.remove_at(0));
        }
        self.note_first(&heap);
    }

    fn insert(&self, deadline: Instant, waker: Waker) -> Key {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let mut heap = self.heap.borrow_mut();
        let key = heap.insert(deadline, seq, waker);
        self.note_first(&heap);
        key
    }

    /// Updates the waker of a pending timer; false if it already fired.
    fn set_waker(&self, key: Key, waker: &Waker) -> bool {
        let mut heap = self.heap.borrow_mut();
        if heap.find(key).is_none() {
            return false;
        }
        match &mut heap.wakers[key.slot as usize] {
            Some(w) if w.will_wake(waker) => {}
            w => *w = Some(waker.clone()),
        }
        true
    }

    /// Removes a pending timer and returns its waker, for the caller to drop outside every
    /// borrow (a waker's drop is user code).
    fn remove(&self, key: Key) -> Option<Waker> {
        let mut heap = self.heap.borrow_mut();
        let at = heap.find(key)?;
        let (_, waker) = heap.remove_at(at);
        self.note_first(&heap);
        Some(waker)
    }
}

/// Where a registered [`Sleep`] sits: which runtime's [`Timers`], and its key there.
#[derive(Debug, Clone, Copy)]
struct Entry {
    timers: u64,
    key: Key,
}

/// Thirty years from `now`: the stand-in for "never" when a deadline overflows `Instant`.
fn far_future(now: Instant) -> Instant {
    let mut years = 30u64;
    loop {
        if let Some(t) = now.checked_add(Duration::from_secs(years * 365 * 86_400)) {
            return t;
        }
        years /= 2; // a platform whose Instant cannot reach that far
    }
}

fn deadline_after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration).unwrap_or_else(|| far_future(now))
}

/// Waits until `duration` has passed.
///
/// A `duration` too large for `Instant` (such as `Duration::MAX`) means "never", not a panic.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// mini::block_on(async {
///     let start = Instant::now();
///     mini::time::sleep(Duration::from_millis(5)).await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep { deadline: deadline_after(duration), entry: None }
}

/// Waits until `deadline`.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// mini::block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(2);
///     mini::time::sleep_until(deadline).await;
///     assert!(Instant::now() >= deadline);
/// });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, entry: None }
}

/// Future of [`sleep`] and [`sleep_until`].
///
/// It registers its timer on the first poll (so creating one costs nothing) and cancels it
/// on drop (so dropping a million pending sleeps leaves nothing behind).
///
/// A `Sleep` is `Send + Sync`: it holds only its deadline and the id and key of its timer,
/// and finds its runtime's timers through the thread it is polled or dropped on. Dropped on
/// another thread, or after its runtime is gone, it does nothing (a living runtime's entry
/// then fires harmlessly at its deadline); polled on another runtime, it registers there
/// and completes there. The [module docs](self) say more.
///
/// # Panics
///
/// Polled outside a mini runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fn assert_send_sync<T: Send + Sync>(_: &T) {}
///
/// mini::block_on(async {
///     let sleep = mini::time::sleep(Duration::from_millis(1));
///     assert_send_sync(&sleep); // so it can be boxed as a `dyn Future + Send + Sync`
///     let boxed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>> =
///         Box::pin(sleep);
///     boxed.await;
/// });
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Sleep {
    deadline: Instant,
    /// The registered timer: `None` until first polled, and again once complete.
    entry: Option<Entry>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish()
    }
}

impl Sleep {
    /// The instant at which this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline, whether or not the sleep has completed; the next poll waits for
    /// the new one.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// mini::block_on(async {
    ///     let mut sleep = mini::time::sleep(Duration::from_secs(3600));
    ///     sleep.reset(Instant::now() + Duration::from_millis(1));
    ///     sleep.await;
    /// });
    /// ```
    #[inline]
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
    }

    /// Removes the registered timer, if this thread runs the runtime that holds it; anywhere
    /// else there is nothing to reach, and the entry fires harmlessly at its deadline.
    fn cancel(&mut self) {
        if let Some(entry) = self.entry.take() {
            let removed = context::with_current(|core| {
                (core.timers.id == entry.timers).then(|| core.timers.remove(entry.key))
            });
            drop(removed); // the waker, dropped outside the context's borrow
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A sleep already due completes without waiting: it spends the co-operative budget.
        coop::budgeted(cx, |cx| self.poll_deadline(cx))
    }
}

impl Sleep {
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        if Instant::now() >= this.deadline {
            this.cancel();
            return Poll::Ready(());
        }
        let (deadline, entry, waker) = (this.deadline, this.entry, cx.waker());
        let registered = context::with_current(|core| {
            let timers = &core.timers;
            match entry {
                // Already in this runtime's heap: update the waker in place.
                Some(e) if e.timers == timers.id && timers.set_waker(e.key, waker) => e,
                // First poll, or moved from another runtime (whose entry stays there until
                // its deadline: it cannot be reached from here).
                _ => Entry { timers: timers.id, key: timers.insert(deadline, waker.clone()) },
            }
        });
        let Some(registered) = registered else {
            panic!("mini: a timer was polled outside a mini runtime; await it inside `mini::block_on`")
        };
        this.entry = Some(registered);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The error of [`timeout`]: the deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `future`, giving up after `duration`: `Err(Elapsed)` if it did not complete in time
/// (the future is then dropped, which cancels it).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// mini::block_on(async {
///     let slow = std::future::pending::<()>();
///     assert!(mini::time::timeout(Duration::from_millis(1), slow).await.is_err());
///     let fast = async { 7 };
///     assert_eq!(mini::time::timeout(Duration::from_secs(1), fast).await, Ok(7));
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep(duration) }
}

/// Runs `future` until `deadline`, as [`timeout`] does.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// mini::block_on(async {
///     // One deadline shared by several steps.
///     let deadline = Instant::now() + Duration::from_secs(5);
///     let a = mini::time::timeout_at(deadline, async { 1 }).await;
///     let b = mini::time::timeout_at(deadline, async { 2 }).await;
///     assert_eq!((a, b), (Ok(1), Ok(2)));
/// });
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep_until(deadline) }
}

pin_project! {
    /// Future of [`timeout`] and [`timeout_at`].
    #[must_use = "futures do nothing unless you .await or poll them"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The future first: a result that is ready at the deadline still counts.
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        ready!(Pin::new(this.sleep).poll(cx));
        Poll::Ready(Err(Elapsed(())))
    }
}

/// What an [`Interval`] does about ticks it missed because the task was busy (or the
/// thread stalled) past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire every missed tick at once, one per `tick()` call, then carry on the original
    /// schedule (`start + n * period`).
    Burst,
    /// Restart the schedule from the late tick: when a tick comes a whole period or more
    /// late, the next one is one `period` after it was taken.
    Delay,
    /// Drop the missed ticks and wait for the next one on the original schedule. The default.
    #[default]
    Skip,
}

// `Interval`'s functions are `#[inline]`: in a debug build they are then compiled only into
// programs that use intervals (see docs/PERFORMANCE.md, build time).

/// Ticks every `period`, the first tick at once.
///
/// # Panics
///
/// If `period` is zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// mini::block_on(async {
///     let mut every = mini::time::interval(Duration::from_millis(1));
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert_eq!(second - first, Duration::from_millis(1));
/// });
/// ```
#[inline]
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "mini::time::interval: the period must be non-zero");
    let now = Instant::now();
    Interval { period, next: now, sleep: sleep_until(now), missed: MissedTickBehavior::default() }
}

/// Future source of [`interval`]: call [`tick`](Interval::tick) in a loop.
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    /// When the next tick is scheduled.
    next: Instant,
    sleep: Sleep,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled for.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (the poll form of [`tick`](Self::tick)).
    #[inline]
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(Pin::new(&mut self.sleep).poll(cx));
        let scheduled = self.next;
        let now = Instant::now();
        let on_schedule = scheduled.checked_add(self.period).unwrap_or_else(|| far_future(now));
        self.next = match self.missed {
            MissedTickBehavior::Burst => on_schedule,
            MissedTickBehavior::Delay if now > on_schedule => now + self.period,
            MissedTickBehavior::Delay => on_schedule,
            MissedTickBehavior::Skip if now >= on_schedule => {
                // The first point of the original grid strictly after now.
                let periods_behind = (now - scheduled).as_nanos() / self.period.as_nanos();
                let skip = u32::try_from(periods_behind + 1).unwrap_or(u32::MAX);
                scheduled.checked_add(self.period * skip).unwrap_or_else(|| far_future(now))
            }
            MissedTickBehavior::Skip => on_schedule,
        };
        self.sleep.reset(self.next);
        Poll::Ready(scheduled)
    }

    /// Chooses what happens to missed ticks (default: [`MissedTickBehavior::Skip`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use mini::time::{interval, MissedTickBehavior};
    ///
    /// mini::block_on(async {
    ///     let mut iv = interval(Duration::from_millis(2));
    ///     iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
    ///     let start = iv.tick().await;
    ///     std::thread::sleep(Duration::from_millis(5)); // a stall: two ticks missed
    ///     // Burst catches up tick by tick on the original schedule.
    ///     assert_eq!(iv.tick().await, start + Duration::from_millis(2));
    ///     assert_eq!(iv.tick().await, start + Duration::from_millis(4));
    /// });
    /// ```
    #[inline]
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// The current missed-tick behaviour.
    #[inline]
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// The period between ticks.
    #[inline]
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the schedule: the next tick is one period from now.
    #[inline]
    pub fn reset(&mut self) {
        self.next = deadline_after(self.period);
        self.sleep.reset(self.next);
    }
}

/// An [`Interval`] is a stream of its ticks, each the instant it was scheduled for (as
/// [`tick`](Interval::tick) returns). It never ends.
///
/// # Examples
///
/// By hand; with futures-util's `StreamExt` it is `every.next().await`, or
/// `every.take(3).collect::<Vec<_>>().await`.
///
/// ```
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use std::time::Duration;
///
/// use futures_core::Stream;
///
/// mini::block_on(async {
///     let mut every = mini::time::interval(Duration::from_millis(1));
///     let first = poll_fn(|cx| Pin::new(&mut every).poll_next(cx)).await.unwrap();
///     let second = poll_fn(|cx| Pin::new(&mut every).poll_next(cx)).await.unwrap();
///     assert_eq!(second - first, Duration::from_millis(1));
///     assert_eq!(every.size_hint(), (usize::MAX, None)); // it never ends
/// });
/// ```
impl futures_core::Stream for Interval {
    type Item = Instant;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None) // endless
    }
}

/// Never terminated: an [`Interval`] can be polled in a `select!` loop for ever.
impl futures_core::FusedStream for Interval {
    #[inline]
    fn is_terminated(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A waker that tells timers apart by which one woke: `Waker::noop` would do for the
    /// heap, but `set_waker` must see a different waker to replace it.
    fn waker() -> Waker {
        crate::test_util::counting_waker().0
    }

    /// The heap against the ordered map it replaced, over a long pseudo-random run of
    /// inserts with colliding deadlines, removals (live and stale keys), waker updates and
    /// fires: every answer and every fired order must match.
    #[test]
    fn the_heap_behaves_as_an_ordered_map() {
        let timers = Timers::default();
        // The model's value: the waker the timer should fire with, to check the order of
        // timers with equal deadlines too (by `will_wake`).
        let mut model: BTreeMap<(Instant, u64), Waker> = BTreeMap::new();
        let mut keys: Vec<(Instant, Key)> = Vec::new(); // every key ever handed out
        let base = Instant::now();
        let mut rng = 0x2545_f491_4f6c_dd1du64; // xorshift: deterministic, no dependency
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut fired = Vec::new();
        for step in 0..20_000u64 {
            match next() % 8 {
                0..=3 => {
                    // Few distinct deadlines, so the sequence number must break ties; ahead
                    // of the clock below, so the heap holds a few thousand timers.
                    let deadline = base + Duration::from_millis(step / 200 + next() % 50);
                    let w = waker();
                    let key = timers.insert(deadline, w.clone());
                    model.insert((deadline, key.seq), w);
                    keys.push((deadline, key));
                }
                4 | 5 if !keys.is_empty() => {
                    let (deadline, key) = keys[(next() % keys.len() as u64) as usize];
                    let expected = model.remove(&(deadline, key.seq)).is_some();
                    assert_eq!(timers.remove(key).is_some(), expected, "remove, step {step}");
                }
                6 if !keys.is_empty() => {
                    let (deadline, key) = keys[(next() % keys.len() as u64) as usize];
                    let w = waker();
                    let pending = model.get_mut(&(deadline, key.seq)).map(|m| *m = w.clone()).is_some();
                    assert_eq!(timers.set_waker(key, &w), pending, "set_waker, step {step}");
                }
                _ => {
                    // A clock that moves 1 ms every 200 steps.
                    let now = base + Duration::from_millis(step / 200);
                    timers.fire(now, &mut fired);
                    let mut expected = Vec::new();
                    while let Some(entry) = model.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let ((deadline, _), w) = entry.remove_entry();
                        expected.push((deadline, w));
                    }
                    assert_eq!(fired.len(), expected.len(), "fire, step {step}");
                    for ((d, w), (ed, ew)) in fired.drain(..).zip(&expected) {
                        assert!(d == *ed && w.will_wake(ew), "fire order, step {step}");
                    }
                }
            }
            assert_eq!(timers.len(), model.len(), "len, step {step}");
            assert_eq!(timers.next_deadline(), model.keys().next().map(|k| k.0), "next, step {step}");
        }
    }

    #[test]
    fn a_removed_or_fired_timer_frees_its_slot_and_its_key_goes_stale() {
        let timers = Timers::default();
        let at = Instant::now();
        let first = timers.insert(at, waker());
        assert!(timers.remove(first).is_some());
        let second = timers.insert(at, waker());
        assert_eq!(second.slot, first.slot, "the slot is reused");
        assert!(timers.remove(first).is_none(), "a stale key finds nothing");
        assert!(!timers.set_waker(first, &waker()));
        assert_eq!(timers.len(), 1);
        timers.fire(at, &mut Vec::new());
        assert!(timers.remove(second).is_none(), "fired: nothing left to remove");
        assert_eq!((timers.len(), timers.heap.borrow().positions.len()), (0, 1));
    }
}
