//! The I/O driver a runtime runs on (issue 14): `Builder::driver`, `MINI_DRIVER`,
//! `Runtime::driver`, the fallback to epoll when the kernel refuses io_uring, the basics (TCP,
//! a timer, a cross-thread wake, UDP, Unix sockets) on each driver, and 10,000 connections on
//! io_uring.
//!
//! What is process-wide runs in a child process that re-runs this test binary (`--exact`, with
//! [`CHILD_ENV`] naming what the child does): the environment variable, a seccomp filter, and
//! the 20,000 fds of the 10,000 connections. The parent reads what the child printed: the
//! driver it got on stdout (a `DRIVER=` line), mini's one-line notices on stderr.
//!
//! Where the kernel refuses io_uring (a seccomp profile, `io_uring_disabled`, a kernel before
//! 6.1), the io_uring-only checks say `SKIPPED` with the reason and pass: the rest still runs,
//! and the fallback itself is tested everywhere, with a filter that this file installs.
//!
//! No test sleeps to synchronise: waits on threads and children are bounded by guards that
//! fail the test (killing the child) within seconds.

mod util;

use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use mini::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use mini::runtime::Handle;
use mini::{Builder, Driver, Runtime};

use util::{output_within, within_hang_guard};

/// Set in a child process: what it does (see [`child_main`]).
const CHILD_ENV: &str = "MINI_DRIVER_TEST_CHILD";

/// The driver a child got, on a stdout line of its own.
const DRIVER_LINE: &str = "DRIVER=";

/// The start of the one stderr line that says why io_uring was not used.
const UNAVAILABLE: &str = "mini: io_uring unavailable (";

/// How long a child may run before the test fails as hung (the 10,000-connection run has
/// its own, longer guard).
const CHILD_GUARD: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// The builder's choice, in this process

#[test]
fn the_builder_gives_epoll_when_asked_whatever_the_environment_says() {
    // In CI's second run MINI_DRIVER=uring is set for this process: the explicit call wins.
    let rt = Builder::new().driver(Driver::Epoll).build().unwrap();
    assert_eq!(rt.driver(), Driver::Epoll);
}

#[test]
fn the_builder_gives_io_uring_when_asked_and_the_kernel_allows_it() {
    let rt = Builder::new().driver(Driver::IoUring).build().unwrap();
    expect_io_uring_where_allowed(rt.driver(), "Builder::driver(Driver::IoUring)");
    let rt = Builder::new().driver(Driver::Auto).build().unwrap();
    expect_io_uring_where_allowed(rt.driver(), "Builder::driver(Driver::Auto)");
}

/// Not a check: prints the driver that this process's environment selects, and (from the
/// runtime itself) why io_uring was refused, if it was. `.ci/run` runs it under
/// `MINI_DRIVER=uring` before the second test run, to say which driver that run tests.
#[test]
fn report_the_driver_the_environment_selects() {
    let rt = Runtime::new().unwrap();
    let env = std::env::var_os("MINI_DRIVER").map(|v| v.to_string_lossy().into_owned());
    println!("mini driver with MINI_DRIVER={}: {:?}", env.as_deref().unwrap_or("(unset)"), rt.driver());
}

// ---------------------------------------------------------------------------------------
// The basics, once per driver

#[test]
fn tcp_timers_wakes_udp_and_unix_work_on_epoll() {
    basics_on(Driver::Epoll);
}

#[test]
fn tcp_timers_wakes_udp_and_unix_work_on_io_uring() {
    basics_on(Driver::IoUring);
}

/// A TCP echo with a half-close, a timer, a timeout, a spawn from another thread, a UDP
/// round trip and a Unix-socket echo, on a runtime built with `driver` (which may fall back
/// to epoll where the kernel refuses io_uring: then this says so, and the basics run anyway).
fn basics_on(driver: Driver) {
    within_hang_guard(move || {
        let rt = Builder::new().driver(driver).build().unwrap();
        if driver == Driver::IoUring {
            expect_io_uring_where_allowed(rt.driver(), "the basics");
        } else {
            assert_eq!(rt.driver(), driver);
        }
        rt.block_on(async move {
            tcp_echo_and_half_close().await.expect("TCP");
            timers().await;
            a_spawn_from_another_thread_wakes_the_loop().await;
            udp_round_trip().await.expect("UDP");
            unix_echo(&format!("{driver:?}")).await.expect("Unix sockets");
        });
    });
}

/// Bytes both ways, then the client's half-close: the server reads to end of stream, and its
/// own reply still reaches the client after it.
async fn tcp_echo_and_half_close() -> io::Result<()> {
    let (mut client, mut server) = util::tcp_pair().await?;
    let sent = util::pattern(7, 100_000); // more than one buffer, on either driver
    let echo = mini::spawn(async move {
        let mut got = vec![0; 100_000];
        server.read_exact(&mut got).await?;
        server.write_all(&got).await?;
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await?; // ends at the client's half-close
        server.write_all(b"bye").await?;
        Ok::<_, io::Error>(rest)
    });
    client.write_all(&sent).await?;
    let mut back = vec![0; sent.len()];
    client.read_exact(&mut back).await?;
    assert!(back == sent, "the echo differs from what was sent");
    client.write_all(b"last").await?;
    client.shutdown(std::net::Shutdown::Write)?;
    let mut tail = Vec::new();
    client.read_to_end(&mut tail).await?;
    assert_eq!(tail, b"bye", "the reply sent after the half-close");
    assert_eq!(echo.await.unwrap()?, b"last", "what the server read after the echo");
    Ok(())
}

/// A sleep ends at or after its deadline; a timeout fires on a future that never completes.
async fn timers() {
    let deadline = Instant::now() + Duration::from_millis(5);
    mini::time::sleep_until(deadline).await;
    assert!(Instant::now() >= deadline, "the sleep ended before its deadline");
    let never = mini::time::timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
    assert!(never.is_err(), "a timeout on a pending future completed it");
}

/// The loop waits for I/O with nothing else to do; another thread then spawns a task onto it
/// through a [`Handle`], which must end the wait (the driver's cross-thread wake). The task
/// runs on the loop and wakes this future.
async fn a_spawn_from_another_thread_wakes_the_loop() {
    #[derive(Default)]
    struct Shared {
        ran_on: Option<std::thread::ThreadId>,
        waker: Option<Waker>,
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let handle = Handle::current();
    let (go, went) = mpsc::channel::<()>();
    let spawner = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            // Told to go by the first poll below, which then returns to the loop to wait.
            went.recv_timeout(util::HANG_GUARD).expect("the runtime thread never said go");
            handle.spawn(async move {
                let mut shared = shared.lock().unwrap();
                shared.ran_on = Some(std::thread::current().id());
                if let Some(waker) = shared.waker.take() {
                    waker.wake();
                }
            })
        })
    };
    let mut go = Some(go);
    let ran_on = std::future::poll_fn(|cx| {
        let mut state = shared.lock().unwrap();
        if let Some(id) = state.ran_on {
            return Poll::Ready(id);
        }
        state.waker = Some(cx.waker().clone());
        if let Some(go) = go.take() {
            go.send(()).unwrap();
        }
        Poll::Pending
    })
    .await;
    assert_eq!(ran_on, std::thread::current().id(), "the spawned task ran off the runtime's thread");
    let task = spawner.join().unwrap();
    task.await.expect("the task spawned from another thread");
}

/// A datagram to a second socket and back, with the sender's address reported.
async fn udp_round_trip() -> io::Result<()> {
    let a = UdpSocket::bind("127.0.0.1:0").await?;
    let b = UdpSocket::bind("127.0.0.1:0").await?;
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
    let echo = mini::spawn(async move {
        let mut buf = [0; 64];
        let (n, from) = b.recv_from(&mut buf).await?;
        b.send_to(&buf[..n], from).await?;
        Ok::<_, io::Error>(from)
    });
    a.send_to(b"ping over udp", b_addr).await?;
    let mut buf = [0; 64];
    let (n, from) = a.recv_from(&mut buf).await?;
    assert_eq!((&buf[..n], from), (&b"ping over udp"[..], b_addr));
    assert_eq!(echo.await.unwrap()?, a_addr, "the sender's address as the receiver saw it");
    Ok(())
}

/// Bytes both ways over a Unix stream socket at a path, and the end of stream after a close.
async fn unix_echo(tag: &str) -> io::Result<()> {
    let path = std::env::temp_dir().join(format!("mini-driver-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path); // a stale file left by a killed run of this test
    let listener = UnixListener::bind(&path)?;
    let server = mini::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        stream.write_all(&buf).await?;
        Ok::<_, io::Error>(())
    });
    let mut client = UnixStream::connect(&path).await?;
    std::fs::remove_file(&path)?;
    client.write_all(b"over a unix socket").await?;
    client.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::new();
    client.read_to_end(&mut back).await?;
    assert_eq!(back, b"over a unix socket");
    server.await.unwrap()
}

// ---------------------------------------------------------------------------------------
// MINI_DRIVER, in child processes

#[test]
fn mini_driver_selects_the_driver_of_a_runtime_built_without_a_choice() {
    if let Some(mode) = child_mode() {
        return child_main(&mode);
    }
    let test = "mini_driver_selects_the_driver_of_a_runtime_built_without_a_choice";
    // Unset, and each accepted value.
    run_child(test, "default", None).expect_quietly(Driver::Epoll, "MINI_DRIVER unset");
    run_child(test, "default", Some("epoll")).expect_quietly(Driver::Epoll, "MINI_DRIVER=epoll");
    for value in ["uring", "auto"] {
        run_child(test, "default", Some(value))
            .expect_io_uring_where_allowed(&format!("MINI_DRIVER={value}"));
    }
}

#[test]
fn a_bad_mini_driver_value_says_so_once_and_uses_epoll() {
    if let Some(mode) = child_mode() {
        return child_main(&mode);
    }
    let test = "a_bad_mini_driver_value_says_so_once_and_uses_epoll";
    for value in ["bogus", "kqueue"] {
        let child = run_child(test, "default", Some(value));
        assert_eq!(child.driver, Driver::Epoll, "MINI_DRIVER={value:?}: {child:?}");
        assert_eq!(
            child.notices,
            [format!("mini: MINI_DRIVER={value} is not one of uring, epoll, auto; using epoll")],
            "MINI_DRIVER={value:?}: {child:?}"
        );
    }
}

#[test]
fn an_explicit_choice_wins_over_mini_driver() {
    if let Some(mode) = child_mode() {
        return child_main(&mode);
    }
    let test = "an_explicit_choice_wins_over_mini_driver";
    // Neither the environment's io_uring nor a bad value is looked at, so nothing is printed.
    for value in ["uring", "bogus"] {
        run_child(test, "epoll", Some(value)).expect_quietly(Driver::Epoll, &format!("Epoll over {value}"));
    }
    run_child(test, "io_uring", Some("epoll"))
        .expect_io_uring_where_allowed("Driver::IoUring over MINI_DRIVER=epoll");
}

// ---------------------------------------------------------------------------------------
// The fallback when io_uring is refused: a real seccomp filter, in a child process

#[test]
fn io_uring_refused_with_eperm_falls_back_to_epoll_with_one_line() {
    if let Some(mode) = child_mode() {
        return child_main(&mode);
    }
    refused_with(libc::EPERM, "io_uring_refused_with_eperm_falls_back_to_epoll_with_one_line");
}

#[test]
fn io_uring_refused_with_enosys_falls_back_to_epoll_with_one_line() {
    if let Some(mode) = child_mode() {
        return child_main(&mode);
    }
    refused_with(libc::ENOSYS, "io_uring_refused_with_enosys_falls_back_to_epoll_with_one_line");
}

/// Docker's default seccomp profile answers io_uring's syscalls with EPERM; a kernel built
/// without io_uring answers ENOSYS. In each case a runtime asked for `IoUring` or `Auto` must
/// come up on epoll, run a round trip, and say why on exactly one stderr line.
fn refused_with(errno: i32, test: &str) {
    let reason = io::Error::from_raw_os_error(errno).to_string();
    let reason = reason.split(" (os error").next().unwrap(); // "Operation not permitted"
    for asked in ["io_uring", "auto"] {
        let child = run_child(test, &format!("seccomp {errno} {asked}"), None);
        assert_eq!(child.probe, Some(errno), "the filter is not in place: {child:?}");
        assert_eq!(child.driver, Driver::Epoll, "{asked} under the filter: {child:?}");
        let line = child.expect_one_unavailable_line();
        assert!(line.contains(reason), "the line does not give the reason ({reason}): {line}");
    }
}

/// Installs, on every thread of this process, a seccomp filter that answers the three io_uring
/// syscalls with `errno` and allows everything else: what a container profile without them
/// does. Only ever called in a child process.
fn refuse_io_uring(errno: i32) {
    use seccompiler::{apply_filter_all_threads, BpfProgram, SeccompAction, SeccompFilter};
    let syscalls = [libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register];
    let filter = SeccompFilter::new(
        syscalls.into_iter().map(|nr| (nr, Vec::new())).collect(), // an empty rule list: always
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        std::env::consts::ARCH.try_into().expect("seccompiler knows this architecture"),
    )
    .expect("the filter");
    let program = BpfProgram::try_from(filter).expect("compile the filter");
    apply_filter_all_threads(&program).expect("install the filter");
}

// ---------------------------------------------------------------------------------------
// 10,000 connections on io_uring

/// Connections held open at once.
const CONNECTIONS: usize = 10_000;

/// The 10,000-connection run may take this long before it fails as hung. Generous for a
/// debug build on two shared cores; only a hang gets near it.
const LOAD_GUARD: Duration = Duration::from_secs(60);

/// One io_uring runtime serves 10,000 connections at once, each echoed, and sees each one
/// closed; the 10,000 clients run on another io_uring runtime. Each side is a child process,
/// with its soft fd limit raised by `ulimit` in the shell that starts it (no `setrlimit` here),
/// so that neither needs 20,000 fds and this process's other tests are not starved of them.
#[test]
fn ten_thousand_connections_are_each_echoed_on_io_uring() {
    if let Some(mode) = child_mode() {
        return child_main(&mode);
    }
    // The skip follows the runtime's own answer; other tests check that answer.
    if Builder::new().driver(Driver::IoUring).build().unwrap().driver() != Driver::IoUring {
        let why = io_uring_refusal().unwrap_or_else(|| "the runtime fell back".into());
        println!(
            "SKIPPED ten_thousand_connections_are_each_echoed_on_io_uring: io_uring refused here ({why})"
        );
        return;
    }
    let needed = CONNECTIONS as u64 + 64; // the runtime's own fds and the harness's
    let hard = hard_fd_limit().expect("read the fd limit from /proc/self/limits");
    if hard < needed {
        println!(
            "SKIPPED ten_thousand_connections_are_each_echoed_on_io_uring: the hard fd limit is {hard}, \
             below the {needed} each side needs"
        );
        return;
    }
    let fd_limit = hard.min(1 << 16); // `ulimit` takes no number for "unlimited"
    let test = "ten_thousand_connections_are_each_echoed_on_io_uring";
    let mut server = KillOnDrop(Some(
        child_command(test, "serve", None, Some(fd_limit))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server child"),
    ));
    // A thread reads its stdout: the address it listens on comes through a channel as soon
    // as it is printed, the rest when the server exits.
    let (addr_tx, addr_rx) = mpsc::channel();
    let stdout = BufReader::new(server.0.as_mut().unwrap().stdout.take().unwrap());
    let stdout_reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in stdout.lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("LISTENING ") {
                let _ = addr_tx.send(addr.to_owned());
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    let addr = addr_rx.recv_timeout(CHILD_GUARD).expect("the server child never said where it listens");

    // The clients close every connection, then wait for end of input on stdin before they
    // exit: the server must see the closes while the client process lives (an exit would close
    // any fd that a dropped stream had left open).
    let start = Instant::now();
    let mut clients = KillOnDrop(Some(
        child_command(test, &format!("clients {addr}"), None, Some(fd_limit))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the client child"),
    ));
    let hold_open = clients.0.as_mut().unwrap().stdin.take();
    let served = wait_within(&mut server, LOAD_GUARD);
    let elapsed = start.elapsed();
    drop(hold_open);
    let clients = wait_within(&mut clients, CHILD_GUARD);
    let server_out = stdout_reader.join().unwrap();
    let clients_out = match &clients {
        Ok(out) | Err(out) => {
            format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        }
    };
    let served = served.unwrap_or_else(|_| {
        panic!(
            "the server did not see all {CONNECTIONS} connections echoed and closed within {LOAD_GUARD:?}:\n\
             {server_out}\nclients:\n{clients_out}"
        )
    });
    let clients = clients.unwrap_or_else(|_| panic!("the clients did not exit when told to:\n{clients_out}"));
    assert!(clients.status.success(), "the client child failed:\n{clients_out}");
    assert!(clients_out.contains(&format!("{DRIVER_LINE}IoUring")), "clients: {clients_out}");
    assert!(
        served.status.success(),
        "the server child failed:\n{server_out}\n{}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(server_out.contains(&format!("{DRIVER_LINE}IoUring")), "server: {server_out}");
    assert!(
        server_out.contains(&format!("SERVED {CONNECTIONS} CLOSED {CONNECTIONS}")),
        "server: {server_out}"
    );
    println!("10k on io_uring: {CONNECTIONS} connections open at once, each echoed twice and closed, in {elapsed:?}");
}

/// Waits for the child in `guard` to exit and returns its output: `Err` with what it had
/// written if it was still running after `timeout` and had to be killed.
fn wait_within(guard: &mut KillOnDrop, timeout: Duration) -> Result<Output, Output> {
    let child = guard.0.take().expect("a child");
    let pid = child.id().to_string();
    let (done, exited) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done.send(());
        output
    });
    let timed_out = exited.recv_timeout(timeout).is_err();
    if timed_out {
        // The waiter owns the child now: kill it by its pid, which stays its own until the
        // waiter reaps it.
        let _ = Command::new("kill").args(["-9", &pid]).status();
    }
    let output = waiter.join().unwrap().expect("the child's output");
    if timed_out {
        Err(output)
    } else {
        Ok(output)
    }
}

/// Kills the child when dropped, unless taken out first: a failed test must not leave a
/// server behind.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The server side: accepts [`CONNECTIONS`] connections and echoes each until its client
/// closes it, then prints the counts and exits.
async fn serve_ten_thousand() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("LISTENING {}", listener.local_addr().unwrap());
    let mut connections = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let (mut stream, _) = listener.accept().await.expect("accept");
        connections.push(mini::spawn(async move {
            let mut buf = [0; 64];
            let mut echoed = 0;
            loop {
                match stream.read(&mut buf).await.expect("server read") {
                    0 => return echoed,
                    n => stream.write_all(&buf[..n]).await.expect("server write"),
                }
                echoed += 1;
            }
        }));
    }
    let mut closed = 0;
    for connection in connections {
        assert!(connection.await.unwrap() >= 1, "a connection closed before its echo");
        closed += 1;
    }
    println!("SERVED {CONNECTIONS} CLOSED {closed}");
}

/// The client side: opens [`CONNECTIONS`] connections one after another, each echoed once
/// (which proves the server accepted it, and keeps the server's accept queue short), then
/// has all of them echo again at once while every one is open, then closes them all.
async fn ten_thousand_clients(addr: std::net::SocketAddr) {
    let mut streams = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut stream =
            TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
        echo(&mut stream, format!("client {i:05} connected").as_bytes()).await;
        streams.push(stream);
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            mini::spawn(async move {
                echo(&mut stream, format!("client {i:05} of {CONNECTIONS} open").as_bytes()).await;
                stream
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(CONNECTIONS);
    for task in tasks {
        streams.push(task.await.unwrap()); // every stream stays open until all have echoed
    }
    drop(streams);
}

/// Writes `msg` and checks that exactly `msg` comes back.
async fn echo(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.expect("client write");
    let mut back = vec![0; msg.len()];
    stream.read_exact(&mut back).await.expect("client read");
    assert_eq!(back, msg, "the echo differs from what was sent");
}

/// The hard limit on open fds, from `/proc/self/limits` (`Max open files  SOFT  HARD  files`).
fn hard_fd_limit() -> io::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).ok_or(io::ErrorKind::NotFound)?;
    match line.split_whitespace().nth(4) {
        Some("unlimited") => Ok(u64::MAX),
        Some(hard) => hard.parse().map_err(|_| io::ErrorKind::InvalidData.into()),
        None => Err(io::ErrorKind::InvalidData.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Children, and what they report

/// Whether this process is a child, and what it is to do.
fn child_mode() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// What a child does:
/// - `default` / `epoll` / `io_uring`: builds a runtime with no choice, `Driver::Epoll` or
///   `Driver::IoUring`, and runs a round trip on it;
/// - `seccomp ERRNO io_uring|auto`: the same, with `Driver::IoUring` or `Driver::Auto`, after
///   refusing io_uring with `ERRNO`; it also reports what io_uring_setup answers itself;
/// - `serve`, `clients ADDR`: the two sides of the 10,000-connection test.
///
/// It prints `DRIVER=<the driver in use>` on stdout.
fn child_main(mode: &str) {
    let words: Vec<&str> = mode.split(' ').collect();
    let mut builder = Builder::new();
    match words[..] {
        ["default"] => {}
        ["epoll"] => {
            builder.driver(Driver::Epoll);
        }
        ["io_uring"] | ["serve"] | ["clients", _] => {
            builder.driver(Driver::IoUring);
        }
        ["seccomp", errno, asked] => {
            refuse_io_uring(errno.parse().unwrap());
            let probe =
                io_uring::IoUring::<io_uring::squeue::Entry>::new(2).err().and_then(|e| e.raw_os_error());
            println!("PROBE={}", probe.unwrap_or(0));
            builder.driver(if asked == "auto" { Driver::Auto } else { Driver::IoUring });
        }
        _ => panic!("unknown child mode {mode:?}"),
    }
    let rt = builder.build().expect("build the runtime");
    println!("{DRIVER_LINE}{:?}", rt.driver());
    match words[..] {
        ["serve"] => rt.block_on(serve_ten_thousand()),
        ["clients", addr] => {
            rt.block_on(ten_thousand_clients(addr.parse().unwrap()));
            // Every stream is dropped: wait (the runtime idle) until the parent has seen the
            // server count the closes, which it says by closing our stdin.
            io::Read::read_to_end(&mut io::stdin(), &mut Vec::new()).expect("read stdin");
        }
        _ => rt.block_on(tcp_echo_and_half_close()).expect("a round trip"),
    }
}

/// This test binary, to be run as a child doing `mode` in test `test`, with `MINI_DRIVER` set
/// to `mini_driver` (or removed), and its soft fd limit raised to `fd_limit` if given.
fn child_command(test: &str, mode: &str, mini_driver: Option<&str>, fd_limit: Option<u64>) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = match fd_limit {
        // The shell raises its soft limit, then becomes the child: `ulimit`, not `setrlimit`.
        Some(limit) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("ulimit -S -n {limit} && exec \"$0\" \"$@\"")).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(CHILD_ENV, mode);
    command.env_remove("MINI_TRACE");
    match mini_driver {
        Some(value) => command.env("MINI_DRIVER", value),
        None => command.env_remove("MINI_DRIVER"),
    };
    command
}

/// What a child reported.
#[derive(Debug)]
struct ChildReport {
    driver: Driver,
    /// What io_uring_setup answered the child itself (seccomp children only): the errno.
    probe: Option<i32>,
    /// Its stderr lines from mini (`mini: ...`).
    notices: Vec<String>,
    /// All of its stderr, for the failure messages (which print the report with `Debug`).
    #[allow(dead_code)]
    stderr: String,
}

impl ChildReport {
    /// Asserts that the child ran `driver` and printed nothing.
    #[track_caller]
    fn expect_quietly(&self, driver: Driver, what: &str) {
        assert_eq!((self.driver, self.notices.as_slice()), (driver, &[][..]), "{what}: {self:?}");
    }

    /// Asserts that the child ran io_uring, quietly, where the kernel allows it, and epoll
    /// with one line saying why where it does not (and says the io_uring half was skipped).
    #[track_caller]
    fn expect_io_uring_where_allowed(&self, what: &str) {
        expect_io_uring_where_allowed(self.driver, what);
        match self.driver {
            Driver::IoUring => self.expect_quietly(Driver::IoUring, what),
            _ => {
                self.expect_one_unavailable_line();
            }
        }
    }

    /// Asserts that the child printed exactly one line, the one saying why io_uring is not
    /// used, and returns it.
    fn expect_one_unavailable_line(&self) -> &str {
        assert_eq!(self.notices.len(), 1, "expected one line from mini: {self:?}");
        let line = &self.notices[0];
        assert!(line.starts_with(UNAVAILABLE) && line.ends_with("); using epoll"), "{line}");
        line
    }
}

/// Runs a child (see [`child_command`]) to its end, within [`CHILD_GUARD`], and reads its report.
fn run_child(test: &str, mode: &str, mini_driver: Option<&str>) -> ChildReport {
    let out = output_within(&mut child_command(test, mode, mini_driver, None), CHILD_GUARD);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "child {mode:?} with MINI_DRIVER={mini_driver:?} failed:\n{stdout}\n{stderr}"
    );
    // A child's own lines may follow libtest's "test NAME ... " on the same line.
    let value = |prefix: &str| {
        let at = stdout.find(prefix)? + prefix.len();
        stdout[at..].split_whitespace().next().map(str::to_owned)
    };
    let driver = match value(DRIVER_LINE).as_deref() {
        Some("IoUring") => Driver::IoUring,
        Some("Epoll") => Driver::Epoll,
        other => panic!("child {mode:?} reported driver {other:?}:\n{stdout}"),
    };
    ChildReport {
        driver,
        probe: value("PROBE=").map(|p| p.parse().unwrap()),
        notices: stderr.lines().filter(|l| l.starts_with("mini:")).map(str::to_owned).collect(),
        stderr: stderr.into_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Does this kernel allow io_uring?

/// Why this process may not use io_uring, or `None` if it may: asks the kernel directly for a
/// ring with the setup flags a fast driver wants (`SINGLE_ISSUER | DEFER_TASKRUN |
/// COOP_TASKRUN`, Linux 6.1+). Refused by seccomp profiles, `io_uring_disabled`, older kernels.
fn io_uring_refusal() -> Option<String> {
    let ring = io_uring::IoUring::<io_uring::squeue::Entry>::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .build(8);
    ring.err().map(|e| format!("io_uring_setup with SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN: {e}"))
}

/// Where the kernel allows io_uring, `got` must be `IoUring`. Where it refuses the probe's
/// ring, `Epoll` (the test then says that its io_uring half was skipped), or `IoUring` from a
/// driver that makes do with fewer setup flags than the probe asks for (an older kernel).
#[track_caller]
fn expect_io_uring_where_allowed(got: Driver, what: &str) {
    match (io_uring_refusal(), got) {
        (None, got) => assert_eq!(
            got,
            Driver::IoUring,
            "{what}: the kernel allows io_uring, yet the runtime runs {got:?}"
        ),
        (Some(_), Driver::IoUring) => {}
        (Some(why), got) => {
            println!("SKIPPED {what} on io_uring: refused here ({why}); checked the fallback instead");
            assert_eq!(got, Driver::Epoll, "{what}");
        }
    }
}
