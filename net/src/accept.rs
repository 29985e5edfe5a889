//! The accept loop shared by [`TcpListener`](crate::TcpListener) and
//! [`UnixListener`](crate::UnixListener): errors that concern one connection are skipped.
//!
//! A server loop usually ends with `listener.accept().await?`. If a client that resets its
//! connection while it waits in the backlog (ECONNABORTED), or one that a firewall rule
//! refuses (EPERM), made that `?` return, one client would stop the server for everyone.
//! Which errors are per connection is decided in one place,
//! [`socket::is_per_connection_accept_error`]; the rest (out of fds, out of memory) reach
//! the caller, who can back off and retry.

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;

use mini_runtime::io::{Async, Direction};
use mini_runtime::socket;

use crate::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Polls `accept` on `io` until it yields a connection, a listener-level error, or
/// `Pending`, skipping per-connection errors.
///
/// Each try goes through [`Async::poll_io`], so each spends one unit of the task's
/// cooperative budget: a flood of failing connections makes the task yield to the others
/// (and come back) instead of spinning inside one poll.
pub(crate) fn poll_accept<L: AsFd, R>(
    io: &Async<L>,
    cx: &mut Context<'_>,
    mut accept: impl FnMut(&L) -> io::Result<R>,
) -> Poll<io::Result<R>> {
    loop {
        match ready!(io.poll_io(cx, Direction::Read, &mut accept)) {
            Err(e) if socket::is_per_connection_accept_error(&e) => continue,
            res => return Poll::Ready(res),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::poll_fn;

    use super::*;

    /// A listener nobody connects to: a fresh source starts out ready, so `poll_io` calls
    /// the scripted `accept` at once, and the script decides what each call returns.
    fn idle_listener() -> Async<std::net::TcpListener> {
        Async::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap()
    }

    fn os_error(errno: i32) -> io::Result<u32> {
        Err(io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn per_connection_errors_are_skipped() {
        mini::block_on(async {
            let io = idle_listener();
            let mut script = [libc::ECONNABORTED, libc::EPROTO, libc::EPERM, libc::ENETUNREACH]
                .into_iter()
                .map(os_error)
                .chain([Ok(7)]);
            let got = poll_fn(|cx| poll_accept(&io, cx, |_| script.next().unwrap())).await;
            assert_eq!(got.unwrap(), 7);
        });
    }

    #[test]
    fn listener_errors_reach_the_caller() {
        mini::block_on(async {
            let io = idle_listener();
            for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
                let mut script = [os_error(errno), Ok(7)].into_iter();
                let got = poll_fn(|cx| poll_accept(&io, cx, |_| script.next().unwrap())).await;
                assert_eq!(got.unwrap_err().raw_os_error(), Some(errno));
            }
        });
    }

    /// Ten thousand aborted connections in a row: the accepting task must let another task
    /// run before it gets through them, as it would for ten thousand successful accepts.
    #[test]
    fn a_flood_of_skipped_errors_yields_to_other_tasks() {
        mini::block_on(async {
            let io = idle_listener();
            let other_ran = std::rc::Rc::new(Cell::new(false));
            let flag = other_ran.clone();
            let other = mini::spawn(async move { flag.set(true) });
            let (mut tries, mut ran_before_the_end) = (0, false);
            let got = poll_fn(|cx| {
                poll_accept(&io, cx, |_| {
                    tries += 1;
                    ran_before_the_end |= other_ran.get();
                    if tries < 10_000 {
                        os_error(libc::ECONNABORTED)
                    } else {
                        Ok(7)
                    }
                })
            })
            .await;
            assert_eq!(got.unwrap(), 7);
            assert!(ran_before_the_end, "the accept loop never yielded in {tries} tries");
            other.await.unwrap();
        });
    }
}

/// A stream of accepted connections, from [`TcpListener::incoming`] or
/// [`UnixListener::incoming`]: the `futures_core::Stream` form of `accept`, for code written
/// with `StreamExt` (`for_each_concurrent`, `take`, `filter_map`, ...).
///
/// It never ends. An error that concerns the listener (out of fds, out of memory) is yielded
/// as an item, and the next poll tries again, as `accept` would: stop on it, or back off.
/// Per-connection errors are skipped, as in `accept`. The peer's address is dropped; use
/// `peer_addr` on the stream, or `accept`, when it matters.
///
/// [`TcpListener::incoming`]: crate::TcpListener::incoming
/// [`UnixListener::incoming`]: crate::UnixListener::incoming
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct Incoming<'a, L> {
    listener: &'a L,
}

impl<'a, L> Incoming<'a, L> {
    pub(crate) fn new(listener: &'a L) -> Incoming<'a, L> {
        Incoming { listener }
    }
}

impl Stream for Incoming<'_, TcpListener> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener.poll_accept(cx).map(|accepted| Some(accepted.map(|(stream, _peer)| stream)))
    }
}

impl Stream for Incoming<'_, UnixListener> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener.poll_accept(cx).map(|accepted| Some(accepted.map(|(stream, _peer)| stream)))
    }
}
