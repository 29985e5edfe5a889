//! Echo server on mini, for the load benchmarks: one task per connection, each with a 4 KiB
//! buffer, reading and then writing back everything it read (`write_all`).
//!
//! ```text
//! echo_mini [ADDR]        # default 127.0.0.1:0; prints "listening on ADDR", serves until killed
//! ```

use std::io;

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

fn main() -> io::Result<()> {
    let addr = mini_bench::listen_addr_arg();
    mini::block_on(async {
        let listener = TcpListener::bind(addr).await?;
        mini_bench::announce(listener.local_addr()?);
        loop {
            let (stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            mini::spawn(serve(stream));
        }
    })
}
