"""
The compose file's volume syntax: a service's ``volumes`` (short and long
syntax), ``configs`` and ``secrets``, and the top-level ``volumes``,
``configs`` and ``secrets`` they name, read into the model's volumes,
host mounts and files:

* a named volume (``data:/var/lib/db``) is the Flocker volume
  ``PROJECT_data``, as compose names it, or the top-level ``name:`` given
  (``external: true`` at the top: one Flocker does not create, named as
  written);
* a container path alone (``/var/lib/db``) is the application's own volume
  (the first) or a volume named after the service and the path;
* a relative directory (``./data:/data``) is a Flocker volume seeded once
  from the directory, named after the project and the path;
* a relative file (``./nginx.conf:/etc/nginx/nginx.conf:ro``), and a
  file-based config or secret, is a file put into the container at every
  start;
* an absolute host path (``/etc/localtime:/etc/localtime:ro``) is bound
  from the node the application runs on, with a note: it stays there.
"""

import hashlib
import os
import posixpath
import re
import stat

import attr
import yaml

from .._model import (
    MAX_FILE_SIZE, AttachedVolume, FileMount, HostMount, is_safe_name,
)
from ._compose_values import _boolean
from ._draft import _mountpoint
from ._yaml import (
    _NULL, _check_name, _did_you_mean, _mapping, _model, _quote, _require,
    _sequence, _text, _unknown_keys,
)

__all__ = []


@attr.s
class _Declared(object):
    """
    A top-level ``volumes``, ``configs`` or ``secrets`` entry.

    :ivar str name: The volume's ``name:``, else its key, for volumes (a
        volume without ``name:`` is the project's: see
        :func:`_project_volume`); the key for configs and secrets.
    :ivar bool external: Whether it exists outside the project.
    :ivar file: For configs and secrets, the file's path as written, or
        ``None``.
    :ivar node: Where it was declared.
    :ivar bool named: Whether a volume's ``name:`` gave its name.
    """
    name = attr.ib()
    external = attr.ib(default=False)
    file = attr.ib(default=None)
    node = attr.ib(default=None)
    named = attr.ib(default=False)


def _declarations(report, node, kind):
    """
    Read a top-level ``volumes`` (``kind`` ``"volume"``), ``configs`` or
    ``secrets`` mapping.

    :return: ``dict`` of key to :class:`_Declared`.
    """
    declared = {}
    for key, key_node, value in _mapping(report, node, kind + "s",
                                         empty_ok=True) or ():
        if key.startswith("x-"):
            continue
        entry = _Declared(name=key, node=key_node)
        declared[key] = entry
        if isinstance(value, yaml.ScalarNode) and value.tag == _NULL:
            continue
        fields = _mapping(report, value, "%s %s" % (kind, key))
        if fields is None:
            continue
        allowed = (("external", "name", "driver", "driver_opts", "labels")
                   if kind == "volume" else
                   ("file", "external", "name", "environment", "content",
                    "labels", "template_driver"))
        _unknown_keys(report, fields, allowed, "%s %s" % (kind, key))
        for field, field_node, item in fields:
            if field == "external":
                external = _external(report, item)
                if external is not None:
                    entry.external = external
            elif field == "name":
                name = _text(report, item, "%s name" % (kind,))
                if name is not None and kind == "volume":
                    entry.name, entry.named = name, True
            elif field == "file":
                entry.file = _text(report, item, "%s file" % (kind,))
            elif field in ("environment", "content"):
                report.at(field_node, "%s %s: only file-based %ss are "
                          "supported" % (kind, key, kind))
            elif field == "driver":
                driver = _text(report, item, "volume driver")
                if driver not in (None, "local"):
                    report.note(item, "volume %s: driver %s is ignored: the "
                                "volume is a Flocker (ZFS) volume" % (
                                    key, driver))
            elif field == "driver_opts":
                report.note(field_node, "volume %s: driver_opts are ignored:"
                            " the volume is a Flocker (ZFS) volume" % (key,))
        if kind == "volume" and not is_safe_name(entry.name):
            _check_name(report, key_node, entry.name, "volume name")
    return declared


def _external(report, node):
    # Compose once wrote "external: {name: X}".
    if isinstance(node, yaml.MappingNode):
        return True
    return _boolean(report, node, "external")


_MODES = {"ro", "rw", "z", "Z", "nocopy", "consistent", "cached",
          "delegated", "rprivate", "private", "rshared", "shared",
          "rslave", "slave"}


def _compose_volumes(report, node, draft, project):
    """
    Read a service's ``volumes``: each entry in the short syntax
    (``[SOURCE:]TARGET[:MODE]``) or the long one (``type``, ``source``,
    ``target``, ``read_only``).
    """
    for item in _sequence(report, node, "volumes") or ():
        if isinstance(item, yaml.MappingNode):
            spec = _long_volume(report, item)
        else:
            text = _text(report, item, "volume")
            if text is None:
                continue
            spec = _short_volume(report, item, text)
        if spec is not None:
            _add_volume(report, item, draft, project, *spec)


def _short_volume(report, item, text):
    """
    :return: ``(type, source, target, read_only)`` of a short-syntax
        entry, or ``None`` after reporting.
    """
    parts = text.split(":")
    if len(parts) > 3 or not all(parts):
        report.at(item, "volume %s: write TARGET, SOURCE:TARGET or "
                  "SOURCE:TARGET:MODE" % (_quote(text),))
        return None
    modes = set()
    if len(parts) == 3:
        modes = set(parts[2].split(","))
        unknown = sorted(modes - _MODES)
        if unknown:
            report.at(item, "volume %s: unknown mode %s%s" % (
                _quote(text), _quote(unknown[0]),
                _did_you_mean(unknown[0], _MODES)))
            return None
    if len(parts) == 1:
        return "volume", None, parts[0], False
    source = parts[0]
    kind = "bind" if source[:1] in ("/", ".", "~") else "volume"
    return kind, source, parts[1], "ro" in modes


_LONG_KEYS = ("type", "source", "target", "read_only", "bind", "volume",
              "tmpfs", "consistency")


def _long_volume(report, item):
    """
    :return: ``(type, source, target, read_only)`` of a long-syntax entry
        (``tmpfs`` entries are returned with their size option as the
        source), or ``None`` after reporting.
    """
    fields = _mapping(report, item, "a volume") or []
    _unknown_keys(report, fields, _LONG_KEYS, "a volume")
    if not _require(report, fields, ("target",), item, "the volume"):
        return None
    values = {key: value for key, _, value in fields}
    kind = "volume"
    if "type" in values:
        kind = _text(report, values["type"], "volume type")
        if kind not in ("volume", "bind", "tmpfs"):
            if kind is not None:
                report.at(values["type"], "volume type %s is not supported: "
                          "use volume, bind or tmpfs" % (_quote(kind),))
            return None
    target = _text(report, values["target"], "volume target")
    source = None
    if "source" in values:
        source = _text(report, values["source"], "volume source")
        if source is None:
            return None
    elif kind == "bind":
        report.at(item, "a bind volume needs a source")
        return None
    read_only = False
    if "read_only" in values:
        read_only = _boolean(report, values["read_only"], "read_only")
    if target is None or read_only is None:
        return None
    if kind == "tmpfs":
        size = ""
        options = values.get("tmpfs")
        if isinstance(options, yaml.MappingNode):
            for key, _, value in _mapping(report, options, "tmpfs") or ():
                if key == "size":
                    size = "size=%s" % (_text(report, value, "size"),)
        return "tmpfs", size, target, False
    return kind, source, target, read_only


def _add_volume(report, item, draft, project, kind, source, target,
                read_only):
    """
    Put one volume entry into ``draft``.
    """
    mountpoint = _mountpoint(report, item, target)
    if mountpoint is None:
        return
    if kind == "tmpfs":
        draft.options.setdefault("tmpfs", {})[mountpoint] = source
        return
    if kind == "bind":
        _bind(report, item, draft, project, source, mountpoint, read_only)
        return
    if source is None:
        _anonymous(report, item, draft, mountpoint)
        return
    declared = project.volumes.get(source)
    if declared is None:
        report.at(item, "volume %s is not declared in the top-level "
                  "volumes%s" % (_quote(source), _did_you_mean(
                      source, project.volumes)))
        return
    name, former = declared.name, None
    if not (declared.named or declared.external) and project.name:
        name, former = _project_volume(project.name, declared.name), name
    volume = _model(report, item, lambda: AttachedVolume(
        mountpoint=mountpoint, name=name, read_only=read_only,
        external=declared.external, former_name=former))
    if volume is not None:
        draft.volumes.append((volume, item))


def _project_volume(project, key):
    """
    :return: The Flocker volume name of a project's volume ``key`` declared
        without ``name:``, as compose names it: ``PROJECT_KEY`` (cut and
        ended with a digest of both beyond 63 characters).
    """
    name = "%s_%s" % (project, key)
    if len(name) > 63:
        digest = hashlib.sha256(("%s\0%s" % (project, key)).encode(
            "utf-8")).hexdigest()[:10]
        name = "%s-%s" % (name[:52].rstrip("-._"), digest)
    return name


def _anonymous(report, item, draft, mountpoint):
    """
    A container path alone: the application's own volume if it has none
    yet, else a volume named after the service and the path.
    """
    if "volume" not in draft.fields:
        volume = _model(report, item, lambda: AttachedVolume(
            mountpoint=mountpoint))
        if volume is not None:
            draft.fields["volume"] = volume
        return
    name = _derived_name(draft.name, mountpoint)
    volume = _model(report, item, lambda: AttachedVolume(
        mountpoint=mountpoint, name=name))
    if volume is not None:
        draft.volumes.append((volume, item))


def _derived_name(prefix, path):
    """
    :return: A safe volume name made of ``prefix`` and ``path``: their
        letters, digits, ``_``, ``.`` and ``-``, other runs as ``-``; a
        digest of both stands in for what does not fit.
    """
    words = re.sub(r"[^A-Za-z0-9_.-]+", "-", path).strip("-.")
    words = re.sub(r"\.\.+", ".", words)
    name = "%s-%s" % (prefix, words) if words else prefix
    if len(name) > 63 or not is_safe_name(name):
        digest = hashlib.sha256(("%s\0%s" % (prefix, path)).encode(
            "utf-8")).hexdigest()[:10]
        name = "%s-%s" % (name[:52].rstrip("-.") or "v", digest)
    return name


def _bind(report, item, draft, project, source, mountpoint, read_only):
    """
    A bind mount: an absolute host path stays on the node (noted); a
    relative directory becomes a seeded volume; a relative file is put
    into the container at every start.
    """
    if source.startswith("/"):
        host = posixpath.normpath(source)
        mount = _model(report, item, lambda: HostMount(
            host_path=host, mountpoint=mountpoint, read_only=read_only))
        if mount is not None:
            draft.fields.setdefault("host_mounts", []).append(mount)
            report.note(item, "%s is a path of the node %s runs on: it "
                        "stays there when %s moves" % (
                            host, draft.name, draft.name))
        return
    # A home directory is the deploying machine's, as a relative path is:
    # both seed a volume from there.
    relative = posixpath.normpath(os.path.expanduser(source)
                                  if source.startswith("~") else source)
    if relative == ".." or relative.startswith("../"):
        report.note(item, "volume source %s is outside the project's "
                    "directory" % (_quote(source),))
    path = project.path(relative)
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode):
        _file(report, item, draft, path, mountpoint, info)
        return
    if info is None:
        report.note(item, "%s does not exist: %s gets an empty volume at "
                    "%s" % (_quote(source), draft.name, mountpoint))
    elif not stat.S_ISDIR(info.st_mode):
        report.at(item, "volume source %s is neither a file nor a "
                  "directory" % (_quote(source),))
        return
    name = _derived_name(project.name or "bind", source.lstrip("~"))
    volume = _model(report, item, lambda: AttachedVolume(
        mountpoint=mountpoint, name=name, read_only=read_only,
        seed=None if info is None else os.path.abspath(path)))
    if volume is not None:
        draft.volumes.append((volume, item))


def _file(report, item, draft, path, mountpoint, info, mode=None):
    """
    A file put into the container at every start, with permission bits
    ``mode`` (by default the file's own, readable by everyone).
    """
    if info.st_size > MAX_FILE_SIZE:
        report.at(item, "%s is larger than %d bytes: a file put into the "
                  "container travels with every start; use a directory "
                  "(a volume) instead" % (_quote(path), MAX_FILE_SIZE))
        return
    try:
        with open(path, "rb") as f:
            content = f.read(MAX_FILE_SIZE + 1)
    except OSError as e:
        report.at(item, "%s cannot be read: %s" % (_quote(path),
                                                  e.strerror or e))
        return
    if mode is None:
        mode = stat.S_IMODE(info.st_mode) | 0o444
    mount = _model(report, item, lambda: FileMount.of(
        mountpoint, content, mode=mode))
    if mount is not None:
        draft.fields.setdefault("files", []).append(mount)


def _compose_files(kind):
    """
    :return: The reader of a service's ``configs`` (``kind`` ``"config"``)
        or ``secrets``: names, or ``{source, target, mode}``, of top-level
        file-based entries, put into the container at every start.
    """
    def read(report, node, draft, project):
        declared = project.configs if kind == "config" else project.secrets
        for item in _sequence(report, node, kind + "s") or ():
            target, mode = None, None
            if isinstance(item, yaml.MappingNode):
                fields = _mapping(report, item, "a " + kind) or []
                _unknown_keys(report, fields, ("source", "target", "mode",
                                               "uid", "gid"), "a " + kind)
                if not _require(report, fields, ("source",), item,
                                "the " + kind):
                    continue
                values = {key: value for key, _, value in fields}
                source = _text(report, values["source"], kind + " source")
                if "target" in values:
                    target = _text(report, values["target"], kind + " target")
                if "mode" in values:
                    text = _text(report, values["mode"], "mode")
                    mode = (int(text, 8) if text and re.match(
                        r"\A0?[0-7]{1,4}\Z", text) else None)
                    if mode is None:
                        report.at(values["mode"], "mode must be octal "
                                  "permission bits such as 0440")
                        continue
            else:
                source = _text(report, item, kind)
            if source is None:
                continue
            entry = declared.get(source)
            if entry is None:
                report.at(item, "%s %s is not declared in the top-level "
                          "%ss%s" % (kind, _quote(source), kind,
                                     _did_you_mean(source, declared)))
                continue
            if entry.file is None:
                report.at(item, "%s %s: only file-based %ss are supported "
                          "(external ones live in a swarm)" % (
                              kind, _quote(source), kind))
                continue
            if target is None:
                target = ("/run/secrets/" if kind == "secret" else "/") + source
            elif kind == "secret" and not target.startswith("/"):
                target = "/run/secrets/" + target
            mountpoint = _mountpoint(report, item, target)
            path = project.path(posixpath.normpath(entry.file))
            try:
                info = os.stat(path)
            except OSError as e:
                report.at(entry.node, "%s %s: %s cannot be read: %s" % (
                    kind, source, _quote(entry.file), e.strerror or e))
                continue
            if mountpoint is None:
                continue
            _file(report, item, draft, path, mountpoint, info, mode)
    return read
