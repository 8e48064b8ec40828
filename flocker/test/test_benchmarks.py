"""
Tests for the benchmark scripts that need neither root nor the lab:
``benchmarks/plot.py`` and ``benchmarks/scale.py``.
"""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "benchmarks")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: A results document of ``benchmarks/run``, with made-up figures.
RESULTS = {
    "date": "2026-01-01T00:00:00Z",
    "quick": True,
    "machine": {"cpus": 2, "kernel": "6.1.0", "python": "3.11.2"},
    "benchmarks": {
        "deploy": {"move_downtime_s": 0.8,
                   "curve_volume": [[10, 0.7], [100, 0.75], [1024, 0.8]],
                   "curve_new": [[1, 0.7], [16, 0.9], [64, 1.4]]},
        "volumes": {"push_mb_s": 150.0},
    },
    "targets": [],
}


class PlotTests(SynchronousTestCase):
    """
    Tests for ``benchmarks/plot.py``.
    """

    def test_writes_png(self):
        """
        Given a results file with the deploy benchmark's downtime curves,
        ``plot.py RESULTS OUT`` writes a PNG image to ``OUT``.
        """
        directory = temporary_directory(self)
        os.makedirs(directory)
        results = os.path.join(directory, "results.json")
        with open(results, "w") as f:
            json.dump(RESULTS, f)
        out = os.path.join(directory, "downtime.png")
        result = subprocess.run(
            [sys.executable, os.path.join(BENCHMARKS, "plot.py"), results,
             out], capture_output=True, text=True, timeout=120)
        # Not an empty stderr: a first run of matplotlib reports building
        # its font cache there.
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(len(PNG_SIGNATURE)), PNG_SIGNATURE)


class ScaleTests(SynchronousTestCase):
    """
    Tests for ``benchmarks/scale.py``.
    """

    def test_quick_figures(self):
        """
        ``scale.py --quick`` ends with one JSON object holding the planner,
        fan-out and memory figures.
        """
        result = subprocess.run(
            [sys.executable, os.path.join(BENCHMARKS, "scale.py"), "--quick"],
            capture_output=True, text=True, timeout=240,
            stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertTrue({"plan_1000_nodes_s", "fanout_100_nodes_s",
                         "client_rss_mb", "node_rss_mb"} <= set(figures),
                        figures)
