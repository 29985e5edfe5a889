//! Echo server on smol: a `LocalExecutor` driven by `smol::block_on` (async-io's reactor),
//! one task per connection, each with a 4 KiB buffer, reading and then writing back
//! everything it read (`write_all`).
//!
//! The accept loop is a task of its own, and `block_on` drives `ex.run(that task)`: the
//! future given to `run` is polled on every wake of the thread, so an accept loop placed
//! there directly would try `accept` (and re-arm the listener in epoll) on every round trip.
//!
//! ```text
//! echo_smol [ADDR]        # default 127.0.0.1:0; prints "listening on ADDR", serves until killed
//! ```

use std::io;
use std::rc::Rc;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::LocalExecutor;

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

async fn accept_loop(ex: Rc<LocalExecutor<'static>>, listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        ex.spawn(serve(stream)).detach();
    }
}

fn main() -> io::Result<()> {
    // Backlog 1024 like mini and tokio (async-net's own `bind` goes through std: 128).
    let std_listener = mini_bench::tcp_listener(mini_bench::listen_addr_arg())?;
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(async {
        let listener = TcpListener::try_from(std_listener)?;
        mini_bench::announce(listener.local_addr()?);
        ex.run(ex.spawn(accept_loop(ex.clone(), listener))).await
    })
}
