"""
Tests for the hypothesis profile every test session loads (``conftest.py``).
"""

from hypothesis import HealthCheck, settings
from twisted.trial.unittest import SynchronousTestCase


class ProfileTests(SynchronousTestCase):
    """
    The suite's property tests cannot fail because the machine is busy.
    """

    def test_no_deadline(self):
        """
        No example has a deadline: a slow example on a loaded machine is
        not a failure.
        """
        self.assertIsNone(settings.default.deadline)

    def test_slow_generation_allowed(self):
        """
        Slow input generation is not a failed health check.
        """
        self.assertIn(HealthCheck.too_slow,
                      settings.default.suppress_health_check)

    def test_inherited_by_explicit_settings(self):
        """
        A test's own ``settings(max_examples=...)`` keeps the profile's
        choices for what it does not name.
        """
        own = settings(max_examples=3)
        self.assertEqual((own.deadline, HealthCheck.too_slow in
                          own.suppress_health_check), (None, True))
