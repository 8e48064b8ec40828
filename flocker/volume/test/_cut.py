"""
``python -m flocker.volume.test._cut N -- COMMAND...``: run COMMAND, pass it
the first N bytes of standard input, then kill it and exit with 255, the way
a dropped SSH connection ends a remote command in the middle of a stream.
Test tooling only (a separate process, so it may block).
"""

import os
import subprocess
import sys


def main(argv):
    limit = int(argv[1])
    command = argv[argv.index("--") + 1:]
    child = subprocess.Popen(command, stdin=subprocess.PIPE)
    passed = 0
    while passed < limit:
        data = os.read(0, min(65536, limit - passed))
        if not data:
            break
        child.stdin.write(data)
        child.stdin.flush()
        passed += len(data)
    child.kill()
    child.wait()
    sys.stderr.write("connection to node closed after %d bytes\n" % (passed,))
    sys.exit(255)


if __name__ == "__main__":
    main(sys.argv)
