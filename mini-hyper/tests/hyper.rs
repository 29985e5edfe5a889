//! hyper 1.x served and spoken over mini, through mini-hyper: a pipelined keep-alive client,
//! a 3 MB body echoed, HTTP/2 with parallel streams (with `Send` and `!Send` services),
//! hyper's header-read timeout fired by mini's timer, an HTTP upgrade handed back to
//! futures-io, and `MiniTimer::reset`. Everything runs on one mini runtime per test, over
//! loopback, under a hang guard; no assertion depends on how long anything took.

mod util;

use std::cell::Cell;
use std::convert::Infallible;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::Timer;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use mini::io::{AsyncReadExt, AsyncWriteExt};
use mini::net::TcpStream;
use mini_hyper::{FuturesIo, MiniExecutor, MiniTimer};

/// What the tests' own waits (a reply, an EOF) are bounded by: generous, a hang guard only.
const STALL_GUARD: Duration = Duration::from_secs(10);

/// Answers `GET /x` with the body `/x`.
async fn echo_path(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(request.uri().path().to_string()))))
}

/// Answers with the request's own body, streamed back as it arrives.
async fn echo_body(request: Request<Incoming>) -> Result<Response<Incoming>, Infallible> {
    Ok(Response::new(request.into_body()))
}

/// Reads until EOF, failing the test if the peer stalls for [`STALL_GUARD`].
async fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = mini::time::timeout(STALL_GUARD, stream.read(&mut buf))
            .await
            .expect("the server stalled")
            .expect("read");
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// Five requests written in one go on one connection, then the write side closed: hyper
/// (told to allow half-closed clients) answers each, in order, and then closes. The requests arrive in one read, so this also
/// checks that `FuturesIo` hands hyper every byte it read, and passes EOF on as EOF.
#[test]
fn pipelined_keep_alive_requests_are_answered_in_order() {
    let text = util::run(|| async {
        let addr = util::spawn_server(|stream| async move {
            let served = http1::Builder::new()
                .pipeline_flush(true) // answers to pipelined requests leave in one write
                .half_close(true) // an EOF after the requests is not a client that left
                .timer(MiniTimer)
                .serve_connection(FuturesIo::new(stream), service_fn(echo_path))
                .await;
            served.expect("the pipelined connection is served without error");
        })
        .await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let requests: String =
            (0..5).map(|i| format!("GET /request-{i} HTTP/1.1\r\nHost: test\r\n\r\n")).collect();
        client.write_all(requests.as_bytes()).await.unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap(); // half-close: no more requests
        String::from_utf8(read_to_eof(&mut client).await).unwrap()
    });
    let responses: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(responses.len(), 5, "{text}");
    for (i, response) in responses.iter().enumerate() {
        assert!(response.starts_with("200 OK\r\n"), "{response}");
        assert!(response.ends_with(&format!("\r\n\r\n/request-{i}")), "out of order: {text}");
    }
}

/// A 3 MB POST comes back byte for byte: hyper's client and server, both on mini, both
/// through `FuturesIo`; the client side with vectored writes on (hyper queues buffers and
/// calls `poll_write_vectored`, which mini's sockets answer one buffer at a time), the
/// server side with them off (hyper flattens).
#[test]
fn a_three_megabyte_post_is_echoed_byte_for_byte() {
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let expected = body.clone();
    let echoed = util::run(move || async move {
        let addr = util::spawn_server(|stream| async move {
            let _ = http1::Builder::new()
                .timer(MiniTimer)
                .serve_connection(FuturesIo::new(stream), service_fn(echo_body))
                .await;
        })
        .await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(FuturesIo::with_vectored_writes(stream)).await.unwrap();
        mini::spawn(conn);
        let request =
            Request::post("/echo").header("host", "test").body(Full::new(Bytes::from(body))).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap().to_bytes()
    });
    assert_eq!(echoed.len(), expected.len());
    assert!(echoed == expected, "the echoed body differs");
}

/// A rendezvous for `n` requests: each handler waits until all `n` have arrived. With
/// streams served one after another the first would wait for ever (and the hang guard
/// would fail the test), so completing proves the streams ran in parallel.
#[derive(Clone)]
struct AllArrived {
    n: usize,
    state: Arc<Mutex<(usize, Vec<Waker>)>>,
}

impl AllArrived {
    fn new(n: usize) -> AllArrived {
        AllArrived { n, state: Arc::default() }
    }

    async fn wait(&self) {
        let mut arrived = false;
        poll_fn(|cx| {
            let mut state = self.state.lock().unwrap();
            if !std::mem::replace(&mut arrived, true) {
                state.0 += 1;
            }
            if state.0 >= self.n {
                state.1.drain(..).for_each(Waker::wake);
                Poll::Ready(())
            } else {
                state.1.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Sends `n` requests at once over one HTTP/2 prior-knowledge connection to `addr`, and
/// returns the response bodies in request order.
async fn h2_parallel_gets(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(MiniExecutor, FuturesIo::new(stream)).await.unwrap();
    mini::spawn(conn);
    let requests = (0..n).map(|i| {
        let mut sender = sender.clone();
        async move {
            let uri = format!("http://test/stream-{i}");
            let request = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.version(), hyper::Version::HTTP_2);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        }
    });
    mini::time::timeout(STALL_GUARD, join_all(requests)).await.expect("the streams did not all complete")
}

/// Serves HTTP/2 (prior knowledge) on a loopback port, the way a mini user would:
/// `MiniExecutor` for the streams, `MiniTimer` for hyper's timers, `handler` per request.
async fn spawn_h2_server<H, Fut>(handler: H) -> std::net::SocketAddr
where
    H: Fn(Request<Incoming>) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + 'static,
{
    util::spawn_server(move |stream| {
        let service = service_fn(handler.clone());
        async move {
            let _ = http2::Builder::new(MiniExecutor)
                .timer(MiniTimer)
                .serve_connection(FuturesIo::new(stream), service)
                .await;
        }
    })
    .await
}

/// HTTP/2 with prior knowledge: ten requests in flight at once on one connection, the
/// server on `MiniExecutor` and `MiniTimer`, the client on `MiniExecutor` too.
#[test]
fn http2_prior_knowledge_serves_parallel_streams() {
    const N: usize = 10;
    let bodies = util::run(|| async {
        let all_arrived = AllArrived::new(N);
        let addr = spawn_h2_server(move |request| {
            let all_arrived = all_arrived.clone();
            async move {
                all_arrived.wait().await;
                echo_path(request).await
            }
        })
        .await;
        h2_parallel_gets(addr, N).await
    });
    let expected: Vec<String> = (0..N).map(|i| format!("/stream-{i}")).collect();
    assert_eq!(bodies, expected);
}

/// The same over HTTP/2 with a service whose futures are `!Send` (they hold an `Rc` across
/// an await): `MiniExecutor` spawns them as local tasks. It would not compile with an
/// executor that required `Send`.
#[test]
fn http2_serves_a_service_whose_futures_are_not_send() {
    const N: usize = 4;
    let (bodies, served) = util::run(|| async {
        let served = Rc::new(Cell::new(0u32));
        let counter = served.clone();
        let addr = spawn_h2_server(move |request| {
            let counter: Rc<Cell<u32>> = counter.clone(); // held across the await
            async move {
                mini::yield_now().await;
                counter.set(counter.get() + 1);
                echo_path(request).await
            }
        })
        .await;
        (h2_parallel_gets(addr, N).await, served.get())
    });
    assert_eq!(bodies, (0..N).map(|i| format!("/stream-{i}")).collect::<Vec<_>>());
    assert_eq!(served, N as u32, "each request ran the !Send service once");
}

/// hyper's header-read timeout, on mini's timer: a client that sends a whole request, reads
/// the answer, then sends half a header and stalls has its connection closed, and
/// `serve_connection` reports a timeout. The second request's timer is the first one's,
/// reset (hyper resets the sleep per request), so this also runs `MiniTimer::reset`.
#[test]
fn the_header_read_timeout_fires_through_mini_timers() {
    let (reply, server_error) = util::run(|| async {
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = util::spawn_server(move |stream| {
            let tx = tx.clone();
            async move {
                let served = http1::Builder::new()
                    .timer(MiniTimer)
                    .header_read_timeout(Duration::from_millis(100))
                    .serve_connection(FuturesIo::new(stream), service_fn(echo_path))
                    .await;
                let _ = tx.send(served.err().map(|e| (e.is_timeout(), e.to_string())));
            }
        })
        .await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET /first HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
        let mut first = vec![0u8; 4096];
        let n = mini::time::timeout(STALL_GUARD, client.read(&mut first)).await.unwrap().unwrap();
        assert!(first[..n].ends_with(b"\r\n\r\n/first"), "{:?}", String::from_utf8_lossy(&first[..n]));
        client.write_all(b"GET /second HTTP/1.1\r\nHost: te").await.unwrap(); // ...and stall
        let reply = read_to_eof(&mut client).await;
        let server_error = rx.try_recv().expect("the connection future has ended");
        (reply, server_error)
    });
    // hyper closes without a response (at most a 408, depending on its version).
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 408"), "{reply}");
    let (is_timeout, message) = server_error.expect("serve_connection failed");
    assert!(is_timeout, "not a timeout: {message}");
}

/// `MiniTimer::reset` moves the sleep it is given, in its box (no new allocation), to a
/// later or an earlier deadline.
#[test]
fn mini_timer_reset_moves_the_same_sleep() {
    util::run(|| async {
        let timer = MiniTimer;
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        let before: *const () = (&*sleep as *const dyn hyper::rt::Sleep).cast();
        let soon = Instant::now() + Duration::from_millis(5);
        timer.reset(&mut sleep, soon);
        let after: *const () = (&*sleep as *const dyn hyper::rt::Sleep).cast();
        assert_eq!(before, after, "reset allocated a new sleep instead of moving this one");
        sleep.as_mut().await; // an hour-long sleep would trip the hang guard
        assert!(Instant::now() >= soon);

        let later = Instant::now() + Duration::from_millis(20);
        let mut sleep = timer.sleep(Duration::from_millis(1));
        timer.reset(&mut sleep, later);
        sleep.await;
        assert!(Instant::now() >= later, "woke at the old deadline");
    });
}

/// The other direction: a hyper `rt::Read + rt::Write` (here a `FuturesIo` over a mini
/// socket) wrapped again is a futures-io stream: bytes, the write side's close, and EOF all
/// cross both adapters. (hyper's own such type, `upgrade::Upgraded`, needs `Send` I/O, which
/// mini's sockets are not; over a `Send` futures-io type it works the same way.)
#[test]
fn a_hyper_io_is_futures_io_again() {
    let received = util::run(|| async {
        let listener = mini::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // futures-io over hyper I/O over futures-io, on both ends.
        let mut client = FuturesIo::new(FuturesIo::new(client));
        let mut server = FuturesIo::new(FuturesIo::new(server));
        let message: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let sent = message.clone();
        let writer = mini::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.close().await.unwrap(); // shuts the socket's write side down
            client // kept open (in the finished task) until joined: only the close sends EOF
        });
        let mut received = Vec::new();
        mini::time::timeout(STALL_GUARD, server.read_to_end(&mut received)).await.unwrap().unwrap();
        drop(writer.await.unwrap());
        assert!(received == message, "the bytes differ");
        received.len()
    });
    assert_eq!(received, 200_000);
}

/// A futures-io stream that counts the calls to its `poll_write_vectored`.
struct CountVectored {
    inner: TcpStream,
    vectored_calls: Rc<Cell<usize>>,
}

impl futures_io::AsyncRead for CountVectored {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for CountVectored {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.vectored_calls.set(self.vectored_calls.get() + 1);
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// hyper asks `is_write_vectored` and gathers its writes only when told yes: a server over
/// `FuturesIo::with_vectored_writes` answers through `poll_write_vectored`, one over
/// `FuturesIo::new` never calls it (hyper flattens each response into one buffer instead).
#[test]
fn vectored_writes_are_used_only_when_asked_for() {
    let calls = util::run(|| async {
        let mut calls = Vec::new();
        for vectored in [false, true] {
            let counter = Rc::new(Cell::new(0));
            let count = counter.clone();
            let addr = util::spawn_server(move |stream| {
                let io = CountVectored { inner: stream, vectored_calls: count.clone() };
                let io = if vectored { FuturesIo::with_vectored_writes(io) } else { FuturesIo::new(io) };
                async move {
                    let _ = http1::Builder::new().serve_connection(io, service_fn(echo_path)).await;
                }
            })
            .await;
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(b"GET /v HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.unwrap();
            let reply = read_to_eof(&mut client).await;
            assert!(reply.ends_with(b"\r\n\r\n/v"), "{:?}", String::from_utf8_lossy(&reply));
            calls.push(counter.get());
        }
        calls
    });
    assert_eq!(calls[0], 0, "hyper gathered writes it was told not to");
    assert!(calls[1] > 0, "hyper never used poll_write_vectored");
}

/// The executor and the timer can sit in builders shared across threads (hyper's builders
/// are `Send + Sync` when their parts are), and `FuturesIo` adds no `!Send` of its own.
#[test]
fn the_executor_timer_and_adapter_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone + Default + std::fmt::Debug>() {}
    assert_send_sync::<MiniExecutor>();
    assert_send_sync::<MiniTimer>();
    fn assert_send_sync_io<T: Send + Sync>() {}
    assert_send_sync_io::<FuturesIo<std::io::Cursor<Vec<u8>>>>();
    assert_send_sync_io::<http1::Builder>();
}
