//! One-shot completion requests (file I/O): [`submit`] a request with the data it needs kept
//! alive, await its [`Op`], get the result and the data back.
//!
//! Why the data moves into the request: the kernel reads or writes the request's buffer at
//! some time before the completion is posted. A future can be dropped at any `.await`, so a
//! borrowed `&mut [u8]` could be freed (or reused) while the kernel still writes into it. The
//! buffer is therefore owned by the request's [`Slot`], which the request holds (see the
//! driver's top comment) until its completion, whether or not anyone still awaits it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::Tag;
use crate::context;
use crate::sys::uring::Entry;

/// What a request and its future share.
pub(crate) struct Slot {
    result: Cell<Option<i32>>,
    waker: RefCell<Option<Waker>>,
    keep: RefCell<Option<Box<dyn Any>>>,
}

impl Slot {
    /// The kernel's result came: store it and wake the awaiting task, if any. A slot whose
    /// `Op` was dropped is freed right after, with what it kept.
    pub(super) fn complete(&self, result: i32) {
        self.result.set(Some(result));
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A submitted request: resolves to the completion's result (a negative result is the error
/// it names) and the data kept alive for it.
///
/// Dropping it does not cancel the request (file I/O finishes quickly and cannot be
/// interrupted): the driver keeps the data until the kernel is done.
pub(crate) struct Op<T: 'static> {
    slot: Rc<Slot>,
    _keep: PhantomData<T>,
}

impl<T> fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op").field("done", &self.slot.result.get().is_some()).finish()
    }
}

/// Whether the runtime on this thread runs the io_uring driver (false outside a runtime).
pub(crate) fn active() -> bool {
    context::with_current(|core| core.reactor.uring().is_some()).unwrap_or(false)
}

/// Submits `entry` (its `user_data` is overwritten) with `keep` held until its completion.
///
/// # Panics
///
/// Outside a runtime on the io_uring driver ([`active`] is false).
///
/// # Safety
///
/// Every pointer in `entry` must point into heap memory owned by `keep` (the contents of a
/// `Vec`, `Box` or `CString`, which do not move when `keep` moves), or to `'static` memory.
pub(crate) unsafe fn submit<T: 'static>(entry: Entry, keep: T) -> Op<T> {
    let slot = Rc::new(Slot {
        result: Cell::new(None),
        waker: RefCell::new(None),
        keep: RefCell::new(Some(Box::new(keep))),
    });
    let submitted = context::with_current(|core| {
        let uring = core.reactor.uring().expect("mini: a completion request outside the io_uring driver");
        // SAFETY: the entry's pointers lie in `keep` (the caller's promise), which the slot
        // owns; the request holds the slot until its completion.
        unsafe { uring.push_holding(slot.clone(), Tag::Op, |data| entry.user_data(data), -1) };
    });
    submitted.expect("mini: a completion request outside a mini runtime");
    Op { slot, _keep: PhantomData }
}

impl<T: 'static> Future for Op<T> {
    type Output = (io::Result<u32>, T);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(result) = self.slot.result.get() else {
            *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let keep = self.slot.keep.borrow_mut().take().expect("an op's data is taken once");
        let keep = *keep.downcast::<T>().expect("the op's own type");
        let result = if result < 0 { Err(io::Error::from_raw_os_error(-result)) } else { Ok(result as u32) };
        Poll::Ready((result, keep))
    }
}
