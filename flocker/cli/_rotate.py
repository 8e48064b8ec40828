"""
``flocker-deploy --rotate-node-keys``: every node replaces its own
node-to-node key pair, with no moment at which a push between two nodes is
refused.

Each node's private key is made on that node and never leaves it, so the
rotation is a conversation with the nodes' agents, in steps, each on every
node before the next starts:

1. every node reports (taking the deploy lock: no deploy runs meanwhile);
2. ``prepare``: every node makes its next key pair beside the current one
   and reports it (``pending_public_key``); pushes still use the current
   key;
3. every node gets the nodes' trust naming both keys of each node, so the
   next keys are accepted everywhere while the current ones still are;
4. ``finish``: every node switches to its next key (a node refuses unless
   the trust installed on it names that key);
5. every node gets the trust naming only the new keys: the old ones open
   nothing any more.

A step that fails on some node stops the rotation there, and every state it
can stop in accepts every push: before step 4 each node pushes with a key
still authorised everywhere; after it, with a key authorised in step 3.  A
push that read the old key before step 4 and logs in after step 5 is
refused once and logs in again with the new key (see
``flocker.volume._push``).
Running the command again goes on from where it stopped (a node keeps the
next key it made), and a plain deploy meanwhile installs the trust from the
nodes' reports, both keys included.
"""

import attr

from eliot.twisted import DeferredContext
from twisted.internet.defer import DeferredList, maybeDeferred

from .._text import one_line
from ._deploy import gather_states
from ._logging import CLUSTER_ROTATE_KEYS
from ._nodekey import desired_node_key

__all__ = ["RotationResult", "rotate_node_keys"]


@attr.s(frozen=True, slots=True)
class RotationResult(object):
    """
    How a rotation went.

    :ivar rotated: ``dict`` of node address to ``(old fingerprint, new
        fingerprint)`` for the nodes that switched keys.
    :ivar failed: ``dict`` of node address to one line saying which step
        failed there and why (empty when it all worked).
    """
    rotated = attr.ib(factory=dict)
    failed = attr.ib(factory=dict)

    @property
    def ok(self):
        """
        Whether every node switched keys and got the final trust.
        """
        return not self.failed


class _Stopped(Exception):
    """
    A step failed on some nodes: ``failed`` maps each to its line.
    """

    def __init__(self, failed):
        Exception.__init__(self, failed)
        self.failed = failed


def _on_every_node(agents, step, call):
    """
    Run ``call(agent)`` on every node at once.

    :return: ``Deferred`` firing with ``None`` once all succeeded; failing
        with :class:`_Stopped` naming the nodes where it failed.
    """
    addresses = sorted(agents)
    d = DeferredList([maybeDeferred(call, agents[address])
                      for address in addresses], consumeErrors=True)

    def collect(results):
        failed = {address: "%s failed: %s" % (
            step, one_line(value.value) or value.type.__name__)
            for address, (ok, value) in zip(addresses, results) if not ok}
        if failed:
            raise _Stopped(failed)
    return d.addCallback(collect)


def rotate_node_keys(agents, resolved, host_keys, write=lambda line: None):
    """
    Rotate every node's key (see the module documentation).

    :param agents: ``dict`` of every deployment node's address to its
        ``INodeAgent`` (each holding the deploy lock through its calls).
    :param resolved: ``dict`` of node address to the IP address the client
        connected to.
    :param host_keys: Callable returning ``dict`` of connected address to
        the host ``Key`` the client verified there.
    :param write: Callable given one line per finished step.
    :return: ``Deferred`` firing with a :class:`RotationResult` (failures
        are in it, never an errback).
    """
    addresses = sorted(agents)
    before = {}

    def reported(step):
        def gathered(result):
            state, unreachable, locked = result
            if unreachable:
                raise _Stopped({address: "%s: no report: %s" % (
                    step, reason) for address, reason in unreachable.items()})
            missing = sorted(address for address in addresses
                             if state.nodes[address].node_key is None
                             or state.nodes[address].node_id is None)
            if missing:
                raise _Stopped({address: "%s: the node reported no key or "
                                "no identity (see flocker-node doctor)" % (
                                    step,) for address in missing})
            return state
        return gather_states(agents).addCallback(gathered)

    def install(state, step):
        node_key = desired_node_key(addresses, resolved, host_keys(), state)
        if node_key is None:
            raise _Stopped({address: "%s: the client has no verified host "
                            "key for every node" % (step,)
                            for address in addresses})
        d = _on_every_node(agents, step,
                           lambda agent: agent.install_node_key(node_key))
        return d.addCallback(lambda _: write(
            "node keys: %s: %d node keys on %d nodes" % (
                step, len(node_key.peers.splitlines()), len(addresses))))

    def remember(state):
        for address in addresses:
            before[address] = state.nodes[address].node_key.fingerprint

    def step(name):
        d = _on_every_node(agents, name,
                           lambda agent: agent.rotate_node_key(name))
        return d.addCallback(lambda _: write("node keys: %s on %d nodes" % (
            name, len(addresses))))

    def finished(state):
        return RotationResult(rotated={
            address: (before[address],
                      state.nodes[address].node_key.fingerprint)
            for address in addresses})

    def stopped(failure):
        failure.trap(_Stopped)
        return RotationResult(failed=failure.value.failed)

    action = CLUSTER_ROTATE_KEYS(nodes=len(addresses))
    with action.context():
        d = DeferredContext(reported("report"))
        d.addCallback(remember)
        d.addCallback(lambda _: step("prepare"))
        d.addCallback(lambda _: reported("report after prepare"))
        d.addCallback(install, "install old and next keys")
        d.addCallback(lambda _: step("finish"))
        d.addCallback(lambda _: reported("report after finish"))
        d.addCallback(lambda state: install(state, "install new keys only")
                      .addCallback(lambda _: state))
        d.addCallback(finished)
        d.addErrback(stopped)
        return d.addActionFinish()
