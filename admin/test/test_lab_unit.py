"""
Tests for ``admin/_lab_unit.py``: running a systemd unit as systemd would
on a lab node; and for the unit Flocker ships, checked with
``systemd-analyze verify`` and run exactly as written.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import cases, require, temporary_path, with_cases

ADMIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ADMIN))

import _lab_unit  # noqa: E402

SHIPPED = ADMIN.parent / "flocker" / "node" / "flocker-node.service"


def _exited(code):
    return code << 8


def _killed(number):
    return int(number)


def _wait_for(predicate, what):
    """
    Poll ``predicate`` (bounded: 60 s) until it is true.
    """
    deadline = time.monotonic() + 60
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError("gave up waiting for " + what)
        time.sleep(0.02)


def _main_pid(path):
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _starts(path):
    """
    :return: How many times the probe service wrote its start line.
    """
    try:
        return path.read_text().count("started")
    except FileNotFoundError:
        return 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not a running service.
    with open("/proc/%d/stat" % (pid,)) as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@with_cases
class LabUnitTests(SynchronousTestCase):
    """
    The lab's unit runner: parsing systemd units as written, their
    command lines, environments and restart settings, and running them.
    """

    def test_shipped_unit(self):
        """
        The unit Flocker ships reads as: ExecStart ``/usr/bin/env flocker-node
        agent``, its settings from ``/etc/default/flocker-node`` (optional),
        ``/run/flocker`` mode 0700, umask 0077, restarted 2 s after a failure;
        every setting is applied.
        """
        unit = _lab_unit.service(str(SHIPPED), SHIPPED.read_text())
        self.assertEqual(
            (_lab_unit.command_line(unit.exec_start, {}),
             unit.environment_files, unit.runtime_directories,
             oct(unit.runtime_mode), oct(unit.umask), unit.not_applied,
             unit.restart, unit.restart_seconds),
            (["/usr/bin/env", "flocker-node", "agent"],
             (("/etc/default/flocker-node", True),), ("flocker",), "0o700",
             "0o77", (), "on-failure", 2.0))

    def test_shipped_unit_verifies(self):
        """
        ``systemd-analyze verify`` finds nothing to say about the shipped unit
        (it prints unknown settings and missing commands, exit status 0 or
        not).
        """
        require(shutil.which("systemd-analyze") is not None,
                "systemd-analyze (Debian package systemd) is not installed")
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(SHIPPED)],
            capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL)
        self.assertEqual((result.returncode, result.stdout + result.stderr),
                         (0, ""))

    def test_verify_catches_a_mistake(self):
        """
        The check above does catch a mistyped setting (so its silence means
        something).
        """
        tmp_path = temporary_path(self)
        require(shutil.which("systemd-analyze") is not None,
                "systemd-analyze (Debian package systemd) is not installed")
        broken = tmp_path / "flocker-node.service"
        broken.write_text(SHIPPED.read_text().replace("RestartSec=",
                                                      "RestartSecs="))
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(broken)],
            capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL)
        self.assertIn("Unknown key 'RestartSecs'", result.stderr)

    def test_parse_unit_continuations_and_comments(self):
        """
        Sections, comments (``#`` and ``;``) and backslash continuations are
        read as systemd reads them, with each setting's first line.
        """
        sections = _lab_unit.parse_unit(
            "u", "# c\n[Service]\n; c\nExecStart=/a \\\n  b\nUMask=0022\n")
        self.assertEqual(
            sections,
            {"Service": [("ExecStart", "/a  b", 4),
                         ("UMask", "0022", 6)]})

    @cases([
        ("[Service]\nExecStart=/a\nUser=nobody\n",
         "u:3: User= is not something the lab's unit runner applies"),
        ("[Service]\nType=forking\nExecStart=/a\n",
         "u:2: Type=forking: only Type=simple"),
        ("[Service]\nExecStart=/a\nExecStart=/b\n",
         "u:3: a simple service needs exactly one ExecStart="),
        ("[Unit]\nDescription=x\n", "u: no [Service] section"),
        ("ExecStart=/a\n", "u:1: not a setting"),
        ("[Service]\nExecStart=/a\nUMask=x\n", "u:3: UMask=x is not an octal"),
        ("[Service]\nExecStart=/a\nRestart=sometimes\n",
         "u:3: Restart=sometimes is not one of always, no, on-abnormal"),
        ("[Service]\nExecStart=/a\nRestartSec=soon\n",
         "u:3: RestartSec=soon: not a time span"),
    ])
    def test_refused_units(self, text, message):
        """
        A unit this runner would not run as systemd does is refused with its
        file and line.
        """
        with self.assertRaises(_lab_unit.UnitError) as caught:
            _lab_unit.service("u", text)
        self.assertTrue(str(caught.exception).startswith(message))

    @cases([
        ("/bin/x a 'b c' \"d e\"", {}, ["/bin/x", "a", "b c", "d e"]),
        ("/bin/x $OPTS ${ONE}", {"OPTS": "-a -b", "ONE": "p q"},
         ["/bin/x", "-a", "-b", "p q"]),
        ("/bin/x pre${ONE}post 100%%", {"ONE": "1"}, ["/bin/x", "pre1post",
                                                      "100%"]),
        ("/bin/x a\\ b", {}, ["/bin/x", "a b"]),
    ])
    def test_command_line(self, text, environ, argv):
        """
        ``ExecStart=`` is split and expanded as systemd does: quotes group,
        ``$VAR`` alone splits on whitespace, ``${VAR}`` does not, ``%%`` is a
        percent sign.
        """
        self.assertEqual(_lab_unit.command_line(text, environ), argv)

    @cases([(text,) for text in ["-/bin/x", "/bin/x %n", "/bin/x 'a", ""]])
    def test_command_line_refused(self, text):
        """
        Prefixes, specifiers other than ``%%``, bad quoting and an empty
        command are refused rather than run differently.
        """
        with self.assertRaises(ValueError):
            _lab_unit.command_line(text, {})

    def test_environment(self):
        """
        The service gets systemd's PATH, ``Environment=`` values, the
        environment files' (later ones win; a missing optional one is
        skipped) and ``$RUNTIME_DIRECTORY``.
        """
        unit = _lab_unit.service("u", "\n".join([
            "[Service]", "ExecStart=/bin/x", "Environment=A=1 'B=two words'",
            "EnvironmentFile=-/missing", "EnvironmentFile=/etc/default/f",
            "RuntimeDirectory=flocker", ""]))
        files = {"/etc/default/f": "# c\nA=3\nC=\"quoted\"\n"}

        def read(path):
            if path not in files:
                raise OSError(2, "No such file", path)
            return files[path]
        self.assertEqual(
            _lab_unit.service_environment(unit, read),
            {"PATH": _lab_unit.SYSTEMD_PATH, "A": "3", "B": "two words",
             "C": "quoted", "RUNTIME_DIRECTORY": "/run/flocker"})

    def test_resolve(self):
        """
        A bare command is looked up on systemd's fixed search path; an absolute
        one must exist; a relative path is refused.
        """
        present = {"/usr/bin/env", "/usr/local/bin/tool", "/usr/bin/tool"}
        self.assertEqual(
            (_lab_unit.resolve("env", present.__contains__),
             _lab_unit.resolve("tool", present.__contains__),
             _lab_unit.resolve("/usr/bin/env", present.__contains__)),
            ("/usr/bin/env", "/usr/local/bin/tool", "/usr/bin/env"))
        for command in ("nothere", "bin/env", "/usr/bin/nothere"):
            with self.assertRaises(ValueError):
                _lab_unit.resolve(command, present.__contains__)

    def test_runs_the_command(self):
        """
        ``main`` runs a unit's command with its environment, umask, working
        directory ``/`` and standard input from ``/dev/null`` (it execs: the
        output is the command's).
        """
        tmp_path = temporary_path(self)
        defaults = tmp_path / "defaults"
        defaults.write_text("GREETING=hello\n")
        unit = tmp_path / "probe.service"
        unit.write_text("\n".join([
            "[Service]", "EnvironmentFile=%s" % (defaults,), "UMask=0027",
            "ExecStart=%s -c 'import os, sys; print(os.environ[\"GREETING\"], "
            "oct(os.umask(0)), os.getcwd(), sys.stdin.read() == \"\")'"
            % (sys.executable,), ""]))
        result = subprocess.run(
            [sys.executable, str(ADMIN / "_lab_unit.py"), str(unit)],
            capture_output=True, text=True, timeout=60, input="not for it")
        self.assertEqual(
            (result.returncode, result.stdout),
            (0, "hello 0o27 / True\n"),
            result.stderr)

    def test_main_one_line_error(self):
        """
        A unit that cannot be run gives one line naming file and line, exit 1.
        """
        tmp_path = temporary_path(self)
        unit = tmp_path / "bad.service"
        unit.write_text("[Service]\nExecStart=/nonexistent/command\n")
        result = subprocess.run(
            [sys.executable, str(ADMIN / "_lab_unit.py"), str(unit)],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(
            (result.returncode, result.stderr),
            (1, "_lab_unit: %s:2: /nonexistent/command: not an executable "
             "file\n" % (unit,)))

    def test_restart_policies(self):
        """
        Whether a service is started again follows ``systemd.service(5)``'s
        table: exit 0 and death by HUP, INT, TERM or PIPE are clean; another
        exit status is an unclean exit; another signal an unclean signal.
        """
        endings = [_exited(0), _killed(signal.SIGTERM), _exited(1),
                   _killed(signal.SIGKILL), _killed(signal.SIGSEGV)]
        table = {policy: [_lab_unit.restarts(policy, status)
                          for status in endings]
                 for policy in sorted(_lab_unit.RESTART_POLICIES)}
        self.assertEqual(
            table,
            {"always": [True, True, True, True, True],
             "no": [False, False, False, False, False],
             "on-abnormal": [False, False, False, True, True],
             "on-abort": [False, False, False, True, True],
             "on-failure": [False, False, True, True, True],
             "on-success": [True, True, False, False, False],
             "on-watchdog": [False, False, False, False, False],
            })

    def test_time_span(self):
        """
        ``RestartSec=`` takes systemd's time spans: seconds, or numbers with
        units, summed.
        """
        self.assertEqual(
            [_lab_unit.time_span(text) for text in (
                "2", "0.5", "500ms", "1min 30s", "2s", "1h")],
            [2.0, 0.5, 0.5, 90.0, 2.0, 3600.0])
        for text in ("", "soon", "2 weeks", "s"):
            with self.assertRaises(ValueError):
                _lab_unit.time_span(text)

    def test_start_limit(self):
        """
        At most five starts within ten seconds, as systemd's default start
        limit allows; starts older than that no longer count.
        """
        limit = _lab_unit.StartLimit()
        self.assertEqual(
            [limit.start(t) for t in (0, 1, 2, 3, 4, 5, 10.5, 11, 16)],
            [True, True, True, True, True, False, True, True, True])

    def test_restarted_when_killed(self):
        """
        With ``Restart=on-failure``, a service killed (``SIGKILL``) is started
        again, its new pid written to ``--main-pid``; ``SIGTERM`` to the runner
        is ``systemctl stop``: the service gets it and is not started again,
        and the runner exits 0.
        """
        tmp_path = temporary_path(self)
        starts = tmp_path / "starts"
        main_pid = tmp_path / "main.pid"
        unit = tmp_path / "probe.service"
        unit.write_text("\n".join([
            "[Service]", "Restart=on-failure", "RestartSec=100ms",
            "ExecStart=/bin/sh -c 'echo started >> %s; exec sleep 600'"
            % (starts,), ""]))
        runner = subprocess.Popen(
            [sys.executable, str(ADMIN / "_lab_unit.py"), "--main-pid",
             str(main_pid), str(unit)], stderr=subprocess.PIPE, text=True)
        try:
            # Started, not just forked: killed before it ran, it would not
            # have written its line.
            _wait_for(lambda: _starts(starts) == 1, "the service")
            first = _main_pid(main_pid)
            os.kill(first, signal.SIGKILL)
            _wait_for(lambda: _main_pid(main_pid) not in (None, first),
                      "the restart")
            second = _main_pid(main_pid)
            _wait_for(lambda: _starts(starts) == 2, "the restarted service")
            runner.send_signal(signal.SIGTERM)
            _, errors = runner.communicate(timeout=60)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
        self.assertEqual(
            (runner.returncode, _alive(second),
             starts.read_text().count("started"), errors.splitlines()),
            (0, False, 2, [
                 "_lab_unit: probe.service: main process %d exited, "
                 "code=killed, status=9/KILL" % (first,),
                 "_lab_unit: probe.service: scheduled restart in 0.1 s "
                 "(Restart=on-failure)",
                 "_lab_unit: probe.service: main process %d exited, "
                 "code=killed, status=15/TERM" % (second,)]))

    def test_clean_exit_not_restarted(self):
        """
        With ``Restart=on-failure``, a service that exits 0 is not started
        again and the runner exits 0; one that fails is, until the start limit
        stops it (five starts), exit status 1.
        """
        tmp_path = temporary_path(self)
        starts = tmp_path / "starts"
        results = []
        for command in ("exit 0", "exit 3"):
            unit = tmp_path / "probe.service"
            unit.write_text("\n".join([
                "[Service]", "Restart=on-failure", "RestartSec=0",
                "ExecStart=/bin/sh -c 'echo started >> %s; %s'" % (
                    starts, command), ""]))
            if starts.exists():
                starts.unlink()
            result = subprocess.run(
                [sys.executable, str(ADMIN / "_lab_unit.py"), str(unit)],
                capture_output=True, text=True, timeout=120)
            results.append((result.returncode,
                            starts.read_text().count("started"),
                            result.stderr.splitlines()[-1]))
        self.assertEqual(
            results,
            [(0, 1, "_lab_unit: probe.service: main process %s exited, "
              "code=exited, status=0" % (results[0][2].split()[4],)),
             (1, 5, "_lab_unit: probe.service: start request repeated too "
              "quickly, refusing to start")])
