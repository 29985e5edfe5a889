//! Signals, raised inside this test process. A file of its own: signal dispositions are
//! process-wide. Each test uses a different signal so that the tests can run in parallel.
//!
//! If mini's handler were missing, SIGINT or SIGTERM would end the test process, so the
//! tests fail loudly rather than pass by accident.

use std::mem;

use mini::signal::unix::{signal, SignalKind};

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
fn the_previous_disposition_is_restored_after_the_last_listener() {
    let before = current_handler(libc::SIGUSR2);
    assert_eq!(before, libc::SIG_DFL);
    mini::block_on(async {
        let first = signal(SignalKind::user_defined2()).unwrap();
        let second = signal(SignalKind::user_defined2()).unwrap();
        assert_ne!(current_handler(libc::SIGUSR2), libc::SIG_DFL);
        drop(first);
        assert_ne!(current_handler(libc::SIGUSR2), libc::SIG_DFL, "one listener is left");
        drop(second);
    });
    assert_eq!(current_handler(libc::SIGUSR2), before);
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
