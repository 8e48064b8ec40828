#!/usr/bin/env python3
"""
Benchmark of a volume push agent to agent on the lab (``admin/lab``): node1's
Flocker agent sends a volume to node2's agent, against the bare pipeline in
the same run.

On node1 a volume holding 512 MiB (``--mib``; 128 with ``--quick``) of
random data is pushed to node2, as in ``benchmarks/volumes.py`` (see there
why that size):

* ``raw``: ``zfs send pool1/vol@snap | ssh root@node2 zfs receive -F
  pool2/copy`` (OpenSSH on both ends), the floor: nothing but ZFS and SSH;
* ``agent``: node1's agent is asked over its socket to push the volume
  (``PushVolume``, as a deploy's pre-copy does): it takes a snapshot and
  sends the stream over its Conch connection to node2, where sshd hands the
  session to node2's agent (the node key's forced ``flocker-node-bridge
  --peer``), which runs ``zfs receive`` and makes the copy a follower.  The
  time is from the request to the agent's answer; node2 has no copy
  before (a full stream).

Neither timed path includes pruning.  The bare pipeline prunes nothing; the
agents prune after a push (node1 destroys its oldest snapshot once it keeps
more than ``FOLLOWER_SNAPSHOTS`` + 1, node2 nothing, since each push brings
a whole new copy there), and their answer does not wait for it.  So that the
pruning does not run beside the next timed step, the benchmark waits after
each agent push, untimed, until node1 has pruned, and reports how long after
the answer that was (``agent_prune_s``, the median) and the ratio counting
it (``agent_push_pruned_ratio`` = raw seconds / (agent seconds + prune
seconds)), beside ``agent_push_ratio``.

For the agents to reach each other, a fresh node key is installed on both
nodes through their agents first (as a deploy does; the next deploy
replaces it).  Each path runs once untimed first; then each repetition
runs both, alternating which goes first, and gives one ratio
``agent_push_ratio`` = raw seconds / agent seconds (agent rate over raw
rate), repeated until its uncertainty (half-width of the median's 95 %
confidence interval over the median) is under 2.5 % or the bounds of
``--reps``/``--max-reps``/``--max-seconds`` (5/40/180 s; 3/6/90 s with
``--quick``) are reached; ``*_spread`` is the interquartile range of the
repetitions' ratios over their median.  Processes are pinned as in ``benchmarks/volumes.py``.

After the pushes (the agents have pushed and received, so each has loaded
what a push needs), ``agent_rss_mb`` is the largest resident size of the
lab's agents, beside two floors measured by their own interpreter on node1
in the same run: ``reactor_rss_mb`` (it imports only Twisted's reactor),
``reactor_no_tls_rss_mb`` (the same with pyOpenSSL marked absent, as the
agent runs) and ``python_rss_mb`` (bare); MB there is 2^20 bytes
(``VmRSS``).

MB is 10^6 bytes.  A table, then the last line printed is a JSON object:
``{"agent_push_mb_s": …, "raw_mb_s": …, "agent_push_ratio": …,
"agent_push_pruned_ratio": …, "agent_prune_s": …, …}``.
"""

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    AGENT_MEMORY_HEADERS, add_repetition_options, agent_client, agent_memory,
    agent_memory_rows, can_pin, cpu_pair, emit, install_node_trust, pinned,
    print_ratios,
    print_table, ratio_figures, repeat_until_settled, repetitions_from,
    rotated, summary, zfs_ok,
)
from volumes import (  # noqa: E402
    DEFAULT_MIB, MB, REPS, _CPUS, _destroy, _open_lab, _pin_nodes, _raw,
    _row, _volume, _warm, _write, clean_up, pinning_figures, wait_for_prune,
)


def _agent(lab, node, *arguments):
    """
    Run ``_agent_client.py ARGUMENTS`` on ``node`` (its agent's socket),
    pinned as the node is.

    :return: Its standard output.
    """
    return agent_client(lab, node, arguments, _CPUS.get(node))


def main():
    parser = argparse.ArgumentParser(
        description="A volume push agent to agent on the lab against the "
        "bare zfs | ssh pipeline.")
    parser.add_argument("--quick", action="store_true",
                        help="a 128 MiB volume instead of %d MiB, 3 to 6 "
                        "repetitions" % (DEFAULT_MIB,))
    parser.add_argument("--mib", type=int, default=None,
                        help="MiB of data in the volume (default %d)" % (
                            DEFAULT_MIB,))
    add_repetition_options(parser, "repetition")
    options = parser.parse_args()
    if options.mib is None:
        options.mib = 128 if options.quick else DEFAULT_MIB
    if options.mib <= 0:
        parser.error("--mib must be positive")
    size = options.mib * 1024 * 1024
    policy = repetitions_from(
        parser, options,
        max(3, int(REPS)) if REPS else (3 if options.quick else 5),
        6 if options.quick else 40, 90.0 if options.quick else 180.0)
    lab, started = _open_lab()
    name = "bench-" + uuid.uuid4().hex[:8]
    pool1, pool2 = lab.pool("node1"), lab.pool("node2")
    raw_copy = "%s/%s-raw" % (pool2, name)
    target = lab.address("node2")
    figures = {}
    if can_pin():
        _CPUS["node1"], _CPUS["node2"] = cpu_pair(os.sched_getaffinity(0))
    pinning = {}
    try:
        for node in ("node1", "node2"):
            _warm(lab, node)
        identities = install_node_trust(lab, _agent)
        # As a deploy tells a move's target before its pushes: node2
        # accepts the volume's first copy from node1 only.
        _agent(lab, "node2", "expect", name, identities["node1"])
        pinning = _pin_nodes(os.environ)
        _volume(lab, "node1", "create", name)
        mountpoint = _volume(lab, "node1", "mountpoint", name).strip()
        _write(os.path.join(mountpoint, "data"), size)
        snapshot = "%s/%s@raw-full" % (pool1, name)
        zfs_ok("snapshot", snapshot)
        raw_times, agent_times, prune_times = [], [], []
        sent = [0]

        def raw_full():
            _destroy(raw_copy)
            return _raw(lab, snapshot, None, raw_copy)[0]

        def agent_full():
            # As for a copy lost on node2: none there, so a full stream.
            # (node1's record of what node2 had is kept: node1 releases
            # its hold on that snapshot, the base it would have used, when
            # it records the new one.  Erasing the record by hand would
            # leave every such hold behind and each prune failing on it.)
            _destroy("%s/%s" % (pool2, name))
            answer = json.loads(_agent(lab, "node1", "push", name, target))
            sent[0] = answer["bytes"]
            pruned = wait_for_prune("%s/%s" % (pool1, name))
            return answer["seconds"], pruned

        # Warm-up, untimed: both paths once.
        raw_full()
        agent_full()

        def repetition(index):
            this = {}
            for what in rotated(["raw", "agent"], index):
                if what == "raw":
                    this["raw"] = raw_full()
                    raw_times.append(this["raw"])
                else:
                    this["agent"], this["prune"] = agent_full()
                    agent_times.append(this["agent"])
                    prune_times.append(this["prune"])
            return {"agent_push_ratio": this["raw"] / this["agent"],
                    "agent_push_pruned_ratio": this["raw"] / (
                        this["agent"] + this["prune"])}

        settling = repeat_until_settled(repetition, policy)
        mib = options.mib
        print_table(
            "Volume push, node1 -> node2, %d MiB (%d reps, interleaved)" % (
                mib, settling.repetitions),
            [_row("raw zfs send | ssh | zfs receive", raw_times, size),
             _row("agent to agent (PushVolume on node1)", agent_times,
                  size),
             _row("  then node1's pruning, after its answer (untimed)",
                  prune_times)],
            ["what", "median s", "min-max s", "MB/s"])
        print_ratios("Ratio of each repetition", [
            ("agent_push_ratio: agent rate / raw rate",
             settling.samples["agent_push_ratio"]),
            ("agent_push_pruned_ratio: the same, the agent's pruning counted",
             settling.samples["agent_push_pruned_ratio"])], settling)
        print("The raw pipeline prunes nothing; the agent prunes after its "
              "answer (not in agent_push_ratio).")
        print("agent stream: %d bytes" % (sent[0],))
        memory = agent_memory(lab)
        print_table("Memory after the pushes", agent_memory_rows(memory),
                    AGENT_MEMORY_HEADERS)
        figures = {
            "agent_push_mb_s": round(
                size / MB / summary(agent_times)["median"], 1),
            "raw_mb_s": round(size / MB / summary(raw_times)["median"], 1),
            "agent_prune_s": round(summary(prune_times)["median"], 3),
            "reps": settling.repetitions,
            "settled": settling.settled,
            "volume_mib": mib,
            "pinning": pinning_figures(),
        }
        figures.update(memory)
        for ratio in ("agent_push_ratio", "agent_push_pruned_ratio"):
            figures.update(ratio_figures(ratio, settling.samples[ratio]))
    finally:
        clean_up(lab, started, pinning, name, raw_copy)
    emit(figures)


if __name__ == "__main__":
    main()
