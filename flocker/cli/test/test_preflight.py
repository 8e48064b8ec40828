"""
Tests for :mod:`flocker.cli._preflight`: what a deploy says about nodes
that did not report.
"""

from twisted.trial.unittest import SynchronousTestCase

from flocker.cli._preflight import refusal_line, silent_node_line


class SilentNodeLineTests(SynchronousTestCase):
    """
    Tests for ``silent_node_line``.
    """

    def test_timeout_hint(self):
        """
        A node that did not answer in time is named with the reason (the
        agent's address and step prefix removed) and told what to check.
        """
        self.assertEqual(
            silent_node_line("10.0.0.9", "10.0.0.9: report: unreachable: no "
                             "answer on port 22 within 2 s"),
            "10.0.0.9: did not report: unreachable: no answer on port 22 "
            "within 2 s (check the address in the deployment file and that "
            "the machine is up and reachable)")

    def test_refused_hint(self):
        """
        A refused connection points at the node's SSH server.
        """
        self.assertIn(
            "(check that the node's SSH server is running)",
            silent_node_line("n1", "unreachable: connection refused on "
                             "port 22"))

    def test_self_explaining_reason(self):
        """
        A reason that already says what to do (a held deploy lock) gets no
        hint added.
        """
        reason = ("another flocker-deploy holds this node (deploy abc, 9 s "
                  "left); wait for it")
        self.assertEqual(silent_node_line("n1", "n1: report: " + reason),
                         "n1: did not report: " + reason)


class RefusalLineTests(SynchronousTestCase):
    """
    Tests for ``refusal_line``.
    """

    def test_counts_nodes(self):
        """
        The refusal counts the silent nodes and says whether a plan was
        made (dry run) or changes were made.
        """
        self.assertEqual(
            (refusal_line({"a": "x", "b": "y"}, dry_run=False),
             refusal_line({"a": "x"}, dry_run=True)),
            ("nothing was changed: 2 nodes of the deployment did not "
             "report, and a deploy changes nothing until every node has",
             "the plan was not made: 1 node of the deployment did not "
             "report, and a deploy changes nothing until every node has"))
