//! The completion path's limits and lifetimes, on a real ring (skipped, saying so, where the
//! kernel refuses io_uring).

use std::future::poll_fn;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use crate::io::Async;
use crate::{Builder, Driver, Runtime};

use super::stream::READ_AHEAD;

/// A runtime on io_uring, or `None` (with a line saying why the test is skipped).
fn uring_runtime() -> Option<Runtime> {
    let rt = Builder::new().driver(Driver::IoUring).build().expect("a runtime");
    if rt.driver() != Driver::IoUring {
        eprintln!("skipped: io_uring is refused here (see the line above)");
        return None;
    }
    Some(rt)
}

/// A connected pair: ours on the completion path, the peer a plain std socket.
fn pair() -> (Async<TcpStream>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    (Async::new_tcp(ours).unwrap(), peer)
}

async fn read_some(io: &Async<TcpStream>, buf: &mut [u8]) -> usize {
    poll_fn(|cx| io.poll_read_tcp(cx, buf)).await.unwrap()
}

async fn write_all(io: &Async<TcpStream>, mut buf: &[u8]) {
    while !buf.is_empty() {
        let n = poll_fn(|cx| io.poll_write_stream(cx, buf)).await.unwrap();
        buf = &buf[n..];
    }
}

/// Returns after a loop turn that began after the call (an enter that submitted everything
/// queued before it): waits for a readiness it causes itself.
async fn reactor_turn() {
    let (tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
    let rx = Async::new(rx).unwrap();
    rx.clear_ready(crate::io::Direction::Read); // registered optimistically ready
    (&tx).write_all(b"!").unwrap();
    crate::time::timeout(Duration::from_secs(20), rx.readable()).await.expect("a turn within 20 s").unwrap();
}

/// Turns the loop until `done` says so, within a guard of 20 s.
async fn turn_until(mut done: impl FnMut() -> bool) {
    let guard = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < guard, "gave up after 20 s");
        crate::yield_now().await;
    }
}

/// Read-ahead: a stream nobody reads stops receiving once `READ_AHEAD` bytes wait, so the
/// peer's writes block (TCP's window pushes back), as on epoll. Without the cap the stream
/// would take every buffer of the ring (4 MiB). Nothing is lost: reading it all afterwards
/// gives every byte, in order.
#[test]
fn a_stream_nobody_reads_stops_receiving_at_the_read_ahead_cap() {
    let Some(rt) = uring_runtime() else { return };
    rt.block_on(async {
        let (ours, mut peer) = pair();
        let writer = std::thread::spawn(move || {
            // Writes until the kernel's buffers are full: a write that makes no progress for
            // 300 ms means the receiver stopped taking data.
            peer.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
            let chunk: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
            let mut total = 0usize;
            loop {
                match peer.write(&chunk[total % chunk.len()..]) {
                    Ok(n) => total += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
                assert!(total < 64 << 20, "the receiver took 64 MiB without being read");
            }
            (total, peer)
        });
        turn_until(|| writer.is_finished()).await;
        let (total, peer) = writer.join().unwrap();
        reactor_turn().await; // the cancel's completion is in
        assert!(!ours.receiving(), "stopped at the cap");
        let held = ours.unread();
        assert!(held >= READ_AHEAD, "the cap was reached ({held} bytes held)");
        // The cancel lands in the next enter; completions the kernel posted before it (one
        // enter's worth: a multishot receive reads up to 32 buffers per wake-up) still add
        // to the queue. Without the cap the stream takes the whole ring (4 MiB).
        assert!(held <= READ_AHEAD + 1024 * 1024, "{held} bytes held by a stream nobody reads");
        // Reading it down to half the cap starts the receive again at once, not only when the
        // queue is empty: the peer's next bytes are on their way while the rest is read.
        let mut got = 0usize;
        let mut buf = vec![0; 4096];
        while ours.unread() >= READ_AHEAD / 2 {
            let n = read_some(&ours, &mut buf).await;
            check_pattern(&buf[..n], got);
            got += n;
        }
        assert!(ours.unread() > 0 && ours.receiving(), "the receive starts again at half the cap");
        drop(peer); // end of stream after the data
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = read_some(&ours, &mut buf).await;
            if n == 0 {
                break;
            }
            check_pattern(&buf[..n], got);
            got += n;
        }
        assert_eq!(got, total, "every byte written arrived");
    });
}

/// The writer's pattern: byte `at + i` of the stream.
fn check_pattern(bytes: &[u8], at: usize) {
    for (i, &b) in bytes.iter().enumerate() {
        assert_eq!(b, ((at + i) % (16 * 1024) % 251) as u8, "byte {} is wrong", at + i);
    }
}

/// Out of buffers: more streams hold unread data than the ring has buffers, so receives end
/// with `ENOBUFS`. Reading the streams one by one must still get every byte: a starved
/// stream receives into a buffer of its own rather than wait for ring buffers that streams
/// nobody reads yet hold (with waiting, the second stream's reader hung).
#[test]
fn streams_starved_of_buffers_resume_when_buffers_come_back() {
    let Some(rt) = uring_runtime() else { return };
    rt.block_on(async {
        const STREAMS: usize = 96; // x 64 KiB read-ahead = 6 MiB > the ring's 4 MiB
        const EACH: usize = 80 * 1024;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut pairs = Vec::new();
        for i in 0..STREAMS {
            let client = Async::new_tcp(TcpStream::connect(addr).unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            let server = Rc::new(Async::new_tcp(server).unwrap());
            let data: Vec<u8> = (0..EACH).map(|j| (i + j) as u8).collect();
            let writer = crate::spawn(async move {
                write_all(&client, &data).await;
                poll_fn(|cx| client.poll_flush_stream(cx)).await.unwrap();
                client // kept open: end of stream is not what the readers wait for
            });
            pairs.push((server, writer));
        }
        let uring = crate::context::with_current(|core| core.reactor.clone()).unwrap();
        let starved = || uring.uring().unwrap().starvations.get();
        turn_until(|| starved() > 0).await;
        for (i, (server, _writer)) in pairs.iter().enumerate() {
            let mut got = vec![0; EACH];
            let mut at = 0;
            while at < EACH {
                at += read_some(server, &mut got[at..]).await;
            }
            assert!(got.iter().enumerate().all(|(j, &b)| b == (i + j) as u8), "stream {i}'s bytes");
        }
    });
}

/// A stream dropped with bytes still queued to send: its send buffer stays alive and its
/// socket open until the kernel has sent them; the peer reads them all, then end of stream.
/// (Without the duplicate fd kept at close, the peer got less.) All on the loop's thread, so
/// that it runs under valgrind too.
#[test]
fn a_stream_dropped_with_sends_in_flight_still_delivers_them() {
    let Some(rt) = uring_runtime() else { return };
    rt.block_on(async {
        let (ours, peer) = pair();
        let data: Vec<u8> = (0..200 * 1024).map(|j| (j % 253) as u8).collect();
        // More than the socket buffers take at once while the peer does not read: some is
        // still queued, or in flight, when the stream is dropped.
        for chunk in data.chunks(60 * 1024) {
            write_all(&ours, chunk).await;
        }
        drop(ours);
        let peer = Async::new_tcp(peer).unwrap();
        let mut all = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let read = crate::time::timeout(Duration::from_secs(20), read_some(&peer, &mut buf));
            let n = read.await.expect("the rest never came, nor the end");
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert_eq!(all.len(), 200 * 1024);
        assert!(all.iter().enumerate().all(|(j, &b)| b == (j % 253) as u8));
    });
}

/// The accept-ahead limit: a listener stops accepting at `ACCEPT_AHEAD` queued connections
/// and must start again once they are taken, even when they were all taken (and the next
/// `accept` parked) before the stop's own completion came back. That order stalled the
/// listener for good before the cancel's completion learned to re-arm it.
#[test]
fn a_listener_stopped_at_its_accept_ahead_limit_accepts_again() {
    use super::stream::ACCEPT_AHEAD;
    let Some(rt) = uring_runtime() else { return };
    rt.block_on(async {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = Async::new_tcp_listener(std_listener).unwrap();
        let accept = || poll_fn(|cx| listener.poll_accept_completion(cx).expect("on io_uring"));
        let mut clients: Vec<_> = (0..ACCEPT_AHEAD).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let guard = Duration::from_secs(20);
        let mut accepted = Vec::new();
        for _ in 0..ACCEPT_AHEAD {
            accepted.push(crate::time::timeout(guard, accept()).await.expect("accepted").unwrap());
        }
        // More clients after the queue filled and was taken: the accept must be armed again.
        clients.extend((0..8).map(|_| TcpStream::connect(addr).unwrap()));
        for i in 0..8 {
            let got = crate::time::timeout(guard, accept()).await;
            accepted
                .push(got.unwrap_or_else(|_| panic!("connection {i} after the limit never came")).unwrap());
        }
        assert_eq!(accepted.len(), ACCEPT_AHEAD + 8);
    });
}

/// Cancellation: streams dropped while their receive is armed and their queues hold ring
/// buffers give every buffer back, and the ring serves the next stream in full. (Without
/// the give-back in `Shared::close`, 20 dropped streams would keep about 320 of the ring's
/// 1,024 buffers for good.)
#[test]
fn dropped_streams_give_their_receive_buffers_back() {
    let Some(rt) = uring_runtime() else { return };
    rt.block_on(async {
        let uring = crate::context::with_current(|core| core.reactor.clone()).unwrap();
        let lent = || uring.uring().unwrap().lent.get();
        let mut peers = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..20 {
            let (stream, mut peer) = pair();
            peer.write_all(&[7; 60 * 1024]).unwrap(); // fits in the socket buffers: no block
            ours.push(stream);
            peers.push(peer);
        }
        turn_until(|| lent() >= 20 * 14).await; // each holds most of its 60 KiB
        drop(ours); // receives armed, queues full
        turn_until(|| lent() == 0).await;
        // The whole ring is the next stream's: 1 MiB arrives with nobody else holding any.
        // (The writer is a task of this runtime, not a thread: under valgrind a thread cannot
        // run while this one waits in io_uring_enter.)
        let (stream, peer) = pair();
        let peer = Async::new_tcp(peer).unwrap();
        let writer = crate::spawn(async move { write_all(&peer, &vec![9; 1 << 20]).await });
        let mut got = 0;
        let mut buf = vec![0; 64 * 1024];
        while got < 1 << 20 {
            got += read_some(&stream, &mut buf).await;
        }
        writer.await.unwrap();
        assert_eq!(lent(), 0, "every buffer read was given back");
    });
}

/// Cancellation: a listener dropped while its multishot accept waits stops listening at
/// once. The request holds the socket's file, so without the cancel in `Acceptor::close` the
/// port would go on accepting (and closing) connections instead of refusing them.
#[test]
fn a_listener_dropped_while_accepting_stops_listening() {
    let Some(rt) = uring_runtime() else { return };
    rt.block_on(async {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = Rc::new(Async::new_tcp_listener(std_listener).unwrap());
        let waiting = listener.clone();
        let accept = crate::spawn(async move {
            poll_fn(|cx| waiting.poll_accept_completion(cx).expect("on io_uring")).await.map(drop)
        });
        reactor_turn().await; // the accept is submitted, armed in the kernel, and parked
        assert!(!accept.is_finished());
        accept.abort();
        let _ = accept.await;
        drop(listener);
        reactor_turn().await;
        let err = TcpStream::connect(addr).expect_err("nothing listens there any more");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    });
}

/// Out of buffers, then end of stream: streams whose peers wrote and closed while the ring was
/// held by other streams must still read every byte and then the end, which for the last of
/// them arrives through a receive into the stream's own buffer (`on_recv_own`'s zero).
#[test]
fn starved_streams_still_see_the_end_of_stream() {
    let Some(rt) = uring_runtime() else { return };
    rt.block_on(async {
        const STREAMS: usize = 96;
        const EACH: usize = 80 * 1024;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut servers = Vec::new();
        let mut writers = Vec::new();
        for i in 0..STREAMS {
            let client = Async::new_tcp(TcpStream::connect(addr).unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            servers.push(Async::new_tcp(server).unwrap());
            let data: Vec<u8> = (0..EACH).map(|j| (i + j) as u8).collect();
            writers.push(crate::spawn(async move {
                write_all(&client, &data).await;
                poll_fn(|cx| client.poll_flush_stream(cx)).await.unwrap();
                drop(client); // the end of stream, once the bytes are sent
            }));
        }
        let uring = crate::context::with_current(|core| core.reactor.clone()).unwrap();
        turn_until(|| uring.uring().unwrap().starvations.get() > 0).await;
        for (i, server) in servers.iter().enumerate() {
            let mut got = Vec::with_capacity(EACH);
            let mut buf = vec![0; 16 * 1024];
            loop {
                let n = crate::time::timeout(Duration::from_secs(20), read_some(server, &mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("stream {i} never ended"));
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got.len(), EACH, "stream {i}'s length");
            assert!(got.iter().enumerate().all(|(j, &b)| b == (i + j) as u8), "stream {i}'s bytes");
        }
        for writer in writers {
            writer.await.unwrap();
        }
    });
}
