"""
Lab nodes run Flocker from its Debian package, installed as a server
installs it (``docs/install.rst``), not from the developer's checkout.

* The package is built by ``admin/build-packages`` (the same command, with
  the checkout's ``.venv``), once per change of what goes into it: the
  digest of its inputs (:data:`INPUTS`: the ``flocker`` package, the build
  files, the pinned requirements, the node's Python) names a directory of
  the checkout's package cache, ``dist/lab/DIGEST/``, shared by every lab
  of the checkout (a lock file serialises builds).  An unchanged checkout
  costs nothing; a change costs one build (20-30 s on the 2-core test
  machines), which ``admin/lab up`` runs while the nodes boot.  The newest
  :data:`KEEP` builds are kept.
* Each node installs it with ``dpkg -i`` inside its own namespaces: its
  ``/usr``, ``/opt``, ``/var/lib/dpkg`` and ``/etc/default`` are writable
  overlays whose changes stay in the node's state (see ``_nsinit.py``), so
  the package's files land where they land on a server (``/opt/flocker``,
  ``/usr/bin/flocker-*``, ``/lib/systemd/system/flocker-node.service``),
  dpkg checks its dependencies against the machine's, and its maintainer
  scripts run.  A node records the digest it installed; a newer build is
  installed over it (dpkg's upgrade path), and the agent restarted.
* ``/etc/default/flocker-node`` holds the node's settings, as the guide
  says to set them; the agent is started by ``_lab_unit.py`` from the unit
  the package installed.

The client (the operator's machine) keeps running ``flocker-deploy`` from
the checkout: that is the developer's tool under test.
"""

import fcntl
import hashlib
import os
import shutil
import time
from pathlib import Path

from _lab_host import run
from _lab_model import REPO, STANDARD_PATH, LabError

#: What the package is built from, relative to the repository: files, or
#: directories taken whole (byte-compiled files aside).
INPUTS = ["flocker", "pyproject.toml", "README.md", "admin/build-packages",
          "admin/_packaging.py", "admin/node-requirements.txt"]

#: The Python the package's environment is made with (the nodes').
TARGET_PYTHON = "/usr/bin/python3"

#: Where the installed package puts its unit.
UNIT = "/lib/systemd/system/flocker-node.service"

#: Builds kept in the cache.
KEEP = 3

#: Seconds a build may take.
BUILD_TIMEOUT = 1800

#: Seconds ``dpkg -i`` may take on a node.
INSTALL_TIMEOUT = 300


def _input_files(repo):
    for name in INPUTS:
        path = repo / name
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and "__pycache__" not in child.parts \
                        and child.suffix != ".pyc":
                    yield child
        elif path.exists():
            yield path


def package_digest(repo=REPO, target_python=TARGET_PYTHON):
    """
    :param Path repo: The checkout.
    :param str target_python: The nodes' Python.
    :return: A hex digest of everything the package is built from (file
        names and contents, and which Python the environment is made with).
    """
    digest = hashlib.sha256()
    digest.update(os.path.realpath(target_python).encode() + b"\0")
    for path in _input_files(repo):
        digest.update(str(path.relative_to(repo)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def cached_package(cache, digest):
    """
    :param Path cache: The package cache.
    :param str digest: :func:`package_digest`.
    :return: The ``.deb`` built for that digest, or ``None``.
    """
    found = sorted((cache / digest).glob("flocker-node_*.deb"))
    return found[-1] if found else None


def prune(cache, keep, digest):
    """
    Remove all but the ``keep`` newest builds (``digest``'s among them) and
    any build left unfinished.  Called with the cache's lock held.

    :param Path cache: The package cache.
    :param int keep: How many to keep.
    :param str digest: The build in use.
    """
    builds = sorted((p for p in cache.iterdir()
                     if p.is_dir() and p.name != digest),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    finished = [p for p in builds if not p.name.endswith(".partial")]
    for build in builds:
        if build not in finished[:keep - 1]:
            shutil.rmtree(build, ignore_errors=True)


def ensure_package(cache, python, log, digest=None):
    """
    Build the package unless the cache has it for the current code.

    :param Path cache: The package cache (``dist/lab``).
    :param Path python: The Python running ``admin/build-packages`` (the
        checkout's ``.venv``, which has ``build``).
    :param log: Called with a progress line.
    :param digest: The digest, or ``None`` to compute it.
    :return: ``(digest, path of the .deb)``.
    :raises LabError: If the build fails.
    """
    digest = digest or package_digest()
    found = cached_package(cache, digest)
    if found is not None:
        return digest, found
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        # Another lab of this checkout may be building the same code.
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = cached_package(cache, digest)
        if found is not None:
            return digest, found
        return digest, _build(cache, python, log, digest)


def _build(cache, python, log, digest):
    partial = cache / (digest + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    result = run([python, REPO / "admin" / "build-packages", "--dist",
                  partial, "--target-python", TARGET_PYTHON],
                 timeout=BUILD_TIMEOUT, check=False)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise LabError("admin/build-packages failed (exit %d)%s" % (
            result.returncode, ": " + lines[-1] if lines else ""))
    os.replace(partial, cache / digest)
    prune(cache, KEEP, digest)
    found = cached_package(cache, digest)
    if found is None:
        raise LabError("admin/build-packages made no flocker-node package")
    log("built %s in %.1fs (code changed)" % (found.name,
                                               time.monotonic() - started))
    return found


def install(node, digest, package):
    """
    Install the package on a node with ``dpkg -i``, inside the node, unless
    it already has this build.

    :param Node node: The node (its namespaces exist).
    :param str digest: The build's digest.
    :param Path package: The ``.deb``.
    :return: ``True`` if it was (re)installed.
    :raises LabError: If dpkg fails.
    """
    record = node.state_dir / "package.installed"
    try:
        if record.read_text().strip() == digest:
            return False
    except OSError:
        pass
    env = {"PATH": STANDARD_PATH, "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive"}
    result = run(node.nsenter() + ["dpkg", "-i", package], env=env,
                 timeout=INSTALL_TIMEOUT, check=False)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise LabError("%s: dpkg -i %s failed (exit %d)%s" % (
            node.name, package.name, result.returncode,
            ": " + lines[-1] if lines else ""))
    record.write_text(digest + "\n")
    return True


def installed_digest(node):
    """
    :param Node node: A node.
    :return: The digest of the build it installed, or ``None``.
    """
    try:
        return (node.state_dir / "package.installed").read_text().strip()
    except OSError:
        return None


def unit_command(node, main_pid):
    """
    :param Node node: A node.
    :param Path main_pid: Where the runner writes the agent's pid at every
        start of it.
    :return: The argument vector starting the node's agent from the unit
        its package installed (``_lab_unit.py`` inside the node).
    """
    return node.nsenter() + [TARGET_PYTHON, "-I", "-S",
                             str(Path(__file__).with_name("_lab_unit.py")),
                             "--main-pid", str(main_pid), UNIT]


__all__ = ["package_digest", "ensure_package", "install", "installed_digest",
           "unit_command", "UNIT", "KEEP"]
