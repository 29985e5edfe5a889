//! `mini::time::Interval` as a `futures_core::Stream`, driven through futures-util's
//! `StreamExt` as users write it.

mod util;

use std::time::Duration;

use futures_util::stream::{FusedStream, Stream, StreamExt};
use mini::time::MissedTickBehavior;

#[test]
fn an_interval_is_an_endless_stream_of_its_scheduled_ticks() {
    const P: Duration = Duration::from_millis(2);
    util::run(|| async {
        let mut every = mini::time::interval(P);
        // Burst keeps every tick on the grid even if a loaded machine stalls this thread.
        every.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let first = every.next().await.expect("an interval never ends");
        let second = every.next().await.expect("an interval never ends");
        assert_eq!(second - first, P, "each item is the instant its tick was scheduled for");

        let more: Vec<_> = every.by_ref().take(3).collect().await;
        assert_eq!(more, [first + 2 * P, first + 3 * P, first + 4 * P]);
        assert!(!every.is_terminated());
        assert_eq!(every.size_hint(), (usize::MAX, None));
    });
}
