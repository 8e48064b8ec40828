"""
Seeding a volume: filling a new volume once with the content of a directory
of the deploying machine (a compose file's ``./data:/data``), sent as a tar
archive.

The archive is read here, once, into plain entries, so every volume service
writes the same thing and refuses the same archives: only regular files
and directories, relative paths without ``..``, at most
:data:`MAX_SEED_SIZE` bytes.  The deploying side makes such archives (it
follows symbolic links, so none are in them).
"""

import errno
import io
import os
import posixpath
import tarfile

import attr

from ._errors import OutOfSpace, StreamRejected

__all__ = ["MAX_SEED_SIZE", "SeedEntry", "seed_entries", "seed_archive",
           "write_seed"]

#: Largest seed archive a node accepts.  A seed travels over the deploy's
#: connection in one piece, so it is for a project's starting data, not for
#: a database's bulk.
MAX_SEED_SIZE = 64 * 1024 * 1024


@attr.s(frozen=True, slots=True)
class SeedEntry(object):
    """
    One entry of a seed archive.

    :ivar str path: Relative path inside the volume (``/``-separated,
        normalised, no ``..``).
    :ivar int mode: Permission bits.
    :ivar data: The file's ``bytes``, or ``None`` for a directory.
    """
    path = attr.ib()
    mode = attr.ib()
    data = attr.ib(default=None, repr=False)


def seed_archive(directory):
    """
    Make the seed archive of a directory: every file and directory under
    it, symbolic links followed (so the archive holds only files and
    directories), owners left out.

    :param str directory: The directory.
    :return: The archive (``bytes``).
    :raises StreamRejected: If the directory cannot be read, holds
        something other than files and directories, or makes an archive
        larger than :data:`MAX_SEED_SIZE`.
    """
    if not os.path.isdir(directory):
        _refuse("%s is not a directory" % (directory,))
    buffer = io.BytesIO()
    try:
        with tarfile.open(fileobj=buffer, mode="w", dereference=True,
                          format=tarfile.PAX_FORMAT) as tar:
            for top, directories, files in os.walk(directory,
                                                   followlinks=True):
                directories.sort()
                for name in sorted(directories) + sorted(files):
                    path = os.path.join(top, name)
                    info = tar.gettarinfo(path, os.path.relpath(
                        path, directory))
                    if not (info.isfile() or info.isdir()):
                        _refuse("%s is neither a file nor a directory" % (
                            path,))
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    if info.isfile():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
                    if buffer.tell() > MAX_SEED_SIZE:
                        _refuse("%s makes more than the %d bytes a seed "
                                "may have" % (directory, MAX_SEED_SIZE))
    except OSError as e:
        _refuse("%s: %s" % (e.filename or directory, e.strerror or e))
    return buffer.getvalue()


def _refuse(message):
    raise StreamRejected("seed archive refused: %s" % (message,))


def seed_entries(archive):
    """
    Read a seed archive.

    :param bytes archive: An uncompressed tar archive.
    :return: ``tuple`` of :class:`SeedEntry`, each directory before what it
        holds.
    :raises StreamRejected: If the archive is too large, not a tar archive,
        or holds anything but files and directories at safe relative paths.
    """
    if len(archive) > MAX_SEED_SIZE:
        _refuse("%d bytes is more than the %d a seed may have" % (
            len(archive), MAX_SEED_SIZE))
    entries = []
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar.getmembers():
                path = posixpath.normpath(member.name)
                if (member.name.startswith("/") or path == ".."
                        or path.startswith("../") or "\x00" in path):
                    _refuse("%r is not a path inside the volume" % (
                        member.name,))
                mode = member.mode & 0o7777
                if member.isdir():
                    if path != ".":
                        entries.append(SeedEntry(path=path, mode=mode))
                elif member.isfile():
                    entries.append(SeedEntry(
                        path=path, mode=mode,
                        data=tar.extractfile(member).read()))
                else:
                    _refuse("%r is neither a file nor a directory" % (
                        member.name,))
    except tarfile.TarError as e:
        _refuse("not a tar archive (%s)" % (e,))
    return tuple(sorted(entries, key=lambda entry: entry.path.split("/")))


def write_seed(root, entries):
    """
    Write seed ``entries`` under directory ``root`` unless it holds
    something already.

    :return: ``True`` if written, ``False`` if ``root`` was not empty.
    :raises OutOfSpace: The file system is full.
    :raises StreamRejected: An entry clashes with another (a file where a
        directory is).
    """
    if os.listdir(root):
        return False
    try:
        for entry in entries:
            target = os.path.join(root, *entry.path.split("/"))
            if entry.data is None:
                os.makedirs(target, exist_ok=True)
                os.chmod(target, entry.mode | 0o700)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # O_EXCL|O_NOFOLLOW: nothing written so far can redirect it.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | os.O_NOFOLLOW, entry.mode)
                with os.fdopen(fd, "wb") as f:
                    f.write(entry.data)
    except OSError as e:
        if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
            raise OutOfSpace("volume full while seeding: %s" % (
                e.strerror,))
        raise StreamRejected("seed archive refused: %s: %s" % (
            e.filename, e.strerror))
    return True

