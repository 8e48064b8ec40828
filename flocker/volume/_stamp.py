"""
The pool's change stamp: a small file that every process changing the
pool's datasets through Flocker (the agent, other nodes' pushes included,
or ``flocker-volume`` run by hand) rewrites after each change, so that the node agent
can keep its report and learn, with one small read, that the volumes may
have changed under it.

ZFS itself offers no change notification that every supported ZFS has
(zfs-fuse has no ``zpool events``), so Flocker notes its own changes; a
``zfs`` command run by hand is seen when the agent's report is next
refreshed (see :mod:`flocker.node._report_cache`).
"""

import os
import uuid

from eliot import Field, MessageType

__all__ = ["stamp_path", "mark_changed", "read_stamp", "STAMP_UNWRITABLE"]

#: The stamp could not be written: the agent may report volumes as they
#: were until its report is next refreshed.
STAMP_UNWRITABLE = MessageType(
    u"flocker:volume:stamp_unwritable",
    [Field.for_types(u"path", [str], u"The stamp file."),
     Field.for_types(u"reason", [str], u"Why it could not be written.")],
    u"The pool's change stamp could not be rewritten.")


def stamp_path(environ, pool):
    """
    :param environ: The process environment: ``FLOCKER_LOCK_DIR`` chooses
        the directory (default ``/var/lib/flocker``), the one the node's
        deploy lock is in, so every process acting for the node agrees.
    :param str pool: The pool's name (a checked pool name).
    :return: The stamp file's path.
    """
    directory = environ.get("FLOCKER_LOCK_DIR", "/var/lib/flocker")
    return os.path.join(directory, "volumes-%s.changed" % (pool,))


def mark_changed(path):
    """
    Rewrite the stamp with a value never used before.  A failure is logged,
    not raised: the change it notes has happened already.

    :param str path: The stamp file (its directory is made if missing).
    :return: The value written, or ``None`` if it could not be.
    """
    value = uuid.uuid4().hex
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temporary = "%s.%d" % (path, os.getpid())
        with open(temporary, "w") as f:
            f.write(value)
        # Readers see the old stamp or the new one, never a mix.
        os.replace(temporary, path)
    except OSError as e:
        STAMP_UNWRITABLE.log(path=path, reason=str(e))
        return None
    return value


def read_stamp(path):
    """
    :param str path: The stamp file.
    :return: Its value, or ``""`` while no change was ever noted (or it
        cannot be read).
    """
    try:
        with open(path) as f:
            return f.read(64)
    except OSError:
        return ""
