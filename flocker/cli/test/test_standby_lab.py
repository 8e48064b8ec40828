"""
Standby copies on the lab (``admin/lab``): real agents replicating a real
ZFS volume to two standby nodes, the copies never mounted nor served, the
lag in ``--status`` and on the agent's metrics page (on 127.0.0.1 only),
and a planned move to a standby sending only what changed since its last
copy.  ``flocker-deploy`` runs in the client namespace, as an operator's.
"""

import json
import os
import re
import secrets
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_path

IMAGE = "flocker/busybox:latest"
PORT = 18095
METRICS_PORT = 9570
#: Seconds a bounded wait lasts at most (a few replication rounds on a
#: busy machine).
PATIENCE = 90
#: Bytes of random data written before the move; the move may send only a
#: small part of it.
WRITTEN = 4 * 1024 * 1024

APPLICATIONS = """\
version: 1
applications:
  {name}:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    ports: [{{internal: 80, external: {port}}}]
    volume: {{mountpoint: /data}}
"""

_SENT = re.compile(r": (?:push|hand off) volume (\S+) to (\S+) \(.*?"
                   r"([0-9.]+) (B|KiB|MiB|GiB) sent")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}


def _sent(output, name):
    """
    :return: ``list`` of the bytes (approximately, as printed) each push or
        hand-off of volume ``name`` sent, from ``flocker-deploy``'s output.
    """
    return [float(number) * _UNITS[unit]
            for volume, _, number, unit in _SENT.findall(output)
            if volume == name]


class _Standbys(object):
    """
    The files and helpers of the scenario.
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.directory = directory
        self.name = "sb-" + secrets.token_hex(3)
        self.nodes = lab.nodes[:3]
        self.addresses = [node.address for node in self.nodes]
        self.applications = self.write("applications.yml", APPLICATIONS.format(
            name=self.name, image=IMAGE, port=PORT))

    def write(self, filename, text):
        path = "%s/%s" % (self.directory, filename)
        with open(path, "w") as f:
            f.write(text)
        return path

    def deployment(self, filename, primary, standbys):
        """
        :return: The path of a deployment file placing the application on
            node ``primary`` (an index) with standbys ``standbys``
            (indexes), or nowhere when ``primary`` is ``None``.
        """
        lines = ["version: 1", "nodes:"]
        for index, address in enumerate(self.addresses):
            lines.append("  %s: [%s]" % (
                address, self.name if index == primary else ""))
        if standbys:
            lines += ["standby:", "  %s: {nodes: [%s], every: 1s}" % (
                self.name, ", ".join(self.addresses[i] for i in standbys))]
        return self.write(filename, "\n".join(lines) + "\n")

    def deploy(self, *argv):
        result = self.lab.run_client(
            ["flocker-deploy"] + list(argv) + [self.applications],
            check=False, timeout=180)
        return result

    def report(self, index):
        """
        :return: ``flocker-node report`` of node ``index``, parsed.
        """
        return json.loads(self.nodes[index].run(
            ["flocker-node", "report"]).stdout)

    def standbys(self, index):
        """
        :return: ``dict`` of standby address to its status as node
            ``index`` reports it (empty when it replicates nothing).
        """
        for status in self.report(index).get("replication", ()):
            if status["replication"]["volume"] == self.name:
                return {item["address"]: item
                        for item in status["standbys"]}
        return {}

    def wait_for(self, index, done, what):
        """
        Poll node ``index``'s standbys until ``done(standbys)`` holds, at
        most :data:`PATIENCE` seconds.

        :return: The standbys that satisfied it.
        """
        deadline = time.monotonic() + PATIENCE
        while True:
            standbys = self.standbys(index)
            if done(standbys):
                return standbys
            if time.monotonic() >= deadline:
                raise AssertionError("no %s within %d s: %r" % (
                    what, PATIENCE, standbys))
            time.sleep(0.5)

    def exec_in(self, index, argv):
        return self.nodes[index].run(["docker", "exec", "flocker--"
                                      + self.name] + argv)

    def checksums(self, index):
        return self.exec_in(index, ["sha256sum", "/data/random",
                                    "/data/index.html"]).stdout


def _admin_lab(*argv):
    """
    Run ``admin/lab ARGV`` on the lab the tests use (its prefix and state
    from the environment, as :func:`flocker.testtools.shared_lab`'s).
    """
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))), "admin", "lab")
    result = subprocess.run([sys.executable, script] + list(argv),
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError("admin/lab %s failed (%d):\n%s%s" % (
            " ".join(argv), result.returncode, result.stdout, result.stderr))


def standbys_for(test):
    """
    :param test: The ``TestCase`` (its ``addCleanup`` removes what the
        scenario made).
    :return: The scenario's state, on the shared lab; once ``test`` ends
        its application is removed and its volume deleted from every node.
    """
    state = _Standbys(shared_lab(), str(temporary_path(test)))

    def remove():
        state.deploy("--yes", state.deployment("gone.yml", None, []))
        state.deploy("--yes", "--remove", state.name, "--with-volumes",
                     state.deployment("gone2.yml", None, []))
    test.addCleanup(remove)
    return state


class StandbyLabTests(SynchronousTestCase):
    """
    Standbys on the lab: replication, a move to a standby, a cut-off
    standby resuming.
    """

    def test_replicate_then_move_to_standby(self):
        """
        A volume with two standbys is copied to both, read-only and unmounted,
        with their lag in ``--status`` and on the metrics page (on 127.0.0.1
        only); moving the application to one standby sends only what changed
        since its last copy, keeps every byte, and the other standby follows
        the new owner, which goes on replicating to it incrementally.
        """
        standbys = standbys_for(self)
        s = standbys
        n1, n2, n3 = s.addresses
        first = s.deployment("first.yml", 0, [1, 2])
        result = s.deploy("--yes", first)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        s.exec_in(0, ["sh", "-c", "dd if=/dev/urandom of=/data/random bs=64k "
                      "count=64 2>/dev/null && echo standby > /data/index.html "
                      "&& sync"])
        written = s.checksums(0)
        s.wait_for(0, lambda found: len(found) == 2 and all(
            item["bytes_sent"] >= WRITTEN and item["error"] is None
            for item in found.values()), "both standbys receive the data")

        # The copies: not owned, read-only, unmounted, no container.
        owner = s.report(0)["node_id"]
        for index in (1, 2):
            node = s.nodes[index]
            pool = node.run(["sh", "-c", "echo $FLOCKER_POOL"]).stdout.strip()
            props = node.run(["zfs", "get", "-H", "-o", "value",
                              "mounted,readonly,flocker:owner",
                              "%s/%s" % (pool, s.name)]).stdout.split()
            self.assertEqual(props, ["no", "on", owner])
            self.assertEqual(
                node.run(["docker", "ps", "-a", "-q", "--filter",
                          "name=flocker--" + s.name]).stdout.strip(),
                "")

        # --status: a row per standby, converged.
        status = s.deploy("--status", "--json", first)
        document = json.loads(status.stdout)
        self.assertEqual(
            (status.returncode, document["converged"],
             sorted((row["standby"], row["problem"])
                    for row in document["standbys"])),
            (0, True, [(n2, None), (n3, None)]),
            status.stdout + status.stderr)

        # The metrics page, on the primary's 127.0.0.1 only.
        request = "GET /metrics HTTP/1.0\r\n\r\n"
        page = s.nodes[0].run(["busybox", "nc", "-w", "5", "127.0.0.1",
                               str(METRICS_PORT)], input=request).stdout
        for address in (n2, n3):
            self.assertTrue(
                re.search(r'flocker_replication_lag_seconds\{application='
                          r'"%s",volume="%s",standby="%s"\} [0-9.]+\n' % (
                              s.name, s.name, re.escape(address)), page),
                page)
        outside = s.lab.run_client(["busybox", "nc", "-w", "5", n1,
                                    str(METRICS_PORT)], input=request,
                                   check=False)
        self.assertNotIn("flocker_replication", outside.stdout)

        # A little more, replicated; then the planned move to node2.
        s.exec_in(0, ["sh", "-c", "echo more >> /data/index.html && sync"])
        written = s.checksums(0)
        before = {address: item["bytes_sent"]
                  for address, item in s.standbys(0).items()}
        s.wait_for(0, lambda found: all(
            found[a]["bytes_sent"] > before[a] for a in (n2, n3)),
            "a round after the last write")
        move = s.deploy("--yes", s.deployment("second.yml", 1, [0, 2]))
        self.assertEqual(move.returncode, 0, move.stdout + move.stderr)
        moved = [b for line in move.stdout.splitlines()
                 if "to %s " % (n2,) in line for b in _sent(line, s.name)]
        self.assertTrue(moved and sum(moved) < WRITTEN / 4, move.stdout)
        self.assertEqual(s.checksums(1), written)

        # The new owner replicates to both: node3's copy, which followed
        # node1, follows node2 now, and gets increments only (no whole
        # volume again).
        found = s.wait_for(1, lambda found: len(found) == 2 and all(
            item["snapshot"] is not None and item["error"] is None
            for item in found.values()), "the new owner's standbys catch up")
        self.assertEqual(sorted(found), [n1, n3])
        self.assertLess(found[n3]["bytes_sent"], WRITTEN / 4, found)
        self.assertEqual(s.standbys(0), {})
        self.assertTrue(
            [line for line in move.stdout.splitlines()
             if "follow volume %s" % (s.name,) in line
             and line.startswith(n3)], move.stdout)
        self.assertFalse(
            [line for line in move.stdout.splitlines()
             if "replacing its copy" in line], move.stdout)

    def test_cut_off_standby_resumes(self):
        """
        A standby cut off from the network (``admin/lab partition``) shows its
        failure while the other standby goes on; once healed, it catches up
        with an increment from the last snapshot both have, not the whole
        volume again.
        """
        standbys = standbys_for(self)
        s = standbys
        n1, n2, n3 = s.addresses
        result = s.deploy("--yes", s.deployment("first.yml", 0, [1, 2]))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        s.exec_in(0, ["sh", "-c", "dd if=/dev/urandom of=/data/random bs=64k "
                      "count=64 2>/dev/null && sync"])
        s.wait_for(0, lambda found: len(found) == 2 and all(
            item["bytes_sent"] >= WRITTEN and item["error"] is None
            for item in found.values()), "both standbys receive the data")
        _admin_lab("partition", s.nodes[2].name)
        try:
            s.exec_in(0, ["sh", "-c", "dd if=/dev/urandom of=/data/more bs=64k "
                          "count=4 2>/dev/null && sync"])
            cut = s.wait_for(0, lambda found: found[n3]["error"] is not None,
                             "the cut-off standby's failure is reported")
            status = s.deploy("--status", "--json", s.deployment(
                "first.yml", 0, [1, 2]))
            problems = {row["standby"]: row["problem"]
                        for row in json.loads(status.stdout)["standbys"]}
            self.assertTrue(
                status.returncode == 1 and problems[n3] and not problems[n2])
        finally:
            _admin_lab("heal", s.nodes[2].name)
        healed = s.wait_for(0, lambda found: found[n3]["error"] is None and (
            found[n3]["snapshot"] != cut[n3]["snapshot"]),
            "the healed standby catches up")
        self.assertLess(healed[n3]["bytes_sent"] - cut[n3]["bytes_sent"],
                        WRITTEN / 2)
