"""
The client's identities and public-key authentication: identity files as
ssh(1) finds them, keys held by an SSH agent, and the ``ssh-userauth``
client that offers them in turn.
"""

import os
import struct

import attr
from pyrsistent import pvector
from twisted.conch.error import ConchError
from twisted.conch.ssh.agent import AGENT_SIGN_RESPONSE, AGENTC_SIGN_REQUEST
from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.keys import BadKeyError, EncryptedKeyError, Key
from twisted.conch.ssh.userauth import MSG_USERAUTH_REQUEST, SSHUserAuthClient
from twisted.internet.defer import maybeDeferred
from twisted.internet.endpoints import UNIXClientEndpoint

from ._logging import SSH_IDENTITY_SKIPPED
from ._errors import SSHConfigurationError

__all__ = ["load_identities", "agent_endpoint", "DEFAULT_IDENTITY_NAMES"]


#: Identity files tried in ``~/.ssh`` when none is given, in this order.
DEFAULT_IDENTITY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")


def load_identities(identity_files=(), ssh_directory=None):
    """
    Load the private keys to authenticate with, as ssh(1) would: the
    identity files given, or, if none, the default ones in ``ssh_directory``
    (:data:`DEFAULT_IDENTITY_NAMES`) that exist and can be used.  Unusable
    default files are skipped with an eliot message.

    This reads local files: call it before handing control to the reactor.

    :param identity_files: Paths given explicitly (``--identity``).
    :param ssh_directory: Where the default identities are; ``~/.ssh`` if
        ``None``.
    :return: ``PVector`` of private :class:`Key`.
    :raises SSHConfigurationError: If an explicit identity file is missing,
        unreadable, passphrase-protected or not a private key.
    """
    keys = []
    for path in identity_files:
        try:
            key = Key.fromFile(path)
        except EncryptedKeyError:
            raise SSHConfigurationError(
                "identity file %s is passphrase-protected: load it into "
                "ssh-agent instead" % (path,))
        except OSError as e:
            raise SSHConfigurationError(
                "cannot read identity file %s: %s" % (path, e.strerror))
        except (BadKeyError, ValueError) as e:
            raise SSHConfigurationError(
                "identity file %s is not a usable private key: %s" % (path, e))
        if key.isPublic():
            raise SSHConfigurationError(
                "identity file %s holds a public key; give the private key"
                % (path,))
        keys.append(key)
    if identity_files:
        return pvector(keys)
    if ssh_directory is None:
        ssh_directory = os.path.expanduser("~/.ssh")
    for name in DEFAULT_IDENTITY_NAMES:
        path = os.path.join(ssh_directory, name)
        if not os.path.exists(path):
            continue
        try:
            key = Key.fromFile(path)
        except EncryptedKeyError:
            SSH_IDENTITY_SKIPPED.log(
                path=path, reason="passphrase-protected (use ssh-agent)")
            continue
        except (OSError, BadKeyError, ValueError) as e:
            SSH_IDENTITY_SKIPPED.log(path=path, reason=str(e))
            continue
        if not key.isPublic():
            keys.append(key)
    return pvector(keys)


def agent_endpoint(reactor, environ=None):
    """
    :param reactor: An ``IReactorUNIX`` provider.
    :param environ: The environment; ``os.environ`` if ``None``.
    :return: An endpoint reaching the SSH agent named by ``SSH_AUTH_SOCK``,
        or ``None`` when it is not set.
    """
    if environ is None:
        environ = os.environ
    path = environ.get("SSH_AUTH_SOCK")
    if not path:
        return None
    return UNIXClientEndpoint(reactor, path)


def _signature_algorithm(key):
    # SHA-1 "ssh-rsa" signatures are refused by OpenSSH 8.8 and later.
    return b"rsa-sha2-512" if key.sshType() == b"ssh-rsa" else key.sshType()


@attr.s(frozen=True)
class _FileIdentity(object):
    """
    A key whose private half the client holds.
    """
    private = attr.ib()

    @property
    def public(self):
        return self.private.public()

    @property
    def algorithm(self):
        return _signature_algorithm(self.private)

    def sign(self, data):
        return maybeDeferred(self.private.sign, data,
                             signatureType=self.algorithm)


# Flags of an agent sign request asking for SHA-2 RSA signatures.
_AGENT_RSA_SHA2_512 = 4


@attr.s(frozen=True)
class _AgentIdentity(object):
    """
    A key held by the SSH agent; the agent signs.
    """
    agent = attr.ib(eq=False)
    public = attr.ib()

    @property
    def algorithm(self):
        return _signature_algorithm(self.public)

    def sign(self, data):
        flags = (_AGENT_RSA_SHA2_512 if self.algorithm == b"rsa-sha2-512"
                 else 0)
        request = NS(self.public.blob()) + NS(data) + struct.pack(">L", flags)

        def signature(response):
            if response[:1] != bytes((AGENT_SIGN_RESPONSE,)):
                raise ConchError("unexpected agent response")
            return getNS(response[1:])[0]
        return self.agent.sendRequest(AGENTC_SIGN_REQUEST, request).addCallback(
            signature)


class _UserAuth(SSHUserAuthClient):
    """
    Public-key authentication with a list of identities, tried in order.
    """
    preferredOrder = [b"publickey"]

    def __init__(self, user, instance, identities):
        SSHUserAuthClient.__init__(self, user, instance)
        self._identities = list(identities)
        self._current = None
        self.offered = 0

    def auth_publickey(self):
        if not self._identities:
            return False
        self._current = self._identities.pop(0)
        self.lastPublicKey = self._current.public
        self.offered += 1
        self.askForAuth(b"publickey", b"\x00" + NS(self._current.algorithm)
                        + NS(self._current.public.blob()))
        return True

    def auth_password(self):
        return False

    def auth_keyboard_interactive(self):
        return False

    def ssh_USERAUTH_PK_OK_publickey(self, packet):
        identity = self._current
        algorithm_and_key = (NS(identity.algorithm)
                             + NS(identity.public.blob()))
        signed = (NS(self.transport.sessionID)
                  + bytes((MSG_USERAUTH_REQUEST,)) + NS(self.user)
                  + NS(self.instance.name) + NS(b"publickey") + b"\x01"
                  + algorithm_and_key)
        d = identity.sign(signed)
        d.addCallback(lambda signature: self.askForAuth(
            b"publickey", b"\x01" + algorithm_and_key + NS(signature)))
        # A key that cannot sign (agent refusal) is skipped: asking "none"
        # brings back the method list and the next key.
        d.addErrback(self._ebAuth)
