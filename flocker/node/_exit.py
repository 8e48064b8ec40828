"""
Seeing a container's processes end before Docker's stop answers.

Docker's stop answers once the container is taken down (its task deleted,
its network and mounts gone), well after its processes exited.  What a move
does next (freeze the volume, send its last increment, hand it off) needs
only the processes gone: nothing writes to the volume after that.  So the
agent watches the container's first process with a pidfd (``pidfd_open``,
readable once the process exited) while Docker's stop runs.

In a private PID namespace, which every Flocker container has, the first
process is the namespace's init: the kernel kills every other process of
the namespace and waits until they are gone before that one has exited.
So its exit is the end of all the container's processes.
"""

import os

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

__all__ = ["container_exit_watcher"]


@implementer(IReadDescriptor)
class _ExitReader(object):
    """
    A pidfd in the reactor: fires :attr:`exited` once it is readable (its
    process exited), and closes it.

    :ivar Deferred exited: Fires with ``None``; fails if the reactor drops
        the pidfd (nothing is known of the process then); cancelling it
        stops the watch (and fails it with ``CancelledError``).
    """

    def __init__(self, reactor, fd):
        self._reactor = reactor
        self._fd = fd
        self.exited = Deferred(lambda _: self._close())

    def fileno(self):
        return -1 if self._fd is None else self._fd

    def logPrefix(self):
        return "pidfd"

    def doRead(self):
        self._finish()

    def connectionLost(self, reason):
        if self._close():
            self.exited.errback(reason)

    def _finish(self):
        if self._close():
            self.exited.callback(None)

    def _close(self):
        """
        Stop watching and close the pidfd.

        :return: Whether it was still open.
        """
        if self._fd is None:
            return False
        self._reactor.removeReader(self)
        os.close(self._fd)
        self._fd = None
        return True


def _in_container(pid, container_id, proc):
    """
    :return: Whether process ``pid`` runs in the cgroup of container
        ``container_id`` (every cgroup driver names the cgroup after the
        container's full id).
    """
    try:
        with open(os.path.join(proc, str(pid), "cgroup")) as f:
            return container_id in f.read()
    except OSError:
        return False


def container_exit_watcher(reactor, proc="/proc",
                           pidfd_open=getattr(os, "pidfd_open", None)):
    """
    Make the watch :class:`flocker.node._docker.DockerClient` uses to answer
    a stop once the container's processes exited.

    :param reactor: ``IReactorFDSet`` provider the pidfds are watched in.
    :param str proc: Where procfs is mounted (this process must share the
        Docker daemon's PID namespace: the pids Docker gives are looked up
        here, and a process not in the container's cgroup is not watched).
    :param pidfd_open: ``os.pidfd_open``, or ``None`` where the system has
        none (then nothing is watched).
    :return: A function of ``(pid, container_id)`` returning a
        ``Deferred`` that fires with ``None`` once process ``pid`` of that
        container exited, or ``None`` when it cannot be watched (no pidfds,
        no such process, or not that container's): the caller then waits
        for Docker.
    """
    def watch(pid, container_id):
        if pidfd_open is None or not pid or not container_id:
            return None
        try:
            fd = pidfd_open(pid)
        except OSError:
            return None
        # Checked once the pidfd holds the process: a pid reused by another
        # process since Docker gave it is not in the container's cgroup.
        if not _in_container(pid, container_id, proc):
            os.close(fd)
            return None
        reader = _ExitReader(reactor, fd)
        reactor.addReader(reader)
        return reader.exited
    return watch
