"""
Reaching another node: the ``ssh`` command line that runs
``flocker-volume`` there, and how a remote command's failure reads.
"""

import json
import re

from eliot import Logger

from .._identifiers import ADDRESS_RULE, is_node_address
from ._errors import (
    HostKeyRejected, RemoteError, TargetUnreachable, UnsafeName,
    error_from_kind,
)

__all__ = ["SSHRemote", "CONTROL_PERSIST", "check_address", "forward_log",
           "remote_error"]

#: Seconds an idle shared connection to another node stays open (see
#: :class:`SSHRemote`): longer than the gap between a move's pre-copy and
#: its final increment.
CONTROL_PERSIST = 60

# Words sent to the remote shell by ssh: nothing a shell would interpret.
_REMOTE_WORD = re.compile(r"\A[A-Za-z0-9_./:@=,-]+\Z")


def check_address(address):
    """
    :param str address: A node address.
    :raises UnsafeName: Unless it is one (the rule the model checks too:
        :func:`flocker._identifiers.is_node_address`).
    """
    if not is_node_address(address):
        raise UnsafeName("%r is not a node address: %s" % (
            address, ADDRESS_RULE))


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
                 connect_timeout=10, only_known_hosts=False,
                 control_path=None):
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
        :param control_path: ``None``, or an ssh ``ControlPath`` (with
            ``%C``): the connection to a node is then kept open
            :data:`CONTROL_PERSIST` seconds after its last command and
            shared by the commands that follow, so the final increment of a
            move does not pay for a new connection while its application is
            down.
        """
        self._options = ["-o", "BatchMode=yes",
                         "-o", "StrictHostKeyChecking=yes",
                         "-o", "ConnectTimeout=%d" % (connect_timeout,),
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
        if control_path is not None:
            self._options += ["-o", "ControlMaster=auto",
                              "-o", "ControlPath=" + control_path,
                              "-o", "ControlPersist=%d" % (CONTROL_PERSIST,)]
        if port is not None:
            self._options += ["-p", str(int(port))]
        self._user = user
        self._command = list(command)

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
        for word in words:
            if not _REMOTE_WORD.match(word):
                raise UnsafeName("%r cannot be passed to a remote node" % (
                    word,))
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
    if result.exit_code == 255:
        return TargetUnreachable("cannot reach node %s: %s" % (target, detail))
    return default_kind("node %s: %s" % (target, detail))

