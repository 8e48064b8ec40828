"""
Parsing of Flocker's two configuration files into a
:class:`flocker._model.Deployment`, and writing a deployment back out.

The *application configuration* says what each application is.  It comes in
two formats:

* Flocker's native format::

      version: 1
      applications:
        web:
          image: example/web:1.0
          command: ["gunicorn", "app:main"]   # or a string, split by shlex
          environment: {DEBUG: "0"}
          ports: [{internal: 80, external: 8080}]
          volume: {mountpoint: /var/lib/web, maximum_size: 1G}
          volumes: [{name: uploads, mountpoint: /srv/uploads, read_only: false,
                     maximum_size: 2G, external: false}]
          links: [{local_port: 5432, remote_port: 5432, alias: db}]
          mem_limit: 512M
          cpu_shares: 512
          restart_policy: {name: on-failure, maximum_retry_count: 3}

* The compose/fig format: a mapping of service names to services at the top
  of the file, or under a ``services:`` key.  Supported service keys are
  ``image``, ``command``, ``environment``, ``ports``, ``links``, ``volumes``,
  ``mem_limit``, ``cpu_shares`` and ``restart``; anything else is refused by
  name.  See :func:`_compose_service` for how each key maps onto the model.

A file is in the native format when it has an ``applications`` key or a
scalar ``version`` key without ``services`` (a fig file's top-level values
are all service mappings, so a scalar ``version`` can only mean native).

The *deployment configuration* says where each application runs::

    version: 1
    nodes:
      192.0.2.1: [web, db]
      node2.example.com: [cache]
    standby:                      # optional: see flocker.node._standby_config
      web: {nodes: [node2.example.com], every: 2s}

The YAML reading with marks lives in :mod:`flocker.node._yaml`, the readers
both application formats share in :mod:`flocker.node._draft` and the compose
format in :mod:`flocker.node._compose`; this module reads the native format
and the deployment file, cross-checks them and writes the native format.
"""

import ipaddress
import os
import re

import yaml

from .._model import (
    RESTART_POLICY_NAMES, Application, AttachedVolume, Deployment, Link, Node,
    Port, RestartPolicy,
)
from .._serialize import volume_to_dict
from ._compose import _compose_applications, _project, _resolve_links
from ._compose_merge import merge_override
from ._standby_config import _read_standbys, _standbys_to_native
from ._draft import (
    _command, _cpu_shares, _image, _mem_limit, _mountpoint,
    _native_environment, _read_fields, _start_draft,
)
from ._yaml import (
    _STR, ConfigurationError, ConfigurationErrors, ConfigurationNote,
    _Report, _check_alias, _check_name, _compose, _did_you_mean, _flag, _mapping, _model,
    _port, _positive,
    _quote, _require, _sequence, _size, _text, _unknown_keys, _version,
)

__all__ = [
    "ConfigurationError", "ConfigurationErrors", "ConfigurationNote",
    "load_configuration", "load_deployment", "parse_configuration",
    "deployment_to_yaml",
]


def _native_ports(report, node, draft):
    for item in _sequence(report, node, "ports") or ():
        fields = _mapping(report, item, "a port")
        if fields is None:
            continue
        _unknown_keys(report, fields, ("internal", "external"), "a port")
        if not _require(report, fields, ("internal", "external"), item,
                        "the port"):
            continue
        values = {key: _port(report, value, "%s port" % (key,))
                  for key, _, value in fields
                  if key in ("internal", "external")}
        if None not in values.values():
            port = _model(report, item, lambda: Port(**values))
            if port is not None:
                draft.ports.append((port, item))


def _native_volume(report, node, draft):
    fields = _mapping(report, node, "volume")
    if fields is None:
        return
    _unknown_keys(report, fields, ("mountpoint", "maximum_size"), "volume")
    if not _require(report, fields, ("mountpoint",), node, "the volume"):
        return
    values = dict(maximum_size=None)
    before = report.count()
    for key, _, value in fields:
        if key == "mountpoint":
            values["mountpoint"] = _mountpoint(report, value)
        elif key == "maximum_size":
            values["maximum_size"] = _size(report, value, "maximum_size")
    if report.count() == before:
        draft.fields["volume"] = _model(
            report, node, lambda: AttachedVolume(**values))


_VOLUME_KEYS = ("name", "mountpoint", "maximum_size", "read_only",
                "external")


def _native_volumes(report, node, draft):
    """
    Read ``volumes``: a list of named volumes, each
    ``{name, mountpoint, maximum_size, read_only, external}`` (name and
    mountpoint required).  They are checked against each other and the
    application's own ``volume:`` in :func:`_check_applications`.
    """
    volumes = []
    for item in _sequence(report, node, "volumes") or ():
        fields = _mapping(report, item, "a volume")
        if fields is None:
            continue
        _unknown_keys(report, fields, _VOLUME_KEYS, "a volume")
        if not _require(report, fields, ("name", "mountpoint"), item,
                        "the volume"):
            continue
        values = {}
        before = report.count()
        for key, _, value in fields:
            if key == "name":
                name = _text(report, value, "volume name")
                if name is not None and _check_name(report, value, name,
                                                    "volume name"):
                    values["name"] = name
            elif key == "mountpoint":
                values["mountpoint"] = _mountpoint(report, value)
            elif key == "maximum_size":
                values["maximum_size"] = _size(report, value, "maximum_size")
            elif key in ("read_only", "external"):
                values[key] = _flag(report, value, key)
        if report.count() == before:
            volume = _model(report, item, lambda: AttachedVolume(**values))
            if volume is not None:
                volumes.append((volume, item))
    draft.volumes.extend(volumes)


def _native_links(report, node, draft):
    keys = ("local_port", "remote_port", "alias")
    for item in _sequence(report, node, "links") or ():
        fields = _mapping(report, item, "a link")
        if fields is None:
            continue
        _unknown_keys(report, fields, keys, "a link")
        if not _require(report, fields, keys, item, "the link"):
            continue
        values, nodes = {}, {}
        for key, _, value in fields:
            if key == "alias":
                alias = _text(report, value, "alias")
                if alias is not None and _check_alias(report, value, alias,
                                                      "alias"):
                    values[key] = alias
            elif key in keys:
                values[key] = _port(report, value, key.replace("_", " "))
            nodes[key] = value
        if None not in values.values() and len(values) == 3:
            link = _model(report, item, lambda: Link(**values))
            if link is not None:
                draft.links.append(
                    (link, nodes["local_port"], nodes["remote_port"]))


def _native_restart_policy(report, node, draft):
    fields = _mapping(report, node, "restart_policy")
    if fields is None:
        return
    _unknown_keys(report, fields, ("name", "maximum_retry_count"),
                  "restart_policy")
    if not _require(report, fields, ("name",), node, "the restart policy"):
        return
    values = {}
    for key, _, value in fields:
        if key == "name":
            values["name"] = _text(report, value, "restart policy name")
            if values["name"] is not None and values["name"] not in (
                    RESTART_POLICY_NAMES):
                report.at(value, 'restart policy %s is not one of %s%s' % (
                    _quote(values["name"]), ", ".join(
                        '"%s"' % (name,) for name in
                        sorted(RESTART_POLICY_NAMES)),
                    _did_you_mean(values["name"], RESTART_POLICY_NAMES)))
                return
        elif key == "maximum_retry_count":
            values[key] = _positive(report, value, "maximum_retry_count")
    if values.get("maximum_retry_count") is not None and (
            values.get("name") != "on-failure"):
        report.at(node, "maximum_retry_count is only allowed with the "
                  "on-failure restart policy")
        return
    if None not in values.values():
        draft.fields["restart_policy"] = _model(
            report, node, lambda: RestartPolicy(**values))



def _native_application(report, name, key_node, node):
    """
    Read one application of the native format.

    :return: A :class:`_Draft`, or ``None`` if ``node`` is not a mapping.
    """
    draft, items = _start_draft(report, name, key_node, node, "application")
    if items is None:
        return draft
    readers = {
        "image": _image,
        "command": _command,
        "environment": _native_environment,
        "ports": _native_ports,
        "volume": _native_volume,
        "volumes": _native_volumes,
        "links": _native_links,
        "mem_limit": _mem_limit,
        "cpu_shares": _cpu_shares,
        "restart_policy": _native_restart_policy,
    }
    _unknown_keys(report, items, readers, "application %s" % (name,))
    _require(report, items, ("image",), key_node, "application %s" % (name,))
    _read_fields(report, items, readers, draft)
    draft.errors_after = report.count()
    return draft


def _native_applications(report, items, root):
    """
    Read a native application file's top-level ``items``.

    :return: List of :class:`_Draft`.
    """
    _unknown_keys(report, items, ("version", "applications"),
                  "the application configuration")
    _version(report, items, root)
    if not _require(report, items, ("applications",), root,
                    "the application configuration"):
        return []
    node = [value for key, _, value in items if key == "applications"][0]
    applications = _mapping(report, node, "applications", empty_ok=True)
    return [_native_application(report, name, key_node, value)
            for name, key_node, value in applications or ()]


def _protocol_suffix(port):
    return "" if port.protocol == "tcp" else "/" + port.protocol


def _check_volumes(report, draft):
    """
    Report a named volume of ``draft`` that repeats a name or a mountpoint
    of another of its volumes (its own ``volume:`` included).
    """
    names, mountpoints = {}, {}
    own = draft.fields.get("volume")
    if own is not None:
        names[draft.name] = mountpoints[own.mountpoint] = None
    for volume, item in draft.volumes:
        for seen, key, what in ((names, volume.name, "volume name"),
                                (mountpoints, volume.mountpoint,
                                 "mountpoint")):
            if key in seen:
                where = seen[key]
                report.at(item, "%s %s is already used by %s" % (
                    what, key, "the application's own volume"
                    if where is None else "the volume at line %d" % (
                        where.start_mark.line + 1,)))
            else:
                seen[key] = item


def _check_applications(report, drafts):
    """
    The checks across applications: an external port belongs to one
    application in the whole cluster; an application uses an internal port
    and a link local port once; a link's remote port is some application's
    external port.

    A link to a port nobody publishes is not reported while some port
    could not be read: it may be that one.
    """
    complete_ports = all(draft.ports_read for draft in drafts)
    for draft in drafts:
        _check_volumes(report, draft)
    externals = {}
    for draft in drafts:
        internals = {}
        for port, node in draft.ports:
            key = (port.external, port.protocol)
            if key in externals:
                owner, first = externals[key]
                report.at(node, "external port %d%s is already used by %s "
                          "(line %d); external ports are cluster-wide" % (
                              port.external, _protocol_suffix(port), owner,
                              first.start_mark.line + 1))
            else:
                externals[key] = (draft.name, node)
            if (port.internal, port.protocol) in internals:
                report.at(node, "internal port %d%s of %s is published twice"
                          % (port.internal, _protocol_suffix(port),
                             draft.name))
            internals[(port.internal, port.protocol)] = node
    for draft in drafts:
        local_ports = {}
        for link, local_node, remote_node in draft.links:
            key = (link.local_port, link.protocol)
            if key in local_ports:
                report.at(local_node, "link local port %d of %s is already "
                          "used by another link (line %d)" % (
                              link.local_port, draft.name,
                              local_ports[key].start_mark.line + 1))
            local_ports[key] = local_node
            if ((link.remote_port, link.protocol) not in externals
                    and complete_ports):
                report.at(remote_node, "link to port %d: no application "
                          "publishes external port %d" % (
                              link.remote_port, link.remote_port))


def _read_applications(report, text, directory=None, environ=None,
                       override=None):
    """
    Read an application file in either format.

    :param directory: The file's directory, where a compose file's ``.env``
        and relative ``env_file`` paths are; ``None`` reads no ``.env``.
    :param environ: The variables a compose file may use, or ``None``.
    :param override: ``None``, or ``(text, path)`` of a compose override
        file merged into a compose file (see
        :mod:`flocker.node._compose_merge`).

    :return: ``(names, applications, project)``: the ``set`` of every application
        name the file defines (even with problems, so the deployment file is
        not also blamed for them), or ``None`` when the file is not a YAML
        mapping at all (so which names it meant is unknown); and a ``dict``
        of name to :class:`Application`, empty unless the file has no
        problem at all; and the project's name (a compose file's), or
        ``None``.
    """
    start = report.count()
    root = _compose(report, text)
    if root is None:
        return None, {}, None
    items = _mapping(report, root, "the application configuration")
    if items is None:
        return None, {}, None
    if not items:
        report.at(root, "the application configuration is an empty mapping: "
                  "deploying it would remove every application; list the "
                  "applications to run")
        return None, {}, None
    keys = {key: value for key, _, value in items}
    native = "applications" in keys or (
        "services" not in keys and isinstance(keys.get("version"),
                                              yaml.ScalarNode))
    project = None
    if override is not None and not native:
        root = _with_override(report, root, *override)
        if root is None:
            return None, {}, None
        items = _mapping(report, root, "the application configuration")
    if native:
        drafts = _native_applications(report, items, root)
    else:
        project = _project(report, directory, environ or {})
        drafts = _compose_applications(report, items, root, project)
    _resolve_links(report, drafts)
    _check_applications(report, drafts)
    names = {draft.name for draft in drafts}
    project_name = None if project is None else project.name
    if report.count() != start:
        return names, {}, project_name
    applications = {}
    for draft in drafts:
        application = _model(report, draft.key_node, lambda: Application(
            name=draft.name,
            links=[link for link, _, _ in draft.links],
            ports=[port for port, _ in draft.ports],
            volumes=[volume for volume, _ in draft.volumes],
            **draft.fields))
        if application is not None:
            applications[draft.name] = application
    return names, applications, project_name


def _with_override(report, root, text, path):
    """
    :return: The compose file's ``root`` with the override file ``text``
        (named ``path``) merged in, or ``None`` after reporting why the
        override cannot be.
    """
    overrides = report.about(path)
    override = _compose(overrides, text)
    if override is None:
        return None
    if _mapping(overrides, override, "the override file",
                empty_ok=True) is None:
        return None
    overrides.note(override, "merged into %s (compose's override file)" % (
        report.path,))
    return merge_override(root, override)


#: Override files, by the compose file's name: compose reads the one beside
#: its file (the first found).
OVERRIDE_FILES = {
    "compose.yaml": ("compose.override.yaml", "compose.override.yml"),
    "compose.yml": ("compose.override.yml", "compose.override.yaml"),
    "docker-compose.yml": ("docker-compose.override.yml",
                           "docker-compose.override.yaml"),
    "docker-compose.yaml": ("docker-compose.override.yaml",
                            "docker-compose.override.yml"),
}


def override_path(application_path):
    """
    :param str application_path: An application file.
    :return: The path of the compose override file beside it that a deploy
        merges in, or ``None``.
    """
    directory, name = os.path.split(application_path)
    for candidate in OVERRIDE_FILES.get(name, ()):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


# ---------------------------------------------------------------------------
# Deployment

_HOST_LABEL = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def _address_problem(address):
    """
    :param str address: A node address from the deployment file.
    :return: Why it is not an IP address or host name, or ``None`` if it is
        one.
    """
    try:
        ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        if "%" in address:
            return "is a scoped IPv6 address, which is not supported"
        return None
    labels = address.split(".")
    if len(address) > 253 or not all(_HOST_LABEL.match(label)
                                     for label in labels):
        return ("is not an IP address or host name (letters, digits, '-' "
                "and '.' only)")
    if labels[-1].isdigit():
        # A name ending in a number is an IPv4 address that did not parse
        # (192.0.2.300), not a host name.
        return "is not a valid IP address"
    return None


def _check_volume_nodes(report, seen, address, item, application):
    """
    Report ``application``, placed on node ``address`` at ``item``, if it
    mounts a volume that an application placed on another node mounts too,
    or mounts it with another size or external flag.

    :param dict seen: Volume name to ``(address, application name, item,
        AttachedVolume)`` of the first placement mounting it; updated.
    """
    for volume in application.all_volumes():
        first = seen.setdefault(volume.name, (address, application.name,
                                              item, volume))
        where, other, other_item, theirs = first
        if other == application.name:
            continue
        line = other_item.start_mark.line + 1
        if where != address:
            report.at(item, "application %s mounts volume %s, which %s "
                      "mounts on node %s (line %d); a volume is on one "
                      "node at a time, so place them on one node" % (
                          application.name, volume.name, other, where, line))
        elif (theirs.maximum_size, theirs.external) != (
                volume.maximum_size, volume.external):
            report.at(item, "application %s mounts volume %s with another "
                      "maximum_size or external setting than %s (line %d)"
                      % (application.name, volume.name, other, line))


def _read_deployment(report, text, names, applications, placed=None):
    """
    Read a deployment file and check it against the application file.

    :param names: Every application name the application file defines, or
        ``None`` if that file could not be read (then placements are not
        checked against it).
    :param applications: ``dict`` of name to :class:`Application`.
    :param placed: ``None``, or a ``dict`` filled in with each application
        name the file places and its node's address.
    :return: ``(nodes, standbys)``: the list of :class:`Node` and the
        ``dict`` of application name to :class:`Standby` (see
        :mod:`flocker.node._standby_config`), complete only if no problem
        was found anywhere.
    """
    root = _compose(report, text)
    if root is None:
        return [], {}
    items = _mapping(report, root, "the deployment configuration")
    if items is None:
        return [], {}
    _unknown_keys(report, items, ("version", "nodes", "standby"),
                  "the deployment configuration")
    _version(report, items, root)
    if not _require(report, items, ("nodes",), root,
                    "the deployment configuration"):
        return [], {}
    node = [value for key, _, value in items if key == "nodes"][0]
    placed_names = placed
    placed = {}
    volumes = {}
    nodes = []
    addresses = []
    for address, key_node, value in _mapping(
            report, node, "nodes", empty_ok=True) or ():
        addresses.append(address)
        problem = _address_problem(address)
        if problem is not None:
            report.at(key_node, "node address %s %s" % (
                _quote(address), problem))
        valid = problem is None and _model(
            report, key_node, lambda: Node(address=address)) is not None
        here = []
        for item in _sequence(report, value, "the applications of node %s"
                              % (address,)) or ():
            name = _text(report, item, "application name")
            if name is None:
                continue
            if name in placed:
                first_address, first = placed[name]
                report.at(item, "application %s is already on node %s (line "
                          "%d); an application runs on one node" % (
                              name, first_address, first.start_mark.line + 1))
                continue
            placed[name] = (address, item)
            if placed_names is not None:
                placed_names[name] = address
            if names is not None and name not in names:
                report.at(item, "application %s is not defined in the "
                          "application configuration%s" % (
                              _quote(name), _did_you_mean(name, names)))
                continue
            if name in applications:
                here.append(applications[name])
                _check_volume_nodes(report, volumes, address, item,
                                    applications[name])
        if valid:
            nodes.append((key_node, address, here))
    standbys = {}
    for key, _, value in items:
        if key == "standby":
            standbys = _read_standbys(report, value, placed, names,
                                      applications, addresses)
    return [_model(report, key_node, lambda: Node(address=address,
                                                  applications=here))
            for key_node, address, here in nodes], standbys


# ---------------------------------------------------------------------------
# Public API

def parse_configuration(deployment_text, deployment_path,
                        application_text, application_path, environ=None,
                        directory=None, notes=None, override=None):
    """
    Parse and cross-check the two configuration files given as text.

    :param str deployment_text: The deployment configuration.
    :param str deployment_path: Its name, used in problem reports.
    :param str application_text: The application configuration, native or
        compose format.
    :param str application_path: Its name, used in problem reports.
    :param environ: Mapping of the variables a compose file's values may
        use (the deploy's environment), or ``None`` for none.
    :param directory: The application file's directory: a compose file's
        ``.env`` is read there and its relative ``env_file`` paths start
        there; ``None`` reads no ``.env``.
    :param notes: ``None``, or a ``list`` to which a
        :class:`ConfigurationNote` is added for each thing the operator
        should know about accepted files (keys ignored, values guessed).
    :param override: ``None``, or ``(text, path)`` of a compose override
        file to merge into a compose application file.
    :return: The :class:`flocker._model.Deployment` they describe.
    :raises ConfigurationErrors: With every problem of both files.
    """
    return _parse([], deployment_text, deployment_path,
                  application_text, application_path, environ, directory,
                  notes, override)


def _parse(errors, deployment_text, deployment_path,
           application_text, application_path, environ=None, directory=None,
           notes=None, override=None):
    """
    Like :func:`parse_configuration`, adding to ``errors`` already found;
    a text of ``None`` means that file could not be read (and is already
    reported), so only the other file is checked.
    """
    found_notes = []
    names, applications, project = None, {}, None
    if application_text is not None:
        names, applications, project = _read_applications(
            _Report(application_path, errors, found_notes), application_text,
            directory, environ, override)
    deployment = None
    if deployment_text is not None:
        deployment_report = _Report(deployment_path, errors, found_notes)
        nodes, standbys = _read_deployment(
            deployment_report, deployment_text, names, applications)
        if not errors:
            deployment = _model(deployment_report, None,
                                lambda: Deployment(nodes=nodes,
                                                   project=project,
                                                   standbys=standbys))
    if errors:
        order = {deployment_path: 0, application_path: 1}
        raise ConfigurationErrors(sorted(
            set(errors), key=lambda e: (order.get(e.path, 2), e.path, e.line,
                                        e.column, e.message)))
    if notes is not None:
        notes.extend(sorted(set(found_notes), key=lambda n: (
            n.path, n.line, n.column, n.message)))
    return deployment


def _read_text(path, errors):
    """
    :return: The UTF-8 text of the file at ``path``, or ``None`` after adding
        a :class:`ConfigurationError` naming it to ``errors``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        errors.append(ConfigurationError(
            path, 1, 1, "cannot read the file: %s" % (e.strerror or e,)))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        errors.append(ConfigurationError(
            path, line, column, "the file is not UTF-8 text"))
        return None


def load_deployment(deployment_path):
    """
    Read the deployment file alone (for ``flocker-deploy --status``
    without an application file).

    :param str deployment_path: The deployment configuration file.
    :return: ``(deployment, placed)``: a :class:`Deployment` whose nodes
        have no applications (its standbys are the file's), and a ``dict``
        of each application name the file places to its node's address.
    :raises ConfigurationErrors: With every problem of the file.
    """
    errors = []
    placed = {}
    text = _read_text(deployment_path, errors)
    deployment = None
    if text is not None:
        report = _Report(deployment_path, errors)
        nodes, standbys = _read_deployment(report, text, None, {}, placed)
        if not errors:
            deployment = _model(report, None, lambda: Deployment(
                nodes=nodes, standbys=standbys))
    if errors:
        raise ConfigurationErrors(sorted(set(errors), key=lambda e: (
            e.line, e.column, e.message)))
    return deployment, placed


def load_configuration(deployment_path, application_path, environ=None,
                       notes=None):
    """
    Read, parse and cross-check the two configuration files.

    :param str deployment_path: The deployment configuration file.
    :param str application_path: The application configuration file; a
        compose file's ``.env`` and ``env_file`` paths are beside it.
    :param environ: The variables a compose file may use; ``None`` for
        this process's environment.
    :param notes: ``None``, or a ``list`` receiving
        :class:`ConfigurationNote` values (see :func:`parse_configuration`).
    :return: The :class:`flocker._model.Deployment` they describe.
    :raises ConfigurationErrors: With every problem of both files,
        including a file that cannot be read.
    """
    errors = []
    deployment_text = _read_text(deployment_path, errors)
    application_text = _read_text(application_path, errors)
    override = None
    found = override_path(application_path)
    if found is not None:
        text = _read_text(found, errors)
        override = None if text is None else (text, found)
    return _parse(errors, deployment_text, deployment_path,
                  application_text, application_path,
                  dict(os.environ if environ is None else environ),
                  os.path.dirname(os.path.abspath(application_path)), notes,
                  override)


# ---------------------------------------------------------------------------
# Writing the native format

def _application_to_native(application):
    """
    :return: The native-format mapping of ``application``, leaving out
        fields that have their default value.
    """
    result = {"image": application.image}
    if application.command is not None:
        result["command"] = list(application.command)
    if application.environment:
        result["environment"] = {
            name: application.environment[name]
            for name in sorted(application.environment)}
    if application.ports:
        result["ports"] = [
            {"internal": port.internal, "external": port.external}
            for port in sorted(application.ports,
                               key=lambda p: (p.external, p.internal))]
    if application.volume is not None:
        volume = {"mountpoint": application.volume.mountpoint}
        if application.volume.maximum_size is not None:
            volume["maximum_size"] = application.volume.maximum_size
        result["volume"] = volume
    if application.volumes:
        result["volumes"] = [_volume_to_native(volume) for volume in sorted(
            application.volumes, key=lambda v: v.name)]
    if application.links:
        result["links"] = [
            {"local_port": link.local_port, "remote_port": link.remote_port,
             "alias": link.alias}
            for link in sorted(application.links, key=lambda l: (
                l.local_port, l.remote_port, l.alias))]
    if application.mem_limit is not None:
        result["mem_limit"] = application.mem_limit
    if application.cpu_shares is not None:
        result["cpu_shares"] = application.cpu_shares
    policy = application.restart_policy
    if policy != RestartPolicy():
        result["restart_policy"] = {"name": policy.name}
        if policy.maximum_retry_count is not None:
            result["restart_policy"]["maximum_retry_count"] = (
                policy.maximum_retry_count)
    return result


def _volume_to_native(volume):
    written = volume_to_dict(volume)
    if written["maximum_size"] is None:
        del written["maximum_size"]
    # The name first, for a reader of the file.
    return dict(name=written.pop("name"), **written)


class _Dumper(yaml.SafeDumper):
    """
    A dumper that double-quotes any string holding a character that is not
    printable.  Double quotes are the one YAML style that escapes every
    character, so such a string reads back exactly; PyYAML's own choice of
    style loses some (a NEL, ``\\x85``, in a single-quoted string reads
    back as a space).
    """

    def represent_str(self, data):
        style = None if data.isprintable() else '"'
        return self.represent_scalar(_STR, data, style=style)


_Dumper.add_representer(str, _Dumper.represent_str)


def _dump(data):
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False,
                     sort_keys=False, allow_unicode=True, width=float("inf"))


def deployment_to_yaml(deployment):
    """
    Write a deployment as the two native configuration files.

    Parsing the result with :func:`parse_configuration` gives back an equal
    deployment, standbys included.  Only deployed applications are written: a deployment does
    not know about others.

    :param Deployment deployment: The deployment.
    :return: ``(deployment_text, application_text)``.
    """
    nodes = {}
    applications = {}
    for node in sorted(deployment.nodes, key=lambda n: n.address):
        ordered = sorted(node.applications, key=lambda a: a.name)
        nodes[node.address] = [application.name for application in ordered]
        for application in ordered:
            applications[application.name] = application
    written = {"version": 1, "nodes": nodes}
    if deployment.standbys:
        written["standby"] = _standbys_to_native(deployment.standbys)
    return (
        _dump(written),
        _dump({"version": 1, "applications": {
            name: _application_to_native(applications[name])
            for name in sorted(applications)}}),
    )
