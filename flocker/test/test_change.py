"""
Tests for :mod:`flocker._change`.
"""

import attr
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from flocker._change import (
    ChangeFailures, IChangeObserver, IStateChange, ITransfer, InParallel,
    Sequentially, in_parallel, leaves, render_plan, run_state_change,
    sequentially,
)


@implementer(IStateChange)
@attr.s(frozen=True)
class Record(object):
    """
    A change that appends its name to ``agents["log"]`` and returns what
    ``agents[name]`` holds (a Deferred or a value).
    """
    name = attr.ib()

    def run(self, agents):
        agents["log"].append(self.name)
        return agents.get(self.name, succeed(None))

    def describe(self):
        return "record " + self.name


@implementer(ITransfer)
@attr.s(frozen=True)
class Send(object):
    """
    A transfer that reports ``agents[name]`` (a list of ``(sent, total)``)
    to its progress object and finishes at once; it appends to
    ``agents["log"]`` whether it was given one.
    """
    name = attr.ib()

    def run(self, agents, progress=None):
        agents["log"].append(progress is not None)
        if progress is not None:
            for sent, total in agents[self.name]:
                progress.update(sent, total)
            progress.finish()
        return succeed(len(agents[self.name]))

    def describe(self):
        return "send " + self.name


@implementer(IChangeObserver)
class Observer(object):
    """
    Collects the calls of every ``IChangeObserver`` method.

    :ivar events: ``list`` of ``(method, change name, details...)``.
    """

    def __init__(self):
        self.finished = []
        self.results = []
        self.events = []

    def change_started(self, change):
        self.events.append(("started", change.name))

    def change_progress(self, change, sent, total):
        self.events.append(("progress", change.name, sent, total))

    def change_finished(self, change, failure, seconds, result=None):
        self.finished.append((change.name, failure is None, seconds))
        self.results.append(result)
        self.events.append(("finished", change.name))


class CombinatorTests(SynchronousTestCase):
    """
    Tests for ``sequentially`` and ``in_parallel``.
    """

    def test_interface(self):
        """
        Both combinators provide ``IStateChange``.
        """
        verifyObject(IStateChange, Sequentially(changes=[]))
        verifyObject(IStateChange, InParallel(changes=[]))

    def test_flatten(self):
        """
        Nested unlabelled groups of the same kind fold into one; a single
        change stands alone; equal trees compare equal.
        """
        a, b, c = Record("a"), Record("b"), Record("c")
        self.assertEqual(sequentially([a, sequentially([b, c])]),
                         Sequentially(changes=[a, b, c]))
        self.assertEqual(in_parallel([a]), a)
        self.assertEqual(in_parallel([]), Sequentially(changes=[]))
        self.assertEqual(hash(sequentially([a, b])),
                         hash(Sequentially(changes=[a, b])))

    def test_labelled_groups_kept(self):
        """
        A labelled group is not folded into its parent.
        """
        a, b = Record("a"), Record("b")
        inner = Sequentially(changes=[a, b], label="node x")
        self.assertEqual(sequentially([inner, a]),
                         Sequentially(changes=[inner, a]))

    def test_leaves(self):
        """
        ``leaves`` lists a tree's leaf changes depth first.
        """
        a, b, c = Record("a"), Record("b"), Record("c")
        self.assertEqual(leaves(Sequentially(changes=[
            a, InParallel(changes=[b, c])])), [a, b, c])


class RunTests(SynchronousTestCase):
    """
    Tests for ``run_state_change``.
    """

    def test_sequence_in_order(self):
        """
        A sequence runs its changes one after another, each after the
        previous one's Deferred fired.
        """
        first = Deferred()
        agents = {"log": [], "a": first}
        d = run_state_change(Sequentially(changes=[Record("a"), Record("b")]),
                             agents)
        self.assertEqual(agents["log"], ["a"])
        self.assertNoResult(d)
        first.callback(None)
        self.assertEqual(agents["log"], ["a", "b"])
        self.assertIsNone(self.successResultOf(d))

    def test_sequence_stops_at_failure(self):
        """
        A failure in a sequence stops it and is the sequence's result.
        """
        agents = {"log": [], "a": fail(ValueError("boom"))}
        d = run_state_change(Sequentially(changes=[Record("a"), Record("b")]),
                             agents)
        self.failureResultOf(d, ValueError)
        self.assertEqual(agents["log"], ["a"])

    def test_parallel_starts_all(self):
        """
        A parallel group starts every change before any finishes.
        """
        agents = {"log": [], "a": Deferred(), "b": Deferred()}
        d = run_state_change(InParallel(changes=[Record("a"), Record("b")]),
                             agents)
        self.assertEqual(agents["log"], ["a", "b"])
        agents["a"].callback(None)
        self.assertNoResult(d)
        agents["b"].callback(None)
        self.successResultOf(d)

    def test_parallel_failure_keeps_others(self):
        """
        A failing branch does not stop or hide the others: all run to their
        end and every failure is reported.
        """
        later = Deferred()
        agents = {"log": [], "a": fail(ValueError("one")), "b": later,
                  "c": fail(KeyError("two"))}
        d = run_state_change(InParallel(changes=[
            Record("a"), Record("b"), Record("c")]), agents)
        self.assertNoResult(d)
        later.callback(None)
        failure = self.failureResultOf(d, ChangeFailures)
        self.assertEqual([f.type for f in failure.value.failures],
                         [ValueError, KeyError])

    def test_observer(self):
        """
        The observer hears of every leaf with its outcome, duration and
        result.
        """
        clock = Clock()
        slow = Deferred()
        agents = {"log": [], "a": slow, "b": fail(ValueError("x"))}
        observer = Observer()
        d = run_state_change(InParallel(changes=[Record("a"), Record("b")]),
                             agents, observer=observer, clock=clock)
        clock.advance(2.5)
        slow.callback(7)
        self.failureResultOf(d, ChangeFailures)
        self.assertEqual(observer.finished,
                         [("b", False, 0.0), ("a", True, 2.5)])
        # A failed change has no result; a successful one, what it fired
        # with.
        self.assertEqual(observer.results, [None, 7])


    def test_observer_interface(self):
        """
        The test's observer provides ``IChangeObserver``.
        """
        verifyObject(IChangeObserver, Observer())

    def test_started_before_finished(self):
        """
        The observer hears that each leaf starts before it runs, in the
        order they start.
        """
        slow = Deferred()
        agents = {"log": [], "a": slow}
        observer = Observer()
        d = run_state_change(
            Sequentially(changes=[Record("a"), Record("b")]), agents,
            observer=observer, clock=Clock())
        self.assertEqual(observer.events, [("started", "a")])
        slow.callback(None)
        self.successResultOf(d)
        self.assertEqual(observer.events, [
            ("started", "a"), ("finished", "a"),
            ("started", "b"), ("finished", "b")])

    def test_transfer_progress(self):
        """
        A transfer's progress reaches the observer between its start and
        its end; a transfer run without an observer gets no progress
        object.
        """
        agents = {"log": [], "s": [(1, 10), (10, 10)]}
        observer = Observer()
        self.successResultOf(run_state_change(
            Send("s"), agents, observer=observer, clock=Clock()))
        self.assertEqual(observer.events, [
            ("started", "s"), ("progress", "s", 1, 10),
            ("progress", "s", 10, 10), ("finished", "s")])
        self.successResultOf(run_state_change(Send("s"), agents))
        self.assertEqual(agents["log"], [True, False])


class RenderTests(SynchronousTestCase):
    """
    Tests for ``render_plan``.
    """

    def test_empty(self):
        """
        An empty plan renders as "no changes".
        """
        self.assertEqual(render_plan(Sequentially(changes=[])), "no changes")

    def test_tree(self):
        """
        A tree renders one change per line, children indented under their
        group's label.
        """
        tree = Sequentially(changes=[
            InParallel(changes=[Record("a"), Record("b")], label="phase"),
            Record("c")], label="plan")
        self.assertEqual(render_plan(tree),
                         "plan\n  phase\n    record a\n    record b\n"
                         "  record c")
