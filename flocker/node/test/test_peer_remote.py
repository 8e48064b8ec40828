"""
Tests for ``flocker.node._peer_remote``: a push's receiving end started on
another node's agent over Conch, through a real sshd on loopback, the node
key's forced ``flocker-node-bridge --peer`` and a peer socket served in the
test reactor (by a :class:`PeerFactory` over a fake volume service).
"""

import os
import socket

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from flocker.cli.test._sshd import class_sshd
from flocker.cli.test.test_nodekey import (
    _installed, agent_push, authorized_keys_for,
)
from flocker._model import NodeKey
from flocker.testtools import run_in_reactor, temporary_path
from flocker.volume import (
    AuthenticationRefused, HostKeyRejected, TargetUnreachable,
)
from flocker.volume._nodekey import NodeKeyStore
from flocker.volume._process import close_quietly, make_pipe

from .._peer import PeerFactory
from .._peer_remote import (
    DEAD_PEER_SECONDS, STREAM_CHUNK, STREAM_READS_PER_TURN, AgentRemote,
    _PeerCommand, _PipeFeeder, _tune_socket,
)
from .test_peer import _Receiver, _Router


def peer_for(test, sshd):
    """
    Install a node key for caller ``node-a`` at 127.0.0.1 whose forced
    command reaches a peer socket served over a :class:`_Receiver` until
    ``test`` ends (the sshd's ``authorized_keys`` is put back then).

    :param test: The ``TestCase``.
    :param sshd: The :class:`SSHServer`.
    :return: ``(store, receiver)``.
    """
    authorized_keys_for(test, sshd)
    tmp_path = temporary_path(test)
    peer_socket = str(tmp_path / "peer.sock")
    receiver = _Receiver()
    port = run_in_reactor(lambda reactor: reactor.listenUNIX(
        peer_socket, PeerFactory(reactor, lambda: receiver, _Router()),
        mode=0o600))
    test.addCleanup(run_in_reactor, lambda reactor: port.stopListening())
    store = _installed(sshd, tmp_path,
                       sshd.known_hosts_line("127.0.0.1").decode(),
                       peer_socket)
    return store, receiver


class _Running(object):
    """
    A session that takes nothing (its window is shut) until it ends.
    """

    def __init__(self):
        from twisted.internet.defer import Deferred
        self.ended = Deferred()
        self.written = []

    def register_producer(self, producer):
        producer.pauseProducing()

    def write(self, data):
        self.written.append(data)

    def close_input(self):
        pass


class _Reactor(Clock):
    """
    A clock that takes readers (the stream pipe's feeder) and never
    calls them.
    """

    def addReader(self, reader):
        pass

    def removeReader(self, reader):
        pass


class _FakeRunner(object):
    """
    A runner whose every start waits for the test: ``starts`` holds a
    ``Deferred`` per start, to fire with a :class:`_Running` or fail.
    """

    def __init__(self):
        self.starts = []
        self.closed = False

    def start(self, address, argv, received):
        d = Deferred()
        self.starts.append(d)
        return d

    def close(self):
        self.closed = True
        return succeed(None)


class _KeyFiles(object):
    """
    The two files of an installed node key that ``AgentRemote`` reads.
    """

    def __init__(self, test):
        directory = temporary_path(test)
        self.identity_path = str(directory / "id_ed25519")
        self.known_hosts_path = str(directory / "known_hosts")
        self.switch(b"first key")
        with open(self.known_hosts_path, "wb") as f:
            f.write(b"known hosts")

    def switch(self, key):
        """
        Install ``key`` as this node's key, as a rotation's switch does.
        """
        with open(self.identity_path, "wb") as f:
            f.write(key)


class AgentRemoteRotationTests(SynchronousTestCase):
    """
    ``AgentRemote`` while a node key rotation switches this node's key:
    pushes under way go on, and a login refused with the key just replaced
    is tried once more (no SSH: runners are fakes).
    """

    def setUp(self):
        self.keys = _KeyFiles(self)
        self.runners = []

        def make_runner():
            self.runners.append(_FakeRunner())
            return self.runners[-1]
        self.remote = AgentRemote(_Reactor(), self.keys,
                                  make_runner=make_runner)

    def test_session_outlives_switch(self):
        """
        A session running when the key is switched is not cut off: the
        next push gets a runner with the new key, and the old runner is
        closed once its last session ended.
        """
        first = self.remote.start("10.0.0.2", ["receive", "app"])
        running = _Running()
        self.runners[0].starts[0].callback(running)
        command, stdin = self.successResultOf(first)
        self.addCleanup(os.close, stdin)
        self.keys.switch(b"second key")
        self.remote.start("10.0.0.2", ["receive", "app"])
        self.assertEqual(
            [(len(runner.starts), runner.closed) for runner in self.runners],
            [(1, False), (1, False)])
        running.ended.callback((0, None, b""))
        self.assertEqual(self.successResultOf(command.ended).exit_code, 0)
        self.assertEqual([runner.closed for runner in self.runners],
                         [True, False])

    def test_idle_runner_closed_at_switch(self):
        """
        A runner with no session left is closed as soon as a push finds
        the key switched.
        """
        first = self.remote.start("10.0.0.2", ["receive", "app"])
        running = _Running()
        self.runners[0].starts[0].callback(running)
        command, stdin = self.successResultOf(first)
        os.close(stdin)
        running.ended.callback((0, None, b""))
        self.assertFalse(self.runners[0].closed)
        self.keys.switch(b"second key")
        self.remote.start("10.0.0.2", ["receive", "app"])
        self.assertEqual([runner.closed for runner in self.runners],
                         [True, False])

    def _refused(self, runner):
        from flocker._ssh import AuthenticationFailed
        runner.starts[-1].errback(AuthenticationFailed(
            "10.0.0.2", "no key offered was accepted"))

    def test_refused_after_switch_retried(self):
        """
        A login refused while the key was switched after the push read it
        is tried once more, on a runner with the new key.
        """
        started = self.remote.start("10.0.0.2", ["receive", "app"])
        self.keys.switch(b"second key")
        self._refused(self.runners[0])
        self.assertNoResult(started)
        running = _Running()
        self.runners[1].starts[0].callback(running)
        command, stdin = self.successResultOf(started)
        os.close(stdin)
        self.assertEqual([(len(runner.starts), runner.closed)
                          for runner in self.runners], [(1, True), (1, False)])

    def test_refused_unchanged_key(self):
        """
        A login refused with the key installed now fails the push with
        ``AuthenticationRefused`` naming the node, after one attempt.
        """
        started = self.remote.start("10.0.0.2", ["receive", "app"])
        self._refused(self.runners[0])
        error = self.failureResultOf(started, AuthenticationRefused).value
        self.assertEqual(
            (error.message, len(self.runners), len(self.runners[0].starts)),
            ("cannot reach node 10.0.0.2: no key offered was accepted", 1, 1))

    def test_refused_twice(self):
        """
        Refused again after the retry with the new key, the push fails: it
        tries once more only.
        """
        started = self.remote.start("10.0.0.2", ["receive", "app"])
        self.keys.switch(b"second key")
        self._refused(self.runners[0])
        self.keys.switch(b"third key")
        self._refused(self.runners[1])
        self.failureResultOf(started, AuthenticationRefused)
        self.assertEqual([len(runner.starts) for runner in self.runners],
                         [1, 1])

    def test_close(self):
        """
        ``close`` closes the current runner and one replaced but still
        running a session.
        """
        first = self.remote.start("10.0.0.2", ["receive", "app"])
        self.runners[0].starts[0].callback(_Running())
        command, stdin = self.successResultOf(first)
        self.addCleanup(os.close, stdin)
        self.keys.switch(b"second key")
        self.remote.start("10.0.0.2", ["receive", "app"])
        self.successResultOf(self.remote.close())
        self.assertEqual([runner.closed for runner in self.runners],
                         [True, True])


class AgentRemoteSSHTests(SynchronousTestCase):
    """
    ``AgentRemote`` through a real sshd on loopback (one for the class),
    the node key's forced command and a peer socket.
    """

    @classmethod
    def setUpClass(cls):
        cls.sshd = class_sshd(cls)

    def test_push_reaches_the_agent(self):
        """
        The stream written into the command's pipe reaches the receiving
        agent's volume service, which knows the caller by the key's line; its
        answers come back as lines, and the session ends with exit status 0.
        """
        sshd = self.sshd
        peer = peer_for(self, sshd)
        store, receiver = peer
        lines, result = agent_push(sshd, store, b"STREAM" * 100000)
        self.assertEqual(receiver.calls, [("app", "node-a")])
        self.assertEqual(
            lines,
            [b'{"protocol": 1, "node_id": "target"}',
             b'{"received": "%s", "node_id": "target"}' % (b"STREAM" * 100000,)])
        self.assertEqual(result.exit_code, 0)

    def test_key_switched_while_logging_in(self):
        """
        When this node's key is switched (a rotation) after a push read the
        old one and the target stops taking the old one before the push
        logs in, the push logs in once more with the new key and its
        stream reaches the receiving agent.
        """
        sshd = self.sshd
        store, receiver = peer_for(self, sshd)
        target = NodeKeyStore(
            str(temporary_path(self) / "target-key"),
            os.path.join(sshd.directory, "authorized_keys"), store.command)
        with open(store.known_hosts_path) as f:
            known_hosts = f.read()

        def trust(*keys):
            return NodeKey(known_hosts=known_hosts, peers="".join(
                "node-a 127.0.0.1 %s\n" % (key,) for key in keys))
        old, new = store.ensure(), store.prepare_rotation()
        store.install(trust(old, new))
        target.install(trust(old, new))

        def switch():
            # The key the push logs in with was read already: the old one.
            store.finish_rotation()
            target.install(trust(new))
        lines, result = agent_push(sshd, store, b"STREAM", starting=switch)
        self.assertEqual((lines[-1], result.exit_code), (
            b'{"received": "STREAM", "node_id": "target"}', 0))
        self.assertEqual(receiver.calls, [("app", "node-a")])

    def test_refused_command(self):
        """
        A command the node key may not run ends with exit status 1 and the
        refusal on standard error; the volume service is not asked.
        """
        sshd = self.sshd
        peer = peer_for(self, sshd)
        store, receiver = peer
        lines, result = agent_push(sshd, store, b"", words=(
            "acquire", "app", "--snapshot", "s", "--node-id", "node-a"))
        self.assertEqual((lines, result.exit_code), ([], 1))
        self.assertTrue(
            result.stderr.startswith(b"flocker-node-bridge: refused: "))
        self.assertEqual(receiver.calls, [])

    def test_unknown_host_key(self):
        """
        A node whose host key the node key's known_hosts does not list is
        refused before anything is sent, with ``HostKeyRejected`` naming it.
        """
        sshd = self.sshd
        peer = peer_for(self, sshd)
        store, receiver = peer
        with open(store.known_hosts_path, "w") as f:
            f.write(sshd.known_hosts_line("127.0.0.2").decode())
        with self.assertRaises(HostKeyRejected) as caught:
            agent_push(sshd, store, b"")
        self.assertTrue(caught.exception.message.startswith(
            "node 127.0.0.1: its SSH host key"), caught.exception.message)
        self.assertEqual(receiver.calls, [])


class AgentRemoteTests(SynchronousTestCase):
    """
    ``AgentRemote`` without a key yet, and how it notices a dead peer.
    """

    def _refusal(self, prepare):
        """
        :param prepare: Called with the node's empty ``NodeKeyStore``.
        :return: The message of the ``TargetUnreachable`` a push then
            fails with.
        """
        tmp_path = temporary_path(self)
        from flocker.volume._nodekey import NodeKeyStore
        store = NodeKeyStore(str(tmp_path / "node-key"),
                             str(tmp_path / "authorized_keys"), "/bin/true")
        prepare(store)
        with self.assertRaises(TargetUnreachable) as caught:
            run_in_reactor(lambda reactor: AgentRemote(reactor, store).start(
                "127.0.0.1", ["receive", "app"]))
        return caught.exception.message, store

    def test_no_key_yet(self):
        """
        Before the node made its key, a push fails with one line saying so
        and naming the missing file.
        """
        message, store = self._refusal(lambda store: None)
        self.assertEqual(
            message, "this node has no node key yet (the agent makes it at "
            "start: see flocker-node doctor): %s is missing" % (
                store.identity_path,))

    def test_no_known_hosts_yet(self):
        """
        With its own key but before a deploy installed the other nodes'
        host keys, a push fails saying that the known hosts are missing,
        not the key.
        """
        message, store = self._refusal(lambda store: store.ensure())
        self.assertEqual(
            message, "this node has no known hosts for the other nodes "
            "yet; run flocker-deploy to install them: %s is missing" % (
                store.known_hosts_path,))

    def test_unreadable(self):
        """
        A key file that exists but cannot be read is named with the error,
        not reported as missing.
        """
        message, store = self._refusal(
            lambda store: os.makedirs(store.identity_path))
        self.assertEqual(message, "cannot read %s: Is a directory" % (
            store.identity_path,))

    def test_dead_peer_noticed(self):
        """
        Connections to other nodes give a node that stops answering up within
        ``DEAD_PEER_SECONDS``: keep-alives every third of it while idle, three
        unanswered ones, and at most that long for sent data to be
        acknowledged.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            _tune_socket(sock)
            tcp = socket.IPPROTO_TCP
            self.assertEqual(
                (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                 sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
                 sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
                 sock.getsockopt(tcp, socket.TCP_KEEPCNT),
                 sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT)),
                (1, DEAD_PEER_SECONDS // 3, DEAD_PEER_SECONDS // 3, 3,
                 DEAD_PEER_SECONDS * 1000))
        finally:
            sock.close()

    def test_session_end_breaks_the_pipe(self):
        """
        When the session ends while the stream is still being written (its
        window shut: the other node's agent died mid-transfer), the stream's
        pipe is closed, so its writer fails at once instead of waiting forever.
        """
        running = _Running()
        command, stdin = _PeerCommand(["ssh"]).started(_Reactor(), running)
        try:
            running.ended.callback((None, None, b""))
            with self.assertRaises(BrokenPipeError):
                os.write(stdin, b"x")
            self.assertTrue(command.ended.called)
        finally:
            os.close(stdin)


class _Taking(object):
    """
    A session taking what it is written; its window shuts (pausing the
    feeder) once ``window`` writes were made, if a window is given.
    """

    def __init__(self, window=None):
        self.written = []
        self.closed = False
        self.feeder = None
        self._window = window

    def write(self, data):
        self.written.append(data)
        if self._window is not None and len(self.written) >= self._window:
            self.feeder.pauseProducing()

    def close_input(self):
        self.closed = True


class PipeFeederTests(SynchronousTestCase):
    """
    How ``_PipeFeeder`` reads the stream's pipe: packet-sized reads, a few
    per reactor turn, none once the window is full.
    """

    def _feeder(self, size, window=None):
        """
        :return: ``(feeder, session)``: a feeder of a pipe holding ``size``
            bytes, its writer closed.
        """
        # The pipe a push's stream goes through (1 MiB where allowed).
        read_fd, write_fd = make_pipe()
        self.addCleanup(close_quietly, read_fd)
        os.write(write_fd, b"x" * size)
        os.close(write_fd)
        session = _Taking(window)
        feeder = _PipeFeeder(_Reactor(), read_fd, session)
        session.feeder = feeder
        return feeder, session

    def test_packet_sized_reads_per_turn(self):
        """
        One turn (``doRead``) reads ``STREAM_READS_PER_TURN`` pieces of
        ``STREAM_CHUNK`` bytes, each written to the session as read.
        """
        feeder, session = self._feeder(
            STREAM_CHUNK * (STREAM_READS_PER_TURN + 1))
        feeder.doRead()
        self.assertEqual([len(data) for data in session.written],
                         [STREAM_CHUNK] * STREAM_READS_PER_TURN)

    def test_under_mmap_threshold(self):
        """
        What one turn reads stays under glibc's mmap threshold as the
        agent's unit fixes it (128 KiB), however much the pipe holds.
        """
        feeder, session = self._feeder(512 * 1024)
        feeder.doRead()
        self.assertLess(sum(len(data) for data in session.written),
                        128 * 1024)

    def test_stops_when_window_full(self):
        """
        A read that fills the session's window (the feeder paused) ends
        the turn: nothing more is read until it is resumed.
        """
        feeder, session = self._feeder(STREAM_CHUNK * 4, window=1)
        feeder.doRead()
        self.assertEqual(len(session.written), 1)

    def test_end_closes_input(self):
        """
        The pipe's end, reached within a turn, closes the session's input
        after everything before it was written.
        """
        feeder, session = self._feeder(STREAM_CHUNK + 10)
        feeder.doRead()
        self.assertEqual(([len(data) for data in session.written],
                          session.closed), ([STREAM_CHUNK, 10], True))
