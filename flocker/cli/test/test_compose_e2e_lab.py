"""
Issue #18's end-to-end test on the lab (``admin/lab``): a compose project
deploys unmodified across three nodes, then each service moves with its
data intact while the others keep resolving it by name, and a UDP port is
routed from every node and reached by name through the link rules; a port
that is only exposed is reached by a network alias.

The project: ``db`` (an HTTP server standing in for a database, its data on
a named volume, a healthcheck), ``web`` (a relative directory bind mount
seeded once, a named volume, a file bind mount, ``depends_on: {db:
{condition: service_healthy}}``, its port from ``.env``), ``dns`` (a UDP
port) and ``priv`` (an HTTP server on a port it only exposes, with a network
alias).  ``flocker-deploy`` runs in the client namespace with the compose
file as written.

A second scenario upgrades a project whose named volume predates the
project prefix: the deploy refuses to create the prefixed volume empty and
says how to keep the data.
"""

import os
import secrets
import subprocess
import sys

from flocker.testtools import (
    ScenarioTestCase, class_temporary_path, http_status_and_body, shared_lab,
)

IMAGE = "flocker/busybox:latest"
DEPLOY_TIMEOUT = 180
WEB_PORT = 18100
DB_PORT = 18101
UDP_PORT = 18153
_REQUEST = "GET /index.html HTTP/1.0\r\n\r\n"

# Answers one datagram on UDP port 5353 with its upper-case copy (bounded:
# gives up after 20 seconds).
_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
s.settimeout(20)
print("ready", flush=True)
data, peer = s.recvfrom(4096)
s.sendto(data.upper(), peer)
print(data.decode(), flush=True)
"""

# Sends argv[3] to argv[1]:argv[2] over UDP, prints the answer (or nothing
# after 10 seconds).
_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(4096)[0].decode())
except socket.timeout:
    pass
"""

COMPOSE = """\
name: {project}
services:
  db:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    ports: ["{db_port}:80"]
    volumes:
      - dbdata:/data
    healthcheck:
      test: ["CMD", "test", "-d", "/data"]
      interval: 1s
      retries: 30
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["${{WEB_PORT}}:80"]
    volumes:
      - ./site:/www
      - logs:/logs
      - ./app.conf:/etc/app.conf:ro
    depends_on:
      db: {{condition: service_healthy}}
  dns:
    image: {image}
    command: ["sleep", "100000"]
    ports: ["{udp_port}:5353/udp"]
  priv:
    image: {image}
    command: ["httpd", "-f", "-p", "7000", "-h", "/etc"]
    expose: ["7000"]
    networks:
      back: {{aliases: [private]}}
volumes:
  dbdata:
  logs:
"""

# A service added to the running project (appended under services).
EXTRA = """  extra:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    expose: ["80"]
"""


class _Project(object):
    """
    The project's files and what the steps share.
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.token = secrets.token_hex(3)
        self.project = "e2e" + self.token
        self.directory = directory
        self.nodes = lab.nodes[:3]
        self.addresses = [node.address for node in self.nodes]
        self.placed = {}
        self.extra = {}
        self.containers = {}
        self.index = "seeded page of %s\n" % (self.project,)
        self.conf = "answer = %s\n" % (self.token,)
        os.makedirs(os.path.join(directory, "site"))
        self.write("site/index.html", self.index)
        self.write("app.conf", self.conf)
        self.write(".env", "WEB_PORT=%d\n" % (WEB_PORT,))
        self.compose = self.write("compose.yaml", COMPOSE.format(
            project=self.project, image=IMAGE, db_port=DB_PORT,
            udp_port=UDP_PORT))

    def write(self, name, content):
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(content)
        return path

    def deploy(self, placement):
        """
        Place services (``{service: node index}``) and deploy.

        :return: The ``CompletedProcess``.
        """
        self.placed = dict(placement, **self.extra)
        placement = self.placed
        lines = ["version: 1", "nodes:"]
        for index, address in enumerate(self.addresses):
            here = sorted(s for s, i in placement.items() if i == index)
            lines.append("  %s: [%s]" % (address, ", ".join(here)))
        path = self.write("deployment.yml", "\n".join(lines) + "\n")
        return self.lab.run_client(
            ["flocker-deploy", "--yes", path, self.compose], check=False,
            timeout=DEPLOY_TIMEOUT)

    def add_extra(self, index):
        """
        Add the service ``extra`` to the compose file, placed on node
        ``index`` by every later deploy.
        """
        with open(self.compose) as f:
            text = f.read()
        head, volumes = text.split("\nvolumes:\n", 1)
        self.write("compose.yaml", head + "\n" + EXTRA.format(image=IMAGE)
                   + "volumes:\n" + volumes)
        self.extra = {"extra": index}

    def run_in(self, service, argv, **kwargs):
        node = self.nodes[self.placed[service]]
        return self.lab.run(node.name, [
            "docker", "exec", "-i", "flocker--" + service] + argv, **kwargs)

    def started(self, service):
        node = self.nodes[self.placed[service]]
        return self.lab.run(node.name, [
            "docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
            "flocker--" + service]).stdout.strip()

    def udp_by_name(self, client, message):
        """
        Send ``message`` over UDP from ``client``'s network namespace to
        ``dns:5353``, the name resolved by ``client``'s ``/etc/hosts``, the
        datagram taken there by ``client``'s link rules.

        :return: ``(what the dns container received, what came back)``.
        """
        hosts = self.run_in(client, ["cat", "/etc/hosts"]).stdout.split("\n")
        [address] = [line.split()[0] for line in hosts
                     if line.split()[1:] == ["dns"]]
        node = self.nodes[self.placed[client]]
        pid = self.lab.run(node.name, [
            "docker", "inspect", "--format", "{{.State.Pid}}",
            "flocker--" + client]).stdout.strip()
        return self._echoed(lambda: node.run(
            ["nsenter", "-t", pid, "-n", sys.executable, "-c", _SEND,
             address, "5353", message], timeout=30).stdout.strip())

    def _echoed(self, send):
        """
        Run the UDP echo in the ``dns`` container's network namespace
        while ``send()`` sends it a datagram.

        :return: ``(what the container received, what send() returned)``.
        """
        node = self.nodes[self.placed["dns"]]
        pid = self.lab.run(node.name, [
            "docker", "inspect", "--format", "{{.State.Pid}}",
            "flocker--dns"]).stdout.strip()
        server = node.popen(["nsenter", "-t", pid, "-n", sys.executable,
                             "-c", _ECHO], stdout=subprocess.PIPE, text=True)
        try:
            first = server.stdout.readline().strip()
            if first != "ready":
                raise AssertionError("the UDP echo did not start: %r"
                                     % (first,))
            answer = send()
            received = server.communicate(timeout=30)[0].strip()
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        return received, answer

    def udp_round_trip(self, index, message):
        """
        Send ``message`` from the client to node ``index``'s UDP port,
        answered in the ``dns`` container's network namespace.

        :return: ``(what the container received, what came back)``.
        """
        return self._echoed(lambda: self.lab.run_client(
            [sys.executable, "-c", _SEND, self.addresses[index],
             str(UDP_PORT), message], timeout=30).stdout.strip())

    def by_name(self, client, server, port=80, request=_REQUEST):
        """
        :return: ``(status, body)`` of ``request`` (``GET /index.html``)
            sent from ``client``'s container to ``server`` by its name.
        """
        result = self.run_in(client, ["nc", "-w", "2", server, str(port)],
                             input=request, check=False, timeout=60)
        return http_status_and_body(result.stdout)


def _remove_project(state):
    """
    Remove the project's services and delete its volumes.
    """
    state.extra = {}
    state.deploy({})
    for node in state.nodes:
        result = node.run(["flocker-volume", "list"], check=False)
        for line in result.stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(state.project):
                node.run(["flocker-volume", "delete", name], check=False)


class ComposeProjectTests(ScenarioTestCase):
    """
    The compose project across three nodes, step by step.
    """

    @classmethod
    def setUpClass(cls):
        lab = shared_lab(minimum_nodes=3)
        cls.p = _Project(lab, str(class_temporary_path(cls)))
        cls.addClassCleanup(_remove_project, cls.p)

    def test_01_deploy(self):
        """
        The project deploys as written: each service on its own node.
        """
        result = self.p.deploy({"db": 0, "web": 1, "dns": 2, "priv": 0})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_02_volumes_and_files(self):
        """
        The relative directory was seeded into web's volume, the file is in
        its container, its named volume and db's are writable.
        """
        p = self.p
        self.assertEqual(p.run_in("web", ["cat", "/www/index.html"]).stdout,
                         p.index)
        self.assertEqual(p.run_in("web", ["cat", "/etc/app.conf"]).stdout,
                         p.conf)
        p.run_in("web", ["sh", "-c", "echo log line > /logs/log"])
        p.run_in("db", ["sh", "-c", "echo db row %s > /data/index.html"
                        % (p.token,)])

    def test_03_names_resolve_across_nodes(self):
        """
        web (node2) reaches db (node1) by its name, and db reaches web.
        """
        p = self.p
        self.assertEqual(p.by_name("web", "db"),
                         ("200", "db row %s\n" % (p.token,)))
        self.assertEqual(p.by_name("db", "web"), ("200", p.index))

    def test_04_udp_routed(self):
        """
        A datagram sent to the UDP port of node1 reaches dns on node3, and
        its answer comes back.
        """
        message = "datagram %s" % (self.p.token,)
        self.assertEqual(
            self.p.udp_round_trip(0, message),
            (message,
             message.upper()))

    def test_04b_udp_by_name(self):
        """
        A datagram web (node2) sends to the name dns reaches dns on node3
        through web's UDP link rules, and its answer comes back.
        """
        message = "by name %s" % (self.p.token,)
        self.assertEqual(
            self.p.udp_by_name("web", message),
            (message,
             message.upper()))

    def test_04c_exposed_port_by_alias(self):
        """
        web (node2) reaches priv (node1) on the port priv only exposes,
        by priv's network alias and by its name.
        """
        request = "GET /hostname HTTP/1.0\r\n\r\n"
        self.assertEqual(
            [self.p.by_name("web", name, 7000, request)[0]
             for name in ("private", "priv")],
            ["200", "200"])

    def test_04d_add_service_no_restart(self):
        """
        Adding a service to the project starts it and restarts none of the
        others; they reach it by its name at once.
        """
        p = self.p
        before = {name: p.started(name) for name in ("db", "web", "dns",
                                                      "priv")}
        p.add_extra(2)
        result = p.deploy({"db": 0, "web": 1, "dns": 2, "priv": 0})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        request = "GET /hostname HTTP/1.0\r\n\r\n"
        self.assertEqual(
            ({name: p.started(name) for name in before},
             p.by_name("web", "extra", 80, request)[0],
             p.by_name("db", "extra", 80, request)[0]),
            (before, "200", "200"))

    def test_05_move_db(self):
        """
        db moves to node3 with its data; web, not restarted, still reaches
        it by name.
        """
        p = self.p
        web = p.started("web")
        result = p.deploy({"db": 2, "web": 1, "dns": 2, "priv": 0})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(
            p.run_in("db", ["cat", "/data/index.html"]).stdout,
            "db row %s\n" % (p.token,))
        self.assertEqual(p.started("web"), web)
        self.assertEqual(p.by_name("web", "db"),
                         ("200", "db row %s\n" % (p.token,)))

    def test_06_move_web(self):
        """
        web moves to node1 with its seeded and named volumes (not seeded
        again) and its file; db, not restarted, still reaches it by name.
        """
        p = self.p
        p.run_in("web", ["sh", "-c", "echo changed > /www/index.html"])
        db = p.started("db")
        result = p.deploy({"db": 2, "web": 0, "dns": 2, "priv": 0})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(
            (p.run_in("web", ["cat", "/www/index.html"]).stdout,
             p.run_in("web", ["cat", "/logs/log"]).stdout,
             p.run_in("web", ["cat", "/etc/app.conf"]).stdout),
            ("changed\n", "log line\n", p.conf))
        self.assertEqual(p.started("db"), db)
        self.assertEqual(p.by_name("db", "web"), ("200", "changed\n"))

    def test_07_move_dns_udp_follows(self):
        """
        dns moves to node2; a datagram sent to node1 reaches it there.
        """
        p = self.p
        result = p.deploy({"db": 2, "web": 0, "dns": 1, "priv": 0})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        message = "moved %s" % (p.token,)
        self.assertEqual(p.udp_round_trip(0, message),
                         (message, message.upper()))

    def test_08_converged(self):
        """
        Deploying the same files again changes nothing.
        """
        result = self.p.deploy({"db": 2, "web": 0, "dns": 1, "priv": 0})
        self.assertIn(
            "cluster already converged",
            result.stdout,
            result.stdout + result.stderr)


UPGRADE = """\
name: {project}
services:
  db:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    volumes: ["{key}:/data"]
volumes:
  {key}:{named}
"""


def _remove_upgrade(state):
    """
    Remove the upgraded project and delete its volume.
    """
    state.write("compose.yaml", UPGRADE.format(
        project=state.project, image=IMAGE, key=state.key,
        named=" {name: %s}" % (state.key,)))
    state.deploy({})
    result = state.nodes[0].run(["flocker-volume", "list"], check=False)
    for line in result.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if state.key in name:
            state.nodes[0].run(["flocker-volume", "delete", name],
                               check=False)


class NamedVolumeUpgradeTests(ScenarioTestCase):
    """
    Upgrading a deployment whose named volume predates the project prefix:
    no empty volume replaces its data.
    """

    @classmethod
    def setUpClass(cls):
        # A project deployed as before named volumes were named after their
        # project: its volume is named by its key alone (``name:``
        # written).
        cls.p = _Project(shared_lab(), str(class_temporary_path(cls)))
        cls.p.key = "v" + cls.p.token
        cls.addClassCleanup(_remove_upgrade, cls.p)

    def write(self, named):
        p = self.p
        p.write("compose.yaml", UPGRADE.format(
            project=p.project, image=IMAGE, key=p.key,
            named=" {name: %s}" % (p.key,) if named else ""))

    def test_01_old_deployment(self):
        """
        The project runs with its volume named by its key, holding data.
        """
        p = self.p
        self.write(named=True)
        result = p.deploy({"db": 0})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        p.run_in("db", ["sh", "-c", "echo kept > /data/row"])

    def test_02_prefixed_refused(self):
        """
        The same file without ``name:`` asks for PROJECT_KEY: the deploy
        stops before its first change, saying how to keep the data; the
        container runs on with it.
        """
        p = self.p
        started = p.started("db")
        self.write(named=False)
        result = p.deploy({"db": 0})
        output = result.stdout + result.stderr
        self.assertEqual(
            (result.returncode != 0,
             "its volume %s is now named %s_%s" % (p.key, p.project, p.key)
             in output, 'give the top-level volume %s "name: %s"' % (
                 p.key, p.key) in output,
             p.started("db"),
             p.run_in("db", ["cat", "/data/row"]).stdout),
            (True, True, True, started, "kept\n"),
            output)

    def test_03_named_kept(self):
        """
        With ``name:`` written, as the refusal says, nothing changes.
        """
        self.write(named=True)
        result = self.p.deploy({"db": 0})
        self.assertIn(
            "cluster already converged",
            result.stdout,
            result.stdout + result.stderr)
