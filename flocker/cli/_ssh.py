"""
Running commands on cluster nodes over SSH, with Twisted Conch.

The deploy client talks to each node only through :class:`ICommandRunner`:
run an argument vector on a node, get its standard output or a typed error.
:class:`SSHCommandRunner` does it over real SSH; :class:`MemoryCommandRunner`
does it in memory for tests.

How the SSH runner behaves, and why:

* **One connection per node, many commands.**  A command on a fresh
  connection costs a key exchange and an authentication (about 0.16 s on the
  lab); every command after the first opens a new session channel on the
  node's existing connection instead.  :meth:`SSHCommandRunner.close` closes
  them all.
* **Host keys are checked, never learned.**  The node's key must already be in
  the known-hosts file (OpenSSH format, plain or hashed names, ``[host]:port``
  for other ports than 22, ``*``/``?`` patterns, ``@revoked`` lines).  An
  unknown, changed or revoked key fails with :class:`HostKeyError` naming the
  host and the key's SHA256 fingerprint.  The file is read once and never
  written: Conch's own ``KnownHostsFile`` adds and saves entries during
  verification, so it is not used.
* **Keys as ssh(1) finds them.**  The agent's keys (when ``SSH_AUTH_SOCK`` is
  set), then the identity files: those given explicitly or, if none were,
  ``~/.ssh/id_ed25519``, ``id_ecdsa`` and ``id_rsa``.  RSA keys sign with
  ``rsa-sha2-512`` because current OpenSSH servers refuse SHA-1 signatures.
  Passwords and keyboard-interactive prompts are never tried.
* **Arguments stay arguments.**  SSH carries one command string that the
  node's login shell (POSIX ``sh`` family) parses; :func:`quote_argv` quotes
  every argument so each arrives as exactly one literal argument, whatever it
  contains.  NUL bytes cannot be carried and are refused.
* **Bounded.**  Connecting (TCP, key exchange and authentication together) has
  a timeout; at most ``concurrency`` commands are in flight across all nodes
  and at most ``sessions_per_node`` on one node (sshd's ``MaxSessions`` is 10
  by default).
* **Logged.**  An eliot action per connection and per command (types in
  :mod:`flocker.cli._logging`); the command's standard error is captured for
  error messages.

Crossing the process boundary with eliot: a command that can continue the
caller's eliot task accepts :data:`ELIOT_TASK_OPTION` followed by a serialised
task id right after ``argv[0]``; :func:`task_argv` inserts it.  The runner
itself carries argument vectors untouched.
"""

import base64
import hashlib
import hmac
import os
import re
import shlex
import struct

import attr
from eliot import current_action
from eliot.twisted import DeferredContext
from pyrsistent import pvector
from twisted.conch.error import ConchError
from twisted.conch.ssh.agent import (
    AGENT_SIGN_RESPONSE, AGENTC_SIGN_REQUEST, SSHAgentClient,
)
from twisted.conch.ssh.channel import SSHChannel
from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR, SSHConnection
from twisted.conch.ssh.keys import (
    BadKeyError, EncryptedKeyError, FingerprintFormats, Key,
)
from twisted.conch.ssh.transport import SSHClientTransport
from twisted.conch.ssh.userauth import MSG_USERAUTH_REQUEST, SSHUserAuthClient
from twisted.internet.defer import (
    CancelledError, Deferred, DeferredList, DeferredSemaphore, fail,
    maybeDeferred, succeed,
)
from twisted.internet.endpoints import (
    HostnameEndpoint, UNIXClientEndpoint, connectProtocol,
)
from twisted.internet.error import (
    ConnectError, ConnectingCancelledError, ConnectionLost,
    ConnectionRefusedError, DNSLookupError, TimeoutError as TCPTimeoutError,
)
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from ..node._protocol import ELIOT_TASK_OPTION
from ._logging import (
    SSH_AGENT_UNAVAILABLE, SSH_CONNECT, SSH_DISCONNECT, SSH_IDENTITY_SKIPPED,
    SSH_RUN, SSH_START,
)

__all__ = [
    "ICommandRunner", "SSHCommandRunner", "MemoryCommandRunner",
    "ssh_command_runner", "CommandExit", "RunningCommand",
    "RemoteCommandFailed", "NodeUnreachable", "AuthenticationFailed",
    "HostKeyError", "SSHConfigurationError",
    "KnownHosts", "known_hosts_name", "key_fingerprint",
    "load_identities", "agent_endpoint", "DEFAULT_IDENTITY_NAMES",
    "quote_argv", "task_argv", "ELIOT_TASK_OPTION",
    "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_CONCURRENCY",
    "DEFAULT_SESSIONS_PER_NODE",
]


#: Identity files tried in ``~/.ssh`` when none is given, in this order.
DEFAULT_IDENTITY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")

#: Seconds allowed for TCP connect, key exchange and authentication together.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Commands in flight at once across all nodes.
DEFAULT_CONCURRENCY = 20

#: Commands in flight at once on one node's connection.  OpenSSH's sshd
#: refuses more than ``MaxSessions`` (10 by default) channels per connection.
DEFAULT_SESSIONS_PER_NODE = 8


# ---------------------------------------------------------------------------
# Errors

def _last_line(data):
    """
    :param bytes data: Error output.
    :return: Its last non-empty line as text, or ``""``.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _shown(argv, limit=160):
    text = " ".join(shlex.quote(a) for a in argv)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class RemoteCommandFailed(Exception):
    """
    A command ran on a node and exited with a non-zero status (or was killed
    by a signal).

    :ivar str address: The node.
    :ivar argv: The command's argument vector (``list`` of ``str``).
    :ivar exit_code: Its exit status, or ``None`` if it has none (killed by a
        signal, or the server sent none).
    :ivar bytes stderr: What it wrote to standard error.
    :ivar signal: The name of the signal that ended it (``"KILL"``) or
        ``None``.
    """

    def __init__(self, address, argv, exit_code, stderr, signal=None):
        Exception.__init__(self, address, argv, exit_code, stderr)
        self.address = address
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stderr = stderr
        self.signal = signal

    def error_line(self):
        """
        :return: The last non-empty line of the command's standard error,
            which is where programs put their one-line error message.
        """
        return _last_line(self.stderr)

    def __str__(self):
        if self.exit_code is not None:
            how = "exited with status %d" % (self.exit_code,)
        elif self.signal is not None:
            how = "was killed by signal %s" % (self.signal,)
        else:
            how = "ended without an exit status"
        detail = self.error_line()
        return "%s: %s %s%s" % (
            self.address, _shown(self.argv), how,
            ": " + detail if detail else " (no error output)")


class NodeUnreachable(Exception):
    """
    No usable SSH connection to a node: it does not answer, refuses the
    connection, is not an SSH server, timed out, or dropped the connection
    while a command ran.

    :ivar str address: The node.
    :ivar str reason: Why, in one line.
    """

    def __init__(self, address, reason):
        Exception.__init__(self, address, reason)
        self.address = address
        self.reason = reason

    def __str__(self):
        return "%s: unreachable: %s" % (self.address, self.reason)


class AuthenticationFailed(NodeUnreachable):
    """
    The node's SSH server refused every key the client offered.
    """

    def __str__(self):
        return "%s: authentication failed: %s" % (self.address, self.reason)


class HostKeyError(Exception):
    """
    The node's host key is not one the known-hosts file vouches for.  The
    connection was closed before authentication; nothing was trusted or
    written.

    :ivar str address: The node.
    :ivar str fingerprint: The presented key's type and SHA256 fingerprint,
        as ssh(1) prints them (``ssh-ed25519 SHA256:…``).
    :ivar str reason: Why the key was refused and what to do.
    """

    def __init__(self, address, fingerprint, reason):
        Exception.__init__(self, address, fingerprint, reason)
        self.address = address
        self.fingerprint = fingerprint
        self.reason = reason

    def __str__(self):
        return "%s: host key verification failed: %s (key presented: %s)" % (
            self.address, self.reason, self.fingerprint)


class SSHConfigurationError(ValueError):
    """
    The client's own SSH setup is unusable: an identity file given explicitly
    is missing, unreadable, passphrase-protected or not a key.
    """


# ---------------------------------------------------------------------------
# Command lines

def quote_argv(argv):
    """
    Turn an argument vector into the one command string SSH carries, quoted
    for a POSIX shell so that every element arrives as one literal argument.

    :param argv: Non-empty sequence of ``str``.
    :return: The command as UTF-8 ``bytes``.
    :raises TypeError: If ``argv`` is a string or holds a non-string.
    :raises ValueError: If ``argv`` is empty or an argument contains NUL (no
        shell can receive it) or cannot be encoded as UTF-8.
    """
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a sequence of strings, not a string")
    argv = list(argv)
    if not argv:
        raise ValueError("argv must not be empty")
    for argument in argv:
        if not isinstance(argument, str):
            raise TypeError("argument %r is not a string" % (argument,))
        if "\x00" in argument:
            raise ValueError("argument %r contains NUL" % (argument,))
    return " ".join(shlex.quote(argument) for argument in argv).encode("utf-8")


def _check_stdin(stdin):
    if not isinstance(stdin, bytes):
        raise TypeError("stdin must be bytes, not %s" % (
            type(stdin).__name__,))


def task_argv(argv, action=None):
    """
    Insert :data:`ELIOT_TASK_OPTION` and a serialised task id after
    ``argv[0]``, so the remote command can continue ``action``'s task.

    :param argv: Argument vector (sequence of ``str``).
    :param action: The eliot action to continue; the current one if
        ``None``.
    :return: A new ``list``; ``argv`` unchanged if there is no action.
    """
    argv = list(argv)
    if action is None:
        action = current_action()
    if action is None:
        return argv
    task_id = action.serialize_task_id().decode("ascii")
    return argv[:1] + [ELIOT_TASK_OPTION, task_id] + argv[1:]


# ---------------------------------------------------------------------------
# Host keys

def key_fingerprint(key):
    """
    :param Key key: A public key.
    :return: Its type and SHA256 fingerprint as ssh(1) prints them, e.g.
        ``"ssh-ed25519 SHA256:R1zp…"``.
    """
    digest = key.fingerprint(FingerprintFormats.SHA256_BASE64).rstrip("=")
    return "%s SHA256:%s" % (key.sshType().decode("ascii"), digest)


def known_hosts_name(address, port):
    """
    :param str address: Host name or IP address.
    :param int port: SSH port.
    :return: The name OpenSSH looks up in known_hosts for them: the address
        itself on port 22, ``[address]:port`` otherwise.
    """
    if port == 22:
        return address
    return "[%s]:%d" % (address, port)


# Signature/host key algorithm names usable with a key of each type.
_ALGORITHMS = {
    b"ssh-rsa": (b"rsa-sha2-512", b"rsa-sha2-256", b"ssh-rsa"),
}


def _algorithms_for(key_type):
    return _ALGORITHMS.get(key_type, (key_type,))


def _pattern_matcher(pattern):
    # OpenSSH host patterns know only '*' and '?'; everything else, brackets
    # of "[host]:port" included, is literal.
    expression = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char)
        for char in pattern.lower())
    return re.compile(r"\A%s\Z" % (expression,), re.DOTALL)


@attr.s(frozen=True, slots=True)
class _HostEntry(object):
    """
    One parsed known_hosts line.

    :ivar int line: 1-based line number.
    :ivar hosts: ``None`` for a hashed entry, else a tuple of
        ``(negated, compiled pattern)``.
    :ivar hashed: ``(salt, digest)`` of a hashed entry, else ``None``.
    :ivar Key key: The public key.
    :ivar bytes marker: ``b"@revoked"``, ``b"@cert-authority"`` or ``b""``.
    """
    line = attr.ib()
    hosts = attr.ib()
    hashed = attr.ib()
    key = attr.ib(eq=False)
    blob = attr.ib()
    marker = attr.ib()

    def matches(self, name):
        """
        :param str name: A known-hosts name (see :func:`known_hosts_name`).
        :return: Whether this entry is about that name.
        """
        if self.hashed is not None:
            salt, digest = self.hashed
            mine = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
            return hmac.compare_digest(mine, digest)
        lowered = name.lower()
        matched = False
        for negated, pattern in self.hosts:
            if pattern.match(lowered):
                if negated:
                    return False
                matched = True
        return matched


def _parse_host_entry(number, line):
    fields = line.split()
    marker = b""
    if fields and fields[0].startswith(b"@"):
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        return None
    hosts_field, key_type, key_data = fields[:3]
    try:
        blob = base64.b64decode(key_data, validate=True)
        key = Key.fromString(blob)
    except (ValueError, BadKeyError, struct.error, IndexError):
        return None
    if key.sshType() != key_type:
        return None
    if hosts_field.startswith(b"|1|"):
        parts = hosts_field.split(b"|")
        if len(parts) != 4:
            return None
        try:
            hashed = (base64.b64decode(parts[2]), base64.b64decode(parts[3]))
        except ValueError:
            return None
        hosts = None
    else:
        hashed = None
        hosts = tuple(
            (pattern.startswith("!"), _pattern_matcher(pattern.lstrip("!")))
            for pattern in hosts_field.decode("utf-8", "replace").split(",")
            if pattern.lstrip("!"))
    return _HostEntry(line=number, hosts=hosts, hashed=hashed, key=key,
                      blob=key.blob(), marker=marker)


@attr.s(frozen=True, slots=True)
class KnownHosts(object):
    """
    A known-hosts file, read once, consulted in memory, never written.

    :ivar str path: Where it was read from (for messages).
    :ivar entries: ``PVector`` of parsed lines (unparseable lines and
        ``@cert-authority`` lines are left out: certificates are not
        supported).
    """
    path = attr.ib()
    entries = attr.ib(converter=pvector, repr=False)

    @classmethod
    def parse(cls, path, data):
        """
        :param str path: Where ``data`` came from.
        :param bytes data: known_hosts content in OpenSSH format.
        :return: A :class:`KnownHosts`.
        """
        entries = []
        for number, line in enumerate(data.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            entry = _parse_host_entry(number, line)
            if entry is not None and entry.marker in (b"", b"@revoked"):
                entries.append(entry)
        return cls(path=path, entries=entries)

    @classmethod
    def from_path(cls, path):
        """
        Read a known-hosts file.  A missing file is an empty one (every host
        is then unknown).

        :param str path: The file.
        :return: A :class:`KnownHosts`.
        :raises SSHConfigurationError: If it exists but cannot be read.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        except OSError as e:
            raise SSHConfigurationError(
                "cannot read known hosts file %s: %s" % (path, e.strerror))
        return cls.parse(path, data)

    def key_types(self, address, port):
        """
        :return: ``set`` of the key types (``bytes``, e.g. ``b"ssh-ed25519"``)
            listed for the host, so key exchange can ask for one of those.
        """
        name = known_hosts_name(address, port)
        return {entry.key.sshType() for entry in self.entries
                if not entry.marker and entry.matches(name)}

    def verify(self, address, port, key):
        """
        Check the key a host presented.

        :param str address: The host as the client named it.
        :param int port: The SSH port.
        :param Key key: The presented host key.
        :return: ``None`` if the file vouches for the key.
        :raises HostKeyError: If the key is revoked, differs from the one
            listed for the host, or the host is not listed with a key of this
            type.
        """
        name = known_hosts_name(address, port)
        fingerprint = key_fingerprint(key)
        blob = key.blob()
        for entry in self.entries:
            if entry.marker == b"@revoked" and entry.blob == blob and (
                    entry.matches(name)):
                raise HostKeyError(address, fingerprint, (
                    "the key is marked @revoked in %s line %d; refusing to "
                    "connect") % (self.path, entry.line))
        same_type = []
        other_types = set()
        for entry in self.entries:
            if entry.marker or not entry.matches(name):
                continue
            if entry.key.sshType() == key.sshType():
                if entry.blob == blob:
                    return None
                same_type.append(entry)
            else:
                other_types.add(entry.key.sshType().decode("ascii"))
        if same_type:
            raise HostKeyError(address, fingerprint, (
                "the host key has CHANGED: %s line %d lists a different key "
                "for %s; refusing to connect (someone may be intercepting the "
                "connection; if the change is expected, remove the old entry "
                "with 'ssh-keygen -R %s -f %s')") % (
                    self.path, same_type[0].line, name, shlex.quote(name),
                    shlex.quote(self.path)))
        also = ""
        if other_types:
            also = " (it lists only %s keys for this host)" % (
                ", ".join(sorted(other_types)),)
        raise HostKeyError(address, fingerprint, (
            "the host is not in %s%s; refusing to trust an unknown key (check "
            "the fingerprint on the node, then add its key to the file, e.g. "
            "with ssh-keyscan)") % (self.path, also))


# ---------------------------------------------------------------------------
# Client identities

def load_identities(identity_files=(), ssh_directory=None):
    """
    Load the private keys to authenticate with, as ssh(1) would: the
    identity files given, or, if none, the default ones in ``ssh_directory``
    (:data:`DEFAULT_IDENTITY_NAMES`) that exist and can be used.  Unusable
    default files are skipped with an eliot message.

    This reads local files: call it before handing control to the reactor.

    :param identity_files: Paths given explicitly (``--identity``).
    :param ssh_directory: Where the default identities are; ``~/.ssh`` if
        ``None``.
    :return: ``PVector`` of private :class:`Key`.
    :raises SSHConfigurationError: If an explicit identity file is missing,
        unreadable, passphrase-protected or not a private key.
    """
    keys = []
    for path in identity_files:
        try:
            key = Key.fromFile(path)
        except EncryptedKeyError:
            raise SSHConfigurationError(
                "identity file %s is passphrase-protected: load it into "
                "ssh-agent instead" % (path,))
        except OSError as e:
            raise SSHConfigurationError(
                "cannot read identity file %s: %s" % (path, e.strerror))
        except (BadKeyError, ValueError) as e:
            raise SSHConfigurationError(
                "identity file %s is not a usable private key: %s" % (path, e))
        if key.isPublic():
            raise SSHConfigurationError(
                "identity file %s holds a public key; give the private key"
                % (path,))
        keys.append(key)
    if identity_files:
        return pvector(keys)
    if ssh_directory is None:
        ssh_directory = os.path.expanduser("~/.ssh")
    for name in DEFAULT_IDENTITY_NAMES:
        path = os.path.join(ssh_directory, name)
        if not os.path.exists(path):
            continue
        try:
            key = Key.fromFile(path)
        except EncryptedKeyError:
            SSH_IDENTITY_SKIPPED.log(
                path=path, reason="passphrase-protected (use ssh-agent)")
            continue
        except (OSError, BadKeyError, ValueError) as e:
            SSH_IDENTITY_SKIPPED.log(path=path, reason=str(e))
            continue
        if not key.isPublic():
            keys.append(key)
    return pvector(keys)


def agent_endpoint(reactor, environ=None):
    """
    :param reactor: An ``IReactorUNIX`` provider.
    :param environ: The environment; ``os.environ`` if ``None``.
    :return: An endpoint reaching the SSH agent named by ``SSH_AUTH_SOCK``,
        or ``None`` when it is not set.
    """
    if environ is None:
        environ = os.environ
    path = environ.get("SSH_AUTH_SOCK")
    if not path:
        return None
    return UNIXClientEndpoint(reactor, path)


def _signature_algorithm(key):
    # SHA-1 "ssh-rsa" signatures are refused by OpenSSH 8.8 and later.
    return b"rsa-sha2-512" if key.sshType() == b"ssh-rsa" else key.sshType()


@attr.s(frozen=True)
class _FileIdentity(object):
    """
    A key whose private half the client holds.
    """
    private = attr.ib()

    @property
    def public(self):
        return self.private.public()

    @property
    def algorithm(self):
        return _signature_algorithm(self.private)

    def sign(self, data):
        return maybeDeferred(self.private.sign, data,
                             signatureType=self.algorithm)


# Flags of an agent sign request asking for SHA-2 RSA signatures.
_AGENT_RSA_SHA2_512 = 4


@attr.s(frozen=True)
class _AgentIdentity(object):
    """
    A key held by the SSH agent; the agent signs.
    """
    agent = attr.ib(eq=False)
    public = attr.ib()

    @property
    def algorithm(self):
        return _signature_algorithm(self.public)

    def sign(self, data):
        flags = (_AGENT_RSA_SHA2_512 if self.algorithm == b"rsa-sha2-512"
                 else 0)
        request = NS(self.public.blob()) + NS(data) + struct.pack(">L", flags)

        def signature(response):
            if response[:1] != bytes((AGENT_SIGN_RESPONSE,)):
                raise ConchError("unexpected agent response")
            return getNS(response[1:])[0]
        return self.agent.sendRequest(AGENTC_SIGN_REQUEST, request).addCallback(
            signature)


# ---------------------------------------------------------------------------
# The Conch protocol stack

@attr.s(frozen=True, slots=True)
class _Outcome(object):
    """
    How a remote command ended.

    :ivar exit_code: Exit status or ``None``.
    :ivar signal: Signal name or ``None``.
    :ivar bytes stdout: Everything it wrote to standard output.
    :ivar bytes stderr: Everything it wrote to standard error.
    """
    exit_code = attr.ib()
    signal = attr.ib()
    stdout = attr.ib()
    stderr = attr.ib()


class _ChannelNotOpened(Exception):
    """
    A session channel could not be opened or its exec request was refused;
    the command did not start.

    :ivar bool connection_lost: The connection was gone before the command
        started (so running it on a new connection is safe).
    """

    def __init__(self, reason, connection_lost):
        Exception.__init__(self, reason)
        self.reason = reason
        self.connection_lost = connection_lost


class _CommandChannel(SSHChannel):
    """
    A session channel executing one command: its standard output is handed
    on as it arrives, its standard input written at will (see
    :class:`RunningCommand`); :func:`_run_once` makes a one-shot command of
    it.
    """
    name = b"session"

    #: Standard error kept for error messages: the end of it.
    STDERR_KEPT = 256 * 1024

    def __init__(self, command, received, started, ended):
        """
        :param bytes command: The quoted command line.
        :param received: Callable given each piece of standard output.
        :param started: ``Deferred`` fired with a :class:`RunningCommand`
            once the command runs, or failed with :class:`_ChannelNotOpened`.
        :param ended: ``Deferred`` fired with an :class:`_Outcome` (without
            stdout) once it ended, or failed with ``ConnectionLost``.
        """
        SSHChannel.__init__(self)
        self._command = command
        self._received = received
        self._started = started
        self._ended = ended
        self._stderr = b""
        self._exit_code = None
        self._signal = None
        self._exited = False
        self._eof_pending = False

    def openFailed(self, reason):
        value = getattr(reason, "value", reason)
        self._started.errback(Failure(_ChannelNotOpened(
            value, isinstance(value, ConnectionLost))))

    def channelOpen(self, specificData):
        requested = self.conn.sendRequest(
            self, b"exec", NS(self._command), wantReply=True)
        requested.addCallbacks(
            lambda _: self._started.callback(
                RunningCommand(self, self._ended)),
            lambda _: self.loseConnection())

    def send(self, data):
        """
        Write ``data`` to the command's standard input.
        """
        self.write(data)

    def close_input(self):
        """
        End the command's standard input once everything written is sent.
        """
        self._eof_pending = True
        self._send_eof_if_flushed()

    def _send_eof_if_flushed(self):
        # EOF must follow every byte of stdin; bytes still waiting for the
        # peer's window are sent by addWindowBytes.
        if self._eof_pending and not self.buf and not self.closing:
            self._eof_pending = False
            self.conn.sendEOF(self)

    def addWindowBytes(self, data):
        SSHChannel.addWindowBytes(self, data)
        self._send_eof_if_flushed()

    def dataReceived(self, data):
        self._received(data)

    def extReceived(self, dataType, data):
        if dataType == EXTENDED_DATA_STDERR:
            self._stderr = (self._stderr + data)[-self.STDERR_KEPT:]

    def request_exit_status(self, data):
        (self._exit_code,) = struct.unpack(">L", data[:4])
        self._exited = True
        return True

    def request_exit_signal(self, data):
        name, rest = getNS(data)
        self._signal = name.decode("ascii", "replace")
        self._exited = True
        return True

    def closed(self):
        if not self._started.called:
            self._started.errback(Failure(_ChannelNotOpened(
                "the server refused to execute the command", False)))
        elif not self._exited and getattr(self.conn, "lost", False):
            self._ended.errback(Failure(ConnectionLost(
                "connection lost while the command ran")))
        else:
            self._ended.callback(_Outcome(
                exit_code=self._exit_code, signal=self._signal, stdout=b"",
                stderr=self._stderr))


def _run_once(open_channel, command, stdin):
    """
    Run one command on a channel: write ``stdin``, close the input, collect
    the output.

    :param open_channel: Callable given the :class:`_CommandChannel` to
        open.
    :param bytes command: The quoted command line.
    :param bytes stdin: Its standard input.
    :return: ``Deferred`` firing with an :class:`_Outcome`, or failing with
        :class:`_ChannelNotOpened` or ``ConnectionLost``.
    """
    stdout = []
    started, ended = Deferred(), Deferred()
    open_channel(_CommandChannel(command, stdout.append, started, ended))

    def feed(running):
        if stdin:
            running.write(stdin)
        running.close_input()
        return ended
    started.addCallback(feed)
    return started.addCallback(
        lambda outcome: attr.evolve(outcome, stdout=b"".join(stdout)))


class RunningCommand(object):
    """
    A command started with :meth:`ICommandRunner.start`, still running.

    :ivar ended: ``Deferred`` firing once the command has ended with
        ``(exit_code, signal, stderr)`` (the exit status or ``None``, the
        signal name or ``None``, the end of its standard error), or failing
        with :class:`NodeUnreachable` if the connection was lost first.
    """

    def __init__(self, channel, ended):
        self._channel = channel
        self.ended = ended

    def write(self, data):
        """
        :param bytes data: Written to the command's standard input.
        """
        self._channel.send(data)

    def close_input(self):
        """
        Close the command's standard input (after everything written).
        """
        self._channel.close_input()


class _Connection(SSHConnection):
    """
    The ``ssh-connection`` service: fires ``ready`` with itself once
    authentication succeeded, and remembers when it stopped.
    """

    def __init__(self, ready):
        SSHConnection.__init__(self)
        self.lost = False
        self._ready = ready

    def serviceStarted(self):
        SSHConnection.serviceStarted(self)
        self.transport.authenticated()
        if not self._ready.called:
            self._ready.callback(self)

    def serviceStopped(self):
        self.lost = True
        SSHConnection.serviceStopped(self)


class _UserAuth(SSHUserAuthClient):
    """
    Public-key authentication with a list of identities, tried in order.
    """
    preferredOrder = [b"publickey"]

    def __init__(self, user, instance, identities):
        SSHUserAuthClient.__init__(self, user, instance)
        self._identities = list(identities)
        self._current = None
        self.offered = 0

    def auth_publickey(self):
        if not self._identities:
            return False
        self._current = self._identities.pop(0)
        self.lastPublicKey = self._current.public
        self.offered += 1
        self.askForAuth(b"publickey", b"\x00" + NS(self._current.algorithm)
                        + NS(self._current.public.blob()))
        return True

    def auth_password(self):
        return False

    def auth_keyboard_interactive(self):
        return False

    def ssh_USERAUTH_PK_OK_publickey(self, packet):
        identity = self._current
        algorithm_and_key = (NS(identity.algorithm)
                             + NS(identity.public.blob()))
        signed = (NS(self.transport.sessionID)
                  + bytes((MSG_USERAUTH_REQUEST,)) + NS(self.user)
                  + NS(self.instance.name) + NS(b"publickey") + b"\x01"
                  + algorithm_and_key)
        d = identity.sign(signed)
        d.addCallback(lambda signature: self.askForAuth(
            b"publickey", b"\x01" + algorithm_and_key + NS(signature)))
        # A key that cannot sign (agent refusal) is skipped: asking "none"
        # brings back the method list and the next key.
        d.addErrback(self._ebAuth)


def _prefer_key_types(supported, known_types):
    # Ask first for host key algorithms the known-hosts file has keys for,
    # as ssh(1) does, so a host listed with an ed25519 key is not reported
    # "unknown" because it offered its RSA key first.
    known = set()
    for key_type in known_types:
        known.update(_algorithms_for(key_type))
    return ([name for name in supported if name in known]
            + [name for name in supported if name not in known])


class _ClientTransport(SSHClientTransport):
    """
    The client side of one SSH connection to a node: verifies the host key
    against :class:`KnownHosts`, authenticates, and starts a
    :class:`_Connection`.  ``ready`` fires with the connection or fails with
    :class:`HostKeyError`, :class:`AuthenticationFailed` or
    :class:`NodeUnreachable`.
    """

    def __init__(self, address, port, username, known_hosts, identities,
                 agent_endpoint, ready):
        self.address = address
        self.port = port
        self.username = username
        self.known_hosts = known_hosts
        self.identities = list(identities)
        self.agent_endpoint = agent_endpoint
        self.ready = ready
        self.stage = "key exchange"
        self.timed_out = None
        self.host_key = None
        self.host_public_key = None
        self.lost = Deferred()
        self._agent = None
        self._userauth = None
        self._host_key_error = None
        self._disconnect_reason = None

    def connectionMade(self):
        self.supportedPublicKeys = _prefer_key_types(
            self.supportedPublicKeys,
            self.known_hosts.key_types(self.address, self.port))
        SSHClientTransport.connectionMade(self)

    def verifyHostKey(self, hostKey, fingerprint):
        try:
            key = Key.fromString(hostKey)
        except (BadKeyError, ValueError, struct.error, IndexError):
            self._host_key_error = HostKeyError(
                self.address, "unparseable key",
                "the host presented a key of an unsupported type")
            return fail(self._host_key_error)
        try:
            self.known_hosts.verify(self.address, self.port, key)
        except HostKeyError as e:
            self._host_key_error = e
            return fail(e)
        self.host_key = key_fingerprint(key)
        self.host_public_key = key
        return succeed(True)

    def connectionSecure(self):
        self.stage = "authentication"
        d = self._agent_identities()

        def authenticate(agent_keys):
            offered = {identity.public.blob() for identity in agent_keys}
            identities = list(agent_keys) + [
                _FileIdentity(key) for key in self.identities
                if key.public().blob() not in offered]
            self._userauth = _UserAuth(
                self.username.encode("utf-8"), _Connection(self.ready),
                identities)
            self.requestService(self._userauth)
        d.addCallback(authenticate)

    def _agent_identities(self):
        if self.agent_endpoint is None:
            return succeed([])
        d = self.agent_endpoint.connect(Factory.forProtocol(SSHAgentClient))

        def connected(agent):
            self._agent = agent
            return agent.requestIdentities()

        def identities(pairs):
            result = []
            for blob, comment in pairs:
                try:
                    result.append(_AgentIdentity(self._agent,
                                                 Key.fromString(blob)))
                except BadKeyError:
                    continue
            return result

        def unavailable(reason):
            SSH_AGENT_UNAVAILABLE.log(reason=reason.getErrorMessage())
            self._close_agent()
            return []
        return d.addCallback(connected).addCallback(identities).addErrback(
            unavailable)

    def _close_agent(self):
        if self._agent is not None and self._agent.transport is not None:
            self._agent.transport.loseConnection()
        self._agent = None

    def authenticated(self):
        """
        Called by the connection service once authentication succeeded.
        """
        self.stage = "ready"
        self._close_agent()

    def receiveError(self, reasonCode, description):
        self._disconnect_reason = description.decode("utf-8", "replace")
        SSHClientTransport.receiveError(self, reasonCode, description)

    def sendDisconnect(self, reason, desc):
        if self._disconnect_reason is None:
            self._disconnect_reason = desc.decode("utf-8", "replace")
        SSHClientTransport.sendDisconnect(self, reason, desc)

    def connectionLost(self, reason):
        SSHClientTransport.connectionLost(self, reason)
        self._close_agent()
        if not self.ready.called:
            self.ready.errback(Failure(self._why_not_ready(reason)))
        self.lost.callback(None)

    def _why_not_ready(self, reason):
        if self._host_key_error is not None:
            return self._host_key_error
        if self.timed_out is not None:
            return NodeUnreachable(
                self.address, "no SSH session within %g s (stuck in %s)" % (
                    self.timed_out, self.stage))
        said = self._disconnect_reason
        if self.stage == "authentication":
            offered = (self._userauth.offered if self._userauth is not None
                       else 0)
            return AuthenticationFailed(self.address, (
                "the server refused every key offered for user %s "
                "(%d offered)%s") % (
                    self.username, offered,
                    ": " + said if said else ""))
        detail = said or reason.getErrorMessage()
        return NodeUnreachable(self.address, "connection closed during %s: %s"
                               % (self.stage, detail))


class _NodeConnection(object):
    """
    An authenticated SSH connection to one node, shared by many commands.
    """

    def __init__(self, transport, connection):
        self._transport = transport
        self._connection = connection
        self.host_key = transport.host_key
        self.host_public_key = transport.host_public_key

    def execute(self, command, stdin):
        """
        :param bytes command: The quoted command line.
        :param bytes stdin: Data for its standard input (then EOF).
        :return: ``Deferred`` firing with an :class:`_Outcome`, or failing
            with :class:`_ChannelNotOpened` or ``ConnectionLost``.
        """
        if self._connection.lost:
            return fail(_ChannelNotOpened("connection closed", True))
        return _run_once(self._connection.openChannel, command, stdin)

    def start(self, command, received):
        """
        :param bytes command: The quoted command line.
        :param received: Callable given each piece of standard output.
        :return: ``Deferred`` firing with a :class:`RunningCommand` once the
            command started, or failing with :class:`_ChannelNotOpened`.
        """
        if self._connection.lost:
            return fail(_ChannelNotOpened("connection closed", True))
        started = Deferred()
        self._connection.openChannel(
            _CommandChannel(command, received, started, Deferred()))
        return started

    def is_open(self):
        """
        :return: ``False`` once the connection is known to be gone.
        """
        return not (self._connection.lost or self._transport.lost.called)

    def when_lost(self):
        """
        :return: ``Deferred`` firing with ``None`` once the connection is
            gone.
        """
        d = Deferred()
        self._transport.lost.addBoth(lambda _: d.callback(None))
        return d

    def disconnect(self):
        """
        Close the connection (running commands are cut off).

        :return: ``Deferred`` firing once it is closed.
        """
        d = self.when_lost()
        if not self._transport.lost.called:
            self._transport.loseConnection()
        return d


def _explain_connect_failure(failure, address, port, timeout, timed_out):
    if failure.check(HostKeyError, NodeUnreachable):
        return failure
    # Cancelling a HostnameEndpoint's attempt fails it with
    # ConnectingCancelledError (carrying only the address), not
    # CancelledError.
    cancelled = failure.check(CancelledError, ConnectingCancelledError)
    if failure.check(TCPTimeoutError) or (cancelled and timed_out):
        raise NodeUnreachable(
            address, "no answer on port %d within %g s" % (port, timeout))
    if cancelled:
        raise NodeUnreachable(address, "connection attempt cancelled")
    if failure.check(ConnectionRefusedError):
        raise NodeUnreachable(
            address, "connection refused on port %d" % (port,))
    if failure.check(DNSLookupError):
        raise NodeUnreachable(address, "host name not found")
    if failure.check(ConnectError):
        raise NodeUnreachable(address, "cannot connect to port %d: %s" % (
            port, _os_error_words(failure.value)))
    raise NodeUnreachable(address, failure.getErrorMessage())


def _os_error_words(error):
    """
    :param ConnectError error: A failed connection attempt.
    :return: What went wrong in words (``no route to host``), never a bare
        errno: Twisted keeps the errno of a failed ``connect`` as an
        integer.
    """
    code = error.osError
    if isinstance(code, int) and not isinstance(code, bool):
        return os.strerror(code).lower()
    return str(code or error.getErrorMessage())


@attr.s
class _ConchConnector(object):
    """
    Opens authenticated SSH connections to nodes.

    :ivar endpoint_factory: ``(address, port) -> IStreamClientEndpoint``.
    """
    reactor = attr.ib()
    username = attr.ib()
    port = attr.ib()
    known_hosts = attr.ib()
    identities = attr.ib()
    agent_endpoint = attr.ib()
    timeout = attr.ib()
    endpoint_factory = attr.ib()

    def connect(self, address):
        """
        :param str address: The node.
        :return: ``Deferred`` firing with a :class:`_NodeConnection`.
        """
        action = SSH_CONNECT(address=address, port=self.port,
                             username=self.username)
        with action.context():
            transport = None

            def abort(ready):
                if transport.transport is None:
                    connecting.cancel()
                else:
                    transport.transport.abortConnection()

            ready = Deferred(abort)
            transport = _ClientTransport(
                address, self.port, self.username, self.known_hosts,
                self.identities, self.agent_endpoint, ready)
            connecting = connectProtocol(
                self.endpoint_factory(address, self.port), transport)

            def tcp_failed(reason):
                if not ready.called:
                    ready.errback(reason)
            connecting.addErrback(tcp_failed)

            def expire():
                transport.timed_out = self.timeout
                abort(ready)
            timer = self.reactor.callLater(self.timeout, expire)

            def stop_timer(result):
                if timer.active():
                    timer.cancel()
                return result

            d = DeferredContext(ready)
            d.addBoth(stop_timer)
            d.addErrback(lambda reason: _explain_connect_failure(
                reason, address, self.port, self.timeout,
                transport.timed_out is not None))

            def connected(connection):
                action.add_success_fields(host_key=transport.host_key)
                return _NodeConnection(transport, connection)
            d.addCallback(connected)
            return d.addActionFinish()


# ---------------------------------------------------------------------------
# The runner

class ICommandRunner(Interface):
    """
    Runs commands on cluster nodes.
    """

    def run(address, argv, stdin=b"", progress=None):
        """
        Run a command on a node, its standard input fed with ``stdin`` and
        then closed.

        :param str address: The node.
        :param argv: Non-empty sequence of ``str``; each element arrives as
            one literal argument.
        :param bytes stdin: Data for the command's standard input.
        :param progress: ``None``, or a callable given ``(sent, total)``
            for each progress report of a volume transfer the command runs
            (see the session protocol in :mod:`flocker.node._protocol`).
            Only runners that carry such reports call it; for the others
            (a single command's output has no room for them) it is never
            called.
        :return: ``Deferred`` firing with the command's standard output
            (``bytes``) when it exits with status 0, or failing with
            :class:`RemoteCommandFailed` (it ran and failed),
            :class:`NodeUnreachable` (including
            :class:`AuthenticationFailed`), :class:`HostKeyError`, or
            ``TypeError``/``ValueError`` for an unusable ``argv`` or
            ``stdin``.
        """

    def start(address, argv, received):
        """
        Start a long-lived command on a node, to talk with while it runs.

        :param str address: The node.
        :param argv: Non-empty sequence of ``str``, as for :meth:`run`.
        :param received: Callable given each piece (``bytes``) of the
            command's standard output as it arrives.
        :return: ``Deferred`` firing with a :class:`RunningCommand` once the
            command has started, or failing with :class:`NodeUnreachable`,
            :class:`HostKeyError`, or ``TypeError``/``ValueError`` for an
            unusable ``argv``.
        """

    def host_keys():
        """
        The host keys of the nodes this runner connected to, each verified
        against the operator's known hosts when it connected.

        :return: ``dict`` of address (as given to :meth:`run`) to the host's
            public :class:`Key`.
        """

    def close():
        """
        Close every connection the runner holds.  The runner can be used
        again afterwards (it reconnects).

        :return: ``Deferred`` firing with ``None`` once they are closed.
        """


@implementer(ICommandRunner)
class SSHCommandRunner(object):
    """
    :class:`ICommandRunner` over SSH with Twisted Conch: one connection per
    node, reused for every command; see the module documentation.
    """

    def __init__(self, reactor, known_hosts, identities=(), username="root",
                 port=22, agent_endpoint=None,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                 concurrency=DEFAULT_CONCURRENCY,
                 sessions_per_node=DEFAULT_SESSIONS_PER_NODE,
                 endpoint_factory=None, connector=None):
        """
        :param reactor: Provider of ``IReactorTCP`` and ``IReactorTime``.
        :param KnownHosts known_hosts: The host keys to trust.
        :param identities: Private :class:`Key` values to authenticate with
            (see :func:`load_identities`).
        :param str username: Remote user.
        :param int port: SSH port of every node.
        :param agent_endpoint: Endpoint of an SSH agent, or ``None`` (see
            :func:`agent_endpoint`).
        :param float connect_timeout: Seconds allowed to connect, exchange
            keys and authenticate.
        :param int concurrency: Commands in flight at once across all nodes.
        :param int sessions_per_node: Commands in flight at once per node.
        :param endpoint_factory: ``(address, port) -> IStreamClientEndpoint``
            used to reach a node; ``HostnameEndpoint`` by default.
        :param connector: For tests: an object whose ``connect(address)``
            returns a ``Deferred`` firing with a node connection (replaces
            everything SSH).
        """
        if concurrency < 1 or sessions_per_node < 1:
            raise ValueError("concurrency limits must be at least 1")
        if endpoint_factory is None:
            def endpoint_factory(address, port):
                return HostnameEndpoint(reactor, address, port,
                                        timeout=connect_timeout)
        if connector is None:
            connector = _ConchConnector(
                reactor=reactor, username=username, port=port,
                known_hosts=known_hosts, identities=pvector(identities),
                agent_endpoint=agent_endpoint, timeout=connect_timeout,
                endpoint_factory=endpoint_factory)
        self._connector = connector
        self._limit = DeferredSemaphore(concurrency)
        self._sessions_per_node = sessions_per_node
        self._node_limits = {}
        self._connections = {}
        self._connecting = {}
        self._attempts = {}
        self._host_keys = {}

    def run(self, address, argv, stdin=b"", progress=None):
        try:
            command = quote_argv(argv)
            _check_stdin(stdin)
        except (TypeError, ValueError):
            return fail()
        argv = list(argv)
        action = SSH_RUN(address=address, argv=argv, stdin_bytes=len(stdin))
        with action.context():
            node_limit = self._node_limits.get(address)
            if node_limit is None:
                node_limit = self._node_limits[address] = DeferredSemaphore(
                    self._sessions_per_node)
            # Per-node slot first, then a global one: a command never holds
            # a global slot while it waits for its node.
            d = DeferredContext(node_limit.run(
                self._limit.run, action.run, self._execute, address, command,
                stdin))

            def finished(outcome):
                action.add_success_fields(exit_code=outcome.exit_code,
                                          stdout_bytes=len(outcome.stdout))
                if outcome.exit_code != 0:
                    raise RemoteCommandFailed(address, argv, outcome.exit_code,
                                              outcome.stderr, outcome.signal)
                return outcome.stdout
            d.addCallback(finished)
            return d.addActionFinish()

    def start(self, address, argv, received):
        try:
            command = quote_argv(argv)
        except (TypeError, ValueError):
            return fail()
        action = SSH_START(address=address, argv=list(argv))
        with action.context():
            d = DeferredContext(self._start(address, command, received))
            return d.addActionFinish()

    def _start(self, address, command, received):
        def started(running):
            def lost(reason):
                reason.trap(ConnectionLost)
                raise NodeUnreachable(
                    address, "connection lost while the command ran")
            running.ended.addCallbacks(
                lambda outcome: (outcome.exit_code, outcome.signal,
                                 outcome.stderr), lost)
            return running
        d = self._on_connection(
            address, lambda connection: connection.start(command, received))
        return d.addCallback(started)

    def _execute(self, address, command, stdin):
        return self._on_connection(
            address, lambda connection: connection.execute(command, stdin))

    def _on_connection(self, address, use, may_retry=True):
        """
        :param use: Callable given the node's connection, returning a
            ``Deferred`` of what it started there.
        :return: That ``Deferred``, its channel and connection failures
            turned into :class:`NodeUnreachable`.
        """
        used = []

        def go(connection):
            used.append(connection)
            return use(connection)
        d = self._connection_for(address).addCallback(go)

        def failed(reason):
            if reason.check(_ChannelNotOpened):
                if reason.value.connection_lost and used:
                    self._forget(address, used[0])
                if reason.value.connection_lost and may_retry:
                    # The pooled connection died before the command started:
                    # nothing ran, so one new connection may be tried.
                    return self._on_connection(address, use, False)
                raise NodeUnreachable(address, "cannot start the command: %s"
                                      % (reason.value.reason,))
            if reason.check(ConnectionLost):
                raise NodeUnreachable(
                    address, "connection lost while the command ran")
            return reason
        return d.addErrback(failed)

    def _connection_for(self, address):
        existing = self._connections.get(address)
        if existing is not None:
            if existing.is_open():
                return succeed(existing)
            del self._connections[address]
        waiter = Deferred()
        waiters = self._connecting.get(address)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        waiters = self._connecting[address] = [waiter]

        def done(result):
            del self._connecting[address]
            self._attempts.pop(address, None)
            if not isinstance(result, Failure):
                self._connections[address] = result
                key = getattr(result, "host_public_key", None)
                if key is not None:
                    self._host_keys[address] = key
                result.when_lost().addCallback(
                    lambda _: self._forget(address, result))
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(result)
        attempt = self._connector.connect(address)
        self._attempts[address] = attempt
        # The attempt may already have ended (a refusal can be immediate).
        attempt.addBoth(done)
        return waiter

    def _forget(self, address, connection):
        if self._connections.get(address) is connection:
            del self._connections[address]

    def host_keys(self):
        # Kept after the connections close: a deploy reads them at the end.
        return dict(self._host_keys)

    def connected_addresses(self):
        """
        :return: ``set`` of the addresses with an open connection.
        """
        return set(self._connections)

    def close(self):
        # Attempts still connecting are abandoned; their commands fail.
        for attempt in list(self._attempts.values()):
            attempt.cancel()
        closing = []
        for address, connection in sorted(self._connections.items()):
            action = SSH_DISCONNECT(address=address)
            with action.context():
                closing.append(DeferredContext(
                    connection.disconnect()).addActionFinish())
        return DeferredList(closing, consumeErrors=True).addCallback(
            lambda _: None)


def ssh_command_runner(reactor, identity_files=(), known_hosts_path=None,
                       ssh_directory=None, environ=None, **options):
    """
    Build an :class:`SSHCommandRunner` from the operator's SSH setup, the way
    ssh(1) finds it: identities (explicit or ``~/.ssh`` defaults), the agent
    from ``SSH_AUTH_SOCK``, and ``~/.ssh/known_hosts`` (or the file given).

    This reads local files: call it before handing control to the reactor.

    :param reactor: See :class:`SSHCommandRunner`.
    :param identity_files: Explicit identity files (``--identity``).
    :param known_hosts_path: Known-hosts file (``--known-hosts``); default
        ``known_hosts`` in ``ssh_directory``.
    :param ssh_directory: ``~/.ssh`` if ``None``.
    :param environ: Environment for ``SSH_AUTH_SOCK``; ``os.environ`` if
        ``None``.
    :param options: Further keyword arguments of :class:`SSHCommandRunner`
        (``username``, ``port``, ``connect_timeout``, ``concurrency``, …).
    :return: The runner.
    :raises SSHConfigurationError: See :func:`load_identities` and
        :meth:`KnownHosts.from_path`.
    """
    if ssh_directory is None:
        ssh_directory = os.path.expanduser("~/.ssh")
    if known_hosts_path is None:
        known_hosts_path = os.path.join(ssh_directory, "known_hosts")
    return SSHCommandRunner(
        reactor,
        known_hosts=KnownHosts.from_path(known_hosts_path),
        identities=load_identities(identity_files, ssh_directory),
        agent_endpoint=agent_endpoint(reactor, environ),
        **options)


# ---------------------------------------------------------------------------
# The in-memory runner

class CommandExit(Exception):
    """
    Raised by a :class:`MemoryCommandRunner` handler to make the command
    "exit" with a non-zero status.

    :ivar int exit_code: The status.
    :ivar bytes stderr: Its error output.
    """

    def __init__(self, exit_code, stderr=b""):
        Exception.__init__(self, exit_code, stderr)
        self.exit_code = exit_code
        self.stderr = stderr


def _best_handler(handlers, address, argv):
    """
    :param handlers: ``dict`` of ``(address or None, prefix tuple)`` to a
        handler.
    :return: The handler with the longest prefix of ``argv`` (one for
        ``address`` before one for any address), or ``None``.
    """
    best = None
    for (where, prefix), handler in handlers.items():
        if where not in (None, address):
            continue
        if tuple(argv[:len(prefix)]) != prefix:
            continue
        rank = (len(prefix), where is not None)
        if best is None or rank > best[0]:
            best = (rank, handler)
    return None if best is None else best[1]


@implementer(ICommandRunner)
class MemoryCommandRunner(object):
    """
    :class:`ICommandRunner` in memory: commands are answered by handlers.

    A handler is registered for an address (or ``None`` for every address)
    and an argument-vector prefix; the longest matching prefix answers.  It is
    called as ``handler(argv, stdin)`` and returns the stdout ``bytes`` (or a
    ``Deferred`` of them), or raises :class:`CommandExit`.  A command with no
    handler exits with status 127 like a missing program.

    :ivar calls: ``list`` of ``(address, argv list, stdin)`` in call order.
    :ivar started: ``list`` of ``(address, argv list)`` given to
        :meth:`start`, in order.
    :ivar unreachable: ``dict`` of address to the reason it is unreachable.
    :ivar known_host_keys: ``dict`` of address to the host :class:`Key`
        :meth:`host_keys` reports for it once a command ran there.
    """

    def __init__(self):
        self._handlers = {}
        self._stream_handlers = {}
        self.calls = []
        self.started = []
        self.unreachable = {}
        self.known_host_keys = {}
        self.closed = 0

    def host_keys(self):
        reached = ({address for address, _, _ in self.calls}
                   | {address for address, _ in self.started})
        return {address: key for address, key in self.known_host_keys.items()
                if address in reached}

    def add_handler(self, address, prefix, handler):
        """
        :param address: The node, or ``None`` for any node.
        :param prefix: Sequence of ``str`` the argument vector starts with.
        :param handler: See the class documentation.
        """
        self._handlers[(address, tuple(prefix))] = handler


    def run(self, address, argv, stdin=b"", progress=None):
        try:
            quote_argv(argv)
            _check_stdin(stdin)
        except (TypeError, ValueError):
            return fail()
        argv = list(argv)
        self.calls.append((address, argv, stdin))
        return self._dispatch(self._handlers, address, argv, stdin)

    def _dispatch(self, handlers, address, argv, argument):
        """
        Call the handler in ``handlers`` for ``argv`` on ``address`` with
        ``argument``, as a command there would run.
        """
        if address in self.unreachable:
            return fail(NodeUnreachable(address, self.unreachable[address]))
        handler = _best_handler(handlers, address, argv)
        if handler is None:
            return fail(RemoteCommandFailed(
                address, argv, 127,
                b"sh: 1: " + argv[0].encode("utf-8") + b": not found\n"))

        def exited(reason):
            reason.trap(CommandExit)
            raise RemoteCommandFailed(address, argv, reason.value.exit_code,
                                      reason.value.stderr)
        return maybeDeferred(handler, argv, argument).addErrback(exited)

    def add_stream_handler(self, address, prefix, handler):
        """
        Answer :meth:`start` for commands starting with ``prefix``.

        :param address: The node, or ``None`` for any node.
        :param prefix: Sequence of ``str`` the argument vector starts with.
        :param handler: ``handler(argv, received)`` returning an object
            with the interface of :class:`RunningCommand` (``write``,
            ``close_input``, ``ended``), or raising :class:`CommandExit`
            for a command that fails to start.
        """
        self._stream_handlers[(address, tuple(prefix))] = handler

    def start(self, address, argv, received):
        try:
            quote_argv(argv)
        except (TypeError, ValueError):
            return fail()
        argv = list(argv)
        self.started.append((address, argv))
        return self._dispatch(self._stream_handlers, address, argv, received)

    def close(self):
        self.closed += 1
        return succeed(None)
