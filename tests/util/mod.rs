//! Helpers shared by the integration tests (each test file does `mod util;`).
//!
//! Not every file uses every helper, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use mini::io::Async;
use mini::net::{TcpListener, TcpStream};

/// A connected pair over loopback: `(client, server)`. Must run inside a mini runtime.
pub(crate) async fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, peer) = listener.accept().await?;
    assert_eq!(peer, client.local_addr()?, "accept reported the wrong peer");
    Ok((client, server))
}

/// A waker that only counts its wakes, for futures polled by hand.
#[derive(Debug, Default)]
pub(crate) struct WakeCounter(AtomicUsize);

impl WakeCounter {
    /// How many times a waker built from this counter has been woken.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCounter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fresh counting waker and the counter behind it.
pub(crate) fn counting_waker() -> (Waker, Arc<WakeCounter>) {
    let counter = Arc::new(WakeCounter::default());
    (Waker::from(counter.clone()), counter)
}

/// Polls `fut` exactly once with `waker`, then drops it.
pub(crate) fn poll_once<F: Future>(fut: F, waker: &Waker) -> Poll<F::Output> {
    let fut = pin!(fut);
    fut.poll(&mut Context::from_waker(waker))
}

/// How long [`within_hang_guard`] lets a test body run before failing it as hung. Only a
/// hang gets near it (the bodies take milliseconds natively, and seconds under valgrind);
/// no assertion depends on how long anything took.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(30);

/// Runs `body` on its own thread and returns its result, or fails the test (naming the line
/// that called it) if it has not finished after [`HANG_GUARD`]: a lost wake-up then fails
/// the test instead of hanging CI. A panic in `body` is passed through unchanged. On a
/// timeout the body's thread is left behind, blocked; the test process ends it on exit.
#[track_caller]
pub(crate) fn within_hang_guard<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let caller = std::panic::Location::caller();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the body guarded at {caller} hung: still running after {HANG_GUARD:?} (a lost wake-up?)")
        }
        // The body panicked (dropping the sender): re-raise its panic here.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the body returned without sending its result"),
        },
    }
}

/// Yields to the runtime until `handle` has finished, at most `max_yields` times, then
/// awaits it. Turns a task that would wait forever (a lost wake-up) into a test failure
/// instead of a hang; the failure names the line that called `join_within`. Only for tasks
/// whose every wake-up is already due, e.g. data already queued in a Unix socket, which the
/// kernel delivers synchronously.
#[track_caller]
pub(crate) fn join_within<T>(handle: mini::JoinHandle<T>, max_yields: usize) -> impl Future<Output = T> {
    let caller = std::panic::Location::caller();
    async move {
        for _ in 0..max_yields {
            if handle.is_finished() {
                break;
            }
            mini::yield_now().await;
        }
        assert!(
            handle.is_finished(),
            "task joined at {caller}: still pending after {max_yields} yields, a wake-up was lost"
        );
        handle.await.unwrap_or_else(|e| panic!("task joined at {caller}: {e}"))
    }
}

/// Returns once the runtime has completed a reactor turn (an `epoll_wait` and the wakes it
/// caused) that began after this call: it waits on a Unix socket that it makes readable
/// itself, after a failed read has cleared that socket's optimistic readiness. Any event
/// queued before the call has then been dispatched. (`yield_now` does not promise this: the
/// executor may poll a yielding task again before it next looks at the reactor.)
pub(crate) async fn reactor_turn() {
    let (tx, rx) = UnixStream::pair().expect("socketpair");
    let rx = Async::new(rx).expect("register");
    let (waker, _) = counting_waker();
    let mut buf = [0; 1];
    let read = |s: &UnixStream, buf: &mut [u8]| (&*s).read(buf);
    assert!(poll_once(rx.read_with(|s| read(s, &mut buf)), &waker).is_pending());
    (&tx).write_all(b"!").expect("write");
    rx.read_with(|s| read(s, &mut buf)).await.expect("read");
}

/// Sets `SO_LINGER` to `{on, 0 s}`, so that closing the socket sends a reset (RST) instead
/// of a FIN and discards unsent data.
pub(crate) fn set_linger_zero(socket: &impl AsFd) -> io::Result<()> {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the fd is open for the call (borrowed from `socket`), and the option value
    // points at a live `linger` whose exact size is passed.
    let res = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if res == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A loopback TCP port that refuses connections for as long as the returned socket is open:
/// the socket is bound but never `listen`s, so it keeps the port reserved (no other socket
/// can bind it meanwhile, unlike a port that was bound and closed) and the kernel answers a
/// connect to it with a reset.
pub(crate) fn refusing_tcp_port() -> io::Result<(std::os::fd::OwnedFd, std::net::SocketAddr)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new fd that we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the fd is open; `addr` is a live `sockaddr_in` whose exact size is passed.
    if unsafe { libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open; `addr` and `len` are live and writable, `len` holds its size.
    if unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let port = u16::from_be(addr.sin_port);
    Ok((socket, std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))))
}

/// Whether the open file description behind fd number `fd` has `O_NONBLOCK` set. A raw
/// number, because `TcpListener` does not expose its fd; the caller keeps the fd open.
pub(crate) fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL reads the file status flags; it takes no pointer and touches no memory,
    // so even a wrong fd number can only give EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// A deterministic byte pattern: `len` bytes, distinct per `seed`, not periodic in powers of
/// two (so a chunk copied to the wrong offset does not compare equal).
pub(crate) fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// The path of example `name`, after building every example once per test process
/// (`cargo build` is a no-op when they are up to date; several tests building at once would
/// only queue on cargo's lock).
pub(crate) fn example_binary(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--workspace", "--examples"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the examples failed");
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("debug/examples").join(name)
}

/// Runs `command` to completion with its stdout and stderr captured, like
/// `Command::output`, but fails the test (killing the child) if it has not exited within
/// `guard`: a child that hangs, say a server that started when it should have refused to,
/// must not hang the test.
pub(crate) fn output_within(
    command: &mut std::process::Command,
    guard: std::time::Duration,
) -> std::process::Output {
    use std::process::Stdio;
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the child");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    // Collect the output on another thread, so that this one can give up on time.
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(guard) {
        Ok(output) => output.expect("collect the child's output"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid has no memory effects. The child is
            // not reaped before the kill, so the pid still names it.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the child did not exit within {guard:?}: {command:?}");
        }
    }
}

/// Each side's writer sends `len` bytes of its own pattern and is dropped (which must end
/// its direction of the stream), while each side's reader reads to the end; every task is
/// spawned before any runs, so both sides write before either reads. Fails if a direction
/// loses, damages or adds bytes. (Shared by the TCP and Unix tests.)
pub(crate) async fn exchange_both_ways<R, W>(a: (R, W), b: (R, W), len: usize) -> io::Result<()>
where
    R: mini::io::AsyncRead + Unpin + 'static,
    W: mini::io::AsyncWrite + Unpin + 'static,
{
    let sent = [pattern(0x11, len), pattern(0x22, len)];
    let ((a_rd, a_wr), (b_rd, b_wr)) = (a, b);
    let writers = [(a_wr, sent[0].clone()), (b_wr, sent[1].clone())].map(|(mut half, data)| {
        mini::spawn(async move {
            mini::io::AsyncWriteExt::write_all(&mut half, &data).await?;
            drop(half);
            Ok::<(), io::Error>(())
        })
    });
    let readers = [b_rd, a_rd].map(|mut half| {
        mini::spawn(async move {
            let mut got = Vec::new();
            mini::io::AsyncReadExt::read_to_end(&mut half, &mut got).await.map(|_| got)
        })
    });
    for writer in writers {
        writer.await??;
    }
    for (reader, sent) in readers.into_iter().zip(&sent) {
        let got = reader.await??;
        assert_eq!(got.len(), len);
        assert!(got == *sent, "a direction carried corrupted bytes");
    }
    Ok(())
}
