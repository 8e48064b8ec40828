"""
Tests for ``admin/lab`` (``admin/_lab.py``): the local multi-node lab.

Most tests use the shared lab (three nodes, see
:func:`flocker.testtools.shared_lab`).  The tests of a whole ``up``/``down`` cycle
bring up their own one-node lab under another prefix and state directory, so
they neither disturb nor depend on the shared one.
"""

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import (
    cases, require, shared_lab, temporary_path, with_cases,
)

ADMIN = Path(__file__).resolve().parent.parent
LAB_SCRIPT = ADMIN / "lab"
sys.path.insert(0, str(ADMIN))

from _lab_client import Lab, lab_missing  # noqa: E402
import _lab_host  # noqa: E402
import _lab_model  # noqa: E402


def admin_lab(argv, env=None, timeout=600):
    """
    Run ``admin/lab`` with this interpreter.

    :param list argv: Its arguments.
    :param dict env: Extra environment variables.
    :return: The ``CompletedProcess`` (text output captured).
    """
    return subprocess.run(
        [sys.executable, str(LAB_SCRIPT)] + argv, capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=timeout,
        env=dict(os.environ, **(env or {})))


def unique(stem):
    """
    :param str stem: A name's start.
    :return: A name no earlier test run used.
    """
    return "%s-%s" % (stem, uuid.uuid4().hex[:8])


def zfs_destroy(node, dataset):
    """
    Destroy a dataset and its snapshots from a node, retrying while zfs-fuse
    reports it busy (it does for a moment after any mount or unmount).

    :param node: A :class:`_lab_client.LabMachine`.
    :param str dataset: The dataset.
    """
    deadline = time.monotonic() + 20
    while True:
        result = node.run(["zfs", "destroy", "-r", dataset], check=False)
        if result.returncode == 0 or "does not exist" in result.stderr:
            return
        if "busy" not in result.stderr or time.monotonic() >= deadline:
            raise AssertionError("cannot destroy %s: %s" % (
                dataset, result.stderr))
        time.sleep(0.25)


def write_from_container(node, dataset, text):
    """
    Write ``text`` to ``f.txt`` in a dataset's mount point from a container
    on the node that owns it.

    :param node: The node.
    :param str dataset: ``<pool>/<name>``.
    :param str text: The content.
    """
    mountpoint = node.run(["zfs", "get", "-H", "-o", "value", "mountpoint",
                           dataset]).stdout.strip()
    node.run(["docker", "run", "--rm", "-e", "TEXT=" + text, "-v",
              mountpoint + ":/data", "flocker/busybox", "sh", "-c",
              'printf %s "$TEXT" > /data/f.txt'])
    return mountpoint


# ---------------------------------------------------------------------------
# Command line errors (no root needed: nothing is changed before they
# are detected).

# ---------------------------------------------------------------------------
# The shared three-node lab.

def _daemon_pids(lab):
    pids = {}
    for node in lab.nodes:
        run_dir = Path(node.docker_socket).parent
        pids[node.name] = (_lab_host.read_pid(run_dir / "dockerd.pid"),
                           _lab_host.read_pid(run_dir / "sshd.pid"),
                           _lab_host.read_pid(run_dir / "agent.pid"))
    return pids


# ---------------------------------------------------------------------------
# Whole cycles on a lab of its own.

def _mount_points():
    return [entry.point for entry in _lab_host.mount_table()]


def host_footprint(prefix, state, runtime):
    """
    Everything of a lab that can be seen on the host outside its state
    directory (and the state directory's mounts).

    :param str prefix: The lab's prefix.
    :param str state: Its state directory.
    :param str runtime: Its runtime directory.
    :return: A JSON-able snapshot.
    """
    points = _mount_points()
    netns = sorted(n for n in (os.listdir("/run/netns")
                               if os.path.isdir("/run/netns") else [])
                   if n.startswith(prefix + "-"))
    pools = subprocess.run(["zpool", "list", "-H", "-o", "name"],
                           capture_output=True, text=True).stdout.split()
    cgroups = sorted(os.path.join(root, d) for root in _lab_host.cgroup_roots()
                     for d in os.listdir(root) if d.startswith(prefix + "-"))
    processes = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not _lab_host.process_alive(int(entry)):
            continue
        cmdline = _lab_host.read_file("/proc/%s/cmdline" % (entry,)) or ""
        cgroup = _lab_host.read_file("/proc/%s/cgroup" % (entry,)) or ""
        if state + "/" in cmdline or runtime + "/" in cmdline or \
                ":/%s-" % (prefix,) in cgroup:
            processes.append((int(entry), cmdline.replace("\0", " ")))
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                           text=True).stdout
    return {
        "netns": netns,
        "mounts": sorted(p for p in points if p.startswith(state + "/")
                         or p == state or p.startswith(runtime)),
        "run_netns_mounted": "/run/netns" in points,
        "pools": sorted(p for p in pools if p.startswith(prefix + "-")),
        "cgroups": cgroups,
        "processes": sorted(processes),
        "root_links": sorted(line.split(":")[1].strip().split("@")[0]
                             for line in links.splitlines()),
        "runtime": os.path.exists(runtime),
        # Only this lab's: other labs come and go on a shared machine.
        "run": sorted(n for n in os.listdir("/run")
                      if n == os.path.basename(runtime)),
        "etc_docker": sorted(os.listdir("/etc/docker"))
        if os.path.isdir("/etc/docker") else None,
        "run_sshd": os.path.exists("/run/sshd"),
    }


def own_lab_of(test):
    """
    :param test: The ``TestCase`` (its ``addCleanup`` brings the lab down).
    :return: ``(environment, prefix, state, runtime)`` for a one-node lab
        of its own (prefix: the session's lab prefix and ``t``, so ``flkt``
        by default), brought down once ``test`` ends.
    """
    missing = lab_missing()
    require(missing is None, missing)
    # Derived from the session's prefix, so that sessions running their own
    # labs side by side do not share this one either.
    prefix = os.environ.get("FLOCKER_LAB_PREFIX", "flk") + "t"
    state = str(temporary_path(test) / "state")
    env = {"FLOCKER_LAB_PREFIX": prefix, "FLOCKER_LAB_STATE": state}
    shared_images = Path("/var/lib/flocker-lab/images")
    if shared_images.is_dir():
        # Reuse the shared lab's image cache (the key check still applies).
        (Path(state) / "images").mkdir(parents=True)
        for item in shared_images.iterdir():
            (Path(state) / "images" / item.name).write_bytes(
                item.read_bytes())
    test.addCleanup(admin_lab, ["down", "--purge"], env=env)
    return env, prefix, state, "/run/flocker-lab-" + prefix


@with_cases
class LabCommandLineTests(SynchronousTestCase):
    """
    ``admin/lab``'s command line, without a lab.
    """

    @cases([(count,) for count in ["0", "9", "-1", "three", "2.5", ""]])
    def test_up_rejects_bad_count(self, count):
        """
        ``up`` with N outside 1..8 (or not a number) exits 1 with one line on
        stderr naming the rule, and creates nothing.
        """
        tmp_path = temporary_path(self)
        state = tmp_path / "state"
        result = admin_lab(["up", count], env={"FLOCKER_LAB_STATE": str(state)})
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertIn("N must be a whole number from 1 to 8", result.stderr)
        self.assertFalse(state.exists())

    @cases([
        (["address", "node1"], "the lab is not up"),
        (["run", "node1", "--", "true"], "the lab is not up"),
        (["run", "node1"], "no command given"),
        (["frobnicate"], "invalid choice"),
    ])
    def test_one_line_errors(self, argv, message):
        """
        Mistakes on the command line, or asking a lab that is not up, give one
        line on stderr and exit code 1.
        """
        tmp_path = temporary_path(self)
        result = admin_lab(argv, env={"FLOCKER_LAB_STATE": str(tmp_path)})
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertIn(message, result.stderr)

    def test_status_of_absent_lab(self):
        """
        ``status`` of a lab that is not up says so and exits 3.
        """
        tmp_path = temporary_path(self)
        result = admin_lab(["status"], env={"FLOCKER_LAB_STATE": str(tmp_path),
                                            "FLOCKER_LAB_PREFIX": "flkz"})
        self.assertEqual((result.returncode, result.stdout), (3, "lab down\n"))

    def test_lab_of_another_checkout_refused(self):
        """
        ``up`` of a lab that another checkout brought up (its ``lab.json``
        names that checkout) exits 1 with one line naming both checkouts,
        and leaves the lab as it was: taking it over would put this
        checkout's package under whoever uses it.
        """
        state = temporary_path(self) / "state"
        state.mkdir()
        description = state / "lab.json"
        text = json.dumps({"version": 1, "prefix": "flkz",
                           "checkout": "/elsewhere/flocker", "nodes": []})
        description.write_text(text)
        before = sorted(os.listdir(state))
        result = admin_lab(["up", "1"], env={"FLOCKER_LAB_STATE": str(state),
                                             "FLOCKER_LAB_PREFIX": "flkz"})
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("runs the code of /elsewhere/flocker, not of this "
                      "checkout (%s)" % (_lab_model.REPO,), result.stderr)
        self.assertEqual((sorted(os.listdir(state)), description.read_text()),
                         (before, text))

    def test_bad_prefix_rejected(self):
        """
        A prefix that could not name namespaces (too long, bad characters) is
        refused before anything happens.
        """
        result = admin_lab(["status"], env={"FLOCKER_LAB_PREFIX": "Bad/prefix!"})
        self.assertEqual(result.returncode, 1)
        self.assertIn("FLOCKER_LAB_PREFIX", result.stderr)



class SharedLabTests(SynchronousTestCase):
    """
    The shared lab of :func:`flocker.testtools.shared_lab`: its nodes,
    their daemons, the package they run, and ``up`` repairing them.
    """

    def test_lab_description(self):
        """
        The fixture describes three nodes whose addresses ``admin/lab address``
        prints, each with its own pool and docker socket.
        """
        lab = shared_lab()
        self.assertEqual(lab.node_names, ["node1", "node2", "node3"])
        for name in lab.node_names:
            result = admin_lab(["address", name])
            self.assertEqual(result.stdout, lab.address(name) + "\n")
            self.assertTrue(Path(lab.docker_socket(name)).exists())
        self.assertEqual(len({lab.pool(name) for name in lab.node_names}), 3)

    def test_container_invisible_on_other_node(self):
        """
        A container started on node1 is listed by node1's Docker and unknown to
        node2's.
        """
        lab = shared_lab()
        name = unique("invisible")
        node1, node2 = lab.machine("node1"), lab.machine("node2")
        node1.run(["docker", "run", "-d", "--name", name, "flocker/busybox",
                   "sleep", "600"])
        try:
            names1 = node1.run(["docker", "ps", "--format", "{{.Names}}"]).stdout
            names2 = node2.run(["docker", "ps", "-a", "--format",
                                "{{.Names}}"]).stdout
            inspect2 = node2.run(["docker", "inspect", name], check=False)
            self.assertIn(name, names1.split())
            self.assertNotIn(name, names2.split())
            self.assertNotEqual(inspect2.returncode, 0)
        finally:
            node1.run(["docker", "rm", "-f", name])

    def test_dataset_written_from_container(self):
        """
        A dataset created on node1's pool after its dockerd started, written by
        a container on node1, is readable on the host at the dataset's mount
        point (mounts propagate into the node: no empty directory).
        """
        lab = shared_lab()
        node1 = lab.machine("node1")
        dataset = "%s/%s" % (node1.pool, unique("written"))
        node1.run(["zfs", "create", dataset])
        try:
            mountpoint = write_from_container(node1, dataset, "from node1")
            self.assertTrue(mountpoint.startswith(node1.zfs_mount + "/"))
            self.assertEqual(Path(mountpoint, "f.txt").read_text(),
                             "from node1")
        finally:
            zfs_destroy(node1, dataset)

    def test_zfs_send_over_ssh(self):
        """
        ``zfs send`` on node1 piped into ``ssh node2 zfs receive`` (two
        processes joined by a pipe, no shell) copies a snapshot to node2's
        pool; a container on node2 then reads the file node1's container wrote.
        """
        lab = shared_lab()
        node1, node2 = lab.machine("node1"), lab.machine("node2")
        name = unique("sent")
        source, target = node1.pool + "/" + name, node2.pool + "/" + name
        node1.run(["zfs", "create", source])
        try:
            write_from_container(node1, source, "travelled")
            node1.run(["zfs", "snapshot", source + "@s1"])
            send = node1.popen(["zfs", "send", source + "@s1"],
                               stdout=subprocess.PIPE)
            receive = node1.popen(["ssh", node2.address, "zfs", "receive",
                                   target], stdin=send.stdout,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            send.stdout.close()
            _, error = receive.communicate(timeout=120)
            self.assertEqual((send.wait(timeout=60), receive.returncode),
                             (0, 0), error)
            mountpoint = node2.run(["zfs", "get", "-H", "-o", "value",
                                    "mountpoint", target]).stdout.strip()
            seen = node2.run(["docker", "run", "--rm", "-v",
                              mountpoint + ":/data", "flocker/busybox", "cat",
                              "/data/f.txt"]).stdout
            self.assertEqual(seen, "travelled")
        finally:
            zfs_destroy(node2, target)
            zfs_destroy(node1, source)

    def test_node_sessions(self):
        """
        An SSH session from the client to a node finds the installed package's
        ``flocker-node`` and ``flocker-volume`` (``/usr/bin``, links into
        ``/opt/flocker``) on PATH, not the checkout's, and gets the node's
        variables; node to node SSH trusts the other node's host key.
        """
        lab = shared_lab()
        for name in lab.node_names:
            node = lab.machine(name)
            found = lab.run_client(["ssh", node.address, "which", "flocker-node",
                                    "flocker-volume"])
            self.assertEqual(
                found.stdout.split(),
                ["/usr/bin/flocker-node",
                 "/usr/bin/flocker-volume"])
            links = lab.run_client(["ssh", node.address, "readlink",
                                    "/usr/bin/flocker-node",
                                    "/usr/bin/flocker-volume"])
            self.assertEqual(
                links.stdout.split(),
                ["/opt/flocker/bin/flocker-node",
                 "/opt/flocker/bin/flocker-volume"])
            env = lab.run_client(["ssh", node.address, "printenv",
                                  "FLOCKER_POOL", "FLOCKER_NODE_ADDRESS",
                                  "DOCKER_HOST", "FLOCKER_LAB_NODE"])
            self.assertEqual(
                env.stdout.split(),
                [node.pool, node.address, "unix://" + node.docker_socket, name])
        hop = lab.run("node1", ["ssh", lab.address("node3"), "hostname"])
        self.assertEqual(hop.stdout, "node3\n")

    def test_client_trusts_exactly_the_lab(self):
        """
        The client's SSH identity and known_hosts are the lab's, and the
        known_hosts lists exactly the nodes' host keys; ``flocker-deploy`` is
        on the client's PATH.
        """
        lab = shared_lab()
        home = Path(lab.client.home)
        known = (home / ".ssh" / "known_hosts").read_text().splitlines()
        self.assertEqual(known, Path(lab.known_hosts).read_text().splitlines())
        self.assertEqual(
            [line.split()[0] for line in known],
            ["%s,%s" % (n.name, n.address) for n in lab.nodes])
        self.assertEqual(
            (home / ".ssh" / "id_ed25519").read_text(),
            Path(lab.identity).read_text())
        which = lab.run_client(["which", "flocker-deploy"]).stdout.strip()
        self.assertEqual(
            which, lab.client.env["PATH"].split(":")[0] + "/flocker-deploy")

    def test_node_is_a_fresh_host(self):
        """
        Each node has its own host name (also Docker's name for itself),
        forwarding on with FORWARD policy DROP (as dockerd leaves a fresh host)
        and its own docker0 subnet.
        """
        lab = shared_lab()
        for node in lab.nodes:
            self.assertEqual(node.run(["hostname"]).stdout, node.name + "\n")
            self.assertEqual(
                node.run(["docker", "info", "--format",
                          "{{.Name}}"]).stdout,
                node.name + "\n")
            self.assertEqual(
                node.run(["iptables", "-S", "FORWARD"]).stdout.splitlines()[
                    0],
                "-P FORWARD DROP")
            self.assertEqual(
                node.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout,
                "1\n")
            index = int(node.name[len("node"):])
            self.assertIn(
                "10.98.%d.1/24" % (index,),
                node.run(
                    ["ip", "-4", "-o", "addr", "show", "docker0"]).stdout)

    def test_images_everywhere(self):
        """
        Both lab images exist on every node with the same IDs, and the Redis
        image serves clients on another machine.
        """
        lab = shared_lab()
        for node in lab.nodes:
            for reference, image in lab.images.items():
                found = node.run(["docker", "image", "inspect", "--format",
                                  "{{.Id}}", reference]).stdout.strip()
                self.assertEqual(found, image)
        node2 = lab.machine("node2")
        name = unique("redis")
        node2.run(["docker", "run", "-d", "--name", name, "-p", "6390:6379",
                   "flocker/redis"])
        try:
            deadline = time.monotonic() + 30
            while True:
                answer = lab.run_client(["redis-cli", "-h", node2.address, "-p",
                                         "6390", "ping"], check=False)
                if answer.stdout.strip() == "PONG" or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(answer.stdout.strip(), "PONG")
        finally:
            node2.run(["docker", "rm", "-f", name])

    def test_agents_run_in_nodes(self):
        """
        Every node runs its Flocker agent inside the node's namespaces, as its
        other daemons, listening on the package's default socket there (mode
        0600 in a root-only directory); the node's own ``flocker-node report``
        reaches it.
        """
        lab = shared_lab()
        for node in lab.nodes:
            pid = _daemon_pids(lab)[node.name][2]
            self.assertEqual(
                os.readlink("/proc/%d/ns/mnt" % (pid,)),
                os.readlink(
                    "/proc/%d/ns/mnt" % (_daemon_pids(lab)[node.name][0],)))
            socket_path = "/proc/%d/root/run/flocker/agent.sock" % (pid,)
            self.assertEqual(stat.S_IMODE(os.stat(socket_path).st_mode), 0o600)
            self.assertEqual(
                stat.S_IMODE(os.stat(os.path.dirname(socket_path)).st_mode),
                0o700)
            report = node.run(["flocker-node", "report"])
            self.assertEqual(json.loads(report.stdout)["address"],
                             node.address)

    def test_nodes_run_the_package(self):
        """
        Every node has Flocker's Debian package installed by dpkg (its own
        dpkg database says so; the host's does not, and the host has no
        ``/usr/bin/flocker-node``), and its agent is the unit's ``ExecStart``
        as systemd runs it: ``/usr/bin/env flocker-node agent`` resolved to the
        package's environment, with systemd's PATH and the settings of
        ``/etc/default/flocker-node``; the ``flocker`` it imports is the one
        under ``/opt/flocker``.
        """
        lab = shared_lab()
        host = subprocess.run(["dpkg-query", "-W", "flocker-node"],
                              capture_output=True, text=True)
        self.assertEqual(
            (host.returncode, os.path.exists("/usr/bin/flocker-node")),
            (1, False))
        for node in lab.nodes:
            status = node.run(["dpkg-query", "-W", "-f", "${Status} ${Version}",
                               "flocker-node"])
            self.assertTrue(status.stdout.startswith("install ok installed "))
            pid = _daemon_pids(lab)[node.name][2]
            cmdline = Path("/proc/%d/cmdline" % (pid,)).read_bytes()
            environ = dict(
                item.split("=", 1) for item in Path(
                    "/proc/%d/environ" % (pid,)).read_bytes().decode().split(
                        "\0") if "=" in item)
            defaults = node.run(["cat", "/etc/default/flocker-node"]).stdout
            where = node.run(["/opt/flocker/bin/python", "-c",
                              "import flocker; print(flocker.__file__)"])
            self.assertEqual(
                (cmdline.split(b"\0")[:3], environ["PATH"],
                 environ["FLOCKER_POOL"], "FLOCKER_POOL=%s\n" % (node.pool,)
                 in defaults, where.stdout.startswith("/opt/flocker/lib/")),
                ([b"/opt/flocker/bin/python", b"/usr/bin/flocker-node", b"agent"],
                 "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", node.pool,
                 True, True))

    def test_up_upgrades_the_package(self):
        """
        A node whose installed build is not the current one gets the current
        package installed over it by ``dpkg -i`` (dpkg's upgrade path, its
        maintainer scripts run) and its agent restarted, as a package upgrade
        restarts the service; its other daemons keep running.
        """
        lab = shared_lab()
        state = Path(lab.state) / "node2"
        record = state / "package.installed"
        current = record.read_text()
        dpkg_log = state / "log" / "dpkg.log"
        before_log = dpkg_log.read_text().count("status installed flocker-node")
        before = _daemon_pids(lab)["node2"]
        record.write_text("an-older-build\n")
        result = admin_lab(["up", "3"])
        self.assertEqual(result.returncode, 0, result.stderr)
        after = _daemon_pids(lab)["node2"]
        self.assertEqual(
            (after[:2] == before[:2], after[2] != before[2],
             record.read_text(),
             dpkg_log.read_text().count("status installed flocker-node")),
            (True, True, current, before_log + 1))
        self.assertEqual(
            lab.run("node2", ["flocker-node", "report"]).returncode, 0)

    def test_up_restarts_dead_agent(self):
        """
        When a node's agent died, ``up`` starts it again (as systemd would) and
        leaves the node's other daemons alone.
        """
        lab = shared_lab()
        before = _daemon_pids(lab)["node2"]
        os.kill(before[2], 9)
        deadline = time.monotonic() + 10
        while _lab_host.process_alive(before[2]):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        result = admin_lab(["up", "3"])
        self.assertEqual(result.returncode, 0, result.stderr)
        after = _daemon_pids(lab)["node2"]
        self.assertTrue(after[:2] == before[:2] and after[2] != before[2])
        self.assertEqual(
            lab.run("node2", ["flocker-node", "report"]).returncode, 0)

    def test_agent_restarted_on_failure(self):
        """
        A node's agent that dies (killed: an unclean end) is started again by
        its unit runner as systemd would (the unit's ``Restart=on-failure``,
        ``RestartSec=2``), without ``admin/lab up``: a new agent pid, written
        where the old one was, answers ``flocker-node report``; the runner is
        the same process, and the restart is in the agent's log.
        """
        lab = shared_lab()
        node = lab.nodes[1]
        run_dir = Path(node.docker_socket).parent
        unit_before = _lab_host.read_pid(run_dir / "agent-unit.pid")
        before = _daemon_pids(lab)[node.name]
        os.kill(before[2], 9)
        deadline = time.monotonic() + 60
        while True:
            pid = _lab_host.read_pid(run_dir / "agent.pid")
            if (pid not in (None, before[2]) and _lab_host.process_alive(pid)
                    and lab.run(node.name, ["flocker-node", "report"],
                                check=False).returncode == 0):
                break
            self.assertLess(time.monotonic(), deadline,
                            "the agent was not restarted")
            time.sleep(0.1)
        after = _daemon_pids(lab)[node.name]
        log = (Path(lab.state) / node.name / "log" / "flocker-agent.log")
        self.assertEqual(
            (after[:2] == before[:2], _lab_host.process_name(after[2]),
             _lab_host.read_pid(run_dir / "agent-unit.pid") == unit_before,
             _lab_host.process_alive(unit_before)),
            (True, "flocker-node", True, True))
        self.assertIn(
            "main process %d exited, code=killed, status=9/KILL"
            % (before[2],),
            log.read_text())

    def test_etcd_one_cluster(self):
        """
        Every node runs an etcd member on its own address, and the members form
        one cluster: three members listed, a key put through node1's member is
        read through node3's, and each node's agent finds its member on the
        node's 127.0.0.1.
        """
        lab = shared_lab()
        members = lab.run("node2", ["etcdctl", "member", "list"]).stdout
        self.assertEqual(
            sorted(line.split(", ")[2] for line in members.splitlines()),
            ["node1", "node2", "node3"])
        key = unique("lab-check")
        lab.run("node1", ["etcdctl", "--endpoints",
                          "http://%s:2379" % (lab.address("node1"),),
                          "put", key, "from-node1"])
        try:
            got = lab.run("node3", ["etcdctl", "--endpoints",
                                    "http://%s:2379" % (lab.address("node3"),),
                                    "get", "--print-value-only", key]).stdout
            self.assertEqual(got, "from-node1\n")
        finally:
            lab.run("node1", ["etcdctl", "del", key])

    def test_up_restarts_dead_etcd(self):
        """
        When a node's etcd member died, ``up`` starts it again with its data
        (it rejoins the cluster) and leaves the node's other daemons alone.
        """
        lab = shared_lab()
        run_dir = Path(lab.machine("node3").docker_socket).parent
        before = _daemon_pids(lab)["node3"]
        pid = _lab_host.read_pid(run_dir / "etcd.pid")
        os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while _lab_host.process_alive(pid):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        result = admin_lab(["up", "3"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(_daemon_pids(lab)["node3"], before)
        self.assertNotEqual(_lab_host.read_pid(run_dir / "etcd.pid"), pid)
        status = admin_lab(["status"]).stdout.splitlines()
        self.assertIn(
            "etcd=ok",
            [line for line in status
             if line.startswith("node3 ")][0].split())

    def test_up_again_changes_nothing(self):
        """
        ``up`` on a healthy lab restarts nothing: same daemons, containers keep
        running.
        """
        lab = shared_lab()
        node1 = lab.machine("node1")
        name = unique("survivor")
        node1.run(["docker", "run", "-d", "--name", name, "flocker/busybox",
                   "sleep", "600"])
        try:
            before = _daemon_pids(lab)
            result = admin_lab(["up", "3"])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("restarted: nothing", result.stderr)
            self.assertEqual(_daemon_pids(lab), before)
            self.assertEqual(
                node1.run(["docker", "inspect", "--format",
                           "{{.State.Running}}", name]).stdout,
                "true\n")
        finally:
            node1.run(["docker", "rm", "-f", name])

    def test_up_repairs_dead_sshd(self):
        """
        When a node's sshd died, ``up`` starts a new one and leaves that node's
        dockerd alone.
        """
        lab = shared_lab()
        before = _daemon_pids(lab)["node3"]
        os.kill(before[1], 9)
        deadline = time.monotonic() + 10
        while _lab_host.process_alive(before[1]):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        result = admin_lab(["up", "3"])
        self.assertEqual(result.returncode, 0, result.stderr)
        after = _daemon_pids(lab)["node3"]
        self.assertTrue(after[0] == before[0] and after[1] != before[1])
        self.assertEqual(
            lab.run_client(["ssh", lab.address("node3"), "true"]).returncode,
            0)



class OwnLabTests(SynchronousTestCase):
    """
    A whole ``up``/``down`` cycle, on a one-node lab of the test's own.
    """

    def test_down_leaves_nothing(self):
        """
        After ``up 1`` and use (a container holding a dataset of the node's
        pool), ``down`` leaves no process, namespace, mount, pool, cgroup, link
        or runtime file; a second ``down`` is fine.
        """
        own_lab = own_lab_of(self)
        env, prefix, state, runtime = own_lab
        before = host_footprint(prefix, state, runtime)
        result = admin_lab(["up", "1"], env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        lab = Lab.from_description(json.loads(
            (Path(state) / "lab.json").read_text()))
        node = lab.machine("node1")
        node.run(["zfs", "create", node.pool + "/busy"])
        node.run(["docker", "run", "-d", "-v", node.zfs_mount + "/busy:/data",
                  "flocker/busybox", "sleep", "600"])
        during = host_footprint(prefix, state, runtime)
        # The footprint check does see a running lab.
        self.assertTrue(
            during["netns"] and during["pools"] and during["processes"])
        self.assertTrue(during["mounts"] and during["runtime"])
        first = admin_lab(["down"], env=env)
        after = host_footprint(prefix, state, runtime)
        second = admin_lab(["down"], env=env)
        self.assertEqual(
            (first.returncode, second.returncode),
            (0, 0),
            (first.stderr, second.stderr))
        self.assertEqual(after, before)
        self.assertEqual(host_footprint(prefix, state, runtime), before)

    def test_up_repairs_half_removed_lab(self):
        """
        A lab whose node lost its network namespace and daemons (a crash or a
        half-finished teardown) is repaired by ``up``: status is healthy again
        and the node answers over SSH.
        """
        own_lab = own_lab_of(self)
        env, prefix, state, runtime = own_lab
        self.assertEqual(admin_lab(["up", "1"], env=env).returncode, 0)
        lab = _lab_model.Lab.from_environ(dict(os.environ, **env))
        node = lab.node(1)
        _lab_host.kill_machines([node])
        subprocess.run(["ip", "netns", "del", node.netns], check=True)
        broken = admin_lab(["status"], env=env)
        self.assertTrue(broken.returncode == 1 and "DOWN" in broken.stdout)
        repaired = admin_lab(["up", "1"], env=env)
        self.assertEqual(repaired.returncode, 0, repaired.stderr)
        self.assertEqual(admin_lab(["status"], env=env).returncode, 0)
        answer = admin_lab(["run", "client", "--", "ssh", node.address,
                            "hostname"], env=env)
        self.assertEqual(answer.stdout, "node1\n")
