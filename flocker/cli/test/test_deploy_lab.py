"""
End-to-end tests of ``flocker-deploy`` on the lab (``admin/lab``): real
nodes with their own Docker, ZFS pool and SSH server, deployed to from the
lab's client namespace only, as an operator would from a laptop.

The tests are one ordered scenario (:class:`DeployScenarioTests`): each step
builds on the cluster the previous steps left, and once a step fails the
later ones are skipped rather than reported as confusing follow-on
failures.  What runs where:

* ``flocker-deploy`` always runs in the client namespace, with the client's
  own ``~/.ssh`` (the lab's identity and known_hosts);
* HTTP checks run ``busybox nc`` in the client namespace, and in a throwaway
  container on a node that hosts neither application;
* data and container checks (``docker exec``/``inspect``, ``flocker-node
  report``) look at the nodes directly, as an operator logged into them.

Application names carry a per-run suffix, so volumes left by an earlier run
on the same lab never meet this one.
"""

import hashlib
import subprocess
import sys
import json
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

from flocker.testtools import (
    ScenarioTestCase, class_temporary_path, http_status_and_body, shared_lab,
)

#: External port of the HTTP application, and of the side application that
#: the unreachable-node step adds.
WEB_PORT = 18080
SIDE_PORT = 18081
#: The port the linked application reaches the HTTP application on, inside
#: its own container.
LOCAL_PORT = 15000
#: An address on the lab's network where no node answers.
NOWHERE = "10.99.0.99"
IMAGE = "flocker/busybox:latest"
#: Seconds allowed for a ``flocker-deploy`` run, and for reaching a node
#: that does not exist (``--timeout``).
DEPLOY_TIMEOUT = 120
UNREACHABLE_TIMEOUT = 2

APPLICATIONS = """\
version: 1
applications:
  {web}:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    ports: [{{internal: 80, external: {web_port}}}]
    volume: {{mountpoint: /data}}
  {client}:
    image: {image}
    command: ["sleep", "100000"]
    links: [{{local_port: {local_port}, remote_port: {web_port}, alias: web}}]
  {side}:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: [{{internal: 80, external: {side_port}}}]
"""

#: The leaves of a dry run's tree, for moving the HTTP application from the
#: first node to the third (names filled in per run).
MOVE_LEAVES = [
    "{n3}: expect {web} from {n1}",
    "{n1}: push volume {web} to {n3} (about ",
    "{n1}: stop application {web}",
    "{n3}: create application {web}'s container (started after the ",
    "{n1}: hand off volume {web} to {n3}",
    "{n1}: delete application {web}'s stopped container (it moved to {n3})",
    "{n3}: start application {web} (image {image})",
    "{n1}: set routes {web_port}->{n3}",
    "{n2}: set routes {web_port}->{n3}",
    "{n3}: remove all routes",
    "{n3}: expect no volume from other nodes",
]

_REQUEST = "GET /index.html HTTP/1.0\r\n\r\n"
_CHANGE_LINE = re.compile(
    r"^(10\.99\.0\.\d+: .*) \((?:[^()]* sent, )?\d+\.\d\d s\)$")


class _Scenario(object):
    """
    The state the steps of :class:`DeployScenarioTests` share.

    :ivar lab: The :class:`flocker.testtools.Lab`.
    :ivar str directory: Where the configuration files are written.
    :ivar dict names: Application names (``web``, ``client``, ``side``).
    :ivar nodes: The three lab machines the scenario uses, ``node1`` first.
    :ivar list addresses: Their addresses.
    :ivar str applications: Path of the application file.
    :ivar first: Path of the first deployment file (HTTP application on
        node1), once written.
    :ivar second: Path of the deployment file moving it to node3, once
        written.
    :ivar dict data: Path in the volume → sha256 of what was written.
    :ivar link_container: :meth:`container` of the linked application
        after the first deploy.
    :ivar bool cleaned: Whether the applications were removed already.
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.directory = directory
        token = secrets.token_hex(3)
        self.names = {"web": "e2eweb-" + token, "client": "e2ecli-" + token,
                      "side": "e2eside-" + token}
        # The scenario needs three nodes; a bigger lab's others stay idle.
        self.nodes = lab.nodes[:3]
        self.addresses = [node.address for node in self.nodes]
        self.data = {}
        self.link_container = None
        self.cleaned = False
        self.first = self.second = None
        self.move_output = ""
        self.applications = self.write("applications.yml", APPLICATIONS.format(
            image=IMAGE, web_port=WEB_PORT, side_port=SIDE_PORT,
            local_port=LOCAL_PORT, **self.names))

    def write(self, name, content):
        """
        Write a configuration file.

        :return: Its path.
        """
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(content)
        return path

    def deployment(self, name, placement):
        """
        Write a deployment file.

        :param str name: The file's name.
        :param list placement: ``(address, [application key, ...])`` pairs,
            keys of :attr:`names`.
        :return: Its path.
        """
        lines = ["version: 1", "nodes:"]
        for address, keys in placement:
            lines.append("  %s: [%s]" % (
                address, ", ".join(self.names[k] for k in keys)))
        return self.write(name, "\n".join(lines) + "\n")

    def clear(self):
        """
        Deploy nothing anywhere if any node runs an application or has
        routes (whatever earlier tests on this lab left), so the steps can
        expect exact changes.

        :raises AssertionError: If that deploy fails.
        """
        if any(report["applications"] or report["routes"]
               for report in self.reports().values()):
            result = _Scenario.deploy(self, "--yes", self.deployment(
                "start.yml", [(a, []) for a in self.addresses]))
            if result.returncode != 0:
                raise AssertionError(result.stdout + result.stderr)

    def deploy(self, *argv, timeout=DEPLOY_TIMEOUT, applications=None):
        """
        Run ``flocker-deploy ARGV... APPLICATIONS`` in the client namespace.

        :param applications: Another application file to give, or
            ``None`` for :attr:`applications`.
        :return: The ``CompletedProcess``.
        """
        return self.lab.run_client(
            ["flocker-deploy"] + list(argv)
            + [applications or self.applications],
            check=False, timeout=timeout)

    def deploy_logs(self):
        """
        :return: ``dict`` of the deploy logs in the client's
            ``~/.flocker/logs`` to their sizes.
        """
        directory = os.path.join(self.lab.client.home, ".flocker", "logs")
        if not os.path.isdir(directory):
            return {}
        return {name: os.path.getsize(os.path.join(directory, name))
                for name in os.listdir(directory)}

    def node(self, index):
        """
        :param int index: 0-based node index.
        :return: That node's name.
        """
        return self.nodes[index].name

    def reports(self):
        """
        :return: ``dict`` of node name to its ``flocker-node report``,
            parsed.
        """
        results = _at_once([(node.run, ["flocker-node", "report"])
                            for node in self.nodes])
        return {node.name: json.loads(result.stdout)
                for node, result in zip(self.nodes, results)}

    def container(self, node, key):
        """
        :param str node: A node name.
        :param str key: An application key of :attr:`names`.
        :return: ``(container id, start time, running)`` of that
            application's container there, or ``None`` if there is none.
        """
        result = self.lab.run(node, [
            "docker", "inspect", "--format",
            "{{.Id}} {{.State.StartedAt}} {{.State.Running}}",
            "flocker--" + self.names[key]], check=False)
        if result.returncode != 0:
            return None
        container_id, started, running = result.stdout.split()
        return container_id, started, running == "true"

    def flocker_containers(self):
        """
        :return: ``dict`` of node name to the sorted names of the
            containers there carrying Flocker's label.
        """
        results = _at_once([
            (node.run, ["docker", "ps", "--all", "--format", "{{.Names}}",
                        "--filter", "label=flocker.application"])
            for node in self.nodes])
        return {node.name: sorted(result.stdout.split())
                for node, result in zip(self.nodes, results)}

    def exec_in(self, node, key, argv, **kwargs):
        """
        Run ``argv`` in an application's container.

        :return: The ``CompletedProcess``.
        """
        return self.lab.run(node, ["docker", "exec", "-i",
                                   "flocker--" + self.names[key]] + argv,
                            **kwargs)

    def get_from_client(self, address, port=WEB_PORT):
        """
        :return: The HTTP response to ``GET /index.html`` sent to
            ``address:port`` from the client namespace (``""`` if none).
        """
        return self.lab.run_client(
            ["busybox", "nc", "-w", "2", address, str(port)],
            input=_REQUEST, check=False, timeout=30).stdout

    def get_from_container(self, node, address, port=WEB_PORT):
        """
        :return: The HTTP response to ``GET /index.html`` sent to
            ``address:port`` from a new container on ``node``.
        """
        return self.lab.run(node, [
            "docker", "run", "--rm", "-i", IMAGE, "nc", "-w", "2", address,
            str(port)], input=_REQUEST, check=False, timeout=60).stdout

    def answers(self, node, port=WEB_PORT):
        """
        Send ``GET /index.html`` to ``port`` of every node, from the client
        namespace and from new containers on ``node``, all at once.

        :return: ``(from client, from containers)``: ``dict`` of node
            address to the ``(status code, body)`` of its answer.
        """
        responses = _at_once(
            [(lambda a: self.get_from_client(a, port), a)
             for a in self.addresses]
            + [(lambda a: self.get_from_container(node, a, port), a)
               for a in self.addresses])
        parsed = [http_status_and_body(r) for r in responses]
        count = len(self.addresses)
        return (dict(zip(self.addresses, parsed[:count])),
                dict(zip(self.addresses, parsed[count:])))

    def checksums(self, node):
        """
        :return: ``dict`` of path to sha256 of the files written to the
            volume, read in the HTTP application's container on ``node``.
        """
        result = self.exec_in(node, "web", ["sha256sum"] + sorted(self.data))
        sums = {}
        for line in result.stdout.splitlines():
            digest, path = line.split()
            sums[path] = digest
        return sums

    def index(self):
        """
        :return: The content written to the volume's ``index.html``.
        """
        return "served from the volume of %s\n" % (self.names["web"],)


def _at_once(calls):
    """
    Make blocking calls concurrently (each runs a command on a lab machine,
    mostly waiting).

    :param calls: ``(function, argument)`` pairs.
    :return: ``list`` of their results, in order.
    """
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = [pool.submit(function, argument)
                   for function, argument in calls]
        return [future.result() for future in futures]


def _changes(output):
    """
    :return: The change lines ``flocker-deploy`` printed as changes
        completed, without their times; node key installs are left out
        (whether a deploy makes them depends on which key earlier runs
        installed; ``test_nodekey_lab`` checks them).
    """
    return [m.group(1) for m in map(_CHANGE_LINE.match, output.splitlines())
            if m and ": install node-to-node SSH trust " not in m.group(1)]


def _remove(state):
    """
    Remove the scenario's applications (if a step failed before the
    clean-up step did it) and delete from every node the volumes this run
    created.
    """
    if not state.cleaned:
        state.deploy("--yes", state.deployment(
            "teardown.yml", [(a, []) for a in state.addresses]))
    # Volumes outlive their applications by design; this run's are litter.
    for node in state.nodes:
        node.run(["flocker-volume", "delete", state.names["web"]],
                 check=False)


class DeployScenarioTests(ScenarioTestCase):
    """
    ``flocker-deploy`` on a three-node lab: deploy, move, no-op, bad input,
    an unreachable node, clean-up.  The steps run in order and share the
    cluster.
    """

    @classmethod
    def setUpClass(cls):
        # The shared state of the scenario (a failed step leaves the
        # cluster in a state the next steps were not written for, so they
        # are skipped).
        lab = shared_lab(minimum_nodes=3)
        state = cls.s = _Scenario(lab, str(class_temporary_path(cls)))
        cls.addClassCleanup(_remove, state)
        state.clear()

    def test_01_deploy(self):
        """
        Deploying an HTTP application with a volume on node1 and an
        application linked to it on node2 creates the volume, starts both
        and routes the HTTP port on the other nodes; exit status 0.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        s.first = s.deployment("first.yml", [
            (n1, ["web"]), (n2, ["client"]), (n3, [])])
        result = s.deploy(s.first)
        web, client = s.names["web"], s.names["client"]
        self.assertEqual(
            (result.returncode, sorted(_changes(result.stdout))),
            (0, sorted([
                 "%s: create volume %s" % (n1, web),
                 "%s: start application %s (image %s)" % (n1, web, IMAGE),
                 "%s: start application %s (image %s)" % (n2, client, IMAGE),
                 "%s: set routes %d->%s" % (n2, WEB_PORT, n1),
                 "%s: set routes %d->%s" % (n3, WEB_PORT, n1),
             ])),
            result.stdout + result.stderr)
        self.assertEqual(
            s.flocker_containers(),
            {s.node(0): ["flocker--" + web], s.node(1): ["flocker--" + client],
             s.node(2): []})

    def test_02_write_data(self):
        """
        Data written into the volume through the application's container
        reads back with the same checksums.
        """
        s = self.s
        blob = os.urandom(1 << 20)
        index = s.index().encode("ascii")
        for path, content in [("/data/index.html", index),
                              ("/data/blob.bin", blob)]:
            s.exec_in(s.node(0), "web", ["dd", "of=" + path, "bs=65536"],
                      input=content, text=False)
            s.data[path] = hashlib.sha256(content).hexdigest()
        self.assertEqual(s.checksums(s.node(0)), s.data)

    def test_03_answers_everywhere(self):
        """
        The application answers with the volume's page on every node's
        port, from the client namespace and from a container on node3
        (which hosts neither application).
        """
        s = self.s
        expected = ("200", s.index())
        self.assertEqual(
            s.answers(s.node(2)),
            ({a: expected for a in s.addresses},
             {a: expected for a in s.addresses}))

    def _check_link(self, node):
        """
        :return: ``(variable, response through the variable's address,
            response through localhost:LOCAL_PORT)`` as the linked
            application on ``node`` sees them.
        """
        s = self.s
        environment = dict(
            line.split("=", 1) for line in
            s.exec_in(node, "client", ["env"]).stdout.splitlines()
            if "=" in line)
        variable = environment.get("WEB_PORT_%d_TCP" % (LOCAL_PORT,))
        via_variable = ""
        if variable is not None:
            address, port = variable[len("tcp://"):].rsplit(":", 1)
            via_variable = s.exec_in(node, "client", [
                "nc", "-w", "2", address, port], input=_REQUEST,
                check=False).stdout
        via_localhost = s.exec_in(node, "client", [
            "nc", "-w", "2", "127.0.0.1", str(LOCAL_PORT)], input=_REQUEST,
            check=False).stdout
        return (variable, http_status_and_body(via_variable),
                http_status_and_body(via_localhost))

    def test_04_link(self):
        """
        The linked application reaches the HTTP application through the
        address in its ``WEB_PORT_<local>_TCP`` variable (its own node's
        address and the remote port) and through localhost:local_port.
        """
        s = self.s
        expected = ("200", s.index())
        self.assertEqual(
            self._check_link(s.node(1)),
            ("tcp://%s:%d" % (s.addresses[1], WEB_PORT), expected, expected))
        s.link_container = s.container(s.node(1), "client")

    def test_05_dry_run_shows_move(self):
        """
        ``--dry-run`` with the deployment moving the HTTP application from
        node1 to node3 prints exactly that move (node3 told to expect the
        volume from node1, pre-copy push, stop, node3 creating the new
        container meanwhile, hand-off, start, node1 deleting the old
        container, routes, node3 expecting nothing once it owns the
        volume) with the bytes to
        send and a downtime estimate, exits 0, and changes no node.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        s.second = s.deployment("second.yml", [
            (n1, []), (n2, ["client"]), (n3, ["web"])])
        before = s.reports()
        result = s.deploy("--dry-run", s.second)
        after = s.reports()
        leaves = [line.strip() for line in result.stdout.splitlines()
                  if re.match(r"^\s+10\.99\.0\.\d+: ", line)]
        expected = [leaf.format(n1=n1, n2=n2, n3=n3, image=IMAGE,
                                web_port=WEB_PORT, web=s.names["web"])
                    for leaf in MOVE_LEAVES]
        matched = [[leaf for leaf in leaves if leaf.startswith(prefix)]
                   for prefix in expected]
        estimate = re.search(
            r"^move of %s from %s to %s: pre-copy sends \d+ bytes while it "
            r"runs; estimated downtime [0-9.]+ s$" % (
                re.escape(s.names["web"]), re.escape(n1), re.escape(n3)),
            result.stdout, re.M)
        self.assertEqual(
            (result.returncode, len(leaves), [len(m) for m in matched],
             estimate is not None,
             "dry run: nothing was changed" in result.stdout,
             _changes(result.stdout)),
            (0, len(expected), [1] * len(expected), True, True, []
            ),
            result.stdout + result.stderr)
        self.assertEqual(after, before)
        self.assertEqual(s.container(s.node(1), "client"), s.link_container)

    def test_06_move(self):
        """
        The real deploy of the moved deployment runs the move and exits 0:
        the HTTP application runs on node3 and no longer on node1.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        result = s.deploy(s.second)
        s.move_output = result.stdout
        web = s.names["web"]
        done = _changes(result.stdout)
        # The push line carries the size sent, which varies; compare the
        # rest exactly.
        pushes = [line for line in done if " push volume " in line]
        self.assertEqual(
            (result.returncode,
             sorted(line for line in done if line not in pushes),
             len(pushes), pushes[0].startswith(
                 "%s: push volume %s to %s" % (n1, web, n3))),
            (0, sorted([
                 "%s: stop application %s" % (n1, web),
                 "%s: create application %s's container (started after "
                 "the hand-off)" % (n3, web),
                 "%s: hand off volume %s to %s" % (n1, web, n3),
                 "%s: start application %s (image %s)" % (n3, web, IMAGE),
                 "%s: delete application %s's stopped container (it "
                 "moved to %s)" % (n1, web, n3),
                 "%s: set routes %d->%s" % (n1, WEB_PORT, n3),
                 "%s: set routes %d->%s" % (n2, WEB_PORT, n3),
                 "%s: remove all routes" % (n3,),
                 "%s: expect %s from %s" % (n3, web, n1),
                 "%s: expect no volume from other nodes" % (n3,),
             ]), 1, True),
            result.stdout + result.stderr)
        self.assertEqual(
            (s.container(s.node(0), "web"),
             s.container(s.node(2), "web")[2]),
            (None, True))

    def test_06b_move_log_one_tree(self):
        """
        The move's log is one eliot tree: the nodes' work (from the old
        node, the new node and the other node) is merged into it, and
        ``eliot-tree`` renders it as a single task.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        [path] = [line[len("log: "):] for line in s.move_output.splitlines()
                  if line.startswith("log: ")]
        with open(path) as f:
            messages = [json.loads(line) for line in f]
        tasks = {}
        for message in messages:
            tasks.setdefault(message["task_uuid"], message)
        self.assertEqual(len(tasks), 1, list(tasks.values()))
        nodes = {m.get("address") for m in messages
                 if m.get("action_type", "").startswith("flocker:node:")}
        self.assertLessEqual({n1, n2, n3}, nodes)
        types = {m.get("action_type") for m in messages}
        self.assertLessEqual(
            {"flocker:node:release_volume", "flocker:node:acquire_volume",
             "flocker:volume:push", "flocker:node:start_application",
             "flocker:route:set_routes"},
            types)
        tree = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "eliot-tree"),
             path], capture_output=True, text=True, timeout=60)
        self.assertEqual(tree.returncode, 0, tree.stderr)
        roots = [line for line in tree.stdout.splitlines()
                 if line and not line[0].isspace()
                 and line[0] not in "└├│"]
        self.assertEqual(len(roots), 1, roots)

    def test_07_data_intact(self):
        """
        Every file written before the move has the same sha256 on node3.
        """
        s = self.s
        self.assertEqual(s.checksums(s.node(2)), s.data)

    def test_08_answers_everywhere_after_move(self):
        """
        After the move the application answers with the volume's page on
        every node's port, from the client namespace and from a container
        on node1 (which now hosts neither application).
        """
        s = self.s
        expected = ("200", s.index())
        self.assertEqual(
            s.answers(s.node(0)),
            ({a: expected for a in s.addresses},
             {a: expected for a in s.addresses}))

    def test_09_link_survives_move(self):
        """
        The linked application was not restarted by the move (same
        container, same start time) and still reaches the HTTP application
        through its variable and through localhost:local_port.
        """
        s = self.s
        expected = ("200", s.index())
        self.assertEqual(
            (s.container(s.node(1), "client"),
             self._check_link(s.node(1))),
            (s.link_container,
             ("tcp://%s:%d" % (s.addresses[1], WEB_PORT), expected, expected)))

    def test_10_second_deploy_is_noop(self):
        """
        Deploying the same files again changes nothing and says the cluster
        is already converged; exit status 0.
        """
        s = self.s
        before = s.reports()
        result = s.deploy(s.second)
        self.assertEqual(
            (result.returncode, _changes(result.stdout),
             "cluster already converged: no changes" in result.stdout,
             s.reports()),
            (0, [], True, before),
            result.stdout + result.stderr)

    def test_10b_status(self):
        """
        ``--status`` shows each application where it runs, running, with
        its ports, volume owner and links, and no drift; it changes
        nothing and exits 0.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        before = s.reports()
        result = s.deploy("--status", s.second)
        rows = {line.split()[0]: line.split() for line in
                result.stdout.splitlines()[1:] if line.startswith(
                    (s.names["web"], s.names["client"]))}
        web, client = rows[s.names["web"]], rows[s.names["client"]]
        self.assertEqual(
            (result.returncode, web[1:4], web[-1], client[1:3],
             client[-1], s.reports()),
            (0, [n3, "running", "%d->80" % (WEB_PORT,)], "-",
             [n2, "running"], "-", before),
            result.stdout + result.stderr)
        self.assertIn("owned by %s" % (n3,), " ".join(web))

    def test_10c_status_json(self):
        """
        ``--status --json`` prints one JSON document: with the files as
        the cluster runs them it is converged (exit 0); with a deployment
        placing the side application, which runs nowhere, that row is
        missing and the status exits non-zero.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        ok = s.deploy("--status", "--json", s.second)
        missing = s.deploy("--status", "--json", s.deployment(
            "status-missing.yml", [(n1, ["side"]), (n2, ["client"]),
                                   (n3, ["web"])]))
        documents = [json.loads(result.stdout) for result in (ok, missing)]
        side = [row for row in documents[1]["applications"]
                if row["application"] == s.names["side"]]
        self.assertEqual(
            (ok.returncode, documents[0]["converged"],
             missing.returncode != 0, documents[1]["converged"],
             [(row["state"], row["drift"]) for row in side]),
            (0, True, True, False,
             [("missing", "should run on %s" % (n1,))]),
            ok.stdout + ok.stderr + missing.stdout + missing.stderr)

    def test_10d_logs(self):
        """
        ``--logs`` shows what the linked application's container wrote, from
        the node that runs it, asked from the client; an application that
        runs nowhere gives one line and a non-zero exit.
        """
        s = self.s
        marker = "flocker-logs-" + secrets.token_hex(4)
        # What the container's first process writes is its output.
        s.exec_in(s.node(1), "client",
                  ["sh", "-c", "echo %s > /proc/1/fd/1" % (marker,)])
        result = s.deploy("--logs", s.names["client"], s.second)
        nowhere = s.deploy("--logs", s.names["side"], s.second)
        self.assertEqual(
            (result.returncode, marker in result.stdout.splitlines(),
             nowhere.returncode, len(nowhere.stderr.splitlines()),
             "Traceback" in nowhere.stderr),
            (0, True, 1, 1, False),
            result.stdout + result.stderr + nowhere.stderr)

    def test_10e_missing_image(self):
        """
        Changing the HTTP application's image to a tag no node has (and no
        registry the lab reaches holds) fails before the old container is
        stopped, in a dry run and a deploy: non-zero exit, a line naming
        the node and the image, the same container still running, and the
        application answering on every node's port.
        """
        s = self.s
        n3 = s.addresses[2]
        missing = IMAGE.split(":")[0] + ":no-such-tag"
        path = s.write("missing-image.yml", APPLICATIONS.format(
            image=IMAGE, web_port=WEB_PORT, side_port=SIDE_PORT,
            local_port=LOCAL_PORT, **s.names).replace(
                "  %s:\n    image: %s\n" % (s.names["web"], IMAGE),
                "  %s:\n    image: %s\n" % (s.names["web"], missing)))
        before = s.container(s.node(2), "web")
        for argv in (["--dry-run"], []):
            result = s.deploy(*(argv + [s.second]), applications=path)
            output = result.stdout + result.stderr
            naming = [line for line in output.splitlines()
                      if line.startswith(n3 + ": ") and missing in line]
            self.assertEqual(
                (result.returncode != 0, len(naming),
                 _changes(result.stdout), "Traceback" in output),
                (True, 1, [], False),
                output)
        expected = ("200", s.index())
        self.assertEqual(
            (s.container(s.node(2), "web"), s.answers(s.node(0))[0]),
            (before, {a: expected for a in s.addresses}))

    def test_11_bad_configuration(self):
        """
        A deployment naming an application the application file does not
        define gives one ``PATH:LINE:COL: message`` line naming it, exit
        status 1, no traceback; no deploy begins (no new eliot log) and no
        node changes.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        path = s.write("bad.yml", (
            "version: 1\n"
            "nodes:\n"
            "  %s: []\n"
            "  %s: [%s]\n"
            "  %s: [%s, nosuchapp]\n") % (
                n1, n2, s.names["client"], n3, s.names["web"]))
        before = s.reports()
        logs = s.deploy_logs()
        result = s.deploy(path)
        lines = result.stderr.splitlines()
        self.assertEqual(
            (result.returncode, len(lines), result.stdout,
             "Traceback" in result.stderr),
            (1, 1, "", False),
            result.stdout + result.stderr)
        self.assertTrue(
            re.match(r"^%s:5:\d+: .*nosuchapp" % (re.escape(path),),
                     lines[0]),
            lines[0])
        # No deploy began (each writes an eliot log), and no node changed.
        self.assertEqual((s.deploy_logs(), s.reports()), (logs, before))

    def test_12_unreachable_node(self):
        """
        A deployment that adds an address where no node answers, and places
        the side application there, changes nothing: non-zero exit, one
        line naming that node, why (no answer within ``--timeout``) and
        what to check, no traceback; no node's report changed (no route
        points at the missing node) and the HTTP application still answers
        on every node's port.  ``--dry-run`` says the same.  (Whether the
        lab answers "no route to host" or nothing at all depends on its ARP
        timing: either is said in words.)
        """
        s = self.s
        n1, n2, n3 = s.addresses
        path = s.deployment("unreachable.yml", [
            (n1, []), (n2, ["client"]), (n3, ["web"]), (NOWHERE, ["side"])])
        before = s.reports()
        reasons = ("no answer on port 22 within %d s" % (UNREACHABLE_TIMEOUT,),
                   "cannot connect to port 22: no route to host")
        for argv in (["--dry-run"], []):
            result = s.deploy("--timeout", str(UNREACHABLE_TIMEOUT),
                              *(argv + [path]))
            output = result.stdout + result.stderr
            naming = [line for line in output.splitlines()
                      if NOWHERE in line]
            self.assertEqual(
                (result.returncode != 0, len(naming),
                 bool(naming) and any(r in naming[0] for r in reasons)
                 and "check the address" in naming[0],
                 "Traceback" in output, _changes(result.stdout)),
                (True, 1, True, False, []),
                output)
        expected = ("200", s.index())
        self.assertEqual(
            (s.reports(), s.answers(s.node(0))[0]),
            (before, {a: expected for a in s.addresses}))

    def test_13_clean_up(self):
        """
        Deploying a deployment with no applications removes every
        application this scenario started, but only with ``--yes``: without
        it (and no terminal to ask on) the deploy lists the removals,
        changes nothing and exits non-zero; with it every application is
        stopped and removed, and the HTTP application's volume stays on its
        node.
        """
        s = self.s
        path = s.deployment("empty.yml", [(a, []) for a in s.addresses])
        before = s.flocker_containers()
        refused = s.deploy(path)
        listed = [line for line in refused.stdout.splitlines()
                  if line.endswith("(not in the files: removed)")]
        self.assertEqual(
            (refused.returncode != 0, len(listed), _changes(
                refused.stdout), s.flocker_containers()),
            (True, 2, [], before),
            refused.stdout + refused.stderr)
        result = s.deploy("--yes", path)
        s.cleaned = result.returncode == 0
        volumes = {v["name"] for v in s.reports()[s.node(2)]["volumes"]}
        self.assertEqual(
            (result.returncode, s.flocker_containers(),
             s.names["web"] in volumes),
            (0, {node.name: [] for node in s.nodes}, True),
            result.stdout + result.stderr)

    def test_14_stale_copy_not_adopted(self):
        """
        A volume whose current (owner's) copy was deleted is not silently
        replaced by the older copy left on the node it moved from: the
        deploy changes nothing, names that copy's node and snapshot and
        ``--adopt-copy``; with ``--adopt-copy`` it is taken over, and the
        application serves the older data.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        web = s.names["web"]
        result = s.deploy(s.second)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        s.exec_in(s.node(2), "web", ["sh", "-c", "echo newer > /data/newer"])
        result = s.deploy("--yes", s.deployment(
            "stop.yml", [(a, []) for a in s.addresses]))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        s.nodes[2].run(["flocker-volume", "delete", web])
        result = s.deploy(s.second)
        output = result.stdout + result.stderr
        reports = s.reports()
        copy = {v["name"]: v for v in reports[s.node(0)]["volumes"]}[web]
        self.assertEqual(
            (result.returncode != 0, _changes(result.stdout),
             "--adopt-copy %s" % (web,) in output,
             "the newest copy left is on %s" % (n1,) in output,
             copy["owned"], s.container(s.node(2), "web")),
            (True, [], True, True, False, None),
            output)
        result = s.deploy("--adopt-copy", web, s.second)
        self.assertEqual(
            (result.returncode,
             "%s: adopt the older copy of volume %s" % (n1, web)
             in result.stdout,
             s.exec_in(s.node(2), "web", ["ls", "/data"]).stdout.split()
             ),
            (0, True, sorted(p.rsplit("/", 1)[1] for p in s.data)
             ),
            result.stdout + result.stderr)
        s.deploy("--yes", s.deployment("empty-again.yml",
                                       [(a, []) for a in s.addresses]))

    def test_15_remove_with_volumes(self):
        """
        ``--remove APP --with-volumes`` without ``--yes`` lists what it
        would destroy and changes nothing; with ``--yes`` the application's
        container, every copy of its volume and its routes are gone from
        every node, and the other application still runs.
        """
        s = self.s
        web = s.names["web"]
        result = s.deploy("--yes", s.second)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        refused = s.deploy("--remove", web, "--with-volumes", s.second)
        listed = [line for line in refused.stdout.splitlines()
                  if "delete volume %s" % (web,) in line]
        self.assertEqual(
            (refused.returncode != 0, len(listed) >= 1,
             s.container(s.node(2), "web") is not None),
            (True, True, True),
            refused.stdout + refused.stderr)
        result = s.deploy("--remove", web, "--with-volumes", "--yes",
                          s.second)
        reports = s.reports()
        self.assertEqual(
            (result.returncode,
             [[v["name"] for v in report["volumes"] if v["name"] == web]
              for report in reports.values()],
             [[r for r in report["routes"] if r["port"] == WEB_PORT]
              for report in reports.values()],
             s.container(s.node(2), "web"),
             s.container(s.node(1), "client")[2]),
            (0, [[], [], []], [[], [], []], None, True),
            result.stdout + result.stderr)
        s.deploy("--yes", s.deployment("empty-at-last.yml",
                                       [(a, []) for a in s.addresses]))

    def test_16_projects(self):
        """
        A compose project's application is not another project's to remove:
        after deploying a compose file (``name:``) with the side
        application, deploying the native files with no applications changes
        nothing (no --yes is even asked for) and the side application still
        answers; removing it from its own project's deployment needs
        ``--yes`` and does it.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        project = "e2eproj-" + s.names["side"].rsplit("-", 1)[1]
        compose = s.write("compose.yml", (
            "name: %s\n"
            "services:\n"
            "  %s:\n"
            "    image: %s\n"
            "    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n"
            "    ports: [\"%d:80\"]\n") % (
                project, s.names["side"], IMAGE, SIDE_PORT))
        placed = s.deployment("side.yml", [(n1, ["side"]), (n2, []),
                                           (n3, [])])
        result = s.deploy(placed, applications=compose)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        empty = s.deployment("native-empty.yml", [(a, []) for a in s.addresses])
        native = s.deploy(empty)
        answers = [http_status_and_body(s.get_from_client(a, SIDE_PORT))[0]
                   for a in s.addresses]
        self.assertEqual(
            (native.returncode, "cluster already converged: no changes"
             in native.stdout, answers),
            (0, True, ["200"] * 3),
            native.stdout + native.stderr)
        unplaced = s.deployment("side-gone.yml", [(a, []) for a in
                                                  s.addresses])
        refused = s.deploy(unplaced, applications=compose)
        removed = s.deploy("--yes", unplaced, applications=compose)
        self.assertEqual(
            (refused.returncode != 0, removed.returncode,
             s.container(s.node(0), "side")),
            (True, 0, None),
            refused.stdout + removed.stdout + removed.stderr)

    def test_17_port_held(self):
        """
        A port held on a node by something that is not Flocker's (here a
        container Flocker did not make, publishing it) stops a deploy that
        would route it there, before any change: one line naming the node
        and the port, nothing started, the other container still answers.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        foreign = "fd-foreign-" + secrets.token_hex(3)
        s.lab.run(s.node(1), [
            "docker", "run", "-d", "--name", foreign, "-p",
            "%d:80" % (SIDE_PORT,), IMAGE, "httpd", "-f", "-p", "80", "-h",
            "/www"])
        try:
            result = s.deploy(s.deployment("side-on-1.yml", [
                (n1, ["side"]), (n2, []), (n3, [])]))
            output = result.stdout + result.stderr
            naming = [line for line in output.splitlines() if line.startswith(
                "%s: port %d is held by a listening socket that is not "
                "Flocker's" % (n2, SIDE_PORT))]
            self.assertEqual(
                (result.returncode != 0, len(naming), _changes(
                    result.stdout), s.container(s.node(0), "side"),
                    http_status_and_body(s.get_from_client(n2, SIDE_PORT))[0]
                ),
                (True, 1, [], None, "200"),
                output)
        finally:
            s.lab.run(s.node(1), ["docker", "rm", "-f", foreign],
                      check=False)
