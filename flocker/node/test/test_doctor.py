"""
Tests for :mod:`flocker.node._doctor` (``flocker-node doctor``): each check
against in-memory probes, the report's wire format, the command line, and
the real thing on a lab node.
"""

import io
import json

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from ...volume import PoolMissing, ZFSUnavailable
from ...volume.test.test_capabilities import OPENZFS_22
from .._docker import FakeDockerClient
from .._doctor import (
    FAILED, MINIMUM_FREE, OK, Check, DoctorReport, parse_sshd_settings,
    render, report_from_dict, report_to_dict, run_checks, sshd_check,
)
from ..script import node_main
from ._probes import SSHD_DEFAULTS, FakeCommands, FakePool, healthy_probes


class RunChecksTests(SynchronousTestCase):
    """
    ``run_checks`` against in-memory probes.
    """

    def checks(self, **changes):
        report = self.successResultOf(run_checks(healthy_probes(**changes)))
        return report, {check.name: check for check in report.checks}

    def test_healthy(self):
        """
        A healthy node passes every check but the node key (none installed
        yet, which does not block), and is ok.
        """
        report, checks = self.checks()
        self.assertEqual(
            ([name for name, check in checks.items() if not check.ok],
             list(checks), report.ok),
            (["node key"],
             ["docker", "zfs pool", "zfs features", "zfs space", "iptables",
              "conntrack", "sshd", "agent", "node key", "clock"], True))

    def test_no_docker(self):
        """
        A daemon that cannot be reached fails the Docker check, blocking,
        naming the socket and how to fix it.
        """
        report, checks = self.checks(docker=FakeDockerClient(
            socket_path="/var/run/docker.sock", daemon_running=False))
        check = checks["docker"]
        self.assertEqual(
            (check.ok, check.blocking, "/var/run/docker.sock" in check.detail,
             "systemctl enable --now docker" in check.fix, report.ok),
            (False, True, True, True, False))

    def test_no_pool(self):
        """
        A missing pool fails with the command creating it; the feature and
        space checks are then not run.
        """
        report, checks = self.checks(pool=FakePool(name="tank",
                                                   missing=PoolMissing))
        self.assertEqual(
            (checks["zfs pool"].ok, "zpool create tank" in checks[
                "zfs pool"].fix, "zfs space" in checks, report.ok),
            (False, True, False, False))

    def test_no_zfs(self):
        """
        No ZFS at all says to install it.
        """
        report, checks = self.checks(pool=FakePool(missing=ZFSUnavailable))
        self.assertIn("zfsutils-linux", checks["zfs pool"].fix)

    def test_features_described(self):
        """
        The pool's ZFS is described by what it offers.
        """
        report, checks = self.checks(pool=FakePool(
            capabilities=OPENZFS_22))
        self.assertEqual(
            checks["zfs features"].detail,
            "OpenZFS 2.2.2 (module 2.2.2): resumable receive, send -cLe, "
            "receive -x/-o, holds, bookmarks")

    def test_pool_full(self):
        """
        Less than the minimum free space blocks.
        """
        report, checks = self.checks(pool=FakePool(free=MINIMUM_FREE - 1))
        self.assertEqual((checks["zfs space"].ok, report.ok), (False, False))

    def test_no_iptables(self):
        """
        Without iptables both routing checks fail, saying to install it.
        """
        report, checks = self.checks(run=FakeCommands({
            "sshd": (0, SSHD_DEFAULTS.encode("ascii"), b"")}))
        self.assertEqual(
            (checks["iptables"].ok, checks["conntrack"].ok,
             "apt install iptables" in checks["iptables"].fix, report.ok),
            (False, False, True, False))

    def test_iptables_refused(self):
        """
        iptables failing (not root, no nat table) gives its last line.
        """
        report, checks = self.checks(run=FakeCommands({
            "iptables": (4, b"", b"iptables v1.8.9 (nf_tables): Could not "
                         b"fetch rule set generation id: Permission denied "
                         b"(you must be root)\n"),
            "sshd": (0, SSHD_DEFAULTS.encode("ascii"), b"")}))
        self.assertIn("you must be root", checks["iptables"].detail)

    def test_no_sshd(self):
        """
        Without sshd: install openssh-server.
        """
        report, checks = self.checks(run=FakeCommands({
            "iptables": (0, b"", b"")}))
        self.assertEqual((checks["sshd"].ok, "openssh-server" in checks[
            "sshd"].fix), (False, True))

    def test_sshd_checked_config(self):
        """
        ``sshd -T`` is asked about the configured file.
        """
        commands = FakeCommands()
        self.checks(run=commands, sshd_config="/srv/sshd_config")
        self.assertIn(["sshd", "-T", "-f", "/srv/sshd_config"],
                      commands.calls)

    def test_agent_missing(self):
        """
        No agent socket fails without blocking (deploys do not need the
        agent yet).
        """
        report, checks = self.checks(exists=lambda path: False)
        self.assertEqual(
            (checks["agent"].ok, checks["agent"].blocking, report.ok),
            (False, False, True))

    def test_agent_not_answering(self):
        """
        A socket nobody accepts on fails, naming it.
        """
        from twisted.internet.defer import fail
        report, checks = self.checks(connect=lambda path: fail(
            ConnectionRefusedError(111, "Connection refused")))
        self.assertIn("does not accept connections", checks["agent"].detail)

    def test_clock_behind_snapshots(self):
        """
        A clock before the newest of Flocker's snapshots fails.
        """
        report, checks = self.checks(pool=FakePool(snapshots=[
            "flocker-20400101T000000.000000Z"]))
        self.assertEqual((checks["clock"].ok, "timedatectl" in checks[
            "clock"].fix), (False, True))

    def test_docker_hangs(self):
        """
        A probe that never answers fails its check after the timeout
        instead of hanging the doctor.
        """
        class Hanging(object):
            def api_version(self):
                return Deferred()
        probes = healthy_probes(docker=Hanging())
        d = run_checks(probes)
        self.assertNoResult(d)
        probes.clock.advance(60)
        report = self.successResultOf(d)
        self.assertIn("no answer within", report.checks[0].detail)


class SSHDCheckTests(SynchronousTestCase):
    """
    ``sshd_check`` on ``sshd -T`` settings.
    """

    def check(self, changes, sudo=""):
        text = SSHD_DEFAULTS
        for key, value in changes.items():
            text = "%s %s\n" % (key, value) + text
        return sshd_check(parse_sshd_settings(text), sudo)

    def test_debian_defaults(self):
        """
        Debian's defaults allow what the client needs.
        """
        self.assertTrue(self.check({}).ok)

    def test_no_root(self):
        """
        ``PermitRootLogin no`` fails, unless a sudo rule lets the login
        user run flocker-node.
        """
        self.assertEqual(
            (self.check({"permitrootlogin": "no"}).ok,
             self.check({"permitrootlogin": "no"},
                        "deploy ALL=(root) NOPASSWD: /usr/bin/flocker-node"
                        ).ok),
            (False, True))

    def test_no_streamlocal(self):
        """
        No Unix-socket forwarding (or no forwarding at all) fails, naming
        the setting.
        """
        refused = self.check({"allowstreamlocalforwarding": "remote"})
        disabled = self.check({"disableforwarding": "yes"})
        self.assertEqual(
            (refused.ok, "AllowStreamLocalForwarding local" in refused.fix,
             disabled.ok, "DisableForwarding no" in disabled.fix),
            (False, True, False, True))


class ReportTests(SynchronousTestCase):
    """
    The report's lines and wire format.
    """

    def report(self):
        return DoctorReport(checks=[
            Check("docker", True, "answers"),
            Check("zfs pool", False, "ZFS pool tank does not exist",
                  "create it"),
            Check("node key", False, "none", "next deploy", blocking=False),
        ], time=12.5)

    def test_render(self):
        """
        One line per check: the mark, the name, what was found and, for a
        failure, the fix.
        """
        self.assertEqual(render(self.report()), (
            "%s docker: answers\n"
            "%s zfs pool: ZFS pool tank does not exist -- fix: create it\n"
            "%s node key: none -- fix: next deploy (does not block "
            "deploys)\n") % (OK, FAILED, FAILED))

    def test_round_trip(self):
        """
        A report goes through JSON unchanged.
        """
        report = self.report()
        self.assertEqual(report_from_dict(json.loads(json.dumps(
            report_to_dict(report)))), report)

    def test_bad_document(self):
        """
        Anything else is refused with ``ValueError``.
        """
        for document in [{}, {"time": 1, "checks": [{"name": "x"}]},
                         {"time": "now", "checks": []},
                         {"time": 1, "checks": [{"name": 1, "ok": True,
                                                 "detail": ""}]}]:
            self.assertRaises(ValueError, report_from_dict, document)


class CommandLineTests(SynchronousTestCase):
    """
    ``flocker-node doctor``.
    """

    def run_doctor(self, probes, *options):
        from .._local import LocalNodeAgent
        agent = LocalNodeAgent("10.0.0.1", probes.docker, None, None,
                               checks=lambda: run_checks(probes))
        stdout, stderr = io.StringIO(), io.StringIO()
        code = self.successResultOf(node_main(
            probes.clock, ["doctor"] + list(options), b"", stdout, stderr,
            {}, make_agent=lambda reactor, options, environ: agent))
        return code, stdout.getvalue(), stderr.getvalue()

    def test_exit_status(self):
        """
        Exit status 0 on a healthy node, 1 when something blocks deploys;
        one line per check either way, no traceback.
        """
        healthy = self.run_doctor(healthy_probes())
        broken = self.run_doctor(healthy_probes(pool=FakePool(
            missing=PoolMissing)))
        self.assertEqual(
            (healthy[0], broken[0], len(healthy[1].splitlines()),
             broken[2], "Traceback" in broken[1]),
            (0, 1, 10, "", False))

    def test_json(self):
        """
        ``--json`` prints the report as one JSON document and exits 0
        whatever it says (the protocol's form).
        """
        code, out, err = self.run_doctor(
            healthy_probes(pool=FakePool(missing=PoolMissing)), "--json")
        report = report_from_dict(json.loads(out))
        self.assertEqual((code, report.ok, out.count("\n")), (0, False, 1))
