"""
The agent's kept report on a lab node: kept while nothing changes, and
never stale after a change the agent did not make itself (a Docker command
typed on the node, a volume made by another Flocker process).
"""

import json
import secrets

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab

IMAGE = "flocker/busybox:latest"


def _report(lab, node):
    """
    :return: The node agent's report, as ``flocker-node report`` prints it.
    """
    return json.loads(lab.run(node, ["flocker-node", "report"]).stdout)


def _volumes(report):
    """
    :return: The names of the volumes in a report.
    """
    return {volume["name"] for volume in report["volumes"]}


def _kept_answers(lab, node):
    """
    :return: How many reports the node's agent answered from its kept
        report so far (its log's ``flocker:node:report_kept`` messages).
    """
    log = lab.run(node, ["cat", "/var/log/flocker-agent.log"]).stdout
    return log.count('"flocker:node:report_kept"')


class ReportCacheLabTests(SynchronousTestCase):
    """
    The agent's kept report on a lab node.
    """

    def test_kept_then_changed_behind_its_back(self):
        """
        Back-to-back reports are answered from the kept report; an image
        tagged and a volume created on the node by other programs are in the
        very next report, and gone from it once removed.
        """
        lab = shared_lab()
        node = lab.nodes[0].name
        token = secrets.token_hex(4)
        tag = "flocker/kept-%s:latest" % (token,)
        volume = "kept-" + token
        _report(lab, node)
        before = _kept_answers(lab, node)
        _report(lab, node)
        kept = _kept_answers(lab, node) - before

        lab.run(node, ["docker", "tag", IMAGE, tag])
        try:
            tagged = tag in _report(lab, node)["images"]
        finally:
            lab.run(node, ["docker", "rmi", tag])
        untagged = tag not in _report(lab, node)["images"]

        lab.run(node, ["flocker-volume", "create", volume])
        try:
            created = volume in _volumes(_report(lab, node))
        finally:
            lab.run(node, ["flocker-volume", "delete", volume], check=False)
        deleted = volume not in _volumes(_report(lab, node))

        self.assertEqual(
            (kept >= 1, tagged, untagged, created, deleted),
            (True, True, True, True, True))
