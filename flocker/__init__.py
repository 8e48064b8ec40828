"""
Flocker runs Docker containers across several machines from two YAML files,
routes traffic to them from any machine, and moves each container's ZFS volume
with it when the container moves.

The models and the state-change combinators are importable from here; the
node side, volumes, routes and the deploy client live in their packages
(``flocker.node``, ``flocker.volume``, ``flocker.route``, ``flocker.cli``).
"""

#: The one place Flocker's version is written; packaging and every command's
#: ``--version`` read it from here.
__version__ = "0.1.0"

# The names below are imported when first used, not with the package: the
# node-side console scripts (``flocker._warm``) live in this package and
# must start without importing Twisted and pyrsistent.
_LAZY = {
    "._change": (
        "ChangeFailures", "IChangeObserver", "IStateChange", "ITransfer",
        "InParallel", "Sequentially", "in_parallel", "leaves", "render_plan",
        "run_state_change", "sequentially"),
    "._model": (
        "Application", "AttachedVolume", "ClusterState", "Deployment",
        "InvalidModel", "Link", "Node", "NodeState", "Port", "RestartPolicy",
        "Route", "VolumeState"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name):
    """
    Import a re-exported name on first use (PEP 562).

    :raises AttributeError: For a name this package does not export.
    """
    if name not in _WHERE:
        raise AttributeError("module %r has no attribute %r" % (
            __name__, name))
    from importlib import import_module
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "__version__",
    "Application", "AttachedVolume", "ClusterState", "Deployment",
    "InvalidModel", "Link", "Node", "NodeState", "Port", "RestartPolicy",
    "Route", "VolumeState",
    "ChangeFailures", "IChangeObserver", "IStateChange", "ITransfer",
    "InParallel",
    "Sequentially", "in_parallel", "leaves", "render_plan",
    "run_state_change", "sequentially",
]
