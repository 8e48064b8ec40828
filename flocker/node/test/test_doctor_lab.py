"""
``flocker-node doctor`` on the lab's nodes (real dockerd, zfs-fuse, sshd,
iptables), and ``flocker-deploy --dry-run`` running it on every node.
"""

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_path

from .._doctor import FAILED, OK


def _doctor(lab, *argv):
    return lab.run(lab.nodes[0].name, ["flocker-node", "doctor"]
                   + list(argv), check=False)


class DoctorLabTests(SynchronousTestCase):
    """
    ``flocker-node doctor`` on a lab node, alone and through
    ``flocker-deploy --dry-run``.
    """

    def test_ready_node(self):
        """
        A lab node passes every blocking check (Docker 20.10, its pool, its
        iptables, its own sshd's settings): exit status 0, one line per check.
        """
        lab = shared_lab()
        result = _doctor(lab)
        lines = result.stdout.splitlines()
        blocking = [line for line in lines if line.startswith(FAILED)
                    and "does not block deploys" not in line]
        self.assertEqual(
            (result.returncode, blocking, result.stderr),
            (0, [], ""),
            result.stdout)
        self.assertEqual(
            [line.split(":")[0] for line in lines if line.startswith(OK)][:4],
            [OK + " docker", OK + " zfs pool", OK + " zfs features",
             OK + " zfs space"],
            result.stdout)

    def test_no_docker(self):
        """
        A node whose Docker socket is missing fails with one line naming the
        socket and the fix, exit status 1, no traceback.
        """
        lab = shared_lab()
        result = _doctor(lab, "--docker-socket", "/run/no-docker-here.sock")
        [line] = [line for line in result.stdout.splitlines()
                  if line.startswith(FAILED + " docker")]
        self.assertEqual(
            (result.returncode, "/run/no-docker-here.sock" in line,
             "-- fix:" in line, "Traceback" in result.stdout + result.stderr
             ),
            (1, True, True, False),
            result.stdout + result.stderr)

    def test_no_pool(self):
        """
        A node without its pool fails with one line naming the pool and how to
        create it.
        """
        lab = shared_lab()
        result = _doctor(lab, "--pool", "no-such-pool")
        [line] = [line for line in result.stdout.splitlines()
                  if line.startswith(FAILED + " zfs pool")]
        self.assertEqual(
            (result.returncode, "zpool create no-such-pool" in line),
            (1, True),
            result.stdout + result.stderr)

    def test_dry_run_runs_doctor(self):
        """
        ``flocker-deploy --dry-run --json`` asks every node for its checks: the
        nodes' failures are listed by node (here, at most the ones that do not
        block, such as no node key yet) and the run converges.
        """
        lab = shared_lab()
        tmp_path = temporary_path(self)
        deployment = tmp_path / "deployment.yml"
        applications = tmp_path / "applications.yml"
        deployment.write_text("version: 1\nnodes:\n" + "".join(
            "  %s: []\n" % (node.address,) for node in lab.nodes))
        applications.write_text("version: 1\napplications: {}\n")
        os.chmod(str(tmp_path), 0o755)
        result = lab.run_client(
            ["flocker-deploy", "--dry-run", "--json", str(deployment),
             str(applications)], check=False, timeout=300)
        document = json.loads(result.stdout)
        lines = [line for node_lines in document["doctor"].values()
                 for line in node_lines]
        self.assertEqual(
            (result.returncode, document["converged"],
             set(document["doctor"]) <= {n.address for n in lab.nodes},
             [line for line in lines
              if "does not block deploys" not in line]),
            (0, True, True, []),
            result.stdout + result.stderr)
