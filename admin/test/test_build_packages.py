"""
Tests for ``admin/build-packages`` (``admin/_packaging.py``): the pure
helpers, and one real build whose wheel, sdist and Debian package are
inspected (control fields, files, the unit, lintian) and whose package is
unpacked into a scratch root where its Python environment runs Flocker;
its wheel is installed into a fresh environment as an operator installs
it (``pip install``), offline, and checks the documented examples.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Its test tooling (whatever pytest's import mode).
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _packaging  # noqa: E402

from _wheelhouse import wheelhouse  # noqa: E402

EXAMPLES = _packaging.REPO / "docs" / "examples"


def _build():
    """
    Build everything into a scratch ``dist``.

    :return: The ``dist`` directory.
    :raises RuntimeError: With the build's stderr, where it fails.
    """
    dist = Path(tempfile.mkdtemp(prefix="flocker-dist-"))
    result = subprocess.run(
        [sys.executable, str(_packaging.REPO / "admin" / "build-packages"),
         "--dist", str(dist)], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        shutil.rmtree(str(dist), True)
        raise RuntimeError(result.stderr)
    return dist


def _deb(dist):
    [package] = dist.glob("flocker-node_*.deb")
    return package


def _pins():
    return {line for line in _packaging.REQUIREMENTS.read_text().splitlines()
            if line and not line.startswith("#")}


class PackagingTests(SynchronousTestCase):
    """
    ``_packaging``'s pieces, without building anything.
    """

    def test_python_depends(self):
        """
        The package depends on the Python minor version it was built with.
        """
        self.assertEqual(
            _packaging.python_depends((3, 11)),
            "python3 (>= 3.11), python3 (<< 3.12)")

    def test_relocate(self):
        """
        ``relocate`` rewrites the staging path in text files and symbolic
        links, drops byte-compiled files and leaves binary files alone.
        """
        tmp_path = temporary_path(self)
        staged = tmp_path / "stage" / "opt" / "flocker"
        (staged / "bin").mkdir(parents=True)
        (staged / "lib" / "__pycache__").mkdir(parents=True)
        (staged / "bin" / "tool").write_text("#!%s/bin/python\nimport x\n" % (
            staged,))
        (staged / "lib" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"x")
        binary = b"\0" + str(staged).encode()
        (staged / "lib" / "blob.so").write_bytes(binary)
        os.symlink(str(staged / "bin" / "tool"), str(staged / "bin" / "link"))
        changed = _packaging.relocate(staged, str(staged), "/opt/flocker")
        self.assertEqual(
            (changed, (staged / "bin" / "tool").read_text().splitlines()[0],
             (staged / "lib" / "__pycache__").exists(),
             (staged / "lib" / "blob.so").read_bytes(),
             os.readlink(str(staged / "bin" / "link"))),
            (2, "#!/opt/flocker/bin/python", False, binary,
             "/opt/flocker/bin/tool"))

    def test_lintian_overrides_explained(self):
        """
        Every lintian override carries its reason as a comment line.
        """
        lines = _packaging.lintian_overrides_text().splitlines()
        self.assertEqual(
            [line.startswith("#") for line in lines[0::2]],
            [True] * len(_packaging.LINTIAN_OVERRIDES))
        self.assertTrue(
            all(line.startswith("flocker-node: ") for line in lines[1::2]))



class BuiltPackagesTests(SynchronousTestCase):
    """
    What ``admin/build-packages`` builds (once, for all these tests).
    """

    @classmethod
    def setUpClass(cls):
        if shutil.which("dpkg-deb") is None:
            raise SkipTest("dpkg-deb is needed to build the Debian package")
        cls.built = _build()
        cls.addClassCleanup(shutil.rmtree, str(cls.built), True)

    def test_wheel_and_sdist(self):
        """
        The wheel holds the package, the bridge's top-level module and the
        console scripts; the sdist holds the sources and the documentation.
        """
        version = _packaging.project_version()
        wheel = self.built / ("flocker-%s-py3-none-any.whl" % (version,))
        with zipfile.ZipFile(str(wheel)) as archive:
            names = set(archive.namelist())
            entry_points = archive.read(
                "flocker-%s.dist-info/entry_points.txt" % (version,)).decode()
        with tarfile.open(str(self.built / ("flocker-%s.tar.gz" % (
                version,)))) as sd:
            sources = {name.split("/", 1)[-1] for name in sd.getnames()}
        self.assertEqual(
            ({"flocker/node/_docker.py", "flocker/node/_dockerapi.py",
              "flocker/volume/_capabilities.py", "flocker_bridge.py"} <= names,
             all(command in entry_points for command in
                 ("flocker-deploy", "flocker-node", "flocker-volume",
                  "flocker-node-bridge = flocker_bridge:console_main")),
             {"pyproject.toml", "flocker/__init__.py"} <= sources),
            (True, True, True))

    def test_control_fields(self):
        """
        The Debian package is flocker-node of this version, depending on
        Docker, ZFS, OpenSSH's server, iptables and its Python.
        """
        fields = subprocess.run(["dpkg-deb", "-f", str(_deb(self.built))],
                                capture_output=True, text=True,
                                check=True).stdout
        control = dict(line.split(": ", 1) for line in fields.splitlines()
                       if ": " in line and not line.startswith(" "))
        depends = [d.strip() for d in control["Depends"].split(",")]
        self.assertEqual(
            (control["Package"], control["Version"],
             control["Architecture"], control["Section"]),
            ("flocker-node", _packaging.project_version() + "-1",
             subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                            text=True).stdout.strip(), "admin"))
        self.assertLessEqual(
            {"docker.io | docker-ce", "zfsutils-linux | zfs-fuse",
             "openssh-server", "iptables"},
            set(depends))
        self.assertTrue(any(d.startswith("python3 (>= 3.") for d in depends))

    def test_files(self):
        """
        The package installs the environment under /opt/flocker (exactly the
        pinned requirements, and Flocker), the two node commands in /usr/bin
        and the systemd unit running the agent; maintainer scripts are Python.
        """
        tmp_path = temporary_path(self)
        root = tmp_path / "root"
        subprocess.run(["dpkg-deb", "-R", str(_deb(self.built)), str(root)],
                       check=True)
        unit = (root / "lib" / "systemd" / "system" /
                "flocker-node.service").read_text()
        self.assertEqual(
            ([os.readlink(str(root / "usr" / "bin" / c))
              for c in ("flocker-node", "flocker-volume")],
             "ExecStart=/usr/bin/flocker-node agent" in unit
             or "ExecStart=/usr/bin/env flocker-node agent" in unit,
             "WantedBy=multi-user.target" in unit,
             set((root / "opt" / "flocker" / "requirements.txt").read_text()
                 .splitlines()) - _pins(),
             (root / "DEBIAN" / "postinst").read_text().splitlines()[0],
             (root / "opt" / "flocker" / "bin" / "flocker-node").read_text()
             .splitlines()[0]),
            (["/opt/flocker/bin/flocker-node", "/opt/flocker/bin/flocker-volume"],
             True, True, {"flocker==%s" % (_packaging.project_version(),)},
             "#!/usr/bin/python3", "#!/opt/flocker/bin/python"))

    def test_environment_runs(self):
        """
        Unpacked into a scratch root, the package's own Python environment
        (nothing from this repository) runs Flocker's node commands.
        """
        tmp_path = temporary_path(self)
        root = tmp_path / "root"
        subprocess.run(["dpkg-deb", "-x", str(_deb(self.built)), str(root)],
                       check=True)
        python = root / "opt" / "flocker" / "bin" / "python"
        result = subprocess.run(
            [str(python), "-m", "flocker.node.script", "--version"],
            capture_output=True, text=True, cwd="/", env={"PATH": "/usr/bin"},
            timeout=120)
        where = subprocess.run(
            [str(python), "-c", "import flocker; print(flocker.__file__)"],
            capture_output=True, text=True, cwd="/", env={"PATH": "/usr/bin"},
            timeout=120)
        self.assertEqual(
            (result.returncode, result.stdout.strip(),
             where.stdout.startswith(str(root / "opt" / "flocker"))),
            (0, "flocker-node %s" % (_packaging.project_version(),), True),
            result.stderr + where.stderr)

    def test_lintian(self):
        """
        lintian finds nothing but what the package's overrides explain.
        """
        if shutil.which("lintian") is None:
            raise SkipTest("lintian is not installed")
        result = subprocess.run(["lintian", str(_deb(self.built))],
                                capture_output=True, text=True, timeout=900)
        findings = [line for line in result.stdout.splitlines()
                    if line[:2] in ("E:", "W:")]
        self.assertEqual(findings, [], result.stdout)

    def _operator_environment(self, tmp_path):
        """
        Install the wheel as an operator does (``pip install flocker``),
        into a fresh virtual environment of this machine's Python, without
        any package index: ``pip --no-index`` finds the wheel and its
        dependencies in a wheelhouse made of the ones already installed
        here (``_wheelhouse``).

        :return: ``(bin directory, environment for its commands)``.
        """
        version = _packaging.project_version()
        wheel = self.built / ("flocker-%s-py3-none-any.whl" % (version,))
        house = tmp_path / "wheelhouse"
        house.mkdir()
        with zipfile.ZipFile(str(wheel)) as archive:
            requires = [
                line.split(":", 1)[1].strip() for line in archive.read(
                    "flocker-%s.dist-info/METADATA" % (version,)
                ).decode("utf-8").splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
        wheelhouse(requires, str(house))
        venv = tmp_path / "operator"
        subprocess.run([os.path.join(sys.base_prefix, "bin", "python3"),
                        "-m", "venv", str(venv)], check=True, timeout=300)
        env = {"PATH": "%s:/usr/bin:/bin" % (venv / "bin",),
               "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull,
               "FLOCKER_WARM": "0"}
        installed = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check",
             "--no-input", "--no-index", "--find-links", str(house),
             str(wheel)], capture_output=True, text=True, env=env,
            cwd=str(tmp_path), timeout=900)
        self.assertEqual(installed.returncode, 0, installed.stderr)
        return venv / "bin", env

    def test_operator_install_checks_examples(self):
        """
        Installed from the wheel alone (offline, nothing of this checkout
        on its path), ``flocker-deploy --check`` validates the documented
        examples (the demo's and the compose example's), and names the
        lines of a broken one, one line each (``PATH:LINE:COL: message``),
        exit status 1, no traceback.
        """
        tmp_path = temporary_path(self)
        bin_dir, env = self._operator_environment(tmp_path)

        def check(*files):
            return subprocess.run(
                [str(bin_dir / "flocker-deploy"), "--check"]
                + [str(f) for f in files], capture_output=True, text=True,
                env=env, cwd=str(tmp_path), timeout=300)
        where = subprocess.run(
            [str(bin_dir / "python"), "-c",
             "import flocker; print(flocker.__file__)"], capture_output=True,
            text=True, env=env, cwd=str(tmp_path), timeout=120)
        demo = check(EXAMPLES / "demo" / "deployment-1.yml",
                     EXAMPLES / "demo" / "application.yml")
        compose = check(EXAMPLES / "compose" / "deployment.yml",
                        EXAMPLES / "compose" / "compose.yaml")
        broken = tmp_path / "application.yml"
        broken.write_text(
            (EXAMPLES / "demo" / "application.yml").read_text().replace(
                "image:", "imag:", 1))
        bad = check(EXAMPLES / "demo" / "deployment-1.yml", broken)
        self.assertEqual(
            (where.stdout.startswith(str(tmp_path / "operator")),
             demo.returncode, demo.stdout.splitlines()[-1:],
             compose.returncode, compose.stdout.splitlines()[-1:],
             bad.returncode, bad.stderr.splitlines()),
            (True, 0, ["2 applications on 3 nodes"], 0,
             ["4 applications on 3 nodes"], 1,
             ['%s:3:3: application redis has no "image"' % (broken,),
              '%s:4:5: unknown key "imag" in application redis (did you '
              'mean "image"?)' % (broken,)]),
            demo.stderr + compose.stderr + bad.stderr + bad.stdout)
