"""
``python -m flocker.volume.test._linger SECONDS CODE -- COMMAND...``: run
COMMAND with this process's standard input and output, then keep them open
SECONDS more and exit with CODE (or COMMAND's own code if it failed): a
remote command whose process (or SSH connection) takes long to end after it
has answered, and fails then.  Test tooling only (a separate process, so it
may block).
"""

import subprocess
import sys
import time


def main(argv):
    seconds, code = float(argv[1]), int(argv[2])
    command = argv[argv.index("--") + 1:]
    result = subprocess.run(command)
    time.sleep(seconds)
    sys.exit(result.returncode or code)


if __name__ == "__main__":
    main(sys.argv)
