"""
Fuzzing ``flocker-deploy --check``: hypothesis builds configuration files,
valid and broken in every way a person or a disk could break them, and runs
the command on them in-process.  Whatever the bytes, the command ends with
status 0 and a summary, or status 1 and one ``PATH:LINE:COL: message`` line
per problem, never anything else.

Each test tries ``FLOCKER_FUZZ_EXAMPLES`` cases (a small number by default,
for CI).  The long run, documented in ``docs/architecture.rst``::

    FLOCKER_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest -q \\
        flocker/node/test/test_fuzz_config.py

prints how many files were tried and how many of them were refused.
"""

import io
import os
import re
import shutil
import sys
import tempfile
from collections import Counter

import yaml
from hypothesis import HealthCheck, given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from flocker.cli.script import flocker_deploy_main, main
from flocker.node._config import deployment_to_yaml
from flocker.testtools.strategies import deployments, fuzz_settings
from flocker.testtools import capture_output, cases, temporary_path, with_cases

#: Cases tried by this module's tests in this run: ``"valid"`` (the
#: command accepted the files) and ``"refused"`` (it reported problems).
TRIED = Counter()

COMPOSE = """\
web:
  image: example/web
  command: python app.py --port 80
  environment:
    - DEBUG=1
  ports: ["8080:80"]
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

#: A compose file using the specification's newer keys: variables,
#: anchors and merges, extensions, every port form, container options,
#: health checks, dependencies, named and anonymous volumes, notes.
COMPOSE_SPEC = """\
name: shop
x-common: &common
  restart: unless-stopped
  logging: {driver: json-file, options: {max-size: 10m}}
  labels: [team=shop]
services:
  web:
    <<: *common
    image: "example/web:${TAG:-1.0}"
    entrypoint: /bin/entry --flag
    command: ["serve", "--port", "80"]
    environment: {DEBUG: "0", HOME: null, PRICE: "$$5"}
    ports: ["8080:80", "127.0.0.1:8443:443", "5353:53/udp",
            {target: 9000, published: "9001"}, "3000"]
    expose: ["7000", "7001/udp"]
    depends_on:
      db: {condition: service_healthy}
    healthcheck: {test: curl -f http://localhost/, interval: 30s,
                  timeout: 5s, retries: 3, start_period: 1m}
    volumes: [/var/lib/web, "cache:/var/cache:ro",
              {type: tmpfs, target: /scratch}]
    cap_add: [NET_ADMIN]
    ulimits: {nofile: {soft: 1024, hard: 2048}}
    sysctls: {net.core.somaxconn: "1024"}
    extra_hosts: ["db.local:192.0.2.5"]
    stop_grace_period: 1m30s
    deploy: {resources: {limits: {memory: 1.5g, cpus: "0.5"}}}
    networks: [front]
  db:
    <<: *common
    image: postgres
    user: "999"
    shm_size: 128m
    healthcheck: {test: [CMD, pg_isready], interval: 5s}
    volumes: ["pgdata:/var/lib/postgresql/data"]
    networks: {back: {aliases: [postgres, database]}}
volumes:
  cache:
  pgdata: {external: true}
networks: {front: {}}
"""

COMPOSE_DEPLOYMENT = """\
version: 1
nodes:
  192.0.2.1: [web]
  node2.example.com: [db]
"""


# ---------------------------------------------------------------------------
# What the command may print

_LOCATION = re.compile(r"\A(?P<path>.*?):(?P<line>[0-9]+):(?P<column>[0-9]+)"
                       r": (?P<message>\S.*)\Z")


def _line_count(data):
    """
    :return: How many lines a YAML reader could count in ``data`` (bytes):
        every kind of line break counts, so this is an upper bound.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.count(b"\n") + 1
    return 1 + sum(text.count(b) for b in "\n\r\x85\u2028\u2029")


def check_command(case, directory, deployment_data, application_data):
    """
    Write the two files into ``directory``, run ``flocker-deploy --check`` on
    them in-process, and assert that it either accepts them (status 0, located
    notes, one summary line) or refuses them (status 1, nothing on stdout, and
    every line of stderr ``PATH:LINE:COL: message`` naming one of the two files
    at a place inside it).  Any exception fails the test.

    :param case: The running ``TestCase``, whose assertions fail the test.
    :param bytes deployment_data: The deployment file's content.
    :param bytes application_data: The application file's content.
    """
    files = {}
    for name, data in (("deployment.yml", deployment_data),
                       ("application.yml", application_data)):
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        files[path] = data
    stdout, stderr = io.StringIO(), io.StringIO()
    # No variables: the fuzzed files see the same values wherever they run.
    status = main(None, ["--check"] + list(files), stdout, stderr, {})
    out, err = stdout.getvalue(), stderr.getvalue()
    if status == 0:
        TRIED["valid"] += 1
        case.assertEqual(err, "")
        lines = out.split("\n")
        case.assertRegex(lines[-2],
                         r"\A[0-9]+ applications? on [0-9]+ nodes?\Z")
        case.assertEqual(lines[-1], "")
        for line in lines[:-2]:
            match = _LOCATION.match(line)
            case.assertIsNotNone(match, line)
            case.assertIn(match.group("path"), files, line)
            case.assertTrue(match.group("message").startswith("note: "),
                            line)
        return
    TRIED["refused"] += 1
    case.assertEqual((status, out), (1, ""), err)
    case.assertTrue(err.endswith("\n"), repr(err))
    case.assertNotIn("Traceback", err)
    lines = err[:-1].split("\n")
    for line in lines:
        match = _LOCATION.match(line)
        case.assertIsNotNone(match, line)
        case.assertIn(match.group("path"), files, line)
        case.assertTrue(1 <= int(match.group("line")) <= _line_count(
            files[match.group("path")]), line)
        case.assertGreaterEqual(int(match.group("column")), 1, line)


# ---------------------------------------------------------------------------
# Building files

def _huge_number(digits):
    return "9" * digits


#: Strings hostile to shells, paths, terminals and number parsing.
_HOSTILE_STRINGS = st.sampled_from([
    "", " ", "-", "--help", "..", "../..", "/", "/..", "a/../b",
    "; rm -rf /", "$(id)", "`id`", "a|b", "a && b", "a\nb", "a\rb",
    "a\x00b", "\t", "\u2028", "\x85", "\ufeff", "\u202e", "\U0001f600",
    "ünïcödé", "x" * 10000, "8080:80", "99999999999:80",
    "on-failure:\u00b2", "on-failure:" + "9" * 5000, "1G",
    "9" * 5000 + "G", "0", "-1", "1e9", "0x10", "0o17", "1_000",
    "190:20:30", "~", "null", "yes", "no",
    "2001-12-14", "192.0.2.300", "::1", "fe80::1%eth0", "a" * 300,
    "web:web:web", "*", "&", "!", "%", "@", "{", "[",
])

#: Values dropped into a file in place of what belongs there: wrong types,
#: huge and odd numbers, and hostile strings.
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.integers(-1, 70000),
    st.integers(20, 6000).map(_huge_number),
    st.integers(20, 4000).map(lambda n: int(_huge_number(n))),
    _HOSTILE_STRINGS,
    st.text(max_size=20),
)

_KEYS = st.sampled_from([
    "version", "applications", "nodes", "services", "image", "command",
    "environment", "ports", "volume", "volumes", "links", "mem_limit",
    "cpu_shares", "restart_policy", "restart", "internal", "external",
    "mountpoint", "maximum_size", "local_port", "remote_port", "alias",
    "name", "maximum_retry_count", "web", "db", "192.0.2.1", "build", "<<",
])


def _paths(tree, prefix=()):
    """
    :return: Every path (tuple of keys and indexes) to a value in ``tree``,
        the root included.
    """
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.extend(_paths(value, prefix + (key,)))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found.extend(_paths(value, prefix + (index,)))
    return found


def _get(tree, path):
    """
    :return: The value at ``path`` in ``tree``.
    """
    for step in path:
        tree = tree[step]
    return tree


def _replace(tree, path, make):
    """
    :return: A copy of ``tree`` with the value at ``path`` replaced by
        ``make(value)``, or removed if ``make`` returns :data:`_DELETE`.
    """
    if not path:
        return make(tree)
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        copy = dict(tree)
    else:
        copy = list(tree)
    value = _replace(copy[head], rest, make)
    if value is _DELETE:
        del copy[head]
    else:
        copy[head] = value
    return copy


_DELETE = object()


@st.composite
def mutated_tree(draw, tree):
    """
    ``tree`` (the loaded content of a valid file) with a few structural
    edits: values deleted, replaced by wrong types or hostile values,
    wrapped in deep nesting, keys added.
    """
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(tree)))
        kind = draw(st.sampled_from(
            ["delete", "replace", "nest", "add key", "list"]))
        if kind == "delete" and path:
            tree = _replace(tree, path, lambda value: _DELETE)
        elif kind == "replace":
            new = draw(_VALUES)
            tree = _replace(tree, path, lambda value: new)
        elif kind == "nest":
            depth = draw(st.integers(1, 60))
            as_list = draw(st.booleans())

            def nest(value, depth=depth, as_list=as_list):
                for _ in range(depth):
                    value = [value] if as_list else {"a": value}
                return value
            tree = _replace(tree, path, nest)
        elif kind == "add key":
            key, new = draw(_KEYS), draw(_VALUES)
            tree = _replace(tree, path, lambda value: (
                dict(value, **{key: new}) if isinstance(value, dict)
                else value))
        else:
            tree = _replace(tree, path, lambda value: [value, value])
    return tree


def _dump(tree, flow):
    return yaml.safe_dump(tree, allow_unicode=True,
                          default_flow_style=flow, width=80)


#: Text edits: YAML syntax in the wrong place, anchors and aliases, merge
#: keys, tags (including Python object tags that a careless loader would
#: honour), directives, more documents, huge numbers, deep nesting, tabs,
#: escapes for unprintable characters.
_SNIPPETS = st.sampled_from([
    ":", "-", " ", "  ", "\n", "\t", "\r", "\r\n", "[", "]", "{", "}", ",",
    "&a ", "*a", "<<: *a\n", "&a [1, *a]", "!!int ", "!!int ''", "!!int -",
    "!!str ", "!!binary ",
    "!!python/object/apply:os.system ['id']", "!!set ", "!custom ", "? ",
    "'", '"', "#", "|", ">", "---\n", "...\n", "%YAML 1.1\n---\n",
    "%TAG ! tag:example.com,2000:\n---\n", "\\x00", '"\\0"', '"\\x85"',
    '"\\u2028"', '"\\ud800"', '"\\U00110000"', '"\\UFFFFFFFF"',
    "9" * 5000, "[" * 3000, "{a: " * 2000, "- " * 500,
    "\ufeff", "\x85", "\u2028", "\x7f", "\x1b[31m",
])


@st.composite
def mutated_text(draw, text):
    """
    ``text`` with a few textual edits: deletions, duplicated or swapped
    lines (duplicated keys), truncation, and insertions of random text or
    of :data:`_SNIPPETS`.
    """
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(
            ["delete", "insert", "snippet", "snippet", "duplicate", "swap",
             "truncate"]))
        if kind == "delete":
            end = draw(st.integers(position, min(len(text), position + 12)))
            text = text[:position] + text[end:]
        elif kind == "insert":
            text = text[:position] + draw(st.text(max_size=8)) + \
                text[position:]
        elif kind == "snippet":
            text = text[:position] + draw(_SNIPPETS) + text[position:]
        elif kind == "truncate":
            text = text[:position]
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


@st.composite
def encoded(draw, text):
    """
    ``text`` as the bytes of a file: usually UTF-8, sometimes another
    encoding or with random bytes inserted (so not UTF-8 at all).
    """
    kind = draw(st.sampled_from(
        ["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1",
         "bytes"]))
    if kind == "latin-1":
        return text.encode("latin-1", "replace")
    if kind != "bytes":
        return text.encode(kind, "surrogatepass")
    data = text.encode("utf-8", "surrogatepass")
    position = draw(st.integers(0, len(data)))
    return data[:position] + draw(st.binary(min_size=1, max_size=8)) + \
        data[position:]


@st.composite
def broken_file(draw, text):
    """
    The bytes of a file that started as the valid ``text``, broken by
    structural edits, textual edits, a change of encoding, or several.
    """
    tree = yaml.safe_load(text)
    if draw(st.booleans()):
        text = _dump(draw(mutated_tree(tree)), draw(st.booleans()))
    if draw(st.booleans()):
        text = draw(mutated_text(text))
    return draw(encoded(text))


# Some examples hold deliberately large or deeply nested values, which
# hypothesis would otherwise warn about.
_LARGE = dict(suppress_health_check=[HealthCheck.too_slow,
                                     HealthCheck.data_too_large])


class FuzzCheckTests(SynchronousTestCase):
    """
    ``flocker-deploy --check`` on generated files: a summary or located
    problems, never a traceback.
    """

    @classmethod
    def setUpClass(cls):
        # One directory for the generated files, shared by every example of
        # the class (hypothesis reruns a test body many times).  The counts
        # of TRIED are printed at the end of the run by this package's
        # conftest.py.
        cls.workspace = tempfile.mkdtemp(prefix="flocker-fuzz-")
        cls.addClassCleanup(shutil.rmtree, cls.workspace, True)

    @fuzz_settings(default=60, **_LARGE)
    @given(data=st.data())
    def test_broken_native_files(self, data):
        """
        Valid native files with structural, textual and encoding damage to
        either or both are accepted or refused with located problems.
        """
        deployment_text, application_text = deployment_to_yaml(
            data.draw(deployments()))
        damage = data.draw(st.sampled_from(["deployment", "application",
                                            "both"]))
        deployment_data = deployment_text.encode("utf-8")
        application_data = application_text.encode("utf-8")
        if damage != "application":
            deployment_data = data.draw(broken_file(deployment_text))
        if damage != "deployment":
            application_data = data.draw(broken_file(application_text))
        check_command(self, self.workspace, deployment_data,
                      application_data)

    @fuzz_settings(default=100, **_LARGE)
    @given(data=st.data())
    def test_broken_compose_files(self, data):
        """
        A valid compose file with structural, textual and encoding damage
        is accepted or refused with located problems.
        """
        check_command(self, self.workspace,
                      COMPOSE_DEPLOYMENT.encode("utf-8"),
                      data.draw(broken_file(COMPOSE)))

    @fuzz_settings(default=100, **_LARGE)
    @given(data=st.data())
    def test_broken_compose_spec_files(self, data):
        """
        A valid compose file using the specification's newer keys, with
        structural, textual and encoding damage, is accepted (with located
        notes) or refused with located problems.
        """
        check_command(self, self.workspace,
                      COMPOSE_DEPLOYMENT.encode("utf-8"),
                      data.draw(broken_file(COMPOSE_SPEC)))

    @fuzz_settings(default=100, **_LARGE)
    @given(deployment=st.binary(max_size=300),
           application=st.binary(max_size=300))
    def test_arbitrary_bytes(self, deployment, application):
        """
        Files of arbitrary bytes are accepted or refused with located
        problems.
        """
        check_command(self, self.workspace, deployment, application)

    @fuzz_settings(default=60, **_LARGE)
    @given(data=st.data())
    def test_hostile_values(self, data):
        """
        Hostile or mistyped values in any place of valid files of either
        format (and hostile keys next to good ones) are accepted or refused
        with located problems.
        """
        deployment_text, application_text = data.draw(st.sampled_from([
            deployment_to_yaml(data.draw(deployments(max_nodes=2,
                                                     max_applications=2))),
            (COMPOSE_DEPLOYMENT, COMPOSE)]))
        trees = []
        for text in (deployment_text, application_text):
            tree = yaml.safe_load(text)
            for _ in range(data.draw(st.integers(1, 3))):
                # Mostly a scalar's place, mostly a hostile string: where a
                # parser converts or checks text.
                paths = _paths(tree)
                leaves = [p for p in paths
                          if not isinstance(_get(tree, p), (dict, list))]
                path = data.draw(st.sampled_from(
                    leaves if leaves and data.draw(st.integers(0, 2))
                    else paths))
                value = data.draw(st.one_of(_HOSTILE_STRINGS, _VALUES))
                tree = _replace(tree, path, lambda old: value)
                if isinstance(tree, dict) and data.draw(st.booleans()):
                    tree = dict(tree, **{data.draw(_VALUES.map(str)): value})
            trees.append(_dump(tree, data.draw(st.booleans())))
        check_command(self, self.workspace, trees[0].encode("utf-8"),
                      trees[1].encode("utf-8"))



_PLACE_WEB = b"version: 1\nnodes:\n  192.0.2.1: [web]\n"


def _native(body):
    return b"version: 1\napplications:\n" + body


@with_cases
class CheckEntryPointTests(SynchronousTestCase):
    """
    The ``flocker-deploy`` console-script function itself, on files broken
    in the ways the fuzzing above tries: one located line on stderr, exit
    status 1, no traceback.
    """

    @cases([
        (_native(b"  web: {image: caf\xe9}\n"), "3:19:", "not UTF-8"),
        ("version: 1\napplications: {}\n".encode("utf-16"), "1:1:",
         "not UTF-8"),
        (_native(b"  web: {image: w\x00}\n"), "3:17:", "#x0000"),
        (_native(b"  web: " + b"[" * 5000 + b"\n"), "3:",
         "nested too deeply"),
        (b"x-a: &a [l, l, l, l, l, l, l, l, l, l]\n"
         b"x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
         b"x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
         b"x-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
         b"x-e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
         b"web: {image: w, labels: *e}\n", "5:38:", "more than 100000"),
        (_native(b"  web: &w {image: w, x: [*w]}\n"), "3:26:",
         "contains itself"),
        (_native(b"\tweb: {image: w}\n"), "3:1:", "'\\t'"),
        (_native(b"  web: {image: w"), "3:17:", "<stream end>"),
        (_native(b"  web: {image: w, mem_limit: \"" + b"9" * 5000
                 + b"G\"}\n"), "3:30:", "too large"),
        (_native(b'  web: {image: w, volume: {mountpoint: "/d\\0"}}\n'),
         "3:40:", "control character"),
        (_native(b"  web: {image: !!python/object/apply:os.system [id]}\n"),
         "3:16:", "must be a string"),
        (_native(b'  web: {image: "w; rm -rf /"}\n'), "3:16:",
         "not a valid Docker image name"),
        (_native(b'  web: {image: "\\U00110000"}\n'), "3:19:",
         "names no character"),
    ])
    def test_one_line(self, application,
                      location, fragment):
        """
        A file with one problem makes ``flocker-deploy --check`` exit with
        status 1 after printing that problem as one
        ``PATH:LINE:COL: message`` line.  (Where reading stops in a deep
        nesting depends on the stack already in use, so only its line is
        given.)
        """
        tmp_path = temporary_path(self)
        stdout, stderr = capture_output(self)
        deployment_path = tmp_path / "deployment.yml"
        deployment_path.write_bytes(_PLACE_WEB)
        application_path = tmp_path / "application.yml"
        application_path.write_bytes(application)
        self.patch(sys, "argv", [
            "flocker-deploy", "--check", str(deployment_path),
            str(application_path)])
        with self.assertRaises(SystemExit) as info:
            flocker_deploy_main()
        out, err = (stdout.getvalue(), stderr.getvalue())
        self.assertEqual((info.exception.code, out), (1, ""))
        self.assertTrue(err.count("\n") == 1 and err.endswith("\n"))
        self.assertTrue(err.startswith("%s:%s" % (application_path, location)))
        self.assertTrue(fragment in err and "Traceback" not in err)

    def test_unreadable_file(self):
        """
        A directory given as a configuration file is one located line too.
        """
        tmp_path = temporary_path(self)
        stdout, stderr = capture_output(self)
        deployment_path = tmp_path / "deployment.yml"
        deployment_path.write_bytes(_PLACE_WEB)
        self.patch(sys, "argv", [
            "flocker-deploy", "--check", str(deployment_path),
            str(tmp_path)])
        with self.assertRaises(SystemExit) as info:
            flocker_deploy_main()
        out, err = (stdout.getvalue(), stderr.getvalue())
        self.assertEqual((info.exception.code, out), (1, ""))
        self.assertEqual(
            err,
            "%s:1:1: cannot read the file: Is a directory\n" % (
                tmp_path,))
