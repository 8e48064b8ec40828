"""
Tests for the node-to-node SSH key on a node (``flocker.volume._nodekey``),
and the forced command it may run (``flocker.volume._forced``).  Files
only; no ssh, no ZFS.
"""

import os
import shlex
import stat

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import InvalidModel, NodeKeyStatus
from flocker.testtools import temporary_directory
from flocker.node.testtools import make_node_key, make_public_key
from flocker.volume._forced import CommandRefused, peer_request
from flocker.volume._nodekey import (
    NODE_KEY_MARKER, NodeKeyError, NodeKeyStore,
    UnsafeForcedCommand, authorized_keys_line, default_state_directory,
    authorized_keys_lines, known_hosts_sources, public_key_of,
    replace_marked_lines,
)
from flocker._ssh import quote_argv

COMMAND = "/opt/flocker/bin/flocker-node-bridge"
TASK = "5ee19b1f-2ef1-4193-b24a-17f46fec22f4@/2/2"
NODE_ID = "0f8e3d0c-7d1e-4f39-9b7e-3c51e0a1c2d4"

# Lines an operator may have in authorized_keys: printable, no newline.
_other_lines = st.lists(
    st.text(st.characters(min_codepoint=32, max_codepoint=126),
            max_size=40).filter(
                lambda line: not line.split()[-1:] == [NODE_KEY_MARKER]),
    max_size=6)


#: One command of each allowed shape.
_ALLOWED = [
    "flocker-volume receive web",
    "flocker-volume --eliot-task %s receive web" % (TASK,),
]


def _store(case):
    root = temporary_directory(case)
    return NodeKeyStore(os.path.join(root, "state", "node-key"),
                        os.path.join(root, "home", ".ssh", "authorized_keys"),
                        COMMAND)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class AuthorizedKeysLineTests(SynchronousTestCase):
    """
    The marked ``authorized_keys`` lines.
    """

    def test_line(self):
        """
        The line restricts the key and forces ``flocker-node-bridge --peer``
        by absolute path, naming the caller, and ends with the marker; a
        line naming no caller cannot be made.
        """
        public = make_public_key()
        self.assertEqual(
            authorized_keys_line(public, COMMAND, caller="node-a"),
            ('restrict,command="%s --peer --caller node-a" %s %s\n' % (
                COMMAND, public, NODE_KEY_MARKER)).encode("ascii"))
        self.assertRaises(ValueError, authorized_keys_line, public, COMMAND)

    def test_from(self):
        """
        With sources, the key works only from them (``from=``); a source
        that is not a plain name or address is refused.
        """
        public = make_public_key()
        self.assertEqual(
            authorized_keys_line(public, COMMAND, ["10.0.0.1", "node2"],
                                 caller="node-a"),
            ('restrict,from="10.0.0.1,node2",command="%s --peer --caller '
             'node-a" %s %s\n' % (COMMAND, public,
                                  NODE_KEY_MARKER)).encode())
        for source in ["*", "!10.0.0.1", '10.0.0.1"', "a b", "", "::1"]:
            self.assertRaises(ValueError, authorized_keys_line, public,
                              COMMAND, [source], caller="node-a")

    def test_one_line_per_node_key(self):
        """
        Each node's own key is authorised once, ``from=`` that node's
        addresses, the forced command naming that node (so the key, not the
        address, says who calls); this node's own keys get no line; a
        caller that is not a node identity is refused.
        """
        mine, a_key, b_key = (make_public_key() for _ in range(3))
        key = make_node_key(peers=[("node-a", "10.0.0.1", a_key),
                                   ("node-b", "node2,10.0.0.2", b_key),
                                   ("node-c", "10.0.0.3", mine)])
        lines = authorized_keys_lines(key, COMMAND, {mine}).splitlines()
        self.assertEqual(lines, [
            ('restrict,from="%s",command="%s --peer --caller %s" %s '
             '%s' % (sources, COMMAND, node_id, public,
                     NODE_KEY_MARKER)).encode()
            for node_id, sources, public in [
                ("node-a", "10.0.0.1", a_key),
                ("node-b", "node2,10.0.0.2", b_key)]])
        self.assertRaises(ValueError, authorized_keys_line, a_key,
                          COMMAND, ["10.0.0.1"], caller="a b")

    def test_sources(self):
        """
        The sources are the names and addresses of the known_hosts lines,
        sorted, once each; comments, markers and hashed names are left
        out.
        """
        self.assertEqual(known_hosts_sources(
            "node2,10.0.0.2 ssh-ed25519 AAAA\n10.0.0.1 ssh-ed25519 BBBB\n"
            "# a comment\n@revoked 10.0.0.9 ssh-ed25519 C\n"
            "|1|abc= ssh-ed25519 D\n10.0.0.1 ssh-ed25519 BBBB\n"),
            ["10.0.0.1", "10.0.0.2", "node2"])

    def test_unsafe_command(self):
        """
        A path that is relative or holds quotes, spaces or shell
        metacharacters is refused.
        """
        public = make_public_key()
        for command in ["flocker-volume", '/a"b', "/a b", "/a;b", "/a/../b",
                        "/a$(x)"]:
            self.assertRaises(UnsafeForcedCommand, authorized_keys_line,
                              public, command, caller="node-a")

    def test_not_a_key(self):
        """
        A public key line that is not ed25519 is refused.
        """
        self.assertRaises(InvalidModel, authorized_keys_line,
                          "ssh-rsa AAAAB3Nza", COMMAND, caller="node-a")


class ReplaceMarkedLinesTests(SynchronousTestCase):
    """
    ``replace_marked_lines`` owns the marked line and nothing else.
    """

    LINE = b'restrict,command="/x ssh-command" ssh-ed25519 AAAA ' + (
        NODE_KEY_MARKER.encode("ascii") + b"\n")

    def test_added(self):
        """
        Without a marked line, the line is appended after the others.
        """
        self.assertEqual(replace_marked_lines(b"ssh-rsa A op\n", self.LINE),
                         b"ssh-rsa A op\n" + self.LINE)

    def test_replaced_in_place(self):
        """
        An old marked line is replaced where it was; further marked lines
        are removed.
        """
        old = b"ssh-ed25519 OLD " + NODE_KEY_MARKER.encode("ascii") + b"\n"
        self.assertEqual(
            replace_marked_lines(b"a\n" + old + b"b\n" + old, self.LINE),
            b"a\n" + self.LINE + b"b\n")

    def test_missing_final_newline(self):
        """
        A last line without a newline gets one before the marked line.
        """
        self.assertEqual(replace_marked_lines(b"a", self.LINE),
                         b"a\n" + self.LINE)

    @given(before=_other_lines, after=_other_lines,
           marked=st.integers(min_value=0, max_value=3))
    def test_others_untouched(self, before, after, marked):
        """
        Whatever else the file holds, the result is the other lines byte for
        byte, in order, plus exactly one marked line; applying it again
        changes nothing.
        """
        old = b"ssh-ed25519 OLD " + NODE_KEY_MARKER.encode("ascii") + b"\n"
        others = [(line + "\n").encode("ascii") for line in before + after]
        existing = b"".join(others[:len(before)] + [old] * marked
                            + others[len(before):])
        result = replace_marked_lines(existing, self.LINE)
        lines = result.splitlines(True)
        self.assertEqual([line for line in lines if line != self.LINE],
                         others)
        self.assertEqual(lines.count(self.LINE), 1)
        self.assertEqual(replace_marked_lines(result, self.LINE), result)


def _trust(store, *others):
    """
    :return: A ``NodeKey`` naming ``store``'s node (``node-self`` at
        10.0.0.9, its current and next keys) and ``others``, a list of
        ``(node_id, source, public_key)``.
    """
    status = store.status()
    own = [("node-self", "10.0.0.9", key) for key in (
        status.public_key, status.pending_public_key) if key is not None]
    return make_node_key(peers=own + list(others))


def _marked(store):
    with open(store.authorized_keys, "rb") as f:
        return [line for line in f.read().splitlines(True)
                if line.split()[-1:] == [NODE_KEY_MARKER.encode("ascii")]]


class NodeKeyStoreTests(SynchronousTestCase):
    """
    ``NodeKeyStore``: this node's own key pair, the installed trust, and
    rotation.
    """

    def test_nothing_yet(self):
        """
        A node whose agent never started has no key: no status, not
        ``installed``.
        """
        store = _store(self)
        self.assertEqual((store.status(), store.installed()), (None, False))

    def test_key_made_on_the_node(self):
        """
        ``ensure`` makes an ed25519 key pair here: the private key 0600 in a
        0700 directory, the public line beside it; the status carries the
        public key and nothing installed yet; a second call keeps the key.
        """
        store = _store(self)
        public = store.ensure()
        with open(store.identity_path, "rb") as f:
            self.assertEqual(public_key_of(f.read()), public)
        with open(store.public_key_path) as f:
            self.assertEqual(f.read(), "%s %s\n" % (public, NODE_KEY_MARKER))
        self.assertEqual(
            [_mode(p) for p in (store.directory, store.identity_path,
                                store.public_key_path)],
            [0o700, 0o600, 0o600])
        self.assertEqual(store.status(), NodeKeyStatus(public_key=public))
        self.assertEqual(store.ensure(), public)

    def test_each_node_its_own(self):
        """
        Two nodes' stores make two different keys.
        """
        self.assertNotEqual(_store(self).ensure(), _store(self).ensure())

    def test_damaged_key(self):
        """
        A key file that is not an OpenSSH ed25519 private key gives no
        status, and ``ensure`` a ``NodeKeyError`` naming the file (it is
        never silently replaced: an operator may have put it there).
        """
        store = _store(self)
        store.ensure()
        with open(store.identity_path, "wb") as f:
            f.write(b"garbage")
        self.assertIsNone(store.status())
        error = self.assertRaises(NodeKeyError, store.ensure)
        self.assertIn(store.identity_path, str(error))

    def test_install(self):
        """
        Installing writes the known_hosts and peers files 0600, one marked
        ``authorized_keys`` line per other node's key (none for this
        node's own), and the status then names the installed digest.
        """
        store = _store(self)
        store.ensure()
        other = make_public_key()
        key = _trust(store, ("node-a", "10.0.0.1", other))
        store.install(key)
        with open(store.known_hosts_path) as f:
            self.assertEqual(f.read(), key.known_hosts)
        with open(store.peers_path) as f:
            self.assertEqual(f.read(), key.peers)
        self.assertEqual([_mode(store.known_hosts_path),
                          _mode(store.peers_path)], [0o600, 0o600])
        self.assertEqual(_marked(store), [authorized_keys_line(
            other, COMMAND, ["10.0.0.1"], caller="node-a")])
        self.assertEqual(store.status().installed, key.digest())
        self.assertTrue(store.installed())

    def test_install_makes_the_key(self):
        """
        Installing on a node without a key makes it first.
        """
        store = _store(self)
        store.install(make_node_key())
        self.assertIsNotNone(store.status().public_key)

    def test_authorized_keys_created(self):
        """
        Without ``~/.ssh``, the directory (0700) and ``authorized_keys``
        (0600) are created holding only the marked lines.
        """
        store = _store(self)
        key = make_node_key()
        store.install(key)
        with open(store.authorized_keys, "rb") as f:
            self.assertEqual(f.read(), authorized_keys_lines(key, COMMAND))
        self.assertEqual((_mode(os.path.dirname(store.authorized_keys)),
                          _mode(store.authorized_keys)), (0o700, 0o600))

    def test_authorized_keys_kept(self):
        """
        Installing twice, then other keys, leaves the newest marked lines
        only, the operator's lines byte for byte and the file's permission
        bits.
        """
        store = _store(self)
        os.makedirs(os.path.dirname(store.authorized_keys))
        operator = b"ssh-rsa AAAAB3 operator@laptop\r\n# keep me  \n"
        with open(store.authorized_keys, "wb") as f:
            f.write(operator)
        os.chmod(store.authorized_keys, 0o640)
        store.install(make_node_key())
        store.install(make_node_key())
        newest = make_node_key()
        store.install(newest)
        store.install(newest)
        with open(store.authorized_keys, "rb") as f:
            self.assertEqual(f.read(), operator + authorized_keys_lines(
                newest, COMMAND))
        self.assertEqual(_mode(store.authorized_keys), 0o640)

    def test_authorized_line_removed(self):
        """
        A node whose marked ``authorized_keys`` line is gone (or names
        another forced command) reports nothing installed (its own key
        still), so the next deploy installs again.
        """
        store = _store(self)
        store.install(make_node_key())
        moved = NodeKeyStore(store.directory, store.authorized_keys,
                             "/usr/local/bin/flocker-node-bridge")
        self.assertIsNone(moved.status().installed)
        with open(store.authorized_keys, "wb") as f:
            f.write(b"ssh-rsa AAAAB3 operator\n")
        self.assertIsNone(store.status().installed)
        self.assertIsNotNone(store.status().public_key)

    def test_loose_directory_tightened(self):
        """
        An existing key directory open to others is made 0700.
        """
        store = _store(self)
        os.makedirs(store.directory)
        os.chmod(store.directory, 0o755)
        store.install(make_node_key())
        self.assertEqual(_mode(store.directory), 0o700)

    def test_no_temporary_files(self):
        """
        The atomic writes leave no temporary files behind.
        """
        store = _store(self)
        store.install(make_node_key())
        self.assertEqual(sorted(os.listdir(store.directory)),
                         ["id_ed25519", "id_ed25519.pub", "known_hosts",
                          "peers"])
        self.assertEqual(
            os.listdir(os.path.dirname(store.authorized_keys)),
            ["authorized_keys"])

    def test_unwritable(self):
        """
        A directory that cannot be written gives a ``NodeKeyError`` naming
        the problem.
        """
        root = temporary_directory(self)
        os.makedirs(root)
        blocker = os.path.join(root, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        store = NodeKeyStore(os.path.join(blocker, "node-key"),
                             os.path.join(root, "authorized_keys"), COMMAND)
        error = self.assertRaises(NodeKeyError, store.install,
                                  make_node_key())
        self.assertIn("cannot make this node's key", str(error))

    def test_rotation(self):
        """
        ``prepare_rotation`` makes a next key (0600) that the status lists
        while pushes keep the current one; ``finish_rotation`` is refused
        until the installed trust lists the next key, then switches to it
        (the private key file is the new key's, the old one is gone).
        """
        store = _store(self)
        old = store.ensure()
        store.install(_trust(store))
        pending = store.prepare_rotation()
        self.assertEqual(store.prepare_rotation(), pending)
        self.assertEqual(_mode(store.pending_path), 0o600)
        self.assertEqual(
            (store.status().public_key, store.status().pending_public_key),
            (old, pending))
        with open(store.identity_path, "rb") as f:
            self.assertEqual(public_key_of(f.read()), old)
        error = self.assertRaises(NodeKeyError, store.finish_rotation)
        self.assertIn("not yet installed", str(error))
        store.install(_trust(store))
        self.assertEqual(store.finish_rotation(), pending)
        with open(store.identity_path, "rb") as f:
            self.assertEqual(public_key_of(f.read()), pending)
        self.assertEqual(store.status(), NodeKeyStatus(public_key=pending))
        self.assertFalse(os.path.exists(store.pending_path))
        self.assertEqual(store.finish_rotation(), pending)

    def test_rotation_own_lines(self):
        """
        While a node rotates, neither of its own keys gets a line on it;
        after the switch, the trust naming only its new key leaves the other
        nodes' lines as they were.
        """
        store = _store(self)
        store.ensure()
        other = ("node-a", "10.0.0.1", make_public_key())
        store.prepare_rotation()
        store.install(_trust(store, other))
        self.assertEqual(_marked(store), [authorized_keys_line(
            other[2], COMMAND, ["10.0.0.1"], caller="node-a")])
        store.finish_rotation()
        store.install(_trust(store, other))
        self.assertEqual(_marked(store), [authorized_keys_line(
            other[2], COMMAND, ["10.0.0.1"], caller="node-a")])

    def test_state_directory(self):
        """
        The state directory is ``$FLOCKER_STATE_DIR``, else
        ``$FLOCKER_LOCK_DIR``, else ``/var/lib/flocker``.
        """
        self.assertEqual(
            [default_state_directory(e) for e in [
                {"FLOCKER_STATE_DIR": "/s", "FLOCKER_LOCK_DIR": "/l"},
                {"FLOCKER_LOCK_DIR": "/l"}, {}]],
            ["/s", "/l", "/var/lib/flocker"])


def allowed_command(text, pool):
    """
    :return: The words of ``text`` as :func:`peer_request` reads them (the
        task and the volume, with the words they came with), for comparing
        with the text.
    :raises CommandRefused: As ``peer_request`` does.
    """
    task, name = peer_request(text)
    return ["flocker-volume"] + ([] if task is None else [
        "--eliot-task", task]) + ["receive", name]


class PeerRequestTests(SynchronousTestCase):
    """
    ``peer_request`` lets through exactly what Flocker's pushes send.
    """

    def test_receive(self):
        """
        The negotiated push's receiving command is allowed, with or without
        the eliot task.
        """
        for text in ["flocker-volume receive web",
                     "flocker-volume --eliot-task %s receive web" % (TASK,)]:
            self.assertEqual(allowed_command(text, "flocker"), text.split())

    def test_bare_zfs_receive_refused(self):
        """
        A bare ``zfs receive POOL/NAME``, even into this node's pool, is
        refused: it would apply the stream's properties as root.
        """
        with self.assertRaises(CommandRefused) as caught:
            allowed_command("zfs receive flocker/web", "flocker")
        self.assertIn("zfs is not allowed", str(caught.exception))

    def test_acquire_refused(self):
        """
        ``acquire`` is not reachable with the node key: making a node the
        owner of a volume is the operator's.
        """
        text = ("flocker-volume acquire web --snapshot flocker-20261129 "
                "--node-id %s --json" % (NODE_ID,))
        with self.assertRaises(CommandRefused) as caught:
            allowed_command(text, "flocker")
        self.assertIn("acquire", str(caught.exception))

    def test_caller_not_from_the_request(self):
        """
        The caller cannot be named by the request (the key's line names
        it): a ``--caller`` in the command is refused.
        """
        self.assertRaises(CommandRefused, peer_request,
                          "flocker-volume receive --caller other web")

    def test_the_push_shapes(self):
        """
        What a push asks of the other node's agent (``AgentRemote``'s
        ``flocker-volume`` and the push's words), quoted as the SSH exec
        request carries it, is allowed as it is.
        """
        for words in [["--eliot-task", TASK, "receive", "web"],
                      ["receive", "web"]]:
            argv = ["flocker-volume"] + words
            self.assertEqual(allowed_command(quote_argv(argv).decode("ascii"),
                                             "flocker"),
                             argv)

    def test_refused(self):
        """
        Other commands, other subcommands, extra or missing arguments,
        ``-F``, other pools, quoting and shell metacharacters are refused.
        """
        for text in [
                "", "sh", "bash -c id", "flocker-volume list",
                "flocker-volume receive", "flocker-volume receive web extra",
                "flocker-volume --pool other receive web",
                "flocker-volume --eliot-task x receive web",
                "flocker-volume push web 10.0.0.3",
                "flocker-volume delete web",
                "flocker-volume receive web;id",
                "flocker-volume receive 'web'",
                "flocker-volume  receive web",
                "flocker-volume receive $(id)",
                "flocker-volume receive web && id",
                "flocker-volume receive ../web",
                "/usr/bin/flocker-volume receive web",
                "zfs receive -F flocker/web", "zfs receive other/web",
                "zfs receive flocker/web/x", "zfs destroy flocker/web",
                "zfs receive flocker", "zfs send flocker/web@s",
                "flocker-volume acquire web --snapshot s --node-id x",
                "flocker-volume --eliot-task %s acquire web --snapshot s "
                "--node-id x --json" % (TASK,),
                "flocker-volume receive web\nid"]:
            self.assertRaises(CommandRefused, allowed_command, text,
                              "flocker")

    def test_missing(self):
        """
        A login without a command (no ``SSH_ORIGINAL_COMMAND``) is refused.
        """
        self.assertRaises(CommandRefused, allowed_command, None, "flocker")

    @given(st.text(max_size=80))
    def test_anything(self, text):
        """
        Whatever the text, it is refused, or it is one of the allowed
        programs and its words are exactly the text's, split on single
        spaces, each free of shell metacharacters.
        """
        try:
            argv = allowed_command(text, "flocker")
        except CommandRefused:
            return
        self.assertEqual(argv, text.split(" "))
        self.assertEqual(argv[0], "flocker-volume")
        self.assertEqual(shlex.split(" ".join(map(shlex.quote, argv))), argv)

    @given(st.sampled_from(_ALLOWED), st.data())
    def test_word_dropped(self, allowed, data):
        """
        An allowed command missing any one of its words is refused.
        """
        words = allowed.split(" ")
        index = data.draw(st.integers(0, len(words) - 1))
        self.assertRaises(CommandRefused, allowed_command,
                          " ".join(words[:index] + words[index + 1:]),
                          "flocker")

    @given(st.sampled_from(_ALLOWED), st.data(),
           st.text("abcdefghijklmnopqrstuvwxyz0123456789-_./=,:@",
                   min_size=1, max_size=12))
    def test_word_added(self, allowed, data, extra):
        """
        An allowed command with any one word more, anywhere, is refused.
        """
        words = allowed.split(" ")
        index = data.draw(st.integers(0, len(words)))
        self.assertRaises(CommandRefused, allowed_command,
                          " ".join(words[:index] + [extra] + words[index:]),
                          "flocker")

    @given(st.sampled_from([";", "&", "|", "`", "$(", ">", "<", "'", '"',
                            "\\", "\n", "*", " "]),
           st.sampled_from(["flocker-volume receive web",
                            "zfs receive flocker/web",
                            "flocker-volume acquire web --snapshot s "
                            "--node-id n --json"]),
           st.integers(min_value=0, max_value=40))
    def test_metacharacters(self, special, allowed, position):
        """
        A shell metacharacter anywhere in an allowed command makes it
        refused.
        """
        position = min(position, len(allowed))
        text = allowed[:position] + special + allowed[position:]
        self.assertRaises(CommandRefused, allowed_command, text, "flocker")
