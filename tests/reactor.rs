//! The reactor, black-box: stale wakers and reused fd numbers, deregistration on drop,
//! edge-triggered draining, wakes from other threads, and `Async` over a Unix socket.
//!
//! Unix stream sockets are used where a test needs data to be queued *synchronously*: a
//! `write` on one end has made the other end readable (and queued its epoll event) by the
//! time it returns, so a bounded number of yields is enough for a correct runtime and a
//! lost wake-up fails the test instead of hanging it.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use mini::io::{Async, Direction};
use mini::Runtime;

use util::{counting_waker, is_nonblocking, join_within, poll_once, tcp_pair};

/// Reads from a Unix stream inside `read_with` (the closure gets a shared reference).
fn read_unix(s: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    (&*s).read(buf)
}

/// A waker parked on a closed fd must never be woken by whatever later gets the same fd
/// number: fails if the reactor keys events (or waiters) by fd number. The old socket stays
/// open through a `dup`, both the old and the new socket are made readable, and the reactor
/// is run; the old waiter's wake count must stay 0.
///
/// This test cannot see the two defences of `Async::drop` and the reactor's slab: each masks
/// the other here. The two tests after it take one each.
#[test]
fn stale_waker_is_not_woken_through_a_reused_fd_number() {
    mini::block_on(async {
        // Another test thread may grab the freed number first; then try again with a new one.
        for _ in 0..50 {
            if fd_reuse_round().await.expect("I/O error") {
                return;
            }
        }
        panic!("never got a freed fd number back (other threads kept taking it)");
    });
}

/// One round of the test above; `false` if the freed fd number was taken by someone else.
async fn fd_reuse_round() -> io::Result<bool> {
    let (old_peer, old) = UnixStream::pair()?;
    let _old_dup = old.try_clone()?; // keeps the old socket open after its fd is closed
    let old = Async::new(old)?;
    let fd = old.as_fd().as_raw_fd();

    // Park a counting waker on the old fd: the read finds nothing and must return Pending.
    let (stale_waker, stale_wakes) = counting_waker();
    let mut buf = [0; 16];
    assert!(park_read(&old, &stale_waker));
    drop(old); // deregisters, then closes `fd`

    // Fds are allocated lowest-first: the next socket gets `fd` back, unless another thread
    // of the test harness took it in between.
    let mut spare = Vec::new();
    let (new, new_peer) = loop {
        let (a, b) = UnixStream::pair()?;
        if a.as_raw_fd() == fd {
            break (a, b);
        }
        if b.as_raw_fd() == fd {
            break (b, a);
        }
        spare.push((a, b));
        if spare.len() == 4 {
            return Ok(false);
        }
    };
    assert_eq!(new.as_raw_fd(), fd as RawFd);
    let new = Async::new(new)?;

    // A third socket to wait on, so that neither the old nor the new one has a waiter of
    // the current task: one failed read clears its (optimistic) readiness.
    let (sync_tx, sync_rx) = UnixStream::pair()?;
    let sync_rx = Async::new(sync_rx)?;
    let (throwaway, _) = counting_waker();
    assert!(park_read(&sync_rx, &throwaway));

    // All three become readable now; one reactor turn reports them together.
    (&old_peer).write_all(b"old")?;
    (&new_peer).write_all(b"new")?;
    (&sync_tx).write_all(b"go")?;
    let n = sync_rx.read_with(|s| read_unix(s, &mut buf)).await?; // runs the reactor
    assert_eq!(&buf[..n], b"go");

    let n = new.read_with(|s| read_unix(s, &mut buf)).await?;
    assert_eq!(&buf[..n], b"new", "the new registration must work normally");
    assert_eq!(stale_wakes.count(), 0, "a waker of the closed fd was woken");
    Ok(true)
}

/// Dropping an `Async` must remove its fd from epoll *before* closing it. While another fd
/// (a `dup`, a forked child's copy) keeps the socket open, closing the fd does not remove
/// the registration: the kernel keys it by (fd number, open file), so a stale entry would
/// stay, firing events with the dropped source's token. Here the socket is wrapped again
/// through a fresh `dup` that gets the same fd number back: the kernel refuses that
/// registration with `EEXIST` if the stale one is still there.
#[mini::test]
async fn a_socket_can_be_registered_again_after_its_async_is_dropped() -> io::Result<()> {
    // Another test thread may take the freed fd number first; then try again.
    for _ in 0..50 {
        if register_again_round().await? {
            return Ok(());
        }
    }
    panic!("never got a freed fd number back (other threads kept taking it)");
}

/// One round of the test above; `false` if the freed fd number went to someone else.
async fn register_again_round() -> io::Result<bool> {
    let (peer, socket) = UnixStream::pair()?;
    let keep = socket.try_clone()?; // keeps the socket open after the Async's fd is closed
    let socket = Async::new(socket)?;
    let fd = socket.as_fd().as_raw_fd();
    drop(socket); // deregisters, then closes `fd`

    // `dup` takes the lowest free number: `fd`, unless a lower one is free or another thread
    // took `fd` meanwhile (the spares fill lower holes).
    let mut spares = Vec::new();
    let again = loop {
        let dup = keep.try_clone()?;
        if dup.as_raw_fd() == fd {
            break dup;
        }
        if dup.as_raw_fd() > fd || spares.len() == 8 {
            return Ok(false);
        }
        spares.push(dup);
    };
    drop(spares);
    let again = Async::new(again).unwrap_or_else(|e| {
        panic!("registering the socket again under fd {fd} failed ({e}): epoll still held the dropped Async's registration")
    });
    // And the new registration works: a read parks, the peer's write wakes it.
    let (waker, wakes) = counting_waker();
    assert!(park_read(&again, &waker));
    let reader = mini::spawn(async move {
        let mut buf = [0; 8];
        let n = again.read_with(|s| read_unix(s, &mut buf)).await?;
        Ok::<_, io::Error>(buf[..n].to_vec())
    });
    mini::yield_now().await; // the reader parks
    (&peer).write_all(b"again")?;
    assert_eq!(join_within(reader, 10_000).await?, b"again");
    assert_eq!(wakes.count(), 1, "the first waiter was woken by the write too");
    Ok(true)
}

/// Polls a read on `io` once with `waker` through the poll path (`poll_io`), as a task's
/// `AsyncRead::poll_read` would; true if it parked. The waker stays in the fd's read slot
/// after this returns, as a waiting task's does. (A `read_with` future polled once and
/// dropped takes its waker out with it: a wait given up leaves nothing behind.)
fn park_read(io: &Async<UnixStream>, waker: &Waker) -> bool {
    let mut buf = [0; 8];
    io.poll_io(&mut Context::from_waker(waker), Direction::Read, |s| read_unix(s, &mut buf)).is_pending()
}

/// A closure for a [`Hook`] waker to run once.
type HookFn = Box<dyn FnOnce()>;

thread_local! {
    /// What each [`Hook`] waker runs when woken, by the hook's number.
    static HOOKS: RefCell<Vec<Option<HookFn>>> = const { RefCell::new(Vec::new()) };
}

/// A waker that runs a closure of this thread when it is first woken: lets a test act in
/// the middle of a reactor turn, between two events of one `epoll_wait`.
struct Hook(usize);

impl Wake for Hook {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let hook = HOOKS.with(|hooks| hooks.borrow_mut()[self.0].take());
        if let Some(hook) = hook {
            hook();
        }
    }
}

/// A waker that runs `f` (on this thread) when first woken.
fn hook(f: impl FnOnce() + 'static) -> Waker {
    let n = HOOKS.with(|hooks| {
        let mut hooks = hooks.borrow_mut();
        hooks.push(Some(Box::new(f)));
        hooks.len() - 1
    });
    Waker::from(Arc::new(Hook(n)))
}

/// An event already returned by `epoll_wait` for a source that is dropped before the reactor
/// gets to it must wake nobody, and must not reach the source registered after it (which may
/// get the same fd number): the dropped source is marked gone, and its memory, which the
/// event's token points at, is kept until the next wait (valgrind checks the read). Two sockets wait to read with wakers that, when the
/// reactor wakes them mid-turn, drop the *other* socket and register a fresh one (which
/// takes the freed slot). Both peers shut down their write side, so one `epoll_wait`
/// returns an end-of-stream event (`EPOLLRDHUP`) for each; whichever comes first swaps out
/// the other, whose event is then in flight for a dropped source. If it reached the fresh
/// socket, that socket would read as closed while its peer is still open.
#[mini::test]
async fn an_event_in_flight_for_a_dropped_source_misses_the_source_in_its_slot() -> io::Result<()> {
    type Slot = Rc<RefCell<Option<Async<UnixStream>>>>;
    let (x_peer, x) = UnixStream::pair()?;
    let (y_peer, y) = UnixStream::pair()?;
    let x: Slot = Rc::new(RefCell::new(Some(Async::new(x)?)));
    let y: Slot = Rc::new(RefCell::new(Some(Async::new(y)?)));
    util::reactor_turn().await; // the fresh registrations' first events are out of the way

    // The sockets the hooks registered, each with its (open) peer.
    type Fresh = Rc<RefCell<Vec<(Async<UnixStream>, UnixStream)>>>;
    let fresh: Fresh = Rc::default();
    for (me, other) in [(&x, &y), (&y, &x)] {
        let (other, fresh) = (other.clone(), fresh.clone());
        let waker = hook(move || {
            drop(other.borrow_mut().take()); // deregistered mid-turn
            let (socket, peer) = UnixStream::pair().unwrap();
            fresh.borrow_mut().push((Async::new(socket).unwrap(), peer)); // perhaps its fd number
        });
        let me = me.borrow();
        let me = me.as_ref().unwrap();
        assert!(park_read(me, &waker));
    }

    // Both peers shut down their write side (a close might not reach the socket: a child
    // process forked by another test meanwhile may hold a copy of the peer's fd until its
    // exec). One turn reports both.
    x_peer.shutdown(std::net::Shutdown::Write)?;
    y_peer.shutdown(std::net::Shutdown::Write)?;
    util::reactor_turn().await;

    let fresh = fresh.borrow();
    assert_eq!(fresh.len(), 1, "exactly one hook ran: the other socket was dropped first");
    assert_eq!(usize::from(x.borrow().is_some()) + usize::from(y.borrow().is_some()), 1);
    let (socket, _its_open_peer) = &fresh[0];
    let (waker, _) = counting_waker();
    let closed = poll_once(poll_fn(|cx| socket.poll_ready(cx, Direction::Closed)), &waker);
    assert!(
        closed.is_pending(),
        "the dropped socket's end-of-stream event reached the socket registered in its slot"
    );
    Ok(())
}

/// The number of sources registered with `rt`'s reactor, read from its `Debug` output
/// (`Runtime { tasks: .., sources: N }`), the only public view of the registrations.
fn registered_sources(rt: &Runtime) -> usize {
    let debug = format!("{rt:?}");
    let at = debug.find("sources: ").unwrap_or_else(|| panic!("no source count in {debug:?}"));
    let digits: String = debug[at + 9..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no source count in {debug:?}"))
}

/// Every way an fd leaves the runtime deregisters it: dropping an `Async`, `into_inner`,
/// dropping TCP streams and listeners, and aborting a task that owns a socket. A leak here
/// would keep epoll watching fds the runtime no longer owns.
#[test]
fn every_way_out_deregisters_the_fd() {
    // epoll's registrations: on io_uring, TCP streams are not readiness sources at all.
    let rt = mini::Builder::new().driver(mini::Driver::Epoll).build().unwrap();
    rt.block_on(async {
        let base = registered_sources(&rt);
        let (a, b) = UnixStream::pair()?;
        let a = Async::new(a)?;
        let b = Async::new(b)?;
        assert_eq!(registered_sources(&rt), base + 2);
        drop(a);
        assert_eq!(registered_sources(&rt), base + 1);
        let b = b.into_inner()?;
        assert_eq!(registered_sources(&rt), base);
        drop(b);

        let (client, server) = tcp_pair().await?; // its listener is dropped inside
        assert_eq!(registered_sources(&rt), base + 2);
        let (read_half, write_half) = server.into_split();
        drop(read_half);
        assert_eq!(registered_sources(&rt), base + 2, "the write half still owns the stream");
        drop(write_half);
        drop(client);
        assert_eq!(registered_sources(&rt), base);

        let owner = mini::spawn(async {
            let (mut client, _server) = tcp_pair().await?;
            let mut buf = [0; 1];
            client.read(&mut buf).await // never completes: nobody writes
        });
        while registered_sources(&rt) != base + 2 {
            mini::yield_now().await; // until the task owns its two streams
        }
        owner.abort();
        assert!(owner.await.unwrap_err().is_cancelled());
        assert_eq!(registered_sources(&rt), base, "the aborted task's sockets are still registered");
        Ok::<(), io::Error>(())
    })
    .unwrap();
}

/// Edge-triggered epoll reports each arrival once, so a reader must keep reading until
/// `WouldBlock`. Three messages are queued before the reader first runs; reading them 4
/// bytes at a time must get every byte, and a fourth message sent after the reader has
/// drained the socket (and parked) must raise a new edge and wake it.
#[mini::test]
async fn edge_triggered_reads_drain_everything_queued() -> io::Result<()> {
    let (tx, rx) = UnixStream::pair()?;
    let rx = Async::new(rx)?;
    let messages: [&[u8]; 3] = [b"first message;", b"second;", b"the third and last;"];
    for m in messages {
        (&tx).write_all(m)?;
    }
    let queued = messages.concat();

    let progress = Rc::new(Cell::new(0));
    let reader = mini::spawn({
        let progress = progress.clone();
        let want = queued.len() + 4;
        async move {
            let mut got = Vec::new();
            let mut buf = [0; 4];
            while got.len() < want {
                let n = rx.read_with(|s| read_unix(s, &mut buf)).await?;
                assert_ne!(n, 0, "unexpected end of stream");
                got.extend_from_slice(&buf[..n]);
                progress.set(got.len());
            }
            Ok::<_, io::Error>(got)
        }
    });

    // Until the reader has drained what was queued before it ran (no new edge needed).
    for _ in 0..1000 {
        if progress.get() == queued.len() {
            break;
        }
        mini::yield_now().await;
    }
    assert_eq!(progress.get(), queued.len(), "the reader stopped before draining the socket");
    assert!(!reader.is_finished());

    (&tx).write_all(b"more")?; // a new edge for a parked reader
    let got = join_within(reader, 10_000).await?;
    assert_eq!(got, [queued, b"more".to_vec()].concat());
    Ok(())
}

/// The same over TCP, where a short read (`0 < n < len`) clears the read readiness without
/// the extra syscall that would return `WouldBlock`: 23 queued bytes read 4 at a time end
/// with a short read, after which the next message must still raise an edge and wake the
/// reader. (Awaited rather than bounded: TCP loopback delivery may be deferred to a kernel
/// thread, so a correct runtime may need any number of turns.)
#[mini::test]
async fn tcp_short_read_clearing_loses_no_edge() -> io::Result<()> {
    let (mut client, mut server) = tcp_pair().await?;
    let queued: &[u8] = b"one;two two;three three";
    for m in queued.split_inclusive(|&b| b == b';') {
        client.write_all(m).await?;
    }

    let progress = Rc::new(Cell::new(0));
    let reader = mini::spawn({
        let progress = progress.clone();
        async move {
            let mut got = Vec::new();
            let mut buf = [0; 4];
            while got.len() < 27 {
                let n = server.read(&mut buf).await?;
                assert_ne!(n, 0, "unexpected end of stream");
                got.extend_from_slice(&buf[..n]);
                progress.set(got.len());
            }
            Ok::<_, io::Error>(got)
        }
    });
    while progress.get() < queued.len() {
        mini::yield_now().await;
    }
    assert_eq!(progress.get(), queued.len());
    assert!(!reader.is_finished());

    client.write_all(b"four").await?; // the reader is parked after a short read
    assert_eq!(reader.await??, b"one;two two;three threefour");
    Ok(())
}

/// Two tasks awaiting `readable()` on the same `Async` (shared through an `Rc`, as `&self`
/// allows): data from the peer must wake both, or the one that parked first waits forever.
#[mini::test]
async fn readable_wakes_every_waiting_task() -> io::Result<()> {
    let (tx, rx) = UnixStream::pair()?;
    let rx = Rc::new(Async::new(rx)?);
    let (throwaway, _) = counting_waker();
    assert!(park_read(&rx, &throwaway));

    let [first, second] = [(), ()].map(|()| {
        let rx = rx.clone();
        mini::spawn(async move { rx.readable().await })
    });
    mini::yield_now().await; // both park
    assert!(!first.is_finished() && !second.is_finished(), "readable() resolved with nothing to read");

    (&tx).write_all(b"data")?;
    join_within(second, 10_000).await?; // the latest waiter
    join_within(first, 10_000).await?; // the earlier one: its waker must not have been replaced
    Ok(())
}

/// A one-shot channel completed from another thread: the future stores its waker under a
/// lock, the sender sets the flag and wakes whatever waker is stored.
#[derive(Default)]
struct Oneshot {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Oneshot {
    fn complete(&self) {
        self.done.store(true, Ordering::SeqCst);
        let waker = self.waker.lock().unwrap().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_parked(&self) -> bool {
        self.waker.lock().unwrap().is_some()
    }
}

/// Future of a [`Oneshot`]; reports its first `Pending` on `parked`, if given.
struct Wait {
    shot: Arc<Oneshot>,
    parked: Option<mpsc::Sender<()>>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut slot = self.shot.waker.lock().unwrap();
            if self.shot.done.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *slot = Some(cx.waker().clone());
        }
        if let Some(tx) = self.parked.take() {
            tx.send(()).unwrap();
        }
        Poll::Pending
    }
}

/// The kernel's scheduling state of thread `tid` of this process (`R`, `S`, `D`, ...).
fn thread_state(tid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses and may contain spaces.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// A task parked on a future that another thread completes: the runtime, with nothing else
/// to do, is asleep in `epoll_wait` (the waking thread checks that the runtime thread is in
/// the `S` state first), and the wake must interrupt that wait through the eventfd.
#[mini::test]
async fn a_wake_from_another_thread_interrupts_epoll_wait() {
    // "/proc/thread-self" links to "<pid>/task/<tid>" of the calling thread.
    let link = std::fs::read_link("/proc/thread-self").expect("Linux /proc");
    let tid = link.file_name().unwrap().to_str().unwrap().to_owned();

    let shot = Arc::new(Oneshot::default());
    let (parked_tx, parked_rx) = mpsc::channel();
    let waker_thread = std::thread::spawn({
        let shot = shot.clone();
        move || {
            parked_rx.recv().unwrap();
            // Spin (without sleeping) until the runtime thread blocks. A runtime that
            // busy-polls instead of sleeping never gets there.
            let asleep = (0..1_000_000).any(|_| {
                std::thread::yield_now();
                thread_state(&tid) == Some('S')
            });
            shot.complete();
            asleep
        }
    });
    Wait { shot, parked: Some(parked_tx) }.await;
    assert!(waker_thread.join().unwrap(), "the runtime thread never went to sleep while idle");
}

/// 10,000 tasks, each parked on its own one-shot, completed by two other threads at once:
/// every cross-thread wake must arrive (no lost eventfd notification, no lost queue entry),
/// so every task is polled exactly twice, to park and once for its wake. A lost wake fails
/// at the hang guard instead of hanging the test.
#[test]
fn ten_thousand_wakes_from_two_threads_all_arrive() {
    const TASKS: usize = 10_000;
    let polls = util::within_hang_guard(|| {
        mini::block_on(async {
            let shots: Arc<Vec<Arc<Oneshot>>> = Arc::new((0..TASKS).map(|_| Arc::default()).collect());
            let polls = Rc::new(Cell::new(0usize));
            let tasks: Vec<_> = shots
                .iter()
                .map(|shot| {
                    let (shot, polls) = (shot.clone(), polls.clone());
                    mini::spawn(Counted { polls, inner: Wait { shot, parked: None } })
                })
                .collect();
            mini::yield_now().await; // every task runs once (they were queued first) and parks
            assert!(shots.iter().all(|s| s.is_parked()), "some task did not park");
            assert_eq!(polls.get(), TASKS);

            let threads: Vec<_> = (0..2)
                .map(|t| {
                    let shots = shots.clone();
                    std::thread::spawn(move || shots.iter().skip(t).step_by(2).for_each(|s| s.complete()))
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            for thread in threads {
                thread.join().unwrap();
            }
            polls.get()
        })
    });
    assert_eq!(polls, 2 * TASKS, "each task: one poll to park, one for its wake");
}

/// Counts the polls of the future it wraps.
struct Counted<F> {
    polls: Rc<Cell<usize>>,
    inner: F,
}

impl<F: Future + Unpin> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// `Async` over a Unix socket: `writable()` resolves at once with buffer space; once a read
/// has hit `WouldBlock`, `readable()` waits until the peer writes; `read_with` returns the
/// data; `into_inner` gives back the socket, still non-blocking (as documented), and usable
/// blocking once the caller switches the mode back.
#[mini::test]
async fn async_over_a_unix_socket() -> io::Result<()> {
    let (tx, rx) = UnixStream::pair()?;
    let tx = Async::new(tx)?;
    let rx = Rc::new(Async::new(rx)?);
    let (waker, _wakes) = counting_waker();

    assert!(matches!(poll_once(tx.writable(), &waker), Poll::Ready(Ok(()))));

    let mut buf = [0; 16];
    assert!(park_read(&rx, &waker));
    assert!(poll_once(rx.readable(), &waker).is_pending(), "readable with nothing to read");

    let waiter = mini::spawn({
        let rx = rx.clone();
        async move { rx.readable().await }
    });
    mini::yield_now().await;
    assert!(!waiter.is_finished(), "readable() resolved before the peer wrote");

    let n = tx.write_with(|s| (&*s).write(b"hello")).await?;
    assert_eq!(n, 5);
    join_within(waiter, 10_000).await?;
    let n = rx.read_with(|s| read_unix(s, &mut buf)).await?;
    assert_eq!(&buf[..n], b"hello");

    let rx = Rc::try_unwrap(rx).expect("the waiter task is gone").into_inner()?;
    let err = (&rx).read(&mut buf).expect_err("into_inner keeps non-blocking mode");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    rx.set_nonblocking(false)?;
    tx.get_ref().write_all(b"bye")?;
    let mut bye = [0; 3];
    (&rx).read_exact(&mut bye)?;
    assert_eq!(&bye, b"bye");
    Ok(())
}

/// `Async` over a real pipe (a child process's stdout): reads wait for the writer, see every
/// byte, then end of stream when the writer exits.
#[mini::test]
async fn async_over_a_pipe_reads_a_child_process_output() -> io::Result<()> {
    use std::fs::File;
    use std::os::fd::OwnedFd;
    use std::process::{Command, Stdio};

    let mut child = Command::new("sh")
        .args(["-c", "printf first; sleep 0.05; printf second"])
        .stdout(Stdio::piped())
        .spawn()?;
    let pipe = Async::new(File::from(OwnedFd::from(child.stdout.take().unwrap())))?;
    assert!(is_nonblocking(pipe.get_ref().as_raw_fd())?, "Async::new must set O_NONBLOCK");
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = pipe.read_with(|mut f: &File| f.read(&mut buf)).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"firstsecond");
    assert!(child.wait()?.success());
    Ok(())
}

/// A pipe's read end reports only `EPOLLHUP` when its last writer closes: no `EPOLLIN`, no
/// `EPOLLRDHUP`. The hang-up alone must make it readable, so a parked reader wakes and
/// reads end of stream.
#[mini::test]
async fn a_pipe_reader_wakes_to_end_of_stream_when_the_writer_closes() -> io::Result<()> {
    use std::fs::File;
    use std::os::fd::{FromRawFd, OwnedFd};

    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds into the array it is given, which has room for two.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 just returned these fds, and nothing else owns them.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let reader = Async::new(File::from(read_end))?;
    let reading = mini::spawn(async move {
        let mut buf = [0; 8];
        reader.read_with(|f| (&*f).read(&mut buf)).await
    });
    mini::yield_now().await; // the reader finds the pipe empty and parks
    assert!(!reading.is_finished(), "read from an empty pipe");
    drop(File::from(write_end));
    assert_eq!(join_within(reading, 10_000).await?, 0, "end of stream");
    Ok(())
}

/// Each direction wakes only its own waiters: an event that reports the fd writable (the
/// peer drained a full buffer) wakes the parked writer and leaves the parked reader alone.
#[mini::test]
async fn an_event_of_one_direction_wakes_only_that_direction() -> io::Result<()> {
    let (peer, ours) = UnixStream::pair()?;
    peer.set_nonblocking(true)?;
    let ours = Async::new(ours)?;
    let (reader, reads) = counting_waker();
    let (writer, writes) = counting_waker();
    let (closer, closes) = counting_waker();
    assert!(park_read(&ours, &reader));
    // And a future waiting in a third direction, in the waiter list rather than a slot.
    let mut closed = std::pin::pin!(ours.peer_closed());
    assert!(closed.as_mut().poll(&mut Context::from_waker(&closer)).is_pending());
    let chunk = [7u8; 4096];
    let mut cx = Context::from_waker(&writer);
    // Fill the socket's buffer until the write parks.
    while ours.poll_io(&mut cx, Direction::Write, |s| (&*s).write(&chunk)).is_ready() {}
    let mut drained = [0u8; 4096];
    loop {
        match (&peer).read(&mut drained) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    util::reactor_turn().await; // the writability edge is seen
    assert_eq!(writes.count(), 1, "the parked writer is woken");
    assert_eq!(reads.count(), 0, "a write-side event woke the reader");
    assert_eq!(closes.count(), 0, "a write-side event woke a peer_closed waiter");
    Ok(())
}
