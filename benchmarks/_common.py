"""
Shared helpers for Flocker's benchmarks: repetition, medians, ratios and
their spread and uncertainty, CPU pinning, and the output convention (a
readable table, then one JSON object as the last line).

Ratios are taken per repetition: within one repetition the measured path
and its floor run one after the other (their order rotated from one
repetition to the next), and the repetition's ratio is measured over floor.
A benchmark reports the median of those ratios and, beside it, their
*spread* (the interquartile range over the median: how much repetitions
disagree) and their *uncertainty* (the half-width of the median's 95 %
confidence interval, relative to the median: how far another run's median
may fall).  :func:`repeat_until_settled` repeats until every ratio's
uncertainty is under :data:`SETTLED_UNCERTAINTY`, or a bounded number of
repetitions or seconds has passed, and says which.
"""

import json
import math
import operator
import os
import shutil
import statistics
import subprocess
import sys
import time

import attr

__all__ = ["timed", "summary", "print_table", "emit", "meets",
           "zfs", "zfs_ok", "zfs_send_over_ssh",
           "SETTLED_UNCERTAINTY", "quartiles", "spread", "median_interval",
           "uncertainty",
           "rotated", "Repetitions", "Settling", "recorded", "next_step",
           "repeat_until_settled",
           "ratio_figures", "ratio_row", "RATIO_HEADERS", "ratios_title",
           "settled_words", "print_ratios", "verdict",
           "cpu_pair", "pinned", "can_pin", "pin_processes", "own_lab_environ",
           "add_repetition_options", "repetitions_from", "number",
           "spread_figures", "status_kb", "install_node_trust",
           "agent_client", "AGENT_CLIENT"]

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


def meets(value, comparison, limit):
    """
    :param value: A figure.
    :param str comparison: ``"<"``, ``"<="``, ``">"`` or ``">="``.
    :param limit: Its target.
    :return: Whether ``value comparison limit`` holds.
    """
    return _COMPARE[comparison](value, limit)


def timed(function, *args, **kwargs):
    """
    :return: ``(seconds, result)`` of calling ``function``.
    """
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def summary(samples):
    """
    :return: ``{"median": …, "min": …, "max": …}`` of ``samples``.
    """
    return {"median": statistics.median(samples), "min": min(samples),
            "max": max(samples)}


def print_table(title, rows, headers):
    """
    Print ``rows`` (sequences of cells) under ``headers`` as aligned text.
    """
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(title)
    for index, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print()


def emit(figures):
    """
    Print ``figures`` as the benchmark's last line: one JSON object.
    """
    print(json.dumps(figures, sort_keys=True))


def zfs(*argv):
    """
    Run ``zfs`` on the host (zfs-fuse serves every lab node's pool there).

    :return: The ``CompletedProcess`` (text output), whatever its status.
    """
    return subprocess.run(["zfs"] + list(argv), capture_output=True,
                          text=True, timeout=300)


def zfs_ok(*argv):
    """
    Run ``zfs`` on the host.

    :raises RuntimeError: With its error line, if it fails.
    """
    result = zfs(*argv)
    if result.returncode != 0:
        raise RuntimeError("zfs %s failed: %s" % (" ".join(argv),
                                                  result.stderr.strip()))


def zfs_send_over_ssh(machine, address, snapshot, base, target,
                      timeout=600, cpu=None):
    """
    The bare pipeline Flocker's pushes are measured against: ``zfs send
    [-i BASE] SNAPSHOT`` on the host into ``ssh root@ADDRESS zfs receive
    -F TARGET`` run on lab ``machine`` (its namespaces, its ssh settings).

    :param float timeout: Seconds the receiving side may take.
    :param cpu: The CPU both sending commands run on (:func:`pinned`), or
        ``None`` for anywhere.

    :raises RuntimeError: With ssh's error output, if either side failed.
    """
    sender = subprocess.Popen(pinned(
        ["zfs", "send"] + (["-i", base] if base else []) + [snapshot], cpu),
        stdout=subprocess.PIPE)
    receiver = machine.popen(pinned(
        ["ssh", "root@" + address, "zfs", "receive", "-F", target], cpu),
        stdin=sender.stdout, stderr=subprocess.PIPE)
    sender.stdout.close()
    _, error = receiver.communicate(timeout=timeout)
    sender.wait(60)
    if sender.returncode or receiver.returncode:
        raise RuntimeError("raw pipeline failed: %s" % (error,))


#: A ratio whose uncertainty is under this is settled: two runs whose
#: medians are each this close to where the median of many runs would be
#: agree within twice it (5 %), which is what comparing runs asks of them.
SETTLED_UNCERTAINTY = 0.025


def quartiles(samples):
    """
    :param samples: At least two numbers.
    :return: ``(first quartile, median, third quartile)``, interpolated
        between the samples (the "inclusive" method: with 3 samples the
        quartiles are half-way between the median and each end).
    :raises ValueError: For fewer than two samples.
    """
    samples = list(samples)
    if len(samples) < 2:
        raise ValueError("quartiles need at least 2 samples, got %d"
                         % (len(samples),))
    low, middle, high = statistics.quantiles(samples, n=4,
                                             method="inclusive")
    return low, middle, high


def spread(samples):
    """
    :param samples: At least two positive numbers (ratios, rates, seconds).
    :return: Their interquartile range over their median (0.05 is 5 %).
    :raises ValueError: For fewer than two samples or a median of 0.
    """
    low, middle, high = quartiles(samples)
    if middle == 0:
        raise ValueError("the spread of samples with a median of 0 is not "
                         "defined")
    return (high - low) / abs(middle)


def median_interval(samples, confidence=0.95):
    """
    A confidence interval for the median that assumes nothing about how
    the samples are distributed: two order statistics, chosen by the
    binomial distribution of how many samples fall under the median.

    :param samples: At least two numbers.
    :param float confidence: The interval's coverage, in (0, 1).
    :return: ``(low, high)``: the k-th smallest and k-th largest sample for
        the largest k whose interval covers at least ``confidence``; the
        smallest and largest sample when even they cannot (under 6 samples
        for 95 %).
    :raises ValueError: For fewer than two samples.
    """
    ordered = sorted(samples)
    count = len(ordered)
    if count < 2:
        raise ValueError("an interval needs at least 2 samples, got %d"
                         % (count,))
    tail = (1 - confidence) / 2
    below = 0.0
    rank = 0
    # P(fewer than rank + 1 samples under the median) <= tail keeps the
    # interval [rank + 1-th smallest, rank + 1-th largest] at or above
    # the confidence asked for.
    while rank < count // 2:
        below += math.comb(count, rank) / 2.0 ** count
        if below > tail:
            break
        rank += 1
    rank = max(rank, 1)
    return ordered[rank - 1], ordered[count - rank]


def uncertainty(samples):
    """
    :param samples: At least two positive numbers (ratios, rates, seconds).
    :return: The larger distance from their median to an end of
        :func:`median_interval`, over the median (0.025 is 2.5 %).
    :raises ValueError: For fewer than two samples or a median of 0.
    """
    middle = statistics.median(samples)
    if middle == 0:
        raise ValueError("the uncertainty of samples with a median of 0 is "
                         "not defined")
    low, high = median_interval(samples)
    return max(middle - low, high - middle) / abs(middle)


def rotated(items, repetition):
    """
    :param list items: What one repetition runs, in its first order.
    :param int repetition: The repetition's index (0 first).
    :return: ``items`` rotated left by ``repetition``: each item runs in
        every position in turn, so none always runs first or last.
    """
    items = list(items)
    if not items:
        return items
    turn = repetition % len(items)
    return items[turn:] + items[:turn]


def _positive(instance, attribute, value):
    if not value > 0:
        raise ValueError("%s must be positive, not %r" % (attribute.name,
                                                          value))


@attr.s(frozen=True)
class Repetitions(object):
    """
    How long :func:`repeat_until_settled` may go on.

    :ivar int minimum: Repetitions always run (at least 2: a spread needs
        two figures).
    :ivar int maximum: Repetitions never exceeded.
    :ivar float seconds: No repetition beyond the minimum starts once this
        many seconds have passed since the first began.
    :ivar float target: The uncertainty under which a ratio is settled.
    """
    minimum = attr.ib()
    maximum = attr.ib()
    seconds = attr.ib(validator=_positive)
    target = attr.ib(default=SETTLED_UNCERTAINTY, validator=_positive)

    @minimum.validator
    def _check_minimum(self, attribute, value):
        if not (isinstance(value, int) and value >= 2):
            raise ValueError("minimum must be an integer of at least 2, not "
                             "%r" % (value,))

    @maximum.validator
    def _check_maximum(self, attribute, value):
        if not (isinstance(value, int) and value >= self.minimum):
            raise ValueError("maximum must be an integer of at least minimum "
                             "(%d), not %r" % (self.minimum, value))


@attr.s(frozen=True)
class Settling(object):
    """
    What :func:`repeat_until_settled` found.

    :ivar samples: ``dict`` of ratio name to its per-repetition ratios
        (``tuple``, in repetition order).
    :ivar int repetitions: Repetitions run.
    :ivar bool settled: Whether every ratio's uncertainty ended under the
        target.
    :ivar float seconds: How long the repetitions took.
    """
    samples = attr.ib(converter=lambda d: {k: tuple(v) for k, v in d.items()})
    repetitions = attr.ib()
    settled = attr.ib()
    seconds = attr.ib()

    def spreads(self):
        """
        :return: ``dict`` of ratio name to its spread.
        """
        return {name: spread(values) for name, values in self.samples.items()}


def recorded(samples, ratios):
    """
    :param samples: ``dict`` of ratio name to the ``tuple`` of its ratios
        in the repetitions so far (empty before the first).
    :param dict ratios: One more repetition's ratio of each name.
    :return: A new ``dict``: ``samples`` with ``ratios`` added.
    :raises ValueError: If ``ratios`` is empty or names other ratios than
        the earlier repetitions.
    """
    if not ratios:
        raise ValueError("a repetition gave no ratio")
    if samples and set(ratios) != set(samples):
        raise ValueError("a repetition gave ratios %s, the earlier ones %s"
                         % (sorted(ratios), sorted(samples)))
    return {name: tuple(samples.get(name, ())) + (value,)
            for name, value in ratios.items()}


def next_step(samples, policy, elapsed):
    """
    Decide, after a repetition, whether to run another.

    :param samples: ``dict`` of ratio name to its ratios so far
        (:func:`recorded`).
    :param Repetitions policy: The bounds.
    :param float elapsed: Seconds since the first repetition began.
    :return: ``(go on, settled)``: go on below ``policy.minimum``
        repetitions; else stop when every ratio's uncertainty is under
        ``policy.target`` (settled), at ``policy.maximum`` repetitions, or
        once ``policy.seconds`` have passed (not settled).
    """
    count = min(len(values) for values in samples.values())
    if count < policy.minimum:
        return True, False
    settled = all(uncertainty(values) < policy.target
                  for values in samples.values())
    if settled or count >= policy.maximum or elapsed >= policy.seconds:
        return False, settled
    return True, False


def repeat_until_settled(repetition, policy, clock=time.monotonic):
    """
    Run repetitions until every ratio they give is settled, within bounds
    (:func:`next_step` decides after each).

    :param repetition: Called with the repetition's index (0 first); runs
        the measured paths and their floors once and returns ``dict`` of
        ratio name to that repetition's ratio.  Every repetition must
        return the same names.
    :param Repetitions policy: The bounds.
    :param clock: Returns seconds (monotonic); injected for tests.
    :return: :class:`Settling`.
    :raises ValueError: If a repetition gives no ratio, or other names than
        the first.
    """
    started = clock()
    samples = {}
    count = 0
    go_on = True
    while go_on:
        samples = recorded(samples, repetition(count))
        count += 1
        go_on, settled = next_step(samples, policy, clock() - started)
    return Settling(samples=samples, repetitions=count, settled=settled,
                    seconds=clock() - started)


def ratio_figures(name, samples, digits=3):
    """
    :param str name: The ratio's name in the JSON figures.
    :param samples: Its per-repetition values (at least two).
    :return: ``{name: median, name + "_spread": spread, name +
        "_uncertainty": uncertainty, name + "_reps": number of samples}``,
        rounded.
    """
    return {name: round(statistics.median(samples), digits),
            name + "_spread": round(spread(samples), 3),
            name + "_uncertainty": round(uncertainty(samples), 3),
            name + "_reps": len(samples)}


#: Column headers of :func:`ratio_row`.
RATIO_HEADERS = ["ratio", "median", "+/-", "spread", "min-max",
                 "per repetition"]


def ratio_row(label, samples):
    """
    :return: A table row for a ratio: ``label``, its median, its
        uncertainty and its spread in per cent, its range and every
        repetition's value.
    """
    samples = list(samples)
    return [label, "%.3f" % (statistics.median(samples),),
            "%.1f %%" % (100 * uncertainty(samples),),
            "%.1f %%" % (100 * spread(samples),),
            "%.3f-%.3f" % (min(samples), max(samples)),
            " ".join("%.3f" % (value,) for value in samples)]


def ratios_title(what, settling=None):
    """
    :param str what: What the rows are, e.g. ``"Ratio of each repetition"``.
    :param settling: The :class:`Settling` the ratios came from, or
        ``None`` for a fixed number of repetitions.
    :return: The title of a table of :func:`ratio_row` rows: ``what``, how
        to read its columns and, with ``settling``, whether it settled.
    """
    notes = ["+/-: half-width of the median's 95 % confidence interval",
             "spread: interquartile range over median"]
    if settling is not None:
        notes.append(settled_words(settling))
    return "%s (%s)" % (what, "; ".join(notes))


def settled_words(settling):
    """
    :param Settling settling: Repetitions until settled.
    :return: Whether they settled, in words.
    """
    target = "%g %%" % (100 * SETTLED_UNCERTAINTY,)
    return ("settled: +/- under " + target if settling.settled
            else "NOT settled: +/- %s or more" % (target,))


def print_ratios(what, rows, settling=None):
    """
    Print a table of ratios under :func:`ratios_title`.

    :param str what: What the rows are.
    :param rows: ``(label, per-repetition values)`` of each ratio.
    :param settling: As for :func:`ratios_title`.
    """
    print_table(ratios_title(what, settling),
                [ratio_row(label, samples) for label, samples in rows],
                RATIO_HEADERS)


def verdict(value, comparison, limit, uncertain=None):
    """
    Judge a figure against its target, allowing for its uncertainty.

    :param value: The figure, or ``None`` when it was not measured.
    :param str comparison: ``"<"``, ``"<="``, ``">"`` or ``">="``.
    :param limit: Its target.
    :param uncertain: Its uncertainty (:func:`uncertainty`), or ``None``
        when it has none.
    :return: ``"not measured"``; ``"not decidable"`` when the uncertainty
        is wider than the margin between the figure and its target, both
        relative to the figure (the target lies inside the median's
        confidence interval); else ``"met"`` or ``"missed"``.
    """
    if value is None:
        return "not measured"
    if uncertain is not None:
        margin = abs(value - limit) / abs(value) if value else float("inf")
        if uncertain > margin:
            return "not decidable"
    return "met" if meets(value, comparison, limit) else "missed"


def cpu_pair(allowed):
    """
    Choose where the hot processes of a transfer run: the sender on one
    CPU, the receiver on another, the same two for every path measured.

    :param allowed: The CPUs this process may use (``os.sched_getaffinity``).
    :return: ``(sender CPU, receiver CPU)``: the two lowest allowed; the
        same CPU twice on a one-CPU machine.
    :raises ValueError: If ``allowed`` is empty.
    """
    cpus = sorted(allowed)
    if not cpus:
        raise ValueError("no CPU allowed")
    return cpus[0], cpus[min(1, len(cpus) - 1)]


def pinned(argv, cpu):
    """
    :param list argv: A command.
    :param cpu: The CPU it must run on, or ``None`` for anywhere.
    :return: ``argv`` run by ``taskset`` on ``cpu`` (its children inherit
        the pinning), or ``argv`` itself for ``None``.
    """
    if cpu is None:
        return list(argv)
    return ["taskset", "-c", str(cpu)] + list(argv)


def can_pin():
    """
    :return: Whether :func:`pinned` commands can run here (``taskset``
        installed).
    """
    return shutil.which("taskset") is not None


def pin_processes(pids, cpus):
    """
    Pin every thread of each process to ``cpus`` (processes that ended in
    the meantime are skipped).

    :param pids: Process ids.
    :param cpus: Set of CPUs.
    :return: ``dict`` of pid to the CPUs it was allowed before, for putting
        it back with another call.
    """
    before = {}
    for pid in pids:
        try:
            before[pid] = os.sched_getaffinity(pid)
            threads = [int(t) for t in os.listdir("/proc/%d/task" % (pid,))]
        except OSError:
            continue
        for thread in threads:
            try:
                os.sched_setaffinity(thread, cpus)
            except OSError:
                pass
    return before


def own_lab_environ(environ, prefix, state):
    """
    The environment for a benchmark that brings up a lab of its own.

    :param environ: The caller's environment.
    :param str prefix: The benchmark's lab prefix when the environment
        names none (``FLOCKER_LAB_PREFIX``).
    :param str state: Its state directory when the environment names
        neither a state (``FLOCKER_LAB_STATE``) nor a prefix; with only a
        prefix, the state is ``/var/lib/flocker-lab-PREFIX``, so a lab is
        never given another lab's state.
    :return: ``dict``: ``environ`` with both variables set.
    """
    chosen = environ.get("FLOCKER_LAB_PREFIX")
    if environ.get("FLOCKER_LAB_STATE"):
        state = environ["FLOCKER_LAB_STATE"]
    elif chosen:
        state = "/var/lib/flocker-lab-" + chosen
    return dict(environ, FLOCKER_LAB_PREFIX=chosen or prefix,
                FLOCKER_LAB_STATE=state)


def add_repetition_options(parser, what="repetition"):
    """
    Add ``--reps``, ``--max-reps`` and ``--max-seconds`` to an
    ``argparse`` parser (see :func:`repetitions_from`).

    :param str what: What one repetition is, for the help texts.
    """
    parser.add_argument("--reps", type=int, default=None,
                        help="%ss always run (>= 3)" % (what,))
    parser.add_argument("--max-reps", type=int, default=None,
                        help="%ss at most, while a ratio's uncertainty is "
                        "2.5 per cent or more" % (what,))
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="no %s beyond --reps starts after this many "
                        "seconds" % (what,))


def repetitions_from(parser, options, minimum, maximum, seconds):
    """
    :param parser: The ``argparse`` parser, to report bad values with.
    :param options: Its parsed options (:func:`add_repetition_options`).
    :param int minimum: ``--reps`` when not given.
    :param int maximum: ``--max-reps`` when not given (raised to
        ``--reps`` if that is higher).
    :param float seconds: ``--max-seconds`` when not given.
    :return: :class:`Repetitions`; exits through ``parser.error`` for
        fewer than 3 repetitions, a maximum under the minimum or over 100,
        or seconds outside (0, 7200].
    """
    least = minimum if options.reps is None else options.reps
    most = options.max_reps
    if most is None:
        most = max(least, maximum)
    limit = seconds if options.max_seconds is None else options.max_seconds
    if least < 3:
        parser.error("--reps must be at least 3")
    if not least <= most <= 100:
        parser.error("--max-reps must be between --reps (%d) and 100"
                     % (least,))
    if not 0 < limit <= 7200:
        parser.error("--max-seconds must be more than 0 and at most 7200")
    return Repetitions(minimum=least, maximum=most, seconds=limit)


def number(value):
    """
    :return: ``value`` if it is a number (not a boolean), else ``None``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def spread_figures(figures):
    """
    :param dict figures: One benchmark's JSON figures.
    :return: ``list`` of ``(name, value, spread, uncertainty)`` for every
        figure reported with a ``NAME_spread`` beside it (the ratios), by
        name; ``uncertainty`` is ``NAME_uncertainty``, or ``None`` when
        the figures have none (results written before it was reported).
    """
    found = []
    for key in sorted(figures):
        if not key.endswith("_spread"):
            continue
        name = key[:-len("_spread")]
        value, spread = number(figures.get(name)), number(figures[key])
        if value is not None and spread is not None:
            found.append((name, value, spread,
                          number(figures.get(name + "_uncertainty"))))
    return found


#: Run by a node's own interpreter: print its resident size in kB after
#: ``IMPORTS`` (the floors of :func:`agent_memory`).
_RSS_AFTER = ("{imports}\n"
              "with open('/proc/self/status') as f:\n"
              "    print(f.read().split('VmRSS:')[1].split()[0])\n")


def status_kb(pid, field):
    """
    :param pid: A process id, or ``"self"``.
    :param str field: A field of ``/proc/PID/status`` counted in kB
        (``VmRSS``, ``VmHWM``).
    :return: Its value in kB.
    :raises OSError: If the process (or ``/proc``) is not there.
    :raises ValueError: If the field is not.
    """
    with open("/proc/%s/status" % (pid,)) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise ValueError("no %s for process %s" % (field, pid))


def agent_memory(lab):
    """
    The memory of the lab nodes' agents (``flocker-node agent``, as each
    node's boot started it), with two floors measured by the agents' own
    interpreter on a node, now: a bare interpreter, one that imports only
    Twisted's reactor (which loads pyOpenSSL where it may), and one that
    imports it with pyOpenSSL marked absent, as the agent runs (see
    :mod:`flocker._openssl`).

    :param lab: A running lab (``_lab_client.Lab``).
    :return: ``dict`` of MB (2^20 bytes): ``agent_rss_mb`` and
        ``agent_peak_rss_mb``, the largest ``VmRSS`` and ``VmHWM`` over the
        agents; ``python_rss_mb``, ``reactor_rss_mb`` and
        ``reactor_no_tls_rss_mb``, the floors.
    :raises RuntimeError: If no node has a running agent.
    """
    with open(os.path.join(lab.state, "lab.json")) as f:
        runtime = json.load(f)["runtime"]
    rss, peak, python = [], [], None
    for node in lab.node_names:
        try:
            with open(os.path.join(runtime, node, "agent.pid")) as f:
                pid = int(f.read().strip())
            with open("/proc/%d/cmdline" % (pid,), "rb") as f:
                python = f.read().split(b"\0")[0].decode()
            rss.append(status_kb(pid, "VmRSS"))
            peak.append(status_kb(pid, "VmHWM"))
        except (OSError, ValueError):
            continue
    if not rss:
        raise RuntimeError("no node agent running in %s" % (runtime,))

    def floor(imports):
        result = lab.run(lab.node_names[0], [
            python, "-c", _RSS_AFTER.format(imports=imports)],
            check=True, timeout=120)
        return int(result.stdout.split()[-1])

    figures = {"agent_rss_mb": max(rss), "agent_peak_rss_mb": max(peak),
               "python_rss_mb": floor(""),
               "reactor_rss_mb": floor("import twisted.internet.reactor"),
               "reactor_no_tls_rss_mb": floor(
                   "import sys\nsys.modules['OpenSSL'] = None\n"
                   "import twisted.internet.reactor")}
    return {name: round(kb / 1024, 1) for name, kb in figures.items()}


def agent_memory_rows(memory):
    """
    :param memory: What :func:`agent_memory` returned.
    :return: The rows of its table (see :func:`print_table`).
    """
    return [["node agent, largest (flocker-node agent)",
             "%.1f" % memory["agent_rss_mb"],
             "%.1f" % memory["agent_peak_rss_mb"]],
            ["floor: node's python, twisted's reactor imported",
             "%.1f" % memory["reactor_rss_mb"], ""],
            ["floor: the same without pyOpenSSL (as the agent runs)",
             "%.1f" % memory["reactor_no_tls_rss_mb"], ""],
            ["floor: node's python, bare", "%.1f" % memory["python_rss_mb"],
             ""]]


#: Headers of :func:`agent_memory_rows`.
AGENT_MEMORY_HEADERS = ["process", "RSS MB", "peak MB"]


#: The script asking a lab node's agent for one thing (see its docstring).
AGENT_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "_agent_client.py")


def agent_client(lab, node, arguments, cpu=None):
    """
    Run ``_agent_client.py ARGUMENTS`` on lab node ``node`` (its agent).

    :param cpu: The CPU to pin it to, or ``None``.
    :return: Its standard output.
    :raises RuntimeError: If it failed (with its last error lines).
    """
    result = lab.run(node, pinned([sys.executable, AGENT_CLIENT]
                                  + list(arguments), cpu),
                     check=False, timeout=600)
    if result.returncode != 0:
        raise RuntimeError("agent %s on %s failed: %s" % (
            " ".join(arguments), node, result.stderr.strip()[-2000:]))
    return result.stdout


def install_node_trust(lab, agent, nodes=("node1", "node2")):
    """
    Install the nodes' trust on ``nodes`` through their agents, as a
    deploy would: each node's own key, from its address, and the lab's
    known_hosts.  The agents' pushes (``flocker-volume push`` included)
    need it.

    :param lab: The lab (``admin/_lab_client.py``'s ``Lab``).
    :param agent: ``agent(lab, node, *arguments)`` running
        ``benchmarks/_agent_client.py ARGUMENTS`` on ``node``, returning its
        standard output.
    :param nodes: The lab nodes' names.
    :return: ``dict`` of node name to its identity.
    """
    peers = ""
    identities = {}
    for node in nodes:
        key = json.loads(agent(lab, node, "key"))
        identities[node] = key["node_id"]
        peers += "%s %s %s\n" % (key["node_id"], lab.address(node),
                                 key["public_key"])
    with open(lab.known_hosts) as f:
        known_hosts = f.read()
    path = os.path.join(lab.state, "bench-node-key.json")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              "w") as f:
        json.dump({"known_hosts": known_hosts, "peers": peers}, f)
    try:
        for node in nodes:
            agent(lab, node, "install", path)
    finally:
        os.unlink(path)
    return identities
