"""
Flocker's volumes: ZFS datasets owned by one node at a time, pushed to other
nodes (only what changed after the first time) and handed off with their
applications.

The public API is re-exported here; the implementation lives in private
modules (``_zfs``: the pool; ``_service``: the volume service, put together
from ``_api`` (its interface and values), ``_push`` and ``_receive`` (the
two ends of a push), ``_ownership`` (hand-off and acquire), ``_remote``
(reaching another node) and ``_inuse`` (which processes use a volume);
``_memory``: the in-memory fake; ``_nodekey``: the node's own node-to-node
SSH key and the other nodes' keys it trusts; ``_forced``: the forced
command those keys may run; ``_policy``: who
may push what; ``_stream``: what a receive accepts; ``script``:
``flocker-volume``).
"""

from ._errors import (
    VolumeError, UnsafeName, PoolMissing, ZFSUnavailable, ZFSError,
    OutOfSpace, DatasetBusy, NoSuchVolume, VolumeExists, NotOwner,
    VolumeInUse, TargetUnreachable, HostKeyRejected, AuthenticationRefused,
    StreamRejected, HandoffConflict, RemoteError, InvalidSize, StaleEpoch,
    SnapshotNotFound,
)
from ._zfs import ZFSPool
from ._api import IVolumeService, VolumeInfo, PushResult
from ._service import VolumeService, open_volume_service
from ._memory import MemoryNetwork, MemoryVolumeService
from ._seed import seed_archive, seed_entries
from ._nodekey import (
    NodeKeyStore, authorized_keys_line, replace_marked_lines,
    default_node_key_store, UnsafeForcedCommand, NodeKeyError,
)
from ._forced import CommandRefused, peer_request
from ._stream import StreamTooLarge, check_begin_record, receive_flags

__all__ = [
    "VolumeError", "UnsafeName", "PoolMissing", "ZFSUnavailable", "ZFSError",
    "OutOfSpace", "DatasetBusy", "NoSuchVolume", "VolumeExists", "NotOwner",
    "VolumeInUse", "TargetUnreachable", "StreamRejected", "HandoffConflict",
    "RemoteError", "HostKeyRejected", "AuthenticationRefused",
    "InvalidSize", "StaleEpoch", "SnapshotNotFound",
    "ZFSPool",
    "IVolumeService", "VolumeInfo", "PushResult", "VolumeService",
    "open_volume_service",
    "MemoryNetwork", "MemoryVolumeService",
    "seed_archive", "seed_entries",
    "NodeKeyStore", "authorized_keys_line",
    "replace_marked_lines", "default_node_key_store", "UnsafeForcedCommand",
    "NodeKeyError",
    "CommandRefused", "peer_request",
    "StreamTooLarge", "check_begin_record", "receive_flags",
]
