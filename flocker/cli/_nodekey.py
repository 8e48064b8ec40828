"""
The nodes' node-to-node trust as the deploy client builds it: each node
makes its own key pair and reports its public key (the private key never
leaves the node); the client gives every node the same
:class:`~flocker._model.NodeKey`: a known_hosts file built from the host
keys this client itself verified when it connected to the nodes (so the
nodes trust each other exactly as far as the operator trusts them), and
each node's reported keys with its identity and addresses.
"""

from .._model import NodeKey

__all__ = ["nodes_known_hosts", "nodes_peers", "desired_node_key"]


def nodes_known_hosts(addresses, resolved, host_keys):
    """
    The known_hosts file the nodes check each other against: one line per
    node of the deployment, naming it as the deployment does (that is the
    name pushes connect to) and, when different, by the IP address the
    client reached it at.

    :param addresses: The deployment's node addresses.
    :param resolved: ``dict`` of node address to the IP address the client
        connected to (what ``host_keys`` is keyed by).
    :param host_keys: ``dict`` of connected address to the host ``Key`` the
        client verified there.
    :return: ``(text, missing)``: the known_hosts text (sorted by address)
        and the sorted addresses whose host key the client does not know.
    """
    lines, missing = [], []
    for address in sorted(addresses):
        ip = resolved.get(address, address)
        key = host_keys.get(ip, host_keys.get(address))
        if key is None:
            missing.append(address)
            continue
        names = address if ip == address else "%s,%s" % (address, ip)
        lines.append("%s %s\n" % (
            names, key.public().toString("openssh").decode("ascii")))
    return "".join(lines), missing


def nodes_peers(addresses, resolved, state):
    """
    Which node has which key, and where it connects from, for the nodes'
    ``authorized_keys``.

    :param addresses: The deployment's node addresses.
    :param resolved: ``dict`` of node address to the IP address the client
        connected to.
    :param ClusterState state: The nodes' reports: each node with an
        identity and a key is listed, from the address the deployment names
        it by and, when different, the IP address the client reached it at,
        with its current key and, during a rotation, its next one.
    :return: The peers text (see :func:`flocker._model.parse_peers`),
        sorted by address.
    """
    lines = []
    for address in sorted(addresses):
        node = state.nodes.get(address)
        if node is None or node.node_id is None or node.node_key is None:
            continue
        ip = resolved.get(address, address)
        sources = address if ip == address else "%s,%s" % (address, ip)
        for key in (node.node_key.public_key,
                    node.node_key.pending_public_key):
            if key is not None:
                lines.append("%s %s %s\n" % (node.node_id, sources, key))
    return "".join(lines)


def desired_node_key(addresses, resolved, host_keys, state):
    """
    :param addresses: The deployment's node addresses.
    :param resolved: ``dict`` of node address to the IP address the client
        connected to.
    :param host_keys: ``dict`` of connected address to the host ``Key`` the
        client verified there.
    :param ClusterState state: The nodes' reports.
    :return: The :class:`~flocker._model.NodeKey` every node should have,
        or ``None`` when the client lacks a node's host key (the nodes then
        keep what they have).
    """
    text, missing = nodes_known_hosts(addresses, resolved, host_keys)
    if missing:
        return None
    return NodeKey(known_hosts=text,
                   peers=nodes_peers(addresses, resolved, state))
