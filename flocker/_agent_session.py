"""
One command asked of this node's running agent over its Unix socket, as the
node's own commands do (``flocker-node report`` and ``expect``,
``flocker-volume push`` and ``handoff``): connect, say ``Hello`` with the
protocol version, run the command, disconnect; every way it can fail is one
line (:class:`~flocker.volume._errors.AgentUnavailable` or
:class:`~flocker.volume._errors.AgentError`, which ``flocker-volume``
reports as the volume service's errors).
"""

from eliot.twisted import DeferredContext
from twisted.internet.defer import inlineCallbacks

from ._text import one_line
from .volume._errors import AgentError, AgentUnavailable

__all__ = ["AGENT_STATUS_COMMAND", "agent_unavailable", "call_agent",
           "unix_connector"]

#: What an operator looks at when this node's agent does not answer.
AGENT_STATUS_COMMAND = "systemctl status flocker-node"


def agent_unavailable(socket_path):
    """
    :param str socket_path: Where the agent was looked for.
    :return: The :class:`AgentUnavailable` saying, in one plain line, that
        nothing answers there and what to look at.
    """
    return AgentUnavailable(
        "this node's agent does not answer on %s: is flocker-node agent "
        "running? see %s" % (socket_path, AGENT_STATUS_COMMAND))


def unix_connector(reactor):
    """
    :return: A ``connect(socket_path, protocol)`` for :func:`call_agent`:
        a Unix socket connection, given up after 5 seconds.
    """
    from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol

    def connect(path, protocol):
        return connectProtocol(UNIXClientEndpoint(reactor, path, timeout=5),
                               protocol)
    return connect


@inlineCallbacks
def _session(connect, socket_path, address, log):
    """
    :return: ``Deferred`` firing with a connected ``AgentClientProtocol``
        that said ``Hello``.
    :raises AgentUnavailable: If nothing answers on the socket.
    :raises AgentError: If the agent refuses the handshake.
    """
    # The node package imports the volume package: imported when used.
    from .node._amp import PROTOCOL_VERSION, AgentClientProtocol, Hello
    protocol = AgentClientProtocol(log=log)
    try:
        yield connect(socket_path, protocol)
    except Exception:
        # Twisted's wording (errno, "Connection was refused by other
        # side") adds nothing to the socket's path.
        raise agent_unavailable(socket_path)
    try:
        yield protocol.callRemote(Hello, version=PROTOCOL_VERSION,
                                  address=address)
    except Exception as e:
        protocol.transport.loseConnection()
        raise AgentError("this node's agent: %s" % (one_line(e),))
    return protocol


def call_agent(connect, socket_path, address, action, call, log=None):
    """
    Run one command of this node's agent inside ``action``.

    :param connect: ``connect(socket_path, protocol)`` returning a
        ``Deferred`` firing once ``protocol`` is connected to the agent
        (:func:`unix_connector`, or a replacement in tests).
    :param str socket_path: The agent's socket.
    :param str address: This node's address as deployments name it (sent
        in the protocol's ``Hello``).
    :param action: The eliot ``Action`` of the command (from the calling
        package's ``_logging``), not yet started: it lasts from connecting
        to the command's end, and the agent continues its task.
    :param call: Callable given the connected ``AgentClientProtocol`` and
        the serialised task id of ``action``, returning a ``Deferred``
        firing with the command's result.
    :param log: ``None``, or a callable given each eliot message the agent
        sends back for the command's task.
    :return: ``Deferred`` firing with what ``call``'s ``Deferred`` fired
        with, or failing with :class:`AgentUnavailable` (nothing answers on
        the socket) or :class:`AgentError` (one line: the agent's refusal,
        or the connection lost under the command).
    """
    @inlineCallbacks
    def run():
        protocol = yield _session(connect, socket_path, address, log)
        try:
            result = yield call(
                protocol, action.serialize_task_id().decode("ascii"))
        except AgentError:
            raise
        except Exception as e:
            # The agent's one line (OperationFailed), or the connection
            # lost under the command.
            raise AgentError(one_line(e) or
                             "this node's agent closed the connection; "
                             "see " + AGENT_STATUS_COMMAND)
        finally:
            protocol.transport.loseConnection()
        return result
    with action.context():
        return DeferredContext(run()).addActionFinish()
