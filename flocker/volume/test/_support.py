"""
Test support for the volume package: running ``flocker-volume`` for another
"node" on this machine, where each node is just a different pool.
"""

import sys

from .._service import check_address

__all__ = ["LocalRemote"]

# What ssh prints and returns when it cannot connect.
_UNREACHABLE = ("import sys; sys.stderr.write('ssh: connect to host %s "
                "port 22: Connection refused\\n'); sys.exit(255)")


class LocalRemote(object):
    """
    Stands in for ``SSHRemote``: runs ``python -m flocker.volume.script
    --pool POOL ...`` locally for the pool registered for an address.

    :ivar pools: ``dict`` of address to pool name.
    :ivar failing: ``set`` of ``(address, command)`` pairs that fail the
        way ssh does when it cannot connect (exit code 255); ``command`` is
        the ``flocker-volume`` subcommand, or ``"zfs"`` for a direct push.
    :ivar cut: ``dict`` of address to a byte count after which the
        connection carrying a ``receive`` is cut (both ends see it die).
    """

    def __init__(self, pools, python=sys.executable):
        self.pools = dict(pools)
        self.failing = set()
        self.cut = {}
        self._python = python

    def argv(self, address, arguments, command=None):
        check_address(address)
        if command is not None:
            key, argv = command[0], list(command) + list(arguments)
        else:
            key = arguments[0]
            argv = [self._python, "-m", "flocker.volume.script",
                    "--pool", self.pools.get(address, "-")] + list(arguments)
        if address not in self.pools or (address, key) in self.failing:
            return [self._python, "-c", _UNREACHABLE % (address,)]
        if "receive" in arguments and address in self.cut:
            argv = [self._python, "-m", "flocker.volume.test._cut",
                    str(self.cut[address]), "--"] + argv
        return argv
