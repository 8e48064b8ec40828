"""
An in-memory cluster of node agents, for tests of the planner, the deploy
flow and the benchmarks of fan-out at scale.

Each :class:`FakeNodeAgent` keeps the state a real node would report and
enforces the same rules a real node does: an application with volumes only
starts where all of them are owned, a volume is only pushed or handed off by
its owner, a first copy is only received from a node the target was told to
expect it from, and a hand-off is refused while the application still runs.
Volume contents are modelled as an opaque value that moves with pushes, so
tests can check that no data is lost.  A cluster given a clock and a rate
takes time to send them (one byte per character), reporting progress as it
goes, so live views can be tested too.
"""

import base64
import hashlib
import struct
from itertools import count

import attr

from pyrsistent import pvector
from twisted.internet.defer import Deferred, fail, maybeDeferred
from zope.interface import implementer

from .._model import (
    ClusterState, NodeKeyStatus, NodeState, ReplicationStatus,
    StandbyStatus, VolumeState, parse_peers,
)
from ._agent import ApplicationNotReady, INodeAgent, VolumeRelease
from ._images import canonical_image

__all__ = ["FakeCluster", "FakeNodeAgent", "FakeNodeError",
           "fake_public_key"]


def fake_public_key(seed):
    """
    :param str seed: Anything.
    :return: An ``"ssh-ed25519 AAAA..."`` line derived from ``seed`` (of
        the right form, with no private key behind it).
    """
    raw = hashlib.sha256(seed.encode("utf-8")).digest()
    blob = (struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32)
            + raw)
    return "ssh-ed25519 " + base64.b64encode(blob).decode("ascii")


class FakeNodeError(Exception):
    """
    A fake node refused an operation that a real node would refuse too.
    """


@implementer(INodeAgent)
class FakeNodeAgent(object):
    """
    One node of a :class:`FakeCluster`.

    :ivar str address: The node's address.
    :ivar state: The ``NodeState`` the node would report now.
    :ivar data: ``dict`` of volume name to the contents held on this node.
    :ivar calls: ``list`` of ``(method name, arguments)`` in call order.
    """

    def __init__(self, cluster, address, images=None):
        self.cluster = cluster
        self.address = address
        # A fake node's identity is its address.
        # Its own key, as a real node makes one when its agent starts.
        self.state = NodeState(
            address=address, node_id=address,
            node_key=NodeKeyStatus(public_key=fake_public_key(address)),
            images=None if images is None else frozenset(
                canonical_image(image) for image in images))
        self.data = {}
        #: The ``NodeKey`` install_node_key installed last, or ``None``.
        self.installed_node_key = None
        self._keys_made = count(1)
        #: Stale copies set aside by ``fence_volume``: name to contents.
        self.set_aside = {}
        self.calls = []
        self.output = {}
        # What set_automatic was told last.
        self.automatic = pvector()
        # What doctor finds wrong: Check values (see flocker.node._doctor).
        self.health = []

    def _do(self, name, function, *args):
        self.calls.append((name, args))
        if (self.address, name) in self.cluster.failures:
            return fail(FakeNodeError("%s on %s was told to fail" % (
                name, self.address)))
        return maybeDeferred(function)

    def _set(self, **fields):
        self.state = attr.evolve(self.state, **fields)

    def _owned(self, name):
        volume = self.state.volumes.get(name)
        if volume is None or not volume.owned:
            raise FakeNodeError("%s does not own volume %s" % (
                self.address, name))
        return volume

    def report(self):
        return self._do("report", lambda: self.state)

    def wait_for_application(self, name, condition, timeout):
        def wait():
            if name not in self.state.applications:
                raise ApplicationNotReady(name, "it has no container")
            reason = self.cluster.not_ready.get((self.address, name))
            if reason is not None:
                raise ApplicationNotReady(name, reason)
        return self._do("wait_for_application", wait, name, condition,
                        timeout)

    def start_application(self, application):
        def start():
            for volume in application.all_volumes():
                self._owned(volume.name)
            if application.name in {a.name for a in self.automatic}:
                # A real agent holds an automatic application's lease
                # before it starts it.
                self.cluster.holders[application.name] = self.address
            self._set(
                applications=self.state.applications.set(
                    application.name, application),
                running=self.state.running.add(application.name),
                links=self.state.links.set(application.name,
                                           application.links))
        return self._do("start_application", start, application)

    def create_application(self, application):
        def create():
            for volume in application.all_volumes():
                if volume.name not in self.state.volumes:
                    raise FakeNodeError("%s has no copy of volume %s" % (
                        self.address, volume.name))
            if application.name in self.state.running:
                return
            # Reported as Docker's list shows it: there, not running.
            self._set(applications=self.state.applications.set(
                application.name, application))
        return self._do("create_application", create, application)

    def set_links(self, name, links):
        def set_links():
            if name not in self.state.running:
                raise FakeNodeError("%s does not run %s" % (
                    self.address, name))
            self._set(links=self.state.links.set(name, frozenset(links)))
        return self._do("set_links", set_links, name, frozenset(links))

    def stop_application(self, name, keep=False):
        def stop():
            if self.cluster.holders.get(name) == self.address:
                del self.cluster.holders[name]
            # A kept container stays in the report, not running.
            self._set(applications=(self.state.applications if keep else
                                    self.state.applications.discard(name)),
                      running=self.state.running.discard(name),
                      links=self.state.links.discard(name))
        return self._do("stop_application", stop, name, *(
            (True,) if keep else ()))

    def create_volume(self, name, maximum_size):
        def create():
            volume = self.state.volumes.get(name)
            if volume is not None and volume.owned:
                return
            if volume is None:
                self.data[name] = ""
                volume = VolumeState(name=name, owned=True,
                                     owner=self.address, epoch=1)
            else:
                volume = VolumeState(name=name, owned=True, size=volume.size,
                                     snapshots=volume.snapshots,
                                     owner=self.address,
                                     epoch=volume.epoch + 1)
            self._set(volumes=self.state.volumes.set(name, volume))
        return self._do("create_volume", create, name, maximum_size)

    def seed_volume(self, name, archive):
        def seed():
            self._owned(name)
            if self.data.get(name):
                return False
            # The archive stands for the content, as text stands for it
            # elsewhere in this fake.
            self.data[name] = "seed:" + hashlib.sha256(archive).hexdigest()
            return True
        return self._do("seed_volume", seed, name, archive)

    def _send(self, name, target):
        volume = self._owned(name)
        snapshot = "s%06d" % (next(self.cluster.snapshots),)
        mine = VolumeState(name=name, owned=True, size=volume.size,
                           snapshots=volume.snapshots.append(snapshot),
                           owner=self.address, epoch=volume.epoch)
        self._set(volumes=self.state.volumes.set(name, mine))
        other = self.cluster.agents[target]
        theirs = other.state.volumes.get(name)
        if theirs is not None and theirs.owned:
            raise FakeNodeError("%s already owns volume %s" % (target, name))
        if theirs is None and self.state.node_id not in \
                other.state.expected_senders.get(name, ()):
            # As a real node's receive policy: a first copy only from a
            # node the target was told to expect it from, or, for an
            # automatic group's volume, from its lease's holder.
            other._check_group_sender(name, self.address)
        if theirs is not None and theirs.epoch > volume.epoch:
            raise FakeNodeError("%s follows volume %s at a later epoch" % (
                target, name))
        sent = len(self.data.get(name, ""))
        if theirs is not None and set(theirs.snapshots) & set(volume.snapshots):
            sent = 0
        other.data[name] = self.data.get(name, "")
        # A received copy names its sender as the owner, as a real one does.
        other._set(volumes=other.state.volumes.set(name, VolumeState(
            name=name, owned=False, size=mine.size,
            snapshots=mine.snapshots, owner=self.address, epoch=mine.epoch)))
        return sent

    def _check_group_sender(self, name, sender):
        """
        :raises FakeNodeError: Unless ``name`` belongs to an automatic
            application this node is a member of (as ``set_automatic``
            told it) and ``sender`` holds its lease (by the cluster's
            :attr:`FakeCluster.holders`, the fake's etcd).
        """
        for application in self.automatic:
            members = [application.primary] + list(application.standbys)
            if name in application.volumes and self.address in members:
                holder = self.cluster.holders.get(application.name)
                if holder == sender:
                    return
                raise FakeNodeError(
                    "%s has no copy of volume %s of application %s, whose "
                    "lease is held by %s; node %s may not push it" % (
                        self.address, name, application.name, holder,
                        sender))
        raise FakeNodeError(
            "%s has no copy of volume %s and was not told to expect it "
            "from node %s" % (self.address, name, sender))

    def push_volume(self, name, target, progress=None):
        def push():
            sent = self._send(name, target)
            return self.cluster.transfer(sent, progress, sent)
        return self._do("push_volume", push, name, target)

    def prepare_handoff(self, name, target):
        # Nothing to open in memory: the call is recorded.
        return self._do("prepare_handoff", lambda: None, name, target)

    def handoff_volume(self, name, target, progress=None):
        def handoff():
            if name in self.state.running:
                raise FakeNodeError("volume %s is in use on %s" % (
                    name, self.address))
            sent = self._send(name, target)
            volume = self.state.volumes[name]
            self._set(volumes=self.state.volumes.set(name, VolumeState(
                name=name, owned=False, size=volume.size,
                snapshots=volume.snapshots, owner=target,
                epoch=volume.epoch + 1)))
            other = self.cluster.agents[target]
            theirs = other.state.volumes[name]
            other._set(volumes=other.state.volumes.set(name, VolumeState(
                name=name, owned=True, size=theirs.size,
                snapshots=theirs.snapshots, owner=target,
                epoch=theirs.epoch + 1)))
            return self.cluster.transfer(sent, progress, sent)
        return self._do("handoff_volume", handoff, name, target)

    def release_volume(self, name, target, progress=None):
        def release():
            volume = self.state.volumes.get(name)
            theirs = self.cluster.agents[target].state.volumes.get(name)
            if (volume is not None and not volume.owned
                    and theirs is not None and not theirs.owned
                    and theirs.snapshots[-1:] == volume.snapshots[-1:]):
                # Released before, not acquired yet: nothing more to send.
                return VolumeRelease(bytes_sent=0,
                                     snapshot=volume.snapshots[-1],
                                     node_id=target)
            if name in self.state.running:
                raise FakeNodeError("volume %s is in use on %s" % (
                    name, self.address))
            sent = self._send(name, target)
            volume = self.state.volumes[name]
            # As a real node's: the copy left follows the target at the
            # epoch the target takes when it acquires (one above).
            self._set(volumes=self.state.volumes.set(
                name, attr.evolve(volume, owned=False, owner=target,
                                  epoch=volume.epoch + 1)))
            return self.cluster.transfer(sent, progress, VolumeRelease(
                bytes_sent=sent, snapshot=volume.snapshots[-1],
                node_id=target))
        return self._do("release_volume", release, name, target)

    def delete_volume(self, name):
        def delete():
            if name in self.state.running and any(
                    volume.name == name for volume in
                    self.state.applications[name].all_volumes()):
                raise FakeNodeError("volume %s is in use on %s" % (
                    name, self.address))
            self.data.pop(name, None)
            self._set(volumes=self.state.volumes.discard(name))
        return self._do("delete_volume", delete, name)

    def doctor(self):
        def doctor():
            from ._doctor import Check, DoctorReport
            failed = {check.name for check in self.health}
            healthy = [Check(name, True, "fake node %s" % (self.address,))
                       for name in ("docker", "zfs pool", "iptables", "sshd",
                                    "agent", "node key", "clock")
                       if name not in failed]
            clock = self.cluster._clock
            return DoctorReport(
                checks=healthy + list(self.health),
                time=0.0 if clock is None else clock.seconds())
        return self._do("doctor", doctor)

    def pull_image(self, image, dry_run=False):
        def pull():
            images = self.state.images
            if images is not None and canonical_image(image) in images:
                return None
            if image not in self.cluster.registry:
                raise FakeNodeError(
                    "image %s is not on %s and cannot be pulled" % (
                        image, self.address))
            if not dry_run:
                self._set(images=(images or frozenset()) | {
                    canonical_image(image)})
            return None
        return self._do("pull_image", pull, image, dry_run)

    def logs(self, name, since=None, tail=None):
        def logs():
            if name not in self.state.applications:
                raise FakeNodeError("application %s has no container on %s"
                                    % (name, self.address))
            lines = [line for line in self.output.get(name, ())
                     if since is None or line[0] > since]
            if tail is not None:
                lines = lines[max(len(lines) - tail, 0):]
            return lines
        return self._do("logs", logs, name, since, tail)

    def say(self, name, text, stream="stdout"):
        """
        Make the application's container write a line, as its process
        would; :meth:`logs` returns it.
        """
        stamp = "2026-01-01T00:00:00.%09dZ" % (next(self.cluster.snapshots),)
        self.output.setdefault(name, []).append((stamp, stream, text))

    def set_automatic(self, applications):
        def set_automatic():
            self.automatic = applications
        return self._do("set_automatic", set_automatic, applications)

    def install_node_key(self, node_key):
        def install():
            self.installed_node_key = node_key
            self._set(node_key=attr.evolve(self.state.node_key,
                                           installed=node_key.digest()))
        return self._do("install_node_key", install, node_key)

    def rotate_node_key(self, step):
        def rotate():
            key = self.state.node_key
            if step == "prepare":
                if key.pending_public_key is None:
                    key = attr.evolve(key, pending_public_key=fake_public_key(
                        "%s/%d" % (self.address, next(self._keys_made))))
            elif step == "finish":
                pending = key.pending_public_key
                if pending is not None:
                    installed = self.installed_node_key
                    if installed is None or pending not in [
                            peer[2] for peer in parse_peers(installed.peers)]:
                        raise FakeNodeError(
                            "the next key of %s is not yet installed on "
                            "the nodes" % (self.address,))
                    # Its own old key is now one the trust names for a
                    # line: not installed until the next install.
                    key = NodeKeyStatus(public_key=pending)
            else:
                raise FakeNodeError("%r is not a rotation step" % (step,))
            self._set(node_key=key)
        return self._do("rotate_node_key", rotate, step)

    def acquire_volume(self, name, snapshot, node_id):
        def acquire():
            if node_id != self.address:
                raise FakeNodeError("%s is not %s" % (self.address, node_id))
            volume = self.state.volumes.get(name)
            if volume is None or list(volume.snapshots[-1:]) != [snapshot]:
                raise FakeNodeError("%s's copy of %s does not end with %s" % (
                    self.address, name, snapshot))
            if volume.owned:
                return
            # One epoch above the copy's, as a real node's acquire.
            self._set(volumes=self.state.volumes.set(
                name, attr.evolve(volume, owned=True, owner=self.address,
                                  epoch=volume.epoch + 1)))
        return self._do("acquire_volume", acquire, name, snapshot, node_id)

    def take_over_volume(self, name, epoch):
        def take_over():
            volume = self.state.volumes.get(name)
            if volume is None:
                raise FakeNodeError("%s has no copy of %s" % (
                    self.address, name))
            if volume.owned and volume.epoch == epoch:
                return
            if volume.epoch >= epoch:
                raise FakeNodeError("%s's copy of %s is at epoch %d" % (
                    self.address, name, volume.epoch))
            self._set(volumes=self.state.volumes.set(name, attr.evolve(
                volume, owned=True, owner=self.address, epoch=epoch)))
        return self._do("take_over_volume", take_over, name, epoch)

    def fence_volume(self, name, owner, epoch):
        def fence():
            volume = self.state.volumes.get(name)
            if volume is None:
                return None
            if volume.owned:
                if volume.epoch >= epoch:
                    raise FakeNodeError("%s owns %s at epoch %d" % (
                        self.address, name, volume.epoch))
                if name in self.state.running:
                    raise FakeNodeError("%s: %s is in use" % (
                        self.address, name))
                aside = "%s.flocker-recovery-e%d" % (name, volume.epoch)
                self.set_aside[aside] = self.data.pop(name, "")
                self._set(volumes=self.state.volumes.discard(name))
                return aside
            if volume.epoch < epoch:
                self._set(volumes=self.state.volumes.set(name, attr.evolve(
                    volume, owner=owner, epoch=epoch)))
            return None
        return self._do("fence_volume", fence, name, owner, epoch)

    def set_replication(self, replications):
        def configure():
            # Reported as configured, with no standby updated yet.
            self._set(replication={
                name: ReplicationStatus(replication=replication, standbys={
                    address: StandbyStatus(address=address)
                    for address in replication.standbys})
                for name, replication in replications.items()})
        return self._do("set_replication", configure, replications)

    def expect_senders(self, senders):
        def configure():
            from ._senders import check_senders
            self._set(expected_senders=check_senders(senders))
        return self._do("expect_senders", configure, senders)

    def set_routes(self, routes):
        return self._do("set_routes",
                        lambda: self._set(routes=frozenset(routes)), routes)

    def write(self, name, text):
        """
        Append ``text`` to the volume's contents, as an application would.

        :raises FakeNodeError: If this node does not own the volume.
        """
        self._owned(name)
        self.data[name] = self.data.get(name, "") + text


class FakeCluster(object):
    """
    A set of :class:`FakeNodeAgent` that can push volumes to each other.

    :ivar agents: ``dict`` of address to :class:`FakeNodeAgent`, suitable as
        the ``agents`` argument of a state change.
    :ivar failures: ``set`` of ``(address, method name)`` that fail.
    :ivar registry: ``set`` of image references a node can pull.
    :ivar holders: ``dict`` of automatic application name to the address
        of the node holding its lease (the fake's etcd): a node holds it
        from starting the application until it stops it.
    """

    #: Seconds between two progress reports of a transfer that takes time.
    progress_step = 0.1

    def __init__(self, addresses, clock=None, bytes_per_second=None,
                 images=None):
        """
        :param addresses: The nodes' addresses.
        :param clock: ``IReactorTime`` provider, or ``None``: transfers are
            done at once.
        :param bytes_per_second: With ``clock``: how fast volumes are sent,
            so that a transfer's answer comes after its data would have
            been sent.
        :param images: Image references every node has at first, or
            ``None`` for nodes that do not report their images.
        """
        self.snapshots = count(1)
        self.failures = set()
        self.not_ready = {}
        self.registry = set()
        self.holders = {}
        self.agents = {}
        self._clock = clock
        self._rate = bytes_per_second
        for address in addresses:
            self.agents[address] = FakeNodeAgent(self, address, images)

    def transfer(self, sent, progress, result):
        """
        Send ``sent`` bytes: tell ``progress`` (if any) how it goes and give
        ``result`` once done.  The nodes' states have changed already; only
        the answer takes the transfer's time.

        :param int sent: Bytes to send.
        :param progress: ``None``, or an ``INodeAgent`` progress object.
        :param result: What the transfer answers with.
        :return: ``result``, or a ``Deferred`` firing with it once the
            cluster's clock has moved on by the transfer's time.
        """
        if self._clock is None or not self._rate or not sent:
            if progress is not None:
                progress.update(sent, sent)
                progress.finish()
            return result
        done = Deferred()
        started = self._clock.seconds()
        duration = float(sent) / self._rate

        def step():
            elapsed = self._clock.seconds() - started
            # Float sums of steps may fall short of the duration by a
            # rounding error; waiting that out could schedule for "now".
            if elapsed >= duration - 1e-6:
                if progress is not None:
                    progress.update(sent, sent)
                    progress.finish()
                done.callback(result)
                return
            if progress is not None:
                progress.update(min(sent, int(round(elapsed * self._rate))),
                                sent)
            self._clock.callLater(min(self.progress_step, duration - elapsed),
                                  step)
        step()
        return done

    def state(self):
        """
        :return: The ``ClusterState`` every node would report now.
        """
        return ClusterState(nodes={a: agent.state
                                   for a, agent in self.agents.items()})
