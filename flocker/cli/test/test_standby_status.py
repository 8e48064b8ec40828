"""
Tests for ``flocker.cli._standby_status``: the standby rows of
``flocker-deploy --status``.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, AttachedVolume, ClusterState, Deployment, Node, NodeState,
    Replication, ReplicationStatus, Standby, StandbyStatus,
)
from flocker.cli._standby_status import (
    StandbyRow, format_standbys, standby_status, standbys_ok,
)

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
WEB = Application(name="web", image="i",
                  volume=AttachedVolume(mountpoint="/data"))
DEPLOYMENT = Deployment(
    nodes=[Node(address=A, applications=[WEB]), Node(address=B),
           Node(address=C)],
    standbys={"web": Standby(application="web", nodes=[B, C])})
REPLICATION = Replication(volume="web", application="web", standbys=[B, C],
                          interval=10 * 10 ** 9)


def reporting(**standbys):
    """
    :return: A cluster state in which A replicates web to B and C, with
        the given :class:`StandbyStatus` keyword arguments per standby
        (``b=``, ``c=``).
    """
    figures = {address: StandbyStatus(address=address, **standbys.get(
        key, {})) for key, address in (("b", B), ("c", C))}
    return ClusterState(nodes={
        A: NodeState(address=A, replication={"web": ReplicationStatus(
            replication=REPLICATION, standbys=figures)}),
        B: NodeState(address=B), C: NodeState(address=C)})


class StandbyStatusTests(SynchronousTestCase):
    """
    ``standby_status`` rows and their verdict.
    """

    def test_replicating(self):
        """
        Each standby of a replicating primary is a row with its figures; no
        problem means the standbys are fine.
        """
        rows = standby_status(DEPLOYMENT, reporting(
            b=dict(snapshot="s2", lag=1.5, bytes_sent=4096)))
        self.assertEqual(rows, [
            StandbyRow(application="web", volume="web", primary=A,
                       standby=B, lag=1.5, snapshot="s2", bytes_sent=4096,
                       problem=None),
            StandbyRow(application="web", volume="web", primary=A,
                       standby=C, lag=None, snapshot=None, bytes_sent=0,
                       problem=None)])
        self.assertTrue(standbys_ok(rows))

    def test_failing(self):
        """
        A standby whose last update failed has that failure as its problem.
        """
        rows = standby_status(DEPLOYMENT, reporting(
            c=dict(error="cannot reach node 10.0.0.3")))
        self.assertEqual([row.problem for row in rows],
                         [None, "cannot reach node 10.0.0.3"])
        self.assertFalse(standbys_ok(rows))

    def test_not_replicating(self):
        """
        A standby the file asks for that no primary replicates to is a
        problem, named with the configured primary.
        """
        rows = standby_status(DEPLOYMENT, ClusterState(nodes={
            A: NodeState(address=A)}))
        self.assertEqual(
            [(row.primary, row.standby, row.problem) for row in rows],
            [(A, B, "not replicated (deploy to start it)"),
             (A, C, "not replicated (deploy to start it)")])

    def test_primary_unreachable(self):
        """
        A primary that did not report leaves its standbys unknown.
        """
        rows = standby_status(DEPLOYMENT, ClusterState(),
                              unreachable={A: "timed out"})
        self.assertEqual({row.problem for row in rows},
                         {"unknown: node 10.0.0.1 did not report"})

    def test_not_configured(self):
        """
        Replication the file no longer asks for is a problem.
        """
        rows = standby_status(Deployment(nodes=DEPLOYMENT.nodes),
                              reporting())
        self.assertEqual({row.problem for row in rows},
                         {"not in the configuration"})

    def test_deployment_file_alone(self):
        """
        With the deployment file alone, the file's placements name the
        primary.
        """
        alone = Deployment(nodes=[Node(address=A), Node(address=B),
                                  Node(address=C)],
                           standbys=DEPLOYMENT.standbys)
        rows = standby_status(alone, reporting(), placed={"web": B})
        self.assertEqual({row.problem for row in rows},
                         {"the configuration places web on 10.0.0.2"})

    def test_format(self):
        """
        The rows print as an aligned table with lag, size and problem.
        """
        rows = standby_status(DEPLOYMENT, reporting(
            b=dict(snapshot="s2", lag=1.54, bytes_sent=4096),
            c=dict(error="cannot reach node 10.0.0.3")))
        self.assertEqual(format_standbys(rows), [
            "STANDBY   APPLICATION  VOLUME  PRIMARY   LAG       SENT     "
            "SNAPSHOT  PROBLEM",
            "10.0.0.2  web          web     10.0.0.1  1.5 s     4.0 KiB  "
            "s2        -",
            "10.0.0.3  web          web     10.0.0.1  none yet  0 B      "
            "-         cannot reach node 10.0.0.3"])
        self.assertEqual(format_standbys([]), [])

    def test_json(self):
        """
        A row's JSON form has every field.
        """
        row = standby_status(DEPLOYMENT, reporting(
            b=dict(snapshot="s2", lag=1.5, bytes_sent=1)))[0]
        self.assertEqual(json.loads(json.dumps(row.to_dict())), {
            "application": "web", "volume": "web", "primary": A,
            "standby": B, "lag": 1.5, "snapshot": "s2", "bytes_sent": 1,
            "problem": None})
