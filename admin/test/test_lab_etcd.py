"""
Tests for ``admin/_lab_etcd.py``'s pure parts: the etcd command line of a
lab node and the cluster it names.
"""

import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ADMIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ADMIN))

import _lab_etcd  # noqa: E402
import _lab_model  # noqa: E402


def _lab():
    return _lab_model.Lab.from_environ({
        "FLOCKER_LAB_PREFIX": "tx", "FLOCKER_LAB_STATE": "/var/lib/tx"})


class LabEtcdTests(SynchronousTestCase):
    """
    A lab node's etcd command line and the cluster it names.
    """

    def test_initial_cluster_names_every_node(self):
        """
        ``--initial-cluster`` names each node's member at its peer URL.
        """
        lab = _lab()
        nodes = [lab.node(1), lab.node(2), lab.node(3)]
        self.assertEqual(
            _lab_etcd.initial_cluster(nodes),
            "node1=http://10.99.0.11:2380,node2=http://10.99.0.12:2380,"
            "node3=http://10.99.0.13:2380")

    def test_argv_own_address_and_data(self):
        """
        A member listens for clients on its node's address and on the node's
        loopback, advertises its node's address, and keeps its data in its
        node's state directory; the token is the lab's; a member back from
        a partition holds a pre-vote before it may disrupt the leader.
        """
        lab = _lab()
        nodes = [lab.node(1), lab.node(2)]
        argv = _lab_etcd.etcd_argv(nodes[1], nodes)
        options = dict(zip(argv[1:-1:2], argv[2:-1:2]))
        self.assertEqual(
            options,
            {"--name": "node2",
             "--data-dir": "/var/lib/tx/node2/etcd",
             "--listen-client-urls":
                 "http://10.99.0.12:2379,http://127.0.0.1:2379",
             "--advertise-client-urls": "http://10.99.0.12:2379",
             "--listen-peer-urls": "http://10.99.0.12:2380",
             "--initial-advertise-peer-urls": "http://10.99.0.12:2380",
             "--initial-cluster": _lab_etcd.initial_cluster(nodes),
             "--initial-cluster-token": "flocker-lab-tx",
             "--initial-cluster-state": "new",
            })
        self.assertEqual(argv[-1], "--pre-vote=true")
        self.assertTrue(argv[0].endswith("etcd"))

    def test_client_urls_own_first(self):
        """
        The client URLs list the given node's member first, then the others in
        node order.
        """
        lab = _lab()
        nodes = [lab.node(1), lab.node(2), lab.node(3)]
        self.assertEqual(
            _lab_etcd.client_urls(nodes, first=nodes[2]),
            ["http://10.99.0.13:2379", "http://10.99.0.11:2379",
             "http://10.99.0.12:2379"])
