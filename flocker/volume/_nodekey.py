"""
This node's node-to-node SSH key, and the trust the deploy client installs
beside it: the key pair the node pushes volumes with, made on the node the
first time the agent starts (the private key never leaves it); the
known_hosts file naming every node's host key; and one line of
``~/.ssh/authorized_keys`` per other node, letting that node's own key in
only to hand a push to this node's agent (``flocker-node-bridge --peer``;
see :mod:`flocker.node._peer`), and only as that node.

Files, in the node's state directory (:func:`default_state_directory`)::

    node-key/id_ed25519        this node's private key        (0600)
    node-key/id_ed25519.pub    its public key line            (0600)
    node-key/id_ed25519.next   the next key, during a rotation (0600)
    node-key/known_hosts       the nodes' host keys           (0600)
    node-key/peers             the nodes' keys and addresses  (0600)

and one line per other node's key in the login user's
``~/.ssh/authorized_keys``, recognised by its comment
:data:`NODE_KEY_MARKER`::

    restrict,from="ADDRESS",command="/path/to/flocker-node-bridge --peer --caller NODEID" ssh-ed25519 AAAA… flocker-node-key

(the key is that node's own, ``from=`` its addresses, the forced command
naming it: sshd picks the line by the key the connection authenticated
with, so the key is the node's identity, usable from that node's addresses
only, and the receiving agent knows which node calls.)

A rotation (:meth:`NodeKeyStore.prepare_rotation`, then
:meth:`NodeKeyStore.finish_rotation`) makes the next key beside the current
one; the deploy client authorises both on every other node before this node
switches, and drops the old one after, so a push is accepted all along.

Every file is replaced atomically (written next to itself, then renamed over
it), so a reader sees the old content or the new, never a mixture.  Only the
marked lines of ``authorized_keys`` are Flocker's: installing replaces them
and keeps every other line byte for byte, and the file's permission bits.
"""

import os
import re
import shutil
import tempfile

from .._identifiers import is_node_address, is_node_identity
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding, NoEncryption, PrivateFormat, PublicFormat,
    load_ssh_private_key,
)

from .._model import (
    NodeKeyStatus, parse_peers, public_key_fingerprint,
)

__all__ = ["NodeKeyStore", "NODE_KEY_MARKER", "authorized_keys_line",
           "known_hosts_sources", "authorized_keys_lines",
           "replace_marked_lines", "default_state_directory",
           "default_node_key_store", "UnsafeForcedCommand", "NodeKeyError",
           "write_atomically", "generate_key_pair",
           "public_key_of"]

#: The comment that marks the ``authorized_keys`` line Flocker owns.
NODE_KEY_MARKER = "flocker-node-key"

# The forced command sits inside double quotes of an authorized_keys option
# and is run by the user's shell: its path may hold none of their specials.
_SAFE_PATH = re.compile(r"\A/[A-Za-z0-9_./+-]+\Z")



class UnsafeForcedCommand(ValueError):
    """
    The ``flocker-volume`` path cannot be written into a forced command.
    """


class NodeKeyError(ValueError):
    """
    The node key could not be installed (a file could not be written).
    """


def default_state_directory(environ):
    """
    :param environ: The process environment.
    :return: The node's state directory: ``$FLOCKER_STATE_DIR``, else
        ``$FLOCKER_LOCK_DIR`` (where the deploy lock already lives, per node
        even where nodes share ``/var/lib``), else ``/var/lib/flocker``.
    """
    return (environ.get("FLOCKER_STATE_DIR")
            or environ.get("FLOCKER_LOCK_DIR") or "/var/lib/flocker")


def known_hosts_sources(known_hosts):
    """
    :param str known_hosts: The nodes' known_hosts text.
    :return: Sorted ``list`` of the node names and addresses it lists (the
        first field of each line, split at commas), each a plain host name
        or IP address; anything else is left out.
    """
    sources = set()
    for line in known_hosts.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith(("#", "@", "|")):
            sources.update(name for name in fields[0].split(",")
                           if is_node_address(name))
    return sorted(sources)


def authorized_keys_line(public_key, command, sources=(), caller=None):
    """
    :param str public_key: ``"ssh-ed25519 AAAA..."``.
    :param str command: Absolute path of ``flocker-node-bridge``.
    :param sources: The node names and addresses the key may be used from
        (``from=``; see :func:`known_hosts_sources`), or empty for anywhere.
    :param caller: The identity of the node that line lets in, passed to
        the forced command (``--peer --caller NODEID``).
    :return: The marked ``authorized_keys`` line (``bytes``, with newline):
        ``restrict`` (no forwarding, no pty, no user rc), ``from=`` the
        nodes, and a forced command, so the key can only ever hand a push
        to this node's agent, and only from a node.
    :raises UnsafeForcedCommand: If ``command`` is not a plain absolute path.
    :raises InvalidModel: If ``public_key`` is not an ed25519 key line.
    :raises ValueError: If a source is not a plain name or address.
    """
    public_key_fingerprint(public_key)
    if not _SAFE_PATH.match(command) or ".." in command.split("/"):
        raise UnsafeForcedCommand(
            "%r cannot be a forced command: it must be an absolute path of "
            "letters, digits and _./+-" % (command,))
    # A from= pattern is a node's address, never a wildcard or negation.
    for source in sources:
        if not is_node_address(source):
            raise ValueError("%r cannot be a from= pattern" % (source,))
    if not is_node_identity(caller):
        raise ValueError("%r is not a node identity" % (caller,))
    origin = 'from="%s",' % (",".join(sources),) if sources else ""
    return ('restrict,%scommand="%s --peer --caller %s" %s %s\n' % (
        origin, command, caller, public_key, NODE_KEY_MARKER)).encode(
            "ascii")


def authorized_keys_lines(node_key, command, own_keys=()):
    """
    :param NodeKey node_key: The nodes' trust, as the deploy installs it.
    :param str command: Absolute path of ``flocker-node-bridge``.
    :param own_keys: This node's own public key lines (current and next),
        which get no line: a node never pushes to itself.
    :return: The marked ``authorized_keys`` lines (``bytes``): one per other
        node's key, ``from=`` that node's addresses, its forced command
        naming it (``--peer --caller NODEID``).
    :raises UnsafeForcedCommand: See :func:`authorized_keys_line`.
    :raises ValueError: For a source that cannot be a ``from=`` pattern.
    """
    return b"".join(
        authorized_keys_line(public_key, command, sources, caller=node_id)
        for node_id, sources, public_key in parse_peers(node_key.peers)
        if public_key not in own_keys)


def generate_key_pair():
    """
    Make a new ed25519 key pair, in this process.

    :return: ``(private, public)``: the private key in OpenSSH format
        (``bytes``, unencrypted) and its ``"ssh-ed25519 AAAA..."`` line
        (``str``, no comment).
    """
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH,
                                NoEncryption())
    return private, _public_line(key)


def _public_line(key):
    return key.public_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH).decode("ascii")


def public_key_of(private):
    """
    :param bytes private: An unencrypted OpenSSH ed25519 private key.
    :return: Its ``"ssh-ed25519 AAAA..."`` line.
    :raises ValueError: If it is not one.
    """
    key = load_ssh_private_key(private, None)
    if not isinstance(key, type(Ed25519PrivateKey.generate())):
        raise ValueError("not an ed25519 private key")
    return _public_line(key)


def _is_marked(line):
    words = line.split()
    return bool(words) and words[-1] == NODE_KEY_MARKER.encode("ascii")


def replace_marked_lines(existing, line):
    """
    :param bytes existing: An ``authorized_keys`` file's content.
    :param bytes line: The marked line or lines to install (newline
        included).
    :return: The new content: ``line`` where the first marked line was (at
        the end if there was none), every other marked line gone, every
        other line unchanged (a last line without a newline gets one).
    """
    result = []
    placed = False
    for current in existing.splitlines(True):
        if _is_marked(current):
            if not placed:
                result.append(line)
                placed = True
            continue
        result.append(current)
    if result and not result[-1].endswith(b"\n"):
        result[-1] += b"\n"
    if not placed:
        result.append(line)
    return b"".join(result)


def write_atomically(path, data, mode):
    """
    Replace ``path`` with ``data`` by a rename, so nobody reads half a file.

    :param str path: The file (its directory must exist).
    :param bytes data: Its new content.
    :param int mode: Permission bits of the new file (set explicitly: the
        umask must not widen or narrow them).
    :raises OSError: If it cannot be written; ``path`` is then unchanged.
    """
    directory = os.path.dirname(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(descriptor, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


class NodeKeyStore(object):
    """
    This node's key pair and the installed trust (see the module
    documentation).

    :ivar str directory: Where the key and known_hosts files are.
    :ivar str authorized_keys: The login user's ``authorized_keys`` file.
    :ivar str command: Absolute path of ``flocker-node-bridge`` (the
        forced command runs ``COMMAND --peer --caller NODEID``).
    """

    def __init__(self, directory, authorized_keys, command):
        self.directory = directory
        self.authorized_keys = authorized_keys
        self.command = command

    @property
    def identity_path(self):
        """This node's private key file."""
        return os.path.join(self.directory, "id_ed25519")

    @property
    def public_key_path(self):
        """Its public key line (for the operator: nothing reads it)."""
        return self.identity_path + ".pub"

    @property
    def pending_path(self):
        """The next private key, while a rotation is under way."""
        return self.identity_path + ".next"

    @property
    def known_hosts_path(self):
        """The known_hosts file pushes check host keys against."""
        return os.path.join(self.directory, "known_hosts")

    @property
    def peers_path(self):
        """Which node has which key and address (``NodeKey.peers``)."""
        return os.path.join(self.directory, "peers")

    def _directory(self):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        # makedirs leaves an existing directory as it is: one made loose
        # (by hand, another umask) is tightened, as it holds a private key.
        os.chmod(self.directory, 0o700)

    def _key(self, path):
        data = _read(path)
        return None if data is None else public_key_of(data)

    def ensure(self):
        """
        Make this node's key pair unless it has one (the agent does at
        start): the private key is written here, mode 0600, and nowhere
        else.

        :return: The public key line.
        :raises NodeKeyError: If the key cannot be written, or the file
            there is not an unencrypted ed25519 OpenSSH private key.
        """
        return self._key_at(self.identity_path, "this node's key")

    def _key_at(self, path, what):
        """
        :return: The public line of the key in ``path``, made there first
            if there is none.
        :raises NodeKeyError: See :meth:`ensure`.
        """
        try:
            self._directory()
            public = self._key(path)
            if public is None:
                private, public = generate_key_pair()
                self._write_key(path, private, public)
            return public
        except OSError as e:
            raise NodeKeyError("cannot make %s: %s: %s" % (
                what, e.filename or self.directory, e.strerror))
        except ValueError as e:
            raise NodeKeyError("%s is not a usable key: %s" % (path, e))

    def _write_key(self, path, private, public):
        write_atomically(path, private, 0o600)
        if path == self.identity_path:
            write_atomically(self.public_key_path, (
                "%s %s\n" % (public, NODE_KEY_MARKER)).encode("ascii"),
                0o600)

    def installed(self):
        """
        :return: Whether this node's key and the nodes' known_hosts are in
            place, so pushes should use them.
        """
        return (os.path.exists(self.identity_path)
                and os.path.exists(self.known_hosts_path))

    def _installed_key(self):
        """
        :return: The installed ``NodeKey``, or ``None``.
        :raises ValueError: If the files are damaged.
        """
        from .._model import NodeKey
        known, peers = (_read(self.known_hosts_path), _read(self.peers_path))
        if known is None or peers is None:
            return None
        return NodeKey(known_hosts=known.decode("utf-8"),
                       peers=peers.decode("utf-8"))

    def peer_sources(self):
        """
        :return: ``dict`` of node identity to the ``frozenset`` of
            addresses this node accepts that node's key from (its
            ``authorized_keys`` lines' ``from=``), as the installed trust
            says; empty when none is installed.
        :raises ValueError: If the trust files are damaged.
        """
        from .._model import parse_peers
        node_key = self._installed_key()
        sources = {}
        if node_key is not None:
            for node_id, addresses, _ in parse_peers(node_key.peers):
                sources[node_id] = sources.get(
                    node_id, frozenset()) | frozenset(addresses)
        return sources

    def status(self):
        """
        :return: This node's :class:`NodeKeyStatus`, or ``None`` if it has
            no usable key.  ``installed`` is ``None`` unless the trust
            files are intact and every marked ``authorized_keys`` line they
            call for is in place (an operator may have removed one): the
            next deploy repairs that by installing again.
        """
        try:
            public = self._key(self.identity_path)
            pending = self._key(self.pending_path)
        except (ValueError, OSError):
            return None
        if public is None:
            return None
        installed = None
        try:
            node_key = self._installed_key()
            if node_key is not None:
                lines = authorized_keys_lines(
                    node_key, self.command, self._own(public, pending))
                authorized = _read(self.authorized_keys)
                if authorized is not None and set(
                        lines.splitlines(True)) <= set(
                            authorized.splitlines(True)):
                    installed = node_key.digest()
        except (ValueError, UnicodeDecodeError, OSError):
            installed = None
        return NodeKeyStatus(public_key=public, installed=installed,
                             pending_public_key=pending)

    @staticmethod
    def _own(public, pending):
        return {key for key in (public, pending) if key is not None}

    def install(self, node_key):
        """
        Install the nodes' trust: the known_hosts and peers files, then the
        marked ``authorized_keys`` lines (one per other node's key).
        Running it again with the same value changes nothing.

        :param NodeKey node_key: What to install.
        :raises UnsafeForcedCommand: See :func:`authorized_keys_line`.
        :raises NodeKeyError: If a file cannot be written.
        """
        public = self.ensure()
        try:
            pending = self._key(self.pending_path)
            lines = authorized_keys_lines(node_key, self.command,
                                          self._own(public, pending))
        except UnsafeForcedCommand:
            raise
        except (ValueError, OSError) as e:
            raise NodeKeyError("cannot install the node keys: %s" % (e,))
        try:
            self._install(node_key, lines)
        except OSError as e:
            raise NodeKeyError("cannot install the node keys: %s: %s" % (
                e.filename or self.directory, e.strerror))

    def _install(self, node_key, lines):
        write_atomically(self.known_hosts_path,
                         node_key.known_hosts.encode("utf-8"), 0o600)
        write_atomically(self.peers_path, node_key.peers.encode("utf-8"),
                         0o600)
        ssh_directory = os.path.dirname(self.authorized_keys)
        if not os.path.isdir(ssh_directory):
            os.makedirs(ssh_directory, mode=0o700)
        existing = _read(self.authorized_keys)
        mode = (0o600 if existing is None
                else os.stat(self.authorized_keys).st_mode & 0o7777)
        updated = replace_marked_lines(existing or b"", lines)
        if updated != existing:
            write_atomically(self.authorized_keys, updated, mode)

    def prepare_rotation(self):
        """
        Make the next key pair beside the current one (kept if one is
        already made: a rotation interrupted before its end goes on with
        it).  Pushes keep using the current key.

        :return: The next key's public line.
        :raises NodeKeyError: If it cannot be written.
        """
        self.ensure()
        return self._key_at(self.pending_path, "the next key")

    def finish_rotation(self):
        """
        Switch to the next key: from now on pushes use it.  Only once the
        installed trust lists it (the deploy client installed the nodes'
        trust naming it on every node first), so the other nodes accept
        it; nothing to do when no rotation is under way.

        :return: The current public key line (the new one).
        :raises NodeKeyError: If the next key is not yet listed, or the
            files cannot be written.
        """
        try:
            pending = self._key(self.pending_path)
            if pending is None:
                return self.ensure()
            node_key = self._installed_key()
            listed = node_key is not None and any(
                key == pending for _, _, key in parse_peers(node_key.peers))
            if not listed:
                raise NodeKeyError(
                    "the next key %s is not yet installed on the nodes; "
                    "the rotation installs it everywhere before switching"
                    % (public_key_fingerprint(pending),))
            write_atomically(self.public_key_path, (
                "%s %s\n" % (pending, NODE_KEY_MARKER)).encode("ascii"),
                0o600)
            # One rename: a push reads the old key or the new, and both
            # are accepted until the rotation's last install.
            os.rename(self.pending_path, self.identity_path)
            return pending
        except NodeKeyError:
            raise
        except OSError as e:
            raise NodeKeyError("cannot switch to the next key: %s: %s" % (
                e.filename or self.directory, e.strerror))
        except ValueError as e:
            raise NodeKeyError("cannot switch to the next key: %s" % (e,))


def _bridge_path(argv0):
    """
    :return: The absolute path of ``flocker-node-bridge``: next to the
        running Flocker script (both are installed together), else where
        ``PATH`` finds it.
    """
    beside = os.path.join(os.path.dirname(os.path.abspath(argv0)),
                          "flocker-node-bridge")
    if os.path.isfile(beside):
        return beside
    found = shutil.which("flocker-node-bridge")
    return os.path.abspath(found) if found else beside


def default_node_key_store(environ, argv0):
    """
    :param environ: The process environment (``HOME``, and see
        :func:`default_state_directory`).
    :param str argv0: The running program's path (``sys.argv[0]``).
    :return: This node's :class:`NodeKeyStore`.
    """
    home = environ.get("HOME") or os.path.expanduser("~")
    return NodeKeyStore(
        os.path.join(default_state_directory(environ), "node-key"),
        os.path.join(home, ".ssh", "authorized_keys"),
        _bridge_path(argv0))
