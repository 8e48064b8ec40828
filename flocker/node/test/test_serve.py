"""
Tests for :mod:`flocker.node._serve`: the node side of a session.
"""

import json

from eliot import log_message
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from flocker.node._protocol import encode_request
from flocker.node._serve import SessionProtocol


class _Calls(object):
    """
    A session's ``call`` that records its calls and answers them when told.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, argv, stdin, stdout, stderr):
        answer = Deferred()
        self.calls.append((argv, stdin, stdout, stderr, answer))
        return answer


class SessionProtocolTests(SynchronousTestCase):
    """
    Tests for :class:`SessionProtocol`.
    """

    def setUp(self):
        self.calls = _Calls()
        self.protocol = SessionProtocol(self.calls)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.addCleanup(self.protocol.connectionLost, None)

    def lines(self, kind=None):
        """
        :return: The JSON lines written so far (answers only, unless
            ``kind`` is ``"eliot"``).
        """
        documents = [json.loads(line) for line in
                     self.transport.value().splitlines()]
        if kind == "eliot":
            return [d["eliot"] for d in documents if "eliot" in d]
        return [d for d in documents if "eliot" not in d]

    def test_request_runs_call(self):
        """
        A request line runs one call with its arguments and standard input;
        its exit status and output come back as one answer with its id.
        """
        self.protocol.dataReceived(encode_request(7, ["report"], b"in"))
        argv, stdin, stdout, stderr, answer = self.calls.calls[0]
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
        protocol = SessionProtocol(lambda *args: succeed(0))
        protocol.MAX_LENGTH = 10
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"x" * 20)
        answer = json.loads([line for line in transport.value().splitlines()
                             if b'"eliot"' not in line][0])
        self.assertEqual(answer["exit"], 2)
        self.assertEqual(self.successResultOf(protocol.finished), 0)
