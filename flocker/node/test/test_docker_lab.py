"""
The ``IDockerClient`` contract of :mod:`flocker.node.test.test_docker` for
:class:`flocker.node._docker.DockerClient` on a lab node's ``dockerd``.
"""

from ...testtools import shared_lab
from .test_docker import IMAGE, RealDockerFixture, make_idockerclient_tests


def _lab_docker():
    """
    Use the lab (:func:`flocker.testtools.shared_lab`, which skips or fails
    in CI where no lab can run) and return node 1's name, address and
    Docker socket.
    """
    lab = shared_lab()
    node = lab.nodes[0]
    if IMAGE not in lab.images:
        raise AssertionError("the lab nodes lack %s" % (IMAGE,))
    return node.name, node.address, node.docker_socket


class RealDockerClientTests(make_idockerclient_tests(
        lambda test: RealDockerFixture(test, test.docker_socket,
                                       test.docker_node))):
    """
    The ``IDockerClient`` contract for ``DockerClient`` on a lab node's
    dockerd.
    """

    def setUp(self):
        # The lab first, so a missing lab skips (or fails in CI) before the
        # fixture tries to use it.
        self.docker_node, _, self.docker_socket = _lab_docker()
        super().setUp()
