"""
Tests for ``admin/_zfs_exec.py``: ``zfs``/``zpool`` on lab nodes act in the
ZFS daemon's mount namespace.
"""

import subprocess
import sys
import time
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_path

ADMIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ADMIN))

import _lab  # noqa: E402
import _lab_host  # noqa: E402


def host_mounted(point):
    """
    :param str point: A path.
    :return: ``True`` if it is a mount point in the host's namespace.
    """
    return _lab_host.mounted(point)


def _compile(tmp_path, real_zfs):
    binary = tmp_path / "zfs-exec"
    subprocess.run(
        ["cc", "-O2", "-o", str(binary), "-DREAL_ZFS=%s" % (
            _lab.c_string(real_zfs),), "-DREAL_ZPOOL=%s" % (
            _lab.c_string("/nonexistent/zpool"),),
         str(_lab.ADMIN / "_zfs_exec.c")], check=True, timeout=120)
    return binary


def _named(tmp_path, binary, name):
    link = tmp_path / name
    link.symlink_to(binary)
    return link


class ZFSExecTests(SynchronousTestCase):
    """
    The wrapper, as a script and compiled, runs only the ZFS commands and
    runs them unchanged.
    """

    def test_unknown_name_refused(self):
        """
        Called under a name it does not wrap, the wrapper exits 127 with one
        line.
        """
        tmp_path = temporary_path(self)
        wrapper = tmp_path / "frob"
        wrapper.write_text(_lab.zfs_exec_text())
        wrapper.chmod(0o755)
        result = subprocess.run([str(wrapper)], capture_output=True,
                                text=True, stdin=subprocess.DEVNULL,
                                timeout=30)
        self.assertEqual((result.returncode, result.stderr), (
            127, "frob: not a wrapped ZFS command\n"))

    def test_lab_installs_compiled_wrapper(self):
        """
        With a C compiler on the host (install-deps installs one), the lab's
        wrapper is the compiled one: an executable, not a script.
        """
        tmp_path = temporary_path(self)
        path = tmp_path / "zfs-exec"
        self.assertEqual(_lab.install_zfs_exec(path), "c")
        self.assertEqual(path.read_bytes()[:4], b"\x7fELF")
        self.assertTrue(path.stat().st_mode & 0o111)

    def test_compiled_wrapper_kept_when_current(self):
        """
        Installing again keeps a compiled wrapper built from the same source,
        compiler and real commands (no compile on every ``lab up``); without
        its record of what it was built from, it is built again.
        """
        tmp_path = temporary_path(self)
        path = tmp_path / "zfs-exec"
        self.assertEqual(_lab.install_zfs_exec(path), "c")
        first = path.stat().st_ino
        self.assertEqual(_lab.install_zfs_exec(path), "c")
        self.assertEqual(path.stat().st_ino, first)
        (tmp_path / "zfs-exec.built").unlink()
        self.assertEqual(_lab.install_zfs_exec(path), "c")
        self.assertNotEqual(path.stat().st_ino, first)
        self.assertTrue((tmp_path / "zfs-exec.built").exists())

    def test_compiled_refuses_unknown_name(self):
        """
        Called under a name it does not wrap, the compiled wrapper exits 127
        with the same line as the Python one.
        """
        tmp_path = temporary_path(self)
        wrapper = _named(tmp_path, _compile(tmp_path, "/bin/echo"), "frob")
        result = subprocess.run([str(wrapper)], capture_output=True,
                                text=True, stdin=subprocess.DEVNULL,
                                timeout=30)
        self.assertEqual((result.returncode, result.stderr), (
            127, "frob: not a wrapped ZFS command\n"))

    def test_compiled_execs_real_command(self):
        """
        Called as ``zfs``, the compiled wrapper execs the real command with
        ``zfs`` as its name and the arguments unchanged; a real command that
        cannot run gives one line and 127.
        """
        tmp_path = temporary_path(self)
        binary = _compile(tmp_path, "/bin/sh")
        zfs = _named(tmp_path, binary, "zfs")
        result = subprocess.run(
            [str(zfs), "-c", 'tr "\\000" "|" < /proc/$$/cmdline', "a b",
             "c;d"], capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(result.returncode, 0)
        self.assertTrue(result.stdout.startswith("zfs|-c|"))
        self.assertTrue(result.stdout.endswith("|a b|c;d|"))
        zpool = _named(tmp_path, binary, "zpool")
        result = subprocess.run([str(zpool), "list"], capture_output=True,
                                text=True, stdin=subprocess.DEVNULL,
                                timeout=30)
        self.assertEqual(result.returncode, 127)
        self.assertTrue(result.stderr.startswith(
            "zpool: cannot run /nonexistent/zpool"), result.stderr)

    def test_c_string(self):
        """
        Paths become C string literals with quotes and backslashes escaped.
        """
        self.assertEqual(_lab.c_string('/a "b"\\c'), '"/a \\"b\\"\\\\c"')

    def test_wrapper_names_real_commands(self):
        """
        The written wrapper runs with an absolute interpreter and execs the
        host's real ``zfs`` and ``zpool``.
        """
        text = _lab.zfs_exec_text()
        first = text.splitlines()[0]
        self.assertTrue(first.startswith("#!/") and first.endswith(" -IS"))
        for name, real in _lab.zfs_commands().items():
            self.assertTrue(repr(name) in text and repr(real) in text)


class ZFSExecLabTests(SynchronousTestCase):
    """
    On a lab node, ``zfs`` acts in the ZFS daemon's mount namespace.
    """

    def test_unmount_on_node_reaches_daemon(self):
        """
        ``zfs unmount`` run on a node unmounts the dataset where the daemon
        mounted it (the host), so ``zfs destroy`` on the node then succeeds
        instead of answering "busy" forever.
        """
        lab = shared_lab()
        node = lab.machine("node2")
        dataset = "%s/unmount-%s" % (node.pool, uuid.uuid4().hex[:8])
        node.run(["zfs", "create", dataset])
        point = node.zfs_mount + "/" + dataset.split("/", 1)[1]
        self.assertTrue(host_mounted(point))
        node.run(["zfs", "unmount", dataset])
        self.assertFalse(host_mounted(point))
        deadline = time.monotonic() + 10
        while True:
            result = node.run(["zfs", "destroy", dataset], check=False)
            if result.returncode == 0:
                break
            self.assertTrue(
                "busy" in result.stderr and time.monotonic() < deadline,
                result.stderr)
            time.sleep(0.25)
        listed = node.run(["zfs", "list", "-H", "-o", "name"]).stdout.split()
        self.assertNotIn(dataset, listed)
