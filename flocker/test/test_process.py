"""
Tests for ``flocker._process``: child processes run through the reactor.

These run real (tiny) child processes in the shared test reactor.
"""

import os
import sys

from twisted.internet.defer import DeferredList
from twisted.trial.unittest import SynchronousTestCase

from flocker import _process
from flocker._process import (
    LineTooLong, ProcessFailed, ProcessResult, run_process, spawn,
)
from flocker.testtools import run_in_reactor

PYTHON = sys.executable
ENV = dict(os.environ)


def _python(code):
    return [PYTHON, "-c", code]


class RunProcessTests(SynchronousTestCase):
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
        self.assertEqual(result, b"hello")

    def test_failure_carries_details(self):
        """
        A non-zero exit fails with ``ProcessFailed`` carrying the argument
        vector, the exit code and standard error; its message is the last
        line of standard error.
        """
        argv = _python("import sys; sys.stderr.write('first\\nbad thing\\n');"
                       " sys.exit(3)")
        with self.assertRaises(ProcessFailed) as caught:
            run_in_reactor(run_process, argv, ENV)
        error = caught.exception
        self.assertEqual((error.argv, error.exit_code, error.signal),
                         (argv, 3, None))
        self.assertEqual(error.stderr, b"first\nbad thing\n")
        self.assertEqual(error.message, "bad thing")
        self.assertTrue(str(error).endswith("exited with code 3: bad thing"))

    def test_killed(self):
        """
        A process killed by a signal is reported with the signal.
        """
        with self.assertRaises(ProcessFailed) as caught:
            run_in_reactor(run_process, _python(
                "import os; os.kill(os.getpid(), 9)"), ENV)
        self.assertIsNone(caught.exception.exit_code)
        self.assertEqual(caught.exception.signal, 9)
        self.assertIn("killed by signal 9", str(caught.exception))

    def test_no_shell(self):
        """
        Arguments reach the program verbatim: nothing is interpreted by a
        shell.
        """
        tricky = "$(touch /tmp/flocker-never); echo `x` > y; *"
        result = run_in_reactor(run_process, _python(
            "import sys; sys.stdout.write(sys.argv[1])") + [tricky], ENV)
        self.assertEqual(result, tricky.encode("utf-8"))
        self.assertFalse(os.path.exists("/tmp/flocker-never"))


class _Transport(object):
    """
    Records the signals a collector sends its process.
    """

    def __init__(self):
        self.signals = []

    def signalProcess(self, name):
        self.signals.append(name)


class CollectorLinesTests(SynchronousTestCase):
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
        self.assertEqual([d.result for d in got[:3]], [b"ab", b"cde", b"x"])
        self.assertEqual(got[-1].result, b"x")

    def test_too_long(self):
        """
        A line over the limit (no newline yet) kills the process and fails
        the waiting and later ``next_line`` calls with ``LineTooLong``;
        what came before it is still delivered.
        """
        collector = self._collector(10)
        waiting = collector.next_line()
        collector.outReceived(b"ok\n" + b"y" * 6)
        self.assertEqual(waiting.result, b"ok")
        waiting = collector.next_line()
        collector.outReceived(b"y" * 6)
        failure = waiting.result
        self.assertTrue(failure.check(LineTooLong))
        waiting.addErrback(lambda _: None)
        self.assertEqual((failure.value.limit, failure.value.argv),
                         (10, ["remote"]))
        self.assertEqual(collector.transport.signals, ["KILL"])
        later = collector.next_line()
        self.assertTrue(later.result.check(LineTooLong))
        later.addErrback(lambda _: None)


class SpawnTests(SynchronousTestCase):
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
        self.assertEqual([value for _, value in results],
                         [b"one", b"two", None])

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
        self.assertEqual(result.stdout, b"piped in")
        self.assertEqual(result.check(), b"piped in")

    def test_stdin_data(self):
        """
        Bytes given as ``stdin_data`` are the child's whole standard input.
        """
        def scenario(reactor):
            _, collector = spawn(reactor, _python(
                "import sys; sys.stdout.write(sys.stdin.read()[::-1])"), ENV,
                stdin_data=b"written in")
            return collector.ended
        result = run_in_reactor(scenario)
        self.assertEqual(result.check(), b"ni nettirw")

    def test_result_check(self):
        """
        ``ProcessResult.check`` raises ``ProcessFailed`` for a failure.
        """
        result = ProcessResult(argv=["x"], stdout=b"", stderr=b"no\n",
                               exit_code=1, signal=None)
        with self.assertRaises(ProcessFailed):
            result.check()
