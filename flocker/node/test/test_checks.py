"""
Tests for :mod:`flocker.node._checks`, :mod:`flocker.node._differences` and
:mod:`flocker.node._images`: the planner's pure checks and words.
"""

import attr
from twisted.trial.unittest import SynchronousTestCase

from flocker._change import leaves
from flocker._model import (
    Application, AttachedVolume, ClusterState, ContainerOptions, Deployment,
    Node, NodeKeyStatus, NodeState, Port, VolumeState,
    public_key_fingerprint,
)
from flocker.node.testtools import make_public_key
from flocker.node._checks import (
    StaleVolume, describe_renamed, describe_stale, port_conflicts,
    renamed_volumes, shared_node_keys, snapshot_time, stale_volumes,
)
from flocker.node._plan import plan_changes
from flocker.node._differences import differences
from flocker.node._images import canonical_image, image_present

A, B = "10.0.0.1", "10.0.0.2"
WEB = Application(name="web", image="redis:7",
                  ports=[Port(internal=80, external=8080)],
                  volume=AttachedVolume(mountpoint="/data"))
OLD = "flocker-20261206T080000.000000Z"
NEW = "flocker-20261206T090000.000000Z"


def copy(owner, *snapshots):
    return VolumeState(name="web", owned=False, snapshots=snapshots,
                       owner=owner)


class StaleVolumeTests(SynchronousTestCase):
    """
    Tests for ``stale_volumes``.
    """

    def deployment(self):
        return Deployment(nodes=[Node(address=A),
                                 Node(address=B, applications=[WEB])])

    def test_interrupted_handoff_not_stale(self):
        """
        The old owner's copy names the new node, which holds a copy (the
        last increment): not stale, the deploy recovers it by itself.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, node_id="id-a",
                         volumes={"web": copy("id-b", OLD, NEW)}),
            B: NodeState(address=B, node_id="id-b",
                         volumes={"web": copy("id-a", OLD, NEW)})})
        self.assertEqual(stale_volumes(self.deployment(), state), {})

    def test_owner_copy_gone(self):
        """
        The copies name a node that holds none: stale, with where the
        newest copy left is and its snapshot.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, node_id="id-a",
                         volumes={"web": copy("id-b", OLD)}),
            B: NodeState(address=B, node_id="id-b")})
        self.assertEqual(stale_volumes(self.deployment(), state), {
            "web": StaleVolume(name="web", node=A, snapshot=OLD, owner=B)})

    def test_unknown_owner(self):
        """
        Copies naming an identity no reporting node has (a replaced pool)
        are stale, the identity named.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, node_id="id-a",
                         volumes={"web": copy("id-gone", OLD)}),
            B: NodeState(address=B, node_id="id-b")})
        self.assertEqual(stale_volumes(self.deployment(), state)["web"].owner,
                         "id-gone")

    def test_old_reports_not_judged(self):
        """
        Copies whose report does not say what they name are not judged.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A, volumes={"web": copy(None, OLD)}),
            B: NodeState(address=B)})
        self.assertEqual(stale_volumes(self.deployment(), state), {})

    def test_described(self):
        """
        The description names the node, the snapshot's time and age, and
        the option that adopts it.
        """
        line = describe_stale(StaleVolume(name="web", node=A, snapshot=OLD,
                                          owner=B),
                              now=snapshot_time(OLD) + 3 * 3600)
        self.assertEqual(
            line, "volume web: no node owns it and its owner's copy is gone "
            "(the copies name %s as owner); the newest copy left is on %s "
            "and its newest snapshot %s was taken 2026-12-06 08:00:00 UTC "
            "(3 hours ago): anything written after it would be lost, so it "
            "is not taken over unless you run again with --adopt-copy web"
            % (B, A, OLD))


class RenamedVolumeTests(SynchronousTestCase):
    """
    Tests for ``renamed_volumes``: a compose project's volume renamed
    after the project (``shop_data``) is not created empty while the
    project's applications mount its former name.
    """

    NEW = AttachedVolume(mountpoint="/d", name="shop_data",
                         former_name="data")
    DB = Application(name="db", image="d", volumes=[NEW], project="shop")
    OLD_DB = attr.evolve(DB, volumes=[attr.evolve(NEW, name="data")])

    def deployment(self):
        return Deployment(project="shop", nodes=[
            Node(address=A, applications=[self.DB])])

    def state(self, application, volumes):
        return ClusterState(nodes={A: NodeState(
            address=A, applications={"db": application},
            volumes={name: VolumeState(name=name, owned=True)
                     for name in volumes})})

    def test_former_volume_mounted(self):
        """
        The project's application mounts ``data`` and ``shop_data`` does
        not exist: found, and the plan leaves the application alone
        (creates no volume) while the line says how to keep the data.
        """
        state = self.state(self.OLD_DB, ["data"])
        found = renamed_volumes(self.deployment(), state)
        self.assertEqual(
            (found, list(leaves(plan_changes(self.deployment(), state))),
             describe_renamed("db", *found["db"])),
            ({"db": (A, self.NEW, A)}, [],
             "10.0.0.1: application db: its volume data is now named "
             "shop_data (compose names a project's volumes PROJECT_VOLUME) "
             "and does not exist, while the project's data is in volume "
             "data on node 10.0.0.1; to keep using it, give the top-level "
             "volume data \"name: data\" in the compose file"))

    def test_new_volume_exists(self):
        """
        Once ``shop_data`` exists, nothing is found.
        """
        state = self.state(self.OLD_DB, ["data", "shop_data"])
        self.assertEqual(renamed_volumes(self.deployment(), state), {})

    def test_other_project_data(self):
        """
        A ``data`` volume no application of the project mounts (another
        project's) is not this project's data: nothing is found.
        """
        other = attr.evolve(self.OLD_DB, project="blog")
        state = self.state(other, ["data"])
        self.assertEqual(renamed_volumes(self.deployment(), state), {})


class PortConflictTests(SynchronousTestCase):
    """
    Tests for ``port_conflicts``.
    """

    def test_publishing_node(self):
        """
        A port held on the node that would publish it is named.
        """
        state = ClusterState(nodes={
            A: NodeState(address=A), B: NodeState(address=B,
                                                  busy_ports=[8080, 22])})
        self.assertEqual(port_conflicts(Deployment(nodes=[
            Node(address=A), Node(address=B, applications=[WEB])]), state), [
            "%s: port 8080 is held by a listening socket that is not "
            "Flocker's, where application web would publish it; stop that "
            "listener or choose another external port" % (B,)])

    def test_other_project(self):
        """
        A port another project's running application publishes cannot be
        published by this one.
        """
        theirs = attr.evolve(WEB, name="shop", project="shop", volume=None)
        state = ClusterState(nodes={
            A: NodeState(address=A, applications={"shop": theirs},
                         running=["shop"]), B: NodeState(address=B)})
        [line] = port_conflicts(Deployment(project="blog", nodes=[
            Node(address=A), Node(address=B, applications=[WEB])]), state)
        self.assertIn("published by application shop of project shop",
                      line)


class SharedNodeKeyTests(SynchronousTestCase):
    """
    Tests for ``shared_node_keys``.
    """

    def state(self, *keys):
        """
        :return: A ``ClusterState`` of nodes ``10.0.0.1``... reporting
            ``keys`` (``(current, next)`` pairs) in order.
        """
        return ClusterState(nodes={
            "10.0.0.%d" % (i,): NodeState(
                address="10.0.0.%d" % (i,), node_key=NodeKeyStatus(
                    public_key=current, pending_public_key=pending))
            for i, (current, pending) in enumerate(keys, 1)})

    def deployment(self, count):
        return Deployment(nodes=[Node(address="10.0.0.%d" % (i,))
                                 for i in range(1, count + 1)])

    def test_own_keys(self):
        """
        Nodes each with keys of their own give no line.
        """
        keys = [(make_public_key(), make_public_key()) for _ in range(3)]
        self.assertEqual(
            shared_node_keys(self.deployment(3), self.state(*keys)), [])

    def test_shared_key(self):
        """
        A key two nodes report as their own is one line naming both nodes,
        the key's fingerprint and the rotation that fixes it; the third
        node, with its own key, is not named.
        """
        shared = make_public_key()
        state = self.state((shared, None), (make_public_key(), None),
                           (shared, None))
        self.assertEqual(shared_node_keys(self.deployment(3), state), [
            "10.0.0.1, 10.0.0.3: these nodes have the same node key (%s: "
            "copied between them, or a cloned machine), so none of them "
            "can push volumes to the others; run flocker-deploy "
            "--rotate-node-keys DEPLOYMENT_CONFIG to give each node its "
            "own" % (public_key_fingerprint(shared),)])

    def test_next_key_shared(self):
        """
        One node's next key that is another's current key counts too.
        """
        shared = make_public_key()
        state = self.state((shared, None), (make_public_key(), shared))
        [line] = shared_node_keys(self.deployment(2), state)
        self.assertTrue(line.startswith("10.0.0.1, 10.0.0.2: "), line)


class DifferencesTests(SynchronousTestCase):
    """
    Tests for ``differences``.
    """

    def test_names_not_values(self):
        """
        Environment differences name the variables, never their values;
        every other differing field is named too.
        """
        current = attr.evolve(WEB, environment={"PASSWORD": "old-secret",
                                                "SAME": "1"})
        wanted = attr.evolve(WEB, environment={"PASSWORD": "new-secret",
                                               "SAME": "1", "NEW": "x"},
                             command=["redis-server"], mem_limit=2 ** 30)
        said = differences(current, wanted)
        self.assertEqual(said, ("command", "environment NEW, PASSWORD",
                                "mem_limit none -> 1073741824"))
        self.assertNotIn("secret", " ".join(said))

    def test_equal(self):
        """
        Equal applications differ in nothing.
        """
        self.assertEqual(differences(WEB, WEB), ())

    def test_options_named(self):
        """
        Container options that differ are named, their values not shown.
        """
        current = attr.evolve(WEB, options=ContainerOptions(
            labels={"token": "old-secret"}))
        wanted = attr.evolve(WEB, options=ContainerOptions(
            labels={"token": "new-secret"}, user="1000"))
        self.assertEqual(differences(current, wanted),
                         ("options user, labels",))


class ImageTests(SynchronousTestCase):
    """
    Tests for ``canonical_image`` and ``image_present``.
    """

    def test_canonical(self):
        """
        References are written as Docker lists them.
        """
        self.assertEqual(
            [canonical_image(r) for r in (
                "redis", "docker.io/library/redis:7", "host:5000/web",
                "web@sha256:" + "0" * 64)],
            ["redis:latest", "redis:7", "host:5000/web:latest",
             "web@sha256:" + "0" * 64])

    def test_present(self):
        """
        Presence is unknown without a report, and for image ids.
        """
        self.assertEqual(
            [image_present("redis", frozenset(["redis:latest"])),
             image_present("redis:6", frozenset(["redis:latest"])),
             image_present("redis", None),
             image_present("sha256:abc", frozenset())],
            [True, False, None, None])
