"""
An in-memory route manager for tests of the code that uses one.
"""

from pyrsistent import pmap, pset, pvector
from twisted.internet.defer import fail, succeed
from zope.interface import implementer

from ._interface import (
    IRouteManager, InvalidRoute, PortInUse, check_links, check_routes,
)

__all__ = ["MemoryRouteManager"]


@implementer(IRouteManager)
class MemoryRouteManager(object):
    """
    Keep routes and link rules in memory.  Every ``Deferred`` it returns has
    already fired.

    :ivar str node: The node's name in error messages.
    :ivar listening: ``PSet`` of ports where "something else" listens; tests
        set it to provoke :class:`PortInUse`.
    :ivar routes: ``PSet`` of the installed ``Route`` values.
    :ivar links: ``PMap`` of container pid to ``(node_address, PSet of
        Link)``.
    :ivar announced: ``PVector`` of the container pids announced, in order.
    :ivar bool prepared: Whether :meth:`prerequisites` has run (directly or
        through :meth:`set_routes`).
    """

    def __init__(self, node="memory", listening=pset()):
        self.node = node
        self.listening = pset(listening)
        self.routes = pset()
        self.links = pmap()
        self.prepared = False
        self.announced = pvector()

    def prerequisites(self):
        self.prepared = True
        return succeed(None)

    def listening_ports(self):
        return succeed(self.listening)

    def get_routes(self):
        return succeed(self.routes)

    def set_routes(self, routes):
        try:
            routes = check_routes(routes)
        except InvalidRoute:
            return fail()
        busy = self.listening & pset(route.port for route in routes)
        if busy:
            return fail(PortInUse(self.node, busy))
        self.prepared = True
        self.routes = routes
        return succeed(None)

    def announce_container(self, container_pid):
        self.announced = self.announced.append(container_pid)
        return succeed(None)

    def get_links(self, container_pid):
        return succeed(self.links.get(container_pid, (None, pset()))[1])

    def set_links(self, container_pid, node_address, links):
        try:
            links = check_links(container_pid, node_address, links)
        except InvalidRoute:
            return fail()
        self.links = self.links.set(container_pid, (node_address, links))
        return succeed(None)
