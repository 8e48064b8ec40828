"""
Tests for :mod:`flocker.cli._logs`: an application's output from the node
that runs it.
"""

import attr
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import Application
from flocker.cli._logs import (
    FOLLOW_INTERVAL, NoSuchApplication, application_logs, find_application,
)
from flocker.node._fake import FakeCluster

A, B = "10.0.0.1", "10.0.0.2"
TALKER = Application(name="talker", image="flocker/busybox")


class ApplicationLogsTests(SynchronousTestCase):
    """
    Tests for ``application_logs``.
    """

    def setUp(self):
        self.cluster = FakeCluster([A, B])
        self.successResultOf(self.cluster.agents[B].start_application(TALKER))
        self.out, self.err = [], []

    def logs(self, **kwargs):
        return application_logs(self.cluster.state(), self.cluster.agents,
                                "talker", self.out.append, self.err.append,
                                **kwargs)

    def test_from_its_node(self):
        """
        The lines come from the node running the application, standard
        error apart; ``tail`` keeps the last ones.
        """
        node = self.cluster.agents[B]
        node.say("talker", "one")
        node.say("talker", "oops", "stderr")
        node.say("talker", "two")
        self.assertEqual(
            (self.successResultOf(self.logs()), self.out, self.err),
            (B, ["one", "two"], ["oops"]))
        del self.out[:]
        self.successResultOf(self.logs(tail=1))
        self.assertEqual(self.out, ["two"])

    def test_follow(self):
        """
        Following prints what is written later, each line once, every
        ``FOLLOW_INTERVAL`` seconds, until told to stop.
        """
        clock, stopped = Clock(), Deferred()
        node = self.cluster.agents[B]
        node.say("talker", "before")
        d = self.logs(follow=True, clock=clock, stopped=stopped)
        node.say("talker", "after")
        clock.advance(FOLLOW_INTERVAL)
        self.assertEqual(self.out, ["before", "after"])
        stopped.callback(None)
        clock.advance(FOLLOW_INTERVAL)
        self.assertEqual((self.successResultOf(d), self.out),
                         (B, ["before", "after"]))

    def test_nowhere(self):
        """
        An application no node has fails with one line saying so.
        """
        failure = self.failureResultOf(application_logs(
            self.cluster.state(), self.cluster.agents, "ghost",
            self.out.append, self.err.append), NoSuchApplication)
        self.assertEqual(str(failure.value), (
            "application ghost has no container on any node (2 asked); "
            "flocker-deploy --status shows where applications run"))

    def test_running_preferred(self):
        """
        A node running the application is read from rather than one with
        a stopped container.
        """
        a = self.cluster.agents[A]
        a.state = attr.evolve(a.state, applications={"talker": TALKER})
        state = self.cluster.state()
        self.assertEqual((find_application(state, "talker"),
                          find_application(state, "ghost")), (B, None))
