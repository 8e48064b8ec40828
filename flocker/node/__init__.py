"""
The node side of Flocker and what the deploy client shares with it: the
configuration files, the planner and its state changes, the node agent
interface and its implementations (local, in-memory), and the Docker client.
"""

import importlib

# Where each public name lives.  Names are imported when first used
# (PEP 562), so ``flocker-node`` commands and ``flocker-deploy --check`` load
# only the modules they need: the Docker client alone pulls in treq and
# twisted.web, a second of start-up on a busy node.
_LOCATIONS = {
    "INodeAgent": "_agent",
    "CreateVolume": "_changes",
    "HandoffVolume": "_changes",
    "InstallNodeKey": "_changes",
    "PushVolume": "_changes",
    "SetRoutes": "_changes",
    "StartApplication": "_changes",
    "StopApplication": "_changes",
    "ConfigurationError": "_config",
    "ConfigurationErrors": "_config",
    "deployment_to_yaml": "_config",
    "load_configuration": "_config",
    "parse_configuration": "_config",
    "AlreadyExists": "_docker",
    "ContainerNotFound": "_docker",
    "DockerAPIError": "_docker",
    "DockerClient": "_docker",
    "DockerError": "_docker",
    "DockerUnavailable": "_docker",
    "FakeDockerClient": "_docker",
    "IDockerClient": "_docker",
    "ImageNotFound": "_docker",
    "Unit": "_docker",
    "FakeCluster": "_fake",
    "FakeNodeAgent": "_fake",
    "LocalNodeAgent": "_local",
    "link_environment": "_local",
    "DeployLock": "_lock",
    "LockHeld": "_lock",
    "PHASES": "_plan",
    "KEY_PHASE": "_plan",
    "plan_changes": "_plan",
    "skipped_applications": "_plan",
}


def __getattr__(name):
    try:
        module = _LOCATIONS[name]
    except KeyError:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LOCATIONS))


__all__ = [
    "INodeAgent", "LocalNodeAgent", "FakeCluster", "FakeNodeAgent",
    "link_environment", "DeployLock", "LockHeld",
    "CreateVolume", "HandoffVolume", "InstallNodeKey", "PushVolume",
    "SetRoutes", "StartApplication", "StopApplication",
    "ConfigurationError", "ConfigurationErrors", "deployment_to_yaml",
    "load_configuration", "parse_configuration",
    "IDockerClient", "DockerClient", "FakeDockerClient", "Unit",
    "DockerError", "DockerUnavailable", "DockerAPIError", "ImageNotFound",
    "AlreadyExists", "ContainerNotFound",
    "PHASES", "KEY_PHASE", "plan_changes", "skipped_applications",
]
