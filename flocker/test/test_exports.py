"""
Every package's public names are the objects of its private modules.
"""

import importlib

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import cases, with_cases

PACKAGES = ["flocker", "flocker.node", "flocker.cli", "flocker.cli._ssh",
            "flocker.volume", "flocker.route", "flocker.etcd"]


@with_cases
class ExportTests(SynchronousTestCase):
    """
    Each package's ``__all__`` names objects of its private modules.
    """

    @cases([(name,) for name in PACKAGES], ids=PACKAGES)
    def test_exports(self, name):
        """
        Each name in a package's ``__all__`` exists, and (but for the
        version) is defined in one of the package's private modules.
        """
        package = importlib.import_module(name)
        self.assertTrue(package.__all__)
        for exported in package.__all__:
            value = getattr(package, exported)
            if exported == "__version__":
                continue
            module = getattr(value, "__module__", None)
            if module is not None:
                self.assertTrue(module.startswith(name + "."),
                                (exported, module))
                self.assertTrue(module.split(".")[-1].startswith("_"),
                                (exported, module))
