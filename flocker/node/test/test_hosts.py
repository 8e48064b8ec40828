"""
Tests for :mod:`flocker.node._hosts`: a running container's names, rewritten
in its hosts file.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from flocker._model import Link
from flocker.node._hosts import hosts_with_names, write_container_hosts
from flocker.testtools import temporary_directory

DOCKER = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
          "192.0.2.9\tcache.local\n127.200.1.2\tdb\n10.98.2.2\tabc123\n")
LINKS = {Link(local_port=5432, remote_port=15432, alias="db",
              address="127.200.1.2"),
         Link(local_port=80, remote_port=8080, alias="web",
              address="127.150.3.4"),
         Link(local_port=443, remote_port=8443, alias="web",
              address="127.150.3.4"),
         Link(local_port=6379, remote_port=16379, alias="cache")}


class HostsWithNamesTests(SynchronousTestCase):
    """
    Tests for ``hosts_with_names``.
    """

    def test_names_replaced(self):
        """
        The lines of the names' addresses are replaced by one line per
        name of a named link; Docker's lines and other hosts stay.
        """
        self.assertEqual(
            hosts_with_names(DOCKER, LINKS),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
            "192.0.2.9\tcache.local\n10.98.2.2\tabc123\n"
            "127.200.1.2\tdb\n127.150.3.4\tweb\n")

    def test_names_removed(self):
        """
        Without named links, no name line is left.
        """
        self.assertEqual(
            hosts_with_names(DOCKER, set()),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
            "192.0.2.9\tcache.local\n10.98.2.2\tabc123\n")

    def test_idempotent(self):
        """
        Rewriting a rewritten file changes nothing.
        """
        once = hosts_with_names(DOCKER, LINKS)
        self.assertEqual(hosts_with_names(once, LINKS), once)


class WriteContainerHostsTests(SynchronousTestCase):
    """
    Tests for ``write_container_hosts``.
    """

    def test_in_place(self):
        """
        The container's hosts file (under ``PROC/PID/root``) is rewritten
        in place: same inode, new content.
        """
        proc = temporary_directory(self)
        etc = os.path.join(proc, "42", "root", "etc")
        os.makedirs(etc)
        path = os.path.join(etc, "hosts")
        with open(path, "w") as f:
            f.write(DOCKER + "127.130.0.1\tgone-service-with-a-long-name\n")
        inode = os.stat(path).st_ino
        write_container_hosts(42, LINKS, proc=proc)
        with open(path) as f:
            self.assertEqual((f.read(), os.stat(path).st_ino),
                             (hosts_with_names(DOCKER, LINKS), inode))

    def test_missing(self):
        """
        A process without a hosts file fails with ``OSError``.
        """
        self.assertRaises(OSError, write_container_hosts, 42, LINKS,
                          proc=temporary_directory(self))
