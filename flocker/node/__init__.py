"""
The node side of Flocker and what the deploy client shares with it: the
configuration files, the planner and its state changes, the node agent
interface and its implementations (local, in-memory).

The Docker client (:mod:`flocker.node._docker`: ``DockerClient``,
``FakeDockerClient``, ``IDockerClient`` and its errors) is not re-exported
here: it loads treq and twisted.web, which the deploy client never needs.
"""

from ._agent import INodeAgent
from ._changes import (
    CreateVolume, HandoffVolume, InstallNodeKey, PushVolume, SetLinks,
    SetRoutes, StartApplication, StopApplication,
)
from ._config import (
    ConfigurationError, ConfigurationErrors, deployment_to_yaml,
    load_configuration, parse_configuration,
)
from ._fake import FakeCluster, FakeNodeAgent
from ._local import LocalNodeAgent, link_environment
from ._lock import DeployLock, LockHeld
from ._plan import KEY_PHASE, PHASES, plan_changes, skipped_applications

__all__ = [
    "INodeAgent", "LocalNodeAgent", "FakeCluster", "FakeNodeAgent",
    "link_environment", "DeployLock", "LockHeld",
    "CreateVolume", "HandoffVolume", "InstallNodeKey", "PushVolume",
    "SetLinks", "SetRoutes", "StartApplication", "StopApplication",
    "ConfigurationError", "ConfigurationErrors", "deployment_to_yaml",
    "load_configuration", "parse_configuration",
    "PHASES", "KEY_PHASE", "plan_changes", "skipped_applications",
]
