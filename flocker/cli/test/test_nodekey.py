"""
Tests for the nodes' trust as the deploy client builds it
(``flocker.cli._nodekey``), how the remote agent installs it, how a deploy
plans it, the rotation (``flocker.cli._rotate``), and, against a real sshd,
that a node's key is its identity.
"""

import getpass
import os
import sys


from twisted.conch.ssh.keys import Key
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from flocker._change import leaves
from flocker._model import (
    ClusterState, Deployment, Node, NodeKey, NodeKeyStatus, NodeState,
    parse_peers,
)
from flocker.cli._deploy import deploy
from flocker.cli._nodekey import (
    desired_node_key, nodes_known_hosts, nodes_peers,
)
from flocker.cli._remote import AgentConnections, RemoteNodeAgent
from flocker.cli._rotate import rotate_node_keys
from flocker.cli.testtools import FlushingAgent, LoopbackNetwork
from flocker._ssh import MemoryCommandRunner
from flocker.node._changes import InstallNodeKey
from flocker.node._fake import FakeCluster
from flocker.node._peer import PeerFactory
from flocker.node.test.test_peer import _Receiver, _Router
from flocker.node.testtools import make_public_key
from flocker.testtools import (
    run_in_reactor, temporary_directory, temporary_path,
)
from flocker.node._peer_remote import AgentRemote
from flocker.volume._errors import AuthenticationRefused
from flocker.volume._nodekey import NodeKeyStore, generate_key_pair

from ...testtools import capture_logging
from ._sshd import class_sshd
from .test_remote import _services

#: The top of this source tree (what the forced command imports).
_TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def _host_key():
    return Key.fromString(generate_key_pair()[0]).public()


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


class NodesPeersTests(SynchronousTestCase):
    """
    ``nodes_peers`` lists each node's own reported keys.
    """

    def test_lines(self):
        """
        One line per reported key, sorted by address: the node's identity,
        the address the deployment names it by (and the IP the client
        reached it at when different), the key; a node rotating its key
        has two lines; a node with no identity or no key has none.
        """
        a, b, b_next, c = (make_public_key() for _ in range(4))
        state = ClusterState(nodes={
            A: NodeState(address=A, node_id="node-a",
                         node_key=NodeKeyStatus(public_key=a)),
            "b.example": NodeState(
                address="b.example", node_id="node-b",
                node_key=NodeKeyStatus(public_key=b,
                                       pending_public_key=b_next)),
            C: NodeState(address=C, node_key=NodeKeyStatus(public_key=c)),
        })
        text = nodes_peers([A, "b.example", C, "d.example"],
                           {"b.example": B}, state)
        self.assertEqual(text, "node-a %s %s\nnode-b b.example,%s %s\n"
                         "node-b b.example,%s %s\n" % (A, a, B, b, B, b_next))
        self.assertEqual(len(parse_peers(text)), 3)

    def test_desired(self):
        """
        The trust to install is the known_hosts and the peers; none while
        a node's verified host key is missing.
        """
        state = ClusterState(nodes={A: NodeState(
            address=A, node_id="node-a",
            node_key=NodeKeyStatus(public_key=make_public_key()))})
        host_keys = {A: _host_key()}
        key = desired_node_key([A], {}, host_keys, state)
        self.assertEqual(key, NodeKey(
            known_hosts=nodes_known_hosts([A], {}, host_keys)[0],
            peers=nodes_peers([A], {}, state)))
        self.assertIsNone(desired_node_key([A, B], {}, host_keys, state))


class RemoteInstallTests(SynchronousTestCase):
    """
    ``RemoteNodeAgent`` reaches a node's own key through the agent
    protocol.
    """

    @capture_logging(None)
    def test_install(self, logger):
        """
        The node reports its own key; it gets the trust; neither the
        client's log nor the node's log messages sent back hold its private
        key.
        """
        agents, services = _services(temporary_directory(self))
        network = LoopbackNetwork(services)
        sent_back = []
        agent = FlushingAgent(RemoteNodeAgent(
            AgentConnections(network.connect, log=sent_back.append), A),
            network)
        report = self.successResultOf(agent.report())
        key = NodeKey(known_hosts="", peers="node-b %s %s\n" % (
            B, make_public_key()))
        self.successResultOf(agent.install_node_key(key))
        self.successResultOf(agent.rotate_node_key("prepare"))
        after = self.successResultOf(agent.report()).node_key
        self.assertEqual((after.public_key, after.installed),
                         (report.node_key.public_key, key.digest()))
        store = agents[0].node_keys
        for path in (store.identity_path, store.pending_path):
            with open(path) as f:
                secret = f.read().splitlines()[1]
            self.assertNotIn(secret, repr(logger.messages))
            self.assertNotIn(secret, repr(sent_back))


class DeployNodeKeyTests(SynchronousTestCase):
    """
    A deploy installs the nodes' trust where it is not current, before
    anything else, and a second deploy does nothing.
    """

    def setUp(self):
        self.cluster = FakeCluster([A, B])
        self.deployment = Deployment(nodes=[Node(address=A), Node(address=B)])
        self.host_keys = {A: _host_key(), B: _host_key()}

    def deploy(self, **options):
        """
        :return: The ``DeployResult`` of a deploy to the fake cluster.
        """
        return self.successResultOf(deploy(
            self.deployment, self.cluster.agents, install_keys=True,
            host_keys=lambda: self.host_keys, **options))

    def test_installed_then_noop(self):
        """
        The first deploy installs on both nodes the verified host keys and
        each node's own reported key (its identity, from its address); the
        second plans nothing.
        """
        result = self.deploy()
        known_hosts, _ = nodes_known_hosts([A, B], {}, self.host_keys)
        expected = NodeKey(known_hosts=known_hosts, peers="".join(
            "%s %s %s\n" % (self.cluster.agents[a].state.node_id, a,
                            self.cluster.agents[a].state.node_key.public_key)
            for a in (A, B)))
        self.assertEqual(leaves(result.plan),
                         [InstallNodeKey(node=a, key=expected)
                          for a in (A, B)])
        self.assertEqual(self.cluster.agents[A].state.node_key.installed,
                         expected.digest())
        self.assertEqual(leaves(self.deploy().plan), [])

    def test_dry_run(self):
        """
        A dry run shows the installs and installs nothing.
        """
        result = self.deploy(dry_run=True)
        self.assertEqual(len(leaves(result.plan)), 2)
        self.assertIsNone(self.cluster.agents[A].state.node_key.installed)

    def test_host_key_changed(self):
        """
        A node whose host key the client now sees differently gets every
        node's trust refreshed.
        """
        self.deploy()
        self.host_keys[B] = _host_key()
        self.assertEqual(len(leaves(self.deploy().plan)), 2)

    def test_node_key_changed(self):
        """
        A node reporting another key of its own (a rotation left half
        done) gets every node's trust refreshed.
        """
        self.deploy()
        self.successResultOf(self.cluster.agents[B].rotate_node_key(
            "prepare"))
        self.assertEqual(len(leaves(self.deploy().plan)), 2)

    def test_host_key_unknown(self):
        """
        Without a node's verified host key, no trust is installed.
        """
        del self.host_keys[B]
        self.assertEqual(leaves(self.deploy().plan), [])

    def test_not_asked(self):
        """
        Without ``install_keys`` (a failover) nothing is installed.
        """
        self.assertEqual(leaves(self.successResultOf(deploy(
            self.deployment, self.cluster.agents,
            host_keys=lambda: self.host_keys)).plan), [])


class _Watched(object):
    """
    An ``INodeAgent`` wrapper that, after every call of the rotation, checks
    that every node's current key is accepted by every other node (listed
    in the trust installed there): a push would be refused otherwise.
    """

    def __init__(self, cluster, address, windows):
        self._cluster = cluster
        self._agent = cluster.agents[address]
        self._windows = windows

    def __getattr__(self, name):
        method = getattr(self._agent, name)

        def call(*args):
            return method(*args).addCallback(self._check, name)
        return call

    def _check(self, result, name):
        agents = self._cluster.agents
        for pusher in agents.values():
            key = pusher.state.node_key.public_key
            for target in agents.values():
                installed = target.installed_node_key
                if target is pusher or installed is None:
                    continue
                if key not in installed.public_keys(pusher.state.node_id):
                    self._windows.append((name, pusher.address,
                                          target.address))
        return result


class RotationTests(SynchronousTestCase):
    """
    ``rotate_node_keys`` replaces every node's key with no moment where a
    push would be refused.
    """

    def setUp(self):
        self.cluster = FakeCluster([A, B, C])
        self.deployment = Deployment(nodes=[Node(address=a)
                                            for a in (A, B, C)])
        self.host_keys = {a: _host_key() for a in (A, B, C)}
        self.successResultOf(deploy(
            self.deployment, self.cluster.agents, install_keys=True,
            host_keys=lambda: self.host_keys))
        self.windows = []
        self.agents = {a: _Watched(self.cluster, a, self.windows)
                       for a in (A, B, C)}

    def rotate(self):
        lines = []
        result = self.successResultOf(rotate_node_keys(
            self.agents, {}, lambda: self.host_keys, lines.append))
        return result, lines

    def test_rotated(self):
        """
        Every node has a new key; the trust installed everywhere names
        exactly the new keys; after every step each node's current key was
        accepted by every other; the result gives old and new fingerprints.
        """
        before = {a: agent.state.node_key
                  for a, agent in self.cluster.agents.items()}
        result, lines = self.rotate()
        after = {a: agent.state.node_key
                 for a, agent in self.cluster.agents.items()}
        self.assertTrue(result.ok)
        self.assertEqual(result.rotated, {
            a: (before[a].fingerprint, after[a].fingerprint)
            for a in (A, B, C)})
        for a in (A, B, C):
            self.assertNotEqual(before[a].public_key, after[a].public_key)
            self.assertIsNone(after[a].pending_public_key)
            keys = [key for _, _, key in parse_peers(
                self.cluster.agents[a].installed_node_key.peers)]
            self.assertEqual(sorted(keys), sorted(
                after[x].public_key for x in (A, B, C)))
        self.assertEqual(self.windows, [])
        self.assertEqual(len(lines), 4)

    def test_then_deploy_noop(self):
        """
        After a rotation a deploy has nothing to install.
        """
        self.rotate()
        self.assertEqual(leaves(self.successResultOf(deploy(
            self.deployment, self.cluster.agents, install_keys=True,
            host_keys=lambda: self.host_keys)).plan), [])

    def test_step_fails(self):
        """
        A step failing on one node stops the rotation with one line naming
        the node and step; every node's key is still accepted everywhere;
        running it again finishes it.
        """
        self.cluster.failures.add((B, "rotate_node_key"))
        result, _ = self.rotate()
        self.assertEqual(list(result.failed), [B])
        self.assertIn("prepare failed: ", result.failed[B])
        self.assertEqual(result.rotated, {})
        self.cluster.failures.clear()
        result, _ = self.rotate()
        self.assertTrue(result.ok)
        self.assertEqual(self.windows, [])

    def test_unreachable(self):
        """
        A node that does not report stops the rotation before any change.
        """
        self.cluster.failures.add((B, "report"))
        before = {a: agent.state.node_key
                  for a, agent in self.cluster.agents.items()}
        result, _ = self.rotate()
        self.assertEqual(list(result.failed), [B])
        self.assertEqual({a: agent.state.node_key for a, agent
                          in self.cluster.agents.items()}, before)


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
# Against a real sshd on loopback: the installed trust, its forced command
# and host key checking as ssh(1) applies them.  Nothing reaches ZFS: the
# peer socket is served over a receiver that only records.

def _bridge(tmp_path, peer_socket):
    """
    :return: The path of a ``flocker-node-bridge`` running this tree's
        bridge (towards ``peer_socket``, if given).
    """
    command = tmp_path / "flocker-node-bridge"
    socket_words = [] if peer_socket is None else ["--socket", peer_socket]
    command.write_text(
        "#!%s\nimport sys\nsys.path.insert(0, %r)\n"
        "from flocker._bridge import main\n"
        "sys.exit(main(sys.argv[1:] + %r))\n" % (
            sys.executable, _TREE, socket_words))
    command.chmod(0o755)
    return str(command)


def _installed(sshd, tmp_path, known_hosts, peer_socket=None,
               others=()):
    """
    Two nodes' stores: the pushing node ``node-a`` (its own key, made
    here, at 127.0.0.1) and the target, whose ``authorized_keys`` is the
    sshd's (put back as it was by the caller).  Both get the same trust:
    ``known_hosts``, ``node-a``'s key and ``others`` (``(node_id, source,
    public_key)``).

    :return: ``node-a``'s ``NodeKeyStore``.
    """
    command = _bridge(tmp_path, peer_socket)
    store = NodeKeyStore(str(tmp_path / "node-key"),
                         str(tmp_path / "a-home" / "authorized_keys"),
                         command)
    target = NodeKeyStore(str(tmp_path / "target-key"),
                          os.path.join(sshd.directory, "authorized_keys"),
                          command)
    peers = [("node-a", "127.0.0.1", store.ensure())] + list(others)
    trust = NodeKey(known_hosts=known_hosts, peers="".join(
        "%s %s %s\n" % peer for peer in peers))
    store.install(trust)
    target.install(trust)
    return store


def agent_push(sshd, store, stream, words=("receive", "app"),
               address="127.0.0.1", starting=lambda: None):
    """
    Start ``words`` on ``address`` through an ``AgentRemote`` logging in
    with ``store``'s key (as a node's agent pushes), write ``stream`` and
    close it, then collect every line and how it ended.

    :param starting: Called once the start was asked for, before its
        connection is made (which happens in a later reactor turn).
    :return: ``(lines, result)``.
    :raises TargetUnreachable: As ``AgentRemote.start`` fails.
    """
    @inlineCallbacks
    def push(reactor):
        remote = AgentRemote(reactor, store, port=sshd.port,
                             username=getpass.getuser())
        try:
            started = remote.start(address, list(words))
            starting()
            command, stdin = yield started
            os.write(stdin, stream)
            os.close(stdin)
            lines = []
            while True:
                line = yield command.next_line()
                if line is None:
                    break
                lines.append(line)
            result = yield command.ended
        finally:
            yield remote.close()
        return lines, result
    return run_in_reactor(push)


def authorized_keys_for(test, sshd):
    """
    :param test: The ``TestCase`` (its ``addCleanup`` restores the file).
    :param sshd: The :class:`SSHServer`.
    :return: The path of the sshd's ``authorized_keys``, restored as it
        is now once ``test`` ends.
    """
    path = os.path.join(sshd.directory, "authorized_keys")
    with open(path, "rb") as f:
        before = f.read()

    def restore():
        with open(path, "wb") as f:
            f.write(before)
    test.addCleanup(restore)
    return path


def receiving_for(test):
    """
    :param test: The ``TestCase`` (its ``addCleanup`` stops serving).
    :return: ``(path, receiver)``: a peer socket served over a recording
        receiver until ``test`` ends.
    """
    peer_socket = str(temporary_path(test) / "peer.sock")
    receiver = _Receiver()
    port = run_in_reactor(lambda reactor: reactor.listenUNIX(
        peer_socket, PeerFactory(reactor, lambda: receiver, _Router()),
        mode=0o600))
    test.addCleanup(run_in_reactor, lambda reactor: port.stopListening())
    return peer_socket, receiver


class RealSSHDTests(SynchronousTestCase):
    """
    Against a private sshd on loopback: the installed key and its forced
    command, reached as a node's agent reaches other nodes.
    """

    @classmethod
    def setUpClass(cls):
        cls.sshd = class_sshd(cls)

    def test_forced_command_refuses(self):
        """
        Logged in with a node's key, a command that is not a volume transfer
        is refused by the agent behind the forced command in one line (exit
        status 1), the volume service never asked; the operator's keys in the
        file are still there.
        """
        sshd = self.sshd
        authorized_keys = authorized_keys_for(self, sshd)
        peer_socket, receiver = receiving_for(self)
        store = _installed(sshd, temporary_path(self),
                           sshd.known_hosts_line("127.0.0.1").decode(),
                           peer_socket)
        lines, result = agent_push(sshd, store, b"", words=["list"])
        self.assertEqual(
            (result.exit_code, lines, result.stderr.decode()),
            (1, [], "flocker-node-bridge: refused: only 'flocker-volume "
             "receive NAME' is allowed (acquire, and everything else, is the "
             "operator's)\n"))
        self.assertEqual(receiver.calls, [])
        with open(authorized_keys, "rb") as f:
            lines = f.read().splitlines()
        self.assertIn(sshd.client_key.public().toString("openssh"), lines)

    def test_key_is_the_identity(self):
        """
        Each key lets in its own node only: ``node-a``'s key reaches the
        target's agent as ``node-a``; ``node-b``'s key, authorised from
        ``node-b``'s address, is refused by sshd from ``node-a``'s; a key the
        trust does not list (the old shared key, say) is refused; nothing
        reaches the receiver but ``node-a``'s push.
        """
        sshd = self.sshd
        authorized_keys_for(self, sshd)
        peer_socket, receiver = receiving_for(self)
        tmp_path = temporary_path(self)
        b_store = NodeKeyStore(str(tmp_path / "b-key"),
                               str(tmp_path / "b-home" / "authorized_keys"),
                               "/bin/true")
        stranger = NodeKeyStore(str(tmp_path / "s-key"),
                                str(tmp_path / "s-home" / "authorized_keys"),
                                "/bin/true")
        store = _installed(
            sshd, tmp_path, sshd.known_hosts_line("127.0.0.1").decode(),
            peer_socket, others=[("node-b", "127.0.0.2", b_store.ensure())])
        stranger.ensure()
        _, pushed = agent_push(sshd, store, b"STREAM")
        self.assertEqual(pushed.exit_code, 0, pushed.stderr)
        for other in (b_store, stranger):
            with open(other.known_hosts_path, "w") as f:
                f.write(sshd.known_hosts_line("127.0.0.1").decode())
            self.assertRaises(AuthenticationRefused, agent_push, sshd, other,
                              b"STREAM")
        self.assertEqual(receiver.calls, [("app", "node-a")])
