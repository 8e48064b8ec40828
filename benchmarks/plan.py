"""
Planner benchmark: plan 100 nodes x 10,000 applications (10% moved, 10%
changed) and the same cluster with 1,000 applications, to show the planner's
cost and that it grows linearly.

Usage: python benchmarks/plan.py [--quick] [--repeat N]
(``--quick``: 3 runs of each size instead of 5.)  Each run plans both
sizes, in an order rotated from run to run; ``ratio_10k_1k`` is the median
of the runs' ratios, ``ratio_10k_1k_spread`` their interquartile range over
median, ``ratio_10k_1k_uncertainty`` the half-width of the median's 95 %
confidence interval over the median.
Last line: {"nodes": 100, "apps": 10000, "plan_s": …, "plan_1k_s": …,
            "ratio_10k_1k": …, "ratio_10k_1k_spread": …,
            "ratio_10k_1k_uncertainty": …, "reps": …}
Target: plan_s < 0.5 and ratio_10k_1k <= 12.
"""

import argparse
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    RATIO_HEADERS, emit, paired_ratios, print_table, ratio_figures,
    ratio_row, rotated, summary, timed,
)

from flocker._change import leaves  # noqa: E402
from flocker.node._plan import plan_changes  # noqa: E402
from flocker.node.testtools import synthetic_cluster  # noqa: E402


def measure(nodes, sizes, repetitions):
    """
    Plan a cluster of ``nodes`` nodes with each number of applications in
    ``sizes``, every size once per repetition, in an order rotated from one
    repetition to the next.

    :return: ``dict`` of number of applications to ``(seconds of each
        repetition, number of leaf changes)``.
    """
    clusters = {apps: synthetic_cluster(nodes, apps, moved=0.1, changed=0.1)
                for apps in sizes}
    # The inputs (a million route values at 10,000 applications) are built
    # once; keeping the cyclic garbage collector from rescanning them on
    # every collection measures the planner, not the size of this
    # benchmark's own heap.
    gc.collect()
    gc.freeze()
    try:
        changes = {apps: len(leaves(plan_changes(*cluster)))
                   for apps, cluster in clusters.items()}
        samples = {apps: [] for apps in sizes}
        for rep in range(repetitions):
            for apps in rotated(sizes, rep):
                samples[apps].append(timed(plan_changes, *clusters[apps])[0])
    finally:
        gc.unfreeze()
    return {apps: (samples[apps], changes[apps]) for apps in sizes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true",
                        help="3 runs of each size instead of 5")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each size (>= 3)")
    options = parser.parse_args()
    if options.repeat is None:
        options.repeat = 3 if options.quick else 5
    if options.repeat < 3:
        parser.error("--repeat must be at least 3")
    measured = measure(100, [10000, 1000], options.repeat)
    big, big_changes = summary(measured[10000][0]), measured[10000][1]
    small, small_changes = summary(measured[1000][0]), measured[1000][1]
    ratios = paired_ratios(measured[10000][0], measured[1000][0])
    rows = [
        ("100 x 10,000", big_changes, "%.3f" % big["median"],
         "%.3f-%.3f" % (big["min"], big["max"])),
        ("100 x 1,000", small_changes, "%.3f" % small["median"],
         "%.3f-%.3f" % (small["min"], small["max"])),
    ]
    print_table("plan_changes (10%% moved, 10%% changed), %d runs each"
                % (options.repeat,), rows,
                ("nodes x apps", "changes", "median s", "min-max s"))
    print_table("Ratio of each run (+/-: half-width of the median's 95 % "
                "confidence interval; spread: interquartile range over "
                "median)", [ratio_row("10,000 / 1,000 applications",
                                      ratios)], RATIO_HEADERS)
    figures = {"nodes": 100, "apps": 10000,
               "plan_s": round(big["median"], 4),
               "plan_1k_s": round(small["median"], 4),
               "reps": options.repeat}
    figures.update(ratio_figures("ratio_10k_1k", ratios, digits=2))
    emit(figures)


if __name__ == "__main__":
    main()
