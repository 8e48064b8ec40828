"""
Tests for :mod:`flocker.testtools` as shipped: importable without the test
extras, as the benchmarks need.
"""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

#: Prints, as JSON, which test extras importing the given modules loaded.
_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    __import__(name)
print(json.dumps(sorted(
    name for name in ("pytest", "_pytest", "hypothesis") if name in sys.modules)))
"""


def _extras_loaded(*modules):
    """
    :return: The test extras loaded by importing ``modules`` in a fresh
        interpreter (with ``admin/`` on its path).
    """
    output = subprocess.run(
        [sys.executable, "-c", _PROBE, os.path.join(TOP, "admin")]
        + list(modules), check=True, capture_output=True, text=True,
        cwd=TOP).stdout
    return json.loads(output)


class NoTestExtrasTests(SynchronousTestCase):
    """
    The shared test helpers and the lab client import without pytest or
    hypothesis.
    """

    def test_testtools(self):
        """
        Importing ``flocker.testtools`` loads neither pytest nor hypothesis.
        """
        self.assertEqual([], _extras_loaded("flocker.testtools"))

    def test_lab_client(self):
        """
        Importing the lab client (``admin/_lab_client.py``), which the
        benchmarks use, loads neither.
        """
        self.assertEqual([], _extras_loaded("_lab_client"))

    def test_probe(self):
        """
        The probe does see an extra that is imported (so the two tests above
        can fail).
        """
        self.assertEqual(["hypothesis"],
                         _extras_loaded("flocker.testtools.strategies"))
