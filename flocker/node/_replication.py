"""
Continuous replication of a node's volumes to their standby nodes, run by
the node's agent while it owns them.

For each volume it is asked to replicate (a
:class:`~flocker._model.Replication`), the agent runs one loop: every
interval, for each standby in turn, it *pushes* the volume with the volume
service (:meth:`flocker.volume.IVolumeService.push`).  A push takes a
snapshot, sends the standby only what changed since the newest snapshot both
have (everything the first time), and prunes on both sides the snapshots no
next increment needs; the standby's copy stays a read-only follower of this
node, never mounted and never served.  A push cut halfway leaves the
standby's previous copy whole (a stream is applied atomically), so the next
round simply starts again from the last snapshot both have.

Rounds are paced start to start: a round that takes longer than the
interval is followed at once by the next, never overlapped by it.  A
standby that cannot be reached, or a volume this node does not own (any
more: a move handed it off, or fencing demoted it), is not an error of the
agent: the failure is kept as that standby's status (one line), logged,
and tried again.  A standby that keeps failing is tried less often (after
2, 4, 8... intervals, at most :data:`MAXIMUM_BACKOFF` seconds), so that
the others of the same volume, which wait for each attempt (the standbys
of a round are sent to in turn), keep their interval.

The replicator remembers its configuration in a small JSON file, so that
an agent restarted (or a node rebooted) goes on replicating before the next
deploy; a deploy replaces it (:meth:`Replicator.configure`).
"""

import attr
from eliot import write_failure
from eliot.twisted import DeferredContext
from pyrsistent import pmap
from twisted.python.failure import Failure
from twisted.internet.defer import (
    Deferred, gatherResults, inlineCallbacks, maybeDeferred, succeed,
)

from .._model import ReplicationStatus, StandbyStatus
from .._text import one_line
from .._serialize import (
    SerializationError, replication_from_dict, replication_to_dict,
)
from ..volume._errors import StaleEpoch
from ._state_file import load_list, save_list
from ._logging import (
    REPLICATE_VOLUME, REPLICATION_CONFIGURED, REPLICATION_LAG,
)

__all__ = ["Replicator", "ReplicationStore", "default_replication_path",
           "MAXIMUM_BACKOFF"]

#: The longest wait, in seconds, before a standby that keeps failing is
#: tried again.
MAXIMUM_BACKOFF = 60.0


def default_replication_path(environ, address):
    """
    :param environ: The process environment: ``FLOCKER_LOCK_DIR`` chooses
        the directory (default ``/var/lib/flocker``), as for the deploy
        lock.
    :param str address: The node's address; part of the file name, so
        nodes sharing a file system (a lab on one machine) keep their own.
    :return: The path of the replicator's state file.
    """
    from ._lock import node_file_path
    return node_file_path(environ, "replication", address, ".json")


class ReplicationStore(object):
    """
    The replicator's configuration on disk: one JSON document, replaced
    atomically (written beside, then renamed over).
    """

    def __init__(self, path):
        """
        :param str path: The file (its directory is created when needed).
        """
        self.path = path

    def load(self):
        """
        :return: ``PMap`` of volume name to
            :class:`~flocker._model.Replication`; empty when there is no
            file.
        :raises SerializationError: The file is not one this store wrote.
        """
        replications = [replication_from_dict(item)
                        for item in load_list(self.path)]
        return pmap({r.volume: r for r in replications})

    def save(self, replications):
        """
        :param replications: ``PMap`` of volume name to ``Replication``.
        """
        save_list(self.path, [replication_to_dict(replications[name])
                              for name in sorted(replications)])


@attr.s
class _Figures(object):
    """
    What the replicator knows of one standby's copy of one volume (mutable:
    the loop updates it after every attempt).

    :ivar snapshot: The newest snapshot the standby confirmed, or ``None``.
    :ivar taken_at: The clock's time just before that snapshot was taken
        (every write acknowledged by then is in it), or ``None``.
    :ivar int bytes_sent: Bytes sent to it since the agent started.
    :ivar error: Why the last attempt failed, or ``None``.
    :ivar int failures: Attempts failed in a row.
    :ivar retry_at: The clock's time before which it is not tried again
        (after failures), or ``None``.
    """
    snapshot = attr.ib(default=None)
    taken_at = attr.ib(default=None)
    bytes_sent = attr.ib(default=0)
    error = attr.ib(default=None)
    failures = attr.ib(default=0)
    retry_at = attr.ib(default=None)

    def status(self, address, now):
        """
        :return: The :class:`StandbyStatus` of these figures at time
            ``now``.
        """
        lag = None if self.taken_at is None else max(0.0,
                                                     now - self.taken_at)
        return StandbyStatus(address=address, snapshot=self.snapshot,
                             lag=lag, bytes_sent=self.bytes_sent,
                             error=self.error)


def _one_line(failure):
    return one_line(failure.getErrorMessage()) or failure.type.__name__


class _VolumeLoop(object):
    """
    The rounds of one volume: every interval, a push to each standby.
    """

    def __init__(self, replicator, replication):
        self._replicator = replicator
        self.replication = replication
        self._call = None
        self._stopped = False
        self._running = None

    def start(self, delay=0):
        """
        Run the first round after ``delay`` seconds.
        """
        self._call = self._replicator.clock.callLater(delay, self._round)

    def stop(self):
        """
        Run no further round.  A push under way finishes (cutting it would
        gain nothing: the standby keeps its previous copy either way).

        :return: ``Deferred`` firing once no round is running.
        """
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._running is None:
            return succeed(None)
        waiting = self._running
        return waiting.addBoth(lambda _: None)

    def _round(self):
        self._call = None
        clock = self._replicator.clock
        started = clock.seconds()
        self._running = self._push_all()

        def next_round(_):
            self._running = None
            if not self._stopped:
                # Start to start: a long round is followed at once.
                wait = started + self.replication.seconds - clock.seconds()
                self._call = clock.callLater(max(0.0, wait), self._round)
        self._running.addCallback(next_round)

    @inlineCallbacks
    def _push_all(self):
        replicator = self._replicator
        due = [standby for standby in self.replication.standbys
               if replicator.figures(self.replication.volume,
                                     standby).retry_at is None
               or replicator.clock.seconds() >= replicator.figures(
                   self.replication.volume, standby).retry_at]
        if not due:
            return
        # One snapshot for the round, sent to every standby: they all hold
        # the same one then (after a move, the new owner's first push to
        # the others is incremental), and the owner takes one a round.
        taken_at = replicator.clock.seconds()
        try:
            snapshot = yield maybeDeferred(
                lambda: replicator.volumes().snapshot(
                    self.replication.volume))
        except Exception:
            # Each standby's push fails with it, in its own status.
            snapshot = Failure()
        for standby in due:
            if self._stopped:
                return
            yield self._push(standby, snapshot, taken_at)

    def _push(self, standby, snapshot, taken_at):
        """
        Bring ``standby`` up to date, recording the outcome in its figures.

        :param snapshot: The round's snapshot, or the ``Failure`` of
            taking it (the push fails with it).
        :param float taken_at: The clock's time just before the round's
            snapshot was taken.
        :return: ``Deferred`` that never fails.
        """
        replicator = self._replicator
        volume = self.replication.volume
        figures = replicator.figures(volume, standby)
        clock = replicator.clock
        now = clock.seconds()
        REPLICATION_LAG.log(volume=volume, standby=standby,
                            lag=figures.status(standby, now).lag)
        with REPLICATE_VOLUME(volume=volume,
                              standby=standby).context() as action:
            d = DeferredContext(maybeDeferred(
                lambda: snapshot if isinstance(snapshot, Failure) else
                replicator.volumes().push(volume, standby,
                                          snapshot=snapshot)))

            def pushed(result):
                replicator.accepted(volume, standby)
                figures.snapshot = result.snapshot
                figures.taken_at = taken_at
                figures.bytes_sent += result.bytes_sent
                figures.error = None
                figures.failures = 0
                figures.retry_at = None
                action.add_success_fields(
                    snapshot=result.snapshot, base=result.base,
                    bytes=result.bytes_sent,
                    lag=max(0.0, clock.seconds() - taken_at))
            d.addCallback(pushed)
            finished = d.addActionFinish()

        def failed(failure):
            # Already the action's failure in the log; kept as the
            # standby's status until a round succeeds.
            figures.error = _one_line(failure)
            figures.failures += 1
            backoff = min(MAXIMUM_BACKOFF, self.replication.seconds
                          * 2 ** min(figures.failures, 16))
            figures.retry_at = clock.seconds() + backoff
            if failure.check(StaleEpoch) and replicator.on_stale is not None:
                # The standby follows a later owner: this node's copy is
                # stale (the volume failed over while this node was cut
                # off), so what uses it must stop serving now.
                maybeDeferred(replicator.on_stale, volume).addErrback(
                    write_failure)
            if failure.check(StaleEpoch):
                replicator.refused(volume)
        return finished.addErrback(failed)


class Replicator(object):
    """
    The agent's replication of its volumes to standby nodes.

    :ivar clock: ``IReactorTime`` provider pacing the rounds.
    """

    def __init__(self, clock, volumes, store=None, on_stale=None):
        """
        :param clock: ``IReactorTime`` provider.
        :param volumes: Callable returning the node's current
            ``IVolumeService`` (the agent opens its pool again when it
            was missing).
        :param store: A :class:`ReplicationStore` remembering the
            configuration, or ``None`` to remember nothing.
        :param on_stale: ``None``, or a callable given the name of a volume
            whose push a standby refused because it follows a later
            ownership epoch (``StaleEpoch``: this node's copy is stale), at
            each such refusal.
        """
        self.clock = clock
        self.volumes = volumes
        self.on_stale = on_stale
        self._store = store
        self._loops = {}
        self._figures = {}
        self._started = False
        self._confirming = []

    def figures(self, volume, standby):
        """
        :return: The :class:`_Figures` of ``standby``'s copy of
            ``volume`` (created empty the first time).
        """
        return self._figures.setdefault((volume, standby), _Figures())

    def start(self):
        """
        Go on with the configuration the store remembers, if any: each
        volume's first round comes one interval from now (the agent's other
        start-up work, such as fencing a copy that lost its ownership, goes
        first).  A file that cannot be read is logged and ignored: the next
        deploy replaces it.
        """
        if self._store is None or self._started:
            return
        self._started = True
        try:
            replications = self._store.load()
        except SerializationError:
            write_failure()
            return
        self._apply(replications, "state file", first_round=None)

    def configure(self, replications):
        """
        Replicate exactly ``replications`` from now on, and remember them.
        A volume whose replication is unchanged goes on as it was; a new or
        changed one starts a round at once; a volume left out stops (after
        the push under way, if any).

        :param replications: ``PMap`` of volume name to
            :class:`~flocker._model.Replication`.
        :return: ``Deferred`` firing with ``None`` once remembered.
        """
        replications = pmap(replications)
        if self._store is not None:
            self._store.save(replications)
        self._apply(replications, "deploy", first_round=0)
        return succeed(None)

    def confirmation(self, volume):
        """
        Find out whether this node still owns ``volume`` at the epoch its
        copy records, as far as its standbys know: a standby that followed
        a later owner (the volume failed over while this node was down)
        refuses this node's pushes.

        :param str volume: The volume's name.
        :return: ``Deferred`` firing with ``True`` once every standby the
            volume is replicated to has accepted a push that ended after
            this call; with ``False`` as soon as one refuses because it
            follows a later epoch, or when the volume's replication is
            changed or stopped meanwhile (a deploy decides then); at once
            with ``False`` for a volume not replicated.  Other failures
            (a standby down) are waited through: its pushes are retried.
        """
        loop = self._loops.get(volume)
        if loop is None or not loop.replication.standbys:
            return succeed(False)
        waiting = Deferred()
        self._confirming.append(
            (volume, loop.replication, set(loop.replication.standbys),
             waiting))
        return waiting

    def accepted(self, volume, standby):
        """
        ``standby`` accepted a push of ``volume``: the confirmations
        waiting for it (see :meth:`confirmation`) are told.
        """
        for entry in list(self._confirming):
            name, _, remaining, waiting = entry
            if name == volume:
                remaining.discard(standby)
                if not remaining:
                    self._confirming.remove(entry)
                    waiting.callback(True)

    def refused(self, volume):
        """
        A standby refused a push of ``volume``: it follows a later epoch.
        The confirmations waiting for it fire with ``False``.
        """
        self._settle(lambda name, replication: name == volume)

    def _settle(self, unconfirmed):
        for entry in list(self._confirming):
            name, replication, _, waiting = entry
            if unconfirmed(name, replication):
                self._confirming.remove(entry)
                waiting.callback(False)

    def _apply(self, replications, source, first_round):
        # A confirmation asked under a replication that changed is the
        # deploy's to settle.
        self._settle(lambda name, replication:
                     replications.get(name) != replication)
        for name in list(self._loops):
            if replications.get(name) != self._loops[name].replication:
                self._loops.pop(name).stop()
        for name, replication in sorted(replications.items()):
            if name in self._loops:
                continue
            loop = self._loops[name] = _VolumeLoop(self, replication)
            loop.start(replication.seconds if first_round is None
                       else first_round)
        # Figures of standbys no longer replicated to are forgotten (their
        # counters restart if they come back, as after an agent restart).
        wanted = {(name, standby) for name, r in replications.items()
                  for standby in r.standbys}
        for key in list(self._figures):
            if key not in wanted:
                del self._figures[key]
        REPLICATION_CONFIGURED.log(volumes=len(replications), source=source)

    def stop(self):
        """
        Stop every loop (the agent is shutting down).

        :return: ``Deferred`` firing once no push is under way.
        """
        loops, self._loops = self._loops, {}
        self._settle(lambda name, replication: True)
        return gatherResults([loop.stop() for loop in loops.values()])

    def replications(self):
        """
        :return: ``PMap`` of volume name to the ``Replication`` being run.
        """
        return pmap({name: loop.replication
                     for name, loop in self._loops.items()})

    def status(self):
        """
        :return: ``PMap`` of volume name to its
            :class:`~flocker._model.ReplicationStatus` now.
        """
        now = self.clock.seconds()
        result = {}
        for name, loop in self._loops.items():
            replication = loop.replication
            result[name] = ReplicationStatus(
                replication=replication,
                standbys={standby: self.figures(name, standby).status(
                    standby, now) for standby in replication.standbys})
        return pmap(result)
