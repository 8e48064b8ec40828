"""
eliot action and message types of Flocker's SSH client (``flocker._ssh``),
which the deploy client and the node agents' pushes share.

Fields log names, sizes and identifiers, never whole payloads: a command's
standard input is logged by size only.  (The types keep the names they had
under ``flocker.cli``, which log readers match.)
"""

from eliot import ActionType, Field, MessageType

__all__ = [
    "SSH_CONNECT", "SSH_RUN", "SSH_START", "SSH_DISCONNECT",
    "SSH_IDENTITY_SKIPPED", "SSH_AGENT_UNAVAILABLE", "SSH_OPEN_CHANNEL",
    "ADDRESS",
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
