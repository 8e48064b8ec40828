"""
Benchmark of Flocker's Docker client against the docker CLI, on one daemon.

    python benchmarks/docker.py [--quick] [--socket PATH] [--reps N]
                                [--max-reps N] [--max-seconds S]
                                [--containers N]

Measures, interleaved in one run against the same dockerd:

* ``create_start_s``: ``DockerClient.add`` (image check, name check, create,
  start) of an application with a published port, environment and command,
  on a client already in use (the library case: one client per process);
* ``create_start_cold_s``: the same with a new client each time (version
  negotiation and a new connection included);
* ``cli_run_s``: ``docker run -d`` with the same port, environment, command
  and image;
* ``report_s``: building the node's report in-process
  (the node agent's ``report``, over this Docker client and empty volume
  and route sources) with ``--containers`` Flocker containers running;
* ``report_cli_s``: the ``flocker-node report`` process end to end (Python
  start-up and imports included) with those containers, asking a
  ``flocker-node agent`` started on this machine for the daemon and an
  empty pool the benchmark makes.

Medians over the repetitions; ``ratio`` is the median of each
repetition's create_start_s / cli_run_s (the two run one after the other,
their order alternating), ``ratio_spread`` their interquartile range over
median, ``ratio_uncertainty`` the half-width of the median's 95 %
confidence interval over the median.  The create+start repetitions go on
past ``--reps`` (7; 5 with ``--quick``) until the uncertainty is under
2.5 %, at most ``--max-reps`` (40; 10 with ``--quick``) or
``--max-seconds`` (120; 60 with ``--quick``); ``reps`` says how many ran,
``settled`` whether the uncertainty got under 2.5 %.
The report is timed ``--reps`` times (``report_reps``).  Prints a table, then one JSON object as the last line.

The daemon is ``--socket``, else ``$DOCKER_HOST`` (``unix://``), else lab
node 1's (``admin/lab up 1`` is run if no lab node is up).  Every container
the benchmark creates is removed at the end.  The image (default
``flocker/busybox:latest``) must be on the node.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from twisted.internet.defer import DeferredSemaphore, gatherResults
from twisted.internet.task import react
from twisted.internet.utils import getProcessOutputAndValue

from _common import (
    Settling, add_repetition_options, next_step, ratio_figures, ratio_row,
    recorded, repetitions_from,
)

from flocker._model import Application, Port
from flocker.node._docker import (
    DockerClient, socket_path_from_docker_host,
)
from flocker.node._local import LocalNodeAgent
from flocker.route import MemoryRouteManager
from flocker.testtools import wait_for_path
from flocker.volume import MemoryNetwork, MemoryVolumeService


def report_node_state(address, client):
    """
    :return: ``Deferred`` firing with the node report built by the node
        agent from ``client``; volumes and routes come from empty in-memory
        sources, so the figure is Docker's part of a report.
    """
    from twisted.internet import reactor
    volumes = MemoryVolumeService("bench", address, MemoryNetwork(), reactor)
    agent = LocalNodeAgent(address, client, volumes,
                           MemoryRouteManager(node=address))
    return agent.report()

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Exits at once on SIGTERM, so clean-up does not wait for kill timeouts.
SLEEPER = ["sh", "-c",  # runs in a container
           "trap 'exit 0' TERM; sleep 3600 & wait"]


#: Set when this benchmark brought the lab up, so it takes it down again.
_STARTED_LAB = []


def find_lab_socket():
    """
    :return: Lab node 1's Docker socket, starting the lab if needed (and
        noting it in :data:`_STARTED_LAB`).
    """
    lab = os.path.join(REPO, "admin", "lab")
    status = subprocess.run([sys.executable, lab, "status", "--json"],
                            capture_output=True, text=True)
    if status.returncode != 0:
        subprocess.run([sys.executable, lab, "up", "1"], check=True)
        _STARTED_LAB.append(lab)
        status = subprocess.run([sys.executable, lab, "status", "--json"],
                                capture_output=True, text=True, check=True)
    description = json.loads(status.stdout)
    for node in description.get("nodes", []):
        socket_path = node.get("docker_socket")
        if socket_path:
            return socket_path
    raise SystemExit("benchmarks/docker.py: admin/lab status names no "
                     "node Docker socket; pass --socket")


async def timed(function, *args):
    """
    :return: Seconds ``await function(*args)`` took.
    """
    start = time.perf_counter()
    await function(*args)
    return time.perf_counter() - start


async def run_cli(reactor, socket_path, argv):
    """
    Run the docker CLI against the daemon; fail on a non-zero exit.
    """
    out, err, code = await getProcessOutputAndValue(
        "docker", ["-H", "unix://" + socket_path] + argv,
        env=dict(os.environ), reactor=reactor)
    if code != 0:
        raise RuntimeError("docker %s: %s" % (" ".join(argv),
                                              err.decode().strip()))
    return out


def application(name, port, image):
    return Application(name=name, image=image, command=SLEEPER,
                       environment={"BENCHMARK": "1"},
                       ports=[Port(internal=80, external=port)])


async def bench_create_start(reactor, socket_path, image, token, policy):
    """
    :param Repetitions policy: How many repetitions, at least and at most.
    :return: ``(times, settling)``: ``dict`` of lists of seconds for our
        client (warm and cold) and the CLI, and the :class:`Settling` of
        their ratio.
    """
    client = DockerClient(reactor, socket_path, stop_timeout=5)
    # Warm up the client (negotiation, connection) and the daemon's image
    # cache once for both sides, untimed.
    await client.add(application(token + "-warm", 20999, image))
    await client.remove(token + "-warm")
    times = {"ours": [], "cold": [], "cli": []}
    cli_names = []
    samples = {}
    started = time.monotonic()
    go_on, rep = True, 0
    while go_on:
        ours = application("%s-w%d" % (token, rep), 21000 + rep, image)
        cold = application("%s-c%d" % (token, rep), 22000 + rep, image)
        cli_name = "%s-cli%d" % (token, rep)
        cli_names.append(cli_name)
        cli_argv = ["run", "-d", "--name", cli_name, "-p",
                    "%d:80" % (23000 + rep,), "-e", "BENCHMARK=1", image
                    ] + SLEEPER

        async def cold_add():
            fresh = DockerClient(reactor, socket_path, stop_timeout=5)
            try:
                await fresh.add(cold)
            finally:
                await fresh.close()

        steps = [("ours", client.add, ours), ("cold", cold_add),
                 ("cli", run_cli, reactor, socket_path, cli_argv)]
        # Alternate the order so neither side always runs on a daemon just
        # disturbed by the other.
        if rep % 2:
            steps.reverse()
        for label, function, *args in steps:
            times[label].append(await timed(function, *args))
        await client.remove(ours.name)
        await client.remove(cold.name)
        await run_cli(reactor, socket_path, ["rm", "-f", cli_name])
        samples = recorded(samples, {
            "ratio": times["ours"][-1] / times["cli"][-1]})
        rep += 1
        go_on, settled = next_step(samples, policy,
                                   time.monotonic() - started)
    await client.close()
    return times, Settling(samples=samples, repetitions=rep, settled=settled,
                           seconds=time.monotonic() - started)


def start_agent(socket_path, directory, pool):
    """
    Start a ``flocker-node agent`` on this machine for the Docker daemon at
    ``socket_path`` and the (empty) ZFS pool ``pool``, with its socket,
    lock, state and log in ``directory``.

    :return: ``(process, agent socket path)`` once the agent listens.
    :raises RuntimeError: If it exits or does not listen within 60 s.
    """
    path = os.path.join(directory, "agent.sock")
    log_path = os.path.join(directory, "agent.log")
    environ = dict(os.environ, FLOCKER_POOL=pool,
                   FLOCKER_LOCK_DIR=os.path.join(directory, "lock"),
                   FLOCKER_STATE_DIR=os.path.join(directory, "state"))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flocker.node.script", "agent",
             "--socket", path, "--address", "10.0.0.1",
             "--docker-socket", socket_path],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environ)
    if not wait_for_path(path, process):
        process.kill()
        process.wait()
        with open(log_path) as log:
            raise RuntimeError("the agent did not listen: %s" % (
                log.read()[-2000:],))
    return process, path


def create_pool(directory, name):
    """
    Create an empty ZFS pool ``name`` on a 64 MiB file in ``directory``,
    mounted below it and kept out of the pool cache.
    """
    image = os.path.join(directory, "pool.img")
    with open(image, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-m",
                    os.path.join(directory, "pool"), name, image],
                   check=True)


async def bench_report(reactor, socket_path, image, token, reps, count):
    """
    :return: ``dict`` of lists of seconds: in-process report, ``list()``
        alone and the ``flocker-node report`` process (asking an agent
        started for the daemon).
    """
    client = DockerClient(reactor, socket_path, stop_timeout=5)
    names = ["%s-r%d" % (token, i) for i in range(count)]
    limit = DeferredSemaphore(4)
    await gatherResults([
        limit.run(client.add, application(name, 24000 + i, image))
        for i, name in enumerate(names)])
    times = {"report": [], "list": [], "cli": []}
    directory = tempfile.mkdtemp(prefix="flocker-bench-agent-")
    pool = "flocker-bench-" + token
    agent = None
    try:
        state = await report_node_state("10.0.0.1", client)
        mine = [name for name in names if name in state.running]
        if len(mine) != count:
            raise RuntimeError("report shows %d of %d containers running" % (
                len(mine), count))
        create_pool(directory, pool)
        agent, agent_socket = start_agent(socket_path, directory, pool)
        for rep in range(reps):
            times["report"].append(await timed(
                report_node_state, "10.0.0.1", client))
            times["list"].append(await timed(client.list))

            async def cli():
                out, err, code = await getProcessOutputAndValue(
                    sys.executable,
                    ["-m", "flocker.node.script", "report", "--socket",
                     agent_socket], env=os.environ, reactor=reactor)
                if code != 0:
                    raise RuntimeError(err.decode())
            times["cli"].append(await timed(cli))
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(30)
        subprocess.run(["zpool", "destroy", "-f", pool],
                       capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
        await gatherResults([limit.run(client.remove, name)
                             for name in names])
        await client.close()
    return times


def median(values):
    return statistics.median(values)


def table(rows):
    lines = ["%-44s %9s %9s %9s" % ("measurement", "median s", "min s",
                                     "max s")]
    for label, values in rows:
        lines.append("%-44s %9.4f %9.4f %9.4f" % (
            label, median(values), min(values), max(values)))
    return "\n".join(lines)


async def main(reactor, arguments):
    socket_path = arguments.socket
    if socket_path is None and os.environ.get("DOCKER_HOST"):
        socket_path = socket_path_from_docker_host(os.environ["DOCKER_HOST"])
    if socket_path is None:
        socket_path = find_lab_socket()
    token = "bench" + secrets.token_hex(3)
    client = DockerClient(reactor, socket_path)
    if not await client.image_present(arguments.image):
        raise SystemExit("benchmarks/docker.py: image %s is not on the node "
                         "at %s" % (arguments.image, socket_path))
    await client.close()
    try:
        create, settling = await bench_create_start(
            reactor, socket_path, arguments.image, token, arguments.policy)
        report = await bench_report(reactor, socket_path, arguments.image,
                                    token, arguments.reps,
                                    arguments.containers)
    finally:
        # Whatever an interrupted run left behind carries the token.
        out = await run_cli(reactor, socket_path,
                            ["ps", "-aq", "--filter", "name=" + token])
        leftovers = out.decode().split()
        if leftovers:
            await run_cli(reactor, socket_path, ["rm", "-f"] + leftovers)
    n = arguments.containers
    print("Docker daemon: unix://%s; %d create+start repetitions (%s), "
          "%d report repetitions, interleaved"
          % (socket_path, settling.repetitions,
             "settled" if settling.settled else "NOT settled",
             arguments.reps))
    print(table([
        ("create+start, DockerClient.add (warm)", create["ours"]),
        ("create+start, DockerClient.add (new client)", create["cold"]),
        ("docker run -d (CLI)", create["cli"]),
        ("report_node_state, %d containers" % (n,), report["report"]),
        ("DockerClient.list, %d containers" % (n,), report["list"]),
        ("flocker-node report process, %d containers" % (n,),
         report["cli"]),
    ]))
    figures = {
        "create_start_s": round(median(create["ours"]), 4),
        "create_start_cold_s": round(median(create["cold"]), 4),
        "cli_run_s": round(median(create["cli"]), 4),
        "report_s": round(median(report["report"]), 4),
        "list_s": round(median(report["list"]), 4),
        "report_cli_s": round(median(report["cli"]), 4),
        "containers": n,
        "report_reps": arguments.reps,
    }
    ratios = settling.samples["ratio"]
    figures.update(ratio_figures("ratio", ratios))
    figures.update({"reps": settling.repetitions,
                    "settled": settling.settled})
    print("%s: median %s, +/- %s, spread %s, %s; per repetition %s" % tuple(
        ratio_row("ratio create+start / docker run", ratios)))
    print(json.dumps(figures, sort_keys=True))


def parse(argv):
    parser = argparse.ArgumentParser(
        description="Flocker's Docker client against the docker CLI.")
    parser.add_argument("--socket", help="the Docker daemon's Unix socket")
    parser.add_argument("--quick", action="store_true",
                        help="5 to 10 repetitions instead of 7 to 21")
    add_repetition_options(parser)
    parser.add_argument("--containers", type=int, default=50,
                        help="Flocker containers running during report")
    parser.add_argument("--image", default="flocker/busybox:latest",
                        help="image present on the node")
    arguments = parser.parse_args(argv)
    arguments.policy = repetitions_from(
        parser, arguments, *((5, 10, 60.0) if arguments.quick
                             else (7, 40, 120.0)))
    arguments.reps = arguments.policy.minimum
    return arguments


def run():
    """
    Run the benchmark; take down a lab it brought up, whatever happened.
    """
    try:
        react(main, (parse(sys.argv[1:]),))
    finally:
        for lab in _STARTED_LAB:
            subprocess.run([sys.executable, lab, "down"],
                           stdout=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    run()
