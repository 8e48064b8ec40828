"""
End-to-end test of the node-to-node SSH key on the lab (``admin/lab``), in
the style of :mod:`flocker.cli.test.test_deploy_lab`: ``flocker-deploy``
runs in the client namespace only; the nodes are looked at directly.

While it runs, the lab identity that every node otherwise has in its own
``~/.ssh`` is moved aside on the nodes (the client keeps its copy), so a
volume moving from node to node can only authenticate with the key the
deploy installed: a successful move proves pushes use it.
"""

import hashlib
import json
import os
import re
import subprocess

from twisted.conch.ssh.keys import Key

from flocker._model import known_hosts_digest, public_key_fingerprint
from flocker.testtools import (
    ScenarioTestCase, class_temporary_path, shared_lab,
)
from flocker.volume._nodekey import NODE_KEY_MARKER

from .test_deploy_lab import _Scenario, _at_once, _changes

_INSTALL = re.compile(
    r"^(10\.99\.0\.\d+): install node-to-node SSH key (SHA256:\S+) "
    r"\(known hosts: (\d+) nodes\)")


class _KeyScenario(_Scenario):
    """
    :class:`_Scenario` deploying with its own node key file.

    :ivar str key_path: The node key the deploys use (``--node-key``).
    """

    def __init__(self, lab, directory):
        _Scenario.__init__(self, lab, directory)
        self.key_path = os.path.join(directory, "node_key")

    def deploy(self, *argv, **kwargs):
        return _Scenario.deploy(self, "--node-key", self.key_path, *argv,
                                **kwargs)

    def ssh_directory(self, index):
        """
        :return: The ``~/.ssh`` of node ``index``, as a host path.
        """
        return os.path.join(self.nodes[index].home, ".ssh")

    def key_directory(self, index):
        """
        :return: Node ``index``'s installed node key directory.
        """
        return os.path.join(self.nodes[index].env["FLOCKER_LOCK_DIR"],
                            "node-key")

    def authorized_lines(self, index):
        """
        :return: Node ``index``'s ``authorized_keys`` lines (``bytes``).
        """
        path = os.path.join(self.ssh_directory(index), "authorized_keys")
        with open(path, "rb") as f:
            return f.read().splitlines(True)

    def node_ssh(self, index, target, words, **kwargs):
        """
        Run ssh from node ``index`` to ``target`` with the installed node
        key and Flocker's known_hosts, as pushes do.

        :param kwargs: More ``subprocess.run`` arguments (``input``...).
        :return: The ``CompletedProcess``.
        """
        keys = self.key_directory(index)
        return self.lab.run(self.node(index), [
            "ssh", "-i", os.path.join(keys, "id_ed25519"),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + os.path.join(keys, "known_hosts"),
            "-o", "GlobalKnownHostsFile=/dev/null", "-T",
            "root@" + target] + words, check=False, timeout=60, **kwargs)


def _put_back(state, hidden):
    """
    Put the nodes' lab identities back, and remove the scenario's
    applications and volume.
    """
    for identity in hidden:
        os.rename(identity + ".nodekey-test", identity)
    state.deploy("--yes", state.deployment(
        "teardown.yml", [(a, []) for a in state.addresses]))
    for node in state.nodes:
        node.run(["flocker-volume", "delete", state.names["web"]],
                 check=False)


class NodeKeyScenarioTests(ScenarioTestCase):
    """
    The node-to-node key on a three-node lab: installed by the first
    deploy, used by a volume move when nothing else could log in, limited
    to volume transfers, refreshed when a node's known_hosts is off, and
    left alone by a converged deploy.
    """

    @classmethod
    def setUpClass(cls):
        # The nodes' lab identities are moved aside for the scenario's
        # duration and put back at the end, with its applications and
        # volume removed.
        lab = shared_lab()
        if len(lab.nodes) < 3:
            raise AssertionError("the scenario needs a lab of 3 nodes")
        state = cls.s = _KeyScenario(lab, str(class_temporary_path(cls)))
        hidden = []
        cls.addClassCleanup(_put_back, state, hidden)
        for index in range(3):
            identity = os.path.join(state.ssh_directory(index), "id_ed25519")
            if os.path.exists(identity):
                os.rename(identity, identity + ".nodekey-test")
                hidden.append(identity)
        if any(report["applications"] or report["routes"]
               for report in state.reports().values()):
            # With the client's default key: the first step must see its
            # own key installed everywhere.
            result = _Scenario.deploy(state, "--yes", state.deployment(
                "start.yml", [(a, []) for a in state.addresses]))
            if result.returncode != 0:
                raise AssertionError(result.stdout + result.stderr)

    def test_01_installed(self):
        """
        A deploy with a new key file creates it (0600) and installs it on
        every node, with a known_hosts of all three nodes, before anything
        else; each node then reports its fingerprint and known_hosts
        digest and has one marked, restricted, forced-command line per node
        in ``authorized_keys`` (``from=`` that node's address, the forced
        command naming that node), the lab's own line untouched.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        before = [[line for line in s.authorized_lines(i)
                   if not line.rstrip().endswith(NODE_KEY_MARKER.encode())]
                  for i in range(3)]
        s.first = s.deployment("first.yml", [(n1, ["web"]), (n2, []),
                                             (n3, [])])
        result = s.deploy(s.first)
        output = result.stdout + result.stderr
        installs = [m.groups() for m in map(_INSTALL.match,
                                            result.stdout.splitlines()) if m]
        with open(s.key_path + ".pub") as f:
            public = " ".join(f.read().split()[:2])
        fingerprint = public_key_fingerprint(public)
        self.assertEqual(
            (result.returncode, sorted(installs),
             oct(os.stat(s.key_path).st_mode & 0o777)),
            (0, [(a, fingerprint, "3") for a in s.addresses], "0o600"),
            output)
        # The installs ran before the volume was created.
        lines = result.stdout.splitlines()
        first_install = min(i for i, line in enumerate(lines)
                            if _INSTALL.match(line))
        create = [i for i, line in enumerate(lines)
                  if ": create volume " in line]
        self.assertTrue(create and first_install < create[0], output)
        reports = s.reports()
        for index in range(3):
            report = reports[s.node(index)]
            keys = s.key_directory(index)
            with open(os.path.join(keys, "known_hosts")) as f:
                known = f.read()
            marked = [line for line in s.authorized_lines(index)
                      if line.rstrip().endswith(NODE_KEY_MARKER.encode())]
            others = [line for line in s.authorized_lines(index)
                      if line not in marked]
            with open(os.path.join(keys, "callers")) as f:
                callers_text = f.read()
            self.assertEqual(
                report["node_key"],
                {"fingerprint": fingerprint,
                 "known_hosts_digest": known_hosts_digest(
                     known + callers_text)})
            self.assertEqual(
                sorted(line.split()[0] for line in known.splitlines()),
                sorted(s.addresses))
            self.assertTrue(len(marked) == 3 and others == before[index])
            # One line per node: usable from its address only, its forced
            # command naming it.
            callers = set()
            for line in marked:
                match = re.match(
                    rb'^restrict,from="([0-9.]+)",'
                    rb'command="/\S+/flocker-node-bridge --peer --caller '
                    rb'(\S+)" ' + re.escape(public.encode()) + rb" " +
                    NODE_KEY_MARKER.encode() + rb"\n$", line)
                self.assertTrue(match, marked)
                callers.add((match.group(1).decode(),
                             match.group(2).decode()))
            self.assertEqual(
                callers,
                {(address, reports[s.node(i)]["node_id"])
                 for i, address in enumerate(s.addresses)},
                marked)
            self.assertEqual(
                oct(os.stat(os.path.join(keys, "id_ed25519")).st_mode
                    & 0o777),
                "0o600")
            with open(os.path.join(keys, "id_ed25519")) as f:
                self.assertEqual(
                    Key.fromString(f.read()).public().toString(
                        "openssh").decode(),
                    public)
            # The private key is in no report.
            with open(s.key_path) as f:
                secret = f.read().splitlines()[1]
            self.assertNotIn(secret, json.dumps(report))

    def test_02_move_uses_node_key(self):
        """
        With the nodes' own identities moved aside, moving the application
        with its volume from node1 to node3 succeeds (the pushes logged in
        with the node key) and the data arrives intact.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        content = os.urandom(1 << 16)
        s.exec_in(s.node(0), "web", ["dd", "of=/data/blob.bin"],
                  input=content, text=False)
        s.data["/data/blob.bin"] = hashlib.sha256(content).hexdigest()
        s.second = s.deployment("second.yml", [(n1, []), (n2, []),
                                               (n3, ["web"])])
        result = s.deploy(s.second)
        done = _changes(result.stdout)
        self.assertEqual(
            (result.returncode,
             any(" hand off volume " in line for line in done),
             [line for line in result.stdout.splitlines()
              if _INSTALL.match(line)]),
            (0, True, []),
            result.stdout + result.stderr)
        self.assertEqual(s.checksums(s.node(2)), s.data)

    def test_03_forced_command(self):
        """
        The node key runs nothing but volume transfers: a shell command,
        another flocker-volume subcommand, a ``zfs receive -F`` and an
        ``acquire`` (which would make the calling node's copy the owned
        one) are refused by the receiving agent behind the forced command,
        with one line and exit status 1.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        pool = s.nodes[1].pool
        results = _at_once([
            (lambda words: s.node_ssh(0, n2, words), words) for words in [
                ["id"], ["flocker-volume", "list"],
                ["zfs", "receive", "-F", pool + "/" + s.names["web"]],
                ["flocker-volume", "receive", s.names["web"], ";", "id"],
                ["flocker-volume", "acquire", s.names["web"], "--snapshot",
                 "s1", "--node-id", "x", "--json"]]])
        self.assertEqual(
            [(r.returncode, "flocker-node-bridge: refused"
              in r.stderr, r.stdout) for r in results],
            [(1, True, "")] * 5,
            [(r.stderr, r.stdout) for r in results])

    def test_03b_property_stream_refused(self):
        """
        A node holding the node key cannot plant a dataset with a
        mountpoint (or any property) of its choosing on another node: a
        ``zfs send -p`` stream of a dataset mounted under /tmp, sent into
        a bare ``zfs receive`` or into ``flocker-volume receive``, is
        refused, and the target has no such dataset nor directory after.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        source, target = s.nodes[0].pool, s.nodes[1].pool
        name = "attack" + s.names["web"][-6:]
        planted = "/tmp/flocker-planted-" + name
        subprocess.run(["zfs", "create", "-o", "mountpoint=" + planted,
                        "-o", "setuid=off", "%s/%s" % (source, name)],
                       check=True)
        try:
            subprocess.run(["zfs", "snapshot", "%s/%s@s1" % (source, name)],
                           check=True)
            subprocess.run(["zfs", "unmount", "%s/%s" % (source, name)],
                           check=True)
            os.rmdir(planted)
            stream = subprocess.run(
                ["zfs", "send", "-p", "%s/%s@s1" % (source, name)],
                check=True, stdout=subprocess.PIPE).stdout
            request = json.dumps({"snapshot": "s1", "base": None,
                                  "owner": "x", "maximum_size": None})
            bare = s.node_ssh(0, n2, ["zfs", "receive",
                                      "%s/%s" % (target, name)],
                              input=stream, text=False)
            negotiated = s.node_ssh(
                0, n2, ["flocker-volume", "receive", name],
                input=request.encode() + b"\n" + stream, text=False)
        finally:
            subprocess.run(["zfs", "destroy", "-r",
                            "%s/%s" % (source, name)], check=False)
        found = subprocess.run(["zfs", "list", "%s/%s" % (target, name)],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        self.assertEqual(
            (bare.returncode, b"refused" in bare.stderr),
            (1, True),
            bare.stderr)
        self.assertEqual(
            (negotiated.returncode,
             b"carries properties" in negotiated.stderr),
            (1, True),
            negotiated.stderr)
        self.assertTrue(found.returncode != 0 and not os.path.exists(planted))

    def test_03c_push_into_others_copy_refused(self):
        """
        A node holding the node key cannot push into a copy that follows
        another node, nor into an owned copy: after the move to node3,
        node2 pushing the volume into node1 (whose copy follows node3) or
        node3 (the owner) is refused, naming the nodes, and neither copy
        changes (owner, snapshots).
        """
        s = self.s
        n1, n2, n3 = s.addresses
        name = s.names["web"]
        reports = s.reports()
        node2_id = reports[s.node(1)]["node_id"]
        node3_id = reports[s.node(2)]["node_id"]

        def copy(index):
            dataset = "%s/%s" % (s.nodes[index].pool, name)
            return (
                subprocess.run(["zfs", "get", "-H", "-o", "value",
                                "flocker:owner", dataset], check=True,
                               stdout=subprocess.PIPE).stdout,
                subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o",
                                "name", "-r", dataset], check=True,
                               stdout=subprocess.PIPE).stdout)
        before = [copy(0), copy(2)]
        request = json.dumps({"snapshot": "flocker-forged", "base": None,
                              "owner": node2_id, "maximum_size": None})
        results = _at_once([
            (lambda target: s.node_ssh(
                1, target, ["flocker-volume", "receive", name],
                input=request + "\n"), target) for target in (n1, n3)])
        into_follower, into_owner = results
        self.assertEqual((into_follower.returncode, into_owner.returncode),
                         (1, 1))
        self.assertIn(
            "follows node %s; node %s may not push it" % (
                node3_id, node2_id),
            into_follower.stderr,
            into_follower.stderr)
        self.assertIn("owned by this node", into_owner.stderr,
                      into_owner.stderr)
        self.assertEqual([copy(0), copy(2)], before)

    def test_04_unknown_host_key_refused_then_refreshed(self):
        """
        A node whose Flocker known_hosts lacks the target refuses to push
        to it with one line naming the target; the next deploy sees the
        node's known_hosts digest is off and installs it again there only.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        path = os.path.join(s.key_directory(2), "known_hosts")
        with open(path) as f:
            known = f.read()
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in known.splitlines()
                            if line.split()[0] != n2))
        push = s.lab.run(s.node(2), ["flocker-volume", "push",
                                     s.names["web"], n2], check=False,
                         timeout=120)
        lines = push.stderr.strip().splitlines()
        self.assertEqual((push.returncode, len(lines)), (1, 1), push.stderr)
        self.assertTrue(
            lines[0].startswith("flocker-volume: error: node %s: its SSH "
                                "host key is not the one " % (n2,)),
            lines)
        result = s.deploy(s.second)
        installs = [m.group(1) for m in map(_INSTALL.match,
                                            result.stdout.splitlines()) if m]
        with open(path) as f:
            self.assertEqual(
                (result.returncode, installs, f.read()),
                (0, [n3], known),
                result.stdout + result.stderr)

    def test_05_converged_is_noop(self):
        """
        Deploying the same files again changes nothing, node keys included.
        """
        s = self.s
        before = s.reports()
        result = s.deploy(s.second)
        self.assertEqual(
            (result.returncode,
             "cluster already converged: no changes" in result.stdout,
             s.reports()),
            (0, True, before),
            result.stdout + result.stderr)

    def test_06_dry_run_shows_install(self):
        """
        With another key file, ``--dry-run`` shows the key installed on
        every node, writes no key file and changes no node.
        """
        s = self.s
        other = os.path.join(s.directory, "other_key")
        before = s.reports()
        result = s.lab.run_client(
            ["flocker-deploy", "--node-key", other, "--dry-run", s.second,
             s.applications], check=False, timeout=120)
        installs = [line.strip() for line in result.stdout.splitlines()
                    if ": install node-to-node SSH key " in line]
        self.assertEqual(
            (result.returncode, len(installs), os.path.exists(other),
             s.reports()),
            (0, 3, False, before),
            result.stdout + result.stderr)

