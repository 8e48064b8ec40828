"""
Which processes use a volume: the scan of ``/proc`` that keeps a volume in
use from being deleted, handed off or fenced, and the way the volume service
runs it outside the reactor thread.
"""

import os

from twisted.internet.threads import deferToThreadPool

__all__ = ["processes_using", "scan_in_thread"]


def processes_using(dataset, mountpoint, proc="/proc"):
    """
    Find processes using a mounted dataset: those that see it mounted
    somewhere other than its own mountpoint (a container's bind mount, in
    another mount namespace) and those with their working directory, root or
    an open file inside it.

    This blocks: it reads a few files of every process (tens of
    milliseconds on a busy node), so reactor code calls it through
    :func:`scan_in_thread`.

    :param str dataset: Full dataset name (``pool/volume``).
    :param str mountpoint: The dataset's own mountpoint.
    :param str proc: Where procfs is mounted.
    :return: ``set`` of process ids.
    """
    users = set()
    seen_namespaces = set()
    source = dataset.encode("utf-8")
    inside = mountpoint.rstrip("/") + "/"
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        pid = int(entry)
        base = os.path.join(proc, entry)
        try:
            namespace = os.readlink(os.path.join(base, "ns", "mnt"))
        except OSError:
            namespace = None
        if namespace is None or namespace not in seen_namespaces:
            try:
                with open(os.path.join(base, "mountinfo"), "rb") as f:
                    mountinfo = f.read()
            except OSError:
                mountinfo = b""
            if _mounted_elsewhere(mountinfo, source, mountpoint):
                users.add(pid)
            elif namespace is not None:
                seen_namespaces.add(namespace)
        links = ["cwd", "root"]
        try:
            links += [os.path.join("fd", fd)
                      for fd in os.listdir(os.path.join(base, "fd"))]
        except OSError:
            pass
        for link in links:
            try:
                target = os.readlink(os.path.join(base, link))
            except OSError:
                continue
            if target == mountpoint or target.startswith(inside):
                users.add(pid)
                break
    return users


def scan_in_thread(reactor, run=None, scan=processes_using):
    """
    Make the in-use check the volume service calls: ``scan`` run outside
    the reactor thread.

    :param reactor: ``IReactorThreads`` whose thread pool runs the scans
        (bounded: ``reactor.suggestThreadPoolSize``, ten threads unless
        changed, and stopped with the reactor).
    :param run: ``None``, or a callable ``run(function, *args)`` returning
        a ``Deferred`` that fires with ``function(*args)``'s result or
        fails with what it raised (tests pass one that runs nothing until
        told); ``None`` runs it in ``reactor``'s thread pool.
    :param scan: The blocking scan, :func:`processes_using` or a callable
        taking the same arguments.
    :return: A callable ``in_use(dataset, mountpoint)`` returning a
        ``Deferred`` that fires with ``scan``'s ``set`` of process ids, or
        fails with what ``scan`` raised.
    """
    if run is None:
        def run(function, *args):
            return deferToThreadPool(reactor, reactor.getThreadPool(),
                                     function, *args)

    def in_use(dataset, mountpoint):
        return run(scan, dataset, mountpoint)
    return in_use


def _mounted_elsewhere(mountinfo, source, mountpoint):
    """
    :param bytes mountinfo: A process's ``/proc/PID/mountinfo``.
    :param bytes source: The dataset's full name.
    :param str mountpoint: The dataset's own mountpoint.
    :return: Whether that mount namespace has the dataset mounted anywhere
        else (a container's bind mount).
    """
    for line in mountinfo.splitlines():
        before, _, after = line.partition(b" - ")
        after = after.split(b" ")
        before = before.split(b" ")
        if len(after) < 2 or len(before) < 5 or after[1] != source:
            continue
        where = before[4].decode("utf-8", "replace").replace("\\040", " ")
        if where != mountpoint:
            return True
    return False

