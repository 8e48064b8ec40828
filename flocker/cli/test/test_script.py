"""
Tests for ``flocker.cli.script``: the ``flocker-deploy`` command line.
"""

import io
import json
import socket
import sys
import time
from textwrap import dedent

import pytest
from twisted.internet.defer import maybeDeferred, succeed

from flocker import __version__
from flocker._model import Application, Deployment, Node
from flocker.cli.script import (
    _confirmation, _dry_run_json, _parser, _open_log, flocker_deploy_main, main, summarize,
)

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


@pytest.fixture
def files(tmp_path):
    """
    A function writing named files into a temporary directory and
    returning their paths.
    """
    def write(**texts):
        paths = []
        for name, text in texts.items():
            path = tmp_path / (name + ".yml")
            path.write_text(dedent(text))
            paths.append(str(path))
        return paths
    return write


class TestOptions(object):
    """
    ``--help``, ``--version`` and bad command lines.
    """

    def test_help(self):
        """
        ``--help`` prints usage, including ``--check``, on stdout and
        succeeds.
        """
        status, out, err = run(["--help"])
        assert (status, err) == (0, "")
        assert out.startswith("usage: flocker-deploy")
        assert "--check" in out and "DEPLOYMENT_CONFIG" in out

    def test_version(self):
        """
        ``--version`` prints the package version and succeeds.
        """
        assert run(["--version"]) == (
            0, "flocker-deploy %s\n" % (__version__,), "")

    def test_missing_arguments(self):
        """
        Without the two files the command fails with a usage error.
        """
        status, out, err = run(["--check"])
        assert (status, out) == (2, "")
        assert "usage:" in err and "required" in err

    def test_unknown_option(self):
        """
        An unknown option is a usage error.
        """
        status, out, err = run(["--frobnicate", "a", "b"])
        assert (status, out) == (2, "")
        assert "unrecognized arguments: --frobnicate" in err

    def test_status_exclusive(self, files):
        """
        ``--status`` cannot be asked for with ``--dry-run`` or ``--check``.
        """
        for other in ("--dry-run", "--check"):
            status, out, err = run(["--status", other]
                                   + files(d=DEPLOYMENT, a=NATIVE))
            assert (status, out) == (2, "")
            assert "exclude each other" in err

    def test_check_and_dry_run_exclusive(self, files):
        """
        ``--check`` (no network) and ``--dry-run`` (network, no change)
        cannot be asked for together.
        """
        status, out, err = run(["--check", "--dry-run"]
                               + files(d=DEPLOYMENT, a=NATIVE))
        assert (status, out) == (2, "")
        assert "exclude each other" in err

    def test_options_need_their_mode(self, files):
        """
        ``--json``, ``--follow``/``--tail`` and ``--with-volumes`` are
        refused without ``--status``/``--dry-run``, ``--logs`` and
        ``--remove``; ``--remove`` and ``--logs`` exclude each other.
        """
        results = [run(argv + files(d=DEPLOYMENT, a=NATIVE)) for argv in (
            ["--json"], ["--follow"], ["--tail", "3"], ["--with-volumes"],
            ["--remove", "web", "--logs", "web"],
            ["--logs", "web", "--dry-run"])]
        assert [(status, out) for status, out, err in results] == [
            (2, "")] * 6
        assert [err.splitlines()[-1].split(": error: ")[1]
                for status, out, err in results] == [
            "--json goes with --status or --dry-run",
            "--follow and --tail go with --logs",
            "--follow and --tail go with --logs",
            "--with-volumes goes with --remove",
            EXCLUSIVE, EXCLUSIVE]

    def test_failover_exclusive(self, files):
        """
        ``--failover`` goes with ``--dry-run`` only among the modes.
        """
        for other in (["--check"], ["--status"], ["--remove", "web"],
                      ["--logs", "web"]):
            status, out, err = run(["--failover", "192.0.2.1"] + other
                                   + files(d=DEPLOYMENT, a=NATIVE))
            assert (status, out) == (2, "")
            assert err.splitlines()[-1].endswith(EXCLUSIVE)

    def test_failover_unknown_node(self, files):
        """
        Declaring dead a node the deployment file does not have is one
        line naming the file and its nodes, exit status 1, and no node is
        contacted (no reactor is given) and no file changes.
        """
        paths = files(d=DEPLOYMENT, a=NATIVE)
        before = [open(path).read() for path in paths]
        status, out, err = run(["--failover", "10.9.9.9"] + paths)
        assert (status, out) == (1, "")
        assert err == ("flocker-deploy: --failover: 10.9.9.9 is not a node "
                       "of %s (its nodes: %s)\n" % (paths[0], NODES))
        assert [open(path).read() for path in paths] == before


class TestCheck(object):
    """
    ``flocker-deploy --check DEPLOYMENT_CONFIG APPLICATION_CONFIG``.
    """

    def test_native(self, files):
        """
        Valid native files give a summary and success.
        """
        assert run(["--check"] + files(d=DEPLOYMENT, a=NATIVE)) == (
            0, "3 applications on 2 nodes\n", "")

    def test_compose(self, files):
        """
        A compose application file is accepted too.
        """
        assert run(["--check"] + files(d=DEPLOYMENT, a=COMPOSE)) == (
            0, "3 applications on 2 nodes\n", "")

    def test_standby(self, files):
        """
        The summary counts the applications with a standby.
        """
        assert run(["--check"] + files(
            d=DEPLOYMENT + "standby:\n  db: {nodes: [node2.example.com]}\n",
            a=NATIVE.replace("image: postgres", "image: postgres\n"
                             "    volume: {mountpoint: /data}"))) == (
            0, "3 applications on 2 nodes, 1 with a standby\n", "")

    def test_standby_problem(self, files):
        """
        A standby problem is a located line on stderr and a failure.
        """
        deployment, applications = files(
            d=DEPLOYMENT + "standby:\n  cache: {nodes: [192.0.2.1]}\n",
            a=NATIVE)
        assert run(["--check", deployment, applications]) == (
            1, "", deployment + ":6:3: application cache has no volume, so "
            "a standby has nothing to copy: give it a volume or remove its "
            "standby\n")

    def test_check_after_files(self, files):
        """
        ``--check`` may follow the files.
        """
        assert run(files(d=DEPLOYMENT, a=NATIVE) + ["--check"])[0] == 0

    def test_problems(self, files):
        """
        Every problem is printed as ``PATH:LINE:COL: message`` on stderr,
        nothing on stdout, and the command fails with status 1.
        """
        deployment, applications = files(
            d=DEPLOYMENT.replace("cache", "cahce"),
            a=NATIVE.replace("image: redis", "image: redis\n    build: ."))
        status, out, err = run(["--check", deployment, applications])
        assert (status, out) == (1, "")
        assert err.splitlines() == [
            deployment + ':4:23: application "cahce" is not defined in the '
            'application configuration (did you mean "cache"?)',
            applications + ':12:5: unknown key "build" in application '
            'cache',
        ]

    def test_missing_file(self, tmp_path, files):
        """
        A missing file is reported with its path, without a traceback.
        """
        (applications,) = files(a=NATIVE)
        missing = str(tmp_path / "missing.yml")
        status, out, err = run(["--check", missing, applications])
        assert (status, out) == (1, "")
        assert err == missing + (
            ":1:1: cannot read the file: No such file or directory\n")

    def test_no_network(self, files, monkeypatch):
        """
        Checking never opens a socket.
        """
        paths = files(d=DEPLOYMENT, a=NATIVE)

        def refuse(*args, **kwargs):
            raise AssertionError("--check opened a socket")
        monkeypatch.setattr(socket, "socket", refuse)
        monkeypatch.setattr(socket, "create_connection", refuse)
        monkeypatch.setattr(socket, "getaddrinfo", refuse)
        assert run(["--check"] + paths)[0] == 0


class TestRotateNodeKeysOption(object):
    """
    ``--rotate-node-keys`` rotates the nodes' own keys; ``--node-key`` (the
    shared key file) is gone.
    """

    def test_help(self):
        """
        ``--help`` documents ``--rotate-node-keys`` and no ``--node-key``.
        """
        status, out, err = run(["--help"])
        assert "--rotate-node-keys" in out
        assert "--node-key " not in out

    def test_deployment_only(self, files):
        """
        It needs no application file, and excludes the other modes, in one
        line.
        """
        paths = files(d=DEPLOYMENT, a=NATIVE)
        status, out, err = run(["--rotate-node-keys", "--status", paths[0]])
        assert status == 2
        assert "exclude each other" in err

    def test_node_key_refused(self, files):
        """
        ``--node-key`` is an unknown option now.
        """
        status, out, err = run(["--node-key", "/k"] + files(
            d=DEPLOYMENT, a=NATIVE))
        assert status == 2
        assert "--node-key" in err


class TestSummarize(object):
    """
    The one-line summary of a valid deployment.
    """

    @pytest.mark.parametrize("placements,expected", [
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
        assert summarize(deployment) == expected


class TestEntryPoint(object):
    """
    The console-script function.
    """

    def test_exits_with_status(self, files, monkeypatch, capsys):
        """
        ``flocker_deploy_main`` runs the command with the process's
        arguments and streams and exits with its status.
        """
        paths = files(d=DEPLOYMENT, a=NATIVE.replace("8080", "0"))
        monkeypatch.setattr(sys, "argv", ["flocker-deploy", "--check"] + paths)
        with pytest.raises(SystemExit) as info:
            flocker_deploy_main()
        captured = capsys.readouterr()
        assert info.value.code == 1
        assert captured.out == ""
        assert "Traceback" not in captured.err
        assert captured.err.startswith(paths[1] + ":5:")

    def test_success(self, files, monkeypatch, capsys):
        """
        A valid check exits with status 0 and prints the summary.
        """
        monkeypatch.setattr(sys, "argv", ["flocker-deploy", "--check"]
                            + files(d=DEPLOYMENT, a=NATIVE))
        with pytest.raises(SystemExit) as info:
            flocker_deploy_main()
        assert info.value.code == 0
        assert capsys.readouterr().out == "3 applications on 2 nodes\n"


class _Terminal(io.StringIO):
    """
    An in-memory text stream that says it is a terminal.
    """

    def isatty(self):
        return True


class TestLiveView(object):
    """
    ``flocker-deploy`` draws the live view only on a terminal that can
    redraw; elsewhere its output is one line per event.
    """

    @pytest.fixture
    def deploying(self, files, tmp_path, monkeypatch):
        """
        A function running a deploy with ``stdout`` and ``environ`` over a
        stand-in for the cluster (which writes one change line), returning
        what the cluster was given.
        """
        from twisted.internet.defer import succeed
        from twisted.internet.task import Clock

        from flocker._change import Sequentially
        from flocker.cli import _cluster, _ssh
        from flocker.cli._deploy import DeployResult

        class Runner(object):
            def close(self):
                return succeed(None)
        monkeypatch.setattr(_ssh, "ssh_command_runner",
                            lambda reactor, **kwargs: Runner())
        given = {}

        def deploy_over_ssh(reactor, deployment, runner, **kwargs):
            given.update(kwargs)
            kwargs["write"]("192.0.2.1: stop application web (0.10 s)")
            return succeed(DeployResult(plan=Sequentially(changes=[])))
        monkeypatch.setattr(_cluster, "deploy_over_ssh", deploy_over_ssh)
        paths = files(d=DEPLOYMENT, a=NATIVE)

        def run_with(stdout, environ):
            status = main(Clock(), ["--log", str(tmp_path / "log")] + paths,
                          stdout, io.StringIO(), environ)
            return status, given
        return run_with

    def test_terminal(self, deploying):
        """
        On a terminal the deploy is given a live view, the change lines go
        through it, and the summary follows them.
        """
        from flocker.cli._progress import TerminalProgress
        stdout = _Terminal()
        status, given = deploying(stdout, {"TERM": "xterm"})
        assert isinstance(given["live"], TerminalProgress)
        assert given["write"] == given["live"].write_line
        assert stdout.getvalue().startswith(
            "\r192.0.2.1: stop application web (0.10 s)\x1b[K\n"
            "cluster already converged")

    @pytest.mark.parametrize("stdout,environ", [
        (io.StringIO(), {"TERM": "xterm"}),
        (_Terminal(), {"TERM": "dumb"}),
    ])
    def test_not_terminal(self, deploying, stdout, environ):
        """
        Elsewhere (not a terminal, or ``TERM=dumb``) there is no live view
        and the output is plain lines.
        """
        status, given = deploying(stdout, environ)
        assert given["live"] is None
        assert stdout.getvalue().startswith(
            "192.0.2.1: stop application web (0.10 s)\n"
            "cluster already converged")
        assert "\x1b" not in stdout.getvalue()


class TestOpenLog(object):
    """
    Tests for the deploy log ``flocker-deploy`` opens.
    """

    def test_same_second(self, tmp_path):
        """
        Deploys started in the same second get a log file each: the time's
        name, then ``-2``, ``-3``...; nothing is appended to another
        deploy's log.
        """
        now = time.struct_time((2026, 11, 30, 1, 2, 3, 0, 334, 0))
        opened = []
        for _ in range(3):
            log = _open_log(None, directory=str(tmp_path), now=now)
            opened.append(log.name)
            log.write("x")
            log.close()
        assert [p.rsplit("/", 1)[1] for p in opened] == [
            "deploy-20261130T010203.log", "deploy-20261130T010203-2.log",
            "deploy-20261130T010203-3.log"]
        assert [open(p).read() for p in opened] == ["x", "x", "x"]

    def test_rotated(self, tmp_path):
        """
        Opening a new default log keeps the newest ``keep`` deploy logs
        (same-second ``-N`` ones ordered after their first) and deletes the
        older ones; other files stay.
        """
        (tmp_path / "notes.txt").write_text("mine")
        for second in range(3):
            now = time.struct_time((2026, 11, 30, 1, 2, second, 0, 334, 0))
            for _ in range(2):
                _open_log(None, directory=str(tmp_path), now=now,
                          keep=3).close()
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "deploy-20261130T010201-2.log", "deploy-20261130T010202-2.log",
            "deploy-20261130T010202.log", "notes.txt"]

    def test_explicit_path_appends(self, tmp_path):
        """
        A log named with ``--log`` is appended to (and its directory made).
        """
        path = tmp_path / "sub" / "mine.log"
        for text in ("a", "b"):
            log = _open_log(str(path))
            log.write(text)
            log.close()
        assert path.read_text() == "ab"


class _Terminal(io.StringIO):
    """
    A text stream that says it is a terminal.
    """

    def isatty(self):
        return True


class TestConfirmation(object):
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
        assert self.confirm(["--yes"], _Terminal()) == (None, "", [])

    def test_terminal_asks(self):
        """
        On a terminal the changes are listed and a yes is asked for; only
        ``y``/``yes`` goes ahead.
        """
        listed = ["destructive changes (they need --yes or a confirmation):",
                  "  n1: stop application web (not in the files: removed)"]
        assert [self.confirm([], _Terminal(), answer)
                for answer in ("y\n", "no\n", "\n")] == [
            (True, "make these changes? [y/N] ", listed),
            (False, "make these changes? [y/N] ", listed),
            (False, "make these changes? [y/N] ", listed)]

    def test_no_terminal_refuses(self):
        """
        Without a terminal (or without standard input) the changes are
        listed and refused, nothing asked.
        """
        assert [self.confirm([], stdin)[:2]
                for stdin in (io.StringIO("y\n"), None)] == [
            (False, ""), (False, "")]


class TestDryRunJSON(object):
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
        assert document == {
            "dry_run": True, "converged": False,
            "unreachable": {}, "problems": ["a problem"],
            "summary": document["summary"], "doctor": {},
            "plan": {"group": "in sequence", "label": "plan", "changes": [
                {"group": "in parallel", "label": "stop applications",
                 "changes": [{"change": "StopApplication", "node": "n1",
                              "description": "n1: stop application web "
                              "(not in the files: removed)"}]}]}}
        assert document["summary"][-1] == (
            "the deploy would change nothing: 1 problem found before the "
            "first change")
