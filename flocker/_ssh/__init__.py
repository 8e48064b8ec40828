"""
Running commands on cluster nodes over SSH, with Twisted Conch: the deploy
client's way to the nodes and the node agents' way to each other (their
pushes).  It lives outside :mod:`flocker.cli` so that a node agent never
loads the deploy client; :mod:`flocker.cli` re-exports its public names.

The deploy client talks to each node only through :class:`ICommandRunner`:
run an argument vector on a node, get its standard output or a typed error.
:class:`SSHCommandRunner` does it over real SSH; :class:`MemoryCommandRunner`
does it in memory for tests.

How the SSH runner behaves, and why:

* **One connection per node, many commands.**  A command on a fresh
  connection costs a key exchange and an authentication (about 0.16 s on the
  lab); every command after the first opens a new session channel on the
  node's existing connection instead.  :meth:`SSHCommandRunner.close` closes
  them all.
* **Host keys are checked, never learned.**  The node's key must already be in
  the known-hosts file (OpenSSH format, plain or hashed names, ``[host]:port``
  for other ports than 22, ``*``/``?`` patterns, ``@revoked`` lines).  An
  unknown, changed or revoked key fails with :class:`HostKeyError` naming the
  host and the key's SHA256 fingerprint.  The file is read once and never
  written: Conch's own ``KnownHostsFile`` adds and saves entries during
  verification, so it is not used.
* **Keys as ssh(1) finds them.**  The agent's keys (when ``SSH_AUTH_SOCK`` is
  set), then the identity files: those given explicitly or, if none were,
  ``~/.ssh/id_ed25519``, ``id_ecdsa`` and ``id_rsa``.  RSA keys sign with
  ``rsa-sha2-512`` because current OpenSSH servers refuse SHA-1 signatures.
  Passwords and keyboard-interactive prompts are never tried.
* **Arguments stay arguments.**  SSH carries one command string that the
  node's login shell (POSIX ``sh`` family) parses; :func:`quote_argv` quotes
  every argument so each arrives as exactly one literal argument, whatever it
  contains.  NUL bytes cannot be carried and are refused.
* **Bounded.**  Connecting (TCP, key exchange and authentication together) has
  a timeout; at most ``concurrency`` commands are in flight across all nodes
  and at most ``sessions_per_node`` on one node (sshd's ``MaxSessions`` is 10
  by default).
* **Logged.**  An eliot action per connection and per command (types in
  :mod:`flocker.cli._logging`); the command's standard error is captured for
  error messages.

One concern a module: :mod:`._errors` (what can go wrong),
:mod:`._command` (quoting), :mod:`._knownhosts` (host keys),
:mod:`._auth` (identities, the agent, public-key authentication),
:mod:`._session` (the command channel), :mod:`._transport` (one Conch
connection), :mod:`._interface`, :mod:`._runner` (the SSH runner) and
:mod:`._memory` (the in-memory runner).  Their public names are re-exported
here.

The runner carries argument vectors untouched.  Besides commands, it opens
the channels that reach a node's agent (:meth:`SSHCommandRunner.open_channel`,
used by :mod:`flocker.cli._channel`) on the same connections.
"""

from ._auth import DEFAULT_IDENTITY_NAMES, agent_endpoint, load_identities
from ._command import quote_argv
from ._errors import (
    AuthenticationFailed, HostKeyError, NodeUnreachable, RemoteCommandFailed,
    SSHConfigurationError,
)
from ._interface import ICommandRunner
from ._knownhosts import KnownHosts, key_fingerprint, known_hosts_name
from ._memory import CommandExit, MemoryCommandRunner
from ._runner import (
    DEFAULT_CONCURRENCY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SESSIONS_PER_NODE,
    SSHCommandRunner, ssh_command_runner,
)
from ._session import RunningCommand

__all__ = [
    "ICommandRunner", "SSHCommandRunner", "MemoryCommandRunner",
    "ssh_command_runner", "CommandExit", "RunningCommand",
    "RemoteCommandFailed", "NodeUnreachable", "AuthenticationFailed",
    "HostKeyError", "SSHConfigurationError",
    "KnownHosts", "known_hosts_name", "key_fingerprint",
    "load_identities", "agent_endpoint", "DEFAULT_IDENTITY_NAMES",
    "quote_argv",
    "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_CONCURRENCY",
    "DEFAULT_SESSIONS_PER_NODE",
]
