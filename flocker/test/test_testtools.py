"""
Tests for :mod:`flocker.testtools` as shipped: importable without the test
extras, as the benchmarks need.
"""

import json
import os
import subprocess
import sys
import unittest

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import (
    ScenarioTestCase, capture_output, cases, require, temporary_path,
    wait_for_path, with_cases,
)

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


class CasesTests(SynchronousTestCase):
    """
    ``cases`` and ``with_cases`` turn one method into one test per case.
    """

    def test_one_method_per_case(self):
        """
        Each case becomes a method named after the template and the case,
        carrying the template's docstring and calling it with the case's
        arguments; the template itself is gone.
        """
        calls = []

        @with_cases
        class Example(SynchronousTestCase):
            @cases([(1, "a"), (2, "b")], ids=["one", "two words"])
            def test_thing(self, number, letter):
                """
                The doc.
                """
                calls.append((number, letter))

        Example("test_thing_one").test_thing_one()
        Example("test_thing_two_words").test_thing_two_words()
        self.assertEqual(
            (calls, hasattr(Example, "test_thing"),
             Example.test_thing_one.__doc__.strip()),
            ([(1, "a"), (2, "b")], False, "The doc."))

    def test_default_ids(self):
        """
        Without ``ids`` a case is named by its index and its arguments.
        """
        @with_cases
        class Example(SynchronousTestCase):
            @cases([("x",), ("y",)])
            def test_thing(self, value):
                """
                The doc.
                """

        self.assertEqual(
            sorted(name for name in vars(Example) if name.startswith("test")),
            ["test_thing_0_x", "test_thing_1_y"])

    def test_names_must_differ(self):
        """
        Two cases with the same name are refused.
        """
        self.assertRaises(ValueError, cases, [(1,), (2,)], ids=["a", "a"])

    def test_case_is_tuple(self):
        """
        A case that is not a tuple of arguments is refused.
        """
        self.assertRaises(ValueError, cases, [1, 2])


class TemporaryPathTests(SynchronousTestCase):
    """
    ``temporary_path`` gives a test an empty directory of its own.
    """

    def test_empty_and_removed(self):
        """
        The directory exists, is empty, and is gone once the test's
        cleanups have run.
        """
        path = temporary_path(self)
        self.assertEqual(list(path.iterdir()), [])
        self.doCleanups()
        self.assertFalse(path.parent.exists())

    def test_no_test_uses_trial_mktemp(self):
        """
        No test asks trial's ``mktemp`` for a directory: under pytest it is
        made below the current directory, the repository, and stays there
        (``temporary_directory`` and ``temporary_path`` are the way).
        """
        # Spelt in two parts, so that this file does not match.
        needle = ".mktemp" + "()"
        users = []
        for folder in ("flocker", "admin", "benchmarks"):
            for directory, _, files in os.walk(os.path.join(TOP, folder)):
                for name in files:
                    path = os.path.join(directory, name)
                    if name.endswith(".py"):
                        with open(path) as f:
                            # trial's takes no argument (pytest's
                            # tmp_path_factory.mktemp, which does, makes its
                            # directories elsewhere).
                            if needle in f.read():
                                users.append(os.path.relpath(path, TOP))
        self.assertEqual(users, [])


class CaptureOutputTests(SynchronousTestCase):
    """
    ``capture_output`` keeps what the test writes to the standard streams.
    """

    def test_captured_then_restored(self):
        """
        Writes to ``sys.stdout`` and ``sys.stderr`` land in the returned
        buffers, and the real streams are back once the test's cleanups
        have run.
        """
        before = sys.stdout, sys.stderr
        stdout, stderr = capture_output(self)
        print("out")
        print("err", file=sys.stderr)
        self.doCleanups()
        self.assertEqual(
            (stdout.getvalue(), stderr.getvalue(), (sys.stdout, sys.stderr)),
            ("out\n", "err\n", before))


class WaitForPathTests(SynchronousTestCase):
    """
    ``wait_for_path`` waits for a started process's file.
    """

    def start(self, code):
        process = subprocess.Popen([sys.executable, "-c", code])
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        return process

    def test_made(self):
        """
        A file the process makes (after a wait of its own) is waited for:
        ``True``, and the file is there.
        """
        path = str(temporary_path(self) / "made")
        process = self.start(
            "import time, sys; time.sleep(0.2); open(sys.argv[1], 'w')"
            .replace("sys.argv[1]", repr(path)))
        self.assertEqual((wait_for_path(path, process), os.path.exists(path)),
                         (True, True))

    def test_exited(self):
        """
        A process that exits without making the file ends the wait:
        ``False``.
        """
        path = str(temporary_path(self) / "never")
        process = self.start("import sys; sys.exit(3)")
        self.assertEqual((wait_for_path(path, process), process.wait()),
                         (False, 3))

    def test_bounded(self):
        """
        A process that neither makes the file nor exits is waited for no
        longer than asked: ``False``, the process still running.
        """
        path = str(temporary_path(self) / "never")
        process = self.start("import time; time.sleep(600)")
        self.assertEqual((wait_for_path(path, process, seconds=0.1),
                          process.poll()), (False, None))


class ScenarioTestCaseTests(SynchronousTestCase):
    """
    ``ScenarioTestCase`` runs steps in order and skips those after a
    failed one.
    """

    def test_later_steps_skipped(self):
        """
        Once a step fails, the steps after it are skipped with a reason;
        the steps before it passed.
        """
        ran = []

        class Example(ScenarioTestCase):
            def test_01_first(self):
                """
                Passes.
                """
                ran.append(1)

            def test_02_second(self):
                """
                Fails.
                """
                ran.append(2)
                self.fail("broken")

            def test_03_third(self):
                """
                Never runs.
                """
                ran.append(3)

        result = unittest.TestResult()
        unittest.TestLoader().loadTestsFromTestCase(Example).run(result)
        self.assertEqual(
            (ran, result.testsRun, len(result.failures),
             [reason for _, reason in result.skipped]),
            ([1, 2], 3, 1, ["an earlier step of the scenario failed"]))

    def test_all_pass(self):
        """
        Without a failure every step runs, in the order of their names.
        """
        ran = []

        class Example(ScenarioTestCase):
            def test_02_second(self):
                """
                Runs second.
                """
                ran.append(2)

            def test_01_first(self):
                """
                Runs first.
                """
                ran.append(1)

        result = unittest.TestResult()
        unittest.TestLoader().loadTestsFromTestCase(Example).run(result)
        self.assertEqual((ran, result.wasSuccessful()), ([1, 2], True))


class RequireTests(SynchronousTestCase):
    """
    ``require`` skips a test missing a real part, or fails it in CI.
    """

    def test_available(self):
        """
        An available part lets the test go on.
        """
        self.patch(os, "environ", {})
        self.assertIsNone(require(True, "nothing missing"))

    def test_skipped(self):
        """
        Outside CI a missing part skips the test with the reason.
        """
        self.patch(os, "environ", {})
        with self.assertRaises(unittest.SkipTest) as caught:
            require(False, "no sshd")
        self.assertEqual(str(caught.exception), "no sshd")

    def test_failed_in_ci(self):
        """
        In CI a missing part fails the test, saying so.
        """
        self.patch(os, "environ", {"CI": "true"})
        with self.assertRaises(self.failureException) as caught:
            require(False, "no sshd")
        self.assertEqual(str(caught.exception),
                         "required in CI but unavailable: no sshd")
