"""
Ownership epochs: which copy of a volume is current, as pure functions.

Every copy of a volume records, besides the owner it names
(``flocker:owner``), the *epoch* of that ownership (``flocker:epoch``): a
generation number that goes up by one each time ownership changes (a move's
hand-off, a failover).  A new volume starts at epoch 1; a copy that predates
epochs reads as 0.  A push carries the sender's epoch and the receiving copy
records it, so the nodes holding copies know the epoch of the owner they
follow.

The rule that fences a node which comes back after a failover: an owned copy
is *stale* when any copy of the volume, anywhere, has a higher epoch.  Its
node then neither runs the volume's applications nor sends the copy as the
newest (a push from a lower epoch is refused), and the writes it holds
beyond the last replica are set aside under a recovery name, never
destroyed.
"""

import re

import attr

from ._errors import HandoffConflict, StaleEpoch

__all__ = [
    "EPOCH", "FIRST_EPOCH", "parse_epoch", "next_epoch", "CopyView",
    "current_copy", "stale_owners", "freshest_copy", "check_sender_epoch",
    "taken_epoch",
    "recovery_name", "RECOVERY_MARK", "is_recovery_name",
    "is_recovery_suffix", "boot_decision",
    "START", "HOLD",
]

#: The ZFS user property holding a copy's epoch (decimal).
EPOCH = "flocker:epoch"

#: The epoch of a volume just created.
FIRST_EPOCH = 1

#: What a copy set aside by fencing has in its name (after the volume's):
#: volume names have no dots, so such a dataset is never taken for a volume.
RECOVERY_MARK = ".flocker-recovery-"

_RECOVERY_SUFFIX = re.compile(
    r"\A%se(?:0|[1-9][0-9]{0,17})-[0-9]{8}T[0-9]{6}Z\Z" % (
        re.escape(RECOVERY_MARK),))

_DECIMAL = re.compile(r"\A(?:0|[1-9][0-9]{0,17})\Z")

#: :func:`boot_decision`: start the application as its policy says.
START = "start"

#: :func:`boot_decision`: leave it stopped until a deploy decides.
HOLD = "hold"


def parse_epoch(value):
    """
    :param value: A ``flocker:epoch`` value as ZFS reports it (``None`` or
        ``"-"`` when unset).
    :return: The epoch as an ``int``; 0 for an unset or unreadable value
        (such a copy loses to any copy that has one: it is never taken for
        the newest, and never destroyed either).
    """
    if isinstance(value, str) and _DECIMAL.match(value):
        return int(value)
    return 0


def next_epoch(epochs):
    """
    :param epochs: The epochs of every copy known (any iterable of ``int``).
    :return: The epoch a new ownership gets: one more than any known.
    """
    return max(list(epochs) + [0]) + 1


@attr.s(frozen=True)
class CopyView(object):
    """
    One node's copy of a volume, as far as currency goes.

    :ivar str node: The node's address.
    :ivar bool owned: Whether the node owns it.
    :ivar int epoch: Its epoch.
    :ivar latest: Its newest snapshot's name (Flocker's snapshot names sort
        in the order they were taken), or ``None`` for none.
    """
    node = attr.ib()
    owned = attr.ib()
    epoch = attr.ib()
    latest = attr.ib(default=None)


def current_copy(copies):
    """
    :param copies: :class:`CopyView` values of one volume.
    :return: The address of the one current owner: the owned copy whose
        epoch no other copy exceeds and no other owned copy equals; else
        ``None`` (no owner, or two owners of one epoch, which only an
        operator can settle).
    """
    copies = list(copies)
    if not copies:
        return None
    top = max(copy.epoch for copy in copies)
    owners = [copy for copy in copies if copy.owned and copy.epoch == top]
    return owners[0].node if len(owners) == 1 else None


def stale_owners(copies):
    """
    :param copies: :class:`CopyView` values of one volume.
    :return: ``frozenset`` of the addresses of the nodes whose copy is owned
        but stale: some copy has a higher epoch.
    """
    copies = list(copies)
    top = max([copy.epoch for copy in copies] + [0])
    return frozenset(copy.node for copy in copies
                     if copy.owned and copy.epoch < top)


def freshest_copy(copies, preference=()):
    """
    Choose the copy a failover starts the volume from.

    :param copies: :class:`CopyView` values of the volume on the nodes that
        are alive.
    :param preference: Addresses in the operator's order of preference (a
        ``standby:`` list): the first wins among equally fresh copies.
    :return: The address of the copy with the highest epoch, then the
        newest snapshot, then the most preferred, then the first address;
        ``None`` if none.
    """
    copies = sorted(copies, key=lambda copy: copy.node)
    if not copies:
        return None
    order = list(preference)

    def rank(copy):
        preferred = (len(order) - order.index(copy.node)
                     if copy.node in order else 0)
        return (copy.epoch, copy.latest is not None,
                "" if copy.latest is None else copy.latest, preferred)
    # max keeps the first of equals: the first address.
    return max(copies, key=rank).node


def taken_epoch(name, copy_epoch, wanted=None):
    """
    :param str name: The volume.
    :param int copy_epoch: The epoch of the copy being taken over.
    :param wanted: The epoch the caller gives the new ownership, or
        ``None``.
    :return: The new ownership's epoch: ``wanted``, or one above the copy's.
    :raises HandoffConflict: If ``wanted`` is not above the copy's epoch
        (ownership never goes back to an epoch a copy already had).
    """
    if wanted is None:
        return copy_epoch + 1
    if wanted <= copy_epoch:
        raise HandoffConflict(
            "volume %s: epoch %d is not above this copy's epoch %d" % (
                name, wanted, copy_epoch))
    return wanted


def check_sender_epoch(name, copy_epoch, sender_epoch):
    """
    Refuse a push from a sender whose ownership is older than what this
    copy already follows.

    :param str name: The volume.
    :param int copy_epoch: This node's copy's epoch.
    :param sender_epoch: The epoch the sender says it owns the volume at,
        or ``None`` from a sender that predates epochs (accepted as
        before).
    :return: ``None`` if the push may go on.
    :raises StaleEpoch: With the one-line reason, if the sender is stale.
    """
    if sender_epoch is None or sender_epoch >= copy_epoch:
        return None
    raise StaleEpoch(
        "volume %s: the sender owns it at epoch %d but this copy already "
        "follows epoch %d (the volume failed over; the sender's copy is "
        "stale)" % (name, sender_epoch, copy_epoch))


def recovery_name(name, epoch, stamp):
    """
    :param str name: A volume name.
    :param int epoch: The stale copy's epoch.
    :param str stamp: When it was set aside (``YYYYmmddTHHMMSSZ``).
    :return: The dataset name the stale copy is renamed to.
    """
    return "%s%se%d-%s" % (name, RECOVERY_MARK, epoch, stamp)


def is_recovery_suffix(suffix):
    """
    :param str suffix: What follows a volume's name in a dataset's name.
    :return: Whether it is exactly what :func:`recovery_name` adds.
    """
    return _RECOVERY_SUFFIX.match(suffix) is not None


def is_recovery_name(dataset):
    """
    :param str dataset: A dataset name below the pool.
    :return: Whether it is a copy set aside by fencing.
    """
    return RECOVERY_MARK in dataset


def boot_decision(owned, has_peers):
    """
    Decide, at the agent's start, whether an application whose volume is on
    this node may start by its restart policy before any deploy has run.

    The agent cannot tell on its own whether the volume failed over while
    the node was down: only a node holding a copy could have taken it over,
    so a volume no other node was ever sent starts as Docker would have
    started it; one with copies elsewhere waits, for its standbys to accept
    a push from this node (see :mod:`flocker.node._boot`) or for a deploy,
    which sees every node's epoch.

    :param bool owned: This node's copy names it as owner.
    :param bool has_peers: This node has sent the volume to other nodes.
    :return: :data:`START` or :data:`HOLD`.
    """
    return START if owned and not has_peers else HOLD
