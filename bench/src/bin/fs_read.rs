//! File reads (issue 14): tokio::fs on its `current_thread` runtime against mini::fs on the
//! io_uring driver (completion requests) and on the epoll driver (the blocking pool, like
//! tokio's), plus one big sequential read against `cat FILE > /dev/null`.
//!
//! - small: `--files` files of `--size` bytes in a fresh directory under /tmp, read once
//!   before any timing (page cache warm), then per repetition each runtime reads them all with
//!   `fs::read`, `--concurrency` at a time: that many tasks spawned together, each taking the
//!   next file until none is left. Reported: files/s and CPU (user + system, all threads,
//!   pool threads included) per file.
//! - big: one `--big-mib` MiB file, read once before timing, then read sequentially with a
//!   reused `--chunk-kib` KiB buffer (mini: `File::read_at`, the owned-buffer call) and by
//!   `cat` (its time includes starting the process, about a millisecond). Reported: MiB/s.
//!
//! Names as in the other sections: `mini` is mini on its default epoll driver (here: the
//! blocking pool), `mini-uring` mini on io_uring.
//!
//! Each repetition runs every variant once, in the same order (A B C D A B C D ...). Nothing
//! is pinned: the pool paths use their helper threads on the other core, as they would in
//! production, so the CPU columns tell the cost where the throughput does not. The files are
//! removed at the end (also when a run fails).
//!
//! ```text
//! fs_read [--files 10000] [--size 4096] [--concurrency 64] [--big-mib 256] [--chunk-kib 256] [--reps 5]
//!         [--only tokio|mini|mini-uring|cat]    # one variant alone (to profile it)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mini_bench::{flag_or, median};

/// The files, removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// User + system CPU seconds of this process so far, all threads.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes one rusage into `u`.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// What one timed run measured.
struct Run {
    secs: f64,
    cpu: f64,
    bytes: usize,
}

fn timed(f: impl FnOnce() -> usize) -> Run {
    let (cpu0, start) = (cpu_secs(), Instant::now());
    let bytes = f();
    Run { secs: start.elapsed().as_secs_f64(), cpu: cpu_secs() - cpu0, bytes }
}

fn mini_small(driver: mini::Driver, paths: &Arc<Vec<PathBuf>>, concurrency: usize) -> Option<Run> {
    let rt = mini::Builder::new().driver(driver).build().expect("mini runtime");
    if rt.driver() != driver {
        println!("mini on {driver:?}: the runtime fell back to {:?}; skipped", rt.driver());
        return None;
    }
    let paths = paths.clone();
    Some(timed(|| {
        rt.block_on(async move {
            let next = Rc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (next, paths) = (next.clone(), paths.clone());
                    mini::spawn(async move {
                        let mut bytes = 0;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(path) = paths.get(i) else { return bytes };
                            bytes += mini::fs::read(path).await.expect("mini::fs::read").len();
                        }
                    })
                })
                .collect();
            let mut bytes = 0;
            for t in tasks {
                bytes += t.await.expect("task");
            }
            bytes
        })
    }))
}

fn tokio_small(paths: &Arc<Vec<PathBuf>>, concurrency: usize) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let paths = paths.clone();
    timed(|| {
        rt.block_on(async move {
            let next = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (next, paths) = (next.clone(), paths.clone());
                    tokio::spawn(async move {
                        let mut bytes = 0;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(path) = paths.get(i) else { return bytes };
                            bytes += tokio::fs::read(path).await.expect("tokio::fs::read").len();
                        }
                    })
                })
                .collect();
            let mut bytes = 0;
            for t in tasks {
                bytes += t.await.expect("task");
            }
            bytes
        })
    })
}

fn mini_big(driver: mini::Driver, path: &Path, chunk: usize) -> Option<Run> {
    let rt = mini::Builder::new().driver(driver).build().expect("mini runtime");
    if rt.driver() != driver {
        return None;
    }
    Some(timed(|| {
        rt.block_on(async {
            let file = mini::fs::File::open(path).await.expect("open");
            let (mut buf, mut offset) = (vec![0u8; chunk], 0u64);
            loop {
                let (n, b) = file.read_at(buf, offset).await;
                buf = b;
                match n.expect("read_at") {
                    0 => return offset as usize,
                    n => offset += n as u64,
                }
            }
        })
    }))
}

fn cat_big(path: &Path) -> Run {
    timed(|| {
        let null = std::fs::File::create("/dev/null").expect("/dev/null");
        let status = Command::new("cat").arg(path).stdout(Stdio::from(null)).status().expect("run cat");
        assert!(status.success(), "cat failed");
        std::fs::metadata(path).expect("stat").len() as usize
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let files: usize = flag_or(&args, "--files", 10_000);
    let size: usize = flag_or(&args, "--size", 4096);
    let concurrency: usize = flag_or(&args, "--concurrency", 64);
    let big_mib: usize = flag_or(&args, "--big-mib", 256);
    let chunk = flag_or::<usize>(&args, "--chunk-kib", 256) * 1024;
    let reps: usize = flag_or(&args, "--reps", 5);
    let only = mini_bench::flag(&args, "--only");
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);

    let dir = Dir(std::env::temp_dir().join(format!("mini-bench-fs-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("create the bench directory");
    let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let paths: Vec<PathBuf> = (0..files).map(|i| dir.0.join(format!("f{i:05}"))).collect();
    for p in &paths {
        std::fs::write(p, &data).expect("write a small file");
    }
    let big = dir.0.join("big");
    let chunk_data = vec![7u8; 1 << 20];
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).expect("create the big file");
        for _ in 0..big_mib {
            f.write_all(&chunk_data).expect("write the big file");
        }
    }
    // Warm the page cache: every file read once before any timing.
    let warm: usize = paths.iter().map(|p| std::fs::read(p).expect("warm").len()).sum();
    assert_eq!(warm, files * size);
    cat_big(&big);
    let paths = Arc::new(paths);

    let small_label = format!("{files} x {size} B, {concurrency} at a time");
    let mut small: Vec<(&str, Vec<f64>, Vec<f64>)> =
        ["tokio", "mini-uring", "mini"].map(|n| (n, Vec::new(), Vec::new())).into();
    let mut bigs: Vec<(&str, Vec<f64>)> = ["cat", "mini-uring", "mini"].map(|n| (n, Vec::new())).into();
    for rep in 0..reps {
        for (name, per_s, cpu) in small.iter_mut().filter(|(n, ..)| wanted(n)) {
            let run = match *name {
                "tokio" => Some(tokio_small(&paths, concurrency)),
                "mini-uring" => mini_small(mini::Driver::IoUring, &paths, concurrency),
                _ => mini_small(mini::Driver::Epoll, &paths, concurrency),
            };
            let Some(run) = run else { continue };
            assert_eq!(run.bytes, files * size, "{name}: wrong byte count");
            let (rate, cpu_us) = (files as f64 / run.secs, run.cpu / files as f64 * 1e6);
            println!(
                "RESULT bench=fs_small rt={name} rep={rep} files_per_s={rate:.0} cpu_us_per_file={cpu_us:.2}"
            );
            per_s.push(rate);
            cpu.push(cpu_us);
        }
        for (name, mib_s) in bigs.iter_mut().filter(|(n, _)| wanted(n)) {
            let run = match *name {
                "cat" => Some(cat_big(&big)),
                "mini-uring" => mini_big(mini::Driver::IoUring, &big, chunk),
                _ => mini_big(mini::Driver::Epoll, &big, chunk),
            };
            let Some(run) = run else { continue };
            assert_eq!(run.bytes, big_mib << 20, "{name}: wrong byte count");
            let rate = big_mib as f64 / run.secs;
            // cat's CPU is its child's, not this process's: not reported.
            let cpu = if *name == "cat" { String::new() } else { format!(" cpu_ms={:.1}", run.cpu * 1e3) };
            println!("RESULT bench=fs_big rt={name} rep={rep} mib_per_s={rate:.0}{cpu}");
            mib_s.push(rate);
        }
    }
    for (name, per_s, cpu) in &small {
        if !per_s.is_empty() {
            println!(
                "{small_label}: {name:<10} {:>9.0} files/s, {:.2} us CPU per file",
                median(per_s),
                median(cpu)
            );
        }
    }
    for (name, mib_s) in &bigs {
        if !mib_s.is_empty() {
            println!(
                "{big_mib} MiB sequential ({} KiB chunks): {name:<10} {:>6.0} MiB/s",
                chunk >> 10,
                median(mib_s)
            );
        }
    }
}
