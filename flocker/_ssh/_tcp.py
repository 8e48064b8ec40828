"""
TCP options of an SSH connection: its small messages go out at once.

A deploy, and an agent's push, speak AMP to a node's agent through an SSH
channel: a request is a few hundred bytes, and a move waits for each
answer.  Nagle's algorithm holds a small segment back while an earlier
one is unacknowledged, and the peer's kernel delays its acknowledgement
by up to 40 ms while it has nothing to send back.  On the lab that stall
was in the deploy logs of moves: a command that followed another on the
same connection reached the agent 10-40 ms after it was sent, and an
answer that followed the node's log messages reached the client 40 ms
after the agent sent it.

Both ends of the client's connection are fixed here:

* :func:`send_at_once` turns Nagle off on our side (``TCP_NODELAY``), as
  ssh(1) does for its interactive sessions;
* :func:`acknowledge_at_once` asks the kernel to acknowledge what was
  just read without delay (Linux's ``TCP_QUICKACK``, which the kernel
  clears again by itself, so it is asked at every read).  sshd turns
  Nagle off only for a connection that runs a command session; a
  connection used for the agent's Unix-socket channel alone keeps it, and
  our prompt acknowledgements are what let its held answers go.

Neither changes what is sent, only when: a transport that is not TCP (a
test's, a Unix socket's) is left as it is.
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
