//! The peer of mini-hyper's `http_hello` example for the `http` section of the matrix: the
//! same hyper service on tokio's `current_thread` runtime, through hyper-util's `TokioIo`,
//! as a tokio user would write it.
//!
//! Same service, byte for byte: hyper's HTTP/1.1 server with keep-alive (hyper's default),
//! every request answered `200 OK`, `content-type: text/plain`, body `Hello, world!\n`
//! (hyper adds `content-length` and `date`). `TCP_NODELAY` on accepted sockets and a timer
//! for hyper (hyper-util's `TokioTimer`; with one, hyper arms its 30 s header-read timeout
//! for every request head), as `http_hello` does with `MiniTimer`.
//!
//! ```text
//! http_tokio [ADDR]       # default 127.0.0.1:0; prints "http_tokio listening on ADDR", serves until killed
//! ```

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, world!\n")));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let addr = mini_bench::listen_addr_arg();
    let listener = TcpListener::bind(addr).await?;
    println!("http_tokio listening on {}", listener.local_addr()?);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    loop {
        // A failed accept (EMFILE, a connection reset before it was accepted) ends one
        // connection, not the server; the pause keeps a lasting EMFILE from spinning.
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                eprintln!("http_tokio: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            // A client that goes away mid-request is its own problem, not the server's.
            let _ = builder.serve_connection(TokioIo::new(stream), service_fn(hello)).await;
        });
    }
}
