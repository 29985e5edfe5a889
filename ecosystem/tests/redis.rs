//! The RESP2 server end to end: a real `serve` on a loopback port, in a thread running its
//! own mini runtime, spoken to by the `redis` crate (a real client library), by raw sockets
//! (for what no client library sends: garbage, inline commands, huge lengths) and by
//! `redis-cli` when it is installed.
//!
//! Every wait has a guard: client sockets have 10 s read timeouts, the server thread is
//! joined through a channel with a timeout, child processes are killed past a deadline.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mini_ecosystem::redis::{serve_with, Config, Stats};
use redis::{Connection, RedisResult, Value};

/// How long any single wait may take before the test fails instead of hanging.
const GUARD: Duration = Duration::from_secs(10);

/// A server on 127.0.0.1:0 in its own thread; stopped (and its thread joined) on drop.
struct Server {
    addr: SocketAddr,
    stop: Option<UnixStream>,
    done: mpsc::Receiver<Stats>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(config: Config) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The stop signal crosses threads as a socket: the server's shutdown future reads
        // its end, and completes when the test writes a byte or drops the other end.
        let (stop, stop_rx) = UnixStream::pair().unwrap();
        let (done_tx, done) = mpsc::channel();
        let thread = thread::spawn(move || {
            mini::block_on(async move {
                let listener = mini::net::TcpListener::from_std(listener).unwrap();
                let mut stop_rx = mini::net::UnixStream::from_std(stop_rx).unwrap();
                let shutdown = async move {
                    let _ = stop_rx.read(&mut [0]).await;
                };
                let stats = serve_with(listener, config, shutdown).await;
                let _ = done_tx.send(stats);
            })
        });
        Server { addr, stop: Some(stop), done, thread: Some(thread) }
    }

    fn new() -> Server {
        Server::start(Config::default())
    }

    fn client(&self) -> Connection {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).unwrap();
        let con = client.get_connection_with_timeout(GUARD).unwrap();
        con.set_read_timeout(Some(GUARD)).unwrap();
        con.set_write_timeout(Some(GUARD)).unwrap();
        con
    }

    fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr, GUARD).unwrap();
        stream.set_read_timeout(Some(GUARD)).unwrap();
        stream.set_write_timeout(Some(GUARD)).unwrap();
        stream
    }

    /// Stops the server and returns what it reports, failing if it does not stop.
    fn stop(mut self) -> Stats {
        self.finish().expect("the server did not stop within the guard")
    }

    fn finish(&mut self) -> Option<Stats> {
        drop(self.stop.take());
        let stats = self.done.recv_timeout(GUARD).ok()?;
        self.thread.take()?.join().ok()?;
        Some(stats)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.finish();
        }
    }
}

fn query<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con)
}

/// The server's error text for a command that must fail, as the client reports it:
/// "CODE: detail".
fn error_of(con: &mut Connection, args: &[&str]) -> String {
    let err = query::<Value>(con, args).expect_err("an error reply");
    format!("{}: {}", err.code().unwrap_or("?"), err.detail().unwrap_or(""))
}

/// Reads until the peer closes, failing past the guard; returns everything read.
fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("the server closes within the guard");
    all
}

/// Reads exactly `len` bytes.
fn read_n(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn every_string_command_through_a_real_client() {
    let server = Server::new();
    let mut con = server.client();
    let q = |con: &mut Connection, args: &[&str]| query::<Value>(con, args).unwrap();
    assert_eq!(query::<String>(&mut con, &["PING"]).unwrap(), "PONG");
    assert_eq!(query::<String>(&mut con, &["ping", "hi"]).unwrap(), "hi");
    assert_eq!(query::<String>(&mut con, &["ECHO", "x y"]).unwrap(), "x y");
    assert_eq!(query::<String>(&mut con, &["SET", "k", "v"]).unwrap(), "OK");
    assert_eq!(query::<Option<String>>(&mut con, &["GET", "k"]).unwrap().as_deref(), Some("v"));
    assert_eq!(query::<Option<String>>(&mut con, &["GET", "nope"]).unwrap(), None);
    assert_eq!(q(&mut con, &["SET", "k", "w", "NX"]), Value::Nil);
    assert_eq!(q(&mut con, &["SET", "new", "w", "XX"]), Value::Nil);
    assert_eq!(query::<String>(&mut con, &["SET", "k", "w", "XX", "EX", "100"]).unwrap(), "OK");
    // Ranges, not exact values: a loaded machine may pause the test between commands.
    assert!((1..=100).contains(&query::<i64>(&mut con, &["TTL", "k"]).unwrap()));
    assert!((1..=100_000).contains(&query::<i64>(&mut con, &["PTTL", "k"]).unwrap()));
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "50"]).unwrap(), 1);
    assert!((1..=50).contains(&query::<i64>(&mut con, &["TTL", "k"]).unwrap()));
    assert_eq!(query::<i64>(&mut con, &["PEXPIRE", "nope", "50"]).unwrap(), 0);
    assert_eq!(query::<i64>(&mut con, &["TTL", "nope"]).unwrap(), -2);
    assert_eq!(query::<i64>(&mut con, &["INCR", "n"]).unwrap(), 1);
    assert_eq!(query::<i64>(&mut con, &["INCRBY", "n", "41"]).unwrap(), 42);
    assert_eq!(query::<i64>(&mut con, &["DECR", "n"]).unwrap(), 41);
    assert_eq!(query::<i64>(&mut con, &["DECRBY", "n", "50"]).unwrap(), -9);
    assert_eq!(query::<i64>(&mut con, &["TTL", "n"]).unwrap(), -1);
    assert_eq!(query::<String>(&mut con, &["MSET", "a", "1", "b", "2"]).unwrap(), "OK");
    assert_eq!(
        query::<Vec<Option<String>>>(&mut con, &["MGET", "a", "nope", "b"]).unwrap(),
        [Some("1".into()), None, Some("2".into())]
    );
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "a", "b", "a", "nope"]).unwrap(), 3);
    assert_eq!(query::<i64>(&mut con, &["DEL", "a", "b", "nope"]).unwrap(), 2);
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]).unwrap(), 2, "k and n");
    assert_eq!(query::<String>(&mut con, &["FLUSHDB"]).unwrap(), "OK");
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]).unwrap(), 0);
    assert_eq!(query::<String>(&mut con, &["SET", "k", "v"]).unwrap(), "OK");
    assert_eq!(query::<String>(&mut con, &["FLUSHALL"]).unwrap(), "OK");
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "k"]).unwrap(), 0);
}

#[test]
fn the_connection_commands_clients_and_tools_send() {
    let server = Server::new();
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["SELECT", "0"]).unwrap(), "OK");
    assert_eq!(error_of(&mut con, &["SELECT", "1"]), "ERR: DB index is out of range");
    assert_eq!(query::<String>(&mut con, &["CLIENT", "SETNAME", "tester"]).unwrap(), "OK");
    assert_eq!(query::<String>(&mut con, &["CLIENT", "GETNAME"]).unwrap(), "tester");
    assert_eq!(query::<String>(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "x"]).unwrap(), "OK");
    let hello: Vec<Value> = query(&mut con, &["HELLO", "2"]).unwrap();
    assert_eq!(hello.len(), 14, "seven fields as a flat RESP2 array");
    assert_eq!(hello[4], Value::BulkString(b"proto".to_vec()));
    assert_eq!(hello[5], Value::Int(2));
    assert_eq!(error_of(&mut con, &["HELLO", "3"]), "NOPROTO: unsupported protocol version");
    assert!(query::<i64>(&mut con, &["COMMAND", "COUNT"]).unwrap() >= 20);
    assert_eq!(query::<Vec<Value>>(&mut con, &["COMMAND", "DOCS"]).unwrap(), []);
    assert!(!query::<Vec<Value>>(&mut con, &["COMMAND"]).unwrap().is_empty());
    assert_eq!(
        query::<Vec<String>>(&mut con, &["CONFIG", "GET", "save"]).unwrap(),
        ["save".to_string(), String::new()]
    );
    assert_eq!(
        query::<Vec<String>>(&mut con, &["CONFIG", "GET", "appendonly"]).unwrap(),
        ["appendonly", "no"]
    );
}

#[test]
fn errors_read_as_redis_writes_them_and_the_connection_goes_on() {
    let server = Server::new();
    let mut con = server.client();
    // The trailing space is Redis's too.
    assert_eq!(
        error_of(&mut con, &["FOO", "a", "b"]),
        "ERR: unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(error_of(&mut con, &["GET"]), "ERR: wrong number of arguments for 'get' command");
    assert_eq!(error_of(&mut con, &["SET", "k"]), "ERR: wrong number of arguments for 'set' command");
    assert_eq!(query::<String>(&mut con, &["SET", "s", "abc"]).unwrap(), "OK");
    assert_eq!(error_of(&mut con, &["INCR", "s"]), "ERR: value is not an integer or out of range");
    assert_eq!(error_of(&mut con, &["INCRBY", "n", "1.5"]), "ERR: value is not an integer or out of range");
    assert_eq!(error_of(&mut con, &["SET", "k", "v", "NX", "XX"]), "ERR: syntax error");
    assert_eq!(
        error_of(&mut con, &["SET", "k", "v", "EX", "0"]),
        "ERR: invalid expire time in 'set' command"
    );
    assert_eq!(query::<String>(&mut con, &["PING"]).unwrap(), "PONG", "still connected");
}

#[test]
fn a_pipeline_gets_every_reply_in_order() {
    let server = Server::new();
    let mut con = server.client();
    // Big enough that the replies pass the early-flush threshold and the requests span
    // several reads.
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(format!("value:{i}"));
        pipe.cmd("GET").arg(format!("key:{i}"));
        pipe.cmd("INCR").arg("counter");
    }
    let replies: Vec<Value> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 15_000);
    for (i, triple) in replies.chunks(3).enumerate() {
        assert_eq!(triple[0], Value::Okay);
        assert_eq!(triple[1], Value::BulkString(format!("value:{i}").into_bytes()));
        assert_eq!(triple[2], Value::Int(i as i64 + 1));
    }
}

#[test]
fn a_big_value_round_trips() {
    let server = Server::new();
    let mut con = server.client();
    let value: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    redis::cmd("SET").arg("big").arg(&value).query::<()>(&mut con).unwrap();
    let back: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert!(back == value, "the 3 MB value came back changed");
    assert_eq!(query::<String>(&mut con, &["PING"]).unwrap(), "PONG");
}

/// Polls `check` until it returns true, failing after the guard. For waits on time itself
/// (a key's deadline), where there is no event to wait for.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {GUARD:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_key_with_a_deadline_goes_away() {
    let server = Server::new();
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["SET", "k", "v", "PX", "100"]).unwrap(), "OK");
    let ttl = query::<i64>(&mut con, &["PTTL", "k"]).unwrap();
    // -2 if the machine paused the test for 100 ms already.
    assert!(ttl == -2 || (1..=100).contains(&ttl), "PTTL {ttl}");
    eventually("GET k sees the key expire", || {
        query::<Option<String>>(&mut con, &["GET", "k"]).unwrap().is_none()
    });
    assert_eq!(query::<i64>(&mut con, &["TTL", "k"]).unwrap(), -2);
}

#[test]
fn keys_nobody_reads_are_deleted_by_the_expire_cycle() {
    let server = Server::new();
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(i).arg("v").arg("PX").arg(20).ignore();
    }
    pipe.cmd("SET").arg("forever").arg("v").ignore();
    pipe.query::<()>(&mut con).unwrap();
    // DBSIZE counts keys without looking at their deadlines (so does Redis's): only the
    // active expiry can bring it down.
    eventually("the expire cycle empties the db", || query::<i64>(&mut con, &["DBSIZE"]).unwrap() == 1);
}

#[test]
fn inline_commands_work_as_typed_into_nc() {
    let server = Server::new();
    let mut raw = server.raw();
    raw.write_all(b"PING\r\nset k \"a b\"\nGET k\r\n\r\nquit\r\n").unwrap();
    assert_eq!(read_to_eof(&mut raw), b"+PONG\r\n+OK\r\n$3\r\na b\r\n+OK\r\n");
}

#[test]
fn quit_answers_ok_then_closes() {
    let server = Server::new();
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["QUIT"]).unwrap(), "OK");
    let mut raw = server.raw();
    // Commands pipelined after QUIT are not run.
    raw.write_all(b"*1\r\n$4\r\nQUIT\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").unwrap();
    assert_eq!(read_to_eof(&mut raw), b"+OK\r\n");
    assert_eq!(query::<i64>(&mut server.client(), &["EXISTS", "k"]).unwrap(), 0);
}

#[test]
fn a_half_closed_client_gets_all_its_replies() {
    let server = Server::new();
    let mut raw = server.raw();
    raw.write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n").unwrap();
    raw.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut raw), b"+PONG\r\n$2\r\nhi\r\n");
}

#[test]
fn garbage_gets_a_protocol_error_and_a_clean_close_and_others_are_served() {
    let server = Server::new();
    let mut bystander = server.client();
    assert_eq!(query::<String>(&mut bystander, &["SET", "k", "v"]).unwrap(), "OK");
    let cases: [(&[u8], &[u8]); 5] = [
        (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n+PING\r\n", b"-ERR Protocol error: expected '$', got '+'\r\n"),
        (b"*1\r\n$4\r\nPINGPONG\r\n", b"-ERR Protocol error: expected '\\r\\n' after bulk data\r\n"),
        (b"set \"unclosed\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        // Replies to the commands before the garbage come first.
        (b"PING\r\n*2\r\n$-5\r\n", b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"),
    ];
    for (garbage, reply) in cases {
        let mut raw = server.raw();
        raw.write_all(garbage).unwrap();
        assert_eq!(read_to_eof(&mut raw), reply, "after {}", garbage.escape_ascii());
    }
    // Random bytes, a lot of them, written while the server may already have closed.
    let mut raw = server.raw();
    let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let _ = raw.write_all(&noise);
    let _ = raw.read_to_end(&mut Vec::new());
    assert_eq!(query::<String>(&mut bystander, &["GET", "k"]).unwrap(), "v", "the server still serves");
}

#[test]
fn a_client_still_sending_after_its_error_reads_the_reply_and_a_clean_end() {
    let server = Server::new();
    let mut raw = server.raw();
    // The server stops reading at the bad frame, with most of this still unread: closing
    // then would make the kernel answer with a reset instead of an end of stream.
    let mut input = b"*x\r\n".to_vec();
    input.resize(50_000, b'z');
    raw.write_all(&input).unwrap();
    assert_eq!(read_to_eof(&mut raw), b"-ERR Protocol error: invalid multibulk length\r\n");
}

/// A memory figure of this process (the server thread included) from /proc, in bytes:
/// `VmRSS` (resident now) or `VmHWM` (the peak so far).
fn memory(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

#[test]
fn huge_bulk_lengths_are_refused_and_never_allocated() {
    let server = Server::new();
    // Over the cap: refused from the header alone.
    let mut raw = server.raw();
    raw.write_all(b"*2\r\n$3\r\nGET\r\n$99999999999\r\n").unwrap();
    assert_eq!(read_to_eof(&mut raw), b"-ERR Protocol error: invalid bulk length\r\n");
    let mut raw = server.raw();
    raw.write_all(b"*99999999\r\n").unwrap();
    assert_eq!(read_to_eof(&mut raw), b"-ERR Protocol error: invalid multibulk length\r\n");

    // Under the cap (400 MB of the 512 MiB allowed) but only 1 KB sent: memory must follow
    // the bytes received, not the length declared.
    let before = memory("VmRSS:");
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut raw = server.raw();
        raw.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$400000000\r\n").unwrap();
        raw.write_all(&[b'x'; 1024]).unwrap();
        clients.push(raw);
    }
    // A full round trip on another connection: the server has read what the four sent.
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["PING"]).unwrap(), "PONG");
    let grown = memory("VmRSS:").saturating_sub(before);
    assert!(grown < 64 << 20, "4 declared 400 MB values grew the process by {} MB", grown >> 20);
}

#[test]
fn replies_to_a_long_pipeline_are_written_as_they_pile_up() {
    let server = Server::new();
    let mut con = server.client();
    let value = vec![b'v'; 200_000];
    redis::cmd("SET").arg("big").arg(&value).query::<()>(&mut con).unwrap();
    // 16 KiB of `GET big`: one read of the server's, ~700 replies of 200 KB. Held all at
    // once they would take 140 MB; written whenever 64 KiB are waiting, a few hundred KB.
    let get = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
    let count = 16 * 1024 / get.len();
    let before = memory("VmHWM:");
    let mut raw = server.raw();
    raw.write_all(&get.repeat(count)).unwrap();
    let reply_len = "$200000\r\n".len() + 200_000 + 2;
    let mut left = count * reply_len;
    let mut chunk = vec![0; 1 << 16];
    while left > 0 {
        let n = raw.read(&mut chunk[..left.min(1 << 16)]).unwrap();
        assert!(n > 0, "closed with {left} bytes of replies missing");
        left -= n;
    }
    let grown = memory("VmHWM:").saturating_sub(before);
    assert!(grown < 40 << 20, "the peak grew by {} MB", grown >> 20);
}

#[test]
fn the_bulk_cap_is_configurable() {
    let server = Server::start(Config { max_bulk_len: 8, ..Config::default() });
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["SET", "k", "12345678"]).unwrap(), "OK");
    let err = query::<Value>(&mut con, &["SET", "k", "123456789"]).expect_err("over the cap");
    assert!(err.to_string().contains("Protocol error: invalid bulk length"), "{err}");
    assert_eq!(query::<String>(&mut server.client(), &["GET", "k"]).unwrap(), "12345678");
}

#[test]
fn a_request_past_the_query_limit_closes_the_connection() {
    // The limit is at least one maximal bulk string plus headers: 10 KB + 256 KiB here.
    let server = Server::start(Config { max_bulk_len: 10_000, max_query_len: 0 });
    let mut raw = server.raw();
    let value = format!("$10000\r\n{}\r\n", "v".repeat(10_000));
    let mut frame = b"*1001\r\n$4\r\nMSET\r\n".to_vec();
    for _ in 0..40 {
        frame.extend_from_slice(value.as_bytes()); // 400 KB of a frame that never ends
    }
    let _ = raw.write_all(&frame); // may fail: the server stops reading at the limit
    let mut rest = Vec::new();
    match raw.read_to_end(&mut rest) {
        Ok(_) => assert_eq!(rest, b"", "closed without a reply, as Redis does"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert_eq!(query::<String>(&mut server.client(), &["PING"]).unwrap(), "PONG");
}

#[test]
fn an_overlong_inline_line_is_refused() {
    let server = Server::new();
    let mut raw = server.raw();
    let _ = raw.write_all(&vec![b'a'; 70 * 1024]);
    assert_eq!(read_to_eof(&mut raw), b"-ERR Protocol error: too big inline request\r\n");
}

#[test]
fn stopping_the_server_closes_its_connections_and_reports() {
    let server = Server::new();
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["PING"]).unwrap(), "PONG");
    let mut raw = server.raw();
    raw.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_n(&mut raw, 7), b"+PONG\r\n");
    let stats = server.stop();
    assert_eq!(stats.connections, 2);
    assert_eq!(read_to_eof(&mut raw), b"", "the open connection was closed");
}

#[test]
fn serve_returns_only_once_its_connections_are_closed() {
    mini::block_on(async {
        let listener = mini::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // A std client, non-blocking: its checks never yield to the runtime, so the last one
        // sees exactly what the server had done when `serve_with` returned.
        let client = Rc::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        client.set_nonblocking(true).unwrap();
        let (mut stop, mut stop_rx) = mini::net::UnixStream::pair().unwrap();
        let helper = client.clone();
        // Another task sends a PING, waits for the answer (so the connection is open and
        // served), then asks the server to stop.
        mini::spawn(async move {
            (&*helper).write_all(b"PING\r\n").unwrap();
            let mut reply = [0; 7];
            let deadline = Instant::now() + GUARD;
            while helper.peek(&mut reply).map_or(true, |n| n < 7) {
                assert!(Instant::now() < deadline, "no reply to PING");
                mini::yield_now().await; // let the server run
            }
            stop.write_all(b"x").await.unwrap();
        });
        let stop = async move {
            let _ = stop_rx.read(&mut [0]).await;
        };
        let stats = mini::time::timeout(GUARD, serve_with(listener, Config::default(), stop)).await.unwrap();
        assert_eq!(stats.connections, 1);
        let mut buf = [0; 16];
        assert_eq!((&*client).read(&mut buf).unwrap(), 7, "+PONG");
        // Loopback delivers the FIN within close(): were the socket still open, this
        // non-blocking read would fail with WouldBlock.
        assert_eq!((&*client).read(&mut buf).unwrap(), 0, "the connection is closed");
    });
}

/// Runs a command with `stdin` as input, killing it past the guard; returns its stdout
/// and its stderr.
fn run_tool_output(cmd: &mut Command, stdin: &[u8]) -> (String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let deadline = Instant::now() + GUARD;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {GUARD:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// [`run_tool_output`]'s stdout.
fn run_tool(cmd: &mut Command, stdin: &[u8]) -> String {
    run_tool_output(cmd, stdin).0
}

/// Whether `tool` can be run; says why the test is skipped when it cannot (CI machines may
/// lack the Redis tools).
fn installed(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        println!("skipped: {tool} is not installed (apt-get install redis-tools to run this test)");
    }
    found
}

#[test]
fn redis_cli_talks_to_it() {
    if !installed("redis-cli") {
        return;
    }
    let server = Server::new();
    let port = server.addr.port().to_string();
    let cli = |args: &[&str], stdin: &[u8]| {
        run_tool(Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port]).args(args), stdin)
    };
    assert_eq!(cli(&["ping"], b""), "PONG\n");
    assert_eq!(cli(&["set", "greeting", "hello world"], b""), "OK\n");
    assert_eq!(cli(&["get", "greeting"], b""), "hello world\n");
    assert_eq!(cli(&["incrby", "n", "5"], b""), "5\n");
    // --pipe: raw RESP on stdin, mass-insert style; redis-cli checks every reply.
    let mut input = Vec::new();
    for i in 0..1000 {
        mini_ecosystem::redis::resp::encode_command(&mut input, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    let report = cli(&["--pipe"], &input);
    assert!(report.contains("errors: 0, replies: 1000"), "{report}");
    assert_eq!(cli(&["get", "k999"], b""), "999\n");
    // Interactive-style input on stdin: one command per line.
    assert_eq!(cli(&[], b"ping\nget greeting\n"), "PONG\nhello world\n");
}

#[test]
fn redis_benchmark_runs_against_it() {
    if !installed("redis-benchmark") {
        return;
    }
    let server = Server::new();
    let port = server.addr.port().to_string();
    for pipeline in ["1", "16"] {
        let mut cmd = Command::new("redis-benchmark");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "ping,set,get",
            "-c",
            "5",
            "-n",
            "2000",
            "-P",
            pipeline,
        ]);
        // --csv: one line per test, and no progress lines with carriage returns.
        let (out, stderr) = run_tool_output(cmd.arg("--csv"), b"");
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
            assert!(out.contains(&format!("\"{test}\",")), "no {test} line in:\n{out}");
        }
        // It asks CONFIG GET save/appendonly first, and warns on stderr when that fails.
        assert!(!out.contains("ERR") && stderr.is_empty(), "{out}{stderr}");
    }
}
