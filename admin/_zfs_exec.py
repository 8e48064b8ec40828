"""
``zfs`` and ``zpool`` for lab machines: run the real command in the ZFS
daemon's mount namespace.

zfs-fuse mounts datasets from its daemon (in the host's mount namespace), but
the ``zfs`` command unmounts them itself, with ``umount2(2)`` in whatever
mount namespace it runs in.  Run inside a lab node (its own mount namespace,
a slave of the host's), ``zfs unmount``/``destroy``/``rename`` would only
remove the node's copy of the mount: the daemon still sees it mounted and
answers "dataset is busy" forever.  On a real machine ZFS lives in the kernel
and acts in the host's namespace; this wrapper gives the lab the same
behaviour.  Mounts the daemon makes still show up in the node (its view of
the pools' mount base is a slave of the host's shared one).

``admin/lab`` writes this file, with its own interpreter on the ``#!`` line
and the real commands' paths filled in, into the state directory and binds it
over ``zfs`` and ``zpool`` in every node's mount namespace.

Standard library only; no shell.
"""

import ctypes
import ctypes.util
import os
import sys

CLONE_NEWNS = 0x00020000

# Filled in by admin/lab: {"zfs": "/usr/sbin/zfs", "zpool": ...}.
REAL_COMMANDS = {}


def daemon_pid():
    """
    :return: The pid of a running ``zfs-fuse`` daemon, or ``None``.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % (entry,)) as f:
                if f.read().strip() == "zfs-fuse":
                    return int(entry)
        except OSError:
            continue
    return None


def enter_mount_namespace(pid):
    """
    Move this (single-threaded) process into another process's mount
    namespace.

    :param int pid: The other process.
    :raises OSError: If that is impossible.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                       use_errno=True)
    fd = os.open("/proc/%d/ns/mnt" % (pid,), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNS) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)


def main(argv):
    """
    Exec the real command named like ``argv[0]`` in the daemon's mount
    namespace (or in ours if no daemon runs: the command then reports that
    itself).

    :param list argv: ``sys.argv``.
    """
    name = os.path.basename(argv[0])
    real = REAL_COMMANDS.get(name)
    if real is None:
        sys.stderr.write("%s: not a wrapped ZFS command\n" % (name,))
        sys.exit(127)
    pid = daemon_pid()
    if pid is not None:
        try:
            enter_mount_namespace(pid)
        except OSError as e:
            sys.stderr.write("%s: cannot enter the ZFS daemon's mount "
                             "namespace: %s\n" % (name, e))
            sys.exit(126)
    os.execv(real, [name] + argv[1:])


if __name__ == "__main__":
    main(sys.argv)
