"""
The node agent's door for other nodes: the *peer socket*.

Another node pushes a volume here by logging in over SSH with its own key,
whose ``authorized_keys`` line (see :mod:`flocker.volume._nodekey`) forces
``flocker-node-bridge --peer --caller NODEID``: the bridge connects to this
socket and hands over, in one message, the caller's identity as that line
names it, the command the caller asked for (``SSH_ORIGINAL_COMMAND``) and
the SSH session's standard input and output as descriptors.  The agent
then runs the receiving end of the push itself
(:meth:`~flocker.volume.IVolumeService.receive`: ``zfs receive`` under the
receive policy of :mod:`flocker.volume._stream`), reading the stream
straight from sshd's pipe and writing its answers to the caller, and
finally sends the bridge its verdict (``{"exit": N, "error": LINE}``),
with which the bridge exits.

What a peer may do here is exactly one thing: push a volume, as
:func:`flocker.volume._forced.peer_request` reads the command and
:mod:`flocker.volume._policy` decides with the caller's identity and the
agent's record of expected senders (:mod:`flocker.node._senders`): the
copy must follow the caller, or be absent and expected from the caller
(or, for a volume of an automatic group this node is in, absent and the
caller the holder of the group's lease, as this node reads it from etcd),
and records the caller as its owner.  Nothing of the agent's own protocol
(acquire, the deploy lock, applications, keys) is reachable from this
socket.

The socket lives beside the agent's, in the same root-only directory, and
only root may connect (the bridge runs as root under sshd): a connection
from another user is dropped before anything is read.
"""

import json
import os
import socket
import struct

from contextlib import nullcontext

from eliot import Action, write_failure
from eliot.json import json_default
from eliot.twisted import DeferredContext
from twisted.internet import main as _main
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import (
    IFileDescriptorReceiver, IHalfCloseableProtocol,
)
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from .._identifiers import is_node_identity
from .._text import one_line
from ..volume import VolumeError
from ..volume._forced import CommandRefused, peer_request
from ._logging import PEER_RECEIVE, PEER_REFUSED

__all__ = ["PeerFactory", "PeerProtocol", "MAXIMUM_HEADER_BYTES"]

#: The longest first message a bridge may send (identity and command).
MAXIMUM_HEADER_BYTES = 64 * 1024

_PEERCRED = struct.Struct("3i")


class _AnswerWriter(FileDescriptor):
    """
    Writes the answers of a push to the caller's SSH session (its standard
    output, a pipe to sshd) without ever blocking the agent: a caller that
    stops reading holds up its own push, not the agent.
    """

    def __init__(self, reactor, fd):
        FileDescriptor.__init__(self, reactor)
        os.set_blocking(fd, False)
        self._fd = fd
        self.connected = 1

    def fileno(self):
        return self._fd

    def writeSomeData(self, data):
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            return _main.CONNECTION_LOST

    def connectionLost(self, reason):
        FileDescriptor.connectionLost(self, reason)
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def message(self, value):
        """
        :param dict value: One protocol message, sent as a JSON line.
        """
        if self.connected and not self.disconnecting:
            self.write(json.dumps(value, default=json_default).encode(
                "utf-8") + b"\n")


def _peer_uid(transport):
    """
    :return: The user id of the process at the other end of a Unix socket
        transport, or ``None`` if it cannot be told.
    """
    try:
        data = transport.getHandle().getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except (OSError, AttributeError):
        return None
    return _PEERCRED.unpack(data)[1]


@implementer(IFileDescriptorReceiver, IHalfCloseableProtocol)
class PeerProtocol(Protocol):
    """
    One push from another node, handed over by its ``flocker-node-bridge
    --peer``.
    """

    def __init__(self, reactor, volumes, log_router, uid, senders,
                 groups=lambda name: None):
        self._senders = senders
        self._groups = groups
        self._reactor = reactor
        self._volumes = volumes
        self._log_router = log_router
        self._uid = uid
        self._buffer = b""
        self._fds = []
        self._started = False
        self._answers = None
        self._task_uuid = None

    def connectionMade(self):
        uid = _peer_uid(self.transport)
        if uid != self._uid:
            self._refuse("a connection from user %s" % (uid,), None)

    def fileDescriptorReceived(self, descriptor):
        if self._started or len(self._fds) >= 2:
            os.close(descriptor)
            self._refuse("more than two descriptors", "protocol error")
            return
        self._fds.append(descriptor)

    def dataReceived(self, data):
        if self._started:
            return
        self._buffer += data
        if b"\n" not in self._buffer:
            if len(self._buffer) > MAXIMUM_HEADER_BYTES:
                self._refuse("a header over %d bytes" % (
                    MAXIMUM_HEADER_BYTES,), "protocol error")
            return
        line = self._buffer.split(b"\n", 1)[0]
        self._started = True
        self._start(line)

    def readConnectionLost(self):
        # The bridge says everything with its first message and then only
        # waits for the verdict.
        if not self._started:
            self._refuse("a connection closed before its request",
                         "protocol error")

    def writeConnectionLost(self):
        pass

    def _refuse(self, what, verdict):
        PEER_REFUSED.log(what=what)
        if verdict is not None and self.transport is not None:
            self.transport.write(json.dumps({
                "exit": 1, "error": "refused: %s" % (verdict,)}).encode(
                    "utf-8"))
        self._close_fds()
        self.transport.loseConnection()

    def _close_fds(self):
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def _start(self, line):
        try:
            header = json.loads(line.decode("utf-8"))
            caller, command = header["caller"], header["command"]
            if not is_node_identity(caller):
                raise ValueError(caller)
            if command is not None and not isinstance(command, str):
                raise ValueError(command)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            self._refuse("an unreadable header", "protocol error")
            return
        if len(self._fds) != 2:
            self._refuse("%d descriptors, not 2" % (len(self._fds),),
                         "protocol error")
            return
        try:
            task, name = peer_request(command)
        except CommandRefused as e:
            self._refuse("node %s asked for %r" % (caller, command), str(e))
            return
        stream, output = self._fds
        self._fds = []
        self._stream = stream
        self._answers = _AnswerWriter(self._reactor, output)
        self._receive(caller, task, name)

    def _receive(self, caller, task, name):
        action = None
        if task is not None:
            try:
                action = Action.continue_task(task_id=task)
            except Exception:
                action = None
        if action is not None:
            # Watched before the task is continued: continuing logs the
            # first message the caller must get.
            self._task_uuid = task.partition("@")[0]
            self._log_router.watch(self._task_uuid, self)
        with (nullcontext() if action is None else action.context()):
            with PEER_RECEIVE(caller=caller, volume=name).context():
                d = DeferredContext(maybeDeferred(
                    self._volumes().receive, name, self._stream,
                    self._answers.message, caller=caller,
                    expected=self._senders(name),
                    group=self._groups(name)))
                d = d.addActionFinish()
        d.addCallbacks(lambda _: self._finish(0, None), self._failed)

    def forward_log(self, message):
        """
        Pass an eliot message of the push's task on to the caller, which
        adds it to its own log: both ends of a push make one tree.
        """
        if self._answers is not None:
            self._answers.message({"eliot": message})

    def _failed(self, failure):
        if failure.check(VolumeError):
            error = failure.value
            self._answers.message({"error": type(error).__name__,
                                   "message": error.message})
            self._finish(1, error.message)
        else:
            # A bug: logged here with its traceback; the caller sees a
            # failed push.
            write_failure(failure)
            self._finish(1, "internal error in the Flocker agent (%s: %s; "
                         "its log has the traceback)" % (
                             failure.type.__name__,
                             failure.getErrorMessage()[:200]))

    def _finish(self, status, error):
        if self._task_uuid is not None:
            self._log_router.unwatch(self._task_uuid, self)
            self._task_uuid = None
        os.close(self._stream)
        self._answers.loseConnection()
        verdict = {"exit": status}
        if error is not None:
            verdict["error"] = one_line(error)
        if self.transport is not None:
            self.transport.write(json.dumps(verdict).encode("utf-8"))
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self._close_fds()


class PeerFactory(Factory):
    """
    Serves the peer socket.
    """

    def __init__(self, reactor, volumes, log_router, uid=None,
                 senders=lambda name: frozenset(),
                 groups=lambda name: None):
        """
        :param reactor: The reactor.
        :param volumes: Callable returning the node's current
            ``IVolumeService`` provider.
        :param log_router: The agent's eliot router (see
            :class:`flocker.node._server.AgentService`).
        :param uid: The only user allowed to connect (this process's
            effective user if ``None``).
        :param senders: Callable given a volume name, returning the
            identities of the nodes a first copy of it may come from (the
            agent's :meth:`~flocker.node._senders.ExpectedSenders.expected`;
            by default none: every first copy from a node is refused).
        :param groups: Callable given a volume name, returning what a
            receive asks about its automatic group (the agent's
            :meth:`~flocker.node._senders.FirstCopyGroups.group`), or
            ``None`` for a volume of no group this node is in (the
            default for every volume).
        """
        self._senders = senders
        self._groups = groups
        self._reactor = reactor
        self._volumes = volumes
        self._log_router = log_router
        self._uid = os.geteuid() if uid is None else uid

    def buildProtocol(self, address):
        return PeerProtocol(self._reactor, self._volumes, self._log_router,
                            self._uid, self._senders, self._groups)
