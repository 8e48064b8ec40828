"""
The planner: a pure function from the desired deployment and the cluster's
current state to the tree of state changes that converges the cluster.

The plan runs in up to five phases, one after the other; inside a phase every
node works at once, and a node's changes in a phase run in order::

    0. keys      install the nodes' trust: known_hosts and each node's own key
                 where the installed ones differ (pushes below use them),
                 and tell each node which node each volume it has no copy
                 of may come from (every push below included; see
                 :mod:`flocker.node._expected`)
    1. prepare   pull images a node lacks; create new volumes (filling
                 those with a seed directory); pre-copy moving volumes while
                 their applications still run; create the new container of
                 an application that moves to a node holding a copy of
                 each of its volumes already (started in phase 4, after
                 the hand-off)
    2. stop      stop applications that move away, changed, or were removed
                 (the container of one that moves away is only stopped:
                 it is deleted in phase 4, beside the new one's start),
                 and, at the same time, create the new containers of the
                 other ones that move (their new nodes' copies were made
                 by phase 1)
    3. hand off  send each moving volume's last increment, transfer ownership
    4. start     give every node whose routes differ its new routes and,
                 at the same time, start the node's applications that are
                 new, moved, changed or stopped, and give every node whose
                 replication to standby nodes differs its new one, and
                 update in place the links of running applications whose
                 installed links differ when nothing else of them does (a
                 project's names changed, or Docker restarted the
                 container; see :class:`SetLinks`), and narrow each
                 node's expected senders back to those between deploys

Only phases 2-4 are downtime for a moving application, and phase 3 sends only
what was written since the pre-copy.  Routes change in the same phase as the
starts, and on each node at the same time as its starts, so a move waits for
no route update.  That is safe: a node never routes a port of its own
applications, so its route update never claims a port a start publishes (nor
trips over one, in its check for ports in use); and until a moving
application's old route is gone from its new node, connections there go to
the old node, where nothing answers either.  Converged state gives an empty
plan.

An application started by the plan that depends (``depends_on``) on another
one the plan starts waits for it: phase 4 starts only the applications that
depend on none started with them, and further steps start the others in
order, each after waiting for the dependencies that must be healthy or
have finished (:class:`WaitForApplication`).
"""

import attr

from .._change import InParallel, Sequentially
from .._model import Route, desired_replication
from ._changes import (
    CreateApplication, CreateVolume, DeleteStoppedApplication, DeleteVolume,
    FenceVolume, HandoffVolume, InstallNodeKey,
    PullImage, PushVolume, SeedVolume, SetAutomatic, SetLinks,
    SetReplication, SetRoutes, StartApplication, StopApplication,
    WaitForApplication,
)
from ._automatic_config import automatic_applications
from ._expected import plan_senders, removal_senders
from ._checks import (
    describe_stale, missing_external_reason, missing_external_volumes,
    newest_copy, renamed_reason, renamed_volumes, stale_volumes,
)
from ._differences import describe_differences
from ._images import image_present
from ..volume._epoch import CopyView, stale_owners

__all__ = ["plan_changes", "skipped_applications", "PHASES", "KEY_PHASE",
           "stale_owned_copies",
           "plan_removal", "REMOVAL_PHASES", "DEPENDENT_PHASE"]

#: The labels of the plan's phases, in the order they run.
PHASES = ("prepare volumes", "stop applications", "hand off volumes",
          "update routes and start applications")

#: The label of the phase before :data:`PHASES`, installing node keys.
KEY_PHASE = "install node keys"


def _volume_holders(cluster_state):
    """
    :return: ``(owners, copies)``: volume name to owning address, and volume
        name to ``{address: VolumeState}`` of the non-owned copies.  An
        owned copy that another copy's epoch makes stale (see
        :func:`stale_owned_copies`) is neither.
    """
    owners = {}
    copies = {}
    stale = stale_owned_copies(cluster_state)
    for address, node in cluster_state.nodes.items():
        for name, volume in node.volumes.items():
            if volume.owned:
                if address not in stale.get(name, ()):
                    owners[name] = (address, volume)
            else:
                copies.setdefault(name, {})[address] = volume
    return owners, copies


def stale_owned_copies(cluster_state):
    """
    :param ClusterState cluster_state: What the nodes reported.
    :return: ``dict`` of volume name to ``{address: VolumeState}`` of the
        copies their nodes own although some copy of the volume has a
        higher epoch (a node that came back after the volume failed over).
    """
    views = {}
    for address, node in cluster_state.nodes.items():
        for name, volume in node.volumes.items():
            views.setdefault(name, []).append(
                CopyView(node=address, owned=volume.owned,
                         epoch=volume.epoch))
    stale = {}
    for name in sorted(views):
        for address in sorted(stale_owners(views[name])):
            stale.setdefault(name, {})[address] = \
                cluster_state.nodes[address].volumes[name]
    return stale


def _owners_after(owners, copies, phases):
    """
    The owner each volume the plan gives a new owner has once the plan ran,
    and the epoch it owns it at: a copy taken over (``CreateVolume`` with
    ``from_copy``) or acquired at the end of a hand-off is owned one epoch
    above the copy's, which is the epoch of the owner it came from (see
    :func:`flocker.volume._epoch.taken_epoch`).

    :param owners: See :func:`_volume_holders`.
    :param copies: See :func:`_volume_holders`.
    :param phases: The plan's phases so far.
    :return: ``dict`` of volume name to ``(address of the owner to be,
        epoch, addresses of the nodes the plan's own steps leave following
        it)``, for the volumes the plan gives a new owner only.
    """
    after = {}
    for change in phases[1]:
        if isinstance(change, CreateVolume) and change.from_copy:
            held = copies[change.name][change.node]
            after[change.name] = (change.node, held.epoch + 1,
                                  frozenset([change.node]))
    for change in phases[3]:
        if isinstance(change, HandoffVolume):
            if change.name in after:
                _, epoch, involved = after[change.name]
            else:
                _, current = owners[change.name]
                epoch, involved = current.epoch, frozenset()
            # The hand-off leaves the source's copy following the target
            # at the target's new epoch.
            after[change.name] = (change.target, epoch + 1,
                                  involved | {change.node, change.target})
    return after


def _fence_stale(cluster_state, owners, stopping, phases, after=None):
    """
    Add the steps setting aside stale owned copies (see
    :func:`stale_owned_copies`) whose applications are not running or are
    stopped by the plan, and making followers that lag behind the owner's
    epoch follow it.

    A volume the plan gives a new owner (a move, or a copy taken over)
    gets a new epoch: its other followers are made to follow the new owner
    at that epoch in the start phase, once the hand-off succeeded (never
    before: a follower ahead of the owner's epoch would make the owner
    look stale), so the next deploy has nothing left to do.

    :param owners: Volume name to ``(address, VolumeState)`` of its current
        owner.
    :param stopping: ``set`` of ``(address, application name)`` the plan
        stops.
    :param after: See :func:`_owners_after` (``None`` for no new owners).
    """
    after = after or {}
    node_ids = {address: node.node_id
                for address, node in cluster_state.nodes.items()}
    stale_copies = stale_owned_copies(cluster_state)
    for name, stale in sorted(stale_copies.items()):
        if name not in owners:
            continue
        owner_address, current = owners[name]
        owner_id = node_ids.get(owner_address) or owner_address
        for address in sorted(stale):
            node = cluster_state.nodes[address]
            users = [application for application in node.applications
                     if application in node.running and
                     (address, application) not in stopping and
                     name in {v.name for v in
                              node.applications[application].all_volumes()}]
            if users:
                continue
            phases[3].append(FenceVolume(node=address, name=name,
                                         owner=owner_id, epoch=current.epoch,
                                         stale=True))
    for address, node in sorted(cluster_state.nodes.items()):
        for name, volume in sorted(node.volumes.items()):
            if name in after:
                owner_address, epoch, involved = after[name]
                if volume.owned or address in involved:
                    continue
                phase = phases[4]
            elif volume.owned or name not in owners:
                continue
            else:
                owner_address, current = owners[name]
                epoch, phase = current.epoch, phases[1]
            owner_id = node_ids.get(owner_address) or owner_address
            if volume.epoch < epoch and volume.owner != owner_id:
                phase.append(FenceVolume(node=address, name=name,
                                         owner=owner_id, epoch=epoch))


def _plan_volume(volume, target, owners, copies, phases, stale=None,
                 node_ids=None):
    """
    Add the steps that give node ``target`` the owned volume ``volume``
    (an ``AttachedVolume`` with its name set).

    :param stale: ``None``, or the :class:`StaleVolume` of this volume when
        the operator chose to adopt its newest copy left.
    :param node_ids: ``dict`` of node address to its reported identity.
    :return: The address of the node whose running containers must stop
        before the volume can move, or ``None``.
    """
    name = volume.name
    owner = owners.get(name)
    if owner is None:
        held = copies.get(name, {})
        if not held:
            # An external volume that nobody holds is found by
            # skipped_applications: its application is left undone.
            phases[1].append(CreateVolume(
                node=target, name=name, maximum_size=volume.maximum_size))
            if volume.seed is not None:
                phases[1].append(SeedVolume(node=target, name=name,
                                            directory=volume.seed))
            return None
        # Nobody owns the volume but copies exist: a move was interrupted
        # between the old owner letting go and the new one taking over (or,
        # for a stale volume, the operator adopts what is left).  The copy
        # with the newest snapshot holds every acknowledged write (the old
        # owner let go only after sending its last increment), so it is the
        # one to revive; the target wins ties to avoid a needless push.
        source = newest_copy(held, target)
        phases[1].append(CreateVolume(
            node=source, name=name, maximum_size=volume.maximum_size,
            from_copy=True,
            adopted=None if stale is None else stale.snapshot))
        if source == target:
            return None
        owner = (source, held[source])
    source, state = owner
    if source == target:
        return None
    target_copy = copies.get(name, {}).get(target)
    source_id = (node_ids or {}).get(source)
    # A copy the target holds for an earlier owner would refuse the
    # source's push (a node pushes only into copies that follow it): it is
    # superseded by the owner's data, and replaced.
    replace = (target_copy is not None and source_id is not None
               and target_copy.owner is not None
               and target_copy.owner != source_id)
    shared = (target_copy is not None and not replace and
              set(target_copy.snapshots) & set(state.snapshots))
    phases[1].append(PushVolume(
        node=source, name=name, target=target,
        estimated_bytes=None if shared else state.size,
        replace_copy=replace))
    phases[3].append(HandoffVolume(node=source, name=name, target=target))
    return source


def _held_throughout(prepare):
    """
    :param prepare: The changes of the plan's prepare phase.
    :return: A function of a volume's name and a node's address telling
        whether that node's copy of the volume is there throughout the
        prepare phase: the volume reaches it by an increment pushed into
        a copy it holds already, or does not move (it is neither pushed
        there nor created or revived in the phase).
    """
    pushed = {}
    created = set()
    for change in prepare:
        if isinstance(change, PushVolume):
            pushed[change.name, change.target] = (
                change.estimated_bytes is None and not change.replace_copy)
        elif isinstance(change, CreateVolume):
            created.add(change.name)

    def held(name, target):
        return pushed.get((name, target), name not in created)
    return held


def skipped_applications(deployment, cluster_state, unknown):
    """
    The applications a deploy must leave alone.

    An application is skipped when its desired node did not report; when
    two or more nodes report owning one of its volumes (naming them); when
    it has a volume that no reporting node owns while some node did not
    report (the silent node may own it: creating or reviving the volume
    elsewhere could lose its data); when it mounts an external volume
    that no node holds (Flocker does not create external volumes); and
    when it mounts a volume renamed after its project that does not exist
    while its data is under the former name (see
    :func:`flocker.node._checks.renamed_volumes`).

    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the reachable nodes reported.
    :param unknown: Addresses of the nodes that did not report.
    :return: ``dict`` of skipped application name to the reason.
    """
    held = {}
    claimed = {}
    stale = stale_owned_copies(cluster_state)
    for address, node in cluster_state.nodes.items():
        for name, volume in node.volumes.items():
            if address in stale.get(name, ()):
                # A stale owner's claim is outdated by a later epoch.
                continue
            if volume.owned or name not in held:
                held[name] = volume.owned
            if volume.owned:
                claimed.setdefault(name, []).append(address)
    missing = missing_external_volumes(deployment, cluster_state)
    renamed = renamed_volumes(deployment, cluster_state)
    skipped = {}
    for name, (address, application) in deployment.placements().items():
        if address in unknown:
            skipped[name] = "its node %s did not report" % (address,)
            continue
        if name in missing:
            skipped[name] = missing_external_reason(*missing[name])
            continue
        if name in renamed:
            skipped[name] = renamed_reason(*renamed[name][1:])
            continue
        if application.volume is None and not application.volumes:
            continue
        for volume in application.all_volumes():
            if address in stale.get(volume.name, ()):
                # Its copy there is to be set aside first, which only a
                # deploy placing the application elsewhere does.
                skipped[name] = (
                    "node %s holds a stale copy of its volume %s (epoch %d; "
                    "the volume failed over since): deploy it where the "
                    "volume is now, and the stale copy is set aside" % (
                        address, volume.name,
                        stale[volume.name][address].epoch))
                break
            owners = sorted(claimed.get(volume.name, ()))
            if len(owners) > 1:
                # A volume has one writable owner: two claims mean a node
                # is wrong (or lying); going on would pick one silently.
                skipped[name] = (
                    "its volume %s is owned by %d nodes (%s); Flocker "
                    "changes nothing of it until only one node owns it" % (
                        volume.name, len(owners), ", ".join(owners)))
                break
            if unknown and not held.get(volume.name):
                skipped[name] = (
                    "its volume %s has no reachable owner while %s did not "
                    "report" % (volume.name, ", ".join(sorted(unknown))))
                break
    return skipped


def plan_changes(deployment, cluster_state, addresses=None,
                 unknown=frozenset(), node_key=None, adopt=frozenset()):
    """
    Plan the changes that make ``cluster_state`` match ``deployment``.

    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: What the nodes reported.  Nodes of the
        deployment missing from it are taken as empty, unless listed in
        ``unknown``.
    :param addresses: Optional mapping of node address (as written in the
        deployment) to the IP address used in routes; by default the node
        address itself.
    :param unknown: Addresses of nodes that did not report: nothing is
        planned on them, and applications that depend on them are left as
        they are (see :func:`skipped_applications`).
    :param node_key: The ``NodeKey`` every node should have installed, or
        ``None`` to leave the nodes' keys alone.  It is installed on each
        node whose report differs, first; not while some node did not
        report (its host key would be missing from the known_hosts, and the
        nodes keep what they had meanwhile).
    :param adopt: Names of the volumes whose owner's copy is gone (see
        :func:`flocker.node._checks.stale_volumes`) whose newest copy left
        the operator chose to adopt.  Any other such volume's application
        is left as it is: older data is never brought back silently.
    :return: An ``IStateChange`` tree; an empty ``Sequentially`` when the
        cluster has converged.  Equal inputs give equal plans.

    Images an application's node lacks (by its report) are pulled in the
    prepare phase, before anything is stopped, so an image that cannot be
    had fails the deploy while the old container still runs.
    """
    addresses = addresses or {}
    skipped = skipped_applications(deployment, cluster_state, unknown)
    stale = stale_volumes(deployment, cluster_state)
    for name, (_, application) in deployment.placements().items():
        for volume in application.all_volumes():
            if volume.name in stale and volume.name not in adopt:
                skipped[name] = describe_stale(stale[volume.name])

    def ip(address):
        return addresses.get(address, address)

    labels = (KEY_PHASE,) + PHASES
    phases = [[] for _ in labels]
    starts = []
    owners, copies = _volume_holders(cluster_state)
    node_ids = {address: node.node_id
                for address, node in cluster_state.nodes.items()}

    automatic = automatic_applications(deployment)
    if automatic:
        # Before anything starts: a node holds an automatic application's
        # lease before starting it, and every node routes to it by etcd.
        for node in sorted(deployment.nodes, key=lambda n: n.address):
            if node.address not in unknown:
                phases[0].append(SetAutomatic(node=node.address,
                                              applications=automatic))

    if node_key is not None and not unknown:
        wanted = node_key.digest()
        for node in sorted(deployment.nodes, key=lambda n: n.address):
            current = cluster_state.nodes.get(node.address)
            if current is None or current.node_key is None or \
                    current.node_key.installed != wanted:
                phases[0].append(InstallNodeKey(node=node.address,
                                                key=node_key))

    containers = {}
    # Other projects' applications are never stopped or replaced; their
    # published ports stay routed (below).
    foreign_ports = {}
    for address, node in cluster_state.nodes.items():
        for name, application in node.applications.items():
            if application.project != deployment.project:
                if name in node.running:
                    foreign_ports.setdefault(address, set()).update(
                        port.external for port in application.ports)
                continue
            containers.setdefault(name, []).append(
                (address, application, name in node.running))

    placements = deployment.placements()
    pulls = set()
    sources = {}
    deletions = []
    creations = []
    for name in sorted(placements):
        if name in skipped:
            continue
        target, application = placements[name]
        must_stop = set()
        if application.volume is not None or application.volumes:
            for volume in application.all_volumes():
                # A volume shared by several applications is planned once;
                # all of them stop where it moves from.
                if volume.name not in sources:
                    sources[volume.name] = _plan_volume(
                        volume, target, owners, copies, phases,
                        stale.get(volume.name), node_ids)
                if sources[volume.name] is not None:
                    must_stop.add(sources[volume.name])
        start = True
        reason = None
        # Only a volume coming from elsewhere restarts a container that
        # runs as it should; one left on another node (a stale one, after
        # a failover) is just stopped there.
        moving = bool(must_stop)
        node_state = cluster_state.nodes.get(target)
        installed = (None if node_state is None
                     else node_state.links.get(name))
        for address, current, running in containers.get(name, ()):
            if address != target:
                must_stop.add(address)
            elif running and not moving and (
                    current == application or (
                        installed is not None
                        and _same_but_names(current, application))):
                # Names alone (links at other addresses than the loopback
                # one) change in place: the container keeps running.
                start = False
                if installed is not None and installed != application.links:
                    phases[4].append(SetLinks(node=target, name=name,
                                              links=application.links))
            elif current != application:
                must_stop.add(address)
                reason = "restart: " + describe_differences(current,
                                                            application)
            elif not running:
                reason = "it was stopped"
        kept = False
        for address in sorted(must_stop):
            if any(address == a for a, _, _ in containers.get(name, ())):
                # A container the application leaves for a start
                # elsewhere is only stopped here; it is deleted beside the
                # start (off the move's downtime).  One on the target is
                # deleted now: the new container takes its name.
                leaving = address != target and start
                phases[2].append(StopApplication(
                    node=address, name=name,
                    reason=reason if address == target else None,
                    handoffs=sorted(
                        (volume.name, target)
                        for volume in application.all_volumes()
                        if sources.get(volume.name) == address),
                    keep=leaving))
                if leaving:
                    kept = True
                    deletions.append(DeleteStoppedApplication(
                        node=address, name=name, target=target))
        if kept and target not in {a for a, _, _ in
                                   containers.get(name, ())}:
            # Its new container is created before the hand-off, so that
            # only Docker's start is left after it: while the old one
            # still runs when the new node holds a copy of every volume
            # already (its pre-copy is an increment into that copy), else
            # while the old one stops (the pre-copy made the copies).
            creations.append(CreateApplication(node=target,
                                               application=application))
        if start:
            starts.append(StartApplication(node=target,
                                           application=application,
                                           reason=reason))
            current = cluster_state.nodes.get(target)
            if (current is not None and image_present(
                    application.image, current.images) is False):
                pulls.add((target, application.image))

    # Before anything else of the prepare phase: a pull that fails ends the
    # deploy before any stop.
    phases[1][:0] = [PullImage(node=node, image=image)
                     for node, image in sorted(pulls)]

    for name in sorted(set(containers) - set(placements)):
        for address, _, _ in containers[name]:
            phases[2].append(StopApplication(node=address, name=name,
                                             removal=True))

    # Every node routes every other node's external ports; computed as set
    # differences of one cluster-wide set so the cost stays linear.
    by_node = {}
    for name, (address, application) in placements.items():
        if application.ports:
            routes = by_node.setdefault(address, set())
            for port in application.ports:
                routes.add(Route(port.external, ip(address), port.protocol))
    for address, ports in foreign_ports.items():
        by_node.setdefault(address, set()).update(
            Route(port, ip(address)) for port in ports)
    everything = frozenset().union(*by_node.values()) if by_node else frozenset()
    for node in sorted(deployment.nodes, key=lambda n: n.address):
        if node.address in unknown:
            continue
        mine = by_node.get(node.address, frozenset())
        current = cluster_state.nodes.get(node.address)
        installed = current.routes if current is not None else frozenset()
        wanted = everything.difference(mine)
        # Set hashes come from the hashes stored in the set tables, without
        # touching the elements, so a node whose routes differ is found
        # without comparing its routes one by one; equal hashes are then
        # confirmed exactly.
        if hash(wanted) != hash(installed) or wanted != installed:
            phases[4].append(SetRoutes(node=node.address, routes=wanted))

    _fence_stale(cluster_state, owners,
                 {(c.node, c.name) for c in phases[2]}, phases,
                 _owners_after(owners, copies, phases))

    _plan_replication(deployment, cluster_state, unknown, phases[4])
    # A standby copy that the new owner replaces by a full push follows it
    # once received: fencing it too, at the same time, would race the push.
    replaced = {(c.target, c.name) for c in phases[4]
                if isinstance(c, PushVolume) and c.replace_copy}
    phases[4][:] = [c for c in phases[4]
                    if not (isinstance(c, FenceVolume)
                            and (c.node, c.name) in replaced)]
    # Every push's target expects its source before any push runs, and
    # every node is left expecting what it will between deploys.
    plan_senders(deployment, cluster_state, node_ids, phases, phases[0],
                 phases[4], unknown)
    waves = _start_waves(starts)
    # First in each node's part of the phase: its changes are asked in
    # order, and a node's agent takes up a start (Docker's slowest call, a
    # moved application's downtime) before the routes it updates beside it.
    phases[4][:0] = waves[0] if waves else ()
    phases[4].extend(deletions)
    # Last in their node's part of the prepare phase (after its pulls and
    # its own pushes) when the node holds the volumes' copies throughout
    # it, else first in their node's part of the stop phase.
    held = _held_throughout(phases[1])
    early, late = [], []
    for creation in creations:
        (early if all(held(volume.name, creation.node)
                      for volume in creation.application.all_volumes())
         else late).append(creation)
    phases[1].extend(early)
    phases[2][:0] = late
    plan = _phased(labels, phases, parallel=phases[4])
    later = [_dependent_wave(wave, waves, placements)
             for wave in waves[1:]]
    if not later:
        return plan
    return Sequentially(changes=list(plan.changes) + later, label="plan")


def _plan_replication(deployment, cluster_state, unknown, changes):
    """
    Add to ``changes`` a :class:`SetReplication` for each reporting node
    whose replication to standbys (``NodeState.replication``) is not the
    one ``deployment`` asks of it.  It runs in the last phase: a volume that
    moves is replicated by its new owner once the new owner has it (its old
    owner's pushes are refused from the hand-off on, which only costs them
    an error in the old owner's status until its own change lands).

    A standby whose copy follows another node than the volume's owner to
    be (the owner before a move, or an earlier one) would refuse that
    owner's pushes: a node pushes only into copies that follow it.  When
    the plan makes it follow the new owner already (a move's other
    standbys: :func:`_fence_stale`), the new owner's replication goes on
    from the newest snapshot both hold (they received the same ones: one
    snapshot a round for every standby, and followers keep their last few,
    see :data:`flocker.volume._api.FOLLOWER_SNAPSHOTS`), so it stays
    incremental.  Any other such copy is replaced by a full push from the
    owner, in the same phase (the owner's history holds everything the
    copy does, so nothing is lost).
    """
    following = {(c.node, c.name, c.owner) for c in changes
                 if isinstance(c, FenceVolume)}
    wanted = desired_replication(deployment)
    node_ids = {address: node.node_id
                for address, node in cluster_state.nodes.items()}
    owners, _ = _volume_holders(cluster_state)
    for address in sorted(wanted):
        if address in unknown:
            continue
        current = cluster_state.nodes.get(address)
        running = {} if current is None else {
            name: status.replication
            for name, status in current.replication.items()}
        if running != wanted[address]:
            changes.append(SetReplication(node=address,
                                          replications=wanted[address]))
        owner_id = node_ids.get(address)
        for name, replication in sorted(wanted[address].items()):
            for standby in replication.standbys:
                held = cluster_state.nodes.get(standby)
                copy = None if held is None else held.volumes.get(name)
                if (standby in unknown or copy is None or copy.owned
                        or owner_id is None or copy.owner is None
                        or copy.owner == owner_id
                        or (standby, name, owner_id) in following):
                    continue
                size = owners[name][1].size if name in owners else None
                changes.append(PushVolume(
                    node=address, name=name, target=standby,
                    estimated_bytes=size, replace_copy=True))


#: The label of the plan steps starting applications after what they
#: depend on (``depends_on``).
DEPENDENT_PHASE = "start applications after their dependencies"

#: Seconds allowed for an application to finish when others wait for
#: ``service_completed_successfully``.
COMPLETION_TIMEOUT = 600


def _same_but_names(current, wanted):
    """
    :return: Whether two applications differ in their named links at most
        (see :mod:`flocker.node._names`): those change in place.
    """
    if current.links == wanted.links:
        return current == wanted
    return (attr.evolve(current, links=_unnamed(current.links))
            == attr.evolve(wanted, links=_unnamed(wanted.links)))


def _unnamed(links):
    return frozenset(link for link in links if not link.named)


def _start_waves(starts):
    """
    Order the starts of a plan by ``depends_on``: the first wave holds the
    starts depending on no application started by the same plan, each
    later one the starts whose dependencies started in earlier waves.  (A
    cycle, which configuration files refuse, starts together.)

    :param starts: ``list`` of :class:`StartApplication`.
    :return: ``list`` of waves, each a ``list`` of :class:`StartApplication`.
    """
    by_name = {start.application.name: start for start in starts}
    remaining = set(by_name)
    waves = []
    while remaining:
        wave = [name for name in sorted(remaining)
                if not any(dependency.name in remaining
                           for dependency in
                           by_name[name].application.depends_on)]
        if not wave:
            wave = sorted(remaining)
        remaining.difference_update(wave)
        waves.append([by_name[name] for name in wave])
    if len(waves) > 1:
        # Starts keep their order of the plan (routes first, by name).
        order = {id(start): index for index, start in enumerate(starts)}
        waves = [sorted(wave, key=lambda s: order[id(s)]) for wave in waves]
    return waves


def _wait_timeout(application, condition):
    """
    :return: Seconds to wait for ``application`` to meet ``condition``: for
        health, its start period and as many checks as it may fail, plus a
        minute; for completion, :data:`COMPLETION_TIMEOUT`.
    """
    if condition != "service_healthy":
        return COMPLETION_TIMEOUT
    check = application.options.healthcheck
    second = 10 ** 9
    interval = (check.interval if check and check.interval else 30 * second)
    timeout = (check.timeout if check and check.timeout else 30 * second)
    retries = check.retries if check and check.retries else 3
    start = check.start_period if check and check.start_period else 0
    return 60 + (start + (retries + 1) * (interval + timeout)) // second


def _dependent_wave(wave, waves, placements):
    """
    :return: The plan step of a wave after the first: on each node its
        starts, each after waiting for the dependencies that need to be
        healthy or finished (those started by earlier waves).
    """
    started = {start.application.name for earlier in waves
               for start in earlier if start not in wave}
    per_node = {}
    for start in wave:
        changes = per_node.setdefault(start.node, [])
        for dependency in sorted(start.application.depends_on,
                                 key=lambda d: d.name):
            if (dependency.condition == "service_started"
                    or dependency.name not in started):
                continue
            address, target = placements[dependency.name]
            wait = WaitForApplication(
                node=address, name=dependency.name,
                condition=dependency.condition,
                timeout=_wait_timeout(target, dependency.condition))
            if wait not in changes:
                changes.append(wait)
        changes.append(start)
    return InParallel(
        changes=[Sequentially(changes=per_node[address],
                              label="node " + address)
                 for address in sorted(per_node)],
        label=DEPENDENT_PHASE)


def _phased(labels, phases, parallel=None):
    """
    :param labels: Each phase's label.
    :param phases: Each phase's changes (lists).
    :param parallel: The one phase whose changes on a node run at once.
    :return: The plan: phases one after the other, nodes at once inside a
        phase.
    """
    # Phases and nodes are always explicit groups (never collapsed), so the
    # printed tree shows each phase and each node's part of it.  A node's
    # changes run in order, except in the start phase (see above).
    steps = []
    for label, changes in zip(labels, phases):
        if not changes:
            continue
        per_node = {}
        for change in changes:
            per_node.setdefault(change.node, []).append(change)
        group = InParallel if changes is parallel else Sequentially
        steps.append(InParallel(
            changes=[group(changes=per_node[address],
                           label="node " + address)
                     for address in sorted(per_node)],
            label=label))
    return Sequentially(changes=steps, label="plan" if steps else "")


def _record_volumes(records, name):
    """
    :return: The names of the volumes the containers ``records`` of
        application ``name`` mount (its own volume's name when none does).
    """
    return {volume.name for record in records
            for volume in record.all_volumes()} or {name}


#: The phases of a removal (:func:`plan_removal`).
REMOVAL_PHASES = ("stop applications", "delete volumes", "update routes")


def plan_removal(cluster_state, name, with_volumes=False):
    """
    Plan the removal of an application from every node
    (``flocker-deploy --remove``): stop and remove its containers, take
    its ports out of every node's routes, stop replicating its volumes to
    standby nodes, and, with ``with_volumes``, destroy every copy of its
    volumes (those no other application's
    container mounts).  Every stop and deletion is destructive.

    :param ClusterState cluster_state: Every node's report.
    :param str name: The application.
    :param bool with_volumes: Delete its volumes too.
    :return: An ``IStateChange`` tree (empty when nothing is left of it).
    """
    phases = [[], [], []]
    records = []
    for address in sorted(cluster_state.nodes):
        node = cluster_state.nodes[address]
        if name in node.applications:
            records.append(node.applications[name])
            phases[0].append(StopApplication(node=address, name=name,
                                             removal=True))
    # Its volumes are replicated no more (first: a copy deleted below is
    # not sent again, nor a volume gone from its owner tried every round).
    for address in sorted(cluster_state.nodes):
        replication = cluster_state.nodes[address].replication
        kept = {volume: status.replication
                for volume, status in replication.items()
                if status.replication.application != name
                and volume not in _record_volumes(records, name)}
        if len(kept) != len(replication):
            phases[0].append(SetReplication(node=address, replications=kept))
    # Nor expected from any node.
    phases[0].extend(removal_senders(cluster_state,
                                     _record_volumes(records, name)))
    if with_volumes:
        volumes = _record_volumes(records, name)
        shared = {volume.name for node in cluster_state.nodes.values()
                  for other, application in node.applications.items()
                  if other != name for volume in application.all_volumes()}
        for address in sorted(cluster_state.nodes):
            for volume in sorted(volumes - shared):
                if volume in cluster_state.nodes[address].volumes:
                    phases[1].append(DeleteVolume(node=address, name=volume))
    ports = {port.external for record in records for port in record.ports}
    for address in sorted(cluster_state.nodes):
        routes = cluster_state.nodes[address].routes
        kept = frozenset(route for route in routes if route.port not in ports)
        if kept != routes:
            phases[2].append(SetRoutes(node=address, routes=kept))
    return _phased(REMOVAL_PHASES, phases)
