"""
Tests for :mod:`flocker.volume._prune`: the pruning a push, a receive or an
acquire queues instead of waiting for, with a pool whose commands the test
answers.
"""

from eliot import start_action
from eliot.testing import LoggedAction
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from flocker.volume._api import FOLLOWER_SNAPSHOTS
from flocker.volume._capabilities import ZFS_FUSE, ZFSCapabilities
from flocker.volume._errors import DatasetBusy
from flocker.volume._logging import PRUNE_SKIPPED, PRUNE_SNAPSHOTS
from flocker.volume._prune import PRUNE_BUSY_DELAYS
from flocker.volume._push import _encode_peers, _Peer
from flocker.volume._service import VolumeService
from flocker.volume._zfs import OWNER, PUSHED, Dataset
from flocker.testtools import capture_logging

NODE = "a" * 32
SENDER = "b" * 32


def _names(count):
    """
    :return: ``count`` of Flocker's snapshot names, oldest first.
    """
    return ["flocker-20261206T2100%02d.000000Z" % (index,)
            for index in range(count)]


class _StepPool(object):
    """
    The parts of a ``ZFSPool`` pruning and a receive's last steps use.
    Listing answers at once with the copy as the test set it; each
    ``zfs destroy`` of a snapshot waits for the test to answer it.

    :ivar dataset: The volume's copy (a ``Dataset``), or ``None``.
    :ivar destroys: ``(snapshot, delays, Deferred)`` of each destroy, in
        issue order.
    :ivar gets: How many times the copy was listed.
    """

    name = "tank"

    def __init__(self, dataset):
        self.dataset = dataset
        self.destroys = []
        self.gets = 0

    def get(self, name):
        self.gets += 1
        return succeed(self.dataset)

    def destroy_snapshot(self, volume, snapshot, delays=None):
        d = Deferred()
        self.destroys.append((snapshot, delays, d))
        return d

    def answer(self, failure=None):
        """
        Answer the oldest destroy not answered yet: remove its snapshot
        from the copy, or fail with ``failure``.
        """
        snapshot, _, d = next(item for item in self.destroys
                              if not item[2].called)
        if failure is None:
            self.dataset = Dataset(
                name=self.dataset.name, properties=self.dataset.properties,
                snapshots=[name for name in self.dataset.snapshots
                           if name != snapshot])
            d.callback(None)
        else:
            d.errback(failure)

    def issued(self):
        """
        :return: The snapshots whose destroy was issued, in order.
        """
        return [snapshot for snapshot, _, _ in self.destroys]

    # What _apply's last steps use (an incremental onto a prepared
    # follower).

    def capabilities(self):
        return succeed(ZFSCapabilities(implementation=ZFS_FUSE))

    def available(self):
        return succeed(10 ** 9)

    def receive(self, volume, stdin, snapshot, base, **kwargs):
        self.dataset = Dataset(
            name=self.dataset.name, properties=self.dataset.properties,
            snapshots=list(self.dataset.snapshots) + [snapshot])
        return succeed(None)


def _follower(snapshots):
    return Dataset(name="app", properties={
        OWNER: SENDER, "atime": "off", "mounted": "no", "refquota": "0"},
        snapshots=snapshots)


class QueuedPruneTests(SynchronousTestCase):
    """
    ``VolumeService._prune_later``: what a push, receive or acquire found
    unneeded is destroyed after that operation, under the volume's lock,
    checked again against the copy as it then is.
    """

    def service(self, dataset):
        self.pool = _StepPool(dataset)
        clock = Clock()
        return VolumeService(clock, self.pool, NODE, None, clock=clock)

    def test_after_the_operation(self):
        """
        Queued while an operation holds the volume's lock, the prune
        destroys nothing before that operation is over, then destroys
        each candidate in turn; ``settled`` fires only when it is done.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 2)
        service = self.service(_follower(names))
        holding = Deferred()
        operation = service._locked("app", lambda: holding)
        service._prune_later("app", names[:2])
        settled = service.settled()
        before = (self.pool.gets, self.pool.issued())
        holding.callback("done")
        self.assertEqual(self.successResultOf(operation), "done")
        self.pool.answer()
        self.assertNoResult(settled)
        self.pool.answer()
        self.successResultOf(settled)
        self.assertEqual((before, self.pool.issued(), self.pool.gets),
                         ((0, []), names[:2], 1))

    def test_receive_answers_first(self):
        """
        A receive's result (the end of its answer to the sender and of
        its last steps after the answer) comes while the snapshot it made
        unneeded, the follower's oldest beyond ``FOLLOWER_SNAPSHOTS``, is
        still being destroyed.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 1)
        existing = _follower(names[:-1])
        service = self.service(existing)

        def receive():
            applied = service._apply(
                existing, "app",
                {"snapshot": names[-1], "base": names[-2], "owner": SENDER,
                 "maximum_size": None}, 0)
            return applied.addCallback(
                lambda copy: service._settle(copy, existing).addCallback(
                    lambda _: copy.snapshots[-1]))
        received = service._locked("app", receive)
        self.assertEqual(self.successResultOf(received), names[-1])
        settled = service.settled()
        self.assertEqual(self.pool.issued(), names[:1])
        self.assertNoResult(settled)
        self.pool.answer()
        self.successResultOf(settled)

    def test_checked_again(self):
        """
        A candidate the copy needs by the time the prune runs is kept: the
        last snapshot a target confirmed (on the owner), and any of its
        newest ``FOLLOWER_SNAPSHOTS``.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 3)
        owned = Dataset(name="app", properties={
            OWNER: NODE, PUSHED: _encode_peers({"10.0.0.2": _Peer(
                address="10.0.0.2", node_id=SENDER, pool="tank",
                snapshot=names[1])})}, snapshots=names)
        service = self.service(owned)
        service._prune_later("app", names[:3] + names[-1:])
        self.assertEqual(self.pool.issued(), [names[0]])
        self.pool.answer()
        self.assertEqual(self.pool.issued(), [names[0], names[2]])
        self.pool.answer()
        self.successResultOf(service.settled())

    def test_gone_copy(self):
        """
        A copy deleted before the prune ran leaves nothing to destroy.
        """
        service = self.service(None)
        service._prune_later("app", _names(2))
        self.successResultOf(service.settled())
        self.assertEqual((self.pool.gets, self.pool.issued()), (1, []))

    def test_yields_to_waiting_operation(self):
        """
        An operation that starts waiting for the volume while the prune
        destroys a snapshot runs next; the rest is destroyed after it.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 2)
        service = self.service(_follower(names))
        service._prune_later("app", names[:2])
        ran = []
        waiting = service._locked(
            "app", lambda: ran.append(list(self.pool.issued())))
        self.pool.answer()
        self.successResultOf(waiting)
        self.assertEqual(ran, [names[:1]])
        self.assertEqual(self.pool.issued(), names[:2])
        self.pool.answer()
        self.successResultOf(service.settled())

    def test_waiting_operation_first(self):
        """
        A prune whose turn comes while another operation already waits
        lets it go first without listing anything.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 1)
        service = self.service(_follower(names))
        holding = Deferred()
        service._locked("app", lambda: holding)
        service._prune_later("app", names[:1])
        listed = []
        waiting = service._locked("app", lambda: listed.append(
            self.pool.gets))
        holding.callback(None)
        self.successResultOf(waiting)
        self.assertEqual(listed, [0])
        self.pool.answer()
        self.successResultOf(service.settled())

    def test_queued_once(self):
        """
        Candidates queued again before the prune ran join the one queued:
        one listing, each destroyed once.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 2)
        service = self.service(_follower(names))
        holding = Deferred()
        service._locked("app", lambda: holding)
        service._prune_later("app", names[:1])
        service._prune_later("app", names[:2])
        holding.callback(None)
        self.pool.answer()
        self.pool.answer()
        self.successResultOf(service.settled())
        self.assertEqual((self.pool.gets, self.pool.issued()),
                         (1, names[:2]))

    @capture_logging(None)
    def test_busy_skipped(self, logger):
        """
        A snapshot ZFS still calls busy after the prune's short retries (a
        hold on it) is skipped and logged; the others are destroyed and
        the prune succeeds.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 2)
        service = self.service(_follower(names))
        service._prune_later("app", names[:2])
        self.pool.answer(DatasetBusy("dataset is busy"))
        self.pool.answer()
        self.successResultOf(service.settled())
        skipped = [message["snapshot"] for message in logger.messages
                   if message.get("message_type")
                   == PRUNE_SKIPPED.message_type]
        self.assertEqual(
            (skipped, [delays for _, delays, _ in self.pool.destroys]),
            ([names[0]], [PRUNE_BUSY_DELAYS, PRUNE_BUSY_DELAYS]))

    def test_failure_not_raised(self):
        """
        A prune that fails otherwise (the pool gone) is logged by its
        action and raised to no one: ``settled`` still fires.
        """
        service = self.service(None)
        self.pool.get = lambda name: fail(OSError("gone"))
        service._prune_later("app", _names(1))
        self.assertIsNone(self.successResultOf(service.settled()))

    @capture_logging(None)
    def test_logged_in_queuing_task(self, logger):
        """
        A prune queued inside an action (a deploy's push) is logged in
        that action's task, after the action ended; one queued outside any
        action is a task of its own.
        """
        names = _names(FOLLOWER_SNAPSHOTS + 2)
        service = self.service(_follower(names))
        holding = Deferred()
        with start_action(action_type="test:push") as push:
            service._locked("app", lambda: holding)
            service._prune_later("app", names[:1])
        holding.callback(None)
        self.pool.answer()
        self.successResultOf(service.settled())
        service._prune_later("app", names[1:2])
        self.pool.answer()
        self.successResultOf(service.settled())
        pruned = LoggedAction.of_type(logger.messages, PRUNE_SNAPSHOTS)
        [operation] = LoggedAction.of_type(logger.messages, "test:push")
        self.assertEqual(
            [(action.start_message["task_uuid"] == push.task_uuid,
              action.end_message["destroyed"]) for action in pruned],
            [(True, [names[0]]), (False, [names[1]])])
        self.assertLess(logger.messages.index(operation.end_message),
                        logger.messages.index(pruned[0].start_message))
