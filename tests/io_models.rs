//! The I/O-model examples (`iomodels/examples/io_*.rs`): each starts, listens on the port it is
//! given, and echoes, for several clients at once. One test per model, each starting the
//! example as a child process and talking to it with blocking std sockets (read timeouts only
//! guard against a hang).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `example` on a free port, returns it and the address it printed.
fn start(example: &str, extra: &[&str]) -> (Server, String) {
    let mut child = Command::new(util::example_binary(example))
        .arg("127.0.0.1:0")
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {example}: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let server = Server(child);
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "{example} exited before listening");
        if let Some(addr) = line.trim().strip_prefix("echo server listening on ") {
            // Keep draining stdout in the background so the server never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            return (server, addr.to_string());
        }
    }
}

/// Three clients at once, each sending several messages (one larger than the servers' 4 KiB
/// buffer) and reading every byte back.
fn echoes_for_several_clients(example: &str, extra: &[&str]) {
    let (_server, addr) = start(example, extra);
    let clients: Vec<_> = (0..3u8)
        .map(|c| {
            let (addr, example) = (addr.clone(), example.to_string());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                for round in 0..5u8 {
                    let len = if round == 4 { 10_000 } else { 16 };
                    let msg: Vec<u8> = (0..len).map(|i| (i as u8) ^ c ^ round).collect();
                    s.write_all(&msg).unwrap();
                    let mut back = vec![0; msg.len()];
                    s.read_exact(&mut back).unwrap();
                    assert!(back == msg, "{example}: client {c} round {round} got other bytes back");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn io_blocking_echoes() {
    echoes_for_several_clients("io_blocking", &[]);
}

#[test]
fn io_nonblocking_echoes() {
    echoes_for_several_clients("io_nonblocking", &[]);
}

#[test]
fn io_select_echoes() {
    echoes_for_several_clients("io_select", &[]);
}

#[test]
fn io_poll_echoes() {
    echoes_for_several_clients("io_poll", &[]);
}

#[test]
fn io_epoll_level_triggered_echoes() {
    echoes_for_several_clients("io_epoll", &[]);
}

#[test]
fn io_epoll_edge_triggered_echoes() {
    echoes_for_several_clients("io_epoll", &["--edge"]);
}

#[test]
fn echo_server_the_async_model_echoes() {
    echoes_for_several_clients("echo_server", &[]);
}

#[test]
fn io_signal_driven_echoes() {
    echoes_for_several_clients("io_signal_driven", &[]);
}
