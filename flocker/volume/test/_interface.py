"""
The one test suite of ``IVolumeService``, run against the in-memory service
(``test_memory.py``) and the real ZFS service (``test_service.py``).

A fixture builds three nodes on one network: ``a`` and ``b`` with room to
spare and ``c`` with a small pool.  It also stands in for the application
(writing and reading files in a volume, keeping a volume in use) and for the
network (making a node unreachable for one command, cutting a stream after
some bytes).  The fixture object has:

``a``, ``b``, ``c``
    The services.
``address(service)``
    The service's node address.
``call(method, *args, **kwargs)``
    Run a service method, return what its ``Deferred`` fired with (or raise
    what it failed with).
``write(service, name, path, data)``, ``read(service, name, path)``
    Files in a node's copy; ``write`` raises ``OutOfSpace`` when the volume
    or pool is full and ``NotOwner`` when the copy is read-only.
``hold(service, name)``
    Keep the volume in use (a container would) until the test ends.
``fail(address, command)``
    Make ``command`` (``"receive"``, ``"acquire"``) to that node fail as if
    the node could not be reached.
``cut(address, count)``
    Cut pushes to that node after ``count`` stream bytes.
``big``
    A number of bytes that fits ``a``'s pool but not ``c``'s.
``read_aside(service, dataset, path)``
    A file of a copy ``fence`` set aside (named ``dataset`` below the
    pool).
"""

import hashlib
import io
import os
import tarfile

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from flocker._model import VolumeState
from flocker.volume._errors import (
    HandoffConflict, InvalidSize, NoSuchVolume, NotOwner, OutOfSpace,
    SnapshotNotFound, StreamRejected, TargetUnreachable, UnsafeName, VolumeExists, VolumeInUse,
)
from flocker.volume._api import FOLLOWER_SNAPSHOTS, IVolumeService

__all__ = ["make_ivolumeservice_tests"]

MiB = 1024 * 1024


def _digest(data):
    return hashlib.sha256(data).hexdigest()


def _archive(entries):
    """
    :param entries: ``(path, content)`` pairs: ``bytes`` for a file,
        ``None`` for a directory, ``str`` for a symbolic link to it.
    :return: The ``bytes`` of a tar archive holding them.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in entries:
            info = tarfile.TarInfo(path)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def make_ivolumeservice_tests(make_nodes):
    """
    :param make_nodes: Called with the test case; returns the fixture object
        described in this module's docstring (registering its own cleanup).
    :return: A test case class for ``IVolumeService``.
    """

    class IVolumeServiceTests(SynchronousTestCase):
        """
        Tests every ``IVolumeService`` implementation must pass.
        """

        def setUp(self):
            self.nodes = make_nodes(self)
            self.a, self.b, self.c = self.nodes.a, self.nodes.b, self.nodes.c
            self.address_b = self.nodes.address(self.b)
            self.address_a = self.nodes.address(self.a)

        def call(self, method, *args, **kwargs):
            return self.nodes.call(method, *args, **kwargs)

        def volume(self, service, name):
            for info in self.call(service.volumes):
                if info.name == name:
                    return info
            return None

        def created(self, name="app", maximum_size=None, data=b"hello"):
            self.call(self.a.create, name, maximum_size)
            self.nodes.write(self.a, name, "data", data)

        # Basics

        def test_interface(self):
            """
            The service provides ``IVolumeService``.
            """
            self.assertTrue(verifyObject(IVolumeService, self.a))

        def test_create(self):
            """
            A created volume is listed as owned by this node, empty of
            snapshots, and reported as a ``VolumeState``.
            """
            info = self.call(self.a.create, "app")
            self.assertEqual((info.name, info.owned, info.owner,
                              list(info.snapshots)),
                             ("app", True, self.a.node_id, []))
            states = self.call(self.a.list)
            self.assertEqual([(s.name, s.owned) for s in states],
                             [("app", True)])
            self.assertIsInstance(states[0], VolumeState)

        def test_create_bad_size(self):
            """
            A maximum size of zero or below (or not a number) is refused
            with ``InvalidSize`` and nothing is created.
            """
            for size in [0, -5, "10", 1.5, True]:
                self.assertRaises(InvalidSize, self.call, self.a.create,
                                  "app", size)
            self.assertEqual(list(self.call(self.a.list)), [])

        def test_create_idempotent(self):
            """
            Creating an owned volume again keeps its data and updates its
            maximum size.
            """
            self.created()
            info = self.call(self.a.create, "app", 8 * MiB)
            self.assertEqual(info.maximum_size, 8 * MiB)
            self.assertEqual(self.nodes.read(self.a, "app", "data"),
                             b"hello")

        def test_maximum_size(self):
            """
            Writing more than the maximum size fails with ``OutOfSpace``.
            """
            self.call(self.a.create, "app", 1 * MiB)
            self.assertRaises(OutOfSpace, self.nodes.write, self.a, "app",
                              "big", b"x" * (2 * MiB))

        def test_unsafe_names(self):
            """
            Names that could escape the pool or be read as options are
            refused with ``UnsafeName``; nothing is created.
            """
            for name in ["../x", "a/b", "-rf", "a b", "x@y", "", "x..y",
                         "a;b", "a" * 64]:
                self.assertRaises(UnsafeName, self.call, self.a.create, name)
            self.assertEqual(list(self.call(self.a.volumes)), [])

        def test_unsafe_target(self):
            """
            A target address that could be read as an option is refused.
            """
            self.created()
            self.assertRaises(UnsafeName, self.call, self.a.push, "app",
                              "-oProxyCommand=x")

        def test_missing(self):
            """
            Asking about a volume that does not exist fails with
            ``NoSuchVolume``.
            """
            for method in (self.a.mountpoint, self.a.delete,
                           self.a.snapshot, self.a.prune_snapshots):
                self.assertRaises(NoSuchVolume, self.call, method, "nope")

        def test_snapshot(self):
            """
            Snapshots are listed oldest first.
            """
            self.created()
            first = self.call(self.a.snapshot, "app")
            second = self.call(self.a.snapshot, "app")
            self.assertEqual(list(self.volume(self.a, "app").snapshots),
                             [first, second])

        def test_mount(self):
            """
            ``mount`` gives the owned volume's mountpoint; a node that does
            not own the volume is refused.
            """
            self.created()
            self.assertEqual(self.call(self.a.mount, "app").path,
                             self.volume(self.a, "app").mountpoint)
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(NotOwner, self.call, self.b.mount, "app")

        # Seeding

        def test_seed(self):
            """
            Seeding an empty owned volume writes the archive's files, in
            their directories; a second seed leaves the volume alone.
            """
            self.call(self.a.create, "app")
            first = self.call(self.a.seed, "app", _archive(
                [("conf", None), ("conf/app.ini", b"x = 1\n"),
                 ("top", b"top")]))
            second = self.call(self.a.seed, "app", _archive(
                [("top", b"other")]))
            self.assertEqual(
                (first, second, self.nodes.read(self.a, "app", "conf/app.ini"),
                 self.nodes.read(self.a, "app", "top")),
                (True, False, b"x = 1\n", b"top"))

        def test_seed_not_owner(self):
            """
            A node that does not own the volume is refused.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(NotOwner, self.call, self.b.seed, "app",
                              _archive([("f", b"x")]))

        def test_seed_unsafe(self):
            """
            Archives with paths outside the volume, links, or that are not
            tar archives are refused with ``StreamRejected``; nothing is
            written.
            """
            self.call(self.a.create, "app")
            for archive in (_archive([("../escape", b"x")]),
                            _archive([("/etc/passwd", b"x")]),
                            _archive([("link", "/etc")]),
                            b"not a tar archive" * 100):
                self.assertRaises(StreamRejected, self.call, self.a.seed,
                                  "app", archive)
            self.assertTrue(self.call(self.a.seed, "app",
                                      _archive([("f", b"x")])))

        # Pushing

        def test_push(self):
            """
            A push gives the target a copy it does not own, naming the
            source as owner, with the same data; the first is a full
            stream.
            """
            self.created(data=b"one" * 1000)
            result = self.call(self.a.push, "app", self.address_b)
            self.assertEqual((result.base, result.target_node_id),
                             (None, self.b.node_id))
            self.assertGreaterEqual(result.bytes_sent, 3000)
            copy = self.volume(self.b, "app")
            self.assertEqual((copy.owned, copy.owner),
                             (False, self.a.node_id))
            self.assertEqual(list(copy.snapshots), [result.snapshot])
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"one" * 1000)
            # Reported too: the planner tells copies of earlier owners.
            [state] = self.call(self.b.list)
            self.assertEqual((state.owned, state.owner),
                             (False, self.a.node_id))
            self.assertTrue(self.volume(self.a, "app").owned)

        def test_push_incremental(self):
            """
            A second push sends only what changed since the first.
            """
            self.created(data=b"x" * (2 * MiB))
            first = self.call(self.a.push, "app", self.address_b)
            self.nodes.write(self.a, "app", "more", b"small change")
            second = self.call(self.a.push, "app", self.address_b)
            self.assertEqual(second.base, first.snapshot)
            self.assertLess(second.bytes_sent, MiB)
            self.assertEqual(self.nodes.read(self.b, "app", "more"),
                             b"small change")

        def test_push_given_snapshot(self):
            """
            A snapshot taken once is what a push sends when given: two
            targets then hold the same snapshot, incremental from the one
            each had, and no other snapshot is taken.
            """
            self.created(data=b"x" * (64 * 1024))
            address_c = self.nodes.address(self.c)
            self.call(self.a.push, "app", self.address_b)
            self.call(self.a.push, "app", address_c)
            self.nodes.write(self.a, "app", "more", b"small change")
            taken = self.call(self.a.snapshot, "app")
            self.nodes.write(self.a, "app", "later", b"not sent")
            to_b = self.call(self.a.push, "app", self.address_b,
                             snapshot=taken)
            to_c = self.call(self.a.push, "app", address_c, snapshot=taken)
            self.assertEqual(
                (to_b.snapshot, to_c.snapshot,
                 to_b.bytes_sent < 32 * 1024, to_c.bytes_sent < 32 * 1024,
                 self.volume(self.b, "app").snapshots[-1],
                 self.volume(self.c, "app").snapshots[-1],
                 self.volume(self.a, "app").snapshots[-1],
                 self.nodes.read(self.c, "app", "more")),
                (taken, taken, True, True, taken, taken, taken,
                 b"small change"))
            self.assertRaises((KeyError, OSError), self.nodes.read, self.c,
                              "app", "later")

        def test_push_unknown_snapshot(self):
            """
            A push given a snapshot the volume does not have fails with
            ``SnapshotNotFound``, sending nothing.
            """
            self.created()
            self.assertRaises(SnapshotNotFound, self.call, self.a.push,
                              "app", self.address_b,
                              snapshot="flocker-19990101T000000.000000Z")
            self.assertIsNone(self.volume(self.b, "app"))

        def test_follower_read_only(self):
            """
            The target's copy is read-only.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(NotOwner, self.nodes.write, self.b, "app",
                              "data", b"changed")

        def test_push_after_read(self):
            """
            Reading files of the target's copy does not stop the next
            incremental push.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.nodes.read(self.b, "app", "data")
            self.nodes.write(self.a, "app", "data", b"new")
            self.call(self.a.push, "app", self.address_b)
            self.assertEqual(self.nodes.read(self.b, "app", "data"), b"new")

        def test_push_not_owner(self):
            """
            A node that does not own a volume cannot push it.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(NotOwner, self.call, self.b.push, "app",
                              self.address_a)

        def test_push_onto_owner(self):
            """
            A push to a node owning a volume of that name is refused and
            changes nothing there.
            """
            self.created(data=b"mine")
            self.call(self.b.create, "app")
            self.nodes.write(self.b, "app", "data", b"theirs")
            self.assertRaises(NotOwner, self.call, self.a.push, "app",
                              self.address_b)
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"theirs")
            self.assertTrue(self.volume(self.b, "app").owned)

        def test_push_unreachable(self):
            """
            Pushing to a node that cannot be reached fails with
            ``TargetUnreachable``; the source still owns its volume.
            """
            self.created()
            self.nodes.fail(self.address_b, "receive")
            self.assertRaises(TargetUnreachable, self.call, self.a.push,
                              "app", self.address_b)
            self.assertTrue(self.volume(self.a, "app").owned)
            self.assertIsNone(self.volume(self.b, "app"))

        def test_push_target_full(self):
            """
            Pushing more than the target's pool holds fails with
            ``OutOfSpace``; the target's earlier copy is untouched.
            """
            self.created(data=b"first")
            self.call(self.a.push, "app", self.nodes.address(self.c))
            self.nodes.write(self.a, "app", "huge",
                             _incompressible(self.nodes.big))
            self.assertRaises(OutOfSpace, self.call, self.a.push, "app",
                              self.nodes.address(self.c))
            self.assertEqual(self.nodes.read(self.c, "app", "data"),
                             b"first")

        def test_push_interrupted(self):
            """
            A push cut off mid-stream fails and leaves the target's earlier
            copy as it was; pushing again completes it.
            """
            self.created(data=b"before")
            self.call(self.a.push, "app", self.address_b)
            changed = _incompressible(3 * MiB)
            self.nodes.write(self.a, "app", "data", changed)
            self.nodes.cut(self.address_b, MiB)
            self.assertRaises(Exception, self.call, self.a.push, "app",
                              self.address_b)
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"before")
            self.nodes.cut(self.address_b, None)
            self.call(self.a.push, "app", self.address_b)
            self.assertEqual(_digest(self.nodes.read(self.b, "app", "data")),
                             _digest(changed))

        def test_full_stream_replaces_copy(self):
            """
            When the two sides share no snapshot (here the volume was
            deleted and created anew), a full stream replaces the target's
            copy.
            """
            self.created(data=b"old")
            self.call(self.a.push, "app", self.address_b)
            self.call(self.a.delete, "app")
            self.created(data=b"new")
            result = self.call(self.a.push, "app", self.address_b)
            self.assertIsNone(result.base)
            self.assertEqual(self.nodes.read(self.b, "app", "data"), b"new")
            self.assertEqual(len(self.volume(self.b, "app").snapshots), 1)

        # Handing off

        def test_handoff(self):
            """
            A hand-off makes the target the owner, with the data, and
            leaves the source a read-only copy.
            """
            self.created(data=b"moving")
            self.call(self.a.handoff, "app", self.address_b)
            source, target = (self.volume(self.a, "app"),
                              self.volume(self.b, "app"))
            self.assertEqual((source.owned, target.owned), (False, True))
            self.assertEqual((source.owner, target.owner),
                             (self.b.node_id, self.b.node_id))
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"moving")
            self.assertRaises(NotOwner, self.nodes.write, self.a, "app",
                              "data", b"stale write")
            self.nodes.write(self.b, "app", "data", b"new owner writes")

        def test_prepared_handoff(self):
            """
            A hand-off after ``prepare_push`` to its target (the final
            increment's way opened while the application stopped) sends
            what was written after the pre-copy and makes the target the
            owner, as one without.
            """
            self.created(data=b"pre-copied")
            self.call(self.a.push, "app", self.address_b)
            self.assertIsNone(self.call(self.a.prepare_push, "app",
                                        self.address_b))
            self.nodes.write(self.a, "app", "data", b"written last")
            result = self.call(self.a.handoff, "app", self.address_b)
            self.assertIsNotNone(result.base)
            self.assertEqual((self.volume(self.a, "app").owned,
                              self.volume(self.b, "app").owned),
                             (False, True))
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"written last")

        def test_handoff_without_acquire(self):
            """
            ``acquire=False`` stops after the last increment: neither node
            owns the volume until the caller has the target acquire it with
            the result's snapshot and node id; then the target owns the
            data.
            """
            self.created(data=b"two steps")
            result = self.call(self.a.handoff, "app", self.address_b,
                               acquire=False)
            self.assertEqual((self.volume(self.a, "app").owned,
                              self.volume(self.b, "app").owned),
                             (False, False))
            self.assertEqual(result.target_node_id, self.b.node_id)
            self.call(self.b.acquire, "app", result.snapshot,
                      result.target_node_id)
            self.assertEqual((self.volume(self.a, "app").owned,
                              self.volume(self.b, "app").owned),
                             (False, True))
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"two steps")

        def test_handoff_without_acquire_repeated(self):
            """
            Repeating a hand-off without acquire before the target acquired
            sends nothing and names the same snapshot and node.
            """
            self.created(data=b"again")
            first = self.call(self.a.handoff, "app", self.address_b,
                              acquire=False)
            second = self.call(self.a.handoff, "app", self.address_b,
                               acquire=False)
            self.assertEqual(
                (second.snapshot, second.target_node_id, second.bytes_sent),
                (first.snapshot, first.target_node_id, 0))

        def test_move_back_and_forth(self):
            """
            Moving a volume back and forth keeps every file identical, and
            every move after the first sends only an increment.
            """
            content = {"a": _incompressible(MiB), "b": b"small"}
            self.call(self.a.create, "app")
            for path, data in content.items():
                self.nodes.write(self.a, "app", path, data)
            nodes = [self.a, self.b]
            results = []
            for move in range(4):
                source, target = nodes[move % 2], nodes[(move + 1) % 2]
                content["m%d" % (move,)] = b"written before move %d" % (
                    move,)
                self.nodes.write(source, "app", "m%d" % (move,),
                                 content["m%d" % (move,)])
                results.append(self.call(source.handoff, "app",
                                         self.nodes.address(target)))
                for path, data in content.items():
                    self.assertEqual(
                        _digest(self.nodes.read(target, "app", path)),
                        _digest(data))
            self.assertIsNone(results[0].base)
            for result in results[1:]:
                self.assertIsNotNone(result.base)
                self.assertLess(result.bytes_sent, MiB // 2)

        def test_handoff_resumes(self):
            """
            If the last step of a hand-off cannot reach the target, neither
            node owns the volume; running the hand-off again finishes it.
            """
            self.created(data=b"resume")
            self.nodes.fail(self.address_b, "acquire")
            self.assertRaises(TargetUnreachable, self.call, self.a.handoff,
                              "app", self.address_b)
            self.assertEqual((self.volume(self.a, "app").owned,
                              self.volume(self.b, "app").owned),
                             (False, False))
            self.nodes.fail(self.address_b, None)
            self.call(self.a.handoff, "app", self.address_b)
            self.assertTrue(self.volume(self.b, "app").owned)
            self.assertFalse(self.volume(self.a, "app").owned)
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"resume")

        def test_handoff_again(self):
            """
            Repeating a finished hand-off changes nothing.
            """
            self.created()
            self.call(self.a.handoff, "app", self.address_b)
            self.nodes.write(self.b, "app", "data", b"after")
            self.call(self.a.handoff, "app", self.address_b)
            self.assertTrue(self.volume(self.b, "app").owned)
            self.assertEqual(self.nodes.read(self.b, "app", "data"),
                             b"after")

        def test_handoff_unreachable(self):
            """
            A hand-off to an unreachable node leaves the source the owner;
            ``mount`` makes it writable again.
            """
            self.created()
            self.nodes.fail(self.address_b, "receive")
            self.assertRaises(TargetUnreachable, self.call, self.a.handoff,
                              "app", self.address_b)
            self.assertTrue(self.volume(self.a, "app").owned)
            self.call(self.a.mount, "app")
            self.nodes.write(self.a, "app", "data", b"still mine")

        def test_handoff_in_use(self):
            """
            A volume still in use (its application not stopped) is not
            handed off; it stays owned and writable here.
            """
            self.created()
            self.nodes.hold(self.a, "app")
            self.assertRaises(VolumeInUse, self.call, self.a.handoff, "app",
                              self.address_b)
            self.assertTrue(self.volume(self.a, "app").owned)
            self.assertIsNone(self.volume(self.b, "app"))
            self.nodes.write(self.a, "app", "data", b"still writable")

        def test_handoff_to_other_node_refused(self):
            """
            Once handed to one node, a volume cannot be handed to another
            from the old owner's copy: that node is not the one it was
            handed to.
            """
            self.created()
            self.nodes.fail(self.address_b, "acquire")
            self.assertRaises(TargetUnreachable, self.call, self.a.handoff,
                              "app", self.address_b)
            self.assertRaises(HandoffConflict, self.call, self.a.handoff,
                              "app", self.nodes.address(self.c))
            self.assertFalse(self.volume(self.a, "app").owned)
            self.assertIsNone(self.volume(self.c, "app"))

        # Acquiring

        def test_acquire_checks_snapshot(self):
            """
            ``acquire`` refuses a copy that does not end with the expected
            snapshot, and leaves it unowned.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(StreamRejected, self.call, self.b.acquire,
                              "app", "flocker-other")
            self.assertFalse(self.volume(self.b, "app").owned)

        def test_acquire_checks_identity(self):
            """
            ``acquire`` refuses when this node is not the one named.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(HandoffConflict, self.call, self.b.acquire,
                              "app", None, "some-other-node")
            self.assertFalse(self.volume(self.b, "app").owned)

        def test_acquire_owned(self):
            """
            Acquiring a volume this node owns keeps it as it is.
            """
            self.created()
            info = self.call(self.a.acquire, "app")
            self.assertTrue(info.owned)
            self.assertEqual(self.nodes.read(self.a, "app", "data"),
                             b"hello")

        def test_create_over_copy(self):
            """
            Creating a volume where a copy owned by another node exists
            fails with ``VolumeExists``.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(VolumeExists, self.call, self.b.create, "app")

        # Epochs and fencing

        def test_epoch_created_and_carried(self):
            """
            A new volume is at epoch 1, and a pushed copy records the
            owner's epoch.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertEqual((self.volume(self.a, "app").epoch,
                              self.volume(self.b, "app").epoch), (1, 1))
            self.assertEqual(self.call(self.b.list)[0].epoch, 1)

        def test_handoff_new_epoch(self):
            """
            A hand-off starts a new epoch on the new owner, which the old
            owner's copy records too and the new owner's next push carries
            to its followers.
            """
            self.created()
            self.call(self.a.handoff, "app", self.address_b)
            self.assertEqual((self.volume(self.a, "app").epoch,
                              self.volume(self.b, "app").epoch), (2, 2))
            self.call(self.b.push, "app", self.nodes.address(self.c))
            self.assertEqual(self.volume(self.c, "app").epoch, 2)

        def test_acquire_with_epoch(self):
            """
            A failover takes a follower over at the epoch it is given,
            which must be above the copy's own.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.assertRaises(HandoffConflict, self.call, self.b.acquire,
                              "app", None, None, 1)
            self.assertFalse(self.volume(self.b, "app").owned)
            info = self.call(self.b.acquire, "app", None, None, 5)
            self.assertEqual((info.owned, info.epoch), (True, 5))

        def test_owner_acquire_later_epoch(self):
            """
            An owner given a later epoch (it held the application, fenced
            itself when its lease could not be renewed, then won the next
            claim) owns its copy at that epoch: a follower told of the
            claim accepts its next push, which carries the new epoch.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.call(self.b.fence, "app", self.a.node_id, 2)
            info = self.call(self.a.acquire, "app", None, None, 2)
            self.nodes.write(self.a, "app", "after", b"after the claim")
            self.call(self.a.push, "app", self.address_b)
            follower = self.volume(self.b, "app")
            self.assertEqual(
                (info.owned, info.epoch, follower.owner, follower.epoch,
                 self.nodes.read(self.b, "app", "after")),
                (True, 2, self.a.node_id, 2, b"after the claim"))

        def test_owner_acquire_earlier_epoch(self):
            """
            An owner given an epoch below its own refuses it with
            ``HandoffConflict`` and keeps its epoch; given its own epoch,
            ``acquire`` changes nothing.
            """
            self.created()
            self.call(self.a.acquire, "app", None, None, 3)
            self.assertRaises(HandoffConflict, self.call, self.a.acquire,
                              "app", None, None, 2)
            info = self.call(self.a.acquire, "app", None, None, 3)
            self.assertEqual((info.owned, info.epoch), (True, 3))

        def test_fence_follower(self):
            """
            A follower told of a failover records the new owner and epoch,
            and then refuses a push from the stale owner.
            """
            self.created()
            address_c = self.nodes.address(self.c)
            self.call(self.a.push, "app", self.address_b)
            self.call(self.a.push, "app", address_c)
            self.call(self.b.acquire, "app", None, None, 2)
            self.assertIsNone(self.call(self.c.fence, "app", self.b.node_id,
                                        2))
            copy = self.volume(self.c, "app")
            self.assertEqual((copy.owned, copy.owner, copy.epoch),
                             (False, self.b.node_id, 2))
            self.assertRaises(NotOwner, self.call, self.a.push, "app",
                              address_c)

        def test_other_follower_incremental_after_move(self):
            """
            Two followers that received the same snapshots: after a move
            to one of them (a pre-copy, then the hand-off), the other,
            told to follow the new owner, gets only an increment from it,
            even after a push to the old owner: the new owner kept the
            snapshot they share.
            """
            self.created(data=b"x" * (64 * 1024))
            address_c = self.nodes.address(self.c)
            for _ in range(2):
                self.nodes.write(self.a, "app", "round", b"y")
                taken = self.call(self.a.snapshot, "app")
                self.call(self.a.push, "app", self.address_b,
                          snapshot=taken)
                self.call(self.a.push, "app", address_c, snapshot=taken)
            # A round that reached B only, then the move's pre-copy and
            # hand-off: B holds three snapshots newer than C's newest.
            self.nodes.write(self.a, "app", "late", b"z")
            self.call(self.a.push, "app", self.address_b)
            self.call(self.a.push, "app", self.address_b)
            self.call(self.a.handoff, "app", self.address_b)
            owner = self.volume(self.b, "app")
            self.call(self.c.fence, "app", self.b.node_id, owner.epoch)
            self.nodes.write(self.b, "app", "after", b"new owner writes")
            # The old owner first, as a replication round may: its push
            # prunes nothing the other follower needs.
            self.call(self.b.push, "app", self.address_a)
            result = self.call(self.b.push, "app", address_c)
            self.assertEqual(
                (result.base, result.bytes_sent < 32 * 1024,
                 self.nodes.read(self.c, "app", "after")),
                (taken, True, b"new owner writes"))

        def test_follower_keeps_newest(self):
            """
            A follower keeps its newest ``FOLLOWER_SNAPSHOTS`` snapshots.
            """
            self.created()
            pushed = []
            for index in range(FOLLOWER_SNAPSHOTS + 2):
                self.nodes.write(self.a, "app", "data", b"%d" % (index,))
                pushed.append(self.call(self.a.push, "app",
                                        self.address_b).snapshot)
            self.assertEqual(list(self.volume(self.b, "app").snapshots),
                             pushed[-FOLLOWER_SNAPSHOTS:])

        def test_fence_stale_owner(self):
            """
            An owner told that another node owns the volume at a later
            epoch sets its copy aside under a recovery name, with the
            writes made after its last push, and no longer has the volume.
            """
            self.created()
            self.call(self.a.push, "app", self.address_b)
            self.nodes.write(self.a, "app", "data", b"late write")
            self.call(self.b.acquire, "app", None, None, 2)
            aside = self.call(self.a.fence, "app", self.b.node_id, 2)
            self.assertTrue(aside.startswith("app.flocker-recovery-e1-"))
            self.assertIsNone(self.volume(self.a, "app"))
            self.assertEqual(self.nodes.read_aside(self.a, aside, "data"),
                             b"late write")

        def test_fence_current_owner_refused(self):
            """
            An owner at the given epoch or later is not stale: ``fence``
            refuses and leaves its copy as it is.
            """
            self.created()
            self.assertRaises(HandoffConflict, self.call, self.a.fence,
                              "app", self.b.node_id, 1)
            self.assertTrue(self.volume(self.a, "app").owned)

        def test_fence_in_use(self):
            """
            A stale copy still in use is not set aside.
            """
            self.created()
            self.nodes.hold(self.a, "app")
            self.assertRaises(VolumeInUse, self.call, self.a.fence, "app",
                              self.b.node_id, 2)
            self.assertTrue(self.volume(self.a, "app").owned)

        def test_pushed_to(self):
            """
            An owner lists the nodes it pushed the volume to; a volume never
            pushed lists none.
            """
            self.created()
            self.assertEqual(self.volume(self.a, "app").pushed_to, ())
            self.call(self.a.push, "app", self.address_b)
            self.assertEqual(self.volume(self.a, "app").pushed_to,
                             (self.address_b,))

        def test_fence_nothing(self):
            """
            A node without a copy has nothing to fence.
            """
            self.assertIsNone(self.call(self.a.fence, "app", self.b.node_id,
                                        2))

        # Deleting and pruning

        def test_delete(self):
            """
            A deleted volume is gone.
            """
            self.created()
            self.call(self.a.delete, "app")
            self.assertIsNone(self.volume(self.a, "app"))

        def test_delete_in_use(self):
            """
            A volume in use is not deleted, and its data stays.
            """
            self.created()
            self.nodes.hold(self.a, "app")
            self.assertRaises(VolumeInUse, self.call, self.a.delete, "app")
            self.assertEqual(self.nodes.read(self.a, "app", "data"),
                             b"hello")

        def test_prune_snapshots(self):
            """
            Pruning keeps the newest snapshot and the last one each target
            received; a dry run destroys nothing.
            """
            self.created()
            pushed = self.call(self.a.push, "app", self.address_b).snapshot
            middle = self.call(self.a.snapshot, "app")
            newest = self.call(self.a.snapshot, "app")
            self.assertEqual(list(self.call(self.a.prune_snapshots, "app",
                                            True)), [middle])
            self.assertEqual(len(self.volume(self.a, "app").snapshots), 3)
            self.assertEqual(list(self.call(self.a.prune_snapshots, "app")),
                             [middle])
            self.assertEqual(list(self.volume(self.a, "app").snapshots),
                             [pushed, newest])
            self.nodes.write(self.a, "app", "later", b"x")
            result = self.call(self.a.push, "app", self.address_b)
            self.assertEqual(result.base, pushed)

        def test_orphans(self):
            """
            ``orphans`` lists the volumes not named.
            """
            self.created("keep")
            self.created("drop")
            self.assertEqual([info.name for info in
                              self.call(self.a.orphans, ["keep"])],
                             ["drop"])

    return IVolumeServiceTests


def _incompressible(size):
    """
    :return: ``size`` random bytes (they do not compress).
    """
    return os.urandom(size)
