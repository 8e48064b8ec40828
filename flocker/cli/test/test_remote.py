"""
Tests for :mod:`flocker.cli._remote`: the flocker-node protocol as
:class:`RemoteNodeAgent` speaks it, with :class:`MemoryCommandRunner`, and
end to end over a real sshd with a stand-in ``flocker-node``.
"""

import io
import json
import stat
import sys

import pytest
from eliot import Action
from eliot.testing import LoggedAction, assertHasAction, capture_logging
from hypothesis import given, settings
from pyrsistent import pset
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from flocker._model import (
    Application, AttachedVolume, Link, NodeState, Port, Route, VolumeState,
)
from flocker._serialize import (
    SerializationError, application_to_dict, dumps, node_state_to_dict,
)
from flocker.node._agent import INodeAgent, VolumeRelease
from flocker.node.script import node_main
from flocker.node.test.test_agent import (
    A as NODE_A, B as NODE_B, local_pair, make_inodeagent_tests,
)
from flocker.testtools import node_states, run_in_reactor

from .._logging import REMOTE_CALL
from .._remote import (
    ACQUIRE_VOLUME, ADDRESS_OPTION, CREATE_VOLUME, HANDOFF_VOLUME,
    MAXIMUM_SIZE_OPTION, RELEASE_VOLUME,
    PROTOCOL_OPTION, PROTOCOL_VERSION, PUSH_VOLUME, REPORT, SET_ROUTES,
    START_APPLICATION, STOP_APPLICATION, SUBCOMMANDS, NodeStepFailed,
    RemoteNodeAgent, decode_application, decode_bytes_sent, decode_report,
    decode_routes, encode_application, encode_bytes_sent, encode_routes,
)
from .._ssh import (
    ELIOT_TASK_OPTION, CommandExit, HostKeyError, KnownHosts,
    MemoryCommandRunner, SSHCommandRunner,
)
from ._sshd import running_sshd

ADDRESS = "10.0.0.1"

APPLICATION = Application(
    name="web", image="lab/busybox:latest",
    command=["httpd", "-f", "-p", "80"],
    environment={"QUOTED": "it's \"x\"; rm -rf / && $(id)",
                 "UNICODE": "ünï ☃", "NEWLINE": "a\nb"},
    ports=[Port(internal=80, external=8080)],
    volume=AttachedVolume(mountpoint="/data", maximum_size=1024 ** 3),
    links=[Link(local_port=5432, remote_port=5432, alias="db")],
    mem_limit=64 * 1024 * 1024, cpu_shares=512)

STATE = NodeState(
    address=ADDRESS, applications={"web": APPLICATION}, running=["web"],
    volumes={"web": VolumeState(name="web", owned=True, size=4096,
                                snapshots=["s1", "s2"])},
    routes=[Route(port=5432, address="10.0.0.2")],
    links={"web": pset(APPLICATION.links)})


def _subcommand(argv):
    """
    :return: ``(task id, global options, subcommand and arguments)`` of a
        ``flocker-node`` argument vector.
    """
    assert argv[1] == ELIOT_TASK_OPTION
    return argv[2], argv[3:7], argv[7:]


class ProtocolDocumentTests(SynchronousTestCase):
    """
    Tests for the protocol's JSON documents.
    """

    def test_application_round_trip(self):
        """
        An application document decodes to the same application.
        """
        self.assertEqual(decode_application(encode_application(APPLICATION)),
                         APPLICATION)

    def test_application_canonical(self):
        """
        The application document is canonical JSON of
        ``application_to_dict``.
        """
        self.assertEqual(encode_application(APPLICATION),
                         dumps(application_to_dict(APPLICATION)).encode())

    def test_routes(self):
        """
        A route table is ``{"routes": [...]}`` sorted by port then address,
        and decodes to the same set.
        """
        routes = pset([Route(port=9000, address="10.0.0.3"),
                       Route(port=80, address="10.0.0.2")])
        data = encode_routes(routes)
        self.assertEqual(json.loads(data), {"routes": [
            {"port": 80, "address": "10.0.0.2"},
            {"port": 9000, "address": "10.0.0.3"}]})
        self.assertEqual(decode_routes(data), routes)

    def test_empty_routes(self):
        """
        An empty table removes all routes.
        """
        self.assertEqual(json.loads(encode_routes([])), {"routes": []})
        self.assertEqual(decode_routes(encode_routes([])), pset())

    def test_bad_routes(self):
        """
        Anything but a route table is refused.
        """
        for data in [b"[]", b'{"routes": 3}', b"nope",
                     b'{"routes": [{"port": 0, "address": "x"}]}']:
            self.assertRaises(SerializationError, decode_routes, data)

    def test_bytes_sent(self):
        """
        Push and hand-off results are ``{"bytes": N}``.
        """
        self.assertEqual(encode_bytes_sent(12), b'{"bytes":12}')
        self.assertEqual(decode_bytes_sent(b'{"bytes": 12}'), 12)

    def test_bad_bytes_sent(self):
        """
        Negative, non-integer or missing counts are refused.
        """
        for data in [b'{"bytes": -1}', b'{"bytes": 1.5}', b'{"bytes": true}',
                     b"{}", b"12", b""]:
            self.assertRaises(SerializationError, decode_bytes_sent, data)

    @settings(max_examples=50)
    @given(node_states())
    def test_report_round_trip(self, state):
        """
        Any node state survives the report document.
        """
        data = json.dumps(node_state_to_dict(state)).encode("utf-8")
        self.assertEqual(decode_report(data, state.address), state)

    def test_report_address_replaced(self):
        """
        The report's address is replaced by the one the client reached.
        """
        data = json.dumps(node_state_to_dict(STATE)).encode("utf-8")
        self.assertEqual(decode_report(data, "node1.example").address,
                         "node1.example")

    def test_bad_report(self):
        """
        A report that is not a node state is refused.
        """
        for data in [b"[]", b"{}", b"garbage"]:
            self.assertRaises(SerializationError, decode_report, data, ADDRESS)


class RemoteNodeAgentTests(SynchronousTestCase):
    """
    Tests for :class:`RemoteNodeAgent` with :class:`MemoryCommandRunner`.
    """

    def setUp(self):
        self.runner = MemoryCommandRunner()
        self.agent = RemoteNodeAgent(self.runner, ADDRESS)
        self.handlers = {}

    def answer(self, subcommand, stdout=b"", exit_code=0, stderr=b""):
        """
        Make ``flocker-node`` answer ``subcommand``.
        """
        def handler(argv, stdin):
            if exit_code:
                raise CommandExit(exit_code, stderr)
            return stdout
        self.runner.add_handler(ADDRESS, ["flocker-node"], self.dispatch)
        self.handlers[subcommand] = handler

    def dispatch(self, argv, stdin):
        task, options, rest = _subcommand(argv)
        return self.handlers[rest[0]](argv, stdin)

    def last_call(self):
        address, argv, stdin = self.runner.calls[-1]
        task, options, rest = _subcommand(argv)
        self.assertEqual(address, ADDRESS)
        self.assertEqual(options, [PROTOCOL_OPTION, str(PROTOCOL_VERSION),
                                   ADDRESS_OPTION, ADDRESS])
        return rest, stdin

    def test_interface(self):
        """
        :class:`RemoteNodeAgent` provides ``INodeAgent``.
        """
        self.assertTrue(verifyObject(INodeAgent, self.agent))

    def test_subcommands(self):
        """
        The protocol has exactly one subcommand per ``INodeAgent`` method.
        """
        self.assertEqual(len(SUBCOMMANDS), len(list(INodeAgent.names())))

    def test_report(self):
        """
        ``report()`` runs ``report`` and decodes the node state.
        """
        self.answer(REPORT, json.dumps(node_state_to_dict(STATE)).encode())
        state = self.successResultOf(self.agent.report())
        self.assertEqual(state, STATE)
        self.assertEqual(self.last_call(), ([REPORT], b""))

    def test_start_application(self):
        """
        ``start_application`` sends the application document on stdin.
        """
        self.answer(START_APPLICATION)
        self.assertIsNone(self.successResultOf(
            self.agent.start_application(APPLICATION)))
        rest, stdin = self.last_call()
        self.assertEqual(rest, [START_APPLICATION])
        self.assertEqual(decode_application(stdin), APPLICATION)

    def test_stop_application(self):
        """
        ``stop_application`` names the application.
        """
        self.answer(STOP_APPLICATION, b"anything")
        self.assertIsNone(self.successResultOf(
            self.agent.stop_application("web")))
        self.assertEqual(self.last_call(), ([STOP_APPLICATION, "web"], b""))

    def test_create_volume(self):
        """
        ``create_volume`` names the volume, with a quota when there is one.
        """
        self.answer(CREATE_VOLUME)
        self.successResultOf(self.agent.create_volume("web", None))
        self.assertEqual(self.last_call(), ([CREATE_VOLUME, "web"], b""))
        self.successResultOf(self.agent.create_volume("web", 1048576))
        self.assertEqual(self.last_call(), (
            [CREATE_VOLUME, "web", MAXIMUM_SIZE_OPTION, "1048576"], b""))

    def test_progress_single_call(self):
        """
        A transfer given a progress object over a runner without sessions
        tells it no figures and finishes it when the call ends, failed or
        not.
        """
        finished = []

        class Progress(object):
            def update(self, sent, total):
                raise AssertionError("a single call has no progress")

            def finish(self):
                finished.append(True)
        self.answer(PUSH_VOLUME, b'{"bytes":5}\n')
        self.answer(HANDOFF_VOLUME, exit_code=1, stderr=b"refused\n")
        self.successResultOf(self.agent.push_volume("web", "10.0.0.2",
                                                    progress=Progress()))
        self.failureResultOf(self.agent.handoff_volume(
            "web", "10.0.0.2", progress=Progress()), NodeStepFailed)
        self.assertEqual(finished, [True, True])

    def test_push_volume(self):
        """
        ``push_volume`` names volume and target and returns the bytes sent.
        """
        self.answer(PUSH_VOLUME, b'{"bytes":1048576}\n')
        self.assertEqual(self.successResultOf(
            self.agent.push_volume("web", "10.0.0.2")), 1048576)
        self.assertEqual(self.last_call(),
                         ([PUSH_VOLUME, "web", "10.0.0.2"], b""))

    def test_handoff_volume(self):
        """
        ``handoff_volume`` names volume and target and returns the bytes
        sent.
        """
        self.answer(HANDOFF_VOLUME, b'{"bytes":0}')
        self.assertEqual(self.successResultOf(
            self.agent.handoff_volume("web", "10.0.0.2")), 0)
        self.assertEqual(self.last_call(),
                         ([HANDOFF_VOLUME, "web", "10.0.0.2"], b""))

    def test_release_volume(self):
        """
        ``release_volume`` names volume and target and returns the release
        the node printed.
        """
        self.answer(RELEASE_VOLUME,
                    b'{"bytes":5,"node_id":"n2","snapshot":"s1"}')
        self.assertEqual(
            self.successResultOf(self.agent.release_volume("web", "10.0.0.2")),
            VolumeRelease(bytes_sent=5, snapshot="s1", node_id="n2"))
        self.assertEqual(self.last_call(),
                         ([RELEASE_VOLUME, "web", "10.0.0.2"], b""))

    def test_release_volume_bad_output(self):
        """
        A release without its snapshot is a failed step naming the
        unexpected output.
        """
        self.answer(RELEASE_VOLUME, b'{"bytes":5}')
        failure = self.failureResultOf(
            self.agent.release_volume("web", "10.0.0.2"), NodeStepFailed)
        self.assertIn("unexpected output", str(failure.value))

    def test_acquire_volume(self):
        """
        ``acquire_volume`` names volume, snapshot and node id.
        """
        self.answer(ACQUIRE_VOLUME)
        self.successResultOf(self.agent.acquire_volume("web", "s1", "n2"))
        self.assertEqual(self.last_call(),
                         ([ACQUIRE_VOLUME, "web", "s1", "n2"], b""))

    def test_set_routes(self):
        """
        ``set_routes`` sends the route table on stdin.
        """
        self.answer(SET_ROUTES)
        routes = pset([Route(port=8080, address="10.0.0.2")])
        self.successResultOf(self.agent.set_routes(routes))
        rest, stdin = self.last_call()
        self.assertEqual(rest, [SET_ROUTES])
        self.assertEqual(decode_routes(stdin), routes)

    def test_command(self):
        """
        Another program path can be used for ``flocker-node``.
        """
        agent = RemoteNodeAgent(self.runner, ADDRESS,
                                command="/opt/flocker/bin/flocker-node")
        self.runner.add_handler(None, ["/opt/flocker/bin/flocker-node"],
                                lambda argv, stdin: b"")
        self.successResultOf(agent.stop_application("web"))
        self.assertEqual(self.runner.calls[-1][1][0],
                         "/opt/flocker/bin/flocker-node")

    def test_remote_error(self):
        """
        A failing step is one line: node, step, and the last line of the
        remote standard error (an operation that failed, exit status 1, says
        no more).
        """
        self.answer(START_APPLICATION, exit_code=1,
                    stderr=b"Traceback...\nimage lab/nope not found\n")
        error = self.failureResultOf(
            self.agent.start_application(APPLICATION), NodeStepFailed).value
        self.assertEqual(
            str(error),
            "10.0.0.1: start-application web: image lab/nope not found")
        self.assertFalse(error.unreachable)
        self.assertEqual(error.cause.exit_code, 1)

    def test_node_prefix_dropped(self):
        """
        ``flocker-node``'s own ``flocker-node SUBCOMMAND:`` prefix is left
        out: node and step already say it.
        """
        self.answer(START_APPLICATION, exit_code=1,
                    stderr=b"flocker-node start-application: could not start "
                    b"container flocker--web (Docker said: x, HTTP 500)\n")
        error = self.failureResultOf(
            self.agent.start_application(APPLICATION), NodeStepFailed).value
        self.assertEqual(
            str(error),
            "10.0.0.1: start-application web: could not start container "
            "flocker--web (Docker said: x, HTTP 500)")

    def test_no_error_output(self):
        """
        A failure without error output still says how the command ended.
        """
        self.answer(STOP_APPLICATION, exit_code=4)
        error = self.failureResultOf(
            self.agent.stop_application("web"), NodeStepFailed).value
        self.assertEqual(str(error), "10.0.0.1: stop-application web: "
                         "no error output (exit status 4)")

    def test_missing_program(self):
        """
        ``flocker-node`` missing on the node is said so.
        """
        error = self.failureResultOf(self.agent.report(), NodeStepFailed).value
        self.assertEqual(
            str(error),
            "10.0.0.1: report: flocker-node was not found on the node (is "
            "Flocker installed and on the remote PATH?): sh: 1: flocker-node: "
            "not found")

    def test_permission_denied(self):
        """
        A ``flocker-node`` that cannot be executed is said so.
        """
        self.answer(REPORT, exit_code=126,
                    stderr=b"bash: /usr/bin/flocker-node: Permission denied\n")
        error = self.failureResultOf(self.agent.report(), NodeStepFailed).value
        self.assertIn("flocker-node cannot be executed on the node: bash: "
                      "/usr/bin/flocker-node: Permission denied", str(error))

    def test_protocol_mismatch(self):
        """
        A node speaking another protocol version gives its message.
        """
        self.answer(REPORT, exit_code=3, stderr=(
            b"flocker-node 2.0 speaks protocol 2; the client speaks 1\n"))
        error = self.failureResultOf(self.agent.report(), NodeStepFailed).value
        self.assertIn("speaks protocol 2; the client speaks 1 (exit status "
                      "3)", str(error))

    def test_unreachable(self):
        """
        An unreachable node fails the step as unreachable.
        """
        self.runner.unreachable[ADDRESS] = "connection refused on port 22"
        error = self.failureResultOf(self.agent.report(), NodeStepFailed).value
        self.assertEqual(str(error), "10.0.0.1: report: unreachable: "
                         "connection refused on port 22")
        self.assertTrue(error.unreachable)

    def test_host_key_error(self):
        """
        A host key refusal fails the step with the fingerprint.
        """
        self.runner.add_handler(ADDRESS, ["flocker-node"], lambda a, s: (
            _raise(HostKeyError(ADDRESS, "ssh-ed25519 SHA256:abc",
                                "the host is not in kh"))))
        error = self.failureResultOf(self.agent.report(), NodeStepFailed).value
        self.assertEqual(str(error), "10.0.0.1: report: host key "
                         "verification failed: the host is not in kh (key "
                         "presented: ssh-ed25519 SHA256:abc)")
        self.assertTrue(error.unreachable)

    def test_bad_output(self):
        """
        Output that is not the expected document fails the step.
        """
        self.answer(PUSH_VOLUME, b"12 bytes")
        error = self.failureResultOf(
            self.agent.push_volume("web", "10.0.0.2"), NodeStepFailed).value
        self.assertIn("10.0.0.1: push-volume web to 10.0.0.2: unexpected "
                      "output from flocker-node push-volume", str(error))
        self.assertNotIn("\n", str(error))

    def test_pending(self):
        """
        The agent's Deferred fires only when the remote command finishes.
        """
        answer = Deferred()
        self.runner.add_handler(ADDRESS, ["flocker-node"],
                                lambda argv, stdin: answer)
        d = self.agent.stop_application("web")
        self.assertNoResult(d)
        answer.callback(b"")
        self.successResultOf(d)

    @capture_logging(None, encoder_=None)
    def test_eliot_task_continued(self, logger):
        """
        Each call is a ``flocker:cli:remote:call`` action, and the task id
        passed to the node continues that action.
        """
        self.answer(STOP_APPLICATION)
        self.successResultOf(self.agent.stop_application("web"))
        assertHasAction(self, logger, REMOTE_CALL, True,
                        {"address": ADDRESS, "subcommand": STOP_APPLICATION})
        [call] = LoggedAction.of_type(logger.messages, REMOTE_CALL)
        task_id, _, _ = _subcommand(self.runner.calls[-1][1])
        continued = Action.continue_task(task_id=task_id)
        self.assertEqual(continued.task_uuid,
                         call.start_message["task_uuid"])
        continued.finish()

    @capture_logging(None, encoder_=None)
    def test_failure_logged(self, logger):
        """
        A failed call's action fails.
        """
        self.runner.unreachable[ADDRESS] = "down"
        self.failureResultOf(self.agent.report(), NodeStepFailed)
        [call] = LoggedAction.of_type(logger.messages, REMOTE_CALL)
        self.assertFalse(call.succeeded)


def _raise(exception):
    raise exception


# ---------------------------------------------------------------------------
# Over real SSH, with a stand-in flocker-node

@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """
    A private sshd on loopback for this module's real tests.
    """
    yield from running_sshd(tmp_path_factory)


_STAND_IN = """#!%(python)s
# Records its arguments and stdin, answers from responses.json.
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:],
                          "stdin": sys.stdin.read()}) + "\\n")
with open(os.path.join(here, "responses.json")) as f:
    responses = json.load(f)
answer = responses[sys.argv[7]]
sys.stdout.write(answer.get("stdout", ""))
sys.stderr.write(answer.get("stderr", ""))
sys.exit(answer.get("exit", 0))
"""


@pytest.fixture
def stand_in(tmp_path):
    """
    A stand-in ``flocker-node`` script in a directory with a space in its
    name (so its path needs quoting too).
    """
    directory = tmp_path / "flocker node"
    directory.mkdir()
    script = directory / "flocker-node"
    script.write_text(_STAND_IN % {"python": sys.executable})
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


def _calls(directory):
    with open(directory / "calls.jsonl") as f:
        return [json.loads(line) for line in f]


def _with_agent(server, command, function):
    def go(reactor):
        runner = SSHCommandRunner(
            reactor, KnownHosts.from_path(server.known_hosts_path),
            [server.client_key], port=server.port)
        agent = RemoteNodeAgent(runner, server.addresses[0], command=command)
        d = function(agent)
        return d.addBoth(lambda result: runner.close().addCallback(
            lambda _: result))
    return run_in_reactor(go)


def test_ssh_protocol_end_to_end(sshd, stand_in):
    """
    Over real SSH, the node receives exactly the documented argument
    vectors and documents, and the agent decodes the node's answers.
    """
    state = STATE.__class__(
        address=sshd.addresses[0], applications=STATE.applications,
        running=STATE.running, volumes=STATE.volumes, routes=STATE.routes,
        links=STATE.links)
    (stand_in / "responses.json").write_text(json.dumps({
        REPORT: {"stdout": json.dumps(node_state_to_dict(state))},
        START_APPLICATION: {},
        PUSH_VOLUME: {"stdout": '{"bytes": 4096}'},
        SET_ROUTES: {},
    }))
    routes = pset([Route(port=8080, address="127.0.0.2")])

    def steps(agent):
        results = []
        d = agent.report()
        d.addCallback(results.append)
        d.addCallback(lambda _: agent.start_application(APPLICATION))
        d.addCallback(lambda _: agent.push_volume("web", "127.0.0.2"))
        d.addCallback(results.append)
        d.addCallback(lambda _: agent.set_routes(routes))
        return d.addCallback(lambda _: results)
    report, sent = _with_agent(sshd, str(stand_in / "flocker-node"), steps)
    assert (report, sent) == (state, 4096)
    calls = _calls(stand_in)
    assert [call["argv"][6:] for call in calls] == [
        [REPORT], [START_APPLICATION], [PUSH_VOLUME, "web", "127.0.0.2"],
        [SET_ROUTES]]
    for call in calls:
        assert call["argv"][0] == ELIOT_TASK_OPTION
        assert call["argv"][2:6] == [PROTOCOL_OPTION, str(PROTOCOL_VERSION),
                                     ADDRESS_OPTION, sshd.addresses[0]]
    assert decode_application(calls[1]["stdin"].encode("utf-8")) == APPLICATION
    assert decode_routes(calls[3]["stdin"].encode("utf-8")) == routes


def test_ssh_remote_failure_one_line(sshd, stand_in):
    """
    Over real SSH, a failing subcommand gives one line with node, step and
    the node's message.
    """
    (stand_in / "responses.json").write_text(json.dumps({
        STOP_APPLICATION: {"exit": 1,
                           "stderr": "details\ncontainer is stuck\n"}}))
    with pytest.raises(NodeStepFailed) as info:
        _with_agent(sshd, str(stand_in / "flocker-node"),
                    lambda agent: agent.stop_application("web"))
    assert str(info.value) == (
        "%s: stop-application web: container is stuck"
        % (sshd.addresses[0],))


def test_ssh_missing_program(sshd):
    """
    Over real SSH, a node without ``flocker-node`` gives a one-line error
    saying so.
    """
    with pytest.raises(NodeStepFailed) as info:
        _with_agent(sshd, "flocker-node-not-installed-here",
                    lambda agent: agent.report())
    message = str(info.value)
    assert message.startswith(
        "%s: report: flocker-node-not-installed-here was not found on the "
        "node" % (sshd.addresses[0],))
    assert "\n" not in message


def remote_pair(directory):
    """
    :param directory: Where the nodes keep their node keys (see
        :func:`flocker.node.test.test_agent.local_pair`).
    :return: ``RemoteNodeAgent`` for A and B, each running ``flocker-node``
        (:func:`flocker.node.script.node_main`, in memory) over a local
        agent on fake parts.
    """
    runner = MemoryCommandRunner()
    for address, agent in zip((NODE_A, NODE_B), local_pair(directory)):
        def run(argv, stdin, agent=agent):
            stdout, stderr = io.StringIO(), io.StringIO()
            d = node_main(Clock(), argv[1:], stdin, stdout, stderr, {},
                          make_agent=lambda reactor, options, environ,
                          agent=agent: agent)

            def exited(code):
                if code:
                    raise CommandExit(code, stderr.getvalue().encode())
                return stdout.getvalue().encode()
            return d.addCallback(exited)
        runner.add_handler(address, ["flocker-node"], run)
    return RemoteNodeAgent(runner, NODE_A), RemoteNodeAgent(runner, NODE_B)


class RemoteNodeAgentInterfaceTests(make_inodeagent_tests(remote_pair)):
    """
    ``INodeAgent`` tests for :class:`RemoteNodeAgent`, through
    ``flocker-node`` run in memory over local agents.
    """
