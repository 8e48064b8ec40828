"""
``flocker-node``: the commands the deploy client runs on each node, over SSH,
one per ``INodeAgent`` method (the protocol is in
:mod:`flocker.node._protocol`)::

    flocker-node [--eliot-task TASKID] [--protocol 1] [--address ADDRESS]
                 [--docker-socket PATH] [--pool POOL] COMMAND [ARGUMENTS]

Each command builds this node's :class:`~flocker.node._local.LocalNodeAgent`
(Docker through its Unix socket, the ZFS volume service of the node's pool,
iptables routes), runs the one operation and exits: 0 when done, 1 when the
operation failed (one line on standard error), 2 for a bad command line, 3
when the client speaks another protocol version.
"""

import os
import socket
import sys

from eliot import (
    FileDestination, add_destinations, remove_destination,
)
from eliot.twisted import DeferredContext
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import react
from twisted.python import usage

from .. import __version__
from .._context import BadTaskId, continued_task, in_current_action
from .._model import InvalidModel
from .._serialize import SerializationError, dumps, node_state_to_dict
from ._local import LocalNodeAgent
from ._lock import (
    DeployLock, LockHeld, default_lock_path, process_identity,
)
from ._protocol import (
    CREATE_VOLUME, EXIT_FAILED, EXIT_LOCKED, EXIT_PROTOCOL, EXIT_USAGE,
    HANDOFF_VOLUME, PROTOCOL_VERSION, PUSH_VOLUME, RELEASE_LOCK, REPORT,
    SERVE, SET_ROUTES, START_APPLICATION, STOP_APPLICATION, decode_application,
    decode_routes, encode_bytes_sent, RELEASE_VOLUME, ACQUIRE_VOLUME,
    encode_release, INSTALL_NODE_KEY, decode_node_key, PULL_IMAGE, LOGS,
    DELETE_VOLUME, DOCTOR, JSON_OPTION, WAIT_APPLICATION,
    DRY_RUN_OPTION, SINCE_OPTION, TAIL_OPTION, encode_logs, SEED_VOLUME,
    decode_seed, encode_seeded,
)

__all__ = ["flocker_node_main", "node_main", "default_agent", "NodeOptions",
           "DEFAULT_POOL"]

#: The ZFS pool used when neither ``--pool`` nor ``$FLOCKER_POOL`` names one.
DEFAULT_POOL = "flocker"


class _HelpRequested(Exception):
    """
    ``--help`` was given; carries the options whose help to print.
    """


class _VersionRequested(Exception):
    """
    ``--version`` was given.
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

    def opt_version(self):
        """
        Display Flocker's version and exit.
        """
        raise _VersionRequested()


class _NoArguments(_Options):
    def parseArgs(self):
        pass


class ReportOptions(_NoArguments):
    """
    ``flocker-node report``.
    """
    synopsis = ""
    longdesc = ("Print this node's current state (applications, volumes, "
                "routes, links) as one JSON document on standard output.")


class StartOptions(_NoArguments):
    """
    ``flocker-node start-application`` (application JSON on stdin).
    """
    synopsis = "< APPLICATION.json"
    longdesc = "Create and start the application read from standard input."


class _NameOptions(_Options):
    def parseArgs(self, name):
        self["name"] = name


class StopOptions(_NameOptions):
    """
    ``flocker-node stop-application NAME``.
    """
    synopsis = "NAME"
    longdesc = "Stop and remove the application's container."


class SeedVolumeOptions(_NameOptions):
    """
    ``flocker-node seed-volume NAME`` (the archive on standard input).
    """
    synopsis = "NAME"
    longdesc = ("Fill the volume, owned by this node, with the tar archive "
                "on standard input, if it holds nothing yet.")


class CreateVolumeOptions(_Options):
    """
    ``flocker-node create-volume NAME [--maximum-size BYTES]``.
    """
    synopsis = "NAME [--maximum-size BYTES]"
    longdesc = ("Create the volume, owned by this node (or take ownership of "
                "a copy this node holds).")
    optParameters = [["maximum-size", None, None, "Quota in bytes.", int]]

    def parseArgs(self, name, *rest):
        # The protocol puts the option after the name, where getopt-style
        # parsing has already stopped looking for options.
        self["name"] = name
        if rest:
            if len(rest) != 2 or rest[0] != "--maximum-size":
                raise usage.UsageError("unexpected arguments: %s" % (
                    " ".join(rest),))
            try:
                self["maximum-size"] = int(rest[1])
            except ValueError:
                raise usage.UsageError("--maximum-size must be an integer")


class _TargetOptions(_Options):
    def parseArgs(self, name, target):
        self["name"] = name
        self["target"] = target


class PushOptions(_TargetOptions):
    """
    ``flocker-node push-volume NAME TARGET``.
    """
    synopsis = "NAME TARGET"
    longdesc = "Copy the volume to node TARGET, keeping ownership."


class HandoffOptions(_TargetOptions):
    """
    ``flocker-node handoff-volume NAME TARGET``.
    """
    synopsis = "NAME TARGET"
    longdesc = ("Send the volume's last increment to node TARGET and make "
                "it the owner (the application must be stopped).")


class ReleaseVolumeOptions(_TargetOptions):
    """
    ``flocker-node release-volume NAME TARGET``.
    """
    synopsis = "NAME TARGET"
    longdesc = ("Send the volume's last increment to node TARGET and give "
                "up ownership to it; TARGET's acquire-volume completes the "
                "hand-off (the application must be stopped).")


class AcquireVolumeOptions(_Options):
    """
    ``flocker-node acquire-volume NAME SNAPSHOT NODEID``.
    """
    synopsis = "NAME SNAPSHOT NODEID"
    longdesc = ("Take ownership of the volume another node released to "
                "this one, whose copy must end with SNAPSHOT.")

    def parseArgs(self, name, snapshot, node_id):
        self["name"] = name
        self["snapshot"] = snapshot
        self["node-id"] = node_id


class ReleaseLockOptions(_NoArguments):
    """
    ``flocker-node --lock DEPLOYID release-lock``.
    """
    synopsis = ""
    longdesc = "End the lease of the deploy named by --lock."


class ServeOptions(_NoArguments):
    """
    ``flocker-node serve``: a session answering many calls.
    """
    synopsis = ""
    longdesc = ("Answer the requests read from standard input, one JSON "
                "line each, with one JSON line each on standard output, "
                "until standard input ends (the session protocol).")


class SetRoutesOptions(_NoArguments):
    """
    ``flocker-node set-routes`` (route table JSON on stdin).
    """
    synopsis = "< ROUTES.json"
    longdesc = "Make this node's routes exactly those read from stdin."


class DeleteVolumeOptions(_NameOptions):
    """
    ``flocker-node delete-volume NAME``.
    """
    synopsis = "NAME"
    longdesc = ("Destroy this node's copy of the volume and its snapshots "
                "(nothing if it holds none).")


class WaitApplicationOptions(_Options):
    """
    ``flocker-node wait-application NAME CONDITION SECONDS``.
    """
    synopsis = "NAME CONDITION SECONDS"
    longdesc = ("Wait until the application is healthy "
                "(service_healthy), has exited with status 0 "
                "(service_completed_successfully) or runs (service_started).")

    def parseArgs(self, name, condition, seconds):
        from .._model import DEPENDENCY_CONDITIONS
        if condition not in DEPENDENCY_CONDITIONS:
            raise usage.UsageError("unknown condition %s" % (condition,))
        try:
            timeout = float(seconds)
        except ValueError:
            timeout = -1
        if not 0 <= timeout < float("inf"):
            raise usage.UsageError("SECONDS must be a number of seconds")
        self["name"], self["condition"], self["timeout"] = (
            name, condition, timeout)


class PullImageOptions(_Options):
    """
    ``flocker-node pull-image IMAGE [--dry-run]``.
    """
    synopsis = "IMAGE [--dry-run]"
    longdesc = ("Pull the image from its registry unless it is on this "
                "node; with --dry-run only ask the registry whether it "
                "has it.")

    def parseArgs(self, image, *rest):
        # As for create-volume: the protocol puts the option after the
        # argument.
        self["image"] = image
        if rest not in ((), (DRY_RUN_OPTION,)):
            raise usage.UsageError("unexpected arguments: %s" % (
                " ".join(rest),))
        self["dry-run"] = bool(rest)


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
         "/run/flocker/agent.sock)."],
        ["sshd-config", None, None,
         "sshd's configuration file (default: $FLOCKER_SSHD_CONFIG, else "
         "/etc/ssh/sshd_config)."],
    ]

    def parseArgs(self):
        pass


class LogsOptions(_Options):
    """
    ``flocker-node logs NAME [--since STAMP] [--tail N]``.
    """
    synopsis = "NAME [--since STAMP] [--tail N]"
    longdesc = ("Print the output of the application's container as a "
                "JSON document of [stamp, stream, text] lines.")

    def parseArgs(self, name, *rest):
        self["name"] = name
        self["since"] = self["tail"] = None
        rest = list(rest)
        while rest:
            if len(rest) < 2 or rest[0] not in (SINCE_OPTION, TAIL_OPTION):
                raise usage.UsageError("unexpected arguments: %s" % (
                    " ".join(rest),))
            option, value = rest[0], rest[1]
            del rest[:2]
            if option == SINCE_OPTION:
                self["since"] = value
            else:
                try:
                    self["tail"] = int(value)
                except ValueError:
                    raise usage.UsageError("--tail must be an integer")


class InstallNodeKeyOptions(_NoArguments):
    """
    ``flocker-node install-node-key`` (node key JSON on stdin).
    """
    synopsis = "< NODEKEY.json"
    longdesc = ("Install the node-to-node SSH key and known_hosts read from "
                "standard input, and its forced-command line in "
                "~/.ssh/authorized_keys.")


class NodeOptions(_Options):
    """
    The ``flocker-node`` command line.
    """
    synopsis = "Usage: flocker-node [options] COMMAND [arguments]"
    longdesc = ("Commands the Flocker deploy client runs on a node; they "
                "are usable by hand too.")

    optParameters = [
        ["docker-socket", None, None,
         "Unix socket of this node's Docker daemon (default: from "
         "DOCKER_HOST=unix://PATH, else /var/run/docker.sock)."],
        ["pool", None, None,
         "This node's ZFS pool (default: $FLOCKER_POOL, else %s)."
         % (DEFAULT_POOL,)],
        ["address", None, None,
         "This node's address as the deployment file names it "
         "(default: $FLOCKER_NODE_ADDRESS, else the host name)."],
        ["protocol", None, None,
         "The client/node protocol version the caller speaks."],
        ["eliot-task", None, None,
         "Continue this serialised eliot task; log messages go to stderr."],
        ["lock", None, None,
         "Deploy id whose lease on this node the command takes or renews "
         "first (exit status 4 if another deploy holds it)."],
    ]

    subCommands = [
        [REPORT, None, ReportOptions, "Print this node's state as JSON."],
        [START_APPLICATION, None, StartOptions, "Start an application."],
        [STOP_APPLICATION, None, StopOptions, "Stop an application."],
        [CREATE_VOLUME, None, CreateVolumeOptions, "Create a volume."],
        [SEED_VOLUME, None, SeedVolumeOptions,
         "Fill an empty volume from a tar archive."],
        [PUSH_VOLUME, None, PushOptions, "Copy a volume to another node."],
        [HANDOFF_VOLUME, None, HandoffOptions,
         "Hand a volume to another node."],
        [RELEASE_VOLUME, None, ReleaseVolumeOptions,
         "Release a volume to another node."],
        [ACQUIRE_VOLUME, None, AcquireVolumeOptions,
         "Take ownership of a released volume."],
        [SET_ROUTES, None, SetRoutesOptions, "Set this node's routes."],
        [INSTALL_NODE_KEY, None, InstallNodeKeyOptions,
         "Install the node-to-node SSH key."],
        [PULL_IMAGE, None, PullImageOptions,
         "Pull an image (or ask whether it could be)."],
        [LOGS, None, LogsOptions, "Print an application's output."],
        [WAIT_APPLICATION, None, WaitApplicationOptions,
         "Wait until an application is healthy or has finished."],
        [DELETE_VOLUME, None, DeleteVolumeOptions,
         "Destroy this node's copy of a volume."],
        [DOCTOR, None, DoctorOptions, "Check this node is ready."],
        [RELEASE_LOCK, None, ReleaseLockOptions,
         "End a deploy's lease on this node."],
        [SERVE, None, ServeOptions, "Answer many calls (a session)."],
    ]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("a command is required (try --help)")

    def address(self, environ):
        """
        :param environ: The process environment.
        :return: This node's address: ``--address``, else
            ``$FLOCKER_NODE_ADDRESS``, else the host name.
        """
        return (self["address"] or environ.get("FLOCKER_NODE_ADDRESS")
                or socket.gethostname())


class _NoPool(object):
    """
    The volume service of a node whose pool cannot be opened: it holds no
    volumes, and every change fails with the reason.
    """

    def __init__(self, reason):
        self.reason = reason

    def volumes(self):
        return succeed([])

    def list(self):
        return succeed([])

    def _fail(self, *args, **kwargs):
        return fail(self.reason)

    create = mount = push = handoff = acquire = _fail


def default_agent(reactor, options, environ):
    """
    Build this node's agent from the command line and environment.

    :param reactor: The reactor.
    :param NodeOptions options: Parsed command line.
    :param environ: The process environment (a mapping).
    :return: ``Deferred`` firing with a :class:`LocalNodeAgent` (its
        volume service is opened when first used).
    """
    # Imported here: a command that fails on its arguments should not pay
    # for loading the volume and route packages.
    from ..route import IPTablesRouteManager, ProcessRunner
    from ..volume import (
        VolumeError, default_node_key_store, open_volume_service,
    )
    from ..volume.script import node_ssh_remote

    address = options.address(environ)

    def docker_socket():
        from ._docker import socket_path_from_docker_host
        socket_path = options["docker-socket"]
        if socket_path is None:
            socket_path = socket_path_from_docker_host(
                environ.get("DOCKER_HOST"))
        return socket_path

    def docker():
        # The Docker client loads treq and twisted.web (most of a command's
        # start-up time); commands that never talk to Docker skip that.
        from ._docker import DockerClient
        return DockerClient(reactor, socket_path=docker_socket(),
                            node=address)
    routes = IPTablesRouteManager(ProcessRunner(reactor), node=address)
    pool = options["pool"] or environ.get("FLOCKER_POOL") or DEFAULT_POOL
    node_keys = default_node_key_store(environ, sys.argv[0])
    # Pushes use the node key once it is installed: decided when the pool is
    # opened (a session's first volume operation), after any install-node-key
    # the deploy ran first.
    volumes = _LazyVolumes(
        lambda: open_volume_service(
            reactor, pool, dict(environ),
            remote=node_ssh_remote(environ, store=node_keys)),
        VolumeError)
    docker_client = _OnFirstUse(docker)

    def checks():
        from ..volume import ZFSPool
        from ._doctor import (
            DEFAULT_AGENT_SOCKET, DEFAULT_SSHD_CONFIG, NodeProbes,
            connect_unix, read_sudo_rules, run_argv, run_checks,
        )
        asked = (options.subOptions if options.subCommand == DOCTOR
                 else {})
        env = dict(environ)
        return run_checks(NodeProbes(
            docker=docker_client, docker_socket=docker_socket(),
            pool=ZFSPool(reactor, pool, env), run=run_argv(reactor, env),
            agent_socket=(asked.get("agent-socket")
                          or environ.get("FLOCKER_AGENT_SOCKET")
                          or DEFAULT_AGENT_SOCKET),
            connect=connect_unix(reactor), node_keys=node_keys,
            sshd_config=(asked.get("sshd-config")
                         or environ.get("FLOCKER_SSHD_CONFIG")
                         or DEFAULT_SSHD_CONFIG),
            sudo_rules=read_sudo_rules(), clock=reactor))
    return succeed(LocalNodeAgent(address, docker_client, volumes,
                                  routes, node_keys=node_keys,
                                  checks=checks, clock=reactor))


class _OnFirstUse(object):
    """
    An object built by ``make`` when one of its attributes is first used.
    """

    def __init__(self, make):
        self._make = make
        self._value = None

    def __getattr__(self, name):
        if self._value is None:
            self._value = self._make()
        return getattr(self._value, name)


class _LazyVolumes(object):
    """
    The node's volume service, opened on first use: opening checks the pool
    and reads the node's identity (one ``zfs`` command), which commands
    that never touch a volume (stop, set-routes) should not pay for.  A pool
    that cannot be opened behaves as :class:`_NoPool`.
    """

    def __init__(self, open_service, expected):
        self._open = open_service
        self._expected = expected
        self._service = None

    def _get(self):
        if self._service is None:
            def no_pool(failure):
                failure.trap(self._expected)
                return _NoPool(failure.value)
            self._service = _shared(self._open().addErrback(no_pool))
        return self._service()

    def __getattr__(self, name):
        def call(*args, **kwargs):
            return self._get().addCallback(in_current_action(
                lambda service: getattr(service, name)(*args, **kwargs)))
        return call

    def identity(self):
        """
        :return: ``Deferred`` firing with the node's identity, or ``None``
            when the pool cannot be opened.
        """
        return self._get().addCallback(
            lambda service: getattr(service, "node_id", None))


def _run(agent, command, options, stdin, progress):
    """
    Run ``command`` on ``agent``.

    :param progress: ``(volume, target) -> progress object`` for volume
        transfers, or ``None``.
    :return: ``Deferred`` firing with the text to write to stdout.
    """
    sub = options.subOptions
    # Only given when there is somewhere to send it, so agents are called
    # exactly as before outside sessions.
    reporting = ({} if progress is None or command not in (
        PUSH_VOLUME, HANDOFF_VOLUME, RELEASE_VOLUME)
        else {"progress": progress(sub["name"], sub["target"])})
    if command == REPORT:
        return agent.report().addCallback(
            lambda state: dumps(node_state_to_dict(state)) + "\n")
    if command == START_APPLICATION:
        return agent.start_application(decode_application(stdin)).addCallback(
            lambda _: "")
    if command == STOP_APPLICATION:
        return agent.stop_application(sub["name"]).addCallback(lambda _: "")
    if command == CREATE_VOLUME:
        return agent.create_volume(
            sub["name"], sub["maximum-size"]).addCallback(lambda _: "")
    if command in (PUSH_VOLUME, HANDOFF_VOLUME):
        method = (agent.push_volume if command == PUSH_VOLUME
                  else agent.handoff_volume)
        return method(sub["name"], sub["target"], **reporting).addCallback(
            lambda sent: encode_bytes_sent(sent).decode("ascii") + "\n")
    if command == RELEASE_VOLUME:
        return agent.release_volume(
            sub["name"], sub["target"], **reporting).addCallback(
                lambda release: encode_release(release).decode("ascii")
                + "\n")
    if command == ACQUIRE_VOLUME:
        return agent.acquire_volume(
            sub["name"], sub["snapshot"], sub["node-id"]).addCallback(
                lambda _: "")
    if command == WAIT_APPLICATION:
        return agent.wait_for_application(
            sub["name"], sub["condition"], sub["timeout"]).addCallback(
                lambda _: "")
    if command == DELETE_VOLUME:
        return agent.delete_volume(sub["name"]).addCallback(lambda _: "")
    if command == PULL_IMAGE:
        return agent.pull_image(sub["image"], sub["dry-run"]).addCallback(
            lambda _: "")
    if command == DOCTOR:
        return agent.doctor().addCallback(_doctor_output, sub["json"])
    if command == LOGS:
        return agent.logs(sub["name"], sub["since"], sub["tail"]).addCallback(
            lambda lines: encode_logs(lines).decode("utf-8") + "\n")
    if command == SEED_VOLUME:
        return agent.seed_volume(sub["name"], decode_seed(stdin)).addCallback(
            lambda seeded: encode_seeded(seeded).decode("ascii") + "\n")
    if command == INSTALL_NODE_KEY:
        return agent.install_node_key(decode_node_key(stdin)).addCallback(
            lambda _: "")
    return agent.set_routes(decode_routes(stdin)).addCallback(lambda _: "")


class _Exit(object):
    """
    A command's output with an exit status other than 0.
    """

    def __init__(self, text, code):
        self.text = text
        self.code = code


def _doctor_output(report, as_json):
    from ._doctor import doctor_json, render
    if as_json:
        # The protocol's form: whatever the checks found, the call worked.
        return doctor_json(report)
    return _Exit(render(report), 0 if report.ok else EXIT_FAILED)


def _expected_errors():
    """
    :return: The exception types that are reported as one line (the node
        could not do what was asked) rather than as a crash.
    """
    from ..route import CommandFailed, RouteError
    from ..volume import VolumeError
    from ._docker import DockerError
    return (DockerError, VolumeError, RouteError, CommandFailed,
            SerializationError, InvalidModel, ValueError)


def default_lock(options, environ):
    """
    :return: This node's :class:`DeployLock`.
    """
    return DeployLock(default_lock_path(environ, options.address(environ)))


def _connect_stdio(reactor, protocol):
    """
    Connect ``protocol`` to this process's standard input and output.
    """
    from twisted.internet.stdio import StandardIO
    StandardIO(protocol, reactor=reactor)


def _shared(made):
    """
    :param made: ``Deferred`` firing with a value.
    :return: A function returning, on each call, a new ``Deferred`` firing
        with that value (so no caller sees another's callbacks' results).
    """
    outcome = []

    def keep(result):
        outcome.append(result)
        # Later sharers read the list; the chain itself ends here, so an
        # error is not reported as unhandled when nobody asked yet.
        return None
    made.addBoth(keep)

    def get():
        if outcome:
            return succeed(None).addCallback(lambda _: outcome[0])
        waiting = Deferred()
        made.addBoth(lambda _: waiting.callback(None))
        return waiting.addCallback(lambda _: outcome[0])
    return get


def _serve(reactor, options, environ, make_agent, make_lock, connect):
    """
    Run a session: every request is one :func:`node_main` call sharing one
    agent (so Docker and the pool are opened once).

    :return: ``Deferred`` firing with the exit status once it ends.
    """
    from ._serve import SessionProtocol
    agents = {}
    # The deploy's lease ends with this process (see flocker.node._lock).
    process = process_identity(os.getpid())

    def shared_agent(reactor, options, environ):
        # One agent per way of naming the node (calls normally agree).
        key = (options.address(environ), options["docker-socket"],
               options["pool"])
        if key not in agents:
            agents[key] = _shared(maybeDeferred(make_agent, reactor, options,
                                                environ))
        return agents[key]()

    def call(argv, stdin, stdout, stderr, progress):
        return node_main(reactor, argv, stdin, stdout, stderr, environ,
                         make_agent=shared_agent, make_lock=make_lock,
                         log=False, connect=None, progress=progress,
                         session_process=process)
    protocol = SessionProtocol(call, reactor)
    connect(reactor, protocol)
    return protocol.finished


def node_main(reactor, argv, stdin, stdout, stderr, environ,
              make_agent=default_agent, make_lock=default_lock, log=True,
              connect=_connect_stdio, progress=None, session_process=None):
    """
    Run one ``flocker-node`` command.

    Errors the operator can fix (bad arguments, Docker unavailable, a
    refused operation) are written to ``stderr`` as one line, the last one,
    without a traceback.

    :param reactor: The reactor.
    :param argv: The arguments after the program name.
    :param bytes stdin: Everything on standard input.
    :param stdout: Text stream for results.
    :param stderr: Text stream for errors (and eliot messages when a task
        is continued).
    :param environ: The process environment (a mapping).
    :param make_agent: ``(reactor, options, environ) -> Deferred`` firing
        with the ``INodeAgent`` to act on.
    :param make_lock: ``(options, environ) -> DeployLock``.
    :param bool log: Send eliot messages to ``stderr`` when a task is
        continued (a session sends them itself).
    :param connect: ``(reactor, protocol)`` connecting a session's protocol
        to its input and output, or ``None`` where no session may start
        (inside one).
    :param progress: ``(volume, target) -> object`` with ``update(sent,
        total)`` and ``finish()``, making the progress reporter of the
        volume transfer the command runs (a session's progress lines), or
        ``None`` for none.
    :param session_process: ``None``, or (inside a session) the
        :func:`~flocker.node._lock.process_identity` of the serving process,
        with which the deploy's lease ends.
    :return: ``Deferred`` firing with the exit code.
    """
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
        return succeed(EXIT_USAGE)
    if options["protocol"] not in (None, str(PROTOCOL_VERSION)):
        stderr.write("flocker-node %s speaks protocol %d, not %s: install "
                     "the same Flocker version on the client and the nodes\n"
                     % (__version__, PROTOCOL_VERSION, options["protocol"]))
        return succeed(EXIT_PROTOCOL)
    command = options.subCommand
    if command == SERVE:
        if connect is None:
            stderr.write("flocker-node: serve cannot run inside a session\n")
            return succeed(EXIT_USAGE)
        return _serve(reactor, options, environ, make_agent, make_lock,
                      connect)
    if command == RELEASE_LOCK:
        if options["lock"] is None:
            stderr.write("flocker-node: release-lock needs --lock\n")
            return succeed(EXIT_USAGE)
        make_lock(options, environ).release(options["lock"])
        return succeed(0)
    if options["lock"] is not None:
        try:
            make_lock(options, environ).hold(options["lock"],
                                             process=session_process)
        except LockHeld as e:
            stderr.write("flocker-node %s: %s\n" % (command, e))
            return succeed(EXIT_LOCKED)
        except OSError as e:
            stderr.write("flocker-node %s: cannot use the deploy lock: %s\n"
                         % (command, e))
            return succeed(EXIT_FAILED)

    def run():
        d = maybeDeferred(make_agent, reactor, options, environ)
        return d.addCallback(_run, command, options, stdin, progress)

    destination = None
    if options["eliot-task"]:
        try:
            action = continued_task(options["eliot-task"])
        except BadTaskId as e:
            stderr.write("flocker-node %s: %s\n" % (command, e))
            return succeed(EXIT_USAGE)
        if log:
            destination = FileDestination(file=stderr)
            add_destinations(destination)
        with action.context():
            d = DeferredContext(maybeDeferred(run)).addActionFinish()
    else:
        d = maybeDeferred(run)

    def stop_logging(passthrough):
        # Before the error line: the client reads the last stderr line.
        if destination is not None:
            remove_destination(destination)
        return passthrough
    d.addBoth(stop_logging)

    def done(output):
        if isinstance(output, _Exit):
            stdout.write(output.text)
            return output.code
        stdout.write(output)
        return 0

    def failed(failure):
        failure.trap(*_expected_errors())
        stderr.write("flocker-node %s: %s\n" % (
            command, " ".join(str(failure.value).split())))
        return EXIT_FAILED

    return d.addCallbacks(done, failed)


def flocker_node_main():
    """
    Entry point of the ``flocker-node`` console script.
    """
    argv = sys.argv[1:]
    # Only four commands read standard input; reading it for the others
    # would wait forever on a terminal.
    stdin = (sys.stdin.buffer.read()
             if START_APPLICATION in argv or SET_ROUTES in argv
             or INSTALL_NODE_KEY in argv or SEED_VOLUME in argv else b"")

    def main(reactor):
        d = node_main(reactor, argv, stdin, sys.stdout, sys.stderr,
                      os.environ)

        def exit_with(code):
            if code:
                raise SystemExit(code)
        return d.addCallback(exit_with)
    react(main)


if __name__ == "__main__":
    flocker_node_main()
