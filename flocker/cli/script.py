"""
The ``flocker-deploy`` command line.

``main`` is the whole command, with its reactor, arguments and output streams
passed in so that tests (and other programs) call it like a function;
``flocker_deploy_main`` is the thin console-script entry point.  The work is
done by the library: :func:`flocker.cli._cluster.deploy_over_ssh`.

Modes (``flocker-deploy --help`` lists every option):

``flocker-deploy DEPLOYMENT_CONFIG APPLICATION_CONFIG``
    Converge the cluster: one line per change as it finishes (node, what,
    bytes sent for volume transfers, seconds), then a summary per node;
    exit status 0 only if everything converged.  On a terminal a live block
    under those lines shows what each node is doing and its volume
    transfers' bytes, rate and time left (see
    :mod:`flocker.cli._progress`); it is erased before the summary.
``--check``
    Validate both files and their cross-references without any network;
    errors as ``PATH:LINE:COL: message``.
``--dry-run``
    Connect, report and print the plan tree (with each move's data and
    estimated downtime); change nothing.
``--status``
    Connect and print one row per application: node, state (running,
    stopped, missing), ports, volume (size, newest snapshot, owner), links
    and its drift from the files (for a configuration that differs, what
    differs: image old -> new, environment variable names, ports, command,
    volume, limits); then, when the deployment file has a ``standby:``
    section, one row per standby copy: its node, application, volume,
    primary, lag (seconds of writes it lacks), bytes sent, newest snapshot
    and problem.  Change nothing (the deploy lock is not taken).  Exit
    status 0 only when every node reported, every application runs where
    and as the files say, and every standby is kept up to date; 1 when
    something is missing or drifting, a standby is failing, or a node did
    not report.
``--json`` (with ``--status`` or ``--dry-run``)
    Print one JSON document instead of text: ``--status --json`` gives
    ``{"applications": [{"application", "node", "state", "ports",
    "volume", "links", "drift" (null when none), "differences": [...]}],
    "standbys": [{"application", "volume", "primary", "standby", "lag"
    (seconds, null before the first copy), "snapshot", "bytes_sent",
    "problem" (null when none)}], "unreachable": {NODE: REASON},
    "converged": BOOL}``; ``--dry-run
    --json`` gives ``{"plan": TREE, "unreachable", "problems", "doctor",
    "reached", "summary", "converged", "dry_run"}`` (``doctor``: each
    node's failed checks, see ``flocker-node doctor``; ``reached``: node to
    how its agent was reached, a direct-streamlocal channel or
    flocker-node-bridge) where ``TREE`` is a group
    ``{"group": "in sequence" | "in parallel", "label", "changes"}`` or a
    change ``{"change": KIND, "node", "description"}``.  The exit status
    is as without ``--json``.
``--logs APPLICATION [--follow] [--tail N]``
    Print the output of the application's container (``flocker--NAME`` on
    its node), standard error to standard error, from whichever node runs
    it; with ``--follow``, keep printing what it writes (read every
    second) until interrupted.  Changes nothing.
``--remove APPLICATION [--with-volumes]``
    Stop and remove the application's containers on every node of the
    deployment and take its ports out of every node's routes; with
    ``--with-volumes`` also destroy every copy of its volumes (not those
    another application mounts).  Everything it does is destructive, so it
    is listed and asked for on a terminal (``--yes`` skips the question;
    elsewhere it is refused without it); ``--dry-run`` shows it.  Take the
    application out of the files too, or the next deploy starts it again.
``--failover NODE``
    Declare NODE dead (it is not contacted): every application on it
    starts on the live node holding the freshest copy of its volume (its
    standby), which takes the volume over at a new ownership epoch after
    every other copy learnt of it; routes on every live node follow.  Then
    DEPLOYMENT_CONFIG is rewritten with the new placement (the old file is
    kept as DEPLOYMENT_CONFIG.bak), so the next plain deploy converges; if
    NODE comes back, that deploy sets its stale copy aside for recovery.
    ``--dry-run`` shows the plan and rewrites nothing.
``--adopt-copy VOLUME``
    A volume that no node owns and whose owner's copy is gone (deleted, or
    its node's pool replaced) is never taken over from an older copy by
    itself: the deploy changes nothing and says where the newest copy left
    is and how old.  Naming it with ``--adopt-copy`` takes that copy over.

Before its first change a deploy (and a dry run) checks that every node
reported, that every image a node lacks can be pulled (it is pulled before
anything is stopped), that no port it publishes or routes is held on a node
by something that is not Flocker's, and that no volume would be revived
from an older copy; if not, nothing is changed and each problem is one
line (exit status 1).

``--rotate-node-keys``
    Every node replaces its own node-to-node SSH key pair (made on the
    node; the private key never leaves it), and every other node's
    ``authorized_keys`` follows, in steps that keep every push accepted
    throughout (see ``docs/security.rst``).  Needs DEPLOYMENT_CONFIG only.

Deploys (dry runs and ``--status`` excepted) also install the nodes' trust
on every node where it is not current: the known_hosts of the host keys
this client verified, and each other node's own key (from its report),
``from=`` that node's addresses; see "Node-to-node SSH" in the volumes
documentation.

Every run but ``--check`` writes one eliot log (``--log FILE``, by default
under ``~/.flocker/logs/``) holding the whole run as one task tree, the
nodes' work included; ``eliot-tree`` shows it.
"""

import argparse
import json

import attr
import os
import re
import sys
import time

from twisted.internet.defer import maybeDeferred
from twisted.internet.task import react
from twisted.internet.threads import deferToThread

from .. import __version__
from .._change import leaves, plan_to_dict, render_plan
from ..node._changes import HandoffVolume, PushVolume
from ..node._config import (
    ConfigurationErrors, load_configuration, load_deployment,
)
from ..node._names import with_service_names
from ..node._plan import plan_removal

__all__ = ["main", "prepare", "flocker_deploy_main", "summarize"]


class _Exit(Exception):
    """
    The argument parser wants the command to end with ``status``.
    """

    def __init__(self, status):
        Exception.__init__(self, status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """
    An ``ArgumentParser`` writing to the given streams and raising
    :class:`_Exit` instead of leaving the process, so the command stays a
    function.
    """

    def __init__(self, stdout, stderr, **kwargs):
        argparse.ArgumentParser.__init__(self, **kwargs)
        self.stdout = stdout
        self.stderr = stderr

    def print_help(self, file=None):
        (file or self.stdout).write(self.format_help())

    def print_usage(self, file=None):
        (file or self.stdout).write(self.format_usage())

    def exit(self, status=0, message=None):
        if message:
            self.stderr.write(message)
        raise _Exit(status)

    def error(self, message):
        self.print_usage(self.stderr)
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


class _Version(argparse.Action):
    """
    ``--version``: print the program's version and end successfully.
    """

    def __init__(self, option_strings, dest, **kwargs):
        argparse.Action.__init__(self, option_strings, dest, nargs=0,
                                 default=argparse.SUPPRESS,
                                 help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        parser.stdout.write("%s %s\n" % (parser.prog, __version__))
        parser.exit(0)


def _parser(stdout, stderr):
    parser = _Parser(
        stdout, stderr, prog="flocker-deploy",
        description="Run the applications of APPLICATION_CONFIG on the "
        "nodes DEPLOYMENT_CONFIG places them on.")
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--check", action="store_true",
        help="only validate both files and their cross-references, "
        "without contacting any node; print a summary")
    parser.add_argument(
        "--dry-run", action="store_true",
        help="connect to every node, print the plan (with the data each "
        "move sends) and change nothing")
    parser.add_argument(
        "--status", action="store_true",
        help="connect to every node and print where each application runs, "
        "its ports, volume and links, and how it differs from the files; "
        "change nothing")
    parser.add_argument(
        "--json", action="store_true",
        help="with --status or --dry-run: print one JSON document instead "
        "of text (for scripts)")
    parser.add_argument(
        "--logs", metavar="APPLICATION", default=None,
        help="print the output of the application's container, from "
        "whichever node runs it; change nothing")
    parser.add_argument(
        "--follow", "-f", action="store_true",
        help="with --logs: keep printing new output until interrupted")
    parser.add_argument(
        "--tail", type=int, default=None, metavar="N",
        help="with --logs: only the last N lines (then, with --follow, "
        "what follows)")
    parser.add_argument(
        "--remove", metavar="APPLICATION", default=None,
        help="stop and remove the application's containers on every node "
        "of the deployment and take its ports out of their routes (asks "
        "first, or give --yes); the files are not read for it")
    parser.add_argument(
        "--with-volumes", action="store_true",
        help="with --remove: also destroy every copy of its volumes")
    parser.add_argument(
        "--failover", metavar="NODE", default=None,
        help="declare NODE dead: start each of its applications on the "
        "live node with the freshest copy of its volume, reroute, and "
        "rewrite DEPLOYMENT_CONFIG with the new placement (the old one "
        "kept as DEPLOYMENT_CONFIG.bak)")
    parser.add_argument(
        "--adopt-copy", action="append", default=[], metavar="VOLUME",
        help="take over the newest copy left of VOLUME although its "
        "owner's copy is gone (the deploy refuses otherwise, saying where "
        "that copy is and how old); may be repeated")
    parser.add_argument(
        "--yes", "-y", action="store_true",
        help="make destructive changes (removing applications no longer in "
        "the files, deleting volumes) without asking; without it they are "
        "asked for on a terminal and refused elsewhere")
    parser.add_argument(
        "--identity", "-i", action="append", default=[], metavar="FILE",
        help="SSH private key to log in with (may be repeated; default: "
        "~/.ssh/id_ed25519, id_ecdsa, id_rsa and the SSH agent)")
    parser.add_argument(
        "--known-hosts", metavar="FILE", default=None,
        help="known_hosts file checking the nodes' host keys (default: "
        "~/.ssh/known_hosts); unknown or changed keys stop the deploy")
    parser.add_argument(
        "--rotate-node-keys", action="store_true",
        help="every node replaces its own node-to-node SSH key pair, and "
        "the other nodes' authorized_keys follow, without a moment where "
        "a push is refused; needs DEPLOYMENT_CONFIG only")
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS",
        help="seconds allowed to connect to a node (default: 10)")
    parser.add_argument(
        "--concurrency", type=int, default=20, metavar="N",
        help="commands run at once across the cluster (default: 20)")
    parser.add_argument(
        "--agent-socket", default=None, metavar="PATH",
        help="the Flocker agent's socket on the nodes (default: "
        "/run/flocker/agent.sock)")
    parser.add_argument(
        "--log", default=None, metavar="FILE",
        help="eliot log file (default: ~/.flocker/logs/deploy-TIME.log)")
    parser.add_argument(
        "--keep-logs", type=int, default=KEEP_LOGS, metavar="N",
        help="deploy logs kept in ~/.flocker/logs, the newest first; "
        "older ones are deleted (default: %d)" % (KEEP_LOGS,))
    parser.add_argument("deployment_config", metavar="DEPLOYMENT_CONFIG",
                        help="YAML file: version 1, nodes and their "
                        "applications")
    parser.add_argument("application_config", metavar="APPLICATION_CONFIG",
                        nargs="?", default=None,
                        help="YAML file: Flocker's native format or a "
                        "compose file (optional with --status, which then "
                        "compares nodes and states only)")
    return parser


def _plural(count, noun):
    return "%d %s%s" % (count, noun, "" if count == 1 else "s")


def summarize(deployment):
    """
    :param Deployment deployment: A parsed deployment.
    :return: One line such as ``3 applications on 2 nodes``, followed by
        ``, 1 with a standby`` when some have one.
    """
    applications = sum(len(node.applications) for node in deployment.nodes)
    line = "%s on %s" % (_plural(applications, "application"),
                         _plural(len(deployment.nodes), "node"))
    if deployment.standbys:
        line += ", %d with a standby" % (len(deployment.standbys),)
    return line


def _estimate_downtime(plan, round_trip):
    """
    :return: ``dict`` of moving volume name to estimated seconds of
        downtime: a move is down for its stop, its hand-off (which itself
        runs two commands on the new node), the new node's routes and its
        start: six node commands one after another, each costing about one
        measured round trip.
    """
    moving = {c.name for c in leaves(plan) if isinstance(c, HandoffVolume)}
    return {name: 6 * round_trip for name in moving}


def _print_dry_run(result, stdout, round_trip):
    from ._preflight import destructive_changes
    stdout.write(render_plan(result.plan) + "\n")
    removals = destructive_changes(result.plan)
    if removals:
        stdout.write("destructive changes (a deploy makes them only with "
                     "--yes or when confirmed on a terminal):\n")
        for change in removals:
            stdout.write("  %s\n" % (change.describe(),))
    pushes = [c for c in leaves(result.plan) if isinstance(c, PushVolume)]
    downtime = _estimate_downtime(result.plan, round_trip)
    for push in pushes:
        size = ("%d bytes" % (push.estimated_bytes,)
                if push.estimated_bytes is not None
                else "only the changes since the last push")
        stdout.write("move of %s from %s to %s: pre-copy sends %s while it "
                     "runs; estimated downtime %.1f s\n" % (
                         push.name, push.node, push.target, size,
                         downtime.get(push.name, 0.0)))
    stdout.write("dry run: nothing was changed\n")


#: Deploy logs kept in the default directory unless ``--keep-logs`` says.
KEEP_LOGS = 50

_LOG_NAME = re.compile(r"\Adeploy-(\d{8}T\d{6})(?:-(\d+))?\.log\Z")


def _rotate_logs(directory, keep):
    """
    Delete the oldest deploy logs of ``directory`` (``deploy-TIME.log``,
    ``deploy-TIME-N.log``), keeping the newest ``keep``.  Other files are
    left alone.

    :return: ``list`` of the names deleted.
    """
    logs = []
    for name in os.listdir(directory):
        match = _LOG_NAME.match(name)
        if match is not None:
            logs.append(((match.group(1), int(match.group(2) or 1)), name))
    logs.sort()
    doomed = [name for _, name in logs[:max(len(logs) - keep, 0)]]
    for name in doomed:
        try:
            os.remove(os.path.join(directory, name))
        except FileNotFoundError:
            # Another deploy rotated it first.
            pass
    return doomed


def _open_log(path, directory=None, now=None, keep=KEEP_LOGS):
    """
    Open the deploy's eliot log.

    :param path: ``--log`` (appended to), or ``None`` for a new file in
        ``directory`` named after the time, ``deploy-YYYYmmddTHHMMSS.log``
        (``-2``, ``-3``... added when deploys started in the same second
        already took it: each deploy's log is its own tree).
    :param directory: Default ``~/.flocker/logs``.
    :param now: ``time.struct_time`` in UTC (the current time if ``None``).
    :param int keep: How many logs of ``directory`` to keep, the new one
        included: older ones are deleted (a ``--log`` file is never
        rotated).
    :return: The open file.
    """
    if path is not None:
        _make_directory(os.path.dirname(os.path.abspath(path)))
        return open(path, "a")
    if directory is None:
        directory = os.path.expanduser(os.path.join("~", ".flocker", "logs"))
    _make_directory(directory)
    stem = time.strftime("deploy-%Y%m%dT%H%M%S",
                         time.gmtime() if now is None else now)
    count = 1
    while True:
        name = stem + (".log" if count == 1 else "-%d.log" % (count,))
        try:
            log = open(os.path.join(directory, name), "x")
        except FileExistsError:
            count += 1
            continue
        _rotate_logs(directory, max(keep, 1))
        return log


def _make_directory(directory):
    if not os.path.isdir(directory):
        os.makedirs(directory)


def _columns(stream):
    """
    :return: The width of the terminal ``stream`` is, 80 if it cannot tell.
    """
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


def _confirmation(options, stdin, stdout, write, read_line=None):
    """
    :param read_line: ``None``, or a callable returning a ``Deferred``
        firing with the answer line (for tests).
    :return: The ``confirm`` of :func:`flocker.cli._deploy.deploy`: ``None``
        with ``--yes``; else a callable listing the destructive changes and
        asking on a terminal ``stdin`` (read in a thread: the reactor must
        not block), or refusing them anywhere else.
    """
    if options.yes:
        return None

    def confirm(descriptions):
        write("destructive changes (they need --yes or a confirmation):")
        for description in descriptions:
            write("  " + description)
        isatty = getattr(stdin, "isatty", None)
        if stdin is None or isatty is None or not isatty():
            return False
        stdout.write("make these changes? [y/N] ")
        stdout.flush()
        d = (read_line or (lambda: deferToThread(stdin.readline)))()
        return d.addCallback(
            lambda answer: answer.strip().lower() in ("y", "yes"))
    return confirm


def _deploy(reactor, options, deployment, stdout, stderr, environ,
            stdin=None):
    """
    Run the deploy (or dry run) over SSH.

    :return: ``Deferred`` firing with the exit status.
    """
    from eliot import add_destinations, remove_destination, FileDestination
    from ._cluster import deploy_over_ssh
    from ._deploy import format_summary
    from ._progress import TerminalProgress, is_live_terminal
    from .._ssh import SSHConfigurationError, ssh_command_runner

    try:
        runner = ssh_command_runner(
            reactor, identity_files=options.identity,
            known_hosts_path=options.known_hosts,
            connect_timeout=options.timeout,
            concurrency=options.concurrency)
    except SSHConfigurationError as e:
        stderr.write("flocker-deploy: %s\n" % (e,))
        return 1
    try:
        log = _open_log(options.log, keep=options.keep_logs)
    except OSError as e:
        stderr.write("flocker-deploy: cannot open the log file: %s\n" % (e,))
        return 1
    destination = FileDestination(file=log)
    add_destinations(destination)
    started = reactor.seconds()

    def write(line):
        stdout.write(line + "\n")
        stdout.flush()

    if options.status:
        return _status(reactor, options, deployment, runner, stdout,
                       destination, log)
    if options.logs is not None:
        return _logs(reactor, options, deployment, runner, stdout, stderr,
                     destination, log)
    if options.rotate_node_keys:
        return _rotate_keys(reactor, options, deployment, runner, write,
                            destination, log)
    live, lines = None, write
    if not options.dry_run and is_live_terminal(stdout, environ):
        live = TerminalProgress(reactor, stdout, width=_columns(stdout))
        # Change lines must go above the block, or it would overwrite them.
        lines = live.write_line

    # How each node's agent was reached, which a dry run shows.
    reached = {}
    plan_for = None
    failover = None
    exclude = frozenset()
    if options.remove is not None:
        def removal(state, addresses):
            return plan_removal(state, options.remove, options.with_volumes)
        plan_for = removal
    elif options.failover is not None:
        from ._failover import FailoverRun
        failover = FailoverRun(deployment, options.failover)
        plan_for = failover.plan_for
        exclude = frozenset([options.failover])
    d = deploy_over_ssh(reactor, deployment, runner, dry_run=options.dry_run,
                        write=lines, agent_socket=options.agent_socket,
                        log=destination, live=live,
                        # A dead node cannot get the new trust: the nodes
                        # keep theirs through a failover.
                        install_keys=failover is None,
                        adopt=frozenset(options.adopt_copy),
                        confirm=_confirmation(options, stdin, stdout, write),
                        plan_for=plan_for, reached=reached.update,
                        exclude=exclude)

    def failed_over(result):
        if failover is None or failover.failover is None:
            return result
        moves = failover.taken_over(result)
        write("failover: %s declared dead (not contacted)" % (
            failover.dead,))
        for line in failover.lines(moves):
            write(line)
        if not result.dry_run and not result.unreachable and \
                not result.refused:
            try:
                backup = failover.rewrite(options.deployment_config, moves)
            except OSError as e:
                write("failover: FAILED to rewrite %s: %s (edit it by hand: "
                      "the applications above run where it says ->)" % (
                          options.deployment_config, e))
                return attr.evolve(result, failed=result.failed.set(
                    options.deployment_config, ("rewrite failed",)))
            write("failover: %s rewritten with the new placement (the old "
                  "one is %s)" % (options.deployment_config, backup))
        return result

    def not_planned(failure):
        from ..node._failover import FailoverError
        failure.trap(FailoverError)
        stderr.write("flocker-deploy: --failover: %s\n" % (
            failure.getErrorMessage(),))
        return None

    def report(result):
        if result is None:
            return 1
        if options.json:
            document = _dry_run_json(deployment, result)
            document["reached"] = reached
            stdout.write(json.dumps(document, sort_keys=True) + "\n")
            return 0 if result.converged else 1
        if options.dry_run:
            # The report round trip measured during this run calibrates the
            # downtime estimate.
            _print_dry_run(result, stdout, reactor.seconds() - started)
            for address, way in sorted(reached.items()):
                stdout.write("%s: agent reached through %s\n" % (address,
                                                                  way))
        for line in format_summary(deployment, result):
            stdout.write(line + "\n")
        stdout.write("log: %s\n" % (log.name,))
        return 0 if result.converged else 1

    def cleanup(passthrough):
        remove_destination(destination)
        log.close()
        return runner.close().addBoth(lambda _: passthrough)
    d.addCallback(failed_over)
    d.addErrback(not_planned)
    d.addCallback(report)
    d.addBoth(cleanup)
    return d


def _status(reactor, options, deployment, runner, stdout, destination,
            log):
    """
    Print the status table (``--status``).

    :return: ``Deferred`` firing with 0 when every node reported, else 1.
    """
    from eliot import remove_destination
    from ._cluster import status_over_ssh
    from ._standby_status import (
        format_standbys, standby_status, standbys_ok,
    )
    from ._status import (
        cluster_status, format_status, status_json, status_ok,
    )

    d = status_over_ssh(reactor, deployment, runner,
                        agent_socket=options.agent_socket, log=destination)

    def show(result):
        state, unreachable = result
        rows = cluster_status(with_service_names(deployment), state,
                              unreachable, placed=options.placed)
        standbys = standby_status(deployment, state, unreachable,
                                  placed=options.placed)
        ok = status_ok(rows, unreachable) and standbys_ok(standbys)
        if options.json:
            document = status_json(rows, unreachable)
            document["standbys"] = [row.to_dict() for row in standbys]
            document["converged"] = ok
            stdout.write(json.dumps(document, sort_keys=True) + "\n")
        else:
            for line in format_status(rows, unreachable):
                stdout.write(line + "\n")
            for line in format_standbys(standbys):
                stdout.write(line + "\n")
            stdout.write("log: %s\n" % (log.name,))
        return 0 if ok else 1

    def cleanup(passthrough):
        remove_destination(destination)
        log.close()
        return runner.close().addBoth(lambda _: passthrough)
    return d.addCallback(show).addBoth(cleanup)


def _rotate_keys(reactor, options, deployment, runner, write, destination, log):
    """
    Rotate every node's own key (``--rotate-node-keys``).

    :return: ``Deferred`` firing with 0 when every node switched keys,
        else 1 (each failing node named in one line, with the step).
    """
    from eliot import remove_destination
    from ._cluster import rotate_over_ssh

    d = rotate_over_ssh(reactor, deployment, runner, write=write,
                        agent_socket=options.agent_socket, log=destination)

    def show(result):
        for address, (old, new) in sorted(result.rotated.items()):
            write("%s: node key %s -> %s" % (address, old, new))
        for address, line in sorted(result.failed.items()):
            write("%s: %s" % (address, line))
        if not result.ok:
            write("node keys: rotation stopped; every push is still "
                  "accepted; run --rotate-node-keys again to finish")
        write("log: %s" % (log.name,))
        return 0 if result.ok else 1

    def cleanup(passthrough):
        remove_destination(destination)
        log.close()
        return runner.close().addBoth(lambda _: passthrough)
    return d.addCallback(show).addBoth(cleanup)


def _dry_run_json(deployment, result):
    """
    :return: A dry run (or deploy) as JSON-compatible data: the plan tree
        (see :func:`flocker._change.plan_to_dict`), the nodes that did not
        report, the problems found before the first change, the failed
        checks of each node (a dry run's ``doctor``), the summary lines and
        whether it converged.
    """
    from ._deploy import format_summary
    return {"dry_run": result.dry_run,
            "plan": plan_to_dict(result.plan),
            "unreachable": dict(result.unreachable),
            "problems": list(result.refused),
            "doctor": {node: list(lines)
                       for node, lines in result.health.items()},
            "summary": format_summary(deployment, result),
            "converged": result.converged}


def _logs(reactor, options, deployment, runner, stdout, stderr, destination,
          log):
    """
    Print an application's output (``--logs``).

    :return: ``Deferred`` firing with 0, or 1 when no node has its
        container or its node did not answer.
    """
    from eliot import remove_destination
    from ._cluster import logs_over_ssh
    from ._logs import NoSuchApplication
    from ._remote import NodeStepFailed

    def write(stream):
        def line(text):
            stream.write(text + "\n")
            stream.flush()
        return line
    d = logs_over_ssh(reactor, deployment, runner, options.logs,
                      write(stdout), write(stderr), tail=options.tail,
                      follow=options.follow, agent_socket=options.agent_socket,
                      log=destination)

    def failed(failure):
        failure.trap(NoSuchApplication, NodeStepFailed)
        stderr.write("flocker-deploy: %s\n" % (failure.getErrorMessage(),))
        return 1

    def cleanup(passthrough):
        remove_destination(destination)
        log.close()
        return runner.close().addBoth(lambda _: passthrough)
    return d.addCallbacks(lambda _: 0, failed).addBoth(cleanup)


def prepare(argv, stdout, stderr, environ=None):
    """
    Everything ``flocker-deploy`` does before it needs the network: parse the
    command line, load and check both files, and answer ``--check`` (with
    a note per thing the operator should know about the files first).

    :param environ: The variables a compose file may use; ``None`` for the
        process environment.
    :return: ``(status, None, None)`` when the command is finished, else
        ``(None, options, deployment)`` for :func:`main` to deploy.
    """
    parser = _parser(stdout, stderr)
    try:
        options = parser.parse_args(argv)
        modes = (options.check + options.status
                 + (options.logs is not None) + (options.remove is not None)
                 + (options.failover is not None)
                 + options.rotate_node_keys)
        if modes > 1 or (options.dry_run and modes
                         and options.remove is None
                         and options.failover is None):
            parser.error("--check, --dry-run, --status, --logs, --remove, "
                         "--failover and --rotate-node-keys exclude each "
                         "other (but --remove and --failover take "
                         "--dry-run)")
        if options.with_volumes and options.remove is None:
            parser.error("--with-volumes goes with --remove")
        if options.json and not (options.status or options.dry_run):
            parser.error("--json goes with --status or --dry-run")
        if (options.follow or options.tail is not None) and \
                options.logs is None:
            parser.error("--follow and --tail go with --logs")
        if options.application_config is None and not (
                options.status or options.rotate_node_keys):
            parser.error("the following arguments are required: "
                         "APPLICATION_CONFIG (only --status and "
                         "--rotate-node-keys work without it)")
    except _Exit as e:
        return e.status, None, None
    notes = []
    options.placed = None
    try:
        if options.application_config is None:
            deployment, options.placed = load_deployment(
                options.deployment_config)
        else:
            deployment = load_configuration(
                options.deployment_config, options.application_config,
                environ=environ, notes=notes)
    except ConfigurationErrors as e:
        for error in e.errors:
            stderr.write("%s\n" % (error,))
        return 1, None, None
    if options.failover is not None and \
            deployment.node(options.failover) is None:
        stderr.write("flocker-deploy: --failover: %s is not a node of %s "
                     "(its nodes: %s)\n" % (
                         options.failover, options.deployment_config,
                         ", ".join(sorted(n.address
                                          for n in deployment.nodes))))
        return 1, None, None
    if options.check:
        for note in notes:
            stdout.write("%s\n" % (note,))
        stdout.write(summarize(deployment) + "\n")
        return 0, None, None
    return None, options, deployment


def main(reactor, argv, stdout, stderr, environ=None, stdin=None):
    """
    Run ``flocker-deploy``.

    :param reactor: The reactor for operations that reach nodes; ``--check``
        reaches none, so it may be ``None`` there.
    :param argv: The arguments, without the program name.
    :param stdout: Text stream for results.
    :param stderr: Text stream for problems.
    :param environ: The process environment (``TERM`` says whether a
        terminal ``stdout`` gets the live view; a compose file's variables
        come from it), or ``None`` for ``os.environ``.
    :param stdin: Text stream a confirmation of destructive changes is
        read from when it is a terminal (and ``--yes`` was not given), or
        ``None`` for none (they are then refused without ``--yes``).
    :return: The exit status, or a ``Deferred`` firing with it when nodes
        are reached: 0 on success (the cluster converged), 1 for invalid
        configuration or a deploy that did not converge, 2 for a bad
        command line.
    """
    status, options, deployment = prepare(argv, stdout, stderr, environ)
    if status is not None:
        return status
    return _deploy(reactor, options, deployment, stdout, stderr,
                   os.environ if environ is None else environ, stdin)


def flocker_deploy_main():
    """
    Console-script entry point of ``flocker-deploy``: run the command with
    the process's arguments and streams and exit with its status.  The
    reactor only runs when nodes are to be reached.
    """
    status, options, deployment = prepare(sys.argv[1:], sys.stdout,
                                          sys.stderr)
    if status is not None:
        sys.exit(status)

    def run(reactor):
        d = maybeDeferred(_deploy, reactor, options, deployment, sys.stdout,
                          sys.stderr, os.environ, sys.stdin)

        def exit_with(code):
            if code:
                raise SystemExit(code)
        return d.addCallback(exit_with)
    react(run)
