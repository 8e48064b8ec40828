"""
Planner benchmark: plan 100 nodes x 10,000 applications (10% moved, 10%
changed) and the same cluster with 1,000 applications, to show the planner's
cost and that it grows linearly.

Usage: python benchmarks/plan.py [--quick] [--repeat N]
(``--quick``: 3 runs of each size instead of 5.)
Last line: {"nodes": 100, "apps": 10000, "plan_s": …, "plan_1k_s": …,
            "ratio_10k_1k": …}
Target: plan_s < 0.5 and ratio_10k_1k <= 12.
"""

import argparse
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit, print_table, repeat, summary  # noqa: E402

from flocker._change import leaves  # noqa: E402
from flocker.node._plan import plan_changes  # noqa: E402
from flocker.node.testtools import synthetic_cluster  # noqa: E402


def measure(nodes, apps, repetitions):
    """
    :return: ``(timing summary, number of leaf changes)`` for planning a
        cluster of ``nodes`` nodes and ``apps`` applications.
    """
    deployment, state = synthetic_cluster(nodes, apps, moved=0.1, changed=0.1)
    # The inputs (a million route values at 10,000 applications) are built
    # once; keeping the cyclic garbage collector from rescanning them on
    # every collection measures the planner, not the size of this
    # benchmark's own heap.
    gc.collect()
    gc.freeze()
    plan = plan_changes(deployment, state)
    samples = repeat(lambda: plan_changes(deployment, state), repetitions)
    gc.unfreeze()
    return summary(samples), len(leaves(plan))


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
    big, big_changes = measure(100, 10000, options.repeat)
    small, small_changes = measure(100, 1000, options.repeat)
    rows = [
        ("100 x 10,000", big_changes, "%.3f" % big["median"],
         "%.3f-%.3f" % (big["min"], big["max"])),
        ("100 x 1,000", small_changes, "%.3f" % small["median"],
         "%.3f-%.3f" % (small["min"], small["max"])),
    ]
    print_table("plan_changes (10%% moved, 10%% changed), %d runs each"
                % (options.repeat,), rows,
                ("nodes x apps", "changes", "median s", "min-max s"))
    emit({"nodes": 100, "apps": 10000,
          "plan_s": round(big["median"], 4),
          "plan_1k_s": round(small["median"], 4),
          "ratio_10k_1k": round(big["median"] / small["median"], 2)})


if __name__ == "__main__":
    main()
