"""
Automatic failover on the lab when etcd loses its majority: with two of
the three members down, nothing fails over and nothing starts, and the
running application stops itself once its lease can no longer be renewed
(see docs/etcd.rst, "When etcd's majority is lost").
"""

import os
import secrets
import sys
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from ...etcd import DEFAULT_TIMING
from ...testtools import shared_lab

_ADMIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "admin")
if _ADMIN not in sys.path:
    sys.path.insert(0, _ADMIN)

from _lab_automatic import (  # noqa: E402
    application_text, deployment_text, kill_etcd_member,
    remove_application, restart_daemons, running_on,
)

PORT = 18100

#: Seconds the nodes are watched with the majority lost: three leases'
#: times to live, well past the holder's fence (7 s) and the lease's end.
WATCH = 3 * DEFAULT_TIMING.ttl

DEPLOY_TIMEOUT = 300


class MajorityLostTests(SynchronousTestCase):
    """
    Two of three etcd members down on three real nodes.
    """

    def setUp(self):
        self.lab = shared_lab()
        self.name = "majority-%s" % (secrets.token_hex(3),)
        self.nodes = self.lab.node_names[:3]
        addresses = [self.lab.address(node) for node in self.nodes]
        directory = tempfile.mkdtemp(prefix="flocker-majority-")
        self.applications = os.path.join(directory, "applications.yml")
        with open(self.applications, "w") as f:
            f.write(application_text(self.name, PORT))
        self.deployment = os.path.join(directory, "deployment.yml")
        with open(self.deployment, "w") as f:
            f.write(deployment_text(self.name, addresses[0], addresses[1:],
                                    addresses))
        self.addCleanup(self._clean)

    def _clean(self):
        restart_daemons(self.lab)
        remove_application(self.lab, self.name, self.nodes)

    def deploy(self):
        return self.lab.run_client(
            ["flocker-deploy", "--yes", self.deployment, self.applications],
            check=False, timeout=DEPLOY_TIMEOUT)

    def test_majority_lost(self):
        """
        With the members of both standbys killed, sampled every second for
        three lease times to live: no standby ever runs the application,
        and its node has stopped it by the end (its lease could not be
        renewed).  A deploy then fails without starting it anywhere.
        """
        result = self.deploy()
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertEqual([self.nodes[0]],
                         running_on(self.lab, self.name, self.nodes))
        for node in self.nodes[1:]:
            kill_etcd_member(self.lab, node)
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < WATCH:
            where = running_on(self.lab, self.name, self.nodes)
            samples.append((round(time.monotonic() - started, 1), where))
            self.assertIn(where, ([], [self.nodes[0]]), samples)
            time.sleep(1)
        self.assertEqual([], samples[-1][1], samples)
        again = self.deploy()
        self.assertNotEqual(0, again.returncode, again.stdout + again.stderr)
        self.assertEqual([], running_on(self.lab, self.name, self.nodes))
