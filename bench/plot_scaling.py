#!/usr/bin/env python3
"""Draws the scaling curve that `bench/run --only scaling` writes to bench/results/scaling-curve.csv:
round trips per second (left) and server CPU per round trip (right) against the worker count,
mini's echo_server --workers N against tokio's multi_thread runtime, one line per load cell.

    python3 -m pip install matplotlib
    python3 bench/plot_scaling.py bench/results/scaling-curve.csv docs/scaling.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(argv[1])))
    if not rows:
        sys.exit(f"{argv[1]}: no data rows")
    fig, (rps_ax, cpu_ax) = plt.subplots(1, 2, figsize=(10, 4))
    # Colour and marker say the runtime, the line style the load cell.
    runtimes = {"mini": ("C0", "o"), "tokio-mt": ("C3", "s")}
    for cell, line in zip(dict.fromkeys(r["cell"] for r in rows), ["-", "--", ":", "-."]):
        for rt, (color, marker) in runtimes.items():
            # A failed run leaves its cell empty: plot the worker counts that have data.
            pts = [r for r in rows if r["cell"] == cell and r["runtime"] == rt and r["rtps"]]
            workers = [int(r["workers"]) for r in pts]
            label = f"{rt}, {cell}"
            style = dict(color=color, marker=marker, linestyle=line, label=label)
            rps_ax.plot(workers, [float(r["rtps"]) / 1e3 for r in pts], **style)
            cpu_ax.plot(workers, [float(r["srv_total_us"]) for r in pts], **style)
    all_workers = sorted({int(r["workers"]) for r in rows})
    for ax, title in [(rps_ax, "round trips per second, thousands"), (cpu_ax, "server CPU per round trip, µs")]:
        ax.set_title(title)
        ax.set_xlabel("workers")
        ax.set_xticks(all_workers)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    rps_ax.legend(fontsize=8)
    fig.suptitle("echo, 512 B: mini --workers N vs tokio multi_thread (loadgen shares the CPUs)")
    fig.tight_layout()
    fig.savefig(argv[2], dpi=100)


if __name__ == "__main__":
    main(sys.argv)
