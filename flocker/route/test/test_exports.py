"""
Tests for ``flocker.route``'s public names.
"""

from twisted.trial.unittest import SynchronousTestCase

import flocker.route
from flocker.route import _interface, _iptables, _memory, _process


class ExportTests(SynchronousTestCase):
    """
    ``flocker.route.__all__`` re-exports the private modules' objects.
    """

    def test_exports(self):
        """
        Every name in ``__all__`` is the object defined in its private
        module, and each private module's public API is exported.
        """
        modules = [_interface, _iptables, _memory, _process]
        for name in flocker.route.__all__:
            homes = [module for module in modules
                     if getattr(module, name, None) is getattr(
                         flocker.route, name)]
            self.assertTrue(homes, name)
        for name in ("IRouteManager", "IPTablesRouteManager",
                     "MemoryRouteManager", "ProcessRunner", "CommandFailed",
                     "PortInUse", "InvalidRoute"):
            self.assertIn(name, flocker.route.__all__)
