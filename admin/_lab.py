"""
Flocker's local lab: N machines on one host, each a real host as far as
Flocker can tell.

Layout (``P`` is the prefix, ``flk`` by default; ``I`` is 1..8)::

    netns P-net      bridge br0, no address; every machine hangs off it
    netns P-client   10.99.0.2/24: the operator's laptop (flocker-deploy)
    netns P-nodeI    10.99.0.(10+I)/24: dockerd, containerd, sshd

Every machine also has its own mount and UTS namespace (host name = machine
name), kept alive by binding them to files in the runtime directory
(``/run/flocker-lab/<machine>/{mnt,uts}``) and prepared by ``_nsinit.py``:
its own ``/run``, ``/sys``, ``/etc/hosts``, ``/var/log`` and an
``/etc/passwd`` whose ``root`` home is the machine's own (so ``~/.ssh``, and
the shell start-up files sshd sessions run, are per machine).

Each node runs its own dockerd (own data root, socket, bridge subnet
10.98.I.0/24, cgroup parent ``/P-nodeI``; forwarding off until dockerd turns
it on, so the FORWARD policy ends up DROP as on a fresh host), its own sshd
(own host key) and owns a ZFS pool ``flocker-nodeI`` on a sparse file, served
by the one zfs-fuse daemon.  The pools are mounted under a directory made a
shared mount before any node starts, so datasets mounted later show up in
the nodes' mount namespaces.

State (``FLOCKER_LAB_STATE``, default ``/var/lib/flocker-lab``) holds
everything the lab writes; ``down`` removes all of it except the SSH keys,
the image cache, the logs and the nodes' Docker data roots (``down --purge``
removes those too).  A node's dockerd is reset to a fresh host's state
(no containers, volumes, networks or foreign images) whenever it starts.  The
running lab is described for other programs in ``STATE/lab.json``.

Subprocesses are argument vectors; every wait has a deadline.
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import _lab_images

MAX_NODES = 8
NETWORK = "10.99.0"
CLIENT_ADDRESS = NETWORK + ".2"
DEFAULT_STATE = "/var/lib/flocker-lab"
DEFAULT_PREFIX = "flk"
POOL_SIZE = 2 * 1024 ** 3
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ADMIN = Path(__file__).resolve().parent
REPO = ADMIN.parent
NSINIT = ADMIN / "_nsinit.py"
DESCRIPTION_VERSION = 1
# zfs-fuse's control socket directory; kept visible in every machine.
ZFS_SOCKET_DIR = "/run/zfs"

# Programs the lab runs; found on PATH plus the standard system directories.
REQUIRED_TOOLS = ("ip", "nsenter", "unshare", "mount", "umount", "sysctl",
                  "dockerd", "containerd", "runc", "sshd", "ssh",
                  "ssh-keygen", "zpool", "zfs", "zfs-fuse", "busybox",
                  "redis-server", "redis-cli", "ldd")

# Seconds allowed for each kind of wait.
DOCKERD_TIMEOUT = 60
SSHD_TIMEOUT = 15
KILL_TIMEOUT = 15
ZFS_BUSY_TIMEOUT = 20
LOCK_TIMEOUT = 300


class LabError(Exception):
    """
    Something the operator must know about; the message is one line.
    """


def tool_environment():
    """
    :return: The environment for the lab's helper commands: ours, with the
        system directories on ``PATH`` and messages in English.
    """
    path = os.environ.get("PATH", "")
    return dict(os.environ, PATH=(path + ":" if path else "") + STANDARD_PATH,
                LC_ALL="C")


def run(argv, timeout=60, check=True, input=None, env=None):
    """
    Run a helper command to completion, or kill it.

    The command runs in a process group of its own, killed whole on timeout:
    a ``zfs`` command can leave a child (``umount``) stuck on an unanswered
    FUSE request holding our pipes, and we must not wait for it.

    :param list argv: The command.
    :param float timeout: Seconds before it is killed and an error raised.
    :param bool check: Raise on a non-zero exit code.
    :param bytes input: Standard input, or ``None`` for none.
    :param dict env: Environment, or ``None`` for :func:`tool_environment`.
    :return: The completed process (``stdout``/``stderr`` as text).
    :raises LabError: On timeout, a missing program, or (with ``check``) a
        non-zero exit code; the message quotes the last line of stderr.
    """
    argv = [str(a) for a in argv]
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
            env=env if env is not None else tool_environment())
    except FileNotFoundError:
        raise LabError("%s: command not found" % (argv[0],))
    try:
        stdout, stderr = process.communicate(input or b"", timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise LabError("%s: no answer after %ds" % (_short(argv), timeout))
    result = subprocess.CompletedProcess(
        argv, process.returncode, stdout.decode("utf-8", "replace"),
        stderr.decode("utf-8", "replace"))
    if check and result.returncode != 0:
        raise LabError("%s: %s" % (_short(argv), _last_line(result)))
    return result


def kill_group(process):
    """
    SIGKILL a process started with ``start_new_session`` and its group,
    then reap it without waiting on pipes a stuck descendant may hold.

    :param process: The ``Popen``.
    """
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _short(argv):
    words = [str(a) for a in argv]
    if words and words[0] == "nsenter":
        words = words[words.index("--") + 1:] if "--" in words else words
    return " ".join(words[:4])


def _last_line(result):
    text = (result.stderr.strip() or result.stdout.strip()
            or "exit code %d" % (result.returncode,))
    return text.splitlines()[-1].strip()


@dataclass(frozen=True)
class Lab:
    """
    Where one lab lives and how its parts are named.

    :ivar Path state: The state directory.
    :ivar Path runtime: The runtime directory (sockets, namespace files).
    :ivar str prefix: Prefix of the namespace names.
    :ivar Path bin_dir: Directory with ``flocker-node`` & co., put first on
        every machine's ``PATH``.
    """
    state: Path
    runtime: Path
    prefix: str
    bin_dir: Path

    @classmethod
    def from_environ(cls, environ):
        """
        :param environ: Environment mapping; reads ``FLOCKER_LAB_STATE``,
            ``FLOCKER_LAB_PREFIX`` and ``FLOCKER_LAB_BIN``.
        :return: The lab those select.
        :raises LabError: For a malformed value.
        """
        prefix = environ.get("FLOCKER_LAB_PREFIX") or DEFAULT_PREFIX
        if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", prefix):
            raise LabError("FLOCKER_LAB_PREFIX must be 1-6 lower-case letters "
                           "or digits starting with a letter, not %r"
                           % (prefix,))
        state = environ.get("FLOCKER_LAB_STATE") or DEFAULT_STATE
        if not os.path.isabs(state):
            raise LabError("FLOCKER_LAB_STATE must be an absolute path, not %r"
                           % (state,))
        runtime = "/run/flocker-lab" + (
            "" if prefix == DEFAULT_PREFIX else "-" + prefix)
        bin_dir = environ.get("FLOCKER_LAB_BIN") or str(REPO / ".venv" / "bin")
        return cls(state=Path(os.path.normpath(state)), runtime=Path(runtime),
                   prefix=prefix, bin_dir=Path(bin_dir))

    @property
    def bridge_netns(self):
        """The network namespace holding the lab's bridge."""
        return self.prefix + "-net"

    @property
    def ssh_dir(self):
        """Lab-wide SSH material: client key, host keys, known_hosts."""
        return self.state / "ssh"

    @property
    def identity(self):
        """The lab's SSH private key (client and node to node)."""
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self):
        """known_hosts listing exactly the lab nodes' host keys."""
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self):
        """An ssh_config usable from any lab machine (``ssh -F``)."""
        return self.ssh_dir / "config"

    @property
    def hosts_file(self):
        """The ``/etc/hosts`` every lab machine sees."""
        return self.state / "hosts"

    @property
    def zfs_exec(self):
        """The ``zfs``/``zpool`` wrapper bound over both in every node."""
        return self.state / "bin" / "zfs-exec"

    @property
    def zfs_base(self):
        """The shared mount under which node pools are mounted."""
        return self.state / "zfs"

    @property
    def pools_dir(self):
        """Directory of the pools' sparse files."""
        return self.state / "pools"

    @property
    def images_dir(self):
        """The image cache."""
        return self.state / "images"

    @property
    def logs_dir(self):
        """Daemon logs (kept after ``down`` for post-mortems)."""
        return self.state / "logs"

    @property
    def description_file(self):
        """``lab.json``: the running lab, for other programs."""
        return self.state / "lab.json"

    @property
    def host_record(self):
        """What ``up`` changed on the host that ``down`` must undo."""
        return self.state / "host.json"

    def pool_name(self, name):
        """
        :param str name: A node name.
        :return: The ZFS pool name of that node.
        """
        if self.prefix == DEFAULT_PREFIX:
            return "flocker-" + name
        return "%s-%s" % (self.prefix, name)

    def node(self, index):
        """
        :param int index: 1..MAX_NODES.
        :return: The :class:`Node` with that index.
        """
        return Node(lab=self, name="node%d" % (index,), index=index,
                    address="%s.%d" % (NETWORK, 10 + index))

    def client(self):
        """
        :return: The client :class:`Machine`.
        """
        return Machine(lab=self, name="client", index=0,
                       address=CLIENT_ADDRESS)


@dataclass(frozen=True)
class Machine:
    """
    One machine of the lab: namespaces, address and files.

    :ivar Lab lab: Its lab.
    :ivar str name: ``client`` or ``nodeI``.
    :ivar int index: 0 for the client, I for ``nodeI``.
    :ivar str address: Its IPv4 address on the lab network.
    """
    lab: Lab
    name: str
    index: int
    address: str

    is_node = False

    @property
    def netns(self):
        """Name of its network namespace."""
        return "%s-%s" % (self.lab.prefix, self.name)

    @property
    def netns_path(self):
        """The network namespace file iproute2 keeps."""
        return Path("/run/netns") / self.netns

    @property
    def veth(self):
        """Its veth's name on the bridge side."""
        return "v-" + self.name

    @property
    def run_dir(self):
        """Runtime files (namespace files, sockets, pid files)."""
        return self.lab.runtime / self.name

    @property
    def mnt_file(self):
        """The file its mount namespace is bound to."""
        return self.run_dir / "mnt"

    @property
    def uts_file(self):
        """The file its UTS namespace is bound to."""
        return self.run_dir / "uts"

    @property
    def scratch(self):
        """Mount point used once while preparing the mount namespace."""
        return self.run_dir / "scratch"

    @property
    def state_dir(self):
        """Its persistent files."""
        return self.lab.state / self.name

    @property
    def home(self):
        """root's home directory on this machine."""
        return self.state_dir / "home"

    @property
    def passwd(self):
        """The ``/etc/passwd`` this machine sees."""
        return self.state_dir / "passwd"

    @property
    def hostname_file(self):
        """The ``/etc/hostname`` this machine sees."""
        return self.state_dir / "hostname"

    @property
    def log_dir(self):
        """The ``/var/log`` this machine sees."""
        return self.state_dir / "log"

    def environment(self):
        """
        :return: The variables a session on this machine gets (what sshd
            sets for a node; what ``admin/lab run`` sets).
        """
        return {
            "PATH": "%s:%s" % (self.lab.bin_dir, STANDARD_PATH),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "FLOCKER_LAB_NODE": self.name,
        }

    def nsenter(self):
        """
        :return: The ``nsenter`` argument vector (ending in ``--``) that
            runs a program inside this machine's namespaces.
        """
        return ["nsenter", "--net=%s" % (self.netns_path,),
                "--mount=%s" % (self.mnt_file,),
                "--uts=%s" % (self.uts_file,), "--"]

    def describe(self):
        """
        :return: A JSON-able description for ``lab.json``.
        """
        return {
            "name": self.name,
            "address": self.address,
            "netns": str(self.netns_path),
            "mntns": str(self.mnt_file),
            "utsns": str(self.uts_file),
            "home": str(self.home),
            "env": self.environment(),
        }


@dataclass(frozen=True)
class Node(Machine):
    """
    A lab node: a :class:`Machine` with dockerd, sshd and a ZFS pool.
    """
    is_node = True

    @property
    def pool(self):
        """Its ZFS pool's name."""
        return self.lab.pool_name(self.name)

    @property
    def pool_file(self):
        """The pool's sparse backing file."""
        return self.lab.pools_dir / self.name / "disk.img"

    @property
    def zfs_mount(self):
        """Where the pool's root dataset is mounted."""
        return self.lab.zfs_base / self.name

    @property
    def docker_socket(self):
        """The node dockerd's API socket, reachable from the host."""
        return self.run_dir / "docker.sock"

    @property
    def data_root(self):
        """The node dockerd's data root."""
        return self.state_dir / "docker"

    @property
    def daemon_json(self):
        """The node dockerd's configuration file."""
        return self.state_dir / "daemon.json"

    @property
    def sshd_config(self):
        """The node sshd's configuration file."""
        return self.state_dir / "sshd_config"

    @property
    def host_key(self):
        """The node's SSH host key (kept in the lab's SSH directory)."""
        return self.lab.ssh_dir / "hostkeys" / self.name

    @property
    def cgroup_parent(self):
        """The cgroup under which dockerd puts this node's containers."""
        return "/" + self.netns

    @property
    def dockerd_pid_file(self):
        """Pid of the node's dockerd (written by the lab)."""
        return self.run_dir / "dockerd.pid"

    @property
    def sshd_pid_file(self):
        """Pid of the node's sshd (written by sshd)."""
        return self.run_dir / "sshd.pid"

    @property
    def dockerd_log(self):
        """dockerd's output."""
        return self.lab.logs_dir / (self.name + "-dockerd.log")

    @property
    def sshd_log(self):
        """sshd's log."""
        return self.lab.logs_dir / (self.name + "-sshd.log")

    def environment(self):
        env = Machine.environment(self)
        env.update({
            "DOCKER_HOST": "unix://%s" % (self.docker_socket,),
            "FLOCKER_POOL": self.pool,
            "FLOCKER_NODE_ADDRESS": self.address,
        })
        return env

    def describe(self):
        description = Machine.describe(self)
        description.update({
            "docker_socket": str(self.docker_socket),
            "pool": self.pool,
            "zfs_mount": str(self.zfs_mount),
            "cgroup_parent": self.cgroup_parent,
        })
        return description


# ---------------------------------------------------------------------------
# Reading the host's state

@dataclass(frozen=True)
class MountEntry:
    """
    One line of ``/proc/self/mountinfo``.

    :ivar str point: The mount point.
    :ivar str fstype: The file system type.
    :ivar tuple optional: Optional fields (``shared:N``, ``master:N``).
    """
    point: str
    fstype: str
    optional: tuple


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_table():
    """
    :return: The host mount namespace's mounts, as :class:`MountEntry`.
    """
    entries = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            entries.append(MountEntry(point=_unescape(fields[4]),
                                      fstype=right.split()[0],
                                      optional=tuple(fields[6:])))
    return entries


def mounted(path, fstype=None, table=None):
    """
    :param path: A path.
    :param str fstype: If given, only count mounts of this type.
    :param table: A :func:`mount_table` result to reuse.
    :return: ``True`` if something (of that type) is mounted exactly there.
    """
    path = str(path)
    for entry in table if table is not None else mount_table():
        if entry.point == path and (fstype is None or entry.fstype == fstype):
            return True
    return False


def is_shared(path):
    """
    :param path: A mount point.
    :return: ``True`` if the topmost mount there has shared propagation.
    """
    found = False
    for entry in mount_table():
        if entry.point == str(path):
            found = any(o.startswith("shared:") for o in entry.optional)
    return found


def namespace_inode(path):
    """
    :param path: A namespace file (``/run/netns/X``, ``.../mnt``).
    :return: Its namespace's inode number if it is a bound namespace, else
        ``None``.
    """
    if not mounted(path, "nsfs"):
        return None
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def process_alive(pid):
    """
    :param int pid: A process id.
    :return: ``True`` if it exists and is not a zombie.
    """
    stat = _read("/proc/%d/stat" % (pid,))
    if stat is None:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def process_name(pid):
    """
    :param int pid: A process id.
    :return: Its ``comm`` or ``None``.
    """
    comm = _read("/proc/%d/comm" % (pid,))
    return comm.strip() if comm else None


def read_pid(path):
    """
    :param Path path: A pid file.
    :return: The pid in it, or ``None``.
    """
    text = _read(path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def _ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = _read("/proc/%d/stat" % (pid,))
        if stat is None:
            break
        pid = int(stat.rpartition(")")[2].split()[1])
    return pids


def machine_processes(machines):
    """
    Find every live process belonging to the given machines: those in
    their mount or network namespace, in a node's container cgroups, or
    started with one of their runtime or state paths as an argument.

    :param list machines: :class:`Machine` values.
    :return: A set of pids.
    """
    namespaces, cgroups, markers = set(), [], []
    for machine in machines:
        for path, kind in ((machine.mnt_file, "mnt"),
                           (machine.netns_path, "net")):
            inode = namespace_inode(path)
            if inode is not None:
                namespaces.add("%s:[%d]" % (kind, inode))
        if machine.is_node:
            cgroups.append(machine.cgroup_parent)
        markers.extend([str(machine.run_dir) + "/",
                        str(machine.state_dir) + "/"])
    mine = _ancestors()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in mine or not process_alive(pid):
            continue
        if _process_matches(pid, namespaces, cgroups, markers):
            found.add(pid)
    return found


def _process_matches(pid, namespaces, cgroups, markers):
    for kind in ("mnt", "net"):
        try:
            if os.readlink("/proc/%d/ns/%s" % (pid, kind)) in namespaces:
                return True
        except OSError:
            pass
    for line in (_read("/proc/%d/cgroup" % (pid,)) or "").splitlines():
        path = line.split(":", 2)[-1]
        if any(path == c or path.startswith(c + "/") for c in cgroups):
            return True
    cmdline = _read("/proc/%d/cmdline" % (pid,)) or ""
    return any(marker in cmdline for marker in markers)


def kill_machines(machines):
    """
    SIGKILL every process of the given machines and wait until they are
    gone.  The lab is disposable: its dockerd data roots are deleted after
    this, so nothing needs a clean shutdown.

    :param list machines: :class:`Machine` values.
    :raises LabError: If processes survive ``KILL_TIMEOUT`` seconds.
    """
    deadline = time.monotonic() + KILL_TIMEOUT
    while True:
        pids = machine_processes(machines)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while any(process_alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                left = sorted(p for p in pids if process_alive(p))
                raise LabError("processes %s did not die after SIGKILL"
                               % (", ".join(map(str, left[:5])),))
            time.sleep(0.02)


# ---------------------------------------------------------------------------
# Host preparation

def preflight(lab):
    """
    Check privileges and programs before changing anything.

    :param Lab lab: The lab.
    :raises LabError: When something is missing.
    """
    if os.geteuid() != 0:
        raise LabError("must run as root (network, mount namespaces, ZFS)")
    path = tool_environment()["PATH"]
    for tool in REQUIRED_TOOLS:
        if shutil.which(tool, path=path) is None:
            raise LabError("%s not found: run admin/install-deps" % (tool,))
    if not os.path.exists("/dev/fuse"):
        raise LabError("/dev/fuse missing: zfs-fuse needs FUSE")
    if not (lab.bin_dir / "flocker-node").exists():
        raise LabError("%s/flocker-node not found: run admin/install-deps"
                       % (lab.bin_dir,))


class StateLock:
    """
    An exclusive lock on the state directory, so two ``admin/lab`` commands
    never change one lab at once.
    """

    def __init__(self, directory, timeout=LOCK_TIMEOUT):
        """
        :param Path directory: The (existing) state directory.
        :param float timeout: Seconds to wait for another command.
        """
        self._directory = directory
        self._timeout = timeout
        self._fd = None

    def __enter__(self):
        self._fd = os.open(self._directory, os.O_RDONLY)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._fd)
                    raise LabError("another admin/lab command holds %s "
                                   "(waited %ds)" % (self._directory,
                                                     self._timeout))
                time.sleep(0.1)

    def __exit__(self, *exc_info):
        os.close(self._fd)


def load_record(lab):
    """
    :param Lab lab: The lab.
    :return: The host record (``{}`` if none).
    """
    try:
        return json.loads(lab.host_record.read_text())
    except (OSError, ValueError):
        return {}


def write_json(path, value):
    """
    Write JSON atomically.

    :param Path path: Destination.
    :param value: JSON-able value.
    """
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def zfs_fuse_pids():
    """
    :return: Pids of running ``zfs-fuse`` processes.
    """
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and process_name(int(e)) == "zfs-fuse"
            and process_alive(int(e))]


def zfs_answers():
    """
    :return: ``True`` if the ZFS daemon answers ``zpool list``.
    """
    try:
        return run(["zpool", "list", "-H", "-o", "name"], timeout=20,
                   check=False).returncode == 0
    except LabError:
        return False


def ensure_zfs_daemon(lab, record):
    """
    Start zfs-fuse unless it runs (noting in ``record`` that we did).

    :param Lab lab: The lab.
    :param dict record: The host record, updated in place.
    """
    if not zfs_fuse_pids():
        # zfs-fuse daemonises; its output must not be a pipe we wait on.
        try:
            code = subprocess.run(
                ["zfs-fuse", "--pidfile", str(lab.runtime / "zfs-fuse.pid")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=tool_environment(),
                timeout=30).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        if code != 0:
            raise LabError("zfs-fuse failed to start (%s)" % (code,))
        record["zfs_fuse_started"] = True
        write_json(lab.host_record, record)
    deadline = time.monotonic() + 20
    while not zfs_answers():
        if time.monotonic() > deadline:
            raise LabError("zfs-fuse runs but zpool list fails")
        time.sleep(0.1)


def make_private_mount(path):
    """
    Bind a directory onto itself with private propagation (idempotent).

    :param Path path: The directory.
    """
    if not mounted(path):
        run(["mount", "--bind", path, path])
    run(["mount", "--make-private", path])


def ensure_zfs_base(lab, nodes):
    """
    Make the pools' mount base a shared mount.

    Mounts made later under a shared mount propagate into the node mount
    namespaces (slaves of the host); under the host's private ``/`` they
    would not, and a container would get an empty directory instead of its
    dataset, without any error.

    :param Lab lab: The lab.
    :param list nodes: The nodes whose pools may be mounted there.
    :return: ``True`` if the base had to be (re)made, in which case the
        nodes' mount namespaces must be rebuilt.
    """
    lab.zfs_base.mkdir(parents=True, exist_ok=True)
    if mounted(lab.zfs_base):
        if not is_shared(lab.zfs_base):
            run(["mount", "--make-shared", lab.zfs_base])
        return False
    # Pools mounted under a non-shared base must be remounted on the new one.
    with ZfsLock():
        imported = imported_pools()
        for node in nodes:
            if node.pool in imported:
                retry_busy(["zpool", "export", "-f", node.pool])
    run(["mount", "--bind", lab.zfs_base, lab.zfs_base])
    run(["mount", "--make-shared", lab.zfs_base])
    return True


def prepare_host(lab, nodes):
    """
    Create the state and runtime directories, the private runtime mount,
    the shared ZFS base and make sure zfs-fuse runs.

    :param Lab lab: The lab.
    :param list nodes: The nodes to be.
    :return: ``True`` if node mount namespaces must be rebuilt.
    :raises LabError: If the prefix is used by a lab in another state
        directory that still exists.
    """
    for directory in (lab.state, lab.ssh_dir, lab.ssh_dir / "hostkeys",
                      lab.pools_dir, lab.images_dir, lab.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    lab.ssh_dir.chmod(0o700)
    record = load_record(lab)
    if "run_netns_mount" not in record:
        record["run_netns_dir"] = not os.path.exists("/run/netns")
        record["run_netns_mount"] = not mounted("/run/netns")
        write_json(lab.host_record, record)
    owner = lab.runtime / "owner"
    previous = _read(owner)
    if previous and previous.strip() != str(lab.state) and \
            os.path.exists(previous.strip()):
        raise LabError("prefix %r is in use by the lab in %s: bring that one "
                       "down or set FLOCKER_LAB_PREFIX"
                       % (lab.prefix, previous.strip()))
    lab.runtime.mkdir(parents=True, exist_ok=True)
    make_private_mount(lab.runtime)
    owner.write_text(str(lab.state) + "\n")
    ensure_zfs_daemon(lab, record)
    return ensure_zfs_base(lab, nodes)


# ---------------------------------------------------------------------------
# Files: keys, SSH configuration, hosts, passwd

def ensure_key(path, comment):
    """
    Create an ed25519 key pair unless it exists.

    :param Path path: The private key's path (``.pub`` next to it).
    :param str comment: The key comment.
    """
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return
    for stale in (path, path.with_name(path.name + ".pub")):
        if stale.exists():
            stale.unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
         "-f", path])


def public_key(path):
    """
    :param Path path: A private key path.
    :return: ``"ssh-ed25519 AAAA..."`` from its ``.pub`` (comment dropped).
    """
    words = path.with_name(path.name + ".pub").read_text().split()
    return " ".join(words[:2])


def write_text(path, text, mode=0o644):
    """
    Write a file atomically with the given mode.

    :param Path path: Destination.
    :param str text: Content.
    :param int mode: Permission bits.
    """
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.chmod(mode)
    os.replace(partial, path)


def known_hosts_text(nodes):
    """
    :param list nodes: The lab's nodes.
    :return: known_hosts content trusting exactly their host keys, under
        their names and addresses.
    """
    return "".join("%s,%s %s\n" % (node.name, node.address,
                                   public_key(node.host_key))
                   for node in nodes)


def ssh_config_text(nodes, identity, known_hosts):
    """
    :param list nodes: The lab's nodes.
    :param identity: The private key to offer.
    :param known_hosts: The known_hosts file to trust.
    :return: An ssh_config with an alias per node and strict, batch-mode
        defaults.
    """
    lines = ["# Flocker lab: written by admin/lab up.", ""]
    for node in nodes:
        lines += ["Host %s" % (node.name,),
                  "    HostName %s" % (node.address,), ""]
    lines += ["Host *",
              "    User root",
              "    IdentityFile %s" % (identity,),
              "    IdentitiesOnly yes",
              "    UserKnownHostsFile %s" % (known_hosts,),
              "    GlobalKnownHostsFile /dev/null",
              "    StrictHostKeyChecking yes",
              "    BatchMode yes",
              "    ConnectTimeout 10",
              "    LogLevel ERROR", ""]
    return "\n".join(lines)


def hosts_text(lab, nodes):
    """
    :param Lab lab: The lab.
    :param list nodes: The lab's nodes.
    :return: The lab's ``/etc/hosts``.
    """
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost",
             "%s\tclient" % (CLIENT_ADDRESS,)]
    lines += ["%s\t%s" % (node.address, node.name) for node in nodes]
    return "\n".join(lines) + "\n"


def passwd_text(home):
    """
    :param Path home: root's home directory on the machine.
    :return: The host's ``/etc/passwd`` with root's home replaced.
    """
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == "root":
            fields[5] = str(home)
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def shell_rc_text(machine):
    """
    :param Machine machine: A machine.
    :return: root's ``.bashrc`` there.  sshd sessions run it (Debian's
        bash reads it for ssh commands); it must not put anything before the
        lab's ``bin`` directory on ``PATH``.
    """
    return ("# Flocker lab %s: root's shell start-up file "
            "(written by admin/lab).\nexport PATH=%s\n"
            % (machine.name, machine.environment()["PATH"]))


def sshd_config_text(node):
    """
    :param Node node: A node.
    :return: Its sshd configuration.
    """
    env = node.environment()
    env.pop("HOME")
    setenv = " ".join('"%s=%s"' % (k, v) for k, v in sorted(env.items()))
    return "\n".join([
        "# Flocker lab %s: written by admin/lab up." % (node.name,),
        "ListenAddress 0.0.0.0",
        "Port 22",
        "HostKey %s" % (node.host_key,),
        "PidFile %s" % (node.sshd_pid_file,),
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        # No PAM stack and key files inside the state directory.
        "UsePAM no",
        "StrictModes no",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        # Tests open many sessions at once.
        "MaxStartups 200:30:400",
        "MaxSessions 200",
        "Subsystem sftp internal-sftp",
        "SetEnv %s" % (setenv,),
        "",
    ])


def write_machine_files(lab, machine, nodes):
    """
    Write a machine's passwd, hostname, home (SSH key, known_hosts, config,
    authorized_keys for nodes, shell start-up files) and node configs.

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :param list nodes: All nodes (for known_hosts and aliases).
    """
    for directory in (machine.state_dir, machine.log_dir, machine.home):
        directory.mkdir(parents=True, exist_ok=True)
    machine.home.chmod(0o700)
    ssh = machine.home / ".ssh"
    ssh.mkdir(exist_ok=True)
    ssh.chmod(0o700)
    write_text(machine.passwd, passwd_text(machine.home))
    write_text(machine.hostname_file, machine.name + "\n")
    identity = ssh / "id_ed25519"
    write_text(identity, lab.identity.read_text(), 0o600)
    write_text(ssh / "id_ed25519.pub",
               lab.identity.with_name("id_ed25519.pub").read_text())
    write_text(ssh / "known_hosts", known_hosts_text(nodes))
    write_text(ssh / "config",
               ssh_config_text(nodes, identity, ssh / "known_hosts"))
    rc = shell_rc_text(machine)
    write_text(machine.home / ".bashrc", rc)
    write_text(machine.home / ".profile",
               "# Flocker lab: login shells read .bashrc too.\n"
               ". \"$HOME/.bashrc\"\n")
    if not machine.is_node:
        return
    # Keep keys others added (the deploy tool installs its own).
    authorized = ssh / "authorized_keys"
    lines = (authorized.read_text().splitlines()
             if authorized.exists() else [])
    key = public_key(lab.identity)
    if not any(line.split()[:2] == key.split() for line in lines
               if line.strip()):
        lines.append(key + " flocker-lab")
    write_text(authorized, "\n".join(lines) + "\n", 0o600)
    write_text(machine.sshd_config, sshd_config_text(machine))
    write_json(machine.daemon_json, {
        # dockerd 20.10 otherwise writes /etc/docker/key.json on the host.
        "deprecated-key-path": str(machine.state_dir / "docker-key.json"),
    })


def write_lab_files(lab, nodes):
    """
    Write the lab-wide keys, known_hosts, ssh_config and hosts file.

    :param Lab lab: The lab.
    :param list nodes: All nodes.
    """
    ensure_key(lab.identity, "flocker-lab")
    for node in nodes:
        ensure_key(node.host_key, "flocker-lab %s host key" % (node.name,))
    write_text(lab.known_hosts, known_hosts_text(nodes))
    write_text(lab.ssh_config,
               ssh_config_text(nodes, lab.identity, lab.known_hosts))
    write_text(lab.hosts_file, hosts_text(lab, nodes))
    lab.zfs_exec.parent.mkdir(exist_ok=True)
    write_text(lab.zfs_exec, zfs_exec_text(), 0o755)


def zfs_commands():
    """
    :return: ``{"zfs": real path, "zpool": real path}`` on this host.
    """
    return {name: os.path.realpath(shutil.which(name, path=STANDARD_PATH))
            for name in ("zfs", "zpool")}


def zfs_exec_text():
    """
    :return: The content of the ``zfs``/``zpool`` wrapper for the nodes:
        ``_zfs_exec.py`` with this interpreter on its ``#!`` line and the
        real commands filled in.
    """
    source = (ADMIN / "_zfs_exec.py").read_text()
    marker = "REAL_COMMANDS = {}"
    assert marker in source
    return "#!%s -IS\n%s" % (
        os.path.realpath(sys.executable),
        source.replace(marker, "REAL_COMMANDS = %r" % (zfs_commands(),)))


# ---------------------------------------------------------------------------
# Network

def ensure_netns(name):
    """
    Create a network namespace unless it exists.

    :param str name: Its name.
    :return: ``True`` if it was created.
    """
    path = Path("/run/netns") / name
    if namespace_inode(path) is not None:
        return False
    if path.exists():
        path.unlink()
    run(["ip", "netns", "add", name])
    return True


def delete_netns(name):
    """
    Delete a network namespace if it exists.

    :param str name: Its name.
    """
    path = Path("/run/netns") / name
    if namespace_inode(path) is not None:
        run(["ip", "netns", "del", name])
    elif path.exists():
        path.unlink()


def ip_batch(netns, commands):
    """
    Run ``ip`` commands inside a network namespace in one process.

    :param str netns: The namespace.
    :param list commands: ``ip`` command lines (without ``ip``), each a list.
    """
    text = "".join(" ".join(c) + "\n" for c in commands)
    run(["ip", "-n", netns, "-batch", "-"], input=text.encode())


def sysctl(netns, settings):
    """
    Set sysctls inside a network namespace (unknown keys ignored).

    :param str netns: The namespace.
    :param dict settings: ``{key: value}``.
    """
    run(["nsenter", "--net=/run/netns/" + netns, "--", "sysctl", "-q", "-e",
         "-w"] + ["%s=%s" % item for item in sorted(settings.items())])


def ensure_bridge(lab):
    """
    Create the bridge namespace and its bridge unless they exist.

    Bridging in the host namespace would send node traffic through the
    host's FORWARD chain (br_netfilter); its own namespace keeps the host
    firewall out of the picture.

    :param Lab lab: The lab.
    """
    created = ensure_netns(lab.bridge_netns)
    links = json.loads(run(["ip", "-n", lab.bridge_netns, "-j", "link",
                            "show"]).stdout or "[]")
    if not any(link.get("ifname") == "br0" for link in links):
        ip_batch(lab.bridge_netns, [["link", "add", "br0", "type", "bridge"]])
    ip_batch(lab.bridge_netns, [["link", "set", "lo", "up"],
                                ["link", "set", "br0", "up"]])
    if created:
        sysctl(lab.bridge_netns, {
            "net.bridge.bridge-nf-call-iptables": 0,
            "net.bridge.bridge-nf-call-ip6tables": 0,
            "net.bridge.bridge-nf-call-arptables": 0,
        })


def link_ok(lab, machine):
    """
    :param Lab lab: The lab.
    :param Machine machine: A machine.
    :return: ``True`` if its ``eth0`` is up with its address and its veth
        peer is up on the bridge.
    """
    inside = run(["ip", "-n", machine.netns, "-j", "addr", "show", "dev",
                  "eth0"], check=False)
    outside = run(["ip", "-n", lab.bridge_netns, "-j", "link", "show", "dev",
                   machine.veth], check=False)
    if inside.returncode or outside.returncode:
        return False
    eth0, veth = json.loads(inside.stdout)[0], json.loads(outside.stdout)[0]
    has_address = any(a.get("local") == machine.address
                      and a.get("prefixlen") == 24
                      for a in eth0.get("addr_info", []))
    return (has_address and "UP" in eth0.get("flags", [])
            and veth.get("master") == "br0" and "UP" in veth.get("flags", []))


def ensure_link(lab, machine, fresh):
    """
    Connect a machine to the bridge with a veth pair whose ends are created
    directly in the two namespaces (nothing ever appears on the host).

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :param bool fresh: Its network namespace was just created (so it has
        no link yet).
    """
    if not fresh:
        if link_ok(lab, machine):
            return
        run(["ip", "-n", machine.netns, "link", "del", "eth0"], check=False)
    run(["ip", "-n", lab.bridge_netns, "link", "del", machine.veth],
        check=False)
    # A fixed MAC per address: a machine whose link is recreated keeps it,
    # so the other machines' ARP caches stay right.
    mac = "02:66:6c:6b:%02x:%02x" % tuple(
        int(octet) for octet in machine.address.split(".")[2:])
    run(["ip", "link", "add", "name", machine.veth, "netns", lab.bridge_netns,
         "type", "veth", "peer", "name", "eth0", "address", mac,
         "netns", machine.netns])
    ip_batch(lab.bridge_netns, [["link", "set", machine.veth, "master", "br0",
                                 "up"]])
    ip_batch(machine.netns, [
        ["link", "set", "lo", "up"],
        ["addr", "add", "%s/24" % (machine.address,), "dev", "eth0"],
        ["link", "set", "eth0", "up"],
    ])


# ---------------------------------------------------------------------------
# Mount namespaces

def unmount_namespace_files(machine):
    """
    Release a machine's mount and UTS namespace files.

    :param Machine machine: The machine.
    """
    for path in (machine.mnt_file, machine.uts_file):
        if mounted(path):
            run(["umount", path])


def ensure_mount_namespace(lab, machine):
    """
    Create and prepare a machine's mount and UTS namespaces unless alive.

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :return: ``True`` if they were (re)created.
    """
    if namespace_inode(machine.mnt_file) is not None and \
            namespace_inode(machine.uts_file) is not None:
        return False
    unmount_namespace_files(machine)
    machine.scratch.mkdir(parents=True, exist_ok=True)
    for path in (machine.mnt_file, machine.uts_file):
        path.touch()
    binds = []
    for source, target in ((lab.hosts_file, "/etc/hosts"),
                           (machine.passwd, "/etc/passwd"),
                           (machine.hostname_file, "/etc/hostname"),
                           (machine.log_dir, "/var/log")):
        if os.path.exists(target):
            binds += ["--bind", "%s:%s" % (source, target)]
    if machine.is_node:
        # zfs unmounts must happen where the ZFS daemon mounts: see
        # _zfs_exec.py.
        for real in zfs_commands().values():
            binds += ["--bind", "%s:%s" % (lab.zfs_exec, real)]
    run(["nsenter", "--net=%s" % (machine.netns_path,), "--",
         "unshare", "--mount=%s" % (machine.mnt_file,),
         "--uts=%s" % (machine.uts_file,), "--propagation", "slave", "--",
         sys.executable, "-I", "-S", NSINIT, "--hostname", machine.name,
         "--keep", lab.runtime, "--keep", ZFS_SOCKET_DIR,
         "--scratch", machine.scratch] + binds,
        timeout=30)
    return True


# ---------------------------------------------------------------------------
# Daemons

def daemon_pid(node, pid_file, name):
    """
    :param Node node: A node.
    :param Path pid_file: The daemon's pid file.
    :param str name: Its expected process name.
    :return: Its pid if it runs inside the node's mount namespace, else
        ``None``.
    """
    pid = read_pid(pid_file)
    if pid is None or not process_alive(pid) or process_name(pid) != name:
        return None
    inode = namespace_inode(node.mnt_file)
    try:
        if os.readlink("/proc/%d/ns/mnt" % (pid,)) != "mnt:[%s]" % (inode,):
            return None
    except OSError:
        return None
    return pid


def _spawn(argv, log, env):
    with open(log, "ab") as output:
        return subprocess.Popen(
            [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, env=env, cwd="/",
            start_new_session=True)


def _daemon_environment(node):
    env = node.environment()
    env["PATH"] = STANDARD_PATH
    return env


def start_dockerd(node):
    """
    Start a node's dockerd in its namespaces (not waiting for it).

    :param Node node: The node.
    :return: The ``Popen`` (its pid is dockerd's: ``nsenter`` execs it).
    """
    node.data_root.mkdir(parents=True, exist_ok=True)
    node.dockerd_log.write_bytes(b"")
    process = _spawn(node.nsenter() + [
        "dockerd",
        "--config-file", node.daemon_json,
        "-H", "unix://%s" % (node.docker_socket,),
        "-H", "unix:///var/run/docker.sock",
        "--data-root", node.data_root,
        "--pidfile", "/var/run/docker.pid",
        "--bip", "10.98.%d.1/24" % (node.index,),
        "--default-address-pool", "base=10.97.%d.0/24,size=28" % (node.index,),
        "--cgroup-parent", node.cgroup_parent,
        "--shutdown-timeout", "2",
    ], node.dockerd_log, _daemon_environment(node))
    node.dockerd_pid_file.write_text("%d\n" % (process.pid,))
    return process


def wait_dockerd(node, process):
    """
    Wait until a node's dockerd answers its API.

    :param Node node: The node.
    :param process: Its ``Popen`` or ``None`` if it was already running.
    :raises LabError: If it exits or does not answer in time.
    """
    api = _lab_images.DockerAPI(str(node.docker_socket), timeout=5)
    deadline = time.monotonic() + DOCKERD_TIMEOUT
    while not api.ping():
        if process is not None and process.poll() is not None:
            raise LabError("%s: dockerd exited (%d): %s" % (
                node.name, process.returncode, _log_tail(node.dockerd_log)))
        if time.monotonic() > deadline:
            raise LabError("%s: dockerd did not answer within %ds: %s" % (
                node.name, DOCKERD_TIMEOUT, _log_tail(node.dockerd_log)))
        time.sleep(0.03)


def _log_tail(path):
    text = _read(path) or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "(no output; see %s)" % (path,)


def start_sshd(node):
    """
    Start a node's sshd in its namespaces.

    :param Node node: The node.
    :return: The ``Popen``.
    """
    node.sshd_log.write_bytes(b"")
    process = _spawn(node.nsenter() + [
        shutil.which("sshd", path=STANDARD_PATH), "-D", "-f", node.sshd_config,
        "-E", node.sshd_log,
    ], os.devnull, _daemon_environment(node))
    return process


def sshd_listening(pid):
    """
    :param int pid: A process in a node's network namespace.
    :return: ``True`` if that namespace has a TCP socket listening on
        port 22.
    """
    for table in ("tcp", "tcp6"):
        for line in (_read("/proc/%d/net/%s" % (pid, table)) or "") \
                .splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(":0016") and fields[3] == "0A":
                return True
    return False


def wait_sshd(node, process):
    """
    Wait until a node's sshd listens.

    :param Node node: The node.
    :param process: Its ``Popen``.
    :raises LabError: If it exits or does not listen in time.
    """
    deadline = time.monotonic() + SSHD_TIMEOUT
    while not sshd_listening(process.pid):
        if process.poll() is not None:
            raise LabError("%s: sshd exited (%d): %s" % (
                node.name, process.returncode, _log_tail(node.sshd_log)))
        if time.monotonic() > deadline:
            raise LabError("%s: sshd not listening after %ds" % (
                node.name, SSHD_TIMEOUT))
        time.sleep(0.02)


# ---------------------------------------------------------------------------
# ZFS

class ZfsLock:
    """
    A host-wide lock (``flock`` on zfs-fuse's socket directory, so no file
    is created) held around the lab's pool operations.

    zfs-fuse is old code shared by every user of the machine; the lab never
    asks it for two pool creations or destructions at once.
    """

    def __init__(self, timeout=LOCK_TIMEOUT):
        """
        :param float timeout: Seconds to wait for the lock.
        """
        self._timeout = timeout
        self._fd = None

    def __enter__(self):
        try:
            self._fd = os.open(ZFS_SOCKET_DIR, os.O_RDONLY)
        except OSError:
            return self
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._fd)
                    self._fd = None
                    raise LabError("ZFS lock on %s held for %ds" % (
                        ZFS_SOCKET_DIR, self._timeout))
                time.sleep(0.05)

    def __exit__(self, *exc_info):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def imported_pools():
    """
    :return: The names of all pools the ZFS daemon has imported (none when
        no daemon runs: pools die with it).
    """
    if not zfs_fuse_pids():
        return set()
    return set(run(["zpool", "list", "-H", "-o", "name"],
                   timeout=30).stdout.split())


def retry_busy(argv, timeout=ZFS_BUSY_TIMEOUT):
    """
    Run a ZFS command, retrying while zfs-fuse says the target is busy
    (it does for a moment after any mount, unmount or process exit).

    :param list argv: The command.
    :param float timeout: Seconds to keep retrying.
    :return: The completed process.
    :raises LabError: If it fails for another reason or stays busy.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = run(argv, check=False, timeout=60)
        if result.returncode == 0:
            return result
        if "busy" not in result.stderr or time.monotonic() > deadline:
            raise LabError("%s: %s" % (_short(argv), _last_line(result)))
        time.sleep(0.25)


def pool_is_ours(node):
    """
    :param Node node: A node.
    :return: ``True`` if the imported pool of that name lives on the node's
        backing file.
    """
    status = run(["zpool", "status", node.pool], check=False)
    return str(node.pool_file) in status.stdout


def ensure_pool(node):
    """
    Import or create a node's pool and make sure it is mounted.

    :param Node node: The node.
    :raises LabError: If a foreign pool has the name.
    """
    with ZfsLock():
        _ensure_pool(node)


def _ensure_pool(node):
    if node.pool in imported_pools():
        if not pool_is_ours(node):
            raise LabError("%s: pool %s exists and is not this lab's" % (
                node.name, node.pool))
        values = run(["zfs", "get", "-H", "-o", "value", "mounted",
                      node.pool]).stdout.split()
        if values != ["yes"]:
            run(["zfs", "mount", node.pool])
        return
    node.pool_file.parent.mkdir(parents=True, exist_ok=True)
    if node.pool_file.exists():
        result = run(["zpool", "import", "-d", node.pool_file.parent,
                      "-o", "cachefile=none", node.pool], check=False)
        if result.returncode == 0:
            return
        node.pool_file.unlink()
    with open(node.pool_file, "wb") as f:
        f.truncate(POOL_SIZE)
    # cachefile=none: the pool is never re-imported behind our back when
    # zfs-fuse restarts.
    run(["zpool", "create", "-o", "cachefile=none", "-m", node.zfs_mount,
         node.pool, node.pool_file])


def destroy_pool(node):
    """
    Destroy a node's pool (if it is the lab's) and its backing file.

    :param Node node: The node.
    """
    with ZfsLock():
        if node.pool in imported_pools() and pool_is_ours(node):
            retry_busy(["zpool", "destroy", "-f", node.pool])
    shutil.rmtree(node.pool_file.parent, ignore_errors=True)


def cgroup_roots():
    """
    :return: Mount points of the host's cgroup hierarchies.
    """
    return [e.point for e in mount_table() if e.fstype in ("cgroup",
                                                            "cgroup2")]


def remove_cgroups(node):
    """
    Remove the node's container cgroups (dockerd leaves the parent).

    :param Node node: The node.
    """
    deadline = time.monotonic() + KILL_TIMEOUT
    for root in cgroup_roots():
        top = os.path.join(root, node.cgroup_parent.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LabError("cgroup %s stays busy" % (directory,))
                    time.sleep(0.05)


# ---------------------------------------------------------------------------
# Discovery, up and down

def _only_kept(path, lab):
    # A node state directory holding nothing but its Docker data root is
    # what down leaves on purpose, not a leftover.
    if path.parent != lab.state:
        return False
    try:
        return set(os.listdir(path)) <= {"docker"}
    except OSError:
        return False


def discover_nodes(lab):
    """
    Find the indices of every node with anything left on the host: a
    namespace, runtime or state directory, pool or cgroup.

    :param Lab lab: The lab.
    :return: A sorted list of indices.
    """
    found = set()
    netns_pattern = re.compile(r"%s-node([1-9][0-9]*)$" % (lab.prefix,))
    node_pattern = re.compile(r"node([1-9][0-9]*)$")
    pool_pattern = re.compile(re.escape(lab.pool_name("node")) +
                              r"([1-9][0-9]*)$")
    listings = [(Path("/run/netns"), netns_pattern),
                (lab.runtime, node_pattern), (lab.state, node_pattern),
                (lab.pools_dir, node_pattern)]
    listings += [(Path(root), netns_pattern) for root in cgroup_roots()]
    for directory, pattern in listings:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            match = pattern.match(name)
            if match and not _only_kept(directory / name, lab):
                found.add(int(match.group(1)))
    if zfs_fuse_pids():
        try:
            for pool in imported_pools():
                match = pool_pattern.match(pool)
                if match:
                    found.add(int(match.group(1)))
        except LabError:
            pass
    return sorted(found)


def parallel(function, items):
    """
    Apply ``function`` to every item in threads; re-raise the first error.

    :param function: One-argument callable.
    :param list items: The arguments.
    :return: The results, in order.
    """
    items = list(items)
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(function, item) for item in items]
        return [future.result() for future in futures]


def teardown_machines(lab, machines, purge=False):
    """
    Remove machines: processes, namespaces, pools, cgroups, runtime and
    state directories (but nodes' Docker data roots, unless ``purge``).

    :param Lab lab: The lab.
    :param list machines: :class:`Machine` values.
    :param bool purge: Also remove the Docker data roots.
    """
    kill_machines(machines)
    for machine in machines:
        unmount_namespace_files(machine)
        delete_netns(machine.netns)
    nodes = [m for m in machines if m.is_node]
    for node in nodes:
        destroy_pool(node)
    for node in nodes:
        remove_cgroups(node)
    for machine in machines:
        shutil.rmtree(machine.run_dir, ignore_errors=True)
        # A node's Docker data root is kept (unless purged): the next up
        # resets it to a fresh host's state, faster than loading images.
        keep = {"docker"} if machine.is_node and not purge else set()
        if machine.state_dir.is_dir():
            for child in machine.state_dir.iterdir():
                if child.name in keep:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()
            if not keep:
                shutil.rmtree(machine.state_dir, ignore_errors=True)
        if machine.is_node:
            for log in (machine.dockerd_log, machine.sshd_log):
                if log.exists():
                    log.unlink()


def prepare_machines(lab, machines, rebuild):
    """
    Network namespace, link and mount namespace of every machine.  A
    machine whose namespaces have to be recreated loses its processes first.

    :param Lab lab: The lab.
    :param list machines: The machines.
    :param bool rebuild: Force new mount namespaces.
    :return: The names of the machines whose mount namespace is new (their
        daemons must be started).
    """
    stale = [m for m in machines
             if rebuild or namespace_inode(m.netns_path) is None
             or namespace_inode(m.mnt_file) is None]
    kill_machines(stale)
    for machine in stale:
        unmount_namespace_files(machine)
    # Sequential: the first ``ip netns add`` sets up /run/netns.
    fresh = {m.name: ensure_netns(m.netns) for m in machines}

    def prepare(machine):
        if fresh[machine.name] and machine.is_node:
            # Like a fresh host: forwarding off until dockerd turns it on,
            # which makes dockerd set the FORWARD policy to DROP.
            sysctl(machine.netns, {"net.ipv4.ip_forward": 0})
        ensure_link(lab, machine, fresh[machine.name])
        return ensure_mount_namespace(lab, machine)
    created = parallel(prepare, machines)
    return {m.name for m, new in zip(machines, created) if new}


def up(lab, count, log):
    """
    Bring the lab to exactly ``count`` healthy nodes plus the client,
    repairing whatever is missing or broken and removing extra nodes.

    :param Lab lab: The lab.
    :param int count: Number of nodes, 1..MAX_NODES.
    :param log: Called with progress lines.
    :return: The lab description written to ``lab.json``.
    :raises LabError: On any failure.
    """
    started = time.monotonic()
    trace = _tracer(log, started)
    preflight(lab)
    nodes = [lab.node(i) for i in range(1, count + 1)]
    client = lab.client()
    lab.state.mkdir(parents=True, exist_ok=True)
    with StateLock(lab.state):
        rebuild = prepare_host(lab, nodes)
        trace("host prepared")
        extra = [lab.node(i) for i in discover_nodes(lab) if i > count]
        if extra:
            log("removing %s" % (", ".join(n.name for n in extra),))
            teardown_machines(lab, extra)
        write_lab_files(lab, nodes)
        for machine in [client] + nodes:
            write_machine_files(lab, machine, nodes)
        ensure_bridge(lab)
        trace("files and bridge")
        restart = prepare_machines(lab, [client] + nodes, rebuild)
        trace("namespaces")
        restart |= {n.name for n in nodes
                    if not daemon_pid(n, n.dockerd_pid_file, "dockerd")}
        starting = [n for n in nodes if n.name in restart]
        # containerd, shims or an sshd left by a dead dockerd go too.
        kill_machines(starting)
        dockerds = {n.name: start_dockerd(n) for n in starting}
        dockerd_started = time.monotonic()
        ready = {}
        trace("dockerd started")

        # One at a time (see ZfsLock), while the dockerds start.
        for node in nodes:
            ensure_pool(node)
        trace("pools")

        def daemons(node):
            wait_dockerd(node, dockerds.get(node.name))
            ready[node.name] = time.monotonic() - dockerd_started
            if node.name in restart or \
                    not daemon_pid(node, node.sshd_pid_file, "sshd"):
                wait_sshd(node, start_sshd(node))
        parallel(daemons, nodes)
        trace("dockerd and sshd")
        if starting:
            trace("dockerd: slowest answered %.3fs after start" % (
                max(ready[n.name] for n in starting),))
        try:
            images = _lab_images.ensure_cache(
                lab.images_dir,
                _lab_images.DockerAPI(str(nodes[0].docker_socket)), log)
        except (_lab_images.ImageError, OSError) as e:
            raise LabError("images: %s" % (e,))

        def finish(task):
            kind, node = task
            if kind == "ssh":
                return check_ssh(lab, client, node)
            api = _lab_images.DockerAPI(str(node.docker_socket))
            try:
                if node.name in restart:
                    # A node that boots is a fresh host, even though its
                    # data root (with the images) survived the last down.
                    api.reset(images)
                _lab_images.ensure_loaded(lab.images_dir, api, images)
            except (_lab_images.ImageError, OSError) as e:
                raise LabError("%s: images: %s" % (node.name, e))
        parallel(finish, [(kind, node) for node in nodes
                          for kind in ("images", "ssh")])
        trace("images loaded, ssh checked")
        description = describe(lab, nodes, client, images)
        write_json(lab.description_file, description)
    log("lab up: %d node%s (%s) in %.2fs; restarted: %s" % (
        count, "" if count == 1 else "s",
        ", ".join("%s=%s" % (n.name, n.address) for n in nodes),
        time.monotonic() - started,
        ", ".join(sorted(restart)) or "nothing"))
    return description


def _tracer(log, started):
    """
    :return: A function logging a step's time when ``FLOCKER_LAB_TRACE`` is
        set (for finding where ``up`` spends its time), else doing nothing.
    """
    if not os.environ.get("FLOCKER_LAB_TRACE"):
        return lambda step: None
    last = [started]

    def trace(step):
        now = time.monotonic()
        log("%6.3fs %6.3fs %s" % (now - started, now - last[0], step))
        last[0] = now
    return trace


def check_ssh(lab, client, node):
    """
    Log in from the client to a node and check the node command is the
    lab's.

    :param Lab lab: The lab.
    :param Machine client: The client.
    :param Node node: The node.
    :raises LabError: If the login fails or finds another ``flocker-node``.
    """
    result = run(client.nsenter() + ["ssh", node.name, "which",
                                     "flocker-node"],
                 env=client.environment(), timeout=30, check=False)
    found = result.stdout.strip()
    expected = str(lab.bin_dir / "flocker-node")
    if result.returncode != 0 or found != expected:
        raise LabError("%s: ssh from client: %s" % (
            node.name, "found %s, expected %s" % (found, expected)
            if result.returncode == 0 else _last_line(result)))


def describe(lab, nodes, client, images):
    """
    :return: The JSON-able description of a running lab (``lab.json``).
    """
    return {
        "version": DESCRIPTION_VERSION,
        "prefix": lab.prefix,
        "state": str(lab.state),
        "runtime": str(lab.runtime),
        "bin": str(lab.bin_dir),
        "nodes": [node.describe() for node in nodes],
        "client": client.describe(),
        "ssh": {
            "identity": str(lab.identity),
            "known_hosts": str(lab.known_hosts),
            "config": str(lab.ssh_config),
        },
        "images": images,
    }


def down(lab, purge, log):
    """
    Remove everything the lab put on the host.  Safe to repeat, and works
    on a half-built or half-removed lab.

    :param Lab lab: The lab.
    :param bool purge: Also delete the state directory (keys, image cache,
        logs, the nodes' Docker data roots).
    :param log: Called with progress lines.
    :raises LabError: On a failure (the rest is still attempted next time).
    """
    if os.geteuid() != 0:
        raise LabError("must run as root")
    started = time.monotonic()
    lock = StateLock(lab.state) if lab.state.is_dir() else None
    if lock:
        lock.__enter__()
    try:
        indices = discover_nodes(lab)
        machines = [lab.client()] + [lab.node(i) for i in indices]
        teardown_machines(lab, machines, purge)
        delete_netns(lab.bridge_netns)
        if mounted(lab.zfs_base):
            deadline = time.monotonic() + ZFS_BUSY_TIMEOUT
            while run(["umount", lab.zfs_base], check=False).returncode:
                if time.monotonic() > deadline:
                    # Left-overs of a dead ZFS daemon (stale FUSE mounts)
                    # never become free: detach them.
                    log("%s stays busy: detaching it" % (lab.zfs_base,))
                    run(["umount", "--lazy", "--recursive", lab.zfs_base])
                    break
                time.sleep(0.1)
        shutil.rmtree(lab.zfs_base, ignore_errors=True)
        shutil.rmtree(lab.pools_dir, ignore_errors=True)
        shutil.rmtree(lab.zfs_exec.parent, ignore_errors=True)
        if lab.runtime.exists():
            zfs_pid = read_pid(lab.runtime / "zfs-fuse.pid")
            while mounted(lab.runtime):
                run(["umount", lab.runtime])
            shutil.rmtree(lab.runtime, ignore_errors=True)
        else:
            zfs_pid = None
        record = load_record(lab)
        undo_run_netns(record)
        stop_zfs_daemon(record, zfs_pid)
        for path in (lab.description_file, lab.host_record, lab.hosts_file,
                     lab.known_hosts, lab.ssh_config):
            if path.exists():
                path.unlink()
        if purge and lab.state.exists():
            shutil.rmtree(lab.state)
    finally:
        if lock:
            lock.__exit__(None, None, None)
    log("lab down: removed %d node%s in %.2fs" % (
        len(indices), "" if len(indices) == 1 else "s",
        time.monotonic() - started))


def undo_run_netns(record):
    """
    Undo iproute2's ``/run/netns`` self-bind if the lab caused it and no
    namespace is left in it.

    :param dict record: The host record.
    """
    path = Path("/run/netns")
    if not path.is_dir() or os.listdir(path):
        return
    if record.get("run_netns_mount") and mounted(path):
        run(["umount", path])
    if record.get("run_netns_dir") and not mounted(path):
        path.rmdir()


def stop_zfs_daemon(record, pid):
    """
    Stop zfs-fuse if the lab started it and no pool is left.

    :param dict record: The host record.
    :param int pid: zfs-fuse's pid from the lab's pid file, or ``None``.
    """
    if not record.get("zfs_fuse_started") or pid is None:
        return
    if not process_alive(pid) or process_name(pid) != "zfs-fuse":
        return
    if imported_pools():
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_TIMEOUT
    while process_alive(pid):
        if time.monotonic() > deadline:
            raise LabError("zfs-fuse (pid %d) did not stop" % (pid,))
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# status, address, run

def load_description(lab):
    """
    :param Lab lab: The lab.
    :return: The running lab's description.
    :raises LabError: If the lab is not up.
    """
    try:
        return json.loads(lab.description_file.read_text())
    except (OSError, ValueError):
        raise LabError("the lab is not up (run: admin/lab up N)")


def node_health(node):
    """
    :param Node node: A node.
    :return: ``{part: bool}`` for the node's namespaces, daemons and pool.
    """
    dockerd = daemon_pid(node, node.dockerd_pid_file, "dockerd")
    sshd = daemon_pid(node, node.sshd_pid_file, "sshd")
    return {
        "netns": namespace_inode(node.netns_path) is not None,
        "mntns": namespace_inode(node.mnt_file) is not None,
        "dockerd": bool(dockerd) and _lab_images.DockerAPI(
            str(node.docker_socket), timeout=5).ping(),
        "sshd": bool(sshd) and sshd_listening(sshd),
        "pool": zfs_answers() and node.pool in imported_pools(),
        "zfs-mount": mounted(node.zfs_mount),
    }


def status(lab, out):
    """
    Print the lab's health.

    :param Lab lab: The lab.
    :param out: Text stream.
    :return: 0 if up and healthy, 1 if degraded, 3 if not up.
    """
    try:
        description = load_description(lab)
    except LabError:
        left = discover_nodes(lab)
        if left:
            out.write("lab down, leftovers of nodes %s (run: admin/lab "
                      "down)\n" % (", ".join(map(str, left)),))
            return 1
        out.write("lab down\n")
        return 3
    nodes = [lab.node(i + 1) for i in range(len(description["nodes"]))]
    client = lab.client()
    healthy = True
    out.write("%-8s %-12s %s\n" % ("MACHINE", "ADDRESS", "PARTS"))
    client_ok = (namespace_inode(client.netns_path) is not None and
                 namespace_inode(client.mnt_file) is not None)
    healthy &= client_ok
    out.write("%-8s %-12s %s\n" % (client.name, client.address,
                                   "ok" if client_ok else "BROKEN"))
    for node in nodes:
        parts = node_health(node)
        healthy &= all(parts.values())
        out.write("%-8s %-12s %s\n" % (node.name, node.address, " ".join(
            "%s=%s" % (k, "ok" if v else "DOWN") for k, v in parts.items())))
    out.write("lab %s: %d nodes, state %s\n" % (
        "up" if healthy else "DEGRADED (run: admin/lab up %d)"
        % (len(nodes),), len(nodes), lab.state))
    return 0 if healthy else 1


def find_machine(lab, name):
    """
    :param Lab lab: The lab.
    :param str name: ``client`` or ``nodeI``.
    :return: The machine's entry in the running lab's description.
    :raises LabError: If the lab is down or has no such machine.
    """
    description = load_description(lab)
    if name == "client":
        return description["client"]
    for node in description["nodes"]:
        if node["name"] == name:
            return node
    raise LabError("no machine %r in the lab (machines: client, %s)" % (
        name, ", ".join(n["name"] for n in description["nodes"])))


def run_command(lab, name, argv):
    """
    Replace this process by ``argv`` running on a lab machine.

    :param Lab lab: The lab.
    :param str name: ``client`` or ``nodeI``.
    :param list argv: The command.
    :raises LabError: If the machine is unknown or its namespaces gone.
    """
    machine = find_machine(lab, name)
    for key in ("netns", "mntns", "utsns"):
        if namespace_inode(machine[key]) is None:
            raise LabError("%s: namespace %s is gone (run: admin/lab up)"
                           % (name, machine[key]))
    env = dict(os.environ)
    env.update(machine["env"])
    cwd = os.getcwd()
    nsenter = shutil.which("nsenter", path=STANDARD_PATH)
    os.execve(nsenter, [
        "nsenter", "--net=" + machine["netns"], "--mount=" + machine["mntns"],
        "--uts=" + machine["utsns"], "--wd=" + cwd, "--"] + argv, env)


# ---------------------------------------------------------------------------
# Command line

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise LabError(message)


def parse_count(text):
    """
    :param str text: The ``N`` of ``up N``.
    :return: It as an int.
    :raises LabError: Unless it is a whole number from 1 to MAX_NODES.
    """
    if not re.fullmatch(r"[0-9]+", text or "") or \
            not 1 <= int(text) <= MAX_NODES:
        raise LabError("up: N must be a whole number from 1 to %d, not %r"
                       % (MAX_NODES, text))
    return int(text)


def build_parser():
    """
    :return: The ``admin/lab`` argument parser.
    """
    parser = _Parser(
        prog="admin/lab",
        description="A local multi-node Flocker lab: nodes in namespaces "
        "with their own dockerd, sshd and ZFS pool, plus a client.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    up_parser = commands.add_parser(
        "up", help="start or repair a lab of N nodes (1-%d)" % (MAX_NODES,))
    up_parser.add_argument("count", metavar="N")
    down_parser = commands.add_parser(
        "down", help="remove everything the lab put on this machine")
    down_parser.add_argument("--purge", action="store_true",
                             help="also delete keys, image cache and logs")
    status_parser = commands.add_parser("status", help="show the lab's health")
    status_parser.add_argument("--json", action="store_true",
                               help="print lab.json instead")
    address_parser = commands.add_parser(
        "address", help="print a machine's address")
    address_parser.add_argument("machine", metavar="NODE")
    run_parser = commands.add_parser(
        "run", help="run a command on a machine: run NODE|client -- CMD...")
    run_parser.add_argument("machine", metavar="NODE|client")
    run_parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD")
    return parser


def main(argv, environ, out, err):
    """
    The ``admin/lab`` command.

    :param list argv: Arguments (without the program name).
    :param environ: Environment mapping.
    :param out: Text stream for results.
    :param err: Text stream for progress and errors.
    :return: The exit code.
    """
    def log(message):
        err.write("admin/lab: %s\n" % (message,))
        err.flush()
    try:
        options = build_parser().parse_args(argv)
        lab = Lab.from_environ(environ)
        if options.command == "up":
            up(lab, parse_count(options.count), log)
        elif options.command == "down":
            down(lab, options.purge, log)
        elif options.command == "status":
            if options.json:
                out.write(json.dumps(load_description(lab), indent=2) + "\n")
                return 0
            return status(lab, out)
        elif options.command == "address":
            out.write(find_machine(lab, options.machine)["address"] + "\n")
        elif options.command == "run":
            command = options.argv
            if command and command[0] == "--":
                command = command[1:]
            if not command:
                raise LabError("run: no command given (run NODE -- CMD...)")
            run_command(lab, options.machine, command)
    except LabError as e:
        err.write("admin/lab: %s\n" % (e,))
        return 1
    except KeyboardInterrupt:
        err.write("admin/lab: interrupted\n")
        return 130
    return 0
