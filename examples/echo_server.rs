//! An echo server: one task per connection, each writing back what it reads.
//!
//! ```text
//! cargo run --release --example echo_server -- [ADDR] [--idle-timeout SECS] [--grace SECS]
//! nc 127.0.0.1 8080                                    # type a line, it comes back
//! ```
//!
//! - `ADDR` defaults to 127.0.0.1:8080.
//! - `--idle-timeout SECS`: close a client that has sent nothing for that long.
//! - On Ctrl-C or SIGTERM the server stops accepting, lets open connections finish for
//!   `--grace SECS` (default 5; a second signal cuts it short), prints how many connections
//!   it served, and exits with status 0.
//! - If it cannot start, it says why in one line and exits with status 1 (2 for a bad
//!   option): `echo_server: cannot listen on 127.0.0.1:8080: address already in use`.

use std::fmt::Display;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use mini::net::{TcpListener, TcpStream};
use mini::signal::unix::{signal, Signal, SignalKind};
use mini::time::{sleep, timeout};

/// How long to stop accepting after `accept` fails (say, out of fds): long enough not to
/// spin on a listener that stays readable, short enough to resume quickly.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct Options {
    addr: String,
    idle_timeout: Option<Duration>,
    grace: Duration,
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
    let mut opts =
        Options { addr: "127.0.0.1:8080".into(), idle_timeout: None, grace: Duration::from_secs(5) };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--idle-timeout" => opts.idle_timeout = Some(parse_secs(&arg, args.next())?),
            "--grace" => opts.grace = parse_secs(&arg, args.next())?,
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
        Some(first) => first.to_lowercase().chain(chars).collect(),
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

#[mini::main]
async fn main() {
    let opts = match parse_options() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("echo_server: {msg}\nusage: echo_server [ADDR] [--idle-timeout SECS] [--grace SECS]");
            std::process::exit(2);
        }
    };
    // Listen for the signals first, so a Ctrl-C from now on means "shut down gracefully".
    let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(int), Ok(term)) => (int, term),
        (Err(e), _) | (_, Err(e)) => fail(format_args!("cannot handle signals: {}", describe(&e))),
    };
    // Resolved apart from `bind`, so that the message says which of the two went wrong.
    let addrs: Vec<_> = match mini::net::lookup_host(&opts.addr).await {
        Ok(addrs) => addrs.collect(),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            fail(format_args!("invalid address {:?}: {}", opts.addr, describe(&e)))
        }
        Err(e) => fail(format_args!("cannot resolve {:?}: {}", opts.addr, describe(&e))),
    };
    let listener = match TcpListener::bind(&addrs[..]).await {
        Ok(listener) => listener,
        Err(e) => fail(format_args!("cannot listen on {}: {}", opts.addr, describe(&e))),
    };
    match listener.local_addr() {
        Ok(addr) => println!("echo server listening on {addr}"),
        Err(e) => fail(format_args!("cannot read the listening address: {}", describe(&e))),
    }

    let mut connections: Vec<mini::JoinHandle<()>> = Vec::new();
    let mut served = 0u64;
    let mut accept_failing = false;
    let mut prune_at = 64;
    loop {
        match race(shutdown_requested(&mut int, &mut term), listener.accept()).await {
            Either::Left(()) => break,
            Either::Right(Ok((stream, peer))) => {
                if accept_failing {
                    accept_failing = false;
                    eprintln!("echo_server: accepting again");
                }
                served += 1;
                // Forget finished connections now and then (not on every accept: that would
                // cost O(open connections) each time).
                if connections.len() >= prune_at {
                    connections.retain(|c| !c.is_finished());
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
                    eprintln!("echo_server: accept failed: {e}; retrying every {ACCEPT_BACKOFF:?}");
                }
                sleep(ACCEPT_BACKOFF).await;
            }
        }
    }

    drop(listener); // stop accepting: new clients are refused from here on
    connections.retain(|c| !c.is_finished());
    println!("shutting down: {} open connections, grace period {:?}", connections.len(), opts.grace);
    let all_finished = async {
        for c in connections {
            let _ = c.await;
        }
    };
    match race(timeout(opts.grace, all_finished), shutdown_requested(&mut int, &mut term)).await {
        Either::Left(Ok(())) => println!("all connections finished"),
        Either::Left(Err(_)) => println!("grace period over: closing the remaining connections"),
        Either::Right(()) => println!("second signal: closing the remaining connections"),
    }
    // Returning drops the runtime, and with it the tasks of any connection still open.
    println!("served {served} connections");
}
