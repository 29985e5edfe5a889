//! The connection handler of every tokio echo server in bench/ (`echo_tokio`, and the
//! `scaling` section's `echo_tokio_mt` and `echo_tokio_reuseport`), in one file so that the
//! runtimes compared differ only in how they are set up, not in what a connection does.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Echoes `stream` until EOF or an error: a 4 KiB buffer, read, then `write_all` of what came.
pub async fn serve(mut stream: TcpStream) {
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
