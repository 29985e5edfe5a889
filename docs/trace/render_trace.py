#!/usr/bin/env python3
"""Draws a MINI_TRACE=chrome:PATH trace as a PNG: one row for the event loop, one per task.

    python3 -m pip install matplotlib
    python3 docs/trace/render_trace.py trace.json picture.png [--skip-idle]

Bars are spans (epoll_wait on the loop row, polls on the task rows: green Ready, blue
Pending); ticks on the loop row are instants (fd events, wakes, timers). --skip-idle starts
the picture at the first spawn and ends it at the last task's end, leaving out the waits for
the first client and for the shutdown signal.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    events = json.load(open(argv[1]))
    skip_idle = "--skip-idle" in argv
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M"}
    timed = [e for e in events if "ts" in e]
    t0, t1 = 0.0, float("inf")
    if skip_idle:
        spawns = [e["ts"] for e in timed if e["name"] == "spawn"]
        dones = [e["ts"] for e in timed if e["name"] == "done"]
        t0 = min(spawns) - 50 if spawns else 0.0
        t1 = max(dones) + 50 if dones else t1
    timed = [e for e in timed if e["ts"] + e.get("dur", 0) >= t0 and e["ts"] <= t1]
    rows = sorted(names)
    row_of = {tid: len(rows) - 1 - i for i, tid in enumerate(rows)}

    fig, ax = plt.subplots(figsize=(14, 1.0 + 0.55 * len(rows)))
    for e in timed:
        y = row_of.get(e["tid"])
        if y is None:
            continue
        start = (max(e["ts"], t0) - t0) / 1000.0
        if e["ph"] == "X":
            width = (min(e["ts"] + e["dur"], t1) - max(e["ts"], t0)) / 1000.0
            if e["name"] == "epoll_wait":
                color = "#bbbbbb"
            elif e["name"].endswith("Ready"):
                color = "#2ca02c"
            else:
                color = "#1f77b4"
            ax.broken_barh([(start, max(width, 0.002))], (y - 0.35, 0.7), color=color)
        elif e["ph"] == "i":
            color = "#d62728" if e["name"].startswith("fd ") else "#ff7f0e"
            ax.plot([start, start], [y - 0.45, y + 0.45], color=color, linewidth=0.8)
    ax.set_yticks([row_of[t] for t in rows])
    ax.set_yticklabels([names[t] for t in rows], fontsize=8)
    ax.set_xlabel("ms" + (" since the first spawn" if skip_idle else " since the runtime started"))
    ax.set_title("MINI_TRACE: grey = epoll_wait, red = fd event, orange = wake/spawn, "
                 "blue = poll -> Pending, green = poll -> Ready", fontsize=9)
    ax.grid(axis="x", linestyle=":", linewidth=0.5)
    fig.tight_layout()
    fig.savefig(argv[2], dpi=110)


if __name__ == "__main__":
    main(sys.argv)
