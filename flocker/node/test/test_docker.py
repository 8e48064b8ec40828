"""
Tests for :mod:`flocker.node._docker`.

:func:`make_idockerclient_tests` is the one suite of the ``IDockerClient``
contract; it runs against :class:`FakeDockerClient` here and against
:class:`DockerClient` talking to a real ``dockerd`` (a lab node's) in
``test_docker_lab.py``.  The
remaining tests cover what only one implementation has: the mapping of an
application to Docker's configuration, version negotiation and error mapping
of the real client (through ``treq.testing.StubTreq``), and eliot logging.
"""

import io
import json
import os
import secrets
import tarfile
import tempfile

import attr
from eliot.testing import assertHasAction
from pyrsistent import pmap, pset
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectError
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, SynchronousTestCase
from twisted.web.resource import Resource
from treq.testing import StubTreq
from zope.interface.verify import verifyObject

from ..._model import (
    Application, AttachedVolume, ContainerOptions, FileMount, HealthCheck,
    HostMount, Link, LogConfig, Port, RestartPolicy, Ulimit,
)
from ..._serialize import application_to_dict
from ...testtools import capture_logging, run_in_reactor
from .._docker import (
    APPLICATION_LABEL, DEFAULT_DOCKER_SOCKET, MAXIMUM_API_VERSION,
    APIVersion, UnsupportedField,
    SPEC_LABEL, AlreadyExists, ContainerNotFound, ContainerStatus,
    DockerAPIError,
    DockerClient, DockerUnavailable, FakeDockerClient, IDockerClient,
    ImageNotFound, PullFailed, Unit, _adapted_body, container_config,
    container_name,
    socket_path_from_docker_host,
)
from .._logging import (
    DOCKER_ADD, DOCKER_API_CALL, DOCKER_FIELDS_DROPPED, DOCKER_NEGOTIATE,
    DOCKER_STOP, DOCKER_UNREADABLE_LABEL,
)
from ._daemon import DEBIAN_12, DOCKER_25, DOCKER_29, VersionedDockerDaemon

#: The image every lab node (and the fake) has.
IMAGE = "flocker/busybox:latest"

#: An image no node has.
MISSING_IMAGE = "flocker/not-loaded-anywhere:1"

# A long-running command that exits at once on SIGTERM (PID 1 ignores it
# otherwise), so removing a container does not wait for the kill timeout.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
#: A command writing one line to each stream, then waiting.
TALKER = ["sh", "-c", "echo out-line; echo err-line >&2; "
          "trap 'exit 0' TERM; sleep 600 & wait"]


def _resolve(function, *args):
    """
    Call ``function(*args)``, which must return an already fired
    ``Deferred``, and return its result or raise its exception.
    """
    results = []
    function(*args).addBoth(results.append)
    if not results:
        raise AssertionError("%r did not fire synchronously" % (function,))
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


class FakeDockerFixture(object):
    """
    Provides :class:`FakeDockerClient` to the interface tests.
    """
    node = "fake-node"

    def __init__(self, testcase):
        """
        :param testcase: The running test.
        """
        self.fake = FakeDockerClient(images=[IMAGE], node=self.node)
        self.client = self.fake

    def run(self, function, *args):
        """
        :return: The result of the ``Deferred`` ``function(*args)`` returns.
        """
        return _resolve(function, *args)

    def unavailable_client(self):
        """
        :return: A client whose daemon cannot be reached, and its socket.
        """
        socket_path = "/nonexistent/docker.sock"
        return (FakeDockerClient(images=[IMAGE], socket_path=socket_path,
                                 daemon_running=False),
                socket_path)

    def add_foreign_container(self, name, host_ports=()):
        """
        Create and start a container Flocker did not create.

        :return: Its id.
        """
        return self.fake.add_foreign_container(name, host_ports=host_ports)

    def stop_container(self, name):
        """
        Make a container exit.
        """
        self.fake.stop_container(name)

    def inspect(self, name):
        """
        :return: Docker's description of a container or ``None``.
        """
        return self.fake.inspect(name)

    def host_directory(self):
        """
        :return: A directory on the node usable as a volume's host path.
        """
        return "/flocker/pool/volume"

    def make_directory(self, path):
        """
        Make a directory on the node: the fake daemon checks no host path,
        so there is nothing to make.
        """

    def await_output(self, name, lines):
        """
        Have the application's container write ``lines`` (``(stream,
        text)`` pairs), as :data:`TALKER` does in a real one.
        """
        for stream, text in lines:
            self.fake.write_output(name, text, stream)

    def read_file(self, name, path):
        """
        :return: The content of file ``path`` in container ``name``.
        """
        return self.fake.read_file(name, path)


def _expect_status(expected, status, data, what):
    """
    Fail unless a raw Docker API call answered ``expected``.

    :param int expected: The HTTP status the call must answer.
    :param int status: The status it answered.
    :param data: Its body, shown in the failure.
    :param str what: The call, for the failure's message.
    :raises AssertionError: With the call, both statuses and the body.
    """
    if status != expected:
        raise AssertionError("%s: Docker answered %d, not %d: %r" % (
            what, status, expected, data))


class RealDockerFixture(object):
    """
    Provides :class:`DockerClient` on a real daemon to the interface tests.
    Every container a test makes has the test's unique token in its name,
    and all of them are deleted when the test ends.
    """

    def __init__(self, testcase, socket_path, node):
        """
        :param testcase: The running test.
        :param str socket_path: The daemon's socket.
        :param str node: The node's name, expected in error messages.
        """
        self.node = node
        self.token = testcase.token
        self.client = run_in_reactor(
            lambda reactor: DockerClient(reactor, socket_path,
                                         node=self.node, stop_timeout=5))
        self._directories = []
        testcase.addCleanup(self._clean_up)

    def _raw(self, method, path, params=None, body=None):
        # Straight API calls, for arranging and checking what the client
        # under test did.
        return run_in_reactor(
            lambda reactor: self.client._request(method, path, params, body))

    def _clean_up(self):
        # A container left behind would be a stray Flocker application on
        # the shared lab node, and every later deploy there would remove
        # it: a clean-up that did not happen fails the test that made it.
        status, containers = self._raw(
            "GET", "/containers/json",
            {"all": "1", "filters": json.dumps({"name": [self.token]})})
        if status != 200:
            raise FailTest("listing this test's containers: HTTP %d %r"
                           % (status, containers))
        for container in containers:
            status, data = self._raw(
                "DELETE", "/containers/" + container["Id"],
                {"force": "true"})
            if status not in (204, 404):
                raise FailTest("removing container %s: HTTP %d %r" % (
                    container["Names"], status, data))
        run_in_reactor(lambda reactor: self.client.close())
        for directory in self._directories:
            os.rmdir(directory)

    def run(self, function, *args):
        """
        :return: The result of the ``Deferred`` ``function(*args)`` returns,
            run in the reactor thread.
        """
        return run_in_reactor(lambda reactor: function(*args))

    def unavailable_client(self):
        """
        :return: A client whose socket does not exist, and that socket.
        """
        directory = tempfile.mkdtemp(prefix="flocker-no-docker-")
        self._directories.append(directory)
        socket_path = os.path.join(directory, "docker.sock")
        return (run_in_reactor(lambda reactor: DockerClient(
            reactor, socket_path, request_timeout=10)), socket_path)

    def add_foreign_container(self, name, host_ports=()):
        """
        Create and start a container Flocker did not create.

        :return: Its id.
        """
        body = {"Image": IMAGE, "Cmd": SLEEPER,
                "Labels": {"not-flocker": "yes"},
                "HostConfig": {"PortBindings": {
                    "%d/tcp" % (port,): [{"HostPort": str(port)}]
                    for port in host_ports}}}
        status, data = self._raw("POST", "/containers/create",
                                 {"name": name}, body)
        _expect_status(201, status, data, "create " + name)
        status, data = self._raw("POST",
                                 "/containers/%s/start" % (data["Id"],))
        _expect_status(204, status, data, "start " + name)
        return self.inspect(name)["Id"]

    def stop_container(self, name):
        """
        Make a container exit.
        """
        status, data = self._raw("POST", "/containers/%s/kill" % (name,))
        _expect_status(204, status, data, "kill " + name)
        self._raw("POST", "/containers/%s/wait" % (name,))

    def inspect(self, name):
        """
        :return: Docker's description of a container or ``None``.
        """
        status, data = self._raw("GET", "/containers/%s/json" % (name,))
        return None if status == 404 else data

    def await_output(self, name, lines):
        """
        Wait (a bounded number of short polls) until the application's
        container, running :data:`TALKER`, has written ``lines``.
        """
        for _ in range(100):
            found = run_in_reactor(lambda reactor: self.client.logs(name))
            if len(found) >= len(lines):
                return
            run_in_reactor(lambda reactor: deferLater(reactor, 0.1,
                                                      lambda: None))
        raise AssertionError("%s wrote %r, not %d lines" % (
            name, found, len(lines)))

    def host_directory(self):
        """
        :return: A fresh directory on the node usable as a volume's host
            path.  (A lab node's dockerd sees this machine's ``/tmp``.)
        """
        directory = tempfile.mkdtemp(prefix="flocker-docker-test-")
        self._directories.append(directory)
        return directory

    def make_directory(self, path):
        """
        Make directory ``path`` (under one of :meth:`host_directory`),
        removed before them at the end.
        """
        os.mkdir(path)
        self._directories.insert(0, path)

    def read_file(self, name, path):
        """
        :return: The content of file ``path`` in container ``name``, read
            back through Docker's archive download.
        """
        status, data = self._raw("GET", "/containers/%s/archive" % (name,),
                                 {"path": path})
        _expect_status(200, status, data, "read %s from %s" % (path, name))
        # The client decodes a body that is not JSON as UTF-8; the test
        # files and tar headers are ASCII, so encoding gives the bytes back.
        with tarfile.open(fileobj=io.BytesIO(data.encode("utf-8"))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read()


def make_idockerclient_tests(fixture):
    """
    Build the test case of the :class:`IDockerClient` contract.

    :param fixture: Called with the running test in its ``setUp``, returns
        an object like :class:`FakeDockerFixture`: the client under test
        (``client``), ``run`` to call it, and ways to arrange and check what
        Docker holds.  It may add clean-ups to the test.
    :return: A ``SynchronousTestCase`` subclass.
    """
    class IDockerClientTests(SynchronousTestCase):
        """
        Tests of one ``IDockerClient`` implementation.
        """

        def setUp(self):
            # Unique names keep tests apart from each other and from other
            # users of a shared daemon; ports are random for the same reason.
            self.token = "t5" + secrets.token_hex(4)
            self.port_base = 20000 + secrets.randbelow(2000) * 10
            self.fixture = fixture(self)
            self.client = self.fixture.client
            self.run = self.fixture.run

        def name(self, label):
            return "%s-%s" % (self.token, label)

        def application(self, label, **kwargs):
            kwargs.setdefault("image", IMAGE)
            kwargs.setdefault("command", SLEEPER)
            return Application(name=self.name(label), **kwargs)

        def units(self):
            """
            :return: ``dict`` of this test's units by application name.
            """
            return {unit.name: unit for unit in self.run(self.client.list)
                    if unit.name.startswith(self.token)}

        def test_interface(self):
            """
            The client provides ``IDockerClient``.
            """
            self.assertTrue(verifyObject(IDockerClient, self.client))

        def test_list_nothing(self):
            """
            Before anything is added, none of this test's applications is
            listed, and ``list`` fires with a ``PSet`` of ``Unit``.
            """
            units = self.run(self.client.list)
            self.assertEqual(
                (type(units), [u for u in units if not isinstance(u, Unit)],
                 self.units()),
                (type(pset()), [], {}))

        def test_add_then_list(self):
            """
            An added application is listed as running, rebuilt exactly
            from its label, with its image and its published ports.
            """
            application = self.application(
                "web", ports=[Port(internal=80, external=self.port_base)],
                environment={"GREETING": "hello"})
            outcome = self.run(self.client.add, application)
            unit = self.units()[application.name]
            self.assertEqual(
                (outcome, unit.application, unit.running, unit.state,
                 unit.image, unit.ports),
                ("created", application, True, "running", IMAGE,
                 application.ports))

        def test_container_name(self):
            """
            The container is named ``flocker--<name>`` and carries the
            application's JSON in the ``flocker.application`` label.
            """
            application = self.application("named")
            self.run(self.client.add, application)
            inspected = self.fixture.inspect(container_name(application.name))
            self.assertEqual(
                json.loads(inspected["Config"]["Labels"][APPLICATION_LABEL]),
                application_to_dict(application))

        def test_configuration(self):
            """
            Command, environment (with extra variables taking
            precedence), ports, memory and CPU limits, restart policy and
            volume are set on the container as Docker's own fields.
            """
            host_path = self.fixture.host_directory()
            application = self.application(
                "config",
                ports=[Port(internal=80, external=self.port_base + 1),
                       Port(internal=81, external=self.port_base + 2)],
                environment={"A": "application", "B": "application"},
                volume=AttachedVolume(mountpoint="/data"),
                mem_limit=64 * 1024 * 1024, cpu_shares=512,
                restart_policy=RestartPolicy(name="on-failure",
                                             maximum_retry_count=3))
            self.run(self.client.add, application, host_path, {"B": "extra"})
            inspected = self.fixture.inspect(container_name(application.name))
            config, host = inspected["Config"], inspected["HostConfig"]
            self.assertEqual(
                (config["Cmd"], {"A=application", "B=extra"} <= set(
                    config["Env"]), "B=application" in config["Env"],
                 host["PortBindings"], host["Binds"], host["Memory"],
                 host["CpuShares"], host["RestartPolicy"],
                 host.get("Sysctls")),
                (SLEEPER, True, False,
                 {"80/tcp": [{"HostIp": "",
                              "HostPort": str(self.port_base + 1)}],
                  "81/tcp": [{"HostIp": "",
                              "HostPort": str(self.port_base + 2)}]},
                 [host_path + ":/data"], 64 * 1024 * 1024, 512,
                 # An application with a volume: its policy is the agent's.
                 {"Name": "no", "MaximumRetryCount": 0}, None))

        def test_restart_policies(self):
            """
            Flocker's ``never`` is Docker's ``no``; ``always`` is
            ``always``.
            """
            never = self.application("never")
            always = self.application(
                "always", restart_policy=RestartPolicy(name="always"))
            self.run(self.client.add, never)
            self.run(self.client.add, always)
            self.assertEqual(
                [self.fixture.inspect(container_name(a.name))["HostConfig"][
                    "RestartPolicy"] for a in (never, always)],
                [{"Name": "no", "MaximumRetryCount": 0},
                 {"Name": "always", "MaximumRetryCount": 0}])

        def test_no_docker_restart_policy_with_volume(self):
            """
            An application with a volume gets no Docker restart policy
            (Docker would restart it at boot, before the agent could fence
            a stale copy), while its listed unit keeps the policy it was
            configured with.
            """
            host_path = self.fixture.host_directory()
            application = self.application(
                "kept", volume=AttachedVolume(mountpoint="/data"),
                restart_policy=RestartPolicy(name="always"))
            self.run(self.client.add, application, host_path)
            inspected = self.fixture.inspect(container_name(application.name))
            self.assertEqual(
                (inspected["HostConfig"]["RestartPolicy"],
                 self.units()[application.name].application.restart_policy),
                ({"Name": "no", "MaximumRetryCount": 0},
                 RestartPolicy(name="always")))

        def test_links_sysctl(self):
            """
            An application with links gets ``route_localnet`` switched on in
            its network namespace, for the link rules.
            """
            application = self.application(
                "linked", links=[Link(local_port=5432, remote_port=15432,
                                      alias="db")])
            self.run(self.client.add, application)
            inspected = self.fixture.inspect(container_name(application.name))
            self.assertEqual(
                (inspected["HostConfig"]["Sysctls"],
                 inspected["State"]["Running"]),
                ({"net.ipv4.conf.all.route_localnet": "1"}, True))

        def test_volume_bind_listed(self):
            """
            The volume's host path is listed as a bind at the application's
            mountpoint.
            """
            host_path = self.fixture.host_directory()
            application = self.application(
                "volume", volume=AttachedVolume(mountpoint="/var/data"))
            self.run(self.client.add, application, host_path)
            self.assertEqual(self.units()[application.name].binds,
                             pmap({"/var/data": host_path}))

        def test_volume_arguments_must_match(self):
            """
            A host path without a volume, or a volume without a host path,
            is refused with ``ValueError`` and creates nothing.
            """
            with_volume = self.application(
                "withvolume", volume=AttachedVolume(mountpoint="/data"))
            without = self.application("novolume")
            self.assertRaises(ValueError, self.run, self.client.add,
                              with_volume)
            self.assertRaises(ValueError, self.run, self.client.add,
                              without, "/srv")
            self.assertEqual(self.units(), {})

        def test_named_volumes_bound(self):
            """
            Each named volume's host path is bound at its mountpoint, beside
            the application's own volume.
            """
            own, data = (self.fixture.host_directory(),
                         self.fixture.host_directory())
            application = self.application(
                "volumes", volume=AttachedVolume(mountpoint="/own"),
                volumes=[AttachedVolume(name="data", mountpoint="/data",
                                        read_only=True)])
            self.run(self.client.add, application, own, None,
                     {"data": data})
            self.assertEqual(self.units()[application.name].binds,
                             pmap({"/own": own, "/data": data}))

        def test_named_volume_paths_must_match(self):
            """
            Host paths must be given for exactly the named volumes, or
            ``ValueError`` is raised and nothing created.
            """
            application = self.application(
                "volumes", volumes=[AttachedVolume(name="data",
                                                   mountpoint="/data")])
            self.assertRaises(ValueError, self.run, self.client.add,
                              application)
            self.assertRaises(ValueError, self.run, self.client.add,
                              application, None, None,
                              {"data": "/srv", "other": "/srv"})
            self.assertEqual(self.units(), {})

        def test_files_put_before_start(self):
            """
            The application's files are in the container, with their
            modes, when it starts; host mounts are bound.
            """
            host = self.fixture.host_directory()
            application = self.application(
                "files", files=[FileMount.of("/etc/app/app.conf",
                                             b"answer = 42\n", 0o640)],
                host_mounts=[HostMount(host_path=host, mountpoint="/host",
                                       read_only=True)])
            self.run(self.client.add, application)
            cname = container_name(application.name)
            self.assertEqual(
                (self.fixture.read_file(cname, "/etc/app/app.conf"),
                 self.units()[application.name].binds,
                 self.units()[application.name].application),
                (b"answer = 42\n", pmap({"/host": host}), application))

        def test_changed_file_replaces(self):
            """
            A changed file is a changed application: adding it replaces the
            container, which then holds the new content.
            """
            first = self.application("files", files=[
                FileMount.of("/app.conf", b"one")])
            second = attr.evolve(first, files=[
                FileMount.of("/app.conf", b"two")])
            self.run(self.client.add, first)
            outcome = self.run(self.client.add, second)
            self.assertEqual(
                (outcome, self.fixture.read_file(
                    container_name(first.name), "/app.conf")),
                ("replaced", b"two"))

        def test_add_again_unchanged(self):
            """
            Adding an application that already runs as asked changes
            nothing: same container.
            """
            application = self.application("again")
            self.run(self.client.add, application)
            before = self.units()[application.name].container_id
            outcome = self.run(self.client.add, application)
            self.assertEqual(
                (outcome, self.units()[application.name].container_id),
                ("unchanged", before))

        def test_add_replaces_stopped(self):
            """
            Adding an application whose Flocker container has stopped
            replaces it with a new running one.
            """
            application = self.application("stopped")
            self.run(self.client.add, application)
            before = self.units()[application.name].container_id
            self.fixture.stop_container(container_name(application.name))
            stopped = self.units()[application.name]
            outcome = self.run(self.client.add, application)
            after = self.units()[application.name]
            self.assertEqual(
                (stopped.running, stopped.ports, outcome, after.running,
                 after.container_id == before),
                (False, pset(), "replaced", True, False))

        def test_add_replaces_different(self):
            """
            Adding an application whose Flocker container was created
            differently (here: other extra environment) replaces it.
            """
            application = self.application("differs")
            self.run(self.client.add, application, None, {"X": "1"})
            outcome = self.run(self.client.add, application, None, {"X": "2"})
            inspected = self.fixture.inspect(container_name(application.name))
            self.assertEqual(
                (outcome, "X=2" in inspected["Config"]["Env"],
                 inspected["Config"]["Labels"][SPEC_LABEL] ==
                 container_config(application, None, {"X": "2"})["Labels"][
                     SPEC_LABEL]),
                ("replaced", True, True))

        def test_list_images(self):
            """
            ``list_images`` names the images on the node as Docker lists
            them, the test image among them and the missing one not.
            """
            images = self.run(self.client.list_images)
            self.assertEqual(
                (type(images), IMAGE in images, MISSING_IMAGE in images),
                (frozenset, True, False))

        def test_pull_present_image(self):
            """
            Pulling an image that is on the node (a dry run or not) asks no
            registry and succeeds.
            """
            self.assertEqual(
                (self.run(self.client.pull_image, IMAGE, True),
                 self.run(self.client.pull_image, IMAGE)), (None, None))

        def test_pull_unpullable_image(self):
            """
            An image neither on the node nor in a registry it reaches fails
            a pull and a dry-run pull with ``PullFailed``, one line naming
            the image, the node and what to do; nothing is added.
            """
            errors = [self.assertRaises(PullFailed, self.run,
                                        self.client.pull_image,
                                        MISSING_IMAGE, dry_run)
                      for dry_run in (True, False)]
            for error in errors:
                self.assertEqual(
                    (error.image, self.fixture.node in str(error),
                     "docker load" in str(error), "\n" in str(error)),
                    (MISSING_IMAGE, True, True, False))
            self.assertNotIn(MISSING_IMAGE,
                             self.run(self.client.list_images))

        def test_logs(self):
            """
            ``logs`` gives the container's output lines, oldest first, each
            with its stream and a time stamp; ``since`` the last stamp gives
            nothing more, ``tail=1`` only the last line.
            """
            application = self.application("talker", command=TALKER)
            self.run(self.client.add, application)
            self.fixture.await_output(application.name, [
                ("stdout", "out-line"), ("stderr", "err-line")])
            lines = self.run(self.client.logs, application.name)
            self.assertEqual(
                (sorted((stream, text) for _, stream, text in lines),
                 self.run(self.client.logs, application.name, lines[-1][0]),
                 self.run(self.client.logs, application.name, None, 1)),
                ([("stderr", "err-line"), ("stdout", "out-line")], [],
                 lines[-1:]))

        def test_logs_missing(self):
            """
            The logs of an application without a container fail with
            ``ContainerNotFound``.
            """
            self.assertRaises(ContainerNotFound, self.run, self.client.logs,
                              self.name("nothing"))

        def test_missing_image(self):
            """
            An application whose image is not on the node fails with
            ``ImageNotFound`` naming the image and the node, and nothing is
            created.
            """
            application = self.application("noimage", image=MISSING_IMAGE)
            error = self.assertRaises(ImageNotFound, self.run,
                                      self.client.add, application)
            self.assertEqual(
                (error.image, self.fixture.node in str(error),
                 MISSING_IMAGE in str(error),
                 self.fixture.inspect(container_name(application.name))),
                (MISSING_IMAGE, True, True, None))

        def test_foreign_name_refused(self):
            """
            Adding an application whose container name is used by a
            container Flocker did not create fails with ``AlreadyExists``
            and leaves that container running and unchanged.
            """
            application = self.application("taken")
            name = container_name(application.name)
            foreign_id = self.fixture.add_foreign_container(name)
            error = self.assertRaises(AlreadyExists, self.run,
                                      self.client.add, application)
            inspected = self.fixture.inspect(name)
            self.assertEqual(
                (error.container_name, name in str(error), inspected["Id"],
                 inspected["State"]["Running"],
                 APPLICATION_LABEL in (inspected["Config"]["Labels"] or {})),
                (name, True, foreign_id, True, False))

        def test_foreign_untouched_by_remove(self):
            """
            ``remove`` leaves a container Flocker did not create alone, and
            ``exists``, ``list`` and ``container_pid`` ignore it.
            """
            application = self.application("other")
            name = container_name(application.name)
            foreign_id = self.fixture.add_foreign_container(name)
            outcome = self.run(self.client.remove, application.name)
            self.assertRaises(ContainerNotFound, self.run,
                              self.client.container_pid, application.name)
            inspected = self.fixture.inspect(name)
            self.assertEqual(
                (outcome, self.run(self.client.exists, application.name),
                 self.units(), inspected["Id"],
                 inspected["State"]["Running"]),
                ("foreign", False, {}, foreign_id, True))

        def test_remove(self):
            """
            ``remove`` stops and deletes the application's container.
            """
            application = self.application("removed")
            self.run(self.client.add, application)
            outcome = self.run(self.client.remove, application.name)
            self.assertEqual(
                (outcome, self.units(),
                 self.fixture.inspect(container_name(application.name))),
                ("removed", {}, None))

        def test_remove_twice(self):
            """
            Removing a removed (or never added) application does nothing.
            """
            application = self.application("twice")
            self.run(self.client.add, application)
            self.run(self.client.remove, application.name)
            self.assertEqual(
                (self.run(self.client.remove, application.name),
                 self.run(self.client.remove, self.name("never"))),
                ("absent", "absent"))

        def test_remove_stopped(self):
            """
            A stopped container is removed too.
            """
            application = self.application("stoppedremove")
            self.run(self.client.add, application)
            self.fixture.stop_container(container_name(application.name))
            self.assertEqual(
                (self.run(self.client.remove, application.name),
                 self.units()),
                ("removed", {}))

        def test_create_then_add_starts_it(self):
            """
            ``create`` makes the container without starting it (listed, not
            running, no process); ``add`` with the same arguments then
            starts that very container (``"started"``).
            """
            application = self.application("created")
            created = self.run(self.client.create, application)
            name = container_name(application.name)
            before = self.fixture.inspect(name)
            listed = self.units()
            started = self.run(self.client.add, application)
            after = self.fixture.inspect(name)
            self.assertEqual(
                (created, listed[application.name].running,
                 before["State"]["Running"], started, after["Id"],
                 after["State"]["Running"], self.units()[
                     application.name].running),
                ("created", False, False, "started", before["Id"], True,
                 True))

        def test_create_twice_unchanged(self):
            """
            Creating again what was created and not started changes
            nothing; so does creating what runs with that configuration.
            """
            application = self.application("createtwice")
            self.run(self.client.create, application)
            name = container_name(application.name)
            first = self.fixture.inspect(name)["Id"]
            again = self.run(self.client.create, application)
            self.run(self.client.add, application)
            running = self.run(self.client.create, application)
            inspected = self.fixture.inspect(name)
            self.assertEqual(
                (again, running, inspected["Id"],
                 inspected["State"]["Running"]),
                ("unchanged", "unchanged", first, True))

        def test_create_before_mountpoint_exists(self):
            """
            A container is created with a bind whose host path does not
            exist yet (a move's target mounts the volume only after the
            hand-off); it starts once the path is there, bound to it.
            """
            host_path = os.path.join(self.fixture.host_directory(), "later")
            application = self.application(
                "createbind", volume=AttachedVolume(mountpoint="/data"))
            created = self.run(self.client.create, application, host_path)
            self.fixture.make_directory(host_path)
            started = self.run(self.client.add, application, host_path)
            inspected = self.fixture.inspect(container_name(application.name))
            self.assertEqual(
                (created, started, inspected["HostConfig"]["Binds"],
                 inspected["State"]["Running"]),
                ("created", "started", [host_path + ":/data"], True))

        def test_created_other_configuration_replaced(self):
            """
            A created container of another configuration than ``add`` asks
            for is replaced, not started.
            """
            application = self.application("createother")
            self.run(self.client.create, application)
            name = container_name(application.name)
            first = self.fixture.inspect(name)["Id"]
            changed = attr.evolve(application,
                                  environment={"CHANGED": "yes"})
            outcome = self.run(self.client.add, changed)
            inspected = self.fixture.inspect(name)
            self.assertEqual(
                (outcome, inspected["Id"] != first,
                 inspected["State"]["Running"]),
                ("replaced", True, True))

        def test_stop_keeps_container(self):
            """
            ``stop`` stops the application's container and keeps it: it is
            listed, inactive, and ``remove`` deletes it afterwards.
            """
            application = self.application("stopkept")
            self.run(self.client.add, application)
            outcome = self.run(self.client.stop, application.name)
            listed = self.units()
            self.assertEqual(
                (outcome, sorted(listed), listed[application.name].running,
                 self.run(self.client.exists, application.name),
                 self.run(self.client.container_pid, application.name),
                 self.run(self.client.remove, application.name),
                 self.units()),
                ("stopped", [application.name], False, True, None,
                 "removed", {}))

        def test_stop_twice_and_absent(self):
            """
            Stopping a stopped application's container again says
            ``stopped`` and keeps it; one never added is ``absent``.
            """
            application = self.application("stoptwice")
            self.run(self.client.add, application)
            self.run(self.client.stop, application.name)
            self.assertEqual(
                (self.run(self.client.stop, application.name),
                 self.run(self.client.exists, application.name),
                 self.run(self.client.stop, self.name("neverstop"))),
                ("stopped", True, "absent"))

        def test_foreign_untouched_by_stop(self):
            """
            ``stop`` leaves a running container Flocker did not create
            alone.
            """
            application = self.application("otherstop")
            name = container_name(application.name)
            foreign_id = self.fixture.add_foreign_container(name)
            outcome = self.run(self.client.stop, application.name)
            inspected = self.fixture.inspect(name)
            self.assertEqual(
                (outcome, inspected["Id"], inspected["State"]["Running"]),
                ("foreign", foreign_id, True))

        def test_exists(self):
            """
            ``exists`` is true for an added application, running or not,
            and false for others.
            """
            application = self.application("exists")
            self.run(self.client.add, application)
            running = self.run(self.client.exists, application.name)
            self.fixture.stop_container(container_name(application.name))
            stopped = self.run(self.client.exists, application.name)
            self.assertEqual(
                (running, stopped,
                 self.run(self.client.exists, self.name("nope"))),
                (True, True, False))

        def test_image_present(self):
            """
            ``image_present`` tells a present image from a missing one.
            """
            self.assertEqual(
                (self.run(self.client.image_present, IMAGE),
                 self.run(self.client.image_present, MISSING_IMAGE)),
                (True, False))

        def test_container_pid(self):
            """
            ``container_pid`` gives a running container's pid and ``None``
            for a stopped one.
            """
            application = self.application("pid")
            self.run(self.client.add, application)
            pid = self.run(self.client.container_pid, application.name)
            self.fixture.stop_container(container_name(application.name))
            self.assertEqual(
                (isinstance(pid, int) and pid > 0,
                 self.run(self.client.container_pid, application.name)),
                (True, None))

        def test_container_status(self):
            """
            ``container_status`` says a container without a healthcheck
            runs with no health, that one with a healthcheck not yet run is
            ``starting``, and that a stopped one exited with a status.
            """
            plain = self.application("status")
            checked = self.application("checked", options=ContainerOptions(
                healthcheck=HealthCheck(test=["CMD", "true"],
                                        interval=3600 * 10 ** 9)))
            self.run(self.client.add, plain)
            self.run(self.client.add, checked)
            self.assertEqual(
                (self.run(self.client.container_status, plain.name),
                 self.run(self.client.container_status, checked.name)),
                (ContainerStatus(running=True),
                 ContainerStatus(running=True, health="starting")))
            self.fixture.stop_container(container_name(plain.name))
            status = self.run(self.client.container_status, plain.name)
            self.assertEqual((status.running, type(status.exit_code)),
                             (False, int))

        def test_container_status_absent(self):
            """
            ``container_status`` of an application without a container
            fails with ``ContainerNotFound``.
            """
            self.assertRaises(ContainerNotFound, self.run,
                              self.client.container_status,
                              self.name("absent"))

        def test_container_pid_absent(self):
            """
            ``container_pid`` of an application without a container fails
            with ``ContainerNotFound``.
            """
            error = self.assertRaises(
                ContainerNotFound, self.run, self.client.container_pid,
                self.name("absent"))
            self.assertEqual(error.name, self.name("absent"))

        def test_api_error_at_create(self):
            """
            A configuration Docker refuses fails with ``DockerAPIError``
            naming the operation and carrying Docker's message; nothing is
            created.
            """
            application = self.application("tiny", mem_limit=1024 * 1024)
            error = self.assertRaises(DockerAPIError, self.run,
                                      self.client.add, application)
            self.assertEqual(
                (error.operation, "Minimum memory limit" in error.message,
                 "create container" in str(error),
                 self.fixture.inspect(container_name(application.name))),
                ("create container " + container_name(application.name),
                 True, True, None))

        def test_api_error_at_start(self):
            """
            When the container cannot start (its host port is taken), the
            error names the start, and the created container is deleted
            again; the container holding the port keeps running.
            """
            port = self.port_base + 3
            first = self.application(
                "first", ports=[Port(internal=80, external=port)])
            second = self.application(
                "second", ports=[Port(internal=81, external=port)])
            self.run(self.client.add, first)
            error = self.assertRaises(DockerAPIError, self.run,
                                      self.client.add, second)
            self.assertEqual(
                (error.operation, "port is already allocated" in str(error),
                 self.fixture.inspect(container_name(second.name)),
                 self.units()[first.name].running),
                ("start container " + container_name(second.name), True,
                 None, True))

        def test_unavailable(self):
            """
            Every method fails with ``DockerUnavailable`` naming the socket,
            on one line, when the daemon cannot be reached.
            """
            client, socket_path = self.fixture.unavailable_client()
            application = self.application("unreachable")
            calls = [(client.list,), (client.add, application),
                     (client.remove, application.name),
                     (client.exists, application.name),
                     (client.image_present, IMAGE),
                     (client.container_pid, application.name)]
            messages = [str(self.assertRaises(DockerUnavailable, self.run,
                                              *call)) for call in calls]
            self.assertEqual(
                [(socket_path in m, "\n" in m) for m in messages],
                [(True, False)] * len(calls))

    return IDockerClientTests


class FakeDockerClientTests(make_idockerclient_tests(FakeDockerFixture)):
    """
    The ``IDockerClient`` contract for ``FakeDockerClient``.
    """


class ContainerNameTests(SynchronousTestCase):
    """
    Tests for ``container_name``.
    """

    def test_prefix(self):
        """
        A container's name is ``flocker--`` and the application's name.
        """
        self.assertEqual(container_name("web"), "flocker--web")


class SocketPathFromDockerHostTests(SynchronousTestCase):
    """
    Tests for ``socket_path_from_docker_host``.
    """

    def test_unset(self):
        """
        No ``DOCKER_HOST`` (or an empty one) means the default socket.
        """
        self.assertEqual(
            (socket_path_from_docker_host(None),
             socket_path_from_docker_host("")),
            (DEFAULT_DOCKER_SOCKET, DEFAULT_DOCKER_SOCKET))

    def test_unix(self):
        """
        ``unix:///path`` names ``/path``.
        """
        self.assertEqual(
            socket_path_from_docker_host("unix:///run/node1/docker.sock"),
            "/run/node1/docker.sock")

    def test_tcp_refused(self):
        """
        A TCP daemon is refused with a message quoting the value.
        """
        error = self.assertRaises(ValueError, socket_path_from_docker_host,
                                  "tcp://10.0.0.1:2375")
        self.assertIn("DOCKER_HOST=tcp://10.0.0.1:2375", str(error))

    def test_relative_refused(self):
        """
        A relative socket path is refused.
        """
        self.assertRaises(ValueError, socket_path_from_docker_host,
                          "unix://docker.sock")


class ContainerConfigTests(SynchronousTestCase):
    """
    Tests for ``container_config``, the mapping of an application to the body
    of Docker's container creation.
    """

    def test_container_options(self):
        """
        Every container option is the create body member compose sets for
        it; UDP ports and host addresses are their own bindings.
        """
        options = ContainerOptions(
            entrypoint=["/entry"], user="1000", working_dir="/srv",
            hostname="h", labels={"team": "web"}, cap_add=["NET_ADMIN"],
            cap_drop=["ALL"], read_only=True, tmpfs={"/run": "size=1m"},
            shm_size=64, ulimits=[Ulimit(name="nofile", soft=1, hard=2)],
            sysctls={"net.core.somaxconn": "9"}, stop_signal="SIGINT",
            stop_grace_period=90, init=False, tty=True, stdin_open=True,
            dns=["192.0.2.53"], dns_search=["example.com"],
            extra_hosts=["db:192.0.2.5"], security_opt=["no-new-privileges"],
            pids_limit=5, logging=LogConfig(driver="local",
                                            options={"max-size": "1m"}),
            privileged=True, runtime="runc", group_add=["audio"],
            mem_reservation=10 * 1024 * 1024, nano_cpus=500000000,
            healthcheck=HealthCheck(test=["CMD", "true"], interval=10 ** 9,
                                    retries=2),
            expose=[(9000, "tcp")])
        config = container_config(Application(
            name="web", image="w", options=options,
            ports=[Port(internal=53, external=5353, protocol="udp"),
                   Port(internal=80, external=8080, host_ip="127.0.0.1")]))
        host = config["HostConfig"]
        self.assertEqual(
            ({key: config[key] for key in (
                "Entrypoint", "User", "WorkingDir", "Hostname", "StopSignal",
                "StopTimeout", "Tty", "OpenStdin", "Healthcheck",
                "ExposedPorts")},
             {key: host[key] for key in (
                 "CapAdd", "CapDrop", "ReadonlyRootfs", "Tmpfs", "ShmSize",
                 "Ulimits", "Sysctls", "Dns", "DnsSearch", "ExtraHosts",
                 "SecurityOpt", "PidsLimit", "LogConfig", "Privileged",
                 "Runtime", "GroupAdd", "MemoryReservation", "NanoCpus",
                 "Init", "PortBindings")},
             config["Labels"]["team"]),
            ({"Entrypoint": ["/entry"], "User": "1000", "WorkingDir": "/srv",
              "Hostname": "h", "StopSignal": "SIGINT", "StopTimeout": 90,
              "Tty": True, "OpenStdin": True,
              "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10 ** 9,
                              "Retries": 2},
              "ExposedPorts": {"53/udp": {}, "80/tcp": {}, "9000/tcp": {}}},
             {"CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"],
              "ReadonlyRootfs": True, "Tmpfs": {"/run": "size=1m"},
              "ShmSize": 64,
              "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}],
              "Sysctls": {"net.core.somaxconn": "9"},
              "Dns": ["192.0.2.53"], "DnsSearch": ["example.com"],
              "ExtraHosts": ["db:192.0.2.5"],
              "SecurityOpt": ["no-new-privileges"], "PidsLimit": 5,
              "LogConfig": {"Type": "local", "Config": {"max-size": "1m"}},
              "Privileged": True, "Runtime": "runc", "GroupAdd": ["audio"],
              "MemoryReservation": 10 * 1024 * 1024,
              "NanoCpus": 500000000, "Init": False,
              "PortBindings": {
                  "53/udp": [{"HostIp": "", "HostPort": "5353"}],
                  "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}},
             "web"))

    def test_changed_option_changes_spec(self):
        """
        A changed option changes the container's spec digest (so the
        container is replaced) and the application read back from its
        label (so the planner restarts it).
        """
        before = Application(name="web", image="w")
        after = Application(name="web", image="w", options=ContainerOptions(
            user="1000"))
        configs = [container_config(a) for a in (before, after)]
        self.assertNotEqual(configs[0]["Labels"][SPEC_LABEL],
                            configs[1]["Labels"][SPEC_LABEL])
        self.assertNotEqual(configs[0]["Labels"][APPLICATION_LABEL],
                            configs[1]["Labels"][APPLICATION_LABEL])

    def test_minimal(self):
        """
        An application with only a name and image gets its image, its label,
        no command (the image's own), no limits and restart policy ``no``.
        """
        application = Application(name="web", image=IMAGE)
        config = container_config(application)
        labels = config.pop("Labels")
        self.assertEqual(
            (config, json.loads(labels[APPLICATION_LABEL])),
            ({"Image": IMAGE, "Env": [], "ExposedPorts": {},
              "HostConfig": {
                  "PortBindings": {}, "Memory": 0, "CpuShares": 0,
                  "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                  "Init": True}},
             application_to_dict(application)))

    def test_ports(self):
        """
        Each port is exposed and published: internal/tcp to the external
        port on all the node's addresses.
        """
        config = container_config(Application(
            name="web", image=IMAGE, ports=[Port(internal=80, external=8080)]))
        self.assertEqual(
            (config["ExposedPorts"], config["HostConfig"]["PortBindings"]),
            ({"80/tcp": {}},
             {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}))

    def test_links_sysctl(self):
        """
        Links switch on ``route_localnet`` in the container.
        """
        config = container_config(Application(
            name="web", image=IMAGE,
            links=[Link(local_port=5432, remote_port=5432, alias="db")]))
        self.assertEqual(config["HostConfig"]["Sysctls"],
                         {"net.ipv4.conf.all.route_localnet": "1"})

    def test_extra_env_wins(self):
        """
        Extra variables are added to the application's and override them;
        ``Env`` is sorted.
        """
        config = container_config(
            Application(name="web", image=IMAGE,
                        environment={"B": "app", "A": "app"}),
            extra_env={"B": "link", "C": "link"})
        self.assertEqual(config["Env"], ["A=app", "B=link", "C=link"])

    def test_bad_extra_env(self):
        """
        An extra variable with an invalid name is refused.
        """
        self.assertRaises(ValueError, container_config,
                          Application(name="web", image=IMAGE),
                          extra_env={"NOT VALID": "x"})

    def test_bad_host_paths(self):
        """
        Relative, unnormalised or colon-holding host paths are refused
        (a colon would split Docker's ``Binds`` entry).
        """
        application = Application(
            name="web", image=IMAGE,
            volume=AttachedVolume(mountpoint="/data"))
        for path in ["relative", "/a/../b", "/a:/b", "/a\nb"]:
            self.assertRaises(ValueError, container_config, application, path)

    def test_read_only_bind(self):
        """
        Volumes are bound sorted by name; a read-only one carries ``:ro``.
        """
        config = container_config(
            Application(name="web", image=IMAGE,
                        volume=AttachedVolume(mountpoint="/own"),
                        volumes=[AttachedVolume(name="logs",
                                                mountpoint="/logs",
                                                read_only=True),
                                 AttachedVolume(name="data",
                                                mountpoint="/data")]),
            "/pool/web", volume_paths={"logs": "/pool/logs",
                                       "data": "/pool/data"})
        self.assertEqual(config["HostConfig"]["Binds"], [
            "/pool/data:/data", "/pool/logs:/logs:ro", "/pool/web:/own"])

    def test_named_links_extra_hosts(self):
        """
        Each name of a named link resolves to its address through
        ``ExtraHosts``, once however many ports it has.
        """
        config = container_config(Application(
            name="client", image=IMAGE, links=[
                Link(local_port=80, remote_port=8080, alias="web",
                     address="127.130.0.9"),
                Link(local_port=443, remote_port=8443, alias="web",
                     address="127.130.0.9"),
                Link(local_port=5432, remote_port=5432, alias="db")]))
        self.assertEqual(config["HostConfig"]["ExtraHosts"],
                         ["web:127.130.0.9"])


        """
        The spec label is the same for the same arguments and differs when
        anything derived differs.
        """
        application = Application(name="web", image=IMAGE)

        def spec(**kwargs):
            return container_config(application, **kwargs)["Labels"][
                SPEC_LABEL]
        self.assertEqual(
            (spec() == spec(), spec() == spec(extra_env={"A": "1"})),
            (True, False))


class _DockerAPIResource(Resource):
    """
    A Docker Engine API stand-in for ``StubTreq``: answers each
    ``(method, path)`` with a canned ``(status, JSON value)`` and records the
    requests it saw.
    """
    isLeaf = True

    def __init__(self, answers):
        Resource.__init__(self)
        self.answers = answers
        self.requests = []

    def render(self, request):
        path = request.path.decode("ascii")
        method = request.method.decode("ascii")
        self.requests.append((method, path))
        status, value = self.answers.get(
            (method, path), (404, {"message": "no such thing"}))
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return b"" if value is None else json.dumps(value).encode("utf-8")


def _stub_client(answers, api_version="1.41"):
    """
    :return: ``(DockerClient, resource)`` talking to a canned API whose
        ``/version`` reports ``api_version``.
    """
    answers = dict(answers)
    answers.setdefault(("GET", "/version"), (200, {
        "ApiVersion": api_version, "MinAPIVersion": "1.12"}))
    resource = _DockerAPIResource(answers)
    client = DockerClient(Clock(), "/run/test/docker.sock", node="node1",
                          http_client=StubTreq(resource))
    return client, resource


class _FailingHTTPClient(object):
    """
    An HTTP client whose every request fails with one exception.
    """

    def __init__(self, exception):
        self.exception = exception

    def request(self, method, url, **kwargs):
        return fail(self.exception)


class DockerClientTests(SynchronousTestCase):
    """
    Tests for what only ``DockerClient`` does: version negotiation, error
    mapping and logging, against a canned API.
    """

    def test_negotiates_down(self):
        """
        A daemon newer than the client is spoken to in the client's newest
        version.
        """
        client, resource = _stub_client(
            {("GET", "/v%s/images/busybox/json" % (MAXIMUM_API_VERSION,)):
             (200, {})},
            api_version="1.99")
        self.assertEqual(
            (self.successResultOf(client.image_present("busybox")),
             self.successResultOf(client.api_version())),
            (True, MAXIMUM_API_VERSION))

    def test_negotiates_older(self):
        """
        An older daemon is spoken to in its own version.
        """
        client, resource = _stub_client(
            {("GET", "/v1.44/images/busybox/json"): (200, {})},
            api_version="1.44")
        self.assertTrue(self.successResultOf(client.image_present("busybox")))

    def test_negotiates_once(self):
        """
        The version is asked for once per client.
        """
        client, resource = _stub_client(
            {("GET", "/v1.41/images/busybox/json"): (200, {})})
        client.image_present("busybox")
        client.image_present("busybox")
        self.assertEqual(resource.requests.count(("GET", "/version")), 1)

    def test_too_old(self):
        """
        A daemon older than the oldest supported API is unavailable, with
        both versions in the message.
        """
        client, resource = _stub_client({}, api_version="1.40")
        error = self.failureResultOf(client.list(), DockerUnavailable).value
        self.assertEqual(("1.40" in str(error), "1.41" in str(error)),
                         (True, True))

    def test_api_error_message(self):
        """
        An API error carries Docker's message and the operation.
        """
        client, resource = _stub_client(
            {("GET", "/v1.41/containers/json"):
             (500, {"message": "disk on fire"})})
        error = self.failureResultOf(client.list(), DockerAPIError).value
        self.assertEqual(
            str(error), "could not list containers (Docker said: disk on "
            "fire, HTTP 500)")

    def test_permission_denied(self):
        """
        A socket the user may not open makes Docker unavailable, saying so
        and naming the socket.
        """
        client = DockerClient(
            Clock(), "/run/test/docker.sock",
            http_client=_FailingHTTPClient(
                ConnectError(13, "Permission denied")))
        error = self.failureResultOf(client.list(), DockerUnavailable).value
        self.assertEqual(
            str(error), "Docker is not available at "
            "unix:///run/test/docker.sock: Permission denied")

    def test_no_answer(self):
        """
        A request cancelled by the timeout makes Docker unavailable.
        """
        client = DockerClient(
            Clock(), "/run/test/docker.sock", request_timeout=7,
            http_client=_FailingHTTPClient(CancelledError()))
        error = self.failureResultOf(client.list(), DockerUnavailable).value
        self.assertIn("no answer within 7 seconds", str(error))

    def _removal_answers(self, delete_answer):
        """
        :return: Canned answers for removing application ``app`` (container
            ``c1``) whose delete is answered with ``delete_answer``.
        """
        return {
            ("GET", "/v1.41/containers/flocker--app/json"):
            (200, {"Id": "c1", "Config": {"Labels": {
                APPLICATION_LABEL: "{}"}}}),
            ("POST", "/v1.41/containers/c1/stop"): (204, None),
            ("DELETE", "/v1.41/containers/c1"): delete_answer,
            ("POST", "/v1.41/containers/c1/wait"): (200, {"StatusCode": 0}),
        }

    def test_remove_while_removal_in_progress(self):
        """
        A container that Docker is already removing (an interrupted earlier
        request's doing) counts as removed once Docker says it is gone.
        """
        client, resource = _stub_client(self._removal_answers(
            (409, {"message": "removal of container c1 is already in "
                              "progress"})))
        self.assertEqual(
            (self.successResultOf(client.remove("app")),
             ("POST", "/v1.41/containers/c1/wait") in resource.requests),
            ("removed", True))

    def test_created_started_by_id(self):
        """
        ``add`` after ``create`` of the same application starts the
        container ``create`` made by its id, asking Docker nothing else.
        """
        client, resource = _stub_client({
            ("POST", "/v1.41/containers/create"): (201, {"Id": "c7"}),
            ("POST", "/v1.41/containers/c7/start"): (204, None)})
        application = Application(name="app", image=IMAGE)
        created = self.successResultOf(client.create(application))
        del resource.requests[:]
        self.assertEqual(
            (created, self.successResultOf(client.add(application)),
             resource.requests),
            ("created", "started", [("POST", "/v1.41/containers/c7/start")]))

    def test_created_gone_created_again(self):
        """
        A container ``create`` made that is gone when ``add`` comes (404 on
        its start) is created and started anew, as without ``create``;
        ``add`` of another configuration does not start it.
        """
        client, resource = _stub_client({
            ("POST", "/v1.41/containers/create"): (201, {"Id": "c8"}),
            ("POST", "/v1.41/containers/c8/start"): (204, None)})
        application = Application(name="app", image=IMAGE)
        self.successResultOf(client.create(application))
        resource.answers[("POST", "/v1.41/containers/c8/start")] = (404, {
            "message": "No such container: c8"})
        resource.answers[("POST", "/v1.41/containers/c9/start")] = (204,
                                                                    None)
        resource.answers[("POST", "/v1.41/containers/create")] = (201, {
            "Id": "c9"})
        del resource.requests[:]
        started = self.successResultOf(client.add(application))
        gone = list(resource.requests)
        self.successResultOf(client.create(application))
        del resource.requests[:]
        other = self.successResultOf(client.add(
            attr.evolve(application, environment={"OTHER": "1"})))
        self.assertEqual(
            (started, gone, other, resource.requests[0]),
            ("created", [("POST", "/v1.41/containers/c8/start"),
                         ("POST", "/v1.41/containers/create"),
                         ("POST", "/v1.41/containers/c9/start")],
             "created", ("POST", "/v1.41/containers/create")))

    def test_remove_other_conflict(self):
        """
        Any other conflict on delete is a failure carrying Docker's words.
        """
        client, resource = _stub_client(self._removal_answers(
            (409, {"message": "container is paused"})))
        error = self.failureResultOf(client.remove("app"),
                                     DockerAPIError).value
        self.assertIn("container is paused", str(error))

    @capture_logging(None, encoder_=None)
    def test_unreadable_label_skipped(self, logger):
        """
        A container whose label is not an application's JSON, or names an
        application other than the container's, is left out of the list and
        logged.
        """
        good = Application(name="good", image=IMAGE)
        summaries = [
            {"Id": "1", "Names": ["/flocker--good"], "State": "exited",
             "Image": IMAGE,
             "Labels": {APPLICATION_LABEL: json.dumps(
                 application_to_dict(good))}},
            {"Id": "2", "Names": ["/flocker--bad"], "State": "running",
             "Labels": {APPLICATION_LABEL: "{not json"}},
            {"Id": "3", "Names": ["/flocker--liar"], "State": "running",
             "Labels": {APPLICATION_LABEL: json.dumps(
                 application_to_dict(good))}},
        ]
        client, resource = _stub_client(
            {("GET", "/v1.41/containers/json"): (200, summaries)})
        units = self.successResultOf(client.list())
        self.assertEqual(
            (units, sorted(
                message["container"] for message in logger.messages
                if message.get("message_type") ==
                DOCKER_UNREADABLE_LABEL.message_type)),
            (pset([Unit(name="good", application=good, running=False,
                        container_id="1", state="exited", image=IMAGE)]),
             ["flocker--bad", "flocker--liar"]))

    @capture_logging(None, encoder_=None)
    def test_add_logged(self, logger):
        """
        ``add`` is an eliot action with the negotiation and each API call
        nested in it, and records its outcome.
        """
        client, resource = _stub_client({
            ("POST", "/v1.41/containers/create"): (201, {"Id": "abc"}),
            ("POST", "/v1.41/containers/abc/start"): (204, None),
        })
        application = Application(name="web", image=IMAGE)
        self.assertEqual(self.successResultOf(client.add(application)),
                         "created")
        add = assertHasAction(self, logger, DOCKER_ADD, True,
                              {"application": "web", "image": IMAGE},
                              {"outcome": "created"})
        self.assertEqual(
            [(child.start_message["action_type"],
              child.start_message.get("path"))
             for child in add.children],
            [(DOCKER_NEGOTIATE.action_type, None),
             (DOCKER_API_CALL.action_type, "/v1.41/containers/create"),
             (DOCKER_API_CALL.action_type, "/v1.41/containers/abc/start")])

    def test_add_creates_first(self):
        """
        ``add`` of a new container asks Docker nothing before creating it
        (no image or name look-up: a move's start waits for each call); it
        creates and starts it.
        """
        client, resource = _stub_client({
            ("POST", "/v1.41/containers/create"): (201, {"Id": "abc"}),
            ("POST", "/v1.41/containers/abc/start"): (204, None),
        })
        self.successResultOf(client.add(Application(name="web",
                                                    image=IMAGE)))
        self.assertEqual(resource.requests,
                         [("GET", "/version"),
                          ("POST", "/v1.41/containers/create"),
                          ("POST", "/v1.41/containers/abc/start")])

    def test_add_image_missing(self):
        """
        An image Docker does not have (its create answers 404) is
        ``ImageNotFound`` naming the image and the node, and nothing else
        is asked (nothing was created).
        """
        client, resource = _stub_client({
            ("POST", "/v1.41/containers/create"): (
                404, {"message": "No such image: " + IMAGE}),
        })
        error = self.failureResultOf(
            client.add(Application(name="web", image=IMAGE)),
            ImageNotFound).value
        self.assertEqual(
            (IMAGE in str(error), "node1" in str(error), resource.requests),
            (True, True, [("GET", "/version"),
                          ("POST", "/v1.41/containers/create")]))

    def test_add_name_taken_by_foreign(self):
        """
        A name Docker says is taken (409) by a container Flocker did not
        create is ``AlreadyExists``; that container is looked at, never
        stopped or deleted.
        """
        client, resource = _stub_client({
            ("POST", "/v1.41/containers/create"): (
                409, {"message": "Conflict"}),
            ("GET", "/v1.41/containers/flocker--web/json"): (
                200, {"Id": "other", "Config": {"Labels": {}},
                      "State": {"Running": True}}),
        })
        error = self.failureResultOf(
            client.add(Application(name="web", image=IMAGE)),
            AlreadyExists).value
        self.assertEqual(
            ("flocker--web" in str(error), resource.requests),
            (True, [("GET", "/version"),
                    ("POST", "/v1.41/containers/create"),
                    ("GET", "/v1.41/containers/flocker--web/json")]))

    def test_add_name_taken_unchanged(self):
        """
        A name Docker says is taken (409) by Flocker's running container of
        exactly this configuration leaves it running: ``"unchanged"``,
        after one create and one look at it.
        """
        application = Application(name="web", image=IMAGE)
        labels = container_config(application)["Labels"]
        client, resource = _stub_client({
            ("POST", "/v1.41/containers/create"): (
                409, {"message": "Conflict"}),
            ("GET", "/v1.41/containers/flocker--web/json"): (
                200, {"Id": "mine", "Config": {"Labels": labels},
                      "State": {"Running": True}}),
        })
        self.assertEqual(
            (self.successResultOf(client.add(application)),
             resource.requests),
            ("unchanged", [("GET", "/version"),
                           ("POST", "/v1.41/containers/create"),
                           ("GET", "/v1.41/containers/flocker--web/json")]))


def make_versioned_daemon_tests(daemon_versions):
    """
    Build tests of ``DockerClient`` against a stand-in daemon answering as
    a daemon of ``daemon_versions`` would.

    :param daemon_versions: ``(ApiVersion, MinAPIVersion)``, as text.
    :return: A ``SynchronousTestCase`` subclass.
    """
    api, minimum = daemon_versions

    class VersionedDaemonTests(SynchronousTestCase):
        """
        ``DockerClient`` on a daemon of one API version range.
        """

        def setUp(self):
            self.daemon = VersionedDockerDaemon(api, minimum, images=[IMAGE])
            self.client = DockerClient(
                Clock(), "/run/test/docker.sock", node="node1",
                http_client=StubTreq(self.daemon))

        def test_negotiated(self):
            """
            The client speaks the daemon's newest version (all of these are
            within Flocker's range), and every versioned request uses it.
            """
            application = Application(
                name="web", image=IMAGE,
                ports=[Port(internal=80, external=8080)])
            self.successResultOf(self.client.add(application))
            self.successResultOf(self.client.list())
            prefixes = {path.split("/")[1] for _, path, _ in
                        self.daemon.requests if path != "/version"}
            self.assertEqual(
                (self.successResultOf(self.client.api_version()), prefixes),
                (APIVersion.parse(api), {"v" + api}))

        def test_lifecycle(self):
            """
            Add, list, pid and remove work against this daemon, with ports
            listed once although the daemon lists each per address family.
            """
            application = Application(
                name="web", image=IMAGE,
                ports=[Port(internal=80, external=8080)])
            outcome = self.successResultOf(self.client.add(application))
            units = self.successResultOf(self.client.list())
            pid = self.successResultOf(self.client.container_pid("web"))
            removed = self.successResultOf(self.client.remove("web"))
            self.assertEqual(
                (outcome, [(u.name, u.running, u.ports) for u in units],
                 pid, removed, self.daemon.containers),
                ("created", [("web", True, pset(application.ports))],
                 4242, "removed", {}))

        def test_unchanged(self):
            """
            The spec label does not depend on the version, so adding the
            same application again changes nothing.
            """
            application = Application(name="web", image=IMAGE)
            self.successResultOf(self.client.add(application))
            self.assertEqual(
                self.successResultOf(self.client.add(application)),
                "unchanged")

        def test_image_present(self):
            """
            ``image_present`` tells a present image from a missing one.
            """
            self.assertEqual(
                (self.successResultOf(self.client.image_present(IMAGE)),
                 self.successResultOf(
                     self.client.image_present(MISSING_IMAGE))),
                (True, False))

    return VersionedDaemonTests


class Debian12DaemonTests(make_versioned_daemon_tests(DEBIAN_12)):
    """
    ``DockerClient`` on Debian 12's Docker 20.10 (API 1.41).
    """


class Docker25DaemonTests(make_versioned_daemon_tests(DOCKER_25)):
    """
    ``DockerClient`` on Docker 25 (API 1.44).
    """


class Docker29DaemonTests(make_versioned_daemon_tests(DOCKER_29)):
    """
    ``DockerClient`` on Docker 29 (API 1.52, refusing clients before 1.44).
    """


class DaemonUpgradeTests(SynchronousTestCase):
    """
    A client that negotiated with a daemon since upgraded (or downgraded).
    """

    def setUp(self):
        self.daemon = VersionedDockerDaemon(*DEBIAN_12, images=[IMAGE])
        self.client = DockerClient(Clock(), "/run/test/docker.sock",
                                   http_client=StubTreq(self.daemon))
        self.successResultOf(self.client.api_version())

    def test_upgraded(self):
        """
        When a daemon upgraded to Docker 29 refuses the 1.41 the client
        negotiated (with its documented 400), the client negotiates again
        and the request goes through in 1.52.
        """
        self.daemon.api_version, self.daemon.min_api_version = map(
            APIVersion.parse, DOCKER_29)
        present = self.successResultOf(self.client.image_present(IMAGE))
        self.assertEqual(
            (present, [(method, path) for method, path, _
                       in self.daemon.requests],
             self.successResultOf(self.client.api_version())),
            (True, [("GET", "/version"),
                    ("GET", "/v1.41/images/%s/json" % (IMAGE,)),
                    ("GET", "/version"),
                    ("GET", "/v1.52/images/%s/json" % (IMAGE,))],
             APIVersion(1, 52)))

    def test_downgraded(self):
        """
        A daemon now older than the negotiated version (too new, 400) is
        asked again too.
        """
        self.client._version = APIVersion(1, 52)
        present = self.successResultOf(self.client.image_present(IMAGE))
        self.assertEqual(
            (present, self.successResultOf(self.client.api_version())),
            (True, APIVersion(1, 41)))

    def test_refused_twice(self):
        """
        A daemon refusing even the renegotiated version fails the call
        with its message, once (no loop).
        """
        refusal = (400, {"message": (
            "client version 1.41 is too old. Minimum supported API version "
            "is 1.44, please upgrade your client to a newer version")})
        client, resource = _stub_client(
            {("GET", "/v1.41/containers/json"): refusal})
        error = self.failureResultOf(client.list(), DockerAPIError).value
        self.assertEqual(
            ("too old" in str(error),
             resource.requests.count(("GET", "/version"))),
            (True, 2))


class CreateBodyVersionTests(SynchronousTestCase):
    """
    The container-create body ``DockerClient`` sends follows the negotiated
    version (see ``test_dockerapi`` for each rule).
    """

    def client(self, daemon_versions):
        daemon = VersionedDockerDaemon(*daemon_versions, images=[IMAGE])
        client = DockerClient(Clock(), "/run/test/docker.sock",
                              http_client=StubTreq(daemon))
        return client, daemon

    def created(self, daemon):
        return [body for method, path, body in daemon.requests
                if path.endswith("/containers/create")]

    @capture_logging(None, encoder_=None)
    def test_adapted_and_logged(self, logger):
        """
        A field the version lacks and that can be left out is left out of
        what is sent, and logged; the newest daemon gets it.
        """
        config = container_config(Application(name="web", image=IMAGE))
        config["Healthcheck"] = {"Test": ["CMD", "true"],
                                 "StartInterval": 10 ** 9}
        bodies = []
        for versions in (DEBIAN_12, DOCKER_29):
            client, daemon = self.client(versions)
            self.successResultOf(client._request(
                "POST", "/containers/create", {"name": "x"}, config,
                adapt=_adapted_body))
            bodies.append(self.created(daemon)[0]["Healthcheck"])
        dropped = [message["fields"] for message in logger.messages
                   if message.get("message_type") ==
                   DOCKER_FIELDS_DROPPED.message_type]
        self.assertEqual(
            (bodies, dropped),
            ([{"Test": ["CMD", "true"]}, config["Healthcheck"]],
             [["Healthcheck.StartInterval"]]))

    def test_unsupported_refused(self):
        """
        A field the version lacks and that cannot be left out fails the
        call before anything is created.
        """
        client, daemon = self.client(DEBIAN_12)
        config = container_config(Application(name="web", image=IMAGE))
        config["HostConfig"]["Annotations"] = {"a": "b"}
        self.failureResultOf(client._request(
            "POST", "/containers/create", {"name": "x"}, config,
            adapt=_adapted_body), UnsupportedField)
        self.assertEqual(self.created(daemon), [])


class _HoldingHTTPClient(object):
    """
    ``StubTreq`` whose answers to stop requests wait until :meth:`release`.
    """

    def __init__(self, resource):
        self._stub = StubTreq(resource)
        self.held = []

    def request(self, method, url, **kwargs):
        if not url.endswith("/stop"):
            return self._stub.request(method, url, **kwargs)
        answer = Deferred()
        self.held.append((answer, method, url, kwargs))
        return answer

    def release(self):
        """
        Answer the held stop requests.
        """
        held, self.held = self.held, []
        for answer, method, url, kwargs in held:
            self._stub.request(method, url, **kwargs).chainDeferred(answer)


class StopAtExitTests(SynchronousTestCase):
    """
    ``DockerClient.stop`` with an exit watch answers once the container's
    processes exited, while Docker's stop goes on.
    """

    def setUp(self):
        self.watched = []
        self.exits = {}
        self.cancelled = []

    def watch(self, pid, container_id):
        """
        The exit watch: a ``Deferred`` per watched pid, or ``None`` for pid
        0 (cannot tell).
        """
        self.watched.append((pid, container_id))
        if not pid:
            return None
        self.exits[pid] = Deferred(lambda _: self.cancelled.append(pid))
        return self.exits[pid]

    def client(self, stop_answer=(204, None), running=True):
        """
        :return: ``(DockerClient, resource, HTTP client)`` for application
            ``app`` (container ``c1``, first process 42) whose stop is held.
        """
        answers = {
            ("GET", "/version"): (200, {
                "ApiVersion": "1.41", "MinAPIVersion": "1.12"}),
            ("GET", "/v1.41/containers/flocker--app/json"):
            (200, {"Id": "c1", "Config": {"Labels": {APPLICATION_LABEL: "{}"}},
                   "State": {"Running": running, "Pid": 42 if running else 0},
                   "HostConfig": {"PidMode": ""}}),
            ("POST", "/v1.41/containers/c1/stop"): stop_answer,
            ("DELETE", "/v1.41/containers/c1"): (204, None),
        }
        resource = _DockerAPIResource(answers)
        http = _HoldingHTTPClient(resource)
        client = DockerClient(Clock(), "/run/test/docker.sock", node="node1",
                              http_client=http, exited=self.watch)
        return client, resource, http

    @capture_logging(None, encoder_=None)
    def test_answers_at_exit(self, logger):
        """
        The stop answers once the container's first process exited, before
        Docker's stop did, and logs that it answered at the exit.
        """
        client, resource, http = self.client()
        stopped = client.stop("app")
        before = self.successResultOf(stopped) if stopped.called else None
        self.exits[42].callback(None)
        self.assertEqual(
            (before, self.watched, self.successResultOf(stopped),
             len(http.held)),
            (None, [(42, "c1")], "stopped", 1))
        http.release()
        assertHasAction(self, logger, DOCKER_STOP, True, {"application": "app"},
                        {"outcome": "stopped", "answered": "exited"})

    def test_remove_waits_for_the_stop(self):
        """
        A removal after a stop that answered at the exit waits for Docker's
        stop before it asks anything.
        """
        client, resource, http = self.client()
        stopped = client.stop("app")
        self.exits[42].callback(None)
        self.successResultOf(stopped)
        asked = len(resource.requests)
        removed = client.remove("app")
        waited = (removed.called, len(resource.requests) - asked)
        http.release()
        http.release()
        self.assertEqual((waited, self.successResultOf(removed),
                          ("DELETE", "/v1.41/containers/c1")
                          in resource.requests),
                         ((False, 0), "removed", True))

    def test_add_waits_for_the_stop(self):
        """
        Starting the application again after a stop that answered at the
        exit waits for Docker's stop before it asks anything.
        """
        client, resource, http = self.client()
        stopped = client.stop("app")
        self.exits[42].callback(None)
        self.successResultOf(stopped)
        asked = len(resource.requests)
        added = client.add(Application(name="app", image=IMAGE))
        waited = (added.called, len(resource.requests) - asked)
        http.release()
        self.assertEqual(
            (waited, resource.requests[asked:]),
            ((False, 0), [("POST", "/v1.41/containers/c1/stop"),
                          ("POST", "/v1.41/containers/create")]))
        self.failureResultOf(added, ImageNotFound)

    @capture_logging(None, encoder_=None)
    def test_docker_first(self, logger):
        """
        A stop Docker answers before the exit is seen answers then, and
        stops the watch.
        """
        client, resource, http = self.client()
        stopped = client.stop("app")
        http.release()
        self.assertEqual((self.successResultOf(stopped), self.cancelled),
                         ("stopped", [42]))
        assertHasAction(self, logger, DOCKER_STOP, True, {"application": "app"},
                        {"outcome": "stopped", "answered": "stopped"})

    def test_docker_fails_first(self):
        """
        A stop Docker refuses before the exit is seen fails with Docker's
        error.
        """
        client, resource, http = self.client(
            stop_answer=(500, {"message": "cannot kill"}))
        stopped = client.stop("app")
        http.release()
        self.assertIn("cannot kill",
                      str(self.failureResultOf(stopped, DockerAPIError).value))

    def test_unwatched(self):
        """
        A container whose exit cannot be watched is stopped when Docker's
        stop answers.
        """
        client, resource, http = self.client()
        self.watch = lambda pid, container_id: None
        client._exited = self.watch
        stopped = client.stop("app")
        pending = stopped.called
        http.release()
        self.assertEqual((pending, self.successResultOf(stopped)),
                         (False, "stopped"))

    def test_not_running_not_watched(self):
        """
        A container that does not run is not watched: Docker's answer to
        its stop is the answer.
        """
        client, resource, http = self.client(running=False)
        stopped = client.stop("app")
        http.release()
        self.assertEqual((self.successResultOf(stopped), self.watched),
                         ("stopped", []))


class APIErrorTests(SynchronousTestCase):
    """
    Tests for how ``DockerAPIError`` says what went wrong.
    """

    def test_flocker_words_first(self):
        """
        The line says what Flocker could not do and what to do, then
        Docker's own text and status.
        """
        error = DockerAPIError(
            "start container flocker--web", 500,
            "driver failed programming external connectivity: Bind for "
            "0.0.0.0:8080 failed: port is already allocated")
        self.assertEqual(
            str(error),
            "could not start container flocker--web: another container "
            "holds one of its host ports; stop it or choose another external "
            "port (Docker said: driver failed programming external "
            "connectivity: Bind for 0.0.0.0:8080 failed: port is already "
            "allocated, HTTP 500)")
