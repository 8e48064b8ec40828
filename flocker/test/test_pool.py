"""
Tests for :mod:`flocker._pool`: the one rule choosing a node's ZFS pool.
"""

from twisted.trial.unittest import SynchronousTestCase

from flocker._pool import DEFAULT_POOL, pool_name


class PoolNameTests(SynchronousTestCase):
    """
    Tests for :func:`pool_name`.
    """

    def test_given_wins(self):
        """
        A pool named on the command line wins over ``$FLOCKER_POOL``.
        """
        self.assertEqual(
            "tank", pool_name("tank", {"FLOCKER_POOL": "other"}))

    def test_environment(self):
        """
        Without a pool on the command line, ``$FLOCKER_POOL`` names it.
        """
        self.assertEqual("other", pool_name(None, {"FLOCKER_POOL": "other"}))

    def test_default(self):
        """
        With neither (an empty variable counts as unset), the pool is
        ``flocker``.
        """
        self.assertEqual(
            (DEFAULT_POOL, DEFAULT_POOL),
            (pool_name(None, {}), pool_name("", {"FLOCKER_POOL": ""})))
        self.assertEqual("flocker", DEFAULT_POOL)
