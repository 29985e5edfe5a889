//! Helpers shared by mini-hyper's tests: a mini runtime under a hang guard, and a loopback
//! server that hands each accepted connection to a handler.

#![allow(dead_code)] // not every test file uses every helper

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use mini::net::{TcpListener, TcpStream};

/// Long enough for any honest run (milliseconds natively); only a hang gets near it.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(30);

/// Runs `body()` to completion on a fresh mini runtime on its own thread, and fails the test
/// if that takes longer than [`HANG_GUARD`] (a lost wake-up then fails instead of hanging).
/// A panic inside is passed through.
#[track_caller]
pub(crate) fn run<F, Fut>(body: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    let caller = std::panic::Location::caller();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = mini::Runtime::new().expect("a runtime");
        let _ = tx.send(rt.block_on(body()));
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test body started at {caller} hung for {HANG_GUARD:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: rethrow its panic with its own message.
            std::panic::resume_unwind(thread.join().expect_err("the body ended without a value"))
        }
    }
}

/// Listens on a loopback port and spawns `handler(stream)` as a task for each connection.
/// Must run inside a mini runtime; the accept loop lives as long as the runtime.
pub(crate) async fn spawn_server<H, Fut>(handler: H) -> SocketAddr
where
    H: Fn(TcpStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("the listening address");
    mini::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            mini::spawn(handler(stream));
        }
    });
    addr
}
