"""
Automatic failover, as the node agent runs it: who may run an application
is decided in etcd (see docs/etcd.rst), never by the agents among
themselves.

For each application with ``automatic: true`` the agent of every node
involved (the application's node and its standbys) runs one
:class:`AutomaticFailover`:

* the node running it *holds* it: a :class:`~flocker.etcd.LeaseKeeper`
  lease to which the owner key ``flocker/v1/owner/APP`` is attached; when
  the lease can no longer be renewed the agent stops the application itself
  (the fence) before etcd can have ended the lease;
* each standby watches the owner keys; when the owner key of an
  application it stands by for disappears (the lease ended), it publishes
  its copy's freshness (epoch, newest snapshot) under
  ``flocker/v1/copy/APP/NODE`` on a lease of its own; once every standby
  answered, or a lease's time to live passed, the freshest copy's node
  claims the application in one transaction (the owner key is absent and
  the epoch is the one it read), starting it at the next epoch;
* every node watches ``flocker/v1/placement/`` and points its routes for
  the application's ports at the node named there;
* a standby that took an application over replicates its volumes to the
  application's other standbys, and those, seeing the takeover's placement
  (which names the new owner's identity), make their copies follow it.

The node's work (stopping, starting at an epoch, routes, reading its copy)
goes through :class:`IFailoverActions`, so this module decides and the
agent acts.
"""

import json

import attr
from eliot import start_action, write_failure
from pyrsistent import pmap, pvector
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from .._model import Replication, Route
from .._openssl import ETCD_ENDPOINTS
from ._automatic_config import AutomaticApplication, automatic_applications
from ._lock import node_file_path
from ._state_file import load_list, save_list
from ..etcd import (
    Compare, DEFAULT_TIMING, Delete, EtcdClient, EtcdError, EtcdTLS,
    EtcdUnavailable, LeaseKeeper, Put, WatchLost,
)
from ..etcd._logging import LEASE_CLAIM, LEASE_RETAKE

__all__ = [
    "IFailoverActions", "AutomaticApplication", "AutomaticFailover",
    "automatic_applications", "LocalFailoverActions", "AutomaticStore",
    "automatic_failover", "default_automatic_path", "ETCD_ENDPOINTS",
    "CopyFreshness", "PlacementRefused", "owner_key", "epoch_key",
    "placement_key", "copy_key", "PREFIX", "choose_claimant",
]

#: Where Flocker's keys live in etcd.
PREFIX = b"flocker/v1/"

#: Seconds before a lost watch is set up again.
REWATCH_DELAY = 1.0


def owner_key(application):
    """
    :return: The key naming ``application``'s running node (on its lease).
    """
    return PREFIX + b"owner/" + application.encode("ascii")


def epoch_key(application):
    """
    :return: The key holding ``application``'s current epoch.
    """
    return PREFIX + b"epoch/" + application.encode("ascii")


def placement_key(application):
    """
    :return: The key naming where ``application`` runs now.
    """
    return PREFIX + b"placement/" + application.encode("ascii")


def copy_key(application, node):
    """
    :return: The key of ``node``'s copy of ``application``'s volumes during
        a takeover.
    """
    return PREFIX + b"copy/%s/%s" % (application.encode("ascii"),
                                     node.encode("ascii"))


class PlacementRefused(Exception):
    """
    This node may not run the application: etcd says another node runs it,
    or ran it at a later epoch (an automatic failover moved it there).

    :ivar str application: The application.
    :ivar str node: Where it runs now.
    :ivar int epoch: That ownership's epoch.
    """

    def __init__(self, application, node, epoch):
        Exception.__init__(self, application, node, epoch)
        self.application = application
        self.node = node
        self.epoch = epoch

    def __str__(self):
        return ("application %s runs on %s since an automatic failover "
                "(epoch %d): deploy with the placement flocker-deploy "
                "--status shows, or move it with --failover" % (
                    self.application, self.node, self.epoch))


@attr.s(frozen=True)
class CopyFreshness(object):
    """
    How fresh one node's copy of an application's volumes is.

    :ivar str node: The node.
    :ivar int epoch: The copy's epoch.
    :ivar latest: The name of its newest snapshot, or ``None``.  Snapshot
        names are the time their primary took them (``flocker-YYYYmmdd
        THHMMSS.ffffffZ``), so the later name is the fresher copy.
    """
    node = attr.ib()
    epoch = attr.ib()
    latest = attr.ib(default=None)

    def to_bytes(self):
        return json.dumps({"node": self.node, "epoch": self.epoch,
                           "latest": self.latest}).encode("ascii")

    @classmethod
    def from_bytes(cls, data):
        value = json.loads(data.decode("ascii"))
        return cls(node=value["node"], epoch=int(value["epoch"]),
                   latest=value.get("latest"))


def choose_claimant(copies, standbys):
    """
    Decide which standby starts an application, from the copies reported.

    :param copies: :class:`CopyFreshness` of the standbys that answered.
    :param standbys: The standbys in the operator's order of preference.
    :return: The address of the freshest copy's node: highest epoch, then
        newest snapshot, then the operator's preference; ``None`` if no
        copy was reported.
    """
    order = list(standbys)
    copies = [copy for copy in copies if copy.node in order]
    if not copies:
        return None

    def rank(copy):
        return (copy.epoch, copy.latest or "", -order.index(copy.node))
    return max(copies, key=rank).node


class IFailoverActions(Interface):
    """
    What automatic failover asks of its node.  Each method returns a
    ``Deferred``.
    """

    def stop(name):
        """
        Stop the application (a fence: its lease may end soon).

        :param str name: The application.
        :return: ``Deferred`` firing with ``None``.
        """

    def start(name, epoch):
        """
        Take ownership of this node's copy of the application's volumes at
        ``epoch`` and start the application.

        :param str name: The application.
        :param int epoch: The new ownership's epoch.
        :return: ``Deferred`` firing with ``None``.
        """

    def copy_freshness(name):
        """
        :param str name: The application.
        :return: ``Deferred`` firing with ``(epoch, latest)`` of this node's
            copy of its volumes (``latest``: the name of its newest
            snapshot, or ``None``), or ``None`` if it holds no copy.
        """

    def follow(name, node, ports):
        """
        Point this node's routes for ``ports`` at ``node`` (none when
        ``node`` is this one: it publishes them itself).

        :param str name: The application.
        :param str node: Where it runs now.
        :param ports: Its external ports.
        :return: ``Deferred`` firing with ``None``.
        """

    def identity():
        """
        :return: ``Deferred`` firing with this node's identity (what its
            copies' followers record as their owner), or ``None`` when it
            has none (no pool).
        """

    def follow_copy(name, owner, epoch):
        """
        Make this node's copy of the application's volumes follow node
        ``owner`` at ``epoch`` (a standby took it over): from then on it
        takes the new owner's pushes and refuses the old owner's.

        :param str name: The application.
        :param str owner: The new owner's identity.
        :param int epoch: The takeover's epoch.
        :return: ``Deferred`` firing with ``None``.
        """


@implementer(IFailoverActions)
class LocalFailoverActions(object):
    """
    :class:`IFailoverActions` on this node, through its local agent, its
    volume service and its route manager.
    """

    def __init__(self, address, agent, volumes, routes, applications,
                 replicator=None):
        """
        :param str address: This node's address.
        :param agent: Callable returning this node's ``INodeAgent``.
        :param volumes: Callable returning the current ``IVolumeService``.
        :param routes: ``IRouteManager`` provider.
        :param applications: Callable given a name, returning its
            :class:`AutomaticApplication` (or ``None``).
        :param replicator: The node's
            :class:`~flocker.node._replication.Replicator`, or ``None``
            (then a takeover replicates nothing).
        """
        self._address = address
        self._agent = agent
        self._volumes = volumes
        self._routes = routes
        self._applications = applications
        self._replicator = replicator

    def stop(self, name):
        d = self._agent().stop_application(name)
        # Stopped by a fence or for a newer owner: this node's copy is no
        # longer the one to send anywhere (even if stopping failed).
        d.addBoth(lambda result: self._unreplicate(name).addCallback(
            lambda _: result))
        return d

    def _unreplicate(self, name):
        """
        Stop replicating ``name``'s volumes from this node; other volumes'
        replication goes on.
        """
        application = self._applications(name)
        if self._replicator is None or application is None:
            return succeed(None)
        current = self._replicator.replications()
        kept = current
        for volume in application.volumes:
            kept = kept.discard(volume)
        if kept == current:
            return succeed(None)
        return self._replicator.configure(kept)

    def _replicate(self, application):
        """
        Replicate ``application``'s volumes from this node (which just took
        it over) to its other standbys, at its standby's interval; the
        other volumes' replication goes on unchanged.
        """
        others = [node for node in application.standbys
                  if node != self._address]
        if self._replicator is None or not others:
            return succeed(None)
        current = self._replicator.replications()
        wanted = current
        for volume in application.volumes:
            wanted = wanted.set(volume, Replication(
                volume=volume, application=application.name,
                standbys=others, interval=application.interval))
        return self._replicator.configure(wanted)

    def identity(self):
        return succeed(getattr(self._volumes(), "node_id", None))

    @inlineCallbacks
    def follow_copy(self, name, owner, epoch):
        application = self._applications(name)
        if application is None:
            return
        agent = self._agent()
        for volume in application.volumes:
            yield agent.fence_volume(volume, owner, epoch)

    @inlineCallbacks
    def start(self, name, epoch):
        application = self._applications(name)
        if application is None or application.application is None:
            raise ValueError("no definition of %s to start" % (name,))
        agent = self._agent()
        # The standby's copy becomes the owned one at the claim's epoch,
        # above every copy's: the old owner's pushes are refused from then
        # on, and its copy is set aside when it comes back.
        for volume in application.volumes:
            yield agent.take_over_volume(volume, epoch)
        yield agent.start_application(application.application)
        # Without waiting for the operator's deploy: the other standbys'
        # copies follow this node from its placement on.
        yield self._replicate(application)

    @inlineCallbacks
    def copy_freshness(self, name):
        application = self._applications(name)
        if application is None or not application.volumes:
            return None
        copies = {info.name: info for info in
                  (yield self._volumes().volumes())}
        if not all(volume in copies for volume in application.volumes):
            return None
        # A copy is as fresh as the least fresh of its volumes.
        epoch = min(copies[volume].epoch for volume in application.volumes)
        latest = min((copies[volume].snapshots or [""])[-1]
                     for volume in application.volumes)
        return (epoch, latest or None)

    @inlineCallbacks
    def follow(self, name, node, ports):
        current = yield self._routes.get_routes()
        routed = set(ports)
        wanted = {route for route in current
                  if (route.port, route.protocol) not in routed}
        if node != self._address:
            wanted.update(Route(port=port, address=node, protocol=protocol)
                          for port, protocol in routed)
        if wanted != set(current):
            yield self._routes.set_routes(frozenset(wanted))


class AutomaticStore(object):
    """
    The automatic applications a node was told about, on disk (one JSON
    document, replaced atomically), so that an agent restarted goes on
    taking part before the next deploy.
    """

    def __init__(self, path):
        """
        :param str path: The file.
        """
        self.path = path

    def load(self):
        """
        :return: ``PVector`` of :class:`AutomaticApplication`; empty without
            a file.
        :raises SerializationError: For a file this store did not write.
        """
        return pvector(AutomaticApplication.from_dict(item)
                       for item in load_list(self.path))

    def save(self, applications):
        """
        :param applications: Iterable of :class:`AutomaticApplication`.
        """
        save_list(self.path, [a.to_dict() for a in applications])


def _owner(kv):
    """
    :return: ``(node, epoch)`` of an owner or placement value.
    """
    value = json.loads(kv.value.decode("ascii"))
    return value["node"], int(value["epoch"])


def _identity(kv):
    """
    :return: The owner's identity a takeover's placement value names, or
        ``None`` (a placement made by a deploy's hold names none).
    """
    value = json.loads(kv.value.decode("ascii"))
    identity = value.get("node_id")
    return identity if isinstance(identity, str) else None


def _placement_value(node, epoch, node_id=None):
    value = {"node": node, "epoch": epoch}
    if node_id is not None:
        value["node_id"] = node_id
    return json.dumps(value).encode("ascii")


class AutomaticFailover(object):
    """
    One agent's part in automatic failover (see the module docstring).

    :ivar held: ``dict`` of application name to the :class:`LeaseKeeper`
        holding it on this node.
    :ivar placements: ``dict`` of application name to ``(node, epoch)`` as
        last seen in etcd.
    """

    def __init__(self, clock, etcd, address, actions, timing=DEFAULT_TIMING,
                 store=None, on_change=None):
        """
        :param clock: ``IReactorTime`` provider.
        :param etcd: ``IEtcd`` provider.
        :param str address: This node's address.
        :param actions: :class:`IFailoverActions` provider.
        :param LeaseTiming timing: Times of the leases held.
        :param store: An :class:`AutomaticStore` keeping the configuration
            across restarts (read at construction), or ``None``.
        :param on_change: Called with no argument whenever a placement
            changes (the agent's kept report is then stale), or ``None``.
        """
        self._clock = clock
        self._etcd = etcd
        self.address = address
        self._actions = actions
        self._timing = timing
        self._store = store
        self._on_change = on_change or (lambda: None)
        self._applications = pmap()
        if store is not None:
            self._applications = pmap({a.name: a for a in store.load()})
        self._owners = set()
        self.held = {}
        self.epochs = {}
        self.placements = {}
        self._takeovers = {}
        self._watches = []
        self._stopped = False

    # Configuration ----------------------------------------------------------

    def configure(self, applications, persist=False):
        """
        :param applications: Iterable of :class:`AutomaticApplication` of
            the deployment (this node routes to each, holds those it runs,
            and takes over those it stands by for).
        :param bool persist: Also write them to the store, if any.
        """
        applications = pvector(applications)
        if persist and self._store is not None:
            self._store.save(applications)
        self._applications = pmap({a.name: a for a in applications})
        # One whose holder was lost before this node learnt of it.
        for name in sorted(self._standing_by()):
            if name in self.placements and name not in self._owners:
                self._owner_gone(name)

    def application(self, name):
        """
        :return: The :class:`AutomaticApplication` named ``name``, or
            ``None``.
        """
        return self._applications.get(name)

    @property
    def applications(self):
        """
        ``PMap`` of the configured applications by name.
        """
        return self._applications

    def holder(self, name):
        """
        Ask etcd, now, which node holds ``name``'s lease: its owner key,
        which lives only as long as the holder renews the lease (what this
        node last saw through its watch may be older, or cut off).

        :param str name: The application.
        :return: ``Deferred`` firing with the holder's address, or ``None``
            when no node holds it; failing with etcd's errors
            (:class:`~flocker.etcd.EtcdUnavailable` when no member
            answers).
        """
        d = self._etcd.get(owner_key(name))
        d.addCallback(lambda kv: None if kv is None else _owner(kv)[0])
        return d

    # Holding ----------------------------------------------------------------

    def hold(self, name):
        """
        Claim ``name`` for this node before it starts the application (a
        deploy placed it here): the owner key must be absent or this
        node's, and the placement must be absent or this node.

        :param str name: The application.
        :return: ``Deferred`` firing with the epoch held, or failing with
            :class:`PlacementRefused` (or etcd's errors: the application
            must then not start).
        """
        if name in self.held and self.held[name].active:
            return succeed(self.epochs[name])
        return self._hold(name)

    @inlineCallbacks
    def _hold(self, name):
        placement = yield self._etcd.get(placement_key(name))
        epoch_kv = yield self._etcd.get(epoch_key(name))
        epoch = int(epoch_kv.value) if epoch_kv else 1
        if placement is not None:
            node, placed_epoch = _owner(placement)
            if node != self.address:
                raise PlacementRefused(name, node, placed_epoch)
        keeper = self._keeper(name)
        lease = yield keeper.start()
        compare = [Compare(key=owner_key(name), target="version", value=0)]
        if epoch_kv is None:
            compare.append(Compare(key=epoch_key(name), target="version",
                                   value=0))
        else:
            compare.append(Compare(key=epoch_key(name), target="value",
                                   value=epoch_kv.value))
        result = yield self._etcd.transaction(compare, [
            Put(key=epoch_key(name), value=b"%d" % (epoch,)),
            Put(key=owner_key(name), value=_placement_value(
                self.address, epoch), lease=lease.id),
            Put(key=placement_key(name), value=_placement_value(
                self.address, epoch)),
        ])
        if not result.succeeded:
            yield keeper.release()
            owner = yield self._etcd.get(owner_key(name))
            if owner is not None:
                node, epoch = _owner(owner)
                if node != self.address:
                    raise PlacementRefused(name, node, epoch)
                # This node held it in an earlier life (the agent
                # restarted): its old lease ends by itself; hold anew once
                # it has.
            raise EtcdError(9, "application %s is being claimed; try "
                            "again" % (name,))
        self.held[name] = keeper
        self.epochs[name] = epoch
        return epoch

    def _keeper(self, name):
        def fence(reason):
            self.held.pop(name, None)
            return self._actions.stop(name).addErrback(write_failure)
        return LeaseKeeper(self._clock, self._etcd, owner_key(name), fence,
                           self._timing)

    def release(self, name):
        """
        Stop holding ``name`` (a deploy stopped or moved it on purpose): its
        lease is revoked, so the owner key goes at once.

        :return: ``Deferred`` firing with ``None``.
        """
        keeper = self.held.pop(name, None)
        if keeper is None:
            return succeed(None)
        # The placement goes first, in the same revision as the owner key:
        # the standbys see an application released, not a holder lost.
        d = self._etcd.transaction([], [Delete(key=placement_key(name)),
                                        Delete(key=owner_key(name))])
        d.addCallback(lambda _: keeper.release())
        return d

    # Watching ----------------------------------------------------------------

    def start(self):
        """
        Take back what this node still holds, stop the rest, then watch the
        placements and owners, trying again while etcd cannot be reached.

        An agent that restarted finds, for each configured application,
        either its own owner key at the current epoch, whose lease (which
        belongs to no connection) it keeps alive again: the application
        goes on running, nothing fails over; or anything else (another
        owner, a newer epoch, no owner: its lease ended and a standby may
        be taking over; etcd out of reach), and then it stops whatever of
        the application runs here.

        :return: ``Deferred`` firing once the first attempt ended.
        """
        d = self._retake()
        d.addCallback(lambda _: self._watch())
        d.addErrback(self._retry)
        return d

    @inlineCallbacks
    def _retake(self):
        try:
            _, kvs = yield self._etcd.get_prefix(PREFIX)
        except Exception:
            # Nothing can be shown to be this node's.
            for name in sorted(self._applications):
                self._actions.stop(name).addErrback(write_failure)
            raise
        found = {kv.key: kv for kv in kvs}
        for name in sorted(self._applications):
            if name in self.held:
                continue
            owner = found.get(owner_key(name))
            epoch = found.get(epoch_key(name))
            mine = (owner is not None and epoch is not None and
                    owner.lease != 0 and
                    _owner(owner) == (self.address, int(epoch.value)))
            retaken = False
            if mine:
                retaken = yield self._adopt(name, owner.lease,
                                            int(epoch.value))
            if not retaken:
                self._actions.stop(name).addErrback(write_failure)

    @inlineCallbacks
    def _adopt(self, name, lease, epoch):
        """
        Hold ``name`` again on its owner key's ``lease``.

        :return: ``Deferred`` firing with ``True`` if held.
        """
        with start_action(action_type=LEASE_RETAKE.action_type,
                          application=name, epoch=epoch) as action:
            keeper = self._keeper(name)
            try:
                yield keeper.adopt(lease)
            except Exception:
                write_failure(Failure())
                action.add_success_fields(held=False)
                return False
            self.held[name] = keeper
            self.epochs[name] = epoch
            action.add_success_fields(held=True)
            return True

    def _retry(self, failure):
        # Whatever went wrong, this node must go on watching: a node that
        # stopped would neither take over nor follow a placement.  An
        # unexpected failure is logged.
        if not failure.check(EtcdUnavailable, EtcdError, WatchLost):
            write_failure(failure)
        if not self._stopped:
            self._clock.callLater(REWATCH_DELAY, self._rewatch)

    @inlineCallbacks
    def _watch(self):
        revision, kvs = yield self._etcd.get_prefix(PREFIX)
        # Read afresh: what changed while no watch ran is in this reading.
        self.placements = {}
        self._owners = set()
        for kv in kvs:
            self._seen(kv.key, kv)
        for name in sorted(self._standing_by()):
            if name not in self._owners:
                self._owner_gone(name)
        watch = yield self._etcd.watch_prefix(PREFIX, revision + 1,
                                              self._event)
        self._watches.append(watch)
        watch.done.addErrback(self._lost, watch)

    def _lost(self, failure, watch):
        if watch in self._watches:
            self._watches.remove(watch)
        self._retry(failure)

    def _rewatch(self):
        if self._stopped:
            return
        self._watch().addErrback(self._retry)

    def stop(self):
        """
        Stop watching (holdings are kept until released).
        """
        self._stopped = True
        for watch in list(self._watches):
            watch.stop()

    def _standing_by(self):
        return {name for name, application in self._applications.items()
                if self.address in application.standbys}

    def _event(self, event):
        self._seen(event.kv.key, event.kv if event.type == "put" else None)

    def _seen(self, key, kv):
        """
        React to one key's new value (``None``: deleted).
        """
        if not key.startswith(PREFIX):
            return
        kind, _, rest = key[len(PREFIX):].partition(b"/")
        name = rest.split(b"/")[0].decode("ascii", "replace")
        if kind == b"placement" and kv is not None:
            self._placed(name, *_owner(kv), owner=_identity(kv))
        elif kind == b"placement":
            # Released on purpose: nobody is to take it over.
            if self.placements.pop(name, None) is not None:
                self._on_change()
        elif kind == b"owner" and kv is None:
            self._owners.discard(name)
            self._owner_gone(name)
        elif kind == b"owner" and kv is not None:
            self._owners.add(name)
            takeover = self._takeovers.get(name)
            if takeover is not None:
                takeover.abandon()
        elif kind == b"copy":
            takeover = self._takeovers.get(name)
            if takeover is not None:
                takeover.copy_changed(key, kv)

    def _placed(self, name, node, epoch, owner=None):
        if self.placements.get(name) != (node, epoch):
            self.placements[name] = (node, epoch)
            self._on_change()
        application = self._applications.get(name)
        if application is None:
            return
        keeper = self.held.get(name)
        if node != self.address and keeper is not None:
            # Someone else runs it now: whatever this node thought it held
            # is stale.
            self.held.pop(name, None)
            keeper.release()
            self._actions.stop(name).addErrback(write_failure)
        self._actions.follow(name, node, application.ports).addErrback(
            write_failure)
        if (owner is not None and node != self.address and
                self.address in application.standbys):
            # A standby took it over: this node's copy follows it now (the
            # new owner replicates to it; the old owner's pushes are
            # refused).
            self._actions.follow_copy(name, owner, epoch).addErrback(
                write_failure)

    def _owner_gone(self, name):
        application = self._applications.get(name)
        # Only an application that was held somewhere is taken over: before
        # its first start, nobody's lease is missing.
        if (application is None or self.address not in application.standbys
                or name in self._takeovers or name in self.held
                or name not in self.placements):
            return
        takeover = _Takeover(self, application)
        self._takeovers[name] = takeover
        takeover.begin()


class _Takeover(object):
    """
    One standby's attempt to take an application over after its owner's
    lease ended: publish this node's copy, wait until every standby did or
    a lease's time passed, and claim if this node's copy is the freshest.
    It lasts until an owner key appears again (whoever won).
    """

    def __init__(self, failover, application):
        self._failover = failover
        self._application = application
        self._copies = {}
        self._deadline = None
        self._deadline_passed = False
        self._lease = None
        self._record = None
        self._mine = None
        self._claiming = False
        self._over = False

    @property
    def _name(self):
        return self._application.name

    @inlineCallbacks
    def begin(self):
        failover = self._failover
        etcd = failover._etcd
        try:
            freshness = yield failover._actions.copy_freshness(self._name)
            if freshness is None or self._over:
                self.abandon()
                return
            # The record lives while this node can answer for its copy.
            self._record = LeaseKeeper(
                failover._clock, etcd, copy_key(self._name, failover.address),
                lambda reason: self.abandon(), failover._timing)
            self._lease = yield self._record.start()
            epoch, latest = freshness
            mine = CopyFreshness(node=failover.address, epoch=epoch,
                                 latest=latest)
            self._mine = mine
            self._copies[failover.address] = mine
            yield etcd.put(copy_key(self._name, failover.address),
                           mine.to_bytes(), self._lease.id)
            _, kvs = yield etcd.get_prefix(copy_key(self._name, ""))
        except Exception:
            write_failure(Failure())
            self.abandon()
            return
        if self._over:
            return
        self._deadline = failover._clock.callLater(
            failover._timing.ttl, self._passed)
        for kv in kvs:
            self.copy_changed(kv.key, kv)
        self._decide()

    def _passed(self):
        self._deadline_passed = True
        self._decide()

    def copy_changed(self, key, kv):
        """
        A standby's copy record changed (``kv`` is ``None``: it is gone,
        with its node's lease).
        """
        node = key.rsplit(b"/", 1)[-1].decode("ascii", "replace")
        if kv is None:
            self._copies.pop(node, None)
        else:
            try:
                self._copies[node] = CopyFreshness.from_bytes(kv.value)
            except (ValueError, KeyError):
                return
        if self._lease is not None:
            self._decide()

    def _decide(self):
        if self._claiming or self._over:
            return
        standbys = self._application.standbys
        if not (set(self._copies) >= set(standbys) or
                self._deadline_passed):
            return
        if choose_claimant(self._copies.values(), standbys) != \
                self._failover.address:
            # Another copy is fresher: its node claims.  Should that node
            # die first, its record goes with its lease and this decides
            # again.
            return
        self._claiming = True
        self._claim().addErrback(write_failure)

    def abandon(self):
        """
        Stop taking part (an owner appeared, or this node cannot help).
        """
        if self._over:
            return
        self._over = True
        if self._failover._takeovers.get(self._name) is self:
            del self._failover._takeovers[self._name]
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        if self._record is not None:
            self._record.release().addErrback(lambda _: None)

    @inlineCallbacks
    def _claim(self):
        failover = self._failover
        etcd = failover._etcd
        name = self._name
        keeper = failover._keeper(name)
        try:
            epoch_kv = yield etcd.get(epoch_key(name))
        except (EtcdUnavailable, EtcdError):
            # Cut off before claiming: whoever reaches etcd decides; this
            # node looks again when it can.
            self.abandon()
            return
        old = int(epoch_kv.value) if epoch_kv else 0
        new = max(old, self._mine.epoch) + 1
        try:
            identity = yield failover._actions.identity()
        except Exception:
            write_failure(Failure())
            identity = None
        with start_action(action_type=LEASE_CLAIM.action_type,
                          application=name, epoch=new) as action:
            try:
                lease = yield keeper.start()
                result = yield etcd.transaction([
                    Compare(key=owner_key(name), target="version", value=0),
                    Compare(key=epoch_key(name), target="value",
                            value=epoch_kv.value) if epoch_kv else
                    Compare(key=epoch_key(name), target="version", value=0),
                ], [
                    Put(key=epoch_key(name), value=b"%d" % (new,)),
                    Put(key=owner_key(name), value=_placement_value(
                        failover.address, new), lease=lease.id),
                    Put(key=placement_key(name), value=_placement_value(
                        failover.address, new, identity)),
                ] + [Delete(key=copy_key(name, node))
                     for node in sorted(self._copies)])
            except (EtcdUnavailable, EtcdError):
                # The transaction may or may not have been applied; if it
                # was, the keeper's lease ends unrenewed and the owner key
                # with it, before anything was started here.
                action.add_success_fields(won=False)
                keeper.release()
                self.abandon()
                return
            action.add_success_fields(won=result.succeeded)
        self.abandon()
        if not result.succeeded:
            yield keeper.release()
            return
        failover.held[name] = keeper
        failover.epochs[name] = new
        try:
            yield failover._actions.start(name, new)
        except Exception:
            # Not started: give the lease back so that another standby can
            # try.
            write_failure(Failure())
            failover.held.pop(name, None)
            yield keeper.release()


def default_automatic_path(environ, address):
    """
    :return: Where a node's agent keeps its automatic applications: beside
        its deploy lock (``FLOCKER_LOCK_DIR``), named after its address.
    """
    return node_file_path(environ, "automatic", address, ".json")


def automatic_failover(reactor, environ, address, agent, volumes, routes,
                       on_change=None, replicator=None):
    """
    Build the agent's :class:`AutomaticFailover` if it has etcd.

    :param reactor: The reactor.
    :param environ: The agent's environment; :data:`ETCD_ENDPOINTS` names
        the etcd members (none: no automatic failover on this node), and
        ``FLOCKER_ETCD_CA``, ``FLOCKER_ETCD_CERT``, ``FLOCKER_ETCD_KEY``
        the TLS material for ``https`` members (see
        :class:`~flocker.etcd.EtcdTLS`).
    :param str address: This node's address.
    :param agent: Callable returning this node's ``INodeAgent``.
    :param volumes: Callable returning the current ``IVolumeService``.
    :param routes: ``IRouteManager`` provider.
    :param on_change: See :class:`AutomaticFailover`.
    :param replicator: See :class:`LocalFailoverActions`.
    :return: The :class:`AutomaticFailover` (not started), or ``None``.
    :raises EtcdConfigError: If the TLS settings cannot be used.
    """
    endpoints = [e.strip() for e in environ.get(ETCD_ENDPOINTS, "").split(",")
                 if e.strip()]
    if not endpoints:
        return None
    failover = []
    actions = LocalFailoverActions(
        address, agent, volumes, routes,
        lambda name: failover[0].application(name), replicator)
    failover.append(AutomaticFailover(
        reactor, EtcdClient(reactor, endpoints,
                            tls=EtcdTLS.from_environ(environ)),
        address, actions,
        store=AutomaticStore(default_automatic_path(environ, address)),
        on_change=on_change))
    return failover[0]
