//! I/O multiplexing with `select(2)`: one thread sleeps on many sockets at once.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_select -- [ADDR]       # default 127.0.0.1:8080; port 0 is fine
//! cargo run --release --example echo_client -- 127.0.0.1:8080 1000
//! ```
//!
//! Every input operation has two phases: (1) *waiting* until data has arrived in the kernel's
//! socket buffer, and (2) *copying* it from the kernel into the process's buffer. Here the
//! process blocks in `select` for phase 1, on all its sockets at once, and `select` returns
//! when at least one is ready. Phase 2 then happens in an ordinary (non-blocking) `read`, which
//! finds the data there and copies it. Two system calls where blocking I/O needs one, but one
//! thread serves every connection and sleeps whenever none has anything to do.
//!
//! `select` takes three bitmaps (`fd_set`s: read, write, exceptional) with one bit per fd
//! number, and `nfds`, the highest fd plus one. On each call the kernel copies the bitmaps in,
//! checks every fd from 0 to `nfds - 1` (asking each socket whether it is ready, and adding
//! the thread to its wait queue), sleeps, then checks them all again and copies back bitmaps
//! that now hold only the ready fds. The sets are overwritten, so the program rebuilds them
//! before every call, and it learns *which* fds are ready only by testing each bit in turn.
//! Every call therefore costs O(highest fd), in the kernel and in the program, even when one
//! socket of a thousand is ready.
//!
//! The bitmap has a fixed size: `FD_SETSIZE`, 1024 bits on Linux. An fd numbered 1024 or more
//! cannot be put in an `fd_set` at all (writing its bit would scribble past the end of the
//! struct; `nix` refuses with a panic). So this server checks each accepted fd and closes the
//! ones past the limit with a message: with stdin, stdout, stderr and the listener taking fds
//! 0 to 3, it serves a little over 1000 clients. `poll` (`io_poll`) removes the limit but not
//! the linear cost; `epoll` (`io_epoll`) removes both.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::select::{select, FdSet, FD_SETSIZE};

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
    fn has_pending(&self) -> bool {
        self.start < self.end
    }

    /// Writes as much of the unwritten remainder as the socket takes. `Ok(true)`: all written.
    fn flush(&mut self) -> io::Result<bool> {
        while self.start < self.end {
            match self.stream.write(&self.buf[self.start..self.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n, // partial write: keep the rest, wait for writability
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The socket is readable: one read (phase 2 only: the data is there), then try to write
    /// it back. `Ok(false)`: the client closed.
    fn on_readable(&mut self) -> io::Result<bool> {
        match self.stream.read(&mut self.buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                (self.start, self.end) = (0, n);
                self.flush()?; // what does not fit now waits in buf; next time we ask for write
                Ok(true)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Accepts every waiting connection (the listener is non-blocking), refusing the fds that
/// select cannot watch.
fn accept_all(listener: &TcpListener, conns: &mut Vec<Conn>) {
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let fd = stream.as_raw_fd();
                if fd as usize >= FD_SETSIZE {
                    eprintln!("fd {fd} is past FD_SETSIZE ({FD_SETSIZE}): select cannot watch it; closing");
                    continue; // dropping `stream` closes it
                }
                match stream.set_nonblocking(true) {
                    Ok(()) => conns.push(Conn { stream, buf: vec![0; 4096], start: 0, end: 0 }),
                    Err(e) => eprintln!("io_select: set_nonblocking: {e}; closing"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                // Out of fds (EMFILE) the listener stays readable and select would return at
                // once, forever: pause. A shortcut: this stalls every client for the pause;
                // echo_server stops only accepting.
                eprintln!("io_select: accept failed: {e}; pausing {BACKOFF:?}");
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
        // (readable, writable) for each connection, and whether the listener is readable.
        let (listener_ready, ready): (bool, Vec<(bool, bool)>) = {
            // Rebuilt from scratch before every call: select overwrites the sets it is given.
            // A connection with a remainder to write waits for room, not for more data.
            let mut readable = FdSet::new();
            let mut writable = FdSet::new();
            readable.insert(listener.as_fd());
            let mut highest = listener.as_raw_fd();
            for conn in &conns {
                let set = if conn.has_pending() { &mut writable } else { &mut readable };
                set.insert(conn.stream.as_fd());
                highest = highest.max(conn.stream.as_raw_fd());
            }
            // Phase 1 for every socket at once: the kernel copies both sets in, checks fds
            // 0..=highest one by one, sleeps until one is ready, and copies the sets back.
            match select(highest + 1, &mut readable, &mut writable, None, None) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            // select says how many fds are ready, not which: test every bit we care about.
            let ready = conns
                .iter()
                .map(|c| (readable.contains(c.stream.as_fd()), writable.contains(c.stream.as_fd())))
                .collect();
            (readable.contains(listener.as_fd()), ready)
        };

        // Serve the ready connections; drop (close) each one that ended or failed, alone.
        let mut i = 0;
        conns.retain_mut(|conn| {
            let (r, w) = ready[i];
            i += 1;
            let open = if w {
                conn.flush().map(|_| true) // all written: next turn it goes back to the read set
            } else if r {
                conn.on_readable()
            } else {
                Ok(true)
            };
            matches!(open, Ok(true))
        });

        if listener_ready {
            accept_all(&listener, &mut conns);
        }
    }
}
