//! The `fs` section (issue 14): the `fs_read` binary, not pinned (the pool paths need their
//! helper threads on the other core). 10,000 reads of 4 KiB files, 64 at a time, page cache
//! warm: tokio::fs (current_thread) against mini::fs on io_uring (`mini-uring`) and on epoll,
//! its blocking pool (`mini`, as in the other sections); then one 256 MiB sequential read
//! against `cat`.

use mini_bench::report::{Results, Targets};

use super::{run_bin, strs, wait_quiet, Opts};

pub(super) fn run(opts: &Opts, targets: &mut Targets) {
    let (files, big) = if opts.quick { ("2000", "64") } else { ("10000", "256") };
    let reps = if opts.quick { "1" } else { "5" };
    wait_quiet(opts);
    let args = ["--files", files, "--size", "4096", "--concurrency", "64", "--big-mib", big, "--reps", reps];
    let mut res = Results::default();
    let small = format!("{files} x 4 KiB, 64 at a time");
    let seq = format!("{big} MiB sequential");
    for (rec, rt) in run_bin(opts, None, "fs_read", &strs(&args), "fs_read") {
        let rt = rt.unwrap_or_else(|| "?".into());
        let row = if rec.contains_key("files_per_s") { &small } else { &seq };
        res.push(row, &rt, Some(rec));
    }
    let small_rows = std::slice::from_ref(&small);
    let rts = ["mini-uring", "mini", "tokio"];
    let pairs = [("mini-uring", "mini"), ("mini-uring", "tokio"), ("mini", "tokio")];
    res.table_pairs(
        &format!("file reads per second (median of {reps}; mini-uring = mini::fs on io_uring, mini = on the blocking pool)"),
        small_rows,
        &rts,
        &pairs,
        "files_per_s",
        0,
    );
    res.table_pairs(
        &format!("CPU per file read, us, all threads (median of {reps})"),
        small_rows,
        &rts,
        &pairs,
        "cpu_us_per_file",
        2,
    );
    res.table_pairs(
        &format!("sequential read, MiB/s (median of {reps}; 256 KiB File::read_at chunks; cat includes its process start)"),
        std::slice::from_ref(&seq),
        &["mini-uring", "mini", "cat"],
        &[("mini-uring", "mini"), ("mini-uring", "cat"), ("mini", "cat")],
        "mib_per_s",
        0,
    );
    let uring_vs = |row: &str, other: &str, key: &str| res.ratio_of(row, "mini-uring", other, key);
    targets.ratio(
        format!("{small}: mini::fs on io_uring vs tokio::fs, files/s"),
        uring_vs(&small, "tokio", "files_per_s"),
        true,
        3.0,
    );
    targets.ratio(
        format!("{small}: mini::fs on io_uring vs its blocking-pool path, files/s"),
        uring_vs(&small, "mini", "files_per_s"),
        true,
        1.5,
    );
    targets.ratio(
        format!("{seq}: mini::fs on io_uring vs cat, MiB/s"),
        uring_vs(&seq, "cat", "mib_per_s"),
        true,
        0.9,
    );
    if let Some(r) = res.ratio_of(&seq, "mini", "cat", "mib_per_s") {
        targets.note(format!("{seq}: mini::fs on the blocking pool vs cat, MiB/s: {r:.2}"));
    }
}
