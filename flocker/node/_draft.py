"""
What the native and the compose formats share while reading one
application: the draft being filled in and the readers of keys that mean
the same in both formats.
"""

import posixpath
import shlex

import attr
import yaml

from .._model import Application, AttachedVolume
from ._yaml import (
    _check_name, _mapping, _model, _positive, _quote, _size, _text,
)

__all__ = []


@attr.s
class _Draft(object):
    """
    What has been read of one application so far, with the nodes the
    cross-checks report at.  Mutable because it is filled in in steps; it
    never leaves this module.

    :ivar ports: List of ``(Port, node of the port entry)``.
    :ivar links: List of ``(Link, node of local_port, node of remote_port)``.
    :ivar volumes: List of ``(AttachedVolume, node of the entry)`` of named
        volumes.
    :ivar link_requests: Compose links not yet resolved, as
        ``(target name, alias, node)``.
    :ivar int errors_before: Problems recorded before this application was
        read.
    :ivar int errors_after: Problems recorded once it was read; equal to
        ``errors_before`` if the application itself is free of problems.
    :ivar bool ports_read: Whether all its ports were read without problem
        (if not, its other ports are unknown).
    :ivar options: ``dict`` of :class:`ContainerOptions` field to value.
    :ivar dependencies: Compose ``depends_on`` entries not yet checked, as
        ``(None, name, condition, required, node)``.
    :ivar env_files: ``dict`` of the variables its ``env_file`` files set.
    :ivar has_build: The node of a compose ``build`` key, or ``None``.
    """
    name = attr.ib()
    key_node = attr.ib()
    errors_before = attr.ib()
    errors_after = attr.ib(default=None)
    fields = attr.ib(default=attr.Factory(dict))
    ports = attr.ib(default=attr.Factory(list))
    links = attr.ib(default=attr.Factory(list))
    volumes = attr.ib(default=attr.Factory(list))
    link_requests = attr.ib(default=attr.Factory(list))
    ports_read = attr.ib(default=True)
    options = attr.ib(default=attr.Factory(dict))
    dependencies = attr.ib(default=attr.Factory(list))
    env_files = attr.ib(default=attr.Factory(dict))
    has_build = attr.ib(default=None)


def _read_fields(report, items, readers, draft):
    """
    Run the reader of each key of ``items`` that has one.
    """
    for key, _, value in items:
        if key in readers:
            before = report.count()
            readers[key](report, value, draft)
            if key == "ports" and report.count() != before:
                draft.ports_read = False


def _command(report, node, draft, what="command"):
    """
    Read ``command``: a list of strings, or one string split like a POSIX
    shell would split it (no shell ever runs it).

    :param str what: The key, for messages (``entrypoint`` is read alike).
    """
    if isinstance(node, yaml.SequenceNode):
        arguments = [_text(report, item, what + " argument")
                     for item in node.value]
        if None in arguments:
            return
    else:
        text = _text(report, node, what)
        if text is None:
            return
        try:
            arguments = shlex.split(text)
        except ValueError as e:
            report.at(node, "%s %s cannot be split into arguments: %s"
                      % (what, _quote(text), e))
            return
    if not arguments:
        report.at(node, "%s must not be empty" % (what,))
        return
    if _model(report, node, lambda: Application(
            name="probe", image="probe", command=arguments)) is not None:
        draft.fields["command"] = arguments


def _set_environment(report, draft, name, key_node, value, value_node):
    if name in draft.fields["environment"]:
        report.at(key_node, "environment variable %s is set twice" % (name,))
        return
    if _model(report, key_node, lambda: Application(
            name="probe", image="probe", environment={name: ""})) is None:
        return
    if _model(report, value_node, lambda: Application(
            name="probe", image="probe",
            environment={name: value})) is not None:
        draft.fields["environment"][name] = value


def _native_environment(report, node, draft):
    items = _mapping(report, node, "environment", empty_ok=True)
    draft.fields["environment"] = {}
    for name, key_node, value_node in items or ():
        value = _text(report, value_node, "environment variable %s" % (name,))
        if value is not None:
            _set_environment(report, draft, name, key_node, value, value_node)


def _mountpoint(report, node, path=None):
    """
    :param path: The path if it is not the whole of ``node``'s text (a
        compose volume's target), else ``None``.
    :return: A valid mountpoint read from ``node``, or ``None``.  Trailing
        slashes are dropped (Flocker 0.4's examples wrote
        ``/var/lib/elasticsearch/``).
    """
    if path is None:
        path = _text(report, node, "mountpoint")
    if path is None:
        return None
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    if not path.startswith("/"):
        report.at(node, "mountpoint %s must be an absolute path" % (
            _quote(path),))
        return None
    if ".." in path.split("/"):
        report.at(node, "mountpoint %s must not contain '..'" % (
            _quote(path),))
        return None
    if ":" in path:
        # The node hands Docker the volume as "HOST:CONTAINER" in a Binds
        # entry; a colon here would make the rest its options ("/data:ro").
        report.at(node, "mountpoint %s must not contain ':' (Docker would "
                  "read what follows as mount options)" % (_quote(path),))
        return None
    if posixpath.normpath(path) != path:
        report.at(node, "mountpoint %s is not normalised; write %s" % (
            _quote(path), _quote(posixpath.normpath(path))))
        return None
    if _model(report, node, lambda: AttachedVolume(mountpoint=path)) is None:
        return None
    return path


def _mem_limit(report, node, draft):
    draft.fields["mem_limit"] = _size(report, node, "mem_limit")


def _cpu_shares(report, node, draft):
    draft.fields["cpu_shares"] = _positive(report, node, "cpu_shares")


def _image(report, node, draft):
    image = _text(report, node, "image")
    if image is not None and _model(report, node, lambda: Application(
            name="probe", image=image)) is not None:
        draft.fields["image"] = image


def _start_draft(report, name, key_node, node, kind):
    """
    Begin reading one application (``kind`` ``"application"``) or compose
    service (``"service"``): check its name and that its body is a mapping.

    :return: ``(draft, items)``; ``items`` is ``None`` (and the draft is
        finished) when the body is not a mapping.
    """
    draft = _Draft(name=name, key_node=key_node,
                   errors_before=report.count())
    _check_name(report, key_node, name, kind + " name")
    items = _mapping(report, node, "%s %s" % (kind, name))
    if items is None:
        draft.errors_after = report.count()
        draft.ports_read = False
    return draft, items

