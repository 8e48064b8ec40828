"""
What the ZFS of a node offers, found out once per pool, and the command-line
flags chosen from it.

Servers run kernel OpenZFS 2.x; the lab runs zfs-fuse (pool version 23, no
feature flags).  They differ in what ``zfs send`` and ``zfs receive`` accept
and in what a pool can store, so Flocker asks rather than assumes:

* ``zfs`` without arguments prints every subcommand's synopsis (both
  implementations; exit status 2), from which the ``send`` and ``receive``
  option letters, ``-o``/``-x`` of receive, ``send -t`` (resume tokens),
  ``bookmark`` and ``hold`` are read;
* ``zfs version`` names OpenZFS's userland and kernel module (zfs-fuse has no
  such subcommand);
* ``zpool get -H -o property,value all POOL`` lists the pool's
  ``feature@...`` states (none on zfs-fuse).

:class:`ZFSCapabilities` is the immutable result; :func:`send_options` and
:func:`receive_options` turn it into flags.  Pure: :meth:`ZFSPool.capabilities
<flocker.volume._zfs.ZFSPool.capabilities>` runs the commands.
"""

import re

import attr

__all__ = [
    "ZFSCapabilities", "parse_capabilities", "send_options",
    "receive_options", "UnsupportedOption", "ZFS_FUSE", "OPENZFS",
]

#: :attr:`ZFSCapabilities.implementation` of kernel OpenZFS (or ZFS on
#: Linux), recognised by its ``zfs version``.
OPENZFS = "openzfs"

#: :attr:`ZFSCapabilities.implementation` of zfs-fuse (or any ZFS without
#: ``zfs version``).
ZFS_FUSE = "zfs-fuse"

# Feature states meaning a pool can hold what the feature is about.
_USABLE = ("enabled", "active")

# One synopsis line of a subcommand, e.g. "\tsend [-DLPbcehnpsVvw] ...".
_SYNOPSIS = re.compile(r"^\s+([a-z-]+)(.*)$")
_LETTERS = re.compile(r"\[-([A-Za-z]+)\]")
_VERSION = re.compile(r"\Azfs-(?:kmod-)?v?([0-9]+(?:\.[0-9]+)*)")


class UnsupportedOption(ValueError):
    """
    A flag was asked for that this node's ZFS does not have.
    """


def _frozen(values):
    return frozenset(values)


@attr.s(frozen=True, slots=True)
class ZFSCapabilities(object):
    """
    What one pool's ZFS offers.

    :ivar str implementation: :data:`OPENZFS` or :data:`ZFS_FUSE`.
    :ivar version: OpenZFS's userland version (``"2.2.2"``), or ``None``.
    :ivar kernel_version: The loaded kernel module's version, or ``None``
        (zfs-fuse, or no module loaded).
    :ivar send_flags: ``frozenset`` of the single-letter options of
        ``zfs send`` (``c``, ``L``, ``e``, ``w``, ...).
    :ivar receive_flags: ``frozenset`` of the single-letter options of
        ``zfs receive``, ``o`` and ``x`` included when it takes
        ``-o property=value`` / ``-x property``.
    :ivar bool resume_tokens: ``zfs send -t TOKEN`` exists (with
        receive ``-s``, an interrupted receive can be resumed).
    :ivar bool bookmarks: ``zfs bookmark`` exists and the pool has the
        ``bookmarks`` feature.
    :ivar bool holds: ``zfs hold`` / ``zfs release`` exist.
    :ivar features: ``frozenset`` of the pool's features that are enabled
        or active (``large_blocks``, ``embedded_data``, ...).
    """
    implementation = attr.ib(validator=attr.validators.in_(
        (OPENZFS, ZFS_FUSE)))
    version = attr.ib(default=None)
    kernel_version = attr.ib(default=None)
    send_flags = attr.ib(default=frozenset(), converter=_frozen)
    receive_flags = attr.ib(default=frozenset(), converter=_frozen)
    resume_tokens = attr.ib(default=False)
    bookmarks = attr.ib(default=False)
    holds = attr.ib(default=False)
    features = attr.ib(default=frozenset(), converter=_frozen)

    @property
    def resumable_receive(self):
        """
        ``zfs receive -s`` and ``zfs send -t`` both exist.
        """
        return "s" in self.receive_flags and self.resume_tokens

    @property
    def receive_excludes(self):
        """
        ``zfs receive -x PROPERTY`` exists.
        """
        return "x" in self.receive_flags

    @property
    def receive_overrides(self):
        """
        ``zfs receive -o PROPERTY=VALUE`` exists.
        """
        return "o" in self.receive_flags

    def to_wire(self):
        """
        :return: A JSON-compatible ``dict`` (for another node).
        """
        return {
            "implementation": self.implementation,
            "version": self.version, "kernel_version": self.kernel_version,
            "send_flags": sorted(self.send_flags),
            "receive_flags": sorted(self.receive_flags),
            "resume_tokens": self.resume_tokens,
            "bookmarks": self.bookmarks, "holds": self.holds,
            "features": sorted(self.features),
        }

    @classmethod
    def from_wire(cls, document):
        """
        :param document: What :meth:`to_wire` gave, as another node sent it,
            or ``None`` (a node too old to say).
        :return: The :class:`ZFSCapabilities`, or ``None`` for ``None`` or
            anything malformed (the node is then assumed to offer nothing
            beyond plain streams).
        """
        if not isinstance(document, dict):
            return None
        try:
            def words(key):
                value = document.get(key) or []
                if not (isinstance(value, list) and all(
                        isinstance(w, str) and re.match(
                            r"\A[A-Za-z0-9_.:-]{1,64}\Z", w)
                        for w in value)):
                    raise ValueError(key)
                return value

            def flag(key):
                value = document.get(key, False)
                if not isinstance(value, bool):
                    raise ValueError(key)
                return value

            def text(key):
                value = document.get(key)
                if value is not None and not (
                        isinstance(value, str) and len(value) < 64):
                    raise ValueError(key)
                return value
            return cls(
                implementation=document.get("implementation"),
                version=text("version"),
                kernel_version=text("kernel_version"),
                send_flags=words("send_flags"),
                receive_flags=words("receive_flags"),
                resume_tokens=flag("resume_tokens"),
                bookmarks=flag("bookmarks"), holds=flag("holds"),
                features=words("features"))
        except (ValueError, TypeError):
            return None


def _synopses(usage):
    """
    :param str usage: ``zfs``'s usage text.
    :return: ``dict`` of subcommand to the list of its synopsis lines (each
        with its continuation lines joined).
    """
    found = {}
    last = None
    for line in usage.splitlines():
        if not line.strip():
            last = None
            continue
        if line.startswith("\t    ") or line.startswith("\t     "):
            # A continuation of the previous synopsis.
            if last is not None:
                found[last][-1] += " " + line.strip()
            continue
        match = _SYNOPSIS.match(line)
        if match is None or not line.startswith("\t"):
            last = None
            continue
        last = match.group(1)
        found.setdefault(last, []).append(match.group(2))
    return found


def _letters(lines):
    letters = set()
    for line in lines:
        for group in _LETTERS.findall(line):
            letters.update(group)
    return letters


def parse_capabilities(usage, version, pool_properties):
    """
    Work out what a pool's ZFS offers from what its commands print.

    :param str usage: The usage text ``zfs`` prints without arguments.
    :param version: ``zfs version``'s output, or ``None`` if it failed.
    :param str pool_properties: ``zpool get -H -o property,value all POOL``
        output (tab-separated).
    :return: A :class:`ZFSCapabilities`.
    """
    synopses = _synopses(usage)
    send = synopses.get("send", [])
    receive = synopses.get("receive", []) + synopses.get("recv", [])
    receive_flags = _letters(receive)
    if any("-o <property>" in line or "-o property" in line
           for line in receive):
        receive_flags.add("o")
    if any("-x <property>" in line or "-x property" in line
           for line in receive):
        receive_flags.add("x")
    userland = kernel = None
    for line in (version or "").splitlines():
        match = _VERSION.match(line.strip())
        if match is None:
            continue
        if line.strip().startswith("zfs-kmod-"):
            kernel = match.group(1)
        else:
            userland = match.group(1)
    features = set()
    for line in pool_properties.splitlines():
        key, _, value = line.partition("\t")
        if key.startswith("feature@") and value.strip() in _USABLE:
            features.add(key[len("feature@"):])
    return ZFSCapabilities(
        implementation=OPENZFS if userland is not None else ZFS_FUSE,
        version=userland, kernel_version=kernel,
        send_flags=_letters(send), receive_flags=receive_flags,
        resume_tokens=any(re.search(r"(^|\s)-t\s", line) for line in send),
        bookmarks="bookmark" in synopses and "bookmarks" in features,
        holds="hold" in synopses and "release" in synopses,
        features=features)


def send_options(ours, theirs):
    """
    Choose the ``zfs send`` flags for a stream from a pool with ``ours`` to
    a pool with ``theirs``: only what both sides' ZFS have and the
    receiving pool can store, since a stream using a feature the receiving
    pool lacks is refused there.

    * ``-L``: blocks larger than 128 KiB stay large (receiving pool has
      ``large_blocks``);
    * ``-e``: blocks stored embedded in block pointers stay so (receiving
      pool has ``embedded_data``);
    * ``-c``: compressed blocks are sent as stored, not decompressed and
      compressed again (both sides OpenZFS, receiving pool has
      ``lz4_compress``, the default compression).

    :param ZFSCapabilities ours: The sending pool's.
    :param theirs: The receiving pool's, or ``None`` if unknown.
    :return: A list of flags, possibly empty.
    """
    if theirs is None:
        return []
    chosen = []
    if "L" in ours.send_flags and "large_blocks" in theirs.features:
        chosen.append("-L")
    if "e" in ours.send_flags and "embedded_data" in theirs.features:
        chosen.append("-e")
    if ("c" in ours.send_flags and theirs.implementation == OPENZFS
            and "c" in theirs.send_flags
            and "lz4_compress" in theirs.features):
        chosen.append("-c")
    return chosen


def receive_options(capabilities, force=False, unmounted=False,
                    resumable=False, exclude=(), override=None,
                    strict=False):
    """
    Choose the ``zfs receive`` flags.

    :param capabilities: The receiving pool's :class:`ZFSCapabilities`
        (may be ``None`` when none of ``resumable``, ``exclude`` and
        ``override`` is asked for).
    :param bool force: ``-F``: roll back changes since the latest snapshot.
    :param bool unmounted: ``-u``: leave the received dataset unmounted
        (zfs-fuse takes it although its usage does not list it).
    :param bool resumable: ``-s``: keep an interrupted receive's partial
        state (with a ``receive_resume_token``); left out where the pool's
        ZFS cannot resume.
    :param exclude: Properties whose values in the stream are ignored
        (``-x``): used where supported.
    :param override: Mapping of property to value forced on the received
        dataset (``-o``): used where supported.
    :param bool strict: Raise instead of leaving out an ``exclude`` or
        ``override`` the pool's ZFS lacks.
    :return: A list of flags (options only, no dataset).
    :raises UnsupportedOption: With ``strict``, for ``-x``/``-o`` the pool's
        ZFS does not have.
    """
    flags = []
    if force:
        flags.append("-F")
    if unmounted:
        flags.append("-u")
    if resumable and capabilities.resumable_receive:
        flags.append("-s")
    for key in sorted(exclude):
        if capabilities.receive_excludes:
            flags += ["-x", key]
        elif strict:
            raise UnsupportedOption(
                "zfs receive -x %s: this node's ZFS (%s) cannot exclude "
                "properties" % (key, capabilities.implementation))
    for key, value in sorted((override or {}).items()):
        if capabilities.receive_overrides:
            flags += ["-o", "%s=%s" % (key, value)]
        elif strict:
            raise UnsupportedOption(
                "zfs receive -o %s=%s: this node's ZFS (%s) cannot override "
                "properties" % (key, value, capabilities.implementation))
    return flags
