"""
Benchmark of Flocker's routing: bulk TCP through another node's DNAT rules
against the same transfer straight to the hosting node, and the time to
install the routes of 1,000 applications on one node.

    python benchmarks/routing.py [--quick] [--bytes N] [--reps N]
                                 [--routes N]

(``--quick``: 256 MiB per transfer and 3 repetitions instead of 1 GiB and
5; still 1,000 routes.)

It builds its own small lab of network namespaces and removes it at the
end: one bridge; client 10.96.0.2; node1 .11; node2 .12, which routes ports
9002 and 9003 to node1 with ``IPTablesRouteManager`` and starts like a fresh
Docker host (forwarding off, ``FORWARD`` policy ``DROP``).  On node1 a sink
listens on port 9002 of node1 itself, and another in a "container": a
namespace behind a ``docker0`` bridge in node1 (10.95.1.2), published on
node1's port 9003 with the rules Docker uses (DNAT in ``PREROUTING``,
``FORWARD`` accepts), which is how a Flocker application is reached.
Needs root, iproute2, iptables, conntrack.

* ``direct_gb_s``: median GB/s (10^9 bytes/s) of ``--bytes`` pushed from the
  client to the container's published port node1:9003, timed in the sender
  from connect until the sink confirms the byte count;
* ``routed_gb_s``: the same pushed to node2:9003 (Flocker's DNAT +
  MASQUERADE to node1, then Docker's DNAT into the container);
* ``ratio``: routed_gb_s / direct_gb_s;
* the table also shows the same pair for the sink on node1 itself (port
  9002: no Docker hop), as ``*_plain`` figures in the JSON;
* the baseline, same run: ``forwarded_plain_gb_s``, the same transfer to
  a second address of node1 that the client and node1 reach through node2
  as a plain router (static routes, no NAT): what one more node in the path
  costs on this machine with no Flocker rule at all.
  ``ratio_forwarded_plain`` is it over ``direct_plain_gb_s``, the most any
  in-kernel routing through another node can reach here, and
  ``routed_vs_forwarded`` = ``routed_plain_gb_s / forwarded_plain_gb_s``
  is what Flocker's NAT rules cost on top of that hop;
* all five paths run in each repetition, in an order rotated per
  repetition;
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

from _common import emit, print_table, summary

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
# Transfers are bounded: at most this many bytes per push.
MAX_BYTES = 8 << 30


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
    """
    for argv in (["addr", "add", NODE1_VIA_NODE2 + "/32", "dev", "eth0"],
                 ["rule", "add", "from", NODE1_VIA_NODE2, "table", "100"],
                 ["route", "add", CLIENT + "/32", "via", NODE2, "dev", "eth0",
                  "table", "100"]):
        run_command(["ip", "-n", node1] + argv)
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


def push(lab, client, address, port, size):
    """
    :return: Seconds to push ``size`` bytes from ``client`` to
        ``address:port``.
    """
    result = lab.run(client, lab.tcp_argv("push", address, port, size),
                     timeout=300)
    figures = json.loads(result.stdout)
    if figures["bytes"] != size:
        raise RuntimeError("sink received %r bytes, sent %d" % (
            figures["bytes"], size))
    return figures["seconds"]


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


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true",
                        help="256 MiB per transfer, 3 repetitions")
    parser.add_argument("--bytes", type=int, default=None,
                        help="bytes per transfer (default 1 GiB)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions of each measurement (>= 3; "
                        "default 5)")
    parser.add_argument("--routes", type=int, default=1000,
                        help="routes installed in one call (default 1000)")
    parser.add_argument("--install-routes", action="store_true",
                        help=argparse.SUPPRESS)
    parser.add_argument("--route-to", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.bytes is None:
        options.bytes = (256 << 20) if options.quick else (1 << 30)
    if options.reps is None:
        options.reps = 3 if options.quick else 5
    if options.install_routes:
        install_routes(options.routes, options.reps)
        return 0
    if options.route_to:
        route_to(options.route_to)
        return 0
    if options.reps < 3:
        parser.error("--reps must be at least 3")
    if not 0 < options.bytes <= MAX_BYTES:
        parser.error("--bytes must be between 1 and %d" % (MAX_BYTES,))
    if not 0 < options.routes <= 20000:
        parser.error("--routes must be between 1 and 20000")
    available, reason = can_make_namespaces()
    if not available:
        sys.stderr.write("routing benchmark: %s\n" % (reason,))
        return 2

    with NetworkLab() as lab:
        client = lab.host("client", 2)
        node1 = lab.host("node1", 11)
        node2 = lab.host("node2", 12)
        bulk = lab.host("bulk", 14)
        for node in (node2, bulk):
            lab.run(node, ["sysctl", "-w", "net.ipv4.ip_forward=0"])
            lab.run(node, ["iptables", "-P", "FORWARD", "DROP"])
        container = publish_container(lab, node1)
        lab.spawn(node1, lab.tcp_argv("sink", PORT, 1800),
                  wait_for_ready=True)
        lab.spawn(container, lab.tcp_argv("sink", PUBLISHED_PORT, 1800),
                  wait_for_ready=True)
        child(lab, node2, "--route-to", NODE1)
        forward_through(lab, client, node1, node2)

        paths = [("direct", NODE1, PUBLISHED_PORT),
                 ("routed", NODE2, PUBLISHED_PORT),
                 ("direct_plain", NODE1, PORT),
                 ("routed_plain", NODE2, PORT),
                 ("forwarded_plain", NODE1_VIA_NODE2, PORT)]
        # Warm up every path (ARP, conntrack, socket buffers).
        for name, address, port in paths:
            push(lab, client, address, port, 16 << 20)
        seconds = {name: [] for name, address, port in paths}
        for rep in range(options.reps):
            turn = rep % len(paths)
            for name, address, port in paths[turn:] + paths[:turn]:
                seconds[name].append(push(lab, client, address, port,
                                          options.bytes))
        rates = {name: [options.bytes / 1e9 / s for s in samples]
                 for name, samples in seconds.items()}

        output = child(lab, bulk, "--install-routes", "--routes",
                       str(options.routes), "--reps", str(options.reps))
        installs = json.loads(output.strip().splitlines()[-1])

    labels = {
        "direct": "direct GB/s: client -> node1:9003 -> container",
        "routed": "routed GB/s: client -> node2:9003 -> node1 -> container",
        "direct_plain": "direct GB/s: client -> node1:9002 (no container)",
        "routed_plain": "routed GB/s: client -> node2:9002 -> node1",
        "forwarded_plain": "forwarded GB/s: client -> node2 (router, "
                           "no NAT) -> node1:9002",
    }
    rows = []
    medians = {}
    for name in ("direct", "routed", "direct_plain", "routed_plain",
                 "forwarded_plain"):
        figures = summary(rates[name])
        medians[name] = figures["median"]
        rows.append([labels[name], "%.2f" % figures["median"],
                     "%.2f-%.2f" % (figures["min"], figures["max"]),
                     " ".join("%.2f" % rate for rate in rates[name])])
    for name, label in (("install", "install %d routes, s" % options.routes),
                        ("unchanged", "same %d routes again, s" %
                         options.routes),
                        ("remove", "remove %d routes, s" % options.routes)):
        figures = summary(installs[name])
        rows.append([label, "%.3f" % figures["median"],
                     "%.3f-%.3f" % (figures["min"], figures["max"]),
                     " ".join("%.3f" % value for value in installs[name])])
    print_table("Routing: %d MiB per transfer, %d repetitions" % (
        options.bytes >> 20, options.reps), rows,
        ["measurement", "median", "min-max", "runs"])
    ratio = medians["routed"] / medians["direct"]
    ratio_plain = medians["routed_plain"] / medians["direct_plain"]
    ratio_forwarded = medians["forwarded_plain"] / medians["direct_plain"]
    nat_cost = medians["routed_plain"] / medians["forwarded_plain"]
    print("ratio routed/direct: %.3f (to a container), %.3f (no container)"
          % (ratio, ratio_plain))
    print("kernel forwarding alone (no NAT) / direct: %.3f; Flocker's "
          "routing / kernel forwarding alone: %.3f" % (ratio_forwarded,
                                                      nat_cost))
    emit({"direct_gb_s": round(medians["direct"], 3),
          "routed_gb_s": round(medians["routed"], 3),
          "ratio": round(ratio, 3),
          "direct_plain_gb_s": round(medians["direct_plain"], 3),
          "routed_plain_gb_s": round(medians["routed_plain"], 3),
          "ratio_plain": round(ratio_plain, 3),
          "forwarded_plain_gb_s": round(medians["forwarded_plain"], 3),
          "ratio_forwarded_plain": round(ratio_forwarded, 3),
          "routed_vs_forwarded": round(nat_cost, 3),
          "routes_1000_s": round(statistics.median(installs["install"]), 4)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
