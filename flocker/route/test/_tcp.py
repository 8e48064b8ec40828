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
"""

import json
import os
import socket
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
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
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


def sink(port, seconds=600.0):
    server = _listen(port)
    _exit_after(seconds)
    print("ready", flush=True)
    while True:
        connection, _ = server.accept()
        thread = threading.Thread(target=_drain, args=(connection,))
        thread.daemon = True
        thread.start()


def push(address, port, size):
    block = memoryview(bytes(_CHUNK))
    started = time.perf_counter()
    with socket.create_connection((address, port), timeout=30) as s:
        remaining = size
        while remaining > 0:
            step = min(remaining, _CHUNK)
            s.sendall(block[:step])
            remaining -= step
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(64)
            if not chunk:
                break
            answer += chunk
    seconds = time.perf_counter() - started
    received = int(answer.strip() or b"-1")
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
    else:
        sys.stderr.write("unknown mode %r\n" % (mode,))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
