#!/usr/bin/env python3
"""
Benchmark of automatic failover on the lab: twenty randomized trials (see
``admin/_lab_trials.py``), each killing or partitioning the node running an
application with ``automatic: true``, or killing a standby's etcd member,
at a random moment of a writer's run; how long the application is
unavailable (RTO), how many seconds of acknowledged writes are lost (RPO),
and whether it ever ran on two nodes or served stale data.

It uses the lab named by ``FLOCKER_LAB_PREFIX``/``FLOCKER_LAB_STATE``
(default prefix ``fau``, state ``/var/lib/flocker-lab-bench-auto``; three
nodes are brought up, each with its etcd member) and takes it down when it
ends, also when it fails (``--keep`` leaves it up).  Every random choice
(fault, delay before it, the standby whose member is killed) comes from
``--seed`` (random when not given), printed with the results.

The RTO is the time from the fault until the application answers the
trial's content on every live node's routed port.  The writer writes a
sequence number every 0.5 s (each write is a ``docker exec``); the RPO is
the time between the acknowledgement of the newest write the new node
serves and that of the last write acknowledged by the fault (zero when
none was lost): with ``every: 2s`` replication it is bounded by the
interval plus a push.

Floors, measured in the same run: for the RTO, the lease's time to live
less one keep-alive interval (etcd ends the lease that long after the last
keep-alive it received, which came at most one interval before the fault;
no standby may start before) plus the time Docker takes to start the same
container by hand on a node, median of three; for the RPO, zero (synchronous
replication) against the replication interval.

The last line printed is a JSON object: ``{"rto_s": …, "rto_max_s": …,
"rto_floor_s": …, "rpo_s": …, "rpo_max_s": …, "split_brain": …, "stale":
…, "trials": …, "seed": …}``.

Before each trial the application must run on one node only, the one etcd
places it on (a bounded wait: after a fault is healed a node may still be
stopping or claiming it); a trial that cannot be prepared, or does not end
as it must, stops the benchmark with exit status 1 and says why.

    python benchmarks/automatic_failover.py [--trials N] [--seed S] [--quick]
                                            [--keep]
"""

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "admin"))

from _lab_automatic import IMAGE, http_answer, lab_command  # noqa: E402
from _lab_client import Lab  # noqa: E402
from _lab_trials import Trials  # noqa: E402

from _common import emit, own_lab_environ, print_table  # noqa: E402

from flocker.etcd import DEFAULT_TIMING  # noqa: E402

PORT = 18098

#: The port of the container started by hand for the floor (not one of the
#: lab tests' applications').
FLOOR_PORT = 18108


def fail(message):
    sys.stderr.write("automatic_failover: %s\n" % (message,))
    raise SystemExit(1)


def start_by_hand(lab, node):
    """
    :return: Seconds ``docker run -d`` of the image takes until its HTTP
        server answers on the node (the floor of a start).
    """
    name = "floor-" + secrets.token_hex(3)
    address = lab.address(node)
    started = time.monotonic()
    lab.run(node, ["docker", "run", "-d", "--name", name, "-p",
                   "%d:80" % (FLOOR_PORT,), IMAGE, "httpd", "-f", "-p", "80",
                   "-h", "/www"])
    while http_answer(lab, address, FLOOR_PORT) is None:
        if time.monotonic() - started > 60:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    lab.run(node, ["docker", "rm", "-f", name], check=False)
    return elapsed


def _cell(value, form="%.1f"):
    return "-" if value is None else form % (value,)


def _rows(results):
    return [(r.number, r.fault + (" of " + r.victim if r.victim else ""),
             "%.2f" % (r.delay,), r.source, r.target or "-",
             _cell(r.stopped), _cell(r.rto), _cell(r.rpo),
             "%d/%d" % (r.lost, r.acknowledged), r.split_brain, r.stale)
            for r in results]


def _median(values):
    return round(statistics.median(values), 2) if values else None


def figures(asked, seed, results, floor):
    """
    :param int asked: The trials asked for.
    :param int seed: Their seed.
    :param results: The :class:`TrialResult` of those run.
    :param float floor: The RTO's floor.
    :return: The benchmark's figures (``dict``).
    """
    cut = [r for r in results if r.fault != "etcd member"]
    rtos = [r.rto for r in cut if r.rto is not None]
    rpos = [r.rpo for r in cut if r.rpo is not None]
    members = [r for r in results if r.fault == "etcd member"]
    return {
        "trials": len(results), "trials_asked": asked, "seed": seed,
        "rto_s": _median(rtos),
        "rto_max_s": round(max(rtos), 2) if rtos else None,
        "rto_floor_s": round(floor, 2),
        "rpo_s": _median(rpos),
        "rpo_max_s": round(max(rpos), 2) if rpos else None,
        "writes_lost": sum(r.lost for r in cut),
        "writes_acknowledged": sum(r.acknowledged for r in cut),
        "partition_stopped_s": _median(
            [r.stopped for r in cut
             if r.fault == "partition" and r.stopped is not None]),
        "split_brain": sum(r.split_brain for r in results),
        "stale": sum(r.stale for r in results),
        "completed": sum(1 for r in results if r.completed),
        "member_losses": len(members),
        "member_losses_moved": sum(1 for r in members if not r.completed),
    }


def main():
    """
    Run the benchmark; take its lab down when it ends, whatever happened,
    unless ``--keep``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quick", action="store_true",
                        help="three trials")
    parser.add_argument("--keep", action="store_true",
                        help="leave the lab up at the end")
    options = parser.parse_args()
    if os.geteuid() != 0:
        fail("needs root")
    os.environ.update(own_lab_environ(os.environ, "fau",
                                      "/var/lib/flocker-lab-bench-auto"))
    try:
        return run(options)
    finally:
        if not options.keep:
            down = lab_command(["down"], check=False, timeout=900)
            if down.returncode != 0:
                sys.stderr.write("automatic_failover: admin/lab down: %s\n"
                                 % (down.stderr.strip()[-500:],))


def run(options):
    """
    Run the trials on the lab named in the environment, print the table and
    the JSON line.

    :return: The exit status: 0, or 1 when a trial could not be prepared or
        did not complete.
    """
    count = 3 if options.quick else max(1, options.trials)
    seed = options.seed if options.seed is not None else random.randrange(
        10 ** 6)
    state = os.environ["FLOCKER_LAB_STATE"]
    up = lab_command(["up", "3"], check=False, timeout=900)
    if up.returncode != 0:
        fail("admin/lab up 3: %s" % (up.stderr.strip()[-500:],))
    with open(os.path.join(state, "lab.json")) as f:
        lab = Lab.from_description(json.load(f))
    directory = os.path.join(state, "bench-automatic")
    os.makedirs(directory, exist_ok=True)
    print("seed %d, %d trial(s)" % (seed, count), flush=True)
    trials = Trials(lab, directory, seed, PORT, prefix="bench")
    floors = [start_by_hand(lab, trials.nodes[i % 3]) for i in range(3)]
    floor = (DEFAULT_TIMING.ttl - DEFAULT_TIMING.renew_every +
             statistics.median(floors))
    problem = None
    try:
        for number in range(count):
            try:
                result = trials.run(number)
            except (subprocess.CalledProcessError,
                    subprocess.TimeoutExpired, RuntimeError) as e:
                problem = "trial %d not prepared: %s" % (number, e)
                break
            print("  ".join(str(c) for c in _rows([result])[0]), flush=True)
            if not result.completed:
                problem = "trial %d did not complete" % (number,)
                break
    finally:
        trials.clean()
    print()
    print_table("Automatic failover, %d trial(s), seed %d (lease ttl %d s, "
                "fence after %.1f s, replication every 2 s)" % (
                    len(trials.results), seed, DEFAULT_TIMING.ttl,
                    DEFAULT_TIMING.safe_for),
                _rows(trials.results),
                ("TRIAL", "FAULT", "DELAY_S", "FROM", "TO", "STOPPED_S",
                 "RTO_S", "RPO_S", "LOST/ACKED", "SPLIT", "STALE"))
    print("RTO floor: lease ttl %d s - keep-alive interval %.1f s + start "
          "by hand %.2f s (median of %s); RPO floor: 0 s (synchronous), "
          "replication interval 2 s" % (
              DEFAULT_TIMING.ttl, DEFAULT_TIMING.renew_every,
              statistics.median(floors),
              ", ".join("%.2f" % f for f in floors)))
    if problem:
        print("stopped early: %s" % (problem,))
    result = figures(count, seed, trials.results, floor)
    emit(result)
    return 0 if problem is None else 1


if __name__ == "__main__":
    sys.exit(main())
