//! `TcpSocket` and the stream's socket options: each option set before bind/listen/connect
//! reads back through `getsockopt`, and the configured socket listens and connects.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use mini::net::{TcpSocket, TcpStream};

#[test]
fn every_option_reads_back_what_was_set() -> io::Result<()> {
    let s = TcpSocket::new_v4()?;
    assert_eq!(s.as_raw_fd(), s.as_fd().as_raw_fd());
    for on in [true, false] {
        s.set_reuseaddr(on)?;
        assert_eq!(s.reuseaddr()?, on);
        s.set_reuseport(on)?;
        assert_eq!(s.reuseport()?, on);
        s.set_nodelay(on)?;
        assert_eq!(s.nodelay()?, on);
        s.set_keepalive(on)?;
        assert_eq!(s.keepalive()?, on);
    }
    s.set_keepalive_idle(Duration::from_secs(7))?;
    assert_eq!(s.keepalive_idle()?, Duration::from_secs(7));
    s.set_keepalive_interval(Duration::from_secs(3))?;
    assert_eq!(s.keepalive_interval()?, Duration::from_secs(3));
    s.set_keepalive_retries(4)?;
    assert_eq!(s.keepalive_retries()?, 4);
    s.set_linger(Some(Duration::from_secs(2)))?;
    assert_eq!(s.linger()?, Some(Duration::from_secs(2)));
    s.set_linger(None)?;
    assert_eq!(s.linger()?, None);
    // The kernel doubles buffer sizes for its bookkeeping (and clamps them to a maximum).
    s.set_send_buffer_size(16 * 1024)?;
    assert_eq!(s.send_buffer_size()?, 32 * 1024);
    s.set_recv_buffer_size(12 * 1024)?;
    assert_eq!(s.recv_buffer_size()?, 24 * 1024);
    Ok(())
}

#[test]
fn keepalive_times_are_whole_seconds_from_one() -> io::Result<()> {
    let s = TcpSocket::new_v4()?;
    let err = s.set_keepalive_idle(Duration::from_millis(500)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // Our message, not the kernel's EINVAL: the caller learns what the kernel takes.
    assert!(err.to_string().contains("whole seconds"), "{err}");
    Ok(())
}

#[test]
fn only_v6_on_an_ipv6_socket() -> io::Result<()> {
    let s = TcpSocket::new_v6()?;
    for on in [true, false] {
        s.set_only_v6(on)?;
        assert_eq!(s.only_v6()?, on);
    }
    Ok(())
}

/// Two `SO_REUSEPORT` listeners share one port, and a configured socket connects to it.
#[mini::test]
async fn reuseport_listeners_share_a_port_and_a_socket_connects() -> io::Result<()> {
    let first = TcpSocket::new_v4()?;
    first.set_reuseport(true)?;
    first.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = first.local_addr()?;
    let first = first.listen(128)?;
    let second = TcpSocket::new_v4()?;
    second.set_reuseport(true)?;
    second.bind(addr)?;
    let _second = second.listen(128)?;
    assert_eq!(first.local_addr()?, addr);

    // Without SO_REUSEPORT the same bind fails.
    let third = TcpSocket::new_v4()?;
    assert_eq!(third.bind(addr).unwrap_err().kind(), io::ErrorKind::AddrInUse);

    let client = TcpSocket::new_v4()?;
    client.set_nodelay(true)?;
    let stream = client.connect(addr).await?;
    assert!(stream.nodelay()?, "set before connect, kept after");
    assert_eq!(stream.peer_addr()?, addr);
    Ok(())
}

/// A connect through `TcpSocket` to a closed port is refused, as `TcpStream::connect` is.
#[mini::test]
async fn a_socket_connect_to_a_closed_port_is_refused() -> io::Result<()> {
    let free = TcpSocket::new_v4()?;
    free.bind("127.0.0.1:0".parse().unwrap())?;
    let addr = free.local_addr()?;
    drop(free); // bound, never listening: nothing accepts there
    let err = TcpSocket::new_v4()?.connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

/// Linger and keepalive on a connected stream.
#[mini::test]
async fn stream_linger_and_keepalive() -> io::Result<()> {
    let listener = mini::net::TcpListener::bind("127.0.0.1:0").await?;
    let stream = TcpStream::connect(listener.local_addr()?).await?;
    assert_eq!(stream.linger()?, None);
    stream.set_linger(Some(Duration::ZERO))?;
    assert_eq!(stream.linger()?, Some(Duration::ZERO));
    stream.set_keepalive(true)?;
    assert!(stream.keepalive()?);
    Ok(())
}
