"""
The protocol between the deploy client and a node's agent
(``flocker-node agent``): Twisted AMP, one command per ``INodeAgent``
operation.  Both sides import it from here (the node side never imports the
client side).

The connection
==============

The agent listens on a Unix socket (:data:`DEFAULT_AGENT_SOCKET`).  The
client reaches it through its SSH connection to the node: a
``direct-streamlocal@openssh.com`` channel to the socket, or, where the
node's sshd refuses those, the standard input and output of
``flocker-node-bridge`` (see :mod:`flocker._bridge`).  Either way the bytes
are AMP boxes, both ways.

The first command on a connection is :class:`Hello`: the client says which
protocol version it speaks and by which address the deployment knows the
node (the agent puts it in reports and link variables).  An agent speaking
another version refuses with :class:`VersionMismatch`; any other command
before a successful ``Hello`` is refused with :class:`HelloFirst`.

Every operation command carries:

``eliot_task``
    The client's serialised eliot task id (``Action.serialize_task_id()``):
    the agent continues that task, so the node's work is part of the
    deploy's one log tree.  While a command runs, the agent sends the eliot
    messages of that task back to the client with :class:`Log`.
``lock`` (optional)
    The deploy (a random id) whose lease on the node the command takes or
    renews before acting; :class:`DeployLocked` if another deploy holds it.
    The lease ends with :class:`ReleaseLock`, or when the connection that
    took it closes.

Values are the JSON documents of :mod:`flocker._serialize` (so fields added
to the models travel without a protocol change), split over as many AMP
values as they need (:class:`Document`), at most
:data:`MAXIMUM_DOCUMENT_BYTES` each.

Volume transfers with a ``transfer`` number send :class:`Progress` commands
to the client while data flows (at most one per
:data:`PROGRESS_INTERVAL` per transfer, plus the final figures).

Errors are typed: :class:`OperationFailed` (the node could not do it; one
line saying why), :class:`DeployLocked`, :class:`HelloFirst`,
:class:`VersionMismatch`, :class:`BadRequest` (arguments that do not
decode).  A command the agent does not know gets AMP's own "unhandled
command" error; none of these ends the connection.
"""

import attr
from eliot import write_traceback
from pyrsistent import pmap
from twisted.internet.defer import Deferred
from pyrsistent import pvector
from twisted.protocols import amp

from .._bridge import DEFAULT_AGENT_SOCKET
from .._serialize import (
    SerializationError, application_from_dict, application_to_dict, dumps,
    links_from_list, links_to_list, loads, node_state_from_dict,
    node_state_to_dict, replication_from_dict, replication_to_dict,
    route_from_dict, route_to_dict,
)
from ..volume._seed import MAX_SEED_SIZE

__all__ = [
    "PROTOCOL_VERSION", "DEFAULT_AGENT_SOCKET", "MAXIMUM_DOCUMENT_BYTES",
    "PROGRESS_INTERVAL", "BAD_REQUEST",
    "Document", "ApplicationArgument", "NodeStateArgument",
    "RoutesArgument", "NodeKeyArgument", "JSONArgument", "LinksArgument",
    "OperationFailed", "DeployLocked", "HelloFirst", "VersionMismatch",
    "BadRequest",
    "Hello", "Report", "StartApplication", "StopApplication",
    "CreateApplication",
    "CreateVolume", "PushVolume", "HandoffVolume", "PrepareHandoff",
    "ReleaseVolume",
    "AcquireVolume", "TakeOverVolume", "FenceVolume", "SetRoutes", "SetLinks",
    "InstallNodeKey", "RotateNodeKey", "PullImage", "Logs",
    "DeleteVolume", "Doctor", "SeedVolume", "Bytes", "WaitForApplication", "NotReady",
    "not_ready_description", "not_ready_from_description", "ReleaseLock", "LogLinesArgument",
    "DoctorReportArgument",
    "Progress", "Log", "OPERATIONS", "AgentClientProtocol",
    "encode_routes", "decode_routes", "encode_node_key", "decode_node_key",
    "SetReplication",
    "SetAutomatic",
    "ExpectSenders",
]

#: Version of the protocol described here, raised whenever a client of
#: this version may send a command (or an argument) an agent of the
#: previous one does not know: the ``Hello`` that opens every connection
#: then refuses the pair in one line before any step runs, instead of a
#: deploy failing half-way with AMP's "unhandled command".
#:
#: 1. The one-process-per-call protocol of earlier development builds
#:    (never released).
#: 2. AMP, one command per ``INodeAgent`` operation.
#: 3. :class:`PrepareHandoff` and :class:`ExpectSenders` (every deploy
#:    sends ``ExpectSenders`` before its first push).
#: 4. :class:`StopApplication`'s ``keep`` (a move deletes the old
#:    container once the new one started) and :class:`CreateApplication`
#:    (a move creates the new container while the old one runs).
PROTOCOL_VERSION = 4


#: The longest document (a report, an application, a route table, a batch
#: of log messages) either side accepts.  A report of thousands of
#: applications is a few MiB.
MAXIMUM_DOCUMENT_BYTES = 32 * 1024 * 1024

#: Least seconds between two progress commands of one transfer (plus the
#: final one): enough for a live view, little enough not to crowd the
#: connection.
PROGRESS_INTERVAL = 0.25

#: AMP error code of :class:`BadRequest`.
BAD_REQUEST = b"BAD_REQUEST"


def _split(strings, name, data):
    """
    Put ``data`` in ``strings`` as AMP values: the first under ``name``,
    the rest under ``NAME.1``, ``NAME.2``, ... (one AMP value holds at most
    65,535 bytes).
    """
    step = amp.MAX_VALUE_LENGTH
    strings[name] = data[:step]
    for number, start in enumerate(range(step, len(data), step), 1):
        strings[b"%s.%d" % (name, number)] = data[start:start + step]


def _join(argument, name, strings, limit):
    """
    Take the values :func:`_split` made out of ``strings`` and join them.

    :param amp.Argument argument: The argument read (for ``optional``).
    :param bytes name: Its wire name.
    :param dict strings: The box's values.
    :param int limit: The most bytes accepted.
    :return: The ``bytes``, or ``None`` for an optional argument left out.
    :raises SerializationError: If a mandatory argument is missing or the
        parts add up to more than ``limit`` bytes (checked as they are read).
    """
    first = strings.pop(name, None)
    if first is None:
        if not argument.optional:
            raise SerializationError("argument %s is missing" % (
                name.decode("ascii"),))
        return None
    parts, number, size, part = [], 0, 0, first
    while part is not None:
        size += len(part)
        if size > limit:
            raise SerializationError("%s is longer than %d bytes" % (
                name.decode("ascii"), limit))
        parts.append(part)
        number += 1
        part = strings.pop(b"%s.%d" % (name, number), None)
    return b"".join(parts)


class Document(amp.Argument):
    """
    A value sent as a JSON document, split over as many AMP values as it
    needs (one AMP value holds at most 65,535 bytes): the first under the
    argument's name, the others under ``NAME.1``, ``NAME.2``, ...
    """

    def __init__(self, to_json, from_json, optional=False):
        """
        :param to_json: Callable turning a value into a JSON-compatible
            structure.
        :param from_json: Callable turning such a structure back into a
            value, raising ``SerializationError`` for a wrong one.
        :param bool optional: Whether the argument may be left out
            (``None``).
        """
        amp.Argument.__init__(self, optional)
        self._to_json = to_json
        self._from_json = from_json

    def toBox(self, name, strings, objects, proto):
        value = self.retrieve(objects, amp._wireNameToPythonIdentifier(name),
                              proto)
        if self.optional and value is None:
            return
        data = dumps(self._to_json(value)).encode("utf-8")
        if len(data) > MAXIMUM_DOCUMENT_BYTES:
            raise SerializationError("a %s document of %d bytes is longer "
                                     "than the protocol allows (%d)" % (
                                         name.decode("ascii"), len(data),
                                         MAXIMUM_DOCUMENT_BYTES))
        _split(strings, name, data)

    def fromBox(self, name, strings, objects, proto):
        data = _join(self, name, strings, MAXIMUM_DOCUMENT_BYTES)
        objects[amp._wireNameToPythonIdentifier(name)] = (
            None if data is None else self._from_json(loads(data)))


class Bytes(amp.Argument):
    """
    Raw bytes of any length up to a limit, split over as many AMP values as
    they need (as :class:`Document` does).
    """

    def __init__(self, limit, optional=False):
        """
        :param int limit: The most bytes accepted.
        :param bool optional: Whether the argument may be left out.
        """
        amp.Argument.__init__(self, optional)
        self._limit = limit

    def toBox(self, name, strings, objects, proto):
        value = self.retrieve(objects, amp._wireNameToPythonIdentifier(name),
                              proto)
        if self.optional and value is None:
            return
        if len(value) > self._limit:
            raise SerializationError("%s: %d bytes, more than %d" % (
                name.decode("ascii"), len(value), self._limit))
        _split(strings, name, value)

    def fromBox(self, name, strings, objects, proto):
        objects[amp._wireNameToPythonIdentifier(name)] = _join(
            self, name, strings, self._limit)


def _routes_to_json(routes):
    return sorted((route_to_dict(route) for route in routes),
                  key=lambda entry: (entry["port"], entry["address"]))


def _routes_from_json(data):
    if not isinstance(data, list):
        raise SerializationError("expected a list of routes")
    return frozenset(route_from_dict(entry) for entry in data)


def _node_key_fields():
    from .._model import NodeKey
    return [field.name for field in attr.fields(NodeKey)]


def _node_key_to_json(node_key):
    # Every field of the model, whatever fields it gains.
    return attr.asdict(node_key)


def _node_key_from_json(data):
    from .._model import InvalidModel, NodeKey
    fields = _node_key_fields()
    if not isinstance(data, dict) or set(data) != set(fields):
        raise SerializationError("expected a node key: %s" % (
            ", ".join(fields),))
    try:
        return NodeKey(**data)
    except (InvalidModel, TypeError, ValueError) as e:
        raise SerializationError("not a node key: %s" % (e,))


def _identity(data):
    return data


def _log_lines_to_json(lines):
    return [list(line) for line in lines]


def _log_lines_from_json(data):
    if not isinstance(data, list) or not all(
            isinstance(line, list) and len(line) == 3
            and all(isinstance(part, str) for part in line)
            for line in data):
        raise SerializationError("expected [[stamp, stream, text]...]")
    return [tuple(line) for line in data]


def _doctor_to_json(report):
    from ._doctor import report_to_dict
    return report_to_dict(report)


def _doctor_from_json(data):
    from ._doctor import report_from_dict
    try:
        return report_from_dict(data)
    except (ValueError, TypeError, KeyError) as e:
        raise SerializationError("not a doctor report: %s" % (e,))


def DoctorReportArgument(optional=False):
    """
    :return: An argument carrying a ``DoctorReport``.
    """
    return Document(_doctor_to_json, _doctor_from_json, optional)


def LogLinesArgument(optional=False):
    """
    :return: An argument carrying a container's output: a ``list`` of
        ``(stamp, stream, text)`` tuples of ``str``.
    """
    return Document(_log_lines_to_json, _log_lines_from_json, optional)


def _application_with_contents(application):
    return application_to_dict(application, contents=True)


def ApplicationArgument(optional=False):
    """
    :return: An argument carrying an ``Application``, the content of its
        files included (what starting it needs; reports never carry it).
    """
    return Document(_application_with_contents, application_from_dict,
                    optional)


def NodeStateArgument(optional=False):
    """
    :return: An argument carrying a ``NodeState`` (a report).
    """
    return Document(node_state_to_dict, node_state_from_dict, optional)


def RoutesArgument(optional=False):
    """
    :return: An argument carrying a ``frozenset`` of ``Route``.
    """
    return Document(_routes_to_json, _routes_from_json, optional)


def LinksArgument(optional=False):
    """
    :return: An argument carrying a ``frozenset`` of ``Link``.
    """
    return Document(links_to_list, links_from_list, optional)


def NodeKeyArgument(optional=False):
    """
    :return: An argument carrying a ``NodeKey`` (the nodes' trust: public
        keys and host keys only).
    """
    return Document(_node_key_to_json, _node_key_from_json, optional)


def JSONArgument(optional=False):
    """
    :return: An argument carrying any JSON-compatible structure.
    """
    return Document(_identity, _identity, optional)


def encode_routes(routes):
    """
    :param routes: Iterable of ``Route``.
    :return: The route table as JSON text (``bytes``), sorted; the form
        ``flocker-node`` tools and tests read.
    """
    return dumps(_routes_to_json(routes)).encode("utf-8")


def decode_routes(data):
    """
    :param bytes data: Output of :func:`encode_routes`.
    :return: ``frozenset`` of ``Route``.
    :raises SerializationError: If it is not one.
    """
    return _routes_from_json(loads(data))


def encode_node_key(node_key):
    """
    :param NodeKey node_key: A node key.
    :return: Its JSON text (``bytes``).
    """
    return dumps(_node_key_to_json(node_key)).encode("utf-8")


def decode_node_key(data):
    """
    :param bytes data: Output of :func:`encode_node_key`.
    :return: The ``NodeKey``.
    :raises SerializationError: If it is not one.
    """
    return _node_key_from_json(loads(data))


# Errors ---------------------------------------------------------------------

class OperationFailed(Exception):
    """
    The node could not do what was asked; ``str()`` is one line saying why.
    """


class DeployLocked(Exception):
    """
    Another deploy holds the node's lock; ``str()`` says which and for how
    long.
    """


class HelloFirst(Exception):
    """
    A command arrived before a successful :class:`Hello`.
    """


class VersionMismatch(Exception):
    """
    The two sides speak different protocol versions.
    """


class NotReady(Exception):
    """
    An application waited for did not become ready; ``str()`` is the JSON
    text ``{"name": NAME, "reason": REASON}`` (see
    :func:`not_ready_description`), from which the client rebuilds the
    ``ApplicationNotReady`` the node raised.
    """


def not_ready_description(error):
    """
    :param ApplicationNotReady error: What the node raised.
    :return: The :class:`NotReady` description carrying it.
    """
    return dumps({"name": error.name, "reason": error.reason})


def not_ready_from_description(description):
    """
    :param str description: A :class:`NotReady` description.
    :return: The ``ApplicationNotReady`` it carries.
    :raises SerializationError: If it carries none.
    """
    from ._agent import ApplicationNotReady
    data = loads(description)
    if not (isinstance(data, dict) and isinstance(data.get("name"), str)
            and isinstance(data.get("reason"), str)):
        raise SerializationError("not an application-not-ready error")
    return ApplicationNotReady(data["name"], data["reason"])


class BadRequest(Exception):
    """
    A command's arguments did not decode (missing, malformed or oversized).
    """


_ERRORS = {OperationFailed: b"FAILED", DeployLocked: b"LOCKED",
           HelloFirst: b"HELLO_FIRST", BadRequest: BAD_REQUEST}


# Commands -------------------------------------------------------------------

class Hello(amp.Command):
    """
    Open the conversation: the client's protocol version and the node's
    address as the deployment knows it.  Answers the agent's protocol
    version and Flocker version.
    """
    arguments = [(b"version", amp.Integer()), (b"address", amp.Unicode())]
    response = [(b"version", amp.Integer()), (b"flocker", amp.Unicode())]
    errors = {VersionMismatch: b"VERSION", BadRequest: BAD_REQUEST}


class _Operation(amp.Command):
    """
    Arguments every operation carries (see the module documentation).
    """
    arguments = [(b"eliot_task", amp.Unicode()),
                 (b"lock", amp.Unicode(optional=True))]
    response = []
    errors = _ERRORS


def _operation(name, doc, arguments=(), response=(), errors=None):
    """
    :return: A command class with the common arguments, ``arguments``,
        ``response``, and the common errors plus ``errors``.
    """
    return type(name, (_Operation,), {
        "__doc__": doc,
        "commandName": name.encode("ascii"),
        "arguments": _Operation.arguments + list(arguments),
        "response": list(response),
        "errors": dict(list(_ERRORS.items()) + list((errors or {}).items())),
    })


Report = _operation(
    "Report", "``INodeAgent.report``.",
    response=[(b"state", NodeStateArgument())])

StartApplication = _operation(
    "StartApplication", "``INodeAgent.start_application``.",
    [(b"application", ApplicationArgument())])

CreateApplication = _operation(
    "CreateApplication", "``INodeAgent.create_application``.",
    [(b"application", ApplicationArgument())])

StopApplication = _operation(
    "StopApplication", "``INodeAgent.stop_application``.",
    [(b"name", amp.Unicode()), (b"keep", amp.Boolean(optional=True))])

CreateVolume = _operation(
    "CreateVolume", "``INodeAgent.create_volume``.",
    [(b"name", amp.Unicode()),
     (b"maximum_size", amp.Integer(optional=True))])

_TRANSFER = [(b"name", amp.Unicode()), (b"target", amp.Unicode()),
             (b"transfer", amp.Integer(optional=True))]

PushVolume = _operation(
    "PushVolume", "``INodeAgent.push_volume``; answers the bytes sent.",
    _TRANSFER, [(b"sent", amp.Integer())])

HandoffVolume = _operation(
    "HandoffVolume", "``INodeAgent.handoff_volume``; answers the bytes sent.",
    _TRANSFER, [(b"sent", amp.Integer())])

PrepareHandoff = _operation(
    "PrepareHandoff", "``INodeAgent.prepare_handoff``; answers at once.",
    [(b"name", amp.Unicode()), (b"target", amp.Unicode())])

ReleaseVolume = _operation(
    "ReleaseVolume", "``INodeAgent.release_volume``; answers the release.",
    _TRANSFER, [(b"sent", amp.Integer()), (b"snapshot", amp.Unicode()),
                (b"node_id", amp.Unicode())])

AcquireVolume = _operation(
    "AcquireVolume", "``INodeAgent.acquire_volume``.",
    [(b"name", amp.Unicode()), (b"snapshot", amp.Unicode()),
     (b"node_id", amp.Unicode())])

TakeOverVolume = _operation(
    "TakeOverVolume", "``INodeAgent.take_over_volume``.",
    [(b"name", amp.Unicode()), (b"epoch", amp.Integer())])

FenceVolume = _operation(
    "FenceVolume", "``INodeAgent.fence_volume``; answers the name a stale "
    "copy was set aside as.",
    [(b"name", amp.Unicode()), (b"owner", amp.Unicode()),
     (b"epoch", amp.Integer())],
    [(b"set_aside", amp.Unicode(optional=True))])

SetRoutes = _operation(
    "SetRoutes", "``INodeAgent.set_routes``.",
    [(b"routes", RoutesArgument())])

SetLinks = _operation(
    "SetLinks", "``INodeAgent.set_links``.",
    [(b"name", amp.Unicode()), (b"links", LinksArgument())])

InstallNodeKey = _operation(
    "InstallNodeKey", "``INodeAgent.install_node_key``.",
    [(b"node_key", NodeKeyArgument())])

RotateNodeKey = _operation(
    "RotateNodeKey", "``INodeAgent.rotate_node_key``.",
    [(b"stage", amp.Unicode())])

def _automatic_to_json(applications):
    return [application.to_dict() for application in applications]


def _automatic_from_json(data):
    from ._automatic_config import AutomaticApplication
    if not isinstance(data, list):
        raise SerializationError("expected a list of automatic applications")
    return pvector(AutomaticApplication.from_dict(item) for item in data)


SetAutomatic = _operation(
    "SetAutomatic", "``INodeAgent.set_automatic``.",
    [(b"applications", Document(_automatic_to_json, _automatic_from_json))])

PullImage = _operation(
    "PullImage", "``INodeAgent.pull_image``.",
    [(b"image", amp.Unicode()), (b"dry_run", amp.Boolean())])

Logs = _operation(
    "Logs", "``INodeAgent.logs``; answers the lines.",
    [(b"name", amp.Unicode()), (b"since", amp.Unicode(optional=True)),
     (b"tail", amp.Integer(optional=True))],
    [(b"lines", LogLinesArgument())])

WaitForApplication = _operation(
    "WaitForApplication", "``INodeAgent.wait_for_application``; fails "
    "with :class:`NotReady` when the application is not ready.",
    [(b"name", amp.Unicode()), (b"condition", amp.Unicode()),
     (b"timeout", amp.Float())], errors={NotReady: b"NOT_READY"})


SeedVolume = _operation(
    "SeedVolume", "``INodeAgent.seed_volume``; answers whether it filled "
    "the volume.",
    [(b"name", amp.Unicode()), (b"archive", Bytes(MAX_SEED_SIZE))],
    [(b"seeded", amp.Boolean())])

DeleteVolume = _operation(
    "DeleteVolume", "``INodeAgent.delete_volume``.",
    [(b"name", amp.Unicode())])

Doctor = _operation(
    "Doctor", "``INodeAgent.doctor``; answers the node's checks.",
    response=[(b"report", DoctorReportArgument())])

def _replications_to_json(replications):
    return [replication_to_dict(replications[name])
            for name in sorted(replications)]


def _replications_from_json(data):
    if not isinstance(data, list):
        raise SerializationError("expected a list of replications")
    replications = [replication_from_dict(entry) for entry in data]
    return pmap({replication.volume: replication
                 for replication in replications})


SetReplication = _operation(
    "SetReplication", "``INodeAgent.set_replication``.",
    [(b"replications", Document(_replications_to_json,
                                _replications_from_json))])

def _senders_to_json(senders):
    return {name: sorted(senders[name]) for name in sorted(senders)}


def _senders_from_json(data):
    # Imported here: the record's rules belong to the agent's store.
    from ._senders import check_senders
    if not isinstance(data, dict) or not all(
            isinstance(nodes, list) for nodes in data.values()):
        raise SerializationError("expected a map of volume to node list")
    try:
        return check_senders(data)
    except ValueError as e:
        raise SerializationError(str(e))


ExpectSenders = _operation(
    "ExpectSenders", "``INodeAgent.expect_senders``.",
    [(b"senders", Document(_senders_to_json, _senders_from_json))])

ReleaseLock = _operation(
    "ReleaseLock", "End the lease of the deploy named by ``lock``.")


class Progress(amp.Command):
    """
    Agent to client: how far volume transfer ``transfer`` got.
    """
    arguments = [(b"transfer", amp.Integer()), (b"sent", amp.Integer()),
                 (b"total", amp.Integer(optional=True))]
    requiresAnswer = False


class Log(amp.Command):
    """
    Agent to client: eliot messages of the tasks the client's commands
    continue (a list of message dictionaries).
    """
    arguments = [(b"messages", JSONArgument())]
    requiresAnswer = False


#: The operation commands, by ``INodeAgent`` method name.
OPERATIONS = {
    "set_automatic": SetAutomatic,
    "report": Report,
    "start_application": StartApplication,
    "stop_application": StopApplication,
    "create_application": CreateApplication,
    "create_volume": CreateVolume,
    "push_volume": PushVolume,
    "handoff_volume": HandoffVolume,
    "prepare_handoff": PrepareHandoff,
    "release_volume": ReleaseVolume,
    "acquire_volume": AcquireVolume,
    "take_over_volume": TakeOverVolume,
    "fence_volume": FenceVolume,
    "set_routes": SetRoutes,
    "set_links": SetLinks,
    "install_node_key": InstallNodeKey,
    "rotate_node_key": RotateNodeKey,
    "pull_image": PullImage,
    "logs": Logs,
    "delete_volume": DeleteVolume,
    "seed_volume": SeedVolume,
    "wait_for_application": WaitForApplication,
    "doctor": Doctor,
    "set_replication": SetReplication,
    "expect_senders": ExpectSenders,
}


class AgentClientProtocol(amp.AMP):
    """
    The client side of a connection to a node's agent: answers the agent's
    :class:`~flocker.node._amp.Progress` and :class:`~flocker.node._amp.Log`
    commands.

    :ivar lost: ``Deferred`` firing with ``None`` once the connection is
        gone.
    """

    def __init__(self, log=None):
        """
        :param log: Callable given each eliot message (a ``dict``) the
            agent sends, or ``None`` to drop them.
        """
        amp.AMP.__init__(self)
        self._log = log
        self._transfers = {}
        self._next_transfer = 0
        self.lost = Deferred()

    def watch_transfer(self, update):
        """
        :param update: Callable given ``(sent, total)`` for each progress
            report of one transfer.
        :return: The transfer's number, to send with its command.
        """
        self._next_transfer += 1
        self._transfers[self._next_transfer] = update
        return self._next_transfer

    def forget_transfer(self, number):
        """
        :param int number: A number from :meth:`watch_transfer`.
        """
        self._transfers.pop(number, None)

    @Progress.responder
    def progress(self, transfer, sent, total=None):
        update = self._transfers.get(transfer)
        if update is not None:
            try:
                update(sent, total)
            except Exception:
                # A broken display must not cost the deploy its answers.
                write_traceback()
        return {}

    @Log.responder
    def log(self, messages):
        if self._log is not None and isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict):
                    self._log(message)
        return {}

    def connectionLost(self, reason):
        amp.AMP.connectionLost(self, reason)
        if not self.lost.called:
            self.lost.callback(None)
