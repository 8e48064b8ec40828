"""
Tests for ``flocker.node._replication``: the agent's continuous replication
of its volumes to standby nodes, driven by a ``Clock`` over in-memory volume
services (the fake that passes the volume interface tests).
"""

import os

from eliot.testing import (
    assertContainsFields, assertHasAction, assertHasMessage,
)
from pyrsistent import pmap
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import Replication, ReplicationStatus, StandbyStatus
from flocker._serialize import SerializationError
from flocker.node._logging import (
    REPLICATE_VOLUME, REPLICATION_CONFIGURED, REPLICATION_LAG,
)
from flocker.node._replication import (
    MAXIMUM_BACKOFF, ReplicationStore, Replicator, default_replication_path,
)
from flocker.testtools import capture_logging, temporary_directory
from flocker.volume import MemoryNetwork, MemoryVolumeService
from flocker.volume._api import FOLLOWER_SNAPSHOTS

PRIMARY, STANDBY, OTHER = "10.0.0.1", "10.0.0.2", "10.0.0.3"
SECOND = 10 ** 9


def web(standbys=(STANDBY,), interval=2 * SECOND, volume="web"):
    """
    :return: The :class:`Replication` of volume ``volume`` of application
        ``web``.
    """
    return Replication(volume=volume, application="web", standbys=standbys,
                       interval=interval)


class ClusterFixture(object):
    """
    Three in-memory nodes on one network and one clock; the primary owns
    volume ``web`` holding one file.
    """

    def __init__(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.network = MemoryNetwork()
        self.nodes = {
            address: MemoryVolumeService("node-%d" % (index,), address,
                                         self.network, self.clock)
            for index, address in enumerate((PRIMARY, STANDBY, OTHER))}
        self.primary = self.nodes[PRIMARY]
        self.primary.create("web")
        self.primary.write_file("web", "data", b"x" * 1000)

    def replicator(self, store=None):
        """
        :return: A :class:`Replicator` of the primary.
        """
        return Replicator(self.clock, lambda: self.primary, store)

    def snapshots(self, address, volume="web"):
        """
        :return: The snapshot names of ``address``'s copy of ``volume``.
        """
        return [info.snapshots for info in
                self.nodes[address].volumes().result
                if info.name == volume][0]


class ReplicatorTests(SynchronousTestCase):
    """
    ``Replicator`` rounds: when they run, what they send, what they keep.
    """

    def setUp(self):
        self.cluster = ClusterFixture()
        self.clock = self.cluster.clock
        self.replicator = self.cluster.replicator()

    def test_first_round_at_once(self):
        """
        A configured volume is sent to its standby at once, in full: the
        standby then holds a read-only copy following the primary.
        """
        self.successResultOf(self.replicator.configure({"web": web()}))
        self.clock.advance(0)
        standby = self.cluster.nodes[STANDBY]
        self.assertEqual(standby.read_file("web", "data"), b"x" * 1000)
        info = self.successResultOf(standby.volumes())[0]
        self.assertEqual((info.owned, info.owner), (False, "node-0"))
        self.assertEqual(
            self.replicator.status()["web"].standbys[STANDBY].bytes_sent,
            1000)

    def test_every_interval(self):
        """
        A round runs every interval; each sends only what was written since
        the previous one.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        self.cluster.primary.write_file("web", "more", b"y" * 10)
        self.clock.advance(1.9)
        standby = self.cluster.nodes[STANDBY]
        self.assertRaises(KeyError, standby.read_file, "web", "more")
        self.clock.advance(0.1)
        self.assertEqual(standby.read_file("web", "more"), b"y" * 10)
        self.assertEqual(
            self.replicator.status()["web"].standbys[STANDBY].bytes_sent,
            1010)

    def test_each_standby(self):
        """
        Every standby gets its own copy, each one brought up to date.
        """
        self.replicator.configure({"web": web(standbys=[STANDBY, OTHER])})
        self.clock.advance(0)
        self.cluster.primary.write_file("web", "more", b"y")
        self.clock.advance(2)
        for address in (STANDBY, OTHER):
            self.assertEqual(
                self.cluster.nodes[address].read_file("web", "more"), b"y")

    def test_one_snapshot_per_round(self):
        """
        A round takes one snapshot and sends it to every standby: both
        hold the same snapshot after each round, and the primary took one
        snapshot a round.
        """
        taken = []
        original = self.cluster.primary.snapshot

        def snapshot(name):
            return original(name).addCallback(
                lambda name: taken.append(name) or name)
        self.cluster.primary.snapshot = snapshot
        self.replicator.configure({"web": web(standbys=[STANDBY, OTHER])})
        self.clock.advance(0)
        newest = []
        for _ in range(3):
            self.cluster.primary.write_file("web", "more", b"y")
            self.clock.advance(2)
            newest.append((self.cluster.snapshots(STANDBY)[-1],
                           self.cluster.snapshots(OTHER)[-1]))
        self.assertEqual(newest, [(name, name) for name in taken[1:]])

    def test_snapshot_failure(self):
        """
        A round whose snapshot cannot be taken (the volume is gone) fails
        for every standby, each with the reason in its status.
        """
        self.replicator.configure({"gone": web(standbys=[STANDBY, OTHER],
                                               volume="gone")})
        self.clock.advance(0)
        errors = {address: status.error for address, status in
                  self.replicator.status()["gone"].standbys.items()}
        self.assertEqual(sorted(errors), [STANDBY, OTHER])
        self.assertTrue(all(errors.values()), errors)

    def test_pruned_both_sides(self):
        """
        After many rounds the primary keeps only its newest
        ``FOLLOWER_SNAPSHOTS`` and what the standbys' next increments start
        from (each standby's newest, and the base of the increment under
        way), and a standby its newest ``FOLLOWER_SNAPSHOTS``, the same ones
        as the other standby.
        """
        self.replicator.configure({"web": web(standbys=[STANDBY, OTHER])})
        self.clock.advance(0)
        for round_ in range(10):
            self.cluster.primary.write_file("web", "n", b"%d" % (round_,))
            self.clock.advance(2)
        self.assertLessEqual(len(self.cluster.snapshots(PRIMARY)),
                             FOLLOWER_SNAPSHOTS + 1)
        self.assertEqual(len(self.cluster.snapshots(STANDBY)),
                         FOLLOWER_SNAPSHOTS)
        self.assertEqual(self.cluster.snapshots(OTHER),
                         self.cluster.snapshots(STANDBY))
        self.assertIn(self.cluster.snapshots(STANDBY)[-1],
                      self.cluster.snapshots(PRIMARY))

    def test_cut_transfer_restarts_from_common(self):
        """
        A round that fails (the connection dropped) leaves the standby's
        copy as it was and records why; the next attempt (two intervals
        later) sends what changed since the last snapshot both have, and
        clears the error.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        kept = self.cluster.snapshots(STANDBY)
        self.cluster.network.failing.add((STANDBY, "receive"))
        self.cluster.primary.write_file("web", "a", b"a" * 7)
        self.clock.advance(2)
        status = self.replicator.status()["web"].standbys[STANDBY]
        self.assertIn("cannot reach node 10.0.0.2", status.error)
        self.assertEqual(self.cluster.snapshots(STANDBY), kept)
        self.cluster.network.failing.clear()
        self.cluster.primary.write_file("web", "b", b"b" * 5)
        # Tried again two intervals after the failure.
        self.clock.advance(2)
        self.clock.advance(2)
        status = self.replicator.status()["web"].standbys[STANDBY]
        self.assertEqual((status.error, status.bytes_sent), (None, 1012))
        self.assertEqual(
            self.cluster.nodes[STANDBY].read_file("web", "a"), b"a" * 7)

    def test_failing_standby_backs_off(self):
        """
        A standby that keeps failing is tried after 2, 4, 8... intervals,
        while the other standby gets every round; once it answers again
        it is back to every interval.
        """
        self.replicator.configure({"web": web(standbys=[OTHER, STANDBY])})
        self.cluster.network.unreachable.add(OTHER)
        self.clock.advance(0)
        tries = []
        original = self.cluster.primary.push

        def counting(name, target, progress=None, snapshot=None):
            tries.append((self.clock.seconds() - 1000, target))
            return original(name, target, progress, snapshot=snapshot)
        self.cluster.primary.push = counting
        for _ in range(20):
            self.clock.advance(1)
        self.assertEqual([t for t, target in tries if target == OTHER],
                         [4, 12])
        self.assertEqual([t for t, target in tries if target == STANDBY],
                         [2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
        self.cluster.network.unreachable.clear()
        for _ in range(60):
            self.clock.advance(1)
        self.assertIsNone(
            self.replicator.status()["web"].standbys[OTHER].error)
        del tries[:]
        for _ in range(4):
            self.clock.advance(1)
        self.assertEqual(sorted(target for _, target in tries),
                         [STANDBY, STANDBY, OTHER, OTHER])

    def test_not_owner(self):
        """
        A volume this node does not own (handed off, or demoted) sends
        nothing; the standby's status says why.
        """
        self.replicator.configure({"other": web(volume="other")})
        self.clock.advance(0)
        status = self.replicator.status()["other"].standbys[STANDBY]
        self.assertEqual((status.snapshot, status.bytes_sent), (None, 0))
        self.assertIn("does not exist", status.error)

    def test_stale_copy_reported(self):
        """
        When a standby refuses a push because it follows a later epoch (the
        volume failed over meanwhile), the replicator tells ``on_stale``
        the volume's name, and the standby's status says why.
        """
        stale = []
        replicator = Replicator(self.clock, lambda: self.cluster.primary,
                                on_stale=stale.append)
        replicator.configure({"web": web()})
        self.clock.advance(0)
        self.successResultOf(self.cluster.nodes[STANDBY].fence(
            "web", "node-9", 5))
        self.clock.advance(2)
        status = replicator.status()["web"].standbys[STANDBY]
        self.assertEqual(stale, ["web"])
        self.assertIn("epoch 5", status.error)

    def test_confirmation(self):
        """
        A confirmation asked for fires with ``True`` once every standby
        accepted a push ending after it was asked, not before.
        """
        self.replicator.configure({"web": web(standbys=[STANDBY, OTHER])})
        self.clock.advance(0)
        self.cluster.network.unreachable.add(OTHER)
        confirmed = self.replicator.confirmation("web")
        self.clock.advance(2)
        waiting = confirmed.called
        self.cluster.network.unreachable.clear()
        self.clock.advance(MAXIMUM_BACKOFF + 2)
        self.assertEqual((waiting, self.successResultOf(confirmed)),
                         (False, True))

    def test_confirmation_refused(self):
        """
        A standby that follows a later epoch refuses the push: the
        confirmation fires with ``False``.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        confirmed = self.replicator.confirmation("web")
        self.successResultOf(self.cluster.nodes[STANDBY].fence(
            "web", "node-9", 5))
        self.clock.advance(2)
        self.assertIs(self.successResultOf(confirmed), False)

    def test_confirmation_unreplicated_or_changed(self):
        """
        A volume not replicated cannot be confirmed (``False`` at once);
        nor one whose replication a deploy changes or stops while the
        confirmation waits.
        """
        unreplicated = self.replicator.confirmation("web")
        self.replicator.configure({"web": web()})
        changed = self.replicator.confirmation("web")
        self.replicator.configure({"web": web(standbys=[OTHER])})
        stopped = self.replicator.confirmation("web")
        self.replicator.stop()
        self.assertEqual([self.successResultOf(d) for d in
                          (unreplicated, changed, stopped)],
                         [False, False, False])

    def test_lag(self):
        """
        A standby's lag is the time since the snapshot it last confirmed
        was taken; before any, it is ``None``.
        """
        self.cluster.network.unreachable.add(STANDBY)
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        self.assertIsNone(
            self.replicator.status()["web"].standbys[STANDBY].lag)
        self.cluster.network.unreachable.clear()
        # The failed standby is tried again two intervals later.
        self.clock.advance(2)
        self.clock.advance(2)
        self.clock.advance(1.5)
        self.assertEqual(
            self.replicator.status()["web"].standbys[STANDBY].lag, 1.5)

    def test_status(self):
        """
        ``status`` gives each replicated volume's configuration and each
        standby's figures as model values.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        self.clock.advance(0.25)
        snapshot = self.cluster.snapshots(STANDBY)[-1]
        self.assertEqual(self.replicator.status(), pmap({
            "web": ReplicationStatus(replication=web(), standbys={
                STANDBY: StandbyStatus(address=STANDBY, snapshot=snapshot,
                                       lag=0.25, bytes_sent=1000)})}))

    def test_rounds_never_overlap(self):
        """
        A push that takes longer than the interval is followed by the next
        round as soon as it ends, never overlapped by it.
        """
        slow = SlowVolumes(self.cluster.primary)
        replicator = Replicator(self.clock, lambda: slow)
        replicator.configure({"web": web()})
        self.clock.advance(0)
        self.clock.advance(5)
        self.assertEqual(len(slow.waiting), 1)
        slow.release()
        self.assertEqual(len(slow.waiting), 0)
        self.clock.advance(0)
        self.assertEqual(len(slow.waiting), 1)
        self.clock.advance(1)
        slow.release()
        self.clock.advance(0.5)
        self.assertEqual(len(slow.waiting), 0)
        self.clock.advance(0.5)
        self.assertEqual(len(slow.waiting), 1)

    def test_reconfigure(self):
        """
        A changed configuration starts a round of the changed volume at
        once; a volume left out is sent nothing more.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        self.replicator.configure({"web": web(standbys=[OTHER])})
        self.clock.advance(0)
        self.assertEqual(
            self.cluster.nodes[OTHER].read_file("web", "data"), b"x" * 1000)
        self.replicator.configure({})
        self.clock.advance(0)
        self.cluster.primary.write_file("web", "late", b"z")
        self.clock.advance(10)
        self.assertRaises(KeyError, self.cluster.nodes[OTHER].read_file,
                          "web", "late")
        self.assertEqual(self.replicator.status(), pmap())

    def test_unchanged_configuration(self):
        """
        Configuring what runs already changes nothing: no extra round.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        before = self.cluster.snapshots(STANDBY)
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        self.assertEqual(self.cluster.snapshots(STANDBY), before)

    def test_stop(self):
        """
        ``stop`` ends every loop: no round runs after it.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        before = self.cluster.snapshots(STANDBY)
        self.successResultOf(self.replicator.stop())
        self.clock.advance(10)
        self.assertEqual(self.cluster.snapshots(STANDBY), before)

    @capture_logging(None)
    def test_logged(self, logger):
        """
        Each push to a standby is a ``flocker:node:replicate`` action with
        what it sent and the lag it left; each round logs the lag it starts
        from, and each configuration change is logged.
        """
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        assertHasAction(self, logger, REPLICATE_VOLUME, True,
                        {"volume": "web", "standby": STANDBY},
                        {"bytes": 1000, "base": None, "lag": 0.0})
        assertHasMessage(self, logger, REPLICATION_LAG, {
            "volume": "web", "standby": STANDBY, "lag": None})
        assertHasMessage(self, logger, REPLICATION_CONFIGURED, {
            "volumes": 1, "source": "deploy"})

    @capture_logging(None)
    def test_slow_push_logged(self, logger):
        """
        A push that ends after its round started is logged when it ends,
        with what it sent (the action does not end, without those fields,
        as the round goes on waiting for it).
        """
        slow = SlowVolumes(self.cluster.primary)
        replicator = Replicator(self.clock, lambda: slow)
        replicator.configure({"web": web()})
        self.clock.advance(0)
        self.assertEqual(
            [m["action_status"] for m in logger.messages
             if m.get("action_type") == REPLICATE_VOLUME.action_type],
            ["started"])
        slow.release()
        assertHasAction(self, logger, REPLICATE_VOLUME, True,
                        {"volume": "web", "standby": STANDBY},
                        {"bytes": 1000, "base": None})

    @capture_logging(None)
    def test_failure_logged(self, logger):
        """
        A push that fails is a failed ``flocker:node:replicate`` action.
        """
        self.cluster.network.unreachable.add(STANDBY)
        self.replicator.configure({"web": web()})
        self.clock.advance(0)
        action = assertHasAction(self, logger, REPLICATE_VOLUME, False,
                                 {"volume": "web", "standby": STANDBY})
        assertContainsFields(self, action.end_message,
                             {"exception": "flocker.volume._errors."
                              "TargetUnreachable"})


class SlowVolumes(object):
    """
    A volume service whose pushes wait until a test releases them (as a
    large transfer over a slow link would), then run on the wrapped one.
    """

    def __init__(self, volumes):
        self._volumes = volumes
        self.waiting = []

    def snapshot(self, name):
        return self._volumes.snapshot(name)

    def push(self, name, target, progress=None, snapshot=None):
        d = Deferred()
        self.waiting.append((d, name, target, snapshot))
        return d

    def release(self):
        """
        Let the oldest waiting push run.
        """
        d, name, target, snapshot = self.waiting.pop(0)
        self._volumes.push(name, target,
                           snapshot=snapshot).chainDeferred(d)


class ReplicationStoreTests(SynchronousTestCase):
    """
    ``ReplicationStore`` and the replicator's start from it.
    """

    def setUp(self):
        self.directory = temporary_directory(self)
        self.path = os.path.join(self.directory, "state", "r.json")

    def test_missing(self):
        """
        No file: nothing to replicate.
        """
        self.assertEqual(ReplicationStore(self.path).load(), pmap())

    def test_round_trip(self):
        """
        What is saved loads back equal.
        """
        store = ReplicationStore(self.path)
        store.save(pmap({"web": web(), "db": web(volume="db")}))
        self.assertEqual(store.load(), pmap({"web": web(),
                                             "db": web(volume="db")}))

    def test_corrupt(self):
        """
        A file that is not the store's is a ``SerializationError``.
        """
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "w") as f:
            f.write('{"not": "a list"}')
        self.assertRaises(SerializationError,
                          ReplicationStore(self.path).load)

    def test_configure_saves(self):
        """
        A configuration is remembered, and a new replicator started from
        the file runs it, its first round one interval later.
        """
        cluster = ClusterFixture()
        store = ReplicationStore(self.path)
        cluster.replicator(store).configure({"web": web()})
        cluster.clock.advance(0)
        again = ClusterFixture()
        replicator = again.replicator(ReplicationStore(self.path))
        replicator.start()
        self.assertEqual(replicator.replications(), pmap({"web": web()}))
        again.clock.advance(1.9)
        self.assertIsNone(
            replicator.status()["web"].standbys[STANDBY].snapshot)
        again.clock.advance(0.1)
        self.assertIsNotNone(
            replicator.status()["web"].standbys[STANDBY].snapshot)

    def test_default_path(self):
        """
        The file is beside the deploy lock, named after the node.
        """
        self.assertEqual(
            default_replication_path({"FLOCKER_LOCK_DIR": "/x"}, "10.0.0.1"),
            "/x/replication-10.0.0.1.json")
