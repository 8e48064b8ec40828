"""
Tests for :mod:`flocker.volume._seed`: making and reading seed archives.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory
from flocker.volume import StreamRejected
from flocker.volume._seed import (
    MAX_SEED_SIZE, SeedEntry, seed_archive, seed_entries,
)


class SeedArchiveTests(SynchronousTestCase):
    """
    Tests for ``seed_archive`` and ``seed_entries`` together.
    """

    def directory(self):
        """
        :return: A fresh directory holding ``conf/app.ini`` (mode 0640),
            ``top`` and a symbolic link ``alias`` to ``top``.
        """
        root = temporary_directory(self)
        os.makedirs(os.path.join(root, "conf"))
        with open(os.path.join(root, "conf", "app.ini"), "wb") as f:
            f.write(b"x = 1\n")
        os.chmod(os.path.join(root, "conf", "app.ini"), 0o640)
        with open(os.path.join(root, "top"), "wb") as f:
            f.write(b"top")
        os.symlink("top", os.path.join(root, "alias"))
        return root

    def test_round_trip(self):
        """
        The archive of a directory reads back as its directories and files,
        with their modes, directories first; a link becomes a copy of its
        target.
        """
        entries = seed_entries(seed_archive(self.directory()))
        self.assertEqual(
            [(e.path, e.data) for e in entries],
            [("alias", b"top"), ("conf", None), ("conf/app.ini", b"x = 1\n"),
             ("top", b"top")])
        self.assertEqual(
            [e.mode for e in entries if e.path == "conf/app.ini"], [0o640])

    def test_missing_directory(self):
        """
        A directory that does not exist is refused, naming it.
        """
        missing = temporary_directory(self)
        error = self.assertRaises(StreamRejected, seed_archive, missing)
        self.assertIn(missing, str(error))

    def test_special_file_refused(self):
        """
        A directory holding something other than files and directories (a
        FIFO) is refused.
        """
        root = self.directory()
        os.mkfifo(os.path.join(root, "pipe"))
        self.assertRaises(StreamRejected, seed_archive, root)

    def test_too_large(self):
        """
        An archive larger than ``MAX_SEED_SIZE`` is refused when read.
        """
        self.assertRaises(StreamRejected, seed_entries,
                          b"\x00" * (MAX_SEED_SIZE + 1))

    def test_entry_value(self):
        """
        Entries are values.
        """
        self.assertEqual(SeedEntry(path="a", mode=0o644, data=b"x"),
                         SeedEntry(path="a", mode=0o644, data=b"x"))

