//! Blocking echo server, one OS thread per connection (std only): each thread has a 4 KiB
//! buffer and loops on a blocking `read`, then `write_all`.
//!
//! ```text
//! echo_threads [ADDR]     # default 127.0.0.1:0; prints "listening on ADDR", serves until killed
//! ```

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Stack per connection thread: ample for `serve`, and it keeps 1000 threads cheap.
const STACK: usize = 128 * 1024;

fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn main() -> io::Result<()> {
    let listener = mini_bench::tcp_listener(mini_bench::listen_addr_arg())?;
    mini_bench::announce(listener.local_addr()?);
    loop {
        let (stream, _peer) = listener.accept()?;
        stream.set_nodelay(true)?;
        std::thread::Builder::new().stack_size(STACK).spawn(move || serve(stream))?;
    }
}
