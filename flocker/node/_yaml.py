"""
Reading YAML configuration files with their marks.

Parsing composes the YAML node graph rather than loading Python objects, so
every value still carries the PyYAML mark of where it was written: each
problem is reported as ``PATH:LINE:COL: message`` at the offending node, and
all problems of a run are collected before anything is raised.  The readers
here (:func:`_mapping`, :func:`_text`, :func:`_size`...) are shared by the
native format, the compose format and the deployment file.
"""

import difflib
import re

import attr
import yaml
from pyrsistent import pvector

from .._model import (
    LINK_ALIAS_RULE, SAFE_NAME_RULE, InvalidModel, is_link_alias,
    is_safe_name,
)

__all__ = ["ConfigurationError", "ConfigurationErrors", "ConfigurationNote"]


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


@attr.s(frozen=True, slots=True)
class ConfigurationNote(object):
    """
    Something an accepted configuration file does that the operator should
    know about (a key ignored, a path that stays on one node).

    ``str()`` gives ``PATH:LINE:COL: note: message``.

    :ivar str path: The file, as the caller named it.
    :ivar int line: 1-based line.
    :ivar int column: 1-based column.
    :ivar str message: What the note says.
    """
    path = attr.ib()
    line = attr.ib()
    column = attr.ib()
    message = attr.ib()

    def __str__(self):
        return "%s:%d:%d: note: %s" % (self.path, self.line, self.column,
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
_STR, _INT, _FLOAT, _BOOL, _NULL, _MERGE = (
    _TAG + "str", _TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null",
    _TAG + "merge")

# Scalar tags whose source text is accepted where a string is expected:
# ``DEBUG: yes`` or ``PORT: 5432`` in an environment mean the text written.
_TEXT_TAGS = frozenset(
    _TAG + kind for kind in
    ("str", "int", "float", "bool", "timestamp", "value", "merge"))

_YAML_LINE_BREAKS = "\n\x85\u2028\u2029"

_SURROGATE = re.compile("[\ud800-\udfff]")


class _Loader(yaml.SafeLoader):
    """
    The safe composer, with aliases: their graph is made a tree (and
    bounded) by :func:`_expand` before anything reads it.  Where each alias
    was used is kept, so a problem it causes is reported there.

    :ivar aliases: ``dict`` of ``(id(parent node), index)`` to the mark of
        the alias used there (``index`` a position in a list, or
        ``id(key node)`` in a mapping).
    """

    def __init__(self, stream):
        yaml.SafeLoader.__init__(self, stream)
        self.aliases = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent) and parent is not None:
            place = index if isinstance(index, int) else id(index)
            self.aliases[(id(parent), place)] = self.peek_event().start_mark
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
    Collects the problems of one file into a list shared with the other
    files, and its notes into another.

    :ivar str path: The file's name, as given by the caller.
    """

    def __init__(self, path, errors, notes=None):
        self.path = path
        self._errors = errors
        self._notes = [] if notes is None else notes

    def about(self, path):
        """
        :param str path: Another file (an env file the configuration names).
        :return: A :class:`_Report` for it, sharing this one's lists.
        """
        return _Report(path, self._errors, self._notes)

    def note(self, node, message):
        """
        Record something the operator should know about an accepted file
        (a key that is ignored, a value that was guessed), at ``node``.
        """
        mark = getattr(node, "start_mark", node)
        line, column = (1, 1) if mark is None else (mark.line + 1,
                                                    mark.column + 1)
        self._notes.append(
            ConfigurationNote(self._path_of(mark), line, column,
                              _printable(message)))

    def _path_of(self, mark):
        """
        :return: The file ``mark`` is in: the one its node was read from
            (see :func:`_compose`), else this report's.
        """
        name = getattr(mark, "name", None)
        if isinstance(name, str) and not name.startswith("<"):
            return name
        return self.path

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
        self._errors.append(ConfigurationError(
            self._path_of(mark), line, column, _printable(message)))

    def at_position(self, line, column, message):
        """
        Record a problem at a 1-based line and column.
        """
        self._errors.append(
            ConfigurationError(self.path, line, column, _printable(message)))


def _compose(report, text):
    """
    Compose ``text`` into a tree of YAML nodes, aliases and merges expanded
    (see :func:`_expand`).

    :return: The root node, or ``None`` after reporting why there is none.
    """
    loader = None
    try:
        # The reader refuses unprintable characters as it is built.
        loader = _Loader(text)
        # Marks carry the file's name, so a node merged into another
        # file's tree (a compose override) is still reported in its own.
        loader.name = report.path
        root = loader.get_single_node()
        aliases = loader.aliases
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
        return None
    return _expand(report, root, aliases)


#: The most values (scalars, lists and mappings) a file may hold once its
#: YAML aliases are expanded.  Real configurations hold a few thousand; a
#: file of a few lines can otherwise expand to billions ("billion laughs").
_MAX_VALUES = 100000


class _Unexpandable(Exception):
    """
    The alias graph cannot be made a tree: ``node`` is where it stopped.
    """

    def __init__(self, node, message):
        Exception.__init__(self, node, message)
        self.node = node
        self.message = message


def _expand(report, root, aliases):
    """
    Make the composed graph a tree: every alias becomes a copy of what its
    anchor names, and every ``<<`` merge key becomes the keys it merges (a
    mapping's own keys win, then earlier merged mappings over later ones,
    as YAML's merge type says).  Copies keep the anchor's marks, so a
    problem in an aliased value is reported where it was written.

    :param root: The root node from the composer.
    :param aliases: :attr:`_Loader.aliases`.
    :return: The tree, or ``None`` after reporting that it expands to more
        than :data:`_MAX_VALUES` values (at the outermost alias that does
        it), that an alias contains itself or that a merge names something
        other than mappings.
    """
    budget = [_MAX_VALUES]
    path = set()

    def copy(node, alias):
        budget[0] -= 1
        if budget[0] < 0:
            raise _Unexpandable(
                alias or node, "YAML aliases expand this file to more than "
                "%d values; write it with fewer aliases" % (_MAX_VALUES,))
        if isinstance(node, yaml.ScalarNode):
            return yaml.ScalarNode(node.tag, node.value, node.start_mark,
                                   node.end_mark, node.style)
        if id(node) in path:
            raise _Unexpandable(alias or node,
                                "this YAML alias contains itself")
        path.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return yaml.SequenceNode(
                    node.tag, [copy(item, alias or aliases.get(
                        (id(node), index)))
                               for index, item in enumerate(node.value)],
                    node.start_mark, node.end_mark, node.flow_style)
            return yaml.MappingNode(node.tag, merged(node, alias),
                                    node.start_mark, node.end_mark,
                                    node.flow_style)
        finally:
            path.discard(id(node))

    def merged(node, alias):
        own, merges = [], []
        for key, value in node.value:
            inner = alias or aliases.get((id(node), id(key)))
            if not (isinstance(key, yaml.ScalarNode) and key.tag == _MERGE):
                own.append((copy(key, alias), copy(value, inner)))
                continue
            sources = (value.value if isinstance(value, yaml.SequenceNode)
                       else [value])
            for index, source in enumerate(sources):
                if not isinstance(source, yaml.MappingNode):
                    raise _Unexpandable(
                        source, "<< merges a mapping or a list of mappings, "
                        "not %s" % (_describe(source),))
                merges.append(copy(source, inner or aliases.get(
                    (id(value), index))).value)
        present = {key.value for key, _ in own
                   if isinstance(key, yaml.ScalarNode)}
        for items in merges:
            for key, value in items:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in present:
                        continue
                    present.add(key.value)
                own.append((key, value))
        return own

    try:
        return copy(root, None)
    except _Unexpandable as e:
        report.at(e.node, e.message)
    except RecursionError:
        report.at(None, "not valid YAML: nested too deeply")
    return None


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


#: The most candidates "did you mean" compares a word with: a file with
#: thousands of misspelt names against thousands of defined ones must not
#: cost their product in string comparisons.
SUGGESTION_CANDIDATES = 32


# The last few candidate collections, indexed by name length: a check
# suggests from the same collection for every misspelt name of a file, so
# it is indexed once, not once per name.  (Held with their size, so a
# collection that grew is indexed again.)
_INDEXES = []


def _by_length(candidates):
    for held, size, index in _INDEXES:
        if held is candidates and size == len(candidates):
            return index
    index = {}
    for candidate in candidates:
        index.setdefault(len(candidate), []).append(candidate)
    for names in index.values():
        names.sort()
    _INDEXES.insert(0, (candidates, len(candidates), index))
    del _INDEXES[4:]
    return index


def _nearby(word, candidates, limit=SUGGESTION_CANDIDATES):
    """
    :return: At most ``limit`` of ``candidates`` that could be close to
        ``word`` (difflib's ratio of 0.6 needs lengths within a factor of
        about two), nearest in length first, then by name.
    """
    index = _by_length(candidates)
    size = len(word)
    found = []
    longest = max(index, default=0)
    for distance in range(max(size, longest) + 1):
        for length in sorted({size - distance, size + distance}):
            if 3 * length >= size and 3 * size >= length:
                found.extend(index.get(length, ()))
        if len(found) >= limit:
            break
    return found[:limit]


def _did_you_mean(word, candidates):
    """
    :return: `` (did you mean "x"?)`` for the closest of ``candidates`` (of
        the few :func:`_nearby` keeps), or an empty string when none is
        close.
    """
    matches = difflib.get_close_matches(word, _nearby(word, candidates), n=1)
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


def _flag(report, node, what):
    """
    :return: The boolean ``node`` holds, or ``None`` after reporting.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
        return yaml.safe_load(node.value) is True
    report.at(node, "%s must be true or false, not %s" % (
        what, _describe(node)))
    return None


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

_SIZE = re.compile(r"\A([0-9]+)(?:\.([0-9]+))?\s*(?:([KMGT])(?:i?B)?|B)?\Z",
                   re.IGNORECASE)
_SIZE_UNITS = {None: 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3,
               "T": 1024 ** 4}


def _size(report, node, what):
    """
    Read a size: an integer number of bytes, or a string with a binary
    ``K``/``M``/``G``/``T`` suffix (``"512M"``, ``"1G"``, ``"2.5G"``;
    ``"1GiB"``, ``"1GB"`` and ``"1g"`` mean the same).  A fraction of a byte
    is dropped.

    :return: Bytes as a positive ``int``, or ``None`` after reporting.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
        return _positive(report, node, what)
    if isinstance(node, yaml.ScalarNode) and node.tag in (_STR, _FLOAT):
        match = _SIZE.match(node.value.strip())
        if match is not None:
            whole, fraction, unit = match.groups()
            number = _decimal(whole)
            # Exact arithmetic: "2.5G" is 2684354560 bytes, not a float's
            # approximation of it.
            scale = _SIZE_UNITS[None if unit is None else unit.upper()]
            value = None
            if number is not None and len(fraction or "") <= 18:
                value = number * scale + (
                    int(fraction) * scale // 10 ** len(fraction)
                    if fraction else 0)
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
    report.at(node, "%s %s is not a safe name: %s" % (
        what, _quote(name), SAFE_NAME_RULE))
    return False


def _check_alias(report, node, alias, what):
    """
    Report ``alias`` at ``node`` unless it can be a link's alias (see
    :func:`flocker._model.is_link_alias`).

    :return: ``True`` if it can.
    """
    if is_link_alias(alias):
        return True
    report.at(node, "%s %s is not a link alias: %s" % (
        what, _quote(alias), LINK_ALIAS_RULE))
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

