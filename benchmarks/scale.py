"""
Scale benchmark, by simulation (no root, no lab): the planner at 1,000
nodes, a whole deploy fanned out to 100 in-memory nodes, and the memory of
the deploy client and of one node command.

    python benchmarks/scale.py [--quick] [--reps N] [--max-reps N]
                               [--max-seconds S]

* ``plan_1000_nodes_s``: ``plan_changes`` for 1,000 nodes running 3
  applications each (3,000 applications), against the state of a cluster
  where 10% of them still run on the previous node and 10% run an older
  image (``synthetic_cluster``), beside the same at 100 nodes (300
  applications); ``plan_ratio_1000_100`` is the ratio.  Every node routes
  every other node's ports, so the state holds nodes x applications routes:
  100 times as many at 1,000 nodes, not 10.
* ``fanout_100_nodes_s``: one deploy through the client's own code path
  (:func:`flocker.cli.deploy`: gather the reports, plan, run the changes)
  to 100 ``FakeCluster`` nodes running 3 applications each, moving 10% of
  them (with their volumes) and upgrading 10%; the cluster is brought to
  its starting state by an untimed deploy first.
* ``fanout_100_nodes_protocol_s``: the same deploy through
  ``RemoteNodeAgent`` and the agent protocol (AMP) in memory: each node is
  an ``AgentService`` over its fake agent, connected to the client by an
  in-memory loopback, so every command and answer is encoded and decoded
  as on a real cluster, without SSH.  Nodes share one process, hence one
  eliot log, sent back to the client per task as a real agent does;
  ``fanout_protocol_ratio`` = protocol / in-memory.
* ``client_rss_mb``: peak RSS of a fresh interpreter that imports
  ``flocker-deploy`` (``flocker.cli.script``) and runs the in-memory
  100-node deploy under the reactor.
* ``node_rss_mb``: peak RSS of a fresh interpreter acting as a node's
  agent with 50 applications (every third with a volume): an
  ``AgentService`` over a ``LocalNodeAgent`` with a ``FakeDockerClient``,
  ``MemoryVolumeService`` and ``MemoryRouteManager`` answers ``Report``
  and then ``SetRoutes`` with 50 routes through the protocol.  (The real
  agent's RSS on a lab node is ``agent_rss_mb`` in ``deploy.py``.)
* Baseline for both: ``python_rss_mb``, a fresh interpreter importing
  nothing.

Timings are medians of repetitions, min-max in the table; the two plan
sizes, and the two fan-outs, run in each repetition in turn (order
rotated), and each ratio is the median of the repetitions' ratios, with
``NAME_spread`` (interquartile range over median) and ``NAME_uncertainty``
(half-width of the median's 95 % confidence interval over the median)
beside it.  The plans and the fan-outs each repeat until their ratio's
uncertainty is under 2.5 % (plans: 9 to 100 repetitions within 120 s;
fan-outs: 5 to 20 within 180 s; ``--quick``: 3 of each; ``--reps``,
``--max-reps`` and ``--max-seconds`` change both).  Each planning follows
a collection of the last one's garbage.  The 100-node plan, a few
milliseconds, is timed as the mean of as many plannings as last about as
long as one 1,000-node plan; the direct fan-out, as the mean of as many
(at most 20) as last about as long as one through the protocol.  MB is
2^20 bytes.  Prints the tables, then one JSON object as the last line.
"""

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    add_repetition_options, emit, meets, print_ratios, print_table,
    ratio_figures, repeat_until_settled, repetitions_from, rotated,
    settled_words, status_kb, summary, timed,
)

# Flocker itself is imported where it is used, so each child process loads
# only what the program it stands for would.

APPS_PER_NODE = 3
PLAN_NODES = (100, 1000)
FANOUT_NODES = 100
#: At most this many direct fan-outs make one timed sample.
FANOUT_DIRECT_TIMES = 20
NODE_APPLICATIONS = 50
MOVED = 0.1
CHANGED = 0.1

#: The baseline: a fresh interpreter printing its peak RSS, nothing else.
BARE = ("import json\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmHWM:'):\n"
        "        print(json.dumps({'rss_kb': int(line.split()[1])}))\n")

TARGETS = [
    ("plan_1000_nodes_s", "<", 0.5),
    ("client_rss_mb", "<", 100),
    ("node_rss_mb", "<", 60),
]


def build_cluster(nodes, apps):
    """
    :return: ``synthetic_cluster(nodes, apps)`` with 10% moved and 10%
        changed, built with the cyclic garbage collector off (collections
        rescanning its millions of route values as they are made take half
        the building time, none of it the planner's).
    """
    from flocker.node.testtools import synthetic_cluster
    gc.disable()
    try:
        return synthetic_cluster(nodes, apps, moved=MOVED, changed=CHANGED)
    finally:
        gc.enable()


def measure_plans(sizes, policy):
    """
    :param sizes: Numbers of nodes: the ratio is the second's planning
        time over the first's.
    :param Repetitions policy: The bounds of the repetitions.
    :return: ``(plans, settling)``: ``dict`` of number of nodes to
        ``(samples, changes, routes)``: seconds of one planning of a
        cluster of that many nodes in each repetition, the plan's number of
        leaf changes, and the number of routes in the current state; and
        the :class:`Settling` of ``plan_ratio_1000_100``.  Each repetition
        plans every size, in an order rotated from one repetition to the
        next, each planning after a collection of the last one's garbage.
        A size that plans faster than the largest is planned as many times
        over as the untimed first planning says it takes to last about as
        long, and its sample is their mean: a planning of a few
        milliseconds, timed once, is mostly the machine's noise.
    """
    from flocker._change import leaves
    from flocker.node._plan import plan_changes
    clusters = {nodes: build_cluster(nodes, nodes * APPS_PER_NODE)
                for nodes in sizes}
    # As in plan.py: the inputs are frozen out of the collector's sight,
    # so the figure is the planner's, not this benchmark's heap size.
    gc.collect()
    gc.freeze()
    try:
        first = {nodes: timed(plan_changes, *cluster)
                 for nodes, cluster in clusters.items()}
        plans = {nodes: plan for nodes, (_, plan) in first.items()}
        longest = max(seconds for seconds, _ in first.values())
        times = {nodes: max(1, int(round(longest / max(seconds, 1e-6))))
                 for nodes, (seconds, _) in first.items()}
        samples = {nodes: [] for nodes in sizes}

        def planned(nodes):
            for _ in range(times[nodes]):
                plan_changes(*clusters[nodes])

        def repetition(index):
            this = {}
            for nodes in rotated(sizes, index):
                # Every planning starts from the same heap (as in plan.py).
                gc.collect()
                this[nodes] = timed(planned, nodes)[0] / times[nodes]
                samples[nodes].append(this[nodes])
            return {"plan_ratio_1000_100": this[sizes[1]] / this[sizes[0]]}

        settling = repeat_until_settled(repetition, policy)
    finally:
        gc.unfreeze()
    return ({nodes: (samples[nodes], len(leaves(plans[nodes])),
                     sum(len(node.routes)
                         for node in clusters[nodes][1].nodes.values()))
             for nodes in sizes}, settling)


def deployments(nodes):
    """
    :return: ``(before, after)``: a deployment of ``nodes`` nodes running
        ``APPS_PER_NODE`` applications each, and the one a deploy then
        converges to (10% of the applications on another node, 10% with a
        new image).
    """
    from flocker._model import Deployment, Node
    from flocker.node.testtools import synthetic_cluster
    after, state = synthetic_cluster(nodes, nodes * APPS_PER_NODE,
                                     moved=MOVED, changed=CHANGED)
    before = Deployment(nodes=[
        Node(address=address, applications=node.applications.values())
        for address, node in sorted(state.nodes.items())])
    return before, after


def converge(deployment, agents):
    """
    Deploy ``deployment`` to ``agents`` with :func:`flocker.cli.deploy`.

    :return: The ``DeployResult``.
    :raises RuntimeError: If the deploy did not finish at once (every agent
        here answers synchronously) or did not converge.
    """
    from flocker.cli import deploy
    outcome = []
    deploy(deployment, agents).addBoth(outcome.append)
    if not outcome:
        raise RuntimeError("the in-memory deploy did not finish")
    result = outcome[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    if not result.converged:
        problems = ([line for lines in result.failed.values()
                     for line in lines] + list(result.unreachable.values()))
        raise RuntimeError("the in-memory deploy did not converge (%d "
                           "problems), first: %s" % (len(problems),
                                                     problems[0]))
    return result


def protocol_agents(cluster):
    """
    :param FakeCluster cluster: The nodes.
    :return: ``(agents, connections)``: a ``RemoteNodeAgent`` per node,
        reaching in memory an ``AgentService`` over the node's fake agent.
    """
    import tempfile

    from twisted.internet.task import Clock

    from flocker.cli import AgentConnections, RemoteNodeAgent
    from flocker.cli.testtools import FlushingAgent, LoopbackNetwork
    from flocker.node import DeployLock
    from flocker.node._fake import FakeNodeError
    from flocker.node._server import AgentService
    directory = tempfile.mkdtemp(prefix="flocker-scale-")
    network = LoopbackNetwork({
        address: AgentService(
            Clock(), lambda _, agent=agent: agent,
            DeployLock(os.path.join(directory, address)),
            expected_errors=(FakeNodeError,))
        for address, agent in cluster.agents.items()})
    connections = AgentConnections(network.connect)
    return ({address: FlushingAgent(RemoteNodeAgent(connections, address),
                                    network)
             for address in cluster.agents}, (connections, network))


def fanout(nodes, through_protocol, times=1):
    """
    ``times`` deploys one after the other, each to ``nodes`` fresh
    in-memory nodes that an untimed deploy brought to the starting state
    first.

    :return: ``(seconds of one deploy (the mean), number of changes one
        made)``.
    :raises RuntimeError: If a deploy left changes undone.
    """
    from flocker._change import leaves
    from flocker.cli import FakeCluster, plan_changes
    before, after = deployments(nodes)
    prepared = []
    for _ in range(times):
        cluster = FakeCluster([node.address for node in after.nodes])
        converge(before, cluster.agents)
        prepared.append((cluster, _deployer(after, cluster,
                                            through_protocol)))
    gc.collect()
    seconds, results = timed(lambda: [deploy() for _, deploy in prepared])
    for cluster, _ in prepared:
        if leaves(plan_changes(after, cluster.state())):
            raise RuntimeError("the deploy left changes undone")
    return seconds / times, sum(results[0].changed.values())


def _deployer(deployment, cluster, through_protocol):
    """
    :return: A function deploying ``deployment`` to the nodes of
        ``cluster``, through the agent protocol in memory or straight to
        their fake agents, and returning the ``DeployResult``.
    """
    if not through_protocol:
        return lambda: converge(deployment, cluster.agents)
    agents, (connections, network) = protocol_agents(cluster)

    def deploy_once():
        result = converge(deployment, agents)
        closed = []
        connections.close().addBoth(closed.append)
        network.flush()
        if not closed:
            raise RuntimeError("the in-memory connections did not end")
        return result
    return deploy_once


def measure_fanouts(nodes, policy):
    """
    Deploy to ``nodes`` in-memory nodes straight to their fake agents and
    through the agent protocol, both in each repetition (order
    alternating), until the ratio of the second's time over the first's
    settles.  The direct deploy, many times faster, is timed as the mean
    of as many deploys as the untimed first ones say last about as long
    as one through the protocol.

    :param Repetitions policy: The bounds of the repetitions.
    :return: ``(fanouts, changes, settling)``: ``dict`` of ``False``
        (direct) and ``True`` (protocol) to the seconds of each
        repetition, the number of changes a deploy made, and the
        :class:`Settling` of ``fanout_protocol_ratio``.
    """
    first = {way: fanout(nodes, way)[0] for way in (False, True)}
    times = {True: 1, False: max(1, min(FANOUT_DIRECT_TIMES, int(round(
        first[True] / max(first[False], 1e-6)))))}
    fanouts = {False: [], True: []}
    changes = {}

    def repetition(index):
        this = {}
        # Alternated, so neither always runs on a heap the other just left.
        for way in rotated([False, True], index):
            this[way], changes[way] = fanout(nodes, way, times[way])
            fanouts[way].append(this[way])
        return {"fanout_protocol_ratio": this[True] / this[False]}

    settling = repeat_until_settled(repetition, policy)
    return fanouts, changes[False], settling


def child_client():
    """
    Child mode: import ``flocker-deploy``, run the in-memory fan-out deploy
    under the reactor, print the peak RSS as JSON.
    """
    from importlib import import_module

    from twisted.internet.task import react
    # What flocker-deploy loads, whether or not this run uses all of it.
    import_module("flocker.cli.script")

    def main(reactor):
        from twisted.internet.defer import succeed
        fanout(FANOUT_NODES, through_protocol=False)
        return succeed(None)
    _react_and_report(react, main)


def child_node():
    """
    Child mode: act as a node's agent with ``NODE_APPLICATIONS``
    applications, answering ``Report`` then ``SetRoutes`` through the
    protocol; print the peak RSS as JSON.
    """
    import tempfile

    from eliot import start_action
    from twisted.internet.defer import inlineCallbacks
    from twisted.internet.task import react

    from flocker._model import Application, AttachedVolume, Port, Route
    from flocker.node import DeployLock, LocalNodeAgent
    from flocker.node._amp import (
        PROTOCOL_VERSION, AgentClientProtocol, Hello, Report, SetRoutes,
    )
    from flocker.node._docker import FakeDockerClient
    from flocker.node._server import AgentProtocol, AgentService
    from flocker.node.testtools import loopback
    from flocker.route import MemoryRouteManager
    from flocker.volume import MemoryNetwork, MemoryVolumeService

    address, other = "10.0.0.1", "10.0.0.2"
    image = "flocker/busybox:latest"

    @inlineCallbacks
    def main(reactor):
        agent = LocalNodeAgent(
            address, FakeDockerClient(images=[image], node=address),
            MemoryVolumeService("node-1", address, MemoryNetwork(), reactor),
            MemoryRouteManager(node=address))
        for index in range(NODE_APPLICATIONS):
            application = Application(
                name="app%d" % (index,), image=image,
                environment={"INDEX": str(index)},
                ports=[Port(internal=80, external=10000 + index)],
                volume=(AttachedVolume(mountpoint="/data")
                        if index % 3 == 0 else None))
            if application.volume is not None:
                yield agent.create_volume(application.name, None)
            yield agent.start_application(application)
        service = AgentService(reactor, lambda _: agent, DeployLock(
            os.path.join(tempfile.mkdtemp(), "lock")))
        client = AgentClientProtocol()
        pump = loopback(client, AgentProtocol(service), reactor)
        yield client.callRemote(Hello, version=PROTOCOL_VERSION,
                                address=address)
        with start_action(action_type="benchmark:node") as action:
            task = action.serialize_task_id().decode("ascii")
        answer = yield client.callRemote(Report, eliot_task=task)
        if len(answer["state"].running) != NODE_APPLICATIONS:
            raise RuntimeError("report shows %d applications running" % (
                len(answer["state"].running),))
        yield client.callRemote(SetRoutes, eliot_task=task, routes=frozenset(
            Route(port=20000 + index, address=other)
            for index in range(NODE_APPLICATIONS)))
        installed = yield agent.routes.get_routes()
        if len(installed) != NODE_APPLICATIONS:
            raise RuntimeError("%d routes installed" % (len(installed),))
        pump.close()
    _react_and_report(react, main)


def _react_and_report(react, main):
    """
    Run ``main`` under the reactor, then print the peak RSS as JSON (from
    an exit hook: ``react`` ends the process).
    """
    import atexit
    atexit.register(lambda: print(json.dumps({"rss_kb": _peak_rss_kb()}),
                                  flush=True))
    react(main)


def _peak_rss_kb():
    """
    :return: This process's peak RSS in kB.

    ``ru_maxrss`` survives ``execve``: a child of a large process starts
    with its parent's peak (this benchmark's own is hundreds of MB by the
    time it starts the children).  Linux's ``VmHWM`` is the same peak for
    this process's own memory only; ``ru_maxrss`` (also kB on Linux) is the
    fallback elsewhere.
    """
    try:
        return status_kb("self", "VmHWM")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mb(arguments):
    """
    :param arguments: Arguments after ``python``.
    :return: Peak RSS in MB of a fresh interpreter run with them, which
        prints ``{"rss_kb": …}`` last.
    :raises RuntimeError: If it fails.
    """
    result = subprocess.run([sys.executable] + arguments,
                            capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(arguments),
                                              result.stderr.strip()))
    return json.loads(result.stdout.strip().splitlines()[-1])["rss_kb"] / 1024


def cell(samples):
    """
    :return: Table cells ``median`` and ``min-max`` of ``samples`` seconds.
    """
    s = summary(samples)
    return ["%.4f" % s["median"], "%.4f-%.4f" % (s["min"], s["max"])]


def verdict(value, comparison, limit):
    return "met" if meets(value, comparison, limit) else "MISSED"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true",
                        help="3 repetitions of each part (same sizes)")
    add_repetition_options(parser)
    parser.add_argument("--child", choices=["client", "node"],
                        help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child == "client":
        return child_client()
    if options.child == "node":
        return child_node()
    plan_policy = repetitions_from(parser, options,
                                   3 if options.quick else 9,
                                   3 if options.quick else 100, 120.0)
    fanout_policy = repetitions_from(parser, options,
                                     3 if options.quick else 5,
                                     3 if options.quick else 20, 180.0)

    plans = {}
    rows = []
    measured, plan_settling = measure_plans(PLAN_NODES, plan_policy)
    for nodes in PLAN_NODES:
        samples, changes, routes = measured[nodes]
        plans[nodes] = statistics.median(samples)
        rows.append(["%d x %d" % (nodes, APPS_PER_NODE), nodes * APPS_PER_NODE,
                     routes, changes] + cell(samples)
                    + ["%.3f" % (plans[nodes] / routes * 1e6,)])
    small, big = PLAN_NODES
    print_table(
        "plan_changes, %d%% moved, %d%% changed; %d runs each"
        % (MOVED * 100, CHANGED * 100, plan_settling.repetitions), rows,
        ["nodes x apps each", "apps", "routes in state", "changes",
         "median s", "min-max s", "us per route"])
    print("1,000 / 100 nodes: %.1f times the time, %d times the routes\n" % (
        plans[big] / plans[small], (big * big) // (small * small)))

    fanouts, changes, fanout_settling = measure_fanouts(FANOUT_NODES,
                                                        fanout_policy)
    print_table(
        "flocker.cli.deploy to %d in-memory nodes x %d applications "
        "(%d changes); %d runs each"
        % (FANOUT_NODES, APPS_PER_NODE, changes,
           fanout_settling.repetitions), [
            ["FakeNodeAgent"] + cell(fanouts[False]),
            ["RemoteNodeAgent / agent protocol (AMP) / AgentService"]
            + cell(fanouts[True]),
        ], ["nodes reached through", "median s", "min-max s"])

    script = os.path.abspath(__file__)
    memory = {
        "python_rss_mb": peak_rss_mb(["-c", BARE]),
        "client_rss_mb": peak_rss_mb([script, "--child", "client"]),
        "node_rss_mb": peak_rss_mb([script, "--child", "node"]),
    }
    print_table("Peak RSS of a fresh interpreter (MB)", [
        ["bare python (baseline)", "%.1f" % memory["python_rss_mb"]],
        ["deploy client, %d in-memory nodes" % (FANOUT_NODES,),
         "%.1f" % memory["client_rss_mb"]],
        ["node agent: Report + SetRoutes, %d applications"
         % (NODE_APPLICATIONS,), "%.1f" % memory["node_rss_mb"]],
    ], ["process", "peak RSS MB"])

    ratios = dict(plan_settling.samples, **fanout_settling.samples)
    print_ratios("Ratios of each repetition", ratios.items())
    print("planner %s; fan-outs %s\n" % (settled_words(plan_settling),
                                         settled_words(fanout_settling)))
    figures = {
        "plan_1000_nodes_s": round(plans[big], 4),
        "plan_100_nodes_s": round(plans[small], 4),
        "fanout_100_nodes_s": round(statistics.median(fanouts[False]), 4),
        "fanout_100_nodes_protocol_s": round(
            statistics.median(fanouts[True]), 4),
        "client_rss_mb": round(memory["client_rss_mb"], 1),
        "node_rss_mb": round(memory["node_rss_mb"], 1),
        "python_rss_mb": round(memory["python_rss_mb"], 1),
        "plan_reps": plan_settling.repetitions,
        "fanout_reps": fanout_settling.repetitions,
        "settled": plan_settling.settled and fanout_settling.settled,
    }
    figures.update(ratio_figures("plan_ratio_1000_100",
                                 ratios["plan_ratio_1000_100"], digits=1))
    figures.update(ratio_figures("fanout_protocol_ratio",
                                 ratios["fanout_protocol_ratio"], digits=2))
    print("targets: " + "; ".join(
        "%s %s %s: %s (%s)" % (key, comparison, limit, figures[key],
                               verdict(figures[key], comparison, limit))
        for key, comparison, limit in TARGETS)
        + "; plan linear in nodes: ratio %.1f for 10x the nodes"
        % (figures["plan_ratio_1000_100"],))
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
