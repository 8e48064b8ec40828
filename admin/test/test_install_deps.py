"""
Tests for ``admin/install-deps``'s byte-compiling step.
"""

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_path

INSTALL_DEPS = Path(__file__).resolve().parent.parent / "install-deps"


class CompilePythonTests(SynchronousTestCase):
    """
    ``compile_python`` leaves current bytecode for the repository's own
    modules, which imports use even where ``PYTHONDONTWRITEBYTECODE`` keeps
    them from writing any.
    """

    def setUp(self):
        self.install_deps = runpy.run_path(str(INSTALL_DEPS),
                                           run_name="install_deps")
        self.repo = temporary_path(self)
        package = self.repo / "flocker"
        (package / "sub").mkdir(parents=True)
        self.sources = [package / "__init__.py", package / "sub" / "mod.py",
                        self.repo / "flocker_bridge.py"]
        (package / "sub" / "__init__.py").write_text("")
        for source in self.sources:
            source.write_text("VALUE = %r\n" % (source.name,))

    def test_writes_bytecode(self):
        """
        Every module of ``flocker`` and the bridge has bytecode afterwards,
        which the interpreter then imports without compiling.
        """
        self.install_deps["compile_python"](Path(sys.executable), self.repo)
        for source in self.sources:
            cached = Path(importlib.util.cache_from_source(str(source)))
            self.assertTrue(cached.exists(), cached)
        # Checked by the interpreter itself: the import finds the cached
        # module current (its source unchanged since).
        loaded = subprocess.run(
            [sys.executable, "-c",
             "import flocker.sub.mod as m; print(m.__cached__)"],
            cwd=str(self.repo), stdout=subprocess.PIPE, check=True,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        self.assertEqual(
            importlib.util.cache_from_source(
                str(self.repo / "flocker" / "sub" / "mod.py")),
            loaded.stdout.decode().strip())

    def test_recompiles_changed(self):
        """
        A module changed since the last run gets new bytecode.
        """
        compile_python = self.install_deps["compile_python"]
        compile_python(Path(sys.executable), self.repo)
        source = self.sources[1]
        cached = Path(importlib.util.cache_from_source(str(source)))
        before = cached.read_bytes()
        source.write_text("VALUE = 'changed'\n")
        # compileall compares whole seconds of modification time.
        changed = source.stat().st_mtime + 10
        os.utime(source, (changed, changed))
        compile_python(Path(sys.executable), self.repo)
        self.assertNotEqual(before, cached.read_bytes())

    def test_failure_is_one_line(self):
        """
        A module that does not compile ends the step with ``InstallError``.
        """
        self.sources[1].write_text("def broken(:\n")
        self.assertRaises(
            self.install_deps["InstallError"],
            self.install_deps["compile_python"], Path(sys.executable),
            self.repo)
