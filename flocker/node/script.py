"""
``flocker-node``: the node's side of Flocker::

    flocker-node agent [--socket PATH] [--docker-socket PATH] [--pool POOL]
                       [--address ADDRESS] [--log FILE]
    flocker-node report [--socket PATH] [--address ADDRESS]
    flocker-node expect [--socket PATH] [--address ADDRESS] VOLUME [NODEID...]
    flocker-node doctor [--json] [--agent-socket PATH] [--sshd-config PATH]

``agent`` is the long-lived process the deploy client talks to (see
:mod:`flocker.node._server` and, for the protocol, :mod:`flocker.node._amp`);
the package's systemd unit ``flocker-node.service`` runs it.  ``report``
asks the running agent for this node's state and prints it as JSON.
``expect`` tells the running agent which nodes it may receive a first copy
of a volume from (see :mod:`flocker.node._senders`; a deploy sets the whole
record, this command one volume of it until the next deploy).
``doctor`` checks, without the agent, that the node is ready for deploys
(see :mod:`flocker.node._doctor`): one line per check, exit status 1 when
something blocks deploys.
"""

import os
import socket
import stat
import sys

from twisted.python import usage

from .. import __version__
from .._bridge import DEFAULT_AGENT_SOCKET
from .._node_env import agent_socket_path, node_address
from .._pool import DEFAULT_POOL, pool_name

__all__ = ["flocker_node_main", "node_main", "NodeOptions",
           "AgentSocketError", "prepare_socket", "build_service"]

#: Seconds between two attempts to open a pool that was missing.
POOL_RETRY = 5.0


class AgentSocketError(Exception):
    """
    The agent cannot listen on its socket: the directory is not private to
    this user, or another agent answers there.
    """


class _Options(usage.Options):
    # usage.Options prints help and exits from inside parsing; raising lets
    # node_main print to the stream it was given and return an exit code.
    def opt_help(self):
        """
        Display this help and exit.
        """
        raise _HelpRequested(self)

    opt_h = opt_help


class _HelpRequested(Exception):
    """
    ``--help`` was given; carries the options whose help to print.
    """


class _VersionRequested(Exception):
    """
    ``--version`` was given.
    """


_ADDRESS = ["address", None, None,
            "This node's address as deployments name it (default: "
            "$FLOCKER_NODE_ADDRESS, else the host name)."]
_SOCKET = ["socket", None, None,
           "The agent's Unix socket (default: $FLOCKER_AGENT_SOCKET, else "
           "%s)." % (DEFAULT_AGENT_SOCKET,)]
_DOCKER_SOCKET = ["docker-socket", None, None,
                  "Unix socket of this node's Docker daemon (default: from "
                  "DOCKER_HOST=unix://PATH, else /var/run/docker.sock)."]
_POOL = ["pool", None, None,
         "This node's ZFS pool (default: $FLOCKER_POOL, else %s)."
         % (DEFAULT_POOL,)]


class AgentOptions(_Options):
    """
    ``flocker-node agent``.
    """
    synopsis = "[options]"
    longdesc = ("Run this node's agent: the process every flocker-deploy "
                "talks to, owning the node's Docker client, volumes, routes "
                "and deploy lock.  Runs until stopped.")
    optParameters = [
        _SOCKET,
        _DOCKER_SOCKET,
        _POOL,
        _ADDRESS,
        ["log", None, None,
         "Append the agent's eliot log to this file (default: standard "
         "output, which the systemd journal keeps)."],
        ["metrics-port", None, None,
         "Serve Prometheus metrics (replication lag, bytes sent to "
         "standbys) on 127.0.0.1 at this TCP port; 0 serves none "
         "(default: 9570).", int],
    ]

    def parseArgs(self):
        pass


class ReportOptions(_Options):
    """
    ``flocker-node report``.
    """
    synopsis = "[options]"
    longdesc = ("Ask the running agent for this node's state (applications, "
                "volumes, routes, links) and print it as one JSON document.")
    optParameters = [_SOCKET, _ADDRESS]

    def parseArgs(self):
        pass


class ExpectOptions(_Options):
    """
    ``flocker-node expect VOLUME [NODEID ...]``.
    """
    synopsis = "[options] VOLUME [NODEID ...]"
    longdesc = ("Tell the running agent which nodes (their identities, as "
                "their reports give them) it may receive a first copy of "
                "VOLUME from, where it has no copy; with no NODEID, none. "
                "The other volumes' record is kept; the next deploy sets "
                "the whole record again.")
    optParameters = [_SOCKET, _ADDRESS]

    def parseArgs(self, volume, *nodes):
        from ._senders import check_senders
        try:
            check_senders({volume: nodes})
        except ValueError as e:
            raise usage.UsageError(str(e))
        self["volume"] = volume
        self["nodes"] = frozenset(nodes)


class DoctorOptions(_Options):
    """
    ``flocker-node doctor [--json] [--agent-socket PATH]
    [--sshd-config PATH]``.
    """
    synopsis = "[--json] [--agent-socket PATH] [--sshd-config PATH]"
    longdesc = ("Check that this node is ready for deploys: one line per "
                "check, with the fix for each that failed.  Exit status 1 "
                "when something blocks deploys.")
    optFlags = [["json", None, "Print the report as one JSON document "
                 "(exit status 0 whatever it says)."]]
    optParameters = [
        ["agent-socket", None, None,
         "The agent's socket (default: $FLOCKER_AGENT_SOCKET, else "
         "%s)." % (DEFAULT_AGENT_SOCKET,)],
        ["sshd-config", None, None,
         "sshd's configuration file (default: $FLOCKER_SSHD_CONFIG, else "
         "/etc/ssh/sshd_config)."],
        _DOCKER_SOCKET,
        _POOL,
    ]

    def parseArgs(self):
        pass


class NodeOptions(_Options):
    """
    The ``flocker-node`` command line.
    """
    synopsis = "Usage: flocker-node COMMAND [options]"
    longdesc = "Flocker's node agent, and a look at what it reports."

    subCommands = [
        ["agent", None, AgentOptions, "Run this node's agent."],
        ["report", None, ReportOptions, "Print this node's state as JSON."],
        ["expect", None, ExpectOptions,
         "Set which nodes a volume's first copy may come from."],
        ["doctor", None, DoctorOptions, "Check this node is ready."],
    ]

    def opt_version(self):
        """
        Display Flocker's version and exit.
        """
        raise _VersionRequested()

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("a command is required (try --help)")


def _address(options, environ):
    return node_address(options["address"], environ)


def _socket_path(options, environ):
    return agent_socket_path(options["socket"], environ)


def prepare_socket(path, uid=None):
    """
    Make the agent's socket directory private and clear a stale socket.

    :param str path: The socket's path.
    :param uid: The user that must own the directory (this process's
        effective user if ``None``).
    :raises AgentSocketError: If the directory belongs to another user or
        is not a directory, or another agent answers on ``path``.
    """
    uid = os.geteuid() if uid is None else uid
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        raise AgentSocketError(
            "%s must be a directory owned by user %d (no one else may "
            "place the agent's socket)" % (directory, uid))
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    if not os.path.lexists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(5)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        # Left by an agent that died: nobody listens.
        os.unlink(path)
        return
    except OSError as e:
        raise AgentSocketError("cannot check %s: %s" % (path, e.strerror))
    finally:
        probe.close()
    raise AgentSocketError("another agent already listens on %s" % (path,))


def peer_socket_path(agent_socket):
    """
    :param str agent_socket: The agent's socket.
    :return: Its peer socket (other nodes' pushes): ``peer.sock`` in the
        same root-only directory.
    """
    return os.path.join(os.path.dirname(os.path.abspath(agent_socket)),
                        "peer.sock")


class _NoPool(object):
    """
    The volume service of a node whose pool cannot be opened: it holds no
    volumes, and every change fails with the reason.
    """

    def __init__(self, reason):
        self.reason = reason

    def volumes(self):
        from twisted.internet.defer import succeed
        return succeed([])

    list = volumes

    def _fail(self, *args, **kwargs):
        from twisted.internet.defer import fail
        return fail(self.reason)

    create = mount = push = handoff = acquire = receive = _fail


def _expected_errors():
    """
    :return: The exception types reported to clients as one line (the node
        could not do what was asked) rather than as internal errors.
    """
    from .._model import InvalidModel
    from ..route import CommandFailed, RouteError
    from ..volume import VolumeError
    from ._agent import ApplicationNotReady
    from ._docker import DockerError
    return (DockerError, VolumeError, RouteError, CommandFailed,
            InvalidModel, ValueError, ApplicationNotReady)


def node_checks(reactor, environ, docker, docker_socket, pool, node_keys,
                agent_socket=None, sshd_config=None):
    """
    :param docker: The node's ``IDockerClient``.
    :param str docker_socket: Its socket.
    :param str pool: The node's pool name.
    :param node_keys: The node's ``NodeKeyStore``.
    :param agent_socket: The agent's socket, or ``None`` for
        ``$FLOCKER_AGENT_SOCKET`` or the default.
    :param sshd_config: sshd's configuration, or ``None`` for
        ``$FLOCKER_SSHD_CONFIG`` or the default.
    :return: ``() -> Deferred`` running the doctor's checks on this node.
    """
    from ..volume import ZFSPool
    from ._doctor import (
        DEFAULT_SSHD_CONFIG, NodeProbes, connect_unix, read_sudo_rules,
        run_argv, run_checks,
    )
    env = dict(environ)

    def checks():
        return run_checks(NodeProbes(
            docker=docker, docker_socket=docker_socket,
            pool=ZFSPool(reactor, pool, env), run=run_argv(reactor, env),
            agent_socket=agent_socket_path(agent_socket, environ),
            connect=connect_unix(reactor), node_keys=node_keys,
            sshd_config=(sshd_config or environ.get("FLOCKER_SSHD_CONFIG")
                         or DEFAULT_SSHD_CONFIG),
            sudo_rules=read_sudo_rules(), clock=reactor))
    return checks


def build_service(reactor, options, environ):
    """
    Build the agent's service from its command line and environment: the
    Docker client, the route manager, the node key store, the deploy lock,
    and the volume service (opened now; while the pool is missing the
    agent reports no volumes and tries again every :data:`POOL_RETRY`
    seconds).

    :return: ``Deferred`` firing with the
        :class:`~flocker.node._server.AgentService`.
    """
    from twisted.internet.defer import inlineCallbacks
    from twisted.internet.task import LoopingCall

    from ..route import IPTablesRouteManager, ProcessRunner
    from ..volume import (
        NodeKeyError, VolumeError, default_node_key_store,
        open_volume_service,
    )
    from ._peer_remote import AgentRemote
    from ..volume._stamp import read_stamp, stamp_path
    from ._automatic import automatic_failover
    from ._docker import DockerClient, socket_path_from_docker_host
    from ._events import DockerEvents
    from ._hosts import write_container_hosts
    from ._lock import DeployLock, default_lock_path, process_identity
    from ._replication import (
        ReplicationStore, Replicator, default_replication_path,
    )
    from ._senders import (
        ExpectedSenders, FirstCopyGroups, SenderStore, default_senders_path,
    )
    from ._report_cache import (
        ReportKeeper, kept_reports, netlink_listening_ports,
    )
    from ._boot import stop_stale_applications
    from ._exit import container_exit_watcher
    from ._restarter import CrashRestarter
    from ._server import AgentService, local_agents

    address = _address(options, environ)
    docker_socket = options["docker-socket"] or socket_path_from_docker_host(
        environ.get("DOCKER_HOST"))
    # A move's stop answers once the container's processes exited: the
    # agent shares the Docker daemon's PID namespace (see flocker.node._exit).
    docker = DockerClient(reactor, socket_path=docker_socket, node=address,
                          exited=container_exit_watcher(reactor))
    routes = IPTablesRouteManager(ProcessRunner(reactor), node=address)
    pool = pool_name(options["pool"], environ)
    node_keys = default_node_key_store(environ, sys.argv[0])
    try:
        # The node's own key pair, made here the first time: its private
        # key never leaves this node; its public key is in every report.
        node_keys.ensure()
    except NodeKeyError as e:
        # Reported by doctor, and the report says no key; the agent
        # serves all the same.
        sys.stderr.write("flocker-node agent: %s\n" % (e,))
    # Pushes go agent to agent over Conch, with this node's own key.
    remote = AgentRemote(reactor, node_keys)

    def open_pool():
        return open_volume_service(reactor, pool, dict(environ),
                                   remote=remote)

    @inlineCallbacks
    def build():
        retry = None
        try:
            current = [(yield open_pool())]
        except VolumeError as e:
            current = [_NoPool(e)]
            retry = LoopingCall(lambda: open_pool().addCallbacks(
                opened, lambda failure: failure.trap(VolumeError)))
            retry.clock = reactor
        checks = node_checks(reactor, environ, docker, docker_socket, pool,
                             node_keys, agent_socket=options["socket"])
        # Kept across restarts: which node each volume's first copy may
        # come from (see flocker.node._senders).
        senders = ExpectedSenders(SenderStore(
            default_senders_path(environ, address)))
        replicator = Replicator(
            reactor, lambda: current[0], ReplicationStore(
                default_replication_path(environ, address)),
            on_stale=lambda volume: restarter.mark_stale(volume).addBoth(
                lambda _: stop_stale_applications(
                    docker, service.agent(address), volume)))
        # The report is kept between requests (see _report_cache).
        stamp = stamp_path(environ, pool)
        keeper = ReportKeeper(reactor, DockerEvents(reactor, docker),
                              lambda: read_stamp(stamp))
        keeper.start()
        reactor.addSystemEventTrigger("before", "shutdown", keeper.stop)
        # Crashed applications with volumes: Docker does not restart them
        # (see _restarter).
        restarter = CrashRestarter(reactor, DockerEvents(reactor, docker),
                                   docker, lambda: current[0],
                                   lambda: service.agent(address))
        restarter.start()
        reactor.addSystemEventTrigger("before", "shutdown", restarter.stop)
        automatic = automatic_failover(
            reactor, environ, address, lambda: service.agent(address),
            lambda: current[0], routes,
            on_change=lambda: keeper.invalidate("automatic placement"),
            replicator=replicator)
        service = AgentService(
            reactor, kept_reports(
                local_agents(docker, lambda: current[0], routes,
                             node_keys, checks, clock=reactor,
                             automatic=automatic, replicator=replicator,
                             write_hosts=write_container_hosts,
                             senders=senders),
                keeper, netlink_listening_ports),
            DeployLock(default_lock_path(environ, address)),
            process=process_identity(os.getpid()),
            expected_errors=_expected_errors(), replicator=replicator,
            volumes=lambda: current[0], senders=senders,
            # A first copy of an automatic group's volume: from the member
            # etcd says holds the group's lease, as this node's trust maps
            # that member's address to its key.
            groups=FirstCopyGroups(address, automatic,
                                   node_keys.peer_sources))

        def opened(volumes):
            current[0] = volumes
            service.forget_agents()
            retry.stop()
            service.boot(address, docker, volumes)
        if retry is not None:
            retry.start(POOL_RETRY, now=False)
        else:
            service.boot(address, docker, current[0])
        if automatic is not None:
            automatic.start()
        return service
    return build()


def _senders_of(service):
    """
    :return: What the peer socket asks for a volume's expected senders:
        the agent's record, or none (every first copy from a node refused)
        for a service without one.
    """
    if service.senders is None:
        return lambda name: frozenset()
    return service.senders.expected


def _groups_of(service):
    """
    :return: What the peer socket asks for a volume's automatic group: the
        agent's :class:`~flocker.node._senders.FirstCopyGroups`, or no
        group for any volume (a service without one).
    """
    if service.groups is None:
        return lambda name: None
    return service.groups.group


def _agent(reactor, options, environ, stdout, stderr):
    from eliot import FileDestination, add_destinations
    from twisted.internet.defer import Deferred

    from ..etcd import EtcdConfigError, EtcdTLS
    from ._logging import AGENT_LISTENING
    from ._peer import PeerFactory
    from ._server import AgentFactory

    path = _socket_path(options, environ)
    # Unusable etcd TLS settings are the operator's to fix: one line, before
    # anything starts.
    try:
        tls = EtcdTLS.from_environ(environ)
        if tls is not None:
            tls.policy()
    except EtcdConfigError as e:
        stderr.write("flocker-node agent: %s\n" % (e,))
        raise SystemExit(1)
    # Whatever the agent makes is the node's, not the world's.
    os.umask(0o077)
    if options["log"]:
        log_file = open(options["log"], "a")
        add_destinations(FileDestination(file=log_file))
    else:
        add_destinations(FileDestination(file=stdout))
    # Other nodes' pushes come in beside the agent's own socket (see
    # flocker.node._peer).
    peer_path = peer_socket_path(path)
    try:
        prepare_socket(path)
        prepare_socket(peer_path)
    except (AgentSocketError, OSError) as e:
        sys.stderr.write("flocker-node agent: %s\n" % (e,))
        raise SystemExit(1)

    def listen(service):
        for where, factory in [
                (path, AgentFactory(service)),
                (peer_path, PeerFactory(reactor, service.volumes,
                                        service.log_router,
                                        senders=_senders_of(service),
                                        groups=_groups_of(service)))]:
            try:
                reactor.listenUNIX(where, factory, mode=0o600)
            except Exception as e:
                stderr.write("flocker-node agent: cannot listen on %s: %s\n"
                             % (where, e))
                raise SystemExit(1)
        AGENT_LISTENING.log(socket=path, address=_address(options, environ))
        _start_replication(reactor, service.replicator, options, stderr)
        # Runs until the reactor stops (SIGTERM, SIGINT).
        return Deferred()
    return build_service(reactor, options, environ).addCallback(listen)


def _start_replication(reactor, replicator, options, stderr):
    """
    Go on replicating what the agent replicated before it stopped, and
    serve the metrics page on 127.0.0.1 (see :mod:`flocker.node._metrics`).
    A port that cannot be listened on costs the metrics, not the agent.
    """
    from twisted.internet.error import CannotListenError

    from ._metrics import DEFAULT_METRICS_PORT, listen_metrics

    replicator.start()
    port = options["metrics-port"]
    port = DEFAULT_METRICS_PORT if port is None else port
    if port:
        try:
            listen_metrics(reactor, port, replicator)
        except CannotListenError as e:
            stderr.write("flocker-node agent: no metrics: cannot listen on "
                         "127.0.0.1:%d: %s\n" % (port, e.socketError))


def _agent_command(reactor, options, environ, stderr, name, action_type,
                   call, **fields):
    """
    Run one command of the node's running agent, as ``flocker-node NAME``
    (see :func:`flocker._agent_session.call_agent`).

    :param str name: The command's name (its error lines).
    :param ActionType action_type: The command's eliot action, from
        :mod:`flocker.node._logging`: it lasts from connecting to the
        agent to the command's end, and the agent continues its task.
    :param call: Callable given the connected ``AgentClientProtocol`` and a
        serialised eliot task id, returning a ``Deferred`` firing with the
        exit code.
    :param fields: The action's fields but ``socket``.
    :return: ``Deferred`` firing with the exit code: ``call``'s, or 1 after
        one line on ``stderr`` when the agent cannot be reached or fails.
    """
    from .._agent_session import call_agent, unix_connector
    from ..volume._errors import AgentError

    path = _socket_path(options, environ)
    d = call_agent(unix_connector(reactor), path, _address(options, environ),
                   action_type(socket=path, **fields), call)

    def failed(failure):
        failure.trap(AgentError)
        stderr.write("flocker-node %s: %s\n" % (name, failure.value.message))
        return 1
    return d.addErrback(failed)


def _report(reactor, options, environ, stdout, stderr):
    from .._serialize import dumps, node_state_to_dict
    from ._amp import Report
    from ._logging import NODE_REPORT_COMMAND

    def report(protocol, task):
        def show(answer):
            stdout.write(dumps(node_state_to_dict(answer["state"])) + "\n")
            return 0
        return protocol.callRemote(Report, eliot_task=task).addCallback(show)
    return _agent_command(reactor, options, environ, stderr, "report",
                          NODE_REPORT_COMMAND, report)


def _expect(reactor, options, environ, stdout, stderr):
    from twisted.internet.defer import inlineCallbacks

    from ._amp import ExpectSenders, Report
    from ._logging import NODE_EXPECT_COMMAND

    @inlineCallbacks
    def expect(protocol, task):
        answer = yield protocol.callRemote(Report, eliot_task=task)
        current = answer["state"].expected_senders
        yield protocol.callRemote(ExpectSenders, eliot_task=task,
                                  senders=with_expected(
                                      current, options["volume"],
                                      options["nodes"]))
        return 0
    return _agent_command(reactor, options, environ, stderr, "expect",
                          NODE_EXPECT_COMMAND, expect,
                          volume=options["volume"],
                          nodes=len(options["nodes"]))


def with_expected(senders, volume, nodes):
    """
    :param senders: A node's record of expected senders (``PMap`` of volume
        name to ``frozenset`` of node identities).
    :param str volume: A volume.
    :param nodes: The identities a first copy of ``volume`` may now come
        from (none: it is dropped from the record).
    :return: The record with ``volume``'s entry replaced.
    """
    if nodes:
        return senders.set(volume, frozenset(nodes))
    return senders.discard(volume)


def _doctor(reactor, options, environ, stdout, stderr, checks=None):
    from ..volume import default_node_key_store
    from ._doctor import doctor_json, render
    from ._docker import DockerClient, socket_path_from_docker_host

    docker_socket = options["docker-socket"] or socket_path_from_docker_host(
        environ.get("DOCKER_HOST"))
    checks = checks or node_checks(
        reactor, environ,
        DockerClient(reactor, socket_path=docker_socket,
                     node=_address({"address": None}, environ)),
        docker_socket,
        pool_name(options["pool"], environ),
        default_node_key_store(environ, sys.argv[0]),
        agent_socket=options["agent-socket"],
        sshd_config=options["sshd-config"])

    def show(report):
        if options["json"]:
            # The protocol's form: whatever the checks found, it worked.
            stdout.write(doctor_json(report))
            return 0
        stdout.write(render(report))
        return 0 if report.ok else 1
    return checks().addCallback(show)


def node_main(reactor, argv, stdout, stderr, environ, doctor_checks=None):
    """
    Run one ``flocker-node`` command.

    :param reactor: The reactor.
    :param argv: The arguments after the program name.
    :param stdout: Text stream for results (and the agent's log).
    :param stderr: Text stream for errors: one line, no traceback.
    :param environ: The process environment (a mapping).
    :param doctor_checks: ``None``, or the checks ``doctor`` runs instead
        of this node's (tests).
    :return: ``Deferred`` firing with the exit code (never, for a running
        agent).
    """
    from twisted.internet.defer import maybeDeferred, succeed
    options = NodeOptions()
    try:
        options.parseOptions(argv)
    except _HelpRequested as e:
        stdout.write(str(e.args[0]).rstrip("\n") + "\n")
        return succeed(0)
    except _VersionRequested:
        stdout.write("flocker-node %s\n" % (__version__,))
        return succeed(0)
    except usage.UsageError as e:
        stderr.write("flocker-node: %s\n" % (e,))
        return succeed(2)
    command = {"agent": _agent, "report": _report, "expect": _expect,
               "doctor": _doctor}[options.subCommand]
    extra = {"checks": doctor_checks} if command is _doctor else {}
    return maybeDeferred(command, reactor, options.subOptions, environ,
                         stdout, stderr, **extra)


def flocker_node_main():
    """
    Entry point of the ``flocker-node`` console script.
    """
    from twisted.internet.task import react

    def main(reactor):
        d = node_main(reactor, sys.argv[1:], sys.stdout, sys.stderr,
                      os.environ)

        def exit_with(code):
            if code:
                raise SystemExit(code)
        return d.addCallback(exit_with)
    react(main)


if __name__ == "__main__":
    flocker_node_main()
