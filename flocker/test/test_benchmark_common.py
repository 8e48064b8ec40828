"""
Tests for the benchmarks' shared figures (``benchmarks/_common.py``): per
repetition ratios, their spread, adaptive repetition, verdicts against
targets, CPU pinning and the benchmark labs' environment.  Pure functions,
fed with samples and a fake clock: nothing here is timed.
"""

import importlib.util
import os

from twisted.trial.unittest import SynchronousTestCase

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "benchmarks")


def _load():
    spec = importlib.util.spec_from_file_location(
        "flocker_benchmarks_common", os.path.join(BENCHMARKS, "_common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load()


class FakeClock(object):
    """
    A clock that moves on by ``step`` seconds each time it is read.
    """

    def __init__(self, step):
        self.now = 0.0
        self.step = step

    def __call__(self):
        now = self.now
        self.now += self.step
        return now


def replay(series):
    """
    :param dict series: Ratio name to the ratios its repetitions give, in
        order.
    :return: ``(repetition function for repeat_until_settled, list of the
        indices it was called with)``.
    """
    calls = []

    def repetition(index):
        calls.append(index)
        return {name: values[index] for name, values in series.items()}
    return repetition, calls


class QuartilesTests(SynchronousTestCase):
    """
    Tests for ``quartiles`` and ``spread``.
    """

    def test_five_samples(self):
        """
        With five samples the quartiles are the second and fourth smallest
        and the median the third, whatever their order.
        """
        self.assertEqual(common.quartiles([5, 1, 4, 2, 3]), (2, 3, 4))

    def test_three_samples(self):
        """
        With three samples each quartile is half-way between the median
        and an end.
        """
        self.assertEqual(common.quartiles([0.9, 1.1, 1.0]),
                         (0.95, 1.0, 1.05))

    def test_too_few(self):
        """
        One sample has no quartiles: ``ValueError``.
        """
        self.assertRaises(ValueError, common.quartiles, [1.0])

    def test_spread(self):
        """
        The spread is the interquartile range over the median.
        """
        self.assertAlmostEqual(common.spread([0.9, 1.0, 1.1]), 0.1)
        self.assertAlmostEqual(common.spread([8, 10, 10, 10, 12]), 0.0)
        self.assertAlmostEqual(common.spread([2, 4, 4, 6, 8]), 0.5)

    def test_spread_zero_median(self):
        """
        Samples with a median of 0 have no relative spread: ``ValueError``.
        """
        self.assertRaises(ValueError, common.spread, [-1, 0, 1])


class UncertaintyTests(SynchronousTestCase):
    """
    Tests for ``median_interval`` and ``uncertainty``.
    """

    def test_few_samples(self):
        """
        Under six samples no pair of order statistics covers the median
        with 95 % confidence: the interval is the smallest and the largest.
        """
        self.assertEqual((common.median_interval([3, 1, 2]),
                          common.median_interval([5, 1, 4, 2, 3])),
                         ((1, 3), (1, 5)))

    def test_ranks(self):
        """
        The interval's ends are the k-th smallest and k-th largest samples
        for the largest k that keeps 95 % coverage: the 2nd of 9, the 6th
        of 20, the 40th of 100 (the binomial distribution's tails).
        """
        self.assertEqual(
            [common.median_interval(list(range(count, 0, -1)))
             for count in (6, 9, 20, 100)],
            [(1, 6), (2, 8), (6, 15), (40, 61)])

    def test_confidence(self):
        """
        A lower confidence gives a narrower interval.
        """
        self.assertEqual(
            (common.median_interval(list(range(1, 21))),
             common.median_interval(list(range(1, 21)), 0.5)),
            ((6, 15), (8, 13)))

    def test_too_few(self):
        """
        One sample has no interval: ``ValueError``.
        """
        self.assertRaises(ValueError, common.median_interval, [1.0])

    def test_uncertainty(self):
        """
        The uncertainty is the larger distance from the median to an end
        of its interval, over the median; it shrinks as repetitions agree
        around the median, whatever the outliers.
        """
        self.assertEqual(
            [round(common.uncertainty(samples), 6) for samples in (
                [0.9, 1.0, 1.2],
                [0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.3])],
            [0.2, 0.0])

    def test_uncertainty_zero_median(self):
        """
        Samples with a median of 0 have no relative uncertainty:
        ``ValueError``.
        """
        self.assertRaises(ValueError, common.uncertainty, [-1, 0, 1])


class RotatedTests(SynchronousTestCase):
    """
    Tests for ``rotated``.
    """

    def test_rotated(self):
        """
        Repetition N runs the items rotated left by N, wrapping around.
        """
        items = ["a", "b", "c"]
        self.assertEqual([common.rotated(items, n) for n in range(4)],
                         [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"],
                          ["a", "b", "c"]])


class RepetitionsTests(SynchronousTestCase):
    """
    Tests for the ``Repetitions`` bounds.
    """

    def test_minimum_at_least_two(self):
        """
        Fewer than two repetitions cannot give a spread: refused.
        """
        self.assertRaises(ValueError, common.Repetitions, minimum=1,
                          maximum=5, seconds=10)

    def test_maximum_at_least_minimum(self):
        """
        A maximum under the minimum is refused.
        """
        self.assertRaises(ValueError, common.Repetitions, minimum=5,
                          maximum=4, seconds=10)

    def test_seconds_positive(self):
        """
        A time bound of 0 seconds is refused.
        """
        self.assertRaises(ValueError, common.Repetitions, minimum=3,
                          maximum=4, seconds=0)

    def test_default_target(self):
        """
        Ratios count as settled under 2.5 % uncertainty unless told
        otherwise.
        """
        self.assertEqual(
            common.Repetitions(minimum=3, maximum=4, seconds=1).target, 0.025)


class RepeatUntilSettledTests(SynchronousTestCase):
    """
    Tests for ``repeat_until_settled``.
    """

    def test_steady_stops_at_minimum(self):
        """
        Ratios already steady after the minimum end the repetitions there,
        settled.
        """
        repetition, calls = replay({"a": [1.0, 1.01, 0.99, 1.0, 1.0]})
        result = common.repeat_until_settled(
            repetition, common.Repetitions(minimum=3, maximum=5, seconds=60),
            clock=FakeClock(1))
        self.assertEqual((calls, result.repetitions, result.settled,
                          result.samples),
                         ([0, 1, 2], 3, True, {"a": (1.0, 1.01, 0.99)}))

    def test_goes_on_until_settled(self):
        """
        While one ratio's uncertainty is at least the target, more
        repetitions run; they stop at the first after which every
        uncertainty is under it (here the ninth, the first whose interval
        leaves out the two outliers).
        """
        noisy = [1.0, 1.3, 0.8] + [1.0] * 7
        repetition, calls = replay({"steady": [1.0] * 10, "noisy": noisy})
        result = common.repeat_until_settled(
            repetition, common.Repetitions(minimum=3, maximum=10, seconds=60),
            clock=FakeClock(1))
        self.assertEqual(
            ([common.uncertainty(noisy[:n]) >= 0.025 for n in (3, 8)],
             common.uncertainty(noisy[:9]), result.repetitions,
             result.settled, calls),
            ([True, True], 0.0, 9, True, list(range(9))))

    def test_maximum(self):
        """
        Ratios that never settle stop at the maximum, reported as not
        settled.
        """
        repetition, calls = replay({"a": [1.0, 2.0] * 5})
        result = common.repeat_until_settled(
            repetition, common.Repetitions(minimum=3, maximum=6, seconds=60),
            clock=FakeClock(1))
        self.assertEqual((calls, result.settled), (list(range(6)), False))

    def test_seconds(self):
        """
        No repetition beyond the minimum starts once the time bound is
        reached; the result is not settled and says how long it took.
        """
        repetition, calls = replay({"a": [1.0, 2.0] * 10})
        result = common.repeat_until_settled(
            repetition,
            common.Repetitions(minimum=3, maximum=20, seconds=10),
            clock=FakeClock(2))
        # The clock is read at the start (0), after each repetition (2, 4,
        # 6: the minimum; 8: go on; 10: time is up) and at the end (12).
        self.assertEqual((calls, result.settled, result.seconds),
                         (list(range(5)), False, 12))

    def test_minimum_whatever_the_time(self):
        """
        The minimum runs even when it takes longer than the time bound.
        """
        repetition, calls = replay({"a": [1.0, 2.0, 1.0, 2.0]})
        result = common.repeat_until_settled(
            repetition, common.Repetitions(minimum=3, maximum=4, seconds=1),
            clock=FakeClock(100))
        self.assertEqual((calls, result.repetitions), ([0, 1, 2], 3))

    def test_other_names(self):
        """
        A repetition giving other ratios than the first is an error.
        """
        answers = iter([{"a": 1.0}, {"b": 1.0}])
        self.assertRaises(
            ValueError, common.repeat_until_settled,
            lambda index: next(answers),
            common.Repetitions(minimum=2, maximum=3, seconds=60),
            clock=FakeClock(1))

    def test_spreads(self):
        """
        ``Settling.spreads`` gives each ratio's spread.
        """
        result = common.Settling(samples={"a": [0.9, 1.0, 1.1]},
                                 repetitions=3, settled=False, seconds=1.0)
        self.assertEqual(list(result.spreads()), ["a"])
        self.assertAlmostEqual(result.spreads()["a"], 0.1)


class RecordedTests(SynchronousTestCase):
    """
    Tests for ``recorded`` and ``next_step``.
    """

    def test_recorded(self):
        """
        A repetition's ratios are added to each name's, in a new mapping.
        """
        before = {"a": (1.0,), "b": (2.0,)}
        after = common.recorded(before, {"a": 1.5, "b": 2.5})
        self.assertEqual((before, after),
                         ({"a": (1.0,), "b": (2.0,)},
                          {"a": (1.0, 1.5), "b": (2.0, 2.5)}))

    def test_recorded_refuses(self):
        """
        A repetition without ratios, or with other names, is refused.
        """
        self.assertRaises(ValueError, common.recorded, {}, {})
        self.assertRaises(ValueError, common.recorded, {"a": (1.0,)},
                          {"b": 1.0})

    def test_next_step(self):
        """
        Below the minimum: go on; at it, stop settled when every
        uncertainty is under the target, else go on until the maximum or the time bound.
        """
        policy = common.Repetitions(minimum=3, maximum=5, seconds=60)
        steady, noisy = (1.0, 1.0, 1.01), (1.0, 1.2, 0.9)
        self.assertEqual(
            [common.next_step({"a": steady[:2]}, policy, 0),
             common.next_step({"a": steady}, policy, 0),
             common.next_step({"a": steady, "b": noisy}, policy, 0),
             common.next_step({"a": noisy + (1.0, 1.1)}, policy, 0),
             common.next_step({"a": noisy}, policy, 60)],
            [(True, False), (False, True), (True, False), (False, False),
             (False, False)])


class FiguresTests(SynchronousTestCase):
    """
    Tests for ``ratio_figures`` and ``ratio_row``.
    """

    def test_figures(self):
        """
        A ratio's figures are its median and, beside it, its spread, its
        uncertainty and the number of repetitions it comes from.
        """
        self.assertEqual(common.ratio_figures("ratio", [0.9, 1.2, 1.0]),
                         {"ratio": 1.0, "ratio_spread": 0.15,
                          "ratio_uncertainty": 0.2, "ratio_reps": 3})

    def test_row(self):
        """
        A ratio's table row shows its median, its uncertainty and spread in
        per cent, its range and every repetition.
        """
        self.assertEqual(common.ratio_row("x", [0.9, 1.2, 1.0]),
                         ["x", "1.000", "20.0 %", "15.0 %", "0.900-1.200",
                          "0.900 1.200 1.000"])

    def test_title(self):
        """
        A table of ratios is titled with what its rows are and how to read
        its +/- and spread; after repetitions until settled, also whether
        they settled.
        """
        settled = common.Settling(samples={"r": [1.0, 1.0]}, repetitions=2,
                                  settled=True, seconds=1.0)
        unsettled = common.Settling(samples={"r": [1.0, 1.0]},
                                    repetitions=2, settled=False,
                                    seconds=1.0)
        explained = ("+/-: half-width of the median's 95 % confidence "
                     "interval; spread: interquartile range over median")
        self.assertEqual(
            [common.ratios_title("Ratios", None),
             common.ratios_title("Ratios", settled),
             common.ratios_title("Ratios", unsettled)],
            ["Ratios (%s)" % (explained,),
             "Ratios (%s; settled: +/- under 2.5 %%)" % (explained,),
             "Ratios (%s; NOT settled: +/- 2.5 %% or more)" % (explained,)])


class VerdictTests(SynchronousTestCase):
    """
    Tests for ``verdict``.
    """

    def test_not_measured(self):
        """
        A figure that was not measured is "not measured".
        """
        self.assertEqual(common.verdict(None, ">=", 0.95, 0.01),
                         "not measured")

    def test_met_and_missed(self):
        """
        Without a spread, the comparison decides.
        """
        self.assertEqual((common.verdict(0.97, ">=", 0.95),
                          common.verdict(0.93, ">=", 0.95)),
                         ("met", "missed"))

    def test_narrow_spread(self):
        """
        A spread narrower than the margin to the target leaves the
        comparison to decide, both ways.
        """
        self.assertEqual((common.verdict(1.0, ">=", 0.95, 0.04),
                          common.verdict(0.9, ">=", 0.95, 0.05)),
                         ("met", "missed"))

    def test_wide_spread(self):
        """
        A spread wider than the margin to the target (relative to the
        figure) is "not decidable", whichever side the median is on.
        """
        self.assertEqual((common.verdict(1.0, ">=", 0.95, 0.06),
                          common.verdict(0.9, ">=", 0.95, 0.06),
                          common.verdict(1.25, "<=", 1.3, 0.05)),
                         ("not decidable",) * 3)


class PinningTests(SynchronousTestCase):
    """
    Tests for ``cpu_pair`` and ``pinned``.
    """

    def test_two_lowest(self):
        """
        The sender gets the lowest allowed CPU, the receiver the next.
        """
        self.assertEqual(common.cpu_pair({5, 1, 2}), (1, 2))

    def test_one_cpu(self):
        """
        On one CPU, both run there.
        """
        self.assertEqual(common.cpu_pair({3}), (3, 3))

    def test_no_cpu(self):
        """
        No allowed CPU is an error.
        """
        self.assertRaises(ValueError, common.cpu_pair, set())

    def test_pinned(self):
        """
        A pinned command runs under ``taskset -c CPU``; ``None`` leaves it
        as it is.
        """
        self.assertEqual((common.pinned(["push", "1"], 1),
                          common.pinned(["push", "1"], None)),
                         (["taskset", "-c", "1", "push", "1"],
                          ["push", "1"]))


class OwnLabEnvironTests(SynchronousTestCase):
    """
    Tests for ``own_lab_environ``.
    """

    def test_defaults(self):
        """
        With neither variable set, the benchmark's own prefix and state.
        """
        self.assertEqual(
            common.own_lab_environ({"PATH": "/bin"}, "flkb", "/var/b"),
            {"PATH": "/bin", "FLOCKER_LAB_PREFIX": "flkb",
             "FLOCKER_LAB_STATE": "/var/b"})

    def test_prefix(self):
        """
        A prefix alone brings a state named after it, not the benchmark's
        default state (which could hold another prefix's lab).
        """
        environ = common.own_lab_environ({"FLOCKER_LAB_PREFIX": "fb"},
                                         "flkb", "/var/b")
        self.assertEqual((environ["FLOCKER_LAB_PREFIX"],
                          environ["FLOCKER_LAB_STATE"]),
                         ("fb", "/var/lib/flocker-lab-fb"))

    def test_both(self):
        """
        A prefix and a state are both kept.
        """
        environ = common.own_lab_environ(
            {"FLOCKER_LAB_PREFIX": "fb", "FLOCKER_LAB_STATE": "/s"},
            "flkb", "/var/b")
        self.assertEqual((environ["FLOCKER_LAB_PREFIX"],
                          environ["FLOCKER_LAB_STATE"]), ("fb", "/s"))


class StatusTests(SynchronousTestCase):
    """
    Tests for ``status_kb``, which reads ``/proc/PID/status`` (this
    process's own: nothing is timed or started).
    """

    def test_self(self):
        """
        ``"self"`` reads this process's status, as its process id does.
        """
        self.assertEqual(
            (common.status_kb("self", "Tgid"),
             common.status_kb(os.getpid(), "Tgid")),
            (os.getpid(), os.getpid()))

    def test_peak(self):
        """
        The peak resident size read after the current one is at least as
        large, both in kB.
        """
        rss = common.status_kb("self", "VmRSS")
        self.assertGreaterEqual(common.status_kb("self", "VmHWM"), rss)
        self.assertGreater(rss, 0)

    def test_missing(self):
        """
        A field the status does not have is a ``ValueError`` naming it; a
        process that cannot exist (above Linux's largest ``pid_max``) an
        ``OSError``.
        """
        error = self.assertRaises(ValueError, common.status_kb, "self",
                                  "VmNothing")
        self.assertEqual(str(error), "no VmNothing for process self")
        self.assertRaises(OSError, common.status_kb, 2 ** 22 + 1, "VmRSS")


class RefusingParser(object):
    """
    Stands in for an ``argparse`` parser: ``error`` raises ``ValueError``
    with the message instead of printing it and exiting.
    """

    def error(self, message):
        raise ValueError(message)


class RepetitionOptionsTests(SynchronousTestCase):
    """
    Tests for ``add_repetition_options`` and ``repetitions_from``.
    """

    def parse(self, argv):
        import argparse
        parser = argparse.ArgumentParser()
        common.add_repetition_options(parser)
        return parser.parse_args(argv)

    def test_defaults(self):
        """
        Without options, the benchmark's defaults.
        """
        self.assertEqual(
            common.repetitions_from(RefusingParser(), self.parse([]), 5, 25,
                                    600.0),
            common.Repetitions(minimum=5, maximum=25, seconds=600.0))

    def test_given(self):
        """
        Given options win; a ``--reps`` above the default maximum raises
        the maximum to it.
        """
        self.assertEqual(
            [common.repetitions_from(RefusingParser(), self.parse(argv), 5,
                                     25, 600.0)
             for argv in (["--reps", "4", "--max-reps", "9",
                           "--max-seconds", "30"], ["--reps", "40"])],
            [common.Repetitions(minimum=4, maximum=9, seconds=30.0),
             common.Repetitions(minimum=40, maximum=40, seconds=600.0)])

    def test_refused(self):
        """
        Fewer than 3 repetitions, a maximum under the minimum or over 100,
        and seconds not above 0 are refused through the parser.
        """
        for argv in (["--reps", "2"], ["--reps", "5", "--max-reps", "4"],
                     ["--max-reps", "101"], ["--max-seconds", "0"]):
            self.assertRaises(ValueError, common.repetitions_from,
                              RefusingParser(), self.parse(argv), 5, 25,
                              600.0)


class SpreadFiguresTests(SynchronousTestCase):
    """
    Tests for ``spread_figures`` and ``number``.
    """

    def test_ratios(self):
        """
        Every figure with a numeric ``_spread`` beside it is listed, by
        name, with its uncertainty when it has one; other figures, booleans
        and spreads without their figure are not.
        """
        self.assertEqual(common.spread_figures({
            "ratio": 0.9, "ratio_spread": 0.1, "push_mb_s": 100,
            "settled": True, "orphan_spread": 0.2, "odd": True,
            "odd_spread": 0.1, "b": 2.0, "b_spread": 0.05,
            "b_uncertainty": 0.02}),
            [("b", 2.0, 0.05, 0.02), ("ratio", 0.9, 0.1, None)])

    def test_number(self):
        """
        Numbers are kept; booleans, strings and ``None`` are not numbers.
        """
        self.assertEqual([common.number(v) for v in (1, 0.5, True, "1",
                                                     None)],
                         [1, 0.5, None, None, None])
