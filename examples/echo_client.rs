//! Connects to an echo server, sends COUNT lines one at a time, checks that each comes back,
//! and prints the round trips per second.
//!
//! ```text
//! cargo run --release --example echo_client [ADDR] [COUNT]   # default 127.0.0.1:8080 10000
//! ```

use std::io;
use std::time::Instant;

#[mini::main]
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let count: u64 = match args.next() {
        Some(s) => {
            s.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("COUNT {s:?}: {e}")))?
        }
        None => 10_000,
    };

    let mut stream = mini::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let start = Instant::now();
    let mut echoed = Vec::new();
    for i in 0..count {
        let line = format!("line {i}\n");
        stream.write_all(line.as_bytes()).await?;
        echoed.resize(line.len(), 0);
        stream.read_exact(&mut echoed).await?;
        if echoed != line.as_bytes() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {i}: sent {line:?}, got back {:?}", String::from_utf8_lossy(&echoed)),
            ));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{count} lines echoed in {secs:.3} s: {:.0} round trips/s", count as f64 / secs);
    Ok(())
}
