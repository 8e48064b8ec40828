"""
The protocol between the deploy client and ``flocker-node``: subcommand
names, options, exit statuses and the JSON documents each side writes.  Both
sides import it from here (the node side never imports the client side).

The flocker-node protocol (version :data:`PROTOCOL_VERSION`)
============================================================

Every call is one command, run on the node as an argument vector (each
element arrives as one literal argument)::

    flocker-node --eliot-task TASKID --protocol 1 --address ADDRESS SUBCOMMAND [ARGUMENT...]

Global options, always given, before the subcommand:

``--eliot-task TASKID``
    A serialised eliot task id (ASCII, from ``Action.serialize_task_id()``);
    the node continues that task (``Action.continue_task(task_id=TASKID)``)
    so its actions appear under the client's in one tree.
``--protocol 1``
    The protocol version the client speaks.  A node that does not speak it
    exits with status 3 and says which version(s) it speaks.
``--address ADDRESS``
    The address by which the deployment (and every other node) knows this
    node.  The node puts it in its report and uses it where it must name
    itself (link environment variables such as
    ``ALIAS_PORT_<local>_TCP=tcp://ADDRESS:<remote_port>``).

``--lock DEPLOYID`` (optional)
    The deploy holding the node's lock: the node takes or renews that
    deploy's lease before doing anything, and exits with status 4 (another
    deploy holds the lease) without acting otherwise.  ``release-lock`` ends
    the lease at the end of the deploy.

Subcommands, one per ``INodeAgent`` method (arguments after the global
options; then standard input; then standard output on success):

``report()``
    ``report``; stdin empty; stdout a node report (below).
``start_application(application)``
    ``start-application``; stdin an application (below); stdout ignored.
``stop_application(name)``
    ``stop-application NAME``; stdin empty; stdout ignored.
``create_volume(name, maximum_size)``
    ``create-volume NAME`` or ``create-volume NAME --maximum-size BYTES``;
    stdin empty; stdout ignored.
``push_volume(name, target)``
    ``push-volume NAME TARGET``; stdin empty; stdout ``{"bytes": N}``.
``handoff_volume(name, target)``
    ``handoff-volume NAME TARGET``; stdin empty; stdout ``{"bytes": N}``.
``release_volume(name, target)``
    ``release-volume NAME TARGET``; stdin empty; stdout a release (below).
``acquire_volume(name, snapshot, node_id)``
    ``acquire-volume NAME SNAPSHOT NODEID``; stdin empty; stdout ignored.
``set_routes(routes)``
    ``set-routes``; stdin a route table (below); stdout ignored.
``install_node_key(node_key)``
    ``install-node-key``; stdin a node key (below); stdout ignored.
``pull_image(image, dry_run)``
    ``pull-image IMAGE`` or ``pull-image IMAGE --dry-run``; stdin empty;
    stdout ignored.
``delete_volume(name)``
    ``delete-volume NAME``; stdin empty; stdout ignored.
``wait_for_application(name, condition, timeout)``
    ``wait-application NAME CONDITION SECONDS``; stdin empty; stdout
    ignored; exit status 1 with the reason on stderr when the application
    is not ready in time.
``logs(name, since, tail)``
    ``logs NAME [--since STAMP] [--tail N]``; stdin empty; stdout a log
    document (below).
``doctor()``
    ``doctor --json``; stdin empty; stdout a doctor report (below); exit
    status 0 whatever the checks found.
``seed_volume(name, archive)``
    ``seed-volume NAME``; stdin ``{"archive": BASE64}`` (the tar archive);
    stdout ``{"seeded": true|false}``.

``NAME`` is an application (= volume) name; ``TARGET`` the address of the node
receiving the volume; ``BYTES`` a positive decimal integer, omitted for no
quota; ``N`` the number of bytes sent (an integer ≥ 0).

JSON documents are UTF-8, written by :func:`flocker._serialize.dumps`
(sorted keys, no spaces):

node report
    ``node_state_to_dict(state)`` from :mod:`flocker._serialize`:
    ``{"address": …, "applications": [application…], "running": [name…],
    "volumes": [{"name", "owned", "size", "snapshots"}…], "routes":
    [{"port", "address"}…], "links": {name: [[local, remote, alias]…]}}``.
    The client replaces ``"address"`` with the address it reached.
application
    ``application_to_dict(application)``: ``{"name", "image", "command",
    "environment", "ports": [[internal, external]…], "volume":
    {"mountpoint", "maximum_size"} or null, "links": [[local, remote,
    alias]…], "mem_limit", "cpu_shares", "restart_policy": {"name",
    "maximum_retry_count"}}``, and, when not empty, ``"volumes":
    [{"name", "mountpoint", "maximum_size", "read_only", "external"}…]``,
    ``"host_mounts": [[host_path, mountpoint, read_only]…]`` and ``"files":
    [{"mountpoint", "digest", "mode", "content"}…]`` (``content`` base64,
    only in ``start-application``'s document, never in a report).
release
    ``{"bytes": N, "snapshot": SNAPSHOT, "node_id": NODEID}``: what the
    new owner acquires with.
route table
    ``{"routes": [{"port": P, "address": A}…]}`` sorted by port then
    address: the node's complete set of routes (an empty list removes all).
log document
    ``{"lines": [[STAMP, STREAM, TEXT]…]}``, oldest first: each line's RFC
    3339 time stamp, ``"stdout"`` or ``"stderr"``, its text.
doctor report
    ``{"time": SECONDS, "checks": [{"name", "ok", "blocking", "detail",
    "fix"}…]}``: the node's clock and each check of
    :mod:`flocker.node._doctor` in the order run (``fix`` is ``null`` for a
    check that passed).
node key
    ``{"private_key": OPENSSH PRIVATE KEY TEXT, "public_key": "ssh-ed25519
    AAAA…", "known_hosts": TEXT}``: the node-to-node SSH key and the
    known_hosts file the nodes check each other's host keys against.  The
    report carries only ``"node_key": {"fingerprint", "known_hosts_digest"}``
    (or ``null``), never the private key.

Sessions: many calls through one process
-----------------------------------------

``flocker-node --protocol 1 --address ADDRESS serve`` starts a session: one
node process answers many calls, so a deploy pays for starting Python and
opening Docker and the pool once per node instead of once per step.  Each
line on the session's standard input is a request, a JSON object
``{"id": N, "argv": [ARGUMENT...], "stdin": TEXT}`` where ``argv`` is
exactly what would follow ``flocker-node`` in a single call (global options
included) and ``stdin`` what its standard input would be.  Requests run
concurrently; for each, in any order, one line on standard output answers
``{"id": N, "exit": STATUS, "stdout": TEXT, "stderr": TEXT}`` with what the
single call would have exited with and written.  Interleaved with the
answers, ``{"eliot": MESSAGE}`` lines carry the node's eliot messages (the
requests' ``--eliot-task`` options place them in the client's task tree).
End of input ends the session once every request has been answered (exit
status 0).  A line that is not a request is answered with ``"id": null``,
exit status 2 and the reason.

While a ``push-volume``, ``handoff-volume`` or ``release-volume`` request
sends data, progress lines say how far it got::

    {"id": N, "progress": {"volume": NAME, "target": TARGET, "sent": BYTES,
                           "total": BYTES or null}}

``sent`` is the number of bytes sent so far by the request ``N`` (an
integer >= 0, never decreasing within one transfer), ``total`` what the
whole transfer will send, or ``null`` when the node does not know (an
incremental send).  A node sends at most one progress line per transfer
every :data:`PROGRESS_INTERVAL` seconds, and a last one with the final
figures before the answer.  Progress lines are not eliot messages: they are
not logged (on either side), they only feed a live view.  Single calls
(outside a session) send none.

A client ignores every line it does not know (a progress line for a
request it did not ask progress for, whatever a login script printed, line
kinds of later versions); an older client sees a progress line as such a
line.

Exit status: 0 when the operation is done (every subcommand is idempotent);
otherwise non-zero (1 operation failed, 2 bad usage, 3 protocol version not
spoken) with a one-line human-readable message as the LAST line of standard
error.  The client shows that line, prefixed with the node and the step.
"""

import base64
import binascii
import json

from eliot.json import json_default

from .._serialize import (
    SerializationError, application_to_dict, application_from_dict, dumps,
    loads, node_state_from_dict, route_from_dict, route_to_dict,
)

__all__ = [
    "PROTOCOL_VERSION", "PROTOCOL_OPTION", "ADDRESS_OPTION",
    "ELIOT_TASK_OPTION", "DEFAULT_NODE_COMMAND",
    "REPORT", "START_APPLICATION", "STOP_APPLICATION", "CREATE_VOLUME",
    "PUSH_VOLUME", "HANDOFF_VOLUME", "RELEASE_VOLUME", "ACQUIRE_VOLUME",
    "SET_ROUTES", "INSTALL_NODE_KEY", "SEED_VOLUME", "SUBCOMMANDS",
    "encode_seed", "decode_seed", "encode_seeded", "decode_seeded", "encode_release",
    "decode_release", "encode_node_key", "decode_node_key",
    "MAXIMUM_SIZE_OPTION", "BYTES_KEY", "ROUTES_KEY",
    "EXIT_FAILED", "EXIT_USAGE", "EXIT_PROTOCOL", "EXIT_LOCKED",
    "LOCK_OPTION", "RELEASE_LOCK",
    "encode_application", "decode_application",
    "encode_routes", "decode_routes",
    "encode_bytes_sent", "decode_bytes_sent", "decode_report",
    "SERVE", "encode_request", "decode_request", "encode_response",
    "decode_session_line", "encode_log", "encode_progress",
    "PROGRESS_INTERVAL", "PULL_IMAGE", "LOGS", "DELETE_VOLUME",
    "DRY_RUN_OPTION", "DOCTOR", "JSON_OPTION", "decode_doctor",
    "SINCE_OPTION", "TAIL_OPTION", "encode_logs", "decode_logs",
    "WAIT_APPLICATION",
]

#: Option a remote command accepts right after ``argv[0]``, followed by a
#: serialised eliot task id (``Action.serialize_task_id()``, ASCII), to
#: continue the caller's task: ``flocker-node --eliot-task TASKID report``.
ELIOT_TASK_OPTION = "--eliot-task"

#: Version of the client/node protocol described in this module.
PROTOCOL_VERSION = 1

#: Global option carrying :data:`PROTOCOL_VERSION`.
PROTOCOL_OPTION = "--protocol"

#: Global option carrying the node's own address.
ADDRESS_OPTION = "--address"

#: The program run on nodes unless told otherwise.
DEFAULT_NODE_COMMAND = "flocker-node"

#: Subcommand names.
REPORT = "report"
START_APPLICATION = "start-application"
STOP_APPLICATION = "stop-application"
CREATE_VOLUME = "create-volume"
PUSH_VOLUME = "push-volume"
HANDOFF_VOLUME = "handoff-volume"
SET_ROUTES = "set-routes"
RELEASE_VOLUME = "release-volume"
ACQUIRE_VOLUME = "acquire-volume"
INSTALL_NODE_KEY = "install-node-key"
PULL_IMAGE = "pull-image"
LOGS = "logs"
DELETE_VOLUME = "delete-volume"
WAIT_APPLICATION = "wait-application"
DOCTOR = "doctor"
SEED_VOLUME = "seed-volume"
SUBCOMMANDS = (REPORT, START_APPLICATION, STOP_APPLICATION, CREATE_VOLUME,
               PUSH_VOLUME, HANDOFF_VOLUME, RELEASE_VOLUME, ACQUIRE_VOLUME,
               SET_ROUTES, INSTALL_NODE_KEY, PULL_IMAGE, LOGS, DELETE_VOLUME,
               WAIT_APPLICATION,
               DOCTOR, SEED_VOLUME)

#: Option of ``doctor``: print the report as a JSON document (exit 0).
JSON_OPTION = "--json"

#: Option of ``pull-image``: only ask whether it could be pulled.
DRY_RUN_OPTION = "--dry-run"
#: Options of ``logs``.
SINCE_OPTION = "--since"
TAIL_OPTION = "--tail"

#: Subcommand starting a session (many calls through one process).
SERVE = "serve"

#: Least seconds between two progress lines of one transfer in a session
#: (plus the final one): enough for a live view, little enough that a
#: session's output is mostly answers.
PROGRESS_INTERVAL = 0.25

#: Option of ``create-volume`` giving the quota in bytes.
MAXIMUM_SIZE_OPTION = "--maximum-size"

#: Key of the push/hand-off result object.
BYTES_KEY = "bytes"

#: Key of the route table object.
ROUTES_KEY = "routes"

#: Exit status of ``flocker-node`` when the operation failed.
EXIT_FAILED = 1
#: Exit status of ``flocker-node`` for bad usage.
EXIT_USAGE = 2
#: Exit status of ``flocker-node`` when it does not speak the protocol.
EXIT_PROTOCOL = 3
#: Exit status of ``flocker-node`` when another deploy holds the node's lock.
EXIT_LOCKED = 4

#: Global option naming the deploy (a random id) that holds the node's lock
#: for this command; the command takes or renews the lease first.
LOCK_OPTION = "--lock"

#: Subcommand ending the lease of the deploy named by :data:`LOCK_OPTION`.
RELEASE_LOCK = "release-lock"


def encode_application(application):
    """
    :param Application application: An application, with the content of
        its files.
    :return: Its protocol document (``bytes``), file contents included.
    :raises SerializationError: If a file's content is not known.
    """
    return dumps(application_to_dict(application, contents=True)).encode(
        "utf-8")


def decode_application(data):
    """
    :param bytes data: An application document.
    :return: The ``Application``.
    :raises SerializationError: If it is not one.
    """
    return application_from_dict(loads(data))


def encode_routes(routes):
    """
    :param routes: Iterable of ``Route``.
    :return: The route table document (``bytes``), sorted.
    """
    entries = sorted((route_to_dict(route) for route in routes),
                     key=lambda entry: (entry["port"], entry["address"]))
    return dumps({ROUTES_KEY: entries}).encode("utf-8")


def decode_routes(data):
    """
    :param bytes data: A route table document.
    :return: ``frozenset`` of ``Route``.
    :raises SerializationError: If it is not one.
    """
    document = loads(data)
    if not isinstance(document, dict) or not isinstance(
            document.get(ROUTES_KEY), list):
        raise SerializationError('expected {"routes": [...]}')
    return frozenset(route_from_dict(entry) for entry in document[ROUTES_KEY])


def encode_node_key(node_key):
    """
    :param NodeKey node_key: The node-to-node key to install.
    :return: The node key document (``bytes``).
    """
    return dumps({"private_key": node_key.private_key,
                  "public_key": node_key.public_key,
                  "known_hosts": node_key.known_hosts,
                  "callers": node_key.callers}).encode("utf-8")


def decode_node_key(data):
    """
    :param bytes data: A node key document.
    :return: The ``NodeKey``.
    :raises SerializationError: If it is not one (the message never quotes
        the private key).
    """
    from .._model import InvalidModel, NodeKey
    document = loads(data)
    if not isinstance(document, dict) or not (
            {"private_key", "public_key", "known_hosts"} <= set(document)
            <= {"private_key", "public_key", "known_hosts", "callers"}):
        raise SerializationError("expected {\"private_key\", \"public_key\", "
                                 "\"known_hosts\"[, \"callers\"]}")
    try:
        return NodeKey(**document)
    except InvalidModel as e:
        raise SerializationError("not a node key: %s" % (e,))


def encode_logs(lines):
    """
    :param lines: ``(stamp, stream, text)`` tuples.
    :return: The log document (``bytes``).
    """
    return dumps({"lines": [list(line) for line in lines]}).encode("utf-8")


def decode_logs(data):
    """
    :param bytes data: A log document.
    :return: ``list`` of ``(stamp, stream, text)`` tuples of ``str``.
    :raises SerializationError: If it is not one.
    """
    document = loads(data)
    lines = document.get("lines") if isinstance(document, dict) else None
    if not isinstance(lines, list) or not all(
            isinstance(line, list) and len(line) == 3
            and all(isinstance(part, str) for part in line)
            for line in lines):
        raise SerializationError(
            'expected {"lines": [[stamp, stream, text]...]}')
    return [tuple(line) for line in lines]


def decode_doctor(data):
    """
    :param bytes data: A doctor report document.
    :return: The :class:`~flocker.node._doctor.DoctorReport`.
    :raises SerializationError: If it is not one.
    """
    from ._doctor import report_from_dict
    try:
        return report_from_dict(loads(data))
    except ValueError as e:
        raise SerializationError(str(e))


def encode_bytes_sent(count):
    """
    :param int count: Bytes sent by a push or hand-off.
    :return: The result document (``bytes``).
    """
    return dumps({BYTES_KEY: count}).encode("utf-8")


def decode_bytes_sent(data):
    """
    :param bytes data: A push/hand-off result document.
    :return: The ``int`` number of bytes.
    :raises SerializationError: If it is not one.
    """
    document = loads(data)
    count = document.get(BYTES_KEY) if isinstance(document, dict) else None
    if (not isinstance(count, int) or isinstance(count, bool)
            or count < 0):
        raise SerializationError('expected {"bytes": N} with N >= 0')
    return count


def encode_seed(archive):
    """
    :param bytes archive: A seed archive.
    :return: The seed document (``bytes``): the archive in base64.
    """
    return dumps({"archive": base64.b64encode(archive).decode("ascii")}
                 ).encode("utf-8")


def decode_seed(data):
    """
    :param bytes data: A seed document.
    :return: The archive (``bytes``).
    :raises SerializationError: If it is not one.
    """
    document = loads(data)
    archive = document.get("archive") if isinstance(document, dict) else None
    try:
        return base64.b64decode(archive.encode("ascii"), validate=True)
    except (AttributeError, UnicodeEncodeError, binascii.Error):
        raise SerializationError('expected {"archive": BASE64}')


def encode_seeded(seeded):
    """
    :param bool seeded: What ``seed-volume`` did.
    :return: The result document (``bytes``).
    """
    return dumps({"seeded": seeded}).encode("utf-8")


def decode_seeded(data):
    """
    :param bytes data: A ``seed-volume`` result document.
    :return: ``True`` if the volume was filled.
    :raises SerializationError: If it is not one.
    """
    document = loads(data)
    seeded = document.get("seeded") if isinstance(document, dict) else None
    if not isinstance(seeded, bool):
        raise SerializationError('expected {"seeded": true|false}')
    return seeded


def encode_release(release):
    """
    :param VolumeRelease release: What ``release-volume`` did.
    :return: The release document (``bytes``).
    """
    return dumps({BYTES_KEY: release.bytes_sent, "snapshot": release.snapshot,
                  "node_id": release.node_id}).encode("utf-8")


def decode_release(data):
    """
    :param bytes data: A release document.
    :return: The ``VolumeRelease``.
    :raises SerializationError: If it is not one.
    """
    from ._agent import VolumeRelease
    count = decode_bytes_sent(data)
    document = loads(data)
    try:
        return VolumeRelease(bytes_sent=count,
                             snapshot=document.get("snapshot"),
                             node_id=document.get("node_id"))
    except (TypeError, ValueError) as e:
        raise SerializationError("not a release: %s" % (e,))


def decode_report(data, address):
    """
    :param bytes data: A node report document.
    :param str address: The address the client reached the node at; it
        replaces the report's own.
    :return: The ``NodeState``.
    :raises SerializationError: If it is not a report.
    """
    document = loads(data)
    if not isinstance(document, dict):
        raise SerializationError("a report must be a JSON object")
    document = dict(document, address=address)
    return node_state_from_dict(document)


def _line(document):
    return (dumps(document) + "\n").encode("utf-8")


def encode_request(identifier, argv, stdin=b""):
    """
    :param int identifier: The request's id, unique within its session.
    :param argv: The arguments a single ``flocker-node`` call would get.
    :param bytes stdin: Its standard input (UTF-8).
    :return: The request line (``bytes``, newline included).
    """
    return _line({"id": identifier, "argv": list(argv),
                  "stdin": stdin.decode("utf-8")})


def decode_request(line):
    """
    :param bytes line: A request line (without its newline).
    :return: ``(identifier, argv, stdin)`` with ``stdin`` as ``bytes``.
    :raises SerializationError: If it is not a request.
    """
    document = loads(line)
    if not isinstance(document, dict):
        raise SerializationError("a request must be a JSON object")
    identifier, argv = document.get("id"), document.get("argv")
    stdin = document.get("stdin", "")
    if not isinstance(identifier, int) or isinstance(identifier, bool):
        raise SerializationError("a request needs an integer id")
    if not (isinstance(argv, list)
            and all(isinstance(word, str) for word in argv)):
        raise SerializationError("a request needs argv, a list of strings")
    if not isinstance(stdin, str):
        raise SerializationError("a request's stdin must be a string")
    return identifier, argv, stdin.encode("utf-8")


def encode_response(identifier, exit_code, stdout, stderr):
    """
    :param identifier: The request's id (``None`` for an unreadable one).
    :param int exit_code: The call's exit status.
    :param str stdout: What it wrote to standard output.
    :param str stderr: What it wrote to standard error.
    :return: The answer line (``bytes``, newline included).
    """
    return _line({"id": identifier, "exit": exit_code, "stdout": stdout,
                  "stderr": stderr})


def encode_log(message):
    """
    :param dict message: An eliot message.
    :return: The line carrying it to the client (``bytes``).
    """
    return (json.dumps({"eliot": message}, default=json_default,
                       separators=(",", ":")) + "\n").encode("utf-8")


def encode_progress(identifier, volume, target, sent, total):
    """
    :param int identifier: The id of the request sending data.
    :param str volume: The volume being sent.
    :param str target: The node receiving it.
    :param int sent: Bytes sent so far.
    :param total: Bytes the transfer will send in all, or ``None`` if
        unknown.
    :return: The progress line (``bytes``, newline included).
    """
    return _line({"id": identifier, "progress": {
        "volume": volume, "target": target, "sent": sent, "total": total}})


def _count(value):
    return (isinstance(value, int) and not isinstance(value, bool)
            and value >= 0)


def _progress(document):
    """
    :return: ``("progress", (id, sent, total))`` for a well-formed progress
        line, else ``(None, None)``.
    """
    progress, identifier = document["progress"], document.get("id")
    if not isinstance(progress, dict) or not _count(identifier):
        return None, None
    sent, total = progress.get("sent"), progress.get("total")
    if not _count(sent) or not (total is None or _count(total)):
        return None, None
    return "progress", (identifier, sent, total)


def decode_session_line(line):
    """
    :param bytes line: A line from a session's standard output.
    :return: ``("answer", (id, exit, stdout bytes, stderr bytes))``,
        ``("eliot", message dict)``, ``("progress", (id, sent, total))``,
        or ``(None, None)`` for a line that is none of them (whatever a
        login script printed, a malformed progress line, a kind of line
        this version does not know).
    """
    try:
        document = loads(line)
    except SerializationError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    if isinstance(document.get("eliot"), dict):
        return "eliot", document["eliot"]
    if "progress" in document:
        return _progress(document)
    exit_code = document.get("exit")
    stdout, stderr = document.get("stdout"), document.get("stderr")
    if (isinstance(exit_code, int) and not isinstance(exit_code, bool)
            and isinstance(stdout, str) and isinstance(stderr, str)
            and "id" in document):
        return "answer", (document["id"], exit_code,
                          stdout.encode("utf-8"), stderr.encode("utf-8"))
    return None, None
