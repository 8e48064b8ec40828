"""
Tests for :mod:`flocker.node._restarter`: the agent restarting crashed
applications with volumes from Docker's events, with fencing's checks and
a bounded backoff.
"""

import attr
from eliot.testing import LoggedAction, LoggedMessage
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import Application, AttachedVolume, RestartPolicy
from flocker.node._docker import (
    APPLICATION_LABEL, FakeDockerClient, container_name,
)
from flocker.node._events import FakeDockerEvents
from flocker.node._local import LocalNodeAgent
from flocker.node._logging import NODE_CRASH_RECONCILED, NODE_CRASH_RESTART
from flocker.node._restarter import (
    CRASH_EVENTS, FIRST_DELAY, FOLLOW_AGAIN, MAXIMUM_DELAY, STEADY_SECONDS,
    CrashRestarter, restart_decision,
)
from flocker.route import MemoryRouteManager
from flocker.volume import MemoryNetwork, MemoryVolumeService
from flocker.volume._api import VolumeInfo
from flocker.testtools import capture_logging

A, B = "10.0.0.1", "10.0.0.2"
IMAGE = "flocker/busybox"


def application(name, policy="always", volume=True, retries=None):
    """
    :return: An application with (or without) a volume and a policy.
    """
    return Application(
        name=name, image=IMAGE,
        restart_policy=RestartPolicy(name=policy,
                                     maximum_retry_count=retries),
        volume=AttachedVolume(mountpoint="/data") if volume else None)


def info(name, owned=True, epoch=1):
    """
    :return: A ``VolumeInfo`` of this node's copy of ``name``.
    """
    return VolumeInfo(name=name, owner="node-a" if owned else "node-b",
                      owned=owned, size=0, maximum_size=None, snapshots=[],
                      mountpoint="/flocker/" + name, epoch=epoch)


class RestartDecisionTests(SynchronousTestCase):
    """
    ``restart_decision``: the policy, then this node's ownership of every
    volume.
    """

    def decide(self, app, exit_code=1, infos=None, stale=None, restarts=0):
        if infos is None:
            infos = {v.name: info(v.name) for v in app.all_volumes()}
        return restart_decision(app, exit_code, infos, stale or {},
                                restarts)

    def test_always_owned(self):
        """
        ``always`` and ``unless-stopped`` restart after any exit when the
        node owns the volume.
        """
        self.assertEqual(
            [self.decide(application("a", policy), exit_code=code)
             for policy in ("always", "unless-stopped") for code in (0, 1)],
            [None] * 4)

    def test_policies_that_do_not_restart(self):
        """
        ``never`` does not restart, nor ``on-failure`` after status 0 or
        after its ``maximum_retry_count`` restarts; within it, it does.
        """
        self.assertEqual(
            [self.decide(application("a", "never")),
             self.decide(application("a", "on-failure"), exit_code=0),
             self.decide(application("a", "on-failure", retries=3),
                         restarts=3),
             self.decide(application("a", "on-failure", retries=3),
                         restarts=2)],
            ["its restart policy is never",
             "it exited with status 0 and its policy is on-failure",
             "it was restarted 3 times (maximum_retry_count)", None])

    def test_no_volume(self):
        """
        An application without a volume is Docker's to restart.
        """
        self.assertEqual(self.decide(application("a", volume=False)),
                         "it has no volume: Docker applies its policy")

    def test_not_owned(self):
        """
        A volume this node no longer owns (a move handed it off), or that
        is not here at all, holds the application.
        """
        self.assertEqual(
            [self.decide(application("a"), infos={"a": info("a", False)}),
             self.decide(application("a"), infos={})],
            ["this node does not own volume a (it moved)",
             "volume a is not on this node"])

    def test_stale(self):
        """
        A copy found stale at its epoch holds the application while it
        keeps that epoch, not once it owns the volume at a later one.
        """
        self.assertEqual(
            [self.decide(application("a"), infos={"a": info("a", epoch=3)},
                         stale={"a": 3}),
             self.decide(application("a"), infos={"a": info("a", epoch=5)},
                         stale={"a": 3})],
            ["this node's copy of volume a is stale (epoch 3; the volume "
             "failed over)", None])


class CrashRestarterTests(SynchronousTestCase):
    """
    ``CrashRestarter`` over a fake Docker, its fake event stream and
    in-memory volumes.
    """

    def setUp(self):
        self.clock = Clock()
        network = MemoryNetwork()
        self.docker = FakeDockerClient(images=[IMAGE], node=A)
        self.events = FakeDockerEvents()
        self.volumes = MemoryVolumeService("node-a", A, network, self.clock)
        self.other = MemoryVolumeService("node-b", B, network, self.clock)
        self.agent = LocalNodeAgent(A, self.docker, self.volumes,
                                    MemoryRouteManager(node=A),
                                    clock=self.clock)
        self.restarter = CrashRestarter(self.clock, self.events, self.docker,
                                        lambda: self.volumes,
                                        lambda: self.agent)
        self.restarter.start()
        self.addCleanup(self.restarter.stop)

    def started(self, app):
        """
        Create ``app``'s volumes and start it through the agent, as a
        deploy does, with the event Docker writes.
        """
        for volume in app.all_volumes():
            self.successResultOf(self.agent.create_volume(volume.name, None))
        self.successResultOf(self.agent.start_application(app))
        self.emit("start", app.name)

    def emit(self, action, name, **attributes):
        """
        Write the event Docker writes for a Flocker container.
        """
        attributes[APPLICATION_LABEL] = "{}"
        self.events.emit("container", action, container_name(name),
                         attributes)

    def crash(self, name, exit_code=137):
        """
        Stop the container as its process dying by itself does: ``die``
        without a ``kill`` before it.
        """
        self.docker.stop_container(container_name(name), exit_code)
        self.emit("die", name, exitCode=str(exit_code))

    def running(self, name):
        units = self.successResultOf(self.docker.list())
        return [u.running for u in units if u.name == name] == [True]

    def test_follows_filtered(self):
        """
        The restarter follows only Flocker's containers' start, kill, die
        and destroy events.
        """
        [following] = self.events.followers
        self.assertEqual(following.filters, {
            "type": ["container"], "event": list(CRASH_EVENTS),
            "label": [APPLICATION_LABEL]})

    @capture_logging(None)
    def test_crash_restarted(self, logger):
        """
        An application with a volume whose process died is started again
        after ``FIRST_DELAY``, not before; the restart is logged.
        """
        self.started(application("db"))
        self.crash("db")
        self.clock.advance(FIRST_DELAY / 2)
        before = self.running("db")
        self.clock.advance(FIRST_DELAY / 2)
        [logged] = LoggedAction.of_type(logger.messages, NODE_CRASH_RESTART)
        self.assertEqual(
            (before, self.running("db"), logged.end_message["restarted"],
             logged.start_message["exit_code"]),
            (False, True, True, 137))

    def test_listing_behind(self):
        """
        A listing that still shows the container running just after its
        ``die`` (Docker updates it after writing the event) does not stop
        the restart: whether it runs is asked of the container itself.
        """
        self.started(application("db"))
        listed = self.docker.list

        def behind():
            return listed().addCallback(lambda units: {
                attr.evolve(unit, running=True) for unit in units})
        self.patch(self.docker, "list", behind)
        self.crash("db")
        self.clock.advance(FIRST_DELAY)
        self.assertEqual(self.successResultOf(
            self.docker.container_status("db")).running, True)

    def test_gone_before_restart(self):
        """
        A container listed but gone when its status is asked is not
        started again.
        """
        self.started(application("db"))
        self.crash("db")
        listed = self.successResultOf(self.docker.list())
        self.successResultOf(self.docker.remove("db"))
        self.patch(self.docker, "list", lambda: succeed(listed))
        self.clock.advance(FIRST_DELAY)
        self.assertEqual(self.successResultOf(self.docker.exists("db")),
                         False)

    def test_stopped_on_request(self):
        """
        A container whose ``die`` follows a ``kill`` (a stop asked through
        Docker's API, by Flocker or an operator) stays stopped.
        """
        self.started(application("db"))
        self.emit("kill", "db", signal="15")
        self.crash("db", exit_code=0)
        self.clock.advance(MAXIMUM_DELAY)
        self.assertFalse(self.running("db"))

    def test_kill_forgotten_at_start(self):
        """
        A ``kill`` counts until the container starts again: a later crash
        is restarted.
        """
        self.started(application("db"))
        self.emit("kill", "db", signal="15")
        self.crash("db", exit_code=0)
        self.successResultOf(self.agent.start_application(application("db")))
        self.emit("start", "db")
        self.crash("db")
        self.clock.advance(FIRST_DELAY)
        self.assertTrue(self.running("db"))

    def test_removed_meanwhile(self):
        """
        A container destroyed while its restart waits (a deploy removing
        it) is not started again.
        """
        self.started(application("db"))
        self.crash("db")
        self.successResultOf(self.docker.remove("db"))
        self.emit("destroy", "db")
        self.clock.advance(MAXIMUM_DELAY)
        self.assertEqual(self.successResultOf(self.docker.list()), set())

    @capture_logging(None)
    def test_moved_away(self, logger):
        """
        A container whose volume was handed to another node (this node no
        longer owns it) is not started again; the reason is logged.
        """
        self.started(application("db"))
        self.crash("db")
        self.successResultOf(self.volumes.handoff("db", B))
        self.clock.advance(FIRST_DELAY)
        [logged] = LoggedAction.of_type(logger.messages, NODE_CRASH_RESTART)
        self.assertEqual(
            (self.running("db"), logged.end_message["restarted"],
             logged.end_message["reason"]),
            (False, False, "this node does not own volume db (it moved)"))

    def test_fenced(self):
        """
        A volume found stale (a standby follows a later epoch) holds its
        applications.
        """
        self.started(application("db"))
        self.successResultOf(self.restarter.mark_stale("db"))
        self.crash("db")
        self.clock.advance(MAXIMUM_DELAY)
        self.assertFalse(self.running("db"))

    def test_no_volume_left_to_docker(self):
        """
        An application without a volume is left to Docker's own policy.
        """
        self.started(application("web", volume=False))
        self.crash("web")
        self.clock.advance(MAXIMUM_DELAY)
        self.assertFalse(self.running("web"))

    def test_other_containers_ignored(self):
        """
        Events of containers not named as Flocker's are ignored.
        """
        self.events.emit("container", "die", "someone-else",
                         {APPLICATION_LABEL: "{}", "exitCode": "1"})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def waits(self, count):
        """
        Crash the application ``count`` times in a row, each right after
        its restart.

        :return: The delays the restarter waited before each restart.
        """
        delays = []
        for _ in range(count):
            self.crash("db")
            [call] = self.clock.getDelayedCalls()
            delay = call.getTime() - self.clock.seconds()
            self.clock.advance(delay)
            delays.append(round(delay, 6))
            self.assertTrue(self.running("db"))
            self.emit("start", "db")
        return delays

    def test_backoff(self):
        """
        Crashes right after each restart double the wait, up to
        ``MAXIMUM_DELAY``.
        """
        self.started(application("db"))
        delays = self.waits(12)
        self.assertEqual(delays, [min(MAXIMUM_DELAY, FIRST_DELAY * 2 ** n)
                                  for n in range(12)])

    def test_backoff_starts_over(self):
        """
        A restarted container that ran ``STEADY_SECONDS`` before crashing
        again is restarted after ``FIRST_DELAY`` again.
        """
        self.started(application("db"))
        self.waits(3)
        self.clock.advance(STEADY_SECONDS)
        self.assertEqual(self.waits(1), [FIRST_DELAY])

    def test_follows_again(self):
        """
        When the stream ends, it is followed again after ``FOLLOW_AGAIN``
        seconds, and crashes are restarted again.
        """
        self.started(application("db"))
        self.events.drop()
        lost = self.restarter.following
        self.clock.advance(FOLLOW_AGAIN)
        self.crash("db")
        self.clock.advance(FIRST_DELAY)
        self.assertEqual((lost, self.restarter.following,
                          self.running("db")), (False, True, True))

    def gap(self, during):
        """
        Lose the event stream, call ``during`` while it is lost (what
        happens then gives no event), and follow it again.
        """
        self.events.drop()
        during()
        self.clock.advance(FOLLOW_AGAIN)
        self.successResultOf(self.restarter.reconciled)

    @capture_logging(None)
    def test_died_while_lost(self, logger):
        """
        A container that ran when the stream was lost and died before it
        was followed again (no event) is restarted once the stream is
        back, after ``FIRST_DELAY``, with the status Docker kept; the
        listing is logged.
        """
        self.started(application("db"))
        self.gap(lambda: self.docker.stop_container(container_name("db"),
                                                    143))
        before = self.running("db")
        self.clock.advance(FIRST_DELAY)
        [logged] = LoggedAction.of_type(logger.messages, NODE_CRASH_RESTART)
        [reconciled] = [
            logged.message for logged in
            LoggedMessage.of_type(logger.messages, NODE_CRASH_RECONCILED)
            if logged.message["after_gap"]]
        self.assertEqual(
            (before, self.running("db"), logged.start_message["exit_code"],
             reconciled["died"]),
            (False, True, 143, ["db"]))

    def test_killed_before_lost(self):
        """
        A container whose ``kill`` was seen before the stream was lost (a
        stop asked through Docker's API) stays stopped when it turns out
        to have died meanwhile.
        """
        self.started(application("db"))
        self.emit("kill", "db", signal="15")
        self.gap(lambda: self.docker.stop_container(container_name("db"),
                                                    0))
        self.clock.advance(MAXIMUM_DELAY)
        self.assertFalse(self.running("db"))

    def test_died_while_lost_rules(self):
        """
        A container that died while the stream was lost goes through the
        same rules as a crash seen: one whose volume this node no longer
        owns is not started again.
        """
        self.started(application("db"))

        def meanwhile():
            self.docker.stop_container(container_name("db"), 1)
            self.successResultOf(self.volumes.handoff("db", B))
        self.gap(meanwhile)
        self.clock.advance(MAXIMUM_DELAY)
        self.assertFalse(self.running("db"))

    def test_removed_while_lost(self):
        """
        A container removed while the stream was lost is forgotten, not
        started again.
        """
        self.started(application("db"))
        self.gap(lambda: self.successResultOf(self.docker.remove("db")))
        self.clock.advance(MAXIMUM_DELAY)
        self.assertEqual(self.successResultOf(self.docker.list()), set())

    def test_running_after_gap(self):
        """
        A container still running after a gap in the stream is left alone,
        and a crash after the gap is restarted as usual.
        """
        self.started(application("db"))
        self.gap(lambda: None)
        pending = self.clock.getDelayedCalls()
        self.crash("db")
        self.clock.advance(FIRST_DELAY)
        self.assertEqual((pending, self.running("db")), ([], True))

    def test_first_following_restarts_nothing(self):
        """
        The first following (the agent starting) only learns which
        containers run: one already stopped is the boot's to decide, and
        is not restarted; one running then and dying in a later gap is.
        """
        self.started(application("old"))
        self.started(application("db"))
        self.restarter.stop()
        self.docker.stop_container(container_name("old"), 1)
        restarter = CrashRestarter(self.clock, self.events, self.docker,
                                   lambda: self.volumes, lambda: self.agent)
        restarter.start()
        self.addCleanup(restarter.stop)
        self.successResultOf(restarter.reconciled)
        self.clock.advance(MAXIMUM_DELAY)
        old = self.running("old")
        self.events.drop()
        self.docker.stop_container(container_name("db"), 1)
        self.clock.advance(FOLLOW_AGAIN)
        self.successResultOf(restarter.reconciled)
        self.clock.advance(FIRST_DELAY)
        self.assertEqual((old, self.running("db")), (False, True))

    def test_stop(self):
        """
        Stopping the restarter cancels a pending restart and ends the
        following.
        """
        self.started(application("db"))
        self.crash("db")
        self.restarter.stop()
        self.clock.advance(MAXIMUM_DELAY)
        self.assertEqual((self.running("db"), self.events.followers),
                         (False, []))

    @capture_logging(None)
    def test_start_fails(self, logger):
        """
        A restart that fails (the image is gone) is logged as the action's
        failure; the next crash is still restarted.
        """
        self.started(application("db"))
        real = self.agent.start_application
        self.patch(self.agent, "start_application", self.fail_start)
        self.crash("db")
        self.clock.advance(FIRST_DELAY)
        [logged] = LoggedAction.of_type(logger.messages, NODE_CRASH_RESTART)
        self.agent.start_application = real
        self.crash("db")
        self.clock.advance(MAXIMUM_DELAY)
        self.assertEqual((logged.succeeded, self.running("db")),
                         (False, True))

    def fail_start(self, application):
        raise RuntimeError("no such image")
