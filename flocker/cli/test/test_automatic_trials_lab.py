"""
Randomized trials of automatic failover on the lab (``admin/_lab_trials.py``):
the suite runs one trial of each fault (kill and partition of the node
running the application, loss of a standby's etcd member), in an order and
at moments drawn from a seed it reports; the benchmark
(``benchmarks/automatic_failover.py``) runs twenty and measures RTO and RPO.
What is asserted does not depend on timing: each trial ends as it must,
never two nodes run the application, no stale data is served, and the node
that took over serves the writer's data.
"""

import os
import random
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ...testtools import shared_lab

_ADMIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "admin")
if _ADMIN not in sys.path:
    sys.path.insert(0, _ADMIN)

from _lab_trials import FAULTS, Trials  # noqa: E402

PORT = 18099


class AutomaticFailoverTrialsTests(SynchronousTestCase):
    """
    One trial of each fault, on three real nodes.
    """

    def test_trials(self):
        """
        A kill, a partition and a standby's etcd member loss, in a seeded
        random order and at random moments of a writer's run: each ends as
        it must (a standby takes over, or nothing moves), no sample sees
        two nodes running the application, no live node answers stale
        content, and the node that took over serves a sequence number the
        writer wrote.
        """
        lab = shared_lab()
        seed = int(os.environ.get("FLOCKER_TRIALS_SEED") or
                   random.randrange(10 ** 6))
        directory = tempfile.mkdtemp(prefix="flocker-trials-")
        trials = Trials(lab, directory, seed, PORT)
        order = random.Random(seed).sample(FAULTS, len(FAULTS))
        try:
            for number, fault in enumerate(order):
                trials.run(number, fault)
        finally:
            trials.clean()
        results = trials.results
        report = "seed %d (FLOCKER_TRIALS_SEED): %r" % (seed, results)
        self.assertEqual(
            ([True] * len(FAULTS), 0, 0),
            ([r.completed for r in results],
             sum(r.split_brain for r in results),
             sum(r.stale for r in results)), report)
        self.assertEqual(
            [], [r for r in results
                 if r.fault != "etcd member" and r.rpo is None], report)
