"""
:class:`MemoryCommandRunner`: the command runner in memory, for tests of
anything that runs commands on nodes.
"""

from twisted.internet.defer import fail, maybeDeferred, succeed
from zope.interface import implementer

from ._command import _check_stdin, quote_argv
from ._errors import NodeUnreachable, RemoteCommandFailed
from ._interface import ICommandRunner

__all__ = ["MemoryCommandRunner", "CommandExit"]


class CommandExit(Exception):
    """
    Raised by a :class:`MemoryCommandRunner` handler to make the command
    "exit" with a non-zero status.

    :ivar int exit_code: The status.
    :ivar bytes stderr: Its error output.
    """

    def __init__(self, exit_code, stderr=b""):
        Exception.__init__(self, exit_code, stderr)
        self.exit_code = exit_code
        self.stderr = stderr


def _best_handler(handlers, address, argv):
    """
    :param handlers: ``dict`` of ``(address or None, prefix tuple)`` to a
        handler.
    :return: The handler with the longest prefix of ``argv`` (one for
        ``address`` before one for any address), or ``None``.
    """
    best = None
    for (where, prefix), handler in handlers.items():
        if where not in (None, address):
            continue
        if tuple(argv[:len(prefix)]) != prefix:
            continue
        rank = (len(prefix), where is not None)
        if best is None or rank > best[0]:
            best = (rank, handler)
    return None if best is None else best[1]


@implementer(ICommandRunner)
class MemoryCommandRunner(object):
    """
    :class:`ICommandRunner` in memory: commands are answered by handlers.

    A handler is registered for an address (or ``None`` for every address)
    and an argument-vector prefix; the longest matching prefix answers.  It is
    called as ``handler(argv, stdin)`` and returns the stdout ``bytes`` (or a
    ``Deferred`` of them), or raises :class:`CommandExit`.  A command with no
    handler exits with status 127 like a missing program.

    :ivar calls: ``list`` of ``(address, argv list, stdin)`` in call order.
    :ivar started: ``list`` of ``(address, argv list)`` given to
        :meth:`start`, in order.
    :ivar unreachable: ``dict`` of address to the reason it is unreachable.
    :ivar known_host_keys: ``dict`` of address to the host :class:`Key`
        :meth:`host_keys` reports for it once a command ran there.
    """

    def __init__(self):
        self._handlers = {}
        self._stream_handlers = {}
        self.calls = []
        self.started = []
        self.unreachable = {}
        self.known_host_keys = {}
        self.closed = 0

    def host_keys(self):
        reached = ({address for address, _, _ in self.calls}
                   | {address for address, _ in self.started})
        return {address: key for address, key in self.known_host_keys.items()
                if address in reached}

    def add_handler(self, address, prefix, handler):
        """
        :param address: The node, or ``None`` for any node.
        :param prefix: Sequence of ``str`` the argument vector starts with.
        :param handler: See the class documentation.
        """
        self._handlers[(address, tuple(prefix))] = handler


    def run(self, address, argv, stdin=b"", progress=None):
        try:
            quote_argv(argv)
            _check_stdin(stdin)
        except (TypeError, ValueError):
            return fail()
        argv = list(argv)
        self.calls.append((address, argv, stdin))
        return self._dispatch(self._handlers, address, argv, stdin)

    def _dispatch(self, handlers, address, argv, argument):
        """
        Call the handler in ``handlers`` for ``argv`` on ``address`` with
        ``argument``, as a command there would run.
        """
        if address in self.unreachable:
            return fail(NodeUnreachable(address, self.unreachable[address]))
        handler = _best_handler(handlers, address, argv)
        if handler is None:
            return fail(RemoteCommandFailed(
                address, argv, 127,
                b"sh: 1: " + argv[0].encode("utf-8") + b": not found\n"))

        def exited(reason):
            reason.trap(CommandExit)
            raise RemoteCommandFailed(address, argv, reason.value.exit_code,
                                      reason.value.stderr)
        return maybeDeferred(handler, argv, argument).addErrback(exited)

    def add_stream_handler(self, address, prefix, handler):
        """
        Answer :meth:`start` for commands starting with ``prefix``.

        :param address: The node, or ``None`` for any node.
        :param prefix: Sequence of ``str`` the argument vector starts with.
        :param handler: ``handler(argv, received)`` returning an object
            with the interface of :class:`RunningCommand` (``write``,
            ``close_input``, ``ended``), or raising :class:`CommandExit`
            for a command that fails to start.
        """
        self._stream_handlers[(address, tuple(prefix))] = handler

    def start(self, address, argv, received):
        try:
            quote_argv(argv)
        except (TypeError, ValueError):
            return fail()
        argv = list(argv)
        self.started.append((address, argv))
        return self._dispatch(self._stream_handlers, address, argv, received)

    def close(self):
        self.closed += 1
        return succeed(None)
