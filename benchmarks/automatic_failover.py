#!/usr/bin/env python3
"""
Benchmark of automatic failover on the lab: how long an application with
``automatic: true`` is unavailable after its node is killed or partitioned
(RTO), and whether it ever ran on two nodes or served stale data.

It uses the lab named by ``FLOCKER_LAB_PREFIX``/``FLOCKER_LAB_STATE``
(default prefix ``fau``, state ``/var/lib/flocker-lab-bench-auto``; three
nodes are brought up, each with its etcd member) and runs ``--trials``
trials; each one picks at random (``--seed``) to ``kill`` or ``partition``
the node running the application, or to kill the etcd member of one of
its standbys (the cluster keeps its majority: the application must stay
where it is):

1. deploy the application on its current node with the other two as
   automatic standbys (``every: 2s``), write a new ``index.html`` and wait
   until the agents' replication has copied it to both standbys (so the
   RPO is not measured here: nothing is written between the copy and the
   fault); after a failover the other copies follow the old owner, so they
   are removed first and sent afresh;
2. cut the node; every 0.5 s, see where the application's container runs
   (on every node, the cut one included) and what each live node's routed
   port answers;
3. the RTO is the time from the fault until the application answers the
   latest content on every live node's routed port; a sample with two
   nodes running it counts as a split brain, an answer with older content
   as stale;
4. revive or heal the node and check it does not start the application.

Floor, measured in the same run: the lease's time to live less one
keep-alive interval (etcd ends the lease that long after the last
keep-alive it received, which came at most one interval before the fault;
no standby may start before) plus the time Docker takes to start the same
container by hand on a node, median of three.

The last line printed is a JSON object: ``{"rto_s": …, "rto_max_s": …,
"rto_floor_s": …, "split_brain": …, "stale": …, "trials": …}``.

    python benchmarks/automatic_failover.py [--trials N] [--seed S]
"""

import argparse
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "admin"))

from _lab_automatic import (  # noqa: E402
    IMAGE, application_text, deployment_text, etcd_value, http_answer,
    lab_command, running_on, wait_replicated,
)
from _lab_client import Lab  # noqa: E402

from _common import emit, own_lab_environ, print_table  # noqa: E402

from flocker.etcd import DEFAULT_TIMING  # noqa: E402

PORT = 18098

#: Seconds a trial waits for the application to answer before it counts as
#: failed.
TRIAL_TIMEOUT = 180

#: Seconds between two samples.
SAMPLE = 0.5


def fail(message):
    sys.stderr.write("automatic_failover: %s\n" % (message,))
    raise SystemExit(1)


class Bench(object):
    """
    One run's lab, files and counters.
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.directory = directory
        self.name = "bench-%s" % (secrets.token_hex(3),)
        self.nodes = lab.node_names[:3]
        self.address = {node: lab.address(node) for node in self.nodes}
        self.applications = self.write("applications.yml",
                                       application_text(self.name, PORT))
        self.split_brain = 0
        self.stale = 0

    def write(self, name, text):
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def deploy(self, primary):
        others = [self.address[n] for n in self.nodes if n != primary]
        path = self.write("deployment.yml", deployment_text(
            self.name, self.address[primary], others,
            [self.address[n] for n in self.nodes]))
        result = self.lab.run_client(
            ["flocker-deploy", "--yes", path, self.applications],
            check=False, timeout=300)
        if result.returncode != 0:
            fail("deploy on %s: %s" % (primary, (result.stdout +
                                                 result.stderr)[-1500:]))

    def prepare(self, primary, trial):
        """
        Deploy on ``primary``, write the trial's content, wait until the
        agents' replication has copied it to the standbys.

        :return: The content written.
        """
        standbys = [node for node in self.nodes if node != primary]
        if trial:
            # After a failover the other copies follow the old owner, or
            # are the old owner's own (setting those aside is the fencing
            # of the failover work): they are removed, and replication
            # sends the volume afresh.
            for node in standbys:
                self.lab.run(node, ["flocker-volume", "delete", self.name],
                             check=False)
        self.deploy(primary)
        content = "trial %d of %s\n" % (trial, self.name)
        self.lab.run(primary, ["docker", "exec", "-i",
                               "flocker--" + self.name, "tee",
                               "/www/index.html"], input=content)
        wait_replicated(self.lab, self.name, standbys, time.time(),
                        timeout=300)
        return content

    def trial(self, primary, fault, content):
        """
        Cut ``primary`` and measure until the application answers again.

        :return: ``(rto, fenced, new node)``; ``rto`` is ``None`` if it did
            not answer in time.
        """
        live = [n for n in self.nodes if n != primary]
        lab_command([fault, primary])
        started = time.monotonic()
        fenced = None
        while time.monotonic() - started < TRIAL_TIMEOUT:
            where = running_on(self.lab, self.name, self.nodes)
            now = time.monotonic() - started
            if len(where) > 1:
                self.split_brain += 1
            if fenced is None and primary not in where:
                fenced = now
            if where and where[0] in live:
                answers = [http_answer(self.lab, self.address[n], PORT)
                           for n in live]
                if any(a is not None and a != content for a in answers):
                    self.stale += 1
                if all(a == content for a in answers):
                    return time.monotonic() - started, fenced, where[0]
            time.sleep(SAMPLE)
        return None, fenced, None

    def member_loss(self, primary, victim):
        """
        Kill the etcd member of ``victim`` (a standby): its cluster keeps
        a majority, so nothing may move.  Sampled for two lease lifetimes.

        :return: Whether the application stayed on ``primary`` throughout.
        """
        run_dir = Path(self.lab.machine(victim).docker_socket).parent
        os.kill(int((run_dir / "etcd.pid").read_text()), signal.SIGKILL)
        stayed = True
        deadline = time.monotonic() + 2 * DEFAULT_TIMING.ttl
        while time.monotonic() < deadline:
            where = running_on(self.lab, self.name, self.nodes)
            if len(where) > 1:
                self.split_brain += 1
            stayed &= where == [primary]
            time.sleep(SAMPLE)
        # The member starts again as its unit would restart it.
        subprocess.run([sys.executable, str(REPO / "admin" / "lab"), "up",
                        "3"], capture_output=True, timeout=900, check=True)
        return stayed

    def recover(self, node, fault):
        """
        Revive or heal ``node``; check a few samples that it does not run
        the application.
        """
        lab_command(["revive" if fault == "kill" else "heal", node])
        for _ in range(5):
            if node in running_on(self.lab, self.name, [node]):
                self.split_brain += 1
            time.sleep(1)

    def start_by_hand(self, node):
        """
        :return: Seconds ``docker run -d`` of the image takes until its
            HTTP server answers on the node (the floor of a start).
        """
        name = "floor-" + secrets.token_hex(3)
        started = time.monotonic()
        self.lab.run(node, ["docker", "run", "-d", "--name", name, "-p",
                            "%d:80" % (PORT + 1,), IMAGE, "httpd", "-f",
                            "-p", "80", "-h", "/www"])
        while http_answer(self.lab, self.address[node], PORT + 1) is None:
            if time.monotonic() - started > 60:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        self.lab.run(node, ["docker", "rm", "-f", name], check=False)
        return elapsed

    def clean(self):
        for node in self.nodes:
            self.lab.run(node, ["docker", "rm", "-f", "flocker--" + self.name],
                         check=False)
        self.lab.run(self.nodes[0], ["etcdctl", "del", "--prefix",
                                     "flocker/v1/"], check=False)
        for node in self.nodes:
            self.lab.run(node, ["flocker-volume", "delete", self.name],
                         check=False)


def main():
    """
    Run the trials, print the table and the JSON line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quick", action="store_true",
                        help="two trials")
    options = parser.parse_args()
    trials = 2 if options.quick else max(1, options.trials)
    seed = options.seed if options.seed is not None else random.randrange(
        10 ** 6)
    chooser = random.Random(seed)
    if os.geteuid() != 0:
        fail("needs root")
    env = own_lab_environ(os.environ, "fau",
                          "/var/lib/flocker-lab-bench-auto")
    os.environ.update(env)
    up = subprocess.run([sys.executable, str(REPO / "admin" / "lab"), "up",
                         "3"], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        fail("admin/lab up 3: %s" % (up.stderr.strip()[-500:],))
    with open(os.path.join(env["FLOCKER_LAB_STATE"], "lab.json")) as f:
        lab = Lab.from_description(json.load(f))
    directory = os.path.join(env["FLOCKER_LAB_STATE"], "bench-automatic")
    os.makedirs(directory, exist_ok=True)
    bench = Bench(lab, directory)
    floors = [bench.start_by_hand(bench.nodes[i % 3]) for i in range(3)]
    floor = (DEFAULT_TIMING.ttl - DEFAULT_TIMING.renew_every +
             statistics.median(floors))
    rows, rtos, fences, members_lost = [], [], [], []
    primary = bench.nodes[0]
    try:
        for trial in range(trials):
            fault = chooser.choice(["kill", "partition", "etcd member"])
            try:
                content = bench.prepare(primary, trial)
            except (subprocess.CalledProcessError, RuntimeError) as e:
                rows.append((trial, fault, primary, "-", "-",
                             "not prepared: %s" % (
                                 " ".join(e.cmd[5:]) if hasattr(e, "cmd")
                                 else e,)))
                break
            if fault == "etcd member":
                victim = chooser.choice([n for n in bench.nodes
                                         if n != primary])
                stayed = bench.member_loss(primary, victim)
                members_lost.append(stayed)
                rows.append((trial, "etcd member of " + victim, primary,
                             primary if stayed else "MOVED", "-", "-"))
                continue
            rto, fenced, new = bench.trial(primary, fault, content)
            bench.recover(primary, fault)
            rows.append((trial, fault, primary, new or "-",
                         "-" if fenced is None else "%.1f" % (fenced,),
                         "timeout" if rto is None else "%.1f" % (rto,)))
            if rto is None:
                break
            rtos.append(rto)
            if fault == "partition" and fenced is not None:
                fences.append(fenced)
            # Where etcd says it runs now (a holder that fenced itself
            # since, on a busy machine, is not the primary any more).
            placement = etcd_value(lab, new, "placement", bench.name)
            primary = {a: n for n, a in bench.address.items()}.get(
                (placement or {}).get("node"), new)
    finally:
        bench.clean()
    print_table("Automatic failover, %d trial(s), seed %d (lease ttl %d s, "
                "fence after %.1f s)" % (trials, seed, DEFAULT_TIMING.ttl,
                                         DEFAULT_TIMING.safe_for),
                rows, ("TRIAL", "FAULT", "FROM", "TO", "STOPPED_S", "RTO_S"))
    print("floor: lease ttl %d s - keep-alive interval %.1f s + start by "
          "hand %.2f s (median of %s)" % (
              DEFAULT_TIMING.ttl, DEFAULT_TIMING.renew_every,
              statistics.median(floors),
              ", ".join("%.2f" % f for f in floors)))
    figures = {
        "trials": len(rows), "seed": seed,
        "rto_s": round(statistics.median(rtos), 2) if rtos else None,
        "rto_max_s": round(max(rtos), 2) if rtos else None,
        "rto_floor_s": round(floor, 2),
        "partition_stopped_s": round(statistics.median(fences), 2)
        if fences else None,
        "split_brain": bench.split_brain, "stale": bench.stale,
        "completed": len(rtos) + len(members_lost),
        "member_losses": len(members_lost),
        "member_losses_moved": members_lost.count(False),
    }
    emit(figures)
    return 0 if figures["completed"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
