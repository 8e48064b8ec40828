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

Push protocol (one SSH connection, ``flocker-volume --eliot-task TASK
receive NAME`` on the target, JSON lines on its standard output)::

    target -> {"protocol": 1, "node_id": ID, "pool": POOL,
               "snapshots": [oldest..newest], "zfs": CAPABILITIES}
              (or {"error": KIND, "message": ...} if it owns the volume)
    source -> {"snapshot": S, "base": B or null, "owner": SOURCE_ID,
               "maximum_size": N or null, "epoch": E}
    source -> the ``zfs send [-i B] pool/NAME@S`` stream, then EOF
    target -> {"received": S, "node_id": ID}   (or an error line)

``CAPABILITIES`` is what the target's ZFS and pool offer
(:class:`~flocker.volume._capabilities.ZFSCapabilities`); the source adds
the ``zfs send`` flags both sides support (``-L``, ``-e``, ``-c`` between
OpenZFS pools; none towards zfs-fuse or a node that does not say).

Interleaved with those, the target writes ``{"eliot": MESSAGE}`` lines: its
log, continuing the push's eliot task (``TASK``) from its start.  The
source passes them on to its own log once the target's command has exited,
so the push, both ends of it, is one tree.

The source takes a fresh snapshot ``S`` and picks as base ``B`` the newest of
its snapshots the target also has (a full stream if none).  The target
applies an incremental with ``zfs receive -F`` after rolling back to ``B`` if
needed (a follower never holds anything the owner lacks).  A full stream into
an existing follower is received as ``NAME.flocker-recv`` and swapped in, so a
cut connection at any point leaves the target's previous copy intact (ZFS
applies each stream atomically).  Streams are received unmounted (``-u``),
and the target works out its copy's new state from the old one and the
stream rather than asking ZFS again; it sets ``readonly``, ``atime`` and
``refquota`` together and ``flocker:owner`` after them, last.  It confirms
only then, so as soon as the confirmation arrives (without waiting for the
target's command to exit) the source records ``S`` as what the target has
(``flocker:pushed``: address, identity, pool and snapshot of each recent
target), or, in a hand-off, goes on with steps 3 and 4 below; it collects
the command's exit (and the rest of its log) meanwhile.
While the stream flows, the source prunes its snapshots older than ``B``
that no other target was last sent; the target keeps only its newest.
That is all any next incremental needs.  Snapshots Flocker did not take
(not named ``flocker-...``) are never pruned.

Hand-off protocol (the application is already stopped on the source; a
volume still in use is refused)::

    1. source: readonly=on on its copy            (still owner, now frozen)
    2. source: push (final snapshot F, small increment)
    3. source: flocker:owner = target's identity  (source is no longer owner)
       and unmount its copy                       (now a follower)
    4. target: acquire NAME with snapshot F and node id T
       checks it is node T and its newest snapshot is F, then sets
       flocker:owner = T, readonly=off and mounts it afresh
                                                  (target is the owner)

Step 4 is run by whoever drives the hand-off: by the source itself
(``flocker-volume acquire NAME --snapshot F --node-id T`` over SSH) for
``handoff(..., acquire=True)``, or, for ``acquire=False``, by the caller
with ``acquire`` on the target; the deploy client does the latter
(``release-volume`` on the source, then ``acquire-volume`` on the target,
through the sessions it already holds with both), which spares a process
start on the target while the application is down.

At no point are there two writable owners: the source stops being writable
(1) and stops being the owner (3) before the target becomes either (4).  A
crash before 3 leaves the source the (read-only) owner: running the hand-off
again repeats 1-4 (``mount`` makes the source writable again if the
application is to stay).  A crash after 3 leaves no owner; running the
hand-off again sees that the source's copy names the target and resumes at
step 4, whose checks make it safe to repeat.
"""

import errno
import json
import os
import re
import time
import uuid
from contextlib import nullcontext

import attr
from eliot import Action, Logger
from pyrsistent import pmap, pvector
from twisted.internet.defer import (
    CancelledError, DeferredList, DeferredLock, inlineCallbacks,
    succeed,
)
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.threads import deferToThreadPool
from twisted.python.filepath import FilePath
from zope.interface import Attribute, Interface, implementer

from .._context import in_current_action
from .._model import VolumeState
from ._errors import (
    HandoffConflict, HostKeyRejected, NoSuchVolume, NotOwner, OutOfSpace, PoolMissing,
    RemoteError, StreamRejected, TargetUnreachable, UnsafeName,
    VolumeExists, VolumeInUse, ZFSError, error_from_kind,
)
from ._logging import (
    ACQUIRE_VOLUME, CREATE_VOLUME, DELETE_VOLUME, FENCE_VOLUME,
    HANDOFF_VOLUME, LATE_REMOTE_FAILURE,
    PRUNE_SNAPSHOTS, PUSH_VOLUME, RECEIVE_VOLUME, RECOVER_VOLUME,
    REMOTE_COMMAND, SEED_VOLUME, SNAPSHOT_VOLUME,
)
from ._process import (
    LineTooLong, close_quietly, make_pipe, pump, read_prefix, spawn,
)
from ._capabilities import ZFSCapabilities, send_options
from ._epoch import (
    FIRST_EPOCH, check_sender_epoch, recovery_name, taken_epoch,
)
from ._policy import NODE_IDENTITY, check_receive, recorded_owner
from ._seed import seed_entries
from ._stream import stream_limit
from ._zfs import (
    EPOCH, NODE_ID, OWNER, PUSHED, Dataset, ZFSPool, check_maximum_size,
    check_pool_name, check_snapshot_name, check_volume_name,
)

__all__ = [
    "IVolumeService", "VolumeInfo", "PushResult", "VolumeService",
    "SSHRemote", "open_volume_service", "processes_using", "check_address",
    "snapshot_name", "PROTOCOL_VERSION",
]

#: Version of the push protocol spoken by ``flocker-volume receive``.
PROTOCOL_VERSION = 1

#: Seconds an idle shared connection to another node stays open (see
#: :class:`SSHRemote`): longer than the gap between a move's pre-copy and
#: its final increment.
CONTROL_PERSIST = 60

#: Names of the snapshots Flocker takes (and prunes) start with this.
SNAPSHOT_PREFIX = "flocker-"

# Node addresses: IP literals or host names, never starting with "-" (ssh
# would read it as an option).
_ADDRESS = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.:-]{0,252}\Z")


# Words sent to the remote shell by ssh: nothing a shell would interpret.
_REMOTE_WORD = re.compile(r"\A[A-Za-z0-9_./:@=,-]+\Z")

#: Seconds a pushing node waits for ``flocker-volume receive`` on the target
#: to say what it has (it normally takes well under a few seconds).
HEADER_TIMEOUT = 120

# How many per-node entries flocker:pushed keeps (user property values are
# limited to 1024 bytes; the newest entries matter).
_PUSHED_ENTRIES = 6


def check_address(address):
    """
    :param str address: A node address.
    :raises UnsafeName: Unless it is an IP address or host name.
    """
    if not (isinstance(address, str) and _ADDRESS.match(address)
            and ".." not in address):
        raise UnsafeName("%r is not a node address (IP address or host name)"
                         % (address,))


def _check_node_id(node_id):
    if not (isinstance(node_id, str) and NODE_IDENTITY.match(node_id)):
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
    :ivar int bytes_sent: Size of the stream.
    """
    name = attr.ib()
    target = attr.ib()
    target_node_id = attr.ib()
    snapshot = attr.ib()
    base = attr.ib()
    bytes_sent = attr.ib()


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

    def push(name, target, progress=None):
        """
        Send the volume's current data to node ``target`` (full the first
        time, incremental afterwards); the target keeps a read-only copy it
        does not own.  This node stays the owner.

        :param str name: A volume this node owns.
        :param str target: Address of the receiving node.
        :param progress: ``None``, or an object with ``update(sent, total)``
            (``total`` may be ``None``) and ``finish()``.
        :return: ``Deferred`` firing with a :class:`PushResult`.
        :raises NotOwner: This node does not own it, or the target does.
        :raises TargetUnreachable: The target cannot be reached.
        :raises OutOfSpace: The target's pool is full.
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
        already owned.  Taking ownership starts a new epoch.

        :param str name: Volume name.
        :param snapshot: If given, the copy's newest snapshot must be this.
        :param node_id: If given, this node's identity must be this.
        :param epoch: The new ownership's epoch (a failover gives one above
            every copy's it knows), or ``None`` for one above this copy's.
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
        this node then has no copy of the volume.

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

    def orphans(keep):
        """
        :param keep: Names of volumes a deployment still uses.
        :return: ``Deferred`` firing with a ``PVector`` of
            :class:`VolumeInfo` of every other volume on this node.
        """


class SSHRemote(object):
    """
    Runs ``flocker-volume`` on another node with the ``ssh`` command.

    The remote side's shell joins the words, so every word is checked to
    contain nothing a shell would interpret.  Host keys are always checked
    (``StrictHostKeyChecking=yes``) and nothing ever prompts
    (``BatchMode=yes``).
    """

    def __init__(self, identity=None, known_hosts=None, config=None,
                 user="root", port=None, command=("flocker-volume",),
                 connect_timeout=10, only_known_hosts=False,
                 control_path=None):
        """
        :param identity: Private key file, or ``None`` for ssh's default.
        :param known_hosts: Known hosts file, or ``None`` for ssh's default.
        :param bool only_known_hosts: Trust only ``known_hosts``, not the
            system-wide file too (for the node key's known_hosts, which names
            exactly the host keys the operator's client verified).
        :param config: ssh configuration file, or ``None``.
        :param str user: Remote user.
        :param port: SSH port or ``None``.
        :param command: The ``flocker-volume`` command on the nodes.
        :param int connect_timeout: Seconds before an unreachable node is
            reported.
        :param control_path: ``None``, or an ssh ``ControlPath`` (with
            ``%C``): the connection to a node is then kept open
            :data:`CONTROL_PERSIST` seconds after its last command and
            shared by the commands that follow, so the final increment of a
            move does not pay for a new connection while its application is
            down.
        """
        self._options = ["-o", "BatchMode=yes",
                         "-o", "StrictHostKeyChecking=yes",
                         "-o", "ConnectTimeout=%d" % (connect_timeout,),
                         "-o", "LogLevel=ERROR", "-T", "-x", "-e", "none"]
        if config is not None:
            self._options[:0] = ["-F", config]
        if identity is not None:
            self._options += ["-i", identity, "-o", "IdentitiesOnly=yes"]
        if known_hosts is not None:
            self._options += ["-o", "UserKnownHostsFile=" + known_hosts]
            if only_known_hosts:
                self._options += ["-o", "GlobalKnownHostsFile=/dev/null"]
        self.known_hosts = known_hosts
        if control_path is not None:
            self._options += ["-o", "ControlMaster=auto",
                              "-o", "ControlPath=" + control_path,
                              "-o", "ControlPersist=%d" % (CONTROL_PERSIST,)]
        if port is not None:
            self._options += ["-p", str(int(port))]
        self._user = user
        self._command = list(command)

    def argv(self, address, arguments, command=None):
        """
        :param str address: Node address.
        :param arguments: Arguments of the remote command.
        :param command: The remote command's words (``("zfs",)``), or
            ``None`` for ``flocker-volume``.
        :return: The argument vector to run locally.
        :raises UnsafeName: For an unsafe address or word.
        """
        check_address(address)
        words = (self._command if command is None else list(command)) + list(
            arguments)
        for word in words:
            if not _REMOTE_WORD.match(word):
                raise UnsafeName("%r cannot be passed to a remote node" % (
                    word,))
        return (["ssh"] + self._options + ["%s@%s" % (self._user, address)]
                + words)


def processes_using(dataset, mountpoint, proc="/proc"):
    """
    Find processes using a mounted dataset: those that see it mounted
    somewhere other than its own mountpoint (a container's bind mount, in
    another mount namespace) and those with their working directory, root or
    an open file inside it.

    This only reads ``/proc`` (no disk I/O), so it is cheap enough to call
    from the reactor thread.

    :param str dataset: Full dataset name (``pool/volume``).
    :param str mountpoint: The dataset's own mountpoint.
    :param str proc: Where procfs is mounted.
    :return: ``set`` of process ids.
    """
    users = set()
    seen_namespaces = set()
    source = dataset.encode("utf-8")
    inside = mountpoint.rstrip("/") + "/"
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        pid = int(entry)
        base = os.path.join(proc, entry)
        try:
            namespace = os.readlink(os.path.join(base, "ns", "mnt"))
        except OSError:
            namespace = None
        if namespace is None or namespace not in seen_namespaces:
            try:
                with open(os.path.join(base, "mountinfo"), "rb") as f:
                    mountinfo = f.read()
            except OSError:
                mountinfo = b""
            if _mounted_elsewhere(mountinfo, source, mountpoint):
                users.add(pid)
            elif namespace is not None:
                seen_namespaces.add(namespace)
        links = ["cwd", "root"]
        try:
            links += [os.path.join("fd", fd)
                      for fd in os.listdir(os.path.join(base, "fd"))]
        except OSError:
            pass
        for link in links:
            try:
                target = os.readlink(os.path.join(base, link))
            except OSError:
                continue
            if target == mountpoint or target.startswith(inside):
                users.add(pid)
                break
    return users


def _mounted_elsewhere(mountinfo, source, mountpoint):
    for line in mountinfo.splitlines():
        before, _, after = line.partition(b" - ")
        after = after.split(b" ")
        before = before.split(b" ")
        if len(after) < 2 or len(before) < 5 or after[1] != source:
            continue
        where = before[4].decode("utf-8", "replace").replace("\\040", " ")
        if where != mountpoint:
            return True
    return False


def _read_line(reactor, fd, limit=65536):
    """
    Read one line from ``fd`` without blocking the reactor and without
    reading past it (the rest is a ZFS stream for another process).

    :return: ``Deferred`` firing with the line (no newline) or ``None`` at
        end of input.
    """
    return read_prefix(reactor, fd, limit, b"\n")


def _continue_task(task):
    """
    :param task: A serialized eliot task id from the sender, or ``None``.
    :return: A context manager continuing the sender's task (so both
        nodes' logs form one tree), or doing nothing without a valid id.
    """
    if isinstance(task, str) and task:
        try:
            return Action.continue_task(task_id=task)
        except Exception:
            pass
    return nullcontext()


def _info(dataset, node_id):
    owner = dataset.owner
    return VolumeInfo(
        name=dataset.name, owner=owner, owned=owner == node_id,
        size=dataset.size,
        maximum_size=dataset.maximum_size, snapshots=dataset.snapshots,
        mountpoint=dataset.mountpoint, epoch=dataset.epoch,
        pushed_to=sorted(_peers(dataset)))


def _write_seed(root, entries):
    """
    Write seed ``entries`` under directory ``root`` unless it holds
    something already.

    :return: ``True`` if written, ``False`` if ``root`` was not empty.
    :raises OutOfSpace: The file system is full.
    :raises StreamRejected: An entry clashes with another (a file where a
        directory is).
    """
    if os.listdir(root):
        return False
    try:
        for entry in entries:
            target = os.path.join(root, *entry.path.split("/"))
            if entry.data is None:
                os.makedirs(target, exist_ok=True)
                os.chmod(target, entry.mode | 0o700)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # O_EXCL|O_NOFOLLOW: nothing written so far can redirect it.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | os.O_NOFOLLOW, entry.mode)
                with os.fdopen(fd, "wb") as f:
                    f.write(entry.data)
    except OSError as e:
        if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
            raise OutOfSpace("volume full while seeding: %s" % (
                e.strerror,))
        raise StreamRejected("seed archive refused: %s: %s" % (
            e.filename, e.strerror))
    return True


@inlineCallbacks
def _all_or_first_failure(deferreds):
    """
    Wait for every one of ``deferreds`` (none is left running), then fail
    with the first failure among them, if any.

    :return: ``Deferred`` firing with the list of their results.
    """
    results = yield DeferredList(list(deferreds), consumeErrors=True)
    for ok, value in results:
        if not ok:
            value.raiseException()
    return [value for _, value in results]


def _latest_common(ours, theirs):
    theirs = set(theirs)
    for snapshot in reversed(ours):
        if snapshot in theirs:
            return snapshot
    return None


@attr.s(frozen=True)
class _Peer(object):
    """
    What this node knows about a node it pushed a volume to: its identity,
    its pool, and the last snapshot it confirmed having.
    """
    address = attr.ib()
    node_id = attr.ib()
    pool = attr.ib()
    snapshot = attr.ib()


def _peers(dataset):
    """
    :return: ``PMap`` of address to :class:`_Peer` recorded in the
        dataset's ``flocker:pushed`` property (``address/id/pool/snapshot``
        entries separated by commas; none of the parts can hold either).
    """
    peers = {}
    for entry in (dataset.get(PUSHED) or "").split(","):
        parts = entry.split("/")
        if len(parts) == 4:
            peers[parts[0]] = _Peer(*parts)
    return pmap(peers)


def _encode_peers(peers):
    newest = sorted(peers.values(), key=lambda peer: peer.snapshot)
    return ",".join("/".join(attr.astuple(peer))
                    for peer in newest[-_PUSHED_ENTRIES:])


def _forward_log(ended):
    """
    Pass the ``{"eliot": MESSAGE}`` lines of a remote ``flocker-volume``'s
    standard output on to this process's log: they continue a task of this
    node (the push's), so the push, both ends of it, is one tree.

    :param ProcessResult ended: How the remote command ended.
    """
    for line in ended.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("eliot"),
                                                    dict):
            Logger().write(message["eliot"])


def _last_line(data):
    lines = [line.strip() for line in data.decode("utf-8", "replace")
             .splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _remote_error(target, result, default_kind=RemoteError,
                  known_hosts=None):
    """
    Turn a failed remote command into the right error: the typed error it
    printed, ``HostKeyRejected`` if ssh did not trust the target's host key
    (``known_hosts`` names the file checked, if known),
    ``TargetUnreachable`` if ssh could not connect otherwise, or a
    ``RemoteError`` with its last line of standard error.
    """
    for line in reversed(result.stdout.splitlines()):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "error" in message:
            return error_from_kind(message["error"], "node %s: %s" % (
                target, message.get("message", "")))
    detail = _last_line(result.stderr) or "exit code %s" % (
        result.exit_code,)
    if result.exit_code == 255 and b"Host key verification failed" in (
            result.stderr):
        return HostKeyRejected(
            "node %s: its SSH host key is not the one %s lists for it; "
            "refusing to send to it (run flocker-deploy to refresh the "
            "nodes' known hosts, after checking the node)" % (
                target, known_hosts or "the known hosts file"))
    if result.exit_code == 255:
        return TargetUnreachable("cannot reach node %s: %s" % (target, detail))
    return default_kind("node %s: %s" % (target, detail))


@implementer(IVolumeService)
class VolumeService(object):
    """
    The volumes of this node's ZFS pool.
    """

    def __init__(self, reactor, pool, node_id, remote, env, clock=None,
                 in_use=processes_using, listing=None):
        """
        Use :func:`open_volume_service` rather than this directly: it checks
        the pool and learns the node's identity.

        :param reactor: Reactor running processes and timers.
        :param ZFSPool pool: This node's pool.
        :param str node_id: This node's identity.
        :param remote: How to run ``flocker-volume`` on another node
            (:class:`SSHRemote` or another object with its ``argv``
            method).  A remote command exiting with 255 is taken as ssh
            failing to connect.
        :param dict env: Environment for ``ssh`` and the remote command.
        :param clock: ``IReactorTime`` naming snapshots; reactor if ``None``.
        :param in_use: ``processes_using``-compatible callable.
        :param listing: ``None``, or what ``pool.list()`` just answered:
            the first operation needing a listing uses it instead of asking
            again if it starts in this same reactor turn (as the command
            run by ``flocker-volume`` right after opening the pool does).
        """
        self._reactor = reactor
        self.pool = pool
        self.node_id = node_id
        self._remote = remote
        self._env = dict(env)
        self._clock = reactor if clock is None else clock
        self._in_use = in_use
        self._locks = {}
        # Volumes this service made writable and has not made read-only,
        # received into or deleted since.
        self._writable = set()
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
        return _remote_error(target, result, default_kind,
                             getattr(self._remote, "known_hosts", None))

    def _locked(self, name, function, *args):
        # Operations on one volume from one process never interleave.
        lock = self._locks.setdefault(name, DeferredLock())
        return lock.run(function, *args)

    @inlineCallbacks
    def _get(self, name):
        check_volume_name(name)
        dataset = yield self.pool.get(name)
        if dataset is None:
            raise NoSuchVolume("volume %s does not exist in pool %s" % (
                name, self.pool.name))
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
        infos = [_info(dataset, self.node_id) for dataset in datasets
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
            return _info(dataset, self.node_id)

    def mount(self, name):
        check_volume_name(name)
        return self._locked(name, self._mount, name)

    @inlineCallbacks
    def _mount(self, name):
        dataset = yield self._owned(name)
        path = yield self._mount_dataset(dataset)
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
                self._reactor, self._reactor.getThreadPool(), _write_seed,
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
            users = self._in_use(self.pool.dataset(name), dataset.mountpoint)
            if users:
                raise VolumeInUse(
                    "volume %s is in use (mounted into a container or open "
                    "by process %s); stop the application first" % (
                        name, ", ".join(str(pid) for pid in sorted(users))))
            self._writable.discard(name)
            yield self.pool.destroy(name)

    def prune_snapshots(self, name, dry_run=False):
        check_volume_name(name)
        return self._locked(name, self._prune_by_name, name, dry_run)

    @inlineCallbacks
    def _prune_by_name(self, name, dry_run):
        dataset = yield self._get(name)
        destroyed = yield self._prune(dataset, dry_run)
        return destroyed

    @inlineCallbacks
    def _prune(self, dataset, dry_run=False, keep=None):
        """
        Destroy Flocker's snapshots of ``dataset`` that no next incremental
        needs: all but the newest (or, if ``keep`` is given, all but those
        in it) and, on the owner, the last one each target confirmed.

        :return: ``Deferred`` firing with the ``PVector`` of names destroyed
            (or that would be, with ``dry_run``).
        """
        with PRUNE_SNAPSHOTS(volume=dataset.name) as action:
            # Only Flocker's own snapshots: others belong to whoever took
            # them.
            ours = [snapshot for snapshot in dataset.snapshots
                    if snapshot.startswith(SNAPSHOT_PREFIX)]
            keep = set(ours[-1:] if keep is None else keep)
            if dataset.owner == self.node_id:
                keep |= set(peer.snapshot for peer in _peers(dataset).values())
            doomed = [snapshot for snapshot in ours if snapshot not in keep]
            if not dry_run:
                for snapshot in doomed:
                    yield self.pool.destroy_snapshot(dataset.name, snapshot)
            action.add_success_fields(destroyed=doomed)
        return pvector(doomed)

    @inlineCallbacks
    def orphans(self, keep):
        keep = set(keep)
        infos = yield self.volumes()
        return pvector(info for info in infos if info.name not in keep)

    # Moving between nodes

    def push(self, name, target, progress=None):
        check_volume_name(name)
        check_address(target)
        return self._locked(name, self._push_owned, name, target, progress)

    @inlineCallbacks
    def _push_owned(self, name, target, progress):
        dataset = yield self._owned(name)
        result, exited = yield self._push(dataset, target, progress)
        yield exited
        return result

    @inlineCallbacks
    def _push(self, dataset, target, progress, record=True):
        """
        Push ``dataset`` to ``target``; with ``record``, remember what the
        target now has (the next push's base), which a hand-off skips: the
        old owner never pushes the volume again, and a copy received later
        forgets the record anyway.

        The target confirms only a copy completely received and prepared,
        so this returns as soon as it has confirmed (and this node recorded
        it), while the target's command may still be exiting: what the
        caller does next need not wait for that (a hand-off's next steps
        included), but the caller waits for ``exited`` before it returns,
        so that the target's log is passed on (one tree) and no command is
        left behind.

        :return: ``Deferred`` firing with ``(PushResult, exited)``;
            ``exited`` is a ``Deferred`` that never fails.
        """
        name = dataset.name
        with PUSH_VOLUME(volume=name, target=target) as action:
            result, pool, exited = yield self._push_negotiated(
                dataset, target, progress, action)
            if record:
                peers = _peers(dataset).set(target, _Peer(
                    address=target, node_id=result.target_node_id,
                    pool=pool, snapshot=result.snapshot))
                yield self.pool.set(name, PUSHED, _encode_peers(peers))
            action.add_success_fields(snapshot=result.snapshot,
                                      base=result.base,
                                      bytes=result.bytes_sent,
                                      node_id=result.target_node_id)
        return result, exited

    def _start_remote(self, argv):
        """
        Start a remote command whose standard input is a pipe we write.

        :return: ``(remote, stdin_write)``.
        """
        stdin_read, stdin_write = make_pipe()
        try:
            transport, remote = spawn(self._reactor, argv, self._env,
                                      stdin=stdin_read)
        except BaseException:
            close_quietly(stdin_read, stdin_write)
            raise
        close_quietly(stdin_read)
        remote.transport = transport
        return remote, stdin_write

    @inlineCallbacks
    def _header(self, remote, target):
        """
        Wait for the receiving side's first message, at most
        :data:`HEADER_TIMEOUT` seconds (a stuck node must not stall a
        deploy forever); kill the remote command if it does not come.

        :return: ``Deferred`` firing with the message or ``None`` if the
            remote command ended without one.
        """
        waiting = self._read_message(remote, target)
        timer = self._clock.callLater(HEADER_TIMEOUT, waiting.cancel)
        try:
            header = yield waiting
        except CancelledError:
            try:
                remote.transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            raise TargetUnreachable(
                "node %s did not answer within %d seconds" % (
                    target, HEADER_TIMEOUT))
        finally:
            if timer.active():
                timer.cancel()
        return header

    @inlineCallbacks
    def _send(self, dataset, snapshot, base, total, sink, progress, answer,
              options=()):
        """
        Run ``zfs send`` and pump its stream into ``sink`` (taken over),
        pruning on the side the snapshots this stream makes unnecessary;
        wait for all of it and for ``answer``.

        :param answer: ``Deferred`` firing with the receiving side's answer
            (never failing).
        :param options: ``zfs send`` flags (see
            :func:`~flocker.volume._capabilities.send_options`).
        :return: ``Deferred`` firing with ``(pumped, sent, answer)``: the
            ``(success, value)`` pairs of the pump (bytes) and of ``zfs
            send``, and what ``answer`` fired with.
        """
        stream_read, stream_write = make_pipe()
        try:
            sent = self.pool.send(dataset.name, snapshot, base, stream_write,
                                  options=options)
        except BaseException:
            close_quietly(stream_read, stream_write, sink)
            raise
        close_quietly(stream_write)
        watcher = None if progress is None else (
            lambda count: progress.update(count, total))
        pumped = pump(self._reactor, stream_read, sink, watcher)
        # Meanwhile: the snapshots older than the base are not needed by
        # this target any more (nor by others, unless they were sent there).
        pruned = self._prune(dataset, keep=[base])
        results = yield DeferredList([pumped, sent, answer, pruned],
                                     consumeErrors=True)
        return results[0], results[1], results[2][1]

    @inlineCallbacks
    def _push_negotiated(self, dataset, target, progress, action):
        """
        Push through ``flocker-volume receive`` on the target, which says
        what it has, refuses if it owns the volume, receives atomically and
        makes its copy a follower (see the module docstring).

        The push is over as soon as the target confirms (it does so only
        once its copy is complete and prepared), not when its command has
        exited too: that takes a Python shutdown and ssh's, a good part of
        a small push's time.

        :return: ``Deferred`` firing with ``(PushResult, pool, exited)``:
            ``exited`` fires (never failing) once the target's command has
            exited and its log was passed on; a failure it reports after
            confirming is logged, not raised, since the copy is there.
        """
        name = dataset.name
        # The receiving side continues this push's task from its start, so
        # all of its work (opening the pool included) is in this tree.
        task = action.serialize_task_id().decode("ascii")
        remote, stdin_write = self._start_remote(self._remote.argv(
            target, ["--eliot-task", task, "receive", name]))
        try:
            # Found out while the remote command starts up, as is the
            # snapshot taken.
            capabilities = self.pool.capabilities()
            snapshot = yield self._take_snapshot(dataset)
            ours = yield capabilities
            header = yield self._header(remote, target)
            if header is None or "error" in header:
                raise self._remote_error(target, (yield remote.ended))
            if header.get("protocol") != PROTOCOL_VERSION:
                raise RemoteError(
                    "node %s speaks push protocol %r, not %d" % (
                        target, header.get("protocol"), PROTOCOL_VERSION))
            their_id, pool = header.get("node_id"), header.get("pool")
            _check_node_id(their_id)
            check_pool_name(pool)
            if their_id == self.node_id:
                raise HandoffConflict(
                    "node %s is this node (%s); a volume cannot be "
                    "pushed to itself" % (target, their_id))
            base = _latest_common(dataset.snapshots, header["snapshots"])
            request = {
                "snapshot": snapshot, "base": base,
                "owner": self.node_id,
                "maximum_size": dataset.maximum_size,
                "epoch": dataset.epoch,
            }
            os.write(stdin_write,
                     json.dumps(request).encode("utf-8") + b"\n")
            total = dataset.size if base is None else None
            sink, stdin_write = stdin_write, None
            # Only what the target's ZFS and pool take (a node that does
            # not say gets a plain stream).
            options = send_options(
                ours, ZFSCapabilities.from_wire(header.get("zfs")))
            (pump_ok, count), (send_ok, send_error), answer = (
                yield self._send(dataset, snapshot, base, total, sink,
                                 progress, self._read_message(remote, target),
                                 options))
        finally:
            if stdin_write is not None:
                close_quietly(stdin_write)
            if progress is not None:
                progress.finish()
        confirmed = isinstance(answer, dict) and "received" in answer
        if not confirmed:
            # An error line, or nothing: how the command ended says why.
            ended = yield remote.ended
            _forward_log(ended)
            if ended.exit_code != 0:
                raise self._remote_error(target, ended)
        if not send_ok:
            send_error.raiseException()
        if not pump_ok:
            raise RemoteError("node %s: stream interrupted: %s" % (
                target, count.getErrorMessage()))
        if not (confirmed and answer.get("received") == snapshot):
            raise RemoteError("node %s did not confirm receiving %s" % (
                target, snapshot))
        # In the push's action: a late failure is logged under it.
        exited = remote.ended.addCallback(
            in_current_action(self._remote_exited), target, name)
        return (PushResult(
            name=name, target=target, target_node_id=their_id,
            snapshot=snapshot, base=base, bytes_sent=count), pool, exited)

    def _remote_exited(self, ended, target, name):
        """
        Collect how ``flocker-volume receive`` ended after it confirmed:
        pass its log on, and log (not raise) a failure.
        """
        _forward_log(ended)
        if ended.exit_code != 0:
            LATE_REMOTE_FAILURE.log(
                volume=name, target=target,
                reason=self._remote_error(target, ended).message)

    @inlineCallbacks
    def _read_message(self, remote, target):
        """
        :return: ``Deferred`` firing with the remote command's next protocol
            message (a ``dict``), or ``None`` at the end of its output;
            failing with :class:`RemoteError` naming ``target`` when it sent
            a line too long to take (the command is killed).
        """
        while True:
            try:
                line = yield remote.next_line()
            except LineTooLong as e:
                raise RemoteError(
                    "node %s sent a line longer than %d bytes; connection "
                    "dropped" % (target, e.limit))
            if line is None:
                return None
            try:
                message = json.loads(line)
            except ValueError:
                # Anything a login script printed before our command ran.
                continue
            if isinstance(message, dict) and "eliot" not in message:
                return message

    def receive(self, name, stream, emit, caller=None):
        """
        The receiving end of a push (``flocker-volume receive NAME``): speak
        the protocol described in this module's docstring.

        :param str name: Volume name.
        :param int stream: File descriptor carrying the sender's request
            line followed by the ZFS stream (standard input).
        :param emit: Callable given each protocol message (a ``dict``) to
            send back (one JSON line on standard output).
        :param caller: The pushing node's identity as the transport
            established it (the node key's forced command), or ``None``
            when the operator runs it: see :mod:`flocker.volume._policy`.
        :return: ``Deferred`` firing with the received snapshot's name.
        :raises NotOwner: This node owns the volume (never overwritten),
            or ``caller`` is a node other than the one this node's copy
            follows.
        :raises StreamRejected: The stream does not apply (missing base,
            corrupt or cut-short stream); the copy is unchanged.
        """
        check_volume_name(name)
        return self._locked(name, self._receive, name, stream, emit, caller)

    @inlineCallbacks
    def _receive(self, name, stream, emit, caller):
        # Asked while the pool is listed: the sender chooses its send
        # flags from the answer.
        capabilities = self.pool.capabilities()
        dataset = yield self._recover(name)
        capabilities = yield capabilities
        check_receive(self.node_id, name, dataset is not None,
                      None if dataset is None else dataset.owner, caller)
        ours = list(dataset.snapshots) if dataset is not None else []
        emit({"protocol": PROTOCOL_VERSION, "node_id": self.node_id,
              "pool": self.pool.name, "snapshots": ours,
              "zfs": capabilities.to_wire()})
        line = yield _read_line(self._reactor, stream)
        if line is None:
            raise StreamRejected("the sender of %s closed the connection "
                                 "before sending a stream" % (name,))
        request = self._parse_request(line)
        request["owner"] = recorded_owner(caller, request["owner"])
        if dataset is not None:
            try:
                check_sender_epoch(name, dataset.epoch, request.get("epoch"))
            except ValueError as e:
                raise NotOwner(str(e))
        with _continue_task(request.get("task")):
            snapshot = yield self._apply(dataset, name, request, stream)
        emit({"received": snapshot, "node_id": self.node_id})
        return snapshot

    def _parse_request(self, line):
        try:
            request = json.loads(line)
            snapshot, base = request["snapshot"], request["base"]
            check_snapshot_name(snapshot)
            if base is not None:
                check_snapshot_name(base)
            _check_node_id(request["owner"])
            maximum_size = request.get("maximum_size")
            if maximum_size is not None and not (
                    isinstance(maximum_size, int) and maximum_size > 0):
                raise ValueError(maximum_size)
            epoch = request.get("epoch")
            if epoch is not None and not (
                    type(epoch) is int and 0 <= epoch < 10 ** 18):
                raise ValueError(epoch)
        except (ValueError, KeyError, TypeError, UnsafeName):
            raise StreamRejected("the sender's request is not valid: %r" % (
                line[:200],))
        return request

    @inlineCallbacks
    def _apply(self, dataset, name, request, stream):
        snapshot, base = request["snapshot"], request["base"]
        self._writable.discard(name)
        with RECEIVE_VOLUME(volume=name) as action:
            action.add_success_fields(snapshot=snapshot, base=base)
            # What the copy is after the receive follows from what it was
            # and the stream (which carries no properties: no -p), so zfs is
            # not asked again.  Followers are not mounted: nothing uses
            # them, and with zfs-fuse a mount kept across receives can show
            # files as they were before (stale kernel page cache); so
            # nothing is received mounted (-u).
            suffix = ""
            if base is None:
                if dataset is not None:
                    # A full stream never lands on an existing copy: it
                    # is received beside it and swapped in when complete.
                    suffix = ".flocker-recv"
                yield self._zfs_receive(name, stream, suffix, False, request)
                received = Dataset(name=name, properties={"mounted": "no"},
                                   snapshots=[snapshot])
            else:
                if dataset is None or base not in dataset.snapshots:
                    raise StreamRejected(
                        "stream does not apply: this node's copy of %s does "
                        "not have snapshot %s" % (name, base))
                if dataset.snapshots[-1] != base:
                    # -r: the later snapshots go too.
                    yield self.pool.rollback(name, base)
                yield self._zfs_receive(name, stream, "", True, request)
                if dataset.mounted:
                    # A follower mounted by hand (-u left it mounted):
                    # unmounted before its properties change, so none of
                    # them remounts it.
                    yield self.pool.unmount(name)
                kept = dataset.snapshots[
                    :dataset.snapshots.index(base) + 1]
                received = attr.evolve(
                    dataset, snapshots=kept.append(snapshot),
                    properties=dataset.properties.set("mounted", "no"))
            received = yield self._make_follower(received, suffix, request)
            if suffix:
                yield self.pool.rename(name, "", ".flocker-old", mount=False,
                                       mounted=dataset.mounted)
                yield self.pool.rename(name, suffix, "", mount=False,
                                       mounted=False)
                yield self.pool.destroy(name, ".flocker-old", mounted=False)
            yield self._prune(received)
        return snapshot

    @inlineCallbacks
    def _zfs_receive(self, name, stream, suffix, force, request):
        # Known by now (the header carried them): no command.
        capabilities = yield self.pool.capabilities()
        try:
            yield self.pool.receive(
                name, stream, request["snapshot"], request["base"],
                suffix=suffix, force=force,
                limit=stream_limit(request.get("maximum_size")),
                capabilities=capabilities)
        except (OutOfSpace, PoolMissing):
            raise
        except ZFSError as e:
            raise StreamRejected("stream does not apply to %s: %s" % (
                name, e.message))

    @inlineCallbacks
    def _make_follower(self, dataset, suffix, request):
        """
        Make a received copy a read-only follower naming the sender as owner.
        Only properties not already right are set (each is one command).

        :param Dataset dataset: The received copy (named without
            ``suffix``) as it is.
        :param str suffix: Where it was received.
        :return: ``Deferred`` firing with the copy as it now is.
        """
        name = dataset.name
        owner = request["owner"]
        # A copy already naming this owner was made a follower before
        # (readonly is set before the owner, always), so an incremental
        # receive costs no extra commands.  (readonly itself cannot be read
        # back on zfs-fuse while mounted.)
        prepared = (dataset.get(OWNER) == owner
                    and dataset.get("atime") == "off")
        wanted = [] if prepared else [("readonly", "on"), ("atime", "off")]
        maximum_size = request.get("maximum_size")
        if dataset.maximum_size != maximum_size:
            wanted.append(("refquota", str(maximum_size or "none")))
        epoch = request.get("epoch")
        if epoch is not None:
            wanted.append((EPOCH, str(epoch)))
        changes = [self.pool.set(name, key, value, suffix)
                   for key, value in wanted if dataset.get(key) != value]
        if dataset.get(PUSHED) is not None:
            # What this node once pushed no longer matters to a follower.
            changes.append(self.pool.inherit(name, PUSHED, suffix))
        # Independent of each other, so run together: one command's time.
        yield _all_or_first_failure(changes)
        # The owner goes last, once the rest is done: recovery takes a copy
        # naming its owner as completely received and prepared.
        if dataset.get(OWNER) != owner:
            yield self.pool.set(name, OWNER, owner, suffix)
        properties = dataset.properties.discard(PUSHED).set(
            OWNER, owner).set("refquota", str(maximum_size or 0))
        if epoch is not None:
            properties = properties.set(EPOCH, str(epoch))
        if not prepared:
            properties = properties.set("atime", "off")
        return attr.evolve(dataset, properties=properties)

    @inlineCallbacks
    def _recover(self, name):
        """
        Finish or undo a swap interrupted by a crash (see the module
        docstring); :return: the volume's :class:`Dataset` or ``None``.
        """
        # One listing of the pool instead of a command per name: this is on
        # the path of every hand-off, while the application is down.
        datasets = {dataset.name: dataset
                    for dataset in (yield self._list())}
        current = datasets.get(name)
        incoming = datasets.get(name + ".flocker-recv")
        old = datasets.get(name + ".flocker-old")
        if incoming is None and old is None:
            return current
        with RECOVER_VOLUME(volume=name) as action:
            complete = (incoming is not None and incoming.owner is not None
                        and incoming.snapshots)
            if current is not None:
                outcome = "kept current copy"
            elif complete:
                yield self.pool.rename(name, ".flocker-recv", "",
                                       mount=False)
                incoming = None
                outcome = "finished swap"
            elif old is not None:
                yield self.pool.rename(name, ".flocker-old", "",
                                       mount=False)
                old = None
                outcome = "restored previous copy"
            else:
                outcome = "discarded incomplete copy"
            if incoming is not None:
                yield self.pool.destroy(name, ".flocker-recv")
            if old is not None:
                yield self.pool.destroy(name, ".flocker-old")
            action.add_success_fields(outcome=outcome)
        current = yield self.pool.get(name)
        return current

    def handoff(self, name, target, progress=None, acquire=True):
        check_volume_name(name)
        check_address(target)
        return self._locked(name, self._handoff, name, target, progress,
                            acquire)

    @inlineCallbacks
    def _handoff(self, name, target, progress, acquire):
        with HANDOFF_VOLUME(volume=name, target=target):
            dataset = yield self._get(name)
            if dataset.owner == self.node_id:
                users = self._in_use(self.pool.dataset(name),
                                     dataset.mountpoint)
                if users:
                    raise VolumeInUse(
                        "volume %s is still in use (process %s); stop the "
                        "application before handing it off" % (
                            name, ", ".join(str(pid) for pid in
                                            sorted(users))))
                self._writable.discard(name)
                yield self.pool.set(name, "readonly", "on")
                # Steps 3 and 4 as soon as the target confirmed step 2, not
                # once its command has exited too: the application is down.
                result, exited = yield self._push(dataset, target, progress,
                                                  record=False)
                # The copy left here follows the target at the epoch the
                # target is about to take (one more than this copy's), so
                # a failover later numbers its own epoch above it.  Set
                # together with the owner: no extra wait while the
                # application is down.
                yield _all_or_first_failure([
                    self.pool.set(name, EPOCH, str(dataset.epoch + 1)),
                    self.pool.set(name, OWNER, result.target_node_id)])
            elif dataset.owner and dataset.snapshots:
                # Step 3 already happened: resume at step 4.
                result = PushResult(
                    name=name, target=target,
                    target_node_id=dataset.owner,
                    snapshot=dataset.snapshots[-1], base=None, bytes_sent=0)
                exited = succeed(None)
            else:
                raise NotOwner("volume %s is not owned by this node (%s)" % (
                    name, self.node_id))
            # A follower stays unmounted (see _apply).
            yield self.pool.unmount(name)
            if acquire:
                yield self._remote_acquire(name, target,
                                           result.target_node_id,
                                           result.snapshot)
            yield exited
        return result

    @inlineCallbacks
    def _remote_acquire(self, name, target, node_id, snapshot):
        argv = self._remote.argv(target, [
            "acquire", name, "--snapshot", snapshot, "--node-id", node_id,
            "--json"])
        with REMOTE_COMMAND(argv=argv):
            _, remote = spawn(self._reactor, argv, self._env)
            result = yield remote.ended
        if result.exit_code != 0:
            raise self._remote_error(target, result, HandoffConflict)

    def acquire(self, name, snapshot=None, node_id=None, epoch=None):
        check_volume_name(name)
        if snapshot is not None:
            check_snapshot_name(snapshot)
        return self._locked(name, self._acquire, name, snapshot, node_id,
                            epoch)

    @inlineCallbacks
    def _acquire(self, name, snapshot, node_id, epoch=None):
        with ACQUIRE_VOLUME(volume=name, expected_snapshot=snapshot):
            if node_id is not None and node_id != self.node_id:
                raise HandoffConflict(
                    "this node is %s, not %s: volume %s was handed to "
                    "another node" % (self.node_id, node_id, name))
            dataset = yield self._recover(name)
            if dataset is None:
                raise NoSuchVolume("volume %s does not exist in pool %s" % (
                    name, self.pool.name))
            if dataset.owner != self.node_id:
                latest = dataset.snapshots[-1] if dataset.snapshots else None
                if snapshot is not None and latest != snapshot:
                    raise StreamRejected(
                        "this node's copy of %s ends with snapshot %s, not "
                        "%s; push the final increment first" % (
                            name, latest, snapshot))
                new_epoch = taken_epoch(name, dataset.epoch, epoch)
                # Before the owner, which is the commit: a copy naming this
                # node as owner always has its epoch.
                yield self.pool.set(name, EPOCH, str(new_epoch))
                yield self.pool.set(name, OWNER, self.node_id)
                if dataset.mounted:
                    # Mounted afresh: a mount that was there while streams
                    # were received may serve stale pages from the kernel's
                    # cache.
                    yield self.pool.unmount(name)
                dataset = attr.evolve(
                    dataset, properties=dataset.properties.set(
                        OWNER, self.node_id).set("mounted", "no").set(
                            EPOCH, str(new_epoch)))
            yield self._mount_dataset(dataset)
            # The new owner keeps only what its next pushes can use.
            destroyed = yield self._prune(dataset)
        # What the commands above made of the dataset, without asking zfs
        # again (a hand-off waits for this).
        return _info(attr.evolve(
            dataset, properties=dataset.properties.set("mounted", "yes"),
            snapshots=[snapshot for snapshot in dataset.snapshots
                       if snapshot not in destroyed]), self.node_id)

    def fence(self, name, owner, epoch):
        check_volume_name(name)
        _check_node_id(owner)
        return self._locked(name, self._fence, name, owner, epoch)

    @inlineCallbacks
    def _fence(self, name, owner, epoch):
        with FENCE_VOLUME(volume=name, owner=owner, epoch=epoch) as action:
            dataset = yield self.pool.get(name)
            if dataset is None:
                action.add_success_fields(set_aside=None)
                return None
            if dataset.owner == self.node_id:
                if dataset.epoch >= epoch:
                    raise HandoffConflict(
                        "this node owns volume %s at epoch %d, not older "
                        "than epoch %d: it is not stale" % (
                            name, dataset.epoch, epoch))
                users = self._in_use(self.pool.dataset(name),
                                     dataset.mountpoint)
                if users:
                    raise VolumeInUse(
                        "the stale copy of volume %s is in use (process "
                        "%s); stop its application first" % (
                            name, ", ".join(str(p) for p in sorted(users))))
                aside = recovery_name(name, dataset.epoch, time.strftime(
                    "%Y%m%dT%H%M%SZ", time.gmtime(self._clock.seconds())))
                # Read-only first: nothing writes to it once set aside.
                yield self.pool.set(name, "readonly", "on")
                self._writable.discard(name)
                yield self.pool.rename(name, "", aside[len(name):],
                                       mount=False, mounted=dataset.mounted)
                action.add_success_fields(set_aside=aside)
                return aside
            if dataset.epoch < epoch:
                # Epoch before owner, as everywhere.
                yield self.pool.set(name, EPOCH, str(epoch))
                if dataset.owner != owner:
                    yield self.pool.set(name, OWNER, owner)
            action.add_success_fields(set_aside=None)
            return None


@inlineCallbacks
def open_volume_service(reactor, pool_name, env, remote=None, clock=None,
                        node_id=None):
    """
    Open this node's volume service: check the pool exists and learn the
    node's identity (generated and stored in the pool the first time).

    :param reactor: The reactor.
    :param str pool_name: This node's pool.
    :param dict env: Environment for child processes (``PATH``, ``HOME``).
    :param remote: See :class:`VolumeService`; an :class:`SSHRemote` with
        ssh's defaults if ``None``.
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
    _check_node_id(node_id)
    return VolumeService(
        reactor, pool, node_id, SSHRemote() if remote is None else remote,
        env, clock=clock, listing=listing)

