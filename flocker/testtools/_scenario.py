"""
Scenarios on real parts (the lab): a class whose steps, ``test_01_...``,
``test_02_...``, run in order on state the class sets up once, each step
building on the ones before.  A step that fails leaves nothing for the
next ones to build on, so once one fails (or errors) the later steps of
its class are skipped, saying so, instead of failing in confusing ways.
"""

from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

__all__ = ["ScenarioTestCase"]


class _StepResult(object):
    """
    A test result passing everything on to ``result``, noting on the
    ``scenario`` class that a step failed or errored.
    """

    def __init__(self, result, scenario):
        self._result = result
        self._scenario = scenario

    def _broken(self):
        self._scenario._scenario_broken = True

    def addError(self, *args, **kwargs):
        self._broken()
        return self._result.addError(*args, **kwargs)

    def addFailure(self, *args, **kwargs):
        self._broken()
        return self._result.addFailure(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._result, name)


class ScenarioTestCase(SynchronousTestCase):
    """
    A ``SynchronousTestCase`` whose test methods are the ordered steps of
    one scenario (name them ``test_01_...``, ``test_02_...``: they run in
    the order of their names).  Set the scenario's state up once in
    ``setUpClass`` (with ``addClassCleanup`` for its removal); a subclass
    overriding ``setUp`` calls this one first.
    """

    #: Whether a step of this class has failed or errored.
    _scenario_broken = False

    def run(self, result):
        """
        Run the step, noting on the class if it fails or errors.
        """
        return super().run(_StepResult(result, type(self)))

    def setUp(self):
        """
        Skip the step if an earlier one failed.

        :raises unittest.SkipTest: If an earlier step of the class failed
            or errored.
        """
        super().setUp()
        if type(self)._scenario_broken:
            raise SkipTest("an earlier step of the scenario failed")
