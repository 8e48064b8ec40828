"""
Tests for ``flocker.volume._service``: the real volume service on
file-backed zfs-fuse pools (three "nodes" on this machine, each a pool,
pushing to each other through :class:`LocalRemote`, which hands each push
to the target service's receiving end in this process), plus its pure
parts.
"""

import errno
import json
import os
import subprocess
import time
from contextlib import contextmanager

from eliot import add_destinations, remove_destination
from twisted.internet.defer import (
    Deferred, DeferredList, fail, gatherResults, maybeDeferred, succeed,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import run_in_reactor, temporary_path
from flocker.volume._errors import (
    NoSuchVolume, NotOwner, OutOfSpace, RemoteError, StaleEpoch,
    StreamRejected, TargetUnreachable, VolumeError, VolumeInUse, ZFSError,
)
from flocker.volume import _push
from flocker.volume._policy import GroupLease
from flocker.volume._logging import (
    LATE_REMOTE_FAILURE, ZFS_COMMAND,
)
from flocker._process import ProcessResult
from flocker.volume._remote import remote_error
from flocker.volume._service import (
    VolumeService, open_volume_service, processes_using, snapshot_name,
)
from flocker.volume._capabilities import OPENZFS, ZFS_FUSE, ZFSCapabilities
from flocker.volume._stream import (
    RECEIVE_IDLE_TIMEOUT, StreamTooLarge, receive_abandoned, stream_limit,
)
from flocker.volume._api import FOLLOWER_SNAPSHOTS
from flocker.volume._zfs import EPOCH, OWNER, Dataset, ZFSPool

from ._interface import make_ivolumeservice_tests
from ._support import (
    FilePools, LocalRemote, QueuedThreadsReactor, require_zfs,
)

ENV = dict(os.environ)


class ZFSNodes(object):
    """
    The ``_interface`` fixture for real services: pools ``a`` and ``b``
    (160 MiB) and ``c`` (64 MiB), each a node whose address maps to its
    service in a :class:`LocalRemote`.
    """

    big = 48 * 1024 * 1024

    def __init__(self, case):
        require_zfs()
        self.pools = FilePools()
        case.addCleanup(self._cleanup)
        self._held = []
        names = {"10.0.0.1": self.pools.create("a", "160M"),
                 "10.0.0.2": self.pools.create("b", "160M"),
                 "10.0.0.3": self.pools.create("c", "64M")}
        self.remote = LocalRemote()
        self._addresses = {}

        def open_all(reactor):
            return gatherResults([
                open_volume_service(reactor, pool, ENV, remote=self.remote)
                for pool in names.values()])
        self.a, self.b, self.c = run_in_reactor(open_all)
        for address, service in zip(names, (self.a, self.b, self.c)):
            self._addresses[service] = address
            self.remote.nodes[address] = service

    def _cleanup(self):
        for f in self._held:
            f.close()
        self.pools.destroy()

    def address(self, service):
        return self._addresses[service]

    def call(self, method, *args, **kwargs):
        def called(reactor):
            # Once what the call queued (pruning) is over too: the tests
            # look at the pools next.
            return maybeDeferred(method, *args, **kwargs).addBoth(
                lambda result: gatherResults([
                    service.settled() for service in (self.a, self.b, self.c)
                ]).addCallback(lambda _: result))
        return run_in_reactor(called, timeout=120)

    @contextmanager
    def _mounted(self, service, name):
        """
        The volume's mountpoint, mounted for the duration if it was not
        (followers are kept unmounted).
        """
        dataset = self.call(service.pool.get, name)
        if dataset is None:
            raise NoSuchVolume(name)
        if dataset.mounted:
            yield dataset.mountpoint
            return
        self.call(service.pool.mount, name)
        try:
            yield dataset.mountpoint
        finally:
            self.call(service.pool.unmount, name)

    def write(self, service, name, path, data):
        with self._mounted(service, name) as mountpoint:
            try:
                with open(os.path.join(mountpoint, path), "wb") as f:
                    f.write(data)
            except OSError as e:
                if e.errno in (errno.EDQUOT, errno.ENOSPC):
                    raise OutOfSpace(str(e))
                if e.errno == errno.EROFS:
                    raise NotOwner(str(e))
                raise

    def read(self, service, name, path):
        with self._mounted(service, name) as mountpoint:
            with open(os.path.join(mountpoint, path), "rb") as f:
                return f.read()

    def hold(self, service, name):
        mountpoint = self.call(service.mountpoint, name).path
        self._held.append(open(os.path.join(mountpoint, "data"), "rb"))

    def fail(self, address, command):
        self.remote.failing = set(
            item for item in self.remote.failing if item[0] != address)
        if command is not None:
            self.remote.failing.add((address, command))

    def cut(self, address, count):
        if count is None:
            self.remote.cut.pop(address, None)
        else:
            self.remote.cut[address] = count

    def read_aside(self, service, dataset, path):
        name, dot, rest = dataset.partition(".")
        self.call(service.pool.mount, name, dot + rest)
        try:
            mountpoint = self.call(service.pool.get, name, dot + rest
                                   ).mountpoint
            with open(os.path.join(mountpoint, path), "rb") as f:
                return f.read()
        finally:
            self.call(service.pool.unmount, name, dot + rest)


class VolumeServiceTests(make_ivolumeservice_tests(ZFSNodes)):
    """
    ``VolumeService`` on zfs-fuse behaves like a volume service.
    """


def _zfs(*argv):
    return subprocess.run(["zfs"] + list(argv), capture_output=True,
                          timeout=60, check=True).stdout.decode("utf-8")


def _logged(function, *args):
    """
    Call ``function``, collecting the eliot messages logged meanwhile (a
    push's include the receiving side's).

    :return: ``(result, messages)``.
    """
    messages = []
    # The first destination added also gets what eliot buffered before:
    # only what is logged from now on counts.
    start = time.time()
    add_destinations(messages.append)
    try:
        result = function(*args)
    finally:
        remove_destination(messages.append)
    return result, [message for message in messages
                    if message["timestamp"] >= start]


def _open_gate_at(case, gate, matches):
    """
    Fire ``gate`` (see :class:`LocalRemote`'s ``linger``), in the reactor's
    next turn, when a message ``matches`` is logged, for the rest of the
    test ``case``.

    :param matches: Called with each eliot message; true for the one that
        opens the gate.
    """
    from twisted.internet import reactor
    opened = []

    def destination(message):
        if matches(message) and not opened:
            opened.append(message)
            reactor.callFromThread(gate.callback, None)
    add_destinations(destination)
    case.addCleanup(remove_destination, destination)


def _commands(messages, pool):
    """
    :return: The argument vectors of the ``zfs`` commands logged in
        ``messages`` that ran on ``pool`` (naming it or one of its datasets
        last), in the order they started.
    """
    return [message["argv"] for message in messages
            if message.get("action_type") == ZFS_COMMAND.action_type
            and message.get("action_status") == "started"
            and message["argv"][-1].split("@")[0].split("/")[0] == pool]


def _receive_into(case, nodes, data, caller=None):
    """
    Run ``b``'s receiving end of a push of ``app`` (as the agent does for
    another node's push) with ``data`` as what the sender sent.

    :param bytes data: The request line and the stream.
    :param caller: The pushing node's identity, or ``None``.
    :return: ``(error, messages)``: the ``VolumeError`` it failed with (or
        ``None``) and the protocol messages it sent back.
    """
    messages = []
    with _piped(case, data) as stream:
        try:
            nodes.call(nodes.b.receive, "app", stream, messages.append,
                       caller=caller)
        except VolumeError as e:
            return e, messages
    return None, messages


def _stream_of(nodes, snapshot, owner):
    """
    :return: A request claiming node ``owner`` as its sender, and a plain
        full stream of ``a``'s "app" at a new snapshot, as ``bytes``.
    """
    if nodes.a.pool.name + "/app" not in _zfs(
            "list", "-H", "-o", "name", "-r", nodes.a.pool.name).split():
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"from a")
    _zfs("snapshot", "%s/app@%s" % (nodes.a.pool.name, snapshot))
    stream = subprocess.run(
        ["zfs", "send", "%s/app@%s" % (nodes.a.pool.name, snapshot)],
        capture_output=True, timeout=60, check=True).stdout
    request = json.dumps({"snapshot": snapshot, "base": None,
                          "owner": owner, "maximum_size": None})
    return request.encode() + b"\n" + stream


def _refused_receive(case, nodes, caller, pushed):
    """
    Run ``b``'s receiving end of a push of ``app`` from node ``caller``,
    as its agent does for that node's key, and check it failed with one
    line.

    :param bytes pushed: What the sender sent (request line and stream).
    :return: That line.
    """
    error, _ = _receive_into(case, nodes, pushed, caller)
    case.assertIsInstance(error, VolumeError)
    case.assertNotIn("\n", error.message)
    return error.message


@contextmanager
def _piped(case, data):
    """
    :param case: The test (its temporary directory holds ``data``).
    :param bytes data: What to send.
    :return: A context manager giving the reading end of a pipe that a
        ``cat`` process fills with ``data`` (more than a pipe holds), ended
        once the block is left.
    """
    path = temporary_path(case) / "stream"
    path.write_bytes(data)
    writer = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    try:
        yield writer.stdout.fileno()
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()


def _holds(pool, name):
    """
    :return: ``{snapshot: number of holds}`` of a volume's snapshots
        (``userrefs``: zfs-fuse has no ``zfs holds``).
    """
    output = _zfs("get", "-H", "-p", "-r", "-o", "name,value", "userrefs",
                  "%s/%s" % (pool.name, name))
    return {line.split("\t")[0].split("@")[1]: int(line.split("\t")[1])
            for line in output.splitlines() if "@" in line.split("\t")[0]}


# Pure parts


class RemoteErrorTests(SynchronousTestCase):
    """
    Failures of remote commands become typed errors.
    """

    def _result(self, code, stdout=b"", stderr=b""):
        return ProcessResult(argv=["ssh"], stdout=stdout, stderr=stderr,
                             exit_code=code, signal=None)

    def test_unreachable(self):
        """
        Exit code 255 (the session lost before it ended) means the node
        could not be reached.
        """
        error = remote_error("node2", self._result(
            255, stderr=b"Connection to the other side was lost.\n"))
        self.assertIsInstance(error, TargetUnreachable)
        self.assertEqual(error.message, "cannot reach node node2: "
                         "Connection to the other side was lost.")

    def test_typed(self):
        """
        An error line the receiving end sent keeps its type.
        """
        error = remote_error("node2", self._result(1, stdout=json.dumps({
            "error": "OutOfSpace", "message": "pool full"}).encode()))
        self.assertIsInstance(error, OutOfSpace)
        self.assertEqual(error.message, "node node2: pool full")

    def test_other(self):
        """
        Anything else is a ``RemoteError`` with the last line of standard
        error.
        """
        error = remote_error("node2", self._result(
            2, stderr=b"Traceback...\nValueError: x\n"))
        self.assertIsInstance(error, RemoteError)
        self.assertEqual(error.message, "node node2: ValueError: x")



class SnapshotNameTests(SynchronousTestCase):
    """
    Snapshot names sort by the time they were taken.
    """

    def test_format(self):
        """
        The name holds the UTC time to the microsecond.
        """
        self.assertEqual(snapshot_name(1800000000.25, []),
                         "flocker-20270115T080000.250000Z")

    def test_collision(self):
        """
        A name already used gets a counter.
        """
        first = snapshot_name(1800000000.25, [])
        self.assertEqual(snapshot_name(1800000000.25, [first]),
                         first + "-2")

    def test_order(self):
        """
        Later times give names that sort later.
        """
        clock = Clock()
        names = []
        for step in [0.5, 1, 9, 3600, 86400 * 40]:
            clock.advance(step)
            names.append(snapshot_name(1700000000 + clock.seconds(), []))
        self.assertEqual(names, sorted(names))


def _forget_pushes(nodes):
    """
    Make ``a`` forget what it pushed, so its next push of "app" negotiates
    (an incremental, since ``b`` still has a common snapshot).
    """
    _zfs("inherit", "flocker:pushed", "%s/app" % (nodes.a.pool.name,))


def _without_detection(commands, pool):
    """
    :return: ``commands`` without the pool command of the receiving
        service finding out what its ZFS offers (see ``test_capabilities``),
        after checking it ran at most once: a service (the agent's) asks
        once, at its first push or receive.
    """
    detection = ["zpool", "get", "-H", "-o", "property,value", "all", pool]
    if commands.count(detection) > 1:
        raise AssertionError("%r ran %d times, not at most once: %r" % (
            detection, commands.count(detection), commands))
    return [argv for argv in commands if argv != detection]


class _RecordingPool(object):
    """
    The parts of a ``ZFSPool`` a receive's ``zfs receive`` step uses,
    recording the limit it was given.
    """

    name = "tank"

    def __init__(self, available):
        self._available = available
        self.limits = []
        self.idle_timeouts = []

    def capabilities(self):
        return succeed(None)

    def available(self):
        return succeed(self._available)

    def receive(self, volume, stdin, snapshot, base, suffix="", force=False,
                limit=None, capabilities=None, idle_timeout=None,
                resuming=False, interrupt=None):
        self.limits.append(limit)
        self.idle_timeouts.append(idle_timeout)
        return succeed(None)


class ReceiveLimitTests(SynchronousTestCase):
    """
    Every receive has a size limit: the volume's maximum size, or the
    pool's free space when the owner names none.
    """

    def _limit(self, maximum_size, available):
        pool = _RecordingPool(available)
        service = VolumeService(Clock(), pool, "node-b", None)
        self.successResultOf(service._zfs_receive(
            "app", 0, "", False, {"snapshot": "s2", "base": None,
                                  "maximum_size": maximum_size}))
        return pool.limits

    def test_maximum_size(self):
        """
        A volume with a maximum size is limited by it (plus the stream's
        own records), whatever the pool's free space.
        """
        self.assertEqual(self._limit(64 * 1024 ** 2, 10 ** 12),
                         [stream_limit(64 * 1024 ** 2)])

    def test_no_maximum_size(self):
        """
        A volume without one is limited by the receiving pool's free space.
        """
        self.assertEqual(self._limit(None, 100 * 1024 ** 2),
                         [stream_limit(100 * 1024 ** 2)])


class _OversizedPool(_RecordingPool):
    """
    A pool whose ``zfs receive`` is cut off at the size limit, on a ZFS
    that can resume (or not); it records ``zfs receive -A``.
    """

    def __init__(self, resumable):
        _RecordingPool.__init__(self, 10 ** 9)
        self.resumable = resumable
        self.aborted = []

    def capabilities(self):
        return succeed(ZFSCapabilities(
            implementation=OPENZFS if self.resumable else ZFS_FUSE,
            receive_flags=["s"] if self.resumable else [],
            resume_tokens=self.resumable))

    def receive(self, *args, **kwargs):
        return fail(StreamTooLarge("over the limit"))

    def abort_receive(self, volume, suffix=""):
        self.aborted.append(volume + suffix)
        return succeed(None)


class OversizedStreamTests(SynchronousTestCase):
    """
    A stream cut off at its size limit is not kept for resuming.
    """

    def test_aborted(self):
        """
        Where the pool's ZFS can resume, the part received of a stream
        over its limit is discarded (``zfs receive -A``): its rest would
        get a whole limit of its own.  zfs-fuse keeps nothing to discard.
        """
        aborted = []
        for resumable in (True, False):
            pool = _OversizedPool(resumable)
            service = VolumeService(Clock(), pool, "node-b", None)
            self.failureResultOf(service._zfs_receive(
                "app", 0, ".flocker-recv", False,
                {"snapshot": "s2", "base": None, "maximum_size": 1024}),
                StreamTooLarge)
            aborted.append(pool.aborted)
        self.assertEqual(aborted, [["app.flocker-recv"], []])


class SilentSenderTests(SynchronousTestCase):
    """
    A receive gives up on a sender that goes silent (a node killed or cut
    off mid-push) after ``RECEIVE_IDLE_TIMEOUT``, so the volume's lock is
    not held forever and a fence queued behind it runs.
    """

    def test_stream_read_with_timeout(self):
        """
        The stream is read by the pool with ``RECEIVE_IDLE_TIMEOUT``.
        """
        pool = _RecordingPool(10 ** 9)
        service = VolumeService(Clock(), pool, "node-b", None)
        self.successResultOf(service._zfs_receive(
            "app", 0, "", False, {"snapshot": "s2", "base": None}))
        self.assertEqual(pool.idle_timeouts, [RECEIVE_IDLE_TIMEOUT])

    def test_silent_request_frees_volume(self):
        """
        A sender that sends nothing after the receiver's header fails the
        receive with ``StreamRejected`` once ``RECEIVE_IDLE_TIMEOUT``
        passes (not before), and the next operation on the volume, here
        a fence waiting for the lock, then runs.
        """
        reactor = MemoryReactorClock()
        pool = _SilentSenderPool()
        service = VolumeService(reactor, pool, "node-b", None)
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        self.addCleanup(os.close, write_fd)
        emitted = []
        received = service.receive("app", read_fd, emitted.append,
                                   caller="node-a")
        after = service._locked("app", lambda: succeed("fenced"))
        reactor.advance(RECEIVE_IDLE_TIMEOUT - 1)
        self.assertNoResult(received)
        self.assertNoResult(after)
        reactor.advance(1)
        failure = self.failureResultOf(received, StreamRejected)
        self.assertIn("sent nothing for %d s" % (RECEIVE_IDLE_TIMEOUT,),
                      failure.value.message)
        self.assertEqual(self.successResultOf(after), "fenced")
        self.assertEqual(emitted[0]["node_id"], "node-b")
        self.assertFalse(reactor.readers)


class AbandonedReceiveTests(SynchronousTestCase):
    """
    A failover's fence or take-over of a volume abandons a receive of it
    under way from the owner it replaces (dead or cut off mid-stream, it may
    never send again) instead of waiting behind it for
    ``RECEIVE_IDLE_TIMEOUT``.
    """

    def receiving(self, epoch=3):
        """
        :return: ``(service, pool, the receive's Deferred)``, the receive
            waiting for a stream from a sender at ``epoch``.
        """
        pool = _StalledStreamPool()
        service = VolumeService(Clock(), pool, "node-b", None)
        received = service._registered(
            service._zfs_receive, "app", 0, "", False,
            {"snapshot": "s2", "base": None, "epoch": epoch})
        return service, pool, received

    def test_fence_abandons(self):
        """
        A fence at an epoch above the sender's fails the receive at once
        with ``StreamRejected`` naming both epochs, then runs.
        """
        service, pool, received = self.receiving()
        fenced = service.fence("app", "node-c", 4)
        failure = self.failureResultOf(received, StreamRejected)
        self.assertEqual(
            (failure.value.message, self.successResultOf(fenced),
             service._receiving),
            ("the receive of app was abandoned: its sender (epoch 3) is "
             "superseded by epoch 4 (a failover); this node's copy is "
             "unchanged", None, {}))

    def test_take_over_abandons(self):
        """
        A take-over (``acquire`` with an epoch) abandons the receive too;
        an ``acquire`` without one (a planned move's last step, after its
        final increment) does not.
        """
        service, pool, received = self.receiving()
        moved = service.acquire("app")
        waited = not received.called
        taken = service.acquire("app", epoch=4)
        self.failureResultOf(received, StreamRejected)
        # No copy here in this pool: both then fail on their own.
        self.failureResultOf(moved, NoSuchVolume)
        self.failureResultOf(taken, NoSuchVolume)
        self.assertTrue(waited)

    def test_same_epoch_kept(self):
        """
        A sender at the epoch to come (or later) is not abandoned.
        """
        service, pool, received = self.receiving(epoch=4)
        self.assertEqual(service.abandon_receive("app", 4), False)
        self.assertNoResult(received)

    def test_silent_request_abandoned(self):
        """
        A sender that died after the receiver's header, before its request
        (each round starts with that exchange), is abandoned by the fence
        at once, not after ``RECEIVE_IDLE_TIMEOUT``; the fence then runs
        and nothing is left watched.
        """
        reactor = MemoryReactorClock()
        service = VolumeService(reactor, _SilentSenderPool(), "node-b",
                                None)
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        self.addCleanup(os.close, write_fd)
        received = service.receive("app", read_fd, lambda message: None,
                                   caller="node-a")
        fenced = service.fence("app", "node-c", 4)
        failure = self.failureResultOf(received, StreamRejected)
        self.assertEqual(
            (failure.value.message, self.successResultOf(fenced),
             reactor.readers, reactor.getDelayedCalls()),
            ("the receive of app was abandoned: its sender (epoch unknown "
             "yet) is superseded by epoch 4 (a failover); this node's copy "
             "is unchanged", None, set(), []))

    def test_nothing_under_way(self):
        """
        With no receive of the volume under way there is nothing to
        abandon.
        """
        service = VolumeService(Clock(), _StalledStreamPool(), "node-b",
                                None)
        self.assertEqual(service.abandon_receive("app", 4), False)


class _StalledStreamPool(_RecordingPool):
    """
    A pool whose receives wait for a stream that never comes (its sender
    died mid-stream) until their ``interrupt`` fires, failing then as
    ``ZFSPool.receive`` does; it has no datasets.
    """

    def __init__(self):
        _RecordingPool.__init__(self, 10 ** 9)

    def get(self, name):
        return succeed(None)

    def list(self):
        return succeed([])

    def receive(self, volume, stdin, snapshot, base, suffix="", force=False,
                limit=None, capabilities=None, idle_timeout=None,
                resuming=False, interrupt=None):
        waiting = Deferred()
        def abandoned(reason):
            waiting.errback(receive_abandoned(volume, reason))
            return reason
        interrupt.addCallback(abandoned)
        return waiting


class _SilentSenderPool(_RecordingPool):
    """
    A pool with no datasets, for a receive whose sender never sends.
    """

    def __init__(self):
        _RecordingPool.__init__(self, 10 ** 9)

    def capabilities(self):
        return succeed(ZFSCapabilities(implementation=ZFS_FUSE))

    def list(self, *args, **kwargs):
        return succeed([])

    def get(self, name):
        return succeed(None)


class _StartedCommand(object):
    """
    A remote command as ``start_remote`` answers it: ``ended`` fires when
    the test ends it.
    """

    def __init__(self):
        self.ended = Deferred()


class _StartingRemote(object):
    """
    A ``remote`` with ``start``: records each command started and answers
    with a Deferred the test fires (or a failure it was told to give).

    :ivar started: ``(address, words, Deferred)`` of each start.
    """

    def __init__(self):
        self.started = []
        self.failure = None

    def start(self, address, words):
        d = Deferred() if self.failure is None else fail(self.failure)
        self.started.append((address, list(words), d))
        return d


class PreparedPushTests(SynchronousTestCase):
    """
    ``VolumeService.prepare_push``: the receiving end of the next push
    opened ahead, its expiry, and its use by the next push to the same
    target.  No pool is touched until a push sends.
    """

    def setUp(self):
        self.clock = Clock()
        self.remote = _StartingRemote()
        self.service = VolumeService(self.clock, pool=None, node_id="a" * 32,
                                     remote=self.remote,
                                     clock=self.clock)

    def opened(self):
        """
        Open the one receiving end started so far.

        :return: ``(command, read end of its standard input)``.
        """
        (_, _, d), = self.remote.started
        command = _StartedCommand()
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        d.callback((command, write))
        return command, read

    def test_answers_at_once(self):
        """
        ``prepare_push`` starts ``flocker-volume receive NAME`` on the
        target and answers before that opened.
        """
        d = self.service.prepare_push("app", "10.0.0.2")
        self.assertIsNone(self.successResultOf(d))
        [(address, words, started)] = self.remote.started
        self.assertEqual((address, words[0], words[2:]),
                         ("10.0.0.2", "--eliot-task", ["receive", "app"]))
        self.assertNoResult(started)
        self.clock.advance(_push.PREPARED_SECONDS)

    def test_once_per_target(self):
        """
        Asked again for the same volume and target while one is open, it
        opens no other; another target gets its own.
        """
        self.service.prepare_push("app", "10.0.0.2")
        self.service.prepare_push("app", "10.0.0.2")
        self.service.prepare_push("app", "10.0.0.3")
        self.assertEqual([address for address, _, _ in self.remote.started],
                         ["10.0.0.2", "10.0.0.3"])
        self.clock.advance(_push.PREPARED_SECONDS)

    def test_expires(self):
        """
        One not used within ``PREPARED_SECONDS`` is closed: the target's
        command sees its input end before any request (and so changes
        nothing), and a later push opens its own.
        """
        self.service.prepare_push("app", "10.0.0.2")
        command, read = self.opened()
        self.clock.advance(_push.PREPARED_SECONDS - 1)
        self.assertEqual(self.service._prepared.keys(), {("app", "10.0.0.2")})
        self.clock.advance(1)
        self.assertEqual(os.read(read, 10), b"")
        self.assertEqual(self.service._prepared, {})
        command.ended.callback(ProcessResult(["ssh"], b"", b"", 1, None))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_taken_by_next_push(self):
        """
        The next push's start takes the one opened ahead: no other command
        is started, the expiry is cancelled, and the push's request is to
        name the push's own task (the command was started under another).
        """
        self.service.prepare_push("app", "10.0.0.2")
        command, read = self.opened()
        taken = self.successResultOf(self.service._start_receive(
            "app", "10.0.0.2", "push-task"))
        self.assertEqual((taken[0], taken[2]), (command, "push-task"))
        self.assertEqual(len(self.remote.started), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        os.close(taken[1])

    def test_failed_then_own(self):
        """
        One that failed to open is dropped by the push, which starts its
        own with its own task.
        """
        self.remote.failure = TargetUnreachable("no route")
        self.service.prepare_push("app", "10.0.0.2")
        self.remote.failure = None
        d = self.service._start_receive("app", "10.0.0.2", "push-task")
        [_, (address, words, started)] = self.remote.started
        self.assertEqual(words, ["--eliot-task", "push-task", "receive",
                                 "app"])
        command = _StartedCommand()
        started.callback((command, None))
        self.assertEqual(self.successResultOf(d), (command, None, None))

    def test_other_target_not_taken(self):
        """
        A push to another target starts its own: what was opened ahead
        waits for its own target.
        """
        self.service.prepare_push("app", "10.0.0.2")
        self.service._start_receive("app", "10.0.0.3", "push-task")
        self.assertEqual([address for address, _, _ in self.remote.started],
                         ["10.0.0.2", "10.0.0.3"])
        self.assertEqual(self.service._prepared.keys(), {("app", "10.0.0.2")})
        self.clock.advance(_push.PREPARED_SECONDS)


class _StepPool(object):
    """
    The parts of a ``ZFSPool`` an acquire uses: each command is recorded
    when issued and answers with a Deferred the test fires, so a test sees
    which commands run at once and which wait for others.

    :ivar issued: Each command, ``(verb, arguments...)``, in issue order.
    :ivar answers: The Deferred of each, in the same order.
    """

    name = "tank"

    def __init__(self, dataset):
        self._dataset = dataset
        self.issued = []
        self.answers = []

    def _command(self, *command):
        self.issued.append(command)
        d = Deferred()
        self.answers.append(d)
        return d

    def list(self):
        return succeed([self._dataset])

    def capabilities(self):
        return succeed(ZFSCapabilities(implementation=ZFS_FUSE, holds=True))

    def release(self, name, snapshot, tag):
        return self._command("release", name, snapshot, tag)

    def set(self, name, key, value, suffix=""):
        return self._command("set", name, key, value)

    def mount(self, name):
        return self._command("mount", name)

    def unmount(self, name):
        return self._command("unmount", name)

    def get(self, name):
        return succeed(self._dataset if name == self._dataset.name else None)

    def dataset(self, name):
        return "%s/%s" % (self.name, name)

    def fire(self, *indexes):
        """
        Answer the commands issued ``indexes``-th (from 0) with success.
        """
        for index in indexes:
            self.answers[index].callback(None)


class AcquireOrderTests(SynchronousTestCase):
    """
    The order of an acquire's commands (the second half of a hand-off,
    while the application is down): what runs at once, and the commit
    (the owner) only after the epoch.
    """

    def setUp(self):
        self.snapshot = "flocker-20261206T180000.000000Z"
        self.pool = _StepPool(Dataset(
            name="app", properties={OWNER: "b" * 32, EPOCH: "3",
                                    "mounted": "no", "atime": "off",
                                    "mountpoint": "/tank/app"},
            snapshots=[self.snapshot]))
        clock = Clock()
        self.service = VolumeService(clock, pool=self.pool,
                                     node_id="a" * 32, remote=None,
                                     clock=clock)

    def test_hold_and_epoch_at_once(self):
        """
        The follower's hold is released and the next epoch recorded at
        once; the owner is set only when both are done, then the copy is
        made writable and mounted, one after the other.
        """
        d = self.service.acquire("app", snapshot=self.snapshot,
                                 node_id="a" * 32)
        self.assertEqual(self.pool.issued, [
            ("release", "app", self.snapshot, "flocker-received"),
            ("set", "app", EPOCH, "4")])
        self.pool.fire(1)
        self.assertEqual(len(self.pool.issued), 2)
        self.pool.fire(0)
        self.assertEqual(self.pool.issued[2:], [
            ("set", "app", OWNER, "a" * 32)])
        self.pool.fire(2)
        self.assertEqual(self.pool.issued[3:], [
            ("set", "app", "readonly", "off")])
        self.pool.fire(3)
        self.assertEqual(self.pool.issued[4:], [("mount", "app")])
        self.pool.fire(4)
        info = self.successResultOf(d)
        self.assertEqual((info.owned, info.epoch), (True, 4))

    def test_failed_epoch_commits_nothing(self):
        """
        When recording the epoch fails, the owner is never set: the copy
        is not taken, and the acquire fails with that error.
        """
        d = self.service.acquire("app", snapshot=self.snapshot,
                                 node_id="a" * 32)
        self.pool.fire(0)
        self.pool.answers[1].errback(ZFSError("zfs set failed"))
        self.failureResultOf(d, ZFSError)
        self.assertEqual(len(self.pool.issued), 2)


class InUseCheckTests(SynchronousTestCase):
    """
    A hand-off, a delete and a fence wait for the in-use check, which runs
    outside the reactor thread, and are refused when it finds a process.
    """

    def setUp(self):
        self.pool = _StepPool(Dataset(
            name="app", properties={OWNER: "a" * 32, EPOCH: "3",
                                    "mounted": "yes", "atime": "off",
                                    "mountpoint": "/tank/app"},
            snapshots=["flocker-20261206T180000.000000Z"]))
        self.checks = []
        clock = Clock()
        self.service = VolumeService(clock, pool=self.pool,
                                     node_id="a" * 32, remote=None,
                                     clock=clock, in_use=self.in_use)

    def in_use(self, dataset, mountpoint):
        d = Deferred()
        self.checks.append(((dataset, mountpoint), d))
        return d

    def test_handoff_waits(self):
        """
        A hand-off changes nothing until the check answers, then makes the
        copy read-only if no process uses it.
        """
        d = self.service.handoff("app", "10.0.0.2")
        (asked, answer), = self.checks
        self.assertEqual((asked, self.pool.issued),
                         (("tank/app", "/tank/app"), []))
        answer.callback(set())
        self.assertEqual(self.pool.issued, [("set", "app", "readonly", "on")])
        # Ended here: what comes next is the push, tested elsewhere.
        self.pool.answers[0].errback(ZFSError("zfs set failed"))
        self.failureResultOf(d, ZFSError)

    def test_handoff_in_use(self):
        """
        A hand-off whose check finds processes fails with ``VolumeInUse``
        naming them, and changes nothing.
        """
        d = self.service.handoff("app", "10.0.0.2")
        self.checks[0][1].callback({42, 7})
        error = self.failureResultOf(d, VolumeInUse).value
        self.assertEqual((str(error), self.pool.issued), (
            "volume app is still in use (process 7, 42); stop the "
            "application before handing it off", []))

    def test_check_error(self):
        """
        When the check itself fails, the hand-off fails with its error and
        changes nothing.
        """
        d = self.service.handoff("app", "10.0.0.2")
        self.checks[0][1].errback(PermissionError(13, "Permission denied"))
        self.failureResultOf(d, PermissionError)
        self.assertEqual(self.pool.issued, [])

    def test_delete_in_use(self):
        """
        A delete waits for the check, and one that finds a process fails
        with ``VolumeInUse`` naming it, destroying nothing.
        """
        d = self.service.delete("app")
        self.assertNoResult(d)
        self.checks[0][1].callback({99})
        error = self.failureResultOf(d, VolumeInUse).value
        self.assertEqual((str(error), self.pool.issued), (
            "volume app is in use (mounted into a container or open by "
            "process 99); stop the application first", []))

    def test_fence_in_use(self):
        """
        A fence of a stale owned copy waits for the check, and one that
        finds a process fails with ``VolumeInUse``, setting nothing aside.
        """
        d = self.service.fence("app", "b" * 32, 4)
        self.assertNoResult(d)
        self.checks[0][1].callback({5})
        self.failureResultOf(d, VolumeInUse)
        self.assertEqual(self.pool.issued, [])

    def test_default_check_in_thread_pool(self):
        """
        By default the check is ``processes_using`` queued on the reactor's
        thread pool: the reactor thread never scans ``/proc``.
        """
        reactor = QueuedThreadsReactor()
        service = VolumeService(reactor, pool=self.pool, node_id="a" * 32,
                                remote=None, clock=Clock())
        d = service.delete("app")
        self.assertNoResult(d)
        (on_result, function, args, _), = reactor.pool.queued
        self.assertEqual((function, args),
                         (processes_using, ("tank/app", "/tank/app")))
        # As a thread finding a process answers.
        on_result(True, {1})
        self.failureResultOf(d, VolumeInUse)


class RealVolumeServiceTests(SynchronousTestCase):
    """
    ``VolumeService`` on three real nodes (see :class:`ZFSNodes`): what
    the shared interface tests do not cover.
    """

    def test_follower_properties(self):
        """
        A received copy is a follower: read-only (writes fail), no access time
        updates, owner naming the sender, and the sender's maximum size.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app", 32 * 1024 * 1024)
        nodes.write(nodes.a, "app", "f", b"data")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        dataset = "%s/app" % (nodes.b.pool.name,)
        values = _zfs("get", "-H", "-p", "-o", "property,value", "atime,refquota,"
                      "flocker:owner", dataset).splitlines()
        self.assertEqual(
            values,
            ["atime\toff", "refquota\t%d" % (32 * 1024 * 1024,),
             "flocker:owner\t%s" % (nodes.a.node_id,)])
        with self.assertRaises(NotOwner):
            nodes.write(nodes.b, "app", "f", b"changed")

    def test_push_after_target_deleted(self):
        """
        When the target's copy is gone, the next push sends a full stream.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"one")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        nodes.call(nodes.b.delete, "app")
        nodes.write(nodes.a, "app", "f", b"two")
        result = nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        self.assertIsNone(result.base)
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"two")

    def test_push_after_target_modified(self):
        """
        When the target's copy was changed after its last snapshot, the next
        (incremental) push replaces the follower's change with the owner's
        data.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"one")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        _zfs("set", "readonly=off", "%s/app" % (nodes.b.pool.name,))
        nodes.write(nodes.b, "app", "stray", b"written on a follower")
        nodes.write(nodes.a, "app", "f", b"two")
        result = nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        self.assertIsNotNone(result.base)
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"two")
        with self.assertRaises(OSError):
            nodes.read(nodes.b, "app", "stray")

    def test_receiving_side_logged_in_push_tree(self):
        """
        The receiving node's log of a push (``flocker-volume receive`` there)
        comes back with the stream's answer and joins the pushing node's log
        under the push, in the same task.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        messages = []
        add_destinations(messages.append)
        # eliot hands the first destination what was logged before there was
        # one (earlier tests' pushes): not this push's.
        del messages[:]
        try:
            nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        finally:
            remove_destination(messages.append)
        [push] = [m for m in messages
                  if m.get("action_type") == "flocker:volume:push"
                  and m.get("action_status") == "started"]
        received = [m for m in messages
                    if m.get("action_type") == "flocker:volume:receive"]
        self.assertEqual([m["action_status"] for m in received],
                         ["started", "succeeded"])
        self.assertEqual({m["task_uuid"] for m in received},
                         {push["task_uuid"]})
        # Below the push's own level: the receiver continued its task.
        self.assertEqual(
            received[0]["task_level"][:len(push["task_level"]) - 1],
            push["task_level"][:-1])

    def test_receive_records_caller_as_owner(self):
        """
        A receive from a node (``--caller``, as its key's forced command
        passes it) that claims to push as another node is refused with one
        line and creates nothing; a node the agent was told to expect the
        volume from, claiming itself, is recorded as the copy's owner.
        """
        nodes = ZFSNodes(self)
        self.assertIn("the key of node node-c cannot push as node node-d",
                      _refused_receive(self, nodes, "node-c",
                                       _stream_of(nodes, "s1", "node-d")))
        self.assertEqual(nodes.call(nodes.b.volumes), [])
        emitted = []
        with _piped(self, _stream_of(nodes, "s2", "node-c")) as stream:
            received = nodes.call(nodes.b.receive, "app", stream,
                                  emitted.append, caller="node-c",
                                  expected=frozenset(["node-c"]))
        self.assertEqual((received, emitted[-1]["received"]), ("s2", "s2"))
        self.assertEqual(
            _zfs("get", "-H", "-o", "value", "flocker:owner",
                 "%s/app" % (nodes.b.pool.name,)),
            "node-c\n")

    def test_receive_first_copy_unexpected(self):
        """
        A node pushing a volume this node has no copy of, which this node
        was not told to expect from it (no expected senders; the agent's
        may name another node), is
        refused with one line naming the node, and nothing is left on this
        node: no copy, no partial ``NAME.flocker-recv``.
        """
        nodes = ZFSNodes(self)
        self.assertIn("was not told to expect it from node node-c",
                      _refused_receive(self, nodes, "node-c",
                                       _stream_of(nodes, "s1", "node-c")))
        emitted = []
        with _piped(self, _stream_of(nodes, "s2", "node-c")) as stream:
            refused = self.assertRaises(
                NotOwner, nodes.call, nodes.b.receive, "app", stream,
                emitted.append, caller="node-c",
                expected=frozenset(["node-a"]))
        self.assertIn("it may come from node node-a only", refused.message)
        self.assertEqual(
            _zfs("list", "-H", "-o", "name", "-r",
                 nodes.b.pool.name).split(),
            [nodes.b.pool.name])

    def test_receive_first_copy_group(self):
        """
        For a volume of an automatic group, a first copy from a node the
        record does not name is decided by the group's lease, asked only
        then: a member that does not hold it is refused with one line
        naming it and the holder, leaving nothing (no copy, no partial
        one); the holder's first copy is received, and a later push into
        that copy does not ask again.
        """
        nodes = ZFSNodes(self)
        lease = GroupLease(application="web", holder="10.0.0.3",
                           holder_ids=["node-c"])
        asked = []

        def group():
            asked.append(True)
            return succeed(lease)
        with _piped(self, _stream_of(nodes, "s1", "node-d")) as stream:
            refused = self.assertRaises(
                NotOwner, nodes.call, nodes.b.receive, "app", stream,
                [].append, caller="node-d", group=group)
        self.assertIn("whose lease in etcd is held by node 10.0.0.3; a "
                      "first copy comes only from the lease's holder, so "
                      "node node-d may not push it", refused.message)
        self.assertEqual(
            _zfs("list", "-H", "-o", "name", "-r",
                 nodes.b.pool.name).split(),
            [nodes.b.pool.name])
        with _piped(self, _stream_of(nodes, "s2", "node-c")) as stream:
            received = nodes.call(nodes.b.receive, "app", stream, [].append,
                                  caller="node-c", group=group)
        self.assertEqual((received, len(asked)), ("s2", 2))
        self.assertEqual(
            _zfs("get", "-H", "-o", "value", "flocker:owner",
                 "%s/app" % (nodes.b.pool.name,)),
            "node-c\n")
        _zfs("snapshot", "%s/app@s3" % (nodes.a.pool.name,))
        increment = subprocess.run(
            ["zfs", "send", "-i", "@s2", "%s/app@s3" % (nodes.a.pool.name,)],
            capture_output=True, timeout=60, check=True).stdout
        request = json.dumps({"snapshot": "s3", "base": "s2",
                              "owner": "node-c", "maximum_size": None})
        with _piped(self, request.encode() + b"\n" + increment) as stream:
            received = nodes.call(nodes.b.receive, "app", stream, [].append,
                                  caller="node-c", group=group)
        self.assertEqual((received, len(asked)), ("s3", 2))

    def test_receive_only_from_followed_node(self):
        """
        A node may not push into a copy that follows another node: refused
        with one line, and the copy (data, snapshots, owner) is unchanged.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"owned by a")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        dataset = "%s/app" % (nodes.b.pool.name,)
        before = _zfs("get", "-H", "-o", "value", "flocker:owner", dataset)
        snapshots = _zfs("list", "-H", "-t", "snapshot", "-o", "name", "-r",
                         dataset)
        request = json.dumps({"snapshot": "s9", "base": None,
                              "owner": "node-c", "maximum_size": None})
        self.assertIn(
            "follows node %s; node node-c may not push it" % (
                nodes.a.node_id,),
            _refused_receive(self, nodes, "node-c",
                             request.encode() + b"\n"))
        self.assertEqual(
            _zfs("get", "-H", "-o", "value", "flocker:owner",
                 dataset),
            before)
        self.assertEqual(
            _zfs("list", "-H", "-t", "snapshot", "-o", "name", "-r",
                 dataset),
            snapshots)
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"owned by a")

    def test_receive_garbage(self):
        """
        A receive given a stream that is not a ZFS stream fails with one
        ``StreamRejected`` line saying so, and creates nothing.
        """
        nodes = ZFSNodes(self)
        request = json.dumps({"snapshot": "s1", "base": None, "owner": "x",
                              "maximum_size": None}).encode() + b"\n"
        error, _ = _receive_into(self, nodes,
                                 request + b"this is not a zfs stream" * 100)
        self.assertIsInstance(error, StreamRejected)
        self.assertTrue("\n" not in error.message
                        and "not a ZFS stream" in error.message)
        self.assertEqual(nodes.call(nodes.b.volumes), [])

    def test_receive_refuses_owned(self):
        """
        A receive into a volume this node owns says so and leaves it alone.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.b.create, "app")
        nodes.write(nodes.b, "app", "f", b"owned")
        error, _ = _receive_into(self, nodes, b"")
        self.assertIsInstance(error, NotOwner)
        self.assertIn("owned by this node", error.message)
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"owned")

    def test_receive_bad_request(self):
        """
        A request line naming an unsafe snapshot is refused before anything
        runs.
        """
        nodes = ZFSNodes(self)
        request = json.dumps({"snapshot": "../../x", "base": None,
                              "owner": "x"}).encode() + b"\n"
        error, _ = _receive_into(self, nodes, request)
        self.assertIsInstance(error, StreamRejected)
        self.assertIn("request is not valid", error.message)

    def test_recovery_finishes_swap(self):
        """
        A crash after a full stream was received beside a copy and the old copy
        moved aside (``x.flocker-old`` and ``x.flocker-recv``, no ``x``) is
        finished by the next operation: the received copy takes the name.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"new data")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        pool = nodes.b.pool.name
        _zfs("create", "%s/app.flocker-old" % (pool,))
        nodes.call(lambda: nodes.b.pool.rename("app", "", ".flocker-recv"))
        info = nodes.call(nodes.b.acquire, "app")
        self.assertTrue(info.owned)
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"new data")
        names = [line for line in _zfs("list", "-H", "-o", "name", "-r",
                                       pool).splitlines()]
        self.assertEqual(names, [pool, pool + "/app"])

    def test_recovery_restores_old(self):
        """
        A crash after the old copy was moved aside but before a complete
        received copy existed puts the old copy back.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"old data")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        nodes.call(lambda: nodes.b.pool.rename("app", "", ".flocker-old"))
        _zfs("create", "%s/app.flocker-recv" % (nodes.b.pool.name,))
        nodes.call(nodes.b.acquire, "app")
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"old data")
        pool = nodes.b.pool.name
        names = [line for line in _zfs("list", "-H", "-o", "name", "-r",
                                       pool).splitlines()]
        self.assertEqual(names, [pool, pool + "/app"])

    def test_stuck_target(self):
        """
        A target whose ``flocker-volume receive`` never answers is given up on
        after ``HEADER_TIMEOUT`` seconds (the command is killed) with
        ``TargetUnreachable``; the volume stays owned here.
        """
        nodes = ZFSNodes(self)
        self.patch(_push, "HEADER_TIMEOUT", 2)
        nodes.call(nodes.a.create, "app")
        nodes.remote.silent.add(nodes.address(nodes.b))
        with self.assertRaises(TargetUnreachable) as caught:
            nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        self.assertIn("did not answer within 2 seconds",
                      caught.exception.message)
        self.assertTrue(nodes.call(nodes.a.volumes)[0].owned)

    def test_receive_while_pushing(self):
        """
        A push to a node that is itself pushing the volume (both hold it as
        owner: an old owner after a failover) is answered at once, not
        after the receiving node's own push ends: a sender older than the
        copy there gets ``StaleEpoch``, and the copy is unchanged.
        """
        nodes = ZFSNodes(self)
        self.patch(_push, "HEADER_TIMEOUT", 15)
        nodes.call(nodes.a.create, "app")
        nodes.remote.silent.add(nodes.address(nodes.b))
        epoch = nodes.call(nodes.a.volumes)[0].epoch
        request = json.dumps({"snapshot": "flocker-x", "base": None,
                              "owner": "node-old", "epoch": epoch - 1})
        read_fd, write_fd = os.pipe()
        os.write(write_fd, request.encode("ascii") + b"\n")
        os.close(write_fd)
        self.addCleanup(os.close, read_fd)
        ended = []
        header = []

        def both(reactor):
            pushing = nodes.a.push("app", nodes.address(nodes.b))
            pushing.addBoth(lambda result: ended.append("push") or result)
            receiving = nodes.a.receive("app", read_fd, header.append,
                                        caller="node-old")
            receiving.addBoth(lambda result: ended.append("receive")
                              or result)
            return DeferredList([pushing, receiving], consumeErrors=True)
        (_, pushed), (received_ok, received) = run_in_reactor(
            both, timeout=120)
        self.assertEqual(ended, ["receive", "push"])
        self.assertFalse(received_ok)
        self.assertIsInstance(received.value, StaleEpoch)
        self.assertEqual(header[0]["node_id"], nodes.a.node_id)
        self.assertTrue(nodes.call(nodes.a.volumes)[0].owned)

    def test_receive_while_pushing_not_owned(self):
        """
        A push into a node still marked as pushing the volume whose copy
        there is gone (deleted by hand while its own push waited for the
        volume) waits its turn and is decided like any other push, as the
        receive under way: a first copy from a node this one does not
        expect is refused in one line, naming it.
        """
        nodes = ZFSNodes(self)
        request = json.dumps({"snapshot": "flocker-x", "base": None,
                              "owner": "node-x", "epoch": 1})
        read_fd, write_fd = os.pipe()
        os.write(write_fd, request.encode("ascii") + b"\n")
        os.close(write_fd)
        self.addCleanup(os.close, read_fd)
        header = []
        # What a push of the volume marks while it holds the volume.
        nodes.a._pushing.add("app")
        with self.assertRaises(NotOwner) as caught:
            nodes.call(nodes.a.receive, "app", read_fd, header.append,
                       caller="node-x")
        self.assertEqual(
            (header[0]["snapshots"], caught.exception.message),
            ([], "this node (%s) has no copy of volume app and was not told "
             "to expect it from node node-x (the deploy named no node it "
             "may come from); node node-x may not push it"
             % (nodes.a.node_id,)))

    def test_prune_leaves_other_snapshots(self):
        """
        Pruning destroys only Flocker's own snapshots; one taken by someone
        else stays.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        _zfs("snapshot", "%s/app@operator-backup" % (nodes.a.pool.name,))
        nodes.call(nodes.a.snapshot, "app")
        nodes.call(nodes.a.snapshot, "app")
        pruned = nodes.call(nodes.a.prune_snapshots, "app")
        self.assertEqual(len(pruned), 1)
        snapshots = nodes.call(nodes.a.volumes)[0].snapshots
        self.assertEqual(snapshots[0], "operator-backup")
        self.assertEqual(len(snapshots), 2)

    def test_push_answers_before_pruning(self):
        """
        A push answers while the pruning it queued is still to run; once
        that is done, the owner keeps the snapshot pushed and the
        ``FOLLOWER_SNAPSHOTS`` before it, the follower its newest
        ``FOLLOWER_SNAPSHOTS``, among them the pushed one, from which the
        next push is incremental.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        target = nodes.address(nodes.b)
        for _ in range(FOLLOWER_SNAPSHOTS + 1):
            nodes.call(nodes.a.push, "app", target)

        def push(reactor):
            return nodes.a.push("app", target).addCallback(
                lambda result: (result, nodes.a.settled().called))
        result, settled = run_in_reactor(push, timeout=120)
        nodes.call(lambda: None)
        ours = list(nodes.call(nodes.a.volumes)[0].snapshots)
        theirs = list(nodes.call(nodes.b.volumes)[0].snapshots)
        following = nodes.call(nodes.a.push, "app", target)
        self.assertEqual(
            (settled, len(ours), ours[-1], theirs, following.base),
            (False, FOLLOWER_SNAPSHOTS + 1, result.snapshot,
             ours[-FOLLOWER_SNAPSHOTS:], result.snapshot))

    def test_held_snapshot_left(self):
        """
        A snapshot an operator holds (``zfs hold``) is left by the pruning
        after a push, which prunes nothing else needed and the push
        stands; once released, the next push's pruning destroys it.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        target = nodes.address(nodes.b)
        for _ in range(FOLLOWER_SNAPSHOTS + 1):
            nodes.call(nodes.a.push, "app", target)
        oldest = nodes.call(nodes.a.volumes)[0].snapshots[0]
        held = "%s/app@%s" % (nodes.a.pool.name, oldest)
        _zfs("hold", "operator", held)
        nodes.call(nodes.a.push, "app", target)
        kept = list(nodes.call(nodes.a.volumes)[0].snapshots)
        _zfs("release", "operator", held)
        nodes.call(nodes.a.push, "app", target)
        after = list(nodes.call(nodes.a.volumes)[0].snapshots)
        self.assertEqual(
            (kept[0], len(kept), oldest in after, len(after)),
            (oldest, FOLLOWER_SNAPSHOTS + 2, False, FOLLOWER_SNAPSHOTS + 1))

    def test_push_holds_base(self):
        """
        The owner holds the snapshot a target confirmed last (the base of its
        next incremental): ZFS refuses to destroy it; the next push holds the
        new snapshot and releases the old one (which the push after prunes).
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        first = nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        held_first = _holds(nodes.a.pool, "app")
        refused = subprocess.run(
            ["zfs", "destroy", "%s/app@%s" % (nodes.a.pool.name, first.snapshot)],
            capture_output=True, timeout=60)
        second = nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        self.assertEqual(
            (held_first, refused.returncode != 0,
             _holds(nodes.a.pool, "app")),
            ({first.snapshot: 1}, True, {first.snapshot: 0, second.snapshot: 1}))

    def test_handoff_releases_holds(self):
        """
        A copy that hands its volume off keeps no hold: as a follower its
        snapshots are the new owner's to prune, and the volume moves back
        incrementally.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        nodes.call(nodes.a.handoff, "app", nodes.address(nodes.b))
        released = _holds(nodes.a.pool, "app")
        back = nodes.call(nodes.b.handoff, "app", nodes.address(nodes.a))
        self.assertEqual((set(released.values()), back.base is not None),
                         ({0}, True))

    def test_former_owner_releases_on_receive(self):
        """
        A copy that was the owner and never handed off (a node fenced after a
        failover) releases its holds when it receives from the new owner, so
        the rollback to the common snapshot can destroy what it must.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        base = nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        nodes.call(nodes.a.snapshot, "app")
        later = nodes.call(nodes.a.push, "app", nodes.address(nodes.c))
        # b takes over without a hand-off, as after a failover.
        _zfs("set", "flocker:owner=%s" % (nodes.b.node_id,),
             "%s/app" % (nodes.b.pool.name,))
        _zfs("set", "readonly=off", "%s/app" % (nodes.b.pool.name,))
        _zfs("set", "flocker:owner=%s" % (nodes.b.node_id,),
             "%s/app" % (nodes.a.pool.name,))
        held = _holds(nodes.a.pool, "app")
        nodes.call(nodes.b.acquire, "app")
        pushed = nodes.call(nodes.b.push, "app", nodes.address(nodes.a))
        # What stays held is the snapshot it received, as on any follower.
        self.assertEqual(
            (held[later.snapshot], pushed.base,
             {snapshot for snapshot, count in
              _holds(nodes.a.pool, "app").items() if count}),
            (1, base.snapshot, {pushed.snapshot}))

    def test_delete_held(self):
        """
        Deleting a volume whose snapshots Flocker holds releases them first.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        nodes.call(nodes.a.delete, "app")
        self.assertIsNone(nodes.call(nodes.a.pool.get, "app"))

    def test_in_use_by_open_file(self):
        """
        ``processes_using`` finds this process while it holds a file open in
        a volume, and nothing once it is closed.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"x")
        mountpoint = nodes.call(nodes.a.mountpoint, "app").path
        dataset = "%s/app" % (nodes.a.pool.name,)
        with open(os.path.join(mountpoint, "f")):
            self.assertIn(os.getpid(), processes_using(dataset, mountpoint))
        self.assertNotIn(os.getpid(), processes_using(dataset, mountpoint))

    def test_in_use_by_other_mount(self):
        """
        A volume bind-mounted elsewhere (as into a container) is in use.
        """
        nodes = ZFSNodes(self)
        tmp_path = temporary_path(self)
        nodes.call(nodes.a.create, "app")
        mountpoint = nodes.call(nodes.a.mountpoint, "app").path
        dataset = "%s/app" % (nodes.a.pool.name,)
        target = tmp_path / "container-data"
        target.mkdir()
        subprocess.run(["mount", "--bind", mountpoint, str(target)], check=True,
                       timeout=30)
        try:
            self.assertTrue(processes_using(dataset, mountpoint))
        finally:
            subprocess.run(["umount", str(target)], check=True, timeout=30)
        self.assertFalse(processes_using(dataset, mountpoint))

    def test_open_missing_pool(self):
        """
        Opening the service on a pool that does not exist fails with
        ``PoolMissing``.
        """
        require_zfs()
        from flocker.volume._errors import PoolMissing
        with self.assertRaises(PoolMissing):
            run_in_reactor(open_volume_service, "flocker-test-no-such-pool", ENV)

    def test_node_identity_stable(self):
        """
        The node identity is stored in the pool: opening the service again
        gives the same one.
        """
        nodes = ZFSNodes(self)
        again = run_in_reactor(open_volume_service, nodes.a.pool.name, ENV)
        self.assertEqual(again.node_id, nodes.a.node_id)
        self.assertNotEqual(nodes.a.node_id, nodes.b.node_id)

    def test_pool_scoped(self):
        """
        The service's pool object names only datasets in its own pool.
        """
        nodes = ZFSNodes(self)
        self.assertIsInstance(nodes.a.pool, ZFSPool)
        self.assertEqual(nodes.a.pool.dataset("app"),
                         nodes.a.pool.name + "/app")

    def test_open_one_command(self):
        """
        Opening a pool that has its node identity runs one ``zfs`` command;
        the first time, the identity is then set and read back.
        """
        require_zfs()
        pools = FilePools()
        try:
            fresh = pools.create("fresh")
            first, messages = _logged(run_in_reactor, open_volume_service,
                                      fresh, ENV)
            self.assertEqual(
                [argv[1] for argv in _commands(messages, fresh)],
                ["get", "set", "get"])
            again, messages = _logged(run_in_reactor, open_volume_service,
                                      fresh, ENV)
            [argv] = _commands(messages, fresh)
            self.assertEqual(argv[:5], ["zfs", "get", "-H", "-p", "-d"])
            self.assertEqual(again.node_id, first.node_id)
        finally:
            pools.destroy()

    def test_open_listing_used_once(self):
        """
        The listing taken while opening the pool answers an operation started
        right after it, and only that one: a later one lists the pool again.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        pool = nodes.a.pool.name

        def open_and_list(reactor):
            return open_volume_service(reactor, pool, ENV).addCallback(
                lambda service: service.volumes().addCallback(
                    lambda infos: (service, infos)))
        (service, infos), messages = _logged(run_in_reactor, open_and_list)
        self.assertEqual([info.name for info in infos], ["app"])
        self.assertEqual(len(_commands(messages, pool)), 1)
        nodes.call(nodes.a.create, "other")
        infos, messages = _logged(nodes.call, service.volumes)
        self.assertEqual([info.name for info in infos], ["app", "other"])
        self.assertEqual(len(_commands(messages, pool)), 1)

    def test_full_push_commands(self):
        """
        The receiving side of a first push runs one command to open its pool
        (the listing it needs included), receives unmounted beside the
        volume's name, sets readonly, atime, the maximum size and the owner's
        epoch (together), the owner, renames the prepared copy to the volume's
        name, then holds the snapshot received (its next base), and asks
        nothing more: the copy ends up an unmounted follower, and a receive
        cut short never leaves a copy under that name naming no owner (on
        which every later push would be refused).
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app", 8 * 1024 * 1024)
        result, messages = _logged(nodes.call, nodes.a.push, "app",
                                   nodes.address(nodes.b))
        pool = nodes.b.pool.name
        dataset = pool + "/app"
        received = dataset + ".flocker-recv"
        commands = _without_detection(_commands(messages, pool), pool)
        self.assertEqual(commands[0][:2], ["zfs", "get"])
        self.assertEqual(commands[1], ["zfs", "receive", "-u", received])
        self.assertEqual(
            sorted(commands[2:-3]),
            [["zfs", "set", "atime=off", received],
             ["zfs", "set", "flocker:epoch=1", received],
             ["zfs", "set", "readonly=on", received],
             ["zfs", "set", "refquota=8388608", received]])
        self.assertEqual(
            commands[-3:],
            [["zfs", "set", "flocker:owner=" + nodes.a.node_id, received],
             ["zfs", "rename", received, dataset],
             ["zfs", "hold", "flocker-received", dataset + "@" + result.snapshot]])
        copy = nodes.call(nodes.b.pool.get, "app")
        self.assertFalse(copy.mounted)
        self.assertEqual(
            (copy.owner, copy.get("atime"), copy.maximum_size),
            (nodes.a.node_id, "off", 8 * 1024 * 1024))

    def test_incremental_push_commands(self):
        """
        A negotiated incremental push into a prepared follower costs the
        receiving side the opening listing, the receive and moving its hold
        from the base to the snapshot received, the new one held before
        the base is released, both after the receive (it keeps the base: a
        follower keeps its newest ``FOLLOWER_SNAPSHOTS``); the follower
        stays unmounted.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        _forget_pushes(nodes)
        nodes.write(nodes.a, "app", "f", b"more")
        result, messages = _logged(nodes.call, nodes.a.push, "app",
                                   nodes.address(nodes.b))
        self.assertIsNotNone(result.base)
        pool = nodes.b.pool.name
        self.assertEqual(
            [argv[:3] for argv in _without_detection(
                _commands(messages, pool), pool)],
            [["zfs", "get", "-H"], ["zfs", "receive", "-F"],
             ["zfs", "hold", "flocker-received"],
             ["zfs", "release", "flocker-received"]])
        copy = nodes.call(nodes.b.pool.get, "app")
        self.assertFalse(copy.mounted)
        self.assertEqual(list(copy.snapshots),
                         [result.base, result.snapshot])
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"more")

    def test_incremental_into_mounted_follower(self):
        """
        A follower someone mounted is unmounted by the next negotiated
        incremental push into it, right after the receive (which, with -u,
        leaves a mounted dataset mounted).
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        pool = nodes.b.pool.name
        _zfs("mount", "%s/app" % (pool,))
        _forget_pushes(nodes)
        nodes.write(nodes.a, "app", "f", b"more")
        result, messages = _logged(nodes.call, nodes.a.push, "app",
                                   nodes.address(nodes.b))
        self.assertIsNotNone(result.base)
        self.assertEqual(
            [argv[1] for argv in _without_detection(
                _commands(messages, pool), pool)],
            ["get", "receive", "unmount", "hold", "release"])
        self.assertFalse(nodes.call(nodes.b.pool.get, "app").mounted)
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"more")

    def test_full_stream_swap(self):
        """
        A full stream replacing a follower is received unmounted beside it and
        swapped in without unmounting anything (nothing is mounted), leaving
        one unmounted follower and no temporary dataset.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        nodes.call(nodes.a.delete, "app")
        nodes.call(nodes.a.create, "app")
        nodes.write(nodes.a, "app", "f", b"new")
        result, messages = _logged(nodes.call, nodes.a.push, "app",
                                   nodes.address(nodes.b))
        self.assertIsNone(result.base)
        pool = nodes.b.pool.name
        commands = _commands(messages, pool)
        self.assertIn(["zfs", "receive", "-u", pool + "/app.flocker-recv"],
                      commands)
        self.assertEqual([argv for argv in commands if argv[1] == "unmount"],
                         [])
        self.assertEqual(
            _zfs("list", "-H", "-o", "name,mounted", "-r", pool).split(
                "\n")[1:],
            [pool + "/app\tno", ""])
        copy = nodes.call(nodes.b.pool.get, "app")
        self.assertEqual((copy.owner, copy.get("atime")),
                         (nodes.a.node_id, "off"))
        self.assertEqual(nodes.read(nodes.b, "app", "f"), b"new")

    def test_push_done_at_confirmation(self):
        """
        The pushing side records what the target has as soon as the target
        confirms, not when its command exits; that command's log still joins
        the push's, and a failure it reports after confirming is logged, not
        raised (the copy is there).  The target's command ends only once
        the record was logged, so a push that waited for the command would
        log the late failure first.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        gate = Deferred()
        nodes.remote.linger[nodes.address(nodes.b)] = (gate, 7)

        def recording(message):
            return (message.get("action_type") == ZFS_COMMAND.action_type
                    and message.get("action_status") == "started"
                    and message["argv"][2:3] != []
                    and message["argv"][2].startswith("flocker:pushed="))
        _open_gate_at(self, gate, recording)
        result, messages = _logged(nodes.call, nodes.a.push, "app",
                                   nodes.address(nodes.b))
        [recorded] = [message for message in messages if recording(message)]
        [late] = [message for message in messages if message.get(
            "message_type") == LATE_REMOTE_FAILURE.message_type]
        self.assertLess(messages.index(recorded), messages.index(late))
        self.assertEqual(late["task_uuid"], recorded["task_uuid"])
        self.assertEqual(
            late["reason"],
            "node %s: exit code 7" % (
                nodes.address(nodes.b),))
        self.assertEqual(
            [message["action_status"] for message in messages
             if message.get("action_type") == "flocker:volume:receive"],
            ["started", "succeeded"])
        self.assertEqual(nodes.call(nodes.b.volumes)[0].snapshots[-1],
                         result.snapshot)

    def test_handoff_done_at_confirmation(self):
        """
        A hand-off goes on with its last steps (the new owner's acquire
        included) as soon as the target confirms the final increment, and
        answers while the target's receiving command is still exiting; that
        command's late failure is logged when it ends, under the volume's
        lock, which the next operation on the volume waits for.  The
        target's command ends only once the hand-off has answered, so a
        hand-off that waited for the command would never answer before its
        late failure.
        """
        nodes = ZFSNodes(self)
        nodes.call(nodes.a.create, "app")
        nodes.call(nodes.a.push, "app", nodes.address(nodes.b))
        _forget_pushes(nodes)
        gate = Deferred()
        nodes.remote.linger[nodes.address(nodes.b)] = (gate, 7)
        seen = []
        add_destinations(seen.append)
        self.addCleanup(remove_destination, seen.append)
        late_at_answer = []

        def late_failure(message):
            return (message.get("message_type")
                    == LATE_REMOTE_FAILURE.message_type)

        def handoff():
            def then(result):
                late_at_answer.extend(filter(late_failure, seen))
                gate.callback(None)
                return nodes.a._locked("app", lambda: succeed(result))
            return nodes.a.handoff("app", nodes.address(nodes.b)
                                   ).addCallback(then)
        result, messages = _logged(nodes.call, handoff)
        [acquire] = [message for message in messages
                     if message.get("action_type") == "flocker:volume:remote"
                     and message.get("action_status") == "started"
                     and "acquire" in message["argv"]]
        [late] = [message for message in messages if late_failure(message)]
        self.assertLess(messages.index(acquire), messages.index(late))
        self.assertEqual(late_at_answer, [])
        self.assertIsNotNone(result.base)
        self.assertTrue(nodes.call(nodes.b.volumes)[0].owned)
