"""
Tests for :mod:`flocker._ssh`.

Deterministic tests cover quoting, host-key checking, identity loading, the
session channel and the runner's pooling, limits and error mapping (with a
fake connector and ``Clock``).  The ``ICommandRunner`` contract runs against
both :class:`MemoryCommandRunner` and :class:`SSHCommandRunner` talking to a
private sshd on loopback; further real tests cover host keys, timeouts,
authentication, connection reuse and the concurrency bound.
"""

import base64
import hashlib
import hmac
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile

from eliot.testing import LoggedAction, assertHasAction
from hypothesis import given, strategies as st
from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR
from twisted.conch.ssh.keys import Key
from twisted.internet import tcp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.error import (
    ConnectError, ConnectionLost, ConnectionRefusedError,
)
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from flocker.testtools import (
    capture_logging, require, run_in_reactor, temporary_path, wait_for_path,
)

from flocker._ssh._logging import SSH_CONNECT, SSH_IDENTITY_SKIPPED, SSH_RUN
from flocker._ssh import (
    DEFAULT_IDENTITY_NAMES, AuthenticationFailed,
    CommandExit, HostKeyError, ICommandRunner, KnownHosts,
    MemoryCommandRunner, NodeUnreachable, RemoteCommandFailed,
    SSHCommandRunner, SSHConfigurationError,
    agent_endpoint, key_fingerprint, known_hosts_name, load_identities,
    quote_argv, ssh_command_runner,
)
from flocker._ssh._session import (
    _ChannelNotOpened, _CommandChannel, _Outcome, _run_once,
)
from flocker._ssh._tcp import acknowledge_at_once, send_at_once
from flocker._ssh._transport import _ConchConnector, _prefer_key_types
from flocker.cli.test._sshd import SSH_AGENT, SSH_KEYGEN, class_sshd, free_port


def _ed25519():
    from cryptography.hazmat.primitives.asymmetric import ed25519
    return Key(ed25519.Ed25519PrivateKey.generate())


HOST_KEY = _ed25519()
OTHER_KEY = _ed25519()


def _line(name, key):
    return name.encode("ascii") + b" " + key.public().toString("openssh")


# ---------------------------------------------------------------------------
# Quoting and task ids

class QuoteArgvTests(SynchronousTestCase):
    """
    Tests for :func:`quote_argv`.
    """

    def test_metacharacters_stay_literal(self):
        """
        Shell metacharacters, quotes, spaces, newlines, non-ASCII and empty
        arguments parse back to exactly the original arguments.
        """
        argv = ["printf", "%s\\0", "$HOME; rm -rf / && `id` | cat > x",
                "it's \"quoted\"", "new\nline\ttab", "ünïcödé ☃", "", "*",
                "-n", "\\"]
        quoted = quote_argv(argv)
        self.assertEqual(shlex.split(quoted.decode("utf-8")), argv)

    @given(st.lists(st.text(alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\x00")),
        min_size=1, max_size=6))
    def test_round_trip(self, argv):
        """
        Any arguments without NUL parse back, as a POSIX shell would split
        them, to the same list.
        """
        self.assertEqual(shlex.split(quote_argv(argv).decode("utf-8")), argv)

    def test_nul_refused(self):
        """
        An argument containing NUL cannot reach a remote program and is
        refused.
        """
        self.assertRaises(ValueError, quote_argv, ["echo", "a\x00b"])

    def test_empty_refused(self):
        """
        An empty argument vector is refused.
        """
        self.assertRaises(ValueError, quote_argv, [])

    def test_string_refused(self):
        """
        A string is not mistaken for a sequence of one-character arguments.
        """
        self.assertRaises(TypeError, quote_argv, "ls -l")

    def test_non_string_refused(self):
        """
        Arguments must be strings.
        """
        self.assertRaises(TypeError, quote_argv, ["sleep", 1])


class KnownHostsTests(SynchronousTestCase):
    """
    Tests for :class:`KnownHosts`.
    """

    def test_port_22_name(self):
        """
        On port 22 the known-hosts name is the address itself.
        """
        self.assertEqual(known_hosts_name("10.0.0.1", 22), "10.0.0.1")

    def test_other_port_name(self):
        """
        On another port the name is ``[address]:port`` as OpenSSH writes it.
        """
        self.assertEqual(known_hosts_name("10.0.0.1", 2222), "[10.0.0.1]:2222")

    def test_known_key_accepted(self):
        """
        A host listed with the presented key passes.
        """
        known = KnownHosts.parse("kh", _line("10.0.0.1", HOST_KEY) + b"\n")
        self.assertIsNone(known.verify("10.0.0.1", 22, HOST_KEY.public()))

    def test_port_entry(self):
        """
        An entry for ``[host]:port`` vouches for that port only.
        """
        known = KnownHosts.parse("kh", _line("[10.0.0.1]:2222", HOST_KEY))
        self.assertIsNone(known.verify("10.0.0.1", 2222, HOST_KEY.public()))
        self.assertRaises(HostKeyError, known.verify, "10.0.0.1", 22,
                          HOST_KEY.public())

    def test_hashed_entry(self):
        """
        Hashed host names (``HashKnownHosts yes``) are matched.
        """
        salt = b"0123456789abcdef0123"
        digest = hmac.new(salt, b"node1.example", hashlib.sha1).digest()
        name = b"|1|" + base64.b64encode(salt) + b"|" + base64.b64encode(
            digest)
        known = KnownHosts.parse("kh", name + b" " + HOST_KEY.public(
        ).toString("openssh"))
        self.assertIsNone(known.verify("node1.example", 22, HOST_KEY.public()))
        self.assertRaises(HostKeyError, known.verify, "node2.example", 22,
                          HOST_KEY.public())

    def test_patterns(self):
        """
        ``*``, ``?`` and ``!`` patterns match as in OpenSSH; host names
        match case-insensitively.
        """
        known = KnownHosts.parse(
            "kh", _line("*.example,!bad.example,node?", HOST_KEY))
        key = HOST_KEY.public()
        self.assertIsNone(known.verify("a.EXAMPLE", 22, key))
        self.assertIsNone(known.verify("node7", 22, key))
        self.assertRaises(HostKeyError, known.verify, "bad.example", 22, key)
        self.assertRaises(HostKeyError, known.verify, "node17", 22, key)

    def test_brackets_are_literal(self):
        """
        The brackets of ``[host]:port`` are not a character class.
        """
        known = KnownHosts.parse("kh", _line("[10.0.0.1]:2222", HOST_KEY))
        self.assertRaises(HostKeyError, known.verify, "1", 2222,
                          HOST_KEY.public())

    def test_unknown_host(self):
        """
        A host that is not listed is refused, naming the host, the file and
        the key's fingerprint.
        """
        known = KnownHosts.parse("/x/known_hosts", _line("10.0.0.2", HOST_KEY))
        error = self.assertRaises(HostKeyError, known.verify, "10.0.0.1", 22,
                                  HOST_KEY.public())
        self.assertEqual(
            (error.address, error.fingerprint),
            ("10.0.0.1", key_fingerprint(HOST_KEY.public())))
        self.assertIn("not in /x/known_hosts", str(error))
        self.assertIn(key_fingerprint(HOST_KEY.public()), str(error))
        self.assertTrue(str(error).startswith("10.0.0.1: "))

    def test_changed_key(self):
        """
        A host listed with a different key of the same type is refused as a
        changed key, naming the file and line.
        """
        known = KnownHosts.parse(
            "/x/kh", b"# comment\n" + _line("10.0.0.1", OTHER_KEY) + b"\n")
        error = self.assertRaises(HostKeyError, known.verify, "10.0.0.1", 22,
                                  HOST_KEY.public())
        self.assertIn("CHANGED", error.reason)
        self.assertIn("/x/kh line 2", error.reason)
        self.assertEqual(error.fingerprint,
                         key_fingerprint(HOST_KEY.public()))

    def test_any_matching_line_vouches(self):
        """
        As in OpenSSH, one matching line is enough even if another line
        lists a different key for the host.
        """
        known = KnownHosts.parse("kh", _line("10.0.0.1", OTHER_KEY) + b"\n"
                                 + _line("10.0.0.1", HOST_KEY))
        self.assertIsNone(known.verify("10.0.0.1", 22, HOST_KEY.public()))

    def test_revoked(self):
        """
        A key marked ``@revoked`` is refused even if also listed.
        """
        known = KnownHosts.parse(
            "kh", b"@revoked * " + HOST_KEY.public().toString("openssh")
            + b"\n" + _line("10.0.0.1", HOST_KEY))
        error = self.assertRaises(HostKeyError, known.verify, "10.0.0.1", 22,
                                  HOST_KEY.public())
        self.assertIn("@revoked", error.reason)

    def test_other_type_listed(self):
        """
        When only keys of another type are listed, the key is unknown and
        the message says which types are listed.
        """
        from cryptography.hazmat.primitives.asymmetric import ec
        ecdsa = Key(ec.generate_private_key(ec.SECP256R1()))
        known = KnownHosts.parse("kh", _line("10.0.0.1", ecdsa))
        error = self.assertRaises(HostKeyError, known.verify, "10.0.0.1", 22,
                                  HOST_KEY.public())
        self.assertIn("ecdsa-sha2-nistp256", error.reason)
        self.assertEqual(known.key_types("10.0.0.1", 22),
                         {b"ecdsa-sha2-nistp256"})

    def test_garbage_ignored(self):
        """
        Comments, blank, truncated and undecodable lines are skipped.
        """
        known = KnownHosts.parse("kh", b"\n# hi\nhost\nhost ssh-ed25519 !!!\n"
                                 + _line("10.0.0.1", HOST_KEY))
        self.assertEqual(len(known.entries), 1)

    def test_missing_file(self):
        """
        A missing file is empty, and is not created.
        """
        path = os.path.join(tempfile.mkdtemp(), "known_hosts")
        known = KnownHosts.from_path(path)
        self.assertEqual(len(known.entries), 0)
        self.assertFalse(os.path.exists(path))

    def test_prefer_known_types(self):
        """
        Host key algorithms for the key types listed for the host are asked
        for first, the others keep their order after them.
        """
        self.assertEqual(
            _prefer_key_types([b"ecdsa-sha2-nistp256", b"rsa-sha2-512",
                               b"ssh-ed25519"], {b"ssh-ed25519"}),
            [b"ssh-ed25519", b"ecdsa-sha2-nistp256", b"rsa-sha2-512"])
        self.assertEqual(
            _prefer_key_types([b"ssh-ed25519", b"rsa-sha2-512", b"ssh-rsa"],
                              {b"ssh-rsa"}),
            [b"rsa-sha2-512", b"ssh-rsa", b"ssh-ed25519"])


# ---------------------------------------------------------------------------
# Identities

class LoadIdentitiesTests(SynchronousTestCase):
    """
    Tests for :func:`load_identities` and :func:`agent_endpoint`.
    """

    def setUp(self):
        self.directory = tempfile.mkdtemp()

    def write(self, name, data):
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_defaults_in_order(self):
        """
        Without explicit identities, the default files that exist are loaded
        in ssh(1)'s order.
        """
        first, second = _ed25519(), _ed25519()
        self.write("id_rsa", second.toString("openssh"))
        self.write("id_ed25519", first.toString("openssh"))
        keys = load_identities((), self.directory)
        self.assertEqual([k.public().blob() for k in keys],
                         [first.public().blob(), second.public().blob()])
        self.assertEqual(DEFAULT_IDENTITY_NAMES[0], "id_ed25519")

    def test_explicit_replaces_defaults(self):
        """
        Explicit identity files are used instead of the defaults.
        """
        self.write("id_ed25519", _ed25519().toString("openssh"))
        mine = _ed25519()
        path = self.write("deploy_key", mine.toString("openssh"))
        keys = load_identities([path], self.directory)
        self.assertEqual([k.public().blob() for k in keys],
                         [mine.public().blob()])

    def test_explicit_missing(self):
        """
        A missing explicit identity file is a configuration error naming it.
        """
        path = os.path.join(self.directory, "nope")
        error = self.assertRaises(SSHConfigurationError, load_identities,
                                  [path])
        self.assertIn(path, str(error))

    def test_explicit_public(self):
        """
        Giving the public half is a configuration error.
        """
        path = self.write("k.pub", _ed25519().public().toString("openssh"))
        error = self.assertRaises(SSHConfigurationError, load_identities,
                                  [path])
        self.assertIn("public key", str(error))

    def test_explicit_garbage(self):
        """
        A file that is not a key is a configuration error.
        """
        path = self.write("k", b"hello")
        self.assertRaises(SSHConfigurationError, load_identities, [path])

    def test_explicit_encrypted(self):
        """
        A passphrase-protected explicit identity is refused with advice to
        use the agent (the deploy never prompts).
        """
        path = self.write("k", _ed25519().toString(
            "openssh", passphrase=b"secret"))
        error = self.assertRaises(SSHConfigurationError, load_identities,
                                  [path])
        self.assertIn("ssh-agent", str(error))

    @capture_logging(None, encoder_=None)
    def test_default_encrypted_skipped(self, logger):
        """
        A passphrase-protected default identity is skipped with a logged
        reason; the others are still used.
        """
        self.write("id_ed25519", _ed25519().toString(
            "openssh", passphrase=b"secret"))
        usable = _ed25519()
        self.write("id_ecdsa", usable.toString("openssh"))
        keys = load_identities((), self.directory)
        self.assertEqual([k.public().blob() for k in keys],
                         [usable.public().blob()])
        [message] = logger.messages
        self.assertEqual(message["message_type"],
                         SSH_IDENTITY_SKIPPED.message_type)

    def test_no_agent(self):
        """
        Without ``SSH_AUTH_SOCK`` there is no agent endpoint.
        """
        self.assertIsNone(agent_endpoint(Clock(), {}))

    def test_agent(self):
        """
        With ``SSH_AUTH_SOCK`` the agent is reached over that UNIX socket.
        """
        endpoint = agent_endpoint(Clock(), {"SSH_AUTH_SOCK": "/tmp/a.sock"})
        self.assertIsInstance(endpoint, UNIXClientEndpoint)
        self.assertEqual(endpoint._path, "/tmp/a.sock")

    def test_runner_from_user_configuration(self):
        """
        :func:`ssh_command_runner` builds a runner from an ssh directory.
        """
        self.write("id_ed25519", _ed25519().toString("openssh"))
        self.write("known_hosts", _line("10.0.0.1", HOST_KEY))
        runner = ssh_command_runner(Clock(), ssh_directory=self.directory,
                                    environ={})
        self.assertTrue(verifyObject(ICommandRunner, runner))


# ---------------------------------------------------------------------------
# The session channel

class FakeSSHConnection(object):
    """
    The parts of ``SSHConnection`` a channel uses, recorded.
    """

    def __init__(self):
        self.lost = False
        self.requests = []
        self.sent = []
        self.eof = False
        self.closed = False

    def sendRequest(self, channel, kind, data, wantReply=0):
        d = Deferred()
        self.requests.append((kind, data, d))
        return d

    def sendData(self, channel, data):
        self.sent.append(data)

    def sendEOF(self, channel):
        self.eof = True

    def sendClose(self, channel):
        self.closed = True


class CommandChannelTests(SynchronousTestCase):
    """
    Tests for :class:`_CommandChannel` running one command
    (:func:`_run_once`).
    """

    def channel(self, stdin=b"", window=1 << 20):
        opened = []
        finished = _run_once(opened.append, b"'cat'", stdin)
        [channel] = opened
        channel.conn = FakeSSHConnection()
        channel.remoteWindowLeft = window
        channel.remoteMaxPacket = 32768
        channel.channelOpen(b"")
        return channel, finished

    def test_exec_then_stdin_then_eof(self):
        """
        The command is requested with ``exec``; once accepted, stdin is sent
        and then EOF.
        """
        channel, finished = self.channel(b"input")
        [(kind, data, reply)] = channel.conn.requests
        self.assertEqual((kind, data), (b"exec", b"\x00\x00\x00\x05'cat'"))
        self.assertEqual((channel.conn.sent, channel.conn.eof), ([], False))
        reply.callback(b"")
        self.assertEqual((channel.conn.sent, channel.conn.eof),
                         ([b"input"], True))

    def test_eof_waits_for_window(self):
        """
        EOF is only sent after stdin that did not fit the peer's window has
        been sent.
        """
        channel, finished = self.channel(b"0123456789", window=4)
        channel.conn.requests[0][2].callback(b"")
        self.assertEqual((b"".join(channel.conn.sent), channel.conn.eof),
                         (b"0123", False))
        channel.addWindowBytes(100)
        self.assertEqual((b"".join(channel.conn.sent), channel.conn.eof),
                         (b"0123456789", True))

    def test_outcome(self):
        """
        Stdout, stderr (extended data) and the exit status are collected.
        """
        channel, finished = self.channel()
        channel.conn.requests[0][2].callback(b"")
        channel.dataReceived(b"out1 ")
        channel.extReceived(EXTENDED_DATA_STDERR, b"err")
        channel.dataReceived(b"out2")
        channel.request_exit_status(b"\x00\x00\x00\x03")
        channel.closed()
        self.assertEqual(self.successResultOf(finished), _Outcome(
            exit_code=3, signal=None, stdout=b"out1 out2", stderr=b"err"))

    def test_signal(self):
        """
        A command killed by a signal has no exit status, the signal name.
        """
        channel, finished = self.channel()
        channel.conn.requests[0][2].callback(b"")
        channel.request_exit_signal(b"\x00\x00\x00\x04KILL\x00"
                                    b"\x00\x00\x00\x00\x00\x00\x00\x00")
        channel.closed()
        outcome = self.successResultOf(finished)
        self.assertEqual((outcome.exit_code, outcome.signal), (None, "KILL"))

    def test_connection_lost(self):
        """
        A channel closed because the connection died before the command
        ended fails with ``ConnectionLost``.
        """
        channel, finished = self.channel()
        channel.conn.requests[0][2].callback(b"")
        channel.conn.lost = True
        channel.closed()
        self.failureResultOf(finished, ConnectionLost)

    def test_peer_close_drops_unsent(self):
        """
        When the node closes the channel while standard input still waits
        for its window (its command died and will never read it), the
        channel closes at once, dropping that input, and the command's end
        is reported.
        """
        channel, finished = self.channel(window=4)
        channel.conn.requests[0][2].callback(b"")
        channel.write(b"0123456789")
        self.assertEqual(channel.buf, b"456789")
        channel.request_exit_signal(b"\x00\x00\x00\x04KILL\x00"
                                    b"\x00\x00\x00\x00\x00\x00\x00\x00")
        channel.closeReceived()
        self.assertEqual((channel.conn.closed, channel.buf), (True, b""))
        channel.closed()
        self.assertEqual(self.successResultOf(finished).signal, "KILL")

    def test_abort_drops_unsent(self):
        """
        Aborting a running command closes its channel at once, even with
        standard input waiting for a window the node never opens.
        """
        started, ended = Deferred(), Deferred()
        channel = _CommandChannel(b"'cat'", lambda data: None, started,
                                  ended)
        channel.conn = FakeSSHConnection()
        channel.remoteWindowLeft = 0
        channel.remoteMaxPacket = 32768
        channel.channelOpen(b"")
        channel.conn.requests[0][2].callback(b"")
        running = self.successResultOf(started)
        running.write(b"stuck")
        running.abort()
        self.assertEqual((channel.conn.closed, channel.buf), (True, b""))

    def test_exec_refused(self):
        """
        A refused exec request fails without a command having started.
        """
        channel, finished = self.channel()
        channel.conn.requests[0][2].errback(Exception("no"))
        self.assertTrue(channel.conn.closed)
        channel.closed()
        failure = self.failureResultOf(finished, _ChannelNotOpened)
        self.assertFalse(failure.value.connection_lost)

    def test_open_failed_connection_lost(self):
        """
        A channel that could not open because the connection was gone says
        so, so the command may be retried on a new connection.
        """
        opened = []
        finished = _run_once(opened.append, b"true", b"")
        opened[0].openFailed(ConnectionLost())
        failure = self.failureResultOf(finished, _ChannelNotOpened)
        self.assertTrue(failure.value.connection_lost)


# ---------------------------------------------------------------------------
# The runner with a fake connector

class FakeNodeConnection(object):
    """
    A node connection whose commands finish when the test says.
    """

    def __init__(self, address):
        self.address = address
        self.executions = []
        self.open = True
        self._watchers = []

    def execute(self, command, stdin):
        d = Deferred()
        self.executions.append((command, stdin, d))
        return d

    def is_open(self):
        return self.open

    def when_lost(self):
        d = Deferred()
        self._watchers.append(d)
        return d

    def lose(self):
        self.open = False
        for d in self._watchers:
            d.callback(None)

    def disconnect(self):
        self.lose()
        return succeed(None)


class FakeConnector(object):
    """
    Records connection attempts; the test fires them.
    """

    def __init__(self):
        self.attempts = []

    def connect(self, address):
        d = Deferred()
        self.attempts.append((address, d))
        return d

    def succeed(self, index=-1):
        address, d = self.attempts[index]
        connection = FakeNodeConnection(address)
        d.callback(connection)
        return connection


def _ok(stdout=b""):
    return _Outcome(exit_code=0, signal=None, stdout=stdout, stderr=b"")


class SSHCommandRunnerTests(SynchronousTestCase):
    """
    Tests for :class:`SSHCommandRunner`'s pooling, limits and error mapping.
    """

    def runner(self, **options):
        self.connector = FakeConnector()
        return SSHCommandRunner(Clock(), KnownHosts.parse("kh", b""),
                                connector=self.connector, **options)

    def test_interface(self):
        """
        :class:`SSHCommandRunner` provides :class:`ICommandRunner`.
        """
        self.assertTrue(verifyObject(ICommandRunner, self.runner()))

    def test_stdout(self):
        """
        The quoted command and stdin go to the node's connection; a zero exit
        gives stdout.
        """
        runner = self.runner()
        d = runner.run("n1", ["echo", "a b"], b"in")
        connection = self.connector.succeed()
        [(command, stdin, done)] = connection.executions
        self.assertEqual((command, stdin), (b"echo 'a b'", b"in"))
        done.callback(_ok(b"a b\n"))
        self.assertEqual(self.successResultOf(d), b"a b\n")

    def test_connection_reused(self):
        """
        Commands to one node share one connection, also while it is still
        being made.
        """
        runner = self.runner()
        first = runner.run("n1", ["true"])
        second = runner.run("n1", ["true"])
        connection = self.connector.succeed()
        third = runner.run("n1", ["true"])
        self.assertEqual(len(self.connector.attempts), 1)
        for _, _, done in connection.executions:
            done.callback(_ok())
        for d in (first, second, third):
            self.successResultOf(d)
        self.assertEqual(runner.connected_addresses(), {"n1"})

    def test_one_connection_per_node(self):
        """
        Different nodes get different connections.
        """
        runner = self.runner()
        runner.run("n1", ["true"])
        runner.run("n2", ["true"])
        self.assertEqual([a for a, _ in self.connector.attempts],
                         ["n1", "n2"])

    def test_connect_failure_not_cached(self):
        """
        A failed connection fails every waiting command; the next command
        tries again.
        """
        runner = self.runner()
        first = runner.run("n1", ["true"])
        second = runner.run("n1", ["true"])
        self.connector.attempts[0][1].errback(
            NodeUnreachable("n1", "connection refused"))
        self.failureResultOf(first, NodeUnreachable)
        self.failureResultOf(second, NodeUnreachable)
        runner.run("n1", ["true"])
        self.assertEqual(len(self.connector.attempts), 2)

    def test_immediate_connect_failure(self):
        """
        A connection attempt that fails at once fails the command.
        """
        runner = self.runner()
        self.connector.connect = lambda address: fail(
            NodeUnreachable(address, "connection refused on port 22"))
        error = self.failureResultOf(runner.run("n1", ["true"]),
                                     NodeUnreachable).value
        self.assertEqual(str(error),
                         "n1: unreachable: connection refused on port 22")

    def test_close_abandons_attempts(self):
        """
        ``close()`` cancels connection attempts still in progress; their
        commands fail.
        """
        runner = self.runner()
        d = runner.run("n1", ["true"])
        self.successResultOf(runner.close())
        self.failureResultOf(d)
        self.assertTrue(self.connector.attempts[0][1].called)

    def test_reconnect_after_loss(self):
        """
        Once a node's connection is lost, the next command reconnects.
        """
        runner = self.runner()
        d = runner.run("n1", ["true"])
        connection = self.connector.succeed()
        connection.executions[0][2].callback(_ok())
        self.successResultOf(d)
        connection.lose()
        self.assertEqual(runner.connected_addresses(), set())
        runner.run("n1", ["true"])
        self.assertEqual(len(self.connector.attempts), 2)

    def test_nonzero_exit(self):
        """
        A non-zero exit fails with :class:`RemoteCommandFailed` carrying the
        node, argv, status and stderr.
        """
        runner = self.runner()
        d = runner.run("n1", ["ls", "/x"])
        connection = self.connector.succeed()
        connection.executions[0][2].callback(_Outcome(
            exit_code=2, signal=None, stdout=b"",
            stderr=b"ls: cannot access '/x': No such file\n"))
        error = self.failureResultOf(d, RemoteCommandFailed).value
        self.assertEqual((error.address, error.argv, error.exit_code),
                         ("n1", ["ls", "/x"], 2))
        self.assertEqual(
            str(error),
            "n1: ls /x exited with status 2: ls: cannot access '/x': "
            "No such file")

    def test_signal(self):
        """
        A command ended by a signal fails, naming the signal.
        """
        runner = self.runner()
        d = runner.run("n1", ["sleep", "9"])
        self.connector.succeed().executions[0][2].callback(_Outcome(
            exit_code=None, signal="KILL", stdout=b"", stderr=b""))
        error = self.failureResultOf(d, RemoteCommandFailed).value
        self.assertIn("killed by signal KILL", str(error))

    def test_connection_lost_while_running(self):
        """
        A connection lost while the command ran is :class:`NodeUnreachable`.
        """
        runner = self.runner()
        d = runner.run("n1", ["sleep", "9"])
        self.connector.succeed().executions[0][2].errback(ConnectionLost())
        error = self.failureResultOf(d, NodeUnreachable).value
        self.assertIn("connection lost while the command ran", str(error))

    def test_retry_when_connection_died_before_start(self):
        """
        If the pooled connection turns out dead before the command started,
        the command runs once on a new connection.
        """
        runner = self.runner()
        d = runner.run("n1", ["true"])
        old = self.connector.succeed()
        old.executions[0][2].errback(_ChannelNotOpened("gone", True))
        new = self.connector.succeed()
        new.executions[0][2].callback(_ok(b"ok"))
        self.assertEqual(self.successResultOf(d), b"ok")

    def test_no_second_retry(self):
        """
        The retry happens once only.
        """
        runner = self.runner()
        d = runner.run("n1", ["true"])
        self.connector.succeed().executions[0][2].errback(
            _ChannelNotOpened("gone", True))
        self.connector.succeed().executions[0][2].errback(
            _ChannelNotOpened("gone", True))
        self.failureResultOf(d, NodeUnreachable)
        self.assertEqual(len(self.connector.attempts), 2)

    def test_bad_argv(self):
        """
        An unusable argument vector fails before anything is connected.
        """
        runner = self.runner()
        self.failureResultOf(runner.run("n1", ["a\x00"]), ValueError)
        self.assertEqual(self.connector.attempts, [])

    def test_global_limit(self):
        """
        At most ``concurrency`` commands are in flight across all nodes; the
        next starts when one finishes.
        """
        runner = self.runner(concurrency=2)
        results = [runner.run(address, ["true"])
                   for address in ["n1", "n2", "n3", "n1"]]
        self.assertEqual([a for a, _ in self.connector.attempts],
                         ["n1", "n2"])
        first = self.connector.succeed(0)
        self.connector.succeed(1)
        first.executions[0][2].callback(_ok())
        self.successResultOf(results[0])
        self.assertEqual([a for a, _ in self.connector.attempts],
                         ["n1", "n2", "n3"])
        self.assertNoResult(results[3])

    def test_node_limit(self):
        """
        At most ``sessions_per_node`` commands run at once on one node.
        """
        runner = self.runner(sessions_per_node=2)
        results = [runner.run("n1", ["true"]) for _ in range(3)]
        connection = self.connector.succeed()
        self.assertEqual(len(connection.executions), 2)
        connection.executions[0][2].callback(_ok())
        self.assertEqual(len(connection.executions), 3)
        self.assertNoResult(results[2])

    def test_node_limit_leaves_global_slots(self):
        """
        Commands waiting for a busy node do not hold global slots that
        commands for other nodes could use.
        """
        runner = self.runner(concurrency=2, sessions_per_node=1)
        runner.run("n1", ["true"])
        runner.run("n1", ["true"])
        runner.run("n2", ["true"])
        self.assertEqual([a for a, _ in self.connector.attempts],
                         ["n1", "n2"])

    def test_close(self):
        """
        ``close()`` disconnects every connection.
        """
        runner = self.runner()
        runner.run("n1", ["true"])
        runner.run("n2", ["true"])
        connections = [self.connector.succeed(0), self.connector.succeed(1)]
        self.assertIsNone(self.successResultOf(runner.close()))
        self.assertEqual([c.open for c in connections], [False, False])
        self.assertEqual(runner.connected_addresses(), set())

    @capture_logging(None, encoder_=None)
    def test_logged(self, logger):
        """
        Each command is a ``flocker:cli:ssh:run`` action with the node, the
        argument vector and the stdin size; success adds the exit status.
        """
        runner = self.runner()
        d = runner.run("n1", ["echo", "x"], b"abc")
        self.connector.succeed().executions[0][2].callback(_ok(b"x\n"))
        self.successResultOf(d)
        assertHasAction(self, logger, SSH_RUN, True,
                        {"address": "n1", "argv": ["echo", "x"],
                         "stdin_bytes": 3},
                        {"exit_code": 0, "stdout_bytes": 2})

    @capture_logging(None, encoder_=None)
    def test_failure_logged(self, logger):
        """
        A failed command's action fails with the error.
        """
        runner = self.runner()
        d = runner.run("n1", ["false"])
        self.connector.succeed().executions[0][2].callback(_Outcome(
            exit_code=1, signal=None, stdout=b"", stderr=b""))
        self.failureResultOf(d, RemoteCommandFailed)
        [action] = LoggedAction.of_type(logger.messages, SSH_RUN)
        self.assertFalse(action.succeeded)
        self.assertIn("RemoteCommandFailed",
                      action.end_message["exception"])


class EndpointNeverConnects(object):
    """
    An endpoint whose connection attempt never finishes (until cancelled).
    """

    def __init__(self):
        self.cancelled = False

    def connect(self, factory):
        def cancel(d):
            self.cancelled = True
        return Deferred(cancel)


class EndpointRefuses(object):
    """
    An endpoint whose connection attempt is refused.
    """

    def connect(self, factory):
        return fail(ConnectionRefusedError())


class ConchConnectorTests(SynchronousTestCase):
    """
    Tests for :class:`_ConchConnector` failing before SSH starts.
    """

    def connector(self, clock, endpoint):
        return _ConchConnector(
            reactor=clock, username="root", port=22,
            known_hosts=KnownHosts.parse("kh", b""), identities=[],
            agent_endpoint=None, timeout=5.0,
            endpoint_factory=lambda address, port: endpoint)

    @capture_logging(None, encoder_=None)
    def test_timeout(self, logger):
        """
        A node that does not answer is :class:`NodeUnreachable` once the
        connect timeout has passed, and the attempt is cancelled.
        """
        clock = Clock()
        endpoint = EndpointNeverConnects()
        d = self.connector(clock, endpoint).connect("10.0.0.9")
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        error = self.failureResultOf(d, NodeUnreachable).value
        self.assertTrue(endpoint.cancelled)
        self.assertEqual(str(error),
                         "10.0.0.9: unreachable: no answer on port 22 within "
                         "5 s")
        assertHasAction(self, logger, SSH_CONNECT, False,
                        {"address": "10.0.0.9", "port": 22,
                         "username": "root"})

    def test_cancelled(self):
        """
        A cancelled attempt is :class:`NodeUnreachable`, not a timeout.
        """
        clock = Clock()
        d = self.connector(clock, EndpointNeverConnects()).connect("10.0.0.9")
        d.cancel()
        error = self.failureResultOf(d, NodeUnreachable).value
        self.assertIn("cancelled", str(error))
        self.assertEqual(clock.getDelayedCalls(), [])

    @capture_logging(None, encoder_=None)
    def test_refused(self, logger):
        """
        A refused connection is :class:`NodeUnreachable` at once.
        """
        clock = Clock()
        d = self.connector(clock, EndpointRefuses()).connect("10.0.0.9")
        error = self.failureResultOf(d, NodeUnreachable).value
        self.assertIn("connection refused on port 22", str(error))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_errno_in_words(self):
        """
        A connection that fails with an errno (113, no route to host) says
        what failed in words, not the number.
        """
        class EndpointNoRoute(object):
            def connect(self, factory):
                return fail(ConnectError(osError=113))
        d = self.connector(Clock(), EndpointNoRoute()).connect("10.0.0.9")
        error = self.failureResultOf(d, NodeUnreachable).value
        self.assertEqual(str(error), "10.0.0.9: unreachable: cannot connect "
                         "to port 22: no route to host")


# ---------------------------------------------------------------------------
# The ICommandRunner contract, against the fake and a real sshd

def _printf(argv, stdin):
    if argv[1] != "%s\\0":
        raise CommandExit(1, b"unsupported format")
    return b"".join(a.encode("utf-8") + b"\x00" for a in argv[2:])


def _ls(argv, stdin):
    raise CommandExit(2, ("ls: cannot access '%s': No such file or directory"
                          "\n" % (argv[1],)).encode("utf-8"))


def _results(d):
    """
    :return: ``[result]`` of a Deferred that has fired (raising its
        failure's exception).
    """
    results = []
    d.addBoth(results.append)
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results


class _EchoCommand(object):
    """
    ``cat`` started with ``MemoryCommandRunner.start``: echoes what is
    written, ends when its input is closed.
    """

    def __init__(self, argv, received):
        self._received = received
        self.ended = Deferred()

    def write(self, data):
        self._received(data)

    def close_input(self):
        self.ended.callback((0, None, b""))


class _MemoryHarness(object):
    """
    Runs the contract against :class:`MemoryCommandRunner`, whose handlers
    imitate the few programs the contract uses.
    """
    address = "node1"

    def __init__(self):
        self.runner = MemoryCommandRunner()
        self.runner.add_handler(None, ["printf"], _printf)
        self.runner.add_handler(None, ["cat"], lambda argv, stdin: stdin)
        self.runner.add_handler(None, ["ls"], _ls)
        self.runner.add_stream_handler(None, ["cat"], _EchoCommand)
        self.runner.unreachable["192.0.2.1"] = "connection refused"

    def run(self, argv, stdin=b"", address=None):
        d = self.runner.run(address or self.address, argv, stdin)
        results = []
        d.addBoth(results.append)
        [result] = results
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result

    def run_unreachable(self, argv):
        return self.run(argv, address="192.0.2.1")

    def converse(self, argv, lines):
        received = []
        d = self.runner.start(self.address, argv, received.append)
        [running] = _results(d)
        for line in lines:
            running.write(line)
        running.close_input()
        [ended] = _results(running.ended)
        return b"".join(received), ended


class _SSHHarness(object):
    """
    Runs the contract against :class:`SSHCommandRunner` and a real sshd.
    """

    def __init__(self, server):
        self.server = server
        self.address = server.addresses[0]

    def _runner(self, reactor, port=None):
        return SSHCommandRunner(
            reactor, KnownHosts.from_path(self.server.known_hosts_path),
            [self.server.client_key], port=port or self.server.port,
            connect_timeout=10)

    def run(self, argv, stdin=b"", port=None):
        def go(reactor):
            runner = self._runner(reactor, port)
            d = runner.run(self.address, argv, stdin)
            return d.addBoth(lambda result: runner.close().addCallback(
                lambda _: result))
        return run_in_reactor(go)

    def run_unreachable(self, argv):
        return self.run(argv, port=free_port())

    def converse(self, argv, lines):
        def go(reactor):
            runner = self._runner(reactor)
            received = []
            d = runner.start(self.address, argv, received.append)

            def started(running):
                for line in lines:
                    running.write(line)
                running.close_input()
                return running.ended
            d.addCallback(started)
            d.addCallback(lambda ended: (b"".join(received), ended))
            return d.addBoth(lambda result: runner.close().addCallback(
                lambda _: result))
        return run_in_reactor(go)


# ---------------------------------------------------------------------------
# Real SSH only

def _runner(reactor, server, known_hosts=None, identities=None, **options):
    options.setdefault("port", server.port)
    return SSHCommandRunner(
        reactor,
        known_hosts or KnownHosts.from_path(server.known_hosts_path),
        [server.client_key] if identities is None else identities, **options)


def _run_closing(runner_factory, address, argv, stdin=b""):
    """
    Run one command with a runner made in the reactor, close the runner,
    and return the result (or raise the failure).
    """
    def go(reactor):
        runner = runner_factory(reactor)
        d = runner.run(address, argv, stdin)
        return d.addBoth(lambda result: runner.close().addCallback(
            lambda _: result))
    return run_in_reactor(go)


def _file_state(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return f.read(), os.stat(path).st_mtime_ns


def _ssh_keygen_fingerprint(public_path):
    output = subprocess.run([SSH_KEYGEN, "-l", "-f", public_path],
                            check=True, capture_output=True).stdout.decode()
    return output.split()[1]


def agent_for(test, sshd):
    """
    Start a private ssh-agent holding the server's accepted ed25519 client
    key, stopped when ``test`` ends.

    :param test: The ``TestCase``.
    :param sshd: The :class:`SSHServer`.
    :return: The agent's socket path.
    """
    require(os.access(SSH_AGENT, os.X_OK), "needs " + SSH_AGENT)
    socket_path = str(temporary_path(test) / "agent.sock")
    agent = subprocess.Popen([SSH_AGENT, "-D", "-a", socket_path],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)

    def stop():
        agent.terminate()
        agent.wait(10)
    test.addCleanup(stop)
    environment = dict(os.environ, SSH_AUTH_SOCK=socket_path)
    # ssh-agent -D creates its socket shortly after starting.
    wait_for_path(socket_path, agent, seconds=10)
    subprocess.run(["/usr/bin/ssh-add", "-q", sshd.client_key_path],
                   check=True, env=environment,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return socket_path


_CONCURRENCY_PROBE = """
import os, sys, time
directory = sys.argv[1]
mine = os.path.join(directory, "active", str(os.getpid()))
open(mine, "w").close()
seen = len(os.listdir(os.path.join(directory, "active")))
with open(os.path.join(directory, "seen", str(os.getpid())), "w") as f:
    f.write(str(seen))
time.sleep(0.3)
os.unlink(mine)
"""


class _ICommandRunnerContract(object):
    """
    The ``ICommandRunner`` contract; a ``TestCase`` mixing it in sets
    ``harness`` (the fake's or the real runner's) in ``setUp``.
    """

    def test_contract_interface(self):
        """
        The runner provides :class:`ICommandRunner`.
        """
        harness = self.harness
        runner = getattr(harness, "runner", None) or harness._runner(Clock())
        self.assertTrue(verifyObject(ICommandRunner, runner))

    def test_contract_arguments_literal(self):
        """
        Every argument arrives as one literal argument: shell metacharacters,
        quotes, newlines, unicode and empty strings included.
        """
        harness = self.harness
        arguments = ["$HOME; echo pwned && `id` | cat > /tmp/x",
                     "it's \"quoted\" \\", "new\nline\ttab", "ünïcödé ☃", "",
                     "*", "-n", "$(id)"]
        out = harness.run(["printf", "%s\\0"] + arguments)
        self.assertEqual(out.split(b"\x00")[:-1],
                         [a.encode("utf-8") for a in arguments])

    def test_contract_stdin(self):
        """
        Standard input is delivered, then closed.
        """
        harness = self.harness
        self.assertEqual(
            harness.run(["cat"], b"line one\nline two\n"),
            b"line one\nline two\n")

    def test_contract_failure(self):
        """
        A failing command gives :class:`RemoteCommandFailed` with its exit
        status and its standard error.
        """
        harness = self.harness
        with self.assertRaises(RemoteCommandFailed) as info:
            harness.run(["ls", "/nonexistent-flocker-test"])
        self.assertEqual(info.exception.exit_code, 2)
        self.assertIn(b"No such file or directory", info.exception.stderr)
        self.assertEqual(info.exception.argv,
                         ["ls", "/nonexistent-flocker-test"])
        self.assertIn("/nonexistent-flocker-test", info.exception.error_line())

    def test_contract_missing_program(self):
        """
        A program that does not exist on the node exits with status 127.
        """
        harness = self.harness
        with self.assertRaises(RemoteCommandFailed) as info:
            harness.run(["flocker-no-such-program"])
        self.assertEqual(info.exception.exit_code, 127)

    def test_contract_unreachable(self):
        """
        A node that cannot be reached gives :class:`NodeUnreachable`.
        """
        harness = self.harness
        with self.assertRaises(NodeUnreachable):
            harness.run_unreachable(["true"])

    def test_contract_start(self):
        """
        A started command's output arrives while it runs; closing its input
        ends it with its exit status.
        """
        harness = self.harness
        received, ended = harness.converse(["cat"], [b"one\n", b"two\n"])
        self.assertEqual(received, b"one\ntwo\n")
        self.assertEqual(ended[:2], (0, None))

    def test_contract_stdin_must_be_bytes(self):
        """
        Text given as stdin is refused with ``TypeError``.
        """
        harness = self.harness
        with self.assertRaises(TypeError):
            harness.run(["cat"], "text")

    def test_contract_bad_argv(self):
        """
        An argument with NUL is refused with ``ValueError``.
        """
        harness = self.harness
        with self.assertRaises(ValueError):
            harness.run(["printf", "%s\\0", "a\x00b"])



class MemoryCommandRunnerContractTests(_ICommandRunnerContract,
                                       SynchronousTestCase):
    """
    The ``ICommandRunner`` contract for :class:`MemoryCommandRunner`.
    """

    def setUp(self):
        self.harness = _MemoryHarness()


class SSHCommandRunnerContractTests(_ICommandRunnerContract,
                                    SynchronousTestCase):
    """
    The ``ICommandRunner`` contract for :class:`SSHCommandRunner` and a
    private sshd.
    """

    @classmethod
    def setUpClass(cls):
        cls.sshd = class_sshd(cls)

    def setUp(self):
        self.harness = _SSHHarness(self.sshd)


class PrivateSSHDTests(SynchronousTestCase):
    """
    :class:`SSHCommandRunner` against a private sshd: host keys, refusals,
    authentication, big streams, connection reuse, its eliot actions.
    """

    @classmethod
    def setUpClass(cls):
        cls.sshd = class_sshd(cls)

    def test_ssh_host_keys(self):
        """
        After a command, the runner reports the host key it verified for the
        node (what the nodes' known_hosts for node-to-node pushes is built
        from), also once its connections are closed.
        """
        sshd = self.sshd
        def go(reactor):
            runner = _runner(reactor, sshd)
            d = runner.run("127.0.0.1", ["true"])
            d.addCallback(lambda _: runner.close())
            return d.addCallback(lambda _: runner.host_keys())
        keys = run_in_reactor(go)
        self.assertEqual(keys, {"127.0.0.1": sshd.host_key.public()})

    def test_ssh_unknown_host_key_refused(self):
        """
        A node whose key is not in known_hosts is refused with its host and the
        key's fingerprint (as ssh-keygen shows it); the file is not written.
        """
        sshd = self.sshd
        tmp_path = temporary_path(self)
        path = str(tmp_path / "known_hosts")
        with open(path, "wb") as f:
            f.write(sshd.known_hosts_line("127.0.0.2"))
        before = _file_state(path)
        with self.assertRaises(HostKeyError) as info:
            _run_closing(lambda reactor: _runner(
                reactor, sshd, KnownHosts.from_path(path)), "127.0.0.1", ["true"])
        fingerprint = _ssh_keygen_fingerprint(sshd.host_key_path + ".pub")
        self.assertEqual(info.exception.address, "127.0.0.1")
        self.assertIn(fingerprint, str(info.exception))
        self.assertTrue(
            str(info.exception).startswith("127.0.0.1: host key verification"))
        self.assertEqual(_file_state(path), before)

    def test_ssh_missing_known_hosts_not_created(self):
        """
        With no known_hosts file at all, the node is refused and no file is
        created.
        """
        sshd = self.sshd
        tmp_path = temporary_path(self)
        path = str(tmp_path / "known_hosts")
        with self.assertRaises(HostKeyError):
            _run_closing(lambda reactor: _runner(
                reactor, sshd, KnownHosts.from_path(path)), "127.0.0.1", ["true"])
        self.assertFalse(os.path.exists(path))

    def test_ssh_host_name_entry_not_extended(self):
        """
        A node known by host name is accepted without an IP entry being added
        (Conch's own KnownHostsFile would add and save one).
        """
        sshd = self.sshd
        tmp_path = temporary_path(self)
        path = str(tmp_path / "known_hosts")
        with open(path, "wb") as f:
            f.write(b"[localhost]:%d " % (sshd.port,)
                    + sshd.host_key.public().toString("openssh") + b"\n")
        before = _file_state(path)
        out = _run_closing(lambda reactor: _runner(
            reactor, sshd, KnownHosts.from_path(path)), "localhost",
            ["printf", "ok"])
        self.assertEqual(out, b"ok")
        self.assertEqual(_file_state(path), before)

    def test_ssh_changed_host_key_refused(self):
        """
        A node presenting a different key than known_hosts lists is refused as
        a changed key.
        """
        sshd = self.sshd
        tmp_path = temporary_path(self)
        path = str(tmp_path / "known_hosts")
        with open(path, "wb") as f:
            f.write(sshd.known_hosts_line("127.0.0.1", key=sshd.stranger_key))
        before = _file_state(path)
        with self.assertRaises(HostKeyError) as info:
            _run_closing(lambda reactor: _runner(
                reactor, sshd, KnownHosts.from_path(path)), "127.0.0.1", ["true"])
        self.assertIn("CHANGED", str(info.exception))
        self.assertIn(key_fingerprint(sshd.host_key.public()),
                      str(info.exception))
        self.assertEqual(_file_state(path), before)

    def test_ssh_refused_port(self):
        """
        A closed port is :class:`NodeUnreachable` naming the refusal.
        """
        sshd = self.sshd
        port = free_port()
        with self.assertRaises(NodeUnreachable) as info:
            _run_closing(lambda reactor: _runner(reactor, sshd, port=port),
                         "127.0.0.1", ["true"])
        self.assertIn("refused", str(info.exception))

    def test_ssh_silent_port_times_out(self):
        """
        A port that accepts but never speaks SSH is :class:`NodeUnreachable`
        once the connect timeout has passed.
        """
        sshd = self.sshd
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(5)
            port = silent.getsockname()[1]
            with self.assertRaises(NodeUnreachable) as info:
                _run_closing(lambda reactor: _runner(
                    reactor, sshd, port=port, connect_timeout=0.5),
                    "127.0.0.1", ["true"])
        self.assertIn("within 0.5 s", str(info.exception))

    def test_ssh_authentication_failed(self):
        """
        A key the node does not accept gives :class:`AuthenticationFailed`.
        """
        sshd = self.sshd
        with self.assertRaises(AuthenticationFailed) as info:
            _run_closing(lambda reactor: _runner(
                reactor, sshd, identities=[sshd.stranger_key]),
                "127.0.0.1", ["true"])
        self.assertIn("refused every key", str(info.exception))

    def test_ssh_rsa_key(self):
        """
        RSA keys authenticate (with SHA-2 signatures, which current OpenSSH
        requires).
        """
        sshd = self.sshd
        self.assertEqual(
            _run_closing(lambda reactor: _runner(
                reactor, sshd, identities=[sshd.rsa_key]), "127.0.0.1",
                ["printf", "rsa"]),
            b"rsa")

    def test_ssh_agent(self):
        """
        Keys held by the SSH agent authenticate without any identity file.
        """
        sshd = self.sshd
        ssh_agent = agent_for(self, sshd)
        out = _run_closing(lambda reactor: _runner(
            reactor, sshd, identities=[], agent_endpoint=agent_endpoint(
                reactor, {"SSH_AUTH_SOCK": ssh_agent})),
            "127.0.0.1", ["printf", "agent"])
        self.assertEqual(out, b"agent")

    def test_ssh_exit_status_and_stderr(self):
        """
        The remote exit status and standard error are reported.
        """
        sshd = self.sshd
        script = "import sys; sys.stderr.write('first\\nthe error\\n'); sys.exit(7)"
        with self.assertRaises(RemoteCommandFailed) as info:
            _run_closing(lambda reactor: _runner(reactor, sshd), "127.0.0.1",
                         ["/usr/bin/python3", "-c", script])
        self.assertEqual(info.exception.exit_code, 7)
        self.assertEqual(info.exception.stderr, b"first\nthe error\n")
        self.assertTrue(str(info.exception).endswith(": the error"))

    def test_ssh_large_stdin_and_stdout(self):
        """
        Data larger than SSH's windows travels both ways intact.
        """
        sshd = self.sshd
        data = os.urandom(3 * 1024 * 1024)
        out = _run_closing(lambda reactor: _runner(reactor, sshd), "127.0.0.1",
                           ["cat"], data)
        self.assertEqual(out, data)

    def test_ssh_connection_reused(self):
        """
        Successive and concurrent commands to one node share one SSH
        connection (the same client port in ``$SSH_CONNECTION``); after
        ``close()`` a new one is made.
        """
        sshd = self.sshd
        script = "import os; print(os.environ['SSH_CONNECTION'].split()[1])"
        argv = ["/usr/bin/python3", "-c", script]

        def go(reactor):
            from twisted.internet.defer import gatherResults
            runner = _runner(reactor, sshd)
            ports = []
            d = runner.run("127.0.0.1", argv)
            d.addCallback(ports.append)
            d.addCallback(lambda _: gatherResults(
                [runner.run("127.0.0.1", argv) for _ in range(3)]))
            d.addCallback(ports.extend)
            d.addCallback(lambda _: runner.close())
            d.addCallback(lambda _: runner.run("127.0.0.1", argv))
            d.addCallback(ports.append)
            d.addBoth(lambda result: runner.close().addCallback(lambda _: result))
            return d.addCallback(lambda _: ports)
        ports = run_in_reactor(go)
        self.assertEqual(len(set(ports[:4])), 1)
        self.assertNotEqual(ports[4], ports[0])

    def test_ssh_concurrency_bound(self):
        """
        With ``concurrency=2``, no more than two commands run at once, across
        three nodes.
        """
        sshd = self.sshd
        tmp_path = temporary_path(self)
        (tmp_path / "active").mkdir()
        (tmp_path / "seen").mkdir()
        argv = ["/usr/bin/python3", "-c", _CONCURRENCY_PROBE, str(tmp_path)]

        def go(reactor):
            from twisted.internet.defer import gatherResults
            runner = _runner(reactor, sshd, concurrency=2)
            d = gatherResults([runner.run(address, argv)
                               for address in sshd.addresses * 2])
            return d.addBoth(lambda result: runner.close().addCallback(
                lambda _: result))
        run_in_reactor(go)
        seen = [int((tmp_path / "seen" / name).read_text())
                for name in os.listdir(tmp_path / "seen")]
        self.assertEqual(len(seen), 6)
        self.assertLessEqual(max(seen), 2)

    def test_ssh_eliot_actions(self):
        """
        Connecting and running are logged as eliot actions, the connection
        with the host key's fingerprint.
        """
        sshd = self.sshd
        from eliot import MemoryLogger
        from eliot.testing import swap_logger
        logger = MemoryLogger()
        previous = swap_logger(logger)
        try:
            _run_closing(lambda reactor: _runner(reactor, sshd), "127.0.0.1",
                         ["printf", "x"])
        finally:
            swap_logger(previous)
        [connect] = LoggedAction.of_type(logger.messages, SSH_CONNECT)
        self.assertTrue(connect.succeeded)
        self.assertEqual(
            connect.end_message["host_key"],
            key_fingerprint(
                sshd.host_key.public()))
        [run] = LoggedAction.of_type(logger.messages, SSH_RUN)
        self.assertTrue(run.succeeded and run.end_message["exit_code"] == 0)
        logger.validate()



class AlgorithmsTests(SynchronousTestCase):
    """
    The algorithms SSH connections offer.
    """

    def test_bulk_friendly_algorithms(self):
        """
        Connections offer counter-mode AES only, AES-128 first, and
        HMAC-SHA-256 before the slower SHA-512 (a volume push is bound by the
        MAC); no CBC, 3DES or MD5.
        """
        from flocker._ssh._transport import _ClientTransport
        self.assertEqual(_ClientTransport.supportedCiphers[0], b"aes128-ctr")
        self.assertTrue(
            all(cipher.endswith(b"-ctr")
                for cipher in _ClientTransport.supportedCiphers))
        self.assertEqual(_ClientTransport.supportedMACs[0], b"hmac-sha2-256")
        self.assertNotIn(b"hmac-md5", _ClientTransport.supportedMACs)


# ---------------------------------------------------------------------------
# TCP options: small messages go out, and are acknowledged, at once

@implementer(ITCPTransport)
class _RecordingTCPTransport(StringTransport):
    """
    A TCP transport in memory that records the options set on it and on
    its socket (``getHandle``).

    :ivar no_delay: The last ``setTcpNoDelay`` value, or ``None``.
    :ivar socket_options: ``(level, option, value)`` of every
        ``setsockopt`` on the handle.
    :ivar refuse: An ``OSError`` the handle's ``setsockopt`` raises, or
        ``None``.
    """

    def __init__(self):
        StringTransport.__init__(self)
        self.no_delay = None
        self.socket_options = []
        self.refuse = None

    def setTcpNoDelay(self, enabled):
        self.no_delay = enabled

    def getTcpNoDelay(self):
        return bool(self.no_delay)

    def getHandle(self):
        return self

    def setsockopt(self, level, option, value):
        if self.refuse is not None:
            raise self.refuse
        self.socket_options.append((level, option, value))


class TCPOptionsTests(SynchronousTestCase):
    """
    Tests for :mod:`flocker._ssh._tcp` and its use by the Conch transport.
    """

    def test_send_at_once_real_socket(self):
        """
        :func:`send_at_once` turns ``TCP_NODELAY`` on for a real TCP
        connection's socket (loopback), which starts with it off.
        """
        server = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(server.close)
        client = socket.create_connection(server.getsockname())
        self.addCleanup(client.close)
        accepted, _ = server.accept()
        self.addCleanup(accepted.close)
        before = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        send_at_once(tcp.Connection(client, Protocol()))
        self.assertEqual(
            (before, client.getsockopt(socket.IPPROTO_TCP,
                                       socket.TCP_NODELAY)), (0, 1))

    def test_send_at_once_not_tcp(self):
        """
        :func:`send_at_once` leaves a transport that is not TCP as it is
        (no error, nothing written).
        """
        transport = StringTransport()
        send_at_once(transport)
        self.assertEqual(transport.value(), b"")

    def test_acknowledge_at_once(self):
        """
        :func:`acknowledge_at_once` sets ``TCP_QUICKACK`` on the TCP
        transport's socket, once per call (the kernel clears it again).
        """
        transport = _RecordingTCPTransport()
        acknowledge_at_once(transport)
        acknowledge_at_once(transport)
        self.assertEqual(transport.socket_options,
                         [(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)] * 2)

    def test_acknowledge_at_once_refused(self):
        """
        A socket that refuses ``TCP_QUICKACK`` (closing already) is left as
        it is, without an error.
        """
        transport = _RecordingTCPTransport()
        transport.refuse = OSError(9, "Bad file descriptor")
        acknowledge_at_once(transport)
        self.assertEqual(transport.socket_options, [])

    def test_acknowledge_at_once_not_tcp(self):
        """
        :func:`acknowledge_at_once` leaves a transport that is not TCP as it
        is (it has no socket to ask).
        """
        transport = StringTransport()
        acknowledge_at_once(transport)
        self.assertEqual(transport.value(), b"")

    def conch_transport(self):
        """
        :return: ``(_ClientTransport, _RecordingTCPTransport)``, connected.
        """
        from flocker._ssh._transport import _ClientTransport
        client = _ClientTransport("10.0.0.9", 22, "root",
                                  KnownHosts.parse("kh", b""), [], None,
                                  Deferred())
        transport = _RecordingTCPTransport()
        client.makeConnection(transport)
        return client, transport

    def test_conch_connection_sends_at_once(self):
        """
        The Conch client transport turns Nagle's algorithm off on its TCP
        connection as soon as it is made (before it sends its version).
        """
        client, transport = self.conch_transport()
        self.assertEqual((transport.no_delay, transport.value()[:8]),
                         (True, b"SSH-2.0-"))

    def test_conch_connection_acknowledges_reads(self):
        """
        The Conch client transport acknowledges every read at once, and
        still parses what it read (the server's version line here).
        """
        client, transport = self.conch_transport()
        client.dataReceived(b"SSH-2.0-OpenSSH_9.2\r\n")
        client.dataReceived(b"")
        self.assertEqual(
            (transport.socket_options, client.otherVersionString),
            ([(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)] * 2,
             b"SSH-2.0-OpenSSH_9.2"))
