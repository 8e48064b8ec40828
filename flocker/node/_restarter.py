"""
The agent restarts the node's crashed applications with volumes itself.

Docker is given no restart policy for an application with a volume (see
:func:`flocker.node._docker.docker_restart_policy`: fencing needs the agent
to decide before such a container starts again), so without the agent a
crashed database would stay down.  :class:`CrashRestarter` follows Docker's
event stream (``GET /events``, filtered to Flocker's containers' ``start``,
``kill``, ``die`` and ``destroy``; no polling) and, when an application's
container dies, applies the application's restart policy the way Docker
would have, with the checks fencing needs on top.

A container that died is restarted when (:func:`restart_decision`):

* it was not stopped on request: Docker writes a ``kill`` event before the
  ``die`` of every stop or kill asked through its API (Flocker's own stops
  and moves, an operator's ``docker stop``), and never for a process that
  exited or was killed by the kernel, so a ``kill`` since the container's
  last ``start`` means "leave it stopped", as Docker's own restart manager
  does;
* its policy asks for it (``always``, ``unless-stopped``, ``on-failure``
  after a non-zero status and within its ``maximum_retry_count``);
* it has volumes (one without is Docker's to restart: it keeps its
  policy), and this node still owns every one of them at the epoch its
  copy records, none of them found stale meanwhile (a standby refused this
  node's push because it follows a later epoch: see :meth:`mark_stale`);
  a volume handed off by a move is no longer owned here, so a container
  left by a move is never started again.

Restarts back off: the first comes :data:`FIRST_DELAY` seconds after the
crash, each one after a restart that did not keep running
:data:`STEADY_SECONDS` twice as late, at most :data:`MAXIMUM_DELAY`.  A
container removed meanwhile (a deploy stopping it) cancels its pending
restart.  The decision is taken when the restart is due, so a deploy or a
fence that ran during the wait is seen.  Each restart is one eliot action
(:data:`NODE_CRASH_RESTART`) with its outcome.

A container that dies while the stream is not followed (the daemon
restarting, which stops every container without a restart policy) gives no
event.  So each time the stream is followed again, the restarter
reconciles: it lists Flocker's containers, and each one that ran when the
stream was lost and runs no more (not stopped on request before the loss,
no restart pending) is taken as having died meanwhile, with the status
Docker kept, and goes through the same rules and backoff.  The first
following (the agent starting) only learns which containers run: what
stopped before the agent started is :mod:`flocker.node._boot`'s to decide.
A ``docker stop`` made while the daemon runs but the agent's stream is cut
(not while the daemon restarts) cannot be told from a crash then, and is
restarted like one.
"""

import attr
from eliot import write_failure
from eliot.twisted import DeferredContext
from twisted.internet.defer import gatherResults, maybeDeferred

from ._docker import APPLICATION_LABEL, CONTAINER_PREFIX, ContainerNotFound
from ._logging import (
    DOCKER_EVENTS_LOST, NODE_CRASH_RECONCILED, NODE_CRASH_RESTART,
    NODE_CRASH_SEEN,
)

__all__ = ["CrashRestarter", "restart_decision", "FIRST_DELAY",
           "MAXIMUM_DELAY", "STEADY_SECONDS", "CRASH_EVENTS",
           "FOLLOW_AGAIN"]

#: Seconds from a crash to its first restart.
FIRST_DELAY = 0.1

#: The longest wait, in seconds, before a restart.
MAXIMUM_DELAY = 60.0

#: Seconds a restarted container must run for the next crash to be
#: restarted after :data:`FIRST_DELAY` again.
STEADY_SECONDS = 10.0

#: Seconds before following Docker's events again after the stream ended
#: (doubled after each failure, at most :data:`MAXIMUM_DELAY`).
FOLLOW_AGAIN = 1.0

#: The container events the restarter follows.
CRASH_EVENTS = ("start", "kill", "die", "destroy")

#: Restart policies that restart after any exit.
_ALWAYS = frozenset(["always", "unless-stopped"])


def restart_decision(application, exit_code, infos, stale, restarts):
    """
    Decide whether an application whose container died (not on request)
    starts again.

    :param Application application: The application, as its container's
        label describes it.
    :param int exit_code: The status its process exited with.
    :param infos: ``dict`` of volume name to this node's ``VolumeInfo``.
    :param stale: ``dict`` of volume name to the epoch this node's copy had
        when it was found stale.
    :param int restarts: Restarts already made since it last ran steadily.
    :return: ``None`` to restart it, else why not (one line).
    """
    policy = application.restart_policy
    if policy.name == "on-failure":
        if exit_code == 0:
            return "it exited with status 0 and its policy is on-failure"
        limit = policy.maximum_retry_count
        if limit is not None and restarts >= limit:
            return "it was restarted %d times (maximum_retry_count)" % (
                restarts,)
    elif policy.name not in _ALWAYS:
        return "its restart policy is %s" % (policy.name,)
    volumes = sorted(v.name for v in application.all_volumes())
    if not volumes:
        return "it has no volume: Docker applies its policy"
    for name in volumes:
        info = infos.get(name)
        if info is None:
            return "volume %s is not on this node" % (name,)
        if not info.owned:
            return "this node does not own volume %s (it moved)" % (name,)
        if name in stale and info.epoch <= stale[name]:
            return ("this node's copy of volume %s is stale (epoch %d; "
                    "the volume failed over)" % (name, info.epoch))
    return None


@attr.s
class _Tracked(object):
    """
    What the restarter knows of one application's container (mutable).

    :ivar bool killed: A stop or kill was asked through Docker's API since
        the container last started.
    :ivar int restarts: Restarts made since it last ran steadily.
    :ivar restarted_at: The clock's time of the last restart, or ``None``.
    :ivar pending: The ``IDelayedCall`` of the restart waiting, or
        ``None``.
    """
    killed = attr.ib(default=False)
    restarts = attr.ib(default=0)
    restarted_at = attr.ib(default=None)
    pending = attr.ib(default=None)


def _application_name(event):
    """
    :return: The application name of a Flocker container's event, or
        ``None`` for any other container.
    """
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    name = str(attributes.get("name") or "")
    if not name.startswith(CONTAINER_PREFIX):
        return None
    return name[len(CONTAINER_PREFIX):] or None


def _exit_code(event):
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    try:
        return int(attributes.get("exitCode"))
    except (TypeError, ValueError):
        # A die without a status: counted as a failure.
        return -1


class CrashRestarter(object):
    """
    Restarts the node's crashed applications with volumes (see the module
    documentation).

    :ivar bool following: Whether Docker's events are followed now.
    :ivar reconciled: ``None``, or the ``Deferred`` of the latest listing
        made when the stream was followed (see :meth:`connected`), firing
        with ``None`` once done; it never fails.
    """

    def __init__(self, clock, events, docker, volumes, agent):
        """
        :param clock: ``IReactorTime`` provider.
        :param events: The node's
            :class:`~flocker.node._events.IDockerEvents`.
        :param docker: The node's ``IDockerClient``.
        :param volumes: Callable returning the node's current
            ``IVolumeService``.
        :param agent: Callable returning the node's ``INodeAgent`` (it
            starts an application the way a deploy does: volumes mounted,
            link rules installed).
        """
        self.clock = clock
        self.following = False
        self._events = events
        self._docker = docker
        self._volumes = volumes
        self._agent = agent
        self._tracked = {}
        self._stale = {}
        # Applications whose container ran when last seen (a listing, or
        # their start): those that run no more after a gap in the stream
        # died during it.
        self._running = set()
        self.reconciled = None
        self._following = None
        self._next = None
        self._delay = FOLLOW_AGAIN
        self._stopped = True

    def start(self):
        """
        Start following Docker's events of Flocker's containers.
        """
        self._stopped = False
        self._follow()

    def stop(self):
        """
        Stop following them and cancel every pending restart.
        """
        self._stopped = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        for tracked in self._tracked.values():
            if tracked.pending is not None and tracked.pending.active():
                tracked.pending.cancel()
            tracked.pending = None
        if self._following is not None:
            following, self._following = self._following, None
            following.stop()

    def mark_stale(self, volume):
        """
        This node's copy of ``volume`` was found stale (a standby follows a
        later epoch): its applications are not restarted while the copy
        keeps the epoch it has now.

        :param str volume: The volume's name.
        :return: ``Deferred`` firing once recorded.
        """
        def record(infos):
            here = [info for info in infos if info.name == volume]
            # Unknown epoch: held whatever the copy's epoch becomes, until
            # the agent starts again.
            self._stale[volume] = here[0].epoch if here else float("inf")
        return maybeDeferred(lambda: self._volumes().volumes()).addCallback(
            record)

    def _follow(self):
        self._next = None
        if not self._stopped:
            self._following = self._events.follow(self, filters={
                "type": ["container"], "event": list(CRASH_EVENTS),
                "label": [APPLICATION_LABEL]})

    # The event stream's observer.

    def connected(self):
        self.following = True
        self._delay = FOLLOW_AGAIN
        # Not the first following: a gap in the stream lies behind.
        self.reconciled = self._reconcile(
            after_gap=self.reconciled is not None)

    def _reconcile(self, after_gap):
        """
        List Flocker's containers: learn which run and, after a gap in the
        stream (``after_gap``), treat each that ran before it and runs no
        more as having died during it (see the module documentation).

        :return: ``Deferred`` firing with ``None``; a failure is logged.
        """
        before = set(self._running)

        def listed(units):
            by_name = {unit.name: unit for unit in units}
            self._running |= {unit.name for unit in units if unit.running}
            died = []
            if after_gap:
                for name in sorted(before):
                    unit = by_name.get(name)
                    if unit is None:
                        self._running.discard(name)
                    elif not unit.running:
                        self._running.discard(name)
                        tracked = self._tracked.setdefault(name, _Tracked())
                        if tracked.pending is None and not tracked.killed:
                            died.append(name)
            NODE_CRASH_RECONCILED.log(
                running=len(self._running), died=died, after_gap=after_gap)
            return gatherResults([self._died_meanwhile(name)
                                  for name in died], consumeErrors=True)
        d = maybeDeferred(self._docker.list).addCallback(listed)
        d.addCallback(lambda _: None)
        return d.addErrback(lambda failure: write_failure(failure))

    def _died_meanwhile(self, name):
        """
        ``name``'s container died while the stream was not followed: go
        through :meth:`_died` with the status Docker kept for it.
        """
        def status(status):
            if self._stopped or status.running:
                return
            code = -1 if status.exit_code is None else status.exit_code
            self._died(name, self._tracked[name], code)

        def gone(failure):
            failure.trap(ContainerNotFound)
        return maybeDeferred(self._docker.container_status, name).addCallbacks(
            status, gone)

    def lost(self, reason):
        self.following = False
        DOCKER_EVENTS_LOST.log(reason="crash restarts: " + reason)
        if not self._stopped:
            self._next = self.clock.callLater(self._delay, self._follow)
            self._delay = min(self._delay * 2, MAXIMUM_DELAY)

    def event(self, event):
        name = _application_name(event)
        if name is None:
            return
        action = event.get("Action")
        tracked = self._tracked.setdefault(name, _Tracked())
        if action == "start":
            tracked.killed = False
            self._running.add(name)
        elif action == "kill":
            tracked.killed = True
        elif action == "destroy":
            self._running.discard(name)
            self._cancel(tracked)
        elif action == "die":
            self._running.discard(name)
            self._died(name, tracked, _exit_code(event))

    def _cancel(self, tracked):
        if tracked.pending is not None and tracked.pending.active():
            tracked.pending.cancel()
        tracked.pending = None

    def _died(self, name, tracked, exit_code):
        now = self.clock.seconds()
        if tracked.killed:
            NODE_CRASH_SEEN.log(application=name, exit_code=exit_code,
                                delay=None)
            return
        if (tracked.restarted_at is not None
                and now - tracked.restarted_at >= STEADY_SECONDS):
            tracked.restarts = 0
        delay = min(MAXIMUM_DELAY,
                    FIRST_DELAY * 2 ** min(tracked.restarts, 16))
        NODE_CRASH_SEEN.log(application=name, exit_code=exit_code,
                            delay=delay)
        self._cancel(tracked)
        tracked.pending = self.clock.callLater(
            delay, self._restart, name, tracked, exit_code)

    def _restart(self, name, tracked, exit_code):
        """
        Restart ``name`` if :func:`restart_decision` says so.

        :return: ``Deferred`` firing with ``None`` if it was restarted,
            else why not; it never fails (a failure is the action's).
        """
        tracked.pending = None
        action = NODE_CRASH_RESTART(application=name, exit_code=exit_code,
                                    restarts=tracked.restarts)
        with action.context():
            listed = gatherResults(
                [maybeDeferred(self._docker.list),
                 maybeDeferred(lambda: self._volumes().volumes())],
                consumeErrors=True)

            def decide(results):
                units, infos = results
                found = [u for u in units if u.name == name]
                if not found:
                    return "its container is gone"
                # Whether it runs, from the container itself: Docker's
                # listing may still show it running just after its die.
                status = maybeDeferred(self._docker.container_status, name)

                def checked(status):
                    if status.running:
                        return "it runs"
                    if tracked.killed:
                        return "it was stopped on request"
                    reason = restart_decision(
                        found[0].application, exit_code,
                        {info.name: info for info in infos}, self._stale,
                        tracked.restarts)
                    if reason is not None:
                        return reason
                    return self._start(found[0].application, tracked)

                def gone(failure):
                    failure.trap(ContainerNotFound)
                    return "its container is gone"
                return status.addCallbacks(checked, gone)

            def outcome(reason):
                action.add_success_fields(
                    restarted=reason is None,
                    reason="" if reason is None else reason)
                return reason
            d = DeferredContext(listed)
            d.addCallback(decide)
            d.addCallback(outcome)
            finished = d.addActionFinish()
        return finished.addErrback(lambda failure: failure.getErrorMessage())

    def _start(self, application, tracked):
        tracked.restarts += 1
        tracked.restarted_at = self.clock.seconds()
        return maybeDeferred(self._agent().start_application,
                             application).addCallback(lambda _: None)
