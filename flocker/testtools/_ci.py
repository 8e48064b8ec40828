"""
Tests that need real parts of a machine (root, a Docker daemon, ZFS, network
namespaces) call :func:`require` with the condition and a reason.  On a
developer's machine a missing part skips the test with that reason; in CI
(``CI=true`` in the environment) it fails the test instead, so a green CI run
always means the real parts were exercised.
"""

import os

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
    :raises pytest.skip.Exception: When the condition is false outside CI.
    :raises pytest.fail.Exception: When the condition is false in CI.
    """
    if condition:
        return
    # Only a test calls this, under pytest: the package itself must import
    # without the test extras (the benchmarks use it).
    import pytest
    if in_ci():
        pytest.fail("required in CI but unavailable: " + reason)
    pytest.skip(reason)
