"""
Tests for :mod:`flocker._warm`: the warm server and the trampolines of the
node-side commands, with real processes (a server and trampolines started
as subprocesses, each test with its own socket name).
"""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

from flocker._warm import (
    MAX_REQUEST, _connect, code_digest, peer_allowed, server_name,
    server_trusted, serve_forever,
)

#: Bound of every wait in these tests (they finish far sooner).
WAIT = 20.0

_SERVER = (
    "import sys\n"
    "from flocker._warm import serve_forever\n"
    "from flocker.test._warm_target import ENTRY\n"
    "sys.exit(serve_forever(%r, idle=%r, entry_points=ENTRY, preload=()))\n")

_TRAMPOLINE = (
    "import sys\n"
    "from flocker._warm import run_command\n"
    "from flocker.test._warm_target import ENTRY\n"
    "sys.exit(run_command('warm-test', %r, name=%r, entry_points=ENTRY))\n")


def _name():
    return b"\0flocker-warm-test-" + uuid.uuid4().hex.encode("ascii")


def _wait_for(predicate, what):
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _answers(name):
    connection = _connect(name)
    if connection is None:
        return False
    connection.close()
    return True


def _server_pid(name):
    connection = _connect(name)
    try:
        pid, _, _ = struct.unpack("3i", connection.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return pid
    finally:
        connection.close()


def _alive(pid):
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def server():
    """
    A warm server running the test command, on a fresh name.
    """
    name = _name()
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER % (name, 60.0)],
        stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _answers(name) or process.poll() is not None,
                  "the warm server did not start")
        assert process.poll() is None
        yield name, process
    finally:
        process.kill()
        process.wait()


def _trampoline(name, argv, spawn=False, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", _TRAMPOLINE % (spawn, name)] + list(argv),
        **kwargs)


def test_runs_command_in_server_child(server, tmp_path):
    """
    A command run through the server gets the trampoline's arguments,
    environment, working directory, umask and standard streams, and runs
    in a child of the server.
    """
    name, process = server
    environ = dict(os.environ, WARM_TEST="value with spaces")
    trampoline = _trampoline(
        name, ["echo", "a b", "--x"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path),
        env=environ, preexec_fn=lambda: os.umask(0o027))
    out, err = trampoline.communicate(b"input\n", timeout=WAIT)
    assert trampoline.returncode == 0
    report = json.loads(out)
    assert report["argv"] == ["echo", "a b", "--x"]
    assert report["cwd"] == str(tmp_path)
    assert report["umask"] == 0o027
    assert report["env"] == "value with spaces"
    assert report["stdin"] == "input\n"
    assert report["ppid"] == process.pid
    assert report["pid"] != trampoline.pid
    assert err == b"to stderr\n"


def test_exit_status(server):
    """
    The trampoline exits with the command's exit status, and with its
    message when it exits with one.
    """
    name, _ = server
    assert _trampoline(name, ["exit", "7"]).wait(WAIT) == 7
    message = _trampoline(name, ["message"], stderr=subprocess.PIPE)
    _, err = message.communicate(timeout=WAIT)
    assert (message.returncode, err) == (1, b"it went wrong\n")


def test_dies_of_command_signal(server):
    """
    A command killed by a signal makes its trampoline die of the same
    signal.
    """
    name, _ = server
    assert _trampoline(name, ["term"]).wait(WAIT) == -signal.SIGTERM


def _waiting(name, tmp_path):
    pid_file = tmp_path / "pid"
    trampoline = _trampoline(name, ["wait", str(pid_file)])
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(),
              "the command did not start")
    return trampoline, int(pid_file.read_text())


def test_forwards_stop_signals(server, tmp_path):
    """
    SIGTERM sent to the trampoline reaches the command, and the trampoline
    dies of it as the command does.
    """
    name, _ = server
    trampoline, child = _waiting(name, tmp_path)
    trampoline.send_signal(signal.SIGTERM)
    assert trampoline.wait(WAIT) == -signal.SIGTERM
    _wait_for(lambda: not _alive(child), "the command survived")


def _state(pid):
    with open("/proc/%d/stat" % (pid,)) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_suspend_and_resume(server, tmp_path):
    """
    SIGTSTP (Ctrl-Z) stops the command and the trampoline; SIGCONT resumes
    both, and the command then ends as usual.
    """
    name, _ = server
    trampoline, child = _waiting(name, tmp_path)
    try:
        trampoline.send_signal(signal.SIGTSTP)
        _wait_for(lambda: _state(child) == "T" and
                  _state(trampoline.pid) == "T", "not both stopped")
        trampoline.send_signal(signal.SIGCONT)
        _wait_for(lambda: _state(child) != "T" and
                  _state(trampoline.pid) != "T", "not both resumed")
        trampoline.send_signal(signal.SIGTERM)
        assert trampoline.wait(WAIT) == -signal.SIGTERM
    finally:
        if trampoline.poll() is None:
            trampoline.kill()
            trampoline.wait(WAIT)


def test_killed_trampoline_kills_command(server, tmp_path):
    """
    When the trampoline is killed (SIGKILL, which it cannot pass on), the
    server kills the command: to its caller it was one process.
    """
    name, process = server
    trampoline, child = _waiting(name, tmp_path)
    trampoline.kill()
    trampoline.wait(WAIT)
    _wait_for(lambda: not _alive(child), "the command outlived its caller")
    assert process.poll() is None


def test_server_death_ends_commands(server, tmp_path):
    """
    When the server dies, the commands it runs die too, and their
    trampolines say so and exit with 255.
    """
    name, process = server
    pid_file = tmp_path / "pid"
    trampoline = _trampoline(name, ["wait", str(pid_file)],
                             stderr=subprocess.PIPE)
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(),
              "the command did not start")
    child = int(pid_file.read_text())
    process.kill()
    _, err = trampoline.communicate(timeout=WAIT)
    assert trampoline.returncode == 255
    assert b"the warm server stopped while running this command" in err
    _wait_for(lambda: not _alive(child), "the command outlived the server")


def test_refused_request_leaves_no_descriptors(server):
    """
    A request the server refuses (an unknown program, or not JSON) is
    answered by closing the connection, and the descriptors it brought are
    closed too: the server holds as many as before.
    """
    name, process = server

    def held():
        # Not sockets: the server's own connections come and go (the
        # fixture's probes); what a request brings are this process's
        # standard streams.
        directory = "/proc/%d/fd" % (process.pid,)
        targets = []
        for fd in os.listdir(directory):
            try:
                target = os.readlink(os.path.join(directory, fd))
            except FileNotFoundError:
                # Closed since it was listed: a connection.
                continue
            if not target.startswith("socket:"):
                targets.append(target)
        return sorted(targets)
    before = held()
    for message in (json.dumps({"program": "nope"}).encode("ascii"),
                    b"not json", b"[]"):
        connection = _connect(name)
        try:
            socket.send_fds(connection, [message], [0, 1, 2])
            assert connection.recv(100) == b""
        finally:
            connection.close()
    _wait_for(lambda: held() == before, "descriptors left in the server")


def test_cold_without_server(tmp_path):
    """
    With no server under the name, the command runs in the trampoline's own
    process, and no server is started unless asked for.
    """
    name = _name()
    trampoline = _trampoline(name, ["echo"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE)
    out, _ = trampoline.communicate(timeout=WAIT)
    assert json.loads(out)["pid"] == trampoline.pid
    assert not _answers(name)


def test_disabled_runs_cold(server):
    """
    ``FLOCKER_WARM=0`` runs the command cold even when a server answers.
    """
    name, _ = server
    trampoline = _trampoline(
        name, ["echo"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        env=dict(os.environ, FLOCKER_WARM="0"))
    out, _ = trampoline.communicate(timeout=WAIT)
    assert json.loads(out)["pid"] == trampoline.pid


def test_spawns_server():
    """
    Asked to, a trampoline that finds no server starts one (detached) for
    the commands after it, and runs its own command cold.
    """
    name = _name()
    trampoline = _trampoline(name, ["exit", "3"], spawn=True)
    assert trampoline.wait(WAIT) == 3
    _wait_for(lambda: _answers(name), "no server was started")
    pid = _server_pid(name)
    try:
        # A session of its own, not its starter's.
        assert os.getsid(pid) != os.getsid(0)
    finally:
        os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not _answers(name), "the server did not stop")


def test_idle_server_exits():
    """
    A server with no request for its idle time exits by itself.
    """
    name = _name()
    process = subprocess.Popen([sys.executable, "-c", _SERVER % (name, 0.5)])
    try:
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not _answers(name)


def test_one_server_per_name(server):
    """
    A second server under a name already served exits with status 1.
    """
    name, _ = server
    assert serve_forever(name, idle=1, preload=(),
                         entry_points={}) == 1


def test_code_digest_follows_files(tmp_path):
    """
    The digest changes when a Python file of the package changes, is added
    or removed, and not for files of other kinds or tests.
    """
    package = tmp_path / "package"
    (package / "test").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")

    def digest():
        return code_digest(str(package), executable="/py", path=[])
    first = digest()
    assert digest() == first
    (package / "notes.txt").write_text("n")
    (package / "test" / "test_a.py").write_text("t")
    assert digest() == first
    (package / "a.py").write_text("x = 22\n")
    second = digest()
    assert second != first
    (package / "b.py").write_text("")
    assert digest() != second
    assert code_digest(str(package), executable="/other",
                       path=[]) != digest()


def test_server_name_per_user_and_code():
    """
    The server name is in the abstract namespace and differs per user and
    per code digest.
    """
    name = server_name("0123456789abcdef", uid=5)
    assert name.startswith(b"\0")
    assert name != server_name("0123456789abcdef", uid=6)
    assert name != server_name("fedcba9876543210", uid=5)


def test_peer_allowed():
    """
    Only a peer with this process's user id and mount and user namespaces
    may have commands run.
    """
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        def same(pid, kind):
            return "%s:[1]" % (kind,)

        def other(differing):
            # Asked for this process's namespace first, then the peer's.
            calls = []

            def namespace(pid, kind):
                calls.append(kind)
                if kind == differing and calls.count(kind) == 2:
                    return "%s:[2]" % (kind,)
                return same(pid, kind)
            return namespace

        assert peer_allowed(left, namespace=same)
        assert not peer_allowed(left, namespace=other("mnt"))
        assert not peer_allowed(left, namespace=other("user"))
        assert not peer_allowed(left, uid=os.getuid() + 1, namespace=same)
        assert not peer_allowed(left, namespace=lambda pid, kind: None)
        assert peer_allowed(left)
    finally:
        left.close()
        right.close()


#: A user id no process of these tests runs as (``nobody`` on Debian);
#: ``setpriv`` runs a program as it without needing an account.
_OTHER_UID = 65534

#: A server run by another user: it listens on a name, takes one
#: connection and prints, as JSON, what it received there (the message and
#: how many descriptors came with it).
_IMPOSTOR = (
    "import json, socket, sys\n"
    "listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
    "listener.bind(bytes.fromhex(sys.argv[1]))\n"
    "listener.listen(1)\n"
    "print('listening', flush=True)\n"
    "connection, _ = listener.accept()\n"
    "message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)\n"
    "print(json.dumps({'message': message.decode('ascii', 'replace'),\n"
    "                  'fds': len(fds)}), flush=True)\n")

#: A client run by another user: it connects to a server, sends a request
#: for the test command with its own standard streams, and prints what the
#: server answered.
_INTRUDER = (
    "import json, socket, sys\n"
    "connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
    "connection.connect(bytes.fromhex(sys.argv[1]))\n"
    "request = json.dumps({'program': 'warm-test', 'argv': ['x', 'echo'],\n"
    "                      'environ': {}, 'cwd': '/', 'umask': 18})\n"
    "try:\n"
    "    socket.send_fds(connection, [request.encode('ascii')], [0, 1, 2])\n"
    "    answer = connection.recv(100).decode('ascii')\n"
    "except OSError:\n"
    "    answer = ''\n"
    "print(json.dumps({'answer': answer}), flush=True)\n")


def _as_other_user(script, name, **kwargs):
    """
    Run ``script`` with the system Python as :data:`_OTHER_UID`, with the
    hexadecimal socket ``name`` as its argument.
    """
    return subprocess.Popen(
        ["setpriv", "--reuid=%d" % (_OTHER_UID,),
         "--regid=%d" % (_OTHER_UID,), "--clear-groups",
         "/usr/bin/python3", "-I", "-c", script, name.hex()],
        cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, **kwargs)


needs_root = pytest.mark.skipif(
    os.getuid() != 0, reason="running as another user needs root")


@needs_root
def test_other_user_cannot_serve():
    """
    When another user holds the server's name, the trampoline sends it
    nothing (no request, no descriptors) and runs the command cold.
    """
    name = _name()
    impostor = _as_other_user(_IMPOSTOR, name)
    try:
        assert impostor.stdout.readline() == b"listening\n"
        trampoline = _trampoline(name, ["echo"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE)
        out, _ = trampoline.communicate(timeout=WAIT)
        received, _ = impostor.communicate(timeout=WAIT)
    finally:
        if impostor.poll() is None:
            impostor.kill()
            impostor.wait()
    assert json.loads(received) == {"message": "", "fds": 0}
    assert json.loads(out)["pid"] == trampoline.pid


@needs_root
def test_other_user_cannot_have_commands_run(server):
    """
    Another user's request to a server is refused: the connection closes
    and the command does not run (it would print on the intruder's
    standard output).
    """
    name, _ = server
    intruder = _as_other_user(_INTRUDER, name)
    out, _ = intruder.communicate(timeout=WAIT)
    assert json.loads(out) == {"answer": ""}


def test_trusted_server_user():
    """
    A server is trusted when it runs as this process's user or as root,
    and not otherwise (the peer here is this process).
    """
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        assert server_trusted(left)
        assert server_trusted(left, uid=os.getuid() + 1) == (
            os.getuid() == 0)
    finally:
        left.close()
        right.close()


def test_signals_never_go_to_a_named_pid(tmp_path):
    """
    A trampoline passes a signal on as a message to its server, and never
    signals a process id the server named: a server answering with the pid
    of an unrelated process cannot have it killed.
    """
    name = _name()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(name)
    listener.listen(1)
    victim = subprocess.Popen(["sleep", "60"])
    trampoline = None
    try:
        trampoline = _trampoline(name, ["echo"])
        connection, _ = listener.accept()
        connection.settimeout(WAIT)
        _, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST, 3)
        for fd in fds:
            os.close(fd)
        connection.send(json.dumps(
            {"started": True, "pid": victim.pid}).encode("ascii"))
        # The trampoline installs its handlers right after reading that.
        _wait_for(lambda: _handles(trampoline.pid, signal.SIGTERM),
                  "the trampoline did not take the command")
        trampoline.send_signal(signal.SIGTERM)
        assert json.loads(connection.recv(100)) == {
            "signal": int(signal.SIGTERM)}
        connection.send(json.dumps({"status": 0}).encode("ascii"))
        assert trampoline.wait(WAIT) == 0
        assert victim.poll() is None
    finally:
        if trampoline is not None and trampoline.poll() is None:
            trampoline.kill()
            trampoline.wait()
        victim.kill()
        victim.wait()
        listener.close()


def _handles(pid, number):
    """
    Whether process ``pid`` has a handler for signal ``number``.
    """
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (number - 1)))
    return False
