"""
Repository-wide pytest set-up: ``admin/`` on the import path, the
hypothesis profile, and the end of the session's lab.

The lab tests (trial-style classes) call
:func:`flocker.testtools.shared_lab`: the local multi-node lab
(``admin/lab``), brought up once per process for the tests that ask for it
and brought down when the session ends.  Where the machine cannot run it
(not root, tools missing) those tests are skipped, or fail under
``CI=true``.  Set ``FLOCKER_LAB_KEEP=1`` to leave the lab running after the
session (for poking at it).  The lab's location follows
``FLOCKER_LAB_STATE`` / ``FLOCKER_LAB_PREFIX`` as for ``admin/lab`` itself.
"""

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

from flocker.testtools import release_lab

# admin/ is not a package: its modules are imported by name (some lab tests
# rely on this).
sys.path.insert(0, str(Path(__file__).resolve().parent / "admin"))

# Property tests must pass on a busy machine: nothing may depend on how fast
# hypothesis generates or how long an example takes.  Every test's settings
# inherit this profile unless they say otherwise.
settings.register_profile(
    "flocker", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("flocker")


def pytest_sessionfinish(session):
    """
    Bring the session's lab down (unless ``FLOCKER_LAB_KEEP=1``).
    """
    release_lab()
