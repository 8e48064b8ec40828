"""
``flocker-node-bridge``: connect standard input and output to the node
agent's Unix socket.

The deploy client reaches a node's agent through a
``direct-streamlocal@openssh.com`` channel of its SSH connection.  Where the
node's sshd refuses those channels (``AllowStreamLocalForwarding no``,
``DisableForwarding``, a ``restrict`` key), it runs this command instead and
speaks the same protocol through its standard input and output.

It imports nothing but the standard library and the ``flocker`` package
itself (its models), and is only run where a node refuses streamlocal
channels.
"""

import os
import select
import socket
import sys

__all__ = ["DEFAULT_AGENT_SOCKET", "bridge", "main"]

#: Where the node agent listens unless told otherwise (the one definition;
#: :mod:`flocker.node._amp` re-exports it).
DEFAULT_AGENT_SOCKET = "/run/flocker/agent.sock"

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


def main(argv=None, stdin=0, stdout=1, stderr=None):
    """
    Entry point of ``flocker-node-bridge [--socket PATH]``.

    :return: The exit status: 0 once the agent closed the connection, 1
        when the agent cannot be reached (one line on standard error), 2
        for a bad command line.
    """
    argv = sys.argv[1:] if argv is None else argv
    stderr = sys.stderr if stderr is None else stderr
    path = DEFAULT_AGENT_SOCKET
    if argv[:1] == ["--socket"] and len(argv) == 2:
        path = argv[1]
    elif argv:
        stderr.write("usage: flocker-node-bridge [--socket PATH]\n")
        return 2
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        agent.connect(path)
    except OSError as e:
        stderr.write("flocker-node-bridge: the Flocker agent is not reachable "
                     "at %s: %s (see systemctl status flocker-node)\n" % (
                         path, e.strerror or e))
        return 1
    try:
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
