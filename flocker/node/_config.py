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

Parsing composes the YAML node graph rather than loading Python objects, so
every value still carries the PyYAML mark of where it was written: each
problem is reported as ``PATH:LINE:COL: message`` at the offending node, and
all problems of both files are collected before anything is raised.
"""

import difflib
import ipaddress
import posixpath
import re
import shlex

import attr
import yaml
from pyrsistent import pvector

from .._model import (
    Application, AttachedVolume, Deployment, InvalidModel, Link, Node, Port,
    RestartPolicy, is_safe_name,
)
from .._serialize import volume_to_dict

__all__ = [
    "ConfigurationError", "ConfigurationErrors",
    "load_configuration", "parse_configuration", "deployment_to_yaml",
]


@attr.s(frozen=True, slots=True)
class ConfigurationError(object):
    """
    One problem in a configuration file, at a place a person can find.

    ``str()`` gives ``PATH:LINE:COL: message``.

    :ivar str path: The file, as the caller named it.
    :ivar int line: 1-based line of the offending YAML node (1 for problems
        with the whole file, such as a missing file).
    :ivar int column: 1-based column of the offending YAML node.
    :ivar str message: What is wrong, and where possible how to fix it.
    """
    path = attr.ib()
    line = attr.ib()
    column = attr.ib()
    message = attr.ib()

    def __str__(self):
        return "%s:%d:%d: %s" % (self.path, self.line, self.column,
                                 self.message)


class ConfigurationErrors(Exception):
    """
    The configuration files are not valid.  Raised once, with every problem
    found in both files.

    Iterating gives the :class:`ConfigurationError` values in file order;
    ``str()`` gives one ``PATH:LINE:COL: message`` line per problem.

    :ivar errors: ``PVector`` of :class:`ConfigurationError`.
    """

    def __init__(self, errors):
        """
        :param errors: Iterable of :class:`ConfigurationError`, at least one.
        """
        self.errors = pvector(errors)
        Exception.__init__(self, "\n".join(str(e) for e in self.errors))

    def __iter__(self):
        return iter(self.errors)

    def __len__(self):
        return len(self.errors)


# ---------------------------------------------------------------------------
# Reading YAML with marks

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (
    _TAG + "str", _TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null")

# Scalar tags whose source text is accepted where a string is expected:
# ``DEBUG: yes`` or ``PORT: 5432`` in an environment mean the text written.
_TEXT_TAGS = frozenset(
    _TAG + kind for kind in
    ("str", "int", "float", "bool", "timestamp", "value", "merge"))

_YAML_LINE_BREAKS = "\n\x85\u2028\u2029"

_SURROGATE = re.compile("[\ud800-\udfff]")


class _Loader(yaml.SafeLoader):
    """
    A composer that refuses aliases.  Aliases make the node graph shared or
    even cyclic, which neither a configuration file needs nor error
    locations can describe.
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None,
                "YAML aliases (*%s) are not supported; write the value out"
                % (event.anchor,), event.start_mark)
        return yaml.SafeLoader.compose_node(self, parent, index)


def _line_column(text, position):
    """
    :return: 1-based ``(line, column)`` of ``position`` in ``text``, counting
        line breaks as PyYAML's marks do.
    """
    line, start = 1, 0
    index = 0
    while index < position:
        character = text[index]
        if character in _YAML_LINE_BREAKS or (
                character == "\r" and text[index + 1:index + 2] != "\n"):
            line += 1
            start = index + 1
        index += 1
    return line, position - start + 1


class _Report(object):
    """
    Collects the problems of one file into a list shared with the other file.

    :ivar str path: The file's name, as given by the caller.
    """

    def __init__(self, path, errors):
        self.path = path
        self._errors = errors

    def count(self):
        """
        :return: How many problems have been recorded so far (both files).
        """
        return len(self._errors)

    def at(self, node, message):
        """
        Record a problem at ``node`` (a YAML node or mark; ``None`` means the
        whole file).
        """
        mark = getattr(node, "start_mark", node)
        if mark is None:
            line, column = 1, 1
        else:
            line, column = mark.line + 1, mark.column + 1
        self.at_position(line, column, message)

    def at_position(self, line, column, message):
        """
        Record a problem at a 1-based line and column.
        """
        self._errors.append(
            ConfigurationError(self.path, line, column, _printable(message)))


def _compose(report, text):
    """
    Compose ``text`` into a YAML node graph.

    :return: The root node, or ``None`` after reporting why there is none.
    """
    loader = None
    try:
        # The reader refuses unprintable characters as it is built.
        loader = _Loader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        report.at(mark, "not valid YAML: %s" % (
            e.problem or e.context or "cannot be parsed",))
        return None
    except yaml.reader.ReaderError as e:
        line, column = _line_column(text, e.position)
        report.at_position(line, column,
                           "not valid YAML: unacceptable character #x%04x"
                           % (e.character if isinstance(e.character, int)
                              else ord(e.character),))
        return None
    except yaml.YAMLError as e:
        report.at(None, "not valid YAML: %s" % (e,))
        return None
    except RecursionError:
        # PyYAML composes nested collections recursively; the reader has
        # stopped where the nesting became too deep.
        report.at(None if loader is None else loader.get_mark(),
                  "not valid YAML here: nested too deeply")
        return None
    except (ValueError, OverflowError):
        # PyYAML's scanner passes the number of a "\U" escape to chr()
        # unchecked; the reader stops right after the "U".
        report.at(None if loader is None else loader.get_mark(),
                  "not valid YAML: an escape names no character (the "
                  "largest is \\U0010ffff)")
        return None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        report.at(None, "the file is empty; expected a mapping")
    return root


def _describe(node):
    """
    :return: A short phrase naming what ``node`` is, for messages.
    """
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "an empty value"
    if node.tag == _BOOL:
        return "the boolean %s" % (node.value,)
    if node.tag in (_INT, _FLOAT):
        return "the number %s" % (node.value,)
    if node.tag == _STR:
        return "the string %s" % (_quote(node.value),)
    return "a value tagged %s" % (node.tag,)


def _printable(text):
    """
    :return: ``text`` with every character that is not printable escaped,
        so that a message naming a user's value stays on one line.
    """
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else
        "\\x%02x" % (ord(c),) if ord(c) < 0x100 else
        "\\u%04x" % (ord(c),) if ord(c) < 0x10000 else
        "\\U%08x" % (ord(c),)
        for c in text)


def _quote(text, limit=60):
    """
    :return: ``text`` in double quotes for a message, shortened and with
        unprintable characters escaped.
    """
    if len(text) > limit:
        text = text[:limit] + "..."
    return '"%s"' % (_printable(text),)


def _did_you_mean(word, candidates):
    """
    :return: `` (did you mean "x"?)`` for the closest of ``candidates``, or
        an empty string when none is close.
    """
    matches = difflib.get_close_matches(word, sorted(candidates), n=1)
    if matches:
        return ' (did you mean "%s"?)' % (matches[0],)
    return ""


def _is_empty(node):
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _mapping(report, node, what, empty_ok=False):
    """
    Read a mapping node, refusing non-string and duplicate keys.

    :param what: Phrase naming the value, for messages.
    :param bool empty_ok: Whether an empty value means an empty mapping.
    :return: List of ``(key_text, key_node, value_node)``, or ``None`` after
        reporting that ``node`` is not a mapping.
    """
    if empty_ok and _is_empty(node):
        return []
    if not isinstance(node, yaml.MappingNode):
        report.at(node, "%s must be a mapping, not %s" % (
            what, _describe(node)))
        return None
    items = []
    seen = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
            report.at(key_node, "keys in %s must be strings, not %s" % (
                what, _describe(key_node)))
            continue
        key = key_node.value
        if key in seen:
            report.at(key_node, "duplicate key %s in %s (first at line %d)" % (
                _quote(key), what, seen[key].start_mark.line + 1))
            continue
        seen[key] = key_node
        items.append((key, key_node, value_node))
    return items


def _sequence(report, node, what, empty_ok=True):
    """
    :return: The item nodes of a sequence node, ``[]`` for an empty value
        when ``empty_ok``, or ``None`` after reporting a problem.
    """
    if empty_ok and _is_empty(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        report.at(node, "%s must be a list, not %s" % (what, _describe(node)))
        return None
    return list(node.value)


def _unknown_keys(report, items, allowed, where):
    """
    Report every key of ``items`` not in ``allowed``, with a did-you-mean.
    """
    for key, key_node, _ in items:
        if key not in allowed:
            report.at(key_node, "unknown key %s in %s%s" % (
                _quote(key), where, _did_you_mean(key, allowed)))


def _require(report, items, keys, node, where):
    """
    Report each of ``keys`` missing from ``items``, at ``node``.

    :return: ``True`` if none was missing.
    """
    present = {key for key, _, _ in items}
    missing = [key for key in keys if key not in present]
    for key in missing:
        report.at(node, "%s has no %s" % (where, _quote(key)))
    return not missing


def _text(report, node, what):
    """
    :return: The source text of a non-empty scalar, or ``None`` after
        reporting a problem.
    """
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
        report.at(node, "%s must be a string, not %s" % (
            what, _describe(node)))
        return None
    if node.tag not in _TEXT_TAGS:
        report.at(node, "%s: YAML tag %s is not supported" % (what, node.tag))
        return None
    surrogate = _SURROGATE.search(node.value)
    if surrogate is not None:
        # Only an escape ("\ud800") makes one; no program on the node can
        # receive it unchanged (JSON decoders turn it into U+FFFD).
        report.at(node, "%s holds \\u%04x, half of a UTF-16 surrogate pair, "
                  "which is not a character: write the character itself or "
                  "\\U and 8 hex digits" % (what, ord(surrogate.group())))
        return None
    return node.value


#: The largest count or size a file may give: Docker and ZFS keep them in
#: signed 64-bit integers, so anything larger would fail on the node.
_LARGEST_NUMBER = 2 ** 63 - 1


def _decimal(digits):
    """
    :param str digits: ASCII decimal digits.
    :return: Their value, or ``None`` if it is more than
        :data:`_LARGEST_NUMBER`.  The length is checked first: Python
        refuses to convert strings of more than 4300 digits.
    """
    if len(digits) > len(str(_LARGEST_NUMBER)):
        return None
    value = int(digits)
    return value if value <= _LARGEST_NUMBER else None


def _shown(text, limit=20):
    """
    :return: ``text``, shortened for a message.
    """
    return text if len(text) <= limit else text[:limit] + "..."


def _integer(report, node, what):
    """
    :return: The ``int`` value of an integer scalar (booleans refused), or
        ``None`` after reporting a problem.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
        try:
            return yaml.constructor.SafeConstructor().construct_yaml_int(node)
        except (ValueError, IndexError):
            # An explicit ``!!int`` on text that is no number (PyYAML
            # indexes an empty one: ``!!int ""``, ``!!int -``), or a number
            # past Python's 4300-digit conversion limit.
            problem = ("is too large" if _DIGITS.match(node.value)
                       else "is not an integer")
            report.at(node, "%s %s %s" % (what, _quote(node.value), problem))
            return None
    report.at(node, "%s must be an integer, not %s" % (what, _describe(node)))
    return None


def _port(report, node, what):
    """
    :return: A TCP port number read from ``node``, or ``None`` after
        reporting a problem.
    """
    value = _integer(report, node, what)
    if value is None:
        return None
    if not 1 <= value <= 65535:
        report.at(node, "%s %d is outside 1-65535" % (what, value))
        return None
    return value


def _positive(report, node, what):
    """
    :return: A positive integer no larger than :data:`_LARGEST_NUMBER` read
        from ``node``, or ``None``.
    """
    value = _integer(report, node, what)
    if value is not None and value < 1:
        report.at(node, "%s must be a positive integer, not %d" % (
            what, value))
        return None
    if value is not None and value > _LARGEST_NUMBER:
        report.at(node, "%s %s is too large (at most %d)" % (
            what, _shown(str(value)), _LARGEST_NUMBER))
        return None
    return value


_DIGITS = re.compile(r"\A[-+]?[0-9][0-9_]*\Z")

_SIZE = re.compile(r"\A([0-9]+)\s*(?:([KMGT])(?:i?B)?|B)?\Z", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3,
               "T": 1024 ** 4}


def _size(report, node, what):
    """
    Read a size: an integer number of bytes, or a string with a binary
    ``K``/``M``/``G``/``T`` suffix (``"512M"``, ``"1G"``; ``"1GiB"`` and
    ``"1GB"`` mean the same).

    :return: Bytes as a positive ``int``, or ``None`` after reporting.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
        return _positive(report, node, what)
    if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
        match = _SIZE.match(node.value.strip())
        if match is not None:
            unit = match.group(2)
            number = _decimal(match.group(1))
            value = None if number is None else number * _SIZE_UNITS[
                None if unit is None else unit.upper()]
            if value is None or value > _LARGEST_NUMBER:
                report.at(node, "%s %s is too large (at most %d bytes)" % (
                    what, _quote(node.value), _LARGEST_NUMBER))
                return None
            if value < 1:
                report.at(node, "%s must be more than zero" % (what,))
                return None
            return value
    report.at(node, '%s must be a number of bytes or a size such as "512M" '
              'or "1G", not %s' % (what, _describe(node)))
    return None


def _model(report, node, build):
    """
    Build a model value, reporting an ``InvalidModel`` at ``node``.

    The model is the one authority on what a valid value is; parsing checks
    first where it can say more, and this maps whatever remains.

    :param build: No-argument callable building the value.
    :return: The value, or ``None`` after reporting.
    """
    try:
        return build()
    except InvalidModel as e:
        report.at(node, str(e))
        return None


def _check_name(report, node, name, what):
    """
    Report ``name`` at ``node`` unless it is a safe name.

    :return: ``True`` if it is safe.
    """
    if is_safe_name(name):
        return True
    report.at(node, "%s %s is not a safe name: use 1-63 letters, digits, "
              "'-' or '_', starting with a letter or digit" % (
                  what, _quote(name)))
    return False


def _version(report, items, root):
    """
    Check that a native file says ``version: 1``.
    """
    for key, _, value in items:
        if key == "version":
            if not (isinstance(value, yaml.ScalarNode) and value.tag == _INT
                    and _integer(report, value, "version") == 1):
                report.at(value, "version must be 1, not %s" % (
                    _describe(value),))
            return
    report.at(root, 'missing "version: 1"')


# ---------------------------------------------------------------------------
# Applications

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


def _command(report, node, draft):
    """
    Read ``command``: a list of strings, or one string split like a POSIX
    shell would split it (no shell ever runs it).
    """
    if isinstance(node, yaml.SequenceNode):
        arguments = [_text(report, item, "command argument")
                     for item in node.value]
        if None in arguments:
            return
    else:
        text = _text(report, node, "command")
        if text is None:
            return
        try:
            arguments = shlex.split(text)
        except ValueError as e:
            report.at(node, "command %s cannot be split into arguments: %s"
                      % (_quote(text), e))
            return
    if not arguments:
        report.at(node, "command must not be empty")
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


def _flag(report, node, what):
    """
    :return: The boolean ``node`` holds, or ``None`` after reporting.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
        return yaml.safe_load(node.value) is True
    report.at(node, "%s must be true or false, not %s" % (
        what, _describe(node)))
    return None


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


def _mountpoint(report, node):
    """
    :return: A valid mountpoint read from ``node``, or ``None``.
    """
    path = _text(report, node, "mountpoint")
    if path is None:
        return None
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
                if alias is not None and _check_name(report, value, alias,
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
                    "never", "always", "on-failure"):
                report.at(value, 'restart policy %s is not one of "never", '
                          '"always" or "on-failure"%s' % (
                              _quote(values["name"]), _did_you_mean(
                                  values["name"],
                                  ("never", "always", "on-failure"))))
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


# Compose keys that are real compose options but have no Flocker meaning;
# they are refused as "not supported" rather than as typos.
_COMPOSE_KEYS = ("image", "command", "environment", "ports", "links",
                 "volumes", "mem_limit", "cpu_shares", "restart")

_COMPOSE_PORT = re.compile(r"\A([0-9]+):([0-9]+)(?:/tcp)?\Z")


def _compose_environment(report, node, draft):
    """
    ``environment`` as a mapping or as a list of ``NAME=value`` strings.
    A name without a value (meaning "copy from the shell" in compose) is
    refused: the deploy runs elsewhere, so the value would be a guess.
    """
    draft.fields["environment"] = {}
    if not isinstance(node, yaml.SequenceNode):
        _native_environment(report, node, draft)
        return
    for item in node.value:
        text = _text(report, item, "environment entry")
        if text is None:
            continue
        name, equals, value = text.partition("=")
        if not equals:
            report.at(item, "environment variable %s has no value: write "
                      "NAME=value (Flocker does not copy values from the "
                      "shell)" % (_quote(name),))
            continue
        _set_environment(report, draft, name, item, value, item)


def _compose_ports(report, node, draft):
    """
    ``ports`` as ``"EXTERNAL:INTERNAL"`` strings.  Each is read as the text
    written, so YAML 1.1's base-60 numbers (``22:22``) mean what they show.
    """
    for item in _sequence(report, node, "ports") or ():
        text = _text(report, item, "port")
        if text is None:
            continue
        match = _COMPOSE_PORT.match(text)
        if match is None:
            if "/" in text and not text.endswith("/tcp"):
                problem = "only TCP ports are supported"
            elif text.count(":") > 1:
                problem = "binding to a host address is not supported"
            else:
                problem = 'write "EXTERNAL:INTERNAL", e.g. "8080:80"'
            report.at(item, "port %s: %s" % (_quote(text), problem))
            continue
        external, internal = (_decimal(match.group(1)),
                              _decimal(match.group(2)))
        bad = [digits for digits, number in zip(match.groups(),
                                                (external, internal))
               if number is None or not 1 <= number <= 65535]
        if bad:
            report.at(item, "port %s: %s is outside 1-65535" % (
                _quote(text), _shown(bad[0])))
            continue
        port = _model(report, item, lambda: Port(internal=internal,
                                                 external=external))
        if port is not None:
            draft.ports.append((port, item))


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
        if _check_name(report, item, alias, "link alias"):
            draft.link_requests.append((target, alias, item))


def _compose_volumes(report, node, draft):
    """
    ``volumes`` as a list of exactly one container path.  Host paths and
    named volumes (``host:container``) are refused: Flocker's volume is a
    dataset it creates and moves, never a directory of one host.
    """
    items = _sequence(report, node, "volumes")
    if items is None:
        return
    if not items:
        report.at(node, "volumes must list exactly one container path")
        return
    for extra in items[1:]:
        report.at(extra, "Flocker gives an application exactly one volume; "
                  "remove the extra volumes")
    text = _text(report, items[0], "volume")
    if text is None:
        return
    if ":" in text:
        report.at(items[0], "volume %s: host paths and named volumes are not "
                  "supported; give only the path inside the container (%s)"
                  % (_quote(text), _quote(text.split(":")[1] or "/data")))
        return
    path = _mountpoint(report, items[0])
    if path is not None:
        draft.fields["volume"] = AttachedVolume(mountpoint=path)


_COMPOSE_RESTART = {"no": "never", "always": "always",
                    "on-failure": "on-failure"}


def _compose_restart(report, node, draft):
    """
    ``restart``: ``no``, ``always``, ``on-failure`` or ``on-failure:N``.
    An unquoted ``no`` is a YAML boolean; it is read as the text written.
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
                  '"on-failure" or "on-failure:N"' % (_quote(text),))
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


def _compose_service(report, name, key_node, node):
    """
    Read one compose/fig service as a Flocker application.

    Mapping onto the model: ``image``, ``command`` (string or list),
    ``mem_limit``, ``cpu_shares`` as in the native format; ``environment`` as
    a mapping or ``NAME=value`` list; ``ports`` ``"EXTERNAL:INTERNAL"`` become
    :class:`Port` values; ``volumes`` (one container path) becomes the
    volume; ``restart`` ``no``/``always``/``on-failure[:N]`` becomes the
    restart policy (``no`` is ``never``); ``links`` are described at
    :func:`_resolve_links`.  Any other key is refused by name.

    :return: A :class:`_Draft`.
    """
    draft, items = _start_draft(report, name, key_node, node, "service")
    if items is None:
        return draft
    readers = {
        "image": _image,
        "command": _command,
        "environment": _compose_environment,
        "ports": _compose_ports,
        "links": _compose_links,
        "volumes": _compose_volumes,
        "mem_limit": _mem_limit,
        "cpu_shares": _cpu_shares,
        "restart": _compose_restart,
    }
    for key, key_node_, _ in items:
        if key not in readers:
            report.at(key_node_, "%s is not supported (service %s)%s" % (
                _quote(key), name, _did_you_mean(key, readers)))
    _read_fields(report, items, readers, draft)
    _require(report, items, ("image",), key_node, "service %s" % (name,))
    draft.errors_after = report.count()
    return draft


def _compose_applications(report, items, root):
    """
    Read a compose/fig file's top-level ``items``: services at the top, or
    under ``services`` (next to an optional ``version``, which is ignored
    because compose file versions say nothing Flocker uses).

    :return: List of :class:`_Draft`.
    """
    if any(key == "services" for key, _, _ in items):
        for key, key_node, value in items:
            if key == "services":
                services = _mapping(report, value, "services", empty_ok=True)
            elif key == "version":
                _text(report, value, "version")
            else:
                report.at(key_node, "top-level %s is not supported in a "
                          "compose file" % (_quote(key),))
        items = services or ()
    return [_compose_service(report, name, key_node, value)
            for name, key_node, value in items]


def _resolve_links(report, drafts):
    """
    Turn compose links into Flocker links.

    A compose link to service X (alias A, default X) becomes one
    :class:`Link` per port X publishes: ``local_port`` is X's internal port
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
            found = by_name[target]
            ports = found.ports
            if not ports and found.errors_after == found.errors_before:
                report.at(node, "link to %s: %s publishes no ports, so "
                          "there is nothing to link to" % (target, target))
            for port, _ in sorted(ports, key=lambda p: p[0].external):
                draft.links.append(
                    (Link(local_port=port.internal,
                          remote_port=port.external, alias=alias),
                     node, node))


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
            if port.external in externals:
                owner, first = externals[port.external]
                report.at(node, "external port %d is already used by %s "
                          "(line %d); external ports are cluster-wide" % (
                              port.external, owner,
                              first.start_mark.line + 1))
            else:
                externals[port.external] = (draft.name, node)
            if port.internal in internals:
                report.at(node, "internal port %d of %s is published twice"
                          % (port.internal, draft.name))
            internals[port.internal] = node
    for draft in drafts:
        local_ports = {}
        for link, local_node, remote_node in draft.links:
            if link.local_port in local_ports:
                report.at(local_node, "link local port %d of %s is already "
                          "used by another link (line %d)" % (
                              link.local_port, draft.name,
                              local_ports[link.local_port].start_mark.line
                              + 1))
            local_ports[link.local_port] = local_node
            if link.remote_port not in externals and complete_ports:
                report.at(remote_node, "link to port %d: no application "
                          "publishes external port %d" % (
                              link.remote_port, link.remote_port))


def _read_applications(report, text):
    """
    Read an application file in either format.

    :return: ``(names, applications)``: the ``set`` of every application
        name the file defines (even with problems, so the deployment file is
        not also blamed for them), or ``None`` when the file is not a YAML
        mapping at all (so which names it meant is unknown); and a ``dict``
        of name to :class:`Application`, empty unless the file has no
        problem at all.
    """
    start = report.count()
    root = _compose(report, text)
    if root is None:
        return None, {}
    items = _mapping(report, root, "the application configuration")
    if items is None:
        return None, {}
    keys = {key: value for key, _, value in items}
    native = "applications" in keys or (
        "services" not in keys and isinstance(keys.get("version"),
                                              yaml.ScalarNode))
    if native:
        drafts = _native_applications(report, items, root)
    else:
        drafts = _compose_applications(report, items, root)
    _resolve_links(report, drafts)
    _check_applications(report, drafts)
    names = {draft.name for draft in drafts}
    if report.count() != start:
        return names, {}
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
    return names, applications


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


def _read_deployment(report, text, names, applications):
    """
    Read a deployment file and check it against the application file.

    :param names: Every application name the application file defines, or
        ``None`` if that file could not be read (then placements are not
        checked against it).
    :param applications: ``dict`` of name to :class:`Application`.
    :return: The list of :class:`Node`, complete only if no problem was
        found anywhere.
    """
    root = _compose(report, text)
    if root is None:
        return []
    items = _mapping(report, root, "the deployment configuration")
    if items is None:
        return []
    _unknown_keys(report, items, ("version", "nodes"),
                  "the deployment configuration")
    _version(report, items, root)
    if not _require(report, items, ("nodes",), root,
                    "the deployment configuration"):
        return []
    node = [value for key, _, value in items if key == "nodes"][0]
    placed = {}
    volumes = {}
    nodes = []
    for address, key_node, value in _mapping(
            report, node, "nodes", empty_ok=True) or ():
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
    return [_model(report, key_node, lambda: Node(address=address,
                                                  applications=here))
            for key_node, address, here in nodes]


# ---------------------------------------------------------------------------
# Public API

def parse_configuration(deployment_text, deployment_path,
                        application_text, application_path):
    """
    Parse and cross-check the two configuration files given as text.

    :param str deployment_text: The deployment configuration.
    :param str deployment_path: Its name, used in problem reports.
    :param str application_text: The application configuration, native or
        compose format.
    :param str application_path: Its name, used in problem reports.
    :return: The :class:`flocker._model.Deployment` they describe.
    :raises ConfigurationErrors: With every problem of both files.
    """
    return _parse([], deployment_text, deployment_path,
                  application_text, application_path)


def _parse(errors, deployment_text, deployment_path,
           application_text, application_path):
    """
    Like :func:`parse_configuration`, adding to ``errors`` already found;
    a text of ``None`` means that file could not be read (and is already
    reported), so only the other file is checked.
    """
    names, applications = None, {}
    if application_text is not None:
        names, applications = _read_applications(
            _Report(application_path, errors), application_text)
    deployment = None
    if deployment_text is not None:
        deployment_report = _Report(deployment_path, errors)
        nodes = _read_deployment(deployment_report, deployment_text, names,
                                 applications)
        if not errors:
            deployment = _model(deployment_report, None,
                                lambda: Deployment(nodes=nodes))
    if errors:
        order = {deployment_path: 0, application_path: 1}
        raise ConfigurationErrors(sorted(
            set(errors), key=lambda e: (order.get(e.path, 2), e.path, e.line,
                                        e.column, e.message)))
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


def load_configuration(deployment_path, application_path):
    """
    Read, parse and cross-check the two configuration files.

    :param str deployment_path: The deployment configuration file.
    :param str application_path: The application configuration file.
    :return: The :class:`flocker._model.Deployment` they describe.
    :raises ConfigurationErrors: With every problem of both files,
        including a file that cannot be read.
    """
    errors = []
    deployment_text = _read_text(deployment_path, errors)
    application_text = _read_text(application_path, errors)
    return _parse(errors, deployment_text, deployment_path,
                  application_text, application_path)


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
    deployment.  Only deployed applications are written: a deployment does
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
    return (
        _dump({"version": 1, "nodes": nodes}),
        _dump({"version": 1, "applications": {
            name: _application_to_native(applications[name])
            for name in sorted(applications)}}),
    )
