"""
An in-memory etcd for tests: :class:`MemoryEtcd` keeps the keys, leases and
history of one store and answers as etcd does, with time from an
``IReactorTime`` (a ``Clock`` in tests), so lease expiry is deterministic.

It also plays the faults a real cluster has: :meth:`MemoryEtcd.cut` makes
every request fail as an unreachable cluster does, and
:meth:`MemoryEtcd.hang` makes requests wait without an answer, as they do on
a member cut from its majority.
"""

from twisted.internet.defer import Deferred, fail, succeed
from pyrsistent import pvector
from zope.interface import implementer

from ._interface import (
    Delete, EtcdUnavailable, Event, IEtcd, IWatch, KeyValue, Lease,
    LeaseExpired, Put, TransactionResult, _comparisons, _operations,
    prefix_end,
)

__all__ = ["MemoryEtcd"]

#: The shortest lease etcd grants with its default timing (1.5 times the
#: election timeout of 1 s, rounded up).
MINIMUM_TTL = 2


@implementer(IWatch)
class _MemoryWatch(object):
    def __init__(self, store, start, end, on_event):
        self._store = store
        self.start = start
        self.end = end
        self.on_event = on_event
        self.done = Deferred()

    def stop(self):
        if self in self._store._watches:
            self._store._watches.remove(self)
            self.done.callback(None)

    def lose(self, reason):
        self._store._watches.remove(self)
        self.done.errback(reason)


@implementer(IEtcd)
class MemoryEtcd(object):
    """
    One etcd store in memory.

    :ivar int revision: The store's current revision.
    """

    def __init__(self, clock, minimum_ttl=MINIMUM_TTL):
        """
        :param clock: ``IReactorTime`` provider: when leases expire.
        :param int minimum_ttl: The least time to live granted.
        """
        self._clock = clock
        self._minimum_ttl = minimum_ttl
        self.revision = 1
        self._keys = {}
        self._leases = {}
        self._next_lease = 0x1e5e0001
        self._history = []
        self._watches = []
        self._ttls = {}
        self._cut = False
        self._hanging = False
        self._hung = []

    # Faults -------------------------------------------------------------

    def cut(self):
        """
        From now on every request fails with :class:`EtcdUnavailable`, and
        every watch is lost (as when no member can be reached).
        """
        self._cut = True
        for watch in list(self._watches):
            watch.lose(EtcdUnavailable("connection lost"))

    def hang(self):
        """
        From now on requests get no answer until :meth:`mend` (as on a
        member without a majority).  Leases keep expiring meanwhile.
        """
        self._hanging = True

    def mend(self):
        """
        End :meth:`cut` and :meth:`hang`; requests held by :meth:`hang` now
        fail with :class:`EtcdUnavailable` (their time ran out).
        """
        self._cut = False
        self._hanging = False
        held, self._hung = self._hung, []
        for d in held:
            d.errback(EtcdUnavailable("no answer"))

    def _answer(self, operation, *args):
        self._expire()
        if self._cut:
            return fail(EtcdUnavailable("connection refused"))
        if self._hanging:
            d = Deferred()
            self._hung.append(d)
            return d
        try:
            return succeed(operation(*args))
        except Exception as e:
            return fail(e)

    # Leases ---------------------------------------------------------------

    def leases(self):
        """
        :return: The identifiers of the leases alive now (for tests).
        """
        self._expire()
        return sorted(self._leases)

    def _expire(self):
        now = self._clock.seconds()
        for lease, deadline in sorted(self._leases.items()):
            if deadline <= now:
                self._end_lease(lease)

    def _end_lease(self, lease):
        del self._leases[lease]
        attached = [key for key, kv in sorted(self._keys.items())
                    if kv.lease == lease]
        if attached:
            self._write([Delete(key=key) for key in attached])

    def _renew(self, lease, ttl):
        self._leases[lease] = self._clock.seconds() + ttl
        self._clock.callLater(ttl, self._expire)

    def grant(self, ttl):
        def grant():
            if ttl < 1:
                raise ValueError("a lease lives at least 1 s, not %r" % (
                    ttl,))
            granted = max(ttl, self._minimum_ttl)
            lease = self._next_lease
            self._next_lease += 1
            self._ttls[lease] = granted
            self._renew(lease, granted)
            return Lease(id=lease, ttl=granted)
        return self._answer(grant)

    def keep_alive(self, lease):
        def keep_alive():
            if lease not in self._leases:
                raise LeaseExpired(lease)
            self._renew(lease, self._ttls[lease])
            return self._ttls[lease]
        return self._answer(keep_alive)

    def revoke(self, lease):
        def revoke():
            if lease in self._leases:
                self._end_lease(lease)
        return self._answer(revoke)

    # Keys -----------------------------------------------------------------

    def get(self, key):
        return self._answer(self._keys.get, key)

    def get_prefix(self, prefix):
        def get_prefix():
            end = prefix_end(prefix)
            return self.revision, pvector(
                kv for key, kv in sorted(self._keys.items())
                if prefix <= key < end)
        return self._answer(get_prefix)

    def put(self, key, value, lease=0):
        def put():
            return self._write([Put(key=key, value=value, lease=lease)])
        return self._answer(put)

    def transaction(self, compare, success, failure=()):
        compare = _comparisons(compare)
        success = _operations(success)
        failure = _operations(failure)

        def transaction():
            held = all(self._holds(c) for c in compare)
            revision = self._write(success if held else failure)
            return TransactionResult(succeeded=held, revision=revision)
        return self._answer(transaction)

    def _holds(self, comparison):
        kv = self._keys.get(comparison.key)
        if comparison.target == "version":
            return (kv.version if kv else 0) == comparison.value
        return kv is not None and kv.value == comparison.value

    def _write(self, operations):
        """
        Apply operations as one revision, telling the watches.

        :return: The store's revision afterwards.
        """
        for operation in operations:
            if (isinstance(operation, Put) and operation.lease and
                    operation.lease not in self._leases):
                raise LeaseExpired(operation.lease)
        events = []
        revision = self.revision + 1
        for operation in operations:
            old = self._keys.get(operation.key)
            if isinstance(operation, Put):
                kv = KeyValue(key=operation.key, value=operation.value,
                              version=(old.version if old else 0) + 1,
                              mod_revision=revision, lease=operation.lease)
                self._keys[operation.key] = kv
                events.append(Event(type="put", kv=kv))
            elif old is not None:
                del self._keys[operation.key]
                events.append(Event(type="delete", kv=KeyValue(
                    key=operation.key, value=b"", version=0,
                    mod_revision=revision)))
        if not events:
            return self.revision
        self.revision = revision
        for event in events:
            self._history.append(event)
            self._deliver(event)
        return self.revision

    # Watches --------------------------------------------------------------

    def _deliver(self, event):
        for watch in list(self._watches):
            if watch.start <= event.kv.key < watch.end:
                watch.on_event(event)

    def watch_prefix(self, prefix, start_revision, on_event):
        def watch_prefix():
            watch = _MemoryWatch(self, prefix, prefix_end(prefix), on_event)
            for event in self._history:
                if (event.kv.mod_revision >= start_revision and
                        watch.start <= event.kv.key < watch.end):
                    on_event(event)
            self._watches.append(watch)
            return watch
        return self._answer(watch_prefix)
