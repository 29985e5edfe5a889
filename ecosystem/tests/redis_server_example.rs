//! The `redis_server` example as a user runs it: a child process, a real port, real
//! signals. The test builds the example with cargo (a no-op when it is up to date).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const GUARD: Duration = Duration::from_secs(20);

fn example() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "mini-ecosystem", "--example", "redis_server"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the example failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/examples/redis_server")
}

/// Waits for the child to exit and collects its output, killing it past the guard.
fn finish(child: Child) -> Output {
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    finished
        .recv_timeout(GUARD)
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("redis_server did not exit within {GUARD:?}")
        })
        .unwrap()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(example())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start redis_server")
}

#[test]
fn it_serves_and_stops_cleanly_on_sigterm() {
    let mut child = spawn(&["127.0.0.1:0"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first.trim().strip_prefix("redis_server listening on ").expect(&first).to_string();

    let mut client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(GUARD)).unwrap();
    client.write_all(b"SET k v\r\nGET k\r\n").unwrap();
    let mut reply = [0; 12];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n$1\r\nv\r\n");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    child.stdout = Some(stdout.into_inner());
    let out = finish(child);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "redis_server: stopped; served 1 connection\n");
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).unwrap(), 0, "the open connection was closed");
}

#[test]
fn a_bad_option_exits_2_and_a_taken_port_exits_1() {
    let out = finish(spawn(&["--max-bulk-len", "lots"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("redis_server: --max-bulk-len: \"lots\" is not a number of bytes\n"),
        "{stderr}"
    );
    let out = finish(spawn(&["127.0.0.1:0", "127.0.0.1:1"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("redis_server: unexpected argument \"127.0.0.1:1\"\n"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = finish(spawn(&[&addr]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("redis_server: cannot listen on {addr}: address already in use\n")
    );
}
