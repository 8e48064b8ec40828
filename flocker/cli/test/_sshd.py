"""
A private OpenSSH server for the deploy client's tests.

It listens on a few loopback addresses (``127.0.0.1``-``127.0.0.3``, so tests
can address several "nodes"), on one free port, with a fresh ed25519 host key,
and accepts two fresh client keys (ed25519 and RSA) for the current user.
Everything lives in one temporary directory; :meth:`SSHServer.stop` ends the
daemon.  Needs root (sshd must be able to switch to the user) and the
OpenSSH server and ssh-keygen programs.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import attr
from twisted.conch.ssh.keys import Key

from flocker.testtools import require

__all__ = ["SSHServer", "sshd_available", "start_sshd", "free_port",
           "running_sshd", "class_sshd",
           "SSHD", "SSH_KEYGEN", "SSH_AGENT"]

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
SSH_AGENT = "/usr/bin/ssh-agent"

# sshd refuses to start without its privilege separation directory, which
# this machine does not have (no systemd to create it).
_PRIVSEP = "/run/sshd"

ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def sshd_available():
    """
    :return: ``True`` if a private sshd can be run here.
    """
    return (os.geteuid() == 0 and os.access(SSHD, os.X_OK)
            and os.access(SSH_KEYGEN, os.X_OK))


def free_port():
    """
    :return: A TCP port on 127.0.0.1 that nothing listens on (just now).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path, kind="ed25519"):
    """
    Make a key pair without passphrase at ``path`` and ``path.pub``.

    :return: The private :class:`Key`.
    """
    arguments = [SSH_KEYGEN, "-q", "-N", "", "-t", kind, "-f", path,
                 "-C", "flocker-test"]
    if kind == "rsa":
        arguments[-2:-2] = ["-b", "2048"]
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL)
    return Key.fromFile(path)


def _other_sshd_running():
    # Another test session's (or the lab's) sshd needs the privsep
    # directory too: it is removed only when no other sshd listener is left.
    # Session processes of a stopped listener are not counted: they are
    # exiting (or zombies nobody reaps).
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % (entry,), "rb") as f:
                title = f.read()
        except OSError:
            continue
        if title.startswith(b"sshd") and b"[listener]" in title:
            return True
    return False


@attr.s
class SSHServer(object):
    """
    A running private sshd.

    :ivar str directory: Its state directory.
    :ivar int port: The port it listens on, on every address.
    :ivar addresses: The loopback addresses it listens on.
    :ivar Key host_key: Its (private) host key.
    :ivar str host_key_path: The host key file (``.pub`` next to it).
    :ivar Key client_key: An ed25519 key it accepts for the current user.
    :ivar str client_key_path: Its private key file.
    :ivar Key rsa_key: An RSA key it accepts.
    :ivar str rsa_key_path: Its private key file.
    :ivar Key stranger_key: A key it does not accept (also usable as "some
        other host key").
    :ivar str stranger_key_path: Its private key file.
    :ivar str known_hosts_path: A known_hosts file listing the host key for
        every address at this port (OpenSSH ``[host]:port`` names).
    """
    directory = attr.ib()
    port = attr.ib()
    addresses = attr.ib()
    host_key = attr.ib()
    host_key_path = attr.ib()
    client_key = attr.ib()
    client_key_path = attr.ib()
    rsa_key = attr.ib()
    rsa_key_path = attr.ib()
    stranger_key = attr.ib()
    stranger_key_path = attr.ib()
    known_hosts_path = attr.ib()
    process = attr.ib(repr=False)
    made_privsep = attr.ib()

    def known_hosts_line(self, address, key=None, port=None):
        """
        :return: A known_hosts line (``bytes``) for ``address`` with ``key``
            (default: the host key) at ``port`` (default: the server's).
        """
        key = self.host_key if key is None else key
        port = self.port if port is None else port
        name = address if port == 22 else "[%s]:%d" % (address, port)
        return name.encode("ascii") + b" " + key.public().toString(
            "openssh") + b"\n"

    def log(self):
        """
        :return: What sshd wrote to its log so far.
        """
        with open(os.path.join(self.directory, "sshd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """
        Stop the daemon and remove the privsep directory if this server made
        it and no other sshd runs.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.made_privsep and not _other_sshd_running():
            try:
                os.rmdir(_PRIVSEP)
            except OSError:
                pass


def start_sshd(directory, addresses=ADDRESSES, extra_config=()):
    """
    Start a private sshd in ``directory``.

    :param str directory: An empty directory for keys, config and log.
    :param addresses: Loopback addresses to listen on.
    :param extra_config: More ``sshd_config`` lines.
    :return: The running :class:`SSHServer`.
    :raises RuntimeError: If it does not accept connections within 15 s.
    """
    directory = str(directory)
    path = lambda name: os.path.join(directory, name)
    host_key = keygen(path("host_key"))
    client_key = keygen(path("client_key"))
    rsa_key = keygen(path("rsa_key"), "rsa")
    stranger_key = keygen(path("stranger_key"))
    with open(path("authorized_keys"), "wb") as f:
        for key in (client_key, rsa_key):
            f.write(key.public().toString("openssh") + b"\n")
    port = free_port()
    config = [
        "HostKey %s" % (path("host_key"),),
        "AuthorizedKeysFile %s" % (path("authorized_keys"),),
        "PidFile %s" % (path("sshd.pid"),),
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "MaxStartups 100",
        "MaxSessions 10",
        "LogLevel ERROR",
    ] + list(extra_config) + [
        "ListenAddress %s" % (address,) for address in addresses]
    with open(path("sshd_config"), "w") as f:
        f.write("\n".join(config) + "\n")
    made_privsep = not os.path.isdir(_PRIVSEP)
    if made_privsep:
        os.makedirs(_PRIVSEP, mode=0o755, exist_ok=True)
    log = open(path("sshd.log"), "wb")
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", path("sshd_config"), "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    server = SSHServer(
        directory=directory, port=port, addresses=tuple(addresses),
        host_key=host_key, host_key_path=path("host_key"),
        client_key=client_key, client_key_path=path("client_key"),
        rsa_key=rsa_key, rsa_key_path=path("rsa_key"),
        stranger_key=stranger_key, stranger_key_path=path("stranger_key"),
        known_hosts_path=path("known_hosts"), process=process,
        made_privsep=made_privsep)
    with open(server.known_hosts_path, "wb") as f:
        for address in addresses:
            f.write(server.known_hosts_line(address))
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError("sshd exited: " + server.log())
        try:
            with socket.create_connection((addresses[0], port), 1):
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("sshd did not listen: " + server.log())
            time.sleep(0.05)


def running_sshd(tmp_path_factory, extra_config=()):
    """
    The body of a module-scoped ``sshd`` fixture: skip (fail in CI) where a
    private sshd cannot run, else start one, yield it, stop it.

    :param tmp_path_factory: pytest's fixture of that name.
    :param extra_config: More ``sshd_config`` lines.
    """
    require(sshd_available(), "needs root, %s and %s" % (SSHD, SSH_KEYGEN))
    server = start_sshd(tmp_path_factory.mktemp("sshd"),
                        extra_config=extra_config)
    yield server
    server.stop()


def class_sshd(cls, extra_config=()):
    """
    The body of a ``setUpClass``: skip (fail in CI) where a private sshd
    cannot run, else start one for the class's tests, stopped (and its
    directory removed) once they have run.

    :param cls: The ``TestCase`` class (its ``addClassCleanup`` is used).
    :param extra_config: More ``sshd_config`` lines.
    :return: The running :class:`SSHServer`.
    """
    require(sshd_available(), "needs root, %s and %s" % (SSHD, SSH_KEYGEN))
    directory = tempfile.mkdtemp(prefix="flocker-sshd-")
    cls.addClassCleanup(shutil.rmtree, directory, True)
    server = start_sshd(directory, extra_config=extra_config)
    cls.addClassCleanup(server.stop)
    return server
