"""
The deploy client's node agent: :class:`RemoteNodeAgent` implements
``INodeAgent`` by sending the commands of :mod:`flocker.node._amp` to the
node's agent, over one connection per node (:class:`AgentConnections`).
"""

from collections import OrderedDict

import attr
from eliot.twisted import DeferredContext
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import ConnectionClosed
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from .._serialize import SerializationError
from .._text import one_line
from ..node._agent import INodeAgent, VolumeRelease
from ..node._amp import (
    PROTOCOL_VERSION, AcquireVolume, AgentClientProtocol, BadRequest,
    CreateVolume, DeleteVolume, DeployLocked, Doctor, HandoffVolume, Hello,
    HelloFirst, InstallNodeKey, RotateNodeKey, SetAutomatic, Logs, OperationFailed, PrepareHandoff, PullImage, PushVolume,
    ReleaseLock, ReleaseVolume, Report, SeedVolume, SetLinks, SetRoutes,
    TakeOverVolume, FenceVolume,
    CreateApplication, StartApplication, StopApplication, VersionMismatch, WaitForApplication,
    NotReady, not_ready_from_description,
)
from ..node._amp import ExpectSenders, SetReplication
from ._channel import AgentUnavailable
from ._logging import AGENT_CONNECT, REMOTE_CALL
from .._ssh import AuthenticationFailed, HostKeyError, NodeUnreachable

__all__ = ["RemoteNodeAgent", "NodeStepFailed", "AgentConnections",
           "AgentClientProtocol"]


class NodeStepFailed(Exception):
    """
    One step of a deploy failed on one node.  ``str()`` is one line naming
    the node, the step and the remote error.

    :ivar str address: The node.
    :ivar str step: What was being done (``"start-application web"``).
    :ivar str detail: What went wrong.
    :ivar cause: The underlying exception, or ``None``.
    """

    def __init__(self, address, step, detail, cause=None):
        Exception.__init__(self, address, step, detail)
        self.address = address
        self.step = step
        self.detail = detail
        self.cause = cause

    @property
    def locked(self):
        """
        ``True`` if the node refused because another deploy holds its lock.
        """
        return isinstance(self.cause, DeployLocked)

    @property
    def unreachable(self):
        """
        ``True`` if the node's agent could not be reached at all (so
        nothing of the step ran), as opposed to the step running and
        failing.
        """
        return isinstance(self.cause, (NodeUnreachable, HostKeyError,
                                       AgentUnavailable))

    def __str__(self):
        return "%s: %s: %s" % (self.address, self.step, self.detail)


def _describe(exception):
    """
    :return: One line describing why a call failed, without the address.
    """
    if isinstance(exception, AgentUnavailable):
        return str(exception)
    if isinstance(exception, AuthenticationFailed):
        return "authentication failed: " + exception.reason
    if isinstance(exception, NodeUnreachable):
        return "unreachable: " + exception.reason
    if isinstance(exception, HostKeyError):
        return "host key verification failed: %s (key presented: %s)" % (
            exception.reason, exception.fingerprint)
    if isinstance(exception, ConnectionClosed):
        return ("the connection to the node's Flocker agent was lost while "
                "the step ran (see systemctl status flocker-node there); "
                "running the deploy again continues from where it stopped")
    if isinstance(exception, amp.UnhandledCommand):
        return "the node's Flocker agent does not know this step (install " \
            "the same Flocker version on the client and the nodes)"
    return one_line(exception)


#: How many of the latest messages' identities :func:`_once` remembers.
SEEN_MESSAGES = 4096


def _once(log):
    """
    :param log: Callable given eliot messages.
    :return: A callable giving ``log`` each message once: a message of a
        node can come back on two connections, directly and through the
        node that pushed to it (which passes its receiving side's log on).
        A message is known by its task and its place in it; the latest
        :data:`SEEN_MESSAGES` are remembered.
    """
    seen = OrderedDict()

    def logged(message):
        level = message.get("task_level")
        if isinstance(level, list):
            key = (message.get("task_uuid"), tuple(level))
            if key in seen:
                return
            seen[key] = None
            if len(seen) > SEEN_MESSAGES:
                seen.popitem(last=False)
        log(message)
    return logged


class AgentConnections(object):
    """
    One agent connection per node, made on first use (and again after it
    was lost), greeted with :class:`~flocker.node._amp.Hello`, shared by
    all of that node's calls.

    :ivar ways: ``dict`` of address to how its agent was reached (see
        :func:`flocker.cli._channel.ssh_agent_connector`).
    """

    def __init__(self, connect, log=None):
        """
        :param connect: ``(address, protocol) -> Deferred`` connecting
            ``protocol`` to the node's agent, firing with the way used.
        :param log: Callable given each eliot message the agents send.
        """
        self._connect = connect
        self._log = None if log is None else _once(log)
        self._connected = {}
        self._waiting = {}
        self.ways = {}

    def protocol(self, address):
        """
        :param str address: The node.
        :return: ``Deferred`` firing with the node's greeted
            :class:`AgentClientProtocol`.
        """
        connected = self._connected.get(address)
        if connected is not None:
            return succeed(connected)
        waiter = Deferred()
        waiters = self._waiting.get(address)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        waiters = self._waiting[address] = [waiter]
        protocol = AgentClientProtocol(self._log)
        action = AGENT_CONNECT(address=address)
        with action.context():
            d = DeferredContext(self._connect(address, protocol))

            def greet(way):
                self.ways[address] = way
                action.add_success_fields(way=way)
                return protocol.callRemote(Hello, version=PROTOCOL_VERSION,
                                           address=address)
            d.addCallback(greet)
            d.addCallback(lambda answer: protocol)
            d = d.addActionFinish()

        def done(result):
            del self._waiting[address]
            failed = isinstance(result, Failure)
            if not failed:
                self._connected[address] = result
                result.lost.addCallback(lambda _: self._forget(address,
                                                               result))
            elif protocol.transport is not None:
                protocol.transport.loseConnection()
            for each in waiters:
                if failed:
                    each.errback(result)
                else:
                    each.callback(result)
        d.addBoth(done)
        return waiter

    def _forget(self, address, protocol):
        if self._connected.get(address) is protocol:
            del self._connected[address]

    def close(self):
        """
        Close every connection.

        :return: ``Deferred`` firing once they are closed.
        """
        closing = []
        for protocol in list(self._connected.values()):
            closing.append(protocol.lost)
            protocol.transport.loseConnection()
        self._connected = {}
        return DeferredList(closing, consumeErrors=True).addCallback(
            lambda _: None)


@implementer(INodeAgent)
@attr.s(frozen=True)
class RemoteNodeAgent(object):
    """
    ``INodeAgent`` for a node reached through its agent.  Every failure is
    a :class:`NodeStepFailed`.  A volume transfer's ``progress`` is told
    the figures the agent sends and finished when the call ends.

    :ivar connections: The :class:`AgentConnections`.
    :ivar str address: The node's address.
    :ivar lock: The id of the deploy whose lease every command takes or
        renews on the node, or ``None`` to leave the lock alone.
    """
    connections = attr.ib(eq=False)
    address = attr.ib()
    lock = attr.ib(default=None)

    def _call(self, step, command, response=None, progress=None,
              **arguments):
        # The operation's name as the plan and the log show it
        # ("push-volume"), the step's first word.
        action = REMOTE_CALL(address=self.address,
                             subcommand=step.split()[0])
        with action.context():
            task = action.serialize_task_id().decode("ascii")
            d = DeferredContext(self.connections.protocol(self.address))

            def call(protocol):
                transfer = None
                if progress is not None:
                    transfer = protocol.watch_transfer(progress.update)
                    arguments["transfer"] = transfer
                sent = protocol.callRemote(command, eliot_task=task,
                                           lock=self.lock, **arguments)

                def finished(result):
                    if transfer is not None:
                        protocol.forget_transfer(transfer)
                    return result
                return sent.addBoth(finished)
            d.addCallback(call)
            if progress is not None:
                def finish(result):
                    progress.finish()
                    return result
                d.addBoth(finish)
            d.addCallback(response or (lambda _: None))

            def failed(reason):
                if reason.check(NodeStepFailed):
                    return reason
                if reason.check(NotReady):
                    # The node's own error, as the interface promises.
                    try:
                        raise not_ready_from_description(str(reason.value))
                    except SerializationError:
                        pass
                if reason.check(
                        OperationFailed, DeployLocked, HelloFirst,
                        VersionMismatch, BadRequest, AgentUnavailable,
                        NodeUnreachable, HostKeyError, ConnectionClosed,
                        amp.UnhandledCommand, amp.UnknownRemoteError,
                        SerializationError, NotReady):
                    raise NodeStepFailed(self.address, step,
                                         _describe(reason.value),
                                         reason.value)
                return reason
            d.addErrback(failed)
            return d.addActionFinish()

    def report(self):
        return self._call("report", Report, lambda answer: attr.evolve(
            answer["state"], address=self.address))

    def release_lock(self):
        """
        End this deploy's lease on the node (see :attr:`lock`).

        :return: ``Deferred`` firing with ``None``.
        :raises NodeStepFailed: If the node could not be told.
        """
        return self._call("release-lock", ReleaseLock)

    def start_application(self, application):
        return self._call("start-application %s" % (application.name,),
                          StartApplication, application=application)

    def create_application(self, application):
        return self._call("create-application %s" % (application.name,),
                          CreateApplication, application=application)

    def stop_application(self, name, keep=False):
        # ``keep`` is sent only when asked, as the command's default.
        return self._call("stop-application %s" % (name,), StopApplication,
                          name=name, **({"keep": True} if keep else {}))

    def create_volume(self, name, maximum_size=None):
        return self._call("create-volume %s" % (name,), CreateVolume,
                          name=name, maximum_size=maximum_size)

    def seed_volume(self, name, archive):
        return self._call("seed-volume %s" % (name,), SeedVolume,
                          lambda answer: answer["seeded"], name=name,
                          archive=archive)

    def push_volume(self, name, target, progress=None):
        return self._call("push-volume %s to %s" % (name, target),
                          PushVolume, lambda answer: answer["sent"],
                          progress, name=name, target=target)

    def handoff_volume(self, name, target, progress=None):
        return self._call("handoff-volume %s to %s" % (name, target),
                          HandoffVolume, lambda answer: answer["sent"],
                          progress, name=name, target=target)

    def prepare_handoff(self, name, target):
        return self._call("prepare-handoff %s to %s" % (name, target),
                          PrepareHandoff, name=name, target=target)

    def release_volume(self, name, target, progress=None):
        return self._call(
            "release-volume %s to %s" % (name, target), ReleaseVolume,
            lambda answer: VolumeRelease(bytes_sent=answer["sent"],
                                         snapshot=answer["snapshot"],
                                         node_id=answer["node_id"]),
            progress, name=name, target=target)

    def acquire_volume(self, name, snapshot, node_id):
        return self._call("acquire-volume %s" % (name,), AcquireVolume,
                          name=name, snapshot=snapshot, node_id=node_id)

    def take_over_volume(self, name, epoch):
        return self._call("take-over-volume %s" % (name,), TakeOverVolume,
                          name=name, epoch=epoch)

    def fence_volume(self, name, owner, epoch):
        return self._call("fence-volume %s" % (name,), FenceVolume,
                          lambda answer: answer.get("set_aside"),
                          name=name, owner=owner, epoch=epoch)

    def set_routes(self, routes):
        return self._call("set-routes", SetRoutes, routes=frozenset(routes))

    def set_links(self, name, links):
        return self._call("set-links %s" % (name,), SetLinks, name=name,
                          links=frozenset(links))

    def set_replication(self, replications):
        return self._call("set-replication", SetReplication,
                          replications=replications)

    def expect_senders(self, senders):
        return self._call("expect-senders", ExpectSenders, senders=senders)

    def delete_volume(self, name):
        return self._call("delete-volume %s" % (name,), DeleteVolume,
                          name=name)

    def wait_for_application(self, name, condition, timeout):
        return self._call("wait-application %s" % (name,),
                          WaitForApplication, name=name,
                          condition=condition, timeout=float(timeout))

    def pull_image(self, image, dry_run=False):
        return self._call("pull-image %s" % (image,), PullImage,
                          image=image, dry_run=dry_run)

    def doctor(self):
        return self._call("doctor", Doctor, lambda answer: answer["report"])

    def logs(self, name, since=None, tail=None):
        return self._call("logs %s" % (name,), Logs,
                          lambda answer: answer["lines"], name=name,
                          since=since, tail=tail)

    def set_automatic(self, applications):
        return self._call("set-automatic", SetAutomatic,
                          applications=applications)

    def install_node_key(self, node_key):
        return self._call("install-node-key", InstallNodeKey,
                          node_key=node_key)

    def rotate_node_key(self, step):
        return self._call("rotate-node-key %s" % (step,), RotateNodeKey,
                          stage=step)
