//! Signals, raised inside this test process. A file of its own: signal dispositions are
//! process-wide. Each test uses a different signal so that the tests can run in parallel:
//! SIGINT, SIGUSR1, SIGTERM, SIGUSR2, SIGHUP, SIGWINCH, SIGALRM, SIGURG; a test that may end
//! its process runs in a child process (`in_child`).
//!
//! If mini's handler were missing, SIGINT or SIGTERM would end the test process, so the
//! tests fail loudly rather than pass by accident.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::mem;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use mini::signal::unix::{signal, Signal, SignalKind};

/// How long any wait in these tests may take before the test fails instead of hanging.
const GUARD: Duration = Duration::from_secs(10);

/// Raises `signum` in this thread. The kernel runs the handler before `raise` returns, so
/// its effects (counts, chained handlers) are visible on the next line.
fn raise(signum: i32) {
    // SAFETY: raise(3) with a valid signal number has no memory effects of its own.
    assert_eq!(unsafe { libc::raise(signum) }, 0);
}

/// Polls `sig` once: `Ready` if an arrival is already there.
async fn poll_once(sig: &mut Signal) -> Poll<Option<()>> {
    poll_fn(|cx| Poll::Ready(sig.poll_recv(cx))).await
}

/// The next arrival, or a panic after [`GUARD`].
async fn recv_guarded(sig: &mut Signal) -> Option<()> {
    mini::time::timeout(GUARD, sig.recv()).await.expect("no signal arrived")
}

/// Set in a child process started by [`in_child`].
const CHILD_ENV: &str = "MINI_SIGNAL_TEST_CHILD";

/// Runs `body` in a child process (this test binary again, filtered to the test `name`), so
/// that a signal which ends the process fails this one test instead of killing the whole
/// binary. In the child, runs `body` itself.
fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        return body();
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(output) = rx.recv_timeout(GUARD * 2) else {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the child process running {name} hung");
    };
    let output = output.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed in its child process ({}):\n{stdout}\n{stderr}",
        output.status,
    );
    assert!(stdout.contains("1 passed"), "the child ran no test called {name}:\n{stdout}");
}

/// Sends `signum` to this process from another thread, as `kill` from a shell would.
fn raise_from_another_thread(signum: i32) {
    std::thread::spawn(move || {
        // SAFETY: kill(2) with our own pid and a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(libc::getpid(), signum) };
        assert_eq!(rc, 0);
    })
    .join()
    .unwrap();
}

/// The handler currently installed for `signum` (`SIG_DFL`, `SIG_IGN` or a function).
fn current_handler(signum: i32) -> libc::sighandler_t {
    // SAFETY: all-zero is a valid sigaction; a null `act` only queries the disposition.
    unsafe {
        let mut old: libc::sigaction = mem::zeroed();
        assert_eq!(libc::sigaction(signum, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

#[test]
fn ctrl_c_resolves_when_sigint_arrives() {
    mini::block_on(async {
        let waiter = mini::spawn(mini::signal::ctrl_c());
        // Let the task register its listener; then the loop parks in epoll_wait.
        mini::yield_now().await;
        raise_from_another_thread(libc::SIGINT);
        waiter.await.unwrap().unwrap();
    });
}

#[test]
fn every_listener_sees_each_signal_and_recv_can_repeat() {
    mini::block_on(async {
        let mut a = signal(SignalKind::user_defined1()).unwrap();
        let mut b = signal(SignalKind::user_defined1()).unwrap();
        for _ in 0..3 {
            raise_from_another_thread(libc::SIGUSR1);
            assert_eq!(a.recv().await, Some(()));
            assert_eq!(b.recv().await, Some(()));
        }
    });
}

#[test]
fn sigterm_wakes_a_parked_listener_in_another_task() {
    mini::block_on(async {
        let mut term = signal(SignalKind::terminate()).unwrap();
        let waiter = mini::spawn(async move { term.recv().await });
        mini::yield_now().await;
        raise_from_another_thread(libc::SIGTERM);
        assert_eq!(waiter.await.unwrap(), Some(()));
    });
}

#[test]
fn the_handler_stays_after_the_last_listener() {
    assert_eq!(current_handler(libc::SIGUSR2), libc::SIG_DFL);
    mini::block_on(async {
        let first = signal(SignalKind::user_defined2()).unwrap();
        let second = signal(SignalKind::user_defined2()).unwrap();
        let mini_handler = current_handler(libc::SIGUSR2);
        assert_ne!(mini_handler, libc::SIG_DFL);
        drop(first);
        drop(second);
        assert_eq!(current_handler(libc::SIGUSR2), mini_handler, "the handler is never removed");
    });
}

/// The window the handler's staying closes: between one listener's drop and the next one's
/// creation (a `select!` loop that re-creates `ctrl_c()`), a Ctrl-C must not end the process.
#[test]
fn sigint_with_no_listener_is_dropped_and_a_later_listener_still_works() {
    in_child("sigint_with_no_listener_is_dropped_and_a_later_listener_still_works", || {
        mini::block_on(async {
            drop(signal(SignalKind::interrupt()).unwrap());
            // `ctrl_c()` makes its listener when first polled; drop it while it waits.
            let mut ctrl_c = Box::pin(mini::signal::ctrl_c());
            assert!(poll_fn(|cx| Poll::Ready(ctrl_c.as_mut().poll(cx))).await.is_pending());
            drop(ctrl_c);

            raise(libc::SIGINT); // no listener: dropped (with the default action: process ends)

            let mut int = signal(SignalKind::interrupt()).unwrap();
            assert_eq!(poll_once(&mut int).await, Poll::Pending, "an arrival from before it existed");
            raise(libc::SIGINT);
            assert_eq!(recv_guarded(&mut int).await, Some(()));
            let waiter = mini::spawn(mini::signal::ctrl_c());
            mini::yield_now().await; // let it make its listener
            raise(libc::SIGINT);
            mini::time::timeout(GUARD, waiter).await.expect("ctrl_c never resolved").unwrap().unwrap();
        });
    });
}

static PLAIN_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_plain(_signum: libc::c_int) {
    PLAIN_CALLS.fetch_add(1, Ordering::SeqCst);
}

static INFO_CALLS: AtomicUsize = AtomicUsize::new(0);
static INFO_SIGNO: AtomicI32 = AtomicI32::new(0);

extern "C" fn count_with_info(_signum: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler (and mini's handler
    // passes it on unchanged).
    INFO_SIGNO.store(unsafe { (*info).si_signo }, Ordering::SeqCst);
    INFO_CALLS.fetch_add(1, Ordering::SeqCst);
}

/// Installs `handler` for `signum` with `sigaction`, as another library would.
fn install_foreign(signum: i32, handler: libc::sighandler_t, flags: libc::c_int) {
    // SAFETY: all-zero is a valid sigaction; the mask is initialised before use, and `handler`
    // has the signature that `flags` (SA_SIGINFO or not) promises.
    unsafe {
        let mut act: libc::sigaction = mem::zeroed();
        act.sa_sigaction = handler;
        act.sa_flags = flags;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(signum, &act, std::ptr::null_mut()), 0);
    }
}

#[test]
fn a_plain_handler_found_at_install_is_chained() {
    install_foreign(libc::SIGWINCH, count_plain as extern "C" fn(libc::c_int) as libc::sighandler_t, 0);
    mini::block_on(async {
        let mut winch = signal(SignalKind::window_change()).unwrap();
        raise(libc::SIGWINCH);
        assert_eq!(PLAIN_CALLS.load(Ordering::SeqCst), 1, "the earlier handler was called");
        assert_eq!(recv_guarded(&mut winch).await, Some(()), "and mini's listener heard it");
        drop(winch);
        raise(libc::SIGWINCH);
        assert_eq!(PLAIN_CALLS.load(Ordering::SeqCst), 2, "chained with no listener too");
    });
}

#[test]
fn an_sa_siginfo_handler_found_at_install_is_chained_with_its_siginfo() {
    type InfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
    install_foreign(libc::SIGALRM, count_with_info as InfoHandler as libc::sighandler_t, libc::SA_SIGINFO);
    mini::block_on(async {
        let mut alrm = signal(SignalKind::from_raw(libc::SIGALRM)).unwrap();
        raise(libc::SIGALRM);
        assert_eq!(INFO_CALLS.load(Ordering::SeqCst), 1, "the earlier handler was called");
        assert_eq!(INFO_SIGNO.load(Ordering::SeqCst), libc::SIGALRM, "with the kernel's siginfo_t");
        assert_eq!(recv_guarded(&mut alrm).await, Some(()), "and mini's listener heard it");
    });
}

/// Each `raise` leaves an arrival ready before `recv` looks, so `recv` never waits: only the
/// co-operative budget makes this loop yield to the other ready task.
#[test]
fn receiving_ready_arrivals_spends_the_budget() {
    mini::block_on(async {
        let mut urg = signal(SignalKind::from_raw(libc::SIGURG)).unwrap();
        let other_ran = Rc::new(Cell::new(false));
        let flag = Rc::clone(&other_ran);
        let _other = mini::spawn(async move { flag.set(true) });
        let mut received = 0;
        while !other_ran.get() {
            assert!(received < 10_000, "the other ready task never ran");
            raise(libc::SIGURG);
            assert_eq!(recv_guarded(&mut urg).await, Some(()));
            received += 1;
        }
        // 128 (the budget) in the first poll; the 129th waits for the other task to run.
        assert!(received <= 129, "{received} arrivals received before the other task ran");
    });
}

#[test]
fn signals_that_cannot_be_handled_are_rejected() {
    mini::block_on(async {
        for signum in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 65, -1] {
            let err = signal(SignalKind::from_raw(signum)).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "signal {signum}");
        }
    });
}

#[test]
fn listeners_in_two_runtimes_on_two_threads_both_hear_sighup() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        mini::block_on(async move {
            let mut hup = signal(SignalKind::hangup()).unwrap();
            ready_tx.send(()).unwrap();
            hup.recv().await
        })
    });
    mini::block_on(async {
        let mut hup = signal(SignalKind::hangup()).unwrap();
        ready_rx.recv().unwrap();
        raise_from_another_thread(libc::SIGHUP);
        assert_eq!(hup.recv().await, Some(()));
    });
    assert_eq!(other.join().unwrap(), Some(()));
}
