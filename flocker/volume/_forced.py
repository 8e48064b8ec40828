"""
``flocker-volume ssh-command``: the forced command of the node-to-node key.

sshd runs it instead of whatever the connecting node asked for, with the
request in ``SSH_ORIGINAL_COMMAND``.  It runs the request only if it is
exactly one of the commands Flocker's own volume moves send
(:class:`~flocker.volume._service.SSHRemote` words, joined by ssh with single
spaces)::

    flocker-volume receive NAME
    flocker-volume --eliot-task TASK receive NAME

and refuses everything else: ``acquire`` (making a node the owner of a
volume is the operator's decision, taken through the deploy client) and a
bare ``zfs receive`` above all (it would apply whatever properties a stream
carries, as root; every receive goes through ``flocker-volume receive`` and
its receive policy, :mod:`flocker.volume._stream`), with one line on
standard error and exit status 1.  The request is split with :func:`shlex.split` and run with
``execvp`` (no shell); every word must also be one the pushing side could
have sent (no quotes, spaces or shell metacharacters), so what runs is
exactly what was asked, word for word, plus the caller's identity when the
key's line names it (``ssh-command --caller NODEID``): ``receive`` then
gets ``--caller NODEID`` (see :mod:`flocker.volume._policy`).
"""

import os
import re
import shlex

from .._pool import pool_name
from ._errors import UnsafeName
from ._zfs import check_pool_name, check_volume_name

__all__ = ["CommandRefused", "allowed_command", "ssh_command_main"]

# What SSHRemote lets through (see _remote._REMOTE_WORD).
_WORD = re.compile(r"\A[A-Za-z0-9_./:@=,-]+\Z")

# A serialised eliot task id: "UUID@/1/2".
_TASK = re.compile(r"\A[0-9a-f-]{36}@(/[0-9]{1,9}){1,64}\Z")



class CommandRefused(Exception):
    """
    The connecting node asked for something the node key may not run.

    ``str()`` is the one line shown to it.
    """


def _volume(name):
    try:
        check_volume_name(name)
    except UnsafeName:
        raise CommandRefused("%r is not a volume name" % (name,))
    return name


def allowed_command(original, pool, caller=None):
    """
    :param original: ``SSH_ORIGINAL_COMMAND``, or ``None`` if unset (an
        interactive login).
    :param str pool: This node's ZFS pool (checked by the caller; what runs
        names no pool).
    :param caller: The identity of the node whose key this is (from the
        key's ``authorized_keys`` line), or ``None`` if the line names none.
    :return: The argument vector to run: the request, with ``--caller
        CALLER`` given to ``receive`` when ``caller`` is known (so the
        receiving side records that identity, never one the request
        claims).
    :raises CommandRefused: Unless ``original`` is one of the allowed
        commands (see the module documentation).
    """
    if original is None:
        raise CommandRefused("no command given; the Flocker node key only "
                             "runs volume transfers")
    try:
        words = shlex.split(original)
    except ValueError as e:
        raise CommandRefused("unreadable command: %s" % (e,))
    if not words or " ".join(words) != original or not all(
            _WORD.match(word) for word in words):
        raise CommandRefused("only a plain 'flocker-volume receive NAME' is "
                             "allowed")
    program, arguments = words[0], words[1:]
    if program != "flocker-volume":
        raise CommandRefused("%s is not allowed; only flocker-volume "
                             "receive" % (program,))
    prefix = []
    if arguments[:1] == ["--eliot-task"]:
        if len(arguments) < 2 or not _TASK.match(arguments[1]):
            raise CommandRefused("--eliot-task needs a serialised task id")
        prefix, arguments = arguments[:2], arguments[2:]
    if len(arguments) == 2 and arguments[0] == "receive":
        _volume(arguments[1])
        caller_words = [] if caller is None else ["--caller", caller]
        return [program] + prefix + ["receive"] + caller_words + [
            arguments[1]]
    raise CommandRefused("only 'flocker-volume receive NAME' is allowed "
                         "(acquire, and everything else, is the "
                         "operator's)")


def ssh_command_main(environ, stderr, execvp=os.execvp, caller=None):
    """
    Run the connecting node's command if it is allowed.

    :param environ: The process environment (``SSH_ORIGINAL_COMMAND``,
        ``FLOCKER_POOL``).
    :param stderr: Text stream for the refusal.
    :param caller: See :func:`allowed_command`.
    :param execvp: ``os.execvp`` or a replacement (tests); on success it
        replaces this process and does not return.
    :return: ``1`` if the command was refused, ``127`` if it could not be
        started (not on ``PATH``).
    """
    pool = pool_name(None, environ)
    try:
        check_pool_name(pool)
        argv = allowed_command(environ.get("SSH_ORIGINAL_COMMAND"), pool,
                               caller)
    except (CommandRefused, UnsafeName) as e:
        stderr.write("flocker-volume ssh-command: refused: %s\n" % (
            " ".join(str(e).split()),))
        stderr.flush()
        return 1
    try:
        execvp(argv[0], argv)
    except OSError as e:
        stderr.write("flocker-volume ssh-command: cannot run %s: %s\n" % (
            argv[0], e.strerror))
        stderr.flush()
        return 127
    return 1
