"""
The agent bringing applications with volumes back by itself, on the lab:
a crashed container (its process killed outside Docker) is restarted by
the node's agent, and a node rebooted without a failover (``admin/lab
kill`` then ``revive``) runs its application again once its standbys
confirm it still owns the volume, with no deploy in between.
"""

import secrets

from .test_failover_lab import EVERY, FailoverDrill, _admin_lab, _clean, _wait


def _started_at(drill, node):
    """
    :return: ``(running, start time)`` of the application's container on
        ``node`` as Docker says, or ``None`` when there is none.
    """
    result = node.run(["docker", "inspect", "-f",
                       "{{.State.Running}} {{.State.StartedAt}}",
                       "flocker--" + drill.name], check=False, timeout=60)
    words = result.stdout.split()
    return (words[0] == "true", words[1]) if len(words) == 2 else None


def test_crash_restarted(lab, tmp_path):
    """
    The application's process killed from outside Docker (no ``kill``
    event: a crash) is started again by the agent, on the same node, and
    goes on writing to the same volume.
    """
    drill = FailoverDrill(lab, str(tmp_path), "rcr-" + secrets.token_hex(3),
                          _admin_lab, every=EVERY)
    node1 = drill.nodes[0]
    try:
        seconds, result = drill.deploy()
        assert result.returncode == 0, result.stdout + result.stderr
        _wait(lambda: drill.newest_stamp(node1) is not None, 60, "writes")
        before = _started_at(drill, node1)
        written = drill.newest_stamp(node1)
        pid = node1.run(["docker", "inspect", "-f", "{{.State.Pid}}",
                         "flocker--" + drill.name], timeout=60).stdout.strip()
        node1.run(["kill", "-9", pid], timeout=60)
        _wait(lambda: (_started_at(drill, node1) or (False, ""))[0] and
              _started_at(drill, node1)[1] != before[1], 60, "restart")
        _wait(lambda: (drill.newest_stamp(node1) or 0) > written + 1, 60,
              "writes after the restart")
        assert drill.running_on() == [node1.name]
    finally:
        _clean(drill)


def test_reboot_without_failover(lab, tmp_path):
    """
    The node running the application loses power and boots again, with no
    failover meanwhile: its agent holds the application until both
    standbys accept a push from it, then runs it again, with its data,
    without any deploy.
    """
    drill = FailoverDrill(lab, str(tmp_path), "rrb-" + secrets.token_hex(3),
                          _admin_lab, every=EVERY)
    node1 = drill.nodes[0]
    killed = False
    try:
        seconds, result = drill.deploy()
        assert result.returncode == 0, result.stdout + result.stderr
        watcher = drill.watch_replicas()
        try:
            _wait(lambda: len({a for a, _, _ in watcher.replicas}) == 2,
                  120, "standby copies")
        finally:
            watcher.stop()
        written = drill.newest_stamp(node1)
        drill.fault("kill", node1)
        killed = True
        drill.fault("revive", node1)
        killed = False
        _wait(lambda: drill.running_on() == [node1.name], 120,
              "the application back on its node")
        _wait(lambda: (drill.newest_stamp(node1) or 0) > written, 60,
              "writes after the reboot")
        stamps = node1.run(["docker", "exec", "flocker--" + drill.name,
                            "head", "-n", "1", "/data/stamps"],
                           timeout=60).stdout.split()
        # The same volume: its first writes are still there.
        assert stamps and float(stamps[0]) < written
    finally:
        if killed:
            drill.fault("revive", node1)
        _clean(drill)
