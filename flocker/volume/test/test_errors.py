"""
Tests for ``flocker.volume._errors``.
"""

import pytest

from flocker.volume import _errors
from flocker.volume._errors import (
    OutOfSpace, PoolMissing, RemoteError, VolumeError, ZFSError,
    error_from_kind,
)


def test_message():
    """
    An error's string is its one-line message.
    """
    assert str(VolumeError("volume x is in use")) == "volume x is in use"


def test_zfs_errors_carry_failure():
    """
    ZFS errors keep the failed command for whoever needs details.
    """
    failure = object()
    error = PoolMissing("ZFS pool p does not exist", failure)
    assert isinstance(error, ZFSError)
    assert error.failure is failure


@pytest.mark.parametrize("name", _errors.__all__[:-1])
def test_rebuilt_from_kind(name):
    """
    Every error kind reported by another node is rebuilt as its own type.
    """
    error = error_from_kind(name, "node n: it broke")
    assert type(error) is getattr(_errors, name)
    assert error.message == "node n: it broke"


def test_unknown_kind():
    """
    An unknown kind becomes a ``RemoteError``.
    """
    assert type(error_from_kind("Nonsense", "m")) is RemoteError
    assert type(error_from_kind("OutOfSpace", "m")) is OutOfSpace
