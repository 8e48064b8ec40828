"""
Shared helpers for Flocker's benchmarks: repetition, medians and the output
convention (a readable table, then one JSON object as the last line).
"""

import json
import operator
import statistics
import subprocess
import time

__all__ = ["timed", "repeat", "summary", "print_table", "emit", "meets",
           "zfs", "zfs_ok", "zfs_send_over_ssh"]

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


def zfs(*argv):
    """
    Run ``zfs`` on the host (zfs-fuse serves every lab node's pool there).

    :return: The ``CompletedProcess`` (text output), whatever its status.
    """
    return subprocess.run(["zfs"] + list(argv), capture_output=True,
                          text=True, timeout=300)


def zfs_ok(*argv):
    """
    Run ``zfs`` on the host.

    :raises RuntimeError: With its error line, if it fails.
    """
    result = zfs(*argv)
    if result.returncode != 0:
        raise RuntimeError("zfs %s failed: %s" % (" ".join(argv),
                                                  result.stderr.strip()))


def zfs_send_over_ssh(machine, address, snapshot, base, target,
                      timeout=600):
    """
    The bare pipeline Flocker's pushes are measured against: ``zfs send
    [-i BASE] SNAPSHOT`` on the host into ``ssh root@ADDRESS zfs receive
    -F TARGET`` run on lab ``machine`` (its namespaces, its ssh settings).

    :param float timeout: Seconds the receiving side may take.

    :raises RuntimeError: With ssh's error output, if either side failed.
    """
    sender = subprocess.Popen(
        ["zfs", "send"] + (["-i", base] if base else []) + [snapshot],
        stdout=subprocess.PIPE)
    receiver = machine.popen(
        ["ssh", "root@" + address, "zfs", "receive", "-F", target],
        stdin=sender.stdout, stderr=subprocess.PIPE)
    sender.stdout.close()
    _, error = receiver.communicate(timeout=timeout)
    sender.wait(60)
    if sender.returncode or receiver.returncode:
        raise RuntimeError("raw pipeline failed: %s" % (error,))
