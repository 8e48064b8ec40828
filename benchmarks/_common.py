"""
Shared helpers for Flocker's benchmarks: repetition, medians and the output
convention (a readable table, then one JSON object as the last line).
"""

import json
import operator
import statistics
import time

__all__ = ["timed", "repeat", "summary", "print_table", "emit", "meets"]

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


def meets(value, comparison, limit):
    """
    :param value: A figure.
    :param str comparison: ``"<"``, ``"<="``, ``">"`` or ``">="``.
    :param limit: Its target.
    :return: Whether ``value comparison limit`` holds.
    """
    return _COMPARE[comparison](value, limit)


def timed(function, *args, **kwargs):
    """
    :return: ``(seconds, result)`` of calling ``function``.
    """
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def repeat(function, times):
    """
    :return: ``list`` of the seconds each of ``times`` calls took.
    """
    return [timed(function)[0] for _ in range(times)]


def summary(samples):
    """
    :return: ``{"median": …, "min": …, "max": …}`` of ``samples``.
    """
    return {"median": statistics.median(samples), "min": min(samples),
            "max": max(samples)}


def print_table(title, rows, headers):
    """
    Print ``rows`` (sequences of cells) under ``headers`` as aligned text.
    """
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(title)
    for index, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print()


def emit(figures):
    """
    Print ``figures`` as the benchmark's last line: one JSON object.
    """
    print(json.dumps(figures, sort_keys=True))
