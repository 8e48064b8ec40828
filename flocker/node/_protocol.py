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
``set_routes(routes)``
    ``set-routes``; stdin a route table (below); stdout ignored.

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
    "maximum_retry_count"}}``.
route table
    ``{"routes": [{"port": P, "address": A}…]}`` sorted by port then
    address: the node's complete set of routes (an empty list removes all).

Exit status: 0 when the operation is done (every subcommand is idempotent);
otherwise non-zero (1 operation failed, 2 bad usage, 3 protocol version not
spoken) with a one-line human-readable message as the LAST line of standard
error.  The client shows that line, prefixed with the node and the step.
"""

from .._serialize import (
    SerializationError, application_to_dict, application_from_dict, dumps,
    loads, node_state_from_dict, route_from_dict, route_to_dict,
)

__all__ = [
    "PROTOCOL_VERSION", "PROTOCOL_OPTION", "ADDRESS_OPTION",
    "ELIOT_TASK_OPTION", "DEFAULT_NODE_COMMAND",
    "REPORT", "START_APPLICATION", "STOP_APPLICATION", "CREATE_VOLUME",
    "PUSH_VOLUME", "HANDOFF_VOLUME", "SET_ROUTES", "SUBCOMMANDS",
    "MAXIMUM_SIZE_OPTION", "BYTES_KEY", "ROUTES_KEY",
    "EXIT_FAILED", "EXIT_USAGE", "EXIT_PROTOCOL", "EXIT_LOCKED",
    "LOCK_OPTION", "RELEASE_LOCK",
    "encode_application", "decode_application",
    "encode_routes", "decode_routes",
    "encode_bytes_sent", "decode_bytes_sent", "decode_report",
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
SUBCOMMANDS = (REPORT, START_APPLICATION, STOP_APPLICATION, CREATE_VOLUME,
               PUSH_VOLUME, HANDOFF_VOLUME, SET_ROUTES)

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
    :param Application application: An application.
    :return: Its protocol document (``bytes``).
    """
    return dumps(application_to_dict(application)).encode("utf-8")


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
