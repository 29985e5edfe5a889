//! Memory per idle connection: the growth of an echo server's resident set (`VmRSS` in
//! `/proc/PID/status`) when N connections (default 10k) are opened and left idle.
//!
//! First one connection is opened, echoed once and closed, so that whatever the server sets
//! up lazily is in the baseline. Then the N connections are opened, each sends one byte and
//! waits for its echo (so the server has accepted it, spawned its task and allocated its
//! 4 KiB buffer), and after a short pause RSS is read again. The growth divided by N is the
//! cost of one idle connection in user space; kernel socket buffers are not in RSS.
//!
//! ```text
//! idle_conns ADDR --pid PID [--conns 10000]
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mini_bench::{flag, flag_or};

fn ping(s: &mut TcpStream) -> io::Result<()> {
    s.write_all(b"x")?;
    s.read_exact(&mut [0])
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr =
        args.get(1).expect("usage: idle_conns ADDR --pid PID [--conns N]").parse().expect("ADDR");
    let pid: u32 = flag(&args, "--pid").expect("--pid PID").parse().expect("--pid");
    let n: usize = flag_or(&args, "--conns", 10_000);
    let limit = mini_bench::raise_nofile_limit();
    assert!(limit as usize > n + 16, "RLIMIT_NOFILE {limit} is too low for {n} connections");

    ping(&mut TcpStream::connect(addr)?)?;
    std::thread::sleep(Duration::from_millis(100));
    let before = mini_bench::vm_rss_kib(pid)?;

    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        conns.push(s);
    }
    // Send on all first, then collect the echoes: n round trips in flight at once.
    for s in &mut conns {
        s.write_all(b"x")?;
    }
    for s in &mut conns {
        s.read_exact(&mut [0])?;
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = mini_bench::vm_rss_kib(pid)?;
    let per_conn = (after as f64 - before as f64) * 1024.0 / n as f64;
    println!("{n} idle connections: server RSS {before} KiB -> {after} KiB, {per_conn:.0} B per connection");
    println!("RESULT conns={n} rss_before_kib={before} rss_after_kib={after} bytes_per_conn={per_conn:.1}");
    Ok(())
}
