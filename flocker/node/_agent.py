"""
The node agent: everything a plan's leaves ask of one node.

``INodeAgent`` is implemented on the node itself (acting on Docker, ZFS and
iptables directly), by the deploy client (running ``flocker-node`` over SSH),
and in memory for tests.
"""

from zope.interface import Interface

__all__ = ["INodeAgent"]


class INodeAgent(Interface):
    """
    Operations on one node.  Every method returns a ``Deferred``; every
    method is idempotent, so an interrupted deploy can simply be run again.
    """

    def report():
        """
        Learn the node's current state.

        :return: ``Deferred`` firing with a ``NodeState``.
        """

    def start_application(application):
        """
        Create and start the application's container, replacing a stopped
        Flocker container of the same name.  Its volume (if any) must be owned
        by this node; link rules are installed in the container.

        :param Application application: What to run.
        :return: ``Deferred`` firing with ``None``.
        """

    def stop_application(name):
        """
        Stop and remove the application's container; nothing if absent.

        :param str name: Application name.
        :return: ``Deferred`` firing with ``None``.
        """

    def create_volume(name, maximum_size):
        """
        Create the application's volume, owned by this node; nothing if this
        node already owns it.  If the node holds a non-owned copy (left by an
        interrupted move), it takes ownership of that copy instead: data is
        never replaced by an empty volume.

        :param str name: Volume (application) name.
        :param maximum_size: Quota in bytes or ``None``.
        :return: ``Deferred`` firing with ``None``.
        """

    def push_volume(name, target):
        """
        Copy the volume's current data to node ``target`` without giving up
        ownership (the pre-copy of a move, while the application runs).

        :param str name: Volume name.
        :param str target: Address of the receiving node.
        :return: ``Deferred`` firing with the number of bytes sent.
        """

    def handoff_volume(name, target):
        """
        Send the last increment to ``target`` and make it the volume's owner;
        this node keeps a non-owned copy.  The application must be stopped.

        :param str name: Volume name.
        :param str target: Address of the new owner.
        :return: ``Deferred`` firing with the number of bytes sent.
        """

    def set_routes(routes):
        """
        Make the node's routes exactly ``routes``.

        :param routes: ``frozenset`` of ``Route``.
        :return: ``Deferred`` firing with ``None``.
        """
