"""
Tests for :class:`flocker.node._senders.FirstCopyGroups`: a first copy of
an automatic group's volume is accepted only from the member holding the
group's lease, as the receiving node reads etcd itself; with three nodes
sharing one in-memory etcd on a deterministic clock (as
``test_automatic``), and once against a real etcd member.
"""

import shutil

from eliot.testing import LoggedAction
from twisted.trial.unittest import SynchronousTestCase

from ...etcd import DEFAULT_TIMING, EtcdClient
from ..._model import Application, AttachedVolume
from ...testtools import capture_logging, require, run_in_reactor
from ...volume._errors import NotOwner
from ...volume._policy import GroupLease, check_receive
from .._automatic import (
    AutomaticApplication, AutomaticFailover, owner_key,
)
from .._logging import FIRST_COPY_HOLDER
from .._senders import FirstCopyGroups
from .test_automatic import P, S1, S2, _Actions, _ThreeNodes

#: The application of the tests' group, with one volume.
WEB = AutomaticApplication(
    name="web", primary=P, standbys=[S1, S2], ports=[(8080, "tcp")],
    application=Application(name="web", image="flocker/busybox",
                            volume=AttachedVolume(mountpoint="/data")))

#: Each node's identity, and the addresses its key is accepted from (the
#: trust every node has installed).
SOURCES = {"id-p": frozenset([P]), "id-s1": frozenset([S1]),
           "id-s2": frozenset([S2])}


class _Groups(_ThreeNodes):
    """
    Mixin: the three nodes configured with ``WEB``, and each node's
    :class:`FirstCopyGroups`.
    """

    def setUp(self):
        _ThreeNodes.setUp(self)
        for node in self.nodes.values():
            node.configure([WEB])

    def lease(self, address, volume="web"):
        """
        :return: The :class:`GroupLease` ``address``'s receive would learn
            now for a first copy of ``volume``.
        """
        ask = FirstCopyGroups(address, self.nodes[address],
                              lambda: SOURCES).group(volume)
        return self.successResultOf(ask())


class FirstCopyGroupsTests(_Groups, SynchronousTestCase):
    """
    What a member's receive learns from etcd for a first copy.
    """

    def test_holder(self):
        """
        While the primary holds the lease, a standby learns its address,
        and its identity is the one whose key comes from there: the
        primary's first copy is accepted, the other standby's refused.
        """
        self.run_on_primary()
        lease = self.lease(S1)
        self.assertEqual(lease, GroupLease(application="web", holder=P,
                                           holder_ids=["id-p"]))
        check_receive("id-s1", "web", False, None, "id-p", frozenset(),
                      lease)
        self.assertRaises(NotOwner, check_receive, "id-s1", "web", False,
                          None, "id-s2", frozenset(), lease)

    def test_new_holder_after_failover(self):
        """
        After an automatic failover the new holder may seed a member that
        has no copy, and the old primary (no longer holding the lease) may
        not: what counts is etcd's owner key when the push comes.
        """
        self.run_on_primary()
        self.views[P].cut()
        self.advance(30)
        self.assertEqual([S2], self.where())
        lease = self.lease(S1)
        self.assertEqual((lease.holder, lease.holder_ids),
                         (S2, frozenset(["id-s2"])))
        check_receive("id-s1", "web", False, None, "id-s2", frozenset(),
                      lease)
        self.assertRaises(NotOwner, check_receive, "id-s1", "web", False,
                          None, "id-p", frozenset(), lease)

    def test_no_holder(self):
        """
        Before anyone holds the lease, no member's first copy is accepted.
        """
        self.assertEqual(self.lease(S1), GroupLease(application="web"))

    def test_etcd_unreachable(self):
        """
        When the receiving node cannot reach etcd, the lease holds an
        error and no identity: the first copy is refused (fail closed),
        even from the member that does hold it.
        """
        self.run_on_primary()
        self.views[S1].cut()
        lease = self.lease(S1)
        self.assertEqual((lease.holder, lease.holder_ids, lease.error),
                         (None, frozenset(), "etcd: partitioned"))
        self.assertRaises(NotOwner, check_receive, "id-s1", "web", False,
                          None, "id-p", frozenset(), lease)

    def test_trust_unreadable(self):
        """
        When this node cannot read its own trust of peer keys, the lease
        names the holder etcd gave but no identity, and its error says
        that the trust failed, not etcd: the first copy is refused.
        """
        self.run_on_primary()

        def damaged():
            raise ValueError("peers file line 3: not a key")
        lease = self.successResultOf(
            FirstCopyGroups(S1, self.nodes[S1], damaged).group("web")())
        self.assertEqual(
            (lease.holder, lease.holder_ids, lease.error),
            (P, frozenset(), "this node's trust of peer keys is unreadable: "
             "peers file line 3: not a key"))
        with self.assertRaises(NotOwner) as caught:
            check_receive("id-s1", "web", False, None, "id-p", frozenset(),
                          lease)
        self.assertIn("could not learn which member holds its lease (this "
                      "node's trust of peer keys is unreadable",
                      caught.exception.message)

    def test_holder_not_member(self):
        """
        An owner key naming a node outside the group (written by hand)
        lets no one in, even a node whose key comes from that address.
        """
        self.successResultOf(self.store.put(
            owner_key("web"), b'{"node": "10.0.0.9", "epoch": 1}'))
        lease = FirstCopyGroups(
            S1, self.nodes[S1],
            lambda: dict(SOURCES, **{"id-x": frozenset(["10.0.0.9"])})
        ).group("web")
        self.assertEqual(self.successResultOf(lease()),
                         GroupLease(application="web", holder="10.0.0.9"))

    def test_asked_when_called(self):
        """
        etcd is read when the receive asks (for a first copy), not when
        the group is looked up: a holder that changed in between is the
        one answered.
        """
        ask = FirstCopyGroups(S1, self.nodes[S1],
                              lambda: SOURCES).group("web")
        self.run_on_primary()
        self.assertEqual(self.successResultOf(ask()).holder, P)

    def test_not_a_group_volume(self):
        """
        A volume of no automatic application, a member-less node and a
        node without etcd have no group: only the deploy's record applies.
        """
        self.assertIsNone(FirstCopyGroups(S1, self.nodes[S1],
                                          lambda: SOURCES).group("db"))
        self.assertIsNone(FirstCopyGroups("10.0.0.9", self.nodes[S1],
                                          lambda: SOURCES).group("web"))
        self.assertIsNone(FirstCopyGroups(S1, None,
                                          lambda: SOURCES).group("web"))

    @capture_logging(None)
    def test_logged(self, logger):
        """
        Each question to etcd is an eliot action naming the application,
        the volume, and the holder found (or etcd's error).
        """
        self.run_on_primary()
        self.lease(S1)
        self.views[S1].cut()
        self.lease(S1)
        actions = LoggedAction.ofType(logger.messages, FIRST_COPY_HOLDER)
        self.assertEqual(
            [(action.start_message["application"],
              action.start_message["volume"],
              action.end_message["action_status"],
              action.end_message["holder"], action.end_message["error"])
             for action in actions],
            [("web", "web", "succeeded", P, None),
             ("web", "web", "succeeded", None, "etcd: partitioned")])


class RealEtcdTests(SynchronousTestCase):
    """
    The holder a member learns, and etcd out of reach, with a real etcd
    member (``etcd`` from Debian's ``etcd-server``).
    """

    def test_real_etcd(self):
        """
        With a real etcd: while the primary's agent holds the lease, a
        standby learns it as the holder (and its identity's first copy is
        accepted); once etcd is gone, the standby's question fails closed
        with etcd's error.
        """
        from ...etcd.test._server import EtcdServer
        require(shutil.which("etcd") is not None,
                "etcd is not installed (admin/install-deps installs it)")
        server = EtcdServer()
        self.addCleanup(server.stop)

        def node(reactor, address):
            failover = AutomaticFailover(
                reactor, EtcdClient(reactor, [server.url], timeout=5),
                address, _Actions(address, {address: set()}, None),
                DEFAULT_TIMING)
            failover.configure([WEB])
            return failover
        primary = run_in_reactor(lambda reactor: node(reactor, P))
        standby = run_in_reactor(lambda reactor: node(reactor, S1))
        run_in_reactor(lambda reactor: primary.hold("web"))
        self.addCleanup(run_in_reactor,
                        lambda reactor: primary.release("web"))
        ask = FirstCopyGroups(S1, standby, lambda: SOURCES).group("web")
        lease = run_in_reactor(lambda reactor: ask())
        self.assertEqual(lease, GroupLease(application="web", holder=P,
                                           holder_ids=["id-p"]))
        check_receive("id-s1", "web", False, None, "id-p", frozenset(),
                      lease)
        held = run_in_reactor(lambda reactor: primary.held.pop("web"))
        run_in_reactor(lambda reactor: held.release())
        server.stop()
        lease = run_in_reactor(lambda reactor: ask())
        self.assertEqual((lease.holder, lease.holder_ids),
                         (None, frozenset()))
        self.assertIn("no etcd member answered", lease.error)
