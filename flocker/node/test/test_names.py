"""
Tests for :mod:`flocker.node._names`: service names that resolve.
"""

import attr
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, Deployment, InvalidModel, Link, Node, Port,
)
from flocker.node._names import name_addresses, with_service_names

WEB = Application(name="web", image="i", ports=[
    Port(internal=80, external=8080), Port(internal=443, external=8443)])
DB = Application(name="db", image="i", ports=[
    Port(internal=5432, external=15432)])
CLIENT = Application(name="client", image="i", links=[
    Link(local_port=5432, remote_port=15432, alias="database")])


def project(*nodes):
    """
    :return: A deployment of project ``p`` with ``nodes`` (address,
        applications) pairs.
    """
    return Deployment(project="p", nodes=[
        Node(address=address, applications=applications)
        for address, applications in nodes])


def links(deployment, name):
    """
    :return: The named links of application ``name``, as
        ``(alias, local, remote)`` sorted.
    """
    application = deployment.placements()[name][1]
    return sorted((l.alias, l.local_port, l.remote_port)
                  for l in application.links if l.named)


class NameAddressTests(SynchronousTestCase):
    """
    Tests for ``name_addresses``.
    """

    def test_stable(self):
        """
        A name's address does not depend on the other names.
        """
        self.assertEqual(name_addresses(["web"])["web"],
                         name_addresses(["web", "db", "cache"])["web"])

    def test_distinct_loopback(self):
        """
        Addresses are distinct, in ``127.128.0.0/9``.
        """
        names = ["s%d" % (i,) for i in range(2000)]
        addresses = name_addresses(names)
        self.assertEqual(
            (len(set(addresses.values())),
             all(a.startswith("127.") and int(a.split(".")[1]) >= 128
                 for a in addresses.values())),
            (2000, True))


class WithServiceNamesTests(SynchronousTestCase):
    """
    Tests for ``with_service_names``.
    """

    def test_every_other_service_every_port(self):
        """
        Each application gets a named link per other application and port
        it publishes: the name, the port it listens on, its external port.
        """
        found = with_service_names(project(("a", [WEB, DB]), ("b", [CLIENT])))
        self.assertEqual(
            (links(found, "client"), links(found, "web"), links(found, "db")),
            ([("database", 5432, 15432), ("db", 5432, 15432),
              ("web", 80, 8080), ("web", 443, 8443)],
             [("db", 5432, 15432)],
             [("web", 80, 8080), ("web", 443, 8443)]))

    def test_udp_ports(self):
        """
        A UDP port of another application gets a UDP named link.
        """
        dns = Application(name="dns", image="i", ports=[
            Port(internal=53, external=1053, protocol="udp")])
        found = with_service_names(project(("a", [dns]), ("b", [CLIENT])))
        client = found.placements()["client"][1]
        self.assertEqual(
            [(l.alias, l.local_port, l.remote_port, l.protocol)
             for l in client.links if l.named],
            [("dns", 53, 1053, "udp")])

    def test_own_links_kept(self):
        """
        An application's own links stay as they are beside the named ones.
        """
        found = with_service_names(project(("a", [WEB, DB, CLIENT])))
        client = found.placements()["client"][1]
        self.assertEqual({l for l in client.links if not l.named},
                         set(CLIENT.links))

    def test_same_address_everywhere(self):
        """
        A name has one address in every container.
        """
        found = with_service_names(project(("a", [WEB, DB]), ("b", [CLIENT])))
        addresses = {(l.alias, l.address)
                     for _, application in found.placements().values()
                     for l in application.links if l.named}
        self.assertEqual(len({alias for alias, _ in addresses}),
                         len(addresses))

    def test_idempotent(self):
        """
        Applying it again changes nothing, so a node's report (whose
        applications carry the named links) compares equal.
        """
        once = with_service_names(project(("a", [WEB, DB]), ("b", [CLIENT])))
        self.assertEqual(with_service_names(once), once)

    def test_no_project(self):
        """
        A deployment without a project is left as it is.
        """
        deployment = Deployment(nodes=[Node(address="a",
                                            applications=[WEB, DB])])
        self.assertIs(with_service_names(deployment), deployment)

    def test_named_link_address_checked(self):
        """
        A named link's address must be of ``127.0.0.0/8``.
        """
        self.assertRaises(InvalidModel, Link, local_port=1, remote_port=2,
                          alias="x", address="10.0.0.1")
        self.assertRaises(InvalidModel, attr.evolve, Link(
            local_port=1, remote_port=2, alias="x"), address="127.0.0.999")
