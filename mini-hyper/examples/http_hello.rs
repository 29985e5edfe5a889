//! "Hello, world!" over HTTP/1.1 with keep-alive: hyper on mini, through mini-hyper.
//!
//! ```text
//! http_hello [ADDR]        # default 127.0.0.1:8080; a host name is looked up
//! curl -i http://127.0.0.1:8080/
//! wrk -t1 -c50 -d10s http://127.0.0.1:8080/
//! ```
//!
//! Every request, whatever its method and path, gets `200 OK`, `content-type: text/plain`
//! and the body `Hello, world!\n` (hyper adds `content-length` and `date`). It prints
//! `http_hello listening on ADDR` on stdout first, then serves until killed. If it cannot
//! start it says why in one line and exits with status 1 (2 for bad arguments).
//!
//! It is the same service as the tokio + hyper peer the benchmarks run
//! (`bench/src/bin/http_tokio.rs`): keep-alive (hyper's default), `TCP_NODELAY` on accepted
//! sockets, a static body, no allocation of its own per request. One addition a real
//! server wants: [`MiniTimer`], so that hyper's header-read timeout (30 s by default)
//! closes a client that never finishes its request headers.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use mini::net::TcpListener;
use mini_hyper::{FuturesIo, MiniTimer};

/// How long to wait before accepting again after `accept` failed: with no fds left it
/// fails at once while the listener stays readable, and retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, world!\n")));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// Says why the server cannot start, and exits with `status`.
fn fail(status: i32, msg: &str) -> ! {
    eprintln!("http_hello: {msg}");
    std::process::exit(status)
}

#[mini::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_string());
    if addr.starts_with('-') || args.next().is_some() {
        fail(2, "unexpected arguments\nusage: http_hello [ADDR]");
    }
    let listener = match TcpListener::bind(addr.as_str()).await {
        Ok(listener) => listener,
        Err(e) => fail(1, &format!("cannot listen on {addr}: {e}")),
    };
    match listener.local_addr() {
        Ok(local) => println!("http_hello listening on {local}"),
        Err(e) => fail(1, &format!("cannot read the listening address: {e}")),
    }
    // The one builder, configured once; `serve_connection` takes it by reference.
    let mut builder = http1::Builder::new();
    builder.timer(MiniTimer);
    let builder = std::rc::Rc::new(builder);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // EMFILE, or a connection reset before it was accepted: one connection is
                // lost, not the server.
                eprintln!("http_hello: accept failed: {e}");
                mini::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Small responses go out at once rather than waiting on Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        mini::spawn(async move {
            // A client that leaves mid-request, or sends garbage, ends its own connection
            // (hyper has answered what it could); nothing to report.
            let _ = builder.serve_connection(FuturesIo::new(stream), service_fn(hello)).await;
        });
    }
}
