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
import heapq
import re

import attr
import yaml
from pyrsistent import pvector

from .._model import InvalidModel, is_link_alias, is_safe_name

__all__ = ["ConfigurationError", "ConfigurationErrors"]


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


def _check_alias(report, node, alias, what):
    """
    Report ``alias`` at ``node`` unless it can be a link's alias (see
    :func:`flocker._model.is_link_alias`).

    :return: ``True`` if it can.
    """
    if is_link_alias(alias):
        return True
    report.at(node, "%s %s is not a link alias: use 1-63 letters, digits, "
              "'-' or '_', starting with a letter (it begins environment "
              "variable names)" % (what, _quote(alias)))
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

