"""
Tests for ``flocker.cli.script``: the ``flocker-deploy`` command line.
"""

import io
import json
import socket
import sys
import time
from textwrap import dedent

from twisted.internet.defer import maybeDeferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from flocker import __version__
from flocker._model import Application, Deployment, Node
from flocker.cli.script import (
    _confirmation, _dry_run_json, _parser, _open_log, flocker_deploy_main, main, summarize,
)
from flocker.testtools import capture_output, cases, temporary_path, with_cases

DEPLOYMENT = """\
version: 1
nodes:
  192.0.2.1: [web, db]
  node2.example.com: [cache]
"""

NATIVE = """\
version: 1
applications:
  web:
    image: example/web
    ports: [{internal: 80, external: 8080}]
    links: [{local_port: 5432, remote_port: 5432, alias: db}]
  db:
    image: postgres
    ports: [{internal: 5432, external: 5432}]
  cache:
    image: redis
"""

COMPOSE = """\
web:
  image: example/web
  ports: ["8080:80"]
  links: [db]
db:
  image: postgres
  ports: ["5432:5432"]
cache:
  image: redis
"""


#: The nodes of DEPLOYMENT, as the command lists them.
NODES = "192.0.2.1, node2.example.com"

#: What the command says of modes asked for together.
EXCLUSIVE = ("--check, --dry-run, --status, --logs, --remove, --failover "
             "and --rotate-node-keys exclude each other (but --remove and "
             "--failover take --dry-run)")


def run(argv):
    """
    Run ``flocker-deploy`` with ``argv`` and no reactor.

    :return: ``(exit status, stdout text, stderr text)``.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    status = main(None, argv, stdout, stderr)
    return status, stdout.getvalue(), stderr.getvalue()


def file_writer(test):
    """
    :param test: The ``TestCase`` whose temporary directory is used.
    :return: A function writing named files into a temporary directory
        and returning their paths.
    """
    tmp_path = temporary_path(test)

    def write(**texts):
        paths = []
        for name, text in texts.items():
            path = tmp_path / (name + ".yml")
            path.write_text(dedent(text))
            paths.append(str(path))
        return paths
    return write


class _ClosingRunner(object):
    """
    Stands in for the SSH command runner under the stand-in clusters of
    these tests, which never use it: closing it succeeds.
    """

    def close(self):
        return succeed(None)


def _without_ssh(test):
    """
    Make ``flocker-deploy`` open a :class:`_ClosingRunner` instead of an
    SSH command runner for the rest of ``test``.
    """
    from flocker import _ssh
    test.patch(_ssh, "ssh_command_runner",
               lambda reactor, **kwargs: _ClosingRunner())


class OptionsTests(SynchronousTestCase):
    """
    ``--help``, ``--version`` and bad command lines.
    """

    def test_help(self):
        """
        ``--help`` prints usage, including ``--check``, on stdout and
        succeeds.
        """
        status, out, err = run(["--help"])
        self.assertEqual((status, err), (0, ""))
        self.assertTrue(out.startswith("usage: flocker-deploy"))
        self.assertTrue("--check" in out and "DEPLOYMENT_CONFIG" in out)

    def test_version(self):
        """
        ``--version`` prints the package version and succeeds.
        """
        self.assertEqual(
            run(["--version"]),
            (0, "flocker-deploy %s\n" % (__version__,), ""))

    def test_missing_arguments(self):
        """
        Without the two files the command fails with a usage error.
        """
        status, out, err = run(["--check"])
        self.assertEqual((status, out), (2, ""))
        self.assertTrue("usage:" in err and "required" in err)

    def test_unknown_option(self):
        """
        An unknown option is a usage error.
        """
        status, out, err = run(["--frobnicate", "a", "b"])
        self.assertEqual((status, out), (2, ""))
        self.assertIn("unrecognized arguments: --frobnicate", err)

    def test_status_exclusive(self):
        """
        ``--status`` cannot be asked for with ``--dry-run`` or ``--check``.
        """
        files = file_writer(self)
        for other in ("--dry-run", "--check"):
            status, out, err = run(["--status", other]
                                   + files(d=DEPLOYMENT, a=NATIVE))
            self.assertEqual((status, out), (2, ""))
            self.assertIn("exclude each other", err)

    def test_check_and_dry_run_exclusive(self):
        """
        ``--check`` (no network) and ``--dry-run`` (network, no change)
        cannot be asked for together.
        """
        files = file_writer(self)
        status, out, err = run(["--check", "--dry-run"]
                               + files(d=DEPLOYMENT, a=NATIVE))
        self.assertEqual((status, out), (2, ""))
        self.assertIn("exclude each other", err)

    def test_options_need_their_mode(self):
        """
        ``--json``, ``--follow``/``--tail`` and ``--with-volumes`` are
        refused without ``--status``/``--dry-run``, ``--logs`` and
        ``--remove``; ``--remove`` and ``--logs`` exclude each other.
        """
        files = file_writer(self)
        results = [run(argv + files(d=DEPLOYMENT, a=NATIVE)) for argv in (
            ["--json"], ["--follow"], ["--tail", "3"], ["--with-volumes"],
            ["--remove", "web", "--logs", "web"],
            ["--logs", "web", "--dry-run"])]
        self.assertEqual(
            [(status, out) for status, out, err in results],
            [(2, "")] * 6)
        self.assertEqual(
            [err.splitlines()[-1].split(": error: ")[1]
             for status, out, err in results],
            ["--json goes with --status or --dry-run",
             "--follow and --tail go with --logs",
             "--follow and --tail go with --logs",
             "--with-volumes goes with --remove",
             EXCLUSIVE, EXCLUSIVE])

    def test_failover_exclusive(self):
        """
        ``--failover`` goes with ``--dry-run`` only among the modes.
        """
        files = file_writer(self)
        for other in (["--check"], ["--status"], ["--remove", "web"],
                      ["--logs", "web"]):
            status, out, err = run(["--failover", "192.0.2.1"] + other
                                   + files(d=DEPLOYMENT, a=NATIVE))
            self.assertEqual((status, out), (2, ""))
            self.assertTrue(err.splitlines()[-1].endswith(EXCLUSIVE))

    def test_failover_unknown_node(self):
        """
        Declaring dead a node the deployment file does not have is one
        line naming the file and its nodes, exit status 1, and no node is
        contacted (no reactor is given) and no file changes.
        """
        files = file_writer(self)
        paths = files(d=DEPLOYMENT, a=NATIVE)
        before = [open(path).read() for path in paths]
        status, out, err = run(["--failover", "10.9.9.9"] + paths)
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(
            err,
            "flocker-deploy: --failover: 10.9.9.9 is not a node "
            "of %s (its nodes: %s)\n" % (paths[0], NODES))
        self.assertEqual([open(path).read() for path in paths], before)


class CheckTests(SynchronousTestCase):
    """
    ``flocker-deploy --check DEPLOYMENT_CONFIG APPLICATION_CONFIG``.
    """

    def test_native(self):
        """
        Valid native files give a summary and success.
        """
        files = file_writer(self)
        self.assertEqual(
            run(["--check"] + files(d=DEPLOYMENT, a=NATIVE)),
            (0, "3 applications on 2 nodes\n", ""))

    def test_compose(self):
        """
        A compose application file is accepted too.
        """
        files = file_writer(self)
        self.assertEqual(
            run(["--check"] + files(d=DEPLOYMENT, a=COMPOSE)),
            (0, "3 applications on 2 nodes\n", ""))

    def test_standby(self):
        """
        The summary counts the applications with a standby.
        """
        files = file_writer(self)
        self.assertEqual(
            run(["--check"] + files(
                d=DEPLOYMENT + "standby:\n  db: {nodes: [node2.example.com]}\n",
                a=NATIVE.replace("image: postgres", "image: postgres\n"
                          "    volume: {mountpoint: /data}"))),
            (0, "3 applications on 2 nodes, 1 with a standby\n", ""))

    def test_standby_problem(self):
        """
        A standby problem is a located line on stderr and a failure.
        """
        files = file_writer(self)
        deployment, applications = files(
            d=DEPLOYMENT + "standby:\n  cache: {nodes: [192.0.2.1]}\n",
            a=NATIVE)
        self.assertEqual(
            run(["--check", deployment, applications]),
            (1, "", deployment + ":6:3: application cache has no volume, so "
             "a standby has nothing to copy: give it a volume or remove its "
             "standby\n"))

    def test_check_after_files(self):
        """
        ``--check`` may follow the files.
        """
        files = file_writer(self)
        self.assertEqual(run(files(d=DEPLOYMENT, a=NATIVE) + ["--check"])[0],
                         0)

    def test_problems(self):
        """
        Every problem is printed as ``PATH:LINE:COL: message`` on stderr,
        nothing on stdout, and the command fails with status 1.
        """
        files = file_writer(self)
        deployment, applications = files(
            d=DEPLOYMENT.replace("cache", "cahce"),
            a=NATIVE.replace("image: redis", "image: redis\n    build: ."))
        status, out, err = run(["--check", deployment, applications])
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(
            err.splitlines(),
            [deployment + ':4:23: application "cahce" is not defined in the '
             'application configuration (did you mean "cache"?)',
             applications + ':12:5: unknown key "build" in application '
             'cache',
            ])

    def test_missing_file(self):
        """
        A missing file is reported with its path, without a traceback.
        """
        files = file_writer(self)
        tmp_path = temporary_path(self)
        (applications,) = files(a=NATIVE)
        missing = str(tmp_path / "missing.yml")
        status, out, err = run(["--check", missing, applications])
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(
            err,
            missing + (
                ":1:1: cannot read the file: No such file or directory\n"))

    def test_no_network(self):
        """
        Checking never opens a socket.
        """
        files = file_writer(self)
        paths = files(d=DEPLOYMENT, a=NATIVE)

        def refuse(*args, **kwargs):
            raise AssertionError("--check opened a socket")
        self.patch(socket, "socket", refuse)
        self.patch(socket, "create_connection", refuse)
        self.patch(socket, "getaddrinfo", refuse)
        self.assertEqual(run(["--check"] + paths)[0], 0)


class RotateNodeKeysOptionTests(SynchronousTestCase):
    """
    ``--rotate-node-keys`` rotates the nodes' own keys; ``--node-key`` (the
    shared key file) is gone.
    """

    def test_help(self):
        """
        ``--help`` documents ``--rotate-node-keys`` and no ``--node-key``.
        """
        status, out, err = run(["--help"])
        self.assertIn("--rotate-node-keys", out)
        self.assertNotIn("--node-key ", out)

    def test_deployment_only(self):
        """
        It needs no application file, and excludes the other modes, in one
        line.
        """
        paths = file_writer(self)(d=DEPLOYMENT, a=NATIVE)
        status, out, err = run(["--rotate-node-keys", "--status", paths[0]])
        self.assertEqual(status, 2)
        self.assertIn("exclude each other", err)

    def rotating(self, result):
        """
        :param RotationResult result: What the stand-in rotation gives.
        :return: ``(status, stdout text, what the rotation was given)`` of
            ``flocker-deploy --rotate-node-keys DEPLOYMENT`` over that
            stand-in (which writes one step line).
        """
        from twisted.internet.task import Clock

        from flocker.cli import _cluster

        _without_ssh(self)
        given = {}

        def rotate_over_ssh(reactor, deployment, runner, **kwargs):
            given.update(kwargs, nodes=[n.address for n in deployment.nodes])
            kwargs["write"]("node keys: prepare on 2 nodes")
            return succeed(result)
        self.patch(_cluster, "rotate_over_ssh", rotate_over_ssh)
        paths = file_writer(self)(d=DEPLOYMENT, a=NATIVE)
        log = temporary_path(self) / "log"
        stdout = io.StringIO()
        status = self.successResultOf(main(
            Clock(), ["--log", str(log), "--rotate-node-keys", paths[0]],
            stdout, io.StringIO(), {}))
        return status, stdout.getvalue(), given

    def test_rotated(self):
        """
        A rotation that worked exits 0, printing each step as it ends and
        each node's old and new fingerprint, over the deployment's nodes
        (no application file needed).
        """
        from flocker.cli._rotate import RotationResult
        status, out, given = self.rotating(RotationResult(rotated={
            "10.0.0.1": ("SHA256:old1", "SHA256:new1"),
            "10.0.0.2": ("SHA256:old2", "SHA256:new2")}))
        self.assertEqual(status, 0)
        self.assertEqual(out.splitlines()[:3], [
            "node keys: prepare on 2 nodes",
            "10.0.0.1: node key SHA256:old1 -> SHA256:new1",
            "10.0.0.2: node key SHA256:old2 -> SHA256:new2"])
        self.assertEqual(sorted(given["nodes"]),
                         ["192.0.2.1", "node2.example.com"])

    def test_stopped(self):
        """
        A rotation that stopped exits 1 with one line per failing node and
        one saying pushes are still accepted and how to go on.
        """
        from flocker.cli._rotate import RotationResult
        status, out, given = self.rotating(RotationResult(failed={
            "10.0.0.2": "finish failed: the next key is not yet installed"}))
        self.assertEqual(status, 1)
        self.assertEqual(out.splitlines()[1:3], [
            "10.0.0.2: finish failed: the next key is not yet installed",
            "node keys: rotation stopped; every push is still accepted; "
            "run --rotate-node-keys again to finish"])

    def test_node_key_refused(self):
        """
        ``--node-key`` is an unknown option now.
        """
        status, out, err = run(["--node-key", "/k"] + file_writer(self)(
            d=DEPLOYMENT, a=NATIVE))
        self.assertEqual(status, 2)
        self.assertIn("--node-key", err)


@with_cases
class SummarizeTests(SynchronousTestCase):
    """
    The one-line summary of a valid deployment.
    """

    @cases([
        ({}, "0 applications on 0 nodes"),
        ({"n1": []}, "0 applications on 1 node"),
        ({"n1": ["a"]}, "1 application on 1 node"),
        ({"n1": ["a", "b"], "n2": []}, "2 applications on 2 nodes"),
    ])
    def test_counts(self, placements, expected):
        """
        Counts use singular nouns for one.
        """
        deployment = Deployment(nodes=[
            Node(address=address, applications=[
                Application(name=name, image="i") for name in names])
            for address, names in placements.items()])
        self.assertEqual(summarize(deployment), expected)


class EntryPointTests(SynchronousTestCase):
    """
    The console-script function.
    """

    def test_exits_with_status(self):
        """
        ``flocker_deploy_main`` runs the command with the process's
        arguments and streams and exits with its status.
        """
        files = file_writer(self)
        stdout, stderr = capture_output(self)
        paths = files(d=DEPLOYMENT, a=NATIVE.replace("8080", "0"))
        self.patch(sys, "argv", ["flocker-deploy", "--check"] + paths)
        with self.assertRaises(SystemExit) as info:
            flocker_deploy_main()
        self.assertEqual(info.exception.code, 1)
        self.assertEqual(stdout.getvalue(), "")
        self.assertNotIn("Traceback", stderr.getvalue())
        self.assertTrue(stderr.getvalue().startswith(paths[1] + ":5:"))

    def test_success(self):
        """
        A valid check exits with status 0 and prints the summary.
        """
        files = file_writer(self)
        stdout, stderr = capture_output(self)
        self.patch(sys, "argv", ["flocker-deploy", "--check"]
                            + files(d=DEPLOYMENT, a=NATIVE))
        with self.assertRaises(SystemExit) as info:
            flocker_deploy_main()
        self.assertEqual(info.exception.code, 0)
        self.assertEqual(stdout.getvalue(), "3 applications on 2 nodes\n")


class _Terminal(io.StringIO):
    """
    An in-memory text stream that says it is a terminal.
    """

    def isatty(self):
        return True


@with_cases
class LiveViewTests(SynchronousTestCase):
    """
    ``flocker-deploy`` draws the live view only on a terminal that can
    redraw; elsewhere its output is one line per event.
    """

    def deploying(self):
        """
        A function running a deploy with ``stdout`` and ``environ`` over a
        stand-in for the cluster (which writes one change line), returning
        what the cluster was given.
        """
        from twisted.internet.task import Clock

        from flocker._change import Sequentially
        from flocker.cli import _cluster
        from flocker.cli._deploy import DeployResult

        _without_ssh(self)
        given = {}

        def deploy_over_ssh(reactor, deployment, runner, **kwargs):
            given.update(kwargs)
            kwargs["write"]("192.0.2.1: stop application web (0.10 s)")
            return succeed(DeployResult(plan=Sequentially(changes=[])))
        self.patch(_cluster, "deploy_over_ssh", deploy_over_ssh)
        paths = file_writer(self)(d=DEPLOYMENT, a=NATIVE)
        log = temporary_path(self) / "log"

        def run_with(stdout, environ):
            status = main(Clock(), ["--log", str(log)] + paths,
                          stdout, io.StringIO(), environ)
            return status, given
        return run_with

    def test_terminal(self):
        """
        On a terminal the deploy is given a live view, the change lines go
        through it, and the summary follows them.
        """
        deploying = self.deploying()
        from flocker.cli._progress import TerminalProgress
        stdout = _Terminal()
        status, given = deploying(stdout, {"TERM": "xterm"})
        self.assertIsInstance(given["live"], TerminalProgress)
        self.assertEqual(given["write"], given["live"].write_line)
        self.assertTrue(
            stdout.getvalue().startswith(
                "\r192.0.2.1: stop application web (0.10 s)\x1b[K\n"
                "cluster already converged"))

    @cases([
        (io.StringIO(), {"TERM": "xterm"}),
        (_Terminal(), {"TERM": "dumb"}),
    ])
    def test_not_terminal(self, stdout, environ):
        """
        Elsewhere (not a terminal, or ``TERM=dumb``) there is no live view
        and the output is plain lines.
        """
        deploying = self.deploying()
        status, given = deploying(stdout, environ)
        self.assertIsNone(given["live"])
        self.assertTrue(
            stdout.getvalue().startswith(
                "192.0.2.1: stop application web (0.10 s)\n"
                "cluster already converged"))
        self.assertNotIn("\x1b", stdout.getvalue())


class OpenLogTests(SynchronousTestCase):
    """
    Tests for the deploy log ``flocker-deploy`` opens.
    """

    def test_same_second(self):
        """
        Deploys started in the same second get a log file each: the time's
        name, then ``-2``, ``-3``...; nothing is appended to another
        deploy's log.
        """
        tmp_path = temporary_path(self)
        now = time.struct_time((2026, 11, 30, 1, 2, 3, 0, 334, 0))
        opened = []
        for _ in range(3):
            log = _open_log(None, directory=str(tmp_path), now=now)
            opened.append(log.name)
            log.write("x")
            log.close()
        self.assertEqual(
            [p.rsplit("/", 1)[1] for p in opened],
            ["deploy-20261130T010203.log", "deploy-20261130T010203-2.log",
             "deploy-20261130T010203-3.log"])
        self.assertEqual([open(p).read() for p in opened], ["x", "x", "x"])

    def test_rotated(self):
        """
        Opening a new default log keeps the newest ``keep`` deploy logs
        (same-second ``-N`` ones ordered after their first) and deletes the
        older ones; other files stay.
        """
        tmp_path = temporary_path(self)
        (tmp_path / "notes.txt").write_text("mine")
        for second in range(3):
            now = time.struct_time((2026, 11, 30, 1, 2, second, 0, 334, 0))
            for _ in range(2):
                _open_log(None, directory=str(tmp_path), now=now,
                          keep=3).close()
        self.assertEqual(
            sorted(p.name for p in tmp_path.iterdir()),
            ["deploy-20261130T010201-2.log", "deploy-20261130T010202-2.log",
             "deploy-20261130T010202.log", "notes.txt"])

    def test_explicit_path_appends(self):
        """
        A log named with ``--log`` is appended to (and its directory made).
        """
        tmp_path = temporary_path(self)
        path = tmp_path / "sub" / "mine.log"
        for text in ("a", "b"):
            log = _open_log(str(path))
            log.write(text)
            log.close()
        self.assertEqual(path.read_text(), "ab")


class ConfirmationTests(SynchronousTestCase):
    """
    How ``flocker-deploy`` confirms destructive changes.
    """

    def confirm(self, argv, stdin, answer="y\n"):
        options = _parser(io.StringIO(), io.StringIO()).parse_args(
            argv + ["d.yml", "a.yml"])
        out, lines = io.StringIO(), []
        confirm = _confirmation(options, stdin, out, lines.append,
                                read_line=lambda: succeed(answer))
        if confirm is None:
            return None, out.getvalue(), lines
        outcome = []
        maybeDeferred(confirm, ["n1: stop application web (not in the "
                                "files: removed)"]).addBoth(outcome.append)
        return outcome[0], out.getvalue(), lines

    def test_yes_option(self):
        """
        With ``--yes`` nothing is asked.
        """
        self.assertEqual(self.confirm(["--yes"], _Terminal()), (None, "", []))

    def test_terminal_asks(self):
        """
        On a terminal the changes are listed and a yes is asked for; only
        ``y``/``yes`` goes ahead.
        """
        listed = ["destructive changes (they need --yes or a confirmation):",
                  "  n1: stop application web (not in the files: removed)"]
        self.assertEqual(
            [self.confirm([], _Terminal(), answer)
             for answer in ("y\n", "no\n", "\n")],
            [(True, "make these changes? [y/N] ", listed),
             (False, "make these changes? [y/N] ", listed),
             (False, "make these changes? [y/N] ", listed)])

    def test_no_terminal_refuses(self):
        """
        Without a terminal (or without standard input) the changes are
        listed and refused, nothing asked.
        """
        self.assertEqual(
            [self.confirm([], stdin)[:2]
             for stdin in (io.StringIO("y\n"), None)],
            [(False, ""), (False, "")])


class DryRunJSONTests(SynchronousTestCase):
    """
    ``--dry-run --json``'s document.
    """

    def test_document(self):
        """
        The plan is a tree of groups and changes with their node and
        description; problems, unreachable nodes, summary and verdict are
        there too, and it is JSON.
        """
        from flocker._change import InParallel, Sequentially
        from flocker._model import Deployment, Node
        from flocker.cli._deploy import DeployResult
        from flocker.node._changes import StopApplication
        plan = Sequentially(label="plan", changes=[InParallel(
            label="stop applications", changes=[StopApplication(
                node="n1", name="web", removal=True)])])
        document = json.loads(json.dumps(_dry_run_json(
            Deployment(nodes=[Node(address="n1")]),
            DeployResult(plan=plan, dry_run=True, refused=["a problem"]))))
        self.assertEqual(
            document,
            {"dry_run": True, "converged": False,
             "unreachable": {}, "problems": ["a problem"],
             "summary": document["summary"], "doctor": {},
             "plan": {"group": "in sequence", "label": "plan", "changes": [
                 {"group": "in parallel", "label": "stop applications",
                  "changes": [{"change": "StopApplication", "node": "n1",
                               "description": "n1: stop application web "
                               "(not in the files: removed)"}]}]}})
        self.assertEqual(
            document["summary"][-1],
            "the deploy would change nothing: 1 problem found before the "
            "first change")
