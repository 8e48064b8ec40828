"""
Run a systemd service unit the way systemd would, on a lab node (which has
no systemd): ``admin/lab`` starts each node's agent with::

    nsenter ...node1... -- /usr/bin/python3 -I -S admin/_lab_unit.py \\
        /lib/systemd/system/flocker-node.service

inside the node, reading the unit the installed package put there.  It
prepares what the unit's ``[Service]`` section asks for and then *execs*
its ``ExecStart=`` command line as written (so the pid stays the
service's):

* ``EnvironmentFile=`` (``-`` prefix: may be missing) and ``Environment=``
  over systemd's own environment for system services (``PATH`` below);
* ``RuntimeDirectory=`` made under ``/run`` with ``RuntimeDirectoryMode=``
  (and ``$RUNTIME_DIRECTORY`` set), ``UMask=``;
* working directory ``/``, standard input ``/dev/null``; standard output
  and error are the caller's (the lab points them at the node's
  ``/var/log/flocker-agent.log``, its journal);
* the command found on systemd's fixed search path when it is not an
  absolute path; ``$VAR``/``${VAR}`` expanded and quotes handled as
  systemd does.

* ``Restart=`` and ``RestartSec=`` as ``systemd.service(5)`` says: with a
  policy other than ``no`` this runner stays, as the service's supervisor
  (systemd's part), runs the command as its child, and when the child
  ends decides from how it ended (exit status 0 and the signals ``HUP``,
  ``INT``, ``TERM`` and ``PIPE`` are clean; any other status or signal is
  not) whether to start it again ``RestartSec=`` later; more than
  :data:`START_LIMIT_BURST` starts in :data:`START_LIMIT_INTERVAL` seconds
  and it gives up, as systemd's default start limit does.  ``SIGTERM`` (or
  ``SIGINT``) to the supervisor is ``systemctl stop``: it is passed on to
  the service, which is not started again, and the supervisor exits once
  it has ended (``SIGKILL`` after :data:`STOP_TIMEOUT` seconds).  With
  ``--main-pid FILE`` the supervisor writes the running service's pid to
  ``FILE`` at every start (systemd's ``MainPID``).

Any other ``[Service]`` setting, an ``ExecStart=`` prefix or a specifier
other than ``%%`` is refused (one line, exit 1), so a unit that changes in a
way this runner does not model fails the lab instead of running differently
from a server.  ``[Unit]`` and ``[Install]`` are not needed to start the
service (the lab starts the agent after the node's Docker and pool, as
``After=`` asks).

Standard library only (it runs with the node's ``/usr/bin/python3``).
"""

import os
import signal
import sys
import time
from dataclasses import dataclass

#: The ``PATH`` systemd gives system services (Debian 12's systemd 252).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"

#: Where systemd looks for a command given without a directory.
SEARCH_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
               "/sbin", "/bin"]

#: ``[Service]`` settings this runner applies.
APPLIED = {"Type", "ExecStart", "Environment", "EnvironmentFile",
           "RuntimeDirectory", "RuntimeDirectoryMode",
           "RuntimeDirectoryPreserve", "UMask", "Restart", "RestartSec"}

#: ``[Service]`` settings read and not applied (see the module docstring).
NOT_APPLIED = frozenset()

#: ``Restart=`` values, and for each the ways of ending that restart the
#: service (``systemd.service(5)``'s table; this runner has no start or
#: watchdog timeouts, so those rows never apply).
RESTART_POLICIES = {
    "no": frozenset(),
    "always": frozenset(["clean", "unclean-exit", "unclean-signal"]),
    "on-success": frozenset(["clean"]),
    "on-failure": frozenset(["unclean-exit", "unclean-signal"]),
    "on-abnormal": frozenset(["unclean-signal"]),
    "on-abort": frozenset(["unclean-signal"]),
    "on-watchdog": frozenset(),
}

#: Signals whose death systemd counts as a clean exit.
CLEAN_SIGNALS = frozenset([signal.SIGHUP, signal.SIGINT, signal.SIGTERM,
                           signal.SIGPIPE])

#: systemd's default start limit: at most this many starts ...
START_LIMIT_BURST = 5

#: ... within this many seconds (``DefaultStartLimitIntervalSec``).
START_LIMIT_INTERVAL = 10.0

#: Seconds a stopped service has to exit before it is killed (systemd's
#: ``DefaultTimeoutStopSec``).
STOP_TIMEOUT = 90.0

# RestartSec= units (systemd.time(7)); a bare number is seconds.
_TIME_UNITS = [("ms", 0.001), ("min", 60.0), ("s", 1.0), ("m", 60.0),
               ("h", 3600.0)]


class UnitError(Exception):
    """
    The unit cannot be run as systemd would run it.

    :ivar str path: The unit file.
    :ivar int line: The line (1-based), or 0 for the whole file.
    :ivar str message: What is wrong.
    """

    def __init__(self, path, line, message):
        Exception.__init__(self, path, line, message)
        self.path, self.line, self.message = path, line, message

    def __str__(self):
        if self.line:
            return "%s:%d: %s" % (self.path, self.line, self.message)
        return "%s: %s" % (self.path, self.message)


@dataclass(frozen=True)
class Service:
    """
    What a unit's ``[Service]`` section says, as this runner applies it.

    :ivar str exec_start: The ``ExecStart=`` value, as written.
    :ivar int exec_line: Its line.
    :ivar tuple environment: ``Environment=`` values, in order.
    :ivar tuple environment_files: ``(path, optional)`` pairs, in order.
    :ivar tuple runtime_directories: Names under ``/run``.
    :ivar int runtime_mode: Their mode.
    :ivar int umask: The process umask.
    :ivar tuple not_applied: ``(key, value)`` of the settings read and not
        applied (:data:`NOT_APPLIED`).
    :ivar str restart: The ``Restart=`` policy (a key of
        :data:`RESTART_POLICIES`).
    :ivar float restart_seconds: ``RestartSec=``, in seconds (systemd's
        default is 100 ms).
    """
    exec_start: str
    exec_line: int
    environment: tuple = ()
    environment_files: tuple = ()
    runtime_directories: tuple = ()
    runtime_mode: int = 0o755
    umask: int = 0o022
    not_applied: tuple = ()
    restart: str = "no"
    restart_seconds: float = 0.1


def parse_unit(path, text):
    """
    Read a unit file's sections, as systemd does: ``[Section]`` headers,
    ``Key=Value`` lines, ``#``/``;`` comments, a trailing backslash joining
    the next line.

    :param str path: The file (for messages).
    :param str text: Its content.
    :return: ``{section: [(key, value, line), ...]}``.
    :raises UnitError: On a line that is none of these.
    """
    sections = {}
    current = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        while line.endswith("\\") and index < len(lines):
            line = line[:-1] + " " + lines[index].strip()
            index += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, equals, value = line.partition("=")
        if not equals or current is None:
            raise UnitError(path, number, "not a setting: %r" % (line,))
        current.append((key.strip(), value.strip(), number))
    return sections


def _octal(path, number, key, value):
    try:
        return int(value, 8)
    except ValueError:
        raise UnitError(path, number, "%s=%s is not an octal mode"
                        % (key, value))


def service(path, text):
    """
    :param str path: The unit file (for messages).
    :param str text: Its content.
    :return: The unit's :class:`Service`.
    :raises UnitError: If it has no single ``ExecStart=``, is not
        ``Type=simple``, or uses a setting this runner does not apply.
    """
    settings = parse_unit(path, text).get("Service")
    if settings is None:
        raise UnitError(path, 0, "no [Service] section")
    values = {"environment": [], "environment_files": [],
              "runtime_directories": [], "not_applied": []}
    starts = []
    for key, value, number in settings:
        if key in NOT_APPLIED:
            values["not_applied"].append((key, value))
        elif key not in APPLIED:
            raise UnitError(path, number, "%s= is not something the lab's "
                            "unit runner applies (admin/_lab_unit.py)"
                            % (key,))
        elif key == "Type" and value != "simple":
            raise UnitError(path, number, "Type=%s: only Type=simple is "
                            "run by the lab" % (value,))
        elif key == "ExecStart":
            starts.append((value, number))
        elif key == "Environment":
            values["environment"].append(value)
        elif key == "EnvironmentFile":
            optional = value.startswith("-")
            values["environment_files"].append(
                (value[1:] if optional else value, optional))
        elif key == "RuntimeDirectory":
            values["runtime_directories"].extend(value.split())
        elif key == "RuntimeDirectoryMode":
            values["runtime_mode"] = _octal(path, number, key, value)
        elif key == "UMask":
            values["umask"] = _octal(path, number, key, value)
        elif key == "Restart":
            if value not in RESTART_POLICIES:
                raise UnitError(path, number, "Restart=%s is not one of %s"
                                % (value, ", ".join(sorted(
                                    RESTART_POLICIES))))
            values["restart"] = value
        elif key == "RestartSec":
            try:
                values["restart_seconds"] = time_span(value)
            except ValueError as e:
                raise UnitError(path, number, "RestartSec=%s: %s" % (
                    value, e))
    if len(starts) != 1:
        raise UnitError(path, starts[1][1] if starts else 0,
                        "a simple service needs exactly one ExecStart=")
    (exec_start, exec_line), = starts
    return Service(exec_start=exec_start, exec_line=exec_line,
                   **{key: tuple(value) if isinstance(value, list) else value
                      for key, value in values.items()})


def time_span(text):
    """
    :param str text: A ``systemd.time(7)`` time span: a number of seconds,
        or numbers each with a unit (``ms``, ``s``, ``min``/``m``, ``h``),
        summed (``1min 30s``).
    :return: Seconds (``float``).
    :raises ValueError: If it is not one.
    """
    total, rest = 0.0, text.replace(" ", "")
    if not rest:
        raise ValueError("empty time span")
    try:
        return float(rest)
    except ValueError:
        pass
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789."))
        if not digits:
            raise ValueError("not a time span")
        number, rest = float(rest[:digits]), rest[digits:]
        for unit, factor in _TIME_UNITS:
            if rest.startswith(unit):
                total += number * factor
                rest = rest[len(unit):]
                break
        else:
            raise ValueError("unknown time unit in %r" % (text,))
    return total


def ending(status):
    """
    :param int status: A child's wait status (``os.waitpid``).
    :return: How ``systemd.service(5)`` classes the ending: ``"clean"``
        (exit 0, or death by one of :data:`CLEAN_SIGNALS`),
        ``"unclean-exit"`` or ``"unclean-signal"``.
    """
    if os.WIFSIGNALED(status):
        if os.WTERMSIG(status) in CLEAN_SIGNALS:
            return "clean"
        return "unclean-signal"
    return "clean" if os.WEXITSTATUS(status) == 0 else "unclean-exit"


def restarts(policy, status):
    """
    :param str policy: A ``Restart=`` value.
    :param int status: How the service ended (a wait status).
    :return: Whether systemd would start it again.
    """
    return ending(status) in RESTART_POLICIES[policy]


class StartLimit(object):
    """
    systemd's start rate limit: at most ``burst`` starts within any
    ``interval`` seconds.
    """

    def __init__(self, burst=START_LIMIT_BURST,
                 interval=START_LIMIT_INTERVAL):
        self._burst, self._interval = burst, interval
        self._starts = []

    def start(self, now):
        """
        Count a start at ``now``.

        :return: ``False`` if it goes over the limit (the start is refused).
        """
        self._starts = [t for t in self._starts if now - t < self._interval]
        if len(self._starts) >= self._burst:
            return False
        self._starts.append(now)
        return True


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", " ": " ",
            "$": "$"}


def split_words(text):
    """
    Split a command line or an ``Environment=`` value into words, as
    systemd does: whitespace separates, double or single quotes group,
    backslash escapes.  ``$`` and ``%`` are kept for the caller.

    :param str text: The value.
    :return: A list of ``(word, quoted)``: ``quoted`` is ``True`` if any
        part of it was in quotes (such a word is not split again after
        ``$VAR`` expansion).
    :raises ValueError: On an unterminated quote or trailing backslash.
    """
    words = []
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            break
        word, quoted = [], False
        while index < len(text) and not text[index].isspace():
            char = text[index]
            if char in "\"'":
                end = text.find(char, index + 1)
                if end < 0:
                    raise ValueError("unterminated quote")
                word.append(text[index + 1:end])
                quoted = True
                index = end + 1
            elif char == "\\":
                if index + 1 == len(text):
                    raise ValueError("trailing backslash")
                word.append(_ESCAPES.get(text[index + 1],
                                         "\\" + text[index + 1]))
                index += 2
            else:
                word.append(char)
                index += 1
        words.append(("".join(word), quoted))
    return words


def _specifiers(word):
    # Only %% is modelled; any other specifier would mean something here.
    parts = word.split("%%")
    if any("%" in part for part in parts):
        raise ValueError("specifier in %r: only %%%% is modelled" % (word,))
    return "%".join(parts)


def _expand(word, environ):
    """
    :return: ``(text, whole)``: ``$VAR``/``${VAR}`` replaced; ``whole`` is
        ``True`` when the word is one ``$VAR`` (split on whitespace then).
    """
    if word.startswith("$") and not word.startswith("${") and \
            word[1:].replace("_", "a").isalnum():
        return environ.get(word[1:], ""), True
    out, index = [], 0
    while index < len(word):
        if word.startswith("${", index):
            end = word.find("}", index)
            if end < 0:
                raise ValueError("unterminated ${ in %r" % (word,))
            out.append(environ.get(word[index + 2:end], ""))
            index = end + 1
        else:
            out.append(word[index])
            index += 1
    return "".join(out), False


def command_line(text, environ):
    """
    :param str text: An ``ExecStart=`` value.
    :param environ: The service's environment.
    :return: The argument vector systemd would run (the first word not yet
        resolved to a path).
    :raises ValueError: On a prefix, specifier or quoting this runner does
        not model, or an empty command.
    """
    if text and text[0] in "@-:+!":
        raise ValueError("ExecStart= prefix %r is not modelled" % (text[0],))
    argv = []
    for word, quoted in split_words(text):
        word, whole = _expand(_specifiers(word), environ)
        argv.extend(word.split() if whole and not quoted else [word])
    if not argv:
        raise ValueError("empty ExecStart=")
    return argv


def environment_file(text):
    """
    :param str text: An ``EnvironmentFile=`` file's content.
    :return: ``{name: value}``: ``NAME=VALUE`` lines, ``#``/``;`` comments,
        values optionally in quotes.
    """
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def service_environment(unit, read):
    """
    :param Service unit: The service.
    :param read: Called with a path, returning its text or raising
        ``OSError``.
    :return: The environment systemd would give the service.
    :raises OSError: If a file not marked optional cannot be read.
    """
    environ = {"PATH": SYSTEMD_PATH}
    for value in unit.environment:
        for word, _ in split_words(value):
            name, equals, setting = word.partition("=")
            if equals:
                environ[name] = setting
    for path, optional in unit.environment_files:
        try:
            environ.update(environment_file(read(path)))
        except OSError:
            if not optional:
                raise
    if unit.runtime_directories:
        environ["RUNTIME_DIRECTORY"] = ":".join(
            "/run/" + name for name in unit.runtime_directories)
    return environ


def resolve(command, exists):
    """
    :param str command: The first word of ``ExecStart=``.
    :param exists: Called with a path: is it an executable file?
    :return: Its absolute path (systemd's fixed search path for a bare name).
    :raises ValueError: If it is not found.
    """
    if command.startswith("/"):
        if exists(command):
            return command
        raise ValueError("%s: not an executable file" % (command,))
    if "/" in command:
        raise ValueError("%s: neither absolute nor a bare name" % (command,))
    for directory in SEARCH_PATH:
        candidate = os.path.join(directory, command)
        if exists(candidate):
            return candidate
    raise ValueError("%s: not found in %s" % (command, ":".join(SEARCH_PATH)))


def _read(path):
    with open(path) as f:
        return f.read()


def _executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _describe(status):
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return "code=killed, status=%d/%s" % (
            number, signal.Signals(number).name[3:])
    return "code=exited, status=%d" % (os.WEXITSTATUS(status),)


def _exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def supervise(name, unit, command, environ, main_pid=None,
              clock=time.monotonic, sleep=time.sleep):
    """
    Run ``command`` as systemd runs a service whose ``Restart=`` is not
    ``no`` (see the module docstring): start it, and start it again after
    ``RestartSec=`` each time it ends in a way the policy restarts, until
    it ends otherwise, the start limit is hit, or this process is told to
    stop (``SIGTERM``/``SIGINT``, passed on to the service).

    :param str name: The unit's name, for the log lines.
    :param Service unit: The service.
    :param list command: Its argument vector (``command[0]`` a path).
    :param dict environ: Its environment.
    :param main_pid: A file to write the running service's pid to, or
        ``None``.
    :return: The exit status for this process: 0 when stopped, 1 at the
        start limit, else the service's (128 + signal number if killed).
    """
    state = {"child": None, "stopping": False}

    def kill_late(signum, frame):
        if state["child"] is not None:
            os.kill(state["child"], signal.SIGKILL)

    def stop(signum, frame):
        state["stopping"] = True
        if state["child"] is not None:
            try:
                os.kill(state["child"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            signal.signal(signal.SIGALRM, kill_late)
            signal.alarm(int(STOP_TIMEOUT))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    limit = StartLimit()
    while True:
        if not limit.start(clock()):
            sys.stderr.write("_lab_unit: %s: start request repeated too "
                             "quickly, refusing to start\n" % (name,))
            return 1
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.execve(command[0], command, environ)
            finally:
                os._exit(127)
        state["child"] = pid
        if main_pid is not None:
            with open(main_pid + ".tmp", "w") as f:
                f.write("%d\n" % (pid,))
            os.rename(main_pid + ".tmp", main_pid)
        if state["stopping"]:
            os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        state["child"] = None
        signal.alarm(0)
        sys.stderr.write("_lab_unit: %s: main process %d exited, %s\n" % (
            name, pid, _describe(status)))
        if state["stopping"]:
            return 0
        if not restarts(unit.restart, status):
            return _exit_code(status)
        sys.stderr.write("_lab_unit: %s: scheduled restart in %g s "
                         "(Restart=%s)\n" % (name, unit.restart_seconds,
                                             unit.restart))
        sys.stderr.flush()
        deadline = clock() + unit.restart_seconds
        while clock() < deadline and not state["stopping"]:
            sleep(min(0.05, max(0.0, deadline - clock())))
        if state["stopping"]:
            return 0


def main(argv):
    """
    ``_lab_unit.py [--main-pid FILE] UNIT``: prepare, then exec the unit's
    command (``Restart=no``) or supervise it (any other ``Restart=``).

    :param list argv: The arguments (without the program name).
    :return: 1 on a problem (after one line on stderr); the supervisor's
        status when supervising; never returns otherwise.
    """
    main_pid = None
    if argv[:1] == ["--main-pid"] and len(argv) > 1:
        main_pid, argv = argv[1], argv[2:]
    if len(argv) != 1:
        sys.stderr.write("usage: _lab_unit.py [--main-pid FILE] UNIT-FILE\n")
        return 2
    path = argv[0]
    try:
        try:
            unit = service(path, _read(path))
        except OSError as e:
            raise UnitError(path, 0, e.strerror or str(e))
        try:
            environ = service_environment(unit, _read)
        except OSError as e:
            raise UnitError(path, 0, "EnvironmentFile %s: %s" % (
                e.filename, e.strerror))
        try:
            command = command_line(unit.exec_start, environ)
            command[0] = resolve(command[0], _executable)
        except ValueError as e:
            raise UnitError(path, unit.exec_line, str(e))
        for name in unit.runtime_directories:
            directory = os.path.join("/run", name)
            os.makedirs(directory, exist_ok=True)
            os.chmod(directory, unit.runtime_mode)
        os.umask(unit.umask)
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if unit.restart != "no":
            return supervise(os.path.basename(path), unit, command, environ,
                             main_pid)
        if main_pid is not None:
            with open(main_pid, "w") as f:
                f.write("%d\n" % (os.getpid(),))
        os.execve(command[0], command, environ)
    except UnitError as e:
        sys.stderr.write("_lab_unit: %s\n" % (e,))
        return 1
    except OSError as e:
        sys.stderr.write("_lab_unit: %s: %s\n" % (path, e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
