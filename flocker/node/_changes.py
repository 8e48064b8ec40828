"""
The leaf state changes of a plan.  Each is a value naming one node and one
operation of that node's ``INodeAgent``.
"""

import attr
from twisted.internet.defer import fail, gatherResults
from zope.interface import implementer

from .._change import IStateChange, ITransfer
from .._context import in_current_action
from pyrsistent import pmap

from .._model import Application, NodeKey
from ..volume._seed import seed_archive

__all__ = [
    "ExpectSenders",
    "CreateVolume", "SeedVolume", "PushVolume", "StopApplication",
    "CreateApplication", "DeleteStoppedApplication", "HandoffVolume",
    "StartApplication", "WaitForApplication", "SetRoutes", "SetLinks",
    "InstallNodeKey", "SetAutomatic", "describe_size",
    "PullImage", "DeleteVolume", "SetReplication", "TakeOverVolume",
    "FenceVolume",
]


def describe_size(value):
    """
    :param value: A number of bytes, or ``None``.
    :return: It for people: ``"512 B"``, ``"1.5 MiB"``, ``"unknown size"``.
    """
    if value is None:
        return "unknown size"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return ("%d %s" % (value, unit) if unit == "B"
                    else "%.1f %s" % (value, unit))
        value /= 1024.0


def _reporting(progress):
    # Agents are asked for progress only when someone listens, so agents
    # written before transfers reported any still serve.
    return {} if progress is None else {"progress": progress}


def _describe_sent(change, sent):
    """
    ``describe_result`` of the changes that send a volume.

    :param change: The change.
    :param sent: What its ``run`` fired with: the bytes sent.
    :return: ``"N sent"``, or ``None`` if ``sent`` is not a count.
    """
    if isinstance(sent, int) and not isinstance(sent, bool):
        return "%s sent" % (describe_size(sent),)
    return None


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class CreateVolume(object):
    """
    Create an application's volume on ``node``, owned by it.

    :ivar str node: Node address.
    :ivar str name: Volume name.
    :ivar maximum_size: Quota in bytes or ``None``.
    :ivar bool from_copy: The node holds a non-owned copy that it takes
        ownership of (recovering an interrupted move) instead of creating
        an empty volume; ``create_volume`` does this by itself, the flag only
        makes the plan say so.
    :ivar adopted: ``None``, or (for a copy the operator chose to adopt
        with ``--adopt-copy`` because the owner's copy is gone) the newest
        snapshot of the adopted copy, which the plan names.
    """
    node = attr.ib()
    name = attr.ib()
    maximum_size = attr.ib(default=None)
    from_copy = attr.ib(default=False)
    adopted = attr.ib(default=None)

    def run(self, agents):
        return agents[self.node].create_volume(self.name, self.maximum_size)

    def describe(self):
        if self.adopted is not None:
            return ("%s: adopt the older copy of volume %s (newest snapshot "
                    "%s; the owner's copy is gone)" % (
                        self.node, self.name, self.adopted or "none"))
        if self.from_copy:
            return "%s: take ownership of existing copy of volume %s" % (
                self.node, self.name)
        quota = ("" if self.maximum_size is None
                 else " (maximum %s)" % (describe_size(self.maximum_size),))
        return "%s: create volume %s%s" % (self.node, self.name, quota)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class SeedVolume(object):
    """
    Fill a volume just created on ``node`` with the content of a directory
    of the deploying machine (read when the change runs), once.

    :ivar str node: Node address.
    :ivar str name: Volume name.
    :ivar str directory: The directory on the deploying machine.
    """
    node = attr.ib()
    name = attr.ib()
    directory = attr.ib()

    def run(self, agents):
        # Read here, at run time: a plan shown by --dry-run reads nothing.
        # The archive is bounded by MAX_SEED_SIZE.
        try:
            archive = seed_archive(self.directory)
        except Exception:
            return fail()
        return agents[self.node].seed_volume(self.name, archive)

    def describe(self):
        return "%s: fill volume %s with %s (first deploy only)" % (
            self.node, self.name, self.directory)


@implementer(ITransfer)
@attr.s(frozen=True, slots=True)
class PushVolume(object):
    """
    Pre-copy a volume from ``node`` to ``target`` while its application still
    runs, so that the final increment of a move is small.

    :ivar str node: Address of the owner.
    :ivar str name: Volume name.
    :ivar str target: Address of the receiving node.
    :ivar estimated_bytes: Bytes expected to be sent, or ``None`` if unknown.
    :ivar bool replace_copy: The target holds a copy following an earlier
        owner (which would refuse this node's push): it is deleted first,
        and the push sends everything.
    """
    node = attr.ib()
    name = attr.ib()
    target = attr.ib()
    estimated_bytes = attr.ib(default=None)
    replace_copy = attr.ib(default=False)

    def run(self, agents, progress=None):
        def push(_=None):
            return agents[self.node].push_volume(self.name, self.target,
                                                 **_reporting(progress))
        if not self.replace_copy:
            return push()
        # Through the operator's own connection to the target: the owner's
        # node could not delete it (nor push into it).
        deleted = agents[self.target].delete_volume(self.name)
        return deleted.addCallback(in_current_action(push))

    def describe(self):
        size = ("size unknown" if self.estimated_bytes is None
                else "about " + describe_size(self.estimated_bytes))
        replacing = ("; replacing its copy, which follows an earlier owner"
                     if self.replace_copy else "")
        return "%s: push volume %s to %s (%s, application running%s)" % (
            self.node, self.name, self.target, size, replacing)

    describe_result = _describe_sent


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class StopApplication(object):
    """
    Stop and remove an application's container on ``node``.

    :ivar str node: Node address.
    :ivar str name: Application name.
    :ivar reason: ``None``, or why it stops to start again (``restart:``
        and what differs), for the plan to say.
    :ivar bool removal: The application is no longer in the files: the
        stop removes it (a destructive change, which a deploy makes only
        when confirmed).
    :ivar handoffs: ``(volume, target)`` pairs: the volumes the plan hands
        off from ``node`` once the application stopped, and where to.  The
        node is told before the stop, so the way for each final increment
        opens while the container stops (see
        :meth:`~flocker.node.INodeAgent.prepare_handoff`).
    :ivar bool keep: Stop the container without deleting it: the
        application moves away, and its container is deleted in the last
        phase, once the new one started (:class:`DeleteStoppedApplication`),
        so the delete is no part of the move's downtime.
    """
    node = attr.ib()
    name = attr.ib()
    reason = attr.ib(default=None)
    removal = attr.ib(default=False)
    handoffs = attr.ib(default=(), converter=tuple)
    keep = attr.ib(default=False)

    def __attrs_post_init__(self):
        if self.keep and self.removal:
            raise ValueError("a removed application's container is not kept")

    def run(self, agents):
        agent = agents[self.node]
        # Asked in the same turn as the stop, without waiting: the node
        # answers at once and opens the way while the container stops.
        prepared = [agent.prepare_handoff(volume, target).addErrback(
            # Only an optimisation: the hand-off opens its own way, and
            # fails by itself, naming the node, if it cannot.  The failed
            # call is in the deploy's log.
            lambda _: None) for volume, target in self.handoffs]
        # Asked with ``keep`` only when set, so doubles and agents that
        # predate it see the call they know.
        stopped = agent.stop_application(
            self.name, *((True,) if self.keep else ()))
        if not prepared:
            return stopped
        return gatherResults(prepared + [stopped], consumeErrors=True
                             ).addCallbacks(
            lambda _: None, lambda failure: failure.value.subFailure)

    def describe(self):
        if self.removal:
            return "%s: stop application %s (not in the files: removed)" % (
                self.node, self.name)
        if self.reason:
            return "%s: stop application %s (%s)" % (self.node, self.name,
                                                     self.reason)
        return "%s: stop application %s" % (self.node, self.name)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class CreateApplication(object):
    """
    Create the container of an application that moves to ``node`` while
    its old container still runs elsewhere, without starting it: the
    :class:`StartApplication` after the hand-off then only starts it (see
    :meth:`~flocker.node.INodeAgent.create_application`).

    :ivar str node: Node address.
    :ivar Application application: What will run.
    """
    node = attr.ib()
    application = attr.ib(validator=attr.validators.instance_of(Application))

    def run(self, agents):
        # Only an optimisation: the start creates the container itself
        # when this failed (and replaces one whose configuration differs),
        # so a failure here, which the node logs, does not stop the move.
        return agents[self.node].create_application(
            self.application).addErrback(lambda _: None)

    def describe(self):
        return "%s: create application %s's container (started after the " \
            "hand-off)" % (self.node, self.application.name)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class DeleteStoppedApplication(object):
    """
    Delete the container of an application that moved away from ``node``,
    which a :class:`StopApplication` with ``keep`` stopped (nothing if it
    is gone already).

    :ivar str node: Node address.
    :ivar str name: Application name.
    :ivar str target: Where the application runs now (for the plan to say).
    """
    node = attr.ib()
    name = attr.ib()
    target = attr.ib()

    def run(self, agents):
        return agents[self.node].stop_application(self.name)

    def describe(self):
        return ("%s: delete application %s's stopped container (it moved "
                "to %s)" % (self.node, self.name, self.target))


@implementer(ITransfer)
@attr.s(frozen=True, slots=True)
class HandoffVolume(object):
    """
    Send a stopped application's last volume increment from ``node`` to
    ``target`` and make ``target`` the owner.

    :ivar str node: Address of the current owner.
    :ivar str name: Volume name.
    :ivar str target: Address of the new owner.
    """
    node = attr.ib()
    name = attr.ib()
    target = attr.ib()

    def run(self, agents, progress=None):
        # In two calls, the second on the target, rather than one call on
        # the source that reaches the target itself: the caller usually
        # holds a session with the target already, the source would have
        # to start a process there while the application is down.
        target = agents[self.target]
        d = agents[self.node].release_volume(self.name, self.target,
                                             **_reporting(progress))

        def acquire(release):
            acquired = target.acquire_volume(self.name, release.snapshot,
                                             release.node_id)
            return acquired.addCallback(lambda _: release.bytes_sent)
        return d.addCallback(in_current_action(acquire))

    def describe(self):
        return "%s: hand off volume %s to %s" % (
            self.node, self.name, self.target)

    describe_result = _describe_sent


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class DeleteVolume(object):
    """
    Destroy ``node``'s copy of a volume: destructive, made only when the
    operator confirmed.

    :ivar str node: Node address.
    :ivar str name: Volume name.
    """
    node = attr.ib()
    name = attr.ib()

    #: Data is lost: a deploy asks first.
    destructive = True

    def run(self, agents):
        return agents[self.node].delete_volume(self.name)

    def describe(self):
        return "%s: delete volume %s (its data is lost)" % (self.node,
                                                            self.name)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class TakeOverVolume(object):
    """
    A failover: ``node``'s copy of a volume becomes the owned one, at a new
    epoch (its owner was declared dead).

    :ivar str node: Node address.
    :ivar str name: Volume name.
    :ivar int epoch: The new ownership's epoch.
    :ivar str dead: The address of the node declared dead (for the plan's
        text).
    """
    node = attr.ib()
    name = attr.ib()
    epoch = attr.ib()
    dead = attr.ib()

    def run(self, agents):
        return agents[self.node].take_over_volume(self.name, self.epoch)

    def describe(self):
        return ("%s: take over volume %s from its copy (epoch %d; %s is "
                "declared dead)" % (self.node, self.name, self.epoch,
                                    self.dead))


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class FenceVolume(object):
    """
    Tell ``node`` that node ``owner`` owns a volume at ``epoch``: its
    follower copy records it; its stale owned copy is set aside, renamed
    for recovery (never destroyed).

    :ivar str node: Node address.
    :ivar str name: Volume name.
    :ivar str owner: The owner's node identity.
    :ivar int epoch: The owner's epoch.
    :ivar bool stale: ``node`` holds a stale owned copy (for the plan's
        text).
    """
    node = attr.ib()
    name = attr.ib()
    owner = attr.ib()
    epoch = attr.ib()
    stale = attr.ib(default=False)

    def run(self, agents):
        return agents[self.node].fence_volume(self.name, self.owner,
                                              self.epoch)

    def describe(self):
        if self.stale:
            return ("%s: set aside its stale copy of volume %s for recovery "
                    "(the volume failed over; now epoch %d)" % (
                        self.node, self.name, self.epoch))
        return "%s: follow volume %s at epoch %d" % (
            self.node, self.name, self.epoch)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class PullImage(object):
    """
    Pull an image ``node`` lacks, before anything is stopped.

    :ivar str node: Node address.
    :ivar str image: The image reference.
    """
    node = attr.ib()
    image = attr.ib()

    def run(self, agents):
        return agents[self.node].pull_image(self.image)

    def describe(self):
        return "%s: pull image %s (not on the node)" % (self.node, self.image)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class StartApplication(object):
    """
    Create and start an application's container on ``node``.

    :ivar str node: Node address.
    :ivar Application application: What to run.
    :ivar reason: ``None``, or why it starts again where it ran
        (``restart:`` and what differs, or that it was stopped).
    """
    node = attr.ib()
    application = attr.ib(validator=attr.validators.instance_of(Application))
    reason = attr.ib(default=None)

    def run(self, agents):
        return agents[self.node].start_application(self.application)

    def describe(self):
        return "%s: start application %s (image %s%s)" % (
            self.node, self.application.name, self.application.image,
            "; " + self.reason if self.reason else "")


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class WaitForApplication(object):
    """
    Wait on ``node`` until application ``name`` meets ``condition``, before
    the applications depending on it start (see
    :meth:`flocker.node.INodeAgent.wait_for_application`).

    :ivar str node: Node address.
    :ivar str name: Application name.
    :ivar str condition: ``service_healthy`` or
        ``service_completed_successfully``.
    :ivar timeout: Seconds allowed.
    """
    node = attr.ib()
    name = attr.ib()
    condition = attr.ib()
    timeout = attr.ib()

    def run(self, agents):
        return agents[self.node].wait_for_application(
            self.name, self.condition, self.timeout)

    def describe(self):
        what = ("to be healthy" if self.condition == "service_healthy"
                else "to finish successfully")
        return "%s: wait for application %s %s (at most %g s)" % (
            self.node, self.name, what, self.timeout)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class SetRoutes(object):
    """
    Make ``node``'s routes exactly ``routes``.

    :ivar str node: Node address.
    :ivar routes: ``frozenset`` of :class:`Route`.
    """
    node = attr.ib()
    routes = attr.ib(converter=frozenset)

    def run(self, agents):
        return agents[self.node].set_routes(self.routes)

    def describe(self):
        if not self.routes:
            return "%s: remove all routes" % (self.node,)
        shown = ", ".join(
            "%d%s->%s" % (r.port, "" if r.protocol == "tcp" else "/udp",
                          r.address)
            for r in sorted(self.routes, key=lambda r: (r.port, r.protocol,
                                                        r.address)))
        return "%s: set routes %s" % (self.node, shown)


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class SetLinks(object):
    """
    Make the links of application ``name``, running on ``node``, exactly
    ``links``, without restarting it: its project's names changed (an
    application was added or removed), or its link rules were lost when
    Docker restarted it.

    :ivar str node: Node address.
    :ivar str name: Application name.
    :ivar links: ``frozenset`` of :class:`flocker.Link`.
    """
    node = attr.ib()
    name = attr.ib()
    links = attr.ib(converter=frozenset)

    def run(self, agents):
        return agents[self.node].set_links(self.name, self.links)

    def describe(self):
        names = sorted({link.alias for link in self.links if link.named})
        return ("%s: update the links of application %s in place "
                "(%d link%s%s)" % (
                    self.node, self.name, len(self.links),
                    "" if len(self.links) == 1 else "s",
                    "; names " + ", ".join(names) if names else ""))


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class SetAutomatic(object):
    """
    Tell ``node`` which applications fail over automatically (see
    :meth:`flocker.node.INodeAgent.set_automatic`).

    :ivar str node: Node address.
    :ivar applications: ``PVector`` of
        :class:`~flocker.node._automatic.AutomaticApplication`.
    """
    node = attr.ib()
    applications = attr.ib()

    def run(self, agents):
        return agents[self.node].set_automatic(self.applications)

    def describe(self):
        return "%s: automatic failover of %s" % (
            self.node, ", ".join(a.name for a in self.applications))


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class InstallNodeKey(object):
    """
    Install the nodes' trust on ``node``: the known_hosts and each other
    node's key (see :meth:`flocker.node.INodeAgent.install_node_key`).

    :ivar str node: Node address.
    :ivar NodeKey key: What to install.
    """
    node = attr.ib()
    key = attr.ib(validator=attr.validators.instance_of(NodeKey))

    def run(self, agents):
        return agents[self.node].install_node_key(self.key)

    def describe(self):
        hosts = len(self.key.known_hosts.splitlines())
        keys = len(self.key.peers.splitlines())
        return ("%s: install node-to-node SSH trust (known hosts: %d node%s, "
                "node keys: %d)" % (self.node, hosts,
                                    "" if hosts == 1 else "s", keys))


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class SetReplication(object):
    """
    Make the volumes ``node`` replicates to standby nodes exactly
    ``replications`` (see :meth:`flocker.node.INodeAgent.set_replication`).

    :ivar str node: Node address.
    :ivar replications: ``PMap`` of volume name to ``Replication``.
    """
    node = attr.ib()
    replications = attr.ib(converter=pmap)

    def run(self, agents):
        return agents[self.node].set_replication(self.replications)

    def describe(self):
        if not self.replications:
            return "%s: replicate no volume to standbys" % (self.node,)
        # Imported here: the interval's written form belongs to the
        # deployment file's reader.
        from ._standby_config import interval_text
        return "%s: replicate %s" % (self.node, "; ".join(
            "%s to %s every %s" % (name, ", ".join(r.standbys),
                                   interval_text(r.interval))
            for name, r in sorted(self.replications.items())))


@implementer(IStateChange)
@attr.s(frozen=True, slots=True)
class ExpectSenders(object):
    """
    Make ``node``'s record of expected senders exactly ``senders`` (see
    :meth:`flocker.node.INodeAgent.expect_senders`).

    :ivar str node: Node address.
    :ivar senders: ``PMap`` of volume name to a ``frozenset`` of node
        identities.
    :ivar addresses: ``PMap`` of node identity to address, for the plan to
        name nodes as the deployment does.
    """
    node = attr.ib()
    senders = attr.ib(converter=pmap)
    addresses = attr.ib(default=pmap(), converter=pmap, eq=False)

    def run(self, agents):
        return agents[self.node].expect_senders(self.senders)

    def describe(self):
        if not self.senders:
            return "%s: expect no volume from other nodes" % (self.node,)
        return "%s: expect %s" % (self.node, "; ".join(
            "%s from %s" % (name, ", ".join(sorted(
                self.addresses.get(node, node) for node in nodes)))
            for name, nodes in sorted(self.senders.items())))
