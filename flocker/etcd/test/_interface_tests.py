"""
The tests every ``IEtcd`` must pass, as a factory run against the in-memory
fake (``test_memory.py``) and against a real etcd member started on
127.0.0.1 (``test_client.py``), so the fake cannot drift from etcd.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from .. import (
    Compare, Delete, Event, IEtcd, IWatch, KeyValue, LeaseExpired, Put,
)

__all__ = ["make_ietcd_tests"]


def make_ietcd_tests(make_fixture):
    """
    :param make_fixture: Called with the ``TestCase`` in ``setUp``; returns
        an object with

        * ``etcd``: an ``IEtcd`` provider,
        * ``prefix``: ``bytes`` under which no key exists yet (each test
          has its own),
        * ``call(function, *args)``: call ``function(*args)`` where its
          ``Deferred`` can fire and return the result (or raise the
          failure),
        * ``elapse(seconds)``: let at least ``seconds`` pass on the store's
          clock.

        It registers its own cleanups with ``addCleanup``.
    :return: A ``TestCase`` subclass.
    """

    class IEtcdTests(SynchronousTestCase):
        """
        Tests for an ``IEtcd`` implementation.
        """

        def setUp(self):
            self.fixture = make_fixture(self)
            self.etcd = self.fixture.etcd
            self.prefix = self.fixture.prefix

        def call(self, name, *args):
            return self.fixture.call(getattr(self.etcd, name), *args)

        def key(self, name):
            return self.prefix + name

        def watched(self, start_revision):
            """
            Watch the test's prefix; return the list events land in and
            the watch.
            """
            events = []
            watch = self.call("watch_prefix", self.prefix, start_revision,
                              events.append)
            self.addCleanup(self.fixture.call, lambda: watch.stop())
            return events, watch

        def test_interface(self):
            """
            The client provides ``IEtcd``.
            """
            self.assertTrue(verifyObject(IEtcd, self.etcd))

        def test_absent(self):
            """
            ``get`` of a key never written gives ``None``.
            """
            self.assertIsNone(self.call("get", self.key(b"nothing")))

        def test_put_get(self):
            """
            A put key reads back with its value, version 1, the revision
            the put returned and no lease.
            """
            revision = self.call("put", self.key(b"a"), b"\x00value\xff")
            self.assertEqual(
                KeyValue(key=self.key(b"a"), value=b"\x00value\xff",
                         version=1, mod_revision=revision, lease=0),
                self.call("get", self.key(b"a")))

        def test_put_again(self):
            """
            A second put raises the version and the revision.
            """
            first = self.call("put", self.key(b"a"), b"1")
            second = self.call("put", self.key(b"a"), b"2")
            kv = self.call("get", self.key(b"a"))
            self.assertEqual((b"2", 2, second), (kv.value, kv.version,
                                                 kv.mod_revision))
            self.assertGreater(second, first)

        def test_get_prefix(self):
            """
            ``get_prefix`` gives every key under the prefix in key order,
            none outside it, and the revision of the last write.
            """
            self.call("put", self.key(b"b"), b"2")
            self.call("put", self.key(b"a"), b"1")
            last = self.call("put", self.key(b"a/x"), b"3")
            self.call("put", self.prefix[:-1] + b"~", b"outside")
            self.addCleanup(self.call, "transaction", [],
                            [Delete(key=self.prefix[:-1] + b"~")])
            revision, kvs = self.call("get_prefix", self.prefix)
            self.assertEqual(
                ([self.key(b"a"), self.key(b"a/x"), self.key(b"b")],
                 [b"1", b"3", b"2"]),
                ([kv.key for kv in kvs], [kv.value for kv in kvs]))
            self.assertGreaterEqual(revision, last)

        def test_grant(self):
            """
            A lease is granted with at least the time to live asked.
            """
            lease = self.call("grant", 5)
            self.addCleanup(self.call, "revoke", lease.id)
            self.assertGreaterEqual(lease.ttl, 5)
            self.assertGreater(lease.id, 0)

        def test_keep_alive(self):
            """
            Keeping a live lease alive gives its full time to live.
            """
            lease = self.call("grant", 5)
            self.addCleanup(self.call, "revoke", lease.id)
            self.assertEqual(lease.ttl, self.call("keep_alive", lease.id))

        def test_put_with_lease(self):
            """
            A key put with a lease carries the lease's identifier.
            """
            lease = self.call("grant", 5)
            self.addCleanup(self.call, "revoke", lease.id)
            self.call("put", self.key(b"a"), b"1", lease.id)
            self.assertEqual(lease.id, self.call("get", self.key(b"a")).lease)

        def test_revoke(self):
            """
            Revoking a lease deletes its keys; keeping it alive afterwards
            fails with ``LeaseExpired``; revoking it again succeeds.
            """
            lease = self.call("grant", 5)
            self.call("put", self.key(b"a"), b"1", lease.id)
            self.assertIsNone(self.call("revoke", lease.id))
            self.assertIsNone(self.call("get", self.key(b"a")))
            with self.assertRaises(LeaseExpired) as caught:
                self.call("keep_alive", lease.id)
            self.assertEqual(lease.id, caught.exception.lease)
            self.assertIsNone(self.call("revoke", lease.id))

        def test_put_revoked_lease(self):
            """
            A put naming a lease that is gone fails with ``LeaseExpired`` and
            writes nothing.
            """
            lease = self.call("grant", 5)
            self.call("revoke", lease.id)
            with self.assertRaises(LeaseExpired):
                self.call("put", self.key(b"a"), b"1", lease.id)
            self.assertIsNone(self.call("get", self.key(b"a")))

        def test_expiry(self):
            """
            A lease not kept alive expires: its keys are deleted (a watch
            sees the deletion) and keeping it alive fails.
            """
            lease = self.call("grant", 2)
            start = self.call("put", self.key(b"a"), b"1", lease.id)
            events, _ = self.watched(start + 1)
            self.fixture.elapse(lease.ttl + 2)
            with self.assertRaises(LeaseExpired):
                self.call("keep_alive", lease.id)
            self.fixture.call(self.fixture.settle, lambda: events)
            self.assertEqual(
                [("delete", self.key(b"a"))],
                [(event.type, event.kv.key) for event in events])

        def test_transaction_absent(self):
            """
            A transaction comparing the version with 0 wins when the key is
            absent and applies the success operations only.
            """
            result = self.call("transaction", [
                Compare(key=self.key(b"e"), target="version", value=0)],
                [Put(key=self.key(b"e"), value=b"1")],
                [Put(key=self.key(b"lost"), value=b"x")])
            self.assertTrue(result.succeeded)
            self.assertEqual(result.revision,
                             self.call("get", self.key(b"e")).mod_revision)
            self.assertIsNone(self.call("get", self.key(b"lost")))

        def test_transaction_lost(self):
            """
            A transaction whose comparison fails applies the failure
            operations only and says it did not succeed.
            """
            self.call("put", self.key(b"e"), b"1")
            result = self.call("transaction", [
                Compare(key=self.key(b"e"), target="value", value=b"0")],
                [Put(key=self.key(b"e"), value=b"2")],
                [Put(key=self.key(b"lost"), value=b"x")])
            self.assertFalse(result.succeeded)
            self.assertEqual(b"1", self.call("get", self.key(b"e")).value)
            self.assertEqual(b"x", self.call("get", self.key(b"lost")).value)

        def test_compare_and_swap(self):
            """
            Of two transactions swapping the same old value, only the first
            wins; both its puts (one with a lease) and its delete apply.
            """
            self.call("put", self.key(b"epoch"), b"3")
            self.call("put", self.key(b"old"), b"x")
            lease = self.call("grant", 5)
            self.addCleanup(self.call, "revoke", lease.id)
            swap = [Compare(key=self.key(b"epoch"), target="value",
                            value=b"3")]
            first = self.call("transaction", swap, [
                Put(key=self.key(b"epoch"), value=b"4"),
                Put(key=self.key(b"owner"), value=b"n1", lease=lease.id),
                Delete(key=self.key(b"old"))])
            second = self.call("transaction", swap, [
                Put(key=self.key(b"epoch"), value=b"4"),
                Put(key=self.key(b"owner"), value=b"n2")])
            self.assertEqual((True, False),
                             (first.succeeded, second.succeeded))
            self.assertEqual(
                (b"4", b"n1", lease.id, None),
                (self.call("get", self.key(b"epoch")).value,
                 self.call("get", self.key(b"owner")).value,
                 self.call("get", self.key(b"owner")).lease,
                 self.call("get", self.key(b"old"))))

        def test_watch(self):
            """
            A watch delivers puts and deletes under its prefix, in order,
            and nothing outside it; after ``stop`` nothing more, and its
            ``done`` fires with ``None``.
            """
            revision, _ = self.call("get_prefix", self.prefix)
            events, watch = self.watched(revision + 1)
            self.assertTrue(verifyObject(IWatch, watch))
            self.call("put", self.key(b"a"), b"1")
            self.call("put", self.prefix[:-1] + b"~", b"outside")
            self.addCleanup(self.call, "transaction", [],
                            [Delete(key=self.prefix[:-1] + b"~")])
            last = self.call("transaction", [], [Delete(key=self.key(b"a"))])
            self.fixture.call(self.fixture.settle,
                              lambda: len(events) >= 2)
            self.assertEqual(
                [("put", self.key(b"a"), b"1"), ("delete", self.key(b"a"),
                                                 b"")],
                [(e.type, e.kv.key, e.kv.value) for e in events])
            self.assertEqual(last.revision, events[-1].kv.mod_revision)
            self.fixture.call(lambda: watch.stop())
            self.assertIsNone(self.fixture.call(lambda: watch.done))
            self.call("put", self.key(b"b"), b"2")
            self.assertEqual(2, len(events))

        def test_watch_history(self):
            """
            A watch from an earlier revision first delivers what changed
            since then.
            """
            first = self.call("put", self.key(b"a"), b"1")
            self.call("put", self.key(b"a"), b"2")
            events, _ = self.watched(first)
            self.fixture.call(self.fixture.settle,
                              lambda: len(events) >= 2)
            self.assertEqual(
                [Event(type="put", kv=KeyValue(
                    key=self.key(b"a"), value=b"1", version=1,
                    mod_revision=first)), b"2"],
                [events[0], events[1].kv.value])

    return IEtcdTests
