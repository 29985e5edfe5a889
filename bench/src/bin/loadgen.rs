//! Echo load generator: one thread, a raw level-triggered epoll loop (libc), so that it costs
//! about what the cheapest server costs and stays out of the way.
//!
//! It opens C connections. Each sends LEN bytes and waits for all LEN to come back before it
//! sends again (ping-pong). After a warm-up it measures a window:
//!
//! - round trips per second completed in the window;
//! - latency per round trip, from the `send` to the receipt of the last echoed byte, in a
//!   fixed-size log-linear histogram (p50, p99, p99.9, max);
//! - with `--pid`, the server's CPU time per round trip, split into user and system, from
//!   `utime`/`stime` in `/proc/PID/stat` read before and after the window (clock ticks,
//!   10 ms each at `CLK_TCK` 100: a 2 s window resolves to about 0.5% of one core);
//! - its own CPU use during the window, to show whether it was the bottleneck, and the CPU
//!   that other processes used meanwhile (all busy time in `/proc/stat` less the server's
//!   and ours, in % of one core): the bench machine is shared, and this flags noisy runs.
//!
//! It prints one human line and one machine-readable `RESULT key=value ...` line.
//!
//! ```text
//! loadgen ADDR [--conns 50] [--len 64] [--warmup 0.5] [--window 2] [--pid PID]
//! loadgen ADDR --conns 1 --len 64 --rounds 20000    # exactly N round trips, no warm-up
//! loadgen ADDR --conns 1000 --len 512 --rounds-each 5 # exactly 5 on each connection
//! ```
//!
//! `--rounds N` counts round trips over all connections together: a connection that the
//! server answers sooner does more of them. `--rounds-each K` gives every connection exactly
//! K (all connections at once, each in lock-step), so two runs with different K differ only
//! in round trips: the deterministic section of `matrix` differences such runs.
//!
//! Two options serve the syscall and instruction counts, where the server runs slowed down
//! under strace or valgrind:
//!
//! - `--think MS` pauses that long after each echo before the next send (meant for one
//!   connection: the whole client sleeps). A slowed server then still finds its socket empty
//!   and waits in epoll, as it does at full speed; without the pause a server that tries a
//!   read before waiting would find the next request already there.
//! - `--hold` connects, completes one round trip per connection, prints `READY` and waits
//!   for a line on stdin before the measured rounds; after them it prints `DONE` and waits
//!   for another line (or end of input) before it closes its connections. The caller traces
//!   the server in between: neither connection setup nor teardown is counted.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use mini_bench::histogram::Histogram;
use mini_bench::{cvt, flag, flag_or};

struct Conn {
    fd: RawFd,
    /// Bytes of the current message sent so far (< len only after a partial send).
    sent: usize,
    /// Bytes of the echo received so far.
    received: usize,
    /// Round trips completed in this run.
    done: u64,
    sent_at: Instant,
}

struct Options {
    addr: SocketAddr,
    conns: usize,
    len: usize,
    warmup: Duration,
    window: Duration,
    pid: Option<u32>,
    rounds: Option<u64>,
    /// `--rounds-each`: the exact number of round trips of every connection.
    rounds_each: Option<u64>,
    think: Option<Duration>,
    hold: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: loadgen ADDR [--conns N] [--len BYTES] [--warmup S] [--window S] [--pid PID] [--rounds N | --rounds-each K] [--think MS] [--hold]";
    let addr = args.first().filter(|a| !a.starts_with('-')).expect(usage);
    let secs = |name, default: f64| Duration::from_secs_f64(flag_or(&args, name, default));
    let conns = flag_or(&args, "--conns", 50);
    let rounds_each: Option<u64> = flag(&args, "--rounds-each").map(|k| k.parse().expect("--rounds-each"));
    if rounds_each == Some(0) || conns == 0 {
        eprintln!("loadgen: --conns and --rounds-each need at least 1");
        std::process::exit(2);
    }
    if rounds_each.is_some() && flag(&args, "--rounds").is_some() {
        eprintln!("loadgen: give --rounds (in all) or --rounds-each (per connection), not both");
        std::process::exit(2);
    }
    Options {
        addr: addr.parse().expect("ADDR must be IP:PORT"),
        conns,
        len: flag_or(&args, "--len", 64),
        warmup: secs("--warmup", 0.5),
        window: secs("--window", 2.0),
        pid: flag(&args, "--pid").map(|p| p.parse().expect("--pid")),
        // Every connection doing K makes K x conns in all: the same end test serves both.
        rounds: flag(&args, "--rounds")
            .map(|r| r.parse().expect("--rounds"))
            .or(rounds_each.map(|k| k * conns as u64)),
        rounds_each,
        think: flag(&args, "--think")
            .map(|t| Duration::from_secs_f64(t.parse::<f64>().expect("--think") / 1e3)),
        hold: args.iter().any(|a| a == "--hold"),
    }
}

fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: key };
    // SAFETY: epoll_ctl reads `ev` only.
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) })?;
    Ok(())
}

/// Own user + system CPU time so far.
fn self_cpu() -> Duration {
    // SAFETY: getrusage writes the local struct only.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Client {
    epfd: RawFd,
    conns: Vec<Conn>,
    msg: Vec<u8>,
    scratch: Vec<u8>,
}

impl Client {
    /// Sends (the rest of) connection `i`'s message; on a full socket, waits for EPOLLOUT.
    fn send(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        let was_partial = c.sent > 0;
        while c.sent < self.msg.len() {
            let rest = &self.msg[c.sent..];
            // SAFETY: `rest` is valid for reads of its length.
            match cvt(unsafe { libc::send(c.fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) }) {
                Ok(n) => c.sent += n as usize,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !was_partial {
                        ctl(
                            self.epfd,
                            libc::EPOLL_CTL_MOD,
                            c.fd,
                            (libc::EPOLLIN | libc::EPOLLOUT) as u32,
                            i as u64,
                        )?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if was_partial {
            ctl(self.epfd, libc::EPOLL_CTL_MOD, c.fd, libc::EPOLLIN as u32, i as u64)?;
        }
        Ok(())
    }

    /// Starts a new round trip on connection `i` at time `now`.
    fn start(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let c = &mut self.conns[i];
        (c.sent, c.received, c.sent_at) = (0, 0, now);
        self.send(i)
    }

    /// Reads what has arrived on connection `i`; returns whether the echo is complete.
    fn receive(&mut self, i: usize) -> io::Result<bool> {
        let len = self.msg.len();
        let c = &mut self.conns[i];
        let want = (len - c.received).min(self.scratch.len());
        // SAFETY: `scratch` is valid for writes of `want` bytes.
        match cvt(unsafe { libc::recv(c.fd, self.scratch.as_mut_ptr().cast(), want, 0) }) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed a connection")),
            Ok(n) => {
                c.received += n as usize;
                Ok(c.received == len && c.sent == len)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

fn connect_all(opts: &Options) -> io::Result<Client> {
    // SAFETY: epoll_create1 has no preconditions.
    let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    let mut conns = Vec::with_capacity(opts.conns);
    for i in 0..opts.conns {
        let s = TcpStream::connect(opts.addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let fd = s.into_raw_fd();
        ctl(epfd, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, i as u64)?;
        conns.push(Conn { fd, sent: 0, received: 0, done: 0, sent_at: Instant::now() });
    }
    Ok(Client { epfd, conns, msg: vec![b'x'; opts.len], scratch: vec![0; 64 * 1024] })
}

/// What one measured window gave.
struct Window {
    round_trips: u64,
    elapsed: Duration,
    latency: Histogram,
    server_ticks: Option<((u64, u64), (u64, u64))>,
    client_cpu: Duration,
    /// Busy ticks of the whole machine and our own ticks over the window.
    machine_ticks: u64,
    client_ticks: u64,
}

/// Our own CPU time so far, in clock ticks.
fn self_ticks() -> u64 {
    mini_bench::cpu_ticks(std::process::id()).map(|(u, s)| u + s).unwrap_or(0)
}

fn run(opts: &Options, client: &mut Client) -> io::Result<Window> {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let t0 = Instant::now();
    for i in 0..client.conns.len() {
        client.conns[i].done = 0;
        client.start(i, t0)?;
    }
    // In --rounds mode there is no warm-up and the "window" is the whole run.
    let mut measuring = opts.rounds.is_some();
    let (warmup_end, window_end) = (t0 + opts.warmup, t0 + opts.warmup + opts.window);
    let mut latency = Histogram::default();
    let (mut done, mut started) = (0u64, client.conns.len() as u64);
    let mut window_start = t0;
    let mut ticks_before = (0, 0);
    let mut cpu_before = self_cpu();
    let (mut machine_before, mut self_before) = (0, 0);
    loop {
        // SAFETY: `events` is valid for writes of its length.
        let n = match cvt(unsafe {
            libc::epoll_wait(client.epfd, events.as_mut_ptr(), events.len() as i32, 5)
        }) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        for ev in &events[..n] {
            let (i, flags) = (ev.u64 as usize, ev.events);
            if flags & libc::EPOLLOUT as u32 != 0 && client.conns[i].sent < client.msg.len() {
                client.send(i)?;
            }
            if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 && client.receive(i)? {
                let now = Instant::now();
                if measuring {
                    latency.record((now - client.conns[i].sent_at).as_nanos() as u64);
                    done += 1;
                }
                client.conns[i].done += 1;
                let this_one_done = opts.rounds_each.is_some_and(|k| client.conns[i].done >= k);
                match opts.rounds {
                    Some(rounds) if started >= rounds || this_one_done => {}
                    _ => {
                        started += 1;
                        let send_at = match opts.think {
                            Some(think) => {
                                std::thread::sleep(think);
                                Instant::now()
                            }
                            None => now, // one clock read per round trip: its end, the next start
                        };
                        client.start(i, send_at)?;
                    }
                }
            }
        }
        if let Some(rounds) = opts.rounds {
            if done >= rounds {
                break;
            }
            continue;
        }
        let now = Instant::now();
        if !measuring && now >= warmup_end {
            measuring = true;
            window_start = now;
            ticks_before = opts.pid.map(mini_bench::cpu_ticks).transpose()?.unwrap_or_default();
            cpu_before = self_cpu();
            (machine_before, self_before) = (mini_bench::machine_busy_ticks(), self_ticks());
        } else if measuring && now >= window_end {
            break;
        }
    }
    let elapsed = window_start.elapsed();
    let ticks_after = opts.pid.map(mini_bench::cpu_ticks).transpose()?;
    let (machine_after, self_after) = (mini_bench::machine_busy_ticks(), self_ticks());
    Ok(Window {
        round_trips: done,
        elapsed,
        latency,
        server_ticks: ticks_after.map(|after| (ticks_before, after)),
        client_cpu: self_cpu() - cpu_before,
        machine_ticks: machine_after - machine_before,
        client_ticks: self_after - self_before,
    })
}

/// Prints `word`, then waits for a line (or end of input) on stdin.
fn handshake(word: &str) {
    println!("{word}");
    let _ = io::stdin().read_line(&mut String::new());
}

fn main() -> io::Result<()> {
    let opts = options();
    mini_bench::raise_nofile_limit();
    let mut client = connect_all(&opts)?;
    if opts.hold {
        // One round trip on each connection, so the server has accepted and set up all.
        run(
            &Options { rounds: Some(opts.conns as u64), rounds_each: None, think: None, ..opts },
            &mut client,
        )?;
        handshake("READY");
    }
    let w = run(&opts, &mut client)?;

    let secs = w.elapsed.as_secs_f64();
    let rtps = w.round_trips as f64 / secs;
    let us = |ns: u64| ns as f64 / 1e3;
    let (p50, p99, p999) = (w.latency.quantile(0.5), w.latency.quantile(0.99), w.latency.quantile(0.999));
    let client_pct = w.client_cpu.as_secs_f64() / secs * 100.0;
    let mut human = format!(
        "{} conns x {} B: {:.0} rt/s, latency p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs; client cpu {:.0}%",
        opts.conns,
        opts.len,
        rtps,
        us(p50),
        us(p99),
        us(p999),
        client_pct
    );
    let mut result = format!(
        "RESULT conns={} len={} secs={:.3} round_trips={} rtps={:.1} p50_us={:.2} p99_us={:.2} p999_us={:.2} max_us={:.2} client_cpu_pct={:.1}",
        opts.conns,
        opts.len,
        secs,
        w.round_trips,
        rtps,
        us(p50),
        us(p99),
        us(p999),
        us(w.latency.max()),
        client_pct
    );
    if let Some(((u0, s0), (u1, s1))) = w.server_ticks {
        let tick_us = 1e6 / mini_bench::clock_ticks_per_sec() as f64;
        let per_rt = |ticks: u64| ticks as f64 * tick_us / w.round_trips.max(1) as f64;
        let (user, sys) = (per_rt(u1 - u0), per_rt(s1 - s0));
        let server_ticks = u1 - u0 + s1 - s0;
        let server_pct = server_ticks as f64 * tick_us / 1e6 / secs * 100.0;
        let others = w.machine_ticks.saturating_sub(server_ticks + w.client_ticks);
        let others_pct = others as f64 * tick_us / 1e6 / secs * 100.0;
        human += &format!(
            "; server cpu {server_pct:.0}%, per rt: user {user:.2} µs + sys {sys:.2} µs = {:.2} µs; other processes {others_pct:.0}%",
            user + sys
        );
        result += &format!(
            " srv_user_us={user:.3} srv_sys_us={sys:.3} srv_total_us={:.3} srv_cpu_pct={server_pct:.1} others_cpu_pct={others_pct:.1}",
            user + sys
        );
    }
    println!("{human}");
    println!("{result}");
    if opts.hold {
        handshake("DONE");
    }
    Ok(())
}
