"""
What every node is told about the applications the cluster fails over by
itself (``standby:`` entries with ``automatic: true``): pure values, read
by the planner (which imports no I/O) and the agent's automatic failover
(:mod:`flocker.node._automatic`).
"""

import attr
from pyrsistent import pvector

from .._model import DEFAULT_STANDBY_INTERVAL
from .._serialize import (
    SerializationError, application_from_dict, application_to_dict,
)

__all__ = ["AutomaticApplication", "automatic_applications",
           "failover_placements", "moved_by_failover"]


def _ports(value):
    return frozenset((port, protocol) for port, protocol in value)


@attr.s(frozen=True)
class AutomaticApplication(object):
    """
    One application whose failover the cluster does by itself (a
    ``standby:`` entry with ``automatic: true``), as every node of the
    deployment is told about it.

    :ivar str name: The application.
    :ivar str primary: The node the deployment file places it on.
    :ivar standbys: ``PVector`` of its standby nodes' addresses, in the
        operator's order of preference.
    :ivar ports: ``frozenset`` of ``(external port, protocol)``: what every
        node routes to wherever it runs.
    :ivar application: The :class:`~flocker._model.Application` a standby
        starts when it takes over, or ``None`` (a node that only routes).
    :ivar int interval: Nanoseconds between two snapshots of its
        replication (the standby's ``every``): the interval at which a
        standby that took it over replicates to the other standbys.
    """
    name = attr.ib(validator=attr.validators.instance_of(str))
    primary = attr.ib(default="", validator=attr.validators.instance_of(str))
    standbys = attr.ib(converter=pvector, default=pvector())
    ports = attr.ib(converter=_ports, default=frozenset())
    application = attr.ib(default=None)
    interval = attr.ib(default=DEFAULT_STANDBY_INTERVAL,
                       validator=attr.validators.instance_of(int))

    @property
    def volumes(self):
        """
        The names of the volumes it mounts (what a standby takes over).
        """
        if self.application is None:
            return ()
        return tuple(volume.name for volume in
                     self.application.all_volumes())

    def to_dict(self):
        """
        :return: Its JSON-compatible form (the application's files by
            content: a standby starting it needs them).
        """
        return {
            "name": self.name, "primary": self.primary,
            "standbys": list(self.standbys),
            "ports": sorted([port, protocol] for port, protocol in self.ports),
            "application": None if self.application is None else
            application_to_dict(self.application, contents=True),
            "interval": self.interval,
        }

    @classmethod
    def from_dict(cls, data):
        """
        :param dict data: What :meth:`to_dict` gave.
        :return: The :class:`AutomaticApplication`.
        :raises SerializationError: If ``data`` is not such a form.
        """
        try:
            return cls(
                name=data["name"], primary=data["primary"],
                standbys=[str(s) for s in data["standbys"]],
                ports=[(int(port), str(protocol))
                       for port, protocol in data["ports"]],
                application=None if data["application"] is None else
                application_from_dict(data["application"]),
                # Absent from what agents before it was added stored.
                interval=int(data.get("interval",
                                      DEFAULT_STANDBY_INTERVAL)))
        except (KeyError, TypeError, ValueError) as e:
            raise SerializationError(
                "not an automatic application: %s" % (e,))


def automatic_applications(deployment):
    """
    :param Deployment deployment: The desired state.
    :return: ``PVector`` of an :class:`AutomaticApplication` for each placed
        application whose standby is ``automatic``, by name.
    """
    placements = deployment.placements()
    found = []
    for name in sorted(deployment.standbys):
        standby = deployment.standbys[name]
        if not standby.automatic or name not in placements:
            continue
        primary, application = placements[name]
        found.append(AutomaticApplication(
            name=name, primary=primary, standbys=standby.nodes,
            ports=[(port.external, port.protocol)
                   for port in application.ports],
            application=application, interval=standby.interval))
    return pvector(found)


def failover_placements(cluster_state):
    """
    :param ClusterState cluster_state: The nodes' reports.
    :return: ``dict`` of application name to ``(node, epoch)``: where etcd
        says each automatic application runs, the latest epoch any node
        reported.
    """
    found = {}
    for node in cluster_state.nodes.values():
        for name, (where, epoch) in node.automatic.items():
            if name not in found or epoch > found[name][1]:
                found[name] = (where, epoch)
    return found


def moved_by_failover(deployment, cluster_state):
    """
    Find the automatic applications that an automatic failover moved away
    from where the deployment file places them.  A deploy with that file
    would move each back onto its old node: it is refused instead (nothing
    is changed) until the file says where the application runs now.

    :param Deployment deployment: The desired state.
    :param ClusterState cluster_state: The nodes' reports.
    :return: ``list`` of one line per such application.
    """
    placements = failover_placements(cluster_state)
    problems = []
    for application in automatic_applications(deployment):
        if application.name not in placements:
            continue
        where, epoch = placements[application.name]
        if where == application.primary:
            continue
        problems.append(
            "application %s runs on %s since an automatic failover (epoch "
            "%d), but the deployment file places it on %s: deploying it "
            "would move it back; place it on %s in the deployment file "
            "(with %s as a standby in its place) and deploy again" % (
                application.name, where, epoch, application.primary, where,
                application.primary))
    return problems
