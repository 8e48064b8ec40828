"""
The documentation builds, with every warning an error.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs")


class DocsBuildTests(SynchronousTestCase):
    """
    Tests for the Sphinx documentation in ``docs/``.
    """

    def test_build(self):
        """
        ``sphinx-build -W`` succeeds: no broken reference, no missing page,
        no docstring that autodoc cannot render.
        """
        output = temporary_directory(self)
        result = subprocess.run(
            [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", DOCS,
             output], capture_output=True, text=True, timeout=600)
        self.assertEqual((result.returncode, result.stderr), (0, ""))
