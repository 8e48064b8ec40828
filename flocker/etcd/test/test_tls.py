"""
Tests for etcd over TLS: :class:`flocker.etcd.EtcdTLS`'s settings, and
:class:`flocker.etcd.EtcdClient` against a real etcd member that requires
client certificates (made with ``openssl`` for the test).
"""

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ...testtools import require, run_in_reactor, temporary_directory
from .. import EtcdClient, EtcdConfigError, EtcdTLS, EtcdUnavailable
from ._certificates import make_certificates
from ._server import EtcdServer


class EtcdTLSSettingsTests(SynchronousTestCase):
    """
    ``EtcdTLS`` from the agent's environment, and its files.
    """

    def test_none(self):
        """
        Without any of its variables there are no TLS settings.
        """
        self.assertIsNone(EtcdTLS.from_environ({"FLOCKER_ETCD_CA": ""}))

    def test_all(self):
        """
        The three variables name the CA, certificate and key files.
        """
        self.assertEqual(
            EtcdTLS(ca="/p/ca.crt", cert="/p/c.crt", key="/p/c.key"),
            EtcdTLS.from_environ({"FLOCKER_ETCD_CA": "/p/ca.crt",
                                  "FLOCKER_ETCD_CERT": "/p/c.crt",
                                  "FLOCKER_ETCD_KEY": "/p/c.key"}))

    def test_certificate_without_key(self):
        """
        A client certificate without its key is refused, naming both
        variables.
        """
        error = self.assertRaises(EtcdConfigError, EtcdTLS.from_environ,
                                  {"FLOCKER_ETCD_CERT": "/p/c.crt"})
        self.assertIn("FLOCKER_ETCD_KEY", str(error))

    def test_missing_file(self):
        """
        A file that cannot be read is refused, naming it.
        """
        path = os.path.join(temporary_directory(self), "absent.crt")
        error = self.assertRaises(EtcdConfigError, EtcdTLS(ca=path).policy)
        self.assertTrue(str(error).startswith(path + ": "), str(error))

    def test_not_pem(self):
        """
        A CA file that is not a PEM certificate is refused, naming it.
        """
        directory = temporary_directory(self)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "ca.crt")
        with open(path, "w") as f:
            f.write("not a certificate\n")
        error = self.assertRaises(EtcdConfigError, EtcdTLS(ca=path).policy)
        self.assertIn(path, str(error))


class EtcdClientTLSTests(SynchronousTestCase):
    """
    ``EtcdClient`` with an etcd member serving TLS and requiring client
    certificates signed by its CA.
    """

    @classmethod
    def setUpClass(cls):
        require(shutil.which("etcd") is not None,
                "etcd is not installed (admin/install-deps installs it)")
        require(shutil.which("openssl") is not None,
                "openssl is not installed")
        cls.directory = tempfile.mkdtemp(prefix="flocker-etcd-tls-")
        cls.files = make_certificates(cls.directory)
        cls.server = EtcdServer(certificates=cls.files)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.directory, ignore_errors=True)

    def client(self, **tls):
        return run_in_reactor(lambda reactor: EtcdClient(
            reactor, [self.server.url], timeout=10, tls=EtcdTLS(**tls)))

    def test_client_certificate(self):
        """
        With the CA and a client certificate, keys are written and read.
        """
        client = self.client(ca=self.files["ca.crt"],
                             cert=self.files["client.crt"],
                             key=self.files["client.key"])
        run_in_reactor(lambda reactor: client.put(b"tls/a", b"1"))
        self.assertEqual(b"1", run_in_reactor(
            lambda reactor: client.get(b"tls/a")).value)

    def test_no_client_certificate(self):
        """
        Without a client certificate the member refuses the connection: no
        member answered.
        """
        client = self.client(ca=self.files["ca.crt"])
        with self.assertRaises(EtcdUnavailable):
            run_in_reactor(lambda reactor: client.get(b"tls/a"))

    def test_other_authority(self):
        """
        A member whose certificate another CA signed is not trusted: no
        member answered.
        """
        client = self.client(ca=self.files["other-ca.crt"],
                             cert=self.files["client.crt"],
                             key=self.files["client.key"])
        with self.assertRaises(EtcdUnavailable):
            run_in_reactor(lambda reactor: client.get(b"tls/a"))
