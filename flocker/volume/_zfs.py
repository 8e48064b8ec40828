"""
A ZFS storage pool driven by the ``zfs`` and ``zpool`` commands.

:class:`ZFSPool` is the only code that runs ``zfs``.  It is scoped to one
pool: every dataset it names is ``<pool>/<volume>`` (or, while a full stream
is being swapped in, ``<pool>/<volume>.flocker-recv`` and
``<pool>/<volume>.flocker-old``), built from names checked here, so nothing
outside the pool is ever listed, changed or unmounted.  This matters with
zfs-fuse, where one daemon serves every pool of the machine (and of every lab
node) and ``zfs list`` shows them all.

zfs-fuse quirks handled here:

* ``dataset is busy`` right after a dataset was mounted or unmounted: destroy,
  rename and unmount are retried a few times with short, growing delays
  (:data:`BUSY_DELAYS`, timed by the injected clock).
* ``zfs rename`` of a mounted dataset is always busy: :meth:`ZFSPool.rename`
  unmounts first and mounts the result afterwards.
* ``readonly`` reads back as ``off`` (source ``temporary``) on a mounted
  dataset even when set to ``on`` (writes do fail): it is never read, only
  set.
* No ``zfs receive -s`` (resumable receive), no bookmarks and no
  ``written`` property: the service relies on receive being atomic instead
  (an interrupted receive leaves the previous state), which this zfs-fuse
  honours; OpenZFS's resume tokens and bookmarks are used only where the
  pool's capabilities say so.
* ``zfs receive -u`` (leave the received dataset unmounted) works although
  ``zfs receive``'s usage text does not list it: a full stream then creates
  an unmounted dataset, and an incremental one leaves the dataset mounted or
  not, as it was (which plain ``zfs receive`` does too).  It has no ``-x``
  or ``-o``: the receive policy (:mod:`flocker.volume._stream`) keeps
  properties out by refusing the streams that carry them.
"""

import os
import re

import attr
from eliot.twisted import DeferredContext
from pyrsistent import pmap, pvector
from twisted.internet.defer import (
    DeferredList, FirstError, gatherResults, inlineCallbacks, succeed,
)
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.task import deferLater

from .._model import SAFE_NAME_RULE, is_safe_name
from ._capabilities import parse_capabilities
from ._epoch import EPOCH, is_recovery_suffix, parse_epoch
from ._errors import (
    DatasetBusy, InvalidSize, OutOfSpace, PoolMissing, StreamRejected,
    UnsafeName, ZFSError,
    ZFSUnavailable,
)
from ._logging import BUSY_RETRY, ZFS_COMMAND
from .._process import ProcessFailed, run_process, spawn
from ._process import (
    Interrupted, LimitExceeded, SourceIdle, cancel_when, close_quietly,
    make_pipe, pump, read_prefix,
)
from ._stamp import mark_changed, stamp_path
from ._stream import (
    BEGIN_RECORD_SIZE, StreamTooLarge, check_begin_record, receive_abandoned,
    receive_flags, sender_silent,
)
from ._zfs_words import in_words

__all__ = [
    "ZFSPool", "Dataset", "BUSY_DELAYS", "OWNER", "PUSHED", "NODE_ID",
    "EPOCH",
    "TEMPORARY_SUFFIXES", "zfs_error", "check_pool_name", "check_volume_name",
    "check_snapshot_name", "check_maximum_size", "check_resume_token",
    "parse_resume_point",
]

#: User property naming the node that owns a volume (its node identity).
OWNER = "flocker:owner"

#: User property recording, for each node this one pushed the volume to,
#: ``address/node-id/pool/snapshot`` (the last snapshot it confirmed),
#: entries separated by commas.
PUSHED = "flocker:pushed"

#: User property on the pool's root dataset holding this node's identity.
NODE_ID = "flocker:node-id"

#: Seconds to wait before each retry of an operation zfs-fuse calls busy.
#: A retry 0.25-0.5 s later is usually enough; a loaded machine needed
#: more.  The total stays under eight seconds so that a dataset that really
#: is in use is reported promptly.
BUSY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)

#: ``zfs`` subcommands that change what the node reports about its volumes;
#: each rewrites the pool's change stamp once it ended.
_CHANGING = frozenset([
    "create", "destroy", "rename", "set", "inherit", "snapshot",
    "rollback", "receive", "recv", "clone", "promote", "mount", "unmount",
])

#: Suffixes of the temporary datasets of a receive that replaces a copy.
#: Volume names cannot contain dots, so these never clash with a volume.
TEMPORARY_SUFFIXES = (".flocker-recv", ".flocker-old")

# Properties read for every dataset and snapshot.
# (readonly is not among them: zfs-fuse reports it as "off (temporary)" for
# every mounted dataset whatever it is set to.)
_PROPERTIES = ("type", "referenced", "refquota", "mounted",
               "mountpoint", "atime", OWNER, PUSHED, EPOCH)

# Resume tokens as OpenZFS writes them: version, checksum, length and the
# compressed contents, all hexadecimal.
_RESUME_TOKEN = re.compile(r"\A[0-9]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+\Z")

# Snapshot names: what Flocker creates and what it accepts from a peer.
_SNAPSHOT_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")

# Pool names as zpool accepts them (and nothing that could be an option).
_POOL_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9_.:-]{0,127}\Z")


def check_snapshot_name(snapshot):
    """
    :param str snapshot: A snapshot name (the part after ``@``).
    :raises UnsafeName: If it is not a plain token Flocker would create.
    """
    if not (isinstance(snapshot, str) and _SNAPSHOT_NAME.match(snapshot)):
        raise UnsafeName("snapshot name %r is not a safe name" % (snapshot,))


def check_resume_token(token):
    """
    :raises UnsafeName: Unless ``token`` looks like a ZFS resume token (it
        comes from another node and goes on a command line).
    """
    if not (isinstance(token, str) and len(token) < 65536
            and _RESUME_TOKEN.match(token)):
        raise UnsafeName("not a ZFS resume token: %r" % (str(token)[:80],))


def parse_resume_point(output, dataset):
    """
    Read ``zfs send -nvP -t TOKEN``'s output: the token's contents (an
    nvlist, ``toname = POOL/FS@SNAP`` among them), then ``full`` or
    ``incremental FROM`` lines (``zfs-send(8)``).

    :param str output: The command's standard output.
    :param str dataset: This node's dataset the token must be of.
    :return: ``(snapshot, base)``, with ``base`` ``None`` for a full
        stream, or ``None`` if the token is of another dataset or the
        output cannot be read.
    """
    snapshot = base = None
    for line in output.splitlines():
        key, _, value = line.strip().partition(" = ")
        if key == "toname":
            name, _, snapshot = value.partition("@")
            if name != dataset:
                return None
        fields = line.split("\t")
        if fields[0] == "incremental" and len(fields) >= 3:
            base = re.split("[@#]", fields[1])[-1]
    try:
        check_snapshot_name(snapshot)
        if base is not None:
            check_snapshot_name(base)
    except UnsafeName:
        return None
    return snapshot, base


def check_pool_name(name):
    """
    :param str name: A pool name.
    :raises UnsafeName: If it is not a plain pool name.
    """
    if not (isinstance(name, str) and _POOL_NAME.match(name)):
        raise UnsafeName("pool name %r is not a valid ZFS pool name"
                         % (name,))


def check_volume_name(name):
    """
    :param str name: A volume name.
    :raises UnsafeName: Unless it is a safe name (see
        ``flocker._model.SAFE_NAME``).
    """
    if not is_safe_name(name):
        raise UnsafeName("volume name %r is not a safe name: %s" % (
            name, SAFE_NAME_RULE))


def check_maximum_size(maximum_size):
    """
    :param maximum_size: A volume's maximum size in bytes, or ``None``.
    :raises InvalidSize: Unless it is ``None`` or a positive ``int`` (ZFS
        would take 0 as no limit and refuse a negative one).
    """
    if maximum_size is None:
        return
    if (isinstance(maximum_size, bool) or not isinstance(maximum_size, int)
            or maximum_size <= 0):
        raise InvalidSize("maximum size must be a positive number of "
                          "bytes, not %r" % (maximum_size,))


def zfs_error(failure, pool):
    """
    Classify a failed ``zfs``/``zpool`` command.

    :param ProcessFailed failure: The failed command.
    :param str pool: The pool the command was about.
    :return: A :class:`ZFSError` subclass instance whose message is one line,
        Flocker's words first (what it could not do, what to do), ZFS's own
        last line and exit status after (:func:`_zfs_words.in_words`).
    """
    stderr = failure.stderr.decode("utf-8", "replace")
    message = in_words(failure.argv, failure.exit_code, failure.signal,
                       stderr, failure.message, pool)
    if "zfs-fuse daemon is running" in stderr or (
            failure.exit_code == 1 and "execvpe" in stderr):
        return ZFSUnavailable(message, failure)
    if "no such pool" in stderr or (
            "'%s': dataset does not exist" % (pool,)) in stderr:
        return PoolMissing(message, failure)
    if ("out of space" in stderr or "quota exceeded" in stderr.lower()
            or "No space left" in stderr):
        return OutOfSpace(message, failure)
    if "is busy" in stderr or "device busy" in stderr.lower():
        return DatasetBusy(message, failure)
    return ZFSError(message, failure)


def _no_features(failure, pool):
    failure.trap(ZFSError)
    if isinstance(failure.value, (PoolMissing, ZFSUnavailable)):
        return failure
    return b""


def _checked_options(options):
    options = list(options)
    # Options only: a word not starting with "-" would be an option's value
    # (-o/-x), anything else could name a dataset.
    expecting = None
    for word in options:
        if not isinstance(word, str) or "\x00" in word:
            raise UnsafeName("not a zfs option: %r" % (word,))
        if expecting is not None:
            if not re.match(expecting, word):
                raise UnsafeName("not a zfs property%s: %r" % (
                    " assignment" if "=" in expecting else "", word))
            expecting = None
        elif word in ("-o", "-x"):
            expecting = (_PROPERTY_ASSIGNMENT if word == "-o"
                         else _PROPERTY_NAME)
        elif not re.match(r"\A-[A-Za-z]\Z", word):
            raise UnsafeName("not a zfs option: %r" % (word,))
    if expecting is not None:
        raise UnsafeName("zfs option %s without its value" % (options[-1],))
    return options


# Property names (native and user properties) and assignments to them.
_PROPERTY_NAME = r"\A[a-z][a-z0-9_.:@-]{0,255}\Z"
_PROPERTY_ASSIGNMENT = r"\A[a-z][a-z0-9_.:@-]{0,255}=[^\n]{0,1024}\Z"


@attr.s(frozen=True)
class Dataset(object):
    """
    One dataset of the pool as ``zfs get`` reported it.

    :ivar str name: The name below the pool (``app`` for ``pool/app``).
    :ivar properties: ``PMap`` of property name to value, holding only
        values set on the dataset itself or computed by ZFS (inherited user
        properties are left out, so an ``OWNER`` is never inherited).
    :ivar snapshots: ``PVector`` of snapshot names in creation order.
    :ivar bookmarks: ``PVector`` of bookmark names (OpenZFS: each names the
        snapshot it was made of, see :meth:`ZFSPool.bookmark`).
    """
    name = attr.ib()
    properties = attr.ib(converter=pmap)
    snapshots = attr.ib(converter=pvector)
    bookmarks = attr.ib(converter=pvector, default=pvector())

    def get(self, key, default=None):
        """
        :param str key: A property name.
        :param default: Returned when the property is not set.
        :return: The property's value.
        """
        return self.properties.get(key, default)

    @property
    def owner(self):
        """
        The owning node's identity, or ``None``.
        """
        return self.get(OWNER)

    @property
    def epoch(self):
        """
        The ownership epoch this copy records (0 when none).
        """
        return parse_epoch(self.get(EPOCH))

    @property
    def mounted(self):
        """
        Whether the dataset is mounted.
        """
        return self.get("mounted") == "yes"

    @property
    def size(self):
        """
        Bytes referenced by the dataset.
        """
        return int(self.get("referenced", "0"))

    @property
    def maximum_size(self):
        """
        The ``refquota`` in bytes, or ``None`` for no limit.
        """
        value = int(self.get("refquota", "0") or "0")
        return value or None

    @property
    def mountpoint(self):
        """
        The mountpoint path (``str``).
        """
        return self.get("mountpoint")


def _parse_datasets(pool, output):
    """
    Turn ``zfs get -H -p -o name,property,value,source`` output into
    :class:`Dataset` values for the direct children of ``pool`` (and, with
    ``pool`` itself as the key ``""``, the root).
    """
    properties = {}
    snapshots = {}
    bookmarks = {}
    order = []
    prefix = pool + "/"
    for line in output.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 4:
            continue
        full, key, source = fields[0], fields[1], fields[-1]
        value = "\t".join(fields[2:-1])
        dataset, _, snapshot = full.partition("@")
        dataset, hash_sign, bookmark = dataset.partition("#")
        if dataset == pool:
            relative = ""
        elif dataset.startswith(prefix) and "/" not in dataset[len(prefix):]:
            relative = dataset[len(prefix):]
        else:
            continue
        if snapshot or hash_sign:
            # OpenZFS's zfs get lists bookmarks too (zfs-fuse has none).
            found = (snapshots if snapshot else bookmarks).setdefault(
                relative, [])
            if (snapshot or bookmark) not in found:
                found.append(snapshot or bookmark)
            continue
        if relative not in properties:
            properties[relative] = {}
            order.append(relative)
        if ":" in key and source not in ("local", "received"):
            # Inherited user properties belong to an ancestor, not here.
            continue
        if value == "-" and source == "-" and ":" in key:
            continue
        properties[relative][key] = value
    return pvector(
        Dataset(name=name, properties=properties[name],
                snapshots=snapshots.get(name, []),
                bookmarks=bookmarks.get(name, []))
        for name in order)


class ZFSPool(object):
    """
    This node's ZFS pool.

    :ivar str name: The pool's name.
    """

    def __init__(self, reactor, name, env, clock=None, runner=run_process):
        """
        :param reactor: ``IReactorProcess`` provider running the commands.
        :param str name: Pool name.
        :param dict env: Environment for ``zfs`` (needs ``PATH``); its
            ``FLOCKER_LOCK_DIR`` places the pool's change stamp (see
            :mod:`flocker.volume._stamp`).
        :param clock: ``IReactorTime`` for busy retries; the reactor if
            ``None``.
        :param runner: ``run_process``-compatible callable (tests pass a
            fake that records argument vectors).
        :raises UnsafeName: If ``name`` is not a plain pool name.
        """
        check_pool_name(name)
        self.name = name
        self._reactor = reactor
        self._env = dict(env)
        self._env["LC_ALL"] = "C"
        self._clock = reactor if clock is None else clock
        self._runner = runner
        self._capabilities = None
        self.stamp = stamp_path(self._env, name)
        #: The value this pool's latest changing command wrote to the
        #: stamp (``None`` before any, or if it could not be written): while
        #: the stamp still holds it, no Flocker process changed the pool
        #: since.
        self.last_stamp = None

    def dataset(self, volume, suffix=""):
        """
        :param str volume: A volume name (checked).
        :param str suffix: ``""``, one of :data:`TEMPORARY_SUFFIXES` or a
            recovery suffix (see :func:`flocker.volume._epoch.recovery_name`).
        :return: The full dataset name ``<pool>/<volume><suffix>``.
        :raises UnsafeName: For an unsafe volume name.
        """
        check_volume_name(volume)
        if suffix and suffix not in TEMPORARY_SUFFIXES and \
                not is_recovery_suffix(suffix):
            raise UnsafeName("unknown dataset suffix %r" % (suffix,))
        return "%s/%s%s" % (self.name, volume, suffix)

    def _run(self, argv):
        action = ZFS_COMMAND(argv=list(argv))
        with action.context():
            d = self._runner(self._reactor, argv, self._env)
            if argv[:2] and argv[0] == "zfs" and argv[1] in _CHANGING:
                d.addBoth(self._changed)

            def classify(failure):
                failure.trap(ProcessFailed)
                raise zfs_error(failure.value, self.name)
            d.addErrback(classify)
            return DeferredContext(d).addActionFinish()

    def _changed(self, result):
        # After the command, failed or not (a failure may have changed
        # something too): the agent's report must be made again.
        self.last_stamp = mark_changed(self.stamp)
        return result

    @inlineCallbacks
    def _retry_busy(self, argv, delays=BUSY_DELAYS):
        """
        Run ``argv``, running it again after each of ``delays`` while
        zfs-fuse answers busy.
        """
        delays = list(delays)
        while True:
            try:
                result = yield self._run(argv)
            except DatasetBusy:
                if not delays:
                    raise
                delay = delays.pop(0)
                BUSY_RETRY.log(argv=list(argv), delay=delay)
                yield deferLater(self._clock, delay, lambda: None)
            else:
                return result

    def check(self):
        """
        :return: ``Deferred`` firing with ``None`` if the pool exists, or
            failing with :class:`PoolMissing` (or :class:`ZFSUnavailable`).
        """
        return self._run(
            ["zpool", "list", "-H", "-o", "name", self.name]).addCallback(
                lambda _: None)

    def capabilities(self):
        """
        Find out what this pool's ZFS offers (see
        :mod:`flocker.volume._capabilities`): asked once, with three
        commands run together, and remembered.

        :return: ``Deferred`` firing with a
            :class:`~flocker.volume._capabilities.ZFSCapabilities`, or
            failing with :class:`PoolMissing` (or :class:`ZFSUnavailable`).
        """
        if self._capabilities is not None:
            return succeed(self._capabilities)

        def remember(capabilities):
            self._capabilities = capabilities
            return capabilities
        return self._detect().addCallback(remember)

    def _detect(self):
        def output_even_if_failed(argv):
            # zfs prints its usage and exits 2 when given no command; zfs
            # version does not exist in zfs-fuse.
            d = self._runner(self._reactor, argv, self._env)

            def failed(failure):
                failure.trap(ProcessFailed)
                return None if argv[1:] else failure.value.stderr
            return d.addCallbacks(lambda out: out if argv[1:] else b"",
                                  failed)
        # zfs-fuse's zpool get has neither -H nor -o (nor feature flags):
        # its refusal means no features; a missing pool still fails.
        properties = self._run(["zpool", "get", "-H", "-o", "property,value",
                                "all", self.name]).addErrback(
                                    _no_features, self.name)
        d = gatherResults([output_even_if_failed(["zfs"]),
                           output_even_if_failed(["zfs", "version"]),
                           properties], consumeErrors=True)

        def parse(outputs):
            usage, version, pool = [
                None if out is None else out.decode("utf-8", "replace")
                for out in outputs]
            return parse_capabilities(usage or "", version, pool)

        def first_error(failure):
            failure.trap(FirstError)
            return failure.value.subFailure
        return d.addCallbacks(parse, first_error)

    def available(self):
        """
        :return: ``Deferred`` firing with the bytes still available to the
            pool's datasets (its root's ``available``).
        """
        d = self._run(["zfs", "get", "-H", "-p", "-o", "value", "available",
                       self.name])
        return d.addCallback(lambda output: int(output.split()[0]))

    def list(self):
        """
        One command that also checks the pool exists and reads the node's
        identity, so opening the pool costs nothing more.

        :return: ``Deferred`` firing with a ``PVector`` of :class:`Dataset`:
            the pool's root (name ``""``, with :data:`NODE_ID` if set on it)
            followed by its direct children, each with its snapshots; or
            failing with :class:`PoolMissing` (or :class:`ZFSUnavailable`).
        """
        # The root's "available" too: a receive's size limit when the
        # volume names none, without a command of its own.
        d = self._run(["zfs", "get", "-H", "-p", "-d", "2", "-o",
                       "name,property,value,source",
                       ",".join(_PROPERTIES + (NODE_ID, "available")),
                       self.name])
        return d.addCallback(lambda output: _parse_datasets(self.name, output))

    def get(self, volume, suffix=""):
        """
        :param str volume: Volume name.
        :param str suffix: See :meth:`dataset`.
        :return: ``Deferred`` firing with the volume's :class:`Dataset`, or
            ``None`` if it does not exist.
        """
        full = self.dataset(volume, suffix)
        d = self._run(["zfs", "get", "-H", "-p", "-d", "1", "-o",
                       "name,property,value,source", ",".join(_PROPERTIES),
                       full])

        def parse(output):
            for dataset in _parse_datasets(self.name, output):
                if dataset.name == volume + suffix:
                    return dataset
            return None

        def missing(failure):
            failure.trap(ZFSError)
            if "dataset does not exist" in failure.value.message:
                return None
            return failure
        return d.addCallbacks(parse, missing)

    def get_root_property(self, key):
        """
        :param str key: A user property name.
        :return: ``Deferred`` firing with its value set locally on the pool's
            root dataset, or ``None``.
        """
        d = self._run(["zfs", "get", "-H", "-o", "value,source", key,
                       self.name])

        def parse(output):
            value, _, source = output.decode("utf-8").rstrip("\n").rpartition(
                "\t")
            return value if source == "local" else None
        return d.addCallback(parse)

    def set_root_property(self, key, value):
        """
        :param str key: A user property name.
        :param str value: Its new value on the pool's root dataset.
        :return: ``Deferred`` firing with ``None``.
        """
        return self._run(["zfs", "set", "%s=%s" % (key, value),
                          self.name]).addCallback(lambda _: None)

    def create(self, volume, properties):
        """
        :param str volume: New volume name.
        :param properties: Mapping of property to value set at creation.
        :return: ``Deferred`` firing with ``None``.
        """
        argv = ["zfs", "create"]
        for key, value in sorted(properties.items()):
            argv += ["-o", "%s=%s" % (key, value)]
        argv.append(self.dataset(volume))
        return self._run(argv).addCallback(lambda _: None)

    def set(self, volume, key, value, suffix=""):
        """
        Set one property (this ``zfs`` takes one per command).

        :return: ``Deferred`` firing with ``None``.
        """
        return self._run(["zfs", "set", "%s=%s" % (key, value),
                          self.dataset(volume, suffix)]).addCallback(
                              lambda _: None)

    def inherit(self, volume, key, suffix=""):
        """
        Remove a locally set property.

        :return: ``Deferred`` firing with ``None``.
        """
        return self._run(["zfs", "inherit", key,
                          self.dataset(volume, suffix)]).addCallback(
                              lambda _: None)

    def snapshot(self, volume, snapshot):
        """
        :return: ``Deferred`` firing with ``None`` once ``volume@snapshot``
            exists.
        """
        check_snapshot_name(snapshot)
        return self._run(["zfs", "snapshot", "%s@%s" % (
            self.dataset(volume), snapshot)]).addCallback(lambda _: None)

    def destroy_snapshot(self, volume, snapshot, delays=BUSY_DELAYS):
        """
        :param delays: Seconds to wait before each retry while ZFS answers
            busy (as it does for a held snapshot, for good).
        :return: ``Deferred`` firing with ``None`` once the snapshot is gone.
        :raises DatasetBusy: Still busy after the last retry.
        """
        check_snapshot_name(snapshot)
        return self._retry_busy(["zfs", "destroy", "%s@%s" % (
            self.dataset(volume), snapshot)], delays).addCallback(
                lambda _: None)

    def hold(self, volume, snapshot, tag):
        """
        Put the hold ``tag`` on ``volume@snapshot`` (``zfs hold``): ZFS then
        refuses to destroy the snapshot until it is released.  Holding it
        again is not an error.

        :return: ``Deferred`` firing with ``None``.
        """
        return self._tag("hold", volume, snapshot, tag, "tag already exists")

    def release(self, volume, snapshot, tag):
        """
        Take the hold ``tag`` off ``volume@snapshot`` (``zfs release``);
        nothing if it has no such hold.

        :return: ``Deferred`` firing with ``None``.
        """
        return self._tag("release", volume, snapshot, tag, "no such tag")

    @inlineCallbacks
    def _tag(self, command, volume, snapshot, tag, already):
        """
        Run ``zfs hold`` or ``zfs release``; a refusal saying ``already``
        (the hold is already there, or already gone) is success.
        """
        check_snapshot_name(snapshot)
        check_snapshot_name(tag)
        try:
            yield self._run(["zfs", command, tag, "%s@%s" % (
                self.dataset(volume), snapshot)])
        except ZFSError as e:
            # A snapshot gone has no hold left to release.
            if already not in e.message and not (
                    command == "release"
                    and "does not exist" in e.message):
                raise

    def rollback(self, volume, snapshot):
        """
        Discard everything after ``snapshot`` (later snapshots included).

        :return: ``Deferred`` firing with ``None``.
        """
        check_snapshot_name(snapshot)
        return self._retry_busy(["zfs", "rollback", "-r", "%s@%s" % (
            self.dataset(volume), snapshot)]).addCallback(lambda _: None)

    @inlineCallbacks
    def unmount(self, volume, suffix=""):
        """
        Unmount one dataset (never ``-a``: that would unmount every pool of
        the zfs-fuse daemon); nothing if it is not mounted.

        :return: ``Deferred`` firing with ``None``.
        """
        try:
            yield self._retry_busy(["zfs", "unmount",
                                    self.dataset(volume, suffix)])
        except ZFSError as e:
            if "not currently mounted" not in e.message:
                raise

    @inlineCallbacks
    def mount(self, volume, suffix=""):
        """
        Mount one dataset at its mountpoint; nothing if already mounted.

        :return: ``Deferred`` firing with ``None``.
        """
        try:
            yield self._run(["zfs", "mount", self.dataset(volume, suffix)])
        except ZFSError as e:
            if "already mounted" not in e.message:
                raise

    @inlineCallbacks
    def destroy(self, volume, suffix="", mounted=True):
        """
        Destroy a dataset with its snapshots: unmount it first and retry
        while zfs-fuse says busy.

        :param bool mounted: ``False`` if the caller knows the dataset is
            not mounted: the unmount (a command) is skipped.
        :return: ``Deferred`` firing with ``None``.
        """
        if mounted:
            yield self.unmount(volume, suffix)
        yield self._retry_busy(["zfs", "destroy", "-r",
                                self.dataset(volume, suffix)])

    @inlineCallbacks
    def rename(self, volume, old_suffix, new_suffix, mount=True,
               mounted=True):
        """
        Rename ``<volume><old_suffix>`` to ``<volume><new_suffix>``.
        zfs-fuse cannot rename a mounted dataset, so it is unmounted first,
        renamed (retrying while busy) and, if ``mount``, mounted again under
        its new name.

        :param bool mounted: ``False`` if the caller knows the dataset is
            not mounted: the unmount (a command) is skipped.
        :return: ``Deferred`` firing with ``None``.
        """
        if mounted:
            yield self.unmount(volume, old_suffix)
        yield self._retry_busy(["zfs", "rename",
                                self.dataset(volume, old_suffix),
                                self.dataset(volume, new_suffix)])
        if mount:
            yield self.mount(volume, new_suffix)

    def send(self, volume, snapshot, base, stdout, options=(),
             bookmark=False):
        """
        Start ``zfs send`` of ``volume@snapshot`` (incremental from ``base``
        if given) writing the stream to the file descriptor ``stdout``.

        :param str volume: Volume name.
        :param str snapshot: Snapshot to send.
        :param base: Snapshot both sides have, or ``None`` for a full stream.
        :param int stdout: Descriptor the stream is written to (the caller
            closes its copy once this returns).
        :param options: Further flags, chosen by
            :func:`~flocker.volume._capabilities.send_options`.
        :param bool bookmark: Send from the bookmark of ``base`` (see
            :meth:`bookmark`) rather than the snapshot, which may be gone.
        :return: ``Deferred`` firing with ``None`` when the send finished, or
            failing with a :class:`ZFSError`.
        """
        check_snapshot_name(snapshot)
        argv = ["zfs", "send"] + _checked_options(options)
        if base is not None:
            check_snapshot_name(base)
            argv += ["-i", "%s%s%s" % (self.dataset(volume),
                                       "#" if bookmark else "@", base)]
        argv.append("%s@%s" % (self.dataset(volume), snapshot))
        return self._spawned(argv, stdin=None, stdout=stdout)

    def send_resumed(self, token, stdout):
        """
        Start ``zfs send -t TOKEN``: the rest of a stream whose receive was
        cut short (OpenZFS; see :meth:`resume_point`).

        :param str token: The receiving dataset's ``receive_resume_token``.
        :param int stdout: Descriptor the stream is written to.
        :return: ``Deferred`` firing with ``None`` when the send finished, or
            failing with a :class:`ZFSError`.
        """
        check_resume_token(token)
        return self._spawned(["zfs", "send", "-t", token], stdin=None,
                             stdout=stdout)

    @inlineCallbacks
    def resume_point(self, volume, token):
        """
        What a resume token of another node's receive continues, as this
        node's ``zfs send -nvP -t`` reads it: the snapshot it sends and the
        snapshot (or bookmark) it is incremental from.

        :param str volume: The volume the receive was of.
        :param str token: The receiving dataset's ``receive_resume_token``.
        :return: ``Deferred`` firing with ``(snapshot, base)`` (``base``
            ``None`` for a full stream), or ``None`` when the token cannot
            be resumed from here: its snapshot or base is gone, it is of
            another dataset, or it is corrupt.
        """
        check_resume_token(token)
        try:
            output = yield self._run(["zfs", "send", "-nvP", "-t", token])
        except ZFSError:
            return None
        return parse_resume_point(output.decode("utf-8", "replace"),
                                  self.dataset(volume))

    @inlineCallbacks
    def resume_tokens(self):
        """
        The ``receive_resume_token`` of every dataset of the pool that holds
        the saved state of a receive cut short (``zfs receive -s``,
        OpenZFS only: ask only where the capabilities say so).

        :return: ``Deferred`` firing with a ``dict`` of dataset name below
            the pool (``app``, ``app.flocker-recv``) to its token.
        """
        output = yield self._run(["zfs", "get", "-H", "-p", "-d", "1", "-o",
                                  "name,value", "receive_resume_token",
                                  self.name])
        tokens = {}
        prefix = self.name + "/"
        for line in output.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("\t")
            if name.startswith(prefix) and value not in ("", "-"):
                tokens[name[len(prefix):]] = value
        return tokens

    def abort_receive(self, volume, suffix=""):
        """
        ``zfs receive -A``: discard the saved state of a receive cut short
        (a new dataset so received goes with it).

        :return: ``Deferred`` firing with ``None``.
        """
        return self._run(["zfs", "receive", "-A",
                          self.dataset(volume, suffix)]).addCallback(
                              lambda _: None)

    @inlineCallbacks
    def bookmark(self, volume, snapshot):
        """
        ``zfs bookmark POOL/VOLUME@SNAPSHOT POOL/VOLUME#SNAPSHOT``: remember
        the snapshot as a base for incremental streams even once it is
        destroyed (OpenZFS with the ``bookmarks`` feature).  Making it again
        is not an error.

        :return: ``Deferred`` firing with ``None``.
        """
        check_snapshot_name(snapshot)
        dataset = self.dataset(volume)
        try:
            yield self._run(["zfs", "bookmark", "%s@%s" % (dataset, snapshot),
                             "%s#%s" % (dataset, snapshot)])
        except ZFSError as e:
            if "bookmark exists" not in e.message:
                raise

    @inlineCallbacks
    def destroy_bookmark(self, volume, snapshot):
        """
        Destroy the bookmark :meth:`bookmark` made; nothing if it is gone.

        :return: ``Deferred`` firing with ``None``.
        """
        check_snapshot_name(snapshot)
        try:
            yield self._run(["zfs", "destroy", "%s#%s" % (
                self.dataset(volume), snapshot)])
        except ZFSError as e:
            if "does not exist" not in e.message:
                raise

    @inlineCallbacks
    def receive(self, volume, stdin, snapshot, base, suffix="", force=False,
                limit=None, capabilities=None, idle_timeout=None,
                resuming=False, interrupt=None):
        """
        Receive a stream from another node into ``<volume><suffix>``,
        reading it from the file descriptor ``stdin``, under the receive
        policy of :mod:`flocker.volume._stream`: its first record is checked
        before ``zfs receive`` starts (no properties, the announced snapshot,
        full or incremental as announced), ``zfs receive`` gets ``-u`` (a
        full stream's new dataset is not mounted; an incremental one leaves
        the dataset as mounted or not as it was) and, where this ZFS has
        them, ``-x``/``-o`` for the properties that matter; at most
        ``limit`` bytes are passed on, and the receive is abandoned when
        ``stdin`` brings nothing for ``idle_timeout`` seconds.  ZFS applies
        a stream atomically: if it is refused or cut short, the dataset
        stays as it was (or absent).

        :param str snapshot: The snapshot the sender announced.
        :param base: The base snapshot it announced, or ``None`` for a full
            stream.
        :param bool force: Pass ``-F``: roll back changes made since the
            latest snapshot (a read updating access times is enough to need
            it on zfs-fuse) before applying an incremental stream.
        :param limit: The most bytes the stream may have
            (:func:`~flocker.volume._stream.stream_limit`), or ``None``.
        :param capabilities: This pool's ZFS capabilities, or ``None``
            (see :func:`~flocker.volume._stream.receive_flags`).
        :param idle_timeout: Seconds of silence from the sender after which
            the receive is abandoned
            (:data:`~flocker.volume._stream.RECEIVE_IDLE_TIMEOUT`), or
            ``None`` to wait forever.
        :param bool resuming: The sender announced a stream resuming the
            receive cut short into this dataset (``zfs send -t``).
        :param interrupt: ``None``, or a ``Deferred`` which, fired with a
            reason (one line), abandons the receive as a silent sender's
            is abandoned (nothing applied), failing it with
            :class:`StreamRejected` naming the reason; its result is passed
            on unchanged.
        :return: ``Deferred`` firing with ``None``, or failing with
            :class:`StreamRejected` (refused, silent or cut-short stream,
            :class:`~flocker.volume._stream.StreamTooLarge`) or a
            :class:`ZFSError`.
        """
        check_snapshot_name(snapshot)
        argv = (["zfs", "receive"]
                + _checked_options(receive_flags(capabilities, force))
                + [self.dataset(volume, suffix)])
        # An interrupt cancels the read of the first record, then the copy
        # of the rest; its reason is kept first, for the error.
        reasons = []
        if interrupt is not None:
            interrupt.addCallback(
                lambda reason: reasons.append(reason) or reason)
        reading = cancel_when(interrupt, read_prefix(
            self._reactor, stdin, BEGIN_RECORD_SIZE,
            idle_timeout=idle_timeout))
        try:
            record = yield reading
        except SourceIdle as e:
            raise sender_silent(volume, e.seconds)
        except Interrupted:
            raise receive_abandoned(volume, reasons[0])
        check_begin_record(record, snapshot, base is not None, resuming)
        # zfs receive reads the record checked here, then the rest of the
        # stream as it is passed on (counted, so it stops at the limit).
        stream_read, stream_write = make_pipe()
        try:
            os.write(stream_write, record)
            source = os.dup(stdin)
        except BaseException:
            close_quietly(stream_read, stream_write)
            raise
        action = ZFS_COMMAND(argv=list(argv))
        with action.context():
            try:
                transport, collector = spawn(
                    self._reactor, argv, self._env, stdin=stream_read)
            except BaseException:
                close_quietly(stream_read, stream_write, source)
                raise
            close_quietly(stream_read)
            passed = cancel_when(interrupt, pump(
                self._reactor, source, stream_write, limit=(
                    None if limit is None else max(0, limit - len(record))),
                idle_timeout=idle_timeout))
            outcome = yield DeferredContext(DeferredList(
                [passed, collector.ended], consumeErrors=True)
            ).addActionFinish()
        self._changed(None)
        (passed_ok, passed_value), (_, result) = outcome
        if not passed_ok and passed_value.check(SourceIdle, Interrupted):
            # The pump closed zfs receive's input, so it fails on the cut
            # stream by itself, applying nothing; killed in case it has not.
            try:
                transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            if passed_value.check(SourceIdle):
                raise sender_silent(volume, passed_value.value.seconds)
            raise receive_abandoned(volume, reasons[0])
        if not passed_ok and passed_value.check(LimitExceeded):
            # Nothing of a cut-off stream is applied; the process may
            # already have ended on its own.
            try:
                transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            raise StreamTooLarge(
                "the stream for %s is over the volume's size limit (%d "
                "bytes)" % (volume, limit))
        try:
            result.check()
        except ProcessFailed as e:
            raise zfs_error(e, self.name)
        if not passed_ok and not passed_value.check(BrokenPipeError):
            raise StreamRejected("the stream for %s could not be passed on: "
                                 "%s" % (volume,
                                         passed_value.getErrorMessage()))
        # A broken pipe after zfs receive succeeded: it applied the whole
        # stream (ZFS checks the stream's end record) and exited before
        # taking bytes that followed it, which are not part of it.

    def _spawned(self, argv, stdin, stdout):
        action = ZFS_COMMAND(argv=list(argv))
        with action.context():
            _, collector = spawn(self._reactor, argv, self._env,
                                 stdin=stdin, stdout=stdout)

            def check(result):
                try:
                    result.check()
                except ProcessFailed as e:
                    raise zfs_error(e, self.name)
            d = collector.ended.addCallback(check)
            return DeferredContext(d).addActionFinish()
