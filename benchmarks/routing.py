"""
Benchmark of Flocker's routing: bulk TCP through another node's DNAT rules
against the same transfer straight to the hosting node and through the
other node as a plain router, and the time to install the routes of 1,000
applications on one node.

    python benchmarks/routing.py [--quick] [--bytes N] [--transfers N]
                                 [--reps N] [--max-reps N]
                                 [--max-seconds S] [--routes N]

(``--quick``: 32 transfers of 16 MiB per path and repetition, 3 to 8
repetitions within 90 s; else 128 transfers of 16 MiB, 5 to 40
repetitions within 600 s; always 1,000 routes.)

It builds its own small lab of network namespaces and removes it at the
end: one bridge; client 10.96.0.2; node1 .11; node2 .12, which routes ports
9002 and 9003 to node1 with ``IPTablesRouteManager`` and starts like a fresh
Docker host (forwarding off, ``FORWARD`` policy ``DROP``).  On node1 a sink
listens on port 9002 of node1 itself, and another in a "container": a
namespace behind a ``docker0`` bridge in node1 (10.95.1.2), published on
node1's port 9003 with the rules Docker uses (DNAT in ``PREROUTING``,
``FORWARD`` accepts), which is how a Flocker application is reached.
Needs root, iproute2, iptables, conntrack (and ``taskset`` for pinning).

Six paths, each pushing from the client to a sink that acknowledges
every ``--bytes`` it reads.  All of a repetition's transfers come from one
sending process over one connection per path, opened (and sent one
untimed transfer) before the first timed one; each transfer is timed in
the sender from its first byte until the sink acknowledges its last (GB/s,
10^9 bytes/s), so neither a process's start, a connection's handshake nor
its slow start is in any figure, and transfers can be short enough for
the paths to take turns many times within a repetition:

* ``direct``: to the container's published port node1:9003;
* ``routed``: to node2:9003 (Flocker's DNAT + MASQUERADE to node1, then
  Docker's DNAT into the container);
* ``forwarded``: the container path's floor: to node1's second address
  10.96.0.21, which the client reaches through node2 as a plain router
  (static routes, no NAT, no Flocker rule), then Docker's DNAT into the
  container; node1 sends the replies back through node2 too (the
  connection's original destination marks the container's replies, and
  the mark selects a routing table via node2), so the path has the shape
  of ``routed`` without Flocker's rules;
* ``direct_plain``, ``routed_plain``, ``forwarded_plain``: the same three
  to the sink on node1 itself (port 9002: no Docker hop).

Every repetition makes ``--transfers`` transfers over each of the six
paths, all from one sending process, the paths taking turns: the six in an
order rotated from one repetition to the next, then the same six
backwards, again until each path has had its transfers (A B C C B A A B C
C B A ...), so every path's transfers sit at the same mean time within
the repetition and a change of the machine's load during it weighs on all
six alike.  A path's rate in the repetition is its bytes over the sum of
its transfers' seconds, and the repetition gives six ratios of those
rates:

* ``ratio`` = routed / direct (the user-facing figure: a container reached
  through another node), ``ratio_plain`` = routed_plain / direct_plain;
* ``ratio_forwarded`` = forwarded / direct and ``ratio_forwarded_plain`` =
  forwarded_plain / direct_plain: the most any in-kernel routing through
  another node reaches here;
* ``routed_vs_forwarded`` = routed / forwarded and
  ``routed_vs_forwarded_plain`` = routed_plain / forwarded_plain: what
  Flocker's NAT rules cost on top of that hop.

Each ratio is the median over the repetitions, with ``NAME_spread``
(interquartile range over median) and ``NAME_uncertainty`` (half-width of
the median's 95 % confidence interval over the median) beside it.
Repetitions go on past ``--reps`` until every uncertainty is under 2.5 %,
at most ``--max-reps`` repetitions or
``--max-seconds``; ``settled`` says whether they got there, ``reps`` how
many ran.  Before the first repetition, every path is warmed with an
untimed transfer.

Pinning: the sender and both sinks run on one CPU (``taskset``, the
lowest this process may use), at the highest scheduling priority (``nice
-20``), the same for every path.  The forwarding nodes' work has no
process to pin: a veth delivers a packet in softirq on the CPU that sent
it (receive packet steering, which the kernel allows per veth queue in a
namespace, is left off), so node2's and node1's forwarding of the data and
of the acknowledgements runs on that same CPU too.  Every path's whole
work is then on one CPU, and whatever else the machine runs takes from
every path's one CPU alike (with the sender and the sinks on two CPUs, a
path could be bound by either, and each answered to the other work on its
own CPU).  The JSON's ``pinning`` says which CPU and
priority were used and each namespace's ``eth0`` steering mask as read
(``"0"``: off).

* ``routes_1000_s``: median seconds of one ``set_routes`` call installing
  ``--routes`` routes on a node that has none (ss, sysctl, iptables-save and
  one iptables-restore batch), run by a process inside the node's namespace
  as ``flocker-node`` would be (no ``ip netns exec`` per command).

Prints a table, then one JSON object as the last line.  On this kind of
machine the transfers are in-kernel veth copies on a shared CPU, not a real
network.
"""

import argparse
import json
import os
import statistics
import sys
import time

from _common import (
    add_repetition_options, can_pin, emit, pinned, print_ratios,
    print_table, ratio_figures, repeat_until_settled, repetitions_from,
    rotated, summary,
)

from flocker.route.test._netns import (
    NETWORK_PREFIX, NetworkLab, can_make_namespaces, run_command,
)

PORT = 9002
PUBLISHED_PORT = 9003
CONTAINER = "10.95.1.2"
NODE1 = NETWORK_PREFIX + "11"
NODE2 = NETWORK_PREFIX + "12"
CLIENT = NETWORK_PREFIX + "2"
#: A second address of node1, reached (both ways) through node2 as a plain
#: router: the kernel's own forwarding, without Flocker's NAT rules.
NODE1_VIA_NODE2 = NETWORK_PREFIX + "21"
#: node1's routing table for replies that go back through node2, and the
#: mark that selects it for the container's replies.
VIA_NODE2_TABLE = "100"
VIA_NODE2_MARK = "0x21"
# Transfers are bounded: at most this many bytes per push.
MAX_BYTES = 8 << 30
#: At most this many transfers per path in a repetition.
MAX_TRANSFERS = 512
#: The niceness the sender and the sinks run at: the highest priority, so
#: the machine's other processes take as little of their CPU as the
#: scheduler allows.
PRIORITY = -20
#: Bytes of the untimed transfer that warms each path.
WARM_BYTES = 64 << 20

#: ``(name, address, port)`` of each path.
PATHS = [("direct", NODE1, PUBLISHED_PORT),
         ("routed", NODE2, PUBLISHED_PORT),
         ("forwarded", NODE1_VIA_NODE2, PUBLISHED_PORT),
         ("direct_plain", NODE1, PORT),
         ("routed_plain", NODE2, PORT),
         ("forwarded_plain", NODE1_VIA_NODE2, PORT)]

#: ``(ratio name, measured path, floor path)`` of each ratio.
RATIOS = [("ratio", "routed", "direct"),
          ("ratio_plain", "routed_plain", "direct_plain"),
          ("ratio_forwarded", "forwarded", "direct"),
          ("ratio_forwarded_plain", "forwarded_plain", "direct_plain"),
          ("routed_vs_forwarded", "routed", "forwarded"),
          ("routed_vs_forwarded_plain", "routed_plain", "forwarded_plain")]


def install_routes(count, reps):
    """
    Child mode, run inside a node namespace: time ``set_routes`` of ``count``
    routes on a node without routes, ``reps`` times (removing them between
    runs), and a re-application of the same routes.  Prints one JSON line.
    """
    from pyrsistent import pset
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    from flocker._model import Route
    from flocker.route import IPTablesRouteManager, ProcessRunner

    routes = pset(Route(port=20000 + index, address=NODE1)
                  for index in range(count))

    async def measure(reactor):
        manager = IPTablesRouteManager(ProcessRunner(reactor), node="bench")
        installs, unchanged, removals = [], [], []
        for _ in range(reps):
            started = time.perf_counter()
            await manager.set_routes(routes)
            installs.append(time.perf_counter() - started)
            started = time.perf_counter()
            await manager.set_routes(routes)
            unchanged.append(time.perf_counter() - started)
            installed = await manager.get_routes()
            if installed != routes:
                raise RuntimeError("installed %d routes, expected %d" % (
                    len(installed), len(routes)))
            started = time.perf_counter()
            await manager.set_routes(pset())
            removals.append(time.perf_counter() - started)
        print(json.dumps({"install": installs, "unchanged": unchanged,
                          "remove": removals}), flush=True)

    react(lambda reactor: Deferred.fromCoroutine(measure(reactor)))


def publish_container(lab, node):
    """
    Give ``node`` a Docker-like container: a namespace behind a ``docker0``
    bridge, reachable on the node's PUBLISHED_PORT through the rules dockerd
    installs for ``-p 9003:9003`` (without Docker, to stay self-contained).

    :return: The container's namespace.
    """
    container = lab.namespace("ctr")
    for argv in (
            ["link", "add", "docker0", "type", "bridge"],
            ["addr", "add", "10.95.1.1/24", "dev", "docker0"],
            ["link", "set", "docker0", "up"],
            ["link", "add", "vctr", "type", "veth", "peer", "name", "eth0",
             "netns", container],
            ["link", "set", "vctr", "master", "docker0", "up"]):
        run_command(["ip", "-n", node] + argv)
    for argv in (["addr", "add", CONTAINER + "/24", "dev", "eth0"],
                 ["link", "set", "eth0", "up"],
                 ["route", "add", "default", "via", "10.95.1.1"]):
        run_command(["ip", "-n", container] + argv)
    port = str(PUBLISHED_PORT)
    for argv in (
            ["sysctl", "-w", "net.ipv4.ip_forward=1"],
            ["iptables", "-P", "FORWARD", "DROP"],
            ["iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp",
             "--dport", port, "-m", "addrtype", "--dst-type", "LOCAL",
             "-j", "DNAT", "--to-destination", CONTAINER + ":" + port],
            ["iptables", "-A", "FORWARD", "-o", "docker0", "-m", "conntrack",
             "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
            ["iptables", "-A", "FORWARD", "-d", CONTAINER, "-o", "docker0",
             "-p", "tcp", "--dport", port, "-j", "ACCEPT"],
            ["iptables", "-A", "FORWARD", "-i", "docker0", "!", "-o",
             "docker0", "-j", "ACCEPT"]):
        lab.run(node, argv)
    return container


def forward_through(lab, client, node1, node2):
    """
    Make node2 a plain router between the client and node1's second
    address, in both directions (static routes, policy routing on node1 for
    the replies, ``FORWARD`` accepts on node2, no ICMP redirects): the floor
    any in-kernel routing through another node stands on.

    node1's own replies from the second address take the table via node2
    by their source; the container's replies (to connections Docker's DNAT
    sent it from that address) get their source back only after routing,
    so they are marked by their connection's original destination and the
    mark selects the same table.
    """
    for argv in (["addr", "add", NODE1_VIA_NODE2 + "/32", "dev", "eth0"],
                 ["rule", "add", "from", NODE1_VIA_NODE2, "table",
                  VIA_NODE2_TABLE],
                 ["rule", "add", "fwmark", VIA_NODE2_MARK, "table",
                  VIA_NODE2_TABLE],
                 ["route", "add", CLIENT + "/32", "via", NODE2, "dev", "eth0",
                  "table", VIA_NODE2_TABLE]):
        run_command(["ip", "-n", node1] + argv)
    lab.run(node1, ["iptables", "-t", "mangle", "-A", "PREROUTING", "-i",
                    "docker0", "-m", "conntrack", "--ctorigdst",
                    NODE1_VIA_NODE2, "-j", "MARK", "--set-mark",
                    VIA_NODE2_MARK])
    run_command(["ip", "-n", client, "route", "add", NODE1_VIA_NODE2 + "/32",
                 "via", NODE2, "dev", "eth0"])
    for namespace in (client, node1, node2):
        for key in ("all", "eth0"):
            lab.run(namespace, ["sysctl", "-w",
                                "net.ipv4.conf.%s.accept_redirects=0" % key])
    for key in ("all", "eth0"):
        lab.run(node2, ["sysctl", "-w",
                        "net.ipv4.conf.%s.send_redirects=0" % key])
    for source, destination in ((CLIENT, NODE1_VIA_NODE2),
                                (NODE1_VIA_NODE2, CLIENT)):
        lab.run(node2, ["iptables", "-I", "FORWARD", "-s", source, "-d",
                        destination, "-j", "ACCEPT"])


def hot(argv, cpu):
    """
    :param list argv: A command of a transfer (its sender or a sink).
    :param cpu: The CPU it must run on, or ``None`` for anywhere.
    :return: ``argv`` run on ``cpu`` at :data:`PRIORITY`.
    """
    return ["nice", "-n", str(PRIORITY)] + pinned(argv, cpu)


def pushes(lab, client, targets, size, cpu=None):
    """
    Push ``size`` bytes to each target in turn from one process in
    ``client``, over one connection per distinct target opened (and sent
    one untimed transfer) before the first timed one; the sinks are
    ``_tcp meter`` sinks.

    :param targets: ``(address, port)`` of each transfer, in order.
    :param cpu: The CPU the sender runs on, or ``None`` for anywhere.
    :return: ``list`` of each transfer's seconds, from its first byte sent
        until the sink acknowledged its last, in order.
    :raises RuntimeError: If the sender failed or a sink counted other
        than the bytes sent to it.
    """
    result = lab.run(client, hot(lab.tcp_argv("pushes", size, *[
        "%s:%d" % target for target in targets]), cpu),
        check=False, timeout=300 + 60 * len(targets))
    if result.returncode != 0:
        raise RuntimeError("pushes failed (%d): %s %s" % (
            result.returncode, result.stdout.strip()[-300:],
            result.stderr.strip()[-2000:]))
    return json.loads(result.stdout)["seconds"]


def push(lab, client, address, port, size, cpu=None):
    """
    :param cpu: The CPU the sender runs on, or ``None`` for anywhere.
    :return: Seconds to push ``size`` bytes from ``client`` to
        ``address:port``.
    """
    return pushes(lab, client, [(address, port)], size, cpu)[0]


def turns(paths, repetition, transfers):
    """
    :param list paths: What a repetition measures, in its first order.
    :param int repetition: The repetition's index (0 first).
    :param int transfers: Transfers per path (even).
    :return: The order of the repetition's transfers: ``paths`` rotated by
        ``repetition``, then backwards, and so on until each path comes
        ``transfers`` times, so every path's mean position is the same.
    """
    forth = rotated(paths, repetition)
    return (forth + forth[::-1]) * (transfers // 2)


def steering(lab, namespaces):
    """
    :param dict namespaces: Role to namespace.
    :return: ``dict`` of role to the receive packet steering mask of its
        ``eth0`` (``"0"``: off, so a packet's receive work runs in softirq
        on the CPU that sent it).
    """
    return {role: lab.run(namespace, [
        "cat", "/sys/class/net/eth0/queues/rx-0/rps_cpus"]).stdout.strip()
        for role, namespace in sorted(namespaces.items())}


def route_to(address):
    """
    Child mode, run inside a node namespace: route PORT and PUBLISHED_PORT
    to ``address`` with the real route manager.
    """
    from twisted.internet.task import react

    from flocker._model import Route
    from flocker.route import IPTablesRouteManager, ProcessRunner

    react(lambda reactor: IPTablesRouteManager(
        ProcessRunner(reactor), node="bench").set_routes(
            [Route(port=PORT, address=address),
             Route(port=PUBLISHED_PORT, address=address)]))


def child(lab, namespace, *arguments):
    """
    Run this script in ``namespace`` in one of its child modes.

    :return: Its standard output.
    """
    return lab.run(namespace, [sys.executable, os.path.abspath(__file__)] +
                   list(arguments), timeout=600).stdout


def routes_row(label, samples):
    figures = summary(samples)
    return [label, "%.3f" % figures["median"],
            "%.3f-%.3f" % (figures["min"], figures["max"]),
            " ".join("%.3f" % value for value in samples)]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true",
                        help="32 transfers of 16 MiB per path and "
                        "repetition, 3 to 8 repetitions within 90 s")
    parser.add_argument("--bytes", type=int, default=None,
                        help="bytes per transfer (default 16 MiB)")
    parser.add_argument("--transfers", type=int, default=None,
                        help="transfers per path and repetition, even "
                        "(default 128)")
    add_repetition_options(parser)
    parser.add_argument("--routes", type=int, default=1000,
                        help="routes installed in one call (default 1000)")
    parser.add_argument("--install-routes", action="store_true",
                        help=argparse.SUPPRESS)
    parser.add_argument("--route-to", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.bytes is None:
        options.bytes = 16 << 20
    if options.transfers is None:
        options.transfers = 32 if options.quick else 128
    policy = repetitions_from(
        parser, options, *((3, 8, 90.0) if options.quick else (5, 40, 600.0)))
    options.reps = policy.minimum
    if options.install_routes:
        install_routes(options.routes, options.reps)
        return 0
    if options.route_to:
        route_to(options.route_to)
        return 0
    if not 0 < options.bytes <= MAX_BYTES:
        parser.error("--bytes must be between 1 and %d" % (MAX_BYTES,))
    if not (0 < options.transfers <= MAX_TRANSFERS
            and options.transfers % 2 == 0):
        parser.error("--transfers must be even, between 2 and %d"
                     % (MAX_TRANSFERS,))
    if not 0 < options.routes <= 20000:
        parser.error("--routes must be between 1 and 20000")
    available, reason = can_make_namespaces()
    if not available:
        sys.stderr.write("routing benchmark: %s\n" % (reason,))
        return 2
    cpu = min(os.sched_getaffinity(0)) if can_pin() else None

    with NetworkLab() as lab:
        client = lab.host("client", 2)
        node1 = lab.host("node1", 11)
        node2 = lab.host("node2", 12)
        bulk = lab.host("bulk", 14)
        for node in (node2, bulk):
            lab.run(node, ["sysctl", "-w", "net.ipv4.ip_forward=0"])
            lab.run(node, ["iptables", "-P", "FORWARD", "DROP"])
        container = publish_container(lab, node1)
        lab.spawn(node1, hot(lab.tcp_argv("meter", PORT, 3600), cpu),
                  wait_for_ready=True)
        lab.spawn(container, hot(
            lab.tcp_argv("meter", PUBLISHED_PORT, 3600), cpu),
            wait_for_ready=True)
        child(lab, node2, "--route-to", NODE1)
        forward_through(lab, client, node1, node2)
        rps = steering(lab, {"client": client, "node1": node1,
                             "node2": node2})

        # Warm up every path (ARP, conntrack, socket buffers, caches).
        pushes(lab, client, [(address, port) for _, address, port in PATHS],
               min(WARM_BYTES, options.bytes), cpu)
        rates = {name: [] for name, _, _ in PATHS}

        def repetition(index):
            order = turns(PATHS, index, options.transfers)
            seconds = dict.fromkeys(rates, 0.0)
            for (name, _, _), taken in zip(order, pushes(
                    lab, client, [(address, port)
                                  for _, address, port in order],
                    options.bytes, cpu)):
                seconds[name] += taken
            this = {name: options.transfers * options.bytes / 1e9 / taken
                    for name, taken in seconds.items()}
            for name, rate in this.items():
                rates[name].append(rate)
            return {ratio: this[measured] / this[floor]
                    for ratio, measured, floor in RATIOS}

        settling = repeat_until_settled(repetition, policy)

        output = child(lab, bulk, "--install-routes", "--routes",
                       str(options.routes), "--reps", str(options.reps))
        installs = json.loads(output.strip().splitlines()[-1])

    labels = {
        "direct": "direct: client -> node1:9003 -> container",
        "routed": "routed: client -> node2:9003 -> node1 -> container",
        "forwarded": "forwarded: client -> node2 (router, no NAT) -> "
                     "node1 -> container",
        "direct_plain": "direct: client -> node1:9002 (no container)",
        "routed_plain": "routed: client -> node2:9002 -> node1",
        "forwarded_plain": "forwarded: client -> node2 (router, no NAT) "
                           "-> node1:9002",
    }
    rows = []
    medians = {}
    for name, _, _ in PATHS:
        figures = summary(rates[name])
        medians[name] = figures["median"]
        rows.append([labels[name], "%.2f" % figures["median"],
                     "%.2f-%.2f" % (figures["min"], figures["max"]),
                     " ".join("%.2f" % rate for rate in rates[name])])
    print_table("Routing: %d transfers of %d MiB per path and repetition, "
                "%d repetitions (%s), GB/s"
                % (options.transfers, options.bytes >> 20,
                   settling.repetitions,
                   "settled" if settling.settled else "NOT settled"),
                rows, ["path", "median", "min-max", "runs"])
    descriptions = {
        "ratio": "routed / direct (to a container)",
        "ratio_plain": "routed / direct (no container)",
        "ratio_forwarded": "forwarded / direct (to a container)",
        "ratio_forwarded_plain": "forwarded / direct (no container)",
        "routed_vs_forwarded": "routed / forwarded (to a container)",
        "routed_vs_forwarded_plain": "routed / forwarded (no container)",
    }
    print_ratios("Ratios of each repetition's rates",
                 [("%s: %s" % (name, descriptions[name]),
                   settling.samples[name]) for name, _, _ in RATIOS],
                 settling)
    rows = []
    for name, label in (("install", "install %d routes" % options.routes),
                        ("unchanged", "same %d routes again" %
                         options.routes),
                        ("remove", "remove %d routes" % options.routes)):
        rows.append(routes_row(label, installs[name]))
    print_table("Routes, %d repetitions, seconds" % (options.reps,), rows,
                ["measurement", "median", "min-max", "runs"])
    print("pinning: sender and sinks on CPU %s at nice %d; receive packet "
          "steering masks of eth0: %s (0: forwarding runs in softirq on the "
          "sending CPU)" % (cpu, PRIORITY, ", ".join(
              "%s %s" % item for item in rps.items())))
    figures = {name + "_gb_s": round(medians[name], 3)
               for name, _, _ in PATHS}
    for name, _, _ in RATIOS:
        figures.update(ratio_figures(name, settling.samples[name]))
    figures.update({
        "reps": settling.repetitions,
        "settled": settling.settled,
        "bytes": options.bytes,
        "transfers": options.transfers,
        "pinning": {"sender_cpu": cpu, "sink_cpu": cpu, "nice": PRIORITY,
                    "rps_cpus": rps},
        "routes_1000_s": round(statistics.median(installs["install"]), 4)})
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
