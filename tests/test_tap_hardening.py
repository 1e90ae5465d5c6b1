"""Tests for the hardening options of C{twistd dht}: --ip-rate-limit, --upload-limit and
--enforce-node-id reach the node."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import tap
from twisted_dht.node import DHTNode


def nodeOf(*argv: str) -> DHTNode:
    """The node a service built from C{argv} would run."""
    options = tap.Options()
    options.parseOptions(list(argv))
    service = tap.makeService(options, reactor=Clock())
    return DHTNode(reactor=Clock(), routers=[], **service.nodeOptions)


class HardeningOptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """By default the blocker allows 5/s per IP, the upload budget is 64 KiB/s, and
        non-compliant ids may enter the table."""
        node = nodeOf()
        self.assertEqual(node.blocker.rate, 5.0)
        self.assertEqual(node.uploadLimiter.rate, 65536)
        self.assertFalse(node.enforceNodeId)
        self.assertIsNone(node.table4.admit)

    def test_options(self) -> None:
        """The three options reach the node's blocker, upload budget and tables."""
        node = nodeOf("--ip-rate-limit", "20", "--upload-limit", "8000", "--enforce-node-id")
        self.assertEqual(node.blocker.rate, 20.0)
        self.assertEqual(node.uploadLimiter.rate, 8000)
        self.assertTrue(node.enforceNodeId)
        self.assertIsNotNone(node.table4.admit)

    def test_zeroTurnsOff(self) -> None:
        """0 disables the per-IP blocker and the upload budget."""
        node = nodeOf("--ip-rate-limit", "0", "--upload-limit", "0")
        self.assertFalse(node.blocker.enabled)
        self.assertFalse(node.uploadLimiter.enabled)
        self.assertIsNone(node.protocol4.blocker)
        self.assertIsNone(node.protocol4.uploadLimiter)

    def test_negativeRefused(self) -> None:
        """A negative limit is a usage error."""
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--upload-limit", "-1"])
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--ip-rate-limit", "x"])
