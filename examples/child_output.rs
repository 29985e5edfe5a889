//! `mini::io::Async` makes any non-blocking fd async. Here: the pipe from a child process's
//! stdout. The loop reads the child's lines as they come while a timer keeps ticking, which
//! a blocking `read` on the pipe would have stopped.
//!
//! ```text
//! cargo run --example child_output
//! ```

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use mini::io::Async;

#[mini::main]
async fn main() -> io::Result<()> {
    let mut child = Command::new("sh")
        .args(["-c", "for i in 1 2 3; do echo \"line $i\"; sleep 0.2; done"])
        .stdout(Stdio::piped())
        .spawn()?;
    // A pipe's read end, as a `File` (so `&File` implements `Read`), registered with the
    // reactor. `Async::new` sets O_NONBLOCK on it.
    let stdout = child.stdout.take().expect("stdout is piped");
    let pipe = Async::new(File::from(OwnedFd::from(stdout)))?;

    let ticker = mini::spawn(async {
        let mut every = mini::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            print!(".");
        }
    });

    let mut buf = [0u8; 256];
    loop {
        let n = pipe.read_with(|mut f: &File| f.read(&mut buf)).await?;
        if n == 0 {
            break; // the child closed its stdout
        }
        print!("\nchild says: {}", String::from_utf8_lossy(&buf[..n]));
    }
    ticker.abort();
    println!("child exited with {}", child.wait()?);
    Ok(())
}
