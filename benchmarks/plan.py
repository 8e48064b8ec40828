"""
Planner benchmark: plan 100 nodes x 10,000 applications (10% moved, 10%
changed) and the same cluster with 1,000 applications, to show the planner's
cost and that it grows linearly.

Usage: python benchmarks/plan.py [--quick] [--reps N] [--max-reps N]
                                 [--max-seconds S]
Each repetition plans both sizes, in an order rotated from one repetition
to the next, each planning after a collection of the garbage the last one
left.  Repetitions go on until ``ratio_10k_1k`` (the median of the
repetitions' ratios) has an uncertainty under 2.5 %, at least 9 and at
most 100 repetitions, none started after 120 s (``--quick``: 3).
``ratio_10k_1k_spread`` is their interquartile range over median,
``ratio_10k_1k_uncertainty`` the half-width of the median's 95 %
confidence interval over the median.
Last line: {"nodes": 100, "apps": 10000, "plan_s": …, "plan_1k_s": …,
            "ratio_10k_1k": …, "ratio_10k_1k_spread": …,
            "ratio_10k_1k_uncertainty": …, "reps": …, "settled": …}
Target: plan_s < 0.5 and ratio_10k_1k <= 12.
"""

import argparse
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    add_repetition_options, emit, print_ratios, print_table, ratio_figures,
    repeat_until_settled, repetitions_from, rotated, summary, timed,
)

from flocker._change import leaves  # noqa: E402
from flocker.node._plan import plan_changes  # noqa: E402
from flocker.node.testtools import synthetic_cluster  # noqa: E402


#: The sizes planned (numbers of applications): the ratio is the first's
#: time over the second's.
SIZES = (10000, 1000)


def measure(nodes, sizes, policy):
    """
    Plan a cluster of ``nodes`` nodes with each number of applications in
    ``sizes``, every size once per repetition, in an order rotated from one
    repetition to the next, until the ratio of the first size's time over
    the second's settles.

    :param Repetitions policy: The bounds of the repetitions.
    :return: ``(samples, settling)``: ``dict`` of number of applications to
        ``(seconds of each repetition, number of leaf changes)``, and the
        :class:`Settling` of ``ratio_10k_1k``.
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

        def repetition(index):
            this = {}
            for apps in rotated(sizes, index):
                # Every planning starts from the same heap: otherwise the
                # collections the last planning's garbage makes due fall
                # into whichever planning comes next.
                gc.collect()
                this[apps] = timed(plan_changes, *clusters[apps])[0]
                samples[apps].append(this[apps])
            return {"ratio_10k_1k": this[sizes[0]] / this[sizes[1]]}

        settling = repeat_until_settled(repetition, policy)
    finally:
        gc.unfreeze()
    return ({apps: (samples[apps], changes[apps]) for apps in sizes},
            settling)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true",
                        help="3 repetitions")
    add_repetition_options(parser)
    options = parser.parse_args()
    policy = repetitions_from(parser, options, 3 if options.quick else 9,
                              3 if options.quick else 100,
                              60.0 if options.quick else 120.0)
    measured, settling = measure(100, SIZES, policy)
    big, big_changes = summary(measured[10000][0]), measured[10000][1]
    small, small_changes = summary(measured[1000][0]), measured[1000][1]
    rows = [
        ("100 x 10,000", big_changes, "%.3f" % big["median"],
         "%.3f-%.3f" % (big["min"], big["max"])),
        ("100 x 1,000", small_changes, "%.3f" % small["median"],
         "%.3f-%.3f" % (small["min"], small["max"])),
    ]
    print_table("plan_changes (10%% moved, 10%% changed), %d runs each"
                % (settling.repetitions,), rows,
                ("nodes x apps", "changes", "median s", "min-max s"))
    print_ratios("Ratio of each run",
                 [("10,000 / 1,000 applications",
                   settling.samples["ratio_10k_1k"])], settling)
    figures = {"nodes": 100, "apps": 10000,
               "plan_s": round(big["median"], 4),
               "plan_1k_s": round(small["median"], 4),
               "reps": settling.repetitions, "settled": settling.settled}
    figures.update(ratio_figures("ratio_10k_1k",
                                 settling.samples["ratio_10k_1k"], digits=2))
    emit(figures)


if __name__ == "__main__":
    main()
