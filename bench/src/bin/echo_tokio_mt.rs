//! Echo server on tokio's `multi_thread` runtime with N worker threads: one listener, one
//! task per connection (the handler of `echo_tokio`, `tokio-echo/src/serve.rs`), tasks
//! spread and stolen across the workers. The work-stealing peer of mini's
//! `echo_server --workers N` in the `scaling` section of `matrix`.
//!
//! ```text
//! echo_tokio_mt [ADDR] [--workers N]   # default 127.0.0.1:0, 2 workers; prints "listening on ADDR"
//! ```

use std::io;

use tokio::net::TcpListener;

#[path = "../../tokio-echo/src/serve.rs"]
mod serve;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).filter(|a| !a.starts_with('-')).cloned().unwrap_or_else(|| "127.0.0.1:0".into());
    let workers = mini_bench::workers_arg(&args);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_io().build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (stream, _peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(serve::serve(stream));
        }
    })
}
