"""
The sending end of a push: this node, the owner of a volume, sends what
changed to the receiving end on another node (that node's agent:
:mod:`flocker.node._peer`).

Push protocol (one SSH session whose command is the request
``flocker-volume --eliot-task TASK receive NAME``, which the target's agent
reads (:func:`flocker.volume._forced.peer_request`) and answers with JSON
lines on the session's standard output)::

    target -> {"protocol": 1, "node_id": ID, "pool": POOL,
               "snapshots": [oldest..newest], "zfs": CAPABILITIES,
               "resume": TOKEN (only if it kept a cut-short receive)}
              (or {"error": KIND, "message": ...} if it owns the volume)
    source -> {"snapshot": S, "base": B or null, "owner": SOURCE_ID,
               "maximum_size": N or null, "epoch": E,
               "resume": TOKEN (only if it sends the rest of that stream),
               "task": PUSH_TASK (only on a receiving end opened ahead)}
    source -> the ``zfs send [-i B] pool/NAME@S`` stream (``-i
              pool/NAME#B`` from a bookmark, ``zfs send -t TOKEN`` when
              resuming), then EOF
    target -> {"received": S, "node_id": ID}   (or an error line)

``CAPABILITIES`` is what the target's ZFS and pool offer
(:class:`~flocker.volume._capabilities.ZFSCapabilities`); the source adds
the ``zfs send`` flags both sides support (``-L``, ``-e``, ``-c`` between
OpenZFS pools; none towards zfs-fuse or a node that does not say).

Interleaved with those, the target writes ``{"eliot": MESSAGE}`` lines: its
log, continuing the push's eliot task (``TASK``) from its start.  The
source passes them on to its own log once the target's command has exited,
so the push, both ends of it, is one tree.

A receiving end may be opened ahead of its push
(:meth:`PushingMixin.prepare_push`): a move opens the one for its final
increment while the application stops, so the increment goes as soon as
the stop ends instead of after a new SSH session and bridge start.  The
target sends its header at once and waits for the request; the next push
to that target takes the session (its request names the push's task,
which the target's log of the stream then continues), and one left unused
for :data:`PREPARED_SECONDS` is closed, which the target sees as a sender
that closed before its request: nothing changes there.

The source takes a fresh snapshot ``S`` and picks as base ``B`` the newest of
its snapshots the target also has (a full stream if none).  The target
applies an incremental with ``zfs receive -F`` after rolling back to ``B`` if
needed (a follower never holds anything the owner lacks).  A full stream is
received as ``NAME.flocker-recv`` and swapped in (beside an existing
follower, or as the first copy), so a cut connection or a killed receive at
any point leaves the target's previous copy intact, or no copy at all (ZFS
applies each stream atomically).  Streams are received unmounted (``-u``),
and the target works out its copy's new state from the old one and the
stream rather than asking ZFS again; it sets ``readonly``, ``atime`` and
``refquota`` together and ``flocker:owner`` after them, last.  It confirms
only then (holding the snapshot received, releasing the one held before
and pruning after the answer, still under the volume's lock), so as soon
as the confirmation arrives (without waiting for the
target's command to exit) the source records ``S`` as what the target has
(``flocker:pushed``: address, identity, pool and snapshot of each recent
target), or, in a hand-off, goes on with steps 3 and 4 below; it collects
the command's exit (and the rest of its log) meanwhile.
Once the push is over, the source prunes its snapshots older than ``B``
that no other target was last sent, and the target all but its newest few
(:data:`~flocker.volume._api.FOLLOWER_SNAPSHOTS`).  That is all any next
incremental needs; neither end waits for it (see
:mod:`flocker.volume._prune`).  Snapshots Flocker did not take
(not named ``flocker-...``) are never pruned.  Where the pool's ZFS has
holds, the source holds each target's last confirmed snapshot (tag
:data:`BASE_HOLD`), so only Flocker destroys it.

Where both sides run OpenZFS, every receive is resumable (``-s``): a
stream cut short leaves the target's copy as it was plus the part
received, named by a ``receive_resume_token`` the target offers in its next
header.  The source sends the rest of it if it still has that snapshot
(and the target the base), then, on a second connection, its new snapshot
incrementally; otherwise the target discards the saved state.  The source
also bookmarks each snapshot a target confirmed (where the pool has
bookmarks): a base whose snapshot is gone is then sent from its bookmark.

The hand-off protocol is in :mod:`flocker.volume._ownership`; the
receiving end is :mod:`flocker.volume._receive`.
"""

import json
import os

import attr
from pyrsistent import pmap
from twisted.internet.defer import (
    CancelledError, DeferredList, inlineCallbacks, succeed,
)

from .._context import in_current_action
from .._process import LineTooLong
from ._api import (
    PROTOCOL_VERSION, PushResult, check_node_id, follower_keeps,
)
from ._capabilities import ZFSCapabilities, send_options
from ._errors import (
    HandoffConflict, RemoteError, SnapshotNotFound,
    TargetUnreachable, UnsafeName,
)
from ._logging import (
    LATE_REMOTE_FAILURE, PREPARE_PUSH,
    PREPARED_PUSH_DROPPED, PUSH_VOLUME,
)
from ._process import close_quietly, make_pipe, pump
from ._remote import check_address, forward_log, start_remote
from ._zfs import (
    PUSHED, check_pool_name, check_resume_token, check_volume_name,
)

__all__ = ["BASE_HOLD", "HEADER_TIMEOUT", "PREPARED_SECONDS", "PushingMixin",
           "pushed_peers"]

#: The tag of the hold on each snapshot a target confirmed last (the base of
#: its next incremental), where the pool's ZFS has holds.
BASE_HOLD = "flocker-base"

#: Seconds a pushing node waits for the receiving end on the target to say
#: what it has (it normally takes well under a few seconds).
HEADER_TIMEOUT = 120

#: Seconds a receiving end opened ahead (:meth:`PushingMixin.prepare_push`)
#: waits for its push before it is closed: well under the receiving side's
#: wait for a request (``RECEIVE_IDLE_TIMEOUT``), so it is this side that
#: ends it, and long enough for an application's stop.
PREPARED_SECONDS = 10

# How many per-node entries flocker:pushed keeps (user property values are
# limited to 1024 bytes; the newest entries matter).
_PUSHED_ENTRIES = 6


def _latest_common(ours, theirs):
    theirs = set(theirs)
    for snapshot in reversed(ours):
        if snapshot in theirs:
            return snapshot
    return None


def _choose_base(dataset, theirs, capabilities):
    """
    The base of the next stream to a target holding the snapshots
    ``theirs``: the newest snapshot both sides have or, failing that and
    where the pool's ZFS has bookmarks, the newest of theirs this side
    still has a bookmark of (its snapshot was destroyed since).

    :return: ``(base, bookmark)``: ``base`` is ``None`` for a full stream;
        ``bookmark`` says whether to send from the bookmark.
    """
    base = _latest_common(dataset.snapshots, theirs)
    if base is None and capabilities.bookmarks:
        base = _latest_common(sorted(dataset.bookmarks), theirs)
        return base, base is not None
    return base, False


def _older(dataset, snapshot):
    """
    :return: ``dataset`` as it was before ``snapshot`` was taken: its
        snapshots older than that one (all of them if it is not among
        them, not taken yet).
    """
    if snapshot not in dataset.snapshots:
        return dataset
    return attr.evolve(dataset, snapshots=dataset.snapshots[
        :dataset.snapshots.index(snapshot)])


def _resume_point(point, dataset, theirs):
    """
    :param point: What the sending pool read from the target's resume
        token (:meth:`~flocker.volume._zfs.ZFSPool.resume_point`), or
        ``None``.
    :return: ``point`` if this side can send the rest: its snapshot is
        still here and its base (if any) is one the target has.
    """
    if point is None:
        return None
    snapshot, base = point
    if snapshot not in dataset.snapshots or (
            base is not None and base not in theirs):
        return None
    return point


@attr.s(frozen=True)
class _Peer(object):
    """
    What this node knows about a node it pushed a volume to: its identity,
    its pool, and the last snapshot it confirmed having.
    """
    address = attr.ib()
    node_id = attr.ib()
    pool = attr.ib()
    snapshot = attr.ib()


def pushed_peers(dataset):
    """
    :return: ``PMap`` of address to :class:`_Peer` recorded in the
        dataset's ``flocker:pushed`` property (``address/id/pool/snapshot``
        entries separated by commas; none of the parts can hold either).
    """
    return _decode_peers(dataset.get(PUSHED) or "")


def _decode_peers(text):
    peers = {}
    for entry in text.split(","):
        parts = entry.split("/")
        if len(parts) == 4:
            peers[parts[0]] = _Peer(*parts)
    return pmap(peers)


def _snapshots(peers):
    """
    :return: The set of snapshots some peer of ``peers`` confirmed last.
    """
    return frozenset(peer.snapshot for peer in peers.values())


def _encode_peers(peers):
    newest = sorted(peers.values(), key=lambda peer: peer.snapshot)
    return ",".join("/".join(attr.astuple(peer))
                    for peer in newest[-_PUSHED_ENTRIES:])



class PushingMixin(object):
    """
    The sending end of :class:`~flocker.volume._service.VolumeService`
    (which provides ``pool``, ``node_id``, its locks and the snapshot and
    prune operations these methods use).
    """

    def push(self, name, target, progress=None, snapshot=None):
        check_volume_name(name)
        check_address(target)
        return self._locked_push(name, self._push_owned, name, target,
                                 progress, snapshot)

    def prepare_push(self, name, target):
        check_volume_name(name)
        check_address(target)
        key = (name, target)
        if key in self._prepared:
            return succeed(None)
        with PREPARE_PUSH(volume=name, target=target) as action:
            # The receiving side logs its start under this action; the
            # push that uses it names its own task in its request.
            starting = self._open_receive(
                name, target, action.serialize_task_id().decode("ascii"))
        # Settled, never failing: a push that takes it sees how it went.
        settled = DeferredList([starting], consumeErrors=True)
        timer = self._clock.callLater(PREPARED_SECONDS, self._drop_prepared,
                                      key, "not used within %d seconds" % (
                                          PREPARED_SECONDS,))
        self._prepared[key] = (settled, timer)
        return succeed(None)

    def _drop_prepared(self, key, reason):
        """
        Close the receiving end opened ahead for ``key`` (its command sees
        its input end before any request and changes nothing) and collect
        how it ended.
        """
        settled, _ = self._prepared.pop(key)
        name, target = key
        PREPARED_PUSH_DROPPED.log(volume=name, target=target, reason=reason)

        def close(results):
            (ok, value), = results
            if ok:
                remote, stdin_write = value
                close_quietly(stdin_write)
                remote.ended.addCallback(forward_log)
        settled.addCallback(close)

    @inlineCallbacks
    def _start_receive(self, name, target, task):
        """
        Start the receiving end of a push of ``name`` to ``target``: the one
        :meth:`prepare_push` opened, if any and it opened, else a new one.

        :param str task: The push's serialized eliot task, which the
            receiving side continues.
        :return: ``Deferred`` firing with ``(command, stdin_write, task)``:
            ``task`` is ``None`` where the command was started with the
            push's own task, else the task its request must name.
        """
        prepared = self._prepared.pop((name, target), None)
        if prepared is not None:
            settled, timer = prepared
            timer.cancel()
            (ok, value), = yield settled
            if ok:
                remote, stdin_write = value
                return remote, stdin_write, task
            PREPARED_PUSH_DROPPED.log(
                volume=name, target=target,
                reason="it did not open: %s" % (value.getErrorMessage(),))
        remote, stdin_write = yield self._open_receive(name, target, task)
        return remote, stdin_write, None

    def _open_receive(self, name, target, task):
        """
        Start the receiving end of a push of ``NAME`` on ``target``.

        :param str task: The serialized eliot task its log continues.
        :return: ``Deferred`` firing with ``(command, stdin_write)``.
        """
        return start_remote(self._remote, target,
                            ["--eliot-task", task, "receive", name])

    @inlineCallbacks
    def _push_owned(self, name, target, progress, snapshot):
        dataset = yield self._owned(name)
        if snapshot is not None and snapshot not in dataset.snapshots:
            raise SnapshotNotFound(
                "volume %s has no snapshot %s" % (name, snapshot))
        result, exited = yield self._push(dataset, target, progress,
                                          snapshot=snapshot)
        yield exited
        return result

    @inlineCallbacks
    def _push(self, dataset, target, progress, record=True, snapshot=None):
        """
        Push ``dataset`` to ``target``; with ``record``, remember what the
        target now has (the next push's base), which a hand-off skips: the
        old owner never pushes the volume again, and a copy received later
        forgets the record anyway.

        The target confirms only a copy completely received and prepared,
        so this returns as soon as it has confirmed (and this node recorded
        it), while the target's command may still be exiting: what the
        caller does next need not wait for that (a hand-off's next steps
        included), but the caller waits for ``exited`` before it returns,
        so that the target's log is passed on (one tree) and no command is
        left behind.

        Where both pools' ZFS can resume a receive (OpenZFS) and the target
        kept the state of an earlier push cut short, the rest of that
        stream goes first (``zfs send -t``); a second stream then brings
        the target up to the snapshot taken for this push.

        :param snapshot: ``None`` to send a snapshot taken now, else the
            name of one of ``dataset``'s to send (taken once for several
            targets).
        :return: ``Deferred`` firing with ``(PushResult, exited)``;
            ``exited`` is a ``Deferred`` that never fails.
        """
        name = dataset.name
        with PUSH_VOLUME(volume=name, target=target) as action:
            result, pool, exited, fresh = yield self._push_negotiated(
                dataset, target, progress, action, snapshot=snapshot)
            if fresh is not None:
                # The earlier stream is in; now this push's own snapshot.
                yield exited
                if record:
                    yield self._record(dataset, target, result, pool)
                dataset = yield self.pool.get(name)
                first = result
                result, pool, exited, _ = yield self._push_negotiated(
                    dataset, target, progress, action, snapshot=fresh)
                result = attr.evolve(
                    result, bytes_sent=result.bytes_sent + first.bytes_sent,
                    resumed=first.bytes_sent)
            if record:
                yield self._record(dataset, target, result, pool)
            action.add_success_fields(snapshot=result.snapshot,
                                      base=result.base,
                                      bytes=result.bytes_sent,
                                      resumed=result.resumed,
                                      node_id=result.target_node_id)
        return result, exited

    @inlineCallbacks
    def _record(self, dataset, target, result, pool):
        """
        Remember in ``flocker:pushed`` that ``target`` confirmed
        ``result.snapshot``, and protect it as that target's next base.

        :return: ``Deferred`` firing with ``None``.
        """
        before = pushed_peers(dataset)
        peers = before.set(target, _Peer(
            address=target, node_id=result.target_node_id,
            pool=pool, snapshot=result.snapshot))
        encoded = _encode_peers(peers)
        yield self.pool.set(dataset.name, PUSHED, encoded)
        yield self._hold_bases(dataset.name, _snapshots(before),
                               _snapshots(_decode_peers(encoded)))

    @inlineCallbacks
    def _hold_bases(self, name, before, after):
        """
        Keep a hold (:data:`BASE_HOLD`) on every snapshot that is the last a
        target confirmed, the base of its next incremental, where the
        pool's ZFS has holds: nothing but Flocker's own bookkeeping (an
        operator's ``zfs destroy``, another tool's clean-up) can then
        destroy it and force a whole-volume push.  Flocker's prune keeps
        these snapshots anyway; a copy that stops being the owner releases
        them (:meth:`_release_bases`).

        Where the pool has bookmarks (OpenZFS), each such snapshot is also
        bookmarked: should the snapshot go all the same (its hold released
        by hand), the next incremental is sent from the bookmark
        (:func:`_choose_base`) instead of the whole volume.

        :param frozenset before: The snapshots held until now.
        :param frozenset after: Those to hold from now on.
        :return: ``Deferred`` firing with ``None``.
        """
        capabilities = yield self.pool.capabilities()
        for snapshot in sorted(after - before):
            if capabilities.holds:
                yield self.pool.hold(name, snapshot, BASE_HOLD)
            if capabilities.bookmarks:
                yield self.pool.bookmark(name, snapshot)
        for snapshot in sorted(before - after):
            if capabilities.holds:
                yield self.pool.release(name, snapshot, BASE_HOLD)
            if capabilities.bookmarks:
                yield self.pool.destroy_bookmark(name, snapshot)

    def _release_bases(self, dataset):
        """
        Release the holds :meth:`_hold_bases` put on ``dataset``'s
        snapshots (before the copy stops being the owner, or is
        destroyed: a follower's copy rolls back and prunes freely).

        :return: ``Deferred`` firing with ``None``.
        """
        return self._hold_bases(dataset.name,
                                _snapshots(pushed_peers(dataset)),
                                frozenset())

    @inlineCallbacks
    def _header(self, remote, target):
        """
        Wait for the receiving side's first message, at most
        :data:`HEADER_TIMEOUT` seconds (a stuck node must not stall a
        deploy forever); kill the remote command if it does not come.

        :return: ``Deferred`` firing with the message or ``None`` if the
            remote command ended without one.
        """
        waiting = self._read_message(remote, target)
        timer = self._clock.callLater(HEADER_TIMEOUT, waiting.cancel)
        try:
            header = yield waiting
        except CancelledError:
            remote.kill()
            raise TargetUnreachable(
                "node %s did not answer within %d seconds" % (
                    target, HEADER_TIMEOUT))
        finally:
            if timer.active():
                timer.cancel()
        return header

    @inlineCallbacks
    def _send(self, dataset, snapshot, base, total, sink, progress, answer,
              options=(), bookmark=False, token=None):
        """
        Run ``zfs send`` and pump its stream into ``sink`` (taken over);
        wait for all of it and for ``answer``.

        :param answer: ``Deferred`` firing with the receiving side's answer
            (never failing).
        :param options: ``zfs send`` flags (see
            :func:`~flocker.volume._capabilities.send_options`).
        :param bool bookmark: Send from the bookmark of ``base``.
        :param token: The target's resume token: send the rest of the
            stream it names (``zfs send -t``) instead.
        :return: ``Deferred`` firing with ``(pumped, sent, answer)``: the
            ``(success, value)`` pairs of the pump (bytes) and of ``zfs
            send``, and what ``answer`` fired with.
        """
        stream_read, stream_write = make_pipe()
        try:
            if token is not None:
                sent = self.pool.send_resumed(token, stream_write)
            else:
                sent = self.pool.send(dataset.name, snapshot, base,
                                      stream_write, options=options,
                                      bookmark=bookmark)
        except BaseException:
            close_quietly(stream_read, stream_write, sink)
            raise
        close_quietly(stream_write)
        watcher = None if progress is None else (
            lambda count: progress.update(count, total))
        pumped = pump(self._reactor, stream_read, sink, watcher)
        results = yield DeferredList([pumped, sent, answer],
                                     consumeErrors=True)
        return results[0], results[1], results[2][1]

    @inlineCallbacks
    def _push_negotiated(self, dataset, target, progress, action,
                         snapshot=None):
        """
        Push through the receiving end on the target, which says
        what it has, refuses if it owns the volume, receives atomically and
        makes its copy a follower (see the module docstring).

        The push is over as soon as the target confirms (it does so only
        once its copy is complete and prepared), not when its command has
        ended too: that takes the session's close, a good part of a small
        push's time.

        :param snapshot: The snapshot to push, already taken, or ``None``
            to take one.
        :return: ``Deferred`` firing with ``(PushResult, pool, exited,
            fresh)``: ``exited`` fires (never failing) once the target's
            command has exited and its log was passed on; a failure it
            reports after confirming is logged, not raised, since the copy
            is there.  ``fresh`` is ``None``, or, when what was sent was
            the rest of an earlier push's stream (the target had kept its
            state), the snapshot taken for this push, still to be sent.
        """
        name = dataset.name
        # The receiving side continues this push's task from its start, so
        # all of its work (opening the pool included) is in this tree.
        task = action.serialize_task_id().decode("ascii")
        starting = self._start_receive(name, target, task)
        # Found out while the remote command starts up, as is the snapshot
        # taken.
        capabilities = self.pool.capabilities()
        started = DeferredList([starting], consumeErrors=True)
        try:
            if snapshot is None:
                snapshot = yield self._take_snapshot(dataset)
            ours = yield capabilities
        except BaseException:
            # The receiving end, if it started, sees its input end.
            (start_ok, start_value), = yield started
            if start_ok:
                close_quietly(start_value[1])
            raise
        (start_ok, start_value), = yield started
        if not start_ok:
            start_value.raiseException()
        remote, stdin_write, request_task = start_value
        try:
            header = yield self._header(remote, target)
            if header is None or "error" in header:
                raise self._remote_error(target, (yield remote.ended))
            if header.get("protocol") != PROTOCOL_VERSION:
                raise RemoteError(
                    "node %s speaks push protocol %r, not %d" % (
                        target, header.get("protocol"), PROTOCOL_VERSION))
            their_id, pool = header.get("node_id"), header.get("pool")
            check_node_id(their_id)
            check_pool_name(pool)
            if their_id == self.node_id:
                raise HandoffConflict(
                    "node %s is this node (%s); a volume cannot be "
                    "pushed to itself" % (target, their_id))
            theirs = ZFSCapabilities.from_wire(header.get("zfs"))
            resume = yield self._resumable(dataset, header, ours, theirs)
            if resume is not None:
                token, (sent, base) = resume
                bookmark = False
            else:
                token, sent = None, snapshot
                # Only what is older than the snapshot sent can be its
                # base.
                base, bookmark = _choose_base(_older(dataset, snapshot),
                                              header["snapshots"], ours)
            request = {
                "snapshot": sent, "base": base,
                "owner": self.node_id,
                "maximum_size": dataset.maximum_size,
                "epoch": dataset.epoch,
            }
            if token is not None:
                request["resume"] = token
            if request_task is not None:
                # Opened ahead under another action: the stream's receipt
                # is logged under this push.
                request["task"] = request_task
            os.write(stdin_write,
                     json.dumps(request).encode("utf-8") + b"\n")
            total = dataset.size if base is None and token is None else None
            sink, stdin_write = stdin_write, None
            # Only what the target's ZFS and pool take (a node that does
            # not say gets a plain stream).
            options = send_options(ours, theirs)
            (pump_ok, count), (send_ok, send_error), answer = (
                yield self._send(dataset, sent, base, total, sink,
                                 progress, self._read_message(remote, target),
                                 options, bookmark=bookmark, token=token))
        finally:
            if stdin_write is not None:
                close_quietly(stdin_write)
            if progress is not None:
                progress.finish()
        confirmed = isinstance(answer, dict) and "received" in answer
        if not confirmed:
            # An error line, or nothing: how the command ended says why.
            ended = yield remote.ended
            forward_log(ended)
            if ended.exit_code != 0:
                raise self._remote_error(target, ended)
        if not send_ok:
            send_error.raiseException()
        if not pump_ok:
            raise RemoteError("node %s: stream interrupted: %s" % (
                target, count.getErrorMessage()))
        if not (confirmed and answer.get("received") == sent):
            raise RemoteError("node %s did not confirm receiving %s" % (
                target, sent))
        # The snapshots older than the base are not needed by this target
        # any more (nor by others, unless they were sent there), except the
        # newest few before this one, which a copy this node has not pushed
        # to yet may share (the other standbys of a volume this node took
        # over by a move).  (The snapshot sent is kept: when resuming, or
        # sending one taken for several targets, it is not the newest.)
        # Destroyed once this push is over, which does not wait for it.
        self._prune_later(name, self._doomed(dataset, keep=[
            base, sent] + follower_keeps(_older(dataset, sent).snapshots)))
        # In the push's action: a late failure is logged under it.
        exited = remote.ended.addCallback(
            in_current_action(self._remote_exited), target, name)
        return (PushResult(
            name=name, target=target, target_node_id=their_id,
            snapshot=sent, base=base, bytes_sent=count), pool, exited,
            None if token is None else snapshot)

    @inlineCallbacks
    def _resumable(self, dataset, header, ours, theirs):
        """
        Whether to send the rest of a stream the target kept the state of
        (its header's ``resume`` token), rather than a new one: only where
        both sides' ZFS can resume and this side can still send it.

        :return: ``Deferred`` firing with ``(token, (snapshot, base))`` or
            ``None``.
        """
        token = header.get("resume")
        if token is None or theirs is None or not (
                ours.resumable_receive and theirs.resumable_receive):
            return None
        try:
            check_resume_token(token)
        except UnsafeName:
            return None
        point = yield self.pool.resume_point(dataset.name, token)
        point = _resume_point(point, dataset, header["snapshots"])
        return None if point is None else (token, point)

    def _remote_exited(self, ended, target, name):
        """
        Collect how the receiving end ended after it confirmed:
        pass its log on, and log (not raise) a failure.
        """
        forward_log(ended)
        if ended.exit_code != 0:
            LATE_REMOTE_FAILURE.log(
                volume=name, target=target,
                reason=self._remote_error(target, ended).message)

    @inlineCallbacks
    def _read_message(self, remote, target):
        """
        :return: ``Deferred`` firing with the remote command's next protocol
            message (a ``dict``), or ``None`` at the end of its output;
            failing with :class:`RemoteError` naming ``target`` when it sent
            a line too long to take (the command is killed).
        """
        while True:
            try:
                line = yield remote.next_line()
            except LineTooLong as e:
                raise RemoteError(
                    "node %s sent a line longer than %d bytes; connection "
                    "dropped" % (target, e.limit))
            if line is None:
                return None
            try:
                message = json.loads(line)
            except ValueError:
                # Anything a login script printed before our command ran.
                continue
            if isinstance(message, dict) and "eliot" not in message:
                return message

