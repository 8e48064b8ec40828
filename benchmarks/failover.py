#!/usr/bin/env python3
"""
Benchmark of failover on the lab (``admin/lab``): how much data a dead
node costs (RPO), how long ``flocker-deploy --failover`` takes until the
application answers on every live node's routed port (RTO), and trials of
faults at random moments counting what must never happen.

The application (see ``admin/_lab_drill.py``) stamps ``/data/stamps`` ten
times a second with the machines' shared uptime and serves it on port
8090; its volume has two standby nodes, which the primary's agent
refreshes every ``--every`` seconds (2).  Each trial:

1. waits a random moment (0 to 1.5 intervals: pushes are often mid-way);
2. faults the primary: ``kill`` (power loss) or ``partition``;
3. runs ``flocker-deploy --failover PRIMARY``, while the client polls
   every live node's port for a stamp newer than the fault;
4. measures RPO = fault time - newest stamp before it in the new primary's
   copy, and RTO = from the start of ``--failover`` to the last live node
   answering with new data;
5. ``revive``s / ``heal``s the old primary, runs a plain deploy of the
   rewritten file, and checks every node's port.

Counted over all trials (targets: all zero):

* ``split_brain``: the application running on two reachable nodes at once
  after the failover (checked after it, after the revive or heal, and
  after the plain deploy);
* ``stale_served``: a node's port answering with the old copy (no stamp
  after the fault) after the revive, or after the plain deploy;
* ``lost_beyond_rpo``: trials losing more than the interval plus the
  slowest replica transfer seen in the trial (the RPO bound);
* ``isolated_running_after_heal``: partition trials where the old primary,
  unreachable during the failover, still ran its application 30 s after
  the partition healed.  It should stop by itself once its replication is
  refused by the standbys (they follow the later epoch);
  ``self_fence_s`` is how long after the heal that took (median, max).
  Until then it serves its stale copy on its own address.

The floors, measured in the same run: ``noop_deploy_s`` (a plain deploy that
changes nothing: connecting, reports and planning, part of every RTO) and
the slowest replica transfer (part of every RPO bound).

Targets: RTO <= 10 s; RPO <= interval + one transfer.  Trials run until
``--trials`` of each kind (20; 3 with ``--quick``) or ``--max-seconds``
(1800; 300 with ``--quick``).  Brings up its own lab (prefix ``flkf`` unless
``FLOCKER_LAB_PREFIX`` names one) and takes it down at the end unless
``--keep-lab``.  Needs root.  Prints a table, then the JSON object.
"""

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "admin"))

from _common import emit, own_lab_environ, print_table, verdict  # noqa: E402
from _lab_client import (  # noqa: E402
    LabFailed, LabUnavailable, start_lab, stop_lab,
)
from _lab_drill import FailoverDrill, probe, uptime  # noqa: E402

LAB_SCRIPT = REPO / "admin" / "lab"

#: Seconds the failover may take until every live node answers.
RTO_TARGET = 10.0


def _admin_lab(env):
    def run(argv):
        return subprocess.run([sys.executable, str(LAB_SCRIPT)] + argv,
                              capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, env=env)
    return run


def _wait(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class Tally(object):
    """
    What the trials found.
    """

    def __init__(self):
        self.rpo, self.rto, self.bounds = [], [], []
        self.self_fence = []
        self.counts = {"split_brain": 0, "stale_served": 0,
                       "lost_beyond_rpo": 0, "isolated_running_after_heal": 0,
                       "failed_trials": 0}
        self.trials = {"kill": 0, "partition": 0}
        self.notes = []


def trial(drill, fault, tally, rng, log):
    """
    One fault, failover, recovery and plain deploy.
    """
    primary, standbys = drill.placement()
    live = [n for n in drill.nodes if n is not primary]
    watcher = drill.watch_replicas()
    try:
        # Two rounds after the last deploy: the standbys are followers of
        # the current primary.
        if not _wait(lambda: len({a for a, _, _ in watcher.replicas}) ==
                     len(standbys) and watcher.count() >= 2 * len(standbys),
                     120):
            raise RuntimeError("no standby copies within 120 s")
        time.sleep(rng.uniform(0, 1.5 * drill.every))
        moment = uptime()
        drill.fault("kill" if fault == "kill" else "partition", primary)
    finally:
        watcher.stop()
    bound = drill.every + watcher.slowest() + 0.3
    watcher = drill.watch([n.address for n in live], after=moment)
    began = uptime()
    seconds, result = drill.deploy("--failover", primary.address)
    answered = json.loads(watcher.communicate(timeout=120)[0] or "{}")
    if result.returncode != 0:
        tally.counts["failed_trials"] += 1
        tally.notes.append("%s trial: failover failed: %s" % (
            fault, (result.stdout + result.stderr).strip()[-300:]))
        return
    times = [t for t in answered.values() if t is not None]
    rto = (max(times) - began) if len(times) == len(live) else None
    new, _ = drill.placement()
    kept = drill.newest_before(new, moment)
    rpo = None if kept is None else moment - kept
    tally.trials[fault] += 1
    tally.rto.append(rto if rto is not None else float("inf"))
    tally.rpo.append(rpo if rpo is not None else float("inf"))
    tally.bounds.append(bound)
    if rpo is None or rpo > bound:
        tally.counts["lost_beyond_rpo"] += 1
    down = {primary.name} if fault == "kill" else set()
    if len(drill.running_on(down=down | {primary.name})) != 1:
        tally.counts["split_brain"] += 1
    drill.fault("revive" if fault == "kill" else "heal", primary)
    healed = time.monotonic()
    if fault == "partition":
        # The old primary learns it lost the volume when its replication
        # is refused (the standbys follow the later epoch) and stops.
        if _wait(lambda: primary.name not in drill.running_on(), 30):
            tally.self_fence.append(time.monotonic() - healed)
        else:
            tally.counts["isolated_running_after_heal"] += 1
    else:
        time.sleep(1.0)
    running = drill.running_on()
    if fault == "kill":
        if len(running) != 1:
            tally.counts["split_brain"] += 1
        status, newest = probe(drill.lab, [primary.address])[
            primary.address]
        if status == 200 and (newest is None or newest <= moment):
            tally.counts["stale_served"] += 1
    seconds, result = drill.deploy()
    if result.returncode != 0:
        tally.counts["failed_trials"] += 1
        tally.notes.append("%s trial: plain deploy failed: %s" % (
            fault, (result.stdout + result.stderr).strip()[-300:]))
    if len(drill.running_on()) != 1:
        tally.counts["split_brain"] += 1
    served = probe(drill.lab, [n.address for n in drill.nodes])
    for status, newest in served.values():
        if status == 200 and (newest is None or newest <= moment):
            tally.counts["stale_served"] += 1
    log("%-9s %s -> %s  RPO %s s (bound %.2f)  RTO %s s" % (
        fault, primary.name, new.name,
        "%.2f" % rpo if rpo is not None else "-", bound,
        "%.2f" % rto if rto is not None else "-"))


def _median(values):
    finite = [v for v in values if v != float("inf")]
    return statistics.median(finite) if finite else None


def main():
    parser = argparse.ArgumentParser(
        description="Failover RPO/RTO and fault trials on the lab.")
    parser.add_argument("--quick", action="store_true",
                        help="3 trials of each kind, 300 s at most")
    parser.add_argument("--trials", type=int, default=None,
                        help="trials of each kind (default 20)")
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--every", type=float, default=2.0,
                        help="standby interval, seconds (default 2)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep-lab", action="store_true")
    options = parser.parse_args()
    trials = options.trials or (3 if options.quick else 20)
    budget = options.max_seconds or (300 if options.quick else 1800)
    env = own_lab_environ(os.environ, "flkf", "/var/lib/flocker-lab-flkf")
    os.environ.update(env)
    try:
        lab = start_lab(LAB_SCRIPT, nodes=3, env=env)
    except (LabUnavailable, LabFailed) as e:
        raise SystemExit("cannot use the lab: %s" % (e,))
    rng = random.Random(options.seed)
    tally = Tally()
    directory = tempfile.mkdtemp(prefix="flocker-failover-")
    drill = FailoverDrill(lab, directory, "ffb-" + secrets.token_hex(3),
                          _admin_lab(env), every=options.every)
    started = time.monotonic()
    try:
        seconds, result = drill.deploy()
        if result.returncode != 0:
            raise SystemExit("first deploy failed: %s" % (result.stdout,))
        noop, _ = drill.deploy()
        kinds = ["kill", "partition"] * trials
        for fault in kinds:
            if time.monotonic() - started > budget:
                tally.notes.append("stopped after %d s (--max-seconds)" % (
                    budget,))
                break
            try:
                trial(drill, fault, tally, rng, print)
            except Exception as e:
                tally.counts["failed_trials"] += 1
                tally.notes.append("%s trial: %s: %s" % (
                    fault, type(e).__name__, e))
                for node in drill.nodes:
                    for command in ("revive", "heal"):
                        _admin_lab(env)([command, node.name])
    finally:
        drill.place(None)
        drill.deploy()
        if not options.keep_lab:
            stop_lab(LAB_SCRIPT, env=env)
    rto, rpo = _median(tally.rto), _median(tally.rpo)
    figures = {
        "kill_trials": tally.trials["kill"],
        "partition_trials": tally.trials["partition"],
        "rto_s": rto, "rto_max_s": max(tally.rto) if tally.rto else None,
        "rpo_s": rpo, "rpo_max_s": max(tally.rpo) if tally.rpo else None,
        "rpo_bound_s": max(tally.bounds) if tally.bounds else None,
        "noop_deploy_s": noop, "every_s": options.every,
        "self_fence_s": _median(tally.self_fence),
        "self_fence_max_s": max(tally.self_fence) if tally.self_fence
        else None,
        "rto_target_s": RTO_TARGET,
        "rto_ok": rto is not None and verdict(
            max(tally.rto), "<=", RTO_TARGET) == "met",
    }
    figures.update(tally.counts)
    rows = [
        ("trials (kill / partition)", "%d / %d" % (
            tally.trials["kill"], tally.trials["partition"]), ""),
        ("RTO median / max (s)", "%s / %s" % (
            _fmt(rto), _fmt(figures["rto_max_s"])), "<= %.0f" % RTO_TARGET),
        ("RPO median / max (s)", "%s / %s" % (
            _fmt(rpo), _fmt(figures["rpo_max_s"])),
         "<= interval + one push (%s)" % (_fmt(figures["rpo_bound_s"]),)),
        ("floor: no-op deploy (s)", _fmt(noop), ""),
        ("self-fence after heal, median / max (s)", "%s / %s" % (
            _fmt(figures["self_fence_s"]),
            _fmt(figures["self_fence_max_s"])), ""),
    ] + [(name.replace("_", " "), count, "0")
         for name, count in sorted(tally.counts.items())]
    print_table("failover (interval %gs)" % (options.every,), rows,
                ("figure", "value", "target"))
    for note in tally.notes:
        print("note: " + note)
    emit(figures)


def _fmt(value):
    return "-" if value is None else "%.2f" % (value,)


if __name__ == "__main__":
    main()
