"""
The agent's metrics, in the Prometheus text exposition format (version
0.0.4), served over HTTP on 127.0.0.1 only: a scraper on the node itself
(or one reaching it through an SSH tunnel) reads them; nothing on the
network can.

Metrics (one sample per replicated volume and standby node, labelled
``application``, ``volume`` and ``standby``):

``flocker_replication_lag_seconds`` (gauge)
    Seconds of writes the standby's copy lacks: the time since the newest
    snapshot it confirmed was taken; ``+Inf`` while it has none.
``flocker_replication_sent_bytes_total`` (counter)
    Bytes sent to the standby since the agent started.
``flocker_replication_last_attempt_ok`` (gauge)
    1 when the last attempt to update the standby succeeded (or none was
    made yet), 0 when it failed.
``flocker_replication_interval_seconds`` (gauge)
    The interval the volume is replicated at.
"""

from twisted.web.http import NOT_ALLOWED, HTTPFactory, Request

from ._logging import METRICS_LISTENING

__all__ = ["render_metrics", "MetricsFactory", "listen_metrics",
           "DEFAULT_METRICS_PORT", "METRICS_INTERFACE"]

#: The TCP port the agent serves its metrics on by default.
DEFAULT_METRICS_PORT = 9570

#: The only address the metrics are served on.
METRICS_INTERFACE = "127.0.0.1"

#: Prometheus' text format, as its scrapers ask for it.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_METRICS = (
    ("flocker_replication_lag_seconds", "gauge",
     "Seconds of writes a standby's copy of a volume lacks (since the "
     "newest snapshot it confirmed was taken).",
     lambda replication, figures: (
         "+Inf" if figures.lag is None else repr(float(figures.lag)))),
    ("flocker_replication_sent_bytes_total", "counter",
     "Bytes of a volume sent to a standby since the agent started.",
     lambda replication, figures: str(figures.bytes_sent)),
    ("flocker_replication_last_attempt_ok", "gauge",
     "1 when the last update of a standby succeeded (or none was tried "
     "yet), 0 when it failed.",
     lambda replication, figures: "0" if figures.error else "1"),
    ("flocker_replication_interval_seconds", "gauge",
     "Seconds between two snapshots of a replicated volume.",
     lambda replication, figures: repr(replication.seconds)),
)


def _label(value):
    # The format's three escapes.
    return (value.replace("\\", "\\\\").replace("\n", "\\n")
            .replace('"', '\\"'))


def render_metrics(statuses):
    """
    :param statuses: ``PMap`` of volume name to
        :class:`~flocker._model.ReplicationStatus` (what
        :meth:`~flocker.node._replication.Replicator.status` gives).
    :return: The metrics page (``bytes``): for each metric its ``# HELP``
        and ``# TYPE`` lines, then one sample per volume and standby, in
        name order.
    """
    lines = []
    for name, kind, help_text, value in _METRICS:
        lines.append("# HELP %s %s" % (name, help_text))
        lines.append("# TYPE %s %s" % (name, kind))
        for volume in sorted(statuses):
            status = statuses[volume]
            replication = status.replication
            for standby in sorted(status.standbys):
                figures = status.standbys[standby]
                lines.append('%s{application="%s",volume="%s",standby="%s"} '
                             '%s' % (name, _label(replication.application),
                                     _label(volume), _label(standby),
                                     value(replication, figures)))
    return ("\n".join(lines) + "\n").encode("utf-8")


class _MetricsRequest(Request):
    """
    One request for the metrics page: ``GET`` (or ``HEAD``) of any path
    answers :func:`render_metrics` of the replicator's current status;
    other methods are not allowed.
    """

    def __init__(self, replicator, *args, **kwargs):
        Request.__init__(self, *args, **kwargs)
        self._replicator = replicator

    def process(self):
        if self.method not in (b"GET", b"HEAD"):
            self.setResponseCode(NOT_ALLOWED)
            self.setHeader(b"allow", b"GET, HEAD")
            self.finish()
            return
        body = render_metrics(self._replicator.status())
        self.setHeader(b"content-type", CONTENT_TYPE)
        self.setHeader(b"content-length", b"%d" % (len(body),))
        if self.method == b"GET":
            self.write(body)
        self.finish()


class MetricsFactory(HTTPFactory):
    """
    The metrics page's HTTP server.  It is built on ``twisted.web.http``
    alone: ``twisted.web.server`` would bring resources, sessions and
    Perspective Broker into every agent for one page (about 0.9 MB).
    """

    def __init__(self, reactor, replicator):
        """
        :param reactor: ``IReactorTime`` provider (request time-outs).
        :param replicator: The agent's
            :class:`~flocker.node._replication.Replicator`.
        """
        HTTPFactory.__init__(self, reactor=reactor)
        self._replicator = replicator

    def buildProtocol(self, addr):
        channel = HTTPFactory.buildProtocol(self, addr)
        channel.requestFactory = lambda *args, **kwargs: _MetricsRequest(
            self._replicator, *args, **kwargs)
        return channel

    def log(self, request):
        # Requests are not logged: a scraper asks every few seconds.
        pass


def listen_metrics(reactor, port, replicator):
    """
    Serve the metrics on ``127.0.0.1:port``.

    :param reactor: ``IReactorTCP`` provider.
    :param int port: The TCP port.
    :param replicator: The agent's ``Replicator``.
    :return: The listening port (``IListeningPort``).
    """
    listening = reactor.listenTCP(port, MetricsFactory(reactor, replicator),
                                  interface=METRICS_INTERFACE)
    METRICS_LISTENING.log(port=listening.getHost().port)
    return listening
