"""
Tests for :mod:`flocker.node._report_cache`: the agent's report kept
between requests, dropped by the agent's own operations, Docker's events,
the pool's change stamp and age; never kept while Docker's events are not
followed.
"""

import socket
import struct

import attr
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from flocker import Application, NodeState, Port
from flocker._model import (
    NodeKeyStatus, Replication, ReplicationStatus, StandbyStatus,
)
from flocker.node.testtools import make_public_key

from .._agent import INodeAgent
from .._events import FakeDockerEvents
from .._replication import Replicator
from .._report_cache import (
    KeptReportAgent, ReportKeeper, kept_reports, netlink_listening_ports,
    parse_diag, parse_proc_net_tcp, proc_listening_ports,
)

ADDRESS = "10.0.0.1"

WEB = Application(name="web", image="flocker/busybox:latest",
                  ports=[Port(internal=80, external=8080)])


class _CountingAgent(object):
    """
    An agent whose report is a given state, counting the reports it made;
    its other operations succeed (or wait, when given a ``Deferred``).

    :ivar reports: How many reports it made.
    :ivar calls: Names of the other operations called, in order.
    """

    def __init__(self, state):
        self.address = state.address
        self.state = state
        self.reports = 0
        self.calls = []
        self.pending = None

    def report(self):
        self.reports += 1
        if self.pending is not None:
            return self.pending
        return succeed(self.state)

    def logs(self, name, since=None, tail=None):
        self.calls.append("logs")
        return succeed([])

    def stop_application(self, name):
        self.calls.append("stop_application")
        self.state = NodeState(address=self.address)
        return succeed(None)

    def start_application(self, application):
        self.calls.append("start_application")
        if self.pending is not None:
            return self.pending
        return succeed(None)

    def future_operation(self, value):
        self.calls.append("future_operation")
        return succeed(value * 2)


class _Stamp(object):
    """
    A pool change stamp a test rewrites.
    """

    def __init__(self):
        self.value = "first"

    def __call__(self):
        return self.value


def _kept(state=None, listening=None, events=None):
    """
    :return: ``(KeptReportAgent, inner agent, keeper, events, stamp,
        clock)`` with the keeper started.
    """
    if state is None:
        state = NodeState(address=ADDRESS, applications={"web": WEB},
                          running=["web"], busy_ports=[22])
    inner = _CountingAgent(state)
    clock = Clock()
    events = FakeDockerEvents() if events is None else events
    stamp = _Stamp()
    keeper = ReportKeeper(clock, events, stamp, maximum_age=30.0, retry=1.0)
    keeper.start()
    agent = KeptReportAgent(inner, keeper, listening)
    return agent, inner, keeper, events, stamp, clock


class KeptReportAgentTests(SynchronousTestCase):
    """
    Tests for :class:`KeptReportAgent`.
    """

    def test_interface(self):
        """
        It provides ``INodeAgent`` (its other operations are the inner
        agent's).
        """
        agent = _kept()[0]
        self.assertTrue(verifyObject(INodeAgent, KeptReportAgent(
            _Full(), agent._keeper)))

    def test_second_report_kept(self):
        """
        A second report, nothing having changed, is the first one, made
        once.
        """
        agent, inner = _kept()[:2]
        first = self.successResultOf(agent.report())
        second = self.successResultOf(agent.report())
        self.assertEqual((first, second, inner.reports),
                         (inner.state, inner.state, 1))

    def test_own_operation_drops(self):
        """
        After one of the agent's own operations the report is made again,
        and shows what the operation did.
        """
        agent, inner = _kept()[:2]
        self.successResultOf(agent.report())
        self.successResultOf(agent.stop_application("web"))
        after = self.successResultOf(agent.report())
        self.assertEqual((after, inner.reports),
                         (NodeState(address=ADDRESS), 2))

    def test_reading_operation_keeps(self):
        """
        An operation that changes nothing (``logs``) keeps the report.
        """
        agent, inner = _kept()[:2]
        self.successResultOf(agent.report())
        self.successResultOf(agent.logs("web"))
        self.successResultOf(agent.report())
        self.assertEqual((inner.calls, inner.reports), (["logs"], 1))

    def test_unknown_operation_drops(self):
        """
        An operation this module does not know (added to the agent later)
        is the inner agent's, and counts as a change.
        """
        agent, inner = _kept()[:2]
        self.successResultOf(agent.report())
        self.assertEqual(4, self.successResultOf(agent.future_operation(2)))
        self.successResultOf(agent.report())
        self.assertEqual((inner.calls, inner.reports),
                         (["future_operation"], 2))

    def test_report_during_operation_not_kept(self):
        """
        Reports made while an operation runs are answered but not kept;
        the first one after it is made again, and kept.
        """
        agent, inner = _kept()[:2]
        inner.pending = Deferred()
        starting = agent.start_application(WEB)
        running, inner.pending = inner.pending, None
        self.successResultOf(agent.report())
        self.successResultOf(agent.report())
        running.callback(None)
        self.successResultOf(starting)
        self.successResultOf(agent.report())
        self.successResultOf(agent.report())
        self.assertEqual(3, inner.reports)

    def test_report_outlived_by_operation_not_kept(self):
        """
        A report still being made when an operation starts is not kept.
        """
        agent, inner = _kept()[:2]
        inner.pending = Deferred()
        making = agent.report()
        pending, inner.pending = inner.pending, None
        self.successResultOf(agent.stop_application("web"))
        pending.callback(inner.state)
        self.successResultOf(making)
        self.successResultOf(agent.report())
        self.assertEqual(2, inner.reports)

    def test_docker_event_drops(self):
        """
        A container event from Docker (one not made by the agent, say a
        ``docker stop`` typed on the node) drops the kept report.
        """
        agent, inner, _, events = _kept()[:4]
        self.successResultOf(agent.report())
        events.emit("container", "die", "flocker--web")
        self.successResultOf(agent.report())
        self.assertEqual(2, inner.reports)

    def test_quiet_events_keep(self):
        """
        Commands run inside a container and healthcheck verdicts (a
        healthcheck runs every few seconds) keep the report.
        """
        agent, inner, _, events = _kept()[:4]
        self.successResultOf(agent.report())
        events.emit("container", "exec_start: sh -c true", "flocker--web")
        events.emit("container", "exec_die", "flocker--web")
        events.emit("container", "health_status: healthy", "flocker--web")
        self.successResultOf(agent.report())
        self.assertEqual(1, inner.reports)

    def test_image_event_drops(self):
        """
        An image pulled or removed by someone else drops the report.
        """
        agent, inner, _, events = _kept()[:4]
        self.successResultOf(agent.report())
        events.emit("image", "delete", "flocker/redis:latest")
        self.successResultOf(agent.report())
        self.assertEqual(2, inner.reports)

    def test_stamp_drops(self):
        """
        A change of the pool's stamp (another node's push received by
        another process) drops the report.
        """
        agent, inner, _, _, stamp = _kept()[:5]
        self.successResultOf(agent.report())
        stamp.value = "second"
        self.successResultOf(agent.report())
        self.successResultOf(agent.report())
        self.assertEqual(2, inner.reports)

    def test_age_drops(self):
        """
        A report older than the keeper's maximum age is made again.
        """
        agent, inner, _, _, _, clock = _kept()
        self.successResultOf(agent.report())
        clock.advance(29.0)
        self.successResultOf(agent.report())
        clock.advance(1.0)
        self.successResultOf(agent.report())
        self.assertEqual(2, inner.reports)

    def test_not_following_never_kept(self):
        """
        While Docker's events cannot be followed, every report is made
        afresh.
        """
        agent, inner = _kept(events=FakeDockerEvents(available=False))[:2]
        for _ in range(3):
            self.successResultOf(agent.report())
        self.assertEqual(3, inner.reports)

    def test_lost_stream_then_followed_again(self):
        """
        Once the event stream is lost, nothing is kept; the keeper follows
        it again after its retry delay, and reports are kept again from
        then on.
        """
        agent, inner, keeper, events, _, clock = _kept()
        self.successResultOf(agent.report())
        events.drop()
        self.successResultOf(agent.report())
        self.successResultOf(agent.report())
        self.assertEqual((3, False), (inner.reports, keeper.following))
        clock.advance(1.0)
        self.successResultOf(agent.report())
        self.successResultOf(agent.report())
        self.assertEqual((4, True), (inner.reports, keeper.following))

    def test_retry_backs_off(self):
        """
        While Docker cannot be reached, each attempt to follow its events
        waits twice as long as the one before, up to 30 s; once followed
        again, the next loss is retried after the first delay again.
        """
        events = FakeDockerEvents(available=False)
        _, _, keeper, _, _, clock = _kept(events=events)
        delays = []
        for _ in range(7):
            delays.append(clock.getDelayedCalls()[0].getTime()
                          - clock.seconds())
            clock.advance(delays[-1])
        events.available = True
        clock.advance(clock.getDelayedCalls()[0].getTime() - clock.seconds())
        events.drop()
        delays.append(clock.getDelayedCalls()[0].getTime() - clock.seconds())
        self.assertEqual(delays, [1, 2, 4, 8, 16, 30, 30, 1])

    def test_stop(self):
        """
        A stopped keeper follows nothing, tries nothing again and keeps no
        report.
        """
        agent, inner, keeper, events, _, clock = _kept()
        keeper.stop()
        clock.advance(10)
        self.successResultOf(agent.report())
        self.successResultOf(agent.report())
        self.assertEqual((events.followers, inner.reports, clock.calls),
                         ([], 2, []))

    def test_busy_ports_fresh(self):
        """
        A kept report carries the ports other programs listen on now; the
        ports of Flocker's running applications are not among them.
        """
        listening = {22, 8080}
        agent, inner = _kept(listening=lambda: set(listening))[:2]
        self.successResultOf(agent.report())
        listening.add(5432)
        kept = self.successResultOf(agent.report())
        self.assertEqual((kept.busy_ports, inner.reports),
                         (frozenset([22, 5432]), 1))

    def test_replication_fresh(self):
        """
        A kept report carries how far the standbys are behind now, from the
        inner agent's replicator.
        """
        agent, inner, _, _, _, clock = _kept()
        inner.replicator = Replicator(clock, lambda: None)
        self.successResultOf(agent.report())
        replication = Replication(volume="web", application="web",
                                  standbys=["10.0.0.2"], interval=10 ** 9)
        inner.replicator.configure({"web": replication})
        kept = self.successResultOf(agent.report())
        self.assertEqual((kept.replication, inner.reports), (
            {"web": ReplicationStatus(replication=replication, standbys={
                "10.0.0.2": StandbyStatus(address="10.0.0.2")})}, 1))

    def test_node_key_fresh(self):
        """
        A kept report carries the node key's status as the inner agent's
        key store says now (an operator may remove an ``authorized_keys``
        line by hand: the next deploy must see it).
        """
        agent, inner = _kept()[:2]
        inner.node_keys = _Keys(NodeKeyStatus(public_key=make_public_key(),
                                              installed="digest"))
        self.successResultOf(agent.report())
        inner.node_keys.current = attr.evolve(inner.node_keys.current,
                                              installed=None)
        kept = self.successResultOf(agent.report())
        self.assertEqual((kept.node_key, inner.reports),
                         (inner.node_keys.current, 1))

    def test_kept_reports(self):
        """
        ``kept_reports`` wraps each agent a ``make_agent`` makes.
        """
        keeper = _kept()[2]
        make = kept_reports(
            lambda address: _CountingAgent(NodeState(address=address)),
            keeper)
        agent = make("10.0.0.2")
        self.assertEqual((type(agent), agent.address),
                         (KeptReportAgent, "10.0.0.2"))


class _Keys(object):
    """
    A node key store whose status is :attr:`current`.
    """

    def __init__(self, current):
        self.current = current

    def status(self):
        return self.current


class _Full(object):
    """
    Has every ``INodeAgent`` method, to check the wrapper's interface.
    """
    address = ADDRESS

    def __getattr__(self, name):
        return lambda *args, **kwargs: succeed(None)

    def report(self):
        return succeed(NodeState(address=ADDRESS))


class ParseProcNetTCPTests(SynchronousTestCase):
    """
    Tests for :func:`parse_proc_net_tcp`.
    """

    def test_listening_only(self):
        """
        The ports of sockets in state ``LISTEN`` (``0A``) are found, in
        IPv4 and IPv6 lines; connected sockets are left out.
        """
        text = (
            "  sl  local_address rem_address   st tx_queue rx_queue tr "
            "tm->when retrnsmt   uid  timeout inode\n"
            "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 "
            "00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n"
            "   1: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 "
            "00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n"
            "   2: 00000000000000000000000000000000:1538 "
            "00000000000000000000000000000000:0000 0A 00000000:00000000 "
            "00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n")
        self.assertEqual({22, 5432}, parse_proc_net_tcp(text))


def _diag_message(port):
    """
    :return: A netlink ``inet_diag_msg`` message for a socket on ``port``.
    """
    body = struct.pack("=BBBB", socket.AF_INET, 10, 0, 0) + struct.pack(
        ">HH", port, 0) + bytes(64)
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


class ParseDiagTests(SynchronousTestCase):
    """
    Tests for :func:`parse_diag`.
    """

    def test_ports_then_done(self):
        """
        Each message gives its socket's port; ``NLMSG_DONE`` ends the dump.
        """
        done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + bytes(4)
        self.assertEqual(
            (parse_diag(_diag_message(22) + _diag_message(8080)),
             parse_diag(_diag_message(5432) + done)),
            (({22, 8080}, False), ({5432}, True)))

    def test_error(self):
        """
        A netlink error message is an ``OSError``.
        """
        error = struct.pack("=IHHII", 36, 2, 0, 1, 0) + bytes(20)
        self.assertRaises(OSError, parse_diag, error)


class NetlinkListeningPortsTests(SynchronousTestCase):
    """
    Tests for :func:`netlink_listening_ports` against this machine's kernel.
    """

    def test_own_listener(self):
        """
        A socket this test listens on is found, as ``/proc/net/tcp`` lists
        it too.
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        self.assertEqual(
            (port in netlink_listening_ports(),
             port in proc_listening_ports()),
            (True, True))
