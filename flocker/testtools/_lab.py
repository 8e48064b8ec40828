"""
The local lab (``admin/lab``: network-namespace nodes with their own sshd,
dockerd and ZFS pool) for trial-style tests.

:func:`shared_lab` brings the lab up the first time a test asks for it and
hands the same lab to every later test of the process; it comes down when
the process ends (pytest's session end calls :func:`release_lab` first),
unless ``FLOCKER_LAB_KEEP=1`` asks to keep it for poking at.  Which lab is
used follows ``FLOCKER_LAB_PREFIX`` / ``FLOCKER_LAB_STATE`` as for
``admin/lab`` itself, so concurrent sessions with their own prefixes never
share one.
"""

import atexit
import os
import sys

from ._ci import require

__all__ = ["LAB_NODES", "shared_lab", "release_lab"]

#: Nodes in the tests' lab.
LAB_NODES = 3

_ADMIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "admin")
_SCRIPT = os.path.join(_ADMIN, "lab")

#: This process's lab: ``{"lab": Lab}`` once up, ``{"error": (kind,
#: message)}`` once it could not be brought up (not retried: each attempt
#: may take minutes).
_STATE = {}


def _client():
    """
    :return: The ``admin/_lab_client.py`` module (``admin/`` is not a
        package: its modules are imported by name).
    """
    if _ADMIN not in sys.path:
        sys.path.insert(0, _ADMIN)
    import _lab_client
    return _lab_client


def shared_lab(minimum_nodes=1):
    """
    The lab of this process, brought up (or repaired) on first use.

    :param int minimum_nodes: How many nodes the calling test needs.
    :return: An ``admin/_lab_client.py`` ``Lab`` of :data:`LAB_NODES` nodes
        (names, addresses, ``run(name, argv)``, docker sockets, pools, the
        client, SSH identity and known_hosts, state directory).
    :raises unittest.SkipTest: Where the machine cannot run a lab (outside
        CI; in CI the test fails instead, see :func:`require`).
    :raises twisted.trial.unittest.FailTest: Where it can but ``admin/lab
        up`` failed, now or on an earlier call, or where the lab has fewer
        than ``minimum_nodes`` nodes.
    """
    if not _STATE:
        client = _client()
        try:
            _STATE["lab"] = client.start_lab(_SCRIPT, nodes=LAB_NODES)
        except client.LabUnavailable as e:
            _STATE["error"] = ("unavailable", str(e))
        except client.LabFailed as e:
            _STATE["error"] = ("failed", str(e))
        else:
            atexit.register(release_lab)
    from twisted.trial.unittest import FailTest
    if "error" in _STATE:
        kind, message = _STATE["error"]
        require(kind != "unavailable", message)
        raise FailTest(message)
    lab = _STATE["lab"]
    if len(lab.nodes) < minimum_nodes:
        raise FailTest("the test needs a lab of %d nodes, not %d" % (
            minimum_nodes, len(lab.nodes)))
    return lab


def release_lab():
    """
    Bring this process's lab down, if it brought one up, unless
    ``FLOCKER_LAB_KEEP=1`` or another process still uses it.  Calling it
    again does nothing.
    """
    if _STATE.pop("lab", None) is None:
        return
    if os.environ.get("FLOCKER_LAB_KEEP") != "1":
        _client().stop_lab(_SCRIPT)
