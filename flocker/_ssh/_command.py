"""
Argument vectors as the one command string an SSH ``exec`` request carries.
"""

import shlex

__all__ = ["quote_argv"]


def quote_argv(argv):
    """
    Turn an argument vector into the one command string SSH carries, quoted
    for a POSIX shell so that every element arrives as one literal argument.

    :param argv: Non-empty sequence of ``str``.
    :return: The command as UTF-8 ``bytes``.
    :raises TypeError: If ``argv`` is a string or holds a non-string.
    :raises ValueError: If ``argv`` is empty or an argument contains NUL (no
        shell can receive it) or cannot be encoded as UTF-8.
    """
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a sequence of strings, not a string")
    argv = list(argv)
    if not argv:
        raise ValueError("argv must not be empty")
    for argument in argv:
        if not isinstance(argument, str):
            raise TypeError("argument %r is not a string" % (argument,))
        if "\x00" in argument:
            raise ValueError("argument %r contains NUL" % (argument,))
    return " ".join(shlex.quote(argument) for argument in argv).encode("utf-8")


def _check_stdin(stdin):
    if not isinstance(stdin, bytes):
        raise TypeError("stdin must be bytes, not %s" % (
            type(stdin).__name__,))
