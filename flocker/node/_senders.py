"""
A node's *expected senders*: for each volume, the nodes this node may
receive a first copy of it from (where it has no copy yet).  The deploy
sets the record (:meth:`flocker.node.INodeAgent.expect_senders`, planned by
:mod:`flocker.node._expected`) before any push, the peer socket hands it
to each receive, and :func:`flocker.volume._policy.check_receive` applies
it.  It is kept in a state file beside the deploy lock, so a restarted
agent refuses and accepts exactly what it did before.
"""

from pyrsistent import pmap

from .._serialize import SerializationError
from ..volume._api import check_node_id
from ..volume._zfs import check_volume_name
from ..volume._errors import UnsafeName
from ._state_file import load_list, save_list

__all__ = ["SenderStore", "ExpectedSenders", "default_senders_path",
           "check_senders"]


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
            try:
                check_node_id(node)
            except UnsafeName as e:
                raise ValueError(str(e))
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
