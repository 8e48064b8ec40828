"""
Flocker runs Docker containers across several machines from two YAML files,
routes traffic to them from any machine, and moves each container's ZFS volume
with it when the container moves.

This package holds only the version: importing it costs nothing, so each
command imports just the modules it needs.  The models are in
:mod:`flocker._model` (re-exported by the packages that use them), the node
side, volumes, routes and the deploy client in their packages
(``flocker.node``, ``flocker.volume``, ``flocker.route``, ``flocker.cli``).
"""

#: The one place Flocker's version is written; packaging and every command's
#: ``--version`` read it from here.
__version__ = "0.1.0"

__all__ = ["__version__"]
