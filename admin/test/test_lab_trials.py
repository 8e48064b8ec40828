"""
Tests for ``admin/_lab_trials.py``'s pure parts: the RPO of a trial from
its writer's acknowledgements, when a trial counts as completed, and where
a trial finds the application settled (on a lab that only answers).
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ADMIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ADMIN))

from _lab_trials import TrialResult, Trials, rpo  # noqa: E402

#: Writes 0..4 acknowledged at 10, 11, ... 14 s.
ACKNOWLEDGED = [(number, 10.0 + number) for number in range(5)]


class RPOTests(SynchronousTestCase):
    """
    ``rpo`` counts the acknowledged writes the new node does not serve.
    """

    def test_none_lost(self):
        """
        Serving the last write acknowledged by the fault loses nothing.
        """
        self.assertEqual((0.0, 0), rpo(ACKNOWLEDGED, 4, 14.5))

    def test_lost(self):
        """
        Serving write 1 when 3 was the last acknowledged by the fault loses
        2 writes and the 2 s between their acknowledgements.
        """
        self.assertEqual((2.0, 2), rpo(ACKNOWLEDGED, 1, 13.5))

    def test_after_fault_not_counted(self):
        """
        Writes acknowledged after the fault was done do not count.
        """
        self.assertEqual((0.0, 0), rpo(ACKNOWLEDGED, 2, 12.5))

    def test_nothing_served_of_the_run(self):
        """
        Serving only what was written before the writer's first
        acknowledgement counts from that first one.
        """
        self.assertEqual((4.0, 5), rpo(ACKNOWLEDGED, -1, 20.0))


class CompletedTests(SynchronousTestCase):
    """
    ``TrialResult.completed`` says whether a trial ended as it must.
    """

    def test_cut(self):
        """
        A kill or partition completes when the application came back.
        """
        self.assertEqual(
            (True, False),
            (TrialResult(number=0, fault="kill", source="node1",
                         target="node2", delay=1.0, rto=12.0).completed,
             TrialResult(number=0, fault="partition", source="node1",
                         target=None, delay=1.0).completed))

    def test_member(self):
        """
        A standby's member loss completes when nothing moved.
        """
        self.assertEqual(
            (True, False),
            (TrialResult(number=0, fault="etcd member", source="node1",
                         target="node1", delay=1.0).completed,
             TrialResult(number=0, fault="etcd member", source="node1",
                         target=None, delay=1.0).completed))


class _AnsweringLab(object):
    """
    A lab of three nodes whose ``docker ps`` and ``etcdctl get`` answer
    from what the test set: where the application's container runs, and
    the placement in etcd.
    """

    node_names = ["node1", "node2", "node3"]

    def __init__(self, running, placed):
        """
        :param running: Names of the nodes running the container.
        :param placed: The node etcd places it on, or ``None``.
        """
        self.running = running
        self.placed = placed

    def address(self, node):
        return "10.99.0.1%s" % (node[-1],)

    def run(self, node, argv, check=True, timeout=None, input=None):
        if argv[0] == "docker":
            out = "0123abcd\n" if node in self.running else ""
        elif argv[0] == "etcdctl" and self.placed is not None:
            out = json.dumps({"node": self.address(self.placed),
                              "epoch": 2}) + "\n"
        else:
            out = ""
        return subprocess.CompletedProcess(argv, 0, out, "")


class SettledTests(SynchronousTestCase):
    """
    ``Trials._settled`` finds the one node running the application where
    etcd places it, or says where it runs.
    """

    def trials(self, running, placed):
        directory = tempfile.mkdtemp(prefix="flocker-trials-test-")
        self.addCleanup(shutil.rmtree, directory)
        return Trials(_AnsweringLab(running, placed), directory, 1, 18000)

    def test_settled(self):
        """
        Running only where etcd places it, the application is settled
        there.
        """
        self.assertEqual(
            "node2", self.trials(["node2"], "node2")._settled(timeout=0))

    def test_two_nodes(self):
        """
        Running on two nodes, it is not settled: the error names both, and
        where etcd places it.
        """
        error = self.assertRaises(
            RuntimeError, self.trials(["node1", "node2"], "node2")._settled,
            timeout=-1)
        self.assertIn("runs on node1, node2, etcd places it on node2",
                      str(error))

    def test_nowhere(self):
        """
        Running nowhere, with no placement (a holder that fenced itself and
        released it), it is not settled.
        """
        error = self.assertRaises(
            RuntimeError, self.trials([], None)._settled, timeout=-1)
        self.assertIn("runs on no node, etcd places it on no node",
                      str(error))
