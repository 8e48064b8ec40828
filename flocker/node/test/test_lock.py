"""
Tests for :mod:`flocker.node._lock`.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory

from flocker.node._lock import DeployLock, LockHeld, default_lock_path


class DeployLockTests(SynchronousTestCase):
    """
    Tests for ``DeployLock``.
    """

    def setUp(self):
        self.now = [1000.0]
        self.path = os.path.join(temporary_directory(self), "deploy.lock")
        self.lock = DeployLock(self.path, now=lambda: self.now[0], lease=60)

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
