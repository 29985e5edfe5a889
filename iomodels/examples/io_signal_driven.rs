//! Signal-driven I/O: the kernel sends `SIGIO` when a socket changes state (`O_ASYNC` with
//! `F_SETOWN`), the model the classic texts usually skip.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_signal_driven -- [ADDR]  # default 127.0.0.1:8080; port 0 is fine
//! cargo run --release --example echo_client -- 127.0.0.1:8080 1000
//! ```
//!
//! Every input operation has two phases: (1) *waiting* until data has arrived in the kernel's
//! socket buffer, and (2) *copying* it from the kernel into the process's buffer. Here the
//! process does not wait in any system call for phase 1: it asks the kernel to *tell* it,
//! with a signal, when a socket's state changes. Each socket is made non-blocking and
//! asynchronous (`O_ASYNC`), and the process makes itself the socket's owner (`F_SETOWN`),
//! the process the signal goes to. Phase 2 is then an ordinary non-blocking `read`.
//!
//! The signal says *that* something happened, not *what* or *where*. `SIGIO` is a standard
//! signal, and standard signals do not queue: ten sockets becoming readable while one `SIGIO`
//! is pending deliver one signal (signal-hook's iterator, used here, coalesces the same way).
//! For TCP the kernel raises it for many reasons (a connection accepted, data arrived, an ACK
//! freed send space, the peer closed, an error). So after each wake-up this server has to try
//! *every* socket until it says `EWOULDBLOCK`, as the busy loop of `io_nonblocking` does, but
//! only when a signal arrives rather than all the time: the non-blocking model with a doorbell.
//! It prints how many wake-ups it had and how many sockets it tried, on Ctrl-C/SIGTERM.
//!
//! Linux's `F_SETSIG` replaces `SIGIO` with a real-time signal, which is queued and carries the
//! fd (`siginfo_t.si_fd`), so a server no longer scans; but the real-time queue is bounded
//! (`RLIMIT_SIGPENDING`), and on overflow the kernel falls back to plain `SIGIO`, after which
//! the program must rescan everything. Together with the constraints of signal handlers (only
//! async-signal-safe calls, `EINTR` everywhere), that is why `epoll` replaced this model.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use signal_hook::consts::{SIGINT, SIGIO, SIGTERM};
use signal_hook::iterator::Signals;

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
                Ok(n) => self.start += n, // partial write: the SIGIO for freed space brings us back
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Runs the connection until an operation says WouldBlock: a signal, like an epoll edge,
    /// is raised by a *change*, so bytes left behind would never raise another. `Ok(false)`:
    /// the client closed.
    fn drive(&mut self) -> io::Result<bool> {
        loop {
            if !self.flush()? {
                return Ok(true);
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => (self.start, self.end) = (0, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Asks for `SIGIO` on `fd`: this process becomes its owner, and the fd is made non-blocking
/// and asynchronous. The owner must be set: without one the kernel sends nothing.
fn signal_on_change(fd: impl AsFd) -> io::Result<()> {
    // fcntl(fd, F_SETOWN, getpid()), through mini's libc seam (no safe wrapper elsewhere).
    mini_runtime::socket::set_owner(fd.as_fd(), std::process::id())?;
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK | OFlag::O_ASYNC))?;
    Ok(())
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_string());
    // Catch the signals first: SIGIO's default action would terminate the process.
    // signal-hook's handler writes to a self-pipe, and `wait` reads it: safe, and coalescing.
    let mut signals = Signals::new([SIGIO, SIGINT, SIGTERM])?;
    let listener = TcpListener::bind(&addr)?;
    signal_on_change(&listener)?; // a connection ready to accept raises SIGIO too
    println!("echo server listening on {}", listener.local_addr()?);

    let (mut wakeups, mut tries) = (0u64, 0u64);
    let mut conns: Vec<Conn> = Vec::new();
    'serve: loop {
        // Phase 1 costs nothing here: the process sleeps in `wait` (a read on the pipe) until
        // some signal arrived, however many sockets changed meanwhile.
        for signal in signals.wait() {
            if signal != SIGIO {
                break 'serve;
            }
        }
        wakeups += 1;
        // Which socket? SIGIO does not say. Accept everything, then try every connection.
        loop {
            match listener.accept() {
                Ok((stream, _peer)) => match signal_on_change(&stream) {
                    // Data may have arrived before O_ASYNC was set, raising no signal: try it
                    // now, with the others, below.
                    Ok(()) => conns.push(Conn { stream, buf: vec![0; 4096], start: 0, end: 0 }),
                    Err(e) => eprintln!("io_signal_driven: cannot enable SIGIO: {e}; closing"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("io_signal_driven: accept failed: {e}");
                    break;
                }
            }
        }
        tries += conns.len() as u64;
        conns.retain_mut(|conn| matches!(conn.drive(), Ok(true)));
    }
    println!(
        "{wakeups} SIGIO wake-ups, {tries} sockets tried ({:.1} per wake-up), {} connections open",
        tries as f64 / wakeups.max(1) as f64,
        conns.len()
    );
    Ok(())
}
