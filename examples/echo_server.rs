//! An echo server: one task per connection, each copying what it reads back to the client.
//!
//! ```text
//! cargo run --release --example echo_server [ADDR]     # default 127.0.0.1:8080
//! nc 127.0.0.1 8080                                    # type a line, it comes back
//! ```

#[mini::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = mini::net::TcpListener::bind(&addr).await?;
    println!("echo server listening on {}", listener.local_addr()?);

    loop {
        let (mut stream, _peer) = listener.accept().await?;
        mini::spawn(async move {
            let (mut reader, mut writer) = stream.split();
            // An error here (say, a reset) ends only this client's task.
            let _ = mini::io::copy(&mut reader, &mut writer).await;
        });
    }
}
