"""
Tests for ``flocker.route._interface``: validation shared by every route
manager, and the errors' messages.
"""

from pyrsistent import pset
from twisted.trial.unittest import SynchronousTestCase

from ..._model import Link, Route
from .._interface import (
    InvalidRoute, PortInUse, check_ipv4_address, check_links, check_routes,
)


class CheckIPv4AddressTests(SynchronousTestCase):
    """
    ``check_ipv4_address`` accepts only usable IPv4 addresses.
    """

    def test_accepted(self):
        """
        A dotted quad is returned in canonical form.
        """
        self.assertEqual("10.96.0.11", check_ipv4_address("10.96.0.11", "x"))

    def test_refused(self):
        """
        Host names, IPv6, loopback, unspecified and multicast addresses are
        refused with the value in the message.
        """
        for value in ("node1", "fe80::1", "127.0.0.1", "0.0.0.0",
                      "224.0.0.1", "10.96.0.300", "", None):
            with self.assertRaises(InvalidRoute) as caught:
                check_ipv4_address(value, "route address")
            self.assertIn("route address", str(caught.exception))


class CheckRoutesTests(SynchronousTestCase):
    """
    ``check_routes`` validates a set of routes.
    """

    def test_valid(self):
        """
        Valid routes come back as a ``PSet``.
        """
        routes = [Route(port=80, address="10.96.0.11"),
                  Route(port=81, address="10.96.0.11")]
        self.assertEqual(pset(routes), check_routes(routes))

    def test_same_port(self):
        """
        Two routes on one port are refused, naming the port and addresses.
        """
        with self.assertRaises(InvalidRoute) as caught:
            check_routes([Route(port=80, address="10.96.0.11"),
                          Route(port=80, address="10.96.0.13")])
        self.assertRegex(str(caught.exception),
                         r"port 80 is routed to both 10\.96\.0\.1[13] and "
                         r"10\.96\.0\.1[13]")

    def test_not_a_route(self):
        """
        Anything but ``Route`` values is refused.
        """
        self.assertRaises(InvalidRoute, check_routes, [(80, "10.96.0.11")])


class CheckLinksTests(SynchronousTestCase):
    """
    ``check_links`` validates the arguments of ``set_links``.
    """

    link = Link(local_port=5000, remote_port=8080, alias="db")

    def test_valid(self):
        """
        Valid links come back as a ``PSet``.
        """
        self.assertEqual(pset([self.link]),
                         check_links(42, "10.96.0.12", [self.link]))

    def test_bad_pid(self):
        """
        A pid must be a positive integer.
        """
        for pid in (0, -1, "42", True, None):
            self.assertRaises(InvalidRoute, check_links, pid, "10.96.0.12",
                              [self.link])

    def test_same_local_port(self):
        """
        Two links on one local port are refused.
        """
        with self.assertRaises(InvalidRoute) as caught:
            check_links(42, "10.96.0.12", [
                self.link, Link(local_port=5000, remote_port=9, alias="x")])
        self.assertIn("local port 5000", str(caught.exception))


class PortInUseTests(SynchronousTestCase):
    """
    The message of ``PortInUse`` names the node and the ports.
    """

    def test_one_port(self):
        """
        One port: singular.
        """
        self.assertEqual(
            "node 10.96.0.12: port 8080 is already in use by a listening "
            "socket that is not Flocker's; stop it or choose another "
            "external port", str(PortInUse("10.96.0.12", [8080])))

    def test_ports(self):
        """
        Several ports: sorted, plural.
        """
        error = PortInUse("node2", pset([8080, 22]))
        self.assertEqual((22, 8080), error.ports)
        self.assertIn("node node2: ports 22, 8080 are already in use",
                      str(error))
