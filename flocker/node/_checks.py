"""
The planner's checks made before the first change: what would make a plan
take down something that works, found from the nodes' reports alone (pure,
no I/O).  A deploy refuses to change anything while one of them fails.

* A volume whose owner's copy is gone: no node owns it, and the copies left
  do not tell of an interrupted hand-off (the node they name as owner holds
  no copy, or is not a node that reported).  Reviving the newest copy left
  would silently bring back older data, so it is only done when the
  operator names the volume (``--adopt-copy``), after seeing where that
  copy is and how old.
* A host port held by something that is not Flocker's on a node that would
  publish it (an application placed there) or route it (every other node).
* An external volume (one Flocker does not create) that no node holds.
* A compose project's volume now named after the project (``shop_data``)
  that no node holds, while the project's applications still mount its
  former name (``data``): creating it would give them an empty volume in
  place of their data (see :func:`renamed_volumes`).
* Nodes reporting the same node key (a key copied between machines, a
  cloned machine image): a node's own keys are never authorised on itself,
  so none of them could push to the others (see :func:`shared_node_keys`).
"""

import calendar
import time

import attr

from .._model import public_key_fingerprint

__all__ = ["StaleVolume", "stale_volumes", "port_conflicts",
           "missing_external_volumes", "describe_missing_external",
           "missing_external_reason", "renamed_volumes",
           "renamed_reason", "describe_renamed",
           "snapshot_time", "describe_stale", "newest_copy",
           "shared_node_keys"]


@attr.s(frozen=True, slots=True)
class StaleVolume(object):
    """
    A volume no node owns whose owner's copy is gone.

    :ivar str name: The volume.
    :ivar str node: The node holding its newest copy left.
    :ivar str snapshot: That copy's newest snapshot (``""`` for none).
    :ivar owner: What the copies name as owner: a node address, or the
        owner's identity when no reporting node has it, or ``None``.
    """
    name = attr.ib()
    node = attr.ib()
    snapshot = attr.ib()
    owner = attr.ib()


def _latest(volume):
    return volume.snapshots[-1] if volume.snapshots else ""


def newest_copy(copies, target):
    """
    :param copies: ``dict`` of address to the ``VolumeState`` of a copy.
    :param str target: The node the application is to run on (wins ties,
        sparing a push).
    :return: The address of the copy with the newest snapshot.
    """
    return max(sorted(copies),
               key=lambda a: (_latest(copies[a]), a == target))


def stale_volumes(deployment, cluster_state):
    """
    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the nodes reported.
    :return: ``dict`` of volume name to :class:`StaleVolume`, for the
        volumes the deployment's applications mount that no node owns and
        whose copies name as owner a node that holds no copy (or a node
        identity no reporting node has).  Copies whose report does not say
        what they name (older nodes) are not judged.
    """
    ids = {node.node_id: address
           for address, node in cluster_state.nodes.items()
           if node.node_id is not None}
    holders = {}
    owned = set()
    for address, node in cluster_state.nodes.items():
        for name, volume in node.volumes.items():
            if volume.owned:
                owned.add(name)
            else:
                holders.setdefault(name, {})[address] = volume
    stale = {}
    wanted = {}
    for target, application in deployment.placements().values():
        for volume in application.all_volumes():
            wanted.setdefault(volume.name, target)
    for name in sorted(wanted):
        target = wanted[name]
        if name in owned:
            continue
        copies = holders.get(name)
        if not copies:
            continue
        named = {volume.owner for volume in copies.values()}
        if None in named:
            continue
        # An interrupted hand-off: the old owner's copy names the new owner,
        # which holds the copy with the last increment.
        if any(ids.get(owner) in copies for owner in named):
            continue
        source = newest_copy(copies, target)
        owner = sorted(named)[0]
        stale[name] = StaleVolume(name=name, node=source,
                                  snapshot=_latest(copies[source]),
                                  owner=ids.get(owner, owner))
    return stale


def missing_external_volumes(deployment, cluster_state):
    """
    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the nodes reported.
    :return: ``dict`` of application name to ``(node address, volume
        name)``: its node and the first (by name) of its external volumes
        that no reporting node holds, owned or not.
    """
    held = {name for node in cluster_state.nodes.values()
            for name in node.volumes}
    missing = {}
    for name, (address, application) in deployment.placements().items():
        if application.volume is None and not application.volumes:
            continue
        for volume in application.all_volumes():
            if volume.external and volume.name not in held:
                missing[name] = (address, volume.name)
                break
    return missing


def missing_external_reason(address, volume):
    """
    :return: Why an application whose external ``volume`` no node holds,
        placed on node ``address``, cannot run.
    """
    return ("its external volume %s does not exist on node %s (nor on any "
            "other node); Flocker does not create external volumes: create "
            "it there first" % (volume, address))


def describe_missing_external(application, address, volume):
    """
    :return: The line saying that ``application``'s external ``volume``
        does not exist on its node ``address``.
    """
    return "%s: application %s: %s" % (
        address, application, missing_external_reason(address, volume))


def renamed_volumes(deployment, cluster_state):
    """
    Find the volumes a deploy would create empty while the project's data
    is in a volume of their former name.

    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the nodes reported.
    :return: ``dict`` of application name to ``(node address, volume,
        holder)``: its node, the first (by name) of its volumes that no
        reporting node holds whose ``former_name`` a reported application
        of the deployment's project mounts, and a node holding that former
        volume (owned, preferably).
    """
    held = {}
    for address, node in sorted(cluster_state.nodes.items()):
        for name, volume in node.volumes.items():
            if volume.owned or name not in held:
                held[name] = address
    mounted = set()
    for node in cluster_state.nodes.values():
        for application in node.applications.values():
            if application.project == deployment.project:
                mounted.update(volume.name
                               for volume in application.all_volumes())
    found = {}
    for name, (address, application) in deployment.placements().items():
        for volume in application.all_volumes():
            former = volume.former_name
            if (former is not None and volume.name not in held
                    and former in mounted and former in held):
                found[name] = (address, volume, held[former])
                break
    return found


def renamed_reason(volume, holder):
    """
    :return: Why an application whose ``volume`` (an ``AttachedVolume``)
        was renamed after its project is not started with a new, empty
        volume, and what to do.
    """
    return ("its volume %s is now named %s (compose names a project's "
            "volumes PROJECT_VOLUME) and does not exist, while the "
            "project's data is in volume %s on node %s; to keep using it, "
            "give the top-level volume %s \"name: %s\" in the compose file"
            % (volume.former_name, volume.name, volume.former_name, holder,
               volume.former_name, volume.former_name))


def describe_renamed(application, address, volume, holder):
    """
    :return: The line saying that ``application``'s renamed ``volume``
        would be created empty (see :func:`renamed_reason`).
    """
    return "%s: application %s: %s" % (
        address, application, renamed_reason(volume, holder))


def snapshot_time(snapshot):
    """
    :param str snapshot: A Flocker snapshot name
        (``flocker-YYYYmmddTHHMMSS.ffffffZ``, maybe with ``-N``).
    :return: Its POSIX time, or ``None`` for another name.
    """
    if not snapshot.startswith("flocker-"):
        return None
    stamp = snapshot[len("flocker-"):].split(".", 1)[0]
    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%S")))
    except ValueError:
        return None


def _age(seconds):
    if seconds < 120:
        return "%d seconds" % (seconds,)
    if seconds < 7200:
        return "%d minutes" % (seconds // 60,)
    if seconds < 172800:
        return "%d hours" % (seconds // 3600,)
    return "%d days" % (seconds // 86400,)


def describe_stale(stale, now=None):
    """
    :param StaleVolume stale: A volume whose owner's copy is gone.
    :param now: POSIX time, to say how old the copy is, or ``None``.
    :return: One line: where the newest copy is, how old, and what to do.
    """
    taken = snapshot_time(stale.snapshot)
    if taken is None:
        when = "its newest snapshot is %s" % (stale.snapshot or "none",)
    else:
        when = "its newest snapshot %s was taken %s UTC" % (
            stale.snapshot, time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.gmtime(taken)))
        if now is not None:
            when += " (%s ago)" % (_age(max(now - taken, 0)),)
    return ("volume %s: no node owns it and its owner's copy is gone (the "
            "copies name %s as owner); the newest copy left is on %s and "
            "%s: anything written after it would be lost, so it is not "
            "taken over unless you run again with --adopt-copy %s" % (
                stale.name, stale.owner, stale.node, when, stale.name))


def shared_node_keys(deployment, cluster_state):
    """
    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the nodes reported (each
        node's ``node_key``).
    :return: ``list`` of lines, one per node key that more than one node
        of the deployment reports as its own (current or next), naming
        those nodes and the fix.
    """
    holders = {}
    for node in sorted(deployment.nodes, key=lambda n: n.address):
        state = cluster_state.nodes.get(node.address)
        if state is None or state.node_key is None:
            continue
        status = state.node_key
        for key in {status.public_key, status.pending_public_key} - {None}:
            holders.setdefault(key, []).append(node.address)
    return [
        "%s: these nodes have the same node key (%s: copied between "
        "them, or a cloned machine), so none of them can push volumes to "
        "the others; run flocker-deploy --rotate-node-keys DEPLOYMENT_CONFIG "
        "to give each node its own" % (
            ", ".join(addresses), public_key_fingerprint(key))
        for key, addresses in sorted(holders.items(),
                                     key=lambda item: item[1])
        if len(addresses) > 1]


def port_conflicts(deployment, cluster_state):
    """
    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the nodes reported (each
        node's ``busy_ports``).
    :return: ``list`` of lines, one per node and port where the plan would
        publish or route a port that something not Flocker's holds.
    """
    placements = deployment.placements()
    lines = []
    for node in sorted(deployment.nodes, key=lambda n: n.address):
        state = cluster_state.nodes.get(node.address)
        if state is None or not state.busy_ports:
            continue
        for name in sorted(placements):
            address, application = placements[name]
            for port in sorted(application.ports, key=lambda p: p.external):
                if port.external not in state.busy_ports:
                    continue
                if address == node.address:
                    use = "where application %s would publish it" % (name,)
                else:
                    use = ("where the route to application %s on %s would "
                           "take it" % (name, address))
                lines.append(
                    "%s: port %d is held by a listening socket that is not "
                    "Flocker's, %s; stop that listener or choose another "
                    "external port" % (node.address, port.external, use))
    claimed = {port.external: name
               for name, (_, application) in placements.items()
               for port in application.ports}
    for address in sorted(cluster_state.nodes):
        node = cluster_state.nodes[address]
        for name in sorted(node.running):
            application = node.applications[name]
            if application.project == deployment.project:
                continue
            for port in sorted(application.ports, key=lambda p: p.external):
                if port.external in claimed:
                    lines.append(
                        "%s: port %d is published by application %s of "
                        "project %s, so application %s cannot publish it "
                        "too; choose another external port" % (
                            address, port.external, name,
                            application.project or "(default)",
                            claimed[port.external]))
    return lines
