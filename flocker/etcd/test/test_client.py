"""
Tests for :class:`flocker.etcd.EtcdClient`: the ``IEtcd`` contract against
a real etcd member started on 127.0.0.1, and what the client does with
members that do not answer.
"""

import shutil
import uuid

import json

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectingCancelledError, ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from treq.client import HTTPClient
from twisted.web.client import ResponseDone

from ...testtools import EndlessAgent, require, run_in_reactor
from .. import EtcdClient, EtcdUnavailable, Event, KeyValue, WatchLost
from .._client import WATCH_CHECK_EVERY, _WatchProtocol
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


class _StreamTransport(StringTransport):
    """
    A response body's transport: dropping it ends the body, as the HTTP
    client does when its connection closes.
    """

    def __init__(self, protocol):
        StringTransport.__init__(self)
        self._protocol = protocol

    def stopProducing(self):
        StringTransport.stopProducing(self)
        self._protocol.connectionLost(Failure(ConnectionDone()))


class _Response(object):
    """
    An HTTP response of :class:`_Members`: its body at once, then its end
    unless it is a stream.
    """
    length = None

    def __init__(self, code, body, stream=False):
        self.code = code
        self._body = body
        self._stream = stream

    def deliverBody(self, protocol):
        protocol.makeConnection(_StreamTransport(protocol))
        protocol.dataReceived(self._body)
        if not self._stream:
            protocol.connectionLost(Failure(ResponseDone()))


class _Members(object):
    """
    A ``treq`` HTTP client in front of etcd members that answer reads and
    watches at once, or never (``dead``): a member whose machine lost
    power.

    :ivar dead: ``set`` of endpoints that no longer answer.
    :ivar posts: The URLs posted to, in order.
    """

    def __init__(self):
        self.dead = set()
        self.cancelled = set()
        self.posts = []
        self.newest = None

    def post(self, url, data, headers, unbuffered=False):
        self.posts.append(url)
        endpoint, _, path = url.partition("/v3/")
        if endpoint in self.dead:
            return Deferred()
        if endpoint in self.cancelled:
            return fail(ConnectingCancelledError(endpoint))
        if path == "watch":
            return succeed(_Response(200, b'{"result":{"header":{'
                                     b'"revision":"2"},"created":true}}\n',
                                     stream=True))
        answer = {"header": {"revision": "2"}, "count": "0"}
        if self.newest is not None:
            # The prefix's key changed last, as a newest-first read of
            # one key gives it.
            answer = {"header": {"revision": str(self.newest)}, "count": "1",
                      "kvs": [{"key": "cC94",
                               "mod_revision": str(self.newest)}]}
        return succeed(_Response(200, json.dumps(answer).encode("ascii")))


class WatchMemoryTests(SynchronousTestCase):
    """
    What a watch keeps of its stream, which lasts for the agent's whole
    life.
    """

    def test_stream_not_kept(self):
        """
        The watch's answer goes from the connection straight to the watch's
        reader: no layer in between keeps the bytes that went by (treq's
        ``HTTPClient`` keeps a copy of a whole body unless asked not to,
        and a watch's body never ends).
        """
        agent = EndlessAgent()
        client = EtcdClient(Clock(), ["http://a:2379"], timeout=2,
                            http=HTTPClient(agent))
        events = []
        d = client.watch_prefix(b"p/", 1, events.append)
        [response] = agent.responses
        response.protocol.dataReceived(
            b'{"result":{"header":{"revision":"2"},"created":true}}\n')
        watch = self.successResultOf(d)
        for revision in range(3, 103):
            response.protocol.dataReceived(json.dumps({"result": {
                "header": {"revision": str(revision)},
                "events": [{"kv": {"key": "cC94",
                                   "mod_revision": str(revision),
                                   "version": "1"}}]}}).encode("ascii")
                + b"\n")
        self.assertEqual((response.protocol is watch, len(events)),
                         (True, 100))


class WatchMemberCheckTests(SynchronousTestCase):
    """
    A watch whose member stops answering is lost, so that it can be set up
    again on another member (a member that lost power never closes its
    connections).
    """

    def setUp(self):
        self.clock = Clock()
        self.members = _Members()
        self.client = EtcdClient(self.clock, ["http://a:2379",
                                              "http://b:2379"],
                                 timeout=2, http=self.members)
        self.watch = self.successResultOf(
            self.client.watch_prefix(b"p/", 1, lambda event: None))

    def test_live_member_keeps_watch(self):
        """
        While the watch's member answers its checks, the watch goes on.
        """
        self.clock.pump([WATCH_CHECK_EVERY] * 5)
        self.assertEqual(
            (self.watch.done.called,
             self.members.posts.count("http://a:2379/v3/kv/range")),
            (False, 5))

    def test_dead_member_loses_watch(self):
        """
        A member that does not answer a check within the request deadline
        ends the watch with ``WatchLost`` naming it.
        """
        self.members.dead.add("http://a:2379")
        self.clock.advance(WATCH_CHECK_EVERY)
        self.clock.advance(2)
        self.assertIn("http://a:2379", str(self.failureResultOf(
            self.watch.done, WatchLost).value))

    def test_next_request_elsewhere(self):
        """
        After a watch's member failed its check, the next request goes to
        another member first instead of waiting for the dead one again.
        """
        self.members.dead.add("http://a:2379")
        self.clock.advance(WATCH_CHECK_EVERY)
        self.clock.advance(2)
        self.failureResultOf(self.watch.done, WatchLost)
        del self.members.posts[:]
        self.successResultOf(self.client.get(b"p/x"))
        self.assertEqual(["http://b:2379/v3/kv/range"], self.members.posts)

    def test_connecting_cancelled(self):
        """
        A member whose connection attempt the deadline cut (its machine is
        off: ``ConnectingCancelledError``) is skipped for the next one.
        """
        self.members.cancelled.add("http://a:2379")
        del self.members.posts[:]
        self.successResultOf(self.client.get(b"p/x"))
        self.assertEqual(["http://a:2379/v3/kv/range",
                          "http://b:2379/v3/kv/range"], self.members.posts)

    def test_quiet_watch_lost(self):
        """
        A revision of the prefix that one check saw and that has still not
        come through the watch at the next check ends the watch with
        ``WatchLost`` saying so (set up again, it brings what was missed).
        """
        self.members.newest = 5
        self.clock.advance(WATCH_CHECK_EVERY)
        self.assertFalse(self.watch.done.called)
        self.clock.advance(WATCH_CHECK_EVERY)
        self.assertIn("revision 5 of the prefix never came through",
                      str(self.failureResultOf(self.watch.done,
                                               WatchLost).value))

    def test_delivered_revision_keeps_watch(self):
        """
        A revision the watch delivered before the next check keeps it.
        """
        self.members.newest = 5
        self.clock.advance(WATCH_CHECK_EVERY)
        self.watch.dataReceived(
            b'{"result":{"header":{"revision":"5"},"events":[{"kv":'
            b'{"key":"cC94","value":"","mod_revision":"5"}}]}}\n')
        self.clock.pump([WATCH_CHECK_EVERY] * 3)
        self.assertFalse(self.watch.done.called)

    def test_stopped_watch_stops_checks(self):
        """
        A watch stopped by its reader asks its member nothing more.
        """
        self.watch.stop()
        del self.members.posts[:]
        self.clock.pump([WATCH_CHECK_EVERY] * 3)
        self.assertEqual(([], []), (self.members.posts,
                                    self.clock.getDelayedCalls()))
