"""
The live view of a deploy on a terminal: :class:`TerminalProgress` keeps a
block of lines at the bottom of the terminal, one per node, saying what the
node is doing and how far its volume transfers got, redrawn in place a few
times a second; the lines of finished changes appear above it as they
finish.

Only for terminals (:func:`is_live_terminal`): anywhere else (a pipe, a
file, ``TERM=dumb``) the deploy writes one line per finished change and
nothing else, so logs and scripts read the same as before.
"""

import attr
from zope.interface import implementer

from .._change import IChangeObserver, ITransfer, leaves
from ..node._changes import describe_size

__all__ = ["TerminalProgress", "is_live_terminal", "format_transfer",
           "REDRAW_INTERVAL"]

#: Least seconds between two redraws of the live block.
REDRAW_INTERVAL = 0.25

#: Seconds of progress samples a transfer's rate is measured over: long
#: enough to smooth the bursts of a pipe, short enough to follow a change
#: of pace.
RATE_WINDOW = 5.0

#: Least seconds of samples before a rate (and a time left) is shown.
RATE_MINIMUM = 1.0

#: ANSI: erase from the cursor to the end of the line.
_ERASE_LINE = "\x1b[K"


def _up(count):
    """
    :return: The ANSI sequence moving the cursor up ``count`` lines.
    """
    return "\x1b[%dA" % (count,)


def is_live_terminal(stream, environ):
    """
    Whether a live view may be drawn on ``stream``: it is a terminal
    (``isatty()``) whose ``TERM`` names one that moves its cursor (set, and
    not ``dumb``, the value editors' shells and some CI runners give to say
    "no escape sequences").

    :param stream: A text stream.
    :param environ: The process environment (a mapping).
    :return: ``bool``.
    """
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return False
    return environ.get("TERM", "dumb") not in ("", "dumb")


def _duration(seconds):
    """
    :return: ``seconds`` as ``M:SS``, or ``H:MM:SS`` from an hour.
    """
    seconds = int(round(seconds))
    if seconds >= 3600:
        return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60,
                                 seconds % 60)
    return "%d:%02d" % (seconds // 60, seconds % 60)


def format_transfer(sent, total, rate):
    """
    :param int sent: Bytes sent so far.
    :param total: Bytes to send in all, or ``None`` if unknown.
    :param rate: Bytes per second, or ``None`` if not measured yet.
    :return: The figures of a transfer for people, such as ``1.5 MiB of
        10.0 MiB, 2.0 MiB/s, ETA 0:05``; unknown figures are ``?``.
    """
    text = "%s of %s" % (describe_size(sent), "?" if total is None
                         else describe_size(total))
    text += ", %s/s" % ("?" if rate is None else describe_size(int(rate)),)
    if total is not None and rate:
        text += ", ETA %s" % (_duration(max(total - sent, 0) / rate),)
    else:
        text += ", ETA ?"
    return text


@attr.s
class _Transfer(object):
    """
    The progress samples of one running transfer.

    :ivar samples: ``list`` of ``(time, bytes sent)``, oldest first, from
        its start.
    :ivar total: Bytes to send in all, or ``None``.
    """
    samples = attr.ib()
    total = attr.ib(default=None)
    #: Whether the node sent any figures (single calls send none).
    reported = attr.ib(default=False)

    def add(self, now, sent, total):
        """
        Record a sample, forgetting those the rate no longer needs.
        """
        self.total = total
        self.reported = True
        if sent < self.samples[-1][1]:
            # The transfer started over (a push falling back to another
            # way of sending): its earlier pace says nothing now.
            self.samples = [(now, sent)]
            return
        self.samples.append((now, sent))
        while (len(self.samples) > 2
               and self.samples[1][0] <= now - RATE_WINDOW):
            del self.samples[0]

    def rate(self):
        """
        :return: Bytes per second over the samples kept, or ``None`` until
            they span :data:`RATE_MINIMUM` seconds (a transfer's first
            moments, spent connecting, say nothing of its pace).
        """
        (first_time, first), (last_time, last) = (self.samples[0],
                                                  self.samples[-1])
        if last_time - first_time < RATE_MINIMUM:
            return None
        return (last - first) / (last_time - first_time)

    def describe(self):
        """
        :return: :func:`format_transfer` of the latest figures.
        """
        return format_transfer(self.samples[-1][1], self.total, self.rate())


@attr.s
class _Node(object):
    """
    One node's part of the plan.

    :ivar int total: Its leaf changes.
    :ivar int done: How many of them finished.
    :ivar int failed: How many of those failed.
    :ivar running: ``list`` of its leaf changes running now, in start order.
    """
    total = attr.ib(default=0)
    done = attr.ib(default=0)
    failed = attr.ib(default=0)
    running = attr.ib(default=attr.Factory(list))


def _node_of(change):
    # The same attribution as the deploy's per-node counts.
    return getattr(change, "node", "cluster")


def _short(change):
    """
    :return: What ``change`` does, without its node (the line starts with
        it) and without the parenthesised details that would push the
        progress figures off the line.
    """
    text = change.describe()
    prefix = "%s: " % (_node_of(change),)
    if text.startswith(prefix):
        text = text[len(prefix):]
    return text.split(" (", 1)[0]


@implementer(IChangeObserver)
class TerminalProgress(object):
    """
    A live view of a running plan on a terminal (see the module
    documentation): an ``IChangeObserver`` that :func:`deploy
    <flocker.cli._deploy.deploy>` starts with the plan and stops at its
    end, and whose :meth:`write_line` the deploy's other output goes
    through, so that it appears above the live block.

    The block is redrawn by the clock, at most every ``interval`` seconds
    and only when its text changed; observed events only update what the
    next redraw shows.
    """

    def __init__(self, clock, stream, width=80, interval=REDRAW_INTERVAL):
        """
        :param clock: ``IReactorTime`` provider: redraws, transfer rates.
        :param stream: The terminal's text stream.
        :param int width: The terminal's columns; block lines are cut to
            fit, since a wrapped line would break redrawing in place.
        :param float interval: Least seconds between two redraws.
        """
        self._clock = clock
        self._stream = stream
        self._width = width
        self._interval = interval
        self._nodes = {}
        self._transfers = {}
        self._drawn = []
        self._timer = None

    def start(self, plan):
        """
        Show ``plan`` running: the block is first drawn ``interval``
        seconds from now (a plan done by then never shows it).

        :param plan: The ``IStateChange`` tree about to run.
        """
        self._nodes = {}
        for change in leaves(plan):
            self._nodes.setdefault(_node_of(change), _Node()).total += 1
        self._timer = self._clock.callLater(self._interval, self._tick)

    def stop(self):
        """
        The plan ended: stop redrawing and erase the block, leaving the
        cursor where it began, for what is written next.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._draw([])

    def write_line(self, line):
        """
        Write a line of output above the live block (which, once shown, is
        redrawn under it).

        :param str line: The text, without newline.
        """
        # Before the first redraw the block stays hidden, so a quick plan
        # prints its lines and nothing else.
        self._draw(self.render() if self._drawn else [], above=[line])

    def render(self):
        """
        :return: The live block's lines: one per node with changes in the
            plan, ``NODE [DONE/TOTAL] ACTIVITY``, cut to the width.
        """
        lines = []
        for address in sorted(self._nodes):
            node = self._nodes[address]
            count = "%d/%d" % (node.done, node.total)
            if node.failed:
                count += ", %d failed" % (node.failed,)
            prefix = "%s [%s] " % (address, count)
            if node.running:
                activity = self._doing(node.running,
                                       self._width - 1 - len(prefix))
            elif node.done < node.total:
                activity = "waiting"
            else:
                activity = "done"
            lines.append((prefix + activity)[:max(self._width - 1, 1)])
        return lines

    def _doing(self, running, room):
        """
        :param running: A node's running changes.
        :param int room: Columns left on its line.
        :return: What they do and their transfers' figures; when one
            transfer does not fit, its description is shortened rather
            than its figures cut.
        """
        parts = []
        for change in running:
            transfer = self._transfers.get(change)
            figures = (transfer.describe()
                       if transfer is not None and transfer.reported
                       else None)
            parts.append((_short(change), figures))
        text = "; ".join(label + (": " + figures if figures else "")
                         for label, figures in parts)
        if len(text) <= room or len(parts) != 1 or parts[0][1] is None:
            return text
        label, figures = parts[0]
        keep = room - len(": " + figures) - len("...")
        if keep < 8:
            return text
        return "%s...: %s" % (label[:keep], figures)

    def _tick(self):
        lines = self.render()
        if lines != self._drawn:
            self._draw(lines)
        self._timer = self._clock.callLater(self._interval, self._tick)

    def _draw(self, lines, above=()):
        """
        Replace the drawn block with ``above`` (lines that stay) and then
        ``lines`` (the new block), in one write: overwriting in place
        rather than erasing first, so the terminal never shows it empty.
        """
        output = []
        if self._drawn:
            output.append(_up(len(self._drawn)))
        written = list(above) + list(lines)
        for line in written:
            output.append("\r" + line + _ERASE_LINE + "\n")
        extra = len(self._drawn) - len(written)
        if extra > 0:
            output.append((_ERASE_LINE + "\n") * extra + _up(extra))
        self._drawn = list(lines)
        if output:
            self._stream.write("".join(output))
            self._stream.flush()

    def change_started(self, change):
        node = self._nodes.setdefault(_node_of(change), _Node())
        node.running.append(change)
        if ITransfer.providedBy(change):
            # Its start is the first sample: the time to the first byte
            # counts against the rate until the window has moved past it.
            self._transfers[change] = _Transfer(
                samples=[(self._clock.seconds(), 0)])

    def change_progress(self, change, sent, total):
        transfer = self._transfers.get(change)
        if transfer is not None:
            transfer.add(self._clock.seconds(), sent, total)

    def change_finished(self, change, failure, seconds, result=None):
        node = self._nodes.setdefault(_node_of(change), _Node())
        if change in node.running:
            node.running.remove(change)
        node.done += 1
        if failure is not None:
            node.failed += 1
        if change not in node.running:
            self._transfers.pop(change, None)
