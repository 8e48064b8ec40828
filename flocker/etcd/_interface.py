"""
What Flocker asks of etcd: the interface, its values and its errors.

Flocker keeps only small facts in etcd (who runs an application, under
which ownership epoch, and the lease that keeps that claim alive), so the
interface is the part of etcd's v3 API those need: leases, single keys and
prefixes, transactions that compare before they write, and watches.  Keys
and values are ``bytes``, as etcd stores them.
"""

import attr
from attr.validators import in_, instance_of
from pyrsistent import pvector
from zope.interface import Attribute, Interface

__all__ = [
    "IEtcd", "IWatch", "KeyValue", "Lease", "Event", "Compare", "Put",
    "Delete", "TransactionResult", "EtcdError", "EtcdUnavailable",
    "LeaseExpired", "WatchLost", "prefix_end",
]


def prefix_end(prefix):
    """
    :param bytes prefix: A non-empty key prefix.
    :return: The first key after every key starting with ``prefix`` (etcd's
        ``range_end`` for a prefix).
    :raises ValueError: If ``prefix`` is empty or only ``0xff`` bytes.
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        raise ValueError("a prefix needs a byte below 0xff: %r" % (prefix,))
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _nonnegative(instance, attribute, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("%s must be an int >= 0, not %r" % (
            attribute.name, value))


def _key(instance, attribute, value):
    if not isinstance(value, bytes) or not value:
        raise ValueError("%s must be non-empty bytes, not %r" % (
            attribute.name, value))


@attr.s(frozen=True)
class KeyValue(object):
    """
    One key as etcd holds it.

    :ivar bytes key: The key.
    :ivar bytes value: Its value.
    :ivar int version: How many times it was written since it was created
        (1 after the first put).
    :ivar int mod_revision: The store revision of its last write.
    :ivar int lease: The lease it is attached to, or 0.
    """
    key = attr.ib(validator=_key)
    value = attr.ib(validator=instance_of(bytes))
    version = attr.ib(validator=_nonnegative)
    mod_revision = attr.ib(validator=_nonnegative)
    lease = attr.ib(default=0, validator=_nonnegative)


@attr.s(frozen=True)
class Lease(object):
    """
    A lease granted by etcd.

    :ivar int id: Its identifier (what keys are attached to).
    :ivar int ttl: Seconds it lives without a keep-alive, as granted (etcd
        may grant more than was asked: it has a minimum).
    """
    id = attr.ib(validator=_nonnegative)
    ttl = attr.ib(validator=_nonnegative)


@attr.s(frozen=True)
class Event(object):
    """
    One change seen by a watch.

    :ivar str type: ``"put"`` or ``"delete"``.
    :ivar KeyValue kv: The key after a put; after a delete, the key with an
        empty value and version 0.
    """
    type = attr.ib(validator=in_(("put", "delete")))
    kv = attr.ib(validator=instance_of(KeyValue))


@attr.s(frozen=True)
class Compare(object):
    """
    One condition of a transaction: the key's ``target`` equals ``value``.

    :ivar bytes key: The key.
    :ivar str target: ``"value"`` (``value`` is ``bytes``) or
        ``"version"`` (``value`` is an ``int``; 0 means the key is absent).
    :ivar value: What it must equal.
    """
    key = attr.ib(validator=_key)
    target = attr.ib(validator=in_(("value", "version")))
    value = attr.ib()

    def __attrs_post_init__(self):
        kind = bytes if self.target == "value" else int
        if not isinstance(self.value, kind) or isinstance(self.value, bool):
            raise ValueError("comparing the %s needs %s, not %r" % (
                self.target, kind.__name__, self.value))


@attr.s(frozen=True)
class Put(object):
    """
    A write in a transaction.

    :ivar bytes key: The key.
    :ivar bytes value: Its new value.
    :ivar int lease: The lease to attach it to, or 0 for none.
    """
    key = attr.ib(validator=_key)
    value = attr.ib(validator=instance_of(bytes))
    lease = attr.ib(default=0, validator=_nonnegative)


@attr.s(frozen=True)
class Delete(object):
    """
    A deletion in a transaction (of an absent key: nothing happens).

    :ivar bytes key: The key.
    """
    key = attr.ib(validator=_key)


@attr.s(frozen=True)
class TransactionResult(object):
    """
    What a transaction did.

    :ivar bool succeeded: Every comparison held, so the ``success``
        operations ran (else the ``failure`` ones did).
    :ivar int revision: The store's revision after it.
    """
    succeeded = attr.ib(validator=instance_of(bool))
    revision = attr.ib(validator=_nonnegative)


class EtcdError(Exception):
    """
    etcd refused a request.

    :ivar int code: etcd's (gRPC) status code.
    :ivar str message: etcd's message.
    """

    def __init__(self, code, message):
        Exception.__init__(self, code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return "etcd: %s (code %d)" % (self.message, self.code)


class EtcdUnavailable(Exception):
    """
    No etcd member answered in time (unreachable, or without a majority
    of its cluster).
    """


class LeaseExpired(Exception):
    """
    The lease asked about is gone: it expired or was revoked.

    :ivar int lease: Its identifier.
    """

    def __init__(self, lease):
        Exception.__init__(self, lease)
        self.lease = lease

    def __str__(self):
        return "lease %x expired or was revoked" % (self.lease,)


class WatchLost(Exception):
    """
    A watch ended without being stopped: the connection was cut, or etcd
    cancelled it (its start revision was compacted away).  The watcher
    reads the current state and watches again from there.
    """


class IWatch(Interface):
    """
    A running watch (see :meth:`IEtcd.watch_prefix`).
    """

    done = Attribute(
        "A ``Deferred`` firing with ``None`` once :meth:`stop` was called, "
        "or failing with :class:`WatchLost` (or :class:`EtcdError`) when "
        "the watch ends by itself.")

    def stop():
        """
        End the watch: no event is delivered after this returns.
        """


class IEtcd(Interface):
    """
    A client of one etcd cluster.  Every method returns a ``Deferred``;
    every one may fail with :class:`EtcdUnavailable` when no member answers
    in time, or :class:`EtcdError` when etcd refuses the request.
    """

    def grant(ttl):
        """
        Make a lease.

        :param int ttl: Seconds it lives without a keep-alive (at least 1).
        :return: ``Deferred`` firing with a :class:`Lease` (whose ``ttl`` is
            what etcd granted).
        """

    def keep_alive(lease):
        """
        Renew a lease to its full time to live, counted from when etcd
        received the request.

        :param int lease: The lease's identifier.
        :return: ``Deferred`` firing with the lease's ``ttl`` in seconds, or
            failing with :class:`LeaseExpired`.
        """

    def revoke(lease):
        """
        End a lease now, deleting the keys attached to it.  Revoking a lease
        that is gone already succeeds.

        :param int lease: The lease's identifier.
        :return: ``Deferred`` firing with ``None``.
        """

    def get(key):
        """
        :param bytes key: A key.
        :return: ``Deferred`` firing with its :class:`KeyValue`, or ``None``
            if it is absent.
        """

    def get_prefix(prefix):
        """
        :param bytes prefix: A key prefix.
        :return: ``Deferred`` firing with ``(revision, kvs)``: the store's
            revision when read and a ``PVector`` of every
            :class:`KeyValue` whose key starts with ``prefix``, in key
            order.
        """

    def put(key, value, lease=0):
        """
        Write a key.

        :param bytes key: The key.
        :param bytes value: Its value.
        :param int lease: The lease to attach it to (the key goes when the
            lease does), or 0.
        :return: ``Deferred`` firing with the store's revision after the
            write, or failing with :class:`LeaseExpired` if ``lease`` is
            gone.
        """

    def transaction(compare, success, failure=()):
        """
        Atomically: if every comparison holds, apply ``success``, else
        ``failure``.

        :param compare: Iterable of :class:`Compare`.
        :param success: Iterable of :class:`Put` or :class:`Delete`.
        :param failure: Iterable of :class:`Put` or :class:`Delete`.
        :return: ``Deferred`` firing with a :class:`TransactionResult`, or
            failing with :class:`LeaseExpired` if a put names a lease that
            is gone.
        """

    def watch_prefix(prefix, start_revision, on_event):
        """
        Watch every key starting with ``prefix``.

        :param bytes prefix: The prefix.
        :param int start_revision: The first revision whose changes are
            delivered (the revision after a :meth:`get_prefix` reading, so
            nothing is missed in between).
        :param on_event: Called with each :class:`Event`, in revision order.
        :return: ``Deferred`` firing with an :class:`IWatch` provider once
            etcd accepted the watch.
        """


def _operations(operations):
    """
    :return: ``operations`` as a ``PVector`` of :class:`Put` /
        :class:`Delete`.
    :raises TypeError: On anything else.
    """
    result = pvector(operations)
    for operation in result:
        if not isinstance(operation, (Put, Delete)):
            raise TypeError("not a transaction operation: %r" % (operation,))
    return result


def _comparisons(comparisons):
    """
    :return: ``comparisons`` as a ``PVector`` of :class:`Compare`.
    :raises TypeError: On anything else.
    """
    result = pvector(comparisons)
    for comparison in result:
        if not isinstance(comparison, Compare):
            raise TypeError("not a comparison: %r" % (comparison,))
    return result

