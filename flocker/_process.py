"""
Child processes run through the reactor: the one process runner of every
node-side package (ZFS commands, the route manager's tools, the doctor's
probes).

Every command is an argument vector; nothing here ever involves a shell.
:func:`run_process` covers the common case (run, collect, fail on a non-zero
exit); :func:`spawn` and :class:`ProcessResult` give more control: standard
input from a descriptor or from bytes, standard output to a descriptor or
collected and handed out line by line.
"""

import attr
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol

from ._lines import LineBuffer

__all__ = [
    "ProcessFailed", "ProcessResult", "spawn", "run_process",
    "command_line", "LineTooLong", "MAXIMUM_LINE", "OutputLines",
]

#: The longest line of a child's standard output a collector takes (a
#: protocol message, or a log message of a remote ``flocker-volume``).
MAXIMUM_LINE = 1024 * 1024


def command_line(argv):
    """
    :param argv: An argument vector.
    :return: A readable one-line rendering of ``argv`` for messages (never
        for execution).
    """
    return " ".join(argv)


class ProcessFailed(Exception):
    """
    A child process exited with a non-zero code or was killed by a signal.

    :ivar argv: The argument vector that was run.
    :ivar exit_code: The exit code, or ``None`` if killed by a signal.
    :ivar signal: The signal number, or ``None``.
    :ivar bytes stderr: Everything the process wrote to standard error.
    """

    def __init__(self, argv, exit_code, signal, stderr):
        Exception.__init__(self, argv, exit_code, signal, stderr)
        self.argv = list(argv)
        self.exit_code = exit_code
        self.signal = signal
        self.stderr = stderr

    @property
    def message(self):
        """
        The last non-empty line the process wrote to standard error, which
        for ``zfs`` and ``ssh`` is the one that says what went wrong.
        """
        lines = [line.strip() for line in
                 self.stderr.decode("utf-8", "replace").splitlines()]
        lines = [line for line in lines if line]
        return lines[-1] if lines else ""

    def __str__(self):
        if self.exit_code is None:
            how = "was killed by signal %s" % (self.signal,)
        else:
            how = "exited with code %d" % (self.exit_code,)
        text = "%s %s" % (command_line(self.argv), how)
        if self.message:
            text += ": " + self.message
        return text


@attr.s(frozen=True)
class ProcessResult(object):
    """
    How a child process ended.

    :ivar argv: The argument vector.
    :ivar bytes stdout: Collected standard output (empty if not collected).
    :ivar bytes stderr: Collected standard error.
    :ivar exit_code: Exit code, or ``None`` if killed by a signal.
    :ivar signal: Signal number or ``None``.
    """
    argv = attr.ib()
    stdout = attr.ib()
    stderr = attr.ib()
    exit_code = attr.ib()
    signal = attr.ib()

    def check(self):
        """
        :return: The standard output if the process exited with code 0.
        :raises ProcessFailed: Otherwise.
        """
        if self.exit_code == 0:
            return self.stdout
        raise ProcessFailed(self.argv, self.exit_code, self.signal,
                            self.stderr)


class LineTooLong(Exception):
    """
    A child's standard output held a line longer than its collector takes;
    the child was killed.

    :ivar argv: The child's argument vector.
    :ivar int limit: The longest line taken, in bytes.
    """

    def __init__(self, argv, limit):
        Exception.__init__(self, argv, limit)
        self.argv = list(argv)
        self.limit = limit


class OutputLines(object):
    """
    A peer's standard output as lines, handed to whoever waits for them
    (:meth:`next_line`).

    Lines are cut by a :class:`~flocker._lines.LineBuffer` (linear time); a
    line over the cap fails :meth:`next_line` with :class:`LineTooLong` and
    calls ``overflowed`` (which should end the peer).
    """

    def __init__(self, argv, maximum_line, overflowed):
        """
        :param argv: What the peer runs (for :class:`LineTooLong`).
        :param int maximum_line: The longest line taken, in bytes.
        :param overflowed: Called with no arguments once a line was too
            long.
        """
        self._argv = argv
        self._lines_in = LineBuffer(maximum_line)
        self._overflowed = overflowed
        self._overflow = None
        self._lines = []
        self._waiting = []
        self._closed = False

    def feed(self, data):
        """
        :param bytes data: What the peer wrote next.
        """
        if self._overflow is not None:
            return
        lines, too_long = self._lines_in.feed(data)
        for line in lines:
            if self._waiting:
                self._waiting.pop(0).callback(line)
            else:
                self._lines.append(line)
        if too_long:
            self._overflow = LineTooLong(self._argv, self._lines_in.maximum)
            waiting, self._waiting = self._waiting, []
            for waiter in waiting:
                waiter.errback(self._overflow)
            self._overflowed()

    def next_line(self):
        """
        :return: ``Deferred`` firing with the next line (without its
            newline), or ``None`` once the output has ended; failing with
            :class:`LineTooLong` once a line was too long.
        """
        if self._lines:
            return succeed(self._lines.pop(0))
        if self._overflow is not None:
            return fail(self._overflow)
        if self._closed:
            return succeed(None)
        waiter = Deferred()
        self._waiting.append(waiter)
        return waiter

    def close(self):
        """
        The output ended: whoever waits gets ``None``.
        """
        self._closed = True
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)


class _Collector(ProcessProtocol):
    """
    Collect a child's output; hand standard output lines to whoever waits for
    them (:meth:`next_line`); fire ``ended`` with a :class:`ProcessResult`.

    A line over :data:`MAXIMUM_LINE` bytes (or the limit given) kills the
    child and fails :meth:`next_line` with :class:`LineTooLong` (see
    :class:`OutputLines`).
    """

    def __init__(self, argv, maximum_line=None):
        self._argv = argv
        self._stdout = []
        self._stderr = []
        self._lines = OutputLines(
            argv, MAXIMUM_LINE if maximum_line is None else maximum_line,
            self._kill)
        self.ended = Deferred()

    def outReceived(self, data):
        self._stdout.append(data)
        self._lines.feed(data)

    def _kill(self):
        try:
            self.transport.signalProcess("KILL")
        except (ProcessExitedAlready, AttributeError):
            pass

    def errReceived(self, data):
        self._stderr.append(data)

    def next_line(self):
        """
        :return: See :meth:`OutputLines.next_line` (standard output).
        """
        return self._lines.next_line()

    def outConnectionLost(self):
        self._lines.close()

    def processEnded(self, reason):
        self.outConnectionLost()
        if reason.check(ProcessDone):
            exit_code, signal = 0, None
        else:
            exit_code, signal = reason.value.exitCode, reason.value.signal
        self.ended.callback(ProcessResult(
            argv=self._argv, stdout=b"".join(self._stdout),
            stderr=b"".join(self._stderr), exit_code=exit_code,
            signal=signal))


def spawn(reactor, argv, env, stdin=None, stdout=None, maximum_line=None,
          stdin_data=None):
    """
    Start a child process.

    :param reactor: An ``IReactorProcess`` provider.
    :param argv: The argument vector; ``argv[0]`` is looked up in the
        ``PATH`` of ``env``.
    :param dict env: The child's complete environment.
    :param stdin: A file descriptor of this process to give the child as its
        standard input, or ``None`` for a pipe closed at once (after
        ``stdin_data``, if given, was written to it).
    :param stdout: A file descriptor to give the child as its standard
        output, or ``None`` to collect it.
    :param maximum_line: The longest line collected (see
        :class:`_Collector`), :data:`MAXIMUM_LINE` if ``None``.
    :param stdin_data: ``None``, or ``bytes`` for the child's standard
        input when ``stdin`` is ``None``.
    :return: ``(transport, collector)``: the process transport and an object
        with ``next_line()`` and an ``ended`` ``Deferred`` firing with a
        :class:`ProcessResult` (never failing).  The caller still owns the
        descriptors it passed and should close them once spawned.
    """
    argv = [str(arg) for arg in argv]
    collector = _Collector(argv, maximum_line)
    child_fds = {0: "w" if stdin is None else stdin,
                 1: "r" if stdout is None else stdout,
                 2: "r"}
    transport = reactor.spawnProcess(
        collector, argv[0], argv, env=env, childFDs=child_fds)
    if stdin is None:
        if stdin_data:
            transport.write(stdin_data)
        transport.closeStdin()
    return transport, collector


def run_process(reactor, argv, env):
    """
    Run a command to completion.

    :param reactor: An ``IReactorProcess`` provider.
    :param argv: The argument vector.
    :param dict env: The child's environment.
    :return: ``Deferred`` firing with the standard output (``bytes``), or
        failing with :class:`ProcessFailed` carrying the argument vector, exit
        code and standard error.
    """
    _, collector = spawn(reactor, argv, env)
    return collector.ended.addCallback(ProcessResult.check)
