//! N concurrent timers (default 100k), created and fired: mini's `mini::time::sleep` against
//! `tokio::time::sleep` on tokio's `current_thread` runtime. Each timer sleeps in its own
//! task; durations are spread evenly over 0–10 ms. The time covers spawning the first task
//! to joining the last, so it can never be under 10 ms: what counts is the excess. A fresh
//! runtime per run (not timed), mini then tokio (A B A B ...).
//!
//! ```text
//! taskset -c 0 timers [--timers 100000] [--reps 5]
//! ```

use std::time::{Duration, Instant};

use mini_bench::{flag_or, median, ms};

const SPREAD: Duration = Duration::from_millis(10);

fn delay(i: u64, n: u64) -> Duration {
    SPREAD * (i as u32) / (n as u32)
}

fn mini_run(n: u64) -> f64 {
    let rt = mini::Runtime::new().expect("mini runtime");
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> =
            (0..n).map(|i| mini::spawn(async move { mini::time::sleep(delay(i, n)).await })).collect();
        for h in handles {
            h.await.expect("timer task failed");
        }
        ms(start.elapsed())
    })
}

fn tokio_run(n: u64) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> =
            (0..n).map(|i| tokio::spawn(async move { tokio::time::sleep(delay(i, n)).await })).collect();
        for h in handles {
            h.await.expect("timer task failed");
        }
        ms(start.elapsed())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = flag_or(&args, "--timers", 100_000);
    let reps: usize = flag_or(&args, "--reps", 5);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for (name, run, out) in [("mini", mini_run as fn(u64) -> f64, &mut a), ("tokio", tokio_run, &mut b)] {
            let t = run(n);
            println!("RESULT bench=timers rt={name} rep={rep} timers={n} ms={t:.2}");
            out.push(t);
        }
    }
    let (ma, mb) = (median(&a), median(&b));
    println!("{n} timers over 0-10 ms: mini {ma:.1} ms, tokio {mb:.1} ms, mini/tokio {:.2}", ma / mb);
}
