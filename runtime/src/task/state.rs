//! A task's state: one `AtomicUsize`, changed only by read-modify-write operations.
//!
//! ```text
//!  bit:  63 ..................... 4 │    3     │   2    │    1     │     0     │
//!        reference count            │ CANCELLED│ HANDLE │ COMPLETE │ SCHEDULED │
//! ```
//!
//! - `SCHEDULED`: the task sits in a run queue (local or remote), or it is complete. Set by a
//!   wake, cleared by the executor just before it polls. While it is set, further wakes do
//!   nothing, so a task is queued at most once; once the task is complete it stays set, so
//!   every late wake does nothing.
//! - `COMPLETE`: the future is gone (it returned, panicked or was cancelled); the output, if a
//!   handle still wants it, sits in the task.
//! - `HANDLE`: the [`JoinHandle`](super::JoinHandle) is alive, so the output must be kept.
//! - `CANCELLED`: `abort` was called; the next poll drops the future instead of polling it.
//! - The count: one per `Waker`, per run-queue entry, for the handle, and for the executor's
//!   task list while the task is not complete. The task is freed when it reaches zero.
//!
//! Every transition other than the reference count's is a read-modify-write with `AcqRel`,
//! for the reason given at [`State::unschedule`]. The loom models in `loom.rs` check the
//! wake-versus-poll race over every interleaving.

use crate::loom::{AtomicUsize, Ordering};

pub(super) const SCHEDULED: usize = 1 << 0;
pub(super) const COMPLETE: usize = 1 << 1;
pub(super) const HANDLE: usize = 1 << 2;
pub(super) const CANCELLED: usize = 1 << 3;
pub(super) const REF_ONE: usize = 1 << 4;

/// A count this high means references are being leaked in a loop: abort, as `Arc` does,
/// before the count could wrap into the flag bits.
const REF_MAX: usize = isize::MAX as usize;

#[derive(Debug)]
pub(super) struct State(AtomicUsize);

impl State {
    /// A new task: queued, with a handle, and `refs` references.
    pub(super) fn new(refs: usize) -> State {
        State(AtomicUsize::new(SCHEDULED | HANDLE | (refs * REF_ONE)))
    }

    pub(super) fn load(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// A wake: sets `SCHEDULED`; true if this call set it, and the caller must queue the task.
    ///
    /// Always a write (`fetch_or`), even when the bit is already set: see [`unschedule`].
    ///
    /// [`unschedule`]: State::unschedule
    pub(super) fn schedule(&self) -> bool {
        self.0.fetch_or(SCHEDULED, Ordering::AcqRel) & SCHEDULED == 0
    }

    /// Called by the executor just before polling: wakes from now on queue the task again.
    /// Returns the state before the change (for `CANCELLED`).
    ///
    /// A read-modify-write, like the wake's. A wake from another thread makes its change (a
    /// message sent, a flag set) and then sets `SCHEDULED`; if it finds the bit still set
    /// (this poll has not begun), it queues nothing and relies on this poll to see the change.
    /// Both being read-modify-writes on one atomic, one comes after the other in its
    /// modification order: if the wake's comes first, this `AcqRel` one reads it and the poll
    /// sees the change; if this one comes first, the wake finds the bit clear and queues the
    /// task. With a plain store here (or a plain load in the wake), each side could miss the
    /// other (the store-buffering pattern) and the task would sleep forever. Checked by the
    /// loom model in `loom.rs`.
    pub(super) fn unschedule(&self) -> usize {
        self.0.fetch_and(!SCHEDULED, Ordering::AcqRel)
    }

    /// The future is gone: late wakes do nothing from now on.
    pub(super) fn complete(&self) {
        self.0.fetch_or(COMPLETE | SCHEDULED, Ordering::AcqRel);
    }

    /// `abort`: the next poll cancels.
    pub(super) fn cancel(&self) {
        self.0.fetch_or(CANCELLED, Ordering::AcqRel);
    }

    /// The handle is dropped; returns the state before.
    pub(super) fn drop_handle(&self) -> usize {
        self.0.fetch_and(!HANDLE, Ordering::AcqRel)
    }

    /// One more reference (a waker cloned, a queue entry made). `Relaxed`, as in `Arc`: the
    /// new reference is made from an existing one, which keeps the task alive meanwhile.
    pub(super) fn ref_inc(&self) {
        if self.0.fetch_add(REF_ONE, Ordering::Relaxed) > REF_MAX {
            std::process::abort();
        }
    }

    /// One reference fewer; true if it was the last, and the caller must free the task.
    /// `AcqRel`, as `Arc`'s drop: every use of the task through other references happens
    /// before the free.
    pub(super) fn ref_dec(&self) -> bool {
        self.0.fetch_sub(REF_ONE, Ordering::AcqRel) & !(REF_ONE - 1) == REF_ONE
    }
}
