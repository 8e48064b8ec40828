"""
``flocker-node-bridge`` for the package's own users: it lives in the
top-level module :mod:`flocker_bridge`, outside this package, so that
starting it (another node's every push does) does not import the package.
"""

from flocker_bridge import (
    DEFAULT_AGENT_SOCKET, DEFAULT_PEER_SOCKET, MAXIMUM_VERDICT, bridge,
    console_main, main, peer_bridge,
)

__all__ = ["DEFAULT_AGENT_SOCKET", "DEFAULT_PEER_SOCKET", "MAXIMUM_VERDICT",
           "bridge", "peer_bridge", "main", "console_main"]

if __name__ == "__main__":
    console_main()
