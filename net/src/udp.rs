//! [`UdpSocket`]: datagrams.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::task::{Context, Poll};

use mini_runtime::io::{Async, Direction};
use mini_runtime::socket;

use crate::addr;
use crate::ToSocketAddrs;

/// A UDP socket: datagrams to and from any address, or, once [`connect`](Self::connect)ed,
/// to and from one peer.
///
/// Every method takes `&self`, so one socket can be shared (for example through an `Rc`) by
/// a task that receives and a task that sends; the reactor keeps a separate waker per
/// direction.
///
/// Each receive returns exactly one datagram. Unlike a stream read, a datagram shorter than
/// the buffer proves nothing about what else is queued, so after each datagram the socket
/// stays marked readable until a receive returns `WouldBlock`.
///
/// # Examples
///
/// ```
/// use mini::net::UdpSocket;
///
/// # mini::block_on(async {
/// let a = UdpSocket::bind("127.0.0.1:0").await?;
/// let b = UdpSocket::bind("127.0.0.1:0").await?;
///
/// a.send_to(b"ping", b.local_addr()?).await?;
/// let mut buf = [0; 16];
/// let (n, from) = b.recv_from(&mut buf).await?;
/// assert_eq!(&buf[..n], b"ping");
/// assert_eq!(from, a.local_addr()?);
///
/// // Connected: `send` and `recv` talk to one peer only.
/// b.connect(from).await?;
/// b.send(b"pong").await?;
/// let n = a.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"pong");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    io: Async<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr`. If `addr` yields several addresses, each is tried
    /// in turn. Port 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addrs = addr::resolve_async(addr).await?;
        addr::try_each(addrs, |a| async move {
            let fd = socket::udp_bind(a)?;
            let io = Async::new_nonblocking(std::net::UdpSocket::from(fd))?;
            Ok(UdpSocket { io })
        })
        .await
    }

    /// Wraps a socket created with std, putting it in non-blocking mode.
    ///
    /// # Panics
    ///
    /// Outside a mini runtime.
    #[inline]
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket { io: Async::new(socket)? })
    }

    /// Sets the default peer: [`send`](Self::send) goes there, and the kernel drops
    /// datagrams from any other address. If `addr` yields several addresses, each is tried
    /// in turn.
    ///
    /// A UDP connect sends nothing and completes at once; it is async only to match
    /// [`TcpStream::connect`](crate::TcpStream::connect) (and tokio). Once connected, an ICMP
    /// "port unreachable" from the peer shows up as `ConnectionRefused` on a later receive.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addrs = addr::resolve_async(addr).await?;
        let socket = self.io.get_ref();
        addr::try_each(addrs, |a| async move { socket.connect(a) }).await
    }

    /// Sends `buf` as one datagram to `target`, returning the number of bytes sent. If
    /// `target` yields several addresses, only the first is used (as in tokio): a datagram
    /// gets no answer that would tell whether another address would have been better.
    ///
    /// A datagram larger than the socket allows (64 KiB less the headers) fails with an
    /// error (`EMSGSIZE`); nothing is ever sent in part.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        // A literal address needs no lookup; a host name is looked up on the blocking pool.
        let target = addr::resolve_async(target).await?[0];
        poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// Polls to send `buf` to `target` (the poll form of [`send_to`](Self::send_to)).
    #[inline]
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| s.send_to(buf, target))
    }

    /// Waits for a datagram, copies it into `buf`, and returns its length and sender.
    ///
    /// A datagram longer than `buf` is truncated to `buf.len()` bytes and the rest of it is
    /// discarded, without error: Linux's `recvfrom` returns the number of bytes copied and
    /// only `recvmsg` would report the truncation (`MSG_TRUNC`). The next receive returns
    /// the next datagram, intact.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Polls for a datagram (the poll form of [`recv_from`](Self::recv_from)).
    #[inline]
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv_from(buf))
    }

    /// Sends `buf` as one datagram to the connected peer. On a socket that is not
    /// connected this fails at once (`EDESTADDRREQ`), it does not wait.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// Polls to send `buf` to the connected peer (the poll form of [`send`](Self::send)).
    #[inline]
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |s| s.send(buf))
    }

    /// Waits for a datagram from the connected peer and copies it into `buf`, returning its
    /// length. Truncates as [`recv_from`](Self::recv_from) does.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// Polls for a datagram from the connected peer (the poll form of [`recv`](Self::recv)).
    #[inline]
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv(buf))
    }

    /// The address the socket is bound to.
    #[inline]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address; `NotConnected` before [`connect`](Self::connect).
    #[inline]
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }
}

impl AsFd for UdpSocket {
    #[inline]
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.as_fd()
    }
}
