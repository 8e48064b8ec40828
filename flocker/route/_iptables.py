"""
The real route manager: Linux iptables NAT rules, installed with
``iptables-restore --noflush``.

Where Flocker's rules live
==========================

Every rule Flocker installs is in one of its own chains and carries a comment
starting with ``flocker:``; the built-in chains only get one jump each
(commented ``flocker:jump``), inserted at their top.  On a node::

    nat     PREROUTING  -> FLOCKER-PREROUTING   DNAT of connections arriving
                                                 for a routed port
    nat     OUTPUT      -> FLOCKER-OUTPUT       DNAT of the node's own
                                                 connections (its addresses and
                                                 127.0.0.1)
    nat     POSTROUTING -> FLOCKER-POSTROUTING  MASQUERADE of DNAT-ed
                                                 connections to the target, so
                                                 its replies come back through
                                                 this node to be un-NAT-ed
    filter  FORWARD     -> FLOCKER-FORWARD      accept the routed connections
                                                 and their replies (Docker's
                                                 FORWARD policy is DROP)
    filter  INPUT       -> FLOCKER-INPUT        drop 127.0.0.0/8 packets from
                                                 the network (route_localnet)

In a container's network namespace (links)::

    nat     OUTPUT      -> FLOCKER-LINK-OUTPUT       DNAT 127.0.0.1:local (or
                                                      a name's 127.x.y.z:local)
                                                      to node:remote
    nat     POSTROUTING -> FLOCKER-LINK-POSTROUTING  MASQUERADE the 127.0.0.1
                                                      source of those

Replacing rules
===============

A change reads ``iptables-save`` first.  Each rule's comment names everything
the rule depends on (``flocker:route:PORT:ADDRESS``), so when the sequence of
comments in every Flocker chain and the jumps are already the wanted ones,
nothing is run.  Otherwise one ``iptables-restore --noflush`` input declares
Flocker's chains (which flushes them), refills them and inserts the jumps
that are missing.  Rules outside Flocker's chains are never named in it, so
they are never touched.

``iptables-restore`` commits each table on its ``COMMIT`` line, so one input
is atomic per table but not across the ``nat`` and ``filter`` tables (checked
with iptables 1.8.9, nf_tables backend: an error in the ``filter`` part left
the ``nat`` part applied).  When a replacement fails, the manager therefore
reads the rules again and, if any Flocker chain changed, restores the saved
previous contents of Flocker's chains in a second input.

Moving a route, and ports in use
================================

When a port's target changes (its application moved) or its route goes, the
connection tracking entries of connections already DNAT-ed to the old target
are deleted after the new rules are in place (``conntrack -L --dst-nat`` to
find the ports that have any, then ``conntrack -D -p tcp --orig-port-dst
PORT --dst-nat OLD`` for each), so nothing keeps flowing to the old node.

Before changing anything, ``set_routes`` lists the node's listening TCP
sockets (``ss -H -l -t -n``): a route on a port where some socket listens
would silently take that socket's connections, so it fails with
``PortInUse`` instead.

Surviving a Docker restart
==========================

The ``FORWARD`` jump goes into the built-in ``FORWARD`` chain, not into
Docker's ``DOCKER-USER``: ``DOCKER-USER`` does not exist until dockerd has run
once, and the jump must work before and without Docker.  dockerd never
flushes ``FORWARD``; when it (re)starts it inserts its own jumps
(``DOCKER-USER``, ``DOCKER-FORWARD``) above Flocker's.  That keeps working:
Docker's chains only accept or drop traffic to and from its bridges and
return for everything else, so node-to-node routed traffic still reaches
``FLOCKER-FORWARD`` before the ``DROP`` policy, and an administrator's own
``DOCKER-USER`` rules keep precedence, as Docker documents.
"""

import json
import re

import attr
from eliot.twisted import DeferredContext
from pyrsistent import pmap, pset, pvector
from twisted.internet.defer import DeferredLock, inlineCallbacks
from zope.interface import implementer

from .._model import LOOPBACK, Link, Route
from ._interface import (
    IRouteManager, PortInUse, check_links, check_routes,
)
from ._logging import (
    ANNOUNCE_CONTAINER, CONNTRACK_CLEARED, GET_LINKS, GET_ROUTES,
    LISTENING_PORTS, PREREQUISITES,
    RULES_REPLACED, RULES_ROLLED_BACK, RULES_UNCHANGED, SET_LINKS, SET_ROUTES,
    SYSCTL_SET,
)
from ._process import CommandFailed

__all__ = [
    "IPTablesRouteManager", "ROUTE_CHAINS", "LINK_CHAINS", "JUMP_COMMENT",
    "parse_listening_ports", "parse_dnat_flows",
]

#: The comment on the jumps from built-in chains into Flocker's chains.
JUMP_COMMENT = "flocker:jump"

#: On a node: table -> ((built-in chain, Flocker chain), ...).
ROUTE_CHAINS = pmap({
    "nat": (("PREROUTING", "FLOCKER-PREROUTING"),
            ("OUTPUT", "FLOCKER-OUTPUT"),
            ("POSTROUTING", "FLOCKER-POSTROUTING")),
    "filter": (("FORWARD", "FLOCKER-FORWARD"),
               ("INPUT", "FLOCKER-INPUT")),
})

#: In a container's namespace: table -> ((built-in, Flocker chain), ...).
LINK_CHAINS = pmap({
    "nat": (("OUTPUT", "FLOCKER-LINK-OUTPUT"),
            ("POSTROUTING", "FLOCKER-LINK-POSTROUTING")),
})

# Tables in the order they appear in a restore input.  nat first: if the
# filter part fails, the rollback puts nat back.
_TABLE_ORDER = ("nat", "filter")

# Kernel settings every routing node needs (see IRouteManager.prerequisites).
_NODE_SYSCTLS = ("net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet")

# The one setting a container needs for its 127.0.0.1 link rules.
_CONTAINER_SYSCTLS = ("net.ipv4.conf.all.route_localnet",)

# How long iptables-restore waits for the xtables lock (legacy backend) before
# failing, rather than failing at once when another tool holds it.
_LOCK_WAIT = ("--wait", "10")

_ROUTE_PREFIX = "flocker:route:"
_LINK_PREFIX = "flocker:link:"


@attr.s(frozen=True, slots=True)
class _Rule(object):
    """
    One rule of a Flocker chain.

    :ivar str table: ``nat`` or ``filter``.
    :ivar str chain: The Flocker chain.
    :ivar str comment: The ``flocker:`` comment naming what the rule is for.
    :ivar tuple match: The matching arguments.
    :ivar tuple target: The ``-j`` arguments.
    """
    table = attr.ib()
    chain = attr.ib()
    comment = attr.ib()
    match = attr.ib()
    target = attr.ib()

    def line(self):
        """
        :return: The rule as an ``iptables-restore`` line (no quoting is
            needed: every token is a number, an address, a name or a safe
            comment without spaces).
        """
        return " ".join(("-A", self.chain) + self.match + (
            "-m", "comment", "--comment", self.comment) + self.target)


def _base_rules():
    """
    :return: The rules a routing node has whatever its routes are.
    """
    return [
        # Replies (and later packets) of connections Flocker's DNAT sent
        # through this node.  The second conntrack match keeps this to
        # NAT-ed connections.
        _Rule("filter", "FLOCKER-FORWARD", "flocker:forward-established",
              ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
               "-m", "conntrack", "--ctstate", "DNAT"),
              ("-j", "ACCEPT")),
        # route_localnet=1 makes the kernel accept 127.0.0.0/8 destinations
        # arriving from the network; nothing legitimate does that.
        _Rule("filter", "FLOCKER-INPUT", "flocker:localnet-guard",
              ("!", "-i", "lo", "!", "-s", "127.0.0.0/8",
               "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate",
               "RELATED,ESTABLISHED,DNAT"),
              ("-j", "DROP")),
    ]


def _route_rules(route):
    """
    :param Route route: A validated route.
    :return: The rules that make ``route`` work, one per chain.
    """
    port = str(route.port)
    protocol = route.protocol
    # A TCP route keeps the comment it always had; a UDP one says so.
    comment = "%s%d%s:%s" % (_ROUTE_PREFIX, route.port,
                             "" if protocol == "tcp" else "/" + protocol,
                             route.address)
    to_local_port = ("-p", protocol, "-m", protocol, "--dport", port,
                     "-m", "addrtype", "--dst-type", "LOCAL")
    dnat = ("-j", "DNAT", "--to-destination",
            "%s:%s" % (route.address, port))
    to_target = ("-d", route.address + "/32", "-p", protocol, "-m",
                 protocol, "--dport", port, "-m", "conntrack", "--ctstate",
                 "DNAT")
    return [
        _Rule("nat", "FLOCKER-PREROUTING", comment, to_local_port, dnat),
        _Rule("nat", "FLOCKER-OUTPUT", comment, to_local_port, dnat),
        _Rule("nat", "FLOCKER-POSTROUTING", comment, to_target,
              ("-j", "MASQUERADE")),
        _Rule("filter", "FLOCKER-FORWARD", comment, to_target,
              ("-j", "ACCEPT")),
    ]


def _link_rules(node_address, link):
    """
    :param str node_address: The node's IPv4 address.
    :param Link link: A link.
    :return: The rules that make ``link`` work in a container's namespace.
    """
    # A named link's comment carries its address after the alias
    # (ALIAS@ADDRESS); Flocker's loopback links keep the comment they had.
    # A UDP link says so after its local port.
    name = ("%s@%s" % (link.alias, link.address) if link.named
            else link.alias)
    protocol = link.protocol
    comment = "%s%s:%d%s:%s:%d" % (
        _LINK_PREFIX, name, link.local_port,
        "" if protocol == "tcp" else "/" + protocol, node_address,
        link.remote_port)
    remote = str(link.remote_port)
    return [
        _Rule("nat", "FLOCKER-LINK-OUTPUT", comment,
              ("-d", link.address + "/32", "-p", protocol, "-m", protocol,
               "--dport", str(link.local_port)),
              ("-j", "DNAT", "--to-destination",
               "%s:%s" % (node_address, remote))),
        # Without a new source the packet would leave with 127.0.0.1 and the
        # reply could never come back.
        _Rule("nat", "FLOCKER-LINK-POSTROUTING", comment,
              ("-s", "127.0.0.1/32", "-d", node_address + "/32",
               "-p", protocol, "-m", protocol, "--dport", remote,
               "-m", "conntrack", "--ctstate", "DNAT"),
              ("-j", "MASQUERADE")),
    ]


def _desired_route_rules(routes):
    rules = _base_rules()
    for route in sorted(routes, key=lambda route: (route.port,
                                                   route.protocol)):
        rules.extend(_route_rules(route))
    return rules


def _desired_link_rules(node_address, links):
    rules = []
    for link in sorted(links, key=lambda link: (link.local_port,
                                                link.protocol,
                                                link.address)):
        rules.extend(_link_rules(node_address, link))
    return rules


# iptables-save prints a comment in double quotes; Flocker's comments have
# no spaces or quotes, so these simple patterns read them exactly.  (Other
# rules' comments may contain anything; only their chain and target matter.)
_COMMENT = re.compile(r' --comment (?:"([^"\\]*)"|([^\s"]+))(?:\s|$)')
_TARGET = re.compile(r" -j (\S+)")
_CONNTRACK_SRC = re.compile(r"\bsrc=(\S+)")
_CONNTRACK_DPORT = re.compile(r"\bdport=(\d+)")


def _comment(line):
    """
    :return: The rule's comment, or ``None`` when it has none that could be
        Flocker's.
    """
    match = _COMMENT.search(line)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


def _target(line):
    match = _TARGET.search(line)
    return match.group(1) if match else None


@attr.s(frozen=True, slots=True)
class _Saved(object):
    """
    Flocker's part of an ``iptables-save`` output.

    :ivar chains: ``PMap`` of ``(table, chain)`` to a ``PVector`` of
        ``(comment, line)`` for every Flocker chain that exists.
    :ivar jumps: ``PSet`` of ``(table, built-in chain, Flocker chain)`` for
        the ``flocker:jump`` rules found.
    """
    chains = attr.ib()
    jumps = attr.ib()

    def comments(self, table, chain):
        """
        :return: ``tuple`` of the comments in a chain, or ``None`` if the
            chain does not exist.
        """
        rules = self.chains.get((table, chain))
        if rules is None:
            return None
        return tuple(comment for comment, line in rules)

    def rule_count(self):
        return sum(len(rules) for rules in self.chains.values())


def _parse_save(output, layout):
    """
    Pick Flocker's chains and jumps out of ``iptables-save`` output.

    :param bytes output: What ``iptables-save`` printed.
    :param layout: :data:`ROUTE_CHAINS` or :data:`LINK_CHAINS`.
    :return: A :class:`_Saved`.
    """
    ours = {(table, chain): builtin
            for table, pairs in layout.items() for builtin, chain in pairs}
    chains = {}
    jumps = set()
    table = None
    for line in output.decode("utf-8", "replace").splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if (table, name) in ours:
                chains.setdefault((table, name), [])
        elif line.startswith("-A ") and "FLOCKER-" in line:
            chain = line.split(None, 2)[1]
            comment = _comment(line)
            if (table, chain) in ours:
                chains.setdefault((table, chain), []).append((comment, line))
            elif (comment == JUMP_COMMENT
                  and ours.get((table, _target(line))) == chain):
                jumps.add((table, chain, _target(line)))
    return _Saved(
        chains=pmap({key: pvector(rules) for key, rules in chains.items()}),
        jumps=pset(jumps))


def _up_to_date(saved, layout, rules):
    """
    :return: ``True`` when every Flocker chain of ``layout`` holds exactly
        ``rules`` (compared by comment, in order) and every jump exists, or
        when no rules are wanted and none are there (a container without
        links does not get empty chains).
    """
    if not rules and not any(
            saved.comments(table, chain)
            for table, pairs in layout.items() for builtin, chain in pairs):
        return True
    for table, pairs in layout.items():
        for builtin, chain in pairs:
            wanted = tuple(rule.comment for rule in rules
                           if rule.table == table and rule.chain == chain)
            if saved.comments(table, chain) != wanted:
                return False
            if (table, builtin, chain) not in saved.jumps:
                return False
    return True


def _render(saved, layout, rules):
    """
    :return: ``bytes`` for ``iptables-restore --noflush``: each Flocker chain
        declared (created or flushed) and refilled, missing jumps inserted.
    """
    lines = []
    for table in _TABLE_ORDER:
        if table not in layout:
            continue
        lines.append("*" + table)
        for builtin, chain in layout[table]:
            lines.append(":%s - [0:0]" % (chain,))
        for rule in rules:
            if rule.table == table:
                lines.append(rule.line())
        for builtin, chain in layout[table]:
            if (table, builtin, chain) not in saved.jumps:
                lines.append("-I %s 1 -m comment --comment %s -j %s" % (
                    builtin, JUMP_COMMENT, chain))
        lines.append("COMMIT")
    return ("\n".join(lines) + "\n").encode("ascii")


def _render_rollback(before, after, layout):
    """
    :return: ``bytes`` restoring the contents Flocker's chains had in
        ``before`` in every table where ``after`` differs, or ``None`` when
        nothing differs.
    """
    lines = []
    for table in _TABLE_ORDER:
        if table not in layout:
            continue
        keys = [(table, chain) for builtin, chain in layout[table]]
        if all(before.chains.get(key) == after.chains.get(key)
               for key in keys):
            continue
        lines.append("*" + table)
        for key in keys:
            if key in before.chains or key in after.chains:
                lines.append(":%s - [0:0]" % (key[1],))
        for key in keys:
            for comment, line in before.chains.get(key, ()):
                lines.append(line)
        lines.append("COMMIT")
    if not lines:
        return None
    return ("\n".join(lines) + "\n").encode("utf-8")


def _routes_from(saved):
    """
    :return: ``PSet`` of the ``Route`` values whose DNAT rule is in
        ``FLOCKER-PREROUTING``.
    """
    routes = set()
    for comment, line in saved.chains.get(("nat", "FLOCKER-PREROUTING"), ()):
        if comment and comment.startswith(_ROUTE_PREFIX):
            try:
                port, address = comment[len(_ROUTE_PREFIX):].split(":", 1)
                port, _, protocol = port.partition("/")
                routes.add(Route(port=int(port), address=address,
                                 protocol=protocol or "tcp"))
            except ValueError:
                # Not a comment Flocker wrote; the next change replaces it.
                continue
    return pset(routes)


def _links_from(saved):
    """
    :return: ``PSet`` of the ``Link`` values whose DNAT rule is in
        ``FLOCKER-LINK-OUTPUT``.
    """
    links = set()
    for comment, line in saved.chains.get(("nat", "FLOCKER-LINK-OUTPUT"), ()):
        if comment and comment.startswith(_LINK_PREFIX):
            try:
                name, local, address, remote = comment[
                    len(_LINK_PREFIX):].split(":")
                alias, _, at = name.partition("@")
                local, _, protocol = local.partition("/")
                links.add(Link(local_port=int(local),
                               remote_port=int(remote), alias=alias,
                               address=at or LOOPBACK,
                               protocol=protocol or "tcp"))
            except ValueError:
                # Not a comment Flocker wrote; the next change replaces it.
                continue
    return pset(links)


def parse_listening_ports(output):
    """
    Read the ports out of ``ss -H -l -t -n`` output.

    :param bytes output: Lines like ``LISTEN 0 128 0.0.0.0:22 0.0.0.0:*``
        (the local address may be ``[::]:22``, ``*:22`` or carry an
        ``%interface`` suffix).
    :return: ``PSet`` of ``int``.
    """
    ports = set()
    for line in output.decode("utf-8", "replace").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        port = fields[3].rsplit(":", 1)[-1]
        if port.isdigit():
            ports.add(int(port))
    return pset(ports)


def parse_dnat_flows(output):
    """
    Read ``conntrack -L -p tcp --dst-nat`` output.

    :param bytes output: Lines like ``tcp 6 118 TIME_WAIT src=C dst=N
        sport=X dport=8080 src=T dst=N sport=8080 dport=X [ASSURED] ...``:
        the original direction first, then the reply direction.
    :return: ``PSet`` of ``(original destination port, reply source
        address)``: each port and the address it was DNAT-ed to.
    """
    flows = set()
    for line in output.decode("ascii", "replace").splitlines():
        sources = _CONNTRACK_SRC.findall(line)
        ports = _CONNTRACK_DPORT.findall(line)
        if len(sources) >= 2 and ports:
            flows.add((int(ports[0]), sources[1]))
    return pset(flows)


def parse_interface_addresses(output):
    """
    :param output: What ``ip -j address show`` printed (``bytes``).
    :return: ``list`` of ``(IPv4 address, hardware address)`` of the
        Ethernet interfaces' global addresses.
    :raises ValueError: If it is not that command's output.
    """
    found = []
    for interface in json.loads(output or b"[]"):
        mac = interface.get("address")
        if interface.get("link_type") != "ether" or not mac:
            continue
        for info in interface.get("addr_info", ()):
            if info.get("family") == "inet" and info.get(
                    "scope") == "global" and info.get("local"):
                found.append((info["local"], mac))
    return found


def parse_route_device(output):
    """
    :param output: What ``ip -o route get ADDRESS`` printed (``bytes``).
    :return: The interface the address is reached through, or ``None`` if
        it is one of this node's own addresses.
    """
    words = output.decode("ascii", "replace").split()
    if not words or words[0] == "local" or "dev" not in words[:-1]:
        return None
    return words[words.index("dev") + 1]


def _in_container(container_pid, argv):
    """
    :return: ``argv`` run in the network namespace of ``container_pid``.
    """
    return ("nsenter", "-t", str(container_pid), "-n") + tuple(argv)


def _finish(action, d, **success):
    """
    End ``action`` when ``d`` fires, adding ``success`` fields computed from
    the result by the given callables, and fire with the result.
    """
    d = DeferredContext(d)

    def succeeded(result):
        action.addSuccessFields(
            **{name: compute(result) for name, compute in success.items()})
        return result
    d.addCallback(succeeded)
    return d.addActionFinish()


@implementer(IRouteManager)
class IPTablesRouteManager(object):
    """
    Routes and links as iptables rules (see the module docstring).

    The node agent makes one per node::

        manager = IPTablesRouteManager(ProcessRunner(reactor), node=address)

    and calls :meth:`set_routes` with the routes the plan gives the node and
    :meth:`set_links` after starting each container that has links.

    :ivar runner: ``IProcessRunner`` whose commands act in the node's network
        namespace (give it a prefix to act in another one).
    :ivar str node: How error messages name the node.
    """

    def __init__(self, runner, node):
        self.runner = runner
        self.node = node
        # One change at a time: two overlapping read-compare-replace runs
        # could each add the missing jumps.
        self._lock = DeferredLock()

    # Queries

    def listening_ports(self):
        action = LISTENING_PORTS(node=self.node)
        with action.context():
            d = self.runner.run(("ss", "-H", "-l", "-t", "-n"))
            d.addCallback(parse_listening_ports)
            return _finish(action, d, ports=lambda ports: ports)

    def get_routes(self):
        action = GET_ROUTES(node=self.node)
        with action.context():
            d = self.runner.run(("iptables-save", "-t", "nat"))
            d.addCallback(lambda output: _routes_from(
                _parse_save(output, ROUTE_CHAINS)))
            return _finish(action, d, route_count=len)

    def get_links(self, container_pid):
        action = GET_LINKS(node=self.node, container_pid=container_pid)
        with action.context():
            d = self.runner.run(_in_container(
                container_pid, ("iptables-save", "-t", "nat")))
            d.addCallback(lambda output: _links_from(
                _parse_save(output, LINK_CHAINS)))
            return _finish(action, d, link_count=len)

    # Changes

    def prerequisites(self):
        action = PREREQUISITES(node=self.node)
        with action.context():
            d = self._lock.run(self._prerequisites)
            return _finish(action, d, changed=lambda changed: changed
                           ).addCallback(lambda _: None)

    def set_routes(self, routes):
        routes = pset(routes)
        action = SET_ROUTES(node=self.node, route_count=len(routes))
        with action.context():
            d = self._lock.run(self._set_routes, routes)
            return _finish(action, d, changed=lambda changed: changed
                           ).addCallback(lambda _: None)

    def announce_container(self, container_pid):
        action = ANNOUNCE_CONTAINER(node=self.node,
                                    container_pid=container_pid)
        with action.context():
            d = self._announce(container_pid)
            return _finish(action, d, addresses=lambda done: done
                           ).addCallback(lambda _: None)

    @inlineCallbacks
    def _announce(self, container_pid):
        output = yield self.runner.run(_in_container(
            container_pid, ("ip", "-j", "address", "show")))
        announced = []
        for address, mac in parse_interface_addresses(output):
            device = parse_route_device((yield self.runner.run(
                ("ip", "-o", "route", "get", address))))
            if device is None:
                continue
            yield self.runner.run(("ip", "neigh", "replace", address,
                                   "lladdr", mac, "dev", device,
                                   "nud", "reachable"))
            announced.append(address)
        return announced

    def set_links(self, container_pid, node_address, links):
        links = pset(links)
        action = SET_LINKS(node=self.node, container_pid=container_pid,
                           link_count=len(links))
        with action.context():
            d = self._lock.run(self._set_links, container_pid, node_address,
                               links)
            return _finish(action, d, changed=lambda changed: changed
                           ).addCallback(lambda _: None)

    @inlineCallbacks
    def _prerequisites(self):
        changed = yield self._ensure_sysctls((), _NODE_SYSCTLS)
        saved = _parse_save((yield self._save(())), ROUTE_CHAINS)
        replaced = yield self._converge(
            (), ROUTE_CHAINS, saved,
            _desired_route_rules(_routes_from(saved)))
        return changed or replaced

    @inlineCallbacks
    def _set_routes(self, routes):
        routes = check_routes(routes)
        if routes:
            # Listening sockets are TCP ones (``ss -t``): a UDP route is
            # not checked against the node's own UDP sockets.
            busy = (yield self.listening_ports()) & pset(
                route.port for route in routes if route.protocol == "tcp")
            if busy:
                raise PortInUse(self.node, busy)
        changed = yield self._ensure_sysctls((), _NODE_SYSCTLS)
        saved = _parse_save((yield self._save(())), ROUTE_CHAINS)
        replaced = yield self._converge(
            (), ROUTE_CHAINS, saved, _desired_route_rules(routes))
        if replaced:
            yield self._clear_conntrack(_routes_from(saved), routes)
        return changed or replaced

    @inlineCallbacks
    def _set_links(self, container_pid, node_address, links):
        links = check_links(container_pid, node_address, links)
        prefix = _in_container(container_pid, ())
        changed = yield self._ensure_sysctls(prefix, _CONTAINER_SYSCTLS)
        saved = _parse_save((yield self._save(prefix)), LINK_CHAINS)
        replaced = yield self._converge(
            prefix, LINK_CHAINS, saved,
            _desired_link_rules(node_address, links))
        return changed or replaced

    # Steps

    def _save(self, prefix):
        return self.runner.run(prefix + ("iptables-save",))

    @inlineCallbacks
    def _ensure_sysctls(self, prefix, names):
        """
        Set each of ``names`` to 1 where it is not 1 yet; reading first keeps
        a converged node from being written to at all.

        :return: ``Deferred`` firing with whether anything was written.
        """
        output = yield self.runner.run(prefix + ("sysctl", "-n") + names)
        values = output.decode("ascii", "replace").split()
        unset = [name for name, value in zip(names, values) if value != "1"]
        if len(values) != len(names):
            unset = list(names)
        if unset:
            yield self.runner.run(
                prefix + ("sysctl", "-w") + tuple(n + "=1" for n in unset))
            SYSCTL_SET.log(settings=unset)
        return bool(unset)

    @inlineCallbacks
    def _converge(self, prefix, layout, saved, rules):
        """
        Replace Flocker's chains with ``rules`` unless they already hold them.

        :return: ``Deferred`` firing with whether a replacement was made.
        """
        if _up_to_date(saved, layout, rules):
            RULES_UNCHANGED.log(rule_count=len(rules))
            return False
        restore = prefix + ("iptables-restore",) + _LOCK_WAIT + ("--noflush",)
        try:
            yield self.runner.run(restore, _render(saved, layout, rules))
        except CommandFailed:
            yield self._roll_back(prefix, layout, saved, restore)
            raise
        RULES_REPLACED.log(rule_count=len(rules))
        return True

    @inlineCallbacks
    def _roll_back(self, prefix, layout, before, restore):
        """
        After a failed replacement, put back Flocker's previous chains in the
        tables where the failed input was partly committed.  A failure here
        is logged (by the command's action) and otherwise ignored: the error
        the caller gets is the original one.
        """
        try:
            after = _parse_save((yield self._save(prefix)), layout)
            batch = _render_rollback(before, after, layout)
            if batch is not None:
                yield self.runner.run(restore, batch)
                RULES_ROLLED_BACK.log(rule_count=before.rule_count())
        except CommandFailed:
            pass

    @inlineCallbacks
    def _clear_conntrack(self, old_routes, new_routes):
        """
        Delete the connection tracking entries of connections DNAT-ed to an
        address that a port is no longer routed to.  Without this, packets
        of an established connection (and, for up to the entry's timeout,
        new connections reusing its tuple) keep going to the old node.

        One ``conntrack -L`` finds which of those ports have entries at all,
        so that removing many routes does not cost one command per route;
        then one ``conntrack -D`` per port that has some.
        """
        targets = {(route.port, route.protocol): route.address
                   for route in new_routes}
        stale = {(route.protocol, route.port, route.address)
                 for route in old_routes
                 if targets.get((route.port, route.protocol)) != route.address}
        if not stale:
            return
        found = set()
        for protocol in sorted({protocol for protocol, _, _ in stale}):
            listing = yield self.runner.run(
                ("conntrack", "-L", "-p", protocol, "--dst-nat"))
            found |= {(protocol, port, address)
                      for port, address in parse_dnat_flows(listing)}
        for protocol, port, address in sorted(found & stale):
            try:
                yield self.runner.run((
                    "conntrack", "-D", "-p", protocol,
                    "--orig-port-dst", str(port), "--dst-nat", address))
            except CommandFailed as error:
                # Exit status 1 and "0 flow entries": they expired meanwhile.
                if not (error.exit_code == 1
                        and "0 flow entries" in error.stderr):
                    raise
            CONNTRACK_CLEARED.log(port=port, address=address)
