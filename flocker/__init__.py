"""
Flocker runs Docker containers across several machines from two YAML files,
routes traffic to them from any machine, and moves each container's ZFS volume
with it when the container moves.
"""

#: The one place Flocker's version is written; packaging and every command's
#: ``--version`` read it from here.
__version__ = "0.1.0"

__all__ = ["__version__"]
