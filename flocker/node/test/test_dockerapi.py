"""
Tests for :mod:`flocker.node._dockerapi`: version negotiation, the
container-create body per version and the version-dependent response
fields, each against the Engine API's documented changes.
"""

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from .._dockerapi import (
    BODY_RULES, MAXIMUM_API_VERSION, MINIMUM_API_VERSION, APIVersion,
    UnsupportedField, VersionMismatch, container_networks, image_config,
    image_size, log_stream_is_multiplexed, negotiate, refused_version,
    request_body,
)
from ._daemon import DEBIAN_12, DOCKER_25, DOCKER_29, VersionedDockerDaemon

V = APIVersion.parse


class APIVersionTests(SynchronousTestCase):
    """
    Tests for ``APIVersion``.
    """

    def test_order(self):
        """
        Versions order numerically, not as text (1.9 < 1.41).
        """
        self.assertEqual(sorted([V("1.41"), V("1.9"), V("1.100")]),
                         [V("1.9"), V("1.41"), V("1.100")])

    def test_path(self):
        """
        ``path`` prefixes an API path with ``/vMAJOR.MINOR``.
        """
        self.assertEqual(V("1.44").path("/containers/json"),
                         "/v1.44/containers/json")

    def test_bad_text(self):
        """
        Anything but ``MAJOR.MINOR`` is refused.
        """
        for text in [None, "", "1", "1.41.2", "v1.41", "1.x", " 1.41"]:
            self.assertRaises(ValueError, APIVersion.parse, text)

    @given(st.integers(0, 9999), st.integers(0, 9999))
    def test_round_trip(self, major, minor):
        """
        ``str`` of a version parses back to it.
        """
        version = APIVersion(major, minor)
        self.assertEqual(APIVersion.parse(str(version)), version)


class NegotiateTests(SynchronousTestCase):
    """
    Tests for ``negotiate``, with the version documents the three daemons
    answer.
    """

    def document(self, daemon):
        api, minimum = daemon
        return {"ApiVersion": api, "MinAPIVersion": minimum}

    def test_debian_12(self):
        """
        Docker 20.10 (1.41) is spoken to in 1.41.
        """
        self.assertEqual(negotiate(self.document(DEBIAN_12)), V("1.41"))

    def test_docker_25(self):
        """
        Docker 25 (1.44) is spoken to in 1.44.
        """
        self.assertEqual(negotiate(self.document(DOCKER_25)), V("1.44"))

    def test_docker_29(self):
        """
        Docker 29 (1.52, minimum 1.44) is spoken to in 1.52.
        """
        self.assertEqual(negotiate(self.document(DOCKER_29)), V("1.52"))

    def test_newer_daemon(self):
        """
        A daemon newer than Flocker is spoken to in Flocker's newest version
        while it still accepts it.
        """
        self.assertEqual(
            negotiate({"ApiVersion": "1.70", "MinAPIVersion": "1.44"}),
            MAXIMUM_API_VERSION)

    def test_daemon_too_old(self):
        """
        A daemon older than 1.41 has nothing in common with Flocker; the
        message names both versions and says to upgrade Docker.
        """
        error = self.assertRaises(
            VersionMismatch, negotiate,
            {"ApiVersion": "1.40", "MinAPIVersion": "1.12"})
        self.assertEqual(
            ("1.40" in str(error), str(MINIMUM_API_VERSION) in str(error),
             "upgrade Docker" in str(error)), (True, True, True))

    def test_flocker_too_old(self):
        """
        A daemon refusing every version Flocker speaks asks for a newer
        Flocker.
        """
        error = self.assertRaises(
            VersionMismatch, negotiate,
            {"ApiVersion": "1.80", "MinAPIVersion": "1.60"})
        self.assertIn("upgrade Flocker", str(error))

    def test_no_minimum(self):
        """
        Without ``MinAPIVersion`` the daemon is taken to accept its own
        version only.
        """
        self.assertEqual(negotiate({"ApiVersion": "1.41"}), V("1.41"))

    def test_unreadable(self):
        """
        A document without a version, or not a mapping, is a mismatch.
        """
        for document in [{}, {"ApiVersion": 1.41}, [], "1.41"]:
            self.assertRaises(VersionMismatch, negotiate, document)


class RefusedVersionTests(SynchronousTestCase):
    """
    Tests for ``refused_version``, with the daemon's documented answers.
    """

    def test_too_old(self):
        """
        Docker 29's refusal of a 1.41 client is recognised.
        """
        self.assertTrue(refused_version(400, {"message": (
            "client version 1.41 is too old. Minimum supported API version "
            "is 1.44, please upgrade your client to a newer version")}))

    def test_too_new(self):
        """
        An older daemon's refusal of a newer client is recognised.
        """
        self.assertTrue(refused_version(400, {"message": (
            "client version 1.52 is too new. Maximum supported API version "
            "is 1.41")}))

    def test_other_errors(self):
        """
        Other errors, or the text with another status, are not refusals.
        """
        self.assertEqual(
            [refused_version(400, {"message": "invalid port"}),
             refused_version(500, {"message": (
                 "client version 1.41 is too old. Minimum supported API "
                 "version is 1.44, please upgrade")}),
             refused_version(400, None)],
            [False, False, False])


def _body(**fields):
    body = {"Image": "busybox", "HostConfig": {}}
    body.update(fields)
    return body


class RequestBodyTests(SynchronousTestCase):
    """
    Tests for ``request_body``: each documented change of the
    container-create body between 1.41 and the newest version.
    """

    def test_unchanged(self):
        """
        What Flocker sends today is the same for every version, and the
        given body is not changed.
        """
        body = _body(Env=["A=1"], ExposedPorts={"80/tcp": {}}, HostConfig={
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            "Memory": 0, "CpuShares": 0, "Init": True,
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "Binds": ["/a:/b"],
            "Sysctls": {"net.ipv4.conf.all.route_localnet": "1"}})
        original = repr(body)
        results = {str(v): request_body(body, V(v))
                   for v in ("1.41", "1.44", "1.52", "1.56")}
        self.assertEqual(
            (set(repr(r) for r in results.values()), repr(body)),
            ({repr((body, []))}, original))

    def test_mac_address_moves(self):
        """
        From 1.44 the MAC address goes on the container's network endpoint
        (1.44 deprecated, 1.52 removed the container-wide field); before,
        it stays container-wide.
        """
        body = _body(MacAddress="02:42:ac:11:00:99")
        old, _ = request_body(body, V("1.41"))
        new, _ = request_body(body, V("1.52"))
        self.assertEqual(
            (old["MacAddress"], "MacAddress" in new,
             new["NetworkingConfig"]["EndpointsConfig"]["bridge"]),
            ("02:42:ac:11:00:99", False, {"MacAddress": "02:42:ac:11:00:99"}))

    def test_mac_address_named_network(self):
        """
        The MAC address goes to the endpoint of the network the container
        is created on.
        """
        body = _body(MacAddress="02:42:ac:11:00:99",
                     HostConfig={"NetworkMode": "backend"})
        new, _ = request_body(body, V("1.44"))
        self.assertEqual(new["NetworkingConfig"]["EndpointsConfig"],
                         {"backend": {"MacAddress": "02:42:ac:11:00:99"}})

    def test_endpoint_mac_back_before_144(self):
        """
        Before 1.44 an endpoint's MAC address is sent container-wide, the
        only place those versions read it.
        """
        body = _body(NetworkingConfig={"EndpointsConfig": {
            "bridge": {"MacAddress": "02:42:ac:11:00:99"}}})
        old, _ = request_body(body, V("1.41"))
        self.assertEqual(
            (old["MacAddress"], old["NetworkingConfig"]),
            ("02:42:ac:11:00:99", {"EndpointsConfig": {"bridge": {}}}))

    def test_start_interval(self):
        """
        A healthcheck's ``StartInterval`` (1.44) is left out before 1.44
        and reported; the rest of the healthcheck stays.
        """
        body = _body(Healthcheck={"Test": ["CMD", "true"],
                                  "Interval": 10 ** 10,
                                  "StartInterval": 10 ** 9})
        old, dropped = request_body(body, V("1.41"))
        new, none = request_body(body, V("1.44"))
        self.assertEqual(
            (old["Healthcheck"], dropped, new["Healthcheck"], none),
            ({"Test": ["CMD", "true"], "Interval": 10 ** 10},
             ["Healthcheck.StartInterval"], body["Healthcheck"], []))

    def test_kernel_memory(self):
        """
        ``KernelMemory`` is left out from 1.42 (removed), and
        ``KernelMemoryTCP`` from 1.52.
        """
        body = _body(HostConfig={"KernelMemory": 1, "KernelMemoryTCP": 2})
        self.assertEqual(
            [request_body(body, V(v))[0]["HostConfig"]
             for v in ("1.41", "1.44", "1.52")],
            [{"KernelMemory": 1, "KernelMemoryTCP": 2},
             {"KernelMemoryTCP": 2}, {}])

    def test_required_field_refused(self):
        """
        A field whose absence would change what runs is refused before its
        version, naming the field and the version needed.
        """
        cases = [
            (_body(HostConfig={"Annotations": {"a": "b"}}), "1.43"),
            (_body(HostConfig={"Mounts": [{
                "Type": "volume", "Source": "v", "Target": "/v",
                "VolumeOptions": {"Subpath": "x"}}]}), "1.45"),
            (_body(HostConfig={"Mounts": [{
                "Type": "image", "Source": "i", "Target": "/i"}]}), "1.48"),
            (_body(HostConfig={"Mounts": [{
                "Type": "bind", "Source": "/s", "Target": "/t",
                "BindOptions": {"ReadOnlyNonRecursive": True}}]}), "1.44"),
            (_body(HostConfig={"Umask": "0022"}), "1.56"),
        ]
        results = []
        for body, needed in cases:
            error = self.assertRaises(UnsupportedField, request_body, body,
                                      V("1.41"))
            request_body(body, V(needed))
            results.append((str(error.needed), needed in str(error),
                            "1.41" in str(error)))
        self.assertEqual(results, [(needed, True, True)
                                   for _, needed in cases])

    def test_other_mount_types_pass(self):
        """
        The ``image`` mount rule looks at the value: a bind mount passes at
        every version.
        """
        body = _body(HostConfig={"Mounts": [
            {"Type": "bind", "Source": "/s", "Target": "/t"}]})
        self.assertEqual(request_body(body, V("1.41")), (body, []))

    def test_eth0_sysctls_move(self):
        """
        From 1.46 a sysctl of the container's first interface goes in the
        endpoint's driver options with ``IFNAME`` (1.48 stopped moving it
        itself); ``all`` sysctls stay; before 1.46 nothing moves.
        """
        body = _body(HostConfig={"Sysctls": {
            "net.ipv4.conf.eth0.log_martians": "1",
            "net.ipv4.conf.all.route_localnet": "1"}})
        old, _ = request_body(body, V("1.44"))
        new, _ = request_body(body, V("1.48"))
        self.assertEqual(
            (old, new["HostConfig"]["Sysctls"],
             new["NetworkingConfig"]["EndpointsConfig"]["bridge"]),
            (body, {"net.ipv4.conf.all.route_localnet": "1"},
             {"DriverOpts": {"com.docker.network.endpoint.sysctls":
                             "net.ipv4.conf.IFNAME.log_martians=1"}}))

    def test_empty_port_bindings(self):
        """
        An empty binding list (deprecated in 1.52: the daemon filled it in
        at start) is sent as the binding it stood for: any host port on
        every address.
        """
        body = _body(HostConfig={"PortBindings": {"80/tcp": []}})
        new, _ = request_body(body, V("1.52"))
        self.assertEqual(new["HostConfig"]["PortBindings"],
                         {"80/tcp": [{"HostIp": "", "HostPort": ""}]})

    def test_rules_in_range(self):
        """
        Every rule names versions within the range Flocker speaks, so each
        is exercised by some negotiated version.
        """
        bounds = [version for rule in BODY_RULES
                  for version in (rule.since, rule.until)
                  if version is not None]
        self.assertEqual(
            [v for v in bounds
             if not MINIMUM_API_VERSION < v <= MAXIMUM_API_VERSION], [])


class ResponseFieldTests(SynchronousTestCase):
    """
    The version-dependent response readers against the answers of a 1.41,
    a 1.44 and a 1.52 daemon.
    """

    def daemons(self):
        return [VersionedDockerDaemon(api, minimum, images=["busybox"])
                for api, minimum in (DEBIAN_12, DOCKER_25, DOCKER_29)]

    def test_image_size(self):
        """
        The image size is read at every version (``VirtualSize`` is gone
        from 1.44).
        """
        answers = [daemon._image("busybox", daemon.api_version)
                   for daemon in self.daemons()]
        self.assertEqual(
            ([image_size(a) for a in answers],
             ["VirtualSize" in a for a in answers],
             image_size({"VirtualSize": 5}), image_size({})),
            ([1234, 1234, 1234], [True, False, False], 5, None))

    def test_image_config(self):
        """
        The image's configuration comes from ``Config`` (never
        ``ContainerConfig``, gone from 1.45), with what 1.52 omits when
        unset filled in.
        """
        answers = [daemon._image("busybox", daemon.api_version)
                   for daemon in self.daemons()]
        configs = [image_config(a) for a in answers]
        self.assertEqual(
            ([c["Cmd"] for c in configs], [c["Labels"] for c in configs],
             [c["Entrypoint"] for c in configs],
             ["ContainerConfig" in a for a in answers],
             "Labels" in answers[2]["Config"]),
            ([["sh"]] * 3, [{}] * 3, [None] * 3, [True, True, False],
             False))

    def test_container_networks(self):
        """
        A container's addresses come from ``NetworkSettings.Networks``
        (the top-level copies are gone from 1.52).
        """
        results = []
        for daemon in self.daemons():
            daemon.containers["c1"] = {"name": "web", "running": True,
                                       "body": {"Image": "busybox"}}
            inspected = daemon._inspect("c1", daemon.containers["c1"],
                                        daemon.api_version)
            results.append((container_networks(inspected),
                            "IPAddress" in inspected["NetworkSettings"]))
        expected = {"bridge": {"IPAddress": "172.17.0.2",
                               "MacAddress": "02:42:ac:11:00:02",
                               "Gateway": "172.17.0.1"}}
        self.assertEqual(results, [(expected, True), (expected, True),
                                   (expected, False)])

    def test_log_framing(self):
        """
        From 1.42 the ``Content-Type`` says whether a log stream is
        multiplexed; before, a container without a terminal means it is.
        """
        self.assertEqual(
            [log_stream_is_multiplexed(
                "application/vnd.docker.multiplexed-stream", True),
             log_stream_is_multiplexed(
                 "application/vnd.docker.raw-stream", False),
             log_stream_is_multiplexed(None, False),
             log_stream_is_multiplexed("text/plain", True)],
            [True, False, True, False])
