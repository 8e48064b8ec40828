"""
Reaching a node's agent over the deploy's SSH connection to that node.

The agent listens on a Unix socket on the node
(:data:`~flocker._bridge.DEFAULT_AGENT_SOCKET`).  The client opens a
``direct-streamlocal@openssh.com`` channel to it on the node's shared Conch
connection (OpenSSH's forwarding of Unix sockets, on by default in sshd):
nothing is started on the node.  Where sshd refuses such channels
(``AllowStreamLocalForwarding no``, ``DisableForwarding``, a ``restrict``
key), the client runs ``flocker-node-bridge`` instead, which joins its
standard input and output to the socket.  The bytes are the same either
way.  (OpenSSH refuses a channel it may not open and one whose socket
nobody listens on alike, so a refused channel is followed by the bridge,
which then either works or says why the agent cannot be reached.)
"""

import struct

from twisted.conch.error import ConchError
from twisted.conch.ssh.channel import SSHChannel
from twisted.conch.ssh.common import NS
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from .._bridge import DEFAULT_AGENT_SOCKET
from .._ssh import NodeUnreachable

__all__ = ["AgentUnavailable", "StreamLocalChannel", "ssh_agent_connector",
           "STREAMLOCAL", "BRIDGE", "DEFAULT_BRIDGE_COMMAND"]

#: The ways of reaching an agent, as :func:`ssh_agent_connector` reports
#: them.
STREAMLOCAL = "direct-streamlocal channel"
BRIDGE = "flocker-node-bridge"

#: The bridge command run where streamlocal channels are refused.
DEFAULT_BRIDGE_COMMAND = ("flocker-node-bridge",)

class AgentUnavailable(NodeUnreachable):
    """
    The node answered over SSH, but its Flocker agent did not: it is not
    running, or its socket cannot be opened.
    """

    def __str__(self):
        return ("the Flocker agent on the node does not answer: %s (see "
                "systemctl status flocker-node there)" % (self.reason,))


class StreamLocalChannel(SSHChannel):
    """
    A ``direct-streamlocal@openssh.com`` channel carrying a protocol's
    bytes: the protocol is connected once the channel is open (the channel
    is its transport), and loses its connection when the channel closes.
    """
    name = b"direct-streamlocal@openssh.com"

    def __init__(self, protocol, opened, *args, **kwargs):
        """
        :param protocol: The ``IProtocol`` to connect.
        :param Deferred opened: Fired with the channel once open; failed
            with the server's ``ConchError`` (``.data`` is the reason code)
            if it refused.
        """
        SSHChannel.__init__(self, *args, **kwargs)
        self._protocol = protocol
        self._opened = opened

    @staticmethod
    def open_data(path):
        """
        :param str path: The socket on the node.
        :return: The channel's open request data.
        """
        return (NS(path.encode("utf-8")) + NS(b"")
                + struct.pack(">L", 0))

    def channelOpen(self, specificData):
        self._protocol.makeConnection(self)
        self._opened.callback(self)

    def openFailed(self, reason):
        # Conch passes the ConchError itself (or, for a lost connection, a
        # Failure).
        self._opened.errback(reason if isinstance(reason, Failure)
                             else Failure(reason))

    def dataReceived(self, data):
        self._protocol.dataReceived(data)

    def eofReceived(self):
        self.loseConnection()

    def closed(self):
        if self._opened.called:
            self._protocol.connectionLost(Failure(ConnectionDone()))

    def abortConnection(self):
        self.loseConnection()


class _CommandTransport(object):
    """
    A running command's standard input and output as a protocol's
    transport (the bridge).
    """

    def __init__(self, running):
        self._running = running
        self.disconnecting = False

    def write(self, data):
        self._running.write(data)

    def writeSequence(self, data):
        self._running.write(b"".join(data))

    def loseConnection(self):
        if not self.disconnecting:
            self.disconnecting = True
            self._running.close_input()

    abortConnection = loseConnection

    def getPeer(self):
        return None

    def getHost(self):
        return None


def _bridge_ended(address, protocol, said):
    """
    :return: Callbacks for how the bridge command ended: the protocol
        loses its connection, with :class:`AgentUnavailable` (saying what
        the bridge said) if it failed.
    """
    def ended(outcome):
        exit_code, signal, stderr = outcome
        if exit_code == 0:
            reason = ConnectionDone()
        else:
            line = [text for text in stderr.decode("utf-8", "replace")
                    .splitlines() if text.strip()]
            reason = AgentUnavailable(address, line[-1].strip() if line else
                                      "flocker-node-bridge exited with %s" % (
                                          exit_code if exit_code is not None
                                          else "signal %s" % (signal,)))
        said.append(reason)
        protocol.connectionLost(Failure(reason))

    def lost(failure):
        said.append(failure.value)
        protocol.connectionLost(failure)
    return ended, lost


def ssh_agent_connector(runner, socket_path=DEFAULT_AGENT_SOCKET,
                        bridge=DEFAULT_BRIDGE_COMMAND):
    """
    :param runner: The :class:`~flocker._ssh.SSHCommandRunner` holding
        the nodes' connections.
    :param str socket_path: The agent's socket on the nodes.
    :param bridge: The bridge command's argument vector (``--socket PATH``
        is added when ``socket_path`` is not the default).
    :return: ``connect(address, protocol)`` returning a ``Deferred`` that
        fires with the way used (:data:`STREAMLOCAL` or :data:`BRIDGE`)
        once ``protocol`` is connected to the node's agent, or fails with
        :class:`AgentUnavailable`, ``NodeUnreachable`` or ``HostKeyError``.
    """
    bridge_argv = list(bridge)
    if socket_path != DEFAULT_AGENT_SOCKET:
        bridge_argv += ["--socket", socket_path]

    def through_bridge(address, protocol):
        said = []

        def received(data):
            protocol.dataReceived(data)

        def started(running):
            protocol.makeConnection(_CommandTransport(running))
            ended, lost = _bridge_ended(address, protocol, said)
            running.ended.addCallbacks(ended, lost)
            return BRIDGE
        return runner.start(address, bridge_argv, received).addCallback(
            started)

    def connect(address, protocol):
        def make_channel():
            opened = Deferred()
            return (StreamLocalChannel(protocol, opened), opened,
                    StreamLocalChannel.open_data(socket_path))
        d = runner.open_channel(address, make_channel)

        def refused(failure):
            failure.trap(ConchError)
            # OpenSSH answers "open failed" both when its configuration
            # forbids Unix socket forwarding and when nothing listens on
            # the socket; the bridge works in the first case and says
            # exactly what is wrong in the second.
            return through_bridge(address, protocol)
        return d.addCallbacks(lambda _: STREAMLOCAL, refused)
    return connect
