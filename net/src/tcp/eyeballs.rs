//! Connecting to a name with several addresses without waiting out a dead one: a small
//! "Happy Eyeballs" (RFC 8305).
//!
//! Tried one after another, an address that silently drops SYNs (a host that is down, a
//! firewall, a broken IPv6 route) holds the connect for the kernel's whole SYN timeout,
//! about two minutes on Linux, before the next address is even tried. So each attempt gets
//! [`ATTEMPT_DELAY`] on its own; if it has neither succeeded nor failed by then, the next
//! address is tried beside it, and so on. The first attempt to succeed wins and the others are
//! dropped (their sockets closed). An attempt that fails starts the next one at once. When
//! every address has failed, the last error is returned.
//!
//! The addresses are tried in the resolver's order, with the two families interleaved
//! (RFC 8305 section 4), so that a broken IPv6 path costs one delay, not one per address.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use mini_runtime::time::sleep;

/// How long an attempt runs alone before the next address is tried beside it: RFC 8305's
/// recommended "Connection Attempt Delay".
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

type Attempt<T> = Pin<Box<dyn Future<Output = io::Result<T>>>>;

/// Connects to the first of `addrs` that answers (see the module docs).
pub(crate) async fn race<T, F, Fut>(addrs: Vec<SocketAddr>, connect: F, delay: Duration) -> io::Result<T>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>> + 'static,
{
    let mut waiting = interleave(addrs).into_iter();
    let mut attempts: Vec<Attempt<T>> = Vec::new();
    let mut last_err = None;
    let mut next_start = Box::pin(sleep(Duration::ZERO)); // the first attempt starts at once
    poll_fn(|cx| loop {
        let mut i = 0;
        let mut failed = false;
        while i < attempts.len() {
            match attempts[i].as_mut().poll(cx) {
                Poll::Ready(Ok(stream)) => return Poll::Ready(Ok(stream)),
                Poll::Ready(Err(e)) => {
                    last_err = Some(e);
                    drop(attempts.swap_remove(i));
                    failed = true;
                }
                Poll::Pending => i += 1,
            }
        }
        if failed || attempts.is_empty() || next_start.as_mut().poll(cx).is_ready() {
            if let Some(addr) = waiting.next() {
                attempts.push(Box::pin(connect(addr)));
                next_start.as_mut().reset(Instant::now() + delay);
                continue; // poll the new attempt, which registers its wake-up
            }
            if attempts.is_empty() {
                let err = last_err.take().unwrap_or_else(|| io::Error::other("no addresses to connect to"));
                return Poll::Ready(Err(err));
            }
        }
        return Poll::Pending;
    })
    .await
}

/// The addresses in their order, but alternating families: v6, v4, v6, v4, ... starting with
/// the family of the first.
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else { return addrs };
    let first_is_v6 = first.is_ipv6();
    let (mut same, mut other): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| a.is_ipv6() == first_is_v6);
    let mut out = Vec::with_capacity(same.len() + other.len());
    same.reverse();
    other.reverse();
    while let Some(a) = same.pop() {
        out.push(a);
        if let Some(b) = other.pop() {
            out.push(b);
        }
    }
    out.extend(other.into_iter().rev());
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::task::Context;

    use super::*;

    /// A stand-in connect: port 1 never answers, port 2 is refused, any other port connects.
    /// Records the ports it was asked for, in order.
    fn fake_connect(started: &Rc<RefCell<Vec<u16>>>) -> impl Fn(SocketAddr) -> Attempt<u16> {
        let started = started.clone();
        move |addr| {
            started.borrow_mut().push(addr.port());
            Box::pin(async move {
                match addr.port() {
                    1 => std::future::pending().await,
                    2 => Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
                    port => Ok(port),
                }
            })
        }
    }

    fn v4(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// While an attempt is pending, the next address waits for the delay (an hour here: it
    /// must not start); a failed attempt starts the next at once, whatever the delay.
    #[test]
    fn the_next_address_waits_for_the_delay_unless_an_attempt_fails() {
        mini_runtime::block_on(async {
            let hour = Duration::from_secs(3600);
            let started = Rc::new(RefCell::new(Vec::new()));
            let mut slow = Box::pin(race(vec![v4(1), v4(3)], fake_connect(&started), hour));
            for _ in 0..3 {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                assert!(slow.as_mut().poll(&mut cx).is_pending());
                mini_runtime::yield_now().await;
            }
            assert_eq!(*started.borrow(), [1], "the second address started before the delay");

            started.borrow_mut().clear();
            let port = race(vec![v4(2), v4(3)], fake_connect(&started), hour).await.unwrap();
            assert_eq!(port, 3);
            assert_eq!(*started.borrow(), [2, 3]);

            // Pending, then refused, then a third: the refusal starts the third at once.
            started.borrow_mut().clear();
            let small = Duration::from_millis(1);
            let port = race(vec![v4(1), v4(2), v4(4)], fake_connect(&started), small).await.unwrap();
            assert_eq!(port, 4);
            assert_eq!(*started.borrow(), [1, 2, 4]);
        });
    }

    #[test]
    fn the_families_alternate_from_the_first() {
        let v6 = |p| SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], p));
        let v4 = |p| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(interleave(vec![v6(1), v6(2), v6(3), v4(4)]), [v6(1), v4(4), v6(2), v6(3)]);
        assert_eq!(interleave(vec![v4(1), v6(2), v6(3), v6(4)]), [v4(1), v6(2), v6(3), v6(4)]);
        assert_eq!(interleave(vec![v4(1), v4(2)]), [v4(1), v4(2)]);
        assert_eq!(interleave(vec![]), Vec::<SocketAddr>::new());
    }
}
