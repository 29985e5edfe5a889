//! Non-blocking sockets polled in a busy loop: no thread ever sleeps, and that is the problem.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_nonblocking -- [ADDR]  # default 127.0.0.1:8080; port 0 is fine
//! cargo run --release --example echo_client -- 127.0.0.1:8080 1000
//! ```
//!
//! Every input operation has two phases: (1) *waiting* until data has arrived in the kernel's
//! socket buffer, and (2) *copying* it from the kernel into the process's buffer. With
//! `O_NONBLOCK` set, a `read` on a socket with no data returns `EWOULDBLOCK` at once instead of
//! sleeping: phase 1 no longer blocks. Phase 2 still does (briefly): when data is there, the
//! thread copies it out inside `read`, as in every model but the asynchronous one.
//!
//! Nothing tells the process *when* to try again, so it asks: one thread walks over every
//! socket, calls `read` on each, and goes round again. This is called polling (not to be
//! confused with `poll(2)`, see `io_poll`). It serves any number of connections from one
//! thread with no kernel help, and it reacts quickly, since it is always looking.
//!
//! The cost is the CPU. The loop never sleeps: with one idle client it burns a whole core on
//! `read` calls that return `EWOULDBLOCK`, and with N clients each pass costs N system calls
//! even when one socket has data, so latency grows with N too. That is why the classic texts
//! call it a waste, and why the next models (`io_select`, `io_poll`, `io_epoll`) hand the
//! waiting back to the kernel. To make the cost visible this server prints, every 5 seconds
//! and on Ctrl-C/SIGTERM, its user and system CPU time (from `getrusage`) against wall time,
//! and how many of its `read` calls found nothing.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;

const REPORT_EVERY: Duration = Duration::from_secs(5);

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
                Ok(n) => self.start += n, // a partial write: keep the rest for the next pass
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// One look at this socket. `Ok(false)`: the client closed; `Err`: it failed.
    fn poll_once(&mut self, stats: &mut Stats) -> io::Result<bool> {
        // While a remainder waits, do not read: that would overwrite it (and this is how a
        // slow reader pushes back on a fast writer).
        if !self.flush()? {
            return Ok(true);
        }
        stats.reads += 1;
        match self.stream.read(&mut self.buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                (self.start, self.end) = (0, n);
                self.flush()?;
                Ok(true)
            }
            // Phase 1 did not block: no data, so the call returns at once and we move on.
            // Nearly every read in this loop ends here; each one is a wasted system call.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stats.empty_reads += 1;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }
}

#[derive(Default)]
struct Stats {
    passes: u64,
    reads: u64,
    empty_reads: u64,
}

fn secs(tv: TimeVal) -> f64 {
    tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6
}

/// Prints the CPU this process has burned since it started, against the wall time.
fn report(started: Instant, stats: &Stats, open: usize) {
    let wall = started.elapsed().as_secs_f64();
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else { return };
    let (user, system) = (secs(usage.user_time()), secs(usage.system_time()));
    println!(
        "cpu: {user:.2} s user + {system:.2} s system in {wall:.2} s wall ({:.0}% of a core); \
         {open} connections, {} passes, {} of {} reads found no data",
        100.0 * (user + system) / wall,
        stats.passes,
        stats.empty_reads,
        stats.reads
    );
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    println!("echo server listening on {}", listener.local_addr()?);

    // SIGINT and SIGTERM only set this flag (signal-hook installs the handler); the loop
    // looks at it on every pass, so it stops within one pass and prints its CPU bill.
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;

    let started = Instant::now();
    let mut last_report = started;
    let mut stats = Stats::default();
    let mut conns: Vec<Conn> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        stats.passes += 1;
        // Any new connections? `accept` on a non-blocking listener never waits either.
        loop {
            match listener.accept() {
                Ok((stream, _peer)) => match stream.set_nonblocking(true) {
                    Ok(()) => conns.push(Conn { stream, buf: vec![0; 4096], start: 0, end: 0 }),
                    Err(e) => eprintln!("io_nonblocking: set_nonblocking: {e}; closing"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("io_nonblocking: accept failed: {e}");
                    break;
                }
            }
        }
        // The busy poll: try every socket, whether or not it has anything, and go round
        // again at once. A closed or failed connection is dropped (closed) here, alone.
        conns.retain_mut(|conn| matches!(conn.poll_once(&mut stats), Ok(true)));

        if last_report.elapsed() >= REPORT_EVERY {
            report(started, &stats, conns.len());
            last_report = Instant::now();
        }
    }
    report(started, &stats, conns.len());
    Ok(())
}
