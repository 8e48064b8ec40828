"""
Tests for ``admin/_lab_model.py``: the lab's names, addresses and
configuration files.
"""

import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import cases, temporary_path, with_cases

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _lab_model  # noqa: E402


@with_cases
class LabModelTests(SynchronousTestCase):
    """
    The lab's pure model: naming, node configuration files, pool sizes.
    """

    def test_parse_count(self):
        """
        ``parse_count`` accepts exactly the whole numbers 1 to 8.
        """
        self.assertEqual(
            [_lab_model.parse_count(str(n)) for n in range(1, 9)],
            list(
                range(1, 9)))
        for bad in ("0", "9", "08x", " 1", "1e0"):
            with self.assertRaises(_lab_model.LabError):
                _lab_model.parse_count(bad)

    def test_naming(self):
        """
        The default lab names namespaces ``flk-…``, pools ``flocker-nodeI`` and
        gives ``nodeI`` the address 10.99.0.(10+I); another prefix renames the
        namespaces, pools and runtime directory so two labs can coexist.
        """
        default = _lab_model.Lab.from_environ({})
        node = default.node(3)
        self.assertEqual(
            (node.netns, node.pool, node.address, str(default.runtime)),
            ("flk-node3", "flocker-node3", "10.99.0.13", "/run/flocker-lab"))
        other = _lab_model.Lab.from_environ({"FLOCKER_LAB_PREFIX": "flkt",
                                             "FLOCKER_LAB_STATE": "/tmp/x"})
        node = other.node(1)
        self.assertEqual(
            (node.netns, node.pool, str(other.runtime), str(node.zfs_mount)),
            ("flkt-node1", "flkt-node1", "/run/flocker-lab-flkt",
             "/tmp/x/zfs/node1"))

    def test_sshd_config_sets_node_environment(self):
        """
        A node's sshd gives sessions the node's variables (its own deploy lock
        directory among them) and a server's PATH: Flocker's commands there are
        the installed package's, not those of the lab's bin directory.
        """
        lab = _lab_model.Lab.from_environ({"FLOCKER_LAB_BIN": "/srv/venv/bin"})
        text = _lab_model.sshd_config_text(lab.node(2))
        setenv = [line for line in text.splitlines()
                  if line.startswith("SetEnv ")]
        self.assertEqual(
            setenv,
            ['SetEnv "DOCKER_HOST=unix:///run/flocker-lab/node2/'
             'docker.sock" '
             '"FLOCKER_ETCD_ENDPOINTS=http://127.0.0.1:2379" '
             '"FLOCKER_LAB_NODE=node2" '
             '"FLOCKER_LOCK_DIR=/run/flocker-lab/node2" '
             '"FLOCKER_NODE_ADDRESS=10.99.0.12" '
             '"FLOCKER_POOL=flocker-node2" '
             '"FLOCKER_SSHD_CONFIG=/var/lib/flocker-lab/node2/'
             'sshd_config" "LANG=C.UTF-8" '
             '"PATH=%s"' % (_lab_model.STANDARD_PATH,)])

    def test_defaults_file(self):
        """
        A node's ``/etc/default/flocker-node`` holds its session variables but
        PATH, HOME and LANG (those the service gets from systemd), and lives
        in the upper directory of the node's ``/etc/default`` overlay.
        """
        lab = _lab_model.Lab.from_environ({"FLOCKER_LAB_STATE": "/srv/lab"})
        node = lab.node(1)
        lines = _lab_model.defaults_text(node).splitlines()
        self.assertEqual(
            ([line.split("=")[0] for line in lines
              if not line.startswith("#")],
             "FLOCKER_POOL=flocker-node1" in lines, str(node.defaults_file),
             [target for target, _, _ in node.overlays()]),
            (["DOCKER_HOST", "FLOCKER_ETCD_ENDPOINTS", "FLOCKER_LAB_NODE",
              "FLOCKER_LOCK_DIR", "FLOCKER_NODE_ADDRESS", "FLOCKER_POOL",
              "FLOCKER_SSHD_CONFIG"],
             True, "/srv/lab/node1/root/etc-default/upper/flocker-node",
             ["/usr", "/opt", "/var/lib/dpkg", "/etc/default"]))

    def test_defaults_file_names_every_etcd_member(self):
        """
        Given the lab's nodes, a node's ``/etc/default/flocker-node`` tells its
        agent about every node's etcd member, its own first, so that a member
        lost with its node leaves the other agents theirs and the rest.
        """
        lab = _lab_model.Lab.from_environ({"FLOCKER_LAB_STATE": "/srv/lab"})
        nodes = [lab.node(1), lab.node(2), lab.node(3)]
        lines = _lab_model.defaults_text(nodes[1], nodes).splitlines()
        self.assertEqual(
            [line for line in lines
             if line.startswith("FLOCKER_ETCD_ENDPOINTS=")],
            ["FLOCKER_ETCD_ENDPOINTS=http://10.99.0.12:2379,"
             "http://10.99.0.11:2379,http://10.99.0.13:2379"])

    def test_passwd_text_moves_only_root_home(self):
        """
        A machine's ``/etc/passwd`` is the host's with root's home replaced.
        """
        host = Path("/etc/passwd").read_text().splitlines()
        mine = _lab_model.passwd_text(Path("/srv/home")).splitlines()
        self.assertEqual(len(host), len(mine))
        for before, after in zip(host, mine):
            if before.startswith("root:"):
                self.assertEqual(after.split(":")[5], "/srv/home")
                self.assertEqual(after.split(":")[:5], before.split(":")[:5])
            else:
                self.assertEqual(after, before)

    def test_ssh_config_is_strict(self):
        """
        The SSH configuration names every node, uses the given key only and
        trusts only the given known_hosts, without ever prompting.
        """
        lab = _lab_model.Lab.from_environ({})
        text = _lab_model.ssh_config_text([lab.node(1), lab.node(2)],
                                          "/k/id", "/k/known")
        for line in ("Host node1", "    HostName 10.99.0.11", "Host node2",
                     "    HostName 10.99.0.12", "    IdentityFile /k/id",
                     "    IdentitiesOnly yes", "    UserKnownHostsFile /k/known",
                     "    GlobalKnownHostsFile /dev/null",
                     "    StrictHostKeyChecking yes", "    BatchMode yes"):
            self.assertIn(line, text.splitlines())

    def test_known_hosts_and_hosts(self):
        """
        known_hosts lists each node's host key under its name and address;
        the hosts file names the client and every node.
        """
        tmp_path = temporary_path(self)
        lab = _lab_model.Lab.from_environ({"FLOCKER_LAB_STATE": str(tmp_path)})
        nodes = [lab.node(1), lab.node(2)]
        for node in nodes:
            node.host_key.parent.mkdir(parents=True, exist_ok=True)
            node.host_key.with_name(node.name + ".pub").write_text(
                "ssh-ed25519 KEY%s comment\n" % (node.index,))
        self.assertEqual(
            _lab_model.known_hosts_text(nodes),
            "node1,10.99.0.11 ssh-ed25519 KEY1\n"
            "node2,10.99.0.12 ssh-ed25519 KEY2\n")
        self.assertEqual(
            _lab_model.hosts_text(lab, nodes).splitlines()[2:],
            ["10.99.0.2\tclient", "10.99.0.11\tnode1", "10.99.0.12\tnode2"])

    def test_pool_size_default(self):
        """
        Without ``FLOCKER_LAB_POOL_MIB`` a pool is 2 GiB.
        """
        self.assertEqual(_lab_model._pool_mib(None), 2048)

    def test_pool_size_given(self):
        """
        A whole number of MiB is taken as given.
        """
        self.assertEqual(_lab_model._pool_mib("6144"), 6144)

    @cases([(text,) for text in ["abc", "1.5", "-1", "10"]])
    def test_pool_size_bad(self, text):
        """
        Anything else stops with one line naming the variable.
        """
        with self.assertRaises(SystemExit) as caught:
            _lab_model._pool_mib(text)
        self.assertIn("FLOCKER_LAB_POOL_MIB", str(caught.exception))
