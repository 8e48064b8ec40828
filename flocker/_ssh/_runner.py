"""
:class:`SSHCommandRunner`: commands on nodes over SSH, one pooled
connection per node, bounded in concurrency; and
:func:`ssh_command_runner`, which builds one from the operator's SSH set-up.
"""

import os

from eliot.twisted import DeferredContext
from pyrsistent import pvector
from twisted.internet.defer import (
    Deferred, DeferredList, DeferredSemaphore, fail, succeed,
)
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from zope.interface import implementer

from ._logging import SSH_DISCONNECT, SSH_OPEN_CHANNEL, SSH_RUN, SSH_START
from ._auth import agent_endpoint, load_identities
from ._command import _check_stdin, quote_argv
from ._errors import NodeUnreachable, RemoteCommandFailed
from ._interface import ICommandRunner
from ._knownhosts import KnownHosts
from ._session import _ChannelNotOpened
from ._transport import _ConchConnector

__all__ = ["SSHCommandRunner", "ssh_command_runner",
           "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_CONCURRENCY",
           "DEFAULT_SESSIONS_PER_NODE"]


#: Seconds allowed for TCP connect, key exchange and authentication together.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Commands in flight at once across all nodes.
DEFAULT_CONCURRENCY = 20

#: Commands in flight at once on one node's connection.  OpenSSH's sshd
#: refuses more than ``MaxSessions`` (10 by default) channels per connection.
DEFAULT_SESSIONS_PER_NODE = 8


@implementer(ICommandRunner)
class SSHCommandRunner(object):
    """
    :class:`ICommandRunner` over SSH with Twisted Conch: one connection per
    node, reused for every command; see :mod:`flocker._ssh`.
    """

    def __init__(self, reactor, known_hosts, identities=(), username="root",
                 port=22, agent_endpoint=None,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                 concurrency=DEFAULT_CONCURRENCY,
                 sessions_per_node=DEFAULT_SESSIONS_PER_NODE,
                 endpoint_factory=None, connector=None):
        """
        :param reactor: Provider of ``IReactorTCP`` and ``IReactorTime``.
        :param KnownHosts known_hosts: The host keys to trust.
        :param identities: Private :class:`Key` values to authenticate with
            (see :func:`load_identities`).
        :param str username: Remote user.
        :param int port: SSH port of every node.
        :param agent_endpoint: Endpoint of an SSH agent, or ``None`` (see
            :func:`agent_endpoint`).
        :param float connect_timeout: Seconds allowed to connect, exchange
            keys and authenticate.
        :param int concurrency: Commands in flight at once across all nodes.
        :param int sessions_per_node: Commands in flight at once per node.
        :param endpoint_factory: ``(address, port) -> IStreamClientEndpoint``
            used to reach a node; ``HostnameEndpoint`` by default.
        :param connector: For tests: an object whose ``connect(address)``
            returns a ``Deferred`` firing with a node connection (replaces
            everything SSH).
        """
        if concurrency < 1 or sessions_per_node < 1:
            raise ValueError("concurrency limits must be at least 1")
        if endpoint_factory is None:
            def endpoint_factory(address, port):
                return HostnameEndpoint(reactor, address, port,
                                        timeout=connect_timeout)
        if connector is None:
            connector = _ConchConnector(
                reactor=reactor, username=username, port=port,
                known_hosts=known_hosts, identities=pvector(identities),
                agent_endpoint=agent_endpoint, timeout=connect_timeout,
                endpoint_factory=endpoint_factory)
        self._connector = connector
        self._limit = DeferredSemaphore(concurrency)
        self._sessions_per_node = sessions_per_node
        self._node_limits = {}
        self._connections = {}
        self._connecting = {}
        self._attempts = {}
        self._host_keys = {}

    def run(self, address, argv, stdin=b"", progress=None):
        try:
            command = quote_argv(argv)
            _check_stdin(stdin)
        except (TypeError, ValueError):
            return fail()
        argv = list(argv)
        action = SSH_RUN(address=address, argv=argv, stdin_bytes=len(stdin))
        with action.context():
            node_limit = self._node_limits.get(address)
            if node_limit is None:
                node_limit = self._node_limits[address] = DeferredSemaphore(
                    self._sessions_per_node)
            # Per-node slot first, then a global one: a command never holds
            # a global slot while it waits for its node.
            d = DeferredContext(node_limit.run(
                self._limit.run, action.run, self._execute, address, command,
                stdin))

            def finished(outcome):
                action.add_success_fields(exit_code=outcome.exit_code,
                                          stdout_bytes=len(outcome.stdout))
                if outcome.exit_code != 0:
                    raise RemoteCommandFailed(address, argv, outcome.exit_code,
                                              outcome.stderr, outcome.signal)
                return outcome.stdout
            d.addCallback(finished)
            return d.addActionFinish()

    def start(self, address, argv, received):
        try:
            command = quote_argv(argv)
        except (TypeError, ValueError):
            return fail()
        action = SSH_START(address=address, argv=list(argv))
        with action.context():
            d = DeferredContext(self._start(address, command, received))
            return d.addActionFinish()

    def _start(self, address, command, received):
        def started(running):
            def lost(reason):
                reason.trap(ConnectionLost)
                raise NodeUnreachable(
                    address, "connection lost while the command ran")
            running.ended.addCallbacks(
                lambda outcome: (outcome.exit_code, outcome.signal,
                                 outcome.stderr), lost)
            return running
        d = self._on_connection(
            address, lambda connection: connection.start(command, received))
        return d.addCallback(started)

    def open_channel(self, address, make_channel):
        """
        Open a channel of another kind than a command's on the node's
        shared connection (connecting first if needed).

        :param str address: The node.
        :param make_channel: Callable returning ``(channel, opened,
            extra)`` (see :meth:`_NodeConnection.open_channel`); called
            again if the pooled connection turns out to be dead.
        :return: ``Deferred`` firing as ``opened`` does, or failing with
            :class:`NodeUnreachable` or :class:`HostKeyError` when the
            node cannot be reached.
        """
        action = SSH_OPEN_CHANNEL(address=address)
        with action.context():
            d = DeferredContext(self._on_connection(
                address, lambda connection: connection.open_channel(
                    *make_channel())))
            return d.addActionFinish()

    def _execute(self, address, command, stdin):
        return self._on_connection(
            address, lambda connection: connection.execute(command, stdin))

    def _on_connection(self, address, use, may_retry=True):
        """
        :param use: Callable given the node's connection, returning a
            ``Deferred`` of what it started there.
        :return: That ``Deferred``, its channel and connection failures
            turned into :class:`NodeUnreachable`.
        """
        used = []

        def go(connection):
            used.append(connection)
            return use(connection)
        d = self._connection_for(address).addCallback(go)

        def failed(reason):
            if reason.check(_ChannelNotOpened):
                if reason.value.connection_lost and used:
                    self._forget(address, used[0])
                if reason.value.connection_lost and may_retry:
                    # The pooled connection died before the command started:
                    # nothing ran, so one new connection may be tried.
                    return self._on_connection(address, use, False)
                raise NodeUnreachable(address, "cannot start the command: %s"
                                      % (reason.value.reason,))
            if reason.check(ConnectionLost):
                raise NodeUnreachable(
                    address, "connection lost while the command ran")
            return reason
        return d.addErrback(failed)

    def _connection_for(self, address):
        existing = self._connections.get(address)
        if existing is not None:
            if existing.is_open():
                return succeed(existing)
            del self._connections[address]
        waiter = Deferred()
        waiters = self._connecting.get(address)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        waiters = self._connecting[address] = [waiter]

        def done(result):
            del self._connecting[address]
            self._attempts.pop(address, None)
            if not isinstance(result, Failure):
                self._connections[address] = result
                key = getattr(result, "host_public_key", None)
                if key is not None:
                    self._host_keys[address] = key
                result.when_lost().addCallback(
                    lambda _: self._forget(address, result))
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(result)
        attempt = self._connector.connect(address)
        self._attempts[address] = attempt
        # The attempt may already have ended (a refusal can be immediate).
        attempt.addBoth(done)
        return waiter

    def _forget(self, address, connection):
        if self._connections.get(address) is connection:
            del self._connections[address]

    def host_keys(self):
        # Kept after the connections close: a deploy reads them at the end.
        return dict(self._host_keys)

    def connected_addresses(self):
        """
        :return: ``set`` of the addresses with an open connection.
        """
        return set(self._connections)

    def close(self):
        # Attempts still connecting are abandoned; their commands fail.
        for attempt in list(self._attempts.values()):
            attempt.cancel()
        closing = []
        for address, connection in sorted(self._connections.items()):
            action = SSH_DISCONNECT(address=address)
            with action.context():
                closing.append(DeferredContext(
                    connection.disconnect()).addActionFinish())
        return DeferredList(closing, consumeErrors=True).addCallback(
            lambda _: None)


def ssh_command_runner(reactor, identity_files=(), known_hosts_path=None,
                       ssh_directory=None, environ=None, **options):
    """
    Build an :class:`SSHCommandRunner` from the operator's SSH setup, the way
    ssh(1) finds it: identities (explicit or ``~/.ssh`` defaults), the agent
    from ``SSH_AUTH_SOCK``, and ``~/.ssh/known_hosts`` (or the file given).

    This reads local files: call it before handing control to the reactor.

    :param reactor: See :class:`SSHCommandRunner`.
    :param identity_files: Explicit identity files (``--identity``).
    :param known_hosts_path: Known-hosts file (``--known-hosts``); default
        ``known_hosts`` in ``ssh_directory``.
    :param ssh_directory: ``~/.ssh`` if ``None``.
    :param environ: Environment for ``SSH_AUTH_SOCK``; ``os.environ`` if
        ``None``.
    :param options: Further keyword arguments of :class:`SSHCommandRunner`
        (``username``, ``port``, ``connect_timeout``, ``concurrency``, …).
    :return: The runner.
    :raises SSHConfigurationError: See :func:`load_identities` and
        :meth:`KnownHosts.from_path`.
    """
    if ssh_directory is None:
        ssh_directory = os.path.expanduser("~/.ssh")
    if known_hosts_path is None:
        known_hosts_path = os.path.join(ssh_directory, "known_hosts")
    return SSHCommandRunner(
        reactor,
        known_hosts=KnownHosts.from_path(known_hosts_path),
        identities=load_identities(identity_files, ssh_directory),
        agent_endpoint=agent_endpoint(reactor, environ),
        **options)
