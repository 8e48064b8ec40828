"""
Injection: every value a configuration file gives (application names,
images, environment names and values, command arguments, mountpoints, link
aliases, ports, node addresses) holding shell metacharacters, newlines,
``..``, ``/``, NUL, ten thousand characters, non-ASCII text or a leading
``-`` is either refused at parse time, located at the value, or reaches the
node and Docker exactly as written: as one argument of an argument vector
quoted for an SSH command line, inside the JSON documents of the agent
protocol, or as one element of Docker's ``Env``, ``Cmd`` or ``Binds``.
"""

import json
import re
import shlex

from hypothesis import given, strategies as st
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from flocker._model import (
    Application, AttachedVolume, InvalidModel, Link, Route,
)
from flocker.cli._remote import AgentConnections, RemoteNodeAgent
from flocker._ssh import quote_argv
from flocker.cli.testtools import LoopbackNetwork
from flocker.node._config import ConfigurationErrors, parse_configuration
from flocker.node._docker import container_config
from flocker.node._peer_remote import AgentRemote
from flocker.node._server import AgentService
from flocker.testtools.strategies import fuzz_settings
from flocker.volume._errors import UnsafeName
from flocker.testtools import cases, with_cases

#: Values hostile to shells, paths, parsers and terminals.
HOSTILE = [
    ";", "a;b", "$(id)", "${HOME}", "`id`", "a|b", "a && b", "a || b",
    "a > /etc/passwd", "a\nb", "a\r\nb", "..", "../etc", "a/../b", "/", "a/b",
    "a\x00b", "x" * 10000, "ünïcödé", "\u202eevil", "\U0001f600", "\u2028",
    "\x85", "-rf", "--help", "-oProxyCommand=id", "a b", "'", '"', "\\",
    "*", "?", "~root", "#", "a=b", "a:b", "\t", "\x1b[2J", "",
]

_IMAGE_CHARACTERS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:@+-")

DEPLOYMENT = "deployment.yml"
APPLICATION = "application.yml"


def yaml_string(value):
    """
    :return: ``value`` as a YAML double-quoted scalar that reads back as
        exactly ``value``: printable ASCII as itself, every other character
        as an ``\\U`` escape (YAML breaks no line inside an escape and needs
        no surrogate pairs for it).
    """
    return '"%s"' % ("".join(
        c if " " <= c <= "~" and c not in '"\\' else "\\U%08x" % (ord(c),)
        for c in value),)


def _safe_name(value):
    return re.match(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z", value) \
        is not None and ".." not in value


def _image(value):
    return (0 < len(value) <= 255 and set(value) <= _IMAGE_CHARACTERS
            and value[0].isalnum() and ".." not in value)


def _free_text(value):
    return "\x00" not in value


def _mountpoint(value):
    return (value.startswith("/") and value != "/" and len(value) <= 1024
            and not set(value) & set(":\x00\n")
            and "//" not in value and not value.endswith("/")
            and not set(value.split("/")[1:]) & {"", ".", ".."})


def _written_mountpoint(value):
    # A file may end a mountpoint with slashes; they are dropped.
    return _mountpoint(value.rstrip("/"))


def _compose_environment(value):
    name, equals, rest = value.partition("=")
    return bool(equals) and re.match(
        r"\A[A-Za-z_][A-Za-z0-9_.-]{0,254}\Z", name) is not None and \
        "\x00" not in rest


#: Each field: the two files with ``VALUE`` where the value goes (keys are
#: written with YAML's explicit ``?`` form, which has no length limit), the
#: file and line that hold it, the rule a value must follow to be
#: accepted, how to find the value in the parsed deployment, and what is
#: written before each hostile value.
FIELDS = {
    "application name": (
        "version: 1\nnodes:\n  192.0.2.1: []\n",
        "version: 1\napplications:\n  ? VALUE\n  : {image: w}\n",
        APPLICATION, 3, _safe_name, None, ""),
    "image": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "version: 1\napplications:\n  web:\n    image: VALUE\n",
        APPLICATION, 4, _image, lambda web: web.image, ""),
    "environment name": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "version: 1\napplications:\n  web:\n    image: w\n    environment:\n"
        "      ? VALUE\n      : x\n",
        APPLICATION, 6, lambda value: re.match(
            r"\A[A-Za-z_][A-Za-z0-9_.-]{0,254}\Z", value) is not None,
        None, ""),
    "environment value": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "version: 1\napplications:\n  web:\n    image: w\n    environment:\n"
        "      A: VALUE\n",
        APPLICATION, 6, _free_text, lambda web: web.environment["A"], ""),
    "compose environment value": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "web:\n  image: w\n  environment:\n    - VALUE\n",
        APPLICATION, 4, _compose_environment,
        lambda web: "A=" + web.environment["A"], "A="),
    "command argument": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "version: 1\napplications:\n  web:\n    image: w\n    command:\n"
        "      - VALUE\n",
        APPLICATION, 6, _free_text, lambda web: web.command[0], ""),
    "mountpoint": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "version: 1\napplications:\n  web:\n    image: w\n    volume:\n"
        "      mountpoint: VALUE\n",
        APPLICATION, 6, _written_mountpoint,
        lambda web: web.volume.mountpoint, ""),
    "mountpoint below /srv": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "version: 1\napplications:\n  web:\n    image: w\n    volume:\n"
        "      mountpoint: VALUE\n",
        APPLICATION, 6, _written_mountpoint,
        lambda web: web.volume.mountpoint, "/srv/"),
    "link alias": (
        "version: 1\nnodes:\n  192.0.2.1: [web, db]\n",
        "version: 1\napplications:\n  db:\n    image: d\n"
        "    ports: [{internal: 1, external: 1}]\n  web:\n    image: w\n"
        "    links:\n      - local_port: 1\n        remote_port: 1\n"
        "        alias: VALUE\n",
        APPLICATION, 11, _safe_name, None, ""),
    "port": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "version: 1\napplications:\n  web:\n    image: w\n    ports:\n"
        "      - internal: VALUE\n        external: 80\n",
        APPLICATION, 6, lambda value: False, None, ""),
    "compose port": (
        "version: 1\nnodes:\n  192.0.2.1: [web]\n",
        "web:\n  image: w\n  ports:\n    - VALUE\n",
        APPLICATION, 4, lambda value: False, None, ""),
    "node address": (
        "version: 1\nnodes:\n  ? VALUE\n  : [web]\n",
        "version: 1\napplications:\n  web: {image: w}\n",
        DEPLOYMENT, 3, lambda value: False, None, ""),
}


#: The fields whose trailing slashes are dropped.
_NORMALISED = frozenset({"mountpoint", "mountpoint below /srv"})

#: The fields written in a compose file, where variables are substituted.
_INTERPOLATED = frozenset({"compose environment value", "compose port"})


@with_cases
class ParseTimeTests(SynchronousTestCase):
    """
    A hostile value in any field is refused where it is written, unless the
    field is free text (and then it is kept exactly) or the value follows
    the field's rule.
    """

    @cases([(field, value) for field in sorted(FIELDS) for value in HOSTILE],
           ids=["%s-%d-%s" % (field, i, ascii(value)[:20])
                for field in sorted(FIELDS)
                for i, value in enumerate(HOSTILE)])
    def test_refused_or_kept(self, field, value):
        """
        Parsing either reports a problem at the value's line (and nothing
        anywhere else) or gives a deployment holding exactly the value.
        """
        deployment, application, path, line, rule, read, prefix = FIELDS[
            field]
        value = prefix + value
        # A compose file substitutes variables: its author writes a literal
        # "$" as "$$".
        written = (value.replace("$", "$$") if field in _INTERPOLATED
                   else value)
        texts = {DEPLOYMENT: deployment.replace("VALUE", yaml_string(value)),
                 APPLICATION: application.replace("VALUE",
                                                  yaml_string(written))}
        try:
            parsed = parse_configuration(texts[DEPLOYMENT], DEPLOYMENT,
                                         texts[APPLICATION], APPLICATION)
        except ConfigurationErrors as e:
            self.assertFalse(rule(value), str(e))
            self.assertEqual(
                [(error.path, error.line) for error in e],
                [(path, line)],
                str(e))
            self.assertTrue(all("\n" not in str(error) for error in e))
        else:
            self.assertTrue(rule(value))
            if read is not None:
                (node,) = parsed.nodes
                web = [a for a in node.applications if a.name == "web"][0]
                kept = (value.rstrip("/") if field in _NORMALISED
                        else value)
                self.assertEqual(read(web), kept)


def _application(environment=None, command=None, mountpoint=None):
    return Application(
        name="web", image="example/web:1.0", environment=environment or {},
        command=command,
        volume=None if mountpoint is None else AttachedVolume(
            mountpoint=mountpoint))


#: Free text as the configuration accepts it: any character but NUL and
#: the surrogates.
_FREE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
                     max_size=30)
_FREE_VALUES = st.one_of(_FREE_TEXT, st.sampled_from(
    [value for value in HOSTILE if _free_text(value)]))


class _RecordingAgent(object):
    """
    A node's agent that records the applications it is asked to start.
    """

    def __init__(self):
        self.started = []

    def start_application(self, application):
        self.started.append(application)
        return succeed(None)


@with_cases
class ReachesTheNodeTests(SynchronousTestCase):
    """
    Free-text values reach the node untouched: the application travels in
    the agent protocol's documents and arrives equal, the SSH command lines
    Flocker still builds split back into exactly their argument vectors,
    and the node hands Docker each value as one element.
    """

    @fuzz_settings(default=100)
    @given(environment=st.dictionaries(
        st.sampled_from(["A", "PATH", "LD_PRELOAD", "_"]), _FREE_VALUES,
        max_size=3),
        command=st.one_of(st.none(), st.lists(_FREE_VALUES, min_size=1,
                                              max_size=4)))
    def test_start_application(self, environment, command):
        """
        ``start_application`` through the agent protocol hands the node's
        agent an application equal to the one sent, its environment and
        command unchanged.
        """
        node = _RecordingAgent()
        network = LoopbackNetwork({"192.0.2.1": AgentService(
            Clock(), lambda address: node, lock=None)})
        agent = RemoteNodeAgent(AgentConnections(network.connect),
                                "192.0.2.1")
        application = _application(environment, command)
        done = []
        agent.start_application(application).addBoth(done.append)
        network.flush()
        self.assertEqual(done, [None])
        self.assertEqual(node.started, [application])

    @cases([(value,) for value in HOSTILE if _free_text(value)])
    def test_command_line_splits_back(self, value):
        """
        Whatever an argument holds, the command line carried by SSH splits
        back into the same arguments, none of them read by the shell.
        """
        argv = ["flocker-node", "--address", "192.0.2.1", "report", value,
                "-" + value, value + ";" + value]
        self.assertEqual(shlex.split(quote_argv(argv).decode("utf-8")), argv)

    @cases([(value,) for value in HOSTILE if _free_text(value)])
    def test_docker_gets_one_element(self, value):
        """
        An environment value is the rest of one ``Env`` element after
        ``NAME=``, and a command argument one ``Cmd`` element.
        """
        config = container_config(_application({"A": value}, [value, value]))
        self.assertEqual(config["Env"], ["A=" + value])
        self.assertEqual(config["Cmd"], [value, value])
        self.assertEqual(json.loads(json.dumps(config)), config)

    @cases([("/srv/" + value,) for value in HOSTILE
            if _mountpoint("/srv/" + value)])
    def test_binds_one_field(self, mountpoint):
        """
        An accepted mountpoint, metacharacters and all, is exactly the
        container side of the one ``Binds`` entry: nothing can follow it as
        mount options.
        """
        config = container_config(_application(mountpoint=mountpoint),
                                  "/flocker/web")
        [bind] = config["HostConfig"]["Binds"]
        self.assertEqual(bind.split(":"), ["/flocker/web", mountpoint])

    def test_binds_colon_refused(self):
        """
        A library user's mountpoint holding ``:`` (which the files refuse)
        is refused when the container is built.
        """
        with self.assertRaises(ValueError):
            container_config(_application(mountpoint="/data:ro"),
                             "/flocker/web")


@with_cases
class NodeToNodeTests(SynchronousTestCase):
    """
    A node's agent reaching another node (a push's receiving end) sends
    only words nothing in a shell reads, to an address that cannot pass for
    an option.
    """

    @cases([(value,) for value in HOSTILE
            if not re.match(r"\A[A-Za-z0-9][A-Za-z0-9.:-]*\Z", value)
            or ".." in value])
    def test_address(self, value):
        """
        A node address holding anything but letters, digits, ``.``, ``:``
        (IPv6) and ``-``, or starting with ``-``, is refused before any
        connection is made.
        """
        with self.assertRaises(UnsafeName):
            AgentRemote(None, None).start(value, ["receive", "app"])

    @cases([(value,) for value in HOSTILE
            if not re.match(r"\A[A-Za-z0-9_./:@=,-]+\Z", value)])
    def test_word(self, value):
        """
        A word a remote shell would read is refused before any connection
        is made.
        """
        with self.assertRaises(UnsafeName):
            AgentRemote(None, None).start("192.0.2.2", ["receive", value])


@with_cases
class RoutingTextTests(SynchronousTestCase):
    """
    Routes reach ``iptables-restore`` as lines of text, split at spaces:
    the values in them (addresses, aliases) are model values, which refuse
    anything that could end a token or a line.
    """

    @cases([(value,) for value in HOSTILE
            if not re.match(r"\A[A-Za-z0-9:][A-Za-z0-9.:-]*\Z", value)
            or ".." in value])
    def test_route_address(self, value):
        """
        A route to an address holding anything but letters, digits, ``.``,
        ``:`` and ``-`` cannot be built.
        """
        with self.assertRaises(InvalidModel):
            Route(port=80, address=value)

    @cases([(value,) for value in HOSTILE if not _safe_name(value)])
    def test_link_alias(self, value):
        """
        A link whose alias (part of its rules' comment) is not a safe name
        cannot be built.
        """
        with self.assertRaises(InvalidModel):
            Link(local_port=1, remote_port=1, alias=value)
