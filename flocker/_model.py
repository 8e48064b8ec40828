"""
Immutable models of the cluster: what the configuration files ask for (the
desired state) and what each node reports (the current state).

Every class here is a frozen attrs value with its invariants checked at
construction, and every collection is a pyrsistent one, so equal values compare
and hash equal and a whole cluster can be compared with ``==``.  Nothing here
does I/O.
"""

import base64
import binascii
import hashlib
import ipaddress
import posixpath
import re
import sys
from typing import NamedTuple

import attr
from pyrsistent import pmap, pset, pvector

from ._identifiers import (
    ADDRESS_RULE, MAX_NAME_LENGTH, NODE_IDENTITY, SAFE_NAME, SAFE_NAME_RULE,
    is_node_address, is_node_identity, is_safe_name,
)

__all__ = [
    "SAFE_NAME", "SAFE_NAME_RULE", "is_safe_name", "MAX_NAME_LENGTH",
    "Port", "PROTOCOLS", "Link", "LOOPBACK", "AttachedVolume", "HostMount",
    "FileMount", "MAX_FILE_SIZE", "RestartPolicy", "RESTART_POLICY_NAMES",
    "HealthCheck", "Ulimit", "LogConfig", "ContainerOptions", "Dependency",
    "DEPENDENCY_CONDITIONS", "Application", "Node", "Deployment",
    "Route", "VolumeState", "NodeState", "ClusterState",
    "NodeKey", "NodeKeyStatus", "public_key_fingerprint",
    "known_hosts_digest", "InvalidModel", "is_link_alias",
    "NODE_IDENTITY", "parse_peers", "LINK_ALIAS", "LINK_ALIAS_RULE",
    "Standby", "STANDBY_INTERVAL_RANGE", "DEFAULT_STANDBY_INTERVAL",
    "Replication", "StandbyStatus", "ReplicationStatus",
    "desired_replication",
]

# Docker image references: repository path, optional tag or digest.  Anything
# outside this set (spaces, quotes, semicolons, newlines) is refused.
_IMAGE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}\Z")

# Addresses of 127.0.0.0/8, written plainly.
_LOOPBACK = re.compile(r"\A127\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})"
                       r"\.(?:0|[1-9][0-9]{0,2})\Z")

# Environment variable names: a POSIX shell's, plus '.' and '-', which
# Docker passes on and programs read (Elasticsearch's "discovery.type").
_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,254}\Z")

#: Docker restart policy names Flocker accepts.
RESTART_POLICY_NAMES = frozenset({"never", "always", "on-failure",
                                  "unless-stopped"})

#: Transport protocols a port may use.
PROTOCOLS = frozenset({"tcp", "udp"})


class InvalidModel(ValueError):
    """
    A model value was built with a field that breaks one of its invariants.

    Configuration parsing catches this and reports it with the file location;
    library users get it directly.
    """


#: A link's alias begins the names of environment variables
#: (``ALIAS_PORT_<local>_TCP``, ``-`` becoming ``_``): a letter first, then
#: letters, digits, ``_`` or ``-`` (no ``.``).
LINK_ALIAS = re.compile(r"\A[A-Za-z][A-Za-z0-9_-]{0,%d}\Z" % (
    MAX_NAME_LENGTH - 1))

#: What :data:`LINK_ALIAS` allows, in words, for messages.
LINK_ALIAS_RULE = ("use 1-%d letters, digits, '_' or '-', starting with a "
                   "letter (it begins environment variable names)" % (
                       MAX_NAME_LENGTH,))


def is_link_alias(value):
    """
    :param value: Anything.
    :return: ``True`` if ``value`` can be a link's alias (see
        :data:`LINK_ALIAS`).
    """
    return isinstance(value, str) and LINK_ALIAS.match(value) is not None


class _Named(object):
    """
    Stands in for an attrs attribute when a validator checks a field of a
    class that is not an attrs class.
    """

    def __init__(self, name):
        self.name = name


def _check(condition, message):
    if not condition:
        raise InvalidModel(message)


def _safe_name(instance, attribute, value):
    _check(is_safe_name(value),
           "%s %r is not a safe name: %s" % (
               attribute.name, value, SAFE_NAME_RULE))


def _link_alias(instance, attribute, value):
    if instance.address != LOOPBACK:
        # A name that resolves: a host name in /etc/hosts, never the start
        # of environment variable names, so dots are fine (jitsi's
        # "xmpp.meet.jitsi").
        _check(is_safe_name(value), "alias %r is not a safe name: %s" % (
            value, SAFE_NAME_RULE))
        return
    _check(is_link_alias(value),
           "alias %r is not a link alias: %s" % (value, LINK_ALIAS_RULE))


def _tcp_port(instance, attribute, value):
    _check(isinstance(value, int) and not isinstance(value, bool)
           and 1 <= value <= 65535,
           "%s %r is not a TCP port (1-65535)" % (attribute.name, value))


def _optional_positive_int(instance, attribute, value):
    if value is None:
        return
    _check(isinstance(value, int) and not isinstance(value, bool)
           and value > 0,
           "%s %r must be a positive integer" % (attribute.name, value))


def _address(instance, attribute, value):
    _check(is_node_address(value),
           "%s %r is not a node address: %s" % (
               attribute.name, value, ADDRESS_RULE))


def _of_type(kind):
    def check(instance, attribute, value):
        # The message (a repr) is built only for a value that fails: these
        # checks run for every value of every state a cluster reports.
        if not isinstance(value, kind):
            _check(False, "%s must be %s, not %r" % (
                attribute.name, kind.__name__, value))
    return check


def _all_of_type(kind):
    def check(instance, attribute, value):
        for item in value:
            if not isinstance(item, kind):
                _check(False, "%s must hold only %s values, not %r" % (
                    attribute.name, kind.__name__, item))
    return check


def _protocol(instance, attribute, value):
    _check(value in PROTOCOLS, "protocol %r is not tcp or udp" % (value,))


def _host_ip(instance, attribute, value):
    if value == "":
        return
    try:
        ipaddress.ip_address(value)
    except (TypeError, ValueError):
        _check(False, "host_ip %r is not an IP address" % (value,))


@attr.s(frozen=True, slots=True)
class Port(object):
    """
    A port of an application published on the cluster.

    :ivar int internal: The port the application listens on in its container.
    :ivar int external: The port on every node of the cluster that reaches it.
    :ivar str protocol: ``tcp`` or ``udp``.
    :ivar str host_ip: The node address Docker publishes the port on, or
        ``""`` for every address.
    """
    internal = attr.ib(validator=_tcp_port)
    external = attr.ib(validator=_tcp_port)
    protocol = attr.ib(default="tcp", validator=_protocol)
    host_ip = attr.ib(default="", validator=_host_ip)


#: The address Flocker's links answer on inside a container.
LOOPBACK = "127.0.0.1"


def _loopback(instance, attribute, value):
    _check(isinstance(value, str) and _LOOPBACK.match(value) is not None
           and all(int(part) < 256 for part in value.split(".")),
           "link address %r is not an address of 127.0.0.0/8" % (value,))


@attr.s(frozen=True, slots=True)
class Link(object):
    """
    A connection an application needs to another application's external port.

    :ivar int local_port: The port the linking application connects to
        (on ``address`` inside its container, and in its environment).
    :ivar int remote_port: The external port of the target application.
    :ivar str alias: The name used for the environment variables
        (``ALIAS_PORT_<local>_TCP``: a link alias) or, for a link at another
        address than :data:`LOOPBACK`, the host name that address has in the
        container (a safe name: dots allowed).
    :ivar str address: The address inside the container the link answers
        on: :data:`LOOPBACK` for Flocker's links, another address of
        ``127.0.0.0/8`` for a name that resolves (see
        :mod:`flocker.node._names`).
    :ivar str protocol: ``tcp`` (the default) or ``udp``: the protocol of
        the target's port.
    """
    local_port = attr.ib(validator=_tcp_port)
    remote_port = attr.ib(validator=_tcp_port)
    alias = attr.ib(validator=_link_alias)
    address = attr.ib(default="127.0.0.1", validator=_loopback)
    protocol = attr.ib(default="tcp", validator=_protocol)

    @property
    def named(self):
        """
        ``True`` for a link that makes a host name resolve (its address is
        not :data:`LOOPBACK`).
        """
        return self.address != LOOPBACK


def _mountpoint(instance, attribute, value):
    _check(isinstance(value, str) and value.startswith("/"),
           "mountpoint %r must be an absolute path" % (value,))
    _check("\x00" not in value and "\n" not in value,
           "mountpoint %r contains a control character" % (value,))
    _check(".." not in value.split("/"),
           "mountpoint %r must not contain '..'" % (value,))
    _check(len(value) <= 1024, "mountpoint is longer than 1024 characters")
    _check(posixpath.normpath(value) == value and value != "/",
           "mountpoint %r must be a normalised path other than '/'" % (value,))


def _optional_safe_name(instance, attribute, value):
    if value is not None:
        _safe_name(instance, attribute, value)


@attr.s(frozen=True, slots=True)
class AttachedVolume(object):
    """
    A volume mounted into an application's container: a ZFS dataset that
    moves with the application.

    :ivar str mountpoint: Absolute path inside the container.
    :ivar maximum_size: Quota in bytes, or ``None`` for no limit.
    :ivar name: The volume's name (its dataset's name), or ``None`` for the
        application's own volume, which is named after the application
        (the native format's ``volume:``).  Several applications on one node
        may mount one named volume.
    :ivar bool read_only: Mounted read-only in the container.
    :ivar bool external: Flocker does not create the volume: it must exist
        on the application's node already (a deploy leaves the application
        undone, saying so, where it does not).
    :ivar seed: Path of a directory on the deploying machine whose content
        fills the volume once, when a deploy creates it (a compose file's
        relative bind mount ``./data:/data``), or ``None``.  Not part of the
        value's equality: the volume's data is its own after the first
        deploy, so a changed directory is not a changed application.
    :ivar former_name: The name this volume had before Flocker named a
        compose project's volumes after the project (``data`` for
        ``shop_data``), or ``None``.  Not part of the value's equality: a
        deploy refuses to create the volume empty while the project's
        applications still mount a volume of the former name (see
        :func:`flocker.node._checks.renamed_volumes`).
    """
    mountpoint = attr.ib(validator=_mountpoint)
    maximum_size = attr.ib(default=None, validator=_optional_positive_int)
    name = attr.ib(default=None, validator=_optional_safe_name)
    read_only = attr.ib(default=False, validator=_of_type(bool))
    external = attr.ib(default=False, validator=_of_type(bool))
    seed = attr.ib(default=None, eq=False, validator=attr.validators.optional(
        _of_type(str)))
    former_name = attr.ib(default=None, eq=False,
                          validator=_optional_safe_name)


def _host_path(instance, attribute, value):
    _mountpoint(instance, _Named("host path"), value)
    _check(":" not in value, "host path %r must not contain ':'" % (value,))


def _container_path(instance, attribute, value):
    _mountpoint(instance, attribute, value)
    _check(":" not in value, "mountpoint %r must not contain ':'" % (value,))


@attr.s(frozen=True, slots=True)
class HostMount(object):
    """
    A directory or file of the application's node bound into its container
    (a compose file's absolute bind mount, ``/etc/localtime:/etc/localtime``
    or the Docker socket).  It stays on the node: when the application
    moves, the new node's path of that name is bound.

    :ivar str host_path: Absolute path on the node.
    :ivar str mountpoint: Absolute path inside the container.
    :ivar bool read_only: Bound read-only.
    """
    host_path = attr.ib(validator=_host_path)
    mountpoint = attr.ib(validator=_container_path)
    read_only = attr.ib(default=False, validator=_of_type(bool))


#: Largest file a :class:`FileMount` carries: files travel with every start
#: of their application, so they are configuration, not data.
MAX_FILE_SIZE = 1024 * 1024


def _digest(instance, attribute, value):
    _check(isinstance(value, str) and re.match(r"\A[0-9a-f]{64}\Z", value)
           is not None, "digest %r is not a SHA-256 hex digest" % (value,))


def _mode(instance, attribute, value):
    _check(isinstance(value, int) and not isinstance(value, bool)
           and 0 <= value <= 0o7777, "mode %r is not a file mode" % (value,))


def _file_content(instance, attribute, value):
    if value is None:
        return
    _check(isinstance(value, bytes), "content must be bytes")
    _check(len(value) <= MAX_FILE_SIZE,
           "file for %s is larger than %d bytes" % (instance.mountpoint,
                                                    MAX_FILE_SIZE))
    _check(hashlib.sha256(value).hexdigest() == instance.digest,
           "content of the file for %s does not match its digest" % (
               instance.mountpoint,))


@attr.s(frozen=True, slots=True)
class FileMount(object):
    """
    A file of the deploying machine put into the application's container
    at every start, before its process runs (a compose file's
    ``./nginx.conf:/etc/nginx/nginx.conf:ro``, or a file-based ``configs``
    or ``secrets`` entry).

    The file is part of the application by its digest: a changed file is a
    changed application.  Its content travels with a start; an application
    rebuilt from a node's report has the digest only (``content`` is
    ``None``), and is equal to the one started.

    :ivar str mountpoint: Absolute path of the file inside the container.
    :ivar str digest: Hex SHA-256 of the content.
    :ivar int mode: Permission bits the file gets.
    :ivar content: The file's bytes (at most :data:`MAX_FILE_SIZE`), or
        ``None`` where only the digest is known.
    """
    mountpoint = attr.ib(validator=_container_path)
    digest = attr.ib(validator=_digest)
    mode = attr.ib(default=0o444, validator=_mode)
    content = attr.ib(default=None, eq=False, repr=False,
                      validator=_file_content)

    @classmethod
    def of(cls, mountpoint, content, mode=0o444):
        """
        :param str mountpoint: Where the file goes in the container.
        :param bytes content: Its bytes.
        :param int mode: Its permission bits.
        :return: The :class:`FileMount` of ``content``.
        """
        return cls(mountpoint=mountpoint,
                   digest=hashlib.sha256(content).hexdigest(), mode=mode,
                   content=content)


@attr.s(frozen=True, slots=True)
class RestartPolicy(object):
    """
    What Docker does when the application's process exits.

    :ivar str name: ``never``, ``always``, ``on-failure`` or
        ``unless-stopped``.
    :ivar maximum_retry_count: For ``on-failure`` only: how many restarts
        before giving up, or ``None`` for no limit.
    """
    name = attr.ib(default="never")
    maximum_retry_count = attr.ib(default=None,
                                  validator=_optional_positive_int)

    def __attrs_post_init__(self):
        _check(self.name in RESTART_POLICY_NAMES,
               "restart policy %r is not one of %s" % (
                   self.name, ", ".join(sorted(RESTART_POLICY_NAMES))))
        _check(self.maximum_retry_count is None or self.name == "on-failure",
               "maximum_retry_count is only allowed with on-failure")


def _text_value(instance, attribute, value):
    # Every string Flocker hands Docker: no NUL (the API would cut it).
    _check(isinstance(value, str) and "\x00" not in value,
           "%s must be a string without NUL, not %r" % (attribute.name, value))


def _optional_text(instance, attribute, value):
    if value is not None:
        _text_value(instance, attribute, value)


def _texts(instance, attribute, value):
    for item in value:
        _text_value(instance, _Named(attribute.name), item)


def _text_map(instance, attribute, value):
    for key, item in value.items():
        _text_value(instance, _Named(attribute.name + " key"), key)
        _text_value(instance, _Named(attribute.name + " value"), item)


def _optional_vector(value):
    return None if value is None else pvector(value)


def _optional_texts(instance, attribute, value):
    if value is not None:
        _texts(instance, attribute, value)


def _optional_duration(instance, attribute, value):
    if value is None:
        return
    _check(isinstance(value, int) and not isinstance(value, bool)
           and value >= 0, "%s %r must be a duration of zero or more" % (
               attribute.name, value))


def _bool(instance, attribute, value):
    _check(isinstance(value, bool), "%s must be true or false, not %r" % (
        attribute.name, value))


def _optional_bool(instance, attribute, value):
    if value is not None:
        _bool(instance, attribute, value)


@attr.s(frozen=True, slots=True)
class HealthCheck(object):
    """
    How Docker tells whether the application is healthy.

    :ivar test: ``PVector`` of ``str``: ``["CMD", arg...]``,
        ``["CMD-SHELL", command]`` or ``["NONE"]`` (no check, the image's
        own included).
    :ivar interval: Nanoseconds between checks, or ``None`` for Docker's.
    :ivar timeout: Nanoseconds a check may take, or ``None``.
    :ivar start_period: Nanoseconds of start-up during which failures do
        not count, or ``None``.
    :ivar start_interval: Nanoseconds between checks during the start
        period, or ``None``.
    :ivar retries: Failures in a row that make it unhealthy, or ``None``.
    """
    test = attr.ib(converter=pvector, validator=_texts)
    interval = attr.ib(default=None, validator=_optional_duration)
    timeout = attr.ib(default=None, validator=_optional_duration)
    start_period = attr.ib(default=None, validator=_optional_duration)
    start_interval = attr.ib(default=None, validator=_optional_duration)
    retries = attr.ib(default=None, validator=_optional_positive_int)

    def __attrs_post_init__(self):
        _check(len(self.test) > 0 and self.test[0] in (
            "CMD", "CMD-SHELL", "NONE"),
            "healthcheck test must start with CMD, CMD-SHELL or NONE")
        _check(self.test[0] == "NONE" or len(self.test) > 1,
               "healthcheck test %s needs a command" % (self.test[0],))

    @property
    def disabled(self):
        """
        ``True`` when the check is turned off.
        """
        return self.test[0] == "NONE"


@attr.s(frozen=True, slots=True)
class Ulimit(object):
    """
    One resource limit of the container's processes.

    :ivar str name: The resource (``nofile``, ``nproc``...).
    :ivar int soft: The soft limit.
    :ivar int hard: The hard limit, at least ``soft``.
    """
    name = attr.ib(validator=_text_value)
    soft = attr.ib()
    hard = attr.ib()

    def __attrs_post_init__(self):
        for value in (self.soft, self.hard):
            _check(isinstance(value, int) and not isinstance(value, bool)
                   and value >= -1, "ulimit %s must be an integer" % (
                       self.name,))
        _check(self.hard == -1 or 0 <= self.soft <= self.hard,
               "ulimit %s: the soft limit exceeds the hard one" % (
                   self.name,))


@attr.s(frozen=True, slots=True)
class LogConfig(object):
    """
    Where Docker sends the container's output.

    :ivar str driver: The logging driver (``json-file``, ``local``...).
    :ivar options: ``PMap`` of driver option to value.
    """
    driver = attr.ib(validator=_text_value)
    options = attr.ib(default=pmap(), converter=pmap, validator=_text_map)


def _sorted_names(value):
    # Sorted and once each, so equal sets of names compare equal.
    return pvector(sorted(set(value)))


def _exposed(instance, attribute, value):
    for port, protocol in value:
        _tcp_port(instance, _Named("expose"), port)
        _protocol(instance, _Named("expose"), protocol)


@attr.s(frozen=True, slots=True)
class ContainerOptions(object):
    """
    The Docker settings of an application's container besides those
    :class:`Application` has fields for, as a compose file gives them.  The
    defaults leave Docker's (and the image's) behaviour unchanged.

    :ivar entrypoint: ``PVector`` of ``str`` replacing the image's
        entrypoint, or ``None``.
    :ivar user: ``user[:group]`` to run as, or ``None``.
    :ivar working_dir: Working directory, or ``None``.
    :ivar hostname: Host name inside the container, or ``None``.
    :ivar labels: ``PMap`` of Docker label to value.
    :ivar cap_add: ``PVector`` of capabilities to add.
    :ivar cap_drop: ``PVector`` of capabilities to drop.
    :ivar bool read_only: Whether the root file system is read-only.
    :ivar tmpfs: ``PMap`` of container path to tmpfs mount options.
    :ivar shm_size: Size of ``/dev/shm`` in bytes, or ``None``.
    :ivar ulimits: ``PVector`` of :class:`Ulimit`.
    :ivar sysctls: ``PMap`` of kernel parameter to value.
    :ivar stop_signal: Signal that stops the container, or ``None``.
    :ivar stop_grace_period: Seconds between the stop signal and SIGKILL,
        or ``None`` for Docker's 10.
    :ivar init: Whether an init process runs as PID 1; ``None`` means
        Flocker's default (yes).
    :ivar bool tty: Whether the container gets a terminal.
    :ivar bool stdin_open: Whether its standard input stays open.
    :ivar dns: ``PVector`` of DNS server addresses.
    :ivar dns_search: ``PVector`` of DNS search domains.
    :ivar extra_hosts: ``PVector`` of ``host:address`` entries for
        ``/etc/hosts``.
    :ivar security_opt: ``PVector`` of security options.
    :ivar pids_limit: Most processes, or ``None``.
    :ivar logging: A :class:`LogConfig`, or ``None`` for the daemon's.
    :ivar bool privileged: Whether the container is privileged.
    :ivar runtime: OCI runtime name, or ``None``.
    :ivar platform: Image platform (``linux/amd64``), or ``None``.
    :ivar group_add: ``PVector`` of supplementary groups.
    :ivar mem_reservation: Soft memory limit in bytes, or ``None``.
    :ivar nano_cpus: CPU limit in billionths of a CPU, or ``None``.
    :ivar healthcheck: A :class:`HealthCheck`, or ``None`` for the image's.
    :ivar expose: ``frozenset`` of ``(port, protocol)`` the container
        listens on without publishing them.
    :ivar container_name: The name the compose file gave the container, or
        ``None``; Docker's name stays ``flocker--<application>``.
    :ivar aliases: ``PVector`` of further names the application answers to
        in its project (a compose file's network ``aliases``), sorted.
    :ivar link_aliases: ``PMap`` of a name this application's links give
        another application of its project to that application's name
        (a compose ``links: [db:database]`` to a service that publishes no
        port, so that no :class:`Link` carries the alias).
    """
    entrypoint = attr.ib(default=None, converter=_optional_vector,
                         validator=_optional_texts)
    user = attr.ib(default=None, validator=_optional_text)
    working_dir = attr.ib(default=None, validator=_optional_text)
    hostname = attr.ib(default=None, validator=_optional_text)
    labels = attr.ib(default=pmap(), converter=pmap, validator=_text_map)
    cap_add = attr.ib(default=pvector(), converter=pvector, validator=_texts)
    cap_drop = attr.ib(default=pvector(), converter=pvector,
                       validator=_texts)
    read_only = attr.ib(default=False, validator=_bool)
    tmpfs = attr.ib(default=pmap(), converter=pmap, validator=_text_map)
    shm_size = attr.ib(default=None, validator=_optional_positive_int)
    ulimits = attr.ib(default=pvector(), converter=pvector,
                      validator=_all_of_type(Ulimit))
    sysctls = attr.ib(default=pmap(), converter=pmap, validator=_text_map)
    stop_signal = attr.ib(default=None, validator=_optional_text)
    stop_grace_period = attr.ib(default=None,
                                validator=_optional_duration)
    init = attr.ib(default=None, validator=_optional_bool)
    tty = attr.ib(default=False, validator=_bool)
    stdin_open = attr.ib(default=False, validator=_bool)
    dns = attr.ib(default=pvector(), converter=pvector, validator=_texts)
    dns_search = attr.ib(default=pvector(), converter=pvector,
                         validator=_texts)
    extra_hosts = attr.ib(default=pvector(), converter=pvector,
                          validator=_texts)
    security_opt = attr.ib(default=pvector(), converter=pvector,
                           validator=_texts)
    pids_limit = attr.ib(default=None, validator=_optional_positive_int)
    logging = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(LogConfig)))
    privileged = attr.ib(default=False, validator=_bool)
    runtime = attr.ib(default=None, validator=_optional_text)
    platform = attr.ib(default=None, validator=_optional_text)
    group_add = attr.ib(default=pvector(), converter=pvector,
                        validator=_texts)
    mem_reservation = attr.ib(default=None,
                              validator=_optional_positive_int)
    nano_cpus = attr.ib(default=None, validator=_optional_positive_int)
    healthcheck = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(HealthCheck)))
    expose = attr.ib(default=frozenset(), converter=frozenset,
                     validator=_exposed)
    container_name = attr.ib(default=None, validator=_optional_text)
    aliases = attr.ib(default=pvector(), converter=_sorted_names,
                      validator=_texts)
    link_aliases = attr.ib(default=pmap(), converter=pmap,
                           validator=_text_map)


#: When a dependency counts as ready for the applications depending on it.
DEPENDENCY_CONDITIONS = frozenset({
    "service_started", "service_healthy", "service_completed_successfully"})


def _condition(instance, attribute, value):
    _check(value in DEPENDENCY_CONDITIONS,
           "condition %r is not one of %s" % (
               value, ", ".join(sorted(DEPENDENCY_CONDITIONS))))


@attr.s(frozen=True, slots=True)
class Dependency(object):
    """
    An application another one needs started first (compose's
    ``depends_on``).

    :ivar str name: The application depended on.
    :ivar str condition: ``service_started`` (its container was started),
        ``service_healthy`` (its healthcheck passes) or
        ``service_completed_successfully`` (it exited with status 0).
    :ivar bool required: Whether the dependency must be deployed; if not,
        it is waited for only when it is.
    """
    name = attr.ib(validator=_safe_name)
    condition = attr.ib(default="service_started", validator=_condition)
    required = attr.ib(default=True, validator=_bool)


def _image(instance, attribute, value):
    _check(isinstance(value, str) and _IMAGE.match(value) is not None
           and ".." not in value,
           "image %r is not a valid Docker image name" % (value,))


def _command(value):
    if value is None:
        return None
    # A lone string would otherwise become a vector of its characters.
    _check(not isinstance(value, str),
           "command must be a list of arguments, not a string")
    return pvector(value)


def _command_valid(instance, attribute, value):
    if value is None:
        return
    _check(len(value) > 0, "command must not be empty")
    for item in value:
        _check(isinstance(item, str) and "\x00" not in item,
               "command arguments must be strings without NUL")


def _environment_valid(instance, attribute, value):
    for key, item in value.items():
        _check(isinstance(key, str) and _ENV_NAME.match(key) is not None,
               "environment variable name %r is not valid" % (key,))
        _check(isinstance(item, str) and "\x00" not in item,
               "environment value of %s must be a string without NUL" % (key,))


@attr.s(frozen=True, slots=True)
class Application(object):
    """
    One application: a Docker container Flocker runs on some node.

    :ivar str name: Unique name in the cluster (a safe name).
    :ivar str image: Docker image reference.
    :ivar command: Argument vector (a ``PVector`` of ``str``) replacing the
        image's default command, or ``None``.
    :ivar environment: ``PMap`` of environment variable name to value.
    :ivar ports: ``frozenset`` of :class:`Port`.
    :ivar volume: An :class:`AttachedVolume` or ``None``.
    :ivar links: ``frozenset`` of :class:`Link`.
    :ivar mem_limit: Memory limit in bytes or ``None``.
    :ivar cpu_shares: Relative CPU weight or ``None``.
    :ivar restart_policy: A :class:`RestartPolicy`.
    :ivar volumes: ``frozenset`` of named :class:`AttachedVolume` mounted
        besides ``volume`` (see :meth:`all_volumes` for all of them).
    :ivar host_mounts: ``frozenset`` of :class:`HostMount`: paths of the
        node bound into the container.
    :ivar files: ``frozenset`` of :class:`FileMount`: files put into the
        container at every start.
    :ivar options: The other Docker settings, a :class:`ContainerOptions`.
    :ivar depends_on: ``frozenset`` of :class:`Dependency`: what must be
        started (or healthy, or finished) before this application starts.
    :ivar project: The project the application belongs to (a safe name;
        see :attr:`Deployment.project`), or ``None`` for the default one.
        It is recorded on the application's container, so a deploy of one
        project never stops, replaces or counts another's applications.

    Ports, links and volumes are builtin frozensets, not pyrsistent sets:
    the planner compares every desired application with its reported twin,
    and builtin set equality runs in C (measured: half the planning time
    otherwise).
    """
    name = attr.ib(validator=_safe_name)
    image = attr.ib(validator=_image)
    command = attr.ib(default=None, converter=_command,
                      validator=_command_valid)
    environment = attr.ib(default=pmap(), converter=pmap,
                          validator=_environment_valid)
    ports = attr.ib(default=frozenset(), converter=frozenset,
                    validator=_all_of_type(Port))
    volume = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(AttachedVolume)))
    links = attr.ib(default=frozenset(), converter=frozenset,
                    validator=_all_of_type(Link))
    mem_limit = attr.ib(default=None, validator=_optional_positive_int)
    cpu_shares = attr.ib(default=None, validator=_optional_positive_int)
    restart_policy = attr.ib(default=RestartPolicy(),
                             validator=_of_type(RestartPolicy))
    volumes = attr.ib(default=frozenset(), converter=frozenset,
                      validator=_all_of_type(AttachedVolume))
    host_mounts = attr.ib(default=frozenset(), converter=frozenset,
                          validator=_all_of_type(HostMount))
    files = attr.ib(default=frozenset(), converter=frozenset,
                    validator=_all_of_type(FileMount))
    options = attr.ib(default=ContainerOptions(),
                      validator=_of_type(ContainerOptions))
    depends_on = attr.ib(default=frozenset(), converter=frozenset,
                         validator=_all_of_type(Dependency))
    project = attr.ib(default=None, validator=_optional_safe_name)

    def __attrs_post_init__(self):
        if (self.volume is not None or self.volumes or self.host_mounts
                or self.files):
            self._check_volumes()
        externals = [(port.external, port.protocol) for port in self.ports]
        _check(len(externals) == len(set(externals)),
               "application %s publishes an external port twice" % (
                   self.name,))
        internals = [(port.internal, port.protocol) for port in self.ports]
        _check(len(internals) == len(set(internals)),
               "application %s maps an internal port twice" % (self.name,))
        names = [dependency.name for dependency in self.depends_on]
        _check(len(names) == len(set(names)) and self.name not in names,
               "application %s depends on an application twice or on "
               "itself" % (self.name,))
        locals_ = [(link.address, link.local_port, link.protocol)
                   for link in self.links]
        _check(len(locals_) == len(set(locals_)),
               "application %s uses a link local port twice" % (self.name,))

    def _check_volumes(self):
        _check(self.volume is None or self.volume.name in (None, self.name),
               "the volume of application %s is named after it; name "
               "other volumes in volumes" % (self.name,))
        names = set()
        mountpoints = set()
        for volume in self.all_volumes():
            _check(volume.name not in names,
                   "application %s mounts volume %s twice" % (
                       self.name, volume.name))
            names.add(volume.name)
            _check(volume.mountpoint not in mountpoints,
                   "application %s mounts two volumes at %s" % (
                       self.name, volume.mountpoint))
            mountpoints.add(volume.mountpoint)
        for mount in list(self.host_mounts) + list(self.files):
            _check(mount.mountpoint not in mountpoints,
                   "application %s mounts two things at %s" % (
                       self.name, mount.mountpoint))
            mountpoints.add(mount.mountpoint)
        for volume in self.volumes:
            _check(volume.name is not None,
                   "every volume in volumes of application %s needs a "
                   "name" % (self.name,))

    def all_volumes(self):
        """
        Every volume the application mounts, its own volume included.

        :return: ``tuple`` of :class:`AttachedVolume`, each with its name
            set (the application's own volume named after the application),
            sorted by name.
        """
        if self.volume is None and not self.volumes:
            return ()
        found = list(self.volumes)
        if self.volume is not None:
            found.append(attr.evolve(self.volume, name=self.name)
                         if self.volume.name is None else self.volume)
        return tuple(sorted(found, key=lambda v: (v.name or "", v.mountpoint)))


def _unique_application_names(instance, attribute, value):
    names = [application.name for application in value]
    _check(len(names) == len(set(names)),
           "node %s has two applications with one name" % (instance.address,))


@attr.s(frozen=True, slots=True)
class Node(object):
    """
    A node of the desired deployment and the applications it should run.

    :ivar str address: How the deploy client reaches the node (IP address or
        host name); also the node's key in the deployment file.
    :ivar applications: ``PSet`` of :class:`Application`.
    """
    address = attr.ib(validator=_address)
    applications = attr.ib(default=pset(), converter=pset,
                           validator=[_all_of_type(Application),
                                      _unique_application_names])


#: The shortest and longest replication interval a standby may ask for, in
#: nanoseconds (the unit of every duration in the model).  Below a second
#: the snapshots themselves (tens of milliseconds of ZFS commands each on
#: the slowest pools) would take a noticeable share of the primary's time;
#: above a day a standby is a backup, which is not what it is for.
STANDBY_INTERVAL_RANGE = (10 ** 9, 24 * 3600 * 10 ** 9)

#: The replication interval when the deployment file gives none: 10 s.
DEFAULT_STANDBY_INTERVAL = 10 * 10 ** 9


def _standby_interval(instance, attribute, value):
    low, high = STANDBY_INTERVAL_RANGE
    _check(isinstance(value, int) and not isinstance(value, bool)
           and low <= value <= high,
           "standby interval %r must be between 1 s and 24 h (in "
           "nanoseconds)" % (value,))


def _standby_nodes(instance, attribute, value):
    _check(len(value) > 0, "standby of %s names no node" % (
        instance.application,))
    for address in value:
        _address(instance, _Named("standby node"), address)
    _check(len(set(value)) == len(value),
           "standby of %s names a node twice" % (instance.application,))


@attr.s(frozen=True, slots=True)
class Standby(object):
    """
    Where an application's volumes are continuously copied to, so that it
    can start on another node when its own is lost (the deployment file's
    ``standby:`` section).

    The application's node (the primary) takes a snapshot of each of the
    application's volumes every ``interval`` and sends each standby node
    what changed since the last snapshot they have in common.  A standby's
    copy is never writable and never served while the primary owns it.

    :ivar str application: The application's name (a safe name).
    :ivar nodes: ``PVector`` of the standby nodes' addresses, in the
        operator's order of preference; at least one, no repeats.
    :ivar int interval: Nanoseconds between two snapshots, within
        :data:`STANDBY_INTERVAL_RANGE`.
    :ivar bool automatic: Whether the cluster itself fails the application
        over to a standby when its node is lost (``False``: an operator
        does, with ``flocker-deploy --failover``).
    """
    application = attr.ib(validator=_safe_name)
    nodes = attr.ib(converter=pvector, validator=_standby_nodes)
    interval = attr.ib(default=DEFAULT_STANDBY_INTERVAL,
                       validator=_standby_interval)
    automatic = attr.ib(default=False, validator=_bool)

    @property
    def seconds(self):
        """
        The interval in seconds, as a ``float`` (what a reactor's clock
        takes).
        """
        return self.interval / 10 ** 9


def _check_standbys(deployment):
    """
    Check each standby of ``deployment`` against its nodes: every standby
    node is one of them, and a placed application has a volume to copy and
    is not its own node's standby.  An application the deployment does not
    place is not checked (a deployment file read without its application
    file places none).
    """
    placements = deployment.placements()
    addresses = {node.address for node in deployment.nodes}
    for name, standby in deployment.standbys.items():
        _check(isinstance(standby, Standby) and standby.application == name,
               "standbys must map each application name to its Standby")
        for address in standby.nodes:
            _check(address in addresses,
                   "standby node %s of %s is not a node of the "
                   "deployment" % (address, name))
        if name not in placements:
            continue
        primary, application = placements[name]
        _check(primary not in standby.nodes,
               "node %s runs %s and cannot also be its standby" % (
                   primary, name))
        _check(bool(application.all_volumes()),
               "application %s has no volume for a standby to copy" % (
                   name,))


def _check_volume_placement(seen, address, application, volume):
    """
    Check that ``application`` on node ``address`` may mount ``volume``
    given the mounts ``seen`` so far (volume name to ``(address,
    application, AttachedVolume)``), and record it there.
    """
    first = seen.get(volume.name)
    if first is None:
        seen[volume.name] = (address, application, volume)
        return
    where, other, theirs = first
    _check(where == address,
           "volume %s is mounted by %s on node %s and by %s on node %s; "
           "a volume is on one node at a time, so put both on one node" % (
               volume.name, other, where, application, address))
    _check(theirs.maximum_size == volume.maximum_size,
           "volume %s has a different maximum_size in %s and %s" % (
               volume.name, other, application))
    _check(theirs.external == volume.external,
           "volume %s is external in one of %s and %s but not the other" % (
               volume.name, other, application))


@attr.s(frozen=True, slots=True)
class Deployment(object):
    """
    The desired state of the whole cluster.

    Invariants: node addresses are unique, an application runs on at most one
    node, an external port belongs to at most one application (routing
    makes external ports cluster-wide), and the applications mounting one
    volume all run on one node and agree on its size and whether it is
    external (a volume has one writable owner).

    :ivar nodes: ``PSet`` of :class:`Node`.
    :ivar project: The project this deployment is (a safe name), or
        ``None`` for the default project.  A deploy converges its own
        project's applications only: another project's containers are
        neither stopped nor replaced (their ports are still routed, and
        still taken).  A compose file's project is its ``name:``, else its
        directory's name, as compose has it; a native application file is
        the default project.  Applications without a project are given this
        one; one with another project is refused.
    :ivar standbys: ``PMap`` of application name to its :class:`Standby`:
        the applications whose volumes are copied to other nodes.  Each
        standby node is a node of the deployment; a placed application
        with a standby has a volume and is not on one of its standby nodes.
    """
    nodes = attr.ib(default=pset(), converter=pset,
                    validator=_all_of_type(Node))
    project = attr.ib(default=None, validator=_optional_safe_name)
    standbys = attr.ib(default=pmap(), converter=pmap)

    def __attrs_post_init__(self):
        if self.project is not None:
            self._stamp_project()
        addresses = set()
        owners = {}
        ports = {}
        volumes = {}
        for node in self.nodes:
            _check(node.address not in addresses,
                   "node %s appears twice" % (node.address,))
            addresses.add(node.address)
            for application in node.applications:
                _check(application.name not in owners,
                       "application %s is on two nodes (%s and %s)" % (
                           application.name, owners.get(application.name),
                           node.address))
                owners[application.name] = node.address
                for port in application.ports:
                    key = (port.external, port.protocol)
                    _check(key not in ports,
                           "external port %d/%s is used by both %s and %s" % (
                               port.external, port.protocol, ports.get(key),
                               application.name))
                    ports[key] = application.name
                if application.volume is not None or application.volumes:
                    for volume in application.all_volumes():
                        _check_volume_placement(volumes, node.address,
                                                application.name, volume)
        if self.standbys:
            _check_standbys(self)

    def _stamp_project(self):
        nodes = []
        for node in self.nodes:
            applications = []
            for application in node.applications:
                _check(application.project in (None, self.project),
                       "application %s belongs to project %s, not %s" % (
                           application.name, application.project,
                           self.project))
                if application.project is None:
                    application = attr.evolve(application,
                                              project=self.project)
                applications.append(application)
            nodes.append(attr.evolve(node, applications=applications))
        # Frozen, and still being built: the stamped nodes replace the given.
        object.__setattr__(self, "nodes", pset(nodes))

    def node(self, address):
        """
        :param str address: A node address.
        :return: The :class:`Node` with that address, or ``None``.
        """
        for node in self.nodes:
            if node.address == address:
                return node
        return None

    def placements(self):
        """
        :return: A ``dict`` of application name to ``(address, Application)``.
        """
        return {application.name: (node.address, application)
                for node in self.nodes for application in node.applications}


class Route(NamedTuple("_RouteFields", [("port", int), ("address", str),
                                        ("protocol", str)])):
    """
    A routing rule installed on a node: connections (UDP: datagrams) to
    ``port`` on this node go to the same port on the node at ``address``.

    Routes are tuples rather than attrs classes because a cluster holds one
    per application port per node (a million at 100 nodes and 10,000
    applications) and the planner compares whole sets of them: tuple hashing
    and equality run in C.

    :ivar int port: The external port.
    :ivar str address: IP address (or host name) of the node hosting the
        application.
    :ivar str protocol: ``tcp`` (the default) or ``udp``.
    """
    __slots__ = ()

    def __new__(cls, port, address, protocol="tcp"):
        if not (type(port) is int and 1 <= port <= 65535):
            _tcp_port(None, _Named("port"), port)
        if not (type(address) is str and is_node_address(address)):
            _address(None, _Named("address"), address)
        if protocol != "tcp":
            _protocol(None, _Named("protocol"), protocol)
            protocol = "udp"
        # Interned, so comparing the routes of a thousand nodes compares
        # string pointers rather than string contents.
        return tuple.__new__(cls, (port, sys.intern(address), protocol))


@attr.s(frozen=True, slots=True)
class VolumeState(object):
    """
    A volume as a node reports it.

    :ivar str name: The volume's name (its application's name).
    :ivar bool owned: Whether this node is the volume's one writable owner.
        A node can hold a non-owned copy received by an earlier push.
    :ivar int size: Bytes referenced by the dataset.
    :ivar snapshots: ``PVector`` of snapshot names, oldest first.
    :ivar owner: The identity of the node this copy names as the volume's
        owner (see :attr:`NodeState.node_id`), or ``None`` when the copy
        names none or the node did not say (reports of older nodes).
    :ivar int epoch: The ownership epoch this copy records (see
        :mod:`flocker.volume._epoch`): 0 when it records none.
    """
    name = attr.ib(validator=_safe_name)
    owned = attr.ib(validator=_of_type(bool))
    size = attr.ib(default=0)
    snapshots = attr.ib(default=pvector(), converter=pvector)
    owner = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(str)))
    epoch = attr.ib(default=0, validator=_of_type(int))


@attr.s(frozen=True, slots=True)
class Replication(object):
    """
    What a volume's owner is asked to do continuously: send each standby
    node what changed, every ``interval`` (see :class:`Standby`, of which
    this is the per-volume form a node is given).

    :ivar str volume: The volume.
    :ivar str application: The application whose standby asked for it
        (named in metrics and status; the first by name when several
        applications on one node share the volume).
    :ivar standbys: ``PVector`` of the standby nodes' addresses.
    :ivar int interval: Nanoseconds between two snapshots.
    """
    volume = attr.ib(validator=_safe_name)
    application = attr.ib(validator=_safe_name)
    standbys = attr.ib(converter=pvector, validator=_standby_nodes)
    interval = attr.ib(validator=_standby_interval)

    @property
    def seconds(self):
        """
        The interval in seconds, as a ``float``.
        """
        return self.interval / 10 ** 9


def _optional_seconds(instance, attribute, value):
    if value is not None:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool)
               and value >= 0,
               "%s %r must be a number of seconds, zero or more" % (
                   attribute.name, value))


def _count(instance, attribute, value):
    _check(isinstance(value, int) and not isinstance(value, bool)
           and value >= 0,
           "%s %r must be a count, zero or more" % (attribute.name, value))


@attr.s(frozen=True, slots=True)
class StandbyStatus(object):
    """
    How far one standby's copy of a volume is behind its owner, as the
    owner reports it.

    :ivar str address: The standby node.
    :ivar snapshot: The newest snapshot the standby confirmed having, or
        ``None`` before its first confirmation.
    :ivar lag: Seconds of writes the standby's copy lacks now: the time
        since the confirmed snapshot was taken (``None``: it has none).
    :ivar int bytes_sent: Bytes sent to it since the owner's agent started.
    :ivar error: Why the last attempt to update it failed (one line), or
        ``None`` when it succeeded.
    """
    address = attr.ib(validator=_address)
    snapshot = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(str)))
    lag = attr.ib(default=None, validator=_optional_seconds)
    bytes_sent = attr.ib(default=0, validator=_count)
    error = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(str)))


@attr.s(frozen=True, slots=True)
class ReplicationStatus(object):
    """
    A volume's replication as its owner reports it: what it was asked to
    do and how far each standby is.

    :ivar Replication replication: What it was asked to do.
    :ivar standbys: ``PMap`` of standby address to :class:`StandbyStatus`.
    """
    replication = attr.ib(validator=_of_type(Replication))
    standbys = attr.ib(default=pmap(), converter=pmap)

    def __attrs_post_init__(self):
        for address, status in self.standbys.items():
            _check(isinstance(status, StandbyStatus)
                   and status.address == address,
                   "standbys must map each address to its StandbyStatus")


def desired_replication(deployment):
    """
    The replication each node of ``deployment`` should run: every volume of
    an application with a standby, on the application's node, to the
    standby's nodes.  A volume shared by several applications (on one node)
    goes to every standby node any of them names, at the shortest of their
    intervals.

    :param Deployment deployment: The desired state.
    :return: ``dict`` of node address to a ``PMap`` of volume name to
        :class:`Replication` (every node of the deployment present, with an
        empty map when it replicates nothing).
    """
    wanted = {node.address: {} for node in deployment.nodes}
    placements = deployment.placements()
    for name in sorted(deployment.standbys):
        if name not in placements:
            continue
        standby = deployment.standbys[name]
        address, application = placements[name]
        for volume in application.all_volumes():
            known = wanted[address].get(volume.name)
            if known is None:
                wanted[address][volume.name] = Replication(
                    volume=volume.name, application=name,
                    standbys=standby.nodes, interval=standby.interval)
                continue
            extra = [node for node in standby.nodes
                     if node not in known.standbys]
            wanted[address][volume.name] = attr.evolve(
                known, standbys=list(known.standbys) + extra,
                interval=min(known.interval, standby.interval))
    return {address: pmap(volumes) for address, volumes in wanted.items()}


# An OpenSSH public key line: type, base64 blob, no comment (the comment is
# Flocker's to choose where the key is written).
_PUBLIC_KEY = re.compile(r"\Assh-ed25519 [A-Za-z0-9+/]+={0,2}\Z")


def public_key_fingerprint(public_key):
    """
    :param str public_key: ``"ssh-ed25519 AAAA..."``.
    :return: Its SHA256 fingerprint as ``ssh-keygen -l`` prints it
        (``"SHA256:..."``, base64 without padding).
    :raises InvalidModel: If it is not an ed25519 public key line.
    """
    _check(isinstance(public_key, str) and _PUBLIC_KEY.match(public_key)
           is not None, "not an ssh-ed25519 public key line")
    try:
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except binascii.Error:
        raise InvalidModel("not an ssh-ed25519 public key line")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def known_hosts_digest(text):
    """
    :param str text: A known_hosts file's content.
    :return: The hex SHA-256 of its UTF-8 bytes: what a node reports instead
        of the file, so the planner can tell whether it is current.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _public_key(instance, attribute, value):
    public_key_fingerprint(value)


def _known_hosts(instance, attribute, value):
    _check(isinstance(value, str) and "\x00" not in value
           and (not value or value.endswith("\n")),
           "known_hosts must be text ending with a newline")


def parse_peers(text):
    """
    :param str text: A peers text: one line per node key, ``NODEID
        SOURCE[,SOURCE...] ssh-ed25519 BASE64`` (the node's identity, the
        names and addresses it connects from, and one of its public keys; a
        node rotating its key has two lines).
    :return: ``list`` of ``(node_id, [source, ...], public_key)`` in the
        text's order.
    :raises InvalidModel: If a line is not of that form.
    """
    peers = []
    for line in text.splitlines():
        fields = line.split(" ")
        _check(len(fields) == 4 and is_node_identity(fields[0])
               and all(is_node_address(source)
                                   for source in fields[1].split(","))
               and _PUBLIC_KEY.match(" ".join(fields[2:])) is not None,
               "peers line %r is not 'NODEID SOURCE[,SOURCE...] "
               "ssh-ed25519 KEY'" % (line[:200],))
        public_key = " ".join(fields[2:])
        public_key_fingerprint(public_key)
        peers.append((fields[0], fields[1].split(","), public_key))
    return peers


def _peers(instance, attribute, value):
    _check(isinstance(value, str) and (not value or value.endswith("\n")),
           "peers must be text ending with a newline")
    parse_peers(value)


@attr.s(frozen=True, slots=True)
class NodeKeyStatus(object):
    """
    What a node reports about its node-to-node SSH key: its own public key
    (made on the node, which is the only place the private key ever is),
    and which trust the deploy installed; nothing secret.

    :ivar str public_key: The node's ``"ssh-ed25519 AAAA..."`` key line, no
        comment: the key it pushes with, which the other nodes accept as
        this node and no other.
    :ivar installed: :meth:`NodeKey.digest` of the :class:`NodeKey` installed
        on the node (whose ``authorized_keys`` lines are in place), or
        ``None`` when none is.
    :ivar pending_public_key: During a rotation, the node's next key line
        (made, not yet used), else ``None``.
    """
    public_key = attr.ib(validator=_public_key)
    installed = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(str)))
    pending_public_key = attr.ib(
        default=None, validator=attr.validators.optional(_public_key))

    @property
    def fingerprint(self):
        """
        The SHA256 fingerprint of :attr:`public_key`.
        """
        return public_key_fingerprint(self.public_key)


@attr.s(frozen=True, slots=True)
class NodeKey(object):
    """
    The node-to-node trust the deploy client installs on every node: whose
    host keys a node's pushes accept, and which node each peer's key lets
    in.  Nothing secret: each node's private key stays on that node.

    :ivar str known_hosts: The known_hosts file the nodes check each
        other's host keys against (one line per node).
    :ivar str peers: One line per node key (see :func:`parse_peers`): each
        node authorises every other node's key once, ``from=`` that node's
        addresses, with a forced command naming that node, so the key is
        the node's identity and a receive knows who calls.
    """
    known_hosts = attr.ib(validator=_known_hosts)
    peers = attr.ib(default="", validator=_peers)

    def digest(self):
        """
        :return: What a node reports as :attr:`NodeKeyStatus.installed`
            once this is installed: the hex SHA-256 of the known_hosts
            text, a NUL, and the peers text.
        """
        return known_hosts_digest(self.known_hosts + "\x00" + self.peers)

    def public_keys(self, node_id):
        """
        :param str node_id: A node identity.
        :return: ``list`` of the public key lines :attr:`peers` gives that
            node, in order.
        """
        return [key for peer, _, key in parse_peers(self.peers)
                if peer == node_id]


@attr.s(frozen=True, slots=True)
class NodeState(object):
    """
    The current state one node reports.

    :ivar str address: The node's address.
    :ivar applications: ``PMap`` of name to the :class:`Application` its
        container was created from (running or stopped).
    :ivar running: ``PSet`` of the names of applications whose container runs.
    :ivar volumes: ``PMap`` of volume name to :class:`VolumeState`.
    :ivar routes: ``frozenset`` of :class:`Route` installed on the node
        (a builtin set: see :class:`Route` for why).
    :ivar links: ``PMap`` of application name to the ``PSet`` of
        :class:`Link` whose rules are installed in its container.
    :ivar node_key: The :class:`NodeKeyStatus` of the node's own
        node-to-node key, or ``None`` when the node did not say.
    :ivar images: ``frozenset`` of the image references present on the
        node (``REPOSITORY:TAG`` and ``REPOSITORY@DIGEST`` as Docker lists
        them), or ``None`` when the node did not say (then nothing is
        checked against them).
    :ivar busy_ports: ``frozenset`` of the TCP ports on which something
        that is not Flocker's listens on the node: an application
        publishing one, or a route for one, would fail or steal its
        connections.
    :ivar node_id: The node's identity (the one its volumes' copies name
        as owner), or ``None`` when unknown.
    :ivar replication: ``PMap`` of volume name to the
        :class:`ReplicationStatus` of each volume the node was asked to
        replicate to standbys (empty when none, or when the node did not
        say).
    :ivar automatic: ``PMap`` of application name to ``(node address,
        epoch)``: where etcd says each automatically failed-over application
        runs, as this node last saw it (empty on a node without etcd).
    :ivar expected_senders: ``PMap`` of volume name to the ``frozenset`` of
        the identities of the nodes this node may receive a first copy of
        it from (see :mod:`flocker.node._senders`); empty when none, or
        when the node did not say.
    """
    address = attr.ib(validator=_address)
    applications = attr.ib(default=pmap(), converter=pmap)
    running = attr.ib(default=pset(), converter=pset)
    volumes = attr.ib(default=pmap(), converter=pmap)
    routes = attr.ib(default=frozenset(), converter=frozenset,
                     validator=_all_of_type(Route))
    links = attr.ib(default=pmap(), converter=pmap)
    node_key = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(NodeKeyStatus)))
    images = attr.ib(default=None, converter=attr.converters.optional(
        frozenset))
    busy_ports = attr.ib(default=frozenset(), converter=frozenset)
    node_id = attr.ib(default=None, validator=attr.validators.optional(
        _of_type(str)))
    replication = attr.ib(default=pmap(), converter=pmap)
    automatic = attr.ib(default=pmap(), converter=pmap)
    expected_senders = attr.ib(default=pmap(), converter=pmap)

    def __attrs_post_init__(self):
        for name, nodes in self.expected_senders.items():
            _check(isinstance(name, str) and isinstance(nodes, frozenset)
                   and all(isinstance(node, str) for node in nodes),
                   "expected_senders must map each volume to a frozenset "
                   "of node identities")
        for name, status in self.replication.items():
            _check(isinstance(status, ReplicationStatus)
                   and status.replication.volume == name,
                   "replication must map each volume to its "
                   "ReplicationStatus")
        for name, (node, epoch) in self.automatic.items():
            _check(isinstance(node, str) and isinstance(epoch, int),
                   "automatic must map each name to (node, epoch)")
        for name, application in self.applications.items():
            _check(isinstance(application, Application)
                   and application.name == name,
                   "applications must map each name to its Application")
        _check(self.running <= pset(self.applications.keys()),
               "a running application must be one of the node's applications")
        for name, volume in self.volumes.items():
            _check(isinstance(volume, VolumeState) and volume.name == name,
                   "volumes must map each name to its VolumeState")

    def as_running(self, name):
        """
        :param str name: One of the node's applications.
        :return: The :class:`Application` as it runs: its container's
            configuration, with the links installed in its container where
            the node reported them (a project's names change in place, so
            the container's own record of its links may be older).
        """
        application = self.applications[name]
        installed = self.links.get(name)
        if installed is None or installed == application.links:
            return application
        return attr.evolve(application, links=installed)


@attr.s(frozen=True, slots=True)
class ClusterState(object):
    """
    The current state of every node that answered.

    :ivar nodes: ``PMap`` of node address to :class:`NodeState`.
    """
    nodes = attr.ib(default=pmap(), converter=pmap)

    def __attrs_post_init__(self):
        for address, state in self.nodes.items():
            _check(isinstance(state, NodeState) and state.address == address,
                   "nodes must map each address to its NodeState")
