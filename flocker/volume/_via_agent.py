"""
``flocker-volume push`` and ``flocker-volume handoff``, done by this node's
agent (``flocker-node agent``).

The command connects to the agent's Unix socket, speaks its protocol
(:mod:`flocker.node._amp`) as ``flocker-node report`` does (one session,
one command: :mod:`flocker._agent_session`), and asks for
the transfer: :class:`~flocker.node._amp.PushVolume` for a push,
:class:`~flocker.node._amp.ReleaseVolume` for a hand-off's last increment.
The agent sends the stream to the other node's agent over its own Conch
connection, with this node's key (:mod:`flocker.node._peer_remote`), the
way a deploy's moves go: one SSH implementation between nodes.

A hand-off then makes the new owner acquire its copy.  Taking ownership is
the operator's decision, which the node key may not make (see
:mod:`flocker.volume._forced`): the acquire goes to the new owner's agent
over the operator's SSH login (Conch again, as ``flocker-deploy`` reaches
nodes; ``--ssh-identity``/``--ssh-known-hosts``, else ``~/.ssh``).

The one-line summary needs what was sent (the base of an incremental, a
resumed stream): the command's task continues at the agent, which sends
back the eliot messages of that task, and the volume service's
``flocker:volume:push`` action ends with those figures.
"""

from eliot import Logger
from twisted.internet.defer import inlineCallbacks

from .._agent_session import call_agent
from .._text import one_line
from ._api import PushResult
from ._errors import AgentError, HandoffConflict
from ._logging import AGENT_TRANSFER, PUSH_VOLUME

__all__ = ["AgentTransfers", "ssh_new_owner"]


class _PushFigures(object):
    """
    Receives the eliot messages the agent sends back for the command's task:
    passes each on to this process's log, and keeps the figures of the last
    push that succeeded.
    """

    def __init__(self):
        self.last = None

    def __call__(self, message):
        Logger().write(message)
        if (message.get("action_type") == PUSH_VOLUME.action_type
                and message.get("action_status") == "succeeded"):
            self.last = message


class AgentTransfers(object):
    """
    Pushes and hand-offs of this node's volumes, asked of its agent.
    """

    def __init__(self, reactor, socket_path, address, connect, new_owner):
        """
        :param reactor: ``IReactorTime`` (and whatever ``connect`` needs).
        :param str socket_path: The agent's socket.
        :param str address: This node's address as deployments name it
            (sent in the protocol's ``Hello``).
        :param connect: ``connect(socket_path, protocol)`` returning a
            ``Deferred`` firing once ``protocol`` is connected to the agent
            (:func:`flocker._agent_session.unix_connector`).
        :param new_owner: ``new_owner(target)`` returning a ``Deferred``
            firing with ``(agent, close)``: an ``INodeAgent`` acting on node
            ``target`` (its ``acquire_volume`` is used) and a callable
            ending its connection, returning a ``Deferred``.
        """
        self._reactor = reactor
        self._socket_path = socket_path
        self._address = address
        self._connect = connect
        self._new_owner = new_owner

    def _run(self, command, name, target, progress, call):
        """
        Run ``call(protocol, task, transfer)`` as one command of the agent
        (:func:`flocker._agent_session.call_agent`) inside an
        :data:`AGENT_TRANSFER` action, the agent's transfer reports going
        to ``progress``.

        :return: ``Deferred`` firing with ``(call's result, figures)``.
        """
        figures = _PushFigures()

        @inlineCallbacks
        def transfer(protocol, task):
            number = None
            if progress is not None:
                number = protocol.watch_transfer(progress.update)
            try:
                result = yield call(protocol, task, number)
            finally:
                if number is not None:
                    protocol.forget_transfer(number)
                    progress.finish()
            return result
        action = AGENT_TRANSFER(command=command, volume=name, target=target,
                                socket=self._socket_path)
        return call_agent(self._connect, self._socket_path, self._address,
                          action, transfer, log=figures).addCallback(
                              lambda result: (result, figures.last))

    def push(self, name, target, progress=None):
        """
        Copy volume ``name``'s data to node ``target``, this node staying
        its owner.

        :param progress: ``None``, or ``update(sent, total)``/``finish()``
            (a ``PushProgress``), told the agent's figures.
        :return: ``Deferred`` firing with a
            :class:`~flocker.volume._api.PushResult`, or failing with a
            :class:`~flocker.volume._errors.VolumeError`.
        """
        from ..node._amp import PushVolume

        def call(protocol, task, number):
            return protocol.callRemote(PushVolume, eliot_task=task,
                                       name=name, target=target,
                                       transfer=number)
        return self._run("push", name, target, progress, call).addCallback(
            lambda outcome: _result(name, target, outcome[0]["sent"],
                                    outcome[1]))

    def handoff(self, name, target, progress=None):
        """
        Send volume ``name``'s last increment to node ``target`` and make
        it the owner.  The new owner's agent is reached first (nothing is
        given up if the operator's login to it fails); then this node's
        agent releases the volume to it, and the new owner acquires its
        copy.

        :param progress: See :meth:`push`.
        :return: ``Deferred`` firing with a
            :class:`~flocker.volume._api.PushResult`, or failing with a
            :class:`~flocker.volume._errors.VolumeError`; when the release
            succeeded but the acquire did not, a ``HandoffConflict`` saying
            how to finish it.
        """
        from ..node._amp import ReleaseVolume

        def call(protocol, task, number):
            return protocol.callRemote(ReleaseVolume, eliot_task=task,
                                       name=name, target=target,
                                       transfer=number)

        @inlineCallbacks
        def handoff():
            try:
                agent, close = yield self._new_owner(target)
            except Exception as e:
                raise AgentError(
                    "cannot reach node %s's agent to make it the owner "
                    "(nothing was changed): %s" % (
                        target, one_line(e)))
            try:
                answer, figures = yield self._run("handoff", name, target,
                                                  progress, call)
                try:
                    yield agent.acquire_volume(name, answer["snapshot"],
                                               answer["node_id"])
                except Exception as e:
                    raise HandoffConflict(
                        "node %s has volume %s up to snapshot %s but did not "
                        "take it over: %s; no node owns it now: run "
                        "'flocker-volume acquire %s --snapshot %s' on node "
                        "%s" % (target, name, answer["snapshot"],
                                one_line(e), name,
                                answer["snapshot"], target))
            finally:
                yield close()
            return _result(name, target, answer["sent"], figures,
                           snapshot=answer["snapshot"],
                           node_id=answer["node_id"])
        return handoff()


def _result(name, target, sent, figures, snapshot=None, node_id=None):
    """
    :param int sent: The bytes the agent answered.
    :param figures: The agent's ``flocker:volume:push`` success message,
        or ``None`` if none came back.
    :return: The :class:`~flocker.volume._api.PushResult`.
    """
    figures = figures or {}
    return PushResult(
        name=name, target=target,
        target_node_id=node_id or figures.get("node_id"),
        snapshot=snapshot or figures.get("snapshot"),
        base=figures.get("base"), bytes_sent=sent,
        resumed=figures.get("resumed", 0))


def ssh_new_owner(reactor, identity=None, known_hosts=None):
    """
    :param identity: The operator's private key file, or ``None`` for
        ``~/.ssh``'s and ``$SSH_AUTH_SOCK``'s.
    :param known_hosts: The known hosts file, or ``None`` for
        ``~/.ssh/known_hosts``.
    :return: The ``new_owner`` of :class:`AgentTransfers`: the new owner's
        agent over an SSH connection of the operator's (Conch), as
        ``flocker-deploy`` reaches it.
    """
    def new_owner(target):
        from .._ssh import ssh_command_runner
        from ..cli._cluster import agent_connections
        from ..cli._remote import RemoteNodeAgent
        runner = ssh_command_runner(
            reactor, identity_files=[identity] if identity else [],
            known_hosts_path=known_hosts)
        connections = agent_connections(runner)

        def close():
            return connections.close().addBoth(lambda _: runner.close())

        def failed(failure):
            return close().addCallback(lambda _: failure)
        # Connected (and greeted) now, before anything is given up.
        return connections.protocol(target).addCallbacks(
            lambda _: (RemoteNodeAgent(connections, target), close), failed)
    return new_owner

