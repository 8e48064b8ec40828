"""
Tests for ``flocker.volume._zfs``: the argument vectors run, the zfs-fuse
quirks (with a fake runner and a fake clock), parsing, and the real thing
on file-backed zfs-fuse pools.
"""

import errno
import os
import subprocess
import tempfile

from eliot.testing import assertHasAction
from hypothesis import given, strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import is_safe_name
from flocker.testtools import run_in_reactor
from flocker.volume._errors import (
    DatasetBusy, OutOfSpace, PoolMissing, StreamRejected, UnsafeName,
    ZFSError, ZFSUnavailable,
)
from flocker.volume._logging import ZFS_COMMAND
from flocker._process import ProcessFailed
from flocker.volume._process import make_pipe
from flocker.volume._stamp import read_stamp
from flocker.volume._stream import StreamTooLarge
from flocker.volume._zfs import (
    BUSY_DELAYS, NODE_ID, ZFSPool, check_resume_token, parse_resume_point,
    zfs_error,
)

from ...testtools import capture_logging
from ._support import FilePools, require_zfs

ENV = dict(os.environ)
# The pools' change stamps go to a directory of this test run, not to the
# machine's /var/lib/flocker.
ENV["FLOCKER_LOCK_DIR"] = tempfile.mkdtemp(prefix="flocker-test-stamps-")


class FakeRunner(object):
    """
    Records argument vectors; answers from a list of scripted outcomes,
    each ``bytes`` (success with that output) or ``str`` (failure with that
    standard error).  With no script left it succeeds with no output.
    """

    def __init__(self, *outcomes):
        self.calls = []
        self._outcomes = list(outcomes)

    def __call__(self, reactor, argv, env):
        self.calls.append(list(argv))
        outcome = self._outcomes.pop(0) if self._outcomes else b""
        if isinstance(outcome, bytes):
            return succeed(outcome)
        return fail(ProcessFailed(argv, 1, None, outcome.encode("utf-8")))


def _pool(*outcomes):
    runner = FakeRunner(*outcomes)
    clock = Clock()
    return ZFSPool(object(), "tank", ENV, clock=clock, runner=runner), \
        runner, clock


BUSY = "cannot destroy 'tank/app': dataset is busy"


class ChangeStampTests(SynchronousTestCase):
    """
    Every ``zfs`` command that changes the pool's datasets rewrites the
    pool's change stamp once it ended; reading commands leave it alone.
    """

    def test_stamp_path(self):
        """
        The stamp is named after the pool, in ``FLOCKER_LOCK_DIR``.
        """
        pool, _, _ = _pool()
        self.assertEqual(
            os.path.join(ENV["FLOCKER_LOCK_DIR"], "volumes-tank.changed"),
            pool.stamp)

    def test_changes_rewrite(self):
        """
        A snapshot, a failed destroy and a property change each give the
        stamp a new value.
        """
        pool, _, _ = _pool(b"", "cannot destroy: permission denied", b"")
        seen = [read_stamp(pool.stamp)]
        self.successResultOf(pool.snapshot("app", "s1"))
        seen.append(read_stamp(pool.stamp))
        self.failureResultOf(pool.destroy_snapshot("app", "s1"))
        seen.append(read_stamp(pool.stamp))
        self.successResultOf(pool.set("app", "readonly", "on"))
        seen.append(read_stamp(pool.stamp))
        self.assertEqual(4, len(set(seen)))

    def test_reads_leave_it(self):
        """
        Listing the pool does not touch the stamp.
        """
        pool, _, _ = _pool(b"", b"")
        self.successResultOf(pool.snapshot("app", "s1"))
        before = read_stamp(pool.stamp)
        self.successResultOf(pool.list())
        self.assertEqual(before, read_stamp(pool.stamp))


class ZFSPoolArgumentTests(SynchronousTestCase):
    """
    ``ZFSPool`` runs exactly the ``zfs`` commands needed, scoped to its pool.
    """

    def test_unsafe_pool_name(self):
        """
        A pool name that could be read as an option or hold a path is
        refused.
        """
        for name in ["-a", "", "tank/sub", "a b", "tank;rm"]:
            self.assertRaises(UnsafeName, ZFSPool, object(), name, ENV)

    def test_create(self):
        """
        ``create`` passes each property with ``-o`` and the dataset last.
        """
        pool, runner, _ = _pool()
        self.successResultOf(pool.create("app", {"refquota": "1024",
                                                 "flocker:owner": "n1"}))
        self.assertEqual(runner.calls, [[
            "zfs", "create", "-o", "flocker:owner=n1", "-o",
            "refquota=1024", "tank/app"]])

    def test_unsafe_volume_name(self):
        """
        A volume name outside the safe set never reaches ``zfs``.
        """
        pool, runner, _ = _pool()
        for name in ["../x", "a/b", "-r", "x@y", "a b", ".hidden", "x..y"]:
            self.assertRaises(UnsafeName, pool.create, name, {})
        self.assertEqual(runner.calls, [])

    def test_destroy_unmounts_first(self):
        """
        ``destroy`` unmounts the one dataset, then destroys it with its
        snapshots; never ``-a``.
        """
        pool, runner, _ = _pool()
        self.successResultOf(pool.destroy("app"))
        self.assertEqual(runner.calls, [
            ["zfs", "unmount", "tank/app"],
            ["zfs", "destroy", "-r", "tank/app"]])

    def test_busy_retried(self):
        """
        A destroy zfs-fuse calls busy is run again after each delay of
        ``BUSY_DELAYS`` until it works.
        """
        pool, runner, clock = _pool(b"", BUSY, BUSY, b"")
        d = pool.destroy("app")
        self.assertNoResult(d)
        self.assertEqual(len(runner.calls), 2)
        clock.advance(BUSY_DELAYS[0])
        self.assertEqual(len(runner.calls), 3)
        self.assertNoResult(d)
        clock.advance(BUSY_DELAYS[1])
        self.assertEqual(len(runner.calls), 4)
        self.successResultOf(d)

    def test_busy_gives_up(self):
        """
        After the last delay a still-busy dataset fails with
        ``DatasetBusy``.
        """
        pool, runner, clock = _pool(
            b"", *([BUSY] * (len(BUSY_DELAYS) + 1)))
        d = pool.destroy("app")
        for delay in BUSY_DELAYS:
            clock.advance(delay)
        self.failureResultOf(d, DatasetBusy)
        self.assertEqual(len(runner.calls), len(BUSY_DELAYS) + 2)

    def test_other_errors_not_retried(self):
        """
        Only "busy" is retried; other failures are reported at once.
        """
        pool, runner, _ = _pool(b"", "cannot destroy: permission denied")
        self.failureResultOf(pool.destroy("app"), ZFSError)
        self.assertEqual(len(runner.calls), 2)

    def test_unmount_not_mounted(self):
        """
        Unmounting a dataset that is not mounted is not an error.
        """
        pool, _, _ = _pool("cannot unmount 'tank/app': not currently "
                           "mounted")
        self.successResultOf(pool.unmount("app"))

    def test_mount_already_mounted(self):
        """
        Mounting a mounted dataset is not an error.
        """
        pool, _, _ = _pool("cannot mount 'tank/app': filesystem already "
                           "mounted")
        self.successResultOf(pool.mount("app"))

    def test_rename_unmounts(self):
        """
        zfs-fuse cannot rename a mounted dataset: ``rename`` unmounts,
        renames (retrying while busy, as right after an unmount) and mounts
        the result.
        """
        pool, runner, clock = _pool(b"", "cannot rename: dataset is busy")
        d = pool.rename("app", ".flocker-recv", "")
        clock.advance(BUSY_DELAYS[0])
        self.successResultOf(d)
        self.assertEqual(runner.calls, [
            ["zfs", "unmount", "tank/app.flocker-recv"],
            ["zfs", "rename", "tank/app.flocker-recv", "tank/app"],
            ["zfs", "rename", "tank/app.flocker-recv", "tank/app"],
            ["zfs", "mount", "tank/app"]])

    def test_unknown_suffix(self):
        """
        Only Flocker's own temporary suffixes are accepted.
        """
        pool, _, _ = _pool()
        self.assertRaises(UnsafeName, pool.dataset, "app", "/../other")

    def test_snapshot_names(self):
        """
        Snapshot names are checked before use.
        """
        pool, runner, _ = _pool()
        for snapshot in ["-r", "a b", "x@y", "", "a/b"]:
            self.assertRaises(UnsafeName, pool.snapshot, "app", snapshot)
        self.successResultOf(pool.snapshot("app", "flocker-1.2Z"))
        self.assertEqual(runner.calls, [
            ["zfs", "snapshot", "tank/app@flocker-1.2Z"]])

    def test_rollback(self):
        """
        ``rollback`` discards later snapshots too (``-r``).
        """
        pool, runner, _ = _pool()
        self.successResultOf(pool.rollback("app", "s1"))
        self.assertEqual(runner.calls,
                         [["zfs", "rollback", "-r", "tank/app@s1"]])

    def test_hold_and_release(self):
        """
        ``hold`` and ``release`` put a tag on a snapshot and take it off;
        a tag already there, or already gone, is not an error (zfs-fuse's
        and OpenZFS's words for both).
        """
        pool, runner, _ = _pool(
            b"", "cannot hold 'tank/app@s1': tag already exists on this "
            "dataset", b"", "cannot release hold from snapshot "
            "'tank/app@s1': no such tag on this dataset")
        for call in (pool.hold, pool.hold, pool.release, pool.release):
            self.assertIsNone(self.successResultOf(
                call("app", "s1", "flocker-base")))
        self.assertEqual(runner.calls, [
            ["zfs", "hold", "flocker-base", "tank/app@s1"]] * 2 + [
            ["zfs", "release", "flocker-base", "tank/app@s1"]] * 2)

    def test_hold_other_errors(self):
        """
        Other refusals of ``hold`` are errors; an unsafe tag is refused
        before any command.
        """
        pool, runner, _ = _pool("cannot hold 'tank/app@s1': dataset does "
                                "not exist")
        self.failureResultOf(pool.hold("app", "s1", "flocker-base"),
                             ZFSError)
        self.failureResultOf(pool.release("app", "s1", "-r"), UnsafeName)
        self.assertEqual(len(runner.calls), 1)

    def test_get_missing(self):
        """
        ``get`` of a dataset that does not exist gives ``None``.
        """
        pool, _, _ = _pool("cannot open 'tank/app': dataset does not exist")
        self.assertIsNone(self.successResultOf(pool.get("app")))

    def test_pool_missing(self):
        """
        ``check`` of a missing pool fails with ``PoolMissing``.
        """
        pool, runner, _ = _pool("cannot open 'tank': no such pool")
        self.failureResultOf(pool.check(), PoolMissing)
        self.assertEqual(runner.calls,
                         [["zpool", "list", "-H", "-o", "name", "tank"]])

    def test_list_opens_pool(self):
        """
        ``list`` is the one command that opens the pool: it asks for the
        node identity and the free space on the pool's root too, and a
        missing pool fails with ``PoolMissing`` and the usual message.
        """
        pool, runner, _ = _pool(
            b"tank\ttype\tfilesystem\t-\n"
            b"tank\tflocker:node-id\tnode-1\tlocal\n"
            b"tank\tavailable\t1048576\t-\n"
            b"tank/app\tflocker:node-id\tnode-1\tinherited from tank\n",
            "cannot open 'tank': dataset does not exist")
        root, app = self.successResultOf(pool.list())
        self.assertEqual((root.get(NODE_ID), app.get(NODE_ID),
                          root.get("available")), ("node-1", None, "1048576"))
        self.assertEqual(runner.calls[0][-2].split(",")[-2:],
                         [NODE_ID, "available"])
        self.assertEqual(runner.calls[0][-1], "tank")
        failure = self.failureResultOf(pool.list(), PoolMissing)
        self.assertIn("ZFS pool tank does not exist", failure.value.message)

    def test_known_unmounted(self):
        """
        ``rename`` and ``destroy`` told the dataset is not mounted skip the
        unmount (a command).
        """
        pool, runner, _ = _pool()
        self.successResultOf(pool.rename("app", ".flocker-recv", "",
                                         mount=False, mounted=False))
        self.successResultOf(pool.destroy("app", ".flocker-old",
                                          mounted=False))
        self.assertEqual(runner.calls, [
            ["zfs", "rename", "tank/app.flocker-recv", "tank/app"],
            ["zfs", "destroy", "-r", "tank/app.flocker-old"]])

    @capture_logging(None)
    def test_logged(self, logger):
        """
        Every command is an eliot action carrying its argument vector.
        """
        pool, _, _ = _pool()
        self.successResultOf(pool.snapshot("app", "s1"))
        assertHasAction(self, logger, ZFS_COMMAND, True,
                        {"argv": ["zfs", "snapshot", "tank/app@s1"]})


class ErrorClassificationTests(SynchronousTestCase):
    """
    ``zfs_error`` turns zfs's messages into error types with one-line
    messages.
    """

    def _classify(self, stderr):
        return zfs_error(ProcessFailed(["zfs"], 1, None, stderr), "tank")

    def test_kinds(self):
        """
        Pool missing, out of space, quota, busy and a missing daemon each
        get their own type.
        """
        cases = [
            (b"cannot open 'tank': no such pool\n", PoolMissing),
            (b"cannot open 'tank': dataset does not exist\n", PoolMissing),
            (b"cannot receive new filesystem stream: out of space\n",
             OutOfSpace),
            (b"write failed: Disk quota exceeded\n", OutOfSpace),
            (b"cannot destroy 'tank/a': dataset is busy\n", DatasetBusy),
            (b"connect: No such file or directory\nPlease make sure that "
             b"the zfs-fuse daemon is running.\ninternal error: failed to "
             b"initialize ZFS library\n", ZFSUnavailable),
            (b"cannot open 'tank/x': dataset does not exist\n", ZFSError),
        ]
        for stderr, kind in cases:
            error = self._classify(stderr)
            self.assertIs(type(error), kind, stderr)
            self.assertNotIn("\n", error.message)

    def test_pool_message(self):
        """
        The pool-missing message is Flocker's words first (what it could
        not do, that the pool is missing and how to make it), then zfs's
        last line and exit status.
        """
        self.assertEqual(
            zfs_error(ProcessFailed(["zfs", "list", "tank"], 1, None,
                                    b"cannot open 'tank': no such pool\n"),
                      "tank").message,
            "could not list pool tank: ZFS pool tank does not exist; create "
            "it (zpool create tank DEVICE) or name the node's pool (--pool, "
            "FLOCKER_POOL) (zfs said: cannot open 'tank': no such pool, "
            "exit 1)")

    def test_words_first(self):
        """
        Every kind of failure reads: ``could not`` what Flocker was doing
        to which volume, what to do when Flocker knows, then what zfs
        said and how it ended.
        """
        cases = [
            (["zfs", "snapshot", "tank/web@s1"],
             b"cannot create snapshot 'tank/web@s1': out of space\n",
             "could not snapshot volume web: the pool is full or the volume "
             "reached its maximum size; free space in pool tank or raise the "
             "volume's maximum_size (zfs said: cannot create snapshot "
             "'tank/web@s1': out of space, exit 1)"),
            (["/sbin/zfs", "destroy", "-r", "tank/web"],
             b"cannot destroy 'tank/web': dataset is busy\n",
             "could not destroy volume web: something still uses it (a "
             "container, a shell in its directory, an open file, or a hold "
             "on one of its snapshots: zfs holds -r); Flocker retried, try "
             "again once it is released (zfs said: cannot destroy "
             "'tank/web': dataset is busy, exit 1)"),
            (["zfs", "receive", "-u", "tank/web.flocker-recv"],
             b"cannot receive incremental stream: destination tank/web has "
             b"been modified\nsince most recent snapshot\n",
             "could not receive volume web: the receiving copy was written "
             "to since its last snapshot; only the owner's copy may be "
             "written (zfs said: since most recent snapshot, exit 1)"),
            (["zfs", "set", "quota=1", "tank/web"],
             b"cannot set property for 'tank/web': size is less than "
             b"current used or reserved space\n",
             "could not set a property of volume web (zfs said: cannot set "
             "property for 'tank/web': size is less than current used or "
             "reserved space, exit 1)"),
        ]
        for argv, stderr, message in cases:
            self.assertEqual(
                zfs_error(ProcessFailed(argv, 1, None, stderr),
                          "tank").message, message)

    def test_killed(self):
        """
        A zfs command ended by a signal says so in place of an exit status.
        """
        self.assertEqual(
            zfs_error(ProcessFailed(["zfs", "send", "tank/web@s"], None, 9,
                                    b""), "tank").message,
            "could not send volume web (zfs said: killed by signal 9)")


class ParseTests(SynchronousTestCase):
    """
    ``ZFSPool.list`` reads ``zfs get`` output into ``Dataset`` values.
    """

    OUTPUT = b"".join([
        b"tank\ttype\tfilesystem\t-\n",
        b"tank\tmountpoint\t/t\tlocal\n",
        b"tank\tflocker:owner\t-\t-\n",
        b"tank/app\ttype\tfilesystem\t-\n",
        b"tank/app\treferenced\t4096\t-\n",
        b"tank/app\trefquota\t0\tdefault\n",
        b"tank/app\tmountpoint\t/t/app\tinherited from tank\n",
        b"tank/app\tflocker:owner\tnode-1\tlocal\n",
        b"tank/app@s2\ttype\tsnapshot\t-\n",
        b"tank/app@s2\tflocker:owner\tnode-1\tinherited from tank/app\n",
        b"tank/app@s1\ttype\tsnapshot\t-\n",
        b"tank/web\ttype\tfilesystem\t-\n",
        b"tank/web\tflocker:owner\tx\tinherited from tank\n",
        b"tank/web\trefquota\t1048576\tlocal\n",
        b"tank/web/deep\ttype\tfilesystem\t-\n",
        b"tankother/app\ttype\tfilesystem\t-\n",
    ])

    def test_parse(self):
        """
        Direct children of the pool are listed with their snapshots in the
        order zfs gave (creation order); deeper datasets, other pools and
        inherited user properties are left out.
        """
        pool, _, _ = _pool(self.OUTPUT)
        datasets = self.successResultOf(pool.list())
        self.assertEqual([d.name for d in datasets], ["", "app", "web"])
        root, app, web = datasets
        self.assertEqual(list(app.snapshots), ["s2", "s1"])
        self.assertEqual((app.owner, app.size, app.maximum_size,
                          app.mountpoint), ("node-1", 4096, None, "/t/app"))
        self.assertEqual((web.owner, web.maximum_size), (None, 1048576))

    def test_bookmarks(self):
        """
        Bookmarks (OpenZFS's ``zfs get`` lists them) are read as the
        dataset's bookmarks, not as datasets or snapshots.
        """
        pool, _, _ = _pool(self.OUTPUT + b"".join([
            b"tank/app#s1\ttype\tbookmark\t-\n",
            b"tank/app#s1\tflocker:owner\t-\t-\n",
            b"tank/app#s0\ttype\tbookmark\t-\n",
        ]))
        datasets = self.successResultOf(pool.list())
        self.assertEqual(
            [(d.name, list(d.snapshots), list(d.bookmarks))
             for d in datasets],
            [("", [], []), ("app", ["s2", "s1"], ["s1", "s0"]),
             ("web", [], [])])


class ResumePointTests(SynchronousTestCase):
    """
    ``parse_resume_point`` reads ``zfs send -nvP -t TOKEN``.
    """

    FULL = ("resume token contents:\nnvlist version: 0\n"
            "\tobject = 0x2\n\toffset = 0x0\n\tbytes = 0x3ba000\n"
            "\ttoguid = 0x9a5e0c1f2b3d4e5f\n\ttoname = tank/app@s2\n"
            "full\ttank/app@s2\t4628760\nsize\t4628760\n")

    INCREMENTAL = (
        "resume token contents:\nnvlist version: 0\n"
        "\tfromguid = 0x1234\n\tobject = 0x80\n\toffset = 0x20000\n"
        "\tbytes = 0x3ba000\n\ttoguid = 0x9a5e0c1f2b3d4e5f\n"
        "\ttoname = tank/app@s2\n\tcompressok = 1\n"
        "incremental\ttank/app#s1\ttank/app@s2\t4628760\n"
        "size\t4628760\n")

    def test_full(self):
        """
        A full stream's token: its snapshot, no base.
        """
        self.assertEqual(parse_resume_point(self.FULL, "tank/app"),
                         ("s2", None))

    def test_incremental(self):
        """
        An incremental's token: its snapshot and base (a bookmark's name
        is the snapshot it was made of).
        """
        self.assertEqual(parse_resume_point(self.INCREMENTAL, "tank/app"),
                         ("s2", "s1"))

    def test_other_dataset(self):
        """
        A token of another dataset, or output without a snapshot, gives
        ``None``.
        """
        self.assertEqual(
            (parse_resume_point(self.FULL, "tank/web"),
             parse_resume_point("cannot resume send\n", "tank/app")),
            (None, None))

    def test_token_checked(self):
        """
        Only what looks like a resume token is put on a command line.
        """
        check_resume_token("1-e604ea4bf-e0-789c63a2")
        for token in ("-t", "1-x-y-z", "1-a-b", "", None, "1-a-b-c d"):
            self.assertRaises(UnsafeName, check_resume_token, token)


# Real zfs-fuse


def pools_for(test):
    """
    :param test: The ``TestCase`` (its ``addCleanup`` destroys the pools).
    :return: File-backed pools (a ``FilePools``) for one test.
    """
    require_zfs()
    created = FilePools()
    test.addCleanup(created.destroy)
    return created


def _real(pools, label="real"):
    name = pools.create(label)

    def make(reactor):
        return ZFSPool(reactor, name, ENV)
    return name, make


def _send_receive(source, snapshot, base, target, force, limit=None):
    def scenario(reactor):
        read_fd, write_fd = make_pipe()
        sent = source(reactor).send("app", snapshot, base, write_fd)
        os.close(write_fd)
        received = target(reactor).receive("app", read_fd, snapshot, base,
                                           force=force, limit=limit)
        received.addBoth(_closing(read_fd))
        return sent.addCallback(lambda _: received)
    return run_in_reactor(scenario)


def _closing(fd):
    def close(result):
        os.close(fd)
        return result
    return close


def _receive_command_stream(pools, argv, snapshot, base, limit=None,
                            label=""):
    """
    Receive into a fresh pool what ``argv`` (a ``zfs send`` of the source
    pool, given its name) writes.

    :return: ``(target, outcome)``: the target pool's maker and the
        ``Failure`` (or ``None``) the receive ended with.
    """
    name, source = _real(pools, "src" + label)
    _, target = _real(pools, "dst" + label)
    run_in_reactor(lambda reactor: source(reactor).create(
        "app", {"mountpoint": "/tmp/flocker-test-%s-mp" % (name,),
                "setuid": "off"}))
    for each in ["s1", "s2"]:
        run_in_reactor(lambda reactor: source(reactor).snapshot("app", each))

    def scenario(reactor):
        read_fd, write_fd = make_pipe()
        sender = subprocess.Popen(argv(name), stdout=write_fd,
                                  stderr=subprocess.DEVNULL)
        os.close(write_fd)
        d = target(reactor).receive("app", read_fd, snapshot, base,
                                    limit=limit)
        d.addBoth(_closing(read_fd))
        d.addBoth(lambda result: (sender.wait(), result)[1])
        # In a list: a Failure returned as such would fail the Deferred.
        return d.addCallbacks(lambda _: [None], lambda failure: [failure])
    return target, run_in_reactor(scenario)[0]


class SilentSenderReceiveTests(SynchronousTestCase):
    """
    ``ZFSPool.receive`` gives up on a sender that stays silent for its
    ``idle_timeout``.
    """

    def receive(self, interrupt=None):
        """
        :return: ``(reactor, runner, the Deferred)`` of a receive from a
            pipe nothing is written to, on a fake runner.
        """
        reactor = MemoryReactorClock()
        runner = FakeRunner()
        pool = ZFSPool(reactor, "tank", ENV, clock=Clock(), runner=runner)
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        self.addCleanup(os.close, write_fd)
        return reactor, runner, pool.receive(
            "app", read_fd, "s1", None, idle_timeout=20, interrupt=interrupt)

    def test_silent_before_first_record(self):
        """
        A stream that brings nothing fails the receive with
        ``StreamRejected`` once ``idle_timeout`` passes (not before),
        before any ``zfs`` command ran, leaving nothing watched.
        """
        reactor, runner, received = self.receive()
        reactor.advance(19)
        self.assertNoResult(received)
        reactor.advance(1)
        failure = self.failureResultOf(received, StreamRejected)
        self.assertIn("sent nothing for 20 s", failure.value.message)
        self.assertEqual((runner.calls, reactor.readers), ([], set()))

    def test_interrupted_before_first_record(self):
        """
        An ``interrupt`` fired while the stream has brought nothing fails
        the receive at once with ``StreamRejected`` naming its reason,
        before any ``zfs`` command ran, leaving nothing watched.
        """
        interrupt = Deferred()
        reactor, runner, received = self.receive(interrupt)
        self.assertNoResult(received)
        interrupt.callback("a failover")
        failure = self.failureResultOf(received, StreamRejected)
        self.assertEqual(
            (failure.value.message, runner.calls, reactor.readers,
             reactor.getDelayedCalls()),
            ("the receive of app was abandoned: a failover; this node's "
             "copy is unchanged", [], set(), []))


class RealPoolTests(SynchronousTestCase):
    """
    ``ZFSPool`` on real file-backed zfs-fuse pools.
    """

    def test_real_receive_interrupted(self):
        """
        A receive whose sender stopped mid-stream (its connection still
        open) is abandoned at once by its ``interrupt``: ``zfs receive``
        applies nothing, so the volume is not created.
        """
        pools = pools_for(self)
        name, source = _real(pools, "src")
        _, target = _real(pools, "dst")
        run_in_reactor(lambda reactor: source(reactor).create("app", {}))
        run_in_reactor(lambda reactor: source(reactor).snapshot("app", "s1"))
        stream = subprocess.run(["zfs", "send", name + "/app@s1"],
                                capture_output=True, check=True).stdout

        def scenario(reactor):
            read_fd, write_fd = make_pipe()
            # Part of the stream, then silence: a sender that died.
            os.write(write_fd, stream[:4096])
            interrupt = Deferred()
            d = target(reactor).receive("app", read_fd, "s1", None,
                                        idle_timeout=60, interrupt=interrupt)
            reactor.callLater(0.5, interrupt.callback, "a failover")
            d.addBoth(_closing(read_fd))
            d.addBoth(_closing(write_fd))
            return d.addCallbacks(lambda _: [None], lambda failure: [failure])
        [outcome] = run_in_reactor(scenario)
        self.assertEqual(
            (outcome.check(StreamRejected), outcome.value.message,
             run_in_reactor(lambda reactor: target(reactor).get("app"))),
            (StreamRejected, "the receive of app was abandoned: a failover; "
             "this node's copy is unchanged", None))

    @given(st.text(max_size=70))
    def test_only_safe_names_reach_zfs(self, name):
        """
        Any string that is not a safe name is refused; a safe one names a
        direct child of the pool.
        """
        pool, runner, _ = _pool()
        if is_safe_name(name):
            self.assertEqual(pool.dataset(name), "tank/" + name)
        else:
            with self.assertRaises(UnsafeName):
                pool.dataset(name)

    def test_real_check(self):
        """
        ``check`` passes for an existing pool and fails with ``PoolMissing``
        for another name.
        """
        pools = pools_for(self)
        name, make = _real(pools)
        run_in_reactor(lambda reactor: make(reactor).check())
        with self.assertRaises(PoolMissing):
            run_in_reactor(lambda reactor: ZFSPool(
                reactor, name + "-missing", ENV).check())

    def test_real_lifecycle(self):
        """
        Create, snapshot, list and destroy work on a real pool, and the
        listing shows only this pool's datasets.
        """
        pools = pools_for(self)
        name, make = _real(pools, "mine")
        other = pools.create("other")
        run_in_reactor(lambda reactor: ZFSPool(reactor, other, ENV).create(
            "foreign", {}))

        def scenario(reactor):
            pool = make(reactor)
            d = pool.create("app", {"refquota": str(64 * 1024 * 1024),
                                    "flocker:owner": "me"})
            d.addCallback(lambda _: pool.snapshot("app", "s1"))
            d.addCallback(lambda _: pool.snapshot("app", "s2"))
            d.addCallback(lambda _: pool.list())
            return d
        datasets = run_in_reactor(scenario)
        self.assertEqual([d.name for d in datasets], ["", "app"])
        app = datasets[1]
        self.assertEqual(list(app.snapshots), ["s1", "s2"])
        self.assertEqual((app.owner, app.maximum_size),
                         ("me", 64 * 1024 * 1024))
        run_in_reactor(lambda reactor: make(reactor).destroy("app"))
        self.assertIsNone(
            run_in_reactor(lambda reactor: make(reactor).get("app")))

    def test_real_destroy_after_write(self):
        """
        Destroying a dataset right after writing to it (zfs-fuse says busy
        then) succeeds thanks to the retries, every time.
        """
        pools = pools_for(self)
        name, make = _real(pools)
        for attempt in range(3):
            dataset = run_in_reactor(lambda reactor: make(reactor).create(
                "busy", {}).addCallback(lambda _: make(reactor).get("busy")))
            with open(os.path.join(dataset.mountpoint, "f"), "wb") as f:
                f.write(b"x" * 100000)
            run_in_reactor(lambda reactor: make(reactor).destroy("busy"))

    def test_real_rename_mounted(self):
        """
        A mounted dataset can be renamed (unmount, rename, mount) and its data
        is there under the new name.
        """
        pools = pools_for(self)
        name, make = _real(pools)
        run_in_reactor(lambda reactor: make(reactor).create("app", {}))
        first = run_in_reactor(lambda reactor: make(reactor).get("app"))
        with open(os.path.join(first.mountpoint, "f"), "wb") as f:
            f.write(b"kept")
        run_in_reactor(lambda reactor: make(reactor).rename(
            "app", "", ".flocker-old"))
        renamed = run_in_reactor(lambda reactor: make(reactor).get(
            "app", ".flocker-old"))
        self.assertTrue(renamed.mounted)
        with open(os.path.join(renamed.mountpoint, "f"), "rb") as f:
            self.assertEqual(f.read(), b"kept")

    def test_real_readonly(self):
        """
        ``readonly=on`` makes writes fail even though zfs-fuse reads the
        property back as ``off`` (which is why the service never reads it).
        """
        pools = pools_for(self)
        name, make = _real(pools)
        run_in_reactor(lambda reactor: make(reactor).create("app", {}))
        run_in_reactor(lambda reactor: make(reactor).set(
            "app", "readonly", "on"))
        dataset = run_in_reactor(lambda reactor: make(reactor).get("app"))
        with self.assertRaises(OSError) as caught:
            open(os.path.join(dataset.mountpoint, "f"), "wb")
        self.assertEqual(caught.exception.errno, errno.EROFS)

    def test_real_send_receive(self):
        """
        A full stream then an incremental one carry the data; the incremental
        applies with ``force`` even after a read changed access times on the
        receiving side (zfs-fuse gotcha), and fails without it.
        """
        pools = pools_for(self)
        name, source = _real(pools, "src")
        _, target = _real(pools, "dst")
        run_in_reactor(lambda reactor: source(reactor).create("app", {}))
        mine = run_in_reactor(lambda reactor: source(reactor).get("app"))
        with open(os.path.join(mine.mountpoint, "f"), "wb") as f:
            f.write(b"one")
        run_in_reactor(lambda reactor: source(reactor).snapshot("app", "s1"))
        _send_receive(source, "s1", None, target, force=False)
        with open(os.path.join(mine.mountpoint, "g"), "wb") as f:
            f.write(b"two")
        run_in_reactor(lambda reactor: source(reactor).snapshot("app", "s2"))
        run_in_reactor(lambda reactor: target(reactor).mount("app"))
        theirs = run_in_reactor(lambda reactor: target(reactor).get("app"))
        with open(os.path.join(theirs.mountpoint, "f"), "rb") as f:
            self.assertEqual(f.read(), b"one")
        with self.assertRaises(ZFSError):
            _send_receive(source, "s2", "s1", target, force=False)
        _send_receive(source, "s2", "s1", target, force=True)
        with open(os.path.join(theirs.mountpoint, "g"), "rb") as f:
            self.assertEqual(f.read(), b"two")
        theirs = run_in_reactor(lambda reactor: target(reactor).get("app"))
        self.assertEqual(list(theirs.snapshots), ["s1", "s2"])

    def test_real_receive_unmounted(self):
        """
        This zfs-fuse honours ``zfs receive -u`` (every receive passes it),
        which its usage text does not list: a full stream gives an unmounted
        dataset; an incremental one leaves an unmounted dataset unmounted and a
        mounted one mounted (as plain ``zfs receive`` does too).
        """
        pools = pools_for(self)
        name, source = _real(pools, "src")
        _, target = _real(pools, "dst")
        run_in_reactor(lambda reactor: source(reactor).create("app", {}))
        for snapshot in ["s1", "s2", "s3"]:
            run_in_reactor(lambda reactor: source(reactor).snapshot(
                "app", snapshot))

        def mounted():
            return run_in_reactor(lambda reactor: target(reactor).get(
                "app")).mounted
        _send_receive(source, "s1", None, target, force=False)
        self.assertFalse(mounted())
        _send_receive(source, "s2", "s1", target, force=True)
        self.assertFalse(mounted())
        run_in_reactor(lambda reactor: target(reactor).mount("app"))
        _send_receive(source, "s3", "s2", target, force=True)
        self.assertTrue(mounted())

    def test_real_receive_refuses_properties(self):
        """
        A stream carrying properties (``zfs send -p``, here with a mountpoint
        under /tmp and setuid=off) or a replication stream (``-R``) is refused
        before ``zfs receive`` sees it: nothing is created.
        """
        pools = pools_for(self)
        for flag in ["-p", "-R"]:
            target, outcome = _receive_command_stream(
                pools, lambda pool: ["zfs", "send", flag, pool + "/app@s1"],
                "s1", None, label=flag[1:])
            self.assertTrue(outcome.check(StreamRejected))
            self.assertIn("carries properties", outcome.getErrorMessage())
            self.assertIsNone(
                run_in_reactor(
                    lambda reactor: target(reactor).get("app")))

    def test_real_receive_checks_announcement(self):
        """
        A stream that is not what was announced (another snapshot; an
        incremental stream announced as full) is refused: nothing is created.
        """
        pools = pools_for(self)
        for label, argv, snapshot in [
                ("a", lambda pool: ["zfs", "send", pool + "/app@s1"], "s2"),
                ("b", lambda pool: ["zfs", "send", "-i", "s1", pool + "/app@s2"],
                 "s2")]:
            target, outcome = _receive_command_stream(pools, argv, snapshot,
                                                      None, label=label)
            self.assertTrue(outcome.check(StreamRejected))
            self.assertIsNone(
                run_in_reactor(
                    lambda reactor: target(reactor).get("app")))

    def test_real_receive_stops_at_limit(self):
        """
        A stream over the size limit is cut off and refused
        (``StreamTooLarge``): nothing is created.  Under the limit it is
        received, unmounted, with the target pool's own mountpoint.
        """
        pools = pools_for(self)
        target, outcome = _receive_command_stream(
            pools, lambda pool: ["zfs", "send", pool + "/app@s1"], "s1", None,
            limit=1000)
        self.assertTrue(outcome.check(StreamTooLarge))
        self.assertIsNone(
            run_in_reactor(lambda reactor: target(reactor).get("app")))
        target, outcome = _receive_command_stream(
            pools, lambda pool: ["zfs", "send", pool + "/app@s1"], "s1", None,
            limit=10 ** 9, label="2")
        self.assertIsNone(outcome)
        received = run_in_reactor(lambda reactor: target(reactor).get("app"))
        self.assertFalse(received.mounted)
        self.assertFalse(received.mountpoint.endswith("-mp"))
