"""
What a deploy checks before its first change, and how it says what it found.

A deploy changes nothing unless every node of the deployment reported: a
plan made without a node's report could point routes at a machine that does
not exist, or revive a volume the silent node owns.  Each node that did not
report is named in one line saying what failed, in words, and what to check
(:func:`silent_node_line`).

Once every node reported and the plan is made, :func:`check_plan` finds what
would make it fail half way and take down something that works: an image a
node lacks that its registry cannot give (each node asked at once, nothing
downloaded), a host port held by something that is not Flocker's, a volume
whose owner's copy is gone, an external volume no node holds, a project's
volume renamed after the project while its data is under the former name,
nodes sharing one node key.  Any of them stops the deploy before its first change, each said in one line.
"""

from twisted.internet.defer import DeferredList, maybeDeferred

from .._change import leaves
from ..node._changes import PullImage, StopApplication
from ..node._checks import (
    describe_missing_external, describe_renamed, describe_stale,
    missing_external_volumes, port_conflicts, renamed_volumes,
    shared_node_keys, stale_volumes,
)

__all__ = ["silent_node_line", "refusal_line", "check_plan",
           "problems_line", "destructive_changes"]

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


def check_plan(deployment, state, plan, agents, adopt=frozenset(),
               now=None):
    """
    Check a plan before its first change.

    :param Deployment deployment: The desired state.
    :param ClusterState state: Every node's report.
    :param plan: The planned ``IStateChange`` tree.
    :param agents: Mapping of node address to ``INodeAgent``: each node
        lacking an image is asked (``pull_image(image, dry_run=True)``)
        whether its registry has it.
    :param adopt: Volume names the operator chose to adopt older copies of.
    :param now: POSIX time, to say how old a stale copy is, or ``None``.
    :return: ``Deferred`` firing with a ``list`` of problem lines (empty
        when the plan may run).
    """
    problems = shared_node_keys(deployment, state)
    problems += port_conflicts(deployment, state)
    missing = missing_external_volumes(deployment, state)
    problems += [describe_missing_external(name, *missing[name])
                 for name in sorted(missing)]
    renamed = renamed_volumes(deployment, state)
    problems += [describe_renamed(name, *renamed[name])
                 for name in sorted(renamed)]
    stale = stale_volumes(deployment, state)
    problems += [describe_stale(stale[name], now) for name in sorted(stale)
                 if name not in adopt]
    pulls = [change for change in leaves(plan)
             if isinstance(change, PullImage)]
    asked = [maybeDeferred(agents[pull.node].pull_image, pull.image, True)
             for pull in pulls]

    def collect(results):
        for pull, (ok, value) in zip(pulls, results):
            if not ok:
                reason = value.getErrorMessage()
                # Agents' errors start with the node and the step already.
                prefix = "%s: " % (pull.node,)
                problems.append(reason if reason.startswith(prefix)
                                else prefix + reason)
        return problems
    return DeferredList(asked, consumeErrors=True).addCallback(collect)


def problems_line(problems, dry_run):
    """
    :param problems: What :func:`check_plan` found.
    :param bool dry_run: Whether the run was a dry run.
    :return: The line saying the deploy changes nothing because of them.
    """
    count = len(problems)
    return ("%s: %d problem%s found before the first change" % (
        "the deploy would change nothing" if dry_run
        else "nothing was changed", count, "" if count == 1 else "s"))


def destructive_changes(plan):
    """
    :param plan: A planned ``IStateChange`` tree.
    :return: ``list`` of its leaves that destroy something the operator
        may want: removing an application no longer in the files, deleting
        a volume.  A deploy makes them only when confirmed.
    """
    return [change for change in leaves(plan)
            if (isinstance(change, StopApplication) and change.removal)
            or getattr(change, "destructive", False)]
