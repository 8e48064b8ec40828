"""
The push path on kernel OpenZFS 2.x, where no kernel module is available:
two real services on file-backed zfs-fuse pools whose ``zfs`` and
``zpool`` answer as OpenZFS 2.2 (:mod:`._openzfs_fuse`: real data, with
resumable receive, bookmarks and OpenZFS's options played over zfs-fuse as
OpenZFS documents them).
"""

import hashlib
import json
import os
import shutil
import subprocess

from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import run_in_reactor, temporary_directory
from flocker.volume._push import BASE_HOLD
from flocker.volume._service import open_volume_service

from . import _openzfs_fuse
from ._support import FilePools, LocalRemote, require_zfs

MiB = 1024 * 1024


def _incompressible(size):
    return os.urandom(size)


class OpenZFSPushTests(SynchronousTestCase):
    """
    Pushes between two nodes whose ZFS is OpenZFS 2.2 (played over
    zfs-fuse).
    """

    def setUp(self):
        require_zfs()
        real = os.path.dirname(shutil.which("zfs"))
        self.pools = FilePools()
        self.addCleanup(self.pools.destroy)
        directory = temporary_directory(self)
        os.makedirs(directory)
        self.log = os.path.join(directory, "commands.log")
        _openzfs_fuse.install(directory, self.log, real)
        path = directory + os.pathsep + os.environ.get("PATH", "")
        self.env = dict(os.environ, PATH=path)
        # The reactor looks commands up on this process's PATH.
        self.addCleanup(os.environ.__setitem__, "PATH",
                        os.environ.get("PATH", ""))
        os.environ["PATH"] = path
        names = {"10.0.0.1": self.pools.create("a", "160M"),
                 "10.0.0.2": self.pools.create("b", "160M")}
        self.remote = LocalRemote()
        self.a, self.b = run_in_reactor(lambda reactor: gatherResults([
            open_volume_service(reactor, pool, self.env, remote=self.remote)
            for pool in names.values()]))
        self.remote.nodes.update(zip(names, (self.a, self.b)))

    def call(self, method, *args):
        return run_in_reactor(lambda reactor: method(*args), timeout=120)

    def zfs(self, *argv):
        """
        Run the stand-in's ``zfs``; :return: its standard output.
        """
        return subprocess.run(["zfs"] + list(argv), capture_output=True,
                              timeout=120, check=True, env=self.env
                              ).stdout.decode("utf-8")

    def write(self, service, name, path, data):
        mountpoint = self.call(service.mountpoint, name).path
        with open(os.path.join(mountpoint, path), "wb") as f:
            f.write(data)

    def read(self, service, name, path):
        """
        A file of a follower's copy (mounted for the duration).
        """
        self.call(service.pool.mount, name)
        try:
            mountpoint = self.call(service.pool.get, name).mountpoint
            with open(os.path.join(mountpoint, path), "rb") as f:
                return f.read()
        finally:
            self.call(service.pool.unmount, name)

    def commands(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def wait_for_token(self, pool, name):
        """
        Wait (a bounded number of tries) until the receive the cut killed
        the caller of has saved its state: its ``zfs receive`` outlives the
        cut ``flocker-volume receive`` by a moment.  A full stream's
        state is saved beside the volume's name (``NAME.flocker-recv``), an
        incremental's on the copy.

        :return: The token.
        """
        for attempt in range(600):
            tokens = self.call(pool.resume_tokens)
            for saved in (name, name + ".flocker-recv"):
                if saved in tokens:
                    return tokens[saved]
            run_in_reactor(lambda reactor: deferLater(reactor, 0.1,
                                                      lambda: None))
        self.fail("no resume token for %s" % (name,))

    def cut_push(self, data):
        """
        Write ``data`` to ``app`` on ``a`` and push it to ``b`` through a
        connection cut after 4 MiB; wait for ``b`` to have saved the part
        received.
        """
        self.write(self.a, "app", "data", data)
        self.remote.cut["10.0.0.2"] = 4 * MiB
        self.assertRaises(Exception, self.call, self.a.push, "app",
                          "10.0.0.2")
        del self.remote.cut["10.0.0.2"]
        self.wait_for_token(self.b.pool, "app")

    def test_detected(self):
        """
        Both nodes find OpenZFS with resumable receive, bookmarks and holds.
        """
        capabilities = self.call(self.a.pool.capabilities)
        self.assertEqual((capabilities.implementation,
                          capabilities.resumable_receive,
                          capabilities.bookmarks, capabilities.holds),
                         ("openzfs", True, True, True))

    def test_cut_push_resumes(self):
        """
        A full push cut halfway leaves the target a resume token; the next
        push sends the rest of that stream (``zfs send -t``), not the whole
        volume again, then the push's own snapshot incrementally, and the
        target ends with the owner's data.
        """
        self.call(self.a.create, "app")
        data = _incompressible(8 * MiB)
        self.cut_push(data)
        result = self.call(self.a.push, "app", "10.0.0.2")
        self.assertTrue(0 < result.resumed < 6 * MiB, result)
        self.assertEqual(
            (hashlib.sha256(self.read(self.b, "app", "data")).hexdigest(),
             self.call(self.b.pool.resume_tokens),
             self.call(self.b.pool.get, "app").owner),
            (hashlib.sha256(data).hexdigest(), {}, self.a.node_id))
        resumed = [argv for argv in self.commands()
                   if argv[:3] == ["zfs", "send", "-t"]]
        self.assertEqual(len(resumed), 1)

    def test_cut_incremental_resumes(self):
        """
        An incremental push cut halfway is resumed the same way, onto the
        target's copy as it was.
        """
        self.call(self.a.create, "app")
        self.write(self.a, "app", "first", b"first")
        self.call(self.a.push, "app", "10.0.0.2")
        data = _incompressible(8 * MiB)
        self.cut_push(data)
        result = self.call(self.a.push, "app", "10.0.0.2")
        self.assertTrue(0 < result.resumed < 6 * MiB, result)
        self.assertEqual(
            (self.read(self.b, "app", "first"),
             hashlib.sha256(self.read(self.b, "app", "data")).hexdigest()),
            (b"first", hashlib.sha256(data).hexdigest()))

    def test_token_not_resumable(self):
        """
        When the sender no longer has the snapshot a token is of, the
        target discards its saved state (``zfs receive -A``) and receives
        the new stream whole.
        """
        self.call(self.a.create, "app")
        self.cut_push(_incompressible(8 * MiB))
        self.call(self.a.delete, "app")
        self.call(self.a.create, "app")
        self.write(self.a, "app", "data", b"new")
        result = self.call(self.a.push, "app", "10.0.0.2")
        self.assertEqual(
            (result.resumed, result.base, self.read(self.b, "app", "data"),
             [argv for argv in self.commands()
              if argv[:3] == ["zfs", "receive", "-A"]] != []),
            (0, None, b"new", True))

    def test_incremental_from_bookmark(self):
        """
        The owner bookmarks the snapshot a target confirmed: after that
        snapshot was destroyed (its hold released by hand), the next push
        is still incremental, from the bookmark.
        """
        self.call(self.a.create, "app")
        self.write(self.a, "app", "big", _incompressible(4 * MiB))
        first = self.call(self.a.push, "app", "10.0.0.2")
        snapshot = "%s/app@%s" % (self.a.pool.name, first.snapshot)
        self.zfs("release", BASE_HOLD, snapshot)
        self.zfs("destroy", snapshot)
        self.write(self.a, "app", "small", b"changed")
        second = self.call(self.a.push, "app", "10.0.0.2")
        dataset = self.call(self.a.pool.get, "app")
        self.assertEqual(
            (second.base, second.bytes_sent < MiB,
             self.read(self.b, "app", "small"),
             first.snapshot in dataset.snapshots,
             list(dataset.bookmarks)),
            (first.snapshot, True, b"changed", False, [second.snapshot]))
        self.assertIn(["zfs", "send", "-L", "-e", "-c", "-i", "%s/app#%s" % (
            self.a.pool.name, first.snapshot), "%s/app@%s" % (
                self.a.pool.name, second.snapshot)], self.commands())

    def test_target_holds(self):
        """
        The target holds the snapshot it received last (its next base),
        and moves the hold to the next one.
        """
        self.call(self.a.create, "app")
        first = self.call(self.a.push, "app", "10.0.0.2")
        second = self.call(self.a.push, "app", "10.0.0.2")
        # Only the holds: a follower keeps its newest snapshots, so the
        # first is still there, no longer held.
        held = [line for line in self.zfs(
            "get", "-H", "-p", "-r", "-o", "name,value", "userrefs",
            "%s/app" % (self.b.pool.name,)).splitlines()[1:]
            if not line.endswith("\t0")]
        self.assertEqual(
            held, ["%s/app@%s\t1" % (self.b.pool.name, second.snapshot)])
        self.assertNotEqual(first.snapshot, second.snapshot)
