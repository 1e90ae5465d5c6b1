"""Tests for twisted_dht.stats: NodeStats counts exactly what the node did."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import bencoding, bep42, krpc
from twisted_dht.addresses import Address
from twisted_dht.errors import KRPCError
from twisted_dht.node import DHTNode
from twisted_dht.stats import ROUND_TRIP_BOUNDS, Histogram, NodeStats, errorCodeLabel
from twisted_dht.testing import FakeDatagramTransport

HERE: Address = ("81.0.0.1", 6881)
THEM: Address = ("93.0.0.9", 6881)
THEIR_ID = b"\x22" * 20
INFO_HASH = b"\x44" * 20


def query(method: bytes, args: dict[bytes, Any], tid: bytes = b"aa") -> bytes:
    return bencoding.encode({b"t": tid, b"y": b"q", b"q": method, b"a": args})


class HistogramTests(SynchronousTestCase):
    def test_buckets(self) -> None:
        """An observation lands in the first bucket whose bound it does not exceed."""
        histogram = Histogram((0.1, 1.0))
        for value in (0.05, 0.1, 0.5, 3.0):
            histogram.observe(value)
        stats = histogram.snapshot()
        self.assertEqual(stats.counts, (2, 1, 1))
        self.assertEqual(stats.count, 4)
        self.assertAlmostEqual(stats.sum, 3.65)

    def test_merged(self) -> None:
        """Merging adds the counts and sums bucket by bucket."""
        a, b = Histogram((1.0,)), Histogram((1.0,))
        a.observe(0.5)
        b.observe(2.0)
        b.observe(0.2)
        merged = Histogram.merged([a, b])
        self.assertEqual((merged.counts, merged.count), ((2, 1), 3))


class ErrorCodeLabelTests(SynchronousTestCase):
    def test_boundedLabels(self) -> None:
        """Known KRPC codes are their own label; any other code is ``other``."""
        self.assertEqual(errorCodeLabel(203), "203")
        self.assertEqual(errorCodeLabel(302), "302")
        self.assertEqual(errorCodeLabel(999999), "other")
        self.assertEqual(errorCodeLabel(-1), "other")


class NodeStatsTests(SynchronousTestCase):
    """A known sequence of datagrams gives exact counter values."""

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

    def receive(self, data: bytes, address: Address = THEM) -> None:
        self.node.ipv4.protocol.datagramReceived(data, address)

    def test_empty(self) -> None:
        """A node that did nothing has zero counters, empty tables and no uptime."""
        stats = self.node.stats()
        self.assertIsInstance(stats, NodeStats)
        self.assertEqual((stats.datagramsIn, stats.datagramsOut), (0, 0))
        self.assertEqual(stats.queriesIn, {})
        self.assertEqual(stats.dropped, 0)
        self.assertEqual(stats.uptime, 0.0)
        self.assertEqual((stats.ipv4.nodes, stats.ipv6.nodes), (0, 0))
        self.assertEqual(stats.ports, {"ipv4": 6881})
        self.assertIsNone(stats.externalIP)
        self.assertIsNone(stats.idValidForIP)

    def test_incomingTraffic(self) -> None:
        """Queries, errors by code, invalid queries by method and drops by reason."""
        pings = [query(b"ping", {b"id": THEIR_ID}, bytes([i, i])) for i in range(3)]
        for data in pings:
            self.receive(data)
        self.receive(query(b"get_peers", {b"id": THEIR_ID}))  # no info_hash: 203
        self.receive(query(b"frobnicate", {b"id": THEIR_ID}))  # unknown: 204
        self.receive(b"not bencode")  # malformed, no tid: dropped silently
        stats = self.node.stats()
        self.assertEqual(stats.queriesIn, {"ping": 3, "get_peers": 1, "other": 1})
        self.assertEqual(stats.errorsSent, {"203": 1, "204": 1})
        self.assertEqual(stats.invalidQueries, {"get_peers": 1})
        self.assertEqual(stats.responsesSent, 3)
        self.assertEqual(stats.drops["malformed"], 1)
        self.assertEqual(stats.datagramsIn, 6)
        sent = [data for data, _ in self.transport.written]
        self.assertEqual(stats.datagramsOut, len(sent))
        self.assertEqual(stats.bytesOut, sum(map(len, sent)))
        self.assertEqual(stats.bytesIn, sum(map(len, pings)) + len(b"not bencode") + sum(
            len(query(m, {b"id": THEIR_ID})) for m in (b"get_peers", b"frobnicate")
        ))  # fmt: skip

    def test_outgoingQueries(self) -> None:
        """Our queries by method, their round trips, and error replies by code."""
        self.node.start(bootstrap=False)
        answered = self.node.sendQuery(THEM, b"find_node", {b"target": INFO_HASH})
        refused = self.node.sendQuery(THEM, b"get_peers", {b"info_hash": INFO_HASH})
        self.assertEqual(self.node.stats().pendingQueries, 2)
        (first, _), (second, _) = self.transport.written[-2:]
        self.clock.advance(0.03)
        reply = krpc.encodeResponse(krpc.decodeMessage(first).tid, {b"id": THEIR_ID})
        self.receive(reply)
        self.clock.advance(0.3)
        self.receive(krpc.encodeError(krpc.decodeMessage(second).tid, 201, "no"))
        self.successResultOf(answered)
        self.failureResultOf(refused, KRPCError)
        stats = self.node.stats()
        self.assertEqual(stats.queriesOut, {"find_node": 1, "get_peers": 1})
        self.assertEqual(stats.errorsReceived, {"201": 1})
        self.assertEqual((stats.responsesReceived, stats.pendingQueries), (1, 0))
        expected = [0] * (len(ROUND_TRIP_BOUNDS) + 1)
        expected[ROUND_TRIP_BOUNDS.index(0.05)] += 1  # 30 ms
        expected[ROUND_TRIP_BOUNDS.index(0.5)] += 1  # 330 ms
        self.assertEqual(list(stats.roundTrips.counts), expected)
        self.assertAlmostEqual(stats.roundTrips.sum, 0.36)
        self.assertAlmostEqual(stats.uptime, 0.33)
        self.node.stop()

    def test_tables(self) -> None:
        """Each family's table, bucket by bucket, with contacts by state."""
        self.node.start(bootstrap=False)
        for i in range(5):
            nodeId = bytes([0x80 + i]) + b"\x00" * 19
            self.receive(query(b"ping", {b"id": nodeId}), (f"93.{i}.0.9", 6881))
        stats = self.node.stats()
        self.assertEqual(stats.ipv4.nodes, len(self.node.ipv4.table))
        self.assertEqual(stats.ipv4.nodes, 5)
        self.assertEqual(
            [b.depth for b in stats.ipv4.buckets],
            [b.depth for b in self.node.ipv4.table.buckets()],
        )
        self.assertEqual(stats.ipv4.good + stats.ipv4.questionable + stats.ipv4.bad, 5)
        self.node.stop()

    def test_externalIP(self) -> None:
        """The voted external IP and whether our id is BEP 42-valid for it."""
        self.node.setNodeId(bep42.generateId("81.5.5.5"))
        for voter in range(10):
            self.node.ipv4.voter.vote(f"93.1.{voter}.1", "81.5.5.5")
        stats = self.node.stats()
        self.assertEqual(stats.externalIP, "81.5.5.5")
        self.assertIs(stats.idValidForIP, True)
        self.node.setNodeId(b"\x11" * 20)
        self.assertIs(self.node.stats().idValidForIP, False)

    def test_sampleRepeats(self) -> None:
        """sample_infohashes asked again within the interval: the first repeat counts as
        cached, the next ones as dropped, and none once the interval has passed."""
        sample = query(b"sample_infohashes", {b"id": THEIR_ID, b"target": INFO_HASH})
        self.receive(sample)
        self.assertEqual(self.node.stats().sampleRepeats, {"cached": 0, "dropped": 0})
        for _ in range(3):
            self.receive(sample)
        self.assertEqual(self.node.stats().sampleRepeats, {"cached": 1, "dropped": 2})
        self.assertEqual(self.node.stats().responsesSent, 2)
        self.clock.advance(21600)
        self.receive(sample)
        stats = self.node.stats()
        self.assertEqual(stats.sampleRepeats, {"cached": 1, "dropped": 2})
        self.assertEqual(stats.responsesSent, 3)
        self.assertEqual(stats.toJSON()["sampleRepeats"], {"cached": 1, "dropped": 2})

    def test_toJSON(self) -> None:
        """toJSON is a JSON document of every field, with totals for the tables."""
        self.receive(query(b"ping", {b"id": THEIR_ID}))
        document = json.loads(json.dumps(self.node.stats().toJSON()))
        self.assertEqual(document["nodeId"], "11" * 20)
        self.assertEqual(document["queriesIn"], {"ping": 1})
        self.assertEqual(document["ipv4"]["nodes"], 1)
        self.assertEqual(len(document["roundTrips"]["counts"]), len(ROUND_TRIP_BOUNDS) + 1)
        self.assertIn("rateLimit", document["drops"])
