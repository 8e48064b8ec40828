"""
Several volumes per application on the lab (``admin/lab``), deployed with
``flocker-deploy`` from the client namespace: an application with its own
volume, a named volume and a volume it shares with a second application on
its node moves with all of them, from one consistent point; the sharing
application moves with it; an external volume that no node has leaves its
deploy, changing nothing, naming the node; a volume placed on two nodes is
a located error.

The steps are one ordered scenario sharing the cluster, like
``test_deploy_lab``; names carry a per-run suffix.
"""

import hashlib
import os
import re
import secrets

from flocker.testtools import (
    ScenarioTestCase, class_temporary_path, shared_lab,
)

IMAGE = "flocker/busybox:latest"
PORT = 18090
SINGLE_PORT = 18091
DEPLOY_TIMEOUT = 180

APPLICATIONS = """\
version: 1
applications:
  {store}:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: [{{internal: 80, external: {port}}}]
    volume: {{mountpoint: /www}}
    volumes:
      - {{name: {logs}, mountpoint: /logs}}
      - {{name: {shared}, mountpoint: /shared}}
  {reader}:
    image: {image}
    command: ["sleep", "100000"]
    volumes:
      - {{name: {shared}, mountpoint: /shared, read_only: true}}
  {single}:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: [{{internal: 80, external: {single_port}}}]
    volume: {{mountpoint: /www}}
  {outside}:
    image: {image}
    command: ["sleep", "100000"]
    volumes:
      - {{name: {missing}, mountpoint: /data, external: true}}
"""

# A change line of flocker-deploy's output: what, and how long it took.
_CHANGE = re.compile(r"^(10\.99\.0\.\d+): (.*) \((?:[^()]* sent, )?"
                     r"(\d+\.\d\d) s\)$")


class _Scenario(object):
    """
    What the steps share.

    :ivar names: Application and volume names of this run.
    :ivar data: ``(volume key, path in the container)`` → sha256 written.
    :ivar downtime: Application key → seconds its move's stop, hand-offs
        and start took (from the deploy's change lines).
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.directory = directory
        token = secrets.token_hex(3)
        self.names = {key: "%s-%s" % (key, token) for key in (
            "store", "reader", "single", "outside", "logs", "shared",
            "missing")}
        self.nodes = lab.nodes[:3]
        self.addresses = [node.address for node in self.nodes]
        self.data = {}
        self.downtime = {}
        self.applications = self.write("applications.yml", APPLICATIONS.format(
            image=IMAGE, port=PORT, single_port=SINGLE_PORT, **self.names))

    def write(self, name, content):
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(content)
        return path

    def deployment(self, name, placement):
        """
        :param placement: ``(node index, [application key...])`` pairs.
        :return: Path of the deployment file written.
        """
        lines = ["version: 1", "nodes:"]
        for index, address in enumerate(self.addresses):
            keys = dict(placement).get(index, [])
            lines.append("  %s: [%s]" % (
                address, ", ".join(self.names[k] for k in keys)))
        return self.write(name, "\n".join(lines) + "\n")

    def deploy(self, *argv):
        return self.lab.run_client(
            ["flocker-deploy", "--yes"] + list(argv) + [self.applications],
            check=False, timeout=DEPLOY_TIMEOUT)

    def exec_in(self, index, key, argv, **kwargs):
        return self.lab.run(self.nodes[index].name, [
            "docker", "exec", "-i", "flocker--" + self.names[key]] + argv,
            **kwargs)

    def sums(self, index, key, paths):
        result = self.exec_in(index, key, ["sha256sum"] + sorted(paths))
        return {path: digest for digest, path in (
            line.split() for line in result.stdout.splitlines())}


def _remove(state):
    """
    Remove the scenario's applications and delete its volumes.
    """
    state.deploy(state.deployment("teardown.yml", []))
    for node in state.nodes:
        for key in ("store", "single", "logs", "shared"):
            node.run(["flocker-volume", "delete", state.names[key]],
                     check=False)


class SeveralVolumesTests(ScenarioTestCase):
    """
    Several volumes per application, on three real nodes.
    """

    @classmethod
    def setUpClass(cls):
        # The scenario's shared state; its applications are removed and
        # its volumes deleted at the end.
        lab = shared_lab(minimum_nodes=3)
        cls.s = _Scenario(lab, str(class_temporary_path(cls)))
        cls.addClassCleanup(_remove, cls.s)

    def test_01_volume_on_two_nodes_refused(self):
        """
        ``--check`` refuses a volume mounted by applications on two nodes,
        at the second placement, naming both nodes.
        """
        s = self.s
        path = s.deployment("split.yml", [(0, ["store"]), (1, ["reader"])])
        result = s.lab.run_client(
            ["flocker-deploy", "--check", path, s.applications], check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertTrue(
            re.search(
                r"split\.yml:4:\d+: application %s mounts volume %s, which %s "
                r"mounts on node %s" % (s.names["reader"], s.names["shared"],
                                 s.names["store"],
                                 re.escape(s.addresses[0])),
                result.stdout + result.stderr),
            result.stdout + result.stderr)

    def test_02_deploy(self):
        """
        A deploy with an application whose external volume no node has
        changes nothing, naming the volume and the node; without it, the
        applications start on node1 with every volume.
        """
        s = self.s
        result = s.deploy(s.deployment("external.yml", [
            (0, ["store", "reader", "single", "outside"])]))
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(
            "%s: application %s: its external volume %s does not exist "
            "on node %s" % (s.addresses[0], s.names["outside"],
                            s.names["missing"],
                            s.addresses[0]),
            output,
            output)
        self.assertIn("nothing was changed", output, output)
        result = s.deploy(s.deployment("first.yml", [
            (0, ["store", "reader", "single"])]))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        for key in ("store", "reader", "single"):
            self.assertEqual(
                s.exec_in(0, key, ["true"], check=False).returncode, 0)

    def test_03_write(self):
        """
        Data written into each volume of the moving application is seen
        by the application sharing one of them, read-only there.
        """
        s = self.s
        for key, path in (("store", "/www/index.html"),
                          ("logs", "/logs/log"),
                          ("shared", "/shared/data")):
            content = ("%s of %s\n" % (key, s.names["store"])).encode() * 200
            s.exec_in(0, "store", ["sh", "-c", "cat > " + path],
                      input=content.decode())
            s.data[path] = hashlib.sha256(content).hexdigest()
        s.exec_in(0, "single", ["sh", "-c", "echo single > /www/index.html"])
        seen = s.exec_in(0, "reader", ["sha256sum", "/shared/data"])
        self.assertEqual(seen.stdout.split()[0], s.data["/shared/data"])
        refused = s.exec_in(0, "reader", ["sh", "-c", "echo x > /shared/x"],
                            check=False)
        self.assertNotEqual(refused.returncode, 0)

    def test_04_move_together(self):
        """
        Moving the application and its sharer to node2 moves every volume,
        each handed off after the one stop; all data arrives.
        """
        s = self.s
        result = s.deploy(s.deployment("second.yml", [
            (0, ["single"]), (1, ["store", "reader"])]))
        output = result.stdout + result.stderr
        s.downtime["store"] = _downtime(output, s.names["store"],
                                        [s.names["store"], s.names["reader"]])
        handed = {m.group(2).split()[3] for m in map(
            _CHANGE.match, output.splitlines())
            if m and m.group(2).startswith("hand off volume ")}
        self.assertEqual(
            handed,
            {s.names[k] for k in ("store", "logs", "shared")},
            output)
        both = dict(s.sums(1, "store", s.data))
        self.assertEqual(both, s.data, output)
        seen = s.exec_in(1, "reader", ["sha256sum", "/shared/data"])
        self.assertEqual(seen.stdout.split()[0], s.data["/shared/data"])

    def test_05_single_volume_move(self):
        """
        The one-volume application moves too (for the downtime figure
        beside the three-volume one).
        """
        s = self.s
        result = s.deploy(s.deployment("third.yml", [
            (1, ["store", "reader", "single"])]))
        output = result.stdout + result.stderr
        s.downtime["single"] = _downtime(output, s.names["single"],
                                         [s.names["single"]])
        self.assertEqual(
            s.exec_in(1, "single", ["cat", "/www/index.html"]).stdout,
            "single\n")
        print("\nmove downtime (stop + hand-offs + start, seconds): "
              "3 volumes + sharer %.2f, 1 volume %.2f" % (
                  s.downtime["store"], s.downtime["single"]))

    def test_06_second_deploy_is_noop(self):
        """
        Deploying the same files again changes nothing.
        """
        s = self.s
        result = s.deploy(os.path.join(s.directory, "third.yml"))
        output = result.stdout + result.stderr
        self.assertFalse(
            [line for line in output.splitlines()
             if _CHANGE.match(line)],
            output)


def _downtime(output, application, stopped):
    """
    :return: Seconds of the stop of ``stopped``, the hand-offs and the
        start of ``application`` in one deploy's output (the phases run one
        after another; within the stop phase nodes work at once, so the
        longest stop counts).
    """
    stops, handoffs, starts = [], [], []
    for match in map(_CHANGE.match, output.splitlines()):
        if not match:
            continue
        what, seconds = match.group(2), float(match.group(3))
        if any(what == "stop application " + name for name in stopped):
            stops.append(seconds)
        elif what.startswith("hand off volume "):
            handoffs.append(seconds)
        elif what.startswith("start application %s " % (application,)):
            starts.append(seconds)
    if not (stops and starts):
        raise AssertionError("no stop of %s or no start of %s in:\n%s" % (
            ", ".join(stopped), application, output))
    return max(stops) + sum(handoffs) + max(starts)
