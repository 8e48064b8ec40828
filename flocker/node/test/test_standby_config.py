"""
Tests for ``flocker.node._standby_config``: the deployment file's
``standby:`` section, its located problems and its writing back.
"""

from textwrap import dedent

import yaml
from hypothesis import given
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    DEFAULT_STANDBY_INTERVAL, Standby,
)
from flocker.node._config import (
    ConfigurationErrors, deployment_to_yaml, load_deployment,
    parse_configuration,
)
from flocker.node._standby_config import interval_text
from flocker.testtools.strategies import (
    deployments_with_standbys, fuzz_settings,
)
from flocker.testtools import cases, temporary_path, with_cases

DEPLOYMENT = "deployment.yml"
APPLICATION = "application.yml"

APPLICATIONS = """\
version: 1
applications:
  web:
    image: example/web:1.0
    volume: {mountpoint: /var/lib/web}
  cache:
    image: example/cache:1.0
"""

NODES = """\
version: 1
nodes:
  10.0.0.1: [web, cache]
  10.0.0.2: []
  10.0.0.3: []
"""


def parse(standby_text, nodes_text=NODES):
    """
    Parse the test's application file and a deployment file made of
    ``nodes_text`` followed by ``standby_text``.
    """
    return parse_configuration(nodes_text + dedent(standby_text), DEPLOYMENT,
                               APPLICATIONS, APPLICATION)


def problems(standby_text, nodes_text=NODES):
    """
    :return: The ``str`` of each problem parsing reports, in order.
    :raises AssertionError: If parsing reports none.
    """
    try:
        parse(standby_text, nodes_text)
    except ConfigurationErrors as e:
        return [str(error) for error in e]
    raise AssertionError("no problem reported")


@with_cases
class StandbySectionTests(SynchronousTestCase):
    """
    Reading a valid ``standby:`` section.
    """

    def test_issue_example(self):
        """
        The issue's example gives one :class:`Standby` with its nodes in
        the file's order, the interval in nanoseconds and no automatic
        failover.
        """
        deployment = parse("""\
            standby:
              web: {nodes: ["10.0.0.3", "10.0.0.2"], every: 2s, automatic: false}
            """)
        self.assertEqual(
            deployment.standbys,
            {"web": Standby(
                application="web", nodes=["10.0.0.3", "10.0.0.2"],
                interval=2 * 10 ** 9, automatic=False)})

    def test_defaults(self):
        """
        Without ``every`` and ``automatic`` the interval is the default
        one and failover is manual.
        """
        standby = parse("""\
            standby:
              web: {nodes: ["10.0.0.2"]}
            """).standbys["web"]
        self.assertEqual(
            (standby.interval, standby.automatic),
            (DEFAULT_STANDBY_INTERVAL, False))

    def test_none(self):
        """
        A deployment file without the section, or with it empty, has no
        standbys.
        """
        self.assertEqual((parse("").standbys, parse("standby:\n").standbys),
                         ({}, {}))

    @cases([
        ("1s", 10 ** 9), ("1500ms", 1500 * 10 ** 6), ("1m30s", 90 * 10 ** 9),
        ("24h", 24 * 3600 * 10 ** 9), ("5", 5 * 10 ** 9),
        ("2.5", 2500 * 10 ** 6)])
    def test_intervals(self, text, nanoseconds):
        """
        ``every`` takes the durations compose files use, a bare number
        being seconds.
        """
        standby = parse("""\
            standby:
              web: {nodes: ["10.0.0.2"], every: %s}
            """ % (text,)).standbys["web"]
        self.assertEqual(standby.interval, nanoseconds)

    def test_status_reading(self):
        """
        The deployment file read alone (``--status``) gives the standbys
        too, checked against the nodes it names.
        """
        tmp_path = temporary_path(self)
        path = tmp_path / DEPLOYMENT
        path.write_text(NODES + "standby:\n  web: {nodes: [10.0.0.2]}\n")
        deployment, placed = load_deployment(str(path))
        self.assertEqual(
            (list(deployment.standbys["web"].nodes), placed["web"]),
            (["10.0.0.2"], "10.0.0.1"))


@with_cases
class StandbyProblemsTests(SynchronousTestCase):
    """
    Every mistake in the section is one located line.
    """

    def test_unknown_node(self):
        """
        A standby node that is not under ``nodes`` is refused at the item.
        """
        self.assertEqual(
            problems("""\
                standby:
                  web: {nodes: ["10.0.0.2", "10.0.0.9"]}
                """),
            ['deployment.yml:7:29: standby node "10.0.0.9" of web is '
             'not a node of this deployment (did you mean '
             '"10.0.0.3"?)'])

    def test_primary_as_standby(self):
        """
        The application's own node cannot be its standby.
        """
        self.assertEqual(
            problems("""\
                standby:
                  web: {nodes: ["10.0.0.1"]}
                """),
            ["deployment.yml:7:17: node 10.0.0.1 runs web, so it "
             "cannot be its standby: a standby is another node"])

    def test_without_volume(self):
        """
        An application without a volume has nothing to copy.
        """
        self.assertEqual(
            problems("""\
                standby:
                  cache: {nodes: ["10.0.0.2"]}
                """),
            ["deployment.yml:7:3: application cache has no volume, "
             "so a standby has nothing to copy: give it a volume or "
             "remove its standby"])

    @cases([
        ("0s", '"0s" must be between 1s and 24h'),
        ("500ms", '"500ms" must be between 1s and 24h'),
        ("25h", '"25h" must be between 1s and 24h'),
        ("soon", '"soon" is not a duration'),
        ("-2s", '"-2s" is not a duration'),
        ("[2]", "must be a string")])
    def test_bad_interval(self, every, message):
        """
        An interval that is no duration, or outside 1 s to 24 h, is refused
        at the value.
        """
        found = problems("""\
            standby:
              web: {nodes: ["10.0.0.2"], every: %s}
            """ % (every,))
        self.assertEqual(len(found), 1)
        self.assertTrue(found[0].startswith("deployment.yml:7:37: "))
        self.assertIn(message, found[0])

    def test_automatic_needs_three_nodes(self):
        """
        ``automatic: true`` on fewer than three nodes is refused at the
        value, saying why and what to do.
        """
        found = problems("""\
            standby:
              web: {nodes: ["10.0.0.2"], automatic: true}
            """, nodes_text=NODES.replace("  10.0.0.3: []\n", ""))
        self.assertEqual(
            found,
            ["deployment.yml:6:41: automatic failover needs at least 3 "
             "nodes, each running an etcd member (a majority of them must "
             "outlive a lost node); this deployment has 2: add nodes, or "
             "leave automatic out and fail over with flocker-deploy "
             "--failover NODE"])

    def test_automatic_accepted(self):
        """
        ``automatic: true`` on three nodes gives an automatic standby.
        """
        deployment = parse("""\
            standby:
              web: {nodes: ["10.0.0.2", "10.0.0.3"], automatic: true}
            """)
        self.assertIs(deployment.standbys["web"].automatic, True)

    def test_unknown_application(self):
        """
        A standby for an application the application file lacks is
        refused at its name, with a suggestion.
        """
        self.assertEqual(
            problems("""\
                standby:
                  wbe: {nodes: ["10.0.0.2"]}
                """),
            ['deployment.yml:7:3: standby for application "wbe", '
             'which is not defined in the application configuration '
             '(did you mean "web"?)'])

    def test_unplaced_application(self):
        """
        A standby for an application no node runs is refused.
        """
        self.assertEqual(
            problems("""\
                standby:
                  web: {nodes: ["10.0.0.2"]}
                """, "version: 1\nnodes:\n  10.0.0.1: []\n  10.0.0.2: []\n"),
            ['deployment.yml:6:3: standby for application "web", which no '
             'node runs: place it under nodes first'])

    @cases([
        ("{every: 2s}", 'the standby of web has no "nodes"'),
        ("{nodes: []}", "standby of web names no node"),
        ('{nodes: "10.0.0.2"}', "standby nodes of web must be a list"),
        ('{nodes: ["10.0.0.2", "10.0.0.2"]}', "listed twice"),
        ('{nodes: ["10.0.0.2"], evry: 2s}',
         'unknown key "evry" in the standby of web (did you mean "every"?)'),
        ('{nodes: ["10.0.0.2"], automatic: maybe}',
         "automatic must be true or false"),
        ("[10.0.0.2]", "the standby of web must be a mapping")])
    def test_malformed(self, value, message):
        """
        Structural mistakes are each one located problem.
        """
        found = problems("standby:\n  web: %s\n" % (value,))
        self.assertEqual(len(found), 1)
        self.assertTrue(found[0].startswith("deployment.yml:7:"))
        self.assertIn(message, found[0])

    def test_every_problem_at_once(self):
        """
        Problems of several standbys are all reported in one run.
        """
        found = problems("""\
            standby:
              web: {nodes: ["10.0.0.1"], every: 0s, automatic: maybe}
              cache: {nodes: ["10.0.0.9"]}
            """)
        self.assertEqual(
            [line.split(": ")[0] for line in found],
            ["deployment.yml:7:17", "deployment.yml:7:37",
             "deployment.yml:7:52", "deployment.yml:8:3",
             "deployment.yml:8:19"])


@with_cases
class StandbyWritingTests(SynchronousTestCase):
    """
    ``deployment_to_yaml`` writes the section back.
    """

    def test_readable(self):
        """
        The section is written by application, defaults left out.
        """
        deployment = parse("""\
            standby:
              web: {nodes: ["10.0.0.3", "10.0.0.2"], every: 1500ms}
            """)
        written = yaml.safe_load(deployment_to_yaml(deployment)[0])
        self.assertEqual(
            written["standby"],
            {"web": {"nodes": ["10.0.0.3", "10.0.0.2"], "every": "1500ms"}})

    @cases([
        (10 ** 9, "1s"), (90 * 10 ** 9, "90s"), (3600 * 10 ** 9, "1h"),
        (1500 * 10 ** 6, "1500ms"), (10 ** 9 + 1, "1000000001ns")])
    def test_interval_text(self, nanoseconds, text):
        """
        An interval is written in the largest unit that holds it exactly.
        """
        self.assertEqual(interval_text(nanoseconds), text)

    @fuzz_settings(default=100)
    @given(deployments_with_standbys())
    def test_round_trip(self, deployment):
        """
        Writing a deployment with standbys and parsing the result gives it
        back.
        """
        deployment_text, application_text = deployment_to_yaml(deployment)
        self.assertEqual(
            parse_configuration(deployment_text, DEPLOYMENT,
                                application_text,
                                APPLICATION),
            deployment)
