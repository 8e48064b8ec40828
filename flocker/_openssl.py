"""
Node processes run without pyOpenSSL unless etcd's TLS is configured.

Twisted treats pyOpenSSL as optional: ``twisted.internet.tcp``,
``twisted.internet.posixbase`` (hence every reactor),
``twisted.internet.endpoints`` and ``twisted.web.client`` each try to import
it once, at their own import, and offer TLS only when it loads.  Loaded, it
brings the X.509 half of ``cryptography`` and ``service_identity`` with it:
about 14 MB of a node agent's resident memory (measured on the lab: see
``agent_rss_mb`` in ``benchmarks/agent_push.py``).  A node process uses
TLS for one thing only, etcd's ``https://`` client URLs: only when the
variables below name its certificates or an ``https`` member.  So
``flocker-node`` marks pyOpenSSL absent before anything imports Twisted,
unless they do: Twisted then behaves as on a machine without it (SSH
keeps working, it uses ``cryptography`` directly).

This module imports nothing of Flocker or Twisted, so that the choice comes
first; it is also the one home of the variables' names
(:mod:`flocker.etcd` and :mod:`flocker.node._automatic` re-export them).
"""

import sys

__all__ = ["ETCD_ENDPOINTS", "CA_VARIABLE", "CERT_VARIABLE", "KEY_VARIABLE",
           "needs_tls", "forgo_tls", "flocker_node_entry"]

#: The environment variable naming the etcd client URLs an agent uses
#: (comma-separated, the node's own member first).
ETCD_ENDPOINTS = "FLOCKER_ETCD_ENDPOINTS"

#: The environment variable naming the PEM file of the CA that signed the
#: etcd members' client-URL certificates.
CA_VARIABLE = "FLOCKER_ETCD_CA"

#: The environment variable naming the PEM file of Flocker's client
#: certificate for etcd.
CERT_VARIABLE = "FLOCKER_ETCD_CERT"

#: The environment variable naming the PEM file of its private key.
KEY_VARIABLE = "FLOCKER_ETCD_KEY"


def needs_tls(environ):
    """
    :param environ: An environment mapping.
    :return: ``True`` if it names any of etcd's TLS files (an empty value
        names none) or an ``https`` member (trusted through the system's
        authorities without a CA file), so the process may have to speak
        TLS.
    """
    return any(environ.get(name) for name in (
        CA_VARIABLE, CERT_VARIABLE, KEY_VARIABLE)) or any(
        url.strip().lower().startswith("https:")
        for url in environ.get(ETCD_ENDPOINTS, "").split(","))


def forgo_tls(environ, modules=sys.modules):
    """
    Mark pyOpenSSL as absent (``import OpenSSL`` raises ``ImportError``, as
    the import system does for a ``None`` entry of ``sys.modules``) unless
    ``environ`` configures etcd's TLS or pyOpenSSL is already loaded.

    Call it before Twisted is imported: Twisted's modules decide whether
    they offer TLS when they are imported.

    :param environ: The process environment.
    :param modules: The interpreter's module table (tests pass a dict).
    :return: ``True`` if pyOpenSSL is now marked absent.
    """
    if needs_tls(environ) or modules.get("OpenSSL") is not None:
        return False
    modules["OpenSSL"] = None
    return True


def flocker_node_entry():
    """
    Entry point of the ``flocker-node`` console script: :func:`forgo_tls`,
    then :func:`flocker.node.script.flocker_node_main` (importing
    :mod:`flocker.node` imports Twisted's TLS-aware modules, so the choice
    cannot be made there).
    """
    import os
    forgo_tls(os.environ)
    from .node.script import flocker_node_main
    flocker_node_main()
