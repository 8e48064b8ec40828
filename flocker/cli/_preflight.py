"""
What a deploy checks before its first change, and how it says what it found.

A deploy changes nothing unless every node of the deployment reported: a
plan made without a node's report could point routes at a machine that does
not exist, or revive a volume the silent node owns.  Each node that did not
report is named in one line saying what failed, in words, and what to check
(:func:`silent_node_line`).
"""

__all__ = ["silent_node_line", "refusal_line"]

# What to check, by what the reason says went wrong; the first match wins.
_HINTS = (
    ("host name not found", "check the node's name in the deployment file "
     "and that DNS resolves it"),
    ("cannot resolve host name", "check the node's name in the deployment "
     "file and that DNS resolves it"),
    ("authentication failed", "check that the node's root authorized_keys "
     "holds the key given with --identity"),
    ("host key", None),
    ("another flocker-deploy", None),
    ("connection refused", "check that the node's SSH server is running"),
    ("was not found on the node", None),
    ("no answer on port", "check the address in the deployment file and "
     "that the machine is up and reachable"),
    ("cannot connect to port", "check the address in the deployment file "
     "and that the machine is up and reachable"),
    ("unreachable", "check the address in the deployment file and that the "
     "machine is up and reachable"),
)


def silent_node_line(address, reason):
    """
    :param str address: A node of the deployment that did not report.
    :param str reason: Why, as the transport said it (possibly already
        starting with the node's address and the step).
    :return: One line: the node, what failed, and (where the reason does
        not already say) what to check.
    """
    text = reason
    for prefix in (address + ": report: ", address + ": "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    line = "%s: did not report: %s" % (address, text)
    for needle, hint in _HINTS:
        if needle in text:
            if hint is not None:
                line += " (%s)" % (hint,)
            break
    return line


def refusal_line(silent, dry_run):
    """
    :param silent: The nodes that did not report.
    :param bool dry_run: Whether the run was a dry run.
    :return: The line saying the deploy changed nothing because of them.
    """
    count = len(silent)
    what = "the plan was not made" if dry_run else "nothing was changed"
    return ("%s: %d node%s of the deployment did not report, and a deploy "
            "changes nothing until every node has" % (
                what, count, "" if count == 1 else "s"))
