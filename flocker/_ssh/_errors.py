"""
The errors of running commands on nodes over SSH, each carrying the node it
is about and saying what went wrong in one line.
"""

import shlex

__all__ = ["RemoteCommandFailed", "NodeUnreachable", "AuthenticationFailed",
           "HostKeyError", "SSHConfigurationError"]


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
