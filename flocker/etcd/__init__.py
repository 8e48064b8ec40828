"""
etcd, where Flocker's nodes agree on who may run an application: leases
that end when their holder stops renewing them, and transactions that let
exactly one node win a placement.

:class:`IEtcd` is what Flocker asks of etcd; :class:`EtcdClient` speaks to
a real cluster through its v3 JSON gateway (treq), :class:`MemoryEtcd` is
the in-memory stand-in for tests.
"""

from ._interface import (
    IEtcd, IWatch, KeyValue, Lease, Event, Compare, Put, Delete,
    TransactionResult, EtcdError, EtcdUnavailable, LeaseExpired, WatchLost,
    prefix_end,
)
from ._client import EtcdClient, DEFAULT_TIMEOUT, MAXIMUM_RESPONSE_BYTES
from ._memory import MemoryEtcd
from ._keeper import LeaseKeeper, LeaseTiming, DEFAULT_TIMING
from ._tls import EtcdTLS, EtcdConfigError

__all__ = [
    "IEtcd", "IWatch", "KeyValue", "Lease", "Event", "Compare", "Put",
    "Delete", "TransactionResult", "EtcdError", "EtcdUnavailable",
    "LeaseExpired", "WatchLost", "prefix_end",
    "EtcdClient", "DEFAULT_TIMEOUT", "MAXIMUM_RESPONSE_BYTES",
    "MemoryEtcd", "LeaseKeeper", "LeaseTiming", "DEFAULT_TIMING",
    "EtcdTLS", "EtcdConfigError",
]
