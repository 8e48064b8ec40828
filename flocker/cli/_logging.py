"""
eliot action and message types of the deploy client (``flocker.cli``).

Fields log names, sizes and identifiers, never whole payloads: a command's
standard input (an application's JSON, a route table) is logged by size only.
"""

from eliot import ActionType, Field

from .._ssh._logging import ADDRESS

__all__ = [
    "CLUSTER_DEPLOY", "CLUSTER_STATUS", "CLUSTER_LOGS", "REMOTE_CALL",
    "CLUSTER_ROTATE_KEYS", "AGENT_CONNECT",
]

SUBCOMMAND = Field.for_types(
    "subcommand", [str], "The flocker-node subcommand run on the node.")

_WAY = Field.for_types(
    "way", [str],
    "How the agent was reached: a direct-streamlocal channel or the "
    "flocker-node-bridge command.")

AGENT_CONNECT = ActionType(
    "flocker:cli:agent:connect",
    [ADDRESS],
    [_WAY],
    "Reach a node's agent and greet it (protocol version handshake).")

CLUSTER_DEPLOY = ActionType(
    "flocker:cli:deploy",
    [Field.for_types("nodes", [int], "Nodes in the deployment."),
     Field.for_types("dry_run", [bool], "Whether only a plan is shown.")],
    [],
    "A whole deploy over SSH: resolving the nodes, the deploy itself (with "
    "every node's work below it) and releasing the nodes' locks.")

CLUSTER_STATUS = ActionType(
    "flocker:cli:status",
    [Field.for_types("nodes", [int], "Nodes in the deployment.")],
    [],
    "Gather every node's report for a status view; nothing is changed.")

CLUSTER_LOGS = ActionType(
    "flocker:cli:logs",
    [Field.for_types("nodes", [int], "Nodes in the deployment."),
     Field.for_types("application", [str], "The application whose output "
                     "is read.")],
    [],
    "Gather every node's report, then read an application's container "
    "output from the node that runs it; nothing is changed.")

REMOTE_CALL = ActionType(
    "flocker:cli:remote:call",
    [ADDRESS, SUBCOMMAND],
    [],
    "One operation of a remote node agent: an agent protocol command sent "
    "to the node's agent, which continues this action's task.")

CLUSTER_ROTATE_KEYS = ActionType(
    "flocker:cli:rotate_node_keys",
    [Field.for_types("nodes", [int], "Nodes in the deployment.")],
    [],
    "Every node replaces its own node-to-node key pair, the nodes' trust "
    "installed between the steps so every push is accepted throughout "
    "(public keys only are ever sent).")
