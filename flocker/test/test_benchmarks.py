"""
Tests for the benchmark scripts that need neither root nor the lab:
``benchmarks/plot.py``, ``benchmarks/scale.py`` and the target verdicts of
``benchmarks/run``.
"""

import importlib.machinery
import importlib.util
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


def load_run():
    """
    :return: ``benchmarks/run`` as a module, without running it (it puts
        its directory first on ``sys.path`` to import ``_common``; the
        path is put back).
    """
    saved = list(sys.path)
    try:
        loader = importlib.machinery.SourceFileLoader(
            "flocker_benchmarks_run", os.path.join(BENCHMARKS, "run"))
        spec = importlib.util.spec_from_loader(loader.name, loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


class RunTargetsTests(SynchronousTestCase):
    """
    Tests for ``benchmarks/run``'s verdicts on targets.
    """

    def setUp(self):
        self.run = load_run()

    def target(self, targets, figure):
        return next(t for t in targets if t["figure"] == figure)

    def test_spread_and_verdict(self):
        """
        A target whose figure has a ``_spread`` beside it carries that
        spread; a spread wider than the margin to the target makes it "not
        decidable", with ``met`` null.
        """
        targets = self.run.check_targets({
            "routing": {"ratio": 0.97, "ratio_spread": 0.04}})
        self.assertEqual(
            {key: self.target(targets, "ratio")[key]
             for key in ("value", "spread", "verdict", "met")},
            {"value": 0.97, "spread": 0.04, "verdict": "not decidable",
             "met": None})

    def test_narrow_spread(self):
        """
        A spread narrower than the margin leaves the comparison to decide.
        """
        targets = self.run.check_targets({
            "volumes": {"push_ratio": 0.8, "push_ratio_spread": 0.03}})
        target = self.target(targets, "push_ratio")
        self.assertEqual((target["verdict"], target["met"]),
                         ("missed", False))

    def test_no_spread(self):
        """
        A figure without a spread is met or missed as it is; one not
        measured is "not measured".
        """
        targets = self.run.check_targets({"plan": {"plan_s": 0.3}})
        self.assertEqual(
            [(self.target(targets, figure)["spread"],
              self.target(targets, figure)["verdict"])
             for figure in ("plan_s", "push_ratio")],
            [(None, "met"), (None, "not measured")])

    def test_ratio_rows(self):
        """
        Every figure reported with a spread is listed with it, its
        repetitions and whether they settled.
        """
        self.assertEqual(self.run.ratio_rows({
            "routing": {"ratio": 0.9, "ratio_spread": 0.123, "reps": 7,
                        "settled": False, "routes_1000_s": 0.2},
            "deploy": {"error": "exit status 1"}}),
            [("routing.ratio", "0.9", "12.3 %", "7", "no")])
