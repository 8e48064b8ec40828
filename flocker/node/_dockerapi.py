"""
The Docker Engine API versions Flocker speaks, and what differs between them.

This module is the one home of everything version-dependent about the Engine
API, so the Docker client (and every request body or response field added to
it) goes through it:

* :func:`negotiate` picks the version to speak from the daemon's unversioned
  ``GET /version`` answer (``ApiVersion``, ``MinAPIVersion``): the highest
  version both Flocker and the daemon support.
* :func:`refused_version` recognises the daemon's documented refusal of a
  client version it no longer (or does not yet) accept, so a client that
  negotiated with a daemon since upgraded can negotiate again.
* :data:`BODY_RULES` and :func:`request_body` adapt a container-create body
  to the negotiated version, following the Engine API's version history:
  fields a version does not know are left out (when leaving them out only
  loses a refinement) or refused with a message naming the version needed,
  and fields a version moved are moved.
* :func:`image_size`, :func:`image_config`, :func:`container_networks` and
  :func:`log_stream_is_multiplexed` read response fields whose presence
  depends on the version.

Pure: no I/O, no reactor.  The versions Flocker knows run from
:data:`MINIMUM_API_VERSION` (Docker Engine 20.10, Debian 12's ``docker.io``)
to :data:`MAXIMUM_API_VERSION`; every change documented in the Engine API's
version history between the two was checked against what Flocker sends and
reads (see ``docs/install.rst``, "Docker Engine versions").
"""

import copy
import re

import attr

__all__ = [
    "APIVersion", "MINIMUM_API_VERSION", "MAXIMUM_API_VERSION",
    "VersionMismatch", "UnsupportedField", "FieldRule", "BODY_RULES",
    "negotiate", "refused_version", "request_body", "image_size",
    "image_config", "container_networks", "log_stream_is_multiplexed",
    "DEFAULT_NETWORK",
]


@attr.s(frozen=True, order=True, slots=True)
class APIVersion(object):
    """
    A Docker Engine API version, ordered as versions are.

    :ivar int major: Always 1 so far.
    :ivar int minor: E.g. 41 for ``1.41``.
    """
    major = attr.ib(validator=attr.validators.instance_of(int))
    minor = attr.ib(validator=attr.validators.instance_of(int))

    @major.validator
    @minor.validator
    def _non_negative(self, attribute, value):
        if value < 0:
            raise ValueError("%s must not be negative" % (attribute.name,))

    @classmethod
    def parse(cls, text):
        """
        :param str text: A version as Docker writes it, ``"1.41"``.
        :return: The :class:`APIVersion`.
        :raises ValueError: If ``text`` is not ``MAJOR.MINOR``.
        """
        match = re.match(r"\A([0-9]{1,4})\.([0-9]{1,4})\Z",
                         text if isinstance(text, str) else "")
        if match is None:
            raise ValueError("not a Docker API version: %r" % (text,))
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self):
        return "%d.%d" % (self.major, self.minor)

    def path(self, path):
        """
        :param str path: An API path, ``/containers/json``.
        :return: The path with this version's prefix,
            ``/v1.41/containers/json``.
        """
        return "/v%s%s" % (self, path)


#: The oldest version Flocker speaks: Docker Engine 20.10 (Debian 12's
#: ``docker.io``), the lab's daemon.
MINIMUM_API_VERSION = APIVersion(1, 41)

#: The newest version whose documented changes Flocker was checked against;
#: a newer daemon is spoken to in this version (daemons keep accepting older
#: clients down to their ``MinAPIVersion``).
MAXIMUM_API_VERSION = APIVersion(1, 56)

#: The network a container joins when its create body names none.
DEFAULT_NETWORK = "bridge"

# Docker Engine release bringing each version, for messages.
_RELEASES = {
    APIVersion(1, 41): "20.10", APIVersion(1, 42): "23.0",
    APIVersion(1, 43): "24.0", APIVersion(1, 44): "25.0",
    APIVersion(1, 45): "26.0", APIVersion(1, 46): "26.1",
    APIVersion(1, 47): "27.0", APIVersion(1, 48): "28.0",
    APIVersion(1, 49): "28.1", APIVersion(1, 50): "28.2",
    APIVersion(1, 51): "28.3", APIVersion(1, 52): "29.0",
}


def _named(version):
    release = _RELEASES.get(version)
    if release is None:
        return "API %s" % (version,)
    return "API %s (Docker Engine %s)" % (version, release)


class VersionMismatch(ValueError):
    """
    The daemon and Flocker have no API version in common, or the daemon's
    version document is unreadable.  ``str()`` is one line for an operator.
    """


class UnsupportedField(ValueError):
    """
    A request asks for something the negotiated API version cannot express
    and leaving it out would change what runs.

    :ivar str field: The field, as a dotted path.
    :ivar APIVersion needed: The first version that has it.
    :ivar APIVersion version: The negotiated version.
    """

    def __init__(self, field, needed, version):
        ValueError.__init__(self, field, needed, version)
        self.field = field
        self.needed = needed
        self.version = version

    def __str__(self):
        return ("%s needs Docker Engine %s or newer; the daemon speaks "
                "API %s: upgrade Docker on this node or leave the option "
                "out" % (self.field, _named(self.needed), self.version))


def negotiate(document, minimum=MINIMUM_API_VERSION,
              maximum=MAXIMUM_API_VERSION):
    """
    Choose the API version to speak with a daemon.

    :param dict document: The daemon's answer to the unversioned
        ``GET /version``: ``ApiVersion`` (the newest it speaks) and
        ``MinAPIVersion`` (the oldest client it accepts; taken as
        ``ApiVersion`` itself if absent, the safe assumption).
    :param APIVersion minimum: The oldest version Flocker speaks.
    :param APIVersion maximum: The newest version Flocker speaks.
    :return: The highest :class:`APIVersion` both sides support.
    :raises VersionMismatch: If there is none, or the document is not a
        version document.
    """
    if not isinstance(document, dict):
        raise VersionMismatch("the daemon's version answer is not a JSON "
                              "object")
    try:
        newest = APIVersion.parse(document.get("ApiVersion"))
        oldest = APIVersion.parse(document.get("MinAPIVersion",
                                               document.get("ApiVersion")))
    except ValueError as e:
        raise VersionMismatch("the daemon's version answer: %s" % (e,))
    if newest < minimum:
        raise VersionMismatch(
            "the daemon speaks API %s at most; Flocker needs %s or newer: "
            "upgrade Docker on this node" % (newest, _named(minimum)))
    if oldest > maximum:
        raise VersionMismatch(
            "the daemon accepts API %s or newer only; this Flocker speaks "
            "API %s at most: upgrade Flocker" % (oldest, maximum))
    return min(newest, maximum)


_REFUSAL = re.compile(
    r"client version \S+ is too (old|new)\. (Minimum|Maximum) supported "
    r"API version is [0-9]")


def refused_version(status, data):
    """
    Recognise the daemon refusing the request's API version, as it answers
    a client older than its ``MinAPIVersion`` (``client version 1.41 is too
    old. Minimum supported API version is 1.44, please upgrade your client
    to a newer version``, HTTP 400) or newer than its ``ApiVersion``.

    :param int status: The HTTP status.
    :param data: The decoded body.
    :return: ``True`` for such a refusal.
    """
    message = data.get("message") if isinstance(data, dict) else data
    return (status == 400 and isinstance(message, str)
            and _REFUSAL.search(message) is not None)


@attr.s(frozen=True, slots=True)
class FieldRule(object):
    """
    One documented difference between API versions in the container-create
    body.

    :ivar tuple path: Keys from the body's top to the field; ``"*"`` stands
        for every item of a list or every value of a mapping.
    :ivar since: The first :class:`APIVersion` knowing the field, or
        ``None``.
    :ivar until: The first :class:`APIVersion` no longer knowing it, or
        ``None``.
    :ivar bool required: What to do where the version lacks the field:
        ``True`` refuses the request (leaving the field out would change
        what runs), ``False`` leaves it out (only a refinement is lost).
    :ivar value: If not ``None``, the rule applies only where the field has
        this value (e.g. a mount's ``Type`` of ``image``).
    :ivar str change: The documented change, for messages and the docs.
    """
    path = attr.ib(converter=tuple)
    since = attr.ib()
    until = attr.ib()
    required = attr.ib()
    change = attr.ib()
    value = attr.ib(default=None)

    def known_by(self, version):
        """
        :param APIVersion version: A version.
        :return: ``True`` if ``version`` has the field.
        """
        return ((self.since is None or version >= self.since)
                and (self.until is None or version < self.until))

    def name(self):
        """
        :return: The field as a dotted path (``[]`` for list items).
        """
        text = ".".join(self.path).replace(".*", "[]")
        if self.value is not None:
            text += "=%s" % (self.value,)
        return text


def _v(minor):
    return APIVersion(1, minor)


#: The container-create body's fields that some version between
#: :data:`MINIMUM_API_VERSION` and :data:`MAXIMUM_API_VERSION` lacks, from
#: the Engine API's version history.  Fields moved between versions
#: (``MacAddress``, interface sysctls) and empty ``PortBindings`` lists are
#: handled by :func:`request_body` itself.
BODY_RULES = (
    FieldRule(("HostConfig", "KernelMemory"), None, _v(42), False,
              "1.42: KernelMemory removed from container create; ignored"),
    FieldRule(("HostConfig", "KernelMemoryTCP"), None, _v(52), False,
              "1.52: KernelMemoryTCP removed"),
    FieldRule(("HostConfig", "Mounts", "*", "BindOptions",
               "CreateMountpoint"), _v(42), None, True,
              "1.42: BindOptions.CreateMountpoint"),
    FieldRule(("HostConfig", "Annotations"), _v(43), None, True,
              "1.43: HostConfig.Annotations"),
    FieldRule(("Healthcheck", "StartInterval"), _v(44), None, False,
              "1.44: HealthConfig.StartInterval (checks run at Interval "
              "during the start period without it)"),
    FieldRule(("HostConfig", "Mounts", "*", "BindOptions",
               "ReadOnlyNonRecursive"), _v(44), None, True,
              "1.44: BindOptions.ReadOnlyNonRecursive"),
    FieldRule(("HostConfig", "Mounts", "*", "BindOptions",
               "ReadOnlyForceRecursive"), _v(44), None, True,
              "1.44: BindOptions.ReadOnlyForceRecursive"),
    FieldRule(("HostConfig", "Mounts", "*", "VolumeOptions", "Subpath"),
              _v(45), None, True, "1.45: VolumeOptions.Subpath"),
    FieldRule(("HostConfig", "Mounts", "*", "TmpfsOptions", "Options"),
              _v(46), None, True, "1.46: TmpfsOptions.Options"),
    FieldRule(("HostConfig", "Mounts", "*", "Type"), _v(48), None, True,
              "1.48: mounts of type image", value="image"),
    FieldRule(("NetworkingConfig", "EndpointsConfig", "*", "GwPriority"),
              _v(48), None, False,
              "1.48: EndpointsConfig.GwPriority (the first network gives "
              "the default gateway without it)"),
    FieldRule(("HostConfig", "Umask"), _v(56), None, True,
              "1.56: HostConfig.Umask"),
)

# Sysctls naming the container's first interface, which 1.46 lets (and from
# 1.48 requires) an endpoint's driver options carry instead.
_ETH0_SYSCTL = re.compile(r"\Anet\.(ipv4|ipv6)\.conf\.eth0\.(.+)\Z")
_ENDPOINT_SYSCTLS = "com.docker.network.endpoint.sysctls"


def _matches(container, path, value):
    """
    :return: A list of ``(parent, key)`` for every field at ``path`` below
        ``container`` (with ``value``, if not ``None``).
    """
    if not path:
        return []
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(container, list):
            children = list(enumerate(container))
        elif isinstance(container, dict):
            children = list(container.items())
        else:
            return []
        found = []
        for _, child in children:
            found.extend(_matches(child, rest, value))
        return found
    if not isinstance(container, dict) or head not in container:
        return []
    if not rest:
        if value is not None and container[head] != value:
            return []
        return [(container, head)]
    return _matches(container[head], rest, value)


def _network_name(body):
    mode = (body.get("HostConfig") or {}).get("NetworkMode") or "default"
    return DEFAULT_NETWORK if mode == "default" else mode


def _endpoint(body):
    """
    :return: The create body's endpoint settings of the container's own
        network, created if absent.
    """
    endpoints = body.setdefault("NetworkingConfig", {}).setdefault(
        "EndpointsConfig", {})
    return endpoints.setdefault(_network_name(body), {})


def request_body(body, version):
    """
    Adapt a container-create body (written for the newest version) to the
    negotiated version.

    :param dict body: The body; not changed.
    :param APIVersion version: The negotiated version.
    :return: ``(new body, dropped)``: ``dropped`` is a list of the dotted
        names of the fields left out because ``version`` lacks them.
    :raises UnsupportedField: If the body needs a field ``version`` lacks
        and leaving it out would change what runs.
    """
    body = copy.deepcopy(body)
    dropped = []
    for rule in BODY_RULES:
        if rule.known_by(version):
            continue
        places = _matches(body, rule.path, rule.value)
        if not places:
            continue
        if rule.required:
            raise UnsupportedField(rule.name(), rule.since, version)
        for parent, key in places:
            del parent[key]
        dropped.append(rule.name())
    # 1.44 moved the MAC address to the endpoint; 1.52 no longer accepts
    # the container-wide field.
    if version >= _v(44) and "MacAddress" in body:
        _endpoint(body)["MacAddress"] = body.pop("MacAddress")
    elif version < _v(44):
        endpoints = (body.get("NetworkingConfig") or {}).get(
            "EndpointsConfig") or {}
        mac = (endpoints.get(_network_name(body)) or {}).pop(
            "MacAddress", None)
        if mac is not None:
            body["MacAddress"] = mac
    # 1.48 stopped moving eth0 sysctls to the endpoint (1.46 added the
    # endpoint's driver option); Flocker moves them itself from 1.46 on.
    sysctls = (body.get("HostConfig") or {}).get("Sysctls") or {}
    per_interface = sorted(key for key in sysctls if _ETH0_SYSCTL.match(key))
    if version >= _v(46) and per_interface:
        options = _endpoint(body).setdefault("DriverOpts", {})
        moved = [options[_ENDPOINT_SYSCTLS]] if options.get(
            _ENDPOINT_SYSCTLS) else []
        for key in per_interface:
            moved.append("%s=%s" % (
                _ETH0_SYSCTL.sub(r"net.\1.conf.IFNAME.\2", key),
                sysctls.pop(key)))
        options[_ENDPOINT_SYSCTLS] = ",".join(moved)
    # 1.52 deprecated the start-time backfill of an empty binding list with
    # one binding to an ephemeral port on every address: say so explicitly,
    # which every version understands the same way.
    bindings = (body.get("HostConfig") or {}).get("PortBindings") or {}
    for port, listed in bindings.items():
        if listed == []:
            bindings[port] = [{"HostIp": "", "HostPort": ""}]
    return body, dropped


def image_size(summary):
    """
    :param dict summary: An image as ``GET /images/json`` or
        ``GET /images/{name}/json`` describe it.
    :return: Its size in bytes: ``Size`` (every version; ``VirtualSize``,
        the same figure, is gone from 1.44), or ``None`` if absent.
    """
    size = summary.get("Size")
    if size is None:
        size = summary.get("VirtualSize")
    return size if isinstance(size, int) else None


# Image configuration keys 1.52 omits when unset, with what unset means.
_IMAGE_CONFIG_DEFAULTS = {
    "Cmd": None, "Entrypoint": None, "Env": [], "Labels": {},
    "OnBuild": [], "User": "", "Volumes": {}, "WorkingDir": "",
    "ExposedPorts": {},
}


def image_config(inspected):
    """
    :param dict inspected: ``GET /images/{name}/json``'s answer.
    :return: The image's own configuration (``Config``, never the build
        container's ``ContainerConfig``, gone from 1.45), with the keys
        1.52 omits when unset filled in with what unset means.
    """
    config = dict(inspected.get("Config") or {})
    for key, default in _IMAGE_CONFIG_DEFAULTS.items():
        if config.get(key) is None:
            config[key] = copy.deepcopy(default)
    return config


def container_networks(inspected):
    """
    :param dict inspected: ``GET /containers/{id}/json``'s answer.
    :return: ``{network name: {"IPAddress": ..., "MacAddress": ...,
        "Gateway": ...}}`` from ``NetworkSettings.Networks`` (the top-level
        copies of the default network's values are gone from 1.52).
    """
    networks = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        name: {key: (settings or {}).get(key) or ""
               for key in ("IPAddress", "MacAddress", "Gateway")}
        for name, settings in networks.items()}


_MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
_RAW = "application/vnd.docker.raw-stream"


def log_stream_is_multiplexed(content_type, tty):
    """
    Tell whether a logs or attach stream carries Docker's 8-byte frame
    headers.

    :param content_type: The response's ``Content-Type`` (set from 1.42),
        or ``None``.
    :param bool tty: Whether the container has a terminal (``Config.Tty``),
        which decides it before 1.42.
    :return: ``True`` if the stream is multiplexed.
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == _MULTIPLEXED:
        return True
    if kind == _RAW:
        return False
    return not tty
