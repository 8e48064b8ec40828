"""
The tests every ``IRouteManager`` must pass, as a factory run against the
in-memory fake (``test_memory.py``) and the iptables manager inside real
network namespaces (``test_iptables.py``), so the fake cannot drift from the
real thing.
"""

from pyrsistent import pset
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ..._model import Link, Route
from .. import IRouteManager, InvalidRoute, PortInUse

__all__ = ["make_iroutemanager_tests"]


def make_iroutemanager_tests(make_fixture):
    """
    :param make_fixture: Called with the ``TestCase`` in ``setUp``; returns
        an object with

        * ``manager``: a fresh ``IRouteManager`` provider with no routes,
        * ``call(function, *args)``: call ``function(*args)`` where its
          ``Deferred`` can fire and return the result (or raise the
          failure),
        * ``listen(port)``: make something that is not Flocker's listen on
          ``port`` of the manager's node,
        * ``container_pid()``: the pid of a process in a fresh container
          network namespace,
        * ``node``: the node name the manager puts in errors,
        * ``node_address``: an IPv4 address of the manager's node.

        It registers its own cleanups with ``addCleanup``.
    :return: A ``TestCase`` subclass.
    """

    class IRouteManagerTests(SynchronousTestCase):
        """
        Tests for an ``IRouteManager`` implementation.
        """

        def setUp(self):
            self.fixture = make_fixture(self)
            self.manager = self.fixture.manager

        def call(self, name, *args):
            return self.fixture.call(getattr(self.manager, name), *args)

        def raises(self, kind, name, *args):
            with self.assertRaises(kind) as caught:
                self.call(name, *args)
            return caught.exception

        def test_interface(self):
            """
            The manager provides ``IRouteManager``.
            """
            self.assertTrue(verifyObject(IRouteManager, self.manager))

        def test_announce_container(self):
            """
            Announcing a container (even one without addresses) succeeds.
            """
            self.assertIsNone(self.call("announce_container",
                                        self.fixture.container_pid()))

        def test_no_routes(self):
            """
            A fresh node has no routes.
            """
            self.assertEqual(pset(), self.call("get_routes"))

        def test_set_routes(self):
            """
            After ``set_routes`` the node reports exactly those routes.
            """
            routes = pset([Route(port=8080, address="10.96.0.11"),
                           Route(port=5432, address="10.96.0.13")])
            self.assertIsNone(self.call("set_routes", routes))
            self.assertEqual(routes, self.call("get_routes"))

        def test_udp_routes(self):
            """
            A UDP route and a TCP route on one port are two routes, both
            reported.
            """
            routes = pset([
                Route(port=5353, address="10.96.0.11"),
                Route(port=5353, address="10.96.0.13",
                      protocol="udp")])
            self.call("set_routes", routes)
            self.assertEqual(routes, self.call("get_routes"))

        def test_replace_routes(self):
            """
            A second ``set_routes`` replaces the routes: removed ones go,
            changed ones point at their new address, new ones appear.
            """
            self.call("set_routes", pset([
                Route(port=8080, address="10.96.0.11"),
                Route(port=5432, address="10.96.0.11")]))
            wanted = pset([Route(port=8080, address="10.96.0.13"),
                           Route(port=6379, address="10.96.0.11")])
            self.call("set_routes", wanted)
            self.assertEqual(wanted, self.call("get_routes"))

        def test_remove_all_routes(self):
            """
            ``set_routes`` with no routes removes them all.
            """
            self.call("set_routes", pset([Route(port=8080,
                                                address="10.96.0.11")]))
            self.call("set_routes", pset())
            self.assertEqual(pset(), self.call("get_routes"))

        def test_same_routes_again(self):
            """
            Setting the routes a node already has succeeds and keeps them.
            """
            routes = pset([Route(port=8080, address="10.96.0.11")])
            self.call("set_routes", routes)
            self.assertIsNone(self.call("set_routes", routes))
            self.assertEqual(routes, self.call("get_routes"))

        def test_host_name_refused(self):
            """
            A route to a host name (not resolved to an IPv4 address) fails
            with ``InvalidRoute`` and changes nothing.
            """
            before = pset([Route(port=8080, address="10.96.0.11")])
            self.call("set_routes", before)
            error = self.raises(
                InvalidRoute, "set_routes",
                pset([Route(port=8080, address="node1.example")]))
            self.assertIn("node1.example", str(error))
            self.assertEqual(before, self.call("get_routes"))

        def test_one_port_two_addresses_refused(self):
            """
            Two routes on one port fail with ``InvalidRoute``.
            """
            error = self.raises(
                InvalidRoute, "set_routes",
                pset([Route(port=8080, address="10.96.0.11"),
                      Route(port=8080, address="10.96.0.13")]))
            self.assertIn("8080", str(error))
            self.assertEqual(pset(), self.call("get_routes"))

        def test_listening_ports(self):
            """
            ``listening_ports`` includes a port something listens on.
            """
            self.fixture.listen(7001)
            self.assertIn(7001, self.call("listening_ports"))

        def test_port_in_use(self):
            """
            A route on a port where something else listens fails with
            ``PortInUse`` naming the node and the port; nothing changes.
            """
            before = pset([Route(port=8080, address="10.96.0.11")])
            self.call("set_routes", before)
            self.fixture.listen(7002)
            error = self.raises(
                PortInUse, "set_routes",
                before.add(Route(port=7002, address="10.96.0.11")))
            self.assertEqual((self.fixture.node, (7002,)),
                             (error.node, error.ports))
            self.assertIn("node %s: port 7002 " % (self.fixture.node,),
                          str(error))
            self.assertEqual(before, self.call("get_routes"))

        def test_prerequisites(self):
            """
            ``prerequisites`` succeeds, twice, and leaves routes alone.
            """
            routes = pset([Route(port=8080, address="10.96.0.11")])
            self.call("set_routes", routes)
            self.assertIsNone(self.call("prerequisites"))
            self.assertIsNone(self.call("prerequisites"))
            self.assertEqual(routes, self.call("get_routes"))

        def test_no_links(self):
            """
            A fresh container has no link rules.
            """
            self.assertEqual(
                pset(), self.call("get_links", self.fixture.container_pid()))

        def test_set_links(self):
            """
            After ``set_links`` the container reports exactly those links.
            """
            pid = self.fixture.container_pid()
            links = pset([Link(local_port=5000, remote_port=8080, alias="db"),
                          Link(local_port=6000, remote_port=6379,
                               alias="cache")])
            self.assertIsNone(self.call(
                "set_links", pid, self.fixture.node_address, links))
            self.assertEqual(links, self.call("get_links", pid))

        def test_replace_links(self):
            """
            A second ``set_links`` replaces the first one's links, and an
            empty set removes them.
            """
            pid = self.fixture.container_pid()
            address = self.fixture.node_address
            self.call("set_links", pid, address, pset([
                Link(local_port=5000, remote_port=8080, alias="db")]))
            wanted = pset([Link(local_port=5001, remote_port=8081,
                                alias="db")])
            self.call("set_links", pid, address, wanted)
            self.assertEqual(wanted, self.call("get_links", pid))
            self.call("set_links", pid, address, pset())
            self.assertEqual(pset(), self.call("get_links", pid))

        def test_links_are_per_container(self):
            """
            Link rules of one container do not show up in another.
            """
            first = self.fixture.container_pid()
            second = self.fixture.container_pid()
            links = pset([Link(local_port=5000, remote_port=8080,
                               alias="db")])
            self.call("set_links", first, self.fixture.node_address, links)
            self.assertEqual(pset(), self.call("get_links", second))

        def test_same_links_again(self):
            """
            Setting the links a container already has succeeds and keeps
            them.
            """
            pid = self.fixture.container_pid()
            links = pset([Link(local_port=5000, remote_port=8080,
                               alias="db")])
            self.call("set_links", pid, self.fixture.node_address, links)
            self.call("set_links", pid, self.fixture.node_address, links)
            self.assertEqual(links, self.call("get_links", pid))

        def test_named_links(self):
            """
            Named links (at another address of ``127.0.0.0/8``) and UDP
            links are set and reported beside loopback links on the same
            local port.
            """
            pid = self.fixture.container_pid()
            links = pset([
                Link(local_port=5000, remote_port=8080, alias="db"),
                Link(local_port=5000, remote_port=8081, alias="cache",
                     address="127.200.1.2"),
                Link(local_port=5000, remote_port=8082, alias="cache",
                     address="127.200.1.2", protocol="udp")])
            self.call("set_links", pid, self.fixture.node_address, links)
            self.assertEqual(links, self.call("get_links", pid))

        def test_link_to_host_name_refused(self):
            """
            A node address that is not IPv4 fails with ``InvalidRoute``.
            """
            pid = self.fixture.container_pid()
            self.raises(
                InvalidRoute, "set_links", pid, "node2.example",
                pset([Link(local_port=5000, remote_port=8080, alias="db")]))
            self.assertEqual(pset(), self.call("get_links", pid))

        def test_two_links_one_local_port_refused(self):
            """
            Two links on one local port fail with ``InvalidRoute``.
            """
            pid = self.fixture.container_pid()
            self.raises(
                InvalidRoute, "set_links", pid,
                self.fixture.node_address,
                pset([Link(local_port=5000, remote_port=8080, alias="db"),
                      Link(local_port=5000, remote_port=8081, alias="db2")]))

    return IRouteManagerTests
