"""
The deployment file's ``standby:`` section: which nodes hold continuously
updated copies of an application's volumes::

    standby:
      web: {nodes: ["10.0.0.2", "10.0.0.3"], every: 2s, automatic: false}

``nodes`` is required (one node at least, each a node of the deployment
other than the application's own); ``every`` is a duration such as ``2s``,
``500ms`` or ``1m`` (:data:`flocker._model.DEFAULT_STANDBY_INTERVAL` when
left out); ``automatic`` is ``false`` (the default) or ``true`` (the cluster
fails the application over by itself, with leases in etcd: see
docs/etcd.rst), which needs :data:`MINIMUM_AUTOMATIC_NODES` nodes.  Every
problem is reported at its place in the file.
"""

from .._model import (
    DEFAULT_STANDBY_INTERVAL, STANDBY_INTERVAL_RANGE, Standby,
)
from ._compose_values import _duration
from ._yaml import (
    _check_name, _did_you_mean, _flag, _mapping, _model, _quote, _require,
    _sequence, _text, _unknown_keys,
)

__all__ = ["MINIMUM_AUTOMATIC_NODES"]

#: The fewest nodes automatic failover runs on: etcd answers only with a
#: majority of its members, one per node, and a majority of two is both.
MINIMUM_AUTOMATIC_NODES = 3

_KEYS = ("nodes", "every", "automatic")

# Largest unit first: an interval is written in the largest unit that
# divides it exactly, so "2s" is written back as "2s", not "2000ms".
_UNITS = (("h", 3600 * 10 ** 9), ("m", 60 * 10 ** 9), ("s", 10 ** 9),
          ("ms", 10 ** 6), ("us", 10 ** 3), ("ns", 1))


def interval_text(nanoseconds):
    """
    :param int nanoseconds: A positive duration.
    :return: The duration as the deployment file writes it (``"2s"``,
        ``"1500ms"``), which :func:`_read_standbys` reads back unchanged.
    """
    for unit, scale in _UNITS:
        if nanoseconds % scale == 0:
            return "%d%s" % (nanoseconds // scale, unit)


def _interval(report, node):
    """
    :return: The interval ``node`` gives, in nanoseconds, or ``None``
        after reporting it.
    """
    value = _duration(report, node, "standby interval (every)")
    if value is None:
        return None
    low, high = STANDBY_INTERVAL_RANGE
    if not low <= value <= high:
        report.at(node, "standby interval (every) %s must be between %s and "
                  "%s" % (_quote(node.value), interval_text(low),
                          interval_text(high)))
        return None
    return value


def _standby_nodes(report, node, name, primary, addresses):
    """
    Read the ``nodes`` list of the standby of application ``name``.

    :param primary: The address of the node the application is placed on,
        or ``None`` if it is not placed.
    :param addresses: The node addresses of the deployment file.
    :return: ``list`` of addresses, or ``None`` after reporting a problem.
    """
    items = _sequence(report, node, "standby nodes of %s" % (name,),
                      empty_ok=False)
    if items is None:
        return None
    if not items:
        report.at(node, "standby of %s names no node: list at least one" % (
            name,))
        return None
    found = []
    valid = True
    for item in items:
        address = _text(report, item, "standby node")
        if address is None:
            valid = False
        elif address not in addresses:
            report.at(item, "standby node %s of %s is not a node of this "
                      "deployment%s" % (_quote(address), name,
                                        _did_you_mean(address, addresses)))
            valid = False
        elif address == primary:
            report.at(item, "node %s runs %s, so it cannot be its standby: "
                      "a standby is another node" % (address, name))
            valid = False
        elif address in found:
            report.at(item, "standby node %s of %s is listed twice" % (
                address, name))
            valid = False
        else:
            found.append(address)
    return found if valid else None


def _read_standby(report, key_node, name, node, placed, names, applications,
                  addresses):
    """
    Read one application's standby.

    :return: A :class:`Standby`, or ``None`` after reporting a problem.
    """
    if not _check_name(report, key_node, name, "application"):
        return None
    valid = True
    if names is not None and name not in names:
        report.at(key_node, "standby for application %s, which is not "
                  "defined in the application configuration%s" % (
                      _quote(name), _did_you_mean(name, names)))
        valid = False
    elif name not in placed:
        report.at(key_node, "standby for application %s, which no node "
                  "runs: place it under nodes first" % (_quote(name),))
        valid = False
    elif name in applications and not applications[name].all_volumes():
        report.at(key_node, "application %s has no volume, so a standby has "
                  "nothing to copy: give it a volume or remove its "
                  "standby" % (name,))
        valid = False
    items = _mapping(report, node, "the standby of %s" % (name,))
    if items is None:
        return None
    _unknown_keys(report, items, _KEYS, "the standby of %s" % (name,))
    if not _require(report, items, ("nodes",), node,
                    "the standby of %s" % (name,)):
        return None
    fields = {key: value for key, _, value in items}
    primary = placed[name][0] if name in placed else None
    nodes = _standby_nodes(report, fields["nodes"], name, primary, addresses)
    interval = DEFAULT_STANDBY_INTERVAL
    if "every" in fields:
        interval = _interval(report, fields["every"])
    automatic = False
    if "automatic" in fields:
        automatic = _flag(report, fields["automatic"], "automatic")
        if automatic and len(addresses) < MINIMUM_AUTOMATIC_NODES:
            report.at(fields["automatic"], "automatic failover needs at "
                      "least %d nodes, each running an etcd member (a "
                      "majority of them must outlive a lost node); this "
                      "deployment has %d: add nodes, or leave automatic "
                      "out and fail over with flocker-deploy --failover "
                      "NODE" % (MINIMUM_AUTOMATIC_NODES, len(addresses)))
            return None
    if not valid or None in (nodes, interval, automatic):
        return None
    return _model(report, key_node, lambda: Standby(
        application=name, nodes=nodes, interval=interval,
        automatic=automatic))


def _read_standbys(report, node, placed, names, applications, addresses):
    """
    Read the deployment file's ``standby:`` section.

    :param node: The section's YAML node.
    :param placed: ``dict`` of each application name the ``nodes`` section
        places to ``(address, YAML node)``.
    :param names: Every application name the application file defines, or
        ``None`` if it was not read.
    :param applications: ``dict`` of name to
        :class:`flocker._model.Application`.
    :param addresses: The ``nodes`` section's addresses.
    :return: ``dict`` of application name to :class:`Standby`, complete
        only if no problem was reported.
    """
    standbys = {}
    for name, key_node, value in _mapping(report, node, "standby",
                                          empty_ok=True) or ():
        standby = _read_standby(report, key_node, name, value, placed, names,
                                applications, addresses)
        if standby is not None:
            standbys[name] = standby
    return standbys


def _standbys_to_native(standbys):
    """
    :param standbys: ``PMap`` of application name to :class:`Standby`.
    :return: The ``standby:`` section's mapping, by application name,
        leaving out values that are the default.
    """
    section = {}
    for name in sorted(standbys):
        standby = standbys[name]
        written = {"nodes": list(standby.nodes)}
        if standby.interval != DEFAULT_STANDBY_INTERVAL:
            written["every"] = interval_text(standby.interval)
        if standby.automatic:
            written["automatic"] = True
        section[name] = written
    return section
