"""
End-to-end tests of volume moves on the lab (``admin/lab``): real nodes with
their own pools, ``flocker-volume`` run on the nodes, pushes over SSH
between them, and a container writing the data.
"""

import hashlib
import json
import os
import re
import signal
import time
import uuid
from contextlib import contextmanager

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab

MiB = 1024 * 1024


def _volume(lab, node, *argv, check=True):
    """
    Run ``flocker-volume`` on a lab node.
    """
    return lab.run(node, ["flocker-volume"] + list(argv), check=check,
                   timeout=300)


def _mountpoint(lab, node, name):
    return _volume(lab, node, "mountpoint", name).stdout.strip()


def _digests(directory):
    """
    :return: ``dict`` of file name to sha256 of every file in a directory.
    """
    result = {}
    for entry in sorted(os.listdir(directory)):
        with open(os.path.join(directory, entry), "rb") as f:
            result[entry] = hashlib.sha256(f.read()).hexdigest()
    return result


@contextmanager
def _follower(lab, node, name):
    """
    Mount a node's (unmounted) follower copy while reading it.
    """
    dataset = "%s/%s" % (lab.pool(node), name)
    lab.run(node, ["zfs", "mount", dataset])
    try:
        yield _mountpoint(lab, node, name)
    finally:
        for attempt in range(20):
            if lab.run(node, ["zfs", "unmount", dataset],
                       check=False).returncode == 0:
                break
            time.sleep(0.25)


def _owned(lab, node, name):
    for line in _volume(lab, node, "list").stdout.splitlines()[1:-1]:
        fields = line.split()
        if fields[0] == name:
            return fields[1:3] == ["this", "node"]
    return None


_SENT = re.compile(r": (full stream|incremental from \S+), ([0-9.]+ \S+) in ")


def _sent(output):
    """
    :return: ``(incremental, size text)`` from a push/handoff summary.
    """
    match = _SENT.search(output)
    if match is None:
        raise AssertionError("no push summary in %r" % (output,))
    return match.group(1) != "full stream", match.group(2)


def fresh_volume(test, lab):
    """
    :return: A fresh volume name, deleted from every node once ``test``
        ends.
    """
    name = "labtest-" + uuid.uuid4().hex[:8]

    def delete():
        for node in lab.node_names:
            _volume(lab, node, "delete", name, check=False)
    test.addCleanup(delete)
    return name


def _expect(test, lab, target, volume, source):
    """
    Make node ``target`` expect ``volume``'s first copy from node
    ``source`` (``flocker-node expect``), as a deploy would before a move
    (a push by hand uses the node's own key), until ``test`` ends.
    """
    report = json.loads(lab.run(source, ["flocker-node", "report"]).stdout)
    lab.run(target, ["flocker-node", "expect", volume, report["node_id"]])
    test.addCleanup(lab.run, target, ["flocker-node", "expect", volume],
                    check=False)


def _write_from_container(lab, node, mountpoint, script):
    lab.run(node, ["docker", "run", "--rm", "-v", mountpoint + ":/data",
                   "flocker/busybox:latest", "sh", "-c", script],
            timeout=120)


def _sending(volume):
    """
    :return: Whether a ``zfs send`` of the volume runs (the push may run in
        a warm server's child, not under the command started).
    """
    return any(argv[:2] == [b"zfs", b"send"]
               and any(volume.encode() in a for a in argv[2:])
               for argv in _command_lines())


def _command_lines():
    """
    :return: The command lines of the host's processes (all lab nodes share
        its process table), each a list of ``bytes``.
    """
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % (entry,), "rb") as f:
                    lines.append(f.read().split(b"\0"))
            except OSError:
                continue
    return lines


def _receiving(volume):
    """
    :return: Whether a ``flocker-volume receive`` of the volume still runs.
    """
    return any(b"receive" in argv and volume.encode() in argv
               for argv in _command_lines())


class VolumeLabTests(SynchronousTestCase):
    """
    ``flocker-volume`` between lab nodes: moves, a killed push run
    again, an unreachable target, a refused receive.
    """

    def test_moves(self):
        """
        A volume written from a container on node1 moves to node2 and back
        twice; every file is identical after each move, the new owner is the
        only one owning it, and moves after the first send only increments.
        """
        lab = shared_lab()
        volume = fresh_volume(self, lab)
        nodes = ["node1", "node2"]
        _volume(lab, "node1", "create", volume)
        mountpoint = _mountpoint(lab, "node1", volume)
        _write_from_container(
            lab, "node1", mountpoint,
            "head -c 20000000 /dev/urandom > /data/big; echo hello > /data/note")
        expected = _digests(mountpoint)
        self.assertEqual(set(expected), {"big", "note"})
        sizes = []
        for move in range(4):
            source, target = nodes[move % 2], nodes[(move + 1) % 2]
            # The application writes a little before each move.
            _write_from_container(
                lab, source, _mountpoint(lab, source, volume),
                "echo move %d >> /data/note" % (move,))
            expected = _digests(_mountpoint(lab, source, volume))
            # With the operator's own key (the lab identity), not the node key
            # a deploy may have installed: the node key may not acquire.
            identity = os.path.join(lab.machine(source).home, ".ssh",
                                    "id_ed25519")
            result = _volume(lab, source, "--ssh-identity", identity, "handoff",
                             volume, lab.address(target))
            sizes.append(_sent(result.stdout))
            self.assertEqual(_digests(_mountpoint(lab, target, volume)),
                             expected)
            self.assertIs(_owned(lab, target, volume), True)
            self.assertIs(_owned(lab, source, volume), False)
        self.assertIs(sizes[0][0], False)
        for incremental, size in sizes[1:]:
            self.assertTrue(incremental, sizes)
            self.assertTrue(
                not size.endswith("MiB") or float(size.split()[0]) < 1, sizes)

    def test_killed_push_rerun(self):
        """
        Killing a push in the middle of its stream leaves the target's copy as
        it was; running the push again completes it.
        """
        lab = shared_lab()
        volume = fresh_volume(self, lab)
        _volume(lab, "node1", "create", volume)
        source = _mountpoint(lab, "node1", volume)
        with open(os.path.join(source, "data"), "wb") as f:
            f.write(b"first version")
        _expect(self, lab, "node2", volume, "node1")
        _volume(lab, "node1", "push", volume, lab.address("node2"))
        with _follower(lab, "node2", volume) as copy:
            before = _digests(copy)
        with open(os.path.join(source, "data"), "wb") as f:
            f.write(os.urandom(300 * MiB))
        process = lab.machine("node1").popen(
            ["flocker-volume", "push", volume, lab.address("node2")],
            start_new_session=True)
        deadline = time.monotonic() + 60
        while not _sending(volume) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(_sending(volume), "the push never started sending")
        time.sleep(0.3)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        self.assertEqual(process.returncode, -signal.SIGKILL)
        # The receiving end notices the cut stream, fails, and exits.
        deadline = time.monotonic() + 60
        while _receiving(volume) and time.monotonic() < deadline:
            time.sleep(0.1)
        with _follower(lab, "node2", volume) as copy:
            self.assertEqual(_digests(copy), before)
        result = _volume(lab, "node1", "push", volume, lab.address("node2"))
        self.assertTrue(_sent(result.stdout)[0])
        # zfs-fuse has no resumable receive: the increment was sent again
        # whole; the follower holds the snapshot it received (its next base),
        # and only that one of the newest snapshots it keeps.
        self.assertNotIn("resuming", result.stdout)
        holds = lab.run("node2", [
            "zfs", "get", "-H", "-p", "-r", "-o", "name,value", "userrefs",
            "%s/%s" % (lab.pool("node2"), volume)]).stdout.splitlines()
        self.assertEqual([line.split("\t")[1] for line in holds
                          if "@" in line.split("\t")[0]
                          and line.split("\t")[1] != "0"], ["1"])
        with _follower(lab, "node2", volume) as copy:
            self.assertEqual(_digests(copy), _digests(source))

    def test_unreachable_target(self):
        """
        Pushing to an address where no node answers fails with one line and
        exit code 1; the volume stays owned here.
        """
        lab = shared_lab()
        volume = fresh_volume(self, lab)
        _volume(lab, "node1", "create", volume)
        result = _volume(lab, "node1", "push", volume, "10.99.0.99", check=False)
        self.assertEqual(result.returncode, 1)
        self.assertTrue(
            result.stderr.startswith(
                "flocker-volume: error: cannot reach node 10.99.0.99"))
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertIs(_owned(lab, "node1", volume), True)

    def test_receive_owned_refused(self):
        """
        A push to a node that owns a volume of that name is refused there, and
        that node's data stays.
        """
        lab = shared_lab()
        volume = fresh_volume(self, lab)
        _volume(lab, "node1", "create", volume)
        _volume(lab, "node2", "create", volume)
        target = _mountpoint(lab, "node2", volume)
        with open(os.path.join(target, "mine"), "wb") as f:
            f.write(b"node2's own data")
        result = _volume(lab, "node1", "push", volume, lab.address("node2"),
                         check=False)
        self.assertEqual(result.returncode, 1)
        self.assertIn("owned by this node", result.stderr)
        with open(os.path.join(target, "mine"), "rb") as f:
            self.assertEqual(f.read(), b"node2's own data")
