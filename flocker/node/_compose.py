"""
The compose/fig format of the application configuration: a mapping of
service names to services at the top of the file, or under a ``services:``
key.  See ``docs/compose.rst`` for what is accepted, noted and refused.
"""

import re

import yaml

from .._model import AttachedVolume, Link, Port, RestartPolicy
from ._draft import (
    _command, _cpu_shares, _image, _mem_limit, _mountpoint,
    _native_environment, _read_fields, _set_environment, _start_draft,
)
from ._yaml import (
    _BOOL, _LARGEST_NUMBER, _check_alias, _decimal, _did_you_mean,
    _mapping, _model, _quote, _require, _sequence, _shown, _text,
)

__all__ = []


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
        if _check_alias(report, item, alias, "link alias"):
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


