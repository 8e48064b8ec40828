"""
Cutting a peer's byte stream into lines, in linear time and with a cap.

Appending to ``bytes`` and splitting the whole buffer again at every piece
costs time quadratic in the length of a line: a peer sending one long line
in small pieces could stall the reactor for minutes.  :class:`LineBuffer`
keeps one ``bytearray``, reads it from an offset, looks at each byte once,
and says when a line goes over its cap, so the caller can drop the peer.
"""

__all__ = ["LineBuffer"]


class LineBuffer(object):
    """
    The unfinished end of a peer's byte stream.

    :ivar int maximum: The longest line taken, in bytes (without its
        newline).
    """

    def __init__(self, maximum):
        self.maximum = maximum
        self._buffer = bytearray()
        self._offset = 0
        self._scanned = 0

    def feed(self, data):
        """
        :param bytes data: What arrived next.
        :return: ``(lines, too_long)``: the lines completed by ``data``
            (``bytes``, without newlines), and whether the line still
            unfinished is now over :attr:`maximum` (the caller then drops
            the peer; the buffer is emptied).
        """
        buffer = self._buffer
        buffer.extend(data)
        lines = []
        while True:
            end = buffer.find(b"\n", self._scanned)
            if end < 0:
                break
            if end - self._offset > self.maximum:
                self.clear()
                return lines, True
            lines.append(bytes(buffer[self._offset:end]))
            self._offset = self._scanned = end + 1
        self._scanned = len(buffer)
        if len(buffer) - self._offset > self.maximum:
            self.clear()
            return lines, True
        if self._offset > 65536 and self._offset * 2 > len(buffer):
            # What was taken goes, once it is most of the buffer: each byte
            # is moved at most a few times.
            del buffer[:self._offset]
            self._scanned -= self._offset
            self._offset = 0
        return lines, False

    def clear(self):
        """
        Forget everything not yet taken.
        """
        self._buffer = bytearray()
        self._offset = self._scanned = 0

    def pending(self):
        """
        :return: How many bytes of an unfinished line are held.
        """
        return len(self._buffer) - self._offset
