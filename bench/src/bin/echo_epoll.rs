//! Echo server as a hand-written epoll loop (libc only): the baseline a runtime cannot beat
//! by much. Level-triggered, non-blocking sockets, a 4 KiB buffer per connection.
//!
//! On `EPOLLIN` it calls `recv` once and `send`s what it got: level triggering reports the
//! socket again if more data is waiting, so no read is spent on `EAGAIN`, and a round trip
//! costs `recv` + `send` plus a share of one `epoll_wait`. A partial `send` keeps the rest in
//! the buffer and switches the connection's interest to `EPOLLOUT` (the only `epoll_ctl`
//! after the initial `ADD`), and back to `EPOLLIN` once the rest is out.
//!
//! Events carry a slot index, not the fd. A slot freed and reused within one batch of events
//! can see a stale event meant for its old connection; here that only costs a `recv` that
//! returns `EAGAIN`.
//!
//! ```text
//! echo_epoll [ADDR]       # default 127.0.0.1:0; prints "listening on ADDR", serves until killed
//! ECHO_EPOLL_ET=1 echo_epoll [ADDR]
//! ```
//!
//! `ECHO_EPOLL_ET=1` is a diagnostic: it registers each connection the way mini (and mio)
//! do, once, edge-triggered, for `EPOLLIN | EPOLLOUT | EPOLLRDHUP`, and reads until a short
//! read or `EAGAIN`; everything else stays the same. It isolates what the registration style
//! costs the kernel from what the runtime's own code costs.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use mini_bench::cvt;

const BUF: usize = 4096;
const LISTENER: u64 = u64::MAX;

struct Conn {
    fd: RawFd,
    buf: Box<[u8; BUF]>,
    /// `buf[start..end]` is still to be sent (empty unless waiting for `EPOLLOUT`).
    start: usize,
    end: usize,
}

struct Server {
    epfd: RawFd,
    /// `ECHO_EPOLL_ET=1`: register like mini (edge-triggered, both directions).
    edge: bool,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: key };
    // SAFETY: epoll_ctl reads `ev` only; bad fds are reported as errors.
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) })?;
    Ok(())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Server {
    fn accept_all(&mut self, listener: RawFd) -> io::Result<()> {
        loop {
            // SAFETY: accept4 with null address pointers is allowed.
            let fd = match cvt(unsafe {
                libc::accept4(
                    listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            }) {
                Ok(fd) => fd,
                Err(e) if would_block(&e) || e.kind() == io::ErrorKind::ConnectionAborted => return Ok(()),
                Err(e) => return Err(e),
            };
            mini_bench::set_nodelay(fd)?;
            let conn = Conn { fd, buf: Box::new([0; BUF]), start: 0, end: 0 };
            let slot = match self.free.pop() {
                Some(slot) => {
                    self.conns[slot] = Some(conn);
                    slot
                }
                None => {
                    self.conns.push(Some(conn));
                    self.conns.len() - 1
                }
            };
            let interest = if self.edge {
                (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32
            } else {
                libc::EPOLLIN as u32
            };
            ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, interest, slot as u64)?;
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(conn) = self.conns[slot].take() {
            // SAFETY: the fd is ours and closed once; closing also removes it from epoll.
            unsafe { libc::close(conn.fd) };
            self.free.push(slot);
        }
    }

    /// Sends `buf[start..end]`. Ok(true): all sent. Ok(false): the socket is full.
    fn flush(conn: &mut Conn) -> io::Result<bool> {
        while conn.start < conn.end {
            let rest = &conn.buf[conn.start..conn.end];
            // SAFETY: `rest` is valid for reads of its length.
            let sent = unsafe { libc::send(conn.fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            match cvt(sent) {
                Ok(n) => conn.start += n as usize,
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// `ECHO_EPOLL_ET=1`: handles one edge: flush what is pending, then read and echo until
    /// a short read or `EAGAIN` (no `epoll_ctl`: `EPOLLOUT` is always registered).
    fn ready_edge(&mut self, slot: usize) -> io::Result<()> {
        let Some(conn) = self.conns[slot].as_mut() else { return Ok(()) };
        loop {
            if !Self::flush(conn)? {
                return Ok(()); // the next EPOLLOUT edge resumes here
            }
            // SAFETY: `buf` is valid for writes of BUF bytes.
            let n = unsafe { libc::recv(conn.fd, conn.buf.as_mut_ptr().cast(), BUF, 0) };
            match cvt(n) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => (conn.start, conn.end) = (0, n as usize),
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if conn.end < BUF {
                // A short read emptied the socket: echo it, and wait for the next edge.
                return Self::flush(conn).map(|_| ());
            }
        }
    }

    /// Handles one event on a connection; Err means "close it".
    fn ready(&mut self, slot: usize, events: u32) -> io::Result<()> {
        if self.edge {
            return self.ready_edge(slot);
        }
        let epfd = self.epfd;
        let Some(conn) = self.conns[slot].as_mut() else { return Ok(()) };
        if conn.start < conn.end {
            // Waiting for room to send the rest of the last read.
            if events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 && Self::flush(conn)? {
                ctl(epfd, libc::EPOLL_CTL_MOD, conn.fd, libc::EPOLLIN as u32, slot as u64)?;
            }
            return Ok(());
        }
        // SAFETY: `buf` is valid for writes of BUF bytes.
        let n = unsafe { libc::recv(conn.fd, conn.buf.as_mut_ptr().cast(), BUF, 0) };
        match cvt(n) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                (conn.start, conn.end) = (0, n as usize);
                if !Self::flush(conn)? {
                    ctl(epfd, libc::EPOLL_CTL_MOD, conn.fd, libc::EPOLLOUT as u32, slot as u64)?;
                }
                Ok(())
            }
            Err(e) if would_block(&e) || e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn main() -> io::Result<()> {
    let listener = mini_bench::tcp_listener(mini_bench::listen_addr_arg())?;
    listener.set_nonblocking(true)?;
    mini_bench::announce(listener.local_addr()?);

    // SAFETY: epoll_create1 has no preconditions.
    let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    ctl(epfd, libc::EPOLL_CTL_ADD, listener.as_raw_fd(), libc::EPOLLIN as u32, LISTENER)?;
    let edge = std::env::var_os("ECHO_EPOLL_ET").is_some_and(|v| v == "1");
    let mut server = Server { epfd, edge, conns: Vec::new(), free: Vec::new() };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    loop {
        // SAFETY: `events` is valid for writes of its length.
        let n = match cvt(unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, -1) }) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for ev in &events[..n] {
            let (key, flags) = (ev.u64, ev.events);
            if key == LISTENER {
                server.accept_all(listener.as_raw_fd())?;
            } else if server.ready(key as usize, flags).is_err() {
                server.close(key as usize);
            }
        }
    }
}
