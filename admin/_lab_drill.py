"""
A failover drill on the lab: one application with a volume and two standby
nodes, a writer inside it that timestamps what it writes, the faults of
``admin/lab`` and ``flocker-deploy --failover``, and what to measure about
them.  Used by the failover lab test and by ``benchmarks/failover.py``.

The application (``flocker/busybox``) appends the machine's uptime (the
clock every lab machine shares, with hundredths) to ``/data/stamps`` ten
times a second and serves ``/data`` over HTTP on port 80, published as
:data:`PORT`.  So the newest stamp a copy holds says up to when its writes
reached it, and any node's routed port says which copy answers.

The primary's agent replicates the volume to the standbys (the
deployment file's ``standby:`` section); :class:`ReplicaWatcher` sees, from
the host (whose ``zfs`` lists every lab pool), when each replica arrives
and how old its data is.

Everything here runs commands on lab machines (``nsenter``) from the host,
each with a timeout; waits are bounded.
"""

import calendar
import json
import os
import subprocess
import threading
import time

__all__ = ["PORT", "FailoverDrill", "ReplicaWatcher", "uptime", "probe",
           "admin_lab", "wait_until"]

#: The application's published port.
PORT = 8090

_WRITER = ("httpd -p 80 -h /data; "
           "while true; do read up rest < /proc/uptime; "
           "echo $up >> /data/stamps; usleep 100000; done")

_APPLICATIONS = """\
version: 1
applications:
  {name}:
    image: flocker/busybox
    command: ["sh", "-c", "{writer}"]
    ports: [{{internal: 80, external: {port}}}]
    volume: {{mountpoint: /data}}
    restart_policy: {{name: always}}
"""

# Runs in the client's namespaces: GET /stamps from an address's port.
_FETCH = r"""
import json, socket, sys, time
def fetch(address, port, timeout):
    # (HTTP status, newest stamp), each None when there is none.
    s = socket.create_connection((address, port), timeout=timeout)
    s.settimeout(max(timeout, 1.0))
    s.sendall(b"GET /stamps HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = body.split()
    return (int(head.split()[1]) if head else None,
            float(lines[-1]) if lines else None)
"""

# Print one JSON line {address: [status or null, newest stamp or null]}.
_PROBE = _FETCH + r"""
port, timeout = int(sys.argv[1]), float(sys.argv[2])
found = {}
for address in sys.argv[3:]:
    try:
        found[address] = list(fetch(address, port, timeout))
    except (OSError, ValueError, IndexError):
        found[address] = [None, None]
print(json.dumps(found))
"""

# Poll every address until each answers with a stamp newer than argv[2] (an
# uptime), or until argv[3] seconds passed; print {address: the uptime when
# it first did, or null}.
_WATCH = _FETCH + r"""
port, after, limit = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
addresses = sys.argv[4:]
def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])
seen = {}
deadline = time.monotonic() + limit
while len(seen) < len(addresses) and time.monotonic() < deadline:
    for address in addresses:
        if address in seen:
            continue
        try:
            status, newest = fetch(address, port, 0.3)
        except (OSError, ValueError, IndexError):
            continue
        if status == 200 and newest is not None and newest > after:
            seen[address] = uptime()
    time.sleep(0.05)
print(json.dumps({a: seen.get(a) for a in addresses}))
"""


def uptime():
    """
    :return: The machine's uptime in seconds: the clock the application's
        stamps use (every lab machine shares the kernel).
    """
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def probe(lab, addresses, timeout=2.0):
    """
    Ask each address's :data:`PORT` for the stamps, from the client.

    :return: ``dict`` of address to ``(HTTP status or None, newest stamp or
        None)``.
    """
    result = lab.run_client(["python3", "-c", _PROBE, str(PORT),
                             str(timeout)] + list(addresses),
                            check=False, timeout=30 + timeout * 4)
    try:
        return {a: tuple(v) for a, v in json.loads(result.stdout).items()}
    except ValueError:
        return {a: (None, None) for a in addresses}


class ReplicaWatcher(object):
    """
    Watches, from the host, the snapshots the agents' standby replication
    brings to each standby's copy, in a thread.

    A Flocker snapshot's name is the primary's time when it was taken
    (``flocker-YYYYmmddTHHMMSS.ffffffZ``), so each new one seen on a standby
    says when its data was frozen and, against when it was first seen,
    about how long its transfer took.

    :ivar replicas: ``list`` of ``(standby address, uptime the snapshot was
        taken at, seconds until it was seen on the standby)``, in the order
        they were seen.
    """

    def __init__(self, drill, standbys, interval=0.2):
        """
        :param FailoverDrill drill: The drill.
        :param standbys: The standby nodes.
        :param float interval: Seconds between two looks.
        """
        self._drill, self._standbys = drill, list(standbys)
        self._interval = interval
        self.replicas = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # The snapshot names' clock (UTC wall time) against the stamps'.
        self._offset = time.time() - uptime()

    def start(self):
        """
        Start watching.
        """
        self._thread.start()
        return self

    def stop(self):
        """
        Stop watching.
        """
        self._stop.set()
        self._thread.join(30)

    def _run(self):
        seen = {}
        while not self._stop.is_set():
            for node in self._standbys:
                newest = self._drill.newest_snapshot(node)
                if newest is None or newest == seen.get(node.address):
                    continue
                seen[node.address] = newest
                taken = _snapshot_time(newest)
                if taken is not None:
                    self.replicas.append((
                        node.address, taken - self._offset,
                        max(0.0, time.time() - taken)))
            self._stop.wait(self._interval)

    def count(self):
        """
        :return: How many replicas arrived while watching.
        """
        return len(self.replicas)

    def slowest(self):
        """
        :return: The longest a replica took to arrive, in seconds (0 if
            none).
        """
        return max([seconds for _, _, seconds in self.replicas] + [0.0])

    def newest(self):
        """
        :return: The uptime the newest replica seen was taken at, or
            ``None``.
        """
        return max([taken for _, taken, _ in self.replicas] or [None])


def _snapshot_time(name):
    """
    :param str name: ``flocker-YYYYmmddTHHMMSS.ffffffZ`` (maybe ``-N``).
    :return: Its time (seconds since the epoch), or ``None``.
    """
    stamp = name[len("flocker-"):].split("-")[0].rstrip("Z")
    try:
        whole, _, fraction = stamp.partition(".")
        return calendar.timegm(time.strptime(whole, "%Y%m%dT%H%M%S")) + \
            float("0." + (fraction or "0"))
    except ValueError:
        return None


def admin_lab(argv):
    """
    Run ``admin/lab ARGV`` with this process's environment (its
    ``FLOCKER_LAB_PREFIX`` and ``FLOCKER_LAB_STATE``).

    :return: The ``CompletedProcess``.
    """
    import sys
    return subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), "lab")]
        + list(argv), capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)


def wait_until(condition, seconds, what):
    """
    Call ``condition`` every 0.2 s until it is true.

    :raises AssertionError: Naming ``what``, if it is still false after
        ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError("no %s after %ds" % (what, seconds))
        time.sleep(0.2)


class FailoverDrill(object):
    """
    The drill's application and the operations a trial needs.

    :ivar str name: The application's (and volume's) name.
    :ivar str deployment: The deployment file's path (rewritten by each
        failover).
    :ivar str applications: The application file's path.
    """

    def __init__(self, lab, directory, name, admin_lab, every=2.0):
        """
        :param lab: The running ``Lab`` (three nodes at least).
        :param str directory: Where the files go.
        :param str name: The application's name.
        :param admin_lab: Callable running ``admin/lab`` with a list of
            arguments, returning its ``CompletedProcess``.
        :param float every: The standby interval, in seconds.
        """
        self.lab, self.name, self._admin_lab = lab, name, admin_lab
        self.every = every
        self.nodes = list(lab.nodes[:3])
        self.applications = os.path.join(directory, "applications.yml")
        self.deployment = os.path.join(directory, "deployment.yml")
        with open(self.applications, "w") as f:
            f.write(_APPLICATIONS.format(name=name, writer=_WRITER,
                                         port=PORT))
        self.place(0)

    def place(self, index):
        """
        Write the deployment file with the application on node ``index``
        (0-based) and the two others its standbys; nowhere for ``None``.
        """
        addresses = [node.address for node in self.nodes]
        lines = ["version: 1", "nodes:"]
        for i, address in enumerate(addresses):
            lines.append("  %s: [%s]" % (address,
                                         self.name if i == index else ""))
        if index is not None:
            lines.append("standby:")
            lines.append("  %s: {nodes: [%s], every: %gs}" % (
                self.name, ", ".join('"%s"' % (a,) for i, a in
                                     enumerate(addresses) if i != index),
                self.every))
        with open(self.deployment, "w") as f:
            f.write("\n".join(lines) + "\n")

    def placement(self):
        """
        :return: ``(primary node, [standby addresses])`` as the deployment
            file now says.
        """
        import yaml
        with open(self.deployment) as f:
            document = yaml.safe_load(f)
        for address, names in document["nodes"].items():
            if self.name in (names or []):
                primary = self.node(address)
        return primary, list(document["standby"][self.name]["nodes"])

    def node(self, address):
        """
        :return: The lab node with that address.
        """
        return [n for n in self.nodes if n.address == address][0]

    def deploy(self, *options, timeout=300):
        """
        Run ``flocker-deploy --yes [OPTIONS] DEPLOYMENT APPLICATIONS`` on
        the client.

        :return: ``(seconds, CompletedProcess)``.
        """
        started = time.monotonic()
        result = self.lab.run_client(
            ["flocker-deploy", "--yes"] + list(options) +
            [self.deployment, self.applications], check=False,
            timeout=timeout)
        return time.monotonic() - started, result

    def watch_replicas(self):
        """
        :return: A started :class:`ReplicaWatcher` of the current
            standbys.
        """
        _, standbys = self.placement()
        return ReplicaWatcher(self, [self.node(a) for a in standbys]).start()

    def newest_snapshot(self, node):
        """
        :return: The name of the newest snapshot of ``node``'s copy of the
            volume, or ``None``.
        """
        result = subprocess.run(
            ["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s",
             "creation", "-r", "%s/%s" % (node.pool, self.name)],
            capture_output=True, text=True, timeout=60)
        names = result.stdout.split()
        return names[-1].split("@", 1)[1] if names else None

    def fault(self, command, node):
        """
        Run ``admin/lab COMMAND NODE`` (kill, revive, partition, heal).

        :raises AssertionError: If it fails.
        """
        result = self._admin_lab([command, node.name])
        if result.returncode != 0:
            raise AssertionError("admin/lab %s %s: %s" % (
                command, node.name, result.stderr))

    def running_on(self, down=()):
        """
        :param down: Names of the nodes that are powered off (not asked).
        :return: Names of the nodes whose Docker runs the application.
        """
        found = []
        for node in self.nodes:
            if node.name in down:
                continue
            result = node.run(["docker", "ps", "-q", "--filter",
                               "name=^flocker--%s$" % (self.name,)],
                              check=False, timeout=60)
            if result.stdout.strip():
                found.append(node.name)
        return found

    def newest_stamp(self, node):
        """
        :return: The newest stamp of the copy the application on ``node``
            mounts, read in its container, or ``None``.
        """
        result = node.run(["docker", "exec", "flocker--" + self.name,
                           "tail", "-n", "1", "/data/stamps"], check=False,
                          timeout=60)
        try:
            return float(result.stdout.split()[-1])
        except (ValueError, IndexError):
            return None

    def newest_before(self, node, moment):
        """
        :return: The newest stamp not after ``moment`` in the copy the
            application on ``node`` mounts (what survived from before a
            fault at ``moment``), or ``None``.
        """
        result = node.run(["docker", "exec", "flocker--" + self.name,
                           "cat", "/data/stamps"], check=False, timeout=60)
        stamps = []
        for word in result.stdout.split():
            try:
                stamps.append(float(word))
            except ValueError:
                pass
        before = [stamp for stamp in stamps if stamp <= moment]
        return max(before) if before else None

    def watch(self, addresses, after, limit=60.0):
        """
        Start polling every address's port from the client until each
        serves a stamp newer than ``after``.

        :return: The ``Popen``; its output is the JSON of
            ``{address: uptime it first did, or null}``.
        """
        return self.lab.client.popen(
            ["python3", "-c", _WATCH, str(PORT), repr(after), repr(limit)] +
            list(addresses), stdout=subprocess.PIPE, text=True)

    def clean(self):
        """
        Remove the drill's application, its volume's copies and what
        fencing set aside for it.
        """
        self.place(None)
        self.deploy()
        for node in self.nodes:
            for dataset in self.recovery_copies(node) + [
                    "%s/%s" % (node.pool, self.name)]:
                node.run(["zfs", "destroy", "-r", dataset], check=False)

    def recovery_copies(self, node):
        """
        :return: Names of the datasets of ``node``'s pool that fencing set
            aside for this application's volume.
        """
        result = node.run(["zfs", "list", "-H", "-o", "name", "-r",
                           node.pool], check=False, timeout=60)
        prefix = "%s/%s.flocker-recovery-" % (node.pool, self.name)
        return [line for line in result.stdout.split()
                if line.startswith(prefix)]
