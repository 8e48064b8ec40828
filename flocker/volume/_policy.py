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
owner for a standby or the target of a move, every node of an
automatically failed-over application's group; see
:mod:`flocker.node._expected`).  Without that record, any node holding
its own key could plant a first copy here that names itself as owner, and
the real owner's pushes would be refused until the operator deleted it.
The copy then records the caller as its owner, whatever the request's
``owner`` field says.
"""

from .._model import NODE_IDENTITY
from ._errors import NotOwner

__all__ = ["NODE_IDENTITY", "check_receive", "recorded_owner"]


def check_receive(node_id, name, has_copy, copy_owner, caller,
                  expected=frozenset()):
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
    :raises NotOwner: This node owns the volume (an owned volume is never
        overwritten by a push, whoever sends it), or the caller is another
        node and this node's copy follows a third one, or this node has no
        copy and was not told to expect the volume from the caller.
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
        raise NotOwner(
            "this node (%s) has no copy of volume %s and was not told to "
            "expect it from node %s (%s); node %s may not push it" % (
                node_id, name, caller, _expected_text(expected), caller))
    raise NotOwner(
        "this node's copy of volume %s follows node %s; node %s may not "
        "push it" % (name, copy_owner or "unknown", caller))


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
