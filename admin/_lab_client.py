"""
The client side of the local lab (``admin/lab``): bring a lab up or down
from a test session or a benchmark, read its description (``lab.json``),
and run commands on its machines.

Tests and benchmarks share it; it needs nothing beyond Flocker's own
dependencies (no pytest), so a benchmark runs where the test extras are not
installed.  Tests get the lab from :func:`flocker.testtools.shared_lab`
(brought up once per process; the ``lab`` fixture of ``conftest.py`` hands
out the same one).
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import attr
from pyrsistent import pmap, pvector

__all__ = ["LabMachine", "Lab", "LabUnavailable", "LabFailed",
           "lab_missing", "start_lab", "stop_lab"]


class LabUnavailable(Exception):
    """
    This machine cannot run a lab (not root, a tool missing); the message
    says what is missing.
    """


class LabFailed(Exception):
    """
    The machine can run a lab, but bringing it up or down failed; the
    message carries ``admin/lab``'s error output.
    """


_LAB_TOOLS = ("ip", "nsenter", "unshare", "dockerd", "sshd", "ssh", "zpool",
              "zfs", "zfs-fuse", "busybox", "redis-server")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@attr.s(frozen=True)
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
    name = attr.ib()
    address = attr.ib()
    netns = attr.ib()
    mntns = attr.ib()
    utsns = attr.ib()
    home = attr.ib()
    env = attr.ib(converter=pmap)
    docker_socket = attr.ib(default=None)
    pool = attr.ib(default=None)
    zfs_mount = attr.ib(default=None)

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
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.command(argv),
                                 env=self.environment(env), **kwargs)


@attr.s(frozen=True)
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
    state = attr.ib()
    nodes = attr.ib(converter=pvector)
    client = attr.ib()
    identity = attr.ib()
    known_hosts = attr.ib()
    ssh_config = attr.ib()
    images = attr.ib(converter=pmap)

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
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE if input is not None
        else subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else stdout,
        stderr=subprocess.PIPE if capture else stderr,
        text=text, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass
        try:
            out, err = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            out = err = None
        raise subprocess.TimeoutExpired(argv, timeout, out, err)
    result = subprocess.CompletedProcess(argv, process.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def lab_missing():
    """
    :return: A reason the lab cannot run on this machine, or ``None``.
    """
    if os.geteuid() != 0:
        return "the lab needs root"
    path = os.environ.get("PATH", "") + ":" + _SYSTEM_PATH
    for tool in _LAB_TOOLS:
        if shutil.which(tool, path=path) is None:
            return "the lab needs %s (run admin/install-deps)" % (tool,)
    if not os.path.exists("/dev/fuse"):
        return "the lab needs /dev/fuse (zfs-fuse)"
    return None


def _lab_command(script, argv, env, timeout):
    return _run_group([sys.executable, str(script)] + argv, False, timeout,
                      env)


def _lab_state(env):
    return Path(env.get("FLOCKER_LAB_STATE") or "/var/lib/flocker-lab")


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
                raise LabFailed("the lab in %s stays locked" % (state,))
            time.sleep(0.1)


def _last_user(fd):
    """
    :param int fd: A descriptor from :func:`_use_lab`.
    :return: ``True`` if no other process uses the lab (this one now holds
        the lock exclusively).
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def start_lab(script, nodes=3, env=None, timeout=600):
    """
    Bring a lab up (or repair it) and describe it.

    :param script: Path of ``admin/lab``.
    :param int nodes: Number of nodes.
    :param dict env: Environment for ``admin/lab`` (``FLOCKER_LAB_STATE``,
        ``FLOCKER_LAB_PREFIX``), or ``None`` for ours.
    :param float timeout: Seconds ``up`` may take.
    :return: The :class:`Lab`.
    :raises LabUnavailable: Where the machine cannot run a lab.
    :raises LabFailed: Where it can but ``up`` fails.
    """
    missing = lab_missing()
    if missing is not None:
        raise LabUnavailable(missing)
    env = dict(os.environ if env is None else env)
    state = str(_lab_state(env))
    if state not in _LAB_USERS:
        # Once per process: a second lock of this process's own would look
        # like another user and keep the lab up at the end.
        _LAB_USERS[state] = _use_lab(_lab_state(env))
    try:
        result = _lab_command(script, ["up", str(nodes)], env, timeout)
    except subprocess.TimeoutExpired:
        raise LabFailed("admin/lab up %d: no result after %ds" % (
            nodes, timeout))
    if result.returncode != 0:
        raise LabFailed("admin/lab up %d failed: %s" % (
            nodes, result.stderr.strip()[-2000:]))
    with open(_lab_state(env) / "lab.json") as f:
        return Lab.from_description(json.load(f))


def stop_lab(script, env=None, timeout=300):
    """
    Bring a lab down, unless another process (a concurrent test session)
    still uses it.

    :param script: Path of ``admin/lab``.
    :param dict env: Environment for ``admin/lab``, or ``None`` for ours.
    :param float timeout: Seconds ``down`` may take.
    :return: The ``CompletedProcess`` of ``admin/lab down``, or ``None`` if
        another user kept the lab up.
    :raises LabFailed: If ``down`` fails.
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
    if result.returncode != 0:
        raise LabFailed("admin/lab down failed: %s" % (
            result.stderr.strip(),))
    return result


# Lock descriptors of the labs this process uses, by state directory.
_LAB_USERS = {}
