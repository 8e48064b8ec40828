"""
State changes: immutable values that describe one step of converging the
cluster, and the combinators that arrange them in a tree.

A plan is a tree whose inner nodes run their children in sequence
(:func:`sequentially`) or concurrently (:func:`in_parallel`) and whose leaves
each call one operation of one node's agent.  The same value is printed by
``--dry-run`` (:func:`render_plan`) and run by a deploy
(:func:`run_state_change`), so what is shown is what runs.
"""

import time

import attr
from pyrsistent import pvector
from twisted.internet.defer import DeferredList, maybeDeferred, succeed
from zope.interface import Interface, implementer

from ._context import in_current_action

__all__ = [
    "IStateChange", "ITransfer", "IChangeObserver",
    "Sequentially", "InParallel", "sequentially", "in_parallel",
    "run_state_change", "render_plan", "leaves", "ChangeFailures",
    "plan_to_dict",
]


class IStateChange(Interface):
    """
    One step of converging a cluster, as an immutable value.
    """

    def run(agents):
        """
        Make the change.

        :param agents: Mapping of node address to the ``INodeAgent`` provider
            that acts on that node.
        :return: ``Deferred`` firing when the change is done, or failing with
            the reason it could not be made.
        """

    def describe():
        """
        :return: One line of text saying what the change does and where.
        """


class ITransfer(IStateChange):
    """
    A change that sends data between nodes and can say how far it got.
    """

    def run(agents, progress=None):
        """
        Make the change, as :meth:`IStateChange.run`.

        :param progress: ``None``, or an object told how far the data went:
            ``update(sent, total)`` (``total`` ``None`` when unknown) and
            ``finish()``, as the ``progress`` of ``INodeAgent``'s volume
            transfers.
        """


class IChangeObserver(Interface):
    """
    Told about each leaf change as it starts, makes progress and finishes,
    for progress output.
    """

    def change_started(change):
        """
        :param change: The leaf :class:`IStateChange` about to run.
        """

    def change_progress(change, sent, total):
        """
        :param change: A running leaf :class:`ITransfer`.
        :param int sent: Bytes it sent so far.
        :param total: Bytes it will send in all, or ``None`` if unknown.
        """

    def change_finished(change, failure, seconds, result=None):
        """
        :param change: The leaf :class:`IStateChange` that finished.
        :param failure: ``None`` on success, else the ``Failure``.
        :param float seconds: How long it took.
        :param result: What its ``run`` fired with on success (for volume
            transfers, the bytes sent), else ``None``.
        """


class ChangeFailures(Exception):
    """
    One or more branches of an :class:`InParallel` failed.  Every branch ran
    to its end first, so the others' outcomes are not hidden.

    :ivar failures: ``list`` of ``Failure``, in branch order.
    """

    def __init__(self, failures):
        Exception.__init__(self, failures)
        self.failures = failures

    def __str__(self):
        return "; ".join(f.getErrorMessage() for f in self.failures)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class _Group(object):
    """
    A group of changes; its subclass says how they run.

    :ivar changes: ``PVector`` of :class:`IStateChange` providers.
    :ivar str label: What the group is for, shown by :func:`render_plan`.
    """
    changes = attr.ib(converter=pvector)
    label = attr.ib(default="")

    #: How :meth:`describe` names an unlabelled group.
    kind = ""

    def run(self, agents):
        return run_state_change(self, agents)

    def describe(self):
        return self.label or self.kind


@attr.s(frozen=True, slots=True)
class Sequentially(_Group):
    """
    Run ``changes`` one after another, stopping at the first failure.
    """
    kind = "in sequence"


@attr.s(frozen=True, slots=True)
class InParallel(_Group):
    """
    Run ``changes`` all at once; fail with :class:`ChangeFailures` after all
    of them ended if any failed.
    """
    kind = "in parallel"


def _flatten(kind, changes):
    # Nested groups of the same kind and empty groups add nothing to a plan:
    # folding them keeps equal plans equal however they were assembled.
    result = []
    for change in changes:
        if isinstance(change, _Group) and not change.changes:
            continue
        if isinstance(change, kind) and not change.label:
            result.extend(change.changes)
        else:
            result.append(change)
    return result


def sequentially(changes, label=""):
    """
    :param changes: Iterable of :class:`IStateChange` providers.
    :param str label: What the group is for.
    :return: A change running them in order (the single change itself when
        there is one, an empty :class:`Sequentially` when there are none).
    """
    flat = _flatten(Sequentially, changes)
    if len(flat) == 1:
        return flat[0]
    return Sequentially(changes=flat, label=label if flat else "")


def in_parallel(changes, label=""):
    """
    :param changes: Iterable of :class:`IStateChange` providers.
    :param str label: What the group is for.
    :return: A change running them concurrently (the single change itself
        when there is one, an empty :class:`Sequentially` when there are
        none).
    """
    flat = _flatten(InParallel, changes)
    if not flat:
        return Sequentially(changes=[])
    if len(flat) == 1:
        return flat[0]
    return InParallel(changes=flat, label=label)


def leaves(change):
    """
    :param change: A plan.
    :return: ``list`` of its leaf changes, depth first, in order.
    """
    if isinstance(change, _Group):
        result = []
        for child in change.changes:
            result.extend(leaves(child))
        return result
    return [change]


def run_state_change(change, agents, observer=None, clock=None):
    """
    Run a plan.

    :param change: An :class:`IStateChange` provider (a leaf or a tree).
    :param agents: Mapping of node address to ``INodeAgent`` provider.
    :param observer: Optional :class:`IChangeObserver`, told of each leaf as
        it starts and finishes, and of the progress of each
        :class:`ITransfer`.
    :param clock: Optional ``IReactorTime`` used to time leaves (tests pass a
        ``Clock``); defaults to the monotonic clock.
    :return: ``Deferred`` firing with ``None`` when everything ran, or failing
        with the first failure of a sequence or a :class:`ChangeFailures`.
    """
    now = clock.seconds if clock is not None else time.monotonic
    if isinstance(change, Sequentially):
        d = succeed(None)
        for child in change.changes:
            d.addCallback(in_current_action(
                lambda _, child=child: run_state_change(
                    child, agents, observer, clock)))
        return d
    if isinstance(change, InParallel):
        branches = [run_state_change(child, agents, observer, clock)
                    for child in change.changes]
        d = DeferredList(branches, consumeErrors=True)

        def collect(results):
            failures = [value for ok, value in results if not ok]
            if failures:
                raise ChangeFailures(failures)
        return d.addCallback(collect)
    if observer is None:
        return maybeDeferred(change.run, agents)
    started = now()
    observer.change_started(change)
    if ITransfer.providedBy(change):
        d = maybeDeferred(change.run, agents,
                          progress=_ObservedProgress(observer, change))
    else:
        d = maybeDeferred(change.run, agents)

    def finished(result):
        failure = result if hasattr(result, "getErrorMessage") else None
        observer.change_finished(change, failure, now() - started,
                                 None if failure else result)
        return result
    return d.addBoth(finished)


class _ObservedProgress(object):
    """
    The progress object of one transfer, telling an observer.
    """

    def __init__(self, observer, change):
        self._observer = observer
        self._change = change

    def update(self, sent, total):
        self._observer.change_progress(self._change, sent, total)

    def finish(self):
        # The observer hears of the end from change_finished, with the
        # outcome.
        pass


def render_plan(change, indent="  "):
    """
    Render a plan as an indented text tree, one change per line.

    :param change: A plan.
    :param str indent: The indentation added at each level.
    :return: The text (``"no changes"`` for an empty plan).
    """
    if isinstance(change, Sequentially) and not change.changes:
        return "no changes"
    lines = []

    def walk(node, depth):
        lines.append(indent * depth + node.describe())
        if isinstance(node, _Group):
            for child in node.changes:
                walk(child, depth + 1)
    walk(change, 0)
    return "\n".join(lines)


def plan_to_dict(change):
    """
    A plan as JSON-compatible data, for scripts (``--dry-run --json``).

    :param change: A plan.
    :return: For a group, ``{"group": "in sequence" or "in parallel",
        "label": ..., "changes": [...]}``; for a leaf, ``{"change": its
        class name, "node": its node (if any), "description": its
        ``describe()``}``.
    """
    if isinstance(change, _Group):
        return {"group": ("in parallel" if isinstance(change, InParallel)
                          else "in sequence"),
                "label": change.label,
                "changes": [plan_to_dict(child) for child in change.changes]}
    leaf = {"change": type(change).__name__,
            "description": change.describe()}
    node = getattr(change, "node", None)
    if node is not None:
        leaf["node"] = node
    return leaf
