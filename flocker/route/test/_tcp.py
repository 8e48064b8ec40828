"""
Tiny TCP endpoints the routing tests and the routing benchmark run inside
network namespaces (``ip netns exec NS python3 .../_tcp.py MODE ...``); it
imports nothing from Flocker, so it starts fast.  Every mode has a bounded
lifetime or timeout, so a test that dies half-way leaves nothing running for
long.

Modes:

``serve PORT NAME [SECONDS]``
    Listen on 0.0.0.0:PORT; answer each connection with ``NAME\\n`` and
    close it.  Prints ``ready`` once listening; exits after SECONDS (300).
``ask ADDRESS PORT [TIMEOUT]``
    Connect, print the one line the server sends; exit 1 with the error on
    stderr if that fails within TIMEOUT seconds (3).
``sink PORT [SECONDS]``
    Listen on 0.0.0.0:PORT; read each connection to its end and answer with
    the number of bytes read.  Prints ``ready``; exits after SECONDS (600).
``push ADDRESS PORT BYTES``
    Send BYTES bytes, half-close, wait for the sink's count and print
    ``{"bytes": N, "seconds": S}`` (S measured from connect to the count).
``meter PORT [SECONDS]``
    Listen on 0.0.0.0:PORT; each connection starts with a segment size
    (8 bytes, big-endian); answer every segment of that many bytes read
    with one byte, and the connection's end with the number of bytes read
    after the size.  Prints ``ready``; exits after SECONDS (600).
``pushes BYTES ADDRESS:PORT [ADDRESS:PORT ...]``
    Open one connection to each distinct target (to ``meter`` sinks) and
    send one untimed segment of BYTES over each; then send a segment of
    BYTES to each target in the order given, each timed from its first
    byte until the sink acknowledges its last, over the connections
    already open (no connect, no slow start in the figure).  Prints
    ``{"bytes": {TARGET: N, ...}, "seconds": [S, ...]}``: what each sink
    counted in all, and the timed segments' seconds in order; exit 1
    unless every sink counted every byte sent.
"""

import json
import os
import socket
import struct
import sys
import threading
import time

_CHUNK = 1 << 20


def _listen(port):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(64)
    return server


def _exit_after(seconds):
    # The accept loop blocks the main thread; only _exit ends the process.
    timer = threading.Timer(seconds, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


def serve(port, name, seconds=300.0):
    server = _listen(port)
    _exit_after(seconds)
    print("ready", flush=True)
    reply = (name + "\n").encode("utf-8")
    while True:
        connection, _ = server.accept()
        try:
            connection.sendall(reply)
        except OSError:
            pass
        finally:
            connection.close()


def ask(address, port, timeout=3.0):
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = _read_line(s, 1024)
    except OSError as error:
        sys.stderr.write("%s:%d: %s\n" % (address, port, error))
        return 1
    sys.stdout.write(data.decode("utf-8", "replace"))
    return 0


def _drain(connection):
    total = 0
    buffer = bytearray(_CHUNK)
    try:
        while True:
            count = connection.recv_into(buffer)
            if not count:
                break
            total += count
        connection.sendall(b"%d\n" % (total,))
    finally:
        connection.close()


def _receive(connection, size):
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed after %d bytes" % (len(data),))
        data += chunk
    return data


def _meter(connection):
    total = 0
    buffer = bytearray(_CHUNK)
    try:
        (segment,) = struct.unpack(">Q", _receive(connection, 8))
        left = segment
        while True:
            count = connection.recv_into(buffer, min(left, _CHUNK))
            if not count:
                break
            total += count
            left -= count
            if left == 0:
                connection.sendall(b".")
                left = segment
        connection.sendall(b"%d\n" % (total,))
    except (OSError, EOFError):
        pass
    finally:
        connection.close()


def _accept(port, seconds, handle):
    """
    Listen on ``port``, say ``ready``, and hand every connection to
    ``handle`` in a thread of its own until ``seconds`` have passed.
    """
    server = _listen(port)
    _exit_after(seconds)
    print("ready", flush=True)
    while True:
        connection, _ = server.accept()
        thread = threading.Thread(target=handle, args=(connection,))
        thread.daemon = True
        thread.start()


def meter(port, seconds=600.0):
    _accept(port, seconds, _meter)


def _send(connection, size, block):
    """
    Send ``size`` bytes of zeros over ``connection``, in pieces of
    ``block``.
    """
    remaining = size
    while remaining > 0:
        step = min(remaining, _CHUNK)
        connection.sendall(block[:step])
        remaining -= step


def _read_line(connection, size):
    """
    Read from ``connection``, ``size`` bytes at a time, until what was read
    ends with a newline or the peer closed.

    :return: The bytes read.
    """
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(size)
        if not chunk:
            break
        data += chunk
    return data


def _count(connection):
    """
    Half-close ``connection`` and read the sink's count of what it received.

    :return: The count, or -1 if the sink gave none.
    """
    connection.shutdown(socket.SHUT_WR)
    return int(_read_line(connection, 64).strip() or b"-1")


def _segment(connection, size, block):
    """
    :return: Seconds from sending the first of ``size`` bytes over
        ``connection`` until the sink acknowledges the last.
    """
    started = time.perf_counter()
    _send(connection, size, block)
    if _receive(connection, 1) != b".":
        raise EOFError("no acknowledgement")
    return time.perf_counter() - started


def pushes(size, targets):
    block = memoryview(bytes(_CHUNK))
    connections = {}
    for target in targets:
        if target not in connections:
            address, port = target.rsplit(":", 1)
            connection = socket.create_connection((address, int(port)),
                                                  timeout=30)
            connection.sendall(struct.pack(">Q", size))
            _segment(connection, size, block)
            connections[target] = connection
    seconds = [_segment(connections[target], size, block)
               for target in targets]
    counted = {}
    for target, connection in connections.items():
        counted[target] = _count(connection)
        connection.close()
    print(json.dumps({"bytes": counted, "seconds": seconds}))
    sent = {target: size * (1 + targets.count(target)) for target in counted}
    return 0 if counted == sent else 1


def sink(port, seconds=600.0):
    _accept(port, seconds, _drain)


def push(address, port, size):
    block = memoryview(bytes(_CHUNK))
    started = time.perf_counter()
    with socket.create_connection((address, port), timeout=30) as s:
        _send(s, size, block)
        received = _count(s)
    seconds = time.perf_counter() - started
    print(json.dumps({"bytes": received, "seconds": seconds}))
    return 0 if received == size else 1


def main(argv):
    mode, arguments = argv[0], argv[1:]
    if mode == "serve":
        serve(int(arguments[0]), arguments[1], *map(float, arguments[2:]))
    elif mode == "ask":
        return ask(arguments[0], int(arguments[1]), *map(float, arguments[2:]))
    elif mode == "sink":
        sink(int(arguments[0]), *map(float, arguments[1:]))
    elif mode == "push":
        return push(arguments[0], int(arguments[1]), int(arguments[2]))
    elif mode == "meter":
        meter(int(arguments[0]), *map(float, arguments[1:]))
    elif mode == "pushes":
        return pushes(int(arguments[0]), arguments[1:])
    else:
        sys.stderr.write("unknown mode %r\n" % (mode,))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
