"""
Tests for ``flocker.volume._process``: the pipe pump.

These run real (tiny) child processes in the shared test reactor.
"""

import os
import sys
from contextlib import contextmanager

from twisted.internet.defer import DeferredList, FirstError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import run_in_reactor
from flocker._process import spawn
from flocker.volume import _process
from flocker.volume._process import (
    Interrupted, LimitExceeded, SourceIdle, close_quietly, make_pipe, pump,
    read_prefix,
)

PYTHON = sys.executable
ENV = dict(os.environ)


def _python(code):
    return [PYTHON, "-c", code]


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


class PumpTests(SynchronousTestCase):
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
        self.assertEqual(count, size)
        self.assertEqual(progress[-1], size)
        self.assertEqual(progress, sorted(progress))
        self.assertEqual(received, _expected(size))

    def test_read_write_fallback(self):
        """
        Where ``os.splice`` is missing, reading and writing gives the same
        result.
        """
        self.patch(_process, "_splice", None)
        size = 3 * 1024 * 1024 + 7
        count, _, received = run_in_reactor(
            _pump_scenario(size))
        self.assertEqual(count, size)
        self.assertEqual(received, _expected(size))

    def test_empty(self):
        """
        An empty stream gives a count of zero and closes the sink.
        """
        count, progress, received = run_in_reactor(_pump_scenario(0))
        self.assertEqual((count, progress), (0, []))
        self.assertEqual(received, _expected(0))

    def test_limit_reached_exactly(self):
        """
        A stream of exactly the limit is copied whole.
        """
        size = 2 * 1024 * 1024 + 3
        count, _, received = run_in_reactor(_pump_scenario(size, size))
        self.assertEqual(count, size)
        self.assertEqual(received, _expected(size))

    def test_over_limit(self):
        """
        A stream over the limit fails with ``LimitExceeded`` once one byte
        past the limit arrived, and no more than that is passed on.
        """
        size, limit = 3 * 1024 * 1024, 1024 * 1024 + 10
        with self.assertRaises(FirstError) as caught:
            run_in_reactor(_pump_scenario(size, limit))
        failure = caught.exception.subFailure
        self.assertTrue(failure.check(LimitExceeded))
        self.assertEqual(failure.value.limit, limit)

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
        self.assertFalse(ok)
        self.assertTrue(failure.check(BrokenPipeError))


@contextmanager
def _pipes():
    """
    Two pipes, closed after (whichever end a pump has not closed).

    :return: Context manager giving ``(read1, write1, read2, write2)``.
    """
    first, second = os.pipe(), os.pipe()
    try:
        yield first + second
    finally:
        close_quietly(*(first + second))


def _ready(reactor):
    """
    Call every descriptor a ``MemoryReactorClock`` watches, as a real
    reactor would when they are ready.
    """
    for descriptor in list(reactor.readers) + list(reactor.writers):
        descriptor.doRead()


class SourceIdleTests(SynchronousTestCase):
    """
    ``pump`` and ``read_prefix`` give up on a source that stays silent for
    their ``idle_timeout`` (a sending node that died mid-push), on a fake
    clock.
    """

    def test_pump_silent_source(self):
        """
        A pump whose source sends nothing fails with ``SourceIdle`` once
        ``idle_timeout`` passes since the last byte (each byte starts the
        wait again), and closes both descriptors, so the sink's reader
        sees the stream cut short.
        """
        reactor = MemoryReactorClock()
        with _pipes() as (source_read, source_write, sink_read, sink_write):
            done = pump(reactor, source_read, sink_write, idle_timeout=20)
            failure = _silence_after_data(reactor, done, source_write,
                                          b"some", 20)
            self.assertTrue(failure.check(SourceIdle))
            self.assertEqual(failure.value.seconds, 20)
            self.assertEqual(os.read(sink_read, 100), b"some")
            self.assertEqual(os.read(sink_read, 100), b"")
            self.assertTrue(not reactor.readers and not reactor.writers)
            self.assertFalse(reactor.getDelayedCalls())

    def test_pump_cancelled(self):
        """
        Cancelling a pump stops it as a silent source does: it fails with
        ``Interrupted`` and closes both descriptors, so the sink's reader
        sees the stream cut short.
        """
        reactor = MemoryReactorClock()
        with _pipes() as (source_read, source_write, sink_read, sink_write):
            done = pump(reactor, source_read, sink_write, idle_timeout=20)
            os.write(source_write, b"some")
            _ready(reactor)
            done.cancel()
            self.failureResultOf(done, Interrupted)
            self.assertEqual(
                (os.read(sink_read, 100), os.read(sink_read, 100),
                 reactor.readers, reactor.writers,
                 reactor.getDelayedCalls()),
                (b"some", b"", set(), set(), []))

    def test_pump_no_timeout(self):
        """
        Without an ``idle_timeout`` a silent source is waited for.
        """
        reactor = MemoryReactorClock()
        with _pipes() as (source_read, _, _, sink_write):
            done = pump(reactor, source_read, sink_write)
            reactor.advance(10 ** 6)
            self.assertFalse(done.called)
            self.assertFalse(reactor.getDelayedCalls())

    def test_read_prefix_cancelled(self):
        """
        Cancelling ``read_prefix`` fails it with ``Interrupted`` and stops
        watching the descriptor, which stays open for another reader.
        """
        reactor = MemoryReactorClock()
        with _pipes() as (read_fd, write_fd, _, _):
            line = read_prefix(reactor, read_fd, 100, b"\n",
                               idle_timeout=20)
            line.cancel()
            self.failureResultOf(line, Interrupted)
            os.write(write_fd, b"x")
            self.assertEqual(
                (reactor.readers, reactor.getDelayedCalls(),
                 os.read(read_fd, 10)), (set(), [], b"x"))

    def test_read_prefix_silent_source(self):
        """
        ``read_prefix`` fails with ``SourceIdle`` when its source stays
        silent for ``idle_timeout``, counted from the last byte, and
        leaves the descriptor open and unwatched.
        """
        reactor = MemoryReactorClock()
        with _pipes() as (read_fd, write_fd, _, _):
            line = read_prefix(reactor, read_fd, 100, b"\n",
                               idle_timeout=20)
            failure = _silence_after_data(reactor, line, write_fd,
                                          b"half a li", 20)
            self.assertTrue(failure.check(SourceIdle))
            self.assertFalse(reactor.readers)
            os.write(write_fd, b"x")
            self.assertEqual(os.read(read_fd, 10), b"x")


def _silence_after_data(reactor, waiting, write_fd, data, timeout):
    """
    Let ``timeout`` less a second pass, send ``data``, let as long pass
    again (``waiting`` must not have fired: the data started the wait
    anew), then one more second.

    :return: The ``Failure`` ``waiting`` then failed with.
    """
    reactor.advance(timeout - 1)
    os.write(write_fd, data)
    _ready(reactor)
    reactor.advance(timeout - 1)
    if waiting.called:
        raise AssertionError("the wait ended although data came %d s ago"
                             % (timeout - 1,))
    reactor.advance(1)
    return _failure_of(waiting)


def _failure_of(deferred):
    """
    :return: The ``Failure`` a fired ``Deferred`` failed with.
    """
    failures = []
    deferred.addErrback(failures.append)
    if len(failures) != 1:
        raise AssertionError("%r has not failed" % (deferred,))
    return failures[0]
