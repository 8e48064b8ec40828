"""
Tests for :mod:`flocker.node.script` (``flocker-node``) and, end to end, a
real ``flocker-node agent`` process: its socket, who may use it, how it
answers, and ``flocker-node-bridge`` in front of it.
"""

import io
import json
import os
import socket
import stat
import subprocess
import sys

from eliot.testing import LoggedAction, assertHasAction
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ... import __version__
from ...testtools import (
    capture_logging, require, temporary_directory, temporary_path,
    wait_for_path,
)
from pyrsistent import pmap

from .._amp import PROTOCOL_VERSION
from .._lock import DeployLock
from .._logging import (
    NODE_EXPECT_COMMAND, NODE_EXPECT_SENDERS, NODE_REPORT, NODE_REPORT_COMMAND,
)
from .._server import AgentProtocol, AgentService
from ..testtools import loopback
from .test_agent import A, local_pair
from ..script import (
    AgentSocketError, node_main, prepare_socket, with_expected,
)

#: An unprivileged user and group (Debian's nobody/nogroup).
NOBODY = 65534


def run_main(argv):
    """
    :return: ``(exit code, stdout, stderr)`` of ``node_main``.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    results = []
    node_main(Clock(), argv, stdout, stderr, {}).addBoth(results.append)
    return results[0], stdout.getvalue(), stderr.getvalue()


class NodeMainTests(SynchronousTestCase):
    """
    Tests for the ``flocker-node`` command line.
    """

    def test_version(self):
        """
        ``--version`` prints the version.
        """
        self.assertEqual(run_main(["--version"]),
                         (0, "flocker-node %s\n" % (__version__,), ""))

    def test_help(self):
        """
        ``--help`` lists the commands.
        """
        code, out, err = run_main(["--help"])
        self.assertEqual((code, err), (0, ""))
        self.assertIn("agent", out)
        self.assertIn("report", out)

    def test_no_command(self):
        """
        Without a command: one line, exit status 2.
        """
        self.assertEqual(run_main([]), (
            2, "", "flocker-node: a command is required (try --help)\n"))

    def test_unknown_command(self):
        """
        The commands of the one-process-per-call protocol are gone: one
        line, exit status 2.
        """
        code, out, err = run_main(["start-application"])
        self.assertEqual((code, out, err.count("\n")), (2, "", 1))


class ExpectCommandTests(SynchronousTestCase):
    """
    Tests for ``flocker-node expect VOLUME [NODEID ...]``.
    """

    def test_bad_arguments(self):
        """
        A volume name or node identity that cannot be one, or no volume,
        is a usage error: one line, exit status 2.
        """
        for argv in [["expect"], ["expect", "../x", "node-a"],
                     ["expect", "web", "a b"]]:
            code, out, err = run_main(argv)
            self.assertEqual((code, out, err.count("\n")), (2, "", 1), argv)
            self.assertTrue(err.startswith("flocker-node: "), err)

    def test_record_changed(self):
        """
        The volume's entry is replaced, or dropped when no node is given;
        the other volumes' entries are kept.
        """
        record = pmap({"web": frozenset(["a"]), "db": frozenset(["b"])})
        self.assertEqual(with_expected(record, "web", ["c", "d"]),
                         {"web": frozenset(["c", "d"]),
                          "db": frozenset(["b"])})
        self.assertEqual(with_expected(record, "web", []),
                         {"db": frozenset(["b"])})
        self.assertEqual(with_expected(record, "new", ["a"]),
                         dict(record, new=frozenset(["a"])))


class PrepareSocketTests(SynchronousTestCase):
    """
    Tests for :func:`prepare_socket`.
    """

    def setUp(self):
        self.directory = temporary_directory(self)
        os.makedirs(self.directory)

    def test_private_directory(self):
        """
        The socket's directory is made, readable by its owner only.
        """
        path = os.path.join(self.directory, "run", "agent.sock")
        prepare_socket(path)
        mode = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        self.assertEqual(mode, 0o700)

    def test_open_directory_closed(self):
        """
        A directory of ours open to others is made private.
        """
        run = os.path.join(self.directory, "run")
        os.mkdir(run, 0o777)
        os.chmod(run, 0o777)
        prepare_socket(os.path.join(run, "agent.sock"))
        self.assertEqual(stat.S_IMODE(os.stat(run).st_mode), 0o700)

    def test_foreign_directory_refused(self):
        """
        A directory owned by another user is refused: nobody else may
        place the agent's socket.
        """
        run = os.path.join(self.directory, "run")
        os.mkdir(run)
        with self.assertRaises(AgentSocketError):
            prepare_socket(os.path.join(run, "agent.sock"),
                           uid=os.geteuid() + 1)

    def test_stale_socket_removed(self):
        """
        A socket nobody listens on (left by a dead agent) is removed.
        """
        path = os.path.join(self.directory, "agent.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        prepare_socket(path)
        self.assertFalse(os.path.exists(path))

    def test_live_socket_refused(self):
        """
        A socket another agent listens on is left alone and refused.
        """
        path = os.path.join(self.directory, "agent.sock")
        live = socket.socket(socket.AF_UNIX)
        live.bind(path)
        live.listen(1)
        self.addCleanup(live.close)
        with self.assertRaises(AgentSocketError) as raised:
            prepare_socket(path)
        self.assertIn("already listens", str(raised.exception))
        self.assertTrue(os.path.exists(path))


# ---------------------------------------------------------------------------
# A real agent process

def _command(name):
    return [os.path.join(os.path.dirname(sys.executable), name)]


def start_agent(test):
    """
    Start a ``flocker-node agent`` process on a socket in a temporary
    directory, with no Docker daemon and no pool behind it, stopped when
    ``test`` ends.  The directory is opened to everyone, so only the
    agent's own directory and socket keep others out.

    :param test: The ``TestCase``.
    :return: ``(socket path, process, environment)``.
    """
    require(os.geteuid() == 0, "needs root (to run commands as nobody)")
    tmp_path = temporary_path(test)
    os.chmod(tmp_path, 0o755)
    path = str(tmp_path / "flocker" / "agent.sock")
    log = open(tmp_path / "agent.log", "wb")
    environ = dict(os.environ, FLOCKER_POOL="flocker-no-such-pool",
                   DOCKER_HOST="unix://%s" % (tmp_path / "no-docker.sock",),
                   FLOCKER_LOCK_DIR=str(tmp_path / "lock"),
                   FLOCKER_STATE_DIR=str(tmp_path / "state"))
    process = subprocess.Popen(
        _command("flocker-node") + ["agent", "--socket", path,
                                    "--address", "192.0.2.1"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environ)
    log.close()

    def stop():
        # Also when it never listened: no agent outlives its test.
        process.terminate()
        process.wait(30)
    test.addCleanup(stop)
    if not wait_for_path(path, process):
        raise AssertionError("the agent did not listen: "
                             + (tmp_path / "agent.log").read_text())
    return path, process, environ


_AS_NOBODY = """
import socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(path)
except PermissionError:
    print("connect refused")
t = socket.socket(socket.AF_UNIX)
try:
    t.bind(path + ".mine")
except PermissionError:
    print("bind refused")
"""


class AgentProcessTests(SynchronousTestCase):
    """
    A ``flocker-node agent`` process: its private socket, one agent per
    socket, its answers through ``flocker-node report`` and the bridge.
    """

    def test_socket_private(self):
        """
        The agent's socket is mode 0600 in a directory of mode 0700, both
        root's.
        """
        path, _, _ = start_agent(self)
        for where, mode in ((path, 0o600), (os.path.dirname(path), 0o700)):
            info = os.stat(where)
            self.assertEqual((stat.S_IMODE(info.st_mode), info.st_uid),
                             (mode, 0))

    def test_unprivileged_user_locked_out(self):
        """
        An unprivileged user can neither connect to the agent nor put a socket
        of their own where the agent listens.
        """
        path, _, _ = start_agent(self)
        result = subprocess.run(
            [sys.executable, "-I", "-c", _AS_NOBODY, path], user=NOBODY,
            group=NOBODY, extra_groups=[], capture_output=True, text=True,
            timeout=60, cwd="/")
        self.assertEqual(
            (result.stdout, result.returncode),
            ("connect refused\nbind refused\n", 0),
            result.stderr)

    def test_second_agent_refused(self):
        """
        A second agent on the same socket exits with one line, leaving the
        first one serving.
        """
        path, first, environ = start_agent(self)
        result = subprocess.run(
            _command("flocker-node") + ["agent", "--socket", path],
            capture_output=True, text=True, timeout=120, env=environ)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            "flocker-node agent: another agent already listens on %s\n" % (
                path,))
        self.assertIsNone(first.poll())

    def test_report_one_line_failure(self):
        """
        ``flocker-node report`` reaches the agent; a node whose Docker daemon
        does not answer gets one line naming the reason, no traceback.
        """
        path, _, environ = start_agent(self)
        result = subprocess.run(
            _command("flocker-node") + ["report", "--socket", path],
            capture_output=True, text=True, timeout=120, env=environ)
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr, r"\Aflocker-node report: Docker is not "
                         r"available at unix://\S+/no-docker\.sock: No such "
                         r"file or directory\n\Z")

    def test_expect_one_line_failure(self):
        """
        ``flocker-node expect`` reaches the agent; when the agent cannot
        answer (its Docker daemon does not answer its report) it gets one
        line naming the reason, no traceback.
        """
        path, _, environ = start_agent(self)
        result = subprocess.run(
            _command("flocker-node") + ["expect", "--socket", path, "web",
                                        "node-a"],
            capture_output=True, text=True, timeout=120, env=environ)
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr, r"\Aflocker-node expect: Docker is not "
                         r"available at unix://\S+/no-docker\.sock: No such "
                         r"file or directory\n\Z")

    def test_bridge(self):
        """
        ``flocker-node-bridge`` joins its standard input and output to the
        agent: an AMP ``Hello`` written to it is answered.
        """
        from twisted.protocols.amp import AmpBox
        path, _, _ = start_agent(self)
        hello = AmpBox(_command=b"Hello", _ask=b"1",
                       version=b"%d" % (PROTOCOL_VERSION,),
                       address=b"192.0.2.1").serialize()
        bridge = subprocess.Popen(
            _command("flocker-node-bridge") + ["--socket", path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        bridge.stdin.write(hello)
        bridge.stdin.flush()
        # The answer comes while the input is still open (closing it ends the
        # conversation, as the client closing its channel does).
        answer = bridge.stdout.read1(4096)
        bridge.stdin.close()
        bridge.wait(60)
        self.assertTrue(b"_answer" in answer and b"flocker" in answer)
        self.assertEqual(bridge.returncode, 0)

    def test_bridge_no_agent(self):
        """
        Without an agent, the bridge says so in one line and exits with 1.
        """
        tmp_path = temporary_path(self)
        path = str(tmp_path / "nothing.sock")
        result = subprocess.run(
            _command("flocker-node-bridge") + ["--socket", path],
            capture_output=True, text=True, timeout=60, input="")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertIn("systemctl status flocker-node", result.stderr)

    def test_malformed_then_served(self):
        """
        Garbage on one connection closes that connection only: the agent
        answers the next one.
        """
        path, process, _ = start_agent(self)
        bad = socket.socket(socket.AF_UNIX)
        bad.connect(path)
        bad.sendall(b"\x00\x05hello\x00\x00\x00\x00")
        bad.settimeout(30)
        self.assertEqual(bad.recv(100), b"")
        bad.close()
        result = subprocess.run(
            _command("flocker-node-bridge") + ["--socket", path], input=b"",
            capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 0)
        self.assertIsNone(process.poll())

    def test_agent_bad_etcd_tls(self):
        """
        An agent whose etcd TLS settings cannot be used (a client
        certificate without its key, a CA file that is missing) exits with
        one line naming them, before it listens.
        """
        tmp_path = temporary_path(self)
        path = str(tmp_path / "flocker" / "agent.sock")
        results = []
        for settings in [{"FLOCKER_ETCD_CERT": str(tmp_path / "c.crt")},
                         {"FLOCKER_ETCD_CA": str(tmp_path / "ca.crt")}]:
            environ = dict(os.environ, FLOCKER_POOL="flocker-no-such-pool",
                           FLOCKER_LOCK_DIR=str(tmp_path / "lock"),
                           FLOCKER_ETCD_ENDPOINTS="https://127.0.0.1:1",
                           **settings)
            result = subprocess.run(
                _command("flocker-node") + ["agent", "--socket", path,
                                            "--address", "192.0.2.1"],
                capture_output=True, text=True, timeout=120, env=environ)
            results.append((result.returncode, result.stderr))
        self.assertEqual(results, [
            (1, "flocker-node agent: FLOCKER_ETCD_CERT and FLOCKER_ETCD_KEY "
                "go together: a client certificate and its key\n"),
            (1, "flocker-node agent: %s: cannot read the etcd CA "
                "certificate: No such file or directory\n" % (
                    tmp_path / "ca.crt",))])
        self.assertFalse(os.path.exists(path))


class AgentCommandTests(SynchronousTestCase):
    """
    ``flocker-node report`` and ``flocker-node expect`` against an agent in
    memory: each is one eliot action of its own type, from connecting to
    its end, and the agent's work continues its task.
    """

    def run_command(self, argv):
        """
        Run ``flocker-node ARGV --socket PATH`` against an agent protocol
        over a local agent with fake parts (``self.agent``), connected in
        memory.

        :return: ``(exit code, stdout, stderr)``.
        """
        directory = temporary_directory(self)
        agent = self.agent = local_pair(directory)[0]
        service = AgentService(
            Clock(), lambda address: agent,
            DeployLock(os.path.join(directory, "lock")),
            expected_errors=(Exception,))
        reactor = MemoryReactorClock()
        stdout, stderr = io.StringIO(), io.StringIO()
        results = []
        node_main(reactor, argv[:1] + ["--socket", "/run/test/agent.sock"]
                  + argv[1:], stdout, stderr, {}).addBoth(results.append)
        (path, factory, _, _), = reactor.unixClients
        self.assertEqual(path, "/run/test/agent.sock")
        loopback(factory.buildProtocol(None), AgentProtocol(service)).flush()
        return results[0], stdout.getvalue(), stderr.getvalue()

    @capture_logging(None)
    def test_report_action(self, logger):
        """
        ``flocker-node report`` prints the report within a
        ``NODE_REPORT_COMMAND`` action naming the socket, of whose task the
        agent's report is a part.
        """
        code, out, err = self.run_command(["report"])
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)["address"], A)
        action = assertHasAction(self, logger, NODE_REPORT_COMMAND, True,
                                 {"socket": "/run/test/agent.sock"})
        report, = LoggedAction.of_type(logger.messages, NODE_REPORT)
        self.assertEqual(report.start_message["task_uuid"],
                         action.start_message["task_uuid"])

    @capture_logging(None)
    def test_expect_action(self, logger):
        """
        ``flocker-node expect`` changes the agent's record within a
        ``NODE_EXPECT_COMMAND`` action naming the socket, the volume and
        how many nodes, of whose task the agent's change is a part.
        """
        code, out, err = self.run_command(["expect", "web", "node-a",
                                           "node-b"])
        self.assertEqual((code, out, err), (0, "", ""))
        self.assertEqual(
            self.successResultOf(self.agent.report()).expected_senders,
            {"web": frozenset(["node-a", "node-b"])})
        action = assertHasAction(
            self, logger, NODE_EXPECT_COMMAND, True,
            {"socket": "/run/test/agent.sock", "volume": "web", "nodes": 2})
        expect, = LoggedAction.of_type(logger.messages, NODE_EXPECT_SENDERS)
        self.assertEqual(expect.start_message["task_uuid"],
                         action.start_message["task_uuid"])

    @capture_logging(None)
    def test_unreachable_action_fails(self, logger):
        """
        When the agent cannot be reached, the command's action fails and
        the command says so in one plain line naming the socket and what
        to look at (not Twisted's wording of the connection's failure).
        """
        reactor = MemoryReactorClock()
        stderr = io.StringIO()
        results = []
        node_main(reactor, ["report", "--socket", "/run/test/agent.sock"],
                  io.StringIO(), stderr, {}).addBoth(results.append)
        (_, factory, _, _), = reactor.unixClients
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(results, [1])
        self.assertEqual(
            stderr.getvalue(),
            "flocker-node report: this node's agent does not answer on "
            "/run/test/agent.sock: is flocker-node agent running? see "
            "systemctl status flocker-node\n")
        assertHasAction(self, logger, NODE_REPORT_COMMAND, False,
                        {"socket": "/run/test/agent.sock"})
