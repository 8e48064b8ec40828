"""
Tests for :mod:`flocker._lines`: lines cut from a peer's stream in linear
time, with a cap.
"""

from twisted.trial.unittest import SynchronousTestCase

from flocker._lines import LineBuffer


class LineBufferTests(SynchronousTestCase):
    """
    ``LineBuffer`` gives whole lines and says when one is too long.
    """

    def test_pieces(self):
        """
        Lines split over pieces, or several in one piece, come out whole
        and in order.
        """
        buffer = LineBuffer(100)
        got = []
        for byte in b"ab\ncd":
            got += buffer.feed(bytes([byte]))[0]
        got += buffer.feed(b"e\n\nf\n")[0]
        self.assertEqual(got, [b"ab", b"cde", b"", b"f"])
        self.assertEqual(buffer.pending(), 0)

    def test_taken_lines_dropped(self):
        """
        Lines taken are let go: after many lines the buffer holds far less
        than all of them.
        """
        buffer = LineBuffer(100)
        lines, _ = buffer.feed(b"x" * 50 + b"\n" + b"y\n" * 200000)
        self.assertEqual(len(lines), 200001)
        buffer.feed(b"z")
        self.assertLess(len(buffer._buffer), 65536 * 2 + 100)
        self.assertEqual(buffer.pending(), 1)

    def test_too_long(self):
        """
        An unfinished line over the cap is reported (the lines before it
        still given) and the buffer emptied; a line of exactly the cap is
        taken.
        """
        buffer = LineBuffer(10)
        self.assertEqual(buffer.feed(b"0123456789\nabc"),
                         ([b"0123456789"], False))
        self.assertEqual(buffer.feed(b"defghijk"), ([], True))
        self.assertEqual(buffer.pending(), 0)

    def test_too_long_with_newline(self):
        """
        A line over the cap whose newline came in the same piece is
        reported too, not taken.
        """
        buffer = LineBuffer(3)
        self.assertEqual(buffer.feed(b"ok\ntoo long\nx\n"), ([b"ok"], True))
