"""
Tests for :mod:`flocker.cli._progress`, the live view of a deploy on a
terminal.
"""

import io
import os
import re

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from flocker._change import IChangeObserver, in_parallel, sequentially
from flocker._model import (
    Application, AttachedVolume, Deployment, Node, Port,
)
from flocker.node._changes import (
    HandoffVolume, PushVolume, StartApplication, StopApplication,
)
from flocker.node._fake import FakeCluster, FakeNodeError
from flocker.node._lock import DeployLock
from flocker.node._server import AgentService
from flocker.testtools import temporary_directory

from .._deploy import deploy
from .._progress import TerminalProgress, format_transfer, is_live_terminal
from .._remote import AgentConnections, RemoteNodeAgent
from ..testtools import LoopbackNetwork

A, B = "10.0.0.1", "10.0.0.2"
MiB = 1024 * 1024
WEB = Application(name="web", image="flocker/busybox",
                  ports=[Port(internal=80, external=8080)],
                  volume=AttachedVolume(mountpoint="/data"))
PUSH = PushVolume(node=A, name="web", target=B)
STOP = StopApplication(node=A, name="web")
HANDOFF = HandoffVolume(node=A, name="web", target=B)
START = StartApplication(node=B, application=WEB)
PLAN = sequentially([PUSH, STOP, HANDOFF, START])


class _Terminal(io.StringIO):
    """
    An in-memory text stream that says it is a terminal.
    """

    def isatty(self):
        return True


class _Screen(object):
    """
    What a terminal shows after the text written to it: printable
    characters, carriage return, newline, cursor up (``ESC [ N A``) and
    erase to the end of the line (``ESC [ K``), all a live view uses.
    """

    def __init__(self, text):
        self._rows = [""]
        self._row = self._column = 0
        position = 0
        while position < len(text):
            control = re.match(r"\x1b\[(\d*)([AK])", text[position:])
            if control:
                self._control(*control.groups())
                position += control.end()
            else:
                self._character(text[position])
                position += 1

    def _control(self, count, command):
        if command == "A":
            self._row = max(0, self._row - int(count or 1))
        else:
            self._rows[self._row] = self._rows[self._row][:self._column]

    def _character(self, character):
        if character == "\r":
            self._column = 0
        elif character == "\n":
            self._row += 1
            self._column = 0
            if self._row == len(self._rows):
                self._rows.append("")
        else:
            row = self._rows[self._row].ljust(self._column)
            self._rows[self._row] = (row[:self._column] + character
                                     + row[self._column + 1:])
            self._column += 1

    def lines(self):
        """
        :return: The rows shown, without the empty ones at the bottom.
        """
        rows = list(self._rows)
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def cursor(self):
        """
        :return: ``(row, column)`` of the cursor.
        """
        return self._row, self._column


class IsLiveTerminalTests(SynchronousTestCase):
    """
    Tests for :func:`is_live_terminal`.
    """

    def test_terminal(self):
        """
        A terminal whose ``TERM`` names one gets the live view.
        """
        self.assertTrue(is_live_terminal(_Terminal(), {"TERM": "xterm"}))

    def test_not_terminal(self):
        """
        A stream that is not a terminal (a pipe, a file, one with no
        ``isatty``) does not.
        """
        self.assertEqual(
            [is_live_terminal(io.StringIO(), {"TERM": "xterm"}),
             is_live_terminal(object(), {"TERM": "xterm"})],
            [False, False])

    def test_dumb(self):
        """
        ``TERM=dumb``, an empty or a missing ``TERM`` mean a terminal that
        cannot move its cursor: no live view.
        """
        self.assertEqual(
            [is_live_terminal(_Terminal(), environ)
             for environ in [{"TERM": "dumb"}, {"TERM": ""}, {}]],
            [False, False, False])


class FormatTransferTests(SynchronousTestCase):
    """
    Tests for :func:`format_transfer`.
    """

    def test_known_total(self):
        """
        With a total and a rate: bytes sent of the total, the rate and the
        time left.
        """
        self.assertEqual(format_transfer(3 * MiB // 2, 10 * MiB, 2 * MiB),
                         "1.5 MiB of 10.0 MiB, 2.0 MiB/s, ETA 0:04")

    def test_unknown_total(self):
        """
        Without a total (an incremental send), the total and the time left
        are unknown.
        """
        self.assertEqual(format_transfer(512, None, 256),
                         "512 B of ?, 256 B/s, ETA ?")

    def test_no_rate(self):
        """
        Before a rate is measured (or while nothing moves), the rate and
        time left are unknown.
        """
        self.assertEqual(
            [format_transfer(0, 100, None), format_transfer(50, 100, 0.0)],
            ["0 B of 100 B, ?/s, ETA ?", "50 B of 100 B, 0 B/s, ETA ?"])

    def test_hours(self):
        """
        A time left of an hour or more has hours.
        """
        self.assertEqual(format_transfer(0, 7322, 1),
                         "0 B of 7.2 KiB, 1 B/s, ETA 2:02:02")


class TerminalProgressTests(SynchronousTestCase):
    """
    Tests for :class:`TerminalProgress`.
    """

    def setUp(self):
        self.clock = Clock()
        self.terminal = _Terminal()
        self.view = TerminalProgress(self.clock, self.terminal, width=120)

    def screen(self):
        """
        :return: The :class:`_Screen` of everything written so far.
        """
        return _Screen(self.terminal.getvalue())

    def test_interface(self):
        """
        The view is an ``IChangeObserver``.
        """
        verifyObject(IChangeObserver, self.view)

    def test_transfer_line(self):
        """
        A node's line says how many of its changes are done and, for a
        running transfer, its figures, the rate measured from the samples.
        """
        self.view.start(PLAN)
        self.view.change_started(PUSH)
        self.clock.advance(1)
        self.view.change_progress(PUSH, 1 * MiB, 4 * MiB)
        self.clock.advance(1)
        self.view.change_progress(PUSH, 2 * MiB, 4 * MiB)
        self.assertEqual(self.view.render(), [
            "10.0.0.1 [0/3] push volume web to 10.0.0.2: 2.0 MiB of "
            "4.0 MiB, 1.0 MiB/s, ETA 0:02",
            "10.0.0.2 [0/1] waiting"])

    def test_transfer_unknown_total(self):
        """
        A transfer whose total the node does not know shows what it sent
        and its rate.
        """
        self.view.start(PLAN)
        self.view.change_started(HANDOFF)
        self.clock.advance(2)
        self.view.change_progress(HANDOFF, 1024, None)
        self.assertEqual(self.view.render()[0],
                         "10.0.0.1 [0/3] hand off volume web to 10.0.0.2: "
                         "1.0 KiB of ?, 512 B/s, ETA ?")

    def test_transfer_without_figures(self):
        """
        A running change with no figures (not a transfer, or a node that
        sends none) shows what it does, without its details.
        """
        self.view.start(PLAN)
        self.view.change_started(PUSH)
        self.view.change_started(START)
        self.assertEqual(self.view.render(), [
            "10.0.0.1 [0/3] push volume web to 10.0.0.2",
            "10.0.0.2 [0/1] start application web"])

    def test_rate_window(self):
        """
        The rate follows the last few seconds of samples, not the whole
        transfer's average.
        """
        self.view.start(PUSH)
        self.view.change_started(PUSH)
        for second in range(1, 11):
            self.clock.advance(1)
            self.view.change_progress(
                PUSH, (second if second <= 5 else 5 + 3 * (second - 5)) * MiB,
                None)
        self.assertEqual(self.view.render(), [
            "10.0.0.1 [0/1] push volume web to 10.0.0.2: 20.0 MiB of ?, "
            "3.0 MiB/s, ETA ?"])

    def test_restarted_transfer(self):
        """
        A transfer whose count goes back (it started over another way)
        measures its rate afresh.
        """
        self.view.start(PUSH)
        self.view.change_started(PUSH)
        self.clock.advance(1)
        self.view.change_progress(PUSH, 100, 1000)
        self.view.change_progress(PUSH, 0, 1000)
        self.clock.advance(1)
        self.view.change_progress(PUSH, 50, 1000)
        self.assertEqual(self.view.render(), [
            "10.0.0.1 [0/1] push volume web to 10.0.0.2: 50 B of 1000 B, "
            "50 B/s, ETA 0:19"])

    def test_counts_and_failures(self):
        """
        Finished changes count as done, failed ones are counted too; a node
        with all its changes finished is done.
        """
        self.view.start(in_parallel([PUSH, START]))
        for change in (PUSH, START):
            self.view.change_started(change)
        self.view.change_finished(PUSH, None, 1.0, 5)
        self.view.change_finished(START, object(), 1.0)
        self.assertEqual(self.view.render(), [
            "10.0.0.1 [1/1] done", "10.0.0.2 [1/1, 1 failed] done"])

    def test_cut_to_width(self):
        """
        Block lines are cut to one less than the width, so none wraps.
        """
        view = TerminalProgress(self.clock, self.terminal, width=20)
        view.start(PLAN)
        view.change_started(PUSH)
        self.assertEqual(view.render()[0], "10.0.0.1 [0/3] push")

    def test_figures_kept(self):
        """
        A transfer's figures that do not fit with its description keep
        their place; the description is shortened.
        """
        view = TerminalProgress(self.clock, self.terminal, width=70)
        view.start(PLAN)
        view.change_started(PUSH)
        self.clock.advance(1)
        view.change_progress(PUSH, 10, 100)
        self.assertEqual(view.render()[0],
                         "10.0.0.1 [0/3] push volume web to...: 10 B of 100 B, "
                         "10 B/s, ETA 0:09")

    def test_redraw_rate_limited(self):
        """
        Events only change what the next redraw shows: the block is drawn
        by the clock, once per interval, and not again while its text is
        the same.
        """
        self.view.start(PLAN)
        self.view.change_started(PUSH)
        self.clock.advance(0.1)
        for sent in range(100):
            self.view.change_progress(PUSH, sent, 1000)
        self.clock.advance(0.1)
        self.assertEqual(self.terminal.getvalue(), "")
        self.clock.advance(0.05)
        drawn = self.terminal.getvalue()
        # Less than a second of samples: no rate (nor time left) yet.
        self.assertEqual(self.screen().lines(), [
            "10.0.0.1 [0/3] push volume web to 10.0.0.2: 99 B of 1000 B, "
            "?/s, ETA ?",
            "10.0.0.2 [0/1] waiting"])
        self.clock.advance(0.25)
        self.assertEqual(self.terminal.getvalue(), drawn)
        self.clock.advance(0.5)
        drawn = self.terminal.getvalue()
        self.view.change_progress(PUSH, 200, 1000)
        self.assertEqual(self.terminal.getvalue(), drawn)
        self.clock.advance(0.25)
        self.assertEqual(self.screen().lines()[0],
                         "10.0.0.1 [0/3] push volume web to 10.0.0.2: "
                         "200 B of 1000 B, 200 B/s, ETA 0:04")

    def test_lines_above_block(self):
        """
        A finished change's line appears above the block, which is drawn
        again under it in the same write.
        """
        self.view.start(PLAN)
        self.view.change_started(PUSH)
        self.clock.advance(0.25)
        self.view.change_finished(PUSH, None, 0.25, 10)
        before = len(self.terminal.getvalue())
        self.view.write_line("10.0.0.1: push volume web (10 B sent, 0.25 s)")
        self.assertEqual(self.terminal.getvalue()[before:], (
            "\x1b[2A"
            "\r10.0.0.1: push volume web (10 B sent, 0.25 s)\x1b[K\n"
            "\r10.0.0.1 [1/3] waiting\x1b[K\n"
            "\r10.0.0.2 [0/1] waiting\x1b[K\n"))
        self.assertEqual(self.screen().lines(), [
            "10.0.0.1: push volume web (10 B sent, 0.25 s)",
            "10.0.0.1 [1/3] waiting",
            "10.0.0.2 [0/1] waiting"])

    def test_erased_at_stop(self):
        """
        ``stop`` erases the block, leaves the lines above it and the cursor
        where the block began, and stops the redraws.
        """
        self.view.start(PLAN)
        self.view.write_line("first")
        self.view.change_started(PUSH)
        self.clock.advance(0.25)
        self.view.stop()
        self.assertEqual((self.screen().lines(), self.screen().cursor()),
                         (["first"], (1, 0)))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.terminal.write("summary\n")
        self.assertEqual(self.screen().lines(), ["first", "summary"])

    def test_quick_plan_draws_nothing(self):
        """
        A plan that ends before the first redraw writes nothing on the
        terminal but its lines.
        """
        self.view.start(STOP)
        self.view.change_started(STOP)
        self.view.change_finished(STOP, None, 0.01)
        self.view.write_line("10.0.0.1: stop application web (0.01 s)")
        self.clock.advance(0.1)
        self.view.stop()
        self.assertEqual(self.terminal.getvalue(),
                         "\r10.0.0.1: stop application web (0.01 s)\x1b[K\n")


class DeployLiveViewTests(SynchronousTestCase):
    """
    The live view of a whole deploy, through the agent protocol in memory:
    the nodes' progress reports reach the terminal.
    """

    def setUp(self):
        self.clock = Clock()
        self.cluster = FakeCluster([A, B], clock=self.clock,
                                   bytes_per_second=1000)
        directory = temporary_directory(self)
        network = LoopbackNetwork({
            address: AgentService(
                self.clock, lambda _, agent=agent: agent,
                DeployLock(os.path.join(directory, address)),
                expected_errors=(FakeNodeError,))
            for address, agent in self.cluster.agents.items()}, self.clock)
        connections = AgentConnections(network.connect)
        self.addCleanup(connections.close)
        self.agents = {address: RemoteNodeAgent(connections, address)
                       for address in (A, B)}
        # web runs on A with 5000 bytes of data, and is moved to B.
        self.successResultOf(deploy(self.deployment(A), self.cluster.agents))
        self.cluster.agents[A].write("web", "x" * 5000)

    def deployment(self, address):
        """
        :return: A deployment running web on ``address``.
        """
        return Deployment(nodes=[
            Node(address=a, applications=[WEB] if a == address else [])
            for a in (A, B)])

    def test_transfer_shown(self):
        """
        While the move's pre-copy runs, the terminal shows its figures from
        the node's progress lines; at the end only the changes' lines are
        left, as a non-terminal would get them, the view no longer redraws,
        and the move is done.
        """
        terminal = _Terminal()
        view = TerminalProgress(self.clock, terminal, width=200)
        lines = []

        def write(line):
            lines.append(line)
            view.write_line(line)
        d = deploy(self.deployment(B), self.agents, write=write,
                   clock=self.clock, live=view)
        self.clock.pump([0.25] * 10)
        shown = _Screen(terminal.getvalue()).lines()
        self.assertIn("10.0.0.1 [0/5] push volume web to 10.0.0.2: "
                      "2.0 KiB of 4.9 KiB, 1000 B/s, ETA 0:03", shown)
        self.clock.pump([0.25] * 40)
        result = self.successResultOf(d)
        self.assertTrue(result.converged)
        self.assertEqual(_Screen(terminal.getvalue()).lines(), lines)
        self.assertEqual(len(lines), sum(result.changed.values()))
        # The view's redraws ended with the deploy.
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.cluster.agents[B].data["web"], "x" * 5000)

    def test_not_terminal_unchanged(self):
        """
        Without a live view the same deploy writes one line per finished
        change and nothing else.
        """
        lines = []
        d = deploy(self.deployment(B), self.agents, write=lines.append,
                   clock=self.clock)
        self.clock.pump([0.25] * 50)
        result = self.successResultOf(d)
        self.assertEqual(len(lines), sum(result.changed.values()))
        self.assertEqual([line for line in lines if "\x1b" in line], [])
        self.assertTrue(lines[0].startswith(
            "10.0.0.2: expect web from 10.0.0.1"))
        self.assertTrue(lines[1].startswith(
            "10.0.0.1: push volume web to 10.0.0.2 (about"))
