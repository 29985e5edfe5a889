//! How late does `mini::time::sleep(1 ms)` wake? Runs 1000 sequential sleeps and prints the
//! median and p99 overshoot (wake time minus deadline), once with `epoll_pwait2` and once with
//! the `epoll_wait` fallback (`MINI_EPOLL_WAIT=1`, which rounds timeouts up to whole ms).
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin sleep_overshoot
//! ```

use std::time::{Duration, Instant};

const SLEEPS: usize = 1000;

fn measure() -> Vec<Duration> {
    mini::block_on(async {
        let mut overshoot = Vec::with_capacity(SLEEPS);
        for _ in 0..SLEEPS {
            let deadline = Instant::now() + Duration::from_millis(1);
            mini::time::sleep_until(deadline).await;
            overshoot.push(Instant::now() - deadline);
        }
        overshoot.sort();
        overshoot
    })
}

fn report(label: &str, v: &[Duration]) {
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    println!(
        "{label:<32} median {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs",
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        v[v.len() - 1].as_secs_f64() * 1e6
    );
}

fn main() {
    println!("sleep(1 ms) overshoot over {SLEEPS} sleeps");
    report("epoll_pwait2 (default)", &measure());
    std::env::set_var("MINI_EPOLL_WAIT", "1");
    report("epoll_wait fallback (ms)", &measure());
}
