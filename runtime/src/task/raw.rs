//! One allocation per task: its header, its bookkeeping and its future, and the `Waker` that
//! points straight at it.
//!
//! ```text
//!  Box<RawTask<F>>, #[repr(C)]
//!  ┌─ Header (any thread), 32 bytes ─────────────────────────────┐ ◄── Waker data pointer,
//!  │ state: AtomicUsize   flags + reference count (state.rs)     │     TaskRef, JoinHandle,
//!  │ vtable: &'static Vtable   poll / shutdown / join / free, for F   run-queue link
//!  │ next: Cell<*const Header> the intrusive run-queue link      │
//!  │ remote: Arc<Remote>       where a wake from another thread goes
//!  ├─ Stage<F> (runtime thread) ─────────────────────────────────┤
//!  │ Running(F) | Finished(Result<F::Output, JoinError>) | Consumed
//!  ├─ Trailer (runtime thread; found through vtable.trailer) ────┤
//!  │ join_waker, key in the executor's task list, TaskInfo       │
//!  └─────────────────────────────────────────────────────────────┘
//! ```
//!
//! The order is for the cache: a wake and a poll touch the header and the start of the
//! future, which share the allocation's first cache line; the trailer, which the hot path
//! never reads, comes last.
//!
//! A `Waker` is a `RawWaker` whose data pointer is the header and whose vtable is
//! [`WAKER_VTABLE`]: waking is one `fetch_or` on `state` and, if that queued the task, a
//! push of the same pointer onto the run queue (`context::push_local`) or, from another
//! thread, onto the runtime's remote queue. No lookup: the run queue holds the task itself.
//!
//! Invariants (each `unsafe` block below names the one it relies on):
//! 1. **Liveness.** Every `TaskRef`, `Waker` and `JoinHandle` owns one reference in `state`;
//!    the allocation is freed when the count reaches zero, and only then.
//! 2. **Runtime thread only.** `next`, the trailer and the stage are touched only on the
//!    thread that runs the task's runtime: the executor polls and cancels there, and the
//!    `JoinHandle`, which reads the output, is `!Send`. Other threads touch only `state` and
//!    `remote`. `TaskRef` is `Send` so that a wake can carry it to the remote queue, but a
//!    `TaskRef` on another thread is only ever queued or dropped.
//! 3. **Nothing thread-bound outlives completion.** Once `COMPLETE` is set the future has
//!    been dropped; the output stays only while `HANDLE` is set, and the handle drops it (on
//!    the runtime thread) when it goes. A task not yet complete is referenced by the
//!    executor's task list, so its last reference cannot go on another thread. Hence when a
//!    foreign thread drops the last reference, the stage is `Consumed` and the free runs no
//!    user code of a `!Send` type.
//! 4. **The future is pinned.** It lives in the boxed allocation, which never moves, and
//!    leaves the stage only by being dropped in place.
//! 5. **No overlapping borrows of the stage.** The executor borrows it mutably only inside
//!    `poll`/`shutdown`, and the handle only once `COMPLETE` is set, which `poll` sets after
//!    its borrow ends; a task cannot be polled again after that.

use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::state::{State, CANCELLED, COMPLETE, HANDLE};
use super::{JoinError, TaskInfo};
use crate::context;
use crate::executor::Remote;

/// The part of a task every reference can reach, on any thread.
#[repr(C)]
pub(crate) struct Header {
    state: State,
    vtable: &'static Vtable,
    /// The next task in the local run queue (invariant 2: runtime thread only).
    next: Cell<*const Header>,
    remote: Arc<Remote>,
}

// The header is the first half of the allocation's first cache line (see the top).
const _: () = assert!(std::mem::size_of::<Header>() == 32);

/// What the runtime thread keeps about a task besides its future (invariant 2).
#[repr(C)]
struct Trailer {
    /// The task awaiting the `JoinHandle`.
    join_waker: Cell<Option<Waker>>,
    /// This task's key in the executor's task list.
    key: u64,
    info: TaskInfo,
}

/// Aligned to a cache line, so that the header never straddles two (see the top).
#[repr(C, align(64))]
struct RawTask<F: Future> {
    header: Header,
    stage: UnsafeCell<Stage<F>>,
    trailer: Trailer,
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

/// The operations that depend on the future's type, one static table per `F`.
struct Vtable {
    /// Polls the future once, or cancels it if `abort` was called. True when it finished.
    poll: unsafe fn(NonNull<Header>) -> bool,
    /// Runtime shutdown: drops the future where it stands (a cancellation).
    shutdown: unsafe fn(NonNull<Header>),
    /// For `JoinHandle::poll`: writes `Poll<Result<F::Output, JoinError>>` to the pointer.
    poll_join: unsafe fn(NonNull<Header>, *mut (), &mut Context<'_>),
    /// The handle is dropped after completion: drops the output.
    drop_output: unsafe fn(NonNull<Header>),
    /// Frees the allocation (the last reference is gone).
    dealloc: unsafe fn(NonNull<Header>),
    /// Where the trailer is, from the header (it follows the stage, whose size is `F`'s).
    trailer: usize,
}

/// An owned reference to a task (invariant 1), type-erased. What the run queues, the
/// executor's task list and the wakers hold.
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: invariant 2. On another thread a `TaskRef` is only pushed onto the remote queue or
// dropped, which touch `state` and `remote` (an atomic and an `Arc`); the free it may trigger
// runs no thread-bound code (invariant 3).
unsafe impl Send for TaskRef {}

impl TaskRef {
    fn header(&self) -> &Header {
        // SAFETY: invariant 1: this reference keeps the allocation alive.
        unsafe { self.0.as_ref() }
    }

    fn trailer(&self) -> &Trailer {
        // SAFETY: the vtable's offset locates the trailer of this task's `RawTask<F>`, alive
        // by invariant 1.
        unsafe { self.0.byte_add(self.header().vtable.trailer).cast::<Trailer>().as_ref() }
    }

    /// Another reference to the same task.
    pub(crate) fn clone_ref(&self) -> TaskRef {
        self.header().state.ref_inc();
        TaskRef(self.0)
    }

    /// The task's id, origin and name. Runtime thread only (invariant 2).
    pub(crate) fn info(&self) -> &TaskInfo {
        &self.trailer().info
    }

    /// The task's key in the executor's task list.
    pub(crate) fn key(&self) -> u64 {
        self.trailer().key
    }

    /// Whether the future is gone.
    pub(crate) fn is_complete(&self) -> bool {
        self.header().state.load() & COMPLETE != 0
    }

    /// Polls the task once (or cancels it). Returns `None` if it had already completed (a
    /// queue entry left from before), else whether it completed now. Runtime thread only.
    pub(crate) fn run(&self) -> Option<bool> {
        if self.is_complete() {
            return None;
        }
        // SAFETY: invariant 2: the executor calls this on the runtime thread; the task is
        // not complete, so its stage holds the future.
        Some(unsafe { (self.header().vtable.poll)(self.0) })
    }

    /// Runtime shutdown: cancels the task unless it already completed. Runtime thread only.
    pub(crate) fn shutdown(&self) {
        if !self.is_complete() {
            // SAFETY: invariant 2, as in `run`.
            unsafe { (self.header().vtable.shutdown)(self.0) }
        }
    }

    /// Queues the task on its runtime: the local run queue on the runtime's own thread, the
    /// remote queue (and the eventfd) anywhere else. The caller has just set `SCHEDULED`, and
    /// this reference becomes the queue's.
    #[inline]
    fn schedule(self) {
        let remote = ptr::from_ref::<Remote>(&self.header().remote);
        if let Err(task) = context::push_local(remote, self) {
            // The remote path: the task may run (and be freed) on the runtime thread as soon
            // as it is queued, so hold the `Remote` by a clone of our own, not through it.
            let remote = task.header().remote.clone();
            remote.schedule(task);
        }
    }

    /// Sets `SCHEDULED` as a wake does, without queueing: for tests that queue the task by
    /// hand. True if the bit was clear.
    #[cfg(test)]
    pub(crate) fn mark_scheduled(&self) -> bool {
        self.header().state.schedule()
    }

    /// The task's info for the trace: `None` for `block_on`'s stand-in (id 0), which the
    /// trace names as the `block_on` future.
    pub(crate) fn traced_info(&self) -> Option<&TaskInfo> {
        Some(self.info()).filter(|info| info.id != 0)
    }

    /// Whether both refer to the same task.
    pub(crate) fn ptr_eq(&self, other: &TaskRef) -> bool {
        self.0 == other.0
    }

    /// A new `Waker` for the task.
    pub(crate) fn waker(&self) -> Waker {
        // SAFETY: `clone_waker` takes the new waker's own reference.
        unsafe { Waker::from_raw(clone_waker(self.0.as_ptr().cast())) }
    }

    /// What a poll does first: clear `SCHEDULED`. For `block_on`'s stand-in, whose future
    /// the executor polls itself, and for tests that model a poll.
    pub(crate) fn start_poll(&self) {
        self.header().state.unschedule();
    }

    /// A wake that keeps this reference: queues the task on a reference of its own, unless
    /// it is already queued (or complete). For `Waker::wake_by_ref` and `JoinHandle::abort`.
    fn wake_by_ref(&self) {
        if self.header().state.schedule() {
            self.clone_ref().schedule(); // the queue's reference
        }
    }

    /// Gives up ownership of the reference, as a pointer for the intrusive run queue.
    fn into_raw(self) -> *const Header {
        ManuallyDrop::new(self).0.as_ptr()
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: invariant 1: this was a counted reference.
        unsafe { drop_ref(self.0) }
    }
}

/// The local run queue: a FIFO list threaded through the tasks' headers (`Header::next`), so
/// a push is two pointer writes and allocates nothing, and a pop hands back the task itself.
///
/// The queue owns one reference per entry. A task is in at most one queue at a time, so one
/// link is enough: only the wake that sets `SCHEDULED` queues it, and the executor clears the
/// bit only after popping it. (A complete task keeps the bit set, so it is never queued
/// again.) Runtime thread only (invariant 2): the remote queue holds `TaskRef`s instead.
#[derive(Debug)]
pub(crate) struct RunQueue {
    head: Cell<*const Header>,
    tail: Cell<*const Header>,
}

impl RunQueue {
    pub(crate) const fn new() -> RunQueue {
        RunQueue { head: Cell::new(ptr::null()), tail: Cell::new(ptr::null()) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.get().is_null()
    }

    #[inline]
    pub(crate) fn push(&self, task: TaskRef) {
        task.header().next.set(ptr::null());
        let task = task.into_raw();
        match self.tail.replace(task) {
            tail if tail.is_null() => self.head.set(task),
            // SAFETY: `tail` is queued, and the queue owns a reference to it (invariant 1).
            tail => unsafe { (*tail).next.set(task) },
        }
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<TaskRef> {
        let head = NonNull::new(self.head.get().cast_mut())?;
        // The queue's reference passes to the caller.
        let task = TaskRef(head);
        let next = task.header().next.get();
        self.head.set(next);
        if next.is_null() {
            self.tail.set(ptr::null());
        }
        Some(task)
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

/// Drops one reference; frees the task if it was the last.
///
/// # Safety
///
/// The caller owns one reference to a live task.
unsafe fn drop_ref(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the header alive until the decrement.
    let header = unsafe { ptr.as_ref() };
    if header.state.ref_dec() {
        // SAFETY: that was the last reference (invariant 1); nothing can reach the task now.
        unsafe { (header.vtable.dealloc)(ptr) }
    }
}

/// The `Waker` of every task: the data pointer is the task's header.
static WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

fn header_of(ptr: *const ()) -> NonNull<Header> {
    // SAFETY: a task waker's data pointer is always a (non-null) header.
    unsafe { NonNull::new_unchecked(ptr.cast::<Header>().cast_mut()) }
}

unsafe fn clone_waker(ptr: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned owns a reference (invariant 1).
    unsafe { header_of(ptr).as_ref() }.state.ref_inc();
    RawWaker::new(ptr, &WAKER_VTABLE)
}

/// `Waker::wake`: the waker's own reference becomes the queue's, or is dropped.
unsafe fn wake(ptr: *const ()) {
    let task = TaskRef(header_of(ptr)); // the waker's reference, now owned here
    if task.header().state.schedule() {
        task.schedule();
    }
}

unsafe fn wake_by_ref(ptr: *const ()) {
    // The waker's reference stays with the waker: borrowed here, not dropped.
    ManuallyDrop::new(TaskRef(header_of(ptr))).wake_by_ref();
}

unsafe fn drop_waker(ptr: *const ()) {
    // SAFETY: the waker owned a reference (invariant 1).
    unsafe { drop_ref(header_of(ptr)) }
}

/// Allocates a task around `future`. Returns the reference for the executor's task list, the
/// reference for the run queue (the task starts out scheduled) and the handle.
pub(crate) fn new_task<F>(
    future: F,
    remote: Arc<Remote>,
    info: TaskInfo,
    key: u64,
) -> (TaskRef, TaskRef, JoinHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let task = Box::new(RawTask {
        header: Header {
            state: State::new(3),
            vtable: &RawTask::<F>::VTABLE,
            next: Cell::new(ptr::null()),
            remote,
        },
        stage: UnsafeCell::new(Stage::Running(future)),
        trailer: Trailer { join_waker: Cell::new(None), key, info },
    });
    let ptr = NonNull::from(Box::leak(task)).cast::<Header>();
    let handle = JoinHandle { task: TaskRef(ptr), _output: PhantomData };
    (TaskRef(ptr), TaskRef(ptr), handle)
}

impl<F: Future> RawTask<F> {
    const VTABLE: Vtable = Vtable {
        poll: Self::poll,
        shutdown: Self::shutdown,
        poll_join: Self::poll_join,
        drop_output: Self::drop_output,
        dealloc: Self::dealloc,
        trailer: std::mem::offset_of!(RawTask<F>, trailer),
    };

    /// # Safety
    ///
    /// `ptr` is a live `RawTask<F>` (the vtable was chosen by `F`).
    unsafe fn from_header<'a>(ptr: NonNull<Header>) -> &'a RawTask<F> {
        // SAFETY: the header is the first field of a `RawTask<F>` (`#[repr(C)]`).
        unsafe { ptr.cast::<RawTask<F>>().as_ref() }
    }

    fn state(&self) -> &State {
        &self.header.state
    }

    unsafe fn poll(ptr: NonNull<Header>) -> bool {
        // SAFETY: the caller's `TaskRef` keeps the task alive; the vtable matches `F`.
        let task = unsafe { Self::from_header(ptr) };
        if task.state().unschedule() & CANCELLED != 0 {
            // SAFETY: invariant 2 (runtime thread), and the task is not complete.
            unsafe { task.finish(Err(JoinError::Cancelled)) };
            return true;
        }
        // A borrowed waker: the caller's `TaskRef` holds the reference, so this one must not
        // drop it (`ManuallyDrop`); a clone made during the poll takes its own.
        // SAFETY: the data pointer is this task's header and the vtable is the task waker's.
        let waker =
            ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(ptr.as_ptr().cast(), &WAKER_VTABLE)) });
        let mut cx = Context::from_waker(&waker);
        // SAFETY: invariants 2 and 5: only this poll borrows the stage now.
        let stage = unsafe { &mut *task.stage.get() };
        let Stage::Running(future) = stage else { unreachable!("a task not complete holds its future") };
        // SAFETY: invariant 4.
        let future = unsafe { Pin::new_unchecked(future) };
        let result = match catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx))) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError::Panic(payload)),
        };
        // SAFETY: the stage's borrow above has ended; runtime thread.
        unsafe { task.finish(result) };
        true
    }

    unsafe fn shutdown(ptr: NonNull<Header>) {
        // SAFETY: as in `poll`.
        let task = unsafe { Self::from_header(ptr) };
        // SAFETY: invariant 2; the caller checked the task is not complete.
        unsafe { task.finish(Err(JoinError::Cancelled)) };
    }

    /// Ends the task with `result`: drops the future in place, keeps the result if a handle
    /// wants it, marks the task complete, then wakes the handle's task (after, so that a
    /// waker that polls the handle on the spot finds the output).
    ///
    /// # Safety
    ///
    /// Runtime thread, the task not complete, the stage not borrowed.
    unsafe fn finish(&self, result: Result<F::Output, JoinError>) {
        // SAFETY: the caller's conditions: nothing else borrows the stage.
        let stage = unsafe { &mut *self.stage.get() };
        // The future's destructor is user code and may panic; that must not take the runtime
        // down. (The assignment still completes if the old value's drop panics.)
        let _ = catch_unwind(AssertUnwindSafe(|| *stage = Stage::Consumed));
        if self.state().load() & HANDLE != 0 {
            *stage = Stage::Finished(result);
        } else {
            // Nobody will read it: drop it now, on this thread (invariant 3).
            let _ = catch_unwind(AssertUnwindSafe(move || drop(result)));
        }
        self.state().complete();
        if let Some(waker) = self.trailer.join_waker.take() {
            waker.wake();
        }
    }

    unsafe fn poll_join(ptr: NonNull<Header>, out: *mut (), cx: &mut Context<'_>) {
        // SAFETY: the handle's reference keeps the task alive; the vtable matches `F`.
        let task = unsafe { Self::from_header(ptr) };
        // SAFETY: `JoinHandle<F::Output>::poll` passes its own output slot, of this type.
        let out = unsafe { &mut *out.cast::<Poll<Result<F::Output, JoinError>>>() };
        if task.state().load() & COMPLETE != 0 {
            // SAFETY: invariant 5: complete, so no poll borrows the stage; runtime thread.
            let stage = unsafe { &mut *task.stage.get() };
            match std::mem::replace(stage, Stage::Consumed) {
                Stage::Finished(result) => *out = Poll::Ready(result),
                _ => panic!("mini: JoinHandle polled after it returned the task's output"),
            }
            return;
        }
        let join_waker = &task.trailer.join_waker;
        match join_waker.take() {
            Some(w) if w.will_wake(cx.waker()) => join_waker.set(Some(w)),
            _ => join_waker.set(Some(cx.waker().clone())),
        }
    }

    unsafe fn drop_output(ptr: NonNull<Header>) {
        // SAFETY: the handle's reference keeps the task alive; the vtable matches `F`.
        let task = unsafe { Self::from_header(ptr) };
        // SAFETY: invariant 5: called once the task is complete; runtime thread.
        unsafe { *task.stage.get() = Stage::Consumed };
    }

    unsafe fn dealloc(ptr: NonNull<Header>) {
        // SAFETY: the last reference is gone (invariant 1), and the allocation is the
        // `Box<RawTask<F>>` made in `new_task`. Its stage holds nothing thread-bound
        // (invariant 3).
        drop(unsafe { Box::from_raw(ptr.cast::<RawTask<F>>().as_ptr()) });
    }
}

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was aborted.
/// Dropping it *detaches* the task: it keeps running, and its output is dropped.
///
/// # Examples
///
/// ```
/// mini::block_on(async {
///     let handle = mini::spawn(async { 6 * 7 });
///     assert_eq!(handle.await.unwrap(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    task: TaskRef,
    /// `!Send`: the output is read on the runtime thread (invariant 2).
    _output: PhantomData<(Rc<()>, T)>,
}

impl<T> JoinHandle<T> {
    /// Cancels the task. Its future is dropped the next time the runtime gets to it (not
    /// inside this call), and awaiting the handle then gives a [`JoinError`] for which
    /// [`is_cancelled`](JoinError::is_cancelled) is true. A task that already finished
    /// keeps its output.
    ///
    /// ```
    /// mini::block_on(async {
    ///     let handle = mini::spawn(std::future::pending::<()>());
    ///     handle.abort();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        let state = &self.task.header().state;
        if state.load() & COMPLETE == 0 {
            state.cancel();
            self.task.wake_by_ref();
        }
    }

    /// Whether the task has finished: returned, panicked or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.task.is_complete()
    }

    pub(super) fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut out = Poll::Pending;
        // SAFETY: the handle was made for a task whose output type is `T` (`new_task`), and
        // it lives on the runtime thread (`!Send`, invariant 2).
        unsafe { (self.task.header().vtable.poll_join)(self.task.0, ptr::from_mut(&mut out).cast(), cx) };
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if self.task.header().state.drop_handle() & COMPLETE != 0 {
            // SAFETY: invariant 3: the output is dropped here, on the runtime thread.
            unsafe { (self.task.header().vtable.drop_output)(self.task.0) };
        }
        // `task` drops the handle's reference.
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::{pending, poll_fn};
    use std::rc::Rc;
    use std::sync::{mpsc, Arc};
    use std::task::Poll;

    use crate::executor::Remote;
    use crate::Runtime;

    /// The runtime's `Remote`. Every task's header holds a clone of it (and the runtime one),
    /// so once the runtime is dropped the count says how many task allocations are left.
    fn remote() -> Arc<Remote> {
        crate::context::with_current(|core| core.remote.clone()).expect("inside a runtime")
    }

    /// Invariant 1: whichever way a task ends and whoever holds its last reference (the
    /// handle, a waker on another thread, the run queue, the remote queue, the task list at
    /// shutdown), the allocation is freed. A leaked task is invisible from outside (its
    /// future and output are dropped on time regardless), so the test counts the `Remote`
    /// clones the headers hold.
    #[test]
    fn every_task_is_freed_however_it_ends_and_whoever_drops_it_last() {
        let rt = Runtime::new().unwrap();
        let remote = rt.block_on(async {
            assert_eq!(crate::spawn(async { 1 }).await.unwrap(), 1, "awaited");
            drop(crate::spawn(async { 2 })); // detached before it runs
            let done = crate::spawn(async { String::from("held until the handle goes") });
            while !done.is_finished() {
                crate::yield_now().await;
            }
            drop(done);
            let parked = crate::spawn(pending::<()>());
            crate::yield_now().await;
            parked.abort();
            assert!(parked.await.unwrap_err().is_cancelled(), "aborted while parked");
            // Wakers that outlive the task: woken by reference and by value, cloned and
            // dropped, the last one woken on another thread.
            let (tx, rx) = mpsc::channel();
            let kept = crate::spawn(poll_fn(move |cx| {
                tx.send(cx.waker().clone()).unwrap();
                Poll::Ready(())
            }));
            kept.await.unwrap();
            let waker = rx.try_recv().expect("the task ran");
            waker.wake_by_ref();
            let clone = waker.clone();
            clone.wake(); // `wake` by value: the clone's reference is the one it drops
            drop(waker.clone());
            std::thread::spawn(move || waker.wake()).join().unwrap();
            remote()
        });
        rt.block_on(async {
            // Left for the runtime's drop: a task queued on the remote queue by a wake from
            // another thread, and one queued locally that never ran.
            let (tx, rx) = mpsc::channel();
            drop(crate::spawn(poll_fn(move |cx| {
                let _ = tx.send(cx.waker().clone());
                Poll::<()>::Pending
            })));
            crate::yield_now().await;
            let waker = rx.try_recv().expect("the task ran and parked");
            std::thread::spawn(move || waker.wake()).join().unwrap();
            drop(crate::spawn(pending::<()>()));
        });
        drop(rt);
        assert_eq!(Arc::strong_count(&remote), 1, "a task (or the runtime) was never freed");
    }

    /// Invariant 3: the output goes with the handle, on the runtime thread, even while
    /// wakers keep the task's allocation alive (and one of them may be dropped last on
    /// another thread, where a `!Send` output must not be dropped).
    #[test]
    fn dropping_the_handle_of_a_finished_task_drops_its_output_at_once() {
        struct SetOnDrop(Rc<Cell<bool>>);

        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }

        crate::block_on(async {
            let dropped = Rc::new(Cell::new(false));
            let flag = dropped.clone();
            let (tx, rx) = mpsc::channel();
            let handle = crate::spawn(poll_fn(move |cx| {
                tx.send(cx.waker().clone()).unwrap();
                Poll::Ready(SetOnDrop(flag.clone()))
            }));
            while !handle.is_finished() {
                crate::yield_now().await;
            }
            let _waker = rx.try_recv().expect("the task ran"); // keeps the allocation alive
            assert!(!dropped.get(), "the output waits for its handle");
            drop(handle);
            assert!(dropped.get(), "the output is dropped with the handle, not with the last waker");
        });
    }
}
