//! Issue 14 in the echo section: mini on its io_uring driver (`mini-uring`: `echo_mini`
//! with `MINI_DRIVER=uring`) against mini on epoll and against tokio.
//!
//! The targets, at 50 and 1000 connections × 64 and 512 B: server CPU per round
//! trip ≤ 1.0× mini's epoll driver and ≤ 0.9× tokio's; round trips per second ≥ 1.0× both,
//! or the load generator shown saturated (then it, not the server, sets the pace, and the
//! CPU per round trip is the figure that decides). The syscall target (≤ 1 per round trip
//! under load) is checked in the `syscalls` section.

use mini_bench::report::{print_table, Results, Row, Targets};

use super::peers::SATURATED_PCT;

/// The ratio columns the echo tables add to mini's: mini-uring over mini, and over tokio.
pub(super) const URING_PAIRS: [(&str, &str); 2] = [("mini-uring", "mini"), ("mini-uring", "tokio")];

/// Server CPU per round trip, mini-uring over each: at most this (issue 14).
const CPU_BOUNDS: [(&str, f64); 2] = [("mini", 1.0), ("tokio", 0.9)];

/// Whether issue 14's targets cover an echo row: 50 or 1000 connections × 64 or 512 B.
fn is_target_row(row: &str) -> bool {
    ["50 x 64 B", "50 x 512 B", "1000 x 64 B", "1000 x 512 B"].contains(&row)
}

/// A round-trips-per-second target, mini-uring over `other`: met at a ratio ≥ 1, or when
/// the load generator used at least `SATURATED_PCT` of its core against mini-uring.
fn rps_check(row: &str, other: &str, ratio: Option<f64>, loadgen_pct: Option<f64>) -> (bool, String) {
    let what = format!("echo round trips/s, {row}, mini-uring vs {other}");
    let Some(r) = ratio else { return (false, format!("{what}: no data")) };
    let saturated = loadgen_pct.is_some_and(|p| p >= SATURATED_PCT);
    let load = match loadgen_pct {
        Some(p) if saturated => format!("; the load generator used {p:.0}% of its core: saturated"),
        Some(p) => format!("; the load generator used {p:.0}% of its core: not saturated"),
        None => String::new(),
    };
    let how = if r < 1.0 && saturated { ", met by the saturation clause" } else { "" };
    (
        r >= 1.0 || saturated,
        format!("{what}: {r:.3} (target >= 1.00, or the load generator saturated{load}{how})"),
    )
}

/// The summary table and issue 14's targets, from the echo section's results.
pub(super) fn report(res: &Results, rows: &[String], reps: usize, targets: &mut Targets) {
    let columns = [
        ("user/mini", "mini", "srv_user_us"),
        ("user/tokio", "tokio", "srv_user_us"),
        ("sys/mini", "mini", "srv_sys_us"),
        ("sys/tokio", "tokio", "srv_sys_us"),
        ("total/mini", "mini", "srv_total_us"),
        ("total/tokio", "tokio", "srv_total_us"),
        ("rt/s/mini", "mini", "rtps"),
        ("rt/s/tokio", "tokio", "rtps"),
        ("p99/mini", "mini", "p99_us"),
        ("p99/tokio", "tokio", "p99_us"),
    ];
    let loadgen = |row: &str| res.median(row, "mini-uring", "client_cpu_pct");
    let table: Vec<Row> = rows
        .iter()
        .map(|row| Row {
            label: row.clone(),
            values: columns
                .iter()
                .map(|(_, other, key)| res.ratio_of(row, "mini-uring", other, key))
                .chain([loadgen(row)])
                .collect(),
            ratios: vec![],
        })
        .collect();
    let mut headers: Vec<&str> = columns.iter().map(|(h, _, _)| *h).collect();
    headers.push("loadgen %");
    print_table(
        &format!(
            "echo: mini-uring (io_uring) over mini (epoll) and over tokio: server CPU per round trip, round trips/s, \
             p99 (median of {reps} per-repetition ratios); loadgen %: the load generator's CPU against mini-uring, \
             saturated at {SATURATED_PCT:.0} or more"
        ),
        &headers,
        &[],
        &table,
        2,
    );

    for row in rows.iter().filter(|r| is_target_row(r)) {
        for (other, bound) in CPU_BOUNDS {
            let r = res.ratio_of(row, "mini-uring", other, "srv_total_us");
            targets.ratio(
                format!("server total CPU per round trip, {row}, mini-uring vs {other}"),
                r,
                false,
                bound,
            );
        }
        for other in ["mini", "tokio"] {
            let (met, line) =
                rps_check(row, other, res.ratio_of(row, "mini-uring", other, "rtps"), loadgen(row));
            targets.check(met, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_cover_50_and_1000_connections_at_64_and_512_bytes() {
        assert!(is_target_row("50 x 64 B") && is_target_row("1000 x 512 B"));
        assert!(!is_target_row("1 x 64 B") && !is_target_row("50 x 4096 B"));
    }

    #[test]
    fn rps_target_is_met_by_the_ratio_or_by_a_saturated_load_generator() {
        assert!(rps_check("50 x 64 B", "mini", Some(1.02), Some(60.0)).0);
        let (met, line) = rps_check("50 x 64 B", "mini", Some(0.97), Some(60.0));
        assert!(!met, "{line}");
        assert!(line.contains("not saturated"), "{line}");
        let (met, line) = rps_check("50 x 64 B", "tokio", Some(0.97), Some(SATURATED_PCT));
        assert!(met, "{line}");
        assert!(line.contains("met by the saturation clause"), "{line}");
        assert!(!rps_check("50 x 64 B", "mini", Some(0.97), None).0);
        assert!(!rps_check("50 x 64 B", "mini", None, Some(99.0)).0); // no ratio: no data
    }
}
