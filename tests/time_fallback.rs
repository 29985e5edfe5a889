//! The `epoll_wait` fallback for kernels without `epoll_pwait2`, forced with the runtime's
//! `MINI_EPOLL_WAIT=1` switch. A file of its own: the switch is process-wide.

use std::time::{Duration, Instant};

#[test]
fn timers_work_with_millisecond_epoll_wait() {
    std::env::set_var("MINI_EPOLL_WAIT", "1");
    let rt = mini::Runtime::new().unwrap();
    assert!(format!("{rt:?}").contains("epoll_pwait2: false"), "the switch was ignored: {rt:?}");
    rt.block_on(async {
        // Sub-millisecond timeouts are rounded up, never down to a zero-timeout spin: each
        // sleep must still complete, and never early.
        for micros in [1, 300, 999, 1000, 1500] {
            let deadline = Instant::now() + Duration::from_micros(micros);
            mini::time::sleep_until(deadline).await;
            assert!(Instant::now() >= deadline);
        }
        let err = mini::time::timeout(Duration::from_micros(500), std::future::pending::<()>()).await;
        assert!(err.is_err());
    });
    std::env::remove_var("MINI_EPOLL_WAIT");
    let precise = mini::Runtime::new().unwrap();
    assert!(format!("{precise:?}").contains("epoll_pwait2: true"), "{precise:?}");
}
