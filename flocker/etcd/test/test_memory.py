"""
Tests for :class:`flocker.etcd.MemoryEtcd`: the ``IEtcd`` contract with a
deterministic clock, and the faults it plays.
"""

from itertools import count

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from .. import EtcdUnavailable, MemoryEtcd
from ._interface_tests import make_ietcd_tests

_prefixes = count(1)


class _MemoryFixture(object):
    """
    ``make_ietcd_tests``'s fixture for a fresh :class:`MemoryEtcd`.
    """

    def __init__(self, test):
        self.test = test
        self.clock = Clock()
        self.etcd = MemoryEtcd(self.clock)
        self.prefix = b"test/%d/" % (next(_prefixes),)

    def call(self, function, *args):
        result = function(*args)
        return _result(result) if hasattr(result, "addBoth") else result

    def elapse(self, seconds):
        self.clock.advance(seconds)

    def settle(self, predicate):
        # The fake delivers events as the write happens: nothing to wait for.
        return succeed(None) if predicate() else fail(
            AssertionError("the fake did not deliver synchronously"))


def _result(d):
    """
    :return: What an already-fired ``Deferred`` fired with.
    :raises: Its failure's exception; ``AssertionError`` if it has not
        fired.
    """
    results = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError("%r has not fired" % (d,))
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


MemoryEtcdContractTests = make_ietcd_tests(_MemoryFixture)


class MemoryEtcdFaultTests(SynchronousTestCase):
    """
    ``MemoryEtcd.cut``, ``hang`` and ``mend``.
    """

    def setUp(self):
        self.clock = Clock()
        self.etcd = MemoryEtcd(self.clock)

    def test_cut(self):
        """
        After ``cut`` requests fail with ``EtcdUnavailable`` and running
        watches are lost; after ``mend`` requests work again.
        """
        watch = self.successResultOf(
            self.etcd.watch_prefix(b"k/", 1, lambda event: None))
        self.etcd.cut()
        self.failureResultOf(self.etcd.get(b"k/a"), EtcdUnavailable)
        self.failureResultOf(watch.done, EtcdUnavailable)
        self.etcd.mend()
        self.assertIsNone(self.successResultOf(self.etcd.get(b"k/a")))

    def test_hang(self):
        """
        After ``hang`` requests get no answer, leases expire meanwhile,
        and ``mend`` fails the held requests with ``EtcdUnavailable``.
        """
        lease = self.successResultOf(self.etcd.grant(2))
        self.etcd.hang()
        held = self.etcd.keep_alive(lease.id)
        self.assertNoResult(held)
        self.clock.advance(3)
        self.assertEqual([], self.etcd.leases())
        self.etcd.mend()
        self.failureResultOf(held, EtcdUnavailable)

    def test_minimum_ttl(self):
        """
        A lease asked for 1 s is granted the minimum, as etcd does.
        """
        self.assertEqual(2, self.successResultOf(self.etcd.grant(1)).ttl)
