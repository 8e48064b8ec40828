"""
Every package's public names are the objects of its private modules.
"""

import importlib

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import cases, with_cases

PACKAGES = ["flocker", "flocker.node", "flocker.cli", "flocker._ssh",
            "flocker.volume", "flocker.route", "flocker.etcd"]

#: Other packages whose names a package's public face includes: the deploy
#: client's SSH runner is flocker._ssh's, shared with the nodes, and the
#: deploy side of flocker.node (configuration, planner, state changes,
#: in-memory agents) is re-exported by flocker.cli, not by flocker.node,
#: which every node process imports.
SHARED = {"flocker.cli": ("flocker._ssh", "flocker.node")}


@with_cases
class ExportTests(SynchronousTestCase):
    """
    Each package's ``__all__`` names objects of its private modules.
    """

    @cases([(name,) for name in PACKAGES], ids=PACKAGES)
    def test_exports(self, name):
        """
        Each name in a package's ``__all__`` exists, and (but for the
        version) is defined in one of the package's private modules (or
        of a private package its face includes, :data:`SHARED`).
        """
        package = importlib.import_module(name)
        self.assertTrue(package.__all__)
        for exported in package.__all__:
            value = getattr(package, exported)
            if exported == "__version__":
                continue
            module = getattr(value, "__module__", None)
            if module is not None:
                homes = (name,) + SHARED.get(name, ())
                self.assertTrue(module.startswith(
                    tuple(home + "." for home in homes)), (exported, module))
                self.assertTrue(module.split(".")[-1].startswith("_"),
                                (exported, module))
