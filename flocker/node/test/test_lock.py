"""
Tests for :mod:`flocker.node._lock`.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory

from flocker.node._lock import (
    DeployLock, LockHeld, default_lock_path, process_alive, process_identity,
)


class DeployLockTests(SynchronousTestCase):
    """
    Tests for ``DeployLock``.
    """

    def setUp(self):
        self.now = [1000.0]
        self.path = os.path.join(temporary_directory(self), "deploy.lock")
        self.running = {"7:100"}
        self.lock = DeployLock(self.path, now=lambda: self.now[0], lease=60,
                               alive=self.running.__contains__)

    def test_hold_and_renew(self):
        """
        The owner may take its lease again (renewing it); another owner is
        refused with the holder named.
        """
        self.lock.hold("one")
        self.lock.hold("one")
        error = self.assertRaises(LockHeld, self.lock.hold, "two")
        self.assertEqual((error.owner, error.remaining), ("one", 60))
        self.assertIn("deploy one", str(error))

    def test_expiry(self):
        """
        A lease nobody renewed ends, and another owner may take the lock.
        """
        self.lock.hold("one")
        self.now[0] += 61
        self.lock.hold("two")
        self.assertRaises(LockHeld, self.lock.hold, "one")

    def test_release(self):
        """
        Releasing frees the lock at once; releasing someone else's lease
        changes nothing.
        """
        self.lock.hold("one")
        self.lock.release("two")
        self.assertRaises(LockHeld, self.lock.hold, "two")
        self.lock.release("one")
        self.lock.hold("two")

    def test_session_process_gone(self):
        """
        A lease taken for a session's process ends when that process is
        gone, long before its time runs out; until then it holds.
        """
        self.lock.hold("one", process="7:100")
        self.assertRaises(LockHeld, self.lock.hold, "two")
        self.running.clear()
        self.lock.hold("two")
        self.assertRaises(LockHeld, self.lock.hold, "one")

    def test_session_lease_still_expires(self):
        """
        A session's lease also ends with its time, even if its process
        lives on (a session left idle by a client that went away).
        """
        self.lock.hold("one", process="7:100")
        self.now[0] += 61
        self.lock.hold("two")

    def test_one_shot_lease_ignores_processes(self):
        """
        A lease taken without a process (one-shot calls) lasts its time
        whatever runs.
        """
        self.lock.hold("one")
        self.running.clear()
        self.assertRaises(LockHeld, self.lock.hold, "two")

    def test_corrupt_file(self):
        """
        A file that is not a lease holds no lock.
        """
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "w") as f:
            f.write("{not json")
        self.lock.hold("one")

    def test_path_per_address(self):
        """
        Each node address gets its own file in ``FLOCKER_LOCK_DIR``.
        """
        self.assertEqual(
            default_lock_path({"FLOCKER_LOCK_DIR": "/x"}, "10.0.0.1"),
            "/x/deploy-10.0.0.1.lock")
        self.assertEqual(default_lock_path({}, "a/b"),
                         "/var/lib/flocker/deploy-a_b.lock")


class ProcessIdentityTests(SynchronousTestCase):
    """
    Tests for ``process_identity`` and ``process_alive``.
    """

    def write_stat(self, proc, pid, command, start):
        os.makedirs(os.path.join(proc, str(pid)))
        fields = ["S", "1"] + ["0"] * 17 + [str(start), "0"]
        with open(os.path.join(proc, str(pid), "stat"), "w") as f:
            f.write("%d (%s) %s\n" % (pid, command, " ".join(fields)))

    def test_identity(self):
        """
        The identity is the pid and the start time, read after the command
        name even when that holds spaces and parentheses.
        """
        proc = temporary_directory(self)
        self.write_stat(proc, 42, "odd ) name (x", 12345)
        self.assertEqual(process_identity(42, proc), "42:12345")

    def test_missing(self):
        """
        No process, no identity; a gone process is not alive, nor is one
        whose pid now belongs to a later process.
        """
        proc = temporary_directory(self)
        self.assertEqual(process_identity(42, proc), None)
        self.assertFalse(process_alive("42:1", proc))
        self.write_stat(proc, 42, "python3", 99)
        self.assertFalse(process_alive("42:1", proc))
        self.assertTrue(process_alive("42:99", proc))
        self.assertFalse(process_alive("garbage", proc))

    def test_this_process(self):
        """
        On the real procfs, this process is alive under its own identity.
        """
        identity = process_identity(os.getpid())
        self.assertTrue(identity.startswith("%d:" % (os.getpid(),)))
        self.assertTrue(process_alive(identity))
