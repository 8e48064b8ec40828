"""
:class:`EtcdClient`: an :class:`IEtcd` speaking to etcd's v3 JSON gateway
(``POST /v3/...`` on each member's client URL) with treq.

The gateway is etcd's gRPC API in JSON: keys and values travel base64
encoded, 64-bit integers as decimal strings, fields equal to their default
(0, false, empty) are left out, and errors come back as
``{"error", "message", "code"}`` with a gRPC status code.  Streaming calls
(``/v3/watch``) answer with one JSON object per line.

Every request has a deadline; a member that does not answer in time is
skipped for the next one, so a cluster answers as long as one reachable
member has a majority behind it.  A watch lives on one member's connection:
while it runs, that member is asked a quorum read every
:data:`WATCH_CHECK_EVERY` seconds, and the watch is lost (to be set up
again elsewhere) when the member does not answer: a member whose machine
lost power never closes its connections, and one cut from its majority
delivers no events.
"""

import json
from base64 import b64decode, b64encode

from eliot.twisted import DeferredContext
from treq import collect
from treq.client import HTTPClient
from twisted.internet.defer import (
    CancelledError, Deferred, TimeoutError, inlineCallbacks,
)
from twisted.internet.error import (
    ConnectError, ConnectingCancelledError, ConnectionLost,
)
from twisted.internet.protocol import Protocol
from twisted.web.client import (
    Agent, HTTPConnectionPool, RequestTransmissionFailed, ResponseDone,
    ResponseFailed,
)
from twisted.web.http import PotentialDataLoss
from pyrsistent import pvector
from zope.interface import implementer

from .._lines import LineBuffer
from ._interface import (
    Delete, EtcdError, EtcdUnavailable, Event, IEtcd, IWatch, KeyValue,
    Lease, LeaseExpired, Put, TransactionResult, WatchLost, _comparisons,
    _operations, prefix_end,
)
from ._logging import (
    ETCD_ENDPOINT_FAILED, ETCD_REQUEST, ETCD_WATCH, ETCD_WATCH_EVENTS,
)

__all__ = ["EtcdClient", "DEFAULT_TIMEOUT", "MAXIMUM_RESPONSE_BYTES",
           "WATCH_CHECK_EVERY"]

#: Seconds a member has to answer one request.  Short: a lease holder must
#: learn that etcd is out of reach well within a lease's time to live.
DEFAULT_TIMEOUT = 2.0

#: Seconds between two checks that a watch's member still answers (with
#: the request deadline, how long a watch may sit on a dead member).
WATCH_CHECK_EVERY = 3.0

#: The largest answer (or one watch message) read from etcd: Flocker's keys
#: are a few hundred bytes each, so anything near this is not etcd talking.
MAXIMUM_RESPONSE_BYTES = 4 * 1024 * 1024

#: gRPC's NOT_FOUND status code: etcd's answer for a lease that is gone.
_NOT_FOUND = 5

#: gRPC codes meaning "try again elsewhere or later": UNAVAILABLE,
#: DEADLINE_EXCEEDED (a member without a leader answers with these).
_UNAVAILABLE = (14, 4)

#: Failures meaning an endpoint did not answer (as opposed to refusing).
#: A connection attempt that the deadline cut (a member whose machine is
#: off or cut off) fails with ``ConnectingCancelledError``; a TLS handshake
#: that failed (a certificate refused either way), with
#: ``RequestTransmissionFailed``.
_UNREACHABLE = (ConnectError, ConnectingCancelledError, TimeoutError,
                CancelledError, ResponseFailed, RequestTransmissionFailed,
                ConnectionLost)


def _b64(data):
    return b64encode(data).decode("ascii")


def _unb64(text):
    return b64decode(text or "")


def _kv(document):
    """
    :param dict document: A ``mvccpb.KeyValue`` in the gateway's JSON.
    :return: The :class:`KeyValue`.
    """
    return KeyValue(key=_unb64(document["key"]),
                    value=_unb64(document.get("value")),
                    version=int(document.get("version", 0)),
                    mod_revision=int(document.get("mod_revision", 0)),
                    lease=int(document.get("lease", 0)))


def _revision(document):
    return int(document.get("header", {}).get("revision", 0))


def _operation(operation):
    """
    :return: A transaction operation in the gateway's JSON.
    """
    if isinstance(operation, Put):
        request = {"key": _b64(operation.key), "value": _b64(operation.value)}
        if operation.lease:
            request["lease"] = str(operation.lease)
        return {"request_put": request}
    if not isinstance(operation, Delete):
        raise TypeError("not a transaction operation: %r" % (operation,))
    return {"request_delete_range": {"key": _b64(operation.key)}}


def _comparison(comparison):
    """
    :return: A transaction comparison in the gateway's JSON.
    """
    if comparison.target == "version":
        return {"key": _b64(comparison.key), "target": "VERSION",
                "result": "EQUAL", "version": str(comparison.value)}
    return {"key": _b64(comparison.key), "target": "VALUE",
            "result": "EQUAL", "value": _b64(comparison.value)}


def _refusal(document, lease=None):
    """
    :param dict document: An error answer of the gateway.
    :param lease: The lease the request named, if any.
    :return: The exception it means.
    """
    code = int(document.get("code", 2))
    message = str(document.get("message") or document.get("error") or
                  "no message")
    if code == _NOT_FOUND and lease is not None and "lease" in message:
        return LeaseExpired(lease)
    if code in _UNAVAILABLE:
        return EtcdUnavailable(message)
    return EtcdError(code, message)


class _Limited(object):
    """
    A body collector refusing more than ``maximum`` bytes.
    """

    def __init__(self, maximum):
        self.maximum = maximum
        self.parts = []
        self.size = 0

    def __call__(self, data):
        self.size += len(data)
        if self.size > self.maximum:
            raise EtcdError(2, "answer over %d bytes" % (self.maximum,))
        self.parts.append(data)


@implementer(IWatch)
class _WatchProtocol(Protocol):
    """
    Reads one ``/v3/watch`` answer: a JSON object per line.

    :ivar created: ``Deferred`` firing with this watch when etcd confirmed
        it, or failing if the stream ends first.
    :ivar done: See :attr:`IWatch.done`.
    """

    def __init__(self, on_event, maximum):
        self._on_event = on_event
        self._buffer = LineBuffer(maximum)
        self._stopped = False
        self._lost = None
        self.created = Deferred()
        self.done = Deferred()
        # The newest revision of the prefix the reader has been given (or
        # knew of when it set the watch up): what a check compares with.
        self.revision = 0

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data):
        if self._stopped or self._lost is not None:
            return
        lines, too_long = self._buffer.feed(data)
        for line in lines:
            if self._stopped or self._lost is not None:
                return
            self._line(line)
        if too_long:
            self.lose(WatchLost("a watch message over the size limit"))

    def _line(self, line):
        if not line.strip():
            return
        try:
            message = json.loads(line)
            result = message.get("result")
        except (ValueError, AttributeError):
            self.lose(WatchLost("etcd sent something that is not JSON"))
            return
        if result is None:
            self.lose(_refusal(message.get("error") or message))
            return
        if result.get("canceled"):
            self.lose(WatchLost("etcd cancelled the watch: %s" % (
                result.get("cancel_reason") or "compacted to revision %s"
                % (result.get("compact_revision"),),)))
            return
        if result.get("created") and not self.created.called:
            self.created.callback(self)
        events = result.get("events") or []
        if events:
            ETCD_WATCH_EVENTS.log(revision=_revision(result),
                                  count=len(events))
        for event in events:
            if self._stopped:
                return
            self.revision = max(self.revision, int(
                event.get("kv", {}).get("mod_revision", 0)))
            self._on_event(Event(
                type="delete" if event.get("type") == "DELETE" else "put",
                kv=_kv(event["kv"])))

    def lose(self, reason):
        """
        End the watch: ``done`` fails with ``reason`` once the connection
        is dropped.

        :param Exception reason: Why.
        """
        if self._lost is not None:
            return
        self._lost = reason
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if self._stopped and self._lost is None:
            outcome = None
        elif self._lost is not None:
            outcome = self._lost
        elif reason.check(ResponseDone, PotentialDataLoss):
            outcome = WatchLost("etcd ended the watch")
        else:
            outcome = WatchLost("connection lost: %s" % (
                reason.getErrorMessage(),))
        if not self.created.called:
            self.created.errback(outcome or WatchLost("stopped"))
            # Whoever would consume ``done`` never got the watch.
            self.done.addErrback(lambda _: None)
        if outcome is None:
            self.done.callback(None)
        else:
            self.done.errback(outcome)


@implementer(IEtcd)
class EtcdClient(object):
    """
    A client of one etcd cluster through its members' client URLs.
    """

    def __init__(self, reactor, endpoints, timeout=DEFAULT_TIMEOUT,
                 http=None, tls=None):
        """
        :param reactor: The reactor (``IReactorTCPCore`` and
            ``IReactorTime``).
        :param endpoints: Non-empty sequence of client URLs
            (``"http://10.0.0.1:2379"``, ``"https://..."``), the nearest
            first.
        :param float timeout: Seconds each member has to answer.
        :param http: A ``treq.client.HTTPClient`` to use, or ``None`` for
            one without persistent connections (a connection kept across a
            partition would only time out later).
        :param tls: An :class:`~flocker.etcd.EtcdTLS` for ``https`` URLs
            (the CA to check members against, the client certificate to
            present), or ``None`` for the system's authorities and no client
            certificate.
        :raises ValueError: Without endpoints.
        :raises EtcdConfigError: If ``tls``'s files cannot be used.
        """
        endpoints = [e.rstrip("/") for e in endpoints]
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self._reactor = reactor
        self._endpoints = endpoints
        self._preferred = 0
        self._timeout = timeout
        if http is None:
            options = {}
            if tls is not None:
                options["contextFactory"] = tls.policy()
            http = HTTPClient(Agent(
                reactor, pool=HTTPConnectionPool(reactor, persistent=False),
                **options))
        self._http = http

    def _order(self):
        """
        :return: Endpoint indices, the last one that answered first.
        """
        count = len(self._endpoints)
        return [(self._preferred + i) % count for i in range(count)]

    def _request(self, path, body, lease=None):
        """
        POST ``body`` to ``path`` on the first member that answers.

        :return: ``Deferred`` firing with the answer's JSON object.
        """
        action = ETCD_REQUEST(path=path)
        with action.context():
            d = DeferredContext(self._first_answer(path, body, lease, action))
            return d.addActionFinish()

    @inlineCallbacks
    def _first_answer(self, path, body, lease, action):
        data = json.dumps(body).encode("ascii")
        last = "no endpoint"
        for index in self._order():
            endpoint = self._endpoints[index]
            try:
                status, document = yield self._post(endpoint + path, data)
            except _UNREACHABLE as e:
                last = "%s: %s" % (endpoint, str(e) or type(e).__name__)
                ETCD_ENDPOINT_FAILED.log(endpoint=endpoint, reason=last)
                continue
            if status != 200:
                error = _refusal(document, lease)
                if isinstance(error, EtcdUnavailable):
                    last = "%s: %s" % (endpoint, error)
                    ETCD_ENDPOINT_FAILED.log(endpoint=endpoint, reason=last)
                    continue
                raise error
            self._preferred = index
            action.add_success_fields(endpoint=endpoint)
            return document
        raise EtcdUnavailable("no etcd member answered (%s)" % (last,))

    @inlineCallbacks
    def _post(self, url, data):
        """
        :return: ``Deferred`` firing with ``(status, JSON object)``.
        """
        collector = _Limited(MAXIMUM_RESPONSE_BYTES)

        def read(response):
            d = collect(response, collector)
            return d.addCallback(lambda _: response.code)
        d = self._http.post(url, data=data, headers={
            b"Content-Type": [b"application/json"]})
        d.addCallback(read)
        d.addTimeout(self._timeout, self._reactor)
        status = yield d
        try:
            document = json.loads(b"".join(collector.parts))
        except ValueError:
            raise EtcdError(2, "answer is not JSON (HTTP %d)" % (status,))
        if not isinstance(document, dict):
            raise EtcdError(2, "answer is not a JSON object")
        return (status, document)

    # Leases -----------------------------------------------------------------

    def grant(self, ttl):
        if ttl < 1:
            raise ValueError("a lease lives at least 1 s, not %r" % (ttl,))
        d = self._request("/v3/lease/grant", {"TTL": str(int(ttl))})
        return d.addCallback(lambda document: Lease(
            id=int(document["ID"]), ttl=int(document["TTL"])))

    def keep_alive(self, lease):
        d = self._request("/v3/lease/keepalive", {"ID": str(lease)},
                          lease=lease)

        def renewed(document):
            # A stream of one answer; a lease that is gone comes back
            # without a time to live.
            ttl = int(document.get("result", {}).get("TTL", 0))
            if ttl <= 0:
                raise LeaseExpired(lease)
            return ttl
        return d.addCallback(renewed)

    def revoke(self, lease):
        d = self._request("/v3/lease/revoke", {"ID": str(lease)},
                          lease=lease)
        d.addCallback(lambda _: None)
        d.addErrback(lambda f: f.trap(LeaseExpired) and None)
        return d

    # Keys -------------------------------------------------------------------

    def get(self, key):
        d = self._request("/v3/kv/range", {"key": _b64(key)})
        return d.addCallback(lambda document: _kv(document["kvs"][0])
                             if document.get("kvs") else None)

    def get_prefix(self, prefix):
        d = self._request("/v3/kv/range", {
            "key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        return d.addCallback(lambda document: (
            _revision(document),
            pvector(_kv(kv) for kv in document.get("kvs", []))))

    def put(self, key, value, lease=0):
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        d = self._request("/v3/kv/put", body, lease=lease or None)
        return d.addCallback(_revision)

    def transaction(self, compare, success, failure=()):
        compare = _comparisons(compare)
        success = _operations(success)
        failure = _operations(failure)
        leases = [op.lease for op in list(success) + list(failure)
                  if isinstance(op, Put) and op.lease]
        d = self._request("/v3/kv/txn", {
            "compare": [_comparison(c) for c in compare],
            "success": [_operation(o) for o in success],
            "failure": [_operation(o) for o in failure],
        }, lease=leases[0] if leases else None)
        return d.addCallback(lambda document: TransactionResult(
            succeeded=bool(document.get("succeeded", False)),
            revision=_revision(document)))

    # Watches ----------------------------------------------------------------

    def watch_prefix(self, prefix, start_revision, on_event):
        action = ETCD_WATCH(
            prefix=prefix.decode("utf-8", "backslashreplace"),
            revision=start_revision)
        with action.context():
            return self._watch(prefix, start_revision, on_event, action)

    @inlineCallbacks
    def _watch(self, prefix, start_revision, on_event, action):
        body = json.dumps({"create_request": {
            "key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
            "start_revision": str(start_revision)}}).encode("ascii")
        last = "no endpoint"
        for index in self._order():
            endpoint = self._endpoints[index]
            watch = _WatchProtocol(on_event, MAXIMUM_RESPONSE_BYTES)
            watch.revision = start_revision - 1
            # Unbuffered: treq otherwise keeps a copy of the whole body,
            # every event of a watch that lasts for the agent's life.
            d = self._http.post(endpoint + "/v3/watch", data=body, headers={
                b"Content-Type": [b"application/json"]}, unbuffered=True)

            def started(response, watch=watch):
                if response.code != 200:
                    raise EtcdUnavailable("HTTP %d" % (response.code,))
                response.deliverBody(watch)
                return watch.created
            d.addCallback(started)
            # Until etcd confirms the watch; then it lasts as long as needed.
            d.addTimeout(self._timeout, self._reactor)
            try:
                yield d
            except _UNREACHABLE + (EtcdUnavailable, WatchLost) as e:
                watch.stop()
                watch.done.addErrback(lambda _: None)
                last = "%s: %s" % (endpoint, str(e) or type(e).__name__)
                ETCD_ENDPOINT_FAILED.log(endpoint=endpoint, reason=last)
                continue
            self._preferred = index
            watch.done.addBoth(_finish, action)
            self._check_watch(watch, endpoint, prefix)
            return watch
        error = EtcdUnavailable("no etcd member answered (%s)" % (last,))
        action.finish(error)
        raise error


    def _check_watch(self, watch, endpoint, prefix):
        """
        Ask ``endpoint`` a quorum read every :data:`WATCH_CHECK_EVERY`
        seconds while ``watch`` runs: the newest revision of the prefix.
        Lose the watch when the member does not answer (it died or lost
        its majority: no event would come), or when a revision one check
        saw has still not come through the watch at the next (a watch
        stream that went quiet, as one set up on a cut-off member was
        seen to after the cut healed).
        """
        body = json.dumps({"key": _b64(prefix),
                           "range_end": _b64(prefix_end(prefix)),
                           "sort_order": "DESCEND", "sort_target": "MOD",
                           "limit": "1", "keys_only": True}).encode("ascii")
        pending = []
        seen = [0]

        def check():
            pending[:] = []
            d = self._post(endpoint + "/v3/kv/range", body)
            d.addCallbacks(answered, failed)

        def answered(result):
            status, document = result
            if status != 200 and isinstance(_refusal(document),
                                             EtcdUnavailable):
                # It answers, without a majority for now (a new leader is
                # being elected): set the watch up again, here or
                # elsewhere.
                return lose(str(_refusal(document)), reachable=True)
            if watch.revision < seen[0]:
                # Set up again from the reader's own revision, the watch
                # brings what this one never did.
                return lose("revision %d of the prefix never came through "
                            "the watch" % (seen[0],), reachable=True)
            if status == 200:
                kvs = document.get("kvs") or [{}]
                seen[0] = int(kvs[0].get("mod_revision", 0))
            schedule()

        def failed(failure):
            if failure.check(*_UNREACHABLE):
                return lose(failure.getErrorMessage() or
                            failure.type.__name__, reachable=False)
            # Any other answer (a garbled one) still comes from a live
            # member; the watch itself says when it ends.
            schedule()

        def lose(reason, reachable):
            if not watch.done.called:
                reason = "%s: %s" % (endpoint, reason)
                ETCD_ENDPOINT_FAILED.log(endpoint=endpoint, reason=reason)
                if (not reachable and
                        self._endpoints[self._preferred] == endpoint):
                    # Do not wait for it first again.
                    self._preferred = (self._preferred + 1) % len(
                        self._endpoints)
                watch.lose(WatchLost(
                    "etcd member stopped answering (%s)" % (reason,)))

        def schedule():
            if not watch.done.called:
                pending.append(self._reactor.callLater(WATCH_CHECK_EVERY,
                                                       check))

        def ended(result):
            for call in pending:
                if call.active():
                    call.cancel()
            return result
        watch.done.addBoth(ended)
        schedule()


def _finish(result, action):
    """
    End ``action`` as ``result`` (a watch's outcome) says, passing it on.
    """
    action.finish(result.value if hasattr(result, "value") and
                  isinstance(result.value, Exception) else None)
    return result
