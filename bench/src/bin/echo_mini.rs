//! Echo server on mini, for the load benchmarks: one task per connection, each with a 4 KiB
//! buffer, reading and then writing back everything it read (`write_all`).
//!
//! ```text
//! echo_mini [ADDR]        # default 127.0.0.1:0; prints "listening on ADDR", serves until killed
//! MINI_DRIVER=uring echo_mini     # the same on mini's io_uring driver (`mini-uring` in the matrix)
//! echo_mini ADDR --exit-on-eof    # also exits (status 0) when its stdin reaches end of file
//! ```
//!
//! `--exit-on-eof` is how the `det` section ends `mini-uring` under valgrind: valgrind 3.19
//! runs `io_uring_enter` with every signal blocked, so an idle server waiting there never
//! takes a SIGTERM, and cachegrind writes its counts only when the process ends. The end of
//! stdin, watched by a task of the server's own runtime, completes a request on the ring
//! instead. The task costs nothing per round trip: one fd that stays quiet until the end.
//!
//! Before it listens it prints `driver: Epoll` or `driver: IoUring`: the driver the runtime
//! runs, which is not always the one asked for (where io_uring is refused, mini falls back
//! to epoll with one line on stderr). The matrix checks it, so that a fallback is never
//! measured as io_uring.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;

use mini::net::{TcpListener, TcpStream};

async fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `--exit-on-eof`: ends the process when stdin (a duplicate of fd 0, so that only this
/// server's pipe turns non-blocking) reaches end of file.
async fn exit_on_stdin_eof() -> io::Result<()> {
    let stdin = mini::io::Async::new(File::from(io::stdin().as_fd().try_clone_to_owned()?))?;
    let mut buf = [0u8; 64];
    loop {
        let n = stdin.read_with(|mut f: &File| f.read(&mut buf)).await?;
        if n == 0 {
            std::process::exit(0);
        }
    }
}

fn main() -> io::Result<()> {
    let addr = mini_bench::listen_addr_arg();
    let exit_on_eof = std::env::args().skip(2).any(|a| a == "--exit-on-eof");
    // No `Builder::driver` call: `MINI_DRIVER` picks the driver, as in any mini program.
    let rt = mini::Runtime::new()?;
    println!("driver: {:?}", rt.driver());
    rt.block_on(async {
        if exit_on_eof {
            mini::spawn(async {
                if let Err(e) = exit_on_stdin_eof().await {
                    eprintln!("echo_mini: reading stdin: {e}");
                    std::process::exit(1);
                }
            });
        }
        let listener = TcpListener::bind(addr).await?;
        mini_bench::announce(listener.local_addr()?);
        loop {
            let (stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            mini::spawn(serve(stream));
        }
    })
}
