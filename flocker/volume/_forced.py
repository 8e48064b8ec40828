"""
What another node may ask for with the node-to-node key.

sshd runs the key's forced command (``flocker-node-bridge --peer``) instead
of whatever the connecting node asked for, and the receiving agent reads
the request (``SSH_ORIGINAL_COMMAND``) here.  It is accepted only if it is
exactly one of the requests Flocker's agents send for a push (words joined
with single spaces; no ``flocker-volume`` process runs it, and that command
has no ``receive`` subcommand)::

    flocker-volume receive NAME
    flocker-volume --eliot-task TASK receive NAME

and everything else is refused with one line: ``acquire`` (making a node the
owner of a volume is the operator's decision, taken through the deploy
client) and a bare ``zfs receive`` above all (it would apply whatever
properties a stream carries, as root; every receive goes through the
volume service and its receive policy, :mod:`flocker.volume._stream`).
Every word must also be one the pushing side could have sent (no quotes,
spaces or shell metacharacters).  Nothing is run: the agent receives the
push itself, with the caller's identity from the key's line (see
:mod:`flocker.volume._policy`).
"""

import re
import shlex

from ._errors import UnsafeName
from ._remote import is_remote_word
from ._zfs import check_volume_name

__all__ = ["CommandRefused", "peer_request"]


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


def peer_request(original):
    """
    Read what a connecting node asked for.

    :param original: ``SSH_ORIGINAL_COMMAND``, or ``None`` if unset (an
        interactive login).
    :return: ``(task, name)``: the serialised eliot task to continue (or
        ``None``) and the volume to receive.
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
            is_remote_word(word) for word in words):
        raise CommandRefused("only a plain 'flocker-volume receive NAME' is "
                             "allowed")
    program, arguments = words[0], words[1:]
    if program != "flocker-volume":
        raise CommandRefused("%s is not allowed; only flocker-volume "
                             "receive" % (program,))
    task = None
    if arguments[:1] == ["--eliot-task"]:
        if len(arguments) < 2 or not _TASK.match(arguments[1]):
            raise CommandRefused("--eliot-task needs a serialised task id")
        task, arguments = arguments[1], arguments[2:]
    if len(arguments) == 2 and arguments[0] == "receive":
        return task, _volume(arguments[1])
    raise CommandRefused("only 'flocker-volume receive NAME' is allowed "
                         "(acquire, and everything else, is the "
                         "operator's)")
