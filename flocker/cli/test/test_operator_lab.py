"""
What an operator sees on the lab (``admin/lab``), beyond the deploy
scenario: ``--logs --follow`` printing new output as the application
writes it, the question a deploy asks on a terminal before destructive
changes (answered through a pseudo-terminal), and a ZFS failure reaching
the operator as one line, node and step first, Flocker's words before
ZFS's own.

``flocker-deploy`` runs in the client namespace, as from a laptop.
"""

import os
import pty
import re
import secrets
import select
import signal
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import class_temporary_path, shared_lab

IMAGE = "flocker/busybox:latest"
#: Seconds allowed for one ``flocker-deploy`` run.
DEPLOY_TIMEOUT = 120
#: Seconds allowed for awaited output (``--follow``, the prompt).
OUTPUT_TIMEOUT = 60

APPLICATIONS = """\
version: 1
applications:
  {talker}:
    image: {image}
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
  {store}:
    image: {image}
    command: ["sleep", "100000"]
    volume: {{mountpoint: /data}}
"""


class _Operator(object):
    """
    Files and commands of one run of these tests.

    :ivar lab: The lab.
    :ivar str directory: Where the files are written.
    :ivar dict names: ``talker`` and ``store`` application names.
    :ivar list addresses: The nodes' addresses.
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.directory = directory
        token = secrets.token_hex(3)
        self.names = {"talker": "optalk-" + token,
                      "store": "opstore-" + token}
        self.addresses = [node.address for node in lab.nodes[:3]]
        self.applications = self.write("applications.yml", APPLICATIONS.format(
            image=IMAGE, **self.names))

    def write(self, name, content):
        """
        :return: The path of a new file of the run.
        """
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(content)
        return path

    def deployment(self, name, placement):
        """
        :param dict placement: Node index to application keys.
        :return: The path of a deployment file placing them.
        """
        lines = ["version: 1", "nodes:"]
        for index, address in enumerate(self.addresses):
            lines.append("  %s: [%s]" % (address, ", ".join(
                self.names[key] for key in placement.get(index, []))))
        return self.write(name, "\n".join(lines) + "\n")

    def argv(self, *arguments):
        """
        :return: The ``flocker-deploy`` command line.
        """
        return ["flocker-deploy"] + list(arguments) + [self.applications]

    def deploy(self, *arguments):
        """
        :return: The ``CompletedProcess`` of ``flocker-deploy ARGUMENTS...
            APPLICATIONS`` in the client namespace.
        """
        return self.lab.run_client(self.argv(*arguments), check=False,
                                   timeout=DEPLOY_TIMEOUT)

    def running(self, index, key):
        """
        :return: Whether the application's container runs on the node.
        """
        node = self.lab.nodes[index]
        result = node.run(["docker", "inspect", "--format",
                           "{{.State.Running}}",
                           "flocker--" + self.names[key]], check=False)
        return result.stdout.strip() == "true"


def _remove_all(state):
    """
    Remove every application of the run, with its volumes.
    """
    empty = state.deployment("empty.yml", {})
    state.deploy("--yes", empty)
    state.deploy("--remove", state.names["store"], "--with-volumes", "--yes",
                 empty)


def _ticks(text):
    return [int(n) for n in re.findall(r"^tick (\d+)$", text, re.M)]


def _read_until(fd, done, timeout=OUTPUT_TIMEOUT):
    """
    Read from ``fd`` until ``done(text so far)`` holds or it ends.

    :return: Everything read.
    """
    text = b""
    deadline = time.monotonic() + timeout
    while not done(text.decode("utf-8", "replace")):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no such output within %ds: %r" % (
                timeout, text))
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            # A pseudo-terminal whose other side closed.
            chunk = b""
        if not chunk:
            break
        text += chunk
    return text.decode("utf-8", "replace")


def _interruptible():
    """
    In the child, before ``exec``: take ``SIGINT`` as a terminal's Ctrl-C
    would.  A test run started in the background by a shell (``cmd &``)
    inherits ``SIGINT`` ignored, and a program keeps an ignored ``SIGINT``
    ignored (Twisted's reactor included), so the signal the test sends
    would never arrive.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _on_terminal(operator, argv, answer):
    """
    Run ``flocker-deploy`` with a pseudo-terminal as its standard input,
    output and error; answer its question with ``answer``.

    :return: ``(exit status, everything it printed)``.
    """
    main, secondary = pty.openpty()
    process = operator.lab.client.popen(
        argv, stdin=secondary, stdout=secondary, stderr=secondary,
        env={"TERM": "dumb"})
    os.close(secondary)
    try:
        asked = _read_until(
            main, lambda text: "make these changes? [y/N]" in text)
        os.write(main, answer.encode("ascii") + b"\n")
        rest = _read_until(main, lambda text: False,
                           timeout=DEPLOY_TIMEOUT)
        status = process.wait(timeout=DEPLOY_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    return status, asked + rest


class OperatorLabTests(SynchronousTestCase):
    """
    What an operator sees on the lab: logs followed, the prompt on a
    terminal, ZFS failures in words.
    """

    @classmethod
    def setUpClass(cls):
        # A run with the talker deployed on the first node; at the end,
        # every application of the run is removed, with its volumes.
        lab = shared_lab(minimum_nodes=3)
        cls.operator = _Operator(lab, str(class_temporary_path(cls)))
        cls.addClassCleanup(_remove_all, cls.operator)
        first = cls.operator.deploy("--yes", cls.operator.deployment(
            "talker.yml", {0: ["talker"]}))
        if first.returncode != 0:
            raise AssertionError(first.stdout + first.stderr)

    def test_logs_follow(self):
        """
        ``--logs APP --follow`` prints the container's output, then keeps
        printing the lines it writes afterwards (ticks newer than any printed
        at first), until interrupted; interrupted, it ends without a
        traceback.
        """
        operator = self.operator
        process = operator.lab.client.popen(
            operator.argv("--logs", operator.names["talker"], "--follow",
                          operator.deployment("follow.yml", {0: ["talker"]})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_interruptible)
        try:
            first = _read_until(process.stdout.fileno(),
                                lambda text: len(_ticks(text)) >= 1)
            newest = max(_ticks(first))
            later = _read_until(process.stdout.fileno(),
                                lambda text: any(n > newest + 5
                                                 for n in _ticks(text)))
            process.send_signal(signal.SIGINT)
            process.wait(timeout=OUTPUT_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        errors = process.stderr.read().decode("utf-8", "replace")
        self.assertEqual(
            (max(_ticks(later)) > newest + 5, "Traceback" in errors),
            (True, False),
            errors)

    def test_prompt_on_a_terminal(self):
        """
        On a terminal, a deploy that would stop an application no longer in
        the files lists it and asks; ``n`` changes nothing (the application
        keeps running, exit status 1), ``y`` removes it (exit status 0).
        """
        operator = self.operator
        without = operator.deployment("without-talker.yml", {})
        refused, said = _on_terminal(operator, operator.argv(without), "n")
        kept = operator.running(0, "talker")
        accepted, said_again = _on_terminal(operator, operator.argv(without), "y")
        self.assertEqual(
            (refused, kept, accepted, operator.running(0, "talker")),
            (1, True, 0, False),
            said + said_again)
        self.assertIn(
            operator.names["talker"],
            said.split(
                "make these changes?")[0],
            said)

    def test_zfs_failure_words(self):
        """
        A volume ZFS refuses to destroy (an operator put a hold on one of its
        snapshots) fails ``--remove --with-volumes`` with one line: the node,
        the step, Flocker's words (what it could not do, what to do), then
        what zfs said and its exit status; no traceback.  Once the hold is
        released, the same removal goes through.

        (A full pool would be the everyday case, but zfs-fuse, the lab's ZFS,
        can abort when its pool is filled to the quota, taking every pool of
        the machine with it.)
        """
        operator = self.operator
        node = operator.lab.nodes[2]
        placement = operator.deployment("store.yml", {2: ["store"]})
        first = operator.deploy("--yes", placement)
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        dataset = "%s/%s" % (node.pool, operator.names["store"])
        node.run(["zfs", "snapshot", dataset + "@operator-keep"])
        node.run(["zfs", "hold", "operator", dataset + "@operator-keep"])
        empty = operator.deployment("store-gone.yml", {})
        try:
            result = operator.deploy("--remove", operator.names["store"],
                                     "--with-volumes", "--yes", empty)
        finally:
            node.run(["zfs", "release", "operator", dataset + "@operator-keep"])
        output = result.stdout + result.stderr
        lines = [line for line in output.splitlines() if "zfs said:" in line]
        self.assertEqual(
            (result.returncode, "Traceback" in output, len(lines)),
            (1, False, 1),
            output)
        self.assertTrue(
            re.match(
                r"^(?:.*\s)?%s: .*: could not destroy volume %s: something still "
                r"uses it .*zfs holds.* \(zfs said: .*busy, exit \d+\)"
                r"(?: \(\d+\.\d+ s\))?$" % (
             re.escape(node.address), re.escape(operator.names["store"])),
                lines[0]),
            lines[0])
        again = operator.deploy("--remove", operator.names["store"],
                                "--with-volumes", "--yes", empty)
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
