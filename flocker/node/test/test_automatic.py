"""
Tests for ``flocker.node._automatic``: holding an application with a lease,
fencing, takeover by the freshest standby and routes that follow, with
three nodes sharing one in-memory etcd on a deterministic clock.
"""

import json
import os

import attr

from hypothesis import given, settings
from hypothesis.strategies import (
    booleans, integers, lists, sampled_from, tuples,
)
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ...etcd import DEFAULT_TIMING, EtcdUnavailable, MemoryEtcd
from ..._model import (
    Application, AttachedVolume, ClusterState, Deployment, Node, NodeState,
    DEFAULT_STANDBY_INTERVAL, Port, Replication, Route, Standby,
)
from ..._serialize import (
    SerializationError, node_state_from_dict, node_state_to_dict,
)
from ...route import MemoryRouteManager
from ...testtools import capture_logging, temporary_directory
from .._automatic import (
    AutomaticApplication, AutomaticFailover, AutomaticStore, CopyFreshness,
    IFailoverActions, LocalFailoverActions, PlacementRefused,
    automatic_applications, choose_claimant, placement_key,
)
from .._automatic_config import moved_by_failover
from .._changes import SetAutomatic
from .._plan import plan_changes
from .test_agent import A, B, PLAIN, local_pair

P, S1, S2 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
SNAPSHOT = "flocker-20261206T1159%02d.000000Z"
WEB = AutomaticApplication(name="web", primary=P, ports=[(8080, "tcp")],
                           standbys=[S1, S2])


class _Watch(object):
    """
    A watch through a :class:`_NodeEtcd`: lost when the node is cut off.
    """

    def __init__(self, view, inner):
        self._view = view
        self.inner = inner
        self.done = inner.done

    def stop(self):
        self.inner.stop()


class _NodeEtcd(object):
    """
    One node's way to the shared store, which a partition cuts (the store
    and the other nodes go on).
    """

    def __init__(self, store):
        self._store = store
        self.cut_off = False
        self._watches = []

    def __getattr__(self, name):
        method = getattr(self._store, name)

        def call(*args):
            if self.cut_off:
                return fail(EtcdUnavailable("partitioned"))
            return method(*args)
        return call

    def watch_prefix(self, prefix, start_revision, on_event):
        if self.cut_off:
            return fail(EtcdUnavailable("partitioned"))

        def deliver(event):
            if not self.cut_off:
                on_event(event)
        d = self._store.watch_prefix(prefix, start_revision, deliver)
        return d.addCallback(lambda inner: self._keep(_Watch(self, inner)))

    def _keep(self, watch):
        self._watches.append(watch)
        return watch

    def cut(self):
        self.cut_off = True
        for watch in self._watches:
            watch.inner.lose(EtcdUnavailable("partitioned"))
        self._watches = []

    def mend(self):
        self.cut_off = False


@implementer(IFailoverActions)
class _Actions(object):
    """
    A node's actions, recording what runs where in a dict the nodes share.
    """

    def __init__(self, address, running, freshness):
        self.address = address
        self.running = running
        self.freshness = freshness
        self.routes = {}
        self.started = []
        self.followed = []

    def stop(self, name):
        self.running[self.address].discard(name)
        return succeed(None)

    def start(self, name, epoch):
        self.running[self.address].add(name)
        self.started.append((name, epoch))
        return succeed(None)

    def copy_freshness(self, name):
        return succeed(self.freshness)

    def follow(self, name, node, ports):
        for port, protocol in ports:
            self.routes[port] = None if node == self.address else node
        return succeed(None)

    def identity(self):
        return succeed("id-" + self.address)

    def follow_copy(self, name, owner, epoch):
        self.followed.append((name, owner, epoch))
        return succeed(None)


class _ThreeNodes(object):
    """
    Mixin: three nodes, ``P`` runs web, ``S1`` and ``S2`` stand by.
    """

    def setUp(self):
        self.clock = Clock()
        self.store = MemoryEtcd(self.clock)
        self.running = {P: set(), S1: set(), S2: set()}
        self.views = {}
        self.actions = {}
        self.nodes = {}
        for address, freshness in [(P, (1, SNAPSHOT % (0,))),
                                   (S1, (1, SNAPSHOT % (58,))),
                                   (S2, (1, SNAPSHOT % (59,)))]:
            self.views[address] = _NodeEtcd(self.store)
            self.actions[address] = _Actions(address, self.running,
                                             freshness)
            node = AutomaticFailover(self.clock, self.views[address],
                                     address, self.actions[address])
            node.configure([WEB])
            self.successResultOf(node.start())
            self.nodes[address] = node

    def run_on_primary(self):
        epoch = self.successResultOf(self.nodes[P].hold("web"))
        self.actions[P].start("web", epoch)
        return epoch

    def advance(self, seconds, step=0.1):
        """
        Let time pass, checking at every step that web never runs on two
        nodes.
        """
        for _ in range(int(round(seconds / step))):
            self.clock.advance(step)
            where = [node for node, apps in self.running.items()
                     if "web" in apps]
            self.assertLessEqual(len(where), 1, where)

    def where(self):
        return sorted(node for node, apps in self.running.items()
                      if "web" in apps)


class AutomaticFailoverTests(_ThreeNodes, SynchronousTestCase):
    """
    Three nodes: ``P`` runs web, ``S1`` and ``S2`` stand by.
    """

    def test_actions_interface(self):
        """
        The test's actions provide ``IFailoverActions``.
        """
        self.assertTrue(verifyObject(IFailoverActions, self.actions[P]))

    def test_hold(self):
        """
        Holding web puts its placement in etcd at epoch 1, and every node's
        routes for its ports follow it.
        """
        self.assertEqual(1, self.run_on_primary())
        self.assertEqual(
            ({8080: None}, {8080: P}, {8080: P}),
            (self.actions[P].routes, self.actions[S1].routes,
             self.actions[S2].routes))
        self.assertEqual((P, 1), self.nodes[S2].placements["web"])

    def test_no_takeover_before_first_hold(self):
        """
        Before web was ever held, standbys take nothing over, however long
        they wait.
        """
        self.advance(30)
        self.assertEqual([], self.where())

    def test_held_stays(self):
        """
        While its node reaches etcd, web stays where it is.
        """
        self.run_on_primary()
        self.advance(60)
        self.assertEqual([P], self.where())

    def test_partition(self):
        """
        When the running node is cut off, it stops web itself; the freshest
        standby (``S2``) takes over at epoch 2 once the lease ended; never
        two nodes run it; the other standby's routes follow.
        """
        self.run_on_primary()
        self.advance(2)
        self.views[P].cut()
        self.advance(DEFAULT_TIMING.safe_for + 0.2)
        self.assertEqual([], self.where())
        self.advance(30)
        self.assertEqual(([S2], [("web", 2)], {8080: S2}),
                         (self.where(), self.actions[S2].started,
                          self.actions[S1].routes))

    def test_takeover_followed(self):
        """
        The takeover's placement names the new owner's identity, and the
        other standby's copy follows it at the new epoch; the hold of a
        deploy (epoch 1) names none and nobody's copy changes for it; the
        node it was taken from (not a standby) is not told.
        """
        self.run_on_primary()
        followed_before = self.actions[S1].followed[:]
        self.views[P].cut()
        self.advance(30)
        placement = json.loads(self.successResultOf(
            self.store.get(placement_key("web"))).value)
        self.assertEqual(
            ([], "id-" + S2, [("web", "id-" + S2, 2)], [], []),
            (followed_before, placement["node_id"],
             self.actions[S1].followed, self.actions[S2].followed,
             self.actions[P].followed))

    def test_partition_heals(self):
        """
        When the cut-off node comes back, it learns web runs elsewhere: it
        does not start it, its routes follow, and holding it again is
        refused naming the new node and epoch.
        """
        self.run_on_primary()
        self.views[P].cut()
        self.advance(30)
        self.views[P].mend()
        self.advance(5)
        self.assertEqual(([S2], {8080: S2}), (self.where(),
                                              self.actions[P].routes))
        refused = self.failureResultOf(self.nodes[P].hold("web"),
                                       PlacementRefused)
        self.assertEqual((S2, 2), (refused.value.node, refused.value.epoch))

    def test_freshest_dies(self):
        """
        When the freshest standby dies during the takeover, the other one
        takes over once the dead one's copy record is gone.
        """
        self.run_on_primary()
        self.views[P].cut()
        self.views[S2].cut()
        self.advance(40)
        self.assertEqual([S1], self.where())

    def test_majority_lost(self):
        """
        When no node reaches etcd, web stops and nothing starts anywhere.
        """
        self.run_on_primary()
        for view in self.views.values():
            view.cut()
        self.advance(60)
        self.assertEqual([], self.where())

    def test_release(self):
        """
        A released application (stopped on purpose by a deploy) is not taken
        over: its owner and placement keys go at once, and the standbys
        start nothing.
        """
        self.run_on_primary()
        self.successResultOf(self.nodes[P].release("web"))
        self.actions[P].stop("web")
        self.advance(30)
        self.assertEqual(([], None, None, []), (
            self.where(),
            self.successResultOf(self.store.get(b"flocker/v1/owner/web")),
            self.successResultOf(self.store.get(placement_key("web"))),
            self.store.leases()))

    def test_placement_value(self):
        """
        The placement key names the node and epoch as JSON.
        """
        self.run_on_primary()
        self.assertEqual(b'{"node": "10.0.0.1", "epoch": 1}',
                         self.successResultOf(
                             self.store.get(placement_key("web"))).value)


class AgentRestartTests(_ThreeNodes, SynchronousTestCase):
    """
    An agent that restarts takes back the leases of the applications etcd
    says it still runs, so that no failover happens; it stops those it no
    longer holds.
    """

    def restart(self, address):
        """
        The agent of ``address`` dies (nothing it sends reaches etcd or the
        node any more; what it ran keeps running) and a new one starts.

        :return: The new agent's :class:`AutomaticFailover`.
        """
        self.actions[address].running = {address: set()}
        self.views[address].cut()
        self.views[address] = _NodeEtcd(self.store)
        self.actions[address] = _Actions(address, self.running, (1, None))
        node = AutomaticFailover(self.clock, self.views[address], address,
                                 self.actions[address])
        node.configure([WEB])
        self.successResultOf(node.start())
        self.nodes[address] = node
        return node

    def test_retakes_lease(self):
        """
        Restarted while its lease lives, the running node holds web again
        on the same lease at the same epoch: it keeps running there, no
        standby starts it, however long the test waits.
        """
        self.run_on_primary()
        lease = self.successResultOf(self.store.get(
            b"flocker/v1/owner/web")).lease
        self.advance(3)
        node = self.restart(P)
        self.advance(60)
        self.assertEqual(
            ([P], [], [], 1, lease, 1),
            (self.where(), self.actions[S1].started,
             self.actions[S2].started, node.epochs["web"],
             self.successResultOf(self.store.get(
                 b"flocker/v1/owner/web")).lease,
             self.successResultOf(node.hold("web"))))

    def test_fences_after_retake(self):
        """
        A lease taken back is kept like a granted one: cut off later, the
        node stops web itself and a standby takes over at the next epoch.
        """
        self.run_on_primary()
        self.restart(P)
        self.views[P].cut()
        self.advance(40)
        self.assertEqual(([S2], [("web", 2)]),
                         (self.where(), self.actions[S2].started))

    def test_lease_ended(self):
        """
        Restarted after its lease ended and a standby took over, the node
        stops what still ran of web and follows the new placement.
        """
        self.run_on_primary()
        self.views[P].cut()
        # Its agent is dead: nothing fenced web on P meanwhile.
        self.actions[P].running = {P: set()}
        self.clock.pump([0.5] * 60)
        self.assertEqual([P, S2], self.where())
        self.restart(P)
        self.assertEqual(([S2], {8080: S2}),
                         (self.where(), self.actions[P].routes))

    def test_standby_restart(self):
        """
        A standby's agent restarting takes nothing and stops nothing that
        runs elsewhere.
        """
        self.run_on_primary()
        node = self.restart(S1)
        self.advance(30)
        self.assertEqual(([P], {}, {8080: P}),
                         (self.where(), node.held,
                          self.actions[S1].routes))


class ChooseClaimantTests(SynchronousTestCase):
    """
    ``choose_claimant`` picks the freshest copy.
    """

    def test_epoch_first(self):
        """
        A higher epoch wins over a newer snapshot.
        """
        self.assertEqual(S1, choose_claimant(
            [CopyFreshness(S1, 3, SNAPSHOT % (10,)),
             CopyFreshness(S2, 2, SNAPSHOT % (50,))],
            [S1, S2]))

    def test_newest(self):
        """
        At one epoch, the newest snapshot wins.
        """
        self.assertEqual(S2, choose_claimant(
            [CopyFreshness(S1, 2, SNAPSHOT % (10,)),
             CopyFreshness(S2, 2, SNAPSHOT % (50,))],
            [S1, S2]))

    def test_preference(self):
        """
        Equal copies: the operator's first choice wins; a node that is not
        a standby never does; no copy, nobody.
        """
        self.assertEqual(S2, choose_claimant(
            [CopyFreshness(S1, 2, SNAPSHOT % (10,)),
             CopyFreshness(S2, 2, SNAPSHOT % (10,)),
             CopyFreshness(P, 9, SNAPSHOT % (50,))], [S2, S1]))
        self.assertIsNone(choose_claimant([], [S1]))


class RandomFaultTests(SynchronousTestCase):
    """
    Random partitions and heals of the three nodes, at random moments.
    """

    @settings(max_examples=40)
    @given(faults=lists(tuples(sampled_from([P, S1, S2]), booleans(),
                               integers(min_value=1, max_value=150)),
                        max_size=8))
    def test_never_two(self, faults):
        """
        Whatever is cut off or mended when, web never runs on two nodes (the
        check runs every 0.1 s), and once every node reaches etcd again it
        runs on exactly one.
        """
        case = AutomaticFailoverTests("test_hold")
        case.setUp()
        case.run_on_primary()
        for address, cut, tenths in faults:
            case.advance(tenths / 10.0)
            if cut:
                case.views[address].cut()
            else:
                case.views[address].mend()
        for view in case.views.values():
            view.mend()
        case.advance(60)
        self.assertEqual(1, len(case.where()), case.where())


STORED = Application(
    name="web", image="flocker/busybox",
    ports=frozenset([Port(internal=80, external=8080)]),
    volume=AttachedVolume(mountpoint="/data"))


def _deployment(automatic=True):
    return Deployment(
        nodes=[Node(address=P, applications=[STORED]), Node(address=S1),
               Node(address=S2)],
        standbys={"web": Standby(application="web", nodes=[S1, S2],
                                 automatic=automatic)})


class AutomaticApplicationTests(SynchronousTestCase):
    """
    ``AutomaticApplication`` values, from a deployment and as JSON.
    """

    def test_from_deployment(self):
        """
        Each placed application whose standby is automatic gives one, with
        its node, standbys, external ports and definition.
        """
        self.assertEqual(
            [AutomaticApplication(name="web", primary=P, standbys=[S1, S2],
                                  ports=[(8080, "tcp")],
                                  application=STORED)],
            list(automatic_applications(_deployment())))

    def test_not_automatic(self):
        """
        A standby without ``automatic`` gives none.
        """
        self.assertEqual([], list(automatic_applications(
            _deployment(automatic=False))))

    def test_round_trip(self):
        """
        The JSON form reads back as the same value, through the store too.
        """
        value = automatic_applications(_deployment())[0]
        self.assertEqual(value, AutomaticApplication.from_dict(
            json.loads(json.dumps(value.to_dict()))))
        store = AutomaticStore(os.path.join(temporary_directory(self),
                                            "automatic.json"))
        self.assertEqual([], list(store.load()))
        store.save([value])
        self.assertEqual([value], list(store.load()))

    def test_interval(self):
        """
        It carries its standby's interval; a form stored before the
        interval was kept reads back with the default one.
        """
        deployment = _deployment()
        standby = attr.evolve(deployment.standbys["web"],
                              interval=3 * 10 ** 9)
        deployment = attr.evolve(
            deployment, standbys=deployment.standbys.set("web", standby))
        value = automatic_applications(deployment)[0]
        form = value.to_dict()
        del form["interval"]
        self.assertEqual(
            (3 * 10 ** 9, DEFAULT_STANDBY_INTERVAL),
            (value.interval, AutomaticApplication.from_dict(form).interval))

    def test_bad_form(self):
        """
        Something else is refused with ``SerializationError``.
        """
        self.assertRaises(SerializationError, AutomaticApplication.from_dict,
                          {"name": "web"})

    def test_volumes(self):
        """
        Its volumes are the application's, by name.
        """
        self.assertEqual(("web",), automatic_applications(
            _deployment())[0].volumes)


def _leaves(change):
    """
    :return: The state changes of a plan, in order, without their groups.
    """
    if hasattr(change, "changes"):
        return [leaf for child in change.changes for leaf in _leaves(child)]
    return [change]


class PlanTests(SynchronousTestCase):
    """
    The planner tells every node about automatic applications first.
    """

    def test_set_automatic_first(self):
        """
        With an automatic standby, the plan's first phase tells each node
        (by address) which applications fail over by themselves.
        """
        leaves = _leaves(plan_changes(_deployment(), ClusterState()))
        self.assertEqual(
            [SetAutomatic(node=address,
                          applications=automatic_applications(_deployment()))
             for address in sorted([P, S1, S2])], leaves[:3])

    def test_none_without_automatic(self):
        """
        Without automatic standbys no node is told anything.
        """
        leaves = _leaves(plan_changes(_deployment(automatic=False),
                                      ClusterState()))
        self.assertEqual([], [change for change in leaves
                              if isinstance(change, SetAutomatic)])


class LocalFailoverActionsTests(SynchronousTestCase):
    """
    ``LocalFailoverActions`` on a node's route manager and agent.
    """

    def setUp(self):
        self.routes = MemoryRouteManager(node=S1)
        self.successResultOf(self.routes.set_routes(frozenset([
            Route(port=9000, address=S2),
            Route(port=8080, address=P)])))
        self.stopped = []
        agent = type("Agent", (), {"stop_application": lambda _, name: (
            self.stopped.append(name) or succeed(None))})()
        self.actions = LocalFailoverActions(
            S1, lambda: agent, None, self.routes,
            lambda name: automatic_applications(_deployment())[0])

    def test_interface(self):
        """
        It provides ``IFailoverActions``.
        """
        self.assertTrue(verifyObject(IFailoverActions, self.actions))

    def test_follow_elsewhere(self):
        """
        Routes for the application's ports go to its new node; others stay.
        """
        self.successResultOf(self.actions.follow("web", S2, [(8080, "tcp")]))
        self.assertEqual({Route(port=9000, address=S2),
                          Route(port=8080, address=S2)},
                         set(self.successResultOf(self.routes.get_routes())))

    def test_follow_here(self):
        """
        On the node that now runs it, its ports are not routed (Docker
        publishes them there).
        """
        self.successResultOf(self.actions.follow("web", S1, [(8080, "tcp")]))
        self.assertEqual({Route(port=9000, address=S2)},
                         set(self.successResultOf(self.routes.get_routes())))

    def test_stop(self):
        """
        Stopping goes through the node's agent.
        """
        self.successResultOf(self.actions.stop("web"))
        self.assertEqual(["web"], self.stopped)


class AgentStartTests(SynchronousTestCase):
    """
    What an agent's automatic failover does when it starts.
    """

    def test_stops_unheld(self):
        """
        Starting stops every configured application: an agent that
        restarted holds no lease, so what still runs must not.
        """
        clock = Clock()
        running = {P: {"web"}}
        actions = _Actions(P, running, None)
        node = AutomaticFailover(clock, MemoryEtcd(clock), P, actions)
        node.configure([WEB])
        self.successResultOf(node.start())
        self.assertEqual({P: set()}, running)

    def start_standby(self, clock, store, view):
        """
        Start ``S1``'s part through ``view``, then place web on ``P``.

        :return: ``S1``'s actions.
        """
        actions = _Actions(S1, {S1: set()}, None)
        node = AutomaticFailover(clock, view, S1, actions)
        node.configure([WEB])
        node.start()
        self.successResultOf(store.put(placement_key("web"),
                                       b'{"node": "10.0.0.1", "epoch": 1}'))
        return actions

    def test_retries_unreachable(self):
        """
        Started while etcd cannot be reached, it tries again until it can,
        then follows the placements.
        """
        clock = Clock()
        store = MemoryEtcd(clock)
        view = _NodeEtcd(store)
        view.cut()
        actions = self.start_standby(clock, store, view)
        clock.advance(5)
        view.mend()
        clock.advance(2)
        self.assertEqual({8080: P}, actions.routes)

    @capture_logging(None)
    def test_retries_unexpected(self, logger):
        """
        An unexpected failure while setting up the watch is logged and the
        agent tries again: it goes on following the placements.
        """
        clock = Clock()
        store = MemoryEtcd(clock)
        view = _NodeEtcd(store)
        get_prefix = store.get_prefix
        failures = [RuntimeError("unexpected")]

        def flaky(prefix):
            if failures:
                return fail(failures.pop())
            return get_prefix(prefix)
        store.get_prefix = flaky
        actions = self.start_standby(clock, store, view)
        clock.advance(2)
        self.assertEqual(({8080: P}, 1),
                         (actions.routes,
                          len(logger.flush_tracebacks(RuntimeError))))


class LocalNodeAgentAutomaticTests(SynchronousTestCase):
    """
    ``LocalNodeAgent`` holds automatic applications' leases around their
    containers.
    """

    def setUp(self):
        self.agent, _ = local_pair()
        self.clock = Clock()
        self.store = MemoryEtcd(self.clock)
        self.agent.automatic = AutomaticFailover(
            self.clock, self.store, A, _Actions(A, {A: set()}, None))
        self.agent.automatic.configure([AutomaticApplication(
            name="plain", primary=A, standbys=[B])])

    def test_start_holds(self):
        """
        Starting an automatic application holds its lease first; stopping
        it releases the lease and its placement.
        """
        self.successResultOf(self.agent.start_application(PLAIN))
        self.assertEqual(1, len(self.store.leases()))
        self.successResultOf(self.agent.stop_application("plain"))
        self.assertEqual(([], None), (self.store.leases(),
                                      self.successResultOf(self.store.get(
                                          placement_key("plain")))))

    def test_start_refused(self):
        """
        When etcd says it runs elsewhere since a failover, the start fails
        saying where, and no container is made.
        """
        self.successResultOf(self.store.put(
            placement_key("plain"), b'{"node": "%s", "epoch": 4}' % (
                B.encode("ascii"),)))
        failure = self.failureResultOf(self.agent.start_application(PLAIN),
                                       PlacementRefused)
        self.assertIn("runs on %s" % (B,), str(failure.value))
        self.assertEqual(0, len(self.successResultOf(
            self.agent.docker.list())))

    def test_without_etcd(self):
        """
        A node without etcd refuses automatic applications, naming the
        setting, and accepts an empty list.
        """
        self.agent.automatic = None
        self.assertIn("FLOCKER_ETCD_ENDPOINTS", str(self.failureResultOf(
            self.agent.set_automatic([WEB])).value))
        self.assertIsNone(self.successResultOf(
            self.agent.set_automatic([])))


def _moved_state():
    """
    :return: Reports after web failed over from ``P`` to ``S2`` at epoch 2
        (``S1`` saw an older placement).
    """
    return ClusterState(nodes={
        S1: NodeState(address=S1, automatic={"web": (P, 1)}),
        S2: NodeState(address=S2, applications={"web": STORED},
                      running=["web"], automatic={"web": (S2, 2)}),
    })


class MovedByFailoverTests(SynchronousTestCase):
    """
    A deployment file older than an automatic failover is not deployed.
    """

    def test_moved(self):
        """
        An automatic application that etcd (by the latest epoch reported)
        places elsewhere than the file gives one line saying where it runs,
        the epoch, and what to change in the file.
        """
        self.assertEqual(
            ["application web runs on 10.0.0.3 since an automatic failover "
             "(epoch 2), but the deployment file places it on 10.0.0.1: "
             "deploying it would move it back; place it on 10.0.0.3 in the "
             "deployment file (with 10.0.0.1 as a standby in its place) and "
             "deploy again"],
            moved_by_failover(_deployment(), _moved_state()))

    def test_same(self):
        """
        Where etcd agrees with the file, or says nothing, nothing is said.
        """
        self.assertEqual([], moved_by_failover(_deployment(), ClusterState(
            nodes={S1: NodeState(address=S1, automatic={"web": (P, 1)})})))
        self.assertEqual([], moved_by_failover(_deployment(),
                                               ClusterState()))

    def test_report_round_trip(self):
        """
        A report's automatic placements survive its JSON form.
        """
        state = _moved_state().nodes[S2]
        self.assertEqual(state, node_state_from_dict(json.loads(json.dumps(
            node_state_to_dict(state)))))

    def test_local_report(self):
        """
        A node's report carries the placements its agent saw in etcd.
        """
        agent, _ = local_pair()
        clock = Clock()
        store = MemoryEtcd(clock)
        agent.automatic = AutomaticFailover(
            clock, store, A, _Actions(A, {A: set()}, None))
        agent.automatic.configure([AutomaticApplication(
            name="plain", primary=A, standbys=[B])])
        self.successResultOf(agent.automatic.start())
        self.successResultOf(agent.start_application(PLAIN))
        self.assertEqual({"plain": (A, 1)},
                         dict(self.successResultOf(agent.report()).automatic))


class LocalFailoverActionsStartTests(SynchronousTestCase):
    """
    ``LocalFailoverActions`` takes a standby's copy over and reads its
    freshness, on a local agent with in-memory volumes.
    """

    def test_freshness_and_start(self):
        """
        A standby's copy is as fresh as its epoch and newest snapshot;
        starting takes it over at the claim's epoch and starts the
        application on it.
        """
        primary, standby = local_pair()
        application = attr.evolve(PLAIN, volume=AttachedVolume(
            mountpoint="/data"))
        self.successResultOf(primary.create_volume("plain", None))
        self.successResultOf(primary.push_volume("plain", B))
        config = AutomaticApplication(name="plain", primary=A, standbys=[B],
                                      application=application)
        actions = LocalFailoverActions(B, lambda: standby,
                                       lambda: standby.volumes,
                                       standby.routes, lambda name: config)
        epoch, latest = self.successResultOf(actions.copy_freshness("plain"))
        self.assertTrue(latest.startswith("flocker-"))
        self.successResultOf(actions.start("plain", epoch + 1))
        state = self.successResultOf(standby.report())
        self.assertEqual((True, epoch + 1, {"plain"}),
                         (state.volumes["plain"].owned,
                          state.volumes["plain"].epoch, set(state.running)))

    def standby_actions(self, standbys):
        """
        :return: ``(primary, standby, actions)``: the primary pushed the
            application's volume to the standby, whose actions serve an
            application standing by on ``standbys``.
        """
        primary, standby = local_pair()
        application = attr.evolve(PLAIN, volume=AttachedVolume(
            mountpoint="/data"))
        self.successResultOf(primary.create_volume("plain", None))
        self.successResultOf(primary.push_volume("plain", B))
        self.config = AutomaticApplication(
            name="plain", primary=A, standbys=standbys,
            application=application, interval=3 * 10 ** 9)
        return primary, standby, self.actions_through(standby, standby)

    def actions_through(self, standby, agent):
        """
        :return: ``standby``'s actions, asking ``agent`` to act.
        """
        return LocalFailoverActions(
            B, lambda: agent, lambda: standby.volumes, standby.routes,
            lambda name: self.config, replicator=standby.replicator)

    def test_start_replicates(self):
        """
        A standby that took the application over replicates its volumes to
        the other standbys (not to itself), at the standby's interval.
        """
        _, standby, actions = self.standby_actions([B, "10.0.0.9"])
        self.successResultOf(actions.start("plain", 5))
        self.assertEqual(
            {"plain": Replication(volume="plain", application="plain",
                                  standbys=["10.0.0.9"],
                                  interval=3 * 10 ** 9)},
            dict(standby.replicator.replications()))

    def test_start_alone(self):
        """
        The only standby, once it took over, has nobody to replicate to.
        """
        _, standby, actions = self.standby_actions([B])
        self.successResultOf(actions.start("plain", 5))
        self.assertEqual({}, dict(standby.replicator.replications()))

    def test_stop_ends_replication(self):
        """
        Stopping the application (a fence) ends the replication of its
        volumes from this node; other volumes' replication goes on.
        """
        _, standby, actions = self.standby_actions([B, "10.0.0.9"])
        other = Replication(volume="other", application="other",
                            standbys=["10.0.0.9"], interval=10 ** 10)
        self.successResultOf(actions.start("plain", 5))
        self.successResultOf(standby.replicator.configure(
            standby.replicator.replications().set("other", other)))
        self.successResultOf(actions.stop("plain"))
        self.assertEqual({"other": other},
                         dict(standby.replicator.replications()))

    def test_follow_copy(self):
        """
        Following a new owner records it and its epoch on this node's copy,
        which then refuses the old owner's pushes as stale.
        """
        primary, standby, actions = self.standby_actions([B, "10.0.0.9"])
        self.successResultOf(actions.follow_copy("plain", "node-9", 4))
        copy = [info for info in self.successResultOf(
            standby.volumes.volumes()) if info.name == "plain"][0]
        self.assertEqual(("node-9", 4), (copy.owner, copy.epoch))
        self.failureResultOf(primary.push_volume("plain", B))

    def test_identity(self):
        """
        A node's identity is its volume service's.
        """
        _, standby, actions = self.standby_actions([B])
        self.assertEqual(standby.volumes.node_id,
                         self.successResultOf(actions.identity()))

    def test_stop_failed_ends_replication(self):
        """
        Replication of the application's volumes ends even when stopping
        the application failed; the failure is passed on.
        """
        _, standby, actions = self.standby_actions([B, "10.0.0.9"])
        self.successResultOf(actions.start("plain", 5))
        failing = type("Agent", (), {"stop_application": lambda _, name: fail(
            RuntimeError("docker is gone"))})()
        self.failureResultOf(
            self.actions_through(standby, failing).stop("plain"),
            RuntimeError)
        self.assertEqual({}, dict(standby.replicator.replications()))
