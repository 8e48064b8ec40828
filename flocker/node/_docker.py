"""
What Flocker needs of Docker, and two ways of getting it.

:class:`IDockerClient` is the interface; :class:`DockerClient` speaks the
Docker Engine HTTP API over the daemon's Unix socket with treq (no docker CLI,
no blocking client library); :class:`FakeDockerClient` keeps containers in
memory for unit tests and behaves the same, which one shared test suite
checks (``flocker/node/test/test_docker.py``, run on a lab node's dockerd by
``test_docker_lab.py``).

Flocker's containers are named ``flocker--<application name>`` and carry the
label ``flocker.application`` holding the application's canonical JSON, so the
node's report rebuilds each :class:`flocker.Application` exactly.  A second
label, ``flocker.spec``, holds a digest of the whole container configuration
(including derived parts such as link environment variables and the volume's
host path) so that :meth:`IDockerClient.add` can tell whether an existing
container already is what was asked for.  Containers without the label are
never stopped, removed or replaced.
"""

import calendar
import hashlib
import io
import json
import tarfile
import posixpath
import re
import time
from urllib.parse import quote

import attr
import treq
from eliot import current_action, write_failure
from eliot.twisted import DeferredContext
from pyrsistent import pmap, pset
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.error import (
    ConnectError, ConnectionClosed, TimeoutError as InternetTimeoutError,
)
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent, HTTPConnectionPool, RequestTransmissionFailed, ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import Interface, implementer

from .._model import Application, Port, RestartPolicy
from ._images import canonical_image
from .._text import one_line
from .._serialize import (
    SerializationError, application_from_dict, application_to_dict, dumps,
)
from ._dockerapi import (
    MAXIMUM_API_VERSION, MINIMUM_API_VERSION, APIVersion, UnsupportedField,
    VersionMismatch, negotiate, refused_version, request_body,
)
from ._logging import (
    DOCKER_ADD, DOCKER_API_CALL, DOCKER_CONTAINER_PID,
    DOCKER_CONTAINER_STATUS, DOCKER_CREATE, DOCKER_EXISTS,
    DOCKER_FIELDS_DROPPED, DOCKER_FOREIGN_CONTAINER, DOCKER_IMAGE_PRESENT,
    DOCKER_LIST, DOCKER_LIST_IMAGES, DOCKER_LOGS, DOCKER_NEGOTIATE,
    DOCKER_PULL_IMAGE, DOCKER_REMOVE, DOCKER_STOP, DOCKER_UNREADABLE_LABEL,
)

__all__ = [
    "IDockerClient", "DockerClient", "FakeDockerClient", "Unit",
    "ContainerStatus",
    "DockerError", "DockerUnavailable", "DockerAPIError", "ImageNotFound",
    "PullFailed",
    "AlreadyExists", "ContainerNotFound",
    "container_name", "container_config", "docker_restart_policy",
    "files_archive",
    "socket_path_from_docker_host",
    "DEFAULT_DOCKER_SOCKET", "CONTAINER_PREFIX", "APPLICATION_LABEL",
    "SPEC_LABEL", "MAXIMUM_API_VERSION", "MINIMUM_API_VERSION",
    "MINIMUM_MEMORY_LIMIT", "APIVersion", "UnsupportedField",
]

#: Where Docker listens unless told otherwise.
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"

#: Every Flocker container's name is this prefix followed by the
#: application's name; the prefix keeps Flocker's names apart from the
#: operator's own containers.
CONTAINER_PREFIX = "flocker--"

#: Label holding the application's canonical JSON; its presence is what
#: makes a container Flocker's.
APPLICATION_LABEL = "flocker.application"

#: Label holding a digest of the container's whole configuration.
SPEC_LABEL = "flocker.spec"

#: Docker refuses memory limits below 6 MiB; the fake refuses them too.
MINIMUM_MEMORY_LIMIT = 6 * 1024 * 1024

# Lets a container's loopback traffic be DNATed to another address, which the
# link rules installed in the container's network namespace rely on.  /proc/sys
# is read-only inside containers, so it can only be set at creation.
_LINK_SYSCTLS = {"net.ipv4.conf.all.route_localnet": "1"}

# Flocker's restart policy names mapped to Docker's.
_RESTART_POLICIES = {"never": "no", "always": "always",
                     "on-failure": "on-failure",
                     "unless-stopped": "unless-stopped"}

_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


class DockerError(Exception):
    """
    Base class of every error the Docker clients raise.  ``str()`` of each is
    one line fit for an operator.
    """


class DockerUnavailable(DockerError):
    """
    The Docker daemon could not be reached: socket missing, daemon not
    running, permission denied, no answer in time, or an API version too old.

    :ivar str socket_path: The socket that was tried.
    :ivar str reason: What went wrong.
    """

    def __init__(self, socket_path, reason):
        DockerError.__init__(self, socket_path, reason)
        self.socket_path = socket_path
        self.reason = reason

    def __str__(self):
        return "Docker is not available at unix://%s: %s" % (
            self.socket_path, self.reason)


class DockerAPIError(DockerError):
    """
    Docker answered a request with an error.

    :ivar str operation: What Flocker was doing, e.g.
        ``"start container flocker--web"``.
    :ivar int status: The HTTP status.
    :ivar str message: Docker's message.
    """

    def __init__(self, operation, status, message):
        DockerError.__init__(self, operation, status, message)
        self.operation = operation
        self.status = status
        self.message = message

    def __str__(self):
        # Flocker's words and what to do first, Docker's own text after.
        hint = _api_error_hint(self.message)
        return "could not %s%s (Docker said: %s, HTTP %d)" % (
            self.operation, ": " + hint if hint else "",
            one_line(self.message), self.status)


# What to do about Docker's refusals, by what its message says; the first
# match wins.
_API_HINTS = (
    ("port is already allocated", "another container holds one of its host "
     "ports; stop it or choose another external port"),
    ("address already in use", "a program on the node holds one of its host "
     "ports; stop it or choose another external port"),
    ("no space left", "the node's Docker storage is full; free space there"),
    ("minimum memory limit", "raise the application's mem_limit"),
    ("pull access denied", "the image is not in a registry the node can "
     "reach; load it on the node (docker load)"),
    ("executable file not found", "the image has no such command; check the "
     "application's command"),
)


def _api_error_hint(message):
    """
    :return: What to do about a Docker error ``message``, or ``""``.
    """
    lowered = str(message).lower()
    for needle, hint in _API_HINTS:
        if needle in lowered:
            return hint
    return ""


class ImageNotFound(DockerError):
    """
    An application's image is not present on the node.  Flocker never pulls
    images (nodes need not reach a registry); load it on the node first.

    :ivar str image: The image reference.
    :ivar str where: The node and socket, for the message.
    """

    def __init__(self, image, where):
        DockerError.__init__(self, image, where)
        self.image = image
        self.where = where

    def __str__(self):
        return ("image %s is not present on %s; load it there first "
                "(nothing was created)" % (self.image, self.where))


class PullFailed(DockerError):
    """
    An image is not on the node and could not be pulled (or, for a dry
    run, its registry does not have it or cannot be reached).

    :ivar str image: The image reference.
    :ivar str where: The node and socket, for the message.
    :ivar str message: What Docker said.
    """

    def __init__(self, image, where, message):
        DockerError.__init__(self, image, where, message)
        self.image = image
        self.where = where
        self.message = message

    def __str__(self):
        return ("image %s is not on %s and cannot be pulled; load it there "
                "(docker load) or make its registry reachable: %s" % (
                    self.image, self.where, one_line(self.message)))


class AlreadyExists(DockerError):
    """
    A container Flocker did not create already uses the name Flocker needs.

    :ivar str container_name: The contested name.
    :ivar container_id: The other container's id, when known.
    :ivar str where: The node and socket, for the message.
    """

    def __init__(self, container_name, container_id, where):
        DockerError.__init__(self, container_name, container_id, where)
        self.container_name = container_name
        self.container_id = container_id
        self.where = where

    def __str__(self):
        ident = ("" if self.container_id is None
                 else " (id %s)" % (self.container_id[:12],))
        return ("container name %s is already used on %s by a container "
                "Flocker did not create%s; it was left untouched" % (
                    self.container_name, self.where, ident))


class ContainerNotFound(DockerError):
    """
    There is no Flocker container for the application.

    :ivar str name: The application name.
    :ivar str where: The node and socket, for the message.
    """

    def __init__(self, name, where):
        DockerError.__init__(self, name, where)
        self.name = name
        self.where = where

    def __str__(self):
        return "application %s has no Flocker container on %s" % (
            self.name, self.where)


def _where(node, socket_path):
    if node is None:
        return "this node (Docker at unix://%s)" % (socket_path,)
    return "node %s (Docker at unix://%s)" % (node, socket_path)


def container_name(application_name):
    """
    :param str application_name: An application's name.
    :return: The name of its Docker container.
    """
    return CONTAINER_PREFIX + application_name


def socket_path_from_docker_host(docker_host):
    """
    Find the Docker socket named by a ``DOCKER_HOST`` value.

    :param docker_host: The value of ``DOCKER_HOST`` or ``None``/empty.
    :return: The socket path: :data:`DEFAULT_DOCKER_SOCKET` when
        ``docker_host`` is empty, else the path of its ``unix://`` URL.
    :raises ValueError: For any other scheme (Flocker talks to the local
        daemon over its Unix socket only) or a relative path.
    """
    if not docker_host:
        return DEFAULT_DOCKER_SOCKET
    scheme = "unix://"
    if not docker_host.startswith(scheme):
        raise ValueError(
            "DOCKER_HOST=%s is not supported: Flocker needs the local "
            "daemon's socket, as unix:///path/to/docker.sock" % (
                docker_host,))
    path = docker_host[len(scheme):]
    if not path.startswith("/"):
        raise ValueError(
            "DOCKER_HOST=%s does not name an absolute socket path" % (
                docker_host,))
    return path


def _check_host_path(path):
    if not (isinstance(path, str) and path.startswith("/")):
        raise ValueError("volume host path %r must be absolute" % (path,))
    # Docker's Binds syntax separates fields with ':'.
    if ":" in path or "\x00" in path or "\n" in path:
        raise ValueError("volume host path %r contains ':' or a control "
                         "character" % (path,))
    if posixpath.normpath(path) != path:
        raise ValueError("volume host path %r must be normalised" % (path,))


def _nonempty(**fields):
    """
    :return: ``fields`` without those whose value is ``None`` or empty, so
        a container created without an option has a body as it had before
        the option existed.
    """
    return {key: value for key, value in fields.items()
            if value is not None and value != [] and value != {}
            and value is not False}


def _host_options(options):
    """
    :param ContainerOptions options: An application's options.
    :return: The ``HostConfig`` members they set.
    """
    logging = options.logging
    return _nonempty(
        CapAdd=list(options.cap_add),
        CapDrop=list(options.cap_drop),
        ReadonlyRootfs=options.read_only,
        Tmpfs=dict(options.tmpfs),
        ShmSize=options.shm_size,
        Ulimits=[{"Name": u.name, "Soft": u.soft, "Hard": u.hard}
                 for u in options.ulimits],
        Sysctls=dict(options.sysctls),
        Dns=list(options.dns),
        DnsSearch=list(options.dns_search),
        ExtraHosts=list(options.extra_hosts),
        SecurityOpt=list(options.security_opt),
        PidsLimit=options.pids_limit,
        LogConfig=(None if logging is None else
                   {"Type": logging.driver, "Config": dict(logging.options)}),
        Privileged=options.privileged,
        Runtime=options.runtime,
        GroupAdd=list(options.group_add),
        MemoryReservation=options.mem_reservation,
        NanoCpus=options.nano_cpus,
    )


def _container_options(options):
    """
    :param ContainerOptions options: An application's options.
    :return: The top-level create body members they set.
    """
    check = options.healthcheck
    health = None
    if check is not None:
        health = _nonempty(
            Test=list(check.test), Interval=check.interval,
            Timeout=check.timeout, StartPeriod=check.start_period,
            StartInterval=check.start_interval, Retries=check.retries)
    return _nonempty(
        Entrypoint=(None if options.entrypoint is None
                    else list(options.entrypoint)),
        User=options.user,
        WorkingDir=options.working_dir,
        Hostname=options.hostname,
        StopSignal=options.stop_signal,
        StopTimeout=options.stop_grace_period,
        Tty=options.tty,
        OpenStdin=options.stdin_open,
        Healthcheck=health,
    )


def files_archive(files):
    """
    The tar archive that puts files into a container (the body of Docker's
    ``PUT /containers/ID/archive?path=/``).

    :param files: Iterable of :class:`flocker.FileMount` with their content.
    :return: ``bytes`` of an uncompressed tar: each file at its mountpoint
        (relative to ``/``), with its mode, owned by root, dated 0 so equal
        files give equal archives.  Docker makes missing parent directories.
    :raises ValueError: If a file's content is not known.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) \
            as archive:
        for mount in sorted(files, key=lambda f: f.mountpoint):
            if mount.content is None:
                raise ValueError("the content of the file for %s is not "
                                 "known" % (mount.mountpoint,))
            info = tarfile.TarInfo(mount.mountpoint.lstrip("/"))
            info.size = len(mount.content)
            info.mode = mount.mode
            archive.addfile(info, io.BytesIO(mount.content))
    return buffer.getvalue()


def _bind(host_path, volume):
    """
    :return: The ``Binds`` entry mounting ``host_path`` as ``volume``.
    """
    _check_host_path(host_path)
    if ":" in volume.mountpoint:
        # Whatever followed a colon would be the bind's options.
        raise ValueError("volume mountpoint %r contains ':'" % (
            volume.mountpoint,))
    return "%s:%s%s" % (host_path, volume.mountpoint,
                        ":ro" if volume.read_only else "")


def container_config(application, volume_mountpoint=None, extra_env=None,
                     volume_paths=None):
    """
    Build the body of Docker's ``POST /containers/create`` for an application.

    :param Application application: What to run.
    :param volume_mountpoint: Host path of the application's volume (its
        dataset's mountpoint), bound at ``application.volume.mountpoint``;
        required exactly when the application has a volume.
    :param extra_env: Mapping of further environment variables (link
        variables); they take precedence over the application's own.
    :param volume_paths: Mapping of the name of each of
        ``application.volumes`` (its named volumes) to the host path of its
        dataset; bound at its mountpoint, read-only if it says so.
    :return: A JSON-compatible ``dict``, labels included.
    :raises ValueError: If the volume arguments do not match the application,
        a volume path would not be one ``Binds`` field (a ``:`` in either)
        or an extra variable name is invalid.
    """
    if not isinstance(application, Application):
        raise TypeError("application must be an Application, not %r" % (
            application,))
    if (application.volume is None) != (volume_mountpoint is None):
        raise ValueError(
            "application %s %s a volume but %s host path was given" % (
                application.name,
                "has no" if application.volume is None else "has",
                "a" if volume_mountpoint is not None else "no"))
    paths = dict(volume_paths or {})
    named = {volume.name for volume in application.volumes}
    if set(paths) != named:
        raise ValueError(
            "application %s mounts the named volumes %s but host paths were "
            "given for %s" % (application.name,
                              ", ".join(sorted(named)) or "none",
                              ", ".join(sorted(paths)) or "none"))
    if volume_mountpoint is not None:
        paths[application.name] = volume_mountpoint
    environment = dict(application.environment)
    for key, value in (extra_env or {}).items():
        if not (isinstance(key, str) and _ENV_NAME.match(key)
                and isinstance(value, str) and "\x00" not in value):
            raise ValueError("invalid extra environment variable %r" % (key,))
        environment[key] = value
    ports = sorted(application.ports,
                   key=lambda p: (p.internal, p.protocol, p.external))
    bindings = {}
    for port in ports:
        # An empty HostIp publishes on every address of the node.
        bindings.setdefault("%d/%s" % (port.internal, port.protocol), []).append(
            {"HostIp": port.host_ip, "HostPort": str(port.external)})
    exposed = {key: {} for key in bindings}
    options = application.options
    for number, protocol in sorted(options.expose):
        exposed["%d/%s" % (number, protocol)] = {}
    policy = docker_restart_policy(application)
    host_config = {
        "PortBindings": bindings,
        "Memory": application.mem_limit or 0,
        "CpuShares": application.cpu_shares or 0,
        "RestartPolicy": {
            "Name": _RESTART_POLICIES[policy.name],
            "MaximumRetryCount": policy.maximum_retry_count or 0},
        # Docker's init as PID 1 passes the stop signal on: an application
        # that never installed a SIGTERM handler (PID 1 ignores it by
        # default) then stops at once instead of after the stop timeout,
        # which is downtime when the application moves.
        "Init": True if options.init is None else options.init,
    }
    host_config.update(_host_options(options))
    binds = [_bind(paths[volume.name], volume)
             for volume in application.all_volumes()]
    binds.extend(_bind(mount.host_path, mount) for mount in sorted(
        application.host_mounts, key=lambda m: m.mountpoint))
    if binds:
        host_config["Binds"] = binds
    if application.links:
        host_config["Sysctls"] = dict(options.sysctls, **_LINK_SYSCTLS)
    # A named link's host name resolves to its address in /etc/hosts.
    names = sorted({"%s:%s" % (link.alias, link.address)
                    for link in application.links if link.named})
    if names:
        host_config["ExtraHosts"] = list(options.extra_hosts) + names
    labels = dict(options.labels)
    labels[APPLICATION_LABEL] = dumps(application_to_dict(application))
    config = {
        "Image": application.image,
        "Env": ["%s=%s" % item for item in sorted(environment.items())],
        "ExposedPorts": exposed,
        "Labels": labels,
        "HostConfig": host_config,
    }
    config.update(_container_options(options))
    if application.command is not None:
        config["Cmd"] = list(application.command)
    config["Labels"][SPEC_LABEL] = hashlib.sha256(
        dumps(config).encode("utf-8")).hexdigest()
    return config


def docker_restart_policy(application):
    """
    The restart policy Docker itself is given for an application's
    container.

    An application with a volume gets none: Docker would restart its
    container when the node boots, before the node's agent could learn that
    the volume moved to another node meanwhile (a failover) and that this
    copy is stale.  Its own policy is applied by the agent when it starts
    (:mod:`flocker.node._boot`), and stays in the container's label, so
    the node's report shows it as configured.

    :param Application application: The application.
    :return: The :class:`flocker.RestartPolicy` for Docker's ``HostConfig``.
    """
    if application.volume is not None or application.volumes:
        return RestartPolicy()
    return application.restart_policy


@attr.s(frozen=True, slots=True)
class ContainerStatus(object):
    """
    How a container is doing.

    :ivar bool running: Whether it runs.
    :ivar health: Its healthcheck's verdict (``starting``, ``healthy``,
        ``unhealthy``), or ``None`` when it has no healthcheck.
    :ivar exit_code: Its process's exit status once it stopped, else
        ``None``.
    """
    running = attr.ib()
    health = attr.ib(default=None)
    exit_code = attr.ib(default=None)


def _status_from_inspect(inspected):
    """
    :param dict inspected: Docker's ``GET /containers/NAME/json``.
    :return: The :class:`ContainerStatus` it describes.
    """
    state = inspected.get("State") or {}
    running = bool(state.get("Running"))
    health = (state.get("Health") or {}).get("Status") or None
    stopped = not running and state.get("Status") in ("exited", "dead")
    return ContainerStatus(
        running=running, health=health,
        exit_code=state.get("ExitCode") if stopped else None)


@attr.s(frozen=True, slots=True)
class Unit(object):
    """
    One of Flocker's containers as Docker reports it.

    :ivar str name: The application name.
    :ivar Application application: The application the container was created
        from (read back from its label).
    :ivar bool running: Whether the container runs.
    :ivar str container_id: Docker's id of the container.
    :ivar str state: Docker's state word (``running``, ``exited``,
        ``created``, ``restarting``...).
    :ivar str image: The image as Docker reports it.
    :ivar ports: ``PSet`` of :class:`flocker.Port` Docker actually publishes
        (internal → external); empty while the container is not running.
    :ivar binds: ``PMap`` of container path to host path of its bind mounts.
    """
    name = attr.ib()
    application = attr.ib()
    running = attr.ib()
    container_id = attr.ib()
    state = attr.ib()
    image = attr.ib()
    ports = attr.ib(default=pset(), converter=pset)
    binds = attr.ib(default=pmap(), converter=pmap)


class IDockerClient(Interface):
    """
    The Docker operations Flocker's node agent needs, on one node's daemon.
    Every method returns a ``Deferred``; every failure is a
    :class:`DockerError` (or ``ValueError``/``TypeError`` for bad arguments).
    Only containers carrying :data:`APPLICATION_LABEL` are ever changed.
    """

    def list():
        """
        List Flocker's containers, running or not.  A container whose label
        does not describe an application of its name is left out (and
        logged).

        :return: ``Deferred`` firing with a ``PSet`` of :class:`Unit`.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def add(application, volume_mountpoint=None, extra_env=None,
            volume_paths=None):
        """
        Create and start the application's container, named
        ``flocker--<name>``, with its ports published on all the node's
        addresses, its volume bind-mounted, its limits, restart policy,
        environment and command.

        Idempotent: if Flocker's container of that name already runs with
        exactly this configuration nothing changes; a stopped or different
        Flocker container of that name is stopped, deleted and replaced.  If
        starting fails the new container is deleted again.

        :param Application application: What to run.
        :param volume_mountpoint: Host path to bind at
            ``application.volume.mountpoint``; required exactly when the
            application has a volume.
        :param extra_env: Mapping of further environment variables (link
            variables), overriding the application's own.
        :param volume_paths: Mapping of each named volume's name (of
            ``application.volumes``) to the host path to bind at its
            mountpoint; required exactly for those.
        A container of exactly this configuration created by
        :meth:`create` and never started is started (``"started"``).

        :return: ``Deferred`` firing with ``"created"``, ``"replaced"``,
            ``"started"`` or ``"unchanged"``.
        :raises ImageNotFound: If the image is not on the node (checked
            before anything is created).
        :raises AlreadyExists: If a container Flocker did not create has the
            name.
        :raises DockerAPIError: If Docker refuses a step.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def create(application, volume_mountpoint=None, extra_env=None,
               volume_paths=None):
        """
        Create the application's container as :meth:`add` does, without
        starting it: a move creates the new container while the old one
        still runs, and its start (``add`` with the same arguments) then
        only starts it.  Idempotent: a container of exactly this
        configuration that runs, or was created and never started, is
        left as it is; another Flocker container of that name is stopped,
        deleted and replaced.

        :param application: See :meth:`add`, as the other parameters.
        :return: ``Deferred`` firing with ``"created"``, ``"replaced"`` or
            ``"unchanged"``.
        :raises: As :meth:`add`.
        """

    def remove(name):
        """
        Stop and delete the application's container.  Idempotent: nothing
        happens if there is none, and a container of that name Flocker did not
        create is left alone.

        :param str name: Application name.
        :return: ``Deferred`` firing with ``"removed"``, ``"absent"`` or
            ``"foreign"``.
        :raises DockerAPIError: If Docker refuses to stop or delete it.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def stop(name):
        """
        Stop the application's container without deleting it (a move stops
        the old container before its hand-off and deletes it once the new
        one started; see :class:`flocker.node._changes.StopApplication`).
        Idempotent: nothing happens if there is none or it is stopped, and
        a container of that name Flocker did not create is left alone.
        It may answer once the container's processes exited, while Docker
        still takes the container down: the next ``add``, ``create``,
        ``remove`` or ``stop`` of the application waits for that.

        :param str name: Application name.
        :return: ``Deferred`` firing with ``"stopped"``, ``"absent"`` or
            ``"foreign"``.
        :raises DockerAPIError: If Docker refuses to stop it (before its
            processes exited; a failure after that is logged and the
            next ``remove`` stops it again).
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def exists(name):
        """
        :param str name: Application name.
        :return: ``Deferred`` firing with ``True`` if Flocker has a container
            (running or not) for the application.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def image_present(image):
        """
        :param str image: An image reference.
        :return: ``Deferred`` firing with ``True`` if the image is on the
            node.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def list_images():
        """
        :return: ``Deferred`` firing with a ``frozenset`` of the image
            references on the node, as Docker lists them (``REPO:TAG`` and
            ``REPO@DIGEST``; see :func:`flocker.node._images.canonical_image`).
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def pull_image(image, dry_run=False):
        """
        Pull an image from its registry, or, with ``dry_run``, only ask the
        registry whether it has the image (its manifest; nothing is
        downloaded).  An image already on the node is left as it is.

        :param str image: An image reference.
        :param bool dry_run: Only ask.
        :return: ``Deferred`` firing with ``None``.
        :raises PullFailed: If it cannot be pulled.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def logs(name, since=None, tail=None):
        """
        Read the output of the application's container.

        :param str name: Application name.
        :param since: ``None``, or the time stamp (RFC 3339 with nanoseconds,
            as returned) of the last line already read: only later lines
            are returned.
        :param tail: ``None`` for every line, else the number of last lines.
        :return: ``Deferred`` firing with a ``list`` of ``(stamp, stream,
            text)``: the line's time stamp, ``"stdout"`` or ``"stderr"``,
            the text without its newline; oldest first.
        :raises ContainerNotFound: If Flocker has no container for it.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def container_pid(name):
        """
        Find the host process id of the application container's first
        process, whose network namespace the link rules are installed in.

        :param str name: Application name.
        :return: ``Deferred`` firing with the pid, or ``None`` when the
            container is not running.
        :raises ContainerNotFound: If Flocker has no container for it.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def container_status(name):
        """
        Describe how the application's container is doing, for waiting on
        it (``depends_on``).

        :param str name: Application name.
        :return: ``Deferred`` firing with a :class:`ContainerStatus`.
        :raises ContainerNotFound: If Flocker has no container for it.
        :raises DockerUnavailable: If the daemon cannot be reached.
        """

    def api_version():
        """
        The Engine API version spoken with the daemon: the highest both it
        and Flocker support (see :mod:`flocker.node._dockerapi`).

        :return: ``Deferred`` firing with an
            :class:`~flocker.node._dockerapi.APIVersion`.
        :raises DockerUnavailable: If the daemon cannot be reached or has
            no version in common with Flocker.
        """


@implementer(IAgentEndpointFactory)
@attr.s(frozen=True)
class _UNIXSocketEndpointFactory(object):
    """
    Send every request to one Unix socket, whatever the URL's host.
    """
    reactor = attr.ib()
    socket_path = attr.ib()

    def endpointForURI(self, uri):
        return UNIXClientEndpoint(self.reactor, self.socket_path)


# Failures meaning the daemon could not be talked to at all.
_UNAVAILABLE = (ConnectError, ConnectionClosed, ResponseNeverReceived,
                ResponseFailed, RequestTransmissionFailed,
                InternetTimeoutError, CancelledError)


def _unavailable_reason(error, timeout):
    if isinstance(error, ConnectError):
        # osError is the errno; the first argument is its text, e.g. "No
        # such file or directory" or "Permission denied".
        if error.args and error.args[0]:
            return str(error.args[0])
        return error.__class__.__name__
    if isinstance(error, (InternetTimeoutError, CancelledError)):
        return "no answer within %s seconds" % (timeout,)
    if isinstance(error, (ResponseFailed, ResponseNeverReceived,
                          RequestTransmissionFailed)):
        reasons = [r.getErrorMessage() for r in error.reasons]
        return "connection lost (%s)" % ("; ".join(reasons) or "no reason",)
    return "connection lost (%s)" % (error,)


def _run_action(action, coroutine_function, *args):
    """
    Run ``coroutine_function(*args)`` inside eliot ``action``, finishing the
    action when it completes.  Calls made by the coroutine nest under it.
    """
    with action.context():
        d = DeferredContext(Deferred.fromCoroutine(coroutine_function(*args)))
        d.addActionFinish()
    return d.result


@implementer(IDockerClient)
class DockerClient(object):
    """
    :class:`IDockerClient` over the Docker Engine API on a Unix socket, with
    treq and persistent connections.  The API version is negotiated on the
    first request (the unversioned ``GET /version``): the highest version
    both the daemon and Flocker support (:func:`negotiate`); a daemon
    refusing it later (upgraded meanwhile) is asked again.  Request bodies
    are adapted to the version by :func:`request_body`.

    :ivar str socket_path: The daemon's socket.
    :ivar node: Name of the node, used in error messages, or ``None``.
    """

    def __init__(self, reactor, socket_path=DEFAULT_DOCKER_SOCKET, node=None,
                 stop_timeout=10, request_timeout=60.0, http_client=None,
                 exited=None):
        """
        :param reactor: The reactor to run on.
        :param str socket_path: The daemon's Unix socket.
        :param node: Name of the node for error messages (e.g. its address).
        :param int stop_timeout: Seconds Docker waits after ``SIGTERM``
            before killing a container being removed.
        :param float request_timeout: Seconds to wait for any answer
            (a stop waits ``stop_timeout`` longer).
        :param http_client: An object with treq's ``HTTPClient.request``
            signature to use instead of the socket (for tests).
        :param exited: ``None``, or a function of a container's first
            process's pid and the container's id returning a ``Deferred``
            that fires once that process exited, or ``None`` if it cannot
            tell (see :func:`flocker.node._exit.container_exit_watcher`):
            then :meth:`stop` answers as soon as the container's processes
            exited, while Docker still takes it down.
        """
        self._reactor = reactor
        self.socket_path = socket_path
        self.node = node
        self._stop_timeout = stop_timeout
        self._request_timeout = request_timeout
        self._pool = None
        if http_client is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            http_client = treq.client.HTTPClient(Agent.usingEndpointFactory(
                reactor, _UNIXSocketEndpointFactory(reactor, socket_path),
                pool=self._pool))
        self._http = http_client
        self._version = None
        # Container name to ``(id, spec label)`` of the containers this
        # client created without starting them (``create``): their
        # ``add`` starts them straight away, without asking for the name.
        self._created = {}
        self._exited = exited
        # Container name to the ``Deferred`` (never failing) of a Docker
        # stop that :meth:`stop` answered before it ended: what comes next
        # for that container waits for it.
        self._stopping = {}

    def __repr__(self):
        return "<DockerClient unix://%s>" % (self.socket_path,)

    def close(self):
        """
        Close the persistent connections to the daemon.

        :return: ``Deferred`` firing when they are closed.
        """
        if self._pool is None:
            return succeed(None)
        return self._pool.closeCachedConnections()

    def _where(self):
        return _where(self.node, self.socket_path)

    async def _raw_request(self, method, path, params, body, timeout,
                           decode=True):
        """
        :param bool decode: Decode the answer's JSON (else give the bytes
            of a successful answer as they came, such as a log stream).
        :return: ``(status, decoded JSON or None)``.
        """
        kwargs = {}
        if isinstance(body, bytes):
            kwargs["data"] = body
            kwargs["headers"] = {b"Content-Type": [b"application/x-tar"]}
        elif body is not None:
            kwargs["json"] = body
        with DOCKER_API_CALL(method=method, path=path) as action:
            try:
                response = await self._http.request(
                    method, "http://docker" + path, params=params,
                    timeout=timeout, reactor=self._reactor, **kwargs)
                content = await treq.content(response)
            except _UNAVAILABLE as e:
                raise DockerUnavailable(
                    self.socket_path, _unavailable_reason(e, timeout)
                ) from None
            action.add_success_fields(status=response.code)
        if not decode and response.code < 300:
            return response.code, content
        if not content:
            return response.code, None
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, content.decode("utf-8", "replace")

    async def _negotiated(self):
        """
        :return: The negotiated :class:`APIVersion`, asked for (the
            unversioned ``GET /version``) on first use only.
        """
        if self._version is None:
            with DOCKER_NEGOTIATE(socket=self.socket_path) as action:
                status, data = await self._raw_request(
                    "GET", "/version", None, None, self._request_timeout)
                if status != 200 or not isinstance(data, dict):
                    raise _api_error("ask Docker for its version", status,
                                     data)
                try:
                    version = negotiate(data)
                except VersionMismatch as e:
                    raise DockerUnavailable(self.socket_path, str(e))
                action.add_success_fields(api_version=str(version))
                self._version = version
        return self._version

    def api_version(self):
        """
        See :meth:`IDockerClient.api_version`.
        """
        return Deferred.fromCoroutine(self._negotiated())

    async def _request(self, method, path, params=None, body=None,
                       extra_time=0, adapt=None, decode=True):
        """
        One request in the negotiated version.  If the daemon refuses that
        version (it was upgraded or downgraded since), negotiate again and
        send the request once more.

        :param adapt: ``(body, version) -> body`` making the body fit the
            version, or ``None`` to send ``body`` as it is.
        :return: ``(status, decoded JSON or None)``.
        """
        for attempt in (1, 2):
            version = await self._negotiated()
            sent = body if adapt is None else adapt(body, version)
            status, data = await self._raw_request(
                method, version.path(path), params, sent,
                self._request_timeout + extra_time, decode=decode)
            if attempt == 1 and refused_version(status, data):
                self._version = None
                continue
            return status, data

    async def _inspect(self, name):
        """
        :return: Docker's description of the container, or ``None``.
        """
        status, data = await self._request(
            "GET", "/containers/%s/json" % (quote(name, safe=""),))
        if status == 404:
            return None
        if status != 200:
            raise _api_error("inspect container " + name, status, data)
        return data

    async def _image_present(self, image):
        status, data = await self._request(
            "GET", "/images/%s/json" % (quote(image, safe="/:@"),))
        if status == 404:
            return False
        if status != 200:
            raise _api_error("inspect image " + image, status, data)
        return True

    async def _delete(self, container_id, name):
        # force: a restart policy must not bring it back between the stop
        # and the delete; the id makes sure it is still our container.
        status, data = await self._request(
            "DELETE", "/containers/%s" % (container_id,),
            params={"force": "true"})
        if status == 409 and _removal_in_progress(data):
            # Another request (an interrupted deploy's, say) is removing
            # it already: the container is going, so wait until it is gone.
            status, data = await self._request(
                "POST", "/containers/%s/wait" % (container_id,),
                params={"condition": "removed"},
                extra_time=self._stop_timeout)
            if status not in (200, 404):
                raise _api_error("wait for the removal of container " + name,
                                 status, data)
            return
        if status not in (200, 204, 404):
            raise _api_error("delete container " + name, status, data)

    async def _stop(self, container_id, name, timeout=None):
        """
        :param timeout: Seconds the container may take to stop (its
            ``stop_grace_period``), or ``None`` for the client's default.
        """
        timeout = self._stop_timeout if timeout is None else timeout
        status, data = await self._request(
            "POST", "/containers/%s/stop" % (container_id,),
            params={"t": str(timeout)}, extra_time=timeout)
        # 304: already stopped; 404: already gone.
        if status not in (200, 204, 304, 404):
            raise _api_error("stop container " + name, status, data)

    async def _stop_and_delete(self, container_id, name, timeout=None):
        """
        :param timeout: See :meth:`_stop`.
        """
        await self._stop(container_id, name, timeout)
        await self._delete(container_id, name)

    def list(self):
        """
        See :meth:`IDockerClient.list`.
        """
        return _run_action(DOCKER_LIST(socket=self.socket_path), self._list)

    async def _list(self):
        status, data = await self._request(
            "GET", "/containers/json",
            params={"all": "1",
                    "filters": json.dumps({"label": [APPLICATION_LABEL]})})
        if status != 200 or not isinstance(data, list):
            raise _api_error("list containers", status, data)
        units = []
        for summary in data:
            unit = _unit_from_summary(summary)
            if unit is not None:
                units.append(unit)
        current_action().add_success_fields(count=len(units))
        return pset(units)

    def add(self, application, volume_mountpoint=None, extra_env=None,
            volume_paths=None):
        """
        See :meth:`IDockerClient.add`.
        """
        return _run_action(
            DOCKER_ADD(socket=self.socket_path, application=application.name,
                       image=application.image),
            self._add, application, volume_mountpoint, extra_env,
            volume_paths)

    def create(self, application, volume_mountpoint=None, extra_env=None,
               volume_paths=None):
        """
        See :meth:`IDockerClient.create`.
        """
        return _run_action(
            DOCKER_CREATE(socket=self.socket_path,
                          application=application.name,
                          image=application.image),
            self._add, application, volume_mountpoint, extra_env,
            volume_paths, False)

    async def _add(self, application, volume_mountpoint, extra_env,
                   volume_paths, start=True):
        """
        :param start: Whether to start the container (``add``), or only
            create it (``create``).
        """
        await self._stopped(application.name)
        config = container_config(application, volume_mountpoint, extra_env,
                                  volume_paths)
        name = container_name(application.name)
        params = {"name": name}
        if application.options.platform is not None:
            params["platform"] = application.options.platform

        def create():
            return self._request("POST", "/containers/create", params=params,
                                 body=config, adapt=_adapted_body)
        # Created straight away, without asking about the image and the
        # name first: a move's start waits for every call, and Docker's
        # answer says as much (404: no such image, nothing created; 409:
        # the name is taken, and only then is the container looked at).
        spec = config["Labels"][SPEC_LABEL]
        ahead = self._created.pop(name, None)
        if start and ahead is not None and ahead[1] == spec:
            # Started by its id: a container of that id is the one created
            # with this very configuration (404: gone since; then as if it
            # had not been created).
            status, data = await self._request(
                "POST", "/containers/%s/start" % (ahead[0],))
            if status != 404:
                return await self._started(ahead[0], name, "started",
                                           status, data)
        outcome = "created"
        status, data = await create()
        if status == 409:
            existing = await self._inspect(name)
            if existing is not None:
                labels = (existing.get("Config") or {}).get("Labels") or {}
                if APPLICATION_LABEL not in labels:
                    DOCKER_FOREIGN_CONTAINER.log(container=name)
                    raise AlreadyExists(name, existing.get("Id"),
                                        self._where())
                state = existing.get("State") or {}
                same = labels.get(SPEC_LABEL) == spec
                if same and (state.get("Running") or (
                        not start and state.get("Status") == "created")):
                    if not state.get("Running"):
                        self._created[name] = (existing["Id"], spec)
                    current_action().add_success_fields(outcome="unchanged")
                    return "unchanged"
                if same and state.get("Status") == "created":
                    # Created ahead (a move's new container, created while
                    # the old one still ran) and never started: it only
                    # needs its start (its files are in already).
                    return await self._start(existing["Id"], name, "started")
                await self._stop_and_delete(existing["Id"], name,
                                            _stop_timeout(existing))
                outcome = "replaced"
            status, data = await create()
            if status == 409:
                # Created by someone else since the inspect above.
                raise AlreadyExists(name, None, self._where())
        if status == 404:
            raise ImageNotFound(application.image, self._where())
        if status != 201 or not isinstance(data, dict):
            raise _api_error("create container " + name, status, data)
        container_id = data["Id"]
        status, data = 204, None
        if application.files:
            # Into the created container, before its process runs.
            status, data = await self._request(
                "PUT", "/containers/%s/archive" % (container_id,),
                params={"path": "/"}, body=files_archive(application.files))
            if status != 200:
                return await self._failed(
                    container_id, name, _api_error(
                        "put files into container " + name, status, data))
        if not start:
            self._created[name] = (container_id, spec)
            current_action().add_success_fields(outcome=outcome)
            return outcome
        return await self._start(container_id, name, outcome)

    async def _start(self, container_id, name, outcome):
        """
        Start a created container; delete it if it does not start.

        :return: ``outcome``, also added to the current action.
        """
        status, data = await self._request(
            "POST", "/containers/%s/start" % (container_id,))
        return await self._started(container_id, name, outcome, status, data)

    async def _started(self, container_id, name, outcome, status, data):
        """
        Docker's answer to the start of a created container: its deletion
        if it did not start.

        :return: ``outcome``, also added to the current action.
        """
        if status not in (204, 304):
            return await self._failed(container_id, name, _api_error(
                "start container " + name, status, data))
        current_action().add_success_fields(outcome=outcome)
        return outcome

    async def _failed(self, container_id, name, error):
        """
        Delete a container that could not be made ready, and raise
        ``error``.
        """
        # Leave nothing half-created; the failure is what matters to the
        # caller even if this clean-up fails too.
        try:
            await self._delete(container_id, name)
        except DockerError:
            pass
        raise error

    def remove(self, name):
        """
        See :meth:`IDockerClient.remove`.
        """
        return _run_action(
            DOCKER_REMOVE(socket=self.socket_path, application=name),
            self._remove, name)

    async def _remove(self, name):
        await self._stopped(name)
        return await self._flocker_container(name, self._stop_and_delete,
                                             "removed")

    async def _stopped(self, name):
        """
        Wait for the end of a Docker stop of the application's container
        that :meth:`stop` answered before Docker did.
        """
        pending = self._stopping.get(container_name(name))
        if pending is not None:
            await pending

    async def _flocker_container(self, name, operation, done,
                                 inspected=False):
        """
        Apply ``operation`` to the application's container if Flocker
        created it.

        :param operation: Called with the container's id, its name and its
            stop timeout (or, if ``inspected``, with Docker's description of
            the container and its name); returns an awaitable.
        :param done: The outcome once ``operation`` finished.
        :param bool inspected: See ``operation``.
        :return: ``done``, ``"absent"`` or ``"foreign"`` (also added to the
            current action).
        """
        cname = container_name(name)
        existing = await self._inspect(cname)
        if existing is None:
            outcome = "absent"
        elif not _is_flocker(existing):
            DOCKER_FOREIGN_CONTAINER.log(container=cname)
            outcome = "foreign"
        else:
            if inspected:
                await operation(existing, cname)
            else:
                await operation(existing["Id"], cname,
                                _stop_timeout(existing))
            outcome = done
        current_action().add_success_fields(outcome=outcome)
        return outcome

    def stop(self, name):
        """
        See :meth:`IDockerClient.stop`.
        """
        return _run_action(
            DOCKER_STOP(socket=self.socket_path, application=name),
            self._stop_only, name)

    async def _stop_only(self, name):
        current_action().add_success_fields(answered="at once")
        await self._stopped(name)
        return await self._flocker_container(name, self._stop_until_exited,
                                             "stopped", inspected=True)

    async def _stop_until_exited(self, existing, name):
        """
        Stop a container, answering as soon as its processes exited (when
        the exit watch can tell) or else once Docker's stop answered.  A
        stop answered early goes on; its failure is logged, and the
        container's next removal stops it again.

        :param dict existing: Docker's description of the container.
        :param str name: The container's name.
        """
        container_id = existing["Id"]
        state = existing.get("State") or {}
        host = existing.get("HostConfig") or {}
        exited = None
        if (self._exited is not None and state.get("Running") and
                host.get("PidMode", "") in ("", "private")):
            # Watched before the stop is asked for: the pid is still the
            # container's.
            exited = self._exited(state.get("Pid"), container_id)
        stopping = Deferred.fromCoroutine(
            self._stop(container_id, name, _stop_timeout(existing)))
        if exited is None:
            await stopping
            current_action().add_success_fields(answered="stopped")
            return
        first = Deferred()

        def stopped(result):
            if first.called:
                return result
            first.callback(("stopped", result))
            return None

        def gone(_):
            if not first.called:
                first.callback(("exited", None))
        stopping.addBoth(stopped)
        exited.addCallbacks(gone, lambda _: None)
        which, result = await first
        if which == "stopped":
            # Docker answered first, or failed: the container may not have
            # stopped.
            exited.cancel()
            if isinstance(result, Failure):
                result.raiseException()
            current_action().add_success_fields(answered="stopped")
            return
        current_action().add_success_fields(answered="exited")
        stopping.addErrback(write_failure)
        self._stopping[name] = stopping

        def done(_):
            if self._stopping.get(name) is stopping:
                del self._stopping[name]
        stopping.addBoth(done)

    def exists(self, name):
        """
        See :meth:`IDockerClient.exists`.
        """
        return _run_action(
            DOCKER_EXISTS(socket=self.socket_path, application=name),
            self._exists, name)

    async def _exists(self, name):
        existing = await self._inspect(container_name(name))
        present = existing is not None and _is_flocker(existing)
        current_action().add_success_fields(present=present)
        return present

    def image_present(self, image):
        """
        See :meth:`IDockerClient.image_present`.
        """
        return _run_action(
            DOCKER_IMAGE_PRESENT(socket=self.socket_path, image=image),
            self._logged_image_present, image)

    def list_images(self):
        """
        See :meth:`IDockerClient.list_images`.
        """
        return _run_action(DOCKER_LIST_IMAGES(socket=self.socket_path),
                           self._list_images)

    async def _list_images(self):
        status, data = await self._request("GET", "/images/json")
        if status != 200 or not isinstance(data, list):
            raise _api_error("list images", status, data)
        images = set()
        for summary in data:
            for key in ("RepoTags", "RepoDigests"):
                images.update(ref for ref in summary.get(key) or ()
                              if ref and "<none>" not in ref)
        current_action().add_success_fields(count=len(images))
        return frozenset(images)

    def pull_image(self, image, dry_run=False):
        """
        See :meth:`IDockerClient.pull_image`.
        """
        return _run_action(
            DOCKER_PULL_IMAGE(socket=self.socket_path, image=image,
                              dry_run=dry_run),
            self._pull_image, image, dry_run)

    async def _pull_image(self, image, dry_run):
        if await self._image_present(image):
            return None
        if dry_run:
            status, data = await self._request(
                "GET", "/distribution/%s/json" % (quote(image, safe="/:@"),))
            if status != 200:
                raise PullFailed(image, self._where(),
                                 _api_error("", status, data).message)
            return None
        repository, tag = _split_reference(image)
        params = {"fromImage": repository}
        if tag is not None:
            params["tag"] = tag
        # A pull answers 200 at once and streams its progress; a failure
        # part way is an "error" line in that stream.
        status, data = await self._request(
            "POST", "/images/create", params=params,
            extra_time=_PULL_TIME)
        if status != 200:
            raise PullFailed(image, self._where(),
                             _api_error("", status, data).message)
        error = _stream_error(data)
        if error is not None:
            raise PullFailed(image, self._where(), error)
        return None

    def logs(self, name, since=None, tail=None):
        """
        See :meth:`IDockerClient.logs`.
        """
        return _run_action(
            DOCKER_LOGS(socket=self.socket_path, application=name),
            self._logs, name, since, tail)

    async def _logs(self, name, since, tail):
        cname = container_name(name)
        existing = await self._inspect(cname)
        if existing is None or not _is_flocker(existing):
            raise ContainerNotFound(name, self._where())
        params = {"stdout": "1", "stderr": "1", "timestamps": "1"}
        if tail is not None:
            params["tail"] = str(tail)
        if since is not None:
            # Docker's since is in whole seconds (and fractions): lines of
            # that very second come again and are dropped below.
            params["since"] = _stamp_seconds(since)
        status, raw = await self._request(
            "GET", "/containers/%s/logs" % (existing["Id"],), params=params,
            decode=False)
        if status != 200:
            raise _api_error("read the logs of container " + cname, status,
                             raw)
        lines = [line for line in _demultiplex(raw)
                 if since is None or line[0] > since]
        current_action().add_success_fields(lines=len(lines))
        return lines

    async def _logged_image_present(self, image):
        present = await self._image_present(image)
        current_action().add_success_fields(present=present)
        return present

    def container_pid(self, name):
        """
        See :meth:`IDockerClient.container_pid`.
        """
        return _run_action(
            DOCKER_CONTAINER_PID(socket=self.socket_path, application=name),
            self._container_pid, name)

    def container_status(self, name):
        """
        See :meth:`IDockerClient.container_status`.
        """
        return _run_action(
            DOCKER_CONTAINER_STATUS(socket=self.socket_path,
                                    application=name),
            self._container_status, name)

    async def _container_status(self, name):
        existing = await self._inspect(container_name(name))
        if existing is None or not _is_flocker(existing):
            raise ContainerNotFound(name, self._where())
        status = _status_from_inspect(existing)
        current_action().add_success_fields(
            running=status.running, health=status.health,
            exit_code=status.exit_code)
        return status

    async def _container_pid(self, name):
        existing = await self._inspect(container_name(name))
        if existing is None or not _is_flocker(existing):
            raise ContainerNotFound(name, self._where())
        state = existing.get("State") or {}
        pid = state.get("Pid") if state.get("Running") else None
        current_action().add_success_fields(pid=pid or None)
        return pid or None


def _stop_timeout(inspected):
    """
    :return: The container's own stop timeout (its ``stop_grace_period``)
        in seconds, or ``None`` if it has none.
    """
    timeout = (inspected.get("Config") or {}).get("StopTimeout")
    return timeout if isinstance(timeout, int) and timeout >= 0 else None


def _adapted_body(config, version):
    """
    The container-create body for ``version``, logging what it leaves out.

    :raises UnsupportedField: See :func:`request_body`.
    """
    body, dropped = request_body(config, version)
    if dropped:
        DOCKER_FIELDS_DROPPED.log(api_version=str(version),
                                  fields=sorted(dropped))
    return body


def _is_flocker(inspected):
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    return APPLICATION_LABEL in labels


def _removal_in_progress(data):
    """
    :param data: The JSON body of a ``409`` answer to a container delete.
    :return: Whether Docker refused because the container is being removed
        already (its message says so; there is no error code for it).
    """
    message = data.get("message") if isinstance(data, dict) else None
    return isinstance(message, str) and "already in progress" in message


def _api_error(operation, status, data):
    if isinstance(data, dict) and "message" in data:
        message = data["message"]
    elif data:
        message = str(data)
    else:
        message = "no message"
    return DockerAPIError(operation, status, message)


#: Seconds a pull may take beyond the usual request timeout.
_PULL_TIME = 1800


def _split_reference(image):
    """
    :return: ``(repository, tag or None)`` of an image reference; a digest
        stays part of the repository (``fromImage`` takes it whole).
    """
    if "@" in image:
        return image, None
    head, _, last = image.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (head + "/" + name if head else name), tag
    return image, None


def _stream_error(data):
    """
    :param data: The body of a streamed answer: decoded JSON (one line) or
        text of JSON lines.
    :return: The text of its last ``{"error": ...}`` line, or ``None``.
    """
    if isinstance(data, dict):
        documents = [data]
    else:
        documents = []
        for line in str(data or "").splitlines():
            try:
                documents.append(json.loads(line))
            except ValueError:
                continue
    errors = [d.get("error") or (d.get("errorDetail") or {}).get("message")
              for d in documents if isinstance(d, dict)]
    errors = [e for e in errors if e]
    return errors[-1] if errors else None


def _stamp_seconds(stamp):
    """
    :param str stamp: An RFC 3339 time stamp as Docker writes them
        (``2026-12-06T09:01:02.123456789Z``).
    :return: Its whole seconds since the epoch, as text, for ``since``.
    """
    whole = stamp.split(".", 1)[0].rstrip("Z")
    return str(calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")))


def _demultiplex(raw):
    """
    Split Docker's log stream into lines.

    :param bytes raw: The body of ``GET /containers/ID/logs`` with
        ``timestamps=1``: frames of an 8-byte header (stream 1 stdout, 2
        stderr; 4-byte big-endian length) and payload for a container
        without a terminal, or the plain text for one with.
    :return: ``list`` of ``(stamp, stream, text)``.
    """
    chunks = []
    framed = len(raw) >= 8 and raw[0] in (0, 1, 2) and raw[1:4] == b"\0\0\0"
    if framed:
        offset = 0
        while offset + 8 <= len(raw):
            kind = raw[offset]
            size = int.from_bytes(raw[offset + 4:offset + 8], "big")
            chunks.append(("stderr" if kind == 2 else "stdout",
                           raw[offset + 8:offset + 8 + size]))
            offset += 8 + size
    else:
        chunks.append(("stdout", raw))
    lines = []
    for stream, payload in chunks:
        for line in payload.decode("utf-8", "replace").splitlines():
            stamp, _, text = line.partition(" ")
            lines.append((stamp, stream, text))
    return lines


def _unit_from_summary(summary):
    """
    :param dict summary: One entry of ``GET /containers/json``.
    :return: A :class:`Unit`, or ``None`` (logged) if the label does not
        describe an application of the container's name.
    """
    names = [n[1:] for n in summary.get("Names") or ()
             if n.startswith("/") and "/" not in n[1:]]
    cname = names[0] if names else summary.get("Id", "?")
    label = (summary.get("Labels") or {}).get(APPLICATION_LABEL)
    try:
        application = application_from_dict(json.loads(label))
    except (ValueError, TypeError, SerializationError) as e:
        DOCKER_UNREADABLE_LABEL.log(container=cname, reason=str(e))
        return None
    if cname != container_name(application.name):
        DOCKER_UNREADABLE_LABEL.log(
            container=cname,
            reason="label names application %s" % (application.name,))
        return None
    ports = set()
    for entry in summary.get("Ports") or ():
        # Docker lists a published port once per address family; an address
        # is kept only where the application asked for one.
        protocol = entry.get("Type")
        if protocol in ("tcp", "udp") and entry.get("PublicPort"):
            asked = {(p.internal, p.external, p.protocol): p.host_ip
                     for p in application.ports}
            key = (entry["PrivatePort"], entry["PublicPort"], protocol)
            ports.add(Port(internal=key[0], external=key[1],
                           protocol=protocol, host_ip=asked.get(key, "")))
    binds = {mount["Destination"]: mount["Source"]
             for mount in summary.get("Mounts") or ()
             if mount.get("Type") == "bind"}
    state = summary.get("State", "unknown")
    return Unit(name=application.name, application=application,
                running=(state == "running"), container_id=summary["Id"],
                state=state, image=summary.get("Image", ""),
                ports=ports, binds=binds)


@attr.s
class _FakeContainer(object):
    """
    A container of :class:`FakeDockerClient`; ``config`` is ``None`` for a
    container Flocker did not create.
    """
    container_id = attr.ib()
    name = attr.ib()
    config = attr.ib()
    running = attr.ib()
    pid = attr.ib()
    host_ports = attr.ib()
    health = attr.ib(default=None)
    exit_code = attr.ib(default=None)
    files = attr.ib(default=attr.Factory(dict))
    output = attr.ib(default=attr.Factory(list))
    #: Created by ``create`` and never started.
    created = attr.ib(default=False)


def _initial_health(config):
    """
    :return: A new container's health as Docker first reports it:
        ``"starting"`` when its create body has a healthcheck that runs,
        else ``None`` (the fake does not know the image's own).
    """
    test = (config.get("Healthcheck") or {}).get("Test") or ["NONE"]
    return None if test[0] == "NONE" else "starting"


def _synchronously(function, *args):
    try:
        return succeed(function(*args))
    except Exception:
        return fail()


@implementer(IDockerClient)
class FakeDockerClient(object):
    """
    :class:`IDockerClient` in memory, for tests of the code that uses Docker.
    Every ``Deferred`` it returns has already fired.  It refuses what the
    real daemon refuses in the shared tests: a missing image, a contested
    name, a memory limit under :data:`MINIMUM_MEMORY_LIMIT` (at create) and a
    host port already published by a running container (at start).

    Besides the interface it has helpers to arrange and observe a situation:
    :meth:`add_foreign_container`, :meth:`stop_container`,
    :meth:`container_id`, :meth:`inspect`, :meth:`read_file`.

    :ivar images: ``set`` of image references present on the fake node.
    :ivar registry: ``set`` of image references a pull can fetch.
    :ivar bool daemon_running: When false every method fails with
        :class:`DockerUnavailable`, as with a stopped daemon.
    """

    def __init__(self, images=(), node=None,
                 socket_path=DEFAULT_DOCKER_SOCKET, daemon_running=True,
                 version=MAXIMUM_API_VERSION, registry=()):
        """
        :param images: Image references present at first.
        :param node: Name of the node for error messages.
        :param str socket_path: Socket named in error messages.
        :param bool daemon_running: See :ivar:`daemon_running`.
        :param APIVersion version: The API version the fake daemon was
            negotiated to; bodies it cannot express are refused as the
            real client refuses them.
        """
        self.version = version
        self.images = set(images)
        self.registry = set(registry)
        self.node = node
        self.socket_path = socket_path
        self.daemon_running = daemon_running
        self._containers = {}
        self._serial = 0

    def _where(self):
        return _where(self.node, self.socket_path)

    def _new_id(self):
        self._serial += 1
        return hashlib.sha256(b"%d" % (self._serial,)).hexdigest()

    def _check_daemon(self):
        if not self.daemon_running:
            raise DockerUnavailable(self.socket_path,
                                    "Connection refused (daemon stopped)")

    def add_foreign_container(self, name, host_ports=(), running=True):
        """
        Make a container Flocker did not create.

        :param str name: Its container name (e.g. ``flocker--web``).
        :param host_ports: Host ports it publishes while running.
        :param bool running: Whether it runs.
        :return: Its container id.
        """
        container = _FakeContainer(
            container_id=self._new_id(), name=name, config=None,
            running=running, pid=self._serial + 1000,
            host_ports=frozenset((port, "tcp") for port in host_ports))
        self._containers[name] = container
        return container.container_id

    def stop_container(self, name, exit_code=0):
        """
        Stop a container as if its process had exited.

        :param str name: Its container name.
        :param int exit_code: The status it exited with.
        """
        self._containers[name].running = False
        self._containers[name].exit_code = exit_code

    def set_health(self, name, health):
        """
        Give a container's healthcheck a verdict, as Docker would after
        running it.  A container created with a healthcheck starts as
        ``"starting"``.

        :param str name: Its container name.
        :param str health: ``starting``, ``healthy`` or ``unhealthy``.
        """
        self._containers[name].health = health

    def read_file(self, name, path):
        """
        :param str name: A container name.
        :param str path: An absolute path in the container.
        :return: The ``bytes`` Flocker put there before the container
            started, or ``None``.
        """
        return self._containers[name].files.get(path)

    def container_id(self, name):
        """
        :param str name: A container name.
        :return: The container's id, or ``None`` if there is none.
        """
        container = self._containers.get(name)
        return None if container is None else container.container_id

    def inspect(self, name):
        """
        Describe a container the way Docker's ``GET /containers/NAME/json``
        does, for the fields Flocker sets.

        :param str name: A container name.
        :return: A ``dict`` with ``Id``, ``Name``, ``State`` (``Running``,
            ``Pid``), ``Config`` (``Image``, ``Env``, ``Cmd``, ``Labels``,
            ``ExposedPorts``) and ``HostConfig``; ``None`` if there is no
            such container.
        """
        container = self._containers.get(name)
        if container is None:
            return None
        config = dict(container.config or {"Labels": {}})
        host_config = config.pop("HostConfig", {})
        return {
            "Id": container.container_id,
            "Name": "/" + name,
            "State": {"Running": container.running,
                      "Status": ("running" if container.running else
                                 "created" if container.created else
                                 "exited"),
                      "Pid": container.pid if container.running else 0},
            "Config": config,
            "HostConfig": host_config,
        }

    def _check_ports(self, name, host_ports):
        """
        :raise DockerAPIError: As Docker's start does, if another running
            container publishes one of ``host_ports``.
        """
        clash = host_ports & self._ports_in_use()
        if clash:
            raise DockerAPIError(
                "start container " + name, 500,
                "Bind for 0.0.0.0:%d failed: port is already allocated" % (
                    min(clash)[0],))

    def _ports_in_use(self):
        return {port for container in self._containers.values()
                if container.running for port in container.host_ports}

    def list(self):
        """
        See :meth:`IDockerClient.list`.
        """
        return _synchronously(self._list)

    def _list(self):
        self._check_daemon()
        units = []
        for container in self._containers.values():
            if container.config is None:
                continue
            labels = container.config["Labels"]
            application = application_from_dict(
                json.loads(labels[APPLICATION_LABEL]))
            host = container.config["HostConfig"]
            ports = ()
            if container.running:
                ports = [Port(internal=int(key.split("/")[0]),
                              external=int(binding["HostPort"]),
                              protocol=key.split("/")[1],
                              host_ip=binding["HostIp"])
                         for key, bindings in host["PortBindings"].items()
                         for binding in bindings]
            # HOST:CONTAINER[:OPTIONS]; neither path holds a colon.
            binds = {bind.split(":")[1]: bind.split(":")[0]
                     for bind in host.get("Binds", ())}
            units.append(Unit(
                name=application.name, application=application,
                running=container.running,
                container_id=container.container_id,
                state=("running" if container.running else
                       "created" if container.created else "exited"),
                image=container.config["Image"], ports=ports, binds=binds))
        return pset(units)

    def add(self, application, volume_mountpoint=None, extra_env=None,
            volume_paths=None):
        """
        See :meth:`IDockerClient.add`.
        """
        return _synchronously(self._add, application, volume_mountpoint,
                              extra_env, volume_paths)

    def create(self, application, volume_mountpoint=None, extra_env=None,
               volume_paths=None):
        """
        See :meth:`IDockerClient.create`.
        """
        return _synchronously(self._add, application, volume_mountpoint,
                              extra_env, volume_paths, False)

    def _add(self, application, volume_mountpoint, extra_env, volume_paths,
             start=True):
        self._check_daemon()
        config = container_config(application, volume_mountpoint, extra_env,
                                  volume_paths)
        request_body(config, self.version)
        name = container_name(application.name)
        if application.image not in self.images:
            raise ImageNotFound(application.image, self._where())
        outcome = "created"
        existing = self._containers.get(name)
        if existing is not None:
            if existing.config is None:
                raise AlreadyExists(name, existing.container_id,
                                    self._where())
            same = existing.config == config
            if same and (existing.running or (
                    not start and existing.created)):
                return "unchanged"
            if same and existing.created:
                self._check_ports(name, existing.host_ports)
                existing.running, existing.created = True, False
                return "started"
            del self._containers[name]
            outcome = "replaced"
        if 0 < config["HostConfig"]["Memory"] < MINIMUM_MEMORY_LIMIT:
            raise DockerAPIError("create container " + name, 400,
                                 "Minimum memory limit allowed is 6MB")
        host_ports = frozenset((port.external, port.protocol)
                               for port in application.ports)
        if start:
            self._check_ports(name, host_ports)
        # What Docker would unpack from the archive, checked the same way.
        files_archive(application.files)
        self._containers[name] = _FakeContainer(
            container_id=self._new_id(), name=name, config=config,
            running=start, pid=self._serial + 1000, host_ports=host_ports,
            files={f.mountpoint: f.content for f in application.files},
            health=_initial_health(config), created=not start)
        return outcome

    def remove(self, name):
        """
        See :meth:`IDockerClient.remove`.
        """
        return _synchronously(self._remove, name)

    def _remove(self, name):
        return self._flocker_container(name, self._delete, "removed")

    def _delete(self, container):
        del self._containers[container.name]

    def stop(self, name):
        """
        See :meth:`IDockerClient.stop`.
        """
        return _synchronously(self._flocker_container, name,
                              self._stop_container, "stopped")

    def _stop_container(self, container):
        if container.running:
            container.running = False
            container.exit_code = 0

    def _flocker_container(self, name, operation, done):
        """
        Apply ``operation`` to the application's container if Flocker
        created it.

        :return: ``done``, ``"absent"`` or ``"foreign"``.
        """
        self._check_daemon()
        existing = self._containers.get(container_name(name))
        if existing is None:
            return "absent"
        if existing.config is None:
            return "foreign"
        operation(existing)
        return done

    def exists(self, name):
        """
        See :meth:`IDockerClient.exists`.
        """
        return _synchronously(self._exists, name)

    def _exists(self, name):
        self._check_daemon()
        existing = self._containers.get(container_name(name))
        return existing is not None and existing.config is not None

    def image_present(self, image):
        """
        See :meth:`IDockerClient.image_present`.
        """
        return _synchronously(self._image_present, image)

    def _image_present(self, image):
        self._check_daemon()
        return image in self.images

    def container_pid(self, name):
        """
        See :meth:`IDockerClient.container_pid`.
        """
        return _synchronously(self._container_pid, name)

    def _container_pid(self, name):
        self._check_daemon()
        existing = self._containers.get(container_name(name))
        if existing is None or existing.config is None:
            raise ContainerNotFound(name, self._where())
        return existing.pid if existing.running else None

    def container_status(self, name):
        """
        See :meth:`IDockerClient.container_status`.
        """
        return _synchronously(self._container_status, name)

    def _container_status(self, name):
        self._check_daemon()
        existing = self._containers.get(container_name(name))
        if existing is None or existing.config is None:
            raise ContainerNotFound(name, self._where())
        return ContainerStatus(
            running=existing.running, health=existing.health,
            exit_code=None if existing.running else existing.exit_code)

    def api_version(self):
        """
        See :meth:`IDockerClient.api_version`.
        """
        return _synchronously(self._api_version)

    def _api_version(self):
        self._check_daemon()
        return self.version

    def list_images(self):
        """
        See :meth:`IDockerClient.list_images`.
        """
        return _synchronously(self._list_images)

    def _list_images(self):
        self._check_daemon()
        return frozenset(canonical_image(image) for image in self.images)

    def pull_image(self, image, dry_run=False):
        """
        See :meth:`IDockerClient.pull_image`.
        """
        return _synchronously(self._pull_image, image, dry_run)

    def _pull_image(self, image, dry_run):
        self._check_daemon()
        if image in self.images:
            return None
        if image not in self.registry:
            raise PullFailed(image, self._where(),
                             "manifest for %s not found" % (image,))
        if not dry_run:
            self.images.add(image)
        return None

    def write_output(self, name, text, stream="stdout"):
        """
        Make the application's container write a line, as its process
        would.

        :param str name: Application name.
        :param str text: The line, without newline.
        :param str stream: ``"stdout"`` or ``"stderr"``.
        """
        container = self._containers[container_name(name)]
        self._serial += 1
        stamp = "2026-01-01T00:00:00.%09dZ" % (self._serial,)
        container.output.append((stamp, stream, text))

    def logs(self, name, since=None, tail=None):
        """
        See :meth:`IDockerClient.logs`.
        """
        return _synchronously(self._logs, name, since, tail)

    def _logs(self, name, since, tail):
        self._check_daemon()
        existing = self._containers.get(container_name(name))
        if existing is None or existing.config is None:
            raise ContainerNotFound(name, self._where())
        lines = [line for line in existing.output
                 if since is None or line[0] > since]
        if tail is not None:
            lines = lines[max(len(lines) - tail, 0):]
        return lines
