//! Faults inside tasks: a blocking call (the slow-poll warning) and destructors that panic.

use std::time::Duration;

const CHILD_ENV: &str = "MINI_SLOW_POLL_CHILD";

/// Runs this test binary again as a child, in "child mode" (`CHILD_ENV` set to the
/// threshold in ms, or `off`), and returns the `mini:` warning lines it printed to stderr.
fn slow_poll_warnings_of_child(test: &str, threshold: &str) -> Vec<String> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(CHILD_ENV, threshold)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().filter(|l| l.starts_with("mini: ")).map(str::to_string).collect()
}

/// In the child: a task that blocks the thread three times, beside a polite one.
fn run_a_blocking_task(threshold: Option<Duration>) {
    let rt = mini::Builder::new().slow_poll_threshold(threshold).build().unwrap();
    rt.block_on(async {
        let sleeper = mini::task::Builder::new().name("sleeper").spawn(async {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(40)); // the mistake under test
                mini::yield_now().await;
            }
        });
        let polite = mini::spawn(async {
            for _ in 0..3 {
                mini::yield_now().await;
            }
        });
        // The block_on future makes the same mistake: it is reported once too.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(40));
            mini::yield_now().await;
        }
        sleeper.await.unwrap();
        polite.await.unwrap();
    });
}

/// A blocking call inside a task stalls the whole loop. mini names the task and where it was
/// spawned, once, on stderr. The test runs itself as a child process to read that stderr.
#[test]
fn a_blocking_task_gets_a_slow_poll_warning_once() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("off") => return run_a_blocking_task(None),
        Ok(ms) => return run_a_blocking_task(Some(Duration::from_millis(ms.parse().unwrap()))),
        Err(_) => {}
    }
    let test = "a_blocking_task_gets_a_slow_poll_warning_once";
    // Only the sleeper's warnings are counted. Its polls take at least 40 ms whatever the
    // machine does (a sleep never ends early), twice the threshold. Another poll may also
    // pass 20 ms on a loaded machine that preempts the process, and be reported (rightly:
    // the loop was stalled); that must not fail the test.
    let all = slow_poll_warnings_of_child(test, "20");
    let warnings: Vec<_> = all.iter().filter(|w| w.contains("\"sleeper\"")).collect();
    assert_eq!(warnings.len(), 1, "one warning for three slow polls of one task: {all:#?}");
    let w = warnings[0];
    assert!(w.starts_with("mini: task "), "{w}");
    assert!(w.contains("tests/task_faults.rs:"), "names where the task was spawned: {w}");
    assert!(w.contains("in one poll without yielding"), "{w}");
    assert!(w.contains("spawn_blocking"), "says what to do instead: {w}");
    let main = all.iter().filter(|w| w.starts_with("mini: the block_on future ran for")).count();
    assert_eq!(main, 1, "one warning for three slow polls of the block_on future: {all:#?}");

    assert_eq!(slow_poll_warnings_of_child(test, "off"), Vec::<String>::new(), "turned off");
    assert_eq!(mini::DEFAULT_SLOW_POLL_THRESHOLD, Duration::from_millis(100));
}

/// Destructors that panic while the runtime shuts down, or while a finished task's output
/// is dropped, must not take the process down or leave it hanging.
#[test]
fn panicking_destructors_at_shutdown_are_contained() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("destructor exploded");
        }
    }
    let rt = mini::Runtime::new().unwrap();
    rt.block_on(async {
        // A pending task whose future panics when dropped at shutdown.
        let guard = PanicOnDrop;
        drop(mini::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        // A detached finished task whose *output* panics when dropped.
        drop(mini::spawn(async { PanicOnDrop }));
        mini::yield_now().await;
        mini::yield_now().await;
        assert_eq!(mini::spawn(async { "still serving" }).await.unwrap(), "still serving");
    });
    drop(rt); // must return normally
}
