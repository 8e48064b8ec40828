"""
Tests for ``flocker.volume._errors``.
"""

from twisted.trial.unittest import SynchronousTestCase

from flocker.volume import _errors
from flocker.volume._errors import (
    OutOfSpace, PoolMissing, RemoteError, VolumeError, ZFSError,
    error_from_kind,
)
from flocker.testtools import cases, with_cases


@with_cases
class ErrorsTests(SynchronousTestCase):
    """
    The volume errors: messages, details, and rebuilding from a kind.
    """

    def test_message(self):
        """
        An error's string is its one-line message.
        """
        self.assertEqual(str(VolumeError("volume x is in use")),
                         "volume x is in use")

    def test_zfs_errors_carry_failure(self):
        """
        ZFS errors keep the failed command for whoever needs details.
        """
        failure = object()
        error = PoolMissing("ZFS pool p does not exist", failure)
        self.assertIsInstance(error, ZFSError)
        self.assertIs(error.failure, failure)

    @cases([(name,) for name in _errors.__all__[:-1]],
           ids=_errors.__all__[:-1])
    def test_rebuilt_from_kind(self, name):
        """
        Every error kind reported by another node is rebuilt as its own type.
        """
        error = error_from_kind(name, "node n: it broke")
        self.assertIs(type(error), getattr(_errors, name))
        self.assertEqual(error.message, "node n: it broke")

    def test_unknown_kind(self):
        """
        An unknown kind becomes a ``RemoteError``.
        """
        self.assertIs(type(error_from_kind("Nonsense", "m")), RemoteError)
        self.assertIs(type(error_from_kind("OutOfSpace", "m")), OutOfSpace)
