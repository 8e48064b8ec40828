"""
Tests for ``flocker.node._config``: both configuration files, their
cross-checks, the located problem reports and the native-format writer.
"""

from textwrap import dedent

import yaml
from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, AttachedVolume, Deployment, HostMount, Link, Node, Port,
    RestartPolicy,
)
from flocker._identifiers import ADDRESS_RULE
from flocker.volume import UnsafeName
from flocker.volume._remote import check_address
from flocker.node import _yaml
from flocker.node._config import (
    ConfigurationError, ConfigurationErrors, deployment_to_yaml,
    load_configuration, parse_configuration,
)
from flocker.testtools.strategies import deployments, fuzz_settings
from flocker.testtools import cases, temporary_path, with_cases

DEPLOYMENT = "deployment.yml"
APPLICATION = "application.yml"

# A deployment file placing the applications most tests define.
WEB_AND_DB = """\
version: 1
nodes:
  192.0.2.1: [web]
  node2.example.com: [db]
"""

NATIVE = """\
version: 1
applications:
  web:
    image: example/web:1.0
    ports: [{internal: 80, external: 8080}]
    links: [{local_port: 5432, remote_port: 5432, alias: db}]
  db:
    image: postgres:9
    ports: [{internal: 5432, external: 5432}]
"""


def parse(application_text, deployment_text=WEB_AND_DB):
    """
    Parse dedented texts under the test's file names.
    """
    return parse_configuration(dedent(deployment_text), DEPLOYMENT,
                               dedent(application_text), APPLICATION)


def problems(application_text, deployment_text=WEB_AND_DB):
    """
    :return: The list of :class:`ConfigurationError` parsing reports.
    :raises AssertionError: If parsing reports none.
    """
    try:
        parse(application_text, deployment_text)
    except ConfigurationErrors as errors:
        return list(errors)
    raise AssertionError("no problem reported")


def assert_problem(found, path, line, column, *fragments):
    """
    Assert that one of ``found`` is at ``path:line:column`` and its message
    contains every fragment.
    """
    for error in found:
        if (error.path, error.line, error.column) == (path, line, column) \
                and all(f in error.message for f in fragments):
            return
    raise AssertionError("no problem at %s:%d:%d with %r in:\n%s" % (
        path, line, column, fragments, "\n".join(str(e) for e in found)))


def application(found, name):
    """
    :return: The application named ``name`` in deployment ``found``.
    """
    return found.placements()[name][1]


class ConfigurationErrorTests(SynchronousTestCase):
    """
    The error values and the exception carrying them.
    """

    def test_str(self):
        """
        A problem renders as ``PATH:LINE:COL: message``.
        """
        error = ConfigurationError("a.yml", 3, 7, "bad thing")
        self.assertEqual(str(error), "a.yml:3:7: bad thing")

    def test_equality(self):
        """
        Problems are values: equal fields, equal problems.
        """
        self.assertEqual(
            ConfigurationError("a", 1, 2, "m"),
            ConfigurationError("a", 1, 2, "m"))
        self.assertNotEqual(
            ConfigurationError("a", 1, 2, "m"),
            ConfigurationError("a", 1, 3, "m"))

    def test_errors_collection(self):
        """
        ``ConfigurationErrors`` iterates its problems and renders one line
        per problem.
        """
        errors = [ConfigurationError("a", 1, 1, "x"),
                  ConfigurationError("b", 2, 3, "y")]
        exception = ConfigurationErrors(errors)
        self.assertEqual(list(exception), errors)
        self.assertEqual(len(exception), 2)
        self.assertEqual(str(exception), "a:1:1: x\nb:2:3: y")


@with_cases
class NativeFormatTests(SynchronousTestCase):
    """
    The native application format.
    """

    def test_full_application(self):
        """
        Every field of the native format reaches the model.
        """
        found = parse("""\
            version: 1
            applications:
              web:
                image: example/web:1.0
                command: ["gunicorn", "app:main"]
                environment: {DEBUG: "0", NAME: web}
                ports: [{internal: 80, external: 8080}]
                volume: {mountpoint: /var/lib/web, maximum_size: 1G}
                links: [{local_port: 5432, remote_port: 5432, alias: db}]
                mem_limit: 512M
                cpu_shares: 512
                restart_policy: {name: on-failure, maximum_retry_count: 3}
              db:
                image: postgres:9
                ports: [{internal: 5432, external: 5432}]
            """)
        expected = Deployment(nodes=[
            Node(address="192.0.2.1", applications=[Application(
                name="web", image="example/web:1.0",
                command=["gunicorn", "app:main"],
                environment={"DEBUG": "0", "NAME": "web"},
                ports=[Port(internal=80, external=8080)],
                volume=AttachedVolume(mountpoint="/var/lib/web",
                                      maximum_size=1024 ** 3),
                links=[Link(local_port=5432, remote_port=5432, alias="db")],
                mem_limit=512 * 1024 ** 2,
                cpu_shares=512,
                restart_policy=RestartPolicy(name="on-failure",
                                             maximum_retry_count=3))]),
            Node(address="node2.example.com", applications=[Application(
                name="db", image="postgres:9",
                ports=[Port(internal=5432, external=5432)])]),
        ])
        self.assertEqual(found, expected)

    def test_command_string_split(self):
        """
        A command string is split into arguments as a POSIX shell would,
        quotes included, without any shell running it.
        """
        found = parse("""\
            version: 1
            applications:
              web: {image: w, command: "sh -c 'echo $HOME; ls'"}
              db: {image: d}
            """)
        self.assertEqual(
            list(application(found, "web").command),
            ["sh", "-c", "echo $HOME; ls"])

    @cases([
        ("1024", 1024), ('"2K"', 2048), ('"3M"', 3 * 1024 ** 2),
        ('"1G"', 1024 ** 3), ('"1T"', 1024 ** 4), ('"5g"', 5 * 1024 ** 3),
        ('"1GiB"', 1024 ** 3), ('"100"', 100),
    ])
    def test_sizes(self, text, size):
        """
        Sizes are integers of bytes or strings with a binary K/M/G/T suffix.
        """
        found = parse("""\
            version: 1
            applications:
              web: {image: w, mem_limit: %s,
                    volume: {mountpoint: /data, maximum_size: %s}}
              db: {image: d}
            """ % (text, text))
        web = application(found, "web")
        self.assertEqual((web.mem_limit, web.volume.maximum_size),
                         (size, size))

    def test_environment_scalars_as_written(self):
        """
        Environment values that YAML would read as numbers or booleans are
        kept as the text written.
        """
        found = parse("""\
            version: 1
            applications:
              web: {image: w, environment: {DEBUG: yes, PORT: 08, R: 1.50}}
              db: {image: d}
            """)
        self.assertEqual(
            dict(application(found, "web").environment),
            {"DEBUG": "yes", "PORT": "08", "R": "1.50"})

    def test_empty_values(self):
        """
        An empty environment, ports or links value means none, and a node
        with an empty list runs no application.
        """
        found = parse("""\
            version: 1
            applications:
              web:
                image: w
                environment:
                ports:
                links: []
              db: {image: d}
            """, """\
            version: 1
            nodes:
              192.0.2.1: [web, db]
              192.0.2.2:
            """)
        self.assertEqual(
            found,
            Deployment(nodes=[
                Node(address="192.0.2.1", applications=[
                    Application(name="web", image="w"),
                    Application(name="db", image="d")]),
                Node(address="192.0.2.2")]))

    def test_undeployed_application(self):
        """
        An application defined but placed on no node is valid and not part
        of the deployment.
        """
        found = parse(NATIVE + "  spare: {image: s}\n")
        self.assertEqual(set(found.placements()), {"web", "db"})

    def test_ipv6_node(self):
        """
        A node may be given by an IPv6 address.
        """
        found = parse(NATIVE, """\
            version: 1
            nodes:
              "2001:db8::1": [web, db]
              "0::1": []
            """)
        self.assertEqual({n.address for n in found.nodes},
                         {"2001:db8::1", "0::1"})

    def test_leading_colon_address(self):
        """
        An address starting with ':' (``::1``) is refused at its position,
        with the rule a push's target is checked against (so it cannot pass
        ``--check`` and fail when a volume is pushed there), and the way to
        write it instead.
        """
        found = problems(NATIVE, """\
            version: 1
            nodes:
              "2001:db8::1": [web, db]
              "::1": []
            """)
        assert_problem(found, DEPLOYMENT, 4, 3, "'::1' is not a node address",
                       ADDRESS_RULE)
        with self.assertRaises(UnsafeName) as caught:
            check_address("::1")
        self.assertIn(ADDRESS_RULE, caught.exception.message)


@with_cases
class ComposeFormatTests(SynchronousTestCase):
    """
    The compose/fig application format.
    """

    FIG = """\
        web:
          image: example/web
          command: python app.py --port 80
          environment:
            - DEBUG=1
            - URL=http://example.com/?a=b
          ports: ["8080:80", "8443:443"]
          links: ["db:database"]
          volumes: [/var/lib/web]
          mem_limit: 1g
          cpu_shares: 100
          restart: on-failure:5
        db:
          image: postgres
          environment: {POSTGRES_USER: web}
          ports:
            - 5432:5432
          restart: always
        """

    def test_fig_file(self):
        """
        Services at the top of the file map onto applications.
        """
        found = parse(self.FIG)
        self.assertEqual(
            application(found, "web"),
            Application(
                name="web", image="example/web",
                command=["python", "app.py", "--port", "80"],
                environment={"DEBUG": "1", "URL": "http://example.com/?a=b"},
                ports=[Port(internal=80, external=8080),
                       Port(internal=443, external=8443)],
                links=[Link(local_port=5432, remote_port=5432,
                            alias="database")],
                volume=AttachedVolume(mountpoint="/var/lib/web"),
                mem_limit=1024 ** 3, cpu_shares=100,
                restart_policy=RestartPolicy(name="on-failure",
                                             maximum_retry_count=5)))
        self.assertEqual(
            application(found, "db"),
            Application(
                name="db", image="postgres",
                environment={"POSTGRES_USER": "web"},
                ports=[Port(internal=5432, external=5432)],
                restart_policy=RestartPolicy(name="always")))

    def test_services_key(self):
        """
        A compose file with ``version`` and ``services`` gives the same
        applications as the fig form.
        """
        nested = 'version: "2"\nservices:\n' + "\n".join(
            "  " + line for line in dedent(self.FIG).splitlines()) + "\n"
        self.assertEqual(parse(nested), parse(self.FIG))

    def test_link_per_port(self):
        """
        A link to a service becomes one link per port it publishes, from
        its internal port to its external port, named by the service unless
        an alias is given.
        """
        found = parse("""\
            web:
              image: w
              links: [db]
            db:
              image: d
              ports: ["15432:5432", "18080:8080"]
            """)
        self.assertEqual(
            application(found, "web").links,
            frozenset([
                Link(local_port=5432, remote_port=15432, alias="db"),
                Link(local_port=8080, remote_port=18080, alias="db")]))

    @cases([
        ("no", RestartPolicy()),
        ('"no"', RestartPolicy()),
        ("always", RestartPolicy(name="always")),
        ("on-failure", RestartPolicy(name="on-failure")),
        ('"on-failure:2"', RestartPolicy(name="on-failure",
                                         maximum_retry_count=2)),
    ])
    def test_restart(self, written, policy):
        """
        ``restart`` values map onto restart policies; an unquoted ``no``
        (a YAML boolean) means ``no``.
        """
        found = parse("web: {image: w, restart: %s}\ndb: {image: d}\n"
                      % (written,))
        self.assertEqual(application(found, "web").restart_policy, policy)

    def test_base60_port(self):
        """
        An unquoted ``22:22``, a base-60 number to YAML 1.1, is the port
        mapping it looks like.
        """
        found = parse("web: {image: w, ports: [22:22]}\ndb: {image: d}\n")
        self.assertEqual(
            application(found, "web").ports,
            frozenset(
                [Port(internal=22, external=22)]))

    def test_unsupported_key(self):
        """
        A compose key Flocker has no meaning for is refused by name.
        """
        found = problems("""\
            web:
              image: w
              cgroup_parent: x
            db: {image: d}
            """)
        assert_problem(found, APPLICATION, 3, 3,
                       '"cgroup_parent" is not supported')

    def test_misspelled_key(self):
        """
        A misspelled key gets a did-you-mean.
        """
        found = problems("web: {imag: w}\ndb: {image: d}\n")
        assert_problem(found, APPLICATION, 1, 7, '"imag" is not supported',
                       'did you mean "image"')

    def test_host_volume(self):
        """
        An absolute ``host:container`` volume binds the node's path, with
        a note that it stays on the node.
        """
        notes = []
        found = parse_configuration(
            WEB_AND_DB, DEPLOYMENT, "web: {image: w, volumes: ['/srv:/data']}"
            "\ndb: {image: d}\n", APPLICATION, notes=notes)
        self.assertEqual(
            application(found, "web").host_mounts,
            {HostMount(host_path="/srv", mountpoint="/data")})
        self.assertEqual([(n.line, n.column) for n in notes], [(1, 27)])

    def test_two_volumes(self):
        """
        A second container path is a volume named after the service and
        the path.
        """
        found = parse("web: {image: w, volumes: [/a, /b/c]}\n"
                      "db: {image: d}\n")
        self.assertEqual(
            (application(found, "web").volume,
             application(found, "web").volumes),
            (AttachedVolume(mountpoint="/a"),
             {AttachedVolume(mountpoint="/b/c", name="web-b-c")}))

    def test_undeclared_named_volume(self):
        """
        A named volume missing from the top-level volumes is refused.
        """
        found = problems("services:\n  web: {image: w, volumes: [dat:/d]}\n"
                         "  db: {image: d}\nvolumes: {data: {}}\n")
        assert_problem(found, APPLICATION, 2, 29, '"dat" is not declared',
                       'did you mean "data"')

    def test_relative_volume(self):
        """
        A compose volume path must be absolute.
        """
        found = problems("web: {image: w, volumes: [data]}\n"
                         "db: {image: d}\n")
        assert_problem(found, APPLICATION, 1, 27, "absolute")

    @cases([
        ('"1:2:3:4"', "HOST:CONTAINER"),
        ('"53:53/sctp"', "tcp or udp"),
        ('"8000-8010:80"', "same length"),
        ('"0:80"', '"0" is not a port in 1-65535'),
        ('"80:70000"', '"70000" is not a port in 1-65535'),
        ('"90-80:90-80"', "not a port in 1-65535 or a range"),
    ])
    def test_bad_port(self, port, fragment):
        """
        Port forms Flocker cannot route are refused at the entry.
        """
        found = problems("web: {image: w, ports: [%s]}\ndb: {image: d}\n"
                         % (port,))
        assert_problem(found, APPLICATION, 1, 25, fragment)

    def test_link_to_undefined_service(self):
        """
        A link to a service that does not exist is refused with a
        did-you-mean.
        """
        found = problems("web: {image: w, links: [dbb]}\n"
                         "db: {image: d, ports: ['5432:5432']}\n")
        assert_problem(found, APPLICATION, 1, 25, 'undefined service "dbb"',
                       'did you mean "db"')

    def test_link_to_service_without_ports(self):
        """
        A link to a service that publishes no port gives no Flocker link:
        the service's name resolves without one.
        """
        found = parse("web: {image: w, links: [db]}\ndb: {image: d}\n")
        self.assertEqual(application(found, "web").links, frozenset())

    def test_two_links_same_local_port(self):
        """
        Two links whose targets listen on the same internal port clash in
        the linking container.
        """
        found = problems("""\
            web: {image: w, links: [db, db2]}
            db: {image: d, ports: ["5432:5432"]}
            db2: {image: d, ports: ["5433:5432"]}
            """)
        assert_problem(found, APPLICATION, 1, 29, "local port 5432")

    def test_environment_without_value(self):
        """
        A list entry without ``=`` takes the deploy's value of the
        variable; without one it is left out, with a note.
        """
        text = ("web: {image: w, environment: [HOME, NOPE, 'X=1']}\n"
                "db: {image: d, environment: {HOME: null}}\n")
        notes = []
        found = parse_configuration(WEB_AND_DB, DEPLOYMENT, text,
                                    APPLICATION, environ={"HOME": "/h"},
                                    notes=notes)
        self.assertEqual(
            application(found, "web").environment,
            {"HOME": "/h",
             "X": "1"})
        self.assertEqual(application(found, "db").environment, {"HOME": "/h"})
        self.assertEqual(
            [(n.line, n.column) for n in notes
             if "NOPE" in n.message],
            [(1, 37)])

    def test_unsupported_restart(self):
        """
        Restart values other than no/always/on-failure[:N]/unless-stopped
        are refused.
        """
        found = problems("web: {image: w, restart: sometimes}\n"
                         "db: {image: d}\n")
        assert_problem(found, APPLICATION, 1, 26, "sometimes",
                       "not supported", "unless-stopped")

    @cases([
        ('"on-failure:\u00b2"', "positive integer"),
        ('"on-failure:0"', "positive integer"),
        ('"on-failure:%s"' % ("9" * 5000,), "too large"),
    ])
    def test_bad_retry_count(self, restart, fragment):
        """
        A compose retry count must be ASCII digits and fit a signed 64-bit
        integer, however long it is.
        """
        found = problems("web: {image: w, restart: %s}\ndb: {image: d}\n"
                         % (restart,))
        assert_problem(found, APPLICATION, 1, 26, "retry count", fragment)

    def test_huge_port(self):
        """
        A compose port with thousands of digits is refused as outside the
        port range, with the number shortened in the message.
        """
        found = problems('web: {image: w, ports: ["%s:80"]}\n'
                         'db: {image: d}\n' % ("9" * 5000,))
        assert_problem(found, APPLICATION, 1, 25, "not a port in 1-65535")
        self.assertTrue(all(len(str(error)) < 200 for error in found))

    def test_top_level_unknown(self):
        """
        Top-level compose sections other than services, volumes, networks,
        version, name and ``x-`` extensions are refused.
        """
        found = problems("services:\n  web: {image: w}\n  db: {image: d}\n"
                         "secret: {}\n")
        assert_problem(found, APPLICATION, 4, 1, '"secret" is not supported')


@with_cases
class NativeProblemsTests(SynchronousTestCase):
    """
    Problems in a native application file, each at its node.
    """

    def test_unknown_key(self):
        """
        An unknown application key is reported with a did-you-mean.
        """
        found = problems(NATIVE.replace("image: postgres", "imgae: postgres"))
        assert_problem(found, APPLICATION, 8, 5, 'unknown key "imgae"',
                       'did you mean "image"')

    def test_missing_image(self):
        """
        An application without an image is reported at its name.
        """
        found = problems(NATIVE.replace("image: postgres", "imgae: postgres"))
        assert_problem(found, APPLICATION, 7, 3, 'no "image"')

    def test_duplicate_key(self):
        """
        A key given twice is refused at the second one.
        """
        found = problems(NATIVE + "    image: other\n")
        assert_problem(found, APPLICATION, 10, 5, 'duplicate key "image"',
                       "first at line 8")

    def test_duplicate_application(self):
        """
        An application defined twice is refused at the second definition.
        """
        found = problems(NATIVE + "  db: {image: x}\n")
        assert_problem(found, APPLICATION, 10, 3, 'duplicate key "db"')

    def test_not_yaml(self):
        """
        A file that is not YAML is reported where the parser stopped.
        """
        found = problems("version: 1\napplications: {web: [}\n")
        assert_problem(found, APPLICATION, 2, 22, "not valid YAML")

    @cases([(value,) for value in ['!!int ""', "!!int _", "!!int '-'",
         "!!int abc"]])
    def test_tagged_non_integer(self, value):
        """
        Text tagged ``!!int`` that is no number, even empty text (which
        PyYAML itself fails on with an ``IndexError``), is refused.
        """
        found = problems(NATIVE + "    cpu_shares: %s\n" % (value,))
        assert_problem(found, APPLICATION, 10, 17, "cpu_shares",
                       "is not an integer")

    def test_nested_too_deeply(self):
        """
        Nesting too deep for the YAML composer is reported on the line
        where reading stopped.
        """
        found = problems(NATIVE + "    command: " + "[" * 5000 + "\n")
        self.assertEqual(
            [(e.line, e.message) for e in found],
            [(10, "not valid YAML here: nested too deeply")])

    @cases([(escape,) for escape in ["\\U00110000", "\\UFFFFFFFF"]])
    def test_escape_beyond_unicode(self, escape):
        """
        A double-quoted escape naming no Unicode character (beyond
        U+10FFFF, which PyYAML itself fails on with a ``ValueError`` or
        ``OverflowError``) is reported where its digits start.
        """
        found = problems(NATIVE + '    command: ["%s"]\n' % (escape,))
        assert_problem(found, APPLICATION, 10, 18, "not valid YAML",
                       "names no character")

    def test_not_a_mapping(self):
        """
        A file holding a list rather than a mapping is refused.
        """
        found = problems("- web\n- db\n")
        assert_problem(found, APPLICATION, 1, 1, "must be a mapping",
                       "not a list")

    def test_empty_file(self):
        """
        An empty file is refused.
        """
        found = problems("")
        assert_problem(found, APPLICATION, 1, 1, "empty")

    def test_missing_version(self):
        """
        A native file must say ``version: 1``.
        """
        found = problems(NATIVE.replace("version: 1\n", ""))
        assert_problem(found, APPLICATION, 1, 1, 'missing "version: 1"')

    @cases([(version,) for version in ["2", '"1"', "true", "[1]"]])
    def test_wrong_version(self, version):
        """
        A version other than the integer 1 is refused at its value.
        """
        found = problems(NATIVE.replace("version: 1", "version: " + version))
        assert_problem(found, APPLICATION, 1, 10, "version must be 1")

    def test_bool_for_int(self):
        """
        A boolean where an integer is expected is refused as a boolean.
        """
        found = problems(NATIVE.replace("internal: 80,", "internal: true,"))
        assert_problem(found, APPLICATION, 5, 24,
                       "internal port must be an integer",
                       "not the boolean true")

    def test_bool_cpu_shares(self):
        """
        ``cpu_shares: yes`` is a boolean, not a number of shares.
        """
        found = problems(NATIVE + "    cpu_shares: yes\n")
        assert_problem(found, APPLICATION, 10, 17, "cpu_shares",
                       "the boolean yes")

    @cases([(port,) for port in ["0", "65536", "-1"]])
    def test_port_range(self, port):
        """
        Ports outside 1-65535 are refused at the value.
        """
        found = problems(NATIVE.replace("external: 8080", "external: " + port))
        assert_problem(found, APPLICATION, 5, 38, "outside 1-65535")

    def test_trailing_slash_mountpoint(self):
        """
        A mountpoint with a trailing slash (as Flocker 0.4's ELK example
        wrote ``/var/lib/elasticsearch/``) is normalised, not refused.
        """
        found = parse(NATIVE + "    volume: {mountpoint: /var/lib/es/}\n")
        self.assertEqual(
            application(found, "db").volume,
            AttachedVolume(
                mountpoint="/var/lib/es"))

    @cases([
        ("data", "absolute"),
        ("/data/../etc", "'..'"),
        ("/data//x", "not normalised"),
        ("/data/./x", "not normalised"),
        ("/", "other than '/'"),
    ])
    def test_bad_mountpoint(self, mountpoint, fragment):
        """
        Relative, unnormalised and escaping mountpoints are refused at the
        mountpoint.
        """
        found = problems(NATIVE + "    volume: {mountpoint: '%s'}\n"
                         % (mountpoint,))
        assert_problem(found, APPLICATION, 10, 26, fragment)

    def test_unsafe_application_name(self):
        """
        Names outside the safe set are refused: they become container,
        dataset and iptables names.
        """
        found = problems(NATIVE + '  "web;rm -rf": {image: x}\n')
        assert_problem(found, APPLICATION, 10, 3, "not a safe name")

    def test_unsafe_alias(self):
        """
        A link alias outside the safe set is refused.
        """
        found = problems(NATIVE.replace("alias: db", "alias: ../db"))
        assert_problem(found, APPLICATION, 6, 58, "alias",
                       "not a link alias")

    def test_alias_starting_with_digit(self):
        """
        A link alias starting with a digit is refused by the check (it
        would begin environment variable names, which the node cannot
        set), at the alias.
        """
        found = problems(NATIVE.replace("alias: db", "alias: 9db"))
        assert_problem(found, APPLICATION, 6, 58, "alias", '"9db"',
                       "starting with a letter")

    def test_unsafe_image(self):
        """
        An image the model refuses is reported at the image.
        """
        found = problems(NATIVE.replace("example/web:1.0", "'web; reboot'"))
        assert_problem(found, APPLICATION, 4, 12, "not a valid Docker image")

    def test_bad_environment_name(self):
        """
        An invalid environment variable name is reported at the name.
        """
        found = problems(NATIVE + "    environment: {1X: a}\n")
        assert_problem(found, APPLICATION, 10, 19, "'1X' is not valid")

    def test_external_port_twice(self):
        """
        An external port used by two applications is refused at the second:
        external ports are cluster-wide.
        """
        found = problems(NATIVE.replace("external: 5432", "external: 8080"))
        assert_problem(found, APPLICATION, 9, 13, "external port 8080",
                       "already used by web (line 5)")

    def test_internal_port_twice(self):
        """
        One application publishing an internal port twice is refused.
        """
        found = problems(NATIVE.replace(
            "external: 8080}]", "external: 8080}, {internal: 80, "
            "external: 8081}]"))
        assert_problem(found, APPLICATION, 5, 45, "internal port 80")

    def test_link_to_unpublished_port(self):
        """
        A link whose remote port no application publishes is refused at the
        remote port.
        """
        found = problems(NATIVE.replace("remote_port: 5432",
                                        "remote_port: 5433"))
        assert_problem(found, APPLICATION, 6, 45, "port 5433",
                       "no application publishes")

    def test_link_checked_despite_other_problems(self):
        """
        An unrelated problem does not hide a link to an unpublished port.
        """
        found = problems(NATIVE.replace("remote_port: 5432",
                                        "remote_port: 5433")
                         + "    cpu_shares: many\n")
        assert_problem(found, APPLICATION, 6, 45, "port 5433")
        assert_problem(found, APPLICATION, 10, 17, "cpu_shares")

    def test_link_unchecked_when_port_unreadable(self):
        """
        While some port cannot be read, a link is not blamed for aiming at
        it.
        """
        found = problems(NATIVE.replace("remote_port: 5432",
                                        "remote_port: 5433")
                         .replace("external: 5432", "external: x"))
        self.assertEqual([(e.line, e.column) for e in found], [(9, 40)])

    def test_link_local_port_twice(self):
        """
        Two links of one application on one local port are refused.
        """
        found = problems(NATIVE.replace(
            "alias: db}]", "alias: db}, {local_port: 5432, "
            "remote_port: 8080, alias: web}]"))
        assert_problem(found, APPLICATION, 6, 76, "local port 5432",
                       "line 6")

    def test_retry_count_without_on_failure(self):
        """
        ``maximum_retry_count`` needs the on-failure policy.
        """
        found = problems(NATIVE + "    restart_policy: {name: always, "
                         "maximum_retry_count: 2}\n")
        assert_problem(found, APPLICATION, 10, 21, "only allowed with")

    def test_unknown_restart_policy(self):
        """
        An unknown restart policy name gets a did-you-mean.
        """
        found = problems(NATIVE + "    restart_policy: {name: allways}\n")
        assert_problem(found, APPLICATION, 10, 28, '"allways"',
                       'did you mean "always"')

    @cases([(size,) for size in ['"1Q"', "0", '"0K"', "true", "-5"]])
    def test_bad_size(self, size):
        """
        Sizes must be positive byte counts or suffixed sizes.
        """
        found = problems(NATIVE + "    mem_limit: %s\n" % (size,))
        assert_problem(found, APPLICATION, 10, 16, "mem_limit")

    @cases([
        ("mem_limit", '"%sG"' % ("9" * 5000,), 16),
        ("mem_limit", '"8589934592G"', 16),
        ("mem_limit", "9" * 5000, 16),
        ("mem_limit", "9223372036854775808", 16),
        ("cpu_shares", "9" * 40, 17),
    ])
    def test_too_large(self, key, value, column):
        """
        Counts and sizes beyond what Docker and ZFS hold (a signed 64-bit
        integer), however many digits they have, are refused as too large.
        """
        found = problems(NATIVE + "    %s: %s\n" % (key, value))
        assert_problem(found, APPLICATION, 10, column, key, "too large")

    def test_largest_accepted(self):
        """
        The largest signed 64-bit integer is still accepted.
        """
        found = parse(NATIVE + "    cpu_shares: %d\n" % (2 ** 63 - 1,))
        self.assertEqual(application(found, "db").cpu_shares, 2 ** 63 - 1)

    def test_retry_count_too_large(self):
        """
        A restart retry count beyond a signed 64-bit integer is refused.
        """
        found = problems(NATIVE + "    restart_policy: {name: on-failure, "
                         "maximum_retry_count: %s}\n" % ("9" * 30,))
        assert_problem(found, APPLICATION, 10, 61, "maximum_retry_count",
                       "too large")

    @cases([
        ('    environment: {A: "\\ud83d\\ude00"}', 22),
        ('    command: ["\\udfff"]', 15),
        ('    volume: {mountpoint: "/\\ud800"}', 26),
    ])
    def test_lone_surrogate(self, line, column):
        """
        A string holding half of a UTF-16 surrogate pair (only a YAML escape
        can write one) is refused: nothing on the node could receive it
        unchanged.
        """
        found = problems(NATIVE + line + "\n")
        assert_problem(found, APPLICATION, 10, column, "surrogate")

    def test_colon_in_mountpoint(self):
        """
        A mountpoint holding ``:`` is refused: the node gives Docker the
        volume as ``HOST:CONTAINER``, so the rest would be mount options.
        """
        found = problems(NATIVE + '    volume: {mountpoint: "/data:ro"}\n')
        assert_problem(found, APPLICATION, 10, 26, "must not contain ':'")

    def test_bad_command(self):
        """
        A command string that cannot be split is refused at the command.
        """
        found = problems(NATIVE + "    command: 'echo \"unclosed'\n")
        assert_problem(found, APPLICATION, 10, 14, "cannot be split")

    def test_empty_command(self):
        """
        An empty command is refused.
        """
        found = problems(NATIVE + "    command: []\n")
        assert_problem(found, APPLICATION, 10, 14, "must not be empty")

    def test_alias_expanded(self):
        """
        A YAML alias stands for a copy of what its anchor names.
        """
        found = parse(NATIVE.replace("image: postgres:9", "image: *img")
                      .replace("image: example/web:1.0",
                               "image: &img example/web:1.0"))
        self.assertEqual(application(found, "db").image, "example/web:1.0")

    def test_unsupported_tag(self):
        """
        A value with a YAML tag Flocker does not read is refused.
        """
        found = problems(NATIVE.replace("postgres:9", "!!python/name:os.system"
                                        " x"))
        assert_problem(found, APPLICATION, 8, 12, "tag")

    def test_non_string_key(self):
        """
        Keys must be plain strings.
        """
        found = problems(NATIVE + "    ? [a]\n    : b\n")
        assert_problem(found, APPLICATION, 10, 7, "keys", "must be strings")

    def test_did_you_mean_top_level(self):
        """
        A misspelled top-level key gets a did-you-mean and the missing one
        is reported.
        """
        found = problems(NATIVE.replace("applications:", "aplications:"))
        assert_problem(found, APPLICATION, 2, 1, '"aplications"',
                       'did you mean "applications"')
        assert_problem(found, APPLICATION, 1, 1, 'no "applications"')

    def test_did_you_mean_bounded(self):
        """
        4,000 near-miss names in the deployment against 4,000 defined
        applications: each is compared with at most
        ``SUGGESTION_CANDIDATES`` names (not all 4,000), and still gets
        the right suggestion.
        """
        compared = []
        close = _yaml.difflib.get_close_matches

        def counting(word, candidates, n):
            compared.append(len(candidates))
            return close(word, candidates, n=n)
        self.patch(_yaml.difflib, "get_close_matches", counting)
        count = 4000
        application = "version: 1\napplications:\n" + "".join(
            "  app%04d: {image: x}\n" % (i,) for i in range(count))
        deployment = "version: 1\nnodes:\n  192.0.2.1: [%s]\n" % (
            ", ".join("apq%04d" % (i,) for i in range(count)),)
        found = problems(application, deployment)
        self.assertEqual(len(compared), count)
        self.assertLessEqual(max(compared), _yaml.SUGGESTION_CANDIDATES)
        self.assertTrue(
            any('"apq0007" is not defined' in str(e)
                and 'did you mean "app0007"' in str(e) for e in found))

    def test_unprintable_stays_on_one_line(self):
        """
        A name holding a line break is escaped in the message, so each
        problem stays one line.
        """
        found = problems(NATIVE + '  "a\\nb": {image: x}\n')
        assert_problem(found, APPLICATION, 10, 3, "a\\x0ab")
        self.assertTrue(all("\n" not in str(error) for error in found))


@with_cases
class NativeVolumesTests(SynchronousTestCase):
    """
    The native format's ``volumes:`` list of named volumes.
    """

    def test_volumes(self):
        """
        Each entry becomes a named ``AttachedVolume`` with its flags,
        beside the application's own ``volume:``.
        """
        found = parse(NATIVE + """\
    volume: {mountpoint: /var/lib/db}
    volumes:
      - {name: uploads, mountpoint: /srv/uploads, maximum_size: 1G}
      - name: config
        mountpoint: /etc/db
        read_only: true
        external: yes
            """)
        db = application(found, "db")
        self.assertEqual(db.volume, AttachedVolume(mountpoint="/var/lib/db"))
        self.assertEqual(
            db.volumes,
            {AttachedVolume(name="uploads", mountpoint="/srv/uploads",
                            maximum_size=1024 ** 3),
             AttachedVolume(name="config", mountpoint="/etc/db",
                            read_only=True, external=True)})

    def test_shared_on_one_node(self):
        """
        Two applications on one node may mount one named volume.
        """
        found = parse(NATIVE + """\
    volumes: [{name: shared, mountpoint: /s}]
  cache:
    image: redis
    volumes: [{name: shared, mountpoint: /data, read_only: true}]
            """, WEB_AND_DB.replace("[db]", "[db, cache]"))
        self.assertEqual(
            {v.name for v in application(found, "cache").volumes},
            {"shared"})

    def test_shared_across_nodes(self):
        """
        A volume mounted by applications on two nodes is refused at the
        second placement, naming both nodes.
        """
        found = problems(NATIVE.replace(
            "    ports: [{internal: 80, external: 8080}]\n",
            "    ports: [{internal: 80, external: 8080}]\n"
            "    volumes: [{name: shared, mountpoint: /s}]\n") +
            "    volumes: [{name: shared, mountpoint: /data}]\n")
        assert_problem(found, DEPLOYMENT, 4, 23, "db mounts volume shared",
                       "web mounts on node 192.0.2.1 (line 3)",
                       "one node at a time")

    def test_shared_with_other_size(self):
        """
        Applications sharing a volume must agree on its size.
        """
        found = problems(NATIVE + """\
    volumes: [{name: shared, mountpoint: /s}]
  cache:
    image: redis
    volumes: [{name: shared, mountpoint: /data, maximum_size: 1G}]
            """, WEB_AND_DB.replace("[db]", "[db, cache]"))
        assert_problem(found, DEPLOYMENT, 4, 27, "cache mounts volume shared",
                       "another maximum_size")

    @cases([
        ("{mountpoint: /x}", 11, 9, 'no "name"'),
        ("{name: 'a b', mountpoint: /x}", 11, 16, "not a safe name"),
        ("{name: a, mountpoint: x}", 11, 31, "absolute"),
        ("{name: a, mountpoint: /x, read_only: 1}", 11, 46, "true or false"),
        ("{name: a, mountpoint: /x, size: 1}", 11, 35, '"size"'),
        ("{name: a, mountpoint: /x, maximum_size: 0}", 11, 49, "positive"),
    ])
    def test_bad_entry(self, entry, line, column, fragment):
        """
        Each problem of an entry is reported where it is.
        """
        found = problems(NATIVE + "    volumes:\n      - %s\n" % (entry,))
        assert_problem(found, APPLICATION, line, column, fragment)

    @cases([
        ("[{name: a, mountpoint: /x}, {name: a, mountpoint: /y}]",
         "volume name a is already used by the volume at line 10"),
        ("[{name: a, mountpoint: /x}, {name: b, mountpoint: /x}]",
         "mountpoint /x is already used by the volume at line 10"),
        ("[{name: db, mountpoint: /y}]",
         "volume name db is already used by the application's own volume"),
        ("[{name: b, mountpoint: /own}]",
         "mountpoint /own is already used by the application's own volume"),
    ])
    def test_repeated(self, entries, fragment):
        """
        A volume name or mountpoint used twice by one application (its own
        volume included) is reported at the repeating entry.
        """
        found = problems(NATIVE + "    volumes: %s\n    volume: "
                         "{mountpoint: /own}\n" % (entries,))
        self.assertTrue(any(fragment in error.message for error in found),
                        found)

    def test_written_back(self):
        """
        The native writer gives back the named volumes.
        """
        found = parse(NATIVE + """\
    volumes: [{name: u, mountpoint: /u, read_only: true,
               external: true, maximum_size: 1024}]
            """)
        self.assertEqual(
            parse_configuration(*(
                deployment_to_yaml(found)[0], DEPLOYMENT,
                deployment_to_yaml(found)[1], APPLICATION)),
            found)


@with_cases
class DeploymentProblemsTests(SynchronousTestCase):
    """
    Problems in the deployment file and across the two files.
    """

    def test_undefined_application(self):
        """
        An application the application file does not define is reported
        with a did-you-mean.
        """
        found = problems(NATIVE, WEB_AND_DB.replace("[db]", "[dbb]"))
        assert_problem(found, DEPLOYMENT, 4, 23, '"dbb" is not defined',
                       'did you mean "db"')

    def test_application_on_two_nodes(self):
        """
        One application on two nodes is refused at the second placement.
        """
        found = problems(NATIVE, WEB_AND_DB.replace("[db]", "[db, web]"))
        assert_problem(found, DEPLOYMENT, 4, 27, "web is already on node "
                       "192.0.2.1 (line 3)")

    def test_application_twice_on_one_node(self):
        """
        An application listed twice on one node is refused too.
        """
        found = problems(NATIVE, WEB_AND_DB.replace("[web]", "[web, web]"))
        assert_problem(found, DEPLOYMENT, 3, 20, "already on node")

    @cases([(address,) for address in [
        '"a;b"', '"$(reboot)"', '"192.0.2.300"', '"-oProxyCommand=x"',
        '"host name"', '"a..b"', '"fe80::1%eth0"']])
    def test_bad_address(self, address):
        """
        Node addresses must be IP addresses or host names without
        metacharacters.
        """
        found = problems(NATIVE, WEB_AND_DB.replace("node2.example.com",
                                                    address))
        assert_problem(found, DEPLOYMENT, 4, 3, "node address")

    def test_missing_nodes(self):
        """
        A deployment without ``nodes`` is refused.
        """
        found = problems(NATIVE, "version: 1\n")
        assert_problem(found, DEPLOYMENT, 1, 1, 'no "nodes"')

    def test_unknown_key(self):
        """
        Unknown top-level deployment keys get a did-you-mean.
        """
        found = problems(NATIVE, WEB_AND_DB + "node: {}\n")
        assert_problem(found, DEPLOYMENT, 5, 1, '"node"',
                       'did you mean "nodes"')

    def test_version(self):
        """
        The deployment file must say ``version: 1`` too.
        """
        found = problems(NATIVE, WEB_AND_DB.replace("version: 1",
                                                    "version: 3"))
        assert_problem(found, DEPLOYMENT, 1, 10, "version must be 1")

    def test_node_list_not_list(self):
        """
        A node's applications must be a list.
        """
        found = problems(NATIVE, WEB_AND_DB.replace("[db]", "db"))
        assert_problem(found, DEPLOYMENT, 4, 22, "must be a list")

    def test_faulty_application_not_undefined(self):
        """
        An application defined with problems is not also reported as
        undefined in the deployment file.
        """
        found = problems(NATIVE.replace("image: postgres:9", "image: 5:5:5"
                                        "/ /"))
        self.assertEqual([e.path for e in found], [APPLICATION])

    def test_all_problems_in_one_run(self):
        """
        Problems of both files are all reported at once, deployment file
        first, each file in line order.
        """
        found = problems(
            NATIVE.replace("imag", "imgae").replace("8080", "0"),
            WEB_AND_DB.replace("version: 1", "version: 2"))
        self.assertEqual(
            [(e.path, e.line) for e in found],
            [(DEPLOYMENT, 1), (APPLICATION, 3), (APPLICATION, 4),
             (APPLICATION, 5), (APPLICATION, 7), (APPLICATION, 8)])


@with_cases
class LoadConfigurationTests(SynchronousTestCase):
    """
    Reading the two files from disk.
    """

    def write(self, tmp_path, name, text):
        path = tmp_path / name
        path.write_text(dedent(text))
        return str(path)

    def test_load(self):
        """
        Two valid files give the deployment they describe.
        """
        tmp_path = temporary_path(self)
        deployment = self.write(tmp_path, "d.yml", WEB_AND_DB)
        applications = self.write(tmp_path, "a.yml", NATIVE)
        self.assertEqual(load_configuration(deployment, applications),
                         parse(NATIVE))

    def test_missing_files(self):
        """
        Missing files are each reported, naming the path.
        """
        tmp_path = temporary_path(self)
        deployment = str(tmp_path / "nope.yml")
        applications = str(tmp_path / "gone.yml")
        with self.assertRaises(ConfigurationErrors) as info:
            load_configuration(deployment, applications)
        self.assertEqual(
            [str(e) for e in info.exception],
            [deployment + ":1:1: cannot read the file: No such file or "
             "directory",
             applications + ":1:1: cannot read the file: No such file or "
             "directory"])

    def test_other_file_still_checked(self):
        """
        When one file cannot be read, the other is still checked.
        """
        tmp_path = temporary_path(self)
        applications = self.write(tmp_path, "a.yml", "version: 2\n"
                                  "applications: {}\n")
        with self.assertRaises(ConfigurationErrors) as info:
            load_configuration(str(tmp_path), applications)
        self.assertEqual(
            [(e.path, e.line, e.column) for e in info.exception],
            [(str(tmp_path), 1, 1), (applications, 1, 10)])

    @cases([(text,) for text in ["web: [", "", "- web\n"]])
    def test_unreadable_application_file(self, text):
        """
        When the application file is not a YAML mapping, the deployment
        file's placements are not also reported as undefined: which names
        the file meant is unknown.
        """
        tmp_path = temporary_path(self)
        deployment = self.write(tmp_path, "d.yml", WEB_AND_DB)
        applications = self.write(tmp_path, "a.yml", text)
        with self.assertRaises(ConfigurationErrors) as info:
            load_configuration(deployment, applications)
        self.assertEqual([e.path for e in info.exception], [applications])

    def test_not_utf8(self):
        """
        A file that is not UTF-8 is reported at the first bad byte.
        """
        tmp_path = temporary_path(self)
        path = tmp_path / "a.yml"
        path.write_bytes(b"version: 1\napplications:\n  w\xff: {}\n")
        deployment = self.write(tmp_path, "d.yml", WEB_AND_DB)
        with self.assertRaises(ConfigurationErrors) as info:
            load_configuration(deployment, str(path))
        self.assertEqual(
            [str(e) for e in info.exception],
            [str(path) + ":3:4: the file is not UTF-8 text"])


class DeploymentToYamlTests(SynchronousTestCase):
    """
    Writing a deployment back as native configuration files.
    """

    def test_readable_output(self):
        """
        The output is the native format, fields with default values left
        out.
        """
        deployment_text, application_text = deployment_to_yaml(parse(NATIVE))
        self.assertEqual(
            deployment_text,
            dedent("""\
                version: 1
                nodes:
                  192.0.2.1:
                  - web
                  node2.example.com:
                  - db
                """))
        self.assertEqual(
            yaml.safe_load(application_text),
            {"version": 1,
             "applications": {
                 "db": {"image": "postgres:9",
                        "ports": [{"internal": 5432, "external": 5432}]},
                 "web": {"image": "example/web:1.0",
                         "ports": [{"internal": 80, "external": 8080}],
                         "links": [{"local_port": 5432, "remote_port": 5432,
                                    "alias": "db"}]}}})

    def test_unprintable_strings(self):
        """
        Strings with line breaks or unprintable characters survive.
        """
        deployment = Deployment(nodes=[Node(address="n", applications=[
            Application(name="a", image="i",
                        environment={"X": "a\x85b\u2028c\r\nd\ufeff"},
                        command=[" x ", "\t", "'\""])])])
        self.assertEqual(
            parse_configuration(*_interleave(
                deployment_to_yaml(deployment))),
            deployment)

    def test_ipv6_round_trip(self):
        """
        IPv6 node addresses, whose colons YAML would misread unquoted,
        survive.
        """
        deployment = Deployment(nodes=[
            Node(address="0::1", applications=[
                Application(name="a", image="i")]),
            Node(address="2001:db8::2")])
        self.assertEqual(
            parse_configuration(*_interleave(
                deployment_to_yaml(deployment))),
            deployment)

    @fuzz_settings(default=100)
    @given(deployments())
    def test_round_trip(self, deployment):
        """
        Writing a deployment and parsing the result gives it back.
        """
        self.assertEqual(
            parse_configuration(*_interleave(
                deployment_to_yaml(deployment))),
            deployment)


def _interleave(texts):
    """
    :return: ``parse_configuration`` arguments for ``(deployment_text,
        application_text)``.
    """
    return texts[0], DEPLOYMENT, texts[1], APPLICATION


# ---------------------------------------------------------------------------
# Fuzzing: whatever the input, parsing returns a deployment or raises
# ConfigurationErrors with sensible locations, and nothing else.

def check_parse_outcome(case, deployment_text, application_text):
    """
    Parse and assert the only outcomes are a ``Deployment`` or
    ``ConfigurationErrors`` whose problems are located in one of the two
    files, within its lines, on one line each.

    :param case: The running ``TestCase``, whose assertions fail the test.
    """
    try:
        result = parse_configuration(deployment_text, DEPLOYMENT,
                                     application_text, APPLICATION)
    except ConfigurationErrors as e:
        case.assertNotEqual(len(e), 0, "no problem in the errors")
        texts = {DEPLOYMENT: deployment_text, APPLICATION: application_text}
        for error in e:
            case.assertIn(error.path, texts)
            lines = texts[error.path].count("\n") + texts[error.path].count(
                "\r") + texts[error.path].count("\x85") + texts[
                error.path].count("\u2028") + texts[error.path].count(
                "\u2029") + 1
            case.assertTrue(1 <= error.line <= lines,
                            "line %d of %d: %s" % (error.line, lines, error))
            case.assertGreaterEqual(error.column, 1, str(error))
            case.assertTrue(error.message, "no message: %r" % (error,))
            case.assertNotIn("\n", str(error))
    else:
        case.assertIsInstance(result, Deployment)


# Keys from both formats, so generated structures reach deep code paths.
_KEYS = [
    "version", "applications", "nodes", "services", "image", "command",
    "environment", "ports", "volume", "volumes", "links", "mem_limit",
    "cpu_shares", "restart_policy", "restart", "internal", "external",
    "mountpoint", "maximum_size", "local_port", "remote_port", "alias",
    "name", "maximum_retry_count", "web", "db", "build", "192.0.2.1",
]

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 70000),
    st.integers(), st.floats(allow_nan=False),
    st.sampled_from(_KEYS + ["1G", "512M", "8080:80", "db:alias", "/data",
                             "../x", "/a:/b", "no", "on-failure:3", "a=b",
                             "never", "always", "on-failure", "", "*"]),
    st.text(max_size=10),
)

_TREES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=5)),
                        children, max_size=4)),
    max_leaves=25)


def _dump(data):
    return yaml.safe_dump(data, allow_unicode=True)


@st.composite
def mutated_text(draw, text):
    """
    ``text`` with a few random edits: deletions, insertions of random or
    YAML-significant characters, duplicated or swapped lines.
    """
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(
            ["delete", "insert", "symbol", "duplicate", "swap"]))
        if kind == "delete":
            end = draw(st.integers(position, min(len(text), position + 8)))
            text = text[:position] + text[end:]
        elif kind == "insert":
            text = text[:position] + draw(st.text(max_size=6)) + \
                text[position:]
        elif kind == "symbol":
            text = text[:position] + draw(st.sampled_from(
                [":", "-", " ", "\n", "\t", "[", "]", "{", "}", "&a ", "*a",
                 "!!int ", "? ", "'", '"', "#", "|", ">", "---\n", "%"])) + \
                text[position:]
        else:
            lines = text.split("\n")
            index = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate":
                lines.insert(index, lines[index])
            else:
                other = draw(st.integers(0, len(lines) - 1))
                lines[index], lines[other] = lines[other], lines[index]
            text = "\n".join(lines)
    return text


class FuzzTests(SynchronousTestCase):
    """
    Parsing never fails with anything but ``ConfigurationErrors``.
    """

    @fuzz_settings(default=150)
    @given(st.text(max_size=200), st.text(max_size=200))
    def test_arbitrary_text(self, deployment_text, application_text):
        """
        Arbitrary text gives a deployment or located problems.
        """
        check_parse_outcome(self, deployment_text, application_text)

    @fuzz_settings(default=100)
    @given(st.data())
    def test_mutated_valid_files(self, data):
        """
        Valid files with random edits give a deployment or located
        problems.
        """
        deployment_text, application_text = deployment_to_yaml(
            data.draw(deployments()))
        check_parse_outcome(self, data.draw(mutated_text(deployment_text)),
                            data.draw(mutated_text(application_text)))

    @fuzz_settings(default=150)
    @given(st.data())
    def test_mutated_compose_file(self, data):
        """
        A compose file with random edits gives a deployment or located
        problems.
        """
        check_parse_outcome(
            self, WEB_AND_DB, data.draw(mutated_text(dedent(
                ComposeFormatTests.FIG))))

    @fuzz_settings(default=150)
    @given(_TREES, _TREES)
    def test_arbitrary_structures(self, deployment_tree, application_tree):
        """
        Arbitrary YAML structures built from the formats' own keys give a
        deployment or located problems.
        """
        check_parse_outcome(self, _dump(deployment_tree),
                            _dump(application_tree))

    @fuzz_settings(default=150)
    @given(st.dictionaries(st.sampled_from(_KEYS), _TREES, max_size=3),
           _TREES, st.sampled_from(["native", "services", "fig"]))
    def test_arbitrary_applications(self, web, nodes, form):
        """
        Arbitrary application bodies inside a well-formed file of either
        format give a deployment or located problems.
        """
        services = {"web": web, "db": {"image": "d"}}
        if form == "native":
            document = {"version": 1, "applications": services}
        elif form == "services":
            document = {"services": services}
        else:
            document = services
        check_parse_outcome(self, _dump({"version": 1, "nodes": nodes}),
                            _dump(document))
