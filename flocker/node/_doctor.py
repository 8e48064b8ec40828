"""
``flocker-node doctor``: is this node ready for deploys?

Each check gives one line, ``✓`` or ``✗`` with, for ``✗``, how to fix it::

    ✓ docker: unix:///var/run/docker.sock answers, Engine API 1.41
    ✗ zfs pool: ZFS pool flocker does not exist -- fix: create it (zpool create flocker DEVICE) or name another with --pool

A check is *blocking* when deploys cannot work while it fails (no Docker, no
pool, no iptables, sshd refusing what the client needs); the others say what
works less well (the other nodes' keys not installed yet: the next deploy
installs them).  The command
exits non-zero when a blocking check fails.  ``flocker-deploy --dry-run``
runs the same checks on every node (the ``doctor`` node operation) and
reports each node's failures.

The checks are :class:`Check` values in a :class:`DoctorReport`; the probes
they use (the Docker client, the pool, commands, the agent's socket) are
passed in, so tests run them against fakes and the lab against the real
parts.
"""

import calendar
import json
import os
import re
import time

import attr
from pyrsistent import pvector
from twisted.internet.defer import CancelledError, fail, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

__all__ = [
    "Check", "DoctorReport", "NodeProbes", "run_checks", "render",
    "report_to_dict", "report_from_dict", "parse_sshd_settings",
    "sshd_check", "OK", "FAILED", "DEFAULT_AGENT_SOCKET",
    "DEFAULT_SSHD_CONFIG", "MINIMUM_FREE", "run_argv", "connect_unix",
    "read_sudo_rules", "doctor_json",
]

#: Mark of a check that passed.
OK = "\N{CHECK MARK}"

#: Mark of a check that failed.
FAILED = "\N{BALLOT X}"

#: Where the node agent listens (see ``flocker-node agent``): defined once,
#: in the bridge.
from .._bridge import DEFAULT_AGENT_SOCKET  # noqa: E402
from .._text import one_line  # noqa: E402

#: The sshd configuration read by ``sshd -T`` unless told otherwise.
DEFAULT_SSHD_CONFIG = "/etc/ssh/sshd_config"

#: Below this many free bytes in the pool a deploy may fail to receive a
#: volume: blocking.
MINIMUM_FREE = 256 * 1024 * 1024

# Seconds to wait for any one probe.
_TIMEOUT = 15

# Flocker's snapshot names carry the UTC time they were taken.
_SNAPSHOT_TIME = re.compile(r"\Aflocker-(\d{8}T\d{6})")


@attr.s(frozen=True, slots=True)
class Check(object):
    """
    The outcome of one check.

    :ivar str name: What was checked (``docker``, ``zfs pool``...).
    :ivar bool ok: Whether it passed.
    :ivar str detail: What was found, one line.
    :ivar fix: How to fix a failure, one line, or ``None``.
    :ivar bool blocking: A failure stops deploys.
    """
    name = attr.ib()
    ok = attr.ib()
    detail = attr.ib()
    fix = attr.ib(default=None)
    blocking = attr.ib(default=True)

    def line(self):
        """
        :return: The check as one line (no newline).
        """
        text = "%s %s: %s" % (OK if self.ok else FAILED, self.name,
                              one_line(self.detail))
        if not self.ok and self.fix:
            text += " -- fix: " + one_line(self.fix)
        if not self.ok and not self.blocking:
            text += " (does not block deploys)"
        return text


@attr.s(frozen=True, slots=True)
class DoctorReport(object):
    """
    Every check of one node.

    :ivar checks: ``PVector`` of :class:`Check`, in the order run.
    :ivar float time: The node's clock (POSIX seconds) when it checked.
    """
    checks = attr.ib(converter=pvector)
    time = attr.ib()

    @property
    def ok(self):
        """
        ``True`` unless a blocking check failed.
        """
        return all(check.ok or not check.blocking for check in self.checks)

    def failures(self):
        """
        :return: The checks that failed, blocking ones first.
        """
        return sorted((c for c in self.checks if not c.ok),
                      key=lambda c: not c.blocking)


def render(report):
    """
    :param DoctorReport report: A node's checks.
    :return: The text ``flocker-node doctor`` prints: one line per check.
    """
    return "".join(check.line() + "\n" for check in report.checks)


def report_to_dict(report):
    """
    :return: A JSON-compatible ``dict`` of ``report`` (the wire format).
    """
    return {"time": report.time,
            "checks": [attr.asdict(check) for check in report.checks]}


def report_from_dict(document):
    """
    :param dict document: What :func:`report_to_dict` gave.
    :return: The :class:`DoctorReport`.
    :raises ValueError: If it is not one.
    """
    try:
        checks = []
        for item in document["checks"]:
            check = Check(name=item["name"], ok=item["ok"],
                          detail=item["detail"], fix=item.get("fix"),
                          blocking=item.get("blocking", True))
            if not (isinstance(check.name, str) and isinstance(check.ok, bool)
                    and isinstance(check.detail, str)
                    and isinstance(check.blocking, bool)
                    and (check.fix is None or isinstance(check.fix, str))):
                raise ValueError(item)
            checks.append(check)
        when = document["time"]
        if not isinstance(when, (int, float)):
            raise ValueError(when)
    except (KeyError, TypeError) as e:
        raise ValueError("not a doctor report: %s" % (e,))
    return DoctorReport(checks=checks, time=float(when))


@attr.s(frozen=True)
class NodeProbes(object):
    """
    What the checks look at on a node.

    :ivar docker: ``IDockerClient`` provider of the node's daemon.
    :ivar str docker_socket: Its socket, for messages.
    :ivar pool: The node's :class:`~flocker.volume._zfs.ZFSPool`.
    :ivar run: ``argv -> Deferred`` firing with ``(exit code, stdout
        bytes, stderr bytes)``, or failing with ``OSError`` when the
        program is missing.
    :ivar str agent_socket: Where the agent should listen.
    :ivar connect: ``path -> Deferred`` firing once a Unix socket accepted
        a connection (and closing it).
    :ivar node_keys: The node's ``NodeKeyStore``, or ``None``.
    :ivar str sshd_config: The sshd configuration file to check.
    :ivar exists: ``path -> bool``.
    :ivar sudo_rules: ``() -> str``: the text of the sudoers files that
        could hold a rule for Flocker.
    :ivar clock: ``IReactorTime`` (its ``seconds()`` is the node's time).
    """
    docker = attr.ib()
    docker_socket = attr.ib()
    pool = attr.ib()
    run = attr.ib()
    agent_socket = attr.ib()
    connect = attr.ib()
    node_keys = attr.ib()
    sshd_config = attr.ib()
    exists = attr.ib(default=os.path.exists)
    sudo_rules = attr.ib(default=None)
    clock = attr.ib(default=None)


@inlineCallbacks
def _check_docker(probes):
    from ._docker import DockerError
    where = "unix://%s" % (probes.docker_socket,)
    try:
        version = yield probes.docker.api_version()
    except DockerError as e:
        reason = getattr(e, "reason", str(e))
        if "upgrade Flocker" in reason:
            fix = "install a Flocker release that speaks this Docker"
        elif "upgrade Docker" in reason:
            fix = "upgrade Docker to 20.10 or newer"
        else:
            fix = ("install Docker (apt install docker.io) and start it "
                   "(systemctl enable --now docker), or name its socket "
                   "with --docker-socket")
        return Check("docker", False, "%s: %s" % (where, reason), fix)
    return Check("docker", True,
                 "%s answers, Engine API %s" % (where, version))


@inlineCallbacks
def _check_pool(probes):
    from ..volume import PoolMissing, ZFSError, ZFSUnavailable
    name = probes.pool.name
    try:
        yield probes.pool.check()
    except PoolMissing:
        return [Check(
            "zfs pool", False, "ZFS pool %s does not exist" % (name,),
            "create it (zpool create %s DEVICE) or name another with "
            "--pool" % (name,))]
    except ZFSUnavailable as e:
        return [Check("zfs pool", False, "ZFS is not available: %s" % (
            e.message,), "install zfsutils-linux (or zfs-fuse) and load "
            "the zfs module (modprobe zfs)")]
    except (ZFSError, OSError) as e:
        return [Check("zfs pool", False, "zpool failed: %s" % (e,),
                      "install zfsutils-linux (or zfs-fuse)")]
    checks = [Check("zfs pool", True, "ZFS pool %s exists" % (name,))]
    try:
        capabilities = yield probes.pool.capabilities()
        available = yield probes.pool.available()
    except (ZFSError, OSError) as e:
        checks.append(Check("zfs features", False, str(e),
                            "check the pool with zpool status %s" % (name,)))
        return checks
    checks.append(Check("zfs features", True, _describe(capabilities)))
    free = "%.1f GiB free in %s" % (available / 2.0 ** 30, name)
    if available < MINIMUM_FREE:
        checks.append(Check(
            "zfs space", False, free, "free space in the pool (zfs destroy "
            "snapshots or volumes Flocker no longer needs) or add a device "
            "(zpool add %s DEVICE)" % (name,)))
    else:
        checks.append(Check("zfs space", True, free))
    return checks


def _describe(capabilities):
    if capabilities.version:
        kind = "OpenZFS %s" % (capabilities.version,)
        if capabilities.kernel_version:
            kind += " (module %s)" % (capabilities.kernel_version,)
    else:
        kind = capabilities.implementation
    offers = []
    if capabilities.resumable_receive:
        offers.append("resumable receive")
    flags = "".join(f for f in "cLe" if f in capabilities.send_flags)
    if flags:
        offers.append("send -" + flags)
    if capabilities.receive_excludes:
        offers.append("receive -x/-o")
    if capabilities.holds:
        offers.append("holds")
    if capabilities.bookmarks:
        offers.append("bookmarks")
    return "%s: %s" % (kind, ", ".join(offers) or "plain streams only")


@inlineCallbacks
def _check_iptables(probes):
    checks = []
    for name, argv, fix in [
            ("iptables", ["iptables", "-w", "-t", "nat", "-S", "OUTPUT"],
             "install iptables (apt install iptables) and run Flocker as "
             "root"),
            ("conntrack", ["iptables", "-w", "-m", "conntrack", "-h"],
             "install iptables with its conntrack match and load "
             "nf_conntrack (modprobe nf_conntrack)")]:
        try:
            code, out, err = yield probes.run(argv)
        except OSError as e:
            checks.append(Check(name, False, "%s: %s" % (argv[0], e), fix))
            continue
        if code != 0:
            checks.append(Check(name, False, "%s failed: %s" % (
                " ".join(argv), _last(err) or "exit %d" % (code,)), fix))
        else:
            checks.append(Check(name, True, "%s works" % (" ".join(argv),)))
    return checks


def _last(data):
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


def parse_sshd_settings(text):
    """
    :param str text: ``sshd -T`` output: one ``keyword value`` per line,
        keywords in lower case.
    :return: ``dict`` of keyword to value (the first of repeated ones).
    """
    settings = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and key not in settings:
            settings[key.lower()] = value.strip()
    return settings


def sshd_check(settings, sudo_rules):
    """
    Judge sshd's effective settings against what the deploy client needs:
    public-key logins as root (or a sudo rule letting the login user run
    Flocker's node commands), and forwarding of Unix sockets to the node
    (``direct-streamlocal``: the channel to the agent).

    :param dict settings: From :func:`parse_sshd_settings`.
    :param str sudo_rules: Text of the sudoers files.
    :return: A :class:`Check`.
    """
    problems = []
    fixes = []
    if settings.get("pubkeyauthentication", "yes") != "yes":
        problems.append("PubkeyAuthentication is off")
        fixes.append("PubkeyAuthentication yes")
    root = settings.get("permitrootlogin", "prohibit-password")
    sudo = bool(re.search(r"NOPASSWD:.*flocker-node", sudo_rules or ""))
    if root not in ("yes", "prohibit-password", "without-password") \
            and not sudo:
        problems.append("PermitRootLogin is %s and no sudo rule allows "
                        "flocker-node" % (root,))
        fixes.append("PermitRootLogin prohibit-password (or a sudoers rule "
                     "'USER ALL=(root) NOPASSWD: /usr/bin/flocker-node')")
    streamlocal = settings.get("allowstreamlocalforwarding", "yes")
    if settings.get("disableforwarding", "no") == "yes":
        problems.append("DisableForwarding is on")
        fixes.append("DisableForwarding no")
    elif streamlocal not in ("yes", "all", "local"):
        problems.append("AllowStreamLocalForwarding is %s" % (streamlocal,))
        fixes.append("AllowStreamLocalForwarding local")
    if problems:
        return Check("sshd", False, "; ".join(problems),
                     "set %s in sshd_config and reload sshd" % (
                         ", ".join(fixes),))
    return Check("sshd", True, "root login by key%s, streamlocal forwarding "
                 "%s" % (" (or sudo)" if sudo else "", streamlocal))


@inlineCallbacks
def _check_sshd(probes):
    argv = ["sshd", "-T", "-f", probes.sshd_config]
    fix = "install openssh-server (apt install openssh-server)"
    try:
        code, out, err = yield probes.run(argv)
    except OSError as e:
        return Check("sshd", False, "sshd: %s" % (e,), fix)
    if code != 0:
        return Check("sshd", False, "sshd -T failed: %s" % (
            _last(err) or "exit %d" % (code,)), fix + "; check " +
            probes.sshd_config)
    rules = probes.sudo_rules() if probes.sudo_rules is not None else ""
    return sshd_check(parse_sshd_settings(out.decode("utf-8", "replace")),
                      rules)


@inlineCallbacks
def _check_agent(probes):
    path = probes.agent_socket
    fix = ("start the agent (systemctl enable --now flocker-node, or "
           "flocker-node agent)")
    if not probes.exists(path):
        # Deploys still run flocker-node per call until the agent is the
        # only way in: not blocking yet.
        return Check("agent", False, "no agent socket at %s" % (path,), fix,
                     blocking=False)
    try:
        yield probes.connect(path)
    except Exception as e:
        return Check("agent", False, "%s does not accept connections: %s" % (
            path, one_line(str(e)) or e.__class__.__name__), fix,
            blocking=False)
    return Check("agent", True, "%s accepts connections" % (path,))


def _check_node_key(probes):
    if probes.node_keys is None:
        return Check("node key", False, "this node keeps no node key",
                     "run flocker-node with a home directory", False)
    status = probes.node_keys.status()
    if status is None:
        return Check("node key", False, "this node has no usable key pair "
                     "in %s" % (probes.node_keys.directory,),
                     "restart flocker-node (its agent makes the key)", False)
    if status.installed is None:
        return Check("node key", False, "own key %s; the other nodes' keys "
                     "are not installed" % (status.fingerprint,),
                     "the next flocker-deploy installs them", False)
    return Check("node key", True, "own key %s; the other nodes' keys "
                 "installed" % (status.fingerprint,))


@inlineCallbacks
def _check_clock(probes, now):
    from ..volume import ZFSError
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    try:
        datasets = yield probes.pool.list()
    except (ZFSError, OSError):
        datasets = []
    newest = None
    for dataset in datasets:
        for snapshot in dataset.snapshots:
            match = _SNAPSHOT_TIME.match(snapshot)
            if match:
                taken = calendar.timegm(time.strptime(match.group(1),
                                                      "%Y%m%dT%H%M%S"))
                newest = taken if newest is None else max(newest, taken)
    if newest is not None and newest > now + 60:
        return Check(
            "clock", False, "%s is before the newest snapshot (%s): the "
            "clock went back" % (stamp, time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(newest))),
            "set the clock right and keep it so (timedatectl set-ntp true)")
    return Check("clock", True, "%s, not before any of Flocker's "
                 "snapshots" % (stamp,))


def _with_timeout(clock, d, seconds):
    timer = clock.callLater(seconds, d.cancel)

    def done(result):
        if timer.active():
            timer.cancel()
        return result
    return d.addBoth(done)


@inlineCallbacks
def run_checks(probes):
    """
    Run every check.

    :param NodeProbes probes: What to look at.
    :return: ``Deferred`` firing with a :class:`DoctorReport` (never
        failing: a probe's failure is a failed check).
    """
    now = probes.clock.seconds()
    checks = []

    def bounded(d, name):
        def timed_out(failure):
            failure.trap(CancelledError)
            return Check(name, False, "no answer within %d seconds" % (
                _TIMEOUT,), "look at what %s is waiting for" % (name,))
        return _with_timeout(probes.clock, d, _TIMEOUT).addErrback(
            timed_out)
    checks.append((yield bounded(_check_docker(probes), "docker")))
    pool = yield bounded(_check_pool(probes), "zfs pool")
    checks.extend(pool if isinstance(pool, list) else [pool])
    routes = yield bounded(_check_iptables(probes), "iptables")
    checks.extend(routes if isinstance(routes, list) else [routes])
    checks.append((yield bounded(_check_sshd(probes), "sshd")))
    checks.append((yield bounded(_check_agent(probes), "agent")))
    checks.append(_check_node_key(probes))
    checks.append((yield bounded(_check_clock(probes, now), "clock")))
    return DoctorReport(checks=checks, time=now)


class _Closing(Protocol):
    def connectionMade(self):
        self.transport.loseConnection()


def connect_unix(reactor):
    """
    :return: A :attr:`NodeProbes.connect` for ``reactor``.
    """
    def connect(path):
        return connectProtocol(UNIXClientEndpoint(reactor, path, timeout=5),
                               _Closing())
    return connect


def run_argv(reactor, env):
    """
    :return: A :attr:`NodeProbes.run` running commands through ``reactor``
        with ``env``.
    """
    from .._process import spawn

    def run(argv):
        try:
            _, collector = spawn(reactor, argv, env)
        except OSError as e:
            # The program is not there (or not executable).
            return fail(OSError("%s: %s" % (argv[0], e.strerror)))
        return collector.ended.addCallback(
            lambda result: (result.exit_code, result.stdout, result.stderr))
    return run


def read_sudo_rules(directories=("/etc/sudoers.d",), files=("/etc/sudoers",)):
    """
    :return: A :attr:`NodeProbes.sudo_rules` reading the sudoers files.
    """
    def rules():
        texts = []
        paths = list(files)
        for directory in directories:
            try:
                paths += [os.path.join(directory, name)
                          for name in sorted(os.listdir(directory))]
            except OSError:
                continue
        for path in paths:
            try:
                with open(path) as f:
                    texts.append(f.read())
            except OSError:
                continue
        return "\n".join(texts)
    return rules


def doctor_json(report):
    """
    :return: ``report`` as one JSON line (what ``doctor --json`` prints).
    """
    return json.dumps(report_to_dict(report), sort_keys=True) + "\n"
