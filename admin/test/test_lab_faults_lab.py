"""
Tests for the lab's faults (``admin/lab kill|revive|partition|heal``,
``admin/_lab_faults.py``) on the shared three-node lab.

Each test puts node3 back as it found it (revived, healed) even when it
fails, so the other lab tests find a healthy lab.
"""

import json
import os
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import cases, shared_lab, with_cases

ADMIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ADMIN))

from _lab_client import Lab  # noqa: E402
import _lab_faults  # noqa: E402
import _lab_host  # noqa: E402
import _lab_model  # noqa: E402
from test_lab import admin_lab, unique, zfs_destroy  # noqa: E402

#: The node these tests fault.
VICTIM = "node3"


def _model_node():
    lab = _lab_model.Lab.from_environ(os.environ)
    return lab.node(int(VICTIM[len("node"):]))


def _reaches(source, address):
    """
    :param source: A :class:`_lab_client.LabMachine`.
    :param str address: A node's address.
    :return: ``True`` if an SSH login from ``source`` to ``address`` works
        within a few seconds.
    """
    result = source.run(["ssh", "-o", "ConnectTimeout=3", address, "true"],
                        check=False, timeout=30)
    return result.returncode == 0


def victim_of(test, lab):
    """
    :param test: The ``TestCase`` (its ``addCleanup`` puts node3 back).
    :param lab: The shared lab.
    :return: node3 of the shared lab; revived or healed once ``test`` ends
        if it left it faulted.
    """
    def put_back():
        fault = _lab_faults.fault_of(_model_node())
        if fault == _lab_faults.KILLED:
            command = "revive"
        elif fault == _lab_faults.PARTITIONED:
            command = "heal"
        else:
            return
        result = admin_lab([command, VICTIM])
        if result.returncode != 0:
            raise AssertionError("admin/lab %s %s: %s" % (
                command, VICTIM, result.stderr))
    test.addCleanup(put_back)
    return lab.machine(VICTIM)


@with_cases
class LabFaultsTests(SynchronousTestCase):
    """
    Killing, reviving, cutting off and healing node3 of the shared lab.
    """

    def test_kill_then_revive(self):
        """
        ``kill`` leaves no process of the node and its address unanswered,
        which ``status`` reports (exit 1); ``revive`` boots it: healthy again,
        the agent answers, what its pool held is still there, and Docker
        restarts exactly the containers whose own restart policy says so.
        """
        lab = shared_lab()
        victim = victim_of(self, lab)
        kept, dropped = unique("kept"), unique("dropped")
        dataset = victim.pool + "/" + unique("disk")
        victim.run(["docker", "run", "-d", "--name", kept, "--restart", "always",
                    "flocker/busybox", "sleep", "600"])
        victim.run(["docker", "run", "-d", "--name", dropped, "flocker/busybox",
                    "sleep", "600"])
        victim.run(["zfs", "create", dataset])
        mountpoint = Path(victim.zfs_mount) / dataset.split("/", 1)[1]
        (mountpoint / "f.txt").write_text("written before the power loss\n")
        try:
            killed = admin_lab(["kill", VICTIM])
            self.assertEqual(killed.returncode, 0, killed.stderr)
            self.assertEqual(_lab_host.machine_processes([_model_node()]),
                             set())
            status = admin_lab(["status"])
            self.assertEqual(status.returncode, 1)
            self.assertIn(
                "%s %s POWERED OFF" % (VICTIM.ljust(8),
                                       victim.address.ljust(12)),
                status.stdout)
            self.assertFalse(_reaches(lab.client, victim.address))

            revived = admin_lab(["revive", VICTIM])
            self.assertEqual(revived.returncode, 0, revived.stderr)
            self.assertEqual(admin_lab(["status"]).returncode, 0)
            self.assertTrue(_reaches(lab.client, victim.address))
            self.assertEqual(victim.run(["flocker-node", "report"]).returncode,
                             0)
            states = {
                name: victim.run(["docker", "inspect", "--format",
                                  "{{.State.Running}}", name]).stdout.strip()
                for name in (kept, dropped)}
            self.assertEqual(states, {kept: "true", dropped: "false"})
            self.assertEqual(
                (mountpoint / "f.txt").read_text(),
                "written before the power loss\n")
        finally:
            if _lab_faults.fault_of(_model_node()) is None:
                victim.run(["docker", "rm", "-f", kept, dropped], check=False)
                zfs_destroy(victim, dataset)

    def test_partition_then_heal(self):
        """
        ``partition`` keeps the node running (same dockerd, same agent) while
        nothing reaches it and it reaches nothing; ``heal`` reconnects it with
        its processes untouched.
        """
        lab = shared_lab()
        victim = victim_of(self, lab)
        before = _lab_host.machine_processes([_model_node()])
        other = lab.machine("node1")
        result = admin_lab(["partition", VICTIM])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("PARTITIONED", admin_lab(["status"]).stdout)
        self.assertFalse(_reaches(lab.client, victim.address))
        self.assertFalse(_reaches(victim, other.address))
        # Still running: its own sessions work.
        self.assertEqual(victim.run(["flocker-node", "report"]).returncode, 0)
        healed = admin_lab(["heal", VICTIM])
        self.assertEqual(healed.returncode, 0, healed.stderr)
        self.assertTrue(_reaches(lab.client, victim.address))
        self.assertTrue(_reaches(victim, other.address))
        self.assertLessEqual(before,
                             _lab_host.machine_processes([_model_node()]))
        self.assertEqual(admin_lab(["status"]).returncode, 0)

    @cases([
        (["revive", VICTIM], "node3 is not powered off"),
        (["heal", VICTIM], "node3 is not partitioned"),
        (["kill", "node9"], "no node 'node9' in the lab"),
        (["kill", "client"], "no node 'client' in the lab"),
        (["partition"], "the following arguments are required"),
    ])
    def test_fault_mistakes(self, argv, message):
        """
        A fault command that makes no sense for the node's state, or names no
        node of the lab, exits 1 with one line and changes nothing.
        """
        lab = shared_lab()
        victim = victim_of(self, lab)
        before = admin_lab(["status"]).stdout
        result = admin_lab(argv)
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertIn(message, result.stderr)
        self.assertEqual(admin_lab(["status"]).stdout, before)

    def test_twice_is_refused(self):
        """
        Killing a killed node, or partitioning a partitioned or killed one, is
        refused with one line naming the node's state.
        """
        lab = shared_lab()
        victim = victim_of(self, lab)
        self.assertEqual(admin_lab(["partition", VICTIM]).returncode, 0)
        again = admin_lab(["partition", VICTIM])
        self.assertEqual(again.returncode, 1)
        self.assertIn("node3 is already partitioned", again.stderr)
        self.assertEqual(admin_lab(["kill", VICTIM]).returncode, 0)
        for command in ("kill", "partition"):
            result = admin_lab([command, VICTIM])
            self.assertEqual(result.returncode, 1)
            self.assertIn("node3 is already powered off", result.stderr)

    def test_lab_handle_after_revive(self):
        """
        A revived node keeps its address and namespaces' paths: the lab's
        description (``lab.json``) still describes it.
        """
        lab = shared_lab()
        victim = victim_of(self, lab)
        self.assertEqual(admin_lab(["kill", VICTIM]).returncode, 0)
        self.assertEqual(admin_lab(["revive", VICTIM]).returncode, 0)
        described = Lab.from_description(
            json.loads(Path(lab.state, "lab.json").read_text()))
        self.assertEqual(described.machine(VICTIM), victim)
        self.assertEqual(victim.run(["hostname"]).stdout, VICTIM + "\n")
