"""
Helpers shared by Flocker's tests.

Tests that need real parts of a machine (root, a Docker daemon, ZFS, network
namespaces) call :func:`require` with the condition and a reason.  On a
developer's machine a missing part skips the test with that reason; in CI
(``CI=true`` in the environment) it fails the test instead, so a green CI run
always means the real parts were exercised.

Tests that do real I/O through Twisted (Docker's socket, SSH, subprocesses)
call :func:`run_in_reactor`, which runs a Deferred-returning function on one
reactor started in a background thread for the whole test session, and
returns its result (or raises its exception) in the test's thread.
"""

import atexit
import os
import queue
import threading

import pytest
from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure

__all__ = ["in_ci", "require", "is_root", "run_in_reactor", "ReactorTimeout"]


def in_ci():
    """
    :return: ``True`` when running under continuous integration (``CI=true``).
    """
    return os.environ.get("CI", "").lower() == "true"


def is_root():
    """
    :return: ``True`` when the current process runs as root.
    """
    return os.geteuid() == 0


def require(condition, reason):
    """
    Skip the calling test unless ``condition`` holds; under CI fail instead.

    :param bool condition: Whether the needed part is available.
    :param str reason: What is missing, shown in the skip or failure.
    :raises pytest.skip.Exception: When the condition is false outside CI.
    :raises pytest.fail.Exception: When the condition is false in CI.
    """
    if condition:
        return
    if in_ci():
        pytest.fail("required in CI but unavailable: " + reason)
    pytest.skip(reason)


# ---------------------------------------------------------------------------
# Real I/O from synchronous tests: one reactor in a background thread.
#
# pytest cannot wait for a Deferred, and trial's reactor-driving TestCase does
# not run under pytest.  Tests that talk to real daemons (Docker, ZFS, SSH)
# therefore use run_in_reactor(): the global reactor is started once, in a
# daemon thread, the first time it is needed, and each call is scheduled on it
# with callFromThread while the test's thread waits for the result.  Tests
# must never call reactor.run(), react() or anything else that runs the
# global reactor in the test's own thread.

_reactor_lock = threading.Lock()
_reactor_thread = None


class ReactorTimeout(AssertionError):
    """
    A call made with :func:`run_in_reactor` did not finish in time; its
    ``Deferred`` was cancelled.
    """


def _stop_reactor(reactor, thread):
    if thread.is_alive():
        reactor.callFromThread(reactor.stop)
        thread.join(10)


def _running_reactor():
    """
    :return: The global reactor, started in a background thread on first use.
    """
    global _reactor_thread
    from twisted.internet import reactor
    with _reactor_lock:
        if _reactor_thread is None:
            started = threading.Event()
            reactor.callWhenRunning(started.set)
            thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False},
                name="flocker-test-reactor", daemon=True)
            thread.start()
            if not started.wait(30):
                raise RuntimeError("the test reactor did not start")
            _reactor_thread = thread
            atexit.register(_stop_reactor, reactor, thread)
    return reactor


def run_in_reactor(function, *args, timeout=60.0, **kwargs):
    """
    Run ``function(reactor, *args, **kwargs)`` in the reactor thread and wait
    for the ``Deferred`` (or coroutine, or plain value) it returns.

    The shared reactor is started on first use and runs until the test
    process exits, so objects bound to it (clients, connection pools) can be
    kept across calls; create and use them only inside ``function``.

    :param function: Called in the reactor thread with the reactor first.
    :param float timeout: Seconds to wait before cancelling the call.
    :return: The result the ``Deferred`` fired with.
    :raises ReactorTimeout: If it did not fire within ``timeout`` seconds.
    :raises Exception: Whatever it failed with, with its traceback.
    :raises RuntimeError: If called from the reactor thread itself (it
        would wait for itself forever).
    """
    reactor = _running_reactor()
    if threading.current_thread() is _reactor_thread:
        raise RuntimeError("run_in_reactor called from the reactor thread")
    results = queue.Queue()
    calls = []

    def start():
        # maybeDeferred also turns a coroutine into a Deferred.
        d = maybeDeferred(function, reactor, *args, **kwargs)
        calls.append(d)
        d.addBoth(results.put)

    reactor.callFromThread(start)
    try:
        result = results.get(timeout=timeout)
    except queue.Empty:
        reactor.callFromThread(lambda: [d.cancel() for d in calls])
        # Collect the cancellation so its failure is not logged as unhandled.
        try:
            results.get(timeout=5)
        except queue.Empty:
            pass
        raise ReactorTimeout("%s did not finish within %s seconds" % (
            getattr(function, "__qualname__", function), timeout))
    if isinstance(result, Failure):
        result.raiseException()
    return result
