"""
Warm starts for Flocker's commands: ``flocker-node``, ``flocker-volume``
and ``flocker-deploy``.

Every remote step of a deploy and every push runs one of the first two on a
node, and a cold start (the interpreter, then Twisted, treq, eliot,
pyrsistent and Flocker itself) costs about half a second of CPU there: more
than the work of a no-op deploy, and a good part of a move's downtime; the
deploy client pays as much again on the operator's machine.  So the console
scripts are small trampolines (:func:`flocker_node`, :func:`flocker_volume`,
:func:`flocker_deploy`) that import nothing of Flocker's: each asks the
machine's *warm server* to run the command instead, and only starts cold
when there is no server.

The warm server is a process that imported the commands' modules once, did
nothing else (no reactor, no thread, no open file), and forks a child for
each request.  The child takes the trampoline's standard input, output and
error (passed as file descriptors), its arguments, environment, working
directory and umask, and runs the command's real entry point exactly as a
cold start would; its exit status goes back to the trampoline, which exits
with it.  The server kills the child if the trampoline dies, and the
trampoline passes on the signals that ask a command to stop, so to the
caller (``sshd``, a shell) the trampoline behaves as the command itself.
Modules that make the reactor when imported (Conch does) are not loaded by
the server: each command imports them, and what they import before that.

Who starts it: a node-side command, or a ``flocker-deploy`` that goes to
the nodes, that found none, once it ended (so that the server's start-up
does not slow it down); ``flocker-deploy --check`` and the like do not.
It stops by itself after :data:`IDLE_SECONDS` without a request, and as
soon as Flocker's code or the Python it runs on changed (the server's name
includes a digest of both, so a trampoline never reaches a server running
other code).  It is only a cache: killing it costs the next command a cold
start, and ends the commands it was running (their trampolines say so and
exit with 255), which is what killing those commands would have done.

Who may use it: the server listens on an abstract Unix socket, which
belongs to the network namespace it was started in, and serves only peers
with its own user id and mount namespace.  So a lab node never reaches
another node's server, and a container sharing the host's network cannot
have a command run outside its own mount namespace.

Who may serve: any local user can bind an abstract name first (the name is
predictable and listed in ``/proc/net/unix``).  So a trampoline checks,
with ``SO_PEERCRED``, that whoever listens on the name runs as its own user
(or root) before it sends anything, and runs cold otherwise: its standard
streams, arguments and environment never reach another user.  It never
signals a process a server names either: it passes signals on as messages
over its connection, and the server signals only the child it forked.

``FLOCKER_WARM=0`` in the environment makes a command start cold and never
start a server.
"""

import errno
import json
import os
import select
import signal
import socket
import sys
import time

__all__ = [
    "flocker_deploy", "flocker_node", "flocker_volume", "run_command",
    "serve_forever", "code_digest", "server_name", "peer_allowed",
    "server_trusted", "IDLE_SECONDS", "ENTRY_POINTS",
]

#: A server with no request for this long exits.
IDLE_SECONDS = 3600

#: How often an idle server checks that its code is still what is installed.
CHECK_SECONDS = 30

#: The commands a warm server runs: console script name to
#: ``(module, function)``.  The server imports these modules when it starts.
ENTRY_POINTS = {
    "flocker-deploy": ("flocker.cli.script", "flocker_deploy_main"),
    "flocker-node": ("flocker.node.script", "flocker_node_main"),
    "flocker-volume": ("flocker.volume.script", "flocker_volume_main"),
}

#: Options of ``flocker-deploy`` that never reach a node: such a run does
#: not start a server.
_LOCAL_ONLY = ("--check", "--help", "-h", "--version")

#: Modules imported by a server besides the entry points' own, because every
#: command imports them when it runs (the reactor's module, not the
#: reactor: a reactor made before ``fork`` would be shared by the children).
PRELOAD = ("twisted.internet.epollreactor", "twisted.internet.task",
           "twisted.internet.endpoints", "twisted.conch.ssh.transport",
           "twisted.conch.ssh.keys", "treq", "yaml", "eliot.twisted")

#: Signals a trampoline passes on to the command it runs (besides
#: ``SIGTSTP``, on which it also stops itself, and ``SIGCONT``).
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                     signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)

#: Signals a server passes on to a command when its trampoline asks.
_PASSED_ON = frozenset(
    int(number) for number in
    FORWARDED_SIGNALS + (signal.SIGTSTP, signal.SIGCONT))

#: The largest request a server reads (arguments and environment, as JSON).
MAX_REQUEST = 1 << 20

_DISABLE = "FLOCKER_WARM"
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def code_digest(package=_PACKAGE, executable=None, path=None):
    """
    A digest of the code a command would run: the interpreter, and the name,
    size and modification time of every Python file of the package, and the
    modification times of the directories on ``sys.path`` but the first
    (installing or removing a dependency changes its ``site-packages``).

    :param str package: Directory of the ``flocker`` package.
    :param executable: The interpreter (``sys.executable`` if ``None``).
    :param path: Module search path (``sys.path`` if ``None``).
    :return: 16 hexadecimal digits (``str``).
    """
    import hashlib
    digest = hashlib.sha256()
    digest.update(os.fsencode(executable or sys.executable))
    # Not the first entry: it is the script's directory or the working
    # directory, which differ between a command and its server.
    for entry in (sys.path if path is None else path)[1:]:
        try:
            mtime = os.stat(entry or ".").st_mtime_ns
        except OSError:
            continue
        digest.update(b"\0path\0%s\0%d" % (os.fsencode(entry), mtime))
    for directory, subdirectories, files in os.walk(package):
        subdirectories.sort()
        subdirectories[:] = [d for d in subdirectories
                             if d not in ("__pycache__", "test")]
        for name in sorted(files):
            if name.endswith(".py"):
                full = os.path.join(directory, name)
                try:
                    info = os.stat(full)
                except OSError:
                    continue
                digest.update(b"\0file\0%s\0%d\0%d" % (
                    os.fsencode(os.path.relpath(full, package)),
                    info.st_size, info.st_mtime_ns))
    return digest.hexdigest()[:16]


def server_name(digest=None, uid=None):
    """
    The abstract socket name of the warm server for this user and code.

    :param digest: :func:`code_digest` (computed if ``None``).
    :param uid: User id (this process's if ``None``).
    :return: ``bytes`` beginning with a NUL (Linux's abstract namespace).
    """
    return b"\0flocker-warm-%d-%s" % (
        os.getuid() if uid is None else uid,
        (digest or code_digest()).encode("ascii"))


def flocker_node():
    """
    Console script ``flocker-node``: run it warm if this node has a warm
    server, else cold (then starting a server).
    """
    _trampoline("flocker-node", spawn=True)


def flocker_deploy():
    """
    Console script ``flocker-deploy``: run it warm if this machine has a
    warm server, else cold (starting a server when it goes to the nodes).
    """
    _trampoline("flocker-deploy", spawn=not any(
        argument in _LOCAL_ONLY for argument in sys.argv[1:]))


def flocker_volume():
    """
    Console script ``flocker-volume``: run it warm if this node has a warm
    server, else cold (then starting a server).
    """
    _trampoline("flocker-volume", spawn=True)


def _trampoline(program, spawn):
    sys.exit(run_command(program, spawn))


def _run_entry(entry_points, program):
    import importlib
    module, function = entry_points[program]
    return getattr(importlib.import_module(module), function)()


def run_command(program, spawn, name=None, entry_points=None):
    """
    Run a command through this node's warm server, or cold (in this process)
    if there is none or ``FLOCKER_WARM=0``.

    :param str program: A key of ``entry_points``.
    :param bool spawn: Start a warm server if there is none, once this
        command ended (it serves the commands after this one).
    :param name: The server's socket name (:func:`server_name` if ``None``).
    :param entry_points: Like :data:`ENTRY_POINTS` (the default), for cold
        runs; a server uses its own.
    :return: The command's exit status, for ``sys.exit``.
    """
    entry_points = ENTRY_POINTS if entry_points is None else entry_points
    if os.environ.get(_DISABLE) == "0":
        return _run_entry(entry_points, program)
    name = server_name() if name is None else name
    connection = _connect(name)
    if connection is not None and not server_trusted(connection):
        # Another user holds the name: nothing of this command goes there,
        # and no server of ours could bind the name, so none is started.
        connection.close()
        return _run_entry(entry_points, program)
    if connection is None:
        if not spawn:
            return _run_entry(entry_points, program)
        try:
            status = _exit_status(_run_entry(entry_points, program))
        except SystemExit as e:
            status = _exit_status(e.code)
        # Afterwards, so that its start-up (a second of CPU) does not slow
        # this command down, and with no interpreter shutdown after it
        # (which the server's start-up would slow down in turn, keeping
        # this command's caller waiting).
        _flush()
        _spawn_server(name)
        os._exit(status)
    return _run_warm(connection, program,
                     lambda: _run_entry(entry_points, program))


def _connect(name):
    """
    :return: A connected socket, or ``None`` if no server answers.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        connection.connect(name)
    except OSError:
        connection.close()
        return None
    return connection


def _run_warm(connection, program, cold):
    """
    Have the server run ``program`` with this process's arguments,
    environment and standard streams; pass on stop signals; return its exit
    status (or die of the signal that killed it).
    """
    umask = os.umask(0o022)
    os.umask(umask)
    request = json.dumps({
        "program": program,
        "argv": [os.fsdecode(a) for a in sys.argv],
        "environ": {os.fsdecode(k): os.fsdecode(v)
                    for k, v in os.environb.items()},
        "cwd": os.fsdecode(_cwd()),
        "umask": umask,
    }, ensure_ascii=True).encode("ascii")
    try:
        socket.send_fds(connection, [request], [0, 1, 2])
        started = _receive(connection)
    except OSError:
        started = None
    if not isinstance(started, dict) or started.get("started") is not True:
        # The server went away (stopping as its code changed, say) before
        # it took the command: nothing ran yet, so run it here.
        connection.close()
        return cold()
    # The command has its own copies now: its output ends when it ends,
    # as if this process were the command.  (Standard error stays open for
    # the message below.)
    for fd in (0, 1):
        try:
            os.close(fd)
        except OSError:
            pass

    def forward(number, frame):
        # The server signals the child it forked: a pid named by a peer is
        # never signalled from here.
        try:
            connection.send(json.dumps({"signal": number}).encode("ascii"))
        except OSError:
            pass

    def suspend(number, frame):
        # Ctrl-Z: the command stops, and so does this process, as job
        # control expects of the job; the SIGCONT that resumes it is
        # passed on below.
        forward(number, frame)
        os.kill(os.getpid(), signal.SIGSTOP)
    for number in FORWARDED_SIGNALS + (signal.SIGCONT,):
        signal.signal(number, forward)
    signal.signal(signal.SIGTSTP, suspend)
    while True:
        try:
            ended = _receive(connection)
        except InterruptedError:
            continue
        break
    if not isinstance(ended, dict) or not isinstance(
            ended.get("status"), int):
        sys.stderr.write("%s: the warm server stopped while running this "
                         "command, which stopped with it\n" % (program,))
        return 255
    status = ended["status"]
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    return os.waitstatus_to_exitcode(status)


def _cwd():
    try:
        return os.getcwdb()
    except OSError:
        # Removed since: the command starts in / as sshd would have it.
        return b"/"


def _credentials(connection):
    """
    :return: ``(pid, uid, gid)`` of the process at the other end of a
        connected ``AF_UNIX`` socket (for a listening peer: the process
        that listened).
    """
    import struct
    return struct.unpack("3i", connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))


def server_trusted(connection, uid=None):
    """
    Whether the server at the other end of ``connection`` may be handed a
    command: it runs as this process's user, or as root.

    :param connection: A connected ``AF_UNIX`` socket.
    :param uid: This process's user id (``os.getuid()`` if ``None``).
    :return: ``bool``.
    """
    _, peer_uid, _ = _credentials(connection)
    return peer_uid in (0, os.getuid() if uid is None else uid)


def _receive(connection):
    """
    :return: The next JSON message, or ``None`` at end of connection.
    """
    data = connection.recv(65536)
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _spawn_server(name):
    """
    Start a detached warm server (its own session, standard streams on
    ``/dev/null``), unless one was started meanwhile: the server that binds
    the name first wins, the others exit.
    """
    try:
        first = os.fork()
    except OSError:
        return
    if first:
        os.waitpid(first, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, _max_fd())
        environ = dict(os.environ)
        # The server's own environment plays no part in what it runs (each
        # request brings one); it only must not start servers itself.
        environ[_DISABLE] = "0"
        os.execve(sys.executable, [
            sys.executable, "-c",
            "import sys; from flocker._warm import serve_forever; "
            "sys.exit(serve_forever(%r))" % (name,)], environ)
    except BaseException:
        pass
    os._exit(1)


def _max_fd():
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 1024


def _namespace(pid, kind):
    try:
        return os.readlink("/proc/%d/ns/%s" % (pid, kind))
    except OSError:
        return None


def peer_allowed(connection, uid=None, namespace=_namespace):
    """
    Whether the process at the other end of ``connection`` may have
    commands run: same user id and same mount and user namespaces as this
    process.

    :param connection: A connected ``AF_UNIX`` socket.
    :param uid: This server's user id (``os.getuid()`` if ``None``).
    :param namespace: ``(pid, kind) -> str or None``, reading
        ``/proc/PID/ns/KIND`` (for tests).
    :return: ``bool``.
    """
    pid, peer_uid, _ = _credentials(connection)
    if peer_uid != (os.getuid() if uid is None else uid):
        return False
    for kind in ("mnt", "user"):
        ours = namespace(os.getpid(), kind)
        if ours is None or namespace(pid, kind) != ours:
            return False
    return True


class _Server(object):
    """
    The warm server's state: the listening socket and, for each running
    command, its trampoline's connection and a pidfd of its child.
    """

    def __init__(self, listener, digest, idle, clock, entry_points):
        self.listener = listener
        self.entry_points = entry_points
        self.digest = digest
        self.idle = idle
        self.clock = clock
        self.running = {}
        self.last_request = clock()
        self.last_check = clock()

    def fds(self):
        fds = [self.listener]
        for connection, pidfd in self.running.values():
            fds.append(pidfd)
            if connection is not None:
                fds.append(connection)
        return fds

    def accept(self):
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        self.last_request = self.clock()
        fds = []
        try:
            if not peer_allowed(connection):
                connection.close()
                return
            message, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST, 3)
            request = json.loads(message)
            if (len(fds) != 3 or not isinstance(request, dict)
                    or request.get("program") not in self.entry_points):
                raise ValueError("not a request")
        except (OSError, ValueError):
            # Descriptors a refused request brought are this server's to
            # close, or they would pile up in it.
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        try:
            pid = os.fork()
        except OSError:
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        if pid == 0:
            self._child(request, fds)
        for fd in fds:
            os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)
            connection.send(json.dumps({"started": True}).encode("ascii"))
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            connection.close()
            return
        self.running[pid] = (connection, pidfd)

    def _child(self, request, fds):
        """
        In the forked child: become the requested command and run it.
        Never returns.
        """
        status = 1
        try:
            self.listener.close()
            for connection, pidfd in self.running.values():
                if connection is not None:
                    connection.close()
                os.close(pidfd)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            _die_with_parent()
            for number in FORWARDED_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            status = _become(request, self.entry_points)
        except SystemExit as e:
            status = _exit_status(e.code)
        except BaseException:
            import traceback
            traceback.print_exc()
        _flush()
        os._exit(status)

    def reap(self, pid):
        connection, pidfd = self.running.pop(pid)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if connection is not None:
            try:
                connection.send(
                    json.dumps({"status": status}).encode("ascii"))
            except OSError:
                pass
            connection.close()
        self.last_request = self.clock()

    def message(self, pid):
        """
        The trampoline of ``pid`` sent something: a signal to pass on to
        the command (one of :data:`FORWARDED_SIGNALS`, ``SIGTSTP`` or
        ``SIGCONT``; anything else is ignored), or the end of its
        connection, when it is gone.
        """
        connection, _ = self.running[pid]
        try:
            data = connection.recv(4096)
        except OSError:
            data = b""
        if not data:
            self.abandoned(pid)
            return
        try:
            number = json.loads(data)["signal"]
        except (ValueError, TypeError, KeyError):
            return
        if number in _PASSED_ON:
            try:
                os.kill(pid, number)
            except OSError:
                pass

    def abandoned(self, pid):
        """
        The trampoline of ``pid`` is gone (killed): the command goes too,
        as it would have with a cold start.
        """
        connection, pidfd = self.running[pid]
        connection.close()
        self.running[pid] = (None, pidfd)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    def should_stop(self):
        now = self.clock()
        if self.running:
            return False
        if now - self.last_request >= self.idle:
            return True
        if now - self.last_check >= CHECK_SECONDS:
            self.last_check = now
            return code_digest() != self.digest
        return False


#: ``prctl`` option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """
    Have the kernel SIGKILL this process (a command's child) when the server
    dies: its trampoline then reports the end, instead of a command running
    on unseen after its caller was told it stopped.
    """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        # The server died before the call above took effect.
        os._exit(255)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xff
    sys.stderr.write("%s\n" % (code,))
    return 1


def _become(request, entry_points):
    """
    Take on a request's process context and run its entry point.

    :return: The exit status.
    """
    import io
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["environ"])
    sys.argv = list(request["argv"])
    # New standard streams on the passed descriptors, buffered as an
    # interpreter starting on them would buffer them.
    encoding = sys.stdout.encoding or "utf-8"
    errors = sys.stdout.errors or "strict"
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)),
        encoding=encoding, errors=errors)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding=encoding, errors=errors, line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding=encoding, errors="backslashreplace", line_buffering=True)
    return _exit_status(_run_entry(entry_points, request["program"]))


class _NoReactor(object):
    """
    An import hook refusing ``twisted.internet.reactor``: importing it
    makes the reactor, which a server must not have (see
    :func:`serve_forever`).
    """

    def find_spec(self, name, path=None, target=None):
        """
        :raises ImportError: For the reactor module.
        :return: ``None`` (other finders find everything else).
        """
        if name == "twisted.internet.reactor":
            raise ImportError("a warm server makes no reactor")
        return None


def serve_forever(name, idle=IDLE_SECONDS, clock=time.monotonic,
                  entry_points=None, preload=PRELOAD):
    """
    Run a warm server: import the commands, listen on ``name`` and run each
    request in a forked child, until idle for ``idle`` seconds or the code
    changed.

    :param bytes name: Abstract socket name (:func:`server_name`).
    :param float idle: Seconds without a request after which it exits.
    :param clock: Monotonic clock.
    :param entry_points: Like :data:`ENTRY_POINTS` (the default).
    :param preload: More modules to import first.
    :return: Exit status: 0, or 1 if another server holds the name (or a
        module made a reactor).
    """
    import importlib
    entry_points = ENTRY_POINTS if entry_points is None else entry_points
    digest = code_digest()
    guard = _NoReactor()
    sys.meta_path.insert(0, guard)
    try:
        for module in tuple(preload) + tuple(
                m for m, _ in entry_points.values()):
            try:
                importlib.import_module(module)
            except ImportError:
                # It needs the reactor at import (Conch does): what it
                # imported before that stays loaded, the rest is imported
                # by each command.
                pass
    finally:
        sys.meta_path.remove(guard)
    if "twisted.internet.reactor" in sys.modules:
        # A reactor made here would be shared by every child: never warm.
        return 1
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(name)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return 1
        raise
    listener.listen(64)
    server = _Server(listener, digest, idle, clock, entry_points)
    while not server.should_stop():
        readable, _, _ = select.select(server.fds(), [], [],
                                       min(CHECK_SECONDS, idle))
        for ready in readable:
            if ready is listener:
                server.accept()
                continue
            for pid, (connection, pidfd) in list(server.running.items()):
                if ready == pidfd:
                    server.reap(pid)
                elif ready is connection:
                    server.message(pid)
    listener.close()
    return 0
