"""
Tests that need real parts of a machine (root, a Docker daemon, ZFS, network
namespaces) call :func:`require` with the condition and a reason.  On a
developer's machine a missing part skips the test with that reason; in CI
(``CI=true`` in the environment) it fails the test instead, so a green CI run
always means the real parts were exercised.
"""

import os
from unittest import SkipTest

__all__ = ["in_ci", "is_root", "require"]


def in_ci():
    """
    :return: ``True`` when running under continuous integration (``CI=true``).
    """
    return os.environ.get("CI", "").lower() == "true"


def is_root():
    """
    :return: ``True`` when the current process runs as root.
    """
    return os.geteuid() == 0


def require(condition, reason):
    """
    Skip the calling test unless ``condition`` holds; under CI fail instead.

    :param bool condition: Whether the needed part is available.
    :param str reason: What is missing, shown in the skip or failure.
    :raises unittest.SkipTest: When the condition is false outside CI.
    :raises twisted.trial.unittest.FailTest: When the condition is false in
        CI.
    """
    if condition:
        return
    if in_ci():
        # Imported here: the package must import without trial's test
        # machinery for the benchmarks (Twisted itself is a dependency).
        from twisted.trial.unittest import FailTest
        raise FailTest("required in CI but unavailable: " + reason)
    raise SkipTest(reason)
