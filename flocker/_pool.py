"""
Which ZFS pool a node's Flocker uses: one rule for ``flocker-node``,
``flocker-volume`` and the node key's forced command.
"""

__all__ = ["DEFAULT_POOL", "pool_name"]

#: The ZFS pool used when neither ``--pool`` nor ``$FLOCKER_POOL`` names one.
DEFAULT_POOL = "flocker"


def pool_name(given, environ):
    """
    :param given: The pool named on the command line, or ``None``/``""``
        when none was.
    :param environ: The process environment (a mapping).
    :return: ``given`` if set, else ``$FLOCKER_POOL`` if set, else
        :data:`DEFAULT_POOL`.
    """
    return given or environ.get("FLOCKER_POOL") or DEFAULT_POOL
