"""
Tests for :mod:`flocker.node._events`: Docker's event stream, one contract
for :class:`FakeDockerEvents` (here) and :class:`DockerEvents` on a lab
node's dockerd (``test_events_lab.py``), and the real client's reading of a
canned stream.
"""

import json
import secrets

from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from treq.testing import StubTreq
from zope.interface.verify import verifyObject

from ..._model import Application
from ...testtools import EndlessAgent, run_in_reactor
from .._docker import DockerClient
from .._events import DockerEvents, FakeDockerEvents, IDockerEvents

IMAGE = "flocker/busybox:latest"


class _Observer(object):
    """
    Records what a following reports; ``wanted`` fires with the first event
    ``matches`` accepts.
    """

    def __init__(self, matches=lambda event: False):
        self.connections = 0
        self.events = []
        self.reasons = []
        self.ended = Deferred()
        self.wanted = Deferred()
        self._matches = matches

    def connected(self):
        self.connections += 1

    def event(self, event):
        self.events.append(event)
        if not self.wanted.called and self._matches(event):
            self.wanted.callback(event)

    def lost(self, reason):
        self.reasons.append(reason)
        if not self.ended.called:
            self.ended.callback(reason)


def _names(name):
    """
    :return: A matcher of container events about the container ``name``
        (Docker names Flocker's containers after the application).
    """
    def matches(event):
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        return (event.get("Type") == "container"
                and name in str(attributes.get("name", "")))
    return matches


def _connected(observer):
    """
    :return: ``Deferred`` firing once ``observer``'s following is connected:
        the real stream is open once ``connected()`` was called, the fake's
        at once (the change is then made right away).
    """
    connected = Deferred()
    if observer.connections:
        connected.callback(None)
    else:
        original = observer.connected

        def now_connected():
            original()
            connected.callback(None)
        observer.connected = now_connected
    return connected


class FakeEventsFixture(object):
    """
    :class:`FakeDockerEvents`; a change is an event it is told to emit.
    """

    def __init__(self, test):
        self.events = FakeDockerEvents()

    def run(self, function, *args):
        d = function(None, *args)
        return d.result if isinstance(d, Deferred) else d

    def change(self, reactor, name):
        self.events.emit("container", "create", name)
        self.events.emit("container", "destroy", name)

    def unreachable(self):
        return FakeDockerEvents(available=False)


class RealEventsFixture(object):
    """
    :class:`DockerEvents` on a lab node's dockerd; a change is a container
    made and removed through :class:`DockerClient`.
    """

    def __init__(self, test):
        self.socket = test.docker_socket
        self.client = run_in_reactor(
            lambda reactor: DockerClient(reactor, self.socket,
                                         stop_timeout=1))
        self.events = run_in_reactor(
            lambda reactor: DockerEvents(reactor, self.client))
        test.addCleanup(lambda: run_in_reactor(
            lambda reactor: self.client.close()))

    def run(self, function, *args):
        return run_in_reactor(function, *args, timeout=60)

    def change(self, reactor, name):
        application = Application(name=name, image=IMAGE,
                                  command=["sleep", "30"])
        d = self.client.add(application)
        d.addCallback(lambda _: self.client.remove(name))
        return d

    def unreachable(self):
        return run_in_reactor(lambda reactor: DockerEvents(
            reactor, DockerClient(reactor, "/nonexistent/docker.sock")))


def make_idockerevents_tests(fixture):
    """
    :param fixture: Called with the test; returns an object like
        :class:`FakeEventsFixture`.
    :return: The ``IDockerEvents`` contract as a test case class.
    """
    class IDockerEventsTests(SynchronousTestCase):
        """
        Tests of one ``IDockerEvents`` implementation.
        """

        def setUp(self):
            self.fixture = fixture(self)
            self.name = "ev" + secrets.token_hex(4)

        def test_interface(self):
            """
            It provides ``IDockerEvents``.
            """
            self.assertTrue(verifyObject(IDockerEvents, self.fixture.events))

        def test_container_events(self):
            """
            Once connected, a container made and removed gives events
            naming it; stopping ends the following with ``lost``.
            """
            observer = _Observer(_names(self.name))
            events = self.fixture.events

            def scenario(reactor):
                following = events.follow(observer)

                def change(_):
                    return self.fixture.change(reactor, self.name)
                connected = _connected(observer)
                connected.addCallback(change)
                connected.addCallback(lambda _: observer.wanted)
                connected.addCallback(lambda _: following.stop())
                connected.addCallback(lambda _: observer.ended)
                return connected
            reason = self.fixture.run(scenario)
            self.assertEqual(
                (observer.connections, reason, len(observer.reasons)),
                (1, "stopped", 1))

        def test_filtered(self):
            """
            A following given filters gets only the events they select:
            asked for containers' ``destroy``, a container made and
            removed gives its ``destroy`` and no ``create``.
            """
            observer = _Observer(lambda event: _names(self.name)(event)
                                 and event.get("Action") == "destroy")
            events = self.fixture.events

            def scenario(reactor):
                following = events.follow(observer, filters={
                    "type": ["container"], "event": ["destroy"]})
                connected = _connected(observer)
                connected.addCallback(
                    lambda _: self.fixture.change(reactor, self.name))
                connected.addCallback(lambda _: observer.wanted)
                connected.addCallback(lambda _: following.stop())
                connected.addCallback(lambda _: observer.ended)
                return connected
            self.fixture.run(scenario)
            self.assertEqual(
                sorted({event.get("Action") for event in observer.events
                        if _names(self.name)(event)}), ["destroy"])

        def test_unreachable(self):
            """
            A daemon that cannot be reached ends the following with one
            ``lost`` and no ``connected``.
            """
            observer = _Observer()
            events = self.fixture.unreachable()
            self.fixture.run(lambda reactor: (events.follow(observer),
                                              observer.ended)[1])
            self.assertEqual(
                (observer.connections, len(observer.reasons),
                 observer.reasons[0].startswith(
                     "cannot follow Docker's events")),
                (0, 1, True))

    return IDockerEventsTests


class FakeDockerEventsTests(make_idockerevents_tests(FakeEventsFixture)):
    """
    The ``IDockerEvents`` contract for ``FakeDockerEvents``.
    """


class _CannedDaemon(Resource):
    """
    Answers ``GET /version`` and a finite ``GET /v1.41/events``.
    """
    isLeaf = True

    def __init__(self, events_body, events_code=200):
        Resource.__init__(self)
        self.events_body = events_body
        self.events_code = events_code
        self.filters = []

    def render_GET(self, request):
        if request.path == b"/version":
            return json.dumps({"ApiVersion": "1.41",
                               "MinAPIVersion": "1.12"}).encode("ascii")
        if request.path == b"/v1.41/events":
            self.filters.append(json.loads(request.args[b"filters"][0]))
            request.setResponseCode(self.events_code)
            return self.events_body
        request.setResponseCode(404)
        return b"{}"


class DockerEventsReadingTests(SynchronousTestCase):
    """
    How :class:`DockerEvents` reads a stream, against a canned daemon.
    """

    def _follow(self, body, code=200):
        daemon = _CannedDaemon(body, code)
        stub = StubTreq(daemon)
        docker = DockerClient(None, "/run/docker.sock", http_client=stub)
        observer = _Observer()
        DockerEvents(None, docker, http_client=stub).follow(observer)
        stub.flush()
        return daemon, observer

    def test_events_then_end(self):
        """
        Each JSON line is an event (lines that are not JSON objects are
        skipped); the end of the stream is ``lost``; only container, image
        and network events are asked for.
        """
        body = (json.dumps({"Type": "container", "Action": "start"}) + "\n"
                + "not json\n[1, 2]\n"
                + json.dumps({"Type": "image", "Action": "pull"}) + "\n")
        daemon, observer = self._follow(body.encode("ascii"))
        self.assertEqual(
            (observer.connections,
             [(e["Type"], e["Action"]) for e in observer.events],
             observer.reasons, daemon.filters),
            (1, [("container", "start"), ("image", "pull")],
             ["the daemon ended the stream"],
             [{"type": ["container", "image", "network"]}]))

    def test_filters_asked(self):
        """
        The filters a following is given are the ones Docker is asked for.
        """
        daemon = _CannedDaemon(b"")
        stub = StubTreq(daemon)
        docker = DockerClient(None, "/run/docker.sock", http_client=stub)
        DockerEvents(None, docker, http_client=stub).follow(
            _Observer(), filters={"type": ["container"],
                                  "event": ["die", "kill"],
                                  "label": ["flocker.application"]})
        stub.flush()
        self.assertEqual(daemon.filters, [{
            "event": ["die", "kill"], "label": ["flocker.application"],
            "type": ["container"]}])

    def test_refused(self):
        """
        A daemon answering with an error status is ``lost`` without
        ``connected``.
        """
        _, observer = self._follow(b"{}", code=500)
        self.assertEqual((observer.connections, observer.reasons),
                         (0, ["Docker answered 500 to GET /events"]))


class DockerEventsMemoryTests(SynchronousTestCase):
    """
    What :class:`DockerEvents` keeps of a stream it follows for the
    agent's whole life.
    """

    def test_stream_not_kept(self):
        """
        The event stream goes from the connection straight to the line
        reader, which keeps only an unfinished line: no layer in between
        keeps the bytes that went by (treq's ``HTTPClient`` keeps a copy
        of a whole body unless asked not to, and this body never ends, so
        every event the agent saw stayed in its memory).
        """
        stub = StubTreq(_CannedDaemon(b""))
        docker = DockerClient(None, "/run/docker.sock", http_client=stub)
        agent = EndlessAgent()
        observer = _Observer()
        following = DockerEvents(None, docker, http_client=HTTPClient(
            agent)).follow(observer)
        stub.flush()
        [response] = agent.responses
        line = json.dumps({"Type": "container", "Action": "start"}) + "\n"
        for _ in range(1000):
            response.protocol.dataReceived(line.encode("ascii"))
        response.protocol.dataReceived(b'{"Type": "cont')
        self.assertEqual(
            (response.protocol is following.body,
             len(observer.events), following.body._lines.pending()),
            (True, 1000, len(b'{"Type": "cont')))
