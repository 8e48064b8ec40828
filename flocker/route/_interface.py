"""
The route manager's interface and the errors it reports.

A route manager owns two kinds of kernel NAT rules:

* **Routes**, on a node: connections to an external port of *this* node (from
  outside, from the node itself, from its containers) are sent to the same
  port on the node that hosts the application.
* **Links**, inside one container's network namespace: connections to
  ``127.0.0.1:local_port`` are sent to ``node_address:remote_port``, where the
  node's routes (or Docker's published port) take them on to the target.  A
  link therefore never changes when its target moves; only routes do.
"""

import ipaddress

from pyrsistent import pset
from zope.interface import Interface

from .._model import Link, Route

__all__ = [
    "IRouteManager", "RouteError", "PortInUse", "InvalidRoute",
    "check_ipv4_address", "check_routes", "check_links",
]


class RouteError(Exception):
    """
    Base class of the route package's errors about what it was asked to do.
    """


class PortInUse(RouteError):
    """
    Routes were asked for on ports where something that is not Flocker's
    already listens, so the route would silently steal its connections.

    :ivar str node: The node (as the manager was told to call it).
    :ivar ports: Sorted ``tuple`` of the ports in use.
    """

    def __init__(self, node, ports):
        self.node = node
        self.ports = tuple(sorted(ports))
        RouteError.__init__(self, node, self.ports)

    def __str__(self):
        if len(self.ports) == 1:
            what = "port %d is" % self.ports
        else:
            what = "ports %s are" % (", ".join(str(p) for p in self.ports),)
        return ("node %s: %s already in use by a listening socket that is "
                "not Flocker's; stop it or choose another external port" % (
                    self.node, what))


class InvalidRoute(RouteError, ValueError):
    """
    A route or link cannot be expressed as a rule: its address is not an IPv4
    address, or two routes claim one port.
    """


def check_ipv4_address(value, what):
    """
    Make sure ``value`` is a dotted-quad IPv4 address, as iptables rules need.
    Host names must be resolved before they reach the route manager.

    :param value: The address.
    :param str what: How to call it in the error message.
    :return: ``value`` in canonical form (a ``str``).
    :raises InvalidRoute: If it is not an IPv4 address.
    """
    try:
        address = ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise InvalidRoute(
            "%s %r is not an IPv4 address (resolve host names first; "
            "IPv6 is not supported)" % (what, value))
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise InvalidRoute("%s %s cannot be a route target" % (what, value))
    return str(address)


def check_routes(routes):
    """
    Validate a set of routes the way every route manager does.

    :param routes: Iterable of ``Route``.
    :return: The routes as a ``PSet``.
    :raises InvalidRoute: For a non-IPv4 address or two routes on one port.
    """
    routes = pset(routes)
    seen = {}
    for route in routes:
        if not isinstance(route, Route):
            raise InvalidRoute("%r is not a Route" % (route,))
        check_ipv4_address(route.address, "route address for port %d" % (
            route.port,))
        key = (route.port, route.protocol)
        if key in seen:
            raise InvalidRoute("port %d%s is routed to both %s and %s" % (
                route.port, "" if route.protocol == "tcp" else "/udp",
                seen[key], route.address))
        seen[key] = route.address
    return routes


def check_links(container_pid, node_address, links):
    """
    Validate the arguments of ``set_links`` the way every manager does.

    :return: The links as a ``PSet``.
    :raises InvalidRoute: For a bad pid, a non-IPv4 node address or two links
        on one local port.
    """
    if (not isinstance(container_pid, int) or isinstance(container_pid, bool)
            or container_pid <= 0):
        raise InvalidRoute("container pid %r is not a process id" % (
            container_pid,))
    check_ipv4_address(node_address, "node address")
    links = pset(links)
    seen = set()
    for link in links:
        if not isinstance(link, Link):
            raise InvalidRoute("%r is not a Link" % (link,))
        key = (link.address, link.local_port, link.protocol)
        if key in seen:
            raise InvalidRoute("two links use local port %d%s of %s" % (
                link.local_port, "" if link.protocol == "tcp" else "/udp",
                link.address))
        seen.add(key)
    return links


class IRouteManager(Interface):
    """
    Installs and reports one node's routes and the link rules of the
    containers running on it.

    Every method returns a ``Deferred``.  Methods that change rules are
    idempotent (asking again for what is installed changes nothing) and are
    run one at a time.
    """

    def prerequisites():
        """
        Put in place what any routed connection needs on this node, whatever
        the routes:

        * ``net.ipv4.ip_forward=1``: a DNAT-ed connection to another node is
          forwarded, not delivered locally; without forwarding it is dropped.
        * ``net.ipv4.conf.all.route_localnet=1``: the node's own connections
          to ``127.0.0.1:PORT`` are DNAT-ed to another node, and the kernel
          only routes a packet with a 127.0.0.0/8 source off the loopback
          interface with this setting.  Because it also makes the kernel
          accept 127.0.0.0/8 destinations from the network, Flocker adds an
          input rule dropping such packets unless they arrived on ``lo`` or
          belong to a NAT-ed connection.
        * Acceptance of forwarded replies (``ESTABLISHED,RELATED`` connections
          that Flocker's DNAT created): Docker sets the ``FORWARD`` policy to
          ``DROP`` and its own ``ESTABLISHED`` rule only covers traffic into
          its bridge, so without this the target's replies are dropped.
        * Flocker's own chains, with jumps to them from the built-in chains.

        :return: ``Deferred`` firing with ``None``.
        :raises CommandFailed: (in the ``Deferred``) when a command fails.
        """

    def listening_ports():
        """
        Find the TCP ports on which some socket of this node listens (on any
        of its addresses, including 127.0.0.1 and IPv6).  A route on such a
        port would take its connections away from that socket, so callers can
        check this before planning routes; :meth:`set_routes` checks it too.

        :return: ``Deferred`` firing with a ``PSet`` of ``int``.
        """

    def get_routes():
        """
        Read the routes installed on this node.

        :return: ``Deferred`` firing with a ``PSet`` of ``Route``.
        """

    def set_routes(routes):
        """
        Make the routes of this node exactly ``routes``.

        For each route, connections to its port on any local address of this
        node (from outside, from the node itself including ``127.0.0.1``, and
        from its containers) go to the same port on ``route.address``.
        Routes not in ``routes`` are removed.  When a route is removed or its
        address changes, the connection tracking entries to the old address
        are deleted so that no connection keeps going to the old node.
        Puts the :meth:`prerequisites` in place too, even for an empty set
        (they are part of every rule set it installs).  If nothing differs,
        nothing is run that changes the machine.

        :param routes: ``PSet`` of ``Route`` whose addresses are IPv4
            addresses (not host names) and whose ports are all different.
        :return: ``Deferred`` firing with ``None`` once the rules are in
            place.
        :raises InvalidRoute: (in the ``Deferred``) for an address that is
            not IPv4 or two routes on one port; nothing is changed.
        :raises PortInUse: (in the ``Deferred``) when a socket listens on
            one of the ports; nothing is changed.
        :raises CommandFailed: (in the ``Deferred``) when a command fails;
            the previous rules stay in place.
        """

    def get_links(container_pid):
        """
        Read the link rules installed in a container's network namespace.

        :param int container_pid: A process in the container (Docker's
            ``State.Pid``).
        :return: ``Deferred`` firing with a ``PSet`` of ``Link``.
        :raises CommandFailed: (in the ``Deferred``) e.g. when there is no
            such process.
        """

    def announce_container(container_pid):
        """
        Tell this node where a container that has just started is: for each
        IPv4 address of the container reached through one of the node's
        interfaces (a container bridge), record the container's hardware
        address as that address's neighbour entry.

        Why: the port-forwarding rules of a starting container exist a
        moment before its interface does.  A connection arriving in that
        moment makes the kernel ask for the container's hardware address,
        get no answer, and hold every later packet to it until its next
        retry, up to a second after the container is ready.  A moved
        application would be unreachable that much longer.

        :param int container_pid: A process in the container.
        :return: ``Deferred`` firing with ``None``.
        :raises CommandFailed: (in the ``Deferred``) when a command fails.
        """

    def set_links(container_pid, node_address, links):
        """
        Make the link rules in a container's network namespace exactly
        ``links``: a connection from the container to
        ``127.0.0.1:link.local_port`` goes to
        ``node_address:link.remote_port``.  Also sets
        ``net.ipv4.conf.all.route_localnet=1`` in the container's namespace
        when it is not set yet.

        Rules in a container's namespace vanish when the container restarts
        (it gets a new namespace), so this must be called after every start,
        as early as possible: a connection the application makes before the
        rules exist fails, and may leave a conntrack entry that makes the
        first retry fail too.

        :param int container_pid: A process in the container.
        :param str node_address: This node's IPv4 address.
        :param links: ``PSet`` of ``Link`` with different local ports.
        :return: ``Deferred`` firing with ``None``.
        :raises InvalidRoute: (in the ``Deferred``) for a bad address or two
            links on one local port; nothing is changed.
        :raises CommandFailed: (in the ``Deferred``) when a command fails;
            the previous link rules stay in place.
        """
