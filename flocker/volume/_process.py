"""
Pipes for the volume service, moved inside the reactor: :func:`pump` moves
a stream from one pipe to another while counting the bytes (so a push can
report its progress and stream size), :func:`read_prefix` reads the start
of a stream without taking more.  Both can give up on a source that stays
silent (``idle_timeout``): the receiving end of a push reads from another
node, which may die without its connection ever saying so (a killed or
cut-off node sends no FIN; TCP would wait for hours), and a receive holds
its volume's lock, so a fence or take-over of that volume would wait behind
it forever.  Child processes themselves are run by :mod:`flocker._process`.
"""

import errno
import fcntl
import os
import select

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from zope.interface import implementer

__all__ = [
    "pump", "make_pipe", "close_quietly", "CHUNK_SIZE", "LimitExceeded",
    "read_prefix", "SourceIdle", "Interrupted", "cancel_when",
]

#: How much :func:`pump` asks the kernel to move at once, and the capacity it
#: gives its pipes: 1 MiB keeps the number of reactor wake-ups per gigabyte
#: in the low thousands.
CHUNK_SIZE = 1024 * 1024

# fcntl.F_SETPIPE_SZ exists from Python 3.10; the number is Linux's.
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


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


class SourceIdle(Exception):
    """
    :func:`pump` or :func:`read_prefix` got nothing from its source for its
    ``idle_timeout``.

    :ivar seconds: That timeout, in seconds.
    """

    def __init__(self, seconds):
        Exception.__init__(self, seconds)
        self.seconds = seconds


class _IdleTimer(object):
    """
    Calls ``expired`` once ``seconds`` pass without :meth:`touch`; does
    nothing when ``seconds`` is ``None``.
    """

    def __init__(self, clock, seconds, expired):
        self._clock = clock
        self._seconds = seconds
        self._expired = expired
        self._call = None
        self.touch()

    def touch(self):
        """
        Something arrived: the silence starts again from now.
        """
        if self._seconds is None:
            return
        if self._call is not None and self._call.active():
            self._call.reset(self._seconds)
        else:
            self._call = self._clock.callLater(self._seconds, self._expired)

    def stop(self):
        """
        The wait is over (the copy or read ended): ``expired`` is not
        called.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()


class Interrupted(Exception):
    """
    A copy by :func:`pump` was stopped before its source ended (its
    ``Deferred`` was cancelled).
    """


def cancel_when(interrupt, d):
    """
    Cancel ``d`` when ``interrupt`` fires (at once if it has fired
    already): how a :func:`pump` or :func:`read_prefix` is stopped from
    outside.

    :param interrupt: A ``Deferred``, whose result is passed on unchanged,
        or ``None`` for none.
    :param d: The ``Deferred`` to cancel.
    :return: ``d``.
    """
    if interrupt is not None:
        def cancel(result):
            d.cancel()
            return result
        interrupt.addCallback(cancel)
    return d


class _Pump(object):
    """
    Move bytes from one pipe to another as the reactor says they can move.
    """

    def __init__(self, reactor, source, sink, progress, limit=None,
                 idle_timeout=None):
        self._reactor = reactor
        self._idle_timeout = idle_timeout
        self._idle = None
        self._sink_full = False
        self._source = source
        self._sink = sink
        self._progress = progress
        self._limit = limit
        self._pending = b""
        self._count = 0
        self._finished = False
        self.done = Deferred(self._cancelled)
        os.set_blocking(source, False)
        os.set_blocking(sink, False)
        self._reader = _Descriptor(source, self._move)
        self._writer = _Descriptor(sink, self._move)

    def _cancelled(self, done):
        if not self._finished:
            self._finish(Interrupted())

    def start(self):
        self._idle = _IdleTimer(self._reactor, self._idle_timeout,
                                self._silent)
        self._reactor.addReader(self._reader)

    def _silent(self):
        if self._finished:
            return
        if self._sink_full:
            # Waiting for the reader of the sink (a busy zfs receive), not
            # for the source: that is not the source's silence.
            self._idle.touch()
            return
        self._finish(SourceIdle(self._idle_timeout))

    def _wait_for(self, sink_full):
        self._sink_full = sink_full
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
            self._idle.touch()
            self._count += moved
            if self._progress is not None:
                self._progress(self._count)
        if outcome == "end":
            self._finish(None)
        elif outcome is not None:
            self._finish(outcome)

    def _finish(self, error):
        self._finished = True
        self._idle.stop()
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


def pump(reactor, source, sink, progress=None, limit=None,
         idle_timeout=None):
    """
    Copy everything from ``source`` to ``sink`` (both pipes) in the reactor,
    without ever blocking it; close both when ``source`` ends.

    :param reactor: An ``IReactorFDSet`` provider (and ``IReactorTime``
        with an ``idle_timeout``).
    :param int source: File descriptor to read; this function takes it over.
    :param int sink: File descriptor to write; this function takes it over.
    :param progress: ``None`` or a callable given the running byte count.
    :param limit: ``None``, or the most bytes to copy: with more to come,
        the copy stops (at most one byte past it) and fails.
    :param idle_timeout: ``None``, or the most seconds to wait without a
        byte moving: then the copy stops (both descriptors closed, so the
        reader of ``sink`` sees the stream cut short) and fails.
    :return: ``Deferred`` firing with the number of bytes copied, or failing
        with ``OSError`` (``EPIPE`` when the reader of ``sink`` went away),
        :class:`LimitExceeded` or :class:`SourceIdle`.  Cancelling it stops
        the copy as a silent source does (both descriptors closed) and
        fails it with :class:`Interrupted`.
    """
    worker = _Pump(reactor, source, sink, progress, limit, idle_timeout)
    worker.start()
    return worker.done


def read_prefix(reactor, fd, limit, delimiter=None, idle_timeout=None):
    """
    Read the start of what arrives on ``fd`` without blocking the reactor
    and without reading past it (the rest is for another reader, a ZFS
    stream for ``zfs receive`` say).

    :param reactor: An ``IReactorFDSet`` provider (and ``IReactorTime``
        with an ``idle_timeout``).
    :param int fd: The descriptor (left open, its blocking mode restored).
    :param int limit: With a ``delimiter``, the longest line accepted;
        without, exactly how many bytes to read.
    :param delimiter: ``None``, or a one-byte ``bytes`` ending the part
        read (read byte by byte, so nothing after it is taken).
    :return: ``Deferred`` firing with the bytes read: without a
        ``delimiter``, ``limit`` bytes or fewer if the input ended sooner;
        with one, the line without it, or ``None`` at end of input or past
        ``limit``; or failing with :class:`SourceIdle` when ``idle_timeout``
        (seconds, or ``None`` for no limit) passes without a byte.
        Cancelling it stops reading (the descriptor left open) and fails it
        with :class:`Interrupted`.
    """
    def cancelled(_):
        if not result.called:
            done(Interrupted())
    result = Deferred(cancelled)
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
            idle.touch()
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
        idle.stop()
        reactor.removeReader(reader)
        os.set_blocking(fd, was_blocking)
        if isinstance(value, Exception):
            result.errback(value)
        else:
            result.callback(value)

    def silent():
        if not result.called:
            done(SourceIdle(idle_timeout))

    idle = _IdleTimer(reactor, idle_timeout, silent)
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
