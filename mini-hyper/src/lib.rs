//! hyper 1.x on the mini runtime, as hyper-util serves tokio and smol-hyper serves smol.
//!
//! hyper brings the HTTP/1 and HTTP/2 protocols but no runtime; it asks for three things,
//! and this crate supplies each for mini:
//!
//! | hyper asks for                   | mini-hyper gives   | on top of                          |
//! |----------------------------------|--------------------|------------------------------------|
//! | `rt::Read` + `rt::Write` (I/O)   | [`FuturesIo`]      | any `futures_io` reader/writer     |
//! | `rt::Executor` (HTTP/2 tasks)    | [`MiniExecutor`]   | [`mini::spawn`], `!Send` included  |
//! | `rt::Timer` (timeouts, pings)    | [`MiniTimer`]      | [`mini::time::Sleep`]              |
//!
//! The crate has no `unsafe` code.
//!
//! # Examples
//!
//! A server that answers every request with "Hello, world!" over HTTP/1.1 with keep-alive
//! (`mini-hyper/examples/http_hello.rs` is the complete program):
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use hyper::body::Bytes;
//! use hyper::server::conn::http1;
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//! use mini_hyper::{FuturesIo, MiniTimer};
//!
//! async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
//!     Ok(Response::new("Hello, world!\n".to_string()))
//! }
//!
//! #[mini::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = mini::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (stream, _peer) = listener.accept().await?;
//!         mini::spawn(async move {
//!             let served = http1::Builder::new()
//!                 .timer(MiniTimer) // hyper's header-read timeout needs a timer
//!                 .serve_connection(FuturesIo::new(stream), service_fn(hello))
//!                 .await;
//!             if let Err(e) = served {
//!                 eprintln!("connection error: {e}");
//!             }
//!         });
//!     }
//! }
//! ```
//!
//! HTTP/2 takes the executor as well: `http2::Builder::new(MiniExecutor).timer(MiniTimer)`.

#![forbid(unsafe_code)]

mod exec;
mod io;
mod timer;

pub use exec::MiniExecutor;
pub use io::FuturesIo;
pub use timer::MiniTimer;
