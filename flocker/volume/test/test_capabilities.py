"""
Tests for ``flocker.volume._capabilities`` and ``ZFSPool.capabilities``:
what OpenZFS 2.x offers (from its documented usage, version and pool
properties, through a stand-in ``zfs`` executable since this machine has no
kernel module) and what zfs-fuse offers (the real one).
"""

import json
import os

from eliot import add_destinations, remove_destination
from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import run_in_reactor, temporary_path
from flocker.volume._capabilities import (
    OPENZFS, ZFS_FUSE, UnsupportedOption, ZFSCapabilities,
    parse_capabilities, receive_options, send_options,
)
from flocker.volume._errors import UnsafeName
from flocker.volume._process import make_pipe
from flocker.volume._stream import receive_flags
from flocker.volume._zfs import ZFSPool

from . import _fake_openzfs
from .test_zfs import ENV, _pool, pools_for

#: What the lab's zfs-fuse (0.7.0, Debian 12) prints without a command:
#: the lines that matter.
ZFS_FUSE_USAGE = """\
missing command
usage: zfs command args ...
where 'command' is one of the following:

\tcreate [-p] [-o property=value] ... <filesystem>
\tdestroy [-rRd] <snapshot>

\tsnapshot [-r] [-o property=value] ... <filesystem@snapname|volume@snapname>
\trollback [-rRf] <snapshot>
\tlist [-rH][-d max] [-o property[,...]] [-t type[,...]] [-s property] ...
\t    [-S property] ... [filesystem|volume|snapshot] ...

\tsend [-RDp] [-[iI] snapshot] <snapshot>
\treceive [-vnF] <filesystem|volume|snapshot>
\treceive [-vnF] -d <filesystem>

\thold [-r] <tag> <snapshot> ...
\tholds [-r] <snapshot> ...
\trelease [-r] <tag> <snapshot> ...

Each dataset is of the form: pool/[dataset/]*dataset[@name]
"""

OPENZFS_22 = parse_capabilities(_fake_openzfs.USAGE, _fake_openzfs.VERSION,
                                _fake_openzfs.POOL_PROPERTIES)
FUSE = parse_capabilities(ZFS_FUSE_USAGE, None,
                          "size\t1.98G\nversion\t23\n")


class ParseTests(SynchronousTestCase):
    """
    ``parse_capabilities`` on what OpenZFS 2.2 and zfs-fuse print.
    """

    def test_openzfs(self):
        """
        OpenZFS 2.2 offers resumable receive, ``-x``/``-o``, compressed,
        large-block and embedded sends, bookmarks and holds; its versions
        and the pool's features are read.
        """
        self.assertEqual(
            (OPENZFS_22.implementation, OPENZFS_22.version,
             OPENZFS_22.kernel_version, OPENZFS_22.resumable_receive,
             OPENZFS_22.receive_excludes, OPENZFS_22.receive_overrides,
             {"c", "L", "e", "w"} <= OPENZFS_22.send_flags,
             OPENZFS_22.bookmarks, OPENZFS_22.holds,
             {"large_blocks", "embedded_data", "lz4_compress",
              "bookmarks"} <= OPENZFS_22.features),
            (OPENZFS, "2.2.2", "2.2.2", True, True, True, True, True, True,
             True))

    def test_zfs_fuse(self):
        """
        zfs-fuse has holds but no resumable receive, no ``-x``/``-o``, no
        ``-c``/``-L``/``-e`` and no bookmarks.
        """
        self.assertEqual(
            (FUSE.implementation, FUSE.version, FUSE.resumable_receive,
             FUSE.receive_excludes, FUSE.receive_overrides,
             FUSE.send_flags, FUSE.bookmarks, FUSE.holds, FUSE.features),
            (ZFS_FUSE, None, False, False, False, frozenset("RDp"), False,
             True, frozenset()))

    def test_no_module(self):
        """
        OpenZFS's userland without its kernel module (``zfs version``
        names no ``zfs-kmod``) is still OpenZFS, with no kernel version.
        """
        capabilities = parse_capabilities(_fake_openzfs.USAGE,
                                          "zfs-2.1.11-1\n", "")
        self.assertEqual((capabilities.version, capabilities.kernel_version),
                         ("2.1.11", None))

    def test_bookmarks_need_feature(self):
        """
        ``zfs bookmark`` on a pool without the ``bookmarks`` feature does
        not count.
        """
        capabilities = parse_capabilities(
            _fake_openzfs.USAGE, _fake_openzfs.VERSION,
            "feature@bookmarks\tdisabled\n")
        self.assertEqual(capabilities.bookmarks, False)


class WireTests(SynchronousTestCase):
    """
    Capabilities sent to another node and read back.
    """

    def test_round_trip(self):
        """
        ``from_wire(to_wire())`` gives the same value, through JSON.
        """
        for capabilities in (OPENZFS_22, FUSE):
            self.assertEqual(ZFSCapabilities.from_wire(json.loads(
                json.dumps(capabilities.to_wire()))), capabilities)

    def test_malformed(self):
        """
        Anything malformed (or nothing, from an older node) reads as
        ``None``, never as a partial value.
        """
        good = OPENZFS_22.to_wire()
        bad = [None, [], {}, dict(good, implementation="zfs-9"),
               dict(good, send_flags="cL"), dict(good, holds="yes"),
               dict(good, features=["a b"]), dict(good, version=3)]
        self.assertEqual([ZFSCapabilities.from_wire(b) for b in bad],
                         [None] * len(bad))

    @given(st.dictionaries(st.text(max_size=20),
                           st.one_of(st.none(), st.booleans(), st.text(),
                                     st.lists(st.text()))))
    def test_never_raises(self, document):
        """
        Whatever another node sends, ``from_wire`` returns a value or
        ``None``.
        """
        result = ZFSCapabilities.from_wire(document)
        self.assertTrue(result is None or isinstance(result, ZFSCapabilities))


class SendOptionsTests(SynchronousTestCase):
    """
    ``send_options``: only what both sides support.
    """

    def test_openzfs_both(self):
        """
        Between two OpenZFS 2.2 pools: large blocks, embedded data,
        compressed.
        """
        self.assertEqual(send_options(OPENZFS_22, OPENZFS_22),
                         ["-L", "-e", "-c"])

    def test_to_zfs_fuse(self):
        """
        Towards zfs-fuse (no features, no compressed streams): nothing.
        """
        self.assertEqual(send_options(OPENZFS_22, FUSE), [])

    def test_from_zfs_fuse(self):
        """
        From zfs-fuse: nothing, whatever the target has.
        """
        self.assertEqual(send_options(FUSE, OPENZFS_22), [])

    def test_unknown_target(self):
        """
        A target that did not say (an older node): nothing.
        """
        self.assertEqual(send_options(OPENZFS_22, None), [])

    def test_feature_missing(self):
        """
        A target pool without ``large_blocks`` does not get ``-L``.
        """
        target = parse_capabilities(
            _fake_openzfs.USAGE, _fake_openzfs.VERSION,
            "feature@embedded_data\tactive\nfeature@lz4_compress\tactive\n")
        self.assertEqual(send_options(OPENZFS_22, target), ["-e", "-c"])


class ReceiveOptionsTests(SynchronousTestCase):
    """
    ``receive_options``: the flags each ZFS takes.
    """

    def test_openzfs(self):
        """
        OpenZFS gets ``-s``, ``-x`` and ``-o`` as asked, in a stable order.
        """
        self.assertEqual(
            receive_options(OPENZFS_22, force=True, unmounted=True,
                            resumable=True,
                            exclude=["mountpoint", "canmount"],
                            override={"readonly": "on"}),
            ["-F", "-u", "-s", "-x", "canmount", "-x", "mountpoint",
             "-o", "readonly=on"])

    def test_zfs_fuse_leaves_out(self):
        """
        zfs-fuse gets only what it has: the rest is left out.
        """
        self.assertEqual(
            receive_options(FUSE, force=True, resumable=True,
                            exclude=["mountpoint"],
                            override={"readonly": "on"}),
            ["-F"])

    def test_strict(self):
        """
        With ``strict``, asking zfs-fuse to exclude or override a property
        fails, naming the option.
        """
        error = self.assertRaises(UnsupportedOption, receive_options, FUSE,
                                  exclude=["mountpoint"], strict=True)
        self.assertIn("-x mountpoint", str(error))


def fake_openzfs_for(test):
    """
    Put the OpenZFS 2.2 stand-in's ``zfs`` and ``zpool`` first on ``PATH``
    (this process's too: the reactor looks commands up there) until
    ``test`` ends.

    :param test: The ``TestCase`` (its ``addCleanup`` restores ``PATH``).
    :return: ``(env, log)``: the environment for ``ZFSPool`` and the file
        the commands are logged in.
    """
    directory = str(temporary_path(test))
    log = os.path.join(directory, "commands.log")
    _fake_openzfs.install(directory, log)
    path = directory + os.pathsep + os.environ.get("PATH", "")
    before = os.environ.get("PATH")

    def restore():
        if before is None:
            del os.environ["PATH"]
        else:
            os.environ["PATH"] = before
    os.environ["PATH"] = path
    test.addCleanup(restore)
    return dict(ENV, PATH=path), log


def _logged(log):
    with open(log) as f:
        return [json.loads(line) for line in f]


class OptionCheckTests(SynchronousTestCase):
    """
    Options given to send and receive are options, never datasets.
    """

    def test_refused(self):
        """
        A word that is not ``-X`` (outside ``-o``/``-x`` values) is refused
        before anything runs.
        """
        pool, runner, _ = _pool()
        for options in (["tank/other"], ["--"], ["-o"], ["-Fu"],
                        ["-x", "tank/other"], ["-o", "readonly"]):
            self.assertRaises(UnsafeName, pool.send, "app", "s1", None, 0,
                              options=options)
        self.assertEqual(runner.calls, [])


class RealCommandsTests(SynchronousTestCase):
    """
    Capabilities detected, and flags accepted, by real commands: the
    OpenZFS 2.2 stand-in and the lab's zfs-fuse.
    """

    def setUp(self):
        # Give the eliot messages of the real commands somewhere to go:
        # with no destination at all, eliot keeps them for the first
        # destination added later (another test's).
        messages = []
        add_destinations(messages.append)
        self.addCleanup(remove_destination, messages.append)

    def test_detected_openzfs(self):
        """
        ``ZFSPool.capabilities`` against the OpenZFS 2.2 stand-in detects it,
        with three commands, once per pool.
        """
        env, log = fake_openzfs_for(self)

        def scenario(reactor):
            pool = ZFSPool(reactor, "tank", env)
            return pool.capabilities().addCallback(
                lambda first: pool.capabilities().addCallback(
                    lambda second: (first, second)))
        first, second = run_in_reactor(scenario)
        self.assertEqual((first, second), (OPENZFS_22, OPENZFS_22))
        self.assertEqual(
            sorted(_logged(log)),
            [["zfs"], ["zfs", "version"],
             ["zpool", "get", "-H", "-o", "property,value", "all", "tank"]])

    def test_openzfs_accepts_chosen_flags(self):
        """
        The flags chosen for OpenZFS 2.2 are accepted by its send and receive
        (the stand-in refuses options they do not have, as they do).
        """
        env, log = fake_openzfs_for(self)

        def scenario(reactor):
            pool = ZFSPool(reactor, "tank", env)
            read_fd, write_fd = make_pipe()
            sent = pool.send("app", "s2", "s1", write_fd,
                             options=send_options(OPENZFS_22, OPENZFS_22))
            os.close(write_fd)
            received = pool.receive("app", read_fd, "s2", "s1", force=True,
                                    capabilities=OPENZFS_22)

            def close(result):
                os.close(read_fd)
                return result
            received.addBoth(close)
            return sent.addCallback(lambda _: received)
        run_in_reactor(scenario)
        # Both ran at once: their order in the log is the machine's choice.
        self.assertEqual(
            sorted(_logged(log)),
            [["zfs", "receive"] + receive_flags(OPENZFS_22, True)
             + ["tank/app"],
             ["zfs", "send", "-L", "-e", "-c", "-i", "tank/app@s1",
              "tank/app@s2"]])
        self.assertEqual(
            receive_flags(OPENZFS_22, True)[:7],
            ["-F", "-u", "-s", "-x", "aclinherit", "-x", "acltype"])

    def test_openzfs_holds(self):
        """
        ``ZFSPool.hold``/``release`` against the OpenZFS 2.2 stand-in (which
        refuses a second hold with the same tag and the release of a missing
        one with OpenZFS's words): holding twice and releasing twice are not
        errors, and the hold is gone at the end.
        """
        env, log = fake_openzfs_for(self)

        def scenario(reactor):
            pool = ZFSPool(reactor, "tank", env)
            d = pool.hold("app", "s1", "flocker-base")
            d.addCallback(lambda _: pool.hold("app", "s1", "flocker-base"))
            d.addCallback(lambda _: pool.release("app", "s1", "flocker-base"))
            d.addCallback(lambda _: pool.release("app", "s1", "flocker-base"))
            return d
        run_in_reactor(scenario)
        with open(log + ".holds") as f:
            holds = json.load(f)
        self.assertEqual(
            (_logged(log), holds),
            ([["zfs", "hold", "flocker-base", "tank/app@s1"]] * 2
             + [["zfs", "release", "flocker-base", "tank/app@s1"]] * 2,
             {"tank/app@s1": []}))

    def test_openzfs_refuses_unknown_flag(self):
        """
        The stand-in refuses an option OpenZFS does not have, as OpenZFS
        does, so the tests above would notice a wrong flag.
        """
        env, log = fake_openzfs_for(self)

        def scenario(reactor):
            read_fd, write_fd = make_pipe()
            d = ZFSPool(reactor, "tank", env).send("app", "s1", None, write_fd,
                                                   options=["-q"])
            os.close(write_fd)
            os.close(read_fd)
            return d.addCallbacks(lambda _: None, lambda f: f.value)
        error = run_in_reactor(scenario)
        self.assertEqual(
            (error.failure.exit_code,
             b"invalid option 'q'" in error.failure.stderr),
            (2, True))

    def test_detected_zfs_fuse(self):
        """
        On the real zfs-fuse: zfs-fuse, holds, no resumable receive, no
        ``-x``/``-o``, no pool features; so nothing is added to what Flocker
        sends to or receives on it.
        """
        pools = pools_for(self)
        name = pools.create("caps")
        capabilities = run_in_reactor(
            lambda reactor: ZFSPool(reactor, name, ENV).capabilities())
        self.assertEqual(
            (capabilities.implementation, capabilities.resumable_receive,
             capabilities.receive_excludes, capabilities.holds,
             capabilities.bookmarks, capabilities.features),
            (ZFS_FUSE, False, False, True, False, frozenset()))
        self.assertEqual(send_options(capabilities, capabilities), [])
        self.assertEqual(
            receive_options(capabilities, resumable=True,
                            exclude=["mountpoint"]),
            [])
