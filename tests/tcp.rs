//! TCP, black-box, over 127.0.0.1: connect/accept, echo, bulk transfer in both directions,
//! half-close, `peer_closed` (pending while open, data left intact, every waiter woken),
//! refused connects, resets, a burst of a thousand connections, `from_std`, and the byte
//! counts of `read_to_end` and `copy`. (SIGPIPE has a binary of its own: `tests/sigpipe.rs`.)
//!
//! Nothing sleeps: every wait is on the other end of a socket. Where a lost wake-up would
//! show only as a hang and the wait can be bounded, the test bounds it (`join_within`); the
//! other waits are for events a correct runtime always delivers.

mod util;

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};

use mini::net::{TcpListener, TcpStream};

use util::{
    counting_waker, exchange_both_ways, is_nonblocking, join_within, pattern, poll_once, reactor_turn,
    set_linger_zero, tcp_pair,
};

/// Accept and connect agree on both ends' addresses, `TCP_NODELAY` round-trips, and a
/// spawned echo server (`copy` over borrowed `split` halves) returns every message intact
/// and reports the exact number of bytes it copied.
#[mini::test]
async fn echo_over_accept_and_connect() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0, "port 0 must be replaced by the port the kernel picked");

    let mut client = TcpStream::connect(addr).await?;
    let (mut server, peer) = listener.accept().await?;
    assert_eq!(peer, client.local_addr()?);
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    assert_eq!(client.peer_addr()?, server.local_addr()?);
    assert_eq!(client.peer_addr()?, addr);

    client.set_nodelay(true)?;
    assert!(client.nodelay()?);
    client.set_nodelay(false)?;
    assert!(!client.nodelay()?);
    client.set_nodelay(true)?;

    let echo = mini::spawn(async move {
        let (mut reader, mut writer) = server.split();
        mini::io::copy(&mut reader, &mut writer).await
    });

    let big = pattern(7, 100_000);
    let messages: [&[u8]; 3] = [b"hello", b"mini", &big];
    let mut sent = 0;
    for message in messages {
        client.write_all(message).await?;
        client.flush().await?;
        let mut back = vec![0; message.len()];
        client.read_exact(&mut back).await?;
        assert!(back == message, "echo of a {}-byte message differs", message.len());
        sent += message.len();
    }

    // Half-close: copy sees end of stream, returns its count, and the task drops the stream.
    client.shutdown(Shutdown::Write)?;
    assert_eq!(echo.await??, sent as u64);
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).await?, 0, "nothing may follow the echoes");
    Ok(())
}

/// Both ends write 1 MiB before reading anything, far more than the socket buffers hold at
/// first. With owned halves in separate tasks neither side deadlocks, and each direction
/// carries its own pattern intact. Dropping an `OwnedWriteHalf` must shut down the write
/// side, or the `read_to_end`s never finish.
#[mini::test]
async fn a_mebibyte_each_way_with_both_sides_writing_first() -> io::Result<()> {
    let (client, server) = tcp_pair().await?;
    exchange_both_ways(client.into_split(), server.into_split(), 1 << 20).await
}

/// Half-close in both directions: after the client's `shutdown(Write)` the server reads
/// the request and then end of stream (repeatedly), yet can still send a reply; the client
/// can no longer write; when the server drops, the client reads end of stream.
#[mini::test]
async fn half_close_then_reply() -> io::Result<()> {
    let (mut client, mut server) = tcp_pair().await?;

    client.write_all(b"request").await?;
    client.shutdown(Shutdown::Write)?;

    let mut request = Vec::new();
    assert_eq!(server.read_to_end(&mut request).await?, 7);
    assert_eq!(request, b"request");
    let mut buf = [0; 16];
    assert_eq!(server.read(&mut buf).await?, 0, "end of stream must be reported again");

    // The write side of the client is shut; writing fails (and must not raise SIGPIPE).
    let err = client.write(b"late").await.expect_err("a write after shutdown(Write) must fail");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);

    server.write_all(b"reply").await?;
    let mut reply = [0; 5];
    client.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"reply");

    drop(server);
    assert_eq!(client.read(&mut buf).await?, 0);
    assert_eq!(client.read(&mut buf).await?, 0);
    Ok(())
}

/// `peer_closed` stays pending while the peer is connected (even with unread data queued),
/// resolves once the peer closes, and consumes nothing: all the data the peer sent before
/// closing is still there to read, followed by end of stream.
#[mini::test]
async fn peer_closed_waits_for_the_close_and_consumes_nothing() -> io::Result<()> {
    let (mut client, mut server) = tcp_pair().await?;
    let data = pattern(3, 50_000);
    client.write_all(&data).await?;

    // A round trip: the connection is up, and the client has nothing left to read (a close
    // with unread data would send a reset instead of a FIN).
    server.write_all(b"ping").await?;
    let mut ping = [0; 4];
    client.read_exact(&mut ping).await?;

    {
        let (waker, _wakes) = counting_waker();
        let mut closed = std::pin::pin!(server.peer_closed());
        assert!(poll_once(closed.as_mut(), &waker).is_pending(), "resolved while the peer is open");
        reactor_turn().await; // the reactor has looked at the socket in between
        assert!(poll_once(closed.as_mut(), &waker).is_pending(), "resolved while the peer is open");

        drop(client);
        closed.await; // the same future, parked in the reactor when the FIN arrives
    }

    let mut got = Vec::new();
    assert_eq!(server.read_to_end(&mut got).await?, data.len());
    assert!(got == data, "the data sent before the close was damaged or consumed");
    server.peer_closed().await; // and it stays resolved
    Ok(())
}

/// A local `shutdown(Shutdown::Read)` is indistinguishable from the peer's FIN: Linux
/// reports both as EPOLLRDHUP (both set the socket's RCV_SHUTDOWN). `peer_closed` documents
/// that it then resolves; this pins the documented behaviour.
#[mini::test]
async fn peer_closed_resolves_after_a_local_read_shutdown() -> io::Result<()> {
    let (_client, server) = tcp_pair().await?;
    let (waker, _wakes) = counting_waker();
    let mut closed = std::pin::pin!(server.peer_closed());
    assert!(poll_once(closed.as_mut(), &waker).is_pending(), "resolved while both sides are open");
    server.shutdown(Shutdown::Read)?;
    closed.await;
    Ok(())
}

/// A half-close is enough for `peer_closed`, and the closed side can still be written to.
#[mini::test]
async fn peer_closed_resolves_on_half_close() -> io::Result<()> {
    let (mut client, mut server) = tcp_pair().await?;
    client.shutdown(Shutdown::Write)?;
    server.peer_closed().await;
    server.write_all(b"still open this way").await?;
    let mut buf = [0; 19];
    client.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"still open this way");
    Ok(())
}

/// Two tasks waiting for `peer_closed` on the same stream, one through each owned half (the
/// halves' `AsRef` docs suggest exactly this): the close must wake both. The second task is
/// awaited first; the first must then finish within a bounded number of yields, since the
/// same reactor event made both ready.
#[mini::test]
async fn peer_closed_wakes_every_waiting_task() -> io::Result<()> {
    let (client, server) = tcp_pair().await?;
    let (read_half, write_half) = server.into_split();
    let first = mini::spawn(async move { read_half.as_ref().peer_closed().await });
    let second = mini::spawn(async move { write_half.as_ref().peer_closed().await });
    mini::yield_now().await; // both park
    assert!(!first.is_finished() && !second.is_finished());

    drop(client);
    second.await?;
    join_within(first, 10_000).await;
    Ok(())
}

/// A connect to a port nobody listens on fails with `ConnectionRefused` (read from
/// `SO_ERROR` after the non-blocking connect completes), not with a hang or another kind.
/// The port is held by a socket that is bound but not listening, so no other process can
/// start listening on it during the test.
#[mini::test]
async fn connect_to_a_closed_port_is_refused() -> io::Result<()> {
    let (_reserved, addr) = util::refusing_tcp_port()?;
    let err = TcpStream::connect(addr).await.expect_err("nobody listens on that port");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

/// A peer reset (SO_LINGER 0, then close) while the server is parked in a read: the read
/// returns `ECONNRESET` at once. Linux reports the reset once; the socket is then closed, so
/// the next read sees end of stream and a write fails with `EPIPE`.
#[mini::test]
async fn reset_during_a_read_gives_connection_reset() -> io::Result<()> {
    let (client, mut server) = tcp_pair().await?;
    let reader = mini::spawn(async move {
        let mut buf = [0; 64];
        let res = server.read(&mut buf).await;
        (server, res)
    });
    mini::yield_now().await; // the reader runs first and parks in its read
    assert!(!reader.is_finished(), "the read completed with nothing sent");

    set_linger_zero(&client)?;
    drop(client);

    let (mut server, res) = reader.await?;
    let err = res.expect_err("a read on a reset connection must fail");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);

    let mut buf = [0; 64];
    assert_eq!(server.read(&mut buf).await?, 0, "after the reset is reported, the stream is at its end");
    let err = server.write(b"anyone?").await.expect_err("a write to a reset peer must fail");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    Ok(())
}

/// A reset in the middle of a bulk transfer, while the writer is parked on a full send
/// buffer: the writer's next write fails with `ECONNRESET` (then `EPIPE`), never hangs.
#[mini::test]
async fn reset_during_a_transfer_fails_the_writer() -> io::Result<()> {
    let (mut client, mut server) = tcp_pair().await?;
    let writer = mini::spawn(async move {
        let chunk = pattern(5, 64 * 1024);
        // Bounded so that a runtime that never reports the reset fails instead of looping:
        // the client stops reading after one byte, so the buffers fill long before this.
        for _ in 0..16 * 1024 {
            if let Err(e) = server.write_all(&chunk).await {
                let again = server.write(&chunk).await;
                return (e, again);
            }
        }
        panic!("wrote 1 GiB to a peer that stopped reading");
    });

    let mut first = [0; 1];
    client.read_exact(&mut first).await?; // the transfer is under way
    set_linger_zero(&client)?;
    drop(client);

    let (err, again) = writer.await?;
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(again.expect_err("still reset").kind(), io::ErrorKind::BrokenPipe);
    Ok(())
}

/// A thousand clients connect at once to a spawned echo server on one runtime, each sends a
/// distinct message, half-closes, and checks the echo. Every connection must be accepted
/// (the listen backlog is 1024) and every task must complete.
#[mini::test]
async fn a_thousand_concurrent_connections_are_echoed() -> io::Result<()> {
    const CLIENTS: usize = 1000;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let server = mini::spawn(async move {
        let mut connections = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            let (mut stream, _) = listener.accept().await?;
            connections.push(mini::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                mini::io::copy(&mut reader, &mut writer).await
            }));
        }
        let mut echoed = 0;
        for connection in connections {
            echoed += connection.await??;
        }
        Ok::<u64, io::Error>(echoed)
    });

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            mini::spawn(async move {
                let mut stream = TcpStream::connect(addr).await?;
                let message = format!("client {i} of {CLIENTS} says hello");
                stream.write_all(message.as_bytes()).await?;
                stream.shutdown(Shutdown::Write)?;
                let mut echo = Vec::new();
                stream.read_to_end(&mut echo).await?;
                assert_eq!(echo, message.as_bytes(), "client {i} got someone else's echo");
                Ok::<u64, io::Error>(message.len() as u64)
            })
        })
        .collect();

    let mut sent = 0;
    for client in clients {
        sent += client.await??;
    }
    assert_eq!(server.await??, sent);
    Ok(())
}

/// `from_std` wraps a std listener and a std stream: both are put in non-blocking mode (a
/// blocking fd would stall the whole runtime thread) and work in both directions. The
/// accept is started before the connect, so it must park rather than block.
#[mini::test]
async fn from_std_listener_and_stream() -> io::Result<()> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = std_listener.local_addr()?;
    let listener_fd = std_listener.as_raw_fd();
    let listener = TcpListener::from_std(std_listener)?;
    assert_eq!(listener.local_addr()?, addr);
    // The listener has no fd accessor; its fd number stays open while `listener` lives.
    assert!(is_nonblocking(listener_fd)?, "from_std left the listener blocking");

    let accept = mini::spawn(async move { listener.accept().await });
    mini::yield_now().await; // the accept parks first
    assert!(!accept.is_finished());

    // A blocking connect: the kernel completes the handshake without the accept.
    let std_stream = std::net::TcpStream::connect(addr)?;
    assert!(!is_nonblocking(std_stream.as_raw_fd())?);
    let mut client = TcpStream::from_std(std_stream)?;
    assert!(is_nonblocking(client.as_fd().as_raw_fd())?, "from_std left the stream blocking");

    let (mut server, peer) = accept.await??;
    assert_eq!(peer, client.local_addr()?);
    assert_eq!(client.peer_addr()?, addr);

    // The server reads before the client writes: the wrapped stream must park, not block.
    let reader = mini::spawn(async move {
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await?;
        server.write_all(&buf).await?;
        Ok::<_, io::Error>(buf)
    });
    mini::yield_now().await;
    client.write_all(b"hello").await?;
    let mut back = [0; 5];
    client.read_exact(&mut back).await?;
    assert_eq!(&back, b"hello");
    assert_eq!(&reader.await??, b"hello");
    Ok(())
}

/// `read_to_end` returns the number of bytes it *appended* (not the buffer's length), and
/// `copy` returns the number of bytes it moved; both match what was sent, in both directions.
#[mini::test]
async fn read_to_end_and_copy_report_exact_counts() -> io::Result<()> {
    const LEN: usize = 300_001;
    let (mut client, mut server) = tcp_pair().await?;
    let upload = pattern(9, LEN);

    // Client → server: the client writes and half-closes; the server copies into a Vec.
    let sender = {
        let upload = upload.clone();
        mini::spawn(async move {
            client.write_all(&upload).await?;
            client.close().await?; // AsyncWriteExt::close: shutdown(Write)
            Ok::<_, io::Error>(client)
        })
    };
    let mut received = Vec::new();
    assert_eq!(mini::io::copy(&mut server, &mut received).await?, LEN as u64);
    assert!(received == upload);
    let mut client = sender.await??;

    // Server → client: `copy` from a byte slice into the socket, then half-close.
    let mut source: &[u8] = &received;
    assert_eq!(mini::io::copy(&mut source, &mut server).await?, LEN as u64);
    server.shutdown(Shutdown::Write)?;
    let mut back = b"prefix".to_vec();
    assert_eq!(client.read_to_end(&mut back).await?, LEN);
    assert_eq!(back.len(), LEN + 6);
    assert!(&back[..6] == b"prefix" && back[6..] == upload[..]);
    Ok(())
}

/// Sends `buf` with `MSG_OOB` (TCP urgent data), as telnet's interrupt does.
fn send_urgent(socket: &std::net::TcpStream, buf: &[u8]) -> io::Result<()> {
    // SAFETY: the fd is open for the call (borrowed from `socket`) and `buf` is a live slice
    // whose exact length is passed.
    let n = unsafe { libc::send(socket.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_OOB) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    assert_eq!(n as usize, buf.len());
    Ok(())
}

/// A read stops short at TCP's urgent mark with data still queued behind it, so a short read
/// does not always mean an empty buffer. The reactor must not skip the next read then: the
/// data after the mark raises no new edge, and the reader would wait forever.
#[mini::test]
async fn data_behind_an_urgent_mark_is_not_stranded() -> io::Result<()> {
    use std::io::Write;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept().await?;
    // All of it is in the server's receive buffer before the first read, and the client
    // then stays quiet (no FIN either), so no later edge could rescue a stranded read.
    client.write_all(b"abc")?;
    send_urgent(&client, b"!")?;
    client.write_all(b"def")?;
    // Let the reactor take in the edges for all of it, so none is left to wake a later wait.
    reactor_turn().await;

    let mut got = [0u8; 6];
    let read = server.read_exact(&mut got);
    // A hang guard only: a stranded "def" would otherwise block this test forever.
    mini::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the bytes after the urgent mark were stranded")?;
    // The urgent byte itself is delivered out of band (no SO_OOBINLINE), the rest in order.
    assert_eq!(&got, b"abcdef");
    Ok(())
}

/// `reunite` gives back the stream, still open for writing: the write half it consumed must
/// not shut the write side down as a dropped one does.
#[mini::test]
async fn reunited_halves_are_the_stream_again_with_its_write_side_open() -> io::Result<()> {
    let (client, mut server) = tcp_pair().await?;
    let (read, write) = client.into_split();
    let mut client = read.reunite(write).expect("halves of one stream");
    client.write_all(b"still open").await?;
    let mut buf = [0; 10];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"still open");
    server.write_all(b"!").await?;
    client.read_exact(&mut buf[..1]).await?;
    // And from the write half's side.
    let (read, write) = client.into_split();
    let mut client = write.reunite(read).expect("halves of one stream");
    client.write_all(b"x").await?;
    server.read_exact(&mut buf[..1]).await?;
    assert_eq!(&buf[..1], b"x");
    Ok(())
}

/// Halves of two different streams are refused, and handed back intact.
#[mini::test]
async fn reuniting_halves_of_different_streams_fails_and_returns_them() -> io::Result<()> {
    let (a, mut a_peer) = tcp_pair().await?;
    let (b, _b_peer) = tcp_pair().await?;
    let (a_read, _a_write) = a.into_split();
    let (_b_read, b_write) = b.into_split();
    let mini::net::ReuniteError(a_read, b_write) = a_read.reunite(b_write).unwrap_err();
    drop(b_write);
    a_peer.write_all(b"y").await?;
    let mut a_read = a_read;
    let mut buf = [0; 1];
    a_read.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"y", "the read half still works");
    Ok(())
}

/// `peek` leaves the bytes for the next read; `readable`/`writable` wait without I/O.
#[mini::test]
async fn peek_readable_and_writable() -> io::Result<()> {
    let (mut client, mut server) = tcp_pair().await?;
    client.writable().await?;
    client.write_all(b"abc").await?;
    server.readable().await?;
    let mut buf = [0; 3];
    assert_eq!(server.peek(&mut buf).await?, 3);
    assert_eq!(&buf, b"abc");
    let mut again = [0; 3];
    server.read_exact(&mut again).await?;
    assert_eq!(&again, b"abc", "peek consumed nothing");
    Ok(())
}

/// TTL on streams and listeners reads back what was set; raw fds match the owned ones.
#[mini::test]
async fn ttl_and_raw_fds() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    listener.set_ttl(42)?;
    assert_eq!(listener.ttl()?, 42);
    assert_eq!(listener.as_raw_fd(), listener.as_fd().as_raw_fd());
    let client = TcpStream::connect(listener.local_addr()?).await?;
    client.set_ttl(17)?;
    assert_eq!(client.ttl()?, 17);
    assert_eq!(client.as_raw_fd(), client.as_fd().as_raw_fd());
    Ok(())
}

/// `into_std` hands the sockets over, deregistered and usable with blocking std calls.
#[mini::test]
async fn into_std_gives_working_std_sockets() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut client = TcpStream::connect(addr).await?;
    let (server, _) = listener.accept().await?;
    let std_listener = listener.into_std()?;
    assert_eq!(std_listener.local_addr()?, addr);
    let mut std_server = server.into_std()?;
    std_server.set_nonblocking(false)?;
    std_server.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    client.write_all(b"hi").await?;
    // The read below blocks this thread, so the bytes must be in the kernel first: on the
    // io_uring driver a write queues them for the loop's next turn, and `flush` waits for
    // that (futures-io's contract; a no-op on epoll).
    client.flush().await?;
    let mut buf = [0; 2];
    std::io::Read::read_exact(&mut std_server, &mut buf)?;
    assert_eq!(&buf, b"hi");
    Ok(())
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to it
/// neither succeeds nor fails until the SYN retries run out (minutes). Returns the address
/// and what must stay alive for it to stay dead.
async fn a_dead_address() -> io::Result<(std::net::SocketAddr, Vec<TcpStream>, TcpListener)> {
    let socket = mini::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse().unwrap())?;
    let listener = socket.listen(0)?; // an accept queue of one, never accepted from
    let addr = listener.local_addr()?;
    let mut queued = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(addr, std::time::Duration::from_millis(300)).await {
            Ok(stream) => queued.push(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok((addr, queued, listener)),
            Err(e) => return Err(e),
        }
    }
    panic!("the accept queue never filled up");
}

/// With a dead address first, `connect` still reaches the live one: after 250 ms it is tried
/// beside the dead one, instead of after the dead one's two-minute SYN timeout.
#[mini::test]
async fn a_dead_first_address_does_not_hold_up_the_connect() -> io::Result<()> {
    let (dead, _queued, _dead_listener) = a_dead_address().await?;
    let live = TcpListener::bind("127.0.0.1:0").await?;
    let addrs = [dead, live.local_addr()?];
    let guard = std::time::Duration::from_secs(20); // a hang guard: the SYN timeout is minutes
    let stream = mini::time::timeout(guard, TcpStream::connect(&addrs[..])).await??;
    assert_eq!(stream.peer_addr()?, live.local_addr()?);
    Ok(())
}

/// `connect_timeout` gives up on a dead address with `TimedOut`; when every address refuses,
/// the error is a refusal.
#[mini::test]
async fn connect_timeout_and_all_addresses_refused() -> io::Result<()> {
    let (dead, _queued, _dead_listener) = a_dead_address().await?;
    let err = TcpStream::connect_timeout(dead, std::time::Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    let (_a, refusing_a) = util::refusing_tcp_port()?;
    let (_b, refusing_b) = util::refusing_tcp_port()?;
    let err = TcpStream::connect(&[refusing_a, refusing_b][..]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

/// `try_read`/`try_write` never wait: `WouldBlock` when there is nothing to read or no room,
/// and after a `WouldBlock`, `readable()` waits for the next data instead of returning at once.
#[mini::test]
async fn try_read_and_try_write_do_not_wait() -> io::Result<()> {
    let (client, mut server) = tcp_pair().await?;
    let mut buf = [0; 16];
    assert_eq!(client.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    // The WouldBlock cleared the readiness: `readable()` now waits for the server's bytes.
    let mut readable = std::pin::pin!(client.readable());
    let (waker, _wakes) = counting_waker();
    assert!(std::future::Future::poll(readable.as_mut(), &mut std::task::Context::from_waker(&waker))
        .is_pending());
    server.write_all(b"data").await?;
    readable.await?;
    assert_eq!(client.try_read(&mut buf)?, 4);
    assert_eq!(&buf[..4], b"data");
    // Fill the client's send buffer until try_write refuses.
    let chunk = [7u8; 64 * 1024];
    let mut sent = 0;
    loop {
        match client.try_write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
        assert!(sent < 512 * 1024 * 1024, "the send buffer never filled");
    }
    assert!(sent > 0);
    Ok(())
}

/// `AsyncBufRead`: `fill_buf` lends the bytes that arrived (on io_uring the driver's receive
/// buffer itself, on epoll a buffer of the stream's own), `consume` takes some, and the
/// stream's other reads (`read`, `try_read`, `peek`) see the rest first, in order; at the
/// end, an empty `fill_buf`. The suite runs on both drivers (`MINI_DRIVER`).
#[mini::test]
async fn fill_buf_lends_the_bytes_and_reads_take_the_rest_in_order() -> io::Result<()> {
    use futures_io::AsyncBufRead;
    use std::future::poll_fn;
    use std::pin::Pin;

    let (mut client, mut server) = tcp_pair().await?;
    client.write_all(b"hello, world").await?;
    client.shutdown(Shutdown::Write)?;

    let mut seen = Vec::new();
    while seen.len() < 7 {
        // Copied out inside the poll: the lent slice lives only as long as that borrow.
        let chunk = poll_fn(|cx| Pin::new(&mut server).poll_fill_buf(cx).map_ok(<[u8]>::to_vec)).await?;
        assert!(!chunk.is_empty(), "fill_buf ended before the data did");
        let take = chunk.len().min(7 - seen.len());
        seen.extend_from_slice(&chunk[..take]);
        Pin::new(&mut server).consume(take);
    }
    assert_eq!(seen, b"hello, ");

    let mut peeked = [0; 2];
    let n = server.peek(&mut peeked).await?;
    assert_eq!(&peeked[..n], &b"wo"[..n], "peek sees the unconsumed bytes first");
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await?;
    assert_eq!(rest, b"world");
    let end = poll_fn(|cx| Pin::new(&mut server).poll_fill_buf(cx).map_ok(<[u8]>::to_vec)).await?;
    assert!(end.is_empty(), "end of stream is an empty fill_buf");
    Ok(())
}

/// A `try_read` that finds nothing must not take the place of a task parked in `read` on the
/// same stream: that task is still woken when the bytes come. (On io_uring, `try_read` once
/// parked a no-op waker in the read slot, and the reader hung.) On both drivers.
#[mini::test]
async fn try_read_leaves_a_parked_reader_its_wake() -> io::Result<()> {
    let (mut client, server) = tcp_pair().await?;
    let (mut read_half, write_half) = server.into_split();
    let reader = mini::spawn(async move {
        let mut buf = [0; 8];
        let n = read_half.read(&mut buf).await?;
        Ok::<_, io::Error>(buf[..n].to_vec())
    });
    reactor_turn().await; // the reader is parked in its read
    assert!(!reader.is_finished());
    let stream: &TcpStream = write_half.as_ref();
    let err = stream.try_read(&mut [0; 8]).expect_err("nothing has been sent");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    client.write_all(b"hello").await?;
    client.flush().await?;
    let got = mini::time::timeout(std::time::Duration::from_secs(20), reader)
        .await
        .expect("the parked reader was never woken")
        .unwrap()?;
    assert_eq!(got, b"hello");
    Ok(())
}
