"""
eliot action and message types of the deploy client (``flocker.cli``).

Fields log names, sizes and identifiers, never whole payloads: a command's
standard input (an application's JSON, a route table) is logged by size only.
"""

from eliot import ActionType, Field, MessageType

__all__ = [
    "SSH_CONNECT", "SSH_RUN", "SSH_START", "SSH_DISCONNECT",
    "SSH_IDENTITY_SKIPPED", "CLUSTER_DEPLOY", "CLUSTER_STATUS",
    "CLUSTER_LOGS",
    "SSH_AGENT_UNAVAILABLE", "REMOTE_CALL", "CLUSTER_ROTATE_KEYS",
    "SSH_OPEN_CHANNEL", "AGENT_CONNECT",
]

ADDRESS = Field.for_types(
    "address", [str], "The node's address, as the deployment names it.")

PORT = Field.for_types("port", [int], "The node's SSH port.")

USERNAME = Field.for_types("username", [str], "The remote user name.")

HOST_KEY = Field.for_types(
    "host_key", [str],
    "Type and SHA256 fingerprint of the host key the node presented.")

ARGV = Field.for_types(
    "argv", [list], "The remote command's argument vector.")

STDIN_BYTES = Field.for_types(
    "stdin_bytes", [int], "Size of the data written to the command's stdin.")

STDOUT_BYTES = Field.for_types(
    "stdout_bytes", [int], "Size of what the command wrote to stdout.")

EXIT_CODE = Field.for_types(
    "exit_code", [int, None],
    "The command's exit status (None if a signal ended it).")

PATH = Field.for_types("path", [str], "A local file.")

REASON = Field.for_types("reason", [str], "Why, in one line.")

SUBCOMMAND = Field.for_types(
    "subcommand", [str], "The flocker-node subcommand run on the node.")

SSH_CONNECT = ActionType(
    "flocker:cli:ssh:connect",
    [ADDRESS, PORT, USERNAME],
    [HOST_KEY],
    "Open, verify and authenticate one SSH connection to a node.  Later "
    "commands to the same node reuse it.")

SSH_RUN = ActionType(
    "flocker:cli:ssh:run",
    [ADDRESS, ARGV, STDIN_BYTES],
    [EXIT_CODE, STDOUT_BYTES],
    "Run one command on a node over its SSH connection.")

SSH_START = ActionType(
    "flocker:cli:ssh:start",
    [ADDRESS, ARGV],
    [],
    "Start a long-lived command (a node session) on a node over its SSH "
    "connection; the action ends once the command runs.")

SSH_OPEN_CHANNEL = ActionType(
    "flocker:cli:ssh:open_channel",
    [ADDRESS],
    [],
    "Open a channel to the node agent's socket on a node's SSH connection "
    "(direct-streamlocal@openssh.com).")

_WAY = Field.for_types(
    "way", [str],
    "How the agent was reached: a direct-streamlocal channel or the "
    "flocker-node-bridge command.")

AGENT_CONNECT = ActionType(
    "flocker:cli:agent:connect",
    [ADDRESS],
    [_WAY],
    "Reach a node's agent and greet it (protocol version handshake).")

SSH_DISCONNECT = ActionType(
    "flocker:cli:ssh:disconnect",
    [ADDRESS],
    [],
    "Close a node's SSH connection.")

SSH_IDENTITY_SKIPPED = MessageType(
    "flocker:cli:ssh:identity_skipped",
    [PATH, REASON],
    "A default identity file exists but cannot be used (for instance it is "
    "passphrase-protected and not in the agent).")

SSH_AGENT_UNAVAILABLE = MessageType(
    "flocker:cli:ssh:agent_unavailable",
    [REASON],
    "SSH_AUTH_SOCK is set but the agent could not be used; authentication "
    "goes on with the identity files.")

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
