"""
Running the route manager's commands (``iptables-restore``, ``iptables-save``,
``sysctl``, ``ss``, ``conntrack``, ``nsenter``) through the reactor.

Every command is an argument vector; nothing is ever passed through a shell.
A :class:`ProcessRunner` can carry a command prefix (for example
``("ip", "netns", "exec", "flk-rt-1")``) so that the same route manager acts
in another network namespace, which is how the tests and the benchmark run it
against namespaces they create.
"""

import os

import attr
from eliot.twisted import DeferredContext
from pyrsistent import pvector
from twisted.internet.defer import fail
from twisted.python.procutils import which
from zope.interface import Interface, implementer

from .._process import spawn
from ._logging import RUN_COMMAND

__all__ = ["IProcessRunner", "ProcessRunner", "CommandFailed"]

#: How long a command may run before it is killed.  Everything the route
#: manager runs finishes in milliseconds; a hung command (a stuck xtables
#: lock, an ``nsenter`` into a vanished process) must not hang a deploy.
DEFAULT_TIMEOUT = 60.0


@attr.s(auto_exc=True, str=False)
class CommandFailed(Exception):
    """
    A command could not be started, exited with a non-zero status, was
    killed by a signal or timed out.

    :ivar argv: The full argument vector that was run (prefix included), as a
        tuple of ``str``.
    :ivar exit_code: The exit status, or ``None`` when the command did not
        start, was killed or timed out.
    :ivar str stderr: What the command wrote to its standard error (decoded,
        stripped), or an explanation of why it did not run.
    """
    argv = attr.ib(converter=tuple)
    exit_code = attr.ib()
    stderr = attr.ib()

    def __str__(self):
        if self.exit_code is None:
            status = "failed"
        else:
            status = "exited with status %d" % (self.exit_code,)
        message = "`%s` %s" % (" ".join(self.argv), status)
        if self.stderr:
            message += ": " + self.stderr
        return message


class IProcessRunner(Interface):
    """
    Runs commands for the route manager, each in the network namespace the
    runner stands for.
    """

    def run(argv, stdin=None):
        """
        Run one command and collect its output.

        :param argv: Sequence of ``str``: the command and its arguments.
        :param stdin: ``bytes`` written to the command's standard input
            (which is then closed), or ``None`` for an empty input.
        :return: ``Deferred`` firing with the command's standard output as
            ``bytes`` when it exits with status 0.
        :raises CommandFailed: (in the ``Deferred``) otherwise.
        """


def _decode(data):
    return data.decode("utf-8", "replace").strip()


@implementer(IProcessRunner)
@attr.s(frozen=True)
class ProcessRunner(object):
    """
    Run commands with ``reactor.spawnProcess``, optionally behind a prefix.

    :ivar reactor: Provider of ``IReactorProcess`` and ``IReactorTime``.
    :ivar prefix: ``PVector`` of ``str`` put in front of every command, e.g.
        ``("ip", "netns", "exec", "NAME")`` to act in a named network
        namespace.  Empty (the default) means the current namespace, which is
        the node's own when ``flocker-node`` runs on the node.
    :ivar float timeout: Seconds after which a command is killed and fails.
    """
    reactor = attr.ib()
    prefix = attr.ib(default=pvector(), converter=pvector)
    timeout = attr.ib(default=DEFAULT_TIMEOUT)

    def run(self, argv, stdin=None):
        full = tuple(self.prefix) + tuple(argv)
        action = RUN_COMMAND(argv=list(full),
                             stdin_bytes=len(stdin) if stdin else 0)
        with action.context():
            d = DeferredContext(self._spawn(full, stdin))

            def succeeded(stdout):
                action.addSuccessFields(stdout_bytes=len(stdout))
                return stdout
            d.addCallback(succeeded)
            return d.addActionFinish()

    def _spawn(self, argv, stdin):
        found = which(argv[0]) if "/" not in argv[0] else [argv[0]]
        if not found:
            return fail(CommandFailed(argv, None,
                                      "%s: command not found" % (argv[0],)))
        # A fixed C locale keeps the tools' messages stable for the checks
        # that look at them (conntrack's "0 flow entries").
        environment = {"PATH": os.environ.get("PATH", os.defpath),
                       "LC_ALL": "C"}
        transport, collector = spawn(self.reactor, argv, environment,
                                     stdin_data=stdin)
        timed_out = []

        def kill():
            timed_out.append(True)
            try:
                transport.signalProcess("KILL")
            except Exception:
                # Already gone: processEnded is on its way.
                pass
        timer = self.reactor.callLater(self.timeout, kill)

        def ended(result):
            if timer.active():
                timer.cancel()
            if timed_out:
                raise CommandFailed(argv, None, "timed out after %g s" % (
                    self.timeout,))
            if result.exit_code == 0:
                return result.stdout
            message = _decode(result.stderr)
            if result.exit_code is None and result.signal is not None:
                message = ("killed by signal %d" % (result.signal,)
                           + (": " + message if message else ""))
            raise CommandFailed(argv, result.exit_code, message)
        return collector.ended.addCallback(ended)
