"""
Automatic failover scenarios on a running lab, shared by the lab test
(``flocker/cli/test/test_automatic_lab.py``) and the benchmark
(``benchmarks/automatic_failover.py``): the configuration files, where the
application runs, what it answers, what etcd holds, and the lab's faults.

Everything is asked inside the nodes' namespaces (``nsenter``), so a
partitioned node answers too.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["APPLICATION", "IMAGE", "application_text", "deployment_text",
           "running_on", "http_answer", "etcd_value", "lab_command",
           "snapshot_stamp", "wait_replicated", "restart_agent",
           "kill_etcd_member", "restart_daemons", "remove_application"]

#: The image the scenarios run (built by ``admin/lab up``).
IMAGE = "flocker/busybox:latest"

#: An application serving its volume's ``index.html`` over HTTP.
APPLICATION = """\
version: 1
applications:
  {name}:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: [{{internal: 80, external: {port}}}]
    volume: {{mountpoint: /www}}
"""

_LAB_SCRIPT = Path(__file__).resolve().parent / "lab"


def application_text(name, port):
    """
    :return: The application file of the scenario's application.
    """
    return APPLICATION.format(name=name, image=IMAGE, port=port)


def deployment_text(name, primary, standbys, addresses, every="2s"):
    """
    :param str name: The application.
    :param str primary: The node running it.
    :param standbys: Its standby nodes, in order of preference.
    :param addresses: Every node of the deployment.
    :return: A deployment file placing it on ``primary`` with an automatic
        standby on ``standbys``.
    """
    lines = ["version: 1", "nodes:"]
    for address in addresses:
        lines.append("  %s: [%s]" % (address,
                                     name if address == primary else ""))
    lines += ["standby:", "  %s: {nodes: [%s], every: %s, automatic: true}"
              % (name, ", ".join('"%s"' % (s,) for s in standbys), every)]
    return "\n".join(lines) + "\n"


def running_on(lab, name, nodes=None):
    """
    :param lab: A ``_lab_client.Lab``.
    :param str name: The application.
    :param nodes: Node names to ask (default: every node).
    :return: The names of the nodes whose Docker runs its container.
    """
    found = []
    for node in nodes or lab.node_names:
        result = lab.run(node, [
            "docker", "ps", "--quiet", "--filter",
            "name=^flocker--%s$" % (name,)], check=False, timeout=60)
        if result.stdout.strip():
            found.append(node)
    return found


def http_answer(lab, address, port, path="/"):
    """
    :param str path: The path asked.
    :return: The body ``GET path`` on ``address:port`` answers from the
        client with status 200, or ``None``.
    """
    result = lab.run_client(
        ["busybox", "nc", "-w", "2", address, str(port)],
        input="GET %s HTTP/1.0\r\n\r\n" % (path,), check=False, timeout=30)
    text = result.stdout.replace("\r\n", "\n")
    if " 200 " not in text.split("\n", 1)[0]:
        return None
    return text.partition("\n\n")[2]


def etcd_value(lab, node, kind, name):
    """
    :param str node: The node whose etcd member is asked.
    :param str kind: ``placement``, ``owner`` or ``epoch``.
    :param str name: The application.
    :return: The key's JSON value, or ``None`` when absent or unreadable.
    """
    result = lab.run(node, ["etcdctl", "--command-timeout", "3s", "get",
                            "--print-value-only",
                            "flocker/v1/%s/%s" % (kind, name)],
                     check=False, timeout=30)
    text = result.stdout.strip()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def lab_command(argv, check=True, timeout=300):
    """
    Run ``admin/lab`` (the lab named by ``FLOCKER_LAB_PREFIX`` and
    ``FLOCKER_LAB_STATE`` in the environment), for ``kill``, ``revive``,
    ``partition``, ``heal``.

    :return: The ``CompletedProcess`` (text output).
    :raises RuntimeError: With ``check``, when it fails.
    """
    result = subprocess.run([sys.executable, str(_LAB_SCRIPT)] + list(argv),
                            capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError("admin/lab %s: %s" % (" ".join(argv),
                                                 result.stderr.strip()))
    return result


def snapshot_stamp(seconds):
    """
    :return: How a snapshot taken at ``seconds`` (POSIX time) is named, for
        comparing with snapshot names (they sort by time).
    """
    return time.strftime("flocker-%Y%m%dT%H%M%S", time.gmtime(seconds))


def wait_replicated(lab, name, nodes, since, timeout=120):
    """
    Wait until the agents' replication has brought each node's copy of the
    volume ``name`` to a snapshot taken after ``since``.

    :param nodes: Node names of the standbys.
    :param float since: POSIX time (of the last write to keep).
    :raises RuntimeError: If some copy is not there in time.
    """
    after = snapshot_stamp(since + 1)
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            listing = lab.run(node, ["flocker-volume", "list"], check=False,
                              timeout=60)
            for line in listing.stdout.splitlines():
                fields = line.split()
                if fields[:1] == [name] and fields[-1] >= after:
                    waiting.remove(node)
        if waiting and time.monotonic() > deadline:
            raise RuntimeError("%s not replicated to %s within %ds" % (
                name, ", ".join(waiting), timeout))
        time.sleep(0.5)



def restart_agent(lab, node, timeout=60):
    """
    Kill a node's Flocker agent (SIGKILL: a crash; what it ran keeps
    running) and start it again as its service manager would (``admin/lab
    up``, which restarts dead agents and touches nothing else).

    :param str node: The node's name.
    :return: ``(old pid, new pid)``.
    :raises RuntimeError: If the agent does not die, or does not come back.
    """
    pid_file = Path(lab.machine(node).mntns).parent / "agent.pid"
    old = int(pid_file.read_text())
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while Path("/proc/%d" % (old,)).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("%s: agent %d did not die" % (node, old))
        time.sleep(0.05)
    lab_command(["up", str(len(lab.node_names))])
    new = int(pid_file.read_text())
    if new == old:
        raise RuntimeError("%s: agent not restarted" % (node,))
    return old, new


def kill_etcd_member(lab, node):
    """
    Kill a node's etcd member (SIGKILL), leaving the rest of the node
    running.

    :param str node: The node's name.
    """
    pid_file = Path(lab.machine(node).mntns).parent / "etcd.pid"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


def restart_daemons(lab):
    """
    Start again whatever daemon of the lab's nodes died (etcd members,
    agents), as their units would (``admin/lab up``), and wait until they
    are healthy.
    """
    lab_command(["up", str(len(lab.node_names))], timeout=900)


def remove_application(lab, name, nodes=None):
    """
    Remove an automatic application after a test: its keys in etcd, its
    containers and its volumes.  Its placement goes first, on its own: the
    standbys then see it released, not its holder lost (deleting every key
    at once would delete the owner key first, and a standby would take the
    application over).

    :param str name: The application.
    :param nodes: Node names (default: every node).
    """
    nodes = list(nodes or lab.node_names)
    for key in ["placement/" + name, "owner/" + name, "epoch/" + name]:
        lab.run(nodes[0], ["etcdctl", "del", "flocker/v1/" + key],
                check=False)
    lab.run(nodes[0], ["etcdctl", "del", "--prefix",
                       "flocker/v1/copy/%s/" % (name,)], check=False)
    for node in nodes:
        lab.run(node, ["docker", "rm", "-f", "flocker--" + name],
                check=False)
    for node in nodes:
        lab.run(node, ["flocker-volume", "delete", name], check=False)
