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

A node that did not report (``--failover``'s dead node, the only plan
made without every node's report) is given nothing: its record stays as
it was until a deploy reaches it.  And what the others expect from it is
not narrowed either: for a volume the configuration has a node receive
from such a node (or from one that reported no identity), that node keeps
the identities its record named, with what the plan adds (see
:func:`unreached_sources`); a later deploy that sees every node narrows it.
"""

from pyrsistent import pmap

from .._model import desired_replication
from ._automatic_config import automatic_applications
from ._changes import ExpectSenders, HandoffVolume, PushVolume

__all__ = ["steady_senders", "senders_with_pushes", "plan_senders",
           "removal_senders", "unreached_sources", "unreached_lines"]


def _freeze(wanted):
    return {address: pmap({name: frozenset(nodes)
                           for name, nodes in volumes.items() if nodes})
            for address, volumes in wanted.items()}


def _grouped(deployment):
    """
    :return: ``set`` of ``(member, volume)``: the volumes of each automatic
        group on each of its members, whose first copies the group's lease
        decides rather than the record.
    """
    grouped = set()
    for automatic in automatic_applications(deployment):
        group = [automatic.primary] + list(automatic.standbys)
        grouped.update((member, volume) for member in group
                       for volume in automatic.volumes)
    return grouped


def _standby_sources(deployment):
    """
    :return: ``list`` of ``(standby, volume, owner)`` the record decides:
        each standby's volumes and the node the deployment places their
        owner on (automatic groups left out).
    """
    grouped = _grouped(deployment)
    return [(standby, name, owner)
            for owner, volumes in desired_replication(deployment).items()
            for name, replication in volumes.items()
            for standby in replication.standbys
            if (standby, name) not in grouped and standby != owner]


def steady_senders(deployment, node_ids):
    """
    :param Deployment deployment: The desired state.
    :param node_ids: ``dict`` of node address to its reported identity.
    :return: ``dict`` of node address to the ``PMap`` of volume name to the
        ``frozenset`` of identities it expects between deploys (every node
        of the deployment present).
    """
    wanted = {node.address: {} for node in deployment.nodes}
    for standby, name, owner in _standby_sources(deployment):
        identity = node_ids.get(owner)
        if identity is not None:
            wanted.setdefault(standby, {}).setdefault(name, set()).add(
                identity)
    return _freeze(wanted)


def unreached_sources(deployment, node_ids, unknown):
    """
    :param Deployment deployment: The desired state.
    :param node_ids: ``dict`` of node address to its reported identity.
    :param unknown: Addresses of the nodes that did not report.
    :return: ``dict`` of node address to the ``dict`` of volume name to the
        address of the node it is to receive that volume from, where that
        node did not report or reported no identity (so this deploy cannot
        name it); the node itself not among them.
    """
    found = {}
    for standby, name, owner in _standby_sources(deployment):
        if standby in unknown:
            continue
        if owner in unknown or node_ids.get(owner) is None:
            found.setdefault(standby, {})[name] = owner
    return found


def unreached_lines(deployment, node_ids, unknown):
    """
    What a plan made without some nodes' reports leaves of their expected
    senders, for the operator.

    :param Deployment deployment: The desired state.
    :param node_ids: ``dict`` of node address to its reported identity.
    :param unknown: Addresses of the nodes that did not report.
    :return: ``list`` of lines: one per such node, and one per node that
        keeps expecting volumes from one of them.
    """
    lines = []
    for address in sorted(unknown):
        lines.append(
            "%s did not report: its record of which node each volume's "
            "first copy may come from stays as it was until a deploy "
            "reaches it" % (address,))
    kept = unreached_sources(deployment, node_ids, unknown)
    for address in sorted(kept):
        names = sorted(kept[address])
        sources = sorted(set(kept[address].values()))
        lines.append(
            "%s: its record of which node volume%s %s may come from stays "
            "as it was (%s did not report) until a deploy reaches %s" % (
                address, "" if len(names) == 1 else "s", ", ".join(names),
                " and ".join(sources), "it" if len(sources) == 1 else "them"))
    return lines


def _keep(wanted, reported, names):
    """
    :return: ``wanted`` (a ``PMap``) with, for each volume of ``names``,
        the identities ``reported`` named for it added.
    """
    kept = dict(wanted)
    for name in names:
        nodes = wanted.get(name, frozenset()) | reported.get(name,
                                                           frozenset())
        if nodes:
            kept[name] = nodes
    return pmap(kept)


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
    :param unknown: Addresses of the nodes that did not report: left
        alone, and what the others expect from them kept (see
        :func:`unreached_sources`).
    """
    steady = steady_senders(deployment, node_ids)
    during = senders_with_pushes(
        steady, [change for phase in phases for change in phase], node_ids)
    kept = unreached_sources(deployment, node_ids, unknown)
    addresses = pmap({identity: address
                      for address, identity in node_ids.items()
                      if identity is not None})
    for address in sorted(set(steady) | set(during)):
        if address in unknown:
            continue
        current = cluster_state.nodes.get(address)
        reported = pmap() if current is None else current.expected_senders
        # What comes from a node this deploy cannot name stays as it was.
        wanted_during = _keep(during.get(address, pmap()), reported,
                              kept.get(address, ()))
        wanted_after = _keep(steady.get(address, pmap()), reported,
                             kept.get(address, ()))
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
