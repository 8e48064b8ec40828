"""
What this node's commands tell and reach of its agent: an option, else the
environment, else the default.
"""

import socket

from ._bridge import DEFAULT_AGENT_SOCKET

__all__ = ["agent_socket_path", "node_address"]


def agent_socket_path(given, environ):
    """
    :param given: The path an option gave, or ``None``.
    :param environ: The process environment.
    :return: The agent's socket: ``given``, else ``$FLOCKER_AGENT_SOCKET``,
        else :data:`~flocker._bridge.DEFAULT_AGENT_SOCKET`.
    """
    return (given or environ.get("FLOCKER_AGENT_SOCKET")
            or DEFAULT_AGENT_SOCKET)


def node_address(given, environ):
    """
    :param given: The address an option gave, or ``None``.
    :param environ: The process environment.
    :return: This node's address as deployments name it: ``given``, else
        ``$FLOCKER_NODE_ADDRESS``, else the host name.
    """
    return (given or environ.get("FLOCKER_NODE_ADDRESS")
            or socket.gethostname())
