//! I/O multiplexing with `poll(2)`: `select` without the 1024-fd ceiling, still linear.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_poll -- [ADDR]         # default 127.0.0.1:8080; port 0 is fine
//! cargo run --release --example echo_client -- 127.0.0.1:8080 1000
//! ```
//!
//! Every input operation has two phases: (1) *waiting* until data has arrived in the kernel's
//! socket buffer, and (2) *copying* it from the kernel into the process's buffer. As with
//! `select`, the process blocks in `poll` for phase 1, on all its sockets at once; phase 2 is
//! an ordinary non-blocking `read` that finds the data waiting.
//!
//! Instead of bitmaps, `poll` takes an array of `struct pollfd { fd, events, revents }`: any fd
//! number fits, so there is no `FD_SETSIZE`, and because the kernel writes its answer into
//! `revents` while leaving `events` alone, the array need not be rebuilt between calls (this
//! example rebuilds it anyway, because `nix`'s `PollFd` borrows each socket; the cost is the
//! same order). Only the fds in the array are looked at, not every number below the highest.
//!
//! What does not change is the linear cost. On every call the kernel copies the whole array
//! in, asks each socket whether it is ready (and hooks the thread onto each one's wait queue),
//! sleeps, unhooks from all of them, and copies the array back; the program then scans every
//! `revents` to find the ready few. With 10,000 mostly idle connections, each wake-up pays
//! for 10,000 entries to deliver perhaps one event. `epoll` (`io_epoll`) fixes that by keeping
//! the interest list in the kernel between calls.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

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
    /// What to wait for: room to write while a remainder is pending, otherwise data.
    fn interest(&self) -> PollFlags {
        if self.start < self.end {
            PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        }
    }

    /// Writes as much of the unwritten remainder as the socket takes. `Ok(true)`: all written.
    fn flush(&mut self) -> io::Result<bool> {
        while self.start < self.end {
            match self.stream.write(&self.buf[self.start..self.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n, // partial write: keep the rest, wait for POLLOUT
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Acts on what `poll` reported. `Ok(false)`: the client closed.
    fn on_ready(&mut self, revents: PollFlags) -> io::Result<bool> {
        // POLLHUP and POLLERR are reported whether asked for or not; the read or write below
        // then returns the end of stream or the error, so they need no branch of their own.
        if self.start < self.end {
            return self.flush().map(|_| true);
        }
        if !revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            return Ok(true);
        }
        match self.stream.read(&mut self.buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                (self.start, self.end) = (0, n);
                self.flush()?; // what does not fit now waits; `interest` turns to POLLOUT
                Ok(true)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Accepts every waiting connection: the listener is non-blocking, so stop at WouldBlock.
fn accept_all(listener: &TcpListener, conns: &mut Vec<Conn>) {
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => match stream.set_nonblocking(true) {
                Ok(()) => conns.push(Conn { stream, buf: vec![0; 4096], start: 0, end: 0 }),
                Err(e) => eprintln!("io_poll: set_nonblocking: {e}; closing"),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                // Out of fds (EMFILE) the listener stays readable and poll would return at
                // once, forever: pause. A shortcut: this stalls every client for the pause;
                // echo_server stops only accepting.
                eprintln!("io_poll: accept failed: {e}; pausing {BACKOFF:?}");
                std::thread::sleep(BACKOFF);
                return;
            }
        }
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    println!("echo server listening on {}", listener.local_addr()?);

    let mut conns: Vec<Conn> = Vec::new();
    loop {
        // revents for the listener (entry 0) and for each connection (entries 1..).
        let revents: Vec<PollFlags> = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(conns.len() + 1);
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            fds.extend(conns.iter().map(|c| PollFd::new(c.stream.as_fd(), c.interest())));
            // Phase 1 for every socket at once. The whole array goes into the kernel and comes
            // back, and the kernel looks at every entry, on every call: O(connections).
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            // poll returns how many entries have events, not which: scan them all.
            fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect()
        };

        // Serve the connections that have events; drop (close) each one that ended or failed.
        let mut i = 0;
        conns.retain_mut(|conn| {
            i += 1;
            revents[i].is_empty() || matches!(conn.on_ready(revents[i]), Ok(true))
        });

        if !revents[0].is_empty() {
            accept_all(&listener, &mut conns);
        }
    }
}
