"""
``flocker-node serve``: many calls answered by one node process.

The session protocol (request, answer, log and progress lines) is documented
in :mod:`flocker.node._protocol`.  A session exists for speed: a deploy step
through a session costs only its own work, where a single call also pays for
starting Python, loading Flocker and opening Docker and the pool (about half
a second on a small machine, most of a quick step).
"""

import traceback
from io import StringIO

from eliot import add_destinations, remove_destination
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

from .._lines import LineBuffer
from .._serialize import SerializationError
from ._protocol import (
    EXIT_FAILED, EXIT_USAGE, PROGRESS_INTERVAL, decode_request, encode_log,
    encode_progress, encode_response,
)

__all__ = ["SessionProtocol", "TransferProgress", "MAXIMUM_REQUEST_BYTES"]

#: The longest request line a session accepts (a route table for thousands
#: of applications is a few hundred KiB).
MAXIMUM_REQUEST_BYTES = 64 * 1024 * 1024


class TransferProgress(object):
    """
    The progress of one volume transfer a session's request runs, sent to
    the client as progress lines: the ``progress`` object the volume
    service is given (``update(sent, total)`` and ``finish()``).

    A transfer reports every chunk it pumps, hundreds a second; the client
    only draws a few a second, so at most one line goes out per
    ``interval`` (the latest figures), plus the final figures at
    ``finish``.  Figures that arrive in between are not lost, only
    superseded.
    """

    def __init__(self, clock, send, identifier, volume, target,
                 interval=PROGRESS_INTERVAL):
        """
        :param clock: ``IReactorTime`` provider.
        :param send: Callable given each progress line (``bytes``).
        :param int identifier: The request's id.
        :param str volume: The volume being sent.
        :param str target: The node receiving it.
        :param float interval: Least seconds between two lines.
        """
        self._clock = clock
        self._send = send
        self._identifier = identifier
        self._volume = volume
        self._target = target
        self._interval = interval
        self._latest = None
        self._sent = None
        self._sent_at = None

    def update(self, sent, total):
        """
        :param int sent: Bytes sent so far.
        :param total: Bytes to send in all, or ``None`` if unknown.
        """
        self._latest = (sent, total)
        now = self._clock.seconds()
        if self._sent_at is None or now - self._sent_at >= self._interval:
            self._send_latest(now)

    def finish(self):
        """
        The transfer ended: send the final figures unless they went out
        already.  (A push that falls back to another way of sending
        finishes twice; the second adds nothing.)
        """
        if self._latest is not None and self._latest != self._sent:
            self._send_latest(self._clock.seconds())

    def _send_latest(self, now):
        self._sent, self._sent_at = self._latest, now
        self._send(encode_progress(self._identifier, self._volume,
                                   self._target, *self._latest))


@implementer(IHalfCloseableProtocol)
class SessionProtocol(LineOnlyReceiver):
    """
    The node side of a session, connected to the session's standard input
    and output: each request line runs one call, answered when it ends; the
    node's eliot messages go out as log lines meanwhile, and the progress of
    volume transfers as (rate-limited) progress lines.

    :ivar finished: ``Deferred`` firing with ``0`` once input has ended and
        every request has been answered (or the output is gone).
    """
    delimiter = b"\n"
    MAX_LENGTH = MAXIMUM_REQUEST_BYTES

    def __init__(self, call, clock, progress_interval=PROGRESS_INTERVAL):
        """
        :param call: ``(argv, stdin, stdout, stderr, progress) -> Deferred``
            firing with the exit status of one call, which writes its output
            to the two text streams (see
            :func:`flocker.node.script.node_main`); ``progress`` is a
            callable ``(volume, target)`` returning the
            :class:`TransferProgress` of a volume transfer of that call.
        :param clock: ``IReactorTime`` provider, timing progress lines.
        :param float progress_interval: Least seconds between two progress
            lines of one transfer.
        """
        self._call = call
        self._clock = clock
        self._progress_interval = progress_interval
        self._running = set()
        self._logging = False
        self._lines_in = None
        self.finished = Deferred()

    def connectionMade(self):
        add_destinations(self._log)
        self._logging = True

    def _log(self, message):
        if self.transport is not None and not self.finished.called:
            self.transport.write(encode_log(message))

    def _stop_logging(self):
        if self._logging:
            self._logging = False
            remove_destination(self._log)

    def _answer(self, identifier, exit_code, stdout, stderr):
        if not self.finished.called:
            self.transport.write(
                encode_response(identifier, exit_code, stdout, stderr))

    def _send(self, line):
        # Progress of work that outlives a lost client has nowhere to go.
        if self.transport is not None and not self.finished.called:
            self.transport.write(line)

    def _progress(self, identifier):
        def progress(volume, target):
            return TransferProgress(self._clock, self._send, identifier,
                                    volume, target, self._progress_interval)
        return progress

    def dataReceived(self, data):
        """
        Cut requests out of what arrived, in linear time (the base class
        splits its whole buffer again at every piece: quadratic in a long
        line's length); a request over :attr:`MAX_LENGTH` ends the session.
        """
        if self._lines_in is None:
            self._lines_in = LineBuffer(self.MAX_LENGTH)
        lines, too_long = self._lines_in.feed(data)
        for line in lines:
            if self.transport.disconnecting:
                return
            self.lineReceived(line)
        if too_long:
            self.lineLengthExceeded(b"")

    def lineReceived(self, line):
        try:
            identifier, argv, stdin = decode_request(line)
        except SerializationError as e:
            self._answer(None, EXIT_USAGE, "",
                         "flocker-node serve: not a request: %s\n" % (e,))
            return
        stdout, stderr = StringIO(), StringIO()
        running = maybeDeferred(self._call, argv, stdin, stdout, stderr,
                                self._progress(identifier))

        def answer(exit_code):
            self._answer(identifier, exit_code, stdout.getvalue(),
                         stderr.getvalue())

        def crashed(failure):
            # A bug, not a refusal: the traceback goes with the answer (the
            # client shows its last line) instead of ending the session.
            text = "".join(traceback.format_exception(
                failure.type, failure.value, failure.getTracebackObject()))
            self._answer(identifier, EXIT_FAILED, stdout.getvalue(),
                         stderr.getvalue() + text + "flocker-node: internal "
                         "error: %s\n" % (failure.getErrorMessage(),))
        running.addCallbacks(answer, crashed)
        self._running.add(running)
        running.addBoth(lambda _: self._running.discard(running))

    def lineLengthExceeded(self, line):
        self._answer(None, EXIT_USAGE, "", "flocker-node serve: a request "
                     "longer than %d bytes\n" % (self.MAX_LENGTH,))
        self.readConnectionLost()

    def readConnectionLost(self):
        # Input ended: the client sends nothing more; finish what runs.
        self._finish_when_idle(close=True)

    def writeConnectionLost(self):
        # The client is gone; what runs still finishes (every step is
        # idempotent, but one cut midway would leave work for the next
        # deploy), its answers are dropped.
        self._finish_when_idle(close=False)

    def connectionLost(self, reason):
        self._finish_when_idle(close=False)

    def _finish_when_idle(self, close):
        waiting = DeferredList(list(self._running))

        def done(_):
            self._stop_logging()
            if close and self.transport is not None:
                self.transport.loseConnection()
            if not self.finished.called:
                self.finished.callback(0)
        waiting.addCallback(done)
