"""
Pruning a volume's snapshots: destroying Flocker's snapshots that no next
incremental needs.

An operator's ``flocker-volume prune`` (:meth:`PruningMixin.prune_snapshots`)
prunes at once.  A push, a receive and an acquire only find out what their
copy no longer needs; the destroying is queued
(:meth:`PruningMixin._prune_later`) and runs once the operation is over and
the volume is idle, so none of them waits for it.  That matters because
destroying a snapshot frees the blocks only it holds, and zfs-fuse does that
before ``zfs destroy`` returns: seconds for a snapshot holding a few hundred
MiB of its own, which a push would otherwise add to its time (and a move to
its downtime).  A held snapshot (``zfs hold``) answers busy for as long as
the hold stays; it is tried twice, skipped and logged, and tried again by the
next prune.

The queued prune never runs beside another operation on the volume: it
takes the volume's lock after whatever holds or waits for it, gives the lock
up between two snapshots when another operation waits, and decides again,
from the copy as it then is, that each snapshot is still not needed (an
owner keeps each target's last confirmed snapshot, every copy keeps its
newest :data:`~flocker.volume._api.FOLLOWER_SNAPSHOTS`), so it never takes
the base of a next incremental.  It is logged in the task of the operation
that queued it (a deploy's, when a deploy's push queued it), after that
operation's own actions.
"""

from contextlib import nullcontext

import attr
from eliot import Action, current_action
from pyrsistent import pvector
from twisted.internet.defer import DeferredList, inlineCallbacks, succeed

from ._api import SNAPSHOT_PREFIX, follower_keeps
from ._errors import DatasetBusy
from ._logging import PRUNE_SKIPPED, PRUNE_SNAPSHOTS
from ._push import pushed_peers
from ._zfs import BUSY_DELAYS, check_volume_name

__all__ = ["PRUNE_BUSY_DELAYS", "PruningMixin"]

#: Seconds before each retry of a queued prune's ``zfs destroy`` answered
#: busy: zfs-fuse's short busy after a mount change passes in these; a held
#: snapshot does not, and is left for the next prune rather than holding
#: the volume's lock through every delay of :data:`BUSY_DELAYS`.
PRUNE_BUSY_DELAYS = BUSY_DELAYS[:2]


def _continued(task_id):
    """
    :param task_id: A serialized eliot task id (``serialize_task_id``), or
        ``None``.
    :return: A context manager continuing that task (an action of its
        tree, though the operation that queued the prune is over), or for
        ``None`` one that does nothing (the prune's action is then a task
        of its own).
    """
    if task_id is None:
        return nullcontext()
    return Action.continue_task(task_id=task_id)


class PruningMixin(object):
    """
    The pruning of :class:`~flocker.volume._service.VolumeService` (which
    provides ``pool``, ``node_id``, ``_locks`` and ``_locked``).
    """

    def prune_snapshots(self, name, dry_run=False):
        check_volume_name(name)
        return self._locked(name, self._prune_by_name, name, dry_run)

    @inlineCallbacks
    def _prune_by_name(self, name, dry_run):
        dataset = yield self._get(name)
        destroyed = yield self._prune(dataset, dry_run)
        return destroyed

    def settled(self):
        # Each leaves the set when it is over.
        queued = list(self._background)
        if not queued:
            return succeed(None)
        # Pruning may queue more pruning (after yielding the lock).
        return DeferredList(queued).addCallback(lambda _: self.settled())

    def _doomed(self, dataset, keep=None):
        """
        :param dataset: A copy of a volume, as a ``Dataset``.
        :param keep: Snapshot names to keep, or ``None`` for the newest.
        :return: The ``list`` of Flocker's snapshots of ``dataset`` that no
            next incremental needs: all but those in ``keep`` and, on the
            owner, the last one each target confirmed.
        """
        # Only Flocker's own snapshots: others belong to whoever took them.
        ours = [snapshot for snapshot in dataset.snapshots
                if snapshot.startswith(SNAPSHOT_PREFIX)]
        keep = set(ours[-1:] if keep is None else keep)
        if dataset.owner == self.node_id:
            keep |= set(peer.snapshot
                        for peer in pushed_peers(dataset).values())
        return [snapshot for snapshot in ours if snapshot not in keep]

    @inlineCallbacks
    def _prune(self, dataset, dry_run=False, keep=None):
        """
        Destroy now what :meth:`_doomed` says of ``dataset``.

        :return: ``Deferred`` firing with the ``PVector`` of names destroyed
            (or that would be, with ``dry_run``).
        """
        with PRUNE_SNAPSHOTS(volume=dataset.name) as action:
            doomed = self._doomed(dataset, keep)
            if not dry_run:
                for snapshot in doomed:
                    yield self.pool.destroy_snapshot(dataset.name, snapshot)
            action.add_success_fields(destroyed=doomed)
        return pvector(doomed)

    def _prune_later(self, name, candidates):
        """
        Queue the destroying of ``candidates``, snapshots of volume
        ``name`` that the operation holding its lock found no next
        incremental needs, for when that operation and any other already
        waiting for the volume are over.  The caller does not wait for it
        (:meth:`settled` does); a failure is logged, not raised.

        :param str name: The volume.
        :param candidates: Snapshot names (an iterable).
        """
        candidates = set(candidates)
        if not candidates:
            return
        queued = self._prunes.get(name)
        if queued is not None:
            # One queued prune a volume: it takes these too.
            queued[0].update(candidates)
            return
        action = current_action()
        self._prunes[name] = (
            candidates, None if action is None else action.serialize_task_id())
        d = self._locked(name, self._idle_prune, name)
        # Its action logged any failure.
        d.addErrback(lambda _: None)
        self._background.add(d)
        d.addBoth(lambda _: self._background.discard(d))

    @inlineCallbacks
    def _idle_prune(self, name):
        """
        The prune :meth:`_prune_later` queued, run holding the volume's
        lock: destroy what is still not needed of what it was given, one
        snapshot at a time, yielding the lock to any operation waiting for
        it (the rest is queued again, after that operation).

        :return: ``Deferred`` firing with the ``list`` of names destroyed.
        """
        candidates, task_id = self._prunes.pop(name)
        lock = self._locks[name]
        if lock.waiting:
            # Not even a listing while, say, a hand-off waits.
            with _continued(task_id):
                self._prune_later(name, candidates)
            return []
        destroyed = []
        with _continued(task_id), PRUNE_SNAPSHOTS(volume=name) as action:
            dataset = yield self.pool.get(name)
            doomed = [] if dataset is None else [
                snapshot for snapshot in self._doomed(
                    dataset, keep=follower_keeps(dataset.snapshots))
                if snapshot in candidates]
            for index, snapshot in enumerate(doomed):
                if lock.waiting:
                    self._prune_later(name, doomed[index:])
                    break
                try:
                    yield self.pool.destroy_snapshot(
                        name, snapshot, delays=PRUNE_BUSY_DELAYS)
                except DatasetBusy as e:
                    PRUNE_SKIPPED.log(volume=name, snapshot=snapshot,
                                      reason=e.message)
                else:
                    destroyed.append(snapshot)
            action.add_success_fields(destroyed=destroyed)
        if dataset is not None:
            # As it left the copy: the operation waiting for the lock (an
            # acquire after the receive it pruned behind) takes it from
            # _known.
            self._leave(attr.evolve(dataset, snapshots=[
                snapshot for snapshot in dataset.snapshots
                if snapshot not in destroyed]))
        return destroyed
