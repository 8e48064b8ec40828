"""
Tests for :mod:`flocker.node._names`: service names that resolve.
"""

import attr
from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, ContainerOptions, Deployment, InvalidModel, Link, Node,
    Port,
)
from flocker.node._names import (
    EXPOSED_PORTS, exposed_ports, name_addresses, with_service_names,
)
from flocker.testtools.strategies import fuzz_settings

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

    def test_network_aliases(self):
        """
        A network alias of an application resolves like its name, on its
        ports, in the other applications only.
        """
        db = attr.evolve(DB, options=ContainerOptions(aliases=["postgres"]))
        found = with_service_names(project(("a", [WEB, db])))
        self.assertEqual(
            (links(found, "web"), links(found, "db")),
            ([("db", 5432, 15432), ("postgres", 5432, 15432)],
             [("web", 80, 8080), ("web", 443, 8443)]))

    def test_alias_of_a_name_ignored(self):
        """
        An alias that is already a name of the project (another service's
        name) keeps reaching what that name reaches.
        """
        db = attr.evolve(DB, options=ContainerOptions(aliases=["web"]))
        found = with_service_names(project(("a", [WEB, db, CLIENT])))
        self.assertEqual(
            [entry for entry in links(found, "client")
             if entry[0] == "web"],
            [("web", 80, 8080), ("web", 443, 8443)])

    def test_link_alias_to_unpublished(self):
        """
        A link alias recorded for a service that publishes no port
        (``link_aliases``) resolves to that service's exposed ports.
        """
        cache = Application(name="cache", image="i", options=ContainerOptions(
            expose=[(6379, "tcp")]))
        client = Application(name="client", image="i",
                             options=ContainerOptions(
                                 link_aliases={"redis": "cache"}))
        found = with_service_names(project(("a", [cache, client])))
        external = [p.external for p in found.placements()["cache"][1].ports]
        self.assertEqual(links(found, "client"),
                         [("cache", 6379, external[0]),
                          ("redis", 6379, external[0])])

    def test_exposed_port_routed(self):
        """
        A port that is only exposed gets an external port of
        ``EXPOSED_PORTS``, published by its application, and the other
        applications' names reach it there.
        """
        cache = Application(name="cache", image="i", options=ContainerOptions(
            expose=[(6379, "tcp"), (8125, "udp")]))
        found = with_service_names(project(("a", [cache]), ("b", [WEB])))
        ports = sorted(found.placements()["cache"][1].ports,
                       key=lambda p: p.internal)
        self.assertEqual(
            ([(p.internal, p.protocol, p.external in EXPOSED_PORTS)
              for p in ports],
             [(l.alias, l.local_port, l.remote_port, l.protocol)
              for l in sorted(found.placements()["web"][1].links,
                              key=lambda l: l.local_port)]),
            ([(6379, "tcp", True), (8125, "udp", True)],
             [("cache", 6379, ports[0].external, "tcp"),
              ("cache", 8125, ports[1].external, "udp")]))

    def test_exposed_and_published(self):
        """
        An exposed port that the application also publishes is reached
        on its published port; no other port is added.
        """
        web = attr.evolve(WEB, options=ContainerOptions(expose=[(80, "tcp")]))
        self.assertEqual(exposed_ports("p", [web]), {})

    def test_exposed_ports_stable(self):
        """
        An exposed port's external port does not depend on the other
        applications, and two never meet.
        """
        def app(name):
            return Application(name=name, image="i", options=ContainerOptions(
                expose=[(80, "tcp")]))
        alone = exposed_ports("p", [app("web")])
        many = exposed_ports("p", [app("s%d" % (i,)) for i in range(300)]
                             + [app("web")])
        chosen = [port.external for found in many.values()
                  for port in found]
        self.assertEqual((alone["web"], len(set(chosen))),
                         (many["web"], 301))

    def test_exposed_port_avoids_published(self):
        """
        An exposed port never takes an external port another application
        publishes.
        """
        first = exposed_ports("p", [Application(
            name="cache", image="i",
            options=ContainerOptions(expose=[(6379, "tcp")]))])
        taken = list(first["cache"])[0].external
        web = Application(name="web", image="i", ports=[
            Port(internal=80, external=taken)])
        again = exposed_ports("p", [web, Application(
            name="cache", image="i",
            options=ContainerOptions(expose=[(6379, "tcp")]))])
        self.assertNotEqual(list(again["cache"])[0].external, taken)

    def test_dotted_names(self):
        """
        Names with dots (a Flocker 0.4 application name, a network alias
        written as a host name) resolve like the others.
        """
        dotted = Application(name="site.example", image="i", ports=[
            Port(internal=80, external=80)])
        db = attr.evolve(DB, options=ContainerOptions(
            aliases=["xmpp.meet.jitsi"]))
        found = with_service_names(project(("a", [dotted, db])))
        self.assertEqual(
            (links(found, "site.example"), links(found, "db")),
            ([("db", 5432, 15432), ("xmpp.meet.jitsi", 5432, 15432)],
             [("site.example", 80, 80)]))


_PORTS = st.lists(st.tuples(st.integers(1, 70), st.sampled_from(["tcp", "udp"])),
                  max_size=3, unique=True)


@st.composite
def _projects(draw):
    """
    A project of up to six applications on two nodes, each publishing and
    exposing a few ports (external ports unique per protocol).
    """
    count = draw(st.integers(1, 6))
    taken = set()
    nodes = {"a": [], "b": []}
    for index in range(count):
        ports = []
        for internal, protocol in draw(_PORTS):
            external = 8000 + draw(st.integers(0, 40))
            if (external, protocol) not in taken:
                taken.add((external, protocol))
                ports.append(Port(internal=internal, external=external,
                                  protocol=protocol))
        application = Application(
            name="s%d" % (index,), image="i", ports=ports,
            options=ContainerOptions(expose=draw(_PORTS)))
        nodes[draw(st.sampled_from(["a", "b"]))].append(application)
    return project(*nodes.items())


class WithServiceNamesPropertyTests(SynchronousTestCase):
    """
    Properties of ``with_service_names`` on generated projects.
    """

    @fuzz_settings(default=100)
    @given(_projects())
    def test_every_name_every_port(self, deployment):
        """
        Every application reaches every other one by name on each port it
        publishes or exposes, at the external port that application
        publishes; applying it again changes nothing.
        """
        found = with_service_names(deployment)
        placed = found.placements()
        for name, (_, application) in placed.items():
            reached = {(l.alias, l.local_port, l.protocol, l.remote_port)
                       for l in application.links if l.named}
            wanted = set()
            for other, (_, target) in placed.items():
                if other == name:
                    continue
                published = {(p.internal, p.protocol): p.external
                             for p in target.ports}
                self.assertTrue(
                    set(target.options.expose) <= set(published),
                    "%s exposes %r, publishes %r" % (
                        other, target.options.expose, published))
                wanted.update((other, internal, protocol, external)
                              for (internal, protocol), external
                              in published.items())
            self.assertEqual(reached, wanted, name)
        self.assertEqual(with_service_names(found), found)
