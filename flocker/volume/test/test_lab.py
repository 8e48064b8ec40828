"""
End-to-end tests of volume moves on the lab (``admin/lab``): real nodes with
their own pools, ``flocker-volume`` run on the nodes (its pushes and
hand-offs done by the node's agent, agent to agent over SSH), and a
container writing the data.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_directory

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


def _receiving_sessions(volume):
    """
    :return: The process ids of the sshd sessions carrying a push of the
        volume: the parents of the peer bridges (``flocker-node-bridge
        --peer``) whose request names it.
    """
    sessions = []
    for pid, argv in _processes():
        if not any(a.endswith(b"flocker-node-bridge") for a in argv[:2]):
            continue
        try:
            with open("/proc/%d/environ" % (pid,), "rb") as f:
                environ = f.read().split(b"\0")
            with open("/proc/%d/status" % (pid,)) as f:
                parent = [int(line.split()[1]) for line in f
                          if line.startswith("PPid:")][0]
        except OSError:
            continue
        if any(entry.startswith(b"SSH_ORIGINAL_COMMAND=")
               and volume.encode() in entry for entry in environ):
            sessions.append(parent)
    return sessions


def _processes():
    """
    :return: ``(pid, command line)`` of the host's processes (all lab
        nodes share its process table), each command line a list of
        ``bytes``.
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % (entry,), "rb") as f:
                    found.append((int(entry), f.read().split(b"\0")))
            except OSError:
                continue
    return found


def _command_lines():
    """
    :return: The command lines of the host's processes, each a list of
        ``bytes``.
    """
    return [argv for _, argv in _processes()]


def _receiving(volume):
    """
    :return: Whether a ``zfs receive`` of the volume (the agent's) still
        runs.
    """
    return any(b"receive" in argv and volume.encode() in argv
               for argv in _command_lines())


# Whether this process installed the lab nodes' trust (see _trusted).
_TRUSTED = []


def _trusted(test, lab):
    """
    Install the lab nodes' node-to-node trust once per process, as an
    operator does: ``flocker-deploy`` of a deployment that runs nothing
    (pushes go agent to agent with the nodes' own keys, checking the host
    keys that deploy verified).

    :param test: The ``TestCase`` (its temporary directory holds the
        files).
    """
    if _TRUSTED:
        return
    directory = temporary_directory(test)
    os.makedirs(directory, exist_ok=True)
    deployment = os.path.join(directory, "deployment.yml")
    with open(deployment, "w") as f:
        f.write("version: 1\nnodes:\n" + "".join(
            "  %s: []\n" % (lab.address(node),) for node in lab.node_names))
    applications = os.path.join(directory, "applications.yml")
    with open(applications, "w") as f:
        f.write("version: 1\napplications: {}\n")
    lab.run_client(["flocker-deploy", "--yes", deployment, applications],
                   timeout=300)
    _TRUSTED.append(True)


class VolumeLabTests(SynchronousTestCase):
    """
    ``flocker-volume`` between lab nodes: moves, a killed push run
    again, an unreachable target, a refused receive.
    """

    def setUp(self):
        _trusted(self, shared_lab())

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
            if move == 0:
                # The first copy goes to a node told to expect it.
                _expect(self, lab, target, volume, source)
            # The new owner acquires with the operator's own key (the lab
            # identity), not the node key: the node key may not acquire.
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
        A push whose connection is cut in the middle of its stream (the
        target's sshd session carrying it killed) fails with one line and
        leaves the target's copy as it was; running the push again
        completes it.
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
            start_new_session=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not _sending(volume) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(_sending(volume), "the push never started sending")
        time.sleep(0.3)
        # zfs-fuse's daemon writes the stream, not the zfs command: the
        # connection is what is cut, as a dying sender's would be.
        sessions = _receiving_sessions(volume)
        self.assertTrue(sessions, "no sshd session carries the push")
        for pid in sessions:
            os.kill(pid, signal.SIGKILL)
        _, error = process.communicate(timeout=120)
        self.assertEqual((process.returncode, error.count(b"\n")), (1, 1),
                         error)
        self.assertTrue(error.startswith(b"flocker-volume: error: "), error)
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
