"""
No shell anywhere: Flocker, its admin scripts and its benchmarks run every
program as an argument vector, so no name, image, path or address from a
configuration file can ever be read by a shell.  These tests read the code
itself.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

#: Calls that hand a string to a shell, whatever their arguments.
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("commands", "getoutput"),
               ("commands", "getstatusoutput"), ("platform", "popen"),
               ("pty", "spawn"), ("asyncio", "create_subprocess_shell")}

#: Methods that hand a string to a shell on whatever object has them
#: (``loop.subprocess_shell``).
SHELL_METHODS = {"subprocess_shell", "create_subprocess_shell"}

#: Calls whose argument vector is their first argument.
ARGV_FIRST = {("subprocess", name) for name in (
    "run", "call", "check_call", "check_output", "Popen")} | {
    ("asyncio", "create_subprocess_exec")}

#: Calls whose argument vector is their second argument.
ARGV_SECOND = {("os", name) for name in (
    "execv", "execve", "execvp", "execvpe", "posix_spawn", "posix_spawnp")}

#: A comment marking a literal command run inside a container (by the
#: container's own shell, from a constant), which is not the node's shell.
CONTAINER_MARK = "# runs in a container"

#: Programs that are shells when they start an argument vector with ``-c``.
SHELLS = {"sh", "bash", "dash", "/bin/sh", "/bin/bash"}


#: Every place outside the tests that hands a command line to a remote
#: node's shell (an SSH ``exec`` request, or an ``ssh`` argument vector,
#: whose words ssh joins for the remote shell), and why nothing in it can
#: be read by that shell.
REVIEWED_REMOTE_COMMANDS = {
    "flocker/_ssh/_session.py":
        "the exec request carries quote_argv(argv): every argument "
        "shlex-quoted, NUL refused (test_injection checks that the command "
        "line splits back into the argument vector)",
    "flocker/node/_peer_remote.py":
        "the exec request is SSHCommandRunner.start's quote_argv of words "
        "checked by check_remote_words (no shell metacharacter), and the "
        "other node's forced command never hands them to a shell (the "
        "agent reads them with _forced.peer_request)",
    "admin/_lab.py": "constant words and a lab node's name",
    "benchmarks/_common.py":
        "constant words, a lab address and dataset names its callers build "
        "from a lab pool name and constant words",
    "benchmarks/deploy.py": "constant words and a lab node's name",
}


def python_sources():
    """
    :return: ``list`` of the project's Python files: every ``.py`` file
        under ``flocker/``, ``admin/`` and ``benchmarks/``, and the scripts
        there that start with a Python ``#!`` line.
    """
    found = []
    for folder in ("flocker", "admin", "benchmarks"):
        for directory, subdirectories, files in os.walk(
                os.path.join(TOP, folder)):
            subdirectories[:] = [d for d in subdirectories
                                 if d != "__pycache__"]
            for name in files:
                path = os.path.join(directory, name)
                if name.endswith(".py"):
                    found.append(path)
                elif "." not in name:
                    with open(path, "rb") as f:
                        first = f.readline()
                    if first.startswith(b"#!") and b"python" in first:
                        found.append(path)
    return sorted(found)


def _dotted(node):
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return (node.value.id, node.attr)
    return None


def _built_string(node):
    """
    :return: ``True`` if ``node`` is an expression giving a command line as
        one string: a string literal, an f-string, ``%`` or ``+`` on a
        string literal, ``.format(...)``, or any of those ``.split()``
        (which splits a value holding spaces into several arguments).
    """
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, bytes))
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod,
                                                            ast.Add)):
        return _built_string(node.left)
    if isinstance(node, ast.Call) and _dotted(node.func) == ("shlex",
                                                             "split"):
        return bool(node.args) and _built_string(node.args[0])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "format":
            return True
        if node.func.attr == "split":
            return _built_string(node.func.value)
    return False


def _argv_argument(node):
    """
    :return: The argument-vector argument of a call that runs a program,
        or ``None`` if ``node`` is no such call (or does not give one).
    """
    dotted = _dotted(node.func)
    position = None
    if dotted in ARGV_FIRST:
        position, keyword = 0, "args"
    elif dotted in ARGV_SECOND:
        position, keyword = 1, "argv"
    elif (isinstance(node.func, ast.Attribute)
          and node.func.attr == "spawnProcess"):
        position, keyword = 2, "args"
    if position is None:
        return None
    if len(node.args) > position:
        return node.args[position]
    for given in node.keywords:
        if given.arg == keyword:
            return given.value
    return None


def shell_uses(source, path):
    """
    :return: ``list`` of ``"PATH:LINE: what"`` for every use of a shell in
        ``source``: a call with ``shell=True``, one of :data:`SHELL_CALLS`
        (called by its dotted name or imported by name) or
        :data:`SHELL_METHODS`, a program run with its argument vector built
        as a string (see :func:`_built_string`), or a literal argument
        vector starting with a shell and ``-c`` (unless its line carries
        :data:`CONTAINER_MARK`).
    """
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (node.module, alias.name) in SHELL_CALLS:
                    found.append("%s:%d: %s.%s" % (
                        path, node.lineno, node.module, alias.name))
        if isinstance(node, ast.Call):
            shell = False
            for keyword in node.keywords:
                if (keyword.arg == "shell"
                        and isinstance(keyword.value, ast.Constant)
                        and keyword.value.value):
                    found.append("%s:%d: shell=True" % (path, node.lineno))
                    shell = True
            if _dotted(node.func) in SHELL_CALLS:
                found.append("%s:%d: %s.%s" % (
                    (path, node.lineno) + _dotted(node.func)))
            elif (isinstance(node.func, ast.Attribute)
                  and node.func.attr in SHELL_METHODS):
                found.append("%s:%d: %s" % (path, node.lineno,
                                            node.func.attr))
            argv = _argv_argument(node)
            # With shell=True a string is expected: reported once above.
            if argv is not None and not shell and _built_string(argv):
                found.append("%s:%d: command line built as a string" % (
                    path, node.lineno))
        if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 2:
            first, second = node.elts[:2]
            line = lines[node.lineno - 1] if node.lineno <= len(lines) else ""
            if (isinstance(first, ast.Constant) and first.value in SHELLS
                    and isinstance(second, ast.Constant)
                    and second.value == "-c"
                    and CONTAINER_MARK not in line):
                found.append("%s:%d: %s -c" % (path, node.lineno,
                                                first.value))
    return found


def remote_commands(source, path):
    """
    :return: ``list`` of ``"PATH:LINE"`` for every SSH ``exec`` request
        (a ``b"exec"`` literal) and every literal argument vector starting
        with ``"ssh"`` in ``source``.
    """
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Constant) and node.value == b"exec":
            found.append("%s:%d" % (path, node.lineno))
        elif (isinstance(node, ast.List) and node.elts
              and isinstance(node.elts[0], ast.Constant)
              and node.elts[0].value == "ssh"):
            found.append("%s:%d" % (path, node.lineno))
    return found


class NoShellTests(SynchronousTestCase):
    """
    The project's code uses no shell.
    """

    def test_sources_found(self):
        """
        The scan covers the package, the admin scripts (with and without
        ``.py``) and the benchmarks.
        """
        sources = [os.path.relpath(path, TOP) for path in python_sources()]
        for expected in ("flocker/node/_docker.py", "admin/install-deps",
                         "admin/lab", "benchmarks/deploy.py",
                         "flocker/_ssh/_session.py"):
            self.assertIn(expected, sources)

    def test_detector(self):
        """
        The detector finds each kind of shell use.
        """
        source = ("import os, subprocess\n"
                  "subprocess.run('ls', shell=True)\n"
                  "os.system('ls')\n"
                  "subprocess.run(['sh', '-c', 'ls'])\n"
                  "subprocess.run(['ls', '-l'])\n"
                  "C = ['sh', '-c', 'sleep 9']  # runs in a container\n")
        self.assertEqual(shell_uses(source, "x.py"), [
            "x.py:2: shell=True", "x.py:3: os.system", "x.py:4: sh -c"])

    def test_detector_more(self):
        """
        The detector also finds shell functions imported by name, the
        shell-running methods of event loops and ``pty``, and programs run
        with their argument vector built as one string (even when split
        afterwards).
        """
        source = ("from os import system\n"
                  "from subprocess import getoutput as g\n"
                  "import pty, asyncio, os, subprocess, shlex\n"
                  "pty.spawn('sh')\n"
                  "loop.subprocess_shell(Protocol, 'ls')\n"
                  "asyncio.create_subprocess_shell('ls')\n"
                  "subprocess.run('zfs list ' + name)\n"
                  "subprocess.Popen(f'zfs list {name}'.split())\n"
                  "subprocess.check_output(args='ls %s' % (name,))\n"
                  "reactor.spawnProcess(p, 'ssh', 'ssh {}'.format(host))\n"
                  "os.execv('/bin/ls', shlex.split('ls ' + name))\n"
                  "subprocess.run(['zfs', 'list', name])\n"
                  "reactor.spawnProcess(p, 'zfs', ['zfs', 'list'])\n"
                  "os.execv(real, [name] + argv[1:])\n")
        self.assertEqual(shell_uses(source, "x.py"), [
            "x.py:1: os.system", "x.py:2: subprocess.getoutput",
            "x.py:4: pty.spawn", "x.py:5: subprocess_shell",
            "x.py:6: asyncio.create_subprocess_shell",
            "x.py:7: command line built as a string",
            "x.py:8: command line built as a string",
            "x.py:9: command line built as a string",
            "x.py:10: command line built as a string",
            "x.py:11: command line built as a string"])

    def test_no_shell(self):
        """
        No source outside the tests uses a shell.  (Tests may put shell
        text in a container's command: that runs inside the container,
        from the test's own literal.)
        """
        found = []
        for path in python_sources():
            relative = os.path.relpath(path, TOP)
            if "/test/" in "/" + relative or relative == os.path.relpath(
                    __file__, TOP):
                continue
            with open(path, encoding="utf-8") as f:
                found.extend(shell_uses(f.read(), relative))
        self.assertEqual(found, [])

    def test_remote_commands_detector(self):
        """
        The remote-command scan finds exec requests and ``ssh`` vectors,
        also at the start of a concatenation.
        """
        source = ("channel.sendRequest(self, b'exec', NS(command))\n"
                  "argv = ['ssh'] + options + [host, 'zfs', 'list']\n"
                  "other = ['scp', 'a', 'b']\n")
        self.assertEqual(remote_commands(source, "x.py"),
                         ["x.py:1", "x.py:2"])

    def test_remote_commands_reviewed(self):
        """
        Every file outside the tests that sends a command line to a remote
        shell is one whose quoting has been reviewed (see
        :data:`REVIEWED_REMOTE_COMMANDS`), and each reviewed file still
        does: a new way of reaching a node must be added there, with the
        reason its words are safe.
        """
        files = set()
        for path in python_sources():
            relative = os.path.relpath(path, TOP)
            if "/test/" in "/" + relative:
                continue
            with open(path, encoding="utf-8") as f:
                if remote_commands(f.read(), relative):
                    files.add(relative)
        self.assertEqual(files, set(REVIEWED_REMOTE_COMMANDS))
