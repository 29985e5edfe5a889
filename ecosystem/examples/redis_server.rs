//! A Redis-compatible server (RESP2) on mini: strings with expiry, pipelining, the
//! commands `redis-cli` and `redis-benchmark` need. The protocol and the keyspace live in
//! `mini_ecosystem::redis`; this is the command line around them.
//!
//! ```text
//! cargo run --release -p mini-ecosystem --example redis_server -- [ADDR] [--max-bulk-len BYTES]
//! redis-cli -p 6379 set greeting hello          # in a second terminal
//! redis-benchmark -p 6379 -t ping,set,get -q
//! ```
//!
//! - `ADDR` defaults to 127.0.0.1:6379.
//! - `--max-bulk-len BYTES`: the longest key or value a client may send (default 512 MiB,
//!   as Redis's `proto-max-bulk-len`).
//! - On Ctrl-C or SIGTERM it closes every connection, says how many it served, and exits
//!   with status 0. Nothing is saved: the data lives in memory only.
//! - If it cannot start, it says why in one line and exits with status 1 (2 for a bad
//!   option): `redis_server: cannot listen on 127.0.0.1:6379: address already in use`.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use mini::net::TcpListener;
use mini::signal::unix::{signal, SignalKind};
use mini_ecosystem::redis::{serve_with, Config};

const USAGE: &str = "usage: redis_server [ADDR] [--max-bulk-len BYTES]";

fn parse_options() -> Result<(String, Config), String> {
    let mut addr = None;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max-bulk-len" => {
                let value = args.next().ok_or("--max-bulk-len needs a number of bytes")?;
                config.max_bulk_len = value
                    .parse()
                    .map_err(|_| format!("--max-bulk-len: {value:?} is not a number of bytes"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if addr.is_some() => return Err(format!("unexpected argument {arg:?}")),
            _ => addr = Some(arg),
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:6379".to_string()), config))
}

/// Says why the server cannot start, in one line, and exits with status 1. The OS error's
/// " (os error 98)" suffix and capital letter are dropped: the line reads as one sentence.
fn fail(what: &str, err: io::Error) -> ! {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    eprintln!("redis_server: {what}: {}", text.to_lowercase());
    std::process::exit(1)
}

#[mini::main]
async fn main() {
    let (addr, config) = match parse_options() {
        Ok(options) => options,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(msg) => {
            eprintln!("redis_server: {msg}\n{USAGE}");
            std::process::exit(2);
        }
    };
    // Listen for the signals before serving, so that from the first client on a Ctrl-C
    // means "stop", not the default action that kills the process mid-reply.
    let mut int = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail("cannot handle signals", e));
    let mut term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail("cannot handle signals", e));
    let listener = match TcpListener::bind(addr.as_str()).await {
        Ok(listener) => listener,
        Err(e) => fail(&format!("cannot listen on {addr}"), e),
    };
    match listener.local_addr() {
        Ok(local) => println!("redis_server listening on {local}"),
        Err(e) => fail("cannot read the listening address", e),
    }
    let stop = poll_fn(|cx| match (int.poll_recv(cx), term.poll_recv(cx)) {
        (Poll::Pending, Poll::Pending) => Poll::Pending,
        _ => Poll::Ready(()),
    });
    let stats = serve_with(listener, config, stop).await;
    let plural = if stats.connections == 1 { "" } else { "s" };
    println!("redis_server: stopped; served {} connection{plural}", stats.connections);
}
