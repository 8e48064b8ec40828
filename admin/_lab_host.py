"""
Host primitives for Flocker's local lab: running commands without ever
hanging, reading mounts and processes, locks, network namespaces.

See ``_lab.py`` for the lab's layout and life cycle.
"""

import fcntl
import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from _lab_model import LabError, STANDARD_PATH, ZFS_SOCKET_DIR

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
        raise LabError("%s: %s" % (_short(argv), last_line(result)))
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


def last_line(result):
    text = (result.stderr.strip() or result.stdout.strip()
            or "exit code %d" % (result.returncode,))
    return text.splitlines()[-1].strip()


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


def read_file(path):
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
    stat = read_file("/proc/%d/stat" % (pid,))
    if stat is None:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def process_name(pid):
    """
    :param int pid: A process id.
    :return: Its ``comm`` or ``None``.
    """
    comm = read_file("/proc/%d/comm" % (pid,))
    return comm.strip() if comm else None


def read_pid(path):
    """
    :param Path path: A pid file.
    :return: The pid in it, or ``None``.
    """
    text = read_file(path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def _ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = read_file("/proc/%d/stat" % (pid,))
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
    for line in (read_file("/proc/%d/cgroup" % (pid,)) or "").splitlines():
        path = line.split(":", 2)[-1]
        if any(path == c or path.startswith(c + "/") for c in cgroups):
            return True
    cmdline = read_file("/proc/%d/cmdline" % (pid,)) or ""
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


def _flock_within(fd, timeout, interval, message):
    """
    Take an exclusive ``flock`` on ``fd``, trying every ``interval`` seconds
    for up to ``timeout`` seconds.

    :raises LabError: With ``message`` when the time is up; ``fd`` is then
        closed.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise LabError(message)
            time.sleep(interval)


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
        _flock_within(self._fd, self._timeout, 0.1,
                      "another admin/lab command holds %s (waited %ds)" % (
                          self._directory, self._timeout))
        return self

    def __exit__(self, *exc_info):
        os.close(self._fd)


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


def make_private_mount(path):
    """
    Bind a directory onto itself with private propagation (idempotent).

    :param Path path: The directory.
    """
    if not mounted(path):
        run(["mount", "--bind", path, path])
    run(["mount", "--make-private", path])


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


def log_tail(path):
    text = read_file(path) or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "(no output; see %s)" % (path,)


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
        try:
            _flock_within(self._fd, self._timeout, 0.05,
                          "ZFS lock on %s held for %ds" % (
                              ZFS_SOCKET_DIR, self._timeout))
        except LabError:
            self._fd = None
            raise
        return self

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
            raise LabError("%s: %s" % (_short(argv), last_line(result)))
        time.sleep(0.25)


def cgroup_roots():
    """
    :return: Mount points of the host's cgroup hierarchies.
    """
    return [e.point for e in mount_table()
            if e.fstype in ("cgroup", "cgroup2")]


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
