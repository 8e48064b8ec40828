"""
The kinds of failure the volume service reports.

Each is one type, raised where the problem is found and rendered once, as a
single line, by ``flocker-volume`` (or by whatever library uses the service).
The message is the whole explanation; no traceback is needed to act on it.
"""

__all__ = [
    "VolumeError", "UnsafeName", "PoolMissing", "ZFSUnavailable", "ZFSError",
    "OutOfSpace", "DatasetBusy", "NoSuchVolume", "VolumeExists", "NotOwner",
    "VolumeInUse", "TargetUnreachable", "HostKeyRejected",
    "AuthenticationRefused", "StreamRejected",
    "HandoffConflict", "RemoteError", "InvalidSize", "StaleEpoch",
    "SnapshotNotFound", "AgentError", "AgentUnavailable", "error_from_kind",
]


class VolumeError(Exception):
    """
    Base class of every failure the volume service reports deliberately.

    :ivar str message: One line saying what went wrong.
    """

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message

    def __str__(self):
        return self.message


class UnsafeName(VolumeError):
    """
    A volume name, snapshot name or node address is not a safe token (it
    could name something outside the pool, or be read as an option).
    """


class ZFSError(VolumeError):
    """
    A ``zfs`` or ``zpool`` command failed for a reason without its own type.

    :ivar failure: The underlying ``ProcessFailed`` (argument vector, exit
        code, standard error), or ``None``.
    """

    def __init__(self, message, failure=None):
        VolumeError.__init__(self, message)
        self.failure = failure


class PoolMissing(ZFSError):
    """
    The node's storage pool does not exist.
    """


class ZFSUnavailable(ZFSError):
    """
    ZFS cannot be used at all (no ``zfs`` command, or no zfs-fuse daemon).
    """


class OutOfSpace(ZFSError):
    """
    The pool is full or the volume's maximum size was reached.
    """


class DatasetBusy(ZFSError):
    """
    zfs-fuse refused an operation because the dataset is (still) busy; the
    pool retries these a few times before giving up with this error.
    """


class NoSuchVolume(VolumeError):
    """
    The pool has no volume of that name.
    """


class VolumeExists(VolumeError):
    """
    A volume of that name exists but cannot be used for the request (for
    example a copy owned by another node when asked to create it).
    """


class NotOwner(VolumeError):
    """
    The operation needs the volume to be owned by this node (or, for a
    receive, not owned by the receiving node).
    """


class StaleEpoch(NotOwner):
    """
    A push was refused because the receiving copy follows a later ownership
    epoch than the sender's: the volume failed over, and the sender's copy
    is stale (see :mod:`flocker.volume._epoch`).
    """


class SnapshotNotFound(VolumeError):
    """
    The volume has no snapshot of the name a push was asked to send.
    """


class VolumeInUse(VolumeError):
    """
    The volume is mounted into a container or has files open, so it is not
    deleted.
    """


class TargetUnreachable(VolumeError):
    """
    The target node could not be reached (SSH could not connect or log in).
    """


class HostKeyRejected(TargetUnreachable):
    """
    ssh refused the target node's host key: it is not in the known hosts
    file pushes check, or differs from the key listed there.
    """


class AuthenticationRefused(TargetUnreachable):
    """
    The target node's sshd refused this node's key (it is not, or no
    longer, authorised there).
    """


class InvalidSize(VolumeError):
    """
    A maximum size that is not a positive number of bytes (zero would mean
    no limit to ZFS, a negative one is refused by it).
    """


class StreamRejected(VolumeError):
    """
    A stream or hand-off does not apply to the receiving copy (missing base
    snapshot, corrupt stream, copy not up to date).
    """


class HandoffConflict(VolumeError):
    """
    A hand-off cannot proceed without risking two owners (the volume was
    handed to a different node, or the node answering is not that node).
    """


class RemoteError(VolumeError):
    """
    The other node's end of a push or hand-off failed for an unexpected
    reason.
    """


class AgentError(VolumeError):
    """
    This node's agent could not do what ``flocker-volume`` asked of it; the
    message is the agent's one-line reason.
    """


class AgentUnavailable(AgentError):
    """
    ``flocker-volume`` cannot reach this node's agent (not running, or its
    socket not where it is looked for).
    """


_KINDS = {cls.__name__: cls for cls in [
    VolumeError, UnsafeName, ZFSError, PoolMissing, ZFSUnavailable,
    OutOfSpace, DatasetBusy, NoSuchVolume, VolumeExists, NotOwner,
    StaleEpoch, VolumeInUse, TargetUnreachable, HostKeyRejected,
    AuthenticationRefused, StreamRejected, HandoffConflict, RemoteError, InvalidSize, SnapshotNotFound,
    AgentError, AgentUnavailable,
]}


def error_from_kind(kind, message):
    """
    Rebuild an error reported by another node.

    :param str kind: The class name the remote side reported.
    :param str message: Its message.
    :return: An instance of the matching :class:`VolumeError` subclass, or
        :class:`RemoteError` for an unknown kind.
    """
    return _KINDS.get(kind, RemoteError)(message)
