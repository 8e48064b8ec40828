"""
A failed ``zfs``/``zpool`` command in Flocker's words: what Flocker could not
do (read from the command line), what to do about it (read from what ZFS
said), then ZFS's own last line and exit status, on one line::

    could not snapshot volume web: the pool is full or the volume reached
    its maximum size; free space in pool flocker or raise the volume's
    maximum_size (zfs said: cannot create snapshot 'flocker/web@s': out of
    space, exit 1)

as Docker's refusals read (``flocker.node._docker.DockerAPIError``).  Pure
functions; :func:`flocker.volume._zfs.zfs_error` picks the error type.
"""

__all__ = ["operation", "hint", "in_words"]

# zfs subcommands, as Flocker says what it was doing with a volume.
_VERBS = {
    "create": "create", "destroy": "destroy", "snapshot": "snapshot",
    "rollback": "roll back", "rename": "rename", "mount": "mount",
    "unmount": "unmount", "send": "send", "receive": "receive",
    "recv": "receive", "set": "set a property of", "inherit":
    "reset a property of", "get": "read the properties of", "list": "list",
    "hold": "hold a snapshot of", "release": "release a snapshot of",
    "bookmark": "bookmark",
}

# What to do, by what ZFS said; the first match wins.  {pool} is the pool.
_POOL_MISSING = ("ZFS pool {pool} does not exist; create it (zpool create "
                 "{pool} DEVICE) or name the node's pool (--pool, "
                 "FLOCKER_POOL)")
_HINTS = (
    ("no such pool", _POOL_MISSING),
    ("'{pool}': dataset does not exist", _POOL_MISSING),
    ("out of space", "the pool is full or the volume reached its maximum "
     "size; free space in pool {pool} or raise the volume's maximum_size"),
    ("quota exceeded", "the volume reached its maximum size; raise its "
     "maximum_size or free space in it"),
    ("no space left", "pool {pool} is full; free space in it"),
    ("being held", "a snapshot of it is held (zfs holds -r shows by "
     "whom); release the hold (zfs release) if it may go"),
    ("dataset is busy", "something still uses it (a container, a shell in "
     "its directory, an open file, or a hold on one of its snapshots: zfs "
     "holds -r); Flocker retried, try again once it is released"),
    ("device busy", "something still uses it (a container, a shell in its "
     "directory, an open file); try again once it is closed"),
    ("has been modified", "the receiving copy was written to since its last "
     "snapshot; only the owner's copy may be written"),
    ("destination already exists", "the receiving node already has a "
     "dataset of that name that is not a copy of this volume"),
    ("does not match incremental source", "the two copies share no "
     "snapshot any more; the next move sends the whole volume"),
    ("failed to create mountpoint", "the volume was made but cannot be "
     "mounted: its mount point could not be created (pool {pool} full, or "
     "something in the way under its mount base)"),
    ("permission denied", "run Flocker as root on the node"),
    ("zfs-fuse daemon is running", "start ZFS on the node (the zfs-fuse "
     "daemon, or the zfs kernel module)"),
    ("failed to initialize zfs library", "start ZFS on the node (the "
     "zfs-fuse daemon, or the zfs kernel module)"),
    ("execvpe", "install ZFS on the node (zfsutils-linux, or zfs-fuse)"),
    ("i/o error", "the pool's disk failed; check zpool status {pool}"),
)


def _subject(word, pool):
    """
    :param str word: A dataset, snapshot or pool name.
    :param str pool: The node's pool.
    :return: What Flocker calls it (``volume web``, ``pool flocker``).
    """
    dataset = word.split("@")[0].split("#")[0]
    if dataset == pool:
        return "pool %s" % (pool,)
    if dataset.startswith(pool + "/"):
        volume = dataset[len(pool) + 1:]
        # Temporary datasets of a receive or a replacement are the volume's
        # (flocker.volume._zfs.TEMPORARY_SUFFIXES).
        for suffix in (".flocker-recv", ".flocker-old"):
            if volume.endswith(suffix):
                volume = volume[:-len(suffix)]
        return "volume %s" % (volume,)
    return dataset


def operation(argv, pool):
    """
    :param list argv: The failed command (``zfs``/``zpool`` and arguments;
        the first word may be a path).
    :param str pool: The node's pool.
    :return: What Flocker was doing, in its words (``snapshot volume web``).
    """
    words = [str(w) for w in argv]
    program = words[0].rsplit("/", 1)[-1] if words else "zfs"
    if program == "zpool" or len(words) < 2:
        return "use ZFS pool %s" % (pool,)
    if words[1] == "version" or words[1:] == []:
        return "ask ZFS what it supports"
    verb = _VERBS.get(words[1], "run zfs %s on" % (words[1],))
    names = [w for w in words[2:] if not w.startswith("-") and (
        w == pool or w.startswith(pool + "/") or w.startswith(pool + "@"))]
    if not names:
        return "%s in pool %s" % (verb, pool)
    # A receive names its target last; everything else its subject first.
    return "%s %s" % (verb, _subject(names[-1] if words[1] in (
        "receive", "recv") else names[0], pool))


def hint(said, pool):
    """
    :param str said: What ZFS wrote to standard error.
    :param str pool: The node's pool.
    :return: What to do about it, or ``""`` when Flocker has nothing to
        add to ZFS's words.
    """
    lowered = said.lower()
    for needle, text in _HINTS:
        if needle.format(pool=pool).lower() in lowered:
            return text.format(pool=pool)
    return ""


def in_words(argv, exit_code, signal, said, last_line, pool):
    """
    :param list argv: The failed command.
    :param exit_code: Its exit code, or ``None`` when a signal ended it.
    :param signal: The signal, or ``None``.
    :param str said: Its whole standard error.
    :param str last_line: Its last non-empty line of standard error.
    :param str pool: The node's pool.
    :return: The one-line message: Flocker's words, then ZFS's.
    """
    advice = hint(said, pool)
    how = ("exit %d" % (exit_code,) if exit_code is not None
           else "killed by signal %s" % (signal,))
    raw = "%s, %s" % (last_line, how) if last_line else how
    return "could not %s%s (%s said: %s)" % (
        operation(argv, pool), ": " + advice if advice else "",
        str(argv[0]).rsplit("/", 1)[-1] if argv else "zfs", raw)
