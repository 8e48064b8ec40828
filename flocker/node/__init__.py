"""
The node side of Flocker and what the deploy client shares with it: the
configuration files, the planner and its state changes, the node agent
interface and its implementations (local, in-memory), and the Docker client.
"""

from ._agent import INodeAgent
from ._changes import (
    CreateVolume, HandoffVolume, PushVolume, SetRoutes, StartApplication,
    StopApplication,
)
from ._config import (
    ConfigurationError, ConfigurationErrors, deployment_to_yaml,
    load_configuration, parse_configuration,
)
from ._docker import (
    AlreadyExists, ContainerNotFound, DockerAPIError, DockerClient,
    DockerError, DockerUnavailable, FakeDockerClient, IDockerClient,
    ImageNotFound, Unit,
)
from ._fake import FakeCluster, FakeNodeAgent
from ._local import LocalNodeAgent, link_environment
from ._lock import DeployLock, LockHeld
from ._plan import PHASES, plan_changes, skipped_applications

__all__ = [
    "INodeAgent", "LocalNodeAgent", "FakeCluster", "FakeNodeAgent",
    "link_environment", "DeployLock", "LockHeld",
    "CreateVolume", "HandoffVolume", "PushVolume", "SetRoutes",
    "StartApplication", "StopApplication",
    "ConfigurationError", "ConfigurationErrors", "deployment_to_yaml",
    "load_configuration", "parse_configuration",
    "IDockerClient", "DockerClient", "FakeDockerClient", "Unit",
    "DockerError", "DockerUnavailable", "DockerAPIError", "ImageNotFound",
    "AlreadyExists", "ContainerNotFound",
    "PHASES", "plan_changes", "skipped_applications",
]
