"""
Tests for :mod:`flocker.cli._remote` and :mod:`flocker.node._amp`: the
agent protocol as :class:`RemoteNodeAgent` and the node's
:class:`~flocker.node._server.AgentProtocol` speak it, in memory
(:class:`~flocker.cli.testtools.LoopbackNetwork`).
"""

import json
import os


from eliot import current_action, log_message, start_action
from hypothesis import given
from pyrsistent import pset
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, AttachedVolume, Deployment, Link, Node, NodeState, Port,
    Route,
)
from flocker import __version__
from flocker._change import Sequentially
from flocker._serialize import SerializationError
from flocker.node._amp import (
    MAXIMUM_DOCUMENT_BYTES, PROTOCOL_VERSION, ApplicationArgument,
    NodeKeyArgument,
    BadRequest, Hello, HelloFirst, NodeStateArgument, OperationFailed,
    Report, RoutesArgument, StopApplication, VersionMismatch,
    decode_node_key, decode_routes, encode_node_key, encode_routes,
)
from flocker.node._fake import FakeCluster, FakeNodeError
from flocker.node._lock import DeployLock
from flocker.node._logging import AGENT_REFUSED
from flocker.node import _server
from flocker.node._server import AgentProtocol, AgentService
from flocker.node.test.test_agent import (
    A as NODE_A, B as NODE_B, WEB, local_pair, make_inodeagent_tests,
)
from flocker.node.testtools import RecordingProgress, loopback, make_node_key
from flocker.testtools import capture_logging, temporary_directory
from flocker.testtools.strategies import node_states

from .. import _remote
from .._cluster import deploy_over_ssh, rotate_over_ssh
from flocker._ssh import MemoryCommandRunner
from .._remote import (
    AgentClientProtocol, AgentConnections, NodeStepFailed, RemoteNodeAgent,
)
from ..testtools import FlushingAgent, LoopbackNetwork

APPLICATION = Application(
    name="web", image="lab/busybox:latest",
    command=["httpd", "-f", "-p", "80"],
    environment={"QUOTED": "it's \"x\"; rm -rf / && $(id)",
                 "UNICODE": "ünï ☃", "NEWLINE": "a\nb"},
    ports=[Port(internal=80, external=8080)],
    volume=AttachedVolume(mountpoint="/data", maximum_size=1024 ** 3),
    links=[Link(local_port=5432, remote_port=5432, alias="db")],
    mem_limit=64 * 1024 * 1024, cpu_shares=512)


def _round_trip(argument, value):
    """
    :return: ``value`` sent through ``argument`` into a box and back.
    """
    strings = amp.AmpBox()
    argument.toBox(b"value", strings, {"value": value}, None)
    sent = amp.AmpBox(strings)
    objects = {}
    argument.fromBox(b"value", strings, objects, None)
    return objects["value"], sent


class DocumentTests(SynchronousTestCase):
    """
    Tests for the protocol's document arguments.
    """

    def test_application_round_trip(self):
        """
        An application comes back equal, its awkward strings included.
        """
        self.assertEqual(_round_trip(ApplicationArgument(), APPLICATION)[0],
                         APPLICATION)

    @given(node_states())
    def test_report_round_trip(self, state):
        """
        Any report comes back equal.
        """
        self.assertEqual(_round_trip(NodeStateArgument(), state)[0], state)

    def test_routes(self):
        """
        A route set comes back equal; the text form is sorted and decodes
        to the same set.
        """
        routes = frozenset([Route(port=9000, address="10.0.0.3"),
                            Route(port=80, address="10.0.0.2")])
        self.assertEqual(_round_trip(RoutesArgument(), routes)[0], routes)
        self.assertEqual(json.loads(encode_routes(routes)), [
            {"port": 80, "address": "10.0.0.2"},
            {"port": 9000, "address": "10.0.0.3"}])
        self.assertEqual(decode_routes(encode_routes(routes)), routes)

    def test_node_key(self):
        """
        The nodes' trust's text form decodes to the same value; a document
        that is not one (the retired shared key's fields, a peers line that
        is not one) is refused.
        """
        key = make_node_key()
        self.assertEqual(decode_node_key(encode_node_key(key)), key)
        self.assertRaises(SerializationError, decode_node_key,
                          b'{"private_key": "SECRET"}')
        self.assertRaises(SerializationError, decode_node_key,
                          b'{"known_hosts": "", "peers": "a b c\\n"}')

    def test_node_key_every_field(self):
        """
        The trust travels with every field of the model, the peers the
        ``authorized_keys`` lines are made from included.
        """
        key = make_node_key()
        self.assertEqual(_round_trip(NodeKeyArgument(), key)[0], key)
        self.assertNotEqual(key.peers, "")

    def test_large_document_split(self):
        """
        A document longer than one AMP value is split over several and
        comes back whole.
        """
        state = NodeState(address=NODE_A, applications={
            "app%04d" % (i,): Application(name="app%04d" % (i,),
                                          image="lab/busybox:latest")
            for i in range(400)})
        value, strings = _round_trip(NodeStateArgument(), state)
        self.assertEqual(value, state)
        self.assertIn(b"value.1", strings)
        self.assertTrue(all(len(part) <= amp.MAX_VALUE_LENGTH
                            for part in strings.values()))

    def test_oversized_refused(self):
        """
        A document longer than the protocol allows is refused when read.
        """
        step = amp.MAX_VALUE_LENGTH
        strings = {b"value": b"[" + b" " * (step - 1)}
        for number in range(1, MAXIMUM_DOCUMENT_BYTES // step + 2):
            strings[b"value.%d" % (number,)] = b" " * step
        with self.assertRaises(SerializationError):
            RoutesArgument().fromBox(b"value", strings, {}, None)

    def test_not_json_refused(self):
        """
        A document that is not JSON is refused.
        """
        with self.assertRaises(SerializationError):
            RoutesArgument().fromBox(b"value", {b"value": b"{"}, {}, None)


def _services(directory, clock=None):
    """
    :return: ``(local agents, services)``: the :func:`local_pair` agents of
        nodes A and B and an :class:`AgentService` over each one's parts.
    """
    clock = Clock() if clock is None else clock
    agents = local_pair(directory)
    services = {}
    for agent in agents:
        services[agent.address] = AgentService(
            clock, lambda address, agent=agent: agent,
            DeployLock("%s/lock-%s" % (directory, agent.address)),
            expected_errors=(Exception,))
    return agents, services


def remote_pair(directory):
    """
    :param directory: Where the nodes keep their node keys and locks.
    :return: ``RemoteNodeAgent`` for A and B, reaching in memory the agent
        protocol over local agents on fake parts.
    """
    _, services = _services(directory)
    network = LoopbackNetwork(services)
    connections = AgentConnections(network.connect)
    return (FlushingAgent(RemoteNodeAgent(connections, NODE_A), network),
            FlushingAgent(RemoteNodeAgent(connections, NODE_B), network))


class RemoteNodeAgentInterfaceTests(make_inodeagent_tests(remote_pair)):
    """
    ``INodeAgent`` tests for :class:`RemoteNodeAgent`, through the agent
    protocol in memory over local agents.
    """


class RemoteNodeAgentTests(SynchronousTestCase):
    """
    Tests for :class:`RemoteNodeAgent` beyond the interface: errors, the
    lock, progress, logs, lost connections.
    """

    def setUp(self):
        directory = temporary_directory(self)
        self.clock = Clock()
        self.locals, self.services = _services(directory, self.clock)
        self.network = LoopbackNetwork(self.services)
        self.logged = []
        self.connections = AgentConnections(self.network.connect,
                                            log=self.logged.append)
        self.agent = self.remote(NODE_A)

    def remote(self, address, lock=None):
        """
        :return: A flushing :class:`RemoteNodeAgent` for ``address``.
        """
        return FlushingAgent(RemoteNodeAgent(self.connections, address,
                                             lock=lock), self.network)

    def test_report_address(self):
        """
        The report names the node by the address the client used.
        """
        self.assertEqual(self.successResultOf(self.agent.report()).address,
                         NODE_A)

    def test_one_connection(self):
        """
        Every call to a node goes through one connection.
        """
        self.successResultOf(self.agent.report())
        first = self.network.pumps[NODE_A]
        self.successResultOf(self.agent.stop_application("web"))
        self.assertIs(self.network.pumps[NODE_A], first)

    def test_operation_failed(self):
        """
        A step the node cannot do fails with one line naming the node, the
        step and the node's reason.
        """
        failure = self.failureResultOf(
            self.agent.start_application(WEB), NodeStepFailed)
        message = str(failure.value)
        self.assertTrue(message.startswith(
            "%s: start-application web: " % (NODE_A,)), message)
        self.assertNotIn("\n", message)
        self.assertFalse(failure.value.unreachable)

    def test_agent_not_running(self):
        """
        A node whose agent does not run is unreachable, in one line that
        says where to look.
        """
        del self.network.services[NODE_B]
        failure = self.failureResultOf(self.remote(NODE_B).report(),
                                       NodeStepFailed)
        self.assertTrue(failure.value.unreachable)
        message = str(failure.value)
        self.assertIn("systemctl status flocker-node", message)
        self.assertNotIn("\n", message)

    def test_connection_lost_mid_step(self):
        """
        An agent that goes away while a step runs fails that step, naming
        the node and where to look; the next call connects again and works.
        """
        pending = Deferred()
        self.locals[0].docker.remove = lambda name: pending
        d = self.agent.stop_application("web")
        self.assertNoResult(d)
        self.network.drop(NODE_A)
        failure = self.failureResultOf(d, NodeStepFailed)
        self.assertIn("%s: stop-application web: " % (NODE_A,),
                      str(failure.value))
        self.assertIn("systemctl status flocker-node", str(failure.value))
        self.assertEqual(self.successResultOf(self.agent.report()).address,
                         NODE_A)

    def test_lock(self):
        """
        A deploy's first command takes the node's lock; another deploy is
        refused (its failure says locked) until the first releases it.
        """
        first = self.remote(NODE_A, lock="deploy-1")
        second = self.remote(NODE_A, lock="deploy-2")
        self.successResultOf(first.report())
        failure = self.failureResultOf(second.report(), NodeStepFailed)
        self.assertTrue(failure.value.locked)
        self.successResultOf(first.release_lock())
        self.successResultOf(second.report())

    def test_lock_ends_with_connection(self):
        """
        A lease ends when the connection that took it closes (a client that
        died holds no node).
        """
        self.successResultOf(self.remote(NODE_A, lock="deploy-1").report())
        self.network.drop(NODE_A)
        other = AgentConnections(self.network.connect)
        agent = FlushingAgent(RemoteNodeAgent(other, NODE_A, lock="deploy-2"),
                              self.network)
        self.successResultOf(agent.report())

    def test_progress(self):
        """
        A transfer's progress reaches the caller's progress object, which
        is finished when the call ends.
        """
        self.successResultOf(self.agent.create_volume("web", None))
        progress = RecordingProgress()
        sent = self.successResultOf(self.agent.push_volume(
            "web", NODE_B, progress))
        self.assertEqual((progress.updates, progress.finished),
                         ([(sent, sent)], True))

    def test_log_one_tree(self):
        """
        The node's eliot messages come back to the client, in the task of
        the client's call.
        """
        with start_action(action_type="test:deploy") as action:
            self.successResultOf(self.agent.report())
        types = [message.get("action_type") for message in self.logged]
        self.assertIn("flocker:node:report", types)
        self.assertEqual({message["task_uuid"] for message in self.logged},
                         {action.task_uuid})

    def test_log_after_answer(self):
        """
        A message the node logs in the client's task after the call
        answered (the rest of a step that answers early) still comes back
        while the connection lasts; the messages of the connection's
        latest ``WATCHED_TASKS`` tasks only.
        """
        actions = []

        def remove(name):
            actions.append(current_action())
            return succeed(None)
        self.locals[0].docker.remove = remove
        tasks = []
        for _ in range(_server.WATCHED_TASKS + 1):
            with start_action(action_type="test:deploy") as action:
                self.successResultOf(self.agent.stop_application("web"))
            tasks.append(action.task_uuid)
        for node_action in actions:
            with node_action.context():
                log_message(message_type="test:late")
        self.network.flush()
        self.assertEqual(
            [message["task_uuid"] for message in self.logged
             if message.get("message_type") == "test:late"], tasks[1:])

    def test_log_once(self):
        """
        A node's message that comes back on two connections (directly, and
        passed on by the node that pushed to it) is logged once.
        """
        with start_action(action_type="test:deploy"):
            self.successResultOf(self.agent.report())
            self.successResultOf(self.remote(NODE_B).report())
        message = dict(self.logged[-1])
        before = len(self.logged)
        self.connections._log(message)
        self.connections._log(dict(message, task_level=[99]))
        self.assertEqual(self.logged[before:],
                         [dict(message, task_level=[99])])

    def test_version_mismatch(self):
        """
        A client of the previous protocol version (one that does not know
        its newer commands) is refused by the agent at the handshake, before
        any step runs, in one line naming the node, both versions and what
        to do.
        """
        self.patch(_remote, "PROTOCOL_VERSION", PROTOCOL_VERSION - 1)
        failure = self.failureResultOf(self.agent.report(), NodeStepFailed)
        self.assertEqual(
            (str(failure.value), failure.value.cause.__class__),
            ("%s: report: flocker-node %s speaks protocol %d, not %d: "
             "install the same Flocker version on the client and the nodes"
             % (NODE_A, __version__, PROTOCOL_VERSION, PROTOCOL_VERSION - 1),
             VersionMismatch))


class AgentProtocolTests(SynchronousTestCase):
    """
    Tests for the agent side of the protocol: what it refuses, and that it
    goes on serving.
    """

    def setUp(self):
        directory = temporary_directory(self)
        _, services = _services(directory)
        self.service = services[NODE_A]

    def connect(self):
        """
        :return: ``(client protocol, pump)`` connected to the agent.
        """
        client = AgentClientProtocol()
        return client, loopback(client, AgentProtocol(self.service))

    def call(self, client, pump, command, **arguments):
        """
        :return: A fired ``Deferred`` with the command's outcome (collected
            before the answer arrives: AMP drops connections whose failed
            calls nobody handles).
        """
        outcome = []
        client.callRemote(command, **arguments).addBoth(outcome.append)
        pump.flush()
        [result] = outcome
        return fail(result) if isinstance(result, Failure) else succeed(
            result)

    def hello(self, client, pump):
        return self.successResultOf(self.call(
            client, pump, Hello, version=PROTOCOL_VERSION, address=NODE_A))

    def test_hello(self):
        """
        ``Hello`` answers the protocol version.
        """
        client, pump = self.connect()
        self.assertEqual(self.hello(client, pump)["version"],
                         PROTOCOL_VERSION)

    def test_hello_address(self):
        """
        ``Hello`` refuses an address the node address rule refuses (empty,
        with a space, starting with '-', too long), naming the rule.
        """
        for address in ["", "a b", "-oProxyCommand", "a" * 300, "a..b"]:
            client, pump = self.connect()
            failure = self.failureResultOf(self.call(
                client, pump, Hello, version=PROTOCOL_VERSION,
                address=address), BadRequest)
            self.assertIn("not an address (an IP address or host name",
                          str(failure.value))

    def test_other_version(self):
        """
        A client speaking an earlier or a later version is refused with
        ``VersionMismatch``, and the connection then still takes a ``Hello``
        of this version.
        """
        for version in [1, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1]:
            client, pump = self.connect()
            failure = self.failureResultOf(self.call(
                client, pump, Hello, version=version, address=NODE_A),
                VersionMismatch)
            self.assertIn("speaks protocol %d, not %d" % (
                PROTOCOL_VERSION, version), str(failure.value))
            self.assertEqual(self.hello(client, pump)["version"],
                             PROTOCOL_VERSION)

    @capture_logging(None)
    def test_hello_first(self, logger):
        """
        A command before ``Hello`` is refused (and logged); after ``Hello``
        the connection works.
        """
        client, pump = self.connect()
        self.failureResultOf(self.call(client, pump, Report,
                                       eliot_task="x@/1"), HelloFirst)
        self.hello(client, pump)
        with start_action(action_type="test") as action:
            task = action.serialize_task_id().decode("ascii")
        answer = self.successResultOf(self.call(client, pump, Report,
                                                eliot_task=task))
        self.assertEqual(answer["state"].address, NODE_A)
        self.assertEqual([m["what"] for m in logger.messages
                          if m.get("message_type") ==
                          AGENT_REFUSED.message_type],
                         ["a command before Hello"])

    @capture_logging(None)
    def test_unknown_command(self, logger):
        """
        An unknown command is refused and logged; the connection goes on.
        """
        class Unknown(amp.Command):
            arguments = []
            response = []
        client, pump = self.connect()
        self.hello(client, pump)
        self.failureResultOf(self.call(client, pump, Unknown),
                             amp.UnhandledCommand)
        self.assertEqual([m["what"] for m in logger.messages
                          if m.get("message_type") ==
                          AGENT_REFUSED.message_type],
                         ["unknown command b'Unknown'"])
        self.hello(client, pump)

    @capture_logging(None)
    def test_bad_arguments(self, logger):
        """
        Arguments that do not decode are refused as a bad request and
        logged; the connection goes on.
        """
        class BadStart(amp.Command):
            commandName = b"StartApplication"
            arguments = [(b"eliot_task", amp.Unicode()),
                         (b"application", amp.Unicode())]
            response = []
            errors = {BadRequest: b"BAD_REQUEST"}
        client, pump = self.connect()
        self.hello(client, pump)
        self.failureResultOf(self.call(client, pump, BadStart,
                                       eliot_task="x@/1",
                                       application="not json"), BadRequest)
        self.assertTrue([m for m in logger.messages
                         if m.get("message_type") ==
                         AGENT_REFUSED.message_type])
        self.hello(client, pump)

    @capture_logging(None)
    def test_malformed_bytes(self, logger):
        """
        Bytes that are not AMP close that connection (logged); other
        connections are served.
        """
        client, pump = self.connect()
        client.transport.write(b"\x00\x05hello\x00\x00\x00\x00")
        pump.flush()
        self.assertTrue(pump.closed)
        self.assertTrue([m for m in logger.messages
                         if m.get("message_type") ==
                         AGENT_REFUSED.message_type])
        other, other_pump = self.connect()
        self.hello(other, other_pump)

    def test_internal_error(self):
        """
        A bug in an operation is answered as a failed operation (one line)
        and logged with its traceback; the connection goes on.
        """
        self.service.expected_errors = (SerializationError,)
        self.service.agent(NODE_A).docker.list = lambda: fail(
            ZeroDivisionError("oops"))
        client, pump = self.connect()
        self.hello(client, pump)
        with start_action(action_type="test") as action:
            task = action.serialize_task_id().decode("ascii")
        failure = self.failureResultOf(self.call(client, pump, Report,
                                                 eliot_task=task),
                                       OperationFailed)
        self.assertIn("internal error", str(failure.value))
        self.hello(client, pump)

    def test_stop_missing(self):
        """
        Stopping an application that does not exist succeeds (idempotent).
        """
        client, pump = self.connect()
        self.hello(client, pump)
        with start_action(action_type="test") as action:
            task = action.serialize_task_id().decode("ascii")
        self.assertEqual(self.successResultOf(self.call(
            client, pump, StopApplication, eliot_task=task, name="nope")), {})


class RoutesSetTests(SynchronousTestCase):
    """
    Routes given through the protocol reach the node as a set.
    """

    def test_set_routes(self):
        """
        ``set_routes`` makes the node's routes exactly those given.
        """
        directory = temporary_directory(self)
        a, b = remote_pair(directory)
        routes = pset([Route(port=8080, address=NODE_B)])
        self.successResultOf(a.set_routes(routes))
        self.assertEqual(self.successResultOf(a.report()).routes, routes)


class DeployOverAgentsTests(SynchronousTestCase):
    """
    :func:`flocker.cli._cluster.deploy_over_ssh` through agent connections
    (in memory here, through ``connect``).
    """

    def setUp(self):
        self.clock = Clock()
        self.cluster = FakeCluster([NODE_A, NODE_B])
        directory = temporary_directory(self)
        os.makedirs(directory)
        self.network = LoopbackNetwork({
            address: AgentService(
                self.clock, lambda _, agent=agent: agent,
                DeployLock(os.path.join(directory, address)),
                expected_errors=(FakeNodeError,))
            for address, agent in self.cluster.agents.items()}, self.clock)
        self.deployment = Deployment(nodes=[
            Node(address=NODE_A, applications=[Application(
                name="plain", image="lab/busybox:latest")]),
            Node(address=NODE_B)])

    def deploy(self, **kwargs):
        """
        :return: The ``DeployResult`` of a deploy run to its end.
        """
        d = deploy_over_ssh(self.clock, self.deployment,
                            MemoryCommandRunner(),
                            connect=self.network.connect, **kwargs)
        self.clock.pump([0] * 50)
        return self.successResultOf(d)

    def test_dry_run_says_how_reached(self):
        """
        A dry run says, per node, how its agent was reached, and changes
        nothing.
        """
        reached = {}
        result = self.deploy(dry_run=True, reached=reached.update)
        self.assertEqual(reached, {NODE_A: "loopback", NODE_B: "loopback"})
        self.assertEqual(self.cluster.agents[NODE_A].state.running, pset())
        self.assertTrue(result.dry_run)

    def test_excluded_node_resolved_not_contacted(self):
        """
        A node excluded from the deploy (declared dead by a failover) is
        not contacted, but its address is resolved with the others' and
        handed to the plan (the routes to what stays on it).
        """
        seen = []

        def plan_for(state, addresses):
            seen.append((sorted(state.nodes), dict(addresses)))
            return Sequentially(changes=[])
        self.deploy(plan_for=plan_for, exclude=frozenset([NODE_A]))
        self.assertEqual(seen, [([NODE_B], {NODE_A: NODE_A,
                                            NODE_B: NODE_B})])
        self.assertNotIn(NODE_A, self.network.pumps)

    def test_deploy_converges_and_closes(self):
        """
        A deploy converges the nodes, then ends its leases and closes its
        connections: a second deploy finds nothing to do.
        """
        self.assertTrue(self.deploy().converged)
        self.assertIn("plain", self.cluster.agents[NODE_A].state.running)
        self.assertTrue(all(pump.closed
                            for pump in self.network.pumps.values()))
        again = self.deploy()
        self.assertEqual(sum(again.changed.values()), 0)

    def test_rotate_over_agents(self):
        """
        ``rotate_over_ssh`` rotates every node's key through the agent
        connections, then ends its leases and closes its connections: a
        second rotation works too, and each gives every node a new key.
        """
        runner = _HostKeysRunner({NODE_A: _host_key(), NODE_B: _host_key()})
        keys = [{a: agent.state.node_key.public_key
                 for a, agent in self.cluster.agents.items()}]
        for _ in range(2):
            d = rotate_over_ssh(self.clock, self.deployment, runner,
                                connect=self.network.connect)
            self.clock.pump([0] * 50)
            result = self.successResultOf(d)
            self.assertEqual((result.ok, sorted(result.rotated)),
                             (True, [NODE_A, NODE_B]))
            self.assertTrue(all(pump.closed
                                for pump in self.network.pumps.values()))
            keys.append({a: agent.state.node_key.public_key
                         for a, agent in self.cluster.agents.items()})
        for address in (NODE_A, NODE_B):
            self.assertEqual(len({k[address] for k in keys}), 3)


class _HostKeysRunner(MemoryCommandRunner):
    """
    A runner that verified the given host keys (as a deploy's connections
    would have).
    """

    def __init__(self, keys):
        MemoryCommandRunner.__init__(self)
        self._keys = keys

    def host_keys(self):
        return dict(self._keys)


def _host_key():
    from twisted.conch.ssh.keys import Key
    from flocker.volume._nodekey import generate_key_pair
    return Key.fromString(generate_key_pair()[0]).public()
