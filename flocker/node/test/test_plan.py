"""
Tests for :mod:`flocker.node._plan`.
"""

import os

import attr
from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker._change import InParallel, Sequentially, leaves, run_state_change
from flocker._model import (
    Application, AttachedVolume, ClusterState, ContainerOptions, Dependency,
    Deployment, HealthCheck, Link, Node, NodeKeyStatus, NodeState, Port, Route,
    VolumeState,
)
from flocker.node._changes import (
    CreateApplication, CreateVolume, DeleteStoppedApplication, FenceVolume,
    HandoffVolume, InstallNodeKey, PullImage, PushVolume, SeedVolume,
    SetLinks, SetRoutes, StartApplication, StopApplication,
    WaitForApplication,
)
from flocker.node._images import canonical_image
from flocker.node._names import with_service_names
from flocker.node._fake import FakeCluster
from flocker.node._plan import (
    COMPLETION_TIMEOUT, DEPENDENT_PHASE, KEY_PHASE, PHASES, plan_changes,
    skipped_applications,
)
from flocker.testtools import temporary_directory
from flocker.node.testtools import (
    converged_state, make_node_key, make_public_key, synthetic_cluster,
)

EXAMPLES = int(os.environ.get("FLOCKER_FUZZ_EXAMPLES", "60"))

WEB = Application(name="web", image="flocker/busybox",
                  ports=[Port(internal=80, external=8080)],
                  volume=AttachedVolume(mountpoint="/data"))
CLIENT = Application(name="client", image="flocker/busybox",
                     links=[Link(local_port=5000, remote_port=8080,
                                 alias="web")])
A, B = "10.0.0.1", "10.0.0.2"
#: What the plan says of WEB's restart from flocker/busybox:old.
REASON = "restart: image flocker/busybox:old -> flocker/busybox"


def phase(label, *nodes):
    """
    Build the expected group for one phase: ``nodes`` are
    ``(address, [changes])`` pairs; a node's changes run in order, except in
    the start phase, where they run at once.
    """
    group = InParallel if label == PHASES[3] else Sequentially
    return InParallel(changes=[
        group(changes=changes, label="node " + address)
        for address, changes in nodes], label=label)


def plan(*phases):
    """
    Build an expected plan from phase groups.
    """
    return Sequentially(changes=phases, label="plan")


class PlanTests(SynchronousTestCase):
    """
    Tests for ``plan_changes`` on hand-written cases.
    """

    def test_empty(self):
        """
        An empty deployment of an empty cluster needs no change.
        """
        self.assertEqual(plan_changes(Deployment(), ClusterState()),
                         Sequentially(changes=[]))

    def test_new_deployment(self):
        """
        On an empty cluster, volumes are created, applications started and
        every other node routes the published port.
        """
        deployment = Deployment(nodes=[Node(address=A, applications=[WEB]),
                                       Node(address=B,
                                            applications=[CLIENT])])
        self.assertEqual(
            plan_changes(deployment, ClusterState()),
            plan(phase(PHASES[0], (A, [CreateVolume(node=A, name="web")])),
                 phase(PHASES[3],
                       (A, [StartApplication(node=A, application=WEB)]),
                       (B, [StartApplication(node=B, application=CLIENT),
                            SetRoutes(node=B, routes=[Route(8080, A)])]))))

    def test_converged(self):
        """
        A converged cluster gives an empty plan.
        """
        deployment = Deployment(nodes=[Node(address=A, applications=[WEB]),
                                       Node(address=B,
                                            applications=[CLIENT])])
        self.assertEqual(plan_changes(deployment,
                                      converged_state(deployment)),
                         Sequentially(changes=[]))

    def test_move(self):
        """
        Moving an application with a volume pre-copies the volume while it
        runs, stops it (telling its node the hand-off that follows, so the
        way for the last increment opens during the stop), hands the volume
        off, starts it on the new node and updates both nodes' routes (the
        start asked first: the new node's agent takes it up before its
        routes).  The old container is only stopped before the hand-off,
        and deleted beside the start, and the new one is created while
        the old one stops: only Docker's stop and start are part of the
        downtime.
        """
        before = Deployment(nodes=[Node(address=A, applications=[WEB]),
                                   Node(address=B)])
        after = Deployment(nodes=[Node(address=A),
                                  Node(address=B, applications=[WEB])])
        self.assertEqual(
            plan_changes(after, converged_state(before)),
            plan(phase(PHASES[0],
                       (A, [PushVolume(node=A, name="web", target=B,
                                       estimated_bytes=1 << 20)])),
                 phase(PHASES[1], (A, [StopApplication(
                     node=A, name="web", handoffs=[("web", B)],
                     keep=True)]),
                       (B, [CreateApplication(node=B, application=WEB)])),
                 phase(PHASES[2], (A, [HandoffVolume(node=A, name="web",
                                                     target=B)])),
                 phase(PHASES[3],
                       (A, [SetRoutes(node=A, routes=[Route(8080, B)]),
                            DeleteStoppedApplication(node=A, name="web",
                                                     target=B)]),
                       (B, [StartApplication(node=B, application=WEB),
                            SetRoutes(node=B, routes=[])]))))

    def test_move_into_held_copy_creates_while_running(self):
        """
        A move to a node that holds a copy of the volume already (it ran
        there before) creates the new container in the prepare phase,
        after the increment's push is planned and while the old container
        still runs, so that the stop phase is the stop alone; the rest is
        as for any move.
        """
        before = Deployment(nodes=[Node(address=A, applications=[WEB]),
                                   Node(address=B)])
        after = Deployment(nodes=[Node(address=A),
                                  Node(address=B, applications=[WEB])])
        cluster = FakeCluster([A, B])
        converge(cluster, after)
        converge(cluster, before)
        phases = {step.label: leaves(step)
                  for step in plan_changes(after, cluster.state()).changes}
        self.assertEqual(
            [[(type(c).__name__, c.node) for c in phases[label]]
             for label in PHASES[:3]],
            [[("PushVolume", A), ("CreateApplication", B)],
             [("StopApplication", A)],
             [("HandoffVolume", A)]])
        pushed = phases[PHASES[0]][0]
        self.assertEqual((pushed.estimated_bytes, pushed.replace_copy),
                         (None, False))

    def test_move_back_is_incremental(self):
        """
        When the target holds a copy sharing a snapshot with the owner, the
        pre-copy is incremental and its size is not estimated as the whole
        volume.
        """
        deployment = Deployment(nodes=[Node(address=A, applications=[WEB]),
                                       Node(address=B)])
        state = converged_state(Deployment(
            nodes=[Node(address=B, applications=[WEB]), Node(address=A)]))
        copy = VolumeState(name="web", owned=False, snapshots=["s1"])
        node_a = state.nodes[A]
        state = ClusterState(nodes=state.nodes.set(A, NodeState(
            address=A, volumes={"web": copy}, routes=node_a.routes)))
        pushes = [c for c in leaves(plan_changes(deployment, state))
                  if isinstance(c, PushVolume)]
        self.assertEqual(pushes, [PushVolume(node=B, name="web", target=A,
                                             estimated_bytes=None)])

    def test_changed_configuration(self):
        """
        An application whose configuration changed is stopped and started
        again on the same node, its volume untouched.
        """
        deployment = Deployment(nodes=[Node(address=A, applications=[WEB])])
        old = Application(name="web", image="flocker/busybox:old",
                          ports=WEB.ports, volume=WEB.volume)
        state = converged_state(Deployment(
            nodes=[Node(address=A, applications=[old])]))
        self.assertEqual(
            plan_changes(deployment, state),
            plan(phase(PHASES[1], (A, [StopApplication(
                node=A, name="web", reason=REASON)])),
                 phase(PHASES[3], (A, [StartApplication(
                     node=A, application=WEB, reason=REASON)]))))

    def test_restart_says_why(self):
        """
        A restart's stop and start name what differs: the image old -> new,
        environment variable names (never values), ports.
        """
        wanted = attr.evolve(WEB, environment={"PASSWORD": "s3cret"},
                             ports=[Port(internal=80, external=8081)])
        state = converged_state(Deployment(
            nodes=[Node(address=A, applications=[attr.evolve(
                WEB, image="flocker/busybox:old")])]))
        described = [change.describe() for change in leaves(plan_changes(
            Deployment(nodes=[Node(address=A, applications=[wanted])]),
            state)) if not isinstance(change, SetRoutes)]
        self.assertEqual(described, [
            "%s: stop application web (restart: image flocker/busybox:old "
            "-> flocker/busybox; environment PASSWORD; ports 8080->80 -> "
            "8081->80)" % (A,),
            "%s: start application web (image flocker/busybox; restart: "
            "image flocker/busybox:old -> flocker/busybox; environment "
            "PASSWORD; ports 8080->80 -> 8081->80)" % (A,)])

    def test_other_project_untouched(self):
        """
        A deploy of one project neither stops nor replaces another
        project's applications, and keeps routing their ports.
        """
        other = attr.evolve(WEB, project="shop")
        state = converged_state(Deployment(
            nodes=[Node(address=A, applications=[other]), Node(address=B)]))
        deployment = Deployment(project="blog", nodes=[
            Node(address=A), Node(address=B, applications=[CLIENT])])
        changes = leaves(plan_changes(deployment, state))
        self.assertEqual(changes, [StartApplication(
            node=B, application=attr.evolve(CLIENT, project="blog"))])

    def test_stopped_container_restarted(self):
        """
        A container that exists with the right configuration but is not
        running is started again, without a stop first.
        """
        deployment = Deployment(nodes=[Node(address=A, applications=[CLIENT])])
        state = ClusterState(nodes={A: NodeState(
            address=A, applications={"client": CLIENT})})
        self.assertEqual(
            plan_changes(deployment, state),
            plan(phase(PHASES[3],
                       (A, [StartApplication(node=A, application=CLIENT,
                                             reason="it was stopped")]))))

    def test_removed_application(self):
        """
        An application no longer in the deployment is stopped; its volume is
        kept (no change touches it).
        """
        deployment = Deployment(nodes=[Node(address=A)])
        state = converged_state(Deployment(
            nodes=[Node(address=A, applications=[WEB])]))
        self.assertEqual(
            plan_changes(deployment, state),
            plan(phase(PHASES[1], (A, [StopApplication(
                node=A, name="web", removal=True)]))))

    def test_interrupted_handoff_recovers_newest_copy(self):
        """
        When no node owns a volume but copies exist (a move interrupted
        between release and acquire), the copy with the newest snapshot is
        taken over; no empty volume is created.  The other copy follows
        the new owner at its new epoch once it started.
        """
        deployment = Deployment(nodes=[Node(address=B, applications=[WEB]),
                                       Node(address=A)])
        state = ClusterState(nodes={
            A: NodeState(address=A, volumes={"web": VolumeState(
                name="web", owned=False, snapshots=["s1", "s2"])}),
            B: NodeState(address=B, volumes={"web": VolumeState(
                name="web", owned=False, snapshots=["s1", "s2"])}),
        })
        changes = leaves(plan_changes(deployment, state))
        self.assertEqual(
            [c for c in changes if not isinstance(c, SetRoutes)],
            [CreateVolume(node=B, name="web", from_copy=True),
             FenceVolume(node=A, name="web", owner=B, epoch=1),
             StartApplication(node=B, application=WEB)])

    def test_route_addresses(self):
        """
        Routes use the resolved IP address of each node when given one.
        """
        deployment = Deployment(nodes=[Node(address="one", applications=[WEB]),
                                       Node(address="two")])
        routes = [c for c in leaves(plan_changes(
            deployment, ClusterState(),
            addresses={"one": "10.1.1.1", "two": "10.1.1.2"}))
            if isinstance(c, SetRoutes)]
        self.assertEqual(routes, [SetRoutes(node="two",
                                            routes=[Route(8080, "10.1.1.1")])])


# Generated clusters: a few nodes, a few applications, each possibly with a
# volume and a port, placed anywhere; current states drawn independently.
ADDRESSES = ["10.0.0.%d" % (i,) for i in range(1, 5)]


@st.composite
def deployments(draw):
    """
    Draw a ``Deployment`` of up to 4 nodes and 6 applications.
    """
    count = draw(st.integers(min_value=0, max_value=6))
    nodes = {address: [] for address in
             ADDRESSES[:draw(st.integers(min_value=1, max_value=4))]}
    for i in range(count):
        application = Application(
            name="app%d" % (i,),
            image=draw(st.sampled_from(["img:1", "img:2"])),
            ports=([Port(internal=80, external=8000 + i)]
                   if draw(st.booleans()) else []),
            volume=(AttachedVolume(mountpoint="/data")
                    if draw(st.booleans()) else None))
        nodes[draw(st.sampled_from(sorted(nodes)))].append(application)
    return Deployment(nodes=[Node(address=a, applications=apps)
                             for a, apps in nodes.items()])


def converge(cluster, deployment):
    """
    Plan against the fake cluster's state and run the plan.

    :return: The plan that ran.
    """
    change = plan_changes(deployment, cluster.state())
    SynchronousTestCase().successResultOf(
        run_state_change(change, cluster.agents))
    return change


class NamesInPlaceTests(SynchronousTestCase):
    """
    A project's names change in place: adding or removing an application
    updates the others' links (``SetLinks``) without restarting them.
    """

    DB = Application(name="db", image="i", ports=[
        Port(internal=5432, external=15432)])
    CACHE = Application(name="cache", image="i", ports=[
        Port(internal=6379, external=16379)])
    APP = Application(name="app", image="i")

    def project(self, *applications):
        return with_service_names(Deployment(project="p", nodes=[
            Node(address=A, applications=applications), Node(address=B)]))

    def running(self, *applications):
        cluster = FakeCluster([A, B])
        converge(cluster, self.project(*applications))
        return cluster

    def test_add_service(self):
        """
        Adding an application starts it and updates the names of the
        running ones in place: none is stopped or started again, and the
        next plan is empty.
        """
        cluster = self.running(self.DB, self.APP)
        bigger = self.project(self.DB, self.APP, self.CACHE)
        changes = list(leaves(plan_changes(bigger, cluster.state())))
        wanted = bigger.placements()
        self.assertEqual(
            (sorted((type(c).__name__, getattr(c, "name", None) or
                     getattr(getattr(c, "application", None), "name", None))
                    for c in changes if not isinstance(c, SetRoutes)),
             [c for c in changes if isinstance(c, SetLinks)
              and c.name == "app"]),
            ([("SetLinks", "app"), ("SetLinks", "db"),
              ("StartApplication", "cache")],
             [SetLinks(node=A, name="app", links=wanted["app"][1].links)]))
        run = converge(cluster, bigger)
        self.assertEqual(
            (list(leaves(plan_changes(bigger, cluster.state()))),
             cluster.state().nodes[A].links["app"],
             "update the links of application app in place" in " ".join(
                 c.describe() for c in leaves(run))),
            ([], wanted["app"][1].links, True))

    def test_remove_service(self):
        """
        Removing an application stops it; the others lose its name in
        place.
        """
        cluster = self.running(self.DB, self.APP, self.CACHE)
        smaller = self.project(self.DB, self.APP)
        changes = list(leaves(plan_changes(smaller, cluster.state())))
        self.assertEqual(
            sorted(type(c).__name__ + " " + c.name for c in changes
                   if isinstance(c, (SetLinks, StopApplication))),
            ["SetLinks app", "SetLinks db", "StopApplication cache"])

    def test_lost_rules_reinstalled(self):
        """
        A running container whose link rules are gone (Docker restarted
        it) gets them again, in place.
        """
        cluster = self.running(self.DB, self.APP)
        agent = cluster.agents[A]
        agent.state = attr.evolve(agent.state, links=agent.state.links.set(
            "app", frozenset()))
        deployment = self.project(self.DB, self.APP)
        self.assertEqual(
            [c for c in leaves(plan_changes(deployment, cluster.state()))],
            [SetLinks(node=A, name="app",
                      links=deployment.placements()["app"][1].links)])

    def test_unknown_links_restart(self):
        """
        A node that does not report an application's installed links (an
        older node) has it started again when its names change, as
        before.
        """
        cluster = self.running(self.DB, self.APP)
        agent = cluster.agents[A]
        agent.state = attr.evolve(agent.state, links={})
        bigger = self.project(self.DB, self.APP, self.CACHE)
        self.assertEqual(
            sorted(type(c).__name__ + " " + (
                c.name if hasattr(c, "name") else c.application.name)
                for c in leaves(plan_changes(bigger, cluster.state()))
                if not isinstance(c, SetRoutes)),
            ["StartApplication app", "StartApplication cache",
             "StartApplication db", "StopApplication app",
             "StopApplication db"])


class UDPPlanTests(SynchronousTestCase):
    """
    Tests for planning the routes of UDP ports.
    """

    def test_udp_routed(self):
        """
        A published UDP port is routed as UDP by every other node, beside
        a TCP port of the same number.
        """
        dns = Application(name="dns", image="i", ports=[
            Port(internal=53, external=53, protocol="udp"),
            Port(internal=5353, external=53)])
        deployment = Deployment(nodes=[Node(address=A, applications=[dns]),
                                       Node(address=B)])
        routes = [c for c in leaves(plan_changes(deployment, ClusterState()))
                  if isinstance(c, SetRoutes) and c.node == B]
        self.assertEqual(
            (routes, routes[0].describe()),
            ([SetRoutes(node=B, routes=[Route(53, A), Route(53, A, "udp")])],
             "10.0.0.2: set routes 53->10.0.0.1, 53/udp->10.0.0.1"))


class SeveralVolumesPlanTests(SynchronousTestCase):
    """
    Tests for planning applications with several (named, shared, external)
    volumes.
    """

    DATA = AttachedVolume(name="data", mountpoint="/srv/data")
    LOGS = AttachedVolume(name="logs", mountpoint="/srv/logs")
    STORE = attr.evolve(WEB, volumes=[DATA, LOGS])

    def test_new(self):
        """
        Every volume of a new application is created before it starts.
        """
        deployment = Deployment(nodes=[Node(address=A,
                                            applications=[self.STORE])])
        creates = [c for c in leaves(plan_changes(deployment, ClusterState()))
                   if isinstance(c, CreateVolume)]
        self.assertEqual(creates, [
            CreateVolume(node=A, name="data"), CreateVolume(node=A,
                                                            name="logs"),
            CreateVolume(node=A, name="web")])

    def test_move_together(self):
        """
        All volumes of a moving application are pre-copied while it runs,
        then, after its one stop, each is handed off: every last increment
        is taken after the stop, one consistent point for all of them.
        """
        before = Deployment(nodes=[Node(address=A,
                                        applications=[self.STORE]),
                                   Node(address=B)])
        after = Deployment(nodes=[Node(address=A),
                                  Node(address=B, applications=[self.STORE])])
        names = ["data", "logs", "web"]
        self.assertEqual(
            plan_changes(after, converged_state(before)),
            plan(phase(PHASES[0], (A, [
                PushVolume(node=A, name=n, target=B, estimated_bytes=1 << 20)
                for n in names])),
                 phase(PHASES[1], (A, [StopApplication(
                     node=A, name="web",
                     handoffs=[(n, B) for n in names], keep=True)]),
                       (B, [CreateApplication(node=B,
                                              application=self.STORE)])),
                 phase(PHASES[2], (A, [
                     HandoffVolume(node=A, name=n, target=B)
                     for n in names])),
                 phase(PHASES[3],
                       (A, [SetRoutes(node=A, routes=[Route(8080, B)]),
                            DeleteStoppedApplication(node=A, name="web",
                                                     target=B)]),
                       (B, [StartApplication(node=B,
                                             application=self.STORE),
                            SetRoutes(node=B, routes=[])]))))

    def test_shared_volume_moves_once(self):
        """
        A volume shared by two applications is moved once, and both stop
        before its hand-off.
        """
        reader = Application(name="reader", image="flocker/busybox",
                             volumes=[attr.evolve(self.DATA,
                                                  read_only=True)])
        before = Deployment(nodes=[Node(address=A,
                                        applications=[self.STORE, reader]),
                                   Node(address=B)])
        after = Deployment(nodes=[Node(address=A), Node(
            address=B, applications=[self.STORE, reader])])
        changes = leaves(plan_changes(after, converged_state(before)))
        self.assertEqual(
            ([c.name for c in changes if isinstance(c, HandoffVolume)],
             sorted(c.name for c in changes
                    if isinstance(c, StopApplication))),
            (["data", "logs", "web"], ["reader", "web"]))

    def test_external_missing(self):
        """
        An application whose external volume no node holds is left undone,
        the reason naming the volume and the node; nothing creates the
        volume.
        """
        external = attr.evolve(self.DATA, external=True)
        deployment = Deployment(nodes=[Node(address=A, applications=[
            attr.evolve(WEB, volumes=[external])])])
        self.assertEqual(
            (skipped_applications(deployment, ClusterState(), ()),
             [c for c in leaves(plan_changes(deployment, ClusterState()))
              if not isinstance(c, SetRoutes)]),
            ({"web": "its external volume data does not exist on node "
                     "10.0.0.1 (nor on any other node); Flocker does not "
                     "create external volumes: create it there first"}, []))

    def test_external_present(self):
        """
        An external volume a node holds (a copy nobody owns, as one made
        outside Flocker) is taken over where it is, not created.
        """
        external = attr.evolve(self.DATA, external=True)
        deployment = Deployment(nodes=[Node(address=A, applications=[
            Application(name="app", image="i", volumes=[external])])])
        state = ClusterState(nodes={A: NodeState(address=A, volumes={
            "data": VolumeState(name="data", owned=False)})})
        self.assertEqual(
            [c for c in leaves(plan_changes(deployment, state))
             if isinstance(c, CreateVolume)],
            [CreateVolume(node=A, name="data", from_copy=True)])

    def test_seeded_once(self):
        """
        A new volume with a seed directory is filled right after it is
        created; once it exists (here or on another node), never again.
        """
        seeded = attr.evolve(self.DATA, seed="/project/data")
        deployment = Deployment(nodes=[Node(address=A, applications=[
            Application(name="app", image="i", volumes=[seeded])]),
            Node(address=B)])
        moved = Deployment(nodes=[Node(address=A), Node(
            address=B, applications=[
                Application(name="app", image="i", volumes=[seeded])])])
        self.assertEqual(
            ([c for c in leaves(plan_changes(deployment, ClusterState()))
              if isinstance(c, (CreateVolume, SeedVolume))],
             [c for c in leaves(plan_changes(
                 moved, converged_state(deployment)))
              if isinstance(c, SeedVolume)]),
            ([CreateVolume(node=A, name="data"),
              SeedVolume(node=A, name="data", directory="/project/data")],
             []))

    def test_seed_runs(self):
        """
        Running the plan sends the directory's archive to the node, which
        fills the new volume with it.
        """
        directory = temporary_directory(self)
        os.makedirs(os.path.join(directory, "sub"))
        with open(os.path.join(directory, "sub", "f"), "wb") as f:
            f.write(b"seed")
        cluster = FakeCluster([A])
        deployment = Deployment(nodes=[Node(address=A, applications=[
            Application(name="app", image="i", volumes=[
                attr.evolve(self.DATA, seed=directory)])])])
        self.successResultOf(run_state_change(
            plan_changes(deployment, cluster.state()), cluster.agents))
        self.assertEqual(
            cluster.agents[A].calls[1][0:1] + (
                cluster.agents[A].data["data"].startswith("seed:"),),
            ("seed_volume", True))

    def test_fake_cluster_moves_all_data(self):
        """
        On a fake cluster, the data of every volume arrives with the moved
        application.
        """
        cluster = FakeCluster([A, B])
        before = Deployment(nodes=[Node(address=A,
                                        applications=[self.STORE]),
                                   Node(address=B)])
        self.successResultOf(run_state_change(
            plan_changes(before, cluster.state()), cluster.agents))
        for name in ("data", "logs", "web"):
            cluster.agents[A].write(name, "written to " + name)
        after = Deployment(nodes=[Node(address=A),
                                  Node(address=B, applications=[self.STORE])])
        self.successResultOf(run_state_change(
            plan_changes(after, cluster.state()), cluster.agents))
        self.assertEqual(
            ({n: cluster.agents[B].data[n] for n in ("data", "logs", "web")},
             plan_changes(after, cluster.state())),
            ({n: "written to " + n for n in ("data", "logs", "web")},
             Sequentially(changes=[])))


class PlanPropertyTests(SynchronousTestCase):
    """
    Properties of ``plan_changes`` for generated deployments, checked by
    running plans on a :class:`FakeCluster`.
    """

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(deployments(), deployments(),
           st.sets(st.sampled_from(["img:1", "img:2"])))
    def test_no_stop_before_a_pull(self, first, second, images):
        """
        For any change of configuration on nodes lacking some images, every
        pull (the step that can fail for want of an image) comes before
        every stop, in an earlier phase: a missing image never takes a
        running application down.
        """
        cluster = FakeCluster(ADDRESSES, images=["img:1", "img:2"])
        converge(cluster, first)
        for agent in cluster.agents.values():
            agent.state = attr.evolve(agent.state, images=[
                canonical_image(image) for image in images])
        changes = leaves(plan_changes(second, cluster.state()))
        pulls = [i for i, c in enumerate(changes) if isinstance(c, PullImage)]
        stops = [i for i, c in enumerate(changes)
                 if isinstance(c, StopApplication)]
        starts = {(c.node, c.application.image) for c in changes
                  if isinstance(c, StartApplication)}
        self.assertEqual(
            (max(pulls + [-1]) < min(stops + [len(changes)]),
             {(c.node, canonical_image(c.image)) for c in changes
              if isinstance(c, PullImage)}),
            (True, {(node, canonical_image(image))
                    for node, image in starts
                    if canonical_image(image) not in
                    {canonical_image(i) for i in images}}))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(deployments(), deployments())
    def test_kept_containers_deleted_after_start(self, first, second):
        """
        For any change of configuration, a container a stop keeps is on a
        node its application leaves for a start elsewhere, and exactly the
        kept containers are deleted, each in the last phase (after every
        hand-off), on the node that kept it.
        """
        cluster = FakeCluster(ADDRESSES)
        converge(cluster, first)
        plan = plan_changes(second, cluster.state())
        changes = leaves(plan)
        kept = {(c.node, c.name) for c in changes
                if isinstance(c, StopApplication) and c.keep}
        deleted = {(c.node, c.name) for c in changes
                   if isinstance(c, DeleteStoppedApplication)}
        starts = {c.application.name: c.node for c in changes
                  if isinstance(c, StartApplication)}
        last = leaves(plan.changes[-1]) if plan.changes else []
        self.assertEqual(
            (deleted, all(name in starts and starts[name] != node
                          for node, name in kept),
             {(c.node, c.name) for c in last
              if isinstance(c, DeleteStoppedApplication)}),
            (kept, True, kept))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(deployments(), deployments())
    def test_created_before_handoff_started_after(self, first, second):
        """
        For any change of configuration, a container created ahead is
        created on the node its application starts on, which had no
        container of it, with the configuration it starts with, in an
        earlier phase than every hand-off and the start (so it never runs
        before its node owns the volume: see the agents' tests of
        ``create_application``).
        """
        cluster = FakeCluster(ADDRESSES)
        converge(cluster, first)
        state = cluster.state()
        plan = plan_changes(second, state)
        phase_of = {}
        for index, step in enumerate(plan.changes):
            for change in leaves(step):
                phase_of[id(change)] = index
        changes = leaves(plan)
        starts = {c.application.name: c for c in changes
                  if isinstance(c, StartApplication)}
        handoffs = [phase_of[id(c)] for c in changes
                    if isinstance(c, HandoffVolume)]
        creations = [c for c in changes if isinstance(c, CreateApplication)]
        for creation in creations:
            name = creation.application.name
            start = starts[name]
            self.assertEqual(
                (creation.node, creation.application,
                 name in state.nodes[creation.node].applications,
                 phase_of[id(creation)] < min(
                     handoffs + [phase_of[id(start)]])),
                (start.node, start.application, False, True))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(deployments(), deployments(),
           st.sampled_from(["stop_application", "release_volume",
                            "start_application"]))
    def test_interrupted_after_stops_converges(self, first, second, failing):
        """
        A deploy that fails at its stops, hand-offs or starts (so kept
        containers are not deleted, and containers created ahead are not
        started) leaves nothing the next deploy of the same configuration
        trips over: it converges, and no node keeps a container of an
        application placed elsewhere.
        """
        cluster = FakeCluster(ADDRESSES)
        converge(cluster, first)
        cluster.failures.update((address, failing) for address in ADDRESSES)
        run_state_change(plan_changes(second, cluster.state()),
                         cluster.agents).addErrback(lambda _: None)
        cluster.failures.clear()
        converge(cluster, second)
        placed = {name: address
                  for name, (address, _) in second.placements().items()}
        self.assertEqual(
            (plan_changes(second, cluster.state()),
             {(address, name) for address, agent in cluster.agents.items()
              for name in agent.state.applications
              if placed.get(name) != address}),
            (Sequentially(changes=[]), set()))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(deployments())
    def test_converged_is_empty(self, deployment):
        """
        For any deployment, its converged state plans to nothing.
        """
        self.assertEqual(plan_changes(deployment, converged_state(deployment)),
                         Sequentially(changes=[]))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(deployments())
    def test_deterministic(self, deployment):
        """
        Planning twice gives equal plans.
        """
        state = converged_state(Deployment())
        self.assertEqual(plan_changes(deployment, state),
                         plan_changes(deployment, state))

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(deployments(), deployments())
    def test_runs_to_convergence(self, first, second):
        """
        Deploying one configuration then another on a fake cluster
        converges in one run each: planning again gives nothing, every
        volume has exactly one owner, and its data followed it.
        """
        cluster = FakeCluster(ADDRESSES)
        converge(cluster, first)
        for address, agent in cluster.agents.items():
            for name in agent.state.volumes:
                if agent.state.volumes[name].owned:
                    agent.write(name, "written on %s;" % (address,))
        before = {}
        for agent in cluster.agents.values():
            for name, volume in agent.state.volumes.items():
                if volume.owned:
                    before[name] = agent.data[name]
        converge(cluster, second)
        self.assertEqual(plan_changes(second, cluster.state()),
                         Sequentially(changes=[]))
        owners = {}
        for address, agent in cluster.agents.items():
            for name, volume in agent.state.volumes.items():
                if volume.owned:
                    self.assertNotIn(name, owners)
                    owners[name] = address
                    self.assertEqual(agent.data[name], before.get(name, ""))
        for name, (address, application) in second.placements().items():
            if application.volume is not None:
                self.assertEqual(owners[name], address)


class SyntheticClusterTests(SynchronousTestCase):
    """
    Tests for the synthetic clusters the planner benchmark uses.
    """

    def test_moves_and_changes(self):
        """
        A synthetic cluster with moved and changed applications plans moves
        and restarts for them.
        """
        deployment, state = synthetic_cluster(4, 40, moved=0.1, changed=0.1)
        kinds = {type(c) for c in leaves(plan_changes(deployment, state))}
        self.assertTrue({HandoffVolume, StartApplication,
                         StopApplication} <= kinds)


class UnknownNodeTests(SynchronousTestCase):
    """
    Tests for planning when some nodes did not report.
    """

    def test_nothing_on_unknown_node(self):
        """
        No change is planned on a node that did not report, and an
        application placed there is skipped.
        """
        deployment = Deployment(nodes=[Node(address=A, applications=[WEB]),
                                       Node(address=B,
                                            applications=[CLIENT])])
        change = plan_changes(deployment, ClusterState(), unknown={A})
        self.assertEqual({c.node for c in leaves(change)}, {B})
        self.assertEqual(
            skipped_applications(deployment, ClusterState(), {A}),
            {"web": "its node 10.0.0.1 did not report"})

    def test_no_volume_created_while_owner_may_be_silent(self):
        """
        A volume with no reachable owner is not created while some node is
        silent: that node may own it.
        """
        deployment = Deployment(nodes=[Node(address=B, applications=[WEB]),
                                       Node(address=A)])
        change = plan_changes(deployment, ClusterState(), unknown={A})
        self.assertEqual([c for c in leaves(change)
                          if not isinstance(c, SetRoutes)], [])


class TwoOwnersTests(SynchronousTestCase):
    """
    Two nodes reporting ownership of one volume is a conflict the planner
    reports and leaves alone.
    """

    def setUp(self):
        self.deployment = Deployment(nodes=[
            Node(address=A), Node(address=B, applications=[WEB])])
        self.state = ClusterState(nodes={
            address: NodeState(address=address, volumes={
                "web": VolumeState(name="web", owned=True,
                                   snapshots=["s1"])})
            for address in (A, B)})

    def test_skipped_naming_both(self):
        """
        The application is skipped, with a reason naming both nodes.
        """
        self.assertEqual(
            skipped_applications(self.deployment, self.state, ()),
            {"web": "its volume web is owned by 2 nodes (10.0.0.1, "
                    "10.0.0.2); Flocker changes nothing of it until only "
                    "one node owns it"})

    def test_no_change(self):
        """
        Nothing is planned for the application or its volume on either
        node: no push, hand-off, stop or start.
        """
        change = plan_changes(self.deployment, self.state)
        self.assertEqual([c for c in leaves(change)
                          if not isinstance(c, SetRoutes)], [])


class StaleFollowerTests(SynchronousTestCase):
    """
    A target copy following an earlier owner (which would refuse the
    owner's push) is replaced by the pre-copy.
    """

    def plan_push(self, copy_owner):
        """
        :return: The ``PushVolume`` of moving WEB from A (identity "id-a")
            to B, whose copy names ``copy_owner``.
        """
        deployment = Deployment(nodes=[Node(address=A),
                                       Node(address=B, applications=[WEB])])
        state = ClusterState(nodes={
            A: NodeState(address=A, node_id="id-a", volumes={
                "web": VolumeState(name="web", owned=True, size=100,
                                   snapshots=["s1", "s2"])}),
            B: NodeState(address=B, node_id="id-b", volumes={
                "web": VolumeState(name="web", owned=False,
                                   snapshots=["s1"], owner=copy_owner)})})
        [push] = [c for c in leaves(plan_changes(deployment, state))
                  if isinstance(c, PushVolume)]
        return push

    def test_replaced(self):
        """
        A copy following another node is replaced: the push deletes it
        first and sends everything, and says so.
        """
        push = self.plan_push("id-c")
        self.assertEqual((push.replace_copy, push.estimated_bytes),
                         (True, 100))
        self.assertIn("replacing its copy", push.describe())

    def test_kept(self):
        """
        A copy following the owner, or naming none, is pushed into.
        """
        for owner in ("id-a", None):
            push = self.plan_push(owner)
            self.assertEqual((push.replace_copy, push.estimated_bytes),
                             (False, None))

    def test_run(self):
        """
        Run, the replacing push deletes the target's copy through the
        target's agent, then pushes from the owner.
        """
        cluster = FakeCluster([A, B])
        self.successResultOf(cluster.agents[B].expect_senders(
            {"web": frozenset([A])}))
        self.successResultOf(cluster.agents[A].create_volume("web", None))
        self.successResultOf(cluster.agents[A].push_volume("web", B))
        calls = []
        agents = {address: _Recording(agent, address, calls)
                  for address, agent in cluster.agents.items()}
        self.successResultOf(PushVolume(node=A, name="web", target=B,
                                        replace_copy=True).run(agents))
        self.assertEqual(calls, [(B, "delete_volume"), (A, "push_volume")])


class _Recording(object):
    """
    An agent recording which of its methods were called, in order.
    """

    def __init__(self, agent, address, calls):
        self._agent, self._address, self._calls = agent, address, calls

    def __getattr__(self, name):
        method = getattr(self._agent, name)

        def call(*args, **kwargs):
            self._calls.append((self._address, name))
            return method(*args, **kwargs)
        return call


class NodeKeyPlanTests(SynchronousTestCase):
    """
    The planner installs the nodes' trust where it is not current, first.
    """

    def setUp(self):
        self.key = make_node_key()
        self.deployment = Deployment(nodes=[
            Node(address=A, applications=[WEB]), Node(address=B)])

    def with_key(self, state, *addresses):
        """
        :return: ``state`` with the trust reported installed on
            ``addresses``.
        """
        nodes = dict(state.nodes)
        for address in addresses:
            nodes[address] = attr.evolve(
                nodes.get(address, NodeState(address=address)),
                node_key=NodeKeyStatus(public_key=make_public_key(),
                                       installed=self.key.digest()))
        return ClusterState(nodes=nodes)

    def test_installed_first(self):
        """
        On a cluster without the key, it is installed on every node in a
        phase before every other (so before any push).
        """
        result = plan_changes(self.deployment, ClusterState(),
                              node_key=self.key)
        self.assertEqual(
            result.changes[0],
            phase(KEY_PHASE, (A, [InstallNodeKey(node=A, key=self.key)]),
                  (B, [InstallNodeKey(node=B, key=self.key)])))
        self.assertEqual(result.changes[1:], plan_changes(
            self.deployment, ClusterState()).changes)

    def test_only_where_differs(self):
        """
        Only nodes whose installed trust differs get it.
        """
        state = self.with_key(converged_state(self.deployment), A)
        self.assertEqual(
            plan_changes(self.deployment, state, node_key=self.key),
            plan(phase(KEY_PHASE, (B, [InstallNodeKey(node=B,
                                                      key=self.key)]))))

    def test_known_hosts_changed(self):
        """
        A node with older trust (another known_hosts) gets it again.
        """
        state = self.with_key(converged_state(self.deployment), A, B)
        newer = attr.evolve(self.key, known_hosts="")
        self.assertEqual(
            leaves(plan_changes(self.deployment, state, node_key=newer)),
            [InstallNodeKey(node=A, key=newer),
             InstallNodeKey(node=B, key=newer)])

    def test_converged(self):
        """
        A converged cluster whose nodes all have the trust needs no
        change.
        """
        state = self.with_key(converged_state(self.deployment), A, B)
        self.assertEqual(plan_changes(self.deployment, state,
                                      node_key=self.key),
                         Sequentially(changes=[]))

    def test_unknown_node(self):
        """
        While a node did not report, no key is installed anywhere (the
        known_hosts would lack its host key).
        """
        self.assertEqual(
            [c for c in leaves(plan_changes(
                self.deployment, ClusterState(), unknown=frozenset([B]),
                node_key=self.key)) if isinstance(c, InstallNodeKey)], [])

    def test_no_key(self):
        """
        Without a ``NodeKey``, the nodes' trust is left alone.
        """
        self.assertEqual(
            plan_changes(self.deployment, converged_state(self.deployment),
                         node_key=None), Sequentially(changes=[]))

    def test_description(self):
        """
        The change is described by what it installs: how many nodes' host
        keys and node keys.
        """
        change = InstallNodeKey(node=A, key=self.key)
        self.assertEqual(
            change.describe(),
            "%s: install node-to-node SSH trust (known hosts: 1 node, node "
            "keys: 1)" % (A,))

    def test_fake_cluster_converges(self):
        """
        Running the plan on a fake cluster installs the key everywhere: the
        next plan is empty.
        """
        cluster = FakeCluster([A, B])
        self.successResultOf(run_state_change(
            plan_changes(self.deployment, cluster.state(), node_key=self.key),
            cluster.agents))
        self.assertEqual(plan_changes(self.deployment, cluster.state(),
                                      node_key=self.key),
                         Sequentially(changes=[]))


class DependsOnPlanTests(SynchronousTestCase):
    """
    ``depends_on``: an application started with what it depends on starts
    after it, waiting for its condition.
    """

    DB = Application(
        name="db", image="flocker/busybox",
        options=ContainerOptions(healthcheck=HealthCheck(
            test=["CMD", "true"], interval=5 * 10 ** 9,
            timeout=2 * 10 ** 9, retries=2)))
    APP = Application(
        name="app", image="flocker/busybox",
        depends_on=[Dependency(name="db", condition="service_healthy"),
                    Dependency(name="init",
                               condition="service_completed_successfully")])
    INIT = Application(name="init", image="flocker/busybox")

    def test_waits_for_dependencies(self):
        """
        The dependencies start in the start phase; the dependent starts in
        a later step, on its node after waiting for each dependency's
        condition on the dependency's node, with a timeout from its
        healthcheck.
        """
        deployment = Deployment(nodes=[
            Node(address=A, applications=[self.DB, self.INIT]),
            Node(address=B, applications=[self.APP])])
        self.assertEqual(
            plan_changes(deployment, ClusterState()),
            plan(phase(PHASES[3],
                       (A, [StartApplication(node=A, application=self.DB),
                            StartApplication(node=A, application=self.INIT)])),
                 InParallel(changes=[Sequentially(changes=[
                     WaitForApplication(node=A, name="db",
                                        condition="service_healthy",
                                        timeout=60 + 3 * 7),
                     WaitForApplication(
                         node=A, name="init",
                         condition="service_completed_successfully",
                         timeout=COMPLETION_TIMEOUT),
                     StartApplication(node=B, application=self.APP)],
                     label="node " + B)], label=DEPENDENT_PHASE)))

    def test_running_dependency_not_waited_for(self):
        """
        A dependency the plan does not start (it runs already) is not
        waited for: the dependent starts in the start phase.
        """
        deployment = Deployment(nodes=[
            Node(address=A, applications=[self.DB, self.INIT, self.APP])])
        state = ClusterState(nodes={A: NodeState(
            address=A, applications={"db": self.DB, "init": self.INIT},
            running=["db", "init"])})
        self.assertEqual(
            plan_changes(deployment, state),
            plan(phase(PHASES[3], (A, [StartApplication(
                node=A, application=self.APP)]))))

    def test_started_dependency_ordered_without_wait(self):
        """
        A ``service_started`` dependency started by the plan orders the
        start without a wait.
        """
        app = Application(name="app", image="flocker/busybox",
                          depends_on=[Dependency(name="init")])
        deployment = Deployment(nodes=[
            Node(address=A, applications=[self.INIT, app])])
        self.assertEqual(
            plan_changes(deployment, ClusterState()),
            plan(phase(PHASES[3], (A, [StartApplication(
                     node=A, application=self.INIT)])),
                 InParallel(changes=[Sequentially(changes=[
                     StartApplication(node=A, application=app)],
                     label="node " + A)], label=DEPENDENT_PHASE)))

    def test_not_ready_stops_the_plan(self):
        """
        A dependency that does not become ready fails the plan before the
        dependent starts.
        """
        deployment = Deployment(nodes=[
            Node(address=A, applications=[self.DB, self.INIT]),
            Node(address=B, applications=[self.APP])])
        cluster = FakeCluster([A, B])
        cluster.not_ready[(A, "db")] = "it is not healthy after 81 s"
        result = run_state_change(plan_changes(deployment, cluster.state()),
                                  cluster.agents)
        failure = self.failureResultOf(result)
        self.assertIn("application db is not ready", str(failure.value))
        self.assertNotIn("app", cluster.state().nodes[B].applications)
