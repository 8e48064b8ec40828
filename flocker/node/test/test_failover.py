"""
Tests for :mod:`flocker.node._failover` (planning a failover) and for how
the ordinary planner treats what a failover leaves: a node that comes back
with a stale owned copy.
"""

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker._change import leaves, run_state_change
from flocker._model import (
    Application, AttachedVolume, ClusterState, Deployment, Node, NodeState,
    Port, Route, Standby, VolumeState,
)
from flocker.node._changes import (
    FenceVolume, StartApplication, StopApplication, TakeOverVolume,
)
from flocker.node._failover import FailoverError, plan_failover
from flocker.node._fake import FakeCluster
from flocker.node._plan import (
    plan_changes, skipped_applications, stale_owned_copies,
)
from flocker.testtools.strategies import fuzz_settings

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"
WEB = Application(name="web", image="flocker/busybox",
                  ports=[Port(internal=80, external=8080)],
                  volume=AttachedVolume(mountpoint="/data"))
STATELESS = Application(name="proxy", image="flocker/busybox",
                        ports=[Port(internal=80, external=8081)])
OLD, NEW = "flocker-20261206T100000.000000Z", "flocker-20261206T100002.000000Z"


def copy(owned=False, epoch=1, snapshots=(OLD,), owner=A):
    """
    :return: A ``VolumeState`` of ``web``.
    """
    return VolumeState(name="web", owned=owned, snapshots=list(snapshots),
                       owner=owner, epoch=epoch)


def live(**copies):
    """
    :param copies: Node (``b``, ``c``) to its copy of ``web`` or ``None``.
    :return: The reports of B and C (A is dead).
    """
    nodes = {}
    for address, key in ((B, "b"), (C, "c")):
        volume = copies.get(key)
        nodes[address] = NodeState(
            address=address, node_id=address,
            volumes={} if volume is None else {"web": volume})
    return ClusterState(nodes=nodes)


def deployment(standby=None, extra=()):
    """
    :return: WEB (and ``extra``) on A, with B and C empty.
    """
    standbys = {}
    if standby is not None:
        standbys["web"] = Standby(application="web", nodes=standby)
    return Deployment(nodes=[Node(address=A, applications=[WEB] + list(extra)),
                             Node(address=B), Node(address=C)],
                      standbys=standbys)


class PlanFailoverTests(SynchronousTestCase):
    """
    ``plan_failover`` moves the dead node's applications to the freshest
    copies.
    """

    def test_freshest_standby(self):
        """
        The application goes to the live node with the newest snapshot; the
        other holder follows the new owner first, then the chosen one
        takes its copy over at one epoch above every copy's.
        """
        failover = plan_failover(
            deployment(standby=[B, C]),
            live(b=copy(snapshots=[OLD]), c=copy(snapshots=[OLD, NEW])), A)
        self.assertEqual(
            (dict(failover.moves), dict(failover.epochs),
             list(failover.changes), dict(failover.stranded)),
            ({"web": (A, C)}, {"web": 2},
             [FenceVolume(node=B, name="web", owner=C, epoch=2),
              TakeOverVolume(node=C, name="web", epoch=2, dead=A)], {}))

    def test_rewritten_deployment(self):
        """
        The new deployment has the application on its new node, the dead
        node empty, and the dead node as a standby where the chosen one
        was.
        """
        failover = plan_failover(
            deployment(standby=[B, C]),
            live(b=copy(snapshots=[OLD, NEW]), c=copy()), A)
        new = failover.deployment
        self.assertEqual(
            ([a.name for a in new.node(B).applications],
             list(new.node(A).applications),
             list(new.standbys["web"].nodes)),
            (["web"], [], [A, C]))

    def test_preference_breaks_ties(self):
        """
        Copies equally fresh: the first standby node wins.
        """
        failover = plan_failover(deployment(standby=[C, B]),
                                 live(b=copy(), c=copy()), A)
        self.assertEqual(failover.moves["web"], (A, C))

    def test_stateless_to_standby_or_least_loaded(self):
        """
        An application without a volume goes to the least loaded live
        node, once those with volumes went where their copies are.
        """
        failover = plan_failover(deployment(extra=[STATELESS]),
                                 live(b=copy(), c=None), A)
        self.assertEqual(dict(failover.moves),
                         {"web": (A, B), "proxy": (A, C)})

    def test_stranded(self):
        """
        An application whose volume no live node holds stays where it is,
        with the reason.
        """
        failover = plan_failover(deployment(), live(), A)
        self.assertEqual(
            (dict(failover.moves), dict(failover.stranded),
             list(failover.changes)),
            ({}, {"web": "no live node holds a copy of volume web"}, []))
        self.assertEqual(
            [a.name for a in failover.deployment.node(A).applications],
            ["web"])

    def test_predicted_state_converges(self):
        """
        The ordinary plan from the predicted state starts the application
        on its new node and routes its port on the other live node, and
        plans nothing on the dead node.
        """
        failover = plan_failover(deployment(),
                                 live(b=copy(), c=copy()), A)
        plan = plan_changes(failover.deployment, failover.predicted,
                            unknown=frozenset([A]))
        starts = [c for c in leaves(plan)
                  if isinstance(c, StartApplication)]
        self.assertEqual([(c.node, c.application.name) for c in starts],
                         [(B, "web")])
        self.assertNotIn(A, {c.node for c in leaves(plan)})

    def test_unknown_node(self):
        """
        A node that is not in the deployment cannot be declared dead.
        """
        e = self.assertRaises(FailoverError, plan_failover, deployment(),
                              live(), "10.9.9.9")
        self.assertIn("10.9.9.9 is not a node of the deployment", str(e))

    def test_nobody_left(self):
        """
        With no live node reporting there is nowhere to go.
        """
        self.assertRaises(FailoverError, plan_failover, deployment(),
                          ClusterState(), A)

    def test_run_again(self):
        """
        A failover run again after it took the volume over changes no
        volume and keeps the placement.
        """
        first = plan_failover(deployment(), live(b=copy(), c=copy()), A)
        again = plan_failover(deployment(), first.predicted, A)
        self.assertEqual((list(again.changes), dict(again.moves)),
                         ([], dict(first.moves)))

    @fuzz_settings()
    @given(st.lists(st.tuples(st.integers(0, 4), st.booleans()),
                    min_size=2, max_size=2))
    def test_one_owner_after(self, epochs):
        """
        Whatever epochs the live copies have, after the failover's changes
        (run on fake nodes) exactly one live node owns the volume, at an
        epoch above every copy's before.
        """
        copies = [copy(epoch=e, snapshots=[OLD, NEW] if fresh else [OLD])
                  for e, fresh in epochs]
        cluster = FakeCluster([B, C])
        for address, volume in zip([B, C], copies):
            agent = cluster.agents[address]
            agent._set(volumes=agent.state.volumes.set("web", volume))
        state = ClusterState(nodes={a: cluster.agents[a].state
                                    for a in (B, C)})
        failover = plan_failover(deployment(), state, A)
        for change in failover.changes:
            self.successResultOf(run_state_change(change, cluster.agents))
        owners = [a for a in (B, C)
                  if cluster.agents[a].state.volumes["web"].owned]
        self.assertEqual(len(owners), 1)
        self.assertGreater(
            cluster.agents[owners[0]].state.volumes["web"].epoch,
            max(e for e, _ in epochs))


class StaleOwnerPlanTests(SynchronousTestCase):
    """
    The ordinary planner, once the dead node is back with its stale copy.
    """

    def state(self, running=False):
        """
        :return: A back (stale owner at epoch 1, its container stopped or
            not) and B the owner at epoch 2 running WEB.
        """
        return ClusterState(nodes={
            A: NodeState(address=A, node_id=A, applications={"web": WEB},
                         running=["web"] if running else [],
                         volumes={"web": copy(owned=True, epoch=1)},
                         routes=[Route(8080, B)]),
            B: NodeState(address=B, node_id=B, applications={"web": WEB},
                         running=["web"],
                         volumes={"web": copy(owned=True, epoch=2,
                                              owner=B)}),
        })

    def rewritten(self):
        return Deployment(nodes=[Node(address=A),
                                 Node(address=B, applications=[WEB])])

    def test_stale_owner_found(self):
        """
        The lower epoch's owner is stale.
        """
        self.assertEqual(list(stale_owned_copies(self.state())), ["web"])
        self.assertEqual(list(stale_owned_copies(self.state())["web"]), [A])

    def test_redeploy_fences(self):
        """
        A plain deploy of the rewritten file removes the stale container
        and sets the stale copy aside (after the stop), and leaves the
        current owner's application running.
        """
        plan = plan_changes(self.rewritten(), self.state(running=True))
        self.assertEqual(
            [c for c in leaves(plan)],
            [StopApplication(node=A, name="web", removal=False),
             FenceVolume(node=A, name="web", owner=B, epoch=2, stale=True)])

    def test_not_two_owners(self):
        """
        A stale owner does not make the volume "owned by two nodes".
        """
        self.assertEqual(
            skipped_applications(self.rewritten(), self.state(), set()), {})

    def test_old_file_refused(self):
        """
        Deploying the old file (the application back on the stale node) is
        skipped with the reason, not a push over the stale copy.
        """
        old = Deployment(nodes=[Node(address=A, applications=[WEB]),
                                Node(address=B)])
        skipped = skipped_applications(old, self.state(), set())
        self.assertIn("node 10.0.0.1 holds a stale copy of its volume web",
                      skipped["web"])

    def test_converged_after_fence(self):
        """
        Once the stale copy is set aside and the container gone, the
        rewritten file is converged.
        """
        state = self.state()
        state = ClusterState(nodes={
            A: NodeState(address=A, node_id=A, routes=[Route(8080, B)]),
            B: state.nodes[B]})
        plan = plan_changes(self.rewritten(), state)
        self.assertEqual(list(leaves(plan)), [])

    def test_follower_of_stale_owner(self):
        """
        A follower that missed the failover (it still follows the stale
        owner) learns the current owner.
        """
        state = self.state()
        c_copy = copy(epoch=1, owner=A)
        state = ClusterState(nodes=dict(state.nodes, **{
            C: NodeState(address=C, node_id=C, volumes={"web": c_copy})}))
        plan = plan_changes(self.rewritten(), state)
        self.assertIn(FenceVolume(node=C, name="web", owner=B, epoch=2),
                      list(leaves(plan)))

class FollowersAfterMoveTests(SynchronousTestCase):
    """
    A move gives the volume a new owner at a new epoch; the same deploy
    makes the other nodes' copies follow it, so the next one is a no-op.
    """

    def moved_to_b(self):
        """
        :return: Fake A, B and C, WEB deployed on A then moved to B: A's
            copy follows B at epoch 2.
        """
        cluster = FakeCluster([A, B, C])
        for target in (A, B):
            self.successResultOf(run_state_change(
                plan_changes(on(target), cluster.state()), cluster.agents))
        return cluster

    def test_third_copy_follows_new_owner(self):
        """
        Moving WEB on from B to C makes A's copy (following B at epoch 2)
        follow C at epoch 3 in the same deploy, after the hand-off; the
        next deploy of the same file plans nothing.
        """
        cluster = self.moved_to_b()
        plan = plan_changes(on(C), cluster.state())
        steps = [c for c in leaves(plan) if getattr(c, "name", None) == "web"]
        self.assertEqual(
            [type(c).__name__ for c in steps],
            ["PushVolume", "StopApplication", "HandoffVolume", "FenceVolume",
             "DeleteStoppedApplication"])
        self.assertEqual(steps[3],
                         FenceVolume(node=A, name="web", owner=C, epoch=3))
        self.successResultOf(run_state_change(plan, cluster.agents))
        self.assertEqual(
            (cluster.agents[A].state.volumes["web"].owner,
             cluster.agents[A].state.volumes["web"].epoch,
             cluster.agents[C].state.volumes["web"].epoch,
             list(leaves(plan_changes(on(C), cluster.state())))),
            (C, 3, 3, []))

    def test_fence_in_start_phase(self):
        """
        The follower is told about the new epoch in the start phase, once
        the hand-off succeeded, never before: were the hand-off to fail, a
        follower ahead of the owner's epoch would make the owner look
        stale.
        """
        cluster = self.moved_to_b()
        plan = plan_changes(on(C), cluster.state())
        self.assertEqual(
            [phase.label for phase in plan.changes
             if any(isinstance(c, FenceVolume) for c in leaves(phase))],
            ["update routes and start applications"])


def on(address):
    """
    :return: A deployment of WEB on ``address`` among A, B and C.
    """
    return Deployment(nodes=[
        Node(address=a, applications=[WEB] if a == address else [])
        for a in (A, B, C)])
