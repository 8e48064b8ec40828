"""
Tests for :mod:`flocker.node._boot`: the agent applying restart policies of
applications with volumes when it starts.
"""

from eliot.testing import assertHasAction
from twisted.internet.defer import FirstError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, AttachedVolume, Replication, RestartPolicy,
)
from flocker.node._boot import (
    apply_restart_policies, boot_decisions, stop_stale_applications,
)
from flocker.node._docker import FakeDockerClient, Unit, container_name
from flocker.node._local import LocalNodeAgent
from flocker.node._logging import (
    NODE_BOOT, NODE_BOOT_CONFIRMED, NODE_SELF_FENCE,
)
from flocker.node._replication import MAXIMUM_BACKOFF, Replicator
from flocker.route import MemoryRouteManager
from flocker.volume import MemoryNetwork, MemoryVolumeService
from flocker.volume._epoch import HOLD, START
from flocker.testtools import capture_logging

A, B = "10.0.0.1", "10.0.0.2"
IMAGE = "flocker/busybox"


def application(name, policy="always", volume=True):
    """
    :return: An application with (or without) a volume and a policy.
    """
    return Application(
        name=name, image=IMAGE, restart_policy=RestartPolicy(name=policy),
        volume=AttachedVolume(mountpoint="/data") if volume else None)


class BootTests(SynchronousTestCase):
    """
    ``apply_restart_policies`` on a node whose containers all stopped (a
    power loss).
    """

    def setUp(self):
        clock = Clock()
        network = MemoryNetwork()
        self.docker = FakeDockerClient(images=[IMAGE], node=A)
        self.volumes = MemoryVolumeService("node-a", A, network, clock)
        self.other = MemoryVolumeService("node-b", B, network, clock)
        self.agent = LocalNodeAgent(A, self.docker, self.volumes,
                                    MemoryRouteManager(node=A), clock=clock)

    def stopped(self, app, pushed=False):
        """
        Run ``app`` through the agent (its volume created), maybe push its
        volume to B, then stop its container as a power loss does.
        """
        for volume in app.all_volumes():
            self.successResultOf(self.agent.create_volume(volume.name, None))
            if pushed:
                self.successResultOf(self.volumes.push(volume.name, B))
        self.successResultOf(self.agent.start_application(app))
        self.docker.stop_container(container_name(app.name), exit_code=255)

    def running(self):
        units = self.successResultOf(self.docker.list())
        return sorted(unit.name for unit in units if unit.running)

    @capture_logging(None)
    def test_decisions(self, logger):
        """
        An application whose volume never left the node starts; one whose
        volume has copies elsewhere (it may have failed over) is held; one
        configured never to restart stays stopped; the decisions are
        logged.
        """
        self.stopped(application("alone"))
        self.stopped(application("replicated"), pushed=True)
        self.stopped(application("never", policy="never"))
        decisions = self.successResultOf(apply_restart_policies(
            self.docker, self.volumes, self.agent))
        self.assertEqual((decisions, self.running()),
                         ({"alone": START, "replicated": HOLD}, ["alone"]))
        action = assertHasAction(self, logger, NODE_BOOT, True)
        self.assertEqual((action.end_message["started"],
                          action.end_message["held"]),
                         (["alone"], ["replicated"]))

    @capture_logging(None)
    def test_stop_stale(self, logger):
        """
        ``stop_stale_applications`` stops the running applications that
        mount the stale volume, and only those, and logs which.
        """
        stale, other = application("stale"), application("other")
        for app in (stale, other):
            self.successResultOf(self.agent.create_volume(app.name, None))
            self.successResultOf(self.agent.start_application(app))
        stopped = self.successResultOf(stop_stale_applications(
            self.docker, self.agent, "stale"))
        self.assertEqual((stopped, self.running()), (["stale"], ["other"]))
        action = assertHasAction(self, logger, NODE_SELF_FENCE, True)
        self.assertEqual(action.end_message["stopped"], ["stale"])

    def test_not_owned_held(self):
        """
        A container whose volume this node no longer owns (handed off or
        set aside) is held.
        """
        units = [_unit(application("web"))]
        self.assertEqual(boot_decisions(units, []), {"web": HOLD})

    def test_without_volume_left_to_docker(self):
        """
        Applications without volumes are Docker's to restart: no decision.
        """
        units = [_unit(application("web", volume=False))]
        self.assertEqual(boot_decisions(units, []), {})

    def test_pool_missing(self):
        """
        When the volumes cannot be listed nothing starts, and the failure
        is the result.
        """
        self.stopped(application("alone"))
        self.volumes.volumes = lambda: 1 / 0
        failure = self.failureResultOf(apply_restart_policies(
            self.docker, self.volumes, self.agent), FirstError)
        self.assertIsInstance(failure.value.subFailure.value,
                              ZeroDivisionError)
        self.assertEqual(self.running(), [])


def _unit(app):
    """
    :return: A stopped ``Unit`` of ``app``.
    """
    return Unit(name=app.name, application=app, running=False,
                container_id="c", state="exited", image=IMAGE)


class ConfirmedBootTests(SynchronousTestCase):
    """
    ``apply_restart_policies`` with the node's replicator: an application
    held because its volume has standbys starts once they confirm this
    node's ownership (a normal reboot), not when one follows a later owner
    (the volume failed over while the node was down).
    """

    def setUp(self):
        self.clock = Clock()
        self.network = network = MemoryNetwork()
        self.docker = FakeDockerClient(images=[IMAGE], node=A)
        self.volumes = MemoryVolumeService("node-a", A, network, self.clock)
        self.other = MemoryVolumeService("node-b", B, network, self.clock)
        self.agent = LocalNodeAgent(A, self.docker, self.volumes,
                                    MemoryRouteManager(node=A),
                                    clock=self.clock)
        self.replicator = Replicator(self.clock, lambda: self.volumes)
        self.app = application("db")
        self.successResultOf(self.agent.create_volume("db", None))
        self.successResultOf(self.agent.start_application(self.app))
        self.replicator.configure({"db": Replication(
            volume="db", application="db", standbys=[B],
            interval=2 * 10 ** 9)})
        self.clock.advance(0)
        # Power loss: the container stopped, the agent starts again.
        self.docker.stop_container(container_name("db"), exit_code=255)
        self.replicator.stop()
        self.replicator.configure({"db": Replication(
            volume="db", application="db", standbys=[B],
            interval=2 * 10 ** 9)})

    def running(self):
        units = self.successResultOf(self.docker.list())
        return sorted(unit.name for unit in units if unit.running)

    @capture_logging(None)
    def test_normal_reboot(self, logger):
        """
        Held at first; started once the standby accepted a push, without
        any deploy; the decision is logged.
        """
        decisions = self.successResultOf(apply_restart_policies(
            self.docker, self.volumes, self.agent, self.replicator))
        before = self.running()
        self.clock.advance(2)
        self.assertEqual((decisions, before, self.running()),
                         ({"db": HOLD}, [], ["db"]))
        assertHasAction(self, logger, NODE_BOOT_CONFIRMED, True,
                        {"application": "db"},
                        {"started": True, "reason": ""})

    def test_failed_over_meanwhile(self):
        """
        A standby that follows a later owner refuses the push: the
        application stays held.
        """
        self.successResultOf(self.other.fence("db", "node-b", 5))
        self.successResultOf(apply_restart_policies(
            self.docker, self.volumes, self.agent, self.replicator))
        for _ in range(10):
            self.clock.advance(2)
        self.assertEqual(self.running(), [])

    def test_standby_down(self):
        """
        A standby that cannot be reached is waited for: the application
        starts once it accepts a push.
        """
        self.network.unreachable.add(B)
        self.successResultOf(apply_restart_policies(
            self.docker, self.volumes, self.agent, self.replicator))
        self.clock.advance(10)
        waiting = self.running()
        self.network.unreachable.clear()
        self.clock.advance(MAXIMUM_BACKOFF + 2)
        self.assertEqual((waiting, self.running()), ([], ["db"]))

    def test_deploy_decided_meanwhile(self):
        """
        An application a deploy removed while the confirmation waited is
        not started.
        """
        self.successResultOf(apply_restart_policies(
            self.docker, self.volumes, self.agent, self.replicator))
        self.successResultOf(self.agent.stop_application("db"))
        self.clock.advance(2)
        self.assertEqual(self.successResultOf(self.docker.list()), set())
