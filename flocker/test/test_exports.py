"""
Every package's public names are the objects of its private modules.
"""

import importlib

import pytest

PACKAGES = ["flocker", "flocker.node", "flocker.cli", "flocker.cli._ssh",
            "flocker.volume", "flocker.route", "flocker.etcd"]


@pytest.mark.parametrize("name", PACKAGES)
def test_exports(name):
    """
    Each name in a package's ``__all__`` exists, and (but for the version)
    is defined in one of the package's private modules.
    """
    package = importlib.import_module(name)
    assert package.__all__
    for exported in package.__all__:
        value = getattr(package, exported)
        if exported == "__version__":
            continue
        module = getattr(value, "__module__", None)
        if module is not None:
            assert module.startswith(name + "."), (exported, module)
            assert module.split(".")[-1].startswith("_"), (exported, module)
