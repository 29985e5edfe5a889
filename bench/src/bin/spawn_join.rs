//! Spawn and join N trivial tasks (default 1M), mini against tokio's `current_thread`
//! runtime: spawn all, then await every `JoinHandle` in order. Each repetition builds a fresh
//! runtime (not timed) and runs mini then tokio (A B A B ...); the time covers the first
//! spawn to the last join. Prints one `RESULT` line per run and the medians.
//!
//! ```text
//! taskset -c 0 spawn_join [--tasks 1000000] [--reps 5]
//! ```

use std::time::Instant;

use mini_bench::{flag_or, median, ms};

fn mini_run(tasks: u64) -> (f64, u64) {
    let rt = mini::Runtime::new().expect("mini runtime");
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|i| mini::spawn(async move { i })).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("task failed");
        }
        (ms(start.elapsed()), sum)
    })
}

fn tokio_run(tasks: u64) -> (f64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|i| tokio::spawn(async move { i })).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("task failed");
        }
        (ms(start.elapsed()), sum)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tasks: u64 = flag_or(&args, "--tasks", 1_000_000);
    let reps: usize = flag_or(&args, "--reps", 5);
    let expect = tasks * (tasks.saturating_sub(1)) / 2;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for (name, run, out) in
            [("mini", mini_run as fn(u64) -> (f64, u64), &mut a), ("tokio", tokio_run, &mut b)]
        {
            let (t, sum) = run(tasks);
            assert_eq!(sum, expect, "{name}: wrong results");
            println!("RESULT bench=spawn_join rt={name} rep={rep} tasks={tasks} ms={t:.2}");
            out.push(t);
        }
    }
    let (ma, mb) = (median(&a), median(&b));
    println!("spawn+join {tasks} tasks: mini {ma:.1} ms, tokio {mb:.1} ms, mini/tokio {:.2}", ma / mb);
}
