"""
``flocker-volume ssh-command``: the forced command of the node-to-node key.

sshd runs it instead of whatever the connecting node asked for, with the
request in ``SSH_ORIGINAL_COMMAND``.  It runs the request only if it is
exactly one of the commands Flocker's own volume moves send
(:class:`~flocker.volume._service.SSHRemote` words, joined by ssh with single
spaces)::

    flocker-volume receive NAME
    flocker-volume --eliot-task TASK receive NAME
    flocker-volume acquire NAME --snapshot SNAPSHOT --node-id NODEID --json

and refuses everything else (a bare ``zfs receive`` above all: it would
apply whatever properties a stream carries, as root; every receive goes
through ``flocker-volume receive`` and its receive policy,
:mod:`flocker.volume._stream`) with one line on standard error and exit
status 1.  The request is split with :func:`shlex.split` and run with
``execvp`` (no shell); every word must also be one the pushing side could
have sent (no quotes, spaces or shell metacharacters), so what runs is
exactly what was asked, word for word.
"""

import os
import re
import shlex

from ._errors import UnsafeName
from ._zfs import check_pool_name, check_snapshot_name, check_volume_name

__all__ = ["CommandRefused", "allowed_command", "ssh_command_main"]

# What SSHRemote lets through (see _service._REMOTE_WORD).
_WORD = re.compile(r"\A[A-Za-z0-9_./:@=,-]+\Z")

# A serialised eliot task id: "UUID@/1/2".
_TASK = re.compile(r"\A[0-9a-f-]{36}@(/[0-9]{1,9}){1,64}\Z")

# Node identities (see _service._NODE_ID).
_NODE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")


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


def allowed_command(original, pool):
    """
    :param original: ``SSH_ORIGINAL_COMMAND``, or ``None`` if unset (an
        interactive login).
    :param str pool: This node's ZFS pool.
    :return: The argument vector to run.
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
        raise CommandRefused("only plain flocker-volume receive and acquire "
                             "commands are allowed")
    program, arguments = words[0], words[1:]
    if program != "flocker-volume":
        raise CommandRefused("%s is not allowed; only flocker-volume "
                             "receive and acquire" % (program,))
    if arguments[:1] == ["--eliot-task"]:
        if len(arguments) < 2 or not _TASK.match(arguments[1]):
            raise CommandRefused("--eliot-task needs a serialised task id")
        arguments = arguments[2:]
    if len(arguments) == 2 and arguments[0] == "receive":
        _volume(arguments[1])
        return words
    if (len(arguments) == 7 and arguments[0] == "acquire"
            and arguments[2] == "--snapshot" and arguments[4] == "--node-id"
            and arguments[6] == "--json" and words[1] != "--eliot-task"):
        _volume(arguments[1])
        try:
            check_snapshot_name(arguments[3])
        except UnsafeName:
            raise CommandRefused("%r is not a snapshot name" % (
                arguments[3],))
        if not _NODE_ID.match(arguments[5]):
            raise CommandRefused("%r is not a node identity" % (
                arguments[5],))
        return words
    raise CommandRefused("only 'flocker-volume receive NAME' and "
                         "'flocker-volume acquire NAME --snapshot S "
                         "--node-id ID --json' are allowed")


def ssh_command_main(environ, stderr, execvp=os.execvp):
    """
    Run the connecting node's command if it is allowed.

    :param environ: The process environment (``SSH_ORIGINAL_COMMAND``,
        ``FLOCKER_POOL``).
    :param stderr: Text stream for the refusal.
    :param execvp: ``os.execvp`` or a replacement (tests); on success it
        replaces this process and does not return.
    :return: ``1`` if the command was refused, ``127`` if it could not be
        started (not on ``PATH``).
    """
    from .script import DEFAULT_POOL
    pool = environ.get("FLOCKER_POOL") or DEFAULT_POOL
    try:
        check_pool_name(pool)
        argv = allowed_command(environ.get("SSH_ORIGINAL_COMMAND"), pool)
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
