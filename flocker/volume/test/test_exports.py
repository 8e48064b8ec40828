"""
The public names of ``flocker.volume`` are the objects from its private
modules.
"""

from twisted.trial.unittest import SynchronousTestCase

import flocker.volume
from flocker.volume import (
    _api, _errors, _forced, _memory, _nodekey, _remote, _seed, _service,
    _zfs,
)


class ExportTests(SynchronousTestCase):
    """
    ``flocker.volume.__all__`` re-exports the private modules' objects.
    """

    def test_exports(self):
        """
        Each name in ``__all__`` exists and is defined in a private module.
        """
        for name in flocker.volume.__all__:
            value = getattr(flocker.volume, name)
            homes = [module for module in (_api, _errors, _forced, _memory,
                                           _nodekey, _remote, _seed, _service,
                                           _zfs)
                     if getattr(module, name, None) is value]
            self.assertTrue(homes, name)
            self.assertTrue(
                value.__module__.startswith("flocker.volume._"), name)
