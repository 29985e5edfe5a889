//! Cross-thread wakes per second, mini against tokio's `current_thread` runtime.
//!
//! A spawned task on the runtime thread (pinned to CPU 0) and a plain thread (pinned to
//! CPU 1) play ping-pong through two atomic counters and a `Mutex<Option<Waker>>`:
//!
//! ```text
//!   task:   req = i; wait until ack >= i (storing its Waker, then checking again)
//!   thread: spin until req moves; ack = req; wake the stored Waker
//! ```
//!
//! The thread busy-waits, so the round trip measures the runtime's side: a wake from another
//! thread (remote queue + eventfd), the runtime leaving `epoll_wait`, and the poll. Runs
//! alternate mini, tokio, mini, tokio ...; each runs for `--secs`.
//!
//! ```text
//! cross_wake [--secs 1] [--reps 5] [--rt mini|tokio]   # --rt: one runtime only (to profile it)
//! ```

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use mini_bench::{flag_or, median};

#[derive(Default)]
struct Shared {
    req: AtomicU64,
    ack: AtomicU64,
    waker: Mutex<Option<Waker>>,
    stop: AtomicBool,
}

/// The runtime side: returns (round trips, elapsed).
async fn ping(shared: Arc<Shared>, secs: Duration) -> (u64, Duration) {
    let start = Instant::now();
    let mut i = 0;
    loop {
        i += 1;
        shared.req.store(i, Ordering::Release);
        poll_fn(|cx| {
            if shared.ack.load(Ordering::Acquire) >= i {
                return Poll::Ready(());
            }
            {
                let mut slot = shared.waker.lock().unwrap();
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
            }
            // The thread may have acked between the first check and the store above.
            if shared.ack.load(Ordering::Acquire) >= i {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        if i % 1024 == 0 && start.elapsed() >= secs {
            break;
        }
    }
    shared.stop.store(true, Ordering::Release);
    (i, start.elapsed())
}

/// The other thread: answers each request and wakes the task.
fn pong(shared: Arc<Shared>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        mini_bench::pin_to_cpu(1);
        let mut last = 0;
        while !shared.stop.load(Ordering::Acquire) {
            let req = shared.req.load(Ordering::Acquire);
            if req == last {
                std::hint::spin_loop();
                continue;
            }
            last = req;
            shared.ack.store(req, Ordering::Release);
            if let Some(w) = shared.waker.lock().unwrap().as_ref() {
                w.wake_by_ref();
            }
        }
    })
}

fn run(name: &str, secs: Duration) -> f64 {
    let shared = Arc::new(Shared::default());
    let thread = pong(shared.clone());
    let (n, elapsed) = match name {
        "mini" => mini::Runtime::new()
            .expect("mini runtime")
            .block_on(async { mini::spawn(ping(shared, secs)).await.unwrap() }),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(async { tokio::spawn(ping(shared, secs)).await.unwrap() }),
    };
    thread.join().unwrap();
    n as f64 / elapsed.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs = Duration::from_secs_f64(flag_or(&args, "--secs", 1.0));
    let reps: usize = flag_or(&args, "--reps", 5);
    let only = mini_bench::flag(&args, "--rt");
    mini_bench::pin_to_cpu(0);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for (name, out) in [("mini", &mut a), ("tokio", &mut b)] {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let rate = run(name, secs);
            println!("RESULT bench=cross_wake rt={name} rep={rep} wakes_per_s={rate:.0}");
            out.push(rate);
        }
    }
    if only.is_some() {
        return;
    }
    let (ma, mb) = (median(&a), median(&b));
    println!("cross-thread wakes/s: mini {ma:.0}, tokio {mb:.0}, mini/tokio {:.2}", ma / mb);
}
