#!/usr/bin/env python3
"""
Asks the Flocker agent of the lab node it runs on (inside that node's
namespaces: ``lab.run(node, [python, this file, ...])``) to do one thing,
over the agent's socket and protocol, as the deploy client would:

* ``key``: print the node's identity and own public key, as its report
  gives them (``{"node_id": ..., "public_key": ...}``);
* ``install KEYFILE``: install the nodes' trust described by the JSON file
  (``NodeKey``'s fields);
* ``expect NAME NODEID``: make the node expect volume ``NAME``'s first
  copy from node ``NODEID`` (its other volumes' expected senders kept), as
  a deploy tells a move's target before pushing;
* ``push NAME TARGET``: push volume ``NAME`` to node ``TARGET``; prints
  ``{"seconds": S, "bytes": N}``, the time around the agent's answer.

Used by ``benchmarks/agent_push.py``.
"""

import json
import sys
import time

from eliot import start_action
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.task import react

from flocker._bridge import DEFAULT_AGENT_SOCKET
from flocker._model import NodeKey
from flocker.node._amp import (
    PROTOCOL_VERSION, AgentClientProtocol, ExpectSenders, Hello,
    InstallNodeKey, PushVolume, Report,
)


@inlineCallbacks
def main(reactor, command, *arguments):
    protocol = AgentClientProtocol()
    yield connectProtocol(UNIXClientEndpoint(reactor, DEFAULT_AGENT_SOCKET),
                          protocol)
    yield protocol.callRemote(Hello, version=PROTOCOL_VERSION,
                              address="benchmark")
    with start_action(action_type="flocker:benchmark:agent") as action:
        task = action.serialize_task_id().decode("ascii")
    if command == "key":
        answer = yield protocol.callRemote(Report, eliot_task=task)
        state = answer["state"]
        print(json.dumps({"node_id": state.node_id,
                          "public_key": state.node_key.public_key}))
    elif command == "install":
        with open(arguments[0]) as f:
            node_key = NodeKey(**json.load(f))
        yield protocol.callRemote(InstallNodeKey, eliot_task=task,
                                  node_key=node_key)
    elif command == "expect":
        name, node_id = arguments
        answer = yield protocol.callRemote(Report, eliot_task=task)
        senders = answer["state"].expected_senders.set(
            name, frozenset([node_id]))
        yield protocol.callRemote(ExpectSenders, eliot_task=task,
                                  senders=senders)
    elif command == "push":
        name, target = arguments
        started = time.monotonic()
        answer = yield protocol.callRemote(PushVolume, eliot_task=task,
                                           name=name, target=target)
        seconds = time.monotonic() - started
        print(json.dumps({"seconds": seconds,
                          "bytes": answer["sent"]}))
    else:
        raise SystemExit("unknown command %r" % (command,))
    protocol.transport.loseConnection()


if __name__ == "__main__":
    react(main, sys.argv[1:])
