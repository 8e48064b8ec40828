"""
Tests of the order of a move's steps in ``flocker.volume._service``, while
the application is down: the receive of the final increment answers before
its own housekeeping, the old owner answers once the new one is named, and
the new owner's acquire and the application's start ask ZFS nothing the
steps before them already told this service.  On fake pools: each command
is recorded as issued and answered when the test says.
"""

import json
import os

import attr

from eliot import current_action, start_action
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_path
from flocker.volume import _service
from flocker.volume._api import PushResult
from flocker.volume._capabilities import ZFS_FUSE, ZFSCapabilities
from flocker.volume._inuse import mounted_at
from flocker.volume._receive import RECEIVED_HOLD
from flocker.volume._service import VolumeService
from flocker.volume._stamp import mark_changed
from flocker.volume._zfs import EPOCH, OWNER, Dataset

OWNER_A = "a" * 32
OWNER_B = "b" * 32
SNAPSHOTS = ["flocker-20261206T1800%02d.000000Z" % (second,)
             for second in range(6)]


class _MovePool(object):
    """
    The parts of a ``ZFSPool`` a move's steps use, for one volume, ``app``:
    each command is recorded in :attr:`issued` as ``(verb, arguments...)``
    and answered at once, except those whose verb is in :attr:`held`,
    answered when the test calls :meth:`fire`.  A changing command, once
    answered, rewrites the pool's change stamp, as ``ZFSPool`` does.

    :ivar issued: Each command in issue order (``("list",)`` and
        ``("get",)`` for the listings).
    :ivar waiting: The held commands' Deferreds, in issue order.
    """

    name = "tank"

    def __init__(self, test, dataset, held=()):
        self.copy = dataset
        self.held = set(held)
        self.issued = []
        self.waiting = []
        self.stamp = str(temporary_path(test) / "volumes-tank.changed")
        self.last_stamp = None

    def _command(self, *command):
        self.issued.append(command)
        if command[0] in self.held:
            d = Deferred()
            self.waiting.append(d)
        else:
            d = succeed(None)
        return d.addCallback(self._changed)

    def _changed(self, result):
        self.last_stamp = mark_changed(self.stamp)
        return result

    def fire(self):
        """
        Answer the oldest held command not answered yet.
        """
        self.waiting.pop(0).callback(None)

    def dataset(self, volume, suffix=""):
        return "tank/%s%s" % (volume, suffix)

    def list(self):
        self.issued.append(("list",))
        return succeed([Dataset(name="", properties={"available": "1000000"},
                                snapshots=[]), self.copy])

    def get(self, name):
        self.issued.append(("get",))
        return succeed(self.copy)

    def capabilities(self):
        return succeed(ZFSCapabilities(implementation=ZFS_FUSE, holds=True))

    def _snapshots(self, snapshots):
        self.copy = attr.evolve(self.copy, snapshots=snapshots)

    def receive(self, volume, stdin, snapshot, base, suffix="", force=False,
                limit=None, capabilities=None, idle_timeout=None,
                resuming=False, interrupt=None):
        self._snapshots(self.copy.snapshots.append(snapshot))
        return self._command("receive", snapshot, base)

    def set(self, name, key, value, suffix=""):
        return self._command("set", key, value)

    def hold(self, name, snapshot, tag):
        return self._command("hold", snapshot, tag)

    def release(self, name, snapshot, tag):
        return self._command("release", snapshot, tag)

    def destroy_snapshot(self, name, snapshot, delays=None):
        self._snapshots(self.copy.snapshots.remove(snapshot))
        return self._command("destroy", snapshot)

    def mount(self, name):
        return self._command("mount")

    def unmount(self, name):
        return self._command("unmount")


def _follower(snapshots):
    """
    :return: The ``Dataset`` of ``app``, an unmounted follower of node
        ``OWNER_B`` at epoch 3 holding ``snapshots``.
    """
    return Dataset(name="app", properties={
        OWNER: OWNER_B, EPOCH: "3", "mounted": "no", "atime": "off",
        "mountpoint": "/tank/app"}, snapshots=snapshots)


class _MoveTestsMixin(object):
    """
    A service over a :class:`_MovePool` on node ``OWNER_A``, mount points
    taken as mounted (there is no real one).
    """

    def service(self, dataset, held=()):
        """
        :return: ``(VolumeService, _MovePool)`` holding ``dataset``.
        """
        self.patch(_service, "mounted_at", lambda dataset, path: True)
        self.reactor = reactor = MemoryReactorClock()
        pool = _MovePool(self, dataset, held)
        service = VolumeService(reactor, pool, OWNER_A, None,
                                clock=Clock(), in_use=lambda *args: [])
        return service, pool

    def receive(self, service, snapshot, base):
        """
        Start the receive of ``snapshot`` from ``OWNER_B`` onto ``base``,
        its request already sent.

        :return: ``(Deferred of the receive, list of the messages it
            emitted)``.
        """
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        os.write(write, json.dumps({
            "snapshot": snapshot, "base": base, "owner": OWNER_B,
            "maximum_size": None, "epoch": 3}).encode("utf-8") + b"\n")
        emitted = []
        received = service.receive("app", read, emitted.append,
                                   caller=OWNER_B)
        # The request line is there to read.
        for reader in list(self.reactor.readers):
            reader.doRead()
        return received, emitted


class ReceiveAnswerTests(_MoveTestsMixin, SynchronousTestCase):
    """
    A receive confirms the copy once it is received and a follower; the
    follower's housekeeping follows the answer, still under the volume's
    lock.
    """

    def test_answer_before_housekeeping(self):
        """
        An increment onto the copy's newest snapshot is confirmed right
        after ``zfs receive``; then the snapshot received is held and the
        hold on the one before it released; the oldest snapshot beyond the
        follower's newest four is destroyed once the receive is over.
        """
        service, pool = self.service(_follower(SNAPSHOTS[:4]),
                                     held={"hold"})
        received, emitted = self.receive(service, SNAPSHOTS[4], SNAPSHOTS[3])
        answered = [message["received"] for message in emitted
                    if "received" in message]
        self.assertEqual(
            (answered, pool.issued),
            ([SNAPSHOTS[4]],
             [("list",), ("receive", SNAPSHOTS[4], SNAPSHOTS[3]),
              ("hold", SNAPSHOTS[4], RECEIVED_HOLD)]))
        self.assertNoResult(received)
        pool.fire()
        self.assertEqual(self.successResultOf(received), SNAPSHOTS[4])
        self.assertEqual(pool.issued[3:], [
            ("release", SNAPSHOTS[3], RECEIVED_HOLD), ("get",),
            ("destroy", SNAPSHOTS[0])])

    def test_lock_held_until_housekeeping_ends(self):
        """
        The next operation on the volume waits for the housekeeping after
        the answer, and the receive fires only once it ended.
        """
        service, pool = self.service(_follower(SNAPSHOTS[:4]),
                                     held={"release"})
        received, emitted = self.receive(service, SNAPSHOTS[4], SNAPSHOTS[3])
        after = service._locked("app", lambda: succeed("next"))
        self.assertNoResult(after)
        pool.fire()
        self.assertEqual(
            (self.successResultOf(received), self.successResultOf(after)),
            (SNAPSHOTS[4], "next"))

    def test_rollback_released_first(self):
        """
        A copy whose newest snapshot is not the increment's base is rolled
        back, its newest snapshot's hold released before that (ZFS
        destroys no held snapshot); the new one is held after the receive,
        and nothing else released.
        """
        service, pool = self.service(_follower(SNAPSHOTS[:4]))
        def rollback(name, snapshot):
            pool._snapshots(pool.copy.snapshots[
                :pool.copy.snapshots.index(snapshot) + 1])
            return pool._command("rollback", snapshot)
        pool.rollback = rollback
        received, _ = self.receive(service, SNAPSHOTS[4], SNAPSHOTS[2])
        self.assertEqual(pool.issued[1:], [
            ("release", SNAPSHOTS[3], RECEIVED_HOLD),
            ("rollback", SNAPSHOTS[2]),
            ("receive", SNAPSHOTS[4], SNAPSHOTS[2]),
            ("hold", SNAPSHOTS[4], RECEIVED_HOLD)])
        self.assertEqual(self.successResultOf(received), SNAPSHOTS[4])


    def test_waiting_step_keeps_its_context(self):
        """
        An operation that waits for the volume's lock (an acquire behind a
        receive's last steps) runs in its caller's eliot action, not in the
        receive's.
        """
        service, pool = self.service(_follower(SNAPSHOTS[:4]),
                                     held={"release"})
        received, _ = self.receive(service, SNAPSHOTS[4], SNAPSHOTS[3])
        with start_action(action_type="test:acquire") as action:
            after = service._locked("app", current_action)
        pool.fire()
        self.successResultOf(received)
        self.assertIs(self.successResultOf(after), action)


class KnownStateTests(_MoveTestsMixin, SynchronousTestCase):
    """
    The new owner's acquire right after the receive of the final
    increment, and the application's start right after the acquire, ask
    ZFS for no listing, unless the pool changed in between.
    """

    def acquired(self):
        """
        Receive the final increment, then acquire it.

        :return: The ``_MovePool``, its commands so far forgotten.
        """
        service, pool = self.service(_follower(SNAPSHOTS[:4]))
        received, _ = self.receive(service, SNAPSHOTS[4], SNAPSHOTS[3])
        self.successResultOf(received)
        del pool.issued[:]
        info = self.successResultOf(service.acquire(
            "app", snapshot=SNAPSHOTS[4], node_id=OWNER_A))
        self.assertEqual((info.owned, info.epoch), (True, 4))
        return service, pool

    def test_acquire_after_receive(self):
        """
        The acquire takes the copy as the receive left it: no listing,
        only the commands that make it the owner, writable and mounted.
        """
        service, pool = self.acquired()
        self.assertEqual(pool.issued, [
            ("release", SNAPSHOTS[4], RECEIVED_HOLD), ("set", EPOCH, "4"),
            ("set", OWNER, OWNER_A), ("set", "readonly", "off"),
            ("mount",)])

    def test_start_after_acquire(self):
        """
        The application's mount after the acquire runs no command and
        gives the copy's mount point.
        """
        service, pool = self.acquired()
        del pool.issued[:]
        path = self.successResultOf(service.mount("app"))
        self.assertEqual((path.path, pool.issued), ("/tank/app", []))

    def test_changed_between(self):
        """
        A change to the pool by another process after the acquire (the
        change stamp rewritten) makes the mount ask ZFS.
        """
        service, pool = self.acquired()
        mark_changed(pool.stamp)
        del pool.issued[:]
        pool.copy = Dataset(name="app", properties=pool.copy.properties
                               .set(OWNER, OWNER_A).set("mounted", "yes"),
                               snapshots=SNAPSHOTS[:5])
        self.successResultOf(service.mount("app"))
        self.assertEqual(pool.issued, [("get",)])

    def test_not_a_mount(self):
        """
        A mount point that is no mount (unmounted by hand) makes the mount
        ask ZFS: a container would get the empty directory under it.
        """
        service, pool = self.acquired()
        self.patch(_service, "mounted_at", lambda dataset, path: False)
        pool.copy = Dataset(name="app", properties=pool.copy.properties
                               .set(OWNER, OWNER_A).set("mounted", "no"),
                               snapshots=SNAPSHOTS[:5])
        del pool.issued[:]
        self.successResultOf(service.mount("app"))
        self.assertEqual(pool.issued, [("get",), ("mount",)])

    def test_once(self):
        """
        What the acquire left is used once: the mount after the first asks
        ZFS again only if a change came in between, and a second acquire
        lists the pool.
        """
        service, pool = self.acquired()
        self.successResultOf(service.mount("app"))
        mark_changed(pool.stamp)
        pool.copy = Dataset(name="app", properties=pool.copy.properties
                               .set(OWNER, OWNER_A).set("mounted", "yes"),
                               snapshots=SNAPSHOTS[:5])
        del pool.issued[:]
        self.successResultOf(service.acquire("app"))
        self.assertEqual(pool.issued[0], ("list",))


class HandoffAnswerTests(_MoveTestsMixin, SynchronousTestCase):
    """
    The old owner's part of a hand-off answers once its copy names the new
    owner; unmounting its copy and collecting the receiving command's exit
    follow, the volume's lock held until they end.
    """

    def handing_off(self):
        """
        Hand ``app`` off to 10.0.0.2, its push answered at once and the
        receiving command's exit left to the test.

        :return: ``(pool, Deferred of the hand-off, exited)``.
        """
        owned = Dataset(name="app", properties={
            OWNER: OWNER_A, EPOCH: "3", "mounted": "yes",
            "mountpoint": "/tank/app"}, snapshots=SNAPSHOTS[:4])
        service, pool = self.service(owned, held={"unmount"})
        exited = Deferred()
        pushed = []

        def push(dataset, target, progress, record=True):
            pushed.append((dataset.name, target, record))
            return succeed((PushResult(
                name="app", target=target, target_node_id=OWNER_B,
                snapshot=SNAPSHOTS[4], base=SNAPSHOTS[3], bytes_sent=10),
                exited))
        service._push = push
        handed = service.handoff("app", "10.0.0.2", acquire=False)
        self.assertEqual(pushed, [("app", "10.0.0.2", False)])
        return service, pool, handed, exited

    def test_answers_once_owner_named(self):
        """
        The hand-off fires with the push's result once the copy is read-only
        and names the new owner at the next epoch, while its unmount and
        the receiving command's exit are still under way.
        """
        service, pool, handed, exited = self.handing_off()
        self.assertEqual(pool.issued, [
            ("get",), ("set", "readonly", "on"), ("set", EPOCH, "4"),
            ("set", OWNER, OWNER_B), ("unmount",)])
        self.assertEqual(self.successResultOf(handed).snapshot, SNAPSHOTS[4])

    def test_lock_held_until_cleanup(self):
        """
        The next operation on the volume waits for the unmount and the
        receiving command's exit.
        """
        service, pool, handed, exited = self.handing_off()
        after = service._locked("app", lambda: succeed("next"))
        pool.fire()
        self.assertNoResult(after)
        exited.callback(None)
        self.assertEqual(self.successResultOf(after), "next")

    def test_cleanup_failure_logged(self):
        """
        An unmount that fails after the answer does not undo the hand-off:
        the lock is released all the same.
        """
        service, pool, handed, exited = self.handing_off()
        after = service._locked("app", lambda: succeed("next"))
        exited.callback(None)
        pool.waiting.pop(0).errback(ValueError("busy"))
        self.assertEqual(self.successResultOf(after), "next")
        self.flushLoggedErrors(ValueError)


class MountedAtTests(SynchronousTestCase):
    """
    ``mounted_at`` reads this process's mount table, not the filesystem.
    """

    def proc(self, *lines):
        """
        :return: A directory laid out as ``/proc`` with ``self/mountinfo``
            holding ``lines``.
        """
        proc = temporary_path(self)
        (proc / "self").mkdir()
        (proc / "self" / "mountinfo").write_bytes(b"".join(
            line + b"\n" for line in lines))
        return str(proc)

    def test_mounted(self):
        """
        A dataset mounted at its mount point (an escaped space included)
        is found there, not elsewhere, and no other dataset is.
        """
        proc = self.proc(
            b"36 35 0:40 / /tank/app rw,relatime shared:1 - fuse.zfs "
            b"tank/app rw,user_id=0",
            b"37 35 0:41 / /tank/my\\040db rw - fuse.zfs tank/db rw")
        self.assertEqual(
            [mounted_at("tank/app", "/tank/app", proc),
             mounted_at("tank/app", "/other", proc),
             mounted_at("tank/web", "/tank/app", proc),
             mounted_at("tank/db", "/tank/my db", proc)],
            [True, False, False, True])

    def test_no_table(self):
        """
        Without a readable table, nothing is taken as mounted.
        """
        self.assertFalse(mounted_at("tank/app", "/tank/app",
                                    str(temporary_path(self))))
