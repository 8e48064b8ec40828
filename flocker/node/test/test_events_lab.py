"""
The ``IDockerEvents`` contract of :mod:`flocker.node.test.test_events` for
:class:`flocker.node._events.DockerEvents` on a lab node's ``dockerd``.
"""

from ...testtools import shared_lab
from .test_events import RealEventsFixture, make_idockerevents_tests


class RealDockerEventsTests(make_idockerevents_tests(RealEventsFixture)):
    """
    The ``IDockerEvents`` contract for ``DockerEvents`` on a lab node's
    dockerd.
    """

    def setUp(self):
        # The lab first: a missing lab skips (or fails in CI) before the
        # fixture tries to use it.
        self.docker_socket = shared_lab().nodes[0].docker_socket
        super().setUp()
