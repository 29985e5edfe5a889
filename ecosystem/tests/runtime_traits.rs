//! mini driven through the ecosystem's traits alone: futures-util's `SpawnExt` and
//! `LocalSpawnExt` over `futures-task`'s spawners, and `StreamExt` over mini's streams
//! (signals, accepted connections). Each wait is bounded by a hang guard.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_task::{LocalSpawn, Spawn};
use futures_util::task::{LocalSpawnExt, SpawnExt};
use futures_util::StreamExt;
use mini::net::{TcpListener, UnixListener};
use mini::signal::unix::{signal, SignalKind};

const HANG_GUARD: Duration = Duration::from_secs(30);

/// Runs `body` on its own thread; fails instead of hanging if it does not finish in time.
fn within_hang_guard<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {HANG_GUARD:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!(),
        },
    }
}

/// Library code that knows nothing of mini: it spawns through any `Spawn`.
async fn sum_of_squares(spawner: &impl Spawn, n: u64) -> u64 {
    let handles: Vec<_> =
        (1..=n).map(|i| spawner.spawn_with_handle(async move { i * i }).expect("spawn")).collect();
    futures_util::future::join_all(handles).await.into_iter().sum()
}

/// Library code that spawns `!Send` futures through any `LocalSpawn`.
async fn collect_locally(spawner: &impl LocalSpawn, n: usize) -> Vec<usize> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let seen = seen.clone();
            spawner.spawn_local_with_handle(async move { seen.borrow_mut().push(i) }).expect("spawn")
        })
        .collect();
    futures_util::future::join_all(handles).await;
    let seen = seen.borrow().clone();
    seen
}

/// Another thread runs the library code on a runtime of its own, spawning onto `rt`, whose
/// loop awaits a task that the other thread spawns last.
#[test]
fn futures_util_spawns_through_a_handle_from_another_thread() {
    within_hang_guard(|| {
        let rt = mini::Runtime::new().unwrap();
        let handle = rt.handle();
        let (tx, rx) = mpsc::channel();
        let other = thread::spawn(move || {
            let sum = mini::block_on(sum_of_squares(&handle, 10));
            tx.send(handle.spawn(async {})).unwrap(); // lets `rt`'s block_on below return
            sum
        });
        // `rt` must run to serve the other thread's spawns: run it until the last one arrives.
        rt.block_on(async { mini::spawn_blocking(move || rx.recv().unwrap()).await.unwrap().await.unwrap() });
        assert_eq!(other.join().unwrap(), 385);
    });
}

#[test]
fn futures_util_spawns_local_futures_through_a_local_spawner() {
    within_hang_guard(|| {
        let seen = mini::block_on(async {
            let spawner = mini::task::LocalSpawner::current();
            collect_locally(&spawner, 5).await
        });
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    });
}

#[test]
fn a_signal_is_a_stream() {
    within_hang_guard(|| {
        mini::block_on(async {
            let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
            for _ in 0..2 {
                // SAFETY: raise(3) with a valid signal number; mini's handler is installed.
                assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
                assert_eq!(usr1.next().await, Some(()));
            }
        });
    });
}

#[test]
fn a_tcp_listener_streams_its_connections() {
    within_hang_guard(|| {
        mini::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let clients = thread::spawn(move || {
                (0..3u8)
                    .map(|i| {
                        let mut c = std::net::TcpStream::connect(addr).unwrap();
                        c.set_read_timeout(Some(HANG_GUARD)).unwrap();
                        c.write_all(&[i]).unwrap();
                        let mut back = [0];
                        c.read_exact(&mut back).unwrap();
                        back[0]
                    })
                    .collect::<Vec<u8>>()
            });
            listener
                .incoming()
                .take(3)
                .for_each_concurrent(None, |stream| async move {
                    let mut stream = stream.unwrap();
                    let (mut reader, mut writer) = stream.split();
                    mini::io::copy(&mut reader, &mut writer).await.unwrap();
                })
                .await;
            assert_eq!(clients.join().unwrap(), [0, 1, 2]);
        });
    });
}

#[test]
fn a_unix_listener_streams_its_connections() {
    within_hang_guard(|| {
        mini::block_on(async {
            let path = std::env::temp_dir().join(format!("mini-incoming-{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).unwrap();
            let client_path = path.clone();
            let client = thread::spawn(move || {
                let mut c = std::os::unix::net::UnixStream::connect(client_path).unwrap();
                c.set_read_timeout(Some(HANG_GUARD)).unwrap();
                c.write_all(b"hi").unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = Vec::new();
                c.read_to_end(&mut back).unwrap();
                back
            });
            let mut incoming = listener.incoming();
            let mut stream = incoming.next().await.unwrap().unwrap();
            let (mut reader, mut writer) = stream.split();
            mini::io::copy(&mut reader, &mut writer).await.unwrap();
            drop(stream);
            assert_eq!(client.join().unwrap(), b"hi");
            std::fs::remove_file(&path).unwrap();
        });
    });
}
