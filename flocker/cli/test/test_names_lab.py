"""
Service names that resolve, on the lab (``admin/lab``): a container whose
application has a named link (what :func:`flocker.node._names.with_service_names`
gives every application of a project) reaches another application by its
name, on another node, and keeps reaching it through a move of that
application, without being restarted.

The linking application is started on its node through the node's agent
(``StartApplication``) as the deploy client would, in a project of its own, so
the ``flocker-deploy`` runs that place and move the named application (the
default project) leave it alone.
"""

import os
import secrets
import sys

from flocker._model import Application, Link
from flocker._serialize import application_to_dict, dumps
from flocker.node._names import name_addresses
from flocker.testtools import (
    ScenarioTestCase, class_temporary_path, http_status_and_body, shared_lab,
)

IMAGE = "flocker/busybox:latest"
PORT = 18095
DEPLOY_TIMEOUT = 120
_REQUEST = "GET /index.html HTTP/1.0\r\n\r\n"


#: Calls the node's agent as the deploy client does (run on the node).
_AGENT_CALL = """
import sys
from eliot import start_action
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.task import react
from flocker._serialize import application_from_dict, loads
from flocker.node._amp import (
    PROTOCOL_VERSION, AgentClientProtocol, Hello, StartApplication,
    StopApplication)

async def main(reactor, what, argument, address):
    protocol = AgentClientProtocol()
    await connectProtocol(UNIXClientEndpoint(
        reactor, "/run/flocker/agent.sock"), protocol)
    await protocol.callRemote(Hello, version=PROTOCOL_VERSION,
                              address=address)
    with start_action(action_type="test:names") as action:
        task = action.serialize_task_id().decode("ascii")
    if what == "start":
        await protocol.callRemote(
            StartApplication, eliot_task=task,
            application=application_from_dict(loads(argument)))
    else:
        await protocol.callRemote(StopApplication, eliot_task=task,
                                  name=argument)
    protocol.transport.loseConnection()

react(lambda reactor: ensureDeferred(main(reactor, *sys.argv[1:])))
"""


def _agent_call(node, what, argument, check=True):
    """
    Start (``argument``: the application's JSON, contents included) or stop
    (``argument``: its name) an application through ``node``'s agent.
    """
    return node.run([sys.executable, "-c", _AGENT_CALL, what, argument,
                     node.address], check=check)

APPLICATIONS = """\
version: 1
applications:
  {web}:
    image: {image}
    command: ["sh", "-c", "echo served by {web} > /www/index.html; exec httpd -f -p 80 -h /www"]
    ports: [{{internal: 80, external: {port}}}]
    volume: {{mountpoint: /www}}
"""


def _deploy(state, placement):
    """
    Deploy the named application to the node of index ``placement[0]``
    (nowhere if empty).
    """
    lab = state["lab"]
    lines = ["version: 1", "nodes:"]
    for index, node in enumerate(lab.nodes[:3]):
        here = state["web"] if index in placement else ""
        lines.append("  %s: [%s]" % (node.address, here))
    path = os.path.join(state["directory"], "deployment.yml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return lab.run_client(["flocker-deploy", "--yes", path,
                           state["applications"]], check=False,
                          timeout=DEPLOY_TIMEOUT)


class ServiceNamesTests(ScenarioTestCase):
    """
    A name that resolves, reaching its application across nodes and
    through a move.
    """

    @classmethod
    def setUpClass(cls):
        # The scenario's state: names, files, and the client application;
        # all removed at the end.
        lab = shared_lab(minimum_nodes=3)
        token = secrets.token_hex(3)
        state = {"web": "nameweb-" + token, "client": "namecli-" + token,
                 "directory": str(class_temporary_path(cls)), "lab": lab}
        path = os.path.join(state["directory"], "applications.yml")
        with open(path, "w") as f:
            f.write(APPLICATIONS.format(web=state["web"], image=IMAGE,
                                        port=PORT))
        state["applications"] = path
        cls.s, cls.lab = state, lab
        cls.addClassCleanup(cls._remove, state)

    @staticmethod
    def _remove(state):
        lab = state["lab"]
        _agent_call(lab.nodes[1], "stop", state["client"], check=False)
        _deploy(state, [])
        for node in lab.nodes[:3]:
            node.run(["flocker-volume", "delete", state["web"]], check=False)

    def get(self):
        """
        :return: ``(status, body)`` of ``GET /index.html`` sent by name
            from inside the client's container on node2.
        """
        result = self.lab.run(self.lab.nodes[1].name, [
            "docker", "exec", "-i", "flocker--" + self.s["client"],
            "nc", "-w", "2", self.s["web"], "80"], input=_REQUEST,
            check=False, timeout=60)
        return http_status_and_body(result.stdout)

    def client_container(self):
        result = self.lab.run(self.lab.nodes[1].name, [
            "docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
            "flocker--" + self.s["client"]])
        return result.stdout.strip()

    def test_01_reached_by_name_on_another_node(self):
        """
        With the named application on node1 and the client on node2, the
        client reaches it by its name on the port it listens on.
        """
        result = _deploy(self.s, [0])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        address = name_addresses([self.s["web"]])[self.s["web"]]
        client = Application(
            name=self.s["client"], image=IMAGE, command=["sleep", "100000"],
            project="names-" + self.s["client"],
            links=[Link(local_port=80, remote_port=PORT, alias=self.s["web"],
                        address=address)])
        node = self.lab.nodes[1]
        _agent_call(node, "start", dumps(application_to_dict(
            client, contents=True)))
        self.s["container"] = self.client_container()
        status, body = self.get()
        self.assertEqual((status, body.strip()),
                         ("200", "served by " + self.s["web"]))

    def test_02_reached_after_move(self):
        """
        After the named application moved to node3, the same client
        container (not restarted) still reaches it by name.
        """
        result = _deploy(self.s, [2])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        status, body = self.get()
        self.assertEqual(
            (status, body.strip(), self.client_container()),
            ("200", "served by " + self.s["web"], self.s["container"]))
