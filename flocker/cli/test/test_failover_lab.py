"""
End-to-end failover on the lab: an application with two standby nodes
survives ``admin/lab kill`` of its node through ``flocker-deploy
--failover``, with its data up to the RPO, served from every live node; the
revived node never runs it; a plain deploy of the rewritten file converges
and sets the stale copy aside.  The same after ``admin/lab partition``: the
old node stops the application by itself once the partition heals.
"""

import secrets
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_path

ADMIN = Path(__file__).resolve().parents[3] / "admin"
sys.path.insert(0, str(ADMIN))

from _lab_drill import (  # noqa: E402
    FailoverDrill, admin_lab as _admin_lab, probe, uptime,
    wait_until as _wait,
)

#: The standby interval of the drill, seconds.
EVERY = 2.0


def _clean(drill):
    """
    Remove the drill's application, its volume and what fencing set aside.
    """
    drill.clean()


class FailoverLabTests(SynchronousTestCase):
    """
    ``flocker-deploy --failover`` on the lab, after a node is killed and
    after it is cut off.
    """

    def test_failover_after_kill(self):
        """
        Kill the node running the application; ``--failover`` starts it on a
        standby with every write up to the last replica (lost writes at most
        the interval plus one transfer), every live node's port serves it, the
        file is rewritten (old one kept as .bak); the revived node holds its
        copy and never runs the application; a plain deploy of the rewritten
        file converges, setting the stale copy aside, and a second one changes
        nothing.
        """
        lab = shared_lab()
        tmp_path = temporary_path(self)
        drill = FailoverDrill(lab, str(tmp_path),
                              "ffo-" + secrets.token_hex(3),
                              _admin_lab, every=EVERY)
        node1 = drill.nodes[0]
        killed = False
        try:
            seconds, result = drill.deploy()
            self.assertEqual(result.returncode, 0,
                             result.stdout + result.stderr)
            watcher = drill.watch_replicas()
            try:
                _wait(lambda: len({a for a, _, _ in watcher.replicas}) == 2 and
                      watcher.count() >= 4, 120, "standby copies")
                original = Path(drill.deployment).read_text()
                # Writes after the last replica: what a power loss costs.
                time.sleep(EVERY / 2)
                moment = uptime()
                drill.fault("kill", node1)
                killed = True
            finally:
                watcher.stop()

            seconds, result = drill.deploy("--failover", node1.address)
            self.assertEqual(result.returncode, 0,
                             result.stdout + result.stderr)
            self.assertIn("rewritten with the new placement", result.stdout)
            self.assertEqual(Path(drill.deployment + ".bak").read_text(),
                             original)
            primary, standbys = drill.placement()
            self.assertTrue(
                primary.name != node1.name and node1.address in standbys)
            self.assertEqual(drill.running_on(down={node1.name}),
                             [primary.name])
            kept = drill.newest_before(primary, moment)
            # Every write up to the newest replica's snapshot survived (stamps
            # come every 0.1 s), and at most an interval and a transfer of
            # writes were lost.
            self.assertTrue(
                kept is not None and kept >= watcher.newest() - 0.2)
            self.assertLessEqual(moment - kept,
                                 EVERY + watcher.slowest() + 0.5)
            live = [n.address for n in drill.nodes if n is not node1]
            served = probe(lab, live)
            self.assertTrue(
                all(status == 200 and newest > moment
                    for status, newest in served.values()),
                served)

            drill.fault("revive", node1)
            killed = False
            time.sleep(2)
            self.assertEqual(drill.running_on(), [primary.name])
            status, newest = probe(lab, [node1.address])[node1.address]
            self.assertTrue(status is None or newest > moment)

            seconds, result = drill.deploy()
            self.assertEqual(result.returncode, 0,
                             result.stdout + result.stderr)
            self.assertEqual(drill.running_on(), [primary.name])
            self.assertTrue(drill.recovery_copies(node1))
            served = probe(lab, [n.address for n in drill.nodes])
            self.assertTrue(
                all(status == 200 and newest > moment
                    for status, newest in served.values()),
                served)
            seconds, again = drill.deploy()
            self.assertIn("cluster already converged", again.stdout,
                          again.stdout)
        finally:
            if killed:
                drill.fault("revive", node1)
            _clean(drill)

    def test_failover_after_partition(self):
        """
        Cut the node running the application off the network; ``--failover``
        starts it on a standby.  When the partition heals, the old node stops
        the application by itself (its replication is refused: the standbys
        follow the later epoch), and a plain deploy sets its stale copy aside,
        with every node's port serving the new copy.
        """
        lab = shared_lab()
        tmp_path = temporary_path(self)
        drill = FailoverDrill(lab, str(tmp_path),
                              "ffp-" + secrets.token_hex(3),
                              _admin_lab, every=EVERY)
        node1 = drill.nodes[0]
        cut = False
        try:
            seconds, result = drill.deploy()
            self.assertEqual(result.returncode, 0,
                             result.stdout + result.stderr)
            watcher = drill.watch_replicas()
            try:
                _wait(lambda: len({a for a, _, _ in watcher.replicas}) == 2,
                      120, "standby copies")
                moment = uptime()
                drill.fault("partition", node1)
                cut = True
            finally:
                watcher.stop()
            seconds, result = drill.deploy("--failover", node1.address)
            self.assertEqual(result.returncode, 0,
                             result.stdout + result.stderr)
            primary, _ = drill.placement()
            self.assertEqual(drill.running_on(),
                             sorted([node1.name, primary.name]))

            drill.fault("heal", node1)
            cut = False
            _wait(lambda: drill.running_on() == [primary.name], 60,
                  "old primary stopping by itself")
            seconds, result = drill.deploy()
            self.assertEqual(result.returncode, 0,
                             result.stdout + result.stderr)
            self.assertTrue(drill.recovery_copies(node1))
            served = probe(lab, [n.address for n in drill.nodes])
            self.assertTrue(
                all(status == 200 and newest > moment
                    for status, newest in served.values()),
                served)
        finally:
            if cut:
                drill.fault("heal", node1)
            _clean(drill)
