"""
The deploy client: reach every node over SSH, gather their reports, plan,
and converge the cluster.  Other Twisted programs call
:func:`deploy_over_ssh` (real nodes) or :func:`deploy` (any node agents).
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
]
