"""
etcd on the lab's nodes: one member per node, on the node's own address,
with its own data directory, all of them named in ``--initial-cluster``, as
on real servers (see docs/ on running etcd with Flocker).

A member listens for clients on ``NODE:2379`` and on the node's own
``127.0.0.1:2379`` (where the node's agent finds it), for its peers on
``NODE:2380``.  Its data lives in ``STATE/nodeI/etcd``, its log in
``STATE/logs/nodeI-etcd.log`` (both gone at ``down``).  When the lab's set
of nodes changes, every member starts over with empty data: the lab's etcd
holds only what its agents put there since ``up``.

The pure parts (:func:`etcd_argv`, :func:`initial_cluster`) are tested
without a lab.
"""

import os
import shutil
import signal
import time

from _lab_host import KILL_TIMEOUT, log_tail, process_alive, read_file, run
from _lab_model import (
    ETCD_CLIENT_PORT, ETCD_PEER_PORT, STANDARD_PATH, LabError,
    etcd_client_urls,
)

__all__ = [
    "CLIENT_PORT", "PEER_PORT", "ETCD_TIMEOUT", "initial_cluster",
    "etcd_argv", "etcd_pid", "start_etcd", "stop_etcd", "wait_etcd",
    "etcd_health", "etcd_log", "client_urls",
]

#: etcd's registered client and peer ports.
CLIENT_PORT = ETCD_CLIENT_PORT
PEER_PORT = ETCD_PEER_PORT

#: The members' client URLs, a node's own first (what its agent is told).
client_urls = etcd_client_urls

#: Seconds the members have to elect a leader after they start.
ETCD_TIMEOUT = 60


def _data_dir(node):
    return node.state_dir / "etcd"


def _pid_file(node):
    return node.run_dir / "etcd.pid"


def _cluster_file(node):
    # The membership the data directory was made for.
    return node.state_dir / "etcd.cluster"


def etcd_log(node):
    """
    :return: Where a node's etcd writes its log.
    """
    return node.lab.logs_dir / (node.name + "-etcd.log")


def initial_cluster(nodes):
    """
    :param list nodes: Every node of the lab.
    :return: etcd's ``--initial-cluster`` value naming every member.
    """
    return ",".join("%s=http://%s:%d" % (n.name, n.address, PEER_PORT)
                    for n in nodes)


def etcd_argv(node, nodes):
    """
    :param Node node: The node whose member this is.
    :param list nodes: Every node of the lab.
    :return: The argument vector of its ``etcd`` (without ``nsenter``).
    """
    client = "http://%s:%d" % (node.address, CLIENT_PORT)
    peer = "http://%s:%d" % (node.address, PEER_PORT)
    return [
        shutil.which("etcd", path=STANDARD_PATH) or "etcd",
        "--name", node.name,
        "--data-dir", str(_data_dir(node)),
        "--listen-client-urls", "%s,http://127.0.0.1:%d" % (
            client, CLIENT_PORT),
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", initial_cluster(nodes),
        "--initial-cluster-token", "flocker-lab-%s" % (node.lab.prefix,),
        "--initial-cluster-state", "new",
        # A member cut off from the others keeps starting elections; back,
        # without a pre-vote its higher term makes the leader step down and
        # the cluster answered nobody for about 8 s here, longer than an
        # owner's lease can go unrenewed before it fences itself.  (A
        # boolean: etcd takes its value only after "=".)
        "--pre-vote=true",
    ]


def etcd_pid(node, daemon_pid):
    """
    :param Node node: A node.
    :param daemon_pid: ``_lab.daemon_pid``.
    :return: The pid of its etcd if it runs, else ``None``.
    """
    return daemon_pid(node, _pid_file(node), "etcd")


def stop_etcd(node, daemon_pid):
    """
    Stop a node's etcd if it runs (SIGTERM, then SIGKILL).

    :param Node node: The node.
    :param daemon_pid: ``_lab.daemon_pid``.
    """
    pid = etcd_pid(node, daemon_pid)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_TIMEOUT
    while process_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def start_etcd(node, nodes, spawn, environment, daemon_pid):
    """
    Start a node's etcd member unless it runs with the lab's current
    membership.  A member made for another membership is stopped and its
    data removed first.

    :param Node node: The node.
    :param list nodes: Every node of the lab.
    :param spawn: ``_lab._spawn``.
    :param dict environment: The daemon's environment.
    :param daemon_pid: ``_lab.daemon_pid``.
    :return: The ``Popen`` of the member started, or ``None`` if it ran.
    """
    wanted = initial_cluster(nodes)
    if read_file(_cluster_file(node)) != wanted:
        stop_etcd(node, daemon_pid)
        shutil.rmtree(_data_dir(node), ignore_errors=True)
    elif etcd_pid(node, daemon_pid) is not None:
        return None
    node.state_dir.mkdir(parents=True, exist_ok=True)
    _cluster_file(node).write_text(wanted)
    log = etcd_log(node)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    process = spawn(node.nsenter() + etcd_argv(node, nodes), log,
                    environment)
    _pid_file(node).write_text("%d\n" % (process.pid,))
    return process


def etcd_health(node):
    """
    :param Node node: A node.
    :return: ``True`` if its member answers and its cluster has a leader
        (``etcdctl endpoint health``, run inside the node).
    """
    result = run(node.nsenter() + [
        "etcdctl", "--endpoints", "http://127.0.0.1:%d" % (CLIENT_PORT,),
        "--dial-timeout", "2s", "--command-timeout", "3s",
        "endpoint", "health"], check=False, timeout=15,
        env={"PATH": STANDARD_PATH, "ETCDCTL_API": "3"})
    return result.returncode == 0


def wait_etcd(node, process):
    """
    Wait until a node's member is healthy (its cluster elected a leader).

    :param Node node: The node.
    :param process: Its ``Popen``, or ``None`` if it was running already.
    :raises LabError: If it exits or is not healthy in time.
    """
    deadline = time.monotonic() + ETCD_TIMEOUT
    while not etcd_health(node):
        if process is not None and process.poll() is not None:
            raise LabError("%s: etcd exited (%d): %s" % (
                node.name, process.returncode, log_tail(etcd_log(node))))
        if time.monotonic() > deadline:
            raise LabError("%s: etcd not healthy after %ds: %s" % (
                node.name, ETCD_TIMEOUT, log_tail(etcd_log(node))))
        time.sleep(0.1)
