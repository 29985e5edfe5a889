//! UDP, black-box, over 127.0.0.1: `send_to`/`recv_from` ping-pong, connected `send`/`recv`,
//! a receive that parks until a datagram arrives, truncation of a datagram longer than the
//! buffer, zero-length datagrams, `send` without a peer, and `from_std`.
//!
//! Nothing sleeps. Datagrams over loopback are delivered (or dropped) inside the sender's
//! `send_to` call, so every test knows exactly what is queued when it receives.

mod util;

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;

use mini::net::UdpSocket;

use util::{is_nonblocking, join_within};

/// Two sockets bound to free loopback ports.
async fn two_sockets() -> io::Result<(UdpSocket, UdpSocket)> {
    let a = UdpSocket::bind("127.0.0.1:0").await?;
    let b = UdpSocket::bind("127.0.0.1:0").await?;
    Ok((a, b))
}

/// A spawned echo task answers 100 datagrams of different sizes; each reply comes back
/// intact, and each side reports the other's address as the sender.
#[mini::test]
async fn ping_pong_of_a_hundred_round_trips() -> io::Result<()> {
    const ROUNDS: usize = 100;
    let (client, server) = two_sockets().await?;
    let client_addr = client.local_addr()?;
    let server_addr = server.local_addr()?;
    assert!(server_addr.ip().is_loopback());
    assert_ne!(server_addr.port(), 0, "port 0 must be replaced by the port the kernel picked");

    let echo = mini::spawn(async move {
        let mut buf = [0; 2048];
        for _ in 0..ROUNDS {
            let (n, from) = server.recv_from(&mut buf).await?;
            assert_eq!(from, client_addr, "the server saw the wrong sender");
            assert_eq!(server.send_to(&buf[..n], from).await?, n);
        }
        Ok::<(), io::Error>(())
    });

    let mut buf = [0; 2048];
    for i in 0..ROUNDS {
        let message = util::pattern(i as u8, 1 + i * 13);
        assert_eq!(client.send_to(&message, server_addr).await?, message.len());
        let (n, from) = client.recv_from(&mut buf).await?;
        assert_eq!(from, server_addr, "round {i}: the reply came from the wrong address");
        assert!(buf[..n] == message[..], "round {i}: the echo of {} bytes differs", message.len());
    }
    echo.await??;
    Ok(())
}

/// After `connect`, `send` and `recv` talk to the peer, `peer_addr` names it, and the kernel
/// drops datagrams from any third address.
#[mini::test]
async fn connected_send_and_recv() -> io::Result<()> {
    let (a, b) = two_sockets().await?;
    let stranger = UdpSocket::bind("127.0.0.1:0").await?;
    assert_eq!(a.peer_addr().expect_err("not connected yet").kind(), io::ErrorKind::NotConnected);

    a.connect(b.local_addr()?).await?;
    b.connect(a.local_addr()?).await?;
    assert_eq!(a.peer_addr()?, b.local_addr()?);
    assert_eq!(b.peer_addr()?, a.local_addr()?);

    // Dropped by the kernel: `a` only accepts datagrams from `b` now.
    stranger.send_to(b"not for you", a.local_addr()?).await?;

    assert_eq!(b.send(b"hello").await?, 5);
    let mut buf = [0; 32];
    assert_eq!(a.recv(&mut buf).await?, 5);
    assert_eq!(&buf[..5], b"hello", "the stranger's datagram got through");

    a.send(b"hi back").await?;
    let (n, from) = b.recv_from(&mut buf).await?;
    assert_eq!((&buf[..n], from), (&b"hi back"[..], a.local_addr()?));
    Ok(())
}

/// A task that receives on an empty socket parks (it does not spin or fail), and a
/// datagram sent later by another task wakes it. Shared through an `Rc`: every method
/// takes `&self`.
#[mini::test]
async fn recv_parks_until_a_datagram_arrives() -> io::Result<()> {
    let (sender, receiver) = two_sockets().await?;
    let receiver = Rc::new(receiver);
    let target = receiver.local_addr()?;

    let waiting = mini::spawn({
        let receiver = receiver.clone();
        async move {
            let mut buf = [0; 16];
            let (n, from) = receiver.recv_from(&mut buf).await?;
            Ok::<_, io::Error>((buf[..n].to_vec(), from))
        }
    });
    for _ in 0..3 {
        mini::yield_now().await; // let the receiver run, find nothing, and park
        assert!(!waiting.is_finished(), "recv_from completed on an empty socket");
    }

    let from = sender.local_addr()?;
    let send = mini::spawn(async move { sender.send_to(b"wake up", target).await });
    // The datagram is queued as soon as the sending task runs: the wake-up is due now.
    assert_eq!(join_within(send, 100).await?, 7);
    assert_eq!(join_within(waiting, 100).await?, (b"wake up".to_vec(), from));

    // The socket is usable again from the original owner.
    let other = UdpSocket::bind("127.0.0.1:0").await?;
    other.send_to(b"again", target).await?;
    let mut buf = [0; 16];
    assert_eq!(receiver.recv_from(&mut buf).await?.0, 5);
    Ok(())
}

/// A datagram longer than the buffer fills the buffer and the rest of it is discarded, with
/// no error: Linux's `recvfrom` returns the number of bytes copied (only `recvmsg` would flag
/// `MSG_TRUNC`). The next receive returns the next datagram, whole, not the leftover bytes.
#[mini::test]
async fn a_long_datagram_is_truncated_and_the_next_is_intact() -> io::Result<()> {
    let (a, b) = two_sockets().await?;
    let long = util::pattern(1, 1000);
    a.send_to(&long, b.local_addr()?).await?;
    a.send_to(b"short", b.local_addr()?).await?;

    let mut buf = [0; 16];
    let (n, from) = b.recv_from(&mut buf).await?;
    assert_eq!(n, 16, "a truncated datagram reports the bytes copied");
    assert_eq!(buf, long[..16]);
    assert_eq!(from, a.local_addr()?);

    let (n, _) = b.recv_from(&mut buf).await?;
    assert_eq!(&buf[..n], b"short", "the rest of the long datagram leaked into the next receive");
    Ok(())
}

/// A zero-length datagram is a datagram: `Ok((0, sender))`, not an end of stream, and the
/// socket keeps working afterwards.
#[mini::test]
async fn a_zero_length_datagram_is_received_as_zero_bytes() -> io::Result<()> {
    let (a, b) = two_sockets().await?;
    assert_eq!(a.send_to(&[], b.local_addr()?).await?, 0);
    a.send_to(b"after", b.local_addr()?).await?;
    let mut buf = [0; 16];
    assert_eq!(b.recv_from(&mut buf).await?, (0, a.local_addr()?));
    assert_eq!(b.recv_from(&mut buf).await?, (5, a.local_addr()?));
    Ok(())
}

/// `send` without a peer fails at once with `EDESTADDRREQ`; it neither hangs nor sends.
#[mini::test]
async fn send_without_connect_is_an_error() -> io::Result<()> {
    let (a, _b) = two_sockets().await?;
    let err = a.send(b"to whom?").await.expect_err("send on an unconnected socket must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EDESTADDRREQ), "unexpected error: {err}");
    Ok(())
}

/// `from_std` puts a blocking std socket in non-blocking mode (a blocking receive would stall
/// the whole runtime thread), and the wrapped socket parks and wakes like a native one.
#[mini::test]
async fn from_std_socket() -> io::Result<()> {
    let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    assert!(!is_nonblocking(std_socket.as_raw_fd())?);
    let socket = Rc::new(UdpSocket::from_std(std_socket)?);
    assert!(is_nonblocking(socket.as_fd().as_raw_fd())?, "from_std left the socket blocking");

    let waiting = mini::spawn({
        let socket = socket.clone();
        async move {
            let mut buf = [0; 8];
            socket.recv_from(&mut buf).await.map(|(n, _)| buf[..n].to_vec())
        }
    });
    mini::yield_now().await;
    assert!(!waiting.is_finished());

    let sender = UdpSocket::bind("127.0.0.1:0").await?;
    sender.send_to(b"std", socket.local_addr()?).await?;
    assert_eq!(join_within(waiting, 100).await?, b"std");
    Ok(())
}
