"""
TLS material for tests of etcd with TLS, made with ``openssl`` (argv, no
shell): a CA, a server certificate for ``127.0.0.1``, and a client
certificate, each with its own EC key.
"""

import os
import subprocess

__all__ = ["make_certificates"]

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes"]


def _openssl(directory, *argv):
    subprocess.run(("openssl",) + argv, cwd=directory, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _signed(directory, name, subject, *extra):
    _openssl(directory, "req", *(_KEY + ["-keyout", name + ".key", "-out",
                                         name + ".csr", "-subj", subject]
                                 + list(extra)))
    _openssl(directory, "x509", "-req", "-in", name + ".csr", "-CA",
             "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
             name + ".crt", "-days", "2", "-copy_extensions", "copy")


def make_certificates(directory):
    """
    Write ``ca.crt``, ``server.crt``/``server.key`` (for 127.0.0.1) and
    ``client.crt``/``client.key`` (all signed by the CA) into
    ``directory``, plus ``other-ca.crt``: a CA that signed none of them.

    :return: ``dict`` of those names to their paths.
    """
    _openssl(directory, "req", "-x509", *(_KEY + [
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=flocker-test-ca",
        "-days", "2"]))
    _openssl(directory, "req", "-x509", *(_KEY + [
        "-keyout", "other-ca.key", "-out", "other-ca.crt", "-subj",
        "/CN=another-ca", "-days", "2"]))
    _signed(directory, "server", "/CN=127.0.0.1", "-addext",
            "subjectAltName=IP:127.0.0.1")
    _signed(directory, "client", "/CN=flocker-agent")
    names = ["ca.crt", "other-ca.crt", "server.crt", "server.key",
             "client.crt", "client.key"]
    return {name: os.path.join(directory, name) for name in names}
