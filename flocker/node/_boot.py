"""
What the agent does for the node's applications when it starts (at boot):
apply their restart policies itself, where Docker was told not to.

Docker is given no restart policy for an application with a volume (see
:func:`flocker.node._docker.docker_restart_policy`): at boot it would start
the container before anything could tell whether the volume failed over to
another node while this one was down, and the application would run on a
stale copy, next to the one that took over.  The agent decides instead, at
its start, for every Flocker container that is not running and whose
application's policy Docker would have acted on (``always``,
``unless-stopped``, or ``on-failure`` after a non-zero exit, which a power
loss leaves):

* every volume it mounts is owned here, and was never sent to another node
  (no copy elsewhere could have taken over): it starts, as Docker would
  have started it;
* otherwise it is held: it stays stopped until either
  - its volumes are replicated to standbys (a ``standby:`` section) and
    every standby of each accepted a push from this node after the start
    (:func:`start_when_confirmed`): a standby that followed a later owner
    would have refused it, so the volume did not fail over while this node
    was down (a normal reboot), and it starts; or
  - a deploy, which sees every node's epoch, either starts it (the volume
    did not move) or sets the stale copy aside
    (:mod:`flocker.volume._epoch`).
  A standby that refuses the push because it follows a later epoch keeps
  the application held for good (the copy is stale); one that cannot be
  reached is waited for (its pushes are retried).

Nothing is started while any of this cannot be found out (Docker or the pool
not answering): a held application is the safe side.

Later, while the agent runs, a node cut off during a failover learns it
lost the volume when the partition heals: its replication's pushes are
refused by standbys that follow the new owner's later epoch.  It then stops
the applications using the stale copy at once
(:func:`stop_stale_applications`), so it does not go on serving it until
the next deploy sets the copy aside.
"""

from eliot.twisted import DeferredContext
from twisted.internet.defer import gatherResults, maybeDeferred

from ..volume._epoch import HOLD, START, boot_decision
from ._logging import NODE_BOOT, NODE_BOOT_CONFIRMED, NODE_SELF_FENCE

__all__ = ["apply_restart_policies", "boot_decisions", "RESTARTED_POLICIES",
           "stop_stale_applications", "start_when_confirmed"]

#: Restart policies Docker acts on when its daemon starts.
RESTARTED_POLICIES = frozenset(["always", "unless-stopped", "on-failure"])


def boot_decisions(units, volumes):
    """
    Decide, for each stopped Flocker container, whether it starts now.

    :param units: The ``Unit`` values Docker lists.
    :param volumes: The node's ``VolumeInfo`` values.
    :return: ``dict`` of application name to :data:`START` or :data:`HOLD`,
        for the containers whose policy asks for a restart; containers
        without volumes are left to Docker (it restarts them itself).
    """
    infos = {info.name: info for info in volumes}
    decisions = {}
    for unit in units:
        application = unit.application
        if unit.running or application.restart_policy.name not in \
                RESTARTED_POLICIES:
            continue
        mounted = application.all_volumes()
        if not mounted:
            continue
        verdicts = [boot_decision(
            infos[v.name].owned if v.name in infos else False,
            bool(infos[v.name].pushed_to) if v.name in infos else True)
            for v in mounted]
        decisions[unit.name] = (START if all(v == START for v in verdicts)
                                else HOLD)
    return decisions


def apply_restart_policies(docker, volumes, agent, replicator=None):
    """
    Apply the restart policies of the node's stopped applications with
    volumes, as :func:`boot_decisions` decides.

    :param docker: The node's ``IDockerClient``.
    :param volumes: The node's ``IVolumeService``.
    :param agent: The node's ``INodeAgent`` (starts an application the way
        a deploy does: volume mounted, link rules installed).
    :param replicator: The node's
        :class:`~flocker.node._replication.Replicator` (started), or
        ``None``: each application held is then started once its
        standbys confirm this node's ownership
        (:func:`start_when_confirmed`), without the returned ``Deferred``
        waiting for it.
    :return: ``Deferred`` firing with the ``dict`` of decisions; the
        applications decided :data:`START` were started (a failure to
        start one is logged, the others still start).
    """
    action = NODE_BOOT()
    with action.context():
        listed = gatherResults([maybeDeferred(docker.list),
                                maybeDeferred(volumes.volumes)],
                               consumeErrors=True)

        def decided(results):
            units, infos = results
            decisions = boot_decisions(units, infos)
            applications = {unit.name: unit.application for unit in units}
            starts = [maybeDeferred(agent.start_application,
                                    applications[name]).addErrback(
                                        lambda failure: None)
                      for name, verdict in sorted(decisions.items())
                      if verdict == START]
            held = sorted(n for n, v in decisions.items() if v == HOLD)
            action.add_success_fields(
                started=sorted(n for n, v in decisions.items() if v == START),
                held=held)
            if replicator is not None:
                for name in held:
                    start_when_confirmed(docker, volumes, agent, replicator,
                                         applications[name])
            return gatherResults(starts).addCallback(lambda _: decisions)
        d = DeferredContext(listed)
        d.addCallback(decided)
        return d.addActionFinish()


def start_when_confirmed(docker, volumes, agent, replicator, application):
    """
    Start an application held at boot once every standby of each of its
    volumes accepted a push from this node (the volume did not fail over
    while the node was down), if it is then still stopped, Flocker's, and
    its volumes still owned here (a deploy that ran meanwhile decided
    otherwise).

    :param docker: The node's ``IDockerClient``.
    :param volumes: The node's ``IVolumeService``.
    :param agent: The node's ``INodeAgent``.
    :param replicator: The node's
        :class:`~flocker.node._replication.Replicator`.
    :param Application application: The application held.
    :return: ``Deferred`` firing with whether it was started (a failure
        to start it is logged, and gives ``False``).
    """
    names = sorted(v.name for v in application.all_volumes())
    action = NODE_BOOT_CONFIRMED(application=application.name)
    with action.context():
        confirmed = gatherResults([replicator.confirmation(name)
                                   for name in names])

        def check(answers):
            if not all(answers):
                return ("a standby follows a later owner, or the volume "
                        "is not replicated to standbys: a deploy decides")
            return gatherResults([maybeDeferred(docker.list),
                                  maybeDeferred(volumes.volumes)],
                                 consumeErrors=True).addCallback(start)

        def start(results):
            units, infos = results
            found = [u for u in units if u.name == application.name]
            owned = {info.name for info in infos if info.owned}
            if not found or found[0].running:
                return "it was started or removed meanwhile"
            if not set(names) <= owned:
                return "this node does not own its volumes any more"
            return maybeDeferred(agent.start_application,
                                 found[0].application).addCallback(
                                     lambda _: None)

        def outcome(reason):
            action.add_success_fields(started=reason is None,
                                      reason=reason or "")
            return reason is None
        d = DeferredContext(confirmed)
        d.addCallback(check)
        d.addCallback(outcome)
        finished = d.addActionFinish()
    return finished.addErrback(lambda failure: False)


def stop_stale_applications(docker, agent, volume):
    """
    Stop, on this node, the running applications that mount ``volume``:
    its copy here was found stale (a standby refused its push because it
    follows a later ownership epoch: the volume failed over while this node
    was cut off).  The copy itself is left as it is; the next deploy sets it
    aside for recovery.

    :param docker: The node's ``IDockerClient``.
    :param agent: The node's ``INodeAgent``.
    :param str volume: The volume's name.
    :return: ``Deferred`` firing with the names of the applications
        stopped.
    """
    action = NODE_SELF_FENCE(volume=volume)
    with action.context():
        d = DeferredContext(maybeDeferred(docker.list))

        def stop(units):
            names = sorted(
                unit.name for unit in units if unit.running and volume in
                {v.name for v in unit.application.all_volumes()})
            action.add_success_fields(stopped=names)
            return gatherResults([agent.stop_application(name)
                                  for name in names]).addCallback(
                                      lambda _: names)
        d.addCallback(stop)
        return d.addActionFinish()
