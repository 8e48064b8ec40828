"""
What a node accepts in a ZFS stream from another node: the receive policy.

A ``zfs send`` stream can carry dataset properties (``zfs send -p``, and
every replication stream, ``-R``).  Received by root with plain ``zfs
receive``, they would apply on this node: a ``mountpoint`` of the sender's
choosing (a directory on root's ``PATH``, say), ``setuid``, ``exec``,
``devices``, ``canmount``, ``flocker:owner``.  So every receive of Flocker,
on every path, is hardened here:

* the stream's first record (its ``BEGIN`` record, :data:`BEGIN_RECORD_SIZE`
  bytes) is read and checked before ``zfs receive`` sees anything
  (:func:`check_begin_record`): a plain filesystem stream (what ``zfs send
  [-i BASE] POOL/NAME@SNAP`` writes) of the announced snapshot, full or
  incremental as announced, with no payload (but for a stream announced
  as resuming a receive, ``zfs send -t``, whose BEGIN record carries where
  it resumes); compound streams (the only
  kind that carries properties), raw or clone streams, volumes (zvols) and
  anything unreadable are refused, with nothing received;
* ``zfs receive`` always gets ``-u`` (nothing is mounted by a receive) and,
  where this node's ZFS has them (OpenZFS 2.x; zfs-fuse has neither),
  ``-x PROPERTY`` for each of :data:`EXCLUDED_PROPERTIES` and ``-o`` for
  each of :data:`FORCED_PROPERTIES` (:func:`receive_flags`): belt and
  braces over the first check;
* at most :func:`stream_limit` bytes are passed on: a stream over the
  volume's size limit (the pool's free space when the volume names none)
  is cut off and the receive fails, changing nothing (ZFS applies a
  stream atomically);
* a sender that goes silent for :data:`RECEIVE_IDLE_TIMEOUT` seconds (no
  byte of its request or stream) is given up on the same way: its partial
  stream is discarded, the copy stays as it was and the volume is free
  again for a fence or take-over.  A node that dies or is cut off mid-push
  never says so (no FIN reaches this node, and sshd's TCP keep-alives take
  hours), and the receive holds its volume's lock meanwhile.

Pure: :meth:`flocker.volume._zfs.ZFSPool.receive` does the reading.
"""

import struct

from ._capabilities import receive_options
from ._errors import StreamRejected

__all__ = [
    "BEGIN_RECORD_SIZE", "EXCLUDED_PROPERTIES", "FORCED_PROPERTIES",
    "RECEIVE_IDLE_TIMEOUT", "StreamTooLarge", "sender_silent",
    "receive_abandoned", "check_begin_record", "receive_flags",
    "stream_limit",
]

#: Size of a ZFS stream record (``dmu_replay_record_t``), the first of
#: which is the stream's ``BEGIN`` record.
BEGIN_RECORD_SIZE = 312

#: Properties a stream's values of are never taken (``zfs receive -x``,
#: where available): where and whether the copy is mounted, what its files
#: may do, how it is shared, and Flocker's own records.
EXCLUDED_PROPERTIES = (
    "mountpoint", "canmount", "setuid", "exec", "devices", "xattr",
    "sharenfs", "sharesmb", "zoned", "overlay", "acltype", "aclinherit",
    "snapdir", "quota", "refquota", "reservation", "refreservation",
    "atime", "keylocation", "flocker:owner", "flocker:pushed",
    "flocker:node-id",
)

#: Properties every received copy gets (``zfs receive -o``, where
#: available): a received copy is read-only until it is acquired.
FORCED_PROPERTIES = (("readonly", "on"),)

# drr_type of a BEGIN record; the stream magic; header types (the low two
# bits of drr_versioninfo); the objset type of a filesystem; the clone flag.
_DRR_BEGIN = 0
_MAGIC = 0x2F5BACBAC
_SUBSTREAM = 1
_FILESYSTEM = 2
_FLAG_CLONE = 1
# Feature flag of raw (encrypted, as stored) streams.
_FEATURE_RAW = 1 << 24
# Feature flag of a stream resuming an interrupted receive (``zfs send -t``):
# its BEGIN record has a payload saying where it resumes.
_FEATURE_RESUMING = 1 << 20

# drr_type, drr_payloadlen, drr_magic, drr_versioninfo, drr_creation_time,
# drr_type (objset), drr_flags, drr_toguid, drr_fromguid, drr_toname.
_BEGIN = "IIQQQIIQQ256s"

#: How far a stream may go over the volume's maximum size: its records'
#: headers and metadata (a stream of incompressible data is about 1% larger
#: than the data).
_OVERHEAD_FRACTION = 4
_OVERHEAD_BYTES = 16 * 1024 * 1024


#: The most seconds a receive waits for the next byte from its sender
#: (request line or stream) before abandoning it.  A live sender's ``zfs
#: send`` never pauses this long, even on a loaded node, and the sender's
#: own side gives up on a silent receiver after 15 s (ssh's
#: ``ServerAliveInterval`` 5 with ``ServerAliveCountMax`` 3, or the agent's
#: TCP_USER_TIMEOUT): so a fence or take-over of the volume waits at most
#: about this long behind the receive of a dead sender.
RECEIVE_IDLE_TIMEOUT = 20


class StreamTooLarge(StreamRejected):
    """
    A stream went over the size limit of the volume it was for.
    """


def sender_silent(name, seconds):
    """
    :param str name: The volume being received.
    :param seconds: How long the sender stayed silent.
    :return: The :class:`StreamRejected` of a receive abandoned because
        its sender went silent.
    """
    return StreamRejected(
        "the sender of %s sent nothing for %s s (a dead or cut-off node); "
        "the receive was abandoned and this node's copy is unchanged" % (
            name, seconds))


def receive_abandoned(name, reason):
    """
    :param str name: The volume being received.
    :param str reason: Why the receive was abandoned (one line).
    :return: The :class:`StreamRejected` of a receive abandoned on request
        (a failover superseding its sender).
    """
    return StreamRejected(
        "the receive of %s was abandoned: %s; this node's copy is "
        "unchanged" % (name, reason))


def check_begin_record(record, snapshot, incremental, resuming=False):
    """
    Check a stream's first record before anything of it is received.

    :param bytes record: The stream's first :data:`BEGIN_RECORD_SIZE` bytes
        (fewer if it ended sooner).
    :param str snapshot: The snapshot the sender announced.
    :param bool incremental: Whether the sender announced an incremental
        stream.
    :param bool resuming: Whether the sender announced a stream resuming
        an interrupted receive (``zfs send -t``): its BEGIN record is then
        flagged so and carries a payload (where it resumes), which ``zfs
        receive -s`` reads; no other stream may.
    :raises StreamRejected: Unless ``record`` begins a plain filesystem
        stream of ``snapshot`` without properties, incremental and resuming
        as announced (see the module documentation); the message says why.
    """
    if len(record) < BEGIN_RECORD_SIZE:
        raise StreamRejected("the stream ended before its first record")
    for order in "<>":
        fields = struct.unpack(order + _BEGIN, record)
        if fields[2] == _MAGIC:
            break
    else:
        raise StreamRejected("not a ZFS stream (no stream magic)")
    (kind, payload, _, versioninfo, _, objset, flags, _, fromguid,
     toname) = fields
    if kind != _DRR_BEGIN:
        raise StreamRejected("not a ZFS stream (no BEGIN record)")
    resumes = bool((versioninfo >> 2) & _FEATURE_RESUMING)
    if resumes != bool(resuming):
        raise StreamRejected(
            "the stream %s an interrupted receive, %s" % (
                "resumes" if resumes else "does not resume",
                "which was not announced" if resumes else
                "as was announced"))
    if versioninfo & 0x3 != _SUBSTREAM or (payload and not resumes):
        raise StreamRejected(
            "the stream carries properties or other streams (zfs send -p "
            "or -R); only plain streams of one snapshot are received")
    if (versioninfo >> 2) & _FEATURE_RAW:
        raise StreamRejected("raw (zfs send -w) streams are not received")
    if objset != _FILESYSTEM:
        raise StreamRejected("the stream is not of a filesystem")
    if flags & _FLAG_CLONE:
        raise StreamRejected("clone streams are not received")
    if bool(fromguid) != bool(incremental):
        raise StreamRejected("the stream is %s, not %s as announced" % (
            "incremental" if fromguid else "full",
            "incremental" if incremental else "full"))
    name = toname.split(b"\0", 1)[0].decode("utf-8", "replace")
    if name.rpartition("@")[2] != snapshot:
        raise StreamRejected("the stream is of snapshot %r, not %r as "
                             "announced" % (name.rpartition("@")[2],
                                            snapshot))


def receive_flags(capabilities, force):
    """
    The flags of every ``zfs receive`` Flocker runs (options only).

    :param capabilities: The receiving pool's
        :class:`~flocker.volume._capabilities.ZFSCapabilities`, or ``None``
        when not known: no ``-x``/``-o`` then (zfs-fuse has neither), the
        stream check alone keeps properties out.
    :param bool force: ``-F``: roll back changes made since the latest
        snapshot before applying an incremental stream.
    :return: ``list`` of ``str``: ``-F`` if ``force``, ``-u`` always,
        ``-s`` where the pool's ZFS can resume a receive (a cut stream then
        leaves a ``receive_resume_token`` instead of nothing), then
        ``-x``/``-o`` where supported (see
        :func:`~flocker.volume._capabilities.receive_options`).
    """
    if capabilities is None:
        return receive_options(None, force=force, unmounted=True)
    return receive_options(capabilities, force=force, unmounted=True,
                           resumable=True, exclude=EXCLUDED_PROPERTIES,
                           override=dict(FORCED_PROPERTIES))


def stream_limit(maximum_size, available=None):
    """
    :param maximum_size: The volume's maximum size in bytes, as this node
        knows it, or ``None`` for none.
    :param available: The receiving pool's free bytes, or ``None`` if not
        known: the limit when the volume names no maximum size (a copy
        can never hold more than the pool has room for).
    :return: The most bytes a stream for it may have (the size, a quarter
        more and 16 MiB for the stream's own records: the uncompressed
        records of a copy filled to its limit fit), or ``None`` only when
        neither size is known.
    """
    size = maximum_size if maximum_size is not None else available
    if size is None:
        return None
    return size + size // _OVERHEAD_FRACTION + _OVERHEAD_BYTES
