"""
Tests for :class:`flocker.etcd.LeaseKeeper`: renewal, self-fencing before
the lease can have expired, and release, on a deterministic clock against
the in-memory etcd.
"""

from eliot.testing import assertHasAction
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ...testtools import capture_logging
from .. import (
    DEFAULT_TIMING, LeaseExpired, LeaseKeeper, LeaseTiming, MemoryEtcd,
)
from .._logging import LEASE_FENCE

TIMING = LeaseTiming(ttl=6, renew_every=1.2, clock_drift=0.1,
                     stop_allowance=2.0)


class _SlowEtcd(object):
    """
    A ``MemoryEtcd`` whose keep-alives are answered only when the test
    says (each held ``Deferred`` fires with what etcd answered when asked).
    """

    def __init__(self, etcd):
        self._etcd = etcd
        self.held = []

    def __getattr__(self, name):
        return getattr(self._etcd, name)

    def keep_alive(self, lease):
        answer = []
        self._etcd.keep_alive(lease).addBoth(answer.append)
        d = Deferred()
        self.held.append((d, answer[0]))
        return d

    def answer_all(self):
        held, self.held = self.held, []
        for d, answer in held:
            d.callback(answer)


class LeaseTimingTests(SynchronousTestCase):
    """
    ``LeaseTiming`` checks its times at construction.
    """

    def test_safe_for(self):
        """
        A renewal is good for the TTL shortened by the drift, less the
        time stopping takes.
        """
        self.assertAlmostEqual(3.4, TIMING.safe_for)

    def test_default_fits(self):
        """
        The default timing fences well before the lease's TTL.
        """
        timing = DEFAULT_TIMING
        self.assertLess(timing.safe_for + timing.stop_allowance, timing.ttl)

    def test_refused(self):
        """
        A fractional TTL, a drift outside [0, 1), and renewals too rare for
        two tries before the fence are refused.
        """
        for kwargs in [dict(ttl=5.5, renew_every=1),
                       dict(ttl=6, renew_every=1, clock_drift=1.0),
                       dict(ttl=6, renew_every=2)]:
            self.assertRaises(ValueError, LeaseTiming, **kwargs)


class _Keeping(object):
    """
    Mixin: a keeper of ``app/web`` on an in-memory etcd, recording its
    fences.
    """

    def setUp(self):
        self.clock = Clock()
        self.etcd = MemoryEtcd(self.clock)
        self.fences = []
        self.keeper = LeaseKeeper(self.clock, self.etcd, b"app/web",
                                  self.fences.append, TIMING)


class LeaseKeeperTests(_Keeping, SynchronousTestCase):
    """
    ``LeaseKeeper`` keeps its lease alive, or fences itself in time.
    """

    def start(self):
        lease = self.successResultOf(self.keeper.start())
        self.successResultOf(self.etcd.put(b"app/web", b"me", lease.id))
        return lease

    def assertWithinStep(self, expected, actual):
        """
        ``actual`` is ``expected`` give or take one step of ``advance``.
        """
        self.assertLessEqual(abs(expected - actual), 0.1 + 1e-6,
                             (expected, actual))

    def advance(self, seconds, step=0.1):
        """
        Let ``seconds`` pass in steps (each step's calls see its end time,
        so times observed are exact to one step).
        """
        for _ in range(int(round(seconds / step))):
            self.clock.advance(step)

    def test_keeps_alive(self):
        """
        While etcd answers, the lease and its key live on far beyond the
        TTL and nothing is fenced.
        """
        lease = self.start()
        self.advance(60)
        self.assertEqual(([], [lease.id], True),
                         (self.fences, self.etcd.leases(), self.keeper.active))
        self.assertIsNotNone(self.successResultOf(self.etcd.get(b"app/web")))

    def test_fences_before_expiry_when_cut(self):
        """
        When etcd stops answering, the keeper fences at ``safe_for`` after
        the last answered keep-alive was sent, while the lease is still
        alive in etcd.
        """
        sent = []
        keep_alive = self.etcd.keep_alive
        self.etcd.keep_alive = lambda lease: (
            sent.append(self.clock.seconds()) or keep_alive(lease))
        lease = self.start()
        self.advance(4)
        last_sent = sent[-1]
        self.etcd.hang()
        self.advance(last_sent + TIMING.safe_for - 0.1 - self.clock.seconds())
        self.assertEqual([], self.fences)
        self.advance(0.2)
        self.assertEqual(1, len(self.fences))
        self.assertWithinStep(last_sent + TIMING.safe_for,
                              self.keeper.fenced_at)
        self.assertIn(lease.id, self.etcd.leases())
        self.assertFalse(self.keeper.active)

    def test_unreachable_fences(self):
        """
        Failing keep-alives (etcd unreachable) are retried, and fence once
        none was answered for ``safe_for``.
        """
        self.start()
        self.etcd.cut()
        self.advance(TIMING.safe_for + 0.1)
        self.assertEqual(1, len(self.fences))
        self.assertWithinStep(TIMING.safe_for, self.keeper.fenced_at)

    def test_recovers_before_fence(self):
        """
        A keep-alive answered before the fence time moves the fence: a short
        outage fences nothing.
        """
        self.start()
        self.etcd.cut()
        self.advance(2.0)
        self.etcd.mend()
        self.advance(30)
        self.assertEqual([], self.fences)

    def test_lease_gone(self):
        """
        When etcd answers that the lease is gone, the keeper fences at
        once.
        """
        lease = self.start()
        self.successResultOf(self.etcd.revoke(lease.id))
        self.advance(TIMING.renew_every)
        self.assertEqual(["etcd says the lease is gone"], self.fences)

    def test_late_answer_counts_from_sending(self):
        """
        A keep-alive answered late is counted from when it was sent, not
        from when its answer arrived.
        """
        slow = _SlowEtcd(self.etcd)
        keeper = LeaseKeeper(self.clock, slow, b"app/web",
                             self.fences.append, TIMING)
        self.successResultOf(keeper.start())
        self.advance(TIMING.renew_every)
        sent = self.clock.seconds()
        self.advance(1.0)
        slow.answer_all()
        # The one answered moved the fence to ``sent + safe_for``; the
        # renewals sent since are never answered.
        self.advance(sent + TIMING.safe_for - 0.1 - self.clock.seconds())
        self.assertEqual([], self.fences)
        self.advance(0.2)
        self.assertEqual(1, len(self.fences))
        self.assertWithinStep(sent + TIMING.safe_for, keeper.fenced_at)

    def test_fence_once(self):
        """
        The fence callback runs once, however long the outage lasts.
        """
        self.start()
        self.etcd.hang()
        self.advance(60)
        self.assertEqual(1, len(self.fences))

    def test_release(self):
        """
        ``release`` revokes the lease (deleting its key) and nothing is
        fenced afterwards.
        """
        self.start()
        self.advance(2)
        self.assertIsNone(self.successResultOf(self.keeper.release()))
        self.etcd.cut()
        self.advance(30)
        self.assertEqual(([], []), (self.fences, self.etcd.leases()))

    def test_release_while_granting(self):
        """
        A keeper released before its grant was answered revokes the lease
        when it arrives, and never fences.
        """
        self.etcd.hang()
        d = self.keeper.start()
        self.successResultOf(self.keeper.release())
        self.etcd.mend()
        self.failureResultOf(d)
        self.advance(30)
        self.assertEqual([], self.fences)

    @capture_logging(None, encoder_=None)
    def test_fence_logged(self, logger):
        """
        A fence is an eliot action naming the key, lease and reason.
        """
        lease = self.start()
        self.etcd.hang()
        self.advance(TIMING.safe_for + 0.1)
        assertHasAction(self, logger, LEASE_FENCE, True, {
            "key": "app/web", "lease": lease.id,
            "reason": self.fences[0]})

    def test_fence_result(self):
        """
        The fence callback's result is returned to the timer (a
        ``Deferred`` returned by a stop is not lost).
        """
        results = []
        keeper = LeaseKeeper(self.clock, self.etcd, b"app/web",
                             lambda reason: results.append(reason) or
                             succeed("stopped"), TIMING)
        self.successResultOf(keeper.start())
        self.etcd.cut()
        self.advance(TIMING.safe_for + 0.1)
        self.assertEqual(1, len(results))


class LeaseAdoptTests(_Keeping, SynchronousTestCase):
    """
    ``LeaseKeeper.adopt`` holds a lease granted earlier (by an agent that
    restarted since).
    """

    def test_keeps_alive(self):
        """
        An adopted lease lives on far beyond its TTL with its key.
        """
        lease = self.successResultOf(self.etcd.grant(TIMING.ttl))
        self.successResultOf(self.etcd.put(b"app/web", b"me", lease.id))
        self.clock.advance(TIMING.ttl - 1)
        adopted = self.successResultOf(self.keeper.adopt(lease.id))
        self.clock.pump([0.5] * 120)
        self.assertEqual(
            ((lease.id, TIMING.ttl), [], [lease.id], True),
            ((adopted.id, adopted.ttl), self.fences, self.etcd.leases(),
             self.keeper.active))
        self.assertIsNotNone(self.successResultOf(self.etcd.get(b"app/web")))

    def test_fences_when_cut(self):
        """
        Cut off after adopting, the keeper fences ``safe_for`` after its
        last answered keep-alive was sent, like a granted one.
        """
        lease = self.successResultOf(self.etcd.grant(TIMING.ttl))
        self.successResultOf(self.keeper.adopt(lease.id))
        adopted_at = self.clock.seconds()
        self.etcd.cut()
        self.clock.pump([0.1] * 100)
        self.assertEqual(1, len(self.fences))
        self.assertLessEqual(self.keeper.fenced_at,
                             adopted_at + TIMING.safe_for + 0.1)

    def test_ended(self):
        """
        A lease etcd ended already cannot be adopted: ``LeaseExpired``, and
        the keeper holds nothing.
        """
        lease = self.successResultOf(self.etcd.grant(TIMING.ttl))
        self.clock.advance(TIMING.ttl + 1)
        self.failureResultOf(self.keeper.adopt(lease.id), LeaseExpired)
        self.assertEqual((False, []), (self.keeper.active, self.fences))

    def test_shorter_lease_refused(self):
        """
        A lease shorter than the keeper's timing counts on is refused
        (``ValueError``): fencing by this timing would be late.
        """
        lease = self.successResultOf(self.etcd.grant(TIMING.ttl - 2))
        self.failureResultOf(self.keeper.adopt(lease.id), ValueError)
        self.assertFalse(self.keeper.active)
