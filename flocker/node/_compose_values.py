"""
Readers of the value shapes compose files use in many keys: durations,
CPU counts, lists written as strings, ``KEY=value`` lists or mappings,
and port specifications.  Each reads a YAML node and reports problems at it.
"""

import re

import yaml

from ._yaml import (
    _BOOL, _FLOAT, _INT, _NULL, _describe, _integer, _mapping, _quote,
    _sequence, _text,
)

__all__ = []

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|\u00b5s|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 10 ** 3, "\u00b5s": 10 ** 3,
                   "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9,
                   "h": 3600 * 10 ** 9}


def _duration(report, node, what):
    """
    Read a compose duration: ``"1m30s"``, ``"10s"``, ``"500ms"``,
    ``"1h"``, or a number of seconds.

    :return: Nanoseconds as an ``int``, or ``None`` after reporting.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag in (_INT, _FLOAT):
        text = node.value + "s"
    else:
        text = _text(report, node, what)
        if text is None:
            return None
    text = text.strip()
    total, index = 0, 0
    while index < len(text):
        match = _DURATION_PART.match(text, index)
        if match is None:
            break
        number, unit = match.groups()
        whole, _, fraction = number.partition(".")
        scale = _DURATION_UNITS[unit]
        total += int(whole) * scale + (
            int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
        index = match.end()
    if not text or index != len(text) or len(text) > 40:
        report.at(node, '%s %s is not a duration such as "30s", "1m30s" or '
                  '"500ms"' % (what, _quote(text)))
        return None
    return total


def _seconds(report, node, what):
    """
    :return: A duration rounded up to whole seconds, or ``None``.
    """
    nanoseconds = _duration(report, node, what)
    if nanoseconds is None:
        return None
    return -(-nanoseconds // 10 ** 9)


_CPUS = re.compile(r"\A([0-9]{1,6})(?:\.([0-9]{0,9}))?\Z")


def _cpus(report, node, what):
    """
    Read a number of CPUs (``0.5``, ``"2"``).

    :return: Billionths of a CPU as a positive ``int``, or ``None``.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
        match = _CPUS.match(node.value.strip())
        if match is not None:
            whole, fraction = match.group(1), match.group(2) or ""
            value = int(whole) * 10 ** 9 + int(
                (fraction + "0" * 9)[:9] or "0")
            if value > 0:
                return value
    report.at(node, "%s must be a positive number of CPUs such as 0.5 or "
              "2, not %s" % (what, _describe(node)))
    return None


def _boolean(report, node, what):
    """
    :return: ``True`` or ``False`` read from a YAML boolean (or the strings
        ``"true"``/``"false"``), or ``None`` after reporting.
    """
    if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
        return node.value.lower() in ("true", "yes", "on", "y")
    if isinstance(node, yaml.ScalarNode) and node.value in ("true", "false"):
        return node.value == "true"
    report.at(node, "%s must be true or false, not %s" % (
        what, _describe(node)))
    return None


def _strings(report, node, what, single=True):
    """
    Read a list of strings, or (when ``single``) one string meaning a list
    of one.

    :return: ``list`` of ``(text, node)``, or ``None`` if nothing valid.
    """
    if single and isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
        items = [node]
    else:
        items = _sequence(report, node, what)
        if items is None:
            return None
    result = []
    for item in items:
        text = _text(report, item, what + " entry")
        if text is not None:
            result.append((text, item))
    return result


def _pairs(report, node, what, separator="=", null_ok=False):
    """
    Read ``KEY=value`` pairs written as a mapping or as a list of strings
    (compose allows both for labels, sysctls, extra hosts...).

    :param str separator: What separates key and value in a list entry.
    :param bool null_ok: Whether a key may have no value (``None``).
    :return: ``list`` of ``(key, value, node)``, or ``None``.
    """
    if isinstance(node, yaml.SequenceNode):
        result = []
        for item in node.value:
            text = _text(report, item, what + " entry")
            if text is None:
                continue
            key, found, value = text.partition(separator)
            if not key or (not found and not null_ok):
                report.at(item, "%s entry %s: write KEY%sVALUE" % (
                    what, _quote(text), separator))
                continue
            result.append((key, value if found else None, item))
        return result
    items = _mapping(report, node, what, empty_ok=True)
    if items is None:
        return None
    result = []
    for key, key_node, value_node in items:
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag == _NULL:
            if null_ok:
                result.append((key, None, key_node))
                continue
            result.append((key, "", key_node))
            continue
        value = _text(report, value_node, "%s %s" % (what, key))
        if value is not None:
            result.append((key, value, value_node))
    return result


def _non_negative(report, node, what):
    """
    :return: An integer of zero or more, or ``None`` after reporting.
    """
    value = _integer(report, node, what)
    if value is not None and value < 0:
        report.at(node, "%s must not be negative" % (what,))
        return None
    return value


_PORT_RANGE = re.compile(r"\A([0-9]{1,5})(?:-([0-9]{1,5}))?\Z")


def _port_range(text):
    """
    :param str text: ``"80"`` or ``"8000-8010"``.
    :return: ``list`` of ports, or ``None`` if ``text`` is neither or a
        port is outside 1-65535 or the range runs backwards.
    """
    match = _PORT_RANGE.match(text)
    if match is None:
        return None
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not 1 <= first <= last <= 65535:
        return None
    return list(range(first, last + 1))


def _split_port(text):
    """
    Split a short-syntax compose port, ``[[IP:]HOST:]CONTAINER[/PROTOCOL]``
    (IPv6 addresses in brackets).

    :return: ``(ip, host, container, protocol)`` as written (``ip`` and
        ``host`` may be ``""``), or ``None`` if ``text`` has too many parts.
    """
    body, slash, protocol = text.partition("/")
    ip = ""
    if body.startswith("["):
        ip, bracket, body = body[1:].partition("]")
        if not bracket or not body.startswith(":"):
            return None
        body = body[1:]
        parts = body.split(":")
        if len(parts) != 2:
            return None
        return ip, parts[0], parts[1], protocol if slash else "tcp"
    parts = body.split(":")
    if len(parts) == 1:
        return "", "", parts[0], protocol if slash else "tcp"
    if len(parts) == 2:
        return "", parts[0], parts[1], protocol if slash else "tcp"
    if len(parts) == 3:
        return parts[0], parts[1], parts[2], protocol if slash else "tcp"
    return None
