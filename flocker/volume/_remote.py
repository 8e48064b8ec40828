"""
Reaching another node: the ``ssh`` command line that runs
``flocker-volume`` there, and how a remote command's failure reads.

A push starts the receiving end on the target through its service's
*remote*: either an object with ``argv(address, words)`` (the ``ssh``
command line, run here as a child process: :class:`SSHRemote`), or one with
``start(address, words)`` returning a ``Deferred`` that fires with the
same pair :func:`start_process` returns (the node agent's Conch
connections: :mod:`flocker.node._peer_remote`).  Either way the push sees a
:class:`ProcessCommand`-like object and a descriptor to write the stream
into.
"""

import hashlib
import json
import re

from eliot import Logger
from twisted.internet.defer import maybeDeferred
from twisted.internet.error import ProcessExitedAlready

from .._process import spawn

from .._identifiers import ADDRESS_RULE, is_node_address
from ._errors import (
    AuthenticationRefused, HostKeyRejected, RemoteError, TargetUnreachable, UnsafeName,
    error_from_kind,
)
from ._process import close_quietly, make_pipe

__all__ = ["SSHRemote", "check_address", "forward_log",
           "remote_error", "ProcessCommand", "start_process",
           "start_remote", "check_remote_words", "is_remote_word",
           "identity_of",
           "file_digest"]

# Words of a command for another node: nothing a shell would interpret.
_REMOTE_WORD = re.compile(r"\A[A-Za-z0-9_./:@=,-]+\Z")


def is_remote_word(word):
    """
    :param str word: A word of a command for another node.
    :return: Whether it holds nothing a shell would interpret (what a
        push sends, and all the node key's forced command accepts).
    """
    return bool(_REMOTE_WORD.match(word))


def check_address(address):
    """
    :param str address: A node address.
    :raises UnsafeName: Unless it is one (the rule the model checks too:
        :func:`flocker._identifiers.is_node_address`).
    """
    if not is_node_address(address):
        raise UnsafeName("%r is not a node address: %s" % (
            address, ADDRESS_RULE))


def check_remote_words(words):
    """
    :param words: Words of a command for another node.
    :raises UnsafeName: If one holds anything a shell would interpret.
    """
    for word in words:
        if not is_remote_word(word):
            raise UnsafeName("%r cannot be passed to a remote node" % (
                word,))


def identity_of(remote):
    """
    Which key ``remote`` logs in to other nodes with now, to tell whether
    it changed since a command started (a node key rotation switches it).

    :param remote: A push's *remote* (see the module docstring).
    :return: A digest of the key (``bytes``), or ``None`` where the remote
        cannot tell (it uses ssh's defaults, or switches keys itself).
    """
    identity = getattr(remote, "identity", None)
    return None if identity is None else identity()


def file_digest(path):
    """
    :return: The SHA-256 digest of the file at ``path``, or ``None`` if it
        cannot be read.
    """
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).digest()
    except OSError:
        return None


class ProcessCommand(object):
    """
    The receiving end of a push as a local child process (``ssh`` or, in
    tests, ``flocker-volume`` itself).

    :ivar ended: ``Deferred`` firing with its ``ProcessResult`` (never
        failing).
    """

    def __init__(self, transport, collector):
        self._transport = transport
        self._collector = collector
        self.ended = collector.ended

    def next_line(self):
        """
        :return: ``Deferred`` firing with its next line of output, ``None``
            at the end (see ``flocker._process.spawn``).
        """
        return self._collector.next_line()

    def kill(self):
        """
        End it at once.
        """
        try:
            self._transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass


def start_process(reactor, argv, env):
    """
    Start a remote command whose standard input is a pipe we write.

    :return: ``(ProcessCommand, stdin_write)``.
    """
    stdin_read, stdin_write = make_pipe()
    try:
        transport, collector = spawn(reactor, argv, env, stdin=stdin_read)
    except BaseException:
        close_quietly(stdin_read, stdin_write)
        raise
    close_quietly(stdin_read)
    return ProcessCommand(transport, collector), stdin_write


def start_remote(reactor, remote, address, words, env):
    """
    Start ``flocker-volume WORDS`` on node ``address`` through ``remote``
    (see the module docstring).

    :return: ``Deferred`` firing with ``(command, stdin_write)``.
    """
    start = getattr(remote, "start", None)
    if start is not None:
        return maybeDeferred(start, address, words)
    return maybeDeferred(start_process, reactor, remote.argv(address, words),
                         env)


class SSHRemote(object):
    """
    Runs ``flocker-volume`` on another node with the ``ssh`` command.

    The remote side's shell joins the words, so every word is checked to
    contain nothing a shell would interpret.  Host keys are always checked
    (``StrictHostKeyChecking=yes``) and nothing ever prompts
    (``BatchMode=yes``).
    """

    def __init__(self, identity=None, known_hosts=None, config=None,
                 user="root", port=None, command=("flocker-volume",),
                 connect_timeout=10, only_known_hosts=False):
        """
        :param identity: Private key file, or ``None`` for ssh's default.
        :param known_hosts: Known hosts file, or ``None`` for ssh's default.
        :param bool only_known_hosts: Trust only ``known_hosts``, not the
            system-wide file too (for the node key's known_hosts, which names
            exactly the host keys the operator's client verified).
        :param config: ssh configuration file, or ``None``.
        :param str user: Remote user.
        :param port: SSH port or ``None``.
        :param command: The ``flocker-volume`` command on the nodes.
        :param int connect_timeout: Seconds before an unreachable node is
            reported.
        """
        self._identity = identity
        self._options = ["-o", "BatchMode=yes",
                         "-o", "StrictHostKeyChecking=yes",
                         "-o", "ConnectTimeout=%d" % (connect_timeout,),
                         # A node that stops answering mid-transfer (or
                         # while a shared connection idles) is given up
                         # after about 15 s, not TCP's many minutes.
                         "-o", "ServerAliveInterval=5",
                         "-o", "ServerAliveCountMax=3",
                         "-o", "LogLevel=ERROR", "-T", "-x", "-e", "none"]
        if config is not None:
            self._options[:0] = ["-F", config]
        if identity is not None:
            self._options += ["-i", identity, "-o", "IdentitiesOnly=yes"]
        if known_hosts is not None:
            self._options += ["-o", "UserKnownHostsFile=" + known_hosts]
            if only_known_hosts:
                self._options += ["-o", "GlobalKnownHostsFile=/dev/null"]
        self.known_hosts = known_hosts
        if port is not None:
            self._options += ["-p", str(int(port))]
        self._user = user
        self._command = list(command)

    def identity(self):
        """
        See :func:`identity_of`: the digest of the private key file given,
        ``None`` for ssh's default keys.
        """
        return None if self._identity is None else file_digest(
            self._identity)

    def argv(self, address, arguments, command=None):
        """
        :param str address: Node address.
        :param arguments: Arguments of the remote command.
        :param command: The remote command's words (``("zfs",)``), or
            ``None`` for ``flocker-volume``.
        :return: The argument vector to run locally.
        :raises UnsafeName: For an unsafe address or word.
        """
        check_address(address)
        words = (self._command if command is None else list(command)) + list(
            arguments)
        check_remote_words(words)
        return (["ssh"] + self._options + ["%s@%s" % (self._user, address)]
                + words)


def forward_log(ended):
    """
    Pass the ``{"eliot": MESSAGE}`` lines of a remote ``flocker-volume``'s
    standard output on to this process's log: they continue a task of this
    node (the push's), so the push, both ends of it, is one tree.

    :param ProcessResult ended: How the remote command ended.
    """
    for line in ended.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("eliot"),
                                                    dict):
            Logger().write(message["eliot"])


def _last_line(data):
    lines = [line.strip() for line in data.decode("utf-8", "replace")
             .splitlines() if line.strip()]
    return lines[-1] if lines else ""


def remote_error(target, result, default_kind=RemoteError,
                  known_hosts=None):
    """
    Turn a failed remote command into the right error: the typed error it
    printed, ``HostKeyRejected`` if ssh did not trust the target's host key
    (``known_hosts`` names the file checked, if known),
    ``AuthenticationRefused`` if the target refused this node's key,
    ``TargetUnreachable`` if ssh could not connect otherwise, or a
    ``RemoteError`` with its last line of standard error.
    """
    for line in reversed(result.stdout.splitlines()):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "error" in message:
            return error_from_kind(message["error"], "node %s: %s" % (
                target, message.get("message", "")))
    detail = _last_line(result.stderr) or "exit code %s" % (
        result.exit_code,)
    if result.exit_code == 255 and b"Host key verification failed" in (
            result.stderr):
        return HostKeyRejected(
            "node %s: its SSH host key is not the one %s lists for it; "
            "refusing to send to it (run flocker-deploy to refresh the "
            "nodes' known hosts, after checking the node)" % (
                target, known_hosts or "the known hosts file"))
    if result.exit_code == 255 and b"Permission denied (publickey" in (
            result.stderr):
        return AuthenticationRefused("cannot reach node %s: %s" % (
            target, detail))
    if result.exit_code == 255:
        return TargetUnreachable("cannot reach node %s: %s" % (target, detail))
    return default_kind("node %s: %s" % (target, detail))

