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
               ("subprocess", "getstatusoutput"), ("commands", "getoutput")}

#: A comment marking a literal command run inside a container (by the
#: container's own shell, from a constant), which is not the node's shell.
CONTAINER_MARK = "# runs in a container"

#: Programs that are shells when they start an argument vector with ``-c``.
SHELLS = {"sh", "bash", "dash", "/bin/sh", "/bin/bash"}


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


def shell_uses(source, path):
    """
    :return: ``list`` of ``"PATH:LINE: what"`` for every use of a shell in
        ``source``: a call with ``shell=True``, one of :data:`SHELL_CALLS`,
        or a literal argument vector starting with a shell and ``-c``
        (unless its line carries :data:`CONTAINER_MARK`).
    """
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if (keyword.arg == "shell"
                        and isinstance(keyword.value, ast.Constant)
                        and keyword.value.value):
                    found.append("%s:%d: shell=True" % (path, node.lineno))
            if _dotted(node.func) in SHELL_CALLS:
                found.append("%s:%d: %s.%s" % (
                    (path, node.lineno) + _dotted(node.func)))
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
                         "flocker/cli/_ssh.py"):
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
