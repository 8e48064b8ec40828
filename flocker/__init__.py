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

from ._change import (  # noqa: E402 (the version first: _change's users)
    ChangeFailures, IChangeObserver, IStateChange, ITransfer, InParallel,
    Sequentially, in_parallel, leaves, render_plan, run_state_change,
    sequentially,
)
from ._model import (  # noqa: E402
    Application, AttachedVolume, ClusterState, Deployment, InvalidModel,
    Link, Node, NodeState, Port, RestartPolicy, Route, Standby, VolumeState,
)

__all__ = [
    "__version__",
    "Application", "AttachedVolume", "ClusterState", "Deployment",
    "InvalidModel", "Link", "Node", "NodeState", "Port", "RestartPolicy",
    "Route", "Standby", "VolumeState",
    "ChangeFailures", "IChangeObserver", "IStateChange", "ITransfer",
    "InParallel",
    "Sequentially", "in_parallel", "leaves", "render_plan",
    "run_state_change", "sequentially",
]
