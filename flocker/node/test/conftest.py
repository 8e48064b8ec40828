"""
pytest hooks for the node package's tests.
"""

import sys


def pytest_terminal_summary(terminalreporter):
    """
    After a run that fuzzed ``flocker-deploy --check``
    (:mod:`flocker.node.test.test_fuzz_config`), say how many files it
    tried: the figure a long fuzz run is judged by.
    """
    fuzz = sys.modules.get("flocker.node.test.test_fuzz_config")
    if fuzz is None or not fuzz.TRIED:
        return
    terminalreporter.write_line(
        "flocker-deploy --check fuzzing: %d cases tried, %d refused with "
        "located problems, %d accepted" % (
            sum(fuzz.TRIED.values()), fuzz.TRIED["refused"],
            fuzz.TRIED["valid"]))
