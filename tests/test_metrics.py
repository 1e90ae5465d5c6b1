"""Tests for L{twisted_dht.metrics}: the collector's exact names, types and values from a
node on a Clock (read back with prometheus_client's parser), and on real loopback sockets
the counters of a running C{DHTService} moving by exact deltas."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

try:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - the test extra installs it
    raise SkipTest("prometheus_client is not installed (the metrics extra)") from None

from twisted_dht import bencoding, bep42, krpc
from twisted_dht.addresses import Address
from twisted_dht.metrics import METRICS, PREFIX, NodeCollector, metricsRegistry
from twisted_dht.node import DHTNode
from twisted_dht.service import DHTService
from twisted_dht.stats import ROUND_TRIP_BOUNDS
from twisted_dht.testing import FakeDatagramTransport

from .test_cli import temporaryDirectory
from .test_web import httpGet

HERE: Address = ("81.0.0.1", 6881)
THEM: Address = ("93.0.0.9", 6881)
THEIR_ID = b"\x22" * 20
INFO_HASH = b"\x44" * 20

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def query(method: bytes, args: dict[bytes, Any], tid: bytes = b"aa") -> bytes:
    return bencoding.encode({b"t": tid, b"y": b"q", b"q": method, b"a": args})


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """The types of the metric families, and every sample by (name, labels)."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(PREFIX + name, frozenset(labels.items()))]


class CollectorTests(SynchronousTestCase):
    """The collector reports what NodeStats holds, under the documented names."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.node = DHTNode(
            b"\x11" * 20,
            reactor=self.clock,
            routers=[],
            ipRateLimit=0,
            queryRateLimit=0,
            uploadLimit=0,
        )
        self.transport = FakeDatagramTransport(HERE)
        self.node.ipv4.protocol.makeConnection(self.transport)  # type: ignore[arg-type]
        self.registry = metricsRegistry(self.node.stats, process=False)

    def receive(self, data: bytes, address: Address = THEM) -> None:
        self.node.ipv4.protocol.datagramReceived(data, address)

    def scrape(self) -> tuple[dict[str, str], Samples]:
        return parse(generate_latest(self.registry).decode("utf-8"))

    def test_everyMetricDocumented(self) -> None:
        """Every documented metric is exported with its documented type, and nothing else
        (the external IP and id validity appear once there is an external IP)."""
        self.node.setNodeId(bep42.generateId("81.5.5.5"))
        for voter in range(10):
            self.node.ipv4.voter.vote(f"93.1.{voter}.1", "81.5.5.5")
        types, _ = self.scrape()
        expected = {PREFIX + name.removesuffix("_total"): kind for name, kind, _, _ in METRICS}
        self.assertEqual(types, expected)

    def test_incomingTraffic(self) -> None:
        """Queries by method, errors by code, invalid queries, drops and bytes, exactly."""
        pings = [query(b"ping", {b"id": THEIR_ID}, bytes([i, i])) for i in range(3)]
        others = [query(b"get_peers", {b"id": THEIR_ID}), query(b"frobnicate", {b"id": THEIR_ID})]
        for data in [*pings, *others, b"not bencode"]:
            self.receive(data)
        types, samples = self.scrape()
        self.assertEqual(types[PREFIX + "queries"], "counter")
        self.assertEqual(value(samples, "queries_total", direction="in", method="ping"), 3)
        self.assertEqual(value(samples, "queries_total", direction="in", method="get_peers"), 1)
        self.assertEqual(value(samples, "queries_total", direction="in", method="other"), 1)
        self.assertEqual(value(samples, "errors_total", direction="out", code="203"), 1)
        self.assertEqual(value(samples, "errors_total", direction="out", code="204"), 1)
        self.assertEqual(value(samples, "invalid_queries_total", method="get_peers"), 1)
        self.assertEqual(value(samples, "responses_total", direction="out"), 3)
        self.assertEqual(value(samples, "dropped_total", reason="malformed"), 1)
        self.assertEqual(value(samples, "dropped_total", reason="rateLimit"), 0)
        self.assertEqual(value(samples, "messages_total", direction="in"), 6)
        sent = [data for data, _ in self.transport.written]
        self.assertEqual(value(samples, "messages_total", direction="out"), len(sent))
        self.assertEqual(value(samples, "bytes_total", direction="out"), sum(map(len, sent)))
        received = sum(map(len, [*pings, *others])) + len(b"not bencode")
        self.assertEqual(value(samples, "bytes_total", direction="in"), received)

    def test_outgoingQueriesAndRoundTrips(self) -> None:
        """Our queries by method, error replies by code, a cumulative round-trip histogram,
        and pending queries, uptime and lookups as gauges."""
        self.node.start(bootstrap=False)
        answered = self.node.sendQuery(THEM, b"find_node", {b"target": INFO_HASH})
        refused = self.node.sendQuery(THEM, b"get_peers", {b"info_hash": INFO_HASH})
        self.assertEqual(value(self.scrape()[1], "pending_queries"), 2)
        (first, _), (second, _) = self.transport.written[-2:]
        self.clock.advance(0.03)
        self.receive(krpc.encodeResponse(krpc.decodeMessage(first).tid, {b"id": THEIR_ID}))
        self.clock.advance(0.3)
        self.receive(krpc.encodeError(krpc.decodeMessage(second).tid, 201, "no"))
        self.successResultOf(answered)
        self.failureResultOf(refused)
        types, samples = self.scrape()
        self.assertEqual(value(samples, "queries_total", direction="out", method="find_node"), 1)
        self.assertEqual(value(samples, "queries_total", direction="out", method="get_peers"), 1)
        self.assertEqual(value(samples, "errors_total", direction="in", code="201"), 1)
        self.assertEqual(value(samples, "responses_total", direction="in"), 1)
        self.assertEqual(value(samples, "pending_queries"), 0)
        self.assertEqual(types[PREFIX + "round_trip_seconds"], "histogram")
        buckets = [
            value(samples, "round_trip_seconds_bucket", le=str(bound))
            for bound in ROUND_TRIP_BOUNDS
        ]
        # 30 ms falls at le=0.05, 330 ms at le=0.5; buckets are cumulative.
        self.assertEqual(buckets, [0, 0, 1, 1, 1, 2, 2, 2, 2])
        self.assertEqual(value(samples, "round_trip_seconds_bucket", le="+Inf"), 2)
        self.assertEqual(value(samples, "round_trip_seconds_count"), 2)
        self.assertAlmostEqual(value(samples, "round_trip_seconds_sum"), 0.36)
        self.assertAlmostEqual(value(samples, "uptime_seconds"), 0.33)
        self.assertEqual(value(samples, "lookups_started_total"), 0)
        self.assertEqual(value(samples, "lookups_active"), 0)
        self.node.stop()

    def test_tables(self) -> None:
        """Contacts by family and state, buckets, and contacts summed per bucket depth."""
        self.node.start(bootstrap=False)
        for i in range(5):
            nodeId = bytes([0x80 + i]) + b"\x00" * 19
            self.receive(query(b"ping", {b"id": nodeId}), (f"93.{i}.0.9", 6881))
        stats = self.node.stats()
        _, samples = self.scrape()
        for state in ("good", "questionable", "bad"):
            self.assertEqual(
                value(samples, "nodes", family="ipv4", state=state), getattr(stats.ipv4, state)
            )
            self.assertEqual(value(samples, "nodes", family="ipv6", state=state), 0)
        self.assertEqual(
            sum(value(samples, "nodes", family="ipv4", state=s) for s in ("good", "questionable")),
            5,
        )
        self.assertEqual(value(samples, "buckets", family="ipv4"), len(stats.ipv4.buckets))
        self.assertEqual(value(samples, "node_cache", family="ipv4"), stats.ipv4.cached)
        depths = {b.depth for b in stats.ipv4.buckets}
        perDepth = [value(samples, "bucket_nodes", family="ipv4", depth=str(d)) for d in depths]
        self.assertEqual(sum(perDepth), 5)
        self.node.stop()

    def test_labelsBounded(self) -> None:
        """Many distinct unknown methods and error codes add no label value beyond
        ``other``: no label is per IP, per hash or per string a peer sends."""
        for i in range(50):
            self.receive(query(b"m%d" % i, {b"id": THEIR_ID}, bytes([i, i])), (f"93.0.{i}.9", 1))
        _, samples = self.scrape()
        methods = {
            dict(labels)["method"]
            for name, labels in samples
            if name == PREFIX + "queries_total" and dict(labels).get("direction") == "in"
        }
        self.assertEqual(methods, {"other"})
        self.assertEqual(value(samples, "queries_total", direction="in", method="other"), 50)

    def test_externalIP(self) -> None:
        """The voted IP is one info-style series; node_id_valid is 1 or 0 for it."""
        types, samples = self.scrape()
        self.assertNotIn(PREFIX + "external_ip_info", types)
        self.assertNotIn(PREFIX + "node_id_valid", types)
        self.node.setNodeId(bep42.generateId("81.5.5.5"))
        for voter in range(10):
            self.node.ipv4.voter.vote(f"93.1.{voter}.1", "81.5.5.5")
        _, samples = self.scrape()
        self.assertEqual(value(samples, "external_ip_info", ip="81.5.5.5"), 1)
        self.assertEqual(value(samples, "node_id_valid"), 1)
        self.node.setNodeId(b"\x11" * 20)
        self.assertEqual(value(self.scrape()[1], "node_id_valid"), 0)

    def test_noNode(self) -> None:
        """Without a node (stats gives None) the collector yields nothing."""
        self.assertEqual(list(NodeCollector(lambda: None).collect()), [])

    def test_processMetrics(self) -> None:
        """The default registry adds the process's own metrics where the platform has them."""
        if not os.path.exists("/proc/self/stat"):
            raise SkipTest("no /proc here")
        types, _ = parse(generate_latest(metricsRegistry(self.node.stats)).decode())
        self.assertIn("process_resident_memory_bytes", types)


class PingClient(DatagramProtocol):
    """A UDP socket that sends datagrams and keeps every datagram it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.sent: list[bytes] = []
        self.replies: Deferred[None] | None = None
        self.expected = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append(datagram)
        message = krpc.decodeMessage(datagram)
        if not isinstance(message, krpc.Query):
            self.expected -= 1
            if self.expected == 0 and self.replies is not None:
                replies, self.replies = self.replies, None
                replies.callback(None)

    def send(self, data: bytes, address: Address, replies: int) -> Deferred[None]:
        """Send C{data}; fire once C{replies} replies (not queries) arrived."""
        assert self.transport is not None
        self.sent.append(data)
        self.expected += replies
        self.replies = Deferred()
        self.transport.write(data, address)
        return self.replies


class LoopbackMetricsTests(TestCase):
    """A real DHTService with --metrics on loopback: counters move by exact deltas."""

    timeout = 30

    @inlineCallbacks
    def test_countersMoveByExactDeltas(self) -> Any:
        """A known sequence of queries moves each counter by exactly what was sent."""
        directory = temporaryDirectory(self)
        service = DHTService(
            port=0,
            interface="127.0.0.1",
            ipv6=False,
            bootstrap=False,
            statePath=os.path.join(directory, "dht.state"),
            metrics="tcp:0:interface=127.0.0.1",
            relaxLocal=True,
            statsInterval=0,
        )
        service.startService()
        self.addCleanup(service.stopService)
        address = service.webAddress()
        url = f"http://127.0.0.1:{address.port}/metrics"
        client = PingClient()
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        node = service.addresses()[0]

        status, headers, body = yield httpGet(url)
        self.assertEqual(status, 200)
        self.assertIn(b"text/plain", headers[b"content-type"])
        _, before = parse(body.decode("utf-8"))

        sequence = [
            (query(b"ping", {b"id": b"a" * 20}, b"p1"), 1),
            (query(b"ping", {b"id": b"b" * 20}, b"p2"), 1),
            (query(b"find_node", {b"id": b"a" * 20, b"target": INFO_HASH}, b"f1"), 1),
            (query(b"get_peers", {b"id": b"a" * 20}, b"g1"), 1),  # no info_hash: 203
            (query(b"frobnicate", {b"id": b"a" * 20}, b"x1"), 1),  # unknown: 204
            (b"garbage", 0),
        ]
        for data, replies in sequence:
            if replies:
                yield client.send(data, node, replies)
            else:
                client.send(data, node, 0)
        yield deferLater(reactor, 0.2, lambda: None)  # the garbage, and any query of theirs

        status, _, body = yield httpGet(url)
        _, after = parse(body.decode("utf-8"))

        def delta(name: str, **labels: str) -> float:
            key = (PREFIX + name, frozenset(labels.items()))
            return after.get(key, 0) - before.get(key, 0)

        self.assertEqual(delta("queries_total", direction="in", method="ping"), 2)
        self.assertEqual(delta("queries_total", direction="in", method="find_node"), 1)
        self.assertEqual(delta("queries_total", direction="in", method="get_peers"), 1)
        self.assertEqual(delta("queries_total", direction="in", method="other"), 1)
        self.assertEqual(delta("responses_total", direction="out"), 3)
        self.assertEqual(delta("errors_total", direction="out", code="203"), 1)
        self.assertEqual(delta("errors_total", direction="out", code="204"), 1)
        self.assertEqual(delta("invalid_queries_total", method="get_peers"), 1)
        self.assertEqual(delta("dropped_total", reason="malformed"), 1)
        self.assertEqual(delta("messages_total", direction="in"), len(sequence))
        self.assertEqual(delta("bytes_total", direction="in"), sum(len(d) for d, _ in sequence))
        # Everything the node sent came to our client (its replies, and any ping back).
        self.assertEqual(delta("messages_total", direction="out"), len(client.received))
        self.assertEqual(delta("bytes_total", direction="out"), sum(map(len, client.received)))
        self.assertGreater(value(after, "uptime_seconds"), 0)
