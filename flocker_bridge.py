"""
``flocker-node-bridge``: connect standard input and output to the node
agent's Unix socket.

The deploy client reaches a node's agent through a
``direct-streamlocal@openssh.com`` channel of its SSH connection.  Where the
node's sshd refuses those channels (``AllowStreamLocalForwarding no``,
``DisableForwarding``, a ``restrict`` key), it runs this command instead and
speaks the same protocol through its standard input and output.

It is a top-level module of the distribution, outside the ``flocker``
package, and imports nothing but the standard library: importing the
package would load its models and Twisted's Deferreds first (0.1 s on a
quiet lab node, 0.3-0.6 s on a busy one), and another node's every push
starts it (see below), a move's final increment included.  The package's
own users import it as :mod:`flocker._bridge`.

``flocker-node-bridge --peer --caller NODEID`` is the forced command of
another node's key (see :mod:`flocker.volume._nodekey`): it hands the
agent's *peer* socket (:data:`DEFAULT_PEER_SOCKET`, beside the agent's,
serving only what a peer may do: :mod:`flocker.node._peer`) the calling
node's identity, as the key's line names it, the command the caller asked
for (``SSH_ORIGINAL_COMMAND``) and its own standard input and output (as
descriptors, so the volume stream goes from sshd to the agent with no copy
in between), then waits for the agent's verdict and exits with it.
"""

import json
import os
import re
import select
import socket
import sys

__all__ = ["DEFAULT_AGENT_SOCKET", "DEFAULT_PEER_SOCKET", "MAXIMUM_VERDICT",
           "bridge", "peer_bridge", "main", "console_main"]

#: Where the node agent listens unless told otherwise (the one definition;
#: :mod:`flocker._bridge` and :mod:`flocker.node._amp` re-export it).
DEFAULT_AGENT_SOCKET = "/run/flocker/agent.sock"

#: Where the node agent serves other nodes (pushes only) unless told
#: otherwise: beside its own socket, in the same root-only directory.
DEFAULT_PEER_SOCKET = "/run/flocker/peer.sock"

#: The longest verdict line the agent sends a peer bridge.
MAXIMUM_VERDICT = 64 * 1024

# A node identity (flocker._identifiers.NODE_IDENTITY, kept standard-library
# only here; the agent checks it again).
_NODE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")

_CHUNK = 256 * 1024


def _write_all(fd, data):
    while data:
        written = os.write(fd, data)
        data = data[written:]


def bridge(agent, stdin, stdout):
    """
    Copy ``stdin`` to ``agent`` and ``agent`` to ``stdout`` until the agent
    closes its side (end of input is passed on as a half-close).

    :param socket.socket agent: Connected to the agent.
    :param int stdin: Descriptor to read the client's bytes from.
    :param int stdout: Descriptor to write the agent's bytes to.
    """
    poller = select.poll()
    poller.register(stdin, select.POLLIN)
    poller.register(agent.fileno(), select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == stdin:
                data = os.read(stdin, _CHUNK)
                if not data:
                    poller.unregister(stdin)
                    agent.shutdown(socket.SHUT_WR)
                else:
                    agent.sendall(data)
            else:
                data = agent.recv(_CHUNK)
                if not data:
                    return
                _write_all(stdout, data)


def peer_bridge(agent, caller, command, stdin, stdout):
    """
    Hand a peer's request to the agent's peer socket and wait for its
    verdict.

    :param socket.socket agent: Connected to the peer socket.
    :param str caller: The calling node's identity.
    :param command: ``SSH_ORIGINAL_COMMAND``, or ``None``.
    :param int stdin: The peer's stream (passed to the agent).
    :param int stdout: Where the agent writes the peer's answers (passed).
    :return: ``(exit_status, error)``: the agent's verdict, ``error`` a line
        for standard error or ``None``.
    """
    header = json.dumps({"caller": caller, "command": command}).encode(
        "utf-8") + b"\n"
    socket.send_fds(agent, [header], [stdin, stdout])
    agent.shutdown(socket.SHUT_WR)
    verdict = b""
    while len(verdict) <= MAXIMUM_VERDICT:
        data = agent.recv(_CHUNK)
        if not data:
            break
        verdict += data
    try:
        answer = json.loads(verdict.decode("utf-8"))
        status = answer["exit"]
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError(status)
    except (ValueError, KeyError, TypeError):
        # The agent closes without a verdict only when it stops (killed,
        # crashed, restarted) in the middle of the transfer.
        return 1, ("the Flocker agent stopped before the transfer ended "
                   "(see systemctl status flocker-node)")
    error = answer.get("error")
    return status, error if isinstance(error, str) and error else None


def _connect(path, stderr):
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        agent.connect(path)
    except OSError as e:
        agent.close()
        stderr.write("flocker-node-bridge: the Flocker agent is not reachable "
                     "at %s: %s (see systemctl status flocker-node)\n" % (
                         path, e.strerror or e))
        return None
    return agent


def _options(argv):
    """
    :return: ``(path, caller)`` (``caller`` ``None`` unless ``--peer``), or
        ``None`` for a bad command line.
    """
    path, caller, peer = None, None, False
    while argv:
        if argv[0] == "--socket" and len(argv) >= 2:
            path, argv = argv[1], argv[2:]
        elif argv[0] == "--peer":
            peer, argv = True, argv[1:]
        elif argv[0] == "--caller" and len(argv) >= 2:
            caller, argv = argv[1], argv[2:]
        else:
            return None
    if peer != (caller is not None) or (
            caller is not None and not _NODE_ID.match(caller)):
        return None
    if path is None:
        path = DEFAULT_PEER_SOCKET if peer else DEFAULT_AGENT_SOCKET
    return path, caller


def main(argv=None, stdin=0, stdout=1, stderr=None, environ=None):
    """
    Entry point of ``flocker-node-bridge [--socket PATH]`` and
    ``flocker-node-bridge --peer --caller NODEID [--socket PATH]``.

    :return: The exit status: 0 once the agent closed the connection (or,
        for a peer, the agent's verdict), 1 when the agent cannot be
        reached (one line on standard error), 2 for a bad command line.
    """
    argv = sys.argv[1:] if argv is None else argv
    stderr = sys.stderr if stderr is None else stderr
    environ = os.environ if environ is None else environ
    options = _options(list(argv))
    if options is None:
        stderr.write("usage: flocker-node-bridge [--socket PATH] | "
                     "--peer --caller NODEID [--socket PATH]\n")
        return 2
    path, caller = options
    agent = _connect(path, stderr)
    if agent is None:
        return 1
    try:
        if caller is not None:
            status, error = peer_bridge(
                agent, caller, environ.get("SSH_ORIGINAL_COMMAND"), stdin,
                stdout)
            if error is not None:
                stderr.write("flocker-node-bridge: %s\n" % (error,))
            return status
        bridge(agent, stdin, stdout)
    except OSError as e:
        stderr.write("flocker-node-bridge: %s\n" % (e.strerror or e,))
        return 1
    finally:
        agent.close()
    return 0


def console_main():
    """
    The console script.
    """
    sys.exit(main())


if __name__ == "__main__":
    console_main()
