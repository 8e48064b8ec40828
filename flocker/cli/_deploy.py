"""
The deploy flow as a library: gather every node's report, plan, run.

This is what ``flocker-deploy`` runs and what other Twisted programs can call
directly with their own node agents (remote ones over SSH, or fakes)::

    d = deploy(deployment, agents)
    d.addCallback(lambda result: result.converged)
"""


import random

import attr
from eliot import start_action
from eliot.twisted import DeferredContext
from pyrsistent import pmap
from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.internet.task import deferLater
from zope.interface import implementer

from .._context import in_current_action
from .._change import (
    IChangeObserver, Sequentially, leaves, run_state_change,
)
from .._model import ClusterState
from ..node._automatic_config import moved_by_failover
from ..node._doctor import FAILED
from ..node._names import with_service_names
from ..node._plan import plan_changes
from ._nodekey import desired_node_key
from ._preflight import (
    check_plan, destructive_changes, problems_line, refusal_line,
    silent_node_line,
)

__all__ = ["deploy", "gather_states", "DeployResult", "LineObserver",
           "format_summary"]


@attr.s(frozen=True)
class DeployResult(object):
    """
    What a deploy did.

    :ivar plan: The ``IStateChange`` tree that was planned (and run, unless
        it was a dry run).
    :ivar bool dry_run: Whether the plan was only shown.
    :ivar changed: ``PMap`` of node address to the number of changes made.
    :ivar failed: ``PMap`` of node address to a tuple of error lines.
    :ivar unreachable: ``PMap`` of node address to why it did not report;
        while it is not empty nothing was planned or changed.
    :ivar refused: ``tuple`` of the problems found before the first change
        (one line each); while it is not empty nothing was changed.
    :ivar health: ``PMap`` of node address to a tuple of the lines of its
        failed ``doctor`` checks (a dry run asks every node), for nodes
        with any.
    :ivar blocked: ``frozenset`` of the nodes where a failed check blocks
        deploys.
    """
    plan = attr.ib()
    dry_run = attr.ib(default=False)
    changed = attr.ib(default=pmap(), converter=pmap)
    failed = attr.ib(default=pmap(), converter=pmap)
    unreachable = attr.ib(default=pmap(), converter=pmap)
    refused = attr.ib(default=(), converter=tuple)
    health = attr.ib(default=pmap(), converter=pmap)
    blocked = attr.ib(default=frozenset(), converter=frozenset)

    @property
    def converged(self):
        """
        ``True`` when every node answered and every change succeeded (for a
        dry run: when every node answered and none has a failed check that
        blocks deploys).
        """
        return not (self.failed or self.unreachable or self.refused
                    or self.blocked)


def _reason(failure):
    return failure.getErrorMessage() or failure.type.__name__


def gather_states(agents):
    """
    Ask every node for its report, all at once.

    :param agents: Mapping of node address to ``INodeAgent``.
    :return: ``Deferred`` firing with ``(ClusterState, unreachable,
        locked)`` where ``unreachable`` maps each node that failed to report
        to the reason, and ``locked`` is the set of those that refused
        because another deploy holds their lock.
    """
    addresses = sorted(agents)
    reports = [maybeDeferred(agents[address].report) for address in addresses]
    d = DeferredList(reports, consumeErrors=True)

    def collect(results):
        states = {}
        unreachable = {}
        locked = set()
        for address, (ok, value) in zip(addresses, results):
            if ok:
                # A node reached by IP reports under that IP; the cluster
                # state is keyed by the deployment's name for it.
                states[address] = attr.evolve(value, address=address)
            else:
                unreachable[address] = _reason(value)
                if getattr(value.value, "locked", False):
                    locked.add(address)
        return ClusterState(nodes=states), unreachable, locked
    return d.addCallback(collect)


@implementer(IChangeObserver)
class _Observers(object):
    """
    Tells several observers, in order.
    """

    def __init__(self, observers):
        self._observers = observers

    def change_started(self, change):
        for observer in self._observers:
            observer.change_started(change)

    def change_progress(self, change, sent, total):
        for observer in self._observers:
            observer.change_progress(change, sent, total)

    def change_finished(self, change, failure, seconds, result=None):
        for observer in self._observers:
            observer.change_finished(change, failure, seconds, result)


@implementer(IChangeObserver)
class LineObserver(object):
    """
    Writes one line per finished change: node, what, time; and counts
    changes and failures per node.

    :ivar changed: ``dict`` of node address to changes made.
    :ivar failed: ``dict`` of node address to ``list`` of error lines.
    """

    def __init__(self, write=None):
        """
        :param write: Callable taking one line of text (without newline), or
            ``None`` to print nothing.
        """
        self._write = write
        self.changed = {}
        self.failed = {}

    def change_started(self, change):
        # One line per event means one per outcome: starts and progress
        # would be noise in a log or a pipe.
        pass

    def change_progress(self, change, sent, total):
        pass

    def change_finished(self, change, failure, seconds, result=None):
        node = getattr(change, "node", "cluster")
        if failure is None:
            self.changed[node] = self.changed.get(node, 0) + 1
            outcome = getattr(change, "describe_result", None)
            said = outcome(result) if outcome is not None else None
            line = "%s (%s%.2f s)" % (change.describe(),
                                      said + ", " if said else "", seconds)
        else:
            error = "%s: FAILED: %s" % (change.describe(), _reason(failure))
            self.failed.setdefault(node, []).append(error)
            line = "%s (%.2f s)" % (error, seconds)
        if self._write is not None:
            self._write(line)


def _gather_unlocked(agents, clock, lock_wait, jitter=None):
    """
    Gather the reports; while another deploy holds some nodes' locks, give
    back the locks this one took (its reports took them), wait between 0.5
    and 1.5 seconds and ask every node again, for up to ``lock_wait``
    seconds.

    Giving the locks back is what lets one of two deploys started together
    win: each holding some nodes and waiting for the others would only end
    when both gave up.  The random wait keeps them from retrying in step.

    :param jitter: Callable returning a float in ``[0, 1)`` (a fresh
        ``random.Random().random`` if ``None``).
    """
    if jitter is None:
        jitter = random.Random().random
    d = gather_states(agents)

    def check(gathered, waited):
        state, _, locked = gathered
        if locked and waited < lock_wait and clock is not None:
            releases = [maybeDeferred(agents[address].release_lock)
                        for address in sorted(state.nodes)
                        if hasattr(agents[address], "release_lock")]
            delay = 0.5 + jitter()
            released = DeferredList(releases, consumeErrors=True)
            released.addCallback(
                lambda _: deferLater(clock, delay, gather_states, agents))
            return released.addCallback(check, waited + delay)
        return gathered
    return d.addCallback(check, 0.0)


def _desired_node_key(deployment, install_keys, host_keys, addresses,
                      state):
    """
    :param ClusterState state: What the nodes reported (their identities
        and keys; see :func:`flocker.cli._nodekey.nodes_peers`).
    :return: The ``NodeKey`` the nodes should have, or ``None`` when keys
        are left alone or the client lacks a node's host key (the nodes
        then keep what they have).
    """
    if not install_keys or host_keys is None:
        return None
    return desired_node_key([node.address for node in deployment.nodes],
                            addresses or {}, host_keys(), state)


def deploy(deployment, agents, dry_run=False, write=None, addresses=None,
           clock=None, unreachable=None, lock_wait=10.0, live=None,
           install_keys=False, host_keys=None, lock_jitter=None,
           adopt=frozenset(), confirm=None, plan_for=None):
    """
    Converge the cluster to ``deployment``.

    :param Deployment deployment: The desired state.
    :param agents: Mapping of every deployment node's address to its
        ``INodeAgent``.
    :param bool dry_run: Plan only; change nothing.
    :param write: Optional callable taking one line of progress text (one
        per finished change); with ``live``, its ``write_line``, so that the
        lines appear above the live view.
    :param addresses: Optional mapping of node address to the IP address
        routes should use (resolved host names).
    :param clock: Optional ``IReactorTime`` for timing changes.
    :param unreachable: Optional ``dict`` of node address to why it cannot
        be reached at all (a host name that did not resolve); such nodes
        have no agent and are treated like nodes that did not report.
        While any node of ``agents`` or ``unreachable`` did not report,
        nothing is planned or changed anywhere: the result's plan is empty
        and its ``unreachable`` names each such node with the reason.
    :param float lock_wait: Seconds to wait for nodes whose lock another
        deploy holds (needs ``clock``).  Meanwhile the locks this deploy
        took are given back and every node is asked again every 0.5 to 1.5
        seconds (so of two deploys started together, one wins).  If some
        are still locked then, nothing is changed anywhere: the result
        lists them as unreachable with the reason.
    :param lock_jitter: ``None``, or a callable returning a float in
        ``[0, 1)`` that picks each of those waits (for tests).
    :param live: ``None``, or a live view of the running plan (a
        :class:`flocker.cli._progress.TerminalProgress`): an
        ``IChangeObserver`` with ``start(plan)``, called when the plan
        starts running, and ``stop()``, called when it ended (before the
        returned ``Deferred`` fires).
    :param bool install_keys: Install the nodes' trust (the known_hosts
        of the host keys the client verified and each node's reported key;
        see :func:`flocker.cli._nodekey.desired_node_key`) on every node
        where it is not current, before any volume moves; ``False`` to
        leave it alone.
    :param host_keys: With ``install_keys``: a callable returning ``dict`` of
        connected address (IP) to the host ``Key`` the client verified
        there, called once every node reported.
    :param adopt: Names of volumes whose owner's copy is gone and whose
        newest copy left the operator chose to adopt (``--adopt-copy``).
    :param confirm: ``None`` to make destructive changes (removing an
        application no longer in the files, deleting a volume) like any
        other; else a callable given the descriptions of the plan's
        destructive changes (only when it has some, after every check),
        returning (a ``Deferred`` firing with) whether to go ahead.  When
        it says no, nothing is changed and ``refused`` says so.
    :param plan_for: ``None`` to converge to ``deployment``; else a
        callable given the gathered ``ClusterState`` and ``addresses``
        (``{}`` when none were given: routes then name the nodes as the
        deployment does) returning the plan to
        run instead (such as :func:`flocker.node._plan.plan_removal`), with
        the same reports, locks, confirmation and output, but not the
        deployment's checks.
    :return: ``Deferred`` firing with a :class:`DeployResult`.  Failures of
        nodes and changes are in the result, not errbacks.

    Before the first change the plan is checked
    (:func:`flocker.cli._preflight.check_plan`): images a node lacks that
    cannot be pulled, ports held by something not Flocker's, volumes whose
    owner's copy is gone; if any is found nothing runs and the result's
    ``refused`` says each.

    A deployment with a project gets its service names first (see
    :mod:`flocker.node._names`): the applications converged to carry the
    named links that make the project's names resolve.
    """
    deployment = with_service_names(deployment)
    action = start_action(action_type="flocker:deploy",
                          nodes=len(agents), dry_run=dry_run)
    with action.context():
        d = DeferredContext(_gather_unlocked(agents, clock, lock_wait,
                                             lock_jitter))

        def planned(gathered):
            state, silent, locked = gathered
            silent = dict(silent, **(unreachable or {}))
            if locked or silent:
                # Check before the first change: a plan made without a
                # node's report could route ports to a machine that does not
                # exist or revive a volume the silent node owns; and another
                # deploy changing part of the cluster would be raced.
                return DeployResult(plan=Sequentially(changes=[]),
                                    dry_run=dry_run, unreachable=silent)
            if plan_for is not None:
                return run(plan_for(state, addresses or {}), [])
            moved = moved_by_failover(deployment, state)
            if moved:
                # The file is older than an automatic failover: never move
                # an application back by accident.
                return run(Sequentially(changes=[]), moved)
            plan = plan_changes(
                deployment, state, addresses=addresses,
                node_key=_desired_node_key(deployment, install_keys,
                                           host_keys, addresses, state),
                adopt=frozenset(adopt))
            checked = check_plan(deployment, state, plan, agents, adopt,
                                 now=None if clock is None
                                 else clock.seconds())
            return checked.addCallback(in_current_action(
                lambda problems: run(plan, problems)))

        def run(plan, problems):
            result = DeployResult(plan=plan, dry_run=dry_run,
                                  refused=problems)
            if dry_run:
                return _examined(agents, clock).addCallback(
                    lambda found: attr.evolve(
                        result, health=found[0], blocked=found[1]))
            if problems or not leaves(plan):
                return result
            removals = destructive_changes(plan)
            if not removals or confirm is None:
                return execute(plan, result)
            d = maybeDeferred(confirm, [c.describe() for c in removals])

            def confirmed(yes):
                if yes:
                    return execute(plan, result)
                return attr.evolve(result, refused=(
                    "not confirmed: %d destructive change%s (run again "
                    "with --yes to make %s)" % (
                        len(removals), "" if len(removals) == 1 else "s",
                        "it" if len(removals) == 1 else "them"),))
            return d.addCallback(in_current_action(confirmed))

        def execute(plan, result):
            observer = LineObserver(write)
            if live is None:
                told = observer
            else:
                told = _Observers([observer, live])
                live.start(plan)
            ran = run_state_change(plan, agents, observer=told, clock=clock)

            def finished(_):
                if live is not None:
                    live.stop()
                return attr.evolve(
                    result, changed=observer.changed,
                    failed={n: tuple(e) for n, e in observer.failed.items()})
            # Failures were recorded by the observer, one per leaf.
            return ran.addBoth(finished)
        d.addCallback(planned)
        return d.addActionFinish()


#: Seconds a node's clock may differ from the client's before the dry run
#: says so (snapshot names and log times come from the nodes' clocks).
CLOCK_SKEW = 5.0


def _examined(agents, clock):
    """
    Run ``doctor`` on every node.

    :return: ``Deferred`` firing with ``(health, blocked)`` as
        :class:`DeployResult` has them.
    """
    names = sorted(agents)
    asked = [maybeDeferred(agents[name].doctor) for name in names]

    def collect(results):
        health, blocked = {}, set()
        now = None if clock is None else clock.seconds()
        for name, (ok, value) in zip(names, results):
            if not ok:
                lines = ["%s doctor: could not run: %s" % (
                    FAILED, _reason(value))]
            else:
                lines = [check.line() for check in value.failures()]
                if not value.ok:
                    blocked.add(name)
                if now is not None and abs(value.time - now) > CLOCK_SKEW:
                    lines.append(
                        "%s clock: %.0f s %s this machine's -- fix: keep "
                        "the clocks right (timedatectl set-ntp true) "
                        "(does not block deploys)" % (
                            FAILED, abs(value.time - now),
                            "ahead of" if value.time > now else "behind"))
            if lines:
                health[name] = tuple(lines)
        return health, blocked
    return DeferredList(asked, consumeErrors=True).addCallback(collect)


def format_summary(deployment, result):
    """
    :param Deployment deployment: What was deployed.
    :param DeployResult result: What happened.
    :return: Lines of text: one per node (changed / unchanged / failed /
        did not report, with what to check), and, when a node did not
        report, the line saying the deploy changed nothing.
    """
    lines = []
    if not (leaves(result.plan) or result.unreachable or result.refused):
        lines.append("cluster already converged: no changes")
    for node in sorted(n.address for n in deployment.nodes):
        if node in result.unreachable:
            lines.append(silent_node_line(node, result.unreachable[node]))
        elif node in result.failed:
            lines.append("%s: %d changed, %d failed" % (
                node, result.changed.get(node, 0), len(result.failed[node])))
        elif result.changed.get(node):
            lines.append("%s: %d changed" % (node, result.changed[node]))
        else:
            lines.append("%s: unchanged" % (node,))
    if result.unreachable:
        lines.append(refusal_line(result.unreachable, result.dry_run))
    if result.refused:
        lines.extend(result.refused)
        lines.append(problems_line(result.refused, result.dry_run))
    for node in sorted(result.health):
        lines.extend("%s: %s" % (node, line) for line in result.health[node])
    if result.blocked:
        lines.append("%s: fix what blocks deploys first (flocker-node "
                     "doctor on the node says the same)" % (
                         ", ".join(sorted(result.blocked)),))
    return lines
