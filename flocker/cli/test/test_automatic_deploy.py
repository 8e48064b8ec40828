"""
Tests for what ``flocker-deploy`` does after an automatic failover: a
deployment file older than it is refused, and ``--status`` says where the
application runs now.
"""

from twisted.trial.unittest import SynchronousTestCase

from ..._change import leaves
from ...node._automatic_config import moved_by_failover
from ...node._fake import FakeCluster
from ...node.test.test_automatic import (
    P, S1, S2, _deployment, _moved_state,
)
from .._deploy import deploy
from .._status import cluster_status


class AfterFailoverTests(SynchronousTestCase):
    """
    The deploy client after web failed over from ``P`` to ``S2``.
    """

    def test_deploy_refused(self):
        """
        ``deploy`` with such a file changes nothing and is refused with the
        line.
        """
        cluster = FakeCluster([P, S1, S2], images=["flocker/busybox"])
        for address in (S1, S2):
            cluster.agents[address].state = _moved_state().nodes[address]
        result = self.successResultOf(deploy(_deployment(), cluster.agents))
        self.assertEqual(
            (moved_by_failover(_deployment(), _moved_state()), 0),
            (list(result.refused), len(leaves(result.plan))))

    def test_status(self):
        """
        ``--status`` says the application was moved by automatic failover
        and where the file places it.
        """
        rows = cluster_status(_deployment(), _moved_state())
        self.assertEqual(
            [("web", S2, "moved here by automatic failover (epoch 2); the "
              "deployment file says 10.0.0.1")],
            [(row.application, row.node, row.drift) for row in rows])
