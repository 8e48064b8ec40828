"""
Tests for ``flocker.volume._process``: child processes and the pipe pump.

These run real (tiny) child processes in the shared test reactor.
"""

import os
import sys

import pytest
from twisted.internet.defer import DeferredList, FirstError

from flocker.testtools import run_in_reactor
from flocker.volume import _process
from flocker.volume._process import (
    LimitExceeded, LineTooLong, ProcessFailed, ProcessResult, make_pipe,
    pump, run_process, spawn,
)

PYTHON = sys.executable
ENV = dict(os.environ)


def _python(code):
    return [PYTHON, "-c", code]


class TestRunProcess(object):
    """
    ``run_process`` runs an argument vector and reports failures with
    everything needed to explain them.
    """

    def test_stdout(self):
        """
        The Deferred fires with the command's standard output.
        """
        result = run_in_reactor(run_process, _python(
            "import sys; sys.stdout.write('hello')"), ENV)
        assert result == b"hello"

    def test_failure_carries_details(self):
        """
        A non-zero exit fails with ``ProcessFailed`` carrying the argument
        vector, the exit code and standard error; its message is the last
        line of standard error.
        """
        argv = _python("import sys; sys.stderr.write('first\\nbad thing\\n');"
                       " sys.exit(3)")
        with pytest.raises(ProcessFailed) as caught:
            run_in_reactor(run_process, argv, ENV)
        error = caught.value
        assert (error.argv, error.exit_code, error.signal) == (argv, 3, None)
        assert error.stderr == b"first\nbad thing\n"
        assert error.message == "bad thing"
        assert str(error).endswith("exited with code 3: bad thing")

    def test_killed(self):
        """
        A process killed by a signal is reported with the signal.
        """
        with pytest.raises(ProcessFailed) as caught:
            run_in_reactor(run_process, _python(
                "import os; os.kill(os.getpid(), 9)"), ENV)
        assert caught.value.exit_code is None
        assert caught.value.signal == 9
        assert "killed by signal 9" in str(caught.value)

    def test_no_shell(self):
        """
        Arguments reach the program verbatim: nothing is interpreted by a
        shell.
        """
        tricky = "$(touch /tmp/flocker-never); echo `x` > y; *"
        result = run_in_reactor(run_process, _python(
            "import sys; sys.stdout.write(sys.argv[1])") + [tricky], ENV)
        assert result == tricky.encode("utf-8")
        assert not os.path.exists("/tmp/flocker-never")


class _Transport(object):
    """
    Records the signals a collector sends its process.
    """

    def __init__(self):
        self.signals = []

    def signalProcess(self, name):
        self.signals.append(name)


class TestCollectorLines(object):
    """
    The collector cuts lines in linear time and refuses one too long.
    """

    def _collector(self, maximum_line):
        collector = _process._Collector(["remote"], maximum_line)
        collector.transport = _Transport()
        return collector

    def test_lines_across_pieces(self):
        """
        Lines arriving a byte at a time, or several in one piece, come out
        whole and in order.
        """
        collector = self._collector(100)
        for byte in b"ab\ncd":
            collector.outReceived(bytes([byte]))
        collector.outReceived(b"e\n" + b"x\n" * 50000)
        got = [collector.next_line() for _ in range(50002)]
        assert [d.result for d in got[:3]] == [b"ab", b"cde", b"x"]
        assert got[-1].result == b"x"

    def test_too_long(self):
        """
        A line over the limit (no newline yet) kills the process and fails
        the waiting and later ``next_line`` calls with ``LineTooLong``;
        what came before it is still delivered.
        """
        collector = self._collector(10)
        waiting = collector.next_line()
        collector.outReceived(b"ok\n" + b"y" * 6)
        assert waiting.result == b"ok"
        waiting = collector.next_line()
        collector.outReceived(b"y" * 6)
        failure = waiting.result
        assert failure.check(LineTooLong)
        waiting.addErrback(lambda _: None)
        assert (failure.value.limit, failure.value.argv) == (10, ["remote"])
        assert collector.transport.signals == ["KILL"]
        later = collector.next_line()
        assert later.result.check(LineTooLong)
        later.addErrback(lambda _: None)


class TestSpawn(object):
    """
    ``spawn`` wires descriptors and hands out output lines.
    """

    def test_lines(self):
        """
        ``next_line`` gives each line of standard output, then ``None``.
        """
        def scenario(reactor):
            _, collector = spawn(reactor, _python(
                "print('one'); print('two')"), ENV)
            return DeferredList([collector.next_line(), collector.next_line(),
                                 collector.next_line()])
        results = run_in_reactor(scenario)
        assert [value for _, value in results] == [b"one", b"two", None]

    def test_stdin_descriptor(self):
        """
        A descriptor given as ``stdin`` is the child's standard input.
        """
        def scenario(reactor):
            read_fd, write_fd = os.pipe()
            os.write(write_fd, b"piped in")
            os.close(write_fd)
            _, collector = spawn(reactor, _python(
                "import sys; sys.stdout.write(sys.stdin.read())"), ENV,
                stdin=read_fd)
            os.close(read_fd)
            return collector.ended
        result = run_in_reactor(scenario)
        assert result.stdout == b"piped in"
        assert result.check() == b"piped in"

    def test_result_check(self):
        """
        ``ProcessResult.check`` raises ``ProcessFailed`` for a failure.
        """
        result = ProcessResult(argv=["x"], stdout=b"", stderr=b"no\n",
                               exit_code=1, signal=None)
        with pytest.raises(ProcessFailed):
            result.check()


def _pump_scenario(size, limit=None):
    """
    Pump ``size`` bytes from one child to another; return what the pump
    counted, the progress reports, and the receiver's checksum line.
    """
    def scenario(reactor):
        progress = []
        source_read, source_write = make_pipe()
        sink_read, sink_write = make_pipe()
        _, producer = spawn(reactor, _python(
            "import sys, os\n"
            "block = bytes(range(256)) * 4096\n"
            "left = %d\n"
            "while left:\n"
            "    n = min(left, len(block))\n"
            "    sys.stdout.buffer.write(block[:n]); left -= n\n" % (size,)),
            ENV, stdout=source_write)
        _, consumer = spawn(reactor, _python(
            "import sys, hashlib\n"
            "h = hashlib.sha256(); n = 0\n"
            "while True:\n"
            "    b = sys.stdin.buffer.read(65536)\n"
            "    if not b: break\n"
            "    h.update(b); n += len(b)\n"
            "print(n, h.hexdigest())"), ENV, stdin=sink_read)
        os.close(source_write)
        os.close(sink_read)
        pumped = pump(reactor, source_read, sink_write, progress.append,
                      limit=limit)
        d = DeferredList([pumped, producer.ended, consumer.ended],
                         fireOnOneErrback=True, consumeErrors=True)
        return d.addCallback(lambda results: (
            results[0][1], progress, results[2][1].stdout))
    return scenario


def _expected(size):
    import hashlib
    block = bytes(range(256)) * 4096
    data = (block * (size // len(block) + 1))[:size]
    return ("%d %s\n" % (size, hashlib.sha256(data).hexdigest())).encode()


class TestPump(object):
    """
    ``pump`` copies a stream between pipes in the reactor and counts it.
    """

    def test_copies_everything(self):
        """
        Every byte arrives in order; the count and the last progress
        report equal the stream's size.
        """
        size = 5 * 1024 * 1024 + 12345
        count, progress, received = run_in_reactor(
            _pump_scenario(size))
        assert count == size
        assert progress[-1] == size
        assert progress == sorted(progress)
        assert received == _expected(size)

    def test_read_write_fallback(self, monkeypatch):
        """
        Where ``os.splice`` is missing, reading and writing gives the same
        result.
        """
        monkeypatch.setattr(_process, "_splice", None)
        size = 3 * 1024 * 1024 + 7
        count, _, received = run_in_reactor(
            _pump_scenario(size))
        assert count == size
        assert received == _expected(size)

    def test_empty(self):
        """
        An empty stream gives a count of zero and closes the sink.
        """
        count, progress, received = run_in_reactor(_pump_scenario(0))
        assert (count, progress) == (0, [])
        assert received == _expected(0)

    def test_limit_reached_exactly(self):
        """
        A stream of exactly the limit is copied whole.
        """
        size = 2 * 1024 * 1024 + 3
        count, _, received = run_in_reactor(_pump_scenario(size, size))
        assert count == size
        assert received == _expected(size)

    def test_over_limit(self):
        """
        A stream over the limit fails with ``LimitExceeded`` once one byte
        past the limit arrived, and no more than that is passed on.
        """
        size, limit = 3 * 1024 * 1024, 1024 * 1024 + 10
        with pytest.raises(FirstError) as caught:
            run_in_reactor(_pump_scenario(size, limit))
        failure = caught.value.subFailure
        assert failure.check(LimitExceeded)
        assert failure.value.limit == limit

    def test_reader_gone(self):
        """
        When the sink's reader exits, the pump fails with ``EPIPE`` instead
        of waiting forever.
        """
        def scenario(reactor):
            source_read, source_write = make_pipe()
            sink_read, sink_write = make_pipe()
            _, producer = spawn(reactor, _python(
                "import sys\n"
                "try:\n"
                "    while True: sys.stdout.buffer.write(b'x' * 65536)\n"
                "except BrokenPipeError: pass"), ENV, stdout=source_write)
            _, consumer = spawn(reactor, _python(
                "import sys; sys.stdin.buffer.read(1000)"), ENV,
                stdin=sink_read)
            os.close(source_write)
            os.close(sink_read)
            pumped = pump(reactor, source_read, sink_write)
            return DeferredList([pumped, producer.ended, consumer.ended],
                                consumeErrors=True)
        results = run_in_reactor(scenario)
        ok, failure = results[0]
        assert not ok
        assert failure.check(BrokenPipeError)
