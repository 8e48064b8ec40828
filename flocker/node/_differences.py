"""
What differs between an application as it runs and as the files describe
it, in words: the reason the plan gives for each restart and ``--status``
for each drift.  Environment variables are named, their values never shown
(they are often secrets).
"""

import attr

from .._model import Application, ContainerOptions

__all__ = ["differences", "describe_differences"]


def _ports(application):
    if not application.ports:
        return "none"
    return ",".join("%d->%d" % (port.external, port.internal) for port in
                    sorted(application.ports, key=lambda p: p.external))


def _environment(current, wanted):
    old, new = current.environment, wanted.environment
    names = sorted(name for name in set(old) | set(new)
                   if old.get(name) != new.get(name))
    return "environment " + ", ".join(names)


def _volume(application):
    volume = application.volume
    if volume is None:
        return "none"
    if volume.maximum_size is None:
        return volume.mountpoint
    return "%s (maximum %d bytes)" % (volume.mountpoint, volume.maximum_size)


def _options(current, wanted):
    # Named, not shown: labels and the like may hold secrets too.
    return "options " + ", ".join(
        field.name for field in attr.fields(ContainerOptions)
        if getattr(current.options, field.name)
        != getattr(wanted.options, field.name))


def _value(value):
    return "none" if value is None else str(value)


# The fields described specially; every other field of Application that
# differs is named by itself, so fields added later are never silent.
_SPECIAL = {
    "image": lambda c, w: "image %s -> %s" % (c.image, w.image),
    "command": lambda c, w: "command",
    "environment": _environment,
    "ports": lambda c, w: "ports %s -> %s" % (_ports(c), _ports(w)),
    "volume": lambda c, w: "volume %s -> %s" % (_volume(c), _volume(w)),
    "links": lambda c, w: "links",
    "mem_limit": lambda c, w: "mem_limit %s -> %s" % (
        _value(c.mem_limit), _value(w.mem_limit)),
    "cpu_shares": lambda c, w: "cpu_shares %s -> %s" % (
        _value(c.cpu_shares), _value(w.cpu_shares)),
    "restart_policy": lambda c, w: "restart_policy %s -> %s" % (
        c.restart_policy.name, w.restart_policy.name),
    "options": _options,
}


def differences(current, wanted):
    """
    :param Application current: The application as its container was
        created.
    :param Application wanted: The application as the files describe it.
    :return: ``tuple`` of short phrases, one per differing field, in the
        order of the model's fields (``image old -> new``, ``environment
        NAME, NAME``, ``ports ...``, ``command``...); empty when equal.
    """
    if current == wanted:
        return ()
    said = []
    for field in attr.fields(Application):
        name = field.name
        if getattr(current, name) == getattr(wanted, name):
            continue
        describe = _SPECIAL.get(name)
        said.append(name if describe is None else describe(current, wanted))
    return tuple(said)


def describe_differences(current, wanted):
    """
    :return: :func:`differences` as one phrase (``"image a -> b; ports
        ..."``), or ``""`` when equal.
    """
    return "; ".join(differences(current, wanted))
