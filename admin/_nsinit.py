"""
Prepare a lab machine's fresh mount and UTS namespace, then exit.

``admin/lab`` runs this as::

    nsenter --net=/run/netns/flk-node1 \\
        unshare --mount=RUN/node1/mnt --uts=RUN/node1/uts \\
            --propagation slave \\
        python3 admin/_nsinit.py --hostname node1 --keep RUN --keep /run/zfs \\
            --scratch RUN/node1/scratch --bind STATE/hosts:/etc/hosts ...

``unshare`` keeps both namespaces alive by binding them to files, so the
mounts made here stay in place after this process exits and every later
process entering the namespaces (dockerd, sshd, ``admin/lab run``) sees them.

What it sets up, and why:

* Network-namespace bind mounts (``nsfs``) copied from the host are detached:
  otherwise this namespace would keep other lab machines' namespaces alive.
* A fresh ``sysfs`` on ``/sys`` (showing this network namespace's devices)
  with the host's cgroup v1 hierarchies moved back under ``/sys/fs/cgroup``:
  dockerd needs both (``ip netns exec`` loses the cgroups and dockerd exits
  with "Devices cgroup isn't mounted").
* A private tmpfs on ``/run`` (so ``/run/sshd``, ``/var/run/docker.sock``
  and ``/var/run/docker`` belong to this machine only) into which the
  directories given with ``--keep`` are bound back: the lab's runtime
  directory (sockets and pid files stay visible to the host) and
  ``/run/zfs`` (the zfs-fuse control socket: every node talks to the one
  ZFS daemon, as it would to its kernel module).
* Writable overlays on some host directories (``--overlay``: ``/usr``,
  ``/opt``, ``/var/lib/dpkg`` and ``/etc/default`` on nodes), each with its
  own upper directory in the machine's state: what the machine installs
  (the lab installs Flocker's Debian package with ``dpkg -i`` on every node,
  as the guide does on a server) stays the machine's, and the host's
  directories are never written.
* Files bound over host files (``/etc/hosts``, ``/etc/passwd``, ...), after
  the overlays (a bind under an overlaid directory would be hidden).
* The host name.

Standard library only: it runs before any virtualenv exists.  Mounts are made
with the ``mount(2)`` system calls through ctypes, not through a shell.
"""

import argparse
import ctypes
import ctypes.util
import os
import socket
import sys

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                    use_errno=True)


class NamespaceSetupError(Exception):
    """
    A mount step failed; the message names the step and the error.
    """


def _call(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise NamespaceSetupError("%s: %s" % (what, os.strerror(err)))


def mount(source, target, fstype, flags, data=None):
    """
    Call ``mount(2)``.

    :param str source: The source (device, path or a name for pseudo file
        systems).
    :param str target: The mount point.
    :param fstype: The file system type, or ``None`` for binds and moves.
    :param int flags: ``MS_*`` flags.
    :param data: File-system specific options, or ``None``.
    :raises NamespaceSetupError: If the call fails.
    """
    _call(_libc.mount(
        source.encode(), target.encode(),
        fstype.encode() if fstype else None, ctypes.c_ulong(flags),
        data.encode() if data else None),
        "mount %s on %s" % (source, target))


def detach(target):
    """
    Lazily unmount ``target`` and everything below it (``MNT_DETACH``).

    :param str target: A mount point.
    :raises NamespaceSetupError: If the call fails.
    """
    _call(_libc.umount2(target.encode(), MNT_DETACH), "unmount " + target)


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as octal.
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts():
    """
    :return: A list of ``(mount point, file system type)`` for this mount
        namespace, in mount order.
    """
    result = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            result.append((_unescape(left.split()[4]), right.split()[0]))
    return result


def is_mount_point(path):
    """
    :param str path: An absolute path.
    :return: ``True`` if something is mounted exactly there.
    """
    return any(point == path for point, _ in mounts())


def detach_namespace_files():
    """
    Detach every ``nsfs`` mount (``/run/netns/*``, other lab machines'
    namespace files) copied into this namespace.
    """
    points = sorted({point for point, fstype in mounts() if fstype == "nsfs"},
                    key=len, reverse=True)
    for point in points:
        if is_mount_point(point):
            detach(point)


def fresh_sys(scratch):
    """
    Mount a sysfs for this network namespace on ``/sys`` and put the
    host's cgroup hierarchies back under it.

    :param str scratch: An empty private tmpfs to park the cgroups on.
    """
    parked = os.path.join(scratch, ".cgroup")
    os.mkdir(parked)
    mount("/sys/fs/cgroup", parked, None, MS_BIND | MS_REC)
    detach("/sys")
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount(parked, "/sys/fs/cgroup", None, MS_MOVE)
    os.rmdir(parked)


def private_run(scratch, keep):
    """
    Turn the ``scratch`` tmpfs into this machine's ``/run``, with some host
    directories bound back into it.

    :param str scratch: The tmpfs mount point (under the lab's runtime
        directory, itself under ``/run``).
    :param list keep: Host directories to keep visible; those not under
        ``/run`` stay visible anyway and are skipped.
    """
    for directory in keep:
        if not directory.startswith("/run/") or not os.path.isdir(directory):
            continue
        inside = os.path.join(scratch, os.path.relpath(directory, "/run"))
        os.makedirs(inside)
        mount(directory, inside, None, MS_BIND)
    for name, mode in (("sshd", 0o755), ("lock", 0o1777), ("user", 0o755)):
        path = os.path.join(scratch, name)
        os.mkdir(path)
        os.chmod(path, mode)
    # Moving a mount onto an ancestor of its old place is allowed; whatever
    # was under /run before (now unreachable here) holds no namespaces since
    # detach_namespace_files ran first.
    mount(scratch, "/run", None, MS_MOVE)


def overlay(target, upper, work):
    """
    Mount a writable overlay on ``target``: the host's directory below,
    ``upper`` taking every change.

    :param str target: An existing host directory (also the lower layer).
    :param str upper: An empty or earlier upper directory.
    :param str work: overlayfs' work directory, on ``upper``'s file system.
    :raises NamespaceSetupError: If the mount fails.
    """
    mount("overlay", target, "overlay", 0,
          "lowerdir=%s,upperdir=%s,workdir=%s" % (target, upper, work))


def parse_arguments(argv):
    """
    :param list argv: Command-line arguments (without the program name).
    :return: The parsed options.
    """
    parser = argparse.ArgumentParser(prog="_nsinit.py")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--keep", action="append", default=[],
                        metavar="DIRECTORY",
                        help="host directory under /run to keep visible")
    parser.add_argument("--scratch", required=True,
                        help="empty directory under the runtime directory")
    parser.add_argument("--bind", action="append", default=[],
                        metavar="SOURCE:TARGET",
                        help="bind SOURCE over TARGET (both must exist)")
    parser.add_argument("--overlay", action="append", default=[],
                        metavar="TARGET:UPPER:WORK",
                        help="a writable overlay on TARGET whose changes go "
                        "to UPPER (WORK: overlayfs' work directory)")
    return parser.parse_args(argv)


def main(argv):
    """
    Set the namespace up.

    :param list argv: Command-line arguments (without the program name).
    :return: The exit code.
    """
    options = parse_arguments(argv)
    try:
        detach_namespace_files()
        mount("tmpfs", options.scratch, "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=755,size=64m")
        fresh_sys(options.scratch)
        private_run(options.scratch, options.keep)
        for triple in options.overlay:
            overlay(*triple.split(":", 2))
        for pair in options.bind:
            source, _, target = pair.partition(":")
            mount(source, target, None, MS_BIND)
        socket.sethostname(options.hostname)
    except (NamespaceSetupError, OSError) as e:
        sys.stderr.write("_nsinit %s: %s\n" % (options.hostname, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
