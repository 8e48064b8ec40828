"""
An application's container output, from whichever node runs it
(``flocker-deploy --logs APP [--follow]``).
"""

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater

__all__ = ["find_application", "application_logs", "format_log_line",
           "FOLLOW_INTERVAL", "NoSuchApplication"]

#: Seconds between two reads of a followed application's new output.
FOLLOW_INTERVAL = 1.0


class NoSuchApplication(Exception):
    """
    No node has a container of the application.  ``str()`` is one line.
    """

    def __init__(self, name, nodes):
        Exception.__init__(self, name, nodes)
        self.name = name
        self.nodes = nodes

    def __str__(self):
        return ("application %s has no container on any node (%d asked); "
                "flocker-deploy --status shows where applications run" % (
                    self.name, self.nodes))


def find_application(state, name):
    """
    :param ClusterState state: Every node's report.
    :param str name: An application name.
    :return: The address of the node whose container of the application
        runs (or, when none runs, of one that has a stopped one), or
        ``None``.
    """
    holding = sorted(address for address, node in state.nodes.items()
                     if name in node.applications)
    running = [address for address in holding
               if name in state.nodes[address].running]
    return (running or holding or [None])[0]


def format_log_line(line):
    """
    :param line: ``(stamp, stream, text)``.
    :return: The text as the container wrote it.
    """
    return line[2]


@inlineCallbacks
def application_logs(state, agents, name, write, write_error, tail=None,
                     follow=False, clock=None, stopped=None):
    """
    Write an application's container output.

    :param ClusterState state: Every node's report.
    :param agents: Mapping of node address to ``INodeAgent``.
    :param str name: The application.
    :param write: Callable given each standard output line (no newline).
    :param write_error: Callable given each standard error line.
    :param tail: ``None`` for every line, else how many last lines.
    :param bool follow: Keep reading new output every
        :data:`FOLLOW_INTERVAL` seconds (needs ``clock``) until
        ``stopped`` fires.
    :param clock: ``IReactorTime`` for following.
    :param stopped: ``Deferred`` firing when following should end, or
        ``None`` to follow until the node fails to answer.
    :return: ``Deferred`` firing with the address of the node read from.
    :raises NoSuchApplication: If no node has a container of it.
    """
    address = find_application(state, name)
    if address is None:
        raise NoSuchApplication(name, len(state.nodes))
    ended = []
    if stopped is not None:
        stopped.addBoth(ended.append)
    since = None
    first = True
    while True:
        lines = yield agents[address].logs(name, since,
                                            tail if first else None)
        first = False
        for line in lines:
            (write_error if line[1] == "stderr" else write)(
                format_log_line(line))
        if lines:
            since = lines[-1][0]
        if not follow or ended:
            return address
        yield deferLater(clock, FOLLOW_INTERVAL, lambda: None)
        if ended:
            return address
