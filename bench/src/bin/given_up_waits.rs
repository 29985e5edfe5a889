//! Given-up waits on one idle connection: per-request tasks that race their work (one
//! yield) against `peer_closed()` on the keep-alive connection, the pattern of issue 10's
//! waiter leak. Prints the milliseconds per batch of `--requests` tasks, batch after batch: a
//! wait that stays registered after its future is dropped makes each batch slower than the
//! one before (every new wait scans the ones left behind); without that, the times stay flat.
//!
//! ```text
//! taskset -c 0 given_up_waits [--requests 20000] [--batches 6]
//! ```

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use mini_bench::{flag_or, ms};

/// Polls `work` and, while it is pending, `wait`; true if the work won.
async fn race(work: impl Future<Output = ()>, wait: impl Future) -> bool {
    let (mut work, mut wait) = (pin!(work), pin!(wait));
    poll_fn(|cx| match work.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(true),
        Poll::Pending => wait.as_mut().poll(cx).map(|_| false),
    })
    .await
}

fn mini_batches(requests: usize, batches: usize) -> Vec<f64> {
    mini::block_on(async move {
        let listener = mini::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let _client = mini::net::TcpStream::connect(listener.local_addr().unwrap()).await.expect("connect");
        let conn = Rc::new(listener.accept().await.expect("accept").0);
        let mut times = Vec::new();
        for _ in 0..batches {
            let start = Instant::now();
            let tasks: Vec<_> = (0..requests)
                .map(|_| {
                    let conn = conn.clone();
                    mini::spawn(async move { race(mini::yield_now(), conn.peer_closed()).await })
                })
                .collect();
            for t in tasks {
                assert!(t.await.unwrap(), "the work wins");
            }
            times.push(ms(start.elapsed()));
        }
        times
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = flag_or(&args, "--requests", 20_000);
    let batches = flag_or(&args, "--batches", 6);
    let show = |v: &[f64]| v.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(" ");
    println!("ms per batch of {requests} requests racing a wait on one idle connection");
    println!("RESULT mini  {}", show(&mini_batches(requests, batches)));
}
