"""
A writer for the write-safety test: append numbered records to a Redis list
through ADDRESS:PORT, one ``RPUSH`` at a time, until STOP_FILE exists or
SECONDS have passed (whichever comes first; at most 100,000 records).  A
record counts as acknowledged once Redis answered it with the list's new
length.  Connections that fail are retried every 10 ms; an unanswered
record is sent again (Redis may then hold it twice, never lose it).

Prints one JSON object: ``{"acknowledged": [numbers...], "attempts": N,
"failures": N}``.

Usage: python3 _writer.py ADDRESS PORT KEY STOP_FILE SECONDS

Only for addresses of the lab's own namespaces: the loop is bounded and
stops by itself.
"""

import json
import os
import socket
import sys
import time

MAX_RECORDS = 100000


def _command(*words):
    """
    :return: A Redis protocol request for ``words``.
    """
    parts = [b"*%d\r\n" % (len(words),)]
    for word in words:
        data = word.encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _reply(connection):
    """
    :return: The first line of Redis's reply, without its line end.
    """
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = connection.recv(256)
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data[:-2]


def main(address, port, key, stop_file, seconds):
    deadline = time.monotonic() + float(seconds)
    acknowledged = []
    attempts = failures = 0
    connection = None
    record = 1
    while (time.monotonic() < deadline and not os.path.exists(stop_file)
           and record <= MAX_RECORDS):
        attempts += 1
        try:
            if connection is None:
                connection = socket.create_connection((address, int(port)),
                                                      timeout=1.0)
            connection.sendall(_command("RPUSH", key, str(record)))
            answer = _reply(connection)
        except OSError:
            failures += 1
            if connection is not None:
                connection.close()
                connection = None
            time.sleep(0.01)
            continue
        if answer.startswith(b":"):
            acknowledged.append(record)
            record += 1
        else:
            # An error reply (say, a read-only replica): not acknowledged.
            failures += 1
            time.sleep(0.01)
    if connection is not None:
        connection.close()
    print(json.dumps({"acknowledged": acknowledged, "attempts": attempts,
                      "failures": failures}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
