#!/usr/bin/env python3
"""
Benchmark of volume moves on the lab (``admin/lab``): how fast
``flocker-volume push`` (done by the node's agent) sends a volume to another
node, compared with the bare ``zfs send | ssh | zfs receive`` pipeline (the
floor), and how long a small incremental push takes.

On node1 a volume holding 512 MiB (``--mib``; 256 with ``--quick``) of
random data is pushed to node2 (the size ``benchmarks/agent_push.py`` sends
too: large enough that the raw pipeline's start-up, ssh's connection, which
the agent's push does not pay again, is a small part of its time, and two
copies still fit in a lab pool):

* ``raw``: ``zfs send pool1/vol@snap | ssh root@node2 zfs receive
  pool2/copy``, the baseline: nothing but ZFS and SSH (same ssh settings as
  Flocker's, run inside node1's namespaces);
* ``push``: ``flocker-volume push vol node2`` on node1, as the first push of
  a volume (node2 has no copy).  The command asks node1's agent over its
  socket, and the agent pushes agent to agent (Conch, node1's own key, the
  nodes' trust installed first as a deploy would): snapshot, negotiation
  with node2's agent through its peer socket, the stream, node2 making its
  copy a read-only follower, the bookkeeping.  The time is the push as the
  command reports it (from its request to the agent's answer); the whole
  command, its start included, is shown too.  Nodes are as a deploy leaves
  them (their agents running).  Each push is a first copy for node2 (its
  copy is destroyed before), so a full stream; node1 keeps its record of
  what node2 had, as after a copy lost there (see
  ``benchmarks/agent_push.py``: erasing it by hand would leave a hold on
  each pushed snapshot, and node1's pruning failing on them).

Neither timed path includes pruning: the agent prunes node1's oldest
snapshot after its answer.  So that this does not run beside the next
timed step, the benchmark then waits, untimed, until node1 has pruned
(``push_prune_s``: the median time from the answer).

Both run once untimed first (warm-up: the data in the ARC, both nodes'
commands started once).  Each repetition then runs both, alternating which
goes first, removing node2's copy in between, and gives one ratio:
``push_ratio`` is the median over the repetitions of push rate / raw rate
(raw seconds / push seconds of the same repetition), ``push_ratio_spread``
its interquartile range over median, ``push_ratio_uncertainty`` the
half-width of the median's 95 % confidence interval over the median.  At
least ``--reps`` repetitions (default ``$FLOCKER_BENCH_RUNS``, else 5, or
3 with ``--quick``; at least 3), then more until the uncertainty is under
2.5 %, at most ``--max-reps`` (25; 6 with ``--quick``) or
``--max-seconds`` (240; 180 with ``--quick``); ``reps`` says how many
ran, ``settled`` whether the uncertainty got under 2.5 %.
Then 1 MiB of new random data is written and pushed incrementally,
``--reps`` times (``incr_reps``), beside the bare ``zfs send -i | ssh |
zfs receive -F``.

Pinning: node1's processes (its sshd, its agent)
and every command the benchmark starts there run on one CPU, node2's
processes (its sshd and what it starts for a receive) on another, the
same for both paths, put back at the end (``pinning`` in the JSON).  The
ZFS work itself runs in the one zfs-fuse daemon every lab shares, which
is left alone.

Uses the running lab (``admin/lab up N`` with its current size, which is a
no-op for a healthy lab); brings up ``admin/lab up 2`` if there is none, and
down again at the end in that case.  Needs root.

MB is 10^6 bytes.  The last line printed is a JSON object:
``{"push_mb_s": …, "raw_mb_s": …, "push_ratio": …, "incr_1m_s": …,
"push_prune_s": …}`` (plus a few more figures).
"""

import argparse
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    add_repetition_options, agent_client, can_pin, cpu_pair, emit,
    install_node_trust,
    pin_processes, pinned,
    print_ratios, print_table, ratio_figures, repeat_until_settled,
    repetitions_from, rotated, summary, zfs, zfs_ok, zfs_send_over_ssh,
)

sys.path.insert(0, str(REPO / "admin"))
from _lab_client import (  # noqa: E402
    LabFailed, LabUnavailable, start_lab, stop_lab,
)
from flocker.volume._api import (  # noqa: E402
    FOLLOWER_SNAPSHOTS, SNAPSHOT_PREFIX,
)
from flocker.volume._push import BASE_HOLD  # noqa: E402
from flocker.volume._receive import RECEIVED_HOLD  # noqa: E402

REPS = os.environ.get("FLOCKER_BENCH_RUNS")
#: MiB of data pushed unless told otherwise (``--mib``).
DEFAULT_MIB = 512
#: Seconds to wait at most for node1's agent to prune after a push.
PRUNE_WAIT = 120.0
INCREMENT = 1024 * 1024
LAB_SCRIPT = REPO / "admin" / "lab"
MB = 1e6

_TIME = re.compile(r": (full stream|incremental from \S+), .* in ([0-9.]+) s")


def _lab_state():
    return Path(os.environ.get("FLOCKER_LAB_STATE") or "/var/lib/flocker-lab")


def _open_lab():
    """
    :return: ``(Lab, started)``: the lab, and whether this run brought it up.
    """
    description = _lab_state() / "lab.json"
    nodes = 2
    started = True
    if description.exists():
        with open(description) as f:
            nodes = max(2, len(json.load(f)["nodes"]))
        started = False
    try:
        lab = start_lab(LAB_SCRIPT, nodes=nodes)
    except (LabUnavailable, LabFailed) as e:
        raise SystemExit("cannot use the lab: %s" % (e,))
    return lab, started


def _destroy(dataset):
    for attempt in range(40):
        result = zfs("destroy", "-r", dataset)
        if result.returncode == 0 or "does not exist" in result.stderr:
            return
        zfs("unmount", dataset)
        _release_holds(dataset)
        time.sleep(0.25)
    raise RuntimeError("cannot destroy %s: %s" % (dataset, result.stderr))


def _release_holds(dataset):
    """
    Release the holds Flocker puts on a copy's snapshots (a received copy
    holds its newest snapshot, an owner the base of each target), which
    keep ``zfs destroy`` from removing them.  (zfs-fuse cannot list holds:
    each of Flocker's tags is released from each snapshot.)
    """
    listed = zfs("list", "-H", "-o", "name", "-t", "snapshot", "-r", dataset)
    for snapshot in listed.stdout.split():
        for tag in (RECEIVED_HOLD, BASE_HOLD):
            zfs("release", tag, snapshot)


def wait_for_prune(dataset, timeout=PRUNE_WAIT):
    """
    Wait until ``dataset`` (node1's copy) keeps no more of Flocker's
    snapshots than a push leaves there once its queued pruning ran (the
    snapshot pushed and the ``FOLLOWER_SNAPSHOTS`` before it).

    :return: Seconds waited.
    :raises RuntimeError: Not pruned within ``timeout`` seconds.
    """
    started = time.monotonic()
    while True:
        listed = zfs("list", "-H", "-o", "name", "-t", "snapshot", "-r",
                     dataset).stdout.split()
        ours = [name for name in listed
                if name.split("@", 1)[-1].startswith(SNAPSHOT_PREFIX)]
        waited = time.monotonic() - started
        if len(ours) <= FOLLOWER_SNAPSHOTS + 1:
            return waited
        if waited > timeout:
            raise RuntimeError("node1 kept %d snapshots of %s for %.0f s "
                               "after a push" % (len(ours), dataset, waited))
        time.sleep(0.02)


#: CPU of each node's processes and commands (``None``: anywhere).
_CPUS = {}


def _pin_nodes(environ):
    """
    Pin node1's processes to the sending CPU and node2's to the receiving
    one (every thread; children started later inherit it).

    :return: What to give :func:`pin_processes` back to undo it.
    """
    import _lab_host
    import _lab_model
    model = _lab_model.Lab.from_environ(environ)
    before = {}
    for index in (1, 2):
        name = "node%d" % (index,)
        if _CPUS.get(name) is None:
            continue
        pids = _lab_host.machine_processes([model.node(index)])
        pinned_now = pin_processes(pids, {_CPUS[name]})
        print("pinned %d processes of %s to CPU %d" % (
            len(pinned_now), name, _CPUS[name]))
        before.update(pinned_now)
    return before


def _unpin(before):
    for pid, cpus in before.items():
        pin_processes([pid], cpus)


def _volume(lab, node, *argv):
    result = lab.run(node, pinned(["flocker-volume"] + list(argv),
                                  _CPUS.get(node)), check=False,
                     timeout=600)
    if result.returncode != 0:
        raise RuntimeError("flocker-volume %s on %s failed: %s" % (
            " ".join(argv), node, result.stderr.strip()))
    return result.stdout


def _agent(lab, node, *arguments):
    """
    Run ``_agent_client.py ARGUMENTS`` on ``node`` (its agent's socket),
    pinned as the node is.

    :return: Its standard output.
    """
    return agent_client(lab, node, arguments, _CPUS.get(node))


def _warm(lab, node):
    """
    Run one ``flocker-volume`` command on ``node`` first (its files and the
    pool's metadata in the caches, as on a node that has served deploys).
    """
    _volume(lab, node, "list")


def _write(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * 1024 * 1024))
            f.write(chunk)
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())


def _raw(lab, snapshot, base, target):
    """
    ``zfs send [-i base] snapshot | ssh node2 zfs receive -F target``.

    :return: ``(seconds, stream bytes)``.
    """
    started = time.monotonic()
    zfs_send_over_ssh(lab.machine("node1"), lab.address("node2"), snapshot,
                      base, target, cpu=_CPUS.get("node1"))
    elapsed = time.monotonic() - started
    used = zfs("get", "-H", "-p", "-o", "value", "referenced",
               target).stdout.strip()
    return elapsed, int(used or 0)


def _push(lab, name):
    """
    ``flocker-volume push`` on node1.

    :return: ``(reported seconds, wall seconds, incremental, output)``.
    """
    started = time.monotonic()
    output = _volume(lab, "node1", "push", name, lab.address("node2"))
    wall = time.monotonic() - started
    match = _TIME.search(output)
    if not match:
        raise RuntimeError("unexpected push output: %r" % (output,))
    return (float(match.group(2)), wall, match.group(1) != "full stream",
            output.strip())


def _stream_size(output):
    match = re.search(r", ([0-9.]+ \S+) in ", output)
    return match.group(1) if match else "?"


def pinning_figures():
    """
    :return: The ``pinning`` entry of the JSON figures: each node's CPU.
    """
    return {"node1_cpu": _CPUS.get("node1"), "node2_cpu": _CPUS.get("node2")}


def clean_up(lab, started, pinning, name, raw_copy):
    """
    Undo a run: unpin, drop node2's expectation of the volume, delete the
    volume on both nodes and the raw copy, and take the lab down if this
    run brought it up.
    """
    _unpin(pinning)
    lab.run("node2", ["flocker-node", "expect", name], check=False)
    for node in ("node1", "node2"):
        lab.run(node, ["flocker-volume", "delete", name], check=False,
                timeout=300)
    _destroy(raw_copy)
    if started:
        stop_lab(LAB_SCRIPT)


def _row(label, samples, size=None):
    stats = summary(samples)
    rate = "" if size is None else "%.0f" % (size / MB / stats["median"],)
    return [label, "%.3f" % stats["median"],
            "%.3f-%.3f" % (stats["min"], stats["max"]), rate]


def main():
    parser = argparse.ArgumentParser(
        description="Volume pushes on the lab against the bare zfs | ssh "
        "pipeline.")
    parser.add_argument("--quick", action="store_true",
                        help="a 256 MiB volume instead of %d MiB, 3 to 6 "
                        "repetitions" % (DEFAULT_MIB,))
    parser.add_argument("--mib", type=int, default=None,
                        help="MiB of data in the volume (default %d)" % (
                            DEFAULT_MIB,))
    add_repetition_options(parser, "full-push repetition")
    options = parser.parse_args()
    if options.mib is None:
        options.mib = 256 if options.quick else DEFAULT_MIB
    size = options.mib * 1024 * 1024
    policy = repetitions_from(
        parser, options,
        max(3, int(REPS)) if REPS else (3 if options.quick else 5),
        6 if options.quick else 25, 180.0 if options.quick else 240.0)
    reps = policy.minimum
    if size <= 0:
        parser.error("--mib must be positive")
    mib = size >> 20
    lab, started = _open_lab()
    name = "bench-" + uuid.uuid4().hex[:8]
    pool1, pool2 = lab.pool("node1"), lab.pool("node2")
    raw_copy = "%s/%s-raw" % (pool2, name)
    figures = {}
    if can_pin():
        _CPUS["node1"], _CPUS["node2"] = cpu_pair(os.sched_getaffinity(0))
    pinning = {}
    try:
        for node in ("node1", "node2"):
            _warm(lab, node)
        pinning = _pin_nodes(os.environ)
        _volume(lab, "node1", "create", name)
        # flocker-volume push is node1's agent's push: with node1's own
        # key and the trust a deploy installs (installed here as a deploy
        # would); node2 accepts the first copy from node1 only if told to.
        node1 = install_node_trust(lab, _agent)["node1"]
        lab.run("node2", ["flocker-node", "expect", name, node1],
                timeout=120)
        mountpoint = _volume(lab, "node1", "mountpoint", name).strip()
        _write(os.path.join(mountpoint, "data"), size)
        snapshot = "%s/%s@raw-full" % (pool1, name)
        zfs_ok("snapshot", snapshot)

        raw_times, push_times, push_walls, prune_times = [], [], [], []
        raw_bytes, push_output = 0, ""

        def raw_full():
            _destroy(raw_copy)
            return _raw(lab, snapshot, None, raw_copy)

        def push_full():
            # As for a copy lost on node2: none there, so a full stream
            # (node1's record of what node2 had is kept: see the module
            # docstring).  Then node1's pruning, untimed.
            _destroy("%s/%s" % (pool2, name))
            result = _push(lab, name)
            if result[2]:
                raise RuntimeError("a first push was incremental: %s"
                                   % (result[3],))
            prune_times.append(wait_for_prune("%s/%s" % (pool1, name)))
            return result

        # Warm-up, untimed: both paths once.
        raw_full()
        push_full()

        def repetition(index):
            nonlocal raw_bytes, push_output
            this = {}
            for what in rotated(["raw", "push"], index):
                if what == "raw":
                    this["raw"], raw_bytes = raw_full()
                    raw_times.append(this["raw"])
                else:
                    this["push"], wall, _, push_output = push_full()
                    push_times.append(this["push"])
                    push_walls.append(wall)
            return {"push_ratio": this["raw"] / this["push"]}

        settling = repeat_until_settled(repetition, policy)

        incr_times, incr_walls, raw_incr_times = [], [], []
        incr_output = ""
        base = "raw-full"
        for rep in range(reps):
            _write(os.path.join(mountpoint, "more-%d" % (rep,)), INCREMENT)
            new = "raw-incr-%d" % (rep,)
            zfs_ok("snapshot", "%s/%s@%s" % (pool1, name, new))
            order = ["raw", "push"] if rep % 2 == 0 else ["push", "raw"]
            for what in order:
                if what == "raw":
                    seconds, _ = _raw(lab, "%s/%s@%s" % (pool1, name, new),
                                      base, raw_copy)
                    raw_incr_times.append(seconds)
                else:
                    seconds, wall, incremental, incr_output = _push(lab, name)
                    if not incremental:
                        raise RuntimeError("a push after a snapshot was "
                                           "not incremental: %s"
                                           % (incr_output,))
                    incr_times.append(seconds)
                    incr_walls.append(wall)
            base = new

        rows = [
            _row("raw zfs send | ssh | zfs receive (%d MiB)" % (mib,),
                 raw_times, size),
            _row("flocker-volume push, full (%d MiB)" % (mib,), push_times,
                 size),
            _row("  same, whole command incl. its start", push_walls,
                 size),
            _row("  then node1's pruning, after its answer (untimed)",
                 prune_times),
            _row("raw incremental (1 MiB)", raw_incr_times),
            _row("flocker-volume push, incremental (1 MiB)", incr_times),
            _row("  same, whole command incl. its start", incr_walls),
        ]
        print_table("Volume push, node1 -> node2 (%d full, %d incremental "
                    "reps, interleaved)" % (settling.repetitions, reps),
                    rows, ["what", "median s", "min-max s", "MB/s"])
        print_ratios("Ratio of each repetition",
                     [("push_ratio: push rate / raw rate",
                       settling.samples["push_ratio"])], settling)
        print("full push stream: %s; raw stream (as received): %d bytes; "
              "incremental push stream: %s" % (
                  _stream_size(push_output), raw_bytes,
                  _stream_size(incr_output)))
        push_rate = size / MB / summary(push_times)["median"]
        raw_rate = size / MB / summary(raw_times)["median"]
        figures = {
            "push_mb_s": round(push_rate, 1),
            "raw_mb_s": round(raw_rate, 1),
            "incr_1m_s": round(summary(incr_times)["median"], 3),
            "push_command_mb_s": round(
                size / MB / summary(push_walls)["median"], 1),
            "incr_1m_command_s": round(summary(incr_walls)["median"], 3),
            "raw_incr_1m_s": round(summary(raw_incr_times)["median"], 3),
            "push_prune_s": round(summary(prune_times)["median"], 3),
            "reps": settling.repetitions,
            "settled": settling.settled,
            "incr_reps": reps,
            "volume_mib": mib,
            "pinning": pinning_figures(),
        }
        figures.update(ratio_figures("push_ratio",
                                     settling.samples["push_ratio"]))
    finally:
        clean_up(lab, started, pinning, name, raw_copy)
    emit(figures)


if __name__ == "__main__":
    main()
