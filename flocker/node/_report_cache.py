"""
The agent's report, kept between requests so that ``report`` answers in
milliseconds instead of asking Docker, ZFS and iptables again each time.

A kept report is used only while everything that could have changed it is
known not to have:

* the agent's own operations: each one (anything but ``report``,
  ``logs``, ``doctor`` and ``wait_for_application``) drops the kept report
  when it starts and again when it ends, and no report is kept while one
  runs;
* Docker: the agent follows Docker's event stream; any container, image or
  network event but a command run inside a container (``exec_*``) or a
  healthcheck verdict drops it, and while the stream is not followed
  (daemon down, not yet connected) no report is kept at all;
* ZFS: every Flocker process that changes the pool (the agent, another
  node's push received by ``flocker-volume receive``) rewrites the pool's
  change stamp (:mod:`flocker.volume._stamp`); a kept report holds only
  while the stamp is the one it was made under;
* the ports held by other programs are read afresh for every answer, from
  ``/proc/net/tcp`` and ``/proc/net/tcp6`` (no process is started);
* whatever nothing announces (a ``zfs`` or ``iptables`` command typed by
  hand) is seen once the kept report is older than ``maximum_age``.
"""

import attr
from twisted.internet.defer import maybeDeferred
from zope.interface import implementer

from ._agent import INodeAgent
from ._logging import (
    DOCKER_EVENTS_CONNECTED, DOCKER_EVENTS_LOST, REPORT_INVALIDATED,
    REPORT_KEPT,
)

__all__ = ["ReportKeeper", "KeptReportAgent", "kept_reports",
           "proc_listening_ports", "parse_proc_net_tcp",
           "DEFAULT_MAXIMUM_AGE", "FOLLOW_RETRY"]

#: Seconds a kept report is used at most, for changes nothing announces.
DEFAULT_MAXIMUM_AGE = 30.0

#: Seconds between two attempts to follow Docker's events again.
FOLLOW_RETRY = 1.0

#: ``INodeAgent`` operations that change nothing a report holds.
_READING = frozenset(["report", "logs", "doctor", "wait_for_application"])

#: TCP state ``LISTEN`` in ``/proc/net/tcp``.
_LISTEN = "0A"


def parse_proc_net_tcp(text):
    """
    :param str text: The content of ``/proc/net/tcp`` or ``/proc/net/tcp6``.
    :return: ``set`` of the ports of its listening sockets.
    """
    ports = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN:
            continue
        _, _, port = fields[1].rpartition(":")
        try:
            ports.add(int(port, 16))
        except ValueError:
            continue
    return ports


def proc_listening_ports(paths=("/proc/net/tcp", "/proc/net/tcp6")):
    """
    The TCP ports listened on in this process's network namespace, as
    ``ss -l -t`` lists them, read without starting a process.

    :param paths: The files to read (a missing one, IPv6 switched off say,
        counts as empty).
    :return: ``set`` of ``int``.
    """
    ports = set()
    for path in paths:
        try:
            with open(path) as f:
                ports |= parse_proc_net_tcp(f.read())
        except FileNotFoundError:
            continue
    return ports


def _matters(event):
    """
    :param dict event: A Docker event.
    :return: Whether it may change what a report holds.
    """
    action = str(event.get("Action") or event.get("status") or "")
    return not (action.startswith("exec_")
                or action.startswith("health_status"))


class ReportKeeper(object):
    """
    Knows, for the whole node, whether a kept report still holds: follows
    Docker's events (following again after a loss), reads the pool's
    change stamp, and counts invalidations.

    :ivar int generation: Bumped at each invalidation.
    :ivar bool following: Whether Docker's events are followed now.
    :ivar float maximum_age: See :data:`DEFAULT_MAXIMUM_AGE`.
    """

    def __init__(self, clock, events, read_stamp,
                 maximum_age=DEFAULT_MAXIMUM_AGE, retry=FOLLOW_RETRY):
        """
        :param clock: ``IReactorTime`` provider.
        :param events: The node's
            :class:`~flocker.node._events.IDockerEvents`.
        :param read_stamp: ``() -> str``: the pool's change stamp now.
        :param float maximum_age: Seconds a kept report is used at most.
        :param float retry: Seconds between attempts to follow the events.
        """
        self.clock = clock
        self.maximum_age = maximum_age
        self.generation = 0
        self.following = False
        self._events = events
        self._read_stamp = read_stamp
        self._retry = retry
        self._following = None
        self._next = None
        self._stopped = True
        self._running = 0

    def start(self):
        """
        Start following Docker's events.
        """
        self._stopped = False
        self._follow()

    def stop(self):
        """
        Stop following them; no report is kept from now on.
        """
        self._stopped = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        if self._following is not None:
            following, self._following = self._following, None
            following.stop()

    def _follow(self):
        self._next = None
        if not self._stopped:
            self._following = self._events.follow(self)

    # The event stream's observer.

    def connected(self):
        DOCKER_EVENTS_CONNECTED.log()
        # Whatever happened before the stream was followed was not seen.
        self.invalidate("following Docker's events")
        self.following = True

    def event(self, event):
        if _matters(event):
            self.invalidate("docker %s %s" % (event.get("Type"),
                                              event.get("Action")))

    def lost(self, reason):
        self.following = False
        self.invalidate("Docker's events are not followed")
        DOCKER_EVENTS_LOST.log(reason=reason)
        if not self._stopped:
            self._next = self.clock.callLater(self._retry, self._follow)

    def begin(self, operation):
        """
        One of the agent's own operations starts: no report is kept until
        every operation started has ended.

        :param str operation: Its name, for the log.
        """
        self._running += 1
        self.invalidate(operation)

    def end(self, operation):
        """
        One of the agent's own operations ended (see :meth:`begin`).
        """
        self._running -= 1
        self.invalidate(operation)

    def invalidate(self, reason):
        """
        Drop every kept report of the node.

        :param str reason: Why, for the log.
        """
        self.generation += 1
        REPORT_INVALIDATED.log(reason=reason)

    def token(self):
        """
        :return: What a kept report must have been made under to hold now,
            or ``None`` while no report may be kept.
        """
        if not self.following or self._running:
            return None
        return (self.generation, self._read_stamp())


@implementer(INodeAgent)
class KeptReportAgent(object):
    """
    ``INodeAgent`` keeping the report of another between requests (see
    the module documentation); every other operation is the other's.
    """

    def __init__(self, agent, keeper, listening=None):
        """
        :param agent: The ``INodeAgent`` doing the work (a
            :class:`~flocker.node._local.LocalNodeAgent`).
        :param ReportKeeper keeper: The node's keeper.
        :param listening: ``() -> set`` of the TCP ports listened on now
            (:func:`proc_listening_ports`), read for every answer; or
            ``None`` to answer with the ports found when the report was
            made.
        """
        self._agent = agent
        self._keeper = keeper
        self._listening = listening
        self._kept = None

    @property
    def address(self):
        return self._agent.address

    def report(self):
        keeper = self._keeper
        token = keeper.token()
        now = keeper.clock.seconds()
        if token is not None and self._kept is not None:
            kept_token, made, state = self._kept
            if kept_token == token and now - made < keeper.maximum_age:
                REPORT_KEPT.log(address=self._agent.address)
                return maybeDeferred(self._fresh, state)
        self._kept = None

        def keep(state):
            if token is not None and keeper.token() == token:
                self._kept = (token, now, state)
            return state
        return self._agent.report().addCallback(keep)

    def _fresh(self, state):
        """
        :return: ``state`` with the ports other programs hold now.
        """
        if self._listening is None:
            return state
        ours = {port.external for name in state.running
                if name in state.applications
                for port in state.applications[name].ports}
        busy = frozenset(self._listening()) - ours
        if busy == state.busy_ports:
            return state
        return attr.evolve(state, busy_ports=busy)

    def __getattr__(self, name):
        operation = getattr(self._agent, name)
        if name in _READING or name.startswith("_") or not callable(
                operation):
            return operation

        def changing(*args, **kwargs):
            self._keeper.begin(name)
            d = maybeDeferred(operation, *args, **kwargs)

            def ended(result):
                self._keeper.end(name)
                return result
            return d.addBoth(ended)
        return changing


def kept_reports(make_agent, keeper, listening=None):
    """
    :param make_agent: A ``make_agent`` for
        :class:`~flocker.node._server.AgentService` (see
        :func:`~flocker.node._server.local_agents`).
    :param ReportKeeper keeper: The node's keeper.
    :param listening: See :class:`KeptReportAgent`.
    :return: A ``make_agent`` whose agents keep their reports.
    """
    def make(address):
        return KeptReportAgent(make_agent(address), keeper, listening)
    return make
