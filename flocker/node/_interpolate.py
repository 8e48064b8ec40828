"""
Variables in compose files, as the compose specification defines them, and
the ``.env``/``env_file`` files that give their values.

Substitution forms, in any scalar value of a compose file:

``$$``
    a literal ``$``.
``$NAME``, ``${NAME}``
    the value of ``NAME``; empty (with a note) when it is unset.
``${NAME:-default}`` / ``${NAME-default}``
    ``default`` when ``NAME`` is unset or empty / only when unset.
``${NAME:?message}`` / ``${NAME?message}``
    a problem saying ``message`` when ``NAME`` is unset or empty / unset.
``${NAME:+alternative}`` / ``${NAME+alternative}``
    ``alternative`` when ``NAME`` is set and not empty / set, else empty.

Defaults, messages and alternatives may themselves hold substitutions.
Nothing here reads files or the process environment: callers pass the
values in, so the functions are pure.
"""

import re

__all__ = ["InterpolationError", "interpolate", "parse_env_file"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(Exception):
    """
    A value or an env file line cannot be read.

    :ivar offset: Index of the offending character in the text given (a
        ``(line, column)`` pair for env files).
    :ivar str message: What is wrong.
    """

    def __init__(self, offset, message):
        Exception.__init__(self, offset, message)
        self.offset = offset
        self.message = message

    def __str__(self):
        return self.message


def interpolate(text, variables, unset=None):
    """
    Substitute the variables in ``text``.

    :param str text: A value from a compose file.
    :param variables: Mapping of variable name to value.
    :param unset: ``None``, or a ``set`` to which the name of every unset
        variable substituted as empty is added (for a note).
    :return: The text with every substitution made.
    :raises InterpolationError: For a ``${`` without a name or not closed,
        or a ``${NAME?message}`` whose variable is missing.  A ``$`` that
        starts no substitution (``$(date)``) is kept, as compose keeps it.
    """
    result, end = _substitute(text, 0, variables, unset, closing=False)
    return result


def _substitute(text, index, variables, unset, closing):
    """
    Substitute from ``index`` until the end of ``text`` or, when
    ``closing``, until the ``}`` that ends the enclosing ``${...}``.

    :return: ``(result, index after the text read)``.
    """
    parts = []
    length = len(text)
    while index < length:
        character = text[index]
        if closing and character == "}":
            return "".join(parts), index
        if character != "$":
            parts.append(character)
            index += 1
            continue
        following = text[index + 1:index + 2]
        if following == "$":
            parts.append("$")
            index += 2
            continue
        if following == "{":
            value, index = _braced(text, index, variables, unset)
            parts.append(value)
            continue
        match = _NAME.match(text, index + 1)
        if match is None:
            # As compose reads it: a "$" that starts no substitution
            # ("$(date)", "^a$") is itself.
            parts.append("$")
            index += 1
            continue
        parts.append(_lookup(match.group(), variables, unset))
        index = match.end()
    if closing:
        raise InterpolationError(length, "unclosed ${: a } is missing")
    return "".join(parts), index


def _lookup(name, variables, unset):
    if name in variables:
        return variables[name]
    if unset is not None:
        unset.add(name)
    return ""


def _braced(text, start, variables, unset):
    """
    Read the ``${...}`` at ``start``.

    :return: ``(value, index after the closing brace)``.
    """
    match = _NAME.match(text, start + 2)
    if match is None:
        raise InterpolationError(
            start, "${ must be followed by a variable name, as in ${NAME}")
    name = match.group()
    index = match.end()
    operator = ""
    for candidate in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(candidate, index):
            operator = candidate
            break
    if not operator:
        if text[index:index + 1] != "}":
            raise InterpolationError(
                index, "${%s must be closed by } or followed by :-, -, :?, "
                "?, :+ or +" % (name,))
        return _lookup(name, variables, unset), index + 1
    argument, end = _substitute(text, index + len(operator), variables,
                                unset, closing=True)
    present = name in variables
    filled = present and variables[name] != ""
    given = filled if operator.startswith(":") else present
    kind = operator[-1]
    if kind == "-":
        value = variables[name] if given else argument
    elif kind == "+":
        value = argument if given else ""
    else:
        if not given:
            raise InterpolationError(start, "variable %s is %s: %s" % (
                name, "empty or unset" if operator == ":?" else "unset",
                argument or "it is required"))
        value = variables[name]
    return value, end + 1


_ENV_LINE = re.compile(
    r"\A[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*(=|:)?")

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"',
            "$": "\\$"}


def parse_env_file(text, variables=None):
    """
    Read a ``.env`` or ``env_file`` file: one ``NAME=value`` a line
    (``export NAME=value`` too), ``#`` comments, blank lines.  A value may
    be single-quoted (literal), double-quoted (``\\n``, ``\\t``, ``\\"``
    escapes and substitutions) or bare (substitutions; a ``#`` after a space
    starts a comment; surrounding blanks are dropped).  Substitutions see
    ``variables`` and the lines above.  A line holding a name alone gives
    the name's value in ``variables``, if any.

    :param str text: The file's content.
    :param variables: Mapping of the values substitutions may use, or
        ``None``.
    :return: ``(values, lines)``: ``dict`` of name to value, and ``dict`` of
        name to its 1-based line.
    :raises InterpolationError: With ``offset`` a ``(line, column)`` pair
        (1-based) for a line that is not ``NAME=value``, an unclosed quote
        or a bad substitution.
    """
    variables = dict(variables or {})
    values, lines = {}, {}
    source = text.splitlines()
    number = 0
    while number < len(source):
        line = source[number]
        number += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise InterpolationError(
                (number, len(line) - len(line.lstrip()) + 1),
                "expected NAME=value")
        name = match.group(1)
        if match.group(2) is None:
            if line[match.end():].strip():
                raise InterpolationError((number, match.end() + 1),
                                         "expected NAME=value")
            if name in variables:
                values[name] = variables[name]
                lines[name] = number
            continue
        first_line = number
        rest = line[match.end():].lstrip(" \t")
        column = len(line) - len(rest) + 1
        lookup = dict(variables)
        lookup.update(values)
        try:
            if rest[:1] in ("'", '"'):
                quote = rest[0]
                body = rest[1:]
                first = number
                # A quoted value may go on over several lines.
                while _closing_quote(body, quote) is None and number < len(
                        source):
                    body += "\n" + source[number]
                    number += 1
                end = _closing_quote(body, quote)
                if end is None:
                    raise InterpolationError(
                        (first, column), "the %s quote is never closed" % (
                            "single" if quote == "'" else "double",))
                value = body[:end]
                if quote == '"':
                    value = interpolate(_unescape(value), lookup)
            else:
                value = re.split(r"[ \t]#", rest, maxsplit=1)[0].strip()
                value = interpolate(value, lookup)
        except InterpolationError as e:
            if isinstance(e.offset, tuple):
                raise
            raise InterpolationError((number, column), e.message)
        values[name] = value
        lines[name] = first_line
    return values, lines


def _closing_quote(body, quote):
    index = 0
    while index < len(body):
        if body[index] == "\\" and quote == '"':
            index += 2
            continue
        if body[index] == quote:
            return index
        index += 1
    return None


def _unescape(value):
    # A "\$" stays escaped for the substitution that follows ($$).
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1),
                                                     "\\" + m.group(1)),
                  value).replace("\\$", "$$")
