"""
Automatic failover on the lab (``admin/lab``): an application with
``automatic: true`` on three real nodes, each with its etcd member and its
agent holding or watching the application's lease.

One ordered scenario: deploy; write data and wait until the agents'
replication (``every: 2s``) has copied it to both standbys; restart the
running node's agent (it takes its lease back: nothing fails over);
partition the node running the application (it stops the application
itself, a standby takes over, never two run it, sampled every second, and
the application answers again on every live node's routed port); write on
the new owner (its replication reaches the other standby without a
deploy); heal (the
node that came back does not start it, its routes follow); a first copy
is taken only from the member holding the lease (the other standby's is
refused, the holder's accepted, and the holder seeds a standby whose copy
was deleted); a deploy of the old deployment file is refused.
"""

import json
import os
import re
import secrets
import subprocess
import time

from flocker.testtools import (
    ScenarioTestCase, class_temporary_path, shared_lab,
)

from _lab_automatic import (
    application_text, deployment_text, etcd_value, http_answer, lab_command,
    remove_application, restart_agent, running_on, wait_replicated,
)

PORT = 18097
DEPLOY_TIMEOUT = 180

#: Seconds the application is watched after its node's agent restarted:
#: three lease times to live (10 s), so that a lease the new agent did not
#: renew would have ended and a standby taken over.
RESTART_WATCH = 30

#: Seconds a takeover may take here at most before the test gives up (the
#: figure itself is measured by benchmarks/automatic_failover.py).
TAKEOVER_TIMEOUT = 120


class _Scenario(object):
    """
    What the steps share.
    """

    def __init__(self, lab, directory):
        self.lab = lab
        self.name = "auto-%s" % (secrets.token_hex(3),)
        self.nodes = lab.node_names[:3]
        self.addresses = [lab.address(node) for node in self.nodes]
        self.applications = os.path.join(directory, "applications.yml")
        with open(self.applications, "w") as f:
            f.write(application_text(self.name, PORT))
        self.deployment = os.path.join(directory, "deployment.yml")
        with open(self.deployment, "w") as f:
            f.write(deployment_text(self.name, self.addresses[0],
                                    self.addresses[1:], self.addresses))
        self.content = "written before the fault %s\n" % (self.name,)

    def deploy(self):
        return self.lab.run_client(
            ["flocker-deploy", "--yes", self.deployment, self.applications],
            check=False, timeout=DEPLOY_TIMEOUT)


def _remove(state):
    """
    Heal the partition and remove the application, its keys and volumes.
    """
    lab = state.lab
    lab_command(["heal", state.nodes[0]], check=False)
    remove_application(lab, state.name, state.nodes)


class AutomaticFailoverTests(ScenarioTestCase):
    """
    Automatic failover on three real nodes.
    """

    @classmethod
    def setUpClass(cls):
        lab = shared_lab(minimum_nodes=3)
        cls.s = _Scenario(lab, str(class_temporary_path(cls)))
        cls.addClassCleanup(_remove, cls.s)

    def test_01_deploy_holds(self):
        """
        A deploy starts the application on its node, which holds it in
        etcd: every member answers the placement (node, epoch 1), and the
        owner key names the node.
        """
        s = self.s
        result = s.deploy()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(running_on(s.lab, s.name, s.nodes), [s.nodes[0]])
        for node in s.nodes:
            self.assertEqual(
                etcd_value(s.lab, node, "placement", s.name),
                {"node": s.addresses[0], "epoch": 1})
        self.assertEqual(
            etcd_value(s.lab, s.nodes[2], "owner", s.name)["node"],
            s.addresses[0])

    def test_02_write_and_copy(self):
        """
        Data written on the running node reaches both standbys by the
        agents' replication; every node answers it on the routed port.
        """
        s = self.s
        s.lab.run(s.nodes[0], ["docker", "exec", "-i", "flocker--" + s.name,
                               "tee", "/www/index.html"], input=s.content)
        wait_replicated(s.lab, s.name, s.nodes[1:], time.time())
        for address in s.addresses:
            self.assertEqual(http_answer(s.lab, address, PORT), s.content)

    def test_02b_agent_restart(self):
        """
        When the running node's agent crashes and its service manager
        starts it again, the new agent takes back the application's lease:
        sampled every second for three lease times, the application runs
        on its node only, at epoch 1, and etcd's owner key still names the
        node (the old agent's lease would have ended unrenewed).
        """
        s = self.s
        restart_agent(s.lab, s.nodes[0])
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < RESTART_WATCH:
            where = running_on(s.lab, s.name, s.nodes)
            samples.append((round(time.monotonic() - started, 1), where))
            self.assertEqual(where, [s.nodes[0]], samples)
            time.sleep(1)
        for kind in ("placement", "owner"):
            self.assertEqual(
                etcd_value(s.lab, s.nodes[1], kind, s.name),
                {"node": s.addresses[0], "epoch": 1},
                kind)
        self.assertEqual(http_answer(s.lab, s.addresses[2], PORT), s.content)

    def test_03_partition(self):
        """
        Partitioned, the running node stops the application itself; a
        standby takes over at epoch 2; sampled every second, never two
        nodes run it; it answers with the data on both live nodes' routed
        ports.
        """
        s = self.s
        lab_command(["partition", s.nodes[0]])
        started = time.monotonic()
        samples = []
        answered = None
        while time.monotonic() - started < TAKEOVER_TIMEOUT:
            where = running_on(s.lab, s.name, s.nodes)
            samples.append((round(time.monotonic() - started, 1), where))
            self.assertLessEqual(len(where), 1, samples)
            if where and where[0] != s.nodes[0] and all(
                    http_answer(s.lab, address, PORT) == s.content
                    for address in s.addresses[1:]):
                answered = time.monotonic() - started
                break
            time.sleep(1)
        self.assertIsNotNone(answered, samples)
        self.assertNotIn(s.nodes[0], running_on(s.lab, s.name, s.nodes))
        placement = etcd_value(s.lab, s.nodes[1], "placement", s.name)
        self.assertEqual(placement["epoch"], 2, placement)
        self.assertIn(placement["node"], s.addresses[1:], placement)

    def test_03b_new_owner_replicates(self):
        """
        Without a deploy, the node that took over replicates to the other
        standby: what is written there after the failover reaches the
        other standby's copy (which follows the new owner since the
        takeover's placement).
        """
        s = self.s
        owner = running_on(s.lab, s.name, s.nodes)[0]
        other = [node for node in s.nodes[1:] if node != owner][0]
        content = "written after the failover %s\n" % (s.name,)
        since = time.time()
        s.lab.run(owner, ["docker", "exec", "-i", "flocker--" + s.name,
                          "tee", "/www/index.html"], input=content)
        wait_replicated(s.lab, s.name, [other], since)
        s.content = content
        self.assertEqual(http_answer(s.lab, s.lab.address(other), PORT),
                         content)

    def test_04_heal(self):
        """
        Healed, the node that was cut off does not start the application;
        its routes follow the new placement, so it answers there too.
        """
        s = self.s
        lab_command(["heal", s.nodes[0]])
        deadline = time.monotonic() + TAKEOVER_TIMEOUT
        while http_answer(s.lab, s.addresses[0], PORT) != s.content:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(1)
        where = running_on(s.lab, s.name, s.nodes)
        self.assertTrue(len(where) == 1 and where[0] != s.nodes[0], where)

    def test_04b_first_copy_only_from_holder(self):
        """
        A member without a copy takes a first copy only from the member
        etcd says holds the lease: with the old primary's copy deleted,
        the standby that did not take over, pushing it a real full stream
        of the volume with its own node key, is refused in one line
        naming itself and the holder, leaving no dataset; the holder's
        own push of the same is received and followed.  And the holder's
        replication seeds the other standby again once that standby's copy
        is deleted (the failover path's first copy).
        """
        s = self.s
        owner = running_on(s.lab, s.name, s.nodes)[0]
        other = [node for node in s.nodes[1:] if node != owner][0]
        ids = {node: json.loads(s.lab.run(
            node, ["flocker-node", "report"]).stdout)["node_id"]
            for node in (owner, other)}
        _delete_copy(s.lab, s.nodes[0], s.name)
        refused = _push_by_hand(s.lab, other, s.lab.address(s.nodes[0]),
                                s.name, ids[other])
        lines = refused.stderr.decode().strip().splitlines()
        self.assertEqual((refused.returncode, len(lines)), (1, 1),
                         refused.stderr)
        self.assertIn(
            "whose lease in etcd is held by node %s; a first copy comes "
            "only from the lease's holder, so node %s may not push it" % (
                s.lab.address(owner), ids[other]), lines[0])
        self.assertNotIn(s.name, _datasets(s.lab, s.nodes[0]))
        accepted = _push_by_hand(s.lab, owner, s.lab.address(s.nodes[0]),
                                 s.name, ids[owner])
        self.assertEqual(accepted.returncode, 0, accepted.stderr)
        self.assertEqual(_copy_owner(s.lab, s.nodes[0], s.name),
                         ids[owner])
        since = time.time()
        _delete_copy(s.lab, other, s.name)
        wait_replicated(s.lab, s.name, [other], since)
        self.assertEqual(_copy_owner(s.lab, other, s.name), ids[owner])

    def test_05_old_file_refused(self):
        """
        A deploy of the old deployment file (placing the application on
        the node it failed over from) is refused, changing nothing, saying
        where it runs now.
        """
        s = self.s
        where = running_on(s.lab, s.name, s.nodes)
        result = s.deploy()
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        # Epoch 2 at least: a holder that lost its lease on a busy machine
        # (its keep-alives late) and took it again is at a later one.
        epoch = re.search(r"since an automatic failover \(epoch (\d+)\)",
                          output)
        self.assertTrue(epoch and int(epoch.group(1)) >= 2, output)
        self.assertEqual(running_on(s.lab, s.name, s.nodes), where)


def _datasets(lab, node):
    """
    :return: The names of the datasets in ``node``'s pool, without the
        pool's name.
    """
    pool = lab.pool(node)
    listing = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool],
                             check=True, stdout=subprocess.PIPE, text=True)
    return [name[len(pool) + 1:] for name in listing.stdout.split()
            if name != pool]


def _copy_owner(lab, node, name):
    """
    :return: The owner ``node``'s copy of volume ``name`` names.
    """
    return subprocess.run(
        ["zfs", "get", "-H", "-o", "value", "flocker:owner",
         "%s/%s" % (lab.pool(node), name)], check=True,
        stdout=subprocess.PIPE, text=True).stdout.strip()


def _delete_copy(lab, node, name, attempts=60):
    """
    Delete ``node``'s copy of volume ``name``, trying again while a push
    into it holds it (about once a second).
    """
    for _ in range(attempts):
        if lab.run(node, ["flocker-volume", "delete", name],
                   check=False).returncode == 0 and \
                name not in _datasets(lab, node):
            return
        time.sleep(1)
    raise RuntimeError("%s's copy of %s could not be deleted" % (node, name))


def _push_by_hand(lab, source, target, name, source_id):
    """
    Push ``source``'s newest snapshot of volume ``name`` to ``target`` as a
    full stream, the way a node's agent does: over SSH with ``source``'s own
    node key, into ``flocker-volume receive``, as ``source``.

    :return: The ``CompletedProcess`` (``bytes`` output).
    """
    dataset = "%s/%s" % (lab.pool(source), name)
    snapshots = subprocess.run(
        ["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s",
         "creation", "-r", dataset], check=True, stdout=subprocess.PIPE,
        text=True).stdout.split()
    snapshot = snapshots[-1].split("@", 1)[1]
    stream = subprocess.run(["zfs", "send", "%s@%s" % (dataset, snapshot)],
                            check=True, stdout=subprocess.PIPE).stdout
    request = json.dumps({"snapshot": snapshot, "base": None,
                          "owner": source_id, "maximum_size": None})
    keys = os.path.join(lab.machine(source).env["FLOCKER_LOCK_DIR"],
                        "node-key")
    return lab.run(source, [
        "ssh", "-i", os.path.join(keys, "id_ed25519"),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=" + os.path.join(keys, "known_hosts"),
        "-o", "GlobalKnownHostsFile=/dev/null", "-T",
        "root@" + target, "flocker-volume", "receive", name],
        input=request.encode() + b"\n" + stream, check=False, timeout=120,
        text=False)
