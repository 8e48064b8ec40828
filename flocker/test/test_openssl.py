"""
Tests for :mod:`flocker._openssl`: node processes without pyOpenSSL unless
etcd's TLS is configured.
"""

import json
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from .._openssl import (
    CA_VARIABLE, CERT_VARIABLE, ETCD_ENDPOINTS, KEY_VARIABLE, forgo_tls,
    needs_tls,
)
from ..etcd import EtcdTLS

#: Run in a fresh interpreter: forgo pyOpenSSL as ``flocker-node`` does,
#: then import the reactor and every module a node process may load (the
#: agent, volumes, routes, etcd, and the SSH client its pushes use); print
#: what failed to import, whether pyOpenSSL stayed absent and whether the
#: deploy client was loaded.
NODE_IMPORTS = """
import importlib, json, pkgutil, sys
from flocker._openssl import forgo_tls
forgo_tls({})
import twisted.internet.reactor

failed, names = [], []
for package in ("flocker", "flocker.node", "flocker.volume", "flocker.route",
                "flocker.etcd", "flocker._ssh"):
    names.append(package)
    names.extend(package + "." + found.name for found in pkgutil.iter_modules(
        importlib.import_module(package).__path__) if not found.ispkg)
for name in names:
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append("%s: %s" % (name, e))
print(json.dumps({"failed": failed, "imported": len(names),
                  "absent": sys.modules.get("OpenSSL", 0) is None,
                  "client": sorted(name for name in sys.modules
                                   if name.split(".")[:2] == ["flocker", "cli"])}))
"""

#: Run in a fresh interpreter: import what ``flocker-node agent`` imports
#: (``flocker/node/script.py``: the module, then the agent's own imports in
#: ``_agent`` and ``_open_agent``) and print which of the deploy side's
#: modules came along.
AGENT_IMPORTS = """
import importlib, json, sys
from flocker._openssl import forgo_tls
forgo_tls({})
for name in ("flocker.node.script", "flocker.route", "flocker.volume",
             "flocker.volume._stamp", "flocker.etcd", "flocker._ssh",
             "flocker.node._peer_remote", "flocker.node._automatic",
             "flocker.node._docker", "flocker.node._events",
             "flocker.node._hosts", "flocker.node._lock",
             "flocker.node._replication", "flocker.node._senders",
             "flocker.node._report_cache", "flocker.node._boot",
             "flocker.node._restarter", "flocker.node._server",
             "flocker.node._logging", "flocker.node._peer"):
    importlib.import_module(name)
deploy_side = ("yaml", "flocker.node._config", "flocker.node._compose",
               "flocker.node._plan", "flocker.node._fake",
               "flocker.node._changes")
print(json.dumps(sorted(name for name in deploy_side if name in sys.modules)))
"""


class ForgoTLSTests(SynchronousTestCase):
    """
    Tests for :func:`forgo_tls` and :func:`needs_tls`.
    """

    def test_marks_absent(self):
        """
        Without etcd TLS settings pyOpenSSL is marked absent: its entry in
        the module table is ``None``.
        """
        modules = {}
        self.assertEqual((forgo_tls({CA_VARIABLE: ""}, modules), modules),
                         (True, {"OpenSSL": None}))

    def test_each_setting_keeps_it(self):
        """
        Any one of the three settings keeps pyOpenSSL importable.
        """
        for name in (CA_VARIABLE, CERT_VARIABLE, KEY_VARIABLE):
            modules = {}
            self.assertEqual(
                (forgo_tls({name: "/etc/flocker/etcd.pem"}, modules),
                 modules, needs_tls({name: "/etc/flocker/etcd.pem"})),
                (False, {}, True), name)

    def test_https_member_keeps_it(self):
        """
        An ``https`` etcd member keeps pyOpenSSL importable even without
        TLS files (the system's authorities are trusted); ``http`` members
        do not.
        """
        https = {ETCD_ENDPOINTS: "http://10.0.0.1:2379, HTTPS://10.0.0.2:2379"}
        http = {ETCD_ENDPOINTS: "http://10.0.0.1:2379,http://10.0.0.2:2379"}
        self.assertEqual((needs_tls(https), needs_tls(http)), (True, False))

    def test_loaded_kept(self):
        """
        A pyOpenSSL already loaded is left alone.
        """
        loaded = object()
        modules = {"OpenSSL": loaded}
        self.assertEqual((forgo_tls({}, modules), modules),
                         (False, {"OpenSSL": loaded}))

    def test_one_home(self):
        """
        :mod:`flocker.etcd` reads the same variables: the settings that
        keep pyOpenSSL are the ones its TLS uses.
        """
        self.assertEqual(
            EtcdTLS.from_environ({CA_VARIABLE: "/ca.pem", CERT_VARIABLE:
                                  "/c.pem", KEY_VARIABLE: "/k.pem"}),
            EtcdTLS(ca="/ca.pem", cert="/c.pem", key="/k.pem"))


class NodeImportsTests(SynchronousTestCase):
    """
    Every module a node process may load imports without pyOpenSSL, and
    none of them loads it or the deploy client.
    """

    def test_node_modules(self):
        """
        In a fresh interpreter that forgoes pyOpenSSL, the reactor and every
        node-side module import; pyOpenSSL stays absent and no module of
        :mod:`flocker.cli` is loaded (a node never needs the deploy
        client, whose modules would cost every agent memory).
        """
        result = subprocess.run([sys.executable, "-c", NODE_IMPORTS],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        found = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual((found["failed"], found["absent"], found["client"]),
                         ([], True, []))
        self.assertGreater(found["imported"], 50)

    def test_agent_leaves_deploy_side(self):
        """
        What ``flocker-node agent`` imports leaves out the deploy side of
        :mod:`flocker.node`: PyYAML, the configuration parser, the planner,
        its state changes and the in-memory agents (a few MB of every
        agent's memory, which it never uses).
        """
        result = subprocess.run([sys.executable, "-c", AGENT_IMPORTS],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout.strip().splitlines()[-1]),
                         [])
