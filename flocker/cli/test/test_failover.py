"""
Tests for :mod:`flocker.cli._failover`: a failover run through the deploy
on a fake cluster, and the rewrite of the deployment file.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from flocker._change import leaves
from flocker._model import (
    Application, AttachedVolume, Deployment, Node, Port, Route, Standby,
)
from flocker.cli._deploy import deploy
from flocker.cli._failover import FailoverRun
from flocker.node._config import deployment_to_yaml, load_configuration
from flocker.node._failover import moved_deployment
from flocker.node._fake import FakeCluster
from flocker.testtools import temporary_directory

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
IMAGE = "flocker/busybox"
WEB = Application(name="web", image=IMAGE,
                  ports=[Port(internal=80, external=8080)],
                  volume=AttachedVolume(mountpoint="/data"))
PROXY = Application(name="proxy", image=IMAGE,
                    ports=[Port(internal=80, external=8081)])


def deployment():
    """
    :return: WEB and PROXY on A, WEB with standbys B and C.
    """
    return Deployment(
        nodes=[Node(address=A, applications=[WEB, PROXY]), Node(address=B),
               Node(address=C)],
        standbys={"web": Standby(application="web", nodes=[B, C])})


class FailoverRunTests(SynchronousTestCase):
    """
    ``FailoverRun`` with ``deploy`` on fake nodes: A was deployed and
    pushed its volume to B and C, then died.
    """

    def setUp(self):
        self.cluster = FakeCluster([A, B, C], images=[IMAGE])
        self.successResultOf(deploy(deployment(), self.cluster.agents))
        agents = self.cluster.agents
        self.successResultOf(agents[A].push_volume("web", B))
        agents[A].write("web", "written after B's copy")
        self.successResultOf(agents[A].push_volume("web", C))
        self.live = {address: agents[address] for address in (B, C)}

    def test_failover(self):
        """
        The application with the volume starts on C (the freshest copy),
        the other on the least loaded node, every live node routes both
        ports, and only C owns the volume, at epoch 2.
        """
        run = FailoverRun(deployment(), A)
        result = self.successResultOf(deploy(
            deployment(), self.live, plan_for=run.plan_for))
        self.assertTrue(result.converged, result.failed)
        agents = self.cluster.agents
        self.assertEqual(
            ({a: sorted(agents[a].state.running) for a in (B, C)},
             [(a, agents[a].state.volumes["web"].owned,
               agents[a].state.volumes["web"].epoch) for a in (B, C)],
             agents[B].state.routes),
            ({B: ["proxy"], C: ["web"]}, [(B, False, 2), (C, True, 2)],
             frozenset([Route(8080, C)])))
        self.assertEqual(agents[C].data["web"], "written after B's copy")
        self.assertEqual(run.taken_over(result),
                         {"web": (A, C), "proxy": (A, B)})

    def test_routes_use_addresses(self):
        """
        The routes a failover installs target the IP addresses the deploy
        resolved the nodes to, as a plain deploy's do, not the names the
        deployment gives them.
        """
        run = FailoverRun(deployment(), A)
        ips = {A: "192.0.2.1", B: "192.0.2.2", C: "192.0.2.3"}
        result = self.successResultOf(deploy(
            deployment(), self.live, plan_for=run.plan_for, addresses=ips))
        self.assertTrue(result.converged, result.failed)
        agents = self.cluster.agents
        self.assertEqual(
            (agents[B].state.routes, agents[C].state.routes),
            (frozenset([Route(8080, ips[C])]),
             frozenset([Route(8081, ips[B])])))

    def test_dead_node_not_contacted(self):
        """
        Nothing is asked of the dead node.
        """
        before = list(self.cluster.agents[A].calls)
        run = FailoverRun(deployment(), A)
        self.successResultOf(deploy(deployment(), self.live,
                                    plan_for=run.plan_for))
        self.assertEqual(self.cluster.agents[A].calls, before)

    def test_failed_take_over_stays(self):
        """
        When the take-over fails nothing starts, and the application stays
        on the dead node in the file; the other moves.
        """
        self.cluster.failures.add((C, "take_over_volume"))
        run = FailoverRun(deployment(), A)
        result = self.successResultOf(deploy(
            deployment(), self.live, plan_for=run.plan_for))
        self.assertFalse(result.converged)
        moves = run.taken_over(result)
        self.assertEqual(moves, {"proxy": (A, B)})
        self.assertIn("failover: web: its volume could not be taken over; "
                      "it stays on 10.0.0.1 in the file", run.lines(moves))

    def test_rewrite(self):
        """
        The rewritten file places the applications where they went, keeps
        the old file as ``.bak``, and with the application file parses to
        the new placement (the dead node a standby of web).
        """
        directory = temporary_directory(self)
        os.makedirs(directory)
        path = os.path.join(directory, "deployment.yml")
        applications = os.path.join(directory, "applications.yml")
        text, application_text = deployment_to_yaml(deployment())
        with open(path, "w") as f:
            f.write(text)
        with open(applications, "w") as f:
            f.write(application_text)
        run = FailoverRun(deployment(), A)
        self.successResultOf(deploy(deployment(), self.live,
                                    plan_for=run.plan_for))
        backup = run.rewrite(path, {"web": (A, C), "proxy": (A, B)}, now=0)
        with open(backup) as f:
            self.assertEqual(f.read(), text)
        with open(path) as f:
            self.assertTrue(f.read().startswith(
                "# Rewritten by flocker-deploy --failover 10.0.0.1 at "
                "1970-01-01T00:00:00Z: proxy 10.0.0.1 -> 10.0.0.2, web "
                "10.0.0.1 -> 10.0.0.3.\n"))
        new = load_configuration(path, applications)
        self.assertEqual(
            ({a: sorted(x.name for x in new.node(a).applications)
              for a in (A, B, C)}, list(new.standbys["web"].nodes)),
            ({A: [], B: ["proxy"], C: ["web"]}, [B, A]))

    def test_then_plain_deploy_converges(self):
        """
        After the failover, a plain deploy of the rewritten deployment,
        with the dead node back, only stops what the old node still has,
        sets its stale copy aside, gives it its routes, tells it to
        replicate nothing and which node the volume comes from now.
        """
        run = FailoverRun(deployment(), A)
        result = self.successResultOf(deploy(
            deployment(), self.live, plan_for=run.plan_for))
        new = moved_deployment(deployment(), run.taken_over(result))
        again = self.successResultOf(deploy(
            new, dict(self.live, **{A: self.cluster.agents[A]}),
            dry_run=True))
        # A is back and still runs what it ran: the plan stops it there
        # and sets its stale copy aside, and, as a standby of the new
        # owner now, tells it to expect the volume from there; nothing
        # else.
        self.assertEqual(
            sorted(c.describe() for c in leaves(again.plan)),
            ["10.0.0.1: expect web from 10.0.0.3",
             "10.0.0.1: replicate no volume to standbys",
             "10.0.0.1: set aside its stale copy of volume web for recovery "
             "(the volume failed over; now epoch 2)",
             "10.0.0.1: set routes 8080->10.0.0.3, 8081->10.0.0.2",
             "10.0.0.1: stop application proxy",
             "10.0.0.1: stop application web"])


DB = Application(name="db", image=IMAGE,
                 volume=AttachedVolume(mountpoint="/db"))


class FailoverExpectedSendersTests(SynchronousTestCase):
    """
    What a failover leaves of the nodes' expected senders, on fake nodes:
    A runs WEB (standbys B and C, copies pushed) and DB (standby B, no copy
    pushed yet), then dies.
    """

    def setUp(self):
        self.deployment = Deployment(
            nodes=[Node(address=A, applications=[WEB, DB]), Node(address=B),
                   Node(address=C)],
            standbys={"web": Standby(application="web", nodes=[B, C]),
                      "db": Standby(application="db", nodes=[B])})
        self.cluster = FakeCluster([A, B, C], images=[IMAGE])
        self.successResultOf(deploy(self.deployment, self.cluster.agents))
        agents = self.cluster.agents
        for target in (B, C):
            self.successResultOf(agents[A].push_volume("web", target))
        self.live = {address: agents[address] for address in (B, C)}

    def test_kept_from_dead_node(self):
        """
        DB stays on A (no live copy); B, which the failover cannot tell
        A's identity, keeps expecting DB from A rather than nothing, so
        that A, once back, can still push B its first copy; the failover's
        lines say that A's record and B's record for db stay as they were
        until a deploy reaches A.
        """
        run = FailoverRun(self.deployment, A)
        result = self.successResultOf(deploy(
            self.deployment, self.live, plan_for=run.plan_for))
        self.assertTrue(result.converged, result.failed)
        agents = self.cluster.agents
        self.assertEqual(agents[B].state.expected_senders["db"],
                         frozenset([A]))
        self.assertEqual(
            [line for line in run.lines(run.taken_over(result))
             if "record" in line],
            ["failover: 10.0.0.1 did not report: its record of which node "
             "each volume's first copy may come from stays as it was until "
             "a deploy reaches it",
             "failover: 10.0.0.2: its record of which node volume db may "
             "come from stays as it was (10.0.0.1 did not report) until a "
             "deploy reaches it"])
        self.successResultOf(agents[A].push_volume("db", B))
        self.assertEqual(agents[B].state.volumes["db"].owner, A)
