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

import pytest

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


@pytest.fixture
def victim(lab):
    """
    :return: node3 of the shared lab; revived or healed afterwards if a
        test left it faulted.
    """
    yield lab.machine(VICTIM)
    fault = _lab_faults.fault_of(_model_node())
    if fault == _lab_faults.KILLED:
        assert admin_lab(["revive", VICTIM]).returncode == 0
    elif fault == _lab_faults.PARTITIONED:
        assert admin_lab(["heal", VICTIM]).returncode == 0


def test_kill_then_revive(lab, victim):
    """
    ``kill`` leaves no process of the node and its address unanswered,
    which ``status`` reports (exit 1); ``revive`` boots it: healthy again,
    the agent answers, what its pool held is still there, and Docker
    restarts exactly the containers whose own restart policy says so.
    """
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
        assert killed.returncode == 0, killed.stderr
        assert _lab_host.machine_processes([_model_node()]) == set()
        status = admin_lab(["status"])
        assert status.returncode == 1
        assert "%s %s POWERED OFF" % (VICTIM.ljust(8),
                                      victim.address.ljust(12)) \
            in status.stdout
        assert not _reaches(lab.client, victim.address)

        revived = admin_lab(["revive", VICTIM])
        assert revived.returncode == 0, revived.stderr
        assert admin_lab(["status"]).returncode == 0
        assert _reaches(lab.client, victim.address)
        assert victim.run(["flocker-node", "report"]).returncode == 0
        states = {
            name: victim.run(["docker", "inspect", "--format",
                              "{{.State.Running}}", name]).stdout.strip()
            for name in (kept, dropped)}
        assert states == {kept: "true", dropped: "false"}
        assert (mountpoint / "f.txt").read_text() == \
            "written before the power loss\n"
    finally:
        if _lab_faults.fault_of(_model_node()) is None:
            victim.run(["docker", "rm", "-f", kept, dropped], check=False)
            zfs_destroy(victim, dataset)


def test_partition_then_heal(lab, victim):
    """
    ``partition`` keeps the node running (same dockerd, same agent) while
    nothing reaches it and it reaches nothing; ``heal`` reconnects it with
    its processes untouched.
    """
    before = _lab_host.machine_processes([_model_node()])
    other = lab.machine("node1")
    result = admin_lab(["partition", VICTIM])
    assert result.returncode == 0, result.stderr
    assert "PARTITIONED" in admin_lab(["status"]).stdout
    assert not _reaches(lab.client, victim.address)
    assert not _reaches(victim, other.address)
    # Still running: its own sessions work.
    assert victim.run(["flocker-node", "report"]).returncode == 0
    healed = admin_lab(["heal", VICTIM])
    assert healed.returncode == 0, healed.stderr
    assert _reaches(lab.client, victim.address)
    assert _reaches(victim, other.address)
    assert before <= _lab_host.machine_processes([_model_node()])
    assert admin_lab(["status"]).returncode == 0


@pytest.mark.parametrize("argv, message", [
    (["revive", VICTIM], "node3 is not powered off"),
    (["heal", VICTIM], "node3 is not partitioned"),
    (["kill", "node9"], "no node 'node9' in the lab"),
    (["kill", "client"], "no node 'client' in the lab"),
    (["partition"], "the following arguments are required"),
])
def test_fault_mistakes(lab, victim, argv, message):
    """
    A fault command that makes no sense for the node's state, or names no
    node of the lab, exits 1 with one line and changes nothing.
    """
    before = admin_lab(["status"]).stdout
    result = admin_lab(argv)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
    assert admin_lab(["status"]).stdout == before


def test_twice_is_refused(lab, victim):
    """
    Killing a killed node, or partitioning a partitioned or killed one, is
    refused with one line naming the node's state.
    """
    assert admin_lab(["partition", VICTIM]).returncode == 0
    again = admin_lab(["partition", VICTIM])
    assert again.returncode == 1
    assert "node3 is already partitioned" in again.stderr
    assert admin_lab(["kill", VICTIM]).returncode == 0
    for command in ("kill", "partition"):
        result = admin_lab([command, VICTIM])
        assert result.returncode == 1
        assert "node3 is already powered off" in result.stderr


def test_lab_handle_after_revive(lab, victim):
    """
    A revived node keeps its address and namespaces' paths: the lab's
    description (``lab.json``) still describes it.
    """
    assert admin_lab(["kill", VICTIM]).returncode == 0
    assert admin_lab(["revive", VICTIM]).returncode == 0
    described = Lab.from_description(
        json.loads(Path(lab.state, "lab.json").read_text()))
    assert described.machine(VICTIM) == victim
    assert victim.run(["hostname"]).stdout == VICTIM + "\n"
