"""
Tests for the benchmark scripts that need neither root nor the lab:
``benchmarks/plot.py``, ``benchmarks/scale.py``, the target verdicts of
``benchmarks/run`` and the agreement of runs (``benchmarks/compare.py``).
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
            # Only a bound on a hung run: it plans 1,000 nodes and fans out
            # to 100 several times, which a loaded machine slows manyfold.
            capture_output=True, text=True, timeout=1200,
            stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertTrue({"plan_1000_nodes_s", "fanout_100_nodes_s",
                         "client_rss_mb", "node_rss_mb"} <= set(figures),
                        figures)


def load_script(filename):
    """
    :param str filename: A script in ``benchmarks/`` (``run``,
        ``compare.py``...).
    :return: It as a module, without running its ``main`` (the
        benchmarks' directory is on ``sys.path`` only while it is imported,
        for ``_common``).
    """
    saved = list(sys.path)
    sys.path.insert(0, BENCHMARKS)
    try:
        loader = importlib.machinery.SourceFileLoader(
            "flocker_benchmarks_" + filename.replace(".", "_"),
            os.path.join(BENCHMARKS, filename))
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
        self.run = load_script("run")

    def target(self, targets, figure):
        return next(t for t in targets if t["figure"] == figure)

    def test_uncertainty_and_verdict(self):
        """
        A target whose figure has ``_spread`` and ``_uncertainty`` beside it
        carries both; an uncertainty wider than the margin to the target
        makes it "not decidable", with ``met`` null.
        """
        targets = self.run.check_targets({
            "routing": {"ratio": 0.97, "ratio_spread": 0.01,
                        "ratio_uncertainty": 0.04}})
        self.assertEqual(
            {key: self.target(targets, "ratio")[key]
             for key in ("value", "spread", "uncertainty", "verdict", "met")},
            {"value": 0.97, "spread": 0.01, "uncertainty": 0.04,
             "verdict": "not decidable", "met": None})

    def test_narrow_uncertainty(self):
        """
        An uncertainty narrower than the margin leaves the comparison to
        decide, however wide the repetitions' spread.
        """
        targets = self.run.check_targets({
            "volumes": {"push_ratio": 0.8, "push_ratio_spread": 0.3,
                        "push_ratio_uncertainty": 0.03}})
        target = self.target(targets, "push_ratio")
        self.assertEqual((target["verdict"], target["met"]),
                         ("missed", False))

    def test_no_uncertainty(self):
        """
        A figure without an uncertainty is met or missed as it is; one not
        measured is "not measured".
        """
        targets = self.run.check_targets({"plan": {"plan_s": 0.3}})
        self.assertEqual(
            [(self.target(targets, figure)["uncertainty"],
              self.target(targets, figure)["verdict"])
             for figure in ("plan_s", "push_ratio")],
            [(None, "met"), (None, "not measured")])

    def test_move_against_move_by_hand(self):
        """
        A move's downtime is judged against the move by hand of the same
        run: at most 0.8 of it, with its uncertainty.
        """
        targets = self.run.check_targets({"deploy": {
            "downtime_over_raw_move": 1.01,
            "downtime_over_raw_move_uncertainty": 0.04}})
        target = self.target(targets, "downtime_over_raw_move")
        self.assertEqual((target["comparison"], target["limit"],
                          target["verdict"]), ("<=", 0.8, "missed"))

    def test_scale_against_docker(self):
        """
        The deploy's scaling is judged against Docker alone's in the same
        run (``scale_over_docker`` at most 1, with its uncertainty), not
        against a fixed limit on ``scale_ratio``: a ratio of 2.1 where
        Docker's own is 5 meets it.
        """
        targets = self.run.check_targets({"deploy": {
            "scale_ratio": 2.1, "scale_ratio_uncertainty": 0.2,
            "scale_over_docker": 0.42,
            "scale_over_docker_uncertainty": 0.1}})
        scaling = [target for target in targets
                   if target["figure"].startswith("scale_")]
        self.assertEqual(
            [(target["figure"], target["comparison"], target["limit"],
              target["uncertainty"], target["verdict"])
             for target in scaling],
            [("scale_over_docker", "<=", 1.0, 0.1, "met")])

    def test_scale_against_docker_undecided(self):
        """
        A ``scale_over_docker`` whose uncertainty is wider than its margin
        to 1 is "not decidable", like every ratio target.
        """
        targets = self.run.check_targets({"deploy": {
            "scale_over_docker": 0.95,
            "scale_over_docker_uncertainty": 0.2}})
        self.assertEqual(
            self.target(targets, "scale_over_docker")["verdict"],
            "not decidable")

    def test_ratio_rows(self):
        """
        Every figure reported with a spread is listed with its
        uncertainty (blank in results that have none), its spread, its
        repetitions and whether they settled.
        """
        self.assertEqual(self.run.ratio_rows({
            "routing": {"ratio": 0.9, "ratio_spread": 0.123,
                        "ratio_uncertainty": 0.021, "reps": 7,
                        "settled": False, "routes_1000_s": 0.2},
            "volumes": {"push_ratio": 0.8, "push_ratio_spread": 0.05},
            "deploy": {"error": "exit status 1"}}),
            [("routing.ratio", "0.9", "2.1 %", "12.3 %", "7", "no"),
             ("volumes.push_ratio", "0.8", "", "5.0 %", "", "")])

    def test_ratio_rows_own_repetitions(self):
        """
        A ratio that reports its own number of repetitions (``NAME_reps``,
        as in a benchmark whose parts repeat apart) is listed with that
        number, not the benchmark's.
        """
        self.assertEqual(self.run.ratio_rows({
            "scale": {"plan_ratio": 30.1, "plan_ratio_spread": 0.1,
                      "plan_ratio_uncertainty": 0.02, "plan_ratio_reps": 41,
                      "fanout_ratio": 95.0, "fanout_ratio_spread": 0.05,
                      "fanout_ratio_reps": 6, "reps": 3}}),
            [("scale.fanout_ratio", "95.0", "", "5.0 %", "6", ""),
             ("scale.plan_ratio", "30.1", "2.0 %", "10.0 %", "41", "")])


class CompareTests(SynchronousTestCase):
    """
    Tests for ``benchmarks/compare.py``.
    """

    def setUp(self):
        self.compare = load_script("compare.py")

    def test_within(self):
        """
        A ratio whose runs all lie within the tolerance of their median is
        within; the deviation is the largest, relative to the median.
        """
        found = self.compare.agreement([
            {"routing": {"ratio": 0.96, "ratio_spread": 0.02}},
            {"routing": {"ratio": 1.0, "ratio_spread": 0.03}},
            {"routing": {"ratio": 1.04, "ratio_spread": 0.01}}], 0.05)
        self.assertEqual(found, {"routing.ratio": {
            "values": [0.96, 1.0, 1.04], "median": 1.0, "deviation": 0.04,
            "within": True}})

    def test_outside(self):
        """
        One run further than the tolerance from the median puts the ratio
        outside; figures without a spread are not ratios and are ignored.
        """
        found = self.compare.agreement([
            {"volumes": {"push_ratio": 0.9, "push_ratio_spread": 0.02,
                         "push_mb_s": 100}},
            {"volumes": {"push_ratio": 1.0, "push_ratio_spread": 0.02,
                         "push_mb_s": 120}}], 0.05)
        self.assertEqual(
            (list(found), found["volumes.push_ratio"]["within"]),
            (["volumes.push_ratio"], False))

    def test_missing(self):
        """
        A ratio that a run lacks (its benchmark failed) is not within, and
        shows ``None`` for that run.
        """
        found = self.compare.agreement([
            {"deploy": {"scale_ratio": 2.0, "scale_ratio_spread": 0.01}},
            {"deploy": {"error": "exit status 1"}},
            {"deploy": {"scale_ratio": 2.0, "scale_ratio_spread": 0.01}}],
            0.05)
        self.assertEqual(found["deploy.scale_ratio"]["values"][1], None)
        self.assertFalse(found["deploy.scale_ratio"]["within"])

    def test_bad_file(self):
        """
        A file that is not a results file gives one line naming it and
        exit status 2.
        """
        directory = temporary_directory(self)
        os.makedirs(directory)
        path = os.path.join(directory, "other.json")
        with open(path, "w") as f:
            json.dump([1, 2], f)
        result = subprocess.run(
            [sys.executable, os.path.join(BENCHMARKS, "compare.py"), path,
             path], capture_output=True, text=True, timeout=60)
        self.assertEqual(
            (result.returncode, result.stderr.strip().splitlines()),
            (2, ["benchmarks/compare.py: %s: no \"benchmarks\" object: "
                 "not a benchmarks/run results file" % (path,)]))

    def test_agreeing_files(self):
        """
        Given agreeing results files, it exits 0 and ends with one JSON
        object saying so.
        """
        directory = temporary_directory(self)
        os.makedirs(directory)
        paths = []
        for index, value in enumerate([0.95, 0.96, 0.97]):
            paths.append(os.path.join(directory, "%d.json" % (index,)))
            with open(paths[-1], "w") as f:
                json.dump({"benchmarks": {"routing": {
                    "ratio": value, "ratio_spread": 0.01}}}, f)
        result = subprocess.run(
            [sys.executable, os.path.join(BENCHMARKS, "compare.py")] + paths,
            capture_output=True, text=True, timeout=60)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual((result.returncode, figures["within"],
                          figures["runs"]), (0, True, 3))
