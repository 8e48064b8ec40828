"""
Names, addresses and configuration files of Flocker's local lab: pure values
and functions, no I/O beyond reading a file they are given.

See ``_lab.py`` for the lab's layout and life cycle.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

MAX_NODES = 8
NETWORK = "10.99.0"
CLIENT_ADDRESS = NETWORK + ".2"
DEFAULT_STATE = "/var/lib/flocker-lab"
DEFAULT_PREFIX = "flk"
#: Size of each node's pool file (sparse): $FLOCKER_LAB_POOL_MIB MiB when
#: set (benchmarks of large volumes), else 2 GiB.  Only pools created from
#: then on get it.
def _pool_mib(text):
    """
    :param text: ``$FLOCKER_LAB_POOL_MIB`` or ``None``.
    :return: The pool size in MiB (2048 when unset).
    :raises SystemExit: With one line, for anything but a size of at least
        64 MiB.
    """
    if not text:
        return 2048
    if not text.isdigit() or int(text) < 64:
        raise SystemExit("admin/lab: FLOCKER_LAB_POOL_MIB=%r is not a pool "
                         "size in MiB (at least 64)" % (text,))
    return int(text)


POOL_SIZE = _pool_mib(os.environ.get("FLOCKER_LAB_POOL_MIB")) * 1024 ** 2
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ADMIN = Path(__file__).resolve().parent
REPO = ADMIN.parent
NSINIT = ADMIN / "_nsinit.py"
DESCRIPTION_VERSION = 1
# zfs-fuse's control socket directory; kept visible in every machine.
ZFS_SOCKET_DIR = "/run/zfs"
#: Host directories each node sees as writable overlays of its own: where
#: ``dpkg -i`` of Flocker's package writes (see ``_lab_package.py``).
NODE_OVERLAYS = ("/usr", "/opt", "/var/lib/dpkg", "/etc/default")
#: etcd's registered client and peer ports (each node runs one member).
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


def etcd_client_urls(nodes, first=None):
    """
    :param nodes: Every node of the lab.
    :param first: A node whose member is to be listed first, or ``None``.
    :return: The members' client URLs (``FLOCKER_ETCD_ENDPOINTS``), the
        given node's first, then the others in node order.
    """
    ordered = sorted(nodes, key=lambda n: (n != first, n.index))
    return ["http://%s:%d" % (n.address, ETCD_CLIENT_PORT) for n in ordered]


class LabError(Exception):
    """
    Something the operator must know about; the message is one line.
    """


@dataclass(frozen=True)
class Lab:
    """
    Where one lab lives and how its parts are named.

    :ivar Path state: The state directory.
    :ivar Path runtime: The runtime directory (sockets, namespace files).
    :ivar str prefix: Prefix of the namespace names.
    :ivar Path bin_dir: Directory with ``flocker-deploy`` & co. (the
        checkout's ``.venv/bin``), first on the client's ``PATH``; its
        ``python`` builds the nodes' package.  Nodes run the package.
    """
    state: Path
    runtime: Path
    prefix: str
    bin_dir: Path

    @classmethod
    def from_environ(cls, environ):
        """
        :param environ: Environment mapping; reads ``FLOCKER_LAB_STATE``,
            ``FLOCKER_LAB_PREFIX`` and ``FLOCKER_LAB_BIN``.
        :return: The lab those select.
        :raises LabError: For a malformed value.
        """
        prefix = environ.get("FLOCKER_LAB_PREFIX") or DEFAULT_PREFIX
        if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", prefix):
            raise LabError("FLOCKER_LAB_PREFIX must be 1-6 lower-case letters "
                           "or digits starting with a letter, not %r"
                           % (prefix,))
        state = environ.get("FLOCKER_LAB_STATE") or DEFAULT_STATE
        if not os.path.isabs(state):
            raise LabError("FLOCKER_LAB_STATE must be an absolute path, not %r"
                           % (state,))
        runtime = "/run/flocker-lab" + (
            "" if prefix == DEFAULT_PREFIX else "-" + prefix)
        bin_dir = environ.get("FLOCKER_LAB_BIN") or str(REPO / ".venv" / "bin")
        return cls(state=Path(os.path.normpath(state)), runtime=Path(runtime),
                   prefix=prefix, bin_dir=Path(bin_dir))

    @property
    def bridge_netns(self):
        """The network namespace holding the lab's bridge."""
        return self.prefix + "-net"

    @property
    def ssh_dir(self):
        """Lab-wide SSH material: client key, host keys, known_hosts."""
        return self.state / "ssh"

    @property
    def identity(self):
        """The lab's SSH private key (client and node to node)."""
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self):
        """known_hosts listing exactly the lab nodes' host keys."""
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self):
        """An ssh_config usable from any lab machine (``ssh -F``)."""
        return self.ssh_dir / "config"

    @property
    def hosts_file(self):
        """The ``/etc/hosts`` every lab machine sees."""
        return self.state / "hosts"

    @property
    def zfs_exec(self):
        """The ``zfs``/``zpool`` wrapper bound over both in every node."""
        return self.state / "bin" / "zfs-exec"

    @property
    def zfs_base(self):
        """The shared mount under which node pools are mounted."""
        return self.state / "zfs"

    @property
    def pools_dir(self):
        """Directory of the pools' sparse files."""
        return self.state / "pools"

    @property
    def packages_dir(self):
        """
        The cache of the checkout's built Debian packages, one directory per
        build (``dist/lab``: shared by every lab of this checkout, kept by
        ``down --purge``).
        """
        return REPO / "dist" / "lab"

    @property
    def images_dir(self):
        """The image cache."""
        return self.state / "images"

    @property
    def logs_dir(self):
        """Daemon logs (kept after ``down`` for post-mortems)."""
        return self.state / "logs"

    @property
    def description_file(self):
        """``lab.json``: the running lab, for other programs."""
        return self.state / "lab.json"

    @property
    def host_record(self):
        """What ``up`` changed on the host that ``down`` must undo."""
        return self.state / "host.json"

    def pool_name(self, name):
        """
        :param str name: A node name.
        :return: The ZFS pool name of that node.
        """
        if self.prefix == DEFAULT_PREFIX:
            return "flocker-" + name
        return "%s-%s" % (self.prefix, name)

    def node(self, index):
        """
        :param int index: 1..MAX_NODES.
        :return: The :class:`Node` with that index.
        """
        return Node(lab=self, name="node%d" % (index,), index=index,
                    address="%s.%d" % (NETWORK, 10 + index))

    def client(self):
        """
        :return: The client :class:`Machine`.
        """
        return Machine(lab=self, name="client", index=0,
                       address=CLIENT_ADDRESS)


@dataclass(frozen=True)
class Machine:
    """
    One machine of the lab: namespaces, address and files.

    :ivar Lab lab: Its lab.
    :ivar str name: ``client`` or ``nodeI``.
    :ivar int index: 0 for the client, I for ``nodeI``.
    :ivar str address: Its IPv4 address on the lab network.
    """
    lab: Lab
    name: str
    index: int
    address: str

    is_node = False

    @property
    def netns(self):
        """Name of its network namespace."""
        return "%s-%s" % (self.lab.prefix, self.name)

    @property
    def netns_path(self):
        """The network namespace file iproute2 keeps."""
        return Path("/run/netns") / self.netns

    @property
    def veth(self):
        """Its veth's name on the bridge side."""
        return "v-" + self.name

    @property
    def run_dir(self):
        """Runtime files (namespace files, sockets, pid files)."""
        return self.lab.runtime / self.name

    @property
    def mnt_file(self):
        """The file its mount namespace is bound to."""
        return self.run_dir / "mnt"

    @property
    def uts_file(self):
        """The file its UTS namespace is bound to."""
        return self.run_dir / "uts"

    @property
    def scratch(self):
        """Mount point used once while preparing the mount namespace."""
        return self.run_dir / "scratch"

    @property
    def state_dir(self):
        """Its persistent files."""
        return self.lab.state / self.name

    @property
    def home(self):
        """root's home directory on this machine."""
        return self.state_dir / "home"

    @property
    def passwd(self):
        """The ``/etc/passwd`` this machine sees."""
        return self.state_dir / "passwd"

    @property
    def hostname_file(self):
        """The ``/etc/hostname`` this machine sees."""
        return self.state_dir / "hostname"

    @property
    def log_dir(self):
        """The ``/var/log`` this machine sees."""
        return self.state_dir / "log"

    def environment(self):
        """
        :return: The variables a session on this machine gets (what sshd
            sets for a node; what ``admin/lab run`` sets).
        """
        return {
            "PATH": "%s:%s" % (self.lab.bin_dir, STANDARD_PATH),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "FLOCKER_LAB_NODE": self.name,
        }

    def nsenter(self):
        """
        :return: The ``nsenter`` argument vector (ending in ``--``) that
            runs a program inside this machine's namespaces.
        """
        return ["nsenter", "--net=%s" % (self.netns_path,),
                "--mount=%s" % (self.mnt_file,),
                "--uts=%s" % (self.uts_file,), "--"]

    def describe(self):
        """
        :return: A JSON-able description for ``lab.json``.
        """
        return {
            "name": self.name,
            "address": self.address,
            "netns": str(self.netns_path),
            "mntns": str(self.mnt_file),
            "utsns": str(self.uts_file),
            "home": str(self.home),
            "env": self.environment(),
        }


@dataclass(frozen=True)
class Node(Machine):
    """
    A lab node: a :class:`Machine` with dockerd, sshd and a ZFS pool.
    """
    is_node = True

    @property
    def pool(self):
        """Its ZFS pool's name."""
        return self.lab.pool_name(self.name)

    @property
    def pool_file(self):
        """The pool's sparse backing file."""
        return self.lab.pools_dir / self.name / "disk.img"

    @property
    def zfs_mount(self):
        """Where the pool's root dataset is mounted."""
        return self.lab.zfs_base / self.name

    @property
    def docker_socket(self):
        """The node dockerd's API socket, reachable from the host."""
        return self.run_dir / "docker.sock"

    @property
    def data_root(self):
        """The node dockerd's data root."""
        return self.state_dir / "docker"

    @property
    def daemon_json(self):
        """The node dockerd's configuration file."""
        return self.state_dir / "daemon.json"

    @property
    def sshd_config(self):
        """The node sshd's configuration file."""
        return self.state_dir / "sshd_config"

    @property
    def host_key(self):
        """The node's SSH host key (kept in the lab's SSH directory)."""
        return self.lab.ssh_dir / "hostkeys" / self.name

    @property
    def cgroup_parent(self):
        """The cgroup under which dockerd puts this node's containers."""
        return "/" + self.netns

    @property
    def dockerd_pid_file(self):
        """Pid of the node's dockerd (written by the lab)."""
        return self.run_dir / "dockerd.pid"

    @property
    def sshd_pid_file(self):
        """Pid of the node's sshd (written by sshd)."""
        return self.run_dir / "sshd.pid"

    @property
    def agent_pid_file(self):
        """Pid of the node's Flocker agent (written by its unit runner)."""
        return self.run_dir / "agent.pid"

    @property
    def agent_unit_pid_file(self):
        """Pid of the unit runner supervising the node's agent."""
        return self.run_dir / "agent-unit.pid"

    @property
    def agent_log(self):
        """The Flocker agent's log, as the host sees it."""
        return self.log_dir / "flocker-agent.log"

    def overlays(self):
        """
        :return: ``[(target, upper, work)]``: the node's overlays on
            :data:`NODE_OVERLAYS` (upper and work directories in its state).
        """
        root = self.state_dir / "root"
        return [(target, root / target.strip("/").replace("/", "-") / "upper",
                 root / target.strip("/").replace("/", "-") / "work")
                for target in NODE_OVERLAYS]

    @property
    def defaults_file(self):
        """
        ``/etc/default/flocker-node`` in the node, as the host writes it
        (in the upper directory of its ``/etc/default`` overlay).
        """
        return dict((t, u) for t, u, _ in self.overlays())[
            "/etc/default"] / "flocker-node"

    @property
    def dockerd_log(self):
        """dockerd's output."""
        return self.lab.logs_dir / (self.name + "-dockerd.log")

    @property
    def sshd_log(self):
        """sshd's log."""
        return self.lab.logs_dir / (self.name + "-sshd.log")

    def environment(self, nodes=()):
        """
        :param nodes: Every node of the lab (whose etcd members the agent
            is told about), or empty for this node's own member only.
        :return: See :meth:`Machine.environment`.
        """
        env = Machine.environment(self)
        env.update({
            # A server's PATH: Flocker's commands are the installed
            # package's (/usr/bin/flocker-node), not the checkout's.
            "PATH": STANDARD_PATH,
            "DOCKER_HOST": "unix://%s" % (self.docker_socket,),
            "FLOCKER_POOL": self.pool,
            "FLOCKER_NODE_ADDRESS": self.address,
            # Each node's deploy lock lives in its own run directory: the
            # nodes of a lab (and of two labs) share /var/lib.
            "FLOCKER_LOCK_DIR": str(self.run_dir),
            # flocker-node doctor reads the node's own sshd settings.
            "FLOCKER_SSHD_CONFIG": str(self.sshd_config),
            # The agent's etcd: every member, its own first (see
            # _lab_etcd), so that losing one member loses no agent etcd.
            "FLOCKER_ETCD_ENDPOINTS": ",".join(
                etcd_client_urls(nodes, first=self) if nodes else
                ["http://127.0.0.1:%d" % (ETCD_CLIENT_PORT,)]),
        })
        return env

    def describe(self):
        description = Machine.describe(self)
        description.update({
            "docker_socket": str(self.docker_socket),
            "pool": self.pool,
            "zfs_mount": str(self.zfs_mount),
            "cgroup_parent": self.cgroup_parent,
        })
        return description


def defaults_text(node, nodes=()):
    """
    :param Node node: A node.
    :param nodes: Every node of the lab (see :meth:`Node.environment`).
    :return: Its ``/etc/default/flocker-node``: the settings
        ``docs/install.rst`` says to put there (pool, address, Docker
        socket), and the lab's own (lock and sshd configuration paths...):
        every variable of the node's sessions but the ones systemd or a
        login sets (``PATH``, ``HOME``, ``LANG``).
    """
    env = node.environment(nodes)
    names = sorted(set(env) - {"PATH", "HOME", "LANG"})
    return "".join(
        ["# Flocker lab %s: written by admin/lab up (read by the\n"
         "# EnvironmentFile= of flocker-node.service).\n" % (node.name,)]
        + ["%s=%s\n" % (name, env[name]) for name in names])


def public_key(path):
    """
    :param Path path: A private key path.
    :return: ``"ssh-ed25519 AAAA..."`` from its ``.pub`` (comment dropped).
    """
    words = path.with_name(path.name + ".pub").read_text().split()
    return " ".join(words[:2])


def known_hosts_text(nodes):
    """
    :param list nodes: The lab's nodes.
    :return: known_hosts content trusting exactly their host keys, under
        their names and addresses.
    """
    return "".join("%s,%s %s\n" % (node.name, node.address,
                                   public_key(node.host_key))
                   for node in nodes)


def ssh_config_text(nodes, identity, known_hosts):
    """
    :param list nodes: The lab's nodes.
    :param identity: The private key to offer.
    :param known_hosts: The known_hosts file to trust.
    :return: An ssh_config with an alias per node and strict, batch-mode
        defaults.
    """
    lines = ["# Flocker lab: written by admin/lab up.", ""]
    for node in nodes:
        lines += ["Host %s" % (node.name,),
                  "    HostName %s" % (node.address,), ""]
    lines += ["Host *",
              "    User root",
              "    IdentityFile %s" % (identity,),
              "    IdentitiesOnly yes",
              "    UserKnownHostsFile %s" % (known_hosts,),
              "    GlobalKnownHostsFile /dev/null",
              "    StrictHostKeyChecking yes",
              "    BatchMode yes",
              "    ConnectTimeout 10",
              "    LogLevel ERROR", ""]
    return "\n".join(lines)


def hosts_text(lab, nodes):
    """
    :param Lab lab: The lab.
    :param list nodes: The lab's nodes.
    :return: The lab's ``/etc/hosts``.
    """
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost",
             "%s\tclient" % (CLIENT_ADDRESS,)]
    lines += ["%s\t%s" % (node.address, node.name) for node in nodes]
    return "\n".join(lines) + "\n"


def passwd_text(home):
    """
    :param Path home: root's home directory on the machine.
    :return: The host's ``/etc/passwd`` with root's home replaced.
    """
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == "root":
            fields[5] = str(home)
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def shell_rc_text(machine):
    """
    :param Machine machine: A machine.
    :return: root's ``.bashrc`` there.  sshd sessions run it (Debian's
        bash reads it for ssh commands); it must not put anything before the
        lab's ``bin`` directory on ``PATH``.
    """
    return ("# Flocker lab %s: root's shell start-up file "
            "(written by admin/lab).\nexport PATH=%s\n"
            % (machine.name, machine.environment()["PATH"]))


def sshd_config_text(node, nodes=()):
    """
    :param Node node: A node.
    :param nodes: Every node of the lab (see :meth:`Node.environment`).
    :return: Its sshd configuration.
    """
    env = node.environment(nodes)
    env.pop("HOME")
    setenv = " ".join('"%s=%s"' % (k, v) for k, v in sorted(env.items()))
    return "\n".join([
        "# Flocker lab %s: written by admin/lab up." % (node.name,),
        "ListenAddress 0.0.0.0",
        "Port 22",
        "HostKey %s" % (node.host_key,),
        "PidFile %s" % (node.sshd_pid_file,),
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        # No PAM stack and key files inside the state directory.
        "UsePAM no",
        "StrictModes no",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        # Tests open many sessions at once.
        "MaxStartups 200:30:400",
        "MaxSessions 200",
        "Subsystem sftp internal-sftp",
        "SetEnv %s" % (setenv,),
        "",
    ])


def parse_count(text):
    """
    :param str text: The ``N`` of ``up N``.
    :return: It as an int.
    :raises LabError: Unless it is a whole number from 1 to MAX_NODES.
    """
    if not re.fullmatch(r"[0-9]+", text or "") or \
            not 1 <= int(text) <= MAX_NODES:
        raise LabError("up: N must be a whole number from 1 to %d, not %r"
                       % (MAX_NODES, text))
    return int(text)
