//! The thread's current runtime: how `spawn`, new sockets and local wakes find it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use crate::executor::{Core, Remote};

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Makes `core` the thread's runtime until the guard drops, then restores the previous one.
pub(crate) struct Enter {
    previous: Option<Rc<Core>>,
}

/// Enters `core`. Panics if the thread is already inside a `block_on`: the outer loop would
/// be stalled for the whole inner call, which is a deadlock in waiting.
pub(crate) fn enter_block_on(core: &Rc<Core>) -> Enter {
    CURRENT.with(|c| {
        let mut current = c.borrow_mut();
        if current.is_some() {
            panic!(
                "mini: cannot call `block_on` from inside a running mini runtime: it would block \
                 the thread that runs every other task. Use `.await` (or `mini::spawn`) instead."
            );
        }
        *current = Some(core.clone());
    });
    Enter { previous: None }
}

/// Enters `core` even if another runtime is current (used while dropping a runtime's tasks).
pub(crate) fn enter_for_shutdown(core: &Rc<Core>) -> Enter {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(core.clone()));
    Enter { previous }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // `try_with`: the guard may drop while the thread's locals are being torn down.
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `f` with the current runtime, or returns `None` outside one.
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    CURRENT.try_with(|c| c.borrow().as_ref().map(f)).ok().flatten()
}

/// The local half of a wake: if this thread is running the runtime that owns `remote`,
/// push the task straight onto its run queue and return true. Otherwise the caller takes the
/// cross-thread path.
pub(crate) fn schedule_local(remote: &Arc<Remote>, key: u64) -> bool {
    with_current(|core| {
        if Arc::ptr_eq(&core.remote, remote) {
            core.push_local(key);
            true
        } else {
            false
        }
    })
    .unwrap_or(false)
}

/// Wakes `waker` after the loop's next look at the reactor (see `coop::poll_proceed`).
/// Outside a runtime there is no loop to wait for: wake at once.
pub(crate) fn defer(waker: &Waker) {
    let deferred = with_current(|core| core.defer(waker)).is_some();
    if !deferred {
        waker.wake_by_ref();
    }
}
