"""
Tests for :mod:`flocker.node._changes`: how a leaf change drives its node's
agent.
"""

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import Application
from flocker.node._changes import (
    CreateApplication, DeleteStoppedApplication, HandoffVolume, PushVolume,
    StopApplication,
)

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


class _Agent(object):
    """
    The two operations of an agent a stop uses, each answering with a
    Deferred the test fires.

    :ivar calls: ``(method name, arguments)`` in call order.
    :ivar answers: Method name to the Deferreds handed out, in order.
    """

    def __init__(self, **results):
        self.calls = []
        self.answers = {}
        self._results = results

    def _answer(self, name, *args):
        self.calls.append((name, args))
        result = self._results.get(name)
        d = Deferred() if result is None else result
        self.answers.setdefault(name, []).append(d)
        return d

    def prepare_handoff(self, name, target):
        return self._answer("prepare_handoff", name, target)

    def create_application(self, application):
        return self._answer("create_application", application)

    def stop_application(self, name, *keep):
        return self._answer("stop_application", name, *keep)


class StopApplicationTests(SynchronousTestCase):
    """
    Tests for :class:`StopApplication`'s ``run``.
    """

    def test_handoffs_prepared_with_the_stop(self):
        """
        A stop carrying hand-offs tells the node each one first and asks
        for the stop in the same turn, without waiting for the answers:
        the way for each last increment opens while the container stops.
        """
        agent = _Agent()
        change = StopApplication(node=A, name="web",
                                 handoffs=[("data", B), ("web", B)])
        d = change.run({A: agent})
        self.assertEqual(agent.calls, [
            ("prepare_handoff", ("data", B)),
            ("prepare_handoff", ("web", B)),
            ("stop_application", ("web",))])
        self.assertNoResult(d)

    def test_done_when_all_answered(self):
        """
        The stop is done once the stop and every preparation answered.
        """
        agent = _Agent()
        d = StopApplication(node=A, name="web",
                            handoffs=[("web", B)]).run({A: agent})
        agent.answers["stop_application"][0].callback(None)
        self.assertNoResult(d)
        agent.answers["prepare_handoff"][0].callback(None)
        self.assertIsNone(self.successResultOf(d))

    def test_failed_preparation_ignored(self):
        """
        A preparation that fails does not fail the stop: it only spares
        the hand-off a wait, and the hand-off opens its own way.
        """
        agent = _Agent(prepare_handoff=fail(RuntimeError("old agent")),
                       stop_application=succeed(None))
        d = StopApplication(node=A, name="web",
                            handoffs=[("web", B)]).run({A: agent})
        self.assertIsNone(self.successResultOf(d))

    def test_failed_stop_fails(self):
        """
        A stop that fails fails the change with the stop's own error.
        """
        agent = _Agent(prepare_handoff=succeed(None),
                       stop_application=fail(RuntimeError("docker down")))
        d = StopApplication(node=A, name="web",
                            handoffs=[("web", B)]).run({A: agent})
        self.assertEqual(str(self.failureResultOf(d, RuntimeError).value),
                         "docker down")

    def test_plain_stop(self):
        """
        A stop without hand-offs only stops, and answers as the node does.
        """
        agent = _Agent(stop_application=succeed(None))
        d = StopApplication(node=A, name="web").run({A: agent})
        self.assertEqual(agent.calls, [("stop_application", ("web",))])
        self.assertIsNone(self.successResultOf(d))

    def test_keep_asked(self):
        """
        A stop that keeps the container asks the node so, with the
        hand-offs prepared first as for any stop.
        """
        agent = _Agent(prepare_handoff=succeed(None),
                       stop_application=succeed(None))
        d = StopApplication(node=A, name="web", handoffs=[("web", B)],
                            keep=True).run({A: agent})
        self.assertEqual(
            (agent.calls, self.successResultOf(d)),
            ([("prepare_handoff", ("web", B)),
              ("stop_application", ("web", True))], None))

    def test_removal_not_kept(self):
        """
        A removed application's container is never kept: such a stop is
        refused at construction.
        """
        self.assertRaises(ValueError, StopApplication, node=A, name="web",
                          removal=True, keep=True)

    def test_description_unchanged(self):
        """
        Hand-offs do not change what the plan says of a stop: the
        hand-offs are steps of their own.
        """
        self.assertEqual(
            StopApplication(node=A, name="web",
                            handoffs=[("web", B)]).describe(),
            StopApplication(node=A, name="web").describe())


class DescribeResultTests(SynchronousTestCase):
    """
    Tests for ``describe_result`` of the changes that send a volume.
    """

    def test_sent(self):
        """
        A push and a hand-off describe the bytes they sent for people, and
        nothing for an answer that is not a count (``True`` included).
        """
        changes = [PushVolume(node=A, name="web", target=B),
                   HandoffVolume(node=A, name="web", target=B)]
        self.assertEqual(
            [[change.describe_result(sent)
              for sent in (512, 3 * 1024 * 1024 // 2, None, True)]
             for change in changes],
            [["512 B sent", "1.5 MiB sent", None, None]] * 2)


class DeleteStoppedApplicationTests(SynchronousTestCase):
    """
    Tests for :class:`DeleteStoppedApplication`.
    """

    def test_run_deletes(self):
        """
        It asks its node for a plain stop, which deletes the container
        kept by the move's stop, and answers as the node does.
        """
        agent = _Agent(stop_application=succeed(None))
        d = DeleteStoppedApplication(node=A, name="web", target=B).run(
            {A: agent})
        self.assertEqual((agent.calls, self.successResultOf(d)),
                         ([("stop_application", ("web",))], None))

    def test_describe(self):
        """
        The plan says which node deletes which application's stopped
        container, and where the application went.
        """
        self.assertEqual(
            DeleteStoppedApplication(node=A, name="web", target=B).describe(),
            "10.0.0.1: delete application web's stopped container (it "
            "moved to 10.0.0.2)")


class CreateApplicationTests(SynchronousTestCase):
    """
    Tests for :class:`CreateApplication`.
    """

    WEB = Application(name="web", image="flocker/busybox")

    def test_run_creates(self):
        """
        It asks its node to create the application's container.
        """
        agent = _Agent(create_application=succeed(None))
        d = CreateApplication(node=B, application=self.WEB).run({B: agent})
        self.assertEqual((agent.calls, self.successResultOf(d)),
                         ([("create_application", (self.WEB,))], None))

    def test_failure_does_not_fail(self):
        """
        A node that could not create the container does not fail the
        deploy: the start creates it.
        """
        agent = _Agent(create_application=fail(RuntimeError("no copy")))
        d = CreateApplication(node=B, application=self.WEB).run({B: agent})
        self.assertIsNone(self.successResultOf(d))

    def test_describe(self):
        """
        The plan says where the container is created, and that it starts
        after the hand-off.
        """
        self.assertEqual(
            CreateApplication(node=B, application=self.WEB).describe(),
            "10.0.0.2: create application web's container (started after "
            "the hand-off)")
