"""
Tests for the compose format beyond Flocker 0.4's: variables and env files
(``flocker.node._interpolate``), YAML anchors and merges, the Docker keys
read into ``ContainerOptions``, every port form, ``depends_on``, and the
keys accepted with a note or refused.
"""

import os
import shutil
import tempfile
from textwrap import dedent

import yaml
from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, AttachedVolume, ContainerOptions, Dependency, HealthCheck,
    HostMount, LogConfig, Port, RestartPolicy, Ulimit,
)
from flocker.node._config import (
    ConfigurationErrors, load_configuration, parse_configuration,
)
from flocker.node._interpolate import (
    InterpolationError, interpolate, parse_env_file,
)
from flocker.testtools.strategies import fuzz_settings
from flocker.testtools import cases, temporary_path, with_cases

DEPLOYMENT = "deployment.yml"
APPLICATION = "compose.yml"

PLACE = """\
version: 1
nodes:
  192.0.2.1: [web, db]
"""


def parse(text, environ=None, directory=None, deployment=PLACE, notes=None):
    """
    Parse a dedented compose file placing ``web`` and ``db``.
    """
    return parse_configuration(dedent(deployment), DEPLOYMENT, dedent(text),
                               APPLICATION, environ=environ,
                               directory=directory, notes=notes)


def problems(text, **kwargs):
    """
    :return: The ``(line, column, message)`` of each problem reported.
    :raises AssertionError: If parsing reports none.
    """
    try:
        parse(text, **kwargs)
    except ConfigurationErrors as errors:
        return [(e.line, e.column, e.message) for e in errors]
    raise AssertionError("no problem reported")


def has(found, line, column, *fragments):
    """
    :return: Whether a problem (or note) at ``line:column`` holds every
        fragment.
    """
    return any((l, c) == (line, column) and all(f in m for f in fragments)
               for l, c, m in found)


def web(found):
    """
    :return: The application ``web`` of a parsed deployment.
    """
    return found.placements()["web"][1]


@with_cases
class InterpolateTests(SynchronousTestCase):
    """
    ``interpolate``: the compose specification's substitutions.
    """

    VARIABLES = {"SET": "value", "EMPTY": ""}

    @cases([
        ("$SET/${SET}", "value/value"),
        ("cost: $$5", "cost: $5"),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${UNSET-default}", "default"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET:?missing}", "value"),
        ("${UNSET:-${SET}-x}", "value-x"),
        ("no variables", "no variables"),
        ("sh -c 'echo $(date) $1 ^a$'", "sh -c 'echo $(date) $1 ^a$'"),
    ])
    def test_forms(self, text, result):
        """
        Each form substitutes as the specification says.
        """
        self.assertEqual(interpolate(text, self.VARIABLES), result)

    def test_unset_collected(self):
        """
        An unset variable is read as empty and named in ``unset``.
        """
        unset = set()
        self.assertEqual(interpolate("a${NOPE}b$ALSO", {}, unset), "ab")
        self.assertEqual(unset, {"NOPE", "ALSO"})

    @cases([
        ("${UNSET:?set it please}", 0, "set it please"),
        ("${EMPTY:?}", 0, "empty or unset"),
        ("${UNSET?}", 0, "unset"),
        ("${SET", 5, "closed"),
        ("${SET:-x", 8, "unclosed"),
        ("${1}", 0, "variable name"),
    ])
    def test_errors(self, text, offset, fragment):
        """
        Required variables that are missing and malformed substitutions
        are errors naming where they start.
        """
        with self.assertRaises(InterpolationError) as info:
            interpolate(text, self.VARIABLES)
        self.assertEqual(info.exception.offset, offset)
        self.assertIn(fragment, info.exception.message)


@with_cases
class ParseEnvFileTests(SynchronousTestCase):
    """
    ``parse_env_file``: ``.env`` and ``env_file`` files.
    """

    def test_forms(self):
        """
        Comments, ``export``, quotes, escapes, inline comments, multi-line
        double quotes and substitutions from earlier lines are read.
        """
        values, lines = parse_env_file(dedent("""\
            # a comment

            export A=1
            B = "two\\nlines ${A}"
            C='${A} stays'
            D=bare # comment
            E="multi
            line"
            F
            G=
            """), {"F": "from outside"})
        self.assertEqual(
            values,
            {"A": "1", "B": "two\nlines 1", "C": "${A} stays",
             "D": "bare", "E": "multi\nline",
             "F": "from outside", "G": ""})
        self.assertEqual(lines["E"], 7)

    @cases([
        ("A=1\n=2\n", (2, 1), "NAME=value"),
        ("A='open\n", (1, 3), "never closed"),
        ("A=${\n", (1, 3), "variable name"),
    ])
    def test_errors(self, text, where, fragment):
        """
        A bad line is an error at its line and column.
        """
        with self.assertRaises(InterpolationError) as info:
            parse_env_file(text)
        self.assertEqual(info.exception.offset, where)
        self.assertIn(fragment, info.exception.message)


class VariablesTests(SynchronousTestCase):
    """
    Variables in compose files, from the environment and ``.env``.
    """

    def test_environment_over_dotenv(self):
        """
        ``.env`` beside the file gives values; the deploy's environment
        wins over it.
        """
        tmp_path = temporary_path(self)
        (tmp_path / ".env").write_text("TAG=1.0\nPORT=8080\n")
        found = parse("""\
            services:
              web:
                image: "example/web:${TAG}"
                ports: ["${PORT}:80"]
                mem_limit: ${MEM:-512M}
              db: {image: "postgres:${PG:-16}"}
            """, environ={"PORT": "9090"}, directory=str(tmp_path))
        self.assertEqual(web(found).image, "example/web:1.0")
        self.assertEqual(web(found).ports, {Port(internal=80, external=9090)})
        self.assertEqual(web(found).mem_limit, 512 * 1024 ** 2)
        self.assertEqual(found.placements()["db"][1].image, "postgres:16")

    def test_plain_scalar_retyped(self):
        """
        A plain value becomes what its substituted text is: a number here.
        """
        found = parse("""\
            web: {image: w, cpu_shares: $SHARES}
            db: {image: d}
            """, environ={"SHARES": "512"})
        self.assertEqual(web(found).cpu_shares, 512)

    def test_required_missing(self):
        """
        ``${VAR:?message}`` without the variable is a located problem
        carrying the message.
        """
        found = problems("""\
            web: {image: "${IMAGE:?set IMAGE to the web image}"}
            db: {image: d}
            """)
        self.assertTrue(has(found, 1, 14, "set IMAGE to the web image"))

    def test_unset_noted(self):
        """
        An unset variable is read as empty, with a note where it is first
        used.
        """
        notes = []
        parse("""\
            web: {image: w, environment: {A: "x${NOPE}"}}
            db: {image: d, environment: {B: "$NOPE"}}
            """, notes=notes)
        self.assertEqual(
            [(n.line, n.column) for n in notes
             if "NOPE" in n.message],
            [(1, 34)])

    def test_keys_not_substituted(self):
        """
        Keys are not substituted; ``$$`` in values is a literal ``$``.
        """
        found = parse("""\
            web: {image: w, environment: {A: "$$HOME"}}
            db: {image: d}
            """)
        self.assertEqual(web(found).environment, {"A": "$HOME"})

    def test_bad_dotenv_located(self):
        """
        A problem in ``.env`` is reported in that file.
        """
        tmp_path = temporary_path(self)
        (tmp_path / ".env").write_text("GOOD=1\nnot a line\n")
        with self.assertRaises(ConfigurationErrors) as info:
            parse("web: {image: w}\ndb: {image: d}\n",
                  directory=str(tmp_path))
        self.assertEqual(
            [str(e) for e in info.exception],
            ["%s:2:5: expected NAME=value" % (tmp_path / ".env",)])

    def test_load_reads_dotenv_beside_file(self):
        """
        ``load_configuration`` reads the ``.env`` beside the compose file
        and takes variables from the environment given.
        """
        tmp_path = temporary_path(self)
        (tmp_path / ".env").write_text("TAG=2\n")
        (tmp_path / "d.yml").write_text(PLACE)
        (tmp_path / "c.yml").write_text(
            "web: {image: 'w:${TAG}', environment: [USER]}\ndb: {image: d}\n")
        found = load_configuration(str(tmp_path / "d.yml"),
                                   str(tmp_path / "c.yml"),
                                   environ={"USER": "ann"})
        self.assertEqual(
            (web(found).image, dict(web(found).environment)),
            ("w:2", {"USER": "ann"}))


class EnvFileTests(SynchronousTestCase):
    """
    ``env_file``: variables for the container from files.
    """

    def test_forms(self):
        """
        A string, a list and the long form are read relative to the
        compose file; ``environment`` wins; an optional missing file is
        skipped.
        """
        tmp_path = temporary_path(self)
        (tmp_path / "a.env").write_text("A=1\nB=from-a\n")
        (tmp_path / "b.env").write_text("B=from-b\nC=3\n")
        found = parse("""\
            web:
              image: w
              env_file: [a.env, {path: b.env}, {path: none.env, required: false}]
              environment: {C: mine}
            db: {image: d, env_file: a.env}
            """, directory=str(tmp_path))
        self.assertEqual(
            web(found).environment,
            {"A": "1", "B": "from-b",
             "C": "mine"})
        self.assertEqual(
            found.placements()["db"][1].environment,
            {"A": "1",
             "B": "from-a"})

    def test_missing_file(self):
        """
        A required env file that is missing is a problem at its entry.
        """
        tmp_path = temporary_path(self)
        found = problems("""\
            web: {image: w, env_file: [missing.env]}
            db: {image: d}
            """, directory=str(tmp_path))
        self.assertTrue(has(found, 1, 28, "missing.env", "cannot be read"))

    def test_bad_line_located_in_env_file(self):
        """
        A bad line of an env file is reported in that file.
        """
        tmp_path = temporary_path(self)
        (tmp_path / "bad.env").write_text("A=1\nB='open\n")
        with self.assertRaises(ConfigurationErrors) as info:
            parse("web: {image: w, env_file: bad.env}\ndb: {image: d}\n",
                  directory=str(tmp_path))
        self.assertEqual(
            [str(e) for e in info.exception],
            ["%s:2:3: the single quote is never closed" % (
                 tmp_path / "bad.env",)])


class AnchorsTests(SynchronousTestCase):
    """
    YAML anchors, aliases and merges; ``x-`` extensions.
    """

    def test_merge_and_extension(self):
        """
        ``x-`` keys are ignored; ``<<: *anchor`` merges a mapping under the
        service's own keys, which win.
        """
        found = parse("""\
            x-common: &common
              restart: unless-stopped
              environment: {TZ: UTC}
              logging: {driver: local}
            services:
              web:
                <<: *common
                image: w
                environment: {TZ: CET}
              db:
                <<: [*common]
                image: d
                x-note: anything
            """)
        self.assertEqual(
            web(found).restart_policy,
            RestartPolicy(
                name="unless-stopped"))
        self.assertEqual(web(found).environment, {"TZ": "CET"})
        self.assertEqual(
            found.placements()["db"][1].options.logging,
            LogConfig(
                driver="local"))

    def test_alias_bomb(self):
        """
        A "billion laughs" file is refused at the alias that makes it too
        large, without expanding it.
        """
        found = problems("\n".join(
            ["x-0: &x0 [a, a, a, a, a, a, a, a, a, a]"] +
            ["x-%d: &x%d [%s]" % (i, i, ", ".join(["*x%d" % (i - 1,)] * 10))
             for i in range(1, 9)] +
            ["web: {image: w}", "db: {image: d}", ""]))
        self.assertEqual(len(found), 1)
        self.assertTrue(found[0][0] == 5 and "more than 100000" in found[0][2])

    def test_merge_of_scalar(self):
        """
        ``<<`` of something other than a mapping is a located problem.
        """
        found = problems("""\
            web: {image: w, <<: 5}
            db: {image: d}
            """)
        self.assertTrue(has(found, 1, 21, "<< merges a mapping"))


@with_cases
class OptionsTests(SynchronousTestCase):
    """
    Service keys passed to Docker, read into ``ContainerOptions``.
    """

    FULL = """\
        services:
          web:
            image: w
            entrypoint: /bin/entry --flag "two words"
            command: ["run", "--fast"]
            user: "1000:1000"
            working_dir: /srv
            hostname: webhost
            labels: [com.example.team=web]
            cap_add: [NET_ADMIN]
            cap_drop: [ALL]
            read_only: true
            tmpfs: ["/run:size=64m", /tmp]
            shm_size: 256m
            ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
            sysctls: {net.core.somaxconn: 1024}
            stop_signal: SIGINT
            stop_grace_period: 1m30s
            init: false
            tty: true
            stdin_open: true
            dns: 192.0.2.53
            dns_search: [example.com]
            extra_hosts: ["db.local:192.0.2.5", "other=192.0.2.6"]
            security_opt: ["no-new-privileges:true"]
            pids_limit: 100
            logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}
            privileged: false
            runtime: runc
            platform: linux/amd64
            group_add: [audio, 44]
            mem_limit: 1.5g
            mem_reservation: 256m
            cpus: 0.5
            healthcheck:
              test: curl -f http://localhost/
              interval: 30s
              timeout: 5s
              retries: 3
              start_period: 1m
              start_interval: 500ms
            expose: ["9000", "9001/udp"]
            container_name: my-web
            restart: unless-stopped
          db: {image: d}
        """

    def test_every_key(self):
        """
        Each key becomes its field, values converted to Docker's units.
        """
        found = web(parse(self.FULL))
        self.assertEqual(found.command, ["run", "--fast"])
        self.assertEqual(found.mem_limit, 1536 * 1024 ** 2)
        self.assertEqual(found.restart_policy,
                         RestartPolicy(name="unless-stopped"))
        self.assertEqual(
            found.options,
            ContainerOptions(
                entrypoint=["/bin/entry", "--flag", "two words"],
                user="1000:1000", working_dir="/srv", hostname="webhost",
                labels={"com.example.team": "web"}, cap_add=["NET_ADMIN"],
                cap_drop=["ALL"], read_only=True,
                tmpfs={"/run": "size=64m", "/tmp": ""},
                shm_size=256 * 1024 ** 2,
                ulimits=[Ulimit(name="nofile", soft=1024, hard=2048),
                         Ulimit(name="nproc", soft=512, hard=512)],
                sysctls={"net.core.somaxconn": "1024"}, stop_signal="SIGINT",
                stop_grace_period=90, init=False, tty=True, stdin_open=True,
                dns=["192.0.2.53"], dns_search=["example.com"],
                extra_hosts=["db.local:192.0.2.5", "other:192.0.2.6"],
                security_opt=["no-new-privileges:true"], pids_limit=100,
                logging=LogConfig(driver="json-file",
                                  options={"max-size": "10m", "max-file": "3"}),
                runtime="runc", platform="linux/amd64",
                group_add=["audio", "44"], mem_reservation=256 * 1024 ** 2,
                nano_cpus=500000000,
                healthcheck=HealthCheck(
                    test=["CMD-SHELL", "curl -f http://localhost/"],
                    interval=30 * 10 ** 9, timeout=5 * 10 ** 9, retries=3,
                    start_period=60 * 10 ** 9, start_interval=500 * 10 ** 6),
                expose=[(9000, "tcp"), (9001, "udp")], container_name="my-web"))

    def test_deploy_resources(self):
        """
        ``deploy.resources`` limits and reservations set memory and CPUs;
        ``deploy.restart_policy`` sets the restart policy.
        """
        found = web(parse("""\
            web:
              image: w
              deploy:
                resources:
                  limits: {memory: 1G, cpus: "2", pids: 50}
                  reservations: {memory: 512M}
                restart_policy: {condition: on-failure, max_attempts: 4}
            db: {image: d}
            """))
        self.assertEqual(
            (found.mem_limit, found.options.nano_cpus,
             found.options.pids_limit, found.options.mem_reservation,
             found.restart_policy),
            (1024 ** 3, 2 * 10 ** 9, 50, 512 * 1024 ** 2,
             RestartPolicy(name="on-failure", maximum_retry_count=4)))

    def test_healthcheck_disable(self):
        """
        ``disable: true`` turns the image's check off.
        """
        found = web(parse("""\
            web: {image: w, healthcheck: {disable: true}}
            db: {image: d}
            """))
        self.assertEqual(found.options.healthcheck, HealthCheck(test=["NONE"]))

    @cases([
        ("stop_grace_period", "soon", "not a duration"),
        ("cpus", "lots", "positive number of CPUs"),
        ("read_only", "maybe", "true or false"),
        ("ulimits", "{nofile: {soft: 10, hard: 5}}", "exceeds the hard"),
        ("healthcheck", "{test: [RUN, x]}", "CMD, CMD-SHELL or NONE"),
        ("tmpfs", "run", "absolute path"),
        ("extra_hosts", "[nohost]", "HOST:ADDRESS"),
        ("container_name", "'a b'", "not a safe name"),
        ("shm_size", "-1", "positive integer"),
    ])
    def test_bad_values(self, key, value, fragment):
        """
        A bad value of a key is located at the value.
        """
        found = problems("web:\n  image: w\n  %s: %s\ndb: {image: d}\n" % (
            key, value))
        self.assertTrue(any(l == 3 and fragment in m for l, c, m in found),
                        found)


class PortsTests(SynchronousTestCase):
    """
    Every compose port form.
    """

    def test_forms(self):
        """
        Ranges, host addresses, UDP and the long syntax give their ports;
        a container port alone is exposed, with a note.
        """
        notes = []
        found = web(parse("""\
            web:
              image: w
              ports:
                - "8080:80"
                - "127.0.0.1:8443:443"
                - "53:53/udp"
                - "9000-9001:7000-7001"
                - "[::1]:2222:22"
                - {target: 5000, published: "5001", protocol: udp}
                - "3000"
            db: {image: d}
            """, notes=notes))
        self.assertEqual(
            found.ports,
            {Port(internal=80, external=8080),
             Port(internal=443, external=8443, host_ip="127.0.0.1"),
             Port(internal=53, external=53, protocol="udp"),
             Port(internal=7000, external=9000),
             Port(internal=7001, external=9001),
             Port(internal=22, external=2222, host_ip="::1"),
             Port(internal=5000, external=5001, protocol="udp"),
            })
        self.assertEqual(found.options.expose, {(3000, "tcp")})
        self.assertTrue(
            any(n.line == 10 and "no host port" in n.message
                for n in notes))

    def test_empty_target_refused(self):
        """
        A long-syntax port whose target is left empty is a located problem,
        not a crash.
        """
        found = problems("""\
            web:
              image: w
              ports:
                - {published: "9001", target: null}
            db: {image: d}
            """)
        self.assertTrue(has(found, 4, 35, "target", "not an empty value"))

    def test_tcp_and_udp_share_a_number(self):
        """
        The same external port may be published once for TCP and once for
        UDP, even by two services; twice for one protocol it is refused.
        """
        found = parse("""\
            web: {image: w, ports: ["53:53/udp"]}
            db: {image: d, ports: ["53:53"]}
            """)
        self.assertEqual(web(found).ports, {Port(53, 53, "udp")})
        found = problems("""\
            web: {image: w, ports: ["53:53/udp"]}
            db: {image: d, ports: ["53:5353/udp"]}
            """)
        self.assertTrue(
            has(found, 2, 24, "external port 53/udp is already used"))


class DependsOnTests(SynchronousTestCase):
    """
    ``depends_on`` in its list and mapping forms.
    """

    def test_forms(self):
        """
        A list means "started"; a mapping gives the condition and whether
        the dependency is required.
        """
        found = parse("""\
            services:
              web:
                image: w
                depends_on:
                  db: {condition: service_healthy}
                  migrate: {condition: service_completed_successfully,
                            required: false}
              db:
                image: d
                healthcheck: {test: [CMD, pg_isready]}
              migrate: {image: m, depends_on: [db]}
            """, deployment="version: 1\nnodes:\n"
                            "  192.0.2.1: [web, db, migrate]\n")
        self.assertEqual(
            web(found).depends_on,
            {Dependency(name="db", condition="service_healthy"),
             Dependency(name="migrate",
                        condition="service_completed_successfully",
                        required=False)})
        self.assertEqual(
            found.placements()["migrate"][1].depends_on,
            {Dependency(name="db")})

    def test_problems(self):
        """
        An undefined service, a cycle, an unknown condition and waiting for
        the health of a service whose check is disabled are located.
        """
        found = problems("""\
            services:
              web: {image: w, depends_on: [dbb, db]}
              db: {image: d, depends_on: {web: {condition: started}}}
              c: {image: c, healthcheck: {disable: true}}
              e: {image: e, depends_on: {c: {condition: service_healthy}}}
            """)
        self.assertTrue(
            has(found, 2, 32, 'undefined service "dbb"',
                'did you mean "db"'))
        self.assertTrue(has(found, 3, 48, '"started" is not one of'))
        self.assertTrue(has(found, 5, 30, "c has no healthcheck"))
        found = problems("""\
            web: {image: w, depends_on: [db]}
            db: {image: d, depends_on: [web]}
            """)
        self.assertTrue(has(found, 2, 29, "cycle: db -> web -> db"))


@with_cases
class NotedAndRefusedTests(SynchronousTestCase):
    """
    Keys accepted with a note, and keys refused with why.
    """

    def test_noted(self):
        """
        ``networks``, ``profiles``, ``build`` beside ``image``, ``version``
        and ``name`` are accepted with one note each.
        """
        notes = []
        parse("""\
            version: "3.8"
            name: shop
            services:
              web: {image: w, build: ., networks: [front], profiles: [x]}
              db: {image: d, networks: [front]}
            networks: {front: {}}
            volumes: {}
            """, notes=notes)
        messages = [(n.line, n.message.split(":")[0].split(" ")[0])
                    for n in notes]
        self.assertEqual(
            messages,
            [(1, "version"), (2, "name"), (4, "build"),
             (4, "networks"), (4, "profiles"), (6, "networks")])
        self.assertIn(
            "services web, db",
            [n.message for n in notes
             if n.line == 4 and "networks" in
             n.message][0])

    @cases([
        ("{build: .}", 14, "registry your nodes can pull from"),
        ("{image: w, network_mode: host}", 31, "node's network"),
        ("{image: w, network_mode: 'service:db'}", 31, "another container"),
        ("{image: w, devices: [/dev/sda]}", 17, "devices are not supported"),
        ("{image: w, deploy: {resources: {reservations: {devices: []}}}}",
         53, "devices are not supported"),
        ("{image: w, deploy: {replicas: 3}}", 36, "one container"),
        ("{image: w, extends: base}", 17, "write the service out"),
    ])
    def test_refused(self, service, column, fragment):
        """
        Each refused key is a located problem saying why.
        """
        found = problems("web: %s\ndb: {image: d}\n" % (service,))
        self.assertTrue(has(found, 1, column, fragment), found)


class Flocker04Tests(SynchronousTestCase):
    """
    Flocker 0.4 files that keep working, and one that must not.
    """

    def test_dotted_name_and_fractional_size(self):
        """
        Names with dots and fractional sizes are accepted.
        """
        found = parse_configuration(
            "version: 1\nnodes: {192.0.2.1: [site-example.com]}\n",
            DEPLOYMENT, dedent("""\
            version: 1
            applications:
              site-example.com:
                image: w
                volume: {mountpoint: /var/lib/data/, maximum_size: "2.5G"}
            """), APPLICATION)
        self.assertEqual(
            found.placements()["site-example.com"][1].volume,
            AttachedVolume(mountpoint="/var/lib/data",
                           maximum_size=2684354560))

    def test_empty_mapping_refused(self):
        """
        ``{}`` would remove every application: it is refused.
        """
        with self.assertRaises(ConfigurationErrors) as info:
            parse_configuration(PLACE.replace("[web, db]", "[]"), DEPLOYMENT,
                                "{}\n", APPLICATION)
        self.assertEqual([(e.line, e.column) for e in info.exception],
                         [(1, 1)])
        self.assertIn("remove every application",
                      info.exception.errors[0].message)

    def test_application_is_equal_after_round_trip(self):
        """
        An application read from a compose file with options survives the
        label's JSON unchanged (so an unchanged file restarts nothing).
        """
        from flocker._serialize import (
            application_from_dict, application_to_dict, dumps, loads)
        found = web(parse(OptionsTests.FULL))
        self.assertEqual(
            application_from_dict(loads(dumps(application_to_dict(
                found)))),
            found)
        self.assertIsInstance(found, Application)


@with_cases
class VolumesTests(SynchronousTestCase):
    """
    The compose volume syntax, read into volumes, host mounts and files.
    """

    def test_every_form(self):
        """
        Named (and external) volumes, anonymous ones, relative directories
        (seeded volumes), relative files, absolute host paths (noted),
        tmpfs entries, and file-based secrets and configs each become
        their model value.
        """
        tmp_path = temporary_path(self)
        (tmp_path / "data").mkdir()
        (tmp_path / "nginx.conf").write_bytes(b"events {}\n")
        (tmp_path / "pw.txt").write_bytes(b"secret\n")
        notes = []
        found = parse("""\
            name: shop
            services:
              web:
                image: w
                volumes:
                  - ./nginx.conf:/etc/nginx/nginx.conf:ro
                  - ./data:/srv/data:rw,z
                  - /etc/localtime:/etc/localtime:ro
                  - cache:/var/cache
                  - {type: tmpfs, target: /scratch, tmpfs: {size: 64m}}
                  - /var/lib/web
                secrets: [pw]
                configs: [{source: conf, target: /etc/app.conf, mode: "0440"}]
              db:
                image: d
                volumes: [{type: volume, source: pgdata, target: /pg/}]
            volumes:
              cache:
              pgdata: {external: true, name: pg-main}
            secrets:
              pw: {file: ./pw.txt}
            configs:
              conf: {file: ./nginx.conf}
            """, directory=str(tmp_path), notes=notes)
        app = web(found)
        self.assertEqual(app.volume, AttachedVolume(mountpoint="/var/lib/web"))
        self.assertEqual(
            app.volumes,
            {AttachedVolume(mountpoint="/srv/data", name="shop-data"),
             AttachedVolume(mountpoint="/var/cache", name="shop_cache")})
        self.assertEqual(
            [v.seed for v in app.volumes if v.name == "shop-data"],
            [str(tmp_path / "data")])
        self.assertEqual(
            app.host_mounts,
            {HostMount(
                host_path="/etc/localtime", mountpoint="/etc/localtime",
                read_only=True)})
        self.assertEqual(
            {(f.mountpoint, f.content, f.mode) for f in app.files},
            {("/etc/nginx/nginx.conf", b"events {}\n", 0o644),
             ("/run/secrets/pw", b"secret\n", 0o644),
             ("/etc/app.conf", b"events {}\n", 0o440)})
        self.assertEqual(app.options.tmpfs, {"/scratch": "size=64m"})
        self.assertEqual(
            found.placements()["db"][1].volumes,
            {AttachedVolume(
                mountpoint="/pg", name="pg-main", external=True)})
        self.assertTrue(
            any("/etc/localtime" in n.message and "stays" in n.message
                for n in notes))

    def test_project_prefix(self):
        """
        A named volume declared without ``name:`` is the project's:
        ``PROJECT_KEY``, remembering its former name; with ``name:`` (or
        external) it is named as written.
        """
        found = parse("""\
            name: shop
            services:
              web: {image: w, volumes: ["data:/d", "kept:/k", "ext:/e"]}
              db: {image: d}
            volumes:
              data:
              kept: {name: data-v1}
              ext: {external: true}
            """)
        self.assertEqual(
            sorted((v.name, v.former_name) for v in web(found).volumes),
            [("data-v1", None), ("ext", None), ("shop_data", "data")])

    def test_two_projects_do_not_meet(self):
        """
        Two projects' ``data`` volumes are two volumes.
        """
        def volume(project):
            found = parse("name: %s\nservices:\n  web: {image: w, volumes: "
                          "[data:/d]}\n  db: {image: d}\nvolumes: {data: {}}"
                          "\n" % (project,))
            return [v.name for v in web(found).volumes]
        self.assertEqual(volume("shop") + volume("blog"),
                         ["shop_data", "blog_data"])

    def test_long_project_volume(self):
        """
        A project volume name past 63 characters is cut and ended with a
        digest, so it stays a safe name and distinct.
        """
        found = parse("name: %s\nservices:\n  web: {image: w, volumes: "
                      "[%s:/d, %s:/e]}\n  db: {image: d}\nvolumes: {%s: {}, "
                      "%s: {}}\n" % ("p" * 40, "v" * 30 + "a", "v" * 30 + "b",
                                     "v" * 30 + "a", "v" * 30 + "b"))
        names = [v.name for v in web(found).volumes]
        self.assertEqual((len(set(names)), max(len(n) for n in names)),
                         (2, 63))

    def test_missing_directory_noted(self):
        """
        A relative bind source that does not exist gives an empty volume,
        with a note (compose would create the directory).
        """
        tmp_path = temporary_path(self)
        notes = []
        found = parse("web: {image: w, volumes: ['./new:/d']}\n"
                      "db: {image: d}\n", directory=str(tmp_path),
                      notes=notes)
        self.assertEqual([v.seed for v in web(found).volumes], [None])
        self.assertTrue(any("does not exist" in n.message for n in notes))

    @cases([
        ("'a:b:c:d'", "SOURCE:TARGET:MODE"),
        ("'./x:/x:rx'", 'unknown mode "rx"'),
        ("{type: npipe, source: a, target: /b}", "volume, bind or tmpfs"),
        ("'data:relative'", "absolute path"),
    ])
    def test_refused(self, entry, fragment):
        """
        Malformed entries are refused at the entry.
        """
        tmp_path = temporary_path(self)
        found = problems("web: {image: w, volumes: [%s]}\ndb: {image: d}\n"
                         % (entry,), directory=str(tmp_path))
        self.assertTrue(any(l == 1 and fragment in m for l, c, m in found),
                        found)

    def test_secret_not_declared(self):
        """
        A secret missing from the top-level secrets is refused.
        """
        tmp_path = temporary_path(self)
        found = problems("""\
            services:
              web: {image: w, secrets: [pw]}
              db: {image: d}
            """, directory=str(tmp_path))
        self.assertTrue(has(found, 2, 29, '"pw" is not declared'))


@with_cases
class NamesTests(SynchronousTestCase):
    """
    What makes names resolve: network ``aliases`` and link aliases of
    services that publish no port.
    """

    def test_network_aliases(self):
        """
        ``aliases`` of each network a service joins become its
        ``aliases``; the network's other settings are ignored.
        """
        found = parse("""\
            services:
              web: {image: w}
              db:
                image: d
                networks:
                  back: {aliases: [postgres, db.internal], ipv4_address: 10.0.0.2}
                  front: {aliases: [pg]}
                  other:
            """)
        self.assertEqual(
            found.placements()["db"][1].options.aliases,
            ["db.internal", "pg", "postgres"])

    def test_network_list(self):
        """
        A list of networks gives no aliases.
        """
        found = parse("""\
            services:
              web: {image: w, networks: [front, back]}
              db: {image: d}
            """)
        self.assertEqual(web(found).options.aliases, [])

    @cases([
        ("{back: {aliases: [db]}}", 2, 47, "already names service db"),
        ("{back: {aliases: ['a b']}}", 2, 47, "is not a safe name"),
        ("{back: {aliasses: [x]}}", 2, 37, 'did you mean "aliases"'),
        ("{back: {aliases: x}}", 2, 46, "list"),
    ])
    def test_refused(self, networks, line, column, fragment):
        """
        An alias naming another service, one that cannot be a host name
        of a link, an unknown network key and a bad type are located.
        """
        found = problems("""\
            services:
              web: {image: w, networks: %s}
              db: {image: d}
            """ % (networks,))
        self.assertTrue(has(found, line, column, fragment), found)

    def test_alias_on_two_services(self):
        """
        One alias given by two services is refused at the second.
        """
        found = problems("""\
            services:
              web: {image: w, networks: {n: {aliases: [x]}}}
              db: {image: d, networks: {n: {aliases: [x]}}}
            """)
        self.assertTrue(
            has(found, 3, 43, "network alias x of service db already "
                "names service web"),
            found)

    def test_link_alias_without_ports(self):
        """
        A link with an alias to a service publishing no port is kept as a
        link alias (the name resolves through it).
        """
        found = parse("""\
            services:
              web: {image: w, links: ["db:database"]}
              db: {image: d, expose: [5432]}
            """)
        self.assertEqual(
            (web(found).links, dict(web(found).options.link_aliases)),
            (frozenset(), {"database": "db"}))


class OverrideTests(SynchronousTestCase):
    """
    A compose override file beside the compose file, merged by the compose
    specification's rules (``flocker.node._compose_merge``).
    """

    def load(self, tmp_path, base, override, name="compose.yaml",
             override_name="compose.override.yaml", notes=None):
        """
        Write the two files and the deployment file; load them.
        """
        (tmp_path / name).write_text(dedent(base))
        (tmp_path / override_name).write_text(dedent(override))
        (tmp_path / "deploy.yml").write_text(PLACE)
        return load_configuration(str(tmp_path / "deploy.yml"),
                                  str(tmp_path / name), environ={},
                                  notes=notes)

    def test_merge_rules(self):
        """
        Mappings merge, the override winning; command is replaced; ports
        sharing their unique key are replaced and others appended; lists
        append (a repeated value once); environment lists and mappings
        merge as mappings; a new service is added.
        """
        tmp_path = temporary_path(self)
        found = self.load(tmp_path, """\
            services:
              web:
                image: w:1
                command: [serve, --slow]
                ports: ["8080:80", "8443:443"]
                dns: [192.0.2.53]
                environment: [A=1, B=2]
                restart: always
            """, """\
            services:
              web:
                image: w:2
                command: [serve]
                ports: ["9000:9000", "8080:80"]
                dns: [192.0.2.53, 192.0.2.54]
                environment: {B: "3", C: "4"}
              db: {image: d}
            """)
        app = web(found)
        self.assertEqual(
            (app.image, list(app.command),
             sorted((p.external, p.internal) for p in app.ports),
             list(app.options.dns), dict(app.environment),
             app.restart_policy.name,
             found.placements()["db"][1].image),
            ("w:2", ["serve"], [(8080, 80), (8443, 443), (9000, 9000)],
             ["192.0.2.53", "192.0.2.54"], {"A": "1", "B": "3", "C": "4"},
             "always", "d"))

    def test_unique_volume_target(self):
        """
        A volume of the override with the target of one of the base
        replaces it.
        """
        tmp_path = temporary_path(self)
        found = self.load(tmp_path, """\
            name: p
            services:
              web: {image: w, volumes: ["old:/data", "/cache"]}
              db: {image: d}
            volumes: {old: {}, new: {}}
            """, """\
            services:
              web: {volumes: ["new:/data"]}
            """)
        self.assertEqual(
            sorted((v.name, v.mountpoint) for v in web(found).volumes
                   ),
            [("p_new", "/data")])

    def test_reset_and_override_tags(self):
        """
        ``!reset`` removes a key; ``!override`` replaces a value whole.
        """
        tmp_path = temporary_path(self)
        found = self.load(tmp_path, """\
            services:
              web:
                image: w
                ports: ["8080:80"]
                environment: {A: "1", B: "2"}
              db: {image: d}
            """, """\
            services:
              web:
                ports: !reset []
                environment: !override {C: "3"}
            """)
        self.assertEqual(
            (web(found).ports, dict(web(found).environment)),
            (frozenset(), {"C": "3"}))

    def test_problem_in_override_located(self):
        """
        A problem written in the override file is reported in the override
        file at its line; one in the base file stays in the base file.
        """
        tmp_path = temporary_path(self)
        with self.assertRaises(ConfigurationErrors) as info:
            self.load(tmp_path, """\
                services:
                  web: {image: w, restart: sometimes}
                  db: {image: d}
                """, """\
                services:
                  db:
                    mem_limit: lots
                """)
        self.assertEqual(
            sorted((os.path.basename(e.path), e.line, e.column)
                   for e in info.exception),
            [("compose.override.yaml", 3, 16), ("compose.yaml", 2, 28)])

    def test_noted(self):
        """
        The merge is noted, in the override file.
        """
        tmp_path = temporary_path(self)
        notes = []
        self.load(tmp_path, "services: {web: {image: w}, db: {image: d}}\n",
                  "services: {web: {image: w2}}\n", notes=notes)
        self.assertEqual(
            [(os.path.basename(n.path), n.message) for n in notes
             if "merged" in n.message],
            [("compose.override.yaml",
              "merged into %s (compose's override file)" % (
                  tmp_path / "compose.yaml",))])

    def test_docker_compose_names(self):
        """
        ``docker-compose.override.yml`` is merged into
        ``docker-compose.yml``; another file name has no override.
        """
        tmp_path = temporary_path(self)
        found = self.load(
            tmp_path, "services: {web: {image: w}, db: {image: d}}\n",
            "services: {web: {image: w2}}\n", name="docker-compose.yml",
            override_name="docker-compose.override.yml")
        self.assertEqual(web(found).image, "w2")
        other = self.load(
            tmp_path, "services: {web: {image: w}, db: {image: d}}\n",
            "services: {web: {image: w2}}\n", name="app.yml",
            override_name="app.override.yml")
        self.assertEqual(web(other).image, "w")

    def test_fig_format(self):
        """
        Files with their services at the top merge as services.
        """
        tmp_path = temporary_path(self)
        found = self.load(tmp_path, "web: {image: w, dns: [a]}\n"
                          "db: {image: d}\n", "web: {dns: [b]}\n")
        self.assertEqual(list(web(found).options.dns), ["a", "b"])


_KEYS = st.sampled_from(["A", "B", "C"])
_VALUES = st.sampled_from(["1", "2", "x y"])
_SERVICES = st.fixed_dictionaries({
    "image": st.sampled_from(["w:1", "w:2"]),
    "environment": st.one_of(
        st.dictionaries(_KEYS, _VALUES, max_size=3),
        st.lists(st.builds("{}={}".format, _KEYS, _VALUES), max_size=3,
                 unique_by=lambda text: text.split("=")[0])),
    "ports": st.lists(st.sampled_from(["8080:80", "8443:443", "53:53/udp"]),
                      unique=True, max_size=3),
    "dns": st.lists(st.sampled_from(["192.0.2.1", "192.0.2.2"]),
                    unique=True, max_size=2),
    "command": st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2),
})


class OverridePropertiesTests(SynchronousTestCase):
    """
    Properties of the override merge, on generated services.
    """

    @fuzz_settings(default=60)
    @given(_SERVICES, _SERVICES)
    def test_override_with_itself(self, service, other):
        """
        A file overridden by itself reads as the file alone, and an
        override of every key of another service reads as that service
        for the keys replaced whole (image, command).
        """
        def load(base, override):
            top = tempfile.mkdtemp()
            # One project name (the directory's) for every load.
            directory = os.path.join(top, "proj")
            os.mkdir(directory)
            try:
                for name, service_ in (("compose.yaml", base),
                                       ("compose.override.yaml", override)):
                    if service_ is not None:
                        with open(os.path.join(directory, name), "w") as f:
                            yaml.safe_dump({"services": {
                                "web": service_, "db": {"image": "d"}}}, f)
                with open(os.path.join(directory, "d.yml"), "w") as f:
                    f.write(PLACE)
                return load_configuration(
                    os.path.join(directory, "d.yml"),
                    os.path.join(directory, "compose.yaml"), environ={})
            finally:
                shutil.rmtree(top)
        alone = web(load(service, None))
        self.assertEqual(web(load(service, service)), alone)
        merged = web(load(service, other))
        self.assertEqual(
            (merged.image, list(merged.command)),
            (other["image"],
             other["command"]))
