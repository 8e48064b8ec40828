"""
Routing and links: kernel NAT rules that make every node's external ports
reach the node hosting each application, and make ``localhost:PORT`` inside a
container reach a linked application wherever it runs.

The node agent uses an :class:`IRouteManager`: :class:`IPTablesRouteManager`
on a real node, :class:`MemoryRouteManager` in tests.
"""

from ._interface import (
    IRouteManager, RouteError, PortInUse, InvalidRoute, check_ipv4_address,
    check_routes, check_links,
)
from ._iptables import (
    IPTablesRouteManager, parse_listening_ports, parse_dnat_flows,
)
from ._memory import MemoryRouteManager
from ._process import IProcessRunner, ProcessRunner, CommandFailed

__all__ = [
    "IRouteManager", "RouteError", "PortInUse", "InvalidRoute",
    "check_ipv4_address", "check_routes", "check_links",
    "IPTablesRouteManager", "parse_listening_ports", "parse_dnat_flows",
    "MemoryRouteManager",
    "IProcessRunner", "ProcessRunner", "CommandFailed",
]
