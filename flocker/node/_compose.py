"""
The compose/fig format of the application configuration: a mapping of
service names to services at the top of the file, or under a ``services:``
key, as the compose specification describes it.  ``docs/compose.rst`` says
what is accepted, noted and refused.

Before any service is read the file's variables are substituted (see
:mod:`flocker.node._interpolate`), with values from the deploy's
environment and a ``.env`` file beside the compose file (the environment
wins).  Keys starting with ``x-`` are extensions and are ignored.
"""

import os
import re
from functools import partial

import attr
import yaml

from .._model import (
    Application, ContainerOptions, Dependency,
    HealthCheck, Link, LogConfig, Port, RestartPolicy, Ulimit, is_safe_name,
)
from ._compose_volumes import (
    _compose_files, _compose_volumes, _declarations,
)
from ._compose_values import (
    _boolean, _cpus, _duration, _non_negative, _pairs, _port_range,
    _seconds, _split_port, _strings,
)
from ._draft import (
    _command, _cpu_shares, _image, _mem_limit,
    _native_environment, _read_fields, _set_environment, _start_draft,
)
from ._interpolate import InterpolationError, interpolate, parse_env_file
from ._yaml import (
    _BOOL, _LARGEST_NUMBER, _NULL, _STR, _check_alias, _check_name,
    _decimal, _did_you_mean, _integer, _mapping, _model, _positive, _quote,
    _require, _sequence, _size, _text, _unknown_keys,
)

__all__ = []


@attr.s
class _Project(object):
    """
    What reading a compose file needs besides the file: where it is, and
    the variables its values may use.

    :ivar directory: The compose file's directory (relative ``env_file``
        paths start there), or ``None`` for the current directory.
    :ivar variables: ``dict`` of variable name to value (the deploy's
        environment over the ``.env`` file).
    :ivar name: The project's name: the file's ``name:``, else its
        directory's name made a safe name as compose makes it, or ``None``.
    :ivar volumes: ``dict`` of the top-level ``volumes`` (see
        :mod:`flocker.node._compose_volumes`).
    :ivar configs: ``dict`` of the top-level ``configs``.
    :ivar secrets: ``dict`` of the top-level ``secrets``.
    """
    directory = attr.ib()
    variables = attr.ib()
    name = attr.ib(default=None)
    volumes = attr.ib(default=attr.Factory(dict))
    configs = attr.ib(default=attr.Factory(dict))
    secrets = attr.ib(default=attr.Factory(dict))

    def path(self, relative):
        """
        :return: ``relative`` joined to the compose file's directory.
        """
        if self.directory is None:
            return relative
        return os.path.join(self.directory, relative)


def _read_env_file(report, path, node, variables):
    """
    Read an env file.

    :param report: The compose file's report.
    :param str path: The env file.
    :param node: The node naming it, where a missing file is reported, or
        ``None`` for the ``.env`` file (not reported when missing).
    :param variables: Values its substitutions may use.
    :return: ``dict`` of name to value, or ``None`` after reporting.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        if node is not None:
            report.at(node, "env_file %s cannot be read: %s" % (
                _quote(os.path.basename(path), 200), e.strerror or e))
        return None
    env_report = report.about(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        env_report.at_position(line, 1, "the file is not UTF-8 text")
        return None
    try:
        values, _ = parse_env_file(text, variables)
    except InterpolationError as e:
        line, column = e.offset
        env_report.at_position(line, column, e.message)
        return None
    return values


def _project(report, directory, environ):
    """
    :param directory: The compose file's directory, or ``None`` (then no
        ``.env`` file is read).
    :param environ: The deploy's environment.
    :return: The :class:`_Project`.
    """
    variables = {}
    if directory is not None:
        dotenv = _read_env_file(report, os.path.join(directory, ".env"),
                                None, environ)
        variables.update(dotenv or {})
    variables.update(environ)
    return _Project(directory=directory, variables=variables,
                    name=_directory_project(directory))


def _directory_project(directory):
    """
    :return: The project name compose gives a file in ``directory``: its
        name in lower case without characters other than letters, digits,
        ``_`` and ``-``, and not starting with ``_`` or ``-``; ``None`` when
        nothing is left or there is no directory.
    """
    if directory is None:
        return None
    base = os.path.basename(os.path.normpath(directory)).lower()
    name = re.sub(r"[^a-z0-9_-]", "", base).lstrip("_-")[:63]
    return name if is_safe_name(name) else None


def _interpolate_tree(report, node, variables, unset):
    """
    Substitute the variables in every scalar value under ``node`` (not in
    keys), in place.  A plain scalar is typed again from its new text, so
    ``mem_limit: ${MEM}`` reads as a number when ``MEM`` is one.

    :param unset: ``dict`` of unset variable name to the first node using
        it, filled in.
    """
    if isinstance(node, yaml.ScalarNode):
        if "$" not in node.value:
            return
        missing = set()
        try:
            value = interpolate(node.value, variables, missing)
        except InterpolationError as e:
            report.at(node, "%s in %s" % (e.message, _quote(node.value)))
            return
        for name in missing:
            unset.setdefault(name, node)
        node.value = value
        if node.style is None and value:
            node.tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
        elif node.style is None:
            # A substitution that gives nothing is an empty string, as in
            # compose, not YAML's null.
            node.tag = _STR
        return
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _interpolate_tree(report, item, variables, unset)
        return
    for key, value in node.value:
        _interpolate_tree(report, value, variables, unset)


_RESOLVER = yaml.resolver.Resolver()


# ---------------------------------------------------------------------------
# Service keys

def _compose_environment(report, node, draft, project):
    """
    ``environment`` as a mapping or as a list of ``NAME=value`` strings.  A
    name without a value takes the deploy's value of that variable (its
    environment or ``.env``); without one it is left out, with a note.
    """
    draft.fields["environment"] = {}
    if isinstance(node, yaml.MappingNode):
        for name, key_node, value_node in _mapping(
                report, node, "environment") or ():
            if _is_null(value_node):
                _inherit(report, draft, name, key_node, project)
                continue
            value = _text(report, value_node,
                          "environment variable %s" % (name,))
            if value is not None:
                _set_environment(report, draft, name, key_node, value,
                                 value_node)
        return
    if not isinstance(node, yaml.SequenceNode):
        _native_environment(report, node, draft)
        return
    for item in node.value:
        text = _text(report, item, "environment entry")
        if text is None:
            continue
        name, equals, value = text.partition("=")
        if not equals:
            _inherit(report, draft, name, item, project)
            continue
        _set_environment(report, draft, name, item, value, item)


def _is_null(node):
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _inherit(report, draft, name, node, project):
    """
    Give variable ``name`` the deploy's value of it, or note that it has
    none.
    """
    if _model(report, node, lambda: Application(
            name="probe", image="probe", environment={name: ""})) is None:
        return
    if name in project.variables:
        _set_environment(report, draft, name, node,
                         project.variables[name], node)
    else:
        report.note(node, "environment variable %s has no value here or in "
                    "the deploy's environment or .env; it is left unset" % (
                        name,))


def _compose_env_file(report, node, draft, project):
    """
    ``env_file``: a path, a list of paths, or a list of ``{path,
    required}``; relative to the compose file.  Read at once; the values are
    laid under ``environment`` once the service is read.
    """
    entries = []
    if isinstance(node, yaml.ScalarNode):
        text = _text(report, node, "env_file")
        if text is not None:
            entries.append((text, True, node))
    else:
        for item in _sequence(report, node, "env_file") or ():
            if isinstance(item, yaml.MappingNode):
                fields = _mapping(report, item, "env_file entry") or []
                _unknown_keys(report, fields, ("path", "required", "format"),
                              "an env_file entry")
                if not _require(report, fields, ("path",), item,
                                "the env_file entry"):
                    continue
                values = {key: value for key, _, value in fields}
                path = _text(report, values["path"], "env_file path")
                required = True
                if "required" in values:
                    required = _boolean(report, values["required"],
                                        "required")
                if path is not None and required is not None:
                    entries.append((path, required, values["path"]))
                continue
            text = _text(report, item, "env_file")
            if text is not None:
                entries.append((text, True, item))
    for path, required, item in entries:
        full = project.path(path)
        if not required and not os.path.exists(full):
            continue
        values = _read_env_file(report, full, item, project.variables)
        if values is not None:
            draft.env_files.update(values)


def _merge_env_files(report, draft):
    """
    Lay the ``env_file`` values under ``environment`` (which wins).
    """
    environment = draft.fields.setdefault("environment", {})
    for name, value in draft.env_files.items():
        if name not in environment:
            _set_environment(report, draft, name, draft.key_node, value,
                             draft.key_node)



def _compose_ports(report, node, draft):
    """
    ``ports`` in every compose form: ``"HOST:CONTAINER"``,
    ``"IP:HOST:CONTAINER"``, ranges (``"8000-8002:8000-8002"``), a
    ``/udp`` or ``/tcp`` suffix, and the long syntax (``target``,
    ``published``, ``host_ip``, ``protocol``).  A port without a host port
    (``"80"``) is only exposed to the project's services, with a note.
    Short forms are read as the text written, so YAML 1.1's base-60
    numbers (``22:22``) mean what they show.
    """
    for item in _sequence(report, node, "ports") or ():
        if isinstance(item, yaml.MappingNode):
            spec = _long_port(report, item)
        else:
            text = _text(report, item, "port")
            if text is None:
                continue
            spec = _split_port(text)
            if spec is None:
                report.at(item, 'port %s: write "HOST:CONTAINER", '
                          '"IP:HOST:CONTAINER" or "CONTAINER", each with an '
                          'optional /udp' % (_quote(text),))
                continue
        if spec is not None:
            _add_ports(report, item, draft, *spec)


def _long_port(report, item):
    """
    :return: ``(ip, host, container, protocol)`` texts of a long-syntax
        port, or ``None`` after reporting.
    """
    fields = _mapping(report, item, "a port") or []
    _unknown_keys(report, fields, ("target", "published", "host_ip",
                                   "protocol", "mode", "name",
                                   "app_protocol"), "a port")
    if not _require(report, fields, ("target",), item, "the port"):
        return None
    values = {key: value for key, _, value in fields}
    texts = {}
    for key in ("target", "published", "host_ip", "protocol"):
        # The others may be left empty; the target is the port itself.
        if key in values and (key == "target" or not _is_null(values[key])):
            texts[key] = _text(report, values[key], key)
            if texts[key] is None:
                return None
    return (texts.get("host_ip", ""), texts.get("published", ""),
            texts["target"], texts.get("protocol", "tcp"))


def _port_text(ip, host, container):
    return ":".join(part for part in (ip, host, container) if part)


def _add_ports(report, item, draft, ip, host, container, protocol):
    """
    Add the ports one compose port entry describes.
    """
    if protocol not in ("tcp", "udp"):
        report.at(item, "port protocol %s is not supported: use tcp or udp"
                  % (_quote(protocol),))
        return
    containers = _port_range(container)
    hosts = _port_range(host) if host else []
    if containers is None or hosts is None:
        report.at(item, "port %s: %s is not a port in 1-65535 or a range "
                  "such as 8000-8010" % (_quote(_port_text(ip, host, container)),
                                         _quote(container if containers is
                                                None else host, 20)))
        return
    if not hosts:
        draft.options.setdefault("expose", set()).update(
            (port, protocol) for port in containers)
        report.note(item, "port %s has no host port (Docker would pick one "
                    "at random); it is reachable by the project's services "
                    "only: write HOST:%s to publish it" % (
                        container, container))
        return
    if len(hosts) != len(containers):
        report.at(item, "port range %s:%s: the host and container ranges "
                  "must be the same length" % (host, container))
        return
    for external, internal in zip(hosts, containers):
        port = _model(report, item, lambda: Port(
            internal=internal, external=external, protocol=protocol,
            host_ip=ip))
        if port is not None:
            draft.ports.append((port, item))
    if ip and ip not in ("0.0.0.0", "::"):
        report.note(item, "port %s is published on %s only: it is not "
                    "reachable through the other nodes" % (host, ip))


def _compose_expose(report, node, draft):
    """
    ``expose``: container ports (``80``, ``"80/udp"``, ``"8000-8010"``)
    the project's services reach without publishing them.
    """
    exposed = draft.options.setdefault("expose", set())
    for item in _sequence(report, node, "expose") or ():
        text = _text(report, item, "exposed port")
        if text is None:
            continue
        body, slash, protocol = text.partition("/")
        ports = _port_range(body)
        if ports is None or (slash and protocol not in ("tcp", "udp")):
            report.at(item, "exposed port %s: write PORT, PORT/udp or a "
                      "range such as 8000-8010" % (_quote(text),))
            continue
        exposed.update((port, protocol or "tcp") for port in ports)


def _compose_links(report, node, draft):
    """
    ``links`` as ``"service"`` or ``"service:alias"``.  They are resolved
    once every service is read; see :func:`_resolve_links`.
    """
    for item in _sequence(report, node, "links") or ():
        text = _text(report, item, "link")
        if text is None:
            continue
        parts = text.split(":")
        if len(parts) > 2 or not all(parts):
            report.at(item, 'link %s: write "SERVICE" or "SERVICE:ALIAS"'
                      % (_quote(text),))
            continue
        target, alias = parts[0], parts[-1]
        if _check_alias(report, item, alias, "link alias"):
            draft.link_requests.append((target, alias, item))


_COMPOSE_RESTART = {"no": "never", "always": "always",
                    "on-failure": "on-failure",
                    "unless-stopped": "unless-stopped"}


def _compose_restart(report, node, draft):
    """
    ``restart``: ``no``, ``always``, ``on-failure``, ``on-failure:N`` or
    ``unless-stopped``.  An unquoted ``no`` is a YAML boolean; it is read
    as the text written.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
        text = node.value
    else:
        text = _text(report, node, "restart")
        if text is None:
            return
    name, colon, count = text.partition(":")
    if name not in _COMPOSE_RESTART or (colon and name != "on-failure"):
        report.at(node, 'restart %s is not supported: use "no", "always", '
                  '"on-failure", "on-failure:N" or "unless-stopped"' % (
                      _quote(text),))
        return
    maximum = None
    if colon:
        # ASCII digits only: str.isdigit() also accepts "²", which int()
        # refuses.
        maximum = _decimal(count) if re.match(r"\A[0-9]+\Z", count) else 0
        if maximum is None:
            report.at(node, "restart %s: the retry count is too large (at "
                      "most %d)" % (_quote(text), _LARGEST_NUMBER))
            return
        if maximum < 1:
            report.at(node, "restart %s: the retry count must be a positive "
                      "integer" % (_quote(text),))
            return
    draft.fields["restart_policy"] = RestartPolicy(
        name=_COMPOSE_RESTART[name], maximum_retry_count=maximum)


def _option(reader, field, what=None):
    """
    :return: A service key reader storing ``reader(report, node, what)``
        as container option ``field`` (when not ``None``).
    """
    def read(report, node, draft):
        value = reader(report, node, what or field)
        if value is not None:
            draft.options[field] = value
    return read


def _one_text(report, node, what):
    # An empty value ("${PLATFORM:-}") leaves the setting to Docker.
    if isinstance(node, yaml.ScalarNode) and node.value == "" and \
            node.tag == _STR:
        return None
    return _text(report, node, what)


def _arguments(report, node, what):
    """
    An argument vector: a list of strings, or one string split as compose
    splits it (like a POSIX shell, but no shell runs it).
    """
    holder = _Holder()
    _command(report, node, holder, what)
    return holder.fields.get("command")


@attr.s
class _Holder(object):
    """
    Where :func:`_command` puts what it read, for keys other than
    ``command``.
    """
    fields = attr.ib(default=attr.Factory(dict))


def _text_list(report, node, what):
    found = _strings(report, node, what)
    return None if found is None else [text for text, _ in found]


def _text_map(report, node, what):
    found = _pairs(report, node, what)
    return None if found is None else {key: value for key, value, _ in found}


def _group_list(report, node, what):
    # Groups are names or numbers; a number is read as written.
    return _text_list(report, node, what)


def _extra_hosts(report, node, what):
    """
    ``extra_hosts``: ``"host:address"`` or ``"host=address"`` entries, or
    a mapping of host to address; Docker takes ``host:address``.
    """
    if isinstance(node, yaml.MappingNode):
        found = _pairs(report, node, what)
        return None if found is None else [
            "%s:%s" % (key, value) for key, value, _ in found]
    result = []
    for text, item in _strings(report, node, what, single=False) or ():
        separator = "=" if "=" in text else ":"
        host, found, address = text.partition(separator)
        if not host or not found or not address:
            report.at(item, "extra host %s: write HOST:ADDRESS" % (
                _quote(text),))
            continue
        result.append("%s:%s" % (host, address.strip("[]")))
    return result


def _tmpfs(report, node, what):
    """
    ``tmpfs``: a path or a list of ``path[:options]``.
    """
    result = {}
    for text, item in _strings(report, node, what) or ():
        path, _, options = text.partition(":")
        if not path.startswith("/"):
            report.at(item, "tmpfs %s must be an absolute path" % (
                _quote(text),))
            continue
        result[path] = options
    return result


def _ulimits(report, node, what):
    """
    ``ulimits``: name to a number (soft and hard) or ``{soft, hard}``.
    """
    result = []
    for name, key_node, value in _mapping(report, node, what) or ():
        if isinstance(value, yaml.MappingNode):
            fields = _mapping(report, value, "ulimit %s" % (name,)) or []
            _unknown_keys(report, fields, ("soft", "hard"),
                          "ulimit %s" % (name,))
            if not _require(report, fields, ("soft", "hard"), value,
                            "ulimit %s" % (name,)):
                continue
            limits = {key: _integer(report, item, "ulimit %s %s" % (
                name, key)) for key, _, item in fields}
            soft, hard = limits.get("soft"), limits.get("hard")
        else:
            soft = hard = _integer(report, value, "ulimit %s" % (name,))
        if soft is None or hard is None:
            continue
        ulimit = _model(report, value, lambda: Ulimit(
            name=name, soft=soft, hard=hard))
        if ulimit is not None:
            result.append(ulimit)
    return sorted(result, key=lambda u: u.name)


def _logging(report, node, what):
    """
    ``logging``: ``{driver, options}``.
    """
    fields = _mapping(report, node, what)
    if fields is None:
        return None
    _unknown_keys(report, fields, ("driver", "options"), "logging")
    values = {key: value for key, _, value in fields}
    driver = "json-file"
    if "driver" in values:
        driver = _text(report, values["driver"], "logging driver")
    options = {}
    if "options" in values:
        options = _text_map(report, values["options"], "logging options")
    if driver is None or options is None:
        return None
    return _model(report, node, lambda: LogConfig(driver=driver,
                                                  options=options))


_HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period",
                "start_interval", "disable")


def _healthcheck(report, node, what):
    """
    ``healthcheck``: ``test`` (a string run by the container's shell, or a
    list starting with ``CMD``, ``CMD-SHELL`` or ``NONE``), durations
    ``interval``, ``timeout``, ``start_period``, ``start_interval``,
    ``retries``, and ``disable``.
    """
    fields = _mapping(report, node, what)
    if fields is None:
        return None
    _unknown_keys(report, fields, _HEALTH_KEYS, "healthcheck")
    values = {key: value for key, _, value in fields}
    settings = {}
    before = report.count()
    if "disable" in values and _boolean(report, values["disable"],
                                        "disable"):
        return HealthCheck(test=["NONE"])
    if "test" in values:
        test = values["test"]
        if isinstance(test, yaml.SequenceNode):
            words = [_text(report, item, "healthcheck test")
                     for item in test.value]
            if None in words:
                return None
            if not words or words[0] not in ("CMD", "CMD-SHELL", "NONE"):
                report.at(test, "healthcheck test must start with CMD, "
                          "CMD-SHELL or NONE")
                return None
            settings["test"] = words
        else:
            text = _text(report, test, "healthcheck test")
            if text is None:
                return None
            settings["test"] = ["CMD-SHELL", text]
    else:
        report.at(node, "healthcheck has no test (write disable: true to "
                  "turn the image's check off)")
        return None
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in values:
            settings[key] = _duration(report, values[key],
                                      "healthcheck " + key)
    if "retries" in values:
        settings["retries"] = _positive(report, values["retries"],
                                        "healthcheck retries")
    if report.count() != before:
        return None
    return _model(report, node, lambda: HealthCheck(**settings))


def _compose_cpus(report, node, draft):
    value = _cpus(report, node, "cpus")
    if value is not None:
        draft.options["nano_cpus"] = value


def _compose_memory(report, node, draft):
    _mem_limit(report, node, draft)


_DEPLOY_KEYS = ("resources", "restart_policy", "replicas", "mode",
                "placement", "labels", "update_config", "rollback_config",
                "endpoint_mode")


def _compose_deploy(report, node, draft):
    """
    ``deploy``: ``resources.limits`` (``memory``, ``cpus``, ``pids``) and
    ``resources.reservations`` (``memory``; ``cpus`` noted: Docker enforces
    no CPU reservation outside a swarm), ``restart_policy``; one replica.
    Placement is the deployment file's, so ``placement`` is noted.
    """
    fields = _mapping(report, node, "deploy")
    if fields is None:
        return
    _unknown_keys(report, fields, _DEPLOY_KEYS, "deploy")
    for key, key_node, value in fields:
        if key == "resources":
            _deploy_resources(report, value, draft)
        elif key == "replicas":
            count = _non_negative(report, value, "replicas")
            if count is not None and count != 1:
                report.at(value, "replicas: Flocker runs one container per "
                          "application; give each copy its own service")
        elif key == "restart_policy":
            _deploy_restart(report, value, draft)
        elif key in ("placement", "mode", "update_config",
                     "rollback_config", "endpoint_mode", "labels"):
            report.note(key_node, "deploy.%s is ignored: the deployment "
                        "file places applications" % (key,))


def _deploy_resources(report, node, draft):
    fields = _mapping(report, node, "deploy.resources") or []
    _unknown_keys(report, fields, ("limits", "reservations"),
                  "deploy.resources")
    for key, _, value in fields:
        items = _mapping(report, value, "deploy.resources." + key) or []
        _unknown_keys(report, items, ("memory", "cpus", "pids", "devices",
                                      "generic_resources"),
                      "deploy.resources." + key)
        for name, name_node, item in items:
            where = "deploy.resources.%s.%s" % (key, name)
            if name in ("devices", "generic_resources"):
                report.at(name_node, "%s: devices are not supported (a "
                          "container that moves cannot take a node's "
                          "devices with it)" % (where,))
            elif name == "memory":
                size = _size(report, item, where)
                if size is not None:
                    if key == "limits":
                        draft.fields["mem_limit"] = size
                    else:
                        draft.options["mem_reservation"] = size
            elif name == "cpus":
                cpus = _cpus(report, item, where)
                if cpus is not None and key == "limits":
                    draft.options["nano_cpus"] = cpus
                elif cpus is not None:
                    report.note(name_node, "%s is not enforced: Docker "
                                "reserves CPUs only in a swarm" % (where,))
            elif name == "pids":
                pids = _positive(report, item, where)
                if pids is not None and key == "limits":
                    draft.options["pids_limit"] = pids


_DEPLOY_RESTART = {"none": "never", "on-failure": "on-failure",
                   "any": "always"}


def _deploy_restart(report, node, draft):
    fields = _mapping(report, node, "deploy.restart_policy") or []
    _unknown_keys(report, fields, ("condition", "max_attempts", "delay",
                                   "window"), "deploy.restart_policy")
    values = {key: value for key, _, value in fields}
    name = "always"
    if "condition" in values:
        condition = _text(report, values["condition"], "condition")
        if condition not in _DEPLOY_RESTART:
            if condition is not None:
                report.at(values["condition"], 'condition %s is not "none", '
                          '"on-failure" or "any"' % (_quote(condition),))
            return
        name = _DEPLOY_RESTART[condition]
    maximum = None
    if "max_attempts" in values and name == "on-failure":
        maximum = _positive(report, values["max_attempts"], "max_attempts")
    draft.fields["restart_policy"] = RestartPolicy(
        name=name, maximum_retry_count=maximum)


#: Keys of a service's entry for one network: only ``aliases`` has an
#: effect (the others place the container on a network of one node).
_NETWORK_KEYS = ("aliases", "ipv4_address", "ipv6_address",
                 "link_local_ips", "mac_address", "priority", "gw_priority",
                 "driver_opts", "interface_name")


def _compose_networks(report, node, draft):
    """
    A service's ``networks``: a list of network names, or a mapping of
    network name to ``null`` or its settings, of which ``aliases`` (further
    names the service answers to, host names such as ``xmpp.meet.jitsi``)
    are kept.
    """
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _text(report, item, "network name")
        return
    aliases = draft.options.setdefault("aliases", {})
    for network, _, settings in _mapping(report, node, "networks",
                                         empty_ok=True) or ():
        if _is_null(settings):
            continue
        fields = _mapping(report, settings, "network %s" % (network,),
                          empty_ok=True) or []
        _unknown_keys(report, fields, _NETWORK_KEYS, "network %s" % (
            network,))
        for key, _, value in fields:
            if key != "aliases":
                continue
            for item in _sequence(report, value, "aliases") or ():
                alias = _text(report, item, "network alias")
                if alias is not None and _check_name(
                        report, item, alias, "network alias"):
                    aliases.setdefault(alias, item)


def _compose_container_name(report, node, draft):
    name = _text(report, node, "container_name")
    if name is not None and _check_name(report, node, name,
                                        "container_name"):
        draft.options["container_name"] = name


_CONDITIONS = ("service_started", "service_healthy",
               "service_completed_successfully")


def _compose_depends_on(report, node, draft):
    """
    ``depends_on``: a list of service names, or a mapping of service name
    to ``{condition, required, restart}``.  Checked against the other
    services once all are read (see :func:`_check_dependencies`).
    """
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            name = _text(report, item, "depends_on entry")
            if name is not None:
                draft.dependencies.append(
                    (None, name, "service_started", True, item))
        return
    for name, key_node, value in _mapping(report, node, "depends_on") or ():
        condition, required = "service_started", True
        if not _is_null(value):
            fields = _mapping(report, value, "depends_on %s" % (name,))
            if fields is None:
                continue
            _unknown_keys(report, fields, ("condition", "required",
                                           "restart"),
                          "depends_on %s" % (name,))
            for key, _, item in fields:
                if key == "condition":
                    condition = _text(report, item, "condition")
                    if condition is not None and condition not in _CONDITIONS:
                        report.at(item, "condition %s is not one of %s%s" % (
                            _quote(condition), ", ".join(_CONDITIONS),
                            _did_you_mean(condition, _CONDITIONS)))
                        condition = None
                elif key == "required":
                    required = _boolean(report, item, "required")
            if condition is None or required is None:
                continue
        draft.dependencies.append((None, name, condition, required, key_node))


_NETWORK_MODES = {
    "host": "shares the node's network, which does not move with the "
            "container and clashes with Flocker's routing",
    "none": "leaves the container without a network, so its ports and "
            "links cannot work",
}


def _compose_network_mode(report, node, draft):
    mode = _text(report, node, "network_mode")
    if mode is None or mode in ("bridge", "default"):
        return
    for prefix in ("service:", "container:"):
        if mode.startswith(prefix):
            report.at(node, "network_mode %s is not supported: it joins "
                      "another container's network, which may run on "
                      "another node; service names resolve across nodes "
                      "without it" % (_quote(mode),))
            return
    report.at(node, "network_mode %s is not supported: it %s" % (
        _quote(mode), _NETWORK_MODES.get(
            mode, "names a network of one node")))


def _compose_devices(report, node, draft):
    report.at(node, "devices are not supported: a container that moves "
              "cannot take a node's devices with it")


def _compose_build(report, node, draft):
    draft.has_build = node


def _note(message):
    """
    :return: A service key reader that accepts anything and notes
        ``message`` (said once per file for each key, naming the services).
    """
    def read(report, node, draft):
        draft.noted.append(message)
    return read


def _refuse(message):
    """
    :return: A service key reader refusing the key with ``message``.
    """
    def read(report, node, draft):
        report.at(node, message)
    return read


#: Service keys accepted without effect, each with the one-line note
#: ``--check`` prints once per file.
_NOTED_KEYS = {
    "networks": "networks are ignored but for their aliases: a project's "
                "services share one name space, and every service name "
                "(and alias) resolves on every node",
    "profiles": "profiles are ignored: the deployment file decides what "
                "runs",
    "pull_policy": "pull_policy is ignored: a node pulls an image it lacks",
    "scale": "scale is ignored: Flocker runs one container per application",
    "attach": "attach is ignored: flocker-deploy --logs shows the output "
              "of any application",
    "develop": "develop is ignored: it serves compose's watch mode",
}

#: Service keys refused, with why.
_REFUSED_KEYS = {
    "devices": "devices are not supported: a container that moves cannot "
               "take a node's devices with it",
    "extends": "extends is not supported: write the service out (YAML "
               "anchors and <<: merges can share its keys)",
    "external_links": "external_links are not supported: they name "
                      "containers of one node; use links to services",
    "volumes_from": "volumes_from is not supported: mount a named volume "
                    "in each service that shares it",
}


def _readers(project):
    """
    :return: The reader of each supported service key.
    """
    return {
        "image": _image,
        "command": _command,
        "entrypoint": _option(_arguments, "entrypoint"),
        "environment": partial(_compose_environment, project=project),
        "env_file": partial(_compose_env_file, project=project),
        "ports": _compose_ports,
        "expose": _compose_expose,
        "links": _compose_links,
        "volumes": partial(_compose_volumes, project=project),
        "configs": partial(_compose_files("config"), project=project),
        "secrets": partial(_compose_files("secret"), project=project),
        "mem_limit": _mem_limit,
        "mem_reservation": _option(_size, "mem_reservation"),
        "cpus": _compose_cpus,
        "cpu_shares": _cpu_shares,
        "restart": _compose_restart,
        "user": _option(_one_text, "user"),
        "working_dir": _option(_one_text, "working_dir"),
        "hostname": _option(_one_text, "hostname"),
        "labels": _option(_text_map, "labels"),
        "cap_add": _option(_text_list, "cap_add"),
        "cap_drop": _option(_text_list, "cap_drop"),
        "read_only": _option(_boolean, "read_only"),
        "tmpfs": _option(_tmpfs, "tmpfs"),
        "shm_size": _option(_size, "shm_size"),
        "ulimits": _option(_ulimits, "ulimits"),
        "sysctls": _option(_text_map, "sysctls"),
        "stop_signal": _option(_one_text, "stop_signal"),
        "stop_grace_period": _option(_seconds, "stop_grace_period"),
        "init": _option(_boolean, "init"),
        "tty": _option(_boolean, "tty"),
        "stdin_open": _option(_boolean, "stdin_open"),
        "dns": _option(_text_list, "dns"),
        "dns_search": _option(_text_list, "dns_search"),
        "extra_hosts": _option(_extra_hosts, "extra_hosts"),
        "security_opt": _option(_text_list, "security_opt"),
        "pids_limit": _option(_positive, "pids_limit"),
        "logging": _option(_logging, "logging"),
        "privileged": _option(_boolean, "privileged"),
        "runtime": _option(_one_text, "runtime"),
        "platform": _option(_one_text, "platform"),
        "group_add": _option(_group_list, "group_add"),
        "deploy": _compose_deploy,
        "healthcheck": _option(_healthcheck, "healthcheck"),
        "container_name": _compose_container_name,
        "networks": _compose_networks,
        "depends_on": _compose_depends_on,
        "network_mode": _compose_network_mode,
        "build": _compose_build,
    }


def _compose_service(report, name, key_node, node, project, noted):
    """
    Read one compose service as a Flocker application.

    :param noted: ``dict`` of noted key to ``(first key node, [service
        names])``, filled in.
    :return: A :class:`_Draft`.
    """
    draft, items = _start_draft(report, name, key_node, node, "service")
    if items is None:
        return draft
    readers = _readers(project)
    known = set(readers) | set(_NOTED_KEYS) | set(_REFUSED_KEYS)
    for key, key_node_, value in items:
        if key.startswith("x-"):
            continue
        if key in _NOTED_KEYS:
            noted.setdefault(key, (key_node_, []))[1].append(name)
        elif key in _REFUSED_KEYS:
            report.at(key_node_, "%s (service %s)" % (_REFUSED_KEYS[key],
                                                      name))
        elif key not in readers:
            report.at(key_node_, "%s is not supported (service %s)%s" % (
                _quote(key), name, _did_you_mean(key, known)))
    _read_fields(report, items, readers, draft)
    _merge_env_files(report, draft)
    present = {key for key, _, _ in items}
    if draft.has_build is not None:
        if "image" in present:
            noted.setdefault("build", (draft.has_build, []))[1].append(name)
        else:
            report.at(draft.has_build, "service %s has build but no image: "
                      "Flocker does not build images; build and push the "
                      "image to a registry your nodes can pull from, and "
                      "name it in image" % (name,))
    else:
        _require(report, items, ("image",), key_node, "service %s" % (name,))
    if report.count() == draft.errors_before and draft.options:
        options = dict(draft.options)
        if "expose" in options:
            options["expose"] = frozenset(options["expose"])
        if "aliases" in options:
            options["aliases"] = list(options["aliases"])
        draft.fields["options"] = _model(
            report, key_node, lambda: ContainerOptions(**options))
    draft.errors_after = report.count()
    return draft


_NOTED_TOP = {
    "version": "version is ignored: compose files need none",
    "networks": "networks are ignored: a project's services share one name "
                "space, and every service name resolves on every node",
}


def _project_name(report, node, project):
    """
    Read the top-level ``name``: the project's name.
    """
    name = _text(report, node, "name")
    if name is None or not _check_name(report, node, name, "project name"):
        return
    project.name = name
    report.note(node, "name: the project is %s; its deploys leave other "
                "projects' applications alone" % (name,))


def _compose_applications(report, items, root, project):
    """
    Read a compose/fig file's top-level ``items``: services at the top, or
    under ``services`` (next to ``version``, ``name``, ``networks``,
    ``volumes`` and ``x-`` extensions).

    :param _Project project: Where the file is and its variables; its
        ``name`` is set from the file's ``name:``.
    :return: List of :class:`_Draft`.
    """
    unset = {}
    _interpolate_tree(report, root, project.variables, unset)
    for variable, node in sorted(unset.items(),
                                 key=lambda item: item[1].start_mark.line):
        report.note(node, "variable %s is not set (in the environment or "
                    ".env); it is read as an empty string" % (variable,))
    items = _mapping(report, root, "the application configuration") or []
    if any(key == "services" for key, _, _ in items):
        services = []
        for key, key_node, value in items:
            if key == "services":
                services = _mapping(report, value, "services",
                                    empty_ok=True) or []
            elif key == "name":
                _project_name(report, value, project)
            elif key in _NOTED_TOP:
                if key != "networks":
                    _text(report, value, key)
                report.note(key_node, _NOTED_TOP[key])
            elif key in ("volumes", "configs", "secrets"):
                setattr(project, key, _declarations(report, value, key[:-1]))
            elif not key.startswith("x-"):
                report.at(key_node, "top-level %s is not supported in a "
                          "compose file%s" % (_quote(key), _did_you_mean(
                              key, ("services", "volumes", "networks",
                                    "version", "name", "configs",
                                    "secrets"))))
        items = services
    noted = {}
    drafts = [_compose_service(report, name, key_node, value, project,
                               noted)
              for name, key_node, value in items
              if not name.startswith("x-")]
    for key, (node, names) in sorted(noted.items()):
        message = (_NOTED_KEYS[key] if key != "build" else
                   "build is ignored beside image: the image is pulled, not "
                   "built")
        report.note(node, "%s (service%s %s)" % (
            message, "" if len(names) == 1 else "s", ", ".join(names)))
    _check_dependencies(report, drafts)
    _check_aliases(report, drafts)
    return drafts


def _check_aliases(report, drafts):
    """
    Check that each network alias names one service: not another service
    (by its name or ``container_name``), and not given by two services.
    """
    names = {}
    for draft in drafts:
        names[draft.name] = draft.name
        container_name = draft.options.get("container_name")
        if container_name is not None:
            names.setdefault(container_name, draft.name)
    given = {}
    for draft in drafts:
        for alias, node in sorted(draft.options.get("aliases", {}).items()):
            owner = names.get(alias, given.get(alias))
            if owner is None:
                given[alias] = draft.name
            elif owner != draft.name:
                report.at(node, "network alias %s of service %s already "
                          "names service %s: a name reaches one service" % (
                              alias, draft.name, owner))


def _check_dependencies(report, drafts):
    """
    Turn each service's ``depends_on`` entries into :class:`Dependency`
    values: the service must exist and the dependencies must not form a
    cycle.
    """
    by_name = {draft.name: draft for draft in drafts}
    for draft in drafts:
        dependencies = []
        for _, name, condition, required, node in draft.dependencies:
            if name not in by_name:
                report.at(node, "depends_on undefined service %s%s" % (
                    _quote(name), _did_you_mean(name, by_name)))
                continue
            if name == draft.name:
                report.at(node, "service %s depends on itself" % (name,))
                continue
            dependency = _model(report, node, lambda: Dependency(
                name=name, condition=condition, required=required))
            if dependency is not None:
                dependencies.append(dependency)
            if condition == "service_healthy" and not _has_check(
                    by_name[name]):
                report.at(node, "depends_on %s with condition "
                          "service_healthy, but %s has no healthcheck" % (
                              name, name))
        if dependencies:
            draft.fields["depends_on"] = dependencies
    cycle = _find_cycle({draft.name: [name for _, name, _, _, _ in
                                      draft.dependencies if name in by_name]
                         for draft in drafts})
    if cycle:
        first = by_name[cycle[0]]
        node = [n for _, name, _, _, n in first.dependencies
                if name == cycle[1]][0]
        report.at(node, "depends_on makes a cycle: %s" % (
            " -> ".join(cycle),))


def _has_check(draft):
    # An image may bring its own healthcheck: only a disabled one is
    # known to be missing.
    check = draft.options.get("healthcheck")
    return check is None or not check.disabled


def _find_cycle(graph):
    """
    :param graph: ``dict`` of name to the names it depends on.
    :return: A cycle as a list of names whose first and last are equal, or
        ``None``.
    """
    state = {}
    for start in sorted(graph):
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        if state.get(start):
            continue
        state[start] = "open"
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[name] = "done"
                stack.pop()
                path.pop()
                continue
            if state.get(child) == "open":
                return path[path.index(child):] + [child]
            if state.get(child) is None:
                state[child] = "open"
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def _resolve_links(report, drafts):
    """
    Turn compose links into Flocker links.

    A compose link to service X (alias A, default X) becomes one
    :class:`Link` per TCP port X publishes: ``local_port`` is X's internal port
    and ``remote_port`` X's external port, so the linking container reaches X
    on the port X itself listens on, through the cluster's routing.
    """
    by_name = {draft.name: draft for draft in drafts}
    for draft in drafts:
        for target, alias, node in draft.link_requests:
            if target not in by_name:
                report.at(node, "link to undefined service %s%s" % (
                    _quote(target), _did_you_mean(target, by_name)))
                continue
            # A service that publishes no port is reached by its name
            # alone, which resolves on every node; an alias of it is kept
            # for the names to resolve it too (see flocker.node._names).
            ports = list(by_name[target].ports)
            if not ports and alias != target:
                options = draft.fields.get("options", ContainerOptions())
                if options is not None:
                    draft.fields["options"] = attr.evolve(
                        options, link_aliases=options.link_aliases.set(
                            alias, target))
            for port, _ in sorted(ports, key=lambda p: (p[0].external,
                                                        p[0].protocol)):
                draft.links.append(
                    (Link(local_port=port.internal,
                          remote_port=port.external, alias=alias,
                          protocol=port.protocol),
                     node, node))


