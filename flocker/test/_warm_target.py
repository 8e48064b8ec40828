"""
A command for the tests of :mod:`flocker._warm`: what it does is its first
argument.
"""

import json
import os
import signal
import sys
import time

#: The entry-point table a test server runs.
ENTRY = {"warm-test": ("flocker.test._warm_target", "main")}


def main():
    """
    ``echo``: print, as JSON, what the command was started with (arguments,
    working directory, umask, ``WARM_TEST``, standard input, pid and parent
    pid); ``exit N``: exit with ``N``; ``term``: die of SIGTERM; ``wait
    FILE``: write the pid to ``FILE`` and sleep (at most 60 s); ``message``:
    exit with a message.

    :return: Exit status.
    """
    command = sys.argv[1]
    if command == "echo":
        umask = os.umask(0)
        os.umask(umask)
        sys.stdout.write(json.dumps({
            "argv": sys.argv[1:], "cwd": os.getcwd(), "umask": umask,
            "env": os.environ.get("WARM_TEST"), "stdin": sys.stdin.read(),
            "pid": os.getpid(), "ppid": os.getppid()}) + "\n")
        sys.stderr.write("to stderr\n")
        return 0
    if command == "exit":
        return int(sys.argv[2])
    if command == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        return 0
    if command == "wait":
        with open(sys.argv[2], "w") as f:
            f.write("%d\n" % (os.getpid(),))
        time.sleep(60)
        return 0
    if command == "message":
        raise SystemExit("it went wrong")
    return 99
