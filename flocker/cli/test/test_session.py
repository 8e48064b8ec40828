"""
Tests for :mod:`flocker.cli._session`: ``flocker-node`` calls through one
session per node, against the real node side (:func:`node_main` serving a
session) over in-memory agents.
"""


from eliot import add_destinations, remove_destination
from eliot.testing import capture_logging
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from flocker._model import Application, Port
from flocker.node._fake import FakeCluster
from flocker.node.testtools import MemoryNodeSession, RecordingProgress

from .._remote import NodeStepFailed, RemoteNodeAgent
from .. import _session
from .._session import SessionRunner
from .._ssh import (
    CommandExit, ICommandRunner, MemoryCommandRunner, NodeUnreachable,
    RemoteCommandFailed,
)

A, B = "10.0.0.1", "10.0.0.2"
WEB = Application(name="web", image="flocker/busybox:latest",
                  ports=[Port(internal=80, external=8080)])


class SessionRunnerTests(SynchronousTestCase):
    """
    Tests for :class:`SessionRunner`.
    """

    def setUp(self):
        self.cluster = FakeCluster([A, B])
        self.memory = MemoryCommandRunner()
        self.processes = []

        def serve(argv, received, address):
            process = MemoryNodeSession(argv, received,
                                  self.cluster.agents[address])
            self.processes.append(process)
            return process
        for address in (A, B):
            self.memory.add_stream_handler(
                address, ["flocker-node"],
                lambda argv, received, address=address: serve(
                    argv, received, address))
        self.logged = []
        self.clock = Clock()
        self.runner = SessionRunner(self.memory, self.clock,
                                    log=self.logged.append)
        self.addCleanup(self.runner.close_sessions)

    def agent(self, address):
        """
        :return: A ``RemoteNodeAgent`` for ``address`` over the runner.
        """
        return RemoteNodeAgent(self.runner, address)

    def test_interface(self):
        """
        The runner provides ``ICommandRunner``.
        """
        self.assertTrue(verifyObject(ICommandRunner, self.runner))

    def test_calls_share_one_session(self):
        """
        Every call to a node goes through one ``flocker-node serve``
        process; each node has its own.
        """
        agent = self.agent(A)
        self.successResultOf(agent.start_application(WEB))
        state = self.successResultOf(agent.report())
        self.successResultOf(self.agent(B).report())
        self.assertEqual(set(state.running), {"web"})
        self.assertEqual(self.memory.started, [
            (A, ["flocker-node", "--protocol", "1", "serve"]),
            (B, ["flocker-node", "--protocol", "1", "serve"])])
        self.assertEqual(self.memory.calls, [])

    def test_other_commands_run_directly(self):
        """
        A command that is not ``flocker-node`` runs through the runner
        underneath.
        """
        self.memory.add_handler(A, ["true"], lambda argv, stdin: b"")
        self.assertEqual(self.successResultOf(self.runner.run(A, ["true"])),
                         b"")
        self.assertEqual(self.memory.calls, [(A, ["true"], b"")])

    def test_failure_names_step(self):
        """
        A call the node refuses fails with its exit status and error line,
        shown with the node and the step.
        """
        self.cluster.failures.add((A, "stop_application"))
        failure = self.failureResultOf(
            self.agent(A).stop_application("web"), NodeStepFailed)
        self.assertIsInstance(failure.value.cause, RemoteCommandFailed)
        self.assertEqual(failure.value.cause.exit_code, 1)
        self.assertIn("was told to fail", str(failure.value))
        self.assertTrue(str(failure.value).startswith(
            "%s: stop-application web: " % (A,)))

    def test_node_logs_handed_on(self):
        """
        The node's eliot messages, continuing the caller's task, reach the
        ``log`` callable.
        """
        self.successResultOf(self.agent(A).report())
        continued = [m for m in self.logged
                     if m.get("action_type") == "eliot:remote_task"]
        self.assertEqual([m["action_status"] for m in continued],
                         ["started", "succeeded"])
        # Continuing a task places the node's messages below the caller's.
        self.assertGreater(len(continued[0]["task_level"]), 1)

    def test_environment_not_logged(self):
        """
        Starting an application through a session leaves its environment
        values out of every log message, the client's and the node's.
        """
        secret = Application(name="db", image="flocker/busybox:latest",
                             environment={"DB_PASSWORD": "hunter2-secret"})
        client = []
        add_destinations(client.append)
        try:
            self.successResultOf(self.agent(A).start_application(secret))
        finally:
            remove_destination(client.append)
        self.assertTrue(client and self.logged)
        self.assertNotIn("hunter2-secret", repr(client) + repr(self.logged))

    def test_close_sessions(self):
        """
        ``close_sessions`` ends each session's input and fires once they
        have ended; a later call starts a new session.
        """
        self.successResultOf(self.agent(A).report())
        self.successResultOf(self.runner.close_sessions())
        self.assertTrue(self.processes[0].ended.called)
        self.successResultOf(self.agent(A).report())
        self.assertEqual(len(self.memory.started), 2)

    def test_close_timeout(self):
        """
        A session that does not end within the close timeout is given up
        on, and ``close`` still closes the runner underneath.
        """
        stuck = _Stuck()
        self.memory.add_stream_handler(
            A, ["flocker-node"], lambda argv, received: stuck)
        calling = self.runner.run(A, ["flocker-node", "report"])
        closing = self.runner.close()
        self.assertNoResult(closing)
        self.clock.advance(30)
        self.successResultOf(closing)
        self.assertEqual(self.memory.closed, 1)
        self.assertNoResult(calling)

    def test_session_ends_early(self):
        """
        Calls pending when a session ends fail with its exit status and
        standard error; the next call starts a new session.
        """
        stucks = []

        def start(argv, received):
            stucks.append(_Stuck())
            return stucks[-1]
        self.memory.add_stream_handler(A, ["flocker-node"], start)
        calling = self.runner.run(A, ["flocker-node", "report"])
        stucks[0].ended.callback((1, None, b"flocker-node: boom\n"))
        failure = self.failureResultOf(calling, RemoteCommandFailed)
        self.assertEqual((failure.value.exit_code, failure.value.error_line()),
                         (1, "flocker-node: boom"))
        self.runner.run(A, ["flocker-node", "report"])
        self.assertEqual(len(self.memory.started), 2)

    def test_call_from_failure_gets_new_session(self):
        """
        A call made by the errback of a call the ending session failed (a
        deploy releasing its locks after a step failed) goes to a new
        session, and is answered: it neither joins the dead session nor
        waits forever.
        """
        stucks = []

        def start(argv, received):
            stucks.append(_Stuck())
            return stucks[-1]
        self.memory.add_stream_handler(A, ["flocker-node"], start)
        followed = []

        def follow(reason):
            followed.append(self.runner.run(A, ["flocker-node", "report"]))
        self.runner.run(A, ["flocker-node", "report"]).addErrback(follow)
        stucks[0].ended.callback((None, "KILL", b""))
        [following] = followed
        self.assertEqual(len(stucks), 2)
        stucks[1].ended.callback((1, None, b"flocker-node: second\n"))
        failure = self.failureResultOf(following, RemoteCommandFailed)
        self.assertEqual(failure.value.error_line(), "flocker-node: second")

    def test_connection_lost(self):
        """
        Calls pending when the connection is lost fail with
        ``NodeUnreachable``.
        """
        stuck = _Stuck()
        self.memory.add_stream_handler(
            A, ["flocker-node"], lambda argv, received: stuck)
        calling = self.runner.run(A, ["flocker-node", "report"])
        stuck.ended.errback(NodeUnreachable(A, "connection lost"))
        self.failureResultOf(calling, NodeUnreachable)

    def test_unreachable(self):
        """
        A node that cannot be reached fails the call with
        ``NodeUnreachable``.
        """
        self.memory.unreachable[A] = "connection refused"
        self.failureResultOf(self.runner.run(A, ["flocker-node", "report"]),
                             NodeUnreachable)

    def test_no_sessions_single_calls(self):
        """
        A node whose ``flocker-node`` has no ``serve`` (it exits with a
        usage error before answering) gets single calls from then on.
        """
        def old_node(argv, received):
            stuck = _Stuck()
            stuck.ended.callback((2, None, b"flocker-node: unknown command"))
            return stuck
        self.memory.add_stream_handler(A, ["flocker-node"], old_node)
        self.memory.add_handler(A, ["flocker-node"],
                                lambda argv, stdin: b"single\n")
        self.assertEqual(self.successResultOf(
            self.runner.run(A, ["flocker-node", "report"])), b"single\n")
        self.assertEqual(self.successResultOf(
            self.runner.run(A, ["flocker-node", "report"])), b"single\n")
        self.assertEqual(len(self.memory.started), 1)
        self.assertEqual(len(self.memory.calls), 2)

    def test_start_refused(self):
        """
        A session whose command cannot start at all fails its calls with
        that error.
        """
        def missing(argv, received):
            raise CommandExit(127, b"sh: flocker-node: not found\n")
        self.memory.add_stream_handler(A, ["flocker-node"], missing)
        failure = self.failureResultOf(
            self.runner.run(A, ["flocker-node", "report"]))
        self.assertEqual(failure.value.exit_code, 127)


class SessionProgressTests(SynchronousTestCase):
    """
    Tests for the progress lines of :class:`SessionRunner`'s sessions.
    """

    def setUp(self):
        self.memory = MemoryCommandRunner()
        self.clock = Clock()
        self.runner = SessionRunner(self.memory, self.clock)
        self.addCleanup(self.runner.close_sessions)

    def test_transfer_progress_delivered(self):
        """
        A push through a session tells its progress object the figures of
        the node's (rate-limited) progress lines as they arrive, and
        finishes it with the answer.
        """
        cluster = FakeCluster([A, B], clock=self.clock, bytes_per_second=100)
        self.memory.add_stream_handler(
            A, ["flocker-node"], lambda argv, received: MemoryNodeSession(
                argv, received, cluster.agents[A], send_log=False,
                clock=self.clock))
        cluster.agents[A].create_volume("web", None)
        cluster.agents[A].write("web", "x" * 100)
        progress = RecordingProgress()
        pushed = RemoteNodeAgent(self.runner, A).push_volume(
            "web", B, progress=progress)
        self.clock.pump([0.1] * 4)
        self.assertEqual((progress.updates, progress.finished),
                         ([(0, 100), (30, 100)], False))
        self.clock.pump([0.1] * 6)
        self.assertEqual(self.successResultOf(pushed), 100)
        self.assertEqual(progress.updates,
                         [(0, 100), (30, 100), (60, 100), (90, 100),
                          (100, 100)])
        self.assertTrue(progress.finished)

    def test_lines_matched_to_calls(self):
        """
        Progress lines reach the callable of the call they name; those of
        calls that asked for none, of unknown calls, malformed ones and
        lines of unknown kinds are ignored, and the answers still arrive.
        """
        outputs = []

        def start(argv, received):
            outputs.append(received)
            return _Stuck()
        self.memory.add_stream_handler(A, ["flocker-node"], start)
        told = []
        first = self.runner.run(A, ["flocker-node", "push-volume"],
                                progress=lambda *args: told.append(args))
        second = self.runner.run(A, ["flocker-node", "report"])
        [received] = outputs
        received(b'{"id":1,"heartbeat":{}}\n'
                 b'{"id":2,"progress":{"sent":5,"total":null}}\n'
                 b'{"id":9,"progress":{"sent":6,"total":null}}\n'
                 b'{"id":1,"progress":{"sent":"7","total":null}}\n'
                 b'{"id":1,"progress":{"volume":"web","target":"b",'
                 b'"sent":8,"total":80}}\n'
                 b'{"id":1,"exit":0,"stdout":"one","stderr":""}\n'
                 b'{"id":2,"exit":0,"stdout":"two","stderr":""}\n')
        self.assertEqual(told, [(8, 80)])
        self.assertEqual((self.successResultOf(first),
                          self.successResultOf(second)), (b"one", b"two"))

    @capture_logging(None)
    def test_broken_progress_contained(self, logger):
        """
        A progress callable that raises does not cost the session the lines
        after it: the answer still arrives, and the error is logged.
        """
        outputs = []

        def start(argv, received):
            outputs.append(received)
            return _Stuck()
        self.memory.add_stream_handler(A, ["flocker-node"], start)

        def broken(sent, total):
            raise ZeroDivisionError(sent)
        calling = self.runner.run(A, ["flocker-node", "push-volume"],
                                  progress=broken)
        outputs[0](b'{"id":1,"progress":{"sent":8,"total":80}}\n'
                   b'{"id":1,"exit":0,"stdout":"one","stderr":""}\n')
        self.assertEqual(self.successResultOf(calling), b"one")
        self.assertEqual(len(logger.flush_tracebacks(ZeroDivisionError)), 1)


class SessionLineTests(SynchronousTestCase):
    """
    A node's session output is cut into lines in linear time, and a line
    over the limit drops the session.
    """

    def setUp(self):
        self.ended = []
        self.session = _session._Session(A, ["flocker-node", "serve"], None,
                                         self.ended.append)
        self.running = _Stuck()
        self.session.opened(self.running)

    def test_answer_in_pieces(self):
        """
        An answer arriving a byte at a time is delivered once whole.
        """
        calling = self.session.call(["flocker-node", "report"], b"")
        for byte in b'{"id":1,"exit":0,"stdout":"one","stderr":""}\n':
            self.session.received(bytes([byte]))
        self.assertEqual(self.successResultOf(calling), b"one")

    def test_line_too_long(self):
        """
        A line longer than ``MAXIMUM_LINE`` (no newline yet) fails the
        pending calls with one ``NodeUnreachable`` line naming the node,
        ends the session and closes its input; later output is ignored.
        """
        self.patch(_session, "MAXIMUM_LINE", 100)
        self.setUp()
        calling = self.session.call(["flocker-node", "report"], b"")
        for _ in range(3):
            self.session.received(b"x" * 40)
        failure = self.failureResultOf(calling, NodeUnreachable)
        self.assertEqual(str(failure.value), "%s: unreachable: it sent a "
                         "line longer than 100 bytes; its session was "
                         "dropped" % (A,))
        self.assertEqual((self.ended, self.running.input_closed,
                          self.session.over), ([self.session], True, True))
        self.session.received(b"\n")


class _Stuck(object):
    """
    A started command that answers nothing and ends only when told.
    """

    def __init__(self):
        self.ended = Deferred()
        self.written = []
        self.input_closed = False

    def write(self, data):
        self.written.append(data)

    def close_input(self):
        self.input_closed = True
