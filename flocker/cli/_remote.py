"""
The deploy client's node agent: :class:`RemoteNodeAgent` implements
``INodeAgent`` by running ``flocker-node`` subcommands on the node through an
:class:`~flocker.cli._ssh.ICommandRunner`.

The protocol itself is defined and documented in
:mod:`flocker.node._protocol`.
"""

import os

import attr
from eliot.twisted import DeferredContext
from zope.interface import implementer

from .._serialize import SerializationError
from ..node._protocol import (
    ADDRESS_OPTION, BYTES_KEY, CREATE_VOLUME, DEFAULT_NODE_COMMAND,
    EXIT_FAILED, EXIT_LOCKED, EXIT_PROTOCOL, EXIT_USAGE, HANDOFF_VOLUME,
    LOCK_OPTION, RELEASE_LOCK,
    MAXIMUM_SIZE_OPTION, PROTOCOL_OPTION, PROTOCOL_VERSION, PUSH_VOLUME,
    REPORT, ROUTES_KEY, SET_ROUTES, START_APPLICATION, STOP_APPLICATION,
    SUBCOMMANDS, decode_application, decode_bytes_sent, decode_report,
    RELEASE_VOLUME, ACQUIRE_VOLUME, decode_release, INSTALL_NODE_KEY,
    decode_routes, encode_application, encode_bytes_sent, encode_node_key,
    encode_routes, PULL_IMAGE, LOGS, DELETE_VOLUME, DRY_RUN_OPTION,
    SINCE_OPTION, TAIL_OPTION, decode_logs, DOCTOR, JSON_OPTION,
    decode_doctor, SEED_VOLUME, decode_seeded, encode_seed, WAIT_APPLICATION,
)
from ..node._agent import INodeAgent
from ._logging import REMOTE_CALL
from ._ssh import (
    AuthenticationFailed, HostKeyError, NodeUnreachable, RemoteCommandFailed,
    task_argv,
)

__all__ = [
    "RemoteNodeAgent", "NodeStepFailed",
    "PROTOCOL_VERSION", "PROTOCOL_OPTION", "ADDRESS_OPTION",
    "DEFAULT_NODE_COMMAND",
    "REPORT", "START_APPLICATION", "STOP_APPLICATION", "CREATE_VOLUME",
    "PUSH_VOLUME", "HANDOFF_VOLUME", "RELEASE_VOLUME", "ACQUIRE_VOLUME",
    "SET_ROUTES", "SUBCOMMANDS",
    "MAXIMUM_SIZE_OPTION", "BYTES_KEY", "ROUTES_KEY",
    "EXIT_FAILED", "EXIT_USAGE", "EXIT_PROTOCOL",
    "encode_application", "decode_application",
    "encode_routes", "decode_routes",
    "encode_bytes_sent", "decode_bytes_sent", "decode_report",
]

class NodeStepFailed(Exception):
    """
    One step of a deploy failed on one node.  ``str()`` is one line naming
    the node, the step and the remote error.

    :ivar str address: The node.
    :ivar str step: What was being done (``"start-application web"``).
    :ivar str detail: What went wrong.
    :ivar cause: The underlying exception (:class:`RemoteCommandFailed`,
        :class:`NodeUnreachable`, :class:`HostKeyError` or
        ``SerializationError``), or ``None``.
    """

    def __init__(self, address, step, detail, cause=None):
        Exception.__init__(self, address, step, detail)
        self.address = address
        self.step = step
        self.detail = detail
        self.cause = cause

    @property
    def locked(self):
        """
        ``True`` if the node refused because another deploy holds its lock.
        """
        return (isinstance(self.cause, RemoteCommandFailed)
                and self.cause.exit_code == EXIT_LOCKED)

    @property
    def unreachable(self):
        """
        ``True`` if the node could not be reached at all (so nothing of the
        step ran), as opposed to the step running and failing.
        """
        return isinstance(self.cause, (NodeUnreachable, HostKeyError))

    def __str__(self):
        return "%s: %s: %s" % (self.address, self.step, self.detail)


def _describe(exception, command, subcommand=""):
    """
    :return: One line describing a runner failure, without the address.
    """
    if isinstance(exception, RemoteCommandFailed):
        said = exception.error_line()
        # The step is named already: flocker-node's own prefix would be a
        # third one.
        prefix = "%s %s: " % (os.path.basename(command), subcommand)
        if said.startswith(prefix):
            said = said[len(prefix):]
        if said and exception.exit_code == EXIT_FAILED:
            # The node did what it says it could not: its line is the whole
            # story.
            return said
        if exception.exit_code == 127:
            return "%s was not found on the node (is Flocker installed and on " \
                "the remote PATH?)%s" % (command, ": " + said if said else "")
        if exception.exit_code == 126:
            return "%s cannot be executed on the node%s" % (
                command, ": " + said if said else "")
        if exception.exit_code is None:
            how = ("killed by signal %s" % (exception.signal,)
                   if exception.signal else "ended without an exit status")
        else:
            how = "exit status %d" % (exception.exit_code,)
        return "%s%s" % (said + " " if said else "no error output ",
                         "(%s)" % (how,))
    if isinstance(exception, AuthenticationFailed):
        return "authentication failed: " + exception.reason
    if isinstance(exception, NodeUnreachable):
        return "unreachable: " + exception.reason
    if isinstance(exception, HostKeyError):
        return "host key verification failed: %s (key presented: %s)" % (
            exception.reason, exception.fingerprint)
    return str(exception)


@implementer(INodeAgent)
@attr.s(frozen=True)
class RemoteNodeAgent(object):
    """
    ``INodeAgent`` for a node reached through an ``ICommandRunner``; see the
    module documentation for the protocol.  Every failure is a
    :class:`NodeStepFailed`.  A volume transfer's ``progress`` is told the
    figures the runner hands on (a session's progress lines; single calls
    have none) and finished when the call ends.

    :ivar runner: The ``ICommandRunner`` provider.
    :ivar str address: The node's address.
    :ivar str command: The ``flocker-node`` program on the node (a name
        looked up on the remote ``PATH``, or an absolute path).
    :ivar lock: The id of the deploy whose lease every command takes or
        renews on the node, or ``None`` to leave the lock alone.
    """
    runner = attr.ib(eq=False)
    address = attr.ib()
    command = attr.ib(default=DEFAULT_NODE_COMMAND)
    lock = attr.ib(default=None)

    def argv(self, subcommand, arguments=()):
        """
        :param str subcommand: One of :data:`SUBCOMMANDS`.
        :param arguments: Its arguments (sequence of ``str``).
        :return: The argument vector run on the node, without the eliot task
            option (added per call).
        """
        locking = [] if self.lock is None else [LOCK_OPTION, self.lock]
        return ([self.command, PROTOCOL_OPTION, str(PROTOCOL_VERSION),
                 ADDRESS_OPTION, self.address] + locking + [subcommand]
                + list(arguments))

    def _call(self, step, subcommand, arguments=(), stdin=b"", parse=None,
              progress=None):
        action = REMOTE_CALL(address=self.address, subcommand=subcommand)
        with action.context():
            argv = task_argv(self.argv(subcommand, arguments), action)
            # Runners are only asked for progress when there is someone to
            # tell, so runners written before it existed still serve.
            reporting = ({} if progress is None
                         else {"progress": progress.update})
            d = DeferredContext(self.runner.run(self.address, argv, stdin,
                                                **reporting))
            if progress is not None:
                def finished(result):
                    progress.finish()
                    return result
                d.addBoth(finished)

            def parsed(stdout):
                try:
                    return parse(stdout)
                except SerializationError as e:
                    raise NodeStepFailed(self.address, step, (
                        "unexpected output from %s %s: %s") % (
                            self.command, subcommand, e), e)
            if parse is not None:
                d.addCallback(parsed)
            else:
                d.addCallback(lambda _: None)

            def failed(reason):
                if reason.check(NodeStepFailed):
                    return reason
                if reason.check(RemoteCommandFailed, NodeUnreachable,
                                HostKeyError):
                    raise NodeStepFailed(
                        self.address, step,
                        _describe(reason.value, self.command, subcommand),
                        reason.value)
                return reason
            d.addErrback(failed)
            return d.addActionFinish()

    def report(self):
        return self._call(REPORT, REPORT,
                          parse=lambda data: decode_report(data, self.address))

    def release_lock(self):
        """
        End this deploy's lease on the node (see :attr:`lock`).

        :return: ``Deferred`` firing with ``None``.
        :raises NodeStepFailed: If the node could not be told.
        """
        return self._call(RELEASE_LOCK, RELEASE_LOCK)

    def start_application(self, application):
        return self._call("%s %s" % (START_APPLICATION, application.name),
                          START_APPLICATION,
                          stdin=encode_application(application))

    def stop_application(self, name):
        return self._call("%s %s" % (STOP_APPLICATION, name),
                          STOP_APPLICATION, [name])

    def create_volume(self, name, maximum_size=None):
        arguments = [name]
        if maximum_size is not None:
            arguments += [MAXIMUM_SIZE_OPTION, str(maximum_size)]
        return self._call("%s %s" % (CREATE_VOLUME, name), CREATE_VOLUME,
                          arguments)

    def seed_volume(self, name, archive):
        return self._call("%s %s" % (SEED_VOLUME, name), SEED_VOLUME,
                          [name], stdin=encode_seed(archive),
                          parse=decode_seeded)

    def push_volume(self, name, target, progress=None):
        return self._call("%s %s to %s" % (PUSH_VOLUME, name, target),
                          PUSH_VOLUME, [name, target],
                          parse=decode_bytes_sent, progress=progress)

    def handoff_volume(self, name, target, progress=None):
        return self._call("%s %s to %s" % (HANDOFF_VOLUME, name, target),
                          HANDOFF_VOLUME, [name, target],
                          parse=decode_bytes_sent, progress=progress)

    def release_volume(self, name, target, progress=None):
        return self._call("%s %s to %s" % (RELEASE_VOLUME, name, target),
                          RELEASE_VOLUME, [name, target],
                          parse=decode_release, progress=progress)

    def acquire_volume(self, name, snapshot, node_id):
        return self._call("%s %s" % (ACQUIRE_VOLUME, name), ACQUIRE_VOLUME,
                          [name, snapshot, node_id])

    def set_routes(self, routes):
        return self._call(SET_ROUTES, SET_ROUTES,
                          stdin=encode_routes(routes))

    def delete_volume(self, name):
        return self._call("%s %s" % (DELETE_VOLUME, name), DELETE_VOLUME,
                          [name])

    def wait_for_application(self, name, condition, timeout):
        return self._call("%s %s" % (WAIT_APPLICATION, name),
                          WAIT_APPLICATION, [name, condition, "%g" % (timeout,)])

    def pull_image(self, image, dry_run=False):
        return self._call("%s %s" % (PULL_IMAGE, image), PULL_IMAGE,
                          [image] + ([DRY_RUN_OPTION] if dry_run else []))

    def doctor(self):
        return self._call(DOCTOR, DOCTOR, [JSON_OPTION], parse=decode_doctor)

    def logs(self, name, since=None, tail=None):
        arguments = [name]
        if since is not None:
            arguments += [SINCE_OPTION, since]
        if tail is not None:
            arguments += [TAIL_OPTION, str(tail)]
        return self._call("%s %s" % (LOGS, name), LOGS, arguments,
                          parse=decode_logs)

    def install_node_key(self, node_key):
        # The key travels on standard input only: argument vectors are
        # logged, standard input is counted, never logged.
        return self._call(INSTALL_NODE_KEY, INSTALL_NODE_KEY,
                          stdin=encode_node_key(node_key))
