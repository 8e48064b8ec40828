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
* ZFS: every Flocker process that changes the pool (the agent, other
  nodes' pushes included, or ``flocker-volume`` run by hand) rewrites the
  pool's change stamp (:mod:`flocker.volume._stamp`); a kept report holds
  only while the stamp is the one it was made under;
* the ports held by other programs are asked of the kernel afresh for
  every answer (sock_diag netlink, as ss(8) does, without starting a
  process), and so is the replication to standby nodes (from the
  replicator, in memory);
* whatever nothing announces (a ``zfs`` or ``iptables`` command typed by
  hand) is seen once the kept report is older than ``maximum_age``.
"""

import socket
import struct

import attr
from twisted.internet.defer import maybeDeferred
from zope.interface import implementer

from ._agent import INodeAgent
from ._logging import (
    DOCKER_EVENTS_CONNECTED, DOCKER_EVENTS_LOST, REPORT_INVALIDATED,
    REPORT_KEPT,
)

__all__ = ["ReportKeeper", "KeptReportAgent", "kept_reports",
           "netlink_listening_ports", "proc_listening_ports",
           "parse_proc_net_tcp", "parse_diag",
           "DEFAULT_MAXIMUM_AGE", "FOLLOW_RETRY", "FOLLOW_RETRY_MAXIMUM"]

#: Seconds a kept report is used at most, for changes nothing announces.
DEFAULT_MAXIMUM_AGE = 30.0

#: Seconds before the first attempt to follow Docker's events again; each
#: failed attempt doubles it, up to :data:`FOLLOW_RETRY_MAXIMUM`.
FOLLOW_RETRY = 1.0

#: The longest wait between two attempts (a daemon down for long is not
#: asked, nor logged about, every second).
FOLLOW_RETRY_MAXIMUM = 30.0

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


# Linux's sock_diag netlink interface (what ss(8) uses): asked for the
# listening TCP sockets of this network namespace only, it answers in a
# fraction of a millisecond, where /proc/net/tcp walks every socket of the
# machine (milliseconds on a busy host).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")


def _diag_request(family):
    """
    :return: The netlink message asking for ``family``'s listening TCP
        sockets (an ``inet_diag_req_v2`` with a zero socket id).
    """
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0,
                          1 << _TCP_LISTEN) + bytes(48)
    return _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY,
                        _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + request


def parse_diag(data):
    """
    :param bytes data: Netlink messages answering :func:`_diag_request`.
    :return: ``(ports, done)``: the source ports of the ``inet_diag_msg``
        messages, and whether the dump's end (``NLMSG_DONE``) came.
    :raises OSError: For a netlink error message.
    """
    ports = set()
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind = _HEADER.unpack_from(data, offset)[:2]
        if kind == _NLMSG_DONE:
            return ports, True
        if kind == _NLMSG_ERROR or length < _HEADER.size:
            raise OSError("sock_diag refused the request")
        # inet_diag_msg: family, state, timer, retransmits, then the
        # socket id, whose first field is the source port (big-endian).
        (port,) = struct.unpack_from(">H", data, offset + _HEADER.size + 4)
        ports.add(port)
        offset += (length + 3) & ~3
    return ports, False


def netlink_listening_ports():
    """
    The TCP ports listened on in this process's network namespace, as
    ``ss -l -t`` lists them, asked of the kernel without starting a
    process; read from ``/proc/net/tcp*`` where sock_diag is unavailable.

    :return: ``set`` of ``int``.
    """
    try:
        ports = set()
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                           _NETLINK_SOCK_DIAG) as channel:
            channel.settimeout(5)
            for family in (socket.AF_INET, socket.AF_INET6):
                channel.sendto(_diag_request(family), (0, 0))
                done = False
                while not done:
                    found, done = parse_diag(channel.recv(1 << 16))
                    ports |= found
        return ports
    except (OSError, AttributeError):
        return proc_listening_ports()


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
        :param float retry: Seconds before the first attempt to follow the
            events again after a loss (doubled after each failed attempt).
        """
        self.clock = clock
        self.maximum_age = maximum_age
        self.generation = 0
        self.following = False
        self._events = events
        self._read_stamp = read_stamp
        self._retry = retry
        self._delay = retry
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
        self._delay = self._retry

    def event(self, event):
        if _matters(event):
            self.invalidate("docker %s %s" % (event.get("Type"),
                                              event.get("Action")))

    def lost(self, reason):
        self.following = False
        self.invalidate("Docker's events are not followed")
        DOCKER_EVENTS_LOST.log(reason=reason)
        if not self._stopped:
            self._next = self.clock.callLater(self._delay, self._follow)
            self._delay = min(self._delay * 2, FOLLOW_RETRY_MAXIMUM)

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
            (:func:`netlink_listening_ports`), read for every answer; or
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
        :return: ``state`` with the ports other programs hold now, how
            far each standby is behind now (the replicator's figures, in
            memory, change with every round and with the clock), and the
            node key's status as its files say now.
        """
        replicator = getattr(self._agent, "replicator", None)
        if replicator is not None:
            state = attr.evolve(state, replication=replicator.status())
        node_keys = getattr(self._agent, "node_keys", None)
        if node_keys is not None:
            # Files an operator may change by hand (an authorized_keys line
            # removed): read again, a few small files.
            state = attr.evolve(state, node_key=node_keys.status())
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
