"""
The node agent's server side: :class:`AgentService` (what one agent process
owns: the node's Docker client, volume service, route manager, node key
store and deploy lock) and :class:`AgentProtocol` (one client connection,
speaking :mod:`flocker.node._amp`).

One agent process per node answers every deploy, so a step costs only its
own work: no process is started on the node for it, Docker and the pool are
opened once, and the deploy lock is held by a connection (it ends when the
connection does).
"""

import json

from eliot import Action, add_destinations, write_failure
from eliot.json import json_default
from eliot.twisted import DeferredContext
from twisted.internet.defer import maybeDeferred
from twisted.internet.protocol import Factory
from twisted.protocols import amp

from .. import __version__
from .._identifiers import ADDRESS_RULE, is_node_address
from .._serialize import SerializationError
from .._text import one_line
from ..volume._seed import MAX_SEED_SIZE
from ._amp import (
    BAD_REQUEST, PROGRESS_INTERVAL, AcquireVolume, BadRequest,
    CreateVolume, DeleteVolume, DeployLocked, Doctor, HandoffVolume, Hello, HelloFirst,
    InstallNodeKey, RotateNodeKey, Log, Logs, OperationFailed, PROTOCOL_VERSION, Progress,
    PrepareHandoff, PullImage, PushVolume, ReleaseLock, ReleaseVolume, Report, SeedVolume,
    SetAutomatic, SetLinks, SetRoutes, TakeOverVolume, FenceVolume,
    CreateApplication, StartApplication, StopApplication, VersionMismatch, WaitForApplication,
    MAXIMUM_DOCUMENT_BYTES, NotReady, not_ready_description,
)
from ._amp import ExpectSenders, SetReplication
from ._agent import ApplicationNotReady
from ._boot import apply_restart_policies
from ._local import LocalNodeAgent
from ._lock import LockHeld
from ._logging import AGENT_CONNECTION, AGENT_INTERNAL_ERROR, AGENT_REFUSED

__all__ = ["AgentService", "AgentProtocol", "AgentFactory", "local_agents",
           "TransferProgress", "MAXIMUM_BOX_BYTES"]

#: The most bytes a client may send before its box is complete: a box holds
#: at most a few documents, or a seed archive.
MAXIMUM_BOX_BYTES = 2 * MAXIMUM_DOCUMENT_BYTES + MAX_SEED_SIZE + 65536

#: How many of its latest tasks a client connection is sent the messages
#: of (a deploy has one; a program embedding Flocker may run many over one
#: connection).
WATCHED_TASKS = 8

class TransferProgress(object):
    """
    The progress of one volume transfer, sent to the client: the
    ``progress`` object the volume service is given (``update(sent,
    total)`` and ``finish()``).

    A transfer reports every chunk it pumps, hundreds a second; the client
    only draws a few a second, so at most one report goes out per
    ``interval`` (the latest figures), plus the final figures at
    ``finish``.  Figures that arrive in between are not lost, only
    superseded.
    """

    def __init__(self, clock, send, interval=PROGRESS_INTERVAL):
        """
        :param clock: ``IReactorTime`` provider.
        :param send: Callable given ``(sent, total)`` to report.
        :param float interval: Least seconds between two reports.
        """
        self._clock = clock
        self._send = send
        self._interval = interval
        self._latest = None
        self._sent = None
        self._sent_at = None

    def update(self, sent, total):
        """
        :param int sent: Bytes sent so far.
        :param total: Bytes to send in all, or ``None`` if unknown.
        """
        self._latest = (sent, total)
        now = self._clock.seconds()
        if self._sent_at is None or now - self._sent_at >= self._interval:
            self._send_latest(now)

    def finish(self):
        """
        The transfer ended: send the final figures unless they went out
        already.
        """
        if self._latest is not None and self._latest != self._sent:
            self._send_latest(self._clock.seconds())

    def _send_latest(self, now):
        self._sent, self._sent_at = self._latest, now
        self._send(*self._latest)


class _LogRouter(object):
    """
    An eliot destination handing each message of a watched task to the
    connections whose commands continue that task.
    """

    def __init__(self):
        self._watchers = {}

    def __call__(self, message):
        for protocol in list(self._watchers.get(message.get("task_uuid"),
                                                ())):
            protocol.forward_log(message)

    def watch(self, task_uuid, protocol):
        self._watchers.setdefault(task_uuid, []).append(protocol)

    def unwatch(self, task_uuid, protocol):
        watchers = self._watchers.get(task_uuid, [])
        if protocol in watchers:
            watchers.remove(protocol)
        if not watchers:
            self._watchers.pop(task_uuid, None)


_ROUTERS = []


def _process_log_router():
    """
    :return: This process's :class:`_LogRouter`, installed as an eliot
        destination the first time.
    """
    if not _ROUTERS:
        router = _LogRouter()
        add_destinations(router)
        _ROUTERS.append(router)
    return _ROUTERS[0]


class AgentService(object):
    """
    What one agent owns, shared by all its connections.

    :ivar clock: ``IReactorTime`` provider (pacing progress reports).
    :ivar lock: The node's ``DeployLock``.
    :ivar process: This process's identity, with which every lease it
        grants ends, or ``None``.
    :ivar expected_errors: Exception types reported to clients as one line.
    :ivar log_router: The eliot destination sending messages to clients.
    :ivar replicator: The node's
        :class:`~flocker.node._replication.Replicator`, or ``None``.
    :ivar senders: The node's
        :class:`~flocker.node._senders.ExpectedSenders`, or ``None``.
    :ivar groups: The node's
        :class:`~flocker.node._senders.FirstCopyGroups`, or ``None``.
    """

    def __init__(self, clock, make_agent, lock, process=None,
                 expected_errors=(), log_router=None, replicator=None,
                 volumes=None, senders=None, groups=None):
        """
        :param clock: ``IReactorTime`` provider.
        :param make_agent: Callable given the node's address as a client
            names it, returning the ``INodeAgent`` acting for it (see
            :func:`local_agents`); called once per address.
        :param lock: The node's ``DeployLock``.
        :param process: This process's identity (see
            :func:`flocker.node._lock.process_identity`), or ``None``.
        :param expected_errors: Exception types reported to the client as
            one line (:class:`OperationFailed`); anything else is logged
            with its traceback as an internal error.
        :param log_router: The :class:`_LogRouter` eliot destination, or
            ``None`` for this process's.
        :param replicator: The node's replicator (started, and its metrics
            served, once the agent listens), or ``None``.
        :param volumes: Callable returning the node's current
            ``IVolumeService`` provider (what the peer socket serves:
            :mod:`flocker.node._peer`), or ``None``.
        :param senders: The node's record of expected senders (what the
            peer socket checks first copies against), or ``None``.
        :param groups: Where the peer socket learns whether a first copy
            of an automatic group's volume comes from its lease's holder,
            or ``None`` (no group applies).
        """
        self.senders = senders
        self.groups = groups
        self.clock = clock
        self.lock = lock
        self.replicator = replicator
        self.process = process
        self._make_agent = make_agent
        self._agents = {}
        self.expected_errors = (SerializationError,) + tuple(expected_errors)
        self.log_router = (_process_log_router() if log_router is None
                           else log_router)
        self.volumes = volumes

    def agent(self, address):
        """
        :param str address: The node's address as a client names it.
        :return: The ``INodeAgent`` acting for that address.
        """
        agent = self._agents.get(address)
        if agent is None:
            agent = self._agents[address] = self._make_agent(address)
        return agent

    def boot(self, address, docker, volumes):
        """
        At the agent's start: start the replicator with the configuration
        it remembers, and apply the restart policies of the node's stopped
        applications with volumes (:mod:`flocker.node._boot`: those held
        start once their standbys confirm this node's ownership); failures
        are logged.

        :param str address: The node's address.
        :param docker: The node's ``IDockerClient``.
        :param volumes: The node's ``IVolumeService``.
        :return: ``Deferred`` firing with the decisions, or ``None`` after
            a failure.
        """
        if self.replicator is not None:
            # Its configuration first: held applications wait for their
            # standbys' confirmation (see _boot).
            self.replicator.start()
        return apply_restart_policies(
            docker, volumes, self.agent(address),
            replicator=self.replicator).addErrback(write_failure)

    def forget_agents(self):
        """
        Make the agents again at their next use (the node's parts changed).
        """
        self._agents = {}


def local_agents(docker, volumes, routes, node_keys=None, checks=None,
                 clock=None, automatic=None, replicator=None,
                 write_hosts=None, senders=None):
    """
    :param docker: ``IDockerClient`` provider.
    :param volumes: Callable returning the current ``IVolumeService``
        provider.
    :param routes: ``IRouteManager`` provider.
    :param node_keys: ``NodeKeyStore`` or ``None``.
    :param checks: The node's doctor checks (see
        :class:`LocalNodeAgent`), or ``None``.
    :param clock: ``IReactorTime`` the agents wait with (see
        :class:`LocalNodeAgent`), or ``None``.
    :param automatic: The node's
        :class:`~flocker.node._automatic.AutomaticFailover`, or ``None``
        without etcd.
    :param replicator: The node's
        :class:`~flocker.node._replication.Replicator`, or ``None``.
    :param write_hosts: What rewrites a container's hosts file (see
        :class:`LocalNodeAgent`), or ``None``.
    :param senders: The node's
        :class:`~flocker.node._senders.ExpectedSenders`, or ``None``.
    :return: A ``make_agent`` for :class:`AgentService` building
        :class:`LocalNodeAgent` values over the node's shared parts.
    """
    def make_agent(address):
        return LocalNodeAgent(address, docker, volumes(), routes,
                              node_keys=node_keys, checks=checks,
                              clock=clock, automatic=automatic,
                              replicator=replicator,
                              write_hosts=write_hosts, senders=senders)
    return make_agent


def _peer_of(transport):
    peer = getattr(transport, "getPeer", lambda: None)()
    return str(peer) if peer is not None else "unknown"


class AgentProtocol(amp.AMP):
    """
    One client connection: answers the commands of
    :mod:`flocker.node._amp` with the service's agent.
    """

    def __init__(self, service):
        """
        :param AgentService service: The agent.
        """
        amp.AMP.__init__(self)
        self._service = service
        self._address = None
        self._leases = set()
        self._watching = []
        self._box_bytes = 0

    # Refusals ---------------------------------------------------------------

    def _refused(self, what):
        AGENT_REFUSED.log(peer=_peer_of(self.transport), what=one_line(what))

    def connectionMade(self):
        amp.AMP.connectionMade(self)
        AGENT_CONNECTION.log(peer=_peer_of(self.transport))

    def dataReceived(self, data):
        self._box_bytes += len(data)
        if self._box_bytes > MAXIMUM_BOX_BYTES:
            self._refused("a message longer than %d bytes; connection "
                          "closed" % (MAXIMUM_BOX_BYTES,))
            self.transport.abortConnection()
            return
        try:
            amp.AMP.dataReceived(self, data)
        except Exception as e:
            # Not AMP at all: nothing more on this connection can be
            # trusted to be framed right.
            self._refused("malformed message (%s: %s); connection closed"
                          % (type(e).__name__, e))
            self.transport.abortConnection()

    def ampBoxReceived(self, box):
        self._box_bytes = 0
        amp.AMP.ampBoxReceived(self, box)

    def lengthLimitExceeded(self, length):
        self._refused("a key or value of %d bytes; connection closed" % (
            length,))
        self.transport.abortConnection()

    def locateResponder(self, name):
        responder = amp.AMP.locateResponder(self, name)
        if responder is None:
            self._refused("unknown command %r" % (name,))
            return None

        def checked(box):
            try:
                return responder(box)
            except Exception as e:
                # Raised while decoding the arguments, before the command
                # ran: answered as a refusal, the connection goes on.
                self._refused("command %s: %s" % (
                    name.decode("ascii", "replace"), e))
                raise amp.RemoteAmpError(
                    BAD_REQUEST, one_line("%s: %s" % (
                        name.decode("ascii", "replace"), e)))
        return checked

    # Logs -------------------------------------------------------------------

    def forward_log(self, message):
        """
        Send an eliot message of a task one of this connection's commands
        continues to the client.
        """
        if self.transport is None or self.boxSender is None:
            return
        try:
            safe = json.loads(json.dumps(message, default=json_default))
            self.callRemote(Log, messages=[safe])
        except Exception:
            # A message that cannot travel is in the agent's own log; the
            # command goes on.
            pass

    # Running operations ----------------------------------------------------

    def _run(self, eliot_task, lock, call):
        """
        Run ``call(agent)`` for one command: check the handshake, take the
        lease, continue the client's task, and turn failures into the
        protocol's errors.
        """
        if self._address is None:
            self._refused("a command before Hello")
            raise HelloFirst("send Hello first")
        if lock is not None:
            try:
                self._service.lock.hold(lock, process=self._service.process)
            except LockHeld as e:
                raise DeployLocked(str(e))
            except OSError as e:
                raise OperationFailed("cannot use the deploy lock: %s" % (
                    e,))
            self._leases.add(lock)
        # Watched before the task is continued: continuing logs the first
        # message the client must get.
        task_uuid = eliot_task.partition("@")[0]
        self._watch(task_uuid)
        try:
            action = Action.continue_task(task_id=eliot_task)
        except Exception:
            self._unwatch(task_uuid)
            self._refused("unreadable eliot task id %r" % (eliot_task[:100],))
            raise BadRequest("unreadable eliot task id")
        agent = self._service.agent(self._address)
        with action.context():
            d = DeferredContext(maybeDeferred(call, agent))
            d.addErrback(self._failed)
            return d.addActionFinish()

    def _watch(self, task_uuid):
        """
        Send the client the messages of ``task_uuid`` from now on, for as
        long as the connection lasts, not only while one of its commands
        runs: a step that answered before all of its work ended (a
        hand-off's old owner, while the new owner takes over) logs the rest
        in the same task, and the deploy's one tree has it.  The
        connection's :data:`WATCHED_TASKS` latest tasks are watched.
        """
        if task_uuid in self._watching:
            self._watching.remove(task_uuid)
        else:
            self._service.log_router.watch(task_uuid, self)
        self._watching.append(task_uuid)
        while len(self._watching) > WATCHED_TASKS:
            self._service.log_router.unwatch(self._watching.pop(0), self)

    def _unwatch(self, task_uuid):
        self._service.log_router.unwatch(task_uuid, self)
        if task_uuid in self._watching:
            self._watching.remove(task_uuid)

    def _failed(self, failure):
        if failure.check(OperationFailed, DeployLocked, BadRequest, NotReady):
            return failure
        if failure.check(*self._service.expected_errors):
            raise OperationFailed(one_line(failure.value))
        AGENT_INTERNAL_ERROR.log(what=one_line(failure.getErrorMessage()))
        write_failure(failure)
        raise OperationFailed(
            "internal error in the agent: %s (its log has the traceback)"
            % (one_line(failure.getErrorMessage()),))

    def _progress(self, transfer):
        if transfer is None:
            return {}

        def send(sent, total):
            if self.transport is not None:
                self.callRemote(Progress, transfer=transfer, sent=sent,
                                total=total)
        return {"progress": TransferProgress(self._service.clock, send)}

    @Hello.responder
    def hello(self, version, address):
        if version != PROTOCOL_VERSION:
            self._refused("protocol version %d" % (version,))
            raise VersionMismatch(
                "flocker-node %s speaks protocol %d, not %d: install the same "
                "Flocker version on the client and the nodes" % (
                    __version__, PROTOCOL_VERSION, version))
        if not is_node_address(address):
            raise BadRequest("not an address (%s): %r" % (
                ADDRESS_RULE, address[:100]))
        self._address = address
        return {"version": PROTOCOL_VERSION, "flocker": __version__}

    @Report.responder
    def report(self, eliot_task, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.report()
                         ).addCallback(lambda state: {"state": state})

    @StartApplication.responder
    def start_application(self, eliot_task, application, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.start_application(application)).addCallback(
                             lambda _: {})

    @CreateApplication.responder
    def create_application(self, eliot_task, application, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.create_application(application)).addCallback(
                             lambda _: {})

    @StopApplication.responder
    def stop_application(self, eliot_task, name, keep=None, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.stop_application(name, bool(keep))
                         ).addCallback(
                             lambda _: {})

    @CreateVolume.responder
    def create_volume(self, eliot_task, name, lock=None, maximum_size=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.create_volume(name, maximum_size)).addCallback(
                             lambda _: {})

    @PushVolume.responder
    def push_volume(self, eliot_task, name, target, lock=None,
                    transfer=None):
        return self._run(eliot_task, lock, lambda agent: agent.push_volume(
            name, target, **self._progress(transfer))).addCallback(
                lambda sent: {"sent": sent})

    @HandoffVolume.responder
    def handoff_volume(self, eliot_task, name, target, lock=None,
                       transfer=None):
        return self._run(eliot_task, lock, lambda agent: agent.handoff_volume(
            name, target, **self._progress(transfer))).addCallback(
                lambda sent: {"sent": sent})

    @PrepareHandoff.responder
    def prepare_handoff(self, eliot_task, name, target, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.prepare_handoff(name, target)).addCallback(
                             lambda _: {})

    @ReleaseVolume.responder
    def release_volume(self, eliot_task, name, target, lock=None,
                       transfer=None):
        return self._run(eliot_task, lock, lambda agent: agent.release_volume(
            name, target, **self._progress(transfer))).addCallback(
                lambda release: {"sent": release.bytes_sent,
                                 "snapshot": release.snapshot,
                                 "node_id": release.node_id})

    @AcquireVolume.responder
    def acquire_volume(self, eliot_task, name, snapshot, node_id, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.acquire_volume(
            name, snapshot, node_id)).addCallback(lambda _: {})

    @TakeOverVolume.responder
    def take_over_volume(self, eliot_task, name, epoch, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.take_over_volume(name, epoch)).addCallback(
                             lambda _: {})

    @FenceVolume.responder
    def fence_volume(self, eliot_task, name, owner, epoch, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.fence_volume(
            name, owner, epoch)).addCallback(
                lambda aside: {"set_aside": aside})

    @SetRoutes.responder
    def set_routes(self, eliot_task, routes, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.set_routes(
            routes)).addCallback(lambda _: {})

    @SetLinks.responder
    def set_links(self, eliot_task, name, links, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.set_links(
            name, links)).addCallback(lambda _: {})

    @SetReplication.responder
    def set_replication(self, eliot_task, replications, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.set_replication(replications)).addCallback(
                             lambda _: {})

    @ExpectSenders.responder
    def expect_senders(self, eliot_task, senders, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.expect_senders(senders)).addCallback(
                             lambda _: {})

    @InstallNodeKey.responder
    def install_node_key(self, eliot_task, node_key, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.install_node_key(node_key)).addCallback(
                             lambda _: {})

    @RotateNodeKey.responder
    def rotate_node_key(self, eliot_task, stage, lock=None):
        return self._run(eliot_task, lock, lambda agent:
                         agent.rotate_node_key(stage)).addCallback(
                             lambda _: {})

    @SetAutomatic.responder
    def set_automatic(self, eliot_task, applications, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.set_automatic(
            applications)).addCallback(lambda _: {})

    @PullImage.responder
    def pull_image(self, eliot_task, image, dry_run, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.pull_image(
            image, dry_run)).addCallback(lambda _: {})

    @Logs.responder
    def logs(self, eliot_task, name, lock=None, since=None, tail=None):
        return self._run(eliot_task, lock, lambda agent: agent.logs(
            name, since, tail)).addCallback(lambda lines: {"lines": lines})

    @WaitForApplication.responder
    def wait_for_application(self, eliot_task, name, condition, timeout,
                             lock=None):
        def not_ready(failure):
            failure.trap(ApplicationNotReady)
            raise NotReady(not_ready_description(failure.value))
        return self._run(eliot_task, lock, lambda agent:
                         agent.wait_for_application(
                             name, condition, timeout).addErrback(not_ready)
                         ).addCallback(lambda _: {})

    @SeedVolume.responder
    def seed_volume(self, eliot_task, name, archive, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.seed_volume(
            name, archive)).addCallback(lambda seeded: {"seeded": seeded})

    @DeleteVolume.responder
    def delete_volume(self, eliot_task, name, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.delete_volume(
            name)).addCallback(lambda _: {})

    @Doctor.responder
    def doctor(self, eliot_task, lock=None):
        return self._run(eliot_task, lock, lambda agent: agent.doctor()
                         ).addCallback(lambda report: {"report": report})

    @ReleaseLock.responder
    def release_lock(self, eliot_task, lock=None):
        if self._address is None:
            raise HelloFirst("send Hello first")
        if lock is not None:
            self._service.lock.release(lock)
            self._leases.discard(lock)
        return {}

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        # A deploy's lease ends with its connection: a client that died
        # holds no node.
        for lease in self._leases:
            try:
                self._service.lock.release(lease)
            except OSError:
                pass
        self._leases = set()
        for task_uuid in self._watching:
            self._service.log_router.unwatch(task_uuid, self)
        self._watching = []


class AgentFactory(Factory):
    """
    Makes an :class:`AgentProtocol` per connection.
    """

    def __init__(self, service):
        """
        :param AgentService service: The agent all connections share.
        """
        self.service = service

    def buildProtocol(self, address):
        return AgentProtocol(self.service)
