"""
Tests for ``admin/_lab_host.py``: host primitives of the lab.
"""

import os
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _lab_host  # noqa: E402
from _lab_model import LabError  # noqa: E402

# A command whose child outlives it holding its stdout: the kind of thing a
# zfs command stuck on FUSE leaves behind.
_ORPHAN_MAKER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n")


class LabHostTests(SynchronousTestCase):
    """
    The host-side helpers: running commands, mount tables, processes,
    the state lock and file writing.
    """

    def test_run_returns_output(self):
        """
        ``run`` returns the exit code and decoded output.
        """
        result = _lab_host.run([sys.executable, "-c",
                                "import sys; print('out'); "
                                "sys.stderr.write('err')"])
        self.assertEqual(
            (result.returncode, result.stdout, result.stderr),
            (0, "out\n", "err"))

    def test_run_failure_is_one_line(self):
        """
        A failing command raises ``LabError`` quoting its last stderr line.
        """
        with self.assertRaises(LabError) as caught:
            _lab_host.run([sys.executable, "-c",
                           "import sys; sys.stderr.write('a\\nlast words\\n'); "
                           "sys.exit(3)"])
        self.assertTrue(str(caught.exception).endswith(": last words"))
        self.assertNotIn("\n", str(caught.exception))

    def test_run_missing_program(self):
        """
        A program that does not exist gives ``command not found``.
        """
        with self.assertRaisesRegex(LabError, "no-such-program: command not found"):
            _lab_host.run(["no-such-program"])

    def test_run_timeout_kills_whole_group(self):
        """
        On timeout the command and its descendants are killed and ``run``
        returns promptly even though a descendant held the output pipe.
        """
        started = time.monotonic()
        with self.assertRaisesRegex(LabError, "no answer after 1s"):
            _lab_host.run([sys.executable, "-c", _ORPHAN_MAKER], timeout=1)
        self.assertLess(time.monotonic() - started, 15)
        deadline = time.monotonic() + 10
        survivors = [
            pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if _lab_host.process_alive(pid) and
            "time.sleep(60)" in (_lab_host.read_file(
                "/proc/%d/cmdline" % (pid,)) or "") and
            os.getsid(pid) != os.getsid(0)]
        while survivors and time.monotonic() < deadline:
            time.sleep(0.1)
            survivors = [p for p in survivors if _lab_host.process_alive(p)]
        self.assertEqual(survivors, [])

    def test_parallel_results_and_errors(self):
        """
        ``parallel`` keeps the order of results and re-raises an error.
        """
        self.assertEqual(_lab_host.parallel(lambda x: x * 2, [3, 1, 2]),
                         [6, 2, 4])

        def fail(x):
            if x == 2:
                raise LabError("two")
            return x
        with self.assertRaisesRegex(LabError, "two"):
            _lab_host.parallel(fail, [1, 2, 3])

    def test_mount_table_has_root(self):
        """
        The mount table lists ``/`` and ``/proc``.
        """
        points = {entry.point for entry in _lab_host.mount_table()}
        self.assertLessEqual({"/", "/proc"}, points)
        self.assertTrue(_lab_host.mounted("/proc", "proc"))
        self.assertFalse(_lab_host.mounted("/proc", "ext4"))

    def test_read_pid(self):
        """
        ``read_pid`` reads a pid file and returns ``None`` for a missing or
        malformed one.
        """
        tmp_path = temporary_path(self)
        (tmp_path / "good").write_text("1234\n")
        (tmp_path / "bad").write_text("x\n")
        self.assertEqual(
            [_lab_host.read_pid(tmp_path / n) for n in
             ("good", "bad", "missing")],
            [1234, None, None])

    def test_process_alive_and_name(self):
        """
        This process is alive and named; a free pid is not alive.
        """
        self.assertTrue(_lab_host.process_alive(os.getpid()))
        self.assertTrue(_lab_host.process_name(os.getpid()))
        self.assertFalse(_lab_host.process_alive(2 ** 22 + 1))

    def test_state_lock_excludes(self):
        """
        While one ``StateLock`` is held, a second one gives up after its
        timeout with a one-line error.
        """
        tmp_path = temporary_path(self)
        with _lab_host.StateLock(tmp_path):
            with self.assertRaisesRegex(LabError, "another admin/lab command"):
                with _lab_host.StateLock(tmp_path, timeout=0.2):
                    pass
        with _lab_host.StateLock(tmp_path, timeout=0.2):
            pass

    def test_write_text_mode(self):
        """
        ``write_text`` replaces a file with the given permission bits.
        """
        tmp_path = temporary_path(self)
        target = tmp_path / "key"
        target.write_text("old")
        _lab_host.write_text(target, "new", 0o600)
        self.assertEqual(
            (target.read_text(), target.stat().st_mode & 0o777),
            ("new", 0o600))
        self.assertEqual([p.name for p in tmp_path.iterdir()], ["key"])
