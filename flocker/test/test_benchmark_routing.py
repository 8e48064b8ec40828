"""
Tests for the routing benchmark's floors (``benchmarks/routing.py``), in a
small lab of network namespaces the test creates and removes: the
container path's floor must have the shape of Flocker's routed path (client
to node2 to node1 to the container, and back the same way) without any
Flocker rule.  Needs root, iproute2, iptables, conntrack and nsenter; skips
without them, and fails instead under ``CI=true``.
"""

import re

from twisted.trial.unittest import SynchronousTestCase

from ..route.test._netns import NetworkLab, can_make_namespaces
from ..testtools import require
from .test_benchmarks import load_script


def rule_packets(lab, namespace, table, chain):
    """
    :return: ``dict`` of each rule of ``chain`` (as ``iptables -S`` prints
        it, counters left out) to the packets it matched.
    """
    listing = lab.run(namespace, ["iptables", "-t", table, "-v", "-S",
                                  chain]).stdout
    counted = {}
    for line in listing.splitlines():
        match = re.match(r"(-A .*?) -c (\d+) \d+(.*)$", line)
        if match:
            counted[match.group(1) + match.group(3)] = int(match.group(2))
    return counted


class ContainerFloorTests(SynchronousTestCase):
    """
    The ``forwarded`` path: node2 as a plain router to a second address of
    node1, which Docker's DNAT sends to the container.
    """

    def test_symmetric_without_flocker(self):
        """
        A push to the container over the floor path crosses node2 in both
        directions (the container's replies are marked by their original
        destination and routed back through node2), and node2 has no NAT
        rule at all.
        """
        available, reason = can_make_namespaces()
        require(available, reason)
        routing = load_script("routing.py")
        with NetworkLab() as lab:
            client = lab.host("client", 2)
            node1 = lab.host("node1", 11)
            node2 = lab.host("node2", 12)
            lab.run(node2, ["sysctl", "-w", "net.ipv4.ip_forward=1"])
            lab.run(node2, ["iptables", "-P", "FORWARD", "DROP"])
            container = routing.publish_container(lab, node1)
            lab.spawn(container, lab.tcp_argv(
                "meter", routing.PUBLISHED_PORT, 60), wait_for_ready=True)
            routing.forward_through(lab, client, node1, node2)
            routing.push(lab, client, routing.NODE1_VIA_NODE2,
                         routing.PUBLISHED_PORT, 4 << 20)
            forwarded = rule_packets(lab, node2, "filter", "FORWARD")
            marked = rule_packets(lab, node1, "mangle", "PREROUTING")
            nat = lab.run(node2, ["iptables", "-t", "nat", "-S"]).stdout
        way = "-A FORWARD -s %s/32 -d %s/32 -j ACCEPT"
        there = forwarded[way % (routing.CLIENT, routing.NODE1_VIA_NODE2)]
        back = forwarded[way % (routing.NODE1_VIA_NODE2, routing.CLIENT)]
        self.assertEqual(
            (there > 0, back > 0, sum(marked.values()) >= back,
             [line for line in nat.splitlines()
              if not line.startswith("-P ")]),
            (True, True, True, []))
