"""
End-to-end test of the nodes' own node-to-node SSH keys on the lab
(``admin/lab``), in the style of :mod:`flocker.cli.test.test_deploy_lab`:
``flocker-deploy`` runs in the client namespace only; the nodes are looked
at directly.

While it runs, the lab identity that every node otherwise has in its own
``~/.ssh`` is moved aside on the nodes (the client keeps its copy), so a
volume moving from node to node can only authenticate with the node's own
key: a successful move proves pushes use it.
"""

import hashlib
import json
import os
import re
import subprocess
import threading
import time

from twisted.conch.ssh.keys import Key

from flocker._model import NodeKey
from flocker.testtools import (
    ScenarioTestCase, class_temporary_path, shared_lab,
)
from flocker.volume._nodekey import NODE_KEY_MARKER

from .test_deploy_lab import _Scenario, _at_once, _changes

_INSTALL = re.compile(
    r"^(10\.99\.0\.\d+): install node-to-node SSH trust "
    r"\(known hosts: (\d+) nodes, node keys: (\d+)\)")


def _forged_request(owner):
    """
    :return: A push request line (no stream follows) naming ``owner`` as
        its sender.
    """
    return json.dumps({"snapshot": "flocker-forged", "base": None,
                       "owner": owner, "maximum_size": None}) + "\n"


class _KeyScenario(_Scenario):
    """
    :class:`_Scenario` looking at the nodes' own keys.
    """

    def ssh_directory(self, index):
        """
        :return: The ``~/.ssh`` of node ``index``, as a host path.
        """
        return os.path.join(self.nodes[index].home, ".ssh")

    def key_directory(self, index):
        """
        :return: Node ``index``'s node key directory.
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

    def copy(self, index, name):
        """
        :return: ``(owner, snapshots)`` of node ``index``'s copy of volume
            ``name``, as ZFS lists them.
        """
        dataset = "%s/%s" % (self.nodes[index].pool, name)
        return (
            subprocess.run(["zfs", "get", "-H", "-o", "value",
                            "flocker:owner", dataset], check=True,
                           stdout=subprocess.PIPE).stdout,
            subprocess.run(["zfs", "list", "-H", "-t", "snapshot", "-o",
                            "name", "-r", dataset], check=True,
                           stdout=subprocess.PIPE).stdout)

    def node_ids(self):
        """
        :return: The three nodes' identities, as they report them.
        """
        reports = self.reports()
        return [reports[self.node(i)]["node_id"] for i in range(3)]

    def forget_trust(self, index):
        """
        Remove node ``index``'s installed trust (its peers file and its
        marked ``authorized_keys`` lines); its own key stays.
        """
        peers = os.path.join(self.key_directory(index), "peers")
        if os.path.exists(peers):
            os.unlink(peers)
        path = os.path.join(self.ssh_directory(index), "authorized_keys")
        with open(path, "rb") as f:
            lines = f.read().splitlines(True)
        with open(path, "wb") as f:
            f.write(b"".join(line for line in lines
                             if not line.rstrip().endswith(
                                 NODE_KEY_MARKER.encode())))

    def public_key(self, index):
        """
        :return: Node ``index``'s own public key line, from its private key
            file.
        """
        with open(os.path.join(self.key_directory(index),
                               "id_ed25519")) as f:
            return Key.fromString(f.read()).public().toString(
                "openssh").decode()

    def node_ssh(self, index, target, words, identity=None, **kwargs):
        """
        Run ssh from node ``index`` to ``target`` with the node's own key
        (or ``identity``) and Flocker's known_hosts, as pushes do.

        :param kwargs: More ``subprocess.run`` arguments (``input``...).
        :return: The ``CompletedProcess``.
        """
        keys = self.key_directory(index)
        return self.lab.run(self.node(index), [
            "ssh", "-i", identity or os.path.join(keys, "id_ed25519"),
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
    The nodes' own keys on a three-node lab: each node's made there, the
    others authorised on every node by the first deploy, used by a volume
    move when nothing else could log in, limited to volume transfers and
    to the node they belong to, refreshed when a node's trust is off,
    rotated with no refused push, and left alone by a converged deploy.
    """

    @classmethod
    def setUpClass(cls):
        # The nodes' lab identities are moved aside for the scenario's
        # duration and put back at the end, with its applications and
        # volume removed.
        lab = shared_lab(minimum_nodes=3)
        state = cls.s = _KeyScenario(lab, str(class_temporary_path(cls)))
        hidden = []
        cls.addClassCleanup(_put_back, state, hidden)
        for index in range(3):
            identity = os.path.join(state.ssh_directory(index), "id_ed25519")
            if os.path.exists(identity):
                os.rename(identity, identity + ".nodekey-test")
                hidden.append(identity)
        # With the client's default key: the first step must see its own
        # key installed everywhere.
        state.clear()
        for index in range(3):
            # As on nodes no deploy reached yet: the first step installs
            # the trust everywhere (an earlier run on this lab left it).
            state.forget_trust(index)

    def check_trust(self, reports):
        """
        Every node has its own key (0600, in a 0700 directory, never in a
        report), reported as its public key; its ``authorized_keys`` has
        one marked, restricted, forced-command line per other node: that
        node's own key, ``from=`` its address, the forced command naming
        it; it reports the installed trust's digest.

        :return: ``dict`` of node index to its public key line.
        """
        s = self.s
        keys = {i: s.public_key(i) for i in range(3)}
        self.assertEqual(len(set(keys.values())), 3)
        ids = {i: reports[s.node(i)]["node_id"] for i in range(3)}
        for index in range(3):
            report = reports[s.node(index)]
            directory = s.key_directory(index)
            with open(os.path.join(directory, "known_hosts")) as f:
                known = f.read()
            with open(os.path.join(directory, "peers")) as f:
                peers = f.read()
            self.assertEqual(
                report["node_key"],
                {"public_key": keys[index], "pending_public_key": None,
                 "installed": NodeKey(known_hosts=known,
                                      peers=peers).digest()})
            self.assertEqual(
                sorted(line.split()[0] for line in known.splitlines()),
                sorted(s.addresses))
            marked = [line for line in s.authorized_lines(index)
                      if line.rstrip().endswith(NODE_KEY_MARKER.encode())]
            lines = set()
            for line in marked:
                match = re.match(
                    rb'^restrict,from="([0-9.]+)",'
                    rb'command="/\S+/flocker-node-bridge --peer --caller '
                    rb'(\S+)" (ssh-ed25519 \S+) ' + NODE_KEY_MARKER.encode()
                    + rb"\n$", line)
                self.assertTrue(match, marked)
                lines.add(tuple(part.decode() for part in match.groups()))
            self.assertEqual(
                lines,
                {(s.addresses[i], ids[i], keys[i])
                 for i in range(3) if i != index},
                marked)
            self.assertEqual(
                (oct(os.stat(directory).st_mode & 0o777),
                 oct(os.stat(os.path.join(directory, "id_ed25519"))
                     .st_mode & 0o777),
                 os.stat(os.path.join(directory, "id_ed25519")).st_uid),
                ("0o700", "0o600", 0))
            for other in range(3):
                with open(os.path.join(s.key_directory(other),
                                       "id_ed25519")) as f:
                    secret = f.read().splitlines()[1]
                self.assertNotIn(secret, json.dumps(report))
        return keys

    def test_01_installed(self):
        """
        The first deploy installs on every node, before anything else, the
        known_hosts of all three nodes and the other nodes' own keys (three
        node keys in all); see :meth:`check_trust` for what each node then
        has.
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
        self.assertEqual(
            (result.returncode, sorted(installs)),
            (0, [(a, "3", "3") for a in s.addresses]),
            output)
        # The installs ran before the volume was created.
        lines = result.stdout.splitlines()
        first_install = min(i for i, line in enumerate(lines)
                            if _INSTALL.match(line))
        create = [i for i, line in enumerate(lines)
                  if ": create volume " in line]
        self.assertTrue(create and first_install < create[0], output)
        self.check_trust(s.reports())
        for index in range(3):
            self.assertEqual(
                [line for line in s.authorized_lines(index)
                 if not line.rstrip().endswith(
                     NODE_KEY_MARKER.encode())],
                before[index])

    def test_02_move_uses_node_key(self):
        """
        With the nodes' lab identities moved aside, moving the application
        with its volume from node1 to node3 succeeds (the pushes logged in
        with node1's own key) and the data arrives intact.
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
        A node's key runs nothing but volume transfers: a shell command,
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
        A node cannot plant a dataset with a mountpoint (or any property)
        of its choosing on another node: a ``zfs send -p`` stream of a
        dataset mounted under /tmp, sent with node1's own key into a bare
        ``zfs receive`` or into ``flocker-volume receive`` (as node1, which
        node2 was told to expect that volume from, so that the stream
        check is what refuses it), is refused, and the target has no such
        dataset nor directory after.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        source, target = s.nodes[0].pool, s.nodes[1].pool
        node1_id = s.reports()[s.node(0)]["node_id"]
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
                                  "owner": node1_id, "maximum_size": None})
            bare = s.node_ssh(0, n2, ["zfs", "receive",
                                      "%s/%s" % (target, name)],
                              input=stream, text=False)
            s.nodes[1].run(["flocker-node", "expect", name, node1_id])
            negotiated = s.node_ssh(
                0, n2, ["flocker-volume", "receive", name],
                input=request.encode() + b"\n" + stream, text=False)
        finally:
            s.nodes[1].run(["flocker-node", "expect", name], check=False)
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
        A node cannot push into a copy that follows another node, nor into
        an owned copy: after the move to node3, node2 pushing the volume
        (as itself, with its own key) into node1 (whose copy follows node3)
        or node3 (the owner) is refused, naming the nodes, and neither copy
        changes (owner, snapshots).
        """
        s = self.s
        n1, n2, n3 = s.addresses
        name = s.names["web"]
        _, node2_id, node3_id = s.node_ids()
        before = [s.copy(0, name), s.copy(2, name)]
        request = _forged_request(node2_id)
        results = _at_once([
            (lambda target: s.node_ssh(
                1, target, ["flocker-volume", "receive", name],
                input=request), target) for target in (n1, n3)])
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
        self.assertEqual([s.copy(0, name), s.copy(2, name)], before)

    def test_03d_key_acts_as_its_node_only(self):
        """
        Node A's key cannot push as node B: node2, with its own key, pushing
        into node1's copy (which follows node3) while claiming to be node3
        is refused by node1's agent, naming both; node3's private key,
        stolen onto node2, is refused by node1's sshd (it is authorised
        from node3's address only); node1's copy is unchanged.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        name = s.names["web"]
        _, node2_id, node3_id = s.node_ids()
        before = s.copy(0, name)
        request = _forged_request(node3_id)
        claimed = s.node_ssh(1, n1, ["flocker-volume", "receive", name],
                             input=request)
        self.assertEqual(claimed.returncode, 1)
        self.assertIn(
            "the key of node %s cannot push as node %s" % (
                node2_id, node3_id),
            claimed.stderr,
            claimed.stderr)
        stolen = os.path.join(s.key_directory(1), "stolen-node3-key")
        with open(os.path.join(s.key_directory(2), "id_ed25519"),
                  "rb") as f:
            key = f.read()
        with open(os.open(stolen, os.O_WRONLY | os.O_CREAT, 0o600),
                  "wb") as f:
            f.write(key)
        try:
            forged = s.node_ssh(1, n1, ["flocker-volume", "receive", name],
                                identity=stolen, input=request)
        finally:
            os.unlink(stolen)
        self.assertEqual(forged.returncode, 255)
        self.assertIn("Permission denied", forged.stderr, forged.stderr)
        self.assertEqual(s.copy(0, name), before)

    def test_04_unknown_host_key_refused_then_refreshed(self):
        """
        A node whose Flocker known_hosts lacks the target refuses to push
        to it with one line naming the target; the next deploy sees the
        node's installed trust is off and installs it again there only.
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
        Deploying the same files again changes nothing, the nodes' trust
        included.
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
        With node2's marked lines removed by hand, ``--dry-run`` shows the
        trust installed on node2 only and changes nothing; the deploy then
        puts the lines back.
        """
        s = self.s
        path = os.path.join(s.ssh_directory(1), "authorized_keys")
        with open(path, "rb") as f:
            original = f.read()
        with open(path, "wb") as f:
            f.write(b"".join(line for line in original.splitlines(True)
                             if not line.rstrip().endswith(
                                 NODE_KEY_MARKER.encode())))
        before = s.reports()
        result = s.deploy("--dry-run", s.second)
        installs = [line.strip() for line in result.stdout.splitlines()
                    if ": install node-to-node SSH trust " in line]
        self.assertEqual(
            (result.returncode, len(installs), s.reports()),
            (0, 1, before),
            result.stdout + result.stderr)
        self.assertTrue(installs[0].startswith(s.addresses[1]), installs)
        result = s.deploy(s.second)
        with open(path, "rb") as f:
            self.assertEqual(
                (result.returncode, f.read()),
                (0, original),
                result.stdout + result.stderr)

    def test_07_rotation(self):
        """
        ``flocker-deploy --rotate-node-keys`` gives every node a new key
        while node3 keeps pushing the volume to node1 (as a standby would
        be fed), and not one push is refused; afterwards the trust names
        the new keys only (see :meth:`check_trust`), node1's old key is
        refused by node2's sshd, and the output names each node's old and new
        fingerprint.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        old = {i: s.public_key(i) for i in range(3)}
        with open(os.path.join(s.key_directory(0), "id_ed25519"),
                  "rb") as f:
            old_private = f.read()
        pushes = []
        done = threading.Event()

        def push_while_rotating():
            # At least one push; at most 40, each bounded by its timeout.
            while True:
                pushes.append(s.lab.run(
                    s.node(2), ["flocker-volume", "push", s.names["web"],
                                n1], check=False, timeout=120))
                if done.is_set() or len(pushes) >= 40:
                    return
        pusher = threading.Thread(target=push_while_rotating)
        pusher.start()
        try:
            result = s.lab.run_client(
                ["flocker-deploy", "--rotate-node-keys", s.second],
                check=False, timeout=300)
        finally:
            done.set()
            pusher.join()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertTrue(
            pushes and [p.returncode for p in pushes] == [0] * len(
                pushes),
            [p.stderr for p in pushes if p.returncode])
        keys = self.check_trust(s.reports())
        self.assertTrue(all(keys[i] != old[i] for i in range(3)))
        for i, address in enumerate(s.addresses):
            self.assertTrue(
                re.search(r"^%s: node key SHA256:\S+ -> SHA256:\S+$" % (
                    re.escape(address),), result.stdout, re.M),
                result.stdout)
        copy = os.path.join(s.key_directory(0), "old-key")
        with open(os.open(copy, os.O_WRONLY | os.O_CREAT, 0o600),
                  "wb") as f:
            f.write(old_private)
        try:
            refused = s.node_ssh(0, n2, ["flocker-volume", "receive",
                                         s.names["web"]], identity=copy,
                                 input="")
        finally:
            os.unlink(copy)
        self.assertEqual(
            (refused.returncode, "Permission denied" in refused.stderr),
            (255, True),
            refused.stderr)

    def test_08_moves_after_rotation(self):
        """
        After the rotation the volume moves back from node3 to node1 with
        the new keys, its data intact, and a second deploy is a no-op.
        """
        s = self.s
        result = s.deploy(s.first)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertTrue(
            any(" hand off volume " in line
                for line in _changes(result.stdout)),
            result.stdout)
        self.assertEqual(s.checksums(s.node(0)), s.data)
        result = s.deploy(s.first)
        self.assertIn(
            "cluster already converged: no changes",
            result.stdout,
            result.stdout + result.stderr)

    def test_09_first_copy_only_from_expected_sender(self):
        """
        A node cannot plant a first copy of a volume on a node that has
        none: with the volume moved to node3 and node1's copy deleted,
        node2 (with its own key, as itself) pushing a full stream of a
        dataset of that name into node1, which was not told to expect the
        volume from node2, is refused in one line naming node2, and node1
        has no copy nor partial one after; the real owner's push (the
        deploy moving the volume back to node1, which first tells node1 to
        expect it from node3) then works, the data intact, and leaves
        node1 expecting nothing once it owns the volume.
        """
        s = self.s
        n1, n2, n3 = s.addresses
        name = s.names["web"]
        result = s.deploy(s.second)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        s.nodes[0].run(["flocker-volume", "delete", name])
        _, node2_id, _ = s.node_ids()
        self.assertEqual(s.reports()[s.node(0)]["expected_senders"], {})
        planted = "%s/%s" % (s.nodes[1].pool, name)
        subprocess.run(["zfs", "create", planted], check=True)
        try:
            subprocess.run(["zfs", "snapshot", planted + "@s1"], check=True)
            stream = subprocess.run(["zfs", "send", planted + "@s1"],
                                    check=True,
                                    stdout=subprocess.PIPE).stdout
        finally:
            _destroy(planted)
        request = json.dumps({"snapshot": "s1", "base": None,
                              "owner": node2_id, "maximum_size": None})
        pushed = s.node_ssh(1, n1, ["flocker-volume", "receive", name],
                            input=request.encode() + b"\n" + stream,
                            text=False)
        lines = pushed.stderr.decode().strip().splitlines()
        self.assertEqual((pushed.returncode, len(lines)), (1, 1),
                         pushed.stderr)
        self.assertIn("was not told to expect it from node %s" % (node2_id,),
                      lines[0])
        held = subprocess.run(
            ["zfs", "list", "-H", "-o", "name", "-r", s.nodes[0].pool],
            check=True, stdout=subprocess.PIPE, text=True).stdout.split()
        self.assertEqual(
            [dataset for dataset in held if name in dataset], [], held)
        result = s.deploy(s.first)
        done = _changes(result.stdout)
        self.assertEqual(
            (result.returncode,
             "%s: expect %s from %s" % (n1, name, n3) in done,
             any(" hand off volume " in line for line in done)),
            (0, True, True),
            result.stdout + result.stderr)
        self.assertEqual(s.checksums(s.node(0)), s.data)
        self.assertEqual(s.reports()[s.node(0)]["expected_senders"], {})


def _destroy(dataset):
    """
    Destroy a dataset and its snapshots, trying again while zfs-fuse says
    it is busy (right after a mount or unmount).
    """
    for attempt in range(20):
        if subprocess.run(["zfs", "destroy", "-r", dataset],
                          stderr=subprocess.PIPE).returncode == 0:
            return
        time.sleep(0.25)
    raise AssertionError("cannot destroy %s" % (dataset,))
