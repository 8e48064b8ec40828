"""
The node agent that runs on the node itself: ``INodeAgent`` over this node's
Docker client, volume service and route manager.  ``flocker-node`` builds one
per invocation and calls the method its subcommand names.
"""

from eliot import current_action
from eliot.twisted import DeferredContext
from twisted.internet.defer import (
    FirstError, fail, gatherResults, inlineCallbacks, maybeDeferred, succeed,
)
from twisted.internet.task import deferLater
from zope.interface import implementer

from .._context import in_current_action
from .._model import NodeState, public_key_fingerprint
from ._agent import ApplicationNotReady, INodeAgent, VolumeRelease
from ._docker import ContainerNotFound
from ._logging import (
    NODE_ACQUIRE_VOLUME, NODE_ANNOUNCE_FAILED, NODE_CREATE_VOLUME,
    NODE_FENCE_VOLUME, NODE_TAKE_OVER_VOLUME,
    NODE_DELETE_VOLUME, NODE_DOCTOR, NODE_HANDOFF_VOLUME,
    NODE_INSTALL_KEY, NODE_LOGS, NODE_PREPARE_HANDOFF, NODE_PULL_IMAGE,
    NODE_PUSH_VOLUME, NODE_RELEASE_VOLUME, NODE_REPORT, NODE_ROTATE_KEY,
    NODE_SEED_VOLUME,
    NODE_SET_AUTOMATIC, NODE_SET_LINKS, NODE_SET_ROUTES,
    NODE_CREATE_APPLICATION, NODE_START_APPLICATION, NODE_STOP_APPLICATION,
    NODE_WAIT_FOR_APPLICATION,
)
from ._logging import NODE_EXPECT_SENDERS, NODE_SET_REPLICATION

__all__ = ["LocalNodeAgent", "link_environment", "WAIT_INTERVAL"]


# The steps of INodeAgent.rotate_node_key, by name: the store's method for
# each, returning the public key line the step leaves.
_ROTATION_STEPS = {
    "prepare": lambda store: store.prepare_rotation(),
    "finish": lambda store: store.finish_rotation(),
}


def _summarised(report):
    # Counts in the log, not the checks' text.
    current_action().add_success_fields(
        checks=len(report.checks),
        failed=sum(1 for check in report.checks if not check.ok),
        ok=report.ok)
    return report


def link_environment(application, address):
    """
    The Docker-link-compatible environment variables of an application's
    links.  Each link ``{local_port: L, remote_port: R, alias: A}`` gives::

        A_PORT_L_TCP=tcp://ADDRESS:R
        A_PORT_L_TCP_ADDR=ADDRESS
        A_PORT_L_TCP_PORT=R
        A_PORT_L_TCP_PROTO=tcp

    (``_UDP`` and ``udp://`` for a UDP link), where ``A`` is the alias in
    upper case with ``-`` and ``.`` as ``_``.  ``ADDRESS``
    is this node's own address: the node's routes take the connection to
    wherever the target runs, so the variables stay right when it moves.

    :param Application application: The linking application.
    :param str address: This node's IP address.
    :return: ``dict`` of variable name to value.
    """
    environment = {}
    for link in application.links:
        if link.named:
            # Names resolve; only Flocker's own links have variables.
            continue
        prefix = "%s_PORT_%d_%s" % (
            link.alias.upper().replace("-", "_").replace(".", "_"),
            link.local_port, link.protocol.upper())
        environment[prefix] = "%s://%s:%d" % (link.protocol, address,
                                               link.remote_port)
        environment[prefix + "_ADDR"] = address
        environment[prefix + "_PORT"] = str(link.remote_port)
        environment[prefix + "_PROTO"] = link.protocol
    return environment


#: Seconds between two looks at an application being waited for.
WAIT_INTERVAL = 1.0


def _readiness(condition, status):
    """
    :param str condition: A ``depends_on`` condition.
    :param ContainerStatus status: The container's status now.
    :return: ``True`` when ``condition`` holds, ``None`` while it may
        still come to hold, else why it never will.
    """
    finished = status.exit_code is not None
    if condition == "service_completed_successfully":
        if not finished:
            return None
        return True if status.exit_code == 0 else (
            "it exited with status %d" % (status.exit_code,))
    if condition == "service_healthy":
        if status.health == "healthy" and status.running:
            return True
        if status.health is None:
            return "it has no healthcheck"
        if finished:
            return "it exited with status %d" % (status.exit_code,)
        return None
    return True if (status.running or finished) else None


def _late(condition, status, timeout):
    """
    :return: Why an application is not ready when the wait's time is up.
    """
    if condition == "service_healthy":
        return "it is not healthy after %g s (its healthcheck says %s)" % (
            timeout, status.health)
    return "it did not finish within %g s" % (timeout,)


@implementer(INodeAgent)
class LocalNodeAgent(object):
    """
    ``INodeAgent`` acting on this node.

    :ivar str address: This node's address (as the deployment names it; an
        IP address, used in link rules and variables).
    :ivar docker: ``IDockerClient`` provider for this node's daemon.
    :ivar volumes: ``IVolumeService`` provider for this node's pool.
    :ivar routes: ``IRouteManager`` provider for this node's rules.
    :ivar node_keys: The node's ``NodeKeyStore`` (see
        :mod:`flocker.volume._nodekey`), or ``None`` for a node that keeps
        no node key (it reports none and refuses to install one).
    """

    def __init__(self, address, docker, volumes, routes, node_keys=None,
                 checks=None, clock=None, automatic=None,
                 replicator=None, write_hosts=None, senders=None):
        """
        :param checks: ``() -> Deferred`` firing with this node's
            :class:`~flocker.node._doctor.DoctorReport`, or ``None`` for a
            node that cannot check itself (its ``doctor`` fails).
        :param clock: ``IReactorTime`` provider paced waits for
            applications use, or ``None`` for a node that does not wait
            (its ``wait_for_application`` fails).
        :param automatic: The node's
            :class:`~flocker.node._automatic.AutomaticFailover` (with its
            store), or ``None`` for a node without etcd.
        :param replicator: The node's
            :class:`~flocker.node._replication.Replicator`, or ``None`` for
            a node that replicates nothing (it reports no replication and
            its ``set_replication`` fails).
        :param write_hosts: ``(pid, links) -> None`` rewriting the names of
            the hosts file of the container whose process is ``pid`` (the
            node's is :func:`flocker.node._hosts.write_container_hosts`), or
            ``None`` for a node whose ``set_links`` changes the link rules
            only (one over fake parts: there is no such process).
        :param senders: The node's
            :class:`~flocker.node._senders.ExpectedSenders`, or ``None``
            for a node that keeps no record (it reports none and its
            ``expect_senders`` fails).
        """
        self.senders = senders
        self._write_hosts = write_hosts
        self._clock = clock
        self.replicator = replicator
        self.address = address
        self.docker = docker
        self.volumes = volumes
        self.routes = routes
        self.node_keys = node_keys
        self._checks = checks
        self.automatic = automatic

    def _action(self, action_type, generator, **fields):
        action = action_type(address=self.address, **fields)
        with action.context():
            return DeferredContext(generator()).addActionFinish()

    def report(self):
        @inlineCallbacks
        def report():
            try:
                units, infos, routes, images, listening, node_id = (
                    yield gatherResults([
                        self.docker.list(), self.volumes.volumes(),
                        self.routes.get_routes(), self.docker.list_images(),
                        self.routes.listening_ports(), self._node_id()],
                        consumeErrors=True))
            except FirstError as e:
                # The reason, not the wrapper: callers report it as one line.
                e.subFailure.raiseException()
            running = [unit.name for unit in units if unit.running]
            # Flocker's running containers listen on their published ports
            # (Docker's proxy); every other listener is someone else's.
            ours = {port.external for unit in units if unit.running
                    for port in unit.ports}
            volumes = [info.state() for info in infos]
            links = {}
            for unit in units:
                # A project's application may get names after it started
                # (set_links), so its installed links are read even when
                # it started with none.
                if unit.running and (unit.application.links
                                     or unit.application.project):
                    pid = yield self.docker.container_pid(unit.name)
                    if pid is not None:
                        links[unit.name] = yield self.routes.get_links(pid)
            current_action().add_success_fields(applications=len(units))
            return NodeState(
                address=self.address,
                applications={unit.name: unit.application for unit in units},
                running=running,
                volumes={volume.name: volume for volume in volumes},
                routes=frozenset(routes), links=links,
                node_key=(None if self.node_keys is None
                          else self.node_keys.status()),
                images=images, busy_ports=frozenset(listening) - ours,
                node_id=node_id,
                replication=({} if self.replicator is None
                             else self.replicator.status()),
                automatic={} if self.automatic is None
                else self.automatic.placements,
                expected_senders={} if self.senders is None
                else self.senders.current)
        return self._action(NODE_REPORT, report)

    def _node_id(self):
        """
        :return: ``Deferred`` firing with the node's identity (its pool's),
            or ``None`` when the pool cannot be opened.
        """
        identity = getattr(self.volumes, "identity", None)
        if identity is not None:
            return identity()
        return succeed(getattr(self.volumes, "node_id", None))

    def delete_volume(self, name):
        @inlineCallbacks
        def delete():
            copies = yield self.volumes.volumes()
            if any(info.name == name for info in copies):
                yield self.volumes.delete(name)
        return self._action(NODE_DELETE_VOLUME, delete, volume=name)

    def doctor(self):
        def doctor():
            if self._checks is None:
                return fail(ValueError(
                    "node %s was not given its checks" % (self.address,)))
            return self._checks().addCallback(in_current_action(_summarised))
        return self._action(NODE_DOCTOR, doctor)

    def pull_image(self, image, dry_run=False):
        def pull():
            return self.docker.pull_image(image, dry_run)
        return self._action(NODE_PULL_IMAGE, pull, image=image,
                            dry_run=dry_run)

    def wait_for_application(self, name, condition, timeout):
        @inlineCallbacks
        def wait():
            if self._clock is None:
                raise ApplicationNotReady(name, "this node cannot wait")
            deadline = self._clock.seconds() + timeout
            while True:
                try:
                    status = yield self.docker.container_status(name)
                except ContainerNotFound:
                    raise ApplicationNotReady(name, "it has no container")
                verdict = _readiness(condition, status)
                if verdict is True:
                    return
                if verdict is not None:
                    raise ApplicationNotReady(name, verdict)
                if self._clock.seconds() >= deadline:
                    raise ApplicationNotReady(name, _late(
                        condition, status, timeout))
                yield deferLater(self._clock, WAIT_INTERVAL, lambda: None)
        return self._action(NODE_WAIT_FOR_APPLICATION, wait,
                            application=name, condition=condition,
                            timeout=timeout)

    def logs(self, name, since=None, tail=None):
        @inlineCallbacks
        def logs():
            lines = yield self.docker.logs(name, since, tail)
            current_action().add_success_fields(lines=len(lines))
            return [tuple(line) for line in lines]
        return self._action(NODE_LOGS, logs, application=name)

    def start_application(self, application):
        @inlineCallbacks
        def start():
            if (self.automatic is not None and
                    self.automatic.application(application.name)):
                # Held before it starts: a node that cannot hold it (etcd
                # says it runs elsewhere since a failover) must not.
                yield self.automatic.hold(application.name)
            yield self._container(self.docker.add, self.volumes.mount,
                                  application)
            pid = yield self.docker.container_pid(application.name)
            if pid is None:
                return
            try:
                yield self.routes.announce_container(pid)
            except Exception as e:
                # It only spares connections a wait; the application runs.
                NODE_ANNOUNCE_FAILED.log(application=application.name,
                                         reason=str(e))
            if application.links:
                # A container's network namespace is new at every start, so
                # its link rules are installed after each one.
                yield self.routes.set_links(pid, self.address,
                                            application.links)
        return self._action(NODE_START_APPLICATION, start,
                            application=application.name)

    @inlineCallbacks
    def _container(self, operation, path_of, application):
        """
        Create (and start) the application's container with its volumes'
        mountpoints bound.

        :param operation: ``docker.add`` or ``docker.create``.
        :param path_of: ``volumes.mount`` or ``volumes.mountpoint``: the
            ``Deferred`` ``FilePath`` of a volume by name.
        :param Application application: What to run.
        :return: ``Deferred`` firing with ``operation``'s outcome.
        """
        mountpoint = None
        named = {}
        for volume in application.all_volumes():
            path = yield path_of(volume.name)
            if volume.name == application.name and (
                    application.volume is not None):
                mountpoint = path.path
            else:
                named[volume.name] = path.path
        outcome = yield operation(
            application, volume_mountpoint=mountpoint,
            extra_env=link_environment(application, self.address),
            volume_paths=named)
        return outcome

    def create_application(self, application):
        @inlineCallbacks
        def create():
            # Bound to where this node's copies are mounted, which they
            # need not be yet: only the start mounts them (once owned).
            outcome = yield self._container(
                self.docker.create, self.volumes.mountpoint, application)
            current_action().add_success_fields(outcome=outcome)
        return self._action(NODE_CREATE_APPLICATION, create,
                            application=application.name)

    def set_links(self, name, links):
        links = frozenset(links)

        @inlineCallbacks
        def set_links():
            pid = yield self.docker.container_pid(name)
            if pid is None:
                raise ContainerNotFound(name, self.address)
            yield self.routes.set_links(pid, self.address, links)
            if self._write_hosts is not None:
                self._write_hosts(pid, links)
        return self._action(NODE_SET_LINKS, set_links, application=name,
                            links=len(links))

    def stop_application(self, name, keep=False):
        @inlineCallbacks
        def stop():
            if keep:
                yield self.docker.stop(name)
            else:
                yield self.docker.remove(name)
            if self.automatic is not None:
                yield self.automatic.release(name)
        return self._action(NODE_STOP_APPLICATION, stop,
                            application=name, keep=keep)

    def create_volume(self, name, maximum_size):
        @inlineCallbacks
        def create():
            copies = yield self.volumes.volumes()
            here = [info for info in copies if info.name == name]
            if here and not here[0].owned:
                # A copy left by an interrupted move: take it over rather
                # than replace its data with an empty volume.
                yield self.volumes.acquire(name)
            else:
                yield self.volumes.create(name, maximum_size)
        return self._action(NODE_CREATE_VOLUME, create,
                            volume=name)

    def seed_volume(self, name, archive):
        @inlineCallbacks
        def seed():
            seeded = yield self.volumes.seed(name, archive)
            current_action().add_success_fields(seeded=seeded)
            return seeded
        return self._action(NODE_SEED_VOLUME, seed, volume=name,
                            archive_bytes=len(archive))

    def push_volume(self, name, target, progress=None):
        @inlineCallbacks
        def push():
            result = yield self.volumes.push(name, target, progress)
            current_action().add_success_fields(bytes=result.bytes_sent)
            return result.bytes_sent
        return self._action(NODE_PUSH_VOLUME, push, volume=name,
                            target=target)

    def handoff_volume(self, name, target, progress=None):
        @inlineCallbacks
        def handoff():
            result = yield self.volumes.handoff(name, target, progress)
            current_action().add_success_fields(bytes=result.bytes_sent)
            return result.bytes_sent
        return self._action(NODE_HANDOFF_VOLUME, handoff,
                            volume=name, target=target)

    def prepare_handoff(self, name, target):
        return self._action(
            NODE_PREPARE_HANDOFF,
            lambda: self.volumes.prepare_push(name, target),
            volume=name, target=target)

    def release_volume(self, name, target, progress=None):
        @inlineCallbacks
        def release():
            result = yield self.volumes.handoff(name, target, progress,
                                                acquire=False)
            current_action().add_success_fields(bytes=result.bytes_sent,
                                                snapshot=result.snapshot)
            return VolumeRelease(bytes_sent=result.bytes_sent,
                                 snapshot=result.snapshot,
                                 node_id=result.target_node_id)
        return self._action(NODE_RELEASE_VOLUME, release, volume=name,
                            target=target)

    def acquire_volume(self, name, snapshot, node_id):
        @inlineCallbacks
        def acquire():
            yield self.volumes.acquire(name, snapshot=snapshot,
                                       node_id=node_id)
        return self._action(NODE_ACQUIRE_VOLUME, acquire, volume=name,
                            snapshot=snapshot)

    def take_over_volume(self, name, epoch):
        @inlineCallbacks
        def take_over():
            copies = yield self.volumes.volumes()
            here = [info for info in copies if info.name == name]
            if here and here[0].owned and here[0].epoch == epoch:
                return
            yield self.volumes.acquire(name, epoch=epoch)
        return self._action(NODE_TAKE_OVER_VOLUME, take_over, volume=name,
                            epoch=epoch)

    def fence_volume(self, name, owner, epoch):
        @inlineCallbacks
        def fence():
            aside = yield self.volumes.fence(name, owner, epoch)
            current_action().add_success_fields(set_aside=aside)
            return aside
        return self._action(NODE_FENCE_VOLUME, fence, volume=name,
                            owner=owner, epoch=epoch)

    def set_routes(self, routes):
        @inlineCallbacks
        def set_routes():
            yield self.routes.set_routes(frozenset(routes))
        return self._action(NODE_SET_ROUTES, set_routes,
                            routes=len(routes))

    def set_replication(self, replications):
        def configure():
            if self.replicator is None:
                raise ValueError("this node runs no replicator")
            return self.replicator.configure(replications)
        return self._action(NODE_SET_REPLICATION,
                            lambda: maybeDeferred(configure),
                            volumes=len(replications))

    def expect_senders(self, senders):
        def configure():
            if self.senders is None:
                raise ValueError("this node keeps no expected senders")
            self.senders.configure(senders)
        return self._action(NODE_EXPECT_SENDERS,
                            lambda: maybeDeferred(configure),
                            volumes=len(senders))

    def set_automatic(self, applications):
        def set_automatic():
            if self.automatic is None:
                if applications:
                    raise ValueError(
                        "this node's agent has no etcd (set "
                        "FLOCKER_ETCD_ENDPOINTS) and cannot fail "
                        "applications over automatically")
                return succeed(None)
            return maybeDeferred(self.automatic.configure, applications,
                                 True)
        return self._action(NODE_SET_AUTOMATIC,
                            lambda: maybeDeferred(set_automatic),
                            automatic=len(applications))

    def install_node_key(self, node_key):
        def install():
            if self.node_keys is None:
                raise ValueError("this node keeps no node key")
            self.node_keys.install(node_key)
        return self._action(
            NODE_INSTALL_KEY, lambda: maybeDeferred(install),
            known_hosts_lines=len(node_key.known_hosts.splitlines()),
            node_keys=len(node_key.peers.splitlines()))

    def rotate_node_key(self, step):
        def rotate():
            if self.node_keys is None:
                raise ValueError("this node keeps no node key")
            if step not in _ROTATION_STEPS:
                raise ValueError("%r is not a rotation step (%s)" % (
                    step, " or ".join(sorted(_ROTATION_STEPS))))
            key = _ROTATION_STEPS[step](self.node_keys)
            current_action().add_success_fields(
                fingerprint=public_key_fingerprint(key))
        return self._action(NODE_ROTATE_KEY, lambda: maybeDeferred(rotate),
                            step=str(step))
