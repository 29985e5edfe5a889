//! Blocking I/O, one thread per connection: the oldest server design, and the simplest.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_blocking -- [ADDR]     # default 127.0.0.1:8080; port 0 is fine
//! cargo run --release --example echo_client -- 127.0.0.1:8080 1000
//! ```
//!
//! Every input operation has two phases: (1) *waiting* until data has arrived in the kernel's
//! socket buffer, and (2) *copying* it from the kernel into the process's buffer. A blocking
//! `read` sleeps through both: the thread is parked in the kernel until a segment arrives, the
//! kernel copies the bytes out, and only then does `read` return. A blocking `write` likewise
//! sleeps while the send buffer is full.
//!
//! A thread that sleeps in `read` on one socket cannot notice anything on another, so each
//! connection gets a thread of its own, and the accepting thread does nothing but `accept`.
//! The code is as plain as it gets: read, write back, repeat; the kernel's scheduler is the
//! event loop, and a sleeping thread costs no CPU.
//!
//! The price is paid per connection, not per byte. Each thread holds a stack (Rust reserves
//! 2 MiB of address space; a few pages are really touched), a kernel task, and a slot in the
//! scheduler; every message costs a wake-up and a context switch into the thread that owns
//! the socket. At a few hundred connections that is fine. At tens of thousands (the "C10K
//! problem") memory, thread limits (`ulimit -u`, `kernel.threads-max`) and scheduler work
//! become the bottleneck, and a thread that is idle most of the time still costs its stack.
//! The other `io_*` examples wait for many sockets from one thread instead.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// How long to stop accepting after `accept` or `spawn` fails (say, out of fds or threads).
const BACKOFF: Duration = Duration::from_millis(100);

/// One client, on its own thread: read up to 4 KiB, write it all back, until end of stream or
/// an error. Whatever happens, only this connection is closed (dropping the stream).
fn serve(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        // Both phases happen inside this one call: the thread sleeps until data arrives
        // (phase 1), then the kernel copies it into `buf` (phase 2).
        let n = match stream.read(&mut buf) {
            Ok(0) => return, // end of stream: the client closed its side
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return, // reset by the peer, or another error: drop this client only
        };
        // `write_all` loops over partial writes, sleeping whenever the send buffer is full.
        // Blocking makes partial writes easy: the thread simply waits for room.
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = TcpListener::bind(&addr)?;
    println!("echo server listening on {}", listener.local_addr()?);

    let mut served = 0u64;
    loop {
        // The accepting thread blocks here until a connection is complete.
        let (stream, _peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of fds (EMFILE) the next `accept` would fail at once again: pause.
                eprintln!("io_blocking: accept failed: {e}; pausing {BACKOFF:?}");
                thread::sleep(BACKOFF);
                continue;
            }
        };
        served += 1;
        // One thread per connection. `Builder::spawn` reports failure (EAGAIN once the thread
        // limit is reached) instead of panicking like `thread::spawn`; the client whose thread
        // could not start is closed, and the others go on.
        let spawned = thread::Builder::new().name(format!("conn-{served}")).spawn(move || serve(stream));
        if let Err(e) = spawned {
            eprintln!("io_blocking: no thread for connection {served}: {e}; closing it");
            thread::sleep(BACKOFF);
        }
    }
}
