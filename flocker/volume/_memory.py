"""
An in-memory volume service, for tests of code that uses volumes (the node
agent, the deploy client) and as the fake the volume interface tests run
against alongside the real ZFS service.

Volumes hold files as a ``PMap`` of relative path to bytes; a snapshot is such
a map frozen under a name; a "stream" is the set of files that changed since
the base snapshot.  Services reach each other through a shared
:class:`MemoryNetwork`, which can also make a node unreachable or make one
kind of remote command fail, to test interrupted moves.
"""

import time

import attr
from pyrsistent import pmap, pvector
from twisted.internet.defer import fail, succeed
from twisted.python.filepath import FilePath
from zope.interface import implementer

from ._errors import (
    HandoffConflict, NoSuchVolume, NotOwner, OutOfSpace, SnapshotNotFound,
    StreamRejected,
    TargetUnreachable, VolumeError, VolumeExists, VolumeInUse,
)
from ._api import (
    IVolumeService, PushResult, VolumeInfo, follower_keeps, snapshot_name,
)
from ._epoch import (
    FIRST_EPOCH, check_sender_epoch, recovery_name, taken_epoch,
)
from ._logging import PUSH_VOLUME
from ._remote import check_address
from ._seed import seed_entries
from ._zfs import (
    check_maximum_size, check_snapshot_name, check_volume_name,
)

__all__ = ["MemoryNetwork", "MemoryVolumeService"]


@attr.s(frozen=True)
class _Copy(object):
    owner = attr.ib()
    readonly = attr.ib()
    maximum_size = attr.ib()
    files = attr.ib(converter=pmap)
    snapshots = attr.ib(converter=pvector)   # of (name, files)
    pushed = attr.ib(converter=pmap, default=pmap())
    epoch = attr.ib(default=FIRST_EPOCH)

    def names(self):
        return [name for name, _ in self.snapshots]

    def snapshot_files(self, name):
        return dict(self.snapshots)[name]


def _size(files):
    return sum(len(data) for data in files.values())


class MemoryNetwork(object):
    """
    The nodes :class:`MemoryVolumeService` instances can push to.

    :ivar services: ``dict`` of address to service.
    :ivar unreachable: ``set`` of addresses that cannot be reached.
    :ivar failing: ``set`` of ``(address, command)`` pairs (command
        ``"receive"`` or ``"acquire"``) failing as if the connection dropped.
    """

    def __init__(self):
        self.services = {}
        self.unreachable = set()
        self.failing = set()

    def reach(self, address, command):
        """
        :return: The service at ``address``.
        :raises TargetUnreachable: If it cannot be reached for ``command``.
        """
        if (address in self.unreachable or address not in self.services
                or (address, command) in self.failing):
            raise TargetUnreachable(
                "cannot reach node %s: connection refused" % (address,))
        return self.services[address]

    def address_of(self, node_id):
        """
        :param str node_id: A service's node identity.
        :return: That service's address (the identity itself if unknown).
        """
        for address, service in self.services.items():
            if service.node_id == node_id:
                return address
        return node_id


def _deferred(function):
    """
    Run a method synchronously, returning its result or error as an already
    fired ``Deferred``, like the real service's would eventually fire.
    """
    def wrapper(*args, **kwargs):
        try:
            return succeed(function(*args, **kwargs))
        except VolumeError:
            return fail()
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


@implementer(IVolumeService)
class MemoryVolumeService(object):
    """
    A node's volumes, in memory.  See ``IVolumeService`` for the contract.
    """

    def __init__(self, node_id, address, network, clock, capacity=None):
        """
        :param str node_id: The node's identity.
        :param str address: Its address on ``network`` (registered here).
        :param MemoryNetwork network: Shared with the other nodes.
        :param clock: ``IReactorTime`` naming snapshots.
        :param capacity: Bytes the "pool" holds (all files of all copies
            and snapshots), or ``None`` for no limit.
        """
        self.node_id = node_id
        self.address = address
        self._network = network
        self._clock = clock
        self._capacity = capacity
        self._copies = {}
        #: Names of volumes tests declare mounted into a container.
        self.in_use = set()
        #: Stale copies set aside by ``fence``, by their recovery name.
        self.set_aside = {}
        #: ``(volume, target)`` of each receiving end opened ahead by
        #: ``prepare_push`` and not used by a push yet (nothing to open in
        #: memory: it is only remembered).
        self.prepared = set()
        network.services[address] = self

    # Helpers for tests standing in for an application using the volume.

    def write_file(self, name, path, data):
        """
        Write a file into this node's writable copy of a volume.

        :raises NotOwner: The copy is read-only.
        :raises OutOfSpace: Its maximum size or the capacity is exceeded.
        """
        copy = self._get(name)
        if copy.readonly:
            raise NotOwner("volume %s is read-only on this node" % (name,))
        files = copy.files.set(path, data)
        if copy.maximum_size is not None and _size(files) > copy.maximum_size:
            raise OutOfSpace("volume %s: maximum size reached" % (name,))
        self._check_capacity(_size(files) - _size(copy.files))
        self._copies[name] = attr.evolve(copy, files=files)

    def read_file(self, name, path):
        """
        :return: The file's contents in this node's copy.
        """
        return self._get(name).files[path]

    def _used(self):
        total = 0
        for copy in self._copies.values():
            total += _size(copy.files)
            for _, files in copy.snapshots:
                total += _size(files)
        return total

    def _check_capacity(self, extra):
        if self._capacity is not None and self._used() + extra > \
                self._capacity:
            raise OutOfSpace("pool of node %s is full" % (self.address,))

    def _get(self, name):
        check_volume_name(name)
        if name not in self._copies:
            raise NoSuchVolume("volume %s does not exist" % (name,))
        return self._copies[name]

    def _owned(self, name):
        copy = self._get(name)
        if copy.owner != self.node_id:
            raise NotOwner("volume %s is not owned by this node (%s)" % (
                name, self.node_id))
        return copy

    def _info(self, name):
        copy = self._copies[name]
        return VolumeInfo(
            name=name, owner=copy.owner, owned=copy.owner == self.node_id,
            size=_size(copy.files),
            maximum_size=copy.maximum_size, snapshots=copy.names(),
            mountpoint="/memory/%s/%s" % (self.address, name),
            epoch=copy.epoch, pushed_to=sorted(
                self._network.address_of(node_id)
                for node_id in copy.pushed))

    @_deferred
    def volumes(self):
        return pvector(self._info(name) for name in sorted(self._copies))

    def list(self):
        return self.volumes().addCallback(
            lambda infos: pvector(info.state() for info in infos))

    @_deferred
    def create(self, name, maximum_size=None):
        check_volume_name(name)
        check_maximum_size(maximum_size)
        copy = self._copies.get(name)
        if copy is None:
            copy = _Copy(owner=self.node_id, readonly=False,
                         maximum_size=maximum_size, files={}, snapshots=[])
        elif copy.owner != self.node_id:
            raise VolumeExists("volume %s already exists here as a copy "
                               "owned by node %s" % (name, copy.owner))
        self._copies[name] = attr.evolve(copy, maximum_size=maximum_size)
        return self._info(name)

    @_deferred
    def mountpoint(self, name):
        self._get(name)
        return FilePath(self._info(name).mountpoint)

    @_deferred
    def mount(self, name):
        self._copies[name] = attr.evolve(self._owned(name), readonly=False)
        return FilePath(self._info(name).mountpoint)

    @_deferred
    def seed(self, name, archive):
        entries = seed_entries(archive)
        copy = self._owned(name)
        if copy.files:
            return False
        for entry in entries:
            if entry.data is not None:
                self.write_file(name, entry.path, entry.data)
        return True

    def _take_snapshot(self, name):
        copy = self._copies[name]
        snapshot = snapshot_name(self._clock.seconds(), copy.names())
        self._check_capacity(_size(copy.files))
        self._copies[name] = attr.evolve(
            copy, snapshots=copy.snapshots.append((snapshot, copy.files)))
        return snapshot

    @_deferred
    def snapshot(self, name):
        self._owned(name)
        return self._take_snapshot(name)

    @_deferred
    def delete(self, name):
        self._get(name)
        if name in self.in_use:
            raise VolumeInUse("volume %s is in use" % (name,))
        del self._copies[name]

    def _prune(self, name, dry_run=False, keep=None):
        copy = self._copies[name]
        keep = set(copy.names()[-1:] if keep is None else keep)
        if copy.owner == self.node_id:
            keep |= set(copy.pushed.values())
        doomed = [snapshot for snapshot in copy.names()
                  if snapshot not in keep]
        if not dry_run:
            self._copies[name] = attr.evolve(copy, snapshots=[
                item for item in copy.snapshots if item[0] in keep])
        return pvector(doomed)

    @_deferred
    def prune_snapshots(self, name, dry_run=False):
        self._get(name)
        return self._prune(name, dry_run)

    def settled(self):
        # This service prunes as it goes: nothing is ever left queued.
        return succeed(None)

    @_deferred
    def orphans(self, keep):
        keep = set(keep)
        return pvector(self._info(name) for name in sorted(self._copies)
                       if name not in keep)

    def _push(self, name, target, progress, snapshot=None):
        # Logged as the real service logs a push: the figures travel in
        # its success fields (flocker-volume push reads them).
        with PUSH_VOLUME(volume=name, target=target) as action:
            result = self._push_logged(name, target, progress, snapshot)
            action.add_success_fields(
                snapshot=result.snapshot, base=result.base,
                bytes=result.bytes_sent, resumed=result.resumed,
                node_id=result.target_node_id)
        return result

    def _push_logged(self, name, target, progress, snapshot):
        check_address(target)
        # A push uses the receiving end opened ahead for it, if any.
        self.prepared.discard((name, target))
        other = self._network.reach(target, "receive")
        if other is self:
            raise HandoffConflict("a volume cannot be pushed to itself")
        theirs = other._copies.get(name)
        if theirs is not None and theirs.owner == other.node_id:
            check_sender_epoch(name, theirs.epoch, self._copies[name].epoch)
            raise NotOwner("node %s: volume %s is owned by that node" % (
                target, name))
        if snapshot is None:
            snapshot = self._take_snapshot(name)
        copy = self._copies[name]
        their_names = theirs.names() if theirs is not None else []
        base = None
        for candidate in reversed(
                copy.names()[:copy.names().index(snapshot)]):
            if candidate in their_names:
                base = candidate
                break
        files = copy.snapshot_files(snapshot)
        if base is None:
            sent = _size(files)
        else:
            before = copy.snapshot_files(base)
            sent = sum(len(data) for path, data in files.items()
                       if before.get(path) != data)
        if progress is not None:
            progress.update(sent, sent if base is None else None)
            progress.finish()
        other._receive(name, snapshot, base, files, copy.maximum_size,
                       self.node_id, copy.epoch)
        self._copies[name] = attr.evolve(
            copy, pushed=copy.pushed.set(other.node_id, snapshot))
        # As the real service: what the target had before is kept until the
        # next push makes it unnecessary.
        self._prune(name, keep={base, snapshot} | set(follower_keeps(
            copy.names()[:copy.names().index(snapshot)])))
        return PushResult(name=name, target=target,
                          target_node_id=other.node_id, snapshot=snapshot,
                          base=base, bytes_sent=sent)

    def _receive(self, name, snapshot, base, files, maximum_size, owner,
                 epoch):
        theirs = self._copies.get(name)
        if theirs is not None:
            check_sender_epoch(name, theirs.epoch, epoch)
        if base is None:
            kept = []
        elif theirs is None or base not in theirs.names():
            raise StreamRejected("stream does not apply: no snapshot %s"
                                 % (base,))
        else:
            names = theirs.names()
            kept = list(theirs.snapshots)[:names.index(base) + 1]
        self._check_capacity(_size(files))
        self._copies[name] = _Copy(
            owner=owner, readonly=True, maximum_size=maximum_size,
            files=files, snapshots=kept + [(snapshot, files)], epoch=epoch)
        self._prune(name, keep=follower_keeps(self._copies[name].names()))

    @_deferred
    def push(self, name, target, progress=None, snapshot=None):
        self._owned(name)
        if snapshot is not None and snapshot not in self._copies[
                name].names():
            raise SnapshotNotFound("volume %s has no snapshot %s" % (
                name, snapshot))
        return self._push(name, target, progress, snapshot)

    @_deferred
    def prepare_push(self, name, target):
        check_volume_name(name)
        check_address(target)
        self.prepared.add((name, target))

    @_deferred
    def handoff(self, name, target, progress=None, acquire=True):
        check_address(target)
        copy = self._get(name)
        if copy.owner == self.node_id:
            if name in self.in_use:
                raise VolumeInUse("volume %s is still in use" % (name,))
            self._copies[name] = attr.evolve(copy, readonly=True)
            result = self._push(name, target, progress)
            self._copies[name] = attr.evolve(
                self._copies[name], owner=result.target_node_id,
                epoch=copy.epoch + 1)
        elif copy.owner and copy.snapshots:
            result = PushResult(name=name, target=target,
                                target_node_id=copy.owner,
                                snapshot=copy.names()[-1], base=None,
                                bytes_sent=0)
        else:
            raise NotOwner("volume %s is not owned by this node" % (name,))
        if acquire:
            other = self._network.reach(target, "acquire")
            other._acquire(name, result.snapshot, result.target_node_id)
        return result

    def _acquire(self, name, snapshot, node_id, epoch=None):
        if snapshot is not None:
            check_snapshot_name(snapshot)
        if node_id is not None and node_id != self.node_id:
            raise HandoffConflict("this node is %s, not %s" % (
                self.node_id, node_id))
        copy = self._get(name)
        if copy.owner != self.node_id:
            latest = copy.names()[-1] if copy.snapshots else None
            if snapshot is not None and latest != snapshot:
                raise StreamRejected(
                    "this node's copy of %s ends with snapshot %s, not %s"
                    % (name, latest, snapshot))
        if copy.owner != self.node_id or epoch not in (None, copy.epoch):
            # An owner given a later epoch won a later claim: its pushes
            # carry that epoch from now on.
            copy = attr.evolve(copy, epoch=taken_epoch(name, copy.epoch,
                                                       epoch))
        self._copies[name] = attr.evolve(copy, owner=self.node_id,
                                         readonly=False)
        self._prune(name, keep=follower_keeps(copy.names()))
        return self._info(name)

    @_deferred
    def acquire(self, name, snapshot=None, node_id=None, epoch=None):
        return self._acquire(name, snapshot, node_id, epoch)

    @_deferred
    def fence(self, name, owner, epoch):
        check_volume_name(name)
        copy = self._copies.get(name)
        if copy is None:
            return None
        if copy.owner == self.node_id:
            if copy.epoch >= epoch:
                raise HandoffConflict(
                    "this node owns volume %s at epoch %d: it is not stale"
                    % (name, copy.epoch))
            if name in self.in_use:
                raise VolumeInUse("the stale copy of volume %s is in use"
                                  % (name,))
            aside = recovery_name(name, copy.epoch, time.strftime(
                "%Y%m%dT%H%M%SZ", time.gmtime(self._clock.seconds())))
            self.set_aside[aside] = attr.evolve(copy, readonly=True)
            del self._copies[name]
            return aside
        if copy.epoch < epoch:
            self._copies[name] = attr.evolve(copy, owner=owner, epoch=epoch)
        return None
