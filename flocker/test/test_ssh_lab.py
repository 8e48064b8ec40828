"""
The SSH command runner of :mod:`flocker._ssh` from the lab's client
namespace to every lab node.
"""

import json
import sys

from twisted.trial.unittest import SynchronousTestCase

from ..testtools import shared_lab
from .test_ssh import _file_state

_LAB_PROBE = """
import json, sys
from twisted.internet.defer import gatherResults
from twisted.internet.task import react
from flocker._ssh import ssh_command_runner

def main(reactor, identity, known_hosts, *addresses):
    runner = ssh_command_runner(reactor, identity_files=[identity],
                                known_hosts_path=known_hosts, environ={})
    d = gatherResults([runner.run(address, ["hostname"])
                       for address in addresses])
    d.addCallback(lambda names: print(json.dumps(
        [name.decode("ascii").strip() for name in names])))
    return d.addBoth(lambda result: runner.close().addCallback(
        lambda _: result))

react(main, sys.argv[1:])
"""


class LabCommandRunnerTests(SynchronousTestCase):
    """
    The runner from the lab's client namespace.
    """

    def test_lab_every_node(self):
        """
        From the lab's client namespace, the runner reaches every node at once
        with the lab's identity and known_hosts (which it leaves unchanged),
        and each command runs on the node it was sent to.
        """
        lab = shared_lab()
        before = _file_state(lab.known_hosts)
        result = lab.run_client(
            [sys.executable, "-c", _LAB_PROBE, lab.identity, lab.known_hosts]
            + [node.address for node in lab.nodes])
        self.assertEqual(json.loads(result.stdout), lab.node_names)
        self.assertEqual(_file_state(lab.known_hosts), before)
