"""
Eliot action and message types of the route package.

Fields carry names, counts and port numbers, never whole rule sets: a node
with a thousand routes must not log a thousand rules per deploy.
"""

from eliot import ActionType, Field, MessageType

__all__ = [
    "RUN_COMMAND", "SET_ROUTES", "GET_ROUTES", "SET_LINKS", "GET_LINKS",
    "PREREQUISITES", "LISTENING_PORTS", "RULES_UNCHANGED", "RULES_REPLACED",
    "RULES_ROLLED_BACK", "CONNTRACK_CLEARED", "SYSCTL_SET",
    "ANNOUNCE_CONTAINER",
]

_ARGV = Field("argv", list,
              "The argument vector of a command, prefix included.")
_STDIN_BYTES = Field.for_types(
    "stdin_bytes", [int],
    "How many bytes were written to the command's stdin.")
_STDOUT_BYTES = Field.for_types(
    "stdout_bytes", [int], "How many bytes the command wrote to stdout.")
_NODE = Field.for_types(
    "node", [str], "The node (address or description) the manager acts on.")
_ROUTE_COUNT = Field.for_types("route_count", [int], "How many routes.")
_LINK_COUNT = Field.for_types("link_count", [int], "How many links.")
_CONTAINER_PID = Field.for_types(
    "container_pid", [int], "A process in the container's network namespace.")
_CHANGED = Field.for_types(
    "changed", [bool], "Whether anything on the machine had to change.")
_PORTS = Field("ports", sorted, "TCP port numbers, sorted.")
_PORT = Field.for_types("port", [int], "A TCP port.")
_ADDRESS = Field.for_types("address", [str], "An IPv4 address.")
_RULE_COUNT = Field.for_types("rule_count", [int], "How many rules.")
_SETTINGS = Field("settings", sorted, "Names of kernel settings.")

RUN_COMMAND = ActionType(
    "flocker:route:command",
    [_ARGV, _STDIN_BYTES], [_STDOUT_BYTES],
    "A command run by the route manager.")

SET_ROUTES = ActionType(
    "flocker:route:set_routes",
    [_NODE, _ROUTE_COUNT], [_CHANGED],
    "Make a node's routes exactly the given set.")

GET_ROUTES = ActionType(
    "flocker:route:get_routes",
    [_NODE], [_ROUTE_COUNT],
    "Read the routes installed on a node.")

SET_LINKS = ActionType(
    "flocker:route:set_links",
    [_NODE, _CONTAINER_PID, _LINK_COUNT], [_CHANGED],
    "Make a container's link rules exactly the given set.")

GET_LINKS = ActionType(
    "flocker:route:get_links",
    [_NODE, _CONTAINER_PID], [_LINK_COUNT],
    "Read the link rules installed in a container.")

ANNOUNCE_CONTAINER = ActionType(
    "flocker:route:announce_container",
    [_NODE, _CONTAINER_PID], [Field("addresses", sorted,
                                    "The container addresses announced.")],
    "Record a started container's hardware addresses as the node's "
    "neighbour entries for its IPv4 addresses.")

PREREQUISITES = ActionType(
    "flocker:route:prerequisites",
    [_NODE], [_CHANGED],
    "Make sure a node forwards routed connections at all.")

LISTENING_PORTS = ActionType(
    "flocker:route:listening_ports",
    [_NODE], [_PORTS],
    "List the TCP ports with a listening socket on a node.")

RULES_UNCHANGED = MessageType(
    "flocker:route:rules_unchanged", [_RULE_COUNT],
    "Flocker's rules already were the wanted ones; nothing was run.")

RULES_REPLACED = MessageType(
    "flocker:route:rules_replaced", [_RULE_COUNT],
    "Flocker's chains were flushed and refilled in one iptables-restore run.")

RULES_ROLLED_BACK = MessageType(
    "flocker:route:rules_rolled_back", [_RULE_COUNT],
    "A replacement failed part-way; Flocker's previous rules were put back.")

CONNTRACK_CLEARED = MessageType(
    "flocker:route:conntrack_cleared", [_PORT, _ADDRESS],
    "Connection tracking entries to a route's old target were deleted.")

SYSCTL_SET = MessageType(
    "flocker:route:sysctl_set", [_SETTINGS],
    "Kernel settings that were not 1 and were set to 1.")
