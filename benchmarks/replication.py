#!/usr/bin/env python3
"""
Benchmark of continuous replication on the lab (``admin/lab``): what a
standby copy costs the application writing to its volume.

Two applications run side by side on node1, each with a volume of its own:
``on`` has a standby (node2, ``every: 2s``, ``--every``) and ``off`` has
none.  A writer in each container writes random data (16 MiB prepared once
in the container's own file system) into its volume for ``--seconds``
seconds (10; 6 with ``--quick``: several intervals), 16 MiB files one
after the other, each ``fsync``ed, overwriting the same eight files round
and round: an application writing as fast as the volume takes it, the
worst case for replication.  While the ``on`` writer runs, node1's agent
takes a snapshot every interval and sends node2 what changed, sharing the
node's CPU, pool and (on the lab) the one zfs-fuse daemon with the writer:
that is the overhead measured.  Before each timed run the standby is let
catch up (its lag under 1.5 intervals), so the ``off`` writer never shares
the machine with the ``on`` volume's backlog.

The floor of what replication can cost here, measured in the same
repetitions: the ``off`` writer again, beside a bare loop doing the least
any replication of it must do, every interval (start to start) a snapshot,
``zfs send -i`` of what changed into ``ssh node2 zfs receive -F`` from
node1's namespaces, and the older snapshot destroyed on both sides (no
Flocker process takes part).  On the lab the standby's receive shares the
writer's two cores and its one zfs-fuse daemon, so the floor is well below
a real machine's.

Each repetition runs the three (``off``, ``on``, ``floor``) one after the
other, the order rotated.  Its ratios, in the same repetition:
``overhead_ratio`` is ``on`` MB/s over ``off`` MB/s (target >= 0.9),
``floor_ratio`` ``floor`` over ``off`` (the most any replication could
reach here) and ``on_vs_floor`` ``on`` over ``floor`` (Flocker against the
bare tools); each is reported as the median over repetitions with its
``*_spread`` (interquartile range over median) and ``*_uncertainty``
(half-width of the median's 95 % confidence interval over the median).
At least ``--reps`` repetitions (default ``$FLOCKER_BENCH_RUNS``, else 5,
or 3 with ``--quick``), then more until every uncertainty is under 2.5 %,
at most ``--max-reps`` (12; 6 with
``--quick``) or ``--max-seconds`` (600; 180 with ``--quick``).

Also reported: the standby's lag read right after each ``on`` write
(``lag_after_write_s``, median: how far behind a write burst leaves the
copy) and the bytes sent to the standby during the repetitions
(``standby_sent_mb``).  Both writers run once untimed first (warm-up), after
the standby confirmed its first copy.

The writer's time is measured around ``docker exec`` on node1, the same
command for both paths.  Uses the running lab named by
``FLOCKER_LAB_PREFIX``/``FLOCKER_LAB_STATE`` (``admin/lab up 3`` when there
is none, down again at the end then).  Needs root.

MB is 10^6 bytes.  The last line printed is a JSON object:
``{"overhead_ratio": ..., "overhead_ratio_spread": ..., "floor_ratio":
..., "on_vs_floor": ..., "on_mb_s": ..., "off_mb_s": ..., "floor_mb_s":
..., "lag_after_write_s": ..., ...}``.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    add_repetition_options, emit, print_ratios, print_table, ratio_figures,
    repeat_until_settled, repetitions_from, rotated, summary, zfs, zfs_ok,
    zfs_send_over_ssh,
)

sys.path.insert(0, str(REPO / "admin"))
from _lab_client import (  # noqa: E402
    LabFailed, LabUnavailable, start_lab, stop_lab,
)

REPS = os.environ.get("FLOCKER_BENCH_RUNS")
LAB_SCRIPT = REPO / "admin" / "lab"
IMAGE = "flocker/busybox:latest"
MB = 1e6
#: MiB per file the writer writes (and fsyncs).
FILE_MIB = 16
#: Seconds to wait at most for the standby's first copy.
PATIENCE = 120

APPLICATIONS = """\
version: 1
applications:
  {on}:
    image: {image}
    command: ["sleep", "100000000"]
    volume: {{mountpoint: /data}}
  {off}:
    image: {image}
    command: ["sleep", "100000000"]
    volume: {{mountpoint: /data}}
"""


def _lab_state():
    return Path(os.environ.get("FLOCKER_LAB_STATE") or "/var/lib/flocker-lab")


def _open_lab():
    """
    :return: ``(Lab, started)``: the lab, and whether this run brought it up.
    """
    started = not (_lab_state() / "lab.json").exists()
    try:
        lab = start_lab(LAB_SCRIPT, nodes=3)
    except (LabUnavailable, LabFailed) as e:
        raise SystemExit("cannot use the lab: %s" % (e,))
    return lab, started


class _Bench(object):
    """
    The two applications, their files and the commands run on the lab.
    """

    def __init__(self, lab, directory, every):
        self.lab = lab
        token = uuid.uuid4().hex[:6]
        self.names = {"on": "rbon-" + token, "off": "rboff-" + token}
        self.addresses = [node.address for node in lab.nodes[:3]]
        self.directory = directory
        self.every = every
        self.applications = self._write("applications.yml",
                                        APPLICATIONS.format(image=IMAGE,
                                                            **self.names))

    def _write(self, filename, text):
        path = os.path.join(self.directory, filename)
        with open(path, "w") as f:
            f.write(text)
        return path

    def deployment(self, placed):
        """
        :return: The path of a deployment file running both applications
            on node1 (or nothing, when not ``placed``), ``on`` with its
            standby on node2.
        """
        n1, n2, n3 = self.addresses
        lines = ["version: 1", "nodes:"]
        for address in self.addresses:
            names = ", ".join(sorted(self.names.values())) if (
                placed and address == n1) else ""
            lines.append("  %s: [%s]" % (address, names))
        if placed:
            lines += ["standby:", "  %s: {nodes: [%s], every: %s}" % (
                self.names["on"], n2, self.every)]
        return self._write("deployment-%s.yml" % (placed,),
                           "\n".join(lines) + "\n")

    def deploy(self, *argv):
        result = self.lab.run_client(
            ["flocker-deploy", "--yes"] + list(argv) + [self.applications],
            check=False, timeout=300)
        if result.returncode != 0:
            raise RuntimeError("flocker-deploy %s failed: %s" % (
                " ".join(argv), (result.stdout + result.stderr)[-2000:]))
        return result

    def exec_in(self, key, script):
        """
        Run a shell script in application ``key``'s container on node1.

        :return: ``(seconds it took around docker exec, its output)``.
        """
        started = time.perf_counter()
        result = self.lab.run("node1", [
            "docker", "exec", "flocker--" + self.names[key], "sh", "-c",
            script], timeout=600)
        return time.perf_counter() - started, result.stdout

    def standby(self):
        """
        :return: The ``on`` volume's standby status as node1 reports it
            (``dict``), or ``None``.
        """
        report = json.loads(self.lab.run("node1", ["flocker-node",
                                                   "report"]).stdout)
        for status in report.get("replication", ()):
            if status["replication"]["volume"] == self.names["on"]:
                for item in status["standbys"]:
                    return item
        return None

    def caught_up(self, interval):
        """
        Wait until the standby's lag is under 1.5 intervals (its backlog
        sent), at most :data:`PATIENCE` seconds.
        """
        deadline = time.monotonic() + PATIENCE
        while True:
            item = self.standby()
            if item is not None and item["lag"] is not None and (
                    item["lag"] < 1.5 * interval):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not catch up in %d s: %r"
                                   % (PATIENCE, item))
            time.sleep(0.25)

    def wait_for_copy(self):
        deadline = time.monotonic() + PATIENCE
        while True:
            item = self.standby()
            if item is not None and item["snapshot"] is not None:
                return item
            if time.monotonic() > deadline:
                raise RuntimeError("the standby has no copy after %d s: %r"
                                   % (PATIENCE, item))
            time.sleep(0.5)


class _FloorLoop(object):
    """
    The floor of replication: the bare tools doing the least any
    replication must do, beside the same writer.  Every interval (start to
    start, as the agent's rounds), a snapshot of the ``off`` volume's
    dataset, ``zfs send -i`` of what changed since the previous one into
    ``ssh NODE2 zfs receive -F`` (:func:`zfs_send_over_ssh`, from node1's
    namespaces), and the previous snapshot destroyed on both sides.  No
    Flocker process takes part.
    """

    def __init__(self, lab, volume, every):
        node1, node2 = lab.nodes[0], lab.nodes[1]
        self._node1 = node1
        self._address = node2.address
        self.source = "%s/%s" % (node1.pool, volume)
        self.target = "%s/floor-%s" % (node2.pool, volume)
        self._every = every
        self._count = 0
        self._previous = None
        self.rounds = 0

    def _round(self):
        snapshot = "%s@floor-%d" % (self.source, self._count)
        self._count += 1
        zfs_ok("snapshot", snapshot)
        zfs_send_over_ssh(self._node1, self._address, snapshot,
                          self._previous, self.target, timeout=300)
        if self._previous is not None:
            old = self._previous.split("@", 1)[1]
            zfs("destroy", self._previous)
            zfs("destroy", "%s@%s" % (self.target, old))
        self._previous = snapshot

    def catch_up(self):
        """
        One round, untimed (the first sends the whole volume).
        """
        self._round()

    def run_beside(self, function):
        """
        Run rounds every interval while ``function()`` runs.

        :return: What ``function`` returned.
        """
        done = threading.Event()
        failed = []

        def loop():
            try:
                while not done.is_set():
                    started = time.monotonic()
                    self._round()
                    self.rounds += 1
                    done.wait(max(0.0, started + self._every
                                  - time.monotonic()))
            except Exception as e:
                failed.append(e)
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            return function()
        finally:
            done.set()
            thread.join(300)
            if failed:
                raise RuntimeError("floor loop: %s" % (failed[0],))

    def clean(self):
        """
        Destroy what the loop made: its snapshot of the source, its copy.
        """
        if self._previous is not None:
            zfs("destroy", self._previous)
        for _ in range(5):
            if zfs("destroy", "-r", self.target).returncode == 0:
                break
            time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(
        description="A writer's throughput on a volume with a standby copy "
        "against one without, on the lab.")
    parser.add_argument("--quick", action="store_true",
                        help="6 s per write instead of 10, 3 to 6 "
                        "repetitions")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds each writer writes per repetition")
    parser.add_argument("--every", type=int, default=2,
                        help="the standby's interval in seconds (default 2)")
    add_repetition_options(parser, "repetition")
    options = parser.parse_args()
    if options.seconds is None:
        options.seconds = 6.0 if options.quick else 10.0
    if not 1 <= options.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    if not 1 <= options.every <= 60:
        parser.error("--every must be between 1 and 60")
    policy = repetitions_from(
        parser, options,
        max(3, int(REPS)) if REPS else (3 if options.quick else 5),
        6 if options.quick else 12, 180.0 if options.quick else 600.0)
    if os.geteuid() != 0:
        sys.exit("benchmarks/replication.py: needs root")
    # Prints how many files it wrote; stops at the first file ending after
    # the time is up (the time is taken around the whole run).
    writer = ("end=$(($(date +%%s) + %d)); n=0; while [ $(date +%%s) -lt "
              "$end ]; do dd if=/tmp/src of=/data/w$((n %% 8)) bs=1M "
              "conv=fsync 2>/dev/null || exit 1; n=$((n + 1)); done; "
              "echo $n" % (int(round(options.seconds)),))
    lab, started = _open_lab()
    import tempfile
    bench = _Bench(lab, tempfile.mkdtemp(prefix="flocker-bench-"),
                   "%ds" % (options.every,))
    figures = {}
    floor = None
    try:
        bench.deploy(bench.deployment(True))
        for key in ("on", "off"):
            bench.exec_in(key, "dd if=/dev/urandom of=/tmp/src bs=1M "
                          "count=%d 2>/dev/null" % (FILE_MIB,))
        bench.wait_for_copy()
        # Warm-up, untimed.
        for key in ("on", "off"):
            bench.caught_up(options.every)
            bench.exec_in(key, writer)
        floor = _FloorLoop(lab, bench.names["off"], options.every)
        rates = {"on": [], "off": [], "floor": []}
        lags = []
        sent_before = bench.standby()["bytes_sent"]

        def repetition(index):
            # The three runs interleaved in each repetition, their order
            # rotated: the machine's other load falls on all three alike.
            this = {}
            for key in rotated(["off", "on", "floor"], index):
                bench.caught_up(options.every)
                if key == "floor":
                    floor.catch_up()
                    seconds, output = floor.run_beside(
                        lambda: bench.exec_in("off", writer))
                else:
                    seconds, output = bench.exec_in(key, writer)
                this[key] = int(output.split()[-1]) * FILE_MIB * 2 ** 20 / (
                    MB * seconds)
                rates[key].append(this[key])
                if key == "on":
                    item = bench.standby()
                    if item is not None and item["lag"] is not None:
                        lags.append(item["lag"])
            return {"overhead_ratio": this["on"] / this["off"],
                    "floor_ratio": this["floor"] / this["off"],
                    "on_vs_floor": this["on"] / this["floor"]}

        settling = repeat_until_settled(repetition, policy)
        sent = bench.standby()["bytes_sent"] - sent_before
        labels = {"off": "off", "on": "on (Flocker)",
                  "floor": "floor (bare zfs send | ssh zfs receive)"}
        rows = [[labels[key], "%.1f" % (statistics.median(rates[key]),),
                 "%.1f-%.1f" % (min(rates[key]), max(rates[key]))]
                for key in ("off", "on", "floor")]
        print_table("writer, %g s per run, %d repetitions" % (
            options.seconds, settling.repetitions), rows,
            ["replication", "MB/s median", "MB/s min-max"])
        print_ratios("Ratios of the writer's throughput, same repetition",
                     [(name, settling.samples[name])
                      for name in ("overhead_ratio", "floor_ratio",
                                   "on_vs_floor")], settling)
        lag = summary(lags) if lags else None
        print_table("standby", [[
            "%ds" % (options.every,), "%.1f" % (sent / MB,),
            "-" if lag is None else "%.2f" % (lag["median"],),
            "-" if lag is None else "%.2f" % (lag["max"],)]],
            ["every", "MB sent", "lag after write (median s)",
             "lag after write (max s)"])
        figures = {
            "on_mb_s": round(statistics.median(rates["on"]), 1),
            "off_mb_s": round(statistics.median(rates["off"]), 1),
            "floor_mb_s": round(statistics.median(rates["floor"]), 1),
            "floor_rounds": floor.rounds,
            "writer_seconds": options.seconds,
            "standby_sent_mb": round(sent / MB, 1),
            "lag_after_write_s": (None if lag is None
                                  else round(lag["median"], 2)),
            "lag_after_write_max_s": (None if lag is None
                                      else round(lag["max"], 2)),
            "every_s": options.every,
            "reps": settling.repetitions,
            "settled": settling.settled,
        }
        for name in ("overhead_ratio", "floor_ratio", "on_vs_floor"):
            figures.update(ratio_figures(name, settling.samples[name]))
    finally:
        try:
            if floor is not None:
                floor.clean()
            bench.deploy(bench.deployment(False))
            for name in bench.names.values():
                bench.deploy("--remove", name, "--with-volumes",
                             bench.deployment(False))
        finally:
            if started:
                stop_lab(LAB_SCRIPT)
    emit(figures)


if __name__ == "__main__":
    main()
