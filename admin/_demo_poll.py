"""
Measure an application's unavailability: connect to ADDRESS:PORT every 10 ms
and send a Redis ``PING``, until STOP_FILE exists or SECONDS have passed.
Prints one JSON object: the longest gap between two answered polls, and the
numbers of polls and answers.

Usage: python3 _demo_poll.py ADDRESS PORT STOP_FILE SECONDS

Only for addresses of the lab's own namespaces: the loop is bounded in time
and stops by itself.
"""

import json
import os
import socket
import sys
import time


def poll_once(address, port):
    """
    :return: ``True`` if the server answered ``+PONG``.
    """
    try:
        with socket.create_connection((address, port), timeout=0.5) as s:
            s.settimeout(0.5)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def main(address, port, stop_file, seconds):
    deadline = time.monotonic() + float(seconds)
    last_ok = None
    longest = 0.0
    polls = answers = 0
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        polls += 1
        if poll_once(address, int(port)):
            now = time.monotonic()
            answers += 1
            if last_ok is not None:
                longest = max(longest, now - last_ok)
            last_ok = now
        time.sleep(0.01)
    print(json.dumps({"longest_gap_s": round(longest, 3), "polls": polls,
                      "answers": answers}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
