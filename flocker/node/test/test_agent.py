"""
Interface tests for ``INodeAgent``, run against the in-memory fake agent and
against the local agent over fake Docker, volume and route parts.  (The
local agent over the real parts is exercised by the lab deploy tests.)
"""

import io
import os
import tarfile

import attr

from eliot.testing import assertHasAction
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from flocker._model import (
    Application, AttachedVolume, ContainerOptions, HealthCheck, Link,
    NodeState, Port, Replication, ReplicationStatus, Route, StandbyStatus,
    public_key_fingerprint,
)
from flocker.testtools import capture_logging, temporary_directory
from flocker.node._agent import (
    ApplicationNotReady, INodeAgent, VolumeRelease,
)
from flocker.node._docker import FakeDockerClient
from flocker.node._doctor import run_checks
from flocker.node._fake import FakeCluster, FakeNodeError
from flocker.node._local import (
    WAIT_INTERVAL, LocalNodeAgent, link_environment,
)
from flocker.node._replication import Replicator
from flocker.node._senders import ExpectedSenders, SenderStore
from flocker.node._logging import (
    NODE_CREATE_VOLUME, NODE_INSTALL_KEY, NODE_PUSH_VOLUME, NODE_REPORT,
    NODE_ROTATE_KEY, NODE_SET_ROUTES, NODE_START_APPLICATION,
)
from flocker.node.testtools import RecordingProgress, make_node_key
from flocker.node.test._probes import healthy_probes
from flocker.route import CommandFailed, MemoryRouteManager
from flocker.volume import MemoryNetwork, MemoryVolumeService, NodeKeyStore

A, B = "10.0.0.1", "10.0.0.2"
IMAGE = "flocker/busybox:latest"
#: An image no node has and no registry holds.
MISSING = "flocker/missing:1"
WEB = Application(name="web", image=IMAGE,
                  ports=[Port(internal=80, external=8080)],
                  volume=AttachedVolume(mountpoint="/data"))
PLAIN = Application(name="plain", image=IMAGE,
                    links=[Link(local_port=5000, remote_port=8080,
                                alias="web")])


def _archive(files):
    """
    :param files: ``dict`` of relative path to ``bytes``.
    :return: A tar archive of those files (``bytes``).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_pair(directory=None):
    """
    :param directory: Unused (see :func:`local_pair`).
    :return: Agents for A and B from one :class:`FakeCluster`.
    """
    cluster = FakeCluster([A, B], images=[IMAGE])
    return cluster.agents[A], cluster.agents[B]


def local_pair(directory=None):
    """
    :param directory: A directory that does not exist yet, in which each
        agent keeps its node key (state directory and home), or ``None``
        for agents keeping no node key.
    :return: :class:`LocalNodeAgent` for A and B over fake Docker clients,
        in-memory volume services on one network and memory route managers.
    """
    network = MemoryNetwork()
    clock = Clock()
    agents = []
    for number, address in enumerate([A, B]):
        node_keys = None
        if directory is not None:
            root = os.path.join(directory, address)
            node_keys = NodeKeyStore(
                os.path.join(root, "state", "node-key"),
                os.path.join(root, "home", ".ssh", "authorized_keys"),
                "/opt/flocker/bin/flocker-volume")
            # As the agent does when it starts.
            node_keys.ensure()
        docker = FakeDockerClient(images=[IMAGE], node=address)
        probes = healthy_probes(docker=docker, node_keys=node_keys)
        volumes = MemoryVolumeService("node-%d" % (number,), address,
                                      network, clock)
        senders = None
        if directory is not None:
            senders = ExpectedSenders(SenderStore(
                os.path.join(directory, address, "state", "senders.json")))
        agents.append(LocalNodeAgent(
            address, docker, volumes,
            MemoryRouteManager(node=address), node_keys=node_keys,
            checks=lambda probes=probes: run_checks(probes), clock=clock,
            replicator=Replicator(clock, lambda volumes=volumes: volumes),
            senders=senders))
    return tuple(agents)


def make_inodeagent_tests(fixture):
    """
    :param fixture: Callable given a path for files (not yet existing)
        returning two ``INodeAgent`` providers, for nodes ``A`` and ``B``,
        that can push volumes to each other.
    :return: A ``SynchronousTestCase`` subclass testing the interface.
    """
    class INodeAgentTests(SynchronousTestCase):
        """
        Tests every ``INodeAgent`` provider must pass.
        """

        def setUp(self):
            self.a, self.b = fixture(temporary_directory(self))
            # As a deploy does before its pushes: each node expects "web"
            # from the other (see flocker.node._expected).
            identities = [self.report(agent).node_id
                          for agent in (self.a, self.b)]
            for agent, other in [(self.a, identities[1]),
                                 (self.b, identities[0])]:
                self.successResultOf(agent.expect_senders(
                    {"web": frozenset([other])}))

        def test_expect_senders_reported(self):
            """
            ``expect_senders`` replaces the node's record, which the
            report gives.
            """
            self.successResultOf(self.b.expect_senders(
                {"web": frozenset(["x"]), "db": frozenset(["x", "y"])}))
            self.assertEqual(self.report(self.b).expected_senders,
                             {"web": frozenset(["x"]),
                              "db": frozenset(["x", "y"])})
            self.successResultOf(self.b.expect_senders({}))
            self.assertEqual(self.report(self.b).expected_senders, {})

        def report(self, agent):
            """
            :return: The agent's report, synchronously.
            """
            return self.successResultOf(agent.report())

        def test_interface(self):
            """
            The agent provides ``INodeAgent``.
            """
            self.assertTrue(verifyObject(INodeAgent, self.a))

        def test_wait_for_started_application(self):
            """
            Waiting for a running application to be started ends at once.
            """
            self.successResultOf(self.a.start_application(PLAIN))
            self.assertIsNone(self.successResultOf(
                self.a.wait_for_application("plain", "service_started", 10)))

        def test_wait_for_missing_application(self):
            """
            Waiting for an application the node does not run fails, naming
            it.
            """
            failure = self.failureResultOf(self.a.wait_for_application(
                "plain", "service_healthy", 10), ApplicationNotReady)
            self.assertEqual(failure.value.name, "plain")

        def test_doctor(self):
            """
            ``doctor`` fires with a report of every check, in order; a node
            whose parts all work is ready for deploys.
            """
            report = self.successResultOf(self.a.doctor())
            names = [check.name for check in report.checks]
            self.assertEqual(
                ([name for name in ("docker", "zfs pool", "iptables", "sshd",
                                    "agent", "node key", "clock")
                  if name not in names], report.ok,
                 isinstance(report.time, float)),
                ([], True, True))

        def test_empty_report(self):
            """
            A fresh node reports nothing but its address, its identity, its
            own key, its images and the senders it was told to expect (by
            ``setUp``).
            """
            report = self.report(self.a)
            self.assertEqual(report, NodeState(
                address=A, images=[IMAGE], node_id=report.node_id,
                node_key=report.node_key, expected_senders={
                    "web": frozenset([self.report(self.b).node_id])}))
            self.assertIsNotNone(report.node_key)
            self.assertIsInstance(report.node_id, str)

        def test_copies_name_owner(self):
            """
            A pushed copy names the sender as the volume's owner; after a
            hand-off both copies name the new owner.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            a_id, b_id = (self.report(self.a).node_id,
                          self.report(self.b).node_id)
            pushed = self.report(self.b).volumes["web"].owner
            self.successResultOf(self.a.handoff_volume("web", B))
            self.assertEqual(
                (pushed, self.report(self.a).volumes["web"].owner,
                 self.report(self.b).volumes["web"].owner),
                (a_id, b_id, b_id))

        def test_delete_volume(self):
            """
            Deleting a volume removes this node's copy only; deleting one
            the node does not hold is harmless.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            self.successResultOf(self.b.delete_volume("web"))
            self.successResultOf(self.b.delete_volume("web"))
            self.assertEqual(
                ("web" in self.report(self.a).volumes,
                 "web" in self.report(self.b).volumes), (True, False))

        def test_pull_present_image(self):
            """
            Pulling (or asking for) an image the node has succeeds.
            """
            self.assertEqual(
                (self.successResultOf(self.a.pull_image(IMAGE, True)),
                 self.successResultOf(self.a.pull_image(IMAGE))),
                (None, None))

        def test_pull_unpullable_image(self):
            """
            An image the node lacks and cannot pull fails a pull and a
            dry-run pull, and the node still lacks it.
            """
            for dry_run in (True, False):
                self.failureResultOf(self.a.pull_image(MISSING, dry_run))
            self.assertNotIn(MISSING, self.report(self.a).images)

        def test_logs(self):
            """
            ``logs`` gives a running application's output lines; a node
            without the application's container fails.
            """
            self.successResultOf(self.a.start_application(PLAIN))
            lines = self.successResultOf(self.a.logs("plain"))
            self.assertEqual(
                (type(lines), all(len(line) == 3 for line in lines)),
                (list, True))
            self.failureResultOf(self.b.logs("plain"))

        def test_create_volume(self):
            """
            A created volume is reported as owned; creating it again changes
            nothing.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.create_volume("web", None))
            volume = self.report(self.a).volumes["web"]
            self.assertTrue(volume.owned)

        def test_seed_volume(self):
            """
            Seeding fills an owned volume once: a second seed is refused
            quietly (``False``); a node that does not own the volume fails.
            """
            archive = _archive({"conf/app.ini": b"x = 1\n"})
            self.failureResultOf(self.a.seed_volume("web", archive))
            self.successResultOf(self.a.create_volume("web", None))
            self.assertEqual(
                (self.successResultOf(self.a.seed_volume("web", archive)),
                 self.successResultOf(self.a.seed_volume("web", archive))),
                (True, False))

        def test_set_links(self):
            """
            A running application's links are changed in place: the report
            gives the new links as installed, the container the
            configuration it started with; an application that does not
            run fails.
            """
            self.successResultOf(self.a.start_application(PLAIN))
            links = {Link(local_port=80, remote_port=8080, alias="web"),
                     Link(local_port=5432, remote_port=15432, alias="db",
                          address="127.200.0.7")}
            self.successResultOf(self.a.set_links("plain", links))
            report = self.report(self.a)
            self.assertEqual(
                (report.links["plain"], report.applications["plain"],
                 report.running),
                (links, PLAIN, {"plain"}))
            self.failureResultOf(self.b.set_links("plain", links))

        def test_start_application(self):
            """
            A started application is reported running with the very
            configuration it was started with; starting it again is
            harmless.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.start_application(WEB))
            self.successResultOf(self.a.start_application(WEB))
            state = self.report(self.a)
            self.assertEqual((dict(state.applications), set(state.running)),
                             ({"web": WEB}, {"web"}))

        def test_start_with_named_volumes(self):
            """
            An application with named volumes starts once the node owns
            all of them, and not before.
            """
            application = attr.evolve(WEB, volumes=[
                AttachedVolume(name="uploads", mountpoint="/uploads"),
                AttachedVolume(name="logs", mountpoint="/logs",
                               read_only=True)])
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.create_volume("uploads", None))
            self.failureResultOf(self.a.start_application(application))
            self.successResultOf(self.a.create_volume("logs", None))
            self.successResultOf(self.a.start_application(application))
            state = self.report(self.a)
            self.assertEqual(
                (dict(state.applications), set(state.running),
                 set(state.volumes)),
                ({"web": application}, {"web"}, {"web", "uploads", "logs"}))

        def test_start_without_volume_refused(self):
            """
            An application whose volume the node does not own does not
            start.
            """
            self.failureResultOf(self.a.start_application(WEB))
            self.assertEqual(set(self.report(self.a).running), set())

        def test_stop_application(self):
            """
            A stopped application is no longer reported; stopping it again is
            harmless.
            """
            self.successResultOf(self.a.start_application(PLAIN))
            self.successResultOf(self.a.stop_application("plain"))
            self.successResultOf(self.a.stop_application("plain"))
            self.assertEqual(dict(self.report(self.a).applications), {})

        def test_stop_application_keep(self):
            """
            An application stopped with ``keep`` is still reported, with its
            configuration, but not running; stopping it again without
            ``keep`` deletes it.
            """
            self.successResultOf(self.a.start_application(PLAIN))
            self.successResultOf(self.a.stop_application("plain", True))
            self.successResultOf(self.a.stop_application("plain", True))
            kept = self.report(self.a)
            self.successResultOf(self.a.stop_application("plain"))
            self.assertEqual(
                (dict(kept.applications), set(kept.running),
                 dict(self.report(self.a).applications)),
                ({"plain": PLAIN}, set(), {}))

        def test_push_keeps_ownership(self):
            """
            A pushed volume stays owned by the sender; the receiver reports
            a copy it does not own.
            """
            self.successResultOf(self.a.create_volume("web", None))
            sent = self.successResultOf(self.a.push_volume("web", B))
            self.assertIsInstance(sent, int)
            self.assertTrue(self.report(self.a).volumes["web"].owned)
            self.assertFalse(self.report(self.b).volumes["web"].owned)

        def test_transfer_progress(self):
            """
            Each volume transfer given a progress object reports at most the
            bytes it sent, and finishes it.
            """
            self.successResultOf(self.a.create_volume("web", None))
            progresses = [RecordingProgress() for _ in range(3)]
            sent = [
                self.successResultOf(self.a.push_volume(
                    "web", B, progress=progresses[0])),
                self.successResultOf(self.a.release_volume(
                    "web", B, progress=progresses[1])).bytes_sent]
            release = self.successResultOf(self.a.release_volume("web", B))
            self.successResultOf(self.b.acquire_volume(
                "web", release.snapshot, release.node_id))
            sent.append(self.successResultOf(self.b.handoff_volume(
                "web", A, progress=progresses[2])))
            for progress, count in zip(progresses, sent):
                self.assertTrue(progress.finished)
                self.assertTrue(all(figure <= count
                                    for figure, _ in progress.updates))

        def test_handoff(self):
            """
            A hand-off makes the target the owner and the sender not.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            self.successResultOf(self.a.handoff_volume("web", B))
            self.assertFalse(self.report(self.a).volumes["web"].owned)
            self.assertTrue(self.report(self.b).volumes["web"].owned)
            self.successResultOf(self.b.start_application(WEB))

        def test_create_application_before_handoff(self):
            """
            The target of a move creates the application's container while
            it only follows the volume: it is reported, not running, and
            creating it again changes nothing; once the volume is handed
            off, the start runs it with that configuration.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.start_application(WEB))
            self.successResultOf(self.a.push_volume("web", B))
            self.successResultOf(self.b.create_application(WEB))
            self.successResultOf(self.b.create_application(WEB))
            created = self.report(self.b)
            self.successResultOf(self.a.stop_application("web", True))
            self.successResultOf(self.a.handoff_volume("web", B))
            self.successResultOf(self.b.start_application(WEB))
            started = self.report(self.b)
            self.assertEqual(
                (dict(created.applications), set(created.running),
                 created.volumes["web"].owned,
                 dict(started.applications), set(started.running)),
                ({"web": WEB}, set(), False, {"web": WEB}, {"web"}))

        def test_create_application_without_copy_refused(self):
            """
            A node holding no copy of the application's volume does not
            create its container.
            """
            self.failureResultOf(self.b.create_application(WEB))
            self.assertEqual(dict(self.report(self.b).applications), {})

        def test_release_then_acquire(self):
            """
            Releasing a volume leaves it owned by neither node; the target
            acquiring it with the release's snapshot and node id owns it
            and can start the application.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            release = self.successResultOf(self.a.release_volume("web", B))
            self.assertIsInstance(release, VolumeRelease)
            self.assertEqual((self.report(self.a).volumes["web"].owned,
                              self.report(self.b).volumes["web"].owned),
                             (False, False))
            self.successResultOf(self.b.acquire_volume(
                "web", release.snapshot, release.node_id))
            self.assertTrue(self.report(self.b).volumes["web"].owned)
            self.successResultOf(self.b.start_application(WEB))

        def test_release_again(self):
            """
            Releasing again before the target acquired sends nothing and
            names the same snapshot.
            """
            self.successResultOf(self.a.create_volume("web", None))
            first = self.successResultOf(self.a.release_volume("web", B))
            second = self.successResultOf(self.a.release_volume("web", B))
            self.assertEqual((second.snapshot, second.node_id,
                              second.bytes_sent),
                             (first.snapshot, first.node_id, 0))

        def test_acquire_wrong_snapshot_refused(self):
            """
            A copy that does not end with the released snapshot is not
            acquired.
            """
            self.successResultOf(self.a.create_volume("web", None))
            release = self.successResultOf(self.a.release_volume("web", B))
            self.failureResultOf(self.b.acquire_volume(
                "web", release.snapshot + "x", release.node_id))
            self.assertFalse(self.report(self.b).volumes["web"].owned)

        def test_create_takes_over_copy(self):
            """
            Creating a volume of which the node holds a non-owned copy takes
            ownership of that copy (an interrupted move's recovery).
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            before = self.report(self.b).volumes["web"].snapshots
            self.successResultOf(self.b.create_volume("web", None))
            volume = self.report(self.b).volumes["web"]
            self.assertTrue(volume.owned)
            self.assertEqual(volume.snapshots[:len(before)], before)

        def test_take_over_then_fence(self):
            """
            A failover: the follower takes the volume over at a new epoch
            and can start the application; the old owner, told so, sets
            its stale copy aside and no longer reports the volume.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            self.successResultOf(self.b.take_over_volume("web", 2))
            self.successResultOf(self.b.take_over_volume("web", 2))
            taken = self.report(self.b).volumes["web"]
            self.assertEqual((taken.owned, taken.epoch), (True, 2))
            self.successResultOf(self.b.start_application(WEB))
            aside = self.successResultOf(self.a.fence_volume(
                "web", self.report(self.b).node_id, 2))
            self.assertTrue(aside.startswith("web.flocker-recovery-e1"))
            self.assertNotIn("web", self.report(self.a).volumes)

        def test_fence_follower(self):
            """
            A follower told of a new owner and epoch records both.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            self.assertIsNone(self.successResultOf(self.b.fence_volume(
                "web", "new-owner", 3)))
            copy = self.report(self.b).volumes["web"]
            self.assertEqual((copy.owned, copy.owner, copy.epoch),
                             (False, "new-owner", 3))

        def test_take_over_needs_later_epoch(self):
            """
            Taking over at an epoch not above the copy's fails and leaves
            the copy a follower.
            """
            self.successResultOf(self.a.create_volume("web", None))
            self.successResultOf(self.a.push_volume("web", B))
            self.failureResultOf(self.b.take_over_volume("web", 1))
            self.assertFalse(self.report(self.b).volumes["web"].owned)

        def test_set_routes(self):
            """
            The node reports exactly the routes it was last given.
            """
            self.successResultOf(self.a.set_routes(
                frozenset([Route(8080, B), Route(9090, B)])))
            self.successResultOf(self.a.set_routes(frozenset([Route(8080, B)])))
            self.assertEqual(self.report(self.a).routes,
                             frozenset([Route(8080, B)]))

        def test_set_replication(self):
            """
            The node reports the replication it was last given, each standby
            not updated yet; an empty one replaces it.
            """
            replication = Replication(volume="web", application="web",
                                      standbys=[B], interval=2 * 10 ** 9)
            self.successResultOf(self.a.set_replication(
                {"web": replication}))
            self.assertEqual(self.report(self.a).replication, {
                "web": ReplicationStatus(replication=replication, standbys={
                    B: StandbyStatus(address=B)})})
            self.successResultOf(self.a.set_replication({}))
            self.assertEqual(self.report(self.a).replication, {})

        def test_links_reported(self):
            """
            A running application's links are reported as installed.
            """
            self.successResultOf(self.a.start_application(PLAIN))
            self.assertEqual(set(self.report(self.a).links["plain"]),
                             set(PLAIN.links))

        def trust(self, *agents):
            """
            :return: A ``NodeKey`` naming each agent's reported keys
                (current and, while it rotates, next).
            """
            peers = []
            for number, agent in enumerate(agents):
                report = self.report(agent)
                status = report.node_key
                peers.extend(
                    (report.node_id, "10.0.9.%d" % (number,), key)
                    for key in (status.public_key, status.pending_public_key)
                    if key is not None)
            return make_node_key(peers=peers)

        def test_own_key(self):
            """
            Each node reports its own key, nothing installed yet: two nodes,
            two keys.
            """
            a, b = self.report(self.a).node_key, self.report(self.b).node_key
            self.assertEqual((a.installed, a.pending_public_key), (None, None))
            self.assertNotEqual(a.public_key, b.public_key)

        def test_install_node_key(self):
            """
            After installing the nodes' trust the node reports its digest,
            its own key unchanged; installing it again changes nothing.
            """
            before = self.report(self.a).node_key.public_key
            key = self.trust(self.a, self.b)
            self.successResultOf(self.a.install_node_key(key))
            self.successResultOf(self.a.install_node_key(key))
            self.assertEqual(self.report(self.a).node_key.installed,
                             key.digest())
            self.assertEqual(self.report(self.a).node_key.public_key, before)

        def test_install_new_node_key(self):
            """
            Installing other trust replaces the first: the report names
            only the new one.
            """
            self.successResultOf(self.a.install_node_key(make_node_key()))
            newer = make_node_key(known_hosts="")
            self.successResultOf(self.a.install_node_key(newer))
            self.assertEqual(self.report(self.a).node_key.installed,
                             newer.digest())

        def test_node_key_per_node(self):
            """
            Installing on one node leaves the other's report with nothing
            installed.
            """
            self.successResultOf(self.a.install_node_key(make_node_key()))
            self.assertIsNone(self.report(self.b).node_key.installed)

        def test_rotate_node_key(self):
            """
            ``prepare`` makes a next key the report lists, the current one
            kept (and kept again by a second ``prepare``); ``finish`` fails
            until the installed trust names the next key, then the next key
            is the node's key and none is pending.
            """
            old = self.report(self.a).node_key.public_key
            self.successResultOf(self.a.rotate_node_key("prepare"))
            status = self.report(self.a).node_key
            pending = status.pending_public_key
            self.assertEqual(status.public_key, old)
            self.assertNotIn(pending, (None, old))
            self.successResultOf(self.a.rotate_node_key("prepare"))
            self.assertEqual(self.report(self.a).node_key.pending_public_key,
                             pending)
            self.successResultOf(self.a.install_node_key(make_node_key()))
            self.failureResultOf(self.a.rotate_node_key("finish"))
            self.assertEqual(self.report(self.a).node_key.public_key, old)
            self.successResultOf(self.a.install_node_key(
                self.trust(self.a, self.b)))
            self.successResultOf(self.a.rotate_node_key("finish"))
            status = self.report(self.a).node_key
            self.assertEqual((status.public_key, status.pending_public_key),
                             (pending, None))

        def test_rotate_unknown_step(self):
            """
            A step other than ``prepare`` or ``finish`` fails and changes
            nothing.
            """
            before = self.report(self.a).node_key
            self.failureResultOf(self.a.rotate_node_key("switch"))
            self.assertEqual(self.report(self.a).node_key, before)

    return INodeAgentTests


class FakeNodeAgentTests(make_inodeagent_tests(fake_pair)):
    """
    ``INodeAgent`` tests for :class:`FakeNodeAgent`.
    """


class LocalNodeAgentTests(make_inodeagent_tests(local_pair)):
    """
    ``INodeAgent`` tests for :class:`LocalNodeAgent` over fake parts.
    """


class LocalNodeAgentStartTests(SynchronousTestCase):
    """
    What :class:`LocalNodeAgent` does after starting a container.
    """

    def test_set_links_writes_hosts(self):
        """
        ``set_links`` installs the links in the running container's
        namespace and has its hosts file rewritten with them.
        """
        agent, _ = local_pair()
        written = []
        agent = LocalNodeAgent(
            A, agent.docker, agent.volumes, agent.routes,
            write_hosts=lambda pid, links: written.append((pid, links)))
        self.successResultOf(agent.start_application(PLAIN))
        pid = self.successResultOf(agent.docker.container_pid("plain"))
        links = frozenset([Link(local_port=5432, remote_port=15432,
                                alias="db", address="127.200.0.7")])
        self.successResultOf(agent.set_links("plain", links))
        self.assertEqual(
            (written, self.successResultOf(agent.routes.get_links(pid))),
            ([(pid, links)], links))

    def test_container_announced(self):
        """
        The started container is announced to the node's network (its
        first process's pid handed to the route manager).
        """
        agent, _ = local_pair()
        self.successResultOf(agent.start_application(PLAIN))
        pid = self.successResultOf(agent.docker.container_pid("plain"))
        self.assertEqual(list(agent.routes.announced), [pid])

    def test_announce_failure_tolerated(self):
        """
        A failed announcement is logged and the start still succeeds.
        """
        agent, _ = local_pair()
        agent.routes.announce_container = lambda pid: fail(
            CommandFailed(["ip"], 1, b"", b"no ip"))
        self.successResultOf(agent.start_application(PLAIN))
        self.assertEqual(set(self.successResultOf(agent.report()).running),
                         {"plain"})


CHECKED = Application(
    name="checked", image=IMAGE, options=ContainerOptions(
        healthcheck=HealthCheck(test=["CMD", "true"])))


class LocalNodeAgentWaitTests(SynchronousTestCase):
    """
    :meth:`LocalNodeAgent.wait_for_application`: waiting for what others
    depend on, paced by the agent's clock.
    """

    def setUp(self):
        self.clock = Clock()
        agent, _ = local_pair()
        self.docker = agent.docker
        self.agent = LocalNodeAgent(A, agent.docker, agent.volumes,
                                    agent.routes, clock=self.clock)

    def test_healthy(self):
        """
        The wait ends once the healthcheck says healthy.
        """
        self.successResultOf(self.agent.start_application(CHECKED))
        d = self.agent.wait_for_application("checked", "service_healthy", 30)
        self.assertNoResult(d)
        self.docker.set_health("flocker--checked", "healthy")
        self.clock.advance(WAIT_INTERVAL)
        self.assertIsNone(self.successResultOf(d))

    def test_timeout_names_the_application(self):
        """
        An application still unhealthy when the time is up fails the wait
        with a reason naming it and its health.
        """
        self.successResultOf(self.agent.start_application(CHECKED))
        d = self.agent.wait_for_application("checked", "service_healthy", 3)
        self.docker.set_health("flocker--checked", "unhealthy")
        self.clock.pump([WAIT_INTERVAL] * 4)
        failure = self.failureResultOf(d, ApplicationNotReady)
        self.assertEqual(str(failure.value), "application checked is not "
                         "ready: it is not healthy after 3 s (its "
                         "healthcheck says unhealthy)")

    def test_no_healthcheck(self):
        """
        Waiting for the health of an application without a healthcheck
        fails at once.
        """
        self.successResultOf(self.agent.start_application(PLAIN))
        failure = self.failureResultOf(self.agent.wait_for_application(
            "plain", "service_healthy", 30), ApplicationNotReady)
        self.assertIn("no healthcheck", str(failure.value))

    def test_completed(self):
        """
        ``service_completed_successfully`` waits for an exit with status
        0 and fails for any other status.
        """
        self.successResultOf(self.agent.start_application(PLAIN))
        d = self.agent.wait_for_application(
            "plain", "service_completed_successfully", 30)
        self.assertNoResult(d)
        self.docker.stop_container("flocker--plain", exit_code=0)
        self.clock.advance(WAIT_INTERVAL)
        self.assertIsNone(self.successResultOf(d))
        self.docker.stop_container("flocker--plain", exit_code=2)
        failure = self.failureResultOf(self.agent.wait_for_application(
            "plain", "service_completed_successfully", 30),
            ApplicationNotReady)
        self.assertIn("exited with status 2", str(failure.value))

    def test_missing(self):
        """
        An application without a container is not ready.
        """
        failure = self.failureResultOf(self.agent.wait_for_application(
            "nothing", "service_started", 30), ApplicationNotReady)
        self.assertIn("no container", str(failure.value))


class LinkEnvironmentTests(SynchronousTestCase):
    """
    Tests for ``link_environment``.
    """

    def test_udp_variables(self):
        """
        A UDP link's variables say UDP, as Docker's links do.
        """
        linked = Application(name="c", image=IMAGE, links=[
            Link(local_port=53, remote_port=1053, alias="dns",
                 protocol="udp")])
        self.assertEqual(link_environment(linked, A), {
            "DNS_PORT_53_UDP": "udp://10.0.0.1:1053",
            "DNS_PORT_53_UDP_ADDR": "10.0.0.1",
            "DNS_PORT_53_UDP_PORT": "1053",
            "DNS_PORT_53_UDP_PROTO": "udp",
        })

    def test_named_links_have_no_variables(self):
        """
        Named links (names that resolve) set no variables.
        """
        named = Application(name="c", image=IMAGE, links=[
            Link(local_port=80, remote_port=8080, alias="web",
                 address="127.130.0.9")])
        self.assertEqual(link_environment(named, A), {})

    def test_variables(self):
        """
        Each link gives Docker-link-compatible variables naming this node's
        address and the target's external port.
        """
        self.assertEqual(link_environment(PLAIN, A), {
            "WEB_PORT_5000_TCP": "tcp://10.0.0.1:8080",
            "WEB_PORT_5000_TCP_ADDR": "10.0.0.1",
            "WEB_PORT_5000_TCP_PORT": "8080",
            "WEB_PORT_5000_TCP_PROTO": "tcp",
        })


class LocalNodeAgentLoggingTests(SynchronousTestCase):
    """
    The local agent logs each operation as an action of its declared type.
    """

    @capture_logging(None)
    def test_environment_not_logged(self, logger):
        """
        Starting an application logs neither its environment values nor
        their names.
        """
        secret = Application(name="db", image=IMAGE,
                             environment={"DB_PASSWORD": "hunter2-secret"})
        a, _ = local_pair()
        self.successResultOf(a.start_application(secret))
        self.successResultOf(a.report())
        logged = repr(logger.messages)
        self.assertTrue(logger.messages)
        self.assertNotIn("hunter2-secret", logged)
        self.assertNotIn("DB_PASSWORD", logged)

    @capture_logging(None)
    def test_private_key_not_logged(self, logger):
        """
        Installing the trust is an action counting known_hosts lines and
        node keys; a rotation step is an action naming the fingerprint it
        leaves; neither the log nor the report contains the private key.
        """
        a, _ = local_pair(temporary_directory(self))
        key = make_node_key()
        self.successResultOf(a.install_node_key(key))
        self.successResultOf(a.rotate_node_key("prepare"))
        report = self.successResultOf(a.report())
        assertHasAction(self, logger, NODE_INSTALL_KEY, True,
                        {"known_hosts_lines": 1, "node_keys": 1})
        assertHasAction(self, logger, NODE_ROTATE_KEY, True,
                        {"step": "prepare"},
                        {"fingerprint": public_key_fingerprint(
                            report.node_key.pending_public_key)})
        for path in (a.node_keys.identity_path, a.node_keys.pending_path):
            with open(path) as f:
                secret = f.read().splitlines()[1]
            self.assertNotIn(secret, repr(logger.messages))
            self.assertNotIn(secret, repr(report))

    @capture_logging(None)
    def test_actions(self, logger):
        """
        Report, volume and application operations are actions of the node
        package's types, with their fields validated and their results (the
        report's size, the bytes a push sent) recorded.
        """
        a, b = local_pair()
        self.successResultOf(a.create_volume("web", None))
        self.successResultOf(a.push_volume("web", B))
        self.successResultOf(a.start_application(WEB))
        self.successResultOf(a.report())
        self.successResultOf(a.set_routes(frozenset()))
        report = assertHasAction(self, logger, NODE_REPORT, True,
                                 {"address": A})
        self.assertEqual(report.end_message["applications"], 1)
        push = assertHasAction(self, logger, NODE_PUSH_VOLUME, True,
                               {"address": A, "volume": "web", "target": B})
        self.assertIsInstance(push.end_message["bytes"], int)
        for action_type in (NODE_CREATE_VOLUME, NODE_START_APPLICATION,
                            NODE_SET_ROUTES):
            assertHasAction(self, logger, action_type, True)


class FakeExpectedSendersTests(SynchronousTestCase):
    """
    A :class:`FakeNodeAgent` receives a first copy only from a node it was
    told to expect it from, as a real node's receive policy
    (:func:`flocker.volume._policy.check_receive`) does.
    """

    def test_unexpected_first_copy_refused(self):
        """
        A push of a volume the target has no copy of, from a node the
        target does not expect it from, fails naming the node, and the
        target is unchanged; told to expect it, the same push works.
        """
        a, b = fake_pair()
        self.successResultOf(a.create_volume("web", None))
        self.successResultOf(b.expect_senders({"web": frozenset(["other"])}))
        failure = self.failureResultOf(a.push_volume("web", B),
                                       FakeNodeError)
        self.assertIn("not told to expect it from node %s" % (A,),
                      str(failure.value))
        self.assertEqual(b.state.volumes, {})
        self.successResultOf(b.expect_senders({"web": frozenset([A])}))
        self.successResultOf(a.push_volume("web", B))
        self.assertEqual(b.state.volumes["web"].owner, A)


class FakeClusterTransferTests(SynchronousTestCase):
    """
    Tests for a :class:`FakeCluster` whose transfers take time.
    """

    def test_push_takes_time(self):
        """
        With a clock and a rate, a push answers once its data would have
        been sent, reporting the bytes sent on the way.
        """
        clock = Clock()
        cluster = FakeCluster([A, B], clock=clock, bytes_per_second=100)
        agent = cluster.agents[A]
        self.successResultOf(cluster.agents[B].expect_senders(
            {"web": frozenset([A])}))
        self.successResultOf(agent.create_volume("web", None))
        agent.write("web", "x" * 50)
        progress = RecordingProgress()
        pushed = agent.push_volume("web", B, progress=progress)
        clock.pump([0.1] * 4)
        self.assertNoResult(pushed)
        clock.advance(0.1)
        self.assertEqual(self.successResultOf(pushed), 50)
        self.assertEqual(progress.updates,
                         [(0, 50), (10, 50), (20, 50), (30, 50), (40, 50),
                          (50, 50)])
        self.assertTrue(progress.finished)
