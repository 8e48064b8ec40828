"""
The node-to-node SSH key as the deploy client keeps it: one ed25519 key pair
per operator (default ``~/.flocker/node_key`` and ``node_key.pub``), created
on first use, and the known_hosts file the nodes get, built from the host
keys this client itself verified when it connected to them, so the nodes
trust each other exactly as far as the operator trusts them.

The private key is created in this process (``cryptography``) and written in
OpenSSH format with mode 0600; it is only ever sent to the nodes on a
command's standard input, never logged.
"""

import os

import attr
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from twisted.conch.ssh.keys import BadKeyError, EncryptedKeyError, Key

from .._model import NodeKey, public_key_fingerprint
from ..volume._nodekey import write_atomically
from ._logging import LOAD_NODE_KEY
from ._ssh import SSHConfigurationError

__all__ = ["DEFAULT_NODE_KEY_PATH", "NodeKeyPair", "check_node_key",
           "load_node_key_pair",
           "nodes_known_hosts", "nodes_callers"]

#: Where ``flocker-deploy`` keeps the node key unless told otherwise.
DEFAULT_NODE_KEY_PATH = os.path.join("~", ".flocker", "node_key")


@attr.s(frozen=True, slots=True)
class NodeKeyPair(object):
    """
    The client's node-to-node key pair.

    :ivar str private_key: OpenSSH-format private key (not in ``repr``).
    :ivar str public_key: ``"ssh-ed25519 AAAA..."`` (no comment).
    """
    private_key = attr.ib(repr=False)
    public_key = attr.ib()

    @classmethod
    def generate(cls):
        """
        :return: A new random :class:`NodeKeyPair`.
        """
        key = Key(Ed25519PrivateKey.generate())
        return cls._from_key(key)

    @classmethod
    def _from_key(cls, key):
        return cls(
            private_key=key.toString("openssh", subtype="v1").decode("ascii"),
            public_key=key.public().toString("openssh").decode("ascii"))

    def node_key(self, known_hosts, callers=""):
        """
        :param str known_hosts: The nodes' known_hosts text.
        :param str callers: Which node connects from where (see
            :func:`nodes_callers`).
        :return: The :class:`~flocker._model.NodeKey` to install.
        """
        return NodeKey(private_key=self.private_key,
                       public_key=self.public_key, known_hosts=known_hosts,
                       callers=callers)


def _write_private(path, data):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    write_atomically(path, data, 0o600)


def load_node_key_pair(path=None, create=True):
    """
    Read the node key pair, creating it the first time.

    This reads (and may write) local files: call it before handing control
    to the reactor.

    :param path: The private key file (``.pub`` next to it), or ``None`` for
        :data:`DEFAULT_NODE_KEY_PATH`; ``~`` is expanded.
    :param bool create: Write a new key pair if there is none; if ``False``
        (a dry run), a missing pair is generated in memory only.
    :return: A :class:`NodeKeyPair`.
    :raises SSHConfigurationError: If the file exists but is not an
        unencrypted ed25519 private key, or cannot be read or written.
    """
    path = os.path.expanduser(DEFAULT_NODE_KEY_PATH if path is None else path)
    with LOAD_NODE_KEY(path=path) as action:
        pair, created = _load(path, create)
        action.add_success_fields(
            created=created,
            fingerprint=public_key_fingerprint(pair.public_key))
    return pair


def check_node_key(path=None):
    """
    Check, without writing or logging anything, that the node key pair can
    be used: so a deploy stops before it reaches any node if not.

    :param path: As for :func:`load_node_key_pair`.
    :raises SSHConfigurationError: As :func:`load_node_key_pair` would.
    """
    _load(os.path.expanduser(DEFAULT_NODE_KEY_PATH if path is None
                             else path), create=False)


def _load(path, create):
    """
    :return: ``(NodeKeyPair, created)``; see :func:`load_node_key_pair`.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = None
    except OSError as e:
        raise SSHConfigurationError("cannot read the node key %s: %s" % (
            path, e.strerror))
    if data is not None:
        try:
            key = Key.fromString(data)
        except EncryptedKeyError:
            raise SSHConfigurationError(
                "the node key %s is encrypted; nodes need it without a "
                "passphrase" % (path,))
        except (BadKeyError, ValueError) as e:
            raise SSHConfigurationError("the node key %s is not a private "
                                        "key: %s" % (path, e))
        if (key.isPublic() or key.sshType() != b"ssh-ed25519"
                or not data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY")):
            raise SSHConfigurationError(
                "the node key %s must be an ed25519 private key in OpenSSH "
                "format" % (path,))
        # The file's own text, not a re-encoding: OpenSSH's format holds a
        # random check value, so each encoding of one key differs.
        return NodeKeyPair(
            private_key=data.decode("ascii"),
            public_key=key.public().toString("openssh").decode("ascii")), False
    pair = NodeKeyPair.generate()
    if create:
        try:
            _write_private(path, pair.private_key.encode("ascii"))
            _write_private(path + ".pub", (
                pair.public_key + " flocker-node-key\n").encode("ascii"))
        except OSError as e:
            raise SSHConfigurationError("cannot write the node key %s: %s"
                                        % (path, e.strerror))
    return pair, create


def nodes_known_hosts(addresses, resolved, host_keys):
    """
    The known_hosts file the nodes check each other against: one line per
    node of the deployment, naming it as the deployment does (that is the
    name pushes connect to) and, when different, by the IP address the
    client reached it at.

    :param addresses: The deployment's node addresses.
    :param resolved: ``dict`` of node address to the IP address the client
        connected to (what ``host_keys`` is keyed by).
    :param host_keys: ``dict`` of connected address to the host ``Key`` the
        client verified there.
    :return: ``(text, missing)``: the known_hosts text (sorted by address)
        and the sorted addresses whose host key the client does not know.
    """
    lines, missing = [], []
    for address in sorted(addresses):
        ip = resolved.get(address, address)
        key = host_keys.get(ip, host_keys.get(address))
        if key is None:
            missing.append(address)
            continue
        names = address if ip == address else "%s,%s" % (address, ip)
        lines.append("%s %s\n" % (
            names, key.public().toString("openssh").decode("ascii")))
    return "".join(lines), missing


def nodes_callers(addresses, resolved, node_ids):
    """
    Which node connects from where, for the nodes' ``authorized_keys``:
    each node with an identity, from the address the deployment names it by
    and, when different, the IP address the client reached it at.

    :param addresses: The deployment's node addresses.
    :param resolved: ``dict`` of node address to the IP address the client
        connected to.
    :param node_ids: ``dict`` of node address to the identity it reported
        (``None`` or missing for a node without one yet).
    :return: The callers text (see :func:`flocker._model.parse_callers`),
        sorted by address; empty if no node has an identity.
    """
    lines = []
    for address in sorted(addresses):
        node_id = node_ids.get(address)
        if node_id is None:
            continue
        ip = resolved.get(address, address)
        sources = address if ip == address else "%s,%s" % (address, ip)
        lines.append("%s %s\n" % (node_id, sources))
    return "".join(lines)
