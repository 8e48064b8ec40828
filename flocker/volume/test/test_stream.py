"""
Tests for :mod:`flocker.volume._stream`: the receive policy, on records
built as ``zfs send`` writes them (the shapes seen on the lab's zfs-fuse).
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from flocker.volume._capabilities import OPENZFS, ZFSCapabilities
from flocker.volume._errors import StreamRejected
from flocker.volume._stream import (
    BEGIN_RECORD_SIZE, EXCLUDED_PROPERTIES, check_begin_record,
    receive_flags, stream_limit,
)


def _record(order="<", kind=0, payload=0, magic=0x2F5BACBAC, hdrtype=1,
            features=0, objset=2, flags=0, fromguid=0,
            toname=b"pool/app@s1"):
    """
    A stream's BEGIN record; by default the first record of ``zfs send
    pool/app@s1``.
    """
    return struct.pack(order + "IIQQQIIQQ256s", kind, payload, magic,
                       hdrtype | (features << 2), 1765000000, objset, flags,
                       0x386C4D0BB78208BB, fromguid, toname)


def _Capabilities(excludes, overrides):
    """
    An OpenZFS receive with ``-x`` and ``-o`` as asked.
    """
    return ZFSCapabilities(
        implementation=OPENZFS,
        receive_flags=(["x"] if excludes else [])
        + (["o"] if overrides else []) + ["u", "F"])


class CheckBeginRecordTests(SynchronousTestCase):
    """
    ``check_begin_record`` lets through plain streams of the announced
    snapshot and refuses the rest.
    """

    def test_size(self):
        """
        A stream record is 312 bytes.
        """
        self.assertEqual(len(_record()), BEGIN_RECORD_SIZE)

    def test_plain(self):
        """
        Full and incremental plain streams, in either byte order, pass.
        """
        check_begin_record(_record(), "s1", False)
        check_begin_record(_record(order=">"), "s1", False)
        check_begin_record(_record(fromguid=7), "s1", True)

    def _refused(self, record, why, snapshot="s1", incremental=False):
        with self.assertRaises(StreamRejected) as caught:
            check_begin_record(record, snapshot, incremental)
        self.assertIn(why, str(caught.exception))

    def test_properties(self):
        """
        A compound stream (``zfs send -p`` or ``-R``: the only kind that
        carries properties) or a record with a payload is refused.
        """
        self._refused(_record(hdrtype=2, payload=588), "carries properties")
        self._refused(_record(hdrtype=2), "carries properties")
        self._refused(_record(payload=16), "carries properties")

    def test_not_a_stream(self):
        """
        A short input, no magic, or another first record is refused.
        """
        self._refused(b"", "ended before")
        self._refused(_record()[:100], "ended before")
        self._refused(_record(magic=1), "no stream magic")
        self._refused(_record(kind=1), "no BEGIN record")

    def test_other_kinds(self):
        """
        Raw streams, volumes (zvols) and clone streams are refused.
        """
        self._refused(_record(features=1 << 24), "raw")
        self._refused(_record(objset=1), "not of a filesystem")
        self._refused(_record(flags=1), "clone")

    def test_announcement(self):
        """
        The stream must be of the announced snapshot, and full or
        incremental as announced.
        """
        self._refused(_record(), "not 's2'", snapshot="s2")
        self._refused(_record(), "full, not incremental", incremental=True)
        self._refused(_record(fromguid=7), "incremental, not full")

    def test_resuming(self):
        """
        A stream resuming a receive (``zfs send -t``: flagged ``RESUMING``,
        with a payload saying where it resumes) passes only when announced
        so; a stream announced as resuming must be one.
        """
        resuming = _record(features=1 << 20, payload=48)
        check_begin_record(resuming, "s1", False, resuming=True)
        check_begin_record(_record(features=1 << 20, payload=48,
                                   fromguid=7), "s1", True, resuming=True)
        with self.assertRaises(StreamRejected) as caught:
            check_begin_record(resuming, "s1", False)
        self.assertIn("which was not announced", str(caught.exception))
        with self.assertRaises(StreamRejected) as caught:
            check_begin_record(_record(), "s1", False, resuming=True)
        self.assertIn("does not resume", str(caught.exception))
        with self.assertRaises(StreamRejected) as caught:
            check_begin_record(_record(features=1 << 20, payload=48,
                                       hdrtype=2), "s1", False,
                               resuming=True)
        self.assertIn("carries properties", str(caught.exception))


class ReceiveFlagsTests(SynchronousTestCase):
    """
    ``receive_flags`` always leaves the copy unmounted, and excludes and
    fixes properties where the ZFS can.
    """

    def test_unknown(self):
        """
        Without capabilities (zfs-fuse): ``-u``, and ``-F`` if forced.
        """
        self.assertEqual(receive_flags(None, False), ["-u"])
        self.assertEqual(receive_flags(None, True), ["-F", "-u"])

    def test_openzfs(self):
        """
        With ``-x`` and ``-o``: every excluded property, and readonly=on.
        """
        flags = receive_flags(_Capabilities(True, True), False)
        self.assertEqual(flags[:1], ["-u"])
        excluded = [flags[i + 1] for i, flag in enumerate(flags)
                    if flag == "-x"]
        self.assertEqual(excluded, sorted(EXCLUDED_PROPERTIES))
        for key in ["mountpoint", "canmount", "setuid", "exec", "devices",
                    "flocker:owner"]:
            self.assertIn(key, excluded)
        self.assertEqual(flags[-2:], ["-o", "readonly=on"])

    def test_partial(self):
        """
        Each of ``-x`` and ``-o`` is used only where the ZFS has it.
        """
        self.assertNotIn("-o", receive_flags(_Capabilities(True, False),
                                             False))
        self.assertEqual(receive_flags(_Capabilities(False, True), False),
                         ["-u", "-o", "readonly=on"])


class StreamLimitTests(SynchronousTestCase):
    """
    ``stream_limit`` bounds a stream by the volume's maximum size.
    """

    def test_limits(self):
        """
        The maximum size, a quarter more and 16 MiB; the pool's free space
        counts only when the volume names no maximum size; no limit only
        when neither is known.
        """
        self.assertIsNone(stream_limit(None))
        self.assertEqual(stream_limit(4 * 1024 ** 3),
                         5 * 1024 ** 3 + 16 * 1024 ** 2)
        self.assertEqual(stream_limit(4 * 1024 ** 3, available=1024 ** 2),
                         5 * 1024 ** 3 + 16 * 1024 ** 2)
        self.assertEqual(stream_limit(None, available=8 * 1024 ** 2),
                         10 * 1024 ** 2 + 16 * 1024 ** 2)
