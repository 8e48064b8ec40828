"""
Eliot action and message types of the volume package.

Every operation that touches a machine (each ``zfs``/``zpool`` command, each
service operation, each remote ``flocker-volume`` command) runs inside one of
these actions, so a node's log shows what was done to which volume and why a
step failed.
"""

from eliot import ActionType, Field, MessageType, fields

__all__ = [
    "FENCE_VOLUME",
    "ZFS_COMMAND", "BUSY_RETRY", "REMOTE_COMMAND",
    "LATE_REMOTE_FAILURE", "KEY_SWITCHED_RETRY",
    "CREATE_VOLUME", "SEED_VOLUME", "SNAPSHOT_VOLUME", "PUSH_VOLUME", "RECEIVE_VOLUME",
    "PREPARE_PUSH", "PREPARED_PUSH_DROPPED",
    "HANDOFF_VOLUME", "HANDOFF_CLEANUP", "ACQUIRE_VOLUME", "DELETE_VOLUME",
    "PRUNE_SNAPSHOTS", "PRUNE_SKIPPED",
    "RECOVER_VOLUME", "AGENT_TRANSFER",
]


def _text(key, description):
    return Field.for_types(key, [str], description)


def _optional_text(key, description):
    return Field.for_types(key, [str, None], description)


_ARGV = Field(u"argv", list, u"The argument vector that was run.")
_VOLUME = _text(u"volume", u"The volume's name.")
_TARGET = _text(u"target", u"Address of the node receiving the volume.")
_SNAPSHOT = _text(u"snapshot", u"A snapshot name.")
_BASE = _optional_text(
    u"base", u"Snapshot an incremental stream starts from, or null for a "
    u"full stream.")
_BYTES = Field.for_types(u"bytes", [int], u"Stream bytes sent or received.")
_RESUMED_BYTES = Field.for_types(
    u"resumed", [int], u"Bytes of the rest of a stream cut short earlier, "
    u"sent first (zfs send -t), or 0.")
_RESUMED = Field.for_types(
    u"resumed", [bool], u"Whether the stream resumed a receive cut short "
    u"(zfs receive -s).")
_NODE = _text(u"node_id", u"Stable identity of a node.")

#: One ``zfs`` or ``zpool`` command.
ZFS_COMMAND = ActionType(
    u"flocker:volume:zfs", [_ARGV], [],
    u"A zfs or zpool command run on this node's pool.")

#: zfs-fuse answered "busy"; the command will be run again after a delay.
BUSY_RETRY = MessageType(
    u"flocker:volume:busy_retry",
    [_ARGV, Field.for_types(u"delay", [float], u"Seconds until the retry.")],
    u"zfs-fuse reported a busy dataset right after a mount change.")

#: The receiving end failed after it had confirmed a complete copy:
#: the push stands (the copy is there), so this is only logged.
LATE_REMOTE_FAILURE = MessageType(
    u"flocker:volume:late_remote_failure",
    [_VOLUME, _TARGET, _text(u"reason", u"What the target said.")],
    u"The receiving side failed after confirming the copy; the push stands.")

#: A push refused the key this node switched from during a rotation tries
#: once more with the new one.
KEY_SWITCHED_RETRY = MessageType(
    u"flocker:volume:key_switched_retry",
    [_TARGET, _text(u"reason", u"How the target refused the old key.")],
    u"The target refused the node key this node had just switched from; "
    u"the push logs in once more with the new key.")

#: ``flocker-volume`` run on another node (over SSH).
REMOTE_COMMAND = ActionType(
    u"flocker:volume:remote", [_ARGV], [],
    u"A flocker-volume command run on another node.")

#: ``flocker-volume push`` or ``handoff``: asking this node's agent, whose
#: log continues this task.
AGENT_TRANSFER = ActionType(
    u"flocker:volume:agent_transfer",
    [_text(u"command", u"push or handoff."), _VOLUME, _TARGET,
     _text(u"socket", u"The agent's socket.")], [],
    u"A volume push or hand-off asked of this node's agent.")

CREATE_VOLUME = ActionType(
    u"flocker:volume:create",
    [_VOLUME, Field.for_types(u"maximum_size", [int, None],
                              u"Quota in bytes or null.")],
    [], u"Create a volume owned by this node.")

SEED_VOLUME = ActionType(
    u"flocker:volume:seed",
    [_VOLUME, Field.for_types(u"archive_bytes", [int],
                              u"Size of the seed archive.")],
    [Field.for_types(u"seeded", [bool],
                     u"Whether the volume was filled (false: it held "
                     u"something already and was left alone).")],
    u"Fill an empty volume with a seed archive.")

SNAPSHOT_VOLUME = ActionType(
    u"flocker:volume:snapshot", [_VOLUME], [_SNAPSHOT],
    u"Take a snapshot of a volume.")

PUSH_VOLUME = ActionType(
    u"flocker:volume:push", [_VOLUME, _TARGET],
    [_SNAPSHOT, _BASE, _BYTES, _RESUMED_BYTES, _NODE],
    u"Send a volume's latest data to another node, which keeps a copy it "
    u"does not own.")

RECEIVE_VOLUME = ActionType(
    u"flocker:volume:receive", [_VOLUME],
    [_SNAPSHOT, _BASE, _RESUMED],
    u"Receive a stream pushed by the volume's owner.")

PREPARE_PUSH = ActionType(
    u"flocker:volume:prepare_push", [_VOLUME, _TARGET], [],
    u"Open the receiving end of the next push to the target ahead of it "
    u"(a hand-off's final increment, before the application stops).")

PREPARED_PUSH_DROPPED = MessageType(
    u"flocker:volume:prepared_push_dropped", [_VOLUME, _TARGET,
                                              _text(u"reason", u"Why.")],
    u"A receiving end opened ahead was not used: it expired, or could "
    u"not be opened (the push opens its own).")

HANDOFF_VOLUME = ActionType(
    u"flocker:volume:handoff", [_VOLUME, _TARGET], [],
    u"Send the last increment and make the target node the owner.")

HANDOFF_CLEANUP = ActionType(
    u"flocker:volume:handoff_cleanup", [_VOLUME], [],
    u"A hand-off's last steps on the old owner, after it answered (the "
    u"volume's lock held): its copy unmounted, the holds on its bases "
    u"released, the receiving command's exit collected.  A failure is "
    u"logged here only: the next receive into the copy redoes them.")

ACQUIRE_VOLUME = ActionType(
    u"flocker:volume:acquire",
    [_VOLUME, _optional_text(u"expected_snapshot",
                             u"Snapshot the copy must end with, or null.")],
    [], u"Make this node the owner of its copy of a volume.")

FENCE_VOLUME = ActionType(
    u"flocker:volume:fence",
    [_VOLUME, _text(u"owner", u"Identity of the volume's owner now."),
     Field.for_types(u"epoch", [int], u"The owner's epoch.")],
    [_optional_text(u"set_aside", u"The name this node's stale copy was "
                    u"renamed to, or null.")],
    u"Learn a volume's owner and epoch after a failover: a follower records "
    u"them, a stale owned copy is set aside for recovery.")

DELETE_VOLUME = ActionType(
    u"flocker:volume:delete", [_VOLUME], [],
    u"Destroy a volume and its snapshots on this node.")

PRUNE_SNAPSHOTS = ActionType(
    u"flocker:volume:prune_snapshots", [_VOLUME],
    [Field(u"destroyed", list, u"Snapshot names destroyed.")],
    u"Destroy snapshots no future incremental needs.")

#: A prune queued after a push, receive or acquire left a snapshot that
#: ZFS still called busy (a hold on it): the next prune tries it again.
PRUNE_SKIPPED = MessageType(
    u"flocker:volume:prune_skipped",
    [_VOLUME, _SNAPSHOT, _text(u"reason", u"What ZFS said.")],
    u"A snapshot no incremental needs was left for a later prune.")

RECOVER_VOLUME = ActionType(
    u"flocker:volume:recover", [_VOLUME],
    fields(outcome=str),
    u"Finish or undo a swap of a fully received copy interrupted by a crash.")
