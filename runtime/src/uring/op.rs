//! TEMPORARY stand-in: the spec's API, never active.
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

pub(crate) use io_uring::squeue::Entry;

/// Whether the runtime on this thread runs the io_uring driver (false outside a runtime).
pub(crate) fn active() -> bool {
    false
}

/// A submitted request.
#[derive(Debug)]
pub(crate) struct Op<T: 'static>(PhantomData<T>);

/// # Safety
/// See the spec.
pub(crate) unsafe fn submit<T: 'static>(_entry: Entry, _keep: T) -> Op<T> {
    unimplemented!("stand-in")
}

impl<T: 'static> Future for Op<T> {
    type Output = (io::Result<u32>, T);
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        unimplemented!("stand-in")
    }
}
