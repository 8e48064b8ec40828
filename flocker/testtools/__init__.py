"""
Helpers shared by Flocker's tests.

:func:`require` skips a test whose real parts (root, a Docker daemon, ZFS,
network namespaces) are missing, or fails it in CI;
:func:`run_in_reactor` runs Deferred-returning code on one reactor for the
whole test session; :func:`temporary_directory`, :func:`temporary_path`,
:func:`class_temporary_path`,
:func:`capture_output`, :func:`http_status_and_body` and
:func:`wait_for_path` are small conveniences; :func:`capture_logging` is
eliot's, without its deprecated encoder; :class:`EndlessAgent` answers
HTTP requests with bodies that never end (streams followed for a
process's whole life).

Importing this package needs neither pytest nor hypothesis (the test
extras): the hypothesis strategies for the models are in
:mod:`flocker.testtools.strategies`, imported by the tests that use them,
and the client of the local lab is ``admin/_lab_client.py``.

:func:`cases` and :func:`with_cases` run one trial-style test method once
per case, each case its own named test; :func:`shared_lab` gives a test
the local lab, brought up once per process; :class:`ScenarioTestCase` runs
a class's steps in order, skipping the rest once one fails.
"""

from ._cases import cases, with_cases
from ._ci import in_ci, is_root, require
from ._eliot import capture_logging
from ._http import EndlessAgent, EndlessResponse
from ._lab import LAB_NODES, release_lab, shared_lab
from ._misc import (
    capture_output, class_temporary_path, http_status_and_body,
    temporary_directory, temporary_path, wait_for_path,
)
from ._reactor import ReactorTimeout, run_in_reactor
from ._scenario import ScenarioTestCase

__all__ = ["in_ci", "require", "is_root", "run_in_reactor", "ReactorTimeout",
           "temporary_directory", "temporary_path", "http_status_and_body",
           "cases", "with_cases", "shared_lab", "release_lab", "LAB_NODES",
           "capture_output", "ScenarioTestCase",
           "class_temporary_path", "wait_for_path", "EndlessAgent",
           "capture_logging",
           "EndlessResponse"]
