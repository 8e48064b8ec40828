"""
Fault injection on the lab (``admin/lab``): moves of an application with a
volume, broken at every step boundary and in the middle of the transfer by
killing the deploy client, killing ``flocker-node`` (or the receiving
``zfs receive``) on the old or the new node, cutting the client's SSH
connection to a node, or stopping a node's sshd; then the deploy is run
again.

Every trial checks, beside the fault:

* at every instant observed while the move, the fault and the re-runs went
  on (a watcher samples the three pools' ``flocker:owner`` properties and
  the three Docker daemons every few tens of milliseconds): at most one
  node owns the volume, and at most one container of the application runs;
* the re-run converges (exit 0), and a deploy after it changes nothing;
* the application runs only on its new node, with the sha256 of every
  file of its volume equal to what it was before the move;
* no half-received dataset is left on any pool, and each copy keeps at most
  :data:`MAX_SNAPSHOTS` of Flocker's snapshots.

:class:`WriteSafetyTests` moves a Redis whose client appends numbered records
through another node's routed port throughout the move, and checks that
every acknowledged record is there afterwards.

The trials run in order on one application that moves from node to node;
each starts from wherever the previous one left it.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import (
    cases, class_temporary_path, http_status_and_body, shared_lab,
    temporary_path, with_cases,
)
from flocker.volume._api import FOLLOWER_SNAPSHOTS

LAB_SCRIPT = Path(__file__).resolve().parents[3] / "admin" / "lab"

# The lab's own Docker API client (admin/ is not a package).
sys.path.insert(0, str(LAB_SCRIPT.parent))
from _lab_client import start_lab  # noqa: E402
from _lab_images import DockerAPI  # noqa: E402
WRITER = Path(__file__).resolve().parent / "_writer.py"

#: External ports of the applications of these tests.
WEB_PORT = 18090
REDIS_PORT = 16379
IMAGE = "flocker/busybox:latest"
REDIS_IMAGE = "flocker/redis:latest"
#: Seconds allowed for one deploy.
DEPLOY_TIMEOUT = 180
#: Most of Flocker's snapshots a copy may keep once a deploy converged: a
#: follower keeps its newest FOLLOWER_SNAPSHOTS, an owner those before the
#: snapshot it sent last, and that one.
MAX_SNAPSHOTS = FOLLOWER_SNAPSHOTS + 1
#: Random data written before a trial that breaks the transfer, so the
#: pre-copy lasts long enough to be caught in the middle.
BIG_MIB = 32

APPLICATIONS = """\
version: 1
applications:
  {web}:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    ports: [{{internal: 80, external: {port}}}]
    volume: {{mountpoint: /data}}
"""

REDIS_APPLICATIONS = """\
version: 1
applications:
  {name}:
    image: {image}
    command: ["redis-server", "--dir", "/data", "--appendonly", "yes",
              "--appendfsync", "always", "--protected-mode", "no"]
    ports: [{{internal: 6379, external: {port}}}]
    volume: {{mountpoint: /data}}
"""

#: An application linked to the moving one (its port, inside the linked
#: container, reaches the moving application).
LINKED = """\
  {name}:
    image: {image}
    command: ["sleep", "100000"]
    links: [{{local_port: {local}, remote_port: {remote}, alias: web}}]
"""
LINK_PORT = 15001

#: When a fault strikes, as ``(name, kind, detail)``:
#:
#: * ``("call", SUBCOMMAND, "started"|"succeeded", "source"|"target"|"any")``:
#:   when the deploy client's log shows that remote call to that node start
#:   or succeed;
#: * ``("transfer", None, None, "source")``: while ``zfs send`` of the volume
#:   runs on the old node (the pre-copy, made large beforehand).
POINTS = {
    "push-start": ("call", "push-volume", "started", "source"),
    "mid-transfer": ("transfer", None, None, "source"),
    "push-done": ("call", "push-volume", "succeeded", "source"),
    "stopped": ("call", "stop-application", "succeeded", "source"),
    "release-start": ("call", "release-volume", "started", "source"),
    "released": ("call", "release-volume", "succeeded", "source"),
    "acquired": ("call", "acquire-volume", "succeeded", "target"),
    "started": ("call", "start-application", "succeeded", "target"),
    "routes": ("call", "set-routes", "started", "any"),
}

#: The trials: ``(point, fault)``.  Faults: ``kill-client`` (SIGKILL the
#: deploy), ``kill-node-source``/``kill-node-target`` (SIGKILL that node's
#: ``flocker-node agent``; it is started again, as systemd would, before
#: the re-runs), ``kill-receive`` (SIGKILL the receiving ``zfs receive``,
#: which the new node's agent runs), ``cut-ssh-source``/
#: ``cut-ssh-target`` (SIGKILL the sshd processes serving connections on that
#: node), ``stop-sshd-target`` (stop the new node's sshd: node-to-node pushes
#: and new connections to it fail; it is started again before the re-run
#: that must succeed).
TRIALS = [
    ("push-start", "kill-client"),
    ("mid-transfer", "kill-client"),
    ("push-done", "kill-client"),
    ("stopped", "kill-client"),
    ("release-start", "kill-client"),
    ("released", "kill-client"),
    ("acquired", "kill-client"),
    ("started", "kill-client"),
    ("routes", "kill-client"),
    ("mid-transfer", "kill-node-source"),
    ("stopped", "kill-node-source"),
    ("release-start", "kill-node-source"),
    ("released", "kill-node-source"),
    ("mid-transfer", "kill-node-target"),
    ("released", "kill-node-target"),
    ("acquired", "kill-node-target"),
    ("mid-transfer", "kill-receive"),
    ("mid-transfer", "cut-ssh-source"),
    ("release-start", "cut-ssh-source"),
    ("released", "cut-ssh-target"),
    ("started", "cut-ssh-target"),
    ("push-start", "stop-sshd-target"),
    ("push-done", "stop-sshd-target"),
]



def running_containers(socket_path, name):
    """
    :return: How many running containers named ``flocker--NAME`` the Docker
        daemon at ``socket_path`` has.
    """
    return len(DockerAPI(str(socket_path), timeout=10).get_json(
        "/containers/json?filters=" + quote(
            json.dumps({"name": ["^/flocker--%s$" % (name,)]}))))


def processes_in(netns):
    """
    :param str netns: A network namespace file.
    :return: ``list`` of ``(pid, argv)`` of the processes in it.
    """
    wanted = os.stat(netns).st_ino
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat("/proc/%s/ns/net" % (entry,)).st_ino != wanted:
                continue
            with open("/proc/%s/cmdline" % (entry,), "rb") as f:
                argv = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        argv = [a for a in argv if a]
        if argv:
            # Kernel threads and zombies have no command line.
            found.append((int(entry), argv))
    return found


def kill_matching(machine, match, sig=signal.SIGKILL):
    """
    Signal the processes of ``machine`` whose argv satisfies ``match``.

    :return: How many were signalled.
    """
    count = 0
    for pid, argv in processes_in(machine.netns):
        if argv and match(argv):
            try:
                os.kill(pid, sig)
                count += 1
            except ProcessLookupError:
                pass
    return count


def _is_agent(argv):
    return (any(a.endswith("flocker-node") for a in argv)
            and "agent" in argv)


def _is_send(argv, pool, volume):
    """
    :return: Whether ``argv`` is a ``zfs send`` of ``volume``.  Once
        running, zfs-fuse's ``zfs`` shows its ``POOL/NAME@SNAPSHOT``
        argument cut at the ``@`` (it writes a NUL there), so both forms
        count.
    """
    dataset = "%s/%s" % (pool, volume)
    return "send" in argv and any(
        a == dataset or a.startswith(dataset + "@") for a in argv)


def _is_receive(argv):
    return os.path.basename(argv[0]) == "zfs" and "receive" in argv


def _is_sshd(argv):
    # The listener renames itself "sshd: /usr/sbin/sshd -D ... [listener]".
    return "[listener]" in " ".join(argv) or (
        os.path.basename(argv[0]) == "sshd" and "-D" in argv)


def _is_ssh_session(argv):
    return argv[0].startswith("sshd:") and not _is_sshd(argv)


class Watcher(threading.Thread):
    """
    Samples, until stopped, which nodes own the volume (their copy names
    their own identity) and how many containers of the application run.

    :ivar int samples: Instants observed.
    :ivar int most_owners: The most owners seen at one instant.
    :ivar int most_running: The most running containers seen at once.
    :ivar list bad: Samples breaking the rule: ``(owners, running)``.
    """

    def __init__(self, lab, nodes, name, node_ids):
        threading.Thread.__init__(self, daemon=True)
        self._lab = lab
        self._nodes = nodes
        self._name = name
        self._node_ids = node_ids
        self._stop_event = threading.Event()
        self.samples = self.most_owners = self.most_running = 0
        self.bad = []
        self.error = None

    def owners(self):
        """
        :return: Names of the nodes whose copy names themselves as owner.
        """
        datasets = ["%s/%s" % (node.pool, self._name) for node in self._nodes]
        # The pools share the host's zfs-fuse: one command reads all three.
        result = subprocess.run(
            ["zfs", "get", "-H", "-p", "-o", "name,value", "flocker:owner"]
            + datasets, capture_output=True, text=True, timeout=60)
        owner_of = dict(line.split("\t", 1)
                        for line in result.stdout.splitlines() if "\t" in line)
        return [node.name for node in self._nodes
                if owner_of.get("%s/%s" % (node.pool, self._name))
                == self._node_ids[node.name]]

    def run(self):
        try:
            while not self._stop_event.is_set():
                owners = self.owners()
                running = sum(running_containers(node.docker_socket,
                                                 self._name)
                              for node in self._nodes)
                self.samples += 1
                self.most_owners = max(self.most_owners, len(owners))
                self.most_running = max(self.most_running, running)
                if len(owners) > 1 or running > 1:
                    self.bad.append((owners, running))
                self._stop_event.wait(0.02)
        except Exception as e:
            self.error = e

    def stop(self):
        """
        Stop sampling and wait for the thread.
        """
        self._stop_event.set()
        self.join(120)


class LogTrigger(object):
    """
    Reads the deploy's eliot log as it grows and tells when a remote call
    started or succeeded.
    """

    def __init__(self, path):
        self._path = path
        self._offset = 0
        self._calls = {}
        self._partial = b""
        self.events = []

    def poll(self):
        """
        Read what was appended: remote call events go to :attr:`events` as
        ``(subcommand, address, status)``.
        """
        try:
            with open(self._path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            key = (message.get("task_uuid"),
                   tuple(message.get("task_level", ()))[:-1])
            if message.get("action_type") != "flocker:cli:remote:call":
                continue
            status = message.get("action_status")
            if status == "started":
                self._calls[key] = (message["subcommand"], message["address"])
            call = self._calls.get(key)
            if call is not None:
                self.events.append(call + (status,))

    def seen(self, subcommand, address, status):
        """
        :param address: A node address, or ``None`` for any.
        :return: Whether that event happened.
        """
        return any(event[0] == subcommand and event[2] == status
                   and address in (None, event[1]) for event in self.events)


class FaultLab(object):
    """
    The application the trials move, and the lab operations they need.
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.directory = directory
        self.nodes = lab.nodes[:3]
        self.addresses = [node.address for node in self.nodes]
        self.name = "fault-" + secrets.token_hex(3)
        self.applications = self.write("applications.yml", APPLICATIONS.format(
            web=self.name, image=IMAGE, port=WEB_PORT))
        self.node_ids = {}
        for node in self.nodes:
            self.node_ids[node.name] = lab.run(node.name, [
                "zfs", "get", "-H", "-o", "value", "flocker:node-id",
                node.pool]).stdout.strip()
        self.runs = 0
        self.deploys = 0

    def write(self, name, content):
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(content)
        return path

    def deployment(self, index):
        """
        :param index: The node (0-based) to run the application on, or
            ``None`` for nowhere.
        :return: The deployment file's path.
        """
        lines = ["version: 1", "nodes:"]
        for i, address in enumerate(self.addresses):
            lines.append("  %s: [%s]" % (
                address, self.name if i == index else ""))
        return self.write("deployment-%s.yml" % (index,),
                          "\n".join(lines) + "\n")

    def deploy_argv(self, index, log=None, applications=None):
        # --yes: some steps remove applications (a destructive change).
        return (["flocker-deploy", "--yes"] + (["--log", log] if log else [])
                + [self.deployment(index), applications or self.applications])

    def deploy(self, index, applications=None):
        """
        Run a deploy to completion.

        :return: The ``CompletedProcess``.
        """
        self.deploys += 1
        return self.lab.run_client(self.deploy_argv(index,
                                                    applications=applications),
                                   check=False, timeout=DEPLOY_TIMEOUT)

    def where(self):
        """
        :return: Indexes of the nodes running the application.
        """
        return [i for i, node in enumerate(self.nodes)
                if running_containers(node.docker_socket, self.name)]

    def running_on(self):
        """
        :return: The index of the node running the application, deploying
            it to node1 first if it runs nowhere (a test deploying other
            files removed it) or astray.
        """
        if not all(os.path.exists(node.docker_socket)
                   and any(_is_sshd(argv)
                           for _, argv in processes_in(node.netns))
                   for node in self.nodes):
            # A failed test left a node's daemons stopped.
            self.restore_sshd()
        if len(self.where()) != 1:
            result = self.deploy(0)
            if result.returncode != 0:
                raise AssertionError("the deploy to node1 failed: %s" % (
                    _summary(result),))
            self.write_data(0, big=False)
        [index] = self.where()
        return index

    def exec_in(self, index, argv, **kwargs):
        return self.lab.run(self.nodes[index].name, [
            "docker", "exec", "-i", "flocker--" + self.name] + argv, **kwargs)

    def checksums(self, index):
        """
        :return: ``dict`` of path to sha256 for every file of the volume,
            read in the application's container on that node.
        """
        result = self.exec_in(index, ["find", "/data", "-type", "f", "-exec",
                                      "sha256sum", "{}", "+"])
        sums = {}
        for line in result.stdout.splitlines():
            digest, path = line.split(None, 1)
            sums[path] = digest
        return sums

    def write_data(self, index, big):
        """
        Add a small file to the volume, and with ``big`` replace
        ``big.bin`` with :data:`BIG_MIB` MiB of new random data.
        """
        self.runs += 1
        self.exec_in(index, ["dd", "if=/dev/urandom",
                             "of=/data/small-%d.bin" % (self.runs,), "bs=4096",
                             "count=1"])
        if big:
            self.exec_in(index, ["dd", "if=/dev/urandom", "of=/data/big.bin",
                                 "bs=1048576", "count=%d" % (BIG_MIB,)],
                         timeout=120)
        self.exec_in(index, ["sync"])

    def leftovers(self):
        """
        :return: ``(stray datasets, {node name: number of Flocker snapshots
            of its copy}})`` over the three pools.
        """
        stray = []
        snapshots = {}
        for node in self.nodes:
            result = self.lab.run(node.name, [
                "zfs", "list", "-H", "-r", "-t", "all", "-o", "name",
                node.pool], check=False)
            for line in result.stdout.split():
                dataset, _, snapshot = line.partition("@")
                if not dataset.startswith("%s/%s" % (node.pool, self.name)):
                    continue
                if dataset != "%s/%s" % (node.pool, self.name):
                    stray.append(line)
                elif snapshot.startswith("flocker-"):
                    snapshots[node.name] = snapshots.get(node.name, 0) + 1
        return sorted(set(stray)), snapshots

    def restore_sshd(self):
        """
        Bring every node's sshd, dockerd and agent back (``admin/lab up``
        restarts what is missing).
        """
        start_lab(LAB_SCRIPT, nodes=len(self.lab.nodes))

    def strike(self, fault, source, target, proc):
        """
        Apply ``fault``.

        :return: How many processes it hit.
        """
        if fault == "kill-client":
            proc.kill()
            return 1
        machine = source if fault.endswith("-source") else target
        if fault.startswith("kill-node"):
            return kill_matching(machine, _is_agent)
        if fault == "kill-receive":
            # The receiving agent starts zfs receive only once it has read
            # the sender's request, a moment after zfs send started: look
            # for it for as long as the deploy runs.
            while proc.poll() is None:
                hit = kill_matching(machine, _is_receive)
                if hit:
                    return hit
                time.sleep(0.005)
            return 0
        if fault.startswith("cut-ssh"):
            return kill_matching(machine, _is_ssh_session)
        if fault.startswith("stop-sshd"):
            return kill_matching(machine, _is_sshd, signal.SIGTERM)
        raise AssertionError("unknown fault %r" % (fault,))


def _remove(state):
    """
    Start the sshd a trial stopped, and remove the moving application with
    its volumes.
    """
    state.restore_sshd()
    state.deploy(None)
    for node in state.nodes:
        node.run(["flocker-volume", "delete", state.name], check=False)


class _FaultLabMixin(object):
    """
    For a ``TestCase``: ``fault_lab``, the moving application, deployed on
    node1 with some data for the class's tests; removed with its volumes
    at the end.
    """

    @classmethod
    def setUpClass(cls):
        state = cls.fault_lab = FaultLab(shared_lab(),
                                         str(class_temporary_path(cls)))
        cls.addClassCleanup(_remove, state)
        result = state.deploy(0)
        if result.returncode != 0:
            raise AssertionError(result.stdout + result.stderr)
        state.write_data(0, big=False)


def _summary(result):
    return "exit %s\n%s\n%s" % (result.returncode, result.stdout,
                                result.stderr)


@with_cases
class MoveFaultsTests(_FaultLabMixin, SynchronousTestCase):
    """
    A move broken at one point by one fault, then run again.
    """

    @cases(TRIALS, ids=["%s+%s" % trial for trial in TRIALS])
    def test_fault(self, point, fault):
        """
        After the fault and a re-run, the move is complete, nothing was
        lost, and there never were two owners or two running copies.
        """
        s = self.fault_lab
        # An earlier test may have left the application astray (a failed
        # trial) or removed it (another test's files).
        source_index = s.running_on()
        target_index = (source_index + 1) % len(s.nodes)
        source, target = s.nodes[source_index], s.nodes[target_index]
        kind, subcommand, status, side = POINTS[point]
        s.write_data(source_index, big=(kind == "transfer"))
        before = s.checksums(source_index)
        log = os.path.join(s.directory, "%s-%s.log" % (point, fault))
        watcher = Watcher(s.lab, s.nodes, s.name, s.node_ids)
        watcher.start()
        try:
            proc = s.lab.client.popen(s.deploy_argv(target_index, log=log),
                                      stdout=open(log + ".out", "w"),
                                      stderr=open(log + ".err", "w"))
            trigger = LogTrigger(log)
            address = {"source": source.address, "target": target.address,
                       "any": None}[side]
            struck = None
            deadline = time.monotonic() + DEPLOY_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if kind == "call":
                    trigger.poll()
                    hit = trigger.seen(subcommand, address, status)
                else:
                    hit = any(_is_send(argv, source.pool, s.name)
                              for _, argv in processes_in(source.netns))
                if hit:
                    struck = s.strike(fault, source, target, proc)
                    break
                time.sleep(0.005)
            try:
                proc.wait(DEPLOY_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("the broken deploy never ended")
            with open(log + ".out") as f:
                first_out = f.read()
            with open(log + ".err") as f:
                first_err = f.read()
            self.assertTrue(
                struck,
                "the fault never struck (%s): %s%s" % (
                    point, first_out, first_err))
            if fault != "kill-client":
                # The broken deploy still says what went wrong, one line
                # per failure, without a traceback.
                self.assertNotIn(
                    "Traceback",
                    first_out + first_err,
                    first_out + first_err)
            reruns = []
            if fault.startswith("stop-sshd"):
                # While the node's sshd is down, a deploy fails naming it.
                result = s.deploy(target_index)
                reruns.append(result)
                self.assertTrue(
                    result.returncode != 0
                    and target.address in result.stdout + result.stderr
                    and "Traceback" not in result.stdout + result.stderr,
                    _summary(result))
                s.restore_sshd()
            if fault.startswith("kill-node"):
                # The deploy failed naming the node and where to look; the
                # agent comes back as systemd would restart it.
                killed = source if fault.endswith("-source") else target
                self.assertTrue(
                    killed.address in first_out + first_err
                    and "systemctl status flocker-node"
                    in first_out + first_err,
                    first_out + first_err)
                s.restore_sshd()
            for attempt in range(3):
                result = s.deploy(target_index)
                reruns.append(result)
                if result.returncode == 0:
                    break
                time.sleep(1)
            self.assertEqual(
                result.returncode,
                0,
                "\n---\n".join(
                    _summary(r) for r in reruns))
            again = s.deploy(target_index)
            self.assertEqual(
                (again.returncode, "cluster already converged: no changes"
                 in again.stdout),
                (0, True),
                _summary(again))
        finally:
            watcher.stop()
        self.assertEqual(
            (watcher.error, watcher.bad, watcher.samples > 5),
            (None, [], True),
            (watcher.error, watcher.bad, watcher.samples))
        self.assertEqual(s.where(), [target_index])
        self.assertEqual(s.checksums(target_index), before)
        # Agents prune after a push, receive or acquire, which do not wait
        # for it: the copies get down to their count soon after.
        deadline = time.monotonic() + 30
        stray, snapshots = s.leftovers()
        while max(snapshots.values(), default=0) > MAX_SNAPSHOTS and \
                time.monotonic() < deadline:
            time.sleep(0.5)
            stray, snapshots = s.leftovers()
        self.assertEqual(
            (stray, [n for n, count in snapshots.items()
                     if count > MAX_SNAPSHOTS]),
            ([], []),
            snapshots)


class WriteSafetyTests(SynchronousTestCase):
    """
    A Redis written to throughout its move loses no acknowledged record.
    """

    def test_acknowledged_records_kept(self):
        """
        A writer appends numbered records through the third node's routed
        port while Redis moves from node1 to node2; every record Redis
        acknowledged is in the list afterwards, in order.
        """
        lab = shared_lab()
        directory = str(temporary_path(self))
        s = FaultLab(lab, directory)
        s.name = "wsafe-" + secrets.token_hex(3)
        applications = s.write("redis.yml", REDIS_APPLICATIONS.format(
            name=s.name, image=REDIS_IMAGE, port=REDIS_PORT))
        stop_file = os.path.join(directory, "stop")
        try:
            result = s.deploy(0, applications)
            self.assertEqual(result.returncode, 0, _summary(result))
            writer = lab.client.popen(
                [sys.executable, str(WRITER), s.addresses[2],
                 str(REDIS_PORT), "records", stop_file, "120"],
                stdout=-1, stderr=-1, text=True)
            time.sleep(1.0)
            moved = s.deploy(1, applications)
            time.sleep(1.0)
            with open(stop_file, "w"):
                pass
            out, err = writer.communicate(timeout=60)
            self.assertEqual(moved.returncode, 0, _summary(moved))
            written = json.loads(out)
            stored = lab.run_client([
                "redis-cli", "-h", s.addresses[2], "-p", str(REDIS_PORT),
                "--raw", "LRANGE", "records", "0", "-1"]).stdout.split()
            stored = [int(value) for value in stored]
            acknowledged = written["acknowledged"]
            # Re-sent records may appear twice; order and presence count.
            deduplicated = [v for i, v in enumerate(stored)
                            if i == 0 or stored[i - 1] != v]
            self.assertEqual(
                (len(acknowledged) > 50, written["failures"] > 0,
                 deduplicated[:len(acknowledged)] == acknowledged),
                (True, True, True),
                (len(acknowledged), written["failures"],
                 len(stored)))
            print("write safety: %d records acknowledged, %d failed "
                  "attempts during the move, %d stored" % (
                      len(acknowledged), written["failures"], len(stored)))
        finally:
            with open(stop_file, "w"):
                pass
            s.deploy(None, applications)
            for node in s.nodes:
                node.run(["flocker-volume", "delete", s.name], check=False)


def _is_dockerd(argv):
    return os.path.basename(argv[0]) == "dockerd"


def stop_daemons(machine, match):
    """
    Stop the daemons of ``machine`` that ``match`` (SIGTERM, as a shutdown
    or restart does) and wait until they are gone.

    :return: How many were stopped.
    """
    count = kill_matching(machine, match, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while any(match(argv) for _, argv in processes_in(machine.netns)):
        if time.monotonic() >= deadline:
            raise AssertionError("the daemons of %s did not stop within "
                                 "60 s" % (machine.name,))
        time.sleep(0.1)
    return count


class ClusterFaultsTests(_FaultLabMixin, SynchronousTestCase):
    """
    Faults of whole parts of the cluster: a full pool, a Docker daemon
    restarted during a deploy, a node rebooted, two deploys at once.
    Each ends with a deploy that converges, with the volume's data intact.
    """

    def _converge(self, s, index):
        """
        Deploy until it converges (at most three runs).

        :return: The last ``CompletedProcess``.
        """
        for attempt in range(3):
            result = s.deploy(index)
            if result.returncode == 0:
                break
            time.sleep(1)
        self.assertEqual(result.returncode, 0, _summary(result))
        return result

    def _answers(self, s, index):
        """
        :return: The HTTP status lines of ``GET /index.html`` sent to the
            application's port of every node, from the client.
        """
        responses = []
        for address in s.addresses:
            response = s.lab.run_client(
                ["busybox", "nc", "-w", "2", address, str(WEB_PORT)],
                input="GET /index.html HTTP/1.0\r\n\r\n", check=False,
                timeout=30).stdout
            responses.append(http_status_and_body(response)[0])
        return responses

    def test_pool_full(self):
        """
        A move into a pool that has no room (its quota hit) fails with one
        line saying so, changes nothing (the application keeps running
        where it was, with its data); with room again, the move completes.
        """
        s = self.fault_lab
        source = s.running_on()
        target = (source + 1) % len(s.nodes)
        pool = s.nodes[target].pool
        s.write_data(source, big=True)
        before = s.checksums(source)
        # A copy an earlier move left on the target is replaced by the move
        # (deleted, then the whole volume pushed), and its space would make
        # room: remove it first (it follows the source, which keeps the
        # data), so that the pool really has no room for the volume.
        stale = "%s/%s" % (pool, s.name)
        for _ in range(40):
            gone = subprocess.run(["zfs", "list", stale],
                                  capture_output=True).returncode != 0
            if gone or subprocess.run(["zfs", "destroy", "-r", stale],
                                      capture_output=True).returncode == 0:
                break
            # zfs-fuse answers "dataset is busy" right after an unmount.
            time.sleep(0.25)
        used = subprocess.run(
            ["zfs", "get", "-H", "-p", "-o", "value", "used", pool],
            capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["zfs", "set", "quota=%d" % (int(used) + 2 ** 20,),
                        pool], check=True)
        try:
            result = s.deploy(target)
            output = result.stdout + result.stderr
            self.assertEqual(
                (result.returncode != 0, "Traceback" in output,
                 "space" in output or "quota" in output),
                (True, False, True),
                output)
            self.assertEqual(s.where(), [source])
            self.assertEqual(s.checksums(source), before)
        finally:
            subprocess.run(["zfs", "set", "quota=none", pool], check=True)
        self._converge(s, target)
        self.assertEqual((s.where(), s.checksums(target)), ([target], before))

    def test_docker_restarted_mid_deploy(self):
        """
        The new node's Docker daemon stopped right after the application
        stopped on the old node: the deploy fails naming the node; once
        the daemon is back, the next deploy completes the move.
        """
        s = self.fault_lab
        source = s.running_on()
        target = (source + 1) % len(s.nodes)
        before = s.checksums(source)
        log = os.path.join(s.directory, "docker-restart.log")
        proc = s.lab.client.popen(s.deploy_argv(target, log=log),
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        trigger = LogTrigger(log)
        deadline = time.monotonic() + DEPLOY_TIMEOUT
        struck = 0
        while proc.poll() is None and time.monotonic() < deadline:
            trigger.poll()
            if trigger.seen("stop-application", s.addresses[source],
                            "succeeded"):
                struck = stop_daemons(s.nodes[target], _is_dockerd)
                break
            time.sleep(0.005)
        output, _ = proc.communicate(timeout=DEPLOY_TIMEOUT)
        self.assertEqual(
            (struck, proc.returncode != 0, "Traceback" in output,
             s.addresses[target] in output),
            (1, True, False, True),
            output)
        s.restore_sshd()
        self._converge(s, target)
        self.assertEqual((s.where(), s.checksums(target)), ([target], before))

    def test_node_rebooted(self):
        """
        The node running the application reboots (its Docker daemon and
        sshd stopped, Docker found empty when they come back): the next
        deploy starts the application again there, with its data, and it
        answers through every node's port.
        """
        s = self.fault_lab
        index = s.running_on()
        node = s.nodes[index]
        s.exec_in(index, ["cp", "/etc/hostname", "/data/index.html"])
        before = s.checksums(index)
        stop_daemons(node, lambda argv: _is_dockerd(argv) or _is_sshd(argv))
        s.restore_sshd()
        self.assertEqual(s.where(), [])
        result = self._converge(s, index)
        self.assertIn(
            "start application %s" % (s.name,),
            result.stdout,
            _summary(result))
        self.assertEqual((s.where(), s.checksums(index)), ([index], before))
        self.assertEqual(self._answers(s, index), ["200"] * 3)

    def test_two_deploys_at_once(self):
        """
        Two deploys started together, moving the application to two
        different nodes: the one that gets the nodes first runs; the other
        waits for it, then either runs or fails saying another deploy holds
        the nodes.  At every instant at most one node owns the volume and
        at most one copy runs; the cluster ends as the deploy that ran last
        wanted, with the data intact.
        """
        s = self.fault_lab
        source = s.running_on()
        first, second = [(source + k) % len(s.nodes) for k in (1, 2)]
        before = s.checksums(source)
        watcher = Watcher(s.lab, s.nodes, s.name, s.node_ids)
        watcher.start()
        try:
            procs = [s.lab.client.popen(s.deploy_argv(index),
                                        stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
                     for index in (first, second)]
            outputs = [proc.communicate(timeout=DEPLOY_TIMEOUT)[0]
                       for proc in procs]
        finally:
            watcher.stop()
        codes = [proc.returncode for proc in procs]
        self.assertIn(0, codes, outputs)
        for code, output in zip(codes, outputs):
            self.assertNotIn("Traceback", output, output)
            if code != 0:
                self.assertIn("another flocker-deploy", output, output)
        self.assertEqual(
            (watcher.error, watcher.bad),
            (None, []),
            (watcher.error, watcher.bad))
        [now] = s.where()
        self.assertIn(
            now,
            [index for index, code in zip((first, second), codes)
             if code == 0],
            (now, codes, outputs))
        self.assertEqual(s.checksums(now), before)
        self._converge(s, now)

    def test_linked_node_rebooted(self):
        """
        The node of an application linked to the moving one reboots (its
        Docker daemon and sshd stopped, Docker empty when they come back):
        the next deploy starts the linked application again with its link,
        which reaches the other application through ``localhost``.
        """
        s = self.fault_lab
        web = s.running_on()
        linker = (web + 1) % len(s.nodes)
        name = "flink-" + secrets.token_hex(3)
        applications = s.write("linked.yml", APPLICATIONS.format(
            web=s.name, image=IMAGE, port=WEB_PORT) + LINKED.format(
                name=name, image=IMAGE, local=LINK_PORT, remote=WEB_PORT))
        placement = {web: [s.name], linker: [name]}
        deployment = s.write("linked-deployment.yml", "version: 1\nnodes:\n"
                             + "".join("  %s: [%s]\n" % (
                                 address, ", ".join(placement.get(i, [])))
                                 for i, address in enumerate(s.addresses)))

        def deploy():
            return s.lab.run_client(["flocker-deploy", "--yes", deployment,
                                     applications], check=False,
                                    timeout=DEPLOY_TIMEOUT)

        def through_link():
            return s.lab.run(s.nodes[linker].name, [
                "docker", "exec", "-i", "flocker--" + name, "nc", "-w", "2",
                "127.0.0.1", str(LINK_PORT)],
                input="GET /index.html HTTP/1.0\r\n\r\n", check=False,
                timeout=30).stdout
        try:
            s.exec_in(web, ["cp", "/etc/hostname", "/data/index.html"])
            result = deploy()
            self.assertEqual(result.returncode, 0, _summary(result))
            self.assertEqual(http_status_and_body(through_link())[0], "200")
            stop_daemons(s.nodes[linker],
                         lambda argv: _is_dockerd(argv) or _is_sshd(argv))
            s.restore_sshd()
            result = deploy()
            self.assertEqual(
                (result.returncode, "start application %s" % (name,)
                 in result.stdout),
                (0, True),
                _summary(result))
            self.assertEqual(http_status_and_body(through_link())[0], "200")
        finally:
            self._converge(s, web)
