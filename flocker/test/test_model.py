"""
Tests for ``flocker._model`` (values and their invariants) and
``flocker._serialize`` (their JSON form).
"""

import attr
from hypothesis import given, strategies as st

from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    MAX_FILE_SIZE, Application, AttachedVolume, ClusterState, Deployment,
    FileMount, HostMount, InvalidModel, Link,
    Node, NodeKey, NodeKeyStatus, NodeState, Port, RestartPolicy, Route,
    Standby, VolumeState, is_safe_name, known_hosts_digest, parse_peers,
    public_key_fingerprint,
)
from flocker._serialize import (
    SerializationError, application_from_dict, application_to_dict,
    cluster_state_from_dict, cluster_state_to_dict, dumps, loads,
    node_state_from_dict, node_state_to_dict, route_from_dict, route_to_dict,
)
from flocker.node.testtools import make_node_key, make_public_key
from flocker.testtools.strategies import (
    application_names, applications, cluster_states, deployments,
    fuzz_settings, node_addresses, node_identities, node_states,
    public_keys, tcp_ports,
)
from flocker.testtools import cases, with_cases
from flocker._identifiers import is_node_address, is_node_identity

WEB = Application(name="web", image="example/web",
                  ports=[Port(internal=80, external=8080)])
DB = Application(name="db", image="postgres",
                 ports=[Port(internal=5432, external=5432)])


@with_cases
class SafeNamesTests(SynchronousTestCase):
    """
    ``is_safe_name``: the names that become container, dataset and
    iptables names.
    """

    @cases([(name,) for name in ["a", "web-1", "DB_2", "9lives",
                                 "x" * 63, "site-example.com", "a.b"]])
    def test_accepted(self, name):
        """
        Letters, digits, '-', '_' and '.' starting with a letter or digit,
        up to 63 characters, are safe (Docker's container name characters;
        Flocker 0.4 names such as ``site-example.com``).
        """
        self.assertTrue(is_safe_name(name))

    @cases([(name,) for name in [
        "", "-rf", "_x", "a b", "a;b", "a/b", "..", "a..b", ".a", "$(x)", "a\nb",
        "x" * 64, "é", 5, None, b"web"]])
    def test_refused(self, name):
        """
        Anything else, including non-strings, is not.
        """
        self.assertFalse(is_safe_name(name))

    @given(application_names())
    def test_generated_names_are_safe(self, name):
        """
        The shared strategy only generates safe names.
        """
        self.assertTrue(is_safe_name(name))


@with_cases
class PortAndLinkTests(SynchronousTestCase):
    """
    ``Port`` and ``Link``.
    """

    @cases([(bad,) for bad in [0, 65536, -1, True, "80", 80.0, None]])
    def test_port_range(self, bad):
        """
        Port numbers are integers (not booleans) within 1-65535.
        """
        with self.assertRaises(InvalidModel):
            Port(internal=bad, external=80)
        with self.assertRaises(InvalidModel):
            Port(internal=80, external=bad)

    def test_link_alias(self):
        """
        A link's alias must be a safe name.
        """
        with self.assertRaises(InvalidModel):
            Link(local_port=1, remote_port=2, alias="a b")

    def test_link_ports(self):
        """
        A link's ports are TCP ports.
        """
        with self.assertRaises(InvalidModel):
            Link(local_port=0, remote_port=2, alias="a")


@with_cases
class AttachedVolumeTests(SynchronousTestCase):
    """
    ``AttachedVolume`` mountpoints and sizes.
    """

    @cases([(mountpoint,) for mountpoint in [
        "data", "", "/", "/a/../b", "/a/", "/a//b", "/a/./b", "/a\x00",
        "/a\nb", "/" + "x" * 1024, None]])
    def test_bad_mountpoint(self, mountpoint):
        """
        Mountpoints are absolute, normalised, not ``/``, without ``..`` or
        control characters, at most 1024 characters.
        """
        with self.assertRaises(InvalidModel):
            AttachedVolume(mountpoint=mountpoint)

    @cases([(size,) for size in [0, -1, True, 1.5, "1G"]])
    def test_bad_size(self, size):
        """
        The maximum size is a positive integer or ``None``.
        """
        with self.assertRaises(InvalidModel):
            AttachedVolume(mountpoint="/data", maximum_size=size)

    def test_defaults(self):
        """
        Without a size the volume has no quota.
        """
        self.assertIsNone(AttachedVolume(mountpoint="/data").maximum_size)


@with_cases
class SeveralVolumesTests(SynchronousTestCase):
    """
    Named volumes: ``Application.volumes``, ``all_volumes`` and the
    deployment's rules for volumes shared by several applications.
    """

    DATA = AttachedVolume(name="data", mountpoint="/data")
    LOGS = AttachedVolume(name="logs", mountpoint="/logs", read_only=True)

    def test_all_volumes(self):
        """
        ``all_volumes`` gives the application's own volume, named after
        it, and its named volumes, sorted by name.
        """
        application = Application(
            name="web", image="i", volume=AttachedVolume(mountpoint="/own"),
            volumes=[self.LOGS, self.DATA])
        self.assertEqual(
            application.all_volumes(),
            (self.DATA, self.LOGS,
             AttachedVolume(name="web", mountpoint="/own")))

    def test_no_volumes(self):
        """
        An application without volumes has none.
        """
        self.assertEqual(WEB.all_volumes(), ())

    @cases([(fields,) for fields in [
        dict(volumes=[AttachedVolume(mountpoint="/x")]),
        dict(volumes=["/x"]),
        dict(volumes=[AttachedVolume(name="data", mountpoint="/x"),
                      AttachedVolume(name="data", mountpoint="/y")]),
        dict(volumes=[AttachedVolume(name="a", mountpoint="/x"),
                      AttachedVolume(name="b", mountpoint="/x")]),
        dict(volume=AttachedVolume(mountpoint="/x"),
             volumes=[AttachedVolume(name="web", mountpoint="/y")]),
        dict(volume=AttachedVolume(mountpoint="/x"),
             volumes=[AttachedVolume(name="b", mountpoint="/x")]),
        dict(volume=AttachedVolume(name="other", mountpoint="/x")),
    ]])
    def test_invalid(self, fields):
        """
        Named volumes need a name; an application mounts a volume once and
        one volume at a mountpoint; its own volume is named after it.
        """
        with self.assertRaises(InvalidModel):
            Application(name="web", image="i", **fields)

    @cases([(fields,) for fields in [
        dict(name="bad name"), dict(read_only="yes"), dict(external=1)]])
    def test_invalid_volume(self, fields):
        """
        A volume name is a safe name; ``read_only`` and ``external`` are
        booleans.
        """
        with self.assertRaises(InvalidModel):
            AttachedVolume(mountpoint="/x", **fields)

    def test_shared_on_one_node(self):
        """
        Two applications on one node may mount one named volume.
        """
        web = attr.evolve(WEB, volumes=[self.DATA])
        db = attr.evolve(DB, volumes=[attr.evolve(self.DATA,
                                                  read_only=True)])
        deployment = Deployment(nodes=[Node(address="a",
                                            applications=[web, db])])
        self.assertEqual(deployment.node("a").applications, {web, db})

    def test_shared_across_nodes(self):
        """
        A volume mounted by applications placed on two nodes is refused,
        naming both.
        """
        web = attr.evolve(WEB, volumes=[self.DATA])
        db = attr.evolve(DB, volumes=[self.DATA])
        with self.assertRaises(InvalidModel) as raised:
            Deployment(nodes=[Node(address="a", applications=[web]),
                              Node(address="b", applications=[db])])
        self.assertIn("volume data", str(raised.exception))
        self.assertTrue("node a" in str(raised.exception)
                        and "node b" in str(raised.exception))

    def test_own_volume_shared_across_nodes(self):
        """
        An application's own volume counts: another application on another
        node cannot mount it by name.
        """
        web = attr.evolve(WEB, volume=AttachedVolume(mountpoint="/w"))
        db = attr.evolve(DB, volumes=[AttachedVolume(name="web",
                                                     mountpoint="/w")])
        with self.assertRaises(InvalidModel):
            Deployment(nodes=[Node(address="a", applications=[web]),
                              Node(address="b", applications=[db])])

    @cases([(other,) for other in [
        dict(maximum_size=1024), dict(external=True)]])
    def test_shared_disagreeing(self, other):
        """
        Applications sharing a volume agree on its size and on whether it
        is external.
        """
        web = attr.evolve(WEB, volumes=[self.DATA])
        db = attr.evolve(DB, volumes=[attr.evolve(self.DATA, **other)])
        with self.assertRaises(InvalidModel):
            Deployment(nodes=[Node(address="a", applications=[web, db])])

    def test_serialized_without_volumes(self):
        """
        The JSON of an application without named volumes has no
        ``volumes`` key, and a volume's default flags are left out: labels
        written before named volumes existed read back equal.
        """
        data = application_to_dict(attr.evolve(
            WEB, volume=AttachedVolume(mountpoint="/w")))
        self.assertNotIn("volumes", data)
        self.assertEqual(data["volume"],
                         {"mountpoint": "/w", "maximum_size": None})

    def test_serialized_round_trip(self):
        """
        Named volumes and their flags survive the JSON form.
        """
        application = attr.evolve(WEB, volumes=[
            self.LOGS, attr.evolve(self.DATA, external=True,
                                   maximum_size=10)])
        self.assertEqual(
            application_from_dict(loads(dumps(
                application_to_dict(application)))),
            application)


@with_cases
class BindMountsTests(SynchronousTestCase):
    """
    ``HostMount`` and ``FileMount``: what a compose file's bind mounts
    become.
    """

    def test_file_equality_by_digest(self):
        """
        A file with its content equals the one rebuilt from a report (its
        digest only); another content is another value.
        """
        with_content = FileMount.of("/etc/app.conf", b"x = 1\n")
        self.assertEqual(
            with_content,
            FileMount(mountpoint="/etc/app.conf",
                      digest=with_content.digest))
        self.assertNotEqual(with_content,
                            FileMount.of("/etc/app.conf", b"x = 2\n"))

    @cases([(fields,) for fields in [
        dict(digest="abc"), dict(mode=0o10000), dict(mode=True),
        dict(content=b"other"), dict(content="text"),
        dict(mountpoint="/a:b")]])
    def test_bad_file(self, fields):
        """
        The digest is a SHA-256 of the content, the mode permission bits,
        the mountpoint a path Docker can bind.
        """
        values = attr.asdict(FileMount.of("/f", b"x"), recurse=False)
        values.update(fields)
        with self.assertRaises(InvalidModel):
            FileMount(**values)

    def test_file_too_large(self):
        """
        A file larger than ``MAX_FILE_SIZE`` is refused: files are
        configuration, sent at every start.
        """
        with self.assertRaises(InvalidModel):
            FileMount.of("/f", b"x" * (MAX_FILE_SIZE + 1))

    @cases([(host_path,) for host_path in ["relative", "/a/../b", "/a:b"]])
    def test_bad_host_path(self, host_path):
        """
        Host paths are absolute, normalised, without ``:``.
        """
        with self.assertRaises(InvalidModel):
            HostMount(host_path=host_path, mountpoint="/x")

    def test_mountpoints_distinct(self):
        """
        A volume, a host mount and a file cannot share a mountpoint.
        """
        with self.assertRaises(InvalidModel):
            Application(name="web", image="i",
                        volume=AttachedVolume(mountpoint="/x"),
                        host_mounts=[HostMount(host_path="/srv",
                                               mountpoint="/x")])
        with self.assertRaises(InvalidModel):
            Application(name="web", image="i",
                        files=[FileMount.of("/x", b"")],
                        host_mounts=[HostMount(host_path="/srv",
                                               mountpoint="/x")])

    def test_seed_not_part_of_equality(self):
        """
        A volume's seed directory does not make it another volume.
        """
        self.assertEqual(
            AttachedVolume(mountpoint="/d", seed="/project/data"),
            AttachedVolume(mountpoint="/d"))

    def test_serialized(self):
        """
        Host mounts and files survive the JSON form; file contents travel
        only when asked for, and are then read back.
        """
        mount = FileMount.of("/etc/app.conf", b"\x00binary\xff", 0o600)
        application = attr.evolve(WEB, files=[mount], host_mounts=[
            HostMount(host_path="/etc/localtime",
                      mountpoint="/etc/localtime", read_only=True)])
        label = application_from_dict(loads(dumps(application_to_dict(
            application))))
        sent = application_from_dict(loads(dumps(application_to_dict(
            application, contents=True))))
        self.assertEqual((label, sent), (application, application))
        self.assertEqual(
            ([f.content for f in label.files],
             [f.content for f in sent.files]),
            ([None], [b"\x00binary\xff"]))


class RestartPolicyTests(SynchronousTestCase):
    """
    ``RestartPolicy``.
    """

    def test_default(self):
        """
        The default policy is never to restart.
        """
        self.assertEqual(RestartPolicy(), RestartPolicy(name="never"))

    def test_unknown_name(self):
        """
        Only never, always and on-failure exist.
        """
        with self.assertRaises(InvalidModel):
            RestartPolicy(name="sometimes")

    def test_retry_count_only_on_failure(self):
        """
        A retry count only goes with on-failure.
        """
        with self.assertRaises(InvalidModel):
            RestartPolicy(name="always", maximum_retry_count=3)
        self.assertEqual(
            RestartPolicy(name="on-failure",
                          maximum_retry_count=3).maximum_retry_count,
            3)

    def test_retry_count_positive(self):
        """
        The retry count is a positive integer.
        """
        with self.assertRaises(InvalidModel):
            RestartPolicy(name="on-failure", maximum_retry_count=0)


@with_cases
class ApplicationTests(SynchronousTestCase):
    """
    ``Application`` invariants and value semantics.
    """

    @cases([(fields,) for fields in [
        dict(name="a b"),
        dict(image="web; reboot"),
        dict(image=""),
        dict(image="a/../b"),
        dict(command=[]),
        dict(command=["a\x00"]),
        dict(command=[5]),
        dict(command="ls -l"),
        dict(environment={"1X": "a"}),
        dict(environment={"A B": "a"}),
        dict(environment={"X": 5}),
        dict(environment={"X": "a\x00"}),
        dict(ports=[80]),
        dict(links=[("a", 1, 2)]),
        dict(volume="/data"),
        dict(mem_limit=0),
        dict(cpu_shares=True),
        dict(restart_policy="always"),
        dict(ports=[Port(internal=80, external=1), Port(internal=81,
                                                        external=1)]),
        dict(ports=[Port(internal=80, external=1), Port(internal=80,
                                                        external=2)]),
        dict(links=[Link(local_port=1, remote_port=2, alias="a"),
                    Link(local_port=1, remote_port=3, alias="b")]),
    ]])
    def test_invalid(self, fields):
        """
        Each broken field or cross-field rule raises ``InvalidModel``.
        """
        values = dict(name="web", image="example/web")
        values.update(fields)
        with self.assertRaises(InvalidModel):
            Application(**values)

    def test_collections_order_insensitive(self):
        """
        Ports and links given in any order or container type give equal,
        equally hashed applications.
        """
        ports = [Port(internal=1, external=2), Port(internal=3, external=4)]
        first = Application(name="a", image="i", ports=ports,
                            environment={"A": "1", "B": "2"},
                            command=["x", "y"])
        second = Application(name="a", image="i", ports=reversed(ports),
                             environment=[("B", "2"), ("A", "1")],
                             command=("x", "y"))
        self.assertEqual(first, second)
        self.assertEqual(hash(first), hash(second))

    def test_command_order_matters(self):
        """
        The command is a sequence: argument order distinguishes values.
        """
        self.assertNotEqual(
            Application(name="a", image="i", command=["x", "y"]),
            Application(name="a", image="i", command=["y", "x"]))

    def test_immutable(self):
        """
        Fields cannot be assigned; ``attr.evolve`` makes a changed copy.
        """
        with self.assertRaises(attr.exceptions.FrozenInstanceError):
            WEB.image = "other"
        changed = attr.evolve(WEB, image="other")
        self.assertEqual((WEB.image, changed.image), ("example/web", "other"))

    def test_evolve_checks_invariants(self):
        """
        A changed copy is checked like a new value.
        """
        with self.assertRaises(InvalidModel):
            attr.evolve(WEB, name="bad name")

    @given(applications())
    def test_generated_equal_to_rebuilt(self, application):
        """
        An application rebuilt from its own fields is equal and hashes
        equal.
        """
        rebuilt = Application(**attr.asdict(application, recurse=False))
        self.assertEqual(rebuilt, application)
        self.assertEqual(hash(rebuilt), hash(application))


@with_cases
class NodeAndDeploymentTests(SynchronousTestCase):
    """
    ``Node`` and ``Deployment`` invariants and helpers.
    """

    @cases([(address,) for address in [
        "192.0.2.1", "node-1.example.com", "localhost", "0::1", "2001:db8::1"]])
    def test_good_address(self, address):
        """
        IPv4 and IPv6 literals and host names are node addresses.
        """
        self.assertEqual(Node(address=address).address, address)

    @cases([(address,) for address in [
        "", "-oProxyCommand=x", "a b", "a;b", "a..b", "$(x)", "a/b", 5,
        "::1"]])
    def test_bad_address(self, address):
        """
        Metacharacters, a leading '-' or ':' and '..' are refused.
        """
        with self.assertRaises(InvalidModel):
            Node(address=address)

    @cases([(node_id,) for node_id in [
        "6f1c1b7e-3c3e-4f5e-9a51-0c2d1e0b9f11", "node-a", "a", "db.1:2",
        "a" * 64]])
    def test_good_node_identity(self, node_id):
        """
        UUIDs and operator-chosen names of letters, digits and ``._:-`` up
        to 64 characters are node identities.
        """
        self.assertTrue(is_node_identity(node_id))

    @cases([(node_id,) for node_id in [
        "", "-node", ":node", "a b", "a/b", "a;b", "a" * 65, 5, None,
        b"node-a"]])
    def test_bad_node_identity(self, node_id):
        """
        Anything else (a leading '-' or ':', metacharacters, too long, not
        a string) is not a node identity.
        """
        self.assertFalse(is_node_identity(node_id))

    def test_same_name_twice_on_node(self):
        """
        A node cannot hold two different applications with one name.
        """
        with self.assertRaises(InvalidModel):
            Node(address="n", applications=[
                WEB, attr.evolve(WEB, image="other")])

    def test_application_on_two_nodes(self):
        """
        An application runs on at most one node.
        """
        with self.assertRaises(InvalidModel):
            Deployment(nodes=[Node(address="a", applications=[WEB]),
                              Node(address="b", applications=[WEB])])

    def test_external_port_twice(self):
        """
        An external port belongs to one application in the cluster.
        """
        clash = attr.evolve(DB, ports=[Port(internal=5432, external=8080)])
        with self.assertRaises(InvalidModel):
            Deployment(nodes=[Node(address="a", applications=[WEB]),
                              Node(address="b", applications=[clash])])

    def test_node_twice(self):
        """
        A node address appears once.
        """
        with self.assertRaises(InvalidModel):
            Deployment(nodes=[Node(address="a", applications=[WEB]),
                              Node(address="a", applications=[DB])])

    def test_node_lookup(self):
        """
        ``node`` finds a node by address, or gives ``None``.
        """
        node = Node(address="a", applications=[WEB])
        deployment = Deployment(nodes=[node, Node(address="b")])
        self.assertEqual((deployment.node("a"), deployment.node("c")),
                         (node, None))

    def test_placements(self):
        """
        ``placements`` maps each application name to its node and value.
        """
        deployment = Deployment(nodes=[Node(address="a", applications=[WEB]),
                                       Node(address="b", applications=[DB])])
        self.assertEqual(
            deployment.placements(),
            {"web": ("a", WEB),
             "db": ("b", DB)})

    @fuzz_settings(default=100)
    @given(deployments())
    def test_generated_deployments_hash(self, deployment):
        """
        A deployment rebuilt from its nodes in reverse order is equal and
        hashes equal.
        """
        rebuilt = Deployment(nodes=sorted(deployment.nodes,
                                          key=lambda n: n.address,
                                          reverse=True))
        self.assertEqual(rebuilt, deployment)
        self.assertEqual(hash(rebuilt), hash(deployment))


@with_cases
class StandbyTests(SynchronousTestCase):
    """
    ``Standby`` and the invariants a deployment checks for its standbys.
    """

    STORED = attr.evolve(DB, volume=AttachedVolume(mountpoint="/data"))

    def deployment(self, **standbys):
        """
        :return: A deployment of ``STORED`` on node ``a`` and ``WEB`` on
            ``b``, with node ``c`` empty and the given standbys.
        """
        return Deployment(
            nodes=[Node(address="a", applications=[self.STORED]),
                   Node(address="b", applications=[WEB]), Node(address="c")],
            standbys=standbys)

    def test_value(self):
        """
        A standby keeps its nodes in order, as a vector, and its interval
        in seconds too.
        """
        standby = Standby(application="db", nodes=["c", "b"],
                          interval=2500 * 10 ** 6)
        self.assertEqual(
            (list(standby.nodes), standby.seconds, standby.automatic),
            (["c", "b"], 2.5, False))
        self.assertEqual(
            standby,
            Standby(application="db", nodes=("c", "b"),
                    interval=2500 * 10 ** 6))

    @cases([(fields,) for fields in [
        dict(nodes=[]), dict(nodes=["b", "b"]), dict(nodes=["-x"]),
        dict(nodes=["b"], interval=10 ** 9 - 1),
        dict(nodes=["b"], interval=24 * 3600 * 10 ** 9 + 1),
        dict(nodes=["b"], interval=2.0), dict(nodes=["b"], interval=True),
        dict(nodes=["b"], automatic="no")]])
    def test_invalid(self, fields):
        """
        No node, a repeated or malformed node, an interval outside 1 s to
        24 h or not an integer, and a non-boolean ``automatic`` are refused.
        """
        with self.assertRaises(InvalidModel):
            Standby(application="db", **fields)

    def test_in_deployment(self):
        """
        A deployment keeps its standbys by application name.
        """
        standby = Standby(application="db", nodes=["c", "b"])
        self.assertEqual(self.deployment(db=standby).standbys, {"db": standby})

    @cases([
        ("db", ["a"]), ("db", ["d"]), ("web", ["c"])])
    def test_refused_in_deployment(self, name, nodes):
        """
        The primary as its own standby, a node outside the deployment, and
        an application without a volume are refused.
        """
        with self.assertRaises(InvalidModel):
            self.deployment(**{name: Standby(application=name, nodes=nodes)})

    def test_keyed_by_application(self):
        """
        A standby must be filed under its own application's name.
        """
        with self.assertRaises(InvalidModel):
            self.deployment(web=Standby(application="db", nodes=["c"]))

    def test_unplaced(self):
        """
        The standby of an application the deployment does not place (a
        deployment file read alone) is only checked against the nodes.
        """
        deployment = Deployment(nodes=[Node(address="a")], standbys={
            "db": Standby(application="db", nodes=["a"])})
        self.assertEqual(list(deployment.standbys), ["db"])


class CurrentStateTests(SynchronousTestCase):
    """
    ``Route``, ``VolumeState``, ``NodeState`` and ``ClusterState``.
    """

    def test_route_checks(self):
        """
        A route needs a TCP port and a node address.
        """
        with self.assertRaises(InvalidModel):
            Route(port=0, address="a")
        with self.assertRaises(InvalidModel):
            Route(port=80, address="a;b")

    @given(tcp_ports(), node_addresses())
    def test_route_value(self, port, address):
        """
        Routes with equal fields are equal and hash equal.
        """
        self.assertEqual(Route(port=port, address=address),
                         Route(port, address))
        self.assertEqual(
            hash(Route(port, address)),
            hash(Route(port=port,
                       address=address)))

    def test_volume_state(self):
        """
        A volume state needs a safe name and a boolean ownership.
        """
        with self.assertRaises(InvalidModel):
            VolumeState(name="a/b", owned=True)
        with self.assertRaises(InvalidModel):
            VolumeState(name="a", owned=1)

    def test_running_must_be_known(self):
        """
        A running application must be one of the node's applications.
        """
        with self.assertRaises(InvalidModel):
            NodeState(address="a", applications={"web": WEB},
                      running=["db"])

    def test_application_key_matches(self):
        """
        Applications are keyed by their own name.
        """
        with self.assertRaises(InvalidModel):
            NodeState(address="a", applications={"db": WEB})

    def test_volume_key_matches(self):
        """
        Volumes are keyed by their own name.
        """
        with self.assertRaises(InvalidModel):
            NodeState(address="a", volumes={
                "db": VolumeState(name="web", owned=True)})

    def test_cluster_key_matches(self):
        """
        Node states are keyed by their own address.
        """
        with self.assertRaises(InvalidModel):
            ClusterState(nodes={"b": NodeState(address="a")})


@with_cases
class SerializeTests(SynchronousTestCase):
    """
    ``flocker._serialize``: JSON forms of the models.
    """

    @fuzz_settings(default=100)
    @given(applications())
    def test_application_round_trip(self, application):
        """
        An application survives ``to_dict``, JSON text and ``from_dict``.
        """
        text = dumps(application_to_dict(application))
        self.assertEqual(application_from_dict(loads(text)), application)

    @given(tcp_ports(), node_addresses())
    def test_route_round_trip(self, port, address):
        """
        A route survives its dictionary form.
        """
        route = Route(port=port, address=address)
        self.assertEqual(route_from_dict(loads(dumps(route_to_dict(route)))),
                         route)

    @fuzz_settings(default=100)
    @given(node_states())
    def test_node_state_round_trip(self, state):
        """
        A node's report survives its JSON form.
        """
        text = dumps(node_state_to_dict(state))
        self.assertEqual(node_state_from_dict(loads(text)), state)

    @fuzz_settings(default=50)
    @given(cluster_states())
    def test_cluster_state_round_trip(self, state):
        """
        A whole cluster's reports survive their JSON form.
        """
        text = dumps(cluster_state_to_dict(state))
        self.assertEqual(cluster_state_from_dict(loads(text)), state)

    @fuzz_settings(default=100)
    @given(applications(), st.randoms(use_true_random=False))
    def test_canonical(self, application, random):
        """
        Equal values serialise to equal text, however their collections
        were ordered when built.
        """
        ports = list(application.ports)
        links = list(application.links)
        environment = list(application.environment.items())
        for items in (ports, links, environment):
            random.shuffle(items)
        shuffled = attr.evolve(application, ports=ports, links=links,
                               environment=dict(environment))
        self.assertEqual(
            dumps(application_to_dict(shuffled)),
            dumps(application_to_dict(application)))

    def test_not_json(self):
        """
        Text that is not JSON raises ``SerializationError``.
        """
        with self.assertRaises(SerializationError):
            loads("{not json")

    def test_nested_too_deeply(self):
        """
        JSON nested deeper than the decoder goes raises
        ``SerializationError`` (not ``RecursionError``).
        """
        with self.assertRaises(SerializationError) as caught:
            loads("[" * 100000 + "]" * 100000)
        self.assertIn("nested too deeply", str(caught.exception))

    def test_missing_field(self):
        """
        A dictionary lacking a field raises ``SerializationError``.
        """
        data = application_to_dict(WEB)
        del data["image"]
        with self.assertRaises(SerializationError):
            application_from_dict(data)

    def test_broken_invariant(self):
        """
        A dictionary describing an invalid value raises
        ``SerializationError``, not ``InvalidModel``.
        """
        data = application_to_dict(WEB)
        data["name"] = "bad name"
        with self.assertRaises(SerializationError):
            application_from_dict(data)

    @cases([(data,) for data in [None, [], "x", {"nodes": 5},
                                 {"nodes": [{"address": "a"}]}]])
    def test_wrong_shape(self, data):
        """
        Structures of the wrong shape raise ``SerializationError``.
        """
        with self.assertRaises(SerializationError):
            cluster_state_from_dict(data)


class NodeKeyTests(SynchronousTestCase):
    """
    Tests for :class:`NodeKey` and :class:`NodeKeyStatus`.
    """

    def test_fingerprint(self):
        """
        The fingerprint is the one ssh-keygen prints (as Conch computes it).
        """
        from twisted.conch.ssh.keys import FingerprintFormats, Key
        public = make_public_key()
        expected = Key.fromString(public).fingerprint(
            FingerprintFormats.SHA256_BASE64).rstrip("=")
        self.assertEqual(public_key_fingerprint(public),
                         "SHA256:" + expected)
        self.assertEqual(NodeKeyStatus(public_key=public).fingerprint,
                         "SHA256:" + expected)

    def test_digest(self):
        """
        The digest covers both the known_hosts and the peers: a change to
        either is a different digest.
        """
        key = make_node_key(known_hosts="a ssh-ed25519 AAAA\n")
        self.assertEqual(key.digest(), known_hosts_digest(
            "a ssh-ed25519 AAAA\n\x00" + key.peers))
        self.assertNotEqual(key.digest(), attr.evolve(
            key, known_hosts="b ssh-ed25519 AAAA\n").digest())
        self.assertNotEqual(key.digest(), make_node_key(
            known_hosts="a ssh-ed25519 AAAA\n").digest())

    def test_peers(self):
        """
        ``parse_peers`` gives each line's identity, sources and key, in
        order; ``public_keys`` gives a node's keys (two while it rotates).
        """
        one, two, three = (make_public_key() for _ in range(3))
        key = make_node_key(peers=[("node-a", "10.0.0.1,a.example", one),
                                   ("node-b", "10.0.0.2", two),
                                   ("node-b", "10.0.0.2", three)])
        self.assertEqual(parse_peers(key.peers), [
            ("node-a", ["10.0.0.1", "a.example"], one),
            ("node-b", ["10.0.0.2"], two), ("node-b", ["10.0.0.2"], three)])
        self.assertEqual(key.public_keys("node-b"), [two, three])
        self.assertEqual(key.public_keys("node-c"), [])

    @given(st.lists(st.tuples(
        node_identities(), st.lists(node_addresses(), min_size=1,
                                    max_size=3), public_keys()),
        max_size=4))
    def test_peers_round_trip(self, peers):
        """
        Any peers text built from identities, addresses and key lines
        parses back to them, and makes a ``NodeKey``.
        """
        text = "".join("%s %s %s\n" % (node_id, ",".join(sources), key)
                       for node_id, sources, key in peers)
        self.assertEqual(parse_peers(text),
                         [(n, list(s), k) for n, s, k in peers])
        self.assertEqual(NodeKey(known_hosts="", peers=text).peers, text)

    @given(st.text(max_size=300))
    def test_peers_anything(self, text):
        """
        Any text either parses into lines of the right form or is refused
        with ``InvalidModel``, never another exception.
        """
        try:
            peers = parse_peers(text)
        except InvalidModel:
            return
        for node_id, sources, key in peers:
            self.assertEqual(
                (is_node_identity(node_id),
                 all(is_node_address(source) for source in sources),
                 NodeKeyStatus(public_key=key).public_key),
                (True, True, key))

    def test_invalid(self):
        """
        Peers lines that are not ``NODEID SOURCES ssh-ed25519 KEY`` (an RSA
        key, a wildcard source, a missing key, no final newline), known_hosts
        text without a final newline, and a status whose key is not an
        ed25519 key line are refused at construction.
        """
        key = make_node_key()
        public = make_public_key()
        for peers in ["node-a 10.0.0.1 ssh-rsa AAAAB3Nz\n",
                      "node-a * %s\n" % (public,),
                      "node-a 10.0.0.1\n",
                      "node-a 10.0.0.1 %s" % (public,),
                      "../x 10.0.0.1 %s\n" % (public,)]:
            self.assertRaises(InvalidModel, attr.evolve, key, peers=peers)
        self.assertRaises(InvalidModel, attr.evolve, key,
                          known_hosts="no newline")
        self.assertRaises(InvalidModel, NodeKeyStatus,
                          public_key="ssh-rsa AAAAB3Nz")
        self.assertRaises(InvalidModel, NodeKeyStatus, public_key=public,
                          pending_public_key="ssh-ed25519 not-base64!")


class SerializedFormTests(SynchronousTestCase):
    """
    Links' and routes' addresses and protocols through the JSON form.
    """

    def test_named_link_serialized(self):
        """
        A named link keeps its address through the JSON form; a loopback
        link's JSON is the three values it always was.
        """
        named = Link(local_port=80, remote_port=8080, alias="web",
                     address="127.130.0.9")
        application = attr.evolve(DB, links=[named, Link(
            local_port=1, remote_port=2, alias="x")])
        data = application_to_dict(application)
        self.assertEqual(
            sorted(data["links"]),
            [[1, 2, "x"],
             [80, 8080, "web", "127.130.0.9"]])
        self.assertEqual(application_from_dict(loads(dumps(data))),
                         application)

    def test_udp_link_serialized(self):
        """
        A UDP link keeps its protocol (and address) through the JSON form.
        """
        link = Link(local_port=53, remote_port=1053, alias="dns",
                    protocol="udp")
        data = application_to_dict(attr.evolve(DB, links=[link]))
        self.assertEqual(data["links"],
                         [[53, 1053, "dns", "127.0.0.1", "udp"]])
        self.assertEqual(application_from_dict(loads(dumps(data))).links,
                         {link})

    def test_udp_route(self):
        """
        A route's protocol is tcp unless it says udp; it is part of the value
        and survives the JSON form, a TCP route's form being what it was.
        """
        self.assertEqual(Route(53, "10.0.0.1"), Route(53, "10.0.0.1", "tcp"))
        self.assertNotEqual(Route(53, "10.0.0.1", "udp"),
                            Route(53, "10.0.0.1"))
        self.assertEqual(
            route_to_dict(Route(53, "10.0.0.1")),
            {"port": 53,
             "address": "10.0.0.1"})
        self.assertEqual(
            route_from_dict(loads(dumps(route_to_dict(
                Route(53, "10.0.0.1", "udp"))))),
            Route(53, "10.0.0.1", "udp"))
        with self.assertRaises(InvalidModel):
            Route(53, "10.0.0.1", "sctp")
