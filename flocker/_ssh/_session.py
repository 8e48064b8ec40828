"""
The session channel: one command run on a node's connection, its output
collected or handed on as it arrives.
"""

import struct

import attr
from twisted.conch.ssh.channel import SSHChannel
from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

__all__ = ["RunningCommand"]


@attr.s(frozen=True, slots=True)
class _Outcome(object):
    """
    How a remote command ended.

    :ivar exit_code: Exit status or ``None``.
    :ivar signal: Signal name or ``None``.
    :ivar bytes stdout: Everything it wrote to standard output.
    :ivar bytes stderr: Everything it wrote to standard error.
    """
    exit_code = attr.ib()
    signal = attr.ib()
    stdout = attr.ib()
    stderr = attr.ib()


class _ChannelNotOpened(Exception):
    """
    A session channel could not be opened or its exec request was refused;
    the command did not start.

    :ivar bool connection_lost: The connection was gone before the command
        started (so running it on a new connection is safe).
    """

    def __init__(self, reason, connection_lost):
        Exception.__init__(self, reason)
        self.reason = reason
        self.connection_lost = connection_lost


class _CommandChannel(SSHChannel):
    """
    A session channel executing one command: its standard output is handed
    on as it arrives, its standard input written at will (see
    :class:`RunningCommand`); :func:`_run_once` makes a one-shot command of
    it.
    """
    name = b"session"

    #: Standard error kept for error messages: the end of it.
    STDERR_KEPT = 256 * 1024

    def __init__(self, command, received, started, ended):
        """
        :param bytes command: The quoted command line.
        :param received: Callable given each piece of standard output.
        :param started: ``Deferred`` fired with a :class:`RunningCommand`
            once the command runs, or failed with :class:`_ChannelNotOpened`.
        :param ended: ``Deferred`` fired with an :class:`_Outcome` (without
            stdout) once it ended, or failed with ``ConnectionLost``.
        """
        SSHChannel.__init__(self)
        self._command = command
        self._received = received
        self._started = started
        self._ended = ended
        self._stderr = b""
        self._exit_code = None
        self._signal = None
        self._exited = False
        self._eof_pending = False
        self._producer = None

    def openFailed(self, reason):
        value = getattr(reason, "value", reason)
        self._started.errback(Failure(_ChannelNotOpened(
            value, isinstance(value, ConnectionLost))))

    def channelOpen(self, specificData):
        requested = self.conn.sendRequest(
            self, b"exec", NS(self._command), wantReply=True)
        requested.addCallbacks(
            lambda _: self._started.callback(
                RunningCommand(self, self._ended)),
            lambda _: self.loseConnection())

    def send(self, data):
        """
        Write ``data`` to the command's standard input.
        """
        self.write(data)

    def close_input(self):
        """
        End the command's standard input once everything written is sent.
        """
        self._eof_pending = True
        self._send_eof_if_flushed()

    def _send_eof_if_flushed(self):
        # EOF must follow every byte of stdin; bytes still waiting for the
        # peer's window are sent by addWindowBytes.
        if self._eof_pending and not self.buf and not self.closing:
            self._eof_pending = False
            self.conn.sendEOF(self)

    def addWindowBytes(self, data):
        SSHChannel.addWindowBytes(self, data)
        self._send_eof_if_flushed()

    def register_producer(self, producer):
        """
        Have ``producer`` (``pauseProducing``/``resumeProducing``) paused
        while the peer's window is full and resumed once it opens: a
        stream written as fast as it is read then holds at most a window's
        worth in memory.
        """
        self._producer = producer
        if not self.areWriting:
            producer.pauseProducing()

    def stopWriting(self):
        if self._producer is not None:
            self._producer.pauseProducing()

    def startWriting(self):
        if self._producer is not None:
            self._producer.resumeProducing()

    def close_now(self):
        """
        Close the channel at once, dropping whatever still waits for the
        peer's window.
        """
        # SSHChannel.loseConnection sends the close only once everything
        # buffered has gone out, and a peer that stopped reading (its
        # command killed, its window never reopened) never lets it: the
        # channel, and whatever waits for its end, would stay open forever.
        self.buf = b""
        self.extBuf = []
        self._eof_pending = False
        self.loseConnection()

    def closeReceived(self):
        # The peer closed its end: nothing buffered can reach it any more.
        self.close_now()

    def dataReceived(self, data):
        self._received(data)

    def extReceived(self, dataType, data):
        if dataType == EXTENDED_DATA_STDERR:
            self._stderr = (self._stderr + data)[-self.STDERR_KEPT:]

    def request_exit_status(self, data):
        (self._exit_code,) = struct.unpack(">L", data[:4])
        self._exited = True
        return True

    def request_exit_signal(self, data):
        name, rest = getNS(data)
        self._signal = name.decode("ascii", "replace")
        self._exited = True
        return True

    def closed(self):
        if not self._started.called:
            self._started.errback(Failure(_ChannelNotOpened(
                "the server refused to execute the command", False)))
        elif not self._exited and getattr(self.conn, "lost", False):
            self._ended.errback(Failure(ConnectionLost(
                "connection lost while the command ran")))
        else:
            self._ended.callback(_Outcome(
                exit_code=self._exit_code, signal=self._signal, stdout=b"",
                stderr=self._stderr))


def _run_once(open_channel, command, stdin):
    """
    Run one command on a channel: write ``stdin``, close the input, collect
    the output.

    :param open_channel: Callable given the :class:`_CommandChannel` to
        open.
    :param bytes command: The quoted command line.
    :param bytes stdin: Its standard input.
    :return: ``Deferred`` firing with an :class:`_Outcome`, or failing with
        :class:`_ChannelNotOpened` or ``ConnectionLost``.
    """
    stdout = []
    started, ended = Deferred(), Deferred()
    open_channel(_CommandChannel(command, stdout.append, started, ended))

    def feed(running):
        if stdin:
            running.write(stdin)
        running.close_input()
        return ended
    started.addCallback(feed)
    return started.addCallback(
        lambda outcome: attr.evolve(outcome, stdout=b"".join(stdout)))


class RunningCommand(object):
    """
    A command started with :meth:`ICommandRunner.start`, still running.

    :ivar ended: ``Deferred`` firing once the command has ended with
        ``(exit_code, signal, stderr)`` (the exit status or ``None``, the
        signal name or ``None``, the end of its standard error), or failing
        with :class:`NodeUnreachable` if the connection was lost first.
    """

    def __init__(self, channel, ended):
        self._channel = channel
        self.ended = ended

    def write(self, data):
        """
        :param bytes data: Written to the command's standard input.
        """
        self._channel.send(data)

    def close_input(self):
        """
        Close the command's standard input (after everything written).
        """
        self._channel.close_input()

    def register_producer(self, producer):
        """
        Pace ``producer`` (an ``IPushProducer``) by the remote side's
        window (see :meth:`_CommandChannel.register_producer`).
        """
        self._channel.register_producer(producer)

    def abort(self):
        """
        Close the command's channel now, whatever is still unsent: the
        node ends the command (its input and output close).
        """
        self._channel.close_now()
