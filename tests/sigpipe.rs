//! Writing to a reset peer must fail with an error, never kill the process with SIGPIPE.
//!
//! Rust programs start with SIGPIPE ignored, which would hide a `send` without
//! `MSG_NOSIGNAL`. This test restores the default action (terminate) first. That is
//! process-wide state, so the test lives alone in its own test binary: no other test can
//! be running a write of its own (or a harness print to a closed pipe) meanwhile.

mod util;

use std::io;

use mini::io::AsyncWriteExt;

use util::{set_linger_zero, tcp_pair};

/// With SIGPIPE at its default action, writes to a reset peer, through every write path
/// (inherent `write`, `AsyncWriteExt::write_all`, an owned write half), return `ECONNRESET`
/// once and `EPIPE` after that. A single `send` without `MSG_NOSIGNAL` would kill the test
/// binary here (the `EPIPE` case is the one that raises the signal).
#[mini::test]
async fn writes_to_a_reset_peer_fail_without_sigpipe() -> io::Result<()> {
    // SAFETY: `signal` with SIG_DFL installs no handler code; the test binary holds only
    // this test, so no other thread depends on SIGPIPE being ignored.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);

    let (client, mut server) = tcp_pair().await?;
    set_linger_zero(&client)?;
    drop(client);
    server.peer_closed().await; // the reset has arrived

    let err = server.write(b"first").await.expect_err("the peer reset the connection");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    let err = server.write(b"second").await.expect_err("the connection is gone");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    let err = AsyncWriteExt::write_all(&mut server, b"third").await.expect_err("still gone");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    let (_read, mut write) = server.into_split();
    let err = write.write_all(b"fourth").await.expect_err("still gone");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    Ok(())
}
