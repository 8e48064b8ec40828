"""
The example programs and files of the documentation (``docs/examples``) work
and say what the documentation says they say.
"""

import io
import os
import re
import runpy
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import temporary_directory

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
EXAMPLES = os.path.join(TOP, "docs", "examples")
EMBEDDED = os.path.join(EXAMPLES, "embedded_deploy.py")

#: The lab's node addresses, as ``admin/lab address NODE`` prints them.
LAB_ADDRESSES = {"node1": "10.99.0.11", "node2": "10.99.0.12",
                 "node3": "10.99.0.13"}

#: Lines the example must print (each change's duration left out): the
#: applications started on the expected nodes, the move of ``db`` with its
#: data, and the verdict.
EXPECTED_LINES = [
    "  done: 192.0.2.1: create volume db (maximum 1.0 GiB)",
    "  done: 192.0.2.1: start application db (image example/db:1.0)",
    "  done: 192.0.2.2: start application web (image example/web:1.0)",
    "  done: 192.0.2.1: stop application db",
    "  done: 192.0.2.1: hand off volume db to 192.0.2.3",
    "  done: 192.0.2.3: start application db (image example/db:1.0)",
    "db volume on 192.0.2.3 holds: 1000 records",
    "plan after the move: no changes",
    "converged",
]


_DURATION = re.compile(r" \((?:[^()]* sent, )?[0-9]+\.[0-9]{2} s\)$")


def _lines(text):
    """
    :return: The lines of ``text``, each without the duration (and bytes
        sent) a change line ends with (`` (0.00 s)``, `` (7 B sent, 0.00
        s)``), which depend on the machine.
    """
    return [_DURATION.sub("", line) for line in text.splitlines()]


def _new_directory(test):
    """
    :return: A new empty directory outside the source tree, removed when
        ``test`` ends.
    """
    path = temporary_directory(test)
    os.makedirs(path)
    return path


def _example_environment():
    """
    :return: The environment for running an example: this one, with this
        checkout first on ``PYTHONPATH`` so the example imports the Flocker
        under test.
    """
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [TOP] + [p for p in [environment.get("PYTHONPATH")] if p])
    return environment


class EmbeddedDeployTests(SynchronousTestCase):
    """
    Tests for ``docs/examples/embedded_deploy.py``.
    """

    def test_subprocess(self):
        """
        Run as a program with this interpreter, the example exits 0, starts
        ``db`` on 192.0.2.1, then moves it with its data to 192.0.2.3, and
        prints nothing on standard error.
        """
        result = subprocess.run(
            [sys.executable, EMBEDDED], capture_output=True, text=True,
            timeout=120, cwd=_new_directory(self),
            env=_example_environment())
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        lines = _lines(result.stdout)
        for expected in EXPECTED_LINES:
            self.assertIn(expected, lines)
        self.assertEqual("converged", lines[-1])

    def test_main_in_process(self):
        """
        ``main`` fires with 0 at once (the node agents are in memory), and
        writes the plans and results to the stream it is given.
        """
        example = runpy.run_path(EMBEDDED, run_name="embedded_deploy")
        out = io.StringIO()
        status = self.successResultOf(example["main"](None, out=out))
        self.assertEqual(0, status)
        lines = _lines(out.getvalue())
        for expected in EXPECTED_LINES:
            self.assertIn(expected, lines)

    def test_summaries(self):
        """
        Each deploy ends with one summary line per node: three changes on
        the first node, then five on it for the move (its old container
        is stopped, then deleted once the new one started), and two on
        the move's target for its expected senders (the source expected
        before the push, none once it owns the volume).
        """
        example = runpy.run_path(EMBEDDED, run_name="embedded_deploy")
        out = io.StringIO()
        self.successResultOf(example["main"](None, out=out))
        summaries = [line for line in out.getvalue().splitlines()
                     if line.startswith("result: ")]
        self.assertEqual([
            "result: 192.0.2.1: 3 changed",
            "result: 192.0.2.2: 2 changed",
            "result: 192.0.2.3: 1 changed",
            "result: 192.0.2.1: 5 changed",
            "result: 192.0.2.2: 1 changed",
            "result: 192.0.2.3: 5 changed",
        ], summaries)


class DemoFilesTests(SynchronousTestCase):
    """
    The configuration files the tutorial shows (``docs/examples/demo``) are
    the ones ``admin/demo`` writes.
    """

    def test_same_as_demo(self):
        """
        ``admin/demo``'s ``write_files`` (only that function: the demo itself
        is not run), given the lab's addresses, writes exactly the files in
        ``docs/examples/demo``.
        """
        demo = runpy.run_path(os.path.join(TOP, "admin", "demo"),
                              run_name="flocker_demo_files")
        written = _new_directory(self)
        demo["write_files"](written, LAB_ADDRESSES)
        shown = os.path.join(EXAMPLES, "demo")
        self.assertEqual(sorted(os.listdir(written)),
                         sorted(os.listdir(shown)))
        for name in os.listdir(written):
            with open(os.path.join(written, name)) as f:
                expected = f.read()
            with open(os.path.join(shown, name)) as f:
                self.assertEqual((name, expected), (name, f.read()))

    def test_files_parse(self):
        """
        Both deployments of the tutorial parse with its application file
        and place ``redis`` on node1, then on node3.
        """
        from flocker.cli import load_configuration
        shown = os.path.join(EXAMPLES, "demo")
        application = os.path.join(shown, "application.yml")
        placements = [
            load_configuration(os.path.join(shown, name),
                               application).placements()["redis"][0]
            for name in ("deployment-1.yml", "deployment-2.yml")]
        self.assertEqual([LAB_ADDRESSES["node1"], LAB_ADDRESSES["node3"]],
                         placements)


class ComposeExampleTests(SynchronousTestCase):
    """
    ``docs/examples/compose``: a compose project using the patterns real
    projects use (``.env``, ``env_file``, anchors and merges, ``x-`` keys,
    variables, named volumes, relative directory and file binds, a host
    path, ``depends_on`` with conditions, health checks, UDP ports, notes)
    is accepted as written.
    """

    DIRECTORY = os.path.join(EXAMPLES, "compose")

    def load(self):
        from flocker.node._config import load_configuration
        notes = []
        deployment = load_configuration(
            os.path.join(self.DIRECTORY, "deployment.yml"),
            os.path.join(self.DIRECTORY, "compose.yaml"), environ={},
            notes=notes)
        return deployment, notes

    def test_check(self):
        """
        ``flocker-deploy --check`` accepts it with one note per ignored or
        node-local thing, and its summary.
        """
        from flocker.cli.script import main
        stdout, stderr = io.StringIO(), io.StringIO()
        status = main(None, ["--check",
                             os.path.join(self.DIRECTORY, "deployment.yml"),
                             os.path.join(self.DIRECTORY, "compose.yaml")],
                      stdout, stderr, {})
        lines = stdout.getvalue().splitlines()
        self.assertEqual((status, stderr.getvalue(), lines[-1],
                          len([l for l in lines if ": note: " in l])),
                         (0, "", "4 applications on 3 nodes", 7))

    def test_model(self):
        """
        The example's services become the applications the documentation
        describes.
        """
        from flocker._model import Dependency, Port
        deployment, _ = self.load()
        placed = {name: application for name, (_, application)
                  in deployment.placements().items()}
        web, db, dns = placed["web"], placed["db"], placed["dns"]
        self.assertEqual(
            (web.image, web.environment["TZ"],
             web.environment["SESSION_TIMEOUT"],
             sorted(web.depends_on, key=lambda d: d.name),
             [v.name for v in web.volumes],
             [f.mountpoint for f in web.files],
             [m.host_path for m in web.host_mounts],
             db.environment["POSTGRES_PASSWORD"],
             sorted(p.protocol for p in dns.ports),
             deployment.project),
            ("example/web:2.4", "UTC", "3600",
             [Dependency(name="db", condition="service_healthy"),
              Dependency(name="migrate",
                         condition="service_completed_successfully")],
             ["shop-site"], ["/etc/web/web.conf"], ["/etc/localtime"],
             "change-me", ["tcp", "udp"], "shop"))
        self.assertIn(Port(internal=80, external=8080), web.ports)
