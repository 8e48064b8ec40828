"""
Tests for :mod:`flocker.volume._inuse`: the scan of ``/proc`` (on a made-up
``/proc`` tree) and how the volume service runs it outside the reactor
thread (with runners that run nothing until a test says so).
"""

import os

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory
from flocker.volume._inuse import processes_using, scan_in_thread

from ._support import QueuedThreadsReactor

DATASET = "tank/app"
MOUNTPOINT = "/tank/app"


def _mountinfo(*mounts):
    """
    :param mounts: ``(source, where)`` pairs.
    :return: ``bytes`` in the shape of ``/proc/PID/mountinfo``.
    """
    return b"".join(
        b"%d 1 0:%d / %s rw,relatime - fuse %s rw\n" % (
            36 + index, 40 + index, where.encode("utf-8"),
            source.encode("utf-8"))
        for index, (source, where) in enumerate(mounts))


class _Proc(object):
    """
    A directory laid out like the parts of ``/proc`` the scan reads.
    """

    def __init__(self, case):
        self.path = temporary_directory(case)
        os.makedirs(self.path)
        # Not a process.
        os.makedirs(os.path.join(self.path, "sys"))

    def process(self, pid, namespace="mnt:[1]", mounts=(), cwd="/",
                files=()):
        """
        Add a process.

        :param int pid: Its id.
        :param str namespace: Its mount namespace's link text.
        :param mounts: ``(source, where)`` pairs it sees mounted.
        :param str cwd: Its working directory.
        :param files: Paths it has open.
        """
        base = os.path.join(self.path, str(pid))
        os.makedirs(os.path.join(base, "ns"))
        os.makedirs(os.path.join(base, "fd"))
        os.symlink(namespace, os.path.join(base, "ns", "mnt"))
        with open(os.path.join(base, "mountinfo"), "wb") as f:
            f.write(_mountinfo(*mounts))
        os.symlink(cwd, os.path.join(base, "cwd"))
        os.symlink("/", os.path.join(base, "root"))
        for fd, path in enumerate(files):
            os.symlink(path, os.path.join(base, "fd", str(fd)))


class ProcessesUsingTests(SynchronousTestCase):
    """
    ``processes_using`` on a made-up ``/proc``.
    """

    def setUp(self):
        self.proc = _Proc(self)

    def using(self):
        return processes_using(DATASET, MOUNTPOINT, proc=self.proc.path)

    def test_nothing(self):
        """
        Processes that neither open anything in the volume nor see it
        mounted elsewhere do not use it.
        """
        self.proc.process(1, mounts=[(DATASET, MOUNTPOINT)])
        self.proc.process(2, files=["/tank/application/f"])
        self.assertEqual(self.using(), set())

    def test_open_file_and_directory(self):
        """
        A process with a file open inside the volume, or its working
        directory there, uses it.
        """
        self.proc.process(1, files=["/dev/null", MOUNTPOINT + "/data/f"])
        self.proc.process(2, cwd=MOUNTPOINT)
        self.proc.process(3)
        self.assertEqual(self.using(), {1, 2})

    def test_mounted_elsewhere(self):
        """
        A process whose mount namespace has the dataset mounted somewhere
        other than its own mountpoint (a container's bind mount) uses it.
        """
        self.proc.process(
            7, namespace="mnt:[2]",
            mounts=[(DATASET, MOUNTPOINT), (DATASET, "/var/lib/data")])
        self.assertEqual(self.using(), {7})


class _Runner(object):
    """
    A ``run`` for ``scan_in_thread`` that runs nothing until told.

    :ivar calls: ``(function, args, Deferred)`` of each call not yet run.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, function, *args):
        d = Deferred()
        self.calls.append((function, args, d))
        return d

    def run_all(self):
        calls, self.calls = self.calls, []
        for function, args, d in calls:
            try:
                result = function(*args)
            except Exception:
                d.errback(Failure())
            else:
                d.callback(result)


class ScanInThreadTests(SynchronousTestCase):
    """
    ``scan_in_thread`` runs the scan through its runner, never in the
    caller's turn, and passes on its result and its errors.
    """

    def setUp(self):
        self.scanned = []

    def scan(self, dataset, mountpoint):
        self.scanned.append((dataset, mountpoint))
        return {12, 34}

    def test_result(self):
        """
        The check answers with a Deferred that fires with the scan's set
        once the runner ran the scan, not before.
        """
        runner = _Runner()
        in_use = scan_in_thread(None, run=runner, scan=self.scan)
        d = in_use(DATASET, MOUNTPOINT)
        self.assertNoResult(d)
        self.assertEqual(self.scanned, [])
        runner.run_all()
        self.assertEqual((self.successResultOf(d), self.scanned),
                         ({12, 34}, [(DATASET, MOUNTPOINT)]))

    def test_error(self):
        """
        What the scan raises is the check's failure.
        """
        def broken(dataset, mountpoint):
            raise OSError(2, "No such file or directory", "/proc")
        runner = _Runner()
        d = scan_in_thread(None, run=runner, scan=broken)(DATASET,
                                                          MOUNTPOINT)
        runner.run_all()
        self.assertEqual(self.failureResultOf(d, OSError).value.filename,
                         "/proc")

    def test_reactor_thread_pool(self):
        """
        Without a runner, the scan is queued on the reactor's thread pool
        and the check fires with its result once a thread ran it.
        """
        reactor = QueuedThreadsReactor()
        d = scan_in_thread(reactor, scan=self.scan)(DATASET, MOUNTPOINT)
        self.assertEqual((len(reactor.pool.queued), self.scanned), (1, []))
        self.assertNoResult(d)
        reactor.pool.run_all()
        self.assertEqual(self.successResultOf(d), {12, 34})

    def test_reactor_thread_pool_error(self):
        """
        Without a runner, what the scan raises in the thread is the check's
        failure.
        """
        def broken(dataset, mountpoint):
            raise PermissionError(13, "Permission denied", "/proc/1/fd")
        reactor = QueuedThreadsReactor()
        d = scan_in_thread(reactor, scan=broken)(DATASET, MOUNTPOINT)
        reactor.pool.run_all()
        self.failureResultOf(d, PermissionError)

    def test_default_scan(self):
        """
        The scan run by default is ``processes_using``.
        """
        runner = _Runner()
        scan_in_thread(None, run=runner)(DATASET, MOUNTPOINT)
        self.assertEqual([(function, args) for function, args, _ in
                          runner.calls],
                         [(processes_using, (DATASET, MOUNTPOINT))])
