"""
The agent bringing applications with volumes back by itself, on the lab:
a crashed container (its process killed outside Docker) is restarted by
the node's agent, and a node rebooted without a failover (``admin/lab
kill`` then ``revive``) runs its application again once its standbys
confirm it still owns the volume, with no deploy in between.
"""

import secrets
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "admin"))

from _lab_drill import FailoverDrill, admin_lab, wait_until  # noqa: E402

#: The standby interval of the drill, seconds.
EVERY = 2.0


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


class RestartLabTests(SynchronousTestCase):
    """
    The drill's application (a writer on its volume, two standbys) on the
    lab's first node.
    """

    def drill(self, prefix):
        """
        :return: A ``FailoverDrill`` of a new application, cleaned up after
            the test.
        """
        drill = FailoverDrill(shared_lab(), str(temporary_path(self)),
                              prefix + secrets.token_hex(3), admin_lab,
                              every=EVERY)
        self.addCleanup(drill.clean)
        return drill

    def test_crash_restarted(self):
        """
        The application's process killed from outside Docker (no ``kill``
        event: a crash) is started again by the agent, on the same node,
        and goes on writing to the same volume.
        """
        drill = self.drill("rcr-")
        node1 = drill.nodes[0]
        seconds, result = drill.deploy()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        wait_until(lambda: drill.newest_stamp(node1) is not None, 60,
                   "writes")
        before = _started_at(drill, node1)
        written = drill.newest_stamp(node1)
        pid = node1.run(["docker", "inspect", "-f", "{{.State.Pid}}",
                         "flocker--" + drill.name], timeout=60).stdout.strip()
        node1.run(["kill", "-9", pid], timeout=60)

        def restarted():
            now = _started_at(drill, node1)
            return now is not None and now[0] and now[1] != before[1]
        wait_until(restarted, 60, "restart")
        wait_until(lambda: (drill.newest_stamp(node1) or 0) > written + 1,
                   60, "writes after the restart")
        self.assertEqual(drill.running_on(), [node1.name])

    def test_reboot_without_failover(self):
        """
        The node running the application loses power and boots again, with
        no failover meanwhile: its agent holds the application until both
        standbys accept a push from it, then runs it again, with its data,
        without any deploy.
        """
        drill = self.drill("rrb-")
        node1 = drill.nodes[0]
        seconds, result = drill.deploy()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        watcher = drill.watch_replicas()
        try:
            wait_until(lambda: len({a for a, _, _ in watcher.replicas}) == 2,
                       120, "standby copies")
        finally:
            watcher.stop()
        written = drill.newest_stamp(node1)
        killed = [True]
        # Revived even if the test fails first: the lab's other tests need
        # the node.
        self.addCleanup(lambda: killed[0] and admin_lab(["revive",
                                                         node1.name]))
        drill.fault("kill", node1)
        drill.fault("revive", node1)
        killed[0] = False
        wait_until(lambda: drill.running_on() == [node1.name], 120,
                   "the application back on its node")
        wait_until(lambda: (drill.newest_stamp(node1) or 0) > written, 60,
                   "writes after the reboot")
        stamps = node1.run(["docker", "exec", "flocker--" + drill.name,
                            "head", "-n", "1", "/data/stamps"],
                           timeout=60).stdout.split()
        # The same volume: its first writes are still there.
        self.assertTrue(stamps and float(stamps[0]) < written, stamps)
