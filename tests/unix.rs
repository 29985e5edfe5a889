//! Unix domain stream sockets, black-box: echo through a listener with several clients,
//! `pair`, half-close, `peer_closed`, connect and bind errors, the `sun_path` length limit,
//! a full listen backlog, bulk transfer in both directions with owned halves, and
//! `from_std`.
//!
//! Nothing sleeps. Each test uses its own socket path under the temp directory, named with
//! the test and the process id, and removes it.

mod util;

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use mini::net::{UnixListener, UnixStream};

use util::{counting_waker, exchange_both_ways, is_nonblocking, pattern, poll_once};

/// A socket path for one test, removed (if present) when created and when dropped.
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(test: &str) -> SocketPath {
        let path = std::env::temp_dir().join(format!("mini-{test}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        SocketPath(path)
    }
}

impl std::ops::Deref for SocketPath {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A connected `(client, server)` pair through a listener at `path`.
async fn connected(path: &Path) -> io::Result<(UnixStream, UnixStream)> {
    let listener = UnixListener::bind(path)?;
    let client = UnixStream::connect(path).await?;
    let (server, _) = listener.accept().await?;
    Ok((client, server))
}

/// A spawned echo server (`copy` over borrowed `split` halves, one task per connection)
/// serves several concurrent clients; each gets its own message back, and the addresses
/// agree: the listener and the accepted streams are at the path, clients are unnamed.
#[mini::test]
async fn echo_through_a_listener_with_several_clients() -> io::Result<()> {
    const CLIENTS: usize = 8;
    let path = SocketPath::new("echo");
    let listener = UnixListener::bind(&*path)?;
    assert_eq!(listener.local_addr()?.as_pathname(), Some(&*path));

    let server = mini::spawn(async move {
        let mut connections = Vec::new();
        for _ in 0..CLIENTS {
            let (mut stream, peer) = listener.accept().await?;
            assert!(peer.is_unnamed(), "a client that did not bind has no name");
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
            let path = path.to_path_buf();
            mini::spawn(async move {
                let mut stream = UnixStream::connect(&path).await?;
                assert_eq!(stream.peer_addr()?.as_pathname(), Some(path.as_path()));
                assert!(stream.local_addr()?.is_unnamed());
                let message = pattern(i as u8, 1000 + i * 7919);
                stream.write_all(&message).await?;
                stream.flush().await?;
                stream.shutdown(Shutdown::Write)?;
                let mut echo = Vec::new();
                stream.read_to_end(&mut echo).await?;
                assert!(echo == message, "client {i} got a damaged or foreign echo");
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

/// `pair` gives two connected, unnamed streams that carry data both ways.
#[mini::test]
async fn pair_carries_data_both_ways() -> io::Result<()> {
    let (mut a, mut b) = UnixStream::pair()?;
    assert!(a.peer_addr()?.is_unnamed() && b.local_addr()?.is_unnamed());

    a.write_all(b"from a").await?;
    b.write_all(b"from b").await?;
    let mut buf = [0; 6];
    b.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"from a");
    a.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"from b");

    drop(a);
    assert_eq!(b.read(&mut buf).await?, 0, "the other end closed: end of stream");
    Ok(())
}

/// After the client's `shutdown(Write)` the server reads the request then end of stream
/// (repeatedly), and can still reply; the client's writes fail with `EPIPE` (and no
/// SIGPIPE: sends use `MSG_NOSIGNAL`).
#[mini::test]
async fn half_close_then_reply() -> io::Result<()> {
    let path = SocketPath::new("half-close");
    let (mut client, mut server) = connected(&path).await?;

    client.write_all(b"request").await?;
    client.shutdown(Shutdown::Write)?;

    let mut request = Vec::new();
    assert_eq!(server.read_to_end(&mut request).await?, 7);
    assert_eq!(request, b"request");
    let mut buf = [0; 16];
    assert_eq!(server.read(&mut buf).await?, 0, "end of stream must be reported again");

    let err = client.write(b"late").await.expect_err("a write after shutdown(Write) must fail");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);

    server.write_all(b"reply").await?;
    let mut reply = [0; 5];
    client.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"reply");
    Ok(())
}

/// `peer_closed` stays pending while the peer is open (even with unread data queued),
/// resolves on a half-close and on a close, and consumes nothing.
#[mini::test]
async fn peer_closed_waits_for_the_close_and_consumes_nothing() -> io::Result<()> {
    let (client, mut server) = UnixStream::pair()?;
    let (mut half_closer, other) = UnixStream::pair()?;

    let data = pattern(3, 50_000);
    let writer = mini::spawn(async move {
        let mut client = client;
        client.write_all(&data).await?;
        Ok::<_, io::Error>((client, data))
    });

    {
        let (waker, _wakes) = counting_waker();
        let mut closed = std::pin::pin!(server.peer_closed());
        assert!(poll_once(closed.as_mut(), &waker).is_pending(), "resolved while the peer is open");
        mini::yield_now().await; // the writer fills the socket buffer in between
        assert!(poll_once(closed.as_mut(), &waker).is_pending(), "resolved while the peer is open");
    }

    // Read everything while the writer finishes, then let the writer close.
    let mut got = vec![0; 50_000];
    server.read_exact(&mut got).await?;
    let (mut client, data) = writer.await??;
    assert!(got == data);
    client.write_all(b"last words").await?;
    drop(client);
    server.peer_closed().await;
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await?;
    assert_eq!(rest, b"last words", "peer_closed consumed data");
    server.peer_closed().await; // and it stays resolved

    half_closer.shutdown(Shutdown::Write)?;
    other.peer_closed().await;
    half_closer.write_all(b"x").await.expect_err("the write side is shut");
    Ok(())
}

/// Connecting where nobody listens fails at once: `NotFound` without a socket file,
/// `ConnectionRefused` with a stale one (its listener closed).
#[mini::test]
async fn connect_where_nobody_listens_fails() -> io::Result<()> {
    let path = SocketPath::new("nobody");
    let err = UnixStream::connect(&*path).await.expect_err("no socket file");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);

    drop(std::os::unix::net::UnixListener::bind(&*path)?); // leaves the file behind
    let err = UnixStream::connect(&*path).await.expect_err("a stale socket file");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);

    // And binding over the stale file is refused: it must be removed first.
    let err = UnixListener::bind(&*path).expect_err("the file exists");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    Ok(())
}

/// `sun_path` holds 108 bytes including the terminating NUL: a 107-byte path binds and
/// connects, a 108-byte path is `InvalidInput` for both (not silently truncated), and so are
/// an empty path and one with a NUL byte.
#[mini::test]
async fn path_length_limit_is_checked() -> io::Result<()> {
    let dir = std::env::temp_dir();
    let prefix = format!("{}/mini-long-{}-", dir.display(), std::process::id());
    assert!(prefix.len() < 100, "the temp directory path is too long for this test");
    let longest = SocketPath(PathBuf::from(format!("{prefix}{}", "x".repeat(107 - prefix.len()))));
    let _ = std::fs::remove_file(&*longest);
    assert_eq!(longest.as_os_str().len(), 107);

    let listener = UnixListener::bind(&*longest)?;
    let _client = UnixStream::connect(&*longest).await?;
    let (_server, _) = listener.accept().await?;

    let too_long = PathBuf::from(format!("{prefix}{}", "x".repeat(108 - prefix.len())));
    let err = UnixStream::connect(&too_long).await.expect_err("108 bytes do not fit");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = UnixListener::bind(&too_long).expect_err("108 bytes do not fit");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(!too_long.exists(), "a truncated name was bound");

    for bad in ["", "/tmp/with\0nul"] {
        let err = UnixStream::connect(bad).await.expect_err("not a socket path");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
    }
    Ok(())
}

/// A connect that finds the listener's backlog full (`EAGAIN`) waits, and completes once
/// the server accepts: it neither fails nor returns an unconnected socket. The backlog is
/// shrunk to 0 (one pending connection) by calling `listen` again on a std listener.
#[mini::test]
async fn connect_waits_while_the_backlog_is_full() -> io::Result<()> {
    let path = SocketPath::new("backlog");
    let std_listener = std::os::unix::net::UnixListener::bind(&*path)?;
    // SAFETY: listen takes no pointers; the fd is open (borrowed from `std_listener`).
    assert_eq!(unsafe { libc::listen(std_listener.as_raw_fd(), 0) }, 0);
    let listener = UnixListener::from_std(std_listener)?;

    let mut first = UnixStream::connect(&*path).await?; // takes the one slot
    let second = mini::spawn({
        let path = path.to_path_buf();
        async move { UnixStream::connect(&path).await }
    });
    for _ in 0..3 {
        mini::yield_now().await;
        assert!(!second.is_finished(), "a connect to a full backlog completed or failed at once");
    }

    let (mut first_server, _) = listener.accept().await?; // frees the slot
    let mut second = second.await?.expect("the connect must succeed once a slot is free");
    let (mut second_server, _) = listener.accept().await?;

    for (client, server) in [(&mut first, &mut first_server), (&mut second, &mut second_server)] {
        client.write_all(b"connected").await?;
        let mut buf = [0; 9];
        server.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"connected");
    }
    Ok(())
}

/// Both ends write 1 MiB before reading anything, far more than the socket buffers hold.
/// With owned halves in separate tasks neither side deadlocks, each direction carries its
/// own pattern intact, and dropping an `OwnedWriteHalf` shuts down the write side (or the
/// `read_to_end`s never finish).
#[mini::test]
async fn a_mebibyte_each_way_with_both_sides_writing_first() -> io::Result<()> {
    let path = SocketPath::new("mebibyte");
    let (client, server) = connected(&path).await?;
    let (client_rd, client_wr) = client.into_split();
    assert!(client_rd.as_ref().peer_addr()?.as_pathname() == Some(&*path));
    exchange_both_ways((client_rd, client_wr), server.into_split(), 1 << 20).await
}

/// `from_std` puts std's blocking listener and stream in non-blocking mode, and the accept,
/// started before the connect, parks rather than blocks.
#[mini::test]
async fn from_std_listener_and_stream() -> io::Result<()> {
    let path = SocketPath::new("from-std");
    let std_listener = std::os::unix::net::UnixListener::bind(&*path)?;
    let listener_fd = std_listener.as_raw_fd();
    let listener = UnixListener::from_std(std_listener)?;
    assert!(is_nonblocking(listener_fd)?, "from_std left the listener blocking");

    let accept = mini::spawn(async move { listener.accept().await });
    mini::yield_now().await;
    assert!(!accept.is_finished());

    let std_stream = std::os::unix::net::UnixStream::connect(&*path)?;
    assert!(!is_nonblocking(std_stream.as_raw_fd())?);
    let mut client = UnixStream::from_std(std_stream)?;
    assert!(is_nonblocking(client.as_fd().as_raw_fd())?, "from_std left the stream blocking");

    let (mut server, _) = accept.await??;
    client.write_all(b"hello").await?;
    let mut buf = [0; 5];
    server.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"hello");
    Ok(())
}

/// Unix halves reunite too, with the write side still open; `into_std` hands the socket over.
#[mini::test]
async fn unix_halves_reunite_and_into_std() -> io::Result<()> {
    let (a, mut b) = UnixStream::pair()?;
    let (read, write) = a.into_split();
    let mut a = read.reunite(write).expect("halves of one stream");
    a.write_all(b"ok").await?;
    let mut buf = [0; 2];
    b.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ok");
    let (c, _d) = UnixStream::pair()?;
    let (c_read, _c_write) = c.into_split();
    let (_a_read, a_write) = a.into_split();
    assert!(c_read.reunite(a_write).is_err(), "halves of different streams");
    let mut std_b = b.into_std()?;
    std_b.set_nonblocking(false)?;
    std::io::Write::write_all(&mut std_b, b"z")?;
    Ok(())
}
