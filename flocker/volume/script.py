"""
``flocker-volume``: this node's volumes from the command line (other
nodes' pushes reach this node's agent: :mod:`flocker.node._peer`).

``push`` and ``handoff`` are done by this node's agent
(:mod:`flocker.volume._via_agent`): the agent sends the stream to the
other node's agent, as a deploy's moves do.

Every failure the service reports is printed as one line
``flocker-volume: error: ...`` on standard error with exit code 1; nothing
is changed by a command that fails that way.
"""

import argparse
import json
import os
import re
import sys

from eliot import to_file
from eliot.json import json_default
from twisted.internet.defer import inlineCallbacks, maybeDeferred
from twisted.internet.task import react

from .. import __version__
from .._agent_session import unix_connector
from .._context import in_current_action
from .._bridge import DEFAULT_AGENT_SOCKET
from .._node_env import agent_socket_path, node_address
from .._pool import DEFAULT_POOL, pool_name
from .._text import one_line
from ._errors import VolumeError, VolumeInUse
from ._service import open_volume_service
from ._via_agent import AgentTransfers, ssh_new_owner

__all__ = ["flocker_volume_main", "main", "PushProgress", "parse_size",
           "format_size", "agent_transfers"]


_SIZE = re.compile(r"\A([0-9]+)([KMGT]?)(i?B)?\Z", re.IGNORECASE)


def parse_size(text):
    """
    :param str text: A size: bytes, or a number with ``K``, ``M``, ``G`` or
        ``T`` (powers of 1024), e.g. ``500M``.
    :return: The size in bytes (``int``).
    :raises ValueError: If it is not a positive size.
    """
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError("%r is not a size (bytes, or a number with K, M, "
                         "G or T)" % (text,))
    number = int(match.group(1)) * 1024 ** " KMGT".index(
        (match.group(2) or " ").upper())
    if number <= 0:
        raise ValueError("size must be positive, not %r" % (text,))
    return number


def format_size(value):
    """
    :param value: Bytes (``int``) or ``None``.
    :return: A short human-readable size (``1.5 MiB``).
    """
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            break
        amount /= 1024
    if unit == "B":
        return "%d B" % (value,)
    return "%.1f %s" % (amount, unit)


def _duration(seconds):
    seconds = int(round(seconds))
    return "%d:%02d" % (seconds // 60, seconds % 60)


class PushProgress(object):
    """
    A one-line progress display for pushes that take more than a second:
    bytes sent, rate and estimated time left, redrawn in place.  Use it only
    when the stream is a terminal; quick pushes print nothing.
    """

    def __init__(self, clock, stream, label, delay=1.0, interval=0.25):
        """
        :param clock: ``IReactorTime``.
        :param stream: Text stream to draw on (standard error).
        :param str label: What is being pushed.
        :param float delay: Seconds before anything is drawn.
        :param float interval: Least seconds between redraws.
        """
        self._clock = clock
        self._stream = stream
        self._label = label
        self._delay = delay
        self._interval = interval
        self._start = clock.seconds()
        self._drawn_at = None
        self._sent = 0
        self._total = None

    def render(self, now):
        """
        :param float now: Current time.
        :return: The progress line for the bytes seen so far.
        """
        elapsed = max(now - self._start, 1e-6)
        rate = self._sent / elapsed
        line = "%s: %s" % (self._label, format_size(self._sent))
        if self._total:
            line += " of %s" % (format_size(self._total),)
        line += ", %s/s" % (format_size(int(rate)),)
        if self._total and rate > 0:
            line += ", ETA %s" % (
                _duration(max(self._total - self._sent, 0) / rate),)
        else:
            line += ", ETA ?"
        return line

    def _draw(self, now):
        line = self.render(now)
        self._stream.write("\r" + line.ljust(79))
        self._stream.flush()
        self._drawn_at = now

    def update(self, sent, total):
        """
        :param int sent: Bytes sent so far.
        :param total: Expected total bytes or ``None`` if unknown.
        """
        self._sent, self._total = sent, total
        now = self._clock.seconds()
        if now - self._start < self._delay:
            return
        if self._drawn_at is None or now - self._drawn_at >= self._interval:
            self._draw(now)

    def finish(self):
        """
        Draw the final figures and end the line, if anything was drawn.
        """
        if self._drawn_at is not None:
            self._draw(self._clock.seconds())
            self._stream.write("\n")
            self._stream.flush()


class _OneLineParser(argparse.ArgumentParser):
    """
    An argument parser that reports a bad command line in one line (no
    usage block before it), exit status 2; ``--help`` shows the usage.
    """

    def error(self, message):
        self.exit(2, "%s: error: %s (see %s --help)\n" % (
            self.prog, one_line(message), self.prog))


def _size_argument(text):
    """
    :return: ``text`` as a size in bytes (see :func:`parse_size`).
    :raises argparse.ArgumentTypeError: With :func:`parse_size`'s reason.
    """
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _parser():
    parser = _OneLineParser(
        prog="flocker-volume",
        description="Manage this node's Flocker volumes (ZFS datasets "
        "<pool>/<name>) and move them to other nodes.")
    parser.add_argument("--version", action="version",
                        version="flocker-volume " + __version__)
    parser.add_argument(
        "--pool", help="this node's ZFS pool (default: $FLOCKER_POOL, or "
        "%s)" % (DEFAULT_POOL,))
    parser.add_argument(
        "--agent-socket", help="this node's agent, which does pushes and "
        "hand-offs (default: $FLOCKER_AGENT_SOCKET, or %s)" % (
            DEFAULT_AGENT_SOCKET,))
    parser.add_argument(
        "--ssh-identity", help="handoff: your private key for SSH to the "
        "new owner, whose agent acquires the volume (default: "
        "$FLOCKER_SSH_IDENTITY, or ~/.ssh's keys and ssh-agent)")
    parser.add_argument(
        "--ssh-known-hosts", help="handoff: known hosts file checking the "
        "new owner's host key (default: $FLOCKER_SSH_KNOWN_HOSTS, or "
        "~/.ssh/known_hosts)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    command = commands.add_parser(
        "list", help="list volumes: name, owner, size, snapshots")
    command.add_argument("--json", action="store_true",
                         help="print JSON instead of a table")

    command = commands.add_parser("create", help="create a volume owned by "
                                  "this node")
    command.add_argument("name")
    command.add_argument("--maximum-size", type=_size_argument,
                         help="quota, e.g. 500M or 10G")

    command = commands.add_parser("mountpoint",
                                  help="print where a volume is mounted")
    command.add_argument("name")

    command = commands.add_parser(
        "push", help="copy a volume's data to another node (this node "
        "stays the owner)")
    command.add_argument("name")
    command.add_argument("target", help="address of the other node")

    command = commands.add_parser(
        "handoff", help="send the last increment and make another node "
        "the owner (stop the application first)")
    command.add_argument("name")
    command.add_argument("target", help="address of the new owner")

    command = commands.add_parser(
        "acquire", help="make this node the owner of its copy (the last "
        "step of a hand-off)")
    command.add_argument("name")
    command.add_argument("--snapshot",
                         help="refuse unless the copy ends with this snapshot")
    command.add_argument("--node-id",
                         help="refuse unless this node has this identity")
    command.add_argument("--json", action="store_true",
                         help="print the result (or error) as JSON")

    command = commands.add_parser(
        "delete", help="destroy a volume and its snapshots on this node "
        "(refused while it is in use)")
    command.add_argument("name")

    command = commands.add_parser(
        "prune", help="show volumes a deployment no longer names, and "
        "snapshots no incremental needs; delete them with --yes")
    command.add_argument("--keep", action="append", default=[],
                         metavar="NAME",
                         help="a volume the deployment still uses (repeat)")
    command.add_argument("--yes", action="store_true",
                         help="delete what is shown")
    return parser


class _Output(object):
    """
    Where a command writes: ``out`` (results) and ``err`` (progress,
    errors), plus whether ``err`` is a terminal.
    """

    def __init__(self, out, err):
        self.out = out
        self.err = err

    def line(self, text=""):
        self.out.write(text + "\n")
        self.out.flush()

    def message(self, value):
        self.out.write(json.dumps(value, default=json_default) + "\n")
        self.out.flush()

    def interactive(self):
        isatty = getattr(self.err, "isatty", None)
        return bool(isatty and isatty())


def agent_transfers(reactor, options, environ):
    """
    How ``push`` and ``handoff`` reach this node's agent (its socket:
    ``--agent-socket``, ``$FLOCKER_AGENT_SOCKET``, or the default) and, for
    a hand-off, the new owner's agent (the operator's SSH login:
    ``--ssh-identity``/``$FLOCKER_SSH_IDENTITY``,
    ``--ssh-known-hosts``/``$FLOCKER_SSH_KNOWN_HOSTS``, else ``~/.ssh``).

    :param reactor: The reactor.
    :param options: Parsed arguments.
    :param environ: The process environment.
    :return: An :class:`~flocker.volume._via_agent.AgentTransfers`.
    """
    return AgentTransfers(
        reactor,
        agent_socket_path(options.agent_socket, environ),
        # The address a deploy names this node by, as flocker-node's
        # commands tell the agent.
        node_address(None, environ),
        unix_connector(reactor),
        ssh_new_owner(
            reactor,
            options.ssh_identity or environ.get("FLOCKER_SSH_IDENTITY"),
            options.ssh_known_hosts or environ.get(
                "FLOCKER_SSH_KNOWN_HOSTS")))


def _list(reactor, service, options, output):
    def show(infos):
        if options.json:
            output.message([{
                "name": info.name, "owner": info.owner, "owned": info.owned,
                "size": info.size,
                "maximum_size": info.maximum_size,
                "snapshots": list(info.snapshots),
                "mountpoint": info.mountpoint} for info in infos])
            return
        rows = [("NAME", "OWNER", "SIZE", "MAXIMUM", "SNAPSHOTS", "LATEST")]
        for info in infos:
            owner = "this node" if info.owned else (info.owner or "unknown")
            rows.append((info.name, owner, format_size(info.size),
                         format_size(info.maximum_size),
                         str(len(info.snapshots)),
                         info.snapshots[-1] if info.snapshots else "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            output.line("  ".join(cell.ljust(width) for cell, width
                                  in zip(row, widths)).rstrip())
        output.line("(this node is %s, pool %s)" % (
            service.node_id, options.pool))
    return service.volumes().addCallback(show)


def _create(reactor, service, options, output):
    return service.create(options.name, options.maximum_size).addCallback(
        lambda info: output.line("volume %s is owned by this node (%s), "
                                 "mounted at %s" % (info.name,
                                                    service.node_id,
                                                    info.mountpoint)))


def _mountpoint(reactor, service, options, output):
    return service.mountpoint(options.name).addCallback(
        lambda path: output.line(path.path))


def _describe_push(result, seconds):
    kind = ("incremental from %s" % (result.base,) if result.base
            else "full stream")
    if result.resumed:
        # The rest of an earlier push cut short went first (OpenZFS).
        kind += " (after resuming a cut-short push: %s)" % (
            format_size(result.resumed),)
    return "%s to %s: %s, %s in %.2f s" % (
        result.name, result.target, kind, format_size(result.bytes_sent),
        seconds)


def _moving(reactor, transfers, options, output, operation, verb):
    progress = None
    if output.interactive():
        progress = PushProgress(reactor, output.err, "%s %s to %s" % (
            verb, options.name, options.target))
    start = reactor.seconds()
    d = operation(options.name, options.target, progress)

    def report(result):
        text = "%s %s" % (verb, _describe_push(result, reactor.seconds()
                                               - start))
        if verb == "handed off":
            text += "; node %s is now the owner" % (result.target_node_id,)
        output.line(text)
    return d.addCallback(report)


def _push(reactor, transfers, options, output):
    return _moving(reactor, transfers, options, output, transfers.push,
                   "pushed")


def _handoff(reactor, transfers, options, output):
    return _moving(reactor, transfers, options, output, transfers.handoff,
                   "handed off")


def _acquire(reactor, service, options, output):
    def report(info):
        if options.json:
            output.message({"acquired": info.name,
                            "node_id": service.node_id})
        else:
            output.line("volume %s is owned by this node (%s)" % (
                info.name, service.node_id))
    return service.acquire(options.name, options.snapshot,
                           options.node_id).addCallback(report)


def _delete(reactor, service, options, output):
    return service.delete(options.name).addCallback(
        lambda _: output.line("deleted volume %s" % (options.name,)))


def _prune(reactor, service, options, output):
    @inlineCallbacks
    def prune():
        orphans = yield service.orphans(options.keep)
        kept = yield service.volumes()
        doomed_snapshots = []
        for info in kept:
            if info.name in options.keep:
                surplus = yield service.prune_snapshots(info.name,
                                                        dry_run=True)
                doomed_snapshots += [(info.name, s) for s in surplus]
        if not orphans and not doomed_snapshots:
            output.line("nothing to prune")
            return
        for info in orphans:
            output.line("volume %s (%s, %s)" % (
                info.name, format_size(info.size),
                "owned by this node" if info.owned else
                "copy owned by %s" % (info.owner or "unknown",)))
        for name, snapshot in doomed_snapshots:
            output.line("snapshot %s@%s" % (name, snapshot))
        if not options.yes:
            output.line("(nothing deleted; run again with --yes to delete "
                        "the above)")
            return
        for info in orphans:
            try:
                yield service.delete(info.name)
            except VolumeInUse as e:
                # The others are still pruned; this one waits for its user.
                output.line("kept volume %s: %s" % (info.name, e.message))
            else:
                output.line("deleted volume %s" % (info.name,))
        for name in sorted(set(name for name, _ in doomed_snapshots)):
            destroyed = yield service.prune_snapshots(name)
            output.line("deleted %d snapshot(s) of %s" % (len(destroyed),
                                                          name))
    return prune()


_COMMANDS = {
    "list": _list, "create": _create, "mountpoint": _mountpoint,
    "acquire": _acquire, "delete": _delete,
    "prune": _prune,
}

# Commands this node's agent does (no volume service is opened here).
_AGENT_COMMANDS = {"push": _push, "handoff": _handoff}


def main(reactor, options, environ, out, err,
         open_service=open_volume_service, transfers=agent_transfers):
    """
    Run one parsed ``flocker-volume`` command.

    :param reactor: The reactor.
    :param options: Parsed arguments (``argparse.Namespace``).
    :param environ: Environment mapping (``FLOCKER_POOL``, ``PATH``...).
    :param out: Text stream for results.
    :param err: Text stream for progress and errors.
    :param open_service: ``open_volume_service`` or a replacement (tests).
    :param transfers: :func:`agent_transfers` or a replacement (tests).
    :return: ``Deferred`` firing with ``None``, or failing with
        ``SystemExit(1)`` after printing a one-line error.
    """
    output = _Output(out, err)
    log = environ.get("FLOCKER_VOLUME_LOG")
    if log:
        # Operators and tests can follow what a node did.
        to_file(open(log, "ab"))
    options.pool = pool_name(options.pool, environ)

    def command(service):
        d = _COMMANDS[options.command](reactor, service, options, output)
        # The process exits next: the pruning an acquire queued (which its answer did not wait for) is done first.
        return d.addBoth(
            lambda result: service.settled().addCallback(lambda _: result))

    def run():
        moving = _AGENT_COMMANDS.get(options.command)
        if moving is not None:
            return maybeDeferred(moving, reactor, transfers(
                reactor, options, environ), options, output)
        d = maybeDeferred(open_service, reactor, options.pool, dict(environ))
        return d.addCallback(in_current_action(command))
    d = run()

    def failed(failure):
        failure.trap(VolumeError)
        error = failure.value
        if getattr(options, "json", False):
            output.message({"error": type(error).__name__,
                            "message": error.message})
        err.write("flocker-volume: error: %s\n" % (error.message,))
        err.flush()
        raise SystemExit(1)
    return d.addCallbacks(lambda _: None, failed)


def flocker_volume_main(argv=None, environ=None, out=None, err=None,
                        run=react):
    """
    Entry point of the ``flocker-volume`` console script.

    :param argv: Arguments (``sys.argv[1:]`` if ``None``).
    :param environ: Environment (``os.environ`` if ``None``).
    :param out: Standard output (``sys.stdout`` if ``None``).
    :param err: Standard error (``sys.stderr`` if ``None``).
    :param run: ``twisted.internet.task.react`` or a replacement for tests.
    """
    options = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if environ is None else environ)
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    run(main, (options, environ, out, err))


if __name__ == "__main__":
    flocker_volume_main()
