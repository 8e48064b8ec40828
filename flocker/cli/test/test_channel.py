"""
Tests for :mod:`flocker.cli._channel`: reaching a node's agent over real
OpenSSH, through a ``direct-streamlocal@openssh.com`` channel, and through
``flocker-node-bridge`` where sshd refuses such channels.
"""

import os
import sys

import pytest
from twisted.internet.defer import DeferredList

from flocker.node._fake import FakeCluster, FakeNodeError
from flocker.node._lock import DeployLock
from flocker.node._server import AgentFactory, AgentService
from flocker.testtools import run_in_reactor

from .._channel import BRIDGE, STREAMLOCAL, ssh_agent_connector
from .._remote import AgentConnections, NodeStepFailed, RemoteNodeAgent
from .._ssh import KnownHosts, SSHCommandRunner
from ._sshd import running_sshd

BRIDGE_COMMAND = [os.path.join(os.path.dirname(sys.executable),
                               "flocker-node-bridge")]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """
    A private sshd with OpenSSH's defaults (Unix socket forwarding on).
    """
    yield from running_sshd(tmp_path_factory)


@pytest.fixture(scope="module")
def strict_sshd(tmp_path_factory):
    """
    A private sshd refusing Unix socket forwarding.
    """
    yield from running_sshd(tmp_path_factory,
                            ["AllowStreamLocalForwarding no"])


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


def test_streamlocal(sshd, tmp_path):
    """
    Where sshd forwards Unix sockets, the agent is reached over a
    ``direct-streamlocal`` channel of the SSH connection.
    """
    state, way = _report(sshd, str(tmp_path / "agent.sock"))
    assert (state.address, way) == (sshd.addresses[0], STREAMLOCAL)


def test_bridge_fallback(strict_sshd, tmp_path):
    """
    Where sshd refuses Unix socket forwarding, the agent is reached
    through ``flocker-node-bridge``.
    """
    state, way = _report(strict_sshd, str(tmp_path / "agent.sock"))
    assert (state.address, way) == (strict_sshd.addresses[0], BRIDGE)


@pytest.mark.parametrize("server", ["sshd", "strict_sshd"])
def test_agent_not_running(server, request, tmp_path):
    """
    A node whose agent does not run gives one line naming the node and
    where to look, over either way; the node counts as unreachable.
    """
    server = request.getfixturevalue(server)
    failure, _ = _report(server, str(tmp_path / "agent.sock"), serve=False)
    assert isinstance(failure.value, NodeStepFailed)
    message = str(failure.value)
    assert message.startswith("%s: report: " % (server.addresses[0],))
    assert "systemctl status flocker-node" in message
    assert "\n" not in message
    assert failure.value.unreachable
