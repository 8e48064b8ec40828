"""
Tests for ``flocker.volume._process``: the pipe pump.

These run real (tiny) child processes in the shared test reactor.
"""

import os
import sys

import pytest
from twisted.internet.defer import DeferredList, FirstError

from flocker.testtools import run_in_reactor
from flocker._process import spawn
from flocker.volume import _process
from flocker.volume._process import LimitExceeded, make_pipe, pump

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
