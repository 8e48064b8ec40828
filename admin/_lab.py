"""
Flocker's local lab: N machines on one host, each a real host as far as
Flocker can tell.

Layout (``P`` is the prefix, ``flk`` by default; ``I`` is 1..8)::

    netns P-net      bridge br0, no address; every machine hangs off it
    netns P-client   10.99.0.2/24: the operator's laptop (flocker-deploy)
    netns P-nodeI    10.99.0.(10+I)/24: dockerd, containerd, sshd, etcd

Every machine also has its own mount and UTS namespace (host name = machine
name), kept alive by binding them to files in the runtime directory
(``/run/flocker-lab/<machine>/{mnt,uts}``) and prepared by ``_nsinit.py``:
its own ``/run``, ``/sys``, ``/etc/hosts``, ``/var/log`` and an
``/etc/passwd`` whose ``root`` home is the machine's own (so ``~/.ssh``, and
the shell start-up files sshd sessions run, are per machine).

Each node runs its own dockerd (own data root, socket, bridge subnet
10.98.I.0/24, cgroup parent ``/P-nodeI``; forwarding off until dockerd turns
it on, so the FORWARD policy ends up DROP as on a fresh host), its own sshd
(own host key) and owns a ZFS pool ``flocker-nodeI`` on a sparse file, served
by the one zfs-fuse daemon.  The pools are mounted under a directory made a
shared mount before any node starts, so datasets mounted later show up in
the nodes' mount namespaces.

State (``FLOCKER_LAB_STATE``, default ``/var/lib/flocker-lab``) holds
everything the lab writes; ``down`` removes all of it except the SSH keys,
the image cache, the logs and the nodes' Docker data roots (``down --purge``
removes those too).  A node's dockerd is reset to a fresh host's state
(no containers, volumes, networks or foreign images) whenever it starts.  The
running lab is described for other programs in ``STATE/lab.json``, which
names the checkout that brought it up: ``up`` from another checkout refuses
to take it over.

Subprocesses are argument vectors; every wait has a deadline.

Nodes run Flocker from its Debian package, installed with ``dpkg -i`` and
started from its systemd unit (``_lab_package``, ``_lab_unit``); the client
runs the checkout's ``flocker-deploy``.

Modules: ``_lab_model`` (names, addresses, configuration files: pure),
``_lab_host`` (running commands, mounts, processes, locks), ``_lab_images``
(the images), ``_nsinit`` (runs inside a new mount namespace), ``_zfs_exec``
(``zfs``/``zpool`` on nodes); this one brings machines up and down and is
the command line.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import _lab_etcd
import _lab_faults
import _lab_images
import _lab_package
from _lab_host import (
    DOCKERD_TIMEOUT, KILL_TIMEOUT, REQUIRED_TOOLS, SSHD_TIMEOUT,
    ZFS_BUSY_TIMEOUT, StateLock, ZfsLock, cgroup_roots, delete_netns,
    ensure_netns, imported_pools, ip_batch, is_shared, kill_machines,
    last_line, log_tail, make_private_mount, mounted, namespace_inode,
    parallel, process_alive, process_name, read_file, read_pid, retry_busy,
    run, sysctl, tool_environment, write_json, write_text, zfs_answers,
    zfs_fuse_pids,
)
from _lab_model import (
    ADMIN, DESCRIPTION_VERSION, MAX_NODES, NODE_OVERLAYS, NSINIT, POOL_SIZE,
    REPO, STANDARD_PATH,
    ZFS_SOCKET_DIR, Lab, LabError, defaults_text, hosts_text,
    known_hosts_text, parse_count, passwd_text, public_key, shell_rc_text,
    ssh_config_text, sshd_config_text,
)


def preflight(lab):
    """
    Check privileges and programs before changing anything.

    :param Lab lab: The lab.
    :raises LabError: When something is missing.
    """
    if os.geteuid() != 0:
        raise LabError("must run as root (network, mount namespaces, ZFS)")
    path = tool_environment()["PATH"]
    for tool in REQUIRED_TOOLS:
        if shutil.which(tool, path=path) is None:
            raise LabError("%s not found: run admin/install-deps" % (tool,))
    if not os.path.exists("/dev/fuse"):
        raise LabError("/dev/fuse missing: zfs-fuse needs FUSE")
    for command in ("flocker-deploy", "python"):
        if not (lab.bin_dir / command).exists():
            raise LabError("%s/%s not found: run admin/install-deps"
                           % (lab.bin_dir, command))


def check_checkout(lab):
    """
    Refuse to take over a running lab that another checkout brought up:
    ``up`` would install this checkout's package on its nodes under
    whoever is using them.

    :param Lab lab: The lab.
    :raises LabError: If ``lab.json`` names another checkout.
    """
    try:
        running = json.loads(lab.description_file.read_text())
    except (OSError, ValueError):
        return
    checkout = running.get("checkout") if isinstance(running, dict) else None
    if checkout is not None and checkout != str(REPO):
        raise LabError(
            "lab %s runs the code of %s, not of this checkout (%s): bring it "
            "down there first (admin/lab down), or use a lab of your own "
            "(FLOCKER_LAB_PREFIX and FLOCKER_LAB_STATE)"
            % (lab.prefix, checkout, REPO))


def load_record(lab):
    """
    :param Lab lab: The lab.
    :return: The host record (``{}`` if none).
    """
    try:
        return json.loads(lab.host_record.read_text())
    except (OSError, ValueError):
        return {}


def ensure_zfs_daemon(lab, record):
    """
    Start zfs-fuse unless it runs (noting in ``record`` that we did).

    :param Lab lab: The lab.
    :param dict record: The host record, updated in place.
    """
    if not zfs_fuse_pids():
        # zfs-fuse will not start while its pid file exists, even a stale
        # one; none runs, so any such file is stale.
        pidfile = lab.runtime / "zfs-fuse.pid"
        if pidfile.exists():
            pidfile.unlink()
        # zfs-fuse daemonises; its output must not be a pipe we wait on.
        try:
            code = subprocess.run(
                ["zfs-fuse", "--pidfile", str(lab.runtime / "zfs-fuse.pid")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=tool_environment(),
                timeout=30).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        if code != 0:
            raise LabError("zfs-fuse failed to start (%s)" % (code,))
        record["zfs_fuse_started"] = True
        write_json(lab.host_record, record)
    deadline = time.monotonic() + 20
    while not zfs_answers():
        if time.monotonic() > deadline:
            raise LabError("zfs-fuse runs but zpool list fails")
        time.sleep(0.1)


def ensure_zfs_base(lab, nodes):
    """
    Make the pools' mount base a shared mount.

    Mounts made later under a shared mount propagate into the node mount
    namespaces (slaves of the host); under the host's private ``/`` they
    would not, and a container would get an empty directory instead of its
    dataset, without any error.

    :param Lab lab: The lab.
    :param list nodes: The nodes whose pools may be mounted there.
    :return: ``True`` if the base had to be (re)made, in which case the
        nodes' mount namespaces must be rebuilt.
    """
    lab.zfs_base.mkdir(parents=True, exist_ok=True)
    if mounted(lab.zfs_base):
        if not is_shared(lab.zfs_base):
            run(["mount", "--make-shared", lab.zfs_base])
        return False
    # Pools mounted under a non-shared base must be remounted on the new one.
    with ZfsLock():
        imported = imported_pools()
        for node in nodes:
            if node.pool in imported:
                retry_busy(["zpool", "export", "-f", node.pool])
    run(["mount", "--bind", lab.zfs_base, lab.zfs_base])
    run(["mount", "--make-shared", lab.zfs_base])
    return True


def prepare_host(lab, nodes):
    """
    Create the state and runtime directories, the private runtime mount,
    the shared ZFS base and make sure zfs-fuse runs.

    :param Lab lab: The lab.
    :param list nodes: The nodes to be.
    :return: ``True`` if node mount namespaces must be rebuilt.
    :raises LabError: If the prefix is used by a lab in another state
        directory that still exists.
    """
    for directory in (lab.state, lab.ssh_dir, lab.ssh_dir / "hostkeys",
                      lab.pools_dir, lab.images_dir, lab.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    lab.ssh_dir.chmod(0o700)
    record = load_record(lab)
    if "run_netns_mount" not in record:
        record["run_netns_dir"] = not os.path.exists("/run/netns")
        record["run_netns_mount"] = not mounted("/run/netns")
        write_json(lab.host_record, record)
    owner = lab.runtime / "owner"
    previous = read_file(owner)
    if previous and previous.strip() != str(lab.state) and \
            os.path.exists(previous.strip()):
        raise LabError("prefix %r is in use by the lab in %s: bring that one "
                       "down or set FLOCKER_LAB_PREFIX"
                       % (lab.prefix, previous.strip()))
    lab.runtime.mkdir(parents=True, exist_ok=True)
    make_private_mount(lab.runtime)
    owner.write_text(str(lab.state) + "\n")
    ensure_zfs_daemon(lab, record)
    return ensure_zfs_base(lab, nodes)


def ensure_key(path, comment):
    """
    Create an ed25519 key pair unless it exists.

    :param Path path: The private key's path (``.pub`` next to it).
    :param str comment: The key comment.
    """
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return
    for stale in (path, path.with_name(path.name + ".pub")):
        if stale.exists():
            stale.unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
         "-f", path])


def write_machine_files(lab, machine, nodes):
    """
    Write a machine's passwd, hostname, home (SSH key, known_hosts, config,
    authorized_keys for nodes, shell start-up files) and node configs.

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :param list nodes: All nodes (for known_hosts and aliases).
    """
    for directory in (machine.state_dir, machine.log_dir, machine.home):
        directory.mkdir(parents=True, exist_ok=True)
    machine.home.chmod(0o700)
    ssh = machine.home / ".ssh"
    ssh.mkdir(exist_ok=True)
    ssh.chmod(0o700)
    write_text(machine.passwd, passwd_text(machine.home))
    write_text(machine.hostname_file, machine.name + "\n")
    identity = ssh / "id_ed25519"
    write_text(identity, lab.identity.read_text(), 0o600)
    write_text(ssh / "id_ed25519.pub",
               lab.identity.with_name("id_ed25519.pub").read_text())
    write_text(ssh / "known_hosts", known_hosts_text(nodes))
    write_text(ssh / "config",
               ssh_config_text(nodes, identity, ssh / "known_hosts"))
    rc = shell_rc_text(machine)
    write_text(machine.home / ".bashrc", rc)
    write_text(machine.home / ".profile",
               "# Flocker lab: login shells read .bashrc too.\n"
               ". \"$HOME/.bashrc\"\n")
    if not machine.is_node:
        return
    # Keep keys others added (the deploy tool installs its own).
    authorized = ssh / "authorized_keys"
    lines = (authorized.read_text().splitlines()
             if authorized.exists() else [])
    key = public_key(lab.identity)
    if not any(line.split()[:2] == key.split() for line in lines
               if line.strip()):
        lines.append(key + " flocker-lab")
    write_text(authorized, "\n".join(lines) + "\n", 0o600)
    write_text(machine.sshd_config, sshd_config_text(machine, nodes))
    for _, upper, work in machine.overlays():
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
    # Rewritten only when it changes: it may be under a mounted overlay.
    # Its agent is told about every node's etcd member.
    defaults = defaults_text(machine, nodes)
    if read_file(machine.defaults_file) != defaults:
        write_text(machine.defaults_file, defaults)
    write_json(machine.daemon_json, {
        # dockerd 20.10 otherwise writes /etc/docker/key.json on the host.
        "deprecated-key-path": str(machine.state_dir / "docker-key.json"),
    })


def write_lab_files(lab, nodes):
    """
    Write the lab-wide keys, known_hosts, ssh_config and hosts file.

    :param Lab lab: The lab.
    :param list nodes: All nodes.
    """
    ensure_key(lab.identity, "flocker-lab")
    for node in nodes:
        ensure_key(node.host_key, "flocker-lab %s host key" % (node.name,))
    write_text(lab.known_hosts, known_hosts_text(nodes))
    write_text(lab.ssh_config,
               ssh_config_text(nodes, lab.identity, lab.known_hosts))
    write_text(lab.hosts_file, hosts_text(lab, nodes))
    lab.zfs_exec.parent.mkdir(exist_ok=True)
    install_zfs_exec(lab.zfs_exec)


def zfs_commands():
    """
    :return: ``{"zfs": real path, "zpool": real path}`` on this host.
    """
    return {name: os.path.realpath(shutil.which(name, path=STANDARD_PATH))
            for name in ("zfs", "zpool")}


def install_zfs_exec(path):
    """
    Write the nodes' ``zfs``/``zpool`` wrapper to ``path``: compiled from
    ``_zfs_exec.c`` when this host has a C compiler (a wrapper command then
    costs about a millisecond instead of a Python start), else the Python
    version (:func:`zfs_exec_text`).

    A compiled wrapper built from the same source, compiler and real
    commands is kept as it is (``lab up`` runs this every time): a
    ``PATH.built`` file beside it records what it was built from.

    :param Path path: Where the wrapper goes (replaced atomically).
    :return: ``"c"`` or ``"python"``: which one is installed.
    """
    compiler = shutil.which("cc", path=STANDARD_PATH) or shutil.which(
        "gcc", path=STANDARD_PATH)
    built = path.with_name(path.name + ".built")
    if compiler is not None:
        source = ADMIN / "_zfs_exec.c"
        real = zfs_commands()
        stamp = "%s\n%s\n%s\n" % (
            compiler, json.dumps(real, sort_keys=True),
            hashlib.sha256(source.read_bytes()).hexdigest())
        if path.exists() and read_file(built) == stamp:
            return "c"
        partial = path.with_name(path.name + ".partial")
        result = run([compiler, "-O2", "-o", str(partial),
                      "-DREAL_ZFS=%s" % (c_string(real["zfs"]),),
                      "-DREAL_ZPOOL=%s" % (c_string(real["zpool"]),),
                      str(source)], check=False)
        if result.returncode == 0:
            partial.chmod(0o755)
            os.replace(partial, path)
            write_text(built, stamp)
            return "c"
        if partial.exists():
            partial.unlink()
    if built.exists():
        built.unlink()
    write_text(path, zfs_exec_text(), 0o755)
    return "python"


def c_string(text):
    """
    :param str text: A path.
    :return: It as a C string literal.
    """
    return '"%s"' % (text.replace("\\", "\\\\").replace('"', '\\"'),)


def zfs_exec_text():
    """
    :return: The content of the ``zfs``/``zpool`` wrapper for the nodes:
        ``_zfs_exec.py`` with this interpreter on its ``#!`` line and the
        real commands filled in.
    """
    source = (ADMIN / "_zfs_exec.py").read_text()
    marker = "REAL_COMMANDS = {}"
    if marker not in source:
        raise LabError("%s has no %r to fill in" % (
            ADMIN / "_zfs_exec.py", marker))
    return "#!%s -IS\n%s" % (
        os.path.realpath(sys.executable),
        source.replace(marker, "REAL_COMMANDS = %r" % (zfs_commands(),)))


def ensure_bridge(lab):
    """
    Create the bridge namespace and its bridge unless they exist.

    Bridging in the host namespace would send node traffic through the
    host's FORWARD chain (br_netfilter); its own namespace keeps the host
    firewall out of the picture.

    :param Lab lab: The lab.
    """
    created = ensure_netns(lab.bridge_netns)
    links = json.loads(run(["ip", "-n", lab.bridge_netns, "-j", "link",
                            "show"]).stdout or "[]")
    if not any(link.get("ifname") == "br0" for link in links):
        ip_batch(lab.bridge_netns, [["link", "add", "br0", "type", "bridge"]])
    ip_batch(lab.bridge_netns, [["link", "set", "lo", "up"],
                                ["link", "set", "br0", "up"]])
    if created:
        sysctl(lab.bridge_netns, {
            "net.bridge.bridge-nf-call-iptables": 0,
            "net.bridge.bridge-nf-call-ip6tables": 0,
            "net.bridge.bridge-nf-call-arptables": 0,
        })


def link_ok(lab, machine):
    """
    :param Lab lab: The lab.
    :param Machine machine: A machine.
    :return: ``True`` if its ``eth0`` is up with its address and its veth
        peer is up on the bridge.
    """
    inside = run(["ip", "-n", machine.netns, "-j", "addr", "show", "dev",
                  "eth0"], check=False)
    outside = run(["ip", "-n", lab.bridge_netns, "-j", "link", "show", "dev",
                   machine.veth], check=False)
    if inside.returncode or outside.returncode:
        return False
    eth0, veth = json.loads(inside.stdout)[0], json.loads(outside.stdout)[0]
    has_address = any(a.get("local") == machine.address
                      and a.get("prefixlen") == 24
                      for a in eth0.get("addr_info", []))
    return (has_address and "UP" in eth0.get("flags", [])
            and veth.get("master") == "br0" and "UP" in veth.get("flags", []))


def ensure_link(lab, machine, fresh):
    """
    Connect a machine to the bridge with a veth pair whose ends are created
    directly in the two namespaces (nothing ever appears on the host).

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :param bool fresh: Its network namespace was just created (so it has
        no link yet).
    """
    if not fresh:
        if link_ok(lab, machine):
            return
        run(["ip", "-n", machine.netns, "link", "del", "eth0"], check=False)
    run(["ip", "-n", lab.bridge_netns, "link", "del", machine.veth],
        check=False)
    # A fixed MAC per address: a machine whose link is recreated keeps it,
    # so the other machines' ARP caches stay right.
    mac = "02:66:6c:6b:%02x:%02x" % tuple(
        int(octet) for octet in machine.address.split(".")[2:])
    run(["ip", "link", "add", "name", machine.veth, "netns", lab.bridge_netns,
         "type", "veth", "peer", "name", "eth0", "address", mac,
         "netns", machine.netns])
    ip_batch(lab.bridge_netns, [["link", "set", machine.veth, "master", "br0",
                                 "up"]])
    ip_batch(machine.netns, [
        ["link", "set", "lo", "up"],
        ["addr", "add", "%s/24" % (machine.address,), "dev", "eth0"],
        ["link", "set", "eth0", "up"],
    ])


def unmount_namespace_files(machine):
    """
    Release a machine's mount and UTS namespace files.

    :param Machine machine: The machine.
    """
    for path in (machine.mnt_file, machine.uts_file):
        if mounted(path):
            run(["umount", path])


def ensure_mount_namespace(lab, machine):
    """
    Create and prepare a machine's mount and UTS namespaces unless alive.

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :return: ``True`` if they were (re)created.
    """
    if namespace_inode(machine.mnt_file) is not None and \
            namespace_inode(machine.uts_file) is not None:
        return False
    unmount_namespace_files(machine)
    machine.scratch.mkdir(parents=True, exist_ok=True)
    for path in (machine.mnt_file, machine.uts_file):
        path.touch()
    binds = []
    for source, target in ((lab.hosts_file, "/etc/hosts"),
                           (machine.passwd, "/etc/passwd"),
                           (machine.hostname_file, "/etc/hostname"),
                           (machine.log_dir, "/var/log")):
        if os.path.exists(target):
            binds += ["--bind", "%s:%s" % (source, target)]
    if machine.is_node:
        # Before the binds: an overlay mounted later would hide them.
        overlays = []
        for target, upper, work in machine.overlays():
            overlays += ["--overlay", "%s:%s:%s" % (target, upper, work)]
        binds = overlays + binds
        # zfs unmounts must happen where the ZFS daemon mounts: see
        # _zfs_exec.py.
        for real in zfs_commands().values():
            binds += ["--bind", "%s:%s" % (lab.zfs_exec, real)]
    run(["nsenter", "--net=%s" % (machine.netns_path,), "--",
         "unshare", "--mount=%s" % (machine.mnt_file,),
         "--uts=%s" % (machine.uts_file,), "--propagation", "slave", "--",
         sys.executable, "-I", "-S", NSINIT, "--hostname", machine.name,
         "--keep", lab.runtime, "--keep", ZFS_SOCKET_DIR,
         "--scratch", machine.scratch] + binds,
        timeout=30)
    return True


def overlaid(machine):
    """
    :param Machine machine: A node whose mount namespace is alive.
    :return: ``True`` if every directory of :data:`NODE_OVERLAYS` is an
        overlay there (a namespace made before the lab installed packages
        is not: ``dpkg`` there would write to the host).
    """
    result = run(["nsenter", "--mount=%s" % (machine.mnt_file,), "--",
                  "findmnt", "--list", "--noheadings", "--output",
                  "TARGET,FSTYPE"], check=False)
    found = {tuple(line.split()[:2]) for line in result.stdout.splitlines()}
    return all((target, "overlay") in found for target in NODE_OVERLAYS)


def daemon_pid(node, pid_file, name):
    """
    :param Node node: A node.
    :param Path pid_file: The daemon's pid file.
    :param str name: Its expected process name.
    :return: Its pid if it runs inside the node's mount namespace, else
        ``None``.
    """
    pid = read_pid(pid_file)
    if pid is None or not process_alive(pid) or process_name(pid) != name:
        return None
    inode = namespace_inode(node.mnt_file)
    try:
        if os.readlink("/proc/%d/ns/mnt" % (pid,)) != "mnt:[%s]" % (inode,):
            return None
    except OSError:
        return None
    return pid


def _spawn(argv, log, env):
    with open(log, "ab") as output:
        return subprocess.Popen(
            [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, env=env, cwd="/",
            start_new_session=True)


def _daemon_environment(node):
    env = node.environment()
    env["PATH"] = STANDARD_PATH
    return env


def start_dockerd(node):
    """
    Start a node's dockerd in its namespaces (not waiting for it).

    :param Node node: The node.
    :return: The ``Popen`` (its pid is dockerd's: ``nsenter`` execs it).
    """
    node.data_root.mkdir(parents=True, exist_ok=True)
    node.dockerd_log.write_bytes(b"")
    # dockerd refuses to start while its own pid file exists, and one it
    # was killed with (a node "rebooted" by tests) stays behind.  Nothing
    # runs it now (the caller checked), so the file is stale.
    own_pid_file = node.run_dir / "dockerd-own.pid"
    if own_pid_file.exists():
        own_pid_file.unlink()
    process = _spawn(node.nsenter() + [
        "dockerd",
        "--config-file", node.daemon_json,
        "-H", "unix://%s" % (node.docker_socket,),
        "-H", "unix:///var/run/docker.sock",
        "--data-root", node.data_root,
        "--pidfile", own_pid_file,
        "--bip", "10.98.%d.1/24" % (node.index,),
        "--default-address-pool", "base=10.97.%d.0/24,size=28" % (node.index,),
        "--cgroup-parent", node.cgroup_parent,
        "--shutdown-timeout", "2",
    ], node.dockerd_log, _daemon_environment(node))
    node.dockerd_pid_file.write_text("%d\n" % (process.pid,))
    return process


def wait_dockerd(node, process):
    """
    Wait until a node's dockerd answers its API.

    :param Node node: The node.
    :param process: Its ``Popen`` or ``None`` if it was already running.
    :raises LabError: If it exits or does not answer in time.
    """
    api = _lab_images.DockerAPI(str(node.docker_socket), timeout=5)
    deadline = time.monotonic() + DOCKERD_TIMEOUT
    while not api.ping():
        if process is not None and process.poll() is not None:
            raise LabError("%s: dockerd exited (%d): %s" % (
                node.name, process.returncode, log_tail(node.dockerd_log)))
        if time.monotonic() > deadline:
            raise LabError("%s: dockerd did not answer within %ds: %s" % (
                node.name, DOCKERD_TIMEOUT, log_tail(node.dockerd_log)))
        time.sleep(0.03)


def start_sshd(node):
    """
    Start a node's sshd in its namespaces.

    :param Node node: The node.
    :return: The ``Popen``.
    """
    node.sshd_log.write_bytes(b"")
    process = _spawn(node.nsenter() + [
        shutil.which("sshd", path=STANDARD_PATH), "-D", "-f", node.sshd_config,
        "-E", node.sshd_log,
    ], os.devnull, _daemon_environment(node))
    return process


#: Where a node's Flocker agent listens, inside the node (the package's
#: default, as on a real server).
AGENT_SOCKET = "/run/flocker/agent.sock"

#: Seconds a node's agent may take to listen.
AGENT_TIMEOUT = 60


def agent_pid(node):
    """
    :param Node node: A node.
    :return: The pid of its Flocker agent if it runs, else ``None``.
    """
    return daemon_pid(node, node.agent_pid_file, "flocker-node")


def agent_unit_pid(node):
    """
    :param Node node: A node.
    :return: The pid of the unit runner supervising its agent (systemd's
        part: ``Restart=``, see ``_lab_unit.py``) if it runs, else
        ``None``.
    """
    return daemon_pid(node, node.agent_unit_pid_file, "python3")


def current_agent(node, digest):
    """
    :param Node node: A node.
    :param digest: The digest of the package build it has installed
        (:func:`_lab_package.package_digest`), or ``None`` to stop any
        agent.
    :return: The pid of its agent if it runs that build; an agent running
        another is stopped (``None`` then), as a package upgrade restarts
        the service.  So is a unit runner whose agent is dead (between a
        crash and its restart): ``up`` then starts the service afresh, as
        ``systemctl restart`` would.
    """
    pid = agent_pid(node)
    unit = agent_unit_pid(node)
    if pid is not None and read_file(node.run_dir / "agent.code") == digest:
        return pid
    # systemctl stop: SIGTERM to the runner, which passes it on and does
    # not start the agent again (or to an agent that has no runner).
    doomed = [p for p in (unit, pid) if p is not None]
    for victim in doomed[:1]:
        try:
            os.kill(victim, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + KILL_TIMEOUT
    while any(process_alive(p) for p in doomed):
        if time.monotonic() > deadline:
            for victim in doomed:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.02)
    return None


def start_agent(lab, node):
    """
    Start a node's Flocker agent in its namespaces from the systemd unit
    its package installed, as systemd would (``_lab_unit.py``: the unit's
    ``EnvironmentFile``, runtime directory, umask, then its ``ExecStart``
    exactly as written); its output, the journal's part, goes to the
    node's ``/var/log/flocker-agent.log``.

    :param Lab lab: The lab.
    :param Node node: The node (its package installed).
    :return: The ``Popen`` (its pid is the agent's: ``nsenter`` and the
        unit runner exec it).
    """
    # The runner writes the agent's pid (systemd's MainPID) at every start
    # of it; its own is the unit's.
    process = _spawn(_lab_package.unit_command(node, node.agent_pid_file),
                     node.agent_log, {"PATH": STANDARD_PATH})
    node.agent_unit_pid_file.write_text("%d\n" % (process.pid,))
    (node.run_dir / "agent.code").write_text(
        _lab_package.installed_digest(node) or "")
    return process


def agent_listening(pid):
    """
    :param int pid: A node's agent.
    :return: ``True`` if it accepts connections on its socket in the
        node's file system (a socket left by an agent that was killed is
        there too, but refuses them).
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(5)
    try:
        probe.connect("/proc/%d/root%s" % (pid, AGENT_SOCKET))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def wait_agent(node, process):
    """
    Wait until a node's agent listens.

    :param Node node: The node.
    :param process: Its ``Popen``.
    :raises LabError: If it exits or does not listen in time.
    """
    wait_listening(node, process, "flocker-node agent", agent_listening,
                   node.agent_log, AGENT_TIMEOUT)


def wait_listening(node, process, what, listening, log, timeout):
    """
    Wait until a daemon of a node listens.

    :param Node node: The node.
    :param process: The daemon's ``Popen``.
    :param str what: Its name, for messages.
    :param listening: Callable given its pid, telling whether it listens.
    :param Path log: Its log, whose end a failure quotes.
    :param int timeout: Seconds allowed.
    :raises LabError: If it exits or does not listen in time.
    """
    deadline = time.monotonic() + timeout
    while not listening(process.pid):
        if process.poll() is not None:
            raise LabError("%s: %s exited (%d): %s" % (
                node.name, what, process.returncode, log_tail(log)))
        if time.monotonic() > deadline:
            raise LabError("%s: %s not listening after %ds" % (
                node.name, what, timeout))
        time.sleep(0.02)


def sshd_listening(pid):
    """
    :param int pid: A process in a node's network namespace.
    :return: ``True`` if that namespace has a TCP socket listening on
        port 22.
    """
    for table in ("tcp", "tcp6"):
        for line in (read_file("/proc/%d/net/%s" % (pid, table)) or "") \
                .splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(":0016") and fields[3] == "0A":
                return True
    return False


def wait_sshd(node, process):
    """
    Wait until a node's sshd listens.

    :param Node node: The node.
    :param process: Its ``Popen``.
    :raises LabError: If it exits or does not listen in time.
    """
    wait_listening(node, process, "sshd", sshd_listening, node.sshd_log,
                   SSHD_TIMEOUT)


def pool_is_ours(node):
    """
    :param Node node: A node.
    :return: ``True`` if the imported pool of that name lives on the node's
        backing file.
    """
    status = run(["zpool", "status", node.pool], check=False)
    return str(node.pool_file) in status.stdout


def ensure_pool(node):
    """
    Import or create a node's pool and make sure it is mounted.

    :param Node node: The node.
    :raises LabError: If a foreign pool has the name.
    """
    with ZfsLock():
        _ensure_pool(node)


def _ensure_pool(node):
    if node.pool in imported_pools():
        if not pool_is_ours(node):
            raise LabError("%s: pool %s exists and is not this lab's" % (
                node.name, node.pool))
        values = run(["zfs", "get", "-H", "-o", "value", "mounted",
                      node.pool]).stdout.split()
        if values != ["yes"]:
            run(["zfs", "mount", node.pool])
        return
    node.pool_file.parent.mkdir(parents=True, exist_ok=True)
    if node.pool_file.exists():
        result = run(["zpool", "import", "-d", node.pool_file.parent,
                      "-o", "cachefile=none", node.pool], check=False)
        if result.returncode == 0:
            return
        node.pool_file.unlink()
    with open(node.pool_file, "wb") as f:
        f.truncate(POOL_SIZE)
    # cachefile=none: the pool is never re-imported behind our back when
    # zfs-fuse restarts.
    run(["zpool", "create", "-o", "cachefile=none", "-m", node.zfs_mount,
         node.pool, node.pool_file])


def destroy_pool(node):
    """
    Destroy a node's pool (if it is the lab's) and its backing file.

    :param Node node: The node.
    """
    with ZfsLock():
        if node.pool in imported_pools() and pool_is_ours(node):
            retry_busy(["zpool", "destroy", "-f", node.pool])
    shutil.rmtree(node.pool_file.parent, ignore_errors=True)


def remove_cgroups(node):
    """
    Remove the node's container cgroups (dockerd leaves the parent).

    :param Node node: The node.
    """
    deadline = time.monotonic() + KILL_TIMEOUT
    for root in cgroup_roots():
        top = os.path.join(root, node.cgroup_parent.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise LabError("cgroup %s stays busy" % (directory,))
                    time.sleep(0.05)


def _only_kept(path, lab):
    # A node state directory holding nothing but its Docker data root is
    # what down leaves on purpose, not a leftover.
    if path.parent != lab.state:
        return False
    try:
        return set(os.listdir(path)) <= {"docker"}
    except OSError:
        return False


def discover_nodes(lab):
    """
    Find the indices of every node with anything left on the host: a
    namespace, runtime or state directory, pool or cgroup.

    :param Lab lab: The lab.
    :return: A sorted list of indices.
    """
    found = set()
    netns_pattern = re.compile(r"%s-node([1-9][0-9]*)$" % (lab.prefix,))
    node_pattern = re.compile(r"node([1-9][0-9]*)$")
    pool_pattern = re.compile(re.escape(lab.pool_name("node")) +
                              r"([1-9][0-9]*)$")
    listings = [(Path("/run/netns"), netns_pattern),
                (lab.runtime, node_pattern), (lab.state, node_pattern),
                (lab.pools_dir, node_pattern)]
    listings += [(Path(root), netns_pattern) for root in cgroup_roots()]
    for directory, pattern in listings:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            match = pattern.match(name)
            if match and not _only_kept(directory / name, lab):
                found.add(int(match.group(1)))
    if zfs_fuse_pids():
        try:
            for pool in imported_pools():
                match = pool_pattern.match(pool)
                if match:
                    found.add(int(match.group(1)))
        except LabError:
            pass
    return sorted(found)


def teardown_machines(lab, machines, purge=False):
    """
    Remove machines: processes, namespaces, pools, cgroups, runtime and
    state directories (but nodes' Docker data roots, unless ``purge``).

    :param Lab lab: The lab.
    :param list machines: :class:`Machine` values.
    :param bool purge: Also remove the Docker data roots.
    """
    kill_machines(machines)
    for machine in machines:
        unmount_namespace_files(machine)
        delete_netns(machine.netns)
    nodes = [m for m in machines if m.is_node]
    for node in nodes:
        destroy_pool(node)
    for node in nodes:
        remove_cgroups(node)
    for machine in machines:
        shutil.rmtree(machine.run_dir, ignore_errors=True)
        # A node's Docker data root is kept (unless purged): the next up
        # resets it to a fresh host's state, faster than loading images.
        keep = {"docker"} if machine.is_node and not purge else set()
        if machine.state_dir.is_dir():
            for child in machine.state_dir.iterdir():
                if child.name in keep:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()
            if not keep:
                shutil.rmtree(machine.state_dir, ignore_errors=True)
        if machine.is_node:
            for log in (machine.dockerd_log, machine.sshd_log,
                        _lab_etcd.etcd_log(machine)):
                if log.exists():
                    log.unlink()


def fresh_network_namespaces(machines, rebuild):
    """
    Make sure every machine has a network namespace.  A machine whose
    network or mount namespace is gone (or all, with ``rebuild``) loses its
    processes and its old namespace files first.

    :param list machines: The machines.
    :param bool rebuild: Treat every machine as stale.
    :return: ``{name: True}`` for machines whose network namespace is new.
    """
    stale = [m for m in machines
             if rebuild or namespace_inode(m.netns_path) is None
             or namespace_inode(m.mnt_file) is None
             or (m.is_node and not overlaid(m))]
    kill_machines(stale)
    for machine in stale:
        unmount_namespace_files(machine)
    # Sequential: the first ``ip netns add`` sets up /run/netns.
    return {m.name: ensure_netns(m.netns) for m in machines}


def prepare_machine(lab, machine, fresh):
    """
    Link and mount namespace of one machine.

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :param bool fresh: Its network namespace is new.
    :return: ``True`` if its mount namespace is new.
    """
    if fresh and machine.is_node:
        # Like a fresh host: forwarding off until dockerd turns it on, which
        # makes dockerd set the FORWARD policy to DROP.
        sysctl(machine.netns, {"net.ipv4.ip_forward": 0})
    ensure_link(lab, machine, fresh)
    return ensure_mount_namespace(lab, machine)


@dataclass
class Boot:
    """
    What ``up`` did to one machine (mutable, local to one ``up`` run).

    :ivar bool restarted: Its namespaces or daemons were (re)started, so its
        Docker must be reset to a fresh host's state.
    :ivar dockerd: The ``Popen`` of a dockerd just started, or ``None``.
    :ivar sshd: The ``Popen`` of an sshd just started, or ``None``.
    :ivar float started: When the dockerd was started.
    """
    restarted: bool
    dockerd: object = None
    sshd: object = None
    started: float = 0.0


def start_etcd_member(lab, node):
    """
    Start a booting node's etcd member (as its unit would at boot) without
    waiting for its cluster: with most members down it cannot be healthy,
    and a booting server does not wait for that either.

    :param Lab lab: The lab.
    :param Node node: The node.
    """
    count = len(load_description(lab)["nodes"])
    nodes = [lab.node(i) for i in range(1, count + 1)]
    _lab_etcd.start_etcd(node, nodes, _spawn, _daemon_environment(node),
                         daemon_pid)


def wait_etcd_member(node):
    """
    Wait until a node's running etcd member is healthy again (nothing if
    it does not run).

    :param Node node: The node.
    :raises LabError: If it is not healthy in time.
    """
    if _lab_etcd.etcd_pid(node, daemon_pid) is not None:
        _lab_etcd.wait_etcd(node, None)


def boot_machine(lab, machine, fresh):
    """
    Prepare a machine's namespaces and, on a node, start whatever daemon is
    not running (without waiting for them).

    :param Lab lab: The lab.
    :param Machine machine: The machine.
    :param bool fresh: Its network namespace is new.
    :return: A :class:`Boot`.
    """
    new = prepare_machine(lab, machine, fresh)
    if not machine.is_node:
        return Boot(restarted=new)
    boot = Boot(restarted=new or not daemon_pid(
        machine, machine.dockerd_pid_file, "dockerd"))
    if boot.restarted:
        if not new:
            # containerd, shims or an sshd left by a dead dockerd go too.
            kill_machines([machine])
        boot.dockerd = start_dockerd(machine)
        boot.started = time.monotonic()
    if boot.restarted or not daemon_pid(machine, machine.sshd_pid_file,
                                        "sshd"):
        boot.sshd = start_sshd(machine)
    return boot


def up(lab, count, log):
    """
    Bring the lab to exactly ``count`` healthy nodes plus the client,
    repairing whatever is missing or broken and removing extra nodes.

    :param Lab lab: The lab.
    :param int count: Number of nodes, 1..MAX_NODES.
    :param log: Called with progress lines.
    :return: The lab description written to ``lab.json``.
    :raises LabError: On any failure.
    """
    started = time.monotonic()
    trace = _tracer(log, started)
    preflight(lab)
    check_checkout(lab)
    nodes = [lab.node(i) for i in range(1, count + 1)]
    client = lab.client()
    machines = [client] + nodes
    lab.state.mkdir(parents=True, exist_ok=True)
    with StateLock(lab.state), \
            concurrent.futures.ThreadPoolExecutor(1) as builder:
        # Built (when the code changed) while the nodes boot.
        build = builder.submit(_lab_package.ensure_package, lab.packages_dir,
                               lab.bin_dir / "python", log)
        rebuild = prepare_host(lab, nodes)
        trace("host prepared")
        extra = [lab.node(i) for i in discover_nodes(lab) if i > count]
        if extra:
            log("removing %s" % (", ".join(n.name for n in extra),))
            teardown_machines(lab, extra)
        write_lab_files(lab, nodes)
        for machine in machines:
            write_machine_files(lab, machine, nodes)
        ensure_bridge(lab)
        fresh = fresh_network_namespaces(machines, rebuild)
        trace("files, bridge, network namespaces")
        boots = dict(zip([m.name for m in machines], parallel(
            lambda m: boot_machine(lab, m, fresh[m.name]), machines)))
        etcds = dict(zip([n.name for n in nodes], parallel(
            lambda n: _lab_etcd.start_etcd(n, nodes, _spawn,
                                           _daemon_environment(n),
                                           daemon_pid), nodes)))
        trace("links, mount namespaces, daemons started")
        # One at a time (see ZfsLock), while the daemons start.
        for node in nodes:
            ensure_pool(node)
        trace("pools")
        images_lock = threading.Lock()
        images = {}

        def cached_images(api):
            # Built once, on whichever node gets here first.
            with images_lock:
                if not images:
                    images.update(_lab_images.ensure_cache(
                        lab.images_dir, api, log))
                return dict(images)

        def finish(node):
            boot = boots[node.name]
            if boot.sshd is not None:
                wait_sshd(node, boot.sshd)
            wait_dockerd(node, boot.dockerd)
            digest, package = build.result()
            installed = _lab_package.install(node, digest, package)
            check_ssh(lab, client, node)
            # The agent finds its node's etcd member when it starts.
            _lab_etcd.wait_etcd(node, etcds[node.name])
            # A package (re)installed restarts the service, as its postinst
            # does under systemd.
            if not current_agent(node, None if installed else digest):
                # After the pool and Docker, as the unit's ordering says.
                wait_agent(node, start_agent(lab, node))
            ready = time.monotonic() - boot.started
            api = _lab_images.DockerAPI(str(node.docker_socket))
            try:
                wanted = cached_images(api)
                if boot.restarted:
                    # A node that boots is a fresh host, even though its
                    # data root (with the images) survived the last down.
                    api.reset(wanted)
                _lab_images.ensure_loaded(lab.images_dir, api, wanted)
            except (_lab_images.ImageError, OSError) as e:
                raise LabError("%s: images: %s" % (node.name, e))
            return ready if boot.dockerd is not None else None
        ready = [r for r in parallel(finish, nodes) if r is not None]
        trace("sshd, ssh check, dockerd, images")
        if ready:
            trace("dockerd: slowest answered %.3fs after start" % (
                max(ready),))
        description = describe(lab, nodes, client, images, build.result())
        write_json(lab.description_file, description)
        # Whatever fault a node had, up has just repaired it.
        for node in nodes:
            _lab_faults.clear_fault(node)
    restarted = sorted(name for name, boot in boots.items() if boot.restarted)
    log("lab up: %d node%s (%s) in %.2fs; restarted: %s" % (
        count, "" if count == 1 else "s",
        ", ".join("%s=%s" % (n.name, n.address) for n in nodes),
        time.monotonic() - started, ", ".join(restarted) or "nothing"))
    return description


def _tracer(log, started):
    """
    :return: A function logging a step's time when ``FLOCKER_LAB_TRACE`` is
        set (for finding where ``up`` spends its time), else doing nothing.
    """
    if not os.environ.get("FLOCKER_LAB_TRACE"):
        return lambda step: None
    last = [started]

    def trace(step):
        now = time.monotonic()
        log("%6.3fs %6.3fs %s" % (now - started, now - last[0], step))
        last[0] = now
    return trace


def check_ssh(lab, client, node):
    """
    Log in from the client to a node and check the node command is the
    lab's.

    :param Lab lab: The lab.
    :param Machine client: The client.
    :param Node node: The node.
    :raises LabError: If the login fails or finds another ``flocker-node``
        than the package's.
    """
    result = run(client.nsenter() + ["ssh", node.name, "which",
                                     "flocker-node"],
                 env=client.environment(), timeout=30, check=False)
    found = result.stdout.strip()
    expected = "/usr/bin/flocker-node"
    if result.returncode != 0 or found != expected:
        raise LabError("%s: ssh from client: %s" % (
            node.name, "found %s, expected %s" % (found, expected)
            if result.returncode == 0 else last_line(result)))


def describe(lab, nodes, client, images, package):
    """
    :param package: ``(digest, path)`` of the package the nodes run.
    :return: The JSON-able description of a running lab (``lab.json``).
    """
    return {
        "version": DESCRIPTION_VERSION,
        "prefix": lab.prefix,
        "checkout": str(REPO),
        "state": str(lab.state),
        "runtime": str(lab.runtime),
        "bin": str(lab.bin_dir),
        "nodes": [node.describe() for node in nodes],
        "client": client.describe(),
        "ssh": {
            "identity": str(lab.identity),
            "known_hosts": str(lab.known_hosts),
            "config": str(lab.ssh_config),
        },
        "images": images,
        "package": {"digest": package[0], "path": str(package[1])},
    }


def down(lab, purge, log):
    """
    Remove everything the lab put on the host.  Safe to repeat, and works
    on a half-built or half-removed lab.

    :param Lab lab: The lab.
    :param bool purge: Also delete the state directory (keys, image cache,
        logs, the nodes' Docker data roots).
    :param log: Called with progress lines.
    :raises LabError: On a failure (the rest is still attempted next time).
    """
    if os.geteuid() != 0:
        raise LabError("must run as root")
    started = time.monotonic()
    lock = StateLock(lab.state) if lab.state.is_dir() else None
    if lock:
        lock.__enter__()
    try:
        indices = discover_nodes(lab)
        machines = [lab.client()] + [lab.node(i) for i in indices]
        teardown_machines(lab, machines, purge)
        delete_netns(lab.bridge_netns)
        if mounted(lab.zfs_base):
            deadline = time.monotonic() + ZFS_BUSY_TIMEOUT
            while run(["umount", lab.zfs_base], check=False).returncode:
                if time.monotonic() > deadline:
                    # Left-overs of a dead ZFS daemon (stale FUSE mounts)
                    # never become free: detach them.
                    log("%s stays busy: detaching it" % (lab.zfs_base,))
                    run(["umount", "--lazy", "--recursive", lab.zfs_base])
                    break
                time.sleep(0.1)
        shutil.rmtree(lab.zfs_base, ignore_errors=True)
        shutil.rmtree(lab.pools_dir, ignore_errors=True)
        shutil.rmtree(lab.zfs_exec.parent, ignore_errors=True)
        if lab.runtime.exists():
            zfs_pid = read_pid(lab.runtime / "zfs-fuse.pid")
            while mounted(lab.runtime):
                run(["umount", lab.runtime])
            shutil.rmtree(lab.runtime, ignore_errors=True)
        else:
            zfs_pid = None
        record = load_record(lab)
        undo_run_netns(record)
        stop_zfs_daemon(record, zfs_pid)
        for path in (lab.description_file, lab.host_record, lab.hosts_file,
                     lab.known_hosts, lab.ssh_config):
            if path.exists():
                path.unlink()
        if purge and lab.state.exists():
            shutil.rmtree(lab.state)
    finally:
        if lock:
            lock.__exit__(None, None, None)
    log("lab down: removed %d node%s in %.2fs" % (
        len(indices), "" if len(indices) == 1 else "s",
        time.monotonic() - started))


def undo_run_netns(record):
    """
    Undo iproute2's ``/run/netns`` self-bind if the lab caused it and no
    namespace is left in it.

    :param dict record: The host record.
    """
    path = Path("/run/netns")
    if not path.is_dir() or os.listdir(path):
        return
    if record.get("run_netns_mount") and mounted(path):
        run(["umount", path])
    if record.get("run_netns_dir") and not mounted(path):
        path.rmdir()


def stop_zfs_daemon(record, pid):
    """
    Stop zfs-fuse if the lab started it and no pool is left.

    :param dict record: The host record.
    :param int pid: zfs-fuse's pid from the lab's pid file, or ``None``.
    """
    if not record.get("zfs_fuse_started") or pid is None:
        return
    if not process_alive(pid) or process_name(pid) != "zfs-fuse":
        return
    if imported_pools():
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_TIMEOUT
    while process_alive(pid):
        if time.monotonic() > deadline:
            raise LabError("zfs-fuse (pid %d) did not stop" % (pid,))
        time.sleep(0.05)


def load_description(lab):
    """
    :param Lab lab: The lab.
    :return: The running lab's description.
    :raises LabError: If the lab is not up.
    """
    try:
        return json.loads(lab.description_file.read_text())
    except (OSError, ValueError):
        raise LabError("the lab is not up (run: admin/lab up N)")


def node_health(node):
    """
    :param Node node: A node.
    :return: ``{part: bool}`` for the node's namespaces, daemons and pool.
    """
    dockerd = daemon_pid(node, node.dockerd_pid_file, "dockerd")
    sshd = daemon_pid(node, node.sshd_pid_file, "sshd")
    agent = agent_pid(node)
    return {
        "netns": namespace_inode(node.netns_path) is not None,
        "mntns": namespace_inode(node.mnt_file) is not None,
        "dockerd": bool(dockerd) and _lab_images.DockerAPI(
            str(node.docker_socket), timeout=5).ping(),
        "sshd": bool(sshd) and sshd_listening(sshd),
        "package": _lab_package.installed_digest(node) is not None,
        "agent": bool(agent) and agent_listening(agent),
        "etcd": bool(_lab_etcd.etcd_pid(node, daemon_pid))
        and _lab_etcd.etcd_health(node),
        "pool": zfs_answers() and node.pool in imported_pools(),
        "zfs-mount": mounted(node.zfs_mount),
    }


def status(lab, out):
    """
    Print the lab's health.

    :param Lab lab: The lab.
    :param out: Text stream.
    :return: 0 if up and healthy, 1 if degraded, 3 if not up.
    """
    try:
        description = load_description(lab)
    except LabError:
        left = discover_nodes(lab)
        if left:
            out.write("lab down, leftovers of nodes %s (run: admin/lab "
                      "down)\n" % (", ".join(map(str, left)),))
            return 1
        out.write("lab down\n")
        return 3
    nodes = [lab.node(i + 1) for i in range(len(description["nodes"]))]
    client = lab.client()
    healthy = True
    out.write("%-8s %-12s %s\n" % ("MACHINE", "ADDRESS", "PARTS"))
    client_ok = (namespace_inode(client.netns_path) is not None and
                 namespace_inode(client.mnt_file) is not None)
    healthy &= client_ok
    out.write("%-8s %-12s %s\n" % (client.name, client.address,
                                   "ok" if client_ok else "BROKEN"))
    for node in nodes:
        fault = _lab_faults.fault_of(node)
        if fault == _lab_faults.KILLED:
            healthy = False
            out.write("%-8s %-12s POWERED OFF (admin/lab revive %s)\n" % (
                node.name, node.address, node.name))
            continue
        parts = node_health(node)
        healthy &= all(parts.values()) and fault is None
        out.write("%-8s %-12s %s%s\n" % (node.name, node.address, " ".join(
            "%s=%s" % (k, "ok" if v else "DOWN") for k, v in parts.items()),
            "" if fault is None else
            " PARTITIONED (admin/lab heal %s)" % (node.name,)))
    out.write("lab %s: %d nodes, state %s\n" % (
        "up" if healthy else "DEGRADED (run: admin/lab up %d)"
        % (len(nodes),), len(nodes), lab.state))
    return 0 if healthy else 1


def find_machine(lab, name):
    """
    :param Lab lab: The lab.
    :param str name: ``client`` or ``nodeI``.
    :return: The machine's entry in the running lab's description.
    :raises LabError: If the lab is down or has no such machine.
    """
    description = load_description(lab)
    if name == "client":
        return description["client"]
    for node in description["nodes"]:
        if node["name"] == name:
            return node
    raise LabError("no machine %r in the lab (machines: client, %s)" % (
        name, ", ".join(n["name"] for n in description["nodes"])))


def run_command(lab, name, argv):
    """
    Replace this process by ``argv`` running on a lab machine.

    :param Lab lab: The lab.
    :param str name: ``client`` or ``nodeI``.
    :param list argv: The command.
    :raises LabError: If the machine is unknown or its namespaces gone.
    """
    machine = find_machine(lab, name)
    if name != "client" and _lab_faults.fault_of(
            lab.node(int(name[len("node"):]))) == _lab_faults.KILLED:
        raise LabError("%s is powered off (admin/lab revive %s)" % (
            name, name))
    for key in ("netns", "mntns", "utsns"):
        if namespace_inode(machine[key]) is None:
            raise LabError("%s: namespace %s is gone (run: admin/lab up)"
                           % (name, machine[key]))
    env = dict(os.environ)
    env.update(machine["env"])
    cwd = os.getcwd()
    nsenter = shutil.which("nsenter", path=STANDARD_PATH)
    os.execve(nsenter, [
        "nsenter", "--net=" + machine["netns"], "--mount=" + machine["mntns"],
        "--uts=" + machine["utsns"], "--wd=" + cwd, "--"] + argv, env)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise LabError(message)


def build_parser():
    """
    :return: The ``admin/lab`` argument parser.
    """
    parser = _Parser(
        prog="admin/lab",
        description="A local multi-node Flocker lab: nodes in namespaces "
        "with their own dockerd, sshd, etcd member and ZFS pool, plus a "
        "client.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    up_parser = commands.add_parser(
        "up", help="start or repair a lab of N nodes (1-%d)" % (MAX_NODES,))
    up_parser.add_argument("count", metavar="N")
    down_parser = commands.add_parser(
        "down", help="remove everything the lab put on this machine")
    down_parser.add_argument("--purge", action="store_true",
                             help="also delete keys, image cache and logs")
    status_parser = commands.add_parser("status", help="show the lab's health")
    status_parser.add_argument("--json", action="store_true",
                               help="print lab.json instead")
    address_parser = commands.add_parser(
        "address", help="print a machine's address")
    address_parser.add_argument("machine", metavar="NODE")
    run_parser = commands.add_parser(
        "run", help="run a command on a machine: run NODE|client -- CMD...")
    run_parser.add_argument("machine", metavar="NODE|client")
    run_parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD")
    for command, text in FAULT_COMMANDS:
        fault_parser = commands.add_parser(command, help=text)
        fault_parser.add_argument("machine", metavar="NODE")
    return parser


#: The fault commands (see ``_lab_faults``) and their help.
FAULT_COMMANDS = (
    ("kill", "power loss: every process of NODE (sshd, dockerd, agent, "
     "containers) dies at once and its address stops answering; its pool "
     "and Docker data stay"),
    ("revive", "boot a killed NODE: dockerd, sshd and the agent start as "
     "after a reboot (its containers are kept, Docker is not reset)"),
    ("partition", "NODE runs on, but no packet reaches or leaves it"),
    ("heal", "end NODE's partition"),
)


def main(argv, environ, out, err):
    """
    The ``admin/lab`` command.

    :param list argv: Arguments (without the program name).
    :param environ: Environment mapping.
    :param out: Text stream for results.
    :param err: Text stream for progress and errors.
    :return: The exit code.
    """
    def log(message):
        err.write("admin/lab: %s\n" % (message,))
        err.flush()
    try:
        options = build_parser().parse_args(argv)
        lab = Lab.from_environ(environ)
        if options.command == "up":
            up(lab, parse_count(options.count), log)
        elif options.command == "down":
            down(lab, options.purge, log)
        elif options.command == "status":
            if options.json:
                out.write(json.dumps(load_description(lab), indent=2) + "\n")
                return 0
            return status(lab, out)
        elif options.command == "address":
            out.write(find_machine(lab, options.machine)["address"] + "\n")
        elif options.command == "run":
            command = options.argv
            if command and command[0] == "--":
                command = command[1:]
            if not command:
                raise LabError("run: no command given (run NODE -- CMD...)")
            run_command(lab, options.machine, command)
        elif options.command in dict(FAULT_COMMANDS):
            fault = getattr(_lab_faults, options.command)
            fault(lab, options.machine, log, sys.modules[__name__])
    except LabError as e:
        err.write("admin/lab: %s\n" % (e,))
        return 1
    except KeyboardInterrupt:
        err.write("admin/lab: interrupted\n")
        return 130
    return 0
