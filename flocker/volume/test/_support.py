"""
Test support for the volume package: file-backed ZFS pools, pushes
between volume services of this process (each "node" just a different
pool), and a reactor whose thread pool runs nothing until a test says so.

Test tooling, not product code: it uses blocking ``subprocess.run`` (with
argument vectors and timeouts) outside the reactor.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

from eliot import Action
from eliot.json import json_default
from eliot.twisted import DeferredContext
from twisted.internet.defer import (
    Deferred, DeferredList, fail, maybeDeferred, succeed,
)
from twisted.python.failure import Failure

from flocker._process import MAXIMUM_LINE, OutputLines, ProcessResult
from flocker.testtools import is_root, require
from .._errors import TargetUnreachable, VolumeError
from .._process import close_quietly, make_pipe, pump
from .._remote import check_address, check_remote_words

__all__ = ["LocalRemote", "FilePools", "zfs_missing", "require_zfs",
           "QueuedThreadsReactor"]

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


class _LocalCommand(object):
    """
    The receiving end of one push (or an ``acquire``) run by
    :class:`LocalRemote`: what the push reads and waits for, as from the
    agent's session with another node
    (``flocker.node._peer_remote.AgentRemote``).

    :ivar ended: ``Deferred`` firing with a ``ProcessResult`` once it
        ended; never failing.
    """

    def __init__(self, argv):
        self._argv = argv
        self._stdout = bytearray()
        self._lines = OutputLines(argv, MAXIMUM_LINE, self.kill)
        self.ended = Deferred()

    def message(self, value):
        """
        Send one protocol message to the pushing side (the receiving end's
        ``emit``).
        """
        data = json.dumps(value, default=json_default).encode("utf-8") + (
            b"\n")
        self._stdout += data
        self._lines.feed(data)

    def next_line(self):
        """
        :return: See ``OutputLines.next_line``.
        """
        return self._lines.next_line()

    def kill(self):
        """
        End it now, as a dropped session does (exit code 255).
        """
        self.end(255, b"session killed")

    def end(self, exit_code, stderr=b""):
        """
        End it with ``exit_code`` (once; later calls do nothing).
        """
        if self.ended.called:
            return
        self._lines.close()
        self.ended.callback(ProcessResult(
            argv=self._argv, stdout=bytes(self._stdout), stderr=stderr,
            exit_code=exit_code, signal=None))


class LocalRemote(object):
    """
    Stands in for the agent's ``AgentRemote`` between volume services of
    this process, each a "node" with a pool of its own: the receiving end
    of a push is the target service's own ``receive`` (run with no
    caller, as the operator's), fed the stream through a pipe, so pushes
    run real ``zfs send`` and ``zfs receive`` between the pools; an
    ``acquire`` is the target service's ``acquire``.

    :ivar nodes: ``dict`` of address to volume service (filled in once the
        services are open: they are opened with this remote).
    :ivar failing: ``set`` of ``(address, command)`` pairs whose start
        fails with ``TargetUnreachable``, as the agent's remote reports a
        node it cannot connect to; ``command`` is ``"receive"`` or
        ``"acquire"``.
    :ivar silent: ``set`` of addresses whose receiving ends never answer
        (a stuck node) until killed.
    :ivar cut: ``dict`` of address to a byte count after which the session
        carrying a stream is cut: the receiving end sees the stream end
        there, the pushing side cannot write more, and the session ends
        with exit code 255.
    :ivar linger: ``dict`` of address to ``(gate, exit_code)``: its
        receiving end answers, then its session ends only once the
        ``Deferred`` ``gate`` fired, with that exit code.
    :ivar started: How many receiving ends and acquires were started.
    """

    def __init__(self, reactor=None):
        """
        :param reactor: The reactor running the pipes (the global one if
            ``None``).
        """
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self.nodes = {}
        self.failing = set()
        self.silent = set()
        self.cut = {}
        self.linger = {}
        self.started = 0

    def start(self, address, words):
        """
        Start ``flocker-volume WORDS`` on the node at ``address``: a push's
        receiving end (``[--eliot-task TASK] receive NAME``) or a hand-off's
        ``acquire NAME --snapshot S --node-id ID --json``.

        :return: ``Deferred`` firing with ``(command, stdin_write)``, or
            failing with ``TargetUnreachable``.
        """
        check_address(address)
        argv = ["flocker-volume"] + list(words)
        check_remote_words(argv)
        words = list(words)
        task = None
        if words[:1] == ["--eliot-task"]:
            task, words = words[1], words[2:]
        self.started += 1
        service = self.nodes.get(address)
        if service is None or (address, words[0]) in self.failing:
            return fail(TargetUnreachable(
                "cannot reach node %s: connection refused" % (address,)))
        command = _LocalCommand(argv)
        read_fd, write_fd = make_pipe()
        if address in self.silent:
            command.ended.addBoth(lambda _: close_quietly(read_fd))
            return succeed((command, write_fd))
        if words[0] == "acquire":
            close_quietly(read_fd)
            _, name, _, snapshot, _, node_id, _ = words
            d = maybeDeferred(service.acquire, name, snapshot, node_id)
            d.addCallback(lambda info: command.message(
                {"acquired": info.name, "node_id": service.node_id}))
            self._ended(command, d, 0)
            return succeed((command, write_fd))
        [_, name] = words
        stream = read_fd
        passed = None
        if address in self.cut:
            stream, inner_write = make_pipe()
            passed = pump(self._reactor, read_fd, inner_write,
                          limit=self.cut[address])
        d = _continued(task, service.receive, name, stream, command.message)
        d.addBoth(lambda result: (close_quietly(stream), result)[1])
        code = 0
        if address in self.linger:
            gate, code = self.linger[address]
            d.addBoth(lambda result: gate.addCallback(lambda _: result))
        if passed is not None:
            # The session carrying the stream is cut: whatever the
            # receiving end did, the pushing side sees it end this way.
            d = DeferredList([d, passed], consumeErrors=True)
            d.addCallback(lambda _: command.end(
                255, b"connection to node closed mid-stream"))
            return succeed((command, write_fd))
        self._ended(command, d, code)
        return succeed((command, write_fd))

    def _ended(self, command, done, code):
        """
        End ``command`` once ``done`` fires: with ``code``, or, for a
        ``VolumeError``, with an error line and exit code 1, as the
        agent's peer socket answers.
        """
        def failed(failure):
            if failure.check(VolumeError):
                error = failure.value
                command.message({"error": type(error).__name__,
                                 "message": error.message})
                command.end(1, error.message.encode("utf-8"))
            else:
                command.end(1, failure.getErrorMessage().encode("utf-8"))
        done.addCallbacks(lambda _: command.end(code), failed)


def _continued(task, function, *args):
    """
    Call ``function(*args)`` in the pushing side's eliot task (both ends of
    a push make one tree), as the agent's peer socket does, or outside any
    without one.

    :return: ``Deferred`` firing with its result.
    """
    if task is None:
        return maybeDeferred(function, *args)
    action = Action.continue_task(task_id=task)
    with action.context():
        return DeferredContext(maybeDeferred(function, *args)
                               ).addActionFinish()


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
