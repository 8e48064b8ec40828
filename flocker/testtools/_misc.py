"""
Small helpers of tests: temporary directories outside the source tree,
the standard streams captured, reading an HTTP response, and waiting for a
started process's socket.
"""

import io
import os
import pathlib
import sys
import time

__all__ = ["temporary_directory", "temporary_path", "class_temporary_path",
           "http_status_and_body", "capture_output", "wait_for_path"]


def wait_for_path(path, process, seconds=60.0):
    """
    Wait, blocking, until a process started by a test or a benchmark
    script has made ``path`` (its socket, say).  Never for the reactor
    thread.

    :param str path: The file to wait for.
    :param process: The ``subprocess.Popen`` that makes it.
    :param float seconds: The longest to wait.
    :return: ``True`` once ``path`` exists; ``False`` if ``process``
        exits first or ``seconds`` pass.
    """
    interval = 0.05
    for _ in range(int(seconds / interval) + 1):
        if os.path.exists(path):
            return True
        if process.poll() is not None:
            return False
        time.sleep(interval)
    return os.path.exists(path)


def http_status_and_body(response):
    """
    :param str response: An HTTP/1.x response read as text (so with
        ``\\n`` line ends), or ``""``.
    :return: ``(status code, body)``, ``(None, "")`` for no response.
    """
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    words = head.split(None, 2)
    return (words[1] if len(words) > 1 else None), body


def temporary_directory(test):
    """
    Make a new empty directory outside the source tree, removed when
    ``test`` ends.  (trial's ``mktemp`` would put it under the current
    directory, which is the repository when pytest runs the suite.)

    :param test: A ``TestCase`` (its ``addCleanup`` is used).
    :return: The directory's path.
    """
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="flocker-test-")
    test.addCleanup(shutil.rmtree, path, True)
    return os.path.join(path, "d")


def temporary_path(test):
    """
    Make a new empty directory outside the source tree, removed when
    ``test`` ends.

    :param test: A ``TestCase`` (its ``addCleanup`` is used).
    :return: The directory, which exists, as a ``pathlib.Path``.
    """
    path = pathlib.Path(temporary_directory(test))
    path.mkdir()
    return path


def capture_output(test):
    """
    Send what is written to ``sys.stdout`` and ``sys.stderr`` to memory
    until ``test`` ends (for code that writes to the standard streams, as
    ``argparse`` does).

    :param test: A trial ``TestCase`` (its ``patch`` is used).
    :return: ``(stdout, stderr)``, two ``io.StringIO``.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    test.patch(sys, "stdout", stdout)
    test.patch(sys, "stderr", stderr)
    return stdout, stderr


def class_temporary_path(cls):
    """
    Make a new empty directory outside the source tree for the tests of
    ``cls`` (from its ``setUpClass``), removed once they have all run.

    :param cls: A ``TestCase`` class (its ``addClassCleanup`` is used).
    :return: The directory, which exists, as a ``pathlib.Path``.
    """
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="flocker-test-")
    cls.addClassCleanup(shutil.rmtree, path, True)
    return pathlib.Path(path)
