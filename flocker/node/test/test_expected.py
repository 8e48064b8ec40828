"""
Tests for :mod:`flocker.node._expected` (which node each node may receive
a first copy of a volume from, as a deploy plans it) and
:mod:`flocker.node._senders` (the agent's record of it).
"""

import os

from pyrsistent import pmap
from twisted.trial.unittest import SynchronousTestCase

from flocker._change import leaves, run_state_change
from flocker._model import (
    Application, AttachedVolume, ClusterState, Deployment, Node, NodeState,
    Standby,
)
from flocker._serialize import node_state_from_dict, node_state_to_dict
from flocker.node._changes import ExpectSenders, PushVolume
from flocker.node._expected import steady_senders, unreached_lines
from flocker.node._fake import FakeCluster, FakeNodeError
from flocker.node._plan import KEY_PHASE, PHASES, plan_changes, plan_removal
from flocker.node._senders import ExpectedSenders, SenderStore
from flocker.testtools import temporary_directory

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
IDS = {A: "id-a", B: "id-b", C: "id-c"}
WEB = Application(name="web", image="flocker/busybox",
                  volume=AttachedVolume(mountpoint="/data"))


def deployment(primary=A, standbys=(), automatic=False):
    """
    :return: A deployment of ``WEB`` on ``primary`` among nodes A, B and
        C, with a standby on ``standbys`` if any.
    """
    return Deployment(
        nodes=[Node(address=address,
                    applications=[WEB] if address == primary else [])
               for address in (A, B, C)],
        standbys={"web": Standby(application="web", nodes=standbys,
                                 automatic=automatic)} if standbys else {})


def phase_of(plan, change):
    """
    :return: The label of the plan's phase holding ``change``.
    """
    for phase in plan.changes:
        if change in leaves(phase):
            return phase.label
    raise AssertionError("%r is not in the plan" % (change,))


def senders(plan):
    """
    :return: The ``ExpectSenders`` leaves of ``plan``, in order.
    """
    return [change for change in leaves(plan)
            if isinstance(change, ExpectSenders)]


class SteadySendersTests(SynchronousTestCase):
    """
    ``steady_senders``: what each node expects between deploys.
    """

    def test_no_standby(self):
        """
        Without a standby nobody expects anything: the owner has its copy.
        """
        self.assertEqual(steady_senders(deployment(), IDS),
                         {A: {}, B: {}, C: {}})

    def test_standby(self):
        """
        A standby expects its volumes from the application's node; the
        node itself and others expect nothing.
        """
        self.assertEqual(steady_senders(deployment(standbys=[B]), IDS),
                         {A: {}, B: {"web": frozenset(["id-a"])}, C: {}})

    def test_automatic(self):
        """
        For an application failed over automatically, no node of its group
        expects its volumes from a named node: any member may become the
        owner without a deploy, so a first copy is decided by who holds
        the group's lease in etcd when it comes, not by the record.
        """
        self.assertEqual(
            steady_senders(deployment(standbys=[B, C], automatic=True), IDS),
            {A: {}, B: {}, C: {}})

    def test_unknown_identity(self):
        """
        A node whose identity is unknown is named in no steady record (a
        plan keeps what the records had: ``test_unreached_source_kept``).
        """
        self.assertEqual(
            steady_senders(deployment(standbys=[B]), {B: "id-b"}),
            {A: {}, B: {}, C: {}})


class PlanSendersTests(SynchronousTestCase):
    """
    A deploy tells each node which node each volume may come from before
    any push, and leaves it with the steady record.
    """

    def test_move(self):
        """
        A move's target expects the source before the pre-copy (in the
        first phase) and nothing once it owns the volume (in the last);
        run on fake nodes (which refuse an unexpected first copy as a real
        node does) the move works, and the next plan is empty.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(run_state_change(
            plan_changes(deployment(), cluster.state()), cluster.agents))
        plan = plan_changes(deployment(primary=B), cluster.state())
        before = ExpectSenders(node=B, senders={"web": frozenset([A])})
        after = ExpectSenders(node=B, senders={})
        self.assertEqual(senders(plan), [before, after])
        self.assertEqual((phase_of(plan, before), phase_of(plan, after)),
                         (KEY_PHASE, PHASES[-1]))
        self.successResultOf(run_state_change(plan, cluster.agents))
        self.assertTrue(cluster.agents[B].state.volumes["web"].owned)
        self.assertEqual(
            leaves(plan_changes(deployment(primary=B), cluster.state())), [])

    def test_standby(self):
        """
        A new standby is told to expect the volume from the application's
        node before replication starts, and keeps it; a cluster so told
        plans nothing more.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(run_state_change(
            plan_changes(deployment(), cluster.state()), cluster.agents))
        plan = plan_changes(deployment(standbys=[B]), cluster.state())
        expect = ExpectSenders(node=B, senders={"web": frozenset([A])})
        self.assertEqual(senders(plan), [expect])
        self.assertEqual(phase_of(plan, expect), KEY_PHASE)
        self.successResultOf(run_state_change(plan, cluster.agents))
        self.assertEqual(cluster.agents[B].state.expected_senders,
                         {"web": frozenset([A])})
        self.assertEqual(
            leaves(plan_changes(deployment(standbys=[B]), cluster.state())),
            [])
        # The owner's first full send to the standby is accepted.
        self.successResultOf(cluster.agents[A].push_volume("web", B))

    def test_replaced_copy(self):
        """
        A standby whose copy follows an earlier owner is replaced by a
        full push from the owner: deleted, then pushed, which the standby
        accepts as it expects the owner.
        """
        cluster = FakeCluster([A, B, C])
        self.successResultOf(run_state_change(
            plan_changes(deployment(standbys=[B]), cluster.state()),
            cluster.agents))
        self.successResultOf(cluster.agents[A].push_volume("web", B))
        # C takes the volume over by hand, B's copy still follows A.
        self.successResultOf(cluster.agents[C].expect_senders(
            {"web": frozenset([A])}))
        self.successResultOf(cluster.agents[A].stop_application("web"))
        self.successResultOf(cluster.agents[A].handoff_volume("web", C))
        plan = plan_changes(deployment(primary=C, standbys=[B]),
                            cluster.state())
        self.assertIn(PushVolume(node=C, name="web", target=B,
                                 estimated_bytes=0, replace_copy=True),
                      leaves(plan))
        self.successResultOf(run_state_change(plan, cluster.agents))
        self.assertEqual(cluster.agents[B].state.volumes["web"].owner, C)

    def test_automatic_group_first_copy(self):
        """
        On fake nodes (which apply the group rule as real ones do), a
        member of an automatic group without a copy accepts a first copy
        only from the lease's holder: the primary after the deploy (it
        holds the lease from its start); not a standby that made itself
        owner without the lease; that standby once the lease is its own
        (an automatic failover); and then no longer the old primary.  The
        record names nobody for the group.
        """
        cluster = FakeCluster([A, B, C])
        wanted = deployment(standbys=[B, C], automatic=True)
        self.successResultOf(run_state_change(
            plan_changes(wanted, cluster.state()), cluster.agents))
        self.assertEqual(
            [cluster.agents[node].state.expected_senders
             for node in (A, B, C)], [{}, {}, {}])
        self.assertEqual(cluster.holders, {"web": A})
        self.successResultOf(cluster.agents[A].push_volume("web", B))
        self.successResultOf(cluster.agents[B].take_over_volume("web", 2))
        refused = self.failureResultOf(
            cluster.agents[B].push_volume("web", C), FakeNodeError)
        self.assertIn("whose lease is held by %s; node %s may not push it"
                      % (A, B), str(refused.value))
        cluster.holders["web"] = B
        self.successResultOf(cluster.agents[B].push_volume("web", C))
        self.assertEqual(cluster.agents[C].state.volumes["web"].owner, B)
        self.successResultOf(cluster.agents[C].delete_volume("web"))
        self.failureResultOf(cluster.agents[A].push_volume("web", C),
                             FakeNodeError)

    def test_unknown_node_left_alone(self):
        """
        A node that did not report is given nothing.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, node_id="id-a")})
        plan = plan_changes(deployment(standbys=[B]), state,
                            unknown=frozenset([B]))
        self.assertEqual(senders(plan), [])

    def test_unreached_source_kept(self):
        """
        A node whose volume comes from a node that did not report keeps
        what its record named for that volume (the plan cannot name the
        silent node, and narrowing would refuse its first copy until a
        later deploy); its other volumes are planned as usual.
        """
        db = Application(name="db", image="flocker/busybox",
                         volume=AttachedVolume(mountpoint="/db"))
        wanted = Deployment(
            nodes=[Node(address=A, applications=[WEB]), Node(address=B),
                   Node(address=C, applications=[db])],
            standbys={"web": Standby(application="web", nodes=[B]),
                      "db": Standby(application="db", nodes=[B])})
        state = ClusterState(nodes={
            B: NodeState(address=B, node_id="id-b", expected_senders={
                "web": frozenset(["id-a"])}),
            C: NodeState(address=C, node_id="id-c")})
        plan = plan_changes(wanted, state, unknown=frozenset([A]))
        self.assertEqual(senders(plan), [ExpectSenders(node=B, senders={
            "web": frozenset(["id-a"]), "db": frozenset(["id-c"])})])
        self.assertEqual(
            senders(plan_changes(deployment(standbys=[B]), ClusterState(
                nodes={B: state.nodes[B]}), unknown=frozenset([A]))), [])

    def test_unreached_lines(self):
        """
        The lines for the operator name the node that did not report (its
        record stays) and each node keeping volumes expected from it.
        """
        self.assertEqual(
            unreached_lines(deployment(standbys=[B, C]), {B: "id-b",
                                                          C: "id-c"},
                            frozenset([A])),
            ["10.0.0.1 did not report: its record of which node each "
             "volume's first copy may come from stays as it was until a "
             "deploy reaches it",
             "10.0.0.2: its record of which node volume web may come from "
             "stays as it was (10.0.0.1 did not report) until a deploy "
             "reaches it",
             "10.0.0.3: its record of which node volume web may come from "
             "stays as it was (10.0.0.1 did not report) until a deploy "
             "reaches it"])
        self.assertEqual(unreached_lines(deployment(standbys=[B]), IDS,
                                         frozenset()), [])

    def test_removal(self):
        """
        Removing an application drops its volumes from every node's
        record.
        """
        state = ClusterState(nodes={
            B: NodeState(address=B, expected_senders={
                "web": frozenset(["id-a"]), "db": frozenset(["id-c"])})})
        self.assertEqual(senders(plan_removal(state, "web")), [
            ExpectSenders(node=B, senders={"db": frozenset(["id-c"])})])

    def test_described_by_address(self):
        """
        The plan names the expected nodes by their addresses.
        """
        change = ExpectSenders(node=B, senders={"web": frozenset(["id-a"])},
                               addresses={"id-a": A})
        self.assertEqual(change.describe(), "10.0.0.2: expect web from "
                         "10.0.0.1")
        self.assertEqual(ExpectSenders(node=B, senders={}).describe(),
                         "10.0.0.2: expect no volume from other nodes")


class ExpectedSendersTests(SynchronousTestCase):
    """
    The agent's record of expected senders.
    """

    def test_survives_restart(self):
        """
        A record set is read back by a new agent's record (after a
        restart), volume by volume.
        """
        path = os.path.join(temporary_directory(self), "senders.json")
        ExpectedSenders(SenderStore(path)).configure(
            {"web": ["id-a"], "db": frozenset(["id-b", "id-c"]), "x": []})
        again = ExpectedSenders(SenderStore(path))
        self.assertEqual(again.current, {"web": frozenset(["id-a"]),
                                         "db": frozenset(["id-b", "id-c"])})
        self.assertEqual(again.expected("web"), frozenset(["id-a"]))
        self.assertEqual(again.expected("other"), frozenset())

    def test_unreadable_file_expects_nothing(self):
        """
        An unreadable file is taken as a record expecting nothing (every
        first copy refused until a deploy sets it again).
        """
        path = os.path.join(temporary_directory(self), "senders.json")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write('[{"volume": "web"}]')
        self.assertEqual(ExpectedSenders(SenderStore(path)).current, {})

    def test_bad_values_refused(self):
        """
        A volume name or node identity that could not be one is refused,
        and the record is unchanged.
        """
        path = os.path.join(temporary_directory(self), "senders.json")
        record = ExpectedSenders(SenderStore(path))
        record.configure({"web": ["id-a"]})
        self.assertRaises(ValueError, record.configure, {"../x": ["id-a"]})
        self.assertRaises(ValueError, record.configure, {"web": ["a b"]})
        self.assertEqual(record.current, {"web": frozenset(["id-a"])})
        self.assertEqual(ExpectedSenders(SenderStore(path)).current,
                         {"web": frozenset(["id-a"])})

    def test_reported(self):
        """
        A report's expected senders survive its serialisation.
        """
        state = NodeState(address=A, expected_senders=pmap(
            {"web": frozenset(["id-b", "id-c"])}))
        self.assertEqual(node_state_from_dict(node_state_to_dict(state)),
                         state)
