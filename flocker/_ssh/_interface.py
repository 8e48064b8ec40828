"""
The interface through which the deploy client runs commands on nodes.
"""

from zope.interface import Interface

__all__ = ["ICommandRunner"]


class ICommandRunner(Interface):
    """
    Runs commands on cluster nodes.
    """

    def run(address, argv, stdin=b"", progress=None):
        """
        Run a command on a node, its standard input fed with ``stdin`` and
        then closed.

        :param str address: The node.
        :param argv: Non-empty sequence of ``str``; each element arrives as
            one literal argument.
        :param bytes stdin: Data for the command's standard input.
        :param progress: ``None``, or a callable given ``(sent, total)``
            for each progress report of a volume transfer the command runs
            (a runner that runs commands only never calls it).
            Only runners that carry such reports call it; for the others
            (a single command's output has no room for them) it is never
            called.
        :return: ``Deferred`` firing with the command's standard output
            (``bytes``) when it exits with status 0, or failing with
            :class:`RemoteCommandFailed` (it ran and failed),
            :class:`NodeUnreachable` (including
            :class:`AuthenticationFailed`), :class:`HostKeyError`, or
            ``TypeError``/``ValueError`` for an unusable ``argv`` or
            ``stdin``.
        """

    def start(address, argv, received):
        """
        Start a long-lived command on a node, to talk with while it runs.

        :param str address: The node.
        :param argv: Non-empty sequence of ``str``, as for :meth:`run`.
        :param received: Callable given each piece (``bytes``) of the
            command's standard output as it arrives.
        :return: ``Deferred`` firing with a :class:`RunningCommand` once the
            command has started, or failing with :class:`NodeUnreachable`,
            :class:`HostKeyError`, or ``TypeError``/``ValueError`` for an
            unusable ``argv``.
        """

    def host_keys():
        """
        The host keys of the nodes this runner connected to, each verified
        against the operator's known hosts when it connected.

        :return: ``dict`` of address (as given to :meth:`run`) to the host's
            public :class:`Key`.
        """

    def close():
        """
        Close every connection the runner holds.  The runner can be used
        again afterwards (it reconnects).

        :return: ``Deferred`` firing with ``None`` once they are closed.
        """
