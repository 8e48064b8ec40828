"""
Repository-wide pytest fixtures.

``lab``: a local multi-node lab (``admin/lab``) of three nodes, brought up
once per test session for the tests that ask for it and brought down at the
end.  Where the machine cannot run it (not root, tools missing) the tests
using it are skipped, or fail under ``CI=true``.  Set ``FLOCKER_LAB_KEEP=1``
to leave the lab running after the session (for poking at it).  The lab's
location follows ``FLOCKER_LAB_STATE`` / ``FLOCKER_LAB_PREFIX`` as for
``admin/lab`` itself.
"""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from flocker.testtools import require

LAB_SCRIPT = Path(__file__).resolve().parent / "admin" / "lab"
# admin/ is not a package: its modules are imported by name.
sys.path.insert(0, str(LAB_SCRIPT.parent))
from _lab_client import (  # noqa: E402
    LabFailed, LabUnavailable, start_lab, stop_lab,
)

# Property tests must pass on a busy machine: nothing may depend on how fast
# hypothesis generates or how long an example takes.  Every test's settings
# inherit this profile unless they say otherwise.
settings.register_profile(
    "flocker", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("flocker")

LAB_NODES = 3


@pytest.fixture(scope="session")
def lab():
    """
    :return: An ``admin/_lab_client.py`` ``Lab`` of ``LAB_NODES`` nodes (names,
        addresses, ``run(name, argv)``, docker sockets, pools, the client,
        SSH identity and known_hosts, state directory).
    """
    try:
        handle = start_lab(LAB_SCRIPT, nodes=LAB_NODES)
    except LabUnavailable as e:
        require(False, str(e))
    except LabFailed as e:
        pytest.fail(str(e))
    yield handle
    if os.environ.get("FLOCKER_LAB_KEEP") != "1":
        stop_lab(LAB_SCRIPT)
