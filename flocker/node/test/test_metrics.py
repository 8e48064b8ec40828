"""
Tests for ``flocker.node._metrics``: the agent's Prometheus page, served on
127.0.0.1 only.
"""

from twisted.internet.task import Clock
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Replication, ReplicationStatus, StandbyStatus,
)
from flocker.node._metrics import (
    CONTENT_TYPE, MetricsFactory, listen_metrics, render_metrics,
)
from flocker.node._replication import Replicator
from flocker.volume import MemoryNetwork, MemoryVolumeService

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"

STATUSES = {"web": ReplicationStatus(
    replication=Replication(volume="web", application="web",
                            standbys=[B, C], interval=2 * 10 ** 9),
    standbys={B: StandbyStatus(address=B, snapshot="s", lag=1.25,
                               bytes_sent=4096),
              C: StandbyStatus(address=C, error="cannot reach node")})}


class RenderMetricsTests(SynchronousTestCase):
    """
    ``render_metrics``: the text exposition format.
    """

    def test_samples(self):
        """
        Each metric has its help and type lines and one sample per volume
        and standby; a standby with no copy yet lags ``+Inf``.
        """
        self.assertEqual(render_metrics(STATUSES).decode("utf-8").splitlines(), [
            "# HELP flocker_replication_lag_seconds Seconds of writes a "
            "standby's copy of a volume lacks (since the newest snapshot it "
            "confirmed was taken).",
            "# TYPE flocker_replication_lag_seconds gauge",
            'flocker_replication_lag_seconds{application="web",volume="web",'
            'standby="10.0.0.2"} 1.25',
            'flocker_replication_lag_seconds{application="web",volume="web",'
            'standby="10.0.0.3"} +Inf',
            "# HELP flocker_replication_sent_bytes_total Bytes of a volume "
            "sent to a standby since the agent started.",
            "# TYPE flocker_replication_sent_bytes_total counter",
            'flocker_replication_sent_bytes_total{application="web",'
            'volume="web",standby="10.0.0.2"} 4096',
            'flocker_replication_sent_bytes_total{application="web",'
            'volume="web",standby="10.0.0.3"} 0',
            "# HELP flocker_replication_last_attempt_ok 1 when the last "
            "update of a standby succeeded (or none was tried yet), 0 when "
            "it failed.",
            "# TYPE flocker_replication_last_attempt_ok gauge",
            'flocker_replication_last_attempt_ok{application="web",'
            'volume="web",standby="10.0.0.2"} 1',
            'flocker_replication_last_attempt_ok{application="web",'
            'volume="web",standby="10.0.0.3"} 0',
            "# HELP flocker_replication_interval_seconds Seconds between two "
            "snapshots of a replicated volume.",
            "# TYPE flocker_replication_interval_seconds gauge",
            'flocker_replication_interval_seconds{application="web",'
            'volume="web",standby="10.0.0.2"} 2.0',
            'flocker_replication_interval_seconds{application="web",'
            'volume="web",standby="10.0.0.3"} 2.0'])

    def test_nothing_replicated(self):
        """
        With nothing replicated the page has only help and type lines.
        """
        lines = render_metrics({}).decode("utf-8").splitlines()
        self.assertEqual(len(lines), 8)
        self.assertTrue(all(line.startswith("# ") for line in lines))


class MetricsFactoryTests(SynchronousTestCase):
    """
    ``MetricsFactory`` and ``listen_metrics``.
    """

    def setUp(self):
        self.clock = Clock()
        network = MemoryNetwork()
        self.primary = MemoryVolumeService("node-a", A, network, self.clock)
        MemoryVolumeService("node-b", B, network, self.clock)
        self.primary.create("web")
        self.replicator = Replicator(self.clock, lambda: self.primary)

    def test_page(self):
        """
        ``GET`` answers the replicator's current figures in the text
        format's content type.
        """
        self.replicator.configure({"web": Replication(
            volume="web", application="web", standbys=[B],
            interval=2 * 10 ** 9)})
        self.clock.advance(0)
        self.clock.advance(2)
        self.clock.advance(1)
        head, body = self.ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(head.split(b"\r\n")[0], b"HTTP/1.1 200 OK")
        self.assertIn(b"\r\ncontent-type: " + CONTENT_TYPE, head.lower())
        self.assertIn(b"\r\ncontent-length: %d" % (len(body),), head.lower())
        self.assertIn(b'flocker_replication_lag_seconds{application="web",'
                      b'volume="web",standby="10.0.0.2"} 1.0\n', body)

    def ask(self, request):
        """
        :param bytes request: An HTTP request.
        :return: ``(head, body)`` of what the metrics server answers.
        """
        factory = MetricsFactory(self.clock, self.replicator)
        channel = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(request)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        channel.connectionLost(None)
        return head, body

    def test_head(self):
        """
        ``HEAD`` answers the headers alone.
        """
        head, body = self.ask(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((head.split(b"\r\n")[0], body),
                         (b"HTTP/1.1 200 OK", b""))

    def test_other_methods(self):
        """
        Other methods are not allowed, and change nothing.
        """
        head, body = self.ask(b"POST / HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 0\r\n\r\n")
        self.assertEqual(head.split(b"\r\n")[0],
                         b"HTTP/1.1 405 Method Not Allowed")
        self.assertIn(b"\r\nallow: get, head", head.lower())

    def test_loopback_only(self):
        """
        The page is served on 127.0.0.1, on the given port.
        """
        reactor = MemoryReactorClock()
        listen_metrics(reactor, 9570, self.replicator)
        [(port, factory, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (9570, "127.0.0.1"))
