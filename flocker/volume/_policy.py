"""
Who may change a node's volumes: the authorisation decisions of a receive,
as pure functions of the caller's identity, the request and this node's
records, so that every transport (the node key's forced command, an agent)
asks the same questions.

The callers:

* the operator, through the node's own commands (``flocker-volume``,
  ``flocker-node``) or the deploy client: trusted with everything, as root
  on the node is;
* another node, through the node-to-node key: its identity (``caller``) is
  what the forced command knows of the connection (``flocker-node-bridge
  --peer --caller NODEID`` in that key's ``authorized_keys`` line, handed to
  the agent's peer socket): each node logs in with its own key, which
  only that node's line accepts, so the key is the identity.  It may only
  push (receive, never acquire), and only as itself: a request naming
  another node as its sender is refused.

A receive from another node is accepted only from the node this node's
records say the volume comes from: into a copy that names the caller as
its owner, or, where this node has no copy at all, from a node the deploy
told it to expect that volume from (its *expected senders*: the volume's
owner for a standby, the source of a deploy's push; see
:mod:`flocker.node._expected`) or, for a volume of an automatically
failed-over application whose group this node is in, from the member
holding that application's lease in etcd when the push comes (a
:class:`GroupLease`, which this node reads from etcd itself: what the
sender says counts for nothing).  Without that record, any node holding
its own key could plant a first copy here that names itself as owner, and
the real owner's pushes would be refused until the operator deleted it.
The copy then records the caller as its owner, whatever the request's
``owner`` field says.
"""

import attr
from attr.validators import instance_of, optional

from ._errors import NotOwner

__all__ = ["GroupLease", "check_receive", "recorded_owner"]


@attr.s(frozen=True)
class GroupLease(object):
    """
    Who holds an automatically failed-over application's lease, as the
    receiving node learnt it from etcd when a first copy of one of its
    volumes came.

    :ivar str application: The application.
    :ivar holder: The address etcd's owner key names (the member holding
        the lease), or ``None`` when no member holds it.
    :ivar holder_ids: ``frozenset`` of the node identities whose keys this
        node accepts from the holder's address (its installed trust): the
        caller is the holder when it is one of them.  Empty when the holder
        is not a member of the group.
    :ivar error: Why the receiving node could not tell, naming what failed
        (etcd unreachable or refusing, or this node's own trust of peer
        keys unreadable), or ``None``; with an error no member counts as
        the holder.
    """
    application = attr.ib(validator=instance_of(str))
    holder = attr.ib(default=None, validator=optional(instance_of(str)))
    holder_ids = attr.ib(default=frozenset(), converter=frozenset)
    error = attr.ib(default=None, validator=optional(instance_of(str)))


def check_receive(node_id, name, has_copy, copy_owner, caller,
                  expected=frozenset(), group=None):
    """
    Decide whether a push of volume ``name`` may be received.

    :param str node_id: This node's identity.
    :param str name: The volume.
    :param bool has_copy: Whether this node holds a copy of it.
    :param copy_owner: The owner that copy names (``flocker:owner``), or
        ``None``.
    :param caller: The pushing node's identity as the transport
        established it, or ``None`` for the operator.
    :param expected: The identities of the nodes this node was told it may
        receive a first copy of the volume from (a ``frozenset``; empty
        when it was told none).
    :param group: A :class:`GroupLease` when the volume belongs to an
        automatically failed-over application whose group this node is
        in (a first copy from its lease's holder is then accepted too), or
        ``None``.
    :raises NotOwner: This node owns the volume (an owned volume is never
        overwritten by a push, whoever sends it), or the caller is another
        node and this node's copy follows a third one, or this node has no
        copy and was not told to expect the volume from the caller (nor
        is the caller the holder of ``group``'s lease, as etcd said).
    """
    if has_copy and copy_owner == node_id:
        raise NotOwner(
            "volume %s is owned by this node (%s); an owned volume is "
            "never overwritten by a push" % (name, node_id))
    if caller is None or (has_copy and copy_owner == caller):
        return
    if not has_copy:
        if caller in expected:
            return
        if group is not None:
            _check_holder(node_id, name, caller, group)
            return
        raise NotOwner(
            "this node (%s) has no copy of volume %s and was not told to "
            "expect it from node %s (%s); node %s may not push it" % (
                node_id, name, caller, _expected_text(expected), caller))
    raise NotOwner(
        "this node's copy of volume %s follows node %s; node %s may not "
        "push it" % (name, copy_owner or "unknown", caller))


def _check_holder(node_id, name, caller, group):
    """
    :raises NotOwner: ``caller`` does not hold ``group``'s lease, or this
        node could not learn who does (refused: a first copy is never taken
        on trust).
    """
    if group.error is None and caller in group.holder_ids:
        return
    start = "this node (%s) has no copy of volume %s of application %s, " % (
        node_id, name, group.application)
    if group.error is not None:
        raise NotOwner(
            start + "and could not learn which member holds its lease (%s); "
            "a first copy comes only from that member, so node %s may not "
            "push it until that is known" % (group.error, caller))
    if group.holder is None:
        holder = "no member holds its lease in etcd now"
    else:
        holder = "whose lease in etcd is held by node %s" % (group.holder,)
    raise NotOwner(
        start + "%s; a first copy comes only from the lease's holder, so "
        "node %s may not push it" % (holder, caller))


def _expected_text(expected):
    if not expected:
        return "the deploy named no node it may come from"
    return "it may come from node %s only" % (", ".join(sorted(expected)),)


def recorded_owner(caller, claimed):
    """
    :param caller: The pushing node's identity as the transport established
        it (the key it logged in with), or ``None`` for the operator.
    :param str claimed: The owner the request names: the pushing node's
        own identity, as its agent sends it.
    :return: The owner a received copy records: the caller's own identity
        when it is another node, the request's only when the operator sent
        it.
    :raises NotOwner: The caller is a node and the request names another
        one: a node's key acts as that node only, so a push claiming to
        come from elsewhere is refused rather than recorded.
    """
    if caller is None:
        return claimed
    if claimed != caller:
        raise NotOwner(
            "the key of node %s cannot push as node %s: each node's key "
            "pushes as that node only" % (caller, claimed))
    return caller
