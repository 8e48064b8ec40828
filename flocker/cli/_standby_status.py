"""
How far each standby copy is behind (``flocker-deploy --status``): one row
per volume and standby node, from what the primaries report
(``NodeState.replication``) and what the deployment file asks
(``standby:``).
"""

import attr

from ..node._changes import describe_size

__all__ = ["StandbyRow", "standby_status", "format_standbys",
           "standbys_ok"]


@attr.s(frozen=True)
class StandbyRow(object):
    """
    One standby's copy of one volume.

    :ivar str application: The application whose standby it is.
    :ivar str volume: The volume.
    :ivar str primary: The node sending it (``-`` when none does).
    :ivar str standby: The standby node.
    :ivar lag: Seconds of writes the copy lacks, or ``None`` when it has
        no confirmed snapshot (or nobody sends it).
    :ivar snapshot: The newest snapshot it confirmed, or ``None``.
    :ivar int bytes_sent: Bytes sent to it since the primary's agent
        started.
    :ivar problem: Why it is not being kept up to date (the last failure,
        or the replication missing or not what the file asks), or ``None``.
    """
    application = attr.ib()
    volume = attr.ib()
    primary = attr.ib()
    standby = attr.ib()
    lag = attr.ib()
    snapshot = attr.ib()
    bytes_sent = attr.ib()
    problem = attr.ib()

    def to_dict(self):
        """
        :return: The row as JSON-compatible data (``--status --json``).
        """
        return attr.asdict(self)


def _wanted(deployment, placed):
    """
    :return: ``dict`` of ``(application, standby)`` to the primary the
        configuration places the application on (``None`` when unknown).
    """
    if placed is None:
        placed = {name: address for name, (address, _)
                  in deployment.placements().items()}
    return {(name, node): placed.get(name)
            for name, standby in deployment.standbys.items()
            for node in standby.nodes}


def standby_status(deployment, state, unreachable=None, placed=None):
    """
    :param Deployment deployment: The configuration.
    :param ClusterState state: What the reachable nodes reported.
    :param unreachable: ``dict`` of node address to why it did not report.
    :param placed: ``None``, or the ``dict`` of application name to
        address when only the deployment file was read.
    :return: ``list`` of :class:`StandbyRow`, by application, volume and
        standby.
    """
    unreachable = unreachable or {}
    wanted = _wanted(deployment, placed)
    rows = []
    seen = set()
    for address in sorted(state.nodes):
        for name, status in sorted(state.nodes[address].replication.items()):
            replication = status.replication
            for standby in replication.standbys:
                figures = status.standbys.get(standby)
                key = (replication.application, standby)
                seen.add(key)
                problem = None if figures is None else figures.error
                if key not in wanted:
                    problem = "not in the configuration"
                elif wanted[key] not in (None, address):
                    problem = "the configuration places %s on %s" % (
                        replication.application, wanted[key])
                rows.append(StandbyRow(
                    application=replication.application, volume=name,
                    primary=address, standby=standby,
                    lag=None if figures is None else figures.lag,
                    snapshot=None if figures is None else figures.snapshot,
                    bytes_sent=0 if figures is None else figures.bytes_sent,
                    problem=problem))
    for (application, standby), primary in sorted(wanted.items()):
        if (application, standby) in seen:
            continue
        if primary in unreachable:
            problem = "unknown: node %s did not report" % (primary,)
        else:
            problem = "not replicated (deploy to start it)"
        rows.append(StandbyRow(
            application=application, volume="-", primary=primary or "-",
            standby=standby, lag=None, snapshot=None, bytes_sent=0,
            problem=problem))
    return sorted(rows, key=lambda row: (row.application, row.volume,
                                         row.standby))


def _lag(lag):
    return "none yet" if lag is None else "%.1f s" % (lag,)


def format_standbys(rows):
    """
    :param rows: ``list`` of :class:`StandbyRow`.
    :return: ``list`` of text lines: an aligned table (nothing when there
        are no rows).
    """
    if not rows:
        return []
    headers = ("STANDBY", "APPLICATION", "VOLUME", "PRIMARY", "LAG",
               "SENT", "SNAPSHOT", "PROBLEM")
    table = [headers] + [(
        row.standby, row.application, row.volume, row.primary,
        _lag(row.lag), describe_size(row.bytes_sent), row.snapshot or "-",
        row.problem or "-") for row in rows]
    widths = [max(len(cells[i]) for cells in table)
              for i in range(len(headers))]
    return ["  ".join(cell.ljust(width) for cell, width in
                      zip(cells, widths)).rstrip() for cells in table]


def standbys_ok(rows):
    """
    :return: ``True`` when every standby is being kept up to date as the
        configuration asks (no row has a problem).
    """
    return all(row.problem is None for row in rows)
