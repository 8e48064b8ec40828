"""
Ownership: a hand-off makes another node the owner of a volume, and
``acquire`` makes this node the owner of its copy.

A failover's ``acquire`` and ``fence`` are here too (see
:mod:`flocker.volume._epoch`).

Hand-off protocol (the application is already stopped on the source; a
volume still in use is refused)::

    1. source: readonly=on on its copy            (still owner, now frozen)
    2. source: push (final snapshot F, small increment)
    3. source: flocker:owner = target's identity  (source is no longer owner)
       and answers; then unmounts its copy        (now a follower)
    4. target: acquire NAME with snapshot F and node id T
       checks it is node T and its newest snapshot is F, then sets
       flocker:owner = T, readonly=off and mounts it afresh
                                                  (target is the owner)

Step 4 is run by whoever drives the hand-off: by the source itself
(``flocker-volume acquire NAME --snapshot F --node-id T`` over SSH) for
``handoff(..., acquire=True)``, or, for ``acquire=False``, by the caller
with ``acquire`` on the target; the deploy client does the latter
(``release-volume`` on the source, then ``acquire-volume`` on the target,
through the sessions it already holds with both), which spares a process
start on the target while the application is down.

The source answers as soon as its copy names the target (3): unmounting
its copy, releasing the holds on its bases and collecting the target's
receiving command follow, under the volume's lock, while the target takes
over.

At no point are there two writable owners: the source stops being writable
(1) and stops being the owner (3) before the target becomes either (4).  A
crash before 3 leaves the source the (read-only) owner: running the hand-off
again repeats 1-4 (``mount`` makes the source writable again if the
application is to stay).  A crash after 3 leaves no owner; running the
hand-off again sees that the source's copy names the target and resumes at
step 4, whose checks make it safe to repeat.
"""

import time

import attr
from eliot.twisted import DeferredContext
from twisted.internet.defer import gatherResults, inlineCallbacks, succeed

from ._api import PushResult, check_node_id, follower_keeps, volume_info
from ._epoch import recovery_name, taken_epoch
from ._errors import (
    HandoffConflict, NoSuchVolume, NotOwner, StreamRejected, VolumeInUse,
)
from ._logging import (
    ACQUIRE_VOLUME, FENCE_VOLUME, HANDOFF_CLEANUP, HANDOFF_VOLUME,
    REMOTE_COMMAND,
)
from ._process import close_quietly
from ._remote import check_address, start_remote
from ._zfs import EPOCH, OWNER, check_snapshot_name, check_volume_name

__all__ = ["OwnershipMixin"]


class OwnershipMixin(object):
    """
    Hand-off and acquire for :class:`~flocker.volume._service.VolumeService`
    (which provides ``pool``, ``node_id``, its locks, the push and the
    recovery these methods use).
    """

    def handoff(self, name, target, progress=None, acquire=True):
        check_volume_name(name)
        check_address(target)
        return self._locked_answer(name, self._handoff, name, target,
                                   progress, acquire)

    @inlineCallbacks
    def _refuse_in_use(self, dataset, message):
        """
        :param Dataset dataset: A copy of a volume.
        :param str message: The refusal, with ``%s`` for the volume and for
            the processes.
        :return: ``Deferred`` firing with ``None`` once no process was found
            using the copy, failing with ``VolumeInUse`` if one was (or with
            what the scan raised).
        """
        users = yield self._in_use(self.pool.dataset(dataset.name),
                                   dataset.mountpoint)
        if users:
            raise VolumeInUse(message % (
                dataset.name, ", ".join(str(pid) for pid in sorted(users))))

    @inlineCallbacks
    def _handoff(self, name, target, progress, acquire):
        with HANDOFF_VOLUME(volume=name, target=target):
            dataset = yield self._get(name)
            if dataset.owner == self.node_id:
                yield self._refuse_in_use(
                    dataset, "volume %s is still in use (process %s); stop "
                    "the application before handing it off")
                self._writable.discard(name)
                yield self.pool.set(name, "readonly", "on")
                # Steps 3 and 4 as soon as the target confirmed step 2, not
                # once its command has exited too: the application is down.
                result, exited = yield self._push(dataset, target, progress,
                                                  record=False)
                # The copy left here follows the target at the epoch the
                # target is about to take (one more than this copy's), so
                # a failover later numbers its own epoch above it.  Set
                # together with the owner, at the same time: no extra wait
                # while the application is down.  Should one fail, running
                # the hand-off again redoes what is missing (the branch
                # below, or all of it).
                yield gatherResults([
                    self.pool.set(name, EPOCH, str(dataset.epoch + 1)),
                    self.pool.set(name, OWNER, result.target_node_id)],
                    consumeErrors=True).addErrback(
                        lambda failure: failure.value.subFailure)
            elif dataset.owner and dataset.snapshots:
                # Step 3 already happened: resume at step 4.
                result = PushResult(
                    name=name, target=target,
                    target_node_id=dataset.owner,
                    snapshot=dataset.snapshots[-1], base=None, bytes_sent=0)
                exited = succeed(None)
            else:
                raise NotOwner("volume %s is not owned by this node (%s)" % (
                    name, self.node_id))
            # No longer the owner (nor writable): the rest of this side's
            # part follows the answer, while the new owner takes over.
            cleanup = self._handoff_cleanup(dataset, exited)
            if acquire:
                yield self._remote_acquire(name, target,
                                           result.target_node_id,
                                           result.snapshot)
        return result, cleanup

    def _handoff_cleanup(self, dataset, exited):
        """
        What a hand-off's old owner does after it answered: unmount its copy
        (a follower stays unmounted, see ``_apply``), release the holds on
        its bases (a follower's snapshots come and go with the owner's) and
        collect the receiving command's exit (its log joins the push's).
        A failure is logged, not raised: the copy is already read-only and
        names the new owner, and the next receive into it unmounts it and
        releases the holds.

        :param Dataset dataset: The copy as it was before the hand-off.
        :param exited: The push's ``exited`` (never failing).
        :return: ``Deferred`` firing with ``None`` once all of it ended.
        """
        action = HANDOFF_CLEANUP(volume=dataset.name)
        with action.context():
            done = DeferredContext(gatherResults(
                [self.pool.unmount(dataset.name),
                 self._release_bases(dataset), exited],
                consumeErrors=True).addErrback(
                    lambda failure: failure.value.subFailure))
            finished = done.addActionFinish()
        # Its failure is in the log, under the action.
        return finished.addErrback(lambda _: None)

    @inlineCallbacks
    def _remote_acquire(self, name, target, node_id, snapshot):
        words = ["acquire", name, "--snapshot", snapshot, "--node-id",
                 node_id, "--json"]
        with REMOTE_COMMAND(argv=words):
            remote, stdin_write = yield start_remote(self._remote, target,
                                                     words)
            close_quietly(stdin_write)
            result = yield remote.ended
        if result.exit_code != 0:
            raise self._remote_error(target, result, HandoffConflict)

    def acquire(self, name, snapshot=None, node_id=None, epoch=None):
        check_volume_name(name)
        if snapshot is not None:
            check_snapshot_name(snapshot)
        if epoch is not None:
            self.abandon_receive(name, epoch)
        return self._locked(name, self._acquire, name, snapshot, node_id,
                            epoch)

    @inlineCallbacks
    def _acquire(self, name, snapshot, node_id, epoch=None):
        with ACQUIRE_VOLUME(volume=name, expected_snapshot=snapshot):
            if node_id is not None and node_id != self.node_id:
                raise HandoffConflict(
                    "this node is %s, not %s: volume %s was handed to "
                    "another node" % (self.node_id, node_id, name))
            # Known when this service just received the final increment.
            dataset = self._known(name)
            if dataset is None:
                dataset = yield self._recover(name)
            if dataset is None:
                raise NoSuchVolume("volume %s does not exist in pool %s" % (
                    name, self.pool.name))
            if dataset.owner != self.node_id:
                latest = dataset.snapshots[-1] if dataset.snapshots else None
                if snapshot is not None and latest != snapshot:
                    raise StreamRejected(
                        "this node's copy of %s ends with snapshot %s, not "
                        "%s; push the final increment first" % (
                            name, latest, snapshot))
                new_epoch = taken_epoch(name, dataset.epoch, epoch)
                # The owner's prune decides what its snapshots are kept for,
                # so the follower's hold goes; and the epoch is set before
                # the owner, which is the commit: a copy naming this node
                # as owner always has its epoch.  The two at once: a hand-off
                # waits for them while the application is down.
                yield gatherResults([
                    self._release_received(dataset),
                    self.pool.set(name, EPOCH, str(new_epoch))],
                    consumeErrors=True).addErrback(
                        lambda failure: failure.value.subFailure)
                yield self.pool.set(name, OWNER, self.node_id)
                if dataset.mounted:
                    # Mounted afresh: a mount that was there while streams
                    # were received may serve stale pages from the kernel's
                    # cache.
                    yield self.pool.unmount(name)
                dataset = attr.evolve(
                    dataset, properties=dataset.properties.set(
                        OWNER, self.node_id).set("mounted", "no").set(
                            EPOCH, str(new_epoch)))
            elif epoch is not None and epoch != dataset.epoch:
                # This node owned it already and won a later claim (its
                # lease ended while etcd was out of reach, say): its
                # followers follow the claim's epoch from now on, so its
                # pushes must carry it.
                new_epoch = taken_epoch(name, dataset.epoch, epoch)
                yield self.pool.set(name, EPOCH, str(new_epoch))
                dataset = attr.evolve(
                    dataset, properties=dataset.properties.set(
                        EPOCH, str(new_epoch)))
            yield self._mount_dataset(dataset)
            # The new owner keeps only what its next pushes can use: the
            # snapshots it kept as a follower, one of which the volume's
            # other followers have too (their next increment's base).
            # Destroyed after this acquire, which a hand-off waits for.
            doomed = self._doomed(dataset,
                                  keep=follower_keeps(dataset.snapshots))
            self._prune_later(name, doomed)
        dataset = attr.evolve(
            dataset, properties=dataset.properties.set("mounted", "yes"))
        # As the commands above left it: the application's start, next,
        # takes it from _known.
        self._leave(dataset)
        # What the commands above made of the dataset (the pruning to come
        # counted as done), without asking zfs again (a hand-off waits for
        # this).
        return volume_info(attr.evolve(
            dataset, snapshots=[snapshot for snapshot in dataset.snapshots
                                if snapshot not in doomed]), self.node_id)

    def fence(self, name, owner, epoch):
        check_volume_name(name)
        check_node_id(owner)
        self.abandon_receive(name, epoch)
        return self._locked(name, self._fence, name, owner, epoch)

    @inlineCallbacks
    def _fence(self, name, owner, epoch):
        with FENCE_VOLUME(volume=name, owner=owner, epoch=epoch) as action:
            dataset = yield self.pool.get(name)
            if dataset is None:
                action.add_success_fields(set_aside=None)
                return None
            if dataset.owner == self.node_id:
                if dataset.epoch >= epoch:
                    raise HandoffConflict(
                        "this node owns volume %s at epoch %d, not older "
                        "than epoch %d: it is not stale" % (
                            name, dataset.epoch, epoch))
                yield self._refuse_in_use(
                    dataset, "the stale copy of volume %s is in use "
                    "(process %s); stop its application first")
                aside = recovery_name(name, dataset.epoch, time.strftime(
                    "%Y%m%dT%H%M%SZ", time.gmtime(self._clock.seconds())))
                # Read-only first: nothing writes to it once set aside.
                yield self.pool.set(name, "readonly", "on")
                self._writable.discard(name)
                yield self.pool.rename(name, "", aside[len(name):],
                                       mount=False, mounted=dataset.mounted)
                action.add_success_fields(set_aside=aside)
                return aside
            if dataset.epoch < epoch:
                # Epoch before owner, as everywhere.
                yield self.pool.set(name, EPOCH, str(epoch))
                if dataset.owner != owner:
                    yield self.pool.set(name, OWNER, owner)
            action.add_success_fields(set_aside=None)
            return None
