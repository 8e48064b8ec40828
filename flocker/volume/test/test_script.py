"""
Tests for ``flocker.volume.script``: ``flocker-volume``.

The commands are tested as functions against in-memory services (fast,
deterministic), and end to end as processes on a real zfs-fuse pool.
"""

import io
import json
import os
import subprocess
import sys

from hypothesis import given, strategies as st
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from flocker import __version__
from flocker.volume import script
from flocker.node._docker import FakeDockerClient
from flocker.node._local import LocalNodeAgent
from flocker.node._lock import DeployLock
from flocker.node._server import AgentProtocol, AgentService
from flocker.node.testtools import loopback
from flocker.route import MemoryRouteManager
from flocker.volume import VolumeError
from flocker.volume._api import PushResult
from flocker.volume._via_agent import AgentTransfers
from flocker.volume._memory import MemoryNetwork, MemoryVolumeService
from flocker.volume.script import (
    PushProgress, _parser, flocker_volume_main, format_size, main,
    parse_size,
)

from ._support import FilePools, require_zfs
from flocker.testtools import capture_output, cases, with_cases


class TTY(io.StringIO):
    """
    A text stream that says it is a terminal.
    """

    def isatty(self):
        return True


class Cluster(object):
    """
    Two in-memory nodes, each with its agent, and a way to run
    ``flocker-volume`` on the first: its ``push`` and ``handoff`` reach
    that node's agent protocol in memory, and a hand-off the second node's
    agent directly.

    :ivar connections: How many times ``flocker-volume`` connected to the
        first node's agent.
    :ivar agent_running: Whether the first node's agent answers.
    """

    def __init__(self):
        self.clock = Clock()
        network = MemoryNetwork()
        self.node = MemoryVolumeService("id-1", "10.0.0.1", network,
                                        self.clock)
        self.other = MemoryVolumeService("id-2", "10.0.0.2", network,
                                         self.clock)
        self.agents = [
            LocalNodeAgent(address, FakeDockerClient(node=address), service,
                           MemoryRouteManager(node=address))
            for address, service in [("10.0.0.1", self.node),
                                     ("10.0.0.2", self.other)]]
        self.service = AgentService(
            self.clock, lambda address: self.agents[0],
            DeployLock(os.devnull), expected_errors=(VolumeError,))
        self.pumps = []
        self.connections = 0
        self.agent_running = True
        self.closed = []

    def _transfers(self, reactor, options, environ):
        def connect(path, protocol):
            if not self.agent_running:
                return fail(ConnectionRefusedError(111, "Connection refused"))
            self.connections += 1
            self.pumps.append(loopback(protocol, AgentProtocol(self.service)))
            return succeed(None)

        def new_owner(target):
            return succeed((self.agents[1],
                            lambda: succeed(self.closed.append(target))))
        return AgentTransfers(reactor, "/run/flocker/agent.sock", "10.0.0.1",
                              connect, new_owner)

    def run(self, *argv, **kwargs):
        """
        :return: ``(exit code, stdout, stderr)``.
        """
        self.clock.advance(1)
        out = kwargs.get("out") or io.StringIO()
        err = kwargs.get("err") or io.StringIO()
        options = _parser().parse_args(list(argv))
        results = []
        main(self.clock, options, {"FLOCKER_POOL": "tank"}, out, err,
             open_service=lambda *a, **k: succeed(self.node),
             transfers=self._transfers).addBoth(results.append)
        while not results and any(pump.pending() for pump in self.pumps):
            for pump in self.pumps:
                pump.flush()
        code = 0
        if isinstance(results[0], Failure):
            results[0].trap(SystemExit)
            code = results[0].value.code
        return code, out.getvalue(), err.getvalue()


@with_cases
class SizesTests(SynchronousTestCase):
    """
    Sizes on the command line and in output.
    """

    @given(st.integers(min_value=1, max_value=2 ** 40),
           st.sampled_from(["", "K", "M", "G", "k", "m"]))
    def test_parse(self, number, unit):
        """
        A number with an optional binary unit is that many bytes.
        """
        factor = 1024 ** " KMG".index(unit.upper() or " ")
        self.assertEqual(parse_size("%d%s" % (number, unit)), number * factor)

    @cases([(text,) for text in ["", "0", "-1", "1.5G", "10X", "M"]])
    def test_parse_invalid(self, text):
        """
        Anything else is refused.
        """
        with self.assertRaises(ValueError):
            parse_size(text)

    def test_format(self):
        """
        Sizes are shown in the largest sensible binary unit.
        """
        self.assertEqual(
            [format_size(v) for v in [None, 5, 2048, 3 * 2 ** 30]],
            ["-", "5 B", "2.0 KiB", "3.0 GiB"])


class DescribePushTests(SynchronousTestCase):
    """
    The one line a push or hand-off prints.
    """

    def test_resumed(self):
        """
        A push that first sent the rest of a cut-short one says so, with
        that part's size, after the kind of its own stream.
        """
        plain = PushResult(name="app", target="10.0.0.2",
                           target_node_id="n2", snapshot="s3", base="s2",
                           bytes_sent=2048)
        resumed = PushResult(name="app", target="10.0.0.2",
                             target_node_id="n2", snapshot="s3", base="s2",
                             bytes_sent=3 * 2 ** 20, resumed=2 ** 20)
        self.assertEqual(
            [script._describe_push(result, 1.5)
             for result in (plain, resumed)],
            ["app to 10.0.0.2: incremental from s2, 2.0 KiB in 1.50 s",
             "app to 10.0.0.2: incremental from s2 (after resuming a "
             "cut-short push: 1.0 MiB), 3.0 MiB in 1.50 s"])


@with_cases
class PushProgressTests(SynchronousTestCase):
    """
    ``PushProgress`` draws a line only for pushes longer than a second.
    """

    def test_quick_push_silent(self):
        """
        A push finishing within a second draws nothing.
        """
        clock, stream = Clock(), TTY()
        progress = PushProgress(clock, stream, "push app")
        clock.advance(0.5)
        progress.update(1000, 1000)
        progress.finish()
        self.assertEqual(stream.getvalue(), "")

    def test_long_push(self):
        """
        After a second, the line shows bytes, total, rate and ETA, and is
        redrawn in place; ``finish`` ends it.
        """
        clock, stream = Clock(), TTY()
        progress = PushProgress(clock, stream, "push app")
        clock.advance(2)
        progress.update(100 * 2 ** 20, 400 * 2 ** 20)
        self.assertTrue(
            stream.getvalue().startswith(
                "\rpush app: 100.0 MiB of 400.0 MiB, 50.0 MiB/s, ETA 0:06"))
        clock.advance(0.1)
        progress.update(101 * 2 ** 20, 400 * 2 ** 20)
        self.assertEqual(stream.getvalue().count("\r"), 1)
        clock.advance(0.2)
        progress.finish()
        self.assertEqual(stream.getvalue().count("\r"), 2)
        self.assertTrue(stream.getvalue().endswith("\n"))

    def test_unknown_total(self):
        """
        Without an expected total (an incremental stream) the ETA is
        unknown.
        """
        clock, stream = Clock(), TTY()
        progress = PushProgress(clock, stream, "push app")
        clock.advance(4)
        progress.update(2 ** 20, None)
        self.assertIn("256.0 KiB/s, ETA ?", stream.getvalue())

    @cases([(TTY, 1), (io.StringIO, 0)])
    def test_terminal_only(self, err, expected):
        """
        ``flocker-volume push`` gives the push a progress display only when
        standard error is a terminal.
        """
        made = []

        class Recording(PushProgress):
            def __init__(self, *args, **kwargs):
                made.append(self)
                PushProgress.__init__(self, *args, **kwargs)
        self.patch(script, "PushProgress", Recording)
        cluster = Cluster()
        cluster.node.create("app")
        code, _, _ = cluster.run("push", "app", "10.0.0.2", err=err())
        self.assertEqual((code, len(made)), (0, expected))


# The real command, as a process, on a real pool.


def _flocker_volume(pool, *argv, **kwargs):
    env = dict(os.environ, FLOCKER_POOL=pool)
    return subprocess.run(
        [sys.executable, "-m", "flocker.volume.script"] + list(argv),
        capture_output=True, timeout=120, env=env, **kwargs)


def pool_for(test):
    """
    A file-backed pool for one test (skipped, or failed in CI, without
    ZFS).

    :param test: The ``TestCase`` (its ``addCleanup`` destroys the pool).
    :return: The pool's name.
    """
    require_zfs()
    pools = FilePools()
    test.addCleanup(pools.destroy)
    return pools.create("cli")


@with_cases
class ScriptTests(SynchronousTestCase):
    """
    ``flocker-volume``'s commands over an in-memory node: what they print,
    their exit codes, and their one-line errors.
    """

    def test_list(self):
        """
        ``list`` shows each volume's name, owner, size and snapshots.
        """
        cluster = Cluster()
        cluster.node.create("app", 1024 * 1024)
        cluster.node.write_file("app", "f", b"x" * 2048)
        cluster.node.push("app", "10.0.0.2")
        cluster.other.create("mine")
        code, out, err = cluster.run("list")
        self.assertEqual((code, err), (0, ""))
        header, row, footer = out.splitlines()
        self.assertEqual(
            header.split(),
            ["NAME", "OWNER", "SIZE", "MAXIMUM",
             "SNAPSHOTS", "LATEST"])
        self.assertEqual(
            row.split()[:8],
            ["app", "this", "node", "2.0", "KiB", "1.0",
             "MiB", "1"])
        self.assertEqual(footer, "(this node is id-1, pool tank)")

    def test_list_copy_owner(self):
        """
        A copy owned by another node shows that node's identity.
        """
        cluster = Cluster()
        cluster.other.create("app")
        cluster.other.push("app", "10.0.0.1")
        code, out, _ = cluster.run("list")
        self.assertEqual(out.splitlines()[1].split()[1], "id-2")

    def test_create_and_delete(self):
        """
        ``create`` makes an owned volume with the maximum size given;
        ``delete`` removes it.
        """
        cluster = Cluster()
        code, out, _ = cluster.run("create", "app", "--maximum-size", "10M")
        self.assertEqual(code, 0)
        self.assertIn("volume app is owned by this node (id-1)", out)
        info = cluster.node.volumes().result[0]
        self.assertEqual(info.maximum_size, 10 * 1024 * 1024)
        code, out, _ = cluster.run("delete", "app")
        self.assertEqual((code, out), (0, "deleted volume app\n"))
        self.assertEqual(list(cluster.node.volumes().result), [])

    @cases([
        (["create", "app", "--maximum-size", "0"],
         "argument --maximum-size: size must be positive, not '0'"),
        (["create", "app", "--maximum-size", "-5"],
         "argument --maximum-size: '-5' is not a size"),
        (["create", "app", "--maximum-size", "lots"],
         "argument --maximum-size: 'lots' is not a size"),
        (["create"], "the following arguments are required: name"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ])
    def test_bad_command_line_one_line(self, argv, message):
        """
        A bad command line (a size of 0 or below included) is one line on
        standard error naming the argument, exit status 2, and nothing is run:
        no usage block before it.
        """
        stdout, stderr = capture_output(self)
        ran = []
        with self.assertRaises(SystemExit) as caught:
            flocker_volume_main(argv, {}, run=lambda *a: ran.append(a))
        err = stderr.getvalue()
        self.assertEqual((caught.exception.code, ran, err.count("\n")),
                         (2, [], 1), err)
        self.assertTrue(err.startswith("flocker-volume"))
        self.assertIn(message, err)

    @cases([
        (["create", "../etc"], "volume name '../etc' is not a safe name"),
        (["delete", "nope"], "volume nope does not exist"),
        (["push", "app", "node2;reboot"], "is not a node address"),
    ])
    def test_errors_one_line(self, argv, message):
        """
        Mistakes are reported as one line on standard error with exit code 1.
        """
        cluster = Cluster()
        cluster.node.create("app")
        code, out, err = cluster.run(*argv)
        self.assertEqual(code, 1)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1)
        self.assertTrue(err.startswith("flocker-volume: error: "))
        self.assertIn(message, err)

    def test_delete_in_use(self):
        """
        ``delete`` refuses a volume in use and leaves it.
        """
        cluster = Cluster()
        cluster.node.create("app")
        cluster.node.in_use.add("app")
        code, _, err = cluster.run("delete", "app")
        self.assertEqual(code, 1)
        self.assertIn("in use", err)
        self.assertEqual([info.name for info in cluster.node.volumes().result],
                         ["app"])

    def test_push_summary(self):
        """
        ``push`` says what it sent; nothing else when standard error is not a
        terminal.
        """
        cluster = Cluster()
        cluster.node.create("app")
        cluster.node.write_file("app", "f", b"x" * 3000)
        code, out, err = cluster.run("push", "app", "10.0.0.2")
        self.assertEqual((code, err), (0, ""))
        self.assertTrue(
            out.startswith("pushed app to 10.0.0.2: full stream, 2.9 KiB in "))

    def test_handoff_summary(self):
        """
        ``handoff`` names the new owner.
        """
        cluster = Cluster()
        cluster.node.create("app")
        code, out, _ = cluster.run("handoff", "app", "10.0.0.2")
        self.assertEqual(code, 0)
        self.assertIn("node id-2 is now the owner", out)
        self.assertTrue(cluster.other.volumes().result[0].owned)

    def test_agent_progress_shown(self):
        """
        On a terminal, the progress display is told the figures the agent
        reports for the transfer, then finished.
        """
        seen = []

        class Recording(PushProgress):
            def update(self, sent, total):
                seen.append((sent, total))

            def finish(self):
                seen.append("finished")
        self.patch(script, "PushProgress", Recording)
        cluster = Cluster()
        cluster.node.create("app")
        cluster.node.write_file("app", "f", b"x" * 3000)
        code, _, _ = cluster.run("push", "app", "10.0.0.2", err=TTY())
        self.assertEqual((code, seen), (0, [(3000, 3000), "finished"]))

    def test_push_incremental(self):
        """
        A second ``push`` names the snapshot its incremental started from,
        as the agent's push reported it.
        """
        cluster = Cluster()
        cluster.node.create("app")
        cluster.node.write_file("app", "f", b"x" * 3000)
        self.assertEqual(cluster.run("push", "app", "10.0.0.2")[0], 0)
        base = cluster.other.volumes().result[0].snapshots[-1]
        cluster.node.write_file("app", "g", b"y" * 10)
        code, out, err = cluster.run("push", "app", "10.0.0.2")
        self.assertEqual((code, err), (0, ""))
        self.assertTrue(out.startswith(
            "pushed app to 10.0.0.2: incremental from %s, 10 B in " % (
                base,)), out)

    def test_push_through_agent(self):
        """
        ``push`` asks this node's agent over one connection and opens no
        volume service itself.
        """
        cluster = Cluster()
        cluster.node.create("app")
        opened = []
        options = _parser().parse_args(["push", "app", "10.0.0.2"])
        results = []
        main(cluster.clock, options, {}, io.StringIO(), io.StringIO(),
             open_service=lambda *a, **k: opened.append(a),
             transfers=cluster._transfers).addBoth(results.append)
        for pump in cluster.pumps:
            pump.flush()
        self.assertEqual((results, opened, cluster.connections),
                         ([None], [], 1))
        self.assertEqual(cluster.other.volumes().result[0].name, "app")

    @cases([(["push", "app", "10.0.0.2"],), (["handoff", "app", "10.0.0.2"],)],
           ids=["push", "handoff"])
    def test_agent_not_running(self, argv):
        """
        Without a running agent, ``push`` and ``handoff`` fail with one
        plain line naming the socket and ``systemctl status flocker-node``
        (not the connection error's wording); the volume stays this
        node's.
        """
        cluster = Cluster()
        cluster.node.create("app")
        cluster.agent_running = False
        code, out, err = cluster.run(*argv)
        self.assertEqual((code, out, err), (
            1, "", "flocker-volume: error: this node's agent does not answer "
            "on /run/flocker/agent.sock: is flocker-node agent running? see "
            "systemctl status flocker-node\n"))
        self.assertTrue(cluster.node.volumes().result[0].owned)

    def test_agent_refusal_one_line(self):
        """
        What the agent refuses is shown as its one line, exit code 1.
        """
        cluster = Cluster()
        cluster.node.create("app")
        cluster.other.create("app")
        code, out, err = cluster.run("push", "app", "10.0.0.2")
        self.assertEqual((code, out, err.count("\n")), (1, "", 1))
        self.assertEqual(
            err, "flocker-volume: error: node 10.0.0.2: volume app is owned "
            "by that node\n")

    def test_handoff_new_owner_unreachable(self):
        """
        A hand-off whose new owner's agent cannot be reached gives nothing
        up: one line, and this node still owns the volume.
        """
        cluster = Cluster()
        cluster.node.create("app")
        transfers = cluster._transfers

        def unreachable(reactor, options, environ):
            made = transfers(reactor, options, environ)
            made._new_owner = lambda target: fail(
                ValueError("cannot reach node %s: refused" % (target,)))
            return made
        cluster._transfers = unreachable
        code, out, err = cluster.run("handoff", "app", "10.0.0.2")
        self.assertEqual((code, out, err.count("\n")), (1, "", 1))
        self.assertIn("nothing was changed", err)
        self.assertEqual((cluster.connections,
                          cluster.node.volumes().result[0].owned), (0, True))

    def test_handoff_connection_closed(self):
        """
        ``handoff`` closes its connection to the new owner once it acquired.
        """
        cluster = Cluster()
        cluster.node.create("app")
        self.assertEqual(cluster.run("handoff", "app", "10.0.0.2")[0], 0)
        self.assertEqual(cluster.closed, ["10.0.0.2"])

    def test_acquire_json(self):
        """
        ``acquire --json`` prints the result as JSON (another node reads it).
        """
        cluster = Cluster()
        cluster.node.create("app")
        code, out, _ = cluster.run("acquire", "app", "--json")
        self.assertEqual((code, out),
                         (0, '{"acquired": "app", "node_id": "id-1"}\n'))

    def test_acquire_json_error(self):
        """
        ``acquire --json`` reports errors as JSON too, for the node that ran
        it.
        """
        cluster = Cluster()
        code, out, err = cluster.run("acquire", "app", "--json")
        self.assertEqual(code, 1)
        self.assertIn('"error": "NoSuchVolume"', out)
        self.assertTrue(err.startswith("flocker-volume: error: "))

    def test_prune(self):
        """
        ``prune`` shows volumes not kept and surplus snapshots, deleting
        nothing until ``--yes``.
        """
        cluster = Cluster()
        cluster.node.create("keep")
        cluster.node.create("old")
        cluster.node.snapshot("keep")
        cluster.node.snapshot("keep")
        code, out, _ = cluster.run("prune", "--keep", "keep")
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertTrue(
            lines[0].startswith("volume old (0 B, owned by this node)"))
        self.assertTrue(lines[1].startswith("snapshot keep@flocker-"))
        self.assertIn("nothing deleted", lines[-1])
        self.assertEqual(len(cluster.node.volumes().result), 2)
        code, out, _ = cluster.run("prune", "--keep", "keep", "--yes")
        self.assertEqual(code, 0)
        self.assertIn("deleted volume old", out)
        infos = cluster.node.volumes().result
        self.assertEqual([info.name for info in infos], ["keep"])
        self.assertEqual(len(infos[0].snapshots), 1)

    def test_prune_in_use(self):
        """
        ``prune --yes`` keeps a volume in use, says so, and prunes the rest.
        """
        cluster = Cluster()
        cluster.node.create("busy")
        cluster.node.create("idle")
        cluster.node.in_use.add("busy")
        code, out, _ = cluster.run("prune", "--yes")
        self.assertEqual(code, 0)
        self.assertIn("kept volume busy: volume busy is in use", out)
        self.assertIn("deleted volume idle", out)
        self.assertEqual([info.name for info in cluster.node.volumes().result],
                         ["busy"])

    def test_prune_nothing(self):
        """
        With nothing to prune, ``prune`` says so.
        """
        cluster = Cluster()
        cluster.node.create("keep")
        self.assertEqual(cluster.run("prune", "--keep", "keep")[1],
                         "nothing to prune\n")

    def test_version(self):
        """
        ``--version`` prints the package version.
        """
        stdout, stderr = capture_output(self)
        with self.assertRaises(SystemExit) as caught:
            flocker_volume_main(["--version"])
        self.assertEqual(caught.exception.code, 0)
        self.assertEqual(stdout.getvalue(),
                         "flocker-volume %s\n" % (__version__,))

    def test_help(self):
        """
        ``--help`` lists the commands.
        """
        stdout, stderr = capture_output(self)
        with self.assertRaises(SystemExit):
            flocker_volume_main(["--help"])
        text = stdout.getvalue()
        for command in ["list", "create", "push", "acquire",
                        "handoff", "delete", "prune"]:
            self.assertIn(command, text)



class RealPoolTests(SynchronousTestCase):
    """
    The real command, as a process, on a real pool.
    """

    def test_real_pool_missing(self):
        """
        A missing pool is one line and exit code 1: Flocker's words (what it
        could not do, that the pool is missing, how to make it), then what
        zfs said.
        """
        require_zfs()
        result = _flocker_volume("flocker-test-missing-pool", "list")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            b"flocker-volume: error: could not read the properties of pool "
            b"flocker-test-missing-pool: ZFS pool flocker-test-missing-pool does "
            b"not exist; create it (zpool create flocker-test-missing-pool "
            b"DEVICE) or name the node's pool (--pool, FLOCKER_POOL) (zfs said: "
            b"cannot open 'flocker-test-missing-pool': dataset does not exist, "
            b"exit 1)\n")

    def test_real_commands(self):
        """
        ``create``, ``list``, ``mountpoint`` and ``delete`` work on a real
        pool; an unsafe name is one line, no traceback, nothing created.
        """
        pool = pool_for(self)
        self.assertEqual(
            _flocker_volume(pool, "create", "app", "--maximum-size",
                            "8M").returncode,
            0)
        listed = _flocker_volume(pool, "list", "--json")
        self.assertEqual(listed.returncode, 0)
        [info] = json.loads(listed.stdout)
        self.assertEqual(
            (info["name"], info["owned"], info["maximum_size"]),
            ("app", True, 8 * 1024 * 1024))
        mountpoint = _flocker_volume(pool, "mountpoint", "app").stdout.decode()
        self.assertEqual(mountpoint.strip(), info["mountpoint"])
        bad = _flocker_volume(pool, "create", "x;rm -rf /")
        self.assertEqual(bad.returncode, 1)
        self.assertTrue(
            bad.stderr.count(b"\n") == 1 and b"Traceback" not in bad.stderr)
        self.assertEqual(_flocker_volume(pool, "delete", "app").returncode, 0)
        self.assertEqual(
            json.loads(_flocker_volume(pool, "list", "--json").stdout), [])

    def test_real_quota(self):
        """
        A write beyond the maximum size fails with "Disk quota exceeded" and
        the volume keeps what fit.
        """
        pool = pool_for(self)
        self.assertEqual(
            _flocker_volume(pool, "create", "app", "--maximum-size",
                            "1M").returncode,
            0)
        path = _flocker_volume(pool, "mountpoint", "app").stdout.decode().strip()
        with self.assertRaises(OSError):
            with open(os.path.join(path, "f"), "wb") as f:
                f.write(os.urandom(3 * 1024 * 1024))
                f.flush()
                os.fsync(f.fileno())



class NoReceiveTests(SynchronousTestCase):
    """
    Other nodes' pushes reach this node's agent, never a ``flocker-volume``
    process: there is no ``receive`` command, nor the options it took.
    """

    def test_refused(self):
        """
        ``receive``, ``--caller`` and ``--eliot-task`` are bad command lines
        (exit status 2, one line), not commands.
        """
        for argv in [["receive", "app"],
                     ["receive", "app", "--caller", "a" * 32],
                     ["--eliot-task", "x@/1", "list"]]:
            stdout, stderr = capture_output(self)
            with self.assertRaises(SystemExit) as caught:
                flocker_volume_main(argv)
            self.assertEqual((caught.exception.code,
                              stderr.getvalue().count("\n")), (2, 1))
