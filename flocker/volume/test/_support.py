"""
Test support for the volume package: file-backed ZFS pools, running
``flocker-volume`` for another "node" on this machine, where each node is
just a different pool, and a reactor whose thread pool runs nothing until a
test says so.

Test tooling, not product code: it uses blocking ``subprocess.run`` (with
argument vectors and timeouts) outside the reactor.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from twisted.python.failure import Failure

from flocker.testtools import is_root, require
from .._remote import check_address

__all__ = ["LocalRemote", "FilePools", "zfs_missing", "require_zfs",
           "QueuedThreadsReactor"]

# What ssh prints and returns when it cannot connect.
_UNREACHABLE = ("import sys; sys.stderr.write('ssh: connect to host %s "
                "port 22: Connection refused\\n'); sys.exit(255)")

_REFUSED = ("import sys; sys.stderr.write('root@%s: Permission denied "
            "(publickey).\\n'); sys.exit(255)")


def zfs_missing():
    """
    :return: Why real ZFS tests cannot run here, or ``None`` if they can.
    """
    if not is_root():
        return "ZFS tests need root"
    if shutil.which("zpool") is None or shutil.which("zfs") is None:
        return "ZFS tests need zfs-fuse (zpool/zfs not found)"
    try:
        result = subprocess.run(["zpool", "list", "-H", "-o", "name"],
                                capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the zfs-fuse daemon does not answer"
    if result.returncode != 0:
        return "zfs-fuse is not usable (start the zfs-fuse daemon): %s" % (
            result.stderr.decode("utf-8", "replace").strip(),)
    return None


def require_zfs():
    """
    Skip the calling test (fail it under ``CI=true``) without real ZFS.
    """
    missing = zfs_missing()
    require(missing is None, missing)


def _run(argv, timeout=60):
    return subprocess.run(argv, capture_output=True, timeout=timeout)


class FilePools(object):
    """
    ZFS pools on sparse files in a temporary directory, named
    ``flocker-test-<random>-<label>``, each mounted at a directory of its
    own; :meth:`destroy` removes them all (retrying while zfs-fuse says
    busy).

    The directory is made a shared mount first: mount namespaces created
    while the pools exist (a lab starting up, a container) then receive
    the pools' unmounts instead of keeping private copies of their mounts,
    which would keep zfs-fuse saying "pool is busy" for as long as such a
    namespace lives.
    """

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="flocker-test-pools-")
        _check(["mount", "--bind", self.directory, self.directory])
        _check(["mount", "--make-shared", self.directory])
        self.names = []

    def create(self, label, size="128M"):
        """
        :param str label: A short word naming the pool's role.
        :param str size: Size of the backing file (at least 64M).
        :return: The new pool's name.
        """
        name = "flocker-test-%s-%s" % (uuid.uuid4().hex[:8], label)
        image = os.path.join(self.directory, label + ".img")
        with open(image, "wb") as f:
            f.truncate(_bytes(size))
        mountpoint = os.path.join(self.directory, label)
        _check(["zpool", "create", "-m", mountpoint, name, image])
        self.names.append(name)
        return name

    def destroy(self):
        """
        Destroy every pool created, then the directory.

        :raises RuntimeError: If a pool could not be destroyed (its backing
            file is left in place, so the pool stays usable).
        """
        stuck = []
        for name in self.names:
            for attempt in range(40):
                result = _run(["zpool", "destroy", "-f", name])
                if result.returncode == 0 or b"no such pool" in result.stderr:
                    break
                time.sleep(0.25)
            else:
                stuck.append(name)
        self.names = []
        if stuck:
            raise RuntimeError("test pools could not be destroyed: %s" % (
                ", ".join(stuck),))
        _run(["umount", self.directory])
        shutil.rmtree(self.directory, ignore_errors=True)


def _check(argv):
    result = _run(argv)
    if result.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv), result.stderr
                                              .decode("utf-8", "replace")))


def _bytes(size):
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    if size[-1] in units:
        return int(size[:-1]) * units[size[-1]]
    return int(size)


class LocalRemote(object):
    """
    Stands in for ``SSHRemote``: runs ``python -m flocker.volume.script
    --pool POOL ...`` (or ``zfs ...`` for a direct push) locally for the pool
    registered for an address.

    :ivar pools: ``dict`` of address to pool name.
    :ivar failing: ``set`` of ``(address, command)`` pairs that fail the
        way ssh does when it cannot connect (exit code 255); ``command`` is
        the ``flocker-volume`` subcommand, or ``"zfs"`` for a direct push.
    :ivar silent: ``set`` of addresses whose commands never answer (a
        stuck node).
    :ivar cut: ``dict`` of address to a byte count after which the
        connection carrying a stream is cut (both ends see it die).
    :ivar linger: ``dict`` of address to ``(gate, exit_code)``: its
        ``flocker-volume receive`` answers, then ends only once the file
        ``gate`` exists, with that exit code (see ``_linger``).
    :ivar key: What :meth:`identity` answers, standing for the digest of
        the key logged in with (``None``: this remote cannot tell).
    :ivar refusing: ``dict`` of address to ``(count, key)``: its next
        ``count`` commands are refused the way ssh reports a key the node
        does not take, and :attr:`key` becomes ``key`` as each starts (a
        rotation switching the node's key after ssh read the old one).
    :ivar started: How many commands were started.
    """

    def __init__(self, pools, python=sys.executable):
        self.pools = dict(pools)
        self.failing = set()
        self.silent = set()
        self.cut = {}
        self.linger = {}
        self.key = None
        self.refusing = {}
        self.started = 0
        self._python = python

    def identity(self):
        """
        See ``flocker.volume._remote.identity_of``.
        """
        return self.key

    def argv(self, address, arguments, command=None):
        check_address(address)
        if command is not None:
            key, argv = command[0], list(command) + list(arguments)
        else:
            # The subcommand, after global options (each with a value).
            words = list(arguments)
            while words and words[0].startswith("--"):
                words = words[2:]
            key = words[0]
            argv = [self._python, "-m", "flocker.volume.script",
                    "--pool", self.pools.get(address, "-")] + list(arguments)
        self.started += 1
        if address not in self.pools or (address, key) in self.failing:
            return [self._python, "-c", _UNREACHABLE % (address,)]
        if self.refusing.get(address, (0, None))[0]:
            count, self.key = self.refusing[address]
            self.refusing[address] = (count - 1, self.key)
            return [self._python, "-c", _REFUSED % (address,)]
        if address in self.silent:
            return [self._python, "-c", "import time; time.sleep(600)"]
        if "receive" in arguments and address in self.cut:
            argv = [self._python, "-m", "flocker.volume.test._cut",
                    str(self.cut[address]), "--"] + argv
        if key == "receive" and address in self.linger:
            gate, code = self.linger[address]
            argv = [self._python, "-m", "flocker.volume.test._linger",
                    gate, str(code), "--"] + argv
        return argv


class _QueuedThreadPool(object):
    """
    The part of a ``ThreadPool`` that ``deferToThreadPool`` uses: calls
    are queued, and run (in the test's thread) by :meth:`run_all`.

    :ivar queued: ``(on_result, function, args, kwargs)`` of each call not
        yet run.
    """

    def __init__(self):
        self.queued = []

    def callInThreadWithCallback(self, on_result, function, *args, **kw):
        self.queued.append((on_result, function, args, kw))

    def run_all(self):
        """
        Run every queued call, reporting each result as a thread would.
        """
        queued, self.queued = self.queued, []
        for on_result, function, args, kw in queued:
            try:
                result = function(*args, **kw)
            except Exception:
                on_result(False, Failure())
            else:
                on_result(True, result)


class QueuedThreadsReactor(object):
    """
    The parts of ``IReactorThreads`` that ``deferToThreadPool`` uses, with
    a thread pool that runs nothing until told (``pool.run_all()``): no
    real thread in a unit test.

    :ivar pool: The thread pool.
    """

    def __init__(self):
        self.pool = _QueuedThreadPool()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, function, *args, **kw):
        function(*args, **kw)
