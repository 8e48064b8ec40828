"""
eliot's test logger, validating messages without eliot's deprecated
JSON encoder class.
"""

from eliot.testing import capture_logging as _capture_logging

__all__ = ["capture_logging"]


def capture_logging(assertion, *assertion_args, **assertion_kwargs):
    """
    :func:`eliot.testing.capture_logging`, whose ``MemoryLogger`` checks
    that messages serialize with eliot's JSON default function: eliot's
    own default, a ``JSONEncoder`` subclass, is deprecated and warns in
    every test.

    :param assertion: As for :func:`eliot.testing.capture_logging`: called
        with the test case, the logger and the other arguments after the
        test, or ``None``.
    :return: The test method decorator.
    """
    assertion_kwargs.setdefault("encoder_", None)
    return _capture_logging(assertion, *assertion_args, **assertion_kwargs)
