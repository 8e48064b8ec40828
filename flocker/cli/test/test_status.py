"""
Tests for :mod:`flocker.cli._status`: the status view.
"""

import json

import attr
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, AttachedVolume, ClusterState, Deployment, Node, NodeState, VolumeState,
)
from flocker.cli._status import (
    StatusRow, cluster_status, format_status, status_json, status_ok,
)
from flocker.node.test.test_plan import A, B, CLIENT, WEB

VOLUME = VolumeState(name="web", owned=True, size=2048,
                     snapshots=["flocker-1", "flocker-2"])


def deployment(**placement):
    """
    :return: A deployment of nodes A and B placing ``placement``.
    """
    return Deployment(nodes=[Node(address=a, applications=placement.get(a, []))
                             for a in (A, B)])


class ClusterStatusTests(SynchronousTestCase):
    """
    Tests for ``cluster_status``.
    """

    def test_converged(self):
        """
        Applications running where the files place them, as configured,
        have no drift; the volume shows size, newest snapshot and owner.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, applications={"web": WEB},
                         running=["web"], volumes={"web": VOLUME}),
            B: NodeState(address=B, applications={"client": CLIENT},
                         running=["client"])})
        rows = cluster_status(deployment(**{A: [WEB], B: [CLIENT]}), state)
        self.assertEqual(rows, [
            StatusRow(application="client", node=B, state="running",
                      ports="-", volume="-", links="5000->web:8080",
                      drift="-"),
            StatusRow(application="web", node=A, state="running",
                      ports="8080->80",
                      volume="2.0 KiB, flocker-2, owned by %s" % (A,),
                      links="-", drift="-")])

    def test_drift(self):
        """
        An application on the wrong node, a stopped one, one configured
        differently, one missing and one not in the files are each named.
        """
        changed = Application(name="client", image="flocker/busybox:2")
        extra = Application(name="extra", image="flocker/busybox")
        state = ClusterState(nodes={
            A: NodeState(address=A, applications={
                "web": WEB, "extra": extra}, running=["extra"]),
            B: NodeState(address=B, applications={"client": changed},
                         running=["client"])})
        other = Application(name="other", image="flocker/busybox")
        rows = cluster_status(
            deployment(**{A: [CLIENT, other], B: [WEB]}), state)
        self.assertEqual(
            [(row.application, row.node, row.state, row.drift)
             for row in rows],
            [("client", B, "running", "should run on %s" % (A,)),
             ("extra", A, "running", "not in the configuration"),
             ("other", "-", "missing", "should run on %s" % (A,)),
             ("web", A, "stopped", "should run on %s" % (B,))])

    def test_configuration_differs(self):
        """
        An application on its node but configured otherwise says so; a
        stopped one on its node should be running.
        """
        changed = Application(name="client", image="flocker/busybox:2")
        state = ClusterState(nodes={
            A: NodeState(address=A, applications={"client": changed},
                         running=["client"]),
            B: NodeState(address=B, applications={"web": WEB})})
        rows = cluster_status(deployment(**{A: [CLIENT], B: [WEB]}), state)
        self.assertEqual(
            [row.drift for row in rows],
            ["configuration differs: image flocker/busybox:2 -> "
             "flocker/busybox; links", "should be running"])
        self.assertEqual(rows[0].differences,
                         ("image flocker/busybox:2 -> flocker/busybox",
                          "links"))

    def test_links_as_installed(self):
        """
        Links changed in place (a project's names) are compared as the
        node installed them, not as the container was created: no drift
        when they are the configured ones, ``links`` when rules are gone.
        """
        created = attr.evolve(CLIENT, links=[])
        converged = ClusterState(nodes={A: NodeState(
            address=A, applications={"client": created}, running=["client"],
            links={"client": CLIENT.links})})
        lost = ClusterState(nodes={A: NodeState(
            address=A, applications={"client": CLIENT}, running=["client"],
            links={"client": frozenset()})})
        self.assertEqual(
            [[row.drift for row in cluster_status(
                deployment(**{A: [CLIENT]}), state)]
             for state in (converged, lost)],
            [["-"], ["configuration differs: links"]])

    def test_unreachable_node(self):
        """
        An application placed on a node that did not report is "missing",
        its drift unknown.
        """
        rows = cluster_status(deployment(**{A: [WEB]}),
                              ClusterState(nodes={}), {A: "timed out"})
        self.assertEqual(rows[0].drift,
                         "unknown: node %s did not report" % (A,))

    def test_volume_without_owner(self):
        """
        A volume no node owns (a hand-off cut short) lists its copies.
        """
        copy = VolumeState(name="web", owned=False, size=1)
        state = ClusterState(nodes={
            A: NodeState(address=A, volumes={"web": copy}),
            B: NodeState(address=B, volumes={"web": copy})})
        [row] = cluster_status(deployment(**{A: [WEB]}), state)
        self.assertEqual(row.volume, "no owner (copies on %s, %s)" % (A, B))


    def test_named_volumes(self):
        """
        An application with named volumes shows each of its volumes by
        name.
        """
        application = attr.evolve(WEB, volumes=[
            AttachedVolume(name="data", mountpoint="/srv/data")])
        state = ClusterState(nodes={
            A: NodeState(address=A, applications={"web": application},
                         running=["web"], volumes={"web": VOLUME}),
            B: NodeState(address=B, volumes={"data": VolumeState(
                name="data", owned=False)})})
        rows = cluster_status(deployment(**{A: [application]}), state)
        self.assertEqual(
            [row.volume for row in rows],
            ["data: no owner (copies on %s); web: 2.0 KiB, flocker-2, owned "
             "by %s" % (B, A)])


class FormatStatusTests(SynchronousTestCase):
    """
    Tests for ``format_status``.
    """

    def test_table(self):
        """
        The rows are an aligned table under a header; nodes that did not
        report are listed after it.
        """
        rows = [StatusRow(application="web", node=A, state="running",
                          ports="8080->80", volume="-", links="-",
                          drift="-")]
        lines = format_status(rows, {B: "connection refused"})
        self.assertEqual(lines[0].split(), [
            "APPLICATION", "NODE", "STATE", "PORTS", "VOLUME", "LINKS",
            "DRIFT"])
        self.assertEqual(lines[1].split(),
                         ["web", A, "running", "8080->80", "-", "-", "-"])
        self.assertEqual(lines[0].index("NODE"), lines[1].index(A))
        self.assertEqual(lines[2],
                         "node %s did not report: connection refused" % (B,))

    def test_empty(self):
        """
        With no application anywhere the table says so.
        """
        self.assertEqual(format_status([])[-1],
                         "(no applications configured or running)")


class StatusJSONTests(SynchronousTestCase):
    """
    Tests for ``status_json`` and ``status_ok``.
    """

    def test_missing_not_converged(self):
        """
        A missing application makes the status not converged; the JSON
        has every row's fields, a row without drift has ``null``.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, applications={"web": WEB},
                         running=["web"], volumes={"web": VOLUME}),
            B: NodeState(address=B)})
        rows = cluster_status(deployment(**{A: [WEB], B: [CLIENT]}), state)
        document = json.loads(json.dumps(status_json(rows, {})))
        self.assertEqual(
            (document["converged"], status_ok(rows),
             [(r["application"], r["state"], r["drift"])
              for r in document["applications"]]),
            (False, False, [("client", "missing", "should run on %s" % (B,)),
                            ("web", "running", None)]))

    def test_converged(self):
        """
        Everything where and as the files say, every node reporting:
        converged.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, applications={"web": WEB},
                         running=["web"], volumes={"web": VOLUME}),
            B: NodeState(address=B)})
        rows = cluster_status(deployment(**{A: [WEB]}), state)
        self.assertEqual((status_ok(rows), status_ok(rows, {B: "down"})),
                         (True, False))
