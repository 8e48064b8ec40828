"""
Child processes for the volume service, run through the reactor.

Every command is an argument vector; nothing here ever involves a shell.
:func:`run_process` covers the common case (run, collect, fail on a non-zero
exit); :func:`spawn` and :class:`ProcessResult` give more control when a
command's standard input or output must be wired to another process, and
:func:`pump` moves a stream from one pipe to another inside the reactor while
counting the bytes (so a push can report its progress and stream size).
"""

import errno
import fcntl
import os
import select

import attr
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.internet.protocol import ProcessProtocol
from zope.interface import implementer

from .._lines import LineBuffer

__all__ = [
    "ProcessFailed", "ProcessResult", "spawn", "run_process", "pump",
    "command_line", "make_pipe", "close_quietly", "CHUNK_SIZE",
    "LimitExceeded", "read_prefix", "LineTooLong", "MAXIMUM_LINE",
]

#: The longest line of a child's standard output a collector takes (a
#: protocol message, or a log message of a remote ``flocker-volume``).
MAXIMUM_LINE = 1024 * 1024

#: How much :func:`pump` asks the kernel to move at once, and the capacity it
#: gives its pipes: 1 MiB keeps the number of reactor wake-ups per gigabyte
#: in the low thousands.
CHUNK_SIZE = 1024 * 1024

# fcntl.F_SETPIPE_SZ exists from Python 3.10; the number is Linux's.
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


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


class _Collector(ProcessProtocol):
    """
    Collect a child's output; hand standard output lines to whoever waits for
    them (:meth:`next_line`); fire ``ended`` with a :class:`ProcessResult`.

    Lines are cut by a :class:`~flocker._lines.LineBuffer` (linear time);
    a line over :data:`MAXIMUM_LINE` bytes kills the child and fails
    :meth:`next_line` with :class:`LineTooLong`.
    """

    def __init__(self, argv, maximum_line=None):
        self._argv = argv
        self._stdout = []
        self._stderr = []
        self._lines_in = LineBuffer(MAXIMUM_LINE if maximum_line is None
                                    else maximum_line)
        self._overflow = None
        self._lines = []
        self._waiting = []
        self._closed = False
        self.ended = Deferred()

    def outReceived(self, data):
        self._stdout.append(data)
        if self._overflow is not None:
            return
        lines, too_long = self._lines_in.feed(data)
        for line in lines:
            self._deliver(line)
        if too_long:
            self._overflowed()

    def _overflowed(self):
        self._overflow = LineTooLong(self._argv, self._lines_in.maximum)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.errback(self._overflow)
        try:
            self.transport.signalProcess("KILL")
        except (ProcessExitedAlready, AttributeError):
            pass

    def errReceived(self, data):
        self._stderr.append(data)

    def _deliver(self, line):
        if self._waiting:
            self._waiting.pop(0).callback(line)
        else:
            self._lines.append(line)

    def next_line(self):
        """
        :return: ``Deferred`` firing with the next line of standard output
            (without its newline), or ``None`` once the output has ended;
            failing with :class:`LineTooLong` once a line was too long.
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

    def outConnectionLost(self):
        self._closed = True
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)

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


def spawn(reactor, argv, env, stdin=None, stdout=None, maximum_line=None):
    """
    Start a child process.

    :param reactor: An ``IReactorProcess`` provider.
    :param argv: The argument vector; ``argv[0]`` is looked up in the
        ``PATH`` of ``env``.
    :param dict env: The child's complete environment.
    :param stdin: A file descriptor of this process to give the child as its
        standard input, or ``None`` for an empty pipe closed at once.
    :param stdout: A file descriptor to give the child as its standard
        output, or ``None`` to collect it.
    :param maximum_line: The longest line collected (see
        :class:`_Collector`), :data:`MAXIMUM_LINE` if ``None``.
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


def make_pipe():
    """
    :return: ``(read_fd, write_fd)`` of a new close-on-exec pipe, enlarged to
        :data:`CHUNK_SIZE` where the kernel allows it.
    """
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, CHUNK_SIZE)
    except OSError:
        # Unprivileged processes may be limited by pipe-max-size; a
        # smaller pipe only costs more wake-ups.
        pass
    return read_fd, write_fd


@implementer(IReadDescriptor, IWriteDescriptor)
class _Descriptor(object):
    """
    A file descriptor the reactor watches on :class:`_Pump`'s behalf.
    """

    def __init__(self, fd, ready):
        self._fd = fd
        self._ready = ready

    def fileno(self):
        return self._fd

    def doRead(self):
        self._ready()

    doWrite = doRead

    def connectionLost(self, reason):
        # The reactor reports a hung-up pipe (writer gone, nothing left to
        # read; or reader gone) this way instead of calling doRead/doWrite;
        # moving again turns it into end of input or EPIPE.
        self._ready()

    def logPrefix(self):
        return "flocker-volume-pump"


def _writable(fd):
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(0))


class LimitExceeded(Exception):
    """
    :func:`pump` was given more than its limit.

    :ivar int limit: The limit, in bytes.
    """

    def __init__(self, limit):
        Exception.__init__(self, limit)
        self.limit = limit


class _Pump(object):
    """
    Move bytes from one pipe to another as the reactor says they can move.
    """

    def __init__(self, reactor, source, sink, progress, limit=None):
        self._reactor = reactor
        self._source = source
        self._sink = sink
        self._progress = progress
        self._limit = limit
        self._pending = b""
        self._count = 0
        self._finished = False
        self.done = Deferred()
        os.set_blocking(source, False)
        os.set_blocking(sink, False)
        self._reader = _Descriptor(source, self._move)
        self._writer = _Descriptor(sink, self._move)

    def start(self):
        self._reactor.addReader(self._reader)

    def _wait_for(self, sink_full):
        if sink_full:
            self._reactor.removeReader(self._reader)
            self._reactor.addWriter(self._writer)
        else:
            self._reactor.removeWriter(self._writer)
            self._reactor.addReader(self._reader)

    def _move_some(self):
        """
        Move one chunk.  :return: bytes written to the sink, 0 at end of
        input.  :raises BlockingIOError: When either side would block.
        """
        if self._pending:
            written = os.write(self._sink, self._pending)
            self._pending = self._pending[written:]
            return written
        chunk = CHUNK_SIZE
        if self._limit is not None:
            # One byte past the limit at most: enough to tell that there
            # is more, not enough to pass on much of it.
            chunk = max(1, min(chunk, self._limit + 1 - self._count))
        if _splice is not None:
            return _splice(self._source, self._sink, chunk)
        data = os.read(self._source, chunk)
        if not data:
            return 0
        # Kept until written: a full sink raises BlockingIOError here and
        # the rest goes out when the sink is writable again.
        self._pending = data
        written = os.write(self._sink, data)
        self._pending = data[written:]
        return written

    def _move(self):
        if self._finished:
            return
        moved = 0
        outcome = None
        try:
            # Bounded, so one busy pipe cannot starve the rest of the reactor.
            for _ in range(64):
                count = self._move_some()
                if count == 0 and not self._pending:
                    outcome = "end"
                    break
                moved += count
                if (self._limit is not None
                        and self._count + moved > self._limit):
                    outcome = LimitExceeded(self._limit)
                    break
        except BlockingIOError:
            self._wait_for(not _writable(self._sink) or bool(self._pending))
        except OSError as e:
            outcome = e
        if moved:
            self._count += moved
            if self._progress is not None:
                self._progress(self._count)
        if outcome == "end":
            self._finish(None)
        elif outcome is not None:
            self._finish(outcome)

    def _finish(self, error):
        self._finished = True
        self._reactor.removeReader(self._reader)
        self._reactor.removeWriter(self._writer)
        for fd in (self._source, self._sink):
            try:
                os.close(fd)
            except OSError:
                pass
        if error is None:
            self.done.callback(self._count)
        else:
            self.done.errback(error)


_splice = getattr(os, "splice", None)


def pump(reactor, source, sink, progress=None, limit=None):
    """
    Copy everything from ``source`` to ``sink`` (both pipes) in the reactor,
    without ever blocking it; close both when ``source`` ends.

    :param reactor: An ``IReactorFDSet`` provider.
    :param int source: File descriptor to read; this function takes it over.
    :param int sink: File descriptor to write; this function takes it over.
    :param progress: ``None`` or a callable given the running byte count.
    :param limit: ``None``, or the most bytes to copy: with more to come,
        the copy stops (at most one byte past it) and fails.
    :return: ``Deferred`` firing with the number of bytes copied, or failing
        with ``OSError`` (``EPIPE`` when the reader of ``sink`` went away)
        or :class:`LimitExceeded`.
    """
    worker = _Pump(reactor, source, sink, progress, limit)
    worker.start()
    return worker.done


def read_prefix(reactor, fd, limit, delimiter=None):
    """
    Read the start of what arrives on ``fd`` without blocking the reactor
    and without reading past it (the rest is for another reader, a ZFS
    stream for ``zfs receive`` say).

    :param reactor: An ``IReactorFDSet`` provider.
    :param int fd: The descriptor (left open, its blocking mode restored).
    :param int limit: With a ``delimiter``, the longest line accepted;
        without, exactly how many bytes to read.
    :param delimiter: ``None``, or a one-byte ``bytes`` ending the part
        read (read byte by byte, so nothing after it is taken).
    :return: ``Deferred`` firing with the bytes read: without a
        ``delimiter``, ``limit`` bytes or fewer if the input ended sooner;
        with one, the line without it, or ``None`` at end of input or past
        ``limit``.
    """
    result = Deferred()
    collected = bytearray()
    was_blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)

    def read():
        if result.called:
            # A late report of a hung-up descriptor: what follows is not
            # ours to read.
            return
        while True:
            wanted = 1 if delimiter is not None else limit - len(collected)
            try:
                data = os.read(fd, wanted)
            except BlockingIOError:
                return
            except OSError as e:
                return done(e)
            if delimiter is None:
                collected.extend(data)
                if not data or len(collected) >= limit:
                    return done(bytes(collected))
                continue
            if data in (b"", delimiter) or len(collected) > limit:
                return done(bytes(collected) if data == delimiter else None)
            collected.extend(data)

    reader = _Descriptor(fd, read)

    def done(value):
        reactor.removeReader(reader)
        os.set_blocking(fd, was_blocking)
        if isinstance(value, Exception):
            result.errback(value)
        else:
            result.callback(value)

    reactor.addReader(reader)
    return result


def close_quietly(*fds):
    """
    Close file descriptors, ignoring those already closed.

    :param fds: File descriptors.
    """
    for fd in fds:
        try:
            os.close(fd)
        except OSError as e:
            if e.errno != errno.EBADF:
                raise
