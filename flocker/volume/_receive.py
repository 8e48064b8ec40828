"""
The receiving end of a push (run by the node's agent for another node's
push: :mod:`flocker.node._peer`): say what
this node has, apply the sender's stream atomically and make the copy a
read-only follower of its owner.  The protocol and the steps are described
in :mod:`flocker.volume._push`; who may push what is decided by
:mod:`flocker.volume._policy`, what a stream may carry by
:mod:`flocker.volume._stream`.
"""

import json
from contextlib import nullcontext

import attr
from eliot import Action
from twisted.internet.defer import (
    Deferred, DeferredList, inlineCallbacks, maybeDeferred,
)

from ._api import PROTOCOL_VERSION, check_node_id, follower_keeps
from ._epoch import check_sender_epoch
from ._errors import (
    NotOwner, OutOfSpace, PoolMissing, StreamRejected, UnsafeName, ZFSError,
)
from ._logging import RECEIVE_VOLUME, RECOVER_VOLUME
from ._policy import check_receive, recorded_owner
from ._process import Interrupted, SourceIdle, cancel_when, read_prefix
from ._stream import (
    RECEIVE_IDLE_TIMEOUT, StreamTooLarge, receive_abandoned, sender_silent,
    stream_limit,
)
from ._zfs import (
    EPOCH, OWNER, PUSHED, Dataset, check_resume_token, check_snapshot_name,
    check_volume_name,
)

__all__ = ["RECEIVED_HOLD", "ReceivingMixin"]

#: The tag of the hold a follower keeps on the snapshot it received last
#: (the base of its next incremental), where the pool's ZFS has holds: an
#: operator's ``zfs destroy`` cannot then force a whole-volume push.
RECEIVED_HOLD = "flocker-received"


@inlineCallbacks
def _read_line(reactor, fd, name, limit=65536):
    """
    Read one line from ``fd`` without blocking the reactor and without
    reading past it (the rest is a ZFS stream for another process).

    :param str name: The volume received (for the error).
    :return: ``Deferred`` firing with the line (no newline) or ``None`` at
        end of input.
    :raises StreamRejected: Nothing came for
        :data:`~flocker.volume._stream.RECEIVE_IDLE_TIMEOUT` seconds.
    """
    try:
        line = yield read_prefix(reactor, fd, limit, b"\n",
                                 idle_timeout=RECEIVE_IDLE_TIMEOUT)
    except SourceIdle as e:
        raise sender_silent(name, e.seconds)
    return line


class _UnderWay(object):
    """
    A receive under way, which a failover may abandon (see
    :meth:`ReceivingMixin.abandon_receive`).

    :ivar epoch: The sender's epoch once its request said it, else
        ``None``.
    :ivar reason: Why it was abandoned, or ``None``.
    :ivar interrupt: ``Deferred`` fired with :attr:`reason` when it is
        abandoned (``ZFSPool.receive``'s ``interrupt``).
    """

    def __init__(self, epoch=None):
        self.epoch = epoch
        self.reason = None
        self.interrupt = Deferred()

    def abandon(self, reason):
        self.reason = reason
        self.interrupt.callback(reason)


def _continue_task(task):
    """
    :param task: A serialized eliot task id from the sender, or ``None``.
    :return: A context manager continuing the sender's task (so both
        nodes' logs form one tree), or doing nothing without a valid id.
    """
    if isinstance(task, str) and task:
        try:
            return Action.continue_task(task_id=task)
        except Exception:
            pass
    return nullcontext()


@inlineCallbacks
def _all_or_first_failure(deferreds):
    """
    Wait for every one of ``deferreds`` (none is left running), then fail
    with the first failure among them, if any.

    :return: ``Deferred`` firing with the list of their results.
    """
    results = yield DeferredList(list(deferreds), consumeErrors=True)
    for ok, value in results:
        if not ok:
            value.raiseException()
    return [value for _, value in results]



class ReceivingMixin(object):
    """
    The receiving end of :class:`~flocker.volume._service.VolumeService`
    (which provides ``pool``, ``node_id``, its locks and the prune
    operation these methods use), and the recovery of a receive
    interrupted by a crash.
    """

    def receive(self, name, stream, emit, caller=None, expected=frozenset(),
                group=None):
        """
        The receiving end of a push: speak the protocol described in
        :mod:`flocker.volume._push`.

        :param str name: Volume name.
        :param int stream: File descriptor carrying the sender's request
            line followed by the ZFS stream (left open for the caller
            to close).
        :param emit: Callable given each protocol message (a ``dict``) to
            send back (one JSON line to the sender).
        :param caller: The pushing node's identity as the transport
            established it (the node key's forced command), or ``None``
            for the operator: see :mod:`flocker.volume._policy`.
        :param expected: The identities of the nodes this node was told it
            may receive a first copy of the volume from (its agent's
            record of expected senders), a ``frozenset``.
        :param group: For a volume of an automatically failed-over
            application whose group this node is in: a callable of no
            argument returning a ``Deferred`` that fires with a
            :class:`~flocker.volume._policy.GroupLease` (and never fails),
            asked only when this node has no copy and ``caller`` is a node
            not in ``expected``; else ``None``.
        :return: ``Deferred`` firing with the received snapshot's name.
        :raises NotOwner: This node owns the volume (never overwritten),
            or ``caller`` is a node other than the one this node's copy
            follows, or this node has no copy and ``caller`` is not in
            ``expected`` nor the holder of ``group``'s lease.  Nothing is
            then received or left behind.
        :raises StreamRejected: The stream does not apply (missing base,
            corrupt or cut-short stream); the copy is unchanged.
        """
        check_volume_name(name)
        if name in self._pushing:
            return self._receive_while_pushing(name, stream, emit, caller,
                                               expected, group)
        return self._locked(name, self._registered, self._receive, name,
                            stream, emit, caller, expected, group)

    def _registered(self, function, name, *args):
        """
        Run ``function(name, *args)`` as the receive of ``name`` under way,
        which :meth:`abandon_receive` finds.
        """
        under_way = self._receiving[name] = _UnderWay()

        def done(passthrough):
            if self._receiving.get(name) is under_way:
                del self._receiving[name]
            return passthrough
        return maybeDeferred(function, name, *args).addBoth(done)

    @inlineCallbacks
    def _receive_while_pushing(self, name, stream, emit, caller, expected,
                               group):
        """
        A receive of a volume this node is pushing: as its owner, it will
        refuse whatever the sender brings, so it does so now instead of
        after its push.  Two nodes that both hold the volume as owner (the
        old owner after a failover, cut off while it pushed) would
        otherwise each wait, receiving, for the other's push to end: until
        the push's header timeout.  A sender older than this copy learns
        that its own copy is stale (``StaleEpoch``), which it acts on.
        """
        dataset = yield self.pool.get(name)
        if dataset is None or dataset.owner != self.node_id:
            # Not (or no longer) this node's: the receive waits its turn,
            # registered as the receive under way like any other.
            result = yield self._locked(name, self._registered, self._receive,
                                        name, stream, emit, caller, expected,
                                        group)
            return result
        capabilities = yield self.pool.capabilities()
        emit(self._receive_header(dataset, capabilities))
        try:
            # Owned here: always refused, as any receive of it would be.
            check_receive(self.node_id, name, True, dataset.owner, caller,
                          expected)
        except NotOwner as e:
            refused = e
        line = yield _read_line(self._reactor, stream, name)
        if line is not None:
            try:
                request = self._parse_request(line)
            except StreamRejected:
                raise refused
            check_sender_epoch(name, dataset.epoch, request.get("epoch"))
        raise refused

    def _receive_header(self, dataset, capabilities):
        """
        :param dataset: This node's copy of the volume, or ``None``.
        :param capabilities: The pool's ``ZFSCapabilities``.
        :return: A receive's first message: what this node has of the
            volume and what its ZFS can do.
        """
        return {"protocol": PROTOCOL_VERSION, "node_id": self.node_id,
                "pool": self.pool.name,
                "snapshots": [] if dataset is None
                else list(dataset.snapshots),
                "zfs": capabilities.to_wire()}

    @inlineCallbacks
    def _receive(self, name, stream, emit, caller, expected, group=None):
        # Asked while the pool is listed: the sender chooses its send
        # flags from the answer.
        capabilities = self.pool.capabilities()
        dataset = yield self._recover(name)
        capabilities = yield capabilities
        # A receive of this volume cut short, whose saved state the sender
        # may resume from (OpenZFS only: zfs-fuse has no receive -s).
        partial = None
        if capabilities.resumable_receive:
            tokens = yield self.pool.resume_tokens()
            for suffix in ("", ".flocker-recv"):
                if name + suffix in tokens:
                    partial = (suffix, tokens[name + suffix])
        if dataset is not None and not dataset.snapshots and \
                partial is not None and partial[0] == "":
            # A new copy received in part: not a copy yet.
            dataset = None
        lease = None
        if (dataset is None and group is not None and caller is not None
                and caller not in expected):
            # Asked of etcd only for a first copy the record alone would
            # refuse: a push into a copy never waits for etcd.
            lease = yield group()
        refused = None
        try:
            check_receive(self.node_id, name, dataset is not None,
                          None if dataset is None else dataset.owner, caller,
                          expected, lease)
        except NotOwner as e:
            # Refused; told once the request says the sender's epoch: a
            # sender older than this copy learns that its own copy is
            # stale (StaleEpoch), which it acts on.
            refused = e
        header = self._receive_header(dataset, capabilities)
        if partial is not None and refused is None:
            header["resume"] = partial[1]
        emit(header)
        under_way = self._receiving[name]
        try:
            line = yield cancel_when(under_way.interrupt,
                                     _read_line(self._reactor, stream, name))
        except Interrupted:
            raise receive_abandoned(name, under_way.reason)
        if line is None:
            raise refused or StreamRejected(
                "the sender of %s closed the connection before sending a "
                "stream" % (name,))
        try:
            request = self._parse_request(line)
        except StreamRejected:
            if refused is not None:
                raise refused
            raise
        # A node pushing as another is refused before anything else is
        # said to it (recorded_owner raises NotOwner).
        request["owner"] = recorded_owner(caller, request["owner"])
        if dataset is not None:
            check_sender_epoch(name, dataset.epoch, request.get("epoch"))
        if refused is not None:
            raise refused
        resume = request.get("resume")
        if resume is not None and (partial is None or resume != partial[1]):
            raise StreamRejected(
                "the sender of %s resumes a receive this node has no saved "
                "state of" % (name,))
        if partial is not None and resume is None:
            # Not resumed (the sender's snapshot is gone, or it cannot):
            # the saved state would refuse any other stream.
            yield self.pool.abort_receive(name, partial[0])
            partial = None
        with _continue_task(request.get("task")):
            received = yield self._apply(dataset, name, request, stream,
                                         partial)
            snapshot = received.snapshots[-1]
            # The copy is complete and prepared: the sender goes on (a
            # hand-off's next steps, while the application is down) while
            # this side keeps its snapshots in order, still holding the
            # volume's lock.  A failure of that is the sender's late one.
            emit({"received": snapshot, "node_id": self.node_id})
            yield self._settle(received, dataset)
        return snapshot

    def _parse_request(self, line):
        try:
            request = json.loads(line)
            snapshot, base = request["snapshot"], request["base"]
            check_snapshot_name(snapshot)
            if base is not None:
                check_snapshot_name(base)
            check_node_id(request["owner"])
            maximum_size = request.get("maximum_size")
            if maximum_size is not None and not (
                    isinstance(maximum_size, int) and maximum_size > 0):
                raise ValueError(maximum_size)
            epoch = request.get("epoch")
            if epoch is not None and not (
                    type(epoch) is int and 0 <= epoch < 10 ** 18):
                raise ValueError(epoch)
            if request.get("resume") is not None:
                check_resume_token(request["resume"])
        except (ValueError, KeyError, TypeError, UnsafeName):
            raise StreamRejected("the sender's request is not valid: %r" % (
                line[:200],))
        return request

    @inlineCallbacks
    def _apply(self, dataset, name, request, stream, partial=None):
        """
        Receive the sender's stream and make the copy a follower.

        :param partial: ``(suffix, token)`` of the saved state of a receive
            cut short that the stream resumes (the request named it), or
            ``None``.
        :return: ``Deferred`` firing with the copy as it now is (a
            ``Dataset``, named without any suffix, its newest snapshot the
            one received).
        """
        snapshot, base = request["snapshot"], request["base"]
        resuming = partial is not None
        self._writable.discard(name)
        capabilities = yield self.pool.capabilities()
        with RECEIVE_VOLUME(volume=name) as action:
            action.add_success_fields(snapshot=snapshot, base=base,
                                      resumed=resuming)
            if dataset is not None and dataset.get(PUSHED) is not None:
                # A copy that was an owner (and may not have handed off:
                # a node fenced after a failover) lets go of its holds
                # before a rollback or a swap needs its snapshots gone.
                yield self._release_bases(dataset)
            replaced = base is None or (
                dataset is not None and dataset.snapshots
                and dataset.snapshots[-1] != base)
            if dataset is not None and replaced:
                # A rollback or a swap needs its newest snapshot unheld.
                # (An increment onto the newest destroys nothing: its hold
                # moves once the sender has its answer, see _settle.)
                yield self._release_received(dataset)
            # What the copy is after the receive follows from what it was
            # and the stream (which carries no properties: no -p), so zfs is
            # not asked again.  Followers are not mounted: nothing uses
            # them, and with zfs-fuse a mount kept across receives can show
            # files as they were before (stale kernel page cache); so
            # nothing is received mounted (-u).
            suffix = ""
            if base is None:
                if resuming:
                    # Where the cut-short receive saved its state.
                    suffix = partial[0]
                else:
                    # A full stream is received beside the copy (if any)
                    # and swapped in once complete and prepared: one cut
                    # short (its sender or its zfs receive killed) never
                    # leaves a copy under the volume's name that names no
                    # owner, which every later push would be refused on.
                    suffix = ".flocker-recv"
                yield self._zfs_receive(name, stream, suffix, False, request,
                                        resuming)
                received = Dataset(name=name, properties={"mounted": "no"},
                                   snapshots=[snapshot])
            else:
                if dataset is None or base not in dataset.snapshots:
                    raise StreamRejected(
                        "stream does not apply: this node's copy of %s does "
                        "not have snapshot %s" % (name, base))
                if dataset.snapshots[-1] != base and not resuming:
                    # -r: the later snapshots go too.  (A resumed receive
                    # applies onto the copy as it was when cut short.)
                    yield self.pool.rollback(name, base)
                yield self._zfs_receive(name, stream, "", True, request,
                                        resuming)
                if dataset.mounted:
                    # A follower mounted by hand (-u left it mounted):
                    # unmounted before its properties change, so none of
                    # them remounts it.
                    yield self.pool.unmount(name)
                kept = dataset.snapshots[
                    :dataset.snapshots.index(base) + 1]
                received = attr.evolve(
                    dataset, snapshots=kept.append(snapshot),
                    properties=dataset.properties.set("mounted", "no"))
            received = yield self._make_follower(received, suffix, request)
            if suffix and dataset is not None:
                yield self.pool.rename(name, "", ".flocker-old", mount=False,
                                       mounted=dataset.mounted)
                yield self.pool.rename(name, suffix, "", mount=False,
                                       mounted=False)
                yield self.pool.destroy(name, ".flocker-old", mounted=False)
            elif suffix:
                yield self.pool.rename(name, suffix, "", mount=False,
                                       mounted=False)
        return received

    @inlineCallbacks
    def _settle(self, received, before):
        """
        What a receive does once the sender has its answer: the follower
        holds the snapshot received (the base of its next incremental),
        lets go of the one it held before, and queues the pruning of what
        it no longer needs (its newest snapshots are kept).

        :param Dataset received: The copy as :meth:`_apply` left it.
        :param before: The copy before the receive (``Dataset``), or
            ``None``.
        :return: ``Deferred`` firing with ``None``.
        """
        name, snapshot = received.name, received.snapshots[-1]
        capabilities = yield self.pool.capabilities()
        if capabilities.holds:
            yield self.pool.hold(name, snapshot, RECEIVED_HOLD)
            if before is not None and before.snapshots and \
                    before.snapshots[-1] in received.snapshots[:-1]:
                # Held until the new one was (only Flocker destroys a
                # follower's base); released where _apply did not.
                yield self.pool.release(name, before.snapshots[-1],
                                        RECEIVED_HOLD)
        # As the commands above left it: an acquire next (the end of a
        # hand-off) takes it from _known.
        self._leave(received)
        # Destroyed later, when the volume is idle (see
        # flocker.volume._prune): with zfs-fuse, freeing an old snapshot's
        # own blocks takes seconds.
        self._prune_later(name, self._doomed(
            received, keep=follower_keeps(received.snapshots)))

    @inlineCallbacks
    def _release_received(self, dataset):
        """
        Take the hold :data:`RECEIVED_HOLD` off a follower's newest
        snapshot (where :meth:`_apply` put it), before the copy is rolled
        back, replaced, destroyed or becomes the owner (whose prune must be
        free to destroy it).  Only where the pool's ZFS has holds.

        :return: ``Deferred`` firing with ``None``.
        """
        capabilities = yield self.pool.capabilities()
        if capabilities.holds and dataset.snapshots:
            yield self.pool.release(dataset.name, dataset.snapshots[-1],
                                    RECEIVED_HOLD)

    @inlineCallbacks
    def _zfs_receive(self, name, stream, suffix, force, request,
                     resuming=False):
        # Known by now (the header carried them): no command.
        capabilities = yield self.pool.capabilities()
        maximum_size = request.get("maximum_size")
        available = None
        if maximum_size is None:
            # A stream always has a limit: without the volume's, the room
            # the pool has (no copy can take more), as the listing this
            # receive started with said.
            available = self._pool_free
            if available is None:
                available = yield self.pool.available()
        # Called on its own (tests), not by a receive: abandoned by nothing.
        under_way = self._receiving.get(name) or _UnderWay()
        if under_way.epoch is None:
            under_way.epoch = request.get("epoch")
        try:
            yield self.pool.receive(
                name, stream, request["snapshot"], request["base"],
                suffix=suffix, force=force,
                limit=stream_limit(maximum_size, available),
                capabilities=capabilities,
                idle_timeout=RECEIVE_IDLE_TIMEOUT, resuming=resuming,
                interrupt=under_way.interrupt)
        except (StreamTooLarge, OutOfSpace):
            if capabilities is not None and capabilities.resumable_receive:
                # A stream refused for its size is not kept for resuming:
                # its rest would get a whole limit of its own.
                try:
                    yield self.pool.abort_receive(name, suffix)
                except ZFSError:
                    # Nothing was saved.
                    pass
            raise
        except PoolMissing:
            raise
        except ZFSError as e:
            raise StreamRejected("stream does not apply to %s: %s" % (
                name, e.message))

    def abandon_receive(self, name, epoch):
        """
        Abandon a receive of ``name`` under way from a sender older than
        ``epoch``, the ownership epoch this node is about to follow (a
        fence) or take (a take-over): such a sender was declared dead or cut
        off by a failover, and whatever it still sends would be refused from
        now on.  A sender killed or cut off mid-stream sends nothing more,
        and its receive would hold the volume's lock, and so the failover,
        until :data:`~flocker.volume._stream.RECEIVE_IDLE_TIMEOUT` passed.
        The copy keeps the last snapshot it had (a stream is applied
        atomically).

        :param str name: The volume's name.
        :param int epoch: The epoch to come.
        :return: Whether a receive was abandoned.
        """
        under_way = self._receiving.get(name)
        if under_way is None or under_way.reason is not None or (
                under_way.epoch is not None and under_way.epoch >= epoch):
            return False
        under_way.abandon(
            "its sender (epoch %s) is superseded by epoch %d (a failover)"
            % ("unknown yet" if under_way.epoch is None else under_way.epoch,
               epoch))
        return True

    @inlineCallbacks
    def _make_follower(self, dataset, suffix, request):
        """
        Make a received copy a read-only follower naming the sender as owner.
        Only properties not already right are set (each is one command).

        :param Dataset dataset: The received copy (named without
            ``suffix``) as it is.
        :param str suffix: Where it was received.
        :return: ``Deferred`` firing with the copy as it now is.
        """
        name = dataset.name
        owner = request["owner"]
        # A copy already naming this owner was made a follower before
        # (readonly is set before the owner, always), so an incremental
        # receive costs no extra commands.  (readonly itself cannot be read
        # back on zfs-fuse while mounted.)
        prepared = (dataset.get(OWNER) == owner
                    and dataset.get("atime") == "off")
        wanted = [] if prepared else [("readonly", "on"), ("atime", "off")]
        maximum_size = request.get("maximum_size")
        if dataset.maximum_size != maximum_size:
            wanted.append(("refquota", str(maximum_size or "none")))
        epoch = request.get("epoch")
        if epoch is not None:
            wanted.append((EPOCH, str(epoch)))
        changes = [self.pool.set(name, key, value, suffix)
                   for key, value in wanted if dataset.get(key) != value]
        if dataset.get(PUSHED) is not None:
            # What this node once pushed no longer matters to a follower.
            changes.append(self.pool.inherit(name, PUSHED, suffix))
        # Independent of each other, so run together: one command's time.
        yield _all_or_first_failure(changes)
        # The owner goes last, once the rest is done: recovery takes a copy
        # naming its owner as completely received and prepared.
        if dataset.get(OWNER) != owner:
            yield self.pool.set(name, OWNER, owner, suffix)
        properties = dataset.properties.discard(PUSHED).set(
            OWNER, owner).set("refquota", str(maximum_size or 0))
        if epoch is not None:
            properties = properties.set(EPOCH, str(epoch))
        if not prepared:
            properties = properties.set("atime", "off")
        return attr.evolve(dataset, properties=properties)

    @inlineCallbacks
    def _recover(self, name):
        """
        Finish or undo a swap interrupted by a crash (see the module
        docstring); :return: the volume's :class:`Dataset` or ``None``.
        """
        # One listing of the pool instead of a command per name: this is on
        # the path of every hand-off, while the application is down.
        datasets = {dataset.name: dataset
                    for dataset in (yield self._list())}
        root = datasets.get("")
        free = None if root is None else root.get("available")
        # Remembered for this receive's size limit (see _zfs_receive).
        self._pool_free = int(free) if free and free.isdigit() else None
        current = datasets.get(name)
        incoming = datasets.get(name + ".flocker-recv")
        old = datasets.get(name + ".flocker-old")
        if incoming is not None and not incoming.snapshots and old is None:
            # A full stream's receive cut short, its state saved (OpenZFS's
            # receive -s; zfs-fuse leaves nothing): left for the sender to
            # resume, or for _receive to discard (zfs receive -A).
            incoming = None
        if incoming is None and old is None:
            return current
        with RECOVER_VOLUME(volume=name) as action:
            complete = (incoming is not None and incoming.owner is not None
                        and incoming.snapshots)
            if current is not None:
                outcome = "kept current copy"
            elif complete:
                yield self.pool.rename(name, ".flocker-recv", "",
                                       mount=False)
                incoming = None
                outcome = "finished swap"
            elif old is not None:
                yield self.pool.rename(name, ".flocker-old", "",
                                       mount=False)
                old = None
                outcome = "restored previous copy"
            else:
                outcome = "discarded incomplete copy"
            if incoming is not None:
                yield self.pool.destroy(name, ".flocker-recv")
            if old is not None:
                yield self.pool.destroy(name, ".flocker-old")
            action.add_success_fields(outcome=outcome)
        current = yield self.pool.get(name)
        return current

