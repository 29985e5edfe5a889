//! A raw `epoll(7)` loop, level-triggered by default, edge-triggered with `--edge`.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_epoll -- [ADDR] [--edge]  # default 127.0.0.1:8080; port 0 is fine
//! cargo run --release --example echo_client -- 127.0.0.1:8080 1000
//! ```
//!
//! Every input operation has two phases: (1) *waiting* until data has arrived in the kernel's
//! socket buffer, and (2) *copying* it from the kernel into the process's buffer. As with
//! `select` and `poll`, the process blocks in `epoll_wait` for phase 1 and copies in a
//! non-blocking `read` for phase 2. The difference is where the bookkeeping lives.
//!
//! An epoll instance is a kernel object that keeps the *interest list* (fd, events, 64 bits of
//! user data) between calls: `epoll_ctl` adds, modifies or deletes one entry, once, instead
//! of the program handing over every fd on every call. Each registered socket has a callback
//! on its wait queue that, when the socket becomes ready, puts its entry on the instance's
//! *ready list*. `epoll_wait` only takes entries off that list, so a call costs O(ready fds),
//! not O(registered fds): 10,000 idle connections cost nothing per wake-up. The user data
//! comes back with each event, so the program knows which connection it is without a scan
//! (here a token that is never reused, so a late event for a closed connection finds nothing).
//!
//! Level-triggered (the default, as with poll): `epoll_wait` reports a socket on every call
//! for as long as it *is* readable (or writable). Edge-triggered (`EPOLLET`): it reports a
//! socket when it *becomes* readable (new data arrived) and then stays quiet, so the program
//! must read until `EWOULDBLOCK`, or the bytes left behind are never reported again and the
//! connection hangs. Compare `on_event_level` and `on_event_edge` below: LT may read once, but
//! must keep its interest set in step with its state (an always-writable socket registered
//! for EPOLLOUT would wake the loop on every call); ET registers once for both directions and
//! drains. epoll breaks down where the work per event dominates, or where one loop on one core
//! is not enough (then: one epoll loop per core); mini's reactor is this loop, edge-triggered.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// The listener's token; connections get 1, 2, 3, ..., never reused.
const LISTENER: u64 = 0;
/// How long to pause after `accept` fails (say, out of fds).
const BACKOFF: Duration = Duration::from_millis(100);

/// One client: a 4 KiB buffer, and in `buf[start..end]` the bytes read but not yet written back.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    /// Writes as much of the unwritten remainder as the socket takes. `Ok(true)`: all written.
    fn flush(&mut self) -> io::Result<bool> {
        while self.start < self.end {
            match self.stream.write(&self.buf[self.start..self.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n, // partial write: keep the rest, wait for EPOLLOUT
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Level-triggered: registered for EPOLLIN *or* EPOLLOUT, whichever the state needs.
    /// `Ok(false)`: the client closed.
    fn on_event_level(&mut self, epoll: &Epoll, token: u64) -> io::Result<bool> {
        if self.start < self.end {
            if self.flush()? {
                // All written: wait for data again. (Staying on EPOLLOUT would wake us on
                // every epoll_wait, since the socket stays writable: level-triggered busy loop.)
                epoll.modify(&self.stream, &mut EpollEvent::new(EpollFlags::EPOLLIN, token))?;
            }
            return Ok(true);
        }
        // ONE read. If more than 4 KiB is waiting, the socket is still readable, so the next
        // epoll_wait reports it again: nothing is lost by stopping here.
        match self.stream.read(&mut self.buf) {
            Ok(0) => return Ok(false),
            Ok(n) => (self.start, self.end) = (0, n),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                return Ok(true)
            }
            Err(e) => return Err(e),
        }
        if !self.flush()? {
            // The send buffer is full: stop reading, wait for room (one epoll_ctl each way).
            epoll.modify(&self.stream, &mut EpollEvent::new(EpollFlags::EPOLLOUT, token))?;
        }
        Ok(true)
    }

    /// Edge-triggered: registered once for EPOLLIN | EPOLLOUT, never modified. Every event
    /// runs the connection until an operation says WouldBlock. `Ok(false)`: the client closed.
    fn on_event_edge(&mut self) -> io::Result<bool> {
        loop {
            if !self.flush()? {
                return Ok(true); // send buffer full: the EPOLLOUT edge (room freed) brings us back
            }
            // Read AGAIN and again: an edge was reported once, and bytes left in the buffer
            // will raise no new edge. Only WouldBlock proves the buffer is empty.
            // (A production loop caps this, as mini's coop budget does, so one fast client
            // cannot starve the rest.)
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => (self.start, self.end) = (0, n), // write it back, then read again
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true), // drained
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Accepts until WouldBlock. Required under ET (one edge may stand for many connections);
/// under LT a single accept per event would also do. Each connection is registered once.
fn accept_all(
    listener: &TcpListener,
    epoll: &Epoll,
    conns: &mut HashMap<u64, Conn>,
    next_token: &mut u64,
    edge: bool,
) {
    // LT: data only, for now (EPOLLOUT is added while a remainder waits). ET: both, for good.
    let interest = if edge {
        EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLET
    } else {
        EpollFlags::EPOLLIN
    };
    loop {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                // Out of fds (EMFILE): under LT the listener would be reported at once,
                // forever. A shortcut: this stalls every client for the pause.
                eprintln!("io_epoll: accept failed: {e}; pausing {BACKOFF:?}");
                std::thread::sleep(BACKOFF);
                return;
            }
        };
        let token = *next_token;
        let added = stream.set_nonblocking(true).and_then(|()| {
            // epoll_ctl(ADD): the kernel keeps this entry until it is deleted or the socket closed.
            epoll.add(&stream, EpollEvent::new(interest, token)).map_err(io::Error::from)
        });
        match added {
            Ok(()) => {
                conns.insert(token, Conn { stream, buf: vec![0; 4096], start: 0, end: 0 });
                *next_token += 1;
            }
            Err(e) => eprintln!("io_epoll: cannot register a connection: {e}; closing"),
        }
    }
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut edge = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--edge" => edge = true,
            flag if flag.starts_with('-') => {
                eprintln!("io_epoll: unknown option {flag}\nusage: io_epoll [ADDR] [--edge]");
                std::process::exit(2);
            }
            _ => addr = arg,
        }
    }
    let et = if edge { EpollFlags::EPOLLET } else { EpollFlags::empty() };

    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    println!("echo server listening on {}", listener.local_addr()?);
    eprintln!("io_epoll: {}-triggered", if edge { "edge" } else { "level" });

    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(&listener, EpollEvent::new(EpollFlags::EPOLLIN | et, LISTENER))?;
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next_token = LISTENER + 1;
    let mut events = vec![EpollEvent::empty(); 256];
    loop {
        // Phase 1 for every socket at once, but the kernel hands back only the ready ones.
        let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for event in &events[..n] {
            let token = event.data();
            if token == LISTENER {
                accept_all(&listener, &epoll, &mut conns, &mut next_token, edge);
                continue;
            }
            // A connection closed earlier in this batch leaves its token behind: skip it.
            let Some(conn) = conns.get_mut(&token) else { continue };
            let open = if edge { conn.on_event_edge() } else { conn.on_event_level(&epoll, token) };
            if !matches!(open, Ok(true)) {
                // Closing the socket also removes it from the interest list (it is this
                // process's only reference to it); deleting first says so explicitly.
                let _ = epoll.delete(&conn.stream);
                conns.remove(&token);
            }
        }
    }
}
