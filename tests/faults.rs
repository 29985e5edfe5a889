//! Misuse and faults: each is a clear panic or error, never a hang or undefined behaviour.
//!
//! The second half runs the `echo_server` example as a child process under hostile clients
//! (out of fds, resets, half-closes, slow consumers, floods, 10,000 connections, churn) and
//! checks that it keeps serving everyone else. Those tests print their measurements with
//! `eprintln!`; `cargo test --test faults -- --nocapture` shows them.

mod faults_util;
mod util;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use mini::net::{TcpListener, TcpStream};

use faults_util::{cpu_time, echo, fd_count, status_kib, EchoServer};

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// A socket from one runtime awaited in another would wait on a reactor nobody turns.
#[test]
#[should_panic(expected = "used in a runtime other than the one it was created in")]
fn a_socket_awaited_in_another_runtime_panics_instead_of_hanging() {
    let first = mini::Runtime::new().unwrap();
    let (mut client, _server) = first.block_on(pair());
    let second = mini::Runtime::new().unwrap();
    second.block_on(async move {
        let mut buf = [0u8; 8];
        let _ = client.read(&mut buf).await; // nothing to read: it would park here
    });
}

#[test]
#[should_panic(expected = "awaited outside its mini runtime")]
fn a_socket_awaited_outside_any_runtime_panics() {
    let rt = mini::Runtime::new().unwrap();
    let (mut client, _server) = rt.block_on(pair());
    // A minimal foreign executor: poll once on this thread, with no mini runtime running.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut buf = [0u8; 8];
    let _ = std::pin::pin!(client.read(&mut buf)).poll(&mut cx);
}

// ---------------------------------------------------------------------------------------
// The echo server under hostile clients.
// ---------------------------------------------------------------------------------------

/// Out of fds, `accept` fails with `EMFILE` while the listener stays readable, so a server
/// that retried at once would spin at 100% CPU, and one that logged each failure would flood
/// its log. The echo server must back off, log the episode once, stay up, and serve again
/// once fds are free.
///
/// "Backs off" is counted, not timed: the server runs with `MINI_TRACE=1`, and each of its
/// next `BACKOFF_WAITS` loop turns must go to sleep in `epoll_wait` with a timeout (the
/// retry timer). A server that retried at once would show zero-timeout waits (tasks always
/// queued), or no wait at all (a loop inside one poll), which fails at the hang guard.
#[test]
fn out_of_fds_the_server_backs_off_logs_once_and_recovers() {
    const FD_LIMIT: u64 = 64;
    const CLIENTS: usize = 100;
    const BACKOFF_WAITS: usize = 5;
    let mut server = EchoServer::start_traced(Some(FD_LIMIT), &[]);
    // Every handshake completes (the listen backlog is 1024), but the server can accept only
    // about FD_LIMIT minus the fds it already holds; then `accept` fails.
    let clients: Vec<_> = (0..CLIENTS).map(|_| server.connect()).collect();
    let first = server.next_stderr_line();
    assert!(first.contains("accept failed") && first.contains("os error 24"), "not EMFILE: {first:?}");

    // From the log line on: the server first finishes the connection tasks it spawned (its
    // waits may have zero timeouts while they are queued), then must go to sleep, and from
    // then on every wait must sleep until the retry timer. A server that retried at once
    // would trace without end and never sleep: the line count fails it.
    server.skip_trace_so_far();
    let (mut waits, mut asleep) = (Vec::new(), false);
    for lines in 1.. {
        assert!(lines <= 10_000, "the server spins while out of fds: 10,000 trace lines, waits {waits:?}");
        let line = server.next_trace_line();
        let Some(timeout) = kernel_wait_timeout(&line) else { continue };
        asleep |= timeout != "0ns";
        if asleep {
            waits.push(timeout.to_string());
        }
        if waits.len() == BACKOFF_WAITS {
            break;
        }
    }
    assert!(
        !waits.iter().any(|w| w == "0ns"),
        "the server spins while out of fds: epoll_wait timeouts {waits:?}"
    );
    assert!(server.is_running(), "the server died out of fds");
    let again = server.stderr_so_far();
    assert!(again.is_empty(), "one episode out of fds was logged more than once: {first:?} then {again:?}");

    // The clients hang up, which frees the server's fds: it must accept and echo again. The
    // new connection waits in the backlog until the server's next retry (every 100 ms), so
    // the echo needs no retry loop: it blocks until then (or fails at the hang guard).
    drop(clients);
    let mut next = server.connect();
    echo(&mut next, b"fds are back");
    loop {
        let line = server.next_stderr_line();
        if line.contains("accepting again") {
            break;
        }
    }
}

/// A peer that resets its connection (`SO_LINGER` 0, then close: an RST) while the server is
/// in the middle of echoing to it makes the server's write fail. That must end this one
/// connection's task, not the server, and not the other connections.
#[test]
fn a_peer_reset_mid_transfer_ends_only_that_connection() {
    let mut server = EchoServer::start(None, &[]);
    let mut bystander = server.connect();
    echo(&mut bystander, b"before the reset");

    let mut victim = server.connect();
    echo(&mut victim, &util::pattern(1, 64 * 1024));
    // Keep sending without reading: the server's writes back stall, so it stops reading, until
    // our send buffer is full too. The server is then stuck mid-transfer in `write_all`.
    victim.set_nonblocking(true).unwrap();
    let chunk = util::pattern(2, 64 * 1024);
    let mut sent = 0usize;
    loop {
        match victim.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("sending to the echo server: {e}"),
        }
        assert!(sent < 1 << 30, "the server never pushed back");
    }
    util::set_linger_zero(&victim).unwrap();
    drop(victim);

    echo(&mut bystander, b"after the reset");
    let mut late = server.connect();
    echo(&mut late, b"connected after the reset");
    // The reset connection's task has ended: only the bystander and the late client are open.
    assert_eq!(server.open_connections_at_shutdown(), 2, "the reset connection is still open");
}

/// A client that shuts down its write side still wants its reply. The server must echo every
/// byte sent before the FIN, then close (EOF); not drop the tail, not hang on the
/// half-closed socket, and not keep its task alive.
#[test]
fn a_half_closed_client_gets_everything_back_then_eof() {
    const LEN: usize = 1 << 20;
    let mut server = EchoServer::start(None, &[]);
    let client = server.connect();
    let sent = util::pattern(3, LEN);
    // 1 MiB is more than the socket buffers may hold: write on a thread while this one reads.
    let mut writer = client.try_clone().unwrap();
    let data = sent.clone();
    let writing = std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(LEN);
    (&client).read_to_end(&mut back).expect("EOF from the server after the echo");
    writing.join().unwrap();
    assert_eq!(back.len(), LEN, "the echo lost or added bytes");
    assert!(back == sent, "the echo came back corrupted");

    let mut next = server.connect();
    echo(&mut next, b"still serving");
    assert_eq!(server.open_connections_at_shutdown(), 1, "the half-closed connection is still open");
}

/// A client that sends much faster than it reads must be slowed down by TCP flow control
/// (the server stops reading while its write back is blocked), not buffered in the server's
/// memory. And while that client's transfer is stalled, the server serves others.
#[test]
fn a_slow_consumer_meets_backpressure_not_server_memory_growth() {
    const TOTAL: usize = 64 << 20;
    const CHUNK: usize = 64 << 10;
    let server = EchoServer::start(None, &[]);
    let pid = server.pid().to_string();
    let mut warm = server.connect();
    echo(&mut warm, &util::pattern(4, CHUNK));
    let baseline = status_kib(&pid, "VmHWM");

    let consumer = server.connect();
    let mut writer = consumer.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        let chunk = util::pattern(5, CHUNK);
        for _ in 0..TOTAL / CHUNK {
            writer.write_all(&chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let (halfway_tx, halfway) = mpsc::channel();
    let (resume, resume_rx) = mpsc::channel::<()>();
    let reading = std::thread::spawn(move || {
        let mut reader = consumer;
        let expected = util::pattern(5, CHUNK);
        let mut buf = vec![0; CHUNK];
        for i in 0..TOTAL / CHUNK {
            reader.read_exact(&mut buf).unwrap();
            assert!(buf == expected, "chunk {i} came back corrupted");
            if i == TOTAL / CHUNK / 2 {
                // Stall here until the main thread has checked that others are served.
                halfway_tx.send(()).unwrap();
                resume_rx.recv().unwrap();
            }
            // The "slow" in slow consumer, part of the load pattern (not synchronisation):
            // about 1 ms per 64 KiB, so the 64 MiB take a little over a second.
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(reader.read(&mut buf).unwrap(), 0, "more bytes came back than were sent");
    });

    halfway.recv_timeout(faults_util::HANG_GUARD).expect("the consumer got halfway");
    // The consumer is stalled mid-transfer, every buffer toward it full: others are served.
    let mut other = server.connect();
    for i in 0..10 {
        echo(&mut other, format!("round trip {i} during the stall").as_bytes());
    }
    resume.send(()).unwrap();
    reading.join().unwrap();
    writing.join().unwrap();

    let peak = status_kib(&pid, "VmHWM");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "slow consumer: peak memory under the slow consumer: VmHWM {peak} KiB, {growth} KiB over \
         the {baseline} KiB baseline, for {} MiB echoed",
        TOTAL >> 20
    );
    assert!(growth < 32 << 10, "the server buffered the slow consumer's data: +{growth} KiB");
}

/// A client that pipelines as fast as it can keeps its connection readable and writable, so
/// without a per-task I/O budget its task would seldom yield and the single-threaded server
/// would starve everyone else. Bounded by counts, not time: each of 100 round trips of a
/// second client completes while the flood goes on, and the server (run with `MINI_TRACE=1`)
/// polls at most one other task between waking the second client's task and polling it.
/// And no task is polled twice between two looks at epoll. Without the budget the flood
/// task's poll would never end (the round trips fail at the hang guard); without the
/// deferral of a task out of budget past the next look at epoll, it would be polled up to
/// 61 times in a row while the second client's bytes wait in the kernel.
#[test]
fn a_flooding_client_does_not_starve_another() {
    const ROUND_TRIPS: usize = 100;
    // What the server may do for others between the reactor waking the second client's task
    // and polling it: the tasks the same turn woke first. Only the flood's task can be
    // among them, once: a task out of budget is woken after the reactor's wakes.
    const MAX_POLLS_BEFORE_THE_CLIENT: usize = 1;
    // The round trips start once this much flood has come back.
    const IN_FULL_SWING: u64 = 16 << 20;
    const CHUNK: usize = 1 << 20;
    let server = EchoServer::start_traced(None, &[]);
    let flood = server.connect();
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = Arc::new(AtomicBool::new(true)); // until the writer stops or fails
    let drained = Arc::new(AtomicU64::new(0));

    let mut writer = flood.try_clone().unwrap();
    let writing = {
        let (stop, flooding) = (stop.clone(), flooding.clone());
        std::thread::spawn(move || {
            let chunk = util::pattern(6, CHUNK);
            let result = (|| {
                while !stop.load(Ordering::SeqCst) {
                    writer.write_all(&chunk)?;
                }
                writer.shutdown(Shutdown::Write)
            })();
            flooding.store(false, Ordering::SeqCst);
            result.expect("flooding the echo server");
        })
    };
    let (started_tx, started) = mpsc::channel();
    let draining = {
        let drained = drained.clone();
        std::thread::spawn(move || {
            let mut reader = flood;
            let mut buf = vec![0; CHUNK];
            loop {
                let n = reader.read(&mut buf).expect("draining the flood");
                if n == 0 {
                    return;
                }
                let before = drained.fetch_add(n as u64, Ordering::SeqCst);
                if before < IN_FULL_SWING && before + n as u64 >= IN_FULL_SWING {
                    started_tx.send(()).unwrap();
                }
            }
        })
    };
    started.recv_timeout(faults_util::HANG_GUARD).expect("the flood is echoed");

    let mut client = server.connect();
    client.set_nodelay(true).unwrap();
    // The server names each connection's task after its peer.
    let client_task = format!("\"conn {}\"", client.local_addr().unwrap());
    for i in 0..ROUND_TRIPS {
        echo(&mut client, format!("round trip {i:03} beside the flood").as_bytes());
        assert!(flooding.load(Ordering::SeqCst), "the flood ended before round trip {i} completed");
    }
    // Every wake of the client's task, and the polls of other tasks until its own poll. (The
    // trace lines of the last round trips may still be on their way: read on until there
    // are as many pairs as round trips.)
    // And no task is polled twice between two looks at epoll: a task that spent its budget
    // is woken only after the next one (else the flood would run up to 61 times in a row).
    let (mut pairs, mut others, mut most) = (0, None::<usize>, 0);
    let mut polled_since_epoll = std::collections::HashSet::new();
    while pairs < ROUND_TRIPS {
        let line = server.next_trace_line();
        if kernel_wait_timeout(&line).is_some() {
            polled_since_epoll.clear();
        }
        if let Some(task) = line.split(" poll task ").nth(1).and_then(|rest| rest.split(" -> ").next()) {
            let again = !polled_since_epoll.insert(task.to_string());
            assert!(!again, "task {task} was polled twice without a look at epoll between: {line}");
        }
        if line.contains(" wake task ") && line.contains(&client_task) {
            others.get_or_insert(0);
        } else if line.contains(" poll task ") {
            match others.as_mut() {
                Some(n) if !line.contains(&client_task) => *n += 1,
                Some(n) => {
                    most = most.max(*n);
                    pairs += 1;
                    others = None;
                }
                None => {}
            }
        }
    }
    eprintln!("flood: at most {most} other polls between a wake of the second client's task and its poll");
    assert!(
        most <= MAX_POLLS_BEFORE_THE_CLIENT,
        "the server polled {most} other tasks before the woken second client's task"
    );

    stop.store(true, Ordering::SeqCst);
    writing.join().unwrap();
    draining.join().unwrap();
}

/// A counter that tasks of one runtime can wait on until it reaches a value: a barrier when
/// the value is the number of tasks.
#[derive(Default)]
struct Counter {
    value: Cell<usize>,
    waiters: RefCell<BTreeMap<usize, Vec<Waker>>>,
}

impl Counter {
    fn add_one(&self) {
        let value = self.value.get() + 1;
        self.value.set(value);
        let ready = {
            let mut waiters = self.waiters.borrow_mut();
            let later = waiters.split_off(&(value + 1));
            std::mem::replace(&mut *waiters, later)
        };
        ready.into_values().flatten().for_each(Waker::wake);
    }

    async fn reached(&self, target: usize) {
        poll_fn(|cx| {
            if self.value.get() >= target {
                return Poll::Ready(());
            }
            self.waiters.borrow_mut().entry(target).or_default().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// One runtime thread must hold 10,000 connections at once, each echoed: a runtime that
/// cannot (an fd, slab or epoll limit, a wake-up lost among 10,000 waiting tasks) fails here,
/// or at the hang guard. Both ends use mini: the echo server (its own process, its fd limit
/// raised) and 10,000 client tasks on one runtime in this process.
#[test]
fn ten_thousand_concurrent_connections_on_one_thread_are_each_echoed() {
    const CONNECTIONS: usize = 10_000;
    // Connections the server may not have accepted yet: a burst of 10,000 SYNs would overflow
    // its accept queue (backlog 1024), and each dropped SYN costs a one-second retransmit.
    const CONNECT_WINDOW: usize = 256;
    // Each process needs an fd per connection, plus its runtime's and (here) the other tests'.
    const NEEDED: u64 = CONNECTIONS as u64 + 512;
    let limit = faults_util::raise_fd_limit().expect("raise RLIMIT_NOFILE");
    if limit < NEEDED {
        eprintln!(
            "SKIPPED ten_thousand_concurrent_connections: the hard RLIMIT_NOFILE is {limit}, \
             below the {NEEDED} fds each side needs"
        );
        return;
    }
    let server = EchoServer::start(Some(limit), &[]);
    let pid = server.pid().to_string();
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();

    let start = Instant::now();
    let done = mini::block_on(mini::time::timeout(faults_util::HANG_GUARD, async {
        // Clients that have connected and had a first echo, which proves the server accepted
        // them. Client i connects once i - CONNECT_WINDOW clients have got that far, so at
        // most about CONNECT_WINDOW connections wait in the server's backlog.
        let accepted = Rc::new(Counter::default());
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                let accepted = accepted.clone();
                mini::spawn(async move {
                    accepted.reached(i.saturating_sub(CONNECT_WINDOW)).await;
                    let mut stream =
                        TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
                    echo_async(&mut stream, format!("client {i:05} connected").as_bytes()).await;
                    accepted.add_one();
                    // The second echo only once all 10,000 connections are open and accepted.
                    accepted.reached(CONNECTIONS).await;
                    echo_async(&mut stream, format!("client {i:05} of {CONNECTIONS} open").as_bytes()).await;
                    stream // still open, until every client has its echo
                })
            })
            .collect();
        let mut streams = Vec::with_capacity(CONNECTIONS);
        for client in clients {
            streams.push(client.await.unwrap());
        }
        let server_fds = fd_count(&pid);
        assert!(server_fds > CONNECTIONS, "the server holds {server_fds} fds for {CONNECTIONS} clients");
    }));
    let elapsed = start.elapsed();
    done.unwrap_or_else(|_| {
        panic!("10,000 connections were not all echoed in {:?}", faults_util::HANG_GUARD)
    });
    eprintln!(
        "10k connections: {CONNECTIONS} connections, all open at once, each echoed twice, in {elapsed:?} \
         (the server used {:?} of CPU)",
        cpu_time(server.pid())
    );
}

/// Writes `msg` on a mini stream and checks that exactly `msg` comes back.
async fn echo_async(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.unwrap();
    let mut back = vec![0; msg.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg, "the echo differs from what was sent");
}

/// The environment variable that makes the churn test run its body, in a child process.
const CHURN_CHILD: &str = "MINI_FAULTS_CHURN_CHILD";

/// 50,000 connect/echo/close cycles must leave no fd and no per-connection memory behind
/// (a socket not closed on some path, a slab entry or task never freed). Both ends run in
/// one mini runtime; the cycles run in a child process of this test binary, because fd
/// counts and RSS are per process and the other tests here open thousands of sockets.
#[test]
fn connection_churn_leaks_no_fds_and_little_memory() {
    if std::env::var_os(CHURN_CHILD).is_some() {
        return churn();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["connection_churn_leaks_no_fds_and_little_memory", "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHURN_CHILD, "1")
        .output()
        .expect("run the churn in a child process");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the churn failed:\n{stdout}\n{stderr}");
    let figures: Vec<&str> = stderr.lines().filter(|l| l.starts_with("churn: ")).collect();
    assert!(!figures.is_empty(), "the child ran no churn:\n{stdout}\n{stderr}");
    for line in figures {
        eprintln!("{line}");
    }
}

fn churn() {
    const WARM_UP: usize = 1_000;
    const CYCLES: usize = 50_000;
    // Clients cycling at once: a few, so that each reactor turn serves several.
    const CLIENTS: usize = 16;

    /// Counts a server connection's task while it is alive.
    struct Live(Rc<Cell<usize>>);
    impl Drop for Live {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    async fn serve(mut stream: TcpStream, _live: Live) {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn cycles(addr: std::net::SocketAddr, count: usize) {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                mini::spawn(async move {
                    for i in (c..count).step_by(CLIENTS) {
                        let mut stream = TcpStream::connect(addr).await.unwrap();
                        let msg = format!("cycle {i}");
                        stream.write_all(msg.as_bytes()).await.unwrap();
                        let mut back = vec![0; msg.len()];
                        stream.read_exact(&mut back).await.unwrap();
                        assert_eq!(back, msg.as_bytes());
                        // Close with a reset, not a FIN: no TIME_WAIT, so 50,000 cycles do
                        // not run out of loopback ports.
                        util::set_linger_zero(&stream).unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// Waits until every server task has seen its reset and ended.
    async fn settle(live: &Cell<usize>) {
        for _ in 0..10_000 {
            if live.get() == 0 {
                return;
            }
            util::reactor_turn().await;
        }
        panic!("{} server connections never ended", live.get());
    }

    let done = mini::block_on(mini::time::timeout(faults_util::HANG_GUARD, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let live = Rc::new(Cell::new(0));
        let live_count = live.clone();
        let _server = mini::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                live.set(live.get() + 1);
                mini::spawn(serve(stream, Live(live.clone())));
            }
        });

        cycles(addr, WARM_UP).await;
        settle(&live_count).await;
        let (fds_before, rss_before) = (fd_count("self"), status_kib("self", "VmRSS"));
        let start = Instant::now();
        cycles(addr, CYCLES).await;
        let elapsed = start.elapsed();
        settle(&live_count).await;
        let (fds_after, rss_after) = (fd_count("self"), status_kib("self", "VmRSS"));
        let rss_growth = rss_after as i64 - rss_before as i64;
        eprintln!(
            "churn: {CYCLES} connect/echo/close cycles in {elapsed:?}: fd delta {}, RSS delta {rss_growth} KiB \
             ({rss_before} -> {rss_after} KiB)",
            fds_after as i64 - fds_before as i64
        );
        assert_eq!(fds_after, fds_before, "fds leaked over {CYCLES} connections");
        assert!(rss_growth < 4 << 10, "memory grew by {rss_growth} KiB over {CYCLES} connections");
    }));
    done.unwrap_or_else(|_| panic!("the churn did not finish in {:?}", faults_util::HANG_GUARD));
}

/// The timeout of a trace line where the loop looks at the kernel: `epoll_wait timeout=..` on
/// the epoll driver, `io_uring_enter submit=N timeout=..` on io_uring (the suite runs under
/// both, `MINI_DRIVER`).
fn kernel_wait_timeout(line: &str) -> Option<&str> {
    if line.contains("epoll_wait timeout=") || line.contains("io_uring_enter submit=") {
        line.split(" timeout=").nth(1).map(str::trim)
    } else {
        None
    }
}
