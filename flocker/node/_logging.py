"""
Eliot action and message types of the node package.

Every operation that touches the node's Docker daemon is an action of one of
these types, so one ``eliot-tree`` shows what a deploy did on each node, how
long each Docker API call took and which one failed.  Fields hold names,
counts and identifiers only: whole applications or reports are never logged
(they were a measured CPU cost at scale in earlier Flocker releases).
"""

from eliot import ActionType, Field, MessageType

__all__ = [
    "NODE_EXPECT_SENDERS", "FIRST_COPY_HOLDER",
    "DOCKER_EVENTS_CONNECTED", "DOCKER_EVENTS_LOST", "REPORT_INVALIDATED",
    "REPORT_KEPT",
    "DOCKER_NEGOTIATE", "DOCKER_API_CALL",
    "DOCKER_LIST", "DOCKER_ADD", "DOCKER_CREATE", "DOCKER_REMOVE",
    "DOCKER_STOP",
    "DOCKER_EXISTS",
    "DOCKER_IMAGE_PRESENT", "DOCKER_CONTAINER_PID",
    "DOCKER_FOREIGN_CONTAINER", "DOCKER_UNREADABLE_LABEL",
    "DOCKER_FIELDS_DROPPED",
    "NODE_REPORT", "NODE_START_APPLICATION", "NODE_STOP_APPLICATION",
    "NODE_CREATE_APPLICATION",
    "NODE_CREATE_VOLUME", "NODE_SEED_VOLUME", "NODE_PUSH_VOLUME", "NODE_HANDOFF_VOLUME",
    "NODE_RELEASE_VOLUME", "NODE_ACQUIRE_VOLUME", "NODE_PREPARE_HANDOFF", "NODE_ANNOUNCE_FAILED",
    "NODE_SET_AUTOMATIC",
    "NODE_SET_ROUTES", "NODE_SET_LINKS", "NODE_INSTALL_KEY",
    "NODE_ROTATE_KEY",
    "NODE_TAKE_OVER_VOLUME", "NODE_FENCE_VOLUME", "NODE_BOOT",
    "NODE_SELF_FENCE",
    "AGENT_LISTENING", "AGENT_CONNECTION", "AGENT_REFUSED",
    "AGENT_INTERNAL_ERROR", "PEER_REFUSED", "PEER_RECEIVE",
    "NODE_REPORT_COMMAND", "NODE_EXPECT_COMMAND",
    "DOCKER_LIST_IMAGES", "DOCKER_PULL_IMAGE", "DOCKER_LOGS",
    "NODE_PULL_IMAGE", "NODE_LOGS", "NODE_DELETE_VOLUME", "NODE_DOCTOR",
    "DOCKER_CONTAINER_STATUS", "NODE_WAIT_FOR_APPLICATION",
    "NODE_SET_REPLICATION", "REPLICATE_VOLUME", "REPLICATION_LAG",
    "REPLICATION_CONFIGURED", "METRICS_LISTENING",
    "NODE_CRASH_SEEN", "NODE_CRASH_RESTART", "NODE_CRASH_RECONCILED",
    "NODE_BOOT_CONFIRMED",
]

_SOCKET = Field.for_types(
    "socket", [str], "Path of the Docker daemon's Unix socket.")
_API_VERSION = Field.for_types(
    "api_version", [str],
    "The Docker Engine API version used for requests, e.g. 1.41.")
_METHOD = Field.for_types("method", [str], "HTTP method of an API call.")
_PATH = Field.for_types(
    "path", [str], "URL path of an API call, with its version prefix.")
_STATUS = Field.for_types("status", [int], "HTTP status Docker answered.")
_APPLICATION = Field.for_types(
    "application", [str], "Name of a Flocker application.")
_CONTAINER = Field.for_types(
    "container", [str], "Name of a Docker container.")
_IMAGE = Field.for_types("image", [str], "A Docker image reference.")
_COUNT = Field.for_types(
    "count", [int], "How many Flocker containers Docker reported.")
_PRESENT = Field.for_types(
    "present", [bool], "Whether the thing asked about exists.")
_OUTCOME = Field.for_types(
    "outcome", [str],
    "What an idempotent operation did: created, replaced, unchanged, "
    "removed or absent.")
_PID = Field.for_types(
    "pid", [int, type(None)],
    "Process id of a container's first process, or None when stopped.")
_REASON = Field.for_types("reason", [str], "Why something was skipped.")
_ADDRESS = Field.for_types("address", [str], "Address of a node.")
_APPLICATIONS = Field.for_types(
    "applications", [int], "Number of applications in a node report.")


DOCKER_NEGOTIATE = ActionType(
    "flocker:node:docker:negotiate",
    [_SOCKET], [_API_VERSION],
    "Ask the Docker daemon for its API version and pick the one to use.")

DOCKER_API_CALL = ActionType(
    "flocker:node:docker:api",
    [_METHOD, _PATH], [_STATUS],
    "One HTTP request to the Docker Engine API.")

DOCKER_LIST = ActionType(
    "flocker:node:docker:list",
    [_SOCKET], [_COUNT],
    "List the containers Flocker created on this node.")

DOCKER_ADD = ActionType(
    "flocker:node:docker:add",
    [_SOCKET, _APPLICATION, _IMAGE], [_OUTCOME],
    "Create and start an application's container (idempotent).")

DOCKER_CREATE = ActionType(
    "flocker:node:docker:create",
    [_SOCKET, _APPLICATION, _IMAGE], [_OUTCOME],
    "Create an application's container without starting it "
    "(idempotent).")

DOCKER_REMOVE = ActionType(
    "flocker:node:docker:remove",
    [_SOCKET, _APPLICATION], [_OUTCOME],
    "Stop and delete an application's container (idempotent).")

DOCKER_STOP = ActionType(
    "flocker:node:docker:stop",
    [_SOCKET, _APPLICATION],
    [_OUTCOME, Field.for_types(
        "answered", [str],
        "When the stop answered: ``exited``, once the container's "
        "processes had exited (Docker's stop goes on after the action); "
        "``stopped``, once Docker's stop had; ``at once``, nothing to "
        "stop.")],
    "Stop an application's container without deleting it (idempotent).")

DOCKER_EXISTS = ActionType(
    "flocker:node:docker:exists",
    [_SOCKET, _APPLICATION], [_PRESENT],
    "Check whether Flocker has a container for an application.")

DOCKER_IMAGE_PRESENT = ActionType(
    "flocker:node:docker:image_present",
    [_SOCKET, _IMAGE], [_PRESENT],
    "Check whether an image is present on the node.")

_DRY_RUN = Field.for_types(
    "dry_run", [bool], "Only ask whether it could be done.")
_LINES = Field.for_types("lines", [int], "Number of log lines read.")

DOCKER_LIST_IMAGES = ActionType(
    "flocker:node:docker:list_images",
    [_SOCKET], [_COUNT],
    "List the image references present on the node.")

DOCKER_PULL_IMAGE = ActionType(
    "flocker:node:docker:pull_image",
    [_SOCKET, _IMAGE, _DRY_RUN], [],
    "Pull an image from its registry (or, for a dry run, ask the registry "
    "whether it has it).")

DOCKER_LOGS = ActionType(
    "flocker:node:docker:logs",
    [_SOCKET, _APPLICATION], [_LINES],
    "Read an application container's output.")

DOCKER_CONTAINER_PID = ActionType(
    "flocker:node:docker:container_pid",
    [_SOCKET, _APPLICATION], [_PID],
    "Find the process id of an application's container.")

DOCKER_CONTAINER_STATUS = ActionType(
    "flocker:node:docker:container_status",
    [_SOCKET, _APPLICATION],
    [Field.for_types("running", [bool], "Whether the container runs."),
     Field.for_types("health", [str, type(None)],
                     "Its healthcheck's verdict, or None without one."),
     Field.for_types("exit_code", [int, type(None)],
                     "Its exit status once stopped, else None.")],
    "Learn whether an application's container runs, is healthy or has "
    "exited.")

DOCKER_FOREIGN_CONTAINER = MessageType(
    "flocker:node:docker:foreign_container",
    [_CONTAINER],
    "A container with a Flocker container name that Flocker did not create "
    "was left untouched.")

DOCKER_FIELDS_DROPPED = MessageType(
    "flocker:node:docker:fields_dropped",
    [_API_VERSION, Field.for_types(
        "fields", [list],
        "Dotted names of container-create fields left out.")],
    "The negotiated API version lacks these container-create fields, and "
    "leaving them out only loses a refinement, so they were left out.")

DOCKER_UNREADABLE_LABEL = MessageType(
    "flocker:node:docker:unreadable_label",
    [_CONTAINER, _REASON],
    "A container carries Flocker's label but it does not describe an "
    "application of that container's name; it is left out of the list.")

_VOLUME = Field.for_types(
    "volume", [str], "Name of a volume (its application's name).")
_TARGET = Field.for_types(
    "target", [str], "Address of the node receiving a volume.")
_BYTES = Field.for_types("bytes", [int], "Bytes of volume data sent.")
_SNAPSHOT = Field.for_types(
    "snapshot", [str], "The snapshot a volume's new owner must end with.")
_ROUTES = Field.for_types(
    "routes", [int], "Number of routes the node is given.")

NODE_REPORT = ActionType(
    "flocker:node:report",
    [_ADDRESS], [_APPLICATIONS],
    "Build this node's current-state report.")

NODE_START_APPLICATION = ActionType(
    "flocker:node:start_application",
    [_ADDRESS, _APPLICATION], [],
    "Mount the application's volume, create and start its container, and "
    "install its link rules.")

NODE_CREATE_APPLICATION = ActionType(
    "flocker:node:create_application",
    [_ADDRESS, _APPLICATION], [_OUTCOME],
    "Create the application's container without starting it, bound to "
    "where this node's copies of its volumes are mounted (a move's new "
    "container, created while the old one runs).")

NODE_STOP_APPLICATION = ActionType(
    "flocker:node:stop_application",
    [_ADDRESS, _APPLICATION,
     Field.for_types("keep", [bool], "Whether the stopped container is "
                     "kept, to be deleted later.")], [],
    "Stop and remove the application's container.")

NODE_SEED_VOLUME = ActionType(
    "flocker:node:seed_volume",
    [_ADDRESS, _VOLUME, Field.for_types("archive_bytes", [int],
                                        "Size of the seed archive.")],
    [Field.for_types("seeded", [bool], "Whether the volume was filled.")],
    "Fill an empty volume with a directory of the deploying machine.")

NODE_CREATE_VOLUME = ActionType(
    "flocker:node:create_volume",
    [_ADDRESS, _VOLUME], [],
    "Create a volume owned by this node, or take over a copy it holds.")

NODE_PUSH_VOLUME = ActionType(
    "flocker:node:push_volume",
    [_ADDRESS, _VOLUME, _TARGET], [_BYTES],
    "Copy a volume to another node while its application runs.")

NODE_HANDOFF_VOLUME = ActionType(
    "flocker:node:handoff_volume",
    [_ADDRESS, _VOLUME, _TARGET], [_BYTES],
    "Send a volume's last increment and make the target its owner.")

NODE_PREPARE_HANDOFF = ActionType(
    "flocker:node:prepare_handoff",
    [_ADDRESS, _VOLUME, _TARGET], [],
    "Start opening the receiving end of a hand-off's final increment on "
    "the target, before the application stops.")

NODE_RELEASE_VOLUME = ActionType(
    "flocker:node:release_volume",
    [_ADDRESS, _VOLUME, _TARGET], [_BYTES, _SNAPSHOT],
    "Send a volume's last increment to the target and give up ownership "
    "to it (the target acquires next).")

NODE_ACQUIRE_VOLUME = ActionType(
    "flocker:node:acquire_volume",
    [_ADDRESS, _VOLUME, _SNAPSHOT], [],
    "Take ownership of a volume copy another node released to this one.")

_EPOCH = Field.for_types("epoch", [int], "An ownership epoch.")

NODE_TAKE_OVER_VOLUME = ActionType(
    "flocker:node:take_over_volume",
    [_ADDRESS, _VOLUME, _EPOCH], [],
    "Failover: make this node's copy of a volume the owned one, at a new "
    "epoch.")

NODE_FENCE_VOLUME = ActionType(
    "flocker:node:fence_volume",
    [_ADDRESS, _VOLUME, Field.for_types("owner", [str],
                                        "The owner's node identity."),
     _EPOCH],
    [Field.for_types("set_aside", [str, None],
                     "Name the stale copy was set aside as, or null.")],
    "Failover: learn a volume's owner and epoch; a stale owned copy is set "
    "aside for recovery.")

NODE_BOOT = ActionType(
    "flocker:node:boot",
    [],
    [Field.for_types("started", [list], "Applications started by their "
                     "restart policy."),
     Field.for_types("held", [list], "Applications left stopped until a "
                     "deploy: their volume may have failed over.")],
    "The agent applies the restart policies of the node's stopped "
    "applications with volumes when it starts.")

NODE_BOOT_CONFIRMED = ActionType(
    "flocker:node:boot_confirmed",
    [_APPLICATION],
    [Field.for_types("started", [bool], "Whether it was started."),
     Field.for_types("reason", [str], "Why not, when it was not.")],
    "An application held at the agent's start waits for every standby of "
    "its volumes to accept a push from this node (none follows a later "
    "owner: the volume did not fail over), then starts.")

NODE_SELF_FENCE = ActionType(
    "flocker:node:self_fence",
    [_VOLUME],
    [Field.for_types("stopped", [list], "Applications stopped.")],
    "A standby refused this node's push of a volume because it follows a "
    "later ownership epoch: the applications using the stale copy stop.")

NODE_CRASH_SEEN = MessageType(
    "flocker:node:crash_seen",
    [_APPLICATION,
     Field.for_types("exit_code", [int], "The status the process exited "
                     "with (-1 when Docker gave none)."),
     Field.for_types("delay", [float, type(None)], "Seconds until its "
                     "restart is decided, or null: it was stopped on "
                     "request (a kill through Docker's API), so it stays "
                     "stopped.")],
    "An application's container died.")

NODE_CRASH_RECONCILED = MessageType(
    "flocker:node:crash_reconciled",
    [Field.for_types("running", [int], "Flocker's containers known to run "
                     "after the listing."),
     Field.for_types("died", [list], "Applications whose container ran "
                     "when the event stream was lost and no longer runs: "
                     "they died meanwhile and go through the crash rules."),
     Field.for_types("after_gap", [bool], "Whether the stream was followed "
                     "again after a gap (else this is the first following: "
                     "nothing is taken as died).")],
    "The crash restarter listed Flocker's containers on following Docker's "
    "events.")

NODE_CRASH_RESTART = ActionType(
    "flocker:node:crash_restart",
    [_APPLICATION,
     Field.for_types("exit_code", [int], "The status the process exited "
                     "with."),
     Field.for_types("restarts", [int], "Restarts already made since it "
                     "last ran steadily.")],
    [Field.for_types("restarted", [bool], "Whether it was started again."),
     Field.for_types("reason", [str], "Why not, when it was not.")],
    "The agent restarts an application with volumes that died by itself, "
    "if its restart policy asks for it and this node still owns its "
    "volumes.")

NODE_ANNOUNCE_FAILED = MessageType(
    "flocker:node:announce_failed",
    [_APPLICATION, _REASON],
    "A started container could not be announced to the node's network "
    "(connections arriving in its first second may wait for the kernel's "
    "next address resolution); the application runs.")

NODE_DOCTOR = ActionType(
    "flocker:node:doctor",
    [_ADDRESS],
    [Field.for_types("checks", [int], "How many checks ran."),
     Field.for_types("failed", [int], "How many of them failed."),
     Field.for_types("ok", [bool], "Whether no blocking check failed.")],
    "Check that this node is ready for deploys (flocker-node doctor).")

NODE_PULL_IMAGE = ActionType(
    "flocker:node:pull_image",
    [_ADDRESS, _IMAGE, _DRY_RUN], [],
    "Pull an image onto this node (or ask whether it could be pulled).")

NODE_DELETE_VOLUME = ActionType(
    "flocker:node:delete_volume",
    [_ADDRESS, _VOLUME], [],
    "Destroy this node's copy of a volume (a confirmed removal).")

NODE_WAIT_FOR_APPLICATION = ActionType(
    "flocker:node:wait_for_application",
    [_ADDRESS, _APPLICATION,
     Field.for_types("condition", [str], "What is waited for."),
     Field.for_types("timeout", [int, float], "Seconds allowed.")],
    [],
    "Wait until an application others depend on is healthy or has "
    "finished.")

NODE_LOGS = ActionType(
    "flocker:node:logs",
    [_ADDRESS, _APPLICATION], [_LINES],
    "Read an application's container output on this node.")

NODE_SET_ROUTES = ActionType(
    "flocker:node:set_routes",
    [_ADDRESS, _ROUTES], [],
    "Make this node's routes exactly the given ones.")

NODE_SET_LINKS = ActionType(
    "flocker:node:set_links",
    [_ADDRESS, _APPLICATION,
     Field.for_types("links", [int], "How many links it gets.")], [],
    "Make a running application's links and names exactly the given ones, "
    "without restarting it.")

_KNOWN_HOSTS_LINES = Field.for_types(
    "known_hosts_lines", [int],
    "Number of lines of the nodes' known_hosts file.")
_NODE_KEYS = Field.for_types(
    "node_keys", [int], "Number of node keys listed (one per node, two for "
    "a node rotating its key).")

NODE_INSTALL_KEY = ActionType(
    "flocker:node:install_node_key",
    [_ADDRESS, _KNOWN_HOSTS_LINES, _NODE_KEYS], [],
    "Install the nodes' trust: the known_hosts file and one "
    "authorized_keys line per other node's key (public keys only).")

NODE_ROTATE_KEY = ActionType(
    "flocker:node:rotate_node_key",
    [_ADDRESS, Field.for_types(
        "step", [str], "prepare (make the next key) or finish (switch to "
        "it).")],
    [Field.for_types("fingerprint", [str],
                     "SHA256 fingerprint of the key the step leaves: the "
                     "next key after prepare, the current one after "
                     "finish.")],
    "One step of rotating this node's own node-to-node key.")

NODE_SET_AUTOMATIC = ActionType(
    "flocker:node:set_automatic",
    [_ADDRESS, Field.for_types(
        "automatic", [int],
        "How many applications the cluster fails over by itself.")], [],
    "Tell a node which applications fail over automatically.")

_PATH_FIELD = Field.for_types(
    "socket", [str], "Path of the agent's Unix socket.")
_PEER = Field.for_types(
    "peer", [str], "Who connected to the agent (peer user id and pid).")
_WHAT = Field.for_types(
    "what", [str], "What the agent refused or failed to do, in one line.")

AGENT_LISTENING = MessageType(
    "flocker:node:agent:listening",
    [_PATH_FIELD, _ADDRESS],
    "The node agent listens on its socket.")

AGENT_CONNECTION = MessageType(
    "flocker:node:agent:connection",
    [_PEER],
    "A client connected to the node agent.")

PEER_REFUSED = MessageType(
    "flocker:node:peer:refused",
    [_WHAT],
    "The agent's peer socket refused a request (another user, a malformed "
    "handover, or a command a node key may not run: anything but a push); "
    "nothing was changed.")

PEER_RECEIVE = ActionType(
    "flocker:node:peer:receive",
    [Field.for_types("caller", [str], "The pushing node's identity, as "
                     "its key's line names it."), _VOLUME],
    [],
    "Another node pushes a volume here through the peer socket.")

AGENT_REFUSED = MessageType(
    "flocker:node:agent:refused",
    [_PEER, _WHAT],
    "The agent refused a message (malformed, oversized, unknown command, "
    "arguments that do not decode, a command before the handshake); it "
    "goes on serving its other connections.")

AGENT_INTERNAL_ERROR = MessageType(
    "flocker:node:agent:internal_error",
    [_WHAT],
    "An operation failed for a reason that is a bug, not a refusal; the "
    "traceback is logged next to this message.")

# The flocker-node commands that ask the running agent (flocker/node/
# script.py): each continues its task in the agent, as a deploy does.

NODE_REPORT_COMMAND = ActionType(
    "flocker:node:report_command",
    [_PATH_FIELD], [],
    "flocker-node report: ask the node's running agent for its report.")

NODE_EXPECT_COMMAND = ActionType(
    "flocker:node:expect_command",
    [_PATH_FIELD, _VOLUME, Field.for_types(
        "nodes", [int], "How many nodes the volume's first copy may now "
        "come from (0: the volume is dropped from the record).")], [],
    "flocker-node expect: change, through the node's running agent, which "
    "nodes a volume's first copy may come from.")


# Continuous replication to standby nodes (flocker/node/_replication.py).

_STANDBY = Field.for_types("standby", [str], "Address of a standby node.")
_VOLUMES = Field.for_types(
    "volumes", [int], "Number of volumes a node replicates.")
_SNAPSHOT = Field.for_types(
    "snapshot", [str], "The snapshot a standby confirmed having.")
_BASE = Field.for_types(
    "base", [str, type(None)],
    "The snapshot an incremental stream started from; None for a full one.")
_LAG = Field.for_types(
    "lag", [float, int, type(None)],
    "Seconds of writes the standby's copy lacks (since the newest snapshot "
    "it confirmed was taken); None while it has none.")
_SOURCE = Field.for_types(
    "source", [str], "Where the configuration came from: a deploy, or the "
    "agent's state file at start.")

NODE_EXPECT_SENDERS = ActionType(
    "flocker:node:expect_senders",
    [_ADDRESS, _VOLUMES], [],
    "Make this node's record of the nodes each volume's first copy may "
    "come from exactly the given one.")

FIRST_COPY_HOLDER = ActionType(
    "flocker:node:first_copy_holder",
    [_APPLICATION, _VOLUME],
    [Field.for_types("holder", [str, type(None)],
                     "The address etcd's owner key names; None when no "
                     "member holds the lease or etcd could not say."),
     Field.for_types("error", [str, type(None)],
                     "Why this node could not tell who holds it (etcd's "
                     "error, or its own trust of peer keys unreadable), "
                     "or None.")],
    "Ask etcd which member of an automatically failed-over application's "
    "group holds its lease, for a first copy of one of its volumes pushed "
    "here.")

NODE_SET_REPLICATION = ActionType(
    "flocker:node:set_replication",
    [_ADDRESS, _VOLUMES], [],
    "Make the volumes this node replicates to standbys exactly the given "
    "ones.")

REPLICATION_CONFIGURED = MessageType(
    "flocker:node:replication_configured",
    [_VOLUMES, _SOURCE],
    "The replicator's set of volumes changed.")

REPLICATE_VOLUME = ActionType(
    "flocker:node:replicate",
    [_VOLUME, _STANDBY], [_SNAPSHOT, _BASE, _BYTES, _LAG],
    "Send a standby what changed in a volume since the last snapshot both "
    "have (one interval's work for one standby).")

REPLICATION_LAG = MessageType(
    "flocker:node:replication_lag",
    [_VOLUME, _STANDBY, _LAG],
    "How far a standby's copy is behind, as a replication round starts.")

METRICS_LISTENING = MessageType(
    "flocker:node:metrics_listening",
    [Field.for_types("port", [int], "TCP port on 127.0.0.1.")],
    "The agent serves its Prometheus metrics on 127.0.0.1.")

_REASON = Field.for_types(
    "reason", [str], "Why, in one line.")

DOCKER_EVENTS_CONNECTED = MessageType(
    "flocker:node:docker_events:connected", [],
    "The agent follows the Docker daemon's event stream; its report may be "
    "kept from now on.")

DOCKER_EVENTS_LOST = MessageType(
    "flocker:node:docker_events:lost", [_REASON],
    "The Docker event stream ended or could not be opened; the agent makes "
    "its report afresh on every request until it follows the stream again.")

REPORT_INVALIDATED = MessageType(
    "flocker:node:report_invalidated", [_REASON],
    "The agent's kept report no longer holds; the next request makes it "
    "again.")

REPORT_KEPT = MessageType(
    "flocker:node:report_kept", [_ADDRESS],
    "A report request was answered from the kept report.")
