"""
The volume service: a node's volumes, their ownership, and moving them
between nodes.

A volume is the dataset ``<pool>/<name>`` of this node's pool.  Every node has
a stable identity (a UUID kept in the user property ``flocker:node-id`` of its
pool's root, so it lives and dies with the pool).  Each copy of a volume
records in ``flocker:owner`` the identity of the node that owns the volume.
A node owns a volume when its own copy names it; the owner's copy is the only
writable one and the only one mounted into a container.  Every other copy is
a *follower*: ``readonly=on`` and ``atime=off`` (zfs-fuse refuses an
incremental receive after a mere read otherwise), not mounted (with zfs-fuse a
mount kept across receives can serve stale file contents from the kernel's
page cache), updated only by pushes.

The service is one class put together from a module per part:

* :mod:`flocker.volume._api`: its interface and values;
* :mod:`flocker.volume._push`: the sending end of a push (and the push
  protocol);
* :mod:`flocker.volume._receive`: the receiving end;
* :mod:`flocker.volume._ownership`: hand-off and acquire;
* :mod:`flocker.volume._prune`: pruning snapshots, at once or queued
  after a push, receive or acquire;
* :mod:`flocker.volume._remote`: reaching another node;
* :mod:`flocker.volume._inuse`: which processes use a volume;

this module has what changes only this node (create, mount, seed,
snapshot, delete) and opens the service.
"""

import contextvars
import uuid

import attr
from pyrsistent import pvector
from twisted.internet.defer import (
    Deferred, DeferredLock, inlineCallbacks, maybeDeferred, succeed,
)
from twisted.internet.threads import deferToThreadPool
from twisted.python.filepath import FilePath
from zope.interface import implementer

from ._api import (
    IVolumeService, PROTOCOL_VERSION, PushResult,
    VolumeInfo, check_node_id, snapshot_name, volume_info,
)
from ._errors import (
    NoSuchVolume, NotOwner, RemoteError, TargetUnreachable, VolumeExists,
)
from ._inuse import mounted_at, processes_using, scan_in_thread
from ._logging import (
    CREATE_VOLUME, DELETE_VOLUME, SEED_VOLUME, SNAPSHOT_VOLUME,
)
from ._ownership import OwnershipMixin
from ._prune import PruningMixin
from ._push import PushingMixin, pushed_peers
from ._receive import ReceivingMixin
from ._remote import check_address, remote_error
from ._seed import seed_entries, write_seed
from ._stamp import read_stamp
from ._epoch import FIRST_EPOCH
from ._zfs import (
    EPOCH, NODE_ID, OWNER, ZFSPool, check_maximum_size, check_volume_name,
)

__all__ = [
    "IVolumeService", "VolumeInfo", "PushResult", "VolumeService",
    "open_volume_service", "processes_using", "check_address",
    "snapshot_name", "PROTOCOL_VERSION",
]


@implementer(IVolumeService)
class VolumeService(OwnershipMixin, PushingMixin, ReceivingMixin,
                    PruningMixin):
    """
    The volumes of this node's ZFS pool.
    """

    def __init__(self, reactor, pool, node_id, remote, clock=None,
                 in_use=None, listing=None):
        """
        Use :func:`open_volume_service` rather than this directly: it checks
        the pool and learns the node's identity.

        :param reactor: Reactor running processes and timers.
        :param ZFSPool pool: This node's pool.
        :param str node_id: This node's identity.
        :param remote: How to reach another node's receiving end (an
            object with ``start(address, words)``: see
            :mod:`flocker.volume._remote`; the agent's is
            :class:`flocker.node._peer_remote.AgentRemote`).  A remote
            command exiting with 255 is taken as the connection lost.
        :param clock: ``IReactorTime`` naming snapshots; reactor if ``None``.
        :param in_use: ``None``, or a callable ``in_use(dataset,
            mountpoint)`` returning a ``Deferred`` that fires with the
            ``set`` of ids of the processes using that mounted dataset;
            ``None`` runs :func:`processes_using` in the reactor's thread
            pool (:func:`scan_in_thread`): it blocks for tens of
            milliseconds.
        :param listing: ``None``, or what ``pool.list()`` just answered:
            the first operation needing a listing uses it instead of asking
            again if it starts in this same reactor turn (as the command
            run by ``flocker-volume`` right after opening the pool does).
        """
        self._reactor = reactor
        self.pool = pool
        self.node_id = node_id
        self._remote = remote
        self._clock = reactor if clock is None else clock
        self._in_use = scan_in_thread(reactor) if in_use is None else in_use
        self._locks = {}
        # Volumes this service is pushing, as their owner (see
        # ReceivingMixin.receive).
        self._pushing = set()
        # Receives under way: volume name to their _UnderWay (the sender's
        # epoch, a way to abandon them); see
        # ReceivingMixin.abandon_receive.
        self._receiving = {}
        # (volume, target) to the receiving end prepare_push opened ahead
        # for the next push there: (settled start, expiry timer).
        self._prepared = {}
        # Volume name to the snapshots a queued prune will destroy, and the
        # Deferreds of the prunes queued (see PruningMixin._prune_later).
        self._prunes = {}
        self._background = set()
        # Volumes this service made writable and has not made read-only,
        # received into or deleted since.
        self._writable = set()
        # Volume name to (Dataset, stamp): the copy as this service's own
        # latest commands left it, while the pool's change stamp says
        # nothing changed since (see _leave and _known).
        self._left = {}
        # The pool's free bytes as the latest listing said (a receive's
        # size limit when the volume names none), or None.
        self._pool_free = None
        # Only good while nothing else can have run: forgotten at the
        # reactor's next turn.
        self._listing = listing
        if listing is not None:
            reactor.callLater(0, self._forget_listing)

    def _forget_listing(self):
        self._listing = None

    def _list(self):
        """
        :return: ``Deferred`` firing with ``pool.list()``'s answer (the one
            given when the pool was opened, if still current).
        """
        listing, self._listing = self._listing, None
        if listing is not None:
            return succeed(listing)
        return self.pool.list()

    def _remote_error(self, target, result, default_kind=RemoteError):
        return remote_error(target, result, default_kind)

    def _locked(self, name, function, *args):
        # Operations on one volume from one process never interleave.
        lock = self._locks.setdefault(name, DeferredLock())
        # Run in the caller's context (its eliot action), not in that of
        # the operation whose end frees the lock: an acquire waiting for a
        # receive's last steps is logged under the acquire's own step.
        return lock.run(contextvars.copy_context().run, function, *args)

    def _locked_push(self, name, function, *args):
        """
        Like :meth:`_locked`, for an operation that pushes ``name``: while
        it holds the lock, the volume is marked as being pushed.
        """
        def marked():
            self._pushing.add(name)

            def unmark(passthrough):
                self._pushing.discard(name)
                return passthrough
            return maybeDeferred(function, *args).addBoth(unmark)
        return self._locked(name, marked)

    def _locked_answer(self, name, function, *args):
        """
        Like :meth:`_locked_push`, for a ``function`` firing with ``(answer,
        rest)``: the caller has ``answer`` at once, while ``rest`` (a
        ``Deferred`` that never fails: what follows the answer) keeps the
        volume's lock until it ends.

        :return: ``Deferred`` firing with ``answer``, or failing as
            ``function`` did.
        """
        answered = Deferred()

        def run():
            def split(outcome):
                answer, rest = outcome
                answered.callback(answer)
                return rest
            return maybeDeferred(function, *args).addCallbacks(
                split, answered.errback)
        self._locked_push(name, run)
        return answered

    @inlineCallbacks
    def _get(self, name):
        check_volume_name(name)
        dataset = yield self.pool.get(name)
        if dataset is None:
            raise NoSuchVolume("volume %s does not exist in pool %s" % (
                name, self.pool.name))
        return dataset

    def _leave(self, dataset):
        """
        Remember ``dataset`` as this service's commands just left it (call
        it in the reactor turn its last command ended in, before any other
        command can end), so that the next operation on it need not ask
        ZFS (see :meth:`_known`).  Nothing is remembered when another
        process changed the pool since this one's latest change, or when
        the mount point is not known.
        """
        stamp = getattr(self.pool, "last_stamp", None)
        if (stamp is not None and dataset.mountpoint is not None
                and read_stamp(self.pool.stamp) == stamp):
            self._left[dataset.name] = (dataset, stamp)
        else:
            self._left.pop(dataset.name, None)

    def _known(self, name):
        """
        What :meth:`_leave` remembered of a volume, once: a hand-off's
        acquire right after the receive of its final increment, and the
        application's start right after the acquire, ask ZFS nothing
        (each listing costs tens of milliseconds while the application is
        down).  Any change to the pool since, by this process or another
        one through Flocker, rewrote the pool's change stamp (see
        :mod:`flocker.volume._stamp`): it is then forgotten, and the caller
        asks ZFS.  (A ``zfs`` command run by hand in between is not seen,
        as by the agent's kept report.)

        :return: The ``Dataset``, or ``None``.
        """
        dataset, stamp = self._left.pop(name, (None, None))
        if dataset is None or read_stamp(self.pool.stamp) != stamp:
            return None
        return dataset

    @inlineCallbacks
    def _owned(self, name):
        dataset = yield self._get(name)
        if dataset.owner != self.node_id:
            raise NotOwner("volume %s is not owned by this node (%s); its "
                           "owner is %s" % (name, self.node_id,
                                            dataset.owner or "unknown"))
        return dataset

    # Reading

    @inlineCallbacks
    def volumes(self):
        datasets = yield self._list()
        infos = [volume_info(dataset, self.node_id,
                             sorted(pushed_peers(dataset)))
                 for dataset in datasets
                 if dataset.name and "." not in dataset.name]
        return pvector(sorted(infos, key=lambda info: info.name))

    def list(self):
        return self.volumes().addCallback(
            lambda infos: pvector(info.state() for info in infos))

    def mountpoint(self, name):
        return self._get(name).addCallback(
            lambda dataset: FilePath(dataset.mountpoint))

    # Changing this node only

    def create(self, name, maximum_size=None):
        check_volume_name(name)
        check_maximum_size(maximum_size)
        return self._locked(name, self._create, name, maximum_size)

    @inlineCallbacks
    def _create(self, name, maximum_size):
        with CREATE_VOLUME(volume=name, maximum_size=maximum_size):
            dataset = yield self.pool.get(name)
            if dataset is None:
                properties = {OWNER: self.node_id, "atime": "off",
                              EPOCH: str(FIRST_EPOCH)}
                if maximum_size is not None:
                    properties["refquota"] = str(int(maximum_size))
                yield self.pool.create(name, properties)
            elif dataset.owner != self.node_id:
                raise VolumeExists(
                    "volume %s already exists here as a copy owned by node "
                    "%s; hand it off to this node or delete the copy" % (
                        name, dataset.owner or "unknown"))
            elif dataset.maximum_size != maximum_size:
                yield self.pool.set(name, "refquota", str(maximum_size or
                                                          "none"))
            dataset = yield self._get(name)
            return volume_info(dataset, self.node_id)

    def mount(self, name):
        check_volume_name(name)
        return self._locked(name, self._mount, name)

    @inlineCallbacks
    def _mount(self, name):
        dataset = self._known(name)
        if dataset is None or dataset.owner != self.node_id or (
                dataset.mounted and not mounted_at(
                    self.pool.dataset(name), dataset.mountpoint)):
            # (A mount point that is no mount would give a container the
            # empty directory under it.)
            dataset = yield self._owned(name)
        path = yield self._mount_dataset(dataset)
        self._leave(attr.evolve(dataset, properties=dataset.properties.set(
            "mounted", "yes")))
        return path

    @inlineCallbacks
    def _mount_dataset(self, dataset):
        """
        Make an owned dataset writable and mounted.

        :return: ``Deferred`` firing with its mount point (``FilePath``).
        """
        name = dataset.name
        # zfs-fuse reports readonly as "off (temporary)" on any mounted
        # dataset, so the value cannot be read back: it is set unless this
        # service set it since it last made the volume read-only (an
        # acquire followed by a start in one session sets it once).
        if name not in self._writable:
            yield self.pool.set(name, "readonly", "off")
            self._writable.add(name)
        if not dataset.mounted:
            yield self.pool.mount(name)
        return FilePath(dataset.mountpoint)

    def seed(self, name, archive):
        check_volume_name(name)
        entries = seed_entries(archive)
        return self._locked(name, self._seed, name, len(archive), entries)

    @inlineCallbacks
    def _seed(self, name, size, entries):
        with SEED_VOLUME(volume=name, archive_bytes=size) as action:
            path = yield self._mount(name)
            # Local file writes, in a thread: a seed may be megabytes.
            seeded = yield deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), write_seed,
                path.path, entries)
            action.add_success_fields(seeded=seeded)
            return seeded

    def snapshot(self, name):
        check_volume_name(name)
        return self._locked(name, self._snapshot_owned, name)

    @inlineCallbacks
    def _snapshot_owned(self, name):
        dataset = yield self._owned(name)
        snapshot = yield self._take_snapshot(dataset)
        return snapshot

    @inlineCallbacks
    def _take_snapshot(self, dataset):
        with SNAPSHOT_VOLUME(volume=dataset.name) as action:
            snapshot = snapshot_name(self._clock.seconds(), dataset.snapshots)
            yield self.pool.snapshot(dataset.name, snapshot)
            action.add_success_fields(snapshot=snapshot)
        return snapshot

    def delete(self, name):
        check_volume_name(name)
        return self._locked(name, self._delete, name)

    @inlineCallbacks
    def _delete(self, name):
        with DELETE_VOLUME(volume=name):
            dataset = yield self._get(name)
            yield self._refuse_in_use(
                dataset, "volume %s is in use (mounted into a container or "
                "open by process %s); stop the application first")
            self._writable.discard(name)
            # ZFS destroys no held snapshot.
            yield self._release_bases(dataset)
            yield self._release_received(dataset)
            yield self.pool.destroy(name)

    @inlineCallbacks
    def orphans(self, keep):
        keep = set(keep)
        infos = yield self.volumes()
        return pvector(info for info in infos if info.name not in keep)

    # Moving between nodes


class _NoRemote(object):
    """
    The *remote* of a volume service that reaches no other node (the
    ``flocker-volume`` command's: its pushes and hand-offs are asked of
    the node's agent instead).
    """

    def start(self, address, words):
        """
        :raises TargetUnreachable: Always.
        """
        raise TargetUnreachable(
            "cannot reach node %s from this process: only the node's agent "
            "sends volumes to other nodes" % (address,))


@inlineCallbacks
def open_volume_service(reactor, pool_name, env, remote=None, clock=None,
                        node_id=None):
    """
    Open this node's volume service: check the pool exists and learn the
    node's identity (generated and stored in the pool the first time).

    :param reactor: The reactor.
    :param str pool_name: This node's pool.
    :param dict env: Environment for child processes (``PATH``, ``HOME``).
    :param remote: See :class:`VolumeService`; if ``None``, every push and
        hand-off is refused with ``TargetUnreachable`` (only the node's
        agent sends volumes to other nodes).
    :param clock: See :class:`VolumeService`.
    :param node_id: Force an identity instead of the pool's (tests).
    :return: ``Deferred`` firing with a :class:`VolumeService`.
    :raises PoolMissing: The pool does not exist.
    """
    pool = ZFSPool(reactor, pool_name, env, clock=clock)
    # One command checks the pool (PoolMissing otherwise), reads the node's
    # identity and lists what the first operation will probably need: every
    # zfs command costs tens of milliseconds with zfs-fuse, and this runs at
    # the start of every flocker-volume and flocker-node command.
    listing = yield pool.list()
    if node_id is None:
        node_id = next((dataset.get(NODE_ID) for dataset in listing
                        if dataset.name == ""), None)
    if node_id is None:
        yield pool.set_root_property(NODE_ID, str(uuid.uuid4()))
        # Read back: if two processes raced, both use the one that stuck.
        node_id = yield pool.get_root_property(NODE_ID)
    check_node_id(node_id)
    return VolumeService(
        reactor, pool, node_id, _NoRemote() if remote is None else remote,
        clock=clock, listing=listing)

