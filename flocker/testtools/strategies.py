"""
Hypothesis strategies for the models, and the settings of property tests.

Shared by the model, configuration and planner tests.  Every strategy
builds values the model accepts; ``deployments`` additionally keeps the
cross-file rules of the configuration files (external ports unique in the
cluster, every link aimed at some application's external port), so a
generated deployment is one a person could have written.

Speed: the composite strategies draw only from strategies built once, here
at import, rather than building new ones per example (Hypothesis works out
each new strategy's properties on first use, which dominated generation),
and they make drawn ports distinct by stepping past taken ones instead of
filtering.

This module imports hypothesis (a test extra): import it from tests only.
"""

import base64
import os
import string
import struct

from hypothesis import settings as _settings, strategies as _st
from pyrsistent import pset as _pset

from .._model import (
    Application as _Application, AttachedVolume as _AttachedVolume,
    ClusterState as _ClusterState, Deployment as _Deployment, Link as _Link,
    Node as _Node, NodeKeyStatus as _NodeKeyStatus, NodeState as _NodeState,
    Port as _Port,
    RestartPolicy as _RestartPolicy, Route as _Route, Standby as _Standby,
    VolumeState as _VolumeState,
)
from .._identifiers import NODE_IDENTITY as _NODE_IDENTITY

__all__ = [
    "fuzz_settings", "application_names", "tcp_ports", "node_addresses",
    "images", "commands", "environments", "mountpoints",
    "attached_volumes", "restart_policies", "applications", "deployments",
    "deployments_with_standbys",
    "volume_states", "node_states", "cluster_states", "public_keys",
    "node_identities",
]


def fuzz_settings(default=100, **kwargs):
    """
    Hypothesis settings for property tests: ``default`` examples, or the
    number in the ``FLOCKER_FUZZ_EXAMPLES`` environment variable (for a long
    nightly run), with no deadline because some examples legitimately parse
    or plan much more than others.

    :param int default: Examples per test when the variable is unset.
    :param kwargs: Further ``hypothesis.settings`` arguments (hypothesis
        refuses a second settings decorator on one test).
    :return: A ``hypothesis.settings`` usable as a decorator.
    """
    examples = int(os.environ.get("FLOCKER_FUZZ_EXAMPLES", default))
    return _settings(max_examples=examples, deadline=None, **kwargs)


_NAME_START = string.ascii_letters + string.digits
_NAME_REST = _NAME_START + "-_"

# Text a value may hold: anything encodable except NUL (which no process
# argument or environment entry can carry).
_ANY_TEXT = _st.text(_st.characters(codec="utf-8", exclude_characters="\x00"),
                     max_size=10)

_NAMES = _st.builds(lambda first, rest: first + rest,
                    _st.sampled_from(_NAME_START),
                    _st.text(_NAME_REST, max_size=12))

# Link aliases begin environment variable names: a letter first.
_ALIASES = _st.builds(lambda first, rest: first + rest,
                      _st.sampled_from(string.ascii_letters),
                      _st.text(_NAME_REST, max_size=12))

_PORTS = _st.integers(min_value=1, max_value=65535)


def application_names():
    """
    :return: Strategy for safe names (applications, volumes).
    """
    return _NAMES


def tcp_ports():
    """
    :return: Strategy for TCP port numbers 1-65535.
    """
    return _PORTS


_HOST_LABEL = _st.builds(
    lambda first, middle: first + middle,
    _st.sampled_from(string.ascii_lowercase),
    _st.text(string.ascii_lowercase + string.digits, max_size=8))

_ADDRESSES = _st.one_of(
    _st.ip_addresses(v=4).map(str),
    _st.lists(_HOST_LABEL, min_size=1, max_size=3).map(".".join))


def node_addresses():
    """
    :return: Strategy for node addresses: IPv4 addresses and host names.
    """
    return _ADDRESSES


_IMAGE_PART = _st.text(string.ascii_lowercase + string.digits, min_size=1,
                       max_size=8)
_IMAGES = _st.builds(
    lambda repository, name, tag: "%s%s%s" % (
        repository + "/" if repository else "", name,
        ":" + tag if tag else ""),
    _st.one_of(_st.just(""), _IMAGE_PART), _IMAGE_PART,
    _st.one_of(_st.just(""), _IMAGE_PART))


def images():
    """
    :return: Strategy for Docker image references.
    """
    return _IMAGES


_COMMANDS = _st.one_of(_st.none(),
                       _st.lists(_ANY_TEXT, min_size=1, max_size=3))


def commands():
    """
    :return: Strategy for an application's command: ``None`` or a non-empty
        list of arguments.
    """
    return _COMMANDS


_ENVIRONMENTS = _st.dictionaries(
    _st.builds(lambda first, rest: first + rest,
               _st.sampled_from(string.ascii_letters + "_"),
               _st.text(string.ascii_letters + string.digits + "_",
                        max_size=8)),
    _ANY_TEXT, max_size=3)


def environments():
    """
    :return: Strategy for environment mappings (name to value).
    """
    return _ENVIRONMENTS


# No ':' either: the configuration files refuse it (it would end Docker's
# Binds field).
_MOUNTPOINTS = _st.lists(
    _st.text(_st.characters(codec="utf-8", exclude_characters="/:\x00\n"),
             min_size=1, max_size=8).filter(lambda s: s not in (".", "..")),
    min_size=1, max_size=3).map(lambda segments: "/" + "/".join(segments))


def mountpoints():
    """
    :return: Strategy for absolute, normalised mountpoints.
    """
    return _MOUNTPOINTS


_SIZES = _st.one_of(_st.none(), _st.integers(min_value=1, max_value=2 ** 44))

_VOLUMES = _st.builds(_AttachedVolume, mountpoint=_MOUNTPOINTS,
                      maximum_size=_SIZES)
_OPTIONAL_VOLUMES = _st.one_of(_st.none(), _VOLUMES)


def attached_volumes():
    """
    :return: Strategy for :class:`AttachedVolume`.
    """
    return _VOLUMES


_POLICIES = _st.one_of(
    _st.sampled_from([_RestartPolicy(), _RestartPolicy(name="always"),
                      _RestartPolicy(name="on-failure")]),
    _st.builds(_RestartPolicy, name=_st.just("on-failure"),
               maximum_retry_count=_st.integers(1, 100)))


def restart_policies():
    """
    :return: Strategy for :class:`RestartPolicy`.
    """
    return _POLICIES


_CPU_SHARES = _st.one_of(_st.none(), _st.integers(1, 4096))
_SMALL_COUNT = _st.integers(0, 2)
_INDEX = _st.integers(0, 2 ** 16)
_BOOLEANS = _st.booleans()


def _distinct_ports(draw, count, taken):
    """
    Draw ``count`` port numbers outside ``taken`` and add them to it.
    """
    ports = []
    for _ in range(count):
        port = draw(_PORTS)
        while port in taken:
            port = port % 65535 + 1
        taken.add(port)
        ports.append(port)
    return ports


def _named_volumes(draw, application):
    """
    Draw up to two named volumes for ``application``, at mountpoints no
    other volume of it uses.  Their names are longer than any drawn
    application name, so they never meet another application's volume.
    """
    volumes = []
    for index in range(draw(_SMALL_COUNT)):
        volumes.append(_AttachedVolume(
            name="%s%d" % (application.ljust(14, "-"), index),
            # Drawn path segments are at most 8 characters long, so this
            # first segment of 9 never meets another volume's mountpoint.
            mountpoint="/volumes-%d%s" % (index, draw(_MOUNTPOINTS)),
            maximum_size=draw(_SIZES), read_only=draw(_BOOLEANS)))
    return volumes


@_st.composite
def applications(draw, name=None, externals=None, remote_ports=None):
    """
    Strategy for :class:`Application`.

    :param name: The name to use, or ``None`` to draw one.
    :param externals: The external port numbers to publish, or ``None`` to
        draw up to two.
    :param remote_ports: Port numbers links may aim at (up to two links are
        drawn), or ``None`` for arbitrary ports.
    """
    if name is None:
        name = draw(_NAMES)
    if externals is None:
        externals = _distinct_ports(draw, draw(_SMALL_COUNT), set())
    internals = _distinct_ports(draw, len(externals), set())
    link_count = draw(_SMALL_COUNT)
    if remote_ports is None:
        remote_ports = _distinct_ports(draw, link_count, set())
    remote_ports = sorted(remote_ports)
    links = []
    if remote_ports:
        local_ports = _distinct_ports(draw, link_count, set())
        links = [_Link(local_port=local,
                       remote_port=remote_ports[
                           draw(_INDEX) % len(remote_ports)],
                       alias=draw(_ALIASES))
                 for local in local_ports]
    return _Application(
        name=name,
        image=draw(_IMAGES),
        command=draw(_COMMANDS),
        environment=draw(_ENVIRONMENTS),
        ports=[_Port(internal=i, external=e)
               for i, e in zip(internals, externals)],
        volume=draw(_OPTIONAL_VOLUMES),
        volumes=_named_volumes(draw, name),
        links=links,
        mem_limit=draw(_SIZES),
        cpu_shares=draw(_CPU_SHARES),
        restart_policy=draw(_POLICIES),
    )


_APPLICATIONS = applications()


@_st.composite
def deployments(draw, max_nodes=3, max_applications=5):
    """
    Strategy for a :class:`Deployment` that the configuration files can
    express: external ports are unique in the cluster and every link aims
    at an external port some application publishes.

    :param int max_nodes: Most nodes (at least one is drawn).
    :param int max_applications: Most applications.
    """
    addresses = draw(_st.lists(_ADDRESSES, min_size=1, max_size=max_nodes,
                               unique=True))
    names = draw(_st.lists(_NAMES, max_size=max_applications, unique=True))
    taken = set()
    externals = [_distinct_ports(draw, draw(_SMALL_COUNT), taken)
                 for _ in names]
    placed = {address: [] for address in addresses}
    for name, ports in zip(names, externals):
        application = draw(applications(name=name, externals=ports,
                                        remote_ports=taken))
        placed[addresses[draw(_INDEX) % len(addresses)]].append(application)
    return _Deployment(nodes=[_Node(address=address, applications=apps)
                              for address, apps in placed.items()])


@_st.composite
def deployments_with_standbys(draw):
    """
    Strategy for a :class:`Deployment` (see :func:`deployments`) in which
    some applications with a volume have a standby on other nodes, at an
    interval of whole seconds or tenths.
    """
    deployment = draw(deployments())
    placements = deployment.placements()
    addresses = sorted(node.address for node in deployment.nodes)
    standbys = {}
    for name in sorted(placements):
        primary, application = placements[name]
        others = [address for address in addresses if address != primary]
        if not (application.all_volumes() and others
                and draw(_st.booleans())):
            continue
        nodes = draw(_st.lists(_st.sampled_from(others), min_size=1,
                               unique=True))
        interval = draw(_st.integers(1, 24 * 3600)) * 10 ** draw(
            _st.sampled_from([9, 8]))
        standbys[name] = _Standby(application=name, nodes=nodes,
                                  interval=max(interval, 10 ** 9))
    return _Deployment(nodes=deployment.nodes, standbys=standbys)


_SNAPSHOTS = _st.lists(_NAMES, max_size=3)


@_st.composite
def volume_states(draw, name=None):
    """
    Strategy for :class:`VolumeState`.

    :param name: The volume's name, or ``None`` to draw one.
    """
    return _VolumeState(
        name=draw(_NAMES) if name is None else name,
        owned=draw(_BOOLEANS),
        size=draw(_st.integers(0, 2 ** 40)),
        snapshots=draw(_SNAPSHOTS),
        owner=draw(_st.one_of(_st.none(), _NAMES)))


def _public_key_line(raw):
    blob = (struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32)
            + raw)
    return "ssh-ed25519 " + base64.b64encode(blob).decode("ascii")


# ed25519 public key lines (any 32 bytes: the model checks the form).
_PUBLIC_KEYS = _st.binary(min_size=32, max_size=32).map(_public_key_line)


def public_keys():
    """
    :return: A strategy of ed25519 public key lines (``"ssh-ed25519
        AAAA..."``; any 32 bytes, of the form the model checks).
    """
    return _PUBLIC_KEYS


def node_identities():
    """
    :return: A strategy of node identities (what ``NODE_IDENTITY``
        allows).
    """
    return _st.from_regex(_NODE_IDENTITY, fullmatch=True)


@_st.composite
def node_states(draw, address=None, max_applications=2):
    """
    Strategy for :class:`NodeState`: some applications (each running or
    stopped), volumes, routes and installed links.

    :param address: The node's address, or ``None`` to draw one.
    :param int max_applications: Most applications (and volumes, routes).
    """
    if address is None:
        address = draw(_ADDRESSES)
    apps = {}
    for _ in range(draw(_st.integers(0, max_applications))):
        application = draw(_APPLICATIONS)
        apps[application.name] = application
    running = [name for name in apps if draw(_BOOLEANS)]
    volumes = {}
    for _ in range(draw(_st.integers(0, max_applications))):
        name = draw(_NAMES)
        volumes[name] = draw(volume_states(name))
    routes = [_Route(port=draw(_PORTS), address=draw(_ADDRESSES))
              for _ in range(draw(_st.integers(0, max_applications)))]
    links = {}
    for name in apps:
        if draw(_BOOLEANS):
            links[name] = _pset(draw(_APPLICATIONS).links)
    node_key = None
    if draw(_BOOLEANS):
        node_key = _NodeKeyStatus(
            public_key=draw(_PUBLIC_KEYS),
            installed=draw(_st.one_of(_st.none(), _st.text(
                "0123456789abcdef", min_size=64, max_size=64))),
            pending_public_key=draw(_st.one_of(_st.none(), _PUBLIC_KEYS)))
    images = draw(_st.one_of(_st.none(), _st.frozensets(
        _st.sampled_from(["flocker/busybox:latest", "redis:7",
                          "localhost:5000/web@sha256:" + "0" * 64]))))
    return _NodeState(address=address, applications=apps, running=running,
                      volumes=volumes, routes=routes, links=links,
                      node_key=node_key, images=images,
                      busy_ports=draw(_st.frozensets(_PORTS, max_size=2)),
                      node_id=draw(_st.one_of(_st.none(), _NAMES)))


@_st.composite
def cluster_states(draw, addresses=None, max_nodes=3):
    """
    Strategy for :class:`ClusterState`.

    :param addresses: The nodes that report, or ``None`` to draw up to
        ``max_nodes`` addresses.
    """
    if addresses is None:
        addresses = draw(_st.lists(_ADDRESSES, max_size=max_nodes,
                                   unique=True))
    return _ClusterState(nodes={address: draw(node_states(address))
                                for address in addresses})
