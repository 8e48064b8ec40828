"""
Tests for ``admin/_lab_trials.py``'s pure parts: the RPO of a trial from
its writer's acknowledgements, and when a trial counts as completed.
"""

import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ADMIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ADMIN))

from _lab_trials import TrialResult, rpo  # noqa: E402

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
