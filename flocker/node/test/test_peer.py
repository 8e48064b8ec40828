"""
Tests for ``flocker.node._peer``: the agent's peer socket, reached through
``flocker-node-bridge --peer`` as sshd runs it under another node's key.
"""

import json
import os
import socket
import subprocess
import sys
from unittest import SkipTest

from twisted.internet.defer import fail
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import (
    cases, run_in_reactor, temporary_path, with_cases,
)
from flocker.volume import NotOwner

from .._peer import PeerFactory


class _Receiver(object):
    """
    A volume service that only receives: it records each call, answers as
    the real one does (a header), reads the whole stream and echoes it in
    its confirmation.
    """

    def __init__(self, refuse=None):
        self.calls = []
        self._refuse = refuse

    def receive(self, name, stream, emit, caller=None, expected=None,
                group=None):
        self.calls.append((name, caller))
        self.expected = expected
        self.group = group
        if self._refuse is not None:
            return fail(self._refuse)
        emit({"protocol": 1, "node_id": "target"})
        data = b""
        while True:
            # The test writes and closes the bridge's input before the
            # bridge starts, so these reads never wait.
            chunk = os.read(stream, 65536)
            if not chunk:
                break
            data += chunk
        emit({"received": data.decode("ascii"), "node_id": "target"})
        return None


class _Router(object):
    """
    An eliot router that watches nothing.
    """

    def watch(self, task_uuid, protocol):
        pass

    def unwatch(self, task_uuid, protocol):
        pass


def peer_socket(test):
    """
    A peer socket served in the test reactor by a :class:`PeerFactory`
    over a :class:`_Receiver`, for the length of ``test``.

    :param test: The ``TestCase`` (its ``addCleanup`` stops serving).
    :return: ``(path, serve)`` where ``serve(receiver, uid=None,
        senders=..., groups=...)`` starts serving (once).
    """
    directory = temporary_path(test) / "run"
    directory.mkdir(mode=0o755)
    path = str(directory / "peer.sock")
    ports = []

    def serve(receiver, uid=None, senders=lambda name: frozenset(),
              groups=lambda name: None):
        def listen(reactor):
            ports.append(reactor.listenUNIX(path, PeerFactory(
                reactor, lambda: receiver, _Router(), uid=uid,
                senders=senders, groups=groups), mode=0o666))
        run_in_reactor(listen)

    def stop():
        for port in ports:
            run_in_reactor(lambda reactor: port.stopListening())
    test.addCleanup(stop)
    return path, serve


def _bridge(path, command, stream=b"", caller="node-a", user=()):
    """
    Run ``flocker-node-bridge --peer`` as sshd would, the caller's request
    in ``SSH_ORIGINAL_COMMAND``.
    """
    environ = dict(os.environ)
    environ.pop("SSH_ORIGINAL_COMMAND", None)
    if command is not None:
        environ["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run(
        list(user) + [sys.executable, "-m", "flocker._bridge", "--peer",
                      "--caller", caller, "--socket", path],
        input=stream, capture_output=True, timeout=60, env=environ)


def _messages(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


@with_cases
class PeerBridgeTests(SynchronousTestCase):
    """
    ``flocker-node-bridge --peer`` hands pushes, and only pushes, to the
    agent's peer socket.
    """

    def test_push_received_by_the_agent(self):
        """
        A push handed over by the bridge is received by the agent's volume
        service, with the caller's identity as the key's line names it: the
        stream comes from the bridge's standard input, the answers go to its
        standard output, and the bridge exits with the agent's verdict.
        """
        path, serve = peer_socket(self)
        receiver = _Receiver()
        serve(receiver)
        result = _bridge(path, "flocker-volume receive app", b"STREAM")
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        self.assertEqual(receiver.calls, [("app", "node-a")])
        self.assertEqual(
            _messages(result.stdout),
            [{"protocol": 1, "node_id": "target"},
             {"received": "STREAM", "node_id": "target"}])

    def test_expected_senders_given(self):
        """
        The volume service is given, with each push, the nodes the agent's
        record says the volume's first copy may come from.
        """
        path, serve = peer_socket(self)
        receiver = _Receiver()
        serve(receiver, senders={"app": frozenset(["node-a"])}.get)
        result = _bridge(path, "flocker-volume receive app", b"STREAM")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(receiver.expected, frozenset(["node-a"]))

    def test_group_given(self):
        """
        The volume service is given, with each push, what the agent's
        automatic groups answer for the volume (how the receive asks etcd
        who holds the group's lease), and nothing for another volume.
        """
        path, serve = peer_socket(self)
        receiver = _Receiver()
        ask = object()
        serve(receiver, groups={"app": ask}.get)
        result = _bridge(path, "flocker-volume receive app", b"STREAM")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIs(receiver.group, ask)
        result = _bridge(path, "flocker-volume receive other", b"STREAM")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIsNone(receiver.group)

    @cases([(command,) for command in [
        None, "flocker-volume acquire app --snapshot s --node-id node-a",
        "zfs receive -F pool/app", "sh -c id", "flocker-volume receive ../x",
        "flocker-volume receive app; id",
    ]])
    def test_only_receive(self, command):
        """
        Anything but a push (no command, acquire, a bare ``zfs receive``, a
        shell, an unsafe name) is refused with one line and exit status 1;
        the volume service is never asked.
        """
        path, serve = peer_socket(self)
        receiver = _Receiver()
        serve(receiver)
        result = _bridge(path, command)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.count(b"\n"), 1)
        self.assertTrue(
            result.stderr.startswith(b"flocker-node-bridge: refused: "))
        self.assertEqual(receiver.calls, [])

    def test_refusal_reaches_the_caller(self):
        """
        A push the volume service refuses (the copy follows another node, say)
        gives the caller the typed error line a pushing node reads, and the
        bridge exits with 1 and the reason in one line.
        """
        path, serve = peer_socket(self)
        serve(_Receiver(refuse=NotOwner("this node's copy follows node-b")))
        result = _bridge(path, "flocker-volume receive app", b"")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            _messages(result.stdout),
            [{"error": "NotOwner",
              "message": "this node's copy follows node-b"}])
        self.assertEqual(
            result.stderr,
            b"flocker-node-bridge: this node's copy follows node-b\n")

    def test_other_user_dropped(self):
        """
        A connection from a user other than the agent's is dropped before
        anything is read, even where the socket's directory and mode would let
        that user connect.
        """
        if os.geteuid() != 0:
            raise SkipTest("needs root to run the bridge as another user")
        path, serve = peer_socket(self)
        receiver = _Receiver()
        serve(receiver, uid=0)
        result = _bridge(path, "flocker-volume receive app", user=(
            "setpriv", "--reuid", "65534", "--regid", "65534",
            "--clear-groups"))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(receiver.calls, [])

    @cases([(argv,) for argv in [
        ["--peer"], ["--caller", "node-a"], ["--peer", "--caller", "-x"],
        ["--peer", "--caller", "a b"], ["--bogus"],
    ]])
    def test_bridge_usage(self, argv):
        """
        A peer bridge needs a caller that is a node identity (and a caller
        only goes with ``--peer``); anything else is a usage error (2) in one
        line.
        """
        from flocker._bridge import main

        class _Err(object):
            text = ""

            def write(self, data):
                self.text += data
        err = _Err()
        self.assertEqual(main(argv, stderr=err, environ={}), 2)
        self.assertEqual(err.text.count("\n"), 1)

    def test_bridge_imports_no_flocker_module(self):
        """
        The bridge, which another node's every push starts, imports nothing
        of the ``flocker`` package (its models and Twisted's Deferreds would
        add a tenth of a second or more to each push's start), and the
        package's own name for it is the same module's.
        """
        result = subprocess.run(
            [sys.executable, "-c",
             "import sys, flocker_bridge\n"
             "print(sorted(m for m in sys.modules\n"
             "             if m == 'flocker' or m.startswith('flocker.')))"],
            capture_output=True, text=True, check=True)
        self.assertEqual(result.stdout.strip(), "[]")
        import flocker_bridge
        from flocker import _bridge
        self.assertIs(_bridge.peer_bridge, flocker_bridge.peer_bridge)
        self.assertIs(_bridge.main, flocker_bridge.main)

    def test_agent_gone_mid_transfer(self):
        """
        When the agent closes the peer connection without a verdict (it
        stopped in the middle of the transfer), the bridge fails with one
        line saying so and where to look.
        """
        from flocker._bridge import peer_bridge
        bridge_side, agent_side = socket.socketpair()
        stdin_read, stdin_write = os.pipe()
        try:
            agent_side.shutdown(socket.SHUT_WR)
            status, error = peer_bridge(bridge_side, "node-a",
                                        "flocker-volume receive app",
                                        stdin_read, stdin_write)
        finally:
            for closing in (bridge_side, agent_side):
                closing.close()
            os.close(stdin_read)
            os.close(stdin_write)
        self.assertEqual((status, error), (1, (
            "the Flocker agent stopped before the transfer ended "
            "(see systemctl status flocker-node)")))
