"""
Merging a compose override file (``compose.override.yaml`` beside
``compose.yaml``) into the compose file, as the compose specification's
merge rules say:

* mappings are merged key by key, the override's values winning;
* sequences are appended to, except ``command``, ``entrypoint`` and
  ``healthcheck.test``, which the override replaces, and ``ports``,
  ``volumes``, ``secrets`` and ``configs``, whose entries the override
  replaces where they share their unique key (a port's address, published
  port, target and protocol; the others' target) and appends otherwise;
* ``environment``, ``labels``, ``sysctls``, ``annotations`` (a mapping or
  a ``KEY=value`` list) are merged as mappings, and so are ``depends_on``
  and a service's ``networks`` (a list or a mapping) when either file
  writes a mapping;
* scalars are replaced, as is a value whose kind differs;
* a value tagged ``!reset`` removes the key, and one tagged ``!override``
  replaces the value without merging.

The merge works on YAML nodes, and every node keeps the position it had
in its own file, so a problem is reported in the file and at the line that
wrote it.
"""

import yaml

from ._compose_values import _split_port

__all__ = []

_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR, _NULL = (_TAG + "map", _TAG + "seq", _TAG + "str",
                           _TAG + "null")

#: Service keys the override replaces whole.
_REPLACED = frozenset({"command", "entrypoint"})

#: Service keys holding a mapping or a ``KEY=value`` list.
_PAIRS = frozenset({"environment", "labels", "sysctls", "annotations"})

#: Service keys holding a list of names or a mapping of name to settings.
_NAMED = frozenset({"depends_on", "networks"})

_RESOLVER = yaml.resolver.Resolver()


def _untagged(node):
    """
    :return: ``node`` with its ``!override`` or ``!reset`` tag replaced by
        the tag YAML would have given it, so readers see an ordinary value.
    """
    if isinstance(node, yaml.ScalarNode):
        tag = _RESOLVER.resolve(yaml.ScalarNode, node.value,
                                (node.style is None, False))
        return yaml.ScalarNode(tag, node.value, node.start_mark,
                               node.end_mark, node.style)
    if isinstance(node, yaml.SequenceNode):
        return yaml.SequenceNode(_SEQ, node.value, node.start_mark,
                                 node.end_mark, node.flow_style)
    return yaml.MappingNode(_MAP, node.value, node.start_mark,
                            node.end_mark, node.flow_style)


def _scalar_text(node):
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _field(node, name):
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if _scalar_text(key) == name:
                return _scalar_text(value)
    return None


def _port_key(node):
    text = _scalar_text(node)
    if text is not None:
        parts = _split_port(text)
        return ("port",) + (parts if parts is not None else (text,))
    return ("port", _field(node, "host_ip") or "",
            _field(node, "published") or "", _field(node, "target"),
            _field(node, "protocol") or "tcp")


def _volume_key(node):
    text = _scalar_text(node)
    if text is not None:
        parts = text.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return _field(node, "target")


def _file_key(node):
    text = _scalar_text(node)
    if text is not None:
        return text
    return _field(node, "target") or _field(node, "source")


#: Service keys whose entries are unique by a key, and how to find it.
_UNIQUE = {"ports": _port_key, "volumes": _volume_key,
           "secrets": _file_key, "configs": _file_key}


def _as_mapping(node, pairs):
    """
    :return: A mapping node of a list ``node`` of ``KEY=value`` texts
        (``pairs``) or of names, each name mapped to null; ``node`` itself
        when it is a mapping, or ``None`` when it is neither.
    """
    if isinstance(node, yaml.MappingNode):
        return node
    if not isinstance(node, yaml.SequenceNode):
        return None
    items = []
    for item in node.value:
        text = _scalar_text(item)
        if text is None:
            return None
        key, equals, value = text.partition("=") if pairs else (
            text, "", "")
        value_node = (
            yaml.ScalarNode(_STR, value, item.start_mark, item.end_mark)
            if equals else
            yaml.ScalarNode(_NULL, "", item.start_mark, item.end_mark))
        items.append((yaml.ScalarNode(_STR, key, item.start_mark,
                                      item.end_mark), value_node))
    return yaml.MappingNode(_MAP, items, node.start_mark, node.end_mark)


def _merge_sequence(base, override, unique):
    """
    Append ``override``'s entries to ``base``'s; with ``unique`` (a function
    giving an entry's unique key), an entry sharing its key with one of
    ``base`` replaces it.  A scalar written twice is kept once.
    """
    values = list(base.value)
    for item in override.value:
        if unique is not None:
            key = unique(item)
            same = [index for index, old in enumerate(values)
                    if unique(old) == key]
            if same:
                values[same[0]] = item
                continue
        elif isinstance(item, yaml.ScalarNode) and any(
                isinstance(old, yaml.ScalarNode) and old.value == item.value
                for old in values):
            continue
        values.append(item)
    return yaml.SequenceNode(base.tag, values, base.start_mark,
                             base.end_mark, base.flow_style)


def _merge_mapping(base, override, where):
    """
    Merge two mapping nodes key by key.

    :param tuple where: The keys leading to these mappings.
    """
    values = list(base.value)
    index = {_scalar_text(key): position
             for position, (key, _) in enumerate(values)
             if _scalar_text(key) is not None}
    removed = set()
    for key, value in override.value:
        name = _scalar_text(key)
        if value.tag == "!reset":
            if name in index:
                removed.add(index[name])
            continue
        if name not in index or index[name] in removed:
            index[name] = len(values)
            values.append((key, _untagged(value) if value.tag == "!override"
                           else value))
            continue
        position = index[name]
        old_key, old = values[position]
        if value.tag == "!override":
            values[position] = (key, _untagged(value))
        else:
            values[position] = (old_key, _merge(old, value, where + (name,)))
    values = [item for position, item in enumerate(values)
              if position not in removed]
    return yaml.MappingNode(base.tag, values, base.start_mark, base.end_mark,
                            base.flow_style)


def _merge(base, override, where):
    """
    :return: The node that ``override``, at ``where`` (the keys leading to
        it), makes of ``base``.
    """
    key = where[-1] if where else None
    service_level = len(where) == 3 and where[0] == "services"
    if service_level and key in _REPLACED:
        return override
    if where[-2:] == ("healthcheck", "test") and len(where) == 4:
        return override
    if service_level and (key in _PAIRS or (key in _NAMED and (
            isinstance(base, yaml.MappingNode)
            or isinstance(override, yaml.MappingNode)))):
        base_map = _as_mapping(base, key in _PAIRS)
        override_map = _as_mapping(override, key in _PAIRS)
        if base_map is not None and override_map is not None:
            return _merge_mapping(base_map, override_map, where)
        return override
    if isinstance(base, yaml.MappingNode) and isinstance(
            override, yaml.MappingNode):
        return _merge_mapping(base, override, where)
    if isinstance(base, yaml.SequenceNode) and isinstance(
            override, yaml.SequenceNode):
        return _merge_sequence(base, override,
                               _UNIQUE.get(key) if service_level else None)
    return override


def merge_override(base, override):
    """
    Merge an override file's root node into a compose file's.

    :param yaml.MappingNode base: The compose file's root (aliases
        expanded).
    :param yaml.MappingNode override: The override file's root.
    :return: The merged root node.  A file keeping its services at the top
        (no ``services`` key, the fig format) is merged as if they were
        under ``services``.
    """
    def services_at_top(node):
        return not any(_scalar_text(key) == "services"
                       for key, _ in node.value)
    if services_at_top(base) and services_at_top(override):
        return _merge_mapping(base, override, ("services",))
    return _merge_mapping(base, override, ())
