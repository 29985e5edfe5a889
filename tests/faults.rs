//! Misuse and faults: each is a clear panic or error, never a hang or undefined behaviour.

use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::Duration;

use mini::net::{TcpListener, TcpStream};

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// A socket from one runtime awaited in another would wait on a reactor nobody turns.
#[test]
#[should_panic(expected = "used in a runtime other than the one it was created in")]
fn a_socket_awaited_in_another_runtime_panics_instead_of_hanging() {
    let first = mini::Runtime::new().unwrap();
    let (mut client, _server) = first.block_on(pair());
    let second = mini::Runtime::new().unwrap();
    second.block_on(async move {
        let mut buf = [0u8; 8];
        let _ = client.read(&mut buf).await; // nothing to read: it would park here
    });
}

#[test]
#[should_panic(expected = "awaited outside its mini runtime")]
fn a_socket_awaited_outside_any_runtime_panics() {
    let rt = mini::Runtime::new().unwrap();
    let (mut client, _server) = rt.block_on(pair());
    // A minimal foreign executor: poll once on this thread, with no mini runtime running.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut buf = [0u8; 8];
    let _ = std::pin::pin!(client.read(&mut buf)).poll(&mut cx);
}

#[test]
#[should_panic(expected = "polled in a runtime other than the one it was first polled in")]
fn a_timer_moved_to_another_runtime_panics() {
    let mut sleep = Box::pin(mini::time::sleep(Duration::from_secs(3600)));
    mini::block_on(poll_fn(|cx| {
        assert!(sleep.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    }));
    mini::block_on(sleep);
}
