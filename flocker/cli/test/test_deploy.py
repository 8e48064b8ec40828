"""
Tests for :mod:`flocker.cli._deploy`.
"""

import attr
from eliot.testing import assertHasAction
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from flocker._change import IChangeObserver, leaves
from flocker._model import (
    Application, AttachedVolume, Deployment, Node, Port,
)
from flocker.cli._deploy import (
    CLOCK_SKEW,
    LineObserver, deploy, format_summary, gather_states,
)
from flocker.node._changes import StartApplication
from flocker.node._doctor import Check
from flocker.node._fake import FakeCluster
from flocker.node._plan import plan_removal
from flocker.testtools import capture_logging

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
IMAGE = "flocker/busybox"
WEB = Application(name="web", image=IMAGE,
                  ports=[Port(internal=80, external=8080)],
                  volume=AttachedVolume(mountpoint="/data"))
OTHER = Application(name="other", image="flocker/busybox")


def deployment(**placement):
    """
    Build a deployment of nodes A, B, C with applications placed by
    ``placement`` (address → list of applications).
    """
    return Deployment(nodes=[Node(address=a, applications=placement.get(a, []))
                             for a in (A, B, C)])


class DeployTests(SynchronousTestCase):
    """
    Tests for ``deploy`` on a fake cluster.
    """

    def test_deploy_then_noop(self):
        """
        A deploy converges the cluster; a second deploy changes nothing and
        says so.
        """
        cluster = FakeCluster([A, B, C])
        wanted = deployment(**{A: [WEB], B: [OTHER]})
        lines = []
        result = self.successResultOf(deploy(wanted, cluster.agents,
                                             write=lines.append))
        self.assertTrue(result.converged)
        self.assertEqual(dict(result.changed), {A: 2, B: 2, C: 1})
        self.assertEqual(len(lines), 5)
        again = self.successResultOf(deploy(wanted, cluster.agents))
        self.assertEqual(leaves(again.plan), [])
        self.assertEqual(format_summary(wanted, again)[0],
                         "cluster already converged: no changes")

    def test_dry_run_changes_nothing(self):
        """
        A dry run returns the plan and changes no node: it only asks each
        for its report and runs its checks.
        """
        cluster = FakeCluster([A, B, C])
        result = self.successResultOf(deploy(deployment(**{A: [WEB]}),
                                             cluster.agents, dry_run=True))
        self.assertIn(StartApplication(node=A, application=WEB),
                      leaves(result.plan))
        for agent in cluster.agents.values():
            self.assertEqual([name for name, _ in agent.calls],
                             ["report", "doctor"])

    def test_dry_run_reports_failed_checks(self):
        """
        A dry run names each node's failed checks, one line each with the
        node; a blocking one makes it not converged, a node whose checks
        could not run says why, and healthy nodes say nothing.
        """
        cluster = FakeCluster([A, B, C])
        cluster.agents[A].health = [Check(
            "zfs pool", False, "ZFS pool flocker does not exist",
            "create it")]
        cluster.agents[B].health = [Check(
            "node key", False, "no node-to-node key installed",
            "the next flocker-deploy installs it", blocking=False)]
        cluster.failures.add((C, "doctor"))
        result = self.successResultOf(deploy(deployment(**{A: [WEB]}),
                                             cluster.agents, dry_run=True))
        self.assertEqual(
            (dict(result.health), result.blocked, result.converged),
            ({A: ("\N{BALLOT X} zfs pool: ZFS pool flocker does not exist "
                  "-- fix: create it",),
              B: ("\N{BALLOT X} node key: no node-to-node key installed -- "
                  "fix: the next flocker-deploy installs it (does not block "
                  "deploys)",),
              C: ("\N{BALLOT X} doctor: could not run: doctor on %s was "
                  "told to fail" % (C,),)},
             frozenset([A]), False))

    def test_dry_run_clock_skew(self):
        """
        A node whose clock is more than a few seconds off the client's is
        named, without blocking.
        """
        clock = Clock()
        clock.advance(1000)
        cluster = FakeCluster([A], clock=clock)
        client_clock = Clock()
        client_clock.advance(1000 + CLOCK_SKEW + 1)
        result = self.successResultOf(deploy(
            deployment(**{A: [WEB]}), cluster.agents, dry_run=True,
            clock=client_clock))
        self.assertEqual(
            (result.health[A], result.converged),
            (("\N{BALLOT X} clock: 6 s behind this machine's -- fix: keep "
              "the clocks right (timedatectl set-ntp true) (does not block "
              "deploys)",), True))

    def test_unreachable_node(self):
        """
        A node that does not report stops the whole deploy before any
        change: no node is asked to change anything, the node is named in
        one line with what failed, and the result is not converged.
        """
        cluster = FakeCluster([A, B, C])
        cluster.failures.add((C, "report"))
        wanted = deployment(**{A: [OTHER], C: [WEB]})
        result = self.successResultOf(deploy(wanted, cluster.agents))
        self.assertFalse(result.converged)
        self.assertEqual((list(result.unreachable), leaves(result.plan)),
                         ([C], []))
        for agent in cluster.agents.values():
            self.assertEqual([name for name, _ in agent.calls], ["report"])
        summary = format_summary(wanted, result)
        self.assertIn("%s: did not report: report on %s was told to fail"
                      % (C, C), summary)
        self.assertEqual(
            summary[-1], "nothing was changed: 1 node of the deployment did "
            "not report, and a deploy changes nothing until every node has")

    def test_unresolved_node_dry_run(self):
        """
        A node whose name did not resolve stops a dry run the same way: no
        plan, the node named with what to check.
        """
        cluster = FakeCluster([A, B])
        wanted = deployment(**{A: [OTHER]})
        result = self.successResultOf(deploy(
            wanted, {a: cluster.agents[a] for a in (A, B)}, dry_run=True,
            unreachable={C: "cannot resolve host name: no such host"}))
        self.assertEqual((dict(result.unreachable), leaves(result.plan)),
                         ({C: "cannot resolve host name: no such host"}, []))
        summary = format_summary(wanted, result)
        self.assertIn(
            "%s: did not report: cannot resolve host name: no such host "
            "(check the node's name in the deployment file and that DNS "
            "resolves it)" % (C,), summary)
        self.assertTrue(summary[-1].startswith("the plan was not made: "))

    def test_failed_change_reported(self):
        """
        A failing change is reported with node and step; the other nodes'
        changes still run.
        """
        cluster = FakeCluster([A, B, C])
        cluster.failures.add((A, "start_application"))
        wanted = deployment(**{A: [OTHER], B: [WEB]})
        result = self.successResultOf(deploy(wanted, cluster.agents))
        self.assertFalse(result.converged)
        self.assertEqual(list(result.failed), [A])
        self.assertIn("start application other", result.failed[A][0])
        self.assertIn("web", cluster.agents[B].state.running)

    def test_move_keeps_data(self):
        """
        Moving an application moves its volume's data with it.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(deploy(deployment(**{A: [WEB]}), cluster.agents))
        cluster.agents[A].write("web", "records")
        self.successResultOf(deploy(deployment(**{B: [WEB]}), cluster.agents))
        self.assertEqual(cluster.agents[B].data["web"], "records")
        self.assertTrue(cluster.agents[B].state.volumes["web"].owned)
        self.assertFalse(cluster.agents[A].state.volumes["web"].owned)

    def test_move_prepares_handoff_with_stop(self):
        """
        A move tells the old node of the hand-off with the stop, before
        it: the pre-copy, then the preparation and the stop (keeping the
        container), then the hand-off's release, then the deletion of the
        stopped container.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(deploy(deployment(**{A: [WEB]}), cluster.agents))
        del cluster.agents[A].calls[:]
        self.successResultOf(deploy(deployment(**{B: [WEB]}), cluster.agents))
        self.assertEqual(
            [call for call in cluster.agents[A].calls
             if call[0] in ("push_volume", "prepare_handoff",
                            "stop_application", "release_volume")],
            [("push_volume", ("web", B)), ("prepare_handoff", ("web", B)),
             ("stop_application", ("web", True)),
             ("release_volume", ("web", B)),
             ("stop_application", ("web",))])

    def test_move_lines_say_bytes_sent(self):
        """
        The lines of a move's push and hand-off say how much was sent.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(deploy(deployment(**{A: [WEB]}), cluster.agents))
        cluster.agents[A].write("web", "records")
        lines = []
        self.successResultOf(deploy(deployment(**{B: [WEB]}), cluster.agents,
                                    write=lines.append))
        transfers = [line for line in lines
                     if " push volume " in line or " hand off " in line]
        self.assertEqual(len(transfers), 2)
        for line in transfers:
            self.assertRegex(line, r"\(\d+ B sent, \d+\.\d\d s\)$")

    @capture_logging(None)
    def test_logged(self, logger):
        """
        A deploy is one eliot action.
        """
        cluster = FakeCluster([A])
        self.successResultOf(deploy(Deployment(nodes=[Node(address=A)]),
                                    cluster.agents))
        assertHasAction(self, logger, "flocker:deploy", True)


class _Live(object):
    """
    A live view recording what it is told, as ``(event, detail)``.
    """

    def __init__(self):
        self.events = []

    def start(self, plan):
        self.events.append(("start", len(leaves(plan))))

    def stop(self):
        self.events.append(("stop", None))

    def change_started(self, change):
        self.events.append(("started", change.describe()))

    def change_progress(self, change, sent, total):
        self.events.append(("progress", (sent, total)))

    def change_finished(self, change, failure, seconds, result=None):
        self.events.append(("finished", failure is None))


class LiveViewTests(SynchronousTestCase):
    """
    Tests for ``deploy`` with a live view.
    """

    def test_line_observer_interface(self):
        """
        ``LineObserver`` provides ``IChangeObserver``.
        """
        self.assertTrue(verifyObject(IChangeObserver, LineObserver()))

    def test_started_told_stopped(self):
        """
        The live view is started with the plan, told of every change as
        the line observer is, and stopped before the result, failures
        included; the result is as without it.
        """
        cluster = FakeCluster([A, B, C])
        cluster.failures.add((B, "start_application"))
        live = _Live()
        result = self.successResultOf(deploy(
            deployment(**{A: [OTHER], B: [WEB]}), cluster.agents, live=live))
        self.assertEqual(live.events[0], ("start", 5))
        self.assertEqual(live.events[-1], ("stop", None))
        self.assertEqual(
            sorted(e[1] for e in live.events if e[0] == "finished"),
            [False, True, True, True, True])
        self.assertEqual(len(result.failed[B]), 1)

    def test_dry_run_not_started(self):
        """
        A dry run runs nothing, so the live view is never started.
        """
        live = _Live()
        self.successResultOf(deploy(deployment(**{A: [OTHER]}),
                                    FakeCluster([A, B, C]).agents,
                                    dry_run=True, live=live))
        self.assertEqual(live.events, [])


class LockedError(Exception):
    """
    Stands for a node's refusal because another deploy holds its lock.
    """
    locked = True


class LockTests(SynchronousTestCase):
    """
    Tests for ``deploy`` when another deploy holds a node's lock.
    """

    def test_waits_then_gives_up(self):
        """
        A locked node is asked again every second; if it is still locked
        after the wait, nothing changes anywhere and the node is named.
        """
        cluster = FakeCluster([A, B, C])
        asked = []

        def locked():
            asked.append(1)
            return fail(LockedError("another flocker-deploy holds it"))
        cluster.agents[B].report = locked
        clock = Clock()
        d = deploy(deployment(**{A: [OTHER]}), cluster.agents, clock=clock,
                   lock_wait=3.0, lock_jitter=lambda: 0.5)
        self.assertNoResult(d)
        clock.pump([1.0] * 3)
        result = self.successResultOf(d)
        self.assertEqual(len(asked), 4)
        self.assertFalse(result.converged)
        self.assertEqual(leaves(result.plan), [])
        self.assertIn("another flocker-deploy", result.unreachable[B])
        self.assertEqual(dict(cluster.agents[A].state.applications), {})

    def test_lock_freed(self):
        """
        When the lock is freed during the wait, the deploy goes ahead.
        """
        cluster = FakeCluster([A, B, C])
        real = cluster.agents[B].report
        answers = [fail(LockedError("held"))]
        cluster.agents[B].report = lambda: answers.pop() if answers else real()
        clock = Clock()
        d = deploy(deployment(**{A: [OTHER]}), cluster.agents, clock=clock,
                   lock_jitter=lambda: 0.5)
        clock.advance(1.0)
        self.assertTrue(self.successResultOf(d).converged)

    def test_gives_back_locks_while_waiting(self):
        """
        While a node is locked by another deploy, the nodes whose reports
        took this deploy's lock are told to release it before each wait, and
        asked again after it; the wait is between 0.5 and 1.5 seconds, as
        the jitter picks.
        """
        cluster = FakeCluster([A, B, C])
        released = []
        for address in (A, C):
            cluster.agents[address].release_lock = (
                lambda address=address: released.append(address))
        answers = [fail(LockedError("held"))]
        real = cluster.agents[B].report
        cluster.agents[B].report = lambda: answers.pop() if answers else real()
        clock = Clock()
        d = deploy(deployment(**{A: [OTHER]}), cluster.agents, clock=clock,
                   lock_jitter=lambda: 0.25)
        self.assertEqual(sorted(released), [A, C])
        clock.advance(0.74)
        self.assertNoResult(d)
        clock.advance(0.01)
        self.assertTrue(self.successResultOf(d).converged)


class GatherTests(SynchronousTestCase):
    """
    Tests for ``gather_states``.
    """

    def test_waits_for_all(self):
        """
        The gathered state is ready only when every node answered.
        """
        cluster = FakeCluster([A, B])
        slow = Deferred()
        cluster.agents[B].report = lambda: slow
        d = gather_states(cluster.agents)
        self.assertNoResult(d)
        slow.callback(cluster.agents[B].state)
        state, unreachable, locked = self.successResultOf(d)
        self.assertEqual(sorted(state.nodes), [A, B])
        self.assertEqual((unreachable, locked), ({}, set()))


class CheckBeforeChangeTests(SynchronousTestCase):
    """
    Tests for what ``deploy`` checks after the reports and before the first
    change: images, ports, volumes whose owner's copy is gone.
    """

    def running(self, image=IMAGE):
        """
        :return: A cluster of nodes with ``IMAGE`` where ``web`` runs on A.
        """
        cluster = FakeCluster([A, B, C], images=[IMAGE])
        self.successResultOf(deploy(deployment(**{A: [WEB]}),
                                    cluster.agents))
        for agent in cluster.agents.values():
            del agent.calls[:]
        return cluster

    def test_unpullable_image_stops_nothing(self):
        """
        Changing an application's image to one no node has and no registry
        holds changes nothing, in a dry run too: the old container keeps
        running, and the node lacking it is named with the image.
        """
        cluster = self.running()
        changed = attr.evolve(WEB, image="flocker/busybox:nosuch")
        for dry_run in (True, False):
            result = self.successResultOf(deploy(
                deployment(**{A: [changed]}), cluster.agents,
                dry_run=dry_run))
            self.assertFalse(result.converged)
            [problem] = result.refused
            self.assertIn("flocker/busybox:nosuch", problem)
            self.assertTrue(problem.startswith(A + ": "))
        # Only questions were asked: reports, dry-run pulls (and a dry
        # run's doctor).
        self.assertEqual(
            (cluster.agents[A].state.applications["web"],
             {(name, args[-1] if name == "pull_image" else None)
              for agent in cluster.agents.values()
              for name, args in agent.calls} - {("doctor", None)}),
            (WEB, {("pull_image", True), ("report", None)}))

    def test_missing_external_volume_stops_nothing(self):
        """
        An application whose external volume no node holds stops the
        deploy before its first change, the line naming the application,
        the volume and its node.
        """
        cluster = self.running()
        outside = Application(name="outside", image=IMAGE, volumes=[
            AttachedVolume(name="elsewhere", mountpoint="/data",
                           external=True)])
        result = self.successResultOf(deploy(
            deployment(**{A: [WEB], B: [outside]}), cluster.agents))
        self.assertEqual(
            (result.refused, cluster.agents[B].state.applications),
            (("%s: application outside: its external volume elsewhere does "
              "not exist on node %s (nor on any other node); Flocker does "
              "not create external volumes: create it there first" % (B, B),),
             {}))

    def test_renamed_volume_stops_nothing(self):
        """
        A project's application whose volume is now named after the
        project while it runs with the former name's data (a deployment
        from before the prefix) stops the deploy before its first change,
        the line saying how to keep the data; the old container runs on.
        """
        cluster = FakeCluster([A, B, C], images=[IMAGE])
        old = Application(name="db", image=IMAGE, volumes=[
            AttachedVolume(name="data", mountpoint="/data")])
        self.successResultOf(deploy(attr.evolve(
            deployment(**{A: [old]}), project="shop"), cluster.agents))
        new = attr.evolve(old, volumes=[AttachedVolume(
            name="shop_data", mountpoint="/data", former_name="data")])
        result = self.successResultOf(deploy(attr.evolve(
            deployment(**{A: [new]}), project="shop"), cluster.agents))
        self.assertEqual(
            (result.refused,
             [v.name for v in cluster.agents[A].state.applications[
                 "db"].volumes], sorted(cluster.agents[A].state.volumes)),
            (("%s: application db: its volume data is now named shop_data "
              "(compose names a project's volumes PROJECT_VOLUME) and does "
              "not exist, while the project's data is in volume data on "
              "node %s; to keep using it, give the top-level volume data "
              "\"name: data\" in the compose file" % (A, A),),
             ["data"], ["data"]))

    def test_pullable_image_pulled_before_stop(self):
        """
        An image the node lacks but its registry holds is pulled in the
        prepare phase, before the old container is stopped.
        """
        cluster = self.running()
        cluster.registry.add("flocker/busybox:2")
        changed = attr.evolve(WEB, image="flocker/busybox:2")
        result = self.successResultOf(deploy(deployment(**{A: [changed]}),
                                             cluster.agents))
        self.assertTrue(result.converged)
        calls = [(name, args) for name, args in cluster.agents[A].calls
                 if name in ("pull_image", "stop_application")]
        self.assertEqual(calls, [
            ("pull_image", ("flocker/busybox:2", True)),
            ("pull_image", ("flocker/busybox:2", False)),
            ("stop_application", ("web",))])
        self.assertIn("flocker/busybox:2", cluster.agents[A].state.images)

    def test_port_held_by_another(self):
        """
        A host port held by a listener that is not Flocker's, on the node
        that would publish it or route it, stops the deploy before any
        change, naming node, port and application.
        """
        cluster = FakeCluster([A, B, C], images=[IMAGE])
        cluster.agents[B].state = attr.evolve(cluster.agents[B].state,
                                              busy_ports=[8080])
        result = self.successResultOf(deploy(deployment(**{A: [WEB]}),
                                             cluster.agents))
        self.assertEqual(len(result.refused), 1)
        self.assertTrue(result.refused[0].startswith(
            "%s: port 8080 is held by a listening socket that is not "
            "Flocker's, where the route to application web on %s" % (B, A)))
        self.assertEqual(dict(cluster.agents[A].state.applications), {})

    def stale(self):
        """
        :return: A cluster where ``web`` moved from A to B, wrote more, and
            B's copy (the owner's) was deleted.
        """
        cluster = FakeCluster([A, B, C], images=[IMAGE])
        self.successResultOf(deploy(deployment(**{A: [WEB]}),
                                    cluster.agents))
        cluster.agents[A].write("web", "old ")
        self.successResultOf(deploy(deployment(**{B: [WEB]}),
                                    cluster.agents))
        cluster.agents[B].write("web", "new")
        self.successResultOf(deploy(deployment(), cluster.agents))
        b = cluster.agents[B]
        b.state = attr.evolve(b.state, volumes=b.state.volumes.discard("web"))
        del b.data["web"]
        return cluster

    def test_stale_copy_not_adopted(self):
        """
        A volume whose owner's copy is gone is not taken over from the
        older copy left: the deploy changes nothing and says where that
        copy is, how old, and how to adopt it.
        """
        cluster = self.stale()
        result = self.successResultOf(deploy(deployment(**{B: [WEB]}),
                                             cluster.agents))
        [problem] = result.refused
        self.assertIn("volume web: no node owns it and its owner's copy is "
                      "gone", problem)
        self.assertIn("the newest copy left is on %s" % (A,), problem)
        self.assertIn("--adopt-copy web", problem)
        self.assertFalse(cluster.agents[A].state.volumes["web"].owned)
        self.assertEqual(dict(cluster.agents[B].state.applications), {})

    def test_stale_copy_adopted(self):
        """
        With ``adopt`` naming the volume, its newest copy left is taken
        over (the plan says it adopts an older copy) and moved where the
        application runs.
        """
        cluster = self.stale()
        result = self.successResultOf(deploy(deployment(**{B: [WEB]}),
                                             cluster.agents,
                                             adopt={"web"}))
        self.assertTrue(result.converged)
        self.assertIn("%s: adopt the older copy of volume web" % (A,),
                      [change.describe()[:len(A) + 36]
                       for change in leaves(result.plan)])
        self.assertEqual(cluster.agents[B].data["web"], "old ")


class DestructiveTests(SynchronousTestCase):
    """
    Tests for ``deploy``'s confirmation of destructive changes.
    """

    def test_removal_refused_unconfirmed(self):
        """
        Removing an application no longer in the files is only done when
        ``confirm``, told each destructive change, says yes; otherwise
        nothing at all is changed, the other applications' changes
        included.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(deploy(deployment(**{A: [OTHER]}),
                                    cluster.agents))
        asked = []

        def confirm(descriptions):
            asked.append(descriptions)
            return False
        result = self.successResultOf(deploy(
            deployment(**{B: [WEB]}), cluster.agents, confirm=confirm))
        self.assertEqual(
            (asked, result.converged, len(result.refused),
             sorted(cluster.agents[A].state.running),
             sorted(cluster.agents[B].state.running)),
            ([["%s: stop application other (not in the files: removed)"
               % (A,)]], False, 1, ["other"], []))

    def test_removal_confirmed(self):
        """
        A confirmed removal is made with the rest of the plan.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(deploy(deployment(**{A: [OTHER]}),
                                    cluster.agents))
        result = self.successResultOf(deploy(
            deployment(**{B: [WEB]}), cluster.agents,
            confirm=lambda descriptions: True))
        self.assertEqual(
            (result.converged, sorted(cluster.agents[A].state.running),
             sorted(cluster.agents[B].state.running)),
            (True, [], ["web"]))

    def test_not_asked_without_removal(self):
        """
        A plan without destructive changes runs without asking.
        """
        cluster = FakeCluster([A, B, C])
        result = self.successResultOf(deploy(
            deployment(**{A: [OTHER]}), cluster.agents,
            confirm=lambda descriptions: self.fail("asked")))
        self.assertTrue(result.converged)


class RemovalTests(SynchronousTestCase):
    """
    Tests for ``deploy`` running :func:`plan_removal`.
    """

    def test_remove_with_volumes(self):
        """
        Removing an application with its volumes stops it, deletes every
        copy of its volume and takes its port out of every node's routes,
        once confirmed; the deployment's own plan is not made.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(deploy(deployment(**{A: [WEB]}),
                                    cluster.agents))
        self.successResultOf(deploy(deployment(**{B: [WEB]}),
                                    cluster.agents))
        asked = []
        result = self.successResultOf(deploy(
            deployment(**{B: [WEB]}), cluster.agents,
            plan_for=lambda state, addresses: plan_removal(state, "web",
                                                           True),
            confirm=lambda lines: asked.append(lines) or True))
        self.assertEqual(
            (result.converged, len(asked[0]),
             [dict(agent.state.applications) for agent in
              cluster.agents.values()],
             [dict(agent.state.volumes) for agent in cluster.agents.values()],
             [agent.state.routes for agent in cluster.agents.values()]),
            (True, 3, [{}, {}, {}], [{}, {}, {}],
             [frozenset()] * 3))

    def test_remove_refused(self):
        """
        An unconfirmed removal changes nothing.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(deploy(deployment(**{A: [WEB]}),
                                    cluster.agents))
        result = self.successResultOf(deploy(
            deployment(), cluster.agents,
            plan_for=lambda state, addresses: plan_removal(state, "web",
                                                           True),
            confirm=lambda lines: False))
        self.assertEqual((result.converged, sorted(
            cluster.agents[A].state.running)), (False, ["web"]))
