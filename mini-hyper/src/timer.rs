//! [`MiniTimer`]: hyper's `rt::Timer` on mini's timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// hyper's [`rt::Timer`](hyper::rt::Timer) on [`mini::time`]: what hyper's header-read
/// timeout, HTTP/2 keep-alive pings and the like wait on.
///
/// Its sleeps are [`mini::time::Sleep`]s, which are `Send + Sync` as hyper requires (they
/// hold a deadline and a key, not a pointer), so no `unsafe impl` is involved. They must be
/// polled on a mini runtime's thread; hyper polls them inside the connection future, which
/// runs there. [`reset`](hyper::rt::Timer::reset) moves a mini sleep in place instead of
/// allocating a new one.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// use hyper::server::conn::http1;
/// use mini_hyper::MiniTimer;
///
/// let mut builder = http1::Builder::new();
/// builder.timer(MiniTimer).header_read_timeout(Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MiniTimer;

/// A mini sleep as a hyper `rt::Sleep` (the trait and `Sleep` are both foreign, so a
/// wrapper is needed to implement one for the other).
#[derive(Debug)]
struct HyperSleep(mini::time::Sleep);

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}

impl hyper::rt::Timer for MiniTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(mini::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(mini::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(ours) => ours.get_mut().0.reset(new_deadline),
            // Another timer's sleep (a builder's timer swapped midway): replace it.
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
