//! Echo server as N share-nothing tokio `current_thread` runtimes, one per thread, each with
//! its own `SO_REUSEPORT` listener on the same address: the kernel spreads new connections
//! over the listeners, and a connection stays on the thread that accepted it. The same shape
//! as mini's `echo_server --workers N`, on tokio, for the `scaling` section of `matrix`;
//! the handler is `echo_tokio`'s (`tokio-echo/src/serve.rs`).
//!
//! ```text
//! echo_tokio_reuseport [ADDR] [--workers N]   # default 127.0.0.1:0, 2 workers; prints "listening on ADDR"
//! ```
//!
//! It prints the address only once every worker listens, so that a client starting then
//! reaches all of them; if one cannot start, it says why and exits with status 1.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;

use tokio::net::TcpSocket;

#[path = "../../tokio-echo/src/serve.rs"]
mod serve;

/// A socket bound to `addr` with `SO_REUSEPORT` (and `SO_REUSEADDR`, as `TcpListener::bind`
/// sets it), not yet listening: `listen` registers it with a runtime, so each worker does
/// that on its own thread.
fn bound(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// One worker: its own runtime on this thread, listening on `socket`; says on `ready` once
/// it listens (or why it could not), then serves until the process ends.
fn worker(socket: TcpSocket, ready: mpsc::Sender<io::Result<()>>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return drop(ready.send(Err(e))),
    };
    rt.block_on(async move {
        let listener = match socket.listen(1024) {
            Ok(l) => l,
            Err(e) => return drop(ready.send(Err(e))),
        };
        drop(ready.send(Ok(())));
        loop {
            // A failed accept (out of fds, say) ends no one's connection: pause, so as not
            // to spin on a listener that stays readable, and accept again.
            let Ok((stream, _peer)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            if stream.set_nodelay(true).is_ok() {
                tokio::spawn(serve::serve(stream));
            }
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).filter(|a| !a.starts_with('-')).map_or("127.0.0.1:0", String::as_str);
    let workers = mini_bench::workers_arg(&args);
    let fail = |what: &str, e: io::Error| -> ! {
        eprintln!("echo_tokio_reuseport: {what}: {e}");
        std::process::exit(1)
    };
    let addr: SocketAddr = addr.parse().unwrap_or_else(|e| {
        eprintln!("echo_tokio_reuseport: bad address {addr:?}: {e}");
        std::process::exit(2)
    });
    // The first socket picks the port (for port 0); the others join it.
    let first = bound(addr).unwrap_or_else(|e| fail("cannot bind", e));
    let addr = first.local_addr().unwrap_or_else(|e| fail("cannot read the bound address", e));
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bound(addr).unwrap_or_else(|e| fail("cannot bind another worker's socket", e)));
    }
    let (ready_tx, ready) = mpsc::channel();
    for socket in sockets {
        let ready_tx = ready_tx.clone();
        std::thread::spawn(move || worker(socket, ready_tx));
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fail("a worker cannot listen", e),
            Err(_) => fail("a worker died before it listened", io::Error::other("thread ended")),
        }
    }
    println!("listening on {addr}");
    // The workers serve until the process is killed; park here instead of joining them.
    loop {
        std::thread::park();
    }
}
