//! `MINI_TRACE`: the live trace of the message loop. Each test runs this binary again as a
//! child with the variable set (it is read when a runtime starts, and is process-wide), and
//! checks what the child wrote.

use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use mini::net::{TcpListener, TcpStream};

const CHILD_ENV: &str = "MINI_TRACE_TEST_CHILD";

/// In the child: one echo of one byte through a named task. Prints the server-side fd.
fn child_echo_session() {
    mini::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        println!("server fd {}", server.as_fd().as_raw_fd());
        let echo = mini::task::Builder::new().name("echo-task").spawn(async move {
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.unwrap();
            server.write_all(&byte).await.unwrap();
        });
        mini::yield_now().await; // the task parks on its read: nothing has been sent yet
        client.write_all(b"x").await.unwrap();
        let mut back = [0u8; 1];
        client.read_exact(&mut back).await.unwrap();
        echo.await.unwrap();
    });
}

fn run_child(test: &str, trace: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("MINI_TRACE", trace)
        // The lines checked here are the epoll driver's; CI's second run sets MINI_DRIVER=uring.
        .env("MINI_DRIVER", "epoll")
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Returns the index of the first line at or after `from` that contains every needle.
fn find(lines: &[&str], from: usize, needles: &[&str]) -> usize {
    lines[from..]
        .iter()
        .position(|l| needles.iter().all(|n| l.contains(n)))
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("no line after {from} with {needles:?} in:\n{}", lines.join("\n")))
}

/// The path of one byte: epoll reports the server fd readable, the reactor wakes the named
/// task, the task is polled and completes. The trace must show each step, in that order.
#[test]
fn text_trace_follows_a_byte_from_epoll_to_the_task() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_echo_session();
    }
    let (stdout, stderr) = run_child("text_trace_follows_a_byte_from_epoll_to_the_task", "1");
    let fd =
        stdout.lines().find_map(|l| l.split("server fd ").nth(1)).expect("the child prints its fd").trim();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("mini +")).collect();
    let spawn = find(&lines, 0, &["spawn task", "\"echo-task\"", "tests/trace.rs:"]);
    let parked = find(&lines, spawn, &["poll task", "\"echo-task\"", "-> Pending"]);
    let wait = find(&lines, parked, &["epoll_wait -> "]);
    let event = find(&lines, wait, &["event token=", &format!("fd={fd} "), "IN", "-> 1 waiting task"]);
    let wake = find(&lines, event, &["wake task", "\"echo-task\"", "(reactor)"]);
    let poll = find(&lines, wake, &["poll task", "\"echo-task\"", "-> Ready in"]);
    find(&lines, poll, &["done task", "\"echo-task\""]);
    assert!(lines.iter().any(|l| l.contains("epoll_wait timeout=")), "the wait's timeout is shown");
    // Events that wake nobody say so (the accepted socket's first `IN|OUT`, say), and a
    // runtime that no other thread wakes never spins for such a wake before it sleeps.
    assert!(lines.iter().any(|l| l.contains("-> 0 waiting tasks")), "an event with no waiter");
    let spins: Vec<_> = lines.iter().filter(|l| l.contains("spin:")).collect();
    assert!(spins.is_empty(), "spun without a wake from another thread: {spins:?}");
}

/// `chrome:PATH` writes a complete JSON array of trace events: a named track per task, poll
/// spans with durations, and the loop's epoll_wait spans.
#[test]
fn chrome_trace_is_a_complete_json_array_with_a_track_per_task() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_echo_session();
    }
    let path = std::env::temp_dir().join(format!("mini-trace-test-{}.json", std::process::id()));
    let (_, stderr) = run_child(
        "chrome_trace_is_a_complete_json_array_with_a_track_per_task",
        &format!("chrome:{}", path.display()),
    );
    assert!(!stderr.contains("mini +"), "chrome mode writes no text lines");
    let json = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let json = json.trim();
    assert!(json.starts_with('[') && json.ends_with(']'), "the array is closed when the runtime drops");
    let events: Vec<&str> =
        json[1..json.len() - 1].split(",\n").map(str::trim).filter(|e| !e.is_empty()).collect();
    assert!(events.iter().all(|e| e.starts_with("{\"pid\":1,") && e.ends_with('}')), "one object per event");
    assert!(events.iter().any(|e| e.contains("\"thread_name\"") && e.contains(r#"\"echo-task\""#)));
    assert!(events.iter().any(|e| e.contains("\"name\":\"epoll_wait\"") && e.contains("\"dur\":")));
    assert!(events.iter().any(|e| e.contains("\"name\":\"poll -> Ready\"") && e.contains("\"dur\":")));
    assert!(events.iter().any(|e| e.contains("\"from\":\"reactor\"")));
}

/// A value mini does not understand is reported once and leaves tracing off; the program
/// runs normally.
#[test]
fn an_unknown_trace_value_is_reported_and_ignored() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_echo_session();
    }
    let (_, stderr) = run_child("an_unknown_trace_value_is_reported_and_ignored", "verbose");
    assert_eq!(stderr.matches("MINI_TRACE=\"verbose\" is not 1 or chrome:PATH").count(), 1, "{stderr}");
    assert!(!stderr.contains("mini +"), "tracing stays off: {stderr}");
}

/// In the child: the runtime waits in epoll for SIGWINCH, which another thread sends to the
/// runtime's thread once it is seen blocked in the wait. mini's signal handler interrupts the
/// wait (EINTR: epoll_wait is never restarted, whatever SA_RESTART says), and its self-pipe
/// then wakes the listener.
fn child_interrupted_wait() {
    mini::block_on(async {
        let mut winch = mini::signal::unix::signal(mini::signal::unix::SignalKind::window_change()).unwrap();
        // SAFETY: both only read the calling thread's own ids.
        let (runtime_thread, tid) = unsafe { (libc::pthread_self(), libc::gettid()) };
        let sender = std::thread::spawn(move || {
            wait_until_blocked_in_epoll(tid);
            // SAFETY: the runtime thread is alive: it joins this thread before block_on ends.
            let rc = unsafe { libc::pthread_kill(runtime_thread, libc::SIGWINCH) };
            assert_eq!(rc, 0, "pthread_kill");
        });
        // The timeout is only a hang guard, longer than the sender's own.
        let got = mini::time::timeout(Duration::from_secs(60), winch.recv()).await;
        sender.join().unwrap();
        assert_eq!(got, Ok(Some(())), "SIGWINCH never reached the listener");
    });
}

/// Spins (yielding) until thread `tid` of this process is inside an epoll wait, as
/// `/proc/self/task/TID/syscall` shows: its first field is the number of the syscall the
/// thread is blocked in ("running" otherwise). Fails after 30 s.
fn wait_until_blocked_in_epoll(tid: libc::pid_t) {
    let mut epoll_calls = vec![libc::SYS_epoll_pwait, libc::SYS_epoll_pwait2];
    #[cfg(target_arch = "x86_64")]
    epoll_calls.push(libc::SYS_epoll_wait);
    let path = format!("/proc/self/task/{tid}/syscall");
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let state = std::fs::read_to_string(&path).unwrap();
        let nr = state.split_whitespace().next().and_then(|n| n.parse::<libc::c_long>().ok());
        if nr.is_some_and(|nr| epoll_calls.contains(&nr)) {
            return;
        }
        assert!(Instant::now() < give_up, "the runtime thread never blocked in epoll: {state}");
        std::thread::yield_now();
    }
}

/// A signal that cuts a wait short is reported as such, not as "0 events" (which would
/// read as a timeout, with no timer due).
#[test]
fn a_wait_interrupted_by_a_signal_says_so() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_interrupted_wait();
    }
    let (_, stderr) = run_child("a_wait_interrupted_by_a_signal_says_so", "1");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("mini +")).collect();
    let interrupted = find(&lines, 0, &["epoll_wait -> interrupted by a signal after "]);
    // The handler's byte in the self-pipe is the next wait's event.
    find(&lines, interrupted, &["epoll_wait -> 1 event after "]);
}
