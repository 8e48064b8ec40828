"""
Tests for ``flocker.node._peer_remote``: a push's receiving end started on
another node's agent over Conch, through a real sshd on loopback, the node
key's forced ``flocker-node-bridge --peer`` and a peer socket served in the
test reactor (by a :class:`PeerFactory` over a fake volume service).
"""

import os
import socket

import pytest
from twisted.internet.defer import inlineCallbacks

from flocker.cli.test.test_nodekey import (  # noqa: F401 (fixtures)
    _installed, authorized_keys, sshd,
)
from flocker.testtools import run_in_reactor
from flocker.volume import HostKeyRejected, TargetUnreachable

from .._peer import PeerFactory
from .._peer_remote import DEAD_PEER_SECONDS, AgentRemote, _tune_socket
from .test_peer import _Receiver, _Router


@pytest.fixture
def peer(sshd, tmp_path, authorized_keys):  # noqa: F811
    """
    A node key installed for caller ``node-a`` at 127.0.0.1 whose forced
    command reaches a peer socket served over a :class:`_Receiver`; yields
    ``(store, receiver)``.
    """
    peer_socket = str(tmp_path / "peer.sock")
    receiver = _Receiver()
    port = run_in_reactor(lambda reactor: reactor.listenUNIX(
        peer_socket, PeerFactory(reactor, lambda: receiver, _Router()),
        mode=0o600))
    store, _ = _installed(sshd, tmp_path,
                          sshd.known_hosts_line("127.0.0.1").decode(),
                          peer_socket)
    yield store, receiver
    run_in_reactor(lambda reactor: port.stopListening())


def _push(sshd, store, stream, words=("receive", "app"), address="127.0.0.1"):
    """
    Start ``words`` on ``address`` through an :class:`AgentRemote`, write
    ``stream`` and close it, then collect every line and how it ended.

    :return: ``(lines, result)``.
    """
    @inlineCallbacks
    def push(reactor):
        remote = AgentRemote(reactor, store, port=sshd.port,
                             username="root")
        try:
            command, stdin = yield remote.start(address, list(words))
            os.write(stdin, stream)
            os.close(stdin)
            lines = []
            while True:
                line = yield command.next_line()
                if line is None:
                    break
                lines.append(line)
            result = yield command.ended
        finally:
            yield remote.close()
        return lines, result
    return run_in_reactor(push)


def test_push_reaches_the_agent(sshd, peer):  # noqa: F811
    """
    The stream written into the command's pipe reaches the receiving
    agent's volume service, which knows the caller by the key's line; its
    answers come back as lines, and the session ends with exit status 0.
    """
    store, receiver = peer
    lines, result = _push(sshd, store, b"STREAM" * 100000)
    assert receiver.calls == [("app", "node-a")]
    assert lines == [
        b'{"protocol": 1, "node_id": "target"}',
        b'{"received": "%s", "node_id": "target"}' % (b"STREAM" * 100000,)]
    assert result.exit_code == 0


def test_refused_command(sshd, peer):  # noqa: F811
    """
    A command the node key may not run ends with exit status 1 and the
    refusal on standard error; the volume service is not asked.
    """
    store, receiver = peer
    lines, result = _push(sshd, store, b"", words=(
        "acquire", "app", "--snapshot", "s", "--node-id", "node-a"))
    assert (lines, result.exit_code) == ([], 1)
    assert result.stderr.startswith(b"flocker-node-bridge: refused: ")
    assert receiver.calls == []


def test_unknown_host_key(sshd, peer):  # noqa: F811
    """
    A node whose host key the node key's known_hosts does not list is
    refused before anything is sent, with ``HostKeyRejected`` naming it.
    """
    store, receiver = peer
    with open(store.known_hosts_path, "w") as f:
        f.write(sshd.known_hosts_line("127.0.0.2").decode())
    with pytest.raises(HostKeyRejected) as caught:
        _push(sshd, store, b"")
    assert caught.value.message.startswith("node 127.0.0.1: its SSH host key")
    assert receiver.calls == []


def test_no_key_yet(tmp_path):
    """
    Before the deploy installed the node key, a push fails with one line
    saying so.
    """
    from flocker.volume._nodekey import NodeKeyStore
    store = NodeKeyStore(str(tmp_path / "node-key"),
                         str(tmp_path / "authorized_keys"), "/bin/true")
    with pytest.raises(TargetUnreachable) as caught:
        run_in_reactor(lambda reactor: AgentRemote(reactor, store).start(
            "127.0.0.1", ["receive", "app"]))
    assert "run flocker-deploy to install it" in caught.value.message


def test_dead_peer_noticed():
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
        assert (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
                sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
                sock.getsockopt(tcp, socket.TCP_KEEPCNT),
                sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT)) == (
            1, DEAD_PEER_SECONDS // 3, DEAD_PEER_SECONDS // 3, 3,
            DEAD_PEER_SECONDS * 1000)
    finally:
        sock.close()


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


def test_session_end_breaks_the_pipe():
    """
    When the session ends while the stream is still being written (its
    window shut: the other node's agent died mid-transfer), the stream's
    pipe is closed, so its writer fails at once instead of waiting forever.
    """
    from twisted.internet.task import Clock
    from .._peer_remote import _PeerCommand

    class _Reactor(Clock):
        def addReader(self, reader):
            pass

        def removeReader(self, reader):
            pass
    running = _Running()
    command, stdin = _PeerCommand(["ssh"]).started(_Reactor(), running)
    try:
        running.ended.callback((None, None, b""))
        with pytest.raises(BrokenPipeError):
            os.write(stdin, b"x")
        assert command.ended.called
    finally:
        os.close(stdin)
