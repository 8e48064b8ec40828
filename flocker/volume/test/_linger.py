"""
``python -m flocker.volume.test._linger GATE CODE -- COMMAND...``: run
COMMAND with this process's standard input and output, then keep them open
until the file GATE exists and exit with CODE (or COMMAND's own code if it
failed): a remote command whose process (or SSH connection) ends only well
after it has answered, and fails then.  The test decides when by making
GATE, so what it checks does not depend on how fast the machine is.  Test
tooling only (a separate process, so it may block).
"""

import os
import subprocess
import sys
import time

#: Seconds between looks at the gate, and the most to wait for it (a test
#: that never opens its gate fails, late, instead of hanging).
_INTERVAL = 0.05
_LONGEST = 120.0


def main(argv):
    gate, code = argv[1], int(argv[2])
    command = argv[argv.index("--") + 1:]
    result = subprocess.run(command)
    for _ in range(int(_LONGEST / _INTERVAL)):
        if os.path.exists(gate):
            break
        time.sleep(_INTERVAL)
    sys.exit(result.returncode or code)


if __name__ == "__main__":
    main(sys.argv)
