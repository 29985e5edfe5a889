//! Echo server on tokio's `current_thread` runtime (features rt, net, io-util, macros): one
//! task per connection, each with a 4 KiB buffer, reading and then writing back everything it
//! read (`write_all`).
//!
//! One source, two uses: `bench/` builds it as its `echo_tokio` binary for the load runs,
//! and `bench/tokio-echo/` is a standalone crate around it, so that `matrix` can time a clean
//! debug build of a tokio echo server against mini's `examples/echo_server.rs`.
//!
//! ```text
//! echo_tokio [ADDR]       # default 127.0.0.1:0; prints "listening on ADDR", serves until killed
//! ```

use std::io;

use tokio::net::TcpListener;

mod serve;
use serve::serve;

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(serve(stream));
    }
}
