//! An echo server: one task per connection, each writing back what it reads.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDR] [--idle-timeout SECS] [--grace SECS] [--workers N|auto]
//! nc 127.0.0.1 8080                                    # type a line, it comes back
//! ```
//!
//! - `ADDR` defaults to 127.0.0.1:8080.
//! - `--workers N|auto`: run N share-nothing workers (`auto`: one per CPU this process may
//!   use), each a thread with its own runtime and its own `SO_REUSEPORT` listener on `ADDR`;
//!   the kernel spreads new connections over the listeners. Another process started with the
//!   same `ADDR` and `--workers` joins the group. Without the option: one runtime on the
//!   main thread and a plain listener, as `#[mini::main]` gives.
//! - `--idle-timeout SECS`: close a client that has sent nothing for that long.
//! - On Ctrl-C or SIGTERM the server stops accepting, lets open connections finish for
//!   `--grace SECS` (default 5; a second signal cuts it short), prints how many connections
//!   it served (with workers: `served N connections (worker 0: a, worker 1: b)`), and exits
//!   with status 0. With workers, worker 0 listens for the signals and tells every worker
//!   through the `mini::Shutdown` that `Builder::run` shares.
//! - If it cannot start, it says why in one line and exits with status 1 (2 for a bad
//!   option): `echo_server: cannot listen on 127.0.0.1:8080: address already in use`.

use std::fmt::Display;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::Poll;
use std::time::Duration;

use mini::net::{TcpListener, TcpSocket, TcpStream};
use mini::signal::unix::{signal, Signal, SignalKind};
use mini::time::{sleep, timeout};
use mini::{JoinError, Shutdown, Worker};

/// How long to stop accepting after `accept` fails (say, out of fds): long enough not to
/// spin on a listener that stays readable, short enough to resume quickly.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Room for connections not yet accepted, per listener (the kernel caps it at `somaxconn`).
const BACKLOG: u32 = 1024;

const USAGE: &str = "usage: echo_server [ADDR] [--idle-timeout SECS] [--grace SECS] [--workers N|auto]";

struct Options {
    addr: String,
    idle_timeout: Option<Duration>,
    grace: Duration,
    /// `None`: one runtime on the main thread; `Some(n)`: n workers.
    workers: Option<usize>,
}

fn parse_workers(value: Option<String>) -> Result<usize, String> {
    let value = value.ok_or("--workers needs a number or \"auto\"")?;
    if value == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("--workers: {value:?} is not a positive number or \"auto\"")),
    }
}

fn parse_secs(flag: &str, value: Option<String>) -> Result<Duration, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a number of seconds"))?;
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{flag}: {value:?} is not a number of seconds"))
}

fn parse_options() -> Result<Options, String> {
    let mut opts = Options {
        addr: "127.0.0.1:8080".into(),
        idle_timeout: None,
        grace: Duration::from_secs(5),
        workers: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--idle-timeout" => opts.idle_timeout = Some(parse_secs(&arg, args.next())?),
            "--grace" => opts.grace = parse_secs(&arg, args.next())?,
            "--workers" => opts.workers = Some(parse_workers(args.next())?),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            addr => opts.addr = addr.to_string(),
        }
    }
    Ok(opts)
}

/// An error as the end of a sentence: "address already in use". std's Display for an OS
/// error is the C library's `strerror` text plus " (os error 98)"; the number helps nobody
/// reading a startup message, and the capital does not fit after a colon.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match err.raw_os_error() {
        Some(code) => text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text).to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let mut lower: String = first.to_lowercase().collect();
            lower.push_str(chars.as_str());
            lower
        }
        None => text,
    }
}

/// Says why the server cannot start, and exits with status 1.
fn fail(msg: impl Display) -> ! {
    eprintln!("echo_server: {msg}");
    std::process::exit(1)
}

/// Resolves at the next SIGINT or SIGTERM.
async fn shutdown_requested(int: &mut Signal, term: &mut Signal) {
    poll_fn(|cx| match (int.poll_recv(cx), term.poll_recv(cx)) {
        (Poll::Pending, Poll::Pending) => Poll::Pending,
        _ => Poll::Ready(()),
    })
    .await
}

/// One client: read up to 4 KiB, write it all back, until end of stream, an error, or (with
/// an idle timeout) silence.
async fn serve(mut stream: TcpStream, idle_timeout: Option<Duration>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let read = match idle_timeout {
            Some(limit) => match timeout(limit, stream.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => return, // idle too long: dropping the stream closes it
            },
            None => stream.read(&mut buf).await,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs two futures at once and returns the output of whichever finishes first (the other
/// is dropped). `a` is polled first, so it wins a tie.
async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// The two steps of a graceful stop, shared by every worker: `stop` (first signal: stop
/// accepting, drain) and `hurry` (second signal: close what is left now).
#[derive(Clone, Default)]
struct Stops {
    stop: Shutdown,
    hurry: Shutdown,
}

/// Turns the first SIGINT/SIGTERM into `stop`, the second into `hurry`.
async fn relay_signals(mut int: Signal, mut term: Signal, stops: Stops) {
    shutdown_requested(&mut int, &mut term).await;
    stops.stop.trigger();
    shutdown_requested(&mut int, &mut term).await;
    stops.hurry.trigger();
}

/// Listens for SIGINT and SIGTERM on the current runtime, or says why it cannot and exits.
fn listen_for_signals() -> (Signal, Signal) {
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(int), Ok(term)) => (int, term),
        (Err(e), _) | (_, Err(e)) => fail(format_args!("cannot handle signals: {}", describe(&e))),
    }
}

/// Resolves `ADDR`, or says why it cannot and exits. Resolved apart from binding, so that
/// the message says which of the two went wrong.
async fn resolve(addr: &str) -> Vec<SocketAddr> {
    match mini::net::lookup_host(addr).await {
        Ok(addrs) => addrs.collect(),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            fail(format_args!("invalid address {addr:?}: {}", describe(&e)))
        }
        Err(e) => fail(format_args!("cannot resolve {addr:?}: {}", describe(&e))),
    }
}

/// Drops the handles of connections that have finished.
fn forget_finished(connections: &mut Vec<mini::JoinHandle<()>>) {
    connections.retain(|c| !c.is_finished());
}

/// Accepts on `listener` until `stops.stop`, then lets the open connections finish for
/// `grace` (or until `stops.hurry`). Returns how many connections it accepted. `who` starts
/// each line it prints ("" with one runtime, "worker 1: " with workers).
async fn accept_and_drain(listener: TcpListener, opts: &Options, stops: &Stops, who: &str) -> u64 {
    let mut connections: Vec<mini::JoinHandle<()>> = Vec::new();
    let mut served = 0u64;
    let mut accept_failing = false;
    let mut prune_at = 64;
    loop {
        match race(stops.stop.triggered(), listener.accept()).await {
            Either::Left(()) => break,
            Either::Right(Ok((stream, peer))) => {
                if accept_failing {
                    accept_failing = false;
                    eprintln!("echo_server: {who}accepting again");
                }
                served += 1;
                // Forget finished connections now and then (not on every accept: that would
                // cost O(open connections) each time).
                if connections.len() >= prune_at {
                    forget_finished(&mut connections);
                    prune_at = (2 * connections.len()).max(64);
                }
                // A name makes MINI_TRACE output and slow-poll warnings read like the program.
                let task = mini::task::Builder::new().name(format!("conn {peer}"));
                connections.push(task.spawn(serve(stream, opts.idle_timeout)));
            }
            Either::Right(Err(e)) => {
                // Out of fds (EMFILE/ENFILE) the listener stays readable, so retrying at once
                // would spin at 100% CPU. Pause, and say so once per episode, not per retry.
                if !accept_failing {
                    accept_failing = true;
                    eprintln!("echo_server: {who}accept failed: {e}; retrying every {ACCEPT_BACKOFF:?}");
                }
                sleep(ACCEPT_BACKOFF).await;
            }
        }
    }

    drop(listener); // stop accepting: new clients are refused from here on
    forget_finished(&mut connections);
    println!("{who}shutting down: {} open connections, grace period {:?}", connections.len(), opts.grace);
    let all_finished = async {
        for c in connections {
            let _ = c.await;
        }
    };
    match race(timeout(opts.grace, all_finished), stops.hurry.triggered()).await {
        Either::Left(Ok(())) => println!("{who}all connections finished"),
        Either::Left(Err(_)) => println!("{who}grace period over: closing the remaining connections"),
        Either::Right(()) => println!("{who}second signal: closing the remaining connections"),
    }
    // Returning lets the runtime drop, and with it the tasks of any connection still open.
    served
}

/// One runtime on the main thread (what `#[mini::main]` expands to) and a plain listener.
async fn single(opts: Options) {
    // Listen for the signals first, so a Ctrl-C from now on means "shut down gracefully".
    let (int, term) = listen_for_signals();
    let stops = Stops::default();
    mini::spawn(relay_signals(int, term, stops.clone()));
    let addrs = resolve(&opts.addr).await;
    let listener = match TcpListener::bind(&addrs[..]).await {
        Ok(listener) => listener,
        Err(e) => fail(format_args!("cannot listen on {}: {}", opts.addr, describe(&e))),
    };
    match listener.local_addr() {
        Ok(addr) => println!("echo server listening on {addr}"),
        Err(e) => fail(format_args!("cannot read the listening address: {}", describe(&e))),
    }
    let served = accept_and_drain(listener, &opts, &stops, "").await;
    println!("served {served} connections");
}

/// A socket bound to `addr` with `SO_REUSEPORT` (and `SO_REUSEADDR`, as a plain listener
/// has), not yet listening.
fn reuseport_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Binds one `SO_REUSEPORT` socket per worker on the same address. The first settles the
/// address (the port, when `ADDR` asks for port 0); the others bind exactly that one.
fn bind_group(opts: &Options, addrs: &[SocketAddr], n: usize) -> (SocketAddr, Vec<Option<TcpSocket>>) {
    let mut last_err = io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on");
    let first = addrs.iter().find_map(|&addr| reuseport_socket(addr).map_err(|e| last_err = e).ok());
    let Some(first) = first else {
        fail(format_args!("cannot listen on {}: {}", opts.addr, describe(&last_err)))
    };
    let addr = match first.local_addr() {
        Ok(addr) => addr,
        Err(e) => fail(format_args!("cannot read the listening address: {}", describe(&e))),
    };
    // Each in an `Option`, for its worker to take out.
    let mut sockets = vec![Some(first)];
    for _ in 1..n {
        match reuseport_socket(addr) {
            Ok(socket) => sockets.push(Some(socket)),
            Err(e) => {
                fail(format_args!("cannot listen on {addr} again for another worker: {}", describe(&e)))
            }
        }
    }
    (addr, sockets)
}

/// `--workers n`: n threads, each a runtime with its own listener on the same address.
fn with_workers(opts: Options, n: usize) {
    let addrs = mini::block_on(resolve(&opts.addr));
    let (addr, sockets) = bind_group(&opts, &addrs, n);
    // Each worker takes its own socket out (the closure is shared, the sockets are not).
    let sockets = Mutex::new(sockets);
    // Start-up rendezvous: the first line is printed only once every worker listens and
    // worker 0 handles the signals, so a client or a SIGTERM that follows it finds them.
    let ready = Barrier::new(n);
    let hurry = Shutdown::new();
    // The last worker to finish draining tells worker 0, which keeps the signal relay
    // running until then (a second signal must still reach the workers still draining).
    let draining = AtomicUsize::new(n);
    let all_drained = Shutdown::new();
    let shared = Arc::new((opts, sockets, ready, hurry, draining, all_drained));

    let results = mini::Builder::new().workers(n).run(move |worker: Worker| {
        let shared = shared.clone();
        async move {
            let (opts, sockets, ready, hurry, draining, all_drained) = &*shared;
            let index = worker.index();
            let socket = sockets.lock().unwrap()[index].take().expect("one socket per worker");
            let listener = socket.listen(BACKLOG);
            let signals = (index == 0).then(listen_for_signals);
            // Blocks this thread, but nothing runs on its runtime yet: start-up only.
            ready.wait();
            let listener = match listener {
                Ok(listener) => listener,
                Err(e) => fail(format_args!("cannot listen on {addr}: {}", describe(&e))),
            };
            // A panicking worker triggers `worker.shutdown()` too, so the others stop then.
            let stops = Stops { stop: worker.shutdown(), hurry: hurry.clone() };
            if let Some((int, term)) = signals {
                println!("echo server listening on {addr}");
                println!("{} workers", worker.count());
                mini::spawn(relay_signals(int, term, stops.clone()));
            }
            let served = accept_and_drain(listener, opts, &stops, &format!("worker {index}: ")).await;
            if draining.fetch_sub(1, Ordering::AcqRel) == 1 {
                all_drained.trigger();
            }
            if index == 0 {
                all_drained.triggered().await;
            }
            served
        }
    });
    let results = match results {
        Ok(results) => results,
        Err(e) => fail(format_args!("cannot start the workers: {}", describe(&e))),
    };
    report(&results);
}

/// Prints `served N connections (worker 0: a, worker 1: b)`; exits with status 1 if a
/// worker panicked (its panic message is already on stderr).
fn report(results: &[Result<u64, JoinError>]) {
    let mut total = 0;
    // Written straight into one String: `Vec<String>::join` alone would add a sizeable share
    // of this program's compile time (docs/PERFORMANCE.md, build time).
    let mut per_worker = String::new();
    let mut failed = false;
    for (index, result) in results.iter().enumerate() {
        let sep = if index == 0 { "" } else { ", " };
        match result {
            Ok(served) => {
                total += served;
                per_worker += &format!("{sep}worker {index}: {served}");
            }
            Err(_) => {
                failed = true;
                per_worker += &format!("{sep}worker {index}: failed");
            }
        }
    }
    println!("served {total} connections ({per_worker})");
    if failed {
        fail("a worker failed (see its panic message above)");
    }
}

fn main() {
    let opts = match parse_options() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("echo_server: {msg}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match opts.workers {
        None => mini::block_on(single(opts)),
        Some(n) => with_workers(opts, n),
    }
}
