"""
Node sessions on the client side: :class:`SessionRunner` sends every
``flocker-node`` call for a node through one ``flocker-node serve`` process
on that node (the session protocol is documented in
:mod:`flocker.node._protocol`).

Why: a single ``flocker-node`` call starts Python, loads Flocker and opens
Docker and the pool before it does its work, about half a second on a small
node, and a deploy makes several calls per node, some of them while an
application is down for a move.  Through a session each call costs only its
work.  The node's eliot messages come back over the session and are handed
to the ``log`` callable, so one log holds the whole deploy; the progress of
a volume transfer comes back as progress lines, handed to the ``progress``
callable of the call that runs it.

A node whose ``flocker-node`` has no sessions (it answers ``serve`` with a
usage error) gets single calls instead, so the deploy still works.
"""

from eliot import write_traceback
from eliot.twisted import DeferredContext
from twisted.internet.defer import Deferred, DeferredList, fail
from zope.interface import implementer

from .._lines import LineBuffer
from ..node._protocol import (
    DEFAULT_NODE_COMMAND, EXIT_USAGE, PROTOCOL_OPTION, PROTOCOL_VERSION,
    SERVE, decode_session_line, encode_request,
)
from ._logging import SSH_RUN
from ._ssh import ICommandRunner, NodeUnreachable, RemoteCommandFailed

__all__ = ["SessionRunner", "DEFAULT_CLOSE_TIMEOUT", "MAXIMUM_LINE"]

#: The longest line a node's session may send (an answer carries a whole
#: report: a node with thousands of applications sends megabytes).
MAXIMUM_LINE = 64 * 1024 * 1024

#: Seconds :meth:`SessionRunner.close` waits for the sessions to end before
#: closing the connections under them.
DEFAULT_CLOSE_TIMEOUT = 30.0


class _NoSessions(Exception):
    """
    The node's ``flocker-node`` does not serve sessions.
    """


class _Session(object):
    """
    One node's session: requests written, answers matched by id.
    """

    def __init__(self, address, argv, log, ended):
        """
        :param str address: The node.
        :param argv: The command starting the session.
        :param log: Callable given each of the node's eliot messages, or
            ``None``.
        :param ended: Callable called with this session once it has ended.
        """
        self.address = address
        self.argv = argv
        self._log = log
        self._ended = ended
        self._pending = {}
        self._queued = []
        self._next_id = 0
        self._lines_in = LineBuffer(MAXIMUM_LINE)
        self._running = None
        self._answered = False
        #: Whether the session has ended (its calls can no longer be sent).
        self.over = False
        self.done = Deferred()

    def opened(self, running):
        """
        The session's command runs: send what was queued.
        """
        self._running = running
        for line in self._queued:
            running.write(line)
        self._queued = []
        running.ended.addCallbacks(self._exited, self.fail_all)

    def call(self, argv, stdin, progress=None):
        """
        Send one call.

        :param progress: ``None``, or a callable given ``(sent, total)``
            for each of the call's progress lines.
        :return: ``Deferred`` firing with its standard output, failing with
            :class:`RemoteCommandFailed`, :class:`NodeUnreachable`, or
            :class:`_NoSessions` (nothing ran).
        """
        self._next_id += 1
        identifier = self._next_id
        try:
            line = encode_request(identifier, argv[1:], stdin)
        except UnicodeDecodeError:
            return fail()
        answer = Deferred()
        self._pending[identifier] = (answer, argv, progress)
        if self._running is None:
            self._queued.append(line)
        else:
            self._running.write(line)
        return answer

    def received(self, data):
        """
        Standard output of the session: answers and log lines.

        Lines are cut by a :class:`~flocker._lines.LineBuffer` (linear
        time); a line longer than :data:`MAXIMUM_LINE` drops the node's
        session (its calls fail with one line naming the node).
        """
        if self.over:
            return
        lines, too_long = self._lines_in.feed(data)
        for line in lines:
            if self.over:
                return
            self._line(line)
        if too_long and not self.over:
            self._end(lambda argv: NodeUnreachable(
                self.address, "it sent a line longer than %d bytes; its "
                "session was dropped" % (MAXIMUM_LINE,)))
            if self._running is not None:
                self._running.close_input()

    def _line(self, line):
        """
        One line of the session's output.
        """
        kind, value = decode_session_line(line)
        if kind == "eliot":
            if self._log is not None:
                self._log(value)
        elif kind == "answer":
            self._answer(*value)
        elif kind == "progress":
            self._progress(*value)

    def _progress(self, identifier, sent, total):
        answer, argv, progress = self._pending.get(identifier,
                                                   (None, None, None))
        if progress is None:
            return
        try:
            progress(sent, total)
        except Exception:
            # A broken display must not cost the session its other lines
            # (answers among them).
            write_traceback()

    def _answer(self, identifier, exit_code, stdout, stderr):
        self._answered = True
        answer, argv, _ = self._pending.pop(identifier, (None, None, None))
        if answer is None:
            return
        if exit_code == 0:
            answer.callback(stdout)
        else:
            answer.errback(RemoteCommandFailed(
                self.address, argv, exit_code, stderr))

    def fail_all(self, failure):
        """
        Fail every unanswered call with ``failure``; the session is over.
        """
        self._end(lambda argv: failure)

    def _exited(self, ended):
        exit_code, signal, stderr = ended
        if exit_code == EXIT_USAGE and not self._answered:
            # An older flocker-node: it does not know "serve".
            self.fail_all(_NoSessions(stderr))
            return
        self._end(lambda argv: RemoteCommandFailed(
            self.address, argv, exit_code,
            stderr or b"the node's session ended before answering\n",
            signal))

    def _end(self, reason):
        """
        Forget the session, then fail every unanswered call with
        ``reason(argv)``.  Forgotten first: a caller reacting to its failure
        may call the node again at once, which needs a new session, not
        this dead one.
        """
        self.over = True
        self._ended(self)
        pending, self._pending = self._pending, {}
        for answer, argv, _ in pending.values():
            answer.errback(reason(argv))
        if not self.done.called:
            self.done.callback(None)

    def close(self):
        """
        End the session's input: the node answers what is pending, then
        the session ends.

        :return: :attr:`done`.
        """
        if self._running is not None and not self.done.called:
            self._running.close_input()
        return self.done


@implementer(ICommandRunner)
class SessionRunner(object):
    """
    :class:`ICommandRunner` sending ``flocker-node`` calls through one
    session per node and every other command to the runner underneath.
    See the module documentation.
    """

    def __init__(self, runner, clock, command=DEFAULT_NODE_COMMAND, log=None,
                 close_timeout=DEFAULT_CLOSE_TIMEOUT):
        """
        :param runner: The ``ICommandRunner`` (with ``start``) reaching the
            nodes.
        :param clock: ``IReactorTime`` provider, for the close timeout.
        :param str command: The ``flocker-node`` program on the nodes; only
            commands whose first word it is go through sessions.
        :param log: Callable given each eliot message the nodes send (a
            ``dict``), or ``None`` to drop them.
        :param float close_timeout: See :data:`DEFAULT_CLOSE_TIMEOUT`.
        """
        self._runner = runner
        self._clock = clock
        self._command = command
        self._log = log
        self._close_timeout = close_timeout
        self._sessions = {}
        self._single_calls = set()

    def _call(self, address, argv, stdin, progress):
        session = self._sessions.get(address)
        if session is not None and not session.over:
            return session.call(argv, stdin, progress)
        command = [self._command, PROTOCOL_OPTION, str(PROTOCOL_VERSION),
                   SERVE]
        session = _Session(address, command, self._log, self._forget)
        self._sessions[address] = session
        # The call is queued before the session starts: a start that fails
        # at once must fail it too.
        answer = session.call(argv, stdin, progress)
        starting = self._runner.start(address, command, session.received)
        starting.addCallbacks(session.opened, session.fail_all)
        return answer

    def _forget(self, session):
        if self._sessions.get(session.address) is session:
            del self._sessions[session.address]

    def run(self, address, argv, stdin=b"", progress=None):
        argv = list(argv)
        if (not argv or argv[0] != self._command
                or address in self._single_calls):
            return self._runner.run(address, argv, stdin)
        action = SSH_RUN(address=address, argv=argv, stdin_bytes=len(stdin))
        with action.context():
            d = DeferredContext(self._call(address, argv, stdin, progress))

            def no_sessions(reason):
                reason.trap(_NoSessions)
                self._single_calls.add(address)
                return self._runner.run(address, argv, stdin)
            d.addErrback(no_sessions)

            def finished(stdout):
                action.add_success_fields(exit_code=0,
                                          stdout_bytes=len(stdout))
                return stdout
            d.addCallback(finished)
            return d.addActionFinish()

    def start(self, address, argv, received):
        return self._runner.start(address, argv, received)

    def host_keys(self):
        return self._runner.host_keys()

    def close_sessions(self):
        """
        End every session (each answers what is pending first), waiting at
        most the close timeout; the connections stay open.

        :return: ``Deferred`` firing with ``None``.
        """
        sessions = list(self._sessions.values())
        ending = DeferredList([session.close() for session in sessions],
                              consumeErrors=True)
        timer = self._clock.callLater(self._close_timeout, ending.cancel)

        def ended(_):
            if timer.active():
                timer.cancel()
        return ending.addBoth(ended)

    def close(self):
        return self.close_sessions().addCallback(
            lambda _: self._runner.close())
