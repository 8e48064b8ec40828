"""
Child of ``benchmarks/deploy.py``, run in the lab's client namespace: the
no-op redeploy through the library API inside one running Twisted process,
as a program embedding Flocker does it (``noop3_inprocess_s``).

    python benchmarks/_inprocess.py DEPLOYMENT APPLICATIONS REPS

Everything Flocker needs is imported and the reactor runs before the clock
starts; each repetition then connects to every node (a fresh SSH runner:
key exchange, authentication, the agent's channel and handshake), gathers
the reports, plans, finds nothing to do, releases the nodes and closes the
connections.  Prints one JSON object: ``{"seconds": [...]}``.
"""

import json
import os
import sys
import time


def main(argv):
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    from flocker.cli import (
        deploy_over_ssh, load_configuration, ssh_command_runner,
    )

    deployment_path, applications_path, reps = argv[0], argv[1], int(argv[2])
    deployment = load_configuration(deployment_path, applications_path)
    identity = os.path.expanduser("~/.ssh/id_ed25519")
    samples = []

    async def run(reactor):
        for _ in range(reps):
            started = time.monotonic()
            runner = ssh_command_runner(reactor, identity_files=[identity])
            try:
                result = await deploy_over_ssh(reactor, deployment, runner)
            finally:
                await runner.close()
            samples.append(time.monotonic() - started)
            if not result.converged or any(result.changed.values()):
                raise SystemExit("the cluster was not converged: %r" % (
                    result,))
        print(json.dumps({"seconds": samples}), flush=True)

    react(lambda reactor: ensureDeferred(run(reactor)))


if __name__ == "__main__":
    main(sys.argv[1:])
