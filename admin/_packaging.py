"""
Building Flocker's packages (``admin/build-packages``): the wheel and sdist
for operators (``pip install flocker``), and the Debian package for nodes.

The Debian package ``flocker-node`` carries:

* ``/opt/flocker``: a Python virtual environment of its own, made with the
  target release's ``/usr/bin/python3``, holding Flocker's wheel and the
  dependencies pinned in ``admin/node-requirements.txt`` (nothing from the
  system's Python packages);
* ``/usr/bin/flocker-node`` and ``/usr/bin/flocker-volume``, links into it;
* the systemd unit ``flocker-node.service`` (running ``flocker-node
  agent``);
* ``Depends: docker.io | docker-ce, zfsutils-linux | zfs-fuse,
  openssh-server, iptables`` and the Python 3 minor version it was built
  with (compiled dependencies are built for it): a package is built on each
  release it is for (Debian 12 and 13 and Ubuntu 24.04 have different
  Python 3 versions).

It is built with ``dpkg-deb`` from a staging directory; the virtual
environment is made there and its paths rewritten to ``/opt/flocker``.
Maintainer scripts are Python (no shell): they reload systemd and enable
and start the unit after installation, and stop and disable it before
removal.  Pure helpers here; :func:`main` runs the commands (argument
vectors, with timeouts).
"""

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Pinned versions of the node environment's dependencies.
REQUIREMENTS = REPO / "admin" / "node-requirements.txt"

#: Where the package's Python environment lives on a node.
PREFIX = "/opt/flocker"

#: The Debian package's name.
PACKAGE = "flocker-node"

#: What a node needs besides Python.
DEPENDS = ["docker.io | docker-ce", "zfsutils-linux | zfs-fuse",
           "openssh-server", "iptables"]

#: The commands a node gets on its PATH.
COMMANDS = ["flocker-node", "flocker-volume"]

#: The unit the agent helper ships, used when present; else ours.
UNIT_SOURCES = [REPO / "flocker" / "node" / "flocker-node.service",
                REPO / "admin" / "packaging" / "flocker-node.service"]

MAINTAINER = ("Flocker developers "
              "<flocker-dev@users.noreply.github.com>")

#: The Debian revision of the package (the upstream version is Flocker's).
DEBIAN_REVISION = "1"

#: What the environment's compiled extensions need of the C library
#: (manylinux_2_28 wheels).
LIBC = "libc6 (>= 2.28)"

#: lintian tags that follow from what the package is, each with why.
LINTIAN_OVERRIDES = [
    ("dir-or-file-in-opt",
     "a self-contained Python environment, kept apart from the system's"),
    ("unusual-interpreter",
     "the environment's own Python runs its scripts"),
    ("script-not-executable",
     "modules of the pinned dependencies that carry a #! line"),
    ("embedded-library",
     "the pinned wheels bundle their own libraries"),
    ("unusual-control-interpreter",
     "maintainer scripts are Python: Flocker uses no shell"),
    ("no-manual-page",
     "flocker-node --help and the documentation describe the commands"),
    ("initial-upload-closes-no-bugs",
     "built for operators' own repositories, not uploaded to Debian"),
]


class BuildError(Exception):
    """
    A step failed; the message is one line.
    """


def run(argv, timeout=1800, cwd=None, env=None):
    """
    Run a command, raising :class:`BuildError` with its last output line.

    :return: Its standard output (text).
    """
    try:
        result = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, timeout=timeout,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise BuildError("%s: command not found" % (argv[0],))
    except subprocess.TimeoutExpired:
        raise BuildError("%s: no answer after %d s" % (argv[0], timeout))
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise BuildError("%s failed (exit %d)%s" % (
            " ".join(str(a) for a in argv[:3]), result.returncode,
            ": " + lines[-1] if lines else ""))
    return result.stdout


def project_version():
    """
    :return: Flocker's version, read from ``flocker/__init__.py``.
    """
    text = (REPO / "flocker" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def python_depends(version_info):
    """
    :param version_info: ``(major, minor)`` of the environment's Python.
    :return: The ``python3`` dependency pinning that minor version.
    """
    major, minor = version_info[:2]
    return "python3 (>= %d.%d), python3 (<< %d.%d)" % (
        major, minor, major, minor + 1)


def control_text(version, architecture, installed_size, python):
    """
    :param str version: The package version.
    :param str architecture: ``dpkg --print-architecture``.
    :param int installed_size: KiB.
    :param python: ``(major, minor)`` of the environment's Python.
    :return: The ``DEBIAN/control`` file.
    """
    return "\n".join([
        "Package: %s" % (PACKAGE,),
        "Version: %s" % (version,),
        "Architecture: %s" % (architecture,),
        "Maintainer: %s" % (MAINTAINER,),
        "Installed-Size: %d" % (installed_size,),
        "Depends: %s" % (", ".join([python_depends(python), LIBC]
                                   + DEPENDS),),
        "Section: admin",
        "Priority: optional",
        "Homepage: https://github.com/ClusterHQ/flocker",
        "Description: Flocker node agent: containers and ZFS volumes that "
        "move together",
        " Flocker runs Docker containers across several machines, routes",
        " traffic to them from any machine and moves their ZFS volumes with",
        " them.  This package is what each node runs: the flocker-node agent",
        " (systemd unit flocker-node.service), flocker-node and",
        " flocker-volume, in a Python environment of their own under",
        " /opt/flocker.",
        "",
    ])


_POSTINST = '''#!/usr/bin/python3
"""flocker-node postinst: enable and start the agent under systemd."""
import os
import subprocess
import sys

if sys.argv[1:2] == ["configure"] and os.path.isdir("/run/systemd/system"):
    subprocess.run(["systemctl", "daemon-reload"], check=False)
    subprocess.run(["systemctl", "enable", "flocker-node.service"],
                   check=False)
    subprocess.run(["systemctl", "restart", "flocker-node.service"],
                   check=False)
'''

_PRERM = '''#!/usr/bin/python3
"""flocker-node prerm: stop the agent before its files go."""
import os
import subprocess
import sys

if sys.argv[1:2] == ["remove"] and os.path.isdir("/run/systemd/system"):
    subprocess.run(["systemctl", "stop", "flocker-node.service"],
                   check=False)
    subprocess.run(["systemctl", "disable", "flocker-node.service"],
                   check=False)
'''

#: Maintainer scripts, by name.  (No postrm: it may run once python3 is
#: gone, and there is nothing to undo then; pools and volumes stay.)
MAINTAINER_SCRIPTS = {"postinst": _POSTINST, "prerm": _PRERM}


def copyright_text():
    """
    :return: ``/usr/share/doc/flocker-node/copyright``.
    """
    return ("Format: https://www.debian.org/doc/packaging-manuals/"
            "copyright-format/1.0/\nUpstream-Name: flocker\n\n"
            "Files: *\nCopyright: 2026 Flocker developers\n"
            "License: Apache-2.0\n"
            " On Debian systems the full text of the Apache License 2.0 is "
            "in\n /usr/share/common-licenses/Apache-2.0.\n")


def changelog_text(version, date):
    """
    :param str date: RFC 2822 date.
    :return: ``changelog.Debian`` (before compression).
    """
    return ("%s (%s) unstable; urgency=medium\n\n"
            "  * Built by admin/build-packages; see CHANGELOG.rst.\n\n"
            " -- %s  %s\n" % (PACKAGE, version, MAINTAINER, date))


def lintian_overrides_text():
    """
    :return: ``/usr/share/lintian/overrides/flocker-node``.
    """
    return "".join("# %s\n%s: %s\n" % (why, PACKAGE, tag)
                   for tag, why in LINTIAN_OVERRIDES)


def tidy(root):
    """
    Remove what a node does not need and lintian rightly flags: version
    control files the wheels carry; strip the compiled extensions.

    :param Path root: The environment's directory in the staging tree.
    """
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if name in (".gitignore", ".gitattributes", ".hgignore"):
                os.unlink(path)
            elif name.endswith(".so") and not os.path.islink(path):
                run(["strip", "--strip-unneeded", "--remove-section=.comment",
                     "--remove-section=.note", path], timeout=120)


def relocate(root, staged, final):
    """
    Rewrite the staging path of a virtual environment to its final path in
    every text file that names it (script ``#!`` lines, ``activate``,
    ``pyvenv.cfg``, ``direct_url.json``), and drop byte-compiled files
    (they record the staging path; Python writes them again on the node).

    :param Path root: The environment's directory in the staging tree.
    :param str staged: Its path while staged.
    :param str final: Its path on the node.
    :return: The number of files rewritten.
    """
    old, new = staged.encode("utf-8"), final.encode("utf-8")
    changed = 0
    for directory, subdirectories, files in os.walk(root):
        if "__pycache__" in subdirectories:
            shutil.rmtree(os.path.join(directory, "__pycache__"))
            subdirectories.remove("__pycache__")
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                target = os.readlink(path)
                if target.startswith(staged):
                    os.unlink(path)
                    os.symlink(final + target[len(staged):], path)
                    changed += 1
                continue
            with open(path, "rb") as f:
                data = f.read()
            if old in data and b"\0" not in data:
                with open(path, "wb") as f:
                    f.write(data.replace(old, new))
                changed += 1
    return changed


def installed_size(root):
    """
    :return: The staged tree's size in KiB (``Installed-Size``).
    """
    total = 0
    for directory, _, files in os.walk(root):
        if os.path.relpath(directory, root).split(os.sep)[0] == "DEBIAN":
            continue
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return (total + 1023) // 1024


def unit_source():
    """
    :return: The unit file to package.
    """
    for path in UNIT_SOURCES:
        if path.exists():
            return path
    raise BuildError("no flocker-node.service found")


def build_python(dist, python):
    """
    Build the wheel and the sdist into ``dist``.

    :return: The wheel's path.
    """
    scratch = REPO / "build"
    existed = scratch.exists()
    try:
        run([python, "-m", "build", "--no-isolation", "--sdist", "--wheel",
             "--outdir", dist, REPO], timeout=900)
    finally:
        # setuptools' own build directory, not ours to leave behind.
        if not existed:
            shutil.rmtree(scratch, ignore_errors=True)
    wheels = sorted(Path(dist).glob("flocker-%s-*.whl" % (
        project_version(),)))
    if not wheels:
        raise BuildError("python -m build made no wheel in %s" % (dist,))
    return wheels[-1]


def build_deb(dist, wheel, target_python="/usr/bin/python3", work=None):
    """
    Build ``flocker-node_VERSION-REVISION_ARCH.deb`` into ``dist``.

    :param Path wheel: Flocker's wheel.
    :param str target_python: The release's Python the environment uses.
    :param work: A scratch directory, or ``None`` for a temporary one.
    :return: The package's path.
    """
    version = "%s-%s" % (project_version(), DEBIAN_REVISION)
    architecture = run(["dpkg", "--print-architecture"]).strip()
    scratch = tempfile.mkdtemp(prefix="flocker-deb-", dir=work)
    try:
        stage = Path(scratch) / ("%s_%s_%s" % (PACKAGE, version,
                                               architecture))
        venv = stage / PREFIX.lstrip("/")
        venv.parent.mkdir(parents=True)
        run([target_python, "-m", "venv", venv], timeout=300)
        pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check",
               "--no-input"]
        run(pip + ["install", "-q", "--no-compile", "--constraint",
                   REQUIREMENTS, str(wheel)], timeout=1800)
        python = tuple(int(part) for part in run(
            [venv / "bin" / "python", "-c",
             "import sys; print('%d %d' % sys.version_info[:2])"]).split())
        frozen = run(pip + ["freeze", "--all", "--exclude", "pip",
                            "--exclude", "setuptools"])
        run(pip + ["uninstall", "-q", "-y", "pip", "setuptools"])
        # Flocker itself is listed by the wheel's (build-time) path.
        frozen = "".join(
            "flocker==%s\n" % (project_version(),)
            if re.match(r"(?i)flocker\s*@", line) else line + "\n"
            for line in frozen.splitlines())
        (venv / "requirements.txt").write_text(frozen)
        tidy(venv)
        relocate(venv, str(venv), PREFIX)
        usr_bin = stage / "usr" / "bin"
        usr_bin.mkdir(parents=True)
        for command in COMMANDS:
            (usr_bin / command).symlink_to("%s/bin/%s" % (PREFIX, command))
        unit_dir = stage / "lib" / "systemd" / "system"
        unit_dir.mkdir(parents=True)
        shutil.copyfile(unit_source(), unit_dir / "flocker-node.service")
        overrides = stage / "usr" / "share" / "lintian" / "overrides"
        overrides.mkdir(parents=True)
        (overrides / PACKAGE).write_text(lintian_overrides_text())
        docs = stage / "usr" / "share" / "doc" / PACKAGE
        docs.mkdir(parents=True)
        (docs / "copyright").write_text(copyright_text())
        date = run(["date", "-R", "-u", "-d", "@%d" % (
            int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or int(
                os.stat(REPO / "flocker" / "__init__.py").st_mtime),)])
        with gzip.GzipFile(str(docs / "changelog.Debian.gz"), "wb",
                           mtime=0) as f:
            f.write(changelog_text(version, date.strip()).encode("utf-8"))
        control = stage / "DEBIAN"
        control.mkdir()
        for name, text in MAINTAINER_SCRIPTS.items():
            (control / name).write_text(text)
            (control / name).chmod(0o755)
        (control / "control").write_text(control_text(
            version, architecture, installed_size(stage), python))
        for directory, subdirectories, files in os.walk(stage):
            os.chmod(directory, 0o755)
            for name in files:
                path = os.path.join(directory, name)
                if not os.path.islink(path):
                    mode = os.stat(path).st_mode
                    os.chmod(path, 0o755 if mode & 0o111 else 0o644)
        package = Path(dist) / ("%s.deb" % (stage.name,))
        run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage,
             package], timeout=900)
        return package
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv, stdout, stderr):
    """
    ``admin/build-packages [--dist DIR] [--only python|deb]``.

    :return: The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="admin/build-packages",
        description="Build Flocker's wheel, sdist and Debian package.")
    parser.add_argument("--dist", default=str(REPO / "dist"),
                        help="output directory (default: dist/)")
    parser.add_argument("--python", default=sys.executable,
                        help="Python running the build (default: this one)")
    parser.add_argument("--target-python", default="/usr/bin/python3",
                        help="the nodes' Python the package's environment "
                        "uses (default: /usr/bin/python3)")
    options = parser.parse_args(argv)
    try:
        os.makedirs(options.dist, exist_ok=True)
        wheel = build_python(options.dist, options.python)
        stdout.write("build-packages: %s\n" % (wheel,))
        package = build_deb(options.dist, wheel, options.target_python)
        stdout.write("build-packages: %s\n" % (package,))
    except (BuildError, OSError) as e:
        stderr.write("build-packages: %s\n" % (e,))
        return 1
    return 0
