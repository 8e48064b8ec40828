"""
The one home of the rules for names and addresses that cross a machine's
boundary: application, alias and volume names, node identities and node
addresses.  The model (``--check``), the volume service (a push's target),
the agent and the node key's lines all ask these functions, so a value
accepted by one is accepted by all.
"""

import re
from functools import lru_cache

__all__ = [
    "MAX_NAME_LENGTH", "SAFE_NAME", "SAFE_NAME_RULE", "is_safe_name",
    "NODE_IDENTITY", "is_node_identity", "ADDRESS_RULE", "is_node_address",
]

#: Longest application, alias or volume name accepted.  Names become Docker
#: container names, ZFS dataset names and iptables comments, and 63 keeps them
#: within every one of those limits with room for Flocker's prefixes.
MAX_NAME_LENGTH = 63

#: The characters a name may contain: Docker's container name characters
#: (letters, digits, ``_``, ``.``, ``-``, starting with a letter or digit),
#: so Flocker 0.4 names such as ``site-example.com`` stay valid; no shell or
#: path metacharacters.  ``..`` is refused separately (see
#: :func:`is_safe_name`): a name is also a ZFS dataset and a path component.
SAFE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}\Z" % (
    MAX_NAME_LENGTH - 1))

#: What :data:`SAFE_NAME` allows, in words, for messages.
SAFE_NAME_RULE = ("use 1-%d letters, digits, '_', '.' or '-', starting with "
                  "a letter or digit, without '..'" % (MAX_NAME_LENGTH,))

#: Node identities, as generated (a UUID) or set by an operator.
NODE_IDENTITY = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")

# Node addresses: IPv4/IPv6 literals or DNS host names, starting with a
# letter or digit: never '-' (a command line would read it as an option)
# nor ':' (an SSH destination or authorized_keys ``from=`` pattern reads a
# leading ':' ambiguously; ``::1`` is written ``0::1``).
_ADDRESS = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.:-]{0,252}\Z")

#: What :func:`is_node_address` allows, in words, for messages.
ADDRESS_RULE = ("an IP address or host name, starting with a letter or "
                "digit (write an IPv6 address that starts with '::' with a "
                "leading 0, as in 0::1)")


def is_node_identity(value):
    """
    :param value: Anything.
    :return: ``True`` if ``value`` is a string usable as a node's identity
        (see :data:`NODE_IDENTITY`).
    """
    return isinstance(value, str) and NODE_IDENTITY.match(value) is not None


def is_safe_name(value):
    """
    :param value: Anything.
    :return: ``True`` if ``value`` is a string usable as an application,
        alias or volume name (see :data:`SAFE_NAME`).
    """
    return (isinstance(value, str) and SAFE_NAME.match(value) is not None
            and ".." not in value)


@lru_cache(maxsize=4096)
def _is_address_text(value):
    # A cluster has few distinct node addresses and very many routes naming
    # them: remembering the verdict keeps route construction cheap.
    return _ADDRESS.match(value) is not None and ".." not in value


def is_node_address(value):
    """
    :param value: Anything.
    :return: ``True`` if ``value`` is a string usable as a node's address
        (see :data:`ADDRESS_RULE`).
    """
    return isinstance(value, str) and _is_address_text(value)
