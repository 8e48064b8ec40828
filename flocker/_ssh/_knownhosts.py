"""
Host keys: OpenSSH known_hosts files, read once and consulted in memory,
never written (plain and hashed names, ``[host]:port``, ``*``/``?``
patterns, ``@revoked`` lines).
"""

import base64
import hashlib
import hmac
import re
import shlex
import struct

import attr
from pyrsistent import pvector
from twisted.conch.ssh.keys import BadKeyError, FingerprintFormats, Key

from ._errors import HostKeyError, SSHConfigurationError

__all__ = ["KnownHosts", "known_hosts_name", "key_fingerprint"]


def key_fingerprint(key):
    """
    :param Key key: A public key.
    :return: Its type and SHA256 fingerprint as ssh(1) prints them, e.g.
        ``"ssh-ed25519 SHA256:R1zp…"``.
    """
    digest = key.fingerprint(FingerprintFormats.SHA256_BASE64).rstrip("=")
    return "%s SHA256:%s" % (key.sshType().decode("ascii"), digest)


def known_hosts_name(address, port):
    """
    :param str address: Host name or IP address.
    :param int port: SSH port.
    :return: The name OpenSSH looks up in known_hosts for them: the address
        itself on port 22, ``[address]:port`` otherwise.
    """
    if port == 22:
        return address
    return "[%s]:%d" % (address, port)


# Signature/host key algorithm names usable with a key of each type.
_ALGORITHMS = {
    b"ssh-rsa": (b"rsa-sha2-512", b"rsa-sha2-256", b"ssh-rsa"),
}


def _algorithms_for(key_type):
    return _ALGORITHMS.get(key_type, (key_type,))


def _pattern_matcher(pattern):
    # OpenSSH host patterns know only '*' and '?'; everything else, brackets
    # of "[host]:port" included, is literal.
    expression = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char)
        for char in pattern.lower())
    return re.compile(r"\A%s\Z" % (expression,), re.DOTALL)


@attr.s(frozen=True, slots=True)
class _HostEntry(object):
    """
    One parsed known_hosts line.

    :ivar int line: 1-based line number.
    :ivar hosts: ``None`` for a hashed entry, else a tuple of
        ``(negated, compiled pattern)``.
    :ivar hashed: ``(salt, digest)`` of a hashed entry, else ``None``.
    :ivar Key key: The public key.
    :ivar bytes marker: ``b"@revoked"``, ``b"@cert-authority"`` or ``b""``.
    """
    line = attr.ib()
    hosts = attr.ib()
    hashed = attr.ib()
    key = attr.ib(eq=False)
    blob = attr.ib()
    marker = attr.ib()

    def matches(self, name):
        """
        :param str name: A known-hosts name (see :func:`known_hosts_name`).
        :return: Whether this entry is about that name.
        """
        if self.hashed is not None:
            salt, digest = self.hashed
            mine = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
            return hmac.compare_digest(mine, digest)
        lowered = name.lower()
        matched = False
        for negated, pattern in self.hosts:
            if pattern.match(lowered):
                if negated:
                    return False
                matched = True
        return matched


def _parse_host_entry(number, line):
    fields = line.split()
    marker = b""
    if fields and fields[0].startswith(b"@"):
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        return None
    hosts_field, key_type, key_data = fields[:3]
    try:
        blob = base64.b64decode(key_data, validate=True)
        key = Key.fromString(blob)
    except (ValueError, BadKeyError, struct.error, IndexError):
        return None
    if key.sshType() != key_type:
        return None
    if hosts_field.startswith(b"|1|"):
        parts = hosts_field.split(b"|")
        if len(parts) != 4:
            return None
        try:
            hashed = (base64.b64decode(parts[2]), base64.b64decode(parts[3]))
        except ValueError:
            return None
        hosts = None
    else:
        hashed = None
        hosts = tuple(
            (pattern.startswith("!"), _pattern_matcher(pattern.lstrip("!")))
            for pattern in hosts_field.decode("utf-8", "replace").split(",")
            if pattern.lstrip("!"))
    return _HostEntry(line=number, hosts=hosts, hashed=hashed, key=key,
                      blob=key.blob(), marker=marker)


@attr.s(frozen=True, slots=True)
class KnownHosts(object):
    """
    A known-hosts file, read once, consulted in memory, never written.

    :ivar str path: Where it was read from (for messages).
    :ivar entries: ``PVector`` of parsed lines (unparseable lines and
        ``@cert-authority`` lines are left out: certificates are not
        supported).
    """
    path = attr.ib()
    entries = attr.ib(converter=pvector, repr=False)

    @classmethod
    def parse(cls, path, data):
        """
        :param str path: Where ``data`` came from.
        :param bytes data: known_hosts content in OpenSSH format.
        :return: A :class:`KnownHosts`.
        """
        entries = []
        for number, line in enumerate(data.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            entry = _parse_host_entry(number, line)
            if entry is not None and entry.marker in (b"", b"@revoked"):
                entries.append(entry)
        return cls(path=path, entries=entries)

    @classmethod
    def from_path(cls, path):
        """
        Read a known-hosts file.  A missing file is an empty one (every host
        is then unknown).

        :param str path: The file.
        :return: A :class:`KnownHosts`.
        :raises SSHConfigurationError: If it exists but cannot be read.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        except OSError as e:
            raise SSHConfigurationError(
                "cannot read known hosts file %s: %s" % (path, e.strerror))
        return cls.parse(path, data)

    def key_types(self, address, port):
        """
        :return: ``set`` of the key types (``bytes``, e.g. ``b"ssh-ed25519"``)
            listed for the host, so key exchange can ask for one of those.
        """
        name = known_hosts_name(address, port)
        return {entry.key.sshType() for entry in self.entries
                if not entry.marker and entry.matches(name)}

    def verify(self, address, port, key):
        """
        Check the key a host presented.

        :param str address: The host as the client named it.
        :param int port: The SSH port.
        :param Key key: The presented host key.
        :return: ``None`` if the file vouches for the key.
        :raises HostKeyError: If the key is revoked, differs from the one
            listed for the host, or the host is not listed with a key of this
            type.
        """
        name = known_hosts_name(address, port)
        fingerprint = key_fingerprint(key)
        blob = key.blob()
        for entry in self.entries:
            if entry.marker == b"@revoked" and entry.blob == blob and (
                    entry.matches(name)):
                raise HostKeyError(address, fingerprint, (
                    "the key is marked @revoked in %s line %d; refusing to "
                    "connect") % (self.path, entry.line))
        same_type = []
        other_types = set()
        for entry in self.entries:
            if entry.marker or not entry.matches(name):
                continue
            if entry.key.sshType() == key.sshType():
                if entry.blob == blob:
                    return None
                same_type.append(entry)
            else:
                other_types.add(entry.key.sshType().decode("ascii"))
        if same_type:
            raise HostKeyError(address, fingerprint, (
                "the host key has CHANGED: %s line %d lists a different key "
                "for %s; refusing to connect (someone may be intercepting the "
                "connection; if the change is expected, remove the old entry "
                "with 'ssh-keygen -R %s -f %s')") % (
                    self.path, same_type[0].line, name, shlex.quote(name),
                    shlex.quote(self.path)))
        also = ""
        if other_types:
            also = " (it lists only %s keys for this host)" % (
                ", ".join(sorted(other_types)),)
        raise HostKeyError(address, fingerprint, (
            "the host is not in %s%s; refusing to trust an unknown key (check "
            "the fingerprint on the node, then add its key to the file, e.g. "
            "with ssh-keyscan)") % (self.path, also))
