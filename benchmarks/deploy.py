#!/usr/bin/env python3
"""
Benchmark of ``flocker-deploy`` on the lab: how deploy time grows with the
cluster, what a no-op deploy costs, and how long an application is
unavailable while it moves with its volume.

    python benchmarks/deploy.py [--quick] [--reps N] [--big-mib N]
                                [--small-mib N] [--no-curves] [--keep]

It brings up a lab of its own (``admin/lab up 8``, prefix ``fdb``, state
``/var/lib/flocker-lab-bench-deploy``, unless ``FLOCKER_LAB_PREFIX`` or
``FLOCKER_LAB_STATE`` say otherwise) and takes it down at the end
(``--keep`` leaves it up).  Every
``flocker-deploy`` runs in the lab's client namespace, timed from the host
around the whole command (interpreter start, SSH, every node's part):

* ``t1_s``: deploy one application (busybox ``httpd``, no volume) to a
  deployment of 1 node; ``t8_s``: one application per node to a deployment
  of 8 nodes (each node also gets the 7 other applications' routes);
  ``scale_ratio`` = ``t8_s / t1_s``.  Between repetitions an untimed
  deploy of the same nodes without applications resets them.
* ``noop3_s``: deploy again to 3 nodes that already run exactly the
  deployment (one application each); the output must say the cluster is
  already converged.
* ``move_downtime_s``: an ``httpd`` application serving its volume, which
  holds a ``--big-mib`` (1 GiB) file, moves between node1 and node2 by
  re-deploying an edited deployment file, after 1 MiB of the file was
  rewritten since the last deploy.  A poller in the client namespace sends
  ``GET /index.html`` to the application's routed port on node3 every
  10 ms (each attempt bounded by 0.25 s, at most 12,000 attempts or
  120 s) and checks the page; downtime is the longest gap between two
  successful answers.  The first move (which pre-copies the whole volume)
  is a warm-up and not counted.
  ``move_downtime_10m_s``: the same for an application with a
  ``--small-mib`` (10 MiB) volume, the moves of the two interleaved;
  ``downtime_ratio`` = big / small (the downtime should not grow with the
  volume, only with what changed).
* ``curve_volume`` and ``curve_new``: the downtime of one move (after a
  warm-up move) against the volume's size, with 1 MiB new each time, and
  against the size of the new data in a volume of ``curve_new_volume_mib``
  MiB: ``[MiB, seconds]`` pairs, for ``benchmarks/plot.py``.  The lab's
  pools are made large enough for them (``FLOCKER_LAB_POOL_MIB``).
* ``--quick``: the big volume is 256 MiB (``big_mib`` says which size
  ``move_downtime_s`` is for); the curves are the two volumes' moves and
  one more move with 16 MiB new.
* Baselines, same run: one ``ssh NODE true`` and one ``ssh NODE
  flocker-node --version`` from the client (the floor of every remote step
  of a deploy), and one ``flocker-deploy --check`` (interpreter start and
  parsing, no network).  ``baseline_docker_t1_s``/``_t8_s``: the same
  container created and started through the Docker Engine API alone on
  node1, and on all 8 nodes at once; ``baseline_docker_scale_ratio`` is
  their ratio (the lab's 8 nodes share this machine's CPUs, so Docker
  alone does not scale flat here) and ``scale_over_docker`` =
  ``scale_ratio / baseline_docker_scale_ratio``.  ``baseline_raw_move_s``:
  a move done by hand with the bare tools (Docker API stop and delete,
  ``zfs snapshot``, ``zfs send -i | ssh | zfs receive -F``, Docker API
  create and start; 1 MiB changed), timed from the stop to the start, the
  floor of any move on this machine, one in each round of the moves
  (set up before and removed after it, so no Flocker deploy sees its
  dataset or container); ``downtime_over_raw_move`` is the median of each
  round's big move downtime / move by hand.
* ``noop3_inprocess_s``: the same no-op redeploy through the library API
  inside one running Twisted process (``benchmarks/_inprocess.py`` in the
  client namespace: connect, report, plan, nothing to do, close), as a
  program embedding Flocker does it; ``baseline_imports_s``: the
  interpreter starting with Twisted, Conch, treq and eliot imported (the
  floor of any ``flocker-deploy`` run, ``noop3_s`` included).
* ``agent_rss_mb``: the largest resident size of the nodes' agents
  (``flocker-node agent``) at the end of the run, after every deploy and
  move; its floors, measured by the agents' interpreter on node1 in the
  same run: ``reactor_rss_mb`` (only Twisted's reactor imported),
  ``reactor_no_tls_rss_mb`` (the same with pyOpenSSL marked absent, as
  the agent runs) and ``python_rss_mb`` (bare).
* No warm process anywhere: each ``flocker-deploy`` starts cold, the nodes'
  agents run all the time (started by the lab as a boot would).

Each figure is the median of its repetitions (min–max in the table).
The baselines and the no-op deploys run ``--reps`` times (5; 3 with
``--quick``).  The scale deploys and the moves repeat until their ratios
settle (``benchmarks/_common.py``): at least ``--reps`` repetitions, then
more while a ratio's uncertainty is 2.5 % or more, at most ``--max-reps``
(40; 6 with ``--quick``) and no repetition started after
``--max-seconds`` (420; 90), each part on its own; ``scale_reps``,
``move_reps`` and ``settled`` say how it went.  Each ratio is the median
of per-repetition ratios, with ``NAME_spread`` (interquartile range over
median) and ``NAME_uncertainty`` (half-width of the median's 95 %
confidence interval over the median) beside it.  One repetition of the
scale part runs Flocker's ``t1`` and ``t8`` and Docker alone's one node
and every node, the two in an order rotated from one repetition to the
next, and gives ``t8 / t1``, Docker's ``8 nodes / 1 node`` and their
quotient ``scale_over_docker``; one round of moves moves the big and the
small volume and does one move by hand, the three in a rotated order, and
gives ``big / small`` and big / move by hand.  The table also breaks the
moves down by the per-change times
``flocker-deploy`` prints, and the median run of each kind by the
commands sent to the nodes' agents, in its eliot log (kept, one per deploy, in
``STATE/bench-files/logs``).  Prints the tables, then one JSON object as
the last line.  Needs root and what ``admin/lab`` needs.
"""

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    AGENT_MEMORY_HEADERS, add_repetition_options, agent_memory,
    agent_memory_rows, emit, own_lab_environ, print_ratios, print_table,
    ratio_figures, repeat_until_settled, repetitions_from, rotated,
    settled_words, summary, zfs, zfs_ok, zfs_send_over_ssh,
)

REPO = Path(__file__).resolve().parent.parent
LAB_SCRIPT = REPO / "admin" / "lab"

sys.path.insert(0, str(REPO / "admin"))
from _lab_client import Lab  # noqa: E402
from _lab_images import DockerAPI  # noqa: E402

IMAGE = "flocker/busybox:latest"
#: Ports of the baselines' bare containers.
RAW_BASE_PORT = 18050
RAW_MOVE_PORT = 18102
MiB = 1 << 20
#: External ports: scale/no-op applications get BASE_PORT + i.
BASE_PORT = 18000
BIG_PORT = 18100
SMALL_PORT = 18101
#: The poller: interval, per-attempt bound, overall bounds.
POLL_INTERVAL = 0.01
POLL_ATTEMPT_TIMEOUT = 0.25
POLL_LIMIT_SECONDS = 120.0
#: Seconds allowed for one flocker-deploy run.
DEPLOY_TIMEOUT = 600

POLLER = r"""
import json, select, socket, sys, time

host, port, interval, attempt, limit, expected = (
    sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]),
    float(sys.argv[5]), sys.argv[6].encode("ascii"))
request = b"GET /index.html HTTP/1.0\r\n\r\n"


def answered():
    try:
        with socket.create_connection((host, port), timeout=attempt) as s:
            s.sendall(request)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError:
        return False
    data = b"".join(chunks)
    status = data.split(b"\r\n", 1)[0].split()
    return len(status) > 1 and status[1] == b"200" and data.endswith(expected)


started = time.monotonic()
deadline = started + limit
most = int(limit / interval) + 1
successes, attempts, stop_requested, ready = [], 0, None, False
while attempts < most and time.monotonic() < deadline:
    tick = time.monotonic()
    ok = answered()
    attempts += 1
    if ok:
        successes.append(time.monotonic())
        if not ready:
            ready = True
            sys.stdout.write("ready\n")
            sys.stdout.flush()
        if stop_requested is not None:
            break
    wait = max(0.0, tick + interval - time.monotonic())
    if stop_requested is None:
        readable, _, _ = select.select([sys.stdin], [], [], wait)
        if readable:
            sys.stdin.readline()
            stop_requested = time.monotonic()
    else:
        time.sleep(wait)
sys.stdout.write(json.dumps({
    "successes": [round(t, 4) for t in successes], "attempts": attempts,
    "started": started, "stop_requested": stop_requested,
    "ended": time.monotonic()}) + "\n")
"""


def fail(message):
    """
    End the benchmark with ``message``.
    """
    sys.exit("benchmarks/deploy.py: " + message)


def admin_lab(argv, env, timeout=900):
    """
    Run ``admin/lab`` with this interpreter.

    :return: Seconds it took.
    """
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(LAB_SCRIPT)] + argv,
                            env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=timeout)
    if result.returncode != 0:
        fail("admin/lab %s failed: %s" % (" ".join(argv),
                                          result.stderr.strip()[-2000:]))
    return time.monotonic() - started


class Bench(object):
    """
    The lab, the files, and the deploy runner.

    :ivar lab: The :class:`_lab_client.Lab`.
    :ivar str directory: Where configuration files are written (seen alike
        from the host and the client).
    :ivar str logs: Where each deploy's eliot log is kept.
    """

    def __init__(self, lab, directory, big_mib, small_mib):
        self.lab = lab
        self.directory = directory
        self.addresses = [node.address for node in lab.nodes]
        self.big_mib = big_mib
        self.small_mib = small_mib
        self.logs = os.path.join(directory, "logs")
        os.makedirs(self.logs, exist_ok=True)
        # flocker-deploy appends to its log: a kept lab's earlier runs must
        # not mix into this run's.
        for name in os.listdir(self.logs):
            if name.startswith("deploy-") and name.endswith(".log"):
                os.unlink(os.path.join(self.logs, name))
        self.runs = 0
        applications = ["version: 1", "applications:"]
        for index in range(len(lab.nodes)):
            applications += [
                "  app%d:" % (index + 1,),
                "    image: %s" % (IMAGE,),
                '    command: ["httpd", "-f", "-p", "80", "-h", "/www"]',
                "    ports: [{internal: 80, external: %d}]" % (
                    BASE_PORT + index + 1,)]
        for name, port in [("big", BIG_PORT), ("small", SMALL_PORT)]:
            applications += [
                "  %s:" % (name,),
                "    image: %s" % (IMAGE,),
                '    command: ["httpd", "-f", "-p", "80", "-h", "/data"]',
                "    ports: [{internal: 80, external: %d}]" % (port,),
                "    volume: {mountpoint: /data}"]
        self.applications = self.write("applications.yml",
                                       "\n".join(applications) + "\n")

    def write(self, name, content):
        """
        :return: The path of a new file ``name`` holding ``content``.
        """
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(content)
        return path

    def deployment(self, placement):
        """
        :param placement: ``dict`` of node index (0-based) to application
            names; the deployment names exactly these nodes.
        :return: Path of the deployment file.
        """
        lines = ["version: 1", "nodes:"]
        for index in sorted(placement):
            lines.append("  %s: [%s]" % (self.addresses[index],
                                         ", ".join(placement[index])))
        return self.write("deployment-%s.yml" % (
            "-".join("%d=%s" % (i, "+".join(placement[i]) or "none")
                     for i in sorted(placement)),), "\n".join(lines) + "\n")

    def deploy(self, placement, *options):
        """
        Run ``flocker-deploy`` in the client namespace, with its eliot log
        in :attr:`logs`; end the benchmark if it fails.

        :return: ``(seconds, stdout, log path)``.
        """
        deployment = self.deployment(placement)
        self.runs += 1
        log = os.path.join(self.logs, "deploy-%03d.log" % (self.runs,))
        started = time.monotonic()
        result = self.lab.run_client(
            ["flocker-deploy", "--yes", "--log", log] + list(options)
            + [deployment, self.applications], check=False,
            timeout=DEPLOY_TIMEOUT)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            fail("flocker-deploy %s failed (%d):\n%s%s" % (
                deployment, result.returncode, result.stdout, result.stderr))
        return elapsed, result.stdout, log

    def reset(self, nodes):
        """
        Deploy no applications to the first ``nodes`` nodes.
        """
        self.deploy({index: [] for index in range(nodes)})

    def delete_volumes(self):
        """
        Delete the move volumes from every node (volumes outlive their
        applications; a kept lab's earlier run would fill the pools).
        """
        for node in self.lab.nodes:
            for name in ["big", "small"]:
                node.run(["flocker-volume", "delete", name], check=False)

    def timed_client(self, argv, reps):
        """
        :return: Seconds each of ``reps`` runs of ``argv`` on the client
            took.
        """
        samples = []
        for _ in range(reps):
            started = time.monotonic()
            self.lab.run_client(argv, timeout=120)
            samples.append(time.monotonic() - started)
        return samples

    def mountpoint(self, node, name):
        """
        :return: Where volume ``name`` is mounted on ``node`` (the same path
            on the host).
        """
        return self.lab.nodes[node].run(
            ["flocker-volume", "mountpoint", name]).stdout.strip()

    def fill(self, node, name, mib):
        """
        Write the page and a ``mib`` MiB file of random bytes into volume
        ``name`` on ``node``.
        """
        path = self.mountpoint(node, name)
        with open(os.path.join(path, "index.html"), "w") as f:
            f.write(page(name))
        with open(os.path.join(path, "blob"), "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(MiB))
            f.flush()
            os.fsync(f.fileno())

    def change(self, node, name, mib, round_number, new_mib=1):
        """
        Rewrite ``new_mib`` MiB of volume ``name``'s ``mib`` MiB file on
        ``node``, at an offset that moves with ``round_number``.
        """
        path = os.path.join(self.mountpoint(node, name), "blob")
        fd = os.open(path, os.O_WRONLY)
        try:
            start = (round_number * new_mib) % max(1, mib - new_mib + 1)
            for index in range(new_mib):
                os.pwrite(fd, os.urandom(MiB), (start + index) * MiB)
            os.fsync(fd)
        finally:
            os.close(fd)


def page(name):
    """
    :return: The index page of application ``name``'s volume.
    """
    return "volume of %s\n" % (name,)


def measure_move(bench, name, port, placement):
    """
    Deploy ``placement`` (which moves application ``name``) while polling
    ``port`` of node3 from the client namespace.

    :return: ``dict``: ``downtime`` (longest gap between answers),
        ``deploy`` seconds, ``failed`` attempts, ``changes`` (change line →
        seconds printed by flocker-deploy), ``log`` (its eliot log),
        ``window`` (wall-clock times of the last answer before and the
        first after the gap).
    """
    poller = bench.lab.client.popen(
        ["python3", "-c", POLLER, bench.addresses[2], str(port),
         str(POLL_INTERVAL), str(POLL_ATTEMPT_TIMEOUT),
         str(POLL_LIMIT_SECONDS), page(name)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        readable, _, _ = select.select([poller.stdout], [], [], 30)
        if not readable or poller.stdout.readline().strip() != "ready":
            fail("application %s does not answer on %s:%d before its move"
                 % (name, bench.addresses[2], port))
        # eliot logs wall-clock times; the poller, monotonic ones.
        to_wall = time.time() - time.monotonic()
        started = time.monotonic()
        seconds, output, log = bench.deploy(placement)
        ended = time.monotonic()
        poller.stdin.write("stop\n")
        poller.stdin.flush()
        out, _ = poller.communicate(timeout=POLL_LIMIT_SECONDS + 30)
    finally:
        if poller.poll() is None:
            poller.kill()
            poller.wait()
    polled = json.loads(out.strip().splitlines()[-1])
    successes = polled["successes"]
    if not successes or successes[-1] < ended:
        fail("application %s did not answer again after its move" % (name,))
    gaps = [(b - a, a, b) for a, b in zip(successes, successes[1:])
            if b > started]
    downtime, last_up, up_again = max(gaps)
    changes = {}
    for line in output.splitlines():
        if line.endswith(" s)") and " (" in line:
            what, _, rest = line.rpartition(" (")
            try:
                # "(1.0 MiB sent, 1.49 s)" for volume transfers.
                changes[what] = float(rest[:-3].rpartition(", ")[2])
            except ValueError:
                pass
    return {"downtime": downtime, "deploy": seconds,
            "failed": polled["attempts"] - len(successes),
            "changes": changes, "log": log,
            "window": (last_up + to_wall, up_again + to_wall)}


def phase_of(change):
    """
    :return: The kind of a change line (``push``, ``stop``, ...).
    """
    for word, phase in [(" push volume ", "push (running)"),
                        (" stop application ", "stop"),
                        (" hand off volume ", "hand-off"),
                        (" start application ", "start"),
                        (" routes", "routes")]:
        if word in change:
            return phase
    return "other"


def scale_once(bench):
    """
    One deploy of one application to one node (``t1``) and one of one
    application per node to every node (``t8``), each followed by an
    untimed reset of the nodes it used.

    :return: ``((t1 seconds, eliot log), (t8 seconds, eliot log))``.
    """
    nodes = len(bench.addresses)
    t1 = bench.deploy({0: ["app1"]})[::2]
    bench.reset(1)
    t8 = bench.deploy({i: ["app%d" % (i + 1,)] for i in range(nodes)})[::2]
    bench.reset(nodes)
    return t1, t8


def scale(bench, policy):
    """
    Flocker's and Docker alone's deploy to 1 node and to every node, the
    two in an order rotated from one repetition to the next, repeated
    until their ratios settle (:func:`repeat_until_settled`).

    :param Repetitions policy: The repetitions' bounds.
    :return: ``(samples, settling)``: ``samples`` has ``"t1"`` and
        ``"t8"`` (lists of ``(seconds, eliot log)``), ``"docker_one"`` and
        ``"docker_every"`` (lists of seconds); ``settling`` the
        :class:`Settling` of ``scale_ratio``, ``baseline_docker_scale_ratio``
        and ``scale_over_docker``.
    """
    samples = {"t1": [], "t8": [], "docker_one": [], "docker_every": []}

    def flocker():
        t1, t8 = scale_once(bench)
        samples["t1"].append(t1)
        samples["t8"].append(t8)

    def docker():
        one, every = docker_scale_once(bench)
        samples["docker_one"].append(one)
        samples["docker_every"].append(every)

    def repetition(index):
        for part in rotated([flocker, docker], index):
            part()
        flocker_ratio = samples["t8"][-1][0] / samples["t1"][-1][0]
        docker_ratio = samples["docker_every"][-1] / samples["docker_one"][-1]
        return {"scale_ratio": flocker_ratio,
                "baseline_docker_scale_ratio": docker_ratio,
                "scale_over_docker": flocker_ratio / docker_ratio}

    return samples, repeat_until_settled(repetition, policy)


def _bare_container(socket_path, name, port, data=None):
    """
    Create and start a container as ``flocker-deploy`` would (the busybox
    ``httpd``, a published port, optionally ``data`` bound on ``/data``),
    through the Docker Engine API and nothing else.
    """
    api = DockerAPI(socket_path)
    # Init as Flocker sets it: the stop signal reaches httpd.
    host = {"PortBindings": {"80/tcp": [{"HostPort": str(port)}]},
            "Init": True}
    if data is not None:
        host["Binds"] = [data + ":/data"]
    created = api.post_json("/containers/create?name=" + name, {
        "Image": IMAGE, "Cmd": ["httpd", "-f", "-p", "80", "-h", "/data"],
        "ExposedPorts": {"80/tcp": {}}, "HostConfig": host})
    api.call("POST", "/containers/%s/start" % (created["Id"],),
             accept=(204, 304))


def _remove_bare(socket_path, name):
    """
    Stop (with the stop timeout Flocker uses) and delete a container.
    """
    api = DockerAPI(socket_path)
    api.call("POST", "/containers/%s/stop?t=10" % (name,),
             accept=(204, 304, 404))
    api.call("DELETE", "/containers/%s?force=1" % (name,))


def docker_scale_once(bench):
    """
    The scale baseline: what Docker alone takes to create and start one
    container (as in ``t1``/``t8``) on node1, and on every node at once.

    :return: ``(one node seconds, all nodes seconds)``.
    """
    import threading
    sockets = [node.docker_socket for node in bench.lab.nodes]

    def at_once(count):
        threads = [threading.Thread(target=_bare_container, args=(
            sockets[i], "flocker-bench-bare", RAW_BASE_PORT + i))
            for i in range(count)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        for i in range(count):
            _remove_bare(sockets[i], "flocker-bench-bare")
        return elapsed

    return at_once(1), at_once(len(sockets))


def raw_move(bench, reps, steps=None):
    """
    The downtime baseline: a move of a served volume between node1 and node2
    done by hand with the bare tools, 1 MiB changed each time, timed from
    the stop of the old container to the start of the new one: Docker API
    stop and delete, ``zfs snapshot``, ``zfs send -i | ssh | zfs receive
    -F`` (the copy was sent in full before), Docker API create and start.
    No routes, no ownership, no checks: the floor of any move here.  The
    dataset and container exist only during this call.

    :param steps: ``None``, or a list to which each move appends the
        seconds of its steps (``dict`` of :data:`RAW_STEPS` to seconds).
    :return: Samples in seconds.
    """
    nodes = bench.lab.nodes[:2]
    datasets = ["%s/rawmove" % (node.pool,) for node in nodes]
    mounts = [os.path.join(node.zfs_mount, "rawmove") for node in nodes]

    def send(source, target, snapshot, base):
        try:
            zfs_send_over_ssh(nodes[source], nodes[target].address,
                              "%s@%s" % (datasets[source], snapshot), base,
                              datasets[target], timeout=300)
        except RuntimeError as e:
            fail("raw move: %s" % (e,))

    for dataset in datasets:
        zfs("destroy", "-r", dataset)
    zfs_ok("create", datasets[0])
    with open(os.path.join(mounts[0], "index.html"), "w") as f:
        f.write(page("rawmove"))
    with open(os.path.join(mounts[0], "blob"), "wb") as f:
        f.write(os.urandom(16 * MiB))
    zfs_ok("snapshot", datasets[0] + "@m0")
    send(0, 1, "m0", None)
    _bare_container(nodes[0].docker_socket, "flocker-bench-raw",
                    RAW_MOVE_PORT, mounts[0])
    samples, here = [], 0
    try:
        for rep in range(1, reps + 1):
            there = 1 - here
            with open(os.path.join(mounts[here], "blob"), "r+b") as f:
                f.seek((rep % 15) * MiB)
                f.write(os.urandom(MiB))
                f.flush()
                os.fsync(f.fileno())
            marks = [time.monotonic()]
            _remove_bare(nodes[here].docker_socket, "flocker-bench-raw")
            marks.append(time.monotonic())
            zfs_ok("snapshot", "%s@m%d" % (datasets[here], rep))
            marks.append(time.monotonic())
            send(here, there, "m%d" % (rep,), "m%d" % (rep - 1,))
            marks.append(time.monotonic())
            _bare_container(nodes[there].docker_socket, "flocker-bench-raw",
                            RAW_MOVE_PORT, mounts[there])
            marks.append(time.monotonic())
            samples.append(marks[-1] - marks[0])
            if steps is not None:
                steps.append({step: b - a for step, a, b in zip(
                    RAW_STEPS, marks, marks[1:])})
            here = there
    finally:
        _remove_bare(nodes[here].docker_socket, "flocker-bench-raw")
        for dataset in datasets:
            zfs("destroy", "-r", dataset)
    return samples


#: The steps of a move by hand (:func:`raw_move`), in order.
RAW_STEPS = ("Docker stop + delete", "zfs snapshot",
             "zfs send -i | ssh | zfs receive -F", "Docker create + start")


def print_raw_steps(steps):
    """
    Print the median seconds of each step of the moves by hand.
    """
    print_table("Move by hand, by step (median (min-max) seconds)",
                [(step, fmt([s[step] for s in steps])) for step in RAW_STEPS],
                ["step", "seconds"])


def remote_rounds(log):
    """
    Summarise a deploy's eliot log by the commands it sent the nodes'
    agents.

    :param str log: Path of the log.
    :return: ``(first, last, rounds)``: wall-clock times of the log's first
        and last messages, and one ``(command, count, first start, last
        end, shortest, longest)`` per kind of command, in the order they
        began; times are seconds after ``first``.
    """
    with open(log) as f:
        messages = [json.loads(line) for line in f if line.strip()]
    first = min(m["timestamp"] for m in messages)
    last = max(m["timestamp"] for m in messages)
    started = {}
    runs = {}
    for message in messages:
        key = (message["task_uuid"], tuple(message["task_level"][:-1]))
        status = message.get("action_status")
        if status == "started":
            started[key] = message
        elif status in ("succeeded", "failed") and key in started:
            begin = started.pop(key)
            if begin.get("action_type") != "flocker:cli:remote:call":
                continue
            command = begin.get("subcommand", "?")
            runs.setdefault(command, []).append(
                (begin["timestamp"] - first, message["timestamp"] - first))
    rounds = []
    for command, spans in runs.items():
        durations = [b - a for a, b in spans]
        rounds.append((command, len(spans), min(a for a, _ in spans),
                       max(b for _, b in spans), min(durations),
                       max(durations)))
    return first, last, sorted(rounds, key=lambda r: r[2])


def print_rounds(title, seconds, log, window=None):
    """
    Print the :func:`remote_rounds` of one deploy that took ``seconds``
    (measured around the whole command), and where a downtime ``window``
    (wall-clock times) fell.
    """
    first, last, rounds = remote_rounds(log)
    rows = [("%s x%d" % (command, count), "%.2f-%.2f" % (begin, end),
             "%.2f-%.2f" % (shortest, longest))
            for command, count, begin, end, shortest, longest in rounds]
    rows.append(("(outside the log: interpreter start, parsing, exit)", "",
                 "%.2f" % (seconds - (last - first),)))
    if window is not None:
        rows.append(("(downtime: last answer .. next answer)",
                     "%.2f-%.2f" % (window[0] - first, window[1] - first),
                     "%.2f" % (window[1] - window[0],)))
    print_table("%s (%.2f s; log %s)" % (title, seconds, log), rows,
                ["node commands", "from-to s", "each s"])


def median_sample(samples, key):
    """
    :return: The sample whose ``key`` is the (upper) median.
    """
    ordered = sorted(samples, key=key)
    return ordered[len(ordered) // 2]


def noop(bench, reps):
    """
    :return: ``(seconds, eliot log)`` of each no-op deploy to 3 converged
        nodes.
    """
    placement = {i: ["app%d" % (i + 1,)] for i in range(3)}
    bench.deploy(placement)
    samples = []
    for _ in range(reps):
        seconds, output, log = bench.deploy(placement)
        if "already converged" not in output:
            fail("a repeated deploy was not a no-op:\n" + output)
        samples.append((seconds, log))
    bench.reset(3)
    return samples


def noop_inprocess(bench, reps):
    """
    :return: Seconds of each no-op deploy to 3 converged nodes through the
        library API in one running process (``benchmarks/_inprocess.py``).
    """
    placement = {i: ["app%d" % (i + 1,)] for i in range(3)}
    bench.deploy(placement)
    result = bench.lab.run_client(
        [sys.executable, str(REPO / "benchmarks" / "_inprocess.py"),
         bench.deployment(placement), bench.applications, str(reps)],
        check=False, timeout=DEPLOY_TIMEOUT)
    if result.returncode != 0:
        fail("the in-process no-op deploy failed (%d):\n%s%s" % (
            result.returncode, result.stdout, result.stderr))
    bench.reset(3)
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def moves(bench, policy, extra_new_mib=None):
    """
    Move the big and the small application once each as a warm-up, then
    in rounds: each round moves both and does one move by hand with the
    bare tools (:func:`raw_move`), the three in an order rotated from one
    round to the next, until the round's ratios settle
    (:func:`repeat_until_settled`).

    :param Repetitions policy: The rounds' bounds.
    :param extra_new_mib: If given, one more move of the big volume after
        rewriting that many MiB, kept as ``warm["extra"]``.
    :return: ``(warm-up moves, {"big": [...], "small": [...], "raw":
        [...], "raw_steps": [...]}, settling)``: :func:`measure_move`
        results, the seconds of each move by hand and of its steps (see
        :func:`raw_move`), and the :class:`Settling` of
        ``downtime_ratio`` (big / small) and ``downtime_over_raw_move``
        (big / by hand).
    """
    where = {"big": 0, "small": 0}
    sizes = {"big": bench.big_mib, "small": bench.small_mib}
    ports = {"big": BIG_PORT, "small": SMALL_PORT}

    def placement():
        nodes = {0: [], 1: [], 2: []}
        for name, node in sorted(where.items()):
            nodes[node].append(name)
        return nodes

    def move(name, round_number):
        bench.change(where[name], name, sizes[name], round_number)
        where[name] = 1 - where[name]
        return measure_move(bench, name, ports[name], placement())

    bench.deploy(placement())
    warm = {}
    for name in sorted(where):
        started = time.monotonic()
        bench.fill(where[name], name, sizes[name])
        warm[name + " fill"] = time.monotonic() - started
    for name in ["big", "small"]:
        warm[name] = move(name, 0)
    results = {"big": [], "small": [], "raw": [], "raw_steps": []}

    def repetition(index):
        for name in rotated(["big", "small", "raw"], index + 1):
            if name == "raw":
                results["raw"].extend(raw_move(bench, 1,
                                               results["raw_steps"]))
            else:
                results[name].append(move(name, index + 1))
        big = results["big"][-1]["downtime"]
        return {"downtime_ratio": big / results["small"][-1]["downtime"],
                "downtime_over_raw_move": big / results["raw"][-1]}

    settling = repeat_until_settled(repetition, policy)
    if extra_new_mib:
        # One more move of the big volume, with more new data.
        bench.change(where["big"], "big", sizes["big"],
                     settling.repetitions + 1, extra_new_mib)
        where["big"] = 1 - where["big"]
        warm["extra"] = measure_move(bench, "big", ports["big"], placement())
    bench.reset(3)
    bench.delete_volumes()
    return warm, results, settling


def curves(bench, volume_sizes, new_sizes, fixed_mib):
    """
    Move downtime against volume size (1 MiB new each time) and against
    the size of new data (volume of ``fixed_mib``), one move per point
    after a warm-up move of the freshly filled volume; the ``big``
    application is used, its volume deleted between volume sizes.

    :return: ``(curve_volume, curve_new)``: lists of ``[MiB, seconds]``.
    """
    def fresh(mib):
        bench.reset(3)
        bench.delete_volumes()
        bench.deploy({0: ["big"], 1: [], 2: []})
        bench.fill(0, "big", mib)
        bench.change(0, "big", mib, 0)
        measure_move(bench, "big", BIG_PORT, {0: [], 1: ["big"], 2: []})

    by_volume = []
    for mib in volume_sizes:
        fresh(mib)
        bench.change(1, "big", mib, 1)
        moved = measure_move(bench, "big", BIG_PORT,
                             {0: ["big"], 1: [], 2: []})
        by_volume.append([mib, round(moved["downtime"], 3)])
    by_new = []
    fresh(fixed_mib)
    where = 1
    for number, new_mib in enumerate(new_sizes):
        bench.change(where, "big", fixed_mib, number + 1, new_mib)
        where = 1 - where
        placement = {0: [], 1: [], 2: []}
        placement[where].append("big")
        moved = measure_move(bench, "big", BIG_PORT, placement)
        by_new.append([new_mib, round(moved["downtime"], 3)])
    bench.reset(3)
    bench.delete_volumes()
    return by_volume, by_new


def fmt(samples):
    """
    :return: ``median (min–max)`` of ``samples`` in seconds.
    """
    s = summary(samples)
    return "%.3f (%.3f-%.3f)" % (s["median"], s["min"], s["max"])


def print_moves(options, warm, moved):
    """
    Print the moves' table: downtime, deploy time, failed polls, the
    warm-up move, and the per-change times flocker-deploy printed.
    """
    rows = []
    for name, size in [("big", options.big_mib), ("small", options.small_mib)]:
        results = moved[name]
        phases = {}
        for result in results:
            per_run = {}
            for change, took in result["changes"].items():
                phase = phase_of(change)
                per_run[phase] = max(per_run.get(phase, 0.0), took)
            for phase, took in per_run.items():
                phases.setdefault(phase, []).append(took)
        rows.append([
            "%d MiB" % (size,),
            fmt([r["downtime"] for r in results]),
            fmt([r["deploy"] for r in results]),
            "%.0f" % statistics.median(r["failed"] for r in results),
            "%.1f / %.2f / %.2f" % (warm[name + " fill"],
                                    warm[name]["downtime"],
                                    warm[name]["deploy"]),
        ] + ["%.2f" % statistics.median(phases.get(p, [0.0])) for p in [
            "push (running)", "stop", "hand-off", "start", "routes"]])
    print_table(
        "Moves (1 MiB changed since the last deploy; poller on node3; "
        "per-change columns: median of the slowest such change per move, "
        "as flocker-deploy printed it)", rows,
        ["volume", "downtime", "deploy", "failed polls",
         "fill / warm-up downtime / deploy", "push", "stop", "hand-off",
         "start", "routes"])


def print_move_rounds(options, moved):
    """
    Print where the median move of each volume spent its time (see
    :func:`print_rounds`).
    """
    for name, size in [("big", options.big_mib), ("small", options.small_mib)]:
        move = median_sample(moved[name], lambda r: r["downtime"])
        print_rounds("move of the %d MiB volume" % (size,), move["deploy"],
                     move["log"], move["window"])


def open_bench(env, options):
    """
    :return: The :class:`Bench` of the lab ``env`` names (up), its nodes
        without applications, routes or volumes.
    """
    with open(os.path.join(env["FLOCKER_LAB_STATE"], "lab.json")) as f:
        lab = Lab.from_description(json.load(f))
    directory = os.path.join(env["FLOCKER_LAB_STATE"], "bench-files")
    os.makedirs(directory, exist_ok=True)
    bench = Bench(lab, directory, options.big_mib, options.small_mib)
    bench.reset(len(lab.nodes))
    bench.delete_volumes()
    return bench


def moves_only(options, env):
    """
    ``--moves-only``: the moves and the moves by hand alone, on a lab of 3
    nodes; prints the moves' tables and a JSON object of the move figures.
    """
    up = admin_lab(["up", "3"], env)
    try:
        bench = open_bench(env, options)
        warm, moved, settling = moves(bench, options.policy)
    finally:
        if not options.keep:
            admin_lab(["down"], env)
    big = [r["downtime"] for r in moved["big"]]
    small = [r["downtime"] for r in moved["small"]]
    raw_moves = moved["raw"]
    print("Moves on a 3-node lab (up in %.1f s); %s; seconds, median "
          "(min-max)\n" % (up, describe(settling)))
    print_table("Floor", [
        ("baseline: move by hand (stop, zfs send -i | ssh | receive, "
         "start)", fmt(raw_moves))], ["what", "seconds"])
    print_raw_steps(moved["raw_steps"])
    print_moves(options, warm, moved)
    print_move_rounds(options, moved)
    print_ratios("Ratios of each repetition", settling.samples.items())
    figures = {
        "move_downtime_s": round(statistics.median(big), 3),
        "move_downtime_10m_s": round(statistics.median(small), 3),
        "baseline_raw_move_s": round(statistics.median(raw_moves), 3),
        "reps": settling.repetitions,
        "settled": settling.settled,
        "big_mib": options.big_mib,
    }
    for name, samples in settling.samples.items():
        figures.update(ratio_figures(name, samples))
    emit(figures)


def describe(settling):
    """
    :return: How many repetitions a :class:`Settling` took, and whether
        its ratios settled.
    """
    return "%d repetitions (%s)" % (settling.repetitions,
                                    settled_words(settling))


def main():
    """
    Run the benchmark, print the tables and the JSON line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_repetition_options(parser, "repetition")
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small-mib", type=int, default=10)
    parser.add_argument("--keep", action="store_true",
                        help="leave the lab up at the end")
    parser.add_argument(
        "--quick", action="store_true",
        help="a 256 MiB big volume and short curves (a few minutes)")
    parser.add_argument(
        "--moves-only", action="store_true",
        help="only the moves and the moves by hand, on 3 nodes (no "
        "curves, no other figures)")
    parser.add_argument(
        "--no-curves", action="store_true",
        help="skip downtime against volume size and against new data")
    options = parser.parse_args()
    # The fixed parts (baselines, no-op deploys) run --reps times; the
    # scale deploys and the moves repeat until their ratios settle, each
    # within the bounds.
    options.policy = repetitions_from(
        parser, options, *((3, 6, 90.0) if options.quick
                           else (5, 40, 420.0)))
    options.reps = options.policy.minimum
    if options.quick:
        options.big_mib = min(options.big_mib, 256)
        volume_sizes, new_sizes, fixed_mib = [10, 256], [1, 16], 256
    else:
        volume_sizes = [10, 100, 1024, 2048]
        new_sizes, fixed_mib = [1, 16, 64, 256], 1024
    if os.geteuid() != 0:
        fail("needs root")
    env = dict(own_lab_environ(os.environ, "fdb",
                               "/var/lib/flocker-lab-bench-deploy"),
               # Room for two copies of the largest curve volume and its
               # snapshots on every node (sparse files).
               FLOCKER_LAB_POOL_MIB=str(max(2048, 3 * max(
                   [options.big_mib] + volume_sizes))))
    if options.moves_only:
        return moves_only(options, env)
    up = admin_lab(["up", "8"], env)
    try:
        bench = open_bench(env, options)
        lab = bench.lab
        reps = options.reps
        base_ssh = bench.timed_client(["ssh", "node1", "true"], reps)
        base_node = bench.timed_client(
            ["ssh", "node1", "flocker-node", "--version"], reps)
        base_check = bench.timed_client(
            ["flocker-deploy", "--check", bench.deployment({0: ["app1"]}),
             bench.applications], reps)
        base_imports = bench.timed_client(
            [sys.executable, "-c", "import twisted.internet.reactor, "
             "twisted.conch.ssh.transport, treq, eliot"], reps)
        scaled, scale_settling = scale(bench, options.policy)
        noop3 = noop(bench, reps)
        noop3_inprocess = noop_inprocess(bench, reps)
        warm, moved, move_settling = moves(
            bench, options.policy, extra_new_mib=(
                16 if options.quick and not options.no_curves else None))
        raw_moves = moved["raw"]
        curve_volume = curve_new = []
        if options.quick and not options.no_curves:
            # The moves above are the volume-size points; one more move
            # with 16 MiB new gives the second new-data point.
            curve_volume = [
                [options.small_mib, round(statistics.median(
                    r["downtime"] for r in moved["small"]), 3)],
                [options.big_mib, round(statistics.median(
                    r["downtime"] for r in moved["big"]), 3)]]
            curve_new = [[1, curve_volume[1][1]],
                         [16, round(warm["extra"]["downtime"], 3)]]
            fixed_mib = options.big_mib
        elif not options.no_curves:
            curve_volume, curve_new = curves(bench, volume_sizes, new_sizes,
                                             fixed_mib)
        memory = agent_memory(lab)
    finally:
        if not options.keep:
            admin_lab(["down"], env)

    big = [r["downtime"] for r in moved["big"]]
    small = [r["downtime"] for r in moved["small"]]
    t1, t8 = scaled["t1"], scaled["t8"]
    docker_one, docker_every = scaled["docker_one"], scaled["docker_every"]
    timings = {"t1": [t for t, _ in t1], "t8": [t for t, _ in t8],
               "noop3": [t for t, _ in noop3]}
    print("flocker-deploy on an 8-node lab (up in %.1f s); baselines and "
          "no-op deploys %d repetitions, scale deploys %s, moves %s; "
          "seconds, median (min-max)\n" % (
              up, reps, describe(scale_settling), describe(move_settling)))
    print_table("Deploys", [
        ("t1: 1 app on 1 node", fmt(timings["t1"])),
        ("t8: 1 app on each of 8 nodes", fmt(timings["t8"])),
        ("noop3: converged 3 nodes", fmt(timings["noop3"])),
        ("noop3 in-process: library API in one running process",
         fmt(noop3_inprocess)),
        ("baseline: python with twisted, conch, treq, eliot imported",
         fmt(base_imports)),
        ("baseline: ssh node1 true", fmt(base_ssh)),
        ("baseline: ssh node1 flocker-node --version", fmt(base_node)),
        ("baseline: flocker-deploy --check", fmt(base_check)),
        ("baseline: Docker API, 1 container on 1 node", fmt(docker_one)),
        ("baseline: Docker API, 1 container on each of 8 nodes",
         fmt(docker_every)),
        ("baseline: move by hand (stop, zfs send -i | ssh | receive, "
         "start)", fmt(raw_moves)),
    ], ["what", "seconds"])
    print_raw_steps(moved["raw_steps"])
    print_moves(options, warm, moved)
    print("Where the time goes: the median run of each kind, by the "
          "commands sent to the nodes' agents, in its eliot log\n")
    for title, samples in [("t1", t1), ("t8", t8), ("noop3", noop3)]:
        print_rounds(title, *median_sample(samples, lambda s: s[0]))
    print_move_rounds(options, moved)
    t1_s = statistics.median(timings["t1"])
    t8_s = statistics.median(timings["t8"])
    ratios = dict(scale_settling.samples, **move_settling.samples)
    print_table("Node agent memory, after every deploy and move",
                agent_memory_rows(memory), AGENT_MEMORY_HEADERS)
    print_ratios("Ratios of each repetition", ratios.items())
    figures = {
        "t1_s": round(t1_s, 3),
        "t8_s": round(t8_s, 3),
        "noop3_s": round(statistics.median(timings["noop3"]), 3),
        "noop3_inprocess_s": round(statistics.median(noop3_inprocess), 3),
        "baseline_imports_s": round(statistics.median(base_imports), 3),
        "agent_rss_mb": memory["agent_rss_mb"],
        "agent_peak_rss_mb": memory["agent_peak_rss_mb"],
        "python_rss_mb": memory["python_rss_mb"],
        "reactor_rss_mb": memory["reactor_rss_mb"],
        "reactor_no_tls_rss_mb": memory["reactor_no_tls_rss_mb"],
        "move_downtime_s": round(statistics.median(big), 3),
        "move_downtime_10m_s": round(statistics.median(small), 3),
        "baseline_ssh_s": round(statistics.median(base_ssh), 3),
        "baseline_node_command_s": round(statistics.median(base_node), 3),
        "baseline_check_s": round(statistics.median(base_check), 3),
        "baseline_docker_t1_s": round(statistics.median(docker_one), 3),
        "baseline_docker_t8_s": round(statistics.median(docker_every), 3),
        "baseline_raw_move_s": round(statistics.median(raw_moves), 3),
        "reps": reps,
        "scale_reps": scale_settling.repetitions,
        "move_reps": move_settling.repetitions,
        "settled": scale_settling.settled and move_settling.settled,
        "big_mib": options.big_mib,
        "curve_volume": curve_volume,
        "curve_new": curve_new,
        "curve_new_volume_mib": fixed_mib,
    }
    for name, samples in ratios.items():
        figures.update(ratio_figures(name, samples))
    if curve_volume:
        print_table("Move downtime against volume size (1 MiB new)",
                    [("%d MiB" % (mib,), "%.3f" % (seconds,))
                     for mib, seconds in curve_volume],
                    ["volume", "downtime s"])
        print_table("Move downtime against new data (volume %d MiB)" % (
            fixed_mib,), [("%d MiB" % (mib,), "%.3f" % (seconds,))
                          for mib, seconds in curve_new],
                    ["new data", "downtime s"])
    emit(figures)


if __name__ == "__main__":
    main()
