"""
Helpers shared by Flocker's tests.

Tests that need real parts of a machine (root, a Docker daemon, ZFS, network
namespaces) call :func:`require` with the condition and a reason.  On a
developer's machine a missing part skips the test with that reason; in CI
(``CI=true`` in the environment) it fails the test instead, so a green CI run
always means the real parts were exercised.

Tests that do real I/O through Twisted (Docker's socket, SSH, subprocesses)
call :func:`run_in_reactor`, which runs a Deferred-returning function on one
reactor started in a background thread for the whole test session, and
returns its result (or raises its exception) in the test's thread.
"""

import atexit
import os
import queue
import threading

import pytest
from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure

__all__ = ["in_ci", "require", "is_root", "run_in_reactor", "ReactorTimeout",
           "temporary_directory", "http_status_and_body"]


def in_ci():
    """
    :return: ``True`` when running under continuous integration (``CI=true``).
    """
    return os.environ.get("CI", "").lower() == "true"


def is_root():
    """
    :return: ``True`` when the current process runs as root.
    """
    return os.geteuid() == 0


def require(condition, reason):
    """
    Skip the calling test unless ``condition`` holds; under CI fail instead.

    :param bool condition: Whether the needed part is available.
    :param str reason: What is missing, shown in the skip or failure.
    :raises pytest.skip.Exception: When the condition is false outside CI.
    :raises pytest.fail.Exception: When the condition is false in CI.
    """
    if condition:
        return
    if in_ci():
        pytest.fail("required in CI but unavailable: " + reason)
    pytest.skip(reason)


# ---------------------------------------------------------------------------
# Real I/O from synchronous tests: one reactor in a background thread.
#
# pytest cannot wait for a Deferred, and trial's reactor-driving TestCase does
# not run under pytest.  Tests that talk to real daemons (Docker, ZFS, SSH)
# therefore use run_in_reactor(): the global reactor is started once, in a
# daemon thread, the first time it is needed, and each call is scheduled on it
# with callFromThread while the test's thread waits for the result.  Tests
# must never call reactor.run(), react() or anything else that runs the
# global reactor in the test's own thread.

_reactor_lock = threading.Lock()
_reactor_thread = None


class ReactorTimeout(AssertionError):
    """
    A call made with :func:`run_in_reactor` did not finish in time; its
    ``Deferred`` was cancelled.
    """


def _stop_reactor(reactor, thread):
    if thread.is_alive():
        reactor.callFromThread(reactor.stop)
        thread.join(10)


def _running_reactor():
    """
    :return: The global reactor, started in a background thread on first use.
    """
    global _reactor_thread
    from twisted.internet import reactor
    with _reactor_lock:
        if _reactor_thread is None:
            started = threading.Event()
            reactor.callWhenRunning(started.set)
            thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False},
                name="flocker-test-reactor", daemon=True)
            thread.start()
            if not started.wait(30):
                raise RuntimeError("the test reactor did not start")
            _reactor_thread = thread
            atexit.register(_stop_reactor, reactor, thread)
            _reap_children(reactor)
    return reactor


def _reap_children(reactor):
    """
    Make ``spawnProcess`` work on the background reactor.

    Twisted learns that a child exited from its SIGCHLD handler, which it
    only installs when the reactor runs with signal handlers, and signal
    handlers can only be set from the main thread.  Without this, every
    child stays a zombie and its ``processEnded`` never comes.  So: reap
    from a SIGCHLD handler in the main thread when we are in it, and poll
    a few times a second in case we are not (or a signal was coalesced).
    """
    import signal
    from twisted.internet.process import reapAllProcesses
    from twisted.internet.task import LoopingCall

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, lambda number, frame:
                      reactor.callFromThread(reapAllProcesses))
    reactor.callFromThread(
        lambda: LoopingCall(reapAllProcesses).start(0.1, now=False))


def run_in_reactor(function, *args, timeout=60.0, **kwargs):
    """
    Run ``function(reactor, *args, **kwargs)`` in the reactor thread and wait
    for the ``Deferred`` (or coroutine, or plain value) it returns.

    The shared reactor is started on first use and runs until the test
    process exits, so objects bound to it (clients, connection pools) can be
    kept across calls; create and use them only inside ``function``.

    :param function: Called in the reactor thread with the reactor first.
    :param float timeout: Seconds to wait before cancelling the call.
    :return: The result the ``Deferred`` fired with.
    :raises ReactorTimeout: If it did not fire within ``timeout`` seconds.
    :raises Exception: Whatever it failed with, with its traceback.
    :raises RuntimeError: If called from the reactor thread itself (it
        would wait for itself forever).
    """
    reactor = _running_reactor()
    if threading.current_thread() is _reactor_thread:
        raise RuntimeError("run_in_reactor called from the reactor thread")
    results = queue.Queue()
    calls = []

    def start():
        # maybeDeferred also turns a coroutine into a Deferred.
        d = maybeDeferred(function, reactor, *args, **kwargs)
        calls.append(d)
        d.addBoth(results.put)

    reactor.callFromThread(start)
    try:
        result = results.get(timeout=timeout)
    except queue.Empty:
        reactor.callFromThread(lambda: [d.cancel() for d in calls])
        # Collect the cancellation so its failure is not logged as unhandled.
        try:
            results.get(timeout=5)
        except queue.Empty:
            pass
        raise ReactorTimeout("%s did not finish within %s seconds" % (
            getattr(function, "__qualname__", function), timeout))
    if isinstance(result, Failure):
        result.raiseException()
    return result


# ---------------------------------------------------------------------------
# Hypothesis strategies for the models
#
# Shared by the model, configuration and planner tests.  Every strategy
# builds values the model accepts; ``deployments`` additionally keeps the
# cross-file rules of the configuration files (external ports unique in the
# cluster, every link aimed at some application's external port), so a
# generated deployment is one a person could have written.
#
# Speed: the composite strategies draw only from strategies built once, here
# at import, rather than building new ones per example (Hypothesis works out
# each new strategy's properties on first use, which dominated generation),
# and they make drawn ports distinct by stepping past taken ones instead of
# filtering.

import os as _os  # noqa: E402
import string as _string  # noqa: E402

from hypothesis import settings as _settings, strategies as _st  # noqa: E402
from pyrsistent import pset as _pset  # noqa: E402

from ._model import (  # noqa: E402
    Application as _Application, AttachedVolume as _AttachedVolume,
    ClusterState as _ClusterState, Deployment as _Deployment, Link as _Link,
    Node as _Node, NodeKeyStatus as _NodeKeyStatus, NodeState as _NodeState,
    Port as _Port,
    RestartPolicy as _RestartPolicy, Route as _Route,
    VolumeState as _VolumeState,
)

__all__ += [
    "fuzz_settings", "application_names", "tcp_ports", "node_addresses",
    "images", "commands", "environments", "mountpoints",
    "attached_volumes", "restart_policies", "applications", "deployments",
    "volume_states", "node_states", "cluster_states",
]


def fuzz_settings(default=100, **kwargs):
    """
    Hypothesis settings for property tests: ``default`` examples, or the
    number in the ``FLOCKER_FUZZ_EXAMPLES`` environment variable (for a long
    nightly run), with no deadline because some examples legitimately parse
    or plan much more than others.

    :param int default: Examples per test when the variable is unset.
    :param kwargs: Further ``hypothesis.settings`` arguments (hypothesis
        refuses a second settings decorator on one test).
    :return: A ``hypothesis.settings`` usable as a decorator.
    """
    examples = int(_os.environ.get("FLOCKER_FUZZ_EXAMPLES", default))
    return _settings(max_examples=examples, deadline=None, **kwargs)


_NAME_START = _string.ascii_letters + _string.digits
_NAME_REST = _NAME_START + "-_"

# Text a value may hold: anything encodable except NUL (which no process
# argument or environment entry can carry).
_ANY_TEXT = _st.text(_st.characters(codec="utf-8", exclude_characters="\x00"),
                     max_size=10)

_NAMES = _st.builds(lambda first, rest: first + rest,
                    _st.sampled_from(_NAME_START),
                    _st.text(_NAME_REST, max_size=12))

# Link aliases begin environment variable names: a letter first.
_ALIASES = _st.builds(lambda first, rest: first + rest,
                      _st.sampled_from(_string.ascii_letters),
                      _st.text(_NAME_REST, max_size=12))

_PORTS = _st.integers(min_value=1, max_value=65535)


def application_names():
    """
    :return: Strategy for safe names (applications, volumes).
    """
    return _NAMES


def tcp_ports():
    """
    :return: Strategy for TCP port numbers 1-65535.
    """
    return _PORTS


_HOST_LABEL = _st.builds(
    lambda first, middle: first + middle,
    _st.sampled_from(_string.ascii_lowercase),
    _st.text(_string.ascii_lowercase + _string.digits, max_size=8))

_ADDRESSES = _st.one_of(
    _st.ip_addresses(v=4).map(str),
    _st.lists(_HOST_LABEL, min_size=1, max_size=3).map(".".join))


def node_addresses():
    """
    :return: Strategy for node addresses: IPv4 addresses and host names.
    """
    return _ADDRESSES


_IMAGE_PART = _st.text(_string.ascii_lowercase + _string.digits, min_size=1,
                       max_size=8)
_IMAGES = _st.builds(
    lambda repository, name, tag: "%s%s%s" % (
        repository + "/" if repository else "", name,
        ":" + tag if tag else ""),
    _st.one_of(_st.just(""), _IMAGE_PART), _IMAGE_PART,
    _st.one_of(_st.just(""), _IMAGE_PART))


def images():
    """
    :return: Strategy for Docker image references.
    """
    return _IMAGES


_COMMANDS = _st.one_of(_st.none(),
                       _st.lists(_ANY_TEXT, min_size=1, max_size=3))


def commands():
    """
    :return: Strategy for an application's command: ``None`` or a non-empty
        list of arguments.
    """
    return _COMMANDS


_ENVIRONMENTS = _st.dictionaries(
    _st.builds(lambda first, rest: first + rest,
               _st.sampled_from(_string.ascii_letters + "_"),
               _st.text(_string.ascii_letters + _string.digits + "_",
                        max_size=8)),
    _ANY_TEXT, max_size=3)


def environments():
    """
    :return: Strategy for environment mappings (name to value).
    """
    return _ENVIRONMENTS


# No ':' either: the configuration files refuse it (it would end Docker's
# Binds field).
_MOUNTPOINTS = _st.lists(
    _st.text(_st.characters(codec="utf-8", exclude_characters="/:\x00\n"),
             min_size=1, max_size=8).filter(lambda s: s not in (".", "..")),
    min_size=1, max_size=3).map(lambda segments: "/" + "/".join(segments))


def mountpoints():
    """
    :return: Strategy for absolute, normalised mountpoints.
    """
    return _MOUNTPOINTS


_SIZES = _st.one_of(_st.none(), _st.integers(min_value=1, max_value=2 ** 44))

_VOLUMES = _st.builds(_AttachedVolume, mountpoint=_MOUNTPOINTS,
                      maximum_size=_SIZES)
_OPTIONAL_VOLUMES = _st.one_of(_st.none(), _VOLUMES)


def attached_volumes():
    """
    :return: Strategy for :class:`AttachedVolume`.
    """
    return _VOLUMES


_POLICIES = _st.one_of(
    _st.sampled_from([_RestartPolicy(), _RestartPolicy(name="always"),
                      _RestartPolicy(name="on-failure")]),
    _st.builds(_RestartPolicy, name=_st.just("on-failure"),
               maximum_retry_count=_st.integers(1, 100)))


def restart_policies():
    """
    :return: Strategy for :class:`RestartPolicy`.
    """
    return _POLICIES


_CPU_SHARES = _st.one_of(_st.none(), _st.integers(1, 4096))
_SMALL_COUNT = _st.integers(0, 2)
_INDEX = _st.integers(0, 2 ** 16)
_BOOLEANS = _st.booleans()


def _distinct_ports(draw, count, taken):
    """
    Draw ``count`` port numbers outside ``taken`` and add them to it.
    """
    ports = []
    for _ in range(count):
        port = draw(_PORTS)
        while port in taken:
            port = port % 65535 + 1
        taken.add(port)
        ports.append(port)
    return ports


def _named_volumes(draw, application):
    """
    Draw up to two named volumes for ``application``, at mountpoints no
    other volume of it uses.  Their names are longer than any drawn
    application name, so they never meet another application's volume.
    """
    volumes = []
    for index in range(draw(_SMALL_COUNT)):
        volumes.append(_AttachedVolume(
            name="%s%d" % (application.ljust(14, "-"), index),
            # Drawn path segments are at most 8 characters long, so this
            # first segment of 9 never meets another volume's mountpoint.
            mountpoint="/volumes-%d%s" % (index, draw(_MOUNTPOINTS)),
            maximum_size=draw(_SIZES), read_only=draw(_BOOLEANS)))
    return volumes


@_st.composite
def applications(draw, name=None, externals=None, remote_ports=None):
    """
    Strategy for :class:`Application`.

    :param name: The name to use, or ``None`` to draw one.
    :param externals: The external port numbers to publish, or ``None`` to
        draw up to two.
    :param remote_ports: Port numbers links may aim at (up to two links are
        drawn), or ``None`` for arbitrary ports.
    """
    if name is None:
        name = draw(_NAMES)
    if externals is None:
        externals = _distinct_ports(draw, draw(_SMALL_COUNT), set())
    internals = _distinct_ports(draw, len(externals), set())
    link_count = draw(_SMALL_COUNT)
    if remote_ports is None:
        remote_ports = _distinct_ports(draw, link_count, set())
    remote_ports = sorted(remote_ports)
    links = []
    if remote_ports:
        local_ports = _distinct_ports(draw, link_count, set())
        links = [_Link(local_port=local,
                       remote_port=remote_ports[
                           draw(_INDEX) % len(remote_ports)],
                       alias=draw(_ALIASES))
                 for local in local_ports]
    return _Application(
        name=name,
        image=draw(_IMAGES),
        command=draw(_COMMANDS),
        environment=draw(_ENVIRONMENTS),
        ports=[_Port(internal=i, external=e)
               for i, e in zip(internals, externals)],
        volume=draw(_OPTIONAL_VOLUMES),
        volumes=_named_volumes(draw, name),
        links=links,
        mem_limit=draw(_SIZES),
        cpu_shares=draw(_CPU_SHARES),
        restart_policy=draw(_POLICIES),
    )


_APPLICATIONS = applications()


@_st.composite
def deployments(draw, max_nodes=3, max_applications=5):
    """
    Strategy for a :class:`Deployment` that the configuration files can
    express: external ports are unique in the cluster and every link aims
    at an external port some application publishes.

    :param int max_nodes: Most nodes (at least one is drawn).
    :param int max_applications: Most applications.
    """
    addresses = draw(_st.lists(_ADDRESSES, min_size=1, max_size=max_nodes,
                               unique=True))
    names = draw(_st.lists(_NAMES, max_size=max_applications, unique=True))
    taken = set()
    externals = [_distinct_ports(draw, draw(_SMALL_COUNT), taken)
                 for _ in names]
    placed = {address: [] for address in addresses}
    for name, ports in zip(names, externals):
        application = draw(applications(name=name, externals=ports,
                                        remote_ports=taken))
        placed[addresses[draw(_INDEX) % len(addresses)]].append(application)
    return _Deployment(nodes=[_Node(address=address, applications=apps)
                              for address, apps in placed.items()])


_SNAPSHOTS = _st.lists(_NAMES, max_size=3)


@_st.composite
def volume_states(draw, name=None):
    """
    Strategy for :class:`VolumeState`.

    :param name: The volume's name, or ``None`` to draw one.
    """
    return _VolumeState(
        name=draw(_NAMES) if name is None else name,
        owned=draw(_BOOLEANS),
        size=draw(_st.integers(0, 2 ** 40)),
        snapshots=draw(_SNAPSHOTS),
        owner=draw(_st.one_of(_st.none(), _NAMES)))


@_st.composite
def node_states(draw, address=None, max_applications=2):
    """
    Strategy for :class:`NodeState`: some applications (each running or
    stopped), volumes, routes and installed links.

    :param address: The node's address, or ``None`` to draw one.
    :param int max_applications: Most applications (and volumes, routes).
    """
    if address is None:
        address = draw(_ADDRESSES)
    apps = {}
    for _ in range(draw(_st.integers(0, max_applications))):
        application = draw(_APPLICATIONS)
        apps[application.name] = application
    running = [name for name in apps if draw(_BOOLEANS)]
    volumes = {}
    for _ in range(draw(_st.integers(0, max_applications))):
        name = draw(_NAMES)
        volumes[name] = draw(volume_states(name))
    routes = [_Route(port=draw(_PORTS), address=draw(_ADDRESSES))
              for _ in range(draw(_st.integers(0, max_applications)))]
    links = {}
    for name in apps:
        if draw(_BOOLEANS):
            links[name] = _pset(draw(_APPLICATIONS).links)
    node_key = None
    if draw(_BOOLEANS):
        node_key = _NodeKeyStatus(
            fingerprint="SHA256:" + draw(_st.text(
                _string.ascii_letters + _string.digits + "+/", min_size=43,
                max_size=43)),
            known_hosts_digest=draw(_st.text("0123456789abcdef", min_size=64,
                                             max_size=64)))
    images = draw(_st.one_of(_st.none(), _st.frozensets(
        _st.sampled_from(["flocker/busybox:latest", "redis:7",
                          "localhost:5000/web@sha256:" + "0" * 64]))))
    return _NodeState(address=address, applications=apps, running=running,
                      volumes=volumes, routes=routes, links=links,
                      node_key=node_key, images=images,
                      busy_ports=draw(_st.frozensets(_PORTS, max_size=2)),
                      node_id=draw(_st.one_of(_st.none(), _NAMES)))


@_st.composite
def cluster_states(draw, addresses=None, max_nodes=3):
    """
    Strategy for :class:`ClusterState`.

    :param addresses: The nodes that report, or ``None`` to draw up to
        ``max_nodes`` addresses.
    """
    if addresses is None:
        addresses = draw(_st.lists(_ADDRESSES, max_size=max_nodes,
                                   unique=True))
    return _ClusterState(nodes={address: draw(node_states(address))
                                for address in addresses})


# ---------------------------------------------------------------------------
# The local multi-node lab (admin/lab) for tests on real Docker, ZFS and SSH.

import json as _json  # noqa: E402
import shutil as _shutil  # noqa: E402
import subprocess as _subprocess  # noqa: E402
import sys as _sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

import attr as _attr  # noqa: E402
from pyrsistent import pmap as _pmap, pvector as _pvector  # noqa: E402

__all__ += ["LabMachine", "Lab", "lab_missing", "start_lab", "stop_lab"]

_LAB_TOOLS = ("ip", "nsenter", "unshare", "dockerd", "sshd", "ssh", "zpool",
              "zfs", "zfs-fuse", "busybox", "redis-server")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@_attr.s(frozen=True)
class LabMachine(object):
    """
    One machine of a running lab: a node or the client.

    :ivar str name: ``client`` or ``nodeI``.
    :ivar str address: Its IPv4 address (the key in deployment files).
    :ivar str netns: Its network namespace file.
    :ivar str mntns: Its mount namespace file.
    :ivar str utsns: Its UTS namespace file.
    :ivar str home: root's home directory on the machine.
    :ivar env: ``pmap`` of the variables a session there gets (``PATH``
        with Flocker's commands first; on nodes also ``DOCKER_HOST``,
        ``FLOCKER_POOL``, ``FLOCKER_NODE_ADDRESS``, ``FLOCKER_LAB_NODE``).
    :ivar docker_socket: Path of the node dockerd's socket, usable from the
        host (``None`` for the client).
    :ivar pool: The node's ZFS pool name (``None`` for the client).
    :ivar zfs_mount: Where the node's pool is mounted, seen from the host
        and the node alike (``None`` for the client).
    """
    name = _attr.ib()
    address = _attr.ib()
    netns = _attr.ib()
    mntns = _attr.ib()
    utsns = _attr.ib()
    home = _attr.ib()
    env = _attr.ib(converter=_pmap)
    docker_socket = _attr.ib(default=None)
    pool = _attr.ib(default=None)
    zfs_mount = _attr.ib(default=None)

    @classmethod
    def from_description(cls, description):
        """
        :param dict description: One machine's entry in ``lab.json``.
        :return: The :class:`LabMachine`.
        """
        return cls(
            name=description["name"], address=description["address"],
            netns=description["netns"], mntns=description["mntns"],
            utsns=description["utsns"], home=description["home"],
            env=description["env"],
            docker_socket=description.get("docker_socket"),
            pool=description.get("pool"),
            zfs_mount=description.get("zfs_mount"))

    def command(self, argv):
        """
        :param list argv: A command.
        :return: The argument vector running it inside this machine's
            network, mount and UTS namespaces.
        """
        return ["nsenter", "--net=" + self.netns, "--mount=" + self.mntns,
                "--uts=" + self.utsns, "--"] + [str(a) for a in argv]

    def environment(self, extra=None):
        """
        :param dict extra: Variables to add or override.
        :return: The environment for a command on this machine: ours plus
            the machine's session variables plus ``extra``.
        """
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra or {})
        return env

    def run(self, argv, check=True, timeout=120, env=None, **kwargs):
        """
        Run a command on this machine and wait for it.

        :param list argv: The command (never a shell string).
        :param bool check: Raise ``CalledProcessError`` on a non-zero exit.
        :param float timeout: Seconds before ``TimeoutExpired``.
        :param dict env: Extra environment variables.
        :param kwargs: More ``subprocess.run`` arguments (``input``, ...).
        :return: The ``CompletedProcess``; output is captured as text
            unless ``stdout``/``stderr`` are given.
        """
        return _run_group(self.command(argv), check, timeout,
                          self.environment(env), **kwargs)

    def popen(self, argv, env=None, **kwargs):
        """
        Start a command on this machine without waiting.

        :param list argv: The command.
        :param dict env: Extra environment variables.
        :param kwargs: More ``subprocess.Popen`` arguments.
        :return: The ``Popen``.
        """
        kwargs.setdefault("stdin", _subprocess.DEVNULL)
        return _subprocess.Popen(self.command(argv),
                                 env=self.environment(env), **kwargs)


@_attr.s(frozen=True)
class Lab(object):
    """
    A running lab, as ``admin/lab up`` described it in ``lab.json``.

    :ivar str state: The lab's state directory.
    :ivar nodes: ``pvector`` of :class:`LabMachine`, ``node1`` first.
    :ivar LabMachine client: The client (the operator's laptop).
    :ivar str identity: SSH private key trusted by every node's root.
    :ivar str known_hosts: known_hosts listing exactly the nodes' host keys.
    :ivar str ssh_config: ssh_config with ``nodeI`` aliases (``ssh -F``).
    :ivar images: ``pmap`` of image reference to ID, the same on every node
        (``flocker/busybox:latest``, ``flocker/redis:latest``).
    """
    state = _attr.ib()
    nodes = _attr.ib(converter=_pvector)
    client = _attr.ib()
    identity = _attr.ib()
    known_hosts = _attr.ib()
    ssh_config = _attr.ib()
    images = _attr.ib(converter=_pmap)

    @classmethod
    def from_description(cls, description):
        """
        :param dict description: The content of ``lab.json``.
        :return: The :class:`Lab`.
        """
        return cls(
            state=description["state"],
            nodes=[LabMachine.from_description(n)
                   for n in description["nodes"]],
            client=LabMachine.from_description(description["client"]),
            identity=description["ssh"]["identity"],
            known_hosts=description["ssh"]["known_hosts"],
            ssh_config=description["ssh"]["config"],
            images=description["images"])

    @property
    def node_names(self):
        """The nodes' names, ``node1`` first."""
        return [node.name for node in self.nodes]

    def machine(self, name):
        """
        :param str name: ``client`` or a node name.
        :return: That :class:`LabMachine`.
        :raises KeyError: For an unknown name.
        """
        if name == "client":
            return self.client
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def address(self, name):
        """
        :param str name: A machine name.
        :return: Its address.
        """
        return self.machine(name).address

    def docker_socket(self, name):
        """
        :param str name: A node name.
        :return: The path of that node dockerd's socket.
        """
        return self.machine(name).docker_socket

    def pool(self, name):
        """
        :param str name: A node name.
        :return: That node's ZFS pool name.
        """
        return self.machine(name).pool

    def run(self, name, argv, **kwargs):
        """
        Run a command on a machine; see :meth:`LabMachine.run`.

        :param str name: ``client`` or a node name.
        :param list argv: The command.
        :return: The ``CompletedProcess``.
        """
        return self.machine(name).run(argv, **kwargs)

    def run_client(self, argv, **kwargs):
        """
        Run a command on the client, where ``flocker-deploy`` is on ``PATH``
        and ``ssh``/Conch use :attr:`identity` and :attr:`known_hosts`.

        :param list argv: The command.
        :return: The ``CompletedProcess``.
        """
        return self.client.run(argv, **kwargs)


def _run_group(argv, check, timeout, env, input=None, stdout=None,
               stderr=None, text=True, cwd=None):
    """
    ``subprocess.run`` that kills the command's whole process group on
    timeout and never waits on pipes a stuck descendant (say a ``umount``
    waiting on FUSE) still holds.
    """
    capture = stdout is None and stderr is None
    process = _subprocess.Popen(
        argv, stdin=_subprocess.PIPE if input is not None
        else _subprocess.DEVNULL,
        stdout=_subprocess.PIPE if capture else stdout,
        stderr=_subprocess.PIPE if capture else stderr,
        text=text, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = process.communicate(input, timeout=timeout)
    except _subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass
        try:
            out, err = process.communicate(timeout=5)
        except _subprocess.TimeoutExpired:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            out = err = None
        raise _subprocess.TimeoutExpired(argv, timeout, out, err)
    result = _subprocess.CompletedProcess(argv, process.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def lab_missing():
    """
    :return: A reason the lab cannot run on this machine, or ``None``.
    """
    if not is_root():
        return "the lab needs root"
    path = os.environ.get("PATH", "") + ":" + _SYSTEM_PATH
    for tool in _LAB_TOOLS:
        if _shutil.which(tool, path=path) is None:
            return "the lab needs %s (run admin/install-deps)" % (tool,)
    if not os.path.exists("/dev/fuse"):
        return "the lab needs /dev/fuse (zfs-fuse)"
    return None


def _lab_command(script, argv, env, timeout):
    return _run_group([_sys.executable, str(script)] + argv, False, timeout,
                      env)


def _lab_state(env):
    return _Path(env.get("FLOCKER_LAB_STATE") or "/var/lib/flocker-lab")


def _use_lab(state, timeout=600):
    """
    Mark the lab as used by this process: a shared ``flock`` on
    ``<state>/users.lock``, so that concurrent test sessions sharing one
    lab leave bringing it down to the last one.

    :param Path state: The lab's state directory.
    :param float timeout: Seconds to wait while another session is
        bringing the lab down.
    :return: The lock's file descriptor.
    """
    import fcntl
    import time
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "users.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                pytest.fail("the lab in %s stays locked" % (state,))
            time.sleep(0.1)


def _last_user(fd):
    """
    :param int fd: A descriptor from :func:`_use_lab`.
    :return: ``True`` if no other process uses the lab (this one now holds
        the lock exclusively).
    """
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def start_lab(script, nodes=3, env=None, timeout=600):
    """
    Bring a lab up (or repair it) and describe it.  Skips the calling test
    (fails it in CI) where the machine cannot run a lab; fails it if the
    machine can but ``up`` fails.

    :param script: Path of ``admin/lab``.
    :param int nodes: Number of nodes.
    :param dict env: Environment for ``admin/lab`` (``FLOCKER_LAB_STATE``,
        ``FLOCKER_LAB_PREFIX``), or ``None`` for ours.
    :param float timeout: Seconds ``up`` may take.
    :return: The :class:`Lab`.
    """
    missing = lab_missing()
    require(missing is None, missing)
    env = dict(os.environ if env is None else env)
    state = str(_lab_state(env))
    if state not in _LAB_USERS:
        # Once per process: a second lock of this process's own would look
        # like another user and keep the lab up at the end.
        _LAB_USERS[state] = _use_lab(_lab_state(env))
    try:
        result = _lab_command(script, ["up", str(nodes)], env, timeout)
    except _subprocess.TimeoutExpired:
        pytest.fail("admin/lab up %d: no result after %ds" % (nodes, timeout))
    if result.returncode != 0:
        pytest.fail("admin/lab up %d failed: %s" % (
            nodes, result.stderr.strip()[-2000:]))
    with open(_lab_state(env) / "lab.json") as f:
        return Lab.from_description(_json.load(f))


def stop_lab(script, env=None, timeout=300):
    """
    Bring a lab down, unless another process (a concurrent test session)
    still uses it.

    :param script: Path of ``admin/lab``.
    :param dict env: Environment for ``admin/lab``, or ``None`` for ours.
    :param float timeout: Seconds ``down`` may take.
    :return: The ``CompletedProcess`` of ``admin/lab down``, or ``None`` if
        another user kept the lab up.
    :raises AssertionError: If ``down`` fails.
    """
    env = dict(os.environ if env is None else env)
    fd = _LAB_USERS.pop(str(_lab_state(env)), None)
    try:
        if fd is not None and not _last_user(fd):
            return None
        result = _lab_command(script, ["down"], env, timeout)
    finally:
        if fd is not None:
            os.close(fd)
    assert result.returncode == 0, "admin/lab down failed: %s" % (
        result.stderr.strip(),)
    return result


# Lock descriptors of the labs this process uses, by state directory.
_LAB_USERS = {}


def http_status_and_body(response):
    """
    :param str response: An HTTP/1.x response read as text (so with
        ``\\n`` line ends), or ``""``.
    :return: ``(status code, body)``, ``(None, "")`` for no response.
    """
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    words = head.split(None, 2)
    return (words[1] if len(words) > 1 else None), body


def temporary_directory(test):
    """
    Make a new empty directory outside the source tree, removed when
    ``test`` ends.  (trial's ``mktemp`` would put it under the current
    directory, which is the repository when pytest runs the suite.)

    :param test: A ``TestCase`` (its ``addCleanup`` is used).
    :return: The directory's path.
    """
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="flocker-test-")
    test.addCleanup(shutil.rmtree, path, True)
    return os.path.join(path, "d")
