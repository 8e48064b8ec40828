"""
Tests for ``admin/_nsinit.py``: preparing a lab machine's mount and UTS
namespace.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import cases, require, temporary_path, with_cases

ADMIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ADMIN))

import _nsinit  # noqa: E402
from _lab_client import lab_missing  # noqa: E402


# Runs _nsinit.main in a throw-away namespace, then reports what it sees.
_PROBE = """
import json, os, socket, sys
sys.path.insert(0, sys.argv[1])
import _nsinit
code = _nsinit.main(sys.argv[3:])
points = _nsinit.mounts()
print(json.dumps({
    "code": code,
    "hostname": socket.gethostname(),
    "hosts": open("/etc/hosts").read(),
    "kept": os.listdir(sys.argv[2]),
    "run": sorted(os.listdir("/run")),
    "nsfs": [p for p, t in points if t == "nsfs"],
    "net": sorted(os.listdir("/sys/class/net")),
    "cgroup": any(p.startswith("/sys/fs/cgroup/") for p, t in points),
}))
"""


# Runs _nsinit.main with an overlay on /opt, writes there, reports.
_OVERLAY_PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import _nsinit
code = _nsinit.main(sys.argv[3:])
with open(os.path.join("/opt", sys.argv[2]), "w") as f:
    f.write("installed")
print(json.dumps({"code": code, "opt": sorted(os.listdir("/opt"))}))
"""


@with_cases
class NSInitTests(SynchronousTestCase):
    """
    ``_nsinit`` parses its arguments, reads mount tables, and prepares a
    namespace that nothing of reaches the host.
    """

    def test_unescape_mountinfo(self):
        """
        Octal escapes of mountinfo (space, tab, newline, backslash) are undone;
        other backslashes stay.
        """
        self.assertEqual(_nsinit._unescape(r"/a\040b\011c\134d\012"),
                         "/a b\tc\\d\n")
        self.assertEqual(_nsinit._unescape(r"/x\4"), r"/x\4")

    def test_mounts_lists_root(self):
        """
        ``mounts`` reads this namespace's mount table.
        """
        self.assertIn("/", [point for point, _ in _nsinit.mounts()])

    def test_parse_arguments(self):
        """
        ``--keep``, ``--bind`` and ``--overlay`` may repeat.
        """
        options = _nsinit.parse_arguments([
            "--hostname", "n", "--keep", "/run/a", "--keep", "/run/b",
            "--scratch", "/run/a/s", "--bind", "x:/etc/hosts",
            "--overlay", "/usr:u1:w1", "--overlay", "/opt:u2:w2"])
        self.assertEqual(
            (options.keep, options.bind, options.overlay),
            (["/run/a", "/run/b"], ["x:/etc/hosts"],
             ["/usr:u1:w1", "/opt:u2:w2"]))

    def test_prepares_namespace(self):
        """
        In a fresh network, mount and UTS namespace, ``main`` sets the host
        name, binds files, gives the machine a private ``/run`` keeping the
        asked-for directories, drops copied namespace files, and mounts a sysfs
        showing only this namespace's devices with the cgroups still there.
        Nothing of it reaches the host.
        """
        tmp_path = temporary_path(self)
        missing = lab_missing()
        require(missing is None, missing)
        keep = Path("/run/flocker-nsinit-test-%d" % (os.getpid(),))
        keep.mkdir()
        try:
            (keep / "marker").write_text("x")
            scratch = keep / "scratch"
            scratch.mkdir()
            hosts = tmp_path / "hosts"
            hosts.write_text("10.99.0.11\tnode1\n")
            result = subprocess.run(
                ["unshare", "--net", "--mount", "--uts", "--propagation",
                 "slave", "--", sys.executable, "-c", _PROBE, str(ADMIN),
                 str(keep), "--hostname", "probe-host", "--keep", str(keep),
                 "--scratch", str(scratch), "--bind",
                 "%s:/etc/hosts" % (hosts,)],
                capture_output=True, text=True, timeout=60,
                stdin=subprocess.DEVNULL)
            self.assertEqual(result.returncode, 0, result.stderr)
            seen = json.loads(result.stdout)
        finally:
            for child in sorted(keep.rglob("*"), reverse=True):
                child.rmdir() if child.is_dir() else child.unlink()
            keep.rmdir()
        self.assertEqual(seen["code"], 0)
        self.assertEqual(seen["hostname"], "probe-host")
        self.assertEqual(seen["hosts"], "10.99.0.11\tnode1\n")
        self.assertIn("marker", seen["kept"])
        self.assertEqual(seen["run"],
                         sorted(["lock", "sshd", "user", keep.name]))
        self.assertEqual(seen["nsfs"], [])
        self.assertEqual(seen["net"], ["lo"])
        self.assertTrue(seen["cgroup"])
        self.assertNotEqual(os.uname().nodename, "probe-host")
        self.assertNotEqual(Path("/etc/hosts").read_text(), seen["hosts"])

    def test_overlay(self):
        """
        ``--overlay`` makes a host directory writable inside the namespace:
        what is written there lands in the upper directory, the host's files
        stay visible, and the host's directory is not written.
        """
        tmp_path = temporary_path(self)
        missing = lab_missing()
        require(missing is None, missing)
        keep = Path("/run/flocker-nsinit-test-%d" % (os.getpid(),))
        keep.mkdir()
        name = "flocker-nsinit-probe-%d" % (os.getpid(),)
        upper, work = tmp_path / "upper", tmp_path / "work"
        upper.mkdir()
        work.mkdir()
        try:
            scratch = keep / "scratch"
            scratch.mkdir()
            result = subprocess.run(
                ["unshare", "--mount", "--uts", "--propagation", "slave", "--",
                 sys.executable, "-c", _OVERLAY_PROBE, str(ADMIN), name,
                 "--hostname", "probe-host", "--scratch", str(scratch),
                 "--overlay", "/opt:%s:%s" % (upper, work)],
                capture_output=True, text=True, timeout=60,
                stdin=subprocess.DEVNULL)
        finally:
            for child in sorted(keep.rglob("*"), reverse=True):
                child.rmdir() if child.is_dir() else child.unlink()
            keep.rmdir()
        self.assertEqual(result.returncode, 0, result.stderr)
        seen = json.loads(result.stdout)
        self.assertEqual((seen["code"], seen["opt"],
                (upper / name).read_text(), os.path.exists("/opt/" + name)), (
            0, sorted(os.listdir("/opt") + [name]), "installed", False))

    def test_reports_failure(self):
        """
        A mount that cannot be made gives one line on stderr and exit code 1.
        """
        missing = lab_missing()
        require(missing is None, missing)
        result = subprocess.run(
            ["unshare", "--mount", "--uts", "--propagation", "slave", "--",
             sys.executable, str(ADMIN / "_nsinit.py"), "--hostname", "x",
             "--scratch", "/nonexistent/scratch"],
            capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.count("\n"), 1)
        self.assertIn("mount tmpfs on /nonexistent/scratch", result.stderr)

    @cases([("--hostname",), ("--scratch",)], ids=["hostname", "scratch"])
    def test_required_arguments(self, flag):
        """
        Host name and scratch directory are required.
        """
        argv = ["--hostname", "h", "--scratch", "/s"]
        argv.remove(flag)
        argv = [a for a in argv if a != {"--hostname": "h",
                                         "--scratch": "/s"}[flag]]
        with self.assertRaises(SystemExit):
            _nsinit.parse_arguments(argv)
