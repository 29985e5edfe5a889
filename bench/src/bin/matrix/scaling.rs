//! The `scaling` section (issue 12, part 3: "Measured side by side"): mini's share-nothing
//! workers (`examples/echo_server.rs --workers N`: a thread, a runtime and a `SO_REUSEPORT`
//! listener per worker) against tokio's work-stealing `multi_thread` runtime
//! (`echo_tokio_mt`) and against N tokio `current_thread` runtimes on `SO_REUSEPORT`
//! (`echo_tokio_reuseport`, mini's shape on tokio), all with the same echo handler.
//!
//! Unlike the other sections nothing is pinned: the servers get every core, and `loadgen`
//! (one thread) shares them. On the 2-core bench machine the load generator therefore takes
//! CPU from the servers it measures, and may itself be the bottleneck: its CPU is printed,
//! and the server CPU per round trip (all the server's threads, from `/proc/PID/stat`) is the
//! figure that holds when it saturates.
//!
//! Every repetition runs every (cell, configuration) once, the configurations of a cell one
//! right after another, each with a fresh server. The configurations are the union of the
//! side-by-side table's and the curve's (workers 1, 2, 4, ... up to the CPUs available, mini
//! against tokio `multi_thread`), so the overlap is measured once.

use std::path::{Path, PathBuf};

use mini_bench::report::{Rec, Results, Targets};

use super::peers::{self, Peer};
use super::{cell_label, echo_window, Opts};

/// The load: the echo section's 50 and 1000 connection cells at 512 B.
const CELLS: [(usize, usize); 2] = [(50, 512), (1000, 512)];
/// The side-by-side table's columns. "mini" is mini with 2 workers (named so for the
/// mini/other ratio columns); "mini-1w" shows what the second worker adds.
const SIDE_BY_SIDE: [&str; 4] = ["mini", "tokio-mt", "tokio-rp", "mini-1w"];
const CURVE: [&str; 2] = ["mini", "tokio-mt"];

/// The server kinds, each started with `--workers N`.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Mini,
    TokioMt,
    TokioReuseport,
}

/// One server to measure: a kind and its worker count.
#[derive(Clone, Copy, PartialEq)]
struct Config {
    kind: Kind,
    workers: usize,
}

impl Config {
    fn label(self) -> String {
        let kind = match self.kind {
            Kind::Mini => "mini",
            Kind::TokioMt => "tokio-mt",
            Kind::TokioReuseport => "tokio-rp",
        };
        format!("{kind} --workers {}", self.workers)
    }

    /// Its column in the side-by-side table, if it has one.
    fn side_by_side(self) -> Option<&'static str> {
        match (self.kind, self.workers) {
            (Kind::Mini, 2) => Some("mini"),
            (Kind::TokioMt, 2) => Some("tokio-mt"),
            (Kind::TokioReuseport, 2) => Some("tokio-rp"),
            (Kind::Mini, 1) => Some("mini-1w"),
            _ => None,
        }
    }

    /// Its column in the curve, if it has one.
    fn curve(self) -> Option<&'static str> {
        match self.kind {
            Kind::Mini => Some("mini"),
            Kind::TokioMt => Some("tokio-mt"),
            Kind::TokioReuseport => None,
        }
    }
}

/// Worker counts of the curve: 1, 2, 4, ... below `cpus`, then `cpus` itself.
fn curve_workers(cpus: usize) -> Vec<usize> {
    let mut w: Vec<usize> =
        std::iter::successors(Some(1usize), |n| n.checked_mul(2)).take_while(|&n| n < cpus).collect();
    w.push(cpus.max(1));
    w
}

/// Every configuration to run: the side-by-side four, then the curve's others.
fn configs(cpus: usize) -> Vec<Config> {
    let mut all = vec![
        Config { kind: Kind::Mini, workers: 2 },
        Config { kind: Kind::TokioMt, workers: 2 },
        Config { kind: Kind::TokioReuseport, workers: 2 },
        Config { kind: Kind::Mini, workers: 1 },
    ];
    for workers in curve_workers(cpus) {
        for kind in [Kind::Mini, Kind::TokioMt] {
            let c = Config { kind, workers };
            if !all.contains(&c) {
                all.push(c);
            }
        }
    }
    all
}

fn workers_label(n: usize) -> String {
    format!("{n} worker{}", if n == 1 { "" } else { "s" })
}

/// One run: a fresh server for `config`, `loadgen` (not pinned) against it for a warm-up
/// and a window, again while other processes were noisy (as the echo section does).
fn measure(opts: &Opts, mini: &Path, config: Config, cell: (usize, usize), label: &str) -> Option<Rec> {
    let workers = config.workers.to_string();
    let (program, args): (PathBuf, Vec<&str>) = match config.kind {
        Kind::Mini => (mini.to_path_buf(), vec!["{addr}", "--workers", &workers]),
        Kind::TokioMt => (opts.bin.join("echo_tokio_mt"), vec!["{addr}", "--workers", &workers]),
        Kind::TokioReuseport => {
            (opts.bin.join("echo_tokio_reuseport"), vec!["{addr}", "--workers", &workers])
        }
    };
    echo_window(opts, None, label, cell, || {
        match Peer::start_on(opts, &config.label(), &program, &args, None) {
            Ok(server) => {
                let (addr, pid) = (server.addr.to_string(), server.pid());
                Some((server, addr, pid))
            }
            Err(e) => {
                println!("  {label:<22} FAILED: {e}");
                None
            }
        }
    })
}

/// Runs the section: the side-by-side table at 2 workers with its targets, and the curve,
/// whose medians also go to `scaling-curve.csv` in the results directory (for the plot).
pub(super) fn run(opts: &Opts, targets: &mut Targets) {
    let mini = match peers::mini_example(opts, "--echo-bin", "mini", "echo_server") {
        Ok(p) => p,
        Err(e) => {
            println!("  skipped: cannot build mini's echo_server: {e}");
            targets.check(false, format!("scaling: no mini echo_server ({e})"));
            return;
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let configs = configs(cpus);
    let mut side = Results::default();
    // One Results per cell for the curve: rows are worker counts.
    let mut curve: Vec<Results> = CELLS.iter().map(|_| Results::default()).collect();
    for rep in 0..opts.reps {
        for (cell, curve) in CELLS.iter().zip(&mut curve) {
            for &config in &configs {
                let label = format!("#{rep} {}", config.label());
                let rec = measure(opts, &mini, config, *cell, &label);
                if let Some(col) = config.side_by_side() {
                    side.push(&cell_label(*cell), col, rec.clone());
                }
                if let Some(col) = config.curve() {
                    curve.push(&workers_label(config.workers), col, rec);
                }
            }
        }
    }

    let rows: Vec<String> = CELLS.iter().map(|&c| cell_label(c)).collect();
    let others = &SIDE_BY_SIDE[1..];
    let title = |what: &str| {
        format!(
            "scaling, 2 workers, not pinned (loadgen shares the {cpus} CPUs): {what} (median of {}; mini = \
             echo_server --workers 2, tokio-mt = multi_thread 2 workers, tokio-rp = 2 current_thread runtimes \
             on SO_REUSEPORT, mini-1w = echo_server --workers 1)",
            opts.reps
        )
    };
    side.table(&title("round trips per second"), &rows, &SIDE_BY_SIDE, others, "rtps", 0);
    side.table(&title("latency p99, µs"), &rows, &SIDE_BY_SIDE, others, "p99_us", 1);
    side.table(
        &title("server total CPU per round trip, µs"),
        &rows,
        &SIDE_BY_SIDE,
        others,
        "srv_total_us",
        3,
    );
    side.table(&title("server user CPU per round trip, µs"), &rows, &SIDE_BY_SIDE, others, "srv_user_us", 3);
    side.table(&title("server CPU, % of one core"), &rows, &SIDE_BY_SIDE, &[], "srv_cpu_pct", 0);
    side.table(&title("load generator CPU, % of one core"), &rows, &SIDE_BY_SIDE, &[], "client_cpu_pct", 0);
    side.table(
        &title("other processes' CPU, % of one core (noise)"),
        &rows,
        &SIDE_BY_SIDE,
        &[],
        "others_cpu_pct",
        0,
    );
    for row in &rows {
        targets.ratio(
            format!("scaling: round trips/s, {row}, mini --workers 2 vs tokio multi_thread 2 workers"),
            side.ratio(row, "tokio-mt", "rtps"),
            true,
            1.1,
        );
        targets.ratio(
            format!(
                "scaling: server CPU per round trip, {row}, mini --workers 2 vs tokio multi_thread 2 workers"
            ),
            side.ratio(row, "tokio-mt", "srv_total_us"),
            false,
            0.8,
        );
    }
    peers::note_saturation(targets, &side, &rows, &SIDE_BY_SIDE, "loadgen");

    let workers: Vec<String> = curve_workers(cpus).into_iter().map(workers_label).collect();
    let mut csv = String::from("cell,workers,runtime,rtps,srv_total_us,client_cpu_pct\n");
    for (&cell, res) in CELLS.iter().zip(&curve) {
        let title = |what: &str| {
            format!(
                "scaling curve, {}: {what} vs workers (median of {}; {cpus} CPUs here, loadgen included)",
                cell_label(cell),
                opts.reps
            )
        };
        res.table(&title("round trips per second"), &workers, &CURVE, &CURVE[1..], "rtps", 0);
        res.table(
            &title("server total CPU per round trip, µs"),
            &workers,
            &CURVE,
            &CURVE[1..],
            "srv_total_us",
            3,
        );
        res.table(&title("load generator CPU, % of one core"), &workers, &CURVE, &[], "client_cpu_pct", 0);
        for n in curve_workers(cpus) {
            for rt in CURVE {
                let get =
                    |key| res.median(&workers_label(n), rt, key).map_or(String::new(), |v| format!("{v:.3}"));
                csv += &format!(
                    "{},{n},{rt},{},{},{}\n",
                    cell_label(cell),
                    get("rtps"),
                    get("srv_total_us"),
                    get("client_cpu_pct")
                );
            }
        }
    }
    let path = opts.bench_dir.join("results").join("scaling-curve.csv");
    match std::fs::write(&path, csv) {
        Ok(()) => println!(
            "\ncurve medians written to {} (draw them: python3 bench/plot_scaling.py {} docs/scaling.png)",
            path.display(),
            path.display()
        ),
        Err(e) => println!("\ncannot write {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_doubles_up_to_the_cpus() {
        assert_eq!(curve_workers(1), [1]);
        assert_eq!(curve_workers(2), [1, 2]);
        assert_eq!(curve_workers(6), [1, 2, 4, 6]);
        assert_eq!(curve_workers(16), [1, 2, 4, 8, 16]);
    }

    #[test]
    fn every_column_is_measured_once() {
        for cpus in [1, 2, 16] {
            let all = configs(cpus);
            for col in SIDE_BY_SIDE {
                assert_eq!(all.iter().filter(|c| c.side_by_side() == Some(col)).count(), 1, "{col}");
            }
            for n in curve_workers(cpus) {
                for col in CURVE {
                    let hits = all.iter().filter(|c| c.workers == n && c.curve() == Some(col)).count();
                    assert_eq!(hits, 1, "{col} at {n}");
                }
            }
        }
    }
}
