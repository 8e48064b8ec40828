"""
The deploy client: reach every node over SSH, gather their reports, plan,
and converge the cluster.  Other Twisted programs call
:func:`deploy_over_ssh` (real nodes) or :func:`deploy` (any node agents).

Also the deploy side's public face of :mod:`flocker.node`'s private modules
(which node agents never import): the configuration files
(:func:`load_configuration`, :func:`parse_configuration`,
:func:`deployment_to_yaml` and their errors), the planner
(:func:`plan_changes`) and its state changes, and the in-memory agents
(:class:`FakeCluster`).
"""

from ._channel import AgentUnavailable, ssh_agent_connector
from ._cluster import (
    agent_connections, deploy_over_ssh, remote_agents, resolve_addresses,
)
from ._deploy import (
    DeployResult, LineObserver, deploy, format_summary, gather_states,
)
from ._nodekey import desired_node_key, nodes_known_hosts, nodes_peers
from ._rotate import RotationResult, rotate_node_keys
from ._progress import TerminalProgress, is_live_terminal
from ._remote import AgentConnections, NodeStepFailed, RemoteNodeAgent
from ..node._changes import (
    CreateVolume, HandoffVolume, InstallNodeKey, PushVolume, SetLinks,
    SetRoutes, StartApplication, StopApplication,
)
from ..node._config import (
    ConfigurationError, ConfigurationErrors, deployment_to_yaml,
    load_configuration, parse_configuration,
)
from ..node._fake import FakeCluster, FakeNodeAgent
from ..node._plan import KEY_PHASE, PHASES, plan_changes, skipped_applications
from .._ssh import (
    AuthenticationFailed, HostKeyError, ICommandRunner, MemoryCommandRunner,
    NodeUnreachable, RemoteCommandFailed, SSHCommandRunner,
    SSHConfigurationError, ssh_command_runner,
)

__all__ = [
    "deploy_over_ssh", "remote_agents", "resolve_addresses",
    "agent_connections", "AgentConnections", "AgentUnavailable",
    "ssh_agent_connector",
    "DeployResult", "LineObserver", "deploy", "format_summary",
    "gather_states", "NodeStepFailed", "RemoteNodeAgent",
    "TerminalProgress", "is_live_terminal",
    "ICommandRunner", "SSHCommandRunner", "MemoryCommandRunner",
    "ssh_command_runner", "RemoteCommandFailed", "NodeUnreachable",
    "AuthenticationFailed", "HostKeyError", "SSHConfigurationError",
    "desired_node_key", "nodes_known_hosts", "nodes_peers",
    "RotationResult", "rotate_node_keys",
    "ConfigurationError", "ConfigurationErrors", "deployment_to_yaml",
    "load_configuration", "parse_configuration",
    "FakeCluster", "FakeNodeAgent",
    "PHASES", "KEY_PHASE", "plan_changes", "skipped_applications",
    "CreateVolume", "HandoffVolume", "InstallNodeKey", "PushVolume",
    "SetLinks", "SetRoutes", "StartApplication", "StopApplication",
]
