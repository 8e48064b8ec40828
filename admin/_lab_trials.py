"""
Randomized trials of automatic failover on a running lab, shared by the lab
test (``flocker/cli/test/test_automatic_trials_lab.py``, a few trials) and
the benchmark (``benchmarks/automatic_failover.py``, twenty).

One application with ``automatic: true`` runs on one of three nodes, the
other two its standbys.  Each trial, its fault drawn from a seeded
``random.Random``:

1. waits (at most :data:`SETTLE_TIMEOUT` seconds) until the application
   runs on one node only, the one etcd places it on, deploys it there
   (after a failover the node it was taken from gets a fresh copy: its own
   was the stale one), writes a new ``index.html`` and waits until
   replication copied it to both standbys;
2. starts a writer: every :data:`WRITE_EVERY` seconds the next sequence
   number into ``/www/seq`` on the running node, *acknowledged* when the
   write returned;
3. after a random delay (drawn too, so that the fault falls anywhere in a
   replication round), ``kill`` or ``partition`` the running node, or kill
   the etcd member of one of its standbys (the cluster keeps its majority:
   nothing may move);
4. samples every :data:`SAMPLE` seconds where the application runs (two
   nodes at once: a split brain) and what each live node's routed port
   answers (another ``index.html`` than the trial's: stale data), until
   every live node answers the trial's content (the RTO);
5. reads the sequence number the new node serves: the writes acknowledged
   after it were lost, and the RPO is the time between its
   acknowledgement and the last one's (zero when none was lost);
6. revives or heals the node and checks that it does not start the
   application.

A member loss is drawn half as often as each of the two faults that make
the application fail over (:data:`FAULT_WEIGHTS`).

Everything is asked inside the nodes' namespaces (``nsenter``), so a cut
node answers too.
"""

import os
import random
import secrets
import subprocess
import threading
import time

import attr

from _lab_automatic import (
    application_text, deployment_text, etcd_value, http_answer,
    kill_etcd_member, lab_command, remove_application, restart_daemons,
    running_on, wait_replicated,
)

__all__ = ["FAULTS", "FAULT_WEIGHTS", "Trials", "TrialResult", "Writer",
           "SAMPLE", "WRITE_EVERY", "TRIAL_TIMEOUT", "SETTLE_TIMEOUT", "rpo"]

#: The faults a trial draws from.
FAULTS = ("kill", "partition", "etcd member")

#: How often each is drawn: a member loss (nothing may move) half as often
#: as each fault that makes the application fail over.
FAULT_WEIGHTS = (2, 2, 1)

#: Seconds between two samples.
SAMPLE = 0.5

#: Seconds between two writes (each also takes a ``docker exec``).
WRITE_EVERY = 0.5

#: Seconds a trial waits for the application to answer before it counts as
#: failed.
TRIAL_TIMEOUT = 180

#: Seconds a standby's lost etcd member is watched for a move: two lease
#: times to live.
MEMBER_WATCH = 20

#: The replication interval of the trials' standby (``every``).
EVERY = "2s"

#: Seconds a trial's preparation waits for the application to run on one
#: node only, the one etcd places it on (after a fault is healed, a node
#: may still be stopping or claiming it).
SETTLE_TIMEOUT = 60

def rpo(acknowledged, served, fault):
    """
    :param acknowledged: ``[(sequence number, time acknowledged)]`` in
        order.
    :param int served: The sequence number the new node serves.
    :param float fault: When the fault was done (same clock).
    :return: ``(seconds, writes lost)``: of the writes acknowledged by
        ``fault``, those after ``served`` were lost; the seconds are those
        between ``served``'s acknowledgement and the last one's.
    """
    before = [(number, at) for number, at in acknowledged if at <= fault]
    lost = [number for number, _ in before if number > served]
    if not lost:
        return 0.0, 0
    kept = [at for number, at in before if number <= served]
    since = kept[-1] if kept else before[0][1]
    return before[-1][1] - since, len(lost)


class Writer(threading.Thread):
    """
    Writes the next sequence number into the application's ``/www/seq``
    every :data:`WRITE_EVERY` seconds, through ``docker exec`` on its node,
    until stopped or a write fails (its node is gone).

    :ivar acknowledged: ``[(sequence number, monotonic time)]`` of the
        writes that returned successfully.
    """

    def __init__(self, lab, node, name, first):
        """
        :param lab: The ``_lab_client.Lab``.
        :param str node: The node running the application.
        :param str name: The application.
        :param tuple first: ``(0, time)`` of the write made while preparing.
        """
        threading.Thread.__init__(self, daemon=True)
        self._lab = lab
        self._node = node
        self._container = "flocker--" + name
        self._stopping = threading.Event()
        self.acknowledged = [first]

    def run(self):
        number = self.acknowledged[-1][0]
        while not self._stopping.is_set():
            number += 1
            try:
                result = self._lab.run(self._node, [
                    "docker", "exec", "-i", self._container, "sh", "-c",
                    "cat > /www/seq.new && mv /www/seq.new /www/seq"],
                    input="%d\n" % (number,), check=False, timeout=30)
            except subprocess.TimeoutExpired:
                return
            if result.returncode != 0:
                return
            self.acknowledged.append((number, time.monotonic()))
            self._stopping.wait(WRITE_EVERY)

    def stop(self):
        """
        Stop writing; return once the write under way (if any) ended.
        """
        self._stopping.set()
        self.join(60)


@attr.s(frozen=True)
class TrialResult(object):
    """
    What one trial saw.

    :ivar int number: The trial's number, from 0.
    :ivar str fault: ``kill``, ``partition`` or ``etcd member``.
    :ivar str source: The node running the application before the fault.
    :ivar str target: Where it runs after it (``None``: it did not come
        back in time).
    :ivar float delay: Seconds between the writer's start and the fault.
    :ivar rto: Seconds from the fault until every live node answered the
        trial's content, or ``None``.
    :ivar stopped: Seconds from the fault until the source no longer ran
        it, or ``None``.
    :ivar rpo: Seconds of acknowledged writes lost, or ``None``.
    :ivar int lost: How many acknowledged writes were lost.
    :ivar int acknowledged: How many writes were acknowledged by the fault.
    :ivar int split_brain: Samples with two nodes running it.
    :ivar int stale: Answers with another ``index.html`` than the trial's.
    :ivar victim: The standby whose etcd member was killed, or ``None``.
    """
    number = attr.ib()
    fault = attr.ib()
    source = attr.ib()
    target = attr.ib()
    delay = attr.ib()
    rto = attr.ib(default=None)
    stopped = attr.ib(default=None)
    rpo = attr.ib(default=None)
    lost = attr.ib(default=0)
    acknowledged = attr.ib(default=0)
    split_brain = attr.ib(default=0)
    stale = attr.ib(default=0)
    victim = attr.ib(default=None)

    @property
    def completed(self):
        """
        Whether the trial ended as it must: taken over (kill, partition),
        or left where it ran (etcd member).
        """
        if self.fault == "etcd member":
            return self.target == self.source
        return self.rto is not None


class Trials(object):
    """
    One series of trials on a lab, with its application and files.
    """

    def __init__(self, lab, directory, seed, port, prefix="trials"):
        """
        :param lab: The ``_lab_client.Lab`` (three nodes at least).
        :param str directory: Where its configuration files go.
        :param int seed: The seed of every random choice.
        :param int port: The application's external port.
        :param str prefix: The application's name starts with it.
        """
        self.lab = lab
        self.directory = directory
        self.seed = seed
        self.chooser = random.Random(seed)
        self.port = port
        self.name = "%s-%s" % (prefix, secrets.token_hex(3))
        self.nodes = lab.node_names[:3]
        self.address = {node: lab.address(node) for node in self.nodes}
        self.applications = self._write("applications.yml",
                                        application_text(self.name, port))
        self.primary = self.nodes[0]
        self.stale_owner = None
        self.results = []

    def _write(self, name, text):
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _deploy(self):
        others = [self.address[n] for n in self.nodes if n != self.primary]
        path = self._write("deployment.yml", deployment_text(
            self.name, self.address[self.primary], others,
            [self.address[n] for n in self.nodes], every=EVERY))
        result = self.lab.run_client(
            ["flocker-deploy", "--yes", path, self.applications],
            check=False, timeout=300)
        if result.returncode != 0:
            raise RuntimeError("deploy on %s: %s%s" % (
                self.primary, (result.stdout + result.stderr)[-1500:],
                self._supervisors()))

    def _supervisors(self):
        """
        :return: What each node's unit runner said last (agent exits and
            restarts), for a failed deploy's message.
        """
        said = []
        for node in self.nodes:
            lines = self.lab.run(
                node, ["grep", "-v", "^{", "/var/log/flocker-agent.log"],
                check=False).stdout.splitlines()
            said.extend("\n%s: %s" % (node, line) for line in lines[-3:])
        return "".join(said)

    def _prepare(self, number):
        """
        Deploy where it runs, write the trial's content and sequence 0,
        wait until both standbys have them.

        :return: ``(content, (0, acknowledged at))``.
        :raises RuntimeError: If it does not run where etcd places it, or
            the writes into it fail.
        """
        if self.results:
            self.primary = self._settled()
        if self.stale_owner == self.primary:
            raise RuntimeError("%s runs on %s again, whose copy was the "
                               "stale one" % (self.name, self.primary))
        if self.stale_owner is not None:
            # The node it failed over from owns a stale copy: it is
            # removed, and replication sends it afresh.
            self.lab.run(self.stale_owner, ["flocker-volume", "delete",
                                            self.name], check=False)
            self.stale_owner = None
        self._deploy()
        placed = self._settled()
        if placed != self.primary:
            raise RuntimeError("deployed on %s, but %s runs on %s" % (
                self.primary, self.name, placed))
        content = "trial %d of %s\n" % (number, self.name)
        container = "flocker--" + self.name
        written = self.lab.run(self.primary, [
            "docker", "exec", "-i", container, "sh", "-c",
            "cat > /www/index.html && echo 0 > /www/seq"], input=content,
            check=False, timeout=60)
        if written.returncode != 0:
            raise RuntimeError("writing into %s on %s: %s (it runs on %s)" % (
                container, self.primary, written.stderr.strip(),
                ", ".join(running_on(self.lab, self.name, self.nodes))
                or "no node"))
        first = (0, time.monotonic())
        wait_replicated(self.lab, self.name,
                        [n for n in self.nodes if n != self.primary],
                        time.time(), timeout=300)
        return content, first

    def run(self, number, fault=None):
        """
        Run trial ``number``.

        :param fault: One of :data:`FAULTS`, or ``None`` to draw it.
        :return: Its :class:`TrialResult` (also kept in ``results``).
        :raises RuntimeError: If it could not be prepared.
        """
        # Drawn even when given, so a seed always draws the same delays.
        drawn = self.chooser.choices(FAULTS, FAULT_WEIGHTS)[0]
        fault = fault or drawn
        delay = round(self.chooser.uniform(0.5, 4.5), 2)
        # Which standby, drawn as the standby's index: the node it runs on
        # is only known once the preparation found where it settled.
        standby = self.chooser.randrange(len(self.nodes) - 1)
        content, first = self._prepare(number)
        victim = [n for n in self.nodes if n != self.primary][standby]
        writer = Writer(self.lab, self.primary, self.name, first)
        writer.start()
        time.sleep(delay)
        if fault == "etcd member":
            writer.stop()
            result = self._member_loss(number, delay, victim)
        else:
            result = self._cut(number, fault, delay, content, writer)
        self.results.append(result)
        return result

    def _cut(self, number, fault, delay, content, writer):
        source = self.primary
        live = [n for n in self.nodes if n != source]
        lab_command([fault, source])
        fault_done = time.monotonic()
        writer.stop()
        split_brain = stale = 0
        stopped = rto = target = None
        while time.monotonic() - fault_done < TRIAL_TIMEOUT:
            where = running_on(self.lab, self.name, self.nodes)
            now = time.monotonic() - fault_done
            if len(where) > 1:
                split_brain += 1
            if stopped is None and source not in where:
                stopped = now
            if where and where[0] in live:
                answers = [http_answer(self.lab, self.address[n], self.port)
                           for n in live]
                stale += sum(1 for a in answers
                             if a is not None and a != content)
                if all(a == content for a in answers):
                    rto, target = time.monotonic() - fault_done, where[0]
                    break
            time.sleep(SAMPLE)
        seconds = lost = None
        if target is not None:
            served = http_answer(self.lab, self.address[target], self.port,
                                 path="/seq")
            try:
                seconds, lost = rpo(writer.acknowledged,
                                    int((served or "").strip()), fault_done)
            except ValueError:
                pass
        split_brain += self._recover(source, fault)
        acknowledged = sum(1 for _, at in writer.acknowledged
                           if at <= fault_done)
        if target is not None:
            # Where it runs from now on is looked up by the next trial's
            # preparation, once it settled.
            self.primary = target
            self.stale_owner = source
        return TrialResult(
            number=number, fault=fault, source=source, target=target,
            delay=delay, rto=rto, stopped=stopped, rpo=seconds,
            lost=lost or 0, acknowledged=acknowledged,
            split_brain=split_brain, stale=stale)

    def _placed(self):
        """
        :return: The node etcd places the application on now, or ``None``
            (no placement, or no member answered).
        """
        by_address = {a: n for n, a in self.address.items()}
        for node in self.nodes:
            placement = etcd_value(self.lab, node, "placement", self.name)
            if placement is not None:
                return by_address.get(placement.get("node"))
        return None

    def _settled(self, timeout=SETTLE_TIMEOUT):
        """
        Wait until the application runs on one node only, the one etcd
        places it on (a node that took it over may still be starting it,
        or a holder that fenced itself claiming it again).

        :return: That node.
        :raises RuntimeError: If it does not settle within ``timeout``
            seconds, naming where it runs and where etcd places it.
        """
        deadline = time.monotonic() + timeout
        while True:
            placed = self._placed()
            where = running_on(self.lab, self.name, self.nodes)
            if placed is not None and where == [placed]:
                return placed
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "%s did not settle within %ds: it runs on %s, etcd "
                    "places it on %s" % (self.name, timeout,
                                         ", ".join(where) or "no node",
                                         placed or "no node"))
            time.sleep(SAMPLE)

    def _member_loss(self, number, delay, victim):
        """
        Kill the etcd member of ``victim`` (a standby); watch for
        :data:`MEMBER_WATCH` seconds that the application stays; start the
        member again as its unit would.
        """
        kill_etcd_member(self.lab, victim)
        split_brain = 0
        stayed = True
        deadline = time.monotonic() + MEMBER_WATCH
        while time.monotonic() < deadline:
            where = running_on(self.lab, self.name, self.nodes)
            if len(where) > 1:
                split_brain += 1
            stayed &= where == [self.primary]
            time.sleep(SAMPLE)
        restart_daemons(self.lab)
        return TrialResult(
            number=number, fault="etcd member", source=self.primary,
            target=self.primary if stayed else None, delay=delay,
            split_brain=split_brain, victim=victim)

    def _recover(self, node, fault):
        """
        Revive or heal ``node``; for a few samples check that it does not
        run the application.

        :return: The samples in which it did (split brain).
        """
        lab_command(["revive" if fault == "kill" else "heal", node])
        found = 0
        for _ in range(5):
            if node in running_on(self.lab, self.name, [node]):
                found += 1
            time.sleep(1)
        return found

    def clean(self):
        """
        Remove the application, its keys and its volumes from every node
        (healing any node left cut).
        """
        for node in self.nodes:
            lab_command(["heal", node], check=False)
            lab_command(["revive", node], check=False)
        remove_application(self.lab, self.name, self.nodes)
