#!/usr/bin/env python3
"""
Plot a move's downtime from a results file of ``benchmarks/run``.

    python benchmarks/plot.py RESULTS.json [OUT.png]

Two panels, from the deploy benchmark's figures:

* downtime against the volume's size (``curve_volume``, 1 MiB of new data
  per move; log scale), beside the ideal: downtime independent of the
  volume's size, a flat line at the smallest downtime measured;
* downtime against the data written since the last push (``curve_new``),
  beside the ideal: the smallest downtime measured plus the new data at the
  measured push rate (``push_mb_s`` of the deploy figures, else of the
  volumes benchmark); a flat line at the smallest downtime when the results
  have no push rate.  The legend says which.

Each curve is a list of ``[MiB, downtime seconds]`` pairs.  Without OUT the
image is written next to the results (same name, ``.png``) and copied to
``latest.png`` in that directory; with OUT, only to OUT.
"""

import argparse
import json
import os
import shutil
import sys

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot  # noqa: E402

MiB = 1024 * 1024


class PlotError(Exception):
    """
    The results cannot be plotted (no curves, or malformed ones).
    """


def curve(figures, key):
    """
    :param dict figures: The deploy benchmark's figures.
    :param str key: ``curve_volume`` or ``curve_new``.
    :return: ``(MiB list, seconds list)``, sorted by size.
    :raises PlotError: If the curve is missing or malformed.
    """
    points = figures.get(key)
    if not points:
        raise PlotError("the deploy figures have no %s" % (key,))
    try:
        pairs = sorted((float(mib), float(seconds)) for mib, seconds in points)
    except (TypeError, ValueError):
        raise PlotError("%s is not a list of [MiB, seconds] pairs" % (key,))
    return [mib for mib, _ in pairs], [seconds for _, seconds in pairs]


def push_rate(benchmarks):
    """
    :param dict benchmarks: Figures by benchmark name.
    :return: ``(MB/s, benchmark name)`` of the measured push rate, or
        ``(None, None)``.
    """
    for name in ("deploy", "volumes"):
        rate = benchmarks.get(name, {}).get("push_mb_s")
        if isinstance(rate, (int, float)) and rate > 0:
            return float(rate), name
    return None, None


def plot(results, out):
    """
    Draw the two panels of ``results`` into the PNG file ``out``.

    :param dict results: A results document of ``benchmarks/run``.
    :param str out: Path of the image.
    :raises PlotError: If the results have no downtime curves.
    """
    benchmarks = results.get("benchmarks", {})
    deploy = benchmarks.get("deploy", {})
    by_volume = curve(deploy, "curve_volume")
    by_new = curve(deploy, "curve_new")
    rate, source = push_rate(benchmarks)

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4.5))
    title = "Move downtime, %s" % (results.get("date", "?"),)
    if results.get("quick"):
        title += " (--quick)"
    figure.suptitle(title)

    sizes, downtimes = by_volume
    floor = min(downtimes)
    left.plot(sizes, downtimes, "o-", label="measured (1 MiB new data)")
    left.plot([sizes[0], sizes[-1]], [floor, floor], "--",
              label="ideal: independent of the volume's size")
    left.set_xscale("log")
    left.set_xlabel("volume size (MiB)")
    left.set_ylabel("downtime (s)")
    left.set_ylim(bottom=0)
    left.legend()

    written, downtimes = by_new
    floor = min(downtimes)
    right.plot(written, downtimes, "o-", label="measured")
    if rate is None:
        right.plot([written[0], written[-1]], [floor, floor], "--",
                   label="ideal: flat at the smallest downtime "
                   "(no push rate measured)")
    else:
        right.plot(written, [floor + mib * MiB / 1e6 / rate
                             for mib in written], "--",
                   label="ideal: smallest downtime + new data at\n"
                   "%.0f MB/s (push rate, %s benchmark)" % (rate, source))
    right.set_xlabel("data written since the last push (MiB)")
    right.set_ylabel("downtime (s)")
    right.set_ylim(bottom=0)
    right.legend()

    figure.tight_layout()
    figure.savefig(out, format="png", dpi=100)
    pyplot.close(figure)


def main(argv):
    parser = argparse.ArgumentParser(
        description="Plot move downtime from a benchmarks/run results file.")
    parser.add_argument("results", help="results JSON of benchmarks/run")
    parser.add_argument("out", nargs="?",
                        help="PNG to write (default: next to the results, "
                        "also copied to latest.png there)")
    options = parser.parse_args(argv)
    try:
        with open(options.results) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        sys.stderr.write("plot.py: cannot read %s: %s\n" % (options.results,
                                                             e))
        return 1
    out = options.out or os.path.splitext(options.results)[0] + ".png"
    try:
        plot(results, out)
    except PlotError as e:
        sys.stderr.write("plot.py: %s: %s\n" % (options.results, e))
        return 1
    print("plot.py: wrote %s" % (out,))
    if options.out is None:
        latest = os.path.join(os.path.dirname(os.path.abspath(out)),
                              "latest.png")
        shutil.copyfile(out, latest)
        print("plot.py: copied to %s" % (latest,))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
