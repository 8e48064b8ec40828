"""
Docker's event stream (``GET /events``), followed for as long as the agent
runs, so that the agent learns at once when containers or images change
without asking Docker for everything again.

:class:`DockerEvents` follows a real daemon over its Unix socket;
:class:`FakeDockerEvents` is driven by tests.  Both provide
:class:`IDockerEvents` and pass the same contract tests.
"""

import json

import treq
from twisted.internet.defer import CancelledError
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, ResponseDone
from zope.interface import Interface, implementer

from .._lines import LineBuffer
from .._text import one_line
from ._docker import _UNIXSocketEndpointFactory

__all__ = ["IDockerEvents", "DockerEvents", "FakeDockerEvents",
           "EVENT_TYPES", "MAXIMUM_EVENT"]

#: The kinds of Docker objects whose events are followed.
EVENT_TYPES = ("container", "image", "network")

#: The longest event accepted, in bytes; a longer line ends the stream.
MAXIMUM_EVENT = 1024 * 1024


class IDockerEvents(Interface):
    """
    The event stream of one node's Docker daemon.
    """

    def follow(observer, filters=None):
        """
        Start following the daemon's events of :data:`EVENT_TYPES`, or only
        those ``filters`` selects.

        :param observer: An object with ``connected()`` (called once the
            daemon answered: every change from then on is seen),
            ``event(event)`` (called with each event, the daemon's decoded
            JSON object, a ``dict`` with ``Type``, ``Action`` and
            ``Actor``) and ``lost(reason)`` (called once, with a one-line
            ``str``, when the stream ended, failed or was stopped; never
            before ``connected`` if the daemon could be reached).
        :param filters: ``None`` for every event of :data:`EVENT_TYPES`,
            else a ``dict`` of Docker's event filters (``type``,
            ``event``, ``label``, ``container``) to lists of values: an
            event is delivered when, for each filter given, it matches one
            of its values (a ``label`` value is ``KEY`` or ``KEY=VALUE``).
        :return: An object whose ``stop()`` ends the following (``lost`` is
            then called).
        """


def _filters(filters):
    """
    :param filters: What :meth:`IDockerEvents.follow` was given.
    :return: The filters to ask Docker for, as a ``dict`` of lists.
    """
    if filters is None:
        return {"type": list(EVENT_TYPES)}
    return {key: list(values) for key, values in sorted(filters.items())}


def _has_label(attributes, value):
    """
    :return: Whether an event's ``attributes`` (a container's labels are
        among them) have the label ``value`` names (``KEY`` or
        ``KEY=VALUE``).
    """
    key, equals, wanted = value.partition("=")
    if key not in attributes:
        return False
    return not equals or attributes[key] == wanted


def _matches(filters, event):
    """
    Match an event as Docker's filters do (the fake's side of them).

    :param dict filters: What :func:`_filters` answered.
    :param dict event: An event as Docker writes it.
    :return: Whether Docker would deliver it.
    """
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    for key, values in filters.items():
        if key == "type":
            found = event.get("Type") in values
        elif key == "event":
            found = event.get("Action") in values
        elif key == "container":
            found = (actor.get("ID") in values
                     or attributes.get("name") in values)
        elif key == "label":
            found = any(_has_label(attributes, value) for value in values)
        else:
            found = False
        if not found:
            return False
    return True


class _Following(object):
    """
    One following of the event stream: stops it on request.
    """

    def __init__(self):
        self.request = None
        self.body = None
        self.stopped = False

    def stop(self):
        self.stopped = True
        if self.body is not None and self.body.transport is not None:
            self.body.transport.stopProducing()
        elif self.request is not None:
            self.request.cancel()


class _EventLines(Protocol):
    """
    Receives the body of ``GET /events``: one JSON object a line.
    """

    def __init__(self, observer, done):
        self._observer = observer
        self._done = done
        self._lines = LineBuffer(MAXIMUM_EVENT)

    def dataReceived(self, data):
        lines, too_long = self._lines.feed(data)
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._observer.event(event)
        if too_long:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        self._done(reason)


@implementer(IDockerEvents)
class DockerEvents(object):
    """
    :class:`IDockerEvents` of a real daemon, over its Unix socket, on a
    connection of its own (the stream never ends while the daemon runs).
    """

    def __init__(self, reactor, docker, http_client=None):
        """
        :param reactor: The reactor.
        :param docker: The node's :class:`~flocker.node._docker.DockerClient`
            (its socket and its negotiated API version are used).
        :param http_client: An object with treq's ``HTTPClient.request``
            signature to use instead of the socket (tests).
        """
        self._reactor = reactor
        self._docker = docker
        if http_client is None:
            http_client = treq.client.HTTPClient(Agent.usingEndpointFactory(
                reactor, _UNIXSocketEndpointFactory(
                    reactor, docker.socket_path)))
        self._http = http_client

    def follow(self, observer, filters=None):
        following = _Following()
        filters = _filters(filters)
        ended = []

        def lost(reason):
            if not ended:
                ended.append(reason)
                observer.lost(reason)

        def request(version):
            if following.stopped:
                raise CancelledError()
            # Unbuffered: treq otherwise keeps a copy of every byte of a
            # body until the response is dropped, and this one never ends
            # (every event the agent ever saw stayed in its memory).
            following.request = self._http.request(
                "GET", "http://docker" + version.path("/events"),
                params={"filters": json.dumps(filters)},
                reactor=self._reactor, unbuffered=True)
            return following.request

        def opened(response):
            if response.code != 200:
                return lost("Docker answered %d to GET /events" % (
                    response.code,))
            if following.stopped:
                return lost("stopped")
            observer.connected()

            def done(reason):
                if following.stopped:
                    lost("stopped")
                elif reason.check(ResponseDone):
                    lost("the daemon ended the stream")
                else:
                    lost("connection lost: %s" % (
                        one_line(reason.getErrorMessage()),))
            following.body = _EventLines(observer, done)
            response.deliverBody(following.body)

        def failed(reason):
            if following.stopped or reason.check(CancelledError):
                lost("stopped")
            else:
                lost("cannot follow Docker's events: %s" % (
                    one_line(reason.getErrorMessage()),))
        d = self._docker.api_version().addCallback(request)
        d.addCallback(opened)
        d.addErrback(failed)
        return following


class _FakeFollowing(object):
    """
    One following of a :class:`FakeDockerEvents`.
    """

    def __init__(self, events, observer, filters):
        self._events = events
        self.observer = observer
        self.filters = filters

    def stop(self):
        self._events.end(self, "stopped")


@implementer(IDockerEvents)
class FakeDockerEvents(object):
    """
    :class:`IDockerEvents` driven by a test: :meth:`emit` hands an event to
    every follower, :meth:`drop` ends every following.

    :ivar bool available: Whether a new follower is connected (else it is
        told at once that the daemon cannot be reached).
    :ivar followers: ``list`` of the current followings.
    """

    def __init__(self, available=True):
        self.available = available
        self.followers = []

    def follow(self, observer, filters=None):
        following = _FakeFollowing(self, observer, _filters(filters))
        if not self.available:
            observer.lost("cannot follow Docker's events: no daemon")
            return following
        self.followers.append(following)
        observer.connected()
        return following

    def emit(self, kind, action, name, attributes=None):
        """
        Hand every follower whose filters match an event as Docker would
        write it.

        :param str kind: ``container``, ``image`` or ``network``.
        :param str action: What happened (``start``, ``die``, ``pull``...).
        :param str name: The object's name.
        :param attributes: ``None``, or a ``dict`` of further attributes
            of the object (a container's labels, ``exitCode`` of a
            ``die``, ``signal`` of a ``kill``).
        """
        event = {"Type": kind, "Action": action,
                 "Actor": {"ID": name, "Attributes": dict(
                     attributes or {}, name=name)}}
        for following in list(self.followers):
            if _matches(following.filters, event):
                following.observer.event(event)

    def drop(self, reason="the daemon ended the stream"):
        """
        End every following, as a daemon that stopped would.
        """
        for following in list(self.followers):
            self.end(following, reason)

    def end(self, following, reason):
        if following in self.followers:
            self.followers.remove(following)
            following.observer.lost(reason)
