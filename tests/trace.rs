//! `MINI_TRACE`: the live trace of the message loop. Each test runs this binary again as a
//! child with the variable set (it is read when a runtime starts, and is process-wide), and
//! checks what the child wrote.

use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;

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
