"""
Tests for the planner's part in replication to standby nodes
(:func:`flocker.node._plan.plan_changes` giving nodes their
:class:`~flocker.node._changes.SetReplication`) and for
:func:`flocker._model.desired_replication`.
"""

import attr
from hypothesis import given
from twisted.trial.unittest import SynchronousTestCase

from flocker._change import leaves
from flocker._model import (
    Application, AttachedVolume, ClusterState, Deployment, Node, Replication,
    ReplicationStatus, Standby, desired_replication,
)
from flocker.node._changes import (
    FenceVolume, HandoffVolume, PushVolume, SetReplication, StopApplication,
)
from flocker.node._fake import FakeCluster
from flocker.node._plan import plan_changes, plan_removal
from flocker.node.testtools import converged_state
from flocker._change import run_state_change
from flocker.testtools.strategies import (
    deployments_with_standbys, fuzz_settings,
)

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
SECOND = 10 ** 9
WEB = Application(name="web", image="flocker/busybox",
                  volume=AttachedVolume(mountpoint="/data"))


def deployment(primary=A, standbys=(B,), interval=2 * SECOND):
    """
    :return: A deployment of ``WEB`` on ``primary`` with a standby on
        ``standbys``, among nodes A, B and C.
    """
    return Deployment(
        nodes=[Node(address=address,
                    applications=[WEB] if address == primary else [])
               for address in (A, B, C)],
        standbys={"web": Standby(application="web", nodes=standbys,
                                 interval=interval)})


def replication(standbys=(B,), interval=2 * SECOND):
    """
    :return: The ``Replication`` of volume web.
    """
    return Replication(volume="web", application="web", standbys=standbys,
                       interval=interval)


def replications(plan):
    """
    :return: The ``SetReplication`` leaves of ``plan``.
    """
    return [change for change in leaves(plan)
            if isinstance(change, SetReplication)]


class DesiredReplicationTests(SynchronousTestCase):
    """
    ``desired_replication``: what each node is to replicate.
    """

    def test_primary_only(self):
        """
        The application's node replicates each of its volumes; the others
        replicate nothing.
        """
        self.assertEqual(desired_replication(deployment()), {
            A: {"web": replication()}, B: {}, C: {}})

    def test_every_volume(self):
        """
        Every volume the application mounts is replicated.
        """
        two = attr.evolve(WEB, volumes=[AttachedVolume(mountpoint="/more",
                                                       name="more")])
        found = desired_replication(Deployment(
            nodes=[Node(address=A, applications=[two]), Node(address=B)],
            standbys={"web": Standby(application="web", nodes=[B])}))
        self.assertEqual(sorted(found[A]), ["more", "web"])
        self.assertEqual(found[A]["more"].application, "web")

    def test_shared_volume(self):
        """
        A volume shared by two applications with standbys goes to every
        standby either names, at the shorter interval.
        """
        shared = AttachedVolume(mountpoint="/s", name="shared")
        one = Application(name="one", image="i", volumes=[shared])
        two = Application(name="two", image="i", volumes=[shared])
        found = desired_replication(Deployment(
            nodes=[Node(address=A, applications=[one, two]),
                   Node(address=B), Node(address=C)],
            standbys={"one": Standby(application="one", nodes=[B],
                                     interval=5 * SECOND),
                      "two": Standby(application="two", nodes=[C, B],
                                     interval=3 * SECOND)}))
        self.assertEqual(found[A]["shared"], Replication(
            volume="shared", application="one", standbys=[B, C],
            interval=3 * SECOND))


class PlanReplicationTests(SynchronousTestCase):
    """
    The plan gives each node the replication it lacks, and only then.
    """

    def test_new(self):
        """
        A primary not replicating yet is given its replication; nodes
        replicating nothing, as they should, are given nothing.
        """
        plan = plan_changes(deployment(), converged_state(
            Deployment(nodes=deployment().nodes)))
        self.assertEqual(replications(plan), [
            SetReplication(node=A, replications={"web": replication()})])

    @fuzz_settings(default=60)
    @given(deployments_with_standbys())
    def test_converged_generated(self, wanted):
        """
        A cluster replicating as any generated deployment asks plans no
        replication change.
        """
        self.assertEqual(replications(plan_changes(wanted,
                                                   converged_state(wanted))),
                         [])

    def test_converged(self):
        """
        A cluster replicating as asked plans nothing.
        """
        wanted = deployment()
        self.assertEqual(leaves(plan_changes(wanted,
                                             converged_state(wanted))), [])

    def test_lag_not_a_difference(self):
        """
        How far standbys are behind is not part of the comparison.
        """
        wanted = deployment()
        state = converged_state(wanted)
        node = state.nodes[A]
        node = attr.evolve(node, replication={"web": ReplicationStatus(
            replication=replication(), standbys={})})
        state = ClusterState(nodes=state.nodes.set(A, node))
        self.assertEqual(replications(plan_changes(wanted, state)), [])

    def test_changed(self):
        """
        A changed standby list or interval is given again, whole.
        """
        state = converged_state(deployment())
        plan = plan_changes(deployment(standbys=[C, B],
                                       interval=5 * SECOND), state)
        self.assertEqual(replications(plan), [
            SetReplication(node=A, replications={"web": replication(
                standbys=[C, B], interval=5 * SECOND)})])

    def test_removed(self):
        """
        A standby removed from the file stops the primary's replication.
        """
        state = converged_state(deployment())
        plan = plan_changes(Deployment(nodes=deployment().nodes), state)
        self.assertEqual(replications(plan), [
            SetReplication(node=A, replications={})])

    def test_unknown_node(self):
        """
        Nothing is planned on a node that did not report.
        """
        state = converged_state(Deployment(nodes=deployment().nodes))
        plan = plan_changes(deployment(), ClusterState(
            nodes=state.nodes.remove(A)), unknown=frozenset([A]))
        self.assertEqual(replications(plan), [])

    def test_move_to_standby(self):
        """
        Moving the application to its standby pushes an increment to it
        (no size estimate: the copy shares snapshots), hands it off, and
        then moves the replication with it.
        """
        before = deployment()
        state = converged_state(before)
        copy = attr.evolve(state.nodes[A].volumes["web"], owned=False,
                           owner=A)
        state = ClusterState(nodes=state.nodes.set(B, attr.evolve(
            state.nodes[B], volumes={"web": copy})))
        plan = plan_changes(deployment(primary=B, standbys=[A]), state)
        changes = leaves(plan)
        self.assertIn(PushVolume(node=A, name="web", target=B,
                                 estimated_bytes=None), changes)
        self.assertIn(HandoffVolume(node=A, name="web", target=B), changes)
        self.assertEqual(replications(plan), [
            SetReplication(node=A, replications={}),
            SetReplication(node=B, replications={
                "web": replication(standbys=[A])})])
        self.assertGreater(changes.index(replications(plan)[0]),
                           changes.index(HandoffVolume(node=A, name="web",
                                                       target=B)))

    def _moved(self, other_copy=None):
        """
        Plan moving ``web`` from A to B, its standbys B and C becoming A
        and C; C's copy follows A (as B's does) unless ``other_copy``
        says otherwise.

        :return: The plan's leaves.
        """
        before = deployment(standbys=[B, C])
        state = converged_state(before)
        nodes = {address: attr.evolve(node, node_id="id-" + address)
                 for address, node in state.nodes.items()}
        copy = attr.evolve(nodes[A].volumes["web"], owned=False,
                           owner="id-" + A)
        nodes[B] = attr.evolve(nodes[B], volumes={"web": copy})
        nodes[C] = attr.evolve(nodes[C], volumes={
            "web": copy if other_copy is None else other_copy(copy)})
        return leaves(plan_changes(deployment(primary=B, standbys=[A, C]),
                                   ClusterState(nodes=nodes)))

    def test_other_standby_follows_old_owner(self):
        """
        After a move, a standby whose copy follows the old owner (which
        would refuse the new owner's pushes) is made to follow the new
        owner, after the hand-off, and keeps its copy: the new owner's
        replication to it goes on incrementally, with no push of the
        whole volume.
        """
        changes = self._moved()
        follow = FenceVolume(node=C, name="web", owner="id-" + B, epoch=1)
        self.assertIn(follow, changes)
        self.assertGreater(changes.index(follow),
                           changes.index(HandoffVolume(node=A, name="web",
                                                       target=B)))
        self.assertEqual(
            [c for c in changes if isinstance(c, PushVolume)
             and c.target == C], [])

    def test_standby_of_a_third_owner(self):
        """
        A standby whose copy follows a third node at the owner's epoch
        (the plan cannot make it follow the owner) gets its copy replaced
        by a push from the owner, and no fence racing that push.
        """
        state = converged_state(deployment(standbys=[B]))
        nodes = {address: attr.evolve(node, node_id="id-" + address)
                 for address, node in state.nodes.items()}
        copy = attr.evolve(nodes[A].volumes["web"], owned=False,
                           owner="id-Z")
        nodes[C] = attr.evolve(nodes[C], volumes={"web": copy})
        changes = leaves(plan_changes(deployment(standbys=[B, C]),
                                      ClusterState(nodes=nodes)))
        self.assertIn(PushVolume(node=A, name="web", target=C,
                                 estimated_bytes=1 << 20, replace_copy=True),
                      changes)
        self.assertEqual(
            [c for c in changes if isinstance(c, FenceVolume)
             and c.node == C], [])

    def test_removal_stops_replication(self):
        """
        Removing an application stops the replication of its volumes, in
        the plan's first phase (before its copies are deleted).
        """
        state = converged_state(deployment())
        plan = plan_removal(state, "web", with_volumes=True)
        changes = leaves(plan)
        self.assertEqual(changes[:2], [
            StopApplication(node=A, name="web", removal=True),
            SetReplication(node=A, replications={})])

    def test_runs_on_fake_cluster(self):
        """
        Running the plan on fake agents leaves a cluster that reports the
        replication asked for, and plans nothing more.
        """
        cluster = FakeCluster([A, B, C])
        wanted = deployment()
        self.successResultOf(run_state_change(
            plan_changes(wanted, cluster.state()), cluster.agents))
        self.assertEqual(
            cluster.state().nodes[A].replication["web"].replication,
            replication())
        self.assertEqual(replications(plan_changes(wanted, cluster.state())),
                         [])

    def test_describe(self):
        """
        The change says what the node will replicate, where, how often.
        """
        self.assertEqual(
            (SetReplication(node=A, replications={
                "web": replication(standbys=[B, C])}).describe(),
             SetReplication(node=A, replications={}).describe()),
            ("10.0.0.1: replicate web to 10.0.0.2, 10.0.0.3 every 2s",
             "10.0.0.1: replicate no volume to standbys"))
