"""
Tests for :mod:`flocker.volume._epoch`: ownership epochs and which copy of
a volume is current.
"""

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools.strategies import fuzz_settings
from flocker.volume._epoch import (
    HOLD, START, CopyView, boot_decision, check_sender_epoch, current_copy,
    freshest_copy, is_recovery_name, is_recovery_suffix, next_epoch, parse_epoch, recovery_name,
    stale_owners,
)
from flocker.volume._errors import StaleEpoch

_NODES = ["10.0.0.%d" % (i,) for i in range(1, 6)]


@st.composite
def copy_sets(draw):
    """
    :return: A list of :class:`CopyView` of one volume on distinct nodes.
    """
    nodes = draw(st.lists(st.sampled_from(_NODES), unique=True, min_size=1))
    return [CopyView(node=node, owned=draw(st.booleans()),
                     epoch=draw(st.integers(0, 5)),
                     latest=draw(st.one_of(st.none(), st.sampled_from(
                ["flocker-1", "flocker-2", "flocker-3"]))))
            for node in nodes]


class ParseEpochTests(SynchronousTestCase):
    """
    ``parse_epoch`` reads a ``flocker:epoch`` value.
    """

    def test_decimal(self):
        """
        A decimal value is its number.
        """
        self.assertEqual([parse_epoch("0"), parse_epoch("7"),
                          parse_epoch("123")], [0, 7, 123])

    def test_unset_or_unreadable(self):
        """
        An unset value (``None``, ZFS's ``-``) or anything but a plain
        decimal reads as 0, the oldest epoch.
        """
        self.assertEqual(
            [parse_epoch(value) for value in
             [None, "-", "", "07", "-1", "1.5", " 3", "x", 4]],
            [0] * 9)

    @fuzz_settings()
    @given(st.integers(0, 10 ** 17))
    def test_round_trip(self, epoch):
        """
        Every epoch written as decimal reads back as itself.
        """
        self.assertEqual(parse_epoch(str(epoch)), epoch)


class NextEpochTests(SynchronousTestCase):
    """
    ``next_epoch`` numbers a new ownership.
    """

    def test_none_known(self):
        """
        With no copy known, the next epoch is 1.
        """
        self.assertEqual(next_epoch([]), 1)

    @fuzz_settings()
    @given(st.lists(st.integers(0, 100), min_size=1))
    def test_above_every_known(self, epochs):
        """
        The next epoch is exactly one above the highest known.
        """
        self.assertEqual(next_epoch(epochs), max(epochs) + 1)


class CurrentCopyTests(SynchronousTestCase):
    """
    ``current_copy`` and ``stale_owners`` tell the current owner from stale
    ones.
    """

    def test_after_failover(self):
        """
        A node that owned the volume at epoch 3 and came back after its
        standby took over at epoch 4 is stale; the standby is current.
        """
        copies = [CopyView("a", True, 3), CopyView("b", True, 4),
                  CopyView("c", False, 4)]
        self.assertEqual((current_copy(copies), stale_owners(copies)),
                         ("b", frozenset(["a"])))

    def test_tie_has_no_owner(self):
        """
        Two owners at one epoch: no current owner (an operator decides).
        """
        copies = [CopyView("a", True, 2), CopyView("b", True, 2)]
        self.assertEqual((current_copy(copies), stale_owners(copies)),
                         (None, frozenset()))

    @fuzz_settings()
    @given(copy_sets())
    def test_never_two(self, copies):
        """
        Whatever the copies, the current owner is owned, holds the highest
        epoch, and is never among the stale ones; every stale owner is an
        owned copy with a lower epoch than some copy.
        """
        current = current_copy(copies)
        stale = stale_owners(copies)
        top = max(copy.epoch for copy in copies)
        by_node = {copy.node: copy for copy in copies}
        if current is not None:
            self.assertTrue(by_node[current].owned)
            self.assertEqual(by_node[current].epoch, top)
            self.assertNotIn(current, stale)
        for node in stale:
            self.assertTrue(by_node[node].owned and by_node[node].epoch < top)
        owned = [copy.node for copy in copies if copy.owned]
        self.assertEqual(set(owned) - stale - {current},
                         set(node for node in owned
                             if by_node[node].epoch == top
                             and node != current))


class FreshestCopyTests(SynchronousTestCase):
    """
    ``freshest_copy`` picks the copy a failover starts from.
    """

    def test_newest_snapshot(self):
        """
        Among copies of one epoch, the one with the newest snapshot wins.
        """
        self.assertEqual(freshest_copy([CopyView("b", False, 3, "flocker-1"),
                                        CopyView("c", False, 3, "flocker-2")]),
                         "c")

    def test_epoch_first(self):
        """
        A copy of a later epoch wins over a newer snapshot of an earlier
        one.
        """
        self.assertEqual(freshest_copy([CopyView("b", False, 4, "flocker-1"),
                                        CopyView("c", False, 3, "flocker-2")]),
                         "b")

    def test_preference_breaks_ties(self):
        """
        Equally fresh copies: the operator's first choice wins.
        """
        copies = [CopyView("b", False, 3, "flocker-1"),
                  CopyView("c", False, 3, "flocker-1")]
        self.assertEqual([freshest_copy(copies, ["c", "b"]),
                          freshest_copy(copies, ["b", "c"])], ["c", "b"])

    def test_none(self):
        """
        No copies, no choice.
        """
        self.assertIsNone(freshest_copy([]))

    @fuzz_settings()
    @given(copy_sets(), st.permutations(_NODES))
    def test_nothing_fresher(self, copies, preference):
        """
        No copy is fresher (epoch, then snapshot) than the chosen one.
        """
        chosen = freshest_copy(copies, preference)
        key = {copy.node: (copy.epoch, copy.latest or "") for copy in copies}
        self.assertEqual(key[chosen], max(key.values()))


class SenderEpochTests(SynchronousTestCase):
    """
    ``check_sender_epoch`` refuses pushes from stale owners.
    """

    def test_stale_sender(self):
        """
        A sender at a lower epoch than the copy follows is refused, with a
        line naming both epochs.
        """
        e = self.assertRaises(StaleEpoch, check_sender_epoch, "web", 4, 3)
        self.assertIn("epoch 3", str(e))
        self.assertIn("epoch 4", str(e))

    def test_current_or_unknown(self):
        """
        A sender at the copy's epoch or later, or one that does not say,
        may push.
        """
        self.assertEqual([check_sender_epoch("web", 4, 4),
                          check_sender_epoch("web", 4, 5),
                          check_sender_epoch("web", 4, None)],
                         [None, None, None])


class RecoveryNameTests(SynchronousTestCase):
    """
    ``recovery_name`` names a stale copy set aside.
    """

    def test_name(self):
        """
        The name holds the volume, the epoch and the time, and is known as
        a recovery copy (never a volume name: those have no dots).
        """
        name = recovery_name("web", 3, "20261206T120000Z")
        self.assertEqual((name, is_recovery_name(name),
                          is_recovery_name("web"),
                          is_recovery_suffix(name[len("web"):])),
                         ("web.flocker-recovery-e3-20261206T120000Z", True,
                          False, True))

    def test_suffix_exact(self):
        """
        Only exactly what ``recovery_name`` adds is a recovery suffix:
        nothing a caller could slip another word or path into.
        """
        self.assertEqual(
            [is_recovery_suffix(suffix) for suffix in [
                ".flocker-recovery-e3-20261206T120000Z/x",
                ".flocker-recovery-e3-20261206T120000Z ",
                ".flocker-recovery-e-20261206T120000Z",
                ".flocker-recovery-e3-2026",
                ".flocker-recv"]],
            [False] * 5)


class BootDecisionTests(SynchronousTestCase):
    """
    ``boot_decision`` says whether an application may start at the agent's
    start, before any deploy.
    """

    def test_decisions(self):
        """
        Only an owned volume no other node ever received starts; a volume
        with copies elsewhere, or not owned here, waits.
        """
        self.assertEqual(
            [boot_decision(True, False), boot_decision(True, True),
             boot_decision(False, False), boot_decision(False, True)],
            [START, HOLD, HOLD, HOLD])
