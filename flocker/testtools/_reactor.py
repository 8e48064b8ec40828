"""
Real I/O from synchronous tests: one reactor in a background thread.

pytest cannot wait for a Deferred, and trial's reactor-driving TestCase does
not run under pytest.  Tests that talk to real daemons (Docker, ZFS, SSH)
therefore use run_in_reactor(): the global reactor is started once, in a
daemon thread, the first time it is needed, and each call is scheduled on it
with callFromThread while the test's thread waits for the result.  Tests
must never call reactor.run(), react() or anything else that runs the
global reactor in the test's own thread.
"""

import atexit
import queue
import threading

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure

__all__ = ["run_in_reactor", "ReactorTimeout"]


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
            _reap_children(reactor)
    return reactor


def _reap_children(reactor):
    """
    Make ``spawnProcess`` work on the background reactor.

    Twisted learns that a child exited from its SIGCHLD handler, which it
    only installs when the reactor runs with signal handlers, and signal
    handlers can only be set from the main thread.  Without this, every
    child stays a zombie and its ``processEnded`` never comes.  So: reap
    from a SIGCHLD handler in the main thread when we are in it, and poll
    a few times a second in case we are not (or a signal was coalesced).
    """
    import signal
    from twisted.internet.process import reapAllProcesses
    from twisted.internet.task import LoopingCall

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, lambda number, frame:
                      reactor.callFromThread(reapAllProcesses))
    reactor.callFromThread(
        lambda: LoopingCall(reapAllProcesses).start(0.1, now=False))


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
