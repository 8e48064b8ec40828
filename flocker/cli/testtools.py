"""
Test and benchmark helpers for the deploy client: node agents reached in
memory.
"""

from twisted.internet.defer import fail, succeed
from zope.interface import implementer

from ..node._agent import INodeAgent
from ..node._server import AgentProtocol
from ..node.testtools import loopback
from ._channel import AgentUnavailable

__all__ = ["LoopbackNetwork", "FlushingAgent"]


class LoopbackNetwork(object):
    """
    Agents reached in memory: :meth:`connect` is a ``connect(address,
    protocol)`` for :class:`~flocker.cli._remote.AgentConnections`; nothing
    moves until :meth:`flush`.

    :ivar services: ``dict`` of node address to the
        :class:`~flocker.node._server.AgentService` answering for it; an
        address not in it has no agent running.
    :ivar pumps: ``dict`` of node address to its latest connection's pump
        (see :func:`flocker.node.testtools.loopback`).
    """

    def __init__(self, services, clock=None):
        """
        :param services: See :attr:`services`.
        :param clock: ``None``, or an ``IReactorTime`` at whose next turn
            whatever was written is delivered (see
            :func:`flocker.node.testtools.loopback`).
        """
        self.services = services
        self.pumps = {}
        self._clock = clock
        self._flushing = False

    def connect(self, address, protocol):
        service = self.services.get(address)
        if service is None:
            return fail(AgentUnavailable(
                address, "cannot open /run/flocker/agent.sock on the node: "
                "connect failed"))
        self.pumps[address] = loopback(protocol, AgentProtocol(service),
                                       self._clock)
        return succeed("loopback")

    def flush(self):
        """
        Deliver everything in flight on every connection until all are
        quiet.  (Called again by what a delivery sets off, it returns at
        once: the outer call goes on delivering.)
        """
        if self._flushing:
            return
        self._flushing = True
        try:
            while any(pump.pending() for pump in self.pumps.values()):
                for pump in list(self.pumps.values()):
                    pump.flush()
        finally:
            self._flushing = False

    def drop(self, address):
        """
        End the node's connection as a dead agent would.
        """
        pump = self.pumps[address]
        pump.close()
        pump.flush()


def _flushing(name):
    def call(self, *args, **kwargs):
        d = getattr(self._agent, name)(*args, **kwargs)
        self._network.flush()
        return d
    call.__name__ = name
    return call


@implementer(INodeAgent)
class FlushingAgent(object):
    """
    An agent whose every call is followed by flushing a
    :class:`LoopbackNetwork`, so that tests see results at once.
    """

    def __init__(self, agent, network):
        self._agent = agent
        self._network = network

    def __getattr__(self, name):
        return getattr(self._agent, name)


for _name in list(INodeAgent.names()) + ["release_lock"]:
    setattr(FlushingAgent, _name, _flushing(_name))
