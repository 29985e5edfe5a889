//! The thread's current runtime: how `spawn`, new sockets and local wakes find it.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use crate::executor::{Core, Remote};
use crate::handle::Handle;
use crate::reactor::Reactor;
use crate::task::TaskRef;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    /// The address of the current runtime's reactor (null outside one), kept in step with
    /// `CURRENT` by `set_current`: the hot path compares against it without a borrow. It is
    /// only ever compared, never dereferenced.
    static CURRENT_REACTOR: Cell<*const Reactor> = const { Cell::new(ptr::null()) };
    /// The current runtime's `Core`, likewise kept in step with `CURRENT`, for the one hot
    /// path that must reach it without a borrow: a task's wake (`push_local`). Non-null only
    /// while `CURRENT` holds an `Rc` of that `Core`, which keeps it alive.
    static CURRENT_CORE: Cell<*const Core> = const { Cell::new(ptr::null()) };
    /// On a blocking-pool thread, while it runs a `spawn_blocking` closure: the handle of the
    /// runtime that spawned it, so `Handle::current()` works there as in tokio.
    static BLOCKING_HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Makes `core` the thread's runtime; returns the previous one.
fn set_current(c: &RefCell<Option<Rc<Core>>>, core: Option<Rc<Core>>) -> Option<Rc<Core>> {
    CURRENT_REACTOR.set(core.as_ref().map_or(ptr::null(), |core| Rc::as_ptr(&core.reactor)));
    CURRENT_CORE.set(core.as_ref().map_or(ptr::null(), Rc::as_ptr));
    c.replace(core)
}

/// Makes `core` the thread's runtime until the guard drops, then restores the previous one.
pub(crate) struct Enter {
    previous: Option<Rc<Core>>,
}

/// Enters `core`. Panics if the thread is already inside a `block_on`: the outer loop would
/// be stalled for the whole inner call, which is a deadlock in waiting.
pub(crate) fn enter_block_on(core: &Rc<Core>) -> Enter {
    CURRENT.with(|c| {
        if c.borrow().is_some() {
            panic!(
                "mini: cannot call `block_on` from inside a running mini runtime: it would block \
                 the thread that runs every other task. Use `.await` (or `mini::spawn`) instead."
            );
        }
        set_current(c, Some(core.clone()));
    });
    Enter { previous: None }
}

/// Enters `core` even if another runtime is current (used while dropping a runtime's tasks).
///
/// A runtime kept in a thread-local may be dropped while the thread's locals are torn down,
/// after `CURRENT` is gone: then nothing is entered (`with_current` finds no runtime, so a
/// task destructor that spawns is told it is outside one), rather than panicking inside a
/// TLS destructor, which aborts the process.
pub(crate) fn enter_for_shutdown(core: &Rc<Core>) -> Enter {
    let previous = CURRENT.try_with(|c| set_current(c, Some(core.clone()))).ok().flatten();
    Enter { previous }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // `try_with`: the guard may drop while the thread's locals are being torn down. Then
        // `CURRENT` is gone, and `CURRENT_CORE` (which has no destructor) must not be left
        // pointing at a runtime that may be freed next.
        if CURRENT.try_with(|c| set_current(c, previous)).is_err() {
            CURRENT_CORE.set(ptr::null());
            CURRENT_REACTOR.set(ptr::null());
        }
    }
}

/// Runs `f` with the current runtime, or returns `None` outside one.
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    CURRENT.try_with(|c| c.borrow().as_ref().map(f)).ok().flatten()
}

/// The handle of the runtime whose `spawn_blocking` closure this thread is running, if any.
pub(crate) fn blocking_handle() -> Option<Handle> {
    BLOCKING_HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Runs a `spawn_blocking` closure with `handle` as the thread's [`Handle::current`].
pub(crate) fn with_blocking_handle<R>(handle: Handle, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = BLOCKING_HANDLE.try_with(|h| h.borrow_mut().take());
        }
    }
    BLOCKING_HANDLE.with(|h| *h.borrow_mut() = Some(handle));
    let _reset = Reset; // also when `f` panics: the pool thread goes on to other runtimes' jobs
    f()
}

/// Whether `reactor` belongs to the thread's current runtime: one TLS load and a compare.
/// (Addresses cannot be confused: the caller's `Rc` keeps its reactor alive, so no other
/// reactor can occupy that address meanwhile.)
#[inline]
pub(crate) fn is_current_reactor(reactor: &Rc<Reactor>) -> bool {
    CURRENT_REACTOR.get() == Rc::as_ptr(reactor)
}

/// The local half of a wake: if this thread is running the runtime that owns `remote`, push
/// `task` straight onto its run queue (no lock, no syscall). Otherwise give it back, for the
/// cross-thread path. One TLS load, one pointer load and a compare on the hot path.
#[inline]
pub(crate) fn push_local(remote: *const Remote, task: TaskRef) -> Result<(), TaskRef> {
    // SAFETY: `CURRENT_CORE` is non-null only while `CURRENT` holds an `Rc` of that `Core`
    // (`set_current` keeps the two in step, and `Enter::drop` clears it when `CURRENT` is
    // gone), so the `Core` is alive for this call.
    match unsafe { CURRENT_CORE.get().as_ref() } {
        Some(core) if Arc::as_ptr(&core.remote) == remote => {
            core.push_local(task);
            Ok(())
        }
        _ => Err(task),
    }
}

/// Wakes `waker` after the loop's next look at the reactor (see `coop::poll_proceed`).
/// Outside a runtime there is no loop to wait for: wake at once.
pub(crate) fn defer(waker: &Waker) {
    let deferred = with_current(|core| core.defer(waker)).is_some();
    if !deferred {
        waker.wake_by_ref();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use crate::Runtime;

    thread_local! {
        static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
    }

    /// A runtime kept in a thread-local is dropped while the thread's locals are torn down,
    /// possibly after `CURRENT` itself (locals are destroyed in the reverse order of their
    /// first use, and this one is used first). The drop must shut the runtime down without
    /// `CURRENT`, not panic inside a TLS destructor, which aborts the whole process.
    #[test]
    fn a_runtime_dropped_during_thread_local_teardown_shuts_down_quietly() {
        let thread = std::thread::spawn(|| {
            RUNTIME.with(|rt| *rt.borrow_mut() = Some(Runtime::new().unwrap()));
            RUNTIME.with(|rt| {
                let rt = rt.borrow();
                let rt = rt.as_ref().unwrap();
                rt.block_on(async { drop(crate::spawn(std::future::pending::<()>())) });
                assert_eq!(rt.alive_tasks(), 1, "a task is left for the drop to cancel");
            });
        });
        thread.join().expect("the thread ended cleanly");
    }
}
