//! A WebSocket echo server: async-tungstenite over mini's `TcpStream`.
//!
//! ```text
//! cargo run -p mini-ecosystem --example ws_echo -- [ADDR]   # 127.0.0.1:8082 by default
//! python3 -m websockets ws://127.0.0.1:8082/                # type a line, it comes back
//! ```
//!
//! - The first line on stdout is `ws_echo listening on ADDR`.
//! - Text and binary messages come back as they went; pings are answered with pongs (by
//!   tungstenite itself), and a close from the client is answered, which ends the connection.
//! - A message or frame over 1 MiB is refused with close code 1009 ("message too big"): the
//!   library's default, 64 MiB, is more than one client should cost a small server.
//! - A request that is not a WebSocket handshake (plain HTTP, say) gets the connection
//!   closed, as does a client that has not finished its handshake within 10 s.
//! - If it cannot start, it says why in one line on stderr and exits with status 1.
//!
//! tungstenite does the protocol; mini only moves bytes. async-tungstenite wraps any type with
//! the `futures-io` traits, so `accept_async(stream)` takes a mini `TcpStream` as it is.

#![forbid(unsafe_code)]

use std::time::Duration;

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures::StreamExt; // `next` on the stream of messages
use mini::net::{TcpListener, TcpStream};
use mini::time::timeout;

/// Where the server listens when no address is given.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:8082";

/// The largest message (and frame) a client may send.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// How long a client may take over its handshake: without a limit, a peer that connects and
/// sends nothing would hold its task (and fd) for ever.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts clients until the process ends, one task each. A client that has not finished its
/// handshake after `handshake_timeout` is dropped.
pub(crate) async fn serve(listener: TcpListener, handshake_timeout: Duration) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                // A failed handshake or a protocol error is that client's business alone.
                mini::spawn(echo(stream, handshake_timeout));
            }
            // Out of fds, say: pause rather than spin on a listener that stays readable.
            Err(e) => {
                eprintln!("ws_echo: accept failed: {e}");
                mini::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: the handshake, then each text or binary message is sent back.
async fn echo(stream: TcpStream, handshake_timeout: Duration) -> Result<(), WsError> {
    let config =
        WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    let handshake = async_tungstenite::accept_async_with_config(stream, Some(config));
    let mut ws = timeout(handshake_timeout, handshake).await.map_err(std::io::Error::from)??;
    // `None` once the close handshake is done (or the peer vanished).
    while let Some(message) = ws.next().await {
        match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => ws.send(message).await?,
            // Ping: tungstenite has queued the pong, sent with our next write or read. Close:
            // it has queued the reply too, and the next `next()` sends it and returns `None`.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {}
            Err(WsError::Capacity(e)) => {
                let reason = format!("{e}").into();
                return ws.close(Some(CloseFrame { code: CloseCode::Size, reason })).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Says why the server cannot start, and exits with status 1.
fn fail(msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("ws_echo: {msg}");
    std::process::exit(1)
}

#[mini::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if addr.starts_with('-') || args.next().is_some() {
        eprintln!("usage: ws_echo [ADDR]   (default {DEFAULT_ADDR})");
        std::process::exit(2);
    }
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => fail(format_args!("cannot listen on {addr}: {e}")),
    };
    match listener.local_addr() {
        Ok(local) => println!("ws_echo listening on {local}"),
        Err(e) => fail(format_args!("cannot listen on {addr}: {e}")),
    }
    serve(listener, HANDSHAKE_TIMEOUT).await
}
