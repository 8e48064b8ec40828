"""
Flocker embedded in a Twisted program.

Parses a deployment from two configuration texts, deploys it on an in-memory
cluster of three node agents, then moves the database to another node with
its data, printing each plan and each result.  No root, Docker or ZFS: the
node agents are :class:`flocker.cli.FakeNodeAgent` values.

Run it with ``python docs/examples/embedded_deploy.py``; it exits 0 when both
deploys converged, the data arrived with the database and nothing is left to
do, 1 otherwise.
"""

import sys

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import react

from flocker import leaves, render_plan
from flocker.cli import (
    FakeCluster, deploy, format_summary, parse_configuration,
)

APPLICATIONS = """\
version: 1
applications:
  db:
    image: example/db:1.0
    ports: [{internal: 5432, external: 5432}]
    volume: {mountpoint: /var/lib/db, maximum_size: 1G}
  web:
    image: example/web:1.0
    ports: [{internal: 80, external: 8080}]
    links: [{local_port: 5432, remote_port: 5432, alias: db}]
"""

DEPLOYMENT = """\
version: 1
nodes:
  192.0.2.1: [{first}]
  192.0.2.2: [web]
  192.0.2.3: [{second}]
"""


def deployment_file(db_node):
    """
    :param str db_node: ``"192.0.2.1"`` or ``"192.0.2.3"``.
    :return: The deployment configuration placing ``db`` on ``db_node``.
    """
    return DEPLOYMENT.format(
        first="db" if db_node == "192.0.2.1" else "",
        second="db" if db_node == "192.0.2.3" else "")


@inlineCallbacks
def converge(clock, cluster, deployment, out):
    """
    Show the plan for ``deployment``, run it on ``cluster`` and show what
    happened.

    :param clock: The reactor, timing each change (or ``None``).
    :param FakeCluster cluster: The nodes.
    :param Deployment deployment: What they should run.
    :param out: Text stream for the plan and the result.
    :return: ``Deferred`` firing with ``True`` if the cluster converged.
    """
    planned = yield deploy(deployment, cluster.agents, dry_run=True)
    out.write("plan:\n%s\n" % (render_plan(planned.plan),))
    result = yield deploy(
        deployment, cluster.agents, clock=clock,
        write=lambda line: out.write("  done: %s\n" % (line,)))
    for line in format_summary(deployment, result):
        out.write("result: %s\n" % (line,))
    return result.converged


@inlineCallbacks
def main(reactor, out=None):
    """
    Deploy, write to the database's volume, move the database, check.

    :param reactor: The reactor ``react`` passes in; it times the changes
        (``None`` is fine: the in-memory nodes need no reactor).
    :param out: Text stream for the plans and results (default: standard
        output).
    :return: ``Deferred`` firing with the exit status: 0 if both deploys
        converged, the data moved with ``db`` and nothing is left to do.
    """
    if out is None:
        out = sys.stdout
    cluster = FakeCluster(["192.0.2.1", "192.0.2.2", "192.0.2.3"])

    out.write("== deploy db on 192.0.2.1, web on 192.0.2.2\n")
    first = parse_configuration(deployment_file("192.0.2.1"),
                                "deployment.yml", APPLICATIONS,
                                "application.yml")
    converged = yield converge(reactor, cluster, first, out)

    cluster.agents["192.0.2.1"].write("db", "1000 records")

    out.write("== move db to 192.0.2.3\n")
    second = parse_configuration(deployment_file("192.0.2.3"),
                                 "deployment.yml", APPLICATIONS,
                                 "application.yml")
    moved = yield converge(reactor, cluster, second, out)

    data = cluster.agents["192.0.2.3"].data.get("db")
    out.write("db volume on 192.0.2.3 holds: %s\n" % (data,))
    again = yield deploy(second, cluster.agents, dry_run=True)
    out.write("plan after the move: %s\n" % (render_plan(again.plan),))
    ok = (converged and moved and data == "1000 records"
          and not leaves(again.plan))
    out.write("converged\n" if ok else "NOT converged\n")
    return 0 if ok else 1


def run(reactor):
    """
    ``react`` entry point: exit with :func:`main`'s status.
    """
    def exit_with(status):
        if status:
            raise SystemExit(status)
    return main(reactor).addCallback(exit_with)


if __name__ == "__main__":
    react(run)
