"""
Tests for :mod:`flocker.volume._policy`: who may push a volume, and who a
received copy names as its owner.
"""

from twisted.trial.unittest import SynchronousTestCase

from flocker.volume._errors import NotOwner
from flocker.volume._policy import GroupLease, check_receive, recorded_owner


class CheckReceiveTests(SynchronousTestCase):
    """
    ``check_receive`` accepts a push only where this node's records do not
    say the volume is someone else's.
    """

    def test_owned_never(self):
        """
        An owned volume is never overwritten, by the operator or a node.
        """
        for caller in [None, "b", "a"]:
            self.assertRaises(NotOwner, check_receive, "a", "web", True,
                              "a", caller)

    def test_operator(self):
        """
        The operator (no caller) may push into no copy or a follower.
        """
        check_receive("a", "web", False, None, None)
        check_receive("a", "web", True, "b", None)

    def test_followed_node(self):
        """
        A node may push into a copy that follows it, whatever it was told
        to expect.
        """
        check_receive("a", "web", True, "b", "b")
        check_receive("a", "web", True, "b", "b", frozenset(["c"]))

    def test_expected_first_copy(self):
        """
        Where this node has no copy, a node it was told to expect the
        volume from may push a first one.
        """
        check_receive("a", "web", False, None, "b", frozenset(["b"]))
        check_receive("a", "web", False, None, "c", frozenset(["b", "c"]))

    def test_unexpected_first_copy(self):
        """
        Where this node has no copy, a node it was not told to expect the
        volume from is refused (a planted copy would name that node as
        owner and refuse the real owner's pushes), and the refusal names
        this node, the volume, the caller and the nodes expected.
        """
        with self.assertRaises(NotOwner) as caught:
            check_receive("a", "web", False, None, "c", frozenset(["b"]))
        self.assertEqual(str(caught.exception.message),
                         "this node (a) has no copy of volume web and was "
                         "not told to expect it from node c (it may come "
                         "from node b only); node c may not push it")
        with self.assertRaises(NotOwner) as caught:
            check_receive("a", "web", False, None, "c")
        self.assertEqual(str(caught.exception.message),
                         "this node (a) has no copy of volume web and was "
                         "not told to expect it from node c (the deploy "
                         "named no node it may come from); node c may not "
                         "push it")

    def test_operator_first_copy(self):
        """
        The operator needs no record to push a first copy.
        """
        check_receive("a", "web", False, None, None, frozenset())

    def test_other_node(self):
        """
        A node may not push into a copy following another node (or none),
        and the refusal names both.
        """
        with self.assertRaises(NotOwner) as caught:
            check_receive("a", "web", True, "b", "c")
        self.assertEqual(str(caught.exception.message),
                         "this node's copy of volume web follows node b; "
                         "node c may not push it")
        self.assertRaises(NotOwner, check_receive, "a", "web", True, None,
                          "c")


class GroupLeaseTests(SynchronousTestCase):
    """
    ``check_receive`` with a :class:`GroupLease`: a first copy of an
    automatic group's volume comes only from the member etcd says holds
    the group's lease.
    """

    def test_holder_accepted(self):
        """
        The caller whose key this node accepts from the holder's address
        may push a first copy.
        """
        check_receive("a", "web", False, None, "b", frozenset(),
                      GroupLease(application="app", holder="10.0.0.2",
                                 holder_ids=["b"]))

    def test_other_member_refused(self):
        """
        Another member is refused, in one line naming this node, the
        volume, the application, the holder and the caller.
        """
        with self.assertRaises(NotOwner) as caught:
            check_receive("a", "web", False, None, "c", frozenset(),
                          GroupLease(application="app", holder="10.0.0.2",
                                     holder_ids=["b"]))
        self.assertEqual(
            caught.exception.message,
            "this node (a) has no copy of volume web of application app, "
            "whose lease in etcd is held by node 10.0.0.2; a first copy "
            "comes only from the lease's holder, so node c may not push it")

    def test_no_holder_refused(self):
        """
        While no member holds the lease, every member is refused, saying
        so.
        """
        with self.assertRaises(NotOwner) as caught:
            check_receive("a", "web", False, None, "b", frozenset(),
                          GroupLease(application="app"))
        self.assertIn("no member holds its lease in etcd now",
                      caught.exception.message)

    def test_etcd_unreachable_refused(self):
        """
        When etcd could not say who holds the lease, the first copy is
        refused (fail closed), naming the caller and etcd's error, even
        from a caller the lease named before.
        """
        with self.assertRaises(NotOwner) as caught:
            check_receive("a", "web", False, None, "b", frozenset(),
                          GroupLease(application="app", holder_ids=["b"],
                                     error="no etcd member answered"))
        self.assertEqual(
            caught.exception.message,
            "this node (a) has no copy of volume web of application app, "
            "and could not learn which member holds its lease "
            "(no etcd member answered); a first copy comes only from that "
            "member, so node b may not push it until that is known")

    def test_expected_first(self):
        """
        A node the deploy told this node to expect (a deploy's push) is
        accepted whoever holds the lease; the operator always is.
        """
        lease = GroupLease(application="app", holder="10.0.0.3",
                           holder_ids=["c"])
        check_receive("a", "web", False, None, "b", frozenset(["b"]), lease)
        check_receive("a", "web", False, None, None, frozenset(), lease)

    def test_copy_not_decided_by_lease(self):
        """
        Into an existing copy the lease changes nothing: a copy following
        another node refuses even the holder, an owned copy refuses
        everyone.
        """
        lease = GroupLease(application="app", holder="10.0.0.2",
                           holder_ids=["b"])
        self.assertRaises(NotOwner, check_receive, "a", "web", True, "c",
                          "b", frozenset(), lease)
        self.assertRaises(NotOwner, check_receive, "a", "web", True, "a",
                          "b", frozenset(), lease)


class RecordedOwnerTests(SynchronousTestCase):
    """
    ``recorded_owner``: a node's key pushes as that node only.
    """

    def test_recorded(self):
        """
        A node's push records the node; the operator's records what the
        request says.
        """
        self.assertEqual(recorded_owner("b", "b"), "b")
        self.assertEqual(recorded_owner(None, "b"), "b")

    def test_impersonation_refused(self):
        """
        A node's push claiming another node as its sender is refused,
        naming both.
        """
        error = self.assertRaises(NotOwner, recorded_owner, "b", "forged")
        self.assertEqual(str(error.message),
                         "the key of node b cannot push as node forged: "
                         "each node's key pushes as that node only")
