"""
In-memory probes for ``flocker-node doctor``'s checks
(:class:`flocker.node._doctor.NodeProbes`): a healthy node by default, and
each part can be made missing or broken.
"""

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock

from ...volume._zfs import Dataset
from ...volume.test.test_capabilities import FUSE
from .._docker import FakeDockerClient
from .._doctor import NodeProbes

__all__ = ["FakePool", "FakeCommands", "healthy_probes", "SSHD_DEFAULTS"]

#: What ``sshd -T`` prints on Debian 12 with its packaged configuration
#: (the lines the checks read, among others).
SSHD_DEFAULTS = """\
port 22
addressfamily any
listenaddress [::]:22
listenaddress 0.0.0.0:22
usepam yes
permitrootlogin without-password
pubkeyauthentication yes
passwordauthentication yes
allowtcpforwarding yes
allowstreamlocalforwarding yes
disableforwarding no
x11forwarding yes
subsystem sftp /usr/lib/openssh/sftp-server
"""


class FakePool(object):
    """
    The parts of :class:`~flocker.volume._zfs.ZFSPool` the checks use.

    :ivar missing: ``None``, or the exception class (``PoolMissing``,
        ``ZFSUnavailable``) every call fails with.
    """

    def __init__(self, name="flocker", free=10 * 2 ** 30, missing=None,
                 capabilities=FUSE, snapshots=()):
        self.name = name
        self.free = free
        self.missing = missing
        self._capabilities = capabilities
        self.snapshots = list(snapshots)

    def _answer(self, value):
        if self.missing is not None:
            return fail(self.missing("ZFS pool %s does not exist" % (
                self.name,)))
        return succeed(value)

    def check(self):
        return self._answer(None)

    def capabilities(self):
        return self._answer(self._capabilities)

    def available(self):
        return self._answer(self.free)

    def list(self):
        return self._answer([Dataset(name="app", properties={},
                                     snapshots=self.snapshots)])


class FakeCommands(object):
    """
    :attr:`NodeProbes.run`: answers by program name.

    :ivar answers: ``dict`` of program name to ``(exit, stdout, stderr)``;
        a program not in it is missing (``OSError``).
    :ivar calls: ``list`` of the argument vectors run.
    """

    def __init__(self, answers=None):
        self.answers = {
            "iptables": (0, b"-P OUTPUT ACCEPT\n", b""),
            "sshd": (0, SSHD_DEFAULTS.encode("ascii"), b""),
        } if answers is None else answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        if argv[0] not in self.answers:
            return fail(OSError("%s: No such file or directory" % (
                argv[0],)))
        return succeed(self.answers[argv[0]])


def healthy_probes(**changes):
    """
    :param changes: :class:`NodeProbes` fields to replace.
    :return: Probes of a node where every check passes (but the node key,
        which none is installed).
    """
    clock = Clock()
    clock.advance(1796547600)
    fields = dict(
        docker=FakeDockerClient(), docker_socket="/var/run/docker.sock",
        pool=FakePool(), run=FakeCommands(),
        agent_socket="/run/flocker/agent.sock",
        connect=lambda path: succeed(None), node_keys=None,
        sshd_config="/etc/ssh/sshd_config",
        exists=lambda path: True, sudo_rules=lambda: "", clock=clock)
    fields.update(changes)
    return NodeProbes(**fields)

