"""
Test and benchmark helpers for the node package: synthetic clusters of any
size built from the real models, and ``flocker-node serve`` run in memory.
"""

import io

from pyrsistent import pmap
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from .._model import (
    Application, AttachedVolume, ClusterState, Deployment, Link, Node,
    NodeKey, NodeState, Port, Route, VolumeState,
)

__all__ = ["synthetic_cluster", "converged_state", "MemoryNodeSession",
           "make_node_key", "RecordingProgress"]


class RecordingProgress(object):
    """
    A volume transfer's progress object (``update``/``finish``) that
    records what it is told.

    :ivar updates: ``list`` of ``(sent, total)``.
    :ivar bool finished: Whether ``finish`` was called.
    """

    def __init__(self):
        self.updates = []
        self.finished = False

    def update(self, sent, total):
        """
        :param int sent: Bytes sent so far.
        :param total: Bytes to send in all, or ``None``.
        """
        self.updates.append((sent, total))

    def finish(self):
        """
        The transfer ended.
        """
        self.finished = True


def make_node_key(known_hosts="10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"
                  "AAAAIL2XhrYMv2OQLjnhdY1sKjMcXOv7aaoPBHN0wlXwnkU8\n"):
    """
    :param str known_hosts: The known_hosts text of the key.
    :return: A new random ``NodeKey`` (a real ed25519 key pair).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
    )
    from twisted.conch.ssh.keys import Key
    key = Key(Ed25519PrivateKey.generate())
    return NodeKey(
        private_key=key.toString("openssh", subtype="v1").decode("ascii"),
        public_key=key.public().toString("openssh").decode("ascii"),
        known_hosts=known_hosts)


def converged_state(deployment):
    """
    :param Deployment deployment: A desired state.
    :return: The ``ClusterState`` of a cluster that has converged to it:
        every application running where it should, its volume owned there,
        every node routing every other node's external ports.
    """
    own = {node.address: frozenset(
        Route(port.external, node.address, port.protocol)
        for application in node.applications for port in application.ports)
        for node in deployment.nodes}
    everything = frozenset().union(*own.values()) if own else frozenset()
    routes = {address: everything - mine for address, mine in own.items()}
    states = {}
    for node in deployment.nodes:
        applications = {a.name: a for a in node.applications}
        volumes = {v.name: VolumeState(name=v.name, owned=True, size=1 << 20,
                                       snapshots=["s1"])
                   for a in node.applications for v in a.all_volumes()}
        states[node.address] = NodeState(
            address=node.address, applications=applications,
            running=applications.keys(), volumes=volumes,
            routes=routes[node.address])
    return ClusterState(nodes=states)


def synthetic_cluster(nodes, apps, moved=0.0, changed=0.0):
    """
    Build a deployment and a current state that differs from it.

    Every application publishes one port; every third has a volume and every
    fifth links to the application before it.  Applications are spread
    round-robin over the nodes.

    :param int nodes: Number of nodes.
    :param int apps: Number of applications.
    :param float moved: Fraction of applications currently on the previous
        node (so the plan moves them).
    :param float changed: Fraction of applications currently running an
        older image (so the plan recreates them).
    :return: ``(Deployment, ClusterState)``.
    """
    addresses = ["10.%d.%d.%d" % (i // 65536, (i // 256) % 256, i % 256 + 1)
                 for i in range(nodes)]
    placed = {address: [] for address in addresses}
    for i in range(apps):
        links = ([Link(local_port=5000, remote_port=10000 + i - 1,
                       alias="app%d" % (i - 1,))]
                 if i % 5 == 4 else [])
        application = Application(
            name="app%d" % (i,), image="flocker/busybox:latest",
            environment=pmap({"INDEX": str(i)}),
            ports=[Port(internal=80, external=10000 + i)],
            volume=(AttachedVolume(mountpoint="/data") if i % 3 == 0
                    else None),
            links=links)
        placed[addresses[i % nodes]].append(application)
    deployment = Deployment(nodes=[Node(address=a, applications=placed[a])
                                   for a in addresses])
    state = converged_state(deployment)
    moved_every = int(1 / moved) if moved else 0
    changed_every = int(1 / changed) if changed else 0
    current = {a: dict(state.nodes[a].applications) for a in addresses}
    volumes = {a: dict(state.nodes[a].volumes) for a in addresses}
    for i in range(apps):
        home = addresses[i % nodes]
        name = "app%d" % (i,)
        if moved_every and i % moved_every == 1:
            previous = addresses[(i - 1) % nodes]
            current[previous][name] = current[home].pop(name)
            if name in volumes[home]:
                volumes[previous][name] = volumes[home].pop(name)
        elif changed_every and i % changed_every == 2:
            current[home][name] = Application(
                name=name, image="flocker/busybox:old",
                ports=current[home][name].ports,
                volume=current[home][name].volume,
                links=current[home][name].links,
                environment=current[home][name].environment)
    # Routes as the nodes have them: pointing where applications run now,
    # before the deploy moves them.
    now = Deployment(nodes=[Node(address=a, applications=current[a].values())
                            for a in addresses])
    routes = converged_state(now) if moved_every else state
    nodes_state = {
        a: NodeState(address=a, applications=current[a],
                     running=current[a].keys(), volumes=volumes[a],
                     routes=routes.nodes[a].routes)
        for a in addresses}
    return deployment, ClusterState(nodes=nodes_state)


class _SessionOutput(object):
    """
    The standard output of an in-memory node session, handed to the client
    as it is written.
    """

    def __init__(self, received):
        self._received = received
        self.disconnecting = False

    def write(self, data):
        self._received(data)

    def loseConnection(self):
        self.disconnecting = True


class MemoryNodeSession(object):
    """
    ``flocker-node serve`` in memory over one node agent: what a
    ``MemoryCommandRunner`` stream handler hands back (``write``,
    ``close_input``, ``ended``), so the client's session code talks to the
    real node side.
    """

    def __init__(self, argv, received, agent, send_log=True, clock=None):
        """
        :param argv: The command line of the session.
        :param received: Callable given the session's output.
        :param agent: The node's ``INodeAgent``.
        :param bool send_log: Whether this session sends the process's
            eliot messages back.  Sessions share one process here, so when
            there are many only one should, or every node's messages would
            come back once per session.
        :param clock: The node's ``IReactorTime`` (timing its progress
            lines), or ``None`` for a clock of its own that never moves.
        """
        from .script import node_main
        self.ended = Deferred()
        self._protocol = None

        def connect(reactor, protocol):
            self._protocol = protocol
            protocol.makeConnection(_SessionOutput(received))
            if not send_log:
                protocol._stop_logging()
        finished = node_main(
            Clock() if clock is None else clock, argv[1:], b"", io.StringIO(), io.StringIO(), {},
            make_agent=lambda reactor, options, environ: agent,
            connect=connect)
        finished.addCallback(lambda code: self.ended.callback(
            (code, None, b"")))

    def write(self, data):
        """
        :param bytes data: Written to the session's standard input.
        """
        self._protocol.dataReceived(data)

    def close_input(self):
        """
        End the session's standard input.
        """
        self._protocol.readConnectionLost()
