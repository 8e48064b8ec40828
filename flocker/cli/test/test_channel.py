"""
Tests for :mod:`flocker.cli._channel`: reaching a node's agent over real
OpenSSH, through a ``direct-streamlocal@openssh.com`` channel, and through
``flocker-node-bridge`` where sshd refuses such channels.
"""

import os
import sys

from twisted.internet.defer import DeferredList
from twisted.trial.unittest import SynchronousTestCase

from flocker.node._fake import FakeCluster, FakeNodeError
from flocker.node._lock import DeployLock
from flocker.node._server import AgentFactory, AgentService
from flocker.testtools import run_in_reactor, temporary_path

from .._channel import BRIDGE, STREAMLOCAL, ssh_agent_connector
from .._remote import AgentConnections, NodeStepFailed, RemoteNodeAgent
from flocker._ssh import KnownHosts, SSHCommandRunner
from ._sshd import class_sshd

BRIDGE_COMMAND = [os.path.join(os.path.dirname(sys.executable),
                               "flocker-node-bridge")]


def _report(server, socket_path, serve=True):
    """
    Serve an agent (over a fake node) on ``socket_path`` in this process,
    ask for its report through ``server``'s SSH, and stop.

    :return: ``(report or failure, way the agent was reached)``.
    """
    address = server.addresses[0]

    def go(reactor):
        port = None
        if serve:
            cluster = FakeCluster([address])
            service = AgentService(
                reactor, lambda _: cluster.agents[address],
                DeployLock(socket_path + ".lock"),
                expected_errors=(FakeNodeError,))
            port = reactor.listenUNIX(socket_path, AgentFactory(service),
                                      mode=0o600)
        runner = SSHCommandRunner(
            reactor, KnownHosts.from_path(server.known_hosts_path),
            [server.client_key], port=server.port)
        connections = AgentConnections(ssh_agent_connector(
            runner, socket_path=socket_path, bridge=BRIDGE_COMMAND))
        d = RemoteNodeAgent(connections, address).report()
        outcome = []
        d.addBoth(outcome.append)

        def stop(_):
            closing = [connections.close(), runner.close()]
            if port is not None:
                closing.append(port.stopListening())
            return DeferredList(closing)
        d.addCallback(stop)
        return d.addCallback(lambda _: (outcome[0],
                                        connections.ways.get(address)))
    return run_in_reactor(go)


class _AgentNotRunningMixin(object):
    """
    What holds over either way of reaching the agent; the ``TestCase``
    sets ``server`` in ``setUpClass``.
    """

    def test_agent_not_running(self):
        """
        A node whose agent does not run gives one line naming the node and
        where to look, over either way; the node counts as unreachable.
        """
        failure, _ = _report(self.server, str(temporary_path(self)
                                               / "agent.sock"), serve=False)
        self.assertIsInstance(failure.value, NodeStepFailed)
        message = str(failure.value)
        self.assertTrue(
            message.startswith("%s: report: " % (self.server.addresses[0],)),
            message)
        self.assertIn("systemctl status flocker-node", message)
        self.assertNotIn("\n", message)
        self.assertTrue(failure.value.unreachable)


class StreamLocalTests(_AgentNotRunningMixin, SynchronousTestCase):
    """
    A private sshd with OpenSSH's defaults (Unix socket forwarding on).
    """

    @classmethod
    def setUpClass(cls):
        cls.server = class_sshd(cls)

    def test_streamlocal(self):
        """
        Where sshd forwards Unix sockets, the agent is reached over a
        ``direct-streamlocal`` channel of the SSH connection.
        """
        state, way = _report(self.server,
                             str(temporary_path(self) / "agent.sock"))
        self.assertEqual((state.address, way),
                         (self.server.addresses[0], STREAMLOCAL))


class BridgeTests(_AgentNotRunningMixin, SynchronousTestCase):
    """
    A private sshd refusing Unix socket forwarding.
    """

    @classmethod
    def setUpClass(cls):
        cls.server = class_sshd(cls, ["AllowStreamLocalForwarding no"])

    def test_bridge_fallback(self):
        """
        Where sshd refuses Unix socket forwarding, the agent is reached
        through ``flocker-node-bridge``.
        """
        state, way = _report(self.server,
                             str(temporary_path(self) / "agent.sock"))
        self.assertEqual((state.address, way),
                         (self.server.addresses[0], BRIDGE))
