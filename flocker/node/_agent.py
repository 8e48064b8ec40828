"""
The node agent: everything a plan's leaves ask of one node.

``INodeAgent`` is implemented on the node itself (acting on Docker, ZFS and
iptables directly), by the deploy client (running ``flocker-node`` over SSH),
and in memory for tests.
"""

import attr
from zope.interface import Interface

__all__ = ["INodeAgent", "VolumeRelease", "ApplicationNotReady"]


class ApplicationNotReady(Exception):
    """
    An application others depend on did not become ready (healthy, or
    finished with status 0) in time, or cannot.

    :ivar str name: The application.
    :ivar str reason: Why, for people.
    """

    def __init__(self, name, reason):
        Exception.__init__(self, name, reason)
        self.name = name
        self.reason = reason

    def __str__(self):
        return "application %s is not ready: %s" % (self.name, self.reason)


@attr.s(frozen=True, slots=True)
class VolumeRelease(object):
    """
    What a node that released a volume to another tells the new owner, who
    acquires with it (see :meth:`INodeAgent.release_volume`).

    :ivar int bytes_sent: Bytes of the last increment (``0`` if it had been
        sent before).
    :ivar str snapshot: The snapshot the new owner's copy must end with.
    :ivar str node_id: The identity of the node the volume was released to.
    """
    bytes_sent = attr.ib(validator=attr.validators.instance_of(int))
    snapshot = attr.ib(validator=attr.validators.instance_of(str))
    node_id = attr.ib(validator=attr.validators.instance_of(str))

    def __attrs_post_init__(self):
        if self.bytes_sent < 0:
            raise ValueError("bytes_sent must not be negative")


class INodeAgent(Interface):
    """
    Operations on one node.  Every method returns a ``Deferred``; every
    method is idempotent, so an interrupted deploy can simply be run again.

    The volume transfers (``push_volume``, ``handoff_volume``,
    ``release_volume``) take an optional ``progress`` object, the same kind
    the volume service's ``push`` takes: its ``update(sent, total)`` is
    called with the bytes sent so far and the bytes to send in all
    (``None`` when unknown), its ``finish()`` once sending stopped.  An
    agent may call ``update`` any number of times, none included (nothing
    to send, or a node that cannot tell), so callers use it for display
    only; the result is what counts.
    """

    def wait_for_application(name, condition, timeout):
        """
        Wait until the application's container meets ``condition``, as the
        applications that depend on it need before they start.

        :param str name: Application name.
        :param str condition: ``service_healthy`` (its healthcheck passes),
            ``service_completed_successfully`` (it exited with status 0) or
            ``service_started`` (its container runs or ran).
        :param timeout: Seconds to wait at most.
        :return: ``Deferred`` firing with ``None``; failing with
            :class:`ApplicationNotReady` naming the application when the
            time is up, the check reports it unhealthy at the end, it
            exited with another status, or it has no container.
        """

    def report():
        """
        Learn the node's current state.

        :return: ``Deferred`` firing with a ``NodeState``.
        """

    def start_application(application):
        """
        Create and start the application's container, replacing a stopped
        Flocker container of the same name.  Its volumes (its own and its
        named ones, if any) must be owned by this node; link rules are
        installed in the container.

        :param Application application: What to run.
        :return: ``Deferred`` firing with ``None``.
        """

    def create_application(application):
        """
        Create the application's container without starting it, as
        :meth:`start_application` would, so that its start then only
        starts it: a move creates the new container while the old one
        still runs.  Its volumes' copies must be on this node, owned or
        not (the container is bound to where they are mounted; nothing is
        mounted, and nothing runs, until the start, which needs them
        owned).  Idempotent.

        :param Application application: What to run.
        :return: ``Deferred`` firing with ``None``.
        """

    def set_links(name, links):
        """
        Make the running application's links exactly ``links``, in place:
        its link rules, and the names of its ``/etc/hosts`` that the named
        links give (see :mod:`flocker.node._names`).  The container is not
        restarted, so a project's names change when an application is added
        or removed without recreating the others.

        :param str name: Application name.
        :param links: The ``Link`` values the application should have.
        :return: ``Deferred`` firing with ``None``; failing if the
            application's container does not run.
        """

    def stop_application(name, keep=False):
        """
        Stop and remove the application's container; nothing if absent.

        :param str name: Application name.
        :param bool keep: Stop the container without deleting it (a move's
            old container, deleted once the new one started: a later
            ``stop_application`` of the name deletes it).
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

    def seed_volume(name, archive):
        """
        Fill the volume, owned by this node, with the content of a
        directory of the deploying machine, sent as a tar archive: once,
        only while the volume holds nothing (so running it again, or after
        the application wrote, changes nothing).

        :param str name: Volume name.
        :param bytes archive: An uncompressed tar archive of files and
            directories (at most ``flocker.volume._seed.MAX_SEED_SIZE`` bytes).
        :return: ``Deferred`` firing with ``True`` if the volume was
            filled, ``False`` if it held something and was left alone;
            failing if this node does not own the volume or the archive is
            not an acceptable seed.
        """

    def push_volume(name, target, progress=None):
        """
        Copy the volume's current data to node ``target`` without giving up
        ownership (the pre-copy of a move, while the application runs).

        :param str name: Volume name.
        :param str target: Address of the receiving node.
        :param progress: ``None``, or an object told how far the data
            went: ``update(sent, total)`` as it is sent (``total`` may be
            ``None`` when unknown) and ``finish()`` when it stopped; see
            the interface documentation.
        :return: ``Deferred`` firing with the number of bytes sent.
        """

    def prepare_handoff(name, target):
        """
        Start opening the way for the hand-off of volume ``name`` to node
        ``target`` that comes next, so that once the application stopped
        its final increment goes at once: this node opens the receiving end
        of that push on ``target`` now (see ``IVolumeService.prepare_push``).
        Answers at once, without waiting for it; the hand-off uses it, or
        opens its own if it failed or was not used in time (then it is
        closed, changing nothing).  Only an optimisation: nothing else
        changes, so it may be asked any number of times.

        :param str name: Volume name.
        :param str target: Address of the new owner to be.
        :return: ``Deferred`` firing with ``None``.
        """

    def handoff_volume(name, target, progress=None):
        """
        Send the last increment to ``target`` and make it the volume's owner;
        this node keeps a non-owned copy.  The application must be stopped.

        :param str name: Volume name.
        :param str target: Address of the new owner.
        :param progress: ``None``, or an object told how far the data
            went: ``update(sent, total)`` as it is sent (``total`` may be
            ``None`` when unknown) and ``finish()`` when it stopped; see
            the interface documentation.
        :return: ``Deferred`` firing with the number of bytes sent.
        """

    def release_volume(name, target, progress=None):
        """
        The first half of a hand-off: send the last increment to ``target``
        and give up ownership to it, without making it the owner yet (its
        :meth:`acquire_volume` does that).  In between, no node owns the
        volume, so none writes to it.  The application must be stopped.
        Running it again before the target acquired sends nothing more.

        :param str name: Volume name.
        :param str target: Address of the new owner.
        :param progress: ``None``, or an object told how far the data
            went: ``update(sent, total)`` as it is sent (``total`` may be
            ``None`` when unknown) and ``finish()`` when it stopped; see
            the interface documentation.
        :return: ``Deferred`` firing with a :class:`VolumeRelease`.
        """

    def acquire_volume(name, snapshot, node_id):
        """
        The second half of a hand-off, on the new owner: take ownership of
        the copy released to this node.  Nothing if it already owns it.

        :param str name: Volume name.
        :param str snapshot: The snapshot the copy must end with (from the
            :class:`VolumeRelease`).
        :param str node_id: This node's identity as the old owner knew it.
        :return: ``Deferred`` firing with ``None``; failing if the copy does
            not end with ``snapshot`` or this node is not ``node_id``.
        """

    def take_over_volume(name, epoch):
        """
        A failover, on the node chosen to hold the volume from now on: make
        this node's copy (a follower of a node declared dead) the owned one,
        at ``epoch``.  Nothing if it already owns it at ``epoch``.

        :param str name: Volume name.
        :param int epoch: The new ownership's epoch, above every copy's the
            caller knows of.
        :return: ``Deferred`` firing with ``None``; failing if the node has
            no copy or its copy's epoch is not below ``epoch``.
        """

    def fence_volume(name, owner, epoch):
        """
        A failover, on every other node: learn that node ``owner`` owns the
        volume at ``epoch``.  A follower records it (and refuses the old
        owner's pushes from then on); a copy this node owns at an earlier
        epoch is stale and is set aside, renamed for recovery, with every
        write it holds (see ``IVolumeService.fence``).  Its application must
        be stopped.

        :param str name: Volume name.
        :param str owner: The owner's node identity.
        :param int epoch: Its epoch.
        :return: ``Deferred`` firing with the name the stale copy was set
            aside as, or ``None``.
        """

    def set_routes(routes):
        """
        Make the node's routes exactly ``routes``.

        :param routes: ``frozenset`` of ``Route``.
        :return: ``Deferred`` firing with ``None``.
        """

    def set_replication(replications):
        """
        Make the volumes this node replicates to standby nodes exactly
        ``replications``, from now on and after a restart of its agent (see
        :mod:`flocker.node._replication`): every interval the node sends
        each standby what changed in each of them, while it owns it.
        Afterwards :meth:`report` gives them in ``NodeState.replication``,
        with how far behind each standby is.

        :param replications: ``PMap`` of volume name to ``Replication``.
        :return: ``Deferred`` firing with ``None``.
        """

    def expect_senders(senders):
        """
        Make this node's record of *expected senders* exactly ``senders``,
        from now on and after a restart of its agent: for each volume, the
        nodes it may receive a first copy of it from, where it has no copy
        (see :mod:`flocker.node._senders`).  A push from any other node of
        a volume this node has no copy of is refused before anything is
        received.  Afterwards :meth:`report` gives it in
        ``NodeState.expected_senders``.

        :param senders: ``PMap`` of volume name to a ``frozenset`` of node
            identities.
        :return: ``Deferred`` firing with ``None``.
        """

    def set_automatic(applications):
        """
        Tell the node which applications the cluster fails over by itself
        (``automatic: true``), from now on and after its agent restarts:
        it holds an etcd lease while it runs one of them, takes one over
        when it is a standby and the holder's lease ended, and routes each
        one's ports to wherever etcd says it runs (see docs/etcd.rst).  A
        node without etcd refuses a non-empty list.

        :param applications: ``PVector`` of
            :class:`~flocker.node._automatic.AutomaticApplication`.
        :return: ``Deferred`` firing with ``None``.
        """

    def pull_image(image, dry_run=False):
        """
        Make sure the image is on the node, pulling it from its registry if
        it is not; with ``dry_run``, only ask the registry whether it has
        it (nothing is downloaded).  A deploy pulls (or asks) before it
        stops anything, so an image that cannot be had fails the deploy
        while the old container still runs.

        :param str image: An image reference.
        :param bool dry_run: Only ask.
        :return: ``Deferred`` firing with ``None``; failing with one line
            naming the image, the node and what to do if it cannot be
            pulled.
        """

    def logs(name, since=None, tail=None):
        """
        Read the output of the application's container on this node.

        :param str name: Application name.
        :param since: ``None``, or the time stamp of the last line already
            read (as returned): only later lines are returned.
        :param tail: ``None`` for every line, else the number of last lines.
        :return: ``Deferred`` firing with a ``list`` of ``(stamp, stream,
            text)`` tuples of ``str``, oldest first: an RFC 3339 time stamp,
            ``"stdout"`` or ``"stderr"``, the line without its newline.
            Failing if the node has no container of that application.
        """

    def delete_volume(name):
        """
        Destroy this node's copy of the volume and its snapshots (owned or
        not); nothing if the node holds none.  Refused while the volume is
        in use.  Data is lost: a deploy does it only when the operator
        confirmed (``flocker-deploy --remove APP --with-volumes``).

        :param str name: Volume name.
        :return: ``Deferred`` firing with ``None``.
        """

    def doctor():
        """
        Check that this node is ready for deploys (see
        :mod:`flocker.node._doctor`): Docker, the pool and its ZFS, iptables,
        sshd, the agent, the node key, the clock.

        :return: ``Deferred`` firing with a
            :class:`~flocker.node._doctor.DoctorReport` (a failed check is in
            the report, not a failure).
        """

    def install_node_key(node_key):
        """
        Install the nodes' trust: the known_hosts file this node's pushes
        check host keys against, and one marked ``authorized_keys`` line
        per other node's key, ``from=`` that node's addresses, letting it
        in as that node and only to push a volume.  Afterwards
        :meth:`report`'s ``node_key.installed`` is ``node_key.digest()``.

        :param NodeKey node_key: The nodes' host keys and node keys.
        :return: ``Deferred`` firing with ``None``.
        """

    def rotate_node_key(step):
        """
        One step of replacing this node's own key pair (the deploy client's
        ``--rotate-node-keys`` runs them, installing the nodes' trust
        between them, so that every push is accepted throughout).

        :param str step: ``"prepare"``: make the next key pair (the report
            then lists it as ``pending_public_key``), pushes still use the
            current one; ``"finish"``: switch to the next key, refused
            unless the installed trust lists it.
        :return: ``Deferred`` firing with ``None``.
        """
