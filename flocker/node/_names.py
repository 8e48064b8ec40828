"""
Service names that resolve: inside every container of a project, the name
of every other application of the project (its ``container_name`` too, and
each alias its links give another application) resolves to an address of ``127.0.0.0/8`` that reaches
that application, wherever it runs, on every port it publishes (TCP or UDP).

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

The links are part of each application (they are in its container's
label), so the deploy client adds them before planning and the nodes report
them back: :func:`with_service_names` is applied to the desired deployment
of a project.  Deployments without a project (Flocker's native files) are
left as they are.
"""

import hashlib

import attr

from .._model import Link, is_safe_name

__all__ = ["with_service_names", "name_addresses"]


def _candidate(name, attempt):
    digest = hashlib.sha256(("%s#%d" % (name, attempt)).encode(
        "utf-8")).digest()
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


def with_service_names(deployment):
    """
    Add the named links that make a project's names resolve.

    :param Deployment deployment: A desired deployment.
    :return: ``deployment`` itself when it has no project; otherwise an
        equal deployment whose applications each have a named link per
        other application of it and per port that application publishes
        (its name, at that application's address, on the port it listens
        on), and per alias of their own links (the alias at its own address,
        reaching the application publishing the link's remote port).
    """
    if deployment.project is None:
        return deployment
    placements = deployment.placements()
    publishers = {port.external: application
                  for _, application in placements.values()
                  for port in application.ports}
    # Every name and the application it stands for: its own, and the
    # container_name a compose file gave it.
    targets = {name: application
               for name, (_, application) in placements.items()}
    for _, application in placements.values():
        other = application.options.container_name
        if other is not None and other not in targets and is_safe_name(
                other):
            targets[other] = application
    aliases = {}
    for _, application in placements.values():
        for link in application.links:
            target = publishers.get(link.remote_port)
            if (not link.named and target is not None
                    and link.alias not in targets):
                aliases.setdefault(application.name, {})[link.alias] = target
    addresses = name_addresses(
        list(targets) + [alias for found in aliases.values()
                         for alias in found])
    nodes = []
    for node in deployment.nodes:
        applications = []
        for application in node.applications:
            names = {name: target for name, target in targets.items()
                     if target.name != application.name}
            names.update(aliases.get(application.name, {}))
            links = {link for link in application.links if not link.named}
            for name, target in names.items():
                for port in target.ports:
                    links.add(Link(local_port=port.internal,
                                   remote_port=port.external, alias=name,
                                   address=addresses[name],
                                   protocol=port.protocol))
            applications.append(attr.evolve(application, links=links))
        nodes.append(attr.evolve(node, applications=applications))
    return attr.evolve(deployment, nodes=nodes)
