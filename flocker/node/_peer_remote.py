"""
How this node's agent pushes volumes to other nodes' agents.

The agent keeps one Twisted Conch SSH connection per node it pushes to (the
implementation the deploy client uses, :mod:`flocker._ssh`), logs in
with this node's key and trusts only the host keys of the node key's
known_hosts file.  On the other node, sshd forces the key's command,
``flocker-node-bridge --peer --caller NODEID``, which hands the session to
that node's agent (:mod:`flocker.node._peer`); that agent runs the
receiving end of the push itself.  No ``ssh`` process is started here and no
Python process is started there, and a connection made for a pre-copy is
still open for the final increment of the move that follows.

:class:`AgentRemote` is the volume service's *remote* (see
:mod:`flocker.volume._remote`): ``start(address, words)`` gives the push a
command object (lines of the receiving end's answers, how it ended, a way
to stop it) and a pipe to write the stream into, which is fed into the SSH
channel as fast as the receiving side's window lets it.
"""

import hashlib
import os
import socket

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IPushProducer, IReadDescriptor, IStreamClientEndpoint,
)
from zope.interface import implementer

from .._process import MAXIMUM_LINE, OutputLines, ProcessResult
from ..volume._errors import (
    AuthenticationRefused, HostKeyRejected, TargetUnreachable,
)
from ..volume._logging import KEY_SWITCHED_RETRY
from ..volume._process import close_quietly, make_pipe
from ..volume._remote import check_address, check_remote_words

__all__ = ["AgentRemote", "STREAM_CHUNK", "STREAM_READS_PER_TURN"]

#: The most bytes read from the stream pipe at once: one SSH packet's data
#: as OpenSSH's sessions take it (their maximum packet), so the channel
#: sends each read as it is, without cutting it into packets (copies).
STREAM_CHUNK = 32 * 1024

#: Reads of :data:`STREAM_CHUNK` per reactor turn while the window allows.
#: What one turn queues for the TCP connection (these reads, encrypted) is
#: joined into one buffer when it is written; kept under glibc's mmap
#: threshold, which the agent's unit fixes at 128 KiB
#: (``MALLOC_MMAP_THRESHOLD_``), every buffer of the stream comes from the
#: heap and is reused.  Larger ones are mapped and unmapped each time: the
#: kernel then faults in and zeroes every page of the stream again, a good
#: part of the sending agent's CPU.
STREAM_READS_PER_TURN = 3

#: Seconds after which a node that stops answering is given up: TCP
#: keep-alives while the connection idles, and at most this long for sent
#: data to be acknowledged mid-transfer (``TCP_USER_TIMEOUT``), instead of
#: TCP's many minutes.  The same bound as ``ssh``'s ``ServerAliveInterval=5``
#: with ``ServerAliveCountMax=3`` for ``flocker-volume push``.
DEAD_PEER_SECONDS = 15

# Standard output kept for error messages (the receiving end's answers and
# log lines; the stream goes the other way).
_STDOUT_KEPT = 4 * 1024 * 1024


def _tune_socket(sock, seconds=DEAD_PEER_SECONDS):
    """
    Make a connection to another node fail within about ``seconds`` once
    that node stops answering (see :data:`DEAD_PEER_SECONDS`).

    :param socket.socket sock: A connected TCP socket.
    """
    interval = max(1, seconds // 3)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in [("TCP_KEEPIDLE", interval),
                          ("TCP_KEEPINTVL", interval),
                          ("TCP_KEEPCNT", 3),
                          ("TCP_USER_TIMEOUT", seconds * 1000)]:
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option),
                            value)


@implementer(IStreamClientEndpoint)
class _DeadPeerEndpoint(object):
    """
    An ``IStreamClientEndpoint`` whose connections notice a dead peer
    (see :func:`_tune_socket`).
    """

    def __init__(self, endpoint):
        self._endpoint = endpoint

    def connect(self, factory):
        def tune(protocol):
            _tune_socket(protocol.transport.getHandle())
            return protocol
        return self._endpoint.connect(factory).addCallback(tune)


@implementer(IReadDescriptor, IPushProducer)
class _PipeFeeder(object):
    """
    Feeds what is written into a pipe to a running command's standard
    input, paused while the remote side's window is full; closes the
    command's input at the pipe's end.
    """

    def __init__(self, reactor, fd, running):
        os.set_blocking(fd, False)
        self._reactor = reactor
        self._fd = fd
        self._running = running
        self._paused = False
        self._done = False

    def fileno(self):
        return self._fd

    def logPrefix(self):
        return "flocker-peer-push"

    def start(self):
        if not self._paused and not self._done:
            self._reactor.addReader(self)

    def doRead(self):
        for _ in range(STREAM_READS_PER_TURN):
            try:
                data = os.read(self._fd, STREAM_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._finish(close_input=True)
                return
            self._running.write(data)
            if self._paused or self._done:
                # The window is full (or the session ended) now.
                return

    def connectionLost(self, reason):
        # The writer closed the pipe and nothing is left in it.
        self._finish(close_input=True)

    def pauseProducing(self):
        self._paused = True
        if not self._done:
            self._reactor.removeReader(self)

    def resumeProducing(self):
        self._paused = False
        self.start()

    def stopProducing(self):
        self._finish(close_input=False)

    def _finish(self, close_input):
        if self._done:
            return
        self._done = True
        self._reactor.removeReader(self)
        close_quietly(self._fd)
        if close_input:
            self._running.close_input()


class _PeerCommand(object):
    """
    The receiving end of one push, on another node's agent: what the push
    reads and waits for (as from a local child process; see
    :class:`flocker.volume._remote.ProcessCommand`).

    :ivar ended: ``Deferred`` firing with a ``ProcessResult`` once the
        session ended (exit code 255 and the reason as standard error if
        the connection was lost first); never failing.
    """

    def __init__(self, argv):
        self._argv = argv
        self._stdout = bytearray()
        self._lines = OutputLines(argv, MAXIMUM_LINE, self.kill)
        self._running = None
        self._feeder = None
        self.ended = Deferred()

    def received(self, data):
        """
        Standard output arrived.
        """
        self._stdout += data
        del self._stdout[:-_STDOUT_KEPT]
        self._lines.feed(data)

    def next_line(self):
        """
        :return: See ``OutputLines.next_line``: a line over the cap closes
            the session.
        """
        return self._lines.next_line()

    def kill(self):
        """
        Close the session now.
        """
        if self._running is not None:
            self._running.abort()

    def started(self, reactor, running):
        """
        The session runs: feed it from a new pipe.

        :return: ``(self, write_fd)``.
        """
        self._running = running
        read_fd, write_fd = make_pipe()
        feeder = self._feeder = _PipeFeeder(reactor, read_fd, running)
        running.register_producer(feeder)
        feeder.start()
        running.ended.addCallbacks(self._exited, self._lost)
        return self, write_fd

    def _exited(self, outcome):
        exit_code, signal, stderr = outcome
        self._end(exit_code, signal, stderr)

    def _lost(self, failure):
        self._end(255, None, str(failure.value).encode("utf-8"))

    def _end(self, exit_code, signal, stderr):
        # A session that ended before taking the whole stream (the other
        # node's agent died, say) closes the pipe, so whoever writes the
        # stream into it fails instead of waiting for a window that never
        # opens again.
        self._feeder.stopProducing()
        self._lines.close()
        self.ended.callback(ProcessResult(
            argv=self._argv, stdout=bytes(self._stdout), stderr=stderr,
            exit_code=exit_code, signal=signal))


def _read_installed(path, missing):
    """
    :param str path: A file of the installed node key.
    :param str missing: What to say when it does not exist.
    :return: Its content (``bytes``).
    :raises TargetUnreachable: ``missing`` and the path if it does not
        exist; the path and the error if it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise TargetUnreachable("%s: %s is missing" % (missing, path))
    except OSError as e:
        raise TargetUnreachable("cannot read %s: %s" % (
            path, e.strerror or e))


class AgentRemote(object):
    """
    The agent's way to other nodes (see the module docstring): one Conch
    connection per node, made with the node key installed in ``store``
    and trusting only its known_hosts; made again when either changes.
    """

    def __init__(self, reactor, store, connect_timeout=10.0, port=22,
                 username="root", make_runner=None):
        """
        :param reactor: The reactor.
        :param store: This node's ``NodeKeyStore``.
        :param float connect_timeout: Seconds allowed to connect, exchange
            keys and authenticate.
        :param int port: The other nodes' SSH port.
        :param str username: The user logged in as on the other nodes.
        :param make_runner: ``None``, or a callable taking no arguments
            that returns the ``ICommandRunner`` for the key and known hosts
            installed now, in place of Conch's (for tests).
        """
        self._reactor = reactor
        self._store = store
        self._port = port
        self._username = username
        self._connect_timeout = connect_timeout
        self._make_runner = make_runner or self._conch_runner
        self._runner = None
        self._runner_key = None
        # Sessions running on each runner: one replaced by a new key or new
        # host keys is closed only once its last session ended, so a push
        # under way when a rotation switches the key is not cut off.
        self._sessions = {}

    def _endpoint(self, address, port):
        return _DeadPeerEndpoint(HostnameEndpoint(
            self._reactor, address, port, timeout=self._connect_timeout))

    @property
    def known_hosts(self):
        """
        The known hosts file other nodes' host keys are checked against.
        """
        return self._store.known_hosts_path

    def _current_runner(self):
        """
        :return: ``(runner, digest)``: the runner for the key and known
            hosts installed now, and their digest.
        :raises TargetUnreachable: No usable node key is installed.
        """
        key = _read_installed(
            self._store.identity_path,
            "this node has no node key yet (the agent makes it at start: "
            "see flocker-node doctor)")
        known = _read_installed(
            self._store.known_hosts_path,
            "this node has no known hosts for the other nodes yet; run "
            "flocker-deploy to install them")
        digest = hashlib.sha256(key + b"\0" + known).digest()
        if digest != self._runner_key:
            runner = self._make_runner()
            old, self._runner, self._runner_key = self._runner, runner, digest
            if old is not None and old not in self._sessions:
                old.close()
        return self._runner, self._runner_key

    def _conch_runner(self):
        """
        :return: A Conch ``SSHCommandRunner`` logging in with the installed
            key and trusting only the installed known hosts.
        :raises TargetUnreachable: If either cannot be used.
        """
        # Conch and the deploy client's SSH code are loaded by the first
        # push, not by every agent at start.
        from .._ssh import (
            KnownHosts, SSHCommandRunner, SSHConfigurationError,
            load_identities,
        )
        try:
            return SSHCommandRunner(
                self._reactor,
                known_hosts=KnownHosts.from_path(
                    self._store.known_hosts_path),
                identities=load_identities([self._store.identity_path]),
                connect_timeout=self._connect_timeout, port=self._port,
                username=self._username, endpoint_factory=self._endpoint)
        except SSHConfigurationError as e:
            raise TargetUnreachable(
                "this node's key cannot be used: %s" % (e,))

    def _release(self, runner):
        """
        One session on ``runner`` ended (or never started): close it if it
        was replaced and this was its last.
        """
        if runner not in self._sessions:
            # Closed with the remote already.
            return
        self._sessions[runner] -= 1
        if not self._sessions[runner]:
            del self._sessions[runner]
            if runner is not self._runner:
                runner.close()

    def start(self, address, words):
        """
        Start ``flocker-volume WORDS`` on node ``address``: there, its
        agent runs what the key allows (a push's receiving end).

        :return: ``Deferred`` firing with ``(command, stdin_write)``;
            failing with ``TargetUnreachable``, ``AuthenticationRefused``
            or ``HostKeyRejected``.
        """
        check_address(address)
        argv = ["flocker-volume"] + list(words)
        check_remote_words(argv)
        return self._start(address, argv, retry=True)

    def _start(self, address, argv, retry):
        """
        See :meth:`start`; with ``retry``, a login refused with a key this
        node has switched from since (a rotation) is tried once more with
        the new one.
        """
        runner, key = self._current_runner()
        self._sessions[runner] = self._sessions.get(runner, 0) + 1
        command = _PeerCommand(["ssh", address] + argv)
        d = runner.start(address, argv, command.received)

        def started(running):
            command.ended.addBoth(lambda result: (
                self._release(runner), result)[1])
            return command.started(self._reactor, running)

        def failed(failure):
            from .._ssh import (
                AuthenticationFailed, HostKeyError, NodeUnreachable,
            )
            self._release(runner)
            error = failure.value
            if retry and failure.check(AuthenticationFailed) and (
                    self._current_runner()[1] != key):
                KEY_SWITCHED_RETRY.log(target=address, reason=str(error))
                return self._start(address, argv, retry=False)
            if failure.check(HostKeyError):
                raise HostKeyRejected(
                    "node %s: its SSH host key is not the one %s lists for "
                    "it; refusing to send to it (run flocker-deploy to "
                    "refresh the nodes' known hosts, after checking the "
                    "node): %s" % (address, self.known_hosts, error.reason))
            if failure.check(AuthenticationFailed):
                raise AuthenticationRefused("cannot reach node %s: %s" % (
                    address, error.reason))
            if failure.check(NodeUnreachable):
                raise TargetUnreachable("cannot reach node %s: %s" % (
                    address, error.reason))
            return failure
        d.addCallbacks(started, failed)
        return d

    def close(self):
        """
        Close every connection.

        :return: ``Deferred`` firing once they are closed.
        """
        runners = set(self._sessions)
        if self._runner is not None:
            runners.add(self._runner)
        self._runner, self._runner_key = None, None
        self._sessions.clear()
        return DeferredList([runner.close() for runner in runners],
                            consumeErrors=True).addCallback(lambda _: None)
