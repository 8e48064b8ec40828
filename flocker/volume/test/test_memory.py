"""
Tests for ``flocker.volume._memory``: the in-memory volume service passes
the same ``IVolumeService`` suite as the real one.
"""

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from flocker.volume._errors import OutOfSpace
from flocker.volume._memory import MemoryNetwork, MemoryVolumeService

from ._interface import make_ivolumeservice_tests


class MemoryNodes(object):
    """
    The ``_interface`` fixture for in-memory services.
    """

    big = 2 * 1024 * 1024

    def __init__(self, case):
        self.clock = Clock()
        self.network = MemoryNetwork()
        self.a = MemoryVolumeService("node-a-id", "10.0.0.1", self.network,
                                     self.clock)
        self.b = MemoryVolumeService("node-b-id", "10.0.0.2", self.network,
                                     self.clock)
        self.c = MemoryVolumeService("node-c-id", "10.0.0.3", self.network,
                                     self.clock, capacity=1024 * 1024)
        self._cut = set()

    def address(self, service):
        return service.address

    def call(self, method, *args, **kwargs):
        # Distinct snapshot names, as time passes between real calls.
        self.clock.advance(1)
        results = []
        method(*args, **kwargs).addBoth(results.append)
        if not results:
            raise AssertionError(
                "%s did not finish at once, as in-memory operations do" % (
                    method.__name__,))
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    def write(self, service, name, path, data):
        service.write_file(name, path, data)

    def read(self, service, name, path):
        return service.read_file(name, path)

    def hold(self, service, name):
        service.in_use.add(name)

    def fail(self, address, command):
        self.network.failing = set(
            item for item in self.network.failing if item[0] != address)
        if command is not None:
            self.network.failing.add((address, command))

    def cut(self, address, count):
        self.fail(address, None if count is None else "receive")

    def read_aside(self, service, dataset, path):
        return service.set_aside[dataset].files[path]


class MemoryVolumeServiceTests(make_ivolumeservice_tests(MemoryNodes)):
    """
    ``MemoryVolumeService`` behaves like a volume service.
    """


class MemoryCapacityTests(SynchronousTestCase):
    """
    A memory node's capacity is enforced like a full pool.
    """

    def test_capacity(self):
        """
        Writing beyond a memory node's capacity fails with ``OutOfSpace``.
        """
        node = MemoryVolumeService("id", "10.0.0.9", MemoryNetwork(), Clock(),
                                   capacity=10)
        node.create("app")
        self.assertRaises(OutOfSpace, node.write_file, "app", "f", b"x" * 11)
