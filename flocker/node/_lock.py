"""
The per-node deploy lock: a lease that one ``flocker-deploy`` run holds on a
node from its first command (the report) to its last, so two deploys never
interleave their changes on one node.

The node's agent (``flocker-node agent``) owns the lock: every command of a
deploy names the deploy (a random id) and takes or renews its lease, kept
in a small file naming its owner and when the lease ends.

A deploy that dies without releasing its lease:

* its client died or its connection was cut: the agent ends the leases a
  connection took when that connection closes (it finishes the commands
  already running first; a deploy run again waits only for those);
* the agent itself died: the lease names the agent's process (pid and start
  time), and ends with it;
* otherwise it runs out (:data:`DEFAULT_LEASE` after its last command).

The file is only ever read and rewritten under ``flock``, for microseconds.
"""

import fcntl
import json
import os
import time

__all__ = ["node_file_path", "DeployLock", "LockHeld", "DEFAULT_LEASE", "default_lock_path",
           "process_identity", "process_alive"]

#: Seconds a lease lasts after the owner's last command.  Longer than any
#: single step of a deploy (a pre-copy of a large volume renews it when it
#: starts and its successor renews it again).
DEFAULT_LEASE = 600.0


class LockHeld(Exception):
    """
    Another deploy holds the node's lock.

    :ivar str owner: That deploy's id.
    :ivar float remaining: Seconds until its lease ends unless renewed.
    """

    def __init__(self, owner, remaining):
        Exception.__init__(self, owner, remaining)
        self.owner = owner
        self.remaining = remaining

    def __str__(self):
        return ("another flocker-deploy (deploy %s) is changing this node; "
                "its lease ends in %d s unless it goes on" % (
                    self.owner, max(0, int(self.remaining))))


def process_identity(pid, proc="/proc"):
    """
    :param int pid: A process id.
    :param str proc: Where procfs is mounted.
    :return: ``"PID:START"`` naming that process for as long as it lives
        (``START`` is its start time in clock ticks since boot, so a later
        process reusing the pid has another identity), or ``None`` if there
        is no such process.
    """
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or
    # parentheses itself: the fields after the last ")" are plain numbers.
    fields = stat[stat.rfind(")") + 2:].split()
    # Field 22 (starttime) is the 20th after the command name.
    return "%d:%s" % (pid, fields[19]) if len(fields) > 19 else None


def process_alive(identity, proc="/proc"):
    """
    :param str identity: A :func:`process_identity` result.
    :param str proc: Where procfs is mounted.
    :return: Whether that very process still runs.
    """
    pid, _, _ = identity.partition(":")
    try:
        number = int(pid)
    except ValueError:
        return False
    return process_identity(number, proc) == identity


def default_lock_path(environ, address):
    """
    :param environ: The process environment: ``FLOCKER_LOCK_DIR`` chooses
        the directory (default ``/var/lib/flocker``).
    :param str address: The node's address; part of the file name, so nodes
        that share a file system (a lab on one machine) keep separate locks.
    :return: The lock file's path.
    """
    return node_file_path(environ, "deploy", address, ".lock")


def node_file_path(environ, kind, address, extension):
    """
    :param environ: The process environment: ``FLOCKER_LOCK_DIR`` chooses
        the directory of the agent's state files (default
        ``/var/lib/flocker``).
    :param str kind: What the file holds (``deploy``, ``replication``).
    :param str address: The node's address; part of the file name, so nodes
        that share a file system (a lab on one machine) keep separate files.
    :param str extension: The file name's end (``.lock``).
    :return: The path of one of the node's state files.
    """
    directory = environ.get("FLOCKER_LOCK_DIR", "/var/lib/flocker")
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in address)
    return os.path.join(directory, "%s-%s%s" % (kind, safe, extension))


class DeployLock(object):
    """
    The lease file of one node.

    :ivar str path: The lock file.
    """

    def __init__(self, path, now=time.time, lease=DEFAULT_LEASE,
                 alive=process_alive):
        """
        :param str path: The lock file (its directory is created).
        :param now: Callable returning the current time in seconds.
        :param float lease: Seconds a lease lasts after each renewal.
        :param alive: Callable telling whether a process named by a
            :func:`process_identity` string still runs.
        """
        self.path = path
        self._now = now
        self._lease = lease
        self._alive = alive

    def _update(self, change):
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 4096)
            try:
                current = json.loads(raw.decode("utf-8")) if raw else None
            except ValueError:
                # A torn or foreign file holds no valid lease.
                current = None
            wanted = change(current)
            if wanted != current:
                data = b"" if wanted is None else json.dumps(wanted).encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, data)
        finally:
            os.close(fd)

    def _held_by_other(self, current, owner, now):
        if not current or current.get("owner") == owner:
            return False
        if current.get("expires", 0) <= now:
            return False
        holder = current.get("process")
        # A lease taken through a session ends with the session's process.
        return not (isinstance(holder, str) and not self._alive(holder))

    def hold(self, owner, process=None):
        """
        Take or renew the lease for ``owner``.

        :param str owner: The deploy's id.
        :param process: ``None``, or the :func:`process_identity` of the
            process serving the deploy's session: the lease then also ends
            when that process does.
        :raises LockHeld: If another owner's lease has not ended.
        """
        now = self._now()

        def take(current):
            if self._held_by_other(current, owner, now):
                raise LockHeld(current["owner"], current["expires"] - now)
            lease = {"owner": owner, "expires": now + self._lease}
            if process is not None:
                lease["process"] = process
            return lease
        self._update(take)

    def release(self, owner):
        """
        End ``owner``'s lease; nothing if another owner (or nobody) holds
        it.

        :param str owner: The deploy's id.
        """
        def drop(current):
            if current and current.get("owner") == owner:
                return None
            return current
        self._update(drop)
