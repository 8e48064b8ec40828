#!/usr/bin/env python3
"""
Whether benchmark runs agree: every ratio of several ``benchmarks/run``
results files within a tolerance (default ±5 %) of the runs' common median.

    python benchmarks/compare.py [--tolerance 0.05] RESULTS.json ...

For each ratio (a figure reported with ``NAME_spread`` beside it) found in
any of the files: its value in each run, the median of those values, the
largest deviation of a run from that median (relative to the median), and
whether that is within the tolerance.  A ratio missing from some run
(that benchmark failed or was not run) counts as not within.  This is the
check of issue #23's "done when": three consecutive full runs, every ratio
within ±5 % of their common median.

Prints a table, then one JSON object as the last line::

    {"runs": N, "tolerance": …, "within": true / false,
     "ratios": {"BENCHMARK.NAME": {"values": [...], "median": …,
                                   "deviation": …, "within": …}}}

Exit status: 0 when every ratio is within the tolerance, 1 when one is
not, 2 for bad input (one line naming the file).
"""

import argparse
import json
import statistics
import sys

from _common import emit, print_table, spread_figures


class ResultsError(Exception):
    """
    A results file that cannot be read; ``str()`` is the one-line message.
    """


def load(path):
    """
    :param str path: A ``benchmarks/run`` results file.
    :return: Its ``benchmarks`` mapping.
    :raises ResultsError: If it cannot be read or is not a results file.
    """
    try:
        with open(path) as f:
            results = json.load(f)
    except OSError as e:
        raise ResultsError("%s: %s" % (path, e.strerror or e))
    except ValueError as e:
        raise ResultsError("%s: not JSON: %s" % (path, e))
    benchmarks = results.get("benchmarks") if isinstance(
        results, dict) else None
    if not isinstance(benchmarks, dict):
        raise ResultsError("%s: no \"benchmarks\" object: not a "
                           "benchmarks/run results file" % (path,))
    return benchmarks


def agreement(runs, tolerance):
    """
    :param runs: ``list`` of each run's ``benchmarks`` mapping (benchmark
        name to its figures).
    :param float tolerance: The largest relative deviation from the common
        median allowed (0.05 is ±5 %).
    :return: ``dict`` of ``BENCHMARK.NAME`` to ``{"values": [value or
        None per run], "median": …, "deviation": …, "within": …}`` for every
        ratio found in any run; ``median`` and ``deviation`` are over the
        runs that have the ratio, ``within`` is false when a run lacks it.
    """
    values = {}
    for index, benchmarks in enumerate(runs):
        for benchmark, figures in sorted(benchmarks.items()):
            if not isinstance(figures, dict):
                continue
            for name, value, _, _ in spread_figures(figures):
                key = "%s.%s" % (benchmark, name)
                values.setdefault(key, [None] * len(runs))[index] = value
    found = {}
    for key, per_run in sorted(values.items()):
        present = [v for v in per_run if v is not None]
        middle = statistics.median(present)
        deviation = (max(abs(v - middle) for v in present) / abs(middle)
                     if middle else float("inf"))
        found[key] = {"values": per_run, "median": round(middle, 4),
                      "deviation": round(deviation, 4),
                      "within": (len(present) == len(per_run)
                                 and deviation <= tolerance)}
    return found


def main(argv):
    parser = argparse.ArgumentParser(
        description="Whether benchmark runs agree within a tolerance.")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="largest deviation from the common median, "
                        "relative (default 0.05)")
    parser.add_argument("results", nargs="+", help="benchmarks/run results "
                        "files (at least 2)")
    options = parser.parse_args(argv)
    if len(options.results) < 2:
        parser.error("give at least 2 results files")
    if not 0 < options.tolerance < 1:
        parser.error("--tolerance must be between 0 and 1")
    try:
        runs = [load(path) for path in options.results]
    except ResultsError as e:
        sys.stderr.write("benchmarks/compare.py: %s\n" % (e,))
        return 2
    found = agreement(runs, options.tolerance)
    print_table(
        "Ratios of %d runs against their common median (within: at most "
        "%.1f %% away)" % (len(runs), 100 * options.tolerance),
        [(key, " ".join("-" if v is None else str(v)
                        for v in figures["values"]),
          str(figures["median"]), "%.1f %%" % (100 * figures["deviation"],),
          "yes" if figures["within"] else "NO")
         for key, figures in found.items()],
        ["ratio", "values", "median", "deviation", "within"])
    within = bool(found) and all(f["within"] for f in found.values())
    emit({"runs": len(runs), "tolerance": options.tolerance,
          "within": within, "ratios": found})
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
