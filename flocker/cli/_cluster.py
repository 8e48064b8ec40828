"""
Reaching the cluster from the deploy client: resolve node addresses once,
then one :class:`~flocker.cli._remote.RemoteNodeAgent` per node over a shared
SSH command runner.
"""

import ipaddress
import uuid

from eliot.twisted import DeferredContext
from twisted.internet.defer import DeferredList, maybeDeferred

from ..node._protocol import DEFAULT_NODE_COMMAND
from ._deploy import deploy, gather_states
from ._logging import CLUSTER_DEPLOY, CLUSTER_LOGS, CLUSTER_STATUS
from ._logs import application_logs
from ._remote import RemoteNodeAgent
from ._session import SessionRunner

__all__ = ["resolve_addresses", "remote_agents", "deploy_over_ssh",
           "status_over_ssh", "logs_over_ssh"]


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


def remote_agents(runner, resolved, command=None, lock=None):
    """
    :param runner: The ``ICommandRunner`` reaching the nodes.
    :param resolved: ``dict`` of node address (as the deployment names it)
        to its IP address.
    :param command: The ``flocker-node`` program on the nodes, or ``None``
        for the default.
    :param lock: Deploy id whose lease every command takes on its node, or
        ``None``.
    :return: ``dict`` of node address to ``RemoteNodeAgent``, each talking to
        (and naming itself by) the node's IP address.
    """
    extra = {} if command is None else {"command": command}
    return {address: RemoteNodeAgent(runner, ip, lock=lock, **extra)
            for address, ip in resolved.items()}


def deploy_over_ssh(reactor, deployment, runner, dry_run=False, write=None,
                    command=None, log=None, live=None, node_key=None,
                    adopt=frozenset(), confirm=None, plan_for=None):
    """
    Converge a real cluster: resolve the nodes, reach each over SSH through
    ``runner``, and run :func:`flocker.cli._deploy.deploy`.

    :param reactor: The reactor.
    :param Deployment deployment: The desired state.
    :param runner: An ``ICommandRunner`` (see
        :func:`flocker.cli._ssh.ssh_command_runner`); the caller closes it.
    :param bool dry_run: Plan and show only.
    :param write: Optional callable taking one line of progress text.
    :param command: The ``flocker-node`` program on the nodes, or ``None``.
    :param log: Callable given each eliot message the nodes send back (a
        ``dict``), or ``None`` to drop them.
    :param live: A live view of the running plan, or ``None`` (see
        :func:`flocker.cli._deploy.deploy`); it is told the volume
        transfers' progress as the nodes send it.
    :param node_key: The node-to-node ``NodeKeyPair`` (see
        :func:`flocker.cli._nodekey.load_node_key_pair`) to install on the
        nodes, with a known_hosts of the host keys ``runner`` verified; or a
        callable returning one, called at once inside the deploy's action
        (so reading the key is logged in the deploy's tree; what it raises,
        such as ``SSHConfigurationError``, this function raises); or
        ``None`` to leave the nodes' keys as they are.
    :param adopt: Volumes whose newest copy left to adopt (see
        :func:`flocker.cli._deploy.deploy`).
    :param confirm: Asked before destructive changes (see
        :func:`flocker.cli._deploy.deploy`).
    :param plan_for: Another plan to run (see
        :func:`flocker.cli._deploy.deploy`).
    :return: ``Deferred`` firing with a ``DeployResult``.

    Each node's calls go through one ``flocker-node serve`` session
    (:class:`flocker.cli._session.SessionRunner`), ended before the
    returned ``Deferred`` fires.

    Every node is locked for this deploy (a lease named by a random id,
    taken by its report and renewed by each command) and released at the
    end, so a second deploy against the same nodes waits, then refuses.
    """
    addresses = [node.address for node in deployment.nodes]
    lock = uuid.uuid4().hex
    runner = SessionRunner(runner, reactor, command=(
        DEFAULT_NODE_COMMAND if command is None else command), log=log)

    def resolved(result):
        ips, failed = result
        agents = remote_agents(runner, ips, command=command, lock=lock)
        d = DeferredContext(deploy(
            deployment, agents, dry_run=dry_run, write=write, addresses=ips,
            clock=reactor, unreachable=failed, live=live,
            node_key=node_key, host_keys=runner.host_keys, adopt=adopt,
            confirm=confirm, plan_for=plan_for))

        def release(outcome):
            # Only nodes that answered hold this deploy's lease.
            answered = [a for a in agents
                        if a not in getattr(outcome, "unreachable", {})]
            releases = [agents[a].release_lock() for a in sorted(answered)]
            done = DeferredList(releases, consumeErrors=True)
            done.addCallback(lambda _: runner.close_sessions())
            return done.addCallback(lambda _: outcome)
        return d.addBoth(release).result

    # One action around everything, so that the whole deploy, the nodes'
    # work included, is one tree in the log.
    action = CLUSTER_DEPLOY(nodes=len(addresses), dry_run=dry_run)
    with action.context():
        if callable(node_key):
            # Loaded here so that reading (or making) the key is part of
            # the deploy's tree.
            try:
                node_key = node_key()
            except BaseException as e:
                action.finish(e)
                raise
        d = DeferredContext(resolve_addresses(reactor, addresses))
        d.addCallback(resolved)
        return d.addActionFinish()


def _reporting_over_ssh(reactor, deployment, runner, action, use,
                        command=None, log=None):
    """
    Reach every node without the deploy lock, gather the reports, and hand
    them and the agents to ``use``; the sessions end when it is done.

    :param action: The eliot action (not yet started) around it all.
    :param use: ``(state, unreachable, agents) -> result or Deferred``.
    :return: ``Deferred`` firing with what ``use`` gave.
    """
    runner = SessionRunner(runner, reactor, command=(
        DEFAULT_NODE_COMMAND if command is None else command), log=log)

    def resolved(result):
        ips, failed = result
        agents = remote_agents(runner, ips, command=command)
        d = DeferredContext(gather_states(agents))

        def gathered(result):
            state, unreachable, locked = result
            return use(state, dict(unreachable, **failed), agents)
        d.addCallback(gathered)
        d.addBoth(lambda result: runner.close_sessions().addCallback(
            lambda _: result))
        return d.result

    with action.context():
        d = DeferredContext(resolve_addresses(
            reactor, [node.address for node in deployment.nodes]))
        d.addCallback(resolved)
        return d.addActionFinish()


def status_over_ssh(reactor, deployment, runner, command=None, log=None):
    """
    Learn where everything is: every node's report, without the deploy lock
    (a deploy may be running) and without changing anything.

    :param reactor: The reactor.
    :param Deployment deployment: The configuration naming the nodes.
    :param runner: An ``ICommandRunner``; the caller closes it.
    :param command: The ``flocker-node`` program on the nodes, or ``None``.
    :param log: Callable given each eliot message the nodes send back.
    :return: ``Deferred`` firing with ``(ClusterState, unreachable)``:
        the reports of the nodes that answered, and node address to reason
        for the others.
    """
    return _reporting_over_ssh(
        reactor, deployment, runner,
        CLUSTER_STATUS(nodes=len(deployment.nodes)),
        lambda state, unreachable, agents: (state, unreachable),
        command=command, log=log)


def logs_over_ssh(reactor, deployment, runner, name, write, write_error,
                  tail=None, follow=False, stopped=None, command=None,
                  log=None):
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
        command=command, log=log)
