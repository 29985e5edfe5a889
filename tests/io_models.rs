//! The I/O-model examples (`iomodels/examples/io_*.rs`): each starts, listens on the port it is
//! given, and echoes, for several clients at once. One test per model, each starting the
//! example as a child process and talking to it with blocking std sockets (read timeouts only
//! guard against a hang).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A server started by [`spawn`]: killed when dropped. Its stderr lines arrive on `stderr`
/// (they are also passed on to the test's).
struct Server {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `example` on a free port, returns it and the address it printed.
fn start(example: &str, extra: &[&str]) -> (Server, String) {
    let mut command = Command::new(util::example_binary(example));
    command.arg("127.0.0.1:0").args(extra);
    spawn(command).unwrap_or_else(|stderr| panic!("{example} exited before listening: {stderr}"))
}

/// Starts a server on `command`, returns it and the address it printed, or what it wrote to
/// stderr if it exited before listening.
fn spawn(mut command: Command) -> Result<(Server, String), String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let child_stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, stderr) = mpsc::channel();
    std::thread::spawn(move || {
        for line in child_stderr.lines().map_while(Result::ok) {
            eprintln!("{line}");
            // A test that never looks at the lines has dropped the receiver: ignore that.
            let _ = tx.send(line);
        }
    });
    let mut server = Server { child, stderr };
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            // It exited (stdout closed). Killing is then a no-op, and waiting reaps it; its
            // stderr is closed too, so collecting the lines ends.
            let _ = server.child.wait();
            return Err(server.stderr.iter().collect::<Vec<_>>().join("\n"));
        }
        if let Some(addr) = line.trim().strip_prefix("echo server listening on ") {
            // Keep draining stdout in the background so the server never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            return Ok((server, addr.to_string()));
        }
    }
}

/// Three clients at once, each sending several messages (one larger than the servers' 4 KiB
/// buffer) and reading every byte back.
fn echoes_for_several_clients(example: &str, extra: &[&str]) {
    let (_server, addr) = start(example, extra);
    several_clients_echo(example, &addr);
}

fn several_clients_echo(example: &str, addr: &str) {
    let clients: Vec<_> = (0..3u8)
        .map(|c| {
            let (addr, example) = (addr.to_string(), example.to_string());
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

// ---------------------------------------------------------------------------------------
// io_uring: the kernel may refuse it (kernel.io_uring_disabled, a seccomp filter), and the
// example then exits saying so; these tests then skip, saying why.
// ---------------------------------------------------------------------------------------

/// Starts `io_uring` with `extra`, under an fd limit if given, or `None` (printed) if the
/// kernel refuses io_uring here.
fn start_uring(extra: &[&str], fd_limit: Option<u32>) -> Option<(Server, String)> {
    let binary = util::example_binary("io_uring");
    let mut command = match fd_limit {
        // The limit is set by a shell that then `exec`s the server (as tests/faults_util does).
        Some(limit) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("ulimit -S -n {limit} && exec \"$0\" \"$@\"")).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    command.arg("127.0.0.1:0").args(extra);
    match spawn(command) {
        Ok(started) => Some(started),
        Err(stderr) if stderr.contains("refuses io_uring") => {
            println!("SKIPPED: {stderr}");
            None
        }
        Err(stderr) => panic!("io_uring exited before listening: {stderr}"),
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn io_uring_echoes() {
    let Some((_server, addr)) = start_uring(&[], None) else { return };
    several_clients_echo("io_uring", &addr);
}

/// One buffer in the ring for three clients: recvs keep running out (`ENOBUFS` ends the
/// multishot recv), and the server must re-arm them once the buffer is back.
#[test]
fn io_uring_out_of_buffers_rearms_the_recv() {
    let Some((_server, addr)) = start_uring(&["--buffers", "1"], None) else { return };
    several_clients_echo("io_uring", &addr);
}

/// A client that shuts down its sending side still gets every byte back, then end of stream.
/// It reads nothing until it has sent all: the end of stream reaches the server while most of
/// the echo still waits to be sent (300 KB is more than the socket buffers of an unread
/// connection hold at first, and less than what makes the server stop receiving).
#[test]
fn io_uring_half_close_echoes_the_rest_then_closes() {
    let Some((_server, addr)) = start_uring(&[], None) else { return };
    let mut s = connect(&addr);
    let msg: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&msg).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap(); // a server that never closed fails at the read timeout
    assert!(back == msg, "got {} bytes back, not the {} sent", back.len(), msg.len());
}

/// What the two large-transfer tests send: 64 MiB.
const LARGE: usize = 64 << 20;

/// Sends `chunk` over and over, `LARGE` bytes in all, on a clone of `s` from another thread,
/// and says on the channel when all is sent.
fn send_large(s: &TcpStream, chunk: Vec<u8>) -> (std::thread::JoinHandle<()>, mpsc::Receiver<()>) {
    let mut writer = s.try_clone().unwrap();
    let (done, finished) = mpsc::channel();
    let sender = std::thread::spawn(move || {
        for _ in 0..LARGE / chunk.len() {
            writer.write_all(&chunk).unwrap();
        }
        let _ = done.send(());
    });
    (sender, finished)
}

/// Reads `LARGE` bytes from `s`, which must be `chunk` over and over.
fn read_large(mut s: TcpStream, chunk: &[u8]) {
    let mut back = vec![0; chunk.len()];
    for i in 0..LARGE / chunk.len() {
        s.read_exact(&mut back).unwrap();
        assert!(back == chunk, "chunk {i} came back with other bytes (out of order, or lost)");
    }
}

/// 64 MiB sent while reading concurrently: far more than the socket buffers hold, so the
/// server's sends come up short and it must send the rest, in order.
#[test]
fn io_uring_large_transfer_survives_short_sends() {
    let Some((_server, addr)) = start_uring(&[], None) else { return };
    let s = connect(&addr);
    let chunk: Vec<u8> = (0..1 << 16).map(|i: u32| (i % 253) as u8).collect();
    let (sender, _) = send_large(&s, chunk.clone());
    read_large(s, &chunk);
    sender.join().unwrap();
}

/// A client that sends and never reads: the server stops receiving from it once its backlog
/// is full (the multishot recv is cancelled), so the client's writes stall instead of the
/// server buffering 64 MiB. Once the client reads, everything comes back.
#[test]
fn io_uring_a_client_that_does_not_read_is_stopped() {
    let Some((_server, addr)) = start_uring(&[], None) else { return };
    let s = connect(&addr);
    let chunk: Vec<u8> = (0..1 << 16).map(|i: u32| (i % 241) as u8).collect();
    let (sender, finished) = send_large(&s, chunk.clone());
    // The socket buffers on both sides hold well under 64 MiB, so with the server not
    // receiving, the writes cannot finish. (A server that kept receiving takes 64 MiB in a
    // fraction of these 3 s; a stalled writer is never a false failure.)
    assert!(
        finished.recv_timeout(Duration::from_secs(3)).is_err(),
        "64 MiB went in while the client read nothing: the server buffers without limit"
    );
    read_large(s, &chunk);
    sender.join().unwrap();
}

/// Out of fds, the multishot accept ends with `EMFILE`; the server must log it, pause, and
/// accept again, so the client waiting in the backlog is served once an fd is free.
#[test]
fn io_uring_out_of_fds_accepts_again_once_an_fd_is_free() {
    // 0, 1, 2, the ring and the listener, and room for two connections.
    let Some((server, addr)) = start_uring(&[], Some(7)) else { return };
    let (mut first, mut second) = (connect(&addr), connect(&addr));
    echo_once(&mut first, b"first");
    echo_once(&mut second, b"second");
    let mut third = connect(&addr); // the handshake completes: it waits in the backlog
    third.write_all(b"third").unwrap();
    let logged = loop {
        let line = server.stderr.recv_timeout(Duration::from_secs(20)).expect("no accept failure logged");
        if line.contains("accept failed") {
            break line;
        }
    };
    assert!(logged.contains("os error 24"), "not EMFILE: {logged}");
    drop(first); // the server sees the end of stream and closes it: one fd free
    let mut back = [0; 5];
    third.read_exact(&mut back).unwrap(); // a server that stopped accepting fails here
    assert_eq!(&back, b"third");
}
