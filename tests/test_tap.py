"""Tests for the twistd plugin and L{twisted_dht.tap}: discovery, options, makeService."""

from __future__ import annotations

import os

from twisted.application.service import IServiceMaker
from twisted.internet.task import Clock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import tap
from twisted_dht.bootstrap import DEFAULT_ROUTERS
from twisted_dht.node import DHTNode
from twisted_dht.service import DHTService
from twisted_dht.testing import MemoryReactor

from .test_cli import temporaryDirectory

HASH = "0123456789abcdef0123456789abcdef01234567"


class PluginTests(SynchronousTestCase):
    """The plugin makes C{twistd dht} available."""

    def test_discovered(self) -> None:
        """getPlugins(IServiceMaker) finds exactly one plugin named dht, built on tap.py."""
        makers = [p for p in getPlugins(IServiceMaker) if p.tapname == "dht"]
        self.assertEqual(len(makers), 1)
        self.assertIs(makers[0].options, tap.Options)
        self.assertIs(makers[0].makeService, tap.makeService)
        self.assertIn("DHT", makers[0].description)


class OptionsTests(SynchronousTestCase):
    """L{tap.Options} parses every option and rejects bad values with a UsageError."""

    def setUp(self) -> None:
        self.directory = temporaryDirectory(self)
        self.statePath = os.path.join(self.directory, "dht.state")

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def assertUsageError(self, *argv: str, contains: str = "") -> str:
        error = self.assertRaises(usage.UsageError, self.parse, *argv)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertIn(contains, message)
        return message

    def test_defaults(self) -> None:
        """With no argument every option has its documented default."""
        options = self.parse()
        self.assertEqual(options["port"], 6881)
        self.assertEqual(options["interface"], "")
        self.assertEqual(options["interface6"], "::")
        self.assertFalse(options["no-ipv6"])
        self.assertEqual(options["bootstrap"], [])
        self.assertEqual(options.routers(), list(DEFAULT_ROUTERS))
        self.assertFalse(options["no-bootstrap"])
        self.assertEqual(options["state"], "dht.state")
        self.assertIsNone(options["node-id"])
        self.assertFalse(options["read-only"])
        self.assertEqual(options["max-peers-per-torrent"], 100)
        self.assertEqual(options["max-torrents"], 10000)
        self.assertEqual(options["max-items"], 700)
        self.assertEqual(options["announce"], [])
        self.assertFalse(options["relax-local"])
        self.assertEqual(options["stats-interval"], 300.0)

    def test_port(self) -> None:
        """--port and -p set the UDP port; 0 means any free port."""
        self.assertEqual(self.parse("--port", "7000")["port"], 7000)
        self.assertEqual(self.parse("-p", "0")["port"], 0)

    def test_interfaces(self) -> None:
        """--interface takes an IPv4 address and --interface6 an IPv6 one."""
        options = self.parse("--interface", "127.0.0.1", "--interface6", "::1")
        self.assertEqual((options["interface"], options["interface6"]), ("127.0.0.1", "::1"))

    def test_flags(self) -> None:
        """--no-ipv6, --read-only and --relax-local are flags."""
        options = self.parse("--no-ipv6", "--read-only", "--relax-local")
        self.assertTrue(options["no-ipv6"])
        self.assertTrue(options["read-only"])
        self.assertTrue(options["relax-local"])

    def test_bootstrapRepeatable(self) -> None:
        """--bootstrap appends HOST:PORT and [IPV6]:PORT addresses, replacing the routers."""
        options = self.parse(
            "--bootstrap", "router.example:6881", "--bootstrap", "[2001:db8::1]:25401"
        )
        expected = [("router.example", 6881), ("2001:db8::1", 25401)]
        self.assertEqual(options["bootstrap"], expected)
        self.assertEqual(options.routers(), expected)

    def test_noBootstrap(self) -> None:
        """--no-bootstrap leaves the node without routers."""
        self.assertEqual(self.parse("--no-bootstrap").routers(), [])

    def test_state(self) -> None:
        """--state sets the state file path."""
        self.assertEqual(self.parse("--state", self.statePath)["state"], self.statePath)

    def test_nodeId(self) -> None:
        """--node-id takes 40 hex digits and gives 20 bytes."""
        self.assertEqual(self.parse("--node-id", HASH)["node-id"], bytes.fromhex(HASH))

    def test_limits(self) -> None:
        """--max-peers-per-torrent, --max-torrents and --max-items take positive integers."""
        options = self.parse(
            "--max-peers-per-torrent", "5", "--max-torrents", "7", "--max-items", "9"
        )
        self.assertEqual(
            (options["max-peers-per-torrent"], options["max-torrents"], options["max-items"]),
            (5, 7, 9),
        )

    def test_announce(self) -> None:
        """--announce takes INFOHASH[:PORT], repeatable; no port means the implied port."""
        options = self.parse("--announce", HASH + ":5555", "--announce", HASH.upper())
        self.assertEqual(
            options["announce"], [(bytes.fromhex(HASH), 5555), (bytes.fromhex(HASH), None)]
        )

    def test_statsInterval(self) -> None:
        """--stats-interval takes seconds, 0 turning the stats line off."""
        self.assertEqual(self.parse("--stats-interval", "2.5")["stats-interval"], 2.5)
        self.assertEqual(self.parse("--stats-interval", "0")["stats-interval"], 0.0)

    def test_badPort(self) -> None:
        """A port outside 0-65535 or not a number is a usage error."""
        self.assertUsageError("--port", "70000", contains="70000")
        self.assertUsageError("--port", "-1")
        self.assertUsageError("--port", "http")

    def test_badBootstrap(self) -> None:
        """A malformed --bootstrap (no port, bad port, no host, bad host, bare IPv6) fails."""
        for value in (
            "router.example",
            "router.example:",
            "router.example:70000",
            "router.example:0",
            "router.example:abc",
            ":6881",
            "bad host:6881",
            "2001:db8::1:6881",
            "[2001:db8::1]6881",
            "[nothex]:6881",
        ):
            self.assertUsageError("--bootstrap", value, contains="--bootstrap")

    def test_badNodeId(self) -> None:
        """A node id that is not 40 hex digits is a usage error."""
        self.assertUsageError("--node-id", "abc", contains="40 hex digits")
        self.assertUsageError("--node-id", "z" * 40, contains="hexadecimal")

    def test_badAnnounce(self) -> None:
        """A bad info_hash or port in --announce is a usage error."""
        self.assertUsageError("--announce", "abc", contains="--announce")
        self.assertUsageError("--announce", HASH + ":0", contains="--announce")
        self.assertUsageError("--announce", HASH + ":x", contains="--announce")

    def test_badStatePath(self) -> None:
        """A state path in a missing directory, a directory, or empty is a usage error."""
        missing = os.path.join(self.directory, "missing", "dht.state")
        self.assertUsageError("--state", missing, contains="does not exist")
        self.assertUsageError("--state", self.directory, contains="is a directory")
        self.assertUsageError("--state", "", contains="empty")

    def test_unwritableStatePath(self) -> None:
        """A state path whose directory is not writable is a usage error."""
        self.patch(os, "access", lambda path, mode: False)
        self.assertUsageError("--state", self.statePath, contains="not writable")

    def test_negativeNumbers(self) -> None:
        """Negative or zero limits and a negative stats interval are usage errors."""
        self.assertUsageError("--max-peers-per-torrent", "-1")
        self.assertUsageError("--max-peers-per-torrent", "0")
        self.assertUsageError("--max-torrents", "-5")
        self.assertUsageError("--max-items", "0")
        self.assertUsageError("--stats-interval", "-1")
        self.assertUsageError("--stats-interval", "nan")

    def test_badInterfaces(self) -> None:
        """--interface must be an IPv4 address and --interface6 an IPv6 address."""
        self.assertUsageError("--interface", "::1", contains="IPv4")
        self.assertUsageError("--interface", "localhost", contains="not an IP")
        self.assertUsageError("--interface6", "127.0.0.1", contains="IPv6")

    def test_bootstrapConflict(self) -> None:
        """--bootstrap with --no-bootstrap is a usage error."""
        self.assertUsageError(
            "--no-bootstrap", "--bootstrap", "127.0.0.1:6881", contains="contradict"
        )


class MakeServiceTests(SynchronousTestCase):
    """L{tap.makeService} builds a L{DHTService} from the options."""

    def test_makeService(self) -> None:
        """Every option reaches the service; IP-literal bootstrap addresses are nodes too."""
        directory = temporaryDirectory(self)
        options = tap.Options()
        options.parseOptions(
            [
                "--port", "0", "--interface", "127.0.0.1", "--interface6", "::1",
                "--no-ipv6", "--state", os.path.join(directory, "s"), "--node-id", HASH,
                "--bootstrap", "127.0.0.1:1000", "--bootstrap", "router.example:6881",
                "--read-only", "--max-peers-per-torrent", "3", "--max-torrents", "4",
                "--max-items", "6", "--announce", HASH, "--relax-local", "--stats-interval", "9",
            ]
        )  # fmt: skip
        clock = Clock()
        service = tap.makeService(options, reactor=clock)
        self.assertIsInstance(service, DHTService)
        self.assertEqual(service.port, 0)
        self.assertEqual(service.interface, "127.0.0.1")
        self.assertEqual(service.interface6, "::1")
        self.assertFalse(service.ipv6)
        self.assertEqual(service.routers, [("127.0.0.1", 1000), ("router.example", 6881)])
        self.assertEqual(service.nodes, [("127.0.0.1", 1000)])
        self.assertTrue(service.bootstrap)
        self.assertEqual(service.statePath, os.path.abspath(os.path.join(directory, "s")))
        self.assertEqual(service.nodeId, bytes.fromhex(HASH))
        self.assertEqual(service.announces, [(bytes.fromhex(HASH), None)])
        self.assertEqual(service.statsInterval, 9.0)
        self.assertEqual(
            service.nodeOptions,
            {
                "readOnly": True,
                "maxPeersPerInfoHash": 3,
                "maxInfoHashes": 4,
                "maxItems": 6,
                "relaxLocal": True,
                "ipRateLimit": 5.0,
                "uploadLimit": 65536,
                "enforceNodeId": False,
                "queryRateLimit": 500.0,
                "outgoingQueryRate": 100.0,
                "amplification": 4.0,
            },
        )
        self.assertIsNone(service.node)

    def test_makeServiceDefaults(self) -> None:
        """With no option the service uses the public routers and dht.state here."""
        options = tap.Options()
        options.parseOptions([])
        service = tap.makeService(options, reactor=Clock())
        self.assertEqual(service.routers, list(DEFAULT_ROUTERS))
        self.assertEqual(service.nodes, [])
        self.assertEqual(service.statePath, os.path.abspath("dht.state"))
        self.assertTrue(service.ipv6)
        self.assertEqual(service.port, 6881)


def nodeOf(case: SynchronousTestCase, *argv: str) -> DHTNode:
    """The node that C{twistd dht} with C{argv} runs, started on an in-memory reactor."""
    options = tap.Options()
    state = os.path.join(temporaryDirectory(case), "dht.state")
    options.parseOptions(["--port", "0", "--no-bootstrap", "--state", state, *argv])
    service = tap.makeService(options, reactor=MemoryReactor())
    service.startService()
    case.addCleanup(service.stopService)
    assert service.node is not None
    return service.node


class ServiceRunTests(SynchronousTestCase):
    def test_runsAndStopsCleanly(self) -> None:
        """The service C{twistd dht} builds binds both families on one port, answers on
        them, and leaves nothing behind on its reactor once stopped."""
        reactor = MemoryReactor()
        options = tap.Options()
        state = os.path.join(temporaryDirectory(self), "dht.state")
        options.parseOptions(["--port", "0", "--no-bootstrap", "--state", state])
        service = tap.makeService(options, reactor=reactor)
        service.startService()
        [(host4, port4), (host6, port6)] = service.addresses()
        self.assertEqual((host4, host6, port4), ("0.0.0.0", "::", port6))
        reactor.advance(600)
        self.successResultOf(service.stopService())
        self.assertEqual(reactor.getDelayedCalls(), [])
        self.assertTrue(os.path.exists(state))


class HardeningOptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """By default the blocker allows 5/s per IP, the upload budget is 64 KiB/s, and
        non-compliant ids may enter the table."""
        node = nodeOf(self)
        self.assertEqual(node.policy.ipRateLimit, 5.0)
        self.assertEqual(node.policy.uploadLimit, 65536)
        self.assertEqual(node.policy.queryRateLimit, 500.0)
        self.assertEqual(node.policy.amplification, 4.0)
        self.assertIsNone(node.ipv4.table.admit)

    def test_options(self) -> None:
        """The options reach the node's admission policy, query pacing and tables."""
        node = nodeOf(
            self,
            "--ip-rate-limit", "20", "--upload-limit", "8000", "--enforce-node-id",
            "--query-rate-limit", "50", "--outgoing-query-rate", "7", "--amplification", "2.5",
        )  # fmt: skip
        self.assertEqual(node.policy.ipRateLimit, 20.0)
        self.assertEqual(node.policy.uploadLimit, 8000)
        self.assertEqual(node.policy.queryRateLimit, 50)
        self.assertEqual(node.sender.pacer.bucket.rate, 7)
        self.assertEqual(node.policy.amplification, 2.5)
        self.assertIsNotNone(node.ipv4.table.admit)

    def test_zeroTurnsOff(self) -> None:
        """0 disables the per-IP blocker, the upload and query budgets and the
        amplification limit."""
        node = nodeOf(
            self,
            "--ip-rate-limit", "0", "--upload-limit", "0", "--query-rate-limit", "0",
            "--amplification", "0",
        )  # fmt: skip
        self.assertEqual(node.policy.amplification, 0)
        self.assertFalse(node.policy.blocker.enabled)
        self.assertFalse(node.policy.uploadBucket.enabled)
        self.assertFalse(node.policy.queryBucket.enabled)
        self.assertFalse(node.policy.screens)

    def test_negativeRefused(self) -> None:
        """A negative limit is a usage error."""
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--upload-limit", "-1"])
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--ip-rate-limit", "x"])


class MetricsOptionsTests(SynchronousTestCase):
    """--metrics takes a Twisted server endpoint; a bad one is a one-line usage error."""

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        state = os.path.join(temporaryDirectory(self), "dht.state")
        options.parseOptions(["--state", state, *argv])
        return options

    def usageError(self, *argv: str) -> str:
        message = str(self.assertRaises(usage.UsageError, self.parse, *argv))
        self.assertNotIn("\n", message)
        return message

    def test_default(self) -> None:
        """Without --metrics there is no status server."""
        options = self.parse()
        self.assertIsNone(options["metrics"])
        self.assertIsNone(tap.makeService(options, reactor=Clock()).metrics)

    def test_endpoint(self) -> None:
        """An endpoint description reaches the service."""
        options = self.parse("--metrics", "tcp:9100:interface=127.0.0.1")
        service = tap.makeService(options, reactor=Clock())
        self.assertEqual(service.metrics, "tcp:9100:interface=127.0.0.1")
        self.assertIsNotNone(service.history)

    def test_badEndpoint(self) -> None:
        """An unknown endpoint type, a bad port or a bad parameter is refused."""
        for value in ("9100", "foo:1", "tcp:abc", "tcp:9100:bogus=1", "tcp:70000", ""):
            self.assertIn("--metrics", self.usageError("--metrics", value))

    def test_withoutPrometheusClient(self) -> None:
        """Without prometheus_client, --metrics says how to install it, in one line."""
        self.patch(tap, "metricsAvailable", lambda: False)
        message = self.usageError("--metrics", "tcp:9100")
        self.assertEqual(
            message, "--metrics needs prometheus_client: pip install 'twisted_dht[metrics]'"
        )
