"""
Tests for ``flocker.route._memory``: the in-memory route manager passes the
same interface tests as the iptables one.
"""

import itertools

from twisted.trial.unittest import SynchronousTestCase

from ..._model import Link
from ._interface_tests import make_iroutemanager_tests
from .. import MemoryRouteManager


def _fired(d):
    """
    :return: The result of an already-fired ``Deferred``; raise its failure.
    """
    results = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError("the fake's Deferred has not fired: %r" % (d,))
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


class _MemoryFixture(object):
    """
    An ``IRouteManager`` test fixture backed by ``MemoryRouteManager``.
    """
    node = "node-m"
    node_address = "10.96.0.12"

    def __init__(self, case):
        self.manager = MemoryRouteManager(node=self.node)
        self._pids = itertools.count(100)

    def call(self, function, *args):
        return _fired(function(*args))

    def listen(self, port):
        self.manager.listening = self.manager.listening.add(port)

    def container_pid(self):
        return next(self._pids)


class MemoryRouteManagerInterfaceTests(
        make_iroutemanager_tests(_MemoryFixture)):
    """
    ``MemoryRouteManager`` passes the ``IRouteManager`` tests.
    """


class MemoryRouteManagerTests(SynchronousTestCase):
    """
    Behaviour particular to the fake that tests of its users rely on.
    """

    def test_prepared(self):
        """
        ``set_routes`` records that the prerequisites were put in place.
        """
        manager = MemoryRouteManager()
        self.assertFalse(manager.prepared)
        _fired(manager.set_routes([]))
        self.assertTrue(manager.prepared)

    def test_links_keep_node_address(self):
        """
        The fake remembers the node address each container's links point at.
        """
        manager = MemoryRouteManager()
        link = Link(local_port=5000, remote_port=8080, alias="db")
        _fired(manager.set_links(7, "10.96.0.12", [link]))
        self.assertEqual("10.96.0.12", manager.links[7][0])
