//! The `ws_echo` example (examples/ws_echo.rs): its server and an async-tungstenite client,
//! both on one mini runtime, over loopback. Each test runs under a timeout, so a hang fails it.

#[path = "../examples/ws_echo.rs"]
#[allow(dead_code)] // the example's `main`
mod ws_echo;

use std::net::SocketAddr;
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::StreamExt;
use mini::net::{TcpListener, TcpStream};
use mini::time::timeout;

type Error = Box<dyn std::error::Error>;

const HANG_GUARD: Duration = Duration::from_secs(10);

/// Runs `test` on a fresh runtime; a hang fails it after `HANG_GUARD`.
fn run(test: impl std::future::Future<Output = Result<(), Error>>) {
    mini::block_on(async { timeout(HANG_GUARD, test).await.expect("the test hung") }).unwrap();
}

/// Serves on a free port, in a task of the current runtime.
async fn start(handshake_timeout: Duration) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    mini::spawn(ws_echo::serve(listener, handshake_timeout));
    Ok(addr)
}

async fn connect(addr: SocketAddr) -> Result<WebSocketStream<TcpStream>, Error> {
    let stream = TcpStream::connect(addr).await?;
    let (ws, response) = async_tungstenite::client_async(format!("ws://{addr}/"), stream).await?;
    assert_eq!(response.status(), 101);
    Ok(ws)
}

/// The next message, which must be there.
async fn next(ws: &mut WebSocketStream<TcpStream>) -> Result<Message, Error> {
    Ok(ws.next().await.ok_or("the stream ended")??)
}

#[test]
fn echoes_text_and_binary_answers_a_ping_and_closes_cleanly() {
    run(async {
        let addr = start(ws_echo::HANDSHAKE_TIMEOUT).await?;
        let mut ws = connect(addr).await?;
        ws.send(Message::text("hello, mini")).await?;
        assert_eq!(next(&mut ws).await?, Message::text("hello, mini"));
        let bytes: Vec<u8> = (0..=255).collect();
        ws.send(Message::binary(bytes.clone())).await?;
        assert_eq!(next(&mut ws).await?, Message::binary(bytes));
        ws.send(Message::Ping(b"are you there".to_vec().into())).await?;
        assert_eq!(next(&mut ws).await?, Message::Pong(b"are you there".to_vec().into()));

        // The close handshake: ours, the server's answer, then the end of the stream.
        ws.close(None).await?;
        assert!(matches!(next(&mut ws).await?, Message::Close(_)));
        assert!(ws.next().await.is_none());
        Ok(())
    });
}

#[test]
fn a_message_over_the_limit_is_refused_with_1009() {
    run(async {
        let addr = start(ws_echo::HANDSHAKE_TIMEOUT).await?;
        let mut ws = connect(addr).await?;
        ws.send(Message::binary(vec![7; ws_echo::MAX_MESSAGE])).await?; // the limit itself is fine
        assert_eq!(next(&mut ws).await?.len(), ws_echo::MAX_MESSAGE);
        // The server may close before it has read all of this; the write may then fail.
        let _ = ws.send(Message::binary(vec![7; ws_echo::MAX_MESSAGE + 1])).await;
        match next(&mut ws).await? {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size, "{frame}"),
            other => panic!("expected a close frame, got {other:?}"),
        }
        Ok(())
    });
}

#[test]
fn a_plain_http_request_is_refused_and_the_server_goes_on() {
    run(async {
        let addr = start(ws_echo::HANDSHAKE_TIMEOUT).await?;
        let mut plain = TcpStream::connect(addr).await?;
        plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
        let mut answer = Vec::new();
        plain.read_to_end(&mut answer).await?; // the server closes the connection...
        assert_eq!(String::from_utf8_lossy(&answer), ""); // ...without a word

        let mut ws = connect(addr).await?;
        ws.send(Message::text("still serving")).await?;
        assert_eq!(next(&mut ws).await?, Message::text("still serving"));
        Ok(())
    });
}

#[test]
fn a_client_silent_past_the_handshake_timeout_is_dropped() {
    run(async {
        let addr = start(Duration::from_millis(50)).await?;
        let mut silent = TcpStream::connect(addr).await?;
        // Without the timeout this would wait for ever (and the guard would fail the test).
        assert_eq!(silent.read(&mut [0; 16]).await?, 0);
        Ok(())
    });
}
