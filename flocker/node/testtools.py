"""
Test and benchmark helpers for the node package: synthetic clusters of any
size built from the real models, and node agents reached in memory.
"""

from collections import deque

from pyrsistent import pmap
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from .._model import (
    Application, AttachedVolume, ClusterState, Deployment, Link, Node,
    NodeKey, NodeState, Port, ReplicationStatus, Route, VolumeState,
    desired_replication,
)

__all__ = ["synthetic_cluster", "converged_state", "loopback",
           "make_node_key", "make_public_key", "RecordingProgress"]


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


def make_public_key():
    """
    :return: A new random ed25519 public key line (``"ssh-ed25519 AAAA..."``,
        from a real key pair whose private half is dropped).
    """
    from ..volume._nodekey import generate_key_pair
    return generate_key_pair()[1]


def make_node_key(known_hosts="10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"
                  "AAAAIL2XhrYMv2OQLjnhdY1sKjMcXOv7aaoPBHN0wlXwnkU8\n",
                  peers=None):
    """
    :param str known_hosts: The known_hosts text.
    :param peers: ``list`` of ``(node_id, source, public_key)``, or
        ``None`` for one node, ``node-1`` at ``10.0.0.1`` with a new key.
    :return: A ``NodeKey``.
    """
    if peers is None:
        peers = [("node-1", "10.0.0.1", make_public_key())]
    return NodeKey(known_hosts=known_hosts, peers="".join(
        "%s %s %s\n" % peer for peer in peers))


def converged_state(deployment):
    """
    :param Deployment deployment: A desired state.
    :return: The ``ClusterState`` of a cluster that has converged to it:
        every application running where it should, its volume owned there,
        every node routing every other node's external ports, every
        primary replicating to its standbys.
    """
    own = {node.address: frozenset(
        Route(port.external, node.address, port.protocol)
        for application in node.applications for port in application.ports)
        for node in deployment.nodes}
    everything = frozenset().union(*own.values()) if own else frozenset()
    routes = {address: everything - mine for address, mine in own.items()}
    states = {}
    replication = desired_replication(deployment)
    for node in deployment.nodes:
        applications = {a.name: a for a in node.applications}
        volumes = {v.name: VolumeState(name=v.name, owned=True, size=1 << 20,
                                       snapshots=["s1"])
                   for a in node.applications for v in a.all_volumes()}
        states[node.address] = NodeState(
            address=node.address, applications=applications,
            running=applications.keys(), volumes=volumes,
            routes=routes[node.address],
            replication={name: ReplicationStatus(replication=r) for name, r in
                         replication[node.address].items()})
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


class _LoopbackTransport(object):
    """
    One side of an in-memory connection made by :func:`loopback`.
    """

    def __init__(self, pump, side):
        self._pump = pump
        self._side = side
        self.disconnecting = False

    def write(self, data):
        self._pump.send(self._side, data)

    def writeSequence(self, data):
        self.write(b"".join(data))

    def loseConnection(self):
        self.disconnecting = True
        self._pump.close()

    abortConnection = loseConnection

    def getPeer(self):
        return "loopback"

    def getHost(self):
        return "loopback"


class _Pump(object):
    """
    Holds what each side writes until :meth:`flush` delivers it (AMP sends
    a command before it waits for the answer, so delivering at once would
    answer a question not yet asked).
    """

    def __init__(self, protocols, clock=None):
        self._protocols = protocols
        self._queue = deque()
        self._delivering = False
        self._clock = clock
        self._scheduled = None
        self.closed = False

    def _schedule(self):
        # With a clock, whatever was written arrives at its next turn.
        if self._clock is not None and self._scheduled is None:
            self._scheduled = self._clock.callLater(0, self._turn)

    def _turn(self):
        self._scheduled = None
        self.flush()

    def send(self, side, data):
        if not self.closed:
            self._queue.append((1 - side, data))
            self._schedule()

    def close(self):
        if not self.closed:
            self._queue.append((None, None))
            self._schedule()

    def pending(self):
        """
        :return: Whether anything waits to be delivered.
        """
        return bool(self._queue)

    def flush(self):
        """
        Deliver everything written, and what that makes either side write,
        until both are quiet.
        """
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._queue:
                target, data = self._queue.popleft()
                if target is None:
                    self.closed = True
                    self._queue.clear()
                    for protocol in self._protocols:
                        protocol.connectionLost(Failure(ConnectionDone()))
                else:
                    self._protocols[target].dataReceived(data)
        finally:
            self._delivering = False


def loopback(client, server, clock=None):
    """
    Connect two protocols in memory (no reactor): what one writes, the
    other receives when the returned pump is flushed (or, given a
    ``clock``, at the clock's next turn too); either losing the connection
    ends it for both.

    :return: The pump: ``flush()`` delivers, ``close()`` then ``flush()``
        ends the connection (as a dropped network would), ``pending()``
        tells whether anything waits.
    """
    pump = _Pump([client, server], clock)
    server.makeConnection(_LoopbackTransport(pump, 1))
    client.makeConnection(_LoopbackTransport(pump, 0))
    return pump
