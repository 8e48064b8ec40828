"""
Tests for the deploy client's node-to-node key (``flocker.cli._nodekey``),
how the remote agent installs it, and how a deploy plans it.
"""

import getpass
import os
import stat
import subprocess
import sys

import pytest

from eliot.testing import LoggedAction, capture_logging
from twisted.conch.ssh.keys import Key
from twisted.trial.unittest import SynchronousTestCase

from flocker._change import leaves
from flocker._model import Deployment, Node, public_key_fingerprint
from flocker.cli._logging import LOAD_NODE_KEY
from flocker.cli._deploy import deploy
from flocker.cli._nodekey import (
    NodeKeyPair, check_node_key, load_node_key_pair, nodes_callers,
    nodes_known_hosts,
)
from flocker.cli._remote import AgentConnections, RemoteNodeAgent
from flocker.cli.testtools import FlushingAgent, LoopbackNetwork
from flocker.cli._ssh import MemoryCommandRunner, SSHConfigurationError
from flocker.node._changes import InstallNodeKey
from flocker.node._fake import FakeCluster
from flocker.node._peer import PeerFactory
from flocker.node.test.test_peer import _Receiver, _Router
from flocker.node.testtools import make_node_key
from flocker.testtools import run_in_reactor, temporary_directory
from flocker.volume._errors import HostKeyRejected
from flocker.volume._nodekey import NodeKeyStore
from flocker._process import ProcessResult
from flocker.volume._remote import SSHRemote, remote_error

from ._sshd import running_sshd
from .test_remote import _services

#: The top of this source tree (what the forced command imports).
_TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

A, B = "10.0.0.1", "10.0.0.2"


def _host_key():
    return Key.fromString(make_node_key().private_key).public()


class LoadNodeKeyPairTests(SynchronousTestCase):
    """
    ``load_node_key_pair`` keeps one ed25519 key pair per client.
    """

    def test_created(self):
        """
        The first time, an OpenSSH-format ed25519 private key is written
        0600 (its directory 0700) with its ``.pub``; later calls read the
        same pair.
        """
        path = os.path.join(temporary_directory(self), "node_key")
        pair = load_node_key_pair(path)
        with open(path) as f:
            self.assertEqual(f.read(), pair.private_key)
        self.assertTrue(pair.private_key.startswith(
            "-----BEGIN OPENSSH PRIVATE KEY-----"))
        self.assertTrue(pair.public_key.startswith("ssh-ed25519 "))
        with open(path + ".pub") as f:
            self.assertEqual(f.read().split()[:2], pair.public_key.split())
        self.assertEqual(
            (stat.S_IMODE(os.stat(path).st_mode),
             stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)),
            (0o600, 0o700))
        self.assertEqual(load_node_key_pair(path), pair)

    @capture_logging(None)
    def test_logged(self, logger):
        """
        Loading is an action naming the file, whether the pair was made and
        its fingerprint; the private key is not logged.
        """
        path = os.path.join(temporary_directory(self), "node_key")
        pair = load_node_key_pair(path)
        load_node_key_pair(path)
        actions = LoggedAction.ofType(logger.messages, LOAD_NODE_KEY)
        self.assertEqual(
            [(a.start_message["path"], a.end_message["created"],
              a.end_message["fingerprint"]) for a in actions],
            [(path, created, public_key_fingerprint(pair.public_key))
             for created in (True, False)])
        self.assertNotIn(pair.private_key.splitlines()[1],
                         repr(logger.messages))

    def test_dry_run(self):
        """
        With ``create=False`` a missing key is made in memory only.
        """
        path = os.path.join(temporary_directory(self), "node_key")
        load_node_key_pair(path, create=False)
        self.assertFalse(os.path.exists(path))

    @capture_logging(None)
    def test_check(self, logger):
        """
        ``check_node_key`` writes and logs nothing: a missing pair passes,
        a file that is not a key is refused as loading would refuse it.
        """
        path = os.path.join(temporary_directory(self), "node_key")
        check_node_key(path)
        self.assertEqual((os.path.exists(path), logger.messages),
                         (False, []))
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write("not a key\n")
        self.assertRaises(SSHConfigurationError, check_node_key, path)

    def test_not_a_key(self):
        """
        A file that is not an ed25519 private key is refused in one line.
        """
        path = os.path.join(temporary_directory(self), "node_key")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(NodeKeyPair.generate().public_key + "\n")
        error = self.assertRaises(SSHConfigurationError,
                                  load_node_key_pair, path)
        self.assertIn(path, str(error))
        self.assertNotIn("\n", str(error))

    def test_node_key(self):
        """
        The pair with a known_hosts text is the ``NodeKey`` to install.
        """
        pair = NodeKeyPair.generate()
        key = pair.node_key("")
        self.assertEqual((key.private_key, key.public_key, key.known_hosts),
                         (pair.private_key, pair.public_key, ""))
        self.assertNotIn(pair.private_key, repr(pair))


class NodesKnownHostsTests(SynchronousTestCase):
    """
    ``nodes_known_hosts`` lists the host keys the client verified.
    """

    def test_lines(self):
        """
        One line per node, sorted, naming it as the deployment does and by
        the IP the client reached it at when different.
        """
        a, b = _host_key(), _host_key()
        text, missing = nodes_known_hosts(
            ["node-b.example", A], {"node-b.example": B, A: A},
            {A: a, B: b})
        self.assertEqual(text, "%s %s\nnode-b.example,%s %s\n" % (
            A, a.toString("openssh").decode(), B,
            b.toString("openssh").decode()))
        self.assertEqual(missing, [])

    def test_missing(self):
        """
        Nodes whose host key the client does not know are listed apart.
        """
        text, missing = nodes_known_hosts([A, B], {}, {A: _host_key()})
        self.assertEqual((text.count("\n"), missing), (1, [B]))


class RemoteInstallTests(SynchronousTestCase):
    """
    ``RemoteNodeAgent.install_node_key`` sends the key inside the agent
    protocol only.
    """

    @capture_logging(None)
    def test_install(self, logger):
        """
        The node gets the key; neither the client's log nor the node's log
        messages sent back hold private key material.
        """
        _, services = _services(temporary_directory(self))
        network = LoopbackNetwork(services)
        sent_back = []
        agent = FlushingAgent(RemoteNodeAgent(
            AgentConnections(network.connect, log=sent_back.append), A),
            network)
        key = make_node_key()
        self.successResultOf(agent.install_node_key(key))
        self.assertEqual(self.successResultOf(agent.report()).node_key,
                         key.status())
        secret = key.private_key.splitlines()[1]
        self.assertNotIn(secret, repr(logger.messages))
        self.assertNotIn(secret, repr(sent_back))


class DeployNodeKeyTests(SynchronousTestCase):
    """
    A deploy installs the node key where it is not current, before
    anything else, and a second deploy does nothing.
    """

    def setUp(self):
        self.cluster = FakeCluster([A, B])
        self.deployment = Deployment(nodes=[Node(address=A), Node(address=B)])
        self.pair = NodeKeyPair.generate()
        self.host_keys = {A: _host_key(), B: _host_key()}

    def deploy(self, **options):
        """
        :return: The ``DeployResult`` of a deploy to the fake cluster.
        """
        return self.successResultOf(deploy(
            self.deployment, self.cluster.agents, node_key=self.pair,
            host_keys=lambda: self.host_keys, **options))

    def test_installed_then_noop(self):
        """
        The first deploy installs the key with the verified host keys and
        the nodes' identities (each node's, from its address) on both
        nodes; the second plans nothing.
        """
        result = self.deploy()
        expected, _ = nodes_known_hosts([A, B], {}, self.host_keys)
        callers = nodes_callers([A, B], {}, {
            a: self.cluster.agents[a].state.node_id for a in (A, B)})
        self.assertEqual(callers.splitlines(), [
            "%s %s" % (self.cluster.agents[a].state.node_id, a)
            for a in (A, B)])
        self.assertEqual(
            leaves(result.plan),
            [InstallNodeKey(node=a, key=self.pair.node_key(expected, callers))
             for a in (A, B)])
        self.assertEqual(self.cluster.agents[A].state.node_key,
                         self.pair.node_key(expected, callers).status())
        self.assertEqual(leaves(self.deploy().plan), [])

    def test_dry_run(self):
        """
        A dry run shows the installs and installs nothing.
        """
        result = self.deploy(dry_run=True)
        self.assertEqual(len(leaves(result.plan)), 2)
        self.assertIsNone(self.cluster.agents[A].state.node_key)

    def test_host_key_changed(self):
        """
        A node whose host key the client now sees differently gets every
        node's known_hosts refreshed.
        """
        self.deploy()
        self.host_keys[B] = _host_key()
        self.assertEqual(len(leaves(self.deploy().plan)), 2)

    def test_host_key_unknown(self):
        """
        Without a node's verified host key, no node key is installed.
        """
        del self.host_keys[B]
        self.assertEqual(leaves(self.deploy().plan), [])


class HostKeysTests(SynchronousTestCase):
    """
    Runners report the host keys of the nodes they reached.
    """

    def test_memory(self):
        """
        ``MemoryCommandRunner`` reports the keys it was given for the nodes
        a command ran on.
        """
        runner = MemoryCommandRunner()
        runner.add_handler(None, ["true"], lambda argv, stdin: b"")
        key = _host_key()
        runner.known_host_keys.update({A: key, B: _host_key()})
        self.successResultOf(runner.run(A, ["true"]))
        self.assertEqual(runner.host_keys(), {A: key})


# ---------------------------------------------------------------------------
# Against a real sshd on loopback: the installed key, its forced command and
# host key checking as ssh(1) applies them.  Only refused commands are sent:
# nothing reaches ZFS.

@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """
    A private sshd on loopback for this module's real tests.
    """
    yield from running_sshd(tmp_path_factory)


def _installed(sshd, tmp_path, known_hosts, peer_socket=None):
    """
    Install a fresh node key into the sshd's ``authorized_keys`` (put back
    as it was by the caller) for caller ``node-a`` at 127.0.0.1, with a
    forced command running this tree's ``flocker-node-bridge --peer``
    (towards ``peer_socket``, if given).

    :return: ``(store, remote)``: the ``NodeKeyStore`` and an ``SSHRemote``
        using the key and its known_hosts as pushes do.
    """
    command = tmp_path / "flocker-node-bridge"
    socket_words = [] if peer_socket is None else ["--socket", peer_socket]
    command.write_text(
        "#!%s\nimport sys\nsys.path.insert(0, %r)\n"
        "from flocker._bridge import main\n"
        "sys.exit(main(sys.argv[1:] + %r))\n" % (
            sys.executable, _TREE, socket_words))
    command.chmod(0o755)
    store = NodeKeyStore(str(tmp_path / "node-key"),
                         os.path.join(sshd.directory, "authorized_keys"),
                         str(command))
    store.install(NodeKeyPair.generate().node_key(
        known_hosts, callers="node-a 127.0.0.1\n"))
    remote = SSHRemote(identity=store.identity_path,
                       known_hosts=store.known_hosts_path,
                       only_known_hosts=True, port=sshd.port,
                       user=getpass.getuser())
    return store, remote


@pytest.fixture
def authorized_keys(sshd):
    """
    The sshd's ``authorized_keys``, restored after the test.
    """
    path = os.path.join(sshd.directory, "authorized_keys")
    with open(path, "rb") as f:
        before = f.read()
    yield path
    with open(path, "wb") as f:
        f.write(before)


def test_forced_command_refuses(sshd, tmp_path, authorized_keys):
    """
    Logged in with the node key, a command that is not a volume transfer
    is refused by the agent behind the forced command in one line (exit
    status 1), the volume service never asked; the operator's keys in the
    file are still there.
    """
    peer_socket = str(tmp_path / "peer.sock")
    receiver = _Receiver()

    def listen(reactor):
        return reactor.listenUNIX(peer_socket, PeerFactory(
            reactor, lambda: receiver, _Router()), mode=0o600)
    port = run_in_reactor(listen)
    try:
        _, remote = _installed(sshd, tmp_path,
                               sshd.known_hosts_line("127.0.0.1").decode(),
                               peer_socket)
        result = subprocess.run(remote.argv("127.0.0.1", ["list"]),
                                capture_output=True, timeout=60)
    finally:
        run_in_reactor(lambda reactor: port.stopListening())
    assert (result.returncode, result.stdout, result.stderr.decode()) == (
        1, b"", "flocker-node-bridge: refused: only 'flocker-volume "
        "receive NAME' is allowed (acquire, and everything else, is the "
        "operator's)\n")
    assert receiver.calls == []
    with open(authorized_keys, "rb") as f:
        lines = f.read().splitlines()
    assert sshd.client_key.public().toString("openssh") in lines


def test_unknown_host_key(sshd, tmp_path, authorized_keys):
    """
    A target whose host key is not in the node key's known_hosts is refused
    by ssh before logging in, and that becomes one ``HostKeyRejected`` line
    naming the target.
    """
    store, remote = _installed(sshd, tmp_path, sshd.known_hosts_line(
        "127.0.0.2").decode())
    argv = remote.argv("127.0.0.1", ["receive", "web"])
    result = subprocess.run(argv, capture_output=True, timeout=60)
    error = remote_error("127.0.0.1", ProcessResult(
        argv=argv, stdout=result.stdout, stderr=result.stderr,
        exit_code=result.returncode, signal=None),
        known_hosts=store.known_hosts_path)
    assert result.returncode == 255
    assert isinstance(error, HostKeyRejected)
    assert error.message.startswith(
        "node 127.0.0.1: its SSH host key is not the one %s lists for it"
        % (store.known_hosts_path,))
