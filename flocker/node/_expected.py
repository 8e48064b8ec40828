"""
Which node each node may receive a first copy of a volume from: the
*expected senders* a deploy gives every node (see
:mod:`flocker.node._senders` for the agent's record, and
:func:`flocker.volume._policy.check_receive` for the rule it feeds).

Pure functions of the deployment, the nodes' identities and the plan:

* **steady**: what every node expects between deploys.  A standby expects
  its volumes from the application's node.  The application's own node
  expects nothing: it owns the volume.  For an application that fails over
  automatically (etcd) nobody expects its volumes from a named node: any
  member of its group (its node and its standbys) may become the owner
  without a deploy, and a member accepts a first copy only from the one
  holding the group's lease in etcd when the push comes (see
  :class:`flocker.node._senders.FirstCopyGroups`), so a member that does
  not hold it cannot plant one.
* **during a deploy**: the steady record plus, for every push the plan
  makes (a move's pre-copy and hand-off, a standby's full push), its
  source on its target.  It is given in the plan's first phase, before any
  push, and narrowed back to the steady record in its last one, so the
  next deploy of a converged cluster changes nothing.

Nodes whose identity is unknown (they did not report) are expected by no
one.
"""

from pyrsistent import pmap

from .._model import desired_replication
from ._automatic_config import automatic_applications
from ._changes import ExpectSenders, HandoffVolume, PushVolume

__all__ = ["steady_senders", "senders_with_pushes", "plan_senders",
           "removal_senders"]


def _freeze(wanted):
    return {address: pmap({name: frozenset(nodes)
                           for name, nodes in volumes.items() if nodes})
            for address, volumes in wanted.items()}


def steady_senders(deployment, node_ids):
    """
    :param Deployment deployment: The desired state.
    :param node_ids: ``dict`` of node address to its reported identity.
    :return: ``dict`` of node address to the ``PMap`` of volume name to the
        ``frozenset`` of identities it expects between deploys (every node
        of the deployment present).
    """
    wanted = {node.address: {} for node in deployment.nodes}
    # (member, volume) pairs the lease of an automatic group decides.
    grouped = set()
    for automatic in automatic_applications(deployment):
        group = [automatic.primary] + list(automatic.standbys)
        grouped.update((member, volume) for member in group
                       for volume in automatic.volumes)
    for owner, volumes in desired_replication(deployment).items():
        for name, replication in volumes.items():
            for standby in replication.standbys:
                if (standby, name) in grouped:
                    continue
                identity = node_ids.get(owner)
                volume = wanted.setdefault(standby, {}).setdefault(name, set())
                if identity is not None and owner != standby:
                    volume.add(identity)
    return _freeze(wanted)


def senders_with_pushes(steady, changes, node_ids):
    """
    :param steady: What :func:`steady_senders` answered.
    :param changes: The plan's changes (leaves).
    :param node_ids: ``dict`` of node address to its reported identity.
    :return: ``steady`` with, on the target of every push among
        ``changes``, its source expected for the volume pushed.
    """
    wanted = {address: {name: set(nodes) for name, nodes in volumes.items()}
              for address, volumes in steady.items()}
    for change in changes:
        if not isinstance(change, (PushVolume, HandoffVolume)):
            continue
        source = node_ids.get(change.node)
        if source is None:
            continue
        wanted.setdefault(change.target, {}).setdefault(
            change.name, set()).add(source)
    return _freeze(wanted)


def plan_senders(deployment, cluster_state, node_ids, phases, first, last,
                 unknown=frozenset()):
    """
    Add the :class:`ExpectSenders` changes of a deploy: to ``first`` (a
    phase before any push) where a node's record differs from what the
    plan's pushes need, to ``last`` (after every push) where it then
    differs from the steady record.

    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the nodes reported.
    :param node_ids: ``dict`` of node address to its reported identity.
    :param phases: Every phase's changes (lists of leaves).
    :param list first: Where to add the changes before the pushes.
    :param list last: Where to add the changes after them.
    :param unknown: Addresses of the nodes that did not report: left alone.
    """
    steady = steady_senders(deployment, node_ids)
    during = senders_with_pushes(
        steady, [change for phase in phases for change in phase], node_ids)
    addresses = pmap({identity: address
                      for address, identity in node_ids.items()
                      if identity is not None})
    for address in sorted(set(steady) | set(during)):
        if address in unknown:
            continue
        current = cluster_state.nodes.get(address)
        reported = pmap() if current is None else current.expected_senders
        wanted_during = during.get(address, pmap())
        wanted_after = steady.get(address, pmap())
        if wanted_during != reported:
            first.append(ExpectSenders(node=address, senders=wanted_during,
                                       addresses=addresses))
        if wanted_after != wanted_during:
            last.append(ExpectSenders(node=address, senders=wanted_after,
                                      addresses=addresses))


def removal_senders(cluster_state, volumes):
    """
    :param ClusterState cluster_state: What the nodes reported.
    :param volumes: Names of the volumes of an application removed.
    :return: ``list`` of :class:`ExpectSenders` dropping ``volumes`` from
        every node's record that names one of them.
    """
    changes = []
    for address in sorted(cluster_state.nodes):
        reported = cluster_state.nodes[address].expected_senders
        kept = pmap({name: nodes for name, nodes in reported.items()
                     if name not in volumes})
        if kept != reported:
            changes.append(ExpectSenders(node=address, senders=kept))
    return changes
