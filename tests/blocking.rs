//! The blocking pool, black-box: `spawn_blocking` results and panics, the thread bound,
//! aborting a queued job, dropping a runtime with idle or busy pool threads, and the name
//! lookups that use the pool (`lookup_host`, `TcpListener::bind`, `TcpStream::connect`).
//!
//! Waits are on channels and counters. The only sleeps are inside blocking jobs, standing in
//! for blocking work; the only timeouts are generous bounds that turn a hang into a failure.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mini::net::{lookup_host, TcpListener, TcpStream};
use mini::Runtime;

/// The pool's thread bound, `MAX_BLOCKING_THREADS` in `runtime/src/blocking.rs` (private
/// there; keep the two in step).
const MAX_BLOCKING_THREADS: usize = 64;

/// How long a test waits for something that should happen at once, before calling it a hang.
const HANG: Duration = Duration::from_secs(10);

/// Sends on its channel when dropped.
struct SignalOnDrop(mpsc::Sender<()>);

impl Drop for SignalOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// 1000 jobs return their own index, while a local task keeps running on the runtime thread.
/// Job 0 blocks until that task has ticked 100 times, so the last job to finish must see at
/// least 100 ticks, and a pool that ran jobs on the runtime thread would fail here.
#[mini::test]
async fn a_thousand_jobs_while_other_tasks_run() {
    const JOBS: usize = 1000;
    let ticks = Arc::new(AtomicUsize::new(0));
    let stop = Rc::new(Cell::new(false));
    let (ticked_tx, ticked_rx) = mpsc::channel();
    let ticker = mini::spawn({
        let (ticks, stop) = (ticks.clone(), stop.clone());
        async move {
            while !stop.get() {
                if ticks.fetch_add(1, SeqCst) + 1 == 100 {
                    ticked_tx.send(()).unwrap();
                }
                mini::yield_now().await;
            }
        }
    });

    let finished = Arc::new(AtomicUsize::new(0));
    let ticks_seen_last = Arc::new(AtomicUsize::new(usize::MAX));
    let mut ticked_rx = Some(ticked_rx);
    let handles: Vec<_> = (0..JOBS)
        .map(|i| {
            let gate = ticked_rx.take();
            let (ticks, finished, seen_last) = (ticks.clone(), finished.clone(), ticks_seen_last.clone());
            mini::spawn_blocking(move || {
                if let Some(gate) = gate {
                    gate.recv_timeout(HANG).expect("the runtime ran no other task meanwhile");
                }
                thread::sleep(Duration::from_micros(100)); // the "blocking work"
                if finished.fetch_add(1, SeqCst) + 1 == JOBS {
                    seen_last.store(ticks.load(SeqCst), SeqCst);
                }
                i
            })
        })
        .collect();

    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), i);
    }
    stop.set(true);
    ticker.await.unwrap();
    let seen = ticks_seen_last.load(SeqCst);
    assert!((100..usize::MAX).contains(&seen), "the last job saw {seen} ticks");
}

#[derive(Debug, PartialEq)]
struct Boom(u32);

/// A panic becomes a `JoinError` carrying the closure's own payload, and the pool keeps
/// serving jobs afterwards.
#[mini::test]
async fn a_panicking_job_gives_its_payload_and_the_pool_goes_on() {
    let err = mini::spawn_blocking(|| -> u32 { std::panic::panic_any(Boom(7)) }).await.unwrap_err();
    assert!(err.is_panic());
    assert!(!err.is_cancelled());
    assert_eq!(*err.into_panic().downcast::<Boom>().unwrap(), Boom(7));

    for i in 0..10 {
        assert_eq!(mini::spawn_blocking(move || i * 2).await.unwrap(), i * 2);
    }
}

/// Jobs run off the runtime thread, on several pool threads, and never on more than the bound.
#[mini::test]
async fn jobs_run_on_pool_threads_within_the_bound() {
    let runtime_thread = thread::current().id();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let handles: Vec<_> = (0..4 * MAX_BLOCKING_THREADS)
        .map(|_| {
            let seen = seen.clone();
            mini::spawn_blocking(move || {
                thread::sleep(Duration::from_millis(2)); // keeps threads busy, so the pool grows
                seen.lock().unwrap().insert(thread::current().id());
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }

    let seen = seen.lock().unwrap();
    assert!(!seen.contains(&runtime_thread), "a job ran on the runtime thread");
    assert!(seen.len() > 1, "{} jobs ran on one thread", 4 * MAX_BLOCKING_THREADS);
    assert!(seen.len() <= MAX_BLOCKING_THREADS, "{} pool threads", seen.len());
}

/// With every pool thread busy, one more job waits in the queue; aborting its handle there
/// means the closure never runs.
#[mini::test]
async fn an_aborted_job_that_never_started_never_runs() {
    let (started_tx, started_rx) = mpsc::channel();
    // Dropping a sender releases its job; the deadline only bounds a broken pool's hang.
    let deadline = Instant::now() + HANG;
    let (release, busy): (Vec<_>, Vec<_>) = (0..MAX_BLOCKING_THREADS)
        .map(|_| {
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let started_tx = started_tx.clone();
            let job = mini::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            });
            (release_tx, job)
        })
        .unzip();
    for _ in 0..MAX_BLOCKING_THREADS {
        // Blocks the runtime thread, which has nothing else to do: every pool thread is taken.
        started_rx.recv_timeout(HANG).expect("the pool did not start MAX_BLOCKING_THREADS threads");
    }

    let ran = Arc::new(AtomicBool::new(false));
    let queued = mini::spawn_blocking({
        let ran = ran.clone();
        move || ran.store(true, SeqCst)
    });
    queued.abort();
    assert!(queued.await.unwrap_err().is_cancelled());

    drop(release);
    for handle in busy {
        handle.await.unwrap();
    }
    // FIFO: the aborted job left the queue before this one.
    mini::spawn_blocking(|| ()).await.unwrap();
    assert!(!ran.load(SeqCst), "the aborted job ran");
}

thread_local! {
    static ON_THREAD_EXIT: RefCell<Option<SignalOnDrop>> = const { RefCell::new(None) };
}

/// Dropping a runtime whose pool thread is idle ends that thread: the drop returns after the
/// thread has exited (its thread-local destructors have run), not after its 10 s keep-alive.
/// A process that exits right after must not cut the thread off halfway through its exit.
/// The runtime is dropped the moment the job's wake resumes it, so this also checks that the
/// pool thread counts itself out of the job before it wakes the task.
#[test]
fn dropping_the_runtime_ends_idle_pool_threads() {
    let (exited_tx, exited_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    thread::spawn(move || {
        let rt = Runtime::new().unwrap();
        rt.block_on(async move {
            // Thread-local destructors run when the pool thread exits.
            let on_exit = SignalOnDrop(exited_tx);
            mini::spawn_blocking(move || ON_THREAD_EXIT.with(|slot| *slot.borrow_mut() = Some(on_exit)))
                .await
                .unwrap();
        });
        drop(rt);
        dropped_tx.send(exited_rx.try_recv()).unwrap();
    });
    let exited = dropped_rx.recv_timeout(HANG).expect("dropping the runtime hung");
    assert_eq!(exited, Ok(()), "the idle pool thread was still alive when the runtime's drop returned");
}

/// Dropping a runtime does not wait for a job that is still running; when the job ends, its
/// result is dropped.
#[test]
fn dropping_the_runtime_does_not_wait_for_a_running_job() {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (result_dropped_tx, result_dropped_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    thread::spawn(move || {
        let rt = Runtime::new().unwrap();
        let job = move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv(); // until the test has seen the drop return
            SignalOnDrop(result_dropped_tx)
        };
        let mut handle = None;
        rt.block_on(async { handle = Some(mini::spawn_blocking(job)) });
        started_rx.recv().unwrap();
        drop(rt);
        assert!(handle.unwrap().is_finished(), "the runtime's drop cancels the waiting task");
        dropped_tx.send(()).unwrap();
    });
    dropped_rx.recv_timeout(HANG).expect("dropping the runtime waited for the running job");
    release_tx.send(()).unwrap();
    result_dropped_rx.recv_timeout(HANG).expect("the abandoned job's result was never dropped");
}

#[test]
#[should_panic(expected = "mini::spawn_blocking called outside a mini runtime")]
fn spawn_blocking_outside_a_runtime_panics() {
    drop(mini::spawn_blocking(|| ()));
}

#[mini::test]
async fn lookup_host_resolves_localhost() -> io::Result<()> {
    let name = String::from("localhost:80");
    for addrs in [
        lookup_host("localhost:80").await?.collect::<Vec<_>>(),
        lookup_host(&name).await?.collect(),
        lookup_host(name.clone()).await?.collect(),
        lookup_host(("localhost", 80)).await?.collect(),
    ] {
        assert!(!addrs.is_empty());
        for addr in addrs {
            assert!(addr.ip().is_loopback(), "{addr}");
            assert_eq!(addr.port(), 80);
        }
    }
    Ok(())
}

#[mini::test]
async fn lookup_host_returns_a_literal_address_as_is() -> io::Result<()> {
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    assert_eq!(lookup_host("127.0.0.1:80").await?.collect::<Vec<_>>(), [addr]);
    assert_eq!(lookup_host(addr).await?.collect::<Vec<_>>(), [addr]);
    let v6: SocketAddr = "[::1]:443".parse().unwrap();
    assert_eq!(lookup_host(("::1", 443)).await?.collect::<Vec<_>>(), [v6]);
    Ok(())
}

/// `.invalid` is reserved and never resolves (RFC 6761).
#[mini::test]
async fn lookup_host_fails_for_an_unknown_name() {
    assert!(lookup_host("nonexistent.invalid:80").await.is_err());
    let err = lookup_host("no-port-here").await.err().expect("a name without a port is invalid");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[mini::test]
async fn tcp_bind_and_connect_by_host_name() -> io::Result<()> {
    let listener = TcpListener::bind("localhost:0").await?;
    let addr = listener.local_addr()?;
    assert!(addr.ip().is_loopback());
    let mut client = TcpStream::connect(("localhost", addr.port())).await?;
    let (mut server, peer) = listener.accept().await?;
    assert_eq!(peer, client.local_addr()?);

    client.write_all(b"ping").await?;
    let mut buf = [0; 4];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    Ok(())
}
