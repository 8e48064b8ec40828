"""
Tests for :mod:`flocker.node._exit`.
"""

import os

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactor
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory

from .._exit import container_exit_watcher


def _is_open(fd):
    """
    :return: Whether ``fd`` is an open file descriptor.
    """
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class ContainerExitWatcherTests(SynchronousTestCase):
    """
    Tests for :func:`container_exit_watcher`, with a pipe standing for each
    pidfd and a directory standing for ``/proc``.
    """

    def setUp(self):
        self.reactor = MemoryReactor()
        self.proc = temporary_directory(self)
        os.makedirs(os.path.join(self.proc, "42"))
        with open(os.path.join(self.proc, "42", "cgroup"), "w") as f:
            f.write("0::/lab-node1/c0ffee\n")
        self.opened = []

    def pidfd_open(self, pid):
        """
        A ``pidfd_open`` giving the read end of a new pipe, for pid 42
        only.
        """
        if pid != 42:
            raise ProcessLookupError(3, "No such process")
        read, write = os.pipe()
        self.addCleanup(os.close, write)
        self.opened.append(read)
        return read

    def watch(self, pid=42, container_id="c0ffee"):
        """
        :return: What the watcher gives for ``pid`` of ``container_id``.
        """
        return container_exit_watcher(self.reactor, self.proc,
                                      self.pidfd_open)(pid, container_id)

    def test_fires_when_readable(self):
        """
        The watch fires once its pidfd is readable (the process exited),
        stops watching it and closes it.
        """
        exited = self.watch()
        before = (exited.called, len(self.reactor.getReaders()))
        self.reactor.getReaders()[0].doRead()
        self.assertEqual(
            (before, self.successResultOf(exited),
             self.reactor.getReaders(), _is_open(self.opened[0])),
            ((False, 1), None, [], False))

    def test_other_cgroup(self):
        """
        A process outside the container's cgroup (a pid reused since Docker
        gave it) is not watched, and its pidfd is closed.
        """
        self.assertEqual(
            (self.watch(container_id="d00d"), self.reactor.getReaders(),
             _is_open(self.opened[0])),
            (None, [], False))

    def test_no_such_process(self):
        """
        A process that is gone already is not watched.
        """
        self.assertEqual((self.watch(pid=7), self.reactor.getReaders()),
                         (None, []))

    def test_no_pid(self):
        """
        No pid (Docker gives 0 for a container that does not run) is not
        watched.
        """
        self.assertEqual((self.watch(pid=0), self.opened), (None, []))

    def test_no_pidfds(self):
        """
        Where the system has no ``pidfd_open``, nothing is watched.
        """
        watch = container_exit_watcher(self.reactor, self.proc, None)
        self.assertEqual(watch(42, "c0ffee"), None)

    def test_cancel(self):
        """
        Cancelling the watch stops watching the pidfd and closes it.
        """
        exited = self.watch()
        exited.cancel()
        self.failureResultOf(exited, CancelledError)
        self.assertEqual(
            (self.reactor.getReaders(), _is_open(self.opened[0])),
            ([], False))

    def test_lost(self):
        """
        A pidfd the reactor drops (an error, the reactor stopping) fails
        the watch, which tells nothing of the process, and is closed.
        """
        exited = self.watch()
        self.reactor.getReaders()[0].connectionLost(
            Failure(ConnectionLost("dropped")))
        self.failureResultOf(exited, ConnectionLost)
        self.assertEqual(
            (self.reactor.getReaders(), _is_open(self.opened[0])),
            ([], False))
