"""
Reaching the cluster from the deploy client: resolve node addresses once,
then one :class:`~flocker.cli._remote.RemoteNodeAgent` per node, each
talking to its node's agent over one connection (a channel of the node's
SSH connection, see :mod:`flocker.cli._channel`).
"""

import ipaddress
import uuid

from eliot.twisted import DeferredContext
from twisted.internet.defer import DeferredList, maybeDeferred

from .._bridge import DEFAULT_AGENT_SOCKET
from ._channel import ssh_agent_connector
from ._deploy import deploy, gather_states
from ._logging import CLUSTER_DEPLOY, CLUSTER_LOGS, CLUSTER_STATUS
from ._logs import application_logs
from ._remote import AgentConnections, RemoteNodeAgent

__all__ = ["resolve_addresses", "remote_agents", "agent_connections",
           "deploy_over_ssh", "status_over_ssh", "logs_over_ssh"]


def _is_ip(address):
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def resolve_addresses(reactor, addresses):
    """
    Resolve node addresses (IP literals or host names) to IP addresses, all
    at once, once per deploy: routes and link rules need addresses, and a
    name that resolves differently halfway through a deploy must not split
    the cluster's rules.

    :param reactor: An ``IReactorCore`` (its ``resolve``).
    :param addresses: Iterable of node addresses.
    :return: ``Deferred`` firing with ``(resolved, failed)``: ``dict`` of
        address to IP, and ``dict`` of address to why it did not resolve.
    """
    addresses = sorted(set(addresses))
    lookups = [maybeDeferred(lambda a=a: a if _is_ip(a) else reactor.resolve(a))
               for a in addresses]

    def collect(results):
        resolved, failed = {}, {}
        for address, (ok, value) in zip(addresses, results):
            if ok:
                resolved[address] = value
            else:
                failed[address] = "cannot resolve host name: %s" % (
                    value.getErrorMessage(),)
        return resolved, failed
    return DeferredList(lookups, consumeErrors=True).addCallback(collect)


def agent_connections(runner, agent_socket=None, log=None, connect=None):
    """
    :param runner: The ``SSHCommandRunner`` holding the nodes' SSH
        connections.
    :param agent_socket: The agents' socket on the nodes, or ``None`` for
        the default.
    :param log: Callable given each eliot message the agents send.
    :param connect: ``None``, or a ``connect(address, protocol)`` to use
        instead of the SSH channels (tests, embedding programs with their
        own transport).
    :return: The :class:`~flocker.cli._remote.AgentConnections`.
    """
    if connect is None:
        connect = ssh_agent_connector(
            runner, socket_path=agent_socket or DEFAULT_AGENT_SOCKET)
    return AgentConnections(connect, log=log)


#: Seconds the agents' connections may take to close at the end of a deploy
#: before the SSH connections under them are closed anyway.
CLOSE_TIMEOUT = 30.0


def _close(reactor, connections):
    """
    Close the agents' connections, waiting at most :data:`CLOSE_TIMEOUT`.

    :return: ``Deferred`` firing with ``None`` either way.
    """
    d = connections.close()
    d.addTimeout(CLOSE_TIMEOUT, reactor)
    return d.addErrback(lambda failure: None)


def remote_agents(connections, resolved, lock=None):
    """
    :param connections: The :class:`~flocker.cli._remote.AgentConnections`.
    :param resolved: ``dict`` of node address (as the deployment names it)
        to its IP address.
    :param lock: Deploy id whose lease every command takes on its node, or
        ``None``.
    :return: ``dict`` of node address to ``RemoteNodeAgent``, each talking to
        (and naming itself by) the node's IP address.
    """
    return {address: RemoteNodeAgent(connections, ip, lock=lock)
            for address, ip in resolved.items()}


def deploy_over_ssh(reactor, deployment, runner, dry_run=False, write=None,
                    agent_socket=None, log=None, live=None, install_keys=False,
                    adopt=frozenset(), confirm=None, plan_for=None,
                    connect=None, reached=None, exclude=frozenset()):
    """
    Converge a real cluster: resolve the nodes, reach each over SSH through
    ``runner``, and run :func:`flocker.cli._deploy.deploy`.

    :param reactor: The reactor.
    :param Deployment deployment: The desired state.
    :param runner: An ``ICommandRunner`` (see
        :func:`flocker._ssh.ssh_command_runner`); the caller closes it.
    :param bool dry_run: Plan and show only.
    :param write: Optional callable taking one line of progress text.
    :param agent_socket: The agents' socket on the nodes, or ``None`` for
        the default.
    :param log: Callable given each eliot message the nodes send back (a
        ``dict``), or ``None`` to drop them.
    :param live: A live view of the running plan, or ``None`` (see
        :func:`flocker.cli._deploy.deploy`); it is told the volume
        transfers' progress as the nodes send it.
    :param bool install_keys: Install the nodes' trust (each node's own
        key, with a known_hosts of the host keys ``runner`` verified) where
        it is not current; ``False`` to leave it as it is.
    :param adopt: Volumes whose newest copy left to adopt (see
        :func:`flocker.cli._deploy.deploy`).
    :param confirm: Asked before destructive changes (see
        :func:`flocker.cli._deploy.deploy`).
    :param plan_for: Another plan to run (see
        :func:`flocker.cli._deploy.deploy`).
    :param connect: See :func:`agent_connections`.
    :param reached: ``None``, or a callable given, once the deploy is
        over, a ``dict`` of node address to how its agent was reached (a
        streamlocal channel or the bridge command; see
        :mod:`flocker.cli._channel`).
    :param exclude: Addresses of nodes not to contact at all (a node
        declared dead by a failover).
    :return: ``Deferred`` firing with a ``DeployResult``.

    Each node's calls go through one connection to its agent, closed
    before the returned ``Deferred`` fires.

    Every node is locked for this deploy (a lease named by a random id,
    taken by its report and renewed by each command) and released at the
    end, so a second deploy against the same nodes waits, then refuses.
    """
    addresses = [node.address for node in deployment.nodes
                 if node.address not in exclude]
    lock = uuid.uuid4().hex
    connections = agent_connections(runner, agent_socket, log, connect)

    def resolved(result):
        ips, failed = result
        # A node not contacted is still resolved, for the routes to what
        # stays on it; one whose name does not resolve keeps it.
        routed = dict(ips)
        ips = {a: ip for a, ip in ips.items() if a not in exclude}
        failed = {a: why for a, why in failed.items() if a not in exclude}
        agents = remote_agents(connections, ips, lock=lock)
        d = DeferredContext(deploy(
            deployment, agents, dry_run=dry_run, write=write, addresses=routed,
            clock=reactor, unreachable=failed, live=live,
            install_keys=install_keys, host_keys=runner.host_keys,
            adopt=adopt,
            confirm=confirm, plan_for=plan_for))

        def release(outcome):
            if reached is not None:
                reached({address: connections.ways[ips[address]]
                         for address in ips if ips[address]
                         in connections.ways})
            # Only nodes that answered hold this deploy's lease.
            answered = [a for a in agents
                        if a not in getattr(outcome, "unreachable", {})]
            releases = [agents[a].release_lock() for a in sorted(answered)]
            done = DeferredList(releases, consumeErrors=True)
            done.addCallback(lambda _: _close(reactor, connections))
            return done.addCallback(lambda _: outcome)
        return d.addBoth(release).result

    # One action around everything, so that the whole deploy, the nodes'
    # work included, is one tree in the log.
    action = CLUSTER_DEPLOY(nodes=len(addresses), dry_run=dry_run)
    with action.context():
        d = DeferredContext(resolve_addresses(
            reactor, addresses + sorted(exclude & {
                node.address for node in deployment.nodes})))
        d.addCallback(resolved)
        return d.addActionFinish()


def _reporting_over_ssh(reactor, deployment, runner, action, use,
                        agent_socket=None, log=None, connect=None):
    """
    Reach every node without the deploy lock, gather the reports, and hand
    them and the agents to ``use``; the connections close when it is done.

    :param action: The eliot action (not yet started) around it all.
    :param use: ``(state, unreachable, agents) -> result or Deferred``.
    :return: ``Deferred`` firing with what ``use`` gave.
    """
    connections = agent_connections(runner, agent_socket, log, connect)

    def resolved(result):
        ips, failed = result
        agents = remote_agents(connections, ips)
        d = DeferredContext(gather_states(agents))

        def gathered(result):
            state, unreachable, locked = result
            return use(state, dict(unreachable, **failed), agents)
        d.addCallback(gathered)
        d.addBoth(lambda result: _close(reactor, connections).addCallback(
            lambda _: result))
        return d.result

    with action.context():
        d = DeferredContext(resolve_addresses(
            reactor, [node.address for node in deployment.nodes]))
        d.addCallback(resolved)
        return d.addActionFinish()


def status_over_ssh(reactor, deployment, runner, agent_socket=None, log=None,
                    connect=None):
    """
    Learn where everything is: every node's report, without the deploy lock
    (a deploy may be running) and without changing anything.

    :param reactor: The reactor.
    :param Deployment deployment: The configuration naming the nodes.
    :param runner: An ``ICommandRunner``; the caller closes it.
    :param agent_socket: The agents' socket on the nodes, or ``None``.
    :param log: Callable given each eliot message the nodes send back.
    :param connect: See :func:`agent_connections`.
    :return: ``Deferred`` firing with ``(ClusterState, unreachable)``:
        the reports of the nodes that answered, and node address to reason
        for the others.
    """
    return _reporting_over_ssh(
        reactor, deployment, runner,
        CLUSTER_STATUS(nodes=len(deployment.nodes)),
        lambda state, unreachable, agents: (state, unreachable),
        agent_socket=agent_socket, log=log, connect=connect)


def logs_over_ssh(reactor, deployment, runner, name, write, write_error,
                  tail=None, follow=False, stopped=None, agent_socket=None,
                  log=None, connect=None):
    """
    Write an application's container output from whichever node of the
    deployment runs it (see :func:`flocker.cli._logs.application_logs`);
    nothing is changed and the deploy lock is not taken.

    :param str name: The application.
    :param write: Callable given each standard output line.
    :param write_error: Callable given each standard error line.
    :param tail: ``None`` or how many last lines.
    :param bool follow: Keep writing new output until ``stopped`` fires.
    :param stopped: ``Deferred`` ending a follow, or ``None``.
    :return: ``Deferred`` firing with the address read from; failing with
        ``NoSuchApplication`` (one line) if no node has its container.
    """
    def use(state, unreachable, agents):
        return application_logs(state, agents, name, write, write_error,
                                tail=tail, follow=follow, clock=reactor,
                                stopped=stopped)
    return _reporting_over_ssh(
        reactor, deployment, runner,
        CLUSTER_LOGS(nodes=len(deployment.nodes), application=name), use,
        agent_socket=agent_socket, log=log, connect=connect)


def rotate_over_ssh(reactor, deployment, runner, write=lambda line: None,
                    agent_socket=None, log=None, connect=None):
    """
    Rotate every node's own node-to-node key (see
    :func:`flocker.cli._rotate.rotate_node_keys`), holding every node's
    deploy lock throughout, so no deploy runs meanwhile.

    :param reactor: The reactor.
    :param Deployment deployment: The configuration naming the nodes.
    :param runner: An ``ICommandRunner``; the caller closes it.
    :param write: Callable given one line per finished step.
    :param agent_socket: The agents' socket on the nodes, or ``None``.
    :param log: Callable given each eliot message the nodes send back.
    :param connect: See :func:`agent_connections`.
    :return: ``Deferred`` firing with a ``RotationResult``; a node that
        could not be resolved is a failure in it.
    """
    from ._rotate import RotationResult, rotate_node_keys
    lock = uuid.uuid4().hex
    connections = agent_connections(runner, agent_socket, log, connect)

    def resolved(result):
        ips, failed = result
        if failed:
            return RotationResult(failed={
                address: "not resolved: %s" % (reason,)
                for address, reason in failed.items()})
        agents = remote_agents(connections, ips, lock=lock)

        def release(outcome):
            releases = [maybeDeferred(agents[a].release_lock)
                        for a in sorted(agents)]
            done = DeferredList(releases, consumeErrors=True)
            done.addCallback(lambda _: _close(reactor, connections))
            return done.addCallback(lambda _: outcome)
        return rotate_node_keys(agents, ips, runner.host_keys,
                                write).addBoth(release)

    d = resolve_addresses(reactor, [node.address
                                    for node in deployment.nodes])
    return d.addCallback(resolved)
