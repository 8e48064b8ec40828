"""
Flocker's volumes: ZFS datasets owned by one node at a time, pushed to other
nodes (only what changed after the first time) and handed off with their
applications.

The public API is re-exported here; the implementation lives in private
modules (``_zfs``: the pool, ``_service``: ownership and moves, ``_memory``:
the in-memory fake, ``_nodekey``: the node-to-node SSH key on a node,
``_forced``: the forced command that key may run, ``_stream``: what a
receive accepts, ``script``: ``flocker-volume``).
"""

from ._errors import (
    VolumeError, UnsafeName, PoolMissing, ZFSUnavailable, ZFSError,
    OutOfSpace, DatasetBusy, NoSuchVolume, VolumeExists, NotOwner,
    VolumeInUse, TargetUnreachable, HostKeyRejected, StreamRejected,
    HandoffConflict, RemoteError, InvalidSize,
)
from ._zfs import ZFSPool
from ._service import (
    IVolumeService, VolumeInfo, PushResult, VolumeService, SSHRemote,
    open_volume_service,
)
from ._memory import MemoryNetwork, MemoryVolumeService
from ._seed import seed_archive, seed_entries
from ._nodekey import (
    NodeKeyStore, authorized_keys_line, replace_marked_lines,
    default_node_key_store, UnsafeForcedCommand, NodeKeyError, NodeKeyRemote,
)
from ._forced import CommandRefused, allowed_command
from ._stream import StreamTooLarge, check_begin_record, receive_flags

__all__ = [
    "VolumeError", "UnsafeName", "PoolMissing", "ZFSUnavailable", "ZFSError",
    "OutOfSpace", "DatasetBusy", "NoSuchVolume", "VolumeExists", "NotOwner",
    "VolumeInUse", "TargetUnreachable", "StreamRejected", "HandoffConflict",
    "RemoteError", "HostKeyRejected", "InvalidSize",
    "ZFSPool",
    "IVolumeService", "VolumeInfo", "PushResult", "VolumeService",
    "SSHRemote", "open_volume_service",
    "MemoryNetwork", "MemoryVolumeService",
    "seed_archive", "seed_entries",
    "NodeKeyStore", "authorized_keys_line",
    "replace_marked_lines", "default_node_key_store", "UnsafeForcedCommand",
    "NodeKeyError", "NodeKeyRemote",
    "CommandRefused", "allowed_command",
    "StreamTooLarge", "check_begin_record", "receive_flags",
]
