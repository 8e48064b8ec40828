"""
A node's *expected senders*: for each volume, the nodes this node may
receive a first copy of it from (where it has no copy yet).  The deploy
sets the record (:meth:`flocker.node.INodeAgent.expect_senders`, planned by
:mod:`flocker.node._expected`) before any push, the peer socket hands it
to each receive, and :func:`flocker.volume._policy.check_receive` applies
it.  It is kept in a state file beside the deploy lock, so a restarted
agent refuses and accepts exactly what it did before.

A volume of an automatically failed-over application is not in the record
between deploys (any member of its group may become the owner through
etcd, without a deploy): :class:`FirstCopyGroups` gives, for such a
volume, the question the receive asks when a first copy comes from a node
the record does not name: does that node hold the application's lease in
etcd now?  The answer is this node's own reading of etcd and of its
installed trust (which addresses each node's key is accepted from), never
what the sender says.
"""

from eliot.twisted import DeferredContext
from pyrsistent import pmap
from twisted.internet.defer import maybeDeferred

from .._serialize import SerializationError
from .._identifiers import is_node_identity
from ..volume._zfs import check_volume_name
from ..volume._errors import UnsafeName
from ..volume._policy import GroupLease
from ._logging import FIRST_COPY_HOLDER
from ._state_file import load_list, save_list

__all__ = ["SenderStore", "ExpectedSenders", "default_senders_path",
           "check_senders", "FirstCopyGroups"]


def default_senders_path(environ, address):
    """
    :param environ: The process environment: ``FLOCKER_LOCK_DIR`` chooses
        the directory (default ``/var/lib/flocker``), as for the deploy
        lock.
    :param str address: The node's address; part of the file name, so
        nodes sharing a file system (a lab on one machine) keep their own.
    :return: The path of the expected senders' state file.
    """
    from ._lock import node_file_path
    return node_file_path(environ, "senders", address, ".json")


def check_senders(senders):
    """
    :param senders: A mapping of volume name to node identities.
    :return: The same as a ``PMap`` of volume name to a non-empty
        ``frozenset`` of node identities (volumes with none left out).
    :raises ValueError: A name is not a volume name or an identity is not
        a node identity.
    """
    checked = {}
    for name, nodes in senders.items():
        try:
            check_volume_name(name)
        except UnsafeName:
            raise ValueError("%r is not a volume name" % (name,))
        nodes = frozenset(nodes)
        for node in nodes:
            if not is_node_identity(node):
                raise ValueError("%r is not a node identity" % (node,))
        if nodes:
            checked[name] = nodes
    return pmap(checked)


class SenderStore(object):
    """
    The expected senders on disk: one JSON list of ``{"volume": NAME,
    "nodes": [IDENTITY, ...]}``, replaced atomically.
    """

    def __init__(self, path):
        """
        :param str path: The file (its directory is created when needed).
        """
        self.path = path

    def load(self):
        """
        :return: ``PMap`` of volume name to ``frozenset`` of node
            identities; empty when there is no file.
        :raises SerializationError: The file is not one this store wrote.
        """
        try:
            return check_senders({
                item["volume"]: item["nodes"]
                for item in load_list(self.path)})
        except (KeyError, TypeError, ValueError) as e:
            raise SerializationError("%s: %s" % (self.path, e))

    def save(self, senders):
        """
        :param senders: ``PMap`` of volume name to node identities.
        """
        save_list(self.path, [{"volume": name, "nodes": sorted(senders[name])}
                              for name in sorted(senders)])


class ExpectedSenders(object):
    """
    The record the agent holds: read from its store once, replaced by each
    :meth:`configure`.

    :ivar current: ``PMap`` of volume name to ``frozenset`` of node
        identities.
    """

    def __init__(self, store):
        """
        :param SenderStore store: Where the record is kept.  An unreadable
            file is taken as an empty record (every first copy from a node
            refused) until the next deploy sets it.
        """
        self._store = store
        try:
            self.current = store.load()
        except SerializationError:
            self.current = pmap()

    def configure(self, senders):
        """
        Replace the record, on disk first (a push accepted now is accepted
        after a restart too).

        :param senders: A mapping of volume name to node identities.
        :raises ValueError: See :func:`check_senders`.
        """
        senders = check_senders(senders)
        self._store.save(senders)
        self.current = senders

    def expected(self, name):
        """
        :param str name: A volume.
        :return: The identities of the nodes a first copy of it may come
            from (a ``frozenset``, empty when none).
        """
        return self.current.get(name, frozenset())


class FirstCopyGroups(object):
    """
    For each volume of an automatically failed-over application whose
    group this node is in, how a receive learns whether a first copy's
    sender holds the application's lease (see
    :func:`flocker.volume._policy.check_receive`).
    """

    def __init__(self, address, automatic, peer_sources):
        """
        :param str address: This node's address.
        :param automatic: The agent's
            :class:`~flocker.node._automatic.AutomaticFailover` (its
            configured applications and ``holder``), or ``None`` (no etcd:
            no group applies).
        :param peer_sources: Callable of no argument returning a mapping of
            node identity to the addresses this node accepts that node's
            key from (its installed trust, ``NodeKey.peers``).
        """
        self._address = address
        self._automatic = automatic
        self._peer_sources = peer_sources

    def group(self, name):
        """
        :param str name: A volume.
        :return: ``None`` when no automatic application this node is a
            member of mounts ``name``; else a callable of no argument
            returning a ``Deferred`` that fires with a
            :class:`~flocker.volume._policy.GroupLease` read from etcd when
            it is called (never failing: an unreachable etcd, or this
            node's trust of peer keys unreadable, gives a lease with its
            ``error`` saying which).
        """
        if self._automatic is None:
            return None
        applications = self._automatic.applications
        for application_name in sorted(applications):
            application = applications[application_name]
            members = [application.primary] + list(application.standbys)
            if name in application.volumes and self._address in members:
                return lambda: self._lease(application, name, members)
        return None

    def _lease(self, application, volume, members):
        action = FIRST_COPY_HOLDER(application=application.name,
                                   volume=volume)
        with action.context():
            d = DeferredContext(maybeDeferred(self._automatic.holder,
                                              application.name))

            def refused(holder, error):
                # No member counts as the holder: the first copy is
                # refused, saying what failed.
                action.add_success_fields(holder=holder, error=error)
                return GroupLease(application=application.name,
                                  holder=holder, error=error)

            def found(holder):
                if holder is None or holder not in members:
                    ids = frozenset()
                else:
                    try:
                        trusted = self._peer_sources()
                    except Exception as e:
                        return refused(holder, "this node's trust of peer "
                                       "keys is unreadable: %s" % (e,))
                    ids = frozenset(
                        identity for identity, sources in trusted.items()
                        if holder in sources)
                action.add_success_fields(holder=holder, error=None)
                return GroupLease(application=application.name,
                                  holder=holder, holder_ids=ids)

            def failed(failure):
                return refused(None, "etcd: %s" % (
                    failure.getErrorMessage() or failure.type.__name__,))
            d.addCallbacks(found, failed)
            return d.addActionFinish()
