"""
TCP options of an SSH connection, so its small messages (AMP requests and
answers) go out and are acknowledged at once: :func:`send_at_once` turns
Nagle's algorithm off (``TCP_NODELAY``), :func:`acknowledge_at_once` asks
Linux to acknowledge each read without the delayed-acknowledgement timer
(``TCP_QUICKACK``).  Why both ends matter is in ``docs/architecture.rst``.
A transport that is not TCP is left as it is.
"""

import socket

from twisted.internet.interfaces import ITCPTransport

__all__ = []

#: Linux's option; ``None`` where the platform has none (then only
#: ``TCP_NODELAY`` applies).
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def send_at_once(transport):
    """
    Turn Nagle's algorithm off on ``transport``'s socket.

    :param transport: The connection's transport (any; only a TCP one is
        changed).
    """
    if ITCPTransport.providedBy(transport):
        transport.setTcpNoDelay(True)


def acknowledge_at_once(transport):
    """
    Have the kernel acknowledge what ``transport`` has just read now,
    rather than after its delayed-acknowledgement timer.

    :param transport: The connection's transport (any; only a TCP one's
        socket is changed).  A socket that refuses the option (closing
        already) is left as it is: the option only saves time.
    """
    if _TCP_QUICKACK is None or not ITCPTransport.providedBy(transport):
        return
    try:
        transport.getHandle().setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK,
                                         1)
    except OSError:
        pass
