"""
Reaching another node, and how a remote command's failure reads.

A push starts the receiving end on the target through its service's
*remote*: an object with ``start(address, words)`` returning a
``Deferred`` that fires with ``(command, stdin_write)``: ``command`` has
``next_line()`` (a ``Deferred`` firing with its next line of output,
``None`` at the end), ``kill()`` and ``ended`` (a ``Deferred`` firing with
a :class:`~flocker._process.ProcessResult`, never failing), and
``stdin_write`` is a descriptor to write the request and the stream into.
The node agent's remote is :class:`flocker.node._peer_remote.AgentRemote`
(Conch connections to the other nodes' agents); it fails the start itself
with ``TargetUnreachable``, ``AuthenticationRefused`` or
``HostKeyRejected`` when it cannot log in.
"""

import json
import re

from eliot import Logger
from twisted.internet.defer import maybeDeferred

from .._identifiers import ADDRESS_RULE, is_node_address
from ._errors import (
    RemoteError, TargetUnreachable, UnsafeName, error_from_kind,
)

__all__ = ["check_address", "forward_log", "remote_error", "start_remote",
           "check_remote_words", "is_remote_word"]

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


def start_remote(remote, address, words):
    """
    Start ``flocker-volume WORDS`` on node ``address`` through ``remote``
    (see the module docstring).

    :return: ``Deferred`` firing with ``(command, stdin_write)``.
    """
    return maybeDeferred(remote.start, address, words)


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


def remote_error(target, result, default_kind=RemoteError):
    """
    Turn a failed remote command into the right error: the typed error it
    printed, ``TargetUnreachable`` if the connection was lost (exit code
    255, as :class:`flocker.node._peer_remote.AgentRemote` reports a
    session that ended without an exit status), or ``default_kind`` with
    its last line of standard error.
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
    if result.exit_code == 255:
        return TargetUnreachable("cannot reach node %s: %s" % (target, detail))
    return default_kind("node %s: %s" % (target, detail))
