"""
Tests for :mod:`flocker.node._serve`: the node side of a session.
"""

import json

from eliot import add_destinations, log_message, remove_destination
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from flocker.node._protocol import decode_session_line, encode_request
from flocker.node._serve import SessionProtocol, TransferProgress


class _Calls(object):
    """
    A session's ``call`` that records its calls and answers them when told.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, argv, stdin, stdout, stderr, progress):
        answer = Deferred()
        self.calls.append((argv, stdin, stdout, stderr, answer, progress))
        return answer


class SessionProtocolTests(SynchronousTestCase):
    """
    Tests for :class:`SessionProtocol`.
    """

    def setUp(self):
        self.calls = _Calls()
        self.clock = Clock()
        self.protocol = SessionProtocol(self.calls, self.clock)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.addCleanup(self.protocol.connectionLost, None)

    def lines(self, kind=None):
        """
        :return: The JSON lines written so far: answers, or the
            contents of the lines of ``kind`` (``"eliot"``,
            ``"progress"``).
        """
        documents = [json.loads(line) for line in
                     self.transport.value().splitlines()]
        if kind is not None:
            return [d[kind] for d in documents if kind in d]
        return [d for d in documents
                if "eliot" not in d and "progress" not in d]

    def test_request_runs_call(self):
        """
        A request line runs one call with its arguments and standard input;
        its exit status and output come back as one answer with its id.
        """
        self.protocol.dataReceived(encode_request(7, ["report"], b"in"))
        argv, stdin, stdout, stderr, answer, _ = self.calls.calls[0]
        self.assertEqual((argv, stdin), (["report"], b"in"))
        stdout.write("out\n")
        stderr.write("err\n")
        answer.callback(0)
        self.assertEqual(self.lines(), [
            {"id": 7, "exit": 0, "stdout": "out\n", "stderr": "err\n"}])

    def test_concurrent_answers_in_completion_order(self):
        """
        Requests run at once; each is answered when it ends, in any order.
        """
        self.protocol.dataReceived(encode_request(1, ["a"]) +
                                   encode_request(2, ["b"]))
        self.assertEqual(len(self.calls.calls), 2)
        self.calls.calls[1][4].callback(0)
        self.calls.calls[0][4].callback(1)
        self.assertEqual([(d["id"], d["exit"]) for d in self.lines()],
                         [(2, 0), (1, 1)])

    def test_bad_line_answered(self):
        """
        A line that is not a request is answered with a null id and exit
        status 2, and the session goes on.
        """
        self.protocol.dataReceived(b"not json\n")
        self.protocol.dataReceived(encode_request(3, ["x"]))
        [answer] = self.lines()
        self.assertEqual((answer["id"], answer["exit"]), (None, 2))
        self.assertIn("not a request", answer["stderr"])
        self.assertEqual(len(self.calls.calls), 1)

    def test_over_nested_line_answered(self):
        """
        A line nested deeper than the JSON decoder goes is a protocol
        error answered like any bad line, and the session goes on.
        """
        self.protocol.dataReceived(b"[" * 100000 + b"\n")
        self.protocol.dataReceived(encode_request(3, ["x"]))
        [answer] = self.lines()
        self.assertEqual((answer["id"], answer["exit"]), (None, 2))
        self.assertIn("nested too deeply", answer["stderr"])
        self.assertEqual(len(self.calls.calls), 1)

    def test_crash_answered(self):
        """
        A call that fails with an unexpected error is answered with exit
        status 1 and the error as the last line of standard error.
        """
        self.protocol.dataReceived(encode_request(4, ["x"]))
        self.calls.calls[0][4].errback(ZeroDivisionError("oops"))
        [answer] = self.lines()
        self.assertEqual(answer["exit"], 1)
        self.assertEqual(answer["stderr"].splitlines()[-1],
                         "flocker-node: internal error: oops")

    def test_eliot_messages_sent(self):
        """
        eliot messages logged while the session runs go out as log lines.
        """
        log_message(message_type="flocker:test:serve", value=5)
        [message] = [m for m in self.lines("eliot")
                     if m.get("message_type") == "flocker:test:serve"]
        self.assertEqual(message["value"], 5)

    def test_end_of_input_waits(self):
        """
        At the end of input the session answers what runs, then closes its
        output and fires ``finished`` with 0.
        """
        self.protocol.dataReceived(encode_request(1, ["a"]))
        self.protocol.readConnectionLost()
        self.assertNoResult(self.protocol.finished)
        self.assertFalse(self.transport.disconnecting)
        self.calls.calls[0][4].callback(0)
        self.assertEqual(self.successResultOf(self.protocol.finished), 0)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual([d["id"] for d in self.lines()], [1])

    def test_no_logging_after_end(self):
        """
        Once the session has ended, eliot messages are no longer sent.
        """
        self.protocol.readConnectionLost()
        before = self.transport.value()
        log_message(message_type="flocker:test:serve", value=6)
        self.assertEqual(self.transport.value(), before)

    def test_client_gone_finishes_work(self):
        """
        If the output is gone, the running calls still finish before
        ``finished`` fires; their answers are dropped.
        """
        self.protocol.dataReceived(encode_request(1, ["a"]))
        self.protocol.writeConnectionLost()
        self.assertNoResult(self.protocol.finished)
        self.calls.calls[0][4].callback(0)
        self.assertEqual(self.successResultOf(self.protocol.finished), 0)

    def test_request_too_long(self):
        """
        A request longer than the limit is answered with exit status 2 and
        ends the session.
        """
        protocol = SessionProtocol(lambda *args: succeed(0), Clock())
        protocol.MAX_LENGTH = 10
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"x" * 20)
        answer = json.loads([line for line in transport.value().splitlines()
                             if b'"eliot"' not in line][0])
        self.assertEqual(answer["exit"], 2)
        self.assertEqual(self.successResultOf(protocol.finished), 0)

    def test_progress_lines(self):
        """
        A call's transfer progress goes out as progress lines with the
        request's id, the volume, the target and the figures, before its
        answer.
        """
        self.protocol.dataReceived(encode_request(5, ["push-volume"]))
        progress = self.calls.calls[0][5]("web", "10.0.0.2")
        progress.update(100, 1000)
        progress.finish()
        self.calls.calls[0][4].callback(0)
        documents = [json.loads(line) for line in
                     self.transport.value().splitlines()
                     if b'"eliot"' not in line]
        self.assertEqual(documents[:-1], [{"id": 5, "progress": {
            "volume": "web", "target": "10.0.0.2", "sent": 100,
            "total": 1000}}])
        self.assertEqual(documents[-1]["exit"], 0)

    def test_progress_not_logged(self):
        """
        Progress is not logged: no eliot message is written for it, here or
        to the session.
        """
        logged = []
        add_destinations(logged.append)
        self.addCleanup(remove_destination, logged.append)
        self.protocol.dataReceived(encode_request(5, ["push-volume"]))
        progress = self.calls.calls[0][5]("web", "10.0.0.2")
        for sent in range(0, 1000, 10):
            progress.update(sent, 1000)
        self.assertEqual((logged, self.lines("eliot")), ([], []))
        self.assertEqual(len(self.lines("progress")), 1)

    def test_progress_after_end_dropped(self):
        """
        Progress of a call still running when the session's output is gone
        is not written.
        """
        self.protocol.dataReceived(encode_request(5, ["push-volume"]))
        progress = self.calls.calls[0][5]("web", "10.0.0.2")
        self.protocol.writeConnectionLost()
        self.calls.calls[0][4].callback(0)
        before = self.transport.value()
        progress.update(10, None)
        self.assertEqual(self.transport.value(), before)


class TransferProgressTests(SynchronousTestCase):
    """
    Tests for :class:`TransferProgress`: at most one line per interval.
    """

    def setUp(self):
        self.clock = Clock()
        self.sent = []
        self.progress = TransferProgress(self.clock, self.sent.append, 9,
                                         "web", "10.0.0.2", interval=0.25)

    def figures(self):
        """
        :return: ``(sent, total)`` of each line sent so far.
        """
        return [decode_session_line(line.rstrip(b"\n"))[1][1:]
                for line in self.sent]

    def test_first_at_once(self):
        """
        The first figures go out at once, as a progress line of the request.
        """
        self.progress.update(10, 100)
        self.assertEqual([decode_session_line(line.rstrip(b"\n"))
                          for line in self.sent],
                         [("progress", (9, 10, 100))])

    def test_rate_limited(self):
        """
        Figures within the interval of the last line are held back; the
        first update after it sends the latest figures.
        """
        for sent in range(10, 60, 10):
            self.progress.update(sent, 100)
            self.clock.advance(0.05)
        self.assertEqual(self.figures(), [(10, 100)])
        self.clock.advance(0.05)
        self.progress.update(60, 100)
        self.assertEqual(self.figures(), [(10, 100), (60, 100)])

    def test_four_a_second(self):
        """
        A transfer reporting a hundred times a second sends four lines a
        second.
        """
        for _ in range(100):
            self.progress.update(1, None)
            self.clock.advance(0.01)
        self.assertEqual(len(self.sent), 4)

    def test_finish_sends_final(self):
        """
        ``finish`` sends the final figures if they were held back, and
        nothing if they went out already (also when called twice).
        """
        self.progress.update(10, 100)
        self.progress.update(100, 100)
        self.progress.finish()
        self.progress.finish()
        self.assertEqual(self.figures(), [(10, 100), (100, 100)])

    def test_finish_without_figures(self):
        """
        A transfer that reported nothing sends nothing at its end.
        """
        self.progress.finish()
        self.assertEqual(self.sent, [])


class DecodeSessionLineTests(SynchronousTestCase):
    """
    Tests for ``decode_session_line`` on progress lines and unknown lines.
    """

    def test_progress(self):
        """
        A progress line decodes to its request id, bytes sent and total
        (``None`` when unknown).
        """
        self.assertEqual(
            [decode_session_line(line) for line in [
                b'{"id":3,"progress":{"volume":"web","target":"b",'
                b'"sent":10,"total":100}}',
                b'{"id":3,"progress":{"volume":"web","target":"b",'
                b'"sent":10,"total":null}}']],
            [("progress", (3, 10, 100)), ("progress", (3, 10, None))])

    def test_malformed_progress_ignored(self):
        """
        A progress line without usable figures is not a line the client
        knows.
        """
        for line in [b'{"id":3,"progress":{"sent":-1,"total":null}}',
                     b'{"id":3,"progress":{"sent":"10","total":null}}',
                     b'{"id":3,"progress":{"sent":1,"total":true}}',
                     b'{"id":null,"progress":{"sent":1,"total":2}}',
                     b'{"id":3,"progress":[1,2]}']:
            self.assertEqual(decode_session_line(line), (None, None), line)

    def test_unknown_kind_ignored(self):
        """
        A line of a kind this version does not know (one a later node might
        send) decodes to nothing.
        """
        self.assertEqual(decode_session_line(
            b'{"id":3,"heartbeat":{"at":1}}'), (None, None))
