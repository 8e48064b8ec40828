"""
Service names that resolve: inside every container of a project, the name
of every other application of the project (its ``container_name`` too, its
network ``aliases``, and each alias its links give another application)
resolves to an address of ``127.0.0.0/8`` that reaches that application,
wherever it runs, on every port it publishes or exposes (TCP or UDP).

How: each name gets a stable address of its own, ``127.X.Y.Z`` with
``X >= 128`` (chosen from a digest of the name, so adding or removing
another application changes nobody else's address unless two names meet).
Each application of the project gets, for every other application's name
and every port it publishes, a *named* :class:`flocker.Link` at that
address: the container's ``/etc/hosts`` maps the name to the address
(Docker's ``ExtraHosts``) and the link rules in the container's network
namespace send ``ADDRESS:INTERNAL`` to the node's own ``EXTERNAL`` port,
which the node routes to wherever the application runs.  A move of the
target changes the nodes' routes, not the client's container, so clients
keep resolving and reaching it without a restart, as Flocker's links do.

A port the application only exposes (compose's ``expose``, or a port
without a host port) has no external port of its own: it is given one of
:data:`EXPOSED_PORTS`, chosen from a digest of the project, application,
port and protocol as addresses are, and published and routed like any
other port.

The links are part of each application, so the deploy client adds them
before planning and the nodes report them back: :func:`with_service_names`
is applied to the desired deployment of a project.  A running container
whose named links are all that changed keeps running: the plan rewrites
its rules and ``/etc/hosts`` in place (see
:class:`flocker.node._changes.SetLinks`).  Deployments without a project
(Flocker's native files) are left as they are.
"""

import hashlib

import attr

from .._model import Link, Port, is_safe_name

__all__ = ["with_service_names", "name_addresses", "EXPOSED_PORTS",
           "NAME_NETWORK"]

#: The external ports given to ports that are only exposed: above Linux's
#: default range of ports picked for outgoing connections (32768-60999),
#: so no client's connection ever holds one.
EXPOSED_PORTS = range(61000, 65536)

#: The addresses names get, ``127.128.0.0/9``, as (first byte, lowest
#: second byte): a node tells Flocker's name lines in ``/etc/hosts`` by them.
NAME_NETWORK = (127, 128)


def _digest(text, attempt):
    return hashlib.sha256(("%s#%d" % (text, attempt)).encode(
        "utf-8")).digest()


def _candidate(name, attempt):
    digest = _digest(name, attempt)
    return "127.%d.%d.%d" % (128 | digest[0], digest[1], digest[2])


def name_addresses(names):
    """
    Give each name its stable address.

    :param names: Iterable of names.
    :return: ``dict`` of name to an address of ``127.128.0.0/9``, no two
        alike.  A name's address depends only on the name, except when two
        names' first choices meet: then the later name in sorted order
        takes its next choice.
    """
    taken = {}
    for name in sorted(set(names)):
        attempt = 0
        while _candidate(name, attempt) in taken.values():
            attempt += 1
        taken[name] = _candidate(name, attempt)
    return taken


def exposed_ports(project, applications):
    """
    Give each port that an application exposes without publishing it an
    external port of :data:`EXPOSED_PORTS`.

    :param str project: The project's name.
    :param applications: Iterable of the project's :class:`Application`.
    :return: ``dict`` of application name to the ``set`` of :class:`Port`
        to add to its ports.  A port's choice depends only on the project,
        application, port and protocol, except when it meets a published
        port or an earlier choice (in sorted order): then the next one.
    """
    applications = sorted(applications, key=lambda a: a.name)
    taken = {(port.external, port.protocol)
             for application in applications for port in application.ports}
    found = {}
    size = len(EXPOSED_PORTS)
    for application in applications:
        published = {(port.internal, port.protocol)
                     for port in application.ports}
        for internal, protocol in sorted(application.options.expose):
            if (internal, protocol) in published:
                continue
            attempt = 0
            while True:
                digest = _digest("%s/%s/%d/%s" % (
                    project, application.name, internal, protocol), attempt)
                external = EXPOSED_PORTS[
                    int.from_bytes(digest[:4], "big") % size]
                if (external, protocol) not in taken:
                    break
                attempt += 1
            taken.add((external, protocol))
            found.setdefault(application.name, set()).add(
                Port(internal=internal, external=external,
                     protocol=protocol))
    return found


def _targets(applications):
    """
    :return: ``dict`` of every name of the project (application names,
        ``container_name`` and network aliases) to the application's name.
    """
    targets = {application.name: application.name
               for application in applications}
    for application in applications:
        others = [application.options.container_name]
        others.extend(application.options.aliases)
        for other in others:
            if (other is not None and other not in targets
                    and is_safe_name(other)):
                targets[other] = application.name
    return targets


def _link_aliases(applications, publishers, targets):
    """
    :return: ``dict`` of application name to the ``dict`` of each alias its
        links give another application (and that is no name of the
        project) to that application's name.
    """
    aliases = {}
    for application in applications:
        found = {}
        for link in application.links:
            target = publishers.get((link.remote_port, link.protocol))
            if not link.named and target is not None:
                found[link.alias] = target
        found.update(application.options.link_aliases)
        found = {alias: target for alias, target in found.items()
                 if alias not in targets and is_safe_name(alias)}
        if found:
            aliases[application.name] = found
    return aliases


def with_service_names(deployment):
    """
    Add the named links that make a project's names resolve, and the
    external ports of its exposed ports.

    :param Deployment deployment: A desired deployment.
    :return: ``deployment`` itself when it has no project; otherwise an
        equal deployment whose applications each have an external port per
        port they only expose (see :func:`exposed_ports`), and a named link
        per other application of it and per port that application publishes
        or exposes (each of its names, at that name's address, on the port
        it listens on), and per alias of their own links (the alias at its
        own address, reaching the application the link is to).
    """
    if deployment.project is None:
        return deployment
    applications = [application for node in deployment.nodes
                    for application in node.applications]
    added = exposed_ports(deployment.project, applications)
    ports = {application.name: application.ports | added.get(
        application.name, frozenset()) for application in applications}
    publishers = {(port.external, port.protocol): name
                  for name, published in ports.items()
                  for port in published}
    targets = _targets(applications)
    aliases = _link_aliases(applications, publishers, targets)
    addresses = name_addresses(
        list(targets) + [alias for found in aliases.values()
                         for alias in found])
    nodes = []
    for node in deployment.nodes:
        changed = []
        for application in node.applications:
            names = {name: target for name, target in targets.items()
                     if target != application.name}
            names.update(aliases.get(application.name, {}))
            links = {link for link in application.links if not link.named}
            for name, target in names.items():
                for port in ports[target]:
                    links.add(Link(local_port=port.internal,
                                   remote_port=port.external, alias=name,
                                   address=addresses[name],
                                   protocol=port.protocol))
            changed.append(attr.evolve(application, links=links,
                                       ports=ports[application.name]))
        nodes.append(attr.evolve(node, applications=changed))
    return attr.evolve(deployment, nodes=nodes)
