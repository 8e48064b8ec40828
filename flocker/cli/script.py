"""
The ``flocker-deploy`` command line.

``main`` is the whole command, with its reactor, arguments and output streams
passed in so that tests (and other programs) call it like a function;
``flocker_deploy_main`` is the thin console-script entry point.
"""

import argparse
import sys

from .. import __version__
from ..node._config import ConfigurationErrors, load_configuration

__all__ = ["main", "flocker_deploy_main", "summarize"]


class _Exit(Exception):
    """
    The argument parser wants the command to end with ``status``.
    """

    def __init__(self, status):
        Exception.__init__(self, status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """
    An ``ArgumentParser`` writing to the given streams and raising
    :class:`_Exit` instead of leaving the process, so the command stays a
    function.
    """

    def __init__(self, stdout, stderr, **kwargs):
        argparse.ArgumentParser.__init__(self, **kwargs)
        self.stdout = stdout
        self.stderr = stderr

    def print_help(self, file=None):
        (file or self.stdout).write(self.format_help())

    def print_usage(self, file=None):
        (file or self.stdout).write(self.format_usage())

    def exit(self, status=0, message=None):
        if message:
            self.stderr.write(message)
        raise _Exit(status)

    def error(self, message):
        self.print_usage(self.stderr)
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


class _Version(argparse.Action):
    """
    ``--version``: print the program's version and end successfully.
    """

    def __init__(self, option_strings, dest, **kwargs):
        argparse.Action.__init__(self, option_strings, dest, nargs=0,
                                 default=argparse.SUPPRESS,
                                 help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        parser.stdout.write("%s %s\n" % (parser.prog, __version__))
        parser.exit(0)


def _parser(stdout, stderr):
    parser = _Parser(
        stdout, stderr, prog="flocker-deploy",
        description="Run the applications of APPLICATION_CONFIG on the "
        "nodes DEPLOYMENT_CONFIG places them on.")
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--check", action="store_true",
        help="only validate both files and their cross-references, "
        "without contacting any node; print a summary")
    parser.add_argument("deployment_config", metavar="DEPLOYMENT_CONFIG",
                        help="YAML file: version 1, nodes and their "
                        "applications")
    parser.add_argument("application_config", metavar="APPLICATION_CONFIG",
                        help="YAML file: Flocker's native format or a "
                        "compose/fig file")
    return parser


def _plural(count, noun):
    return "%d %s%s" % (count, noun, "" if count == 1 else "s")


def summarize(deployment):
    """
    :param Deployment deployment: A parsed deployment.
    :return: One line such as ``3 applications on 2 nodes``.
    """
    applications = sum(len(node.applications) for node in deployment.nodes)
    return "%s on %s" % (_plural(applications, "application"),
                         _plural(len(deployment.nodes), "node"))


def main(reactor, argv, stdout, stderr):
    """
    Run ``flocker-deploy``.

    :param reactor: The reactor for operations that reach nodes; ``--check``
        reaches none, so it may be ``None`` there.
    :param argv: The arguments, without the program name.
    :param stdout: Text stream for results.
    :param stderr: Text stream for problems.
    :return: The exit status: 0 on success, 1 for invalid configuration,
        2 for a bad command line.
    """
    parser = _parser(stdout, stderr)
    try:
        options = parser.parse_args(argv)
        if not options.check:
            parser.error("--check is required: checking the configuration "
                         "is what this version of flocker-deploy does")
    except _Exit as e:
        return e.status
    try:
        deployment = load_configuration(options.deployment_config,
                                        options.application_config)
    except ConfigurationErrors as e:
        for error in e.errors:
            stderr.write("%s\n" % (error,))
        return 1
    stdout.write(summarize(deployment) + "\n")
    return 0


def flocker_deploy_main():
    """
    Console-script entry point of ``flocker-deploy``: run :func:`main` with
    the process's arguments and streams and exit with its status.
    """
    sys.exit(main(None, sys.argv[1:], sys.stdout, sys.stderr))
