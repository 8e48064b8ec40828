"""
Moves back to a node that holds an earlier copy send only what changed: the
old owner's copy follows the new owner after a hand-off, so the move back
pre-copies an increment into it instead of replacing it (the receive
policy of ``flocker/volume/_policy.py`` only lets a node push into a copy
that follows it).
"""

import re
import secrets

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_path

#: ``push volume`` change lines of flocker-deploy's output: size sent.
_PUSH = re.compile(r"push volume (\S+) to .*\(([0-9.]+) (B|KiB|MiB|GiB) sent,")

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

MiB = 1 << 20

_APPLICATIONS = """\
version: 1
applications:
  {name}:
    image: flocker/busybox:latest
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: [{{internal: 80, external: {port}}}]
    volume: {{mountpoint: /www}}
"""


def _deploy(lab, directory, name, port, here):
    """
    Deploy the application to node ``here`` (an index); the other nodes get
    nothing.

    :return: ``(pushes, output)``: ``(volume, bytes sent, replacing)`` of
        each push the deploy made, and its output.
    """
    deployment = directory / ("deployment-%d.yml" % (here,))
    nodes = ["  %s: [%s]" % (node.address, name if index == here else "")
             for index, node in enumerate(lab.nodes)]
    deployment.write_text("version: 1\nnodes:\n" + "\n".join(nodes) + "\n")
    applications = directory / "applications.yml"
    applications.write_text(_APPLICATIONS.format(name=name, port=port))
    result = lab.run_client(["flocker-deploy", "--yes", str(deployment),
                             str(applications)], check=False, timeout=300)
    if result.returncode != 0:
        raise AssertionError("the deploy failed (%d):\n%s%s" % (
            result.returncode, result.stdout, result.stderr))
    pushes = []
    for line in result.stdout.splitlines():
        found = _PUSH.search(line)
        if found:
            pushes.append((found.group(1),
                           float(found.group(2)) * _UNITS[found.group(3)],
                           "replacing" in line))
    return pushes, result.stdout


def _write(lab, here, name, path, mib):
    """
    Write ``mib`` MiB of random data to ``path`` in the volume on node
    ``here``.
    """
    node = lab.nodes[here].name
    mountpoint = lab.run(node, ["flocker-volume", "mountpoint",
                                name]).stdout.strip()
    lab.run(node, ["dd", "if=/dev/urandom", "of=%s/%s" % (mountpoint, path),
                   "bs=1M", "count=%d" % (mib,)])
    lab.run(node, ["sync"])


class MoveIncrementLabTests(SynchronousTestCase):
    """
    Moving a volume back and forth between lab nodes.
    """

    def test_move_back_sends_increment(self):
        """
        node1 → node2 sends the whole volume; after 1 MiB more, node2 → node1
        pre-copies about that MiB into node1's copy (never replacing it), and
        so does node1 → node2 again.
        """
        lab = shared_lab()
        tmp_path = temporary_path(self)
        name = "inc-" + secrets.token_hex(3)
        port = 18300 + secrets.randbelow(90)
        try:
            _deploy(lab, tmp_path, name, port, 0)
            _write(lab, 0, name, "base", 16)
            first, _ = _deploy(lab, tmp_path, name, port, 1)
            _write(lab, 1, name, "new-1", 1)
            back, _ = _deploy(lab, tmp_path, name, port, 0)
            _write(lab, 0, name, "new-2", 1)
            again, _ = _deploy(lab, tmp_path, name, port, 1)
        finally:
            empty = tmp_path / "empty.yml"
            empty.write_text("version: 1\nnodes:\n" + "\n".join(
                "  %s: []" % (node.address,) for node in lab.nodes) + "\n")
            lab.run_client(["flocker-deploy", "--yes", str(empty),
                            str(tmp_path / "applications.yml")], check=False,
                           timeout=300)
            for node in lab.nodes:
                lab.run(node.name, ["flocker-volume", "delete", name],
                        check=False)
        # The first pre-copy is the whole volume; each move back only what
        # changed (1 MiB, and the file system's own blocks).
        # (flocker-deploy prints sizes rounded to a tenth of a unit.)
        self.assertEqual(
            (first[0][1] >= 15 * MiB,
             [(sent < 4 * MiB, replacing) for _, sent, replacing in back],
             [(sent < 4 * MiB, replacing) for _, sent, replacing in again]
             ),
            (True, [(True, False)], [(True, False)]))
