"""
What the volume service offers: its interface, the values it answers with,
and the names it gives snapshots.
"""

import time

import attr
from pyrsistent import pvector
from zope.interface import Attribute, Interface

from .._identifiers import is_node_identity
from .._model import VolumeState
from ._errors import UnsafeName

__all__ = [
    "IVolumeService", "VolumeInfo", "PushResult", "snapshot_name",
    "SNAPSHOT_PREFIX", "PROTOCOL_VERSION", "check_node_id", "volume_info",
    "FOLLOWER_SNAPSHOTS", "follower_keeps",
]

#: Version of the push protocol (see :mod:`flocker.volume._push`).
PROTOCOL_VERSION = 1

#: Names of the snapshots Flocker takes (and prunes) start with this.
SNAPSHOT_PREFIX = "flocker-"


#: How many of its newest snapshots a copy keeps: a follower after each
#: receive, an owner at each push (besides each target's last).  Every
#: standby of a volume receives the same snapshot each round (one a round,
#: see :mod:`flocker.node._replication`); keeping a few means that after a
#: planned move, whose pre-copy and hand-off add two snapshots to the new
#: owner's copy, it still shares one with the other standbys, whichever it
#: pushes to first, so its first push to each is incremental.  The cost is
#: the blocks changed over those few rounds.
FOLLOWER_SNAPSHOTS = 4


def follower_keeps(snapshots):
    """
    :param snapshots: A follower's snapshot names, oldest first.
    :return: The ``list`` of those of Flocker's it keeps (others are never
        pruned anyway).
    """
    ours = [name for name in snapshots if name.startswith(SNAPSHOT_PREFIX)]
    return ours[-FOLLOWER_SNAPSHOTS:]


def check_node_id(node_id):
    """
    :param str node_id: A node identity (see :func:`flocker._identifiers.is_node_identity`).
    :raises UnsafeName: If it is not one.
    """
    if not is_node_identity(node_id):
        raise UnsafeName("%r is not a node identity" % (node_id,))


def snapshot_name(seconds, existing):
    """
    Name a new snapshot after the time it is taken, so names sort in the
    order they were taken (on one clock).

    :param float seconds: POSIX time.
    :param existing: Names already used by the volume.
    :return: ``flocker-YYYYmmddTHHMMSS.ffffffZ``, with ``-N`` appended if
        that name is taken.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    micro = int(round((seconds - int(seconds)) * 1e6)) % 1000000
    base = "%s%s.%06dZ" % (SNAPSHOT_PREFIX, stamp, micro)
    name, counter = base, 1
    while name in existing:
        counter += 1
        name = "%s-%d" % (base, counter)
    return name


@attr.s(frozen=True)
class VolumeInfo(object):
    """
    Everything this node knows about its copy of a volume.

    :ivar str name: Volume name.
    :ivar owner: Identity of the node its copy names as owner, or ``None``.
    :ivar bool owned: Whether this node is the owner.
    :ivar int size: Bytes referenced.
    :ivar maximum_size: Quota (``refquota``) in bytes or ``None``.
    :ivar snapshots: ``PVector`` of snapshot names, oldest first.
    :ivar str mountpoint: Where the copy is (or would be) mounted.
    :ivar int epoch: The ownership epoch the copy records (see
        :mod:`flocker.volume._epoch`).
    :ivar pushed_to: ``tuple`` of the addresses of the nodes this node
        pushed the copy to and remembers (on an owner: where copies of it
        are).
    """
    name = attr.ib()
    owner = attr.ib()
    owned = attr.ib()
    size = attr.ib()
    maximum_size = attr.ib()
    snapshots = attr.ib(converter=pvector)
    mountpoint = attr.ib()
    epoch = attr.ib(default=0)
    pushed_to = attr.ib(default=(), converter=tuple)

    def state(self):
        """
        :return: The :class:`flocker._model.VolumeState` a node report uses.
        """
        return VolumeState(name=self.name, owned=self.owned, size=self.size,
                           snapshots=self.snapshots, owner=self.owner,
                           epoch=self.epoch)


@attr.s(frozen=True)
class PushResult(object):
    """
    What a push (or the push inside a hand-off) sent.

    :ivar str name: Volume name.
    :ivar str target: Address of the receiving node.
    :ivar str target_node_id: Identity of the receiving node.
    :ivar snapshot: The snapshot the target now has (newest), or ``None``
        if a resumed hand-off sent nothing.
    :ivar base: Snapshot the incremental stream started from, or ``None``
        for a full stream.
    :ivar int bytes_sent: Size of the stream (of both, when a resumed
        stream came first).
    :ivar int resumed: Bytes of the rest of an earlier push's stream that
        was cut short, sent first (``zfs send -t``), or 0.
    """
    name = attr.ib()
    target = attr.ib()
    target_node_id = attr.ib()
    snapshot = attr.ib()
    base = attr.ib()
    bytes_sent = attr.ib()
    resumed = attr.ib(default=0)


class IVolumeService(Interface):
    """
    The volumes of one node.  Every method returns a ``Deferred``; failures
    are :class:`flocker.volume.VolumeError` subclasses with a one-line
    message.  A name that is not a safe name fails with ``UnsafeName``
    before anything is done.
    """

    node_id = Attribute("This node's stable identity (``str``).")

    def volumes():
        """
        :return: ``Deferred`` firing with a ``PVector`` of
            :class:`VolumeInfo`, sorted by name.
        """

    def list():
        """
        :return: ``Deferred`` firing with a ``PVector`` of
            ``flocker._model.VolumeState``, sorted by name (what the node
            agent's report needs).
        """

    def create(name, maximum_size=None):
        """
        Create a volume owned by this node; if this node already owns it,
        only make its maximum size ``maximum_size``.

        :param str name: Volume name.
        :param maximum_size: Quota in bytes, or ``None`` for no limit.
        :return: ``Deferred`` firing with its :class:`VolumeInfo`.
        :raises VolumeExists: A copy owned by another node is here.
        :raises InvalidSize: ``maximum_size`` is not ``None`` or a
            positive number of bytes.
        :raises OutOfSpace: The pool is full.
        """

    def mountpoint(name):
        """
        :param str name: Volume name.
        :return: ``Deferred`` firing with the ``FilePath`` where this node's
            copy is mounted (owned or not).
        :raises NoSuchVolume: No copy here.
        """

    def mount(name):
        """
        Make this node's owned volume ready for a container: writable and
        mounted.  Call it before starting the application.

        :param str name: Volume name.
        :return: ``Deferred`` firing with the mountpoint ``FilePath``.
        :raises NotOwner: This node does not own the volume.
        """

    def seed(name, archive):
        """
        Fill this node's owned volume with a seed archive (see
        :mod:`flocker.volume._seed`), once: only if the volume holds
        nothing yet.  Running it again after it filled the volume changes
        nothing.

        :param str name: Volume name.
        :param bytes archive: An uncompressed tar archive of files and
            directories.
        :return: ``Deferred`` firing with ``True`` if the volume was
            filled, ``False`` if it held something and was left alone.
        :raises NotOwner: This node does not own the volume.
        :raises StreamRejected: The archive is not an acceptable seed.
        :raises OutOfSpace: The volume or pool is full.
        """

    def snapshot(name):
        """
        :param str name: A volume this node owns.
        :return: ``Deferred`` firing with the new snapshot's name.
        """

    def push(name, target, progress=None, snapshot=None):
        """
        Send the volume's current data to node ``target`` (full the first
        time, incremental afterwards); the target keeps a read-only copy it
        does not own.  This node stays the owner.

        :param str name: A volume this node owns.
        :param str target: Address of the receiving node.
        :param progress: ``None``, or an object with ``update(sent, total)``
            (``total`` may be ``None``) and ``finish()``.
        :param snapshot: ``None`` to send the data as it is now (a snapshot
            is taken), else the name of a snapshot :meth:`snapshot` took to
            send instead: one snapshot then serves several targets, which
            all end up holding the same one.
        :return: ``Deferred`` firing with a :class:`PushResult`.
        :raises SnapshotNotFound: The volume has no such ``snapshot``.
        :raises NotOwner: This node does not own it, or the target does.
        :raises TargetUnreachable: The target cannot be reached.
        :raises OutOfSpace: The target's pool is full.
        """

    def prepare_push(name, target):
        """
        Start opening the receiving end of the next push of ``name`` to
        ``target`` now, so that push (a hand-off's final increment, once
        the application stopped) does not wait for it.  The next push there
        (:meth:`push` or :meth:`handoff`) uses it; one not used within
        ``PREPARED_SECONDS`` is closed, and the target's copy is left as it
        was.  A push that finds it failed to open opens another.  While it
        is open, the target's copy takes no other push.

        :param str name: Volume name.
        :param str target: Address of the node the push will go to.
        :return: ``Deferred`` firing with ``None`` at once (before it is
            open): it never fails for the target's sake.
        """

    def handoff(name, target, progress=None, acquire=True):
        """
        Send the last increment to ``target`` and make it the owner; this
        node keeps a read-only copy.  The application must be stopped.
        Running it again after an interruption finishes the job.

        :param bool acquire: Have the target take ownership (step 4) too.
            ``False`` leaves that to the caller, who then calls
            :meth:`acquire` on the target with the result's ``snapshot``
            and ``target_node_id`` (a deploy client holding a session with
            the target does it faster than this node can over SSH).
        :return: ``Deferred`` firing with a :class:`PushResult`.
        :raises HandoffConflict: The volume was handed to another node.
        """

    def acquire(name, snapshot=None, node_id=None, epoch=None):
        """
        Make this node the owner of its copy (step 4 of a hand-off, or a
        failover).  Does nothing more than :meth:`mount`'s writability if
        already owned, except that an owner given a later ``epoch`` (it won
        a later claim of its own application) takes that epoch.  Taking
        ownership starts a new epoch.

        :param str name: Volume name.
        :param snapshot: If given, the copy's newest snapshot must be this.
        :param node_id: If given, this node's identity must be this.
        :param epoch: The new ownership's epoch (a failover gives one above
            every copy's it knows), or ``None`` for one above this copy's.
            Given, a receive of the volume under way from a sender at an
            earlier epoch (the owner the failover replaces, maybe dead
            mid-stream) is abandoned rather than waited for; the copy keeps
            its last complete snapshot.
        :return: ``Deferred`` firing with the new :class:`VolumeInfo`.
        :raises StreamRejected: The copy does not end with ``snapshot``.
        :raises HandoffConflict: This node is not ``node_id``, or ``epoch``
            is not above the copy's.
        """

    def fence(name, owner, epoch):
        """
        Learn that volume ``name`` belongs to node ``owner`` at ``epoch``
        (a failover made it so).

        A copy here that follows an earlier epoch records the new owner and
        epoch, so it refuses pushes from the old owner from then on.  A
        copy this node owns at an earlier epoch is stale: it is set aside,
        renamed ``NAME.flocker-recovery-eEPOCH-TIME`` (read-only,
        unmounted, never destroyed by Flocker), with every write it holds;
        this node then has no copy of the volume.  A receive of the volume
        under way from a sender at an earlier epoch is abandoned rather than
        waited for, as for :meth:`acquire`.

        :param str name: Volume name.
        :param str owner: The owning node's identity.
        :param int epoch: The ownership's epoch.
        :return: ``Deferred`` firing with the name the stale copy was
            renamed to, or ``None`` if nothing was set aside.
        :raises HandoffConflict: This node owns the volume at ``epoch`` or
            later (then it is the owner, not stale).
        :raises VolumeInUse: The stale copy is still in use.
        """

    def delete(name):
        """
        Destroy this node's copy of a volume and its snapshots.

        :return: ``Deferred`` firing with ``None``.
        :raises VolumeInUse: It is mounted into a container or files in it
            are open.
        """

    def prune_snapshots(name, dry_run=False):
        """
        Destroy Flocker's snapshots that no next incremental needs (all but
        the newest and those other nodes were last sent).  Snapshots that
        Flocker did not take are left alone.

        :param bool dry_run: Only report what would be destroyed.
        :return: ``Deferred`` firing with a ``PVector`` of snapshot names.
        """

    def settled():
        """
        Wait for the work this service queued to run after an operation
        had answered: the pruning of snapshots that a push, a receive or
        an acquire found no next incremental needs, which none of them
        waits for.  A process about to exit waits for this first.

        :return: ``Deferred`` firing with ``None`` once nothing queued so
            far (nor queued by it) is left.
        """

    def orphans(keep):
        """
        :param keep: Names of volumes a deployment still uses.
        :return: ``Deferred`` firing with a ``PVector`` of
            :class:`VolumeInfo` of every other volume on this node.
        """



def volume_info(dataset, node_id, pushed_to=()):
    """
    :param Dataset dataset: A copy of a volume as the pool lists it.
    :param str node_id: This node's identity.
    :param pushed_to: The addresses its ``flocker:pushed`` records.
    :return: The :class:`VolumeInfo` describing it.
    """
    owner = dataset.owner
    return VolumeInfo(
        name=dataset.name, owner=owner, owned=owner == node_id,
        size=dataset.size,
        maximum_size=dataset.maximum_size, snapshots=dataset.snapshots,
        mountpoint=dataset.mountpoint, epoch=dataset.epoch,
        pushed_to=pushed_to)


