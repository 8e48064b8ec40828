#!/usr/bin/env python3
"""
Benchmark of the local lab (``admin/lab``): how long ``up 3`` and ``down``
take and how much memory an idle node costs.

It runs a lab of its own (prefix ``flkb``, state ``/var/lib/flocker-lab-bench``,
unless ``FLOCKER_LAB_PREFIX`` or ``FLOCKER_LAB_STATE`` say otherwise), so the
default lab is neither used nor disturbed (but the lab they name is taken
down and purged: name one that is yours to lose):

* one cold ``up 3`` (empty state directory: keys, images built and loaded),
* ``--runs`` warm ``up 3`` (after ``down``: keys, image cache and Docker data
  roots kept), each followed by the PSS of every node's processes after
  ``IDLE`` seconds of idleness, and a timed ``down``,
* ``down --purge`` at the end.

Baseline, measured inside the same ``up`` runs: the time from starting the
nodes' dockerds until the slowest answers its API, the part of ``up`` no
lab can avoid; ``up3_over_dockerd`` is the median of each warm run's
ratio, ``up3_over_dockerd_spread`` their interquartile range over median,
``up3_over_dockerd_uncertainty`` the half-width of the median's 95 %
confidence interval over the median.

``admin/lab`` is started with this interpreter (not through ``env``), so
interpreter start-up shims do not count.  Needs root.

The last line printed is a JSON object: ``{"up3_s": …, "down3_s": …,
"node_pss_mb": …, …}`` (medians of the warm runs).

    python benchmarks/lab.py [--quick] [--runs N]

``--runs`` (default ``$FLOCKER_BENCH_RUNS``, else 3) is the number of warm
runs, at least 3; ``--quick`` makes it 3 whatever the environment says.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "admin"))

import _lab_host  # noqa: E402
import _lab_model  # noqa: E402

from _common import own_lab_environ, ratio_figures  # noqa: E402

RUNS = int(os.environ.get("FLOCKER_BENCH_RUNS", "3"))
NODES = 3
IDLE = 2.0


def admin_lab(argv, env):
    """
    Run ``admin/lab`` and time it.

    :param list argv: Its arguments.
    :param dict env: Its environment.
    :return: ``(seconds, stderr)``.
    :raises SystemExit: If it fails.
    """
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(REPO / "admin" / "lab")]
                            + argv, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=900)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit("benchmarks/lab.py: admin/lab %s failed: %s" % (
            " ".join(argv), result.stderr.strip()))
    return elapsed, result.stderr


def dockerd_seconds(trace):
    """
    :param str trace: ``admin/lab up`` output with ``FLOCKER_LAB_TRACE``.
    :return: Seconds until the slowest dockerd answered, or ``None``.
    """
    match = re.search(r"dockerd: slowest answered ([0-9.]+)s", trace)
    return float(match.group(1)) if match else None


def pss_kb(pid):
    """
    :param int pid: A process.
    :return: Its proportional set size in kB (0 if it is gone).
    """
    try:
        with open("/proc/%d/smaps_rollup" % (pid,)) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def node_memory(lab):
    """
    :param lab: The ``_lab_model.Lab``.
    :return: ``{node name: (PSS in MB, {process name: PSS in MB})}`` over
        every process of each node.
    """
    memory = {}
    for index in range(1, NODES + 1):
        node = lab.node(index)
        by_name = {}
        for pid in _lab_host.machine_processes([node]):
            name = _lab_host.process_name(pid) or "?"
            by_name[name] = by_name.get(name, 0) + pss_kb(pid) / 1024.0
        memory[node.name] = (sum(by_name.values()), by_name)
    return memory


def main():
    """
    Run the benchmark, print the table and the JSON line.
    """
    parser = argparse.ArgumentParser(
        description="Benchmark of the local lab: up 3, down, idle memory.")
    parser.add_argument("--quick", action="store_true",
                        help="3 warm runs, whatever FLOCKER_BENCH_RUNS says")
    parser.add_argument("--runs", type=int, default=None,
                        help="warm runs (>= 3; default FLOCKER_BENCH_RUNS "
                        "or 3)")
    options = parser.parse_args()
    runs = options.runs
    if runs is None:
        runs = 3 if options.quick else RUNS
    if runs < 3:
        parser.error("--runs must be at least 3")
    if os.geteuid() != 0:
        sys.exit("benchmarks/lab.py: needs root")
    env = dict(own_lab_environ(os.environ, "flkb",
                               "/var/lib/flocker-lab-bench"),
               FLOCKER_LAB_TRACE="1")
    lab = _lab_model.Lab.from_environ(env)
    admin_lab(["down", "--purge"], env)
    rows = []
    try:
        for run in range(runs + 1):
            kind = "cold" if run == 0 else "warm"
            up_s, trace = admin_lab(["up", str(NODES)], env)
            time.sleep(IDLE)
            memory = node_memory(lab)
            down_s, _ = admin_lab(["down"], env)
            rows.append({"kind": kind, "up": up_s, "down": down_s,
                         "dockerd": dockerd_seconds(trace),
                         "pss": statistics.mean(m[0] for m in memory.values()),
                         "detail": memory})
    finally:
        admin_lab(["down", "--purge"], env)
    print("%-5s %-5s %8s %8s %10s %14s" % (
        "run", "kind", "up 3 s", "down s", "dockerd s", "PSS/node MB"))
    for number, row in enumerate(rows):
        print("%-5d %-5s %8.2f %8.2f %10.2f %14.1f" % (
            number, row["kind"], row["up"], row["down"], row["dockerd"] or 0,
            row["pss"]))
    last = rows[-1]["detail"]
    print("PSS by process, last run: " + "; ".join(
        "%s %s" % (name, ", ".join("%s %.1f" % item for item in sorted(
            parts.items()))) for name, (_, parts) in sorted(last.items())))
    warm = rows[1:]
    up3 = statistics.median(r["up"] for r in warm)
    dockerd = statistics.median(r["dockerd"] for r in warm)
    figures = {
        "up3_s": round(up3, 3),
        "down3_s": round(statistics.median(r["down"] for r in warm), 3),
        "node_pss_mb": round(statistics.median(r["pss"] for r in warm), 1),
        "up3_cold_s": round(rows[0]["up"], 3),
        "baseline_dockerd_s": round(dockerd, 3),
        "runs": runs,
        "load1": round(os.getloadavg()[0], 2),
    }
    figures.update(ratio_figures("up3_over_dockerd", [
        r["up"] / r["dockerd"] for r in warm], digits=2))
    print("up 3 / dockerd start, each warm run: %s (spread %.1f %%)" % (
        " ".join("%.2f" % (r["up"] / r["dockerd"],) for r in warm),
        100 * figures["up3_over_dockerd_spread"]))
    print("targets: up 3 < 3 s, down < 5 s, < 70 MB PSS per idle node")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
