"""
Tests for :class:`flocker.etcd.EtcdClient`: the ``IEtcd`` contract against
a real etcd member started on 127.0.0.1, and what the client does with
members that do not answer.
"""

import shutil
import uuid

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone

from ...testtools import require, run_in_reactor
from .. import EtcdClient, EtcdUnavailable, Event, KeyValue, WatchLost
from .._client import _WatchProtocol
from ._interface_tests import make_ietcd_tests
from ._server import EtcdServer

#: Seconds a real etcd may take to deliver a watch event.
_SETTLE_TIMEOUT = 30


def _settle(reactor, predicate):
    """
    :return: ``Deferred`` firing once ``predicate()`` holds (checked as
        the reactor turns, at most for ``_SETTLE_TIMEOUT`` seconds).
    """
    done = Deferred()
    deadline = reactor.seconds() + _SETTLE_TIMEOUT

    def check():
        if predicate():
            done.callback(None)
        elif reactor.seconds() > deadline:
            done.errback(AssertionError("not settled in %ds" % (
                _SETTLE_TIMEOUT,)))
        else:
            reactor.callLater(0.02, check)
    check()
    return done


class _RealFixture(object):
    """
    ``make_ietcd_tests``'s fixture for an :class:`EtcdClient` talking to
    the test class's etcd, each test under its own prefix.
    """

    def __init__(self, test):
        self.reactor = run_in_reactor(lambda reactor: reactor)
        self.etcd = run_in_reactor(
            lambda reactor: EtcdClient(reactor, [test.server.url],
                                       timeout=10))
        self.prefix = ("test/%s/" % (uuid.uuid4().hex,)).encode("ascii")

    def call(self, function, *args):
        return run_in_reactor(lambda reactor: function(*args))

    def elapse(self, seconds):
        run_in_reactor(lambda reactor: deferLater(reactor, seconds,
                                                  lambda: None))

    def settle(self, predicate):
        return _settle(self.reactor, predicate)


class _WithServer(object):
    """
    Mixin: one etcd for the whole class.
    """

    @classmethod
    def setUpClass(cls):
        require(shutil.which("etcd") is not None,
                "etcd is not installed (admin/install-deps installs it)")
        cls.server = EtcdServer()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()


class EtcdClientContractTests(_WithServer,
                              make_ietcd_tests(_RealFixture)):
    """
    The ``IEtcd`` contract against a real etcd.
    """


class EtcdClientEndpointTests(_WithServer, SynchronousTestCase):
    """
    What the client does with members that do not answer.
    """

    def test_next_endpoint(self):
        """
        A member that refuses connections is skipped for the next one.
        """
        client = run_in_reactor(lambda reactor: EtcdClient(
            reactor, ["http://127.0.0.1:1", self.server.url], timeout=10))
        revision = run_in_reactor(
            lambda reactor: client.put(b"endpoint/a", b"1"))
        self.assertGreater(revision, 0)

    def test_none_answers(self):
        """
        When no member answers, the request fails with
        ``EtcdUnavailable`` naming the last one tried.
        """
        client = run_in_reactor(lambda reactor: EtcdClient(
            reactor, ["http://127.0.0.1:1"], timeout=10))
        with self.assertRaises(EtcdUnavailable) as caught:
            run_in_reactor(lambda reactor: client.get(b"endpoint/a"))
        self.assertIn("127.0.0.1:1", str(caught.exception))


class WatchStreamTests(SynchronousTestCase):
    """
    The reading of a ``/v3/watch`` answer, line by line, with a cap.
    """

    def setUp(self):
        self.events = []
        self.watch = _WatchProtocol(self.events.append, maximum=1024)
        self.transport = StringTransport()
        self.watch.makeConnection(self.transport)

    def test_events(self):
        """
        Lines cut anywhere give the created watch and then its events.
        """
        data = (b'{"result":{"header":{"revision":"4"},"created":true}}\n'
                b'{"result":{"header":{"revision":"5"},"events":[{"kv":'
                b'{"key":"YQ==","mod_revision":"5","version":"1",'
                b'"value":"Yg=="}},{"type":"DELETE","kv":{"key":"Yw==",'
                b'"mod_revision":"5"}}]}}\n')
        for i in range(0, len(data), 7):
            self.watch.dataReceived(data[i:i + 7])
        self.assertIs(self.watch, self.successResultOf(self.watch.created))
        self.assertEqual(
            [Event(type="put", kv=KeyValue(key=b"a", value=b"b", version=1,
                                           mod_revision=5)),
             Event(type="delete", kv=KeyValue(key=b"c", value=b"",
                                              version=0, mod_revision=5))],
            self.events)

    def test_too_long(self):
        """
        A message over the cap ends the watch with ``WatchLost`` and the
        connection is dropped; nothing of it is delivered.
        """
        self.watch.dataReceived(
            b'{"result":{"header":{"revision":"4"},"created":true}}\n')
        self.watch.dataReceived(b'{"result":' + b" " * 2048)
        self.assertTrue(self.transport.producerState == "stopped" or
                        self.transport.disconnecting)
        self.watch.connectionLost(Failure(ResponseDone()))
        self.failureResultOf(self.watch.done, WatchLost)
        self.assertEqual([], self.events)

    def test_cancelled(self):
        """
        etcd cancelling the watch (its revision was compacted) ends it
        with ``WatchLost`` naming the compacted revision.
        """
        self.watch.dataReceived(
            b'{"result":{"header":{"revision":"4"},"created":true}}\n'
            b'{"result":{"canceled":true,"compact_revision":"3"}}\n')
        self.watch.connectionLost(Failure(ResponseDone()))
        self.assertIn("3", str(self.failureResultOf(
            self.watch.done, WatchLost).value))

    def test_stop(self):
        """
        After ``stop`` the connection is dropped, no later event is
        delivered and ``done`` fires with ``None``.
        """
        self.watch.dataReceived(
            b'{"result":{"header":{"revision":"4"},"created":true}}\n')
        self.watch.stop()
        self.watch.dataReceived(
            b'{"result":{"header":{"revision":"5"},"events":[{"kv":'
            b'{"key":"YQ==","mod_revision":"5","version":"1"}}]}}\n')
        self.watch.connectionLost(Failure(ResponseDone()))
        self.assertEqual((None, []), (self.successResultOf(self.watch.done),
                                      self.events))
