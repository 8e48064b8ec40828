"""
Conversion of Flocker's model values to and from JSON-compatible structures.

This is the wire format between the deploy client and ``flocker-node``: node
reports, the applications stored in Docker labels and the arguments of remote
state changes all go through these functions.  Output is canonical (sorted),
so equal values serialise to equal text.
"""

import base64
import binascii
import json

import attr
from pyrsistent import PMap, PVector, pmap, pset

from ._model import (
    Application, AttachedVolume, ClusterState, ContainerOptions, Dependency,
    FileMount, HealthCheck, HostMount, InvalidModel, Link, LogConfig,
    NodeKeyStatus, NodeState, Port, Replication, ReplicationStatus,
    RestartPolicy, Route, StandbyStatus, Ulimit, VolumeState,
)

__all__ = [
    "application_to_dict", "application_from_dict", "volume_to_dict",
    "node_state_to_dict", "node_state_from_dict",
    "route_to_dict", "route_from_dict",
    "cluster_state_to_dict", "cluster_state_from_dict",
    "replication_to_dict", "replication_from_dict",
    "dumps", "loads", "SerializationError", "links_to_list",
    "links_from_list",
]


class SerializationError(ValueError):
    """
    A serialised value could not be turned back into a model value: it is not
    JSON, lacks a field, or breaks a model invariant.
    """


def dumps(value):
    """
    :param value: A JSON-compatible structure.
    :return: Canonical JSON text (sorted keys, no extra spaces).
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def loads(text):
    """
    :param text: JSON text (``str`` or ``bytes``).
    :return: The decoded structure.
    :raises SerializationError: If ``text`` is not JSON (nested too
        deeply for the decoder included).
    """
    try:
        return json.loads(text)
    except ValueError as e:
        raise SerializationError("not JSON: %s" % (e,))
    except RecursionError:
        # Nested deeper than the decoder goes: a peer's mistake (or
        # malice), not this process's.
        raise SerializationError("not JSON: nested too deeply")


def _port_to_list(port):
    # A TCP port on every address is written as it was before ports had a
    # protocol and an address, so labels and reports of older nodes match.
    if port.host_ip:
        return [port.internal, port.external, port.protocol, port.host_ip]
    if port.protocol != "tcp":
        return [port.internal, port.external, port.protocol]
    return [port.internal, port.external]


def _port_from_list(data):
    internal, external = data[0], data[1]
    protocol = data[2] if len(data) > 2 else "tcp"
    host_ip = data[3] if len(data) > 3 else ""
    return Port(internal=internal, external=external, protocol=protocol,
                host_ip=host_ip)


_DEFAULT_OPTIONS = ContainerOptions()


def _options_to_dict(options):
    """
    :return: The fields of a :class:`ContainerOptions` that differ from
        the defaults, as JSON-compatible values.
    """
    result = {}
    for field in attr.fields(ContainerOptions):
        value = getattr(options, field.name)
        if value == getattr(_DEFAULT_OPTIONS, field.name):
            continue
        if field.name == "ulimits":
            value = [[u.name, u.soft, u.hard] for u in value]
        elif field.name == "logging":
            value = {"driver": value.driver, "options": dict(value.options)}
        elif field.name == "healthcheck":
            value = {"test": list(value.test), "interval": value.interval,
                     "timeout": value.timeout,
                     "start_period": value.start_period,
                     "start_interval": value.start_interval,
                     "retries": value.retries}
        elif field.name == "expose":
            value = sorted([port, protocol] for port, protocol in value)
        elif isinstance(value, (PMap, dict)):
            value = dict(value)
        elif isinstance(value, PVector):
            value = list(value)
        result[field.name] = value
    return result


def _options_from_dict(data):
    fields = dict(data)
    if "ulimits" in fields:
        fields["ulimits"] = [Ulimit(name=n, soft=s, hard=h)
                             for n, s, h in fields["ulimits"]]
    if "logging" in fields:
        fields["logging"] = LogConfig(**fields["logging"])
    if "healthcheck" in fields:
        fields["healthcheck"] = HealthCheck(**fields["healthcheck"])
    if "expose" in fields:
        fields["expose"] = [tuple(item) for item in fields["expose"]]
    return ContainerOptions(**fields)


def application_to_dict(application, contents=False):
    """
    :param Application application: The application.
    :param bool contents: Include the content of its files (base64), as a
        start needs, rather than their digests only, as a label holds.
    :return: A JSON-compatible ``dict`` describing it completely.  The
        ``options``, ``depends_on`` (and other newer) keys appear only when
        they are not empty, so applications without them serialise as
        before they existed.
    """
    volume = application.volume
    result = {
        "name": application.name,
        "image": application.image,
        "command": (None if application.command is None
                    else list(application.command)),
        "environment": dict(application.environment),
        "ports": sorted(_port_to_list(p) for p in application.ports),
        "volume": None if volume is None else volume_to_dict(volume),
        "links": sorted(_link_to_list(l) for l in application.links),
        "mem_limit": application.mem_limit,
        "cpu_shares": application.cpu_shares,
        "restart_policy": {
            "name": application.restart_policy.name,
            "maximum_retry_count":
                application.restart_policy.maximum_retry_count},
    }
    # Each only when there are some: the JSON of an application without
    # them stays what it was, so its containers (labelled with it) are not
    # taken for changed ones.
    if application.volumes:
        result["volumes"] = sorted(
            (volume_to_dict(v) for v in application.volumes),
            key=lambda v: v["name"])
    if application.options != _DEFAULT_OPTIONS:
        result["options"] = _options_to_dict(application.options)
    if application.depends_on:
        result["depends_on"] = sorted(
            [d.name, d.condition, d.required] for d in application.depends_on)
    if application.host_mounts:
        result["host_mounts"] = sorted(
            [m.host_path, m.mountpoint, m.read_only]
            for m in application.host_mounts)
    if application.files:
        result["files"] = sorted(
            (_file_to_dict(f, contents) for f in application.files),
            key=lambda f: f["mountpoint"])
    if application.project is not None:
        # Likewise: the default project's JSON is what it was.
        result["project"] = application.project
    return result


def _file_to_dict(mount, contents):
    result = {"mountpoint": mount.mountpoint, "digest": mount.digest,
              "mode": mount.mode}
    if contents:
        if mount.content is None:
            raise SerializationError("the content of the file for %s is not "
                                     "known" % (mount.mountpoint,))
        result["content"] = base64.b64encode(mount.content).decode("ascii")
    return result


def _file_from_dict(data):
    content = data.get("content")
    return FileMount(
        mountpoint=data["mountpoint"], digest=data["digest"],
        mode=data["mode"],
        content=None if content is None else base64.b64decode(
            content.encode("ascii"), validate=True))


def _link_to_list(link):
    # [local, remote, alias], then the address only when it is not the
    # loopback one or the protocol is not tcp, then the protocol only when
    # it is not tcp: the JSON of Flocker's TCP links stays what it was.
    listed = [link.local_port, link.remote_port, link.alias]
    if link.named or link.protocol != "tcp":
        listed.append(link.address)
    if link.protocol != "tcp":
        listed.append(link.protocol)
    return listed


def _link_from_list(listed):
    if len(listed) not in (3, 4, 5):
        raise ValueError("a link is [local, remote, alias(, address(, "
                         "protocol))]")
    return Link(*listed)


def links_to_list(links):
    """
    :param links: ``Link`` values.
    :return: Their JSON-compatible list, sorted.
    """
    return sorted((_link_to_list(link) for link in links),
                  key=lambda listed: [str(part) for part in listed])


def volume_to_dict(volume):
    """
    :param AttachedVolume volume: A volume of an application.
    :return: A JSON-compatible ``dict``: ``mountpoint`` and
        ``maximum_size`` always, ``name``, ``read_only`` and ``external``
        only when not their default.
    """
    result = {"mountpoint": volume.mountpoint,
              "maximum_size": volume.maximum_size}
    # Like "volumes" above: keys with their default value are left out.
    if volume.name is not None:
        result["name"] = volume.name
    if volume.read_only:
        result["read_only"] = True
    if volume.external:
        result["external"] = True
    return result


def _volume_from_dict(data):
    return AttachedVolume(
        mountpoint=data["mountpoint"], maximum_size=data["maximum_size"],
        name=data.get("name"), read_only=data.get("read_only", False),
        external=data.get("external", False))


def _build(function):
    """
    Turn missing fields, wrong shapes and broken invariants raised while
    rebuilding a value into :class:`SerializationError`.
    """
    def wrapper(data):
        try:
            return function(data)
        except SerializationError:
            raise
        except (InvalidModel, KeyError, TypeError, ValueError,
                AttributeError, binascii.Error) as e:
            raise SerializationError("%s: %s" % (function.__name__, e))
        except RecursionError:
            raise SerializationError("%s: nested too deeply" % (
                function.__name__,))
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


@_build
def links_from_list(data):
    """
    :param data: What :func:`links_to_list` gave.
    :return: The ``frozenset`` of ``Link``.
    :raises SerializationError: If an entry is not a link.
    """
    return frozenset(_link_from_list(listed) for listed in data)


@_build
def application_from_dict(data):
    """
    :param dict data: Output of :func:`application_to_dict`.
    :return: The :class:`Application`.
    :raises SerializationError: If ``data`` does not describe one.
    """
    volume = data["volume"]
    policy = data["restart_policy"]
    return Application(
        name=data["name"],
        image=data["image"],
        command=data["command"],
        environment=pmap(data["environment"]),
        ports=[_port_from_list(port) for port in data["ports"]],
        volume=None if volume is None else _volume_from_dict(volume),
        links=[_link_from_list(l) for l in data["links"]],
        mem_limit=data["mem_limit"],
        cpu_shares=data["cpu_shares"],
        restart_policy=RestartPolicy(
            name=policy["name"],
            maximum_retry_count=policy["maximum_retry_count"]),
        volumes=[_volume_from_dict(v) for v in data.get("volumes", ())],
        options=_options_from_dict(data.get("options", {})),
        depends_on=[Dependency(name=n, condition=c, required=r)
                    for n, c, r in data.get("depends_on", ())],
        host_mounts=[HostMount(host_path=h, mountpoint=m, read_only=r)
                     for h, m, r in data.get("host_mounts", ())],
        files=[_file_from_dict(f) for f in data.get("files", ())],
        project=data.get("project"),
    )


def route_to_dict(route):
    """
    :param Route route: A route.
    :return: ``{"port": …, "address": …}``, with ``"protocol": "udp"``
        for a UDP route (a TCP route's form is what it always was).
    """
    if route.protocol != "tcp":
        return {"port": route.port, "address": route.address,
                "protocol": route.protocol}
    return {"port": route.port, "address": route.address}


@_build
def route_from_dict(data):
    """
    :param dict data: Output of :func:`route_to_dict`.
    :return: The :class:`Route`.
    :raises SerializationError: If ``data`` does not describe one.
    """
    return Route(port=data["port"], address=data["address"],
                 protocol=data.get("protocol", "tcp"))


def replication_to_dict(replication):
    """
    :param Replication replication: What a volume's owner is to replicate.
    :return: A JSON-compatible ``dict``.
    """
    return {"volume": replication.volume,
            "application": replication.application,
            "standbys": list(replication.standbys),
            "interval": replication.interval}


@_build
def replication_from_dict(data):
    """
    :param dict data: Output of :func:`replication_to_dict`.
    :return: The :class:`Replication`.
    :raises SerializationError: If ``data`` does not describe one.
    """
    return Replication(volume=data["volume"],
                       application=data["application"],
                       standbys=data["standbys"], interval=data["interval"])


def _replication_status_to_dict(status):
    return {"replication": replication_to_dict(status.replication),
            "standbys": [attr.asdict(status.standbys[address])
                         for address in sorted(status.standbys)]}


def _replication_status_from_dict(data):
    standbys = [StandbyStatus(**item) for item in data["standbys"]]
    return ReplicationStatus(
        replication=replication_from_dict(data["replication"]),
        standbys={status.address: status for status in standbys})


def node_state_to_dict(state):
    """
    :param NodeState state: A node's report.
    :return: A JSON-compatible ``dict``.
    """
    return {
        "address": state.address,
        "applications": [application_to_dict(state.applications[name])
                         for name in sorted(state.applications)],
        "running": sorted(state.running),
        "volumes": [{"name": v.name, "owned": v.owned, "size": v.size,
                     "snapshots": list(v.snapshots), "owner": v.owner,
                     "epoch": v.epoch}
                    for _, v in sorted(state.volumes.items())],
        "routes": sorted((route_to_dict(r) for r in state.routes),
                         key=lambda r: (r["port"], r["address"])),
        "links": {name: sorted(_link_to_list(l) for l in links)
                  for name, links in sorted(state.links.items())},
        "node_key": None if state.node_key is None else {
            "public_key": state.node_key.public_key,
            "installed": state.node_key.installed,
            "pending_public_key": state.node_key.pending_public_key},
        "images": None if state.images is None else sorted(state.images),
        "busy_ports": sorted(state.busy_ports),
        "node_id": state.node_id,
        "replication": [_replication_status_to_dict(state.replication[name])
                        for name in sorted(state.replication)],
        "automatic": {name: [node, epoch] for name, (node, epoch)
                      in sorted(state.automatic.items())},
        "expected_senders": {name: sorted(nodes) for name, nodes
                             in sorted(state.expected_senders.items())},
    }


@_build
def node_state_from_dict(data):
    """
    :param dict data: Output of :func:`node_state_to_dict`.
    :return: The :class:`NodeState`.
    :raises SerializationError: If ``data`` does not describe one.
    """
    applications = [application_from_dict(a) for a in data["applications"]]
    # images, busy_ports, node_id, owner and epoch are absent from the
    # reports of nodes older than them.
    volumes = [VolumeState(name=v["name"], owned=v["owned"], size=v["size"],
                           snapshots=v["snapshots"], owner=v.get("owner"),
                           epoch=v.get("epoch", 0))
               for v in data["volumes"]]
    images = data.get("images")
    return NodeState(
        address=data["address"],
        applications={a.name: a for a in applications},
        running=data["running"],
        volumes={v.name: v for v in volumes},
        routes=[route_from_dict(r) for r in data["routes"]],
        links={name: pset(_link_from_list(l) for l in links)
               for name, links in data.get("links", {}).items()},
        node_key=_node_key_status(data.get("node_key")),
        images=None if images is None else [str(i) for i in images],
        busy_ports=[int(p) for p in data.get("busy_ports", ())],
        node_id=data.get("node_id"),
        # Absent from the reports of nodes older than standby copies.
        replication={status.replication.volume: status for status in (
            _replication_status_from_dict(item)
            for item in data.get("replication", ()))},
        automatic={str(name): (str(node), int(epoch)) for name, (node, epoch)
                   in data.get("automatic", {}).items()},
        expected_senders={str(name): frozenset(str(node) for node in nodes)
                          for name, nodes in data.get(
                              "expected_senders", {}).items()},
    )


def _node_key_status(data):
    if data is None:
        return None
    return NodeKeyStatus(public_key=data["public_key"],
                         installed=data.get("installed"),
                         pending_public_key=data.get("pending_public_key"))


def cluster_state_to_dict(state):
    """
    :param ClusterState state: The whole cluster's reports.
    :return: A JSON-compatible ``dict``.
    """
    return {"nodes": [node_state_to_dict(state.nodes[address])
                      for address in sorted(state.nodes)]}


@_build
def cluster_state_from_dict(data):
    """
    :param dict data: Output of :func:`cluster_state_to_dict`.
    :return: The :class:`ClusterState`.
    :raises SerializationError: If ``data`` does not describe one.
    """
    nodes = [node_state_from_dict(n) for n in data["nodes"]]
    return ClusterState(nodes={n.address: n for n in nodes})
