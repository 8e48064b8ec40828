"""
Failover planning: a pure function from the deployment, the reports of the
nodes still alive and the node declared dead to where each of the dead
node's applications goes and what the live nodes must do first.

``flocker-deploy --failover NODE`` runs it; the plan it makes is::

    1. fail over volumes   every other live node holding a copy of a
                           volume that moves learns the new owner and epoch
                           (FenceVolume: from then on it refuses pushes from
                           the dead node, should it come back); then the
                           chosen node takes its copy over (TakeOverVolume)
    2. ...                 an ordinary plan from the state step 1 leaves to
                           the rewritten deployment: starts on the chosen
                           nodes, every live node's routes

The chosen node of an application with volumes is the live node holding the
freshest copy of its volume (the highest epoch, then the newest snapshot;
among equals the first of its ``standby:`` nodes), so that the least data is
lost.  The new ownership's epoch is one above every copy's the live nodes
report (a hand-off records on the old owner's copy the epoch the new owner
took, so the dead node's epoch is among them or below).  An application
without volumes goes to its first live standby node, else to the live node
running the fewest applications.  An application with a volume that no live
node holds stays where it is: it is listed as stranded.

In the rewritten deployment, a moved application's ``standby:`` nodes name
the dead node where they named the chosen one: once back (and fenced), the
old node is a standby of its old applications.
"""

import attr
from pyrsistent import pmap, pvector

from .._model import ClusterState, Node, Standby
from ..volume._epoch import CopyView, freshest_copy, next_epoch
from ._changes import FenceVolume, TakeOverVolume

__all__ = ["FailoverError", "Failover", "plan_failover", "moved_deployment"]


class FailoverError(Exception):
    """
    The failover cannot be planned; the message is one line.
    """


@attr.s(frozen=True)
class Failover(object):
    """
    What a failover does.

    :ivar str dead: The node declared dead.
    :ivar Deployment deployment: The deployment with the new placement.
    :ivar moves: ``PMap`` of application name to ``(old node, new node)``.
    :ivar epochs: ``PMap`` of moved volume name to its new epoch.
    :ivar changes: ``PVector`` of the volume changes (fences, then
        take-overs) to run before the ordinary plan.
    :ivar stranded: ``PMap`` of application name to why it stays on the
        dead node.
    :ivar ClusterState predicted: The live nodes' state once ``changes``
        ran: what the ordinary plan is made from.
    """
    dead = attr.ib()
    deployment = attr.ib()
    moves = attr.ib(converter=pmap)
    epochs = attr.ib(converter=pmap)
    changes = attr.ib(converter=pvector)
    stranded = attr.ib(converter=pmap)
    predicted = attr.ib()


def _latest(volume):
    # A copy's snapshots are listed oldest first; Flocker's names sort in
    # the order they were taken (a follower keeps only its newest).
    return volume.snapshots[-1] if volume.snapshots else None


def _groups(applications):
    """
    :param applications: The dead node's applications.
    :return: ``list`` of lists of applications that share a volume (they
        move together), in name order.
    """
    groups = []
    for application in sorted(applications, key=lambda a: a.name):
        names = {v.name for v in application.all_volumes()}
        joined = [g for g in groups if names & g[0]]
        merged = [names, [application]]
        for group in joined:
            groups.remove(group)
            merged[0] |= group[0]
            merged[1] = group[1] + merged[1]
        groups.append(merged)
    # Groups with volumes first: they can go only where their copies are,
    # the others then fill the least loaded nodes.
    return [sorted(g[1], key=lambda a: a.name) for g in
            sorted(groups, key=lambda g: (not g[0],
                                          min(a.name for a in g[1])))]


def _preference(deployment, group):
    preference = []
    for application in group:
        standby = deployment.standbys.get(application.name)
        if standby is not None:
            preference.extend(n for n in standby.nodes if n not in preference)
    return preference


def plan_failover(deployment, cluster_state, dead):
    """
    Plan moving every application off node ``dead``.

    :param Deployment deployment: The desired state as the files say.
    :param ClusterState cluster_state: The reports of the live nodes (the
        dead node's is not among them).
    :param str dead: The address of the node declared dead.
    :return: A :class:`Failover`.
    :raises FailoverError: If ``dead`` is not a node of the deployment, or
        no other node of it reported.
    """
    gone = deployment.node(dead)
    if gone is None:
        raise FailoverError("%s is not a node of the deployment (nodes: %s)"
                            % (dead, ", ".join(sorted(
                                n.address for n in deployment.nodes))))
    live = sorted(address for address in cluster_state.nodes
                  if address != dead and deployment.node(address) is not None)
    if not live:
        raise FailoverError("no node but %s reported: there is nowhere to "
                            "fail over to" % (dead,))
    states = dict(cluster_state.nodes)
    states.pop(dead, None)
    load = {address: len(deployment.node(address).applications)
            for address in live}
    moves, epochs, stranded = {}, {}, {}
    fences, takeovers = [], []
    for group in _groups(gone.applications):
        volumes = sorted({v.name for a in group for v in a.all_volumes()})
        preference = [n for n in _preference(deployment, group)
                      if n in live]
        if not volumes:
            target = preference[0] if preference else min(
                live, key=lambda a: (load[a], a))
        else:
            holders = [a for a in live
                       if all(name in states[a].volumes for name in volumes)]
            if not holders:
                missing = [name for name in volumes
                           if not any(name in states[a].volumes
                                      for a in live)]
                reason = ("no live node holds a copy of volume %s" %
                          ((missing or volumes)[0],))
                for application in group:
                    stranded[application.name] = reason
                continue
            first = volumes[0]
            target = freshest_copy(
                [CopyView(node=a, owned=states[a].volumes[first].owned,
                          epoch=states[a].volumes[first].epoch,
                          latest=_latest(states[a].volumes[first]))
                 for a in holders], preference)
            owner_id = states[target].node_id or target
            for name in volumes:
                copies = {a: states[a].volumes[name] for a in live
                          if name in states[a].volumes}
                epoch = next_epoch(v.epoch for v in copies.values())
                mine = copies[target]
                if mine.owned and mine.epoch == epoch - 1 and all(
                        v.owner == owner_id for v in copies.values()):
                    # Already failed over (a failover run again): nothing
                    # more to do for this volume.
                    epoch = mine.epoch
                else:
                    for address in sorted(copies):
                        if address != target:
                            fences.append(FenceVolume(
                                node=address, name=name, owner=owner_id,
                                epoch=epoch))
                    takeovers.append(TakeOverVolume(
                        node=target, name=name, epoch=epoch, dead=dead))
                epochs[name] = epoch
                for address, volume in copies.items():
                    states[address] = attr.evolve(
                        states[address], volumes=states[address].volumes.set(
                            name, attr.evolve(
                                volume, owned=address == target,
                                owner=owner_id, epoch=epoch)))
        for application in group:
            moves[application.name] = (dead, target)
        load[target] += len(group)
    return Failover(
        dead=dead, deployment=moved_deployment(deployment, moves), moves=moves,
        epochs=epochs, changes=fences + takeovers, stranded=stranded,
        predicted=ClusterState(nodes=states))


def moved_deployment(deployment, moves):
    """
    :param Deployment deployment: A deployment.
    :param moves: Application name to ``(old node, new node)``.
    :return: ``deployment`` with each application of ``moves`` on its new
        node, and its standby nodes naming the old node instead of the new.
    """
    nodes = []
    moving = {}
    for node in deployment.nodes:
        for application in node.applications:
            if application.name in moves:
                moving[application.name] = application
    for node in deployment.nodes:
        kept = [a for a in node.applications if a.name not in moves]
        arriving = [moving[name] for name, (_, target) in moves.items()
                    if target == node.address]
        nodes.append(Node(address=node.address,
                          applications=kept + arriving))
    standbys = {}
    for name, standby in deployment.standbys.items():
        if name in moves:
            old, new = moves[name]
            standby = Standby(
                application=standby.application,
                nodes=[old if n == new else n for n in standby.nodes],
                interval=standby.interval, automatic=standby.automatic)
        standbys[name] = standby
    return attr.evolve(deployment, nodes=nodes, standbys=standbys)
