"""
Tests for :mod:`flocker.node.script`, the ``flocker-node`` command.
"""

import io
import json
import os
import secrets
import tempfile

import pytest
from pyrsistent import pmap
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from ... import __version__
from ..._model import Application, AttachedVolume, Port, Route
from ..._serialize import node_state_from_dict
from ...testtools import run_in_reactor, temporary_directory
from .._docker import DockerClient
from .._protocol import (
    decode_release, decode_session_line, encode_application,
    encode_node_key, encode_request, encode_routes,
)
from .._lock import DeployLock, process_identity
from ..script import node_main
from ..testtools import make_node_key
from .test_agent import B, PLAIN, WEB, local_pair
from .test_docker import IMAGE, SLEEPER, _lab_docker


def node_main_for(agent, argv, stdin=b""):
    """
    Run ``node_main`` against ``agent``, without a lock.

    :return: ``(exit code, stdout, stderr)``.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    d = node_main(Clock(), argv, stdin, stdout, stderr, {},
                  make_agent=lambda reactor, options, environ: agent)
    results = []
    d.addBoth(results.append)
    return results[0], stdout.getvalue(), stderr.getvalue()


class NodeMainTests(SynchronousTestCase):
    """
    Tests for ``node_main``: the command line, its output and exit codes,
    over a local agent on fake parts.
    """

    def setUp(self):
        self.agent, self.other = local_pair()
        self.lock = DeployLock(os.path.join(temporary_directory(self), "lock"))

    def main(self, argv, stdin=b"", environ=None):
        """
        Run ``node_main`` against ``self.agent``.

        :return: ``(exit code, stdout, stderr)``.
        """
        stdout, stderr = io.StringIO(), io.StringIO()
        code = self.successResultOf(node_main(
            Clock(), argv, stdin, stdout, stderr, environ or {},
            make_agent=lambda reactor, options, environ: self.agent,
            make_lock=lambda options, environ: self.lock))
        return code, stdout.getvalue(), stderr.getvalue()

    def test_lock_held_elsewhere(self):
        """
        A command naming a deploy other than the one holding the node's
        lease exits 4 without acting.
        """
        self.lock.hold("first")
        code, out, err = self.main(["--lock", "second", "start-application"],
                                   stdin=encode_application(PLAIN))
        self.assertEqual((code, out), (4, ""))
        self.assertIn("deploy first", err)
        self.assertEqual(
            dict(self.successResultOf(self.agent.report()).applications), {})

    def test_lock_released(self):
        """
        ``release-lock`` ends the deploy's lease, so another deploy may
        act.
        """
        self.assertEqual(self.main(["--lock", "first", "report"])[0], 0)
        self.assertEqual(self.main(["--lock", "first", "release-lock"]),
                         (0, "", ""))
        self.assertEqual(self.main(["--lock", "second", "report"])[0], 0)

    def test_help(self):
        """
        ``--help`` lists the commands on stdout and exits 0.
        """
        code, out, err = self.main(["--help"])
        self.assertEqual((code, err), (0, ""))
        for command in ("report", "start-application", "stop-application",
                        "create-volume", "push-volume", "handoff-volume",
                        "set-routes"):
            self.assertIn(command, out)

    def test_version(self):
        """
        ``--version`` prints the version and exits 0.
        """
        self.assertEqual(self.main(["--version"]),
                         (0, "flocker-node %s\n" % (__version__,), ""))

    def test_no_command(self):
        """
        Without a command the exit status is 2 with one line on stderr.
        """
        code, out, err = self.main([])
        self.assertEqual((code, out, err.count("\n")), (2, "", 1))

    def test_bad_arguments(self):
        """
        A command with missing arguments exits 2, saying so in one line.
        """
        code, out, err = self.main(["push-volume", "web"])
        self.assertEqual((code, out, err.count("\n")), (2, "", 1))

    def test_protocol_mismatch(self):
        """
        A client speaking another protocol version gets exit status 3 and a
        message naming both versions.
        """
        code, out, err = self.main(["--protocol", "99", "report"])
        self.assertEqual(code, 3)
        self.assertIn("speaks protocol 1, not 99", err)

    def test_report_round_trip(self):
        """
        ``report`` prints the agent's state as JSON that reads back into an
        equal ``NodeState``.
        """
        self.successResultOf(self.agent.create_volume("web", None))
        self.successResultOf(self.agent.start_application(WEB))
        code, out, err = self.main(["--protocol", "1", "report"])
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(node_state_from_dict(json.loads(out)),
                         self.successResultOf(self.agent.report()))

    def test_start_and_stop(self):
        """
        ``start-application`` starts the application read from stdin;
        ``stop-application NAME`` stops it.
        """
        code, _, err = self.main(["start-application"],
                                 stdin=encode_application(PLAIN))
        self.assertEqual((code, err), (0, ""))
        self.assertIn("plain", self.successResultOf(self.agent.report()).running)
        self.assertEqual(self.main(["stop-application", "plain"]), (0, "", ""))
        self.assertEqual(
            dict(self.successResultOf(self.agent.report()).applications), {})

    def test_volume_commands(self):
        """
        ``create-volume`` with a maximum size, ``push-volume`` (printing the
        bytes sent) and ``handoff-volume`` act on the volume service.
        """
        self.assertEqual(self.main(["create-volume", "web", "--maximum-size",
                                    "1048576"]), (0, "", ""))
        code, out, err = self.main(["push-volume", "web", B])
        self.assertEqual((code, err), (0, ""))
        self.assertIsInstance(json.loads(out)["bytes"], int)
        code, out, err = self.main(["handoff-volume", "web", B])
        self.assertEqual((code, err), (0, ""))
        self.assertTrue(self.successResultOf(
            self.other.report()).volumes["web"].owned)

    def test_release_and_acquire(self):
        """
        ``release-volume`` prints the release (bytes, snapshot, node id);
        ``acquire-volume`` with its snapshot and node id on the target
        makes the target the owner.
        """
        self.assertEqual(self.main(["create-volume", "web"]), (0, "", ""))
        code, out, err = self.main(["release-volume", "web", B])
        self.assertEqual((code, err), (0, ""))
        release = decode_release(out.encode("ascii"))
        self.assertFalse(self.successResultOf(
            self.other.report()).volumes["web"].owned)
        code, out, err = node_main_for(self.other, [
            "acquire-volume", "web", release.snapshot, release.node_id])
        self.assertEqual((code, out, err), (0, "", ""))
        self.assertTrue(self.successResultOf(
            self.other.report()).volumes["web"].owned)

    def test_acquire_usage(self):
        """
        ``acquire-volume`` without its snapshot and node id is a usage
        error.
        """
        self.assertEqual(self.main(["acquire-volume", "web"])[0], 2)

    def test_serve(self):
        """
        ``serve`` answers each request line with what the same single call
        would have printed, through one agent, until input ends.
        """
        sessions = []

        def connect(reactor, protocol):
            transport = StringTransport()
            protocol.makeConnection(transport)
            sessions.append((protocol, transport))
        stdout, stderr = io.StringIO(), io.StringIO()
        made = []

        def make_agent(reactor, options, environ):
            made.append(options.address(environ))
            return self.agent
        finished = node_main(
            Clock(), ["--address", "10.0.0.1", "serve"], b"", stdout, stderr,
            {}, make_agent=make_agent,
            make_lock=lambda options, environ: self.lock, connect=connect)
        [(protocol, transport)] = sessions
        protocol.dataReceived(
            encode_request(1, ["--address", "10.0.0.1", "create-volume",
                               "web"])
            + encode_request(2, ["--address", "10.0.0.1", "report"])
            + encode_request(3, ["serve"]))
        protocol.readConnectionLost()
        self.assertEqual(self.successResultOf(finished), 0)
        answers = {}
        for line in transport.value().splitlines():
            kind, value = decode_session_line(line)
            if kind == "answer":
                answers[value[0]] = value[1:]
        self.assertEqual(answers[1], (0, b"", b""))
        self.assertEqual(answers[2][0], 0)
        self.assertIn("web", json.loads(answers[2][1])["volumes"][0]["name"])
        self.assertEqual(answers[3][0], 2)
        self.assertEqual(made, ["10.0.0.1"])

    def test_serve_progress(self):
        """
        A push through a session sends progress lines for its request (the
        volume service's figures) before its answer; a single call prints
        only its result.
        """
        sessions = []

        def connect(reactor, protocol):
            transport = StringTransport()
            protocol.makeConnection(transport)
            sessions.append((protocol, transport))
        self.successResultOf(self.agent.create_volume("web", None))
        finished = node_main(
            Clock(), ["serve"], b"", io.StringIO(), io.StringIO(), {},
            make_agent=lambda reactor, options, environ: self.agent,
            connect=connect)
        [(protocol, transport)] = sessions
        protocol.dataReceived(encode_request(4, ["push-volume", "web", B]))
        protocol.readConnectionLost()
        self.assertEqual(self.successResultOf(finished), 0)
        kinds = [decode_session_line(line) for line in
                 transport.value().splitlines()]
        kinds = [(kind, value) for kind, value in kinds if kind != "eliot"]
        [(kind, (identifier, sent, total)), (last, answer)] = kinds
        self.assertEqual((kind, identifier, last, answer[:2]),
                         ("progress", 4, "answer", (4, 0)))
        self.assertEqual(json.loads(answer[2]), {"bytes": sent})
        self.assertEqual(self.main(["push-volume", "web", B])[1],
                         '{"bytes":0}\n')

    def test_serve_lease_names_process(self):
        """
        A deploy's lease taken through a session names the serving process
        (this one), so it ends when that process does; a one-shot call's
        lease names none.
        """
        sessions = []

        def connect(reactor, protocol):
            protocol.makeConnection(StringTransport())
            sessions.append(protocol)
        finished = node_main(
            Clock(), ["serve"], b"", io.StringIO(), io.StringIO(), {},
            make_agent=lambda reactor, options, environ: self.agent,
            make_lock=lambda options, environ: self.lock, connect=connect)
        [protocol] = sessions
        protocol.dataReceived(encode_request(1, ["--lock", "first",
                                                 "report"]))
        protocol.readConnectionLost()
        self.assertEqual(self.successResultOf(finished), 0)
        with open(self.lock.path) as f:
            lease = json.load(f)
        self.assertEqual((lease["owner"], lease["process"]),
                         ("first", process_identity(os.getpid())))
        self.main(["--lock", "second", "release-lock"])
        self.main(["--lock", "first", "release-lock"])
        self.main(["--lock", "second", "report"])
        with open(self.lock.path) as f:
            self.assertNotIn("process", json.load(f))

    def test_set_routes(self):
        """
        ``set-routes`` installs the route table read from stdin.
        """
        routes = frozenset([Route(8080, B)])
        self.assertEqual(self.main(["set-routes"], stdin=encode_routes(routes)),
                         (0, "", ""))
        self.assertEqual(self.successResultOf(self.agent.report()).routes,
                         routes)

    def test_failure_one_line(self):
        """
        An operation the node refuses exits 1 with one line on stderr naming
        the command, and nothing on stdout.
        """
        code, out, err = self.main(["start-application"],
                                   stdin=encode_application(WEB))
        self.assertEqual((code, out, err.count("\n")), (1, "", 1))
        self.assertTrue(err.startswith("flocker-node start-application: "))

    def test_bad_stdin(self):
        """
        Standard input that is not an application document exits 1 with one
        line.
        """
        code, out, err = self.main(["start-application"], stdin=b"{nope")
        self.assertEqual((code, out, err.count("\n")), (1, "", 1))

    def test_install_node_key(self):
        """
        ``install-node-key`` installs the node key read from stdin; the
        report then carries its fingerprint and known_hosts digest, not
        the key.
        """
        self.agent, _ = local_pair(temporary_directory(self))
        key = make_node_key()
        self.assertEqual(self.main(["install-node-key"],
                                   stdin=encode_node_key(key)), (0, "", ""))
        code, out, err = self.main(["report"])
        report = json.loads(out)
        self.assertEqual(report["node_key"], {
            "fingerprint": key.status().fingerprint,
            "known_hosts_digest": key.status().known_hosts_digest})
        self.assertEqual(node_state_from_dict(report).node_key, key.status())
        self.assertNotIn(key.private_key.splitlines()[1], out)

    def test_install_node_key_not_logged(self):
        """
        With ``--eliot-task`` the installation is logged by fingerprint;
        the private key appears in neither stdout nor stderr.
        """
        self.agent, _ = local_pair(temporary_directory(self))
        key = make_node_key()
        code, out, err = self.main(
            ["--eliot-task", "abc-uuid@/1", "install-node-key"],
            stdin=encode_node_key(key))
        self.assertEqual(code, 0)
        self.assertIn(key.status().fingerprint, err)
        for line in key.private_key.splitlines()[1:-1]:
            self.assertNotIn(line, out + err)

    def test_install_node_key_bad_stdin(self):
        """
        Standard input that is not a node key exits 1 with one line that
        does not repeat what was sent.
        """
        self.agent, _ = local_pair(temporary_directory(self))
        stdin = json.dumps({"private_key": "SECRET-MATERIAL",
                            "public_key": "ssh-ed25519 AAAA",
                            "known_hosts": ""}).encode()
        code, out, err = self.main(["install-node-key"], stdin=stdin)
        self.assertEqual((code, out, err.count("\n")), (1, "", 1))
        self.assertNotIn("SECRET-MATERIAL", err)

    def test_eliot_task_continued(self):
        """
        With ``--eliot-task`` the command's eliot messages go to stderr,
        inside the given task.
        """
        code, out, err = self.main(["--eliot-task", "abc-uuid@/1", "report"])
        self.assertEqual(code, 0)
        messages = [json.loads(line) for line in err.splitlines()]
        self.assertIn(("abc-uuid", "flocker:node:report", "succeeded"),
                      [(m["task_uuid"], m.get("action_type"),
                        m.get("action_status")) for m in messages])


    def test_bad_eliot_task(self):
        """
        A ``--eliot-task`` that is not a serialised task id gives one line
        and exit status 2, no traceback, and runs nothing.
        """
        code, out, err = self.main(["--eliot-task", "bad", "report"])
        self.assertEqual((code, out, err), (
            2, "", "flocker-node report: --eliot-task 'bad' is not a "
            "serialised eliot task\n"))


class LabReportTests(SynchronousTestCase):
    """
    ``flocker-node report`` run on a lab node.
    """

    @pytest.fixture(autouse=True)
    def _lab(self, request):
        self.lab = request.getfixturevalue("lab")
        self.node_name, self.address, self.docker_socket = _lab_docker(
            request)

    def test_report_shows_container(self):
        """
        A container started on the node by Flocker's client is in the
        node's report, running, with its ports and volume.
        """
        name = "t5" + secrets.token_hex(4) + "-report"
        port = 20000 + secrets.randbelow(20000)
        host_path = tempfile.mkdtemp(prefix="flocker-report-test-")
        self.addCleanup(os.rmdir, host_path)
        application = Application(
            name=name, image=IMAGE, command=SLEEPER,
            environment={"MESSAGE": "from the report test"},
            ports=[Port(internal=80, external=port)],
            volume=AttachedVolume(mountpoint="/data"))
        socket_path = self.docker_socket
        client = run_in_reactor(
            lambda reactor: DockerClient(reactor, socket_path, stop_timeout=5))
        self.addCleanup(run_in_reactor, lambda reactor: client.close())
        self.addCleanup(run_in_reactor, lambda reactor: client.remove(name))
        run_in_reactor(lambda reactor: client.add(application, host_path))
        result = self.lab.run(self.node_name, ["flocker-node", "report"],
                              check=False)
        state = node_state_from_dict(json.loads(result.stdout))
        unit = [u for u in run_in_reactor(lambda reactor: client.list())
                if u.name == name][0]
        self.assertEqual(
            (result.returncode, result.stderr, state.address,
             state.applications.get(name), name in state.running,
             unit.ports, unit.binds),
            (0, "", self.address, application, True, application.ports,
             pmap({"/data": host_path})))
