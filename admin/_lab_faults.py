"""
Faults of a running lab's nodes: power loss and reboot (``kill``,
``revive``), network partition and its end (``partition``, ``heal``).

What each one does to node ``I`` (see ``_lab.py`` for the layout):

``kill``
    Power loss.  The node's veth is set down on the bridge first, so its
    address stops answering at that instant; then every process of the node
    (dockerd, containerd, the shims and containers, sshd and its sessions,
    the Flocker agent) gets SIGKILL at once, and its network, mount and UTS
    namespaces and container cgroups go, as a machine's memory does.  What
    the node's disk holds stays: its ZFS pool (whatever was written to a
    volume up to the kill) and its dockerd data root (the containers it had,
    with their settings).  Other machines' connections to it are not closed:
    they time out, as with a real power loss.

``revive``
    Boot after a power loss.  New namespaces, the address back on the
    bridge, then the daemons as a boot starts them: dockerd (which restarts
    whatever containers Docker's own restart policies say), sshd, its etcd
    member (rejoining the cluster with its data), and the Flocker agent once the pool and Docker are up, as the package's unit
    orders it.  Unlike ``up``, Docker is *not* reset to a fresh host: a
    rebooted server keeps its containers.

``partition``
    The node runs on, but no packet reaches or leaves it: its veth is taken
    off the bridge (its own link stays up, so nothing on the node notices;
    packets it sends are dropped silently, as by a dead switch port).

``heal``
    The veth joins the bridge again.  Connections that were not given up
    meanwhile go on.

A node's fault is kept in ``STATE/nodeI/fault`` (``killed`` or
``partitioned``) so ``status`` names it and the commands refuse what makes
no sense (reviving a running node, partitioning a dead one).  ``up`` repairs
whatever it finds, faults included (a killed node comes back as a fresh
host); ``down`` removes everything as usual.
"""

import time

from _lab_host import (
    StateLock, delete_netns, ensure_netns, kill_machines, machine_processes,
    run,
)
from _lab_model import LabError

__all__ = ["KILLED", "PARTITIONED", "fault_of", "kill", "revive",
           "partition", "heal", "clear_fault"]

#: The fault marker of a node that lost power.
KILLED = "killed"

#: The fault marker of a node cut off the network.
PARTITIONED = "partitioned"


def _fault_file(node):
    return node.state_dir / "fault"


def fault_of(node):
    """
    :param node: A lab ``Node``.
    :return: ``KILLED``, ``PARTITIONED`` or ``None``.
    """
    try:
        text = _fault_file(node).read_text().strip()
    except OSError:
        return None
    return text if text in (KILLED, PARTITIONED) else None


def _set_fault(node, fault):
    _fault_file(node).write_text(fault + "\n")


def clear_fault(node):
    """
    Forget a node's fault (it was repaired).

    :param node: A lab ``Node``.
    """
    path = _fault_file(node)
    if path.exists():
        path.unlink()


def _node(lab, name, load_description):
    """
    :return: The ``Node`` named ``name`` of the running lab.
    :raises LabError: If the lab is down or has no such node.
    """
    description = load_description(lab)
    names = [entry["name"] for entry in description["nodes"]]
    if name not in names:
        raise LabError("no node %r in the lab (nodes: %s)" % (
            name, ", ".join(names)))
    return lab.node(names.index(name) + 1)


def _set_bridge_port(lab, node, attached):
    """
    Put a node's veth on the bridge (``attached``) or take it off.
    """
    if attached:
        argv = ["ip", "-n", lab.bridge_netns, "link", "set", node.veth,
                "master", "br0", "up"]
    else:
        argv = ["ip", "-n", lab.bridge_netns, "link", "set", node.veth,
                "nomaster"]
    run(argv)


def kill(lab, name, log, parts):
    """
    Cut a node's power (see the module docstring).

    :param Lab lab: The lab.
    :param str name: The node's name.
    :param log: Called with a progress line.
    :param parts: The ``_lab`` module (its node life-cycle functions).
    :raises LabError: If the node is unknown or already powered off.
    """
    node = _node(lab, name, parts.load_description)
    with StateLock(lab.state):
        if fault_of(node) == KILLED:
            raise LabError("%s is already powered off (admin/lab revive %s)"
                           % (name, name))
        started = time.monotonic()
        # The address stops answering first: nothing the node does while
        # its processes are being killed reaches anyone.
        run(["ip", "-n", lab.bridge_netns, "link", "set", node.veth, "down"],
            check=False)
        count = len(machine_processes([node]))
        kill_machines([node])
        parts.unmount_namespace_files(node)
        delete_netns(node.netns)
        parts.remove_cgroups(node)
        _set_fault(node, KILLED)
    log("lab kill: %s (%s) powered off, %d processes killed in %.2fs" % (
        name, node.address, count, time.monotonic() - started))


def revive(lab, name, log, parts):
    """
    Boot a powered-off node (see the module docstring).

    :param Lab lab: The lab.
    :param str name: The node's name.
    :param log: Called with a progress line.
    :param parts: The ``_lab`` module.
    :raises LabError: If the node is unknown, not powered off, or a daemon
        does not start.
    """
    node = _node(lab, name, parts.load_description)
    with StateLock(lab.state):
        if fault_of(node) != KILLED:
            raise LabError("%s is not powered off (admin/lab kill %s first)"
                           % (name, name))
        started = time.monotonic()
        fresh = ensure_netns(node.netns)
        boot = parts.boot_machine(lab, node, fresh)
        parts.ensure_pool(node)
        parts.wait_sshd(node, boot.sshd)
        parts.wait_dockerd(node, boot.dockerd)
        parts.start_etcd_member(lab, node)
        # After the pool and Docker, as the package's unit orders it.
        parts.wait_agent(node, parts.start_agent(lab, node))
        clear_fault(node)
    log("lab revive: %s (%s) booted in %.2fs (dockerd, sshd, etcd, agent)" % (
        name, node.address, time.monotonic() - started))


def partition(lab, name, log, parts):
    """
    Cut a running node off the network (see the module docstring).

    :param Lab lab: The lab.
    :param str name: The node's name.
    :param log: Called with a progress line.
    :param parts: The ``_lab`` module.
    :raises LabError: If the node is unknown, powered off or already
        partitioned.
    """
    node = _node(lab, name, parts.load_description)
    with StateLock(lab.state):
        fault = fault_of(node)
        if fault is not None:
            raise LabError("%s is already %s" % (
                name, "powered off" if fault == KILLED else "partitioned"))
        _set_bridge_port(lab, node, attached=False)
        _set_fault(node, PARTITIONED)
    log("lab partition: %s (%s) cut off the network" % (name, node.address))


def heal(lab, name, log, parts):
    """
    Reconnect a partitioned node (see the module docstring).

    :param Lab lab: The lab.
    :param str name: The node's name.
    :param log: Called with a progress line.
    :param parts: The ``_lab`` module.
    :raises LabError: If the node is unknown or not partitioned.
    """
    node = _node(lab, name, parts.load_description)
    with StateLock(lab.state):
        if fault_of(node) != PARTITIONED:
            raise LabError("%s is not partitioned" % (name,))
        _set_bridge_port(lab, node, attached=True)
        clear_fault(node)
        # Back when its etcd member has caught up with its cluster, as
        # ``up`` waits for it (status counts a member that has not).
        parts.wait_etcd_member(node)
    log("lab heal: %s (%s) back on the network" % (name, node.address))
