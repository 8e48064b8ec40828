"""
A real single-member etcd on 127.0.0.1 for tests, in a temporary data
directory, on ports the kernel picks; optionally serving its clients over
TLS and requiring their certificates.
"""

import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

__all__ = ["EtcdServer"]

#: Seconds etcd has to start answering (it takes about 1 s here; the
#: machine may be busy).
START_TIMEOUT = 60


def _free_port():
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


class EtcdServer(object):
    """
    One ``etcd`` process.

    :ivar str url: Its client URL.
    """

    def __init__(self, certificates=None):
        """
        :param certificates: ``None``, or what
            :func:`~flocker.etcd.test._certificates.make_certificates`
            made: then clients speak TLS to a server certificate for
            127.0.0.1 and must present a certificate signed by its CA.
        """
        self._directory = tempfile.mkdtemp(prefix="flocker-etcd-")
        client, peer = _free_port(), _free_port()
        scheme = "http" if certificates is None else "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, client)
        peer_url = "http://127.0.0.1:%d" % (peer,)
        self._context = None
        tls = []
        if certificates is not None:
            tls = ["--cert-file", certificates["server.crt"],
                   "--key-file", certificates["server.key"],
                   "--trusted-ca-file", certificates["ca.crt"],
                   "--client-cert-auth"]
            self._context = ssl.create_default_context(
                cafile=certificates["ca.crt"])
            self._context.load_cert_chain(certificates["client.crt"],
                                          certificates["client.key"])
        self._log = open("%s/etcd.log" % (self._directory,), "wb")
        self._process = subprocess.Popen([
            shutil.which("etcd"), "--name", "test"] + tls + [
            "--data-dir", "%s/data" % (self._directory,),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", "test=%s" % (peer_url,),
        ], stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)
        try:
            self._wait()
        except Exception:
            self.stop()
            raise

    def _wait(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError("etcd exited (%d)" % (
                    self._process.returncode,))
            try:
                with urllib.request.urlopen(self.url + "/health",
                                            timeout=5,
                                            context=self._context) as answer:
                    if json.load(answer).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("etcd did not answer within %ds" % (
                    START_TIMEOUT,))
            time.sleep(0.1)

    def stop(self):
        """
        Stop etcd and remove its data.
        """
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        shutil.rmtree(self._directory, ignore_errors=True)
