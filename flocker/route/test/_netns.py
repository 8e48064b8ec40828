"""
Small network labs for the routing tests and benchmark: network namespaces
that the caller creates, wires to one bridge and removes again.

This is test and benchmark tooling, so it blocks (``subprocess.run`` with
argument vectors) and must not be called from the reactor thread.  Every
namespace it creates is named ``flk-rt-<pid>-<n>-<role>``, every address is
in 10.96.0.0/24 inside those namespaces, and nothing is configured in the
namespace the tests run in.
"""

import itertools
import os
import select
import shutil
import subprocess
import sys
import time

__all__ = [
    "can_make_namespaces", "run_command", "NetworkLab", "NETWORK_PREFIX",
]

#: The /24 every lab uses; it only ever exists inside a lab's namespaces.
NETWORK_PREFIX = "10.96.0."

_counter = itertools.count(1)

_TCP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "_tcp.py")


def can_make_namespaces():
    """
    :return: ``(True, "")`` when this process can build labs, else ``(False,
        reason)``.
    """
    if os.geteuid() != 0:
        return False, "needs root to create network namespaces"
    for tool in ("ip", "iptables", "iptables-save", "iptables-restore",
                 "nsenter", "sysctl", "ss", "conntrack"):
        if shutil.which(tool) is None:
            return False, "needs %s" % (tool,)
    probe = "flk-rt-%d-probe" % (os.getpid(),)
    made = subprocess.run(["ip", "netns", "add", probe],
                          capture_output=True, text=True)
    if made.returncode != 0:
        return False, "cannot create a network namespace: " + made.stderr
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True, ""


def run_command(argv, check=True, timeout=30):
    """
    Run a command in the current namespace and wait for it.

    :raises RuntimeError: If ``check`` and it exits with a non-zero status.
    :return: ``subprocess.CompletedProcess`` with text output.
    """
    result = subprocess.run(argv, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (
            " ".join(argv), result.returncode, result.stderr.strip()))
    return result


class NetworkLab(object):
    """
    Namespaces hanging off one bridge (which lives in a namespace of its
    own, so the machine's firewall never sees the lab's frames).

    Use as a context manager, or call :meth:`close` (idempotent).
    """

    def __init__(self):
        self.tag = "flk-rt-%d-%d" % (os.getpid(), next(_counter))
        self.namespaces = []
        self.processes = []
        self.bridge = self.namespace("br")
        run_command(["ip", "-n", self.bridge, "link", "add", "br0",
                     "type", "bridge"])
        run_command(["ip", "-n", self.bridge, "link", "set", "br0", "up"])
        self._veths = itertools.count(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def namespace(self, role):
        """
        Create a namespace with only ``lo`` (up).

        :param str role: Short name, part of the namespace's name.
        :return: The namespace's name.
        """
        name = "%s-%s" % (self.tag, role)
        run_command(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run_command(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def host(self, role, last_octet):
        """
        Create a namespace with ``eth0`` on the bridge.

        :param str role: Short name (``client``, ``node1``...).
        :param int last_octet: Its address is ``10.96.0.<last_octet>/24``.
        :return: The namespace's name.
        """
        name = self.namespace(role)
        outer = "v%d" % (next(self._veths),)
        run_command(["ip", "-n", self.bridge, "link", "add", outer,
                     "type", "veth", "peer", "name", "eth0", "netns", name])
        run_command(["ip", "-n", self.bridge, "link", "set", outer,
                     "master", "br0", "up"])
        run_command(["ip", "-n", name, "addr", "add",
                     "%s%d/24" % (NETWORK_PREFIX, last_octet), "dev", "eth0"])
        run_command(["ip", "-n", name, "link", "set", "eth0", "up"])
        return name

    def exec_argv(self, namespace, argv):
        """
        :return: ``argv`` run inside ``namespace``.
        """
        return ["ip", "netns", "exec", namespace] + list(argv)

    def run(self, namespace, argv, check=True, timeout=30):
        """
        Run a command in a namespace and wait for it.

        :return: ``subprocess.CompletedProcess`` with text output.
        """
        return run_command(self.exec_argv(namespace, argv), check, timeout)

    def spawn(self, namespace, argv, wait_for_ready=False):
        """
        Start a long-running command in a namespace; it is killed by
        :meth:`close`.  ``ip netns exec`` execs the command, so the returned
        process's pid is the command's own (usable with ``nsenter -t``).

        :param bool wait_for_ready: Wait (at most 10 s) for the command to
            print a first line (``_tcp`` servers print ``ready``).
        :return: ``subprocess.Popen``.
        """
        process = subprocess.Popen(
            self.exec_argv(namespace, argv), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.processes.append(process)
        if wait_for_ready:
            deadline = time.monotonic() + 10
            line = ""
            while time.monotonic() < deadline and not line:
                ready, _, _ = select.select([process.stdout], [], [], 0.2)
                if ready:
                    line = process.stdout.readline()
                    if not line:
                        break
            if line.strip() != "ready":
                raise RuntimeError("%s did not start: %s" % (
                    argv, process.stderr.read() if process.poll() is not None
                    else "no ready line"))
        return process

    def tcp_argv(self, *arguments):
        """
        :return: The argument vector of the ``_tcp`` helper in this Python.
        """
        # Run by path: "-m flocker.route.test._tcp" would import Twisted and
        # eliot through the package __init__ files, 0.7 s per connection.
        return [sys.executable, _TCP_SCRIPT] + [
            str(argument) for argument in arguments]

    def serve(self, namespace, port, name):
        """
        Start a ``_tcp serve`` answering ``name`` on ``port`` in
        ``namespace`` and wait until it listens.
        """
        return self.spawn(namespace, self.tcp_argv("serve", port, name),
                          wait_for_ready=True)

    def ask(self, namespace, address, port, timeout=3):
        """
        Connect from ``namespace`` to ``address:port``.

        :return: The server's name, or ``None`` when the connection failed.
        """
        result = self.run(namespace, self.tcp_argv("ask", address, port,
                                                   timeout),
                          check=False, timeout=timeout + 10)
        if result.returncode != 0:
            return None
        return result.stdout.strip()

    def close(self):
        """
        Kill the spawned processes and delete the namespaces (their veths
        go with them).
        """
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        self.processes = []
        for name in reversed(self.namespaces):
            run_command(["ip", "netns", "del", name], check=False)
        self.namespaces = []
