"""
``flocker-deploy --failover NODE``: the client's side of a failover.

The node declared dead is not contacted.  Every other node reports; the
plan (see :mod:`flocker.node._failover`) fences the followers, takes the
freshest copies over, then converges the live nodes to the new placement
(starts, routes).  Once the volumes are taken over, the deployment file is
rewritten with the new placement, the old one kept beside it as
``DEPLOYMENT_CONFIG.bak``, so that the next plain deploy converges instead
of moving the applications back to a node that may return with stale data.
"""

import os
import time

from .._change import InParallel, Sequentially
from ..node._changes import FenceVolume, TakeOverVolume
from ..node._config import deployment_to_yaml
from ..node._expected import unreached_lines
from ..node._failover import moved_deployment, plan_failover
from ..node._names import with_service_names
from ..node._plan import plan_changes

__all__ = ["FailoverRun", "BACKUP_SUFFIX"]

#: What the old deployment file is kept as, beside it.
BACKUP_SUFFIX = ".bak"

#: The label of the failover's first phase.
VOLUME_PHASE = "fail over volumes"


class FailoverRun(object):
    """
    One failover: its plan (given the live nodes' reports) and, after it
    ran, the rewrite of the deployment file.

    :ivar str dead: The node declared dead.
    :ivar failover: The :class:`flocker.node._failover.Failover` once
        planned, else ``None``.
    """

    def __init__(self, deployment, dead):
        """
        :param Deployment deployment: The deployment as the files say
            (before service names are added).
        :param str dead: The node declared dead.
        """
        self._deployment = deployment
        self.dead = dead
        self.failover = None

    def plan_for(self, state, addresses=None):
        """
        The ``plan_for`` of :func:`flocker.cli._deploy.deploy`.

        :param ClusterState state: The live nodes' reports.
        :param addresses: ``None``, or a mapping of node address (as the
            deployment names it) to the IP address its routes target, as
            for a plain deploy (:func:`flocker.node._plan.plan_changes`).
        :return: The plan: fences, then take-overs, then the ordinary plan
            of the new placement from the state they leave.
        :raises FailoverError: If the failover cannot be planned.
        """
        failover = self.failover = plan_failover(self._deployment, state,
                                                 self.dead)
        fences = [c for c in failover.changes if isinstance(c, FenceVolume)]
        takeovers = [c for c in failover.changes
                     if isinstance(c, TakeOverVolume)]
        steps = [group for group in (
            InParallel(changes=fences, label="followers learn the new "
                       "owners"),
            InParallel(changes=takeovers, label="take over the freshest "
                       "copies")) if group.changes]
        rest = plan_changes(with_service_names(failover.deployment),
                            failover.predicted, addresses=addresses,
                            unknown=frozenset([self.dead]))
        changes = []
        if steps:
            changes.append(Sequentially(changes=steps, label=VOLUME_PHASE))
        changes.extend(rest.changes)
        return Sequentially(changes=changes, label="failover")

    def taken_over(self, result):
        """
        :param result: The ``DeployResult``.
        :return: ``dict`` of the moves that happened: application name to
            ``(old, new)``; an application whose volume's take-over failed
            did not move.
        """
        failed = set()
        for change in self.failover.changes:
            if not isinstance(change, TakeOverVolume):
                continue
            prefix = change.describe() + ":"
            if any(line.startswith(prefix)
                   for line in result.failed.get(change.node, ())):
                failed.add(change.name)
        moves = {}
        for node in self._deployment.nodes:
            for application in node.applications:
                move = self.failover.moves.get(application.name)
                if move is None:
                    continue
                names = {v.name for v in application.all_volumes()}
                if not names & failed:
                    moves[application.name] = move
        return moves

    def rewrite(self, path, moves, now=None):
        """
        Rewrite the deployment file with ``moves`` applied, keeping the old
        one as ``PATH.bak``.

        :param str path: The deployment file.
        :param dict moves: What :meth:`taken_over` answered.
        :param now: Seconds since the epoch (the time written in the
            header), or ``None`` for now.
        :return: The backup's path.
        """
        new = moved_deployment(self._deployment, moves)
        text, _ = deployment_to_yaml(new)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        header = ("# Rewritten by flocker-deploy --failover %s at %s: %s.\n"
                  "# The previous file is %s.\n" % (
                      self.dead, stamp, ", ".join(
                          "%s %s -> %s" % (name, old, target)
                          for name, (old, target) in sorted(moves.items()))
                      or "nothing moved",
                      os.path.basename(path) + BACKUP_SUFFIX))
        backup = path + BACKUP_SUFFIX
        with open(path, "rb") as source:
            original = source.read()
        _write_atomically(backup, original)
        _write_atomically(path, (header + text).encode("utf-8"))
        return backup

    def lines(self, moves):
        """
        :param dict moves: What :meth:`taken_over` answered.
        :return: Lines saying where each application went, and which
            stayed.
        """
        lines = []
        for name, (old, target) in sorted(moves.items()):
            epochs = [self.failover.epochs[v.name] for v in self._volumes(
                name)]
            lines.append("failover: %s: %s -> %s%s" % (
                name, old, target,
                " (volume epoch %d)" % (max(epochs),) if epochs else ""))
        for name, reason in sorted(self.failover.stranded.items()):
            lines.append("failover: %s stays on %s: %s" % (name, self.dead,
                                                           reason))
        for name in sorted(set(self.failover.moves) - set(moves)):
            lines.append("failover: %s: its volume could not be taken over; "
                         "it stays on %s in the file" % (name, self.dead))
        node_ids = {address: node.node_id for address, node
                    in self.failover.predicted.nodes.items()}
        lines.extend("failover: " + line for line in unreached_lines(
            self.failover.deployment, node_ids, frozenset([self.dead])))
        return lines

    def _volumes(self, name):
        for node in self._deployment.nodes:
            for application in node.applications:
                if application.name == name:
                    return [v for v in application.all_volumes()
                            if v.name in self.failover.epochs]
        return []


def _write_atomically(path, data):
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.write(data)
    os.replace(partial, path)
