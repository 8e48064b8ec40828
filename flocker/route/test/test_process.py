"""
Tests for ``flocker.route._process``: commands run through a real reactor
(no root needed).
"""

import sys

from eliot.testing import LoggedAction
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from ...testtools import capture_logging, run_in_reactor
from .._logging import RUN_COMMAND
from .._process import CommandFailed, IProcessRunner, ProcessRunner


def _run(argv, stdin=None, **options):
    return run_in_reactor(
        lambda reactor: ProcessRunner(reactor, **options).run(argv, stdin))


class CommandFailedTests(SynchronousTestCase):
    """
    The text of ``CommandFailed``.
    """

    def test_exit_status(self):
        """
        It shows the command, its exit status and its message.
        """
        self.assertEqual(
            "`iptables-restore --noflush` exited with status 2: "
            "invalid port",
            str(CommandFailed(["iptables-restore", "--noflush"], 2,
                              "invalid port")))

    def test_not_started(self):
        """
        Without an exit status it says the command failed.
        """
        self.assertEqual(
            "`conntrack -L` failed: conntrack: command not found",
            str(CommandFailed(("conntrack", "-L"), None,
                              "conntrack: command not found")))


class ProcessRunnerTests(SynchronousTestCase):
    """
    ``ProcessRunner`` runs argument vectors through the reactor.
    """

    def test_interface(self):
        """
        It provides ``IProcessRunner``.
        """
        self.assertTrue(verifyObject(IProcessRunner, ProcessRunner(None)))

    def test_stdout(self):
        """
        The ``Deferred`` fires with the command's standard output.
        """
        self.assertEqual(b"a b\n", _run(["echo", "a", "b"]))

    def test_stdin(self):
        """
        ``stdin`` is written to the command's standard input.
        """
        self.assertEqual(b"line 1\nline 2\n",
                         _run(["cat"], b"line 1\nline 2\n"))

    def test_no_shell(self):
        """
        Arguments reach the command as they are, shell syntax included.
        """
        self.assertEqual(b"$HOME; echo `id` *\n",
                         _run(["echo", "$HOME; echo `id` *"]))

    def test_failure(self):
        """
        A non-zero exit fails with the argv, the status and the stripped
        standard error.
        """
        argv = [sys.executable, "-c",
                "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
        with self.assertRaises(CommandFailed) as caught:
            _run(argv)
        self.assertEqual((tuple(argv), 3, "boom"), (
            caught.exception.argv, caught.exception.exit_code,
            caught.exception.stderr))

    def test_missing_command(self):
        """
        A command that is not installed fails saying so.
        """
        with self.assertRaises(CommandFailed) as caught:
            _run(["flocker-no-such-command", "x"])
        self.assertEqual(
            "`flocker-no-such-command x` failed: "
            "flocker-no-such-command: command not found",
            str(caught.exception))

    def test_timeout(self):
        """
        A command running longer than the timeout is killed and fails.
        """
        with self.assertRaises(CommandFailed) as caught:
            _run(["sleep", "30"], timeout=0.2)
        self.assertIn("timed out after 0.2 s", str(caught.exception))
        self.assertIsNone(caught.exception.exit_code)

    def test_prefix(self):
        """
        The runner's prefix goes in front of every command, and failures
        show the whole vector.
        """
        self.assertEqual(b"hi\n", _run(["echo", "hi"], prefix=["env"]))
        with self.assertRaises(CommandFailed) as caught:
            _run(["false"], prefix=["env"])
        self.assertEqual(("env", "false"), caught.exception.argv)

    def test_environment(self):
        """
        Commands run with the C locale so their messages are stable.
        """
        self.assertIn(b"LC_ALL=C\n", _run(["env"]))

    @capture_logging(None)
    def test_logged(self, logger):
        """
        Each command is an eliot action with its argv and the sizes of its
        input and output.
        """
        _run(["cat"], b"12345")
        action = LoggedAction.of_type(logger.messages, RUN_COMMAND)[0]
        self.assertEqual(
            (["cat"], 5, 5, "succeeded"),
            (action.start_message["argv"], action.start_message["stdin_bytes"],
             action.end_message["stdout_bytes"],
             action.end_message["action_status"]))
