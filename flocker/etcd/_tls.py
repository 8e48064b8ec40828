"""
TLS to etcd's client URLs (``https://``): each member's certificate is
checked against the cluster's certificate authority (for the address or
name in its URL), and Flocker presents its own client certificate, which
members started with ``--client-cert-auth`` require.

The agent reads the files named by its environment
(:data:`CA_VARIABLE`, :data:`CERT_VARIABLE`, :data:`KEY_VARIABLE`, all
optional: without a CA the system's authorities are trusted; a certificate
goes with its key).
"""

import attr
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from .._openssl import CA_VARIABLE, CERT_VARIABLE, KEY_VARIABLE

__all__ = ["EtcdTLS", "EtcdConfigError", "CA_VARIABLE", "CERT_VARIABLE",
           "KEY_VARIABLE"]

class EtcdConfigError(ValueError):
    """
    The etcd settings cannot be used; the message is one line naming the
    setting or file.
    """


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise EtcdConfigError("%s: cannot read the etcd %s: %s" % (
            path, what, e.strerror or e))


@implementer(IPolicyForHTTPS)
class _ClientPolicy(object):
    """
    The TLS settings of each connection to a member: its certificate
    checked for the host in its URL against ``trust``, ``client``
    presented.
    """

    def __init__(self, trust, client):
        self._trust = trust
        self._client = client

    def creatorForNetloc(self, hostname, port):
        from twisted.internet.ssl import optionsForClientTLS
        return optionsForClientTLS(hostname.decode("ascii"),
                                   trustRoot=self._trust,
                                   clientCertificate=self._client)


@attr.s(frozen=True)
class EtcdTLS(object):
    """
    Where Flocker's TLS material for etcd is.

    :ivar ca: The CA certificate's PEM file, or ``None`` for the system's
        authorities.
    :ivar cert: The client certificate's PEM file, or ``None`` to present
        none.
    :ivar key: Its private key's PEM file (with ``cert`` only).
    """
    ca = attr.ib(default=None)
    cert = attr.ib(default=None)
    key = attr.ib(default=None)

    def __attrs_post_init__(self):
        if (self.cert is None) != (self.key is None):
            raise EtcdConfigError(
                "%s and %s go together: a client certificate and its key" % (
                    CERT_VARIABLE, KEY_VARIABLE))

    @classmethod
    def from_environ(cls, environ):
        """
        :param environ: An environment mapping.
        :return: The :class:`EtcdTLS` its variables name, or ``None`` when
            it names none.
        :raises EtcdConfigError: For a certificate without its key or the
            reverse.
        """
        values = [environ.get(name) or None for name in
                  (CA_VARIABLE, CERT_VARIABLE, KEY_VARIABLE)]
        if not any(values):
            return None
        return cls(*values)

    def policy(self):
        """
        Read the files.

        :return: An ``IPolicyForHTTPS`` for treq's ``Agent``.
        :raises EtcdConfigError: With one line naming the file that cannot
            be read or is not what it should be.
        """
        # pyOpenSSL only here: without these settings flocker-node runs
        # without it (see flocker._openssl).
        from OpenSSL.crypto import Error as OpenSSLError
        from twisted.internet.ssl import (
            Certificate, PrivateCertificate, platformTrust,
        )
        trust = platformTrust()
        if self.ca is not None:
            try:
                trust = Certificate.loadPEM(_read(self.ca, "CA certificate"))
            except OpenSSLError:
                raise EtcdConfigError(
                    "%s: not a PEM certificate (%s)" % (self.ca, CA_VARIABLE))
        client = None
        if self.cert is not None:
            pem = (_read(self.cert, "client certificate") + b"\n" +
                   _read(self.key, "client key"))
            try:
                client = PrivateCertificate.loadPEM(pem)
            except (OpenSSLError, ValueError):
                raise EtcdConfigError(
                    "%s, %s: not a PEM certificate and its private key (%s, "
                    "%s)" % (self.cert, self.key, CERT_VARIABLE,
                             KEY_VARIABLE))
        return _ClientPolicy(trust, client)
