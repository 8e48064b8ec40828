"""
The node side of Flocker: the node agent interface and the agent that acts
on this node (:class:`LocalNodeAgent`), and the deploy lock.

What only the deploy client uses, though it lives in this package (the
configuration files, the planner and its state changes, the in-memory
agents), is re-exported by :mod:`flocker.cli`, not here: every
``flocker-node`` process imports this package, and the configuration
parser alone (PyYAML, the positioned loader, the compose reader) cost each
node agent megabytes it never uses.  The Docker client
(:mod:`flocker.node._docker`: ``DockerClient``, ``FakeDockerClient``,
``IDockerClient`` and its errors) is not re-exported either: the deploy
client never needs treq and twisted.web.
"""

from ._agent import INodeAgent
from ._local import LocalNodeAgent, link_environment
from ._lock import DeployLock, LockHeld

__all__ = [
    "INodeAgent", "LocalNodeAgent", "link_environment", "DeployLock",
    "LockHeld",
]
