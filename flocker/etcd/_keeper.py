"""
:class:`LeaseKeeper`: hold an etcd lease, keep it alive, and stop acting on
it (fence) before it can have expired when it can no longer be renewed.

Why the holder must fence itself: etcd ends a lease on its own clock, TTL
seconds after the last keep-alive it *received*.  A holder cut off from
etcd cannot learn that its lease ended; another node may then win the
application and start it.  So the holder counts for itself, on its own
clock, from the moment it *sent* its last keep-alive that was answered
(etcd received it no earlier), and stops the application while the lease
is certainly still alive:

    fence at  = sent + ttl x (1 - clock_drift) - stop_allowance

``clock_drift`` bounds how much faster etcd's clock may run than ours
(0.1 = 10 %, far above what real clocks do, however slewed), and
``stop_allowance`` is how long stopping the application may take.  A
renewal answered after that point cannot undo the fence: the application
is already being stopped, and whoever holds the lease next decides.
"""

import attr
from eliot import start_action
from twisted.internet.defer import succeed

from ._interface import Lease, LeaseExpired
from ._logging import (
    LEASE_ADOPTED, LEASE_FENCE, LEASE_KEEPER, LEASE_RENEWAL_FAILED,
    LEASE_RENEWED,
)

__all__ = ["LeaseKeeper", "LeaseTiming", "DEFAULT_TIMING"]


def _positive(instance, attribute, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or value <= 0:
        raise ValueError("%s must be a number > 0, not %r" % (
            attribute.name, value))


@attr.s(frozen=True)
class LeaseTiming(object):
    """
    The times of a lease and its keeper, in seconds.

    :ivar int ttl: The lease's time to live (etcd grants whole seconds).
    :ivar float renew_every: Seconds between keep-alives.
    :ivar float clock_drift: How much faster etcd's clock may run than the
        holder's, as a fraction (0 <= drift < 1).
    :ivar float stop_allowance: Seconds stopping the application may take.
    """
    ttl = attr.ib(validator=_positive)
    renew_every = attr.ib(validator=_positive)
    clock_drift = attr.ib(default=0.1)
    stop_allowance = attr.ib(default=2.0, validator=_positive)

    def __attrs_post_init__(self):
        if not isinstance(self.ttl, int) or isinstance(self.ttl, bool):
            raise ValueError("ttl must be whole seconds, not %r" % (
                self.ttl,))
        if not 0 <= self.clock_drift < 1:
            raise ValueError("clock_drift must be in [0, 1), not %r" % (
                self.clock_drift,))
        if self.renew_every * 2 > self.safe_for:
            # Two keep-alives at least must fit before the fence, or one
            # lost packet fences a healthy holder.
            raise ValueError(
                "renewing every %ss leaves less than two tries in the %.2fs "
                "a renewal is good for (ttl %ds)" % (
                    self.renew_every, self.safe_for, self.ttl))

    @property
    def safe_for(self):
        """
        Seconds after sending an answered keep-alive (or the grant) during
        which the holder may act on the lease.
        """
        return self.ttl * (1 - self.clock_drift) - self.stop_allowance


#: The defaults: a lease of 10 s renewed every 2 s; a holder cut off fences
#: 7 s after its last answered keep-alive (three tries, each with the
#: client's 2 s to answer: a busy member answering one late does not fence
#: a healthy holder, as 6 s leases did on the lab's loaded machine), and a
#: standby can win the application 10 s after it (etcd's expiry).
DEFAULT_TIMING = LeaseTiming(ttl=10, renew_every=2.0)


class LeaseKeeper(object):
    """
    Holds one lease from :meth:`start` until :meth:`release` or a fence.

    :ivar lease: The :class:`Lease` held, or ``None`` before :meth:`start`
        has granted it.
    :ivar fenced: ``None``, or the one-line reason the keeper fenced.
    :ivar fenced_at: The local time of the fence, or ``None``.
    """

    def __init__(self, clock, etcd, key, on_fence, timing=DEFAULT_TIMING):
        """
        :param clock: ``IReactorTime`` provider (the holder's clock).
        :param etcd: ``IEtcd`` provider.
        :param bytes key: The key the lease guards (for logs).
        :param on_fence: Called once, with the reason, when the holder must
            stop acting on the lease (stop the application).  It may return
            a ``Deferred``.
        :param LeaseTiming timing: The lease's times.
        """
        self._clock = clock
        self._etcd = etcd
        self._key = key
        self._on_fence = on_fence
        self.timing = timing
        self.lease = None
        self.fenced = None
        self.fenced_at = None
        self._fence_call = None
        self._renew_call = None
        self._released = False
        self._action = None

    def _log_key(self):
        return self._key.decode("utf-8", "backslashreplace")

    def start(self):
        """
        Grant the lease and start keeping it alive.

        :return: ``Deferred`` firing with the :class:`Lease` (whose keys the
            caller then writes), or failing as :meth:`IEtcd.grant` does (the
            keeper then holds nothing).
        """
        sent = self._clock.seconds()
        d = self._etcd.grant(self.timing.ttl)
        return d.addCallback(self._took, sent)

    def adopt(self, lease):
        """
        Hold a lease granted earlier (by this node's agent before it
        restarted: etcd's leases belong to no connection), and keep it
        alive from now on.  The first keep-alive counts as the grant: the
        fence is set from the moment it was sent.

        :param int lease: The lease's identifier (the ``lease`` of a key
            attached to it).
        :return: ``Deferred`` firing with the :class:`Lease`; failing with
            :class:`LeaseExpired` if etcd ended it already, as
            :meth:`IEtcd.keep_alive` does otherwise, or with ``ValueError``
            for a lease shorter than this keeper's timing counts on (it is
            then left alone to end).  On failure the keeper holds nothing.
        """
        sent = self._clock.seconds()
        d = self._etcd.keep_alive(lease)

        def renewed(ttl):
            if ttl < self.timing.ttl:
                raise ValueError(
                    "lease %x lives %ds, less than the %ds this holder's "
                    "fence counts on" % (lease, ttl, self.timing.ttl))
            taken = self._took(Lease(id=lease, ttl=ttl), sent)
            with self._action.context():
                LEASE_ADOPTED.log(lease=lease)
            return taken
        return d.addCallback(renewed)

    def _took(self, lease, sent):
        """
        Hold ``lease``, granted or renewed by a request sent at ``sent``.

        :return: ``lease``.
        """
        self.lease = lease
        self._action = start_action(
            action_type=LEASE_KEEPER.action_type, key=self._log_key(),
            lease=lease.id, ttl=lease.ttl)
        if self._released:
            # Released while the grant was on its way.
            self._etcd.revoke(lease.id).addErrback(lambda _: None)
            self._action.finish()
            return lease
        self._answered(sent)
        self._schedule_renewal()
        return lease

    @property
    def active(self):
        """
        ``True`` while the holder may act on the lease: granted, neither
        released nor fenced, and not past the fence time.
        """
        return (self.lease is not None and not self._released and
                self.fenced is None)

    def _answered(self, sent):
        """
        A keep-alive (or the grant) sent at ``sent`` was answered: move the
        fence to ``sent + safe_for``.
        """
        fence_at = sent + self.timing.safe_for
        delay = fence_at - self._clock.seconds()
        with self._action.context():
            LEASE_RENEWED.log(lease=self.lease.id,
                              safe_for=float(max(delay, 0)))
        if delay <= 0:
            self._fence("the keep-alive was answered too late")
            return
        if self._fence_call is not None and self._fence_call.active():
            if self._fence_call.getTime() >= fence_at:
                return
            self._fence_call.cancel()
        self._fence_call = self._clock.callLater(
            delay, self._fence,
            "no keep-alive answered for %.1fs (lease of %ds)" % (
                self.timing.safe_for, self.timing.ttl))

    def _schedule_renewal(self):
        self._renew_call = self._clock.callLater(self.timing.renew_every,
                                                 self._renew)

    def _renew(self):
        if not self.active:
            return
        sent = self._clock.seconds()
        self._schedule_renewal()
        d = self._etcd.keep_alive(self.lease.id)

        def renewed(ttl):
            if self.active:
                self._answered(sent)

        def failed(failure):
            if not self.active:
                return
            with self._action.context():
                LEASE_RENEWAL_FAILED.log(
                    lease=self.lease.id,
                    reason=str(failure.value) or failure.type.__name__)
            if failure.check(LeaseExpired):
                self._fence("etcd says the lease is gone")
            # Anything else: try again at the next renewal; the fence timer
            # decides when trying is no longer enough.
        d.addCallbacks(renewed, failed)

    def _fence(self, reason):
        if not self.active:
            return
        self.fenced = reason
        self.fenced_at = self._clock.seconds()
        self._stop_timers()
        with self._action.context():
            with start_action(action_type=LEASE_FENCE.action_type,
                              key=self._log_key(), lease=self.lease.id,
                              reason=reason):
                result = self._on_fence(reason)
        self._action.finish()
        # Whoever can reach etcd should not have to wait out the lease.
        lease = self.lease.id
        self._etcd.revoke(lease).addErrback(lambda _: None)
        return result

    def _stop_timers(self):
        for call in (self._fence_call, self._renew_call):
            if call is not None and call.active():
                call.cancel()

    def release(self):
        """
        Stop keeping the lease and revoke it (the application was stopped
        by its holder, or moved on purpose).

        :return: ``Deferred`` firing with ``None`` once etcd revoked it (or
            at once if nothing is held); failing as :meth:`IEtcd.revoke`
            does.
        """
        if self._released:
            return succeed(None)
        was_active = self.active
        self._released = True
        self._stop_timers()
        if self.lease is None or not was_active:
            return succeed(None)
        self._action.finish()
        return self._etcd.revoke(self.lease.id)

