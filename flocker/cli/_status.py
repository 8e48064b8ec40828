"""
Where everything is: one row per application from the nodes' reports,
compared with the configuration (``flocker-deploy --status``).
"""

import attr

from .._model import ClusterState
from ..node._automatic_config import failover_placements
from ..node._changes import describe_size
from ..node._differences import differences

__all__ = ["StatusRow", "cluster_status", "format_status", "status_json",
           "status_ok"]


@attr.s(frozen=True)
class StatusRow(object):
    """
    One application as the cluster runs it.

    :ivar str application: Its name.
    :ivar str node: The node it is on (``-`` when on none).
    :ivar str state: ``running``, ``stopped`` or ``missing``.
    :ivar str ports: Its published ports, ``EXTERNAL->INTERNAL`` each.
    :ivar str volume: Its volume: size, newest snapshot, owner (``-`` for
        none); with named volumes, each as ``NAME: size, snapshot, owner``.
    :ivar str links: Its links, ``LOCAL->ALIAS:REMOTE`` each.
    :ivar str drift: How it differs from the configuration (``-`` for not
        at all); a configuration that differs says what differs (image old
        -> new, environment variable names, ports, command, volume,
        limits).
    :ivar differences: ``tuple`` of the differing fields' phrases (see
        :func:`flocker.node._differences.differences`), empty unless the
        configuration differs.
    """
    application = attr.ib()
    node = attr.ib()
    state = attr.ib()
    ports = attr.ib()
    volume = attr.ib()
    links = attr.ib()
    drift = attr.ib()
    differences = attr.ib(default=(), converter=tuple)

    def to_dict(self):
        """
        :return: The row as JSON-compatible data (``--status --json``):
            every field, ``drift`` ``None`` when there is none.
        """
        row = attr.asdict(self)
        row["differences"] = list(self.differences)
        if row["drift"] == "-":
            row["drift"] = None
        return row


def _ports(application):
    if application is None or not application.ports:
        return "-"
    return ",".join("%d->%d" % (port.external, port.internal) for port in
                    sorted(application.ports, key=lambda p: p.external))


def _links(application):
    if application is None or not application.links:
        return "-"
    return ",".join("%d->%s:%d" % (link.local_port, link.alias,
                                   link.remote_port)
                    for link in sorted(application.links,
                                       key=lambda l: l.local_port))


def _volumes(name, application, state):
    """
    :return: The VOLUME cell of application ``name`` (as configured or as
        found, ``application``, which may be ``None``): its own volume as
        :func:`_volume` describes it or, when it mounts named volumes, each
        of its volumes as ``NAME: description``, separated by ``; ``.
    """
    if application is None or not application.volumes:
        return _volume(name, state)
    return "; ".join("%s: %s" % (volume.name, _volume(volume.name, state))
                     for volume in application.all_volumes())


def _volume(name, state):
    owners = [(address, node.volumes[name])
              for address, node in sorted(state.nodes.items())
              if name in node.volumes and node.volumes[name].owned]
    if not owners:
        copies = [address for address, node in sorted(state.nodes.items())
                  if name in node.volumes]
        return ("no owner (copies on %s)" % (", ".join(copies),)
                if copies else "-")
    address, volume = owners[0]
    snapshot = volume.snapshots[-1] if volume.snapshots else "no snapshot"
    return "%s, %s, owned by %s" % (describe_size(volume.size), snapshot, address)


def cluster_status(deployment, state, unreachable=None, placed=None):
    """
    Compare what the nodes report with the configuration.

    :param Deployment deployment: The configuration.
    :param ClusterState state: What the reachable nodes reported.
    :param unreachable: ``dict`` of node address to why it did not report.
    :param placed: ``None``, or (when only the deployment file was given) a
        ``dict`` of application name to the address the deployment file
        places it on; applications are then compared by node and state
        only, their configuration being unknown.
    :return: ``list`` of :class:`StatusRow`, by application then node; an
        application found on several nodes has a row for each.
    """
    unreachable = unreachable or {}
    state = state if state is not None else ClusterState()
    placements = deployment.placements()
    if placed is not None:
        placements = {name: (address, None)
                      for name, address in placed.items()}
    found = {}
    for address, node in state.nodes.items():
        for name, application in node.applications.items():
            # Another project's applications are not this one's drift.
            if application.project != deployment.project:
                continue
            found.setdefault(name, []).append(
                (address, node.as_running(name), name in node.running))
    failed_over = failover_placements(state)
    rows = []
    for name in sorted(set(placements) | set(found)):
        wanted_node, wanted = placements.get(name, (None, None))
        here = sorted(found.get(name, []), key=lambda entry: entry[0])
        if not here:
            if wanted_node in unreachable:
                drift = "unknown: node %s did not report" % (wanted_node,)
            else:
                drift = "should run on %s" % (wanted_node,)
            rows.append(StatusRow(
                application=name, node="-", state="missing",
                ports=_ports(wanted),
                volume=_volumes(name, wanted, state),
                links=_links(wanted), drift=drift))
            continue
        for address, application, running in here:
            differing = ()
            if wanted_node is None:
                drift = "not in the configuration"
            elif address != wanted_node and \
                    failed_over.get(name, (None,))[0] == address:
                drift = ("moved here by automatic failover (epoch %d); the "
                         "deployment file says %s" % (
                             failed_over[name][1], wanted_node))
            elif address != wanted_node:
                drift = "should run on %s" % (wanted_node,)
            elif wanted is not None and application != wanted:
                differing = differences(application, wanted)
                drift = "configuration differs: " + "; ".join(differing)
            elif not running:
                drift = "should be running"
            else:
                drift = "-"
            rows.append(StatusRow(
                application=name, node=address,
                state="running" if running else "stopped",
                ports=_ports(application),
                volume=_volumes(name, application, state),
                links=_links(application), drift=drift,
                differences=differing))
    return rows


def format_status(rows, unreachable=None):
    """
    :param rows: ``list`` of :class:`StatusRow`.
    :param unreachable: ``dict`` of node address to why it did not report.
    :return: ``list`` of text lines: an aligned table, then one line per
        node that did not report.
    """
    headers = ("APPLICATION", "NODE", "STATE", "PORTS", "VOLUME", "LINKS",
               "DRIFT")
    table = [headers] + [attr.astuple(row)[:len(headers)] for row in rows]
    widths = [max(len(cells[i]) for cells in table)
              for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in
                       zip(cells, widths)).rstrip() for cells in table]
    if not rows:
        lines.append("(no applications configured or running)")
    for address, reason in sorted((unreachable or {}).items()):
        lines.append("node %s did not report: %s" % (address, reason))
    return lines


def status_ok(rows, unreachable=None):
    """
    :return: ``True`` when every node reported and every application runs
        where and as the files say (no row drifts, none is missing).
    """
    return not unreachable and all(row.drift == "-" for row in rows)


def status_json(rows, unreachable=None):
    """
    :param rows: ``list`` of :class:`StatusRow`.
    :param unreachable: ``dict`` of node address to why it did not report.
    :return: The status as JSON-compatible data (``--status --json``):
        ``{"applications": [row...], "unreachable": {node: reason},
        "converged": bool}``.
    """
    return {"applications": [row.to_dict() for row in rows],
            "unreachable": dict(unreachable or {}),
            "converged": status_ok(rows, unreachable)}
